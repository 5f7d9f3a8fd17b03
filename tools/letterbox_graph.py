"""Write yolocli/families/darknet/_letterbox_graph.py: darknet's letterbox as a small ONNX graph.

    python tools/letterbox_graph.py

The graph takes ``image`` (1, H, W, 3) uint8 BGR, ``sizes`` (1, 3, new_h, new_w) and ``pads``
(ONNX Pad's 8 values), and gives the (1, 3, net_h, net_w) float32 RGB network input: pixels
divided by 255, channels reversed, darknet's bilinear resize (``Resize`` linear with
``align_corners``: source position ``i * (in - 1) / (out - 1)``, exactly darknet's
``resize_image``), then the 0.5-gray border. yolocli embeds the bytes rather than building
the graph at run time, which would import onnx (tens of milliseconds at every start).
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
        helper.make_node("Cast", ["image"], ["pixels"], to=TensorProto.FLOAT),
        helper.make_node("Div", ["pixels", "c255"], ["unit"]),
        helper.make_node("Transpose", ["unit"], ["planes"], perm=[0, 3, 1, 2]),
        helper.make_node("Gather", ["planes", "rgb"], ["rgb_planes"], axis=1),
        helper.make_node(
            "Resize",
            ["rgb_planes", "", "", "sizes"],
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
            helper.make_tensor_value_info("image", TensorProto.UINT8, [1, "H", "W", 3]),
            helper.make_tensor_value_info("sizes", TensorProto.INT64, [4]),
            helper.make_tensor_value_info("pads", TensorProto.INT64, [8]),
        ],
        [helper.make_tensor_value_info("blob", TensorProto.FLOAT, [1, 3, "net_h", "net_w"])],
        [
            helper.make_tensor("c255", TensorProto.FLOAT, [], [255.0]),
            helper.make_tensor("rgb", TensorProto.INT64, [3], [2, 1, 0]),
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
