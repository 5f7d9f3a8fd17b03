"""Finding inputs: what the user named, expanded into `Source` items.

Inputs are expanded into `Source` items in a deterministic order; each knows how it was
named (for records) and where its outputs go below the output folder (never outside it).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

# Read as inputs, and written back in kind (OpenCV encodes all of them); other names get .jpg
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})


@dataclass(frozen=True)
class Source:
    """One input image: ``name`` as the user gave it, ``path`` to read (None: bytes given
    directly), ``rel`` the relative path of its outputs below the output folder."""

    name: str
    path: Path | None
    rel: PurePosixPath
    data: bytes | None = None
    error: str | None = None  # set when the input could not even be found


def is_image_name(path: str | os.PathLike[str]) -> bool:
    return os.path.splitext(os.fspath(path))[1].lower() in IMAGE_EXTENSIONS


def _safe_rel(parts: Iterable[str]) -> PurePosixPath:
    """A relative path made only of ordinary names (no root, no '.', no '..')."""
    clean = [p for p in parts if p not in ("", ".", "..", "/") and not p.endswith(":\\")]
    return PurePosixPath(*clean) if clean else PurePosixPath("image")


def walk_folder(root: Path, exclude: Path | None = None) -> Iterator[Path]:
    """Image files below ``root``, recursively, in sorted order (folders and files by name).

    ``exclude`` (the output folder) is skipped, so a second run never reads its own outputs.
    Symlinked folders are not followed (no cycles); symlinked files are listed.
    """
    excluded = exclude.resolve() if exclude is not None else None
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(
            d for d in dirnames if excluded is None or (here / d).resolve() != excluded
        )
        for name in sorted(filenames):
            if is_image_name(name):
                yield here / name


def expand_paths(items: Iterable[str], out_dir: Path | None = None) -> Iterator[Source]:
    """`Source` items for file and folder paths, in the order given (folders sorted inside).

    Where outputs go (below the output folder): a folder's images mirror their place inside
    it (``photos/`` -> ``a.jpg``, ``trip/b.jpg``); a file named by a relative path mirrors
    that path without any '..' (``shots/a.jpg`` -> ``shots/a.jpg``, ``../x.jpg`` -> ``x.jpg``);
    a file named by an absolute path uses its name. A path that does not exist still yields
    a `Source` (with ``error`` set), so it gets its record and the rest of the batch goes on.
    """
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = False
            for file in walk_folder(path, out_dir):
                found = True
                yield Source(str(file), file, _safe_rel(file.relative_to(path).parts))
            if not found:
                yield Source(item, path, _rel_for(path), error="no images in this folder")
        elif path.exists() or path.is_symlink():
            yield Source(item, path, _rel_for(path))
        else:
            yield Source(item, path, _rel_for(path), error="no such file or folder")


def _rel_for(path: Path) -> PurePosixPath:
    if path.is_absolute():
        return _safe_rel([path.name])
    return _safe_rel(Path(os.path.normpath(path)).parts)  # "a/../b.jpg" is "b.jpg"


# Leading bytes of the formats OpenCV decodes, to tell image bytes on stdin from a path list.
_MAGIC = (
    (b"\xff\xd8\xff", ".jpg"),
    (b"\x89PNG\r\n\x1a\n", ".png"),
    (b"II*\x00", ".tif"),
    (b"MM\x00*", ".tif"),
)


def sniff_image(head: bytes) -> str | None:
    """The file extension for image bytes starting with ``head``, or None if not an image."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return ".webp"
    if head[:2] == b"BM" and head[6:10] == b"\0\0\0\0":  # reserved bytes: never in a path list
        return ".bmp"
    for magic, ext in _MAGIC:
        if head.startswith(magic):
            return ext
    return None


def _stdin_paths(stream: BinaryIO, null: bool, first: bytes) -> Iterator[str]:
    """Paths from ``stream`` one per line (or NUL-terminated), read lazily as they come."""
    sep = b"\0" if null else b"\n"
    pending = first
    while True:
        *complete, pending = pending.split(sep)
        for raw in complete:
            raw = raw if null else raw.rstrip(b"\r")
            if raw:
                yield os.fsdecode(raw)
        chunk = stream.read1(1 << 16) if hasattr(stream, "read1") else stream.read(1 << 16)
        if not chunk:
            break
        pending += chunk
    tail = pending if null else pending.rstrip(b"\r")
    if tail:
        yield os.fsdecode(tail)


def expand_sources(
    items: Iterable[str],
    *,
    stdin: BinaryIO | None = None,
    null: bool = False,
    out_dir: Path | None = None,
) -> Iterator[Source]:
    """Every input the user named, lazily, in order.

    An item is a file, a folder (recursive, sorted, image extensions only), a glob pattern
    (expanded here, so it works quoted), ``@list.txt`` (one path a line), or ``-``: stdin,
    which holds either paths (newline- or, with ``null``, NUL-separated) or one image's
    bytes, reported as image "-".
    """
    for item in items:
        if item == "-":
            if stdin is None:
                raise ValueError("'-' needs a stdin stream")
            head = stdin.read(16)
            ext = sniff_image(head)
            if ext is not None:
                yield Source("-", None, PurePosixPath("stdin" + ext), data=head + stdin.read())
            else:
                yield from expand_paths(_stdin_paths(stdin, null, head), out_dir)
        elif item.startswith("@") and len(item) > 1:
            listing = Path(item[1:])
            try:
                lines = listing.read_text(encoding="utf-8").splitlines()
            except OSError as err:
                yield Source(
                    item,
                    listing,
                    _safe_rel(listing.parts),
                    error=f"cannot read the list: {err.strerror}",
                )
                continue
            yield from expand_paths((line.strip() for line in lines if line.strip()), out_dir)
        elif glob.has_magic(item) and not os.path.lexists(item):
            matches = sorted(glob.glob(item, recursive=True))
            if not matches:
                yield Source(
                    item, None, _safe_rel(["unmatched"]), error="no file matches this pattern"
                )
            yield from expand_paths(matches, out_dir)
        else:
            yield from expand_paths([item], out_dir)


def output_path(out_dir: Path, rel: PurePosixPath, suffix: str | None = None) -> Path:
    """Where an output for ``rel`` goes: inside ``out_dir``, always (``rel`` is sanitized)."""
    safe = _safe_rel(rel.parts)
    if suffix is not None:
        safe = safe.with_suffix(suffix)
    elif safe.suffix.lower() not in IMAGE_EXTENSIONS:
        safe = safe.with_name(safe.name + ".jpg")
    return out_dir.joinpath(*safe.parts)
