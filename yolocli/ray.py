"""The same detector on a Ray cluster: Ray Data schedules, yolocli does the per-image work.

Image bytes are read where they are processed, never decoded by Ray (not ``read_images``: no
PIL decode, no second pixel limit): `Detect`, a callable class for ``Dataset.map_batches``,
holds one network per actor, reads each image's bytes itself from a dataset of paths
(`listing`), or takes them from ``read_binary_files`` (`read`), and runs
`yolocli.run.workers.run_task` on each image: the very function yolocli's worker processes
run, so a cluster gives the records one machine gives. Records travel back, never decoded
pixels.

Two ways to use it:

- ``yolocli detect SOURCES --ray ADDRESS`` (`RayRun`): this process lists the inputs, names
  the outputs, keeps the journal (``--skip-existing``), writes the output files and streams the
  records in input order, exactly as a local run does; or, with ``--records-to URI``, the
  cluster writes the records itself as sharded JSON Lines or Parquet (`write_records`).
- In your own Ray pipeline: `detect` maps a ``Dataset`` of ``{"bytes", "path"}`` rows (what
  ``read_binary_files(..., include_paths=True)`` gives) or of ``{"path"}`` rows (`listing`) to
  one of result rows (`result_schema`), and `to_records` turns those into yolocli's documented
  records (`yolocli.io.records`).

Ray >= 2.51: the actor pool is sized with ``compute=ray.data.ActorPoolStrategy(...)``, the API
that replaced ``concurrency=`` (deprecated in 2.51).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import numpy as np

from yolocli.detections import Detections
from yolocli.detector import Detector, Plan
from yolocli.errors import YolocliError
from yolocli.io.inputs import IMAGE_EXTENSIONS, Source, os_reason, over_limit, special_file_error
from yolocli.io.outputs import Rendered, Targets
from yolocli.run.pipeline import Options, Result, store
from yolocli.run.workers import Done, Task, run_task
from yolocli.slicing import Slicer

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)

MIN_RAY = (2, 51)  # compute=ActorPoolStrategy(...) replaced concurrency= here

# Images per call of an actor: small enough that records stream back (and an actor that dies
# costs little work), large enough that Ray's per-batch cost disappears behind the network.
BATCH_SIZE = 8


def require_ray(address: str | None = None) -> Any:
    """The ``ray`` module, with Ray Data; `YolocliError` naming the extra if not installed.

    Given the ``address`` that will be joined (see `connect`), first settles how to
    authenticate, which Ray reads once, on import."""
    joining = address not in (None, "local") and "RAY_AUTH_MODE" not in os.environ
    if joining and _token_at_hand():
        # `ray start` turns token authentication on (Ray 2.5x) and keeps the token where this
        # process finds it (~/.ray); a driver that joins must ask for that mode.
        os.environ["RAY_AUTH_MODE"] = "token"
    try:
        import ray
        import ray.data
    except ImportError:
        raise YolocliError("--ray needs Ray: pip install 'yolocli[ray]'") from None
    version = tuple(int(p) for p in ray.__version__.split(".")[:2] if p.isdigit())
    if version < MIN_RAY:
        need = ".".join(map(str, MIN_RAY))
        raise YolocliError(
            f"Ray {ray.__version__} is too old: yolocli needs Ray >= {need} "
            "(pip install -U 'yolocli[ray]')"
        )
    return ray


def connect(address: str, *, debug: bool = False) -> str:
    """Join (or start) the Ray cluster ``address`` names; returns how it was reached.

    ``auto``: the running cluster Ray finds (``RAY_ADDRESS``, else the one started on this
    machine by ``ray start``); ``local``: a new cluster inside this process, with this machine's
    cores; ``HOST:PORT``: the head's address as ``ray start --head`` printed it (``ray://``
    addresses go through Ray Client). Does nothing if this process is connected already."""
    ray = require_ray(address)
    if ray.is_initialized():
        return "the Ray cluster this process is connected to"
    kwargs: dict[str, Any] = {
        "logging_level": logging.DEBUG if debug else logging.ERROR,
        "log_to_driver": debug,
    }
    if address == "local":
        kwargs["include_dashboard"] = False
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as err:
        if "InvalidAuthToken" in _causes(err):
            raise YolocliError(
                f"the Ray cluster at {address} refused this process's token: set RAY_AUTH_TOKEN "
                "(or RAY_AUTH_TOKEN_PATH) to the cluster's, as `ray get-auth-token` prints it "
                "on the head"
            ) from None
        hint = "start one with: ray start --head" if address != "local" else ""
        raise YolocliError(
            f"cannot reach the Ray cluster at {address}: {str(err).splitlines()[0]}"
            + (f"; {hint}" if hint else "")
        ) from None
    _quiet_ray_data(debug)
    global _joined
    _joined = not debug  # with --debug, Ray's own exit waits for the workers' last log lines
    return "a new local Ray cluster" if address == "local" else f"the Ray cluster at {address}"


_joined = False  # `connect` joined a cluster that `disconnect` may leave


def disconnect() -> None:
    """Leave the cluster `connect` joined, now rather than at exit (nothing if `connect`
    joined none: a connection made before it is its maker's).

    Ray's exit handler sleeps 0.5 s so that the workers' last log lines reach the driver;
    `connect` does not forward them (except with ``debug``), so that wait buys nothing."""
    global _joined
    if _joined:
        _joined = False
        require_ray().shutdown()


def _token_at_hand() -> bool:
    """True if Ray would find an authentication token here (its variables or ~/.ray)."""
    if os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH"):
        return True
    return os.path.isfile(os.path.expanduser("~/.ray/auth_token"))


def _causes(err: BaseException) -> str:
    """The messages of ``err`` and of every exception behind it, as one text."""
    texts: list[str] = []
    seen: BaseException | None = err
    while seen is not None and len(texts) < 10:
        texts.append(f"{type(seen).__name__}: {seen}")
        seen = seen.__cause__ or seen.__context__
    return "\n".join(texts)


def _quiet_ray_data(debug: bool) -> None:
    """Ray Data's progress bars and execution logs stay off stderr (stderr is yolocli's)."""
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = debug
    ctx.print_on_execution_start = debug
    if not debug:
        logging.getLogger("ray.data").setLevel(logging.ERROR)


def cluster_cpus() -> int:
    """CPUs in the connected cluster (every node's)."""
    ray = require_ray()
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def pool_size(cpus: int, threads: int) -> int:
    """Actors for ``cpus`` cluster CPUs with ``threads`` engine threads each (one CPU a thread):
    as on one machine, many one-thread networks beat a few wide ones for these models."""
    return max(1, cpus // max(1, threads))


# -- the per-actor work ---------------------------------------------------------------------


def _on_this_node(plan: Plan) -> Plan:
    """``plan`` with files that exist on this node: a registry model missing here is fetched
    into this node's store (once per node: the store locks and verifies)."""
    info = plan.info
    if (info.cfg is None or info.cfg.is_file()) and info.weights.is_file():
        return plan
    if info.registered_sha256 is None:
        raise YolocliError(
            f"{info.weights} is not on this node: put a custom model's files at the same path "
            "on every node (a shared file system), or register it"
        )
    import dataclasses

    from yolocli.models.registry import load_registry
    from yolocli.models.store import Store

    # The same model, recipe and settings as the driver's: only the files' places change.
    spec = load_registry().get(info.name)
    store = Store.from_env()
    fetched = dataclasses.replace(
        info,
        cfg=store.ensure(spec.cfg),
        names_file=(
            info.names_file
            if info.names_file is None or info.names_file.is_file()
            else store.ensure(spec.names)
        ),
        weights=store.ensure(spec.weights),
    )
    return dataclasses.replace(plan, info=fetched, store=store)


def _render_targets(path: str, kinds: frozenset[str]) -> Targets:
    """What `yolocli.io.outputs.render` needs to know of an input's targets (which outputs, the
    image's suffix); the real names are the driver's (`yolocli.io.outputs.Outputs.plan`)."""
    suffix = PurePosixPath(path).suffix
    suffix = suffix if suffix.lower() in IMAGE_EXTENSIONS else ".jpg"
    return Targets(
        Path("x" + suffix) if "image" in kinds else None,
        Path("x.txt") if "labels" in kinds else None,
        Path("x") if "crops" in kinds else None,
    )


def result_schema() -> pa.Schema:
    """One row per image, as `Detect` gives them: the read ``path``, the outcome as parallel
    arrays (``boxes`` flattened x1 y1 x2 y2, float32 as computed), and the rendered outputs."""
    import pyarrow as pa

    crop = [("label", pa.string()), ("index", pa.int64()), ("data", pa.binary())]
    return pa.schema([
        ("path", pa.string()),
        ("width", pa.int64()),
        ("height", pa.int64()),
        ("boxes", pa.list_(pa.float32())),
        ("scores", pa.list_(pa.float32())),
        ("class_ids", pa.list_(pa.int64())),
        ("error", pa.string()),
        ("warnings", pa.list_(pa.string())),
        ("tiles", pa.int64()),
        ("timings", pa.string()),  # JSON: stage -> [wall, cpu]
        ("annotated", pa.binary()),
        ("labels", pa.binary()),
        ("crops", pa.list_(pa.struct(crop))),
    ])  # fmt: skip


class Detect:
    """Callable class for ``Dataset.map_batches``: one network per actor, loaded once.

    Takes batches of ``{"bytes", "path"}`` (``read_binary_files(..., include_paths=True)``),
    or of ``{"path"}`` alone (`listing`), whose bytes it reads itself: from this node's files,
    or from ``filesystem`` (pyarrow's, for object-store paths). Returns `result_schema` rows,
    one per image, in batch order. Each image goes through
    `yolocli.run.workers.run_task`, so a corrupt, truncated or oversized image is a row with
    ``error`` set, never a failed job. ``kinds`` (``image``, ``labels``, ``crops``) are the
    outputs to render as bytes; ``threads`` the engine threads (give the actor as many CPUs).
    """

    def __init__(
        self,
        plan: Plan,
        threads: int = 1,
        *,
        max_bytes: int = Options.max_bytes,
        max_pixels: int = Options.max_pixels,
        kinds: frozenset[str] = frozenset(),
        save_conf: bool = False,
        slicer: Slicer | None = None,
        filesystem: Any = None,
    ) -> None:
        self.detector = Detector.from_plan(_on_this_node(plan), threads)
        self.filesystem = filesystem
        self.max_bytes, self.max_pixels = max_bytes, max_pixels
        self.kinds, self.save_conf, self.slicer = kinds, save_conf, slicer

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        import pyarrow as pa

        paths = [str(path) for path in batch["path"]]
        contents = batch.get("bytes")
        if contents is not None:
            given: Iterable[bytes | str | None] = (bytes(data) for data in contents)
        elif self.filesystem is None:
            given = [None] * len(paths)  # this node's files: `run_task` reads each in turn
        else:  # an object store: every read of the batch in flight while the first runs
            given = self._fetching(paths)
        rows = []
        for path, data in zip(paths, given, strict=True):
            done = self._run(path, data)
            rendered = done.rendered or Rendered()
            dets = done.detections
            rows.append({
                "path": path,
                "width": done.width,
                "height": done.height,
                "boxes": dets.xyxy.reshape(-1).tolist() if dets is not None else [],
                "scores": dets.scores.tolist() if dets is not None else [],
                "class_ids": dets.class_ids.tolist() if dets is not None else [],
                "error": done.error,
                "warnings": done.warnings,
                "tiles": done.tiles,
                "timings": json.dumps(done.timings),
                "annotated": rendered.image,
                "labels": rendered.labels,
                "crops": [{"label": lb, "index": i, "data": d} for lb, i, d in rendered.crops],
            })  # fmt: skip
        return pa.Table.from_pylist(rows, schema=result_schema())

    def _fetching(self, paths: list[str]) -> Iterator[bytes | str]:
        """Each path's bytes from ``filesystem`` (at most ``max_bytes`` + 1 of them: more is
        refused by its size), or why it could not be read, in order; all requested at once, so
        that an object store's latency is paid about once a batch, not once an image."""
        from concurrent.futures import ThreadPoolExecutor

        def fetch(path: str) -> bytes | str:
            try:
                with self.filesystem.open_input_stream(path) as stream:
                    data: bytes = stream.read(self.max_bytes + 1)
                    return data
            except OSError as err:
                return f"cannot read: {str(err).splitlines()[0]}"

        with ThreadPoolExecutor(min(len(paths), 16) or 1) as pool:
            yield from pool.map(fetch, paths)

    def _run(self, path: str, data: bytes | str | None) -> Done:
        """`run_task` on one image: its bytes (or why they could not be read), or None to
        read it here from this node's files, with the local run's checks and messages."""
        rel = PurePosixPath(PurePosixPath(path).name)
        if isinstance(data, str):
            return Done(0, error=data)
        if data is None:
            source = Source(path, Path(path), rel)  # `run_task` reads it, as a worker does
        else:
            source = Source(path, None, rel, data=data)
        task = Task(
            0, source, _render_targets(path, self.kinds), self.save_conf,
            self.max_bytes, self.max_pixels, self.slicer,
        )  # fmt: skip
        return run_task(self.detector, task)


def detect(
    ds: Any,
    plan: Plan,
    *,
    actors: int | None = None,
    threads: int = 1,
    batch_size: int = BATCH_SIZE,
    udf: type = Detect,
    **settings: Any,
) -> Any:
    """``ds`` (rows ``{"bytes", "path"}``) mapped by `Detect` to `result_schema` rows.

    ``actors``: the pool size (default: the cluster's CPUs over ``threads``); each actor asks
    Ray for ``threads`` CPUs and runs its engine on as many threads. ``settings`` go to
    `Detect` (``max_bytes``, ``max_pixels``, ``kinds``, ``save_conf``, ``slicer``,
    ``filesystem``), or to
    ``udf``, a subclass of it.

    Example (a Ray pipeline of your own)::

        plan = yolocli.detector.plan("yolov3-tiny")
        ds = ray.data.read_binary_files("s3://bucket/photos", include_paths=True)
        rows = yolocli.ray.detect(ds, plan)
        records = yolocli.ray.to_records(rows, "yolov3-tiny", plan.info.class_names)
        yolocli.ray.write_records(records, "s3://bucket/found", "jsonl")
    """
    ray = require_ray()
    if plan.needs_onnx:
        plan.compiled()  # once here, where the driver's store is, not in every actor
    size = actors or pool_size(cluster_cpus(), threads)
    return ds.map_batches(
        udf,
        fn_constructor_args=(plan, threads),
        fn_constructor_kwargs=settings,
        compute=ray.data.ActorPoolStrategy(size=size),
        num_cpus=threads,
        batch_size=batch_size,
        batch_format="numpy",
        zero_copy_batch=True,
    )


def read(
    paths: list[str], filesystem: Any = None, blocks: int | None = None,
    concurrency: int | None = None,
) -> Any:  # fmt: skip
    """``ray.data.read_binary_files(paths, include_paths=True)`` with read tasks that take no
    CPU (reading is I/O: every CPU is for the actors), in ``blocks`` read tasks, at most
    ``concurrency`` at a time (default: one per 4 CPUs of the cluster).

    Bounded: a task that takes no CPU may always start, and Ray starts a Python worker process
    for each running task; unbounded, the read tasks of 600 photos became about 70 processes
    competing with two actors on a 2-core machine. `listing` avoids read tasks altogether."""
    import inspect

    ray = require_ray()
    free = {"num_cpus": 0}
    named = "num_cpus" in inspect.signature(ray.data.read_binary_files).parameters
    return ray.data.read_binary_files(
        paths, include_paths=True, filesystem=filesystem, override_num_blocks=blocks,
        concurrency=concurrency or max(1, cluster_cpus() // 4),
        **(free if named else {"ray_remote_args": free}),  # a named argument in newer Rays
    )  # fmt: skip


def listing(paths: Sequence[str], blocks: int) -> Any:
    """A ``Dataset`` of ``{"path"}`` rows, in order, in ``blocks`` blocks, for `detect`:
    its actors read each image's bytes themselves, where they process it (what
    ``detect --ray`` does).

    No read tasks: on 2 cores (600 photos, benchmarks/RESULTS.md) `read`'s tasks, even one
    at a time, needed Python worker processes of their own beside the actors and a second
    operator for Ray Data to schedule, and the run took about a second longer. An actor
    reads local files as a worker process does; object-store reads are all requested at the
    start of a batch (`Detect`), so their latency is paid about once a batch."""
    ray = require_ray()
    # from_items builds the blocks here; from_arrow would run a task per block on the cluster
    # for their metadata (measured: 1.1 s of a 5 s job, waiting for a worker process)
    return ray.data.from_items(
        [{"path": path} for path in paths], override_num_blocks=max(1, min(blocks, len(paths)))
    )


# -- records --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Names:
    """How a read path becomes the input's name as the user gave it (``image`` in records):
    (read-path prefix, name prefix) pairs, longest prefix first. Small whatever the number of
    images: one pair per folder or URI given (`names_for`)."""

    pairs: tuple[tuple[str, str], ...] = ()

    def __call__(self, path: str) -> str:
        for read, name in self.pairs:
            if path.startswith(read):
                return name + path[len(read) :]
        return path


def names_for(items: Iterable[tuple[str, str]]) -> Names:
    """`Names` for (read path, name) pairs: each pair's common tail is cut off, what is left
    is a prefix pair."""
    pairs = set()
    for read, name in items:
        n = 0
        while n < min(len(read), len(name)) and read[-1 - n] == name[-1 - n]:
            n += 1
        pairs.add((read[: len(read) - n], name[: len(name) - n]))
    return Names(tuple(sorted(pairs, key=lambda p: -len(p[0]))))


def record_of(row: dict[str, Any], model: str, names: Sequence[str], image: str) -> dict[str, Any]:
    """The documented record (`yolocli.io.records.ImageRecord`) for a `result_schema` row."""
    result = _result(Source(image, None, PurePosixPath("x")), row, names)
    return dict(result.record(model))


def _detections(row: dict[str, Any], names: Sequence[str]) -> Detections:
    xyxy = np.asarray(row["boxes"], np.float32).reshape(-1, 4)
    return Detections(xyxy, np.asarray(row["scores"], np.float32),
                      np.asarray(row["class_ids"], np.int64), names)  # fmt: skip


def _result(source: Source, row: dict[str, Any], names: Sequence[str]) -> Result:
    timings = {k: tuple(v) for k, v in json.loads(row["timings"] or "{}").items()}
    result = Result(source, row["width"], row["height"], error=row["error"],
                    warnings=list(row["warnings"] or []), timings=timings,
                    tiles=row["tiles"] or 1)  # fmt: skip
    if row["error"] is None:
        result.detections = _detections(row, names)
    return result


def _rendered(row: dict[str, Any]) -> Rendered:
    crops = [(c["label"], c["index"], c["data"]) for c in row["crops"] or []]
    return Rendered(row["annotated"], row["labels"], crops)


def _json_lines(table: pa.Table, model: str, names: list[str], renamer: Names) -> pa.Table:
    """Result rows as records, one JSON text each (column ``text``), as ``-f jsonl`` prints."""
    import pyarrow as pa

    from yolocli.io.formats import to_json

    lines = [
        to_json(record_of(row, model, names, renamer(row["path"])))  # type: ignore[arg-type]
        for row in table.to_pylist()
    ]
    return pa.table({"text": pa.array(lines, pa.string())})


def to_records(ds: Any, model: str, names: Sequence[str], renamer: Names | None = None) -> Any:
    """`result_schema` rows as yolocli's records, one JSON text per row (column ``text``),
    exactly the lines ``-f jsonl`` prints. ``renamer`` maps read paths to ``image`` names."""
    return ds.map_batches(
        _json_lines,
        fn_kwargs={"model": model, "names": list(names), "renamer": renamer or Names()},
        batch_format="pyarrow",
        num_cpus=0,  # a few microseconds a row: the CPUs are the actors'
    )


def write_records(ds: Any, uri: str, fmt: str) -> None:
    """Records (`to_records`) written by the cluster below the folder ``uri`` (local or an
    object store): JSON Lines shards (``fmt`` "jsonl", the lines ``-f jsonl`` prints), or
    Parquet with the record's fields as columns ("parquet"; ``outputs`` as JSON text). A
    retried task rewrites its own shard, so no record appears twice."""
    from yolocli.io.names import is_uri
    from yolocli.io.remote import filesystem

    fs, path = filesystem(uri) if is_uri(uri) else (None, os.path.abspath(uri))
    if fmt == "parquet":
        ds = ds.map_batches(_parse_records, batch_format="pyarrow", num_cpus=0)
        ds.write_parquet(path, filesystem=fs)
    else:
        ds.write_datasink(_JsonLinesSink(path, filesystem=fs))


def _JsonLinesSink(path: str, filesystem: Any) -> Any:  # a class, made late
    """A Ray datasink writing the ``text`` column, one line a row, a shard per write task
    (named by the task, so a retried task replaces its shard)."""
    from ray.data.datasource import BlockBasedFileDatasink

    class JsonLinesSink(BlockBasedFileDatasink):  # type: ignore[misc,unused-ignore]
        def write_block_to_file(self, block: Any, file: Any) -> None:
            lines = block.to_arrow().column("text").to_pylist()
            file.write("".join(line + "\n" for line in lines).encode("utf-8", "surrogateescape"))

    return JsonLinesSink(path, file_format="jsonl", filesystem=filesystem)


def _parse_records(table: pa.Table) -> pa.Table:
    import pyarrow as pa

    rows = [json.loads(t) for t in table.column("text").to_pylist()]
    for row in rows:
        row.setdefault("warnings", [])
        row["outputs"] = json.dumps(row["outputs"])
    return pa.Table.from_pylist(rows, schema=_parquet_schema())


def _parquet_schema() -> pa.Schema:
    import pyarrow as pa

    det = pa.struct([("label", pa.string()), ("class_id", pa.int64()), ("score", pa.float64()),
                     ("box", pa.list_(pa.float64()))])  # fmt: skip
    return pa.schema([
        ("image", pa.string()), ("width", pa.int64()), ("height", pa.int64()),
        ("model", pa.string()), ("detections", pa.list_(det)), ("outputs", pa.string()),
        ("error", pa.string()), ("warnings", pa.list_(pa.string())),
    ])  # fmt: skip


# -- the driver -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """One input for the cluster: its `Source` and where a read task finds its bytes."""

    source: Source
    path: str | None = None  # in ``filesystem``; None: nothing to read (an error, a video)
    size: int | None = None


def local_items(sources: Iterable[Source]) -> list[Item]:
    """`Item` for local `yolocli.io.inputs.Source` items (`yolocli.io.inputs.expand_sources`): each
    image read by its absolute path, which every node must reach (one machine, or a shared
    file system); what cannot be read is an error here, before the cluster sees it."""
    items = []
    for source in sources:
        if source.error or source.path is None or source.is_video:
            items.append(Item(source))
            continue
        path = os.path.abspath(source.path)
        try:
            st = os.stat(path)
        except OSError as err:
            items.append(Item(dataclasses.replace(source, error=os_reason(err))))
            continue
        special = special_file_error(st.st_mode)
        if special is not None:
            items.append(Item(dataclasses.replace(source, error=special)))
        else:
            items.append(Item(source, path, st.st_size))
    return items


def uri_items(uris: Iterable[str]) -> tuple[list[Item], Any]:
    """`Item` for every image the URIs name (`yolocli.io.remote.list_uri`), and their pyarrow
    file system; `ValueError` if they are not all on one."""
    from yolocli.io.remote import list_uri

    items: list[Item] = []
    fs: Any = None
    for uri in uris:
        this, listed = list_uri(uri)
        if fs is not None and not fs.equals(this):
            raise ValueError(f"{uri}: one --ray run reads from one file system")
        fs = this
        items += [Item(found.source, found.path, found.size) for found in listed]
    return items, fs


@dataclass
class RayRun:
    """``yolocli detect --ray``: `run` gives a `yolocli.run.pipeline.Result` per input, like
    `yolocli.run.pipeline.Pipeline.run`, with the images processed on the cluster.

    This process plans output names, answers what needs no network (errors, ``--skip-existing``)
    and writes output files through ``outputs`` (an `yolocli.io.outputs.Outputs`, or a
    `yolocli.io.remote.UriOutputs`); records come out in input order unless ``ordered`` is False.
    An image that comes back twice (a retried batch) is delivered once.
    """

    plan: Plan
    outputs: Any
    options: Options
    filesystem: Any = None  # pyarrow's, for every Item path (None: local files)
    actors: int | None = None
    threads: int = 1
    ordered: bool = True
    batch_size: int = BATCH_SIZE
    udf: type = Detect  # the callable class (a subclass of `Detect`)
    engine: str = ""
    submitted: int = 0
    duplicates: int = 0

    @property
    def names(self) -> list[str]:
        return self.plan.info.class_names

    def _early(self, item: Item, targets: Targets) -> Result | None:
        source = item.source
        if source.error or targets.error:
            return Result(source, error=source.error or targets.error)
        done = self.outputs.done_before(source)
        if done is not None:
            return Result(source, skipped=True, outputs=done)
        if source.is_video:
            return Result(source, error="videos, cameras and streams do not run on --ray")
        if item.path is None:
            return Result(source, error="image bytes on stdin do not run on --ray: pass a path")
        if item.size is not None and item.size > self.options.max_bytes:
            return Result(source, error=over_limit(item.size, self.options.max_bytes))
        return None

    def _dataset(self, paths: list[str]) -> Any:
        """The cluster's part: read ``paths`` where they are processed, one result row each."""
        ray = require_ray()
        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = self.ordered
        size = self.actors or pool_size(cluster_cpus(), self.threads)
        self.engine = f"Ray Data, {size} actor(s) of {self.threads} engine thread(s)"
        # at least a block per actor; at most four each (more only adds scheduling)
        blocks = max(min(len(paths), size), min(-(-len(paths) // BATCH_SIZE), 4 * size))
        return detect(
            listing(paths, blocks), self.plan, actors=size, threads=self.threads,
            filesystem=self.filesystem,
            max_bytes=self.options.max_bytes, max_pixels=self.options.max_pixels,
            kinds=self.outputs.options.kinds, save_conf=self.outputs.options.save_conf,
            slicer=self.options.slicer, batch_size=self.batch_size, udf=self.udf,
        )  # fmt: skip

    def write(self, items: Iterable[Item], uri: str, fmt: str) -> tuple[int, list[Result]]:
        """``--records-to``: every record written by the cluster below ``uri`` (`write_records`;
        inputs answered here, errors and skips, join them). Returns (images sent to the
        cluster, the results answered here)."""
        ray = require_ray()
        from yolocli.io.formats import to_json

        early: list[Result] = []
        pairs: list[tuple[str, str]] = []
        paths: list[str] = []
        for item in items:
            result = self._early(item, self.outputs.plan(item.source))
            if result is not None:
                early.append(result)
            else:
                assert item.path is not None
                paths.append(item.path)
                pairs.append((item.path, item.source.name))
        model = self.plan.info.name
        parts = []
        if paths:
            parts.append(to_records(self._dataset(paths), model, self.names, names_for(pairs)))
        if early:
            lines = [{"text": to_json(r.record(model))} for r in early]
            parts.append(ray.data.from_items(lines))
        if parts:
            write_records(parts[0].union(*parts[1:]) if len(parts) > 1 else parts[0], uri, fmt)
        return len(paths), early

    def run(self, items: Iterable[Item]) -> Iterator[Result]:
        """Results (see the class); the cluster starts once every input has been listed."""
        order: list[int] = []
        finished: dict[int, Result] = {}
        waiting: dict[str, deque[int]] = {}
        held: dict[int, tuple[Source, Targets]] = {}
        paths: list[str] = []
        for index, item in enumerate(items):
            order.append(index)
            targets = self.outputs.plan(item.source)
            early = self._early(item, targets)
            if early is not None:
                finished[index] = early
                continue
            assert item.path is not None
            held[index] = (item.source, targets)
            waiting.setdefault(item.path, deque()).append(index)
            paths.append(item.path)
        self.submitted = len(paths)
        next_out = 0

        def ready() -> Iterator[Result]:
            nonlocal next_out
            if not self.ordered:
                for index in list(finished):
                    yield finished.pop(index)
                return
            while next_out < len(order) and order[next_out] in finished:
                yield finished.pop(order[next_out])
                next_out += 1

        yield from ready()
        if not paths:
            return
        ds = self._dataset(paths)
        batches = ds.iter_batches(batch_size=None, batch_format="pyarrow", prefetch_batches=2)
        try:
            for table in batches:
                for row in table.to_pylist():
                    queue = waiting.get(row["path"])
                    if not queue:
                        self.duplicates += 1  # a retried batch: delivered already
                        continue
                    index = queue.popleft()
                    source, targets = held.pop(index)
                    finished[index] = self._finish(source, targets, row)
                yield from ready()
        finally:
            close: Callable[[], None] | None = getattr(batches, "close", None)
            if close is not None:
                close()  # an interrupted run stops the cluster's work now
        if held:  # Ray finished without these: say so in their records rather than drop them
            for index, (source, _) in list(held.items()):
                finished[index] = Result(source, error="the cluster returned no result for it")
        yield from ready()

    def _finish(self, source: Source, targets: Targets, row: dict[str, Any]) -> Result:
        result = _result(source, row, self.names)
        if result.error is None:
            rendered = _rendered(row)
            store(result, lambda: self.outputs.write(source, targets, rendered))
        return result


__all__ = [
    "Detect",
    "Item",
    "Names",
    "RayRun",
    "connect",
    "detect",
    "disconnect",
    "listing",
    "local_items",
    "names_for",
    "read",
    "record_of",
    "result_schema",
    "to_records",
    "uri_items",
    "write_records",
]
