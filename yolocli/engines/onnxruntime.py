"""ONNX Runtime: the compiled ONNX graph on its CPU execution provider.

Measured faster than OpenCV on the same graph (benchmarks/RESULTS.md), so ``auto`` picks it
when it is installed (``pip install 'yolocli[onnxruntime]'``).

ONNX Runtime optimizes a graph every time it opens it (fusions, and on x86 its blocked NCHWc
layout): for yolov3-tiny that is most of a session's set-up, paid again by every run and
every worker process. The optimized graph is therefore made once and kept in the model store
beside the compiled one, keyed by the compiled graph, the ONNX Runtime version and the CPU's
instruction sets (the blocked layout is specific to them), and later sessions open it with
optimizations off: the same operators, the same numbers, a fraction of the start-up.

It is kept packed (`_pack`): the graph's structure first, then its weights as ONNX external
data in the same file, so that ONNX Runtime maps the weights from the file instead of parsing
and copying them. Opening yolov3-tiny's session took 5 ms instead of 55-65 ms (18,800 page
faults of fresh memory fewer), and worker processes share the weights' pages.
"""

from __future__ import annotations

import hashlib
import logging
import struct
import tempfile
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from yolocli.engines import Graph
from yolocli.errors import ModelError

log = logging.getLogger(__name__)

_ERRORS_ONLY = 3  # ORT's log severity: it warns, rightly, that the optimized graph is CPU-bound


class OnnxRuntimeEngine:
    """An `onnxruntime.InferenceSession` over the compiled graph."""

    def __init__(self, graph: Graph, device: str = "cpu", threads: int | None = None) -> None:
        self.threads = threads
        path = graph.onnx()
        session = None
        optimized = _optimized(graph, path, threads)
        if optimized is not None:
            try:
                session = _open_packed(optimized, threads)
            except Exception:  # a stale or foreign cache entry: the graph itself still works
                log.debug("cannot open the optimized graph %s", optimized, exc_info=True)
        if session is None:
            try:
                session = self._session(path, optimize=True)
            except Exception as err:  # ORT raises its own exception types for a bad graph
                raise ModelError(f"ONNX Runtime cannot load {graph.name}: {err}") from None
        self.session = session
        self.input = self.session.get_inputs()[0].name
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.name = f"ONNX Runtime {ort.__version__}"
        if graph.precision == "int8":
            self.name += " int8"

    def _session(
        self, path: Path, *, optimize: bool, save: Path | None = None
    ) -> ort.InferenceSession:
        return ort.InferenceSession(
            str(path), session_options(self.threads, optimize, save), providers=_PROVIDERS
        )

    def forward(self, blobs: npt.NDArray[np.float32]) -> list[npt.NDArray[np.float32]]:
        feed = {self.input: np.ascontiguousarray(blobs, dtype=np.float32)}
        return [np.asarray(o) for o in self.session.run(self.outputs, feed)]


_PROVIDERS = ["CPUExecutionProvider"]


def session_options(
    threads: int | None, optimize: bool = True, save: Path | None = None
) -> ort.SessionOptions:
    """yolocli's session settings: ``threads`` intra-op threads (None: one per physical
    core), one inter-op thread (the graph is a chain), every optimization when ``optimize``
    (off for a graph optimized before), the optimized graph written to ``save`` if given."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or 0  # 0: one per physical core
    options.inter_op_num_threads = 1  # the graph is a chain: no parallel branches to run
    options.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if optimize
        else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    )
    if save is not None:
        options.optimized_model_filepath = str(save)
        options.log_severity_level = _ERRORS_ONLY
    return options


def _optimized(graph: Graph, path: Path, threads: int | None) -> Path | None:
    """The store's copy of ``path`` as ONNX Runtime optimizes it for this CPU (made now if
    missing), or None if it cannot be kept (a read-only store: the caller optimizes as usual)."""
    from yolocli.engines.devices import cpu_flags
    from yolocli.models.store import Store

    try:
        st = path.stat()
        where = str(path.resolve())
    except OSError:
        return None
    # The file by place, size and time (a compiled graph's name also holds its inputs' hash;
    # an ONNX model of the user's is not hashed at every start), this ONNX Runtime, this CPU.
    key = "\n".join(
        (where, str(st.st_size), str(st.st_mtime_ns), ort.__version__,
         " ".join(sorted(cpu_flags())), "ENABLE_ALL", _MAGIC.decode("ascii"))
    )  # fmt: skip
    name, digest = f"{path.stem}.ort.bin", hashlib.sha256(key.encode()).hexdigest()

    def build() -> bytes:
        with tempfile.TemporaryDirectory(prefix="yolocli-ort-") as tmp:
            out = Path(tmp) / "optimized.onnx"
            options = session_options(threads, True, out)
            options.add_session_config_entry(
                "session.optimized_model_external_initializers_file_name", "weights.bin"
            )
            ort.InferenceSession(str(path), options, providers=_PROVIDERS)
            return _pack(out, out.with_name("weights.bin"), store.derived_path(name, digest).name)

    try:
        store = graph.store or Store.from_env()
        # only a speed-up: a store that cannot keep it gets no private copy (worker
        # processes, which exit without cleaning up, would each leave one behind)
        return store.derived(name, digest, build, private=False)
    except Exception:  # never worse than no cache: the plain graph opens below
        log.debug("cannot cache ONNX Runtime's optimized graph", exc_info=True)
        return None


# A packed graph: these 16 bytes, the graph's length (8 bytes, little-endian), the graph
# (ONNX, its weights as external data in this same file), zeros up to a multiple of _ALIGN,
# then the weights at the offsets the graph gives.
_MAGIC = b"yolocli-ortpack1"
_ALIGN = 1 << 16  # every page size in use: the weights stay page-aligned for mapping


def _pack(model: Path, weights: Path, name: str) -> bytes:
    """ONNX Runtime's optimized graph ``model``, whose large weights it wrote to ``weights``,
    as one file that will be called ``name``: the graph's external data entries are pointed
    at that file, past the graph itself."""
    import onnx  # only here: tens of milliseconds to import, and packing is done once

    data = weights.read_bytes() if weights.exists() else b""
    head = _ALIGN
    while True:  # a longer graph than the room left for it: more room, offsets moved again
        graph = onnx.load(str(model), load_external_data=False)
        for tensor in graph.graph.initializer:
            if tensor.data_location != onnx.TensorProto.EXTERNAL:
                continue
            entries = {e.key: e for e in tensor.external_data}
            entries["location"].value = name
            if "offset" not in entries:  # (no offset: the file's start)
                entries["offset"] = tensor.external_data.add(key="offset", value="0")
            entries["offset"].value = str(int(entries["offset"].value) + head)
        proto: bytes = graph.SerializeToString()
        used = len(_MAGIC) + 8 + len(proto)
        if used <= head:
            return _MAGIC + struct.pack("<Q", len(proto)) + proto + bytes(head - used) + data
        head = -(-used // _ALIGN) * _ALIGN


def _open_packed(packed: Path, threads: int | None) -> ort.InferenceSession:
    """A session of a `_pack`ed graph, its weights mapped from the file, unoptimized."""
    with open(packed, "rb") as f:
        head = f.read(len(_MAGIC) + 8)
        if len(head) < len(_MAGIC) + 8 or head[: len(_MAGIC)] != _MAGIC:
            raise ValueError(f"{packed} is not a packed graph")
        (length,) = struct.unpack("<Q", head[len(_MAGIC) :])
        proto = f.read(length)
    options = session_options(threads, optimize=False)
    options.add_session_config_entry(
        "session.model_external_initializers_file_folder_path", str(packed.parent)
    )
    return ort.InferenceSession(proto, options, providers=_PROVIDERS)


def open_engine(graph: Graph, device: str, threads: int | None) -> OnnxRuntimeEngine:
    return OnnxRuntimeEngine(graph, device, threads)


__all__ = ["OnnxRuntimeEngine", "open_engine", "session_options"]
