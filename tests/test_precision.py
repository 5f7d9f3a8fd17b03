"""Reduced precision, opt-in: what `yolocli val` says each costs on the test photos, and clear
refusals where it cannot run. The ground truth is the reference darknet's own detections."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import DATA, run_cli
from tests.test_evaluate import yolo_dataset
from yolocli import engines
from yolocli.detector import plan
from yolocli.engines.devices import cpu_flags
from yolocli.errors import OptionError
from yolocli.models.store import Store

BF16_HERE = engines.installed("openvino") and bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def val(root: Path, *extra: str) -> dict[str, float]:
    result = run_cli("val", str(root), "-m", "yolov3-tiny", "-f", "json", *extra)
    assert result.exit_code == 0, result.stderr
    doc: dict[str, float] = json.loads(result.stdout)
    return doc


def test_val_says_what_int8_and_bf16_cost_against_fp32(
    tmp_path: Path, use_real_store: Path
) -> None:
    root = yolo_dataset(tmp_path / "data")
    fp32 = val(root)
    assert fp32["map50"] > 0.98  # the reference's own detections: found again in fp32
    int8 = val(root, "--precision", "int8")
    # Recorded in README ("Precision"): mAP@0.5 unchanged, mAP@0.5:0.95 0.988 -> 0.882 (boxes
    # move a little: IoU above 0.5, not always above 0.9).
    assert int8["map50"] >= fp32["map50"] - 0.02
    assert fp32["map"] - 0.15 <= int8["map"] < fp32["map"]
    if BF16_HERE:
        bf16 = val(root, "--precision", "bf16")
        assert bf16["map"] >= fp32["map"] - 0.02


def test_int8_is_quantized_once_and_says_so_in_the_profile(
    tmp_path: Path, use_real_store: Path
) -> None:
    images = tmp_path / "images"
    images.mkdir()
    for name in ("coffee.png", "motorcycle_left.png"):
        (images / name).write_bytes((DATA / "images" / name).read_bytes())
    first = run_cli("detect", str(images), "-m", "yolov3-tiny", "--precision", "int8",
                    "--no-save", "-f", "jsonl", "--profile")  # fmt: skip
    assert first.exit_code == 0, first.stderr
    assert "engine: ONNX Runtime" in first.stderr
    assert " int8" in first.stderr
    assert "WARNING" not in first.stderr  # the quantizer's advice stays off stderr
    labels = [d["label"] for line in first.stdout.splitlines()
              for d in json.loads(line)["detections"]]  # fmt: skip
    assert "cup" in labels
    assert "motorbike" in labels
    again = run_cli("detect", str(images), "-m", "yolov3-tiny", "--precision", "int8",
                    "--no-save", "-f", "jsonl")  # fmt: skip
    assert "quantizing" not in again.stderr  # cached in the store
    assert again.stdout == first.stdout


def test_reduced_precision_is_refused_where_it_cannot_run(
    real_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(OptionError, match=r"int8 runs on the onnxruntime engine .* not on opencv"):
        plan("yolov3-tiny", backend="opencv", precision="int8", store=real_store)
    with pytest.raises(OptionError, match=r"bf16 runs on the openvino engine"):
        plan("yolov3-tiny", backend="onnxruntime", precision="bf16", store=real_store)
    with pytest.raises(OptionError, match=r"int8 runs on the CPU, not on 'cuda'"):
        plan("yolov3-tiny", device="cuda", precision="int8", store=real_store)
    with pytest.raises(OptionError, match=r"calibrated on images, and this run has none"):
        plan("yolov3-tiny", precision="int8", store=real_store).compiled()
    if engines.installed("openvino"):
        monkeypatch.setattr("yolocli.engines.devices.cpu_flags", lambda: frozenset({"avx2", "fma"}))
        with pytest.raises(OptionError, match=r"bf16 needs a CPU that computes bfloat16"):
            plan("yolov3-tiny", precision="bf16", store=real_store)


def test_int8_on_stdin_alone_says_what_it_needs(use_real_store: Path) -> None:
    from click.testing import CliRunner

    from yolocli.cli import cli

    image = (DATA / "images" / "coffee.png").read_bytes()
    result = CliRunner().invoke(
        cli, ["detect", "-", "-m", "yolov3-tiny", "--precision", "int8", "--no-save"],
        input=image, prog_name="yolocli",
    )  # fmt: skip
    assert result.exit_code == 2
    assert "'--precision': int8 is calibrated on images" in result.stderr


def test_int8_is_for_darknet_models_so_far(real_store: Store) -> None:
    model = str(DATA / "families" / "yolox_tiny_random.onnx")
    with pytest.raises(OptionError, match=r"int8 is for darknet models so far"):
        plan(model, precision="int8", store=real_store)
