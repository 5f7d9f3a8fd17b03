"""Darknet's file formats: reading a network's cfg, and the layout of its weights file.

Knowing how many parameters a cfg needs lets yolocli reject a weights file that belongs to a
different network before OpenCV reads it (OpenCV reports that as an assertion deep inside
its importer, or silently loads the wrong numbers), and lets the benchmarks write
layout-correct random weights for networks whose real weights cannot be fetched.

Every number the layout or an allocation depends on is checked against the limits below, so
a hostile or mistyped cfg gets one `ModelError` naming file, line, section and option before
OpenCV sees it. Messages quote at most `EXCERPT` characters of anything a file says.
"""

from __future__ import annotations

import math
import os
import re
import stat
import struct
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from yolocli.errors import ModelError
from yolocli.io.files import looks_like_html

# Limits: generous for every published darknet network, small enough that nothing a cfg or
# names file says can make yolocli allocate gigabytes.
MAX_TEXT_BYTES = 1 << 20  # a cfg or names file (yolov4.cfg is 12 KB)
MAX_SIDE = 4096  # network width and height, multiples of 32
MAX_INPUT_CHANNELS = 4
MAX_FILTERS = 8192  # output channels of one convolution
MAX_KERNEL = 31  # convolution and max-pool window
MAX_STRIDE = 32
MAX_CLASSES = 10_000  # yolo9000 has 9,418
MAX_ANCHORS = 64
MAX_LAYER_VALUES = 1 << 29  # one layer's output: 2 GiB of float32
MAX_NAME_CHARS = 128  # one class name
# All of a network's parameters: one ONNX graph holds at most 2 GiB (protobuf's limit), and
# the largest darknet models are ~0.5 GB; checked before a weights file is hashed or read.
MAX_PARAMETER_BYTES = 2**31 - 2**26
EXCERPT = 40  # characters of a file's own text quoted in a message

_HEADER_V2 = struct.Struct("<iiiq")  # major, minor, revision, images seen (int64 since 0.2)
_HEADER_V1 = struct.Struct("<iiii")
# OpenCV's importer applies these and nothing else; any other activation it refuses.
_ACTIVATIONS = ("linear", "leaky", "swish", "mish", "logistic")
# darknet's short names, which OpenCV's importer does not know.
_ALIASES = {"conv": "convolutional", "max": "maxpool", "avg": "avgpool", "network": "net"}
# Options that change a layer in darknet (its output, or what load_weights reads for it)
# but that OpenCV's importer ignores: the network would load and silently compute something
# else. Each maps to the value that means "off".
_UNSUPPORTED: dict[str, dict[str, str | None]] = {
    "convolutional": {
        "dilation": "1",
        "stride_x": None,
        "stride_y": None,
        "antialiasing": "0",
        "binary": "0",
        "xnor": "0",
        "flipped": "0",
        "deform": "0",
        "sway": "0",
        "rotate": "0",
        "stretch": "0",
        "stretch_sway": "0",
        "share_index": None,
        "dontload": "0",
        "dontloadscales": "0",
        "coordconv": "0",
    },
    "maxpool": {"stride_x": None, "stride_y": None, "maxpool_depth": "0", "antialiasing": "0"},
    "shortcut": {"weights_type": "none", "weights_normalization": "none"},
}


@dataclass(frozen=True)
class Section:
    """One ``[type]`` block of a cfg, with its ``key=value`` options as written."""

    type: str
    options: dict[str, str]
    line: int  # of the [type] header
    lines: dict[str, int] = field(default_factory=dict)  # of each option


@dataclass(frozen=True)
class Conv:
    """A convolutional layer's weight layout, in darknet's storage order."""

    filters: int
    size: int
    in_channels: int
    groups: int
    batch_normalize: bool

    @property
    def counts(self) -> tuple[int, ...]:
        """float32 counts as stored: biases, [BN scales, means, variances], weights."""
        bn = (self.filters,) * 3 if self.batch_normalize else ()
        weights = self.filters * (self.in_channels // self.groups) * self.size * self.size
        return (self.filters, *bn, weights)


@dataclass(frozen=True)
class Layer:
    """One layer after the [net] section: its cfg section, the layers it reads (absolute
    indices, the previous one unless a [route] or [shortcut] says otherwise) and its output
    shape (channels, height, width)."""

    section: Section
    inputs: tuple[int, ...]
    shape: tuple[int, int, int]


@dataclass(frozen=True)
class Network:
    """What yolocli needs to know about a darknet network before loading it."""

    width: int
    height: int
    channels: int
    convs: tuple[Conv, ...]
    classes: int  # of the [yolo]/[region] layers; 0 if there are none
    layers: tuple[Layer, ...] = ()  # every layer, in cfg order (darknet's layer indices)

    @property
    def parameter_count(self) -> int:
        return sum(sum(c.counts) for c in self.convs)

    def weights_size(self, header_size: int = _HEADER_V2.size) -> int:
        """Bytes of a weights file for this network (darknet >= 0.2 headers are 20 bytes)."""
        return header_size + 4 * self.parameter_count


def excerpt(text: str, limit: int = EXCERPT) -> str:
    """``text`` cut to ``limit`` characters (with an ellipsis) and with control characters
    escaped, for quoting a file's own words in a one-line message."""
    cut = text if len(text) <= limit else text[: limit - 1] + "…"
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in cut)


def parse_cfg(text: str, source: str = "cfg") -> list[Section]:
    """Split darknet cfg text into sections; a `ModelError` for text that is not a cfg."""
    sections: list[Section] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            if not line.endswith("]"):
                raise ModelError(
                    f"{source}: line {lineno}: unclosed section header '{excerpt(line)}'"
                )
            sections.append(Section(line[1:-1].strip().lower(), {}, lineno))
        elif "=" in line and sections:
            key, _, value = (part.strip() for part in line.partition("="))
            sec = sections[-1]
            if sec.options.get(key, value) != value:
                # darknet's option_find reads the first, OpenCV's importer the last
                raise ModelError(
                    f"{source}: line {lineno}: [{excerpt(sec.type)}] {excerpt(key)}= is given "
                    f"twice with different values (lines {sec.lines[key]} and {lineno})"
                )
            sec.options[key] = value
            sec.lines.setdefault(key, lineno)
        else:
            raise ModelError(
                f"{source}: line {lineno}: not a darknet cfg line: '{excerpt(raw.strip())}'"
            )
    if not sections or sections[0].type not in ("net", "network"):
        raise ModelError(f"{source}: not a darknet cfg (it must start with a [net] section)")
    return sections


class _Options:
    """Typed, range-checked reads of one section's options; errors name file, line, option."""

    def __init__(self, sec: Section, source: str) -> None:
        self.sec = sec
        self.source = source

    def fail(self, key: str, problem: str) -> ModelError:
        """An error in option ``key``, at the line that gives it."""
        value = self.sec.options.get(key)
        line = self.sec.lines.get(key, self.sec.line)
        shown = f"{excerpt(key)}={excerpt(value)}" if value is not None else excerpt(key)
        return ModelError(
            f"{self.source}: line {line}: [{excerpt(self.sec.type)}] {shown}: {problem}"
        )

    def error(self, problem: str) -> ModelError:
        """An error in the section as a whole, at its header line."""
        return ModelError(
            f"{self.source}: line {self.sec.line}: [{excerpt(self.sec.type)}] {problem}"
        )

    def raw(self, key: str, required: bool) -> str | None:
        value = self.sec.options.get(key)
        if value is None and required:
            raise self.error(f"needs {key}=")
        return value

    def number(self, key: str, default: int | None, lo: int, hi: int) -> int:
        """``key`` as a whole number in [lo, hi]; required when ``default`` is None."""
        value = self.raw(key, default is None)
        if value is None:
            assert default is not None
            return default
        # ASCII digits only: Python's int() also takes "1_000" and other scripts' digits
        if not re.fullmatch(r"[+-]?[0-9]{1,18}", value):
            if re.fullmatch(r"[+-]?[0-9]+", value):
                raise self.fail(key, f"must be between {lo} and {hi}")
            raise self.fail(key, "not a whole number")
        number = int(value)
        if not lo <= number <= hi:
            raise self.fail(key, f"must be between {lo} and {hi}")
        return number

    def numbers(self, key: str) -> list[int]:
        """A required comma-separated list of whole numbers (ranges are checked by callers)."""
        value = self.raw(key, True)
        assert value is not None
        parts = [p.strip() for p in value.split(",")]
        if not all(re.fullmatch(r"[+-]?[0-9]{1,9}", p) for p in parts):
            raise self.fail(key, "not a list of whole numbers")
        return [int(p) for p in parts]

    def positive_floats(self, key: str) -> list[float]:
        value = self.raw(key, True)
        assert value is not None
        numbers: list[float] = []
        for part in value.split(","):
            try:
                number = float(part.strip())
            except ValueError:
                number = math.nan
            if not (math.isfinite(number) and number > 0):
                raise self.fail(key, f"{excerpt(part.strip(), 12)} is not a positive number")
            numbers.append(number)
        return numbers

    def check_supported(self) -> None:
        activation = self.sec.options.get("activation", "linear")
        if activation not in _ACTIVATIONS:
            raise self.fail("activation", f"not one of {', '.join(_ACTIVATIONS)}")
        for key, off in _UNSUPPORTED.get(self.sec.type, {}).items():
            value = self.sec.options.get(key)
            if value is not None and value != off:
                raise self.fail(
                    key,
                    "not supported (OpenCV's darknet importer would ignore it and compute "
                    "something other than what darknet computes)",
                )


def _window(size: int, stride: int, padding: int, length: int) -> int:
    """Output length of a convolution or pooling window, with C's division toward zero."""
    span = length + padding - size
    return -(-span // stride) + 1 if span < 0 else span // stride + 1


def describe(sections: list[Section], source: str = "cfg") -> Network:
    """Trace shapes through the layers to find every convolution's weight layout, checking
    every number the layout or an allocation depends on (see the module's limits)."""
    net = _Options(sections[0], source)
    if sections[0].type != "net":
        raise net.error("is darknet's other name for [net]; OpenCV's importer needs [net]")
    width = net.number("width", 416, 32, MAX_SIDE)
    height = net.number("height", 416, 32, MAX_SIDE)
    for key, value in (("width", width), ("height", height)):
        if value % 32:
            raise net.fail(key, "must be a multiple of 32")
    channels = net.number("channels", 3, 1, MAX_INPUT_CHANNELS)

    shape = (channels, height, width)
    layers: list[Layer] = []
    convs: list[Conv] = []
    classes = 0
    for index, sec in enumerate(sections[1:]):
        opts = _Options(sec, source)
        opts.check_supported()
        inputs: tuple[int, ...] = (index - 1,) if index else ()
        c, h, w = shape
        if sec.type in _ALIASES:
            raise opts.error(
                f"is darknet's other name for [{_ALIASES[sec.type]}]; OpenCV's importer "
                "needs that one"
            )
        if sec.type == "convolutional":
            conv = Conv(
                filters=opts.number("filters", None, 1, MAX_FILTERS),
                # OpenCV requires size= (darknet would default it to 1)
                size=opts.number("size", None, 1, MAX_KERNEL),
                in_channels=c,
                groups=opts.number("groups", 1, 1, MAX_FILTERS),
                batch_normalize=opts.number("batch_normalize", 0, 0, 1) == 1,
            )
            if c % conv.groups:
                raise opts.fail("groups", f"{c} input channels are not a multiple of groups")
            if conv.filters % conv.groups:
                raise opts.fail("groups", f"filters={conv.filters} is not a multiple of groups")
            stride = opts.number("stride", 1, 1, MAX_STRIDE)
            pad = opts.number("pad", 0, 0, 1)
            padding = conv.size // 2 if pad else opts.number("padding", 0, 0, MAX_KERNEL)
            h = _window(conv.size, stride, 2 * padding, h)
            w = _window(conv.size, stride, 2 * padding, w)
            c = conv.filters
            convs.append(conv)
        elif sec.type == "maxpool":
            # darknet defaults stride to 1 and OpenCV to 2: only an explicit value is unambiguous
            stride = opts.number("stride", None, 1, MAX_STRIDE)
            size = opts.number("size", None, 1, MAX_KERNEL)
            padding = opts.number("padding", size - 1, 0, MAX_KERNEL)
            h, w = _window(size, stride, padding, h), _window(size, stride, padding, w)
        elif sec.type == "upsample":
            # darknet defaults stride to 2 and OpenCV to 1
            stride = opts.number("stride", None, 1, MAX_STRIDE)
            h, w = h * stride, w * stride
        elif sec.type == "reorg":
            stride = opts.number("stride", 2, 1, MAX_STRIDE)
            c, h, w = c * stride * stride, h // stride, w // stride
        elif sec.type == "avgpool":
            h, w = 1, 1
        elif sec.type == "dropout":
            pass
        elif sec.type == "route":
            inputs = tuple(_reference(opts, "layers", ref, index) for ref in opts.numbers("layers"))
            groups = opts.number("groups", 1, 1, MAX_FILTERS)
            opts.number("group_id", 0, 0, groups - 1)
            first = layers[inputs[0]].shape
            c, h, w = 0, first[1], first[2]
            for j in inputs:
                cj, hj, wj = layers[j].shape
                if (hj, wj) != (h, w):
                    raise opts.fail(
                        "layers", f"layer {inputs[0]} is {h}x{w} but layer {j} is {hj}x{wj}"
                    )
                if cj % groups:
                    raise opts.fail(
                        "layers", f"layer {j} has {cj} channels, not a multiple of groups={groups}"
                    )
                c += cj // groups
        elif sec.type == "shortcut":
            refs = opts.numbers("from")
            if len(refs) != 1:
                raise opts.fail("from", "not supported: OpenCV adds one layer, not several")
            source_layer = _reference(opts, "from", refs[0], index)
            if layers[source_layer].shape[1:] != (h, w):
                hs, ws = layers[source_layer].shape[1:]
                raise opts.fail("from", f"layer {source_layer} is {hs}x{ws}, this input {h}x{w}")
            inputs = (index - 1, source_layer)
        elif sec.type in ("yolo", "region"):
            layer_classes = _output_layer(opts, c)
            if classes and layer_classes != classes:
                raise opts.fail("classes", f"an earlier output layer has classes={classes}")
            classes = layer_classes
        else:
            raise ModelError(f"{source}: line {sec.line}: unsupported layer [{excerpt(sec.type)}]")
        if h < 1 or w < 1:
            raise opts.error(f"output would be {h}x{w}: the network's input is too small")
        if c * h * w > MAX_LAYER_VALUES:
            raise opts.error(
                f"output of {c}x{h}x{w} values is too large (the limit is {MAX_LAYER_VALUES:,})"
            )
        shape = (c, h, w)
        layers.append(Layer(sec, inputs, shape))
    return Network(width, height, channels, tuple(convs), classes, tuple(layers))


def _reference(opts: _Options, key: str, ref: int, index: int) -> int:
    """The absolute index of layer ``ref`` (negative: relative to layer ``index``)."""
    j = ref if ref >= 0 else index + ref
    if not 0 <= j < index:
        before = (
            f"only layers 0 to {index - 1} come before it" if index else "it is the first layer"
        )
        raise opts.fail(key, f"refers to layer {j}, but {before}")
    return j


def _output_layer(opts: _Options, in_channels: int) -> int:
    """Check a [yolo] or [region] layer against its input; return its class count."""
    classes = opts.number("classes", None, 1, MAX_CLASSES)
    num = opts.number("num", None, 1, MAX_ANCHORS)
    anchors = opts.positive_floats("anchors")
    if len(anchors) != 2 * num:
        raise opts.fail("anchors", f"needs 2 x num={num} = {2 * num} numbers, not {len(anchors)}")
    if opts.sec.type == "yolo":
        mask = opts.numbers("mask")
        for m in mask:
            if not 0 <= m < num:
                raise opts.fail("mask", f"{m} is not an anchor index (0 to {num - 1})")
        need = len(mask) * (classes + 5)
        why = f"mask={excerpt(opts.sec.options['mask'])} and classes={classes}"
    else:
        coords = opts.number("coords", 4, 1, 16)
        need = num * (classes + coords + 1)
        why = f"num={num}, coords={coords} and classes={classes}"
    if in_channels != need:
        raise opts.error(f"gets {in_channels} channels, but {why} need {need}")
    return classes


def read_cfg(path: Path) -> tuple[str, Network]:
    """The text of a cfg file and its `Network`; `ModelError` if it is missing or not a cfg.

    The file must be a regular file of at most `MAX_TEXT_BYTES`."""
    data, _ = _read_checked(path, "cfg file", MAX_TEXT_BYTES)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ModelError(f"{path}: not a darknet cfg (it is not text)") from None
    return text, describe(parse_cfg(text, str(path)), str(path))


def _version(head: bytes) -> tuple[int, int]:
    major, minor, _revision = struct.unpack_from("<iii", head)
    return major, minor


def header_size(path: Path) -> int:
    """Size of the header of darknet weights file ``path`` (16 or 20 bytes), as darknet reads it."""
    head, _ = _read_checked(path, "weights file", _HEADER_V2.size, whole=False)
    return _header_size(path, head)


def _header_size(path: Path, head: bytes) -> int:
    if len(head) < _HEADER_V1.size:
        raise ModelError(f"{path}: too short to be a darknet weights file ({len(head)} bytes)")
    major, minor = _version(head)
    return (
        _HEADER_V2.size
        if major * 10 + minor >= 2 and major < 1000 and minor < 1000
        else _HEADER_V1.size
    )


def check_weights(network: Network, cfg: Path, weights: Path) -> None:
    """Raise `ModelError` unless ``weights`` is exactly the size ``cfg``'s layout needs.

    darknet (``load_weights_upto``) and OpenCV read the header, then exactly the parameters
    the cfg asks for, in order: both ignore bytes left over, and darknet stops quietly at the
    end of a short file, leaving layers at their random start. Either way a network runs on
    numbers meant for another one and finds nothing. The one tolerance kept is darknet's
    header rule: version 0.2 and later have a 20-byte header (a 64-bit count of images seen),
    older files 16 bytes. Versions outside 0..999 are refused: darknet reads 1000 and above
    as "transposed" weights, which OpenCV refuses, and the two disagree on their header size.
    Only the header is read; the size comes from the file system.
    """
    if 4 * network.parameter_count > MAX_PARAMETER_BYTES:
        raise ModelError(
            f"{cfg.name}'s layers need {4 * network.parameter_count:,} bytes of parameters; the "
            f"most yolocli runs is {MAX_PARAMETER_BYTES:,} (one ONNX graph holds at most 2 GiB)"
        )
    head, have = _read_checked(weights, "weights file", _HEADER_V2.size, whole=False)
    size = _header_size(weights, head)
    major, minor = _version(head)
    if not (0 <= major < 1000 and 0 <= minor < 1000):
        raise ModelError(f"{weights}: version {major}.{minor}: not a darknet weights header")
    need = network.weights_size(size)
    if have == need:
        return
    message = f"{weights} has {have:,} bytes, but {cfg.name} needs {need:,}: the weights belong "
    if have > need:
        message += f"to a different network ({have - need:,} bytes too many)"
    else:
        message += "to a different network, or the file is truncated"
    other = _HEADER_V1.size + _HEADER_V2.size - size
    if have == network.weights_size(other):
        message += (
            f" (it would fit a {other}-byte header, but its version {major}.{minor} has {size})"
        )
    raise ModelError(message)


def check_names(names: list[str], network: Network, path: Path) -> None:
    if network.classes and len(names) != network.classes:
        raise ModelError(
            f"{path} has {len(names)} class names, but the cfg's output layers have "
            f"{network.classes} classes"
        )


def read_names(path: Path) -> list[str]:
    """Class names, one per line (blank lines and surrounding spaces ignored).

    The file must be a regular file of at most `MAX_TEXT_BYTES`, with at most `MAX_CLASSES`
    names of at most `MAX_NAME_CHARS` characters and no control characters: names end up in
    messages, terminal output and file names.
    """
    data, _ = _read_checked(path, "names file", MAX_TEXT_BYTES)
    names: list[str] = []
    # darknet splits on "\n" only (str.splitlines would also split on \x0b, \x1c, \u2028, ...)
    for lineno, line in enumerate(data.decode("utf-8", "replace").split("\n"), 1):
        name = line.strip()
        if not name:
            continue
        if len(name) > MAX_NAME_CHARS:
            raise ModelError(
                f"{path}: line {lineno}: a class name of {len(name):,} characters; the limit "
                f"is {MAX_NAME_CHARS}: '{excerpt(name)}'"
            )
        if any(unicodedata.category(ch) == "Cc" for ch in name):
            raise ModelError(
                f"{path}: line {lineno}: class name '{excerpt(name)}' has a control character"
            )
        names.append(name)
    if not names:
        raise ModelError(f"{path}: the names file is empty")
    if len(names) > MAX_CLASSES:
        raise ModelError(f"{path}: {len(names):,} class names; the limit is {MAX_CLASSES:,}")
    return names


def resized(network: Network, width: int, height: int) -> Network:
    """``network`` re-traced for a ``width`` x ``height`` input: every layer's shape follows
    (routes, SPP and upsample included); a `ModelError` if the layers no longer fit."""
    net = Section(
        "net",
        {"width": str(width), "height": str(height), "channels": str(network.channels)},
        0,
    )
    return describe([net, *(layer.section for layer in network.layers)])


@dataclass(frozen=True)
class ConvWeights:
    """One convolution's parameters as the weights file stores them (float32 arrays).

    ``bn`` is (scales, means, variances) of its batch norm, or None without one;
    ``weights`` is (filters, in_channels / groups, size, size)."""

    biases: np.ndarray
    bn: tuple[np.ndarray, np.ndarray, np.ndarray] | None
    weights: np.ndarray


def read_weights(network: Network, path: Path, cfg_name: str = "the cfg") -> list[ConvWeights]:
    """Every convolution's parameters from darknet weights file ``path``, in cfg order.

    The file is checked first (`check_weights`), then memory-mapped: the arrays are read-only
    views into it, so nothing is copied until a caller computes with them."""
    check_weights(network, Path(cfg_name), path)
    values = np.memmap(
        path, dtype="<f4", mode="r", offset=header_size(path), shape=(network.parameter_count,)
    )
    out: list[ConvWeights] = []
    start = 0
    for conv in network.convs:
        parts: list[np.ndarray] = []
        for count in conv.counts:
            parts.append(values[start : start + count])
            start += count
        shape = (conv.filters, conv.in_channels // conv.groups, conv.size, conv.size)
        bn = (parts[1], parts[2], parts[3]) if conv.batch_normalize else None
        out.append(ConvWeights(parts[0], bn, parts[-1].reshape(shape)))
    return out


def write_random_weights(network: Network, path: Path, seed: int = 0) -> None:
    """Write a darknet 0.2 weights file of the right layout with random values.

    Batch-norm variances are positive, and all values are small, so a forward pass runs at
    full speed on ordinary numbers (speed does not depend on the values otherwise).
    """
    rng = np.random.default_rng(seed)
    with open(path, "wb") as f:
        f.write(_HEADER_V2.pack(0, 2, 0, 0))
        for conv in network.convs:
            for i, count in enumerate(conv.counts):
                is_variance = conv.batch_normalize and i == 3
                values = rng.uniform(0.5, 1.5, count) if is_variance else rng.normal(0, 0.05, count)
                f.write(values.astype("<f4").tobytes())


def _read_checked(path: Path, kind: str, limit: int, whole: bool = True) -> tuple[bytes, int]:
    """The bytes of regular file ``path`` (all of it if ``whole``, else its first ``limit``)
    and its size, refusing HTML, empty and missing files, devices and FIFOs, and (if
    ``whole``) files over ``limit`` bytes."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer (regular files ignore it)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise ModelError(f"{path}: no such {kind}") from None
    except OSError as err:
        raise ModelError(f"{path}: cannot read the {kind}: {err.strerror}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        if stat.S_ISDIR(mode):
            raise ModelError(f"{path}: is a folder, not a {kind}")
        raise ModelError(f"{path}: not a regular file (a device, FIFO or socket), not a {kind}")
    with os.fdopen(fd, "rb") as f:
        size = os.fstat(fd).st_size
        if whole and size > limit:
            raise ModelError(f"{path}: the {kind} is {size:,} bytes; the limit is {limit:,}")
        try:
            data = f.read(limit + 1 if whole else limit)
        except OSError as err:
            raise ModelError(f"{path}: cannot read the {kind}: {err.strerror}") from None
    if whole and len(data) > limit:  # it grew since fstat
        raise ModelError(f"{path}: the {kind} is over {limit:,} bytes")
    if looks_like_html(data[:512]):
        raise ModelError(
            f"{path}: is an HTML page, not a {kind} (a failed download saved as a file?)"
        )
    if not data:
        raise ModelError(f"{path}: the {kind} is empty")
    return data, size
