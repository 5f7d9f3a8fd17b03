"""Safe file operations shared by the model store, the downloader and the output writer.

Hashing, where partial downloads live (never written through a symbolic link), atomic and
durable renames, inter-process locks, telling an HTML page from a model file, the one error
message for a store that cannot be written, and atomic writes whose temporaries a later run
can recognise and clean up. Kept apart from the downloader so that using installed models
never imports the network stack.

Temporary files are named ``.yolocli-<pid>-<8 hex>.tmp``: hidden, short whatever the final
name's length, without an image extension, and carrying the writer's process id, so that
`clean_stale_temporaries` can tell an orphan (its writer is gone) from a write in progress.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import re
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from yolocli.errors import StoreError

log = logging.getLogger(__name__)


def sha256_file(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def part_path(dest: Path) -> Path:
    """Where the download of ``dest`` accumulates until it is verified."""
    return dest.with_name(dest.name + ".part")


def _refuse_link(path: Path) -> StoreError:
    return StoreError(
        f"refusing to use {path}: it is a symbolic link or not a regular file, never a "
        "download yolocli made; remove it"
    )


def part_size(part: Path) -> int:
    """Bytes already downloaded into ``part`` (0 if absent), refusing anything but a plain file.

    A symbolic link planted at a part name would make the downloader write wherever it
    points, so it is a `StoreError`, never followed.
    """
    try:
        st = os.lstat(part)
    except FileNotFoundError:
        return 0
    except OSError as err:
        raise write_failure(err, part, 0, 0) from err
    if not stat.S_ISREG(st.st_mode):
        raise _refuse_link(part)
    return st.st_size


def open_part(part: Path, *, append: bool) -> BinaryIO:
    """Open ``part`` for writing (appending, or from empty) without following a symbolic link."""
    flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    flags |= os.O_APPEND if append else os.O_TRUNC
    try:
        fd = os.open(part, flags, 0o666)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise _refuse_link(part) from err
        raise write_failure(err, part, 0, 0) from err
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # a FIFO or device planted at the name
        os.close(fd)
        raise _refuse_link(part)
    return os.fdopen(fd, "ab" if append else "wb")


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
    fd = os.open(part, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
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


TEMPORARY_PREFIX = ".yolocli-"
STALE_AFTER = 24 * 3600.0  # seconds: a temporary this old is an orphan, whoever wrote it
# .tmp.mp4: a video's temporary keeps its container's extension (OpenCV picks it by name)
_TEMPORARY = re.compile(r"\.yolocli-(\d+)-[0-9a-f]{8}\.tmp(\.mp4)?")


def temporary_name() -> str:
    """A fresh temporary file name: ``.yolocli-<pid>-<8 hex>.tmp`` (28 characters at most)."""
    return f"{TEMPORARY_PREFIX}{os.getpid()}-{os.urandom(4).hex()}.tmp"


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that ``path`` only ever holds complete contents.

    The temporary file (see `temporary_name`) is short whatever the length of ``path``'s
    name, has no image extension, so a half-written file is never mistaken for an output,
    and is removed if anything fails. It is created with the usual permissions (0666 less
    the umask), unlike ``mkstemp``'s 0600.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(temporary_name())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    except (OSError, OverflowError):
        return False
    return True


def clean_stale_temporaries(folder: Path, *, max_age: float = STALE_AFTER) -> int:
    """Delete yolocli's own orphaned temporaries in ``folder``; how many were removed.

    A file is removed only if its name is exactly yolocli's temporary pattern, it is a
    regular file, and either the process that wrote it is gone or it is older than
    ``max_age`` seconds (a writer's pid may have been reused since). Anything else is left
    alone, and a file that cannot be removed is skipped.
    """
    removed = 0
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        m = _TEMPORARY.fullmatch(entry.name)
        if m is None:
            continue
        try:
            st = entry.stat(follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode):
                continue
            if _alive(int(m.group(1))) and now - st.st_mtime < max_age:
                continue
            os.unlink(entry.path)
        except OSError:
            continue
        removed += 1
    return removed
