"""Pure, vectorized box math: IoU, DIoU and IoS, non-maximum suppression (IoU, and
darknet's DIoU) and merging, clipping, tiling an image into overlapping windows.

Boxes are (N, 4) arrays of (x1, y1, x2, y2) in pixels. Nothing here loops over boxes in
Python: NMS runs in a handful of NumPy passes over blocks of boxes (see `nms`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.floating]
IntArray = npt.NDArray[np.int64]

# NMS resolves greedy suppression one block of this many boxes (in score order) at a time,
# then compares the block's survivors with the remaining boxes in slices small enough for
# the temporaries (about 128 KB each) to stay in the L2 cache: measured on a 2 MB-L2 EPYC,
# 64-box blocks and these slices are 2x faster at 5,000 boxes than 4x larger ones.
_BLOCK = 64
# Up to this many boxes, one block holds them all: the fewest NumPy calls.
_ONE_BLOCK = 160
_PAIRS = {np.float32: 1 << 15, np.float64: 1 << 14}
# Relative error bound (generous) of IoU computed in float32 from float32 coordinates; pairs
# whose float32 IoU lies this close to the cut are recomputed in float64.
_F32_BAND = 1e-5
_EPS64 = float(np.finfo(np.float64).eps)


def box_iou(a: npt.ArrayLike, b: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Intersection over union of every box in ``a`` (N, 4) with every box in ``b`` (M, 4).

    Returns (N, M) float64. Boxes with no area have IoU 0 with everything.
    """
    a, b = _rows(a), _rows(b)
    if a.shape[1] == 0 or b.shape[1] == 0:
        return np.zeros((a.shape[1], b.shape[1]))
    return _iou(a, b)


def _iou(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """(n, m) IoU of boxes given as (4, n) and (4, m) rows x1, y1, x2, y2 (see `_rows`)."""
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[2] - b[0]) * (b[3] - b[1])
    iw = np.minimum.outer(a[2], b[2]) - np.maximum.outer(a[0], b[0])
    ih = np.minimum.outer(a[3], b[3]) - np.maximum.outer(a[1], b[1])
    inter = np.maximum(iw, 0) * np.maximum(ih, 0)
    union = np.add.outer(area_a, area_b) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = inter / union
    out: npt.NDArray[np.float64] = np.where(union > 0, iou, 0.0)
    return out


def _rows(boxes: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """(N, 4) boxes as (4, N) contiguous float64 rows x1, y1, x2, y2: the outer operations
    below run about 2x faster on contiguous rows than on the (N, 4) array's strided columns."""
    return np.ascontiguousarray(np.asarray(boxes, dtype=np.float64).reshape(-1, 4).T)


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


_UPPER = np.triu(np.ones((_ONE_BLOCK, _ONE_BLOCK), dtype=bool), 1)


def _upper(n: int) -> npt.NDArray[np.bool_]:
    """(n, n) True strictly above the diagonal: row j may suppress column i only if j < i.
    (A view of one matrix: blocks of every size up to `_ONE_BLOCK` arise, many classes of
    boxes each ending in a block of its own size.)"""
    if n <= _UPPER.shape[0]:
        return _UPPER[:n, :n]
    return np.triu(np.ones((n, n), dtype=bool), 1)


def _intersection(
    a: npt.NDArray[Any], b: npt.NDArray[Any], signed: bool = False
) -> npt.NDArray[Any]:
    """(n, m) intersection areas of boxes a_i and b_j, in the dtype of the inputs.

    ``a`` and ``b`` are (4, n) rows x1, y1, -x2, -y2: one ``maximum`` per row then gives both
    the larger left edge and the smaller right edge, negated (negation is exact).

    ``signed``: the height is not clamped at 0, one pass fewer: where the boxes overlap the
    area is the same, elsewhere it is 0 or negative rather than 0. Enough to compare with a
    positive bound."""
    # the four outer maxima in one call (4, n, m): one pass of NumPy's machinery, not four
    edges = np.maximum(a[:, :, None], b[:, None, :])
    iw: npt.NDArray[Any] = edges[0]
    iw += edges[2]  # = -(min(x2) - max(x1))
    ih = edges[1]
    ih += edges[3]
    np.minimum(iw, 0, out=iw)
    if not signed:
        np.minimum(ih, 0, out=ih)
    iw *= ih  # a product of two non-positive widths (or a negative height, when signed)
    return iw


def _overlap(a: FloatArray, area_a: FloatArray, b: FloatArray, area_b: FloatArray) -> FloatArray:
    """(n, m) IoU of boxes a_i and b_j (rows as `_intersection` takes them), in the dtype of
    the inputs. The union is ``area_a + area_b - inter`` in that order, as OpenCV computes it.
    """
    iw: FloatArray = _intersection(a, b)
    union = np.add.outer(area_a, area_b)
    union -= iw
    with np.errstate(invalid="ignore", divide="ignore"):
        iw /= union
    return iw


class _Boxes:
    """Boxes in score order, ready for suppression tests between any two index sets.

    OpenCV decides in float64. When all boxes have an area and there are more than one block
    of them, the test first runs in float32 and without the union: for a union above 0,
    IoU >= t exactly when inter / (area_a + area_b) >= c with c = t / (1 + t), whose
    denominator is one addition of per-box terms. Pairs on either side of c by more than the
    float32 error bound (`_float32_margin`) are decided exactly; only the rare pairs in
    between are recomputed in float64.
    """

    def __init__(self, boxes: npt.NDArray[Any], order: IntArray, iou_threshold: float) -> None:
        self.boxes, self.order = boxes, order  # (N, 4) x1, y1, x2, y2 as given
        self.threshold = iou_threshold
        self.cut = _suppression_cut(iou_threshold)
        self.rows32: npt.NDArray[np.float32] | None = None
        # float32 pays off on the large comparisons of many boxes; a single block is too
        # small to win back the checks below.
        if order.size > _ONE_BLOCK and self.cut <= 1:
            r = boxes.T.take(order, axis=1)  # (4, N) in score order, as given
            w, h = r[2] - r[0], r[3] - r[1]
            c = self.cut / (1 + self.cut)
            margin = _float32_margin(r, w, h, c, exact=boxes.dtype == np.float32)
            if margin is not None and c - margin > 0:  # (a positive bound: see suppresses)
                area = (w * h).astype(np.float32)
                r32 = r.astype(np.float32)
                r32[2:] *= -1
                self.rows32 = r32
                self.area32 = area
                self.c_lo, self.c_hi = np.float32(c - margin), np.float32(c + margin)
        self.pairs = _PAIRS[np.float32 if self.rows32 is not None else np.float64]

    @functools.cached_property
    def rows(self) -> npt.NDArray[np.float64]:
        """(4, N) float64 x1, y1, -x2, -y2 in score order (the exact test's)."""
        rows = np.ascontiguousarray(self.boxes[self.order].T, dtype=np.float64)
        rows[2:] *= -1
        return rows

    @functools.cached_property
    def area(self) -> npt.NDArray[np.float64]:
        r = self.rows
        area: npt.NDArray[np.float64] = (-r[2] - r[0]) * (-r[3] - r[1])
        return area

    @functools.cached_property
    def tiny(self) -> bool:
        """OpenCV counts a pair whose areas sum to ~0 as fully overlapping; that needs two
        boxes of (almost) no area, so the rule costs nothing unless there are such boxes."""
        return bool(np.float32(1) > np.float32(self.threshold)) and bool(
            np.count_nonzero(self.area <= _EPS64) > 1
        )

    def suppresses(self, a: IntArray, b: IntArray) -> npt.NDArray[np.bool_]:
        """(len(a), len(b)) True where box a_i would suppress box b_j."""
        if self.rows32 is None:
            return self._exact(a, b)
        # signed: both bounds below are positive, so where boxes do not meet (an area <= 0)
        # both tests fail, as they would on 0
        # take, not rows[:, a]: that indexing lays the result out column-major, every row
        # strided, and the outer operations run about 1.4x slower on strided rows
        inter = _intersection(self.rows32.take(a, axis=1), self.rows32.take(b, axis=1), True)
        # inter / (area_a + area_b) against c +- margin: one outer sum and one division
        # rather than a sum for each bound (a rounding or two of float32, far inside margin)
        ratio = np.add.outer(self.area32.take(a), self.area32.take(b))
        np.divide(inter, ratio, out=ratio)
        out: npt.NDArray[np.bool_] = ratio >= self.c_hi
        near = ratio >= self.c_lo
        if np.count_nonzero(near) != np.count_nonzero(out):  # some pairs are too close to call
            i, j = np.nonzero(near & ~out)
            out[i, j] = self._exact_pairs(a[i], b[j])
        return out

    def _exact(self, a: IntArray, b: IntArray) -> npt.NDArray[np.bool_]:
        rows = self.rows
        q = _overlap(rows.take(a, axis=1), self.area[a], rows.take(b, axis=1), self.area[b])
        out: npt.NDArray[np.bool_] = q >= self.cut
        if self.tiny:
            out |= np.add.outer(self.area[a], self.area[b]) <= _EPS64
        return out

    def _exact_pairs(self, a: IntArray, b: IntArray) -> npt.NDArray[np.bool_]:
        """Suppression of b[k] by a[k] for each k, in float64: `_overlap`'s operations, pairwise."""
        r, area = self.rows, self.area
        iw = np.maximum(r[0, a], r[0, b]) + np.maximum(r[2, a], r[2, b])
        ih = np.maximum(r[1, a], r[1, b]) + np.maximum(r[3, a], r[3, b])
        inter = np.minimum(iw, 0) * np.minimum(ih, 0)
        union = area[a] + area[b] - inter
        with np.errstate(invalid="ignore", divide="ignore"):
            out: npt.NDArray[np.bool_] = inter / union >= self.cut
        return out


def _float32_margin(
    rows: npt.NDArray[Any], w: npt.NDArray[Any], h: npt.NDArray[Any], c: float, exact: bool
) -> float | None:
    """How far from ``c`` (in units of area_a + area_b) the float32 test of `_Boxes` may err,
    generously, or None where it must not run: a box without area, non-finite or huge
    coordinates, boxes so small that OpenCV's rule for areas summing to ~0 could apply, or
    coordinates that float32 would blur by more than 1% of ``c``.

    ``exact``: the coordinates are float32 already, and the only error is the arithmetic's,
    a few float32 roundings of the result, far below ``_F32_BAND`` of ``c``. Otherwise
    rounding them to float32 moves each by up to 2^-24 M (M the largest magnitude), each
    intersection side by 4 x that, and the intersection by at most 4 x 2^-24 M (iw + ih),
    which is at most 8 x 2^-24 M / m of area_a + area_b (m the smallest box side); the margin
    takes twice that."""
    big = max(float(rows.max()), -float(rows.min()))
    small = min(float(w.min()), float(h.min()))
    if not (big <= 1e15 and small >= 1e-10 and float((w * h).min()) > 1e-15):
        return None  # (a NaN fails these too)
    margin = _F32_BAND * c
    if not exact:
        margin += 16 * 2.0**-24 * big / small
    return margin if margin <= 0.01 * c else None


def _greedy(m: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """Greedy NMS on one block, given ``m[j, i]``: j (earlier) would suppress i.

    The kept set is the unique solution of keep[i] = no kept j < i with m[j, i]. Iterating that
    equation from "keep everything" fixes one more position of the dependency chain per pass,
    so it reaches the solution in (chain length + 1) passes, a handful for real boxes. The
    map is antitone, so successive passes are nested sets: equal counts mean equal sets.
    """
    keep = np.ones(m.shape[0], dtype=bool)
    count = keep.size
    while True:
        keep = ~(keep @ m)
        new_count = int(np.count_nonzero(keep))
        if new_count == count:
            return keep
        count = new_count


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
    boxes = np.asarray(xyxy)
    if boxes.dtype != np.float32:
        boxes = boxes.astype(np.float64)
    boxes = boxes.reshape(-1, 4)
    score = np.asarray(scores, dtype=np.float32).reshape(-1)
    if boxes.shape[0] != score.shape[0]:
        raise ValueError(f"{boxes.shape[0]} boxes but {score.shape[0]} scores")
    n = score.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(-score, kind="stable")
    boxes_ = _Boxes(boxes, order, float(iou_threshold))
    cls = None if class_ids is None else np.asarray(class_ids).reshape(-1)[order]
    if cls is None or n <= _ONE_BLOCK:
        return order[_greedy_keep(n, _suppression(boxes_, cls), boxes_.pairs)]
    # Boxes of different classes never meet: many boxes of many classes run as groups of
    # classes (a class alone once it fills a block), not all against all.
    kept = []
    for group, mixed in _class_groups(cls):
        test = _suppression(boxes_, cls if mixed else None, group)
        kept.append(group[_greedy_keep(group.size, test, boxes_.pairs)])
    return order[np.sort(np.concatenate(kept))]


def _class_groups(cls: IntArray) -> Iterator[tuple[IntArray, bool]]:
    """Positions (ascending within each class) grouped by class: consecutive classes share a
    group up to `_BLOCK` positions; ``mixed`` says a group holds more than one class."""
    by_class = np.argsort(cls, kind="stable")
    starts = np.flatnonzero(np.diff(cls[by_class])) + 1
    bounds = [0, *starts.tolist(), by_class.size]
    first = 0
    for i in range(1, len(bounds)):
        last = i == len(bounds) - 1
        if last or bounds[i + 1] - bounds[first] > _BLOCK:
            yield by_class[bounds[first] : bounds[i]], i - first > 1
            first = i


def _suppression(
    boxes: _Boxes, cls: IntArray | None, group: IntArray | None = None
) -> Callable[[IntArray, IntArray], npt.NDArray[np.bool_]]:
    """`_greedy_keep`'s suppression test: box a_i would suppress box b_j, only within a class
    when ``cls`` is given; positions are ``group``'s own numbering when one is given."""

    def suppression(a: IntArray, b: IntArray) -> npt.NDArray[np.bool_]:
        if group is not None:
            a, b = group[a], group[b]
        m = boxes.suppresses(a, b)
        if cls is not None:
            m &= np.equal.outer(cls[a], cls[b])
        return m

    return suppression


def box_diou(a: npt.ArrayLike, b: npt.ArrayLike, beta: float = 0.6) -> npt.NDArray[np.float64]:
    """Distance-IoU of every box in ``a`` (N, 4) with every box in ``b`` (M, 4), as darknet's
    ``box_diou`` / ``box_diounms`` compute it: IoU minus ``(d² / c²) ** beta``, where d is the
    distance between the centres and c the diagonal of the smallest box enclosing both (when
    c is 0, the IoU alone). (N, M) float64; at most 1, and below -1 only never."""
    a, b = _rows(a), _rows(b)
    if a.shape[1] == 0 or b.shape[1] == 0:
        return np.zeros((a.shape[1], b.shape[1]))
    iou = _iou(a, b)
    cw = np.maximum.outer(a[2], b[2]) - np.minimum.outer(a[0], b[0])
    ch = np.maximum.outer(a[3], b[3]) - np.minimum.outer(a[1], b[1])
    c = cw * cw + ch * ch
    dx = np.subtract.outer(a[0] + a[2], b[0] + b[2]) / 2
    dy = np.subtract.outer(a[1] + a[3], b[1] + b[3]) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        term = np.power((dx * dx + dy * dy) / c, beta)
    out: npt.NDArray[np.float64] = np.where(c > 0, iou - term, iou)
    return out


def diou_nms(
    xyxy: npt.ArrayLike,
    scores: npt.ArrayLike,
    threshold: float,
    class_ids: npt.ArrayLike | None = None,
    *,
    beta: float = 0.6,
    scale: tuple[float, float] = (1.0, 1.0),
) -> IntArray:
    """Indices of the boxes darknet's greedy DIoU-NMS keeps, best score first.

    AlexeyAB darknet's ``diounms_sort``: best score first, a box is dropped when a better kept
    box of its class (any class without ``class_ids``) has a DIoU (`box_diou` with ``beta``)
    above ``threshold``. ``scale`` (width, height) divides the coordinates first: darknet
    works on image-relative boxes, where the distance term differs from the one in pixels
    unless the image is square. Ties in score keep input order.
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    if not beta > 0:
        raise ValueError(f"beta must be positive, got {beta}")
    boxes = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    score = np.asarray(scores, dtype=np.float32).reshape(-1)
    if boxes.shape[0] != score.shape[0]:
        raise ValueError(f"{boxes.shape[0]} boxes but {score.shape[0]} scores")
    n = score.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    sx, sy = (float(v) for v in scale)
    if not (sx > 0 and sy > 0):
        raise ValueError(f"scale must be positive, got {scale}")
    order = np.argsort(-score, kind="stable")
    rows = boxes[order] / np.array([sx, sy, sx, sy])
    cls = None if class_ids is None else np.asarray(class_ids).reshape(-1)[order]

    def suppression(a: IntArray, b: IntArray) -> npt.NDArray[np.bool_]:
        m: npt.NDArray[np.bool_] = box_diou(rows[a], rows[b], beta) > threshold
        if cls is not None:
            m &= np.equal.outer(cls[a], cls[b])
        return m

    return order[_greedy_keep(n, suppression, _PAIRS[np.float64])]


# `first_kept` first runs NMS on this many times ``limit`` of the best boxes, and grows the
# set by this factor while they keep fewer than ``limit``.
_FIRST_SHARE = 4


def first_kept(
    nms_of: Callable[[IntArray], IntArray], scores: npt.ArrayLike, limit: int
) -> IntArray:
    """The first ``limit`` indices a greedy NMS keeps, best score first, found from as few of
    the best-scoring boxes as it takes.

    ``nms_of(subset)`` runs the NMS on the boxes at ``subset`` (ascending indices) and returns
    positions in ``subset``, best score first, ties in input order (as `nms` and `diou_nms`
    do). Greedy NMS decides each box from better-scoring boxes alone, so what it keeps among
    all boxes scoring at least s is exactly what it keeps overall that scores at least s: once
    such a subset keeps ``limit`` boxes, they are the answer. It starts with the best
    ``4 x limit`` boxes (ties included) and grows 4x while they keep too few: on an
    Ultralytics export with random weights (8,000 candidates an image of 8,400 anchors, a
    cap of 300 boxes), NMS then ran on about 1,200 of them.

    Each larger subset is run as the boxes kept so far and the new ones: a box suppressed
    by a better one suppresses nothing, so leaving it out changes no decision, and the boxes
    kept so far (none of which suppresses another) are kept again. On those random-weight
    exports this spared NMS on about 1,000 of the first 1,200 boxes.
    """
    score = np.asarray(scores, dtype=np.float32).reshape(-1)
    n = score.size
    if limit <= 0 or n <= _FIRST_SHARE * limit:
        return nms_of(np.arange(n))[: limit if limit > 0 else None]
    ranked = -np.sort(-score)  # descending
    seen = np.zeros(n, dtype=bool)  # boxes some subset held
    kept = np.zeros(0, dtype=np.int64)  # what the last subset kept, best first
    k = _FIRST_SHARE * limit
    while True:
        # every box scoring at least the k-th (ties included); past the last step, all of them
        new = ~seen if k >= n else (score >= ranked[k - 1]) & ~seen
        seen |= new
        subset = np.sort(np.concatenate([kept, np.flatnonzero(new)]))
        kept = subset[nms_of(subset)]
        if kept.size >= limit or k >= n:
            return kept[:limit]
        k *= _FIRST_SHARE


def _greedy_keep(
    n: int, suppression: Callable[[IntArray, IntArray], npt.NDArray[np.bool_]], pairs: int
) -> IntArray:
    """Positions (ascending) greedy suppression keeps among ``n`` boxes already in priority
    order, where ``suppression(a, b)[i, j]`` says box a_i would suppress box b_j.

    One block of boxes at a time is resolved exactly (`_greedy`), then its survivors remove
    what they suppress from the rest, in slices of about ``pairs`` pairs.
    """
    kept: list[IntArray] = []
    alive = np.arange(n)
    while alive.size:
        size = alive.size if alive.size <= _ONE_BLOCK else _BLOCK
        block, rest = alive[:size], alive[size:]
        m = suppression(block, block)
        m &= _upper(block.size)
        winners = block[_greedy(m)]
        kept.append(winners)
        if rest.size:
            step = max(1, pairs // winners.size)
            dead = np.concatenate(
                [
                    suppression(winners, rest[i : i + step]).any(axis=0)
                    for i in range(0, rest.size, step)
                ]
            )
            rest = rest[~dead]
        alive = rest
    return np.concatenate(kept)


def box_ios(a: npt.ArrayLike, b: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Intersection over the smaller area of every box in ``a`` (N, 4) with every box in ``b``
    (M, 4): (N, M) float64, 1 when one box lies inside the other (IoU cannot see that a
    half-object box belongs to the whole one). Boxes with no area have IoS 0 with everything.
    """
    a, b = _rows(a), _rows(b)
    if a.shape[1] == 0 or b.shape[1] == 0:
        return np.zeros((a.shape[1], b.shape[1]))
    return _ios(a, b)


def _ios(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """(n, m) IoS of boxes given as (4, n) and (4, m) rows x1, y1, x2, y2."""
    iw = np.minimum.outer(a[2], b[2]) - np.maximum.outer(a[0], b[0])
    ih = np.minimum.outer(a[3], b[3]) - np.maximum.outer(a[1], b[1])
    inter = np.maximum(iw, 0) * np.maximum(ih, 0)
    smaller = np.minimum.outer((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = inter / smaller
    return np.where(smaller > 0, out, 0.0)


def tiles(width: int, height: int, size: int | tuple[int, int], overlap: float) -> IntArray:
    """Windows (T, 4) int64 x1, y1, x2, y2 that cut a ``width`` x ``height`` image into tiles
    of ``size`` pixels (an int, or (w, h)), neighbours overlapping by at least ``overlap`` (a
    fraction of the tile side, in [0, 1)), rows top to bottom, left to right within a row.

    Every tile lies inside the image, never padded: along each axis, as many tiles as that
    overlap needs are spread evenly from edge to edge (so the last one is shifted inwards and
    the overlaps are equal, to within a pixel). A side no longer than the tile is one tile of
    the whole side: an image no larger than a tile is one tile, the image itself.
    """
    tile_w, tile_h = (size, size) if isinstance(size, int | np.integer) else size
    if width < 1 or height < 1:
        raise ValueError(f"the image must have pixels, got {width}x{height}")
    if tile_w < 1 or tile_h < 1:
        raise ValueError(f"tiles must be at least 1 pixel, got {tile_w}x{tile_h}")
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    xs = _spans(int(width), int(tile_w), overlap)
    ys = _spans(int(height), int(tile_h), overlap)
    out = np.empty((ys.shape[0], xs.shape[0], 4), dtype=np.int64)
    out[..., 0::2] = xs[None, :, :]
    out[..., 1::2] = ys[:, None, :]
    return out.reshape(-1, 4)


def _spans(length: int, tile: int, overlap: float) -> IntArray:
    """(n, 2) start, end of the tiles along one axis (see `tiles`)."""
    tile = min(tile, length)
    if tile == length:
        return np.array([[0, length]], dtype=np.int64)
    # the overlap in pixels, rounded up so it is never less than asked (round() first drops
    # the float noise of e.g. 0.2 * 415 = 83.00000000000001)
    step = tile - min(tile - 1, math.ceil(round(overlap * tile, 9)))
    n = -(-(length - tile) // step) + 1
    # n - 1 strides of at most `step` pixels each reach from 0 to length - tile
    starts = np.arange(n, dtype=np.int64) * (length - tile) // (n - 1)
    return np.stack([starts, starts + tile], axis=1)


MERGE_METHODS = ("nms", "nmm")
MATCH_METRICS = ("iou", "ios", "diou")


class Merged(NamedTuple):
    """What `merge` made of N boxes: K results, best score first.

    ``keep`` (K,): the input index of each result's best box (its score and class are the
    result's); ``xyxy`` (K, 4) float64: the result boxes (``xyxy[keep]`` for NMS, each
    group's union for NMM); ``group`` (N,): which result each input box went into.
    """

    keep: IntArray
    xyxy: npt.NDArray[np.float64]
    group: IntArray


def merge(
    xyxy: npt.ArrayLike,
    scores: npt.ArrayLike,
    class_ids: npt.ArrayLike | None = None,
    *,
    method: str = "nms",
    match: str = "iou",
    threshold: float = 0.45,
    priority: npt.ArrayLike | None = None,
    beta: float = 0.6,
    scale: tuple[float, float] = (1.0, 1.0),
) -> Merged:
    """Greedy non-maximum suppression (``"nms"``) or merging (``"nmm"``) of boxes.

    Boxes are taken best score first (with ``priority`` (N,): highest priority first, then best
    score; sliced inference ranks the finer views of an object first). Each box not yet matched
    starts a result, and every later box that it matches (``match``: IoU, or IoS, intersection
    over the smaller box; or darknet's DIoU with exponent ``beta`` on boxes divided by
    ``scale``, as `diou_nms` measures it; above ``threshold``; with ``class_ids``, same class
    only) joins that result. NMS reports the first box of each result; NMM their union, with the
    first box's score and class (boxes are matched against the first box itself, not the growing
    union, as SAHI's greedy NMM does). Ties are broken by the box coordinates and class, not by
    input order, so any permutation of the same boxes gives the same results; where scores do
    not tie (and without ``priority``), NMS with IoU keeps exactly what `nms` keeps, OpenCV's
    rounding included. When no two boxes of a class match, every box is its own result under
    either method.
    """
    if method not in MERGE_METHODS:
        raise ValueError(f"method must be one of {', '.join(MERGE_METHODS)}, got {method!r}")
    if match not in MATCH_METRICS:
        raise ValueError(f"match must be one of {', '.join(MATCH_METRICS)}, got {match!r}")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    boxes = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    score = np.asarray(scores, dtype=np.float32).reshape(-1)
    n = boxes.shape[0]
    if score.shape[0] != n:
        raise ValueError(f"{n} boxes but {score.shape[0]} scores")
    cls = None if class_ids is None else np.asarray(class_ids, dtype=np.int64).reshape(-1)
    if cls is not None and cls.shape[0] != n:
        raise ValueError(f"{n} boxes but {cls.shape[0]} class ids")
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Merged(empty, np.zeros((0, 4)), empty)
    tie = np.zeros(n, dtype=np.int64) if cls is None else cls
    keys: list[npt.NDArray[np.generic]] = [tie, *boxes[:, ::-1].T, -score]
    if priority is not None:
        rank = np.asarray(priority, dtype=np.float64).reshape(-1)
        if rank.shape[0] != n:
            raise ValueError(f"{n} boxes but {rank.shape[0]} priorities")
        keys.append(-rank)
    order = np.lexsort(keys)
    ordered_cls = None if cls is None else cls[order]

    if match == "iou":
        boxes_ = _Boxes(boxes, order, float(threshold))
        overlap, pairs = boxes_.suppresses, boxes_.pairs
    elif match == "diou":
        rel = boxes[order] / np.array([*scale, *scale], dtype=np.float64)

        def overlap(a: IntArray, b: IntArray) -> npt.NDArray[np.bool_]:
            out: npt.NDArray[np.bool_] = box_diou(rel[a], rel[b], beta) > threshold
            return out

        pairs = _PAIRS[np.float64]
    else:
        rows = np.ascontiguousarray(boxes[order].T)

        def overlap(a: IntArray, b: IntArray) -> npt.NDArray[np.bool_]:
            ios = _ios(rows.take(a, axis=1), rows.take(b, axis=1))
            out: npt.NDArray[np.bool_] = ios > threshold
            return out

        pairs = _PAIRS[np.float64]

    def matches(a: IntArray, b: IntArray) -> npt.NDArray[np.bool_]:
        m = overlap(a, b)
        if ordered_cls is not None:
            m &= np.equal.outer(ordered_cls[a], ordered_cls[b])
        return m

    kept = _greedy_keep(n, matches, pairs)  # positions in `order`, ascending
    # Each box joins the first kept box before it that matches it (greedy: one exists unless
    # the box is kept itself), found in slices of columns to bound the (K, slice) temporaries.
    owner = np.searchsorted(kept, np.arange(n))  # right for kept boxes, overwritten below
    step = max(1, pairs // kept.size)
    for lo in range(0, n, step):
        cols = np.arange(lo, min(n, lo + step))
        m = matches(kept, cols)
        m &= kept[:, None] < cols[None, :]
        hit = m.any(axis=0)
        owner[cols[hit]] = m[:, hit].argmax(axis=0)
    # results best score first (a no-op without priority), ties in the order they were made
    best = np.argsort(-score[order[kept]], kind="stable")
    rank = np.empty(kept.size, dtype=np.int64)
    rank[best] = np.arange(kept.size)
    group = np.empty(n, dtype=np.int64)
    group[order] = rank[owner]
    keep = order[kept[best]]
    if method == "nms":
        return Merged(keep, boxes[keep], group)
    by_group = np.argsort(group, kind="stable")
    starts = np.searchsorted(group[by_group], np.arange(kept.size))
    members = boxes[by_group]
    union = np.empty((kept.size, 4))
    union[:, :2] = np.minimum.reduceat(members[:, :2], starts, axis=0)
    union[:, 2:] = np.maximum.reduceat(members[:, 2:], starts, axis=0)
    return Merged(keep, union, group)
