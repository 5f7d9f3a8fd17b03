"""yolocli.tracking: the Kalman filter, the assignment, ByteTrack and SORT, line and zone
counting; and ByteTrack measured as the field measures trackers, against roboflow
``trackers``' ByteTrack on the same detections (tests/data/tracking/make_reference.py)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.mot import DATA, clear_and_identity, hota, read_mot
from yolocli.detections import Detections
from yolocli.tracking import ByteTrack, LineCounter, Sort, ZoneCounter, kalman, make_tracker
from yolocli.tracking.counting import inside_polygon, side_of
from yolocli.tracking.matching import assign

REF = Path(__file__).parent / "data" / "tracking"
SEQUENCES = ("TUD-Campus", "TUD-Stadtmitte")
FPS = 25.0


def boxes(*rows: tuple[float, ...], cls: int = 0) -> Detections:
    """Detections in one line: (x1, y1, x2, y2[, score]) per row, all of class ``cls``."""
    a = np.array([(*r, 0.9)[:5] for r in rows], np.float64).reshape(-1, 5)
    return Detections(a[:, :4], a[:, 4], np.full(len(a), cls), names=["person", "car"])


def walkers(t: float, n: int = 3) -> Detections:
    """``n`` people 100 px apart walking right at 60 px/s, at time ``t``."""
    return boxes(*[(10 + 60 * t, 100 * i, 50 + 60 * t, 100 * i + 80) for i in range(n)])


# -- Kalman filter ---------------------------------------------------------------------------


def test_kalman_moves_by_elapsed_time() -> None:
    xyah = kalman.xyxy_to_xyah([[0, 0, 20, 40]])
    assert kalman.xyah_to_xyxy(xyah).tolist() == [[0, 0, 20, 40]]
    mean, cov = kalman.initiate(xyah)
    mean[:, 4] = 3.0  # px per step (1/30 s)
    one, _ = kalman.predict(mean, cov, kalman.STEP * 2)
    two, _ = kalman.predict(*kalman.predict(mean, cov, kalman.STEP), kalman.STEP)
    assert one[0, 0] == pytest.approx(16.0)
    assert two[0, :4] == pytest.approx(one[0, :4])
    # Uncertainty grows with the time elapsed, and a measurement pulls the state to it.
    _, short = kalman.predict(mean, cov, kalman.STEP)
    _, long = kalman.predict(mean, cov, 10 * kalman.STEP)
    assert long[0, 0, 0] > short[0, 0, 0]
    fixed, shrunk = kalman.update(one, long, kalman.xyxy_to_xyah([[10, 0, 30, 40]]))
    assert 16 < fixed[0, 0] < 20  # between the prediction and the measured centre
    assert shrunk[0, 0, 0] < long[0, 0, 0]


# -- assignment ------------------------------------------------------------------------------


def _brute(cost: np.ndarray, limit: float) -> float:
    """The least total of matched costs plus limit/2 per unmatched row and column."""
    n, m = cost.shape
    best = (n + m) * limit / 2
    for k in range(1, min(n, m) + 1):
        for rows in itertools.combinations(range(n), k):
            for cols in itertools.permutations(range(m), k):
                c = cost[list(rows), list(cols)]
                if (c < limit).all():
                    best = min(best, c.sum() + (n + m - 2 * k) * limit / 2)
    return best


@settings(max_examples=60, deadline=None)
@given(
    st.integers(0, 4),
    st.integers(0, 4),
    st.floats(0.1, 0.9),
    st.integers(0, 2**32 - 1),
)
def test_assign_is_optimal_with_the_cost_limit(n: int, m: int, limit: float, seed: int) -> None:
    cost = np.random.default_rng(seed).random((n, m))
    matches, rows, cols = assign(cost, limit)
    assert (cost[matches[:, 0], matches[:, 1]] < limit).all()
    assert sorted([*matches[:, 0], *rows]) == list(range(n))
    assert sorted([*matches[:, 1], *cols]) == list(range(m))
    total = cost[matches[:, 0], matches[:, 1]].sum() + (len(rows) + len(cols)) * limit / 2
    assert total == pytest.approx(_brute(cost, limit))


# -- trackers --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["bytetrack", "sort"])
def test_ids_are_stable_and_rows_keep_their_order(name: str) -> None:
    tracker = make_tracker(name)
    seen = []
    for f in range(20):
        d = walkers(f / 30)
        out = tracker.update(d, f / 30)
        assert out.xyxy.tolist() == d.xyxy.tolist()  # the detections, as given, in order
        assert out.track_ids is not None
        seen.append(out.track_ids.tolist())
    assert seen[-1] == [1, 2, 3]
    assert all(s == [1, 2, 3] for s in seen[3:])


def test_bytetrack_keeps_ids_through_a_gap_shorter_than_lost_time() -> None:
    tracker = ByteTrack(lost_time=1.0)
    for f in range(10):
        tracker.update(walkers(f / 30), f / 30)
    # 0.6 s with nothing at all (a stalled stream), then the same people further on.
    for t in (0.3 + 0.6, 0.3 + 0.6 + 1 / 30):
        out = tracker.update(walkers(t), t)
    assert out.track_ids.tolist() == [1, 2, 3]  # type: ignore[union-attr]
    # Gone for longer than lost_time: new people.
    tracker.update(Detections.empty(), 1.0)
    t = 1.0 + 1.5
    tracker.update(walkers(t), t)
    out = tracker.update(walkers(t + 1 / 30), t + 1 / 30)
    assert out.track_ids.tolist() == [4, 5, 6]  # type: ignore[union-attr]


def test_strided_frames_track_like_every_frame() -> None:
    """--vid-stride 4 (timestamps 4 frames apart) keeps the same identities."""
    every, strided = ByteTrack(), ByteTrack()
    for f in range(60):
        a = every.update(walkers(f / 30, 4), f / 30)
        if f % 4 == 0:
            b = strided.update(walkers(f / 30, 4), f / 30)
            assert b.track_ids.tolist() == a.track_ids.tolist()  # type: ignore[union-attr]


def test_bytetrack_recovers_an_occluded_object_from_weak_detections() -> None:
    """The second association: while its score drops below ``high``, the track goes on."""
    tracker = ByteTrack(high=0.5, low=0.1)
    for f in range(30):
        d = walkers(f / 30, 1)
        if 10 <= f < 20:
            d = Detections(d.xyxy, [0.2], d.class_ids, d.names)
        out = tracker.update(d, f / 30)
        assert out.track_ids.tolist() == [1], f  # type: ignore[union-attr]


def test_weak_detections_start_no_track_and_classes_do_not_mix() -> None:
    tracker = ByteTrack(high=0.5, new=0.6)
    out = tracker.update(boxes((0, 0, 10, 10, 0.55), (50, 50, 60, 60, 0.3)), 0.0)
    assert out.track_ids.tolist() == [-1, -1]  # type: ignore[union-attr]
    # A car where the person was does not continue the person's track.
    tracker = ByteTrack()
    tracker.update(boxes((0, 0, 40, 80)), 0.0)
    out = tracker.update(boxes((0, 0, 40, 80), cls=1), 1 / 30)
    assert out.track_ids.tolist() == [-1]  # type: ignore[union-attr]


def test_timestamps_must_not_go_back_and_reset_starts_over() -> None:
    tracker = ByteTrack()
    tracker.update(walkers(0.0), 1.0)
    with pytest.raises(ValueError, match="backwards"):
        tracker.update(walkers(0.0), 0.5)
    tracker.reset()
    assert tracker.update(walkers(0.0), 0.0).track_ids.tolist() == [1, 2, 3]  # type: ignore[union-attr]
    out = tracker.update(walkers(1 / 30))  # no timestamp: one step on
    assert out.track_ids.tolist() == [1, 2, 3]  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="low"):
        ByteTrack(high=0.2, low=0.3)


# -- measured against trackers' ByteTrack ----------------------------------------------------


def run_mot(tracker: ByteTrack | Sort, det: np.ndarray) -> np.ndarray:
    """The tracker over MOTChallenge detections; its results as MOTChallenge rows."""
    out = []
    for frame in range(1, int(det[:, 0].max()) + 1):
        d = det[det[:, 0] == frame]
        xyxy = np.concatenate([d[:, 2:4], d[:, 2:4] + d[:, 4:6]], axis=1)
        r = tracker.update(Detections(xyxy, d[:, 6], np.zeros(len(d))), (frame - 1) / FPS)
        keep = r.track_ids >= 0  # type: ignore[operator]
        xywh = np.concatenate([r.xyxy[keep, :2], r.xyxy[keep, 2:] - r.xyxy[keep, :2]], axis=1)
        n = int(keep.sum())
        out.append(np.column_stack([np.full(n, frame), r.track_ids[keep], xywh,  # type: ignore[index]
                                    r.scores[keep], -np.ones((n, 3))]))  # fmt: skip
    return np.concatenate(out)


@pytest.fixture(scope="module")
def recorded() -> dict[str, dict[str, float]]:
    sequences: dict[str, dict[str, float]] = json.loads((REF / "trackers.json").read_text())[
        "sequences"
    ]
    return sequences


@pytest.mark.parametrize("seq", SEQUENCES)
def test_bytetrack_at_least_matches_trackers_bytetrack(
    seq: str, recorded: dict[str, dict[str, float]]
) -> None:
    gt = read_mot(DATA / seq / "gt.txt")
    theirs = read_mot(REF / seq / "trackers-bytetrack.txt")
    ref = recorded[seq]
    # The metric code itself against trackers.eval's own figures for the same file.
    base = clear_and_identity(gt, theirs)
    assert base["IDF1"] == pytest.approx(ref["IDF1"], abs=1e-9)
    assert base["MOTA"] == pytest.approx(ref["MOTA"], abs=1e-9)
    assert base["IDSW"] == ref["IDSW"]
    assert hota(gt, theirs) == pytest.approx(ref["HOTA"], abs=1e-9)

    ours = run_mot(ByteTrack(), read_mot(REF / seq / "det.txt"))
    got = clear_and_identity(gt, ours)
    assert got["IDF1"] >= ref["IDF1"]
    assert hota(gt, ours) >= ref["HOTA"]
    assert got["IDSW"] <= ref["IDSW"]
    assert got["MOTA"] >= ref["MOTA"]


def test_sort_is_a_working_baseline() -> None:
    seq = "TUD-Campus"
    gt = read_mot(DATA / seq / "gt.txt")
    got = clear_and_identity(gt, run_mot(Sort(), read_mot(REF / seq / "det.txt")))
    assert got["IDF1"] > 0.8
    assert got["MOTA"] > 0.7


# -- counting --------------------------------------------------------------------------------


def one(x: float, y: float, tid: int, cls: int = 0, size: float = 40) -> Detections:
    h = size / 2
    return Detections([[x - h, y - h, x + h, y + h]], [0.9], [cls], ["person", "car"], [tid])


def test_side_of_follows_the_documented_rule() -> None:
    # Left to right: below (y down on screen) is the right-hand side, "in".
    assert side_of([[5, 10], [5, -10]], (0, 0), (10, 0)).tolist() == [10, -10]
    # Top to bottom: the left of the screen is "in".
    assert side_of([[-3, 5], [3, 5]], (0, 0), (0, 10)).tolist() == [3, -3]


def test_line_counts_real_crossings_once_despite_jitter() -> None:
    line = LineCounter((100, 0), (100, 200))  # top to bottom: moving left is "in"
    rng = np.random.default_rng(0)
    path = [160, 140, 120, *(100 + rng.uniform(-3, 3, 30)), 80, 60, 40]  # stops on the line
    for x in path:
        line.update(one(x, 100, 1))
    assert dict(line.counts_in) == {0: 1}
    assert dict(line.counts_out) == {}
    for x in (60, 100, 140, 160, 140, 100, 60):  # out again, then in again: two more
        line.update(one(x, 100, 1))
    assert (dict(line.counts_in), dict(line.counts_out)) == ({0: 2}, {0: 1})
    assert line.record(["person", "car"]) == {
        "line": [100.0, 0.0, 100.0, 200.0], "in": {"person": 2}, "out": {"person": 1},
    }  # fmt: skip


def test_line_is_a_segment_and_counts_per_class() -> None:
    line = LineCounter((100, 0), (100, 200))
    for x in (150, 50):
        line.update(one(x, 300, 1))  # passes below the segment's end: not a crossing
        line.update(Detections([[x - 5, 95, x + 5, 105], [x - 5, 20, x + 5, 30]], [0.9, 0.9],
                               [0, 1], track_ids=[2, 3]))  # fmt: skip
    assert (dict(line.counts_in), dict(line.counts_out)) == ({0: 1, 1: 1}, {})


def test_zone_counts_inside_and_distinct_entries() -> None:
    square = [(0, 0), (100, 0), (100, 100), (0, 100)]
    assert inside_polygon([[50, 50], [150, 50], [-1, 5]], square).tolist() == [True, False, False]
    zone = ZoneCounter(square)
    for x in (150, 50, 150, 50):  # track 1 enters twice: one distinct entry
        inside = zone.update(Detections([[x - 5, 45, x + 5, 55], [40, 40, 60, 60]], [0.9, 0.9],
                                        [0, 1], track_ids=[1, 2]))  # fmt: skip
    assert inside.tolist() == [1, 2]
    assert zone.frame_record(["person", "car"]) == {"count": 2, "inside": {"person": 1, "car": 1}}
    assert zone.record(["person", "car"])["entered"] == {"person": 1, "car": 1}
    with pytest.raises(ValueError, match="at least 3"):
        ZoneCounter([(0, 0), (1, 1)])


def test_flat_and_empty_frames_do_not_break_the_filter() -> None:
    tracker = ByteTrack()
    for f in range(5):
        flat = boxes((10, 50, 60, 50), (100, 0, 100, 40), (200, 200, 240, 280))  # two no area
        out = tracker.update(flat, f / 30)
        assert np.isfinite(tracker.tracks.mean).all()
        assert np.isfinite(tracker.tracks.cov).all()
        tracker.update(Detections.empty(), f / 30 + 1 / 60)
    assert out.track_ids.tolist()[2] == 3  # type: ignore[union-attr]


def test_a_session_holds_the_clock_when_container_timestamps_step_back() -> None:
    from yolocli.tracking.session import TrackSettings

    session = TrackSettings(lines=(((25, 0), (25, 1000)),)).session()
    kept = []
    for t in (0.0, 0.1, 0.05, 0.2):  # the third frame's timestamp is earlier
        dets, _, extra = session.frame(t, walkers(t, 2))
        kept.append(dets.track_ids.tolist())  # type: ignore[union-attr]
        assert extra["crossings"] == []
    assert kept[-1] == [1, 2]
    assert session.end() == {"lines": [{"line": [25.0, 0.0, 25.0, 1000.0], "in": {}, "out": {}}]}


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0, 200), min_size=2, max_size=40), st.integers(0, 2**32 - 1))
def test_line_crossings_alternate_and_add_up_to_the_net_move(xs: list[float], seed: int) -> None:
    """Whatever the path, crossings alternate in and out, and in - out is the net change of
    side between the first and the last settled positions."""
    rng = np.random.default_rng(seed)
    line = LineCounter((100, 0), (100, 1000))  # moving left (smaller x) is "in"
    directions = []
    settled = []
    for x in xs:
        y = 500 + rng.uniform(-5, 5)
        _, d = line.update(one(x, y, 1))
        directions.extend(d.tolist())
        if abs(x - 100) >= 4:  # the band: a tenth of the 40 px box
            settled.append(1 if x < 100 else -1)
    assert all(a != b for a, b in itertools.pairwise(directions))
    n_in, n_out = line.counts_in[0], line.counts_out[0]
    net = (settled[-1] - settled[0]) // 2 if settled else 0
    assert n_in - n_out == net
