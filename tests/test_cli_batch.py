"""Folders and pipelines: every kind of input, streamed, interrupted and resumed."""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import termios
import time
from pathlib import Path

import cv2
import pytest

from tests import awkward
from tests.conftest import DATA, WEIGHTS_CACHE, run_cli, spawn

TINY = ["--model", "yolov3-tiny", "--conf", "0.2"]


@pytest.fixture
def env(tiny_weights: Path) -> dict[str, str]:
    """Environment for real processes: the suite's store, offline."""
    return {**os.environ, "YOLOCLI_HOME": str(WEIGHTS_CACHE), "YOLOCLI_OFFLINE": "1"}


def records(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


def wait_for(condition: object, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def image_files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in {".jpg", ".png", ".webp", ".bmp", ".tif"}
    )


# -------------------------------------------------------------------------- the awkward folder


def test_awkward_folder_every_file_gets_a_record_and_one_line_per_failure(
    tmp_path: Path, env: dict[str, str]
) -> None:
    folder = tmp_path / "in"
    expect = awkward.build(folder)
    out = tmp_path / "out"
    proc = spawn(["detect", str(folder), *TINY, "-f", "jsonl", "-o", str(out)], env=env)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 1  # some inputs failed, the rest were done

    got = {str(Path(r["image"]).relative_to(folder)): r for r in records(stdout)}
    assert set(got) == set(expect)  # every image file, nothing else (readme.txt is not one)
    order = [r["image"] for r in records(stdout)]
    assert order == [str(folder / name) for name in _walk_order(expect)]
    for name, want in expect.items():
        rec = got[name]
        if want.error is None:
            assert rec["error"] is None, (name, rec["error"])
            assert (rec["width"], rec["height"]) == (want.width, want.height), name
        else:
            assert want.error in rec["error"], (name, rec["error"])

    summary = re.compile(r"yolocli: \d+ images, \d+ objects, 6 failed in ")
    failures = [line for line in stderr.splitlines() if not summary.match(line)]
    failed = {name for name, want in expect.items() if want.error}
    assert len(failures) == len(failed), stderr
    assert all(line.startswith(f"yolocli: {folder}/") for line in failures)
    for noise in ("Traceback", "libpng", "Corrupt JPEG", "[ERROR", "TIFF"):
        assert noise not in stderr

    # outputs mirror the folder; dog.jpg / dog.png (one name claim each) do not collide
    written = [got[name]["outputs"].get("image") for name in _walk_order(expect)]
    for name, path in zip(_walk_order(expect), written, strict=True):
        if expect[name].error is None:
            assert Path(path).is_file(), name
            assert Path(path).suffix == Path(name).suffix
            assert Path(path).parent == (out / name).parent
        else:
            assert got[name]["outputs"] == {}
    assert len(set(filter(None, written))) == len(expect) - len(failed)
    assert got["dog.jpg"]["outputs"]["image"] == str(out / "dog.jpg")
    assert got["dog.png"]["outputs"]["image"] == str(out / "dog-2.png")
    assert cv2.imread(str(out / "dog-2.png")).shape == (600, 512, 3)
    assert cv2.imread(str(out / "rotated.jpg")).shape == (600, 512, 3)  # drawn upright


def _walk_order(expect: dict[str, awkward.Expect]) -> list[str]:
    """Files of a folder before its subfolders, each level sorted by name."""
    return sorted(expect, key=lambda name: (*Path(name).parent.parts, "\0", Path(name).name))


def test_permission_denied_is_a_record(tmp_path: Path, use_real_store: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads any file: permission denied cannot happen")
    locked = tmp_path / "locked.jpg"
    locked.write_bytes((DATA / "images" / "rocket.jpg").read_bytes())
    locked.chmod(0)
    result = run_cli("detect", str(locked), *TINY, "--no-save", "-f", "jsonl")
    assert records(result.stdout)[0]["error"] == "permission denied"


# -------------------------------------------------------------------------- stdin


def test_stdin_paths_newline_and_nul_separated(tmp_path: Path, env: dict[str, str]) -> None:
    paths = awkward.copies(tmp_path / "in", 3)
    odd = tmp_path / "in" / "line\nbreak.jpg"  # only -0 can carry this name
    odd.write_bytes(paths[0].read_bytes())
    lines = "".join(f"{p}\n" for p in paths).encode()
    proc = subprocess.run(
        [*_cmd(), "detect", "-", *TINY, "-f", "jsonl", "--no-save"],
        input=lines, capture_output=True, env=env, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert [r["image"] for r in records(proc.stdout.decode())] == [str(p) for p in paths]

    nul = b"".join(os.fsencode(p) + b"\0" for p in [*paths, odd])
    proc = subprocess.run(
        [*_cmd(), "detect", "-", "-0", *TINY, "-f", "jsonl", "--no-save"],
        input=nul, capture_output=True, env=env, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert [r["image"] for r in records(proc.stdout.decode())] == [str(p) for p in [*paths, odd]]


def test_stdin_image_bytes(tmp_path: Path, env: dict[str, str]) -> None:
    data = (DATA / "images" / "grace_hopper.jpg").read_bytes()
    out = tmp_path / "out"
    proc = subprocess.run(
        [*_cmd(), "detect", "-", *TINY, "-f", "jsonl", "-o", str(out)],
        input=data, capture_output=True, env=env, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (rec,) = records(proc.stdout.decode())
    assert (rec["image"], rec["width"], rec["height"]) == ("-", 512, 600)
    assert [d["label"] for d in rec["detections"]] == ["tie", "tie", "person", "tie"]
    assert cv2.imread(str(out / "stdin.jpg")).shape == (600, 512, 3)


def test_results_stream_one_record_per_image_as_soon_as_it_is_done(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """The second path is written only after the first record has been read back."""
    first, second = awkward.copies(tmp_path / "in", 2)
    proc = spawn(["detect", "-", *TINY, "-f", "jsonl", "--no-save"], env=env, stdin=subprocess.PIPE)
    assert proc.stdin is not None
    assert proc.stdout is not None
    proc.stdin.write(f"{first}\n")
    proc.stdin.flush()
    ready, _, _ = select.select([proc.stdout], [], [], 60)
    assert ready, "no record while stdin is still open"
    assert json.loads(proc.stdout.readline())["image"] == str(first)
    proc.stdin.write(f"{second}\n")
    proc.stdin.close()
    assert json.loads(proc.stdout.readline())["image"] == str(second)
    assert proc.wait(timeout=60) == 0


def _cmd() -> list[str]:
    import sys

    return [sys.executable, "-m", "yolocli"]


# -------------------------------------------------------------------------- formats and inputs


def test_csv_parses_back_with_a_row_for_every_image(tmp_path: Path, use_real_store: Path) -> None:
    folder = tmp_path / "in"
    awkward.copies(folder, 6)
    (folder / "broken.jpg").write_bytes(b"nope")
    result = run_cli("detect", str(folder), *TINY, "-f", "csv", "--no-save")
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert {Path(r["image"]).name for r in rows} == {p.name for p in folder.iterdir()}
    hopper = [r for r in rows if r["image"].endswith("grace_hopper.jpg")]
    assert [r["label"] for r in hopper] == ["tie", "tie", "person", "tie"]
    assert all(float(r["x1"]) <= float(r["x2"]) for r in hopper)
    empty = [r for r in rows if r["image"].endswith("chelsea.png")]
    assert len(empty) == 1
    assert empty[0]["label"] == ""
    assert empty[0]["width"] == "451"
    (broken,) = [r for r in rows if r["image"].endswith("broken.jpg")]
    assert broken["error"] == "not an image OpenCV can decode"


def test_json_is_one_valid_array(tmp_path: Path, use_real_store: Path) -> None:
    awkward.copies(tmp_path / "in", 3)
    result = run_cli("detect", str(tmp_path / "in"), *TINY, "-f", "json", "--no-save")
    assert len(json.loads(result.stdout)) == 3


def test_globs_and_list_files(tmp_path: Path, use_real_store: Path) -> None:
    paths = awkward.copies(tmp_path / "in", 6)
    pattern = str(tmp_path / "in" / "*.png")
    listing = tmp_path / "list.txt"
    listing.write_text(f"{paths[0]}\n\n{paths[1]}\n")
    result = run_cli("detect", pattern, f"@{listing}", *TINY, "-f", "jsonl", "--no-save")
    assert result.exit_code == 0, result.stderr
    pngs = sorted(str(p) for p in paths if p.suffix == ".png")
    assert [r["image"] for r in records(result.stdout)] == [*pngs, str(paths[0]), str(paths[1])]


def test_save_txt_crops_and_batch(tmp_path: Path, use_real_store: Path) -> None:
    folder = tmp_path / "in"
    awkward.copies(folder, 6)
    out = tmp_path / "out"
    one = run_cli("detect", str(folder), *TINY, "-f", "jsonl", "-o", str(out), "--save-txt",
                  "--save-conf", "--save-crops")  # fmt: skip
    assert one.exit_code == 0, one.stderr
    labels = next(out.rglob("*grace_hopper.txt"))
    lines = [line.split() for line in labels.read_text().splitlines()]
    assert [line[0] for line in lines] == ["27", "27", "0", "27"]
    assert all(0 <= float(v) <= 1 for line in lines for v in line[1:5])
    assert float(lines[0][5]) == pytest.approx(0.4649, abs=1e-3)
    crops = sorted(p.relative_to(out / "crops") for p in (out / "crops").rglob("*.jpg"))
    assert [c.parts[0] for c in crops].count("tie") == 3
    batched = run_cli("detect", str(folder), *TINY, "-f", "jsonl", "--no-save", "--batch", "4")
    saved = records(one.stdout)
    for rec in saved:
        written = rec.pop("outputs")
        assert written["labels"].endswith(".txt")
        assert len(written["crops"]) == len(rec["detections"])
        assert all(
            Path(p).is_file() for p in [written["image"], written["labels"], *written["crops"]]
        )
    unsaved = records(batched.stdout)
    assert all(rec.pop("outputs") == {} for rec in unsaved)
    assert unsaved == saved


# -------------------------------------------------------------------------- outputs stay safe


def test_outputs_never_leave_out_nor_overwrite_inputs(tmp_path: Path, use_real_store: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    above = tmp_path / "above.jpg"
    above.write_bytes((DATA / "images" / "rocket.jpg").read_bytes())
    os.chdir(work)
    try:
        result = run_cli("detect", "../above.jpg", *TINY, "-o", "out", "-q")
        assert result.exit_code == 0, result.stderr
        assert (work / "out" / "above.jpg").is_file()
        assert [p for p in tmp_path.iterdir() if p.name != "work"] == [above]

        here = work / "here.jpg"
        here.write_bytes(above.read_bytes())
        before = here.read_bytes()
        same = run_cli("detect", "here.jpg", *TINY, "-o", ".", "-f", "jsonl")
        assert same.exit_code == 1
        assert (
            "refusing to replace here.jpg: yolocli did not write it"
            in (records(same.stdout)[0]["error"])
        )
        assert here.read_bytes() == before
    finally:
        os.chdir(DATA)


def test_out_folder_as_input_folder_is_a_usage_error(tmp_path: Path) -> None:
    awkward.copies(tmp_path / "in", 1)
    result = run_cli("detect", str(tmp_path / "in"), "-o", str(tmp_path / "in"))
    assert result.exit_code == 2
    assert "would overwrite the inputs" in result.stderr


def test_kill_9_leaves_only_complete_files_and_skip_existing_finishes_the_rest(
    tmp_path: Path, env: dict[str, str]
) -> None:
    folder = tmp_path / "in"
    awkward.copies(folder, 40)
    out = tmp_path / "out"
    args = ["detect", str(folder), *TINY, "-f", "jsonl", "-o", str(out), "--save-txt"]
    proc = spawn(args, env=env)
    wait_for(lambda: len(image_files(out)) >= 6)
    proc.kill()
    proc.wait()
    done = image_files(out)
    assert 6 <= len(done) < 40
    for path in done:  # never a half-written image at an image name
        assert cv2.imread(str(path)) is not None, path

    again = spawn([*args, "--skip-existing"], env=env)
    stdout, stderr = again.communicate(timeout=300)
    assert again.returncode == 0, stderr
    recs = records(stdout)
    assert len(recs) == 40
    skipped = [r for r in recs if r.get("skipped")]
    assert len(skipped) >= len(done) - 2  # the ones whose label file was also written
    assert len(image_files(out)) == 40


def test_ctrl_c_stops_cleanly_with_status_130(tmp_path: Path, env: dict[str, str]) -> None:
    awkward.copies(tmp_path / "in", 40)
    proc = spawn(["detect", str(tmp_path / "in"), *TINY, "-f", "jsonl", "--no-save"], env=env)
    assert proc.stdout is not None
    first = proc.stdout.readline()
    proc.send_signal(signal.SIGINT)
    rest, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130
    lines = [first, *rest.splitlines()]
    assert all(json.loads(line) for line in lines)  # every record complete
    assert len(lines) < 40
    assert "yolocli: interrupted" in stderr
    assert "Traceback" not in stderr


def test_closed_pipe_ends_quietly(tmp_path: Path, env: dict[str, str]) -> None:
    awkward.copies(tmp_path / "in", 20)
    proc = spawn(["detect", str(tmp_path / "in"), *TINY, "-f", "jsonl", "--no-save"], env=env)
    assert proc.stdout is not None
    assert proc.stderr is not None
    json.loads(proc.stdout.readline())
    proc.stdout.close()  # like `| head -1`
    assert proc.wait(timeout=60) == 141
    assert proc.stderr.read() == ""


# -------------------------------------------------------------------------- progress


def test_progress_bar_on_a_terminal_and_not_with_quiet(tmp_path: Path, env: dict[str, str]) -> None:
    awkward.copies(tmp_path / "in", 6)
    for quiet in (False, True):
        master, slave = pty.openpty()
        # a terminal 100 columns wide (a fresh pty has 0, and tqdm would draw nothing)
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
        args = ["detect", str(tmp_path / "in"), *TINY, "--no-save", "-f", "jsonl"]
        proc = spawn([*args, *(["-q"] if quiet else [])], env=env, stderr=slave)
        os.close(slave)
        seen = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the process closed the terminal
                break
            if not chunk:
                break
            seen += chunk
        proc.wait(timeout=60)
        os.close(master)
        text = seen.decode("utf-8", "replace")
        if quiet:
            assert text == ""
        else:
            assert "0/6 [" in text  # counted up front: done/total and an ETA
            assert "img/s" in text


def test_paths_that_are_not_utf8_round_trip_through_jsonl(
    tmp_path: Path, env: dict[str, str]
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    odd = os.fsdecode(b"caf\xe9-latin1.jpg")  # a Latin-1 name: not valid UTF-8
    (folder / odd).write_bytes((DATA / "images" / "rocket.jpg").read_bytes())
    proc = spawn(["detect", str(folder), *TINY, "-f", "jsonl", "--no-save"], env=env)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    (rec,) = records(stdout)  # valid JSON, valid UTF-8
    assert os.fsencode(rec["image"]) == os.fsencode(str(folder / odd))
    assert rec["error"] is None


def test_same_names_from_two_folders_never_overwrite_each_other(
    tmp_path: Path, use_real_store: Path
) -> None:
    for side in ("a", "b"):
        (tmp_path / side).mkdir()
        (tmp_path / side / "x.jpg").write_bytes((DATA / "images" / "grace_hopper.jpg").read_bytes())
    out = tmp_path / "out"
    args = [str(tmp_path / "a"), str(tmp_path / "b"), *TINY, "-o", str(out), "--save-crops", "-q"]
    result = run_cli("detect", *args)
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in out.glob("*.jpg")) == ["x-2.jpg", "x.jpg"]
    assert sorted(p.name for p in (out / "crops" / "tie").iterdir()) == [
        "x-2_0.jpg", "x-2_1.jpg", "x-2_3.jpg", "x_0.jpg", "x_1.jpg", "x_3.jpg"
    ]  # fmt: skip
    again = run_cli("detect", *args, "--skip-existing", "-f", "jsonl")
    assert [r.get("skipped") for r in records(again.stdout)] == [True, True]
