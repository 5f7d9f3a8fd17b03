"""`yolocli export`: a model compiled to ONNX, for other tools."""

from __future__ import annotations

from pathlib import Path

import click

from yolocli.cli.common import CONTEXT, ENVIRONMENT, _common, _model_names, _store, log
from yolocli.cli.options import _check_model_choice, _flag


@click.command(context_settings=CONTEXT, epilog=ENVIRONMENT)
@click.argument("model", required=False, callback=lambda c, p, v: v and _model_names(c, p, (v,))[0])
@click.option(
    "-m",
    "--model",
    "model_option",
    metavar="NAME",
    callback=lambda c, p, v: v and _model_names(c, p, (v,))[0],
    help="A model from the registry, as for detect and val (or give it as MODEL).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="Where to write the ONNX file; its folder must exist.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Replace --output even if it is not a graph yolocli exported.",
)
@click.option(
    "--size",
    metavar="N|WxH",
    help="Network input size: N, or WxH for a rectangular input (640x384); each side a "
    "multiple of 32. [default: the cfg's]",
)
@click.option(
    "--cfg", type=click.Path(path_type=Path, dir_okay=False), help="Your own darknet cfg."
)
@click.option(
    "--weights", type=click.Path(path_type=Path, dir_okay=False), help="... and its weights."
)
@click.option(
    "--names",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Class names, one a line, for the metadata. [default: the model's]",
)
@click.option(
    "--darknet",
    type=click.Choice(("pjreddie", "alexeyab")),
    help="Fold batch norm as this darknet does. [default: the registry's word, or inferred "
    "from the cfg]",
)
@click.option(
    "--decoded",
    is_flag=True,
    help="Decode inside the graph: one output of boxes in input pixels, objectness and "
    "class probabilities, instead of the raw heads.",
)
@click.option(
    "--with-nms",
    is_flag=True,
    help="Also run NMS inside the graph (implies --decoded): the kept boxes only.",
)
@click.option(
    "--conf",
    type=click.FloatRange(0, 1),
    default=0.25,
    show_default=True,
    help="With --with-nms: keep scores above this.",
)
@click.option(
    "--nms",
    type=click.FloatRange(0, 1),
    default=0.45,
    show_default=True,
    help="With --with-nms: the IoU threshold.",
)
@click.option(
    "--max-det",
    type=click.IntRange(min=1),
    default=300,
    show_default=True,
    help="With --with-nms: at most this many boxes per class and image.",
)
@_common
@click.pass_context
def export(
    ctx: click.Context,
    model: str | None,
    model_option: str | None,
    output: Path,
    force: bool,
    size: str | None,
    cfg: Path | None,
    weights: Path | None,
    names: Path | None,
    darknet: str | None,
    decoded: bool,
    with_nms: bool,
    conf: float,
    nms: float,
    max_det: int,
) -> None:
    """Write a model compiled to ONNX, for running it elsewhere.

    The output never replaces a file yolocli did not write (--force does), and its folder
    is never created for you.

    \b
    The graph:
      input   images   (N, 3, H, W) float32: RGB in [0, 1], prepared as the model's
                       darknet does: letterboxed (aspect kept, centered on 0.5 gray)
                       for pjreddie's, stretched for AlexeyAB's unless the cfg sets
                       letter_box=1; N is dynamic
      outputs head_0.. (N, A*(5+C), H/s, W/s) float32, one per [yolo] layer in cfg
                       order: the raw convolution outputs, before any sigmoid
    Decoding (darknet's): for anchor a at cell (i, j) of a head with stride s,
    x = (j + sigmoid(tx)) / W_head, y = (i + sigmoid(ty)) / H_head (with scale_x_y
    where the cfg sets it), w = exp(tw) * anchor_w / W, h = exp(th) * anchor_h / H;
    score of class c = sigmoid(to) * sigmoid(tc). The README has the details.

    \b
    --decoded: darknet's decode inside the graph instead:
      output      (N, R, 5+C): cx, cy, w, h in input pixels, objectness, class
                  probabilities (score = objectness x probability); no NMS
    --with-nms: and ONNX's NonMaxSuppression (IoU, per class) after it:
      detections  (K, 7): batch, x1, y1, x2, y2 (input pixels), class, score
    Every file records the class names, input size, strides, anchors, the darknet
    flavour and the preprocessing in its metadata_props.

    \b
    Examples:
      yolocli export yolov3-tiny -o yolov3-tiny.onnx
      yolocli export -m yolov3 --size 416 -o yolov3-416.onnx
      yolocli export --cfg my.cfg --weights my.weights -o my.onnx
      yolocli export yolov4-tiny --decoded -o yolov4-tiny-boxes.onnx
      yolocli export yolov3 --with-nms --conf 0.3 -o yolov3-nms.onnx
    """
    from yolocli.detector import export_onnx
    from yolocli.errors import OptionError, OutputError
    from yolocli.postprocess import Postprocess

    if model and model_option and model != model_option:
        raise click.UsageError(f"two models given ({model}, {model_option}): name one")
    model = model or model_option
    _check_model_choice(model, cfg, weights)
    try:
        kept = Postprocess(conf=conf, nms=nms, max_det=max_det) if with_nms else None
        path = export_onnx(
            output, model, size=size, cfg=cfg, weights=weights, names=names, store=_store(ctx),
            darknet=darknet, decoded=decoded or with_nms, nms=kept, force=force,
        )  # fmt: skip
    except OptionError as err:
        raise click.BadParameter(err.message, param_hint=f"'{_flag(err.option)}'") from None
    except OutputError as err:
        raise click.UsageError(str(err)) from None
    log.info("wrote %s (%.1f MB)", path, path.stat().st_size / 1e6)
