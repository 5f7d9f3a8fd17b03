"""The Detections result type."""

from __future__ import annotations

import numpy as np
import pytest

from yolocli import Detections


def dets(*rows: tuple[float, float, float, float, float, int]) -> Detections:
    """Detections in one line: (x1, y1, x2, y2, score, class_id) per row."""
    a = np.array(rows, dtype=np.float64).reshape(-1, 6)
    return Detections(a[:, :4], a[:, 4], a[:, 5].astype(int), names=["cat", "dog"])


def test_selection_returns_detections() -> None:
    d = dets((0, 0, 1, 1, 0.9, 0), (0, 0, 2, 2, 0.4, 1), (1, 1, 3, 3, 0.7, 1))
    strong = d[d.scores > 0.5]
    assert isinstance(strong, Detections)
    assert strong.labels == ["cat", "dog"]
    for one in (d[1], d[np.int64(1)]):  # a single row, still a Detections, the right one
        assert one.labels == ["dog"]
        assert one.xyxy.tolist() == [[0, 0, 2, 2]]
    assert d[[2, 0]].scores.tolist() == pytest.approx([0.7, 0.9])
    assert d[1:].class_ids.tolist() == [1, 1]
    none = d[d.scores > 1]
    assert len(none) == 0
    assert none.xyxy.shape == (0, 4)
    assert none.names == d.names


def test_sorted_is_by_score_and_keeps_ties_in_order() -> None:
    """40 rows with many ties: past 16 elements NumPy's default sort no longer keeps them."""
    scores = [0.4, 0.9, 0.4, 0.7] * 10
    d = dets(*[(0, 0, i + 1, 1, score, 0) for i, score in enumerate(scores)])
    s = d.sorted()
    want = sorted(range(40), key=lambda i: -scores[i])  # Python's sort is stable
    assert (s.xyxy[:, 2] - 1).astype(int).tolist() == want


def test_empty_and_dtypes() -> None:
    e = Detections.empty(["cat"])
    assert len(e) == 0
    assert e.xyxy.shape == (0, 4)
    assert e.records() == []
    d = dets((0, 0, 1, 1, 0.5, 0))
    assert (d.xyxy.dtype, d.scores.dtype, d.class_ids.dtype) == (np.float32, np.float32, np.int64)


@pytest.mark.parametrize(
    ("xyxy", "scores", "ids", "message"),
    [
        (
            np.zeros((2, 3)),
            np.zeros(2),
            np.zeros(2),
            r"xyxy must have shape \(N, 4\), got \(2, 3\)",
        ),
        (
            np.zeros((2, 4)),
            np.zeros(3),
            np.zeros(2),
            r"scores must have shape \(2,\) to match xyxy, got \(3,\)",
        ),
        (np.zeros((2, 4)), np.zeros(2), np.zeros((2, 1)), r"class_ids must have shape \(2,\)"),
    ],
)
def test_shapes_are_checked_and_named(
    xyxy: np.ndarray, scores: np.ndarray, ids: np.ndarray, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Detections(xyxy, scores, ids)


def test_records_and_unknown_class_labels() -> None:
    d = Detections(
        np.array([[1.234, 2, 3, 4.5678]]), np.array([0.87654321]), np.array([7]), names=["cat"]
    )
    assert d.labels == ["7"]
    assert d.records() == [
        {"label": "7", "class_id": 7, "score": 0.876543, "box": [1.23, 2.0, 3.0, 4.57]}
    ]


def test_track_ids_are_optional_and_travel_with_the_rows() -> None:
    d = dets((0, 0, 1, 1, 0.9, 0), (0, 0, 2, 2, 0.4, 1), (1, 1, 3, 3, 0.7, 1))
    assert d.track_ids is None
    assert "track_id" not in d.records()[0]  # detect's records are unchanged
    t = Detections(d.xyxy, d.scores, d.class_ids, d.names, track_ids=[4, -1, 7])
    assert t.track_ids is not None
    assert t.track_ids.dtype == np.int64
    assert t[t.scores > 0.5].track_ids.tolist() == [4, 7]  # type: ignore[union-attr]
    assert t.sorted().track_ids.tolist() == [4, 7, -1]  # type: ignore[union-attr]
    assert [r.get("track_id") for r in t.records()] == [4, None, 7]
    with pytest.raises(ValueError, match=r"track_ids must have shape \(3,\)"):
        Detections(d.xyxy, d.scores, d.class_ids, track_ids=[1, 2])
