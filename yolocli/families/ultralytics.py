"""Ultralytics models (YOLOv5u, YOLOv8, YOLO11, YOLO12, and the end-to-end YOLOv10 and YOLO26)
exported to ONNX, decoded as Ultralytics' own ``predict`` decodes them.

- Input: ``LetterBox`` (``ultralytics/data/augment.py``): scale by ``r = min(H/h, W/w)``,
  resize to ``(round(w*r), round(h*r))`` with ``cv2.resize`` bilinear, pad with gray 114,
  centred (``round(dw - 0.1)`` before, ``round(dw + 0.1)`` after); RGB, float32 ``/ 255``.
- Output, detection head (v5u, v8, 11, 12): ``(N, 4 + C, A)``: box centre and size in input
  pixels (the DFL is inside the graph), then C class probabilities; no objectness. A box's
  score is its best class's probability; ``non_max_suppression`` keeps one class per box
  (``multi_label=False``) and runs NMS per class.
- Output, end-to-end head (v10, YOLO26): ``(N, K, 6)``: x1, y1, x2, y2 in input pixels,
  score, class; already one box per object, no NMS.
- Boxes back to the image: ``scale_boxes``: minus the padding, over the resized size's
  scale per axis (``round(w*r) / w``, ``round(h*r) / h``), clipped.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from yolocli.errors import ModelError
from yolocli.families.resize import Padded

FloatArray = npt.NDArray[np.float32]


def geometry(width: int, height: int, net_width: int, net_height: int) -> Padded:
    """Where ``LetterBox(new_shape, auto=False, center=True)`` puts a width x height image."""
    r = min(net_height / height, net_width / width)
    new_w, new_h = max(1, round(width * r)), max(1, round(height * r))
    dw, dh = (net_width - new_w) / 2, (net_height - new_h) / 2
    return Padded(
        width, height, net_width, net_height, gain_x=new_w / width, gain_y=new_h / height,
        resized_w=new_w, resized_h=new_h, left=round(dw - 0.1), top=round(dh - 0.1),
    )  # fmt: skip


def decode(
    output: npt.NDArray[np.float32], net_w: int, net_h: int, min_score: float | None = None
) -> FloatArray:
    """Candidate rows (R, 5 + C) of ONE image's ``(4 + C, A)`` output: network-relative
    (cx, cy, w, h), the best class probability (in the objectness column), then the C class
    probabilities (the scores: there is no objectness to multiply by).

    ``min_score``: only the anchors whose best class scores above it (Ultralytics' first
    filter, ``prediction[:, 4:].amax(1) > conf``), in anchor order.
    """
    t = np.asarray(output, dtype=np.float32)
    if t.ndim != 2 or t.shape[0] < 5:
        raise ModelError(
            f"an Ultralytics output per image is (4 + classes, anchors), got {t.shape}"
        )
    best = t[4:].max(axis=0)
    if min_score is not None:
        (keep,) = np.nonzero(best > min_score)
        t, best = t[:, keep], best[keep]
    rows = np.empty((t.shape[1], t.shape[0] + 1), dtype=np.float32)
    rows[:, 0] = t[0] / np.float32(net_w)
    rows[:, 1] = t[1] / np.float32(net_h)
    rows[:, 2] = t[2] / np.float32(net_w)
    rows[:, 3] = t[3] / np.float32(net_h)
    rows[:, 4] = best
    rows[:, 5:] = t[4:].T
    return rows


def decode_end2end(
    output: npt.NDArray[np.float32],
    net_w: int,
    net_h: int,
    classes: int,
    min_score: float | None = None,
) -> FloatArray:
    """Candidate rows (R, 5 + C) of ONE image's end-to-end ``(K, 6)`` output (x1, y1, x2, y2
    in input pixels, score, class): one row per box, its score in its class's column and
    zeros elsewhere, so every box keeps exactly its one class."""
    t = np.asarray(output, dtype=np.float32)
    if t.ndim != 2 or t.shape[1] != 6:
        raise ModelError(f"an end-to-end output per image is (boxes, 6), got {t.shape}")
    if min_score is not None:
        t = t[t[:, 4] > min_score]
    cls = t[:, 5].astype(np.int64)
    bad = (cls < 0) | (cls >= classes)
    if bad.any():
        raise ModelError(
            f"the end-to-end output names class {int(cls[bad][0])}, the model has {classes}"
        )
    rows = np.zeros((t.shape[0], 5 + classes), dtype=np.float32)
    rows[:, 0] = (t[:, 0] + t[:, 2]) / np.float32(2 * net_w)
    rows[:, 1] = (t[:, 1] + t[:, 3]) / np.float32(2 * net_h)
    rows[:, 2] = (t[:, 2] - t[:, 0]) / np.float32(net_w)
    rows[:, 3] = (t[:, 3] - t[:, 1]) / np.float32(net_h)
    rows[:, 4] = t[:, 4]
    rows[np.arange(t.shape[0]), 5 + cls] = t[:, 4]
    return rows


def is_ultralytics(metadata: Mapping[str, str]) -> bool:
    """True for metadata Ultralytics' exporter wrote (``names`` with ``task``/``imgsz``, or
    its ``author``); YOLOv5's classic exporter writes only ``stride`` and ``names``."""
    return "names" in metadata and (
        "task" in metadata or "imgsz" in metadata or "Ultralytics" in metadata.get("author", "")
    )


def names_from_metadata(text: str) -> list[str]:
    """Class names from a ``names`` metadata value: a Python dict ``{0: 'person', ...}`` (as
    Ultralytics and YOLOv5 write it) or list; `ModelError` if it is neither."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        value = None
    if isinstance(value, dict) and all(isinstance(k, int) for k in value):
        if sorted(value) != list(range(len(value))):
            raise ModelError("the model's names metadata does not number its classes 0..n-1")
        return [str(value[k]) for k in range(len(value))]
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    shown = text if len(text) <= 60 else text[:60] + "..."
    raise ModelError(f"the model's names metadata is not a dict or list of names: {shown!r}")


def imgsz_from_metadata(text: str) -> tuple[int, int] | None:
    """(height, width) from an ``imgsz`` metadata value (``[640, 640]``), or None."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    if isinstance(value, int):
        return value, value
    if (
        isinstance(value, list | tuple)
        and len(value) == 2
        and all(isinstance(v, int) for v in value)
    ):
        return int(value[0]), int(value[1])
    return None
