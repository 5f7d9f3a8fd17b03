"""Box math against oracles: a slow obvious IoU, and OpenCV's own NMSBoxes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tests.clusters import clustered
from yolocli.ops import box_iou, clip_boxes, nms


def slow_iou(a: list[float], b: list[float]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


# Coordinates on a 1/8 pixel grid: every sum, difference and product below is exact in
# float64 both here and inside OpenCV, so the oracle comparison can demand identity.
# Arrays come whole from hypothesis.extra.numpy: drawing boxes one coordinate at a time made
# this file 4x slower, with no more bugs found. Corners are dense (every box its own place);
# sizes, scores and classes are sparse: a few fresh values over one repeated fill value, which
# is how equal sizes, tied scores and same-class crowds arise, as in real detector output.
corners = st.integers(0, 4096)
sizes = st.just(0) | st.integers(0, 800)  # zero-size boxes on purpose
# Positive (NMSBoxes drops scores <= its score threshold, 0); ties on purpose.
score_values = st.sampled_from([0.25, 0.5, 0.75, 1.0]) | st.floats(2.0**-20, 1.0, width=32)
thresholds = st.sampled_from([0.0, 0.3, 0.45, 0.5, 0.7, 1.0]) | st.floats(0.0, 1.0, width=32)


@st.composite
def boxes(draw: st.DrawFn, max_size: int = 60) -> np.ndarray:
    n = draw(st.integers(0, max_size))
    corner = draw(arrays(np.int64, (n, 2), elements=corners, fill=st.nothing()))
    size = draw(arrays(np.int64, (n, 2), elements=sizes, fill=st.integers(0, 800)))
    out = np.concatenate([corner, corner + size], axis=1) / 8
    if n and draw(st.booleans()):  # exact duplicates are common in real output
        out = np.concatenate([out, out[: draw(st.integers(1, n))]])
    return out.astype(np.float32).reshape(-1, 4)


Scene = tuple[np.ndarray, np.ndarray, np.ndarray]  # boxes (N, 4), scores (N,), class ids (N,)


@st.composite
def scene(draw: st.DrawFn, classes: int = 1) -> Scene:
    """Boxes with scores and class ids (all 0 unless ``classes`` > 1), as NMS receives them."""
    xyxy = draw(boxes())
    n = len(xyxy)
    scores = draw(arrays(np.float32, n, elements=score_values))
    cls = draw(arrays(np.int64, n, elements=st.integers(0, classes - 1)))
    return xyxy, scores, cls


# Always tried: an exact duplicate, a pair of zero-size boxes, a zero-width box, tied scores.
EDGE: Scene = (
    np.array(
        [[0, 0, 10, 10], [0, 0, 10, 10], [5, 5, 5, 5], [5, 5, 5, 5], [2, 0, 2, 9]], np.float32
    ),
    np.array([0.5, 0.5, 0.5, 0.25, 1.0], np.float32),
    np.array([0, 0, 1, 1, 0], np.int64),
)


def cv2_nms(xyxy: np.ndarray, scores: np.ndarray, thr: float) -> list[int]:
    if len(xyxy) == 0:
        return []
    xywh = xyxy.astype(np.float64)
    xywh[:, 2:] -= xywh[:, :2]
    return np.asarray(cv2.dnn.NMSBoxes(xywh, scores, 0.0, thr)).reshape(-1).tolist()


def cv2_nms_per_class(
    xyxy: np.ndarray, scores: np.ndarray, cls: np.ndarray, thr: float
) -> list[int]:
    kept: list[int] = []
    for c in np.unique(cls):
        idx = np.flatnonzero(cls == c)
        kept += idx[cv2_nms(xyxy[idx], scores[idx], thr)].tolist()
    order = {int(i): rank for rank, i in enumerate(np.argsort(-scores, kind="stable"))}
    return sorted(kept, key=order.__getitem__)


@given(a=boxes(20), b=boxes(20))
def test_box_iou_matches_the_obvious_implementation(a: np.ndarray, b: np.ndarray) -> None:
    got = box_iou(a, b)
    assert got.shape == (len(a), len(b))
    want = [[slow_iou(p, q) for q in b.tolist()] for p in a.tolist()]
    np.testing.assert_allclose(got, np.array(want).reshape(got.shape), rtol=1e-12, atol=0)


@given(a=boxes(15))
def test_box_iou_is_symmetric_and_one_on_the_diagonal(a: np.ndarray) -> None:
    iou = box_iou(a, a)
    np.testing.assert_array_equal(iou, iou.T)
    has_area = (a[:, 2] > a[:, 0]) & (a[:, 3] > a[:, 1])
    np.testing.assert_array_equal(np.diag(iou)[has_area], 1.0)


@settings(max_examples=300)
@given(case=scene(), thr=thresholds)
@example(case=EDGE, thr=0.0)
@example(case=EDGE, thr=1.0)
def test_nms_keeps_exactly_what_opencv_keeps(case: Scene, thr: float) -> None:
    xyxy, scores, _ = case
    assert nms(xyxy, scores, thr).tolist() == cv2_nms(xyxy, scores, thr)


@settings(max_examples=150)
@given(case=scene(classes=4), thr=thresholds)
@example(case=EDGE, thr=0.0)
@example(case=EDGE, thr=1.0)
def test_per_class_nms_matches_opencv_run_per_class(case: Scene, thr: float) -> None:
    xyxy, scores, cls = case
    assert nms(xyxy, scores, thr, class_ids=cls).tolist() == cv2_nms_per_class(
        xyxy, scores, cls, thr
    )


@pytest.mark.parametrize(
    ("n", "k", "seed"), [(100, 10, 0), (1000, 30, 1), (5000, 60, 2), (3000, 3, 3)]
)
def test_nms_matches_opencv_on_many_clustered_boxes(n: int, k: int, seed: int) -> None:
    """Past one block (128 boxes) the blocked algorithm must still agree exactly."""
    xyxy, scores = clustered(n, k, seed)
    for thr in (0.3, 0.45, 0.7):
        assert nms(xyxy, scores, thr).tolist() == cv2_nms(xyxy, scores, thr)


def test_nms_edge_cases() -> None:
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).tolist() == []
    assert nms([[0, 0, 1, 1]], [0.3], 0.5).tolist() == [0]
    with pytest.raises(ValueError, match=r"iou_threshold must be in \[0, 1\]"):
        nms([[0, 0, 1, 1]], [0.3], 1.5)
    with pytest.raises(ValueError, match="2 boxes but 1 scores"):
        nms([[0, 0, 1, 1], [0, 0, 2, 2]], [0.3], 0.5)


def test_clip_boxes_stays_inside_the_image() -> None:
    got = clip_boxes(np.array([[-5, -1, 50, 120], [3, 4, 5, 6]], np.float32), 40, 100)
    np.testing.assert_array_equal(got, [[0, 0, 40, 100], [3, 4, 5, 6]])


@pytest.mark.parametrize("thr", [0.0, 0.3, 0.45, 0.5, 0.9, 0.999])
def test_suppression_cut_is_the_first_iou_opencv_suppresses_at(thr: float) -> None:
    from yolocli.ops import _suppression_cut

    def opencv_suppresses(iou: float) -> bool:  # NMSFast_: keep = overlap <= threshold
        return bool(np.float32(1) - np.float32(1.0 - iou) > np.float32(thr))

    cut = _suppression_cut(thr)
    assert opencv_suppresses(cut)
    assert cut == 0.0 or not opencv_suppresses(np.nextafter(cut, 0.0))


@pytest.mark.parametrize("thr", [0.3, 0.45, 0.5, 0.7])
def test_pairs_at_the_cut_are_decided_exactly(thr: float) -> None:
    """IoUs within float32 rounding of the cut: the fast float32 pass cannot tell, the
    float64 recheck must, exactly like OpenCV. Box B covers w/100 of box A."""
    w = np.float32(100 * thr)
    widths = [w]
    for _ in range(3):
        widths += [
            np.nextafter(widths[-1], np.float32(0)),
            np.nextafter(widths[0], np.float32(100)),
        ]
    for width in widths:
        xyxy = np.array([[0, 0, 100, 100], [0, 0, width, 100]], dtype=np.float32)
        scores = np.array([0.9, 0.8], dtype=np.float32)
        assert nms(xyxy, scores, thr).tolist() == cv2_nms(xyxy, scores, thr), width
