"""`yolocli models`: list, download, verify, locate and remove registry models."""

from __future__ import annotations

import json
from pathlib import Path

import click

from yolocli.cli.common import (
    CONTEXT,
    ENVIRONMENT,
    EXIT_FAILED,
    EXIT_OK,
    _common,
    _hint,
    _model_names,
    _registry,
    _size,
    _store,
    log,
)
from yolocli.errors import YolocliError


@click.group(context_settings=CONTEXT, epilog=ENVIRONMENT)
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
