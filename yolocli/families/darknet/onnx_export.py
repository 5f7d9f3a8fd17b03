"""A darknet model's ONNX file for use elsewhere: its metadata, and optionally darknet's decode
(and NMS) written into the graph, for ``yolocli export --decoded``.

The compiled graph (`families.darknet.compiler`) ends at the raw heads, which need the cfg's
anchors to decode. ``decoded`` appends darknet's decode (`families.darknet.heads`, as
``get_yolo_box`` computes it) so that the file gives boxes itself:

- ``output`` (N, R, 5 + C): per candidate box, centre x, centre y, width and height in pixels
  of the network input, objectness, then the C class probabilities (a score is objectness x
  probability, as darknet reports it): the layout YOLOv5 exports. Rows go head by head, cell
  by cell (row major), anchor fastest within a cell.
- with NMS (``nms=True``), ``detections`` (K, 7): batch index, x1, y1, x2, y2 (input
  pixels), class, score, from ONNX's NonMaxSuppression per class, with the export's score and
  IoU thresholds (recorded in the metadata). That NMS is IoU NMS: darknet's DIoU-NMS
  (AlexeyAB's ``nms_kind=greedynms``) has no ONNX operator; the metadata says which darknet
  would run.

Every export, raw or decoded, carries ``metadata_props`` (`metadata`): the class names, the
input size, each head's stride, anchors, ``scale_x_y`` and ``new_coords``, the darknet flavour,
the preprocessing, and what the outputs are, so nobody has to copy anchors out of a cfg.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

from yolocli.families.darknet.heads import YoloHead
from yolocli.recipe import Recipe

DECODED = "output"
DETECTIONS = "detections"


def preprocessing(recipe: Recipe) -> str:
    """The input preparation in words, for the metadata."""
    if recipe.letterbox:
        how = (
            "letterboxed as darknet does (aspect kept; darknet's bilinear resize of [0, 1] "
            "float pixels; centred on 0.5 gray)"
        )
    else:
        how = "resized to the input as darknet does (aspect not kept; darknet's bilinear resize)"
    return f"{how}; RGB, float32 in [0, 1], NCHW"


def metadata(
    names: Sequence[str],
    heads: Sequence[YoloHead],
    head_shapes: Sequence[tuple[int, int]],
    width: int,
    height: int,
    recipe: Recipe,
    outputs: str,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """``metadata_props`` of an exported darknet model (values are strings, as ONNX keeps
    them; lists and dicts as JSON). ``head_shapes``: each head's grid (H, W)."""
    described = [
        {
            "stride": width // w,
            "grid": [h, w],
            "anchors": [list(a) for a in head.anchors],
            "scale_x_y": head.scale_x_y,
            "new_coords": head.new_coords,
        }
        for head, (h, w) in zip(heads, head_shapes, strict=True)
    ]
    meta = {
        "producer": "yolocli",
        "family": "darknet",
        "flavour": recipe.flavour,
        "nms": recipe.nms_description,
        "names": json.dumps(list(names)),
        "imgsz": json.dumps([height, width]),
        "strides": json.dumps([d["stride"] for d in described]),
        "anchors": json.dumps([d["anchors"] for d in described]),
        "heads": json.dumps(described),
        "preprocessing": preprocessing(recipe),
        "outputs": outputs,
    }
    meta.update(extra or {})
    return meta


def set_metadata(model: onnx.ModelProto, meta: dict[str, str]) -> None:
    del model.metadata_props[:]
    for key, value in meta.items():
        prop = model.metadata_props.add()
        prop.key, prop.value = key, value


class _Nodes:
    """Nodes and constants appended to a graph, named with a prefix."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        self.nodes: list[onnx.NodeProto] = []
        self.count = 0

    def name(self, stem: str) -> str:
        self.count += 1
        return f"decode/{stem}_{self.count}"

    def const(self, array: npt.NDArray[Any], stem: str = "const") -> str:
        name = self.name(stem)
        self.model.graph.initializer.append(numpy_helper.from_array(array, name))
        return name

    def op(self, op: str, inputs: Sequence[str], stem: str | None = None, **attrs: Any) -> str:
        out = self.name(stem or op.lower())
        self.nodes.append(helper.make_node(op, list(inputs), [out], name=out, **attrs))
        return out

    def slice(self, x: str, start: int, end: int) -> str:
        """x[..., start:end] on the last axis."""
        return self.op(
            "Slice",
            [x, self.const(np.array([start], np.int64)), self.const(np.array([end], np.int64)),
             self.const(np.array([-1], np.int64))],
        )  # fmt: skip


def decode_into(
    model: onnx.ModelProto,
    heads: Sequence[YoloHead],
    head_shapes: Sequence[tuple[int, int]],
    width: int,
    height: int,
    nms: tuple[float, float, int] | None = None,
) -> None:
    """Replace ``model``'s raw head outputs by darknet's decode of them (``output``, see the
    module's docs); with ``nms`` (score threshold, IoU threshold, boxes per class and image),
    by the boxes NonMaxSuppression keeps (``detections``)."""
    g = _Nodes(model)
    raw_names = [o.name for o in model.graph.output]
    parts = []
    for raw, head, (h, w) in zip(raw_names, heads, head_shapes, strict=True):
        a, k = len(head.anchors), 5 + head.classes
        t = g.op("Reshape", [raw, g.const(np.array([0, a, k, h * w], np.int64))])
        t = g.op("Transpose", [t], perm=[0, 3, 1, 2])  # (N, HW, A, K): anchor fastest
        t = g.op("Reshape", [t, g.const(np.array([0, h * w * a, k], np.int64))])
        act = t if head.new_coords else g.op("Sigmoid", [t])
        # x, y: (sigmoid * scale_x_y - (scale_x_y - 1) / 2 + cell) / grid, in input pixels
        scale = np.float32(head.scale_x_y)
        xy = g.slice(act, 0, 2)
        if head.scale_x_y != 1.0:
            xy = g.op("Mul", [xy, g.const(np.array(scale, np.float32))])
            beta = np.float32(-0.5 * (float(scale) - 1.0))
            xy = g.op("Add", [xy, g.const(np.array(beta, np.float32))])
        rows, cols = np.divmod(np.repeat(np.arange(h * w), a), w)
        cells = np.stack([cols, rows], axis=1).astype(np.float32)
        xy = g.op("Add", [xy, g.const(cells, "cells")])
        xy = g.op("Mul", [xy, g.const(np.array([width / w, height / h], np.float32))])
        # w, h: exp(t) * anchor (new_coords: t * t * 4 * anchor), in input pixels
        anchors = np.tile(head.anchor_array, (h * w, 1))
        twh = g.slice(t, 2, 4)
        if head.new_coords:
            wh = g.op("Mul", [g.op("Mul", [twh, twh]), g.const(anchors * 4, "anchors")])
        else:
            wh = g.op("Mul", [g.op("Exp", [twh]), g.const(anchors, "anchors")])
        parts.append(g.op("Concat", [xy, wh, g.slice(act, 4, k)], axis=-1))
    decoded = g.op("Concat", parts, "decoded", axis=1) if len(parts) > 1 else parts[0]
    classes = heads[0].classes
    del model.graph.output[:]
    if nms is None:
        g.nodes[-1].output[0] = DECODED
        model.graph.output.append(
            helper.make_tensor_value_info(DECODED, TensorProto.FLOAT, ["N", "R", 5 + classes])
        )
    else:
        conf, iou, per_class = nms
        boxes = g.slice(decoded, 0, 4)  # (N, R, 4) centre, size
        scores = g.op("Mul", [g.slice(decoded, 5, 5 + classes), g.slice(decoded, 4, 5)])
        by_class = g.op("Transpose", [scores], perm=[0, 2, 1])  # (N, C, R)
        picked = g.op(
            "NonMaxSuppression",
            [boxes, by_class, g.const(np.array([per_class], np.int64)),
             g.const(np.array([iou], np.float32)), g.const(np.array([conf], np.float32))],
            center_point_box=1,
        )  # fmt: skip  # (K, 3): batch, class, box
        batch = g.slice(picked, 0, 1)
        cls = g.slice(picked, 1, 2)
        which = g.op("Concat", [batch, g.slice(picked, 2, 3)], axis=-1)
        centre = g.op("GatherND", [boxes, which])  # (K, 4)
        half = g.op("Mul", [g.slice(centre, 2, 4), g.const(np.array(0.5, np.float32))])
        xy = g.slice(centre, 0, 2)
        corners = [g.op("Sub", [xy, half]), g.op("Add", [xy, half])]
        score = g.op("Unsqueeze", [g.op("GatherND", [by_class, picked]),
                                   g.const(np.array([1], np.int64))])  # fmt: skip
        as_float = [g.op("Cast", [x], to=TensorProto.FLOAT) for x in (batch, cls)]
        g.op("Concat", [as_float[0], *corners, as_float[1], score], axis=-1)
        g.nodes[-1].output[0] = DETECTIONS
        model.graph.output.append(
            helper.make_tensor_value_info(DETECTIONS, TensorProto.FLOAT, ["K", 7])
        )
    model.graph.node.extend(g.nodes)
