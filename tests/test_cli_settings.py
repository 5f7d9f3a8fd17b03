"""Settings at the command line, end to end: per-class thresholds (in detect, through worker
processes and slicing, and in val), rectangular --size everywhere a size is taken, COCO's
class spellings, and caps on absurd --threads and -j."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import onnx
import pytest

from tests.conftest import DATA, run_cli
from tests.test_evaluate import yolo_dataset

PHOTO = DATA / "images" / "grace_hopper.jpg"


def detections(stdout: str) -> list[list[tuple[str, float, tuple[float, ...]]]]:
    return [
        sorted((d["label"], d["score"], tuple(d["box"])) for d in json.loads(line)["detections"])
        for line in stdout.splitlines()
    ]


@pytest.mark.parametrize(
    "extra",
    [[], ["-j", "2"], ["--slice", "320"]],
    ids=["one network", "two worker processes", "sliced"],
)
def test_per_class_thresholds_act_as_that_class_s_own_conf(
    tmp_path: Path, use_real_store: Path, extra: list[str]
) -> None:
    """The oracle: ``--conf 0.2,tie=0.35`` finds the ties that ``--conf 0.35`` finds and the
    rest that ``--conf 0.2`` finds (NMS and slicing's merge run per class), in one network,
    in worker processes and tile by tile."""
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.jpg", "b.jpg"):
        shutil.copy(PHOTO, folder / name)
    common = [str(folder), "-m", "yolov3-tiny", "--no-save", "-f", "jsonl", *extra]
    runs = {}
    for conf in ("0.2", "0.35", "0.2,tie=0.35"):
        result = run_cli("detect", *common, "--conf", conf)
        assert result.exit_code == 0, result.stderr
        runs[conf] = detections(result.stdout)
    expected = [
        sorted([d for d in low if d[0] != "tie"] + [d for d in high if d[0] == "tie"])
        for low, high in zip(runs["0.2"], runs["0.35"], strict=True)
    ]
    assert runs["0.2,tie=0.35"] == expected
    assert runs["0.2,tie=0.35"] != runs["0.2"]  # the threshold did remove a tie
    assert any(d[0] != "tie" and d[1] < 0.35 for d in expected[0])  # and kept the rest


def test_per_class_thresholds_in_val(tmp_path: Path, use_real_store: Path) -> None:
    """``--conf 0.001,person=1.0`` keeps no person at all, and every other class as before
    (with no cap per image, which the persons would otherwise share with the rest)."""
    root = yolo_dataset(tmp_path / "data")
    plain = run_cli("val", str(root), "-m", "yolov3-tiny", "-f", "json", "--max-det", "0")
    assert plain.exit_code == 0, plain.stderr
    strict = run_cli("val", str(root), "-m", "yolov3-tiny", "-f", "json", "--max-det", "0",
                     "--conf", "0.001,person=1.0")  # fmt: skip
    assert strict.exit_code == 0, strict.stderr
    before = {c["name"]: c for c in json.loads(plain.stdout)["classes"]}
    after = {c["name"]: c for c in json.loads(strict.stdout)["classes"]}
    assert before["person"]["ap50"] > 0.5
    assert after["person"]["ap50"] == 0
    for name in before.keys() - {"person"}:
        assert after[name] == before[name], name


# ------------------------------------------------------------------------ rectangular sizes


def test_a_rectangular_size_is_taken_by_detect_val_export_and_the_api(
    tmp_path: Path, use_real_store: Path
) -> None:
    from yolocli.detector import Detector

    detector = Detector("yolov3-tiny", size="640x384")
    assert (detector.width, detector.height) == (640, 384)
    assert (Detector("yolov3-tiny", size=(320, 416)).width, 416) == (320, 416)
    found = run_cli("detect", str(PHOTO), "-m", "yolov3-tiny", "--size", "640x384", "--conf", "0.2",
                    "--no-save", "-f", "jsonl")  # fmt: skip
    assert found.exit_code == 0, found.stderr
    assert json.loads(found.stdout)["detections"]
    out = tmp_path / "rect.onnx"
    exported = run_cli("export", "yolov3-tiny", "--size", "640x384", "-o", str(out))
    assert exported.exit_code == 0, exported.stderr
    dims = onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims[2:]] == [384, 640]
    root = yolo_dataset(tmp_path / "data")
    scored = run_cli("val", str(root), "-m", "yolov3-tiny", "--size", "640x384", "-f", "json")
    assert scored.exit_code == 0, scored.stderr
    assert json.loads(scored.stdout)["map50"] > 0.3


@pytest.mark.parametrize("command", ["detect", "val", "export"])
@pytest.mark.parametrize("size", ["640x100", "100", "640x", "x384", "big"])
def test_a_bad_size_is_a_usage_error_everywhere(tmp_path: Path, command: str, size: str) -> None:
    args = {"detect": [str(PHOTO)], "val": [str(tmp_path)], "export": ["-o", str(tmp_path / "x")]}
    result = run_cli(
        command,
        *args[command],
        "-m" if command != "export" else "--size",
        *(["yolov3-tiny", "--size", size] if command != "export" else [size, "yolov3-tiny"]),
    )
    assert result.exit_code == 2, result.stderr
    assert "Invalid value for '--size'" in result.stderr


# ------------------------------------------------------------------------ names and caps


def test_classes_take_coco_spellings_in_any_case(use_real_store: Path) -> None:
    result = run_cli("detect", str(DATA / "images" / "motorcycle_left.png"), "-m", "yolov3-tiny",
                     "--classes", "Motorcycle,PERSON", "--no-save", "-f", "jsonl")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    labels = {d["label"] for d in json.loads(result.stdout)["detections"]}
    assert "motorbike" in labels
    assert labels <= {"motorbike", "person"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--threads", str(4 * (os.cpu_count() or 1) + 1)], "Invalid value for '--threads'"),
        (["-j", "99999"], "99999 worker processes on"),
        (["--conf", "0.3,persn=0.5"], "unknown class 'persn'; did you mean person?"),
        (["--conf", "0.3,car=2"], "Invalid value for '--conf'"),
    ],
)
def test_absurd_values_are_refused_before_any_work(args: list[str], message: str) -> None:
    result = run_cli("detect", str(PHOTO), "-m", "yolov3-tiny", *args)
    assert result.exit_code == 2, result.stderr
    assert message in result.stderr


def test_export_to_a_place_that_cannot_be_written_is_a_usage_error(use_real_store: Path) -> None:
    result = run_cli("export", "yolov3-tiny", "-o", "/proc/version")
    assert result.exit_code == 2, result.stderr
    assert "/proc/version exists and is not a graph yolocli exported" in result.stderr
    forced = run_cli("export", "yolov3-tiny", "-o", "/proc/version", "--force")
    assert forced.exit_code == 2, forced.stderr
    assert "cannot write /proc/version" in forced.stderr
    for res in (result, forced):
        assert "internal error" not in res.stderr


def test_a_class_threshold_below_conf_reaches_candidates_the_decoder_would_drop(
    real_store: object,
) -> None:
    """The decoder drops rows under the lowest threshold of any class, not under ``conf``."""
    import cv2

    from yolocli.detector import Detector
    from yolocli.postprocess import Postprocess

    detector = Detector("yolov3-tiny", store=real_store)  # type: ignore[arg-type]
    image = cv2.imread(str(PHOTO))
    low = detector.detect(image, Postprocess(conf=0.2))
    mixed = detector.detect(image, Postprocess(conf=0.5, class_conf={"tie": 0.2}))
    ties = sorted(s for s, label in zip(low.scores.tolist(), low.labels, strict=True)
                  if label == "tie")  # fmt: skip
    assert len(ties) >= 2
    assert mixed.labels == ["tie"] * len(ties)
    assert sorted(mixed.scores.tolist()) == ties
