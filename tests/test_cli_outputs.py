"""Where `yolocli detect` puts things, run after run, and what its formats say about videos."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import DATA, run_cli
from tests.test_video import photo_frames, write_clip

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
