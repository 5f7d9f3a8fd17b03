"""ByteTrack and SORT: state machines over `Detections`, one call per frame.

Both keep their tracks as parallel arrays (Kalman states, ids, classes, times) and do every
step for all tracks at once; matching is an optimal assignment (`yolocli.tracking.matching`).
Time is a timestamp in seconds, not a frame count: a track is kept while it was last seen
at most ``lost_time`` seconds ago, and the motion model moves it by the time elapsed
(`yolocli.tracking.kalman`), so strided or dropped frames do not break tracks.

``update(detections, timestamp)`` returns the same detections, in the same order, with
``track_ids`` set: the id of the confirmed track each belongs to, or -1 (a detection too
weak to start a track, or one whose track is not confirmed yet). Ids start at 1 and are
never reused within a tracker.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from yolocli.detections import Detections
from yolocli.ops import box_iou
from yolocli.tracking import kalman
from yolocli.tracking.matching import assign, iou_cost

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

NEW, TRACKED, LOST = 0, 1, 2  # a track's state
# A lost track coasts on its last velocity, fading with this half-life (seconds): it neither
# stops dead while its object walks on behind an occluder nor drifts, for the whole
# ``lost_time``, across the scene onto another object's path (which costs ID switches on
# TUD-Campus with ByteTrack's undamped coasting; benchmarks/RESULTS.md).
COAST_HALF_LIFE = 0.4


@dataclass
class _Tracks:
    """All live tracks, one row each."""

    mean: F64
    cov: F64
    ids: I64  # 0 until confirmed
    classes: I64
    state: npt.NDArray[np.int8]
    start: F64  # time first seen
    seen: F64  # time last matched to a detection
    hits: I64  # consecutive frames matched (SORT's hit streak)

    @classmethod
    def empty(cls) -> _Tracks:
        return cls(
            np.zeros((0, 8)), np.zeros((0, 8, 8)), np.zeros(0, np.int64), np.zeros(0, np.int64),
            np.zeros(0, np.int8), np.zeros(0), np.zeros(0), np.zeros(0, np.int64),
        )  # fmt: skip

    def __len__(self) -> int:
        return len(self.ids)

    def keep(self, mask: npt.NDArray[np.bool_]) -> None:
        for name in ("mean", "cov", "ids", "classes", "state", "start", "seen", "hits"):
            setattr(self, name, getattr(self, name)[mask])

    def add(self, xyxy: F64, classes: I64, t: float, state: int) -> None:
        mean, cov = kalman.initiate(kalman.xyxy_to_xyah(xyxy))
        n = len(mean)
        self.mean = np.concatenate([self.mean, mean])
        self.cov = np.concatenate([self.cov, cov])
        self.ids = np.concatenate([self.ids, np.zeros(n, np.int64)])
        self.classes = np.concatenate([self.classes, classes])
        self.state = np.concatenate([self.state, np.full(n, state, np.int8)])
        self.start = np.concatenate([self.start, np.full(n, t)])
        self.seen = np.concatenate([self.seen, np.full(n, t)])
        self.hits = np.concatenate([self.hits, np.ones(n, np.int64)])

    def boxes(self, rows: npt.ArrayLike) -> F64:
        return kalman.xyah_to_xyxy(self.mean[np.asarray(rows, np.intp)])


class _Tracker:
    """What ByteTrack and SORT share: the tracks, the clock, ids, the output."""

    def __init__(self, lost_time: float, per_class: bool) -> None:
        if lost_time < 0:
            raise ValueError(f"lost_time must be >= 0 seconds, got {lost_time}")
        self.lost_time = float(lost_time)
        self.per_class = per_class
        self.reset()

    def reset(self) -> None:
        """Forget every track (a new video); ids start again at 1."""
        self.tracks = _Tracks.empty()
        self.time: float | None = None
        self.frames = 0
        self.next_id = 1

    def _clock(self, timestamp: float | None) -> float:
        """The frame's time: ``timestamp``, or one `kalman.STEP` after the last frame."""
        if timestamp is None:
            t = 0.0 if self.time is None else self.time + kalman.STEP
        else:
            t = float(timestamp)
            if not np.isfinite(t):
                raise ValueError(f"timestamp must be a finite number of seconds, got {timestamp}")
            if self.time is not None and t < self.time:
                raise ValueError(
                    f"timestamps must not go backwards: {t} after {self.time} (call reset() "
                    "for a new video)"
                )
        return t

    def _predict(self, t: float) -> None:
        tr = self.tracks
        dt = 0.0 if self.time is None else t - self.time
        # ByteTrack: a track that is not being seen keeps moving but stops growing.
        tr.mean[tr.state != TRACKED, 7] = 0.0
        tr.mean[tr.state == LOST, 4:] *= 0.5 ** (max(dt, 0.0) / COAST_HALF_LIFE)
        tr.mean, tr.cov = kalman.predict(tr.mean, tr.cov, dt)
        self.time = t
        self.frames += 1

    def _correct(self, rows: npt.ArrayLike, xyxy: npt.ArrayLike, t: float) -> None:
        tr = self.tracks
        rows = np.asarray(rows, np.intp)
        if len(rows) == 0:
            return
        tr.mean[rows], tr.cov[rows] = kalman.update(
            tr.mean[rows], tr.cov[rows], kalman.xyxy_to_xyah(xyxy)
        )
        tr.hits[rows] = np.where(tr.state[rows] == TRACKED, tr.hits[rows] + 1, 1)
        tr.state[rows] = TRACKED
        tr.seen[rows] = t

    def _confirm(self, rows: npt.ArrayLike) -> None:
        tr = self.tracks
        index = np.asarray(rows, np.intp)
        index = index[tr.ids[index] == 0]
        tr.ids[index] = np.arange(self.next_id, self.next_id + len(index))
        self.next_id += len(index)

    def _costs(self, dets: Detections) -> None:
        """This frame's cost (1 - IoU) of every predicted track against every detection,
        computed once; each round of matching takes its part (`_cost`)."""
        tr = self.tracks
        self._frame_cost = iou_cost(
            tr.boxes(np.arange(len(tr))),
            dets.xyxy,
            None,
            tr.classes if self.per_class else None,
            dets.class_ids if self.per_class else None,
        )
        self._frame_scores = dets.scores.astype(np.float64)

    def _cost(self, rows: npt.ArrayLike, cols: npt.ArrayLike, fuse: bool) -> F64:
        """Tracks ``rows`` against detections ``cols``; ``fuse``: IoU times the score."""
        cost = self._frame_cost[np.ix_(np.asarray(rows, np.intp), np.asarray(cols, np.intp))]
        if fuse:
            cost = 1.0 - (1.0 - cost) * self._frame_scores[np.asarray(cols, np.intp)][None, :]
        return cost

    @staticmethod
    def _output(dets: Detections, ids: I64) -> Detections:
        return Detections(dets.xyxy, dets.scores, dets.class_ids, dets.names, track_ids=ids)


class ByteTrack(_Tracker):
    """ByteTrack (Zhang et al., ECCV 2022): every detection box counts, the weak ones too.

    Each frame, confident detections (score >= ``high``) are matched to the confirmed and the
    lost tracks by IoU (times the score, ``fuse_score``); the tracks left over then get a
    second chance with the weak detections (``low`` <= score < ``high``), which keeps an
    occluded object's identity through the frames where its score drops. New tracks start from
    unmatched confident detections scoring >= ``new`` and are confirmed when matched again in
    the next frame (at once in a tracker's first frame). A track unseen for more than
    ``lost_time`` seconds is dropped.

    The defaults suit darknet scores (objectness x class probability), which run lower than
    the YOLOX scores ByteTrack's own (0.6 / 0.5 / 0.1) were tuned on. ``per_class``: a track
    only takes detections of its own class. ``match``, ``second_match``, ``new_match`` are the
    three rounds' cost limits (1 - IoU), ByteTrack's 0.8, 0.5 and 0.7.
    """

    def __init__(
        self,
        high: float = 0.3,
        low: float = 0.1,
        new: float = 0.3,
        lost_time: float = 1.0,
        match: float = 0.8,
        second_match: float = 0.5,
        new_match: float = 0.7,
        per_class: bool = True,
    ) -> None:
        for name, value in (("high", high), ("low", low), ("new", new), ("match", match),
                            ("second_match", second_match), ("new_match", new_match)):  # fmt: skip
            if not 0 <= value <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if low > high:
            raise ValueError(f"low ({low}) must not be above high ({high})")
        self.high, self.low, self.new = high, low, new
        self.match, self.second_match, self.new_match = match, second_match, new_match
        super().__init__(lost_time, per_class)

    def update(self, detections: Detections, timestamp: float | None = None) -> Detections:
        """``detections`` of the next frame, taken at ``timestamp`` seconds, with track ids."""
        t = self._clock(timestamp)
        first = self.time is None
        self._predict(t)
        tr = self.tracks
        dets = detections
        out = np.full(len(dets), -1, np.int64)
        det_row = np.full(len(dets), -1, np.intp)  # the track each detection went to

        high = np.flatnonzero(dets.scores >= self.high)
        low = np.flatnonzero((dets.scores >= self.low) & (dets.scores < self.high))

        self._costs(dets)
        # 1. Confident detections against the confirmed tracks, tracked and lost alike.
        pool = np.flatnonzero(tr.ids > 0)
        m, left_pool, left = assign(self._cost(pool, high, True), self.match)
        det_row[high[m[:, 1]]] = pool[m[:, 0]]
        left_high = high[left]
        rest = pool[left_pool]

        # 2. Weak detections against the tracks still unmatched that were seen last frame.
        rest = rest[tr.state[rest] == TRACKED]
        m, left_rest, _ = assign(self._cost(rest, low, False), self.second_match)
        det_row[low[m[:, 1]]] = rest[m[:, 0]]
        tr.state[rest[left_rest]] = LOST

        # 3. Unconfirmed tracks (seen once) against the confident detections left.
        fresh = np.flatnonzero(tr.ids == 0)
        m, left_fresh, left = assign(self._cost(fresh, left_high, True), self.new_match)
        det_row[left_high[m[:, 1]]] = fresh[m[:, 0]]
        # The matched tracks take their detections, all at once (the rounds above matched
        # disjoint tracks against their predictions, so the order does not matter).
        matched = np.flatnonzero(det_row >= 0)
        self._correct(det_row[matched], dets.xyxy[matched], t)
        self._confirm(fresh[m[:, 0]])
        drop = np.zeros(len(tr), bool)
        drop[fresh[left_fresh]] = True

        # 4. New tracks from confident detections nobody took.
        start = left_high[left]
        start = start[dets.scores[start] >= self.new]
        tr.keep(~drop)
        if drop.any():  # rows after a dropped one move up
            shift = np.cumsum(drop)
            det_row = np.where(det_row >= 0, det_row - shift[np.maximum(det_row, 0)], -1)
        first_new = len(tr)
        tr.add(dets.xyxy[start].astype(np.float64), dets.class_ids[start], t, NEW)
        new_rows = np.arange(first_new, len(tr))
        det_row[start] = new_rows
        if first:
            tr.state[new_rows] = TRACKED
            self._confirm(new_rows)

        # 5. Forget what has been lost too long, and lost twins of tracked tracks.
        gone = (tr.state == LOST) & (t - tr.seen > self.lost_time)
        gone |= self._duplicates()
        taken = det_row >= 0
        out[taken] = np.where(gone[det_row[taken]], -1, tr.ids[det_row[taken]])
        out[out == 0] = -1
        tr.keep(~gone)
        return self._output(dets, out)

    def _duplicates(self) -> npt.NDArray[np.bool_]:
        """ByteTrack's ``remove_duplicate_stracks``: of a tracked and a lost track that
        overlap at IoU > 0.85, the younger is dropped."""
        tr = self.tracks
        drop = np.zeros(len(tr), bool)
        tracked = np.flatnonzero((tr.state == TRACKED) & (tr.ids > 0))
        lost = np.flatnonzero(tr.state == LOST)
        if len(tracked) == 0 or len(lost) == 0:
            return drop
        close = box_iou(tr.boxes(tracked), tr.boxes(lost)) > 0.85
        pi, qi = np.nonzero(close)
        p, q = tracked[pi], lost[qi]
        age_p = self.time - tr.start[p]  # type: ignore[operator]
        age_q = self.time - tr.start[q]  # type: ignore[operator]
        drop[np.where(age_p > age_q, q, p)] = True
        return drop


class Sort(_Tracker):
    """SORT (Bewley et al., ICIP 2016), the simple baseline: detections scoring >= ``conf``
    are matched to every live track by IoU (at least ``iou``); a track is reported once it has
    been matched in ``min_hits`` consecutive frames (at once during a tracker's first
    ``min_hits`` frames) and dropped when unseen for more than ``lost_time`` seconds."""

    def __init__(
        self,
        conf: float = 0.3,
        iou: float = 0.3,
        min_hits: int = 3,
        lost_time: float = 0.1,
        per_class: bool = True,
    ) -> None:
        if not 0 <= conf <= 1 or not 0 <= iou <= 1:
            raise ValueError(f"conf and iou must be in [0, 1], got {conf} and {iou}")
        if min_hits < 1:
            raise ValueError(f"min_hits must be >= 1, got {min_hits}")
        self.conf, self.iou, self.min_hits = conf, iou, min_hits
        super().__init__(lost_time, per_class)

    def update(self, detections: Detections, timestamp: float | None = None) -> Detections:
        """``detections`` of the next frame, taken at ``timestamp`` seconds, with track ids."""
        t = self._clock(timestamp)
        self._predict(t)
        tr = self.tracks
        dets = detections
        out = np.full(len(dets), -1, np.int64)
        cand = np.flatnonzero(dets.scores >= self.conf)
        self._costs(dets)
        m, left_rows, left = assign(self._cost(np.arange(len(tr)), cand, False), 1.0 - self.iou)
        rows, cols = m[:, 0], cand[m[:, 1]]
        self._correct(rows, dets.xyxy[cols], t)
        tr.state[left_rows] = LOST
        tr.hits[left_rows] = 0
        start = cand[left]
        first_new = len(tr)
        tr.add(dets.xyxy[start].astype(np.float64), dets.class_ids[start], t, TRACKED)
        det_row = np.full(len(dets), -1, np.intp)
        det_row[cols] = rows
        det_row[start] = np.arange(first_new, len(tr))
        ok = (tr.hits >= self.min_hits) | (self.frames <= self.min_hits)
        ok &= tr.seen == t
        self._confirm(np.flatnonzero(ok))
        matched = det_row >= 0
        ids = tr.ids[det_row[matched]]
        out[matched] = np.where(ok[det_row[matched]], ids, -1)
        tr.keep(~((tr.state == LOST) & (t - tr.seen > self.lost_time)))
        return self._output(dets, out)


Tracker = ByteTrack | Sort
TRACKERS = ("bytetrack", "sort")


def make_tracker(name: str, **settings: float | bool) -> Tracker:
    """A tracker by name (`TRACKERS`), with the settings given (the others default)."""
    if name == "bytetrack":
        return ByteTrack(**settings)  # type: ignore[arg-type]
    if name == "sort":
        return Sort(**settings)  # type: ignore[arg-type]
    raise ValueError(f"unknown tracker {name!r}; choose one of {', '.join(TRACKERS)}")
