"""OpenVINO: the compiled ONNX graph on Intel's CPU runtime (it runs on AMD CPUs too).

Installed with ``pip install 'yolocli[openvino]'``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import openvino as ov

from yolocli.engines import Graph
from yolocli.errors import ModelError


class OpenVinoEngine:
    """A compiled OpenVINO model over the ONNX graph; the batch size stays dynamic."""

    def __init__(self, graph: Graph, device: str = "cpu", threads: int | None = None) -> None:
        core = ov.Core()
        # f32: OpenVINO's CPU plugin otherwise picks bf16 where it can, which moved raw heads
        # by up to 0.56 and a reference score by 0.014 (tests/test_engines.py); bf16 only
        # when asked for (--precision bf16, checked in yolocli.engines.precision).
        bf16 = graph.precision == "bf16"
        config: dict[str, object] = {
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": "bf16" if bf16 else "f32",
        }
        if threads is not None:
            config["INFERENCE_NUM_THREADS"] = threads
        try:
            self.model = core.compile_model(str(graph.onnx()), "CPU", config)
        except RuntimeError as err:
            raise ModelError(f"OpenVINO cannot load {graph.name}: {err}") from None
        self.request = self.model.create_infer_request()
        self.outputs = list(self.model.outputs)
        self.name = f"OpenVINO {ov.__version__.split('-')[0]}" + (" bf16" if bf16 else "")

    def forward(self, blobs: npt.NDArray[np.float32]) -> list[npt.NDArray[np.float32]]:
        result = self.request.infer({0: np.ascontiguousarray(blobs, dtype=np.float32)})
        return [np.array(result[o], dtype=np.float32) for o in self.outputs]


def open_engine(graph: Graph, device: str, threads: int | None) -> OpenVinoEngine:
    return OpenVinoEngine(graph, device, threads)
