"""The detector against the reference darknet's own output on real photographs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import DATA
from yolocli import Detections, Detector
from yolocli.engines.devices import opencv_has_cuda
from yolocli.errors import DeviceError, ImageError, ModelError, OptionError
from yolocli.models.registry import config_dir
from yolocli.models.store import Store
from yolocli.ops import box_iou, clip_boxes
from yolocli.postprocess import Postprocess

REFERENCES = sorted((DATA / "reference").glob("*.json"))


def image(name: str) -> np.ndarray:
    return cv2.imread(str(DATA / "images" / name), cv2.IMREAD_COLOR)


def compare(ref: dict, dets: Detections) -> tuple[float, float, int]:
    """(worst IoU, worst |score difference|, extra detections) of ours against the reference.

    Every reference detection must be matched by one of ours of the same class; boxes are
    compared clipped to the image (the reference prints darknet's unclipped boxes).
    """
    img = image(ref["image"])
    h, w = img.shape[:2]
    ours = clip_boxes(dets.xyxy, w, h)
    worst_iou, worst_diff, used = 1.0, 0.0, set()
    for d in ref["detections"]:
        theirs = clip_boxes(np.array([d["box_xyxy"]], np.float32), w, h)
        iou = box_iou(theirs, ours)[0]
        iou[dets.class_ids != d["class_id"]] = -1
        assert iou.size, f"{ref['image']}: nothing found at all"
        assert iou.max() >= 0, f"{ref['image']}: no {d['label']} found"
        best = int(iou.argmax())
        used.add(best)
        worst_iou = min(worst_iou, float(iou[best]))
        worst_diff = max(worst_diff, abs(float(dets.scores[best]) - d["score"]))
    return worst_iou, worst_diff, len(dets) - len(used)


@pytest.fixture(scope="module")
def parity(tiny: Detector) -> dict[str, tuple[float, float, int]]:
    out = {}
    for path in REFERENCES:
        ref = json.loads(path.read_text())
        assert (ref["input_size"], ref["letterbox"], ref["thresh"], ref["nms"]) == (
            416,
            True,
            0.1,
            0.45,
        )
        out[ref["image"]] = compare(ref, tiny.detect(image(ref["image"])))
    return out


def test_every_reference_detection_is_found_with_the_same_class_box_and_score(
    parity: dict[str, tuple[float, float, int]],
) -> None:
    worst_iou = min(v[0] for v in parity.values())
    worst_diff = max(v[1] for v in parity.values())
    print(f"\nreference parity: worst IoU {worst_iou:.4f}, worst |score diff| {worst_diff:.4f}")
    # What the README claims on these six photos (IoU >= 0.994, scores within 0.0034), with a
    # little margin for another libjpeg build decoding grace_hopper.jpg a hair differently.
    assert worst_iou >= 0.99
    assert worst_diff <= 0.005


def test_no_extra_detections(parity: dict[str, tuple[float, float, int]]) -> None:
    assert {name: v[2] for name, v in parity.items()} == {name: 0 for name in parity}


def test_png_inputs_match_the_reference_to_four_decimals(tiny: Detector) -> None:
    """PNG pixels are identical in both programs, and the letterbox is bit-exact, so only
    the convolution arithmetic differs: scores agree to 1e-4, boxes to a hundredth of a pixel."""
    ref = json.loads((DATA / "reference" / "motorcycle_left.json").read_text())
    dets = tiny.detect(image("motorcycle_left.png"))
    assert len(dets) == len(ref["detections"])
    for d, score, box in zip(ref["detections"], dets.scores, dets.xyxy, strict=True):
        assert abs(score - d["score"]) < 1e-4
        np.testing.assert_allclose(box, np.clip(d["box_xyxy"], 0, [741, 500, 741, 500]), atol=0.02)


def test_low_conf_really_reports_low_scores(tiny: Detector) -> None:
    """OpenCV's [yolo] layer would zero every score under 0.2; conf 0.05 must see them."""
    low = tiny.detect(image("grace_hopper.jpg"), Postprocess(conf=0.05))
    assert (low.scores < 0.2).any()
    assert low.scores.min() > 0.05
    default = tiny.detect(image("motorcycle_left.png"), Postprocess())
    assert len(default) > 0
    assert default.scores.min() > 0.5


def test_detections_api(tiny: Detector) -> None:
    dets = tiny.detect(image("grace_hopper.jpg"))
    assert dets.xyxy.shape == (len(dets), 4)
    assert dets.xyxy.dtype == np.float32
    assert list(dets.scores) == sorted(dets.scores, reverse=True)
    assert set(dets.labels) == {"tie", "person"}
    ties = dets[np.array(dets.labels) == "tie"]
    assert len(ties) == 3
    assert (ties.class_ids == 27).all()
    assert dets[:2].labels == dets.labels[:2]


def test_postprocess_options_change_what_is_reported(tiny: Detector) -> None:
    img = image("grace_hopper.jpg")
    everything = tiny.detect(img, Postprocess(conf=0.05))
    only_person = tiny.detect(img, Postprocess(conf=0.05, classes=("person",)))
    assert len(only_person) > 0
    assert set(only_person.labels) == {"person"}
    assert len(only_person) == sum(label == "person" for label in everything.labels)
    capped = tiny.detect(img, Postprocess(conf=0.05, max_det=2))
    assert len(capped) == 2
    np.testing.assert_array_equal(capped.scores, everything.scores[:2])
    # On the astronaut at 0.05 three boxes are reported under two classes each (as darknet
    # does): single_label and agnostic NMS must each drop one of every such pair, which
    # class-aware NMS keeps.
    img = image("astronaut.png")
    everything = tiny.detect(img, Postprocess(conf=0.05))
    boxes = [tuple(b) for b in everything.xyxy.round(1).tolist()]
    assert len(set(boxes)) < len(boxes)
    single = tiny.detect(img, Postprocess(conf=0.05, single_label=True))
    assert len({tuple(b) for b in single.xyxy.round(1).tolist()}) == len(single)
    agnostic = tiny.detect(img, Postprocess(conf=0.05, agnostic=True))
    assert len(agnostic) <= len(set(boxes)) < len(everything)
    assert len({tuple(b) for b in agnostic.xyxy.round(1).tolist()}) == len(agnostic)


def test_detector_postprocess_is_the_default_for_detect(real_store: Store) -> None:
    det = Detector("yolov3-tiny", store=real_store, postprocess=Postprocess(conf=0.05))
    img = image("grace_hopper.jpg")
    np.testing.assert_array_equal(
        det.detect(img).scores, det.detect(img, Postprocess(conf=0.05)).scores
    )


def test_size_and_stretch_keep_boxes_on_the_objects(real_store: Store, tiny: Detector) -> None:
    """Other input sizes and the stretched (non-letterbox) input map boxes back to the same
    objects: some motorbike box overlaps one found at 416 (the exact mapping is tested in
    test_preprocess; here the network sees other pixels, so its estimates move a little)."""
    img = image("motorcycle_left.png")
    base = tiny.detect(img)
    for kwargs in ({"size": 320}, {"size": 608}, {"letterbox": False}):
        other = Detector("yolov3-tiny", store=real_store, **kwargs).detect(img, Postprocess(0.1))
        bikes = other[other.class_ids == base.class_ids[0]]
        assert box_iou(base.xyxy, bikes.xyxy).max() > 0.7, kwargs


def test_custom_model_files(tiny_weights: Path) -> None:
    cfg = config_dir() / "yolov3-tiny.cfg"
    det = Detector(cfg=cfg, weights=tiny_weights, postprocess=Postprocess(conf=0.3))
    assert det.model_name == "yolov3-tiny"
    assert det.names[0] == "person"  # 80 classes: the COCO names by default
    assert "motorbike" in det.detect(image("motorcycle_left.png")).labels


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("html", "is an HTML page, not a weights file"),
        ("short", "needs 35,434,956: the weights belong to a different network"),
        ("missing", "no such weights file"),
        ("names", "has 3 class names, but the cfg's output layers have 80 classes"),
    ],
)
def test_bad_custom_files_are_named_before_opencv_sees_them(
    tmp_path: Path, tiny_weights: Path, setup: str, message: str
) -> None:
    weights, names = tmp_path / "yolov3-tiny.weights", None
    if setup == "html":
        weights.write_text("<!DOCTYPE html><html><body>404</body></html>")
    elif setup == "short":
        weights.write_bytes(tiny_weights.read_bytes()[:1_000_000])
    elif setup == "names":
        weights = tiny_weights
        names = tmp_path / "three.names"
        names.write_text("a\nb\nc\n")
    with pytest.raises(ModelError, match=message):
        Detector(cfg=config_dir() / "yolov3-tiny.cfg", weights=weights, names=names)


@pytest.mark.parametrize(
    ("kwargs", "option", "message"),
    [
        ({"size": 100}, "size", "must be a multiple of 32 from 32 to 4096"),
        ({"size": 32000}, "size", "must be a multiple of 32 from 32 to 4096"),
        ({"postprocess": Postprocess(classes=("dogg",))}, "classes", "did you mean dog?"),
        ({"postprocess": Postprocess(classes=(80,))}, "classes", "class id 80 is outside 0..79"),
    ],
)
def test_bad_settings_are_refused_before_weights_are_fetched(
    tmp_path: Path, kwargs: dict, option: str, message: str
) -> None:
    """An empty offline store: any attempt to fetch the weights would fail differently."""
    store = Store.from_env({"YOLOCLI_HOME": str(tmp_path), "YOLOCLI_OFFLINE": "1"})
    with pytest.raises(OptionError, match=message) as err:
        Detector("yolov3-tiny", store=store, **kwargs)
    assert err.value.option == option


@pytest.mark.skipif(opencv_has_cuda(), reason="this OpenCV has CUDA: the refusal cannot happen")
@pytest.mark.parametrize("device", ["cuda", "cuda-fp16"])
def test_cuda_without_a_cuda_build_fails_up_front(real_store: Store, device: str) -> None:
    with pytest.raises(
        DeviceError, match=r"CPU-only\. Build OpenCV from source with -DWITH_CUDA=ON"
    ):
        Detector("yolov3-tiny", device=device, store=real_store)


def test_not_an_image_array_is_an_image_error(tiny: Detector) -> None:
    with pytest.raises(ImageError, match=r"expected a BGR uint8 image of shape \(H, W, 3\)"):
        tiny.detect(np.zeros((10, 10), np.uint8))


def test_opening_a_cached_graph_does_not_import_the_compiler(real_store: Store) -> None:
    """Every worker process opens the network: finding the compiled graph in the store must not
    import onnx (tens of milliseconds per process), only making it may."""
    Detector("yolov3-tiny", store=real_store, backend="onnxruntime")  # cached from here on
    script = (
        "import sys\n"
        "from yolocli import Detector\n"
        "from yolocli.models.store import Store\n"
        "store = Store.from_env({'YOLOCLI_HOME': sys.argv[1], 'YOLOCLI_OFFLINE': '1'})\n"
        "Detector('yolov3-tiny', store=store, backend='onnxruntime')\n"
        "compiler = 'yolocli.families.darknet.compiler'\n"
        "print(sorted(m for m in ('onnx', compiler) if m in sys.modules))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(real_store.root)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
