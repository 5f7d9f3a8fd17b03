"""The evaluator against its oracle, pycocotools' COCOeval, on generated data."""

from __future__ import annotations

import contextlib
import io
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from yolocli.evaluate import Found, Truth, best_f1, box_iou_coco, confusion_matrix, evaluate

COCO = pytest.importorskip("pycocotools.coco")
COCOEVAL = pytest.importorskip("pycocotools.cocoeval")

CATEGORIES = [1, 2, 3, 4]  # 4 never has ground truth below; 9 is not a category at all
STATS = ["map", "map50", "map75", "map_small", "map_medium", "map_large"]
STATS_AR = {8: "mar100", 9: "mar_small", 10: "mar_medium", 11: "mar_large"}

# Coarse grids make ties (equal scores, equal IoUs, duplicate boxes) common; sizes span the
# small (< 32²), medium and large (> 96²) buckets.
coord = st.sampled_from([0.0, 10.0, 20.0, 40.0, 80.0, 100.5])
size = st.sampled_from([8.0, 20.0, 31.0, 32.0, 50.0, 96.0, 120.0])
score = st.sampled_from([0.1, 0.3, 0.3, 0.5, 0.9, 0.001])
box = st.tuples(coord, coord, size, size)


@st.composite
def datasets(draw: Any, crowd: bool = False) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(ground-truth annotations, detections) over images 1..5, COCO style."""
    gts: list[dict[str, Any]] = []
    dts: list[dict[str, Any]] = []
    for image in range(1, 6):
        for b in draw(st.lists(st.tuples(box, st.sampled_from([1, 2, 3])), max_size=6)):
            (x, y, w, h), cat = b
            area = draw(st.sampled_from([w * h, w * h, 500.0, 5000.0, 20000.0]))
            is_crowd = draw(st.booleans()) if crowd else False
            gts.append(
                {"image_id": image, "category_id": cat, "bbox": [x, y, w, h], "area": area,
                 "iscrowd": int(is_crowd), "id": len(gts) + 1}
            )  # fmt: skip
        for gt in [g for g in gts if g["image_id"] == image]:
            for _ in range(draw(st.integers(0, 2))):  # duplicates and near misses of real boxes
                x, y, w, h = gt["bbox"]
                dx, dy = draw(st.sampled_from([0.0, 2.0, 5.0])), draw(st.sampled_from([0.0, 7.0]))
                cat = draw(st.sampled_from([gt["category_id"], gt["category_id"], 4, 9]))
                dts.append(
                    {"image_id": image, "category_id": cat, "bbox": [x + dx, y + dy, w, h],
                     "score": draw(score)}
                )  # fmt: skip
        for b in draw(st.lists(st.tuples(box, st.sampled_from([1, 2, 3, 4, 9])), max_size=4)):
            dts.append(
                {"image_id": image, "category_id": b[1], "bbox": list(b[0]), "score": draw(score)}
            )
    return gts, dts


def cocoeval(gts: list[dict[str, Any]], dts: list[dict[str, Any]]) -> Any:
    """pycocotools' stats, its quiet way."""
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO.COCO()
        gt.dataset = {
            "images": [{"id": i, "width": 300, "height": 300} for i in range(1, 6)],
            "annotations": gts,
            "categories": [{"id": c, "name": str(c)} for c in CATEGORIES],
        }
        gt.createIndex()
        dt = gt.loadRes([dict(d) for d in dts])
        ev = COCOEVAL.COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def ours(gts: list[dict[str, Any]], dts: list[dict[str, Any]]) -> Any:
    truths = [
        Truth.of(
            [g["bbox"] for g in gts if g["image_id"] == i],
            [g["category_id"] for g in gts if g["image_id"] == i],
            [g["area"] for g in gts if g["image_id"] == i],
            [g["iscrowd"] for g in gts if g["image_id"] == i],
        )
        for i in range(1, 6)
    ]
    found = [
        Found.of(
            [d["bbox"] for d in dts if d["image_id"] == i],
            [d["score"] for d in dts if d["image_id"] == i],
            [d["category_id"] for d in dts if d["image_id"] == i],
        )
        for i in range(1, 6)
    ]
    return evaluate(truths, found, CATEGORIES)


def check_equal(gts: list[dict[str, Any]], dts: list[dict[str, Any]]) -> None:
    ref = cocoeval(gts, dts)
    got = ours(gts, dts)
    stats = got.stats()
    for i, name in enumerate(STATS):
        assert stats[name] == pytest.approx(ref.stats[i], abs=1e-4), name
    for i, name in STATS_AR.items():
        assert stats[name] == pytest.approx(ref.stats[i], abs=1e-4), name
    # The whole precision table too, not just its means.
    np.testing.assert_allclose(got.precision, ref.eval["precision"][..., 2], atol=1e-12)
    np.testing.assert_allclose(got.recall, ref.eval["recall"][..., 2], atol=1e-12)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(datasets())
def test_equals_pycocotools(data: tuple[list[dict[str, Any]], list[dict[str, Any]]]) -> None:
    gts, dts = data
    if dts:  # pycocotools cannot load an empty results list
        check_equal(gts, dts)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(datasets(crowd=True))
def test_equals_pycocotools_with_crowds(
    data: tuple[list[dict[str, Any]], list[dict[str, Any]]],
) -> None:
    gts, dts = data
    if dts:
        check_equal(gts, dts)


def d(image: int, cat: int, bbox: list[float], s: float) -> dict[str, Any]:
    return {"image_id": image, "category_id": cat, "bbox": bbox, "score": s}


def g(image: int, cat: int, bbox: list[float], crowd: int = 0, n: int = 1) -> dict[str, Any]:
    return {"image_id": image, "category_id": cat, "bbox": bbox, "area": bbox[2] * bbox[3],
            "iscrowd": crowd, "id": n}  # fmt: skip


@pytest.mark.parametrize(
    ("gts", "dts"),
    [
        # IoU exactly 0.5: counts as a match at the 0.5 threshold
        ([g(1, 1, [0, 0, 100, 100])], [d(1, 1, [0, 0, 100, 50], 0.9)]),
        # two detections of one box, equal scores: one true, one false positive
        ([g(1, 1, [0, 0, 50, 50])], [d(1, 1, [0, 0, 50, 50], 0.5), d(1, 1, [1, 0, 50, 50], 0.5)]),
        # equal scores in different images: image order decides
        (
            [g(1, 1, [0, 0, 50, 50]), g(2, 1, [0, 0, 50, 50], n=2)],
            [d(2, 1, [200, 200, 50, 50], 0.5), d(1, 1, [0, 0, 50, 50], 0.5)],
        ),
        # a crowd region swallows several detections without a miss or false positive
        (
            [g(1, 1, [0, 0, 200, 200], crowd=1), g(1, 1, [300, 300, 40, 40], n=2)],
            [d(1, 1, [10, 10, 50, 50], 0.9), d(1, 1, [60, 60, 50, 50], 0.8),
             d(1, 1, [300, 300, 40, 40], 0.7)],
        ),  # fmt: skip
        # ground truth only in class 1, detections only in absent class 2 and non-category 9
        ([g(1, 1, [0, 0, 50, 50])], [d(1, 2, [0, 0, 50, 50], 0.9), d(1, 9, [0, 0, 50, 50], 0.9)]),
        # a detection equally close to two boxes takes the later one, as pycocotools does,
        # which leaves the earlier one to the next detection
        (
            [g(1, 1, [0, 0, 10, 10]), g(1, 1, [2, 0, 10, 10], n=2)],
            [d(1, 1, [1, 0, 10, 10], 0.9), d(1, 1, [-1, 0, 10, 10], 0.8)],
        ),
        # an image with nothing at all beside one with everything
        ([g(3, 3, [5, 5, 10, 10])], [d(3, 3, [5, 5, 10, 10], 1.0)]),
    ],
)
def test_edge_cases_equal_pycocotools(
    gts: list[dict[str, Any]], dts: list[dict[str, Any]]
) -> None:
    check_equal(gts, dts)


def test_box_iou_matches_definition() -> None:
    a = np.array([[0.0, 0.0, 10.0, 10.0]])
    b = np.array([[5.0, 0.0, 10.0, 10.0], [20.0, 20.0, 5.0, 5.0], [0.0, 0.0, 20.0, 20.0]])
    iou = box_iou_coco(a, b, np.array([False, False, True]))
    np.testing.assert_allclose(iou, [[50 / 150, 0.0, 100 / 100]])
    assert box_iou_coco(np.zeros((0, 4)), b, np.zeros(3, bool)).shape == (0, 3)


@pytest.mark.parametrize(
    ("scores", "hits", "n", "expected"),
    [
        ([0.9, 0.8, 0.7], [True, True, False], 2, (1.0, 1.0, 0.8)),
        # a cut never splits a tie: 0.5 and 0.5 go together
        ([0.9, 0.5, 0.5], [True, False, True], 2, (2 / 3, 1.0, 0.5)),
        ([], [], 3, (0.0, 0.0, None)),
    ],
)
def test_best_f1(
    scores: list[float], hits: list[bool], n: int, expected: tuple[float, float, float | None]
) -> None:
    assert best_f1(np.array(scores), np.array(hits, bool), n) == pytest.approx(expected)


def test_confusion_matrix_counts_swaps_misses_and_false_alarms() -> None:
    truth = Truth.of([[0, 0, 50, 50], [100, 100, 50, 50], [200, 0, 30, 30]], [1, 2, 2])
    found = Found.of(
        [[0, 0, 50, 50], [100, 100, 50, 50], [0, 200, 40, 40], [200, 0, 30, 30]],
        [0.9, 0.8, 0.7, 0.1],  # the last one is below the matrix's score threshold
        [1, 1, 2, 2],
    )
    m = confusion_matrix([truth], [found], [1, 2])
    # rows: truth 1, truth 2, none; columns: found 1, found 2, none
    assert m.tolist() == [[1, 0, 0], [1, 0, 1], [0, 1, 0]]


def test_no_ground_truth_anywhere_gives_minus_one() -> None:
    result = evaluate([Truth.of([], [])], [Found.of([[0, 0, 5, 5]], [0.5], [1])], [1])
    assert result.map == -1.0
    assert result.per_class[0].ap is None
