"""The local model store: where verified model files live, and the decision to use or fetch one.

Layout of the store root (``YOLOCLI_HOME``, else ``$XDG_CACHE_HOME/yolocli``, else
``~/.cache/yolocli``)::

    yolov3-tiny.weights          verified files, only ever renamed into place complete
    yolov3-tiny.weights.part     a download in progress, resumed by the next try
    .verified/yolov3-tiny.weights  signed (sha256, size, mtime, ctime, inode) of its last good hash
    .locks/, .archives/          inter-process locks; source archives being unpacked
    derived/yolov3-tiny-416x416-<key>.onnx (+ .json)  compiled graphs, keyed by what they are
                                 made from (cfg, weights' sha256, size, compiler), each with a
                                 signed record of that key and of the graph's own sha256

cfg and names files ship inside the package and are checked against the registry, never
downloaded.

The chain of trust ends outside the store: at the registry's sha256 (shipped in the package)
for downloaded files, and at a per-user signing key (`yolocli.models.seal`) for the store's own
records. A stamp in ``.verified/`` lets a run use a store file without re-hashing 250 MB, as
long as its signature holds, the file has the same size, modification time, status-change
time (ctime, which no user can set back) and inode as when it last hashed correctly, and the
stamp is less than 30 days old (`STAMP_TRUSTED_FOR`, by the stamp file's own modification
time). Otherwise the file is hashed again on its next use; one that no longer matches is
fetched again. A failed `Store.check` (``yolocli models verify``, which always re-hashes)
removes the stamp, so the file is refused until it hashes correctly again.

A compiled graph (`Store.derived`) is used only if its record is signed by this user, names
the key asked for (which covers the weights' sha256, checked against the bytes compiled), and
the graph hashes to the record's sha256 (or is unchanged since it did, by the same stat
fields). Anything else is compiled again; a store that cannot be written (read-only, full, or
another user's) gets the graph in a private temporary folder instead. Nothing in the store is
written through a symbolic link: a link planted at a ``.part`` name is refused.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import functools
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from yolocli.errors import ModelError, StoreError
from yolocli.io.files import (
    clean_stale_temporaries,
    locked,
    part_path,
    sha256_file,
    write_atomic,
    write_failure,
)
from yolocli.models import seal
from yolocli.models.registry import FileSpec, ModelSpec, Origin, config_dir, load_registry

if TYPE_CHECKING:
    from yolocli.models.download import Downloader

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
    stale: bool = False  # a leftover that was never trusted (an older yolocli's graph): removed


@dataclass
class Store:
    """A folder of verified model files, and the rules for filling it."""

    root: Path
    mirror: str | None = None
    offline: bool = False
    timeout: float | None = None  # read timeout for downloads (None: the default)
    progress: bool = False  # download progress bars on stderr
    stamp_trusted_for: float = STAMP_TRUSTED_FOR  # seconds; an older stamp means re-hash
    key_file: Path | None = None  # signs the store's records (None: `seal.default_key_file`)

    @property
    def signing_key(self) -> Path:
        """The file holding the key that signs this store's records (outside the store)."""
        return self.key_file or seal.default_key_file()

    @cached_property
    def downloader(self) -> Downloader:
        """The downloader (imported on first need: installed models never load the network)."""
        from yolocli.models import pypi
        from yolocli.models.download import Downloader, Policy

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
        if not seal.verified(stamp, "stamp:" + spec.name, self.signing_key):
            return False
        return bool(stamp == {**_stamp(spec, st), seal.FIELD: stamp[seal.FIELD]}) and (
            age < self.stamp_trusted_for
        )

    def _write_stamp(self, spec: FileSpec, path: Path) -> None:
        try:
            stamp = seal.sign(_stamp(spec, path.stat()), "stamp:" + spec.name, self.signing_key)
            if stamp is None:
                return  # no key: every use re-hashes
            # replaced, never written through: a link planted in .verified/ is not followed
            write_atomic(self._stamp_path(spec), json.dumps(stamp).encode())
        except OSError as err:  # only costs a re-hash next time
            log.debug("cannot record verification of %s: %s", path, err)

    def forget_file(self, path: Path) -> None:
        """Remove the stamp of store file ``path`` (found not to be what its stamp says)."""
        try:
            name = path.relative_to(self.root).as_posix()
        except ValueError:
            return
        self._forget(FileSpec(name, 0, "", ()))

    def _forget(self, spec: FileSpec) -> None:
        """Remove ``spec``'s stamp: its file is hashed (and refused if wrong) on next use."""
        try:
            self._stamp_path(spec).unlink(missing_ok=True)
        except OSError as err:
            log.warning("cannot remove the stale stamp %s: %s", self._stamp_path(spec), err)

    def check(self, spec: FileSpec) -> Verdict:
        """Re-hash the local copy of ``spec`` and say whether it is the registered file; a
        file that is not loses its stamp, so no later run uses it unhashed."""
        verdict = self._check(spec)
        if verdict.problem is not None and not spec.bundled:
            self._forget(spec)
        return verdict

    def _check(self, spec: FileSpec) -> Verdict:
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
        action = local_action(dest.is_file(), self._stamp_current(spec, dest))
        if action is Action.HASH:  # hashed without a lock: a read-only store works
            action = local_action(True, False, self.check(spec).problem is None)
        if action is Action.USE:
            return dest
        if action is Action.REFETCH and self.offline:
            raise self._corrupt_offline(dest)
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
                    raise self._corrupt_offline(dest)
                log.warning("%s is corrupt (sha256 mismatch); downloading it again", dest)
                dest.unlink()
                self._stamp_path(spec).unlink(missing_ok=True)
            log.info("downloading %s (%.1f MB) into %s", spec.name, spec.size / 1e6, self.root)
            from yolocli.models.download import FetchFailed

            try:
                self.downloader.install(spec, dest, self.origins(spec))
            except FetchFailed as err:
                raise err.with_hint(self._ways_forward(spec)) from None
            self._write_stamp(spec, dest)
            log.info("installed %s", dest)
            return dest

    @staticmethod
    def _corrupt_offline(dest: Path) -> StoreError:
        return StoreError(
            f"{dest} is corrupt (sha256 mismatch) and {ENV_OFFLINE} is set, so it cannot be "
            "downloaded again"
        )

    def derived(
        self,
        name: str,
        key: str,
        build: Callable[[], bytes],
        about: Mapping[str, str] | None = None,
        *,
        private: bool = True,
    ) -> Path:
        """A file made from other files (a compiled ONNX graph), cached under ``derived/``.

        ``key`` (hex) names everything the file is made from (hashes of its inputs, the
        maker's version): a new key makes a new file. Beside the file, a signed record holds
        the key, the file's sha256 and ``about`` (what it was made from, for people). A cached
        file is used only under a record that verifies (`yolocli.models.seal`), for this key, and
        only if the file hashes to the record's sha256 or is unchanged since it did; anything
        else is made again. A store that cannot be written (read-only, full, another user's)
        gets the file in a private temporary folder, for this process; with ``private=False``
        (a cache that only saves time) a `StoreError` instead, before anything is built.
        Works offline.
        """
        dest = self.derived_path(name, key)
        if self._derived_good(dest, key):
            return dest  # no lock: a read-only store works
        with contextlib.ExitStack() as stack:
            problem: OSError | StoreError | None = None
            try:
                if not seal.available(self.signing_key):
                    raise StoreError(f"no signing key could be read or made at {self.signing_key}")
                dest.parent.mkdir(parents=True, exist_ok=True)
                stack.enter_context(locked(dest))
            except (OSError, StoreError) as err:
                # the system's own reason (read-only, out of space), not the download's wording
                problem = err.__cause__ if isinstance(err.__cause__, OSError) else err
            if problem is None and self._derived_good(dest, key):
                return dest  # another process made it while this one waited
            if problem is not None and not private:
                raise StoreError(f"the model store cannot keep {dest.name}: {problem}")
            data = build()
            if problem is None:
                try:
                    self._write_derived(dest, key, data, about or {})
                    return dest
                except OSError as err:
                    problem = err
                    for p in (dest, _record_path(dest)):
                        with contextlib.suppress(OSError):
                            p.unlink()
                    if not private:
                        raise StoreError(f"the model store cannot keep {dest.name}: {err}") from err
            return _private_copy(dest, data, problem, self.root)

    def derived_path(self, name: str, key: str) -> Path:
        """Where `derived` keeps the file ``name`` made for ``key`` (for a file that must name
        itself, as ONNX Runtime's packed graph does: `yolocli.engines.onnxruntime`)."""
        return self.root / "derived" / f"{Path(name).stem}-{key[:16]}{Path(name).suffix}"

    def _derived_record(self, dest: Path, key: str | None = None) -> dict[str, object] | None:
        """The signed record of derived file ``dest`` (for ``key``, if given), or None."""
        try:
            record = json.loads(_record_path(dest).read_text())
        except (OSError, ValueError):
            return None
        if not seal.verified(record, "derived:" + dest.name, self.signing_key):
            return None
        if key is not None and record.get("key") != key:
            return None
        return dict(record)

    def _derived_good(self, dest: Path, key: str) -> bool:
        """True if ``dest`` is the file its signed record for ``key`` describes."""
        record = self._derived_record(dest, key)
        if record is None:
            return False
        try:
            st = dest.stat()
        except OSError:
            return False
        checked = record.get("checked")
        fresh = isinstance(checked, float) and time.time() - checked < self.stamp_trusted_for
        if fresh and record.get("file") == _fingerprint(st):
            return True
        if st.st_size != record.get("bytes") or sha256_file(dest) != record.get("sha256"):
            log.warning("%s does not match its record; compiling it again", dest)
            return False
        with contextlib.suppress(OSError):  # re-hashed and good: spare the next run the hash
            self._write_record(dest, record, dest.stat())
        return True

    def _write_derived(self, dest: Path, key: str, data: bytes, about: Mapping[str, str]) -> None:
        write_atomic(dest, data)
        record: dict[str, object] = {
            "key": key,
            "sha256": hashlib.sha256(data).hexdigest(),
            "bytes": len(data),
            "made_from": dict(about),
        }
        self._write_record(dest, record, dest.stat())

    def _write_record(self, dest: Path, record: Mapping[str, object], st: os.stat_result) -> None:
        body = {**record, "file": _fingerprint(st), "checked": time.time()}
        body.pop(seal.FIELD, None)
        signed = seal.sign(body, "derived:" + dest.name, self.signing_key)
        if signed is None:
            raise OSError(errno.EACCES, f"no signing key ({self.signing_key})")
        write_atomic(_record_path(dest), json.dumps(signed, indent=1).encode())

    def compiled_graphs(self, model: str | None = None) -> list[Path]:
        """The compiled graphs in ``derived/`` (of registry model or cfg name ``model``, if
        given), by name; nothing is hashed."""
        try:
            names = sorted(os.listdir(self.root / "derived"))
        except OSError:
            return []
        found = []
        for name in names:
            m = _GRAPH.fullmatch(name)
            if (m and (model is None or m["model"] == model)) or (
                not m and model is None and _MADE_FROM_ONNX.fullmatch(name)
            ):
                found.append(self.root / "derived" / name)
        return found

    def check_derived(self) -> list[Verdict]:
        """Re-hash every compiled graph against its signed record; one that fails is removed
        (it is compiled again when next needed)."""
        verdicts = []
        for path in self.compiled_graphs():
            record = self._derived_record(path)
            spec = FileSpec(path.relative_to(self.root).as_posix(), 0, "", ())
            problem = None
            # an older yolocli's graph: a bare manifest, no record; never used by this one
            stale = record is None and not _record_path(path).exists()
            if stale:
                problem = "made by an older yolocli (no signed record), never used by this one"
            elif record is None:
                problem = "its record is not signed by this user (another user's, or forged)"
            else:
                actual = sha256_file(path)
                if actual != record.get("sha256"):
                    problem = f"sha256 mismatch: recorded {record.get('sha256')}, got {actual}"
            if problem is not None:
                try:
                    self._remove_graph(path)
                    problem += "; removed (compiled again when needed)"
                except StoreError as err:
                    problem += f"; {err}"
            verdicts.append(Verdict(spec, path, problem, stale))
        return verdicts

    def _remove_graph(self, path: Path) -> tuple[int, int]:
        """Delete a compiled graph, its record and any older manifest: (bytes freed, files)."""
        freed = files = 0
        for p in (path, _record_path(path), path.with_name(path.name + ".sha256")):
            try:
                size = p.lstat().st_size
                p.unlink()
            except FileNotFoundError:
                continue
            except OSError as err:
                raise StoreError(f"cannot remove {p}: {os.strerror(err.errno or 0)}") from err
            freed += size
            files += p == path
        return freed, files

    def clean(self, *, dry_run: bool = False) -> tuple[int, int]:
        """Delete every compiled graph (each is made again when next needed), and anything
        else ``derived/`` holds that yolocli wrote; (graphs, bytes) freed or, with
        ``dry_run``, that would be."""
        graphs = self.compiled_graphs()
        if dry_run:
            return len(graphs), sum(_size_of(p) + _size_of(_record_path(p)) for p in graphs)
        freed = count = 0
        for path in graphs:
            size, files = self._remove_graph(path)
            freed, count = freed + size, count + files
        folder = self.root / "derived"
        clean_stale_temporaries(folder)
        for leftover in (*folder.glob("*.onnx.sha256"), *folder.glob("*.onnx.json")):
            if not leftover.with_suffix("").exists():  # a record or manifest without its graph
                with contextlib.suppress(OSError):
                    freed += leftover.stat().st_size
                    leftover.unlink()
        return count, freed

    def ensure_model(self, model: ModelSpec) -> ModelFiles:
        """All three files of ``model``, verified, fetching what is missing."""
        return ModelFiles(
            cfg=self.ensure(model.cfg),
            weights=self.ensure(model.weights),
            names=self.ensure(model.names),
        )

    def remove(self, model: ModelSpec) -> int:
        """Delete the downloaded files of ``model``, any partial download and its compiled
        graphs; bytes freed."""
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
        for graph in self.compiled_graphs(model.name):
            freed += self._remove_graph(graph)[0]
        return freed


def _stamp(spec: FileSpec, st: os.stat_result) -> dict[str, object]:
    return {
        "sha256": spec.sha256,
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "ctime_ns": st.st_ctime_ns,  # set by the kernel on every write: tampering changes it
        "ino": st.st_ino,
    }


def _fingerprint(st: os.stat_result) -> list[int]:
    """What changes when a file's contents may have: size, mtime, ctime (which no user can
    set back), inode and device."""
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


# A compiled graph's name: <model or cfg name>-<W>x<H>-<16 hex of its key>.onnx
# A compiled graph: MODEL-WxH-KEY.onnx, and what is made from it (an int8 one,
# MODEL-WxH-KEY.int8-KEY.onnx; ONNX Runtime's optimized copy, packed with its weights:
# MODEL-WxH-KEY.ort-KEY.bin, .onnx before that was packed); an ONNX model's own copies have no
# size.
_GRAPH = re.compile(
    r"(?P<model>.+)-(?P<w>\d+)x(?P<h>\d+)-(?P<key>[0-9a-f]{16})(?:\.(?:ort|int8)-[0-9a-f]{16})*"
    r"\.(?:onnx|bin)"
)
_MADE_FROM_ONNX = re.compile(r".+\.(?:ort|int8)-[0-9a-f]{16}\.(?:onnx|bin)")


def graph_model(path: Path) -> str | None:
    """The model (or custom cfg) name a compiled graph's file name says it is made from."""
    m = _GRAPH.fullmatch(path.name)
    return m["model"] if m else None


def _record_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".json")


def _size_of(path: Path) -> int:
    try:
        return path.lstat().st_size
    except OSError:
        return 0


@functools.cache
def _private_folder(uid: int) -> Path:
    """A folder only user ``uid`` can read, removed when the process that made it exits."""
    folder = Path(tempfile.mkdtemp(prefix="yolocli-graphs-"))
    pid = os.getpid()

    def remove() -> None:
        if os.getpid() == pid:  # not in a forked child: the folder is its parent's
            shutil.rmtree(folder, ignore_errors=True)

    atexit.register(remove)
    return folder


# (user, derived file name) -> its private copy, made once a process
_PRIVATE: dict[tuple[int, str], Path] = {}


def is_private_copy(path: Path) -> bool:
    """True if ``path`` is a compiled graph this process wrote outside the store."""
    return path in _PRIVATE.values()


def _private_copy(dest: Path, data: bytes, problem: OSError | StoreError, root: Path) -> Path:
    """``data`` written where only this process's user can reach it, because it cannot be
    cached at ``dest``; says why once, and what to do for the cache to work."""
    made = (os.geteuid(), dest.name)
    if made in _PRIVATE:
        return _PRIVATE[made]
    size = f"{len(data) / 1e6:.1f} MB"
    full = isinstance(problem, OSError) and problem.errno in (
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EFBIG,
    )
    why = os.strerror(problem.errno) if isinstance(problem, OSError) and problem.errno else ""
    why = why or str(problem)
    try:
        folder = _private_folder(os.geteuid())
        path = folder / dest.name
        write_atomic(path, data)
    except OSError as err:
        raise StoreError(
            f"cannot write the compiled graph {dest.name} ({size}) in the model store ({why}) "
            f"nor in the temporary folder ({os.strerror(err.errno or 0)}); free some space, or "
            "set YOLOCLI_HOME to a writable folder"
        ) from err
    if full:
        log.warning(
            "cannot cache the compiled graph %s in %s: %s; this run uses a temporary copy "
            "(free %s there to cache it)",
            dest.name,
            root,
            why,
            size,
        )
    else:
        log.info(
            "the model store %s cannot be written (%s): compiled %s into a temporary folder "
            "for this run",
            root,
            why,
            dest.name,
        )
    _PRIVATE[made] = path
    return path


@functools.cache
def _bundled(spec: FileSpec) -> Path:
    """The shipped copy of a bundled file, checked once per process."""
    path = config_dir() / spec.name
    if not path.is_file() or sha256_file(path) != spec.sha256:
        raise ModelError(
            f"the bundled {spec.name} is missing or altered ({path}); reinstall yolocli"
        )
    return path
