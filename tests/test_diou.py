"""darknet's DIoU-NMS (`yolocli.ops.diou_nms`) against a slow, obvious transcription of
AlexeyAB darknet's ``diounms_sort`` and ``box_diou`` (box.c), box by box."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from yolocli.ops import box_diou, box_iou, diou_nms, merge, nms


def slow_diou(a: tuple[float, ...], b: tuple[float, ...], beta: float) -> float:
    """box.c's box_diounms for two (cx, cy, w, h) boxes, line by line."""

    def overlap(x1: float, w1: float, x2: float, w2: float) -> float:
        left = max(x1 - w1 / 2, x2 - w2 / 2)
        right = min(x1 + w1 / 2, x2 + w2 / 2)
        return right - left

    w, h = overlap(a[0], a[2], b[0], b[2]), overlap(a[1], a[3], b[1], b[3])
    inter = 0.0 if w < 0 or h < 0 else w * h
    union = a[2] * a[3] + b[2] * b[3] - inter
    iou = 0.0 if inter == 0 or union == 0 else inter / union
    top = min(a[1] - a[3] / 2, b[1] - b[3] / 2)
    bot = max(a[1] + a[3] / 2, b[1] + b[3] / 2)
    left = min(a[0] - a[2] / 2, b[0] - b[2] / 2)
    right = max(a[0] + a[2] / 2, b[0] + b[2] / 2)
    c = (right - left) ** 2 + (bot - top) ** 2
    if c == 0:
        return iou
    d = (a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2
    return iou - (d / c) ** beta


def slow_diou_nms(
    xyxy: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray | None,
    thresh: float,
    beta: float,
    size: tuple[float, float],
) -> set[int]:
    """diounms_sort: per class, best first, a kept box zeroes every later one whose DIoU
    with it is above ``thresh``; on image-relative (cx, cy, w, h) boxes."""
    sx, sy = size
    rel = [
        ((x1 + x2) / 2 / sx, (y1 + y2) / 2 / sy, (x2 - x1) / sx, (y2 - y1) / sy)
        for x1, y1, x2, y2 in xyxy.tolist()
    ]
    labels = classes.tolist() if classes is not None else [0] * len(rel)
    kept: set[int] = set()
    for k in set(labels):
        mine = sorted((i for i in range(len(rel)) if labels[i] == k), key=lambda i: -scores[i])
        alive = dict.fromkeys(mine, True)
        for n, i in enumerate(mine):
            if not alive[i]:
                continue
            kept.add(i)
            for j in mine[n + 1 :]:
                if slow_diou(rel[i], rel[j], beta) > thresh:
                    alive[j] = False
    return kept


@st.composite
def scene(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = draw(st.integers(0, 40))
    corner = draw(arrays(np.int64, (n, 2), elements=st.integers(0, 300)))
    size = draw(arrays(np.int64, (n, 2), elements=st.integers(0, 120)))
    xyxy = np.concatenate([corner, corner + size], axis=1).astype(np.float64)
    # distinct scores: darknet's qsort is not stable, so ties may go either way there
    scores = np.array(draw(st.lists(st.integers(1, 10**6), min_size=n, max_size=n, unique=True)))
    classes = draw(arrays(np.int64, n, elements=st.integers(0, 2)))
    return xyxy, scores.astype(np.float32) / 1e6, classes


@settings(max_examples=150, deadline=None)
@given(
    case=scene(),
    thresh=st.sampled_from([0.0, 0.3, 0.45, 0.6, 0.9]),
    beta=st.sampled_from([0.6, 0.8, 1.0, 2.5]),
    size=st.sampled_from([(1.0, 1.0), (451.0, 300.0), (300.0, 800.0)]),
    per_class=st.booleans(),
)
def test_diou_nms_keeps_what_darknet_keeps(
    case: tuple[np.ndarray, np.ndarray, np.ndarray],
    thresh: float,
    beta: float,
    size: tuple[float, float],
    per_class: bool,
) -> None:
    xyxy, scores, classes = case
    cls = classes if per_class else None
    rel = xyxy / np.array([*size, *size])
    # a pair this close to the threshold is decided by the last bit of the arithmetic
    assume(not np.any(np.abs(box_diou(rel, rel, beta) - thresh) < 1e-9))
    kept = diou_nms(xyxy, scores, thresh, cls, beta=beta, scale=size)
    assert set(kept.tolist()) == slow_diou_nms(xyxy, scores, cls, thresh, beta, size)
    assert np.all(np.diff(scores[kept]) <= 0)  # best first


@settings(max_examples=100, deadline=None)
@given(
    a=arrays(np.float64, (6, 4), elements=st.integers(0, 50).map(float)),
    b=arrays(np.float64, (5, 4), elements=st.integers(0, 50).map(float)),
    beta=st.sampled_from([0.6, 1.0]),
)
def test_box_diou_is_darknets_formula(a: np.ndarray, b: np.ndarray, beta: float) -> None:
    a[:, 2:] += a[:, :2]  # corners after corners
    b[:, 2:] += b[:, :2]

    def cxcywh(r: np.ndarray) -> tuple[float, ...]:
        return ((r[0] + r[2]) / 2, (r[1] + r[3]) / 2, r[2] - r[0], r[3] - r[1])

    got = box_diou(a, b, beta)
    for i in range(len(a)):
        for j in range(len(b)):
            want = slow_diou(cxcywh(a[i]), cxcywh(b[j]), beta)
            assert math.isclose(got[i, j], want, abs_tol=1e-12)


def test_diou_suppresses_less_than_iou_when_centres_are_apart() -> None:
    """Two boxes of IoU 0.5 side by side: IoU-NMS at 0.45 drops the second, DIoU-NMS keeps
    it, since their centres lie apart (the point of DIoU-NMS: neighbours in a crowd)."""
    xyxy = np.array([[0, 0, 30, 10], [10, 0, 40, 10]], dtype=np.float64)
    scores = np.array([0.9, 0.8])
    assert box_iou(xyxy, xyxy)[0, 1] == pytest.approx(0.5)
    assert nms(xyxy, scores, 0.45).tolist() == [0]
    assert diou_nms(xyxy, scores, 0.45).tolist() == [0, 1]


def test_the_distance_term_is_measured_relative_to_the_image() -> None:
    """darknet divides by the image's width and height first: on a wide image a horizontal
    offset counts for less than in pixels, so what is kept depends on ``scale``."""
    xyxy = np.array([[0, 0, 100, 100], [20, 0, 120, 100]], dtype=np.float64)
    scores = np.array([0.9, 0.8])
    in_pixels = box_diou(xyxy[:1], xyxy[1:])[0, 0]
    wide = xyxy / np.array([1000, 100, 1000, 100])
    relative = box_diou(wide[:1], wide[1:])[0, 0]
    assert relative > in_pixels
    thresh = (relative + in_pixels) / 2
    assert diou_nms(xyxy, scores, thresh).tolist() == [0, 1]
    assert diou_nms(xyxy, scores, thresh, scale=(1000, 100)).tolist() == [0]


def test_diou_nms_rejects_nonsense() -> None:
    box = np.array([[0, 0, 1, 1]], dtype=np.float64)
    with pytest.raises(ValueError, match="threshold"):
        diou_nms(box, [1.0], 1.5)
    with pytest.raises(ValueError, match="beta"):
        diou_nms(box, [1.0], 0.5, beta=0)
    with pytest.raises(ValueError, match="scale"):
        diou_nms(box, [1.0], 0.5, scale=(0, 1))
    assert diou_nms(np.zeros((0, 4)), [], 0.5).tolist() == []


@settings(max_examples=60, deadline=None)
@given(case=scene(), thresh=st.sampled_from([0.3, 0.45, 0.6]), beta=st.sampled_from([0.6, 1.0]))
def test_merging_by_diou_keeps_what_diou_nms_keeps(
    case: tuple[np.ndarray, np.ndarray, np.ndarray], thresh: float, beta: float
) -> None:
    """Sliced inference merges with the detector's own measure: ops.merge's "diou"."""
    xyxy, scores, classes = case
    size = (451.0, 300.0)
    rel = xyxy / np.array([*size, *size])
    assume(not np.any(np.abs(box_diou(rel, rel, beta) - thresh) < 1e-9))
    merged = merge(xyxy, scores, classes, match="diou", threshold=thresh, beta=beta, scale=size)
    kept = diou_nms(xyxy, scores, thresh, classes, beta=beta, scale=size)
    assert merged.keep.tolist() == kept.tolist()
