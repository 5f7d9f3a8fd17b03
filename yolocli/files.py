"""Safe file operations shared by the model store and the downloader.

Hashing, where partial downloads live, atomic and durable renames, inter-process locks,
telling an HTML page from a model file, and the one error message for a store that cannot
be written. Kept apart from the downloader so that using installed models never imports the
network stack.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from yolocli.errors import StoreError

log = logging.getLogger(__name__)


def sha256_file(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def part_path(dest: Path) -> Path:
    """Where the download of ``dest`` accumulates until it is verified."""
    return dest.with_name(dest.name + ".part")


def looks_like_html(head: bytes) -> bool:
    """True if the first bytes of a body are an HTML page (an error or login page, say)."""
    start = head.lstrip()[:64].lower()
    return start.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<?xml"))


def write_failure(err: OSError, path: Path, have: int, size: int) -> StoreError:
    """The `StoreError` for a failed write into the store: out of space, or not writable."""
    reason = os.strerror(err.errno) if err.errno else str(err)
    if err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return StoreError(
            f"cannot write {path}: {reason} after {have:,} of {size:,} bytes; the partial "
            "download is kept: free some space and run again to resume"
        )
    return StoreError(f"cannot write {path}: {reason} (set YOLOCLI_HOME to a writable folder)")


def commit(part: Path, dest: Path) -> None:
    """Atomically move a verified ``part`` to ``dest``, durable across a crash."""
    with open(part, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(part, dest)
    try:
        fd = os.open(dest.parent, os.O_RDONLY)
    except OSError:  # some platforms cannot open folders
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an inter-process lock for work on ``path`` (lock files live in a hidden .locks/)."""
    from filelock import FileLock, Timeout

    lock_dir = path.parent / ".locks"
    try:
        lock_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise write_failure(err, lock_dir, 0, 0) from err
    lock = FileLock(lock_dir / (path.name + ".lock"))
    try:
        lock.acquire(timeout=0.2)
    except Timeout:
        log.info("waiting for another yolocli process to finish with %s", path.name)
        lock.acquire()
    except OSError as err:
        raise write_failure(err, lock_dir, 0, 0) from err
    try:
        yield
    finally:
        lock.release()


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that ``path`` only ever holds complete contents.

    The temporary file has no image extension (``.name.XXXXXXXX.tmp``), so a half-written
    file is never mistaken for an output, and is removed if anything fails. It is created
    with the usual permissions (0666 less the umask), unlike ``mkstemp``'s 0600.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
