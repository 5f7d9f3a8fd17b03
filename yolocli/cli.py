"""yolocli's command line: the only module that imports Click.

Library errors (`YolocliError`) become one line on stderr and exit status 1; usage errors
exit 2; Ctrl-C exits 130. stdout carries data only; people read stderr.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click

from yolocli import version
from yolocli.engines import BACKENDS
from yolocli.engines.devices import DEVICES
from yolocli.errors import INTERNAL, YolocliError, internal
from yolocli.io.formats import FORMATS

SOURCE_TYPES = ("auto", "file", "camera", "stream")  # yolocli.io.video.SOURCE_TYPES (cv2 is slow)
DEFAULT_MAX_PIXELS = 250_000_000  # yolocli.io.images.DEFAULT_MAX_PIXELS (importing it loads cv2)

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED, EXIT_BROKEN_PIPE, EXIT_TERMINATED = 130, 141, 143

CONTEXT = {"help_option_names": ["-h", "--help"], "show_default": True, "max_content_width": 100}

ENVIRONMENT = """\b
Environment:
  YOLOCLI_HOME     model store (default: $XDG_CACHE_HOME/yolocli, else ~/.cache/yolocli)
  YOLOCLI_MIRROR   base URL that replaces the built-in download sources:
                   each file is fetched from <URL><file name>
  YOLOCLI_OFFLINE  1: never touch the network; a missing model is an error
  YOLOCLI_TIMEOUT  seconds a download may stall, or trickle below 1 KiB/s,
                   before it is retried (default 30)

\b
Exit status: 0 all good, 1 something failed (the rest still done), 2 usage
error, 130 interrupted, 141 stdout closed early (| head), 143 terminated."""

log = logging.getLogger("yolocli")


# ------------------------------------------------------------------------- plumbing


class _StderrHandler(logging.Handler):
    """Log records as ``yolocli: message`` lines on the current stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        prefix = "yolocli: warning: " if record.levelno >= logging.WARNING else "yolocli: "
        click.echo(prefix + record.getMessage(), err=True)


# -v: notes between INFO and DEBUG (how a model runs and why), without --debug's tracebacks
VERBOSE = logging.INFO - 5


def _setup_logging(quiet: bool, debug: bool, verbose: bool = False) -> None:
    logger = logging.getLogger("yolocli")
    for handler in list(logger.handlers):
        if isinstance(handler, _StderrHandler):
            logger.removeHandler(handler)
    logger.addHandler(_StderrHandler())
    level = logging.WARNING if quiet else VERBOSE if verbose else logging.INFO
    logger.setLevel(logging.DEBUG if debug else level)
    logger.propagate = False


def _progress_wanted(ctx: click.Context) -> bool:
    return not ctx.meta.get("yolocli.quiet") and sys.stderr.isatty()


class _Cli(click.Group):
    """The root group: turns every failure into one line and the documented exit status."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except YolocliError as err:
            click.echo(f"yolocli: error: {err}{_hint(err)}", err=True)
            ctx.exit(EXIT_FAILED)
        except Terminated:
            click.echo("yolocli: terminated", err=True)
            ctx.exit(EXIT_TERMINATED)
        except KeyboardInterrupt:
            click.echo("yolocli: interrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except BrokenPipeError:
            # stdout was closed early (| head): stop quietly, as a tool killed by SIGPIPE would.
            # Point stdout at /dev/null so the final flush at exit cannot fail again.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            ctx.exit(EXIT_BROKEN_PIPE)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as err:
            if ctx.meta.get("yolocli.debug"):
                raise
            click.echo(
                f"yolocli: {internal(err)} (rerun with --debug for the traceback)",
                err=True,
            )
            ctx.exit(EXIT_FAILED)


def _hint(err: YolocliError) -> str:
    """What to type next, in this command line's terms, for a library error."""
    from yolocli.errors import DeviceError, DownloadError

    if isinstance(err, DeviceError):
        return " (--device cpu)"
    if isinstance(err, DownloadError) and getattr(err, "tried", None):
        return (
            "\nyolocli: hint: --model NAME runs another model (`yolocli models list` shows "
            "which are installed); `yolocli models download NAME` fetches one ahead, where "
            "the network allows"
        )
    return ""


def _common(func: F) -> F:
    """Options every command takes: -q/--quiet, -v/--verbose and --debug."""

    def remember(key: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
        def callback(ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
            ctx.meta[key] = value or ctx.meta.get(key, False)
            _setup_logging(
                ctx.meta.get("yolocli.quiet", False),
                ctx.meta.get("yolocli.debug", False),
                ctx.meta.get("yolocli.verbose", False),
            )
            return value

        return callback

    func = click.option(
        "-q",
        "--quiet",
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=remember("yolocli.quiet"),
        help="Only errors on stderr: no progress, no notes.",
    )(func)
    func = click.option(
        "-v",
        "--verbose",
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=remember("yolocli.verbose"),
        help="More notes: how the model runs (its darknet flavour, and why) and the like.",
    )(func)
    func = click.option(
        "--debug",
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=remember("yolocli.debug"),
        help="Show tracebacks and network details.",
    )(func)
    return func


_DRAINED = b"\0yolocli: end of native stderr\n"


@contextlib.contextmanager
def _native_stderr_captured(relay: bool) -> Iterator[None]:
    """Keep C libraries' chatter off the user's terminal.

    libjpeg, libpng and libtiff inside OpenCV print straight to file descriptor 2 ("Corrupt
    JPEG data: ..."), tied to no image and interleaved with our one line per failure. Point
    fd 2 at a pipe drained by a thread (relayed only with --debug) while Python's
    ``sys.stderr`` keeps writing to the real stderr.
    """
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (tests): nothing to do
        yield
        return
    sys.stderr.flush()
    real_fd = os.dup(fd)
    read_end, write_end = os.pipe()
    os.dup2(write_end, fd)
    real = open(real_fd, "w", buffering=1, encoding="utf-8", errors="backslashreplace")  # noqa: SIM115
    previous, sys.stderr = sys.stderr, real

    def drain() -> None:
        with open(read_end, "rb") as pipe:
            for line in pipe:
                last = line.endswith(_DRAINED)
                line = line.removesuffix(_DRAINED) if last else line
                if relay and line:
                    text = line.decode("utf-8", "replace")
                    real.write(f"yolocli: debug: native: {text.rstrip(chr(10))}\n")
                if last:
                    return

    thread = threading.Thread(target=drain, name="yolocli-stderr", daemon=True)
    thread.start()
    try:
        yield
    finally:
        real.flush()
        os.dup2(real_fd, fd)
        # Not EOF: processes started meanwhile (workers, multiprocessing's resource tracker,
        # which outlives them) inherited the pipe. A last line tells the thread it has it all.
        with contextlib.suppress(OSError):
            os.write(write_end, _DRAINED)
        os.close(write_end)
        thread.join(timeout=2)
        sys.stderr = previous
        real.close()


def _limit_opencv_decoders(max_pixels: int) -> None:
    """OpenCV's own pixel limit, lowered to ``max_pixels``: a second guard, independent of the
    headers yolocli reads (`yolocli.io.images.image_header`), checked by each decoder on the size it
    reads itself. OpenCV reads it once, when it loads: so it is set before cv2 is first imported
    here, and worker processes inherit it."""
    if "cv2" in sys.modules:
        return
    current = os.environ.get("OPENCV_IO_MAX_IMAGE_PIXELS")
    if current is not None and current.isdigit() and int(current) <= max_pixels:
        return
    os.environ["OPENCV_IO_MAX_IMAGE_PIXELS"] = str(max_pixels)

    def restore() -> None:  # for whatever this process starts after the command
        if current is None:
            os.environ.pop("OPENCV_IO_MAX_IMAGE_PIXELS", None)
        else:
            os.environ["OPENCV_IO_MAX_IMAGE_PIXELS"] = current

    click.get_current_context().call_on_close(restore)


def _store(ctx: click.Context) -> Any:
    from yolocli.models.store import Store

    return Store.from_env(progress=_progress_wanted(ctx))


def _registry() -> Any:
    from yolocli.models.registry import load_registry

    return load_registry()


def _model_names(
    ctx: click.Context, param: click.Parameter, value: tuple[str, ...]
) -> tuple[str, ...]:
    """Reject unknown model names as a usage error that lists the known ones (a path ending
    in .onnx is a model file, checked when it is opened)."""
    registry = _registry()
    unknown = [
        name for name in value if name not in registry.models and not name.lower().endswith(".onnx")
    ]
    if unknown:
        known = ", ".join(registry.models)
        raise click.BadParameter(
            f"unknown model {unknown[0]!r}; known models: {known}, or an ONNX file (my.onnx)",
            ctx,
            param,
        )
    return value


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        click.echo(f"yolocli, version {version()}")
        ctx.exit()


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


# -------------------------------------------------------------------------- commands


@click.group(cls=_Cli, context_settings=CONTEXT, epilog=ENVIRONMENT)
@click.option(
    "-V", "--version", is_flag=True, expose_value=False, is_eager=True,
    callback=_print_version, help="Show the version and exit.",
)  # fmt: skip
@_common
def cli() -> None:
    """Darknet-exact YOLO object detection from the command line.

    \b
    Examples:
      yolocli detect photo.jpg --model yolov3-tiny
      yolocli models list
    """


@cli.group(context_settings=CONTEXT, epilog=ENVIRONMENT)
def models() -> None:
    """List, download, verify and remove models, and clean compiled graphs, in the store.

    Models are fetched on first use by any command that needs one, and compiled to ONNX
    once per input size (kept in the store's derived/ folder); these commands manage the
    store by hand (to prepare an offline machine, or to free space, say).

    \b
    Examples:
      yolocli models download yolov3-tiny
      yolocli models verify
      yolocli models path yolov3-tiny --file weights
      yolocli models clean
    """


@models.command("list", context_settings=CONTEXT, epilog=ENVIRONMENT)
@click.option("--json", "as_json", is_flag=True, help="One JSON array on stdout, for scripts.")
@_common
@click.pass_context
def models_list(ctx: click.Context, as_json: bool) -> None:
    """Known models: size, whether installed, the space their compiled graphs take, and the
    default (marked *).

    \b
    Examples:
      yolocli models list
      yolocli models list --json | jq -r '.[] | select(.installed) | .name'
    """
    registry, store = _registry(), _store(ctx)
    graphs = store.compiled_graphs()
    rows = []
    for name, model in registry.models.items():
        status = store.status(model.weights)
        if status.installed:
            state = "installed"
        elif status.partial_bytes:
            state = f"partial {100 * status.partial_bytes // model.weights.size}%"
        else:
            state = "not installed"
        rows.append((name, model, status, state))
    if as_json:
        records = [
            {
                "name": name,
                "default": name == registry.default,
                "size": model.weights.size,
                "installed": status.installed,
                "weights": str(status.path),
                "compiled": [str(p) for p in _graphs_of(graphs, name)],
                "compiled_bytes": sum(_file_size(p) for p in _graphs_of(graphs, name)),
                "description": model.description,
                "darknet": model.darknet,  # which darknet it runs as (yolocli.recipe)
            }
            for name, model, status, _ in rows
        ]
        click.echo(json.dumps(records, indent=2))
        return
    width = max(len(name) for name in registry.models) + 2
    click.echo(f"{'NAME':<{width}}  {'SIZE':>9}  {'STATUS':<13}  {'COMPILED':>9}  DESCRIPTION")
    for name, model, _, state in rows:
        label = name + (" *" if name == registry.default else "")
        mine = sum(_file_size(p) for p in _graphs_of(graphs, name))
        compiled = _size(mine) if mine else "-"
        click.echo(
            f"{label:<{width}}  {_size(model.weights.size):>9}  {state:<13}  {compiled:>9}  "
            f"{model.description}"
        )
    click.echo(f"* default model. Store: {store.root}", err=True)
    if graphs:
        total = sum(_file_size(p) for p in graphs)
        click.echo(
            f"Compiled graphs (one per model, --size and custom cfg used): {len(graphs)}, "
            f"{_size(total)}; `yolocli models clean` removes them",
            err=True,
        )


def _graphs_of(graphs: list[Path], model: str) -> list[Path]:
    from yolocli.models.store import graph_model

    return [p for p in graphs if graph_model(p) == model]


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


@models.command("download", context_settings=CONTEXT, epilog=ENVIRONMENT)
@click.argument("names", nargs=-1, required=True, callback=_model_names)
@_common
@click.pass_context
def models_download(ctx: click.Context, names: tuple[str, ...]) -> None:
    """Download models into the store, verified; installed ones are checked, not fetched again.

    \b
    Examples:
      yolocli models download yolov3-tiny
      YOLOCLI_MIRROR=https://mirror.example.com/darknet/ yolocli models download yolov3
    """
    registry, store = _registry(), _store(ctx)
    failed = 0
    for name in names:
        try:
            files = store.ensure_model(registry.get(name))
        except YolocliError as err:
            click.echo(f"yolocli: error: {err}{_hint(err)}", err=True)
            failed += 1
            continue
        log.info("%s is ready: %s", name, files.weights)
    ctx.exit(EXIT_FAILED if failed else EXIT_OK)


@models.command("verify", context_settings=CONTEXT, epilog=ENVIRONMENT)
@click.argument("names", nargs=-1, callback=_model_names)
@_common
@click.pass_context
def models_verify(ctx: click.Context, names: tuple[str, ...]) -> None:
    """Re-hash installed model files against the registry (all installed models if none named),
    and every compiled graph in the store against its signed record.

    Prints one line per file on stdout ("ok" or "FAILED" and why); exits 1 if any file
    is missing or does not match. A file that fails loses its verification stamp, so no
    run uses it until it is downloaded again; a compiled graph that fails is removed (it
    is compiled again when needed).

    \b
    Examples:
      yolocli models verify
      yolocli models verify yolov3-tiny
    """
    registry, store = _registry(), _store(ctx)
    chosen = names or tuple(
        name for name, model in registry.models.items() if store.status(model.weights).installed
    )
    if not chosen and not store.compiled_graphs():
        log.info("no models installed in %s", store.root)
        return
    failed = 0
    seen: set[str] = set()
    for name in chosen:
        for spec in registry.get(name).files:
            if spec.name in seen:
                continue
            seen.add(spec.name)
            verdict = store.check(spec)
            if verdict.problem is None:
                click.echo(f"ok      {verdict.path}")
            else:
                failed += 1
                click.echo(f"FAILED  {verdict.path}: {verdict.problem}")
    for verdict in store.check_derived():
        if verdict.problem is None:
            click.echo(f"ok      {verdict.path}")
        elif verdict.stale:  # a leftover nothing trusted: cleaned up, not a failure
            click.echo(f"removed {verdict.path}: {verdict.problem}")
        else:
            failed += 1
            click.echo(f"FAILED  {verdict.path}: {verdict.problem}")
    if failed:
        click.echo(f"yolocli: error: {failed} file(s) failed verification", err=True)
    ctx.exit(EXIT_FAILED if failed else EXIT_OK)


@models.command("path", context_settings=CONTEXT, epilog=ENVIRONMENT)
@click.argument("name", callback=lambda c, p, v: _model_names(c, p, (v,))[0])
@click.option(
    "--file",
    "which",
    type=click.Choice(["cfg", "weights", "names"]),
    help="Print only this file's path.",
)
@click.option("--fetch", is_flag=True, help="Download what is not installed first.")
@_common
@click.pass_context
def models_path(ctx: click.Context, name: str, which: str | None, fetch: bool) -> None:
    """Print where a model's cfg, weights and names files are, or would be once fetched.

    One "kind<TAB>path<TAB>state" line per file (state: installed, not installed, or
    partial N%), or just the path with --file. Nothing is downloaded unless --fetch is
    given; exits 1 if a file is not installed.

    \b
    Examples:
      yolocli models path yolov3-tiny
      yolocli models path yolov3 --fetch
      darknet detector test coco.data "$(yolocli models path yolov3 --file cfg)" ...
    """
    store, model = _store(ctx), _registry().get(name)
    if fetch:
        store.ensure_model(model)
    located = store.locate(model)
    for kind, status in located.items():
        if which and kind != which:
            continue
        if which:
            click.echo(str(status.path))
        elif status.installed:
            click.echo(f"{kind}\t{status.path}\tinstalled")
        elif status.partial_bytes:
            done = 100 * status.partial_bytes // status.spec.size
            click.echo(f"{kind}\t{status.path}\tpartial {done}%")
        else:
            click.echo(f"{kind}\t{status.path}\tnot installed")
    missing = [k for k, s in located.items() if not s.installed and (not which or k == which)]
    if missing:
        log.info(
            "%s is not installed: fetch it with `yolocli models download %s` or --fetch",
            name,
            name,
        )
        ctx.exit(EXIT_FAILED)


@models.command("remove", context_settings=CONTEXT, epilog=ENVIRONMENT)
@click.argument("names", nargs=-1, required=True, callback=_model_names)
@_common
@click.pass_context
def models_remove(ctx: click.Context, names: tuple[str, ...]) -> None:
    """Delete downloaded model files, partial downloads and the models' compiled graphs.

    \b
    Examples:
      yolocli models remove yolov3
    """
    registry, store = _registry(), _store(ctx)
    for name in names:
        graphs = len(store.compiled_graphs(name))
        freed = store.remove(registry.get(name))
        if freed:
            also = f", with {graphs} compiled graph{'s' * (graphs != 1)}" if graphs else ""
            log.info("removed %s%s (%s freed)", name, also, _size(freed))
        else:
            log.info("%s was not installed", name)


@models.command("clean", context_settings=CONTEXT, epilog=ENVIRONMENT)
@click.option(
    "-n", "--dry-run", is_flag=True, help="Say what would be removed, and remove nothing."
)
@_common
@click.pass_context
def models_clean(ctx: click.Context, dry_run: bool) -> None:
    """Remove every compiled graph from the store (alias: prune); downloads stay.

    Each --size and custom cfg used keeps its own ONNX graph in the store (35 MB for
    yolov3-tiny, 248 MB for yolov3); `models list` shows the space they take. A graph
    removed here is compiled again, in a second or so, the next time it is needed.

    \b
    Examples:
      yolocli models clean --dry-run
      yolocli models clean
    """
    store = _store(ctx)
    if dry_run:
        for path in store.compiled_graphs():
            click.echo(str(path))
    count, freed = store.clean(dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    log.info(
        "%s %d compiled graph%s (%s) from %s",
        verb,
        count,
        "s" * (count != 1),
        _size(freed),
        store.root,
    )


models.add_command(
    click.Command(
        "prune",
        callback=models_clean.callback,
        params=models_clean.params,
        help="Alias of clean.",
        hidden=True,
        context_settings=CONTEXT,
    )
)


# ----------------------------------------------------------------------------- export


@cli.command(context_settings=CONTEXT, epilog=ENVIRONMENT)
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


# ----------------------------------------------------------------------------- detect

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


@cli.command(context_settings=CONTEXT, epilog=DETECT_EPILOG)
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
    out_uri = out if _is_uri(out) else None
    if saving and out_uri is None:
        for item in sources:
            if Path(item).is_dir() and Path(item).resolve() == Path(out).resolve():
                raise click.UsageError(
                    f"--out {out} is the input folder {item}: outputs would overwrite the "
                    "inputs; choose another --out"
                )
    from yolocli.errors import OptionError, OutputError
    from yolocli.io.outputs import SaveOptions
    from yolocli.postprocess import Postprocess
    from yolocli.run.pipeline import Options

    if no_save and (line_width or font_size or hide_labels or hide_conf):
        raise click.UsageError(
            "--line-width, --font-size, --hide-labels and --hide-conf are about annotated "
            "images, which --no-save turns off"
        )
    from yolocli.draw import Style

    save = SaveOptions(
        out_dir=(Path(out) if out_uri is None else Path("-")) if saving else None,
        save_images=not no_save,
        save_txt=save_txt,
        save_conf=save_conf,
        save_crops=save_crops,
        skip_existing=skip_existing,
        style=Style(line_width, font_size, hide_labels, hide_conf),
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


# ------------------------------------------------------------------------------ track

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


@cli.command(context_settings=CONTEXT, epilog=TRACK_EPILOG, params=_track_params())
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
    from yolocli.detector import plan as make_plan
    from yolocli.io.inputs import expand_sources, unannounced

    if ctx.meta.get("yolocli.tracking") is not None:  # folders of frames are sequences
        from yolocli.tracking.session import expand as expand_sources
    from yolocli.io.outputs import Outputs
    from yolocli.models.store import Store
    from yolocli.run.workers import MIN_IMAGES

    if isinstance(sys.stdout, io.TextIOWrapper):
        # Paths that are not valid UTF-8 reach stdout as the bytes they are.
        sys.stdout.reconfigure(errors="surrogateescape")
    with Outputs(save) as outputs:  # an unusable output folder fails here, before any work
        store = Store.from_env(progress=_progress_wanted(ctx))
        threads = detector_args.pop("threads")
        workers = detector_args.pop("workers")
        plan = make_plan(**detector_args, store=store)
        kind = ctx.meta.get("yolocli.source_type", "auto")
        streamed = _read_once(sources)  # stdin, a FIFO list: expanded once, while running
        named = [] if streamed else _named(sources, kind, MIN_IMAGES)
        few = not streamed and len(named) < MIN_IMAGES
        videos = any(s.is_video for s in named)
        ctx.meta["yolocli.videos"] = videos
        if plan.precision == "int8":  # calibrated on the run's first image files
            plan = _calibrated(plan, [s.path for s in named if s.path and not s.is_video])
        if options.slicer is not None:  # tiles far smaller than the network: refused now
            options.slicer.check_network(plan.width, plan.height)
        options, rule = _parallel(plan, few, workers, threads, options, videos)
        detector: Any = plan if options.workers > 1 else Detector.from_plan(plan, options.threads)
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
        with _Signals() as signals:
            return _stream(
                ctx, plan.info.name, detector, outputs, options, items, total, fmt,
                (rule if profile else None), signals,
            )  # fmt: skip


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


def _is_uri(text: str) -> bool:
    from yolocli.io.remote import is_uri

    return is_uri(text)


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
        uris = [s for s in sources if _is_uri(s)] + ([out] if saving and _is_uri(out) else [])
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
    kinds = {_is_uri(s) for s in sources}
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
    from yolocli.detector import plan as make_plan
    from yolocli.io.outputs import Outputs
    from yolocli.io.remote import UriOutputs
    from yolocli.models.store import Store

    yray.require_ray(cluster.address)  # before any listing: the message names the extra
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="surrogateescape")
    saving = save.out_dir is not None
    outputs: Any = UriOutputs(cluster.out_uri, save) if cluster.out_uri and saving else (
        Outputs(save))  # fmt: skip
    with outputs:
        store = Store.from_env(progress=_progress_wanted(ctx))
        threads = detector_args.pop("threads") or 1
        workers = detector_args.pop("workers")
        plan = make_plan(**detector_args, store=store)
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
        with _Signals() as signals:
            return _stream(
                ctx, plan.info.name, None, outputs, options, items, len(items), fmt,
                (rule if profile else None), signals, pipeline=run, out_name=cluster.out_uri,
            )  # fmt: skip


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
    from yolocli.io.remote import is_uri
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


def _parallel(
    plan: Any, few: bool, workers: str, threads: int | None, options: Any, videos: bool = False
) -> tuple[Any, str]:
    """``options`` with the worker processes and engine threads to use, and the rule that
    chose them in words (for --profile). ``few``: the run is known to have fewer than
    `yolocli.run.workers.MIN_IMAGES` images; ``videos``: it names a video, camera or stream,
    whose frames run in this process anyway (`yolocli.run.pipeline`)."""
    import dataclasses

    from yolocli.run.workers import MIN_IMAGES, auto_workers

    cores = os.cpu_count() or 1
    share: int | None
    if workers != "auto":
        count = int(workers)
        share = threads or max(1, cores // count)
        rule = f"--workers {count}"
        if count > 1 and options.batch > 1:
            log.warning(
                "--batch %d is not used with --workers %d: each worker process runs one image "
                "at a time (-j 1 batches on one network in this process)",
                options.batch,
                count,
            )
    elif options.batch > 1:
        count, share = 1, threads  # batches are formed on one network, here
        rule = f"auto: --batch {options.batch} batches on one network in this process"
    elif videos:
        count, share = 1, threads  # frames are not worth shipping to other processes
        rule = "auto: videos run on one network in this process"
    elif few:
        count, share = 1, threads  # starting worker processes would cost more than they save
        rule = f"auto: fewer than {MIN_IMAGES} images, so one network in this process"
    else:
        count, share = auto_workers(plan, cores)
        share = threads or share
        rule = (
            f"auto: {cores} cores, one worker per core as memory allows"
            if count > 1
            else f"auto: one network in this process ({cores} cores, {plan.device})"
        )
    return dataclasses.replace(options, workers=count, threads=share), rule


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
    signals: _Signals,
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


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C (outputs finalized) but exiting with status 143."""


class _Signals:
    """Ctrl-C and SIGTERM as exceptions, held back while a record is being written.

    A record and its journal line are written whole or not at all; a signal that arrives in
    between is raised right after them. Only the main thread can own signal handlers: on any
    other, this does nothing.
    """

    def __init__(self) -> None:
        self.pending: type[KeyboardInterrupt] | None = None
        self.holding = False
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> _Signals:
        import signal

        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                if signal.getsignal(signum) is not signal.SIG_IGN:  # nohup: stay deaf to it
                    self.previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        import signal

        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, _frame: Any) -> None:
        import signal

        kind = KeyboardInterrupt if signum == signal.SIGINT else Terminated
        if self.holding and self.pending is None:
            self.pending = kind  # the first one waits for the record; a second one does not
            return
        raise kind()

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        self.holding = True
        try:
            yield
        finally:
            self.holding = False
            if self.pending is not None:
                kind, self.pending = self.pending, None
                raise kind()


class _Run:
    """Counts, the progress bar and the closing summary of one detect run (all on stderr)."""

    def __init__(
        self, ctx: click.Context, model: str, out_dir: Path | None, total: int | None
    ) -> None:
        import time

        self.ctx = ctx
        self.model = model
        self.out_dir = out_dir
        self.done = self.failed = self.skipped = self.objects = self.input_errors = 0
        self.tiles = 0
        self.frames = self.videos = 0
        self.per_video: dict[int | None, Any] = {}
        self.encoder = ""
        self.engine = ""
        self.recipe = ""  # how the model ran: its darknet flavour and why (for --profile)
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self.start = time.perf_counter()
        self.first_output: str | None = None  # the first file written, for the summary
        self.bar: Any = None
        if _progress_wanted(ctx):
            from tqdm import tqdm

            self.bar = tqdm(
                total=total,
                unit="frame" if ctx.meta.get("yolocli.videos") else "img",
                file=sys.stderr,
                dynamic_ncols=True,
                leave=False,
            )

    def track(self, results: Any) -> Any:
        from collections import Counter

        for result in results:
            if result.input_error:
                self.input_errors += 1  # names no image: not counted as one
            elif result.frame is not None:
                self.frames += 1
                if result.detections is not None:
                    counts = self.per_video.setdefault(result.video_id, Counter())
                    counts.update(result.detections.labels)
            else:
                self.done += 1
                self.videos += result.source.is_video
                if result.video_end and "image" in result.outputs and not self.encoder:
                    from yolocli.io.video import encoder

                    self.encoder = encoder()
            for warning in result.warnings:
                self._say(f"yolocli: warning: {_printable(result.source.name)}: {warning}")
            if result.error:
                self.failed += not result.input_error
                hint = " (rerun with --debug for the traceback)" * _is_internal(result.error)
                self._say(f"yolocli: {_printable(result.source.name)}: {result.error}{hint}")
            elif result.skipped:
                self.skipped += 1
            elif result.detections is not None:
                self.objects += len(result.detections)
                self.tiles += result.tiles
            if self.first_output is None and not result.skipped:
                self.first_output = _first_file(result.outputs)
            for stage, (wall, cpu) in result.timings.items():
                self.wall[stage] = self.wall.get(stage, 0.0) + wall
                if cpu is not None:
                    self.cpu[stage] = self.cpu.get(stage, 0.0) + cpu
            if self.bar is not None and not result.video_end:
                self.bar.update(1)
                if self.failed:
                    self.bar.set_postfix(failed=self.failed, refresh=False)
            yield result

    def video_summary(self, result: Any) -> str:
        """One line for a video (text output): frames, objects per class, its output."""
        from collections import Counter

        counts: Counter[str] = self.per_video.pop(result.video_id, None) or Counter()
        n = sum(counts.values())
        found = ", ".join(f"{k} {_printable(label)}" for label, k in counts.most_common())
        line = f"{_printable(result.source.name)}: {result.frames} frames, {n} objects"
        line += f" ({found})" if found else ""
        for i, counted in enumerate(result.extra.get("lines", [])):  # yolocli track --line
            ways = [f"{way} " + (", ".join(f"{n} {_printable(k)}" for k, n in counted[way].items())
                                 or "0") for way in ("in", "out")]  # fmt: skip
            line += f"; line {i + 1}: {'; '.join(ways)}"
        for i, zone in enumerate(result.extra.get("zones", [])):
            entered = ", ".join(f"{n} {_printable(k)}" for k, n in zone["entered"].items())
            line += f"; zone {i + 1}: entered {entered or 0}"
        if "image" in result.outputs:
            line += f" -> {_printable(result.outputs['image'])}"
        return line + (f" [stopped: {result.error}]" if result.error else "")

    def _say(self, line: str) -> None:
        if self.bar is not None:
            self.bar.clear()
        click.echo(line, err=True)

    @contextlib.contextmanager
    def above_bar(self) -> Iterator[None]:
        """Write records to stdout with the bar out of their way: on a terminal, stdout and
        the bar (on stderr) share the screen, so the bar is cleared first (no record glued
        to it, no stale bars left above) and drawn again below the record."""
        bar = self.bar if self.bar is not None and _isatty(sys.stdout) else None
        if bar is not None:
            bar.clear()
        try:
            yield
        finally:
            if bar is not None:
                sys.stdout.flush()
                bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def finish(self, profile: bool) -> None:
        import time

        self.close()
        elapsed = time.perf_counter() - self.start
        if not self.ctx.meta.get("yolocli.quiet"):
            click.echo(self.summary(elapsed), err=True)
        if profile:  # asked for by name: shown under -q too
            self._profile(elapsed)

    def summary(self, elapsed: float) -> str:
        """The closing line: what was done, how fast, and where the outputs are."""
        images = self.done - self.videos
        # The rate is of work done: failed and skipped inputs took no forward pass.
        count = max(images - self.failed - self.skipped, 0) + self.frames
        rate = count / elapsed if elapsed > 0 else 0.0
        parts = [f"{images} image{'s' * (images != 1)}"] if images or not self.videos else []
        if self.videos:
            parts.append(f"{self.videos} video{'s' * (self.videos != 1)} ({self.frames} frames)")
        parts.append(f"{self.objects} object{'s' * (self.objects != 1)}")
        if self.skipped:
            parts.append(f"{self.skipped} skipped")
        if self.failed:
            parts.append(f"{self.failed} failed")
        if self.input_errors:
            parts.append(f"{self.input_errors} input error{'s' * (self.input_errors != 1)}")
        where = ""
        if self.out_dir is not None and self.first_output is not None:
            where = f"; outputs in {self.out_dir}/ (first: {_printable(self.first_output)})"
        unit = "frames/s" if self.videos else "images/s"
        if self.encoder:
            where += f" (videos: {self.encoder})"
        return f"yolocli: {', '.join(parts)} in {elapsed:.1f} s ({rate:.1f} {unit}){where}"

    def _profile(self, elapsed: float) -> None:
        from yolocli.run.pipeline import STAGES

        processed = max(self.done - self.videos + self.frames - self.failed - self.skipped, 1)
        what = "image or frame" if self.videos else "image"

        def ms(total: float) -> str:
            return f"{total / processed * 1e3:8.1f}"

        lines = [
            f"yolocli: time per {what} by stage ({self.model}, {processed} {what}s):",
            f"  {'stage':<12} {'wall ms':>8} {'cpu ms':>8}",
        ]
        for stage in STAGES:
            if stage in self.wall:
                cpu = ms(self.cpu[stage]) if stage in self.cpu else f"{'-':>8}"
                lines.append(f"  {stage:<12} {ms(self.wall[stage])} {cpu}")
        lines.append(f"  {'wall clock':<12} {ms(elapsed)}")
        lines.append(
            "  (cpu: what a stage costs on its thread; wall also counts waiting for a core."
            " Stages overlap on threads and worker processes; the forward pass runs on the"
            " engine's threads.)"
        )
        if self.tiles > processed:
            lines.append(f"  network passes per image (--slice): {self.tiles / processed:.1f}")
        if self.engine:
            lines.append(f"  engine: {self.engine}")
        if self.recipe:
            lines.append(f"  model runs as {self.recipe}")
        click.echo("\n".join(lines), err=True)


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed, or not a file
        return False


def _first_file(outputs: Any) -> str | None:
    """The first file named in a record's ``outputs``, if any."""
    for value in outputs.values():
        if isinstance(value, list):
            if value:
                return str(value[0])
        elif value:
            return str(value)
    return None


def _is_internal(error: str) -> bool:
    return error.startswith(INTERNAL)


def _printable(text: str) -> str:
    """``text`` with control characters escaped (a newline in a file name stays on one line)."""
    from yolocli.io.formats import printable

    return printable(text)


# -------------------------------------------------------------------------------- val

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


@cli.command(context_settings=CONTEXT, epilog=VAL_EPILOG)
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
    from yolocli.run.workers import MIN_IMAGES

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
    options, _ = _parallel(model, len(sources) < MIN_IMAGES, workers, threads, options)
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


def main() -> None:
    """Entry point of the ``yolocli`` console script."""
    try:
        cli.main(prog_name="yolocli")
    except SystemExit as done:
        _stop_live_readers(done)
        raise


def _stop_live_readers(done: SystemExit) -> None:
    """Before interpreter shutdown: stop the reader threads of live streams (Ctrl-C, SIGTERM
    or a closed pipe may end a run while one is inside FFmpeg's read), and if one will not
    stop in time, leave without shutdown (which would abort the process) with the same status.
    """
    video = sys.modules.get("yolocli.io.video")  # never imported just for this: cv2 is slow
    if video is None or not video.readers_alive() or video.stop_readers(timeout=2.0):
        return
    code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    main()
