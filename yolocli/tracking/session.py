"""One video's tracking, as `yolocli track` runs it: a tracker, the counting lines and zones,
the trails, and what each frame's record and annotated copy get.

`TrackSettings` is the whole configuration (frozen, checked once); `TrackSettings.session`
makes a fresh `TrackSession` for each video, which `yolocli.run.pipeline` calls in frame order
(it is a `yolocli.run.pipeline.VideoHook`). Only detections of confirmed tracks are kept.
"""

from __future__ import annotations

import glob
import os
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from yolocli.detections import Detections
from yolocli.draw import color_for, line_width
from yolocli.tracking.counting import CONTAINED, LineCounter, ZoneCounter
from yolocli.tracking.trackers import TRACKERS, Tracker, make_tracker

Overlay = Any  # yolocli.run.pipeline.Overlay (not imported: the pipeline imports the model)


def parse_points(text: str, what: str) -> list[tuple[float, float]]:
    """``x1,y1,x2,y2,...`` as (x, y) points; `ValueError` naming ``what`` if it is not."""
    try:
        values = [float(v) for v in text.replace(" ", "").split(",") if v != ""]
    except ValueError:
        raise ValueError(f"{what} {text!r}: give numbers, x1,y1,x2,y2,...") from None
    if len(values) % 2 or not all(np.isfinite(values)):
        raise ValueError(f"{what} {text!r}: give pairs of numbers, x1,y1,x2,y2,...")
    return list(zip(values[::2], values[1::2], strict=True))


@dataclass(frozen=True)
class TrackSettings:
    """How `yolocli track` follows objects: the tracker (`TRACKERS`) and its settings, the
    counting lines (each (A, B)) and zones (each a polygon), whose counts take tracks nesting
    by more than ``contained`` as one object (`yolocli.tracking.counting`; 1: never), and
    trails of ``trail`` seconds drawn on annotated videos (0: none)."""

    tracker: str = "bytetrack"
    settings: dict[str, float | bool] = field(default_factory=dict)
    lines: tuple[tuple[tuple[float, float], tuple[float, float]], ...] = ()
    zones: tuple[tuple[tuple[float, float], ...], ...] = ()
    trail: float = 0.0
    names: Sequence[str] = ()
    contained: float = CONTAINED

    def __post_init__(self) -> None:
        if self.tracker not in TRACKERS:
            raise ValueError(f"unknown tracker {self.tracker!r}; choose {', '.join(TRACKERS)}")
        make_tracker(self.tracker, **self.settings)  # settings are checked now, not per video
        for a, b in self.lines:
            LineCounter(a, b, contained=self.contained)
        for zone in self.zones:
            ZoneCounter(zone, contained=self.contained)
        if self.trail < 0:
            raise ValueError(f"trail must be >= 0 seconds, got {self.trail}")

    def session(self) -> TrackSession:
        return TrackSession(self)


class TrackSession:
    """One video's tracker, counters and trails (see the module)."""

    def __init__(self, settings: TrackSettings) -> None:
        self.settings = settings
        self.tracker: Tracker = make_tracker(settings.tracker, **settings.settings)
        self.lines = [LineCounter(a, b, contained=settings.contained) for a, b in settings.lines]
        self.zones = [ZoneCounter(z, contained=settings.contained) for z in settings.zones]
        self.trails: dict[int, deque[tuple[float, float, float]]] = {}
        self.names: Sequence[str] = settings.names

    def frame(
        self, time: float, detections: Detections
    ) -> tuple[Detections, Overlay | None, dict[str, Any]]:
        """A frame's detections at ``time`` seconds: those of confirmed tracks (with their
        ids), the overlay for its annotated copy, and its record's fields."""
        self.names = detections.names or self.names
        # Container timestamps can step back (broken PTS, B-frame reordering): hold the clock.
        if self.tracker.time is not None:
            time = max(time, self.tracker.time)
        tracked = self.tracker.update(detections, time)
        kept = tracked[tracked.track_ids >= 0]  # type: ignore[operator]
        extra: dict[str, Any] = {}
        if self.lines:
            events = []
            for i, line in enumerate(self.lines):
                ids, direction = line.update(kept, time)
                labels = kept[np.isin(kept.track_ids, ids)]  # type: ignore[arg-type]
                label_of = dict(zip(labels.track_ids.tolist(), labels.labels, strict=True))  # type: ignore[union-attr]
                for tid, d in zip(ids.tolist(), direction.tolist(), strict=True):
                    events.append({"line": i, "track_id": tid, "label": label_of[tid],
                                   "direction": "in" if d > 0 else "out"})  # fmt: skip
            extra["crossings"] = events
        if self.zones:
            for zone in self.zones:
                zone.update(kept)
            extra["zones"] = [z.frame_record(self.names) for z in self.zones]
        overlay = self._overlay(time, kept) if self._draws else None
        return kept, overlay, extra

    def end(self) -> dict[str, Any]:
        """The closing record's fields: each line's and zone's totals."""
        extra: dict[str, Any] = {}
        if self.lines:
            extra["lines"] = [line.record(self.names) for line in self.lines]
        if self.zones:
            extra["zones"] = [zone.record(self.names) for zone in self.zones]
        return extra

    @property
    def _draws(self) -> bool:
        return bool(self.lines or self.zones or self.settings.trail > 0)

    def _overlay(self, time: float, kept: Detections) -> Overlay:
        """A drawing of this moment (trails, lines, zones and their counts), made now so it
        shows this frame even if it is drawn after later frames were tracked."""
        trails: list[tuple[npt.NDArray[np.int32], tuple[int, int, int]]] = []
        if self.settings.trail > 0:
            centres = (kept.xyxy[:, :2] + kept.xyxy[:, 2:]) / 2
            for tid, cid, (x, y) in zip(kept.track_ids.tolist(), kept.class_ids.tolist(),  # type: ignore[union-attr]
                                        centres.tolist(), strict=True):  # fmt: skip
                trail = self.trails.setdefault(tid, deque())
                trail.append((time, x, y))
                while trail and trail[0][0] < time - self.settings.trail:
                    trail.popleft()
                points = np.round([(px, py) for _, px, py in trail]).astype(np.int32)
                trails.append((points, color_for(cid)))
            for tid in [t for t, q in self.trails.items() if q and q[-1][0] < time - 2]:
                del self.trails[tid]  # gone: forget it
        lines = [(line.a, line.b, sum(line.counts_in.values()), sum(line.counts_out.values()))
                 for line in self.lines]  # fmt: skip
        zones = [(zone.polygon.copy(), sum(zone.inside.values())) for zone in self.zones]

        def draw(image: npt.NDArray[np.uint8]) -> None:
            height, width = image.shape[:2]
            lw = line_width(width, height)
            scale = max(0.4, lw / 3)
            for points, color in trails:
                if len(points) > 1:
                    cv2.polylines(image, [points], False, color, lw, cv2.LINE_AA)
            for i, (polygon, inside) in enumerate(zones):
                pts = np.round(polygon).astype(np.int32)
                cv2.polylines(image, [pts], True, (255, 200, 0), lw, cv2.LINE_AA)
                _text(image, f"zone {i + 1}: {inside}", pts[0], scale)
            for i, (a, b, n_in, n_out) in enumerate(lines):
                pa = (round(a[0]), round(a[1]))
                pb = (round(b[0]), round(b[1]))
                cv2.line(image, pa, pb, (0, 255, 255), lw, cv2.LINE_AA)
                cv2.circle(image, pa, lw * 2, (0, 255, 255), -1)  # A: where the line starts
                _text(image, f"line {i + 1}: in {n_in}  out {n_out}", pb, scale)  # at B

        return draw


def _text(image: npt.NDArray[np.uint8], text: str, at: Any, scale: float) -> None:
    h, w = image.shape[:2]
    thickness = max(1, round(scale * 2))
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    x = int(min(max(int(at[0]) + 4, 0), max(w - tw, 0)))
    y = int(min(max(int(at[1]) + th + 4, th), h - 2))
    cv2.rectangle(image, (x - 2, y - th - 2), (x + tw + 2, y + 4), (0, 0, 0), -1)
    cv2.putText(image, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255),
                thickness, cv2.LINE_AA)  # fmt: skip


# -- sources ---------------------------------------------------------------------------------

SINGLE_PHOTO = "a single photo is not a sequence to track: give a folder or a glob of frames"


def expand(items: Iterable[str], **options: Any) -> Iterator[Any]:
    """`yolocli.io.inputs.expand_sources` for tracking: a folder or glob pattern holding images
    becomes one `yolocli.io.inputs.Source` of kind "frames" (its images in name order, read as
    one video); videos, cameras and streams are as for detect; a photo on its own is an
    error (one frame has no motion to track)."""
    from yolocli.io.inputs import Source, expand_sources, safe_rel
    from yolocli.io.video import classify, output_stem, sequence_paths

    for item in items:
        live = classify(item, options.get("source_type", "auto")) if item != "-" else None
        folder = live is None and item != "-" and os.path.isdir(item)
        pattern = live is None and glob.has_magic(item) and not os.path.lexists(item)
        if (folder or pattern) and sequence_paths(item):
            name = Path(item).resolve().name if folder else output_stem(item, "stream")
            yield Source(item, Path(item) if folder else None, safe_rel([name]), kind="frames")
            continue
        for source in expand_sources([item], **options):
            if source.kind == "image" and source.error is None and not source.not_an_image:
                source = replace(source, error=SINGLE_PHOTO)
            yield source
