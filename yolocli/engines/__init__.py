"""Engines: what runs the network. Each maps a batch of letterboxed images to the raw heads.

An engine loads a network for a device and a thread count, and maps a ``(N, 3, H, W)``
float32 batch to the raw head tensors ``(N, A*(5+C), H_i, W_i)`` of every ``[yolo]`` layer,
in cfg order. Nothing else: decoding (`families.darknet.heads`), NMS and outputs never know which
engine ran. Optional engines are imported only when asked for, with a message naming the
extra that installs them.

- ``opencv`` (always installed): OpenCV's darknet importer on OpenCV 4, the compiled ONNX
  graph on OpenCV 5;
- ``onnxruntime``: the compiled ONNX graph on ONNX Runtime (``yolocli[onnxruntime]``);
- ``openvino``: the compiled ONNX graph on OpenVINO (``yolocli[openvino]``);
- ``torch``: the darknet network as a PyTorch module, on an NVIDIA GPU or the CPU
  (``yolocli[cuda]``).

On the CPU, ``auto`` takes the first installed one of `AUTO_ORDER`, fastest first as measured
in benchmarks/RESULTS.md. On ``cuda`` and ``cuda-fp16`` it takes the torch engine when PyTorch
sees a GPU, else OpenCV (whose device check says what is missing: never a CPU fallback).
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from yolocli.errors import DeviceError, EngineError, OptionError

if TYPE_CHECKING:  # this module stays cheap to import: the command line reads its constants
    import numpy as np
    import numpy.typing as npt

    from yolocli.families.darknet import cfg as darknet
    from yolocli.models.store import Store
    from yolocli.recipe import Recipe

BACKENDS = ("auto", "opencv", "onnxruntime", "openvino", "torch")

# Fastest first on a CPU (benchmarks/RESULTS.md, "Engines"): `auto` takes the first installed.
AUTO_ORDER = ("onnxruntime", "openvino", "opencv")

# backend -> (module that must be importable, the extra that installs it)
_NEEDS = {
    "onnxruntime": ("onnxruntime", "onnxruntime"),
    "openvino": ("openvino", "openvino"),
    "torch": ("torch", "cuda"),
}
# the devices each engine runs on (the rest: the CPU only)
_DEVICES = {"opencv": ("cpu", "opencl", "cuda", "cuda-fp16"), "torch": ("cpu", "cuda", "cuda-fp16")}


@dataclass(frozen=True)
class Graph:
    """The network to run, in each form an engine may read it.

    ``onnx()`` gives the compiled ONNX file (compiled on first use and cached in the store),
    so engines that read darknet files directly never pay for compiling.
    """

    name: str
    cfg: Path | None  # None (and network None) for an ONNX model of another family
    cfg_text: str
    weights: Path
    network: darknet.Network | None
    width: int
    height: int
    onnx: Callable[[], Path]
    recipe: Recipe | None = None  # how the model runs (batch-norm formula); None: pjreddie's
    store: Store | None = None  # where an engine caches what it makes from the graph
    precision: str = (
        "fp32"  # or "int8" (onnx() is then quantized), "bf16" (yolocli.engines.precision)
    )


class Engine(Protocol):
    """A loaded network: ``forward`` maps (N, 3, H, W) float32 to the raw heads."""

    name: str  # what runs it, for --profile and messages ("onnxruntime 1.32.0", ...)

    def forward(self, blobs: npt.NDArray[np.float32]) -> list[npt.NDArray[np.float32]]: ...


def installed(backend: str) -> bool:
    """True if ``backend``'s package can be imported (without importing it)."""
    if backend == "opencv":
        return True
    module, _ = _NEEDS[backend]
    try:
        return importlib.util.find_spec(module) is not None
    except ValueError:  # sys.modules holds None for it: deliberately made unimportable
        return False


def resolve(backend: str, device: str) -> str:
    """The engine ``backend`` means here: ``auto`` becomes the fastest installed one that
    runs on ``device``; a named one must be installed (`EngineError` naming its extra)."""
    if backend not in BACKENDS:
        raise OptionError("backend", f"unknown backend {backend!r}; choose one of {BACKENDS}")
    from yolocli.engines.devices import torch_cuda_problem

    if backend == "auto":
        if device.startswith("cuda"):
            # OpenCV when PyTorch cannot: its device check then names what to install
            return "torch" if torch_cuda_problem() is None else "opencv"
        if device != "cpu":
            return "opencv"  # the only engine here with OpenCL
        return next(b for b in AUTO_ORDER if installed(b))
    if not installed(backend):
        module, extra = _NEEDS[backend]
        raise EngineError(
            f"the {backend} engine is not installed: pip install 'yolocli[{extra}]' "
            f"(it needs the {module} package)"
        )
    runs_on = _DEVICES.get(backend, ("cpu",))
    if device not in runs_on:
        where = "the CPU here" if runs_on == ("cpu",) else ", ".join(map(repr, runs_on))
        raise EngineError(f"the {backend} engine runs on {where}, not on {device!r}")
    if backend == "torch" and device.startswith("cuda"):
        problem = torch_cuda_problem()
        if problem:  # before any download, like OpenCV's device check
            raise DeviceError(f"device {device!r}: {problem}; or run on the CPU")
    return backend


def open_engine(
    backend: str, graph: Graph, device: str = "cpu", threads: int | None = None
) -> Engine:
    """Load ``graph`` on the engine ``backend`` (see `resolve`) for ``device``.

    ``threads``: how many threads the engine may use for one forward pass (None: its default,
    usually every core). Parallel workers each open an engine with a share of the cores.
    """
    if threads is not None and threads < 1:
        raise OptionError("threads", f"must be >= 1, got {threads}")
    name = resolve(backend, device)
    module = importlib.import_module(f"yolocli.engines.{name}")
    opener: Callable[[Graph, str, int | None], Engine] = module.open_engine
    return opener(graph, device, threads)


__all__ = ["AUTO_ORDER", "BACKENDS", "Engine", "Graph", "installed", "open_engine", "resolve"]
