"""Machine-readable and human-readable results, one writer interface for every format.

Every writer receives one `yolocli.records.ImageRecord` per input, in input order, and
flushes it at once, so a pipeline (``| jq``, ``| head``) sees each image as soon as it is
done. ``close`` leaves a complete document (a JSON array is closed) whenever it is called,
after an interruption too.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Protocol, TextIO

from yolocli.records import ImageRecord

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

Record = ImageRecord

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` for a terminal line: control characters (a newline in a file name, an
    escape sequence) shown as escapes, so one record stays one line and cannot restyle the
    terminal."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


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
        name = printable(record["image"])
        if record.get("skipped"):
            self.out.write(f"{name}: skipped (done in an earlier run)\n")
            self.out.flush()
            return
        dets = record["detections"]
        labels = [printable(d["label"]) for d in dets]
        if dets:
            counts = Counter(labels)
            summary = (
                f"{len(dets)} object{'s' * (len(dets) != 1)} ("
                + ", ".join(f"{n} {label}" for label, n in counts.most_common())
                + ")"
            )
        else:
            summary = "nothing found"
        lines = [f"{name}: {summary}, {record['width']}x{record['height']}"]
        width = max((len(label) for label in labels), default=0)
        for d, label in zip(dets, labels, strict=True):
            x1, y1, x2, y2 = (round(v) for v in d["box"])
            lines.append(f"  {label:<{width}}  {d['score']:.2f}  ({x1}, {y1}) - ({x2}, {y2})")
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
        if self.count >= 0:  # once only
            self.out.write("[]\n" if self.count == 0 else "\n]\n")
            self.count = -1
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
