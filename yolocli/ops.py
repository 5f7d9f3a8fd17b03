"""Pure, vectorized box math: IoU, non-maximum suppression, clipping.

Boxes are (N, 4) arrays of (x1, y1, x2, y2) in pixels. Nothing here loops over boxes in
Python: NMS runs in a handful of NumPy passes over blocks of boxes (see `nms`).
"""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.floating]
IntArray = npt.NDArray[np.int64]

# NMS resolves greedy suppression one block of this many boxes (in score order) at a time,
# and compares a block's survivors with the remaining boxes in slices of about _PAIRS pairs,
# so memory stays bounded (a few MB) whatever the number of boxes.
_BLOCK = 128
_PAIRS = 1 << 16


def box_iou(a: npt.ArrayLike, b: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Intersection over union of every box in ``a`` (N, 4) with every box in ``b`` (M, 4).

    Returns (N, M) float64. Boxes with no area have IoU 0 with everything.
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    if a.shape[0] == 0 or b.shape[0] == 0:
        return np.zeros((a.shape[0], b.shape[0]))
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    iw = np.minimum.outer(a[:, 2], b[:, 2]) - np.maximum.outer(a[:, 0], b[:, 0])
    ih = np.minimum.outer(a[:, 3], b[:, 3]) - np.maximum.outer(a[:, 1], b[:, 1])
    inter = np.maximum(iw, 0) * np.maximum(ih, 0)
    union = np.add.outer(area_a, area_b) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = inter / union
    return np.where(union > 0, iou, 0.0)


def clip_boxes(xyxy: FloatArray, width: int, height: int) -> FloatArray:
    """Boxes clipped to the image [0, width] x [0, height] (a new array)."""
    out = np.array(xyxy, copy=True)
    np.clip(out[:, 0::2], 0, width, out=out[:, 0::2])
    np.clip(out[:, 1::2], 0, height, out=out[:, 1::2])
    return out


@functools.lru_cache(maxsize=64)
def _suppression_cut(iou_threshold: float) -> float:
    """The smallest IoU (a float64) at which ``cv2.dnn.NMSBoxes`` suppresses a box.

    OpenCV computes a pair's overlap as ``1.f - (float)(1.0 - iou)`` and suppresses when that
    float exceeds the (float) threshold. That rounding is monotone in ``iou``, so "suppress"
    is exactly ``iou >= cut`` for one double ``cut``, found here by bisecting the bit
    patterns of doubles in [0, 1]; comparing against it reproduces OpenCV bit for bit.
    """
    thr = np.float32(iou_threshold)

    def suppresses(iou: np.float64) -> bool:
        return bool(np.float32(1) - np.float32(np.float64(1.0) - iou) > thr)

    lo = int(np.float64(0.0).view(np.int64))
    hi = int(np.float64(1.0).view(np.int64))
    if not suppresses(np.int64(hi).view(np.float64)):
        return float("inf")
    if suppresses(np.float64(0.0)):
        return 0.0
    while hi - lo > 1:  # invariant: suppresses(hi) and not suppresses(lo)
        mid = (lo + hi) // 2
        if suppresses(np.int64(mid).view(np.float64)):
            hi = mid
        else:
            lo = mid
    return float(np.int64(hi).view(np.float64))


@functools.lru_cache(maxsize=8)
def _upper(n: int) -> npt.NDArray[np.bool_]:
    """(n, n) True strictly above the diagonal: row j may suppress column i only if j < i."""
    return np.triu(np.ones((n, n), dtype=bool), 1)


def _suppresses(
    a: FloatArray,
    area_a: FloatArray,
    b: FloatArray,
    area_b: FloatArray,
    cut: float,
    suppress_tiny: bool,
) -> npt.NDArray[np.bool_]:
    """(n, m) True where box a_i would suppress box b_j.

    ``a`` and ``b`` are (4, n) rows x1, y1, -x2, -y2: one ``maximum`` per row then gives both
    the larger left edge and the smaller right edge, negated (negation is exact).
    """
    iw = np.maximum.outer(a[0], b[0])
    iw += np.maximum.outer(a[2], b[2])  # = -(min(x2) - max(x1))
    ih = np.maximum.outer(a[1], b[1])
    ih += np.maximum.outer(a[3], b[3])
    np.minimum(iw, 0, out=iw)
    np.minimum(ih, 0, out=ih)
    iw *= ih  # intersection area (a product of two non-positive widths)
    union = np.add.outer(area_a, area_b)
    if suppress_tiny:
        # OpenCV counts boxes whose areas sum to ~0 as fully overlapping (jaccardDistance 0).
        tiny = union <= np.finfo(np.float64).eps
    union -= iw
    with np.errstate(invalid="ignore", divide="ignore"):
        iw /= union
    out: npt.NDArray[np.bool_] = iw >= cut
    if suppress_tiny:
        out |= tiny
    return out


def _greedy(m: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """Greedy NMS on one block, given ``m[j, i]``: j (earlier) would suppress i.

    The kept set is the unique solution of keep[i] = no kept j < i with m[j, i]. Iterating that
    equation from "keep everything" fixes one more position of the dependency chain per pass,
    so it reaches the solution in (chain length + 1) passes, a handful for real boxes.
    """
    keep = np.ones(m.shape[0], dtype=bool)
    while True:
        new = ~(keep @ m)
        if np.array_equal(new, keep):
            return keep
        keep = new


def nms(
    xyxy: npt.ArrayLike,
    scores: npt.ArrayLike,
    iou_threshold: float,
    class_ids: npt.ArrayLike | None = None,
) -> IntArray:
    """Indices of the boxes greedy non-maximum suppression keeps, best score first.

    A box is dropped when a better-scoring kept box overlaps it with IoU above
    ``iou_threshold``; with ``class_ids``, only boxes of the same class suppress each other.
    The result is exactly what ``cv2.dnn.NMSBoxes`` keeps (run per class), in the same order,
    rounding included: ties in score keep input order.
    """
    if not 0.0 <= iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must be in [0, 1], got {iou_threshold}")
    boxes = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    score = np.asarray(scores, dtype=np.float32).reshape(-1)
    if boxes.shape[0] != score.shape[0]:
        raise ValueError(f"{boxes.shape[0]} boxes but {score.shape[0]} scores")
    n = score.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(-score, kind="stable")
    cut = _suppression_cut(float(iou_threshold))
    suppress_tiny = bool(np.float32(1) > np.float32(iou_threshold))
    rows = np.ascontiguousarray(boxes[order].T)  # (4, N): x1, y1, x2, y2 in score order
    area = (rows[2] - rows[0]) * (rows[3] - rows[1])
    rows[2:] *= -1
    cls = None if class_ids is None else np.asarray(class_ids).reshape(-1)[order]

    def suppression(a: slice | IntArray, b: slice | IntArray) -> npt.NDArray[np.bool_]:
        m = _suppresses(rows[:, a], area[a], rows[:, b], area[b], cut, suppress_tiny)
        if cls is not None:
            m &= np.equal.outer(cls[a], cls[b])
        return m

    kept: list[IntArray] = []
    alive = np.arange(n)
    while alive.size:
        block, rest = alive[:_BLOCK], alive[_BLOCK:]
        m = suppression(block, block)
        m &= _upper(block.size)
        winners = block[_greedy(m)]
        kept.append(winners)
        if rest.size:
            step = max(1, _PAIRS // winners.size)
            dead = np.concatenate(
                [
                    suppression(winners, rest[i : i + step]).any(axis=0)
                    for i in range(0, rest.size, step)
                ]
            )
            rest = rest[~dead]
        alive = rest
    return order[np.concatenate(kept)]
