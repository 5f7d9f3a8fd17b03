"""Output formats, parsed back."""

from __future__ import annotations

import contextlib
import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DATA, run_cli
from yolocli.io.formats import (
    COCO80_TO_91,
    CSV_COLUMNS,
    CocoOptions,
    coco_names,
    image_id,
    make_writer,
    stem_id,
)

RECORDS = [
    {"image": "a.jpg", "width": 640, "height": 480, "model": "m", "error": None,
     "detections": [
         {"label": "dog", "class_id": 16, "score": 0.87, "box": [1.0, 2.0, 30.5, 40.25]},
         {"label": "cat", "class_id": 15, "score": 0.5, "box": [5.0, 6.0, 7.0, 8.0]},
     ]},
    {"image": "empty.jpg", "width": 10, "height": 10, "model": "m", "error": None,
     "detections": []},
    {"image": "bad.jpg", "width": None, "height": None, "model": "m", "error": "not an image",
     "detections": []},
]  # fmt: skip


def write_all(fmt: str) -> str:
    out = io.StringIO()
    writer = make_writer(fmt, out)
    for rec in RECORDS:
        writer.write(rec)
    writer.close()
    return out.getvalue()


def test_jsonl_is_one_record_per_line() -> None:
    assert [json.loads(line) for line in write_all("jsonl").splitlines()] == RECORDS


def test_json_is_one_array() -> None:
    assert json.loads(write_all("json")) == RECORDS
    empty = io.StringIO()
    make_writer("json", empty).close()
    assert json.loads(empty.getvalue()) == []


def test_csv_has_a_row_per_detection_and_keeps_empty_and_failed_images() -> None:
    rows = list(csv.DictReader(io.StringIO(write_all("csv"))))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [r["image"] for r in rows] == ["a.jpg", "a.jpg", "empty.jpg", "bad.jpg"]
    assert rows[0]["label"] == "dog"
    assert float(rows[0]["x2"]) == 30.5
    assert (rows[2]["label"], rows[2]["width"]) == ("", "10")
    assert rows[3]["error"] == "not an image"
    assert {(r["frame"], r["time"]) for r in rows} == {("", "")}  # photos: no frame


def test_csv_rows_of_video_frames_say_which_frame() -> None:
    out = io.StringIO()
    writer = make_writer("csv", out)
    for frame in (0, 3):
        writer.write({**RECORDS[1], "image": "clip.mp4", "frame": frame, "time": frame / 25})
    writer.close()
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [(r["image"], r["frame"], r["time"]) for r in rows] == [
        ("clip.mp4", "0", "0.0"),
        ("clip.mp4", "3", "0.12"),
    ]


def test_text_is_a_summary_line_then_one_line_per_detection() -> None:
    lines = write_all("text").splitlines()
    assert lines[0] == "a.jpg: 2 objects (1 dog, 1 cat), 640x480"
    assert lines[1].split() == ["dog", "0.87", "(1,", "2)", "-", "(30,", "40)"]
    assert lines[3] == "empty.jpg: nothing found, 10x10"
    assert len(lines) == 4  # the failed image is reported on stderr, not here


def test_unknown_format() -> None:
    with pytest.raises(ValueError, match="unknown format 'xml'"):
        make_writer("xml", io.StringIO())


# -- coco --------------------------------------------------------------------------------------


def write_coco(records: list[dict[str, Any]], options: CocoOptions | None = None) -> Any:
    out = io.StringIO()
    writer = make_writer("coco", out, coco=options)
    for rec in records:
        writer.write(rec)
    writer.close()
    return json.loads(out.getvalue())


def test_coco_results_from_a_coco_model_use_coco_category_ids() -> None:
    names = coco_names()
    record = {**RECORDS[0], "image": "photos/000000397133.jpg"}
    got = write_coco([record, RECORDS[1], RECORDS[2]], CocoOptions(class_names=names))
    assert got == [
        # class 16 (dog) is category 18, class 15 (cat) 17: COCO skips ids 12 and 26
        {"image_id": 397133, "category_id": 18, "bbox": [1.0, 2.0, 29.5, 38.25], "score": 0.87},
        {"image_id": 397133, "category_id": 17, "bbox": [5.0, 6.0, 2.0, 2.0], "score": 0.5},
    ]


def test_coco_category_table() -> None:
    assert len(COCO80_TO_91) == 80
    assert len(set(COCO80_TO_91)) == 80
    assert COCO80_TO_91[0] == 1
    assert COCO80_TO_91[-1] == 90
    assert [COCO80_TO_91[i] for i in (11, 24, 39, 79)] == [13, 27, 44, 90]


def test_coco_results_from_another_model_keep_class_ids() -> None:
    got = write_coco(RECORDS[:1], CocoOptions(class_names=["a"] * 17))
    assert [r["category_id"] for r in got] == [16, 15]
    assert [r["image_id"] for r in got] == ["a", "a"]  # the stem: not a number


@pytest.mark.parametrize(
    ("name", "ids", "expected"),
    [
        ("shots/x.jpg", {"shots/x.jpg": 4, "x.jpg": 5}, 4),  # the name as given first
        ("/data/val/x.jpg", {"val/x.jpg": 4, "x.jpg": 5}, 4),  # then the longest tail
        ("/data/val/x.jpg", {"x.jpg": 5}, 5),  # down to the base name
        ("0042.png", {}, 42),  # no file: the stem, a number
        ("IMG_1.png", {}, "IMG_1"),
        ("١٢.png", {}, "١٢"),  # digits that are not ASCII stay a string
    ],
)
def test_coco_image_ids(name: str, ids: dict[str, int | str], expected: int | str) -> None:
    got = image_id(name, ids)
    assert (got if got is not None else stem_id(name)) == expected


def test_coco_image_not_in_the_annotations_falls_back_to_its_stem(
    caplog: pytest.LogCaptureFixture,
) -> None:
    record = {**RECORDS[0], "image": "17.jpg"}
    with caplog.at_level("WARNING", logger="yolocli.io.formats"):
        got = write_coco([record], CocoOptions(image_ids={"other.jpg": 1}))
    assert {r["image_id"] for r in got} == {17}
    assert "17.jpg is not in the COCO annotations file" in caplog.text


def test_coco_results_are_an_array_even_when_empty() -> None:
    assert write_coco([]) == []
    assert write_coco(RECORDS[1:]) == []


def test_coco_results_load_in_pycocotools(tmp_path: Path) -> None:
    coco = pytest.importorskip("pycocotools.coco")
    results = write_coco(RECORDS[:1], CocoOptions(class_names=coco_names()))
    gt = coco.COCO()
    gt.dataset = {
        "images": [{"id": "a", "width": 640, "height": 480}],
        "annotations": [],
        "categories": [{"id": 17, "name": "cat"}, {"id": 18, "name": "dog"}],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        dt = gt.loadRes(results)
    assert dt.anns[1]["area"] == pytest.approx(29.5 * 38.25)


def test_detect_writes_coco_results_with_ids_from_annotations(
    tmp_path: Path, use_real_store: Path
) -> None:
    ann = tmp_path / "instances.json"
    ann.write_text(json.dumps({"images": [{"id": 31, "file_name": "grace_hopper.jpg"}]}))
    photo = DATA / "images" / "grace_hopper.jpg"
    args = ["detect", str(photo), "-m", "yolov3-tiny", "--conf", "0.3", "--no-save", "-f", "coco"]
    result = run_cli(*args, "--coco-ids", str(ann))
    assert result.exit_code == 0, result.stderr
    got = json.loads(result.stdout)
    assert got
    assert {r["image_id"] for r in got} == {31}
    assert 32 in {r["category_id"] for r in got}  # tie: class 27, COCO category 32
    for r in got:
        _, _, w, h = r["bbox"]
        assert w > 0
        assert h > 0
        assert 0 < r["score"] <= 1
    plain = json.loads(run_cli(*args).stdout)
    assert {r["image_id"] for r in plain} == {"grace_hopper"}


def test_coco_ids_need_the_coco_format(tmp_path: Path) -> None:
    ann = tmp_path / "instances.json"
    ann.write_text("{}")
    result = run_cli("detect", "x.jpg", "--coco-ids", str(ann), "--no-save")
    assert result.exit_code == 2
    assert "add -f coco" in result.stderr


def test_coco_ids_are_unique_per_image_and_per_frame() -> None:
    def rec(image: str, **extra: Any) -> dict[str, Any]:
        return {**RECORDS[0], "image": image, **extra}

    got = write_coco(
        [
            rec("a/dog_01.jpg"),
            rec("b/dog_01.jpg"),
            rec("c/b/dog_01.png"),
            rec("a/dog_01.jpg"),  # the same input again: the same id
            rec("clip.mp4", frame=0, time=0.0),
            rec("clip.mp4", frame=5, time=0.2),
            {**RECORDS[1], "image": "clip.mp4", "frame": None, "frames": 2},  # closing record
            rec("0001.jpg"),
        ]
    )
    ids = [r["image_id"] for r in got[::2]]  # two detections per record
    assert ids == ["dog_01", "b/dog_01", "c/b/dog_01", "dog_01", "clip:0", "clip:5", 1]


def test_coco_categories_come_from_the_annotations_by_name(
    caplog: pytest.LogCaptureFixture,
) -> None:
    names = coco_names()
    options = CocoOptions(class_names=names, categories={"Cat": 0, "hot dog": 7, "Dog": 3})
    with caplog.at_level("WARNING", logger="yolocli.io.formats"):
        got = write_coco(RECORDS[:1], options)
    assert [(r["category_id"], r["score"]) for r in got] == [(3, 0.87), (0, 0.5)]
    notes = [r.getMessage() for r in caplog.records]
    assert len(notes) == 1
    assert "77 of the model's 80 classes have no category" in notes[0]  # not cat, dog, hot dog
    assert "person" in notes[0]
    # COCO's spellings match darknet's names
    spelled = CocoOptions(class_names=names, categories={"motorcycle": 4, "dining table": 67})
    table = spelled.category_ids()
    assert table is not None
    assert table[names.index("motorbike")] == 4
    assert table[names.index("diningtable")] == 67
    assert table[0] is None


# -- label studio --------------------------------------------------------------------------------


def test_labelstudio_tasks_hold_percent_boxes_that_map_back_to_pixels(
    caplog: pytest.LogCaptureFixture,
) -> None:
    frame = {**RECORDS[0], "image": "clip.mp4", "frame": 3, "time": 0.1}
    with caplog.at_level("WARNING", logger="yolocli.io.formats"):
        tasks = json.loads(write_all_of("labelstudio", [*RECORDS, frame, frame]))
    assert [t["data"]["image"] for t in tasks] == ["a.jpg", "empty.jpg"]  # no error, no frame
    assert sum("video frames are left out" in r.getMessage() for r in caplog.records) == 1
    (prediction,) = tasks[0]["predictions"]
    assert prediction["model_version"] == "m"
    assert prediction["score"] == pytest.approx((0.87 + 0.5) / 2)
    results = prediction["result"]
    assert len({r["id"] for t in tasks for p in t["predictions"] for r in p["result"]}) == 2
    for r, d in zip(results, RECORDS[0]["detections"], strict=True):
        assert r["type"] == "rectanglelabels"
        assert (r["from_name"], r["to_name"]) == ("label", "image")
        assert (r["original_width"], r["original_height"]) == (640, 480)
        v = r["value"]
        assert v["rectanglelabels"] == [d["label"]]
        assert r["score"] == d["score"]
        back = [v["x"] * 6.4, v["y"] * 4.8, (v["x"] + v["width"]) * 6.4,
                (v["y"] + v["height"]) * 4.8]  # fmt: skip
        assert back == pytest.approx(d["box"], abs=1e-3)
    assert tasks[1]["predictions"][0]["result"] == []  # an empty image is still a task


def write_all_of(fmt: str, records: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = make_writer(fmt, out)
    for rec in records:
        writer.write(rec)
    writer.close()
    return out.getvalue()


def test_detect_writes_the_labelstudio_tasks_label_studio_accepted(use_real_store: Path) -> None:
    """The tasks Label Studio's SDK validated (tests/data/labelstudio/README.md), again."""
    photos = [DATA / "images" / "grace_hopper.jpg", DATA / "images" / "rocket.jpg"]
    result = run_cli(
        "detect", *map(str, photos), "-m", "yolov3-tiny", "--conf", "0.1", "--no-save",
        "-f", "labelstudio",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    got = json.loads(result.stdout)
    want = json.loads((DATA / "labelstudio" / "tasks.json").read_text())
    assert [Path(t["data"]["image"]).name for t in got] == ["grace_hopper.jpg", "rocket.jpg"]
    for g, w in zip(got, want, strict=True):
        (gp,), (wp,) = g["predictions"], w["predictions"]
        assert len(gp["result"]) == len(wp["result"])
        for a, b in zip(gp["result"], wp["result"], strict=True):
            assert {k: v for k, v in a.items() if k not in ("value", "score")} == {
                k: v for k, v in b.items() if k not in ("value", "score")
            }
            assert a["value"]["rectanglelabels"] == b["value"]["rectanglelabels"]
            for key in ("x", "y", "width", "height"):
                assert a["value"][key] == pytest.approx(b["value"][key], abs=0.05)
            assert a["score"] == pytest.approx(b["score"], abs=1e-3)
