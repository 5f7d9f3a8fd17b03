"""Option types and the option groups that several commands share."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from yolocli.cli.common import F, _model_names
from yolocli.engines import BACKENDS
from yolocli.engines.devices import DEVICES

SOURCE_TYPES = ("auto", "file", "camera", "stream")  # yolocli.io.video.SOURCE_TYPES (cv2 is slow)


UNITS = "K, M, G, T: powers of 1000; Ki, Mi, Gi, Ti: powers of 1024"


class _Amount(click.ParamType):  # type: ignore[type-arg]  # generic only in click >= 8.2
    """A positive whole number, optionally with a unit: K, M, G, T are powers of 1000 and Ki,
    Mi, Gi, Ti powers of 1024, the same rule for every option (``250M``, ``512Mi``); a
    trailing B is allowed (``512MiB``). No exponents, infinities or fractions of a unit."""

    name = "N"
    PATTERN = r"\s*(\d{1,30}(?:\.\d{1,30})?)\s*(?:([KMGT])(I?))?B?\s*"
    LARGEST = 2**62  # beyond any file or image, and still a C long everywhere

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        import re
        from decimal import Decimal

        if isinstance(value, int) and not isinstance(value, bool):
            amount = Decimal(value)
        else:
            found = re.fullmatch(self.PATTERN, str(value), re.IGNORECASE)
            if found is None:
                self.fail(
                    f"{value!r} is not a number like 100000, 250M or 512Mi ({UNITS})", param, ctx
                )
            digits, unit, binary = found.groups()
            power = "KMGT".index(unit.upper()) + 1 if unit else 0
            amount = Decimal(digits) * (1024 if binary else 1000) ** power
        if amount < 1:
            self.fail(f"{value!r} must be at least 1", param, ctx)
        if amount > self.LARGEST:
            self.fail(f"{value!r} is too large: at most {self.LARGEST:,}", param, ctx)
        return int(amount)


def _slicer(
    size: str | None,
    overlap: float | None,
    full: bool | None,
    scales: str | None,
    merge: str | None,
    match: str | None,
) -> Any:
    """The `yolocli.slicing.Slicer` the --slice options describe (None without --slice)."""
    given = {"--overlap": overlap, "--full/--no-full": full, "--scales": scales,
             "--merge": merge, "--match": match}  # fmt: skip
    if size is None:
        extra = [flag for flag, value in given.items() if value is not None]
        if extra:
            raise click.UsageError(f"{extra[0]} is about sliced inference: add --slice S")
        return None
    from yolocli.errors import OptionError
    from yolocli.options import size as parse_size
    from yolocli.slicing import Slicer

    w, h = parse_size("slice", size, 1, 1 << 20)
    tile: int | tuple[int, int] = w if w == h else (w, h)
    try:
        pyramid = tuple(float(s) for s in (scales or "1").split(","))
    except ValueError:
        raise OptionError("scales", f"{scales!r}: give scales such as 1,0.5") from None
    settings: dict[str, Any] = {"overlap": overlap, "full": full, "merge": merge, "match": match}
    return Slicer(tile, scales=pyramid, **{k: v for k, v in settings.items() if v is not None})


def _workers(value: str) -> str:
    from yolocli.errors import OptionError
    from yolocli.options import per_core

    if value != "auto" and not (value.isdigit() and int(value) >= 1):
        raise click.BadParameter(f"{value!r} is not 'auto' or a number of processes (1, 2, ...)")
    if value != "auto":
        try:
            per_core("workers", int(value), "worker processes")
        except OptionError as err:
            hint = "; -j auto chooses by cores and memory"
            raise click.BadParameter(err.message + hint) from None
    return value


def _flag(option: str) -> str:
    """The command-line spelling of a library option (``max_det`` -> ``--max-det``)."""
    option = {"class_conf": "conf"}.get(option.split("[")[0], option)
    return "--" + option.replace("_", "-")


def _thresholds(text: str | float, default: float) -> dict[str, Any]:
    """``--conf 0.25,person=0.5``: Postprocess's ``conf`` and ``class_conf`` (a number, as
    `track` passes its own --conf, is the threshold of every class)."""
    import math

    from yolocli.options import thresholds

    if isinstance(text, float | int):
        return {"conf": text, "class_conf": None}
    conf, per_class = thresholds("conf", text)
    return {"conf": default if math.isnan(conf) else conf, "class_conf": per_class or None}


def _split_classes(text: str | None) -> tuple[int | str, ...] | None:
    """``person, car`` or ``0,2`` as given; the library checks them against the model."""
    if text is None:
        return None
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _check_model_choice(model: str | None, cfg: Path | None, weights: Path | None) -> None:
    if (cfg is None) != (weights is None):
        raise click.UsageError("a custom model needs both --cfg and --weights")
    if cfg is not None and model is not None:
        raise click.UsageError("--model and --cfg/--weights are alternatives: give one")


def _network_options(func: F) -> F:
    """Which network runs, and on what: the options `detect` and `val` share."""
    options = [
        click.option(
            "-m",
            "--model",
            callback=lambda c, p, v: v and _model_names(c, p, (v,))[0],
            help="Registry model to run (see `yolocli models list`), or an ONNX file of an "
            "Ultralytics, YOLOv5/YOLOv7 or YOLOX model (see --family). [default: yolov3]",
        ),
        click.option(
            "--cfg",
            type=click.Path(path_type=Path, dir_okay=False),
            help="Custom darknet cfg file (with --weights).",
        ),
        click.option(
            "--weights",
            type=click.Path(path_type=Path, dir_okay=False),
            help="Custom darknet weights file (with --cfg).",
        ),
        click.option(
            "--names",
            type=click.Path(path_type=Path, dir_okay=False),
            help="Class names, one a line (default: the model's).",
        ),
        click.option(
            "--size",
            metavar="N|WxH",
            help="Network input size: N, or WxH for a rectangular input (640x384); each side "
            "a multiple of 32. [default: the cfg's]",
        ),
        click.option(
            "--letterbox/--no-letterbox",
            default=None,
            help="Keep the aspect ratio with gray padding, or stretch to the network input. "
            "[default: as the model's darknet does: pjreddie letterboxes, AlexeyAB follows "
            "the cfg's letter_box]",
        ),
        click.option(
            "--darknet",
            type=click.Choice(("pjreddie", "alexeyab")),
            help="Run the model as this darknet runs it (batch norm, NMS, input). "
            "[default: the registry's word, or inferred from the cfg]",
        ),
        click.option(
            "--family",
            type=click.Choice(("ultralytics", "yolov5", "yolov7", "yolox")),  # families.FAMILIES
            help="Decode an ONNX --model as this family's own code does. [default: from the "
            "file's metadata (Ultralytics, YOLOv5), else from its output shapes]",
        ),
        click.option(
            "--device", type=click.Choice(DEVICES), default="cpu", help="Where the network runs."
        ),
        click.option(
            "--backend",
            type=click.Choice(BACKENDS),
            default="auto",
            help="Engine that runs the network; auto: the fastest installed on the CPU "
            "(onnxruntime, openvino, then opencv), torch on cuda.",
        ),
        click.option(
            "--precision",
            type=click.Choice(("fp32", "int8", "bf16")),
            default="fp32",
            help="Arithmetic of the forward pass. fp32 gives darknet's answers; int8 (ONNX "
            "Runtime, calibrated on the run's first 8 image files) and bf16 (OpenVINO, on CPUs "
            "with AVX-512 BF16 or AMX) are about twice as fast where the CPU has the "
            "instructions, and move scores (README: Precision).",
        ),
        click.option(
            "--threads",
            type=click.IntRange(min=1),
            help="Engine threads per network, at most 4 per core. [default: cores / workers]",
        ),
        click.option(
            "-j",
            "--workers",
            default="auto",
            callback=lambda c, p, v: _workers(v),
            help="Worker processes, each with its own network, at most 4 per core; auto: one "
            "per core as memory allows (one in this process for a short run, a GPU or video).",
        ),
        click.option(
            "--batch",
            type=click.IntRange(1, 64),
            default=1,
            help="Images per forward pass, on one network in this process (so -j auto runs "
            "no worker processes; with -j N > 1 it is not used).",
        ),
    ]
    for option in reversed(options):  # so that --help lists them in this order
        func = option(func)
    return func


def _keep_options(conf: float, nms: float, conf_help: str) -> Callable[[F], F]:
    """What is kept of the network's candidates (defaults differ: detect and val)."""

    def decorate(func: F) -> F:
        options = [
            click.option(
                "--conf",
                metavar="F[,CLASS=F...]",
                default=str(conf),
                help=conf_help + " Per class: a default, then name=value "
                "(0.25,person=0.5,car=0.3).",
            ),
            click.option(
                "--nms", type=click.FloatRange(0, 1), default=nms, help="NMS IoU threshold."
            ),
            click.option(
                "--classes",
                metavar="LIST",
                help="Only these classes: names (any case; darknet's or COCO's spelling: "
                "motorbike or motorcycle) or ids, comma-separated (person,car or 0,2).",
            ),
            click.option(
                "--max-det",
                type=click.IntRange(min=0),
                default=300,
                help="At most this many detections per image (0: no limit).",
            ),
        ]
        for option in reversed(options):
            func = option(func)
        return func

    return decorate
