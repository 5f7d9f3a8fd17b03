"""Resize-and-pad input preparation, as the Ultralytics and YOLOX reference code does it.

Both resize the uint8 image with ``cv2.resize`` (bilinear), keeping the aspect ratio, and pad
it with gray 114 into the network input. They differ in where the picture goes (centred, or
at the top-left corner), how the resized size is rounded, the channel order and the value
range; each family module computes its own `Padded` geometry, and its recipe says which.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from yolocli.families.darknet.letterbox import Letterbox

PAD_VALUE = 114  # the gray both families pad with, in 0-255


@dataclass(frozen=True)
class Padded(Letterbox):
    """Where a (width x height) image lands in the network input: resized to
    (resized_w x resized_h), a scale of ``gain_x`` and ``gain_y``, and placed at (left, top),
    gray around it.

    A `families.darknet.letterbox.Letterbox`, so everything that carries one (outputs, workers,
    postprocessing) carries this too; only the mapping back differs from darknet's.
    """

    gain_x: float = 1.0
    gain_y: float = 1.0
    resized_w: int = 0
    resized_h: int = 0
    left: int = 0
    top: int = 0
    # where boxes are mapped back from, if not (left, top): YOLOv5's scale_boxes takes the
    # unrounded padding, (net - side * gain) / 2
    pad_x: float | None = None
    pad_y: float | None = None

    @property
    def new_size(self) -> tuple[int, int]:
        return self.resized_w, self.resized_h

    @property
    def offset(self) -> tuple[int, int]:
        return self.left, self.top

    def to_image(self, cxcywh: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
        """Network-relative (cx, cy, w, h) boxes (N, 4) to unclipped image-pixel xyxy: input
        pixels, less the padding, over the gain (Ultralytics' ``scale_boxes``, with a gain per
        axis from the rounded resized size; YOLOX's ``boxes /= ratio``, no padding before)."""
        b = np.asarray(cxcywh, dtype=np.float64)
        cx, cy = b[:, 0] * self.net_width, b[:, 1] * self.net_height
        hw, hh = b[:, 2] * self.net_width / 2.0, b[:, 3] * self.net_height / 2.0
        out = np.empty((b.shape[0], 4), dtype=np.float64)
        left = self.left if self.pad_x is None else self.pad_x
        top = self.top if self.pad_y is None else self.pad_y
        out[:, 0] = cx - hw - left
        out[:, 1] = cy - hh - top
        out[:, 2] = cx + hw - left
        out[:, 3] = cy + hh - top
        out[:, 0::2] /= self.gain_x
        out[:, 1::2] /= self.gain_y
        return out


_UNIT = (np.arange(256, dtype=np.float32) / np.float32(255)).reshape(1, 256)
_RAW = np.arange(256, dtype=np.float32).reshape(1, 256)


def fill(
    image: npt.NDArray[np.uint8],
    box: Padded,
    *,
    rgb: bool,
    unit: bool,
    out: npt.NDArray[np.float32] | None = None,
) -> npt.NDArray[np.float32]:
    """The network input (3, net_h, net_w) float32 for BGR uint8 ``image`` placed as ``box``
    says: ``cv2.resize`` bilinear of the uint8 image, gray 114 around it; channels in RGB
    order if ``rgb`` (else BGR), values in [0, 1] if ``unit`` (float32 ``x / 255``, exactly as
    the reference's tensors; else 0-255)."""
    if out is None:
        out = np.empty((3, box.net_height, box.net_width), np.float32)
    w, h = box.resized_w, box.resized_h
    resized = image
    if (w, h) != (image.shape[1], image.shape[0]):
        resized = np.asarray(cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR))
    lut = _UNIT if unit else _RAW
    gray = lut[0, PAD_VALUE]
    top, left = box.top, box.left
    out[:, :top] = gray
    out[:, top + h :] = gray
    out[:, top : top + h, :left] = gray
    out[:, top : top + h, left + w :] = gray
    # uint8 planes (fast), then each one's values straight into its place in ``out``: 1.1 ms
    # against 1.5 for the float (h, w, 3) image copied across with a transpose (640 x 640)
    planes = cv2.split(resized)
    for channel, plane in enumerate(planes[::-1] if rgb else planes):
        cv2.LUT(plane, lut, dst=out[channel, top : top + h, left : left + w])
    return out
