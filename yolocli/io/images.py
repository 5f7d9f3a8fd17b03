"""Reading one input's bytes, decoding them to pixels, encoding pixels back.

Every failure is one `ImageError` sentence for that image. Two limits keep one hostile or
odd input from exhausting memory: ``max_bytes`` on what is read (checked before reading), and
``max_pixels`` on what is decoded (checked from the file's header, before OpenCV allocates).
"""

from __future__ import annotations

import os
import re
import stat
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

import cv2
import numpy as np
import numpy.typing as npt

try:  # libjpeg-turbo with less around it than OpenCV's decoder (`_turbo_jpeg`)
    import simplejpeg as _simplejpeg
except ImportError:  # a platform without its wheel: OpenCV decodes every JPEG
    _simplejpeg = None

from yolocli.errors import ImageError
from yolocli.io.inputs import DEFAULT_MAX_BYTES as DEFAULT_MAX_BYTES
from yolocli.io.inputs import (
    IMAGE_EXTENSIONS,
    Source,
    os_reason,
    over_limit,
    sniff_image,
    special_file_error,
)

# Pixels decoded from one image, by default: 250 MP holds every phone photo made so far (the
# largest sensors give 200 MP, 16320 x 12240) and medium-format cameras (100-150 MP), yet
# refuses the decompression bombs that OpenCV's own guard (2^30 pixels, 3 GB as BGR) lets
# through: a 631-byte JPEG claiming 30000 x 30000 would take 2.7 GB. One 250 MP image is
# 750 MB as BGR pixels.
DEFAULT_MAX_PIXELS = 250_000_000


# -- reading --------------------------------------------------------------------------------


def read_bytes(source: Source, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """The encoded bytes of one input, at most ``max_bytes`` of them; `ImageError` if the
    input is missing, not a regular file (a FIFO would block, a device never ends) or larger.
    The size is checked before reading, so a sparse 10 GB file costs nothing."""
    if source.data is not None:
        if len(source.data) > max_bytes:
            raise ImageError(over_limit(len(source.data), max_bytes))
        return source.data
    assert source.path is not None
    path = source.path
    try:
        st = os.stat(path)
        _check_file(st.st_mode, st.st_size, max_bytes)
        # O_NONBLOCK: should the file be swapped for a FIFO after the check, opening it
        # still returns at once (and fstat below refuses it) instead of waiting for a writer.
        fd = os.open(path, os.O_RDONLY | _NONBLOCK)
        with open(fd, "rb", buffering=0) as f:
            st = os.fstat(f.fileno())
            _check_file(st.st_mode, st.st_size, max_bytes)
            data = _read_at_most(f, max_bytes + 1, first=min(st.st_size, max_bytes) + 1)
    except FileNotFoundError:
        if path.is_symlink():
            raise ImageError("dangling symbolic link") from None
        raise ImageError("no such file") from None
    except (IsADirectoryError, NotADirectoryError, PermissionError) as err:
        raise ImageError(_read_reason(err)) from None
    except OSError as err:
        raise ImageError(f"cannot read: {os_reason(err)}") from None
    if len(data) > max_bytes:  # the file grew after the size check
        raise ImageError(over_limit(None, max_bytes))
    return data


_NONBLOCK = getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)  # POSIX only


def _check_file(mode: int, size: int, max_bytes: int) -> None:
    if stat.S_ISDIR(mode):
        raise ImageError("is a folder")
    special = special_file_error(mode)
    if special is not None:
        raise ImageError(special)
    if size > max_bytes:
        raise ImageError(over_limit(size, max_bytes))


def _read_reason(err: OSError) -> str:
    if isinstance(err, IsADirectoryError):
        return "is a folder"
    if isinstance(err, PermissionError):
        return "permission denied"
    return os_reason(err)


def _read_at_most(f: BinaryIO, limit: int, first: int) -> bytes:
    """Up to ``limit`` bytes; one read of ``first`` bytes (the expected size) in the common
    case, so a large file is not copied chunk by chunk."""
    parts = []
    total = 0
    want = first
    while total < limit:
        chunk = f.read(min(want, limit - total))
        if not chunk:
            break
        parts.append(chunk)
        total += len(chunk)
        want = 1 << 20
    return b"".join(parts)


# -- decoding -------------------------------------------------------------------------------


class Scratch:
    """Memory that `decode` reuses for the pixels of one image after another.

    A new array for every photo is fresh memory each time, which the kernel must map and
    zero: decoding the six test photos into reused memory took 1.40 against 1.56 ms a photo
    (one core, alternating with the forward pass, as in a run). An image decoded into it is
    valid until the next `decode` into the same `Scratch`: it suits one thread that is done
    with each image before it decodes the next, as a worker process is. Images of more than
    `LIMIT` bytes get arrays of their own, so one huge photo does not pin its size.
    """

    LIMIT = 64 << 20  # bytes of BGR pixels: a 22-megapixel photo

    def __init__(self) -> None:
        self._memory = bytearray()

    def take(self, nbytes: int) -> bytearray | None:
        """At least ``nbytes`` of the reused memory, or None past `LIMIT`."""
        if nbytes > self.LIMIT:
            return None
        if len(self._memory) < nbytes:
            self._memory = bytearray(nbytes)  # a new one: arrays may still view the old
        return self._memory


def decode(
    data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS, scratch: Scratch | None = None
) -> npt.NDArray[np.uint8]:
    """BGR uint8 (H, W, 3) pixels from encoded image bytes; `ImageError` saying why not.

    Nothing reaches OpenCV's decoders unless its size was read from its header first
    (`image_header`) and its decoding cost is within ``max_pixels``: bytes whose size cannot be
    read (an unknown format, a damaged header) are refused, so no format can slip a
    decompression bomb past the limit. Always decoded at full size: yolocli letterboxes from
    the full-size image to match darknet's pixels exactly.

    ``scratch``: memory to decode into where the decoder can (JPEG through simplejpeg); the
    result may then be a view of it, overwritten by the next `decode` into it.
    """
    if not data:
        raise ImageError("empty file")
    header = image_header(data)
    if header is None:  # never decoded: no format's bomb can pass unmeasured
        kind = sniff_image(data[:16])
        if kind is None:
            raise ImageError("not an image OpenCV can decode")
        raise ImageError(
            f"a corrupt {kind[1:].upper()} image: its size cannot be read from its header, "
            "so it is not decoded"
        )
    check_pixels(header, max_pixels)
    if header.format in ("JPEG", "progressive JPEG"):
        fast = _turbo_jpeg(data, scratch, header.width * header.height * 3)
        if fast is not None:
            return fast
    buf = np.frombuffer(data, dtype=np.uint8)
    try:
        # IMREAD_COLOR applies the EXIF orientation and makes 8-bit BGR of grayscale, RGBA,
        # 16-bit and CMYK images alike.
        image = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    except cv2.error as err:
        if "CV_IO_MAX_IMAGE_PIXELS" in str(err):
            raise ImageError(
                "image too large: over OpenCV's own limit on decoded pixels "
                "(OPENCV_IO_MAX_IMAGE_PIXELS; a decompression bomb?)"
            ) from None
        raise ImageError(f"cannot decode: {_cv_reason(err)}") from None
    if image is None:
        kind = sniff_image(data[:16])
        if kind is not None:
            raise ImageError(f"a corrupt or truncated {kind[1:].upper()} image")
        raise ImageError("not an image OpenCV can decode")
    return np.asarray(image, dtype=np.uint8)


def _turbo_jpeg(
    data: bytes, scratch: Scratch | None = None, nbytes: int = 0
) -> npt.NDArray[np.uint8] | None:
    """The pixels ``cv2.imdecode(data, IMREAD_COLOR)`` gives, decoded by libjpeg-turbo through
    simplejpeg, or None where that is not certain to be the same (OpenCV decodes those).

    Both run libjpeg-turbo's exact integer IDCT and smooth chroma upsampling into BGR, so the
    pixels are identical (tests/test_images.py checks every subsampling, progressive and
    grayscale files, and sizes that are not multiples of a block); simplejpeg's
    call costs less around the decoder: 1.2 ms against 1.6-1.7 ms on average for the six
    test photos (0.14-0.37 megapixels), which is 1% of a folder's run on two cores. Only
    8-bit Huffman-coded files of one or three components, whose EXIF orientation (if any) is
    the identity, come this way: OpenCV turns the others itself (rotations, CMYK, 12-bit).
    A recoverable decoding error (a truncated file) is an error here (``strict``), so such
    a file too reaches OpenCV, whose handling of it is yolocli's. ``scratch``: memory for
    the ``nbytes`` of pixels, taken only for a file that comes this way (a rotated photo
    leaves it untouched), or None for a new array."""
    if _simplejpeg is None or not _plain_jpeg(data):
        return None
    memory = scratch.take(nbytes) if scratch is not None else None
    try:
        image: npt.NDArray[np.uint8] = _simplejpeg.decode_jpeg(
            data, colorspace="BGR", strict=True, buffer=memory
        )
    except ValueError:
        return None
    return image


def _plain_jpeg(data: bytes) -> bool:
    """True if a JPEG is 8-bit and Huffman-coded (baseline, extended or progressive), of one
    or three components, with no EXIF orientation but the identity before its scan."""
    try:
        for marker, at in _jpeg_segments(data):
            if marker == 0xE1 and data[at + 2 : at + 8] == b"Exif\0\0":
                (length,) = struct.unpack(">H", data[at : at + 2])
                if _exif_orientation(data[at + 8 : at + length]) != 1:
                    return False
            elif marker in _SOF:
                if (
                    marker not in (0xC0, 0xC1, 0xC2)
                    or data[at + 2] != 8
                    or data[at + 7] not in (1, 3)
                ):
                    return False
            elif marker == 0xDA:
                return True
    except (struct.error, IndexError, ValueError):
        pass
    return False


def _exif_orientation(tiff: bytes) -> int | None:
    """The orientation tag (274) of an EXIF block's first IFD: 1 where it has none, None where
    the block cannot be read."""
    try:
        for tags in _tiff_ifds(tiff):
            return tags.get(274, 1)
    except (struct.error, IndexError, ValueError):
        pass
    return None


def check_pixels(header: Header, max_pixels: int) -> None:
    """`ImageError` if decoding the image ``header`` describes costs more than ``max_pixels``
    (its pixels, times `Header.weight` for a format decoded through wider values)."""
    w, h = header.width, header.height
    if w * h * header.weight <= max_pixels:
        return
    if header.weight == 1:
        raise ImageError(
            f"image too large: {w} x {h} pixels ({_mp(w * h)}), over the limit of "
            f"{_mp(max_pixels)} (a decompression bomb?)"
        )
    raise ImageError(
        f"image too large: {w} x {h} pixels ({_mp(w * h)}) of {header.format}, whose decoder "
        f"takes {header.weight}x the memory of 8-bit pixels, so it counts as "
        f"{_mp(w * h * header.weight)}: over the limit of {_mp(max_pixels)} "
        "(a decompression bomb?)"
    )


def _mp(pixels: int) -> str:
    return f"{pixels / 1e6:,.0f} MP" if pixels >= 10**7 else f"{pixels / 1e6:.3g} MP"


def _cv_reason(err: cv2.error) -> str:
    text = str(err).strip().splitlines()
    return text[-1].split(") ", 1)[-1] if text else "unknown error"


# -- headers --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Header:
    """What an image's header says before decoding: its size, its format, and ``weight``, the
    memory its decoder takes per pixel relative to 8-bit BGR (OpenCV decodes Radiance HDR,
    PFM and OpenEXR through a 32-bit float copy, JPEG 2000 through 32-bit integer planes;
    libjpeg keeps a progressive JPEG's coefficients, 2 bytes a sample, until its last scan)."""

    width: int
    height: int
    format: str
    weight: int = 1


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the header of an image in a format OpenCV decodes (`image_header`),
    without decoding it; None for other formats or a header too damaged to read."""
    header = image_header(data)
    return None if header is None else (header.width, header.height)


def image_header(data: bytes) -> Header | None:
    """The `Header` of a JPEG, PNG, BMP, WebP, TIFF, GIF, PNM/PAM/PFM, Radiance HDR, Sun
    raster, JPEG 2000, AVIF or OpenEXR image; None for other bytes or a header too damaged to
    read.

    Pure Python on the header bytes (a GIF's frames are walked block by block), so a pixel
    limit can be checked before OpenCV allocates the pixels. Where a header could be read two
    ways, the larger size is taken.
    """
    try:
        for magic, fmt, weight, reader in _SIZE_READERS:
            if data.startswith(magic):
                size = reader(data)
                if size is None or size[0] <= 0 or size[1] <= 0:
                    return None
                if fmt == "JPEG" and _progressive(data):
                    # libjpeg holds every DCT coefficient (2 bytes a sample) until the last scan
                    fmt, weight = "progressive JPEG", 3
                return Header(size[0], size[1], fmt, weight)
    except (struct.error, IndexError, ValueError):
        pass
    return None


def _png_size(data: bytes) -> tuple[int, int] | None:
    if data[12:16] != b"IHDR":
        return None
    w, h = struct.unpack(">II", data[16:24])
    return w, h


# SOFn markers: baseline, extended, progressive, lossless, hierarchical, arithmetic (not DHT
# C4, JPG C8 or DAC CC, which share the range).
_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    found = _jpeg_frame(data)
    if found is None:
        return None
    h, w = struct.unpack(">HH", data[found[1] + 3 : found[1] + 7])
    return w, h  # a height of 0 (set later by a DNL marker) reads as unknown


def _jpeg_frame(data: bytes) -> tuple[int, int] | None:
    """(SOF marker, offset of its segment length) of a JPEG's frame header; None if the scan
    begins (or the image ends) first."""
    for marker, at in _jpeg_segments(data):
        if marker in (0xD9, 0xDA):  # end of image, or the scan began without a frame header
            return None
        if marker in _SOF:
            return marker, at
    return None


def _jpeg_segments(data: bytes) -> Iterator[tuple[int, int]]:
    """(marker, offset of its segment length) of each segment of a JPEG after SOI, up to and
    including the first start of scan (SOS) or end of image (EOI); IndexError or struct.error
    where the bytes end first."""
    i = 2
    while True:
        while data[i] != 0xFF:  # stray bytes between segments: libjpeg skips them too
            i += 1
        while data[i] == 0xFF:  # fill bytes
            i += 1
        marker = data[i]
        i += 1
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # standalone markers carry no length
            continue
        yield marker, i
        if marker in (0xD9, 0xDA):
            return
        (length,) = struct.unpack(">H", data[i : i + 2])
        i += length


def _progressive(data: bytes) -> bool:
    """True if a JPEG's frame header is a progressive one (SOF2, 6, 10 or 14)."""
    found = _jpeg_frame(data)
    return found is not None and found[0] in (0xC2, 0xC6, 0xCA, 0xCE)


def _bmp_size(data: bytes) -> tuple[int, int] | None:
    (header,) = struct.unpack("<I", data[14:18])
    if header == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sizes
        w, h = struct.unpack("<HH", data[18:22])
        return w, h
    w, h = struct.unpack("<ii", data[18:26])
    return abs(w), abs(h)  # a negative height is a top-down bitmap


def _webp_size(data: bytes) -> tuple[int, int] | None:
    if data[8:12] != b"WEBP":
        return None
    chunk = data[12:16]
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        w, h = struct.unpack("<HH", data[26:30])
        return w & 0x3FFF, h & 0x3FFF  # the top two bits are a scaling hint
    if chunk == b"VP8L" and data[20] == 0x2F:
        (bits,) = struct.unpack("<I", data[21:25])
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        w = int.from_bytes(data[24:27], "little") + 1
        h = int.from_bytes(data[27:30], "little") + 1
        return w, h
    return None


def _tiff_size(data: bytes) -> tuple[int, int] | None:
    for tags in _tiff_ifds(data):
        if 256 in tags and 257 in tags:
            return tags[256], tags[257]
        return None
    return None


def _tiff_ifds(data: bytes) -> Iterator[dict[int, int]]:
    """The integer tags of each IFD (page) of a TIFF or BigTIFF, in file order."""
    e = "<" if data[:2] == b"II" else ">"
    (version,) = struct.unpack(e + "H", data[2:4])
    if version == 42:
        offset_fmt, count_fmt, entry_size = "I", "H", 12
        (offset,) = struct.unpack(e + "I", data[4:8])
    elif version == 43:  # BigTIFF: 8-byte offsets and counts
        offset_fmt, count_fmt, entry_size = "Q", "Q", 20
        (offset,) = struct.unpack(e + "Q", data[8:16])
    else:
        return
    value_size = struct.calcsize(offset_fmt)
    seen: set[int] = set()
    while offset and offset not in seen and len(seen) < 100_000:  # a loop in the chain ends
        seen.add(offset)
        count_size = struct.calcsize(count_fmt)
        (count,) = struct.unpack(e + count_fmt, data[offset : offset + count_size])
        tags: dict[int, int] = {}
        for k in range(count):
            at = offset + count_size + k * entry_size
            tag, kind = struct.unpack(e + "HH", data[at : at + 4])
            value = data[at + 4 + value_size : at + 4 + 2 * value_size]
            if kind in _TIFF_INTS:
                fmt = _TIFF_INTS[kind]
                (number,) = struct.unpack(e + fmt, value[: struct.calcsize(fmt)])
                tags[tag] = max(number, tags.get(tag, number))  # a repeated tag: the larger
        yield tags
        end = offset + count_size + count * entry_size
        (offset,) = struct.unpack(e + offset_fmt, data[end : end + value_size])


# Every integer kind: libtiff accepts a size tag in any of them (SSHORT and SLONG included).
_TIFF_INTS = {1: "B", 3: "H", 4: "I", 6: "b", 8: "h", 9: "i", 16: "Q", 17: "q"}


def _gif_size(data: bytes) -> tuple[int, int] | None:
    w, h = struct.unpack("<HH", data[6:10])
    for left, top, fw, fh in _gif_frames(data):  # a frame may reach beyond the screen
        return max(w, left + fw), max(h, top + fh)
    return w, h


def _gif_frames(data: bytes) -> Iterator[tuple[int, int, int, int]]:
    """(left, top, width, height) of each frame of a GIF, walking its blocks."""
    i = 13 + _gif_palette(data[10])
    while i < len(data):
        block = data[i]
        if block == 0x2C:  # image descriptor
            frame = struct.unpack("<HHHH", data[i + 1 : i + 9])
            i += 10 + _gif_palette(data[i + 9]) + 1  # + LZW minimum code size
            i = _gif_skip(data, i)
            yield frame
        elif block == 0x21:  # extension: label, then sub-blocks
            i = _gif_skip(data, i + 2)
        else:  # 0x3B, the trailer, or damage
            return


def _gif_palette(flags: int) -> int:
    return 3 << ((flags & 7) + 1) if flags & 0x80 else 0


def _gif_skip(data: bytes, i: int) -> int:
    while data[i]:
        i += data[i] + 1
    return i + 1


def _pnm_size(data: bytes) -> tuple[int, int] | None:
    head = data[:1024]
    if head[1:2] == b"7":  # PAM: "WIDTH n" and "HEIGHT n" lines
        fields = dict(line.split(None, 1) for line in head.splitlines()[1:] if b" " in line)
        return int(fields[b"WIDTH"]), int(fields[b"HEIGHT"])
    if head[1:2] not in (b"1", b"2", b"3", b"4", b"5", b"6", b"f", b"F"):
        return None
    tokens = []
    for line in head[2:].splitlines():
        tokens += line.split(b"#", 1)[0].split()
        if len(tokens) >= 2:
            return int(tokens[0]), int(tokens[1])
    return None


def _hdr_size(data: bytes) -> tuple[int, int] | None:
    """Radiance RGBE: text lines, a blank line, then the resolution line OpenCV reads as
    ``-Y height +X width``."""
    end = data.find(b"\n\n", 0, 1 << 16)
    if end < 0:
        return None
    found = _HDR_RESOLUTION.match(data, end + 2, end + 2 + 80)
    if found is None:
        return None
    return int(found[2]), int(found[1])


_HDR_RESOLUTION = re.compile(rb"\s*-Y\s+\+?(\d{1,10})\s+\+X\s+\+?(\d{1,10})")


def _sun_size(data: bytes) -> tuple[int, int] | None:
    w, h = struct.unpack(">ii", data[4:12])
    return w, h


def _jp2_size(data: bytes) -> tuple[int, int] | None:
    """JPEG 2000 in its JP2 box container: the size of the codestream (``jp2c``), which is
    what the decoder reads (the ``ihdr`` box may say otherwise)."""
    i = 0
    while i + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[i : i + 8])
        head = 8
        if length == 1:
            (length,) = struct.unpack(">Q", data[i + 8 : i + 16])
            head = 16
        elif length == 0:
            length = len(data) - i
        if kind == b"jp2c":
            return _j2k_size(data[i + head : i + head + 64])
        if length < head:
            return None
        i += length
    return None


def _j2k_size(data: bytes) -> tuple[int, int] | None:
    """A raw JPEG 2000 codestream: SOC, then the SIZ segment (reference grid and offsets)."""
    if data[:4] != b"\xff\x4f\xff\x51":
        return None
    x, y, x0, y0 = struct.unpack(">IIII", data[8:24])
    (components,) = struct.unpack(">H", data[40:42])
    if components > 4:  # OpenCV decodes 1 to 4; more would multiply the memory taken
        return None
    return x - x0, y - y0


def _avif_size(data: bytes) -> tuple[int, int] | None:
    """AVIF (ISO BMFF): the largest ``ispe`` (image spatial extents) property of any item, so a
    grid image counts as its whole canvas."""
    if data[8:12] not in (b"avif", b"avis"):
        return None
    sizes = [(w, h) for w, h in _ispe(data, 0, min(len(data), 1 << 20), 0)]
    if not sizes:
        return None
    return max(w for w, _ in sizes), max(h for _, h in sizes)


def _ispe(data: bytes, start: int, end: int, depth: int) -> Iterator[tuple[int, int]]:
    i = start
    while i + 8 <= end and depth < 8:
        length, kind = struct.unpack(">I4s", data[i : i + 8])
        if length < 8:
            return
        if kind == b"ispe":
            w, h = struct.unpack(">II", data[i + 12 : i + 20])
            yield w, h
        elif kind in (b"meta", b"iprp", b"ipco"):
            yield from _ispe(data, i + 8 + 4 * (kind == b"meta"), min(i + length, end), depth + 1)
        i += length


def _exr_size(data: bytes) -> tuple[int, int] | None:
    """OpenEXR: the ``dataWindow`` attribute (box2i: x min, y min, x max, y max)."""
    i = 8
    while i < min(len(data), 1 << 16):
        name_end = data.index(b"\0", i)
        if name_end == i:  # the end of the header
            return None
        type_end = data.index(b"\0", name_end + 1)
        (size,) = struct.unpack("<i", data[type_end + 1 : type_end + 5])
        if data[i:name_end] == b"dataWindow":
            x0, y0, x1, y1 = struct.unpack("<iiii", data[type_end + 5 : type_end + 21])
            return x1 - x0 + 1, y1 - y0 + 1
        if size < 0:
            return None
        i = type_end + 5 + size
    return None


_SizeReader = Callable[[bytes], "tuple[int, int] | None"]

# (leading bytes, format, weight, reader): every format OpenCV's image decoders know.
_SIZE_READERS: tuple[tuple[bytes, str, int, _SizeReader], ...] = (
    (b"\x89PNG\r\n\x1a\n", "PNG", 1, _png_size),
    (b"\xff\xd8", "JPEG", 1, _jpeg_size),
    (b"BM", "BMP", 1, _bmp_size),
    (b"RIFF", "WebP", 1, _webp_size),
    (b"II*\0", "TIFF", 1, _tiff_size),
    (b"MM\0*", "TIFF", 1, _tiff_size),
    (b"II+\0", "TIFF", 1, _tiff_size),
    (b"MM\0+", "TIFF", 1, _tiff_size),
    (b"GIF87a", "GIF", 1, _gif_size),
    (b"GIF89a", "GIF", 1, _gif_size),
    (b"Pf", "PFM", 5, _pnm_size),
    (b"PF", "PFM", 5, _pnm_size),
    (b"P", "PNM", 1, _pnm_size),
    (b"#?RADIANCE", "Radiance HDR", 5, _hdr_size),
    (b"#?RGBE", "Radiance HDR", 5, _hdr_size),
    (b"\x59\xa6\x6a\x95", "Sun raster", 1, _sun_size),
    (b"\0\0\0\x0cjP  \r\n\x87\n", "JPEG 2000", 8, _jp2_size),
    (b"\xff\x4f\xff\x51", "JPEG 2000", 8, _j2k_size),
    (b"\x76\x2f\x31\x01", "OpenEXR", 5, _exr_size),
    (b"", "AVIF", 3, _avif_size),  # ISO BMFF: the brand, not the first bytes, says AVIF
)


# -- frames ---------------------------------------------------------------------------------


def frame_note(data: bytes) -> str | None:
    """A sentence when ``data`` holds more than one frame or page and only the first is
    decoded (an animated GIF, PNG or WebP; a multi-page TIFF); None otherwise.

    Read from the container's structure, not by decoding the frames: cheap enough to ask of
    every image.
    """
    try:
        if data.startswith((b"GIF87a", b"GIF89a")):
            n = sum(1 for _ in _gif_frames(data))
            return _note("an animated GIF", n, "frames")
        if data.startswith((b"II*\0", b"MM\0*", b"II+\0", b"MM\0+")):
            # reduced-resolution copies (NewSubfileType bit 0) are previews, not pages
            n = sum(1 for tags in _tiff_ifds(data) if not tags.get(254, 0) & 1)
            return _note("a multi-page TIFF", n, "pages")
        if data.startswith(b"\x89PNG\r\n\x1a\n"):
            return _note("an animated PNG", _apng_frames(data), "frames")
        if data.startswith(b"RIFF") and data[8:16] == b"WEBPVP8X" and data[20] & 0x02:
            return _note("an animated WebP", _webp_frames(data), "frames")
    except (struct.error, IndexError, ValueError):
        pass  # a damaged container: decoding says what is wrong
    return None


def _note(kind: str, n: int, unit: str) -> str | None:
    return f"{kind}: only the first of {n} {unit} is used" if n > 1 else None


def _apng_frames(data: bytes) -> int:
    """num_frames of the acTL chunk, which comes before the image data (0: not animated)."""
    i = 8
    while i + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[i : i + 8])
        if kind == b"acTL":
            (n,) = struct.unpack(">I", data[i + 8 : i + 12])
            return int(n)
        if kind == b"IDAT":
            return 0
        i += 12 + length
    return 0


def _webp_frames(data: bytes) -> int:
    """The ANMF (animation frame) chunks of an extended WebP."""
    n = 0
    i = 12
    while i + 8 <= len(data):
        kind, length = struct.unpack("<4sI", data[i : i + 8])
        n += kind == b"ANMF"
        i += 8 + length + (length & 1)  # chunks are padded to an even size
    return n


# -- encoding -------------------------------------------------------------------------------


def encode_image(image: npt.NDArray[np.uint8], suffix: str) -> bytes:
    """Encoded bytes of ``image`` in the format of ``suffix`` (JPEG for unknown suffixes)."""
    ext = suffix.lower() if suffix.lower() in IMAGE_EXTENSIONS else ".jpg"
    params: list[int] = [cv2.IMWRITE_JPEG_QUALITY, 92] if ext in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(ext, image, params)
    if not ok:
        raise ImageError(f"OpenCV cannot encode a {ext} image")
    return buf.tobytes()
