"""Counting tracked objects across lines and inside zones: pure geometry on a tracker's output.

Both follow each track by the centre of its box. State is kept in arrays indexed by track
id (ids are small consecutive integers), so a frame costs a few vectorized operations
whatever the number of objects.

The direction rule of a line from A to B: ``in`` is a crossing towards the right-hand side
of someone walking from A to B on the image as displayed (x to the right, y downwards);
``out`` is the other way. For ``0,360,1280,360`` (left to right), moving down is ``in``; for
``640,0,640,720`` (top to bottom), moving left is ``in``.

A crossing is counted when a track's centre, settled on one side, settles on the other side
and its path crossed the segment between A and B (not its extension). Settled means at least
``band`` times the smaller side of the box away from the line (and at least 2 px): a track
jittering on the line moves inside that band and is counted once per real crossing.

One object, one count. Small detectors often add a second box around a part of an object (a
motorbike's engine, a cat's head) that NMS keeps, since its IoU with the whole is small; it
becomes a track of its own that moves with the object. So tracks of one class whose boxes
nest (their intersection covers more than ``contained`` of the smaller box) count as one:
a crossing is not counted again when a track nested with the crossing one crossed the same
way within the last ``within`` seconds, or when the two were nested as either crossed; a
zone counts a nested box with the larger one (an entry, with the one that entered first).
Tracking itself is left alone (the records keep every track): a person walking behind
another, hidden and boxed inside them, keeps their own identity, and is only merged for
counting if the two also cross together, nested.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from yolocli.detections import Detections
from yolocli.ops import box_ios

F64 = npt.NDArray[np.float64]
MIN_BAND_PX = 2.0
CONTAINED = 0.8  # nested: the intersection covers more than this of the smaller box
WITHIN = 1.0  # seconds between the crossings of two nested tracks that are one object
STEP = 1 / 30  # seconds per update when no time is given


def centres(xyxy: npt.ArrayLike) -> F64:
    """(N, 2) box centres of (N, 4) corners."""
    b = np.asarray(xyxy, np.float64).reshape(-1, 4)
    return np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2], axis=1)


def side_of(points: npt.ArrayLike, a: Sequence[float], b: Sequence[float]) -> F64:
    """(N,) signed distance in pixels of each point from the line through A and B: positive
    on the right-hand side of A->B as displayed (y downwards), the ``in`` side."""
    p = np.asarray(points, np.float64).reshape(-1, 2)
    ax, ay = a
    bx, by = b
    dx, dy = bx - ax, by - ay
    return ((dx * (p[:, 1] - ay)) - (dy * (p[:, 0] - ax))) / max(float(np.hypot(dx, dy)), 1e-9)


def inside_polygon(points: npt.ArrayLike, polygon: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """(N,) whether each point lies inside the polygon (V, 2), by the even-odd rule."""
    p = np.asarray(points, np.float64).reshape(-1, 2)
    v = np.asarray(polygon, np.float64).reshape(-1, 2)
    if len(p) == 0:
        return np.zeros(0, bool)
    x, y = p[:, :1], p[:, 1:]
    x1, y1 = v[:, 0], v[:, 1]
    x2, y2 = np.roll(x1, -1), np.roll(y1, -1)
    straddle = (y1 > y) != (y2 > y)  # (N, V): the edge spans the point's row
    with np.errstate(divide="ignore", invalid="ignore"):
        cross_x = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
    hits = straddle & (x < cross_x)
    return np.asarray(np.count_nonzero(hits, axis=1) % 2 == 1)


def nested(
    xyxy: npt.ArrayLike, class_ids: npt.ArrayLike, contained: float
) -> npt.NDArray[np.bool_]:
    """(N, N) whether boxes i and j (i != j) are of one class and their intersection covers
    more than ``contained`` of the smaller one (one box mostly inside the other)."""
    cls = np.asarray(class_ids).reshape(-1)
    out: npt.NDArray[np.bool_] = (box_ios(xyxy, xyxy) > contained) & np.equal.outer(cls, cls)
    np.fill_diagonal(out, False)
    return out


class _PerTrack:
    """Arrays indexed by track id that grow as ids do."""

    def __init__(self) -> None:
        self.side = np.zeros(0, np.int8)  # settled side: -1 out, +1 in, 0 not yet
        self.point = np.zeros((0, 2))  # where it settled last
        self.crossed = np.zeros(0, np.int8)  # the way it last crossed: -1, +1, 0 never
        self.when = np.zeros(0)  # and when

    def grow(self, ids: npt.NDArray[np.int64]) -> None:
        need = int(ids.max(initial=0)) + 1
        if need > len(self.side):
            size = max(need, 2 * len(self.side), 64)
            more = size - len(self.side)
            self.side = np.concatenate([self.side, np.zeros(more, np.int8)])
            self.point = np.concatenate([self.point, np.zeros((more, 2))])
            self.crossed = np.concatenate([self.crossed, np.zeros(more, np.int8)])
            self.when = np.concatenate([self.when, np.zeros(more)])


class LineCounter:
    """Counts, per class, the tracks whose centre crosses the segment A-B in each direction
    (see the module for the direction rule, the jitter band, and nested tracks: ``contained``,
    1 to count every track; ``within`` seconds)."""

    def __init__(
        self,
        a: Sequence[float],
        b: Sequence[float],
        band: float = 0.1,
        contained: float = CONTAINED,
        within: float = WITHIN,
    ) -> None:
        if tuple(a) == tuple(b):
            raise ValueError(f"a line needs two different points, got {a} twice")
        if band < 0:
            raise ValueError(f"band must be >= 0, got {band}")
        if not 0 <= contained <= 1:
            raise ValueError(f"contained must be in [0, 1], got {contained}")
        if within < 0:
            raise ValueError(f"within must be >= 0 seconds, got {within}")
        self.a = (float(a[0]), float(a[1]))
        self.b = (float(b[0]), float(b[1]))
        self.band = band
        self.contained = contained
        self.within = within
        self.time: float | None = None
        self._twins: dict[int, set[int]] = {}  # track ids nested when one of them crossed
        self.counts_in: Counter[int] = Counter()  # class id -> crossings
        self.counts_out: Counter[int] = Counter()
        self._tracks = _PerTrack()

    def update(
        self, detections: Detections, time: float | None = None
    ) -> tuple[npt.NDArray[np.int64], F64]:
        """Take one frame of tracked detections, taken at ``time`` seconds (default: 1/30 s
        after the last); returns the track ids that crossed in this frame and were counted,
        and their directions (+1 in, -1 out)."""
        if detections.track_ids is None:
            raise ValueError("LineCounter needs tracked detections (track_ids set)")
        if time is None:
            time = 0.0 if self.time is None else self.time + STEP
        self.time = float(time)
        sel = detections.track_ids >= 0
        ids = detections.track_ids[sel]
        if len(ids) == 0:
            return ids, np.zeros(0)
        xyxy = detections.xyxy[sel].astype(np.float64)
        classes = detections.class_ids[sel]
        st = self._tracks
        st.grow(ids)
        now = centres(xyxy)
        dist = side_of(now, self.a, self.b)
        small = np.minimum(xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1])
        band = np.maximum(self.band * small, MIN_BAND_PX)
        side = np.where(dist >= band, 1, np.where(dist <= -band, -1, 0)).astype(np.int8)
        before = st.side[ids]
        flipped = (side != 0) & (before != 0) & (side != before)
        # Where did the path from the settled point to here meet the line? Within A-B?
        p0 = st.point[ids]
        d0 = side_of(p0, self.a, self.b)
        with np.errstate(divide="ignore", invalid="ignore"):
            u = np.where(flipped, d0 / (d0 - dist), 0.0)
        meet = p0 + u[:, None] * (now - p0)
        ab = np.subtract(self.b, self.a)
        t = (meet - self.a) @ ab / float(ab @ ab)
        crossed = flipped & (t >= 0) & (t <= 1)
        if crossed.any():
            crossed &= ~self._again(ids, xyxy, classes, side, crossed)
        direction = side[crossed].astype(np.float64)
        for cid, d in zip(classes[crossed].tolist(), direction.tolist(), strict=True):
            (self.counts_in if d > 0 else self.counts_out)[cid] += 1
        settled = side != 0
        st.side[ids[settled]] = side[settled]
        st.point[ids[settled]] = now[settled]
        return ids[crossed], direction

    def _again(
        self,
        ids: npt.NDArray[np.int64],
        xyxy: F64,
        classes: npt.NDArray[np.int64],
        side: npt.NDArray[np.int8],
        crossed: npt.NDArray[np.bool_],
    ) -> npt.NDArray[np.bool_]:
        """Which of this frame's crossings repeat one of an object already counted: a track
        nested with the crossing one now crossed the same way within ``within`` seconds, or
        one of the two was nested with the other when it crossed, and that track's last
        crossing was the same way (the part and the whole of a slow object cross seconds
        apart, and a small model misses the part in some frames). Each crossing is
        remembered, counted or not, in order, so of two nested tracks crossing in the same
        frame one counts."""
        st = self._tracks
        now = self.time
        twins = nested(xyxy, classes, self.contained) if self.contained < 1 else None
        again = np.zeros(len(ids), bool)
        for i in np.flatnonzero(crossed).tolist():  # a few per frame at most
            tid = int(ids[i])
            close = ids[twins[i]].tolist() if twins is not None else []
            known = self._twins.get(tid, set())
            again[i] = any(
                st.crossed[q] == side[i] and (q in known or now - st.when[q] <= self.within)
                for q in {*close, *known}
            )
            st.crossed[tid] = side[i]
            st.when[tid] = now
            for q in close:  # nested when one of them crossed: the same object
                self._twins.setdefault(tid, set()).add(q)
                self._twins.setdefault(q, set()).add(tid)
        return again

    def record(self, names: Sequence[str]) -> dict[str, object]:
        """``{"line": [x1, y1, x2, y2], "in": {label: n}, "out": {label: n}}``."""
        return {
            "line": [*self.a, *self.b],
            "in": _by_label(self.counts_in, names),
            "out": _by_label(self.counts_out, names),
        }


class ZoneCounter:
    """Tracks whose centre is inside a polygon: how many in each frame, and how many distinct
    tracks ever entered it, per class; nested tracks count as one (see the module;
    ``contained`` 1 counts every track)."""

    def __init__(
        self, polygon: Sequence[Sequence[float]] | npt.ArrayLike, contained: float = CONTAINED
    ) -> None:
        v = np.asarray(polygon, np.float64)
        if v.ndim != 2 or v.shape[1] != 2 or len(v) < 3:
            raise ValueError(f"a zone needs at least 3 (x, y) points, got {v.tolist()}")
        if not 0 <= contained <= 1:
            raise ValueError(f"contained must be in [0, 1], got {contained}")
        self.polygon = v
        self.contained = contained
        self.entered: Counter[int] = Counter()  # class id -> distinct tracks
        self.inside: Counter[int] = Counter()  # class id -> tracks inside in the last frame
        self._seen = np.zeros(0, bool)

    def update(self, detections: Detections) -> npt.NDArray[np.int64]:
        """Take one frame of tracked detections; returns the ids of the tracks inside."""
        if detections.track_ids is None:
            raise ValueError("ZoneCounter needs tracked detections (track_ids set)")
        sel = detections.track_ids >= 0
        ids = detections.track_ids[sel]
        xyxy = detections.xyxy[sel].astype(np.float64)
        classes = detections.class_ids[sel]
        inside = inside_polygon(centres(xyxy), self.polygon)
        need = int(ids.max(initial=0)) + 1
        if need > len(self._seen):
            self._seen = np.concatenate([self._seen, np.zeros(max(need, 64), bool)])
        first = inside & ~self._seen[ids]
        part = np.zeros(len(ids), bool)  # inside a larger box of its class, inside too
        if self.contained < 1 and inside.sum() > 1:
            twins = nested(xyxy, classes, self.contained) & inside[None, :] & inside[:, None]
            area = np.prod(xyxy[:, 2:] - xyxy[:, :2], axis=1)
            order = np.arange(len(ids))
            larger = (area[None, :] > area[:, None]) | (
                (area[None, :] == area[:, None]) & (order[None, :] < order[:, None])
            )
            part = (twins & larger).any(axis=1)
            first &= ~(twins & (self._seen[ids][None, :] | larger)).any(axis=1)
        self.inside = Counter(classes[inside & ~part].tolist())
        self.entered.update(classes[first].tolist())
        self._seen[ids[inside]] = True
        return ids[inside]

    def frame_record(self, names: Sequence[str]) -> dict[str, object]:
        """``{"inside": {label: n}, "count": n}`` for the last frame."""
        return {"count": sum(self.inside.values()), "inside": _by_label(self.inside, names)}

    def record(self, names: Sequence[str]) -> dict[str, object]:
        """``{"zone": [[x, y], ...], "entered": {label: n}}``."""
        return {"zone": self.polygon.tolist(), "entered": _by_label(self.entered, names)}


def _by_label(counts: Counter[int], names: Sequence[str]) -> dict[str, int]:
    return {
        (names[c] if 0 <= c < len(names) else str(c)): n for c, n in sorted(counts.items()) if n
    }
