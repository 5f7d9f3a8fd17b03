"""PyTorch: the darknet network as a `torch.nn.Module`, on an NVIDIA GPU (or the CPU).

The module is built from the cfg and the weights file directly, layer by layer as
`families.darknet.compiler` compiles them (batch norm folded with darknet's formula and epsilon,
darknet's max-pool padding, the same activations), and ends at the same raw heads. Building
it from darknet rather than converting the ONNX graph needs no converter package and no
compiled graph on disk. PyTorch is the GPU engine because it is what a ``pip install`` gives
with CUDA and cuDNN on Linux, and because the GPU letterbox and nvJPEG decoding
(`yolocli.engines.gpu_letterbox`) need it anyway: one package feeds and runs the GPU.

Devices: ``cuda`` (float32), ``cuda-fp16`` (float16 weights and activations; scores move
slightly), and ``cpu`` (for tests, and for machines with PyTorch but no other engine).
Channels-last memory layout throughout, which cuDNN's fastest convolutions want.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import nn

from yolocli.engines import Graph
from yolocli.engines.devices import torch_cuda_problem
from yolocli.errors import DeviceError, EngineError, ModelError
from yolocli.families.darknet import cfg as darknet
from yolocli.families.darknet import compiler
from yolocli.recipe import Recipe

DEVICES = ("cpu", "cuda", "cuda-fp16")

_Act = Callable[[torch.Tensor], torch.Tensor]


def _activation(kind: str, index: int) -> _Act:
    """darknet's activation ``kind`` as the compiler writes it (`compiler.LEAKY_SLOPE`, ...)."""
    if kind == "linear":
        return lambda x: x
    if kind == "leaky":
        return lambda x: F.leaky_relu(x, compiler.LEAKY_SLOPE, inplace=True)
    if kind == "logistic":
        return torch.sigmoid
    if kind == "mish":
        return F.mish
    if kind == "swish":
        return F.silu
    raise ModelError(f"layer {index}: activation={kind} is not supported by the torch engine")


def fold(
    params: darknet.ConvWeights, recipe: Recipe | None = None
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """A convolution's (weights, biases) with its batch norm folded in by ``recipe``'s
    formula (default: pjreddie's), exactly as `yolocli.families.darknet.compiler` folds it."""
    return (recipe or Recipe()).fold_bn(params)


class _Conv(nn.Module):
    def __init__(
        self, layer: darknet.Layer, params: darknet.ConvWeights, index: int, recipe: Recipe
    ) -> None:
        super().__init__()
        opts = layer.section.options
        size = int(opts["size"])
        padding = size // 2 if int(opts.get("pad", "0")) else int(opts.get("padding", "0"))
        weights, biases = fold(params, recipe)
        self.conv = nn.Conv2d(
            weights.shape[1] * int(opts.get("groups", "1")),
            weights.shape[0],
            size,
            stride=int(opts.get("stride", "1")),
            padding=padding,
            groups=int(opts.get("groups", "1")),
            bias=True,
        )
        assert self.conv.bias is not None
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor(weights))
            self.conv.bias.copy_(torch.tensor(biases))
        self.act = _activation(opts.get("activation", "linear"), index)

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        return self.act(self.conv(xs[0]))


class _MaxPool(nn.Module):
    def __init__(self, layer: darknet.Layer) -> None:
        super().__init__()
        opts = layer.section.options
        self.size, self.stride = int(opts["size"]), int(opts["stride"])
        # darknet pads `padding` (default size - 1) in all: padding / 2 before, the rest after
        padding = int(opts.get("padding", str(self.size - 1)))
        before, after = padding // 2, padding - padding // 2
        self.pads = (before, after, before, after)

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        x = xs[0]
        if any(self.pads):
            x = F.pad(x, self.pads, value=float("-inf"))  # darknet never takes a pad's value
        return F.max_pool2d(x, self.size, self.stride)


class _Upsample(nn.Module):
    def __init__(self, layer: darknet.Layer) -> None:
        super().__init__()
        self.stride = int(layer.section.options["stride"])

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        return F.interpolate(xs[0], scale_factor=self.stride, mode="nearest")


class _Route(nn.Module):
    def __init__(self, layer: darknet.Layer, network: darknet.Network) -> None:
        super().__init__()
        opts = layer.section.options
        groups, group_id = int(opts.get("groups", "1")), int(opts.get("group_id", "0"))
        # darknet copies the group_id-th of `groups` equal channel slices of each input
        self.slices = [
            (group_id * (c := network.layers[j].shape[0] // groups), (group_id + 1) * c)
            for j in layer.inputs
        ]
        self.sliced = groups > 1

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        if self.sliced:
            xs = [x[:, a:b] for x, (a, b) in zip(xs, self.slices, strict=True)]
        return xs[0] if len(xs) == 1 else torch.cat(xs, dim=1)


class _Shortcut(nn.Module):
    def __init__(self, layer: darknet.Layer, index: int) -> None:
        super().__init__()
        self.act = _activation(layer.section.options.get("activation", "linear"), index)

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        return self.act(xs[0] + xs[1])


class _AvgPool(nn.Module):
    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        return xs[0].mean(dim=(2, 3), keepdim=True)


class _Identity(nn.Module):
    """[dropout] and [yolo] at inference: the input passes on (a [yolo]'s input is a head)."""

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        return xs[0]


def _layer(
    index: int,
    layer: darknet.Layer,
    network: darknet.Network,
    convs: Iterator[darknet.ConvWeights],
    recipe: Recipe,
) -> nn.Module:
    kind = layer.section.type
    if kind == "convolutional":
        return _Conv(layer, next(convs), index, recipe)
    if kind == "maxpool":
        return _MaxPool(layer)
    if kind == "upsample":
        return _Upsample(layer)
    if kind == "route":
        return _Route(layer, network)
    if kind == "shortcut":
        return _Shortcut(layer, index)
    if kind == "avgpool":
        return _AvgPool()
    return _Identity()  # dropout, yolo (compiler.check_supported refused everything else)


class DarknetModule(nn.Module):
    """A darknet network as a module: ``(N, 3, H, W)`` float RGB in [0, 1] to the raw head
    tensors ``(N, A*(5+C), H_i, W_i)`` of its ``[yolo]`` layers, in cfg order.

    Supports what `families.darknet.compiler` supports (the same check refuses the rest with a
    `ModelError` naming the layer). Each layer's output is dropped after its last reader, so
    big batches keep only the live activations.
    """

    def __init__(
        self,
        network: darknet.Network,
        convs: list[darknet.ConvWeights],
        recipe: Recipe | None = None,
    ) -> None:
        super().__init__()
        compiler._check_supported(network)
        weights = iter(convs)
        recipe = recipe or Recipe()
        self.layers = nn.ModuleList(
            _layer(i, layer, network, weights, recipe) for i, layer in enumerate(network.layers)
        )
        self.inputs = [list(layer.inputs) for layer in network.layers]
        self.heads = [layer.inputs[0] for layer in network.layers if layer.section.type == "yolo"]
        last_use: dict[int, int] = {}
        for i, reads in enumerate(self.inputs):
            for j in reads:
                last_use[j] = i
        self.release: list[list[int]] = [[] for _ in network.layers]
        for j, i in last_use.items():
            if j not in self.heads:
                self.release[i].append(j)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs: list[torch.Tensor | None] = []
        for i, layer in enumerate(self.layers):
            reads = self.inputs[i]
            xs = [_live(outs[j]) for j in reads] if reads else [x]
            outs.append(layer(xs))
            for j in self.release[i]:
                outs[j] = None
        return [_live(outs[j]) for j in self.heads]


def _live(value: torch.Tensor | None) -> torch.Tensor:
    assert value is not None, "a layer output was released before its last reader"
    return value


def build_module(
    network: darknet.Network, weights: Path, recipe: Recipe | None = None
) -> DarknetModule:
    """The `DarknetModule` of ``network`` with the parameters of darknet weights file
    ``weights`` (checked against the cfg's layout first; batch norm folded as ``recipe``
    says), on the CPU in float32."""
    convs = darknet.read_weights(network, weights)
    return DarknetModule(network, convs, recipe).eval()


class TorchEngine:
    """A `DarknetModule` on a torch device. ``forward`` takes and gives NumPy (the engine
    protocol); ``forward_tensors`` keeps everything on the device, for a GPU pipeline that
    letterboxes there (`yolocli.engines.gpu_letterbox`) and decodes later."""

    def __init__(self, graph: Graph, device: str = "cpu", threads: int | None = None) -> None:
        if device not in DEVICES:
            raise EngineError(
                f"the torch engine runs on {', '.join(map(repr, DEVICES))}, not {device!r}"
            )
        if device.startswith("cuda"):
            problem = torch_cuda_problem()
            if problem:
                raise DeviceError(f"device {device!r}: {problem}; or run on the CPU")
        elif threads is not None:
            torch.set_num_threads(threads)  # process-wide, like OpenCV's setting
        network = graph.network
        if network is None:
            raise EngineError(
                "the torch engine runs darknet networks only; an ONNX model runs on "
                "onnxruntime, openvino or opencv (--backend)"
            )
        if (graph.width, graph.height) != (network.width, network.height):
            network = darknet.resized(network, graph.width, graph.height)
        self.device = torch.device("cuda" if device.startswith("cuda") else "cpu")
        self.dtype = torch.float16 if device == "cuda-fp16" else torch.float32
        self.module = build_module(network, graph.weights, graph.recipe).to(self.device, self.dtype)
        for layer in self.module.modules():
            if isinstance(layer, nn.Conv2d):  # channels-last kernels, as cuDNN likes them
                layer.weight.data = layer.weight.data.contiguous(memory_format=torch.channels_last)
        if self.device.type == "cuda":
            # fixed input sizes: let cuDNN pick each convolution's fastest algorithm once
            torch.backends.cudnn.benchmark = True
            where = f"{torch.cuda.get_device_name(self.device)}, {device}"
        else:
            where = f"cpu, {torch.get_num_threads()} threads"
        self.name = f"PyTorch {torch.__version__} ({where})"

    @torch.inference_mode()
    def forward_tensors(self, batch: torch.Tensor) -> list[torch.Tensor]:
        """The raw heads, float32 on the engine's device, for a ``(N, 3, H, W)`` float
        tensor (on any device; moved to the engine's)."""
        x = batch.to(self.device, self.dtype, non_blocking=True)
        x = x.contiguous(memory_format=torch.channels_last)
        return [h.float() for h in self.module(x)]

    def forward(self, blobs: npt.NDArray[np.float32]) -> list[npt.NDArray[np.float32]]:
        heads = self.forward_tensors(torch.from_numpy(np.ascontiguousarray(blobs, np.float32)))
        # contiguous NCHW NumPy arrays, as every other engine returns
        return [np.ascontiguousarray(h.cpu().numpy()) for h in heads]


def open_engine(graph: Graph, device: str, threads: int | None) -> TorchEngine:
    return TorchEngine(graph, device, threads)
