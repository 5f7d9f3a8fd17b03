"""Hostile inputs and bad settings at the command line: decompression bombs in formats yolocli
once could not measure, binary data on stdin, FIFOs with no writer, absurd option values."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import WEIGHTS_CACHE, run_cli
from tests.test_images import _hdr, _signed_tiff

TINY = ["--model", "yolov3-tiny", "--conf", "0.2"]


@pytest.fixture
def env(tiny_weights: Path) -> dict[str, str]:
    """Environment for real processes: the suite's store, offline."""
    return {**os.environ, "YOLOCLI_HOME": str(WEIGHTS_CACHE), "YOLOCLI_OFFLINE": "1"}


def records(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


# What a run costs at most, measured from outside: the largest resident set of the yolocli
# process and its workers (getrusage over the waited-for descendants of a fresh interpreter).
MEASURE = """
import resource, subprocess, sys
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
sys.stdout.write(done.stdout)
sys.stderr.write(done.stderr)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)
sys.exit(done.returncode)
"""


def test_two_bombs_in_two_workers_each_get_an_error_record_and_memory_stays_bounded(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """The audit's bombs, at once in two workers: a Radiance HDR and a TIFF with SSHORT/SLONG
    size tags, each claiming 8000 x 8000 (decoded, the HDR alone would take 1 GB through its
    float copy). Each is refused from its header with its own record."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.hdr").write_bytes(_hdr(8000, 8000, rows=1))
    (folder / "b.tif").write_bytes(_signed_tiff(8000, 8000, rows=1))
    (folder / "c.jpg").write_bytes(
        (Path(__file__).parent / "data/images/grace_hopper.jpg").read_bytes()
    )
    args = [sys.executable, "-m", "yolocli", "detect", str(folder / "a.hdr"), str(folder / "b.tif")]
    args += [str(folder / "c.jpg"), *TINY, "-j", "2", "--no-save", "-f", "jsonl"]
    args += ["--max-pixels", "50M"]
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, *args], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 1, done.stderr
    found = {Path(r["image"]).name: r for r in records(done.stdout)}
    assert found["a.hdr"]["error"].startswith("image too large: 8000 x 8000 pixels (64 MP) of ")
    assert found["b.tif"]["error"].startswith("image too large: 8000 x 8000 pixels (64 MP),")
    assert found["c.jpg"]["error"] is None
    assert found["c.jpg"]["detections"]
    peak_kib = int(done.stderr.strip().splitlines()[-1])
    assert peak_kib < 900 * 1024, f"a process peaked at {peak_kib // 1024} MiB"


def test_opencv_s_own_pixel_limit_is_lowered_before_it_loads(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """A second guard that does not depend on yolocli reading headers right: OpenCV's decoders
    check the size they read themselves against --max-pixels, in this process and in workers.
    After a real detect run, OpenCV refuses a 100 x 100 PNG decoded directly."""
    script = """
import sys
import numpy as np
from yolocli.cli import cli
try:
    cli.main(sys.argv[1:], prog_name="yolocli")
except SystemExit:
    pass
import cv2
ok, png = cv2.imencode(".png", np.zeros((100, 100, 3), np.uint8))
try:
    cv2.imdecode(png, cv2.IMREAD_COLOR)
    print("decoded")
except cv2.error as err:
    print("refused" if "CV_IO_MAX_IMAGE_PIXELS" in str(err) else err)
"""
    image = tmp_path / "small.png"
    image.write_bytes(_signed_tiff(50, 50))
    done = subprocess.run(
        [sys.executable, "-c", script, "detect", str(image), *TINY, "--no-save", "-f", "jsonl",
         "--max-pixels", "5000"],
        env={k: v for k, v in env.items() if k != "OPENCV_IO_MAX_IMAGE_PIXELS"},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    lines = done.stdout.splitlines()
    assert json.loads(lines[0])["error"] is None  # 2500 pixels pass
    assert lines[-1] == "refused", done.stderr


# ------------------------------------------------------------------------ option values


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--max-bytes", "inf", "'inf' is not a number like 100000, 250M or 512Mi"),
        ("--max-bytes", "nan", "is not a number"),
        ("--max-pixels", "1e400", "'1e400' is not a number"),
        ("--max-pixels", "-5", "is not a number"),
        ("--max-pixels", "0", "must be at least 1"),
        ("--max-bytes", "99999999999999999999G", "is too large"),
    ],
)
def test_bad_amounts_are_usage_errors_naming_the_option(
    option: str, value: str, message: str
) -> None:
    result = run_cli("detect", "x.jpg", option, value)
    assert result.exit_code == 2, result.stderr
    assert f"Invalid value for '{option}': " in result.stderr
    assert message in result.stderr
    assert "internal error" not in result.stderr


def test_one_rule_for_units_in_every_amount() -> None:
    """K, M, G are powers of 1000 and Ki, Mi, Gi of 1024, in --max-bytes as in --max-pixels."""
    from yolocli.cli.options import _Amount

    amount = _Amount()
    assert [amount.convert(v, None, None) for v in ("250M", "512Mi", "512MiB", "2k", "1.5Ki")] == [
        250_000_000, 512 << 20, 512 << 20, 2000, 1536,
    ]  # fmt: skip
    help_text = " ".join(run_cli("detect", "--help").stdout.split())
    assert help_text.count("K, M, G, T: powers of 1000; Ki, Mi, Gi, Ti: powers of 1024") == 2


# ------------------------------------------------------------------------ binary stdin


def _avi(path: Path) -> bytes:
    import cv2
    import numpy as np

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(5):
        writer.write(np.full((48, 64, 3), i * 40, np.uint8))
    writer.release()
    return path.read_bytes()


@pytest.mark.parametrize("null", [False, True])
def test_random_bytes_on_stdin_are_one_error_not_hundreds_of_paths(null: bool) -> None:
    import io

    from yolocli.io.inputs import expand_sources

    data = np.random.default_rng(7).integers(0, 256, 100_000, dtype=np.uint8).tobytes()
    found = list(expand_sources(["-"], stdin=io.BytesIO(data), null=null))
    assert len(found) == 1
    assert found[0].error is not None
    assert found[0].error.startswith("stdin holds binary data, neither an image")
    assert found[0].not_an_image


def test_binary_after_paths_ends_the_list_with_one_error() -> None:
    import io

    from yolocli.io.inputs import expand_sources

    data = b"photos/first-one.jpg\nphotos/second.jpg\n" + bytes(range(256)) * 4
    found = list(expand_sources(["-"], stdin=io.BytesIO(data)))
    assert [s.name for s in found] == ["photos/first-one.jpg", "photos/second.jpg", "-"]
    assert "is not a list of paths: binary data" in (found[2].error or "")


def test_a_video_piped_to_stdin_is_one_clear_error(tmp_path: Path, env: dict[str, str]) -> None:
    """The newcomer's ``cat clip.avi | yolocli detect -``: once a 100-byte "image"."""
    clip = _avi(tmp_path / "clip.avi")
    done = subprocess.run(
        [sys.executable, "-m", "yolocli", "detect", "-", *TINY, "--no-save", "-f", "jsonl"],
        input=clip, env=env, capture_output=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 1
    (record,) = records(done.stdout.decode())
    assert record["error"].startswith("stdin holds a video, neither an image yolocli reads")
    assert done.stderr.decode().count("stdin holds a video") == 1


# ------------------------------------------------------------------------ FIFOs with no writer


def _wait_for_line(stream: object, text: str, timeout: float = 60.0) -> str:
    """Lines of ``stream`` (a pipe) until one holds ``text``; fails after ``timeout``."""
    import select
    import time

    deadline = time.monotonic() + timeout
    seen = ""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([stream], [], [], 0.5)
        if ready:
            line = stream.readline()  # type: ignore[attr-defined]
            seen += line
            if text in line:
                return seen
    pytest.fail(f"no line with {text!r} in {timeout} s; stderr so far: {seen}")


@pytest.mark.parametrize("how", ["@list", "--coco-ids"])
def test_a_fifo_with_no_writer_says_yolocli_is_waiting_then_reads_it(
    tmp_path: Path, env: dict[str, str], how: str
) -> None:
    photo = tmp_path / "10.jpg"
    photo.write_bytes((Path(__file__).parent / "data/images/grace_hopper.jpg").read_bytes())
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    if how == "@list":
        args, content = [f"@{fifo}", "-f", "jsonl"], f"{photo}\n"
    else:
        doc = {"images": [{"id": 77, "file_name": "10.jpg"}], "annotations": [], "categories": []}
        args, content = [str(photo), "-f", "coco", "--coco-ids", str(fifo)], json.dumps(doc)
    proc = subprocess.Popen(
        [sys.executable, "-m", "yolocli", "detect", *args, *TINY, "--no-save"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        said = _wait_for_line(proc.stderr, "waiting for a writer")
        assert f"{fifo} is a FIFO and nothing has been written to it yet" in said
        fifo.write_text(content)  # the writer arrives: the run goes on
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    if how == "@list":
        assert json.loads(out)["image"] == str(photo)
    else:
        assert {d["image_id"] for d in json.loads(out)} == {77}


# ------------------------------------------------------------------------ absurd slicing


def test_tiles_far_smaller_than_the_network_are_refused_before_any_work(
    env: dict[str, str],
) -> None:
    """The audit's ``--slice 32`` (each tile enlarged 13 times at 416) ran for hours."""
    photo = Path(__file__).parent / "data/images/grace_hopper.jpg"
    done = subprocess.run(
        [sys.executable, "-m", "yolocli", "detect", str(photo), *TINY, "--slice", "32",
         "--no-save"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 2
    assert "Invalid value for '--slice': tiles of 32x32 for a 416x416 network" in done.stderr
    assert "at least 104x104" in done.stderr


@pytest.mark.parametrize("workers", ["1", "2"])
def test_an_image_needing_absurdly_many_passes_is_its_own_error(
    tmp_path: Path, env: dict[str, str], workers: str
) -> None:
    import cv2

    folder = tmp_path / "in"
    folder.mkdir()
    cv2.imwrite(str(folder / "huge.png"), np.zeros((5400, 5400, 3), np.uint8))
    photo = cv2.imread(str(Path(__file__).parent / "data/images/grace_hopper.jpg"))
    cv2.imwrite(str(folder / "small.jpg"), cv2.resize(photo, (160, 190)))  # 4 tiles and itself
    done = subprocess.run(
        [sys.executable, "-m", "yolocli", "detect", str(folder), *TINY, "--slice", "104",
         "--no-save", "-f", "jsonl", "-j", workers],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    found = {Path(r["image"]).name: r for r in records(done.stdout)}
    assert done.returncode == 1, done.stderr
    assert found["small.jpg"]["error"] is None
    error = found["huge.png"]["error"]
    assert error.startswith("--slice 104 would take ")
    assert error.endswith("network passes for this 5400x5400 image, over the limit of 4,096: "
                          "use larger tiles")  # fmt: skip


def test_many_passes_are_a_warning_and_too_many_an_error() -> None:
    from yolocli.errors import ImageError
    from yolocli.slicing import MANY_PASSES, MAX_PASSES, Slicer

    slicer = Slicer(416)
    assert slicer.passes_note(MANY_PASSES, 4000, 3000) is None
    note = slicer.passes_note(MANY_PASSES + 1, 4000, 3000)
    assert note == (
        "257 network passes for this 4000x3000 image (--slice 416): slow; larger tiles take fewer"
    )
    with pytest.raises(ImageError, match="would take 4,097 network passes"):
        slicer.passes_note(MAX_PASSES + 1, 4000, 3000)


def test_the_command_line_s_default_pixel_limit_is_the_library_s() -> None:
    from yolocli.cli import common
    from yolocli.io import images

    assert common.DEFAULT_MAX_PIXELS == images.DEFAULT_MAX_PIXELS
