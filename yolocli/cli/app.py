"""The root command: every failure becomes one line on stderr and a documented exit status."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any, NoReturn

import click

from yolocli import version
from yolocli.cli.common import (
    CONTEXT,
    ENVIRONMENT,
    EXIT_BROKEN_PIPE,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    _common,
    _hint,
)
from yolocli.errors import YolocliError, internal
from yolocli.run.signals import Terminated

# Each command's module, imported when that command runs (or --help lists them all): a
# command's options are built as its module loads, and `detect` need not build track's.
_COMMANDS = {name: f"yolocli.cli.{name}" for name in ("detect", "export", "models", "track", "val")}


class _Cli(click.Group):
    """The root group: turns every failure into one line and the documented exit status."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_COMMANDS})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = super().get_command(ctx, name)
        if command is None and name in _COMMANDS:
            import importlib

            command = getattr(importlib.import_module(_COMMANDS[name]), name)
            self.add_command(command)
        return command

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


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        click.echo(f"yolocli, version {version()}")
        ctx.exit()


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


def main() -> None:
    """Entry point of the ``yolocli`` console script."""
    try:
        cli.main(prog_name="yolocli")
    except SystemExit as done:
        _stop_live_readers(done)
        _leave(done)


def _status(done: SystemExit) -> int:
    if isinstance(done.code, str):  # as Python does: the message, and status 1
        with contextlib.suppress(OSError, ValueError):
            print(done.code, file=sys.stderr)
        return 1
    return 0 if done.code is None else int(done.code)


def _flush_std_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # closed, or a reader that left (| head)
            stream.flush()


def _leave(done: SystemExit) -> NoReturn:
    """End the process with the command's status, without tearing the interpreter down.

    Interpreter shutdown frees every module and object one by one, ONNX Runtime's sessions and
    thread pools among them: 36 ms of a one-image run (0.89 of the time without it, farm-bench,
    15 pairs), which nobody waits for. What a normal exit does that matters still happens:
    threads that are not daemons are waited for, atexit handlers run (the model store's
    temporary files, logging, multiprocessing's children) and the standard streams are
    flushed. Every file the commands write is closed before they return.

    Threads are waited for as Python's own shutdown waits for them (``threading._shutdown``,
    which first tells thread pools to finish); where that is missing, a normal exit."""
    import atexit
    import threading

    shutdown = getattr(threading, "_shutdown", None)
    if shutdown is None:
        raise done
    code = _status(done)
    shutdown()
    atexit._run_exitfuncs()
    _flush_std_streams()
    os._exit(code)


def _stop_live_readers(done: SystemExit) -> None:
    """Before interpreter shutdown: stop the reader threads of live streams (Ctrl-C, SIGTERM
    or a closed pipe may end a run while one is inside FFmpeg's read), and if one will not
    stop in time, leave without shutdown (which would abort the process) with the same status.
    """
    video = sys.modules.get("yolocli.io.video")  # never imported just for this: cv2 is slow
    if video is None or not video.readers_alive() or video.stop_readers(timeout=2.0):
        return
    code = _status(done)
    _flush_std_streams()
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    main()
