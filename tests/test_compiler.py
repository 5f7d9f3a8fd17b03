"""The ONNX compiler against OpenCV 4's darknet importer: the same raw heads from the same
weights, for every registered cfg, at several sizes and batch sizes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import onnx
import pytest

from tests.conftest import DATA, needs_darknet_importer
from yolocli.errors import ModelError, OptionError
from yolocli.families.darknet import cfg as darknet
from yolocli.families.darknet.compiler import INPUT, compile_onnx, head_names
from yolocli.families.darknet.letterbox import letterbox
from yolocli.models.registry import config_dir

ort = pytest.importorskip("onnxruntime", reason="the compiled graphs are run by ONNX Runtime")


TOLERANCE = 1e-3  # max abs on heads whose values reach ~10-50
PHOTOS = sorted((DATA / "images").iterdir())
# Small inputs keep the big networks cheap; 96 and 160 give odd grids (3x3, 5x5), where
# darknet's max-pool padding and the route/upsample shapes are easiest to get wrong.
SIZES = {"yolov3-tiny": 160, "yolov4-tiny": 160, "yolov3": 96, "yolov3-spp": 96, "yolov4": 96}
# Each head's stride, in cfg order (yolov4 lists its heads finest first).
STRIDES = {
    "yolov3-tiny": (32, 16),
    "yolov4-tiny": (32, 16),
    "yolov3": (32, 16, 8),
    "yolov3-spp": (32, 16, 8),
    "yolov4": (8, 16, 32),
}
Array = npt.NDArray[np.float32]


def network_of(name: str) -> darknet.Network:
    return darknet.read_cfg(config_dir() / f"{name}.cfg")[1]


def write_scaled_weights(network: darknet.Network, path: Path, seed: int = 0) -> None:
    """Random weights of the real layout, scaled so that head values reach ~10-50 as a
    trained network's do: He-scaled kernels, small residual branches (so 23 shortcuts do not
    blow up), batch norms near identity. With `darknet.write_random_weights`' tiny values the
    heads are nearly their last biases, and a wrong early layer would hardly show."""
    rng = np.random.default_rng(seed)
    layer_of_conv = [i for i, ly in enumerate(network.layers) if ly.section.type == "convolutional"]
    residual = {ly.inputs[0] for ly in network.layers if ly.section.type == "shortcut"}
    with open(path, "wb") as f:
        f.write(np.array([0, 2, 0, 0, 0], "<i4").tobytes())  # version 0.2.0, 64-bit seen
        for index, conv in zip(layer_of_conv, network.convs, strict=True):
            fan_in = conv.in_channels // conv.groups * conv.size * conv.size
            gain = 0.2 if index in residual else 1.0
            n = conv.filters
            parts = [rng.normal(0, 0.1, n)]
            if conv.batch_normalize:
                parts += [rng.normal(1, 0.1, n), rng.normal(0, 0.1, n), rng.uniform(0.5, 1.5, n)]
            kernel = rng.standard_normal(conv.counts[-1], dtype=np.float32)
            parts.append(kernel * np.float32(gain * np.sqrt(2 / fan_in)))
            for part in parts:
                f.write(np.asarray(part, "<f4").tobytes())


@pytest.fixture(scope="session")
def random_weights(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """Weights for a registered cfg, written once per session (the big ones are 250 MB)."""
    folder = tmp_path_factory.mktemp("random-weights")

    def get(name: str) -> Path:
        path = folder / f"{name}.weights"
        if not path.exists():
            write_scaled_weights(network_of(name), path)
        return path

    return get


def run_onnx(model: bytes, blob: Array) -> list[Array]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == [INPUT]
    return [np.asarray(o) for o in session.run(None, {INPUT: blob})]


def opencv_heads(cfg: Path, weights: Path, blob: Array) -> list[Array]:
    """OpenCV's raw heads: the output of the layer just before each of its ``permute_K``
    layers (its last step of the convolution feeding ``yolo_K``, e.g. conv_15 and conv_22 of
    yolov3-tiny), which is before any sigmoid."""
    net = cv2.dnn.readNetFromDarknet(str(cfg), str(weights))
    names = list(net.getLayerNames())
    feeds = [names[i - 1] for i, name in enumerate(names) if name.startswith("permute_")]
    net.setInput(blob)
    return [np.asarray(o) for o in net.forward(feeds)]


def photo_blob(width: int, height: int, photos: list[Path] | None = None) -> Array:
    """Letterboxed photos as one batch (two of them unless ``photos`` says otherwise)."""
    chosen = photos if photos is not None else PHOTOS[:2]
    images = [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in chosen]
    return np.concatenate([letterbox(img, width, height) for img in images])


def compare(name: str, weights: Path, width: int, height: int, blob: Array) -> float:
    """Compile, check, run with ONNX Runtime and OpenCV; the max abs head difference."""
    network = network_of(name)
    model = compile_onnx(network, weights, size=(width, height)).SerializeToString()
    onnx.checker.check_model(model, full_check=True)  # also infers and checks the shapes
    ours = run_onnx(model, blob)
    theirs = opencv_heads(config_dir() / f"{name}.cfg", weights, blob)
    yolos = [ly for ly in network.layers if ly.section.type == "yolo"]
    assert len(ours) == len(theirs) == len(yolos) == len(head_names(network))
    worst = 0.0
    for a, b, yolo, stride in zip(ours, theirs, yolos, STRIDES[name], strict=True):
        channels = len(yolo.section.options["mask"].split(",")) * (5 + network.classes)
        assert a.shape == b.shape == (blob.shape[0], channels, height // stride, width // stride)
        assert np.isfinite(a).all()  # max() below would skip a NaN
        assert np.isfinite(b).all()
        worst = max(worst, float(np.abs(a - b).max()))
    print(f"\n{name} {width}x{height} batch {blob.shape[0]}: max abs head difference {worst:.2e}")
    return worst


@needs_darknet_importer
@pytest.mark.parametrize("name", list(SIZES))
def test_every_registered_cfg_compiles_to_opencvs_raw_heads(
    name: str, random_weights: Callable[[str], Path]
) -> None:
    """All layer types of the five cfgs (mish, SPP, route groups, shortcuts, size-2 stride-1
    pooling), at a size other than the cfg's, batch 2."""
    size = SIZES[name]
    assert compare(name, random_weights(name), size, size, photo_blob(size, size)) < TOLERANCE


@needs_darknet_importer
def test_real_yolov3_tiny_weights_on_the_reference_photos(tiny_weights: Path) -> None:
    """The trained network on all six reference photos at the cfg's 416, one batch."""
    blob = photo_blob(416, 416, PHOTOS)
    assert compare("yolov3-tiny", tiny_weights, 416, 416, blob) < TOLERANCE


@needs_darknet_importer
@pytest.mark.parametrize(
    ("name", "width", "height"),
    [("yolov3-tiny", 320, 320), ("yolov4-tiny", 320, 320), ("yolov4-tiny", 320, 192)],
)
def test_other_sizes_follow_the_network(
    name: str, width: int, height: int, random_weights: Callable[[str], Path]
) -> None:
    """``size`` is (width, height): a 320x192 input gives 10x6 and 20x12 grids."""
    blob = photo_blob(width, height)
    assert compare(name, random_weights(name), width, height, blob) < TOLERANCE


@pytest.fixture(scope="module")
def tiny_model(random_weights: Callable[[str], Path]) -> bytes:
    return compile_onnx(
        network_of("yolov3-tiny"), random_weights("yolov3-tiny")
    ).SerializeToString()


def test_the_batch_dimension_is_dynamic(tiny_model: bytes) -> None:
    """One graph runs batches of 1, 2 and 3; each image's heads do not depend on its batch."""
    blob = photo_blob(416, 416, PHOTOS[:3])
    alone = [run_onnx(tiny_model, blob[i : i + 1]) for i in range(3)]
    for n in (1, 2, 3):
        batched = run_onnx(tiny_model, blob[:n])
        assert [h.shape for h in batched] == [(n, 255, 13, 13), (n, 255, 26, 26)]
        for i in range(n):
            for head, single in zip(batched, alone[i], strict=True):
                np.testing.assert_allclose(head[i : i + 1], single, atol=1e-4)


def test_the_graph_says_what_it_takes_and_gives(tiny_model: bytes) -> None:
    """The contract engines and users rely on: input name and (N, 3, H, W) float32, one
    output per [yolo] layer named head_K, batch dimension symbolic."""
    graph = onnx.load_from_string(tiny_model).graph

    def dims(value: onnx.ValueInfoProto) -> list[int | str]:
        return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]

    assert [(v.name, dims(v)) for v in graph.input] == [(INPUT, ["N", 3, 416, 416])]
    assert [(v.name, dims(v)) for v in graph.output] == [
        ("head_0", ["N", 255, 13, 13]),
        ("head_1", ["N", 255, 26, 26]),
    ]
    assert {v.type.tensor_type.elem_type for v in [*graph.input, *graph.output]} == {
        onnx.TensorProto.FLOAT
    }


def test_compiling_is_deterministic(
    tiny_model: bytes, random_weights: Callable[[str], Path]
) -> None:
    again = compile_onnx(network_of("yolov3-tiny"), random_weights("yolov3-tiny"))
    assert again.SerializeToString() == tiny_model


# A small valid network: a convolution with batch norm and a one-class head (3 x 6 filters).
NET = "[net]\nwidth=64\nheight=64\nchannels=3\n"
CONV = "[convolutional]\nbatch_normalize=1\nfilters=16\nsize=3\nstride=1\npad=1\nactivation=leaky\n"
HEAD = (
    "[convolutional]\nfilters=18\nsize=1\nstride=1\nactivation=linear\n"
    "[yolo]\nmask=0,1,2\nanchors=10,13,16,30,33,23\nclasses=1\nnum=3\n"
)


def compile_text(tmp_path: Path, text: str, size: tuple[int, int] | None = None) -> onnx.ModelProto:
    network = darknet.describe(darknet.parse_cfg(text, "x.cfg"), "x.cfg")
    weights = tmp_path / "x.weights"
    darknet.write_random_weights(network, weights)
    return compile_onnx(network, weights, size=size)


# Every layer type in one small network: grouped route, size-2 stride-1 and SPP pooling, a
# shortcut with an activation, upsample, a convolution without batch norm.
EVERY_LAYER = (
    NET
    + CONV.replace("leaky", "{act}")  # 0: 16 x 64 x 64
    + "[maxpool]\nsize=2\nstride=1\n"  # 1
    + CONV.replace("stride=1", "stride=2").replace("leaky", "{act}")  # 2: 16 x 32 x 32
    + "[route]\nlayers=-1\ngroups=2\ngroup_id=1\n"  # 3: 8 x 32 x 32
    + "[convolutional]\nfilters=16\nsize=1\nstride=1\nactivation={act}\n"  # 4
    + "[shortcut]\nfrom=-3\nactivation={act}\n"  # 5
    + "[upsample]\nstride=2\n"  # 6: 16 x 64 x 64
    + "[route]\nlayers=-1,0\n"  # 7: 32 x 64 x 64
    + "[maxpool]\nsize=5\nstride=1\n"  # 8
    + HEAD
)


@needs_darknet_importer
@pytest.mark.parametrize("opset", [13, 18])
@pytest.mark.parametrize("act", ["linear", "leaky", "mish", "logistic", "swish"])
def test_every_activation_and_layer_type_at_both_opsets(
    tmp_path: Path, act: str, opset: int
) -> None:
    """Opset 18 and later compute mish with ONNX's own Mish operator, earlier ones spell it."""
    cfg = tmp_path / "x.cfg"
    cfg.write_text(EVERY_LAYER.format(act=act))
    network = darknet.read_cfg(cfg)[1]
    weights = tmp_path / "x.weights"
    write_scaled_weights(network, weights)
    model = compile_onnx(network, weights, opset=opset).SerializeToString()
    onnx.checker.check_model(model, full_check=True)
    blob = photo_blob(64, 64)
    (ours,), (theirs,) = run_onnx(model, blob), opencv_heads(cfg, weights, blob)
    assert ours.shape == theirs.shape == (2, 18, 64, 64)
    assert np.isfinite(ours).all()
    assert np.abs(theirs).max() > 1
    assert np.abs(ours - theirs).max() < TOLERANCE


@pytest.mark.parametrize("between", ["[dropout]\n", "[route]\nlayers=-1\n"])
def test_a_head_behind_a_pass_through_layer(tmp_path: Path, between: str) -> None:
    """A [yolo] fed by a layer that makes no node of its own still gets its named output,
    equal to the same network without that layer (which has no weights)."""
    plain = compile_text(tmp_path, NET + CONV + HEAD).SerializeToString()
    text = NET + CONV + HEAD.replace("[yolo]", between + "[yolo]")
    model = compile_text(tmp_path, text).SerializeToString()
    onnx.checker.check_model(model, full_check=True)
    blob = photo_blob(64, 64)
    (ours,), (expected,) = run_onnx(model, blob), run_onnx(plain, blob)
    assert ours.shape == expected.shape == (2, 18, 64, 64)
    np.testing.assert_array_equal(ours, expected)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            CONV + "[upsample]\nstride=2\nscale=0.5\n" + HEAD,
            r"cfg line 14: layer 1 \[upsample\]: scale=0.5 is not supported",
        ),
        (
            CONV + CONV + "[shortcut]\nfrom=-2\nalpha=0.5\n" + HEAD,
            r"cfg line 21: layer 2 \[shortcut\]: alpha=0.5 is not supported",
        ),
        (
            CONV + "[convolutional]\nfilters=8\nsize=1\n[shortcut]\nfrom=-2\n" + HEAD,
            r"cfg line 15: layer 2 \[shortcut\]: adds layer 0's 16 channels to 8",
        ),
        (
            CONV + "[reorg]\nstride=2\n" + HEAD,
            r"cfg line 12: layer 1 \[reorg\]: this layer type is not supported",
        ),
        (
            CONV + "[maxpool]\nsize=2\nstride=1\npadding=4\n" + HEAD,
            r"cfg line 15: layer 1 \[maxpool\]: padding=4 is not supported",
        ),
        (CONV, "no \\[yolo\\] layer"),
        (
            CONV + HEAD + "[route]\nlayers=-1\n" + HEAD,
            r"cfg line 22: layer 3 \[route\]: reads the output of \[yolo\] layer 2",
        ),
    ],
)
def test_what_the_compiler_cannot_translate_is_named(
    tmp_path: Path, body: str, message: str
) -> None:
    with pytest.raises(ModelError, match=message):
        compile_text(tmp_path, NET + body)


@pytest.mark.parametrize("size", [(100, 64), (64, 0), (8192, 64)])
def test_bad_sizes_are_refused(tmp_path: Path, size: tuple[int, int]) -> None:
    with pytest.raises(OptionError, match="size: width and height must be multiples of 32"):
        compile_text(tmp_path, NET + CONV + HEAD, size=size)


def test_weights_of_another_network_are_refused(tmp_path: Path, tiny_weights: Path) -> None:
    with pytest.raises(ModelError, match="but the cfg needs"):
        compile_onnx(network_of("yolov4-tiny"), tiny_weights)
