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
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from yolocli.detections import Detections

F64 = npt.NDArray[np.float64]
MIN_BAND_PX = 2.0


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


class _PerTrack:
    """Arrays indexed by track id that grow as ids do."""

    def __init__(self) -> None:
        self.side = np.zeros(0, np.int8)  # settled side: -1 out, +1 in, 0 not yet
        self.point = np.zeros((0, 2))  # where it settled last

    def grow(self, ids: npt.NDArray[np.int64]) -> None:
        need = int(ids.max(initial=0)) + 1
        if need > len(self.side):
            size = max(need, 2 * len(self.side), 64)
            self.side = np.concatenate([self.side, np.zeros(size - len(self.side), np.int8)])
            self.point = np.concatenate([self.point, np.zeros((size - len(self.point), 2))])


class LineCounter:
    """Counts, per class, the tracks whose centre crosses the segment A-B in each direction
    (see the module for the direction rule and the jitter band)."""

    def __init__(self, a: Sequence[float], b: Sequence[float], band: float = 0.1) -> None:
        if tuple(a) == tuple(b):
            raise ValueError(f"a line needs two different points, got {a} twice")
        if band < 0:
            raise ValueError(f"band must be >= 0, got {band}")
        self.a = (float(a[0]), float(a[1]))
        self.b = (float(b[0]), float(b[1]))
        self.band = band
        self.counts_in: Counter[int] = Counter()  # class id -> crossings
        self.counts_out: Counter[int] = Counter()
        self._tracks = _PerTrack()

    def update(self, detections: Detections) -> tuple[npt.NDArray[np.int64], F64]:
        """Take one frame of tracked detections; returns the track ids that crossed in this
        frame and their directions (+1 in, -1 out)."""
        if detections.track_ids is None:
            raise ValueError("LineCounter needs tracked detections (track_ids set)")
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
        direction = side[crossed].astype(np.float64)
        for cid, d in zip(classes[crossed].tolist(), direction.tolist(), strict=True):
            (self.counts_in if d > 0 else self.counts_out)[cid] += 1
        settled = side != 0
        st.side[ids[settled]] = side[settled]
        st.point[ids[settled]] = now[settled]
        return ids[crossed], direction

    def record(self, names: Sequence[str]) -> dict[str, object]:
        """``{"line": [x1, y1, x2, y2], "in": {label: n}, "out": {label: n}}``."""
        return {
            "line": [*self.a, *self.b],
            "in": _by_label(self.counts_in, names),
            "out": _by_label(self.counts_out, names),
        }


class ZoneCounter:
    """Tracks whose centre is inside a polygon: how many in each frame, and how many distinct
    tracks ever entered it, per class."""

    def __init__(self, polygon: Sequence[Sequence[float]] | npt.ArrayLike) -> None:
        v = np.asarray(polygon, np.float64)
        if v.ndim != 2 or v.shape[1] != 2 or len(v) < 3:
            raise ValueError(f"a zone needs at least 3 (x, y) points, got {v.tolist()}")
        self.polygon = v
        self.entered: Counter[int] = Counter()  # class id -> distinct tracks
        self.inside: Counter[int] = Counter()  # class id -> tracks inside in the last frame
        self._seen = np.zeros(0, bool)

    def update(self, detections: Detections) -> npt.NDArray[np.int64]:
        """Take one frame of tracked detections; returns the ids of the tracks inside."""
        if detections.track_ids is None:
            raise ValueError("ZoneCounter needs tracked detections (track_ids set)")
        sel = detections.track_ids >= 0
        ids = detections.track_ids[sel]
        inside = inside_polygon(centres(detections.xyxy[sel]), self.polygon)
        classes = detections.class_ids[sel][inside]
        self.inside = Counter(classes.tolist())
        need = int(ids.max(initial=0)) + 1
        if need > len(self._seen):
            self._seen = np.concatenate([self._seen, np.zeros(max(need, 64), bool)])
        first = inside & ~self._seen[ids]
        self.entered.update(detections.class_ids[sel][first].tolist())
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
