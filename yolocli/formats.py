"""Machine-readable and human-readable results, one writer interface for every format.

Every writer receives one `yolocli.records.ImageRecord` per input, in input order, and
flushes it at once, so a pipeline (``| jq``, ``| head``) sees each image as soon as it is
done. ``close`` leaves a complete document (a JSON array is closed) whenever it is called,
after an interruption too.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Protocol, TextIO

from yolocli.records import ImageRecord

FORMATS = ("text", "jsonl", "json", "csv", "coco")
CSV_COLUMNS = (
    "image",
    "frame",  # video frames: index in the source, and seconds from its start; empty for photos
    "time",
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

log = logging.getLogger(__name__)

# COCO's category ids for the 80 classes of coco.names, in order: the dataset numbers 91
# categories and leaves 11 unused, so class i of a COCO-trained model is not category i + 1.
COCO80_TO_91 = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27,
    28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53,
    54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80,
    81, 82, 84, 85, 86, 87, 88, 89, 90,
)  # fmt: skip

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
    with empty detection fields, so no image is ever missing from the table. A video's
    closing record (``frames`` set) gets no row unless the video failed or stopped early:
    then one row with an empty ``frame`` and the ``error``."""

    def __init__(self, out: TextIO) -> None:
        import csv

        self.out = out
        self.rows = csv.writer(out, lineterminator="\n")
        self.rows.writerow(CSV_COLUMNS)

    def write(self, record: Record) -> None:
        frame, time = record.get("frame"), record.get("time")
        if "frames" in record and not record.get("error"):
            return  # a video's closing record is no frame: a row only to say why it failed
        head = [
            record["image"],
            "" if frame is None else frame,
            "" if time is None else time,
            record.get("width") or "",
            record.get("height") or "",
        ]
        error = record.get("error") or ""
        dets = record.get("detections") or []
        if not dets:
            self.rows.writerow([*head, "", "", "", "", "", "", "", error])
        for d in dets:
            self.rows.writerow([*head, d["label"], d["class_id"], d["score"], *d["box"], error])
        self.out.flush()

    def close(self) -> None:
        self.out.flush()


def coco_names() -> list[str]:
    """The 80 class names of COCO-trained darknet models (the bundled coco.names)."""
    from yolocli.darknet import read_names
    from yolocli.registry import config_dir

    return read_names(config_dir() / "coco.names")


@dataclass(frozen=True)
class CocoOptions:
    """How `CocoWriter` numbers things. ``image_ids``: file name -> image id (from a COCO
    annotations file; matched by the name as given, then by base name); an image not in it,
    or every image when it is empty, gets its file stem (an int if all digits, as in COCO's
    ``000000397133.jpg``). ``class_names``: the model's; when they are COCO's 80, class ids
    become COCO's category ids (`COCO80_TO_91`), otherwise a category id is the class id."""

    image_ids: Mapping[str, int | str] = field(default_factory=dict)
    class_names: Sequence[str] = ()

    def category_ids(self) -> Sequence[int] | None:
        """Class id -> category id, or None where they are the same."""
        if len(self.class_names) == 80 and list(self.class_names) == coco_names():
            return COCO80_TO_91
        return None


def image_id(name: str, ids: Mapping[str, int | str]) -> int | str | None:
    """The COCO image id of an input named ``name``: from ``ids`` by the name as given, then
    its base name; None if ``ids`` has neither."""
    found = ids.get(name)
    if found is None:
        found = ids.get(PurePath(name).name)
    return found


def stem_id(name: str) -> int | str:
    """An image id from a file name alone: its stem, as an int if it is all digits."""
    stem = PurePath(name).stem
    return int(stem) if stem.isascii() and stem.isdigit() else stem


def coco_bbox(box: Sequence[float]) -> list[float]:
    """A record's ``[x1, y1, x2, y2]`` as COCO's ``[x, y, w, h]`` (2 decimals, as records)."""
    x1, y1, x2, y2 = box
    return [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)]


class CocoWriter:
    """COCO's results format: one JSON array of ``{"image_id", "category_id", "bbox": [x, y,
    w, h], "score"}`` objects, one per detection, written (and flushed) image by image; what
    pycocotools' ``COCO.loadRes`` and the COCO evaluation server read."""

    def __init__(self, out: TextIO, options: CocoOptions | None = None) -> None:
        self.out = out
        self.options = options or CocoOptions()
        self.categories = self.options.category_ids()
        self.count = 0
        self.closed = False

    def write(self, record: Record) -> None:
        if record.get("error") or record.get("skipped"):
            return  # said on stderr, once
        name = record["image"]
        ident = image_id(name, self.options.image_ids)
        if ident is None:
            ident = stem_id(name)
            if self.options.image_ids:
                log.warning(
                    "%s is not in the COCO annotations file: its image id is the file stem, %r",
                    printable(name),
                    ident,
                )
        parts = []
        for d in record["detections"]:
            cid = d["class_id"]
            category = self.categories[cid] if self.categories is not None else cid
            item = {
                "image_id": ident,
                "category_id": category,
                "bbox": coco_bbox(d["box"]),
                "score": d["score"],
            }
            parts.append(("[\n" if self.count == 0 else ",\n") + json.dumps(item))
            self.count += 1
        if parts:
            self.out.write("".join(parts))
            self.out.flush()

    def close(self) -> None:
        if not self.closed:
            self.out.write("[]\n" if self.count == 0 else "\n]\n")
            self.closed = True
        self.out.flush()


def make_writer(fmt: str, out: TextIO, *, coco: CocoOptions | None = None) -> Writer:
    """The writer for ``fmt``; ``coco`` configures the ``coco`` format (`CocoOptions`)."""
    if fmt == "coco":
        return CocoWriter(out, coco)
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
