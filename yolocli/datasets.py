"""Labelled images for evaluation: a COCO annotations JSON or a YOLO-layout folder.

Both become a `Dataset`: its images, in evaluation order, each with its ground truth, and
``problems``, one line per entry that could not be used as it is (a label line with 4
fields, a class id out of range, a box outside its image, an image listed but missing on
disk). Loading never stops at a bad entry: it is reported, left out (or, for a box reaching
outside its image, clipped to it), and the rest is used.

Object areas, which decide COCO's small/medium/large buckets, come from the ``area`` field of
a COCO annotation (the segmentation's area in COCO itself, as pycocotools uses it) and from
the box's w*h in pixels for YOLO labels (and for a COCO annotation without ``area``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from yolocli.errors import YolocliError
from yolocli.evaluate import Floats, Truth
from yolocli.inputs import walk_folder

# How far a box may reach past the image edge before it is reported (and clipped): COCO's
# own boxes overshoot by rounding, YOLO exporters by float noise.
PIXEL_SLACK = 1.0
NORMALIZED_SLACK = 1e-3


# COCO's category names where darknet's coco.names spells them differently.
_COCO_ALIASES = {
    "motorcycle": "motorbike",
    "airplane": "aeroplane",
    "couch": "sofa",
    "tv": "tvmonitor",
}


def name_key(name: str) -> str:
    """A class name for matching COCO categories to model classes: case, spaces and darknet's
    spellings aside ("dining table" is "diningtable", "tv" is "tvmonitor")."""
    low = " ".join(name.lower().split())
    return _COCO_ALIASES.get(low, low).replace(" ", "")


class DatasetError(YolocliError):
    """Labelled data cannot be used at all: neither a COCO JSON nor a YOLO-layout folder."""


@dataclass(frozen=True)
class LabelledImage:
    """One image and its ground truth. ``boxes`` (G, 4) are ``[x, y, w, h]``: in pixels, or
    for YOLO labels (``normalized``) as fractions of the image's width and height, made
    pixels by `truth` once the image's size is known. ``areas`` None: w*h in pixels."""

    path: Path
    image_id: int | str
    boxes: Floats
    classes: np.ndarray[Any, np.dtype[np.int64]]
    areas: Floats | None = None
    crowd: np.ndarray[Any, np.dtype[np.bool_]] | None = None
    normalized: bool = False

    def truth(self, width: int, height: int) -> Truth:
        """The ground truth in pixels, for an image of this size."""
        boxes = self.boxes * np.array([width, height, width, height]) if self.normalized else None
        return Truth.of(
            self.boxes if boxes is None else boxes, self.classes, self.areas, self.crowd
        )


@dataclass
class Dataset:
    """Images in evaluation order (sorted by image id, as pycocotools orders them), the class
    ids to evaluate, their display names, and what was wrong with the input: ``problems``
    (entries fixed or left out) and ``missing`` (images that cannot be evaluated at all)."""

    images: list[LabelledImage]
    classes: list[int]
    names: dict[int, str]
    problems: list[str] = field(default_factory=list)
    category_ids: dict[int, int] = field(default_factory=dict)  # class -> COCO category id
    missing: list[str] = field(default_factory=list)  # listed images not on disk, one line each


def load(
    data: str | Path, class_names: Sequence[str], images_dir: str | Path | None = None
) -> Dataset:
    """A COCO annotations JSON (a file) or a YOLO-layout folder (``images/`` + ``labels/``)."""
    path = Path(data)
    if path.is_dir():
        if images_dir is not None:
            raise DatasetError("an images folder goes with a COCO annotations file, not a folder")
        return load_yolo(path, class_names)
    if path.is_file():
        return load_coco(path, class_names, images_dir)
    raise DatasetError(f"{path}: no such file or folder")


# -- YOLO layout -------------------------------------------------------------------------------


def load_yolo(root: Path, class_names: Sequence[str]) -> Dataset:
    """``root/images/**`` with ``root/labels/**.txt`` mirroring them: one ``class cx cy w h``
    line per object, normalized to [0, 1]. An image without a label file has no objects."""
    images_root, labels_root = root / "images", root / "labels"
    if not images_root.is_dir():
        raise DatasetError(
            f"{root}: not a YOLO-layout folder (no images/ inside; labels go in labels/)"
        )
    problems: list[str] = []
    images: list[LabelledImage] = []
    for source in walk_folder(images_root):
        if source.error or source.path is None:
            problems.append(f"{source.name}: {source.error}")
            continue
        label_file = (labels_root / source.rel).with_suffix(".txt")
        boxes, classes = _read_labels(label_file, len(class_names), problems)
        images.append(LabelledImage(source.path, len(images) + 1, boxes, classes, normalized=True))
    if not images:
        raise DatasetError(f"{images_root}: no images")
    classes_ = list(range(len(class_names)))
    return Dataset(images, classes_, dict(enumerate(class_names)), problems)


def _read_labels(
    path: Path, n_classes: int, problems: list[str]
) -> tuple[Floats, np.ndarray[Any, np.dtype[np.int64]]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""  # no label file: an image without objects
    except (OSError, UnicodeDecodeError) as err:
        problems.append(f"{path}: cannot read this label file: {err}")
        text = ""
    boxes, classes = [], []
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        where = f"{path}:{number}"
        parsed = parse_label_line(fields, n_classes)
        if isinstance(parsed, str):
            problems.append(f"{where}: {parsed}; line skipped")
            continue
        cls, box, note = parsed
        if note:
            problems.append(f"{where}: {note}")
        if box is not None:
            boxes.append(box)
            classes.append(cls)
    return np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(classes, np.int64)


def parse_label_line(
    fields: Sequence[str], n_classes: int
) -> str | tuple[int, list[float] | None, str | None]:
    """One YOLO label line: (class, [x, y, w, h] normalized or None if nothing is left of it
    inside the image, a note on what was changed), or why it cannot be used."""
    if len(fields) != 5:
        return f"expected 5 fields (class cx cy w h), got {len(fields)}"
    try:
        cls = int(fields[0])
    except ValueError:
        return f"class id {fields[0]!r} is not a whole number"
    if not 0 <= cls < n_classes:
        return (
            f"class id {cls} is out of range: the model has {n_classes} classes (0-{n_classes - 1})"
        )
    try:
        cx, cy, w, h = (float(v) for v in fields[1:])
    except ValueError:
        return f"box {' '.join(fields[1:])!r} is not four numbers"
    if not all(math.isfinite(v) for v in (cx, cy, w, h)) or w <= 0 or h <= 0:
        return f"box {' '.join(fields[1:])} has no area"
    box, note = clip_box([cx - w / 2, cy - h / 2, w, h], 1.0, 1.0, NORMALIZED_SLACK)
    return cls, box, note


def clip_box(
    box: Sequence[float], width: float, height: float, slack: float
) -> tuple[list[float] | None, str | None]:
    """``[x, y, w, h]`` inside a ``width`` x ``height`` image: unchanged if it reaches at
    most ``slack`` past an edge, else clipped (with a note); None if nothing is inside."""
    x, y, w, h = box
    x1, y1, x2, y2 = max(x, 0.0), max(y, 0.0), min(x + w, width), min(y + h, height)
    shown = "[" + ", ".join(f"{v:g}" for v in box) + "]"
    if x2 <= x1 or y2 <= y1:
        return None, f"box {shown} lies outside the image; left out"
    if x < -slack or y < -slack or x + w > width + slack or y + h > height + slack:
        return [x1, y1, x2 - x1, y2 - y1], f"box {shown} reaches outside the image; clipped to it"
    return [x, y, w, h], None


# -- COCO JSON ---------------------------------------------------------------------------------


def load_coco(
    path: Path, class_names: Sequence[str], images_dir: str | Path | None = None
) -> Dataset:
    """A COCO annotations file; image files are found under ``images_dir`` (default: the
    file's folder) by their ``file_name``.

    Categories are matched to the model's classes by name. A category the model does not
    know still counts (its objects are all misses, as pycocotools would count them); a
    detection whose class is not a category is not counted, as in pycocotools.
    """
    doc = _read_coco(path)
    folder = Path(images_dir) if images_dir is not None else path.parent
    problems: list[str] = []
    missing: list[str] = []
    names, categories = _coco_categories(doc.get("categories") or [], class_names, path, problems)
    by_id: dict[Any, dict[str, Any]] = {}
    for i, entry in enumerate(doc["images"]):
        if not isinstance(entry, dict) or "id" not in entry or "file_name" not in entry:
            problems.append(f"{path}: images[{i}] has no id or file_name; left out")
            continue
        file = folder / str(entry["file_name"])
        if not file.is_file():
            missing.append(
                f"{path}: image {entry['id']} ({entry['file_name']}): no such file {file}; "
                "left out of the evaluation"
            )
            continue
        by_id[entry["id"]] = {**entry, "_path": file, "_anns": []}
    for i, ann in enumerate(doc.get("annotations") or []):
        image = by_id.get(ann.get("image_id")) if isinstance(ann, dict) else None
        if image is not None:
            image["_anns"].append((i, ann))
    images = [
        _coco_image(path, entry, categories, problems)
        for _, entry in sorted(by_id.items(), key=lambda kv: _sort_key(kv[0]))
    ]
    classes = sorted(categories.values())
    ids = {cls: cat for cat, cls in categories.items()}
    return Dataset(images, classes, names, problems, ids, missing)


def _sort_key(image_id: Any) -> tuple[int, Any]:
    return (0, image_id) if isinstance(image_id, int | float) else (1, str(image_id))


def _coco_categories(
    cats: list[Any], class_names: Sequence[str], path: Path, problems: list[str]
) -> tuple[dict[int, str], dict[int, int]]:
    """Display names by class, and class by COCO category id (unknown names get classes
    past the model's)."""
    lookup = {name_key(name): i for i, name in enumerate(class_names)}
    names = dict(enumerate(class_names))
    categories: dict[int, int] = {}
    extra = len(class_names)
    for cat in cats:
        if not isinstance(cat, dict) or "id" not in cat:
            continue
        name = str(cat.get("name", cat["id"]))
        cls = lookup.get(name_key(name))
        if cls is None:
            problems.append(
                f"{path}: category {name!r} (id {cat['id']}) is not a class of this model: its "
                "objects count as missed"
            )
            cls, extra = extra, extra + 1
            names[cls] = name
        categories[cat["id"]] = cls
    return names, categories


def _coco_image(
    path: Path, entry: dict[str, Any], categories: dict[int, int], problems: list[str]
) -> LabelledImage:
    width, height = entry.get("width"), entry.get("height")
    boxes, classes, areas, crowd = [], [], [], []
    for i, ann in entry["_anns"]:
        where = f"{path}: annotations[{i}] (image {entry['id']})"
        cls = categories.get(ann.get("category_id"))
        bbox = ann.get("bbox")
        if cls is None:
            problems.append(f"{where}: category id {ann.get('category_id')} is not in categories")
            continue
        if (
            not isinstance(bbox, list)
            or len(bbox) != 4
            or not all(isinstance(v, int | float) and math.isfinite(v) for v in bbox)
        ):
            problems.append(f"{where}: bbox {bbox!r} is not [x, y, w, h]; left out")
            continue
        note = None
        if isinstance(width, int | float) and isinstance(height, int | float):
            clipped, note = clip_box(bbox, width, height, PIXEL_SLACK)
            if note:
                problems.append(f"{where}: {note}")
            if clipped is None:
                continue
            bbox = clipped
        boxes.append([float(v) for v in bbox])
        classes.append(cls)
        area = ann.get("area")
        areas.append(float(area) if isinstance(area, int | float) else bbox[2] * bbox[3])
        crowd.append(bool(ann.get("iscrowd", 0)))
    return LabelledImage(
        entry["_path"],
        entry["id"],
        np.asarray(boxes, np.float64).reshape(-1, 4),
        np.asarray(classes, np.int64),
        np.asarray(areas, np.float64),
        np.asarray(crowd, bool),
    )


def _read_coco(path: Path) -> dict[str, Any]:
    """A COCO annotations file as parsed JSON; `DatasetError` if it cannot be one."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise DatasetError(f"{path}: cannot read this file: {err}") from None
    except json.JSONDecodeError as err:
        raise DatasetError(f"{path}: not JSON: {err}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list):
        raise DatasetError(f'{path}: not a COCO annotations file (no "images" list)')
    return doc


def coco_image_ids(path: Path) -> dict[str, int | str]:
    """``file_name`` -> image id from a COCO annotations file (by base name too), for writing
    results that refer to its images."""
    doc = _read_coco(path)
    ids: dict[str, int | str] = {}
    for entry in doc["images"]:
        if isinstance(entry, dict) and "file_name" in entry and "id" in entry:
            ids[str(entry["file_name"])] = entry["id"]
            ids.setdefault(Path(str(entry["file_name"])).name, entry["id"])
    return ids


__all__ = [
    "Dataset",
    "DatasetError",
    "LabelledImage",
    "clip_box",
    "coco_image_ids",
    "load",
    "load_coco",
    "load_yolo",
    "name_key",
    "parse_label_line",
]
