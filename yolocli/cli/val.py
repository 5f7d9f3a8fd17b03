"""`yolocli val`: a model's COCO mAP on a labelled dataset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from yolocli.cli.common import (
    CONTEXT,
    DEFAULT_MAX_PIXELS,
    ENVIRONMENT,
    EXIT_FAILED,
    EXIT_OK,
    _common,
    _limit_opencv_decoders,
    _native_stderr_captured,
    _printable,
    _store,
    log,
)
from yolocli.cli.detect import _calibrated
from yolocli.cli.options import (
    _check_model_choice,
    _flag,
    _keep_options,
    _network_options,
    _split_classes,
    _thresholds,
)
from yolocli.cli.session import _Run

VAL_EPILOG = (
    """\b
DATA is any of:
  instances.json  COCO annotations: images by file_name under the JSON's
                  folder (or --images DIR), never outside it; categories
                  matched to the model's classes by name
  data.yaml       Ultralytics: path, val (folder, image list, or a list of
                  them), names; labels where Ultralytics looks (the last
                  images/ of the path made labels/, .txt)
  obj.data        darknet: valid= image list, names=; labels beside the
                  images (x.jpg: x.txt); relative paths from the working
                  folder, the file's folder or its parent
  folder/         YOLO layout: images/ with labels/ mirroring it (or a
                  data.yaml inside); class ids are the model's
Label files hold one "class cx cy w h" line per object, normalized to
[0, 1]; an image without one has no objects, and a label file without an
image is reported. Dataset class names (COCO's spellings too: motorcycle,
dining table) are matched to the model's; a class the model lacks counts
as missed. Object sizes (small: up to 32x32 px, medium: up to 96x96 px,
large: above) come from the JSON's "area" field, or the box's w*h.

\b
The figures are pycocotools' COCOeval (bbox): 101-point interpolated AP at
IoU 0.50:0.05:0.95, at most 100 detections per image and class; crowd
regions ignored as COCO does. Detections are rounded as -f coco writes them,
so `yolocli detect -f coco` plus pycocotools gives the same numbers.
A bad label line, a box outside its image, a listed image that is missing,
a duplicate image id or an unreadable label file is reported (one line
each) and left out; the rest is evaluated. Exit status 1 when an image
could not be evaluated.

"""
    + ENVIRONMENT
)


@click.command(context_settings=CONTEXT, epilog=VAL_EPILOG)
@click.argument("data", type=click.Path(path_type=Path, exists=True))
@click.option(
    "--images",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    help="Folder of the COCO JSON's images. [default: the JSON's folder]",
)
@_network_options
@_keep_options(conf=0.001, nms=0.6, conf_help="Keep scores above this.")
@click.option(
    "-f",
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    help="A table, or one JSON object (map50, map, ..., classes).",
)
@click.option(
    "--plots",
    type=click.Path(path_type=Path, file_okay=False),
    help="Write PR curves and a confusion matrix here, as PNG (needs yolocli[plots]).",
)
@_common
@click.pass_context
def val(
    ctx: click.Context,
    data: Path,
    images: Path | None,
    model: str | None,
    cfg: Path | None,
    weights: Path | None,
    names: Path | None,
    size: str | None,
    conf: str,
    nms: float,
    classes: str | None,
    max_det: int,
    letterbox: bool | None,
    darknet: str | None,
    family: str | None,
    device: str,
    backend: str,
    precision: str,
    threads: int | None,
    workers: str,
    batch: int,
    fmt: str,
    plots: Path | None,
) -> None:
    """Measure a model on labelled images: COCO mAP, per-class AP, precision and recall.

    \b
    Examples:
      yolocli val data/ --model yolov3-tiny
      yolocli val annotations/instances_val2017.json --images val2017/ -f json | jq .map
      yolocli val data/ --model yolov3-tiny --plots plots/
      yolocli val coco8.yaml --model yolov3-tiny       # an Ultralytics dataset
      yolocli val data/obj.data --cfg my.cfg --weights my.weights --names data/obj.names
    """
    from yolocli.errors import OptionError
    from yolocli.postprocess import Postprocess
    from yolocli.run.pipeline import Options

    _limit_opencv_decoders(DEFAULT_MAX_PIXELS)
    _check_model_choice(model, cfg, weights)
    if images is not None and (data.is_dir() or data.suffix.lower() in (".yaml", ".yml", ".data")):
        raise click.UsageError(
            "--images goes with a COCO annotations file; this dataset names its images itself"
        )
    if plots is not None:
        from yolocli.eval.plots import check_available

        check_available()  # before any work: a missing extra is known now
    try:
        from yolocli.detector import check_threads

        check_threads(threads)
        post = Postprocess(
            **_thresholds(conf, 0.001), nms=nms, classes=_split_classes(classes), max_det=max_det
        )
        detector_args = dict(
            model=model, size=size, device=device, backend=backend, letterbox=letterbox,
            cfg=cfg, weights=weights, names=names, postprocess=post, darknet=darknet,
            family=family, precision=precision,
        )  # fmt: skip
        parallel = (workers, threads, Options(batch=batch))
        with _native_stderr_captured(relay=bool(ctx.meta.get("yolocli.debug"))):
            failed = _run_val(ctx, data, images, detector_args, parallel, fmt, plots)
    except OptionError as err:
        raise click.BadParameter(err.message, param_hint=f"'{_flag(err.option)}'") from None
    ctx.exit(EXIT_FAILED if failed else EXIT_OK)


def _run_val(
    ctx: click.Context,
    data: Path,
    images: Path | None,
    detector_args: dict[str, Any],
    parallel: tuple[str, int | None, Any],
    fmt: str,
    plots: Path | None,
) -> int:
    """The val run itself: detect on every labelled image, evaluate, report; returns how many
    images could not be evaluated."""
    from yolocli.detector import Detector, plan
    from yolocli.eval import datasets
    from yolocli.eval.evaluate import Found, evaluate, report, table
    from yolocli.io.formats import coco_bbox
    from yolocli.io.inputs import Source, safe_rel
    from yolocli.run.pipeline import Pipeline
    from yolocli.run.workers import choose_workers, min_images

    model = plan(**detector_args, store=_store(ctx))
    dataset = datasets.load(data, model.info.class_names, images)
    for problem in dataset.problems:
        click.echo(f"yolocli: warning: {_printable(problem)}", err=True)
    for line in dataset.missing:
        click.echo(f"yolocli: {_printable(line)}", err=True)
    sources = [Source(str(i.path), i.path, safe_rel([i.path.name])) for i in dataset.images]
    if model.precision == "int8":  # calibrated on the dataset's first images
        model = _calibrated(model, [i.path for i in dataset.images])
    workers, threads, options = parallel
    limit = min_images()
    options, _ = choose_workers(model, len(sources) < limit, workers, threads, options, limit=limit)
    detector = model if options.workers > 1 else Detector.from_plan(model, options.threads)
    truths, found = [], []
    run = _Run(ctx, model.info.name, None, len(sources))
    results = Pipeline(detector, None, options).run(sources)
    for item, result in zip(dataset.images, run.track(results), strict=True):
        if result.error or result.detections is None:
            continue  # said by run.track; the image is left out
        truths.append(item.truth(result.width, result.height))
        # Rounded as `-f coco` writes them: pycocotools on that file gives these numbers.
        records = result.detections.records()
        found.append(
            Found.of(
                [coco_bbox(r["box"]) for r in records],
                [r["score"] for r in records],
                [r["class_id"] for r in records],
            )
        )
    run.finish(profile=False)
    evaluation = evaluate(truths, found, dataset.classes)
    doc = report(evaluation, dataset.names, dataset.category_ids)
    doc = {
        "model": model.info.name,
        "data": str(data),
        "images": len(truths),
        "boxes": sum(len(t.classes) for t in truths),
        "area_source": "annotation area field" if any(i.areas is not None for i in dataset.images)
        else "box w*h",
        **doc,
    }  # fmt: skip
    if fmt == "json":
        click.echo(json.dumps(doc, indent=2))
    else:
        click.echo(
            f"{doc['model']} on {_printable(str(data))}: {doc['images']} images, "
            f"{doc['boxes']} boxes"
        )
        click.echo(table(doc))
    if plots is not None:
        from yolocli.eval.plots import plot_all

        written = plot_all(evaluation, dataset.names, plots)
        log.info("wrote %d plots in %s/", len(written), plots)
    return len(dataset.missing) + run.failed
