"""Box math against oracles: a slow obvious IoU, and OpenCV's own NMSBoxes."""

from __future__ import annotations

import itertools
import math

import cv2
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tests.clusters import clustered
from yolocli.ops import box_ios, box_iou, clip_boxes, diou_nms, first_kept, merge, nms, tiles


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


@settings(max_examples=150)
@given(
    case=scene(classes=3),
    thr=thresholds,
    limit=st.integers(0, 30),
    diou=st.booleans(),
)
def test_first_kept_is_the_head_of_the_whole_nms(
    case: Scene, thr: float, limit: int, diou: bool
) -> None:
    """NMS on the best-scoring few, grown until they keep ``limit``: the same first boxes,
    in the same order, as NMS on every box (ties in score included)."""
    xyxy, scores, cls = case
    run = diou_nms if diou else nms

    def nms_of(subset: np.ndarray) -> np.ndarray:
        return run(xyxy[subset], scores[subset], thr, cls[subset])

    whole = run(xyxy, scores, thr, cls).tolist()
    assert first_kept(nms_of, scores, limit).tolist() == whole[: limit or None]


def test_first_kept_runs_nms_on_few_boxes_when_many_survive() -> None:
    xyxy, scores = clustered(5000, 2000, 4)  # many objects: most boxes are kept
    sizes: list[int] = []

    def nms_of(subset: np.ndarray) -> np.ndarray:
        sizes.append(subset.size)
        return nms(xyxy[subset], scores[subset], 0.7)

    got = first_kept(nms_of, scores, 300)
    assert got.tolist() == nms(xyxy, scores, 0.7)[:300].tolist()
    assert sizes == [1200]


@pytest.mark.parametrize("classes", [None, 2])
def test_first_kept_grows_from_what_it_kept_not_from_scratch(classes: int | None) -> None:
    """Few objects, many boxes each: the best 4 x limit keep too few, and each larger subset
    is the boxes kept so far and the new ones, never the suppressed ones again; the answer
    is still the whole NMS's head."""
    xyxy, scores = clustered(5000, 20, 5)
    cls = None if classes is None else np.arange(5000) % classes
    steps: list[tuple[np.ndarray, np.ndarray]] = []  # (subset, what NMS kept of it)

    def nms_of(subset: np.ndarray) -> np.ndarray:
        got = nms(xyxy[subset], scores[subset], 0.45, None if cls is None else cls[subset])
        steps.append((subset, subset[got]))
        return got

    limit = 60
    got = first_kept(nms_of, scores, limit)
    assert got.tolist() == nms(xyxy, scores, 0.45, cls)[:limit].tolist()
    assert len(steps) >= 2
    assert steps[0][0].size == 4 * limit
    for (before, kept), (after, _) in itertools.pairwise(steps):
        assert np.isin(kept, after).all()
        assert np.isin(after, before).sum() == kept.size  # no suppressed box comes back
    assert sum(subset.size for subset, _ in steps) < 5000 + 4 * limit


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


def _at_the_cut(thr: float, dtype: type) -> tuple[np.ndarray, np.ndarray]:
    """200 far-apart filler boxes (so the blocked float32 pass runs), then pairs whose IoU
    lies within a few roundings of the cut: box B covers about thr of box A. In float64,
    on a 2^-20 grid past float32's precision (every sum and difference stays exact in
    float64, in yolocli and in OpenCV alike)."""
    grid = np.arange(200, dtype=np.float64)
    filler = np.stack([grid * 40, grid * 0, grid * 40 + 20, grid * 0 + 20], axis=1)
    pairs = []
    for i, step in enumerate(range(-4, 5)):
        x0, y0 = 100.0 + 400 * i + 2.0**-20, 3000.0
        width = np.float64(100 * thr) + step * (2.0**-20 if dtype == np.float64 else 2.0**-17)
        pairs += [[x0, y0, x0 + 100, y0 + 100], [x0, y0, x0 + width, y0 + 100]]
    xyxy = np.concatenate([filler, np.array(pairs)]).astype(dtype)
    scores = np.linspace(1.0, 0.1, len(xyxy), dtype=np.float32)
    return xyxy, scores


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("thr", [0.3, 0.45, 0.5, 0.7])
def test_the_float32_pass_decides_pairs_at_the_cut_exactly(thr: float, dtype: type) -> None:
    """The float32 pass runs past one block, on float32 boxes and on float64 ones (rounded,
    with a margin for that); pairs it cannot call are decided in float64, like OpenCV."""
    xyxy, scores = _at_the_cut(thr, dtype)
    assert nms(xyxy, scores, thr).tolist() == cv2_nms(xyxy, scores, thr)


@given(
    n=st.integers(161, 600), k=st.integers(1, 40), seed=st.integers(0, 2**32 - 1),
    thr=thresholds,
)  # fmt: skip
@settings(max_examples=40, deadline=None)
def test_nms_matches_opencv_on_float64_boxes(n: int, k: int, seed: int, thr: float) -> None:
    """Float64 boxes (as other families' decoders give them), on a 2^-20 grid: exact in
    float64 arithmetic, not representable in float32."""
    xyxy, scores = clustered(n, k, seed)
    xyxy = np.round(xyxy.astype(np.float64) * 2**20 + 0.5) / 2**20
    assert nms(xyxy, scores, thr).tolist() == cv2_nms(xyxy, scores, thr)


@given(
    n=st.integers(161, 800), k=st.integers(1, 40), classes=st.integers(1, 90),
    seed=st.integers(0, 2**32 - 1), thr=thresholds, wide=st.booleans(),
)  # fmt: skip
@settings(max_examples=40, deadline=None)
def test_per_class_nms_of_many_boxes_matches_opencv_run_per_class(
    n: int, k: int, classes: int, seed: int, thr: float, wide: bool
) -> None:
    """Past one block, classes run in groups (a class alone once it fills a block): still
    exactly OpenCV run on each class, in score order; float32 and float64 boxes."""
    xyxy, scores = clustered(n, k, seed)
    if wide:
        xyxy = np.round(xyxy.astype(np.float64) * 2**20 + 0.5) / 2**20
    rng = np.random.default_rng(seed)
    cls = rng.integers(0, classes, n) ** 2 % max(classes, 1)  # uneven: some classes crowded
    got = nms(xyxy, scores, thr, cls).tolist()
    assert got == cv2_nms_per_class(xyxy, scores, cls, thr)


# -- tiles -----------------------------------------------------------------------------------


def slow_ios(a: list[float], b: list[float]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return iw * ih / smaller if smaller > 0 else 0.0


@given(a=boxes(20), b=boxes(20))
def test_box_ios_matches_the_obvious_implementation(a: np.ndarray, b: np.ndarray) -> None:
    got = box_ios(a, b)
    assert got.shape == (len(a), len(b))
    want = [[slow_ios(p, q) for q in b.tolist()] for p in a.tolist()]
    np.testing.assert_allclose(got, np.array(want).reshape(got.shape), rtol=1e-12, atol=0)


@settings(max_examples=150)
@given(
    width=st.integers(1, 4000),
    height=st.integers(1, 4000),
    size=st.integers(32, 1200) | st.tuples(st.integers(32, 1200), st.integers(32, 1200)),
    overlap=st.sampled_from([0.0, 0.2, 0.25, 0.5, 0.75]) | st.floats(0.0, 0.75),
)
def test_tiles_cover_the_image_inside_it_with_the_requested_overlap(
    width: int, height: int, size: int | tuple[int, int], overlap: float
) -> None:
    win = tiles(width, height, size, overlap)
    assert win.dtype == np.int64
    assert win.shape == (len(win), 4)
    tile_w, tile_h = (size, size) if isinstance(size, int) else size
    xs = win[win[:, 1] == 0][:, 0::2]  # the first row's x spans
    ys = win[win[:, 0] == 0][:, 1::2]  # the first column's y spans
    # a grid: every y span with every x span, rows top to bottom
    grid = np.concatenate(
        np.broadcast_arrays(xs[None, :, :1], ys[:, None, :1], xs[None, :, 1:], ys[:, None, 1:]),
        axis=2,
    )
    np.testing.assert_array_equal(win, grid.reshape(-1, 4))
    for sp, length, tile in ((xs, width, tile_w), (ys, height, tile_h)):
        side = min(tile, length)
        assert (sp[:, 1] - sp[:, 0] == side).all()  # never padded, never cropped
        assert sp[0, 0] == 0  # inside, and reaching both edges
        assert sp[-1, 1] == length
        starts, ends = sp[:, 0], sp[:, 1]
        assert (starts[1:] > starts[:-1]).all()  # so no tile twice
        assert (ends[:-1] - starts[1:] >= overlap * side - 1e-9).all()  # the overlap, at least
        assert (ends[:-1] >= starts[1:]).all()  # so every pixel is covered
        # and no more tiles than that overlap needs
        step = side - max(0, math.ceil(round(overlap * side, 9)))
        assert len(sp) == 1 or (len(sp) - 2) * min(step, side - 1) < length - side


@pytest.mark.parametrize(
    ("width", "height", "size", "want"),
    [
        (416, 416, 416, [[0, 0, 416, 416]]),  # exactly one tile
        (300, 200, 416, [[0, 0, 300, 200]]),  # smaller: the image itself
        (1, 1, 32, [[0, 0, 1, 1]]),
        (500, 300, (600, 400), [[0, 0, 500, 300]]),
        (1000, 416, 416, [[0, 0, 416, 416], [292, 0, 708, 416], [584, 0, 1000, 416]]),
        (417, 100, 416, [[0, 0, 416, 100], [1, 0, 417, 100]]),  # the last one shifted inwards
        (100, 900, (100, 500), [[0, 0, 100, 500], [0, 400, 100, 900]]),
    ],
)
def test_tiles_table(
    width: int, height: int, size: int | tuple[int, int], want: list[list[int]]
) -> None:
    assert tiles(width, height, size, 0.2).tolist() == want


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0, 10, 416, 0.2), "pixels"),
        ((10, 10, 0, 0.2), "at least 1 pixel"),
        ((10, 10, 416, 1.0), "overlap"),
        ((10, 10, 416, -0.1), "overlap"),
    ],
)
def test_tiles_rejects(args: tuple[int, int, int, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tiles(*args)


# -- merge -----------------------------------------------------------------------------------


def results(m: object, scores: np.ndarray, cls: np.ndarray) -> list[tuple[object, ...]]:
    """A merge's results as sorted (box, score, class) rows: what a permutation must keep."""
    keep, xyxy = m.keep, m.xyxy  # type: ignore[attr-defined]
    return sorted(
        zip(map(tuple, xyxy.tolist()), scores[keep].tolist(), cls[keep].tolist(), strict=True)
    )


@settings(max_examples=50)
@given(case=scene(classes=3), thr=thresholds, seed=st.integers(0, 2**32 - 1))
@example(case=EDGE, thr=0.5, seed=1)
def test_merge_is_order_independent(case: Scene, thr: float, seed: int) -> None:
    xyxy, scores, cls = case
    perm = np.random.default_rng(seed).permutation(len(xyxy))
    for method in ("nms", "nmm"):
        for match in ("iou", "ios"):
            kw = {"method": method, "match": match, "threshold": thr}
            a = merge(xyxy, scores, cls, **kw)
            b = merge(xyxy[perm], scores[perm], cls[perm], **kw)
            assert results(a, scores, cls) == results(b, scores[perm], cls[perm])


@settings(max_examples=75)
@given(case=scene(classes=3), thr=thresholds)
@example(case=EDGE, thr=0.0)
def test_merge_nms_by_iou_is_nms_where_scores_do_not_tie(case: Scene, thr: float) -> None:
    xyxy, scores, cls = case
    _, first = np.unique(scores, return_index=True)
    xyxy, scores, cls = xyxy[np.sort(first)], scores[np.sort(first)], cls[np.sort(first)]
    got = merge(xyxy, scores, cls, threshold=thr)
    assert got.keep.tolist() == nms(xyxy, scores, thr, class_ids=cls).tolist()
    np.testing.assert_array_equal(got.xyxy, xyxy[got.keep])
    assert merge(xyxy, scores, threshold=thr).keep.tolist() == nms(xyxy, scores, thr).tolist()


@st.composite
def apart(draw: st.DrawFn) -> Scene:
    """Boxes of one class never touching each other (one per cell of a 100 px grid), while
    boxes of different classes may overlap freely."""
    n = draw(st.integers(0, 40))
    cls = draw(arrays(np.int64, n, elements=st.integers(0, 2)))
    cells = draw(arrays(np.int64, n, elements=st.integers(0, 99), unique=True))
    corner = draw(arrays(np.float64, (n, 2), elements=st.floats(0, 49)))
    size = draw(arrays(np.float64, (n, 2), elements=st.floats(1, 49)))
    # each class has its own grid, shifted: classes overlap, a class never does
    origin = np.stack([cells % 10, cells // 10], axis=1) * 100.0 + cls[:, None] * 30.0
    xyxy = np.concatenate([origin + corner, origin + corner + size], axis=1)
    scores = draw(arrays(np.float32, n, elements=score_values))
    return xyxy, scores, cls


@settings(max_examples=50)
@given(case=apart(), thr=thresholds, match=st.sampled_from(["iou", "ios"]))
def test_nmm_is_nms_when_no_boxes_of_a_class_overlap(case: Scene, thr: float, match: str) -> None:
    xyxy, scores, cls = case
    nmm = merge(xyxy, scores, cls, method="nmm", match=match, threshold=thr)
    plain = merge(xyxy, scores, cls, method="nms", match=match, threshold=thr)
    assert nmm.keep.tolist() == plain.keep.tolist()
    np.testing.assert_array_equal(nmm.xyxy, plain.xyxy)
    assert sorted(nmm.keep.tolist()) == list(range(len(xyxy)))  # every box its own result


@settings(max_examples=50)
@given(case=scene(classes=2), thr=thresholds, match=st.sampled_from(["iou", "ios"]))
def test_nmm_results_are_the_unions_of_their_groups(case: Scene, thr: float, match: str) -> None:
    xyxy, scores, cls = case
    m = merge(xyxy, scores, cls, method="nmm", match=match, threshold=thr)
    assert (m.group[m.keep] == np.arange(len(m.keep))).all()  # each result's best box
    assert (cls == cls[m.keep][m.group]).all()  # joins only its own class
    assert (scores <= scores[m.keep][m.group]).all()  # and the best score leads
    for k in range(len(m.keep)):
        members = xyxy[m.group == k].astype(np.float64)
        want = [*members[:, :2].min(axis=0), *members[:, 2:].max(axis=0)]
        assert m.xyxy[k].tolist() == want
    assert (np.diff(scores[m.keep]) <= 0).all()


# A box cut in two by a tile edge, the pieces overlapping in the 20 px band the tiles share:
# IoU cannot match them (0.2), IoS can (0.4 of the smaller piece), and NMM joins them.
HALVES = np.array([[0, 0, 60, 50], [40, 0, 100, 50], [300, 0, 340, 50]], np.float64)


@pytest.mark.parametrize(
    ("method", "match", "want"),
    [
        ("nms", "iou", [[0, 0, 60, 50], [40, 0, 100, 50], [300, 0, 340, 50]]),
        ("nmm", "iou", [[0, 0, 60, 50], [40, 0, 100, 50], [300, 0, 340, 50]]),
        ("nms", "ios", [[0, 0, 60, 50], [300, 0, 340, 50]]),
        ("nmm", "ios", [[0, 0, 100, 50], [300, 0, 340, 50]]),
    ],
)
def test_merge_of_a_box_cut_in_two(method: str, match: str, want: list[list[float]]) -> None:
    scores = np.array([0.9, 0.6, 0.5])
    m = merge(HALVES, scores, [0, 0, 0], method=method, match=match, threshold=0.3)
    assert m.xyxy.tolist() == want
    assert m.keep[0] == 0  # the result keeps its best box's score and class


def test_merge_matches_within_a_class_only() -> None:
    m = merge(HALVES, [0.9, 0.6, 0.5], [0, 1, 0], method="nmm", match="ios", threshold=0.3)
    assert m.xyxy.tolist() == HALVES.tolist()


def test_merge_priority_ranks_before_score() -> None:
    xyxy = np.array([[0, 0, 100, 100], [2, 2, 98, 98]], np.float64)
    assert merge(xyxy, [0.9, 0.3]).keep.tolist() == [0]
    assert merge(xyxy, [0.9, 0.3], priority=[0, 1]).keep.tolist() == [1]


def test_merge_of_nothing() -> None:
    m = merge(np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64), method="nmm")
    assert m.keep.shape == m.group.shape == (0,)
    assert m.xyxy.shape == (0, 4)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "wbf"}, "method"),
        ({"match": "giou"}, "match"),
        ({"threshold": 1.5}, "threshold"),
        ({"priority": [1.0]}, "priorities"),
    ],
)
def test_merge_rejects(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        merge(HALVES, [0.9, 0.6, 0.5], **kwargs)  # type: ignore[arg-type]
