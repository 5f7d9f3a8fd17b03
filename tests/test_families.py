"""ONNX models of other families (yolocli.families): recognised, decoded, and answering as the
family's own code answers.

The oracles are recorded in tests/data/families (the scripts there say how): Ultralytics'
own ``predict`` on two tiny random Ultralytics models (a YOLOv8 head, a YOLO26 end-to-end
head), and YOLOX's ONNX demo code on a tiny random YOLOX-layout model.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from tests.conftest import DATA, run_cli
from tests.test_video import photo_frames, records, write_clip
from yolocli import Detector, Postprocess
from yolocli.detections import Detections
from yolocli.errors import ModelError, OptionError
from yolocli.families import FAMILIES, OnnxFile, read_onnx, recognise, ultralytics, yolov5, yolox
from yolocli.families.resize import fill
from yolocli.ops import box_iou

FAMILY_DATA = DATA / "families"
V8 = FAMILY_DATA / "ultralytics_v8_random.onnx"
E2E = FAMILY_DATA / "ultralytics_26_random.onnx"
YOLOX = FAMILY_DATA / "yolox_tiny_random.onnx"
PHOTOS = sorted((DATA / "images").iterdir())
ENGINES = ["onnxruntime", "openvino", "opencv"]


def assert_same(got: Detections, expected: Sequence[dict[str, Any]], image: Path) -> None:
    """Every detection of the oracle, and nothing else: same class, IoU >= 0.99 (boxes that
    clipping made empty: corners within 0.01 px), score within 1e-3. The oracle's boxes are
    clipped to the image as yolocli's always are."""
    height, width = cv2.imread(str(image)).shape[:2]
    boxes = np.array([e["box"] for e in expected], dtype=np.float64).reshape(-1, 4)
    boxes = np.clip(boxes, 0, [width, height, width, height])
    scores = np.array([e["score"] for e in expected])
    classes = np.array([e["class_id"] for e in expected])
    assert len(got) == len(expected), image.name
    if not len(got):
        return
    iou = box_iou(got.xyxy, boxes)
    empty = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
    near = np.abs(got.xyxy[:, None, :] - boxes[None]).max(axis=2) <= 0.01
    fits = (
        np.where(empty[None], near, iou >= 0.99)
        & (classes[None] == got.class_ids[:, None])
        & (np.abs(scores[None] - got.scores[:, None]) <= 1e-3)
    )
    used: set[int] = set()
    for i in range(len(got)):
        free = [j for j in np.nonzero(fits[i])[0].tolist() if j not in used]
        assert free, f"{image.name}: {got.xyxy[i]} {got.scores[i]} {got.class_ids[i]} unmatched"
        used.add(free[0])


def oracle_runs(name: str) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = json.loads((FAMILY_DATA / name).read_text())["runs"]
    return runs


# -- parity with each family's own code ------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "oracle"),
    [(V8, "ultralytics_v8_random.json"), (E2E, "ultralytics_26_random.json")],
    ids=["v8", "yolo26-end2end"],
)
def test_ultralytics_models_answer_as_ultralytics_predict(model: Path, oracle: str) -> None:
    for run in oracle_runs(oracle):
        det = Detector(str(model), backend="onnxruntime")
        post = Postprocess(conf=run["conf"], nms=run["iou"])
        assert sum(len(v) for v in run["images"].values()) > 100  # the oracle says something
        for image in PHOTOS:
            assert_same(det.detect(cv2.imread(str(image)), post), run["images"][image.name], image)


def test_yolox_answers_as_the_yolox_onnx_demo() -> None:
    ref = json.loads((FAMILY_DATA / "yolox_reference.json").read_text())
    det = Detector(str(YOLOX), backend="onnxruntime")
    post = Postprocess(conf=ref["score_thr"], nms=ref["nms_thr"])
    for image in PHOTOS:
        assert_same(det.detect(cv2.imread(str(image)), post), ref["images"][image.name], image)


@pytest.mark.parametrize("backend", ENGINES)
def test_every_engine_gives_the_families_answers(backend: str) -> None:
    run = oracle_runs("ultralytics_v8_random.json")[1]
    ref = json.loads((FAMILY_DATA / "yolox_reference.json").read_text())
    image = DATA / "images" / "coffee.png"
    pixels = cv2.imread(str(image))
    v8 = Detector(
        str(V8), backend=backend, postprocess=Postprocess(conf=run["conf"], nms=run["iou"])
    )
    assert_same(v8.detect(pixels), run["images"][image.name], image)
    post = Postprocess(conf=ref["score_thr"], nms=ref["nms_thr"])
    assert_same(
        Detector(str(YOLOX), backend=backend).detect(pixels, post), ref["images"][image.name], image
    )


# -- input preparation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "net", "resized", "offset"),
    [
        ((640, 480), (320, 256), (320, 240), (0, 8)),
        ((512, 600), (320, 256), (218, 256), (51, 0)),  # round(512 * 256 / 600) = 218
        ((1, 3000), (320, 256), (1, 256), (159, 0)),  # 1 pixel wide stays 1; round(159.4)
        ((320, 256), (320, 256), (320, 256), (0, 0)),
    ],
)
def test_ultralytics_letterbox_geometry(
    size: tuple[int, int], net: tuple[int, int], resized: tuple[int, int], offset: tuple[int, int]
) -> None:
    box = ultralytics.geometry(*size, *net)
    assert (box.new_size, box.offset) == (resized, offset)
    # a box over the whole picture maps back to the whole image
    w, h = resized
    cxcywh = np.array(
        [[(offset[0] + w / 2) / net[0], (offset[1] + h / 2) / net[1], w / net[0], h / net[1]]]
    )
    np.testing.assert_allclose(box.to_image(cxcywh), [[0, 0, *size]], atol=1e-9)


def test_yolox_puts_the_picture_top_left_and_truncates() -> None:
    box = yolox.geometry(512, 600, 320, 256)  # r = 256 / 600: int(512 * r) = 218
    assert (box.new_size, box.offset) == ((218, 256), (0, 0))
    xyxy = box.to_image(np.array([[0.25, 0.5, 0.5, 1.0]]))  # (0, 0)-(160, 256) in the input
    np.testing.assert_allclose(xyxy, [[0, 0, 160 * 600 / 256, 600]])


@pytest.mark.parametrize("rgb", [True, False])
def test_fill_is_resize_then_pad_then_channels(rgb: bool) -> None:
    """The obvious implementation (Ultralytics' LetterBox: resize, copyMakeBorder, flip,
    /255) gives the same input, to the bit."""
    image = cv2.imread(str(DATA / "images" / "grace_hopper.jpg"))
    box = ultralytics.geometry(image.shape[1], image.shape[0], 320, 256)
    got = fill(image, box, rgb=rgb, unit=True)
    resized = cv2.resize(image, box.new_size, interpolation=cv2.INTER_LINEAR)
    left, top = box.offset
    right, bottom = 320 - left - box.new_size[0], 256 - top - box.new_size[1]
    padded = cv2.copyMakeBorder(
        resized, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(114, 114, 114)
    )
    planes = padded[..., ::-1] if rgb else padded
    expected = planes.transpose(2, 0, 1).astype(np.float32) / np.float32(255)
    np.testing.assert_array_equal(got, expected)


# -- decoding, against slow obvious implementations -----------------------------------------


def test_yolox_decode_is_demo_postprocess_cell_by_cell() -> None:
    rng = np.random.default_rng(1)
    net_w, net_h, classes = 96, 64, 3
    a = yolox.cells(net_w, net_h, yolox.STRIDES)
    raw = rng.normal(size=(a, 5 + classes)).astype(np.float32)
    raw[:, 4:] = rng.uniform(size=(a, 1 + classes))
    rows = yolox.decode(raw, net_w, net_h)
    k = 0
    for s in yolox.STRIDES:
        for y in range(net_h // s):
            for x in range(net_w // s):
                cx, cy = (raw[k, 0] + x) * s, (raw[k, 1] + y) * s
                w, h = np.exp(raw[k, 2]) * s, np.exp(raw[k, 3]) * s
                np.testing.assert_allclose(
                    rows[k, :4], [cx / net_w, cy / net_h, w / net_w, h / net_h], rtol=1e-5
                )
                np.testing.assert_allclose(rows[k, 5:], raw[k, 4] * raw[k, 5:], rtol=1e-6)
                k += 1
    kept = yolox.decode(raw, net_w, net_h, min_score=0.5)
    np.testing.assert_array_equal(kept, rows[raw[:, 4] > 0.5])


def test_ultralytics_and_yolov5_decode() -> None:
    rng = np.random.default_rng(2)
    out = rng.uniform(size=(4 + 3, 10)).astype(np.float32) * 100
    out[4:] /= 100
    rows = ultralytics.decode(out, 320, 256, min_score=0.5)
    keep = out[4:].max(axis=0) > 0.5
    np.testing.assert_allclose(rows[:, :4], (out[:4, keep] / [[320], [256], [320], [256]]).T)
    np.testing.assert_array_equal(rows[:, 5:], out[4:, keep].T)
    v5 = rng.uniform(size=(10, 5 + 3)).astype(np.float32)
    rows = yolov5.decode(v5, 32, 32, min_score=0.3)
    keep = v5[:, 4] > 0.3
    np.testing.assert_allclose(rows[:, 5:], v5[keep, 5:] * v5[keep, 4:5])
    end2end = np.array([[10, 20, 30, 60, 0.9, 2], [0, 0, 5, 5, 0.1, 0]], dtype=np.float32)
    rows = ultralytics.decode_end2end(end2end, 100, 100, classes=3, min_score=0.25)
    np.testing.assert_allclose(rows, [[0.2, 0.4, 0.2, 0.4, 0.9, 0, 0, 0.9]])
    with pytest.raises(ModelError, match="class 7, the model has 3"):
        ultralytics.decode_end2end(np.array([[0, 0, 1, 1, 0.5, 7]], np.float32), 9, 9, 3)


def test_yolox_nms_uses_pixel_inclusive_areas_across_classes() -> None:
    """Two 10-pixel boxes overlapping by 4.5: IoU 0.29 by areas, 0.30 pixel-inclusive (the
    demo's); at a 0.295 threshold only the demo's suppresses."""
    recipe = recognise(read_onnx(YOLOX))
    xyxy = np.array([[0, 0, 10, 10], [5.5, 0, 15.5, 10]], np.float64)
    scores = np.array([0.9, 0.8])
    assert recipe.nms(xyxy, scores, 0.295, np.array([0, 1]), (20, 20)).tolist() == [0]
    v8 = recognise(read_onnx(V8))
    assert v8.nms(xyxy, scores, 0.295, None, (20, 20)).tolist() == [0, 1]


# -- recognising a file ------------------------------------------------------------------------


def fake(shape: tuple[int | str | None, ...], meta: dict[str, str] | None = None) -> OnnxFile:
    return OnnxFile(Path("m.onnx"), meta or {}, "images", (1, 3, 640, 640), (("output0", shape),))


@pytest.mark.parametrize(
    ("shape", "layout", "classes", "strides"),
    [
        ((1, 84, 8400), "ultralytics", 80, (8, 16, 32)),
        ((1, 9, 8500), "ultralytics", 5, (8, 16, 32, 64)),
        ((1, 300, 6), "ultralytics-end2end", None, ()),
        ((1, 25200, 85), "yolov5", 80, (8, 16, 32)),
        ((1, 8400, 85), "yolox", 80, (8, 16, 32)),
        ((1, 8400, 6), "yolox", 1, (8, 16, 32)),
    ],
)
def test_recognised_from_output_shapes(
    shape: tuple[int, ...], layout: str, classes: int | None, strides: tuple[int, ...]
) -> None:
    names = None if classes else ["a", "b"]
    recipe = recognise(fake(shape), names=names)
    assert (recipe.layout, recipe.strides) == (layout, strides)
    assert recipe.classes == (classes or 2)
    assert recipe.why == f"output shape {shape}".replace(",)", ")")


def test_metadata_decides_and_names_come_from_it() -> None:
    recipe = recognise(read_onnx(V8))
    assert (recipe.layout, recipe.why, recipe.names) == (
        "ultralytics",
        "Ultralytics metadata",
        ("person", "car", "dog", "cat", "bird"),
    )
    assert (recipe.width, recipe.height) == (320, 256)
    assert read_onnx(E2E).metadata["end2end"] == "True"
    assert recognise(read_onnx(E2E)).layout == "ultralytics-end2end"
    meta = {"stride": "32", "names": "{0: 'a', 1: 'b'}"}  # YOLOv5's exporter writes these two
    assert recognise(fake((1, 25200, 7), meta)).why == "YOLOv5 metadata"
    seg = {"names": "{0: 'a'}", "task": "segment", "imgsz": "[640, 640]"}
    with pytest.raises(ModelError, match="Ultralytics 'segment' model; yolocli runs detection"):
        recognise(fake((1, 37, 8400), seg))


def test_no_family_fits_is_one_error_naming_the_shapes() -> None:
    with pytest.raises(ModelError) as err:
        recognise(fake((1, 7, 7)))
    message = str(err.value)
    assert "found input images (1, 3, 640, 640); outputs output0 (1, 7, 7)" in message
    assert "Ultralytics (N, 4 + classes, anchors)" in message
    with pytest.raises(ModelError, match=r"a yolox model's output is \(N, cells, 5 \+ classes\)"):
        recognise(read_onnx(V8), family="yolox")
    with pytest.raises(OptionError, match="unknown family"):
        recognise(read_onnx(V8), family="darknet")


def test_names_given_must_fit_and_80_classes_are_coco() -> None:
    with pytest.raises(ModelError, match="its output has 5 classes, but the names given list 2"):
        recognise(read_onnx(YOLOX), names=["a", "b"])
    assert recognise(read_onnx(YOLOX)).names == ("0", "1", "2", "3", "4")
    assert recognise(fake((1, 8400, 85))).names[:2] == ("person", "bicycle")
    with pytest.raises(ModelError, match="give --names"):
        recognise(fake((1, 300, 6)))


def test_input_size_fixed_by_the_file() -> None:
    with pytest.raises(OptionError, match="takes 320x256 input only"):
        recognise(read_onnx(V8), size=(640, 640))
    dynamic = OnnxFile(Path("m.onnx"), {"imgsz": "[320, 320]"}, "images", (1, 3, "h", "w"),
                       (("out", (1, 2100, 8)),))  # fmt: skip
    assert (recognise(dynamic).width, recognise(dynamic, size=(320, 320)).height) == (320, 320)
    # a dynamic export leaves the anchor count open: Ultralytics' layout still says itself,
    # YOLOX's and YOLOv5's only with --family
    open_v8 = OnnxFile(Path("m.onnx"), {}, "images", (1, 3, "h", "w"), (("o", (1, 84, "a")),))
    assert (recognise(open_v8).layout, recognise(open_v8).classes) == ("ultralytics", 80)
    open_x = OnnxFile(Path("m.onnx"), {}, "images", (1, 3, "h", "w"), (("o", (1, "a", 85)),))
    with pytest.raises(ModelError, match="give --family"):
        recognise(open_x)
    assert recognise(open_x, family="yolox").layout == "yolox"
    assert recognise(open_x, family="yolov7").layout == "yolov5"


def test_not_an_onnx_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not protobuf at all \xff\xff")
    with pytest.raises(ModelError, match="not an ONNX model"):
        read_onnx(bad)
    with pytest.raises(ModelError, match="no such model file"):
        read_onnx(tmp_path / "missing.onnx")


def test_the_cli_choices_are_the_families() -> None:
    result = run_cli("detect", "--help")
    assert "[ultralytics|yolov5|yolov7|yolox]" in result.stdout
    assert FAMILIES == ("ultralytics", "yolov5", "yolov7", "yolox")


# -- the whole command line, unchanged for every family -------------------------------------


def test_detect_an_onnx_model_with_no_flags(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_cli("detect", str(DATA / "images"), "-m", str(V8), "-f", "jsonl", "-o", str(out),
                     "--conf", "0.25", "--nms", "0.7", "--save-txt", "-v")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "runs as Ultralytics, because of its Ultralytics metadata" in result.stderr
    recs = {Path(r["image"]).name: r for r in records(result.stdout)}
    expected = oracle_runs("ultralytics_v8_random.json")[0]["images"]
    for name, rec in recs.items():
        assert len(rec["detections"]) == len(expected[name])
        assert {d["label"] for d in rec["detections"]} <= {"person", "car", "dog", "cat", "bird"}
    assert (out / "coffee.png").is_file()
    assert (out / "coffee.txt").read_text().count("\n") == len(expected["coffee.png"])


def test_workers_slicing_video_and_val(tmp_path: Path) -> None:
    folder = DATA / "images"
    common = ["-m", str(YOLOX), "--conf", "0.1", "-f", "jsonl", "--no-save"]
    one = records(run_cli("detect", str(folder), *common, "-j", "1").stdout)
    two = records(run_cli("detect", str(folder), *common, "-j", "2").stdout)
    assert one == two
    assert sum(len(r["detections"]) for r in one) > 100
    sliced = run_cli("detect", str(folder / "astronaut.png"), *common, "--slice", "256")
    assert sliced.exit_code == 0, sliced.stderr
    assert records(sliced.stdout)[0]["detections"]
    clip = write_clip(tmp_path / "clip.avi", photo_frames(3), "FFV1")
    frames = run_cli("detect", str(clip), *common)
    assert frames.exit_code == 0, frames.stderr
    assert [r["frame"] for r in records(frames.stdout)] == [0, 1, 2, None]
    # val: labels from the oracle's own answers, so the model scores (nearly) perfectly
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    (data / "labels").mkdir()
    expected = oracle_runs("ultralytics_v8_random.json")[0]["images"]
    for image in PHOTOS:
        h, w = cv2.imread(str(image)).shape[:2]
        lines = [
            f"{d['class_id']} {(x1 + x2) / 2 / w} {(y1 + y2) / 2 / h} "
            f"{(x2 - x1) / w} {(y2 - y1) / h}"
            for d in expected[image.name]
            for x1, y1, x2, y2 in [np.clip(d["box"], 0, [w, h, w, h]).tolist()]
            if x2 > x1 and y2 > y1
        ]
        (data / "images" / image.name).write_bytes(image.read_bytes())
        if lines:
            (data / "labels" / f"{image.stem}.txt").write_text("\n".join(lines) + "\n")
    val = run_cli("val", str(data), "-m", str(V8), "--conf", "0.25", "--nms", "0.7", "-f", "json")
    assert val.exit_code == 0, val.stderr
    assert json.loads(val.stdout)["map50"] > 0.95


def onnx_with_output(path: Path, shape: list[int]) -> Path:
    """A one-node ONNX model: images (1, 3, 64, 64) -> an output of ``shape``."""
    node = helper.make_node("ConstantOfShape", ["shape"], ["out"])
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 64, 64])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, shape)],
        [helper.make_tensor("shape", TensorProto.INT64, [len(shape)], shape)],
    )  # fmt: skip
    onnx.save(helper.make_model(graph), str(path))
    return path


def test_cli_errors(tmp_path: Path) -> None:
    odd = onnx_with_output(tmp_path / "odd.onnx", [1, 7, 7])
    image = str(DATA / "images" / "coffee.png")
    result = run_cli("detect", image, "-m", str(odd), "--no-save")
    assert result.exit_code != 0
    assert "odd.onnx: no output fits the layouts yolocli knows" in result.stderr
    assert "outputs out (1, 7, 7)" in result.stderr
    result = run_cli("detect", image, "-m", str(V8), "--backend", "torch", "--no-save")
    assert result.exit_code != 0
    assert "torch engine runs darknet networks only" in result.stderr
    result = run_cli("detect", image, "-m", "yolov3-tiny", "--family", "yolox", "--no-save")
    assert result.exit_code == 2
    assert "is for ONNX models" in result.stderr
    result = run_cli("detect", image, "-m", str(V8), "--no-letterbox", "--no-save")
    assert result.exit_code == 2
    assert "--no-letterbox is for darknet models" in result.stderr
    result = run_cli("detect", image, "-m", "nosuch", "--no-save")
    assert "or an ONNX file" in result.stderr
    names = tmp_path / "names.txt"
    names.write_text("a\nb\nc\nd\ne\n")
    result = run_cli("detect", image, "-m", str(YOLOX), "--names", str(names), "-f", "jsonl",
                     "--no-save", "--conf", "0.1")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    labels = {d["label"] for d in records(result.stdout)[0]["detections"]}
    assert labels <= set("abcde")
    assert labels


def test_a_yolox_exported_decoded_gives_the_same_answers(tmp_path: Path) -> None:
    """YOLOX's exporter with --decode_in_inference puts demo_postprocess's grid decode in the
    graph: recognised by its Exp, and decoded once, not twice."""
    model = onnx.load(str(YOLOX))
    (out,) = model.graph.output
    grid = np.concatenate(
        [
            np.stack(np.divmod(np.arange((256 // s) * (320 // s)), 320 // s)[::-1], 1)
            for s in (8, 16, 32)
        ]
    ).astype(np.float32)
    strides = np.concatenate(
        [np.full(((256 // s) * (320 // s), 1), s) for s in (8, 16, 32)]
    ).astype(np.float32)
    consts = {"grid": grid[None], "stride": strides[None]}
    for name, value in consts.items():
        model.graph.initializer.append(onnx.numpy_helper.from_array(value, name))
    for name, value in {"s0": [0], "s2": [2], "s4": [4], "s99": [99], "ax": [2]}.items():
        model.graph.initializer.append(onnx.numpy_helper.from_array(np.array(value), name))
    nodes = [
        helper.make_node("Slice", [out.name, "s0", "s2", "ax"], ["xy"]),
        helper.make_node("Slice", [out.name, "s2", "s4", "ax"], ["wh"]),
        helper.make_node("Slice", [out.name, "s4", "s99", "ax"], ["rest"]),
        helper.make_node("Add", ["xy", "grid"], ["xy_g"]),
        helper.make_node("Mul", ["xy_g", "stride"], ["xy_p"]),
        helper.make_node("Exp", ["wh"], ["wh_e"]),
        helper.make_node("Mul", ["wh_e", "stride"], ["wh_p"]),
        helper.make_node("Concat", ["xy_p", "wh_p", "rest"], ["decoded"], axis=2),
    ]
    model.graph.node.extend(nodes)
    del model.graph.output[:]
    model.graph.output.append(
        helper.make_tensor_value_info("decoded", TensorProto.FLOAT, [1, 1680, 10])
    )
    decoded = tmp_path / "yolox_decoded.onnx"
    onnx.save(model, str(decoded))
    recipe = recognise(read_onnx(decoded))
    assert (recipe.layout, recipe.name) == ("yolox-decoded", "YOLOX (decoded in the graph)")
    ref = json.loads((FAMILY_DATA / "yolox_reference.json").read_text())
    post = Postprocess(conf=ref["score_thr"], nms=ref["nms_thr"])
    det = Detector(str(decoded), backend="onnxruntime")
    for image in PHOTOS[:3]:
        assert_same(det.detect(cv2.imread(str(image)), post), ref["images"][image.name], image)


def test_yolov5_answers_as_yolov5_detect(tmp_path: Path) -> None:
    """On the photos cropped as the oracle's script crops them (to an aspect ratio that
    leaves a few pixels of padding, less than a grid cell: see make_yolov5.crop)."""
    ref = json.loads((FAMILY_DATA / "yolov5_reference.json").read_text())
    det = Detector(str(FAMILY_DATA / "yolov5_tiny_random.onnx"), backend="onnxruntime")
    assert (det.recipe.layout, det.recipe.why) == ("yolov5", "output shape (1, 5040, 9)")
    post = Postprocess(conf=ref["conf"], nms=ref["iou"], max_det=ref["max_det"])
    assert sum(len(v) for v in ref["images"].values()) > 50
    for image in PHOTOS:
        pixels = cv2.imread(str(image))
        h, w = pixels.shape[:2]
        pixels = pixels[:, : int(h * 1.2)] if w > h * 1.2 else pixels[: int(w / 1.2)]
        cropped = tmp_path / f"{image.stem}.png"
        cv2.imwrite(str(cropped), pixels)  # for assert_same's clipping to its size
        assert_same(det.detect(pixels, post), ref["images"][image.name], cropped)


def test_a_model_the_engine_cannot_open_fails_before_any_record(tmp_path: Path) -> None:
    """The engine opens on a thread while the first image loads (`Detector.from_plan` with
    ``wait=False``); a file yolocli recognises but the engine refuses still fails the run
    with one line, before any record (not even the missing file's, listed first)."""
    node = helper.make_node("NoSuchOp", ["images"], ["out"])
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 64, 64])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 84, 84])],
    )  # fmt: skip
    bad = tmp_path / "bad.onnx"
    onnx.save(helper.make_model(graph), str(bad))
    missing, image = str(tmp_path / "missing.png"), str(DATA / "images" / "coffee.png")
    # opened early (image files named one by one), after listing, and with no image at all
    for sources in ([image], [missing, image], [missing]):
        result = run_cli("detect", *sources, "-m", str(bad), "--backend", "onnxruntime",
                         "--no-save", "-f", "jsonl")  # fmt: skip
        assert result.exit_code == 1, result.stderr
        assert result.stdout == ""
        errors = [ln for ln in result.stderr.splitlines() if ln.startswith("yolocli: error")]
        assert len(errors) == 1, result.stderr
        assert "NoSuchOp" in errors[0]
