"""Reading an ONNX file's protobuf wire format without importing onnx (a slow import every
worker process would pay): whether any tensor keeps its data outside the file, and who wrote it.

A tensor with external data names another file by a path relative to the graph
(``location=../../secret.bin``); an engine loading such a graph reads that file. yolocli's
compiler never writes external data, so `check_self_contained` refuses any graph that has
some, on every engine, before loading it. Only the messages that can hold tensors are walked;
large fields (raw tensor data) are skipped by their length, never copied, so checking a
memory-mapped 250 MB graph touches a few pages.
"""

from __future__ import annotations

import mmap
from pathlib import Path
from typing import NamedTuple

from yolocli.errors import ModelError

# Wire types (protobuf encoding): varint, 64-bit, length-delimited, 32-bit.
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5
MAX_DEPTH = 64  # nested subgraphs; deeper is refused rather than walked

# message kind -> {field number: kind of the embedded message}, for the fields that can lead
# to a TensorProto (onnx.proto: ModelProto, GraphProto, NodeProto, FunctionProto,
# AttributeProto, SparseTensorProto, TrainingInfoProto).
_CHILDREN: dict[str, dict[int, str]] = {
    "model": {7: "graph", 20: "training", 25: "function"},
    "graph": {1: "node", 5: "tensor", 15: "sparse"},
    "node": {5: "attribute"},
    "function": {7: "node", 11: "attribute"},
    "attribute": {5: "tensor", 6: "graph", 10: "tensor", 11: "graph", 22: "sparse", 23: "sparse"},
    "sparse": {1: "tensor", 2: "tensor"},
    "training": {1: "graph", 2: "graph"},
    "tensor": {},
}
_TENSOR_EXTERNAL_DATA = 13  # TensorProto.external_data (repeated key/value)
_TENSOR_DATA_LOCATION = 14  # TensorProto.data_location: 0 DEFAULT, 1 EXTERNAL
_MODEL_PRODUCER = 2  # ModelProto.producer_name


class _Malformed(Exception):
    pass


def _varint(buf: memoryview, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise _Malformed
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _fields(buf: memoryview, pos: int, end: int) -> list[tuple[int, int, int, int]]:
    """(field, wire type, value or payload start, payload end) of each field in buf[pos:end]."""
    out = []
    while pos < end:
        key, pos = _varint(buf, pos, end)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise _Malformed
        if wire == _VARINT:
            value, pos = _varint(buf, pos, end)
            out.append((field, wire, value, pos))
        elif wire == _LEN:
            length, pos = _varint(buf, pos, end)
            if pos + length > end:
                raise _Malformed
            out.append((field, wire, pos, pos + length))
            pos += length
        elif wire in (_I64, _I32):
            pos += 8 if wire == _I64 else 4
            if pos > end:
                raise _Malformed
        else:  # groups (3, 4) are not in onnx.proto; 6 and 7 do not exist
            raise _Malformed
    return out


def _external(buf: memoryview, kind: str, pos: int, end: int, depth: int) -> bool:
    """True if the ``kind`` message in buf[pos:end] holds a tensor with external data."""
    if depth > MAX_DEPTH:
        raise _Malformed
    children = _CHILDREN[kind]
    for field, wire, a, b in _fields(buf, pos, end):
        if kind == "tensor":
            if field == _TENSOR_EXTERNAL_DATA and wire == _LEN:
                return True
            if field == _TENSOR_DATA_LOCATION and wire == _VARINT and a != 0:
                return True
        elif (
            field in children and wire == _LEN and _external(buf, children[field], a, b, depth + 1)
        ):
            return True
    return False


def has_external_data(data: bytes | mmap.mmap) -> bool:
    """True if the serialized ONNX model ``data`` has any tensor stored outside it: an
    initializer, a Constant's value, a sparse tensor, in the main graph, a subgraph or a
    function. `ModelError` if ``data`` is not a well-formed protobuf message."""
    with memoryview(data) as buf:
        try:
            return _external(buf, "model", 0, len(buf), 0)
        except (_Malformed, RecursionError):
            pass
    raise ModelError("not a well-formed ONNX model (its protobuf encoding is broken)")


def check_self_contained(path: Path) -> None:
    """Refuse (`ModelError`) the ONNX graph at ``path`` if it is malformed or any of its
    tensors keeps its data in another file, before any engine reads it."""
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            external = has_external_data(mm)
    except ValueError:  # mmap of an empty file
        raise ModelError(f"{path}: an empty file, not an ONNX graph") from None
    except ModelError as err:
        raise ModelError(f"{path}: {err}") from None
    except OSError as err:
        raise ModelError(f"{path}: cannot read the graph: {err.strerror}") from None
    if external:
        raise ModelError(
            f"{path}: refusing a graph whose tensors keep their data in other files (external "
            "data): loading it would read whatever files those name; yolocli never writes one"
        )


# Field numbers (onnx.proto) of what `summary` reads.
_MODEL_GRAPH, _MODEL_METADATA = 7, 14
_ENTRY_KEY, _ENTRY_VALUE = 1, 2  # StringStringEntryProto
_GRAPH_NODE, _GRAPH_INITIALIZER, _GRAPH_INPUT, _GRAPH_OUTPUT = 1, 5, 11, 12
_NODE_OP_TYPE = 4
_TENSOR_NAME = 8
_VALUE_NAME, _VALUE_TYPE = 1, 2  # ValueInfoProto
_TYPE_TENSOR = 1  # TypeProto.tensor_type
_TENSOR_TYPE_SHAPE = 2  # TypeProto.Tensor.shape
_SHAPE_DIM = 1  # TensorShapeProto.dim
_DIM_VALUE, _DIM_PARAM = 1, 2  # TensorShapeProto.Dimension (a oneof)

Dim = int | str | None  # a fixed size, a symbolic name, or unknown
Shape = tuple[Dim, ...]


class Summary(NamedTuple):
    """What `summary` reads of an ONNX model: what `yolocli.families.read_onnx` needs."""

    metadata: dict[str, str]
    initializers: set[str]  # the initializers' names
    inputs: list[tuple[str, Shape]]
    outputs: list[tuple[str, Shape]]
    ops: set[str]  # the operator types


def summary(data: bytes | mmap.mmap) -> Summary:
    """(metadata, initializer names, inputs, outputs, operator types) of the serialized ONNX
    model ``data``: what `yolocli.families.read_onnx` needs, without importing onnx (0.6 s,
    on the critical path of every run of an ONNX model) or copying its weights. An input's or
    output's shape is its dims: an int, a name (``dim_param``) or None (neither).
    `ModelError` if ``data`` is not a well-formed protobuf message."""
    with memoryview(data) as buf:
        try:
            return _summary(buf)
        except (_Malformed, UnicodeDecodeError):
            pass
    raise ModelError("not a well-formed ONNX model (its protobuf encoding is broken)")


def summary_of(path: Path) -> Summary:
    """`summary` of the ONNX file at ``path``, mapped rather than read: the weights' pages
    are skipped, never touched. `ModelError` if it is malformed, OSError if unreadable."""
    with open(path, "rb") as f:
        try:
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # an empty file: an empty message
            return summary(b"")
        with mm:
            return summary(mm)


def _summary(buf: memoryview) -> Summary:
    metadata: dict[str, str] = {}
    initializers: set[str] = set()
    inputs: list[tuple[str, Shape]] = []
    outputs: list[tuple[str, Shape]] = []
    ops: set[str] = set()

    def text(a: int, b: int) -> str:
        return bytes(buf[a:b]).decode("utf-8")

    def strings(a: int, b: int, *wanted: int) -> dict[int, str]:
        """The last value of each ``wanted`` string field of the message in buf[a:b]."""
        return {f: text(x, y) for f, w, x, y in _fields(buf, a, b) if f in wanted and w == _LEN}

    def value_info(a: int, b: int) -> tuple[str, Shape]:
        name: str = ""
        dims: Shape = ()
        for f, w, x, y in _fields(buf, a, b):
            if f == _VALUE_NAME and w == _LEN:
                name = text(x, y)
            elif f == _VALUE_TYPE and w == _LEN:
                dims = shape(x, y)
        return name, dims

    def shape(a: int, b: int) -> Shape:
        """The dims of a TypeProto's tensor type (none for other types)."""
        out: list[Dim] = []
        for f, w, x, y in _fields(buf, a, b):
            if f == _TYPE_TENSOR and w == _LEN:
                out = []
                for f2, w2, x2, y2 in _fields(buf, x, y):
                    if f2 == _TENSOR_TYPE_SHAPE and w2 == _LEN:
                        out = [dim(x3, y3) for f3, w3, x3, y3 in _fields(buf, x2, y2)
                               if f3 == _SHAPE_DIM and w3 == _LEN]  # fmt: skip
        return tuple(out)

    def dim(a: int, b: int) -> Dim:
        value: Dim = None
        for f, w, x, y in _fields(buf, a, b):  # a oneof: the last one written wins
            if f == _DIM_VALUE and w == _VARINT:
                value = x - (1 << 64) if x >= 1 << 63 else x  # int64, two's complement
            elif f == _DIM_PARAM and w == _LEN:
                value = text(x, y) or None
        return value

    for field, wire, a, b in _fields(buf, 0, len(buf)):
        if field == _MODEL_METADATA and wire == _LEN:
            entry = strings(a, b, _ENTRY_KEY, _ENTRY_VALUE)
            metadata[entry.get(_ENTRY_KEY, "")] = entry.get(_ENTRY_VALUE, "")
        elif field == _MODEL_GRAPH and wire == _LEN:  # (repeated: protobuf merges them)
            for f, w, x, y in _fields(buf, a, b):
                if w != _LEN:
                    continue
                if f == _GRAPH_NODE:
                    ops.add(strings(x, y, _NODE_OP_TYPE).get(_NODE_OP_TYPE, ""))
                elif f == _GRAPH_INITIALIZER:
                    initializers.add(strings(x, y, _TENSOR_NAME).get(_TENSOR_NAME, ""))
                elif f == _GRAPH_INPUT:
                    inputs.append(value_info(x, y))
                elif f == _GRAPH_OUTPUT:
                    outputs.append(value_info(x, y))
    return Summary(metadata, initializers, inputs, outputs, ops)


def producer(path: Path, limit: int = 4096) -> str | None:
    """The ``producer_name`` of the ONNX model at ``path`` (read from its first ``limit``
    bytes, where writers put it), or None if it is not an ONNX model or names none."""
    try:
        with open(path, "rb") as f:
            head = f.read(limit)
    except OSError:
        return None
    buf = memoryview(head)
    pos = 0
    try:
        while pos < len(buf):
            key, pos = _varint(buf, pos, len(buf))
            field, wire = key >> 3, key & 7
            if wire == _VARINT:
                _, pos = _varint(buf, pos, len(buf))
            elif wire == _LEN:
                length, pos = _varint(buf, pos, len(buf))
                if field == _MODEL_PRODUCER:
                    if pos + length > len(buf):
                        return None
                    return bytes(buf[pos : pos + length]).decode("utf-8", "replace")
                pos += length
            else:
                return None
    except _Malformed:
        return None
    return None
