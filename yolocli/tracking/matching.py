"""Assigning detections to tracks: a cost matrix, solved optimally with a cost limit."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from yolocli.ops import box_iou

IntArray = npt.NDArray[np.intp]


def iou_cost(
    track_xyxy: npt.ArrayLike,
    det_xyxy: npt.ArrayLike,
    det_scores: npt.ArrayLike | None = None,
    track_classes: npt.ArrayLike | None = None,
    det_classes: npt.ArrayLike | None = None,
) -> npt.NDArray[np.float64]:
    """(T, D) cost ``1 - IoU`` of each track's predicted box against each detection.

    ``det_scores``: ByteTrack's ``fuse_score``, the IoU multiplied by the detection's score,
    so that a confident detection wins a tie. ``track_classes``/``det_classes``: a pair of
    different classes costs 1 (never matched at any limit below 1).
    """
    iou = box_iou(track_xyxy, det_xyxy)
    if det_scores is not None:
        iou = iou * np.asarray(det_scores, np.float64)[None, :]
    cost = 1.0 - iou
    if track_classes is not None and det_classes is not None:
        differ = np.not_equal.outer(np.asarray(track_classes), np.asarray(det_classes))
        cost[differ] = 1.0
    return cost


def assign(cost: npt.ArrayLike, limit: float) -> tuple[IntArray, IntArray, IntArray]:
    """The assignment of rows to columns of least total cost where leaving a row or a column
    unassigned costs ``limit / 2`` each: a pair is matched only when that is cheaper than
    leaving both out, so never at a cost of ``limit`` or more. This is ``lap.lapjv`` with
    ``extend_cost=True, cost_limit=limit``, which ByteTrack and SORT's successors use.

    Returns (K, 2) matched (row, column) pairs, the unmatched rows and the unmatched columns.
    """
    c = np.asarray(cost, np.float64)
    n, m = c.shape
    if n == 0 or m == 0:
        none = np.zeros((0, 2), np.intp)
        return none, np.arange(n, dtype=np.intp), np.arange(m, dtype=np.intp)
    # Matching a pair below the limit gains (limit - cost) over leaving both out; a pair at
    # or over it gains nothing, and being "matched" to it is the same as being left out. So
    # the rectangular problem on min(cost - limit, 0) is lapjv's extended one, at a fraction
    # of the size of its (n + m) square matrix.
    gain = np.minimum(c - limit, 0.0)
    # scipy.optimize costs ~0.3 s to import: only when a tracker first matches, never at the
    # start of every yolocli command (the CLI reads TRACKERS to build track's options)
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(gain)
    keep = c[rows, cols] < limit
    matches = np.stack([rows[keep], cols[keep]], axis=1).astype(np.intp)
    row_done = np.zeros(n, bool)
    col_done = np.zeros(m, bool)
    row_done[matches[:, 0]] = True
    col_done[matches[:, 1]] = True
    return matches, np.flatnonzero(~row_done), np.flatnonzero(~col_done)
