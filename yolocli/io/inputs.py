"""Finding inputs: what the user named, expanded into `Source` items.

Inputs are expanded into `Source` items in a deterministic order; each knows how it was
named (for records) and where its outputs go below the output folder (never outside it).
Expanding never raises for a bad input: every problem (a missing file, a folder that cannot
be read, a FIFO, a glob that matches nothing, stdin that holds no paths) becomes one `Source`
with ``error`` set, so it gets its record and the rest of the batch goes on.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import glob
import logging
import os
import re
import stat
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from yolocli.io.names import IMAGE_EXTENSIONS as IMAGE_EXTENSIONS  # (re-exported)
from yolocli.io.video import (
    Kind,
    classify,
    is_camera_device,
    is_video_name,
    output_stem,
    sniff_video,
)

log = logging.getLogger(__name__)

# Image bytes read from one input (file or stdin), by default. Any compressed photo under the
# pixel limit fits (a 200 MP phone JPEG is 30-100 MB, its PNG about 400 MB), and so does
# uncompressed 8-bit RGB up to about 180 MP; it exists so that /dev/zero, a sparse 10 GB
# "photo" or endless stdin become one error instead of exhausting memory.
DEFAULT_MAX_BYTES = 512 << 20

# The longest path read from stdin or a list file (Linux's PATH_MAX): a "line" longer than this
# is binary data, not a path list, and reading stops there instead of buffering without end.
MAX_PATH_BYTES = 4096


@dataclass(frozen=True)
class Source:
    """One input: ``name`` as the user gave it (or as found in a folder), ``path`` to read
    (None: bytes given directly in ``data``), ``rel`` the relative path of its outputs below
    the output folder. ``error`` is set when the input cannot be used at all;
    ``not_an_image`` marks an input that yielded no image (an empty or unreadable folder, a
    glob that matches nothing, an unreadable list, empty stdin), so callers can count it as
    an input error rather than as an image that failed."""

    name: str
    path: Path | None
    rel: PurePosixPath
    data: bytes | None = None
    error: str | None = None
    not_an_image: bool = False
    kind: Kind = "image"  # or "video" (a file), "camera" or "stream" (live): read frame by frame

    @property
    def is_video(self) -> bool:
        return self.kind != "image"


def is_image_name(path: str | os.PathLike[str]) -> bool:
    return os.path.splitext(os.fspath(path))[1].lower() in IMAGE_EXTENSIONS


def safe_rel(parts: Iterable[str]) -> PurePosixPath:
    """A relative path made only of ordinary names (no root, no '.', no '..')."""
    clean = [p for p in parts if p not in ("", ".", "..", "/") and not p.endswith(":\\")]
    return PurePosixPath(*clean) if clean else PurePosixPath("image")


# -- why an input cannot be used -------------------------------------------------------------

_SPECIAL = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def special_file_error(mode: int) -> str | None:
    """Why a file of this ``st_mode`` is refused as an image (None: a regular file or folder).

    Reading a FIFO waits for a writer, a device never ends: neither is a photo on disk.
    """
    for test, kind in _SPECIAL:
        if test(mode):
            return f"not a regular file ({kind})"
    return None


def os_reason(err: OSError) -> str:
    """A short lower-case reason for a failed system call, without the path."""
    if err.errno == errno.ENOENT:
        return "no such file or folder"
    if err.errno == errno.ENOTDIR:
        return "not a folder: a part of the path is a file"
    text = err.strerror or str(err)
    return text[:1].lower() + text[1:]


def _folder_error(err: OSError) -> str:
    return f"cannot read this folder: {os_reason(err)}"


# -- folders --------------------------------------------------------------------------------


def walk_folder(root: Path, exclude: Path | None = None) -> Iterator[Source]:
    """`Source` items for the image files below ``root``, recursively: a folder's files
    (sorted by name) before its subfolders (sorted by name), outputs mirroring the tree.

    ``exclude`` (the output folder) is skipped, so a second run never reads its own outputs.
    Symlinked folders are not followed (no cycles); symlinked files are listed. A subfolder
    that cannot be read, and a FIFO, socket or device with an image name, each give one
    error `Source`: skipping them silently would hide inputs from the user.
    """
    try:
        st = os.stat(exclude) if exclude is not None else None
        excluded = (st.st_dev, st.st_ino) if st is not None else None
    except (OSError, ValueError):
        excluded = None  # an output folder that does not exist yet holds no inputs
    yield from _walk(root, (), excluded)


def _walk(root: Path, parts: tuple[str, ...], excluded: tuple[int, int] | None) -> Iterator[Source]:
    here = root.joinpath(*parts)
    try:
        with os.scandir(here) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as err:
        yield Source(str(here), here, safe_rel(parts), error=_folder_error(err), not_an_image=True)
        return
    folders = []
    for entry in entries:
        if _is_dir(entry, follow=False):
            folders.append(entry)
            continue
        kind: Kind = "image" if is_image_name(entry.name) else "video"
        if kind == "video" and not is_video_name(entry.name):
            continue
        rel = safe_rel((*parts, entry.name))
        error = None
        try:
            # A link's target is checked when it is read; is_file and is_symlink come from
            # the listing itself, so only an odd entry costs a stat.
            if not entry.is_file(follow_symlinks=False) and not entry.is_symlink():
                error = special_file_error(entry.stat(follow_symlinks=False).st_mode)
        except OSError as err:  # the entry vanished or cannot be examined
            error = os_reason(err)
        yield Source(str(here / entry.name), here / entry.name, rel, error=error, kind=kind)
    for entry in folders:
        if excluded is not None:
            try:
                st = entry.stat(follow_symlinks=False)
                if (st.st_dev, st.st_ino) == excluded:
                    continue
            except OSError:
                pass  # _walk reports it when it cannot list it
        if _is_output_folder(entry):
            continue
        yield from _walk(root, (*parts, entry.name), excluded)


# A folder holding this file is one of yolocli's output folders (yolocli.io.outputs.JOURNAL).
OUTPUT_MARK = ".yolocli-journal"
_quiet = threading.local()  # set by `unannounced`: a look ahead says nothing


@contextmanager
def unannounced() -> Iterator[None]:
    """Expand without notes (a first look at the inputs, to count them, say: the run that
    follows says what it skips)."""
    _quiet.on = True
    try:
        yield
    finally:
        _quiet.on = False


def _is_output_folder(entry: os.DirEntry[str]) -> bool:
    """True (and said) if a folder met in a walk is yolocli's own output folder: its
    annotated copies are not new inputs. A folder named on the command line is still read."""
    if not os.path.lexists(os.path.join(entry.path, OUTPUT_MARK)):
        return False
    if not getattr(_quiet, "on", False):
        log.info(
            "skipping %s%s: a yolocli output folder (it holds %s); name it to detect in it",
            entry.path,
            os.sep,
            OUTPUT_MARK,
        )
    return True


# -- paths ----------------------------------------------------------------------------------


def expand_paths(
    items: Iterable[str], out_dir: Path | None = None, base: str | None = None
) -> Iterator[Source]:
    """`Source` items for file and folder paths, in the order given (folders sorted inside).

    Where outputs go (below the output folder), one rule however a path is spelled: a file
    lands at its file name (``shots/a.jpg``, ``/abs/a.jpg`` and ``../a.jpg`` all give
    ``a.jpg``); a folder's images keep their place inside that folder (``photos/`` ->
    ``a.jpg``, ``trip/b.jpg``). With ``base`` (the fixed folder of a glob pattern), each path
    keeps its place below ``base`` instead (``shots/**/*.jpg`` -> ``day1/a.jpg``).
    """
    for item in items:
        path = Path(item)
        rel = _rel_for(path, base)
        try:
            mode = os.stat(path).st_mode
        except (OSError, ValueError) as err:
            yield Source(item, path, rel, error=_stat_error(path, err))
            continue
        if stat.S_ISDIR(mode):
            found = False
            for source in walk_folder(path, out_dir):
                found = True
                yield source if base is None else replace(source, rel=rel / source.rel)
            if not found:
                error = "no images or videos in this folder"
                yield Source(item, path, rel, error=error, not_an_image=True)
        elif is_camera_device(path, mode):
            yield Source(item, path, safe_rel([output_stem(item, "camera")]), kind="camera")
        else:
            kind: Kind = "video" if _looks_like_video(path, mode) else "image"
            yield Source(item, path, rel, error=special_file_error(mode), kind=kind)


def _looks_like_video(path: Path, mode: int) -> bool:
    """A video by its name, or (a regular file without an image name) by its first bytes."""
    if is_video_name(path):
        return True
    if is_image_name(path) or not stat.S_ISREG(mode):
        return False
    try:
        with open(path, "rb") as f:
            head = f.read(16)
        return sniff_video(head) and sniff_image(head) is None  # AVIF is ISO BMFF too
    except OSError:
        return False  # reading it as an image reports why


def _stat_error(path: Path, err: OSError | ValueError) -> str:
    if isinstance(err, ValueError):  # os.stat refuses a NUL byte before the system sees it
        return "not a usable path: it contains a NUL byte"
    if err.errno == errno.ENOENT and os.path.islink(path):
        return "dangling symbolic link"
    return os_reason(err)


def _rel_for(path: Path, base: str | None = None) -> PurePosixPath:
    """Where a named path's outputs go: its file name, or its place below ``base``."""
    if base is not None:
        return safe_rel(Path(os.path.relpath(path, base or os.curdir)).parts)
    return safe_rel([Path(os.path.normpath(path)).name])  # "a/../b.jpg" is "b.jpg"


def glob_base(pattern: str) -> str:
    """The fixed folder a glob pattern starts from (``shots/**/*.jpg`` -> ``shots``; ``*.jpg``
    -> ``''``): its matches keep their place below it."""
    head = pattern
    while glob.has_magic(head):
        head = os.path.dirname(head)
    return head


# -- globs ----------------------------------------------------------------------------------


def match_glob(pattern: str) -> list[str]:
    """What ``glob.glob(pattern, recursive=True)`` matches, sorted and without repeats, except
    that ``**`` neither matches nor enters a symlinked folder: a link back up the tree
    (``sub/up -> ..``) would list every file again at each level, up to the system's limit
    on link depth. Folder walks refuse links for the same reason."""
    return sorted({path for path in _iglob(pattern, dironly=False) if path})


def _iglob(pattern: str, dironly: bool) -> Iterator[str]:
    """`glob._iglob`, in short: ``dironly`` when the result is a parent for the next part."""
    head, tail = os.path.split(pattern)
    if not glob.has_magic(pattern):
        if os.path.lexists(pattern) if tail else os.path.isdir(head):
            yield pattern
        return
    if not head:
        yield from _in_folder("", tail, dironly)
        return
    parents = _iglob(head, dironly=True) if head != pattern and glob.has_magic(head) else [head]
    for parent in parents:
        for name in _in_folder(parent, tail, dironly):
            yield os.path.join(parent, name)


def _in_folder(folder: str, part: str, dironly: bool) -> Iterator[str]:
    """Names in ``folder`` matching one part of a pattern ('' for the folder itself)."""
    if part == "**":
        yield ""
        yield from _below(folder, dironly)
    elif glob.has_magic(part):
        yield from fnmatch.filter(_listdir(folder, dironly, hidden=part.startswith(".")), part)
    elif os.path.lexists(os.path.join(folder, part)) if part else os.path.isdir(folder):
        yield part


def _listdir(folder: str, dironly: bool, hidden: bool) -> list[str]:
    try:
        with os.scandir(folder or os.curdir) as it:
            return [
                e.name
                for e in it
                if (hidden or not e.name.startswith(".")) and (not dironly or _is_dir(e, True))
            ]
    except OSError:
        return []  # like glob: a folder that cannot be read matches nothing


def _below(folder: str, dironly: bool) -> Iterator[str]:
    """Every non-hidden name below ``folder``, relative to it, sorted; never through links."""
    try:
        with os.scandir(folder or os.curdir) as it:
            entries = sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        if _is_dir(entry, follow=False):
            yield entry.name
            for name in _below(os.path.join(folder, entry.name), dironly):
                yield os.path.join(entry.name, name)
        elif not dironly and not _is_dir(entry, follow=True):
            yield entry.name


def _is_dir(entry: os.DirEntry[str], follow: bool) -> bool:
    try:
        return entry.is_dir(follow_symlinks=follow)
    except OSError:
        return False


# -- path lists: stdin and @files -----------------------------------------------------------


class _NotAPathList(Exception):
    """The stream holds no separator within `MAX_PATH_BYTES`, or a path holds a control byte:
    binary data, not paths."""


def _read_paths(stream: BinaryIO, null: bool, first: bytes, strip: bool) -> Iterator[str]:
    """Paths from ``stream`` one per line (or NUL-terminated), read lazily as they come.

    Raises `_NotAPathList` once `MAX_PATH_BYTES` pass without a path, so that /dev/zero or a
    binary file ends with one error instead of buffering (or skipping empty entries) forever.
    """
    sep = b"\0" if null else b"\n"
    pending = first
    empty = 0  # bytes of separators since the last path
    while True:
        *complete, pending = pending.split(sep)
        for raw in complete:
            raw = raw if null else raw.rstrip(b"\r")
            if strip:
                raw = raw.strip()
            if len(raw) > MAX_PATH_BYTES or _control_bytes(null).search(raw):
                raise _NotAPathList
            if raw:
                empty = 0
                yield os.fsdecode(raw)
            else:
                empty += len(raw) + 1
                if empty > MAX_PATH_BYTES:
                    raise _NotAPathList
        if len(pending) > MAX_PATH_BYTES:
            raise _NotAPathList
        chunk = stream.read1(1 << 16) if hasattr(stream, "read1") else stream.read(1 << 16)
        if not chunk:
            break
        pending += chunk
    tail = pending if null else pending.rstrip(b"\r")
    if strip:
        tail = tail.strip()
    if _control_bytes(null).search(tail):
        raise _NotAPathList
    if tail:
        yield os.fsdecode(tail)


def _expand_list(
    name: str, rel: PurePosixPath, paths: Iterator[str], null: bool, out_dir: Path | None
) -> Iterator[Source]:
    """Sources for the paths of a list, and one error where the list stops being paths."""
    try:
        for path in paths:
            yield from expand_paths([path], out_dir)
    except _NotAPathList:
        sep = "NUL" if null else "newline"
        yield Source(
            name,
            None,
            rel,
            error=(
                f"{'stdin' if name == '-' else 'the list'} is not a list of paths: binary data, "
                f"or no path within {MAX_PATH_BYTES} bytes (paths not {sep}-separated?)"
            ),
            not_an_image=True,
        )
    except OSError as err:
        yield Source(
            name, None, rel, error=f"cannot read the list: {os_reason(err)}", not_an_image=True
        )


def _read_limited(stream: BinaryIO, limit: int) -> bytes:
    """Up to ``limit`` bytes from ``stream`` (fewer only at its end)."""
    parts = []
    while limit > 0:
        chunk = stream.read(min(limit, 1 << 20))
        if not chunk:
            break
        parts.append(chunk)
        limit -= len(chunk)
    return b"".join(parts)


def size_text(n: int) -> str:
    """``n`` bytes for a person: '512 MiB', '1.9 KiB', '10 GiB', '999 B'."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            break
        value /= 1024
    return f"{value:.0f} {unit}" if unit == "B" or value == int(value) else f"{value:.1f} {unit}"


def over_limit(size: int | None, max_bytes: int) -> str:
    """The error for an input over the byte limit (``size`` None: not known, only over)."""
    have = f"{size_text(size)}, " if size is not None else ""
    return f"{have}over the {size_text(max_bytes)} limit on one image's bytes"


@contextlib.contextmanager
def open_waiting(path: Path, patience: float = 1.0) -> Iterator[BinaryIO]:
    """``path`` open for reading. A FIFO (``@<(find ...)``, ``mkfifo``) to which nothing is
    written within ``patience`` seconds makes yolocli say, once, that it is waiting for a
    writer, rather than hang in silence."""
    import select

    try:
        is_fifo = stat.S_ISFIFO(os.stat(path).st_mode)
    except (OSError, ValueError):
        is_fifo = False  # opening it reports why
    if not is_fifo:
        with path.open("rb") as stream:
            yield stream
        return
    fd = os.open(path, os.O_RDONLY | _NONBLOCK)  # opens at once, writer or not
    try:
        if not select.select([fd], [], [], patience)[0]:
            log.warning(
                "%s is a FIFO and nothing has been written to it yet: waiting for a writer "
                "(Ctrl-C to stop)",
                path,
            )
            select.select([fd], [], [])
        os.set_blocking(fd, True)  # the writer is there: read as it writes, to its end
    except BaseException:
        os.close(fd)
        raise
    with open(fd, "rb") as stream:
        yield stream


_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


# -- everything -----------------------------------------------------------------------------


# Leading bytes of the formats OpenCV decodes, to tell image bytes on stdin from a path list.
_MAGIC = (
    (b"\xff\xd8\xff", ".jpg"),
    (b"\x89PNG\r\n\x1a\n", ".png"),
    (b"II*\x00", ".tif"),
    (b"MM\x00*", ".tif"),
    (b"II+\x00", ".tif"),
    (b"MM\x00+", ".tif"),
    (b"GIF87a", ".gif"),
    (b"GIF89a", ".gif"),
    (b"#?RADIANCE", ".hdr"),
    (b"#?RGBE", ".hdr"),
    (b"\x59\xa6\x6a\x95", ".ras"),
    (b"\0\0\0\x0cjP  \r\n\x87\n", ".jp2"),
    (b"\xff\x4f\xff\x51", ".j2k"),
    (b"\x76\x2f\x31\x01", ".exr"),
)
_PNM = re.compile(rb"P([1-6fF][\s#]|7\n)")


def sniff_image(head: bytes) -> str | None:
    """The file extension for image bytes starting with ``head`` (16 bytes are enough), or
    None if they start no image format OpenCV decodes."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return ".webp"
    if head[:2] == b"BM" and head[6:10] == b"\0\0\0\0":  # reserved bytes: never in a path list
        return ".bmp"
    if head[4:8] == b"ftyp" and head[8:12] in (b"avif", b"avis"):
        return ".avif"
    if _PNM.match(head):
        return ".pfm" if head[1:2] in b"fF" else ".pnm"
    for magic, ext in _MAGIC:
        if head.startswith(magic):
            return ext
    return None


def expand_sources(
    items: Iterable[str],
    *,
    stdin: BinaryIO | None = None,
    null: bool = False,
    out_dir: Path | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    source_type: str = "auto",
) -> Iterator[Source]:
    """Every input the user named, lazily, in order; never raises for a bad input.

    An item is a file, a folder (recursive, sorted, image extensions only), a glob pattern
    (expanded here, so it works quoted), ``@list.txt`` (one path a line), or ``-``: stdin,
    which holds either paths (newline- or, with ``null``, NUL-separated) or one image's
    bytes (at most ``max_bytes`` of them), reported as image "-". Video files (by extension
    or content) become one `Source` of kind "video"; a camera (``0``, ``/dev/video0``) or a
    stream URL (rtsp, rtmp, http) one of kind "camera" or "stream" (`yolocli.io.video.classify`,
    ``source_type`` settling what a bare number is).
    """
    for item in items:
        live = classify(item, source_type) if item != "-" else None
        if live is not None:
            yield Source(item, None, safe_rel([output_stem(item, live)]), kind=live)
        elif item == "-":
            if stdin is None:
                raise ValueError("'-' needs a stdin stream")
            yield from _expand_stdin(stdin, null, out_dir, max_bytes)
        elif item.startswith("@") and len(item) > 1:
            listing = Path(item[1:])
            rel = safe_rel(listing.parts)
            opened = contextlib.ExitStack()
            try:
                stream = opened.enter_context(open_waiting(listing))
            except (OSError, ValueError) as err:
                error = f"cannot read the list: {_stat_error(listing, err)}"
                yield Source(item, listing, rel, error=error, not_an_image=True)
                continue
            with opened:
                paths = _read_paths(stream, False, b"", strip=True)
                yield from _expand_list(item, rel, paths, False, out_dir)
        elif glob.has_magic(item) and not os.path.lexists(item):
            matches = match_glob(item)
            if not matches:
                error = "no file matches this pattern"
                rel = safe_rel(["unmatched"])
                yield Source(item, None, rel, error=error, not_an_image=True)
            yield from expand_paths(matches, out_dir, base=glob_base(item))
        else:
            yield from expand_paths([item], out_dir)


def _expand_stdin(
    stdin: BinaryIO, null: bool, out_dir: Path | None, max_bytes: int
) -> Iterator[Source]:
    """Stdin is one image's bytes (a format `sniff_image` knows), or a list of paths; anything
    else (a video, random bytes, an image in a format yolocli cannot read) is one error, never
    a list of "paths" cut out of binary data."""
    rel = PurePosixPath("stdin")
    try:
        head = _read_limited(stdin, 16)
        if not head:
            yield Source("-", None, rel, error="nothing arrived on stdin", not_an_image=True)
            return
        ext = sniff_image(head)
        if ext is not None:
            data = head + _read_limited(stdin, max_bytes + 1 - len(head))
            rel = PurePosixPath("stdin" + ext)
            if len(data) > max_bytes:  # what is left on stdin stays unread
                yield Source("-", None, rel, error=over_limit(None, max_bytes))
            else:
                yield Source("-", None, rel, data=data)
            return
    except OSError as err:
        yield Source("-", None, rel, error=f"cannot read stdin: {os_reason(err)}")
        return
    if sniff_video(head) or _control_bytes(null).search(head):
        what = "a video" if sniff_video(head) else "binary data"
        yield Source("-", None, rel, error=_not_paths(what), not_an_image=True)
        return
    paths = _read_paths(stdin, null, head, strip=False)
    yield from _expand_list("-", rel, paths, null, out_dir)


def _not_paths(what: str) -> str:
    return (
        f"stdin holds {what}, neither an image yolocli reads (JPEG, PNG, BMP, WebP, TIFF, GIF, "
        "...) nor a list of paths: give a video, or an image in another format, by its path"
    )


# Bytes a list of paths does not hold: control characters other than tab, CR and LF (with -0,
# NUL separates the paths). A name may hold them, but never does in practice; binary data
# (a video, random bytes) holds them within its first few bytes.
_BINARY = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_BINARY_NUL_SEPARATED = re.compile(rb"[\x01-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _control_bytes(null: bool) -> re.Pattern[bytes]:
    return _BINARY_NUL_SEPARATED if null else _BINARY
