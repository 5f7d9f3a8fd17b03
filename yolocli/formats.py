"""Machine-readable and human-readable results, one writer interface for every format.

Every writer receives one record per image, in input order, and flushes it at once, so a
pipeline (``| jq``, ``| head``) sees each image as soon as it is done. A record is::

    {"image": str, "width": int, "height": int, "model": str,
     "detections": [{"label": str, "class_id": int, "score": float,
                     "box": [x1, y1, x2, y2]}],
     "error": str | null}

plus ``"skipped": true`` for an image left alone by ``--skip-existing``. Boxes are pixels of
the original image, clipped to it.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any, Protocol, TextIO

FORMATS = ("text", "jsonl", "json", "csv")
CSV_COLUMNS = (
    "image",
    "width",
    "height",
    "label",
    "class_id",
    "score",
    "x1",
    "y1",
    "x2",
    "y2",
    "error",
)

Record = dict[str, Any]


class Writer(Protocol):
    def write(self, record: Record) -> None: ...
    def close(self) -> None: ...


class TextWriter:
    """For people: a summary line per image, then one indented line per detection."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def write(self, record: Record) -> None:
        if record.get("error"):
            return  # said on stderr, once
        dets = record["detections"]
        if record.get("skipped"):
            summary = "skipped (outputs exist)"
        elif dets:
            counts = Counter(d["label"] for d in dets)
            summary = (
                f"{len(dets)} object{'s' * (len(dets) != 1)} ("
                + ", ".join(f"{n} {label}" for label, n in counts.most_common())
                + ")"
            )
        else:
            summary = "nothing found"
        lines = [f"{record['image']}: {summary}, {record['width']}x{record['height']}"]
        width = max((len(d["label"]) for d in dets), default=0)
        for d in dets:
            x1, y1, x2, y2 = (round(v) for v in d["box"])
            lines.append(f"  {d['label']:<{width}}  {d['score']:.2f}  ({x1}, {y1}) - ({x2}, {y2})")
        self.out.write("\n".join(lines) + "\n")
        self.out.flush()

    def close(self) -> None:
        self.out.flush()


def to_json(record: Record) -> str:
    """One record as JSON text: UTF-8 as it is, but a path that is not valid UTF-8 (its
    undecodable bytes arrive as lone surrogates) is \\u-escaped, so the output stays valid
    JSON and ``os.fsencode(json.loads(line)["image"])`` gives back the path's bytes."""
    text = json.dumps(record, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(record, ensure_ascii=True)
    return text


class JsonLinesWriter:
    """One JSON object per image per line."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def write(self, record: Record) -> None:
        self.out.write(to_json(record) + "\n")
        self.out.flush()

    def close(self) -> None:
        self.out.flush()


class JsonWriter:
    """One JSON array of records, still written (and flushed) one record at a time."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.count = 0

    def write(self, record: Record) -> None:
        self.out.write(("[\n" if self.count == 0 else ",\n") + to_json(record))
        self.out.flush()
        self.count += 1

    def close(self) -> None:
        self.out.write("[]\n" if self.count == 0 else "\n]\n")
        self.out.flush()


class CsvWriter:
    """A header, then one row per detection; an image with none (or an error) gets one row
    with empty detection fields, so no image is ever missing from the table."""

    def __init__(self, out: TextIO) -> None:
        import csv

        self.out = out
        self.rows = csv.writer(out, lineterminator="\n")
        self.rows.writerow(CSV_COLUMNS)

    def write(self, record: Record) -> None:
        head = [record["image"], record.get("width") or "", record.get("height") or ""]
        error = record.get("error") or ""
        dets = record.get("detections") or []
        if not dets:
            self.rows.writerow([*head, "", "", "", "", "", "", "", error])
        for d in dets:
            self.rows.writerow([*head, d["label"], d["class_id"], d["score"], *d["box"], error])
        self.out.flush()

    def close(self) -> None:
        self.out.flush()


def make_writer(fmt: str, out: TextIO) -> Writer:
    writers: dict[str, type[Writer]] = {
        "text": TextWriter,
        "jsonl": JsonLinesWriter,
        "json": JsonWriter,
        "csv": CsvWriter,
    }
    try:
        return writers[fmt](out)  # type: ignore[call-arg]
    except KeyError:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}") from None
