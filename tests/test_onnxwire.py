"""The ONNX wire-format reader, against onnx itself: external data is found wherever a tensor
can hold it (initializers, Constant values, sparse tensors, subgraphs), and the producer named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, external_data_helper, helper, numpy_helper

from yolocli.errors import ModelError
from yolocli.models.onnxwire import check_self_contained, has_external_data, producer


def _model(
    *, initializer: bool = True, constant: bool = True, subgraph: bool = True
) -> onnx.ModelProto:
    big = numpy_helper.from_array(np.arange(4096, dtype=np.float32).reshape(64, 64), "w")
    nodes = [helper.make_node("Add", ["x", "w"], ["y"])] if initializer else []
    inits = [big] if initializer else []
    if constant:
        value = numpy_helper.from_array(np.ones((64, 64), np.float32), "c")
        nodes.append(helper.make_node("Constant", [], ["c"], value=value))
    if subgraph:
        inner_value = numpy_helper.from_array(np.zeros((64, 64), np.float32), "k")
        inner = helper.make_graph(
            [helper.make_node("Constant", [], ["k_out"], value=inner_value)],
            "then",
            [],
            [helper.make_tensor_value_info("k_out", TensorProto.FLOAT, [64, 64])],
        )
        nodes.append(helper.make_node("If", ["cond"], ["z"], then_branch=inner, else_branch=inner))
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [64, 64]),
         helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [64, 64])],
        inits,
    )  # fmt: skip
    model = helper.make_model(graph, producer_name="someone")
    return model


def _onnx_says_external(model: onnx.ModelProto) -> bool:
    """The oracle: onnx's own walk over every tensor of the model."""
    tensors = external_data_helper._get_all_tensors(model)
    return any(external_data_helper.uses_external_data(t) for t in tensors)


@pytest.mark.parametrize(
    "parts",
    [
        {"initializer": True, "constant": False, "subgraph": False},
        {"initializer": False, "constant": True, "subgraph": False},
        {"initializer": False, "constant": False, "subgraph": True},
        {"initializer": True, "constant": True, "subgraph": True},
    ],
)
def test_external_data_is_found_wherever_onnx_finds_it(tmp_path: Path, parts: dict) -> None:
    model = _model(**parts)
    assert not has_external_data(model.SerializeToString())
    external_data_helper.convert_model_to_external_data(
        model,
        all_tensors_to_one_file=True,
        location="../../secret.bin",
        size_threshold=0,
        convert_attribute=True,
    )
    assert _onnx_says_external(model)
    assert has_external_data(model.SerializeToString())
    path = tmp_path / "g.onnx"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(ModelError, match="external data"):
        check_self_contained(path)


def test_data_location_alone_counts_as_external() -> None:
    model = _model(constant=False, subgraph=False)
    model.graph.initializer[0].data_location = TensorProto.EXTERNAL
    assert _onnx_says_external(model)
    assert has_external_data(model.SerializeToString())


def test_a_self_contained_graph_passes_and_its_producer_is_read(tmp_path: Path) -> None:
    path = tmp_path / "g.onnx"
    path.write_bytes(_model().SerializeToString())
    check_self_contained(path)
    assert producer(path) == "someone"


@pytest.mark.parametrize("data", [b"", b"\xff\xff\xff", b"GIF89a not a protobuf", b"\x3a\x7f"])
def test_what_is_not_an_onnx_model_is_refused(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "g.onnx"
    path.write_bytes(data)
    with pytest.raises(ModelError, match=str(path)):
        check_self_contained(path)
    assert producer(path) is None
