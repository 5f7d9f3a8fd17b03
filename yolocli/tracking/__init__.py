"""Identities across frames, and counts across lines and inside zones.

A tracker is a state machine over `yolocli.detections.Detections`: call
``update(detections, timestamp)`` once per frame, in order, and get the same detections back
with ``track_ids`` set (-1 for a detection in no confirmed track). No I/O, no drawing.

    from yolocli.tracking import ByteTrack, LineCounter
    tracker = ByteTrack()
    line = LineCounter((640, 0), (640, 720))
    for t, frame in frames:
        tracked = tracker.update(detector.detect(frame), t)
        line.update(tracked)
    line.counts_in, line.counts_out  # class id -> crossings

`ByteTrack` (the default of `yolocli track`) and `Sort` (the simple baseline) live in
`yolocli.tracking.trackers`; the Kalman filter and the assignment in ``kalman`` and
``matching``; line and zone counting in ``counting``.
"""

from __future__ import annotations

from yolocli.tracking.counting import LineCounter, ZoneCounter
from yolocli.tracking.trackers import TRACKERS, ByteTrack, Sort, Tracker, make_tracker

__all__ = ["TRACKERS", "ByteTrack", "LineCounter", "Sort", "Tracker", "ZoneCounter", "make_tracker"]
