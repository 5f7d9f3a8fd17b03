"""yolocli's command line: the only module that imports Click.

Library errors (`YolocliError`) become one line on stderr and exit status 1; usage errors
exit 2; Ctrl-C exits 130. stdout carries data only; people read stderr.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from yolocli import __version__
from yolocli.errors import YolocliError

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

CONTEXT = {"help_option_names": ["-h", "--help"], "show_default": True, "max_content_width": 100}

ENVIRONMENT = """\b
Environment:
  YOLOCLI_HOME     model store (default: $XDG_CACHE_HOME/yolocli, else ~/.cache/yolocli)
  YOLOCLI_MIRROR   base URL that replaces the built-in download sources:
                   each file is fetched from <URL><file name>
  YOLOCLI_OFFLINE  1: never touch the network; a missing model is an error
  YOLOCLI_TIMEOUT  seconds a download may stall before it is retried (default 30)

\b
Exit status: 0 all good, 1 something failed (the rest still done), 2 usage
error, 130 interrupted."""

log = logging.getLogger("yolocli")


# ------------------------------------------------------------------------- plumbing


class _StderrHandler(logging.Handler):
    """Log records as ``yolocli: message`` lines on the current stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        prefix = "yolocli: warning: " if record.levelno >= logging.WARNING else "yolocli: "
        click.echo(prefix + record.getMessage(), err=True)


def _setup_logging(quiet: bool, debug: bool) -> None:
    logger = logging.getLogger("yolocli")
    for handler in list(logger.handlers):
        if isinstance(handler, _StderrHandler):
            logger.removeHandler(handler)
    logger.addHandler(_StderrHandler())
    logger.setLevel(logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO)
    logger.propagate = False


def _progress_wanted(ctx: click.Context) -> bool:
    return not ctx.meta.get("yolocli.quiet") and sys.stderr.isatty()


class _Cli(click.Group):
    """The root group: turns every failure into one line and the documented exit status."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except YolocliError as err:
            click.echo(f"yolocli: error: {err}", err=True)
            ctx.exit(EXIT_FAILED)
        except KeyboardInterrupt:
            click.echo("yolocli: interrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as err:
            if ctx.meta.get("yolocli.debug"):
                raise
            click.echo(
                f"yolocli: internal error: {type(err).__name__}: {err} "
                "(rerun with --debug for the traceback)",
                err=True,
            )
            ctx.exit(EXIT_FAILED)


def _common(func: F) -> F:
    """Options every command takes: -q/--quiet and --debug."""

    def remember(key: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
        def callback(ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
            ctx.meta[key] = value or ctx.meta.get(key, False)
            _setup_logging(
                ctx.meta.get("yolocli.quiet", False), ctx.meta.get("yolocli.debug", False)
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
        "--debug",
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=remember("yolocli.debug"),
        help="Show tracebacks and network details.",
    )(func)
    return func


def _store(ctx: click.Context) -> Any:
    from yolocli.store import Store

    return Store.from_env(progress=_progress_wanted(ctx))


def _registry() -> Any:
    from yolocli.registry import load_registry

    return load_registry()


def _model_names(
    ctx: click.Context, param: click.Parameter, value: tuple[str, ...]
) -> tuple[str, ...]:
    """Reject unknown model names as a usage error that lists the known ones."""
    registry = _registry()
    unknown = [name for name in value if name not in registry.models]
    if unknown:
        known = ", ".join(registry.models)
        raise click.BadParameter(f"unknown model {unknown[0]!r}; known models: {known}", ctx, param)
    return value


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


# -------------------------------------------------------------------------- commands


@click.group(cls=_Cli, context_settings=CONTEXT, epilog=ENVIRONMENT)
@click.version_option(__version__, "-V", "--version", prog_name="yolocli")
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
    """List, download, verify and remove models in the local store.

    Models are fetched on first use by any command that needs one; these commands
    manage the store by hand (to prepare an offline machine, say).

    \b
    Examples:
      yolocli models download yolov3-tiny
      yolocli models verify
      yolocli models path yolov3-tiny --file weights
    """


@models.command("list", context_settings=CONTEXT, epilog=ENVIRONMENT)
@click.option("--json", "as_json", is_flag=True, help="One JSON array on stdout, for scripts.")
@_common
@click.pass_context
def models_list(ctx: click.Context, as_json: bool) -> None:
    """Known models: size, whether installed, and the default (marked *).

    \b
    Examples:
      yolocli models list
      yolocli models list --json | jq -r '.[] | select(.installed) | .name'
    """
    registry, store = _registry(), _store(ctx)
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
                "description": model.description,
            }
            for name, model, status, _ in rows
        ]
        click.echo(json.dumps(records, indent=2))
        return
    width = max(len(name) for name in registry.models) + 2
    click.echo(f"{'NAME':<{width}}  {'SIZE':>9}  {'STATUS':<13}  DESCRIPTION")
    for name, model, _, state in rows:
        label = name + (" *" if name == registry.default else "")
        click.echo(
            f"{label:<{width}}  {_size(model.weights.size):>9}  {state:<13}  {model.description}"
        )
    click.echo(f"* default model. Store: {store.root}", err=True)


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
            click.echo(f"yolocli: error: {err}", err=True)
            failed += 1
            continue
        log.info("%s is ready: %s", name, files.weights)
    ctx.exit(EXIT_FAILED if failed else EXIT_OK)


@models.command("verify", context_settings=CONTEXT, epilog=ENVIRONMENT)
@click.argument("names", nargs=-1, callback=_model_names)
@_common
@click.pass_context
def models_verify(ctx: click.Context, names: tuple[str, ...]) -> None:
    """Re-hash installed model files against the registry (all installed models if none named).

    Prints one line per file on stdout ("ok" or "FAILED" and why); exits 1 if any file
    is missing or does not match.

    \b
    Examples:
      yolocli models verify
      yolocli models verify yolov3-tiny
    """
    registry, store = _registry(), _store(ctx)
    chosen = names or tuple(
        name for name, model in registry.models.items() if store.status(model.weights).installed
    )
    if not chosen:
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
@_common
@click.pass_context
def models_path(ctx: click.Context, name: str, which: str | None) -> None:
    """Print the local cfg, weights and names paths of a model (fetching it if needed).

    One "kind<TAB>path" line per file, or just the path with --file.

    \b
    Examples:
      yolocli models path yolov3-tiny
      darknet detector test coco.data "$(yolocli models path yolov3 --file cfg)" ...
    """
    files = _store(ctx).ensure_model(_registry().get(name))
    paths = {"cfg": files.cfg, "weights": files.weights, "names": files.names}
    if which:
        click.echo(str(paths[which]))
    else:
        for kind, path in paths.items():
            click.echo(f"{kind}\t{path}")


@models.command("remove", context_settings=CONTEXT, epilog=ENVIRONMENT)
@click.argument("names", nargs=-1, required=True, callback=_model_names)
@_common
@click.pass_context
def models_remove(ctx: click.Context, names: tuple[str, ...]) -> None:
    """Delete downloaded model files (and partial downloads) from the store.

    \b
    Examples:
      yolocli models remove yolov3
    """
    registry, store = _registry(), _store(ctx)
    for name in names:
        freed = store.remove(registry.get(name))
        if freed:
            log.info("removed %s (%s freed)", name, _size(freed))
        else:
            log.info("%s was not installed", name)


def main() -> None:
    """Entry point of the ``yolocli`` console script."""
    cli.main(prog_name="yolocli")


if __name__ == "__main__":  # pragma: no cover
    main()
