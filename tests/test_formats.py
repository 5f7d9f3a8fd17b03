"""Output formats, parsed back."""

from __future__ import annotations

import csv
import io
import json

import pytest

from yolocli.formats import CSV_COLUMNS, make_writer

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


def test_text_is_a_summary_line_then_one_line_per_detection() -> None:
    lines = write_all("text").splitlines()
    assert lines[0] == "a.jpg: 2 objects (1 dog, 1 cat), 640x480"
    assert lines[1].split() == ["dog", "0.87", "(1,", "2)", "-", "(30,", "40)"]
    assert lines[3] == "empty.jpg: nothing found, 10x10"
    assert len(lines) == 4  # the failed image is reported on stderr, not here


def test_unknown_format() -> None:
    with pytest.raises(ValueError, match="unknown format 'xml'"):
        make_writer("xml", io.StringIO())
