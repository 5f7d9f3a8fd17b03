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
import shutil
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import cv2
import pytest

from tests import awkward
from tests.conftest import DATA, WEIGHTS_CACHE, as_nobody, run_cli, spawn

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
    warning = f"yolocli: warning: {folder}/animated.gif: an animated GIF: only the first of 3"
    assert got["animated.gif"]["warnings"] == [
        "an animated GIF: only the first of 3 frames is used"
    ]
    lines = stderr.splitlines()
    assert sum(line.startswith(warning) for line in lines) == 1
    failures = [
        line
        for line in lines
        if not summary.match(line)
        and "warning" not in line
        and not line.startswith("yolocli: compiling ")  # run alone, on a fresh store
    ]
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


def test_permission_denied_is_a_record(open_tmp: Path, use_real_store: Path) -> None:
    locked = open_tmp / "locked.jpg"
    locked.write_bytes((DATA / "images" / "rocket.jpg").read_bytes())
    locked.chmod(0)
    warm_up()
    with as_nobody():  # root reads any file
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


def warm_up() -> None:
    """Run a detection first as root: the engines load parts of the standard library lazily,
    and this machine's Python lives where an ordinary user cannot read."""
    assert run_cli("detect", str(DATA / "images" / "rocket.jpg"), *TINY, "--no-save").exit_code == 0


def small_pipe(proc: subprocess.Popen[str]) -> None:
    """Shrink ``proc``'s stdout pipe to one page: left unread, it fills after a few records
    and the writer blocks, however fast the machine is."""
    assert proc.stdout is not None
    fcntl.fcntl(proc.stdout.fileno(), fcntl.F_SETPIPE_SZ, 4096)


def settled(count: object, quiet: float = 1.0, timeout: float = 60.0) -> int:
    """Wait until ``count()`` is positive and has not changed for ``quiet`` seconds."""
    deadline = time.monotonic() + timeout
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        now = count()  # type: ignore[operator]
        if now != last:
            last, since = now, time.monotonic()
        elif now > 0 and time.monotonic() - since >= quiet:
            return now
        time.sleep(0.05)
    raise AssertionError("never settled")


@pytest.mark.parametrize("workers", ["1", "2"])
def test_kill_9_then_skip_existing_loses_no_record(
    tmp_path: Path, env: dict[str, str], workers: str
) -> None:
    """Outputs are written ahead of their records: a kill between the two must not make the
    resumed run skip an input whose record was never written (bug 3 of issue 9)."""
    folder = tmp_path / "in"
    awkward.copies(folder, 24)
    names = {str(p) for p in image_files(folder)}
    out = tmp_path / "out"
    args = [
        "detect",
        str(folder),
        *TINY,
        "-f",
        "jsonl",
        "-o",
        str(out),
        "--save-txt",
        "-j",
        workers,
    ]
    proc = spawn(args, env=env)
    small_pipe(proc)
    # Nobody reads stdout: the writer blocks on the full pipe while the output threads finish
    # the images behind it. Those have files on disk but no record.
    drawn = settled(lambda: len(image_files(out)))
    proc.kill()
    proc.wait()
    assert proc.stdout is not None
    first = [json.loads(line) for line in proc.stdout.read().splitlines(keepends=True)
             if line.endswith("\n")]  # fmt: skip
    assert len(first) < drawn < 24, "the test needs outputs whose record was not written"
    for path in image_files(out):  # never a half-written image at an image name
        assert cv2.imread(str(path)) is not None, path

    again = spawn([*args, "--skip-existing"], env=env)
    stdout, stderr = again.communicate(timeout=300)
    assert again.returncode == 0, stderr
    second = records(stdout)
    assert {r["image"] for r in second} == names
    skipped = {r["image"] for r in second if r.get("skipped")}
    assert skipped <= {r["image"] for r in first}  # only inputs whose record was delivered
    assert {r["image"] for r in first} | {r["image"] for r in second if not r.get("skipped")} == (
        names
    )
    assert len(image_files(out)) == 24


@pytest.mark.parametrize(
    ("signum", "status", "said"),
    [(signal.SIGINT, 130, "yolocli: interrupted"), (signal.SIGTERM, 143, "yolocli: terminated")],
)
@pytest.mark.parametrize(("fmt", "workers"), [("jsonl", "1"), ("json", "1"), ("json", "2")])
def test_interrupt_stops_cleanly_and_output_stays_valid(
    tmp_path: Path,
    env: dict[str, str],
    signum: int,
    status: int,
    said: str,
    fmt: str,
    workers: str,
) -> None:
    awkward.copies(tmp_path / "in", 40)
    args = ["detect", str(tmp_path / "in"), *TINY, "-f", fmt, "--no-save", "-j", workers]
    proc = spawn(args, env=env)
    small_pipe(proc)
    assert proc.stdout is not None
    head = proc.stdout.readline()
    if fmt == "json":
        assert head == "[\n"
        head += proc.stdout.readline()
    proc.send_signal(signum)
    # read through the same buffered file as readline (communicate() would bypass its buffer)
    rest = proc.stdout.read()
    assert proc.stderr is not None
    stderr = proc.stderr.read()
    assert proc.wait(timeout=60) == status
    # json: the array was closed (jq reads it); jsonl: every record complete
    got = json.loads(head + rest) if fmt == "json" else records(head + rest)
    assert 1 <= len(got) < 40
    assert all(r["error"] is None for r in got)
    assert said in stderr
    assert "Traceback" not in stderr


@pytest.mark.parametrize("workers", ["1", "2"])
def test_closed_pipe_ends_quietly(tmp_path: Path, env: dict[str, str], workers: str) -> None:
    awkward.copies(tmp_path / "in", 20)
    args = ["detect", str(tmp_path / "in"), *TINY, "-f", "jsonl", "--no-save", "-j", workers]
    proc = spawn(args, env=env)
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


# -------------------------------------------------------------------------- issue 9: outputs


def test_one_name_claim_per_input_keeps_labels_beside_their_image(
    tmp_path: Path, use_real_store: Path
) -> None:
    """in/a.jpg, in/a.png and in/d2/a.jpg: every output of an input shares one name (B1)."""
    folder = tmp_path / "in"
    (folder / "d2").mkdir(parents=True)
    shutil.copy(DATA / "images" / "coffee.png", folder / "a.png")
    shutil.copy(DATA / "images" / "grace_hopper.jpg", folder / "a.jpg")
    shutil.copy(DATA / "images" / "rocket.jpg", folder / "d2" / "a.jpg")
    out = tmp_path / "out"
    result = run_cli("detect", str(folder), *TINY, "-f", "jsonl", "-o", str(out), "--save-txt",
                     "--save-crops")  # fmt: skip
    written = [r["outputs"] for r in records(result.stdout)]
    assert [Path(o["image"]).name for o in written[:3]] == ["a.jpg", "a-2.png", "a.jpg"]
    for o in written:
        assert Path(o["labels"]).with_suffix("") == Path(o["image"]).with_suffix("")
        stem = Path(o["image"]).relative_to(out).with_suffix("")
        assert all(Path(c).name.startswith(f"{stem.name}_") for c in o["crops"])
        assert all(Path(c).parent.name == stem.parent.name or stem.parent == Path(".")
                   for c in o["crops"])  # fmt: skip
    assert len({o["image"] for o in written}) == len(written)


def test_nested_out_never_replaces_the_users_files(tmp_path: Path, use_real_store: Path) -> None:
    """detect in2 -o in2/sub must not overwrite the user's in2/sub/a.jpg (B2)."""
    folder = tmp_path / "in2"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(DATA / "images" / "grace_hopper.jpg", folder / "a.jpg")
    original = (DATA / "images" / "rocket.jpg").read_bytes()
    (folder / "sub" / "a.jpg").write_bytes(original)
    result = run_cli("detect", str(folder), *TINY, "-f", "jsonl", "-o", str(folder / "sub"))
    assert result.exit_code == 1
    (rec,) = records(result.stdout)
    assert rec["image"] == str(folder / "a.jpg")
    assert rec["error"].startswith(f"refusing to replace {folder / 'sub' / 'a.jpg'}: yolocli did")
    assert (folder / "sub" / "a.jpg").read_bytes() == original
    # yolocli's own outputs, on the other hand, are replaced by a plain rerun
    (folder / "sub" / "a.jpg").unlink()
    assert run_cli("detect", str(folder), *TINY, "-o", str(folder / "sub"), "-q").exit_code == 0
    assert run_cli("detect", str(folder), *TINY, "-o", str(folder / "sub"), "-q").exit_code == 0


def test_skip_existing_rebuilds_missing_outputs_and_clears_stale_temporaries(
    tmp_path: Path, use_real_store: Path
) -> None:
    folder = tmp_path / "in"
    awkward.copies(folder, 3)
    out = tmp_path / "out"
    args = ["detect", str(folder), *TINY, "-o", str(out), "--save-crops", "--save-txt"]
    first = records(run_cli(*args, "-f", "jsonl").stdout)
    with_crops = {r["image"] for r in first if r["outputs"]["crops"]}
    assert 0 < len(with_crops) < 3
    shutil.rmtree(out / "crops")
    (untouched,) = (r for r in first if not r["outputs"]["crops"])
    stale = out / ".yolocli-999999999-0badc0de.tmp"  # a killed run's temporary (no such pid)
    stale.write_bytes(b"half an image")
    again = run_cli(*args, "--skip-existing")
    assert again.exit_code == 0, again.stderr
    lines = again.stdout.splitlines()
    assert [line for line in lines if "skipped" in line] == [
        f"{untouched['image']}: skipped (done in an earlier run)"
    ]
    redone = {line.split(": ")[0] for line in lines if not line.startswith(" ")} - {
        untouched["image"]
    }
    assert redone == with_crops
    assert len(list((out / "crops").rglob("*.jpg"))) == sum(len(r["detections"]) for r in first)
    assert not stale.exists()
    Path(untouched["outputs"]["labels"]).unlink()
    third = records(run_cli(*args, "--skip-existing", "-f", "jsonl").stdout)
    assert [r["image"] for r in third if not r.get("skipped")] == [untouched["image"]]


def test_two_runs_cannot_share_an_output_folder(tmp_path: Path, use_real_store: Path) -> None:
    from filelock import FileLock

    out = tmp_path / "out"
    out.mkdir()
    with FileLock(out / ".yolocli-journal.lock"):
        result = run_cli("detect", str(DATA / "images" / "rocket.jpg"), *TINY, "-o", str(out))
    assert result.exit_code == 2
    assert f"another yolocli run is writing into {out}" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("where", ["a-file/out", "/proc/version/out"])
def test_an_unusable_output_folder_is_a_usage_error_before_any_work(
    tmp_path: Path, use_real_store: Path, where: str
) -> None:
    (tmp_path / "a-file").write_text("x")
    os.chdir(tmp_path)
    try:
        result = run_cli("detect", str(DATA / "images"), *TINY, "-o", where, "-f", "jsonl")
    finally:
        os.chdir(DATA)
    assert result.exit_code == 2
    assert f"cannot write into the output folder {where}: Not a directory" in result.stderr
    assert result.stdout == ""


# ----------------------------------------------------------------- issue 9: inputs, end to end


def test_inputs_that_name_no_image_are_input_errors_not_images(
    tmp_path: Path, use_real_store: Path
) -> None:
    result = run_cli("detect", str(tmp_path / "nomatch" / "*.jpg"), *TINY, "-f", "jsonl")
    assert result.exit_code == 1
    (rec,) = records(result.stdout)
    assert rec["error"] == "no file matches this pattern"
    assert re.search(r"yolocli: 0 images, 0 objects, 1 input error in ", result.stderr)


def test_empty_stdin_says_nothing_arrived(tmp_path: Path, env: dict[str, str]) -> None:
    proc = spawn(["detect", "-", *TINY, "--no-save"], env=env, stdin=subprocess.DEVNULL)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "yolocli: -: nothing arrived on stdin" in stderr
    assert "0 images, 0 objects, 1 input error" in stderr


def test_endless_or_special_inputs_end_with_one_error_each(env: dict[str, str]) -> None:
    """/dev/zero as a file and as stdin: one error each, never a hang or a MemoryError (B3)."""
    proc = spawn(["detect", "/dev/zero", *TINY, "--no-save", "-f", "jsonl"], env=env)
    stdout, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert records(stdout)[0]["error"] == "not a regular file (a character device)"
    for extra in ([], ["-0"]):
        with open("/dev/zero", "rb") as zero:
            proc = spawn(["detect", "-", *extra, *TINY, "--no-save", "-f", "jsonl"], env=env,
                         stdin=zero)  # fmt: skip
            stdout, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 1, stderr
        assert len(records(stdout)) == 1
        assert "MemoryError" not in stderr


def test_unreadable_folders_are_one_record_each_and_the_rest_is_done(
    open_tmp: Path, use_real_store: Path
) -> None:
    """Bugs 1 and 2: a file in a folder without search permission, and an unreadable
    subfolder, are each one record; the images around them are processed. Run as an ordinary
    user, since root reads everything."""
    folder = open_tmp / "in"
    for sub in ("a", "locked", "noread", "z"):
        (folder / sub).mkdir(parents=True)
    for name in ("a/first.jpg", "locked/person.jpg", "noread/x.jpg", "z/last.jpg"):
        shutil.copy(DATA / "images" / "rocket.jpg", folder / name)
    (folder / "locked").chmod(0o644)  # listable, but its files cannot be reached
    (folder / "noread").chmod(0o311)  # reachable, but cannot be listed
    listed = folder / "locked" / "person.jpg"
    warm_up()
    with as_nobody():
        # one network in this process: a worker process would start Python as that user
        result = run_cli("detect", str(folder), str(listed), *TINY, "--no-save", "-f", "jsonl",
                         "-j", "1")  # fmt: skip
    recs = {r["image"]: r["error"] for r in records(result.stdout)}
    assert result.exit_code == 1, result.stderr
    assert "internal error" not in result.stderr
    assert recs[str(folder / "a" / "first.jpg")] is None
    assert recs[str(folder / "z" / "last.jpg")] is None
    assert "permission denied" in recs[str(folder / "locked" / "person.jpg")]
    assert "permission denied" in recs[str(folder / "noread")]
