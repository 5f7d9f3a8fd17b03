"""yolocli: darknet-exact YOLO object detection on OpenCV's DNN module.

``from yolocli import Detector`` is the library; ``yolocli`` the command line. Heavy modules
(OpenCV, NumPy, requests) load on first use, so importing yolocli costs almost nothing.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from yolocli.errors import (
    DeviceError,
    DownloadError,
    EngineError,
    ImageError,
    ModelError,
    OptionError,
    OutputError,
    StoreError,
    YolocliError,
)

if TYPE_CHECKING:
    from yolocli.detections import Detections
    from yolocli.detector import Detector
    from yolocli.postprocess import Postprocess


@functools.cache
def version() -> str:
    """yolocli's installed version (read lazily: importlib.metadata costs ~30 ms at start-up)."""
    from importlib import metadata

    try:
        return metadata.version("yolocli")
    except metadata.PackageNotFoundError:  # a source tree that is not installed
        return "0+unknown"


__all__ = [
    "Detections",
    "Detector",
    "DeviceError",
    "DownloadError",
    "EngineError",
    "ImageError",
    "ModelError",
    "OptionError",
    "OutputError",
    "Postprocess",
    "StoreError",
    "YolocliError",
    "__version__",
]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        return version()
    if name == "Detector":
        from yolocli.detector import Detector

        return Detector
    if name == "Postprocess":
        from yolocli.postprocess import Postprocess

        return Postprocess
    if name == "Detections":
        from yolocli.detections import Detections

        return Detections
    raise AttributeError(f"module 'yolocli' has no attribute {name!r}")
