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


class EngineError(YolocliError):
    """The requested engine is not installed, or cannot run what was asked of it here."""


class OutputError(YolocliError):
    """The output folder cannot be used: not writable, or in use by another yolocli run."""


class OptionError(ValueError):
    """A setting is out of range or names something that does not exist.

    ``option`` is the parameter's library name (``"conf"``, ``"classes"``, ...), so a front
    end can point at its own spelling of it (the CLI says ``--conf``).
    """

    def __init__(self, option: str, message: str) -> None:
        super().__init__(f"{option}: {message}")
        self.option = option
        self.message = message


INTERNAL = "internal error: "


def internal(err: BaseException) -> str:
    """The one-sentence message for a bug that cost one input (its record's ``error``)."""
    return f"{INTERNAL}{type(err).__name__}: {err}"
