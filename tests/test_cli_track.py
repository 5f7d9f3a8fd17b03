"""`yolocli track` end to end: a clip built from the test photos with known identities and
crossings (tests/clip.py), through the real model, against roboflow ``trackers``' ByteTrack
fed with ``yolocli detect``'s own detections (tests/data/tracking/make_clip_reference.py)."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from tests import clip
from tests.conftest import WEIGHTS_CACHE, run_cli
from tests.mot import clear_and_identity, read_mot

REF = Path(__file__).parent / "data" / "tracking" / "clip"
TRACK = ("-m", "yolov3-tiny", "--classes", "motorbike", "--nms", "0.3")


def records(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def truth_rows() -> np.ndarray:
    """The clip's true boxes as MOTChallenge rows (frames from 1)."""
    _, truth = clip.frames()
    rows = [
        [f + 1, oid, x1, y1, x2 - x1, y2 - y1, 1, -1, -1, -1]
        for f, boxes in enumerate(truth)
        for oid, (x1, y1, x2, y2) in boxes.items()
    ]
    return np.array(rows, np.float64)


@pytest.fixture(scope="module")
def clip_run(tmp_path_factory: pytest.TempPathFactory, tiny_weights: Path) -> dict[str, Any]:
    """One `yolocli track clip.avi -f jsonl --line ...` run, shared by the tests below."""
    folder = tmp_path_factory.mktemp("clip")
    clip.write_video(folder / "clip.avi")
    mp = pytest.MonkeyPatch()
    try:
        mp.setenv("YOLOCLI_HOME", str(WEIGHTS_CACHE))
        mp.setenv("YOLOCLI_OFFLINE", "1")
        mp.chdir(folder)
        line = ",".join(str(round(v)) for v in clip.LINE)
        zone = "0,0,640,0,640,720,0,720"
        result = run_cli("track", "clip.avi", *TRACK, "-f", "jsonl", "--line", line,
                         "--zone", zone, "--trail", "1", "-o", "out")  # fmt: skip
    finally:
        mp.undo()
    assert result.exit_code == 0, result.stderr
    return {"records": records(result.stdout), "folder": folder}


def test_clip_line_counts_are_the_true_crossings(clip_run: dict[str, Any]) -> None:
    closing = clip_run["records"][-1]
    assert closing["frame"] is None
    assert closing["frames"] == clip.FRAMES
    assert closing["lines"] == [
        {"line": list(clip.LINE), "in": clip.CROSSINGS["in"], "out": clip.CROSSINGS["out"]}
    ]
    crossings = [c for r in clip_run["records"] for c in r.get("crossings", [])]
    assert sorted(c["direction"] for c in crossings) == ["in", "out"]
    assert closing["zones"][0]["zone"] == [[0, 0], [640, 0], [640, 720], [0, 720]]


def test_clip_ids_at_least_as_good_as_trackers_bytetrack(clip_run: dict[str, Any]) -> None:
    rows = []
    for r in clip_run["records"][:-1]:
        for d in r["detections"]:
            assert isinstance(d["track_id"], int)  # only confirmed tracks are reported
            x1, y1, x2, y2 = d["box"]
            rows.append([r["frame"] + 1, d["track_id"], x1, y1, x2 - x1, y2 - y1, d["score"],
                         -1, -1, -1])  # fmt: skip
    gt = truth_rows()
    ours = clear_and_identity(gt, np.array(rows))
    theirs = clear_and_identity(gt, read_mot(REF / "trackers-bytetrack.txt"))
    assert ours["IDF1"] >= theirs["IDF1"]
    assert ours["IDSW"] <= theirs["IDSW"]
    # Each true object is followed by one id from the frame its track is confirmed on.
    _, truth = clip.frames()
    for oid in (1, 2, 3):
        ids = set()
        for r, boxes in zip(clip_run["records"], truth, strict=False):
            if oid in boxes and r["detections"]:
                from yolocli.ops import box_iou

                iou = box_iou([boxes[oid]], [d["box"] for d in r["detections"]])[0]
                if iou.max() >= 0.5:
                    ids.add(r["detections"][int(iou.argmax())]["track_id"])
        assert len(ids) == 1, (oid, ids)


def test_clip_annotated_video_shows_every_frame(clip_run: dict[str, Any]) -> None:
    video = clip_run["folder"] / clip_run["records"][-1]["outputs"]["image"]
    cap = cv2.VideoCapture(str(video))
    count = 0
    while cap.read()[0]:
        count += 1
    cap.release()
    assert count == clip.FRAMES


@pytest.fixture
def frames_folder(tmp_path: Path) -> Path:
    """The clip's first 12 frames as JPEG files named frame_1 ... frame_12 (name order must
    put frame_2 before frame_10)."""
    images, _ = clip.frames()
    folder = tmp_path / "seq"
    folder.mkdir()
    for i, image in enumerate(images[:12]):
        cv2.imwrite(str(folder / f"frame_{i + 1}.jpg"), image)
    return folder


def test_a_folder_of_frames_is_one_sequence_and_mot_lines_follow_it(
    frames_folder: Path, use_real_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(frames_folder.parent)
    mot = run_cli("track", "seq", *TRACK, "-f", "mot", "--fps", "10", "--no-save")
    assert mot.exit_code == 0, mot.stderr
    rows = np.loadtxt(io.StringIO(mot.stdout), delimiter=",", ndmin=2)
    assert rows.shape[1] == 10
    assert set(rows[:, 0].astype(int)) == set(range(1, 13))  # frames from 1, name order
    assert (rows[:, 7:] == -1).all()
    jsonl = run_cli("track", "seq/*.jpg", *TRACK, "-f", "jsonl", "--fps", "10", "--no-save")
    assert jsonl.exit_code == 0, jsonl.stderr
    recs = records(jsonl.stdout)
    assert [r["frame"] for r in recs] == [*range(12), None]
    assert recs[11]["time"] == pytest.approx(1.1)
    from_jsonl = sorted((r["frame"] + 1, d["track_id"]) for r in recs[:-1] for d in r["detections"])
    assert from_jsonl == sorted(
        zip(rows[:, 0].astype(int).tolist(), rows[:, 1].astype(int).tolist(), strict=True)
    )
    # In the right order the objects move smoothly: the top motorbike keeps one id.
    top = {int(r[1]) for r in rows if r[3] < 100 and r[4] > 250}
    assert len(top) == 1


def test_csv_has_a_track_id_column_and_strides_keep_ids(
    frames_folder: Path, use_real_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(frames_folder.parent)
    every = run_cli("track", "seq", *TRACK, "-f", "csv", "--no-save")
    strided = run_cli("track", "seq", *TRACK, "-f", "csv", "--no-save", "--vid-stride", "3")
    assert every.exit_code == 0, every.stderr
    rows = list(csv.DictReader(io.StringIO(every.stdout)))
    assert list(rows[0])[:9] == ["image", "frame", "time", "width", "height", "label", "class_id",
                                 "track_id", "score"]  # fmt: skip
    ids = {(r["frame"], r["x1"]): r["track_id"] for r in rows if r["track_id"]}
    some = [r for r in csv.DictReader(io.StringIO(strided.stdout)) if r["track_id"]]
    assert {r["frame"] for r in some} <= {"0", "3", "6", "9"}
    agree = [ids.get((r["frame"], r["x1"])) == r["track_id"] for r in some]
    assert sum(agree) >= len(agree) - 1  # the same objects, the same ids


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--line", "1,2,3"), "pairs of numbers"),
        (("--line", "5,5,5,5"), "two different points"),
        (("--zone", "0,0,10,10"), "at least 3 points"),
        (("--min-hits", "2"), "--tracker sort"),
        (("--tracker", "sort", "--track-new", "0.5"), "bytetrack setting"),
        (("-f", "coco"), "'coco' is not one of"),
    ],
)
def test_usage_errors(args: tuple[str, ...], message: str) -> None:
    result = run_cli("track", "clip.mp4", *args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_a_photo_alone_is_not_a_sequence(use_real_store: Path) -> None:
    photo = Path(__file__).parent / "data" / "images" / "coffee.png"
    result = run_cli("track", str(photo), "-m", "yolov3-tiny", "--no-save", "-f", "jsonl")
    assert result.exit_code == 1
    assert "not a sequence" in result.stderr


def test_the_readme_tracking_example_runs(
    tmp_path: Path, use_real_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's Python tracking example, as written, on the first frames of the clip."""
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    (code,) = [c for c in re.findall(r"```py\n(.+?)\n```", readme, re.S) if "tracking" in c]
    monkeypatch.chdir(tmp_path)
    clip.write_video(tmp_path / "clip.avi", count=8)
    scope: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert scope["confirmed"].track_ids.tolist()
    assert (scope["confirmed"].track_ids > 0).all()
