"""YOLOX models (Megvii-BaseDetection/YOLOX and its forks) exported to ONNX, decoded as
YOLOX's ONNX demo (``demo/ONNXRuntime/onnx_inference.py``) decodes them.

- Input: ``preproc`` (``yolox/data/data_augment.py``): scale by ``r = min(H/h, W/w)``,
  resize to ``(int(w*r), int(h*r))`` with ``cv2.resize`` bilinear, placed at the TOP-LEFT of
  a gray-114 canvas (not centred); BGR, 0-255 (no division, no mean or std).
- Output: ``(N, A, 5 + C)``, one anchor per cell of strides 8, 16, 32 (and 64 for the P6
  models), cell by cell, row major, stride by stride: raw box offsets, then objectness and C
  class probabilities (sigmoids applied in the graph). ``demo_postprocess`` decodes
  ``xy = (t_xy + cell) * stride``, ``wh = exp(t_wh) * stride``, in input pixels; a score is
  objectness x class probability.
- NMS (``multiclass_nms`` in ``yolox/utils/demo_utils.py``, ``class_agnostic=True`` as the
  demo calls it): each box's best class only, then NMS across classes, with the old
  pixel-inclusive areas (``(x2 - x1 + 1) * (y2 - y1 + 1)``), on boxes in image pixels
  (``boxes /= ratio``).
- A model exported with ``--decode_in_inference`` gives the decoded boxes (centre and size
  in input pixels) itself; its graph then holds the ``Exp`` of the sizes, which is how
  `yolocli.families.recognise` tells (and decodes it as YOLOv5's layout, with YOLOX's input
  and NMS).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from yolocli.errors import ModelError
from yolocli.families.resize import Padded

FloatArray = npt.NDArray[np.float32]
STRIDES = (8, 16, 32)
STRIDES_P6 = (8, 16, 32, 64)


def geometry(width: int, height: int, net_width: int, net_height: int) -> Padded:
    """Where ``preproc`` puts a width x height image: top-left, ``int(side * r)``."""
    r = min(net_height / height, net_width / width)
    new_w, new_h = max(1, int(width * r)), max(1, int(height * r))
    return Padded(
        width, height, net_width, net_height,
        gain_x=r, gain_y=r, resized_w=new_w, resized_h=new_h,
    )  # fmt: skip


def cells(net_w: int, net_h: int, strides: Sequence[int]) -> int:
    """Anchor points of an anchor-free head over ``strides``: one per grid cell."""
    return sum((net_h // s) * (net_w // s) for s in strides)


def strides_for(anchors: int, net_w: int, net_h: int, per_cell: int = 1) -> tuple[int, ...] | None:
    """The stride set (8-32, or 8-64 for P6) whose grids hold ``anchors`` rows at
    ``per_cell`` rows a cell, or None."""
    for strides in (STRIDES, STRIDES_P6):
        if per_cell * cells(net_w, net_h, strides) == anchors:
            return strides
    return None


def _grid(net_w: int, net_h: int, strides: Sequence[int]) -> tuple[FloatArray, FloatArray]:
    """(A, 2) cell (x, y) and (A, 1) stride of every anchor point, in the head's order."""
    grids, expanded = [], []
    for s in strides:
        hs, ws = net_h // s, net_w // s
        yv, xv = np.divmod(np.arange(hs * ws), ws)
        grids.append(np.stack([xv, yv], axis=1))
        expanded.append(np.full((hs * ws, 1), s))
    return (
        np.concatenate(grids).astype(np.float32),
        np.concatenate(expanded).astype(np.float32),
    )


def decode(
    output: npt.NDArray[np.float32],
    net_w: int,
    net_h: int,
    strides: Sequence[int] = STRIDES,
    min_score: float | None = None,
) -> FloatArray:
    """Candidate rows (R, 5 + C) of ONE image's raw ``(A, 5 + C)`` output: network-relative
    (cx, cy, w, h) by ``demo_postprocess``'s grid decode, objectness, then objectness x class
    probability for each class.

    ``min_score``: only the anchors whose objectness is above it (no score can be higher),
    in anchor order.
    """
    t = np.asarray(output, dtype=np.float32)
    a = cells(net_w, net_h, strides)
    if t.ndim != 2 or t.shape[0] != a or t.shape[1] < 6:
        raise ModelError(
            f"a YOLOX output per image at {net_w}x{net_h} is ({a}, 5 + classes), got {t.shape}"
        )
    grid, stride = _grid(net_w, net_h, strides)
    if min_score is not None:
        (keep,) = np.nonzero(t[:, 4] > min_score)
        t, grid, stride = t[keep], grid[keep], stride[keep]
    rows = np.empty_like(t)
    with np.errstate(over="ignore"):  # exp of a wild raw value: an infinite box, as YOLOX's
        rows[:, :2] = (t[:, :2] + grid) * stride
        rows[:, 2:4] = np.exp(t[:, 2:4]) * stride
    rows[:, :4] /= np.array([net_w, net_h, net_w, net_h], dtype=np.float32)
    rows[:, 4] = t[:, 4]
    rows[:, 5:] = t[:, 5:] * t[:, 4:5]
    return rows
