"""yolocli's exceptions: one small hierarchy, each message one line a person can act on."""

from __future__ import annotations


class YolocliError(Exception):
    """Base of every error yolocli raises on purpose; ``str(err)`` is the whole message."""


class ModelError(YolocliError):
    """A model cannot be used: an unknown name, or a cfg/weights/names file missing or wrong."""


class StoreError(YolocliError):
    """The model store cannot be used: unwritable, out of space, or offline with a file missing."""


class DownloadError(StoreError):
    """Every source of a file failed; the message lists what was tried and why each failed."""


class ImageError(YolocliError):
    """An input image cannot be read or decoded."""


class DeviceError(YolocliError):
    """The requested compute device is not available in this OpenCV build."""
