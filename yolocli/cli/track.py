"""`yolocli track`: identities across frames, and counts across lines and zones."""

from __future__ import annotations

from typing import Any

import click

from yolocli.cli.common import CONTEXT, ENVIRONMENT, F
from yolocli.cli.detect import detect

TRACK_EPILOG = (
    """\b
Inputs: video files, cameras (0, /dev/video0), streams (rtsp://, http(s)://),
and folders or glob patterns of frames ("seq/*.jpg"), each one sequence, read in
name order with numbers by value (frame2 before frame10), frame i at i/--fps s.
A photo on its own is an error. Each video gets its own tracker: ids start at 1.

\b
Records: detect's, for the detections of confirmed tracks only, each with
"track_id" (an int, stable for the life of the track). With --line, each
frame record has "crossings": [{"line": 0, "track_id": 3, "label": "car",
"direction": "in"}]; with --zone, "zones": [{"count": 2, "inside": {"car":
2}}]. The closing record of each video has "lines": [{"line": [x1, y1, x2,
y2], "in": {label: n}, "out": {label: n}}] and "zones": [{"zone": [[x, y],
...], "entered": {label: n}}] (distinct tracks that entered).
CSV: detect's columns plus track_id. -f mot: MOTChallenge lines
frame,id,x,y,w,h,score,-1,-1,-1 (frames from 1), for TrackEval or motmetrics.

\b
Counting: objects are followed by the centre of their box. For a line from A
(x1,y1) to B (x2,y2), "in" is a crossing towards the right-hand side of someone
walking from A to B on the image as shown (y grows downwards): for
0,360,1280,360 moving down is "in"; for 640,0,640,720 moving left is "in".
A crossing counts when the centre, settled on one side, settles on the other
having passed between A and B; settled means at least a tenth of the box's
smaller side (and 2 px) from the line, so a track jittering on the line is
counted once per real crossing. Tracks of one class whose boxes nest (a small
model's second box around a motorbike's engine) are one object: a crossing is
not counted again when a track nested with it crossed the same way within 1 s,
or the two were nested as either crossed; zones count a nested box with the
larger one (--contained).

\b
Time: the tracker runs on each frame's timestamp, so --vid-stride, frames a
camera or stream dropped, and --lost-time (seconds) agree. The defaults suit
darknet's scores (objectness x class probability), lower than the YOLOX
scores ByteTrack's own were tuned on: --conf 0.1 lets weak boxes reach
ByteTrack's second association, and tracks start from 0.3.

"""
    + ENVIRONMENT
)


# detect's options that tracking does not take (or takes with another default, below).
_NOT_FOR_TRACK = {"skip_existing", "null", "coco_ids", "workers", "fmt", "conf"}


def _track_params() -> list[click.Parameter]:
    """detect's own options, minus those `_NOT_FOR_TRACK`: one definition for both."""
    return [p for p in detect.params if p.name not in _NOT_FOR_TRACK]


def _track_options(func: F) -> F:
    """What only tracking has: the tracker and its few settings, lines, zones, trails."""
    from yolocli.io.formats import TRACK_FORMATS
    from yolocli.tracking.trackers import TRACKERS

    options = [
        click.option(
            "--conf",
            type=click.FloatRange(0, 1),
            default=0.1,
            help="Detections scoring above this reach the tracker (ByteTrack uses the weak "
            "ones to keep tracks through occlusions).",
        ),
        click.option(
            "-f",
            "--format",
            "fmt",
            type=click.Choice(TRACK_FORMATS),
            default="text",
            help="Results on stdout (mot: MOTChallenge lines).",
        ),
        click.option(
            "--tracker",
            type=click.Choice(TRACKERS),
            default="bytetrack",
            help="bytetrack, or sort (the simple baseline).",
        ),
        click.option(
            "--track-high",
            type=click.FloatRange(0, 1),
            default=0.3,
            help="Detections scoring at least this are matched first and may start tracks "
            "(sort: the only ones it uses).",
        ),
        click.option(
            "--track-new",
            type=click.FloatRange(0, 1),
            help="bytetrack: a new track needs a detection scoring at least this. "
            "[default: --track-high]",
        ),
        click.option(
            "--lost-time",
            type=click.FloatRange(min=0),
            help="Seconds a track unseen is kept, to be found again. "
            "[default: 1.0 for bytetrack, 0.1 for sort]",
        ),
        click.option(
            "--min-hits",
            type=click.IntRange(min=1),
            help="sort: frames in a row a track must be matched before it is reported. "
            "[default: 3]",
        ),
        click.option(
            "--line",
            "lines",
            multiple=True,
            metavar="X1,Y1,X2,Y2",
            help="Count tracks crossing from A (x1,y1) to B (x2,y2), per class and "
            "direction (repeatable; see the counting rule below).",
        ),
        click.option(
            "--zone",
            "zones",
            multiple=True,
            metavar="X1,Y1,X2,Y2,...",
            help="A polygon: tracks inside it in each frame, and distinct tracks that "
            "entered (repeatable).",
        ),
        click.option(
            "--contained",
            type=click.FloatRange(0, 1),
            default=0.8,
            show_default=True,
            help="Counting: tracks of one class whose boxes nest (the intersection covers "
            "more than this of the smaller box) are one object, such as a motorbike and the "
            "second box a small model puts around its engine: counted once (1: count every "
            "track).",
        ),
        click.option(
            "--trail",
            type=click.FloatRange(min=0),
            default=0.0,
            help="Draw each track's path over the last this many seconds on annotated "
            "videos (0: none).",
        ),
        click.option(
            "--fps",
            type=click.FloatRange(min=0, min_open=True),
            default=30.0,
            help="Folders and globs of frames: their frame rate (frame i is at i/FPS s).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _track_settings(
    tracker: str,
    track_high: float,
    track_new: float | None,
    lost_time: float | None,
    min_hits: int | None,
    conf: float,
    lines: tuple[str, ...],
    zones: tuple[str, ...],
    trail: float,
    contained: float = 0.8,
) -> Any:
    """The `yolocli.tracking.session.TrackSettings` the options describe."""
    from yolocli.tracking.session import TrackSettings, parse_points

    settings: dict[str, float | bool] = {}
    if tracker == "bytetrack":
        if min_hits is not None:
            raise click.UsageError("--min-hits is a sort setting: add --tracker sort")
        settings.update(high=track_high, low=min(conf, track_high))
        settings["new"] = track_high if track_new is None else track_new
    else:
        if track_new is not None:
            raise click.UsageError("--track-new is a bytetrack setting; sort uses --track-high")
        settings["conf"] = track_high
        if min_hits is not None:
            settings["min_hits"] = min_hits
    if lost_time is not None:
        settings["lost_time"] = lost_time
    segments = []
    for text in lines:
        try:
            points = parse_points(text, "--line")
        except ValueError as err:
            raise click.BadParameter(str(err), param_hint="'--line'") from None
        if len(points) != 2 or points[0] == points[1]:
            raise click.BadParameter(
                f"{text!r}: give two different points, x1,y1,x2,y2", param_hint="'--line'"
            )
        segments.append((points[0], points[1]))
    polygons = []
    for text in zones:
        try:
            points = parse_points(text, "--zone")
        except ValueError as err:
            raise click.BadParameter(str(err), param_hint="'--zone'") from None
        if len(points) < 3:
            raise click.BadParameter(
                f"{text!r}: a polygon needs at least 3 points, x1,y1,x2,y2,x3,y3,...",
                param_hint="'--zone'",
            )
        polygons.append(tuple(points))
    return TrackSettings(
        tracker, settings, tuple(segments), tuple(polygons), trail, contained=contained
    )


@click.command(context_settings=CONTEXT, epilog=TRACK_EPILOG, params=_track_params())
@_track_options
@click.pass_context
def track(
    ctx: click.Context,
    /,
    tracker: str,
    track_high: float,
    track_new: float | None,
    lost_time: float | None,
    min_hits: int | None,
    lines: tuple[str, ...],
    zones: tuple[str, ...],
    contained: float,
    trail: float,
    fps: float,
    fmt: str,
    conf: float,
    **detect_args: Any,
) -> None:
    """Follow objects through videos, cameras, streams and folders of frames: an id for
    each, counts across lines and inside zones; annotated videos in --out, records on stdout.

    \b
    Examples:
      yolocli track clip.mp4 -m yolov3-tiny -f jsonl > tracks.jsonl
      yolocli track clip.mp4 --line 640,0,640,720 --classes person,car
      yolocli track frames/ --fps 25 -f mot > results.txt     # MOTChallenge
      yolocli track "seq/*.jpg" --zone 100,100,500,100,500,400,100,400 --trail 2
      yolocli track rtsp://cam.local/stream --line 0,360,1280,360 -f jsonl
      yolocli track clip.mp4 --tracker sort --vid-stride 2
    """
    settings = _track_settings(
        tracker, track_high, track_new, lost_time, min_hits, conf, lines, zones, trail, contained
    )
    ctx.meta["yolocli.tracking"] = settings
    ctx.meta["yolocli.frame_rate"] = fps
    ctx.invoke(
        detect, fmt=fmt, conf=conf, skip_existing=False, null=False, coco_ids=None,
        workers="1", **detect_args,
    )  # fmt: skip
