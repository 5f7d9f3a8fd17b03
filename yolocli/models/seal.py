"""Signed records: how the model store's own bookkeeping is trusted.

The store keeps records about itself: "this file hashed correctly and has not changed since",
"this graph was compiled from these verified inputs and has this sha256". A record anyone who
can write the store could also write would prove nothing, so each one is signed (HMAC-SHA256)
with a per-user secret kept outside the store: ``$XDG_CONFIG_HOME/yolocli/store.key``, else
``~/.config/yolocli/store.key``, 32 random bytes made on first need, readable by its owner
only. A record that does not verify (forged, copied from another user's store, made before
records were signed, or unsigned because no key could be read or made) is not an error: it is
ignored, and the work it would have spared is done again (a re-hash, a recompile).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path

log = logging.getLogger(__name__)

KEY_BYTES = 32
FIELD = "mac"  # the signature's key in a signed record


def default_key_file(env: Mapping[str, str] | None = None) -> Path:
    """Where this user's signing key lives (never inside the store)."""
    env = os.environ if env is None else env
    config = env.get("XDG_CONFIG_HOME")
    base = Path(config) if config and os.path.isabs(config) else Path.home() / ".config"
    return base / "yolocli" / "store.key"


@functools.cache
def _key(path: Path) -> bytes | None:
    """The key at ``path``, made first if there is none; None if it can be neither read nor
    made (a read-only home): records are then never trusted, only re-checked."""
    for _ in range(2):
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError:
            _make_key(path)
            continue
        except OSError as err:
            log.debug("cannot read the signing key %s: %s", path, err)
            return None
        with os.fdopen(fd, "rb") as f:
            key = f.read(KEY_BYTES + 1)
        if len(key) == KEY_BYTES:
            return key
        log.debug("the signing key %s is not %d bytes; ignored", path, KEY_BYTES)
        return None
    return None


def _make_key(path: Path) -> None:
    """Create the key file, complete or not at all (a racing process's key wins)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(os.urandom(KEY_BYTES))
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)  # never replaces a key another process made meanwhile
    except OSError as err:
        log.debug("cannot make the signing key %s: %s", path, err)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def available(key_file: Path) -> bool:
    """True if records can be signed and checked with the key at ``key_file`` (made if need be)."""
    return _key(key_file) is not None


def _mac(key: bytes, context: str, record: Mapping[str, object]) -> str:
    body = {k: v for k, v in record.items() if k != FIELD}
    message = context.encode() + b"\0" + json.dumps(body, sort_keys=True).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def sign(record: Mapping[str, object], context: str, key_file: Path) -> dict[str, object] | None:
    """``record`` with its signature added, bound to ``context`` (what the record is about, e.g.
    the file's name in the store, so a record cannot be moved to another file); None when no
    key is available."""
    key = _key(key_file)
    if key is None:
        return None
    return {**record, FIELD: _mac(key, context, record)}


def verified(record: object, context: str, key_file: Path) -> bool:
    """True if ``record`` (parsed JSON) carries a valid signature for ``context``."""
    if not isinstance(record, dict) or not isinstance(record.get(FIELD), str):
        return False
    key = _key(key_file)
    return key is not None and hmac.compare_digest(record[FIELD], _mac(key, context, record))
