"""The ONNX wire-format reader, against onnx itself: external data is found wherever a tensor
can hold it (initializers, Constant values, sparse tensors, subgraphs), and the producer named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, external_data_helper, helper, numpy_helper

from yolocli.errors import ModelError
from yolocli.models.onnxwire import (
    check_self_contained,
    has_external_data,
    producer,
    summary,
    summary_of,
)


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


# -- summary: what read_onnx needs, against onnx's own parse -----------------------------------

FAMILY_DATA = Path(__file__).parent / "data" / "families"


def _by_onnx(data: bytes) -> tuple[object, ...]:
    """The oracle: what `summary` returns, read by onnx itself."""
    model = onnx.load_from_string(data)

    def dims(value: onnx.ValueInfoProto) -> tuple[int | str | None, ...]:
        if not value.type.HasField("tensor_type"):
            return ()
        out: list[int | str | None] = []
        for d in value.type.tensor_type.shape.dim:
            if d.HasField("dim_value"):
                out.append(int(d.dim_value))
            else:
                out.append(d.dim_param or None)
        return tuple(out)

    graph = model.graph
    return (
        {m.key: m.value for m in model.metadata_props},
        {t.name for t in graph.initializer},
        [(i.name, dims(i)) for i in graph.input],
        [(o.name, dims(o)) for o in graph.output],
        {n.op_type for n in graph.node},
    )


def _shapes_model() -> bytes:
    """Every kind of dimension (a value, 0, -1, a name, neither), an initializer listed among
    the inputs (IR 3 style), a repeated metadata key, an output that is not a tensor."""
    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, "height", None])
    w = helper.make_tensor_value_info("w", TensorProto.FLOAT, [0, -1])
    y = helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 84, 2**40])
    seq = helper.make_tensor_sequence_value_info("boxes", TensorProto.FLOAT, None)
    nodes = [helper.make_node("Identity", ["images"], ["output0"]),
             helper.make_node("SequenceEmpty", [], ["boxes"])]  # fmt: skip
    graph = helper.make_graph(
        nodes, "g", [x, w], [y, seq], [numpy_helper.from_array(np.zeros((0, 1), np.float32), "w")]
    )
    model = helper.make_model(graph)
    helper.set_model_props(model, {"names": "{0: 'person'}", "stride": "32"})
    model.metadata_props.add(key="stride", value="16")  # a repeated key: the last one wins
    return model.SerializeToString()


@pytest.mark.parametrize(
    "name",
    [*sorted(p.name for p in FAMILY_DATA.glob("*.onnx")), "shapes", "external", "empty"],
)
def test_summary_reads_what_onnx_reads(name: str) -> None:
    if name == "shapes":
        data = _shapes_model()
    elif name == "external":
        data = _with_external_data()
    elif name == "empty":
        data = b""
    else:
        data = (FAMILY_DATA / name).read_bytes()
    assert summary(data) == _by_onnx(data)


def _with_external_data() -> bytes:
    model = _model()
    external_data_helper.convert_model_to_external_data(model, location="w.bin")
    return model.SerializeToString()


def test_summary_of_a_compiled_darknet_graph(tmp_path: Path) -> None:
    from yolocli.families.darknet.cfg import read_cfg, write_random_weights
    from yolocli.families.darknet.compiler import compile_onnx

    cfg = Path(__file__).parent.parent / "configs" / "yolov3-tiny.cfg"
    weights = tmp_path / "w.weights"
    _, network = read_cfg(cfg)
    write_random_weights(network, weights)
    data = compile_onnx(network, weights, size=(320, 320)).SerializeToString()
    path = tmp_path / "tiny.onnx"
    path.write_bytes(data)
    assert summary_of(path) == _by_onnx(data)


@pytest.mark.parametrize("data", [b"not protobuf at all \xff\xff", b"\x0a\xff", b"\x3a\x05ab"])
def test_summary_refuses_broken_encodings(data: bytes) -> None:
    with pytest.raises(ModelError, match="not a well-formed ONNX model"):
        summary(data)
