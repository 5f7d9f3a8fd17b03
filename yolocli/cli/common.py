"""What every command shares: exit statuses, logging to stderr, -q/--debug, the store."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import click

from yolocli.errors import INTERNAL, YolocliError

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


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed, or not a file
        return False


def _is_internal(error: str) -> bool:
    return error.startswith(INTERNAL)


def _printable(text: str) -> str:
    """``text`` with control characters escaped (a newline in a file name stays on one line)."""
    from yolocli.io.formats import printable

    return printable(text)
