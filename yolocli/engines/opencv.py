"""OpenCV's DNN module: the darknet importer where it exists (OpenCV 4), else the compiled
ONNX graph (OpenCV 5 removed the darknet importer).

Either way the engine returns the raw heads: with the darknet importer, the outputs of the
layers that feed each ``[yolo]`` layer, so OpenCV's own ``[yolo]`` decoding (and its score
threshold in the cfg) never runs.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator

import cv2
import numpy as np
import numpy.typing as npt

from yolocli.engines import Graph
from yolocli.engines.devices import check_device
from yolocli.errors import ModelError
from yolocli.recipe import Recipe

_TARGETS = {
    "cpu": (cv2.dnn.DNN_BACKEND_OPENCV, cv2.dnn.DNN_TARGET_CPU),
    "opencl": (cv2.dnn.DNN_BACKEND_OPENCV, cv2.dnn.DNN_TARGET_OPENCL),
    "cuda": (cv2.dnn.DNN_BACKEND_CUDA, cv2.dnn.DNN_TARGET_CUDA),
    "cuda-fp16": (cv2.dnn.DNN_BACKEND_CUDA, cv2.dnn.DNN_TARGET_CUDA_FP16),
}


def has_darknet_importer() -> bool:
    return hasattr(cv2.dnn, "readNetFromDarknet")


def uses_darknet_importer(recipe: Recipe | None) -> bool:
    """True if OpenCV reads the darknet files itself for a model with this recipe: on
    OpenCV 4, for pjreddie's flavour. Its importer folds batch norm its own way, 1e-4 from
    pjreddie's formula but 4e-3 from AlexeyAB's, so AlexeyAB models run the compiled graph."""
    return has_darknet_importer() and (recipe is None or recipe.bn == "pjreddie")


class OpenCVEngine:
    """A `cv2.dnn.Net` answering with the raw heads."""

    def __init__(self, graph: Graph, device: str = "cpu", threads: int | None = None) -> None:
        check_device(device)
        if threads is not None:  # process-wide: OpenCV has no per-network setting
            # One thread is 0, "run sequentially", as 1 is; but 1 stops OpenCV's pool, and in
            # a forked process whose parent had run the pool that hung (OpenCV 4.14 and 5.1).
            cv2.setNumThreads(0 if threads == 1 else threads)
        if uses_darknet_importer(graph.recipe):
            self.net = _read_darknet(graph)
            self.outputs = raw_head_layers(self.net)
            self.name = f"OpenCV {cv2.__version__} (darknet importer)"
        else:
            self.net = cv2.dnn.readNetFromONNX(str(graph.onnx()))
            self.outputs = list(self.net.getUnconnectedOutLayersNames())
            self.name = f"OpenCV {cv2.__version__} (compiled ONNX)"
        backend, target = _TARGETS[device]
        with _opencv_quiet():  # OpenCV 5: "[ WARN:0@0.2] ... setPreferableTarget Targets are
            # not supported by the new graph engine for now", on the CPU, which it runs on anyway
            self.net.setPreferableBackend(backend)
            self.net.setPreferableTarget(target)

    def forward(self, blobs: npt.NDArray[np.float32]) -> list[npt.NDArray[np.float32]]:
        self.net.setInput(blobs)
        outs = self.net.forward(self.outputs)
        return [np.asarray(o, dtype=np.float32) for o in outs]


@contextlib.contextmanager
def _opencv_quiet() -> Iterator[None]:
    """OpenCV's own log (printed on stderr, tied to no call of ours) down to errors, for a
    block whose warnings say nothing to a user of yolocli."""
    logging = getattr(cv2, "utils", None) and getattr(cv2.utils, "logging", None)
    if logging is None:  # a build without it
        yield
        return
    previous = logging.getLogLevel()
    logging.setLogLevel(min(previous, logging.LOG_LEVEL_ERROR))
    try:
        yield
    finally:
        logging.setLogLevel(previous)


def raw_head_layers(net: cv2.dnn.Net) -> list[str]:
    """Names of the layers whose outputs are the raw heads, in cfg order.

    OpenCV's darknet importer turns each ``[yolo]`` section into ``permute_<k>`` then
    ``yolo_<k>``; the layer just before the permute is the convolution feeding it.
    """
    names = list(net.getLayerNames())
    heads = [names[i - 1] for i, name in enumerate(names) if name.startswith("permute_")]
    if not heads:
        raise ModelError("this network has no [yolo] layer: nothing to detect with")
    return heads


def _read_darknet(graph: Graph) -> cv2.dnn.Net:
    """Load a darknet network from cfg text and a weights file (via a temporary cfg file:
    OpenCV reads files several times faster than the same cfg from a memory buffer)."""
    fd, tmp = tempfile.mkstemp(prefix="yolocli-", suffix=".cfg")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(graph.cfg_text)
        # looked up by name: OpenCV 5 (and its type stubs) no longer has it
        read: Callable[[str, str], cv2.dnn.Net] = getattr(cv2.dnn, "readNetFromDarknet")  # noqa: B009
        return read(tmp, str(graph.weights))
    except cv2.error as err:
        first = str(err).strip().splitlines()[-1] if str(err).strip() else "unknown error"
        raise ModelError(f"OpenCV cannot load {graph.weights.name}: {first}") from None
    finally:
        os.unlink(tmp)


def open_engine(graph: Graph, device: str, threads: int | None) -> OpenCVEngine:
    return OpenCVEngine(graph, device, threads)
