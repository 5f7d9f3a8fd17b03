"""ONNX Runtime: the compiled ONNX graph on its CPU execution provider.

Measured faster than OpenCV on the same graph (benchmarks/RESULTS.md), so ``auto`` picks it
when it is installed (``pip install 'yolocli[onnxruntime]'``).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from yolocli.engines import Graph
from yolocli.errors import ModelError


class OnnxRuntimeEngine:
    """An `onnxruntime.InferenceSession` over the compiled graph."""

    def __init__(self, graph: Graph, device: str = "cpu", threads: int | None = None) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or 0  # 0: one per physical core
        options.inter_op_num_threads = 1  # the graph is a chain: no parallel branches to run
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(
                str(graph.onnx()), options, providers=["CPUExecutionProvider"]
            )
        except Exception as err:  # ORT raises its own exception types for a bad graph
            raise ModelError(f"ONNX Runtime cannot load {graph.name}: {err}") from None
        self.input = self.session.get_inputs()[0].name
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.name = f"ONNX Runtime {ort.__version__}"

    def forward(self, blobs: npt.NDArray[np.float32]) -> list[npt.NDArray[np.float32]]:
        feed = {self.input: np.ascontiguousarray(blobs, dtype=np.float32)}
        return [np.asarray(o) for o in self.session.run(self.outputs, feed)]


def open_engine(graph: Graph, device: str, threads: int | None) -> OnnxRuntimeEngine:
    return OnnxRuntimeEngine(graph, device, threads)
