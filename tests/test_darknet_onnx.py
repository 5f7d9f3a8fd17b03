"""`yolocli export --decoded / --with-nms`: darknet's decode (and NMS) inside the exported graph,
checked against yolocli's own decode of the raw heads (itself checked against darknet), and
the metadata every export carries."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from tests.conftest import DATA, run_cli
from tests.oracle import photo
from yolocli import Detector, Postprocess
from yolocli.families.darknet import heads
from yolocli.models.store import Store
from yolocli.ops import box_iou


@pytest.fixture(scope="module")
def detector(real_store: Store) -> Detector:
    return Detector("yolov3-tiny", backend="onnxruntime", store=real_store)


def run(path: Path, blob: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"images": blob})
    return np.asarray(out)


@pytest.mark.parametrize("name", ["grace_hopper.jpg", "motorcycle_left.png"])
def test_decoded_output_is_darknets_decode_in_input_pixels(
    tmp_path: Path, use_real_store: Path, detector: Detector, name: str
) -> None:
    out = tmp_path / "decoded.onnx"
    result = run_cli("export", "yolov3-tiny", "--decoded", "-o", str(out))
    assert result.exit_code == 0, result.stderr
    blob, _ = detector.preprocess(photo(name))
    decoded = run(out, blob[None])[0]
    raw = detector.forward(blob[None])
    rows = heads.decode([r[0] for r in raw], detector.heads, detector.width, detector.height)
    assert decoded.shape == rows.shape == (2535, 85)
    pixels = rows[:, :4] * np.array([detector.width, detector.height] * 2, np.float32)
    np.testing.assert_allclose(decoded[:, :4], pixels, atol=1e-3)
    np.testing.assert_allclose(decoded[:, 4], rows[:, 4], atol=1e-6)
    np.testing.assert_allclose(decoded[:, 5:] * decoded[:, 4:5], rows[:, 5:], atol=1e-6)


def test_with_nms_gives_the_detections_of_detect(
    tmp_path: Path, use_real_store: Path, detector: Detector
) -> None:
    out = tmp_path / "nms.onnx"
    args = ["export", "yolov3-tiny", "--with-nms", "--conf", "0.1", "--nms", "0.45"]
    result = run_cli(*args, "-o", str(out))
    assert result.exit_code == 0, result.stderr
    for name in ("grace_hopper.jpg", "astronaut.png", "coffee.png"):
        image = photo(name)
        blob, box = detector.preprocess(image)
        found = run(out, blob[None])
        dets = detector.detect(image, Postprocess(conf=0.1, nms=0.45))
        assert found.shape == (len(dets), 7)
        assert (found[:, 0] == 0).all()
        # input pixels back to the image, as yolocli maps boxes
        xyxy = found[:, 1:5].astype(np.float64)
        size = np.array([detector.width, detector.height] * 2)
        centre = np.concatenate([(xyxy[:, :2] + xyxy[:, 2:]) / 2, xyxy[:, 2:] - xyxy[:, :2]], 1)
        mapped = box.to_image(centre / size)
        mapped = np.clip(mapped, 0, [box.width, box.height] * 2)
        # a box is listed once per class above conf: match within the class
        same = found[None, :, 5] == dets.class_ids[:, None]
        iou = np.where(same, box_iou(dets.xyxy, mapped), 0)
        match = iou.argmax(axis=1)
        assert (iou.max(axis=1) >= 0.99).all()
        assert sorted(match.tolist()) == list(range(len(found)))
        np.testing.assert_allclose(found[match, 6], dets.scores, atol=1e-5)


def test_every_export_records_names_anchors_strides_flavour_and_preprocessing(
    tmp_path: Path, use_real_store: Path
) -> None:
    out = tmp_path / "raw.onnx"
    assert run_cli("export", "yolov3-tiny", "--size", "320", "-o", str(out)).exit_code == 0
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(meta["names"])[:2] == ["person", "bicycle"]
    assert json.loads(meta["imgsz"]) == [320, 320]
    assert json.loads(meta["strides"]) == [32, 16]
    assert json.loads(meta["anchors"]) == [
        [[81, 82], [135, 169], [344, 319]],
        [[10, 14], [23, 27], [37, 58]],
    ]
    assert meta["flavour"] == "pjreddie"
    assert meta["preprocessing"].startswith("letterboxed as darknet does")
    assert meta["outputs"].startswith("head_0..")
    assert json.loads(meta["heads"])[0]["grid"] == [10, 10]
    assert "stride" not in meta  # which would read as a YOLOv5 export's metadata
    nms = tmp_path / "nms.onnx"
    assert run_cli("export", "yolov3-tiny", "--with-nms", "-o", str(nms)).exit_code == 0
    meta = {p.key: p.value for p in onnx.load(str(nms)).metadata_props}
    assert (meta["conf"], meta["iou"], meta["max_det_per_class"]) == ("0.25", "0.45", "300")
    assert meta["outputs"].startswith("detections (K, 7)")


def test_export_refuses_an_onnx_model(tmp_path: Path) -> None:
    model = DATA / "families" / "yolox_tiny_random.onnx"
    result = run_cli("export", str(model), "-o", str(tmp_path / "x.onnx"))
    assert result.exit_code == 1
    assert "is an ONNX model already: export writes darknet models" in result.stderr
