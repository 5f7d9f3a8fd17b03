"""Decoding raw YOLO heads in NumPy against OpenCV 4's darknet [yolo] layer (the oracle).

OpenCV's importer computes what darknet's forward_yolo_layer / get_yolo_box do (scale_x_y
and new_coords included), so every test here forwards one network in OpenCV, takes both the
raw convolution outputs feeding the [yolo] layers and the [yolo] layers' own rows, and
checks that `decode(raw)` gives those rows, in the same order.
"""

from __future__ import annotations

import json
import re
import struct
import warnings
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import DATA, needs_darknet_importer
from tests.oracle import with_threshold
from yolocli.errors import ModelError
from yolocli.families.darknet import cfg as darknet
from yolocli.families.darknet.heads import YoloHead, decode, decode_batch, yolo_heads
from yolocli.families.darknet.letterbox import Letterbox, Letterboxer
from yolocli.models.registry import config_dir
from yolocli.postprocess import Postprocess

# float32 rounding: OpenCV writes x as (x + (s - 0.5) * scale + 0.5) / W where darknet (and
# decode) write (x + s * scale - (scale - 1) / 2) / W, and its exp is float, not double.
TOLERANCE = 1e-5
REGISTERED = ("yolov3-tiny", "yolov3", "yolov3-spp", "yolov4-tiny", "yolov4")
PHOTOS = sorted(p.name for p in (DATA / "images").iterdir())


def opencv_heads(
    cfg_text: str, weights: Path, blob: np.ndarray, tmp_path: Path
) -> tuple[list[YoloHead], list[np.ndarray], np.ndarray]:
    """(heads, raw head tensors (N, A*(5+C), H, W), OpenCV's [yolo] rows (N, R, 5 + C))."""
    cfg = tmp_path / "net.cfg"
    cfg.write_text(with_threshold(cfg_text, 0.0))
    net = cv2.dnn.readNetFromDarknet(str(cfg), str(weights))
    heads = yolo_heads(darknet.describe(darknet.parse_cfg(cfg_text)))
    names = list(net.getLayerNames())
    outputs = [f"yolo_{h.layer}" for h in heads]
    assert list(net.getUnconnectedOutLayersNames()) == outputs
    raw_names = [names[names.index(f"permute_{h.layer}") - 1] for h in heads]
    net.setInput(blob)
    outs = net.forward(outputs + raw_names)
    n = blob.shape[0]
    rows = np.concatenate([o.reshape(n, -1, o.shape[-1]) for o in outs[: len(heads)]], axis=1)
    return heads, list(outs[len(heads) :]), rows


def sized(cfg_text: str, width: int, height: int) -> str:
    text = re.sub(r"(?m)^width\s*=.*$", f"width={width}", cfg_text)
    return re.sub(r"(?m)^height\s*=.*$", f"height={height}", text)


def yolo_sections(cfg_text: str) -> Iterator[str]:
    """The text of each [yolo] section of a cfg, verbatim."""
    for block in re.split(r"(?m)^(?=\[)", cfg_text):
        if block.strip().lower().startswith("[yolo]"):
            yield block


def heads_only_cfg(
    sections: list[str], strides: list[int], width: int, height: int
) -> tuple[str, darknet.Network]:
    """A small network ending in the given [yolo] sections, each fed by a 1x1 convolution of
    the given stride: a registered cfg's heads, options and order, without its backbone."""
    parts = [
        f"[net]\nwidth={width}\nheight={height}\nchannels=3\n",
        "[convolutional]\nfilters=4\nsize=1\nstride=1\npad=0\nactivation=linear\n",
    ]
    for i, (section, stride) in enumerate(zip(sections, strides, strict=True)):
        opts = darknet.parse_cfg("[net]\n" + section)[1].options
        channels = len(opts["mask"].split(",")) * (5 + int(opts["classes"]))
        if i:
            parts.append("[route]\nlayers=0\n")
        parts.append(
            f"[convolutional]\nfilters={channels}\nsize=1\nstride={stride}\npad=0\n"
            "activation=linear\n"
        )
        parts.append(section)
    text = "\n".join(parts)
    return text, darknet.describe(darknet.parse_cfg(text))


def write_weights(network: darknet.Network, path: Path, seed: int, bias: float = 6.0) -> None:
    """Weights for a network without batch norm: the head convolutions' biases spread over
    [-bias, bias] so the logistic and exp see their whole useful range, not just ~0."""
    rng = np.random.default_rng(seed)
    with open(path, "wb") as f:
        f.write(struct.pack("<iiiq", 0, 2, 0, 0))
        for conv in network.convs:
            assert not conv.batch_normalize
            biases, weights = conv.counts
            f.write(rng.uniform(-bias, bias, biases).astype("<f4").tobytes())
            f.write(rng.normal(0, 1, weights).astype("<f4").tobytes())


def assert_rows_equal(got: np.ndarray, want: np.ndarray) -> str:
    """Rows equal within float32 rounding: x, y, objectness and scores (all in [0, 1]) within
    `TOLERANCE`; w and h (exp of anything) relatively within 1e-6. Returns the worst of both."""
    assert got.shape == want.shape
    assert got.dtype == np.float32
    cols = [0, 1, *range(4, got.shape[-1])]
    np.testing.assert_allclose(got[..., cols], want[..., cols], rtol=0, atol=TOLERANCE)
    # atol: darknet's exp is double, OpenCV's float: exp(-100) is a float denormal or 0
    np.testing.assert_allclose(got[..., 2:4], want[..., 2:4], rtol=1e-6, atol=1e-30)
    finite = np.isfinite(want[..., 2:4]) & (want[..., 2:4] > 0)
    rel = np.abs(got[..., 2:4] / np.where(finite, want[..., 2:4], 1) - 1)[finite]
    worst_abs = float(np.abs(got[..., cols] - want[..., cols]).max())
    return f"max abs {worst_abs:.1e} (x, y, scores), max rel {rel.max(initial=0):.1e} (w, h)"


# -- real weights on real photos ---------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_on_photos(
    tiny_weights: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[list[YoloHead], list[np.ndarray], np.ndarray, list]:
    text, _ = darknet.read_cfg(config_dir() / "yolov3-tiny.cfg")
    prep = Letterboxer(416, 416)
    blobs, boxes = [], []
    for name in PHOTOS:
        blob, box = prep(cv2.imread(str(DATA / "images" / name), cv2.IMREAD_COLOR))
        blobs.append(blob.copy())
        boxes.append(box)
    heads, raw, rows = opencv_heads(
        text, tiny_weights, np.stack(blobs), tmp_path_factory.mktemp("tiny")
    )
    return heads, raw, rows, boxes


@needs_darknet_importer
def test_real_yolov3_tiny_on_photos_equals_opencv(tiny_on_photos: tuple) -> None:
    heads, raw, rows, _ = tiny_on_photos
    assert [h.layer for h in heads] == [16, 23]
    assert heads[0].anchors == ((81, 82), (135, 169), (344, 319))
    assert raw[0].shape == (len(PHOTOS), 255, 13, 13)
    assert float(np.abs(raw[0]).max()) > 5  # real activations, not a flat test pattern
    batch = decode_batch(raw, heads, 416, 416)
    worst = assert_rows_equal(batch, rows)
    for i in range(len(PHOTOS)):
        one = decode([r[i] for r in raw], heads, 416, 416)
        np.testing.assert_array_equal(one, batch[i])
    print(f"\nyolov3-tiny on {len(PHOTOS)} photos: decode - OpenCV: {worst}")


@needs_darknet_importer
def test_detections_from_decoded_heads_equal_todays_pipeline(tiny_on_photos: tuple) -> None:
    """Postprocess on decode(raw) gives the Detections it gives on OpenCV's [yolo] rows:
    the same boxes, classes and order; scores and boxes equal within float32 rounding."""
    heads, raw, rows, boxes = tiny_on_photos
    names = darknet.read_names(config_dir() / "coco.names")
    post = Postprocess(conf=0.1, nms=0.45)
    decoded = decode_batch(raw, heads, 416, 416)
    found = 0
    for i, box in enumerate(boxes):
        today = post.apply(rows[i], box, names)
        ours = post.apply(decoded[i], box, names)
        assert len(ours) == len(today), PHOTOS[i]
        np.testing.assert_array_equal(ours.class_ids, today.class_ids)
        np.testing.assert_allclose(ours.scores, today.scores, rtol=0, atol=1e-6)
        np.testing.assert_allclose(ours.xyxy, today.xyxy, rtol=0, atol=1e-3)  # pixels
        found += len(ours)
    references = [json.loads(p.read_text()) for p in (DATA / "reference").glob("*.json")]
    assert found == sum(len(r["detections"]) for r in references) == 12


# -- every registered cfg's heads, random weights, small non-square input ---------------------


@needs_darknet_importer
@pytest.mark.parametrize("model", REGISTERED)
def test_registered_heads_equal_opencv(model: str, tmp_path: Path) -> None:
    """Each registered cfg's [yolo] sections verbatim (scale_x_y 1.05-1.2 in yolov4, the
    1,2,3 mask of yolov4-tiny), at the strides and in the order the cfg has them."""
    text, network = darknet.read_cfg(config_dir() / f"{model}.cfg")
    strides = [
        network.width // network.layers[layer.inputs[0]].shape[2]
        for layer in network.layers
        if layer.section.type == "yolo"
    ]
    width, height = 160, 96
    small, net = heads_only_cfg(list(yolo_sections(text)), strides, width, height)
    write_weights(net, tmp_path / "w.weights", seed=len(model))
    blob = np.random.default_rng(1).random((2, 3, height, width), dtype=np.float32)
    heads, raw, rows = opencv_heads(small, tmp_path / "w.weights", blob, tmp_path)
    assert [h.scale_x_y for h in heads] == [h.scale_x_y for h in yolo_heads(network)]
    assert [r.shape[2:] for r in raw] == [(height // s, width // s) for s in strides]
    worst = assert_rows_equal(decode_batch(raw, heads, width, height), rows)
    print(f"\n{model} heads at {width}x{height}: decode - OpenCV: {worst}")


@needs_darknet_importer
def test_full_yolov4_tiny_graph_with_random_weights(tmp_path: Path) -> None:
    """The whole yolov4-tiny network (route groups, scale_x_y=1.05) at 160x128."""
    text, _ = darknet.read_cfg(config_dir() / "yolov4-tiny.cfg")
    text = sized(text, 160, 128)
    network = darknet.describe(darknet.parse_cfg(text))
    darknet.write_random_weights(network, tmp_path / "w.weights")
    blob = np.random.default_rng(2).random((1, 3, 128, 160), dtype=np.float32)
    heads, raw, rows = opencv_heads(text, tmp_path / "w.weights", blob, tmp_path)
    assert [r.shape[2:] for r in raw] == [(4, 5), (8, 10)]
    assert_rows_equal(decode([r[0] for r in raw], heads, 160, 128), rows[0])


# -- edge cases ----------------------------------------------------------------------------------

ONE_CLASS = "[yolo]\nmask=0,2\nanchors=10,14, 23,27, 37,58\nclasses=1\nnum=3\n"


@needs_darknet_importer
@pytest.mark.parametrize(
    ("section", "width", "height", "bias"),
    [
        (ONE_CLASS, 64, 32, 6.0),  # one class, wider than tall
        (ONE_CLASS + "scale_x_y=1.2\n", 32, 96, 6.0),  # taller than wide
        (ONE_CLASS + "scale_x_y=1.1\n", 320, 416, 6.0),  # a usual non-square input
        (ONE_CLASS + "scale_x_y=1.1\nnew_coords=1\n", 64, 64, 2.0),
        (ONE_CLASS.replace("classes=1", "classes=3"), 96, 64, 6.0),
    ],
)
def test_one_head_equals_opencv(
    section: str, width: int, height: int, bias: float, tmp_path: Path
) -> None:
    text, net = heads_only_cfg([section], [32], width, height)
    write_weights(net, tmp_path / "w.weights", seed=width + height, bias=bias)
    blob = np.random.default_rng(3).random((2, 3, height, width), dtype=np.float32)
    heads, raw, rows = opencv_heads(text, tmp_path / "w.weights", blob, tmp_path)
    assert raw[0].shape[2:] == (height // 32, width // 32)
    assert_rows_equal(decode_batch(raw, heads, width, height), rows)


@needs_darknet_importer
def test_extreme_raw_values_give_darknets_answer_without_warnings(tmp_path: Path) -> None:
    """Raw values of +-100: logistic 0 or 1, exp overflowing to inf in w and h exactly where
    darknet's (and OpenCV's) does, no NaN, and no NumPy overflow warnings."""
    text, net = heads_only_cfg([ONE_CLASS + "scale_x_y=1.05\n"], [32], 96, 64)
    with open(tmp_path / "w.weights", "wb") as f:
        f.write(struct.pack("<iiiq", 0, 2, 0, 0))
        stem, head = net.convs
        f.write(np.zeros(sum(stem.counts), "<f4").tobytes())
        f.write(np.tile(np.float32([100, -100, 100, -100, 100, -100]), 2).astype("<f4").tobytes())
        f.write(np.zeros(head.counts[1], "<f4").tobytes())
    blob = np.random.default_rng(4).random((1, 3, 64, 96), dtype=np.float32)
    heads, raw, rows = opencv_heads(text, tmp_path / "w.weights", blob, tmp_path)
    assert set(np.unique(raw[0])) == {-100.0, 100.0}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = decode([raw[0][0]], heads, 96, 64)
    assert not np.isnan(got).any()
    assert np.isinf(got[:, 2]).all()  # tw = 100: darknet's exp overflows float
    assert (got[:, 3] < 1e-40).all()  # th = -100: exp in double, a float denormal
    assert (got[:, 4] == 1).all()  # to = 100
    assert (got[:, 5] == 0).all()  # tc = -100
    assert_rows_equal(got, rows[0])


def test_yolo_heads_reads_the_cfg() -> None:
    _, network = darknet.read_cfg(config_dir() / "yolov4.cfg")
    heads = yolo_heads(network)
    assert [h.scale_x_y for h in heads] == [1.2, 1.1, 1.05]
    assert heads[0].anchors == ((12, 16), (19, 36), (40, 28))
    assert heads[2].anchor_array.shape == (3, 2)
    assert {(h.classes, h.new_coords, h.channels) for h in heads} == {(80, False, 255)}
    _, tiny4 = darknet.read_cfg(config_dir() / "yolov4-tiny.cfg")
    assert yolo_heads(tiny4)[1].anchors == ((23, 27), (37, 58), (81, 82))  # mask=1,2,3


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        (
            "[net]\nwidth=32\nheight=32\n[convolutional]\nfilters=6\nsize=1\n"
            "[yolo]\nmask=0\nanchors=1,1\nnum=1\nclasses=1\nscale_x_y=fast\n",
            r"line 12: \[yolo\] scale_x_y=fast: not a number",
        ),
        (
            "[net]\nwidth=32\nheight=32\n[convolutional]\nfilters=6\nsize=1\n",
            "no \\[yolo\\] layer",
        ),
        (
            "[net]\nwidth=32\nheight=32\n[convolutional]\nfilters=30\nsize=1\n"
            "[region]\nanchors=1,1,2,2,3,3,4,4,5,5\nnum=5\nclasses=1\n",
            r"\[region\] layers \(YOLOv2\) are not supported",
        ),
    ],
)
def test_yolo_heads_errors(cfg: str, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        yolo_heads(darknet.describe(darknet.parse_cfg(cfg)))


@pytest.mark.parametrize(
    ("heads", "shapes", "message"),
    [
        (1, [(1, 12, 2, 2), (1, 12, 2, 2)], "2 raw outputs for 1"),
        (2, [(1, 13, 2, 2), (1, 12, 4, 4)], r"raw output 0 has shape \(1, 13, 2, 2\)"),
        (2, [(1, 12, 2, 2), (1, 12, 4)], r"raw output 1 has shape \(1, 12, 4\)"),
        (2, [(1, 12, 2, 2), (2, 12, 4, 4)], "raw output 1 holds 2 images, output 0 holds 1"),
    ],
)
def test_decode_rejects_outputs_that_do_not_fit_the_heads(
    heads: int, shapes: list[tuple[int, ...]], message: str
) -> None:
    head = YoloHead(anchors=((1.0, 1.0), (2.0, 2.0)), classes=1)
    with pytest.raises(ModelError, match=message):
        decode_batch([np.zeros(s, np.float32) for s in shapes], [head] * heads, 64, 64)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    conf=st.sampled_from([0.0, 0.001, 0.1, 0.25, 0.5, 0.9, 1.0]),
    new_coords=st.booleans(),
    scale_x_y=st.sampled_from([1.0, 1.05, 1.2]),
    spread=st.sampled_from([1.0, 4.0, 12.0]),
)
def test_rows_above_an_objectness_are_the_full_rows_that_pass_it(
    seed: int, conf: float, new_coords: bool, scale_x_y: float, spread: float
) -> None:
    """decode(min_objectness=conf) keeps exactly the full decode's rows with objectness above
    conf, bit for bit and in order, so Postprocess gives the same detections from either."""
    rng = np.random.default_rng(seed)
    anchors = tuple((float(w), float(h)) for w, h in rng.integers(5, 300, (3, 2)))
    heads = [
        YoloHead(anchors, 4, scale_x_y=scale_x_y, new_coords=new_coords),
        YoloHead(anchors[:2], 4, scale_x_y=scale_x_y, new_coords=new_coords),
    ]
    raw = [(rng.standard_normal((h.channels, g, g)) * spread).astype(np.float32)
           for h, g in zip(heads, (3, 6), strict=True)]  # fmt: skip
    if new_coords:  # the convolution's logistic: probabilities in [0, 1]
        with np.errstate(over="ignore"):
            raw = [(1 / (1 + np.exp(-r))).astype(np.float32) for r in raw]
    full = decode(raw, heads, 96, 96)
    kept = decode(raw, heads, 96, 96, min_objectness=conf)
    np.testing.assert_array_equal(kept, full[full[:, 4] > conf])
    post, names = Postprocess(conf=conf, nms=0.45), ["a", "b", "c", "d"]
    box = Letterbox(120, 80, 96, 96)
    want, got = post.apply(full, box, names), post.apply(kept, box, names)
    np.testing.assert_array_equal(got.xyxy, want.xyxy)
    np.testing.assert_array_equal(got.scores, want.scores)
    np.testing.assert_array_equal(got.class_ids, want.class_ids)
