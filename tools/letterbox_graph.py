"""Write yolocli/families/darknet/_letterbox_graph.py: darknet's letterbox as a small ONNX graph.

    python tools/letterbox_graph.py

The graph takes ``planes`` (1, 3, H, W) uint8 RGB (OpenCV splits the BGR photo into them,
faster than any graph op), ``sizes`` (1, 3, new_h, new_w) and ``pads`` (ONNX Pad's 8 values),
and gives the (1, 3, net_h, net_w) float32 RGB network input: pixels divided by 255, darknet's
bilinear resize (``Resize`` linear with ``align_corners``: source position
``i * (in - 1) / (out - 1)``, exactly darknet's ``resize_image``), then the 0.5-gray border.

The pixels become [0, 1] floats as darknet's do, before the resize, but in one operator:
``DequantizeLinear`` with scale float32(1/255) casts and scales in the same pass over the
photo, where a ``Cast`` and a ``Div`` after the resize made two (the product and darknet's
quotient differ by float32 rounding, a few 1e-8). Right after a forward pass, as in a run,
that took the graph from 2.2 to 2.0 ms on the six test photos (the ``Div`` alone had cost
0.19 ms). The channels are split outside: the first version cast, divided, transposed and
reordered the whole photo inside the graph, 1.4 of its 2.2 ms on a 0.37-megapixel photo.

yolocli embeds the bytes rather than building the graph at run time, which would import onnx
(tens of milliseconds at every start).
tests/test_preprocess.py checks that the embedded bytes are what this script makes.
"""

from __future__ import annotations

import sys
from pathlib import Path

MODULE = (
    Path(__file__).resolve().parent.parent
    / "yolocli"
    / "families"
    / "darknet"
    / "_letterbox_graph.py"
)


def graph_bytes() -> bytes:
    from onnx import TensorProto, checker, helper

    nodes = [
        helper.make_node("DequantizeLinear", ["planes", "per255", "zero"], ["unit"]),
        helper.make_node(
            "Resize",
            ["unit", "", "", "sizes"],
            ["resized"],
            mode="linear",
            coordinate_transformation_mode="align_corners",
        ),
        helper.make_node("Pad", ["resized", "pads", "gray"], ["blob"], mode="constant"),
    ]
    graph = helper.make_graph(
        nodes,
        "darknet_letterbox",
        [
            helper.make_tensor_value_info("planes", TensorProto.UINT8, [1, 3, "H", "W"]),
            helper.make_tensor_value_info("sizes", TensorProto.INT64, [4]),
            helper.make_tensor_value_info("pads", TensorProto.INT64, [8]),
        ],
        [helper.make_tensor_value_info("blob", TensorProto.FLOAT, [1, 3, "net_h", "net_w"])],
        [
            helper.make_tensor("per255", TensorProto.FLOAT, [], [1 / 255]),  # float32 1/255
            helper.make_tensor("zero", TensorProto.UINT8, [], [0]),
            helper.make_tensor("gray", TensorProto.FLOAT, [], [0.5]),
        ],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="yolocli"
    )
    model.ir_version = 7  # what ONNX Runtime 1.x and every opset-13 reader accept
    checker.check_model(model)
    return bytes(model.SerializeToString())


def module_text() -> str:
    data = graph_bytes().hex()
    lines = [data[i : i + 96] for i in range(0, len(data), 96)]
    body = "\n".join(f'    "{line}"' for line in lines)
    return (
        '"""darknet\'s letterbox as an ONNX graph (made by tools/letterbox_graph.py; do not '
        'edit)."""\n\n'
        f"GRAPH = bytes.fromhex(\n{body}\n)\n"
    )


if __name__ == "__main__":
    MODULE.write_text(module_text())
    sys.stdout.write(f"wrote {MODULE}\n")
