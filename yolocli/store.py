"""The local model store: where verified model files live, and the decision to use or fetch one.

Layout of the store root (``YOLOCLI_HOME``, else ``$XDG_CACHE_HOME/yolocli``, else
``~/.cache/yolocli``)::

    yolov3-tiny.weights          verified files, only ever renamed into place complete
    yolov3-tiny.weights.part     a download in progress, resumed by the next try
    .verified/yolov3-tiny.weights  (size, mtime, inode, sha256) when the file last hashed correctly
    .locks/, .archives/          inter-process locks; source archives being unpacked
    derived/yolov3-tiny-416x416-<key>.onnx (+ .sha256)  compiled graphs, keyed by what they
                                 are made from (cfg, weights, size, compiler version)

cfg and names files ship inside the package and are checked against the registry, never
downloaded.

What the stamp trusts: a file in ``.verified/`` lets a run use a store file without
re-hashing 250 MB, as long as the file has the same size, modification time and inode as
when it last hashed correctly, and the stamp is less than 30 days old (`STAMP_TRUSTED_FOR`,
measured by the stamp file's own modification time). A file changed in any of those ways,
or one whose stamp has aged, is hashed again on its next use (and stamped afresh if good);
a file that no longer matches is fetched again. So a change that keeps size, mtime and inode
(tampering, or corruption below the file system) goes unnoticed for at most 30 days of use.
``yolocli models verify`` (`Store.check`) always re-hashes. Nothing in the store is written
through a symbolic link: a link planted at a ``.part`` name is refused with a `StoreError`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from yolocli.errors import ModelError, StoreError
from yolocli.files import locked, part_path, sha256_file, write_atomic, write_failure
from yolocli.registry import FileSpec, ModelSpec, Origin, config_dir, load_registry

if TYPE_CHECKING:
    from yolocli.download import Downloader

log = logging.getLogger(__name__)

ENV_HOME = "YOLOCLI_HOME"
ENV_MIRROR = "YOLOCLI_MIRROR"
ENV_OFFLINE = "YOLOCLI_OFFLINE"
ENV_TIMEOUT = "YOLOCLI_TIMEOUT"

STAMP_TRUSTED_FOR = 30 * 86400.0  # seconds a verification stamp spares a re-hash


class Action(Enum):
    """What to do about a store file before using it."""

    USE = "use"  # present and known good
    HASH = "hash"  # present, but changed since it was last verified: hash it to decide
    FETCH = "fetch"  # absent
    REFETCH = "refetch"  # present but wrong: replace it


def local_action(exists: bool, stamp_current: bool, hash_matches: bool | None = None) -> Action:
    """Decide what to do with a store file, from what is known about it so far.

    ``hash_matches`` is None until the file has been hashed; the answer is `Action.HASH`
    exactly when that is the missing fact.
    """
    if not exists:
        return Action.FETCH
    if stamp_current or hash_matches:
        return Action.USE
    if hash_matches is None:
        return Action.HASH
    return Action.REFETCH


def default_home(env: Mapping[str, str]) -> Path:
    if env.get(ENV_HOME):
        return Path(env[ENV_HOME]).expanduser()
    cache = env.get("XDG_CACHE_HOME")
    base = Path(cache) if cache and os.path.isabs(cache) else Path.home() / ".cache"
    return base / "yolocli"


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() not in ("", "0", "false", "no", "off")


@dataclass(frozen=True)
class ModelFiles:
    """Local paths of a model's three files, each verified."""

    cfg: Path
    weights: Path
    names: Path


@dataclass(frozen=True)
class FileStatus:
    """Where one file of a model is or would be, found without hashing or fetching.

    ``installed`` means a file is at ``path`` (a final name only ever receives a verified
    file; its hash is checked again on use if its stamp is not current); ``partial_bytes``
    is the size of an interrupted download waiting to be resumed.
    """

    spec: FileSpec
    path: Path
    installed: bool
    partial_bytes: int = 0


@dataclass(frozen=True)
class Verdict:
    """The outcome of re-hashing one file: ``problem`` is None when it is good."""

    spec: FileSpec
    path: Path
    problem: str | None


@dataclass
class Store:
    """A folder of verified model files, and the rules for filling it."""

    root: Path
    mirror: str | None = None
    offline: bool = False
    timeout: float | None = None  # read timeout for downloads (None: the default)
    progress: bool = False  # download progress bars on stderr
    stamp_trusted_for: float = STAMP_TRUSTED_FOR  # seconds; an older stamp means re-hash

    @cached_property
    def downloader(self) -> Downloader:
        """The downloader (imported on first need: installed models never load the network)."""
        from yolocli import pypi
        from yolocli.download import Downloader, Policy

        policy = Policy()
        if self.timeout is not None:
            connect = min(self.timeout, policy.connect_timeout)
            policy = Policy(connect_timeout=connect, read_timeout=self.timeout)
        return Downloader(policy, progress=self.progress, routes=pypi.routes())

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, progress: bool = False) -> Store:
        """A store configured by ``YOLOCLI_HOME``, ``YOLOCLI_MIRROR``, ``YOLOCLI_OFFLINE``
        and ``YOLOCLI_TIMEOUT`` (read timeout in seconds)."""
        env = os.environ if env is None else env
        timeout = None
        if env.get(ENV_TIMEOUT):
            try:
                timeout = float(env[ENV_TIMEOUT])
            except ValueError:
                timeout = -1.0
            if not timeout > 0:
                raise StoreError(
                    f"{ENV_TIMEOUT} must be a positive number of seconds, not {env[ENV_TIMEOUT]!r}"
                )
        mirror = env.get(ENV_MIRROR) or None
        if mirror and not mirror.endswith("/"):
            mirror += "/"
        return cls(
            root=default_home(env),
            mirror=mirror,
            offline=_truthy(env.get(ENV_OFFLINE)),
            timeout=timeout,
            progress=progress,
        )

    # -- where things are -----------------------------------------------------------------

    def path(self, spec: FileSpec) -> Path:
        """Where ``spec`` lives locally (whether or not it is there yet)."""
        return config_dir() / spec.name if spec.bundled else self.root / spec.name

    def origins(self, spec: FileSpec) -> tuple[Origin, ...]:
        """Where ``spec`` is downloaded from: the mirror, if one is set, else the registry's."""
        if self.mirror:
            return (self.mirror + spec.name,)
        return spec.network_origins

    def _stamp_path(self, spec: FileSpec) -> Path:
        return self.root / ".verified" / spec.name

    # -- verification -----------------------------------------------------------------------

    def _stamp_current(self, spec: FileSpec, path: Path) -> bool:
        """True if ``path`` is unchanged since it last hashed correctly, and that was recent."""
        stamp_path = self._stamp_path(spec)
        try:
            st = path.stat()
            age = time.time() - stamp_path.stat().st_mtime
            stamp = json.loads(stamp_path.read_text())
        except (OSError, ValueError):
            return False
        return bool(stamp == _stamp(spec, st)) and age < self.stamp_trusted_for

    def _write_stamp(self, spec: FileSpec, path: Path) -> None:
        try:
            # replaced, never written through: a link planted in .verified/ is not followed
            write_atomic(self._stamp_path(spec), json.dumps(_stamp(spec, path.stat())).encode())
        except OSError as err:  # only costs a re-hash next time
            log.debug("cannot record verification of %s: %s", path, err)

    def check(self, spec: FileSpec) -> Verdict:
        """Re-hash the local copy of ``spec`` and say whether it is the registered file."""
        path = self.path(spec)
        if not path.is_file():
            return Verdict(spec, path, "not installed")
        size = path.stat().st_size
        if size != spec.size:
            return Verdict(spec, path, f"size mismatch: {size:,} bytes, expected {spec.size:,}")
        actual = sha256_file(path)
        if actual != spec.sha256:
            return Verdict(spec, path, f"sha256 mismatch: expected {spec.sha256}, got {actual}")
        if not spec.bundled:
            self._write_stamp(spec, path)
        return Verdict(spec, path, None)

    # -- getting files ------------------------------------------------------------------------

    def status(self, spec: FileSpec) -> FileStatus:
        """Installed or not (without hashing), and how much of a download is waiting."""
        path = self.path(spec)
        part = part_path(path)
        return FileStatus(
            spec,
            path,
            installed=path.is_file(),
            partial_bytes=part.stat().st_size if part.is_file() else 0,
        )

    def locate(self, model: ModelSpec) -> dict[str, FileStatus]:
        """Where each file of ``model`` is or would be, and whether it is installed.

        Keys are ``"cfg"``, ``"weights"`` and ``"names"``, in that order. Nothing is fetched,
        hashed or created: this answers "where?" for a model that may not be installed.
        """
        return {
            "cfg": self.status(model.cfg),
            "weights": self.status(model.weights),
            "names": self.status(model.names),
        }

    def installed_models(self) -> list[str]:
        """Names of the registry's models whose weights are in this store (not re-hashed)."""
        return [
            name
            for name, model in load_registry().models.items()
            if self.status(model.weights).installed
        ]

    def _ways_forward(self, spec: FileSpec) -> str:
        """Library-level advice for a file that could not be fetched from any origin."""
        if self.mirror:
            advice = f"check that {ENV_MIRROR} ({self.mirror}) serves {spec.name}"
        else:
            advice = f"set {ENV_MIRROR} to a server that has {spec.name}"
        installed = self.installed_models()
        if installed:
            return f"To go on: {advice}, or use an installed model: {', '.join(installed)}"
        return f"To go on: {advice}, or copy the file into {self.root}"

    def ensure(self, spec: FileSpec) -> Path:
        """The local path of ``spec``, verified; fetched first if missing or corrupt."""
        if spec.bundled:
            return _bundled(spec)
        dest = self.path(spec)
        if local_action(dest.is_file(), self._stamp_current(spec, dest)) is Action.USE:
            return dest
        if self.offline and not dest.is_file():
            raise StoreError(
                f"{spec.name} is not installed and {ENV_OFFLINE} is set, so it cannot be "
                f"downloaded (store: {self.root})"
            )
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StoreError(
                f"cannot create the model store {self.root}: {os.strerror(err.errno or 0)}; "
                f"set {ENV_HOME} to a writable folder"
            ) from err
        with locked(dest):
            # Decide again under the lock: another process may have just installed it.
            exists = dest.is_file()
            action = local_action(exists, exists and self._stamp_current(spec, dest))
            if action is Action.HASH:
                action = local_action(True, False, self.check(spec).problem is None)
            if action is Action.USE:
                return dest
            if action is Action.REFETCH:
                if self.offline:
                    raise StoreError(
                        f"{dest} is corrupt (sha256 mismatch) and {ENV_OFFLINE} is set, so it "
                        "cannot be downloaded again"
                    )
                log.warning("%s is corrupt (sha256 mismatch); downloading it again", dest)
                dest.unlink()
                self._stamp_path(spec).unlink(missing_ok=True)
            log.info("downloading %s (%.1f MB) into %s", spec.name, spec.size / 1e6, self.root)
            from yolocli.download import FetchFailed

            try:
                self.downloader.install(spec, dest, self.origins(spec))
            except FetchFailed as err:
                raise err.with_hint(self._ways_forward(spec)) from None
            self._write_stamp(spec, dest)
            log.info("installed %s", dest)
            return dest

    def derived(self, name: str, key: str, build: Callable[[], bytes]) -> Path:
        """A file made from other files (a compiled ONNX graph), cached under ``derived/``.

        ``key`` names everything the file is made from (hashes of its inputs, the maker's
        version): a new key makes a new file. The file is written atomically with its sha256
        beside it, and verified like every other store file before it is used (the stamp, else
        a re-hash); a copy that no longer matches is made again. Works offline.
        """
        dest = self.root / "derived" / f"{Path(name).stem}-{key[:16]}{Path(name).suffix}"
        manifest = dest.with_name(dest.name + ".sha256")
        spec = self._derived_spec(dest, manifest)
        if spec is not None and self._stamp_current(spec, dest):
            return dest  # made and verified before: no lock, so a read-only store works
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise write_failure(err, dest.parent, 0, 0) from err
        with locked(dest):
            spec = self._derived_spec(dest, manifest)
            if spec is not None and (
                self._stamp_current(spec, dest) or self.check(spec).problem is None
            ):
                return dest
            if spec is not None:
                log.warning("%s does not match its recorded sha256; making it again", dest)
            data = build()
            digest = hashlib.sha256(data).hexdigest()
            try:
                write_atomic(dest, data)
                write_atomic(manifest, f"{digest} {len(data)}\n".encode())
            except OSError as err:
                raise write_failure(err, dest, 0, len(data)) from err
            spec = FileSpec(dest.relative_to(self.root).as_posix(), len(data), digest, ())
            self._write_stamp(spec, dest)
            return dest

    def _derived_spec(self, dest: Path, manifest: Path) -> FileSpec | None:
        """What a derived file must be, from its manifest (None: not made yet, or unreadable)."""
        try:
            digest, size = manifest.read_text().split()
            return FileSpec(dest.relative_to(self.root).as_posix(), int(size), digest, ())
        except (OSError, ValueError):
            return None

    def ensure_model(self, model: ModelSpec) -> ModelFiles:
        """All three files of ``model``, verified, fetching what is missing."""
        return ModelFiles(
            cfg=self.ensure(model.cfg),
            weights=self.ensure(model.weights),
            names=self.ensure(model.names),
        )

    def remove(self, model: ModelSpec) -> int:
        """Delete the downloaded files of ``model`` (and any partial download); bytes freed."""
        freed = 0
        for spec in model.files:
            if spec.bundled:
                continue
            path = self.path(spec)
            if not self.root.is_dir():
                continue
            with locked(path):
                for p in (path, part_path(path), self._stamp_path(spec)):
                    try:
                        freed += p.stat().st_size
                        p.unlink()
                    except FileNotFoundError:
                        pass
                    except OSError as err:
                        raise write_failure(err, p, 0, 0) from err
        return freed


def _stamp(spec: FileSpec, st: os.stat_result) -> dict[str, object]:
    return {"sha256": spec.sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "ino": st.st_ino}


@functools.cache
def _bundled(spec: FileSpec) -> Path:
    """The shipped copy of a bundled file, checked once per process."""
    path = config_dir() / spec.name
    if not path.is_file() or sha256_file(path) != spec.sha256:
        raise ModelError(
            f"the bundled {spec.name} is missing or altered ({path}); reinstall yolocli"
        )
    return path
