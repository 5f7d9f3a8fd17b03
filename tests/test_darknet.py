"""Darknet cfg and weights layouts: checked against the real published files' sizes."""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import needs_darknet_importer
from tests.oracle import with_threshold
from yolocli.errors import ModelError
from yolocli.families.darknet.cfg import (
    check_weights,
    describe,
    header_size,
    parse_cfg,
    read_cfg,
    read_names,
    read_weights,
    resized,
    write_random_weights,
)
from yolocli.models.registry import config_dir, load_registry

REGISTRY = load_registry()


@pytest.mark.parametrize("name", list(REGISTRY.models))
def test_cfg_layout_predicts_the_published_weights_size_exactly(name: str) -> None:
    """Tracing channels through every cfg gives the real files' byte counts: the layout
    code is right for yolov3, yolov3-tiny, yolov4 (mish, SPP) and yolov4-tiny (grouped routes)."""
    model = REGISTRY.get(name)
    _, network = read_cfg(config_dir() / model.cfg.name)
    assert network.weights_size() == model.weights.size
    assert network.classes == 80


def test_random_weights_have_the_real_layout(tmp_path: Path) -> None:
    """The writer writes exactly ``weights_size()`` bytes, which the test above checks
    against all five published files; one real write here (the others are 250 MB)."""
    cfg = config_dir() / "yolov4-tiny.cfg"
    _, network = read_cfg(cfg)
    out = tmp_path / "random.weights"
    write_random_weights(network, out)
    assert out.stat().st_size == REGISTRY.get("yolov4-tiny").weights.size
    assert struct.unpack("<iiiq", out.read_bytes()[:20]) == (0, 2, 0, 0)
    check_weights(network, cfg, out)


def test_weights_for_another_network_are_refused(tmp_path: Path, tiny_weights: Path) -> None:
    cfg = config_dir() / "yolov3.cfg"
    _, network = read_cfg(cfg)
    with pytest.raises(ModelError, match=r"has 35,434,956 bytes, but yolov3.cfg needs 248,007,048"):
        check_weights(network, cfg, tiny_weights)


@pytest.mark.parametrize(
    ("head", "size"),
    [((0, 2, 0), 20), ((0, 1, 0), 16), ((1, 0, 0), 20), ((1000, 0, 0), 16)],
)
def test_header_size_follows_darknets_version_rule(
    tmp_path: Path, head: tuple[int, int, int], size: int
) -> None:
    path = tmp_path / "w.weights"
    path.write_bytes(struct.pack("<iii", *head) + b"\0" * 8)
    assert header_size(path) == size


def test_html_and_missing_files_are_named(tmp_path: Path) -> None:
    page = tmp_path / "yolov3.weights"
    page.write_bytes(b"\n<!DOCTYPE html><html><body>Not Found</body></html>")
    with pytest.raises(ModelError, match="is an HTML page, not a weights file"):
        header_size(page)
    with pytest.raises(ModelError, match="no such cfg file"):
        read_cfg(tmp_path / "missing.cfg")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("hello world", "not a darknet cfg line"),
        ("[convolutional]\nfilters=3\n", "must start with a \\[net\\] section"),
        ("[net]\n[convolutional]\nsize=3\n", "needs filters="),
        ("[net]\n[route]\nlayers=-4\n", "layers=-4: refers to layer -4, but it is the first layer"),
        ("[net]\n[transformer]\n", "unsupported layer \\[transformer\\]"),
    ],
)
def test_bad_cfgs_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        describe(parse_cfg(text, "x.cfg"), "x.cfg")


def test_with_threshold_rewrites_every_output_layer() -> None:
    text = (config_dir() / "yolov3-tiny.cfg").read_text()
    patched = parse_cfg(with_threshold(text + "\n[yolo]\nthresh = .7\nclasses=80\n", 0.05))
    outputs = [s for s in patched if s.type == "yolo"]
    assert len(outputs) == 3
    assert all(s.options["thresh"] == "0.05" for s in outputs)
    others = [s for s in patched if s.type != "yolo"]
    assert all("thresh" not in s.options for s in others)


# A small valid network: one convolution and a one-class YOLO head (3 x (1 + 5) = 18 filters).
NET = "[net]\nwidth=64\nheight=64\nchannels=3\n"
CONV = "[convolutional]\nbatch_normalize=1\nfilters=16\nsize=3\nstride=1\npad=1\nactivation=leaky\n"
HEAD = (
    "[convolutional]\nfilters=18\nsize=1\nstride=1\nactivation=linear\n"
    "[yolo]\nmask=0,1,2\nanchors=10,13,16,30,33,23\nclasses=1\nnum=3\n"
)
MINI = NET + CONV + HEAD


def mini(old: str = "", new: str = "", text: str = MINI) -> str:
    """MINI with the first ``old`` replaced by ``new`` (``old`` must be there)."""
    assert old in text
    return text.replace(old, new, 1)


def test_the_small_network_is_valid() -> None:
    network = describe(parse_cfg(MINI, "x.cfg"), "x.cfg")
    assert (network.width, network.height, network.channels, network.classes) == (64, 64, 3, 1)
    # biases, BN scales/means/variances, 16x3x3x3 weights; biases, 18x16 weights
    assert network.parameter_count == 16 * 4 + 16 * 27 + 18 + 18 * 16


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # numbers the layout divides by, or that size an allocation
        (
            mini("stride=1\npad=1", "stride=1\npad=1\ngroups=0"),
            r"line 11: \[convolutional\] groups=0: must be between 1 and",
        ),
        (
            mini("stride=1\npad=1", "stride=1\npad=1\ngroups=3"),
            r"groups=3: filters=16 is not a multiple of groups",
        ),
        (
            mini("filters=16", "filters=15").replace("filters=18", "filters=18\ngroups=2"),
            r"groups=2: 15 input channels are not a multiple of groups",
        ),
        (mini("filters=16", "filters=0"), r"filters=0: must be between 1 and"),
        (mini("filters=16", "filters=-16"), r"filters=-16: must be between 1 and"),
        (mini("filters=16", "filters=1e3"), r"filters=1e3: not a whole number"),
        (mini("filters=16", "filters=\u0661\u0666"), r"not a whole number"),
        (mini("filters=16", "filters=99999999999999999999"), r"must be between 1 and"),
        (mini("size=3", "size=0"), r"size=0: must be between 1 and"),
        (mini("size=3", "size=999"), r"size=999: must be between 1 and"),
        (mini("size=3\n", ""), r"\[convolutional\] needs size="),
        (mini("stride=1\npad=1", "stride=0\npad=1"), r"stride=0: must be between 1 and"),
        (
            mini("batch_normalize=1", "batch_normalize=2"),
            r"batch_normalize=2: must be between 0 and 1",
        ),
        (mini("width=64", "width=32000"), r"\[net\] width=32000: must be between 32 and 4096"),
        (mini("height=64", "height=100"), r"\[net\] height=100: must be a multiple of 32"),
        (mini("channels=3", "channels=0"), r"channels=0: must be between 1 and 4"),
        (mini("channels=3", "channels=5"), r"channels=5: must be between 1 and 4"),
        (
            mini("width=64\nheight=64", "width=4096\nheight=4096").replace(
                "filters=16", "filters=8192"
            ),
            r"output of 8192x4096x4096 values is too large",
        ),
        # the YOLO head
        (mini("classes=1", "classes=0"), r"\[yolo\] classes=0: must be between 1 and"),
        (mini("num=3", "num=0"), r"\[yolo\] num=0: must be between 1 and"),
        (
            mini("anchors=10,13,16,30,33,23", "anchors=10,13,16"),
            r"anchors=10,13,16: needs 2 x num=3 = 6 numbers, not 3",
        ),
        (
            mini("anchors=10,13,16,30,33,23", "anchors=10,13,16,30,33,nan"),
            r"anchors=.*: nan is not a positive number",
        ),
        (mini("mask=0,1,2", "mask=0,1,5"), r"mask=0,1,5: 5 is not an anchor index \(0 to 2\)"),
        (mini("mask=0,1,2\n", ""), r"\[yolo\] needs mask="),
        (
            mini("filters=18", "filters=255"),
            r"\[yolo\] gets 255 channels, but mask=0,1,2 and classes=1 need 18",
        ),
        # routes and shortcuts
        (
            mini("[yolo]", "[route]\nlayers=5\n[yolo]"),
            r"\[route\] layers=5: refers to layer 5, but only layers 0 to 1 come before it",
        ),
        (
            mini("[yolo]", "[route]\nlayers=-1,x\n[yolo]"),
            r"\[route\] layers=-1,x: not a list of whole numbers",
        ),
        (
            mini("[yolo]", "[route]\nlayers=-1\ngroups=0\n[yolo]"),
            r"\[route\] groups=0: must be between 1 and",
        ),
        (
            mini("[yolo]", "[route]\nlayers=-1\ngroups=2\ngroup_id=2\n[yolo]"),
            r"group_id=2: must be between 0 and 1",
        ),
        (
            mini("[yolo]", "[route]\nlayers=-1\ngroups=4\n[yolo]"),
            r"layer 1 has 18 channels, not a multiple of groups=4",
        ),
        (
            NET + CONV + "[maxpool]\nsize=2\nstride=2\n[route]\nlayers=-1,-2\n" + HEAD,
            r"\[route\] layers=-1,-2: layer 1 is 32x32 but layer 0 is 64x64",
        ),
        (
            mini("[yolo]", "[shortcut]\nfrom=-9\n[yolo]"),
            r"\[shortcut\] from=-9: refers to layer -7",
        ),
        (
            mini("[yolo]", "[shortcut]\nfrom=-2\nweights_type=per_channel\n[yolo]"),
            r"\[shortcut\] weights_type=per_channel: not supported",
        ),
        (NET + CONV + "[upsample]\n" + HEAD, r"\[upsample\] needs stride="),
        (NET + CONV + "[maxpool]\nsize=2\n" + HEAD, r"\[maxpool\] needs stride="),
        # spatial sizes that vanish
        (
            mini("stride=1\npad=1", "stride=32\npad=1").replace("size=1\n", "size=3\n"),
            r"\[convolutional\] output would be 0x0",
        ),
        # options that change the layer in darknet but that OpenCV ignores or refuses
        (
            mini("stride=1\npad=1", "stride=1\npad=1\ndilation=2"),
            r"\[convolutional\] dilation=2: not supported",
        ),
        (mini("stride=1\npad=1", "stride=1\npad=1\nstride_x=2"), r"stride_x=2: not supported"),
        (mini("stride=1\npad=1", "stride=1\npad=1\ndontload=1"), r"dontload=1: not supported"),
        (mini("activation=leaky", "activation=relu"), r"activation=relu: not one of linear, leaky"),
        (
            mini("[convolutional]", "[conv]"),
            r"line 5: \[conv\] is darknet's other name for \[convolutional\]; OpenCV's",
        ),
        (mini("[net]", "[network]"), r"line 1: \[network\] is darknet's other name for \[net\]"),
        # the text itself
        (
            mini("height=64", "height=64\nwidth=96"),
            r"line 4: \[net\] width= is given twice with different values \(lines 2 and 4\)",
        ),
        (mini("activation=leaky", "activation=\x1b[2J"), r"activation=\\x1b\[2J: not one of"),
        ("[net\n", r"line 1: unclosed section header"),
        ("[net]\n[" + "x" * 100_000 + "]\n", r"unsupported layer \[x{20}"),
    ],
)
def test_hostile_cfgs_are_refused_by_line_section_and_option(text: str, message: str) -> None:
    with pytest.raises(ModelError, match=message) as err:
        describe(parse_cfg(text, "x.cfg"), "x.cfg")
    assert str(err.value).startswith("x.cfg: ")
    assert len(str(err.value)) < 300


@pytest.mark.parametrize(
    "text",
    [
        mini("filters=16", "filters=" + "9" * 1_000_000),
        mini("activation=leaky", "activation=" + "y" * 1_000_000),
        "[net]\n" + "k" * 1_000_000 + "\n",
        "[net\n" + "x" * 1_000_000,
        "[net]\n[" + "x" * 1_000_000 + "]\n",
    ],
)
def test_messages_quote_only_an_excerpt_of_what_the_file_says(text: str) -> None:
    with pytest.raises(ModelError) as err:
        describe(parse_cfg(text, "x.cfg"), "x.cfg")
    assert len(str(err.value)) < 300


def test_network_keeps_each_layers_section_and_shape() -> None:
    """What the coming ONNX compiler walks: every layer's section and its output shape."""
    _, network = read_cfg(config_dir() / "yolov4-tiny.cfg")
    assert len(network.layers) == 38
    first, split = network.layers[0], network.layers[3]
    assert (first.section.type, first.section.line, first.shape) == (
        "convolutional",
        34,
        (32, 208, 208),
    )
    assert (split.section.type, split.inputs, split.shape) == ("route", (2,), (32, 104, 104))
    heads = [layer for layer in network.layers if layer.section.type == "yolo"]
    assert [h.shape for h in heads] == [(255, 13, 13), (255, 26, 26)]


def test_real_weights_fit_their_cfg_exactly(tiny_weights: Path) -> None:
    cfg = config_dir() / "yolov3-tiny.cfg"
    _, network = read_cfg(cfg)
    check_weights(network, cfg, tiny_weights)


def test_weights_larger_than_the_cfg_needs_are_refused(tiny_weights: Path) -> None:
    """Bug 6: the yolov3-tiny weights are 11 MB more than yolov4-tiny needs; they loaded
    silently and found nothing."""
    cfg = config_dir() / "yolov4-tiny.cfg"
    _, network = read_cfg(cfg)
    with pytest.raises(
        ModelError,
        match=r"has 35,434,956 bytes, but yolov4-tiny.cfg needs 24,251,276: the weights belong "
        r"to a different network \(11,183,680 bytes too many\)",
    ):
        check_weights(network, cfg, tiny_weights)


def _mini_weights(tmp_path: Path) -> tuple[Path, Path, int]:
    """A cfg file of the small network, its random weights, and their exact size."""
    cfg = tmp_path / "mini.cfg"
    cfg.write_text(MINI)
    _, network = read_cfg(cfg)
    weights = tmp_path / "mini.weights"
    write_random_weights(network, weights)
    return cfg, weights, network.weights_size()


@pytest.mark.parametrize(
    ("delta", "message"),
    [
        (4, r"has 3,232 bytes, but mini.cfg needs 3,228: .* \(4 bytes too many\)"),
        (-4, r"has 3,224 bytes, but mini.cfg needs 3,228: .* or the file is truncated"),
        (1, r"has 3,229 bytes, but mini.cfg needs 3,228"),
    ],
)
def test_weights_one_float_off_are_refused(tmp_path: Path, delta: int, message: str) -> None:
    cfg, weights, size = _mini_weights(tmp_path)
    assert size == 3228
    check_weights(describe(parse_cfg(MINI)), cfg, weights)
    data = weights.read_bytes()
    weights.write_bytes(data + b"\0" * delta if delta > 0 else data[:delta])
    with pytest.raises(ModelError, match=message):
        check_weights(describe(parse_cfg(MINI)), cfg, weights)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (struct.pack("<iiiq", 0, 2, 0, 0), None),
        # darknet < 0.2 wrote a 16-byte header (a 32-bit count of images seen): still exact
        (struct.pack("<iiii", 0, 1, 0, 0), None),
        # a 0.2 header is 20 bytes: this file, 4 bytes short, would be read shifted by a word
        (
            struct.pack("<iiii", 0, 2, 0, 0),
            r"needs 3,228: .* \(it would fit a 16-byte header, but its version 0.2 has 20\)",
        ),
        (struct.pack("<iiiq", 1000, 0, 0, 0), r"version 1000.0: not a darknet weights header"),
        (struct.pack("<iiiq", -1, 5, 0, 0), r"version -1.5: not a darknet weights header"),
    ],
)
def test_weights_header_version_decides_its_size(
    tmp_path: Path, header: bytes, message: str | None
) -> None:
    cfg, weights, _ = _mini_weights(tmp_path)
    weights.write_bytes(header + weights.read_bytes()[20:])
    network = describe(parse_cfg(MINI))
    if message is None:
        check_weights(network, cfg, weights)
    else:
        with pytest.raises(ModelError, match=message):
            check_weights(network, cfg, weights)


def _special(tmp_path: Path, kind: str) -> Path:
    if kind == "fifo":
        path = tmp_path / "fifo"
        os.mkfifo(path)
        return path
    if kind == "folder":
        return tmp_path
    if kind == "huge":
        path = tmp_path / "huge"
        with open(path, "wb") as f:
            f.truncate(2 << 20)  # sparse: 2 MiB of zeros without writing them
        return path
    return Path("/dev/zero")


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("device", r"/dev/zero: not a regular file"),
        ("fifo", r"fifo: not a regular file"),
        ("folder", r"is a folder, not a"),
        ("huge", r"huge: the \w+ file is 2,097,152 bytes; the limit is 1,048,576"),
    ],
)
@pytest.mark.parametrize("reader", ["cfg", "names"])
def test_cfg_and_names_files_are_read_with_a_size_cap(
    tmp_path: Path, kind: str, message: str, reader: str
) -> None:
    """/dev/zero grew until MemoryError; a FIFO hung the process."""
    path = _special(tmp_path, kind)
    with pytest.raises(ModelError, match=message):
        read_cfg(path) if reader == "cfg" else read_names(path)


@pytest.mark.parametrize(
    ("kind", "message"),
    [("device", r"not a regular file"), ("fifo", r"not a regular file"), ("folder", "is a folder")],
)
def test_weights_must_be_a_regular_file(tmp_path: Path, kind: str, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        check_weights(describe(parse_cfg(MINI)), Path("mini.cfg"), _special(tmp_path, kind))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "person\n" + "x" * 1_000_000 + "\n",
            r"line 2: a class name of 1,000,000 characters; the limit is 128: 'xxxx",
        ),
        (
            "person\nbi\x1b[31mcycle\n",
            r"line 2: class name 'bi\\x1b\[31mcycle' has a control character",
        ),
        ("\n \n\t\n", r"the names file is empty"),
        ("a\n" * 10_001, r"10,001 class names; the limit is 10,000"),
    ],
)
def test_bad_names_files_are_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "x.names"
    path.write_text(text)
    with pytest.raises(ModelError, match=message) as err:
        read_names(path)
    assert len(str(err.value)) < 300 + len(str(path))


def test_names_keep_darknets_lines() -> None:
    names = read_names(config_dir() / "coco.names")
    assert (len(names), names[9]) == (80, "traffic light")


@needs_darknet_importer
def test_opencv_loads_what_describe_accepts_with_the_traced_shapes(tmp_path: Path) -> None:
    """Every layer kind the tracer knows (grouped conv and route, shortcut, reorg, upsample,
    multi-input route, two heads): OpenCV's importer loads the random weights, and its
    output rows are the traced height x width x anchors."""
    yolo = "[yolo]\nmask=0,1,2\nanchors=10,13,16,30,33,23\nclasses=1\nnum=3\n"

    def conv(filters: int, size: int = 1, extra: str = "activation=leaky\n") -> str:
        return f"[convolutional]\nfilters={filters}\nsize={size}\nstride=1\npad=1\n{extra}"

    head = conv(18, extra="activation=linear\n") + yolo
    text = (
        NET
        + conv(16, 3, "batch_normalize=1\nactivation=mish\n")
        + "[maxpool]\nsize=2\nstride=2\n"
        + conv(32, 3, "groups=2\n")
        + "[route]\nlayers=-1\ngroups=2\ngroup_id=1\n"
        + conv(32)
        + "[shortcut]\nfrom=-3\n"
        + "[reorg]\nstride=2\n"
        + head
        + "[route]\nlayers=-5\n[upsample]\nstride=2\n[route]\nlayers=-1,0\n"
        + head
    )
    cfg, weights = tmp_path / "kinds.cfg", tmp_path / "kinds.weights"
    cfg.write_text(text)
    _, network = read_cfg(cfg)
    write_random_weights(network, weights)
    check_weights(network, cfg, weights)
    heads = [layer.shape for layer in network.layers if layer.section.type == "yolo"]
    assert heads == [(18, 16, 16), (18, 64, 64)]

    net = cv2.dnn.readNetFromDarknet(str(cfg), str(weights))
    net.setInput(np.zeros((1, 3, 64, 64), np.float32))
    outputs = net.forward(net.getUnconnectedOutLayersNames())
    assert [o.shape for o in outputs] == [(h * w * 3, 6) for _, h, w in heads]


@pytest.mark.parametrize("name", ["yolov4", "yolov4-tiny", "yolov3-tiny"])
@pytest.mark.parametrize(("width", "height"), [(320, 320), (640, 192)])
def test_resized_traces_like_a_cfg_written_at_that_size(name: str, width: int, height: int) -> None:
    text = (config_dir() / f"{name}.cfg").read_text()
    _, network = read_cfg(config_dir() / f"{name}.cfg")
    text = re.sub(r"(?m)^width\s*=.*$", f"width={width}", text)
    written = describe(parse_cfg(re.sub(r"(?m)^height\s*=.*$", f"height={height}", text)))
    again = resized(network, width, height)
    assert (again.width, again.height) == (written.width, written.height) == (width, height)
    assert [ly.shape for ly in again.layers] == [ly.shape for ly in written.layers]
    assert again.convs == network.convs  # the weights do not depend on the size


def test_read_weights_splits_the_file_into_each_convolutions_arrays(tmp_path: Path) -> None:
    network = describe(parse_cfg(MINI, "x.cfg"), "x.cfg")
    values = np.arange(network.parameter_count, dtype="<f4")
    path = tmp_path / "x.weights"
    path.write_bytes(struct.pack("<iiiq", 0, 2, 0, 0) + values.tobytes())
    first, head = read_weights(network, path)
    assert first.biases.tolist() == list(range(16))
    assert first.bn is not None
    assert [a.tolist() for a in first.bn] == [list(range(16 * k, 16 * k + 16)) for k in (1, 2, 3)]
    assert first.weights.shape == (16, 3, 3, 3)
    assert first.weights[1, 0, 0, 0] == 64 + 27  # filter-major, as darknet stores it
    assert head.bn is None
    assert head.biases[0] == 64 + 16 * 27
    assert head.weights.shape == (18, 16, 1, 1)
    assert head.weights[-1, -1, 0, 0] == network.parameter_count - 1
    path.write_bytes(path.read_bytes()[:-4])
    with pytest.raises(ModelError, match="or the file is truncated"):
        read_weights(network, path)


def test_a_layout_too_large_for_one_graph_is_refused_before_the_weights_are_read(
    tmp_path: Path,
) -> None:
    """Every layer within its own limits, 2.4 GB in all: the sparse weights file of exactly that
    size is refused from the cfg's arithmetic, neither hashed nor mapped (the audit's B13)."""
    cfg = tmp_path / "huge.cfg"
    cfg.write_text(
        "[net]\nwidth=32\nheight=32\nchannels=3\n\n"
        "[convolutional]\nfilters=8192\nsize=1\nstride=1\npad=1\nactivation=leaky\n\n"
        "[convolutional]\nfilters=8192\nsize=3\nstride=1\npad=1\nactivation=leaky\n"
    )
    _, network = read_cfg(cfg)
    weights = tmp_path / "huge.weights"
    with open(weights, "wb") as f:
        f.write(struct.pack("<iiiq", 0, 2, 0, 0))
        f.truncate(network.weights_size())  # sparse: no disk used
    assert network.weights_size() > 2**31
    with pytest.raises(ModelError, match=r"huge\.cfg's layers need 2,4\d\d,\d{3},\d{3} bytes"):
        check_weights(network, cfg, weights)
