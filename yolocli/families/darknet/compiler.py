"""A darknet network (cfg + weights) compiled to an ONNX graph that ends at the raw YOLO heads.

The graph takes `INPUT`, a float32 ``(N, 3, H, W)`` batch of RGB in [0, 1] (exactly the blob
`families.darknet.letterbox` letterboxes), and returns one output per ``[yolo]`` layer, in cfg order
(`head_names`): the ``(N, A * (5 + C), H_i, W_i)`` tensor feeding that layer, before any
sigmoid. Decoding (sigmoid, anchors, ``scale_x_y``) is `families.darknet.heads`' business, so every
engine that runs the graph hands the same numbers to the same NumPy decode.

Each layer becomes the ONNX operators that compute what darknet computes at inference:
batch norm is folded into the convolution with darknet's own formula and epsilon, max-pool
padding is split as darknet splits it, and anything the compiler does not implement is a
`ModelError` naming the layer rather than a graph that silently computes something else.
Only ``onnx.helper`` is used; the weights are read with NumPy in one memory map.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper

from yolocli.errors import ModelError, OptionError
from yolocli.families.darknet import cfg as darknet
from yolocli.recipe import Recipe

INPUT = "images"
# 13 is old enough for every engine yolocli targets (OpenCV 4.x/5.x's ONNX importer, ONNX
# Runtime, OpenVINO) and has all the operators needed; 18 and later use the fused Mish.
OPSET = 13
MIN_OPSET = 13
# Batch norm is folded by the model's recipe (yolocli.recipe: pjreddie's formula or
# AlexeyAB's); OpenCV's darknet importer uses sqrt(variance + 1e-6), neither of the two.
LEAKY_SLOPE = 0.1
_PROTOBUF_LIMIT = 2**31 - 1
# Options that change what a layer computes at inference but that the compiler does not
# implement, with the value that means "off" (darknet.py already refuses others).
_UNSUPPORTED: dict[str, dict[str, str]] = {
    "upsample": {"scale": "1"},
    "shortcut": {"alpha": "1", "beta": "1"},
}


def head_names(network: darknet.Network) -> list[str]:
    """The graph's output names, one per ``[yolo]`` layer in cfg order: head_0, head_1, ..."""
    count = sum(1 for layer in network.layers if layer.section.type == "yolo")
    return [f"head_{k}" for k in range(count)]


def compile_onnx(
    network: darknet.Network,
    weights: Path,
    *,
    size: tuple[int, int] | None = None,
    opset: int = OPSET,
    recipe: Recipe | None = None,
) -> onnx.ModelProto:
    """The ONNX model of ``network`` with the parameters in darknet weights file ``weights``.

    Batch norm is folded as ``recipe`` says (`yolocli.recipe.Recipe.fold_bn`; default:
    pjreddie's formula, as the darknet that made yolov3 computes it).

    ``size`` is the input's (width, height), multiples of 32 (default: the cfg's); the batch
    dimension is dynamic (``N``). Deterministic: the same inputs give the same bytes.
    Raises `ModelError` for weights that do not fit the network or a layer the compiler does
    not support, `OptionError` for a bad ``size`` or ``opset``.
    """
    if opset < MIN_OPSET:
        raise OptionError("opset", f"must be at least {MIN_OPSET}, not {opset}")
    if size is not None:
        width, height = size
        for value in size:
            if not (0 < value <= darknet.MAX_SIDE and value % 32 == 0):
                raise OptionError(
                    "size",
                    f"width and height must be multiples of 32 from 32 to {darknet.MAX_SIDE}, "
                    f"not {width}x{height}",
                )
        if (width, height) != (network.width, network.height):
            network = darknet.resized(network, width, height)
    _check_supported(network)
    convs = darknet.read_weights(network, weights)
    graph = _Builder(network, opset, recipe or Recipe())
    graph.build(convs)
    return graph.model()


def _where(index: int, layer: darknet.Layer, key: str | None = None) -> str:
    """Where a problem is: the cfg line (of option ``key`` if given), the layer's index."""
    sec = layer.section
    line = sec.lines.get(key, sec.line) if key else sec.line
    return f"cfg line {line}: layer {index} [{darknet.excerpt(sec.type)}]"


def _check_supported(network: darknet.Network) -> None:
    """A `ModelError` for the first layer type or option the compiler cannot translate."""
    if not any(layer.section.type == "yolo" for layer in network.layers):
        raise ModelError("the network has no [yolo] layer: there is no output to compile")
    for index, layer in enumerate(network.layers):
        sec = layer.section
        if sec.type not in _LAYERS:
            raise ModelError(
                f"{_where(index, layer)}: this layer type is not supported by the ONNX compiler"
            )
        for key, off in _UNSUPPORTED.get(sec.type, {}).items():
            value = sec.options.get(key)
            if value is not None and _number(value) != float(off):
                raise ModelError(
                    f"{_where(index, layer, key)}: {key}={darknet.excerpt(value)} "
                    "is not supported by the ONNX compiler"
                )
        for j in layer.inputs:
            if network.layers[j].section.type == "yolo":
                raise ModelError(
                    f"{_where(index, layer)}: reads the output of [yolo] layer {j}, which the "
                    "ONNX compiler does not compute (its outputs are the raw heads)"
                )
        if sec.type == "shortcut":
            c = network.layers[layer.inputs[0]].shape[0]
            c_from = network.layers[layer.inputs[1]].shape[0]
            if c != c_from:
                raise ModelError(
                    f"{_where(index, layer)}: adds layer {layer.inputs[1]}'s {c_from} channels "
                    f"to {c}: unequal channel counts are not supported by the ONNX compiler"
                )
        if sec.type == "maxpool":
            size = int(sec.options["size"])
            padding = int(sec.options.get("padding", size - 1))
            if padding - padding // 2 >= size:
                raise ModelError(
                    f"{_where(index, layer, 'padding')}: padding={padding} is not supported "
                    f"by the ONNX compiler (ONNX pads less than the window, size={size})"
                )


def _number(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        return float("nan")


@dataclass
class _Builder:
    """Nodes and initializers of one graph, named after darknet's layer indices."""

    network: darknet.Network
    opset: int
    recipe: Recipe
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    # Parameters go straight into the model being built: copying a ModelProto or GraphProto
    # copies every byte of its tensors (make_graph and make_model would make two more copies).
    proto: onnx.ModelProto = field(default_factory=onnx.ModelProto)
    outputs: list[str] = field(default_factory=list)  # per layer: its output tensor
    heads: list[str] = field(default_factory=list)
    head_shapes: list[tuple[int, int, int]] = field(default_factory=list)

    def const(self, name: str, array: npt.NDArray[np.generic]) -> str:
        tensor = self.proto.graph.initializer.add()
        tensor.name = name
        tensor.data_type = helper.np_dtype_to_tensor_dtype(array.dtype)
        tensor.dims.extend(array.shape)
        tensor.raw_data = np.ascontiguousarray(array, array.dtype.newbyteorder("<")).tobytes()
        return name

    def node(self, op: str, inputs: Sequence[str], output: str, **attrs: Any) -> str:
        self.nodes.append(helper.make_node(op, list(inputs), [output], name=output, **attrs))
        return output

    def build(self, convs: list[darknet.ConvWeights]) -> None:
        heads = head_names(self.network)
        feeds: dict[int, list[str]] = {}  # layer index -> the heads it feeds
        yolos = [i for i, layer in enumerate(self.network.layers) if layer.section.type == "yolo"]
        for name, i in zip(heads, yolos, strict=True):
            feeds.setdefault(self.network.layers[i].inputs[0], []).append(name)
        conv_weights = iter(convs)
        for index, layer in enumerate(self.network.layers):
            src = [self.outputs[j] for j in layer.inputs] if layer.inputs else [INPUT]
            before = len(self.nodes)
            out = _LAYERS[layer.section.type](self, index, layer, src, conv_weights)
            for k, head in enumerate(feeds.get(index, [])):
                # a head must be a node's own output: rename this layer's last node if it made
                # `out` (the usual conv), else copy (a layer that passes its input on)
                last = self.nodes[-1]
                if k == 0 and len(self.nodes) > before and last.output[0] == out:
                    last.output[0] = last.name = head
                    out = head
                else:
                    self.node("Identity", [out], head)
            self.outputs.append(out)
        self.heads = heads
        self.head_shapes = [self.network.layers[i].shape for i in yolos]

    def activation(self, kind: str, x: str, index: int) -> str:
        if kind == "linear":
            return x
        out = f"{kind}_{index}"
        if kind == "leaky":
            return self.node("LeakyRelu", [x], out, alpha=LEAKY_SLOPE)
        if kind == "logistic":
            return self.node("Sigmoid", [x], out)
        if kind == "mish":
            if self.opset >= 18:
                return self.node("Mish", [x], out)
            soft = self.node("Softplus", [x], f"softplus_{index}")
            tanh = self.node("Tanh", [soft], f"tanh_{index}")
            return self.node("Mul", [x, tanh], out)
        if kind == "swish":
            sig = self.node("Sigmoid", [x], f"sigmoid_{index}")
            return self.node("Mul", [x, sig], out)
        raise ModelError(f"layer {index}: activation={kind} is not supported by the ONNX compiler")

    def model(self) -> onnx.ModelProto:
        c, h, w = self.network.channels, self.network.height, self.network.width
        model = self.proto
        total = sum(len(t.raw_data) for t in model.graph.initializer)
        if total >= _PROTOBUF_LIMIT:
            raise ModelError(
                f"the network's {total:,} bytes of parameters exceed ONNX's 2 GB single-file limit"
            )
        graph = model.graph
        graph.name = "yolocli-darknet"
        graph.node.extend(self.nodes)
        graph.input.append(helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["N", c, h, w]))
        graph.output.extend(
            helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", *shape])
            for name, shape in zip(self.heads, self.head_shapes, strict=True)
        )
        opsets = [helper.make_opsetid("", self.opset)]
        model.opset_import.extend(opsets)
        model.producer_name = "yolocli"
        # the oldest IR that carries this opset, so older runtimes load the file too
        model.ir_version = helper.find_min_ir_version_for(opsets)
        return model


def _convolutional(
    b: _Builder,
    index: int,
    layer: darknet.Layer,
    src: list[str],
    convs: Iterator[darknet.ConvWeights],
) -> str:
    params = next(convs)
    opts = layer.section.options
    size = int(opts["size"])
    stride = int(opts.get("stride", "1"))
    groups = int(opts.get("groups", "1"))
    padding = size // 2 if int(opts.get("pad", "0")) else int(opts.get("padding", "0"))
    weights, biases = b.recipe.fold_bn(params)
    w = b.const(f"conv_{index}.weight", weights)
    bias = b.const(f"conv_{index}.bias", biases)
    x = b.node(
        "Conv",
        [src[0], w, bias],
        f"conv_{index}",
        kernel_shape=[size, size],
        strides=[stride, stride],
        pads=[padding] * 4,
        group=groups,
    )
    return b.activation(opts.get("activation", "linear"), x, index)


def _maxpool(
    b: _Builder,
    index: int,
    layer: darknet.Layer,
    src: list[str],
    convs: Iterator[darknet.ConvWeights],
) -> str:
    opts = layer.section.options
    size, stride = int(opts["size"]), int(opts["stride"])
    # darknet pads `padding` (default size - 1) in all: padding / 2 before, the rest after
    padding = int(opts.get("padding", str(size - 1)))
    before, after = padding // 2, padding - padding // 2
    return b.node(
        "MaxPool",
        src,
        f"maxpool_{index}",
        kernel_shape=[size, size],
        strides=[stride, stride],
        pads=[before, before, after, after],
    )


def _upsample(
    b: _Builder,
    index: int,
    layer: darknet.Layer,
    src: list[str],
    convs: Iterator[darknet.ConvWeights],
) -> str:
    stride = float(layer.section.options["stride"])
    scales = b.const(f"upsample_{index}.scales", np.array([1, 1, stride, stride], np.float32))
    return b.node(
        "Resize",
        [src[0], "", scales],
        f"upsample_{index}",
        mode="nearest",
        coordinate_transformation_mode="asymmetric",
        nearest_mode="floor",
    )


def _route(
    b: _Builder,
    index: int,
    layer: darknet.Layer,
    src: list[str],
    convs: Iterator[darknet.ConvWeights],
) -> str:
    opts = layer.section.options
    groups, group_id = int(opts.get("groups", "1")), int(opts.get("group_id", "0"))
    parts = src
    if groups > 1:
        # darknet copies the group_id-th of `groups` equal channel slices of each input
        parts = []
        for k, (j, name) in enumerate(zip(layer.inputs, src, strict=True)):
            part = b.network.layers[j].shape[0] // groups
            tag = f"route_{index}.{k}"
            starts = b.const(f"{tag}.starts", np.array([group_id * part], np.int64))
            ends = b.const(f"{tag}.ends", np.array([(group_id + 1) * part], np.int64))
            axes = b.const(f"{tag}.axes", np.array([1], np.int64))
            parts.append(b.node("Slice", [name, starts, ends, axes], tag))
    if len(parts) == 1:
        return parts[0]
    return b.node("Concat", parts, f"route_{index}", axis=1)


def _shortcut(
    b: _Builder,
    index: int,
    layer: darknet.Layer,
    src: list[str],
    convs: Iterator[darknet.ConvWeights],
) -> str:
    x = b.node("Add", src, f"shortcut_{index}")
    return b.activation(layer.section.options.get("activation", "linear"), x, index)


def _upstream(
    b: _Builder,
    index: int,
    layer: darknet.Layer,
    src: list[str],
    convs: Iterator[darknet.ConvWeights],
) -> str:
    """Layers that pass their input on unchanged at inference: [dropout], and [yolo] (whose
    input is a graph output; nothing may read its own output, see `_check_supported`)."""
    return src[0]


def _avgpool(
    b: _Builder,
    index: int,
    layer: darknet.Layer,
    src: list[str],
    convs: Iterator[darknet.ConvWeights],
) -> str:
    return b.node("GlobalAveragePool", src, f"avgpool_{index}")


_Emit = Callable[[_Builder, int, darknet.Layer, list[str], Iterator[darknet.ConvWeights]], str]
_LAYERS: dict[str, _Emit] = {
    "convolutional": _convolutional,
    "maxpool": _maxpool,
    "upsample": _upsample,
    "route": _route,
    "shortcut": _shortcut,
    "dropout": _upstream,
    "avgpool": _avgpool,
    "yolo": _upstream,
}
