"""YOLOv5 (ultralytics/yolov5, the classic repository) and YOLOv7 (WongKinYiu/yolov7) exported
to ONNX, decoded as their ``detect.py`` decodes them.

- Input: ``letterbox`` (``utils/augmentations.py``) with ``auto=False`` as for an ONNX
  model: the same centred gray-114 letterbox as Ultralytics'; RGB, ``/ 255``.
- Boxes back to the image: ``scale_boxes`` (``utils/general.py``): one gain,
  ``min(H/h, W/w)``, and the unrounded padding ``(W - w * gain) / 2`` (Ultralytics 8 rounds
  both), then clipped. (``detect.py`` also rounds the boxes to whole pixels for display.)
- Output: ``(N, A, 5 + C)``, three anchors per cell over strides 8, 16, 32 (8-64 for P6),
  decoded inside the graph: box centre and size in input pixels, objectness, then C class
  probabilities. A score is objectness x class probability (``non_max_suppression``'s
  ``x[:, 5:] *= x[:, 4:5]``), candidates need objectness above ``conf`` first, and each box
  keeps its best class (``multi_label=False``), with NMS per class.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import numpy.typing as npt

from yolocli.errors import ModelError
from yolocli.families import ultralytics
from yolocli.families.resize import Padded

FloatArray = npt.NDArray[np.float32]

ANCHORS_PER_CELL = 3


def geometry(width: int, height: int, net_width: int, net_height: int) -> Padded:
    """Ultralytics' placement of the picture, with YOLOv5's ``scale_boxes`` mapping back."""
    box = ultralytics.geometry(width, height, net_width, net_height)
    gain = min(net_height / height, net_width / width)
    return replace(
        box, gain_x=gain, gain_y=gain,
        pad_x=(net_width - width * gain) / 2, pad_y=(net_height - height * gain) / 2,
    )  # fmt: skip


def decode(
    output: npt.NDArray[np.float32], net_w: int, net_h: int, min_score: float | None = None
) -> FloatArray:
    """Candidate rows (R, 5 + C) of ONE image's ``(A, 5 + C)`` output: network-relative
    (cx, cy, w, h), objectness, then objectness x class probability for each class.

    ``min_score``: only the rows whose objectness is above it (YOLOv5's first filter,
    ``prediction[..., 4] > conf``), in anchor order.
    """
    t = np.asarray(output, dtype=np.float32)
    if t.ndim != 2 or t.shape[1] < 6:
        raise ModelError(f"a YOLOv5 output per image is (anchors, 5 + classes), got {t.shape}")
    if min_score is not None:
        t = t[t[:, 4] > min_score]
    rows = t.copy()
    rows[:, :4] /= np.array([net_w, net_h, net_w, net_h], dtype=np.float32)
    rows[:, 5:] *= t[:, 4:5]
    return rows
