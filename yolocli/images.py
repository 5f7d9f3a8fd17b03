"""Reading one input's bytes, decoding them to pixels, encoding pixels back."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from yolocli.errors import ImageError
from yolocli.inputs import IMAGE_EXTENSIONS, Source, sniff_image


def read_bytes(source: Source) -> bytes:
    if source.data is not None:
        return source.data
    assert source.path is not None
    try:
        return source.path.read_bytes()
    except FileNotFoundError:
        if source.path.is_symlink():
            raise ImageError("dangling symbolic link") from None
        raise ImageError("no such file") from None
    except IsADirectoryError:
        raise ImageError("is a folder") from None
    except PermissionError:
        raise ImageError("permission denied") from None
    except OSError as err:
        raise ImageError(f"cannot read: {err.strerror or err}") from None


def decode(data: bytes) -> npt.NDArray[np.uint8]:
    """BGR uint8 (H, W, 3) pixels from encoded image bytes; `ImageError` saying why not."""
    if not data:
        raise ImageError("empty file")
    buf = np.frombuffer(data, dtype=np.uint8)
    try:
        # IMREAD_COLOR applies the EXIF orientation and makes 8-bit BGR of grayscale, RGBA,
        # 16-bit and CMYK images alike.
        image = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    except cv2.error as err:
        if "CV_IO_MAX_IMAGE_PIXELS" in str(err):
            raise ImageError(
                "image too large: over 2^30 pixels, OpenCV's limit (a decompression bomb?)"
            ) from None
        raise ImageError(f"cannot decode: {_cv_reason(err)}") from None
    if image is None:
        kind = sniff_image(data[:16])
        if kind is not None:
            raise ImageError(f"a corrupt or truncated {kind[1:].upper()} image")
        raise ImageError("not an image OpenCV can decode")
    return np.asarray(image, dtype=np.uint8)


def _cv_reason(err: cv2.error) -> str:
    text = str(err).strip().splitlines()
    return text[-1].split(") ", 1)[-1] if text else "unknown error"


def encode_image(image: npt.NDArray[np.uint8], suffix: str) -> bytes:
    ext = suffix.lower() if suffix.lower() in IMAGE_EXTENSIONS else ".jpg"
    params: list[int] = [cv2.IMWRITE_JPEG_QUALITY, 92] if ext in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(ext, image, params)
    if not ok:
        raise ImageError(f"OpenCV cannot encode a {ext} image")
    return buf.tobytes()
