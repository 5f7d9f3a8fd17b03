"""``yolocli detect`` through the real entry point and as a real process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import DATA, WEIGHTS_CACHE, Mirror, run_cli, spawn
from yolocli.draw import color_for
from yolocli.io.records import FIELDS

PHOTO = DATA / "images" / "grace_hopper.jpg"
RECORD_KEYS = set(FIELDS)


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    shutil.copytree(DATA / "images", folder)
    return folder


def test_detect_writes_an_annotated_copy_and_prints_what_it_found(
    use_real_store: Path, photos: Path, tmp_path: Path
) -> None:
    src = photos / "grace_hopper.jpg"
    before = src.read_bytes()
    out = tmp_path / "out"
    result = run_cli("detect", str(src), "--model", "yolov3-tiny", "--conf", "0.1", "-o", str(out))
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"{src}: 5 objects (3 tie, 2 person), 512x600"
    assert lines[1].split()[:2] == ["tie", "0.46"]
    annotated = out / "grace_hopper.jpg"  # a file named by an absolute path: by its name
    assert cv2.imread(str(annotated)).shape == (600, 512, 3)
    assert src.read_bytes() == before
    assert "1 image, 5 objects" in result.stderr


def test_jsonl_records_follow_the_documented_schema(use_real_store: Path, photos: Path) -> None:
    result = run_cli(
        "detect", str(photos), "-m", "yolov3-tiny", "--conf", "0.1", "-f", "jsonl", "--no-save"
    )
    assert result.exit_code == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [Path(r["image"]).name for r in records] == sorted(p.name for p in photos.iterdir())
    for r in records:
        assert set(r) == RECORD_KEYS
        assert r["model"] == "yolov3-tiny"
        assert r["error"] is None
        for d in r["detections"]:
            assert set(d) == {"label", "class_id", "score", "box"}
            x1, y1, x2, y2 = d["box"]
            assert 0 <= x1 <= x2 <= r["width"]
            assert 0 <= y1 <= y2 <= r["height"]
            assert 0.1 < d["score"] <= 1
    hopper = next(r for r in records if r["image"].endswith("grace_hopper.jpg"))
    assert [d["label"] for d in hopper["detections"]] == ["tie", "tie", "person", "tie", "person"]


def test_bad_inputs_get_one_line_each_and_the_rest_is_done(
    use_real_store: Path, photos: Path, tmp_path: Path
) -> None:
    (tmp_path / "notes.jpg").write_text("these are not pixels")
    (tmp_path / "empty.png").write_bytes(b"")
    bad = [str(tmp_path / name) for name in ("missing.jpg", "notes.jpg", "empty.png")]
    good = str(photos / "coffee.png")
    result = run_cli("detect", *bad, good, "-m", "yolov3-tiny", "-f", "jsonl", "--no-save")
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("yolocli: /")]
    assert errors == [
        f"yolocli: {tmp_path / 'missing.jpg'}: no such file or folder",
        f"yolocli: {tmp_path / 'notes.jpg'}: not an image OpenCV can decode",
        f"yolocli: {tmp_path / 'empty.png'}: empty file",
    ]
    assert "Traceback" not in result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [bool(r["error"]) for r in records] == [True, True, True, False]
    assert records[3]["detections"][0]["label"] == "cup"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--size", "100"], "must be a multiple of 32 from 32 to 4096"),
        (["--conf", "1.5"], "must be in [0, 1], got 1.5"),
        (["--classes", "dogg"], "unknown class 'dogg'; did you mean dog?"),
        (["--classes", "99"], "class id 99 is outside 0..79"),
        (["--classes", ""], "Invalid value for '--classes': the list is empty"),
        (["--classes", " , "], "the list is empty"),
        (["--max-pixels", "lots"], "'lots' is not a number like 100000, 250M or 512Mi"),
        (["--model", "yolov9"], "unknown model 'yolov9'; known models: yolov3, yolov3-tiny"),
        (["--save-conf"], "--save-conf adds scores to --save-txt files"),
        (["--cfg", "x.cfg"], "a custom model needs both --cfg and --weights"),
    ],
)
def test_usage_errors_say_what_is_allowed(args: list[str], message: str) -> None:
    result = run_cli("detect", str(PHOTO), *args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_classes_by_name_and_id(use_real_store: Path) -> None:
    for value in ("person", "0", "person,bicycle"):
        args = [
            "-m",
            "yolov3-tiny",
            "--conf",
            "0.1",
            "--classes",
            value,
            "-f",
            "jsonl",
            "--no-save",
        ]
        result = run_cli("detect", str(PHOTO), *args)
        labels = {d["label"] for d in json.loads(result.stdout)["detections"]}
        assert labels == {"person"}, value


def test_cuda_is_refused_with_a_way_out(use_real_store: Path) -> None:
    from yolocli.engines.devices import opencv_has_cuda

    if opencv_has_cuda():
        pytest.skip("this OpenCV has CUDA")
    result = run_cli("detect", str(PHOTO), "-m", "yolov3-tiny", "--device", "cuda", "--no-save")
    assert result.exit_code == 1
    line = result.stderr.strip()
    assert line.startswith("yolocli: error: device 'cuda' needs OpenCV built with CUDA")
    assert line.endswith("or run on the CPU (--device cpu)")


def test_custom_weights_that_are_html_fail_in_one_line(tmp_path: Path) -> None:
    page = tmp_path / "yolov3.weights"
    page.write_text("<html><body>Moved</body></html>")
    from yolocli.models.registry import config_dir

    result = run_cli(
        "detect", str(PHOTO), "--cfg", str(config_dir() / "yolov3.cfg"), "--weights", str(page)
    )
    assert result.exit_code == 1
    why = "is an HTML page, not a weights file (a failed download saved as a file?)"
    assert result.stderr.strip() == f"yolocli: error: {page}: {why}"


def test_corrupt_installed_weights_are_refused_and_fetched_again(mirror: Mirror) -> None:
    assert run_cli("models", "download", "yolov3-tiny").exit_code == 0
    with open(mirror.installed, "r+b") as f:
        f.seek(5000)
        f.write(b"\x00\x01")
    result = run_cli(
        "detect", str(PHOTO), "-m", "yolov3-tiny", "--conf", "0.1", "--no-save", "-f", "jsonl"
    )
    assert result.exit_code == 0, result.stderr
    assert "is corrupt (sha256 mismatch); downloading it again" in result.stderr
    assert len(json.loads(result.stdout)["detections"]) == 5


def test_installed_command_from_another_folder(tmp_path: Path, tiny_weights: Path) -> None:
    env = {**os.environ, "YOLOCLI_HOME": str(WEIGHTS_CACHE), "YOLOCLI_OFFLINE": "1"}
    proc = spawn(
        ["detect", str(PHOTO), "--model", "yolov3-tiny", "--conf", "0.25"], env=env, cwd=tmp_path
    )
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert out.startswith(f"{PHOTO}: 2 objects (2 tie)")
    assert (tmp_path / "detections" / "grace_hopper.jpg").is_file()


def test_profile_prints_time_per_stage(use_real_store: Path) -> None:
    result = run_cli("detect", str(PHOTO), "-m", "yolov3-tiny", "--no-save", "--profile")
    assert result.exit_code == 0
    lines = result.stderr.splitlines()
    assert "yolocli: time per image by stage (yolov3-tiny, 1 images):" in lines
    table = [line.split() for line in lines[lines.index("  stage         wall ms   cpu ms") + 1 :]]
    assert [row[0] for row in table[:5]] == [
        "read",
        "decode",
        "preprocess",
        "forward",
        "postprocess",
    ]
    assert table[3][2] == "-"  # the forward pass runs on OpenCV's threads: no CPU figure
    assert float(table[2][2]) > 0


def test_opencl_without_a_device_is_refused(use_real_store: Path) -> None:
    if cv2.ocl.haveOpenCL():
        pytest.skip("this machine has an OpenCL device")
    result = run_cli("detect", str(PHOTO), "-m", "yolov3-tiny", "--device", "opencl", "--no-save")
    assert result.exit_code == 1
    assert "device 'opencl': this OpenCV finds no OpenCL device" in result.stderr
    assert result.stderr.strip().endswith("(--device cpu)")


def test_an_internal_error_costs_one_image_and_says_how_to_see_more(
    use_real_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug while saving one image is that image's error record; stderr adds the --debug
    hint (the record speaks library terms)."""
    import yolocli.io.outputs

    def broken(
        image: object, dets: object, style: object = None, *, in_place: bool = False
    ) -> object:
        raise RuntimeError("drawing exploded")

    monkeypatch.setattr(yolocli.io.outputs, "annotate", broken)
    result = run_cli("detect", str(PHOTO), "-m", "yolov3-tiny", "-f", "jsonl", "-o", str(tmp_path))
    assert result.exit_code == 1
    error = json.loads(result.stdout)["error"]
    assert error == "internal error: RuntimeError: drawing exploded"
    assert f"{error} (rerun with --debug for the traceback)" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_file_name_with_a_newline_stays_on_one_text_line(
    tmp_path: Path, use_real_store: Path
) -> None:
    odd = tmp_path / "two\nlines\x1b[31m.png"
    shutil.copy(DATA / "images" / "motorcycle_left.png", odd)
    result = run_cli("detect", str(odd), "-m", "yolov3-tiny", "--no-save")
    assert result.exit_code == 0
    first = result.stdout.splitlines()[0]
    assert first.startswith(f"{tmp_path}/two\\nlines\\x1b[31m.png: ")
    assert "\x1b" not in result.stdout


def test_a_model_that_cannot_be_fetched_says_what_was_tried_once_and_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("YOLOCLI_MIRROR", "http://127.0.0.1:9/")  # nothing listens on port 9
    result = run_cli("detect", str(PHOTO), "--no-save")
    assert result.exit_code == 1
    assert result.stderr.count("http://127.0.0.1:9/yolov3.weights") == 1
    assert "connection refused" in result.stderr
    assert "To go on: check that YOLOCLI_MIRROR (http://127.0.0.1:9/) serves" in result.stderr
    assert "yolocli: hint: --model NAME runs another model" in result.stderr
    assert "yolocli models download NAME" in result.stderr


def test_native_stderr_capture_ends_when_a_child_still_holds_the_pipe(tmp_path: Path) -> None:
    """Processes started during a run (worker processes, multiprocessing's resource tracker,
    which outlives them) inherit the pipe that stands in for fd 2: leaving the capture must
    not wait for them to exit, and what was written before it is relayed."""
    script = tmp_path / "capture.py"
    script.write_text(
        "import os, subprocess, sys, threading\n"
        "from yolocli.cli.common import _native_stderr_captured\n"
        "with _native_stderr_captured(relay=True):\n"
        "    child = subprocess.Popen(['sleep', '30'])\n"
        "    os.write(2, b'libfoo: chatter\\n')\n"
        "    os.write(2, b'half a line')\n"
        "alive = [t.name for t in threading.enumerate() if t.name == 'yolocli-stderr']\n"
        "child.kill()\n"
        "print(alive)\n"
    )
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    stdout, stderr = proc.stdout, proc.stderr
    assert proc.returncode == 0, stderr
    assert stdout.strip() == "[]"  # the relay thread ended: it did not time out waiting
    assert "yolocli: debug: native: libfoo: chatter\n" in stderr
    assert "yolocli: debug: native: half a line\n" in stderr


def test_drawing_options_change_the_picture_and_need_saving(
    tmp_path: Path, use_real_store: Path
) -> None:
    photo = str(DATA / "images" / "grace_hopper.jpg")
    args = ["detect", photo, "-m", "yolov3-tiny", "--conf", "0.2", "-q"]
    bad = run_cli(*args, "--no-save", "--hide-labels")
    assert bad.exit_code == 2
    assert "--no-save" in bad.stderr
    drawn = {}
    for name, extra in [("plain", []), ("bare", ["--hide-labels"]), ("big", ["--font-size", "40"])]:
        result = run_cli(*args, "-o", str(tmp_path / name), *extra, "-f", "jsonl")
        assert result.exit_code == 0, result.stderr
        drawn[name] = cv2.imread(json.loads(result.stdout)["outputs"]["image"])
    person = np.array(color_for(0))  # the person box spans the image: its tab above y=57

    def tab_pixels(image: np.ndarray, rows: int) -> int:  # JPEG: near the color, not equal
        return int((np.abs(image[:rows].astype(int) - person).max(axis=2) < 40).sum())

    assert tab_pixels(drawn["plain"], 56) > 1000
    assert tab_pixels(drawn["bare"], 56) < tab_pixels(drawn["plain"], 56) / 3
    assert tab_pixels(drawn["big"], 56) > 2 * tab_pixels(drawn["plain"], 56)
