"""Reading, decoding and writing images: limits on bytes and pixels, headers, frames."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path, PurePosixPath

import cv2
import numpy as np
import pytest
from PIL import Image

from yolocli.errors import ImageError
from yolocli.io.files import write_atomic
from yolocli.io.images import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_PIXELS,
    decode,
    frame_note,
    image_size,
    read_bytes,
)
from yolocli.io.inputs import IMAGE_EXTENSIONS, Source

PIXELS = np.random.default_rng(0).integers(0, 255, (23, 37, 3), dtype=np.uint8)  # 37 x 23


def source(path: Path) -> Source:
    return Source(str(path), path, PurePosixPath(path.name))


def encode(ext: str, image: np.ndarray = PIXELS) -> bytes:
    ok, buf = cv2.imencode(ext, image)
    assert ok
    return buf.tobytes()


def pil(fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(PIXELS[:, :, ::-1]).save(buf, fmt, **kw)
    return buf.getvalue()


# ------------------------------------------------------------------------ reading bytes


def test_the_byte_limit_is_checked_before_reading(tmp_path: Path) -> None:
    sparse = tmp_path / "x.jpg"
    with sparse.open("wb") as f:
        f.truncate(10 << 30)  # 10 GiB that take no disk, and must take no memory either
    with pytest.raises(ImageError, match=r"^10 GiB, over the 512 MiB limit on one image's bytes$"):
        read_bytes(source(sparse))


def test_the_byte_limit_is_inclusive(tmp_path: Path) -> None:
    path = tmp_path / "a.jpg"
    path.write_bytes(b"x" * 1000)
    assert read_bytes(source(path), max_bytes=1000) == b"x" * 1000
    with pytest.raises(ImageError, match="over the 999 B limit"):
        read_bytes(source(path), max_bytes=999)
    given = Source("-", None, PurePosixPath("stdin.jpg"), data=b"x" * 1000)
    with pytest.raises(ImageError, match="over the 999 B limit"):
        read_bytes(given, max_bytes=999)


def test_special_files_are_refused_without_opening_them(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.jpg")  # opening it to read would wait for a writer forever
    os.symlink("pipe.jpg", tmp_path / "link.jpg")
    os.symlink("gone.jpg", tmp_path / "dangling.jpg")
    (tmp_path / "dir.jpg").mkdir()
    cases = {
        tmp_path / "pipe.jpg": "not a regular file (a FIFO)",
        tmp_path / "link.jpg": "not a regular file (a FIFO)",
        Path("/dev/zero"): "not a regular file (a character device)",
        tmp_path / "dangling.jpg": "dangling symbolic link",
        tmp_path / "dir.jpg": "is a folder",
        tmp_path / "missing.jpg": "no such file",
    }
    for path, message in cases.items():
        with pytest.raises(ImageError) as err:
            read_bytes(source(path))
        assert str(err.value) == message, path


def test_defaults_are_documented_values() -> None:
    assert DEFAULT_MAX_BYTES == 512 << 20
    assert DEFAULT_MAX_PIXELS == 250_000_000


# ------------------------------------------------------------------------ pixel bombs


def _png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 10000)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _jpeg(width: int, height: int, sof: int = 0xC0) -> bytes:
    """SOI, an APP1 segment holding bytes that look like a SOF marker, then the real SOF."""
    app1 = b"Exif\0\0" + b"\xff\xc0\x00\x11\x08\x00\x01\x00\x01" * 4
    sof_body = struct.pack(">BHHB", 8, height, width, 3) + b"\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    return (
        b"\xff\xd8"
        + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1
        + b"\xff\xff"  # fill bytes are allowed before a marker
        + bytes([0xFF, sof]) + struct.pack(">H", len(sof_body) + 2) + sof_body
        + b"\xff\xda\x00\x0c\x03\x01\x00\x02\x11\x03\x11\x00\x3f\x00" + b"\0" * 600
    )  # fmt: skip


def _bmp(width: int, height: int) -> bytes:
    dib = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 54 + 100, 0, 0, 54) + dib + b"\0" * 100


def _riff(chunk: bytes, body: bytes) -> bytes:
    data = chunk + struct.pack("<I", len(body)) + body
    return b"RIFF" + struct.pack("<I", len(data) + 4) + b"WEBP" + data


def _vp8(width: int, height: int) -> bytes:
    return _riff(
        b"VP8 ", b"\x50\x02\x00\x9d\x01\x2a" + struct.pack("<HH", width, height) + b"\0" * 64
    )


def _vp8l(width: int, height: int) -> bytes:
    bits = (width - 1) | (height - 1) << 14
    return _riff(b"VP8L", b"\x2f" + struct.pack("<I", bits) + b"\0" * 64)


def _vp8x(width: int, height: int) -> bytes:
    body = b"\x10\0\0\0" + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    return _riff(b"VP8X", body)


def _tiff(width: int, height: int, big_endian: bool = False) -> bytes:
    e = ">" if big_endian else "<"
    head = (b"MM" if big_endian else b"II") + struct.pack(e + "HI", 42, 8)
    ifd = struct.pack(e + "H", 3)
    ifd += struct.pack(e + "HHII", 256, 4, 1, width)  # LONG
    ifd += struct.pack(e + "HHIHH", 257, 3, 1, height, 0)  # SHORT, left-justified
    ifd += struct.pack(e + "HHII", 258, 3, 1, 8 << (16 if big_endian else 0))
    return head + ifd + struct.pack(e + "I", 0) + b"\0" * 64


def _gif(width: int, height: int) -> bytes:
    return (
        b"GIF89a" + struct.pack("<HHBBB", 10, 10, 0, 0, 0)  # a small screen, a huge frame
        + b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0)
        + b"\x02\x02\x4c\x01\x00\x3b"
    )  # fmt: skip


def _pnm(width: int, height: int) -> bytes:
    return f"P6\n# a comment\n{width} {height}\n255\n".encode() + b"\0" * 64


BOMBS = {
    "png": _png, "jpeg": _jpeg, "progressive jpeg": lambda w, h: _jpeg(w, h, 0xC2),
    "bmp": _bmp, "top-down bmp": lambda w, h: _bmp(w, -h), "webp vp8": _vp8, "webp vp8l": _vp8l,
    "webp vp8x": _vp8x, "tiff": _tiff, "big-endian tiff": lambda w, h: _tiff(w, h, True),
    "gif": _gif, "pnm": _pnm,
}  # fmt: skip


@pytest.mark.parametrize("kind", BOMBS)
def test_the_header_size_is_read_without_decoding(kind: str) -> None:
    assert image_size(BOMBS[kind](16000, 9000)) == (16000, 9000)


@pytest.mark.parametrize("kind", BOMBS)
def test_pixel_bombs_are_refused_before_opencv_allocates(kind: str) -> None:
    data = BOMBS[kind](16000, 16000)  # 256 MP: 768 MB decoded, from a few hundred bytes
    assert len(data) < 1000
    with pytest.raises(ImageError, match=r"^image too large: 16000 x 16000 pixels \(256 MP\)"):
        decode(data)


# Oracle: what OpenCV decodes, from files written by OpenCV and by Pillow in other variants.
REAL = {
    "opencv .jpg": lambda: encode(".jpg"), "opencv .png": lambda: encode(".png"),
    "opencv .bmp": lambda: encode(".bmp"), "opencv .webp": lambda: encode(".webp"),
    "opencv .tif": lambda: encode(".tif"), "opencv .ppm": lambda: encode(".ppm"),
    "opencv .pgm": lambda: encode(".pgm", PIXELS[:, :, 0]),
    "progressive jpeg": lambda: pil("JPEG", progressive=True),
    "lossless webp": lambda: pil("WEBP", lossless=True),
    "webp with exif": lambda: pil("WEBP", exif=Image.Exif().tobytes() + b"\0" * 8),
    "gif": lambda: pil("GIF"), "lzw tiff": lambda: pil("TIFF", compression="tiff_lzw"),
    "bmp (pillow)": lambda: pil("BMP"),
}  # fmt: skip


@pytest.mark.parametrize("kind", REAL)
def test_the_header_size_is_what_opencv_decodes(kind: str) -> None:
    data = REAL[kind]()
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert pixels is not None
    assert image_size(data) == (pixels.shape[1], pixels.shape[0]) == (37, 23)


def test_the_pixel_limit_is_inclusive() -> None:
    data = encode(".png")
    assert decode(data, max_pixels=37 * 23).shape == (23, 37, 3)
    with pytest.raises(ImageError, match=r"^image too large: 37 x 23 pixels"):
        decode(data, max_pixels=37 * 23 - 1)


@pytest.mark.parametrize(
    "data",
    [b"", b"\xff\xd8", b"\x89PNG\r\n\x1a\n", b"BM", b"II*\0\xff\xff\xff\xff", b"P6\n",
     b"RIFF\0\0\0\0WEBPVP8 ", b"GIF89a", b"random bytes" * 9, b"MM\0*\0\0\0\x08\xff\xff"],
)  # fmt: skip
def test_truncated_headers_give_no_size_and_no_exception(data: bytes) -> None:
    assert image_size(data) is None


# ------------------------------------------------------------------------ frames


def _frames(fmt: str, n: int, **kw: object) -> bytes:
    images = [Image.new("RGB", (20, 10), (i * 20, 255 - i * 20, 0)) for i in range(n)]
    buf = io.BytesIO()
    images[0].save(buf, fmt, save_all=True, append_images=images[1:], **kw)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("fmt", "n", "note"),
    [("GIF", 12, "an animated GIF: only the first of 12 frames is used"),
     ("TIFF", 3, "a multi-page TIFF: only the first of 3 pages is used"),
     ("PNG", 4, "an animated PNG: only the first of 4 frames is used"),
     ("WEBP", 5, "an animated WebP: only the first of 5 frames is used"),
     ("GIF", 1, None), ("TIFF", 1, None), ("PNG", 1, None), ("WEBP", 1, None)],
)  # fmt: skip
def test_frame_note_says_when_only_the_first_frame_is_used(
    fmt: str, n: int, note: str | None
) -> None:
    data = _frames(fmt, n)
    assert frame_note(data) == note
    if fmt in ("GIF", "TIFF"):  # OpenCV's own count agrees
        ok, frames = cv2.imdecodemulti(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        assert ok
        assert len(frames) == n
    assert decode(data).shape == (10, 20, 3)


@pytest.mark.parametrize("data", [encode(".jpg"), b"", b"GIF89a", b"II*\0\x08\0\0\0", b"junk"])
def test_frame_note_is_none_for_single_images_and_junk(data: bytes) -> None:
    assert frame_note(data) is None


def test_gif_is_an_input_extension() -> None:
    assert ".gif" in IMAGE_EXTENSIONS


# ------------------------------------------------------------------------ writing


def test_write_atomic_leaves_nothing_behind_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "a" / "out.jpg"
    write_atomic(target, b"complete")
    assert target.read_bytes() == b"complete"
    with pytest.raises(TypeError):
        write_atomic(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == b"complete"
    assert [p.name for p in target.parent.iterdir()] == ["out.jpg"]


# ------------------------------------------------------------------------ every format's size

# Hostile files as the audit built them: formats whose header yolocli once could not read, so
# their pixels went to OpenCV unmeasured (a 25 MB Radiance HDR and a 6.4 MB TIFF with its size
# tags as SSHORT/SLONG, both decoded at 20000 x 20000).


def _hdr(width: int, height: int, rows: int | None = None) -> bytes:
    """A Radiance RGBE image with flat scanlines (only ``rows`` of them, to claim a size)."""
    head = b"#?RADIANCE\n# made by hand\nFORMAT=32-bit_rle_rgbe\n\n"
    head += f"-Y {height} +X {width}\n".encode()
    return head + b"\x80\x40\x20\x81" * (width * (height if rows is None else rows))


def _signed_tiff(width: int, height: int, rows: int | None = None) -> bytes:
    """An uncompressed gray TIFF whose width is an SSHORT and height an SLONG (libtiff takes
    any integer kind)."""
    pixels = b"\x7f" * (width * (height if rows is None else rows))
    entries = [
        (256, 8, struct.pack("<hh", width, 0)),  # SSHORT
        (257, 9, struct.pack("<i", height)),  # SLONG
        (258, 3, struct.pack("<HH", 8, 0)),
        (259, 3, struct.pack("<HH", 1, 0)),
        (262, 3, struct.pack("<HH", 1, 0)),
        (273, 4, struct.pack("<I", 8 + 2 + 12 * 9 + 4)),  # the pixels follow the IFD
        (277, 3, struct.pack("<HH", 1, 0)),
        (278, 9, struct.pack("<i", height)),
        (279, 4, struct.pack("<I", width * height)),
    ]
    ifd = struct.pack("<H", len(entries))
    ifd += b"".join(struct.pack("<HHI", tag, kind, 1) + value for tag, kind, value in entries)
    return b"II" + struct.pack("<HI", 42, 8) + ifd + struct.pack("<I", 0) + pixels


def _sun(width: int, height: int, rows: int | None = None) -> bytes:
    length = width * 3 * (height if rows is None else rows)
    return struct.pack(">8I", 0x59A66A95, width, height, 24, length, 1, 0, 0) + b"\x60" * length


def _j2k_head(width: int, height: int) -> bytes:
    siz = struct.pack(">HIIIIIIIIH", 0, width, height, 0, 0, width, height, 0, 0, 3)
    siz += b"\x07\x01\x01" * 3
    return b"\xff\x4f\xff\x51" + struct.pack(">H", len(siz) + 2) + siz + b"\0" * 64


def _jp2(width: int, height: int) -> bytes:
    box = b"\0\0\0\x0cjP  \r\n\x87\n" + b"\0\0\0\x14ftypjp2 \0\0\0\0jp2 "
    ihdr = b"\0\0\0\x16ihdr" + struct.pack(">IIHBBBB", 1, 1, 3, 7, 7, 0, 0)  # says 1 x 1
    box += struct.pack(">I", 8 + len(ihdr)) + b"jp2h" + ihdr
    stream = _j2k_head(width, height)
    return box + struct.pack(">I", 8 + len(stream)) + b"jp2c" + stream


def _avif(width: int, height: int) -> bytes:
    ispe = b"\0\0\0\x14ispe\0\0\0\0" + struct.pack(">II", width, height)
    small = b"\0\0\0\x14ispe\0\0\0\0" + struct.pack(">II", 64, 64)  # a grid's tile
    ipco = struct.pack(">I", 8 + 40) + b"ipco" + small + ispe
    iprp = struct.pack(">I", 8 + len(ipco)) + b"iprp" + ipco
    meta = struct.pack(">I", 12 + len(iprp)) + b"meta\0\0\0\0" + iprp
    return b"\0\0\0\x1cftypavif\0\0\0\0avifmif1miaf" + meta


def _exr(width: int, height: int) -> bytes:
    window = struct.pack("<iiii", 10, 20, 10 + width - 1, 20 + height - 1)
    attr = b"channels\0chlist\0" + struct.pack("<i", 1) + b"\0"
    attr += b"dataWindow\0box2i\0" + struct.pack("<i", 16) + window
    return b"\x76\x2f\x31\x01\x02\0\0\0" + attr + b"\0"


HOSTILE = {
    "radiance hdr": lambda w, h: _hdr(w, h, rows=1),
    "tiff with SSHORT/SLONG sizes": lambda w, h: _signed_tiff(w, h, rows=1),
    "sun raster": lambda w, h: _sun(w, h, rows=1),
    "jpeg 2000 codestream": _j2k_head,
    "jp2 whose ihdr box lies": _jp2,
    "avif grid": _avif,
    "openexr": _exr,
}


@pytest.mark.parametrize("kind", HOSTILE)
def test_every_format_opencv_decodes_has_its_header_size_read(kind: str) -> None:
    assert image_size(HOSTILE[kind](20000, 20000)) == (20000, 20000)


@pytest.mark.parametrize("kind", HOSTILE)
def test_hostile_headers_are_refused_before_opencv_allocates(kind: str) -> None:
    data = HOSTILE[kind](20000, 20000)  # 400 MP: 1.2 GB as BGR, 6 GB through floats
    assert len(data) < 100_000
    with pytest.raises(ImageError, match=r"^image too large: 20000 x 20000 pixels \(400 MP\)"):
        decode(data)


@pytest.mark.parametrize(
    ("make", "ext"),
    [(_hdr, ".hdr"), (_signed_tiff, ".tif"), (_sun, ".ras")],
)
def test_hostile_formats_decode_at_the_size_their_header_says(make: object, ext: str) -> None:
    """The oracle: OpenCV itself decodes the small versions at the size yolocli reads."""
    data = make(300, 200)  # type: ignore[operator]
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert pixels.shape == (200, 300, 3)
    assert image_size(data) == (300, 200)
    assert decode(data).shape == (200, 300, 3)


FORMATS = {  # written by OpenCV and Pillow: what a user has on disk
    ".hdr": lambda: encode(".hdr", PIXELS.astype(np.float32) / 255),
    ".pfm": lambda: encode(".pfm", PIXELS.astype(np.float32) / 255),
    ".ras": lambda: encode(".ras"),
    ".pam": lambda: encode(".pam"),
    "jp2 (pillow)": lambda: pil("JPEG2000"),
    "j2k (pillow)": lambda: pil("JPEG2000", no_jp2=True),
    "avif (pillow)": lambda: pil("AVIF"),
}


@pytest.mark.parametrize("kind", FORMATS)
def test_the_header_size_of_other_formats_is_what_opencv_decodes(kind: str) -> None:
    try:
        data = FORMATS[kind]()
    except (KeyError, OSError, cv2.error):  # this Pillow or OpenCV cannot write it
        pytest.skip(f"no {kind} writer here")
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if pixels is None:
        pytest.skip(f"this OpenCV does not decode {kind}")
    assert image_size(data) == (pixels.shape[1], pixels.shape[0]) == (37, 23)
    assert decode(data).shape == (23, 37, 3)


def test_formats_decoded_through_floats_count_their_cost() -> None:
    """A Radiance HDR is decoded through a 32-bit float copy: 8000 x 8000 takes what 320 MP of
    8-bit pixels take, over the 250 MP default."""
    data = _hdr(8000, 8000, rows=1)
    with pytest.raises(ImageError, match=r"8000 x 8000 pixels \(64 MP\) of Radiance HDR.*320 MP"):
        decode(data)
    assert decode(_hdr(37, 23)).shape == (23, 37, 3)


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        # sizes given as RATIONAL: a kind no decoder reads a size from
        (_signed_tiff(300, 200).replace(b"\x00\x01\x08\x00", b"\x00\x01\x05\x00", 1), "TIF"),
        (b"\xff\xd8\xff\xda\x00\x08" + b"\0" * 600, "JPG"),  # a scan before any frame header
        (b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n+X 300 -Y 200\n" + b"\0" * 999, "HDR"),
    ],
)
def test_an_image_whose_size_cannot_be_read_is_never_decoded(data: bytes, kind: str) -> None:
    assert image_size(data) is None
    with pytest.raises(ImageError, match=f"^a corrupt {kind} image: its size cannot be read"):
        decode(data)


def test_a_progressive_jpeg_counts_the_coefficients_libjpeg_keeps() -> None:
    """10000 x 10000 is within 250 MP as a baseline JPEG, but libjpeg holds a progressive
    one's coefficients (2 bytes a sample) besides the pixels: it counts three times."""
    from yolocli.io.images import check_pixels, image_header

    baseline, progressive = (
        image_header(_jpeg(10000, 10000)),
        image_header(_jpeg(10000, 10000, 0xC2)),
    )
    assert baseline is not None
    assert progressive is not None
    assert (baseline.weight, progressive.weight) == (1, 3)
    check_pixels(baseline, DEFAULT_MAX_PIXELS)
    with pytest.raises(ImageError, match=r"of progressive JPEG, whose decoder takes 3x"):
        check_pixels(progressive, DEFAULT_MAX_PIXELS)
    real = pil("JPEG", progressive=True)
    assert image_header(real).weight == 3  # type: ignore[union-attr]
    assert decode(real).shape == (23, 37, 3)


# -- JPEG through libjpeg-turbo (simplejpeg): the pixels OpenCV decodes ------------------------

DATA = Path(__file__).parent / "data" / "images"


def _photo(width: int, height: int) -> np.ndarray:
    """A real photograph's pixels (edges and gradients, unlike noise) at ``width`` x ``height``."""
    photo = cv2.imread(str(DATA / "chelsea.png"))
    return cv2.resize(photo, (width, height), interpolation=cv2.INTER_AREA)


def _cv_jpeg(image: np.ndarray, *params: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90, *params])
    assert ok
    return buf.tobytes()


def _pil_jpeg(image: np.ndarray, mode: str = "RGB", **kw: object) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image[..., ::-1]).convert(mode).save(out, "JPEG", **kw)
    return out.getvalue()


def _exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[274] = orientation
    return exif.tobytes()


S = cv2.IMWRITE_JPEG_SAMPLING_FACTOR
FAST_JPEGS = {
    **{
        f"{name} {w}x{h}": (lambda w=w, h=h, f=f: _cv_jpeg(_photo(w, h), S, f))
        for name, f in [
            ("4:2:0", cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420),
            ("4:2:2", cv2.IMWRITE_JPEG_SAMPLING_FACTOR_422),
            ("4:4:0", cv2.IMWRITE_JPEG_SAMPLING_FACTOR_440),
            ("4:1:1", cv2.IMWRITE_JPEG_SAMPLING_FACTOR_411),
            ("4:4:4", cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444),
        ]
        for w, h in [(1, 1), (7, 3), (37, 23), (301, 200)]
    },
    "progressive": lambda: _cv_jpeg(_photo(301, 200), cv2.IMWRITE_JPEG_PROGRESSIVE, 1),
    "optimized Huffman tables": lambda: _cv_jpeg(_photo(301, 200), cv2.IMWRITE_JPEG_OPTIMIZE, 1),
    "restart markers": lambda: _cv_jpeg(_photo(301, 200), cv2.IMWRITE_JPEG_RST_INTERVAL, 3),
    "quality 20": lambda: _cv_jpeg(_photo(301, 200), cv2.IMWRITE_JPEG_QUALITY, 20),
    "grayscale": lambda: _cv_jpeg(cv2.cvtColor(_photo(301, 200), cv2.COLOR_BGR2GRAY)),
    "PIL grayscale": lambda: _pil_jpeg(_photo(64, 48), "L"),
    "PIL progressive 4:2:2": lambda: _pil_jpeg(_photo(65, 49), progressive=True, subsampling=1),
    "EXIF orientation 1": lambda: _pil_jpeg(_photo(65, 49), exif=_exif(1)),
    "EXIF without orientation": lambda: _pil_jpeg(_photo(65, 49), exif=Image.Exif().tobytes()),
    "grace_hopper.jpg": lambda: (DATA / "grace_hopper.jpg").read_bytes(),
    "rocket.jpg": lambda: (DATA / "rocket.jpg").read_bytes(),
}


@pytest.mark.parametrize("kind", FAST_JPEGS)
def test_jpegs_decode_through_libjpeg_turbo_to_opencvs_pixels(kind: str) -> None:
    pytest.importorskip("simplejpeg")
    from yolocli.io.images import _turbo_jpeg

    data = FAST_JPEGS[kind]()
    fast = _turbo_jpeg(data)
    assert fast is not None  # it took the fast path
    expected = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert fast.shape == expected.shape
    assert fast.dtype == np.uint8
    np.testing.assert_array_equal(fast, expected)
    np.testing.assert_array_equal(decode(data), expected)


OPENCV_JPEGS = {
    # OpenCV turns these itself: the fast path must leave them alone
    **{
        f"EXIF orientation {o}": (lambda o=o: _pil_jpeg(_photo(65, 49), exif=_exif(o)))
        for o in range(2, 9)
    },
    "CMYK": lambda: _pil_jpeg(_photo(65, 49), "CMYK"),
    "truncated": lambda: _cv_jpeg(_photo(301, 200))[:3000],
    "arithmetic-coded frame header": lambda: _jpeg(37, 23, sof=0xC9),
}


@pytest.mark.parametrize("kind", OPENCV_JPEGS)
def test_jpegs_libjpeg_turbo_might_decode_otherwise_go_to_opencv(kind: str) -> None:
    from yolocli.io.images import _turbo_jpeg

    data = OPENCV_JPEGS[kind]()
    assert _turbo_jpeg(data) is None
    expected = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if expected is None:
        with pytest.raises(ImageError):
            decode(data)
    else:
        np.testing.assert_array_equal(decode(data), expected)


def test_jpegs_decode_into_reused_scratch_memory_to_the_same_pixels() -> None:
    pytest.importorskip("simplejpeg")
    from yolocli.io.images import Scratch

    scratch = Scratch()
    small, large = FAST_JPEGS["progressive"](), (DATA / "grace_hopper.jpg").read_bytes()
    first = decode(small, scratch=scratch)
    np.testing.assert_array_equal(first, decode(small))
    memory = scratch.take(0)
    assert memory is not None
    assert np.shares_memory(first, np.frombuffer(memory, np.uint8))
    grown = decode(large, scratch=scratch)  # larger: new memory, the first image left alone
    np.testing.assert_array_equal(grown, decode(large))
    np.testing.assert_array_equal(first, decode(small))
    again = decode(small, scratch=scratch)  # smaller: the same memory again
    assert np.shares_memory(again, grown)
    np.testing.assert_array_equal(again, decode(small))
    assert again.shape == first.shape
    assert again.flags.c_contiguous


def test_scratch_memory_is_not_used_past_its_limit_nor_by_other_decoders() -> None:
    from yolocli.io.images import Scratch

    scratch = Scratch()
    scratch.LIMIT = 100  # bytes: a 37 x 23 photo needs 2,553
    jpeg = decode(encode(".jpg"), scratch=scratch)
    np.testing.assert_array_equal(jpeg, decode(encode(".jpg")))
    assert scratch.take(0) == bytearray()  # never grown
    roomy = Scratch()
    png = decode(encode(".png"), scratch=roomy)  # OpenCV decodes it into an array of its own
    np.testing.assert_array_equal(png, PIXELS)
    rotated = OPENCV_JPEGS["EXIF orientation 6"]()  # a JPEG that OpenCV turns
    np.testing.assert_array_equal(
        decode(rotated, scratch=roomy), cv2.imdecode(np.frombuffer(rotated, np.uint8), 1)
    )
    assert roomy.take(0) == bytearray()  # neither grew it
