"""The result record: one per input, the contract every output format and the README follow.

As JSON (``--format jsonl``, one object a line)::

    {"image": "photos/dog.jpg", "width": 768, "height": 576, "model": "yolov3",
     "detections": [{"label": "dog", "class_id": 16, "score": 0.873512,
                     "box": [131.5, 219.2, 309.8, 541.0]}],
     "outputs": {"image": "detections/dog.jpg", "labels": "detections/dog.txt"},
     "error": null}

``outputs`` names the files written for this input (``image``, ``labels``, ``crops``; only
the kinds asked for, ``{}`` when nothing is saved). ``skipped: true`` marks an input that an
earlier run completed (``--skip-existing``); ``warnings`` (a list of sentences) appears when
something about an input that did not stop it deserves a word (only the first frame of an
animated image was used, say).

A video file, camera or stream gives one record per processed frame, the same fields plus
``frame`` (the frame's index in the source, counting frames skipped by a stride) and ``time``
(seconds from the start: the container's timestamp for a file, the clock for a live
source); ``image`` is the video's path or URL as given::

    {"image": "clip.mp4", "frame": 12, "time": 0.48, "width": 416, "height": 416,
     "model": "yolov3-tiny", "detections": [...], "outputs": {}, "error": null}

Per-frame ``outputs`` hold that frame's ``labels`` (``clip_000012.txt``) and ``crops``; the
annotated video itself (``outputs.image``) is named by the video's last record, written once
the video is complete: ``frame`` null, ``detections`` empty, ``frames`` the number of frames
processed, and ``error`` set if the video ended early (truncated, a stream lost). A video
done in an earlier run gives that one record with ``skipped: true``.
"""

from __future__ import annotations

from typing import NotRequired, TypedDict


class DetectionRecord(TypedDict):
    label: str
    class_id: int
    score: float  # objectness x class probability, rounded to 6 decimals
    box: list[float]  # [x1, y1, x2, y2] pixels of the original image, clipped to it
    track_id: NotRequired[int | None]  # `yolocli track`: the object's track (None: in none)


class OutputsRecord(TypedDict, total=False):
    image: str  # the annotated image
    labels: str  # YOLO label lines
    crops: list[str]  # one image per detection


class ImageRecord(TypedDict):
    image: str  # the input as given ("-" for image bytes on stdin)
    width: int | None
    height: int | None
    model: str
    detections: list[DetectionRecord]
    outputs: OutputsRecord
    error: str | None  # one sentence, or None
    skipped: NotRequired[bool]
    warnings: NotRequired[list[str]]
    frame: NotRequired[int | None]  # video frames only: index in the source; None: the video
    time: NotRequired[float | None]  # video frames only: seconds from the start
    frames: NotRequired[int]  # a video's closing record: frames processed


FIELDS = ("image", "width", "height", "model", "detections", "outputs", "error")
