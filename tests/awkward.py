"""Build the awkward folder of issue 4: every kind of image and non-image a real disk holds."""

from __future__ import annotations

import io
import os
import shutil
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from tests.conftest import DATA

BASE = cv2.imread(str(DATA / "images" / "grace_hopper.jpg"))  # 512 x 600 BGR, has a person


@dataclass(frozen=True)
class Expect:
    """What the record of one file must say."""

    width: int | None = None
    height: int | None = None
    error: str | None = None  # a fragment of the error message; None: must succeed


def _png_bomb() -> bytes:
    """A valid PNG header claiming 40000 x 40000 pixels (1.6e9: over any pixel limit)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", 40000, 40000, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 1000))
        + chunk(b"IEND", b"")
    )


def _encode(ext: str, image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(ext, image)
    assert ok
    return buf.tobytes()


def build(root: Path) -> dict[str, Expect]:
    """Fill ``root`` and return, for each file (relative path), what its record must say."""
    root.mkdir(parents=True, exist_ok=True)
    rgb = Image.fromarray(BASE[:, :, ::-1])
    files: dict[str, bytes] = {}
    expect: dict[str, Expect] = {}

    def add(name: str, data: bytes, want: Expect) -> None:
        files[name] = data
        expect[name] = want

    ok = Expect(512, 600)
    add("dog.jpg", _encode(".jpg", BASE), ok)
    add("dog.png", _encode(".png", BASE), ok)  # same stem: must get its own output
    add("UPPER.JPG", _encode(".jpg", BASE), ok)
    add("ünïcode name with spaces.jpg", _encode(".jpg", BASE), ok)
    # stored landscape (600 wide), EXIF orientation 6: displayed (and detected) portrait
    exif = Image.Exif()
    exif[0x0112] = 6
    sideways = Image.fromarray(np.ascontiguousarray(np.rot90(BASE, 1)[:, :, ::-1]))
    buf = io.BytesIO()
    sideways.save(buf, "JPEG", exif=exif.tobytes())
    add("rotated.jpg", buf.getvalue(), Expect(512, 600))
    buf = io.BytesIO()
    rgb.convert("CMYK").save(buf, "JPEG")
    add("cmyk.jpg", buf.getvalue(), ok)
    add("gray.png", _encode(".png", cv2.cvtColor(BASE, cv2.COLOR_BGR2GRAY)), ok)
    add("rgba.png", _encode(".png", cv2.cvtColor(BASE, cv2.COLOR_BGR2BGRA)), ok)
    add("deep.png", _encode(".png", BASE.astype(np.uint16) * 257), ok)
    add("deep.tif", _encode(".tif", BASE.astype(np.uint16) * 257), ok)
    add("sub/inner.webp", _encode(".webp", BASE), ok)
    frames = [Image.fromarray(np.ascontiguousarray(BASE[:, :, ::-1] // k)) for k in (1, 2, 3)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    add("animated.gif", buf.getvalue(), ok)  # the first frame is used
    add("sub/deeper/tiny.bmp", _encode(".bmp", cv2.resize(BASE, (64, 75))), Expect(64, 75))
    add("empty.jpg", b"", Expect(error="empty file"))
    add("notes.png", b"a shopping list, not pixels\n", Expect(error="not an image"))
    add("truncated.jpg", _encode(".jpg", BASE)[:20000], Expect(error="corrupt or truncated JPG"))
    add("truncated.png", _encode(".png", BASE)[:30000], Expect(error="corrupt or truncated PNG"))
    add("bomb.png", _png_bomb(), Expect(error="image too large"))
    add("readme.txt", b"not an image extension: never listed", Expect())
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    del expect["readme.txt"]
    os.symlink("dog.jpg", root / "link.jpg")
    expect["link.jpg"] = ok
    os.symlink("gone.jpg", root / "dangling.jpg")
    expect["dangling.jpg"] = Expect(error="dangling symbolic link")
    return expect


def copies(folder: Path, n: int) -> list[Path]:
    """``n`` real photos (cycled) in ``folder``, for runs long enough to interrupt."""
    folder.mkdir(parents=True, exist_ok=True)
    sources = sorted((DATA / "images").iterdir())
    out = []
    for i in range(n):
        src = sources[i % len(sources)]
        dst = folder / f"{i:03d}-{src.name}"
        shutil.copyfile(src, dst)
        out.append(dst)
    return out
