"""Where `yolocli detect` puts things, run after run, and what its formats say about videos."""

from __future__ import annotations

import csv
import io
import json
import os
import resource
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests import awkward
from tests.conftest import DATA, WEIGHTS_CACHE, run_cli, spawn
from tests.test_video import photo_frames, write_clip
from yolocli.cli import cli
from yolocli.io.outputs import JOURNAL

TINY = ["--model", "yolov3-tiny"]
pytestmark = pytest.mark.usefixtures("use_real_store")


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "json", "coco", "text"])
def test_a_videos_closing_record_never_passes_for_a_frame(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    """Bug 4: -f csv ended a video with an empty row, read as a frame that found nothing."""
    monkeypatch.chdir(tmp_path)
    write_clip(tmp_path / "clip.avi", photo_frames(3), "MJPG")
    result = run_cli("detect", "clip.avi", *TINY, "--conf", "0.2", "-f", fmt)
    assert result.exit_code == 0, result.stderr
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(result.stdout)))
        assert {row["frame"] for row in rows} == {"0", "1", "2"}
    elif fmt == "jsonl":
        recs = [json.loads(line) for line in result.stdout.splitlines()]
        assert [(r["frame"], "frames" in r) for r in recs][-2:] == [(2, False), (None, True)]
    elif fmt in ("json", "coco"):
        assert json.loads(result.stdout) is not None
    else:
        assert result.stdout.splitlines()[-1].startswith("clip.avi: 3 frames, ")


def test_a_video_that_fails_keeps_its_one_csv_row(tmp_path: Path) -> None:
    (tmp_path / "clip.avi").write_bytes(b"RIFF\0\0\0\0AVI LIST" + b"\0" * 100)
    result = run_cli("detect", str(tmp_path / "clip.avi"), *TINY, "--no-save", "-f", "csv")
    assert result.exit_code == 1
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 1
    assert rows[0]["frame"] == ""
    assert rows[0]["error"]


def test_a_folder_walk_skips_yolocli_output_folders_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bug 8: `detect . -o elsewhere` after a default run re-detected detections/*.jpg."""
    monkeypatch.chdir(tmp_path)
    shutil.copy(DATA / "images/coffee.png", tmp_path / "cup.png")
    first = run_cli("detect", ".", *TINY, "-f", "jsonl")
    assert [json.loads(line)["image"] for line in first.stdout.splitlines()] == ["cup.png"]
    assert (tmp_path / "detections/cup.png").is_file()
    again = run_cli("detect", ".", *TINY, "-f", "jsonl", "-o", str(tmp_path.parent / "elsewhere"))
    assert again.exit_code == 0, again.stderr
    assert [json.loads(line)["image"] for line in again.stdout.splitlines()] == ["cup.png"]
    notes = [line for line in again.stderr.splitlines() if "output folder" in line]
    assert notes == [
        "yolocli: skipping ./detections/: a yolocli output folder (it holds .yolocli-journal); "
        "name it to detect in it"
    ]
    named = run_cli("detect", "detections", *TINY, "-f", "jsonl", "--no-save")
    assert [json.loads(line)["image"] for line in named.stdout.splitlines()] == [
        "detections/cup.png"
    ]


def test_one_rule_for_where_a_files_outputs_land(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file lands at its name however it is spelled; a folder's and a glob's images keep
    their place below the folder (the glob's fixed part)."""
    work = tmp_path / "work"
    (work / "shots/day1").mkdir(parents=True)
    (work / "shots/day2").mkdir()
    for day in ("day1", "day2"):
        shutil.copy(DATA / "images/coffee.png", work / "shots" / day / "cup.png")
    monkeypatch.chdir(work / "shots")
    spellings = ["day1/cup.png", str(work / "shots/day1/cup.png"), "../shots/day1/cup.png"]
    for spelling in spellings:
        out = tmp_path / f"out{spellings.index(spelling)}"
        result = run_cli("detect", spelling, *TINY, "-o", str(out), "-f", "jsonl")
        assert result.exit_code == 0, result.stderr
        assert json.loads(result.stdout)["outputs"] == {"image": str(out / "cup.png")}
        assert f"(first: {out}/cup.png)" in result.stderr
    for sources in (["."], ["**/*.png"]):
        out = tmp_path / f"out-{sources[0]}"
        result = run_cli("detect", *sources, *TINY, "-o", str(out), "-f", "jsonl")
        assert result.exit_code == 0, result.stderr
        got = [json.loads(line)["outputs"]["image"] for line in result.stdout.splitlines()]
        assert got == [str(out / "day1/cup.png"), str(out / "day2/cup.png")]


# ------------------------------------------------------------------- output folders, run after run


def records(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


def test_a_file_added_later_never_takes_an_earlier_inputs_name(tmp_path: Path) -> None:
    """B8: a.png in run 1, a.jpg added: run 2 gave a.jpg the name "a" and overwrote a.png's
    a.txt, and --skip-existing then reported a.png done with the other photo's labels."""
    photos, out = tmp_path / "photos", tmp_path / "out"
    photos.mkdir()
    shutil.copy(DATA / "images/coffee.png", photos / "a.png")
    args = ["detect", str(photos), *TINY, "-o", str(out), "--save-txt", "-f", "jsonl"]
    first = run_cli(*args)
    assert first.exit_code == 0, first.stderr
    cup_labels = (out / "a.txt").read_text()
    assert cup_labels.startswith("41 ")  # the cup
    shutil.copy(DATA / "images/motorcycle_left.png", photos / "a.jpg")
    second = run_cli(*args, "--skip-existing")
    assert second.exit_code == 0, second.stderr
    got = {Path(r["image"]).name: r for r in records(second.stdout)}
    assert got["a.jpg"]["outputs"]["labels"] == str(out / "a-2.txt")
    assert got["a.png"]["skipped"] is True
    assert got["a.png"]["outputs"]["labels"] == str(out / "a.txt")
    assert (out / "a.txt").read_text() == cup_labels
    assert (out / "a-2.txt").read_text().startswith("3 ")  # the motorbike


def test_a_second_image_on_stdin_is_never_already_done(tmp_path: Path) -> None:
    """B9: --skip-existing skipped a second stdin image, reporting the first one's outputs."""
    out = tmp_path / "out"
    outputs = []
    for photo in ("coffee.png", "motorcycle_left.png"):
        result = CliRunner().invoke(
            cli,
            ["detect", "-", *TINY, "-o", str(out), "--skip-existing", "-f", "jsonl"],
            input=(DATA / "images" / photo).read_bytes(),
        )
        assert result.exit_code == 0, result.stderr
        (record,) = records(result.stdout)
        assert "skipped" not in record
        outputs.append(record["outputs"]["image"])
    assert outputs == [str(out / "stdin.png"), str(out / "stdin-2.png")]


def test_a_linked_folder_inside_out_is_refused(tmp_path: Path) -> None:
    """B7: photos/trip/b.jpg with out/trip -> elsewhere wrote into elsewhere."""
    photos, out, elsewhere = tmp_path / "photos", tmp_path / "out", tmp_path / "elsewhere"
    (photos / "trip").mkdir(parents=True)
    shutil.copy(DATA / "images/coffee.png", photos / "trip/b.png")
    shutil.copy(DATA / "images/rocket.jpg", photos / "c.jpg")
    out.mkdir()
    elsewhere.mkdir()
    (out / "trip").symlink_to(elsewhere)
    result = run_cli("detect", str(photos), *TINY, "-o", str(out), "-f", "jsonl")
    assert result.exit_code == 1
    got = {Path(r["image"]).name: r for r in records(result.stdout)}
    assert "outside the output folder" in got["b.png"]["error"]
    assert got["c.jpg"]["error"] is None
    assert list(elsewhere.iterdir()) == []


def test_every_input_keeps_its_record_when_the_journal_cannot_grow(tmp_path: Path) -> None:
    """W11: a full disk for the journal gave "internal error", and inputs got no record. A
    file size limit makes every write past it fail (EFBIG), as a full disk does."""
    photos = awkward.copies(tmp_path / "photos", 12)
    out = tmp_path / "out"

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (1500, 1500))

    proc = spawn(["detect", str(tmp_path / "photos"), *TINY, "-o", str(out), "--no-save",
                  "--save-txt", "-f", "jsonl", "-j", "1"], env=env(), preexec_fn=limit)  # fmt: skip
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert [r["image"] for r in records(stdout)] == [str(p) for p in photos]
    assert "internal error" not in stderr
    assert stderr.count("cannot write the journal") == 1
    assert (out / JOURNAL).stat().st_size <= 1500


def env() -> dict[str, str]:
    return {**os.environ, "YOLOCLI_HOME": str(WEIGHTS_CACHE), "YOLOCLI_OFFLINE": "1"}
