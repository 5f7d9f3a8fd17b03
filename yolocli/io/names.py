"""What an input is by its name alone: an image file's extension, an object-store URI.

Kept free of imports beyond the standard library, so the command line can sort its
arguments before it loads the readers (`yolocli.io.inputs`, `yolocli.io.remote`).
"""

from __future__ import annotations

# Read as inputs, and written back in kind (OpenCV encodes all of them); other names get .jpg.
# GIF: OpenCV 4.11+ decodes it (the first frame); annotated GIFs are written as .gif too.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"})

# Live sources, not object stores: these schemes stay with `yolocli.io.video`.
LIVE_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp")


def is_uri(text: str) -> bool:
    """True for ``scheme://...`` naming an object store or another pyarrow file system."""
    scheme, sep, _ = text.partition("://")
    return bool(sep) and scheme.isidentifier() and scheme.lower() not in LIVE_SCHEMES
