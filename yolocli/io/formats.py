"""Machine-readable and human-readable results, one writer interface for every format.

Every writer receives one `yolocli.io.records.ImageRecord` per input, in input order, and
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

from yolocli.io.records import ImageRecord

FORMATS = ("text", "jsonl", "json", "csv", "coco", "labelstudio")
TRACK_FORMATS = ("text", "jsonl", "json", "csv", "mot")  # `yolocli track`
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
    then one row with an empty ``frame`` and the ``error``. ``tracks``: a ``track_id``
    column after ``class_id`` (`yolocli track`)."""

    def __init__(self, out: TextIO, tracks: bool = False) -> None:
        import csv

        self.out = out
        self.tracks = tracks
        self.rows = csv.writer(out, lineterminator="\n")
        columns = list(CSV_COLUMNS)
        if tracks:
            columns.insert(columns.index("class_id") + 1, "track_id")
        self.rows.writerow(columns)

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
            self.rows.writerow([*head, *[""] * (7 + self.tracks), error])
        for d in dets:
            ids = [d.get("track_id", "")] if self.tracks else []
            self.rows.writerow(
                [*head, d["label"], d["class_id"], *ids, d["score"], *d["box"], error]
            )
        self.out.flush()

    def close(self) -> None:
        self.out.flush()


def coco_names() -> list[str]:
    """The 80 class names of COCO-trained darknet models (the bundled coco.names)."""
    from yolocli.families.darknet.cfg import read_names
    from yolocli.models.registry import config_dir

    return read_names(config_dir() / "coco.names")


@dataclass(frozen=True)
class CocoOptions:
    """How `CocoWriter` numbers things.

    ``image_ids``: file name -> image id (from a COCO annotations file); an input is matched
    by its name as given, then by ever shorter tails of its path (``/data/val/x.jpg`` finds
    ``val/x.jpg``, then ``x.jpg``). An image not in it, or every image when it is empty, gets
    its file stem (an int if all digits, as in COCO's ``000000397133.jpg``); a stem already
    taken by another image of the run gets the path as given without its extension instead
    (``b/dog_01``), then ``#2``, ``#3``... A video's frames get the video's id, ``:`` and the
    frame's index (``"clip:17"``), so every image and frame has its own id.

    ``categories``: category name -> id (from the annotations file's ``categories``): each
    class maps to the category of the same name (`yolocli.eval.datasets.name_key`: COCO's
    spellings, case and spaces aside); a class with none has its detections left out. Without
    them: when the model's classes are COCO's 80, COCO's category ids (`COCO80_TO_91`),
    otherwise the class id."""

    image_ids: Mapping[str, int | str] = field(default_factory=dict)
    class_names: Sequence[str] = ()
    categories: Mapping[str, int | str] = field(default_factory=dict)

    def category_ids(self) -> Sequence[int | str | None] | None:
        """Class id -> category id (None: the class has no category), or None where they are
        the same."""
        if self.categories:
            from yolocli.eval.datasets import name_key

            by_key = {name_key(name): cid for name, cid in self.categories.items()}
            return [by_key.get(name_key(name)) for name in self.class_names]
        if len(self.class_names) == 80 and list(self.class_names) == coco_names():
            return COCO80_TO_91
        return None

    def uncategorized(self) -> list[str]:
        """The model's classes that have no category in ``categories``."""
        table = self.category_ids() if self.categories else None
        if table is None:
            return []
        return [name for name, cid in zip(self.class_names, table, strict=True) if cid is None]


def image_id(name: str, ids: Mapping[str, int | str]) -> int | str | None:
    """The COCO image id of an input named ``name``: from ``ids`` by the name as given, then
    by ever shorter tails of its path down to its base name; None if ``ids`` has none."""
    found = ids.get(name)
    parts = PurePath(name).parts
    for start in range(1, len(parts)):
        if found is not None:
            break
        found = ids.get("/".join(parts[start:]))
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
    pycocotools' ``COCO.loadRes`` and the COCO evaluation server read. Ids: `CocoOptions`."""

    def __init__(self, out: TextIO, options: CocoOptions | None = None) -> None:
        self.out = out
        self.options = options or CocoOptions()
        self.categories = self.options.category_ids()
        self.count = 0
        self.closed = False
        self.ids: dict[str, int | str] = {}  # input name -> its image id in this run
        self.taken: set[int | str] = set()
        missing = self.options.uncategorized()
        if missing:
            log.warning(
                "%d of the model's %d classes have no category of that name in the COCO "
                "annotations file; their detections are left out of -f coco: %s",
                len(missing),
                len(self.options.class_names),
                ", ".join(printable(n) for n in missing),
            )

    def image_id(self, name: str) -> int | str:
        """The id of the input ``name`` in this run: the same name always gets the same id,
        and two inputs never share one (`CocoOptions`)."""
        known = self.ids.get(name)
        if known is not None:
            return known
        ident = image_id(name, self.options.image_ids)
        if ident is None:
            ident = stem_id(name)
            if ident in self.taken:
                ident = str(PurePath(name).with_suffix(""))
            base, n = ident, 2
            while ident in self.taken:
                ident, n = f"{base}#{n}", n + 1
            if self.options.image_ids:
                log.warning(
                    "%s is not in the COCO annotations file: its image id is %r",
                    printable(name),
                    ident,
                )
        self.ids[name] = ident
        self.taken.add(ident)
        return ident

    def write(self, record: Record) -> None:
        if record.get("error") or record.get("skipped") or "frames" in record:
            return  # said on stderr, once; a video's closing record is no image
        ident = self.image_id(record["image"])
        frame = record.get("frame")
        if frame is not None:
            ident = f"{ident}:{frame}"
        parts = []
        for d in record["detections"]:
            cid = d["class_id"]
            category = self.categories[cid] if self.categories is not None else cid
            if category is None:
                continue  # the annotations have no category for this class
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


class MotWriter:
    """MOTChallenge results, which TrackEval and motmetrics read: one line per tracked
    detection, ``frame,id,x,y,w,h,score,-1,-1,-1``, frames counted from 1 (the source's
    frame index + 1, so a stride leaves gaps). One sequence per file: frames of a second
    video are left out, with a warning."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.sequence: str | None = None
        self.warned = False

    def write(self, record: Record) -> None:
        frame = record.get("frame")
        if frame is None or record.get("error"):
            return
        if self.sequence is None:
            self.sequence = record["image"]
        elif record["image"] != self.sequence:
            if not self.warned:
                log.warning(
                    "-f mot holds one sequence (%s): the frames of %s and later videos are "
                    "left out; track one source at a time",
                    printable(self.sequence),
                    printable(record["image"]),
                )
                self.warned = True
            return
        lines = []
        for d in record["detections"]:
            tid = d.get("track_id")
            if tid is None:
                continue
            x, y, w, h = coco_bbox(d["box"])
            lines.append(
                f"{frame + 1},{tid},{x:.2f},{y:.2f},{w:.2f},{h:.2f},{d['score']:.6f},-1,-1,-1\n"
            )
        if lines:
            self.out.write("".join(lines))
            self.out.flush()

    def close(self) -> None:
        self.out.flush()


class LabelStudioWriter:
    """Label Studio's pre-annotation tasks (its "predictions" import): one JSON array of
    ``{"data": {"image": PATH}, "predictions": [{"model_version", "score", "result"}]}``, a
    task per image, each box a ``rectanglelabels`` result in percent of the image, with its
    score. ``from_name``/``to_name`` are those of Label Studio's "Object Detection with
    Bounding Boxes" template (``label``, ``image``). Video frames are left out: Label Studio
    labels videos with another kind of region."""

    def __init__(self, out: TextIO, from_name: str = "label", to_name: str = "image") -> None:
        self.out = out
        self.from_name, self.to_name = from_name, to_name
        self.count = 0
        self.closed = False
        self.warned = False

    def task(self, record: Record) -> dict[str, object]:
        """One image's task: its predicted boxes as Label Studio results."""
        width, height = record["width"] or 1, record["height"] or 1
        results: list[dict[str, object]] = []
        for i, d in enumerate(record["detections"]):
            x1, y1, x2, y2 = d["box"]
            results.append(
                {
                    "id": f"{self.count}-{i}",
                    "type": "rectanglelabels",
                    "from_name": self.from_name,
                    "to_name": self.to_name,
                    "original_width": width,
                    "original_height": height,
                    "image_rotation": 0,
                    "value": {
                        "rotation": 0,
                        "x": round(x1 / width * 100, 4),
                        "y": round(y1 / height * 100, 4),
                        "width": round((x2 - x1) / width * 100, 4),
                        "height": round((y2 - y1) / height * 100, 4),
                        "rectanglelabels": [d["label"]],
                    },
                    "score": d["score"],
                }
            )
        scores = [d["score"] for d in record["detections"]]
        prediction = {
            "model_version": record["model"],
            "score": round(sum(scores) / len(scores), 6) if scores else 0.0,
            "result": results,
        }
        return {"data": {self.to_name: record["image"]}, "predictions": [prediction]}

    def write(self, record: Record) -> None:
        if record.get("error") or record.get("skipped") or "frames" in record:
            return  # said on stderr, once; a video's closing record is no image
        if record.get("frame") is not None:
            if not self.warned:
                log.warning(
                    "-f labelstudio: video frames are left out (Label Studio labels videos "
                    "with videorectangle regions); use -f jsonl for them"
                )
                self.warned = True
            return
        text = to_json(self.task(record))  # type: ignore[arg-type]
        self.out.write(("[\n" if self.count == 0 else ",\n") + text)
        self.out.flush()
        self.count += 1

    def close(self) -> None:
        if not self.closed:
            self.out.write("[]\n" if self.count == 0 else "\n]\n")
            self.closed = True
        self.out.flush()


def make_writer(
    fmt: str, out: TextIO, *, coco: CocoOptions | None = None, tracks: bool = False
) -> Writer:
    """The writer for ``fmt``; ``coco`` configures the ``coco`` format (`CocoOptions`);
    ``tracks``: records carry ``track_id`` (the CSV gets its column)."""
    if fmt == "coco":
        return CocoWriter(out, coco)
    if fmt == "mot":
        return MotWriter(out)
    if fmt == "csv":
        return CsvWriter(out, tracks)
    writers: dict[str, type[Writer]] = {
        "text": TextWriter,
        "jsonl": JsonLinesWriter,
        "json": JsonWriter,
        "csv": CsvWriter,
        "labelstudio": LabelStudioWriter,
    }
    try:
        return writers[fmt](out)  # type: ignore[call-arg]
    except KeyError:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}") from None
