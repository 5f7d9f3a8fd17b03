"""`yolocli detect`: objects in images, videos, cameras and streams."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from yolocli.cli.common import (
    CONTEXT,
    ENVIRONMENT,
    EXIT_FAILED,
    EXIT_OK,
    _common,
    _limit_opencv_decoders,
    _native_stderr_captured,
    _printable,
    _progress_wanted,
)
from yolocli.cli.options import (
    SOURCE_TYPES,
    UNITS,
    _Amount,
    _check_model_choice,
    _flag,
    _keep_options,
    _network_options,
    _slicer,
    _split_classes,
    _thresholds,
)
from yolocli.cli.session import _Run
from yolocli.io.formats import FORMATS
from yolocli.io.names import is_uri
from yolocli.run.signals import Signals

DETECT_EPILOG = (
    """\b
Inputs: files; folders (recursive, sorted; jpg jpeg png bmp webp tif tiff, and
videos: mp4 avi mkv mov webm m4v mpg ts ...); glob patterns (quote them:
"shots/**/*.jpg"); @list.txt (one path a line); - for stdin, holding paths one a
line (NUL-separated with -0), or one image's bytes. Cameras: 0 (a device index,
unless a file named 0 exists; see --source-type), /dev/video0. Streams: rtsp://,
rtmp://, http(s):// URLs that OpenCV's FFmpeg backend reads.

\b
Videos: one record per processed frame, with "frame" (index in the source)
and "time" (seconds), then one closing record per video ("frame": null,
"frames": N, outputs.image: the annotated MP4 in --out). Text output: a
summary per video. --save-txt/--save-crops: one file per frame (clip_000012.txt).

\b
Scores are objectness x class probability, as darknet reports them. Like
darknet, a box is listed once for every class scoring above --conf; use
--single-label for only its best class. NMS runs per class (--agnostic: across
classes) on the unclipped boxes; reported boxes are clipped to the image.

\b
ONNX models (--model my_model.onnx): Ultralytics (v5u, v8, 11, 12; the
end-to-end v10 and YOLO26), YOLOv5/YOLOv7 and YOLOX, recognised from the file's
metadata or output shapes (--family overrides; --names gives class names). Each
is prepared, decoded and kept as its family's own code does: its score, one
class per box, its NMS. Ultralytics' predict defaults are --conf 0.25 --nms 0.7.

\b
JSON Lines record, one per image, flushed as soon as it is done:
  {"image": "a.jpg", "width": 640, "height": 480, "model": "yolov3",
   "detections": [{"label": "dog", "class_id": 16, "score": 0.87,
                   "box": [x1, y1, x2, y2]}], "error": null}
CSV: one row per detection (an image with none still gets a row; a video's
closing record gets one only when the video failed).

\b
Outputs (--out): a file lands at its name (shots/a.jpg, /x/a.jpg and ../a.jpg all
give OUT/a.jpg); a folder's or a glob's images keep their place below the folder
(photos/ -> OUT/trip/b.jpg). A name, once given, stays with its input in later
runs into the same --out and is never given to another (a.jpg, a-2.png).
Subfolders holding a yolocli journal (earlier outputs) are skipped.

"""
    + ENVIRONMENT
)


@click.command(context_settings=CONTEXT, epilog=DETECT_EPILOG)
@click.argument("sources", nargs=-1, required=True, metavar="SOURCES...")
@_network_options
@_keep_options(conf=0.5, nms=0.45, conf_help="Report scores above this.")
@click.option("--agnostic", is_flag=True, help="NMS across classes, not per class.")
@click.option("--single-label", is_flag=True, help="Only the best class of each box.")
@click.option(
    "-f",
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="text",
    help="Results on stdout: text for people; jsonl/json records; csv rows; coco (COCO results, "
    "see --coco-ids); labelstudio (Label Studio pre-annotation tasks).",
)
@click.option(
    "-o",
    "--out",
    type=click.Path(file_okay=False),
    default="detections",
    help="Folder for annotated images and other outputs (where each lands: see below; with "
    "--ray: or a URI, s3://...).",
)
@click.option("--no-save", is_flag=True, help="Write no annotated images.")
@click.option(
    "--line-width",
    type=click.IntRange(min=1, max=100),
    help="Box lines, in pixels. [default: 0.3% of the image's mean side, at least 2: 10 at "
    "4000x3000]",
)
@click.option(
    "--font-size",
    type=click.IntRange(min=6, max=500),
    help="Label font size, in pixels; the same for every label of an image. [default: "
    "3% of the image's mean side, at least 9: 17 at 640x480, 105 at 4000x3000]",
)
@click.option("--hide-labels", is_flag=True, help="Draw boxes only, no labels.")
@click.option("--hide-conf", is_flag=True, help="Labels without the score.")
@click.option(
    "--save-txt",
    is_flag=True,
    help="Also write YOLO label files (class cx cy w h) beside the images.",
)
@click.option("--save-conf", is_flag=True, help="Add the score to each --save-txt line.")
@click.option(
    "--save-crops",
    is_flag=True,
    help="Also write each detection as an image under OUT/crops/LABEL/.",
)
@click.option(
    "--skip-existing",
    is_flag=True,
    help="Leave inputs that an earlier run into --out completed, outputs still there (resume "
    "a killed batch); stdin bytes, cameras and streams are always processed.",
)
@click.option("-0", "--null", is_flag=True, help="Paths on stdin are NUL-separated (find -print0).")
@click.option(
    "--slice",
    "slice_",
    metavar="S|WxH",
    help="Cut each image into tiles of S (or WxH) pixels of the original image, each run at "
    "--size, and merge the boxes: finds small objects in large images. A tile is enlarged at "
    "most 4x; an image needing over 4096 passes is refused.",
)
@click.option(
    "--overlap",
    type=click.FloatRange(0, 1, max_open=True),
    help="With --slice: overlap between neighbouring tiles, as a share of a tile. [default: 0.2]",
)
@click.option(
    "--full/--no-full",
    default=None,
    help="With --slice: also run the whole image once, for objects larger than a tile. "
    "[default: --full]",
)
@click.option(
    "--scales",
    metavar="LIST",
    help="With --slice: an image pyramid, e.g. 1,0.5: tile each scaled copy (0 < s <= 1). "
    "[default: 1]",
)
@click.option(
    "--merge",
    type=click.Choice(["nms", "nmm"]),
    help="With --slice: how overlapping boxes merge: nms keeps the best, nmm their union. "
    "[default: nms]",
)
@click.option(
    "--match",
    type=click.Choice(["iou", "ios", "diou"]),
    help="With --slice: overlap measure for --merge (ios: over the smaller box; diou: "
    "darknet's distance-IoU), at --nms. [default: the model's own NMS measure: diou for "
    "AlexeyAB cfgs with nms_kind, else iou]",
)
@click.option(
    "--vid-stride",
    type=click.IntRange(min=1),
    default=1,
    help="Videos: process every Nth frame.",
)
@click.option(
    "--max-frames",
    type=click.IntRange(min=1),
    help="Videos: stop after this many processed frames of each. [default: all]",
)
@click.option(
    "--buffer",
    is_flag=True,
    help="Cameras and streams: process every frame, not only the newest (latency grows "
    "when the network is slower than the source).",
)
@click.option(
    "--source-type",
    type=click.Choice(SOURCE_TYPES),
    default="auto",
    help="What SOURCES are: auto (0 is camera 0 unless a file named 0 exists), or force "
    "file, camera or stream.",
)
@click.option(
    "--reconnect",
    type=click.IntRange(min=0),
    default=5,
    help="Streams and cameras: attempts to reopen one that drops, in all for that source "
    "(backoff 0.5 s, doubling to 8 s), before giving up on it and going on to the next input.",
)
@click.option(
    "--stall-timeout",
    type=click.FloatRange(min=0.1, max=3600),
    default=10.0,
    show_default=True,
    metavar="SECONDS",
    help="Streams: how long opening one, or waiting for its next frame, may take before "
    "that counts as a drop.",
)
@click.option(
    "--max-bytes",
    type=_Amount(),
    default="512Mi",
    help=f"Read at most this many bytes of one input ({UNITS}).",
)
@click.option(
    "--max-pixels",
    type=_Amount(),
    default="250M",
    help="Refuse images with more pixels than this, read from their header before decoding "
    "(Radiance HDR, PFM, OpenEXR count 5 per pixel, JPEG 2000 8, AVIF and progressive JPEG 3: "
    f"what their decoders hold); an image whose size cannot be read is refused ({UNITS}).",
)
@click.option(
    "--profile",
    is_flag=True,
    help="Print time per stage (read, forward, ...) on stderr at the end, also under -q.",
)
@click.option(
    "--ray",
    "ray_address",
    metavar="ADDRESS",
    help="Run on a Ray cluster: auto (RAY_ADDRESS, or the cluster `ray start` made here), "
    "local (start one in this process) or HOST:PORT of its head. SOURCES may then be "
    "object-store URIs (s3://bucket/photos/). Needs pip install 'yolocli[ray]'.",
)
@click.option(
    "--unordered",
    is_flag=True,
    help="With --ray: records as they finish, not in input order.",
)
@click.option(
    "--records-to",
    metavar="URI",
    help="With --ray: the cluster writes the records itself, sharded, into this folder or "
    "URI (nothing on stdout); with --no-save.",
)
@click.option(
    "--records-format",
    type=click.Choice(["jsonl", "parquet"]),
    default="jsonl",
    help="With --records-to: JSON Lines shards (the -f jsonl lines) or Parquet.",
)
@click.option(
    "--coco-ids",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="With -f coco: image ids (by file name) and category ids (by class name, COCO's "
    "spellings too) from this COCO annotations file. [default: image id: the file stem, a "
    "number if all digits, else the path without extension where stems repeat; a video frame: "
    "VIDEO_ID:FRAME; category id: COCO's 1-90 for COCO's 80 classes, else the class id]",
)
@_common
@click.pass_context
def detect(
    ctx: click.Context,
    sources: tuple[str, ...],
    model: str | None,
    cfg: Path | None,
    weights: Path | None,
    names: Path | None,
    size: str | None,
    conf: str,
    nms: float,
    classes: str | None,
    agnostic: bool,
    single_label: bool,
    max_det: int,
    letterbox: bool | None,
    darknet: str | None,
    family: str | None,
    device: str,
    backend: str,
    precision: str,
    threads: int | None,
    workers: str,
    fmt: str,
    out: str,
    no_save: bool,
    line_width: int | None,
    font_size: int | None,
    hide_labels: bool,
    hide_conf: bool,
    save_txt: bool,
    save_conf: bool,
    save_crops: bool,
    skip_existing: bool,
    null: bool,
    batch: int,
    slice_: str | None,
    overlap: float | None,
    full: bool | None,
    scales: str | None,
    merge: str | None,
    match: str | None,
    vid_stride: int,
    max_frames: int | None,
    buffer: bool,
    source_type: str,
    reconnect: int,
    stall_timeout: float,
    max_bytes: int,
    max_pixels: int,
    profile: bool,
    ray_address: str | None,
    unordered: bool,
    records_to: str | None,
    records_format: str,
    coco_ids: Path | None,
) -> None:
    """Detect objects in images, videos, cameras and streams: annotated copies in --out,
    results on stdout.

    \b
    Examples:
      yolocli detect photo.jpg --model yolov3-tiny
      yolocli detect photos/ --conf 0.25 --classes person,car -f jsonl > found.jsonl
      find . -name '*.jpg' -print0 | yolocli detect - -0 -f jsonl --no-save | jq .
      curl -s https://example.com/cat.jpg | yolocli detect - --save-crops
      yolocli detect big-folder/ --skip-existing      # resume after an interruption
      yolocli detect clip.mp4 -f jsonl > frames.jsonl # + detections/clip.mp4
      yolocli detect rtsp://cam.local/stream --max-frames 100
      yolocli detect x.png --cfg my.cfg --weights my.weights -v  # says which darknet
      yolocli detect s3://bucket/photos/ --ray auto -f jsonl --no-save > found.jsonl
    """
    # -- usage checks: everything that can be known before any work ----------------------
    _limit_opencv_decoders(max_pixels)
    _check_model_choice(model, cfg, weights)
    if save_conf and not save_txt:
        raise click.UsageError("--save-conf adds scores to --save-txt files: add --save-txt")
    if skip_existing and no_save and not save_txt:
        raise click.UsageError(
            "--skip-existing needs outputs to look for; it does nothing with --no-save"
        )
    if null and "-" not in sources:
        raise click.UsageError("-0/--null is about paths on stdin: add - to the sources")
    if sources.count("-") > 1:
        raise click.UsageError("stdin (-) can be read only once")
    ctx.meta["yolocli.coco_ids"] = _load_coco_ids(coco_ids, fmt)
    saving = not no_save or save_txt or save_crops
    _check_ray_options(sources, out, saving, ray_address, unordered, records_to)
    out_uri = out if is_uri(out) else None
    if saving and out_uri is None:
        for item in sources:
            if Path(item).is_dir() and Path(item).resolve() == Path(out).resolve():
                raise click.UsageError(
                    f"--out {out} is the input folder {item}: outputs would overwrite the "
                    "inputs; choose another --out"
                )
    from yolocli.errors import OptionError, OutputError
    from yolocli.postprocess import Postprocess

    if no_save and (line_width or font_size or hide_labels or hide_conf):
        raise click.UsageError(
            "--line-width, --font-size, --hide-labels and --hide-conf are about annotated "
            "images, which --no-save turns off"
        )
    try:
        from yolocli.detector import check_threads

        check_threads(threads)  # here: a worker process would find out too late
        post = Postprocess(
            **_thresholds(conf, 0.5), nms=nms, classes=_split_classes(classes), agnostic=agnostic,
            single_label=single_label, max_det=max_det,
        )  # fmt: skip
        detector_args = dict(
            model=model, size=size, device=device, backend=backend, threads=threads,
            workers=workers, letterbox=letterbox, cfg=cfg, weights=weights, names=names,
            postprocess=post, darknet=darknet, family=family, precision=precision,
        )  # fmt: skip
        with _native_stderr_captured(relay=bool(ctx.meta.get("yolocli.debug"))):
            if ray_address is None and batch == 1 and precision == "fp32":
                ctx.meta["yolocli.early"] = _open_early(ctx, sources, detector_args)
            from yolocli.draw import Style
            from yolocli.io.outputs import SaveOptions
            from yolocli.run.pipeline import Options

            save = SaveOptions(
                out_dir=(Path(out) if out_uri is None else Path("-")) if saving else None,
                save_images=not no_save, save_txt=save_txt, save_conf=save_conf,
                save_crops=save_crops, skip_existing=skip_existing,
                style=Style(line_width, font_size, hide_labels, hide_conf),
            )  # fmt: skip
            slicer = _slicer(slice_, overlap, full, scales, merge, match)
            from yolocli.io.video import ReadOptions, Reconnect

            tracking = ctx.meta.get("yolocli.tracking")  # `yolocli track`: a TrackSettings
            reading = ReadOptions(
                stride=vid_stride, max_frames=max_frames, buffer=buffer,
                reconnect=Reconnect(attempts=reconnect, stall=stall_timeout),
                frame_rate=ctx.meta.get("yolocli.frame_rate", 30.0),
            )  # fmt: skip
            options = Options(
                batch=batch, max_bytes=max_bytes, max_pixels=max_pixels, slicer=slicer,
                video=reading, per_video=tracking.session if tracking is not None else None,
            )  # fmt: skip
            ctx.meta["yolocli.source_type"] = source_type
            if ray_address is not None:
                cluster = _Cluster(ray_address, out_uri, not unordered, records_to, records_format)
                failed = _run_ray(ctx, sources, detector_args, save, options, fmt, null, profile,
                                  cluster)  # fmt: skip
            else:
                failed = _run_detect(ctx, sources, detector_args, save, options, fmt, null, profile)
    except OptionError as err:
        raise click.BadParameter(err.message, param_hint=f"'{_flag(err.option)}'") from None
    except OutputError as err:
        raise click.UsageError(str(err)) from None
    ctx.exit(EXIT_FAILED if failed else EXIT_OK)


def _run_detect(
    ctx: click.Context,
    sources: tuple[str, ...],
    detector_args: dict[str, Any],
    save: Any,
    options: Any,
    fmt: str,
    null: bool,
    profile: bool,
) -> int:
    """The detect run itself; returns how many inputs failed."""
    from yolocli.detector import Detector
    from yolocli.io.inputs import expand_sources, unannounced

    if ctx.meta.get("yolocli.tracking") is not None:  # folders of frames are sequences
        from yolocli.tracking.session import expand as expand_sources
    from yolocli.io.outputs import Outputs
    from yolocli.run.workers import choose_workers, min_images

    if isinstance(sys.stdout, io.TextIOWrapper):
        # Paths that are not valid UTF-8 reach stdout as the bytes they are.
        sys.stdout.reconfigure(errors="surrogateescape")
    with Outputs(save) as outputs:  # an unusable output folder fails here, before any work
        threads, workers = detector_args["threads"], detector_args["workers"]
        early = ctx.meta.pop("yolocli.early", None)  # (plan, opening detector) or None
        plan = early[0] if early is not None else _make_plan(ctx, detector_args)
        kind = ctx.meta.get("yolocli.source_type", "auto")
        streamed = _read_once(sources)  # stdin, a FIFO list: expanded once, while running
        limit = min_images()
        named = [] if streamed else _named(sources, kind, limit)
        few = not streamed and len(named) < limit
        videos = any(s.is_video for s in named)
        ctx.meta["yolocli.videos"] = videos
        if plan.precision == "int8":  # calibrated on the run's first image files
            plan = _calibrated(plan, [s.path for s in named if s.path and not s.is_video])
        if options.slicer is not None:  # tiles far smaller than the network: refused now
            options.slicer.check_network(plan.width, plan.height)
        options, rule = choose_workers(plan, few, workers, threads, options, videos, limit)
        # One network here: it opens on a thread while the inputs are listed and the first
        # image is read and letterboxed (the pipeline waits for it before the first result).
        if options.workers > 1:
            detector: Any = plan
        elif early is not None and options.threads == threads:
            detector = early[1]  # opening since before the output folder and the inputs
        else:
            detector = Detector.from_plan(plan, options.threads, wait=False)
        stdin = sys.stdin.buffer if "-" in sources else None
        items = expand_sources(
            sources, stdin=stdin, null=null, out_dir=save.out_dir, max_bytes=options.max_bytes,
            source_type=kind,
        )  # fmt: skip
        total = None
        if _progress_wanted(ctx) and not streamed:  # an ETA: count first
            with unannounced():
                found = expand_sources(sources, out_dir=save.out_dir, source_type=kind)
                total = _total(found, options.video, videos)
        with Signals() as signals:
            return _stream(
                ctx, plan.info.name, detector, outputs, options, items, total, fmt,
                (rule if profile else None), signals,
            )  # fmt: skip


# At most this many image files named one by one open the engine early (`_open_early`): far
# fewer than yolocli.run.workers.min_images(), below which one network runs in this process.
EARLY_MAX = 16


def _open_early(
    ctx: click.Context, sources: tuple[str, ...], detector_args: dict[str, Any]
) -> tuple[Any, Any] | None:
    """(plan, detector) with the engine already opening (`Detector.from_plan` with
    ``wait=False``) where the run is sure to hold one network here: a few image files named
    one by one. The engine then loads its graph (the C++ of both engines, without the GIL)
    while the rest of the command line is imported and the output folder prepared: on one
    photo that was most of what yolocli added to a minimal script. None otherwise."""
    from yolocli.io.names import IMAGE_EXTENSIONS

    if not 0 < len(sources) <= EARLY_MAX or detector_args["workers"] != "auto":
        return None
    for item in sources:
        if os.path.splitext(item)[1].lower() not in IMAGE_EXTENSIONS or not os.path.isfile(item):
            return None  # a folder, a glob, a list, stdin, a video, a stream: listed later
    from yolocli.detector import Detector

    plan = _make_plan(ctx, detector_args)
    return plan, Detector.from_plan(plan, detector_args["threads"], wait=False)


def _make_plan(ctx: click.Context, detector_args: dict[str, Any]) -> Any:
    """The `yolocli.detector.Plan` of the detector options (``threads`` and ``workers`` are
    the run's business, not the plan's), with the model store of this environment."""
    from yolocli.detector import plan as make_plan
    from yolocli.models.store import Store

    args = {k: v for k, v in detector_args.items() if k not in ("threads", "workers")}
    return make_plan(**args, store=Store.from_env(progress=_progress_wanted(ctx)))


def _total(found: Any, reading: Any, videos: bool) -> int | None:
    """The progress bar's total: images, or (when videos are named) frames, where every
    video's frame count is known in advance (`yolocli.io.video.expected_frames`); else None."""
    if not videos:
        return sum(not s.not_an_image for s in found)
    from yolocli.io.video import expected_frames

    total = 0
    for source in found:
        if source.not_an_image:
            continue
        if source.error or not source.is_video:  # one result each
            total += 1
            continue
        target = str(source.path) if source.path is not None else source.name
        count = expected_frames(target, source.kind, reading)
        if count is None:
            return None
        total += count
    return total


def _check_ray_options(
    sources: tuple[str, ...],
    out: str,
    saving: bool,
    address: str | None,
    unordered: bool,
    records_to: str | None,
) -> None:
    """Usage errors of the cluster options, before anything starts."""
    if address is None:
        for flag, given in (("--unordered", unordered), ("--records-to", records_to)):
            if given:
                raise click.UsageError(f"{flag} is about a Ray run: add --ray ADDRESS")
        uris = [s for s in sources if is_uri(s)] + ([out] if saving and is_uri(out) else [])
        if uris:
            raise click.UsageError(
                f"{uris[0]}: object-store URIs are read and written by a Ray cluster: add "
                "--ray ADDRESS (--ray local runs one here)"
            )
        return
    if records_to is not None and saving:
        raise click.UsageError(
            "--records-to has the cluster write only the records: add --no-save (output "
            "files are named and written by this process, which then sees every record)"
        )
    kinds = {is_uri(s) for s in sources}
    if len(kinds) > 1:
        raise click.UsageError("--ray reads either local paths or URIs in one run, not both")


@dataclasses.dataclass(frozen=True)
class _Cluster:
    """What --ray and its options asked for."""

    address: str
    out_uri: str | None
    ordered: bool
    records_to: str | None
    records_format: str


def _run_ray(
    ctx: click.Context,
    sources: tuple[str, ...],
    detector_args: dict[str, Any],
    save: Any,
    options: Any,
    fmt: str,
    null: bool,
    profile: bool,
    cluster: _Cluster,
) -> int:
    """`_run_detect` on a Ray cluster (`yolocli.ray`); returns how many inputs failed."""
    from yolocli import ray as yray
    from yolocli.io.outputs import Outputs
    from yolocli.io.remote import UriOutputs

    yray.require_ray(cluster.address)  # before any listing: the message names the extra
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="surrogateescape")
    saving = save.out_dir is not None
    outputs: Any = UriOutputs(cluster.out_uri, save) if cluster.out_uri and saving else (
        Outputs(save))  # fmt: skip
    try:
        with outputs:
            threads = detector_args["threads"] or 1
            workers = detector_args["workers"]
            plan = _make_plan(ctx, detector_args)
            local_out = save.out_dir if cluster.out_uri is None else None
            items, fs = _ray_items(ctx, sources, null, local_out, options.max_bytes)
            how = yray.connect(cluster.address, debug=bool(ctx.meta.get("yolocli.debug")))
            actors = None if workers == "auto" else int(workers)
            run = yray.RayRun(plan, outputs, options, fs, actors, threads, cluster.ordered)
            if cluster.records_to is not None:
                return _ray_records(ctx, run, items, cluster)
            size = actors or yray.pool_size(yray.cluster_cpus(), threads)
            options = dataclasses.replace(options, workers=size, threads=threads)
            rule = f"--ray {cluster.address}: {how}, one actor per {threads} cluster CPU(s)"
            with Signals(at_once=True) as signals:  # Ray's iterators wait where they like
                return _stream(
                    ctx, plan.info.name, None, outputs, options, items, len(items), fmt,
                    (rule if profile else None), signals, pipeline=run, out_name=cluster.out_uri,
                )  # fmt: skip
    finally:
        yray.disconnect()  # every output written and the journal closed: leave now


def _ray_items(
    ctx: click.Context,
    sources: tuple[str, ...],
    null: bool,
    out_dir: Path | None,
    max_bytes: int,
) -> tuple[list[Any], Any]:
    """The inputs of a --ray run as `yolocli.ray.Item` (what to read, how large), and the
    pyarrow file system of the URIs (None: local files)."""
    from yolocli.io.inputs import expand_sources
    from yolocli.ray import local_items, uri_items

    if any(is_uri(s) for s in sources):
        try:
            return uri_items(sources)
        except ValueError as err:
            raise click.UsageError(str(err)) from None
    stdin = sys.stdin.buffer if "-" in sources else None
    kind = ctx.meta.get("yolocli.source_type", "auto")
    found = expand_sources(
        sources, stdin=stdin, null=null, out_dir=out_dir, max_bytes=max_bytes, source_type=kind
    )
    return local_items(found), None


def _ray_records(ctx: click.Context, run: Any, items: list[Any], cluster: _Cluster) -> int:
    """--records-to: the cluster writes the records; here, the errors found before it and a
    summary. Returns how many inputs failed here (the cluster's failures are in the records)."""
    import time

    assert cluster.records_to is not None
    start = time.perf_counter()
    sent, early = run.write(items, cluster.records_to, cluster.records_format)
    failed = 0
    for result in early:
        if result.error:
            failed += 1
            click.echo(f"yolocli: {_printable(result.source.name)}: {result.error}", err=True)
    if not ctx.meta.get("yolocli.quiet"):
        elapsed = time.perf_counter() - start
        rate = sent / elapsed if elapsed > 0 else 0.0
        click.echo(
            f"yolocli: {sent} image{'s' * (sent != 1)} processed on the cluster in {elapsed:.1f} s "
            f"({rate:.1f} images/s), {failed} failed before it; records ({cluster.records_format})"
            f" in {cluster.records_to}/ (their error field names images that failed there)",
            err=True,
        )
    return failed


def _calibrated(plan: Any, paths: list[Any]) -> Any:
    """``plan`` with int8's calibration images: the first of ``paths`` (engines.precision)."""
    import dataclasses

    from yolocli.engines.precision import calibration_images

    return dataclasses.replace(plan, calibration=calibration_images(paths))


def _read_once(sources: tuple[str, ...]) -> bool:
    """True if a source can be read only once: stdin, or a list that is not a regular file
    (``@fifo``, ``@<(find ...)``), so that it is never expanded ahead of the run."""
    import stat

    for item in sources:
        if item == "-":
            return True
        if item.startswith("@") and len(item) > 1:
            try:
                if not stat.S_ISREG(os.stat(item[1:]).st_mode):
                    return True
            except (OSError, ValueError):
                pass
    return False


def _named(sources: tuple[str, ...], source_type: str, limit: int) -> list[Any]:
    """The first ``limit`` inputs ``sources`` name (images and videos), to choose workers."""
    import itertools

    from yolocli.io.inputs import expand_sources, unannounced

    with unannounced():
        found = (s for s in expand_sources(sources, source_type=source_type) if not s.not_an_image)
        return list(itertools.islice(found, limit))


def _stream(
    ctx: click.Context,
    model: str,
    detector: Any,
    outputs: Any,
    options: Any,
    items: Any,
    total: int | None,
    fmt: str,
    profile: str | None,
    signals: Signals,
    pipeline: Any = None,
    out_name: Any = None,
) -> int:
    """Results to stdout as they come; the record, then the journal, never half of either.
    ``profile``: None, or the rule that chose the workers (shown with the stage times).
    ``pipeline``: what runs the network (default: a `yolocli.run.pipeline.Pipeline`; the cluster's
    `yolocli.ray.RayRun`); ``out_name``: the output folder as the summary names it."""
    from yolocli.io.formats import make_writer
    from yolocli.run.pipeline import Pipeline

    pipeline = pipeline or Pipeline(detector, outputs, options)
    tracks = ctx.meta.get("yolocli.tracking") is not None
    writer = make_writer(fmt, sys.stdout, coco=_coco_options(ctx, pipeline.names), tracks=tracks)
    run = _Run(ctx, model, out_name or outputs.options.out_dir, total)
    results = pipeline.run(items)

    def emit(result: Any) -> None:
        if fmt == "text" and result.source.is_video and not result.skipped:
            if result.video_end:  # a summary per video, not a line per frame
                click.echo(run.video_summary(result))
        else:
            writer.write(result.record(model))

    try:
        # closing: an interruption finishes the videos being written at once.
        with contextlib.closing(results):  # type: ignore[type-var,unused-ignore]  # a generator
            for result in run.track(results):
                with signals.deferred(), run.above_bar():
                    emit(result)
                    if result.frame is None:  # a video is done with its closing record
                        outputs.commit(result.source, result.outputs)
    except BrokenPipeError:
        _close_interrupted(pipeline, outputs, None)  # the journal still learns of them
        run.close()  # the reader is gone: no summary, just stop
        raise
    except KeyboardInterrupt:
        _close_interrupted(pipeline, outputs, emit)
        writer.close()  # what was written stays valid (a JSON array is closed)
        run.finish(profile=False)
        raise
    writer.close()
    if profile is not None:
        threads = f"{options.threads} thread(s)" if options.threads else "its default threads"
        each = " each" if options.workers > 1 else ""
        run.engine = f"{pipeline.engine}, {threads}{each} ({profile})"
        run.recipe = (detector or pipeline.plan).recipe.describe()
    run.finish(profile is not None)
    return run.failed + run.input_errors


def _close_interrupted(pipeline: Any, outputs: Any, emit: Callable[[Any], None] | None) -> None:
    """The closing record of each video an interrupted run left open (``emit``ted, unless
    stdout is gone), committed as any closing record is when it has no error (a file stopped
    part-way has one: it is not done, so a later run does it again; a camera or stream is
    never "done" in the journal, whose claim keeps its video's name)."""
    for result in pipeline.interrupted:
        if emit is not None:
            with contextlib.suppress(OSError):
                emit(result)
        if result.error is None:
            outputs.commit(result.source, result.outputs)
    pipeline.interrupted.clear()


def _load_coco_ids(path: Path | None, fmt: str) -> tuple[dict[str, int | str], dict[str, Any]]:
    """``--coco-ids``: file name -> image id, and category name -> id, for ``-f coco`` only."""
    if path is None:
        return {}, {}
    if fmt != "coco":
        raise click.UsageError("--coco-ids names the image ids of -f coco: add -f coco")
    import stat
    import tempfile

    from yolocli.eval.datasets import read_coco_ids
    from yolocli.io.inputs import open_waiting

    if not stat.S_ISFIFO(path.stat().st_mode):
        return read_coco_ids(path)
    # A FIFO can be read once: wait for its writer (saying so), keep what it writes.
    with open_waiting(path) as stream, tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / path.name
        copy.write_bytes(stream.read())
        return read_coco_ids(copy)


def _coco_options(ctx: click.Context, names: list[str]) -> Any:
    """How ``-f coco`` numbers images and categories in this run."""
    from yolocli.io.formats import CocoOptions

    image_ids, categories = ctx.meta.get("yolocli.coco_ids") or ({}, {})
    return CocoOptions(image_ids, names, categories)
