"""Labelled images for evaluation, in the layouts people have them in.

- a COCO annotations JSON (images by ``file_name`` under its folder, or ``images_dir``);
- a YOLO-layout folder: ``images/`` with ``labels/`` mirroring it;
- an Ultralytics ``data.yaml`` (``path``, ``val``, ``names``): ``val`` is a folder, an image
  list or a list of either, and labels are found as Ultralytics finds them (the last
  ``/images/`` in the image's path becomes ``/labels/``, the extension ``.txt``);
- darknet's ``obj.data`` (``valid=`` an image list, ``names=``), labels beside the images (or
  where darknet's ``replace_image_to_label`` puts them: ``JPEGImages/`` or ``images/`` made
  ``labels/``).

Each becomes a `Dataset`: its images, in evaluation order, each with its ground truth, and
``problems``, one line per entry that could not be used as it is (a label line with 4
fields, a class id out of range, a box outside its image, a label file with no image).
Loading never stops at a bad entry: it is reported, left out (or, for a box reaching outside
its image, clipped to it), and the rest is used. Images that cannot be evaluated at all (not
on disk, outside the dataset's folder, a label file that cannot be read) are ``missing``.

Where the dataset names its classes (COCO categories, ``names`` in data.yaml or obj.data),
they are matched to the model's classes by name, with COCO's spellings of darknet's names
(`name_key`); a dataset class the model does not have still counts, its objects all missed.

Object areas, which decide COCO's small/medium/large buckets, come from the ``area`` field of
a COCO annotation (the segmentation's area in COCO itself, as pycocotools uses it) and from
the box's w*h in pixels for YOLO labels (and for a COCO annotation without ``area``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np

from yolocli.errors import YolocliError
from yolocli.eval.evaluate import Floats, Truth
from yolocli.io.inputs import is_image_name, walk_folder
from yolocli.postprocess import name_key  # one rule for class names: --classes, val, -f coco

# How far a box may reach past the image edge before it is reported (and clipped): COCO's
# own boxes overshoot by rounding, YOLO exporters by float noise.
PIXEL_SLACK = 1.0
NORMALIZED_SLACK = 1e-3


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
    """A labelled dataset in any layout this module reads (see the module's docstring),
    chosen by what ``data`` is: a folder (YOLO layout, or its ``data.yaml``), a ``.yaml``,
    a ``.data`` (darknet) or a COCO JSON file. ``images_dir`` goes with a COCO JSON only."""
    path = Path(data)
    if path.is_dir():
        if images_dir is not None:
            raise DatasetError("an images folder goes with a COCO annotations file, not a folder")
        yaml_file = path / "data.yaml"
        if yaml_file.is_file():
            return load_ultralytics(yaml_file, class_names)
        return load_yolo(path, class_names)
    if not path.is_file():
        raise DatasetError(f"{path}: no such file or folder")
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml", ".data"):
        if images_dir is not None:
            raise DatasetError(
                f"{path}: an images folder goes with a COCO annotations file; this file names "
                "its images itself"
            )
        if suffix == ".data":
            return load_darknet(path, class_names)
        return load_ultralytics(path, class_names)
    return load_coco(path, class_names, images_dir)


# -- classes named by the dataset ----------------------------------------------------------------


@dataclass(frozen=True)
class _ClassMap:
    """How a dataset's class ids become evaluated classes: ``to_class[i]`` for dataset id i,
    the display ``names`` by class, and the ``classes`` evaluated (sorted)."""

    to_class: np.ndarray[Any, np.dtype[np.int64]]
    names: dict[int, str]
    classes: list[int]


def _identity_classes(class_names: Sequence[str]) -> _ClassMap:
    n = len(class_names)
    return _ClassMap(np.arange(n, dtype=np.int64), dict(enumerate(class_names)), list(range(n)))


def _match_classes(
    dataset_names: Sequence[str], class_names: Sequence[str], where: Path, problems: list[str]
) -> _ClassMap:
    """Dataset classes matched to the model's by name (`name_key`); one the model does not
    have gets a class past the model's (its objects count as missed, as COCO's would)."""
    lookup = {name_key(name): i for i, name in enumerate(class_names)}
    names = dict(enumerate(class_names))
    to_class: list[int] = []
    extra = len(class_names)
    for i, name in enumerate(dataset_names):
        cls = lookup.get(name_key(name))
        if cls is None:
            problems.append(
                f"{where}: class {name!r} (id {i}) is not a class of this model: its objects "
                "count as missed"
            )
            cls, extra = extra, extra + 1
            names[cls] = name
        to_class.append(cls)
    return _ClassMap(np.asarray(to_class, np.int64), names, sorted(set(to_class)))


# -- YOLO labels: one text file per image ----------------------------------------------------


def load_yolo(root: Path, class_names: Sequence[str]) -> Dataset:
    """``root/images/**`` with ``root/labels/**.txt`` mirroring them: one ``class cx cy w h``
    line per object, normalized to [0, 1]. An image without a label file has no objects; a
    label file without an image is reported. Class ids are the model's."""
    images_root, labels_root = root / "images", root / "labels"
    if not images_root.is_dir():
        raise DatasetError(
            f"{root}: not a YOLO-layout folder (no images/ inside; labels go in labels/), "
            "nor an Ultralytics one (no data.yaml)"
        )
    problems: list[str] = []
    files = _walk_images(images_root, problems)
    if not files:
        raise DatasetError(f"{images_root}: no images")
    pairs = [(f, (labels_root / f.relative_to(images_root)).with_suffix(".txt")) for f in files]
    dataset = _labelled(pairs, _identity_classes(class_names), len(class_names), problems)
    problems.extend(_orphan_labels(labels_root, images_root))
    return dataset


def _walk_images(root: Path, problems: list[str]) -> list[Path]:
    """The image files below ``root`` (`walk_folder`'s order); unreadable entries reported."""
    found: list[Path] = []
    for source in walk_folder(root):
        if source.error or source.path is None:
            problems.append(f"{source.name}: {source.error}")
        elif is_image_name(source.path):
            found.append(source.path)
    return found


def _orphan_labels(labels_root: Path, images_root: Path, recursive: bool = True) -> list[str]:
    """One line per label file under ``labels_root`` whose image is not at the mirrored place
    under ``images_root`` (any image extension; labelling tools' ``classes.txt`` aside): its
    objects are not evaluated."""
    if not labels_root.is_dir() or not images_root.is_dir():
        return []
    pattern = "**/*" if recursive else "*"
    stems = {
        p.relative_to(images_root).with_suffix("")
        for p in images_root.glob(pattern)
        if is_image_name(p)
    }
    return [
        f"{label}: a label file with no image; not evaluated"
        for label in sorted(labels_root.glob(pattern + ".txt" if recursive else "*.txt"))
        if label.relative_to(labels_root).with_suffix("") not in stems
        and label.name != "classes.txt"
        and label.is_file()
    ]


def _labelled(
    pairs: Sequence[tuple[Path, Path | None]],
    classes: _ClassMap,
    n_classes: int,
    problems: list[str],
    missing: list[str] | None = None,
) -> Dataset:
    """A `Dataset` from (image, label file) pairs, ids 1.. in order. An image whose label file
    exists but cannot be read is left out (in ``missing``): scoring it as empty would count
    its objects as false positives."""
    missing = [] if missing is None else missing
    images: list[LabelledImage] = []
    for image, label in pairs:
        read = _read_labels(label, n_classes, problems) if label is not None else None
        if isinstance(read, str):
            missing.append(f"{image}: {read}; left out of the evaluation")
            continue
        if read is None:
            boxes, ids = np.zeros((0, 4)), np.zeros(0, np.int64)
        else:
            boxes, ids = read
        cls = classes.to_class[ids]
        images.append(LabelledImage(image, len(images) + 1, boxes, cls, normalized=True))
    return Dataset(images, classes.classes, classes.names, problems, missing=missing)


def _read_labels(
    path: Path, n_classes: int, problems: list[str]
) -> str | tuple[Floats, np.ndarray[Any, np.dtype[np.int64]]]:
    """A label file's boxes and dataset class ids; no file: no objects. Why it cannot be
    read, if it exists but cannot."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""  # no label file: an image without objects
    except UnicodeDecodeError as err:
        return f"its label file {path} is not UTF-8 text ({err.reason} at byte {err.start})"
    except OSError as err:
        return f"its label file {path} cannot be read: {err.strerror or err}"
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


def excerpt(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def parse_label_line(
    fields: Sequence[str], n_classes: int
) -> str | tuple[int, list[float] | None, str | None]:
    """One YOLO label line: (class, [x, y, w, h] normalized or None if nothing is left of it
    inside the image, a note on what was changed), or why it cannot be used. A segmentation
    line (``class x1 y1 x2 y2 x3 y3 ...``, three points or more) counts as the box around its
    polygon, as Ultralytics counts it when it validates a detector."""
    polygon = len(fields) >= 7 and len(fields) % 2 == 1
    if len(fields) != 5 and not polygon:
        return f"expected 5 fields (class cx cy w h), got {len(fields)}"
    if polygon:
        try:
            xy = np.array([float(v) for v in fields[1:]]).reshape(-1, 2)
        except ValueError:
            return f"polygon {excerpt(' '.join(fields[1:]))!r} is not numbers"
        (x1, y1), (x2, y2) = xy.min(axis=0), xy.max(axis=0)
        fields = [
            fields[0],
            *(repr(float(v)) for v in ((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1)),
        ]
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


# -- Ultralytics data.yaml -------------------------------------------------------------------


def load_ultralytics(path: Path, class_names: Sequence[str]) -> Dataset:
    """An Ultralytics dataset file: ``path`` (the root: relative to the working folder if it
    exists there, else to the yaml's folder; absent, the yaml's folder), ``val`` (a folder, an
    image list file, or a list of them, under the root), ``names`` (a list, or a mapping id ->
    name). Labels: the last ``/images/`` of an image's path made ``/labels/``, ``.txt``."""
    import yaml

    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise DatasetError(f"{path}: cannot read this file: {err}") from None
    except yaml.YAMLError as err:
        raise DatasetError(f"{path}: not YAML: {err}") from None
    if not isinstance(doc, dict) or not doc.get("val"):
        raise DatasetError(f"{path}: not an Ultralytics dataset file (no 'val' entry)")
    problems: list[str] = []
    names = _yaml_names(doc.get("names"), path)
    given = doc.get("path")
    if given is None:
        root = path.parent
    else:
        root = Path(str(given)).expanduser()
        if not root.is_absolute() and not root.exists():
            root = path.parent / root
    entries = doc["val"] if isinstance(doc["val"], list) else [doc["val"]]
    images: list[Path] = []
    missing: list[str] = []
    for entry in entries:
        where = root / str(entry)
        if where.is_dir():
            images.extend(_walk_images(where, problems))
        elif where.is_file():
            images.extend(_image_list(where, [where.parent, root], missing))
        else:
            raise DatasetError(f"{path}: val {entry!r}: no such folder or file {where}")
    if not images and not missing:
        raise DatasetError(f"{path}: val {doc['val']!r} holds no images")
    classes = (
        _identity_classes(class_names)
        if names is None
        else _match_classes(names, class_names, path, problems)
    )
    n = len(class_names) if names is None else len(names)
    pairs = [(image, _ultralytics_label(image)) for image in images]
    dataset = _labelled(pairs, classes, n, problems, _compact(missing))
    for folder in sorted({image.parent for image in images}):
        labels = _ultralytics_label(folder / "x").parent
        if labels != folder:
            problems.extend(_orphan_labels(labels, folder, recursive=False))
    return dataset


def _ultralytics_label(image: Path) -> Path:
    """Ultralytics' ``img2label_paths``: the last ``/images/`` becomes ``/labels/``."""
    text = str(image)
    sep = "/images/" if "/images/" in text + "/" else None
    if sep is not None:
        head, _, tail = (text + "/").rpartition(sep)
        text = (head + "/labels/" + tail).rstrip("/")
    return Path(text).with_suffix(".txt")


def _yaml_names(names: Any, path: Path) -> list[str] | None:
    """data.yaml's ``names``: a list, or a mapping of class id to name (ids 0..n-1)."""
    if names is None:
        return None
    if isinstance(names, list):
        return [str(n) for n in names]
    if isinstance(names, dict) and all(isinstance(k, int) and k >= 0 for k in names):
        return [str(names.get(i, i)) for i in range(max(names, default=-1) + 1)]
    raise DatasetError(f"{path}: names must be a list or a mapping of class id to name")


def _image_list(list_file: Path, bases: Sequence[Path], missing: list[str]) -> list[Path]:
    """The images an image-list file names, one per line: absolute, or relative to the first
    of ``bases`` (then the working folder) where the file exists. Missing ones are
    reported in ``missing``."""
    try:
        text = list_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise DatasetError(f"{list_file}: cannot read this image list: {err}") from None
    found: list[Path] = []
    for line in text.splitlines():
        name = line.strip()
        if not name or name.startswith("#"):
            continue
        candidates = [Path(name)] if Path(name).is_absolute() else [b / name for b in bases]
        candidates.append(Path(name))
        image = next((c for c in candidates if c.is_file()), None)
        if image is None:
            missing.append(f"{list_file}: {name}: no such file; left out of the evaluation")
        else:
            found.append(image)
    return found


# -- darknet obj.data ----------------------------------------------------------------------------


def load_darknet(path: Path, class_names: Sequence[str]) -> Dataset:
    """darknet's ``obj.data``: ``valid`` (or ``test``) names an image list, ``names`` the
    class names file. darknet reads these paths from the folder it runs in; here a relative
    path is tried from the working folder, the obj.data's folder, then its parent. Labels
    sit beside the images (``x.jpg``: ``x.txt``), or where darknet's
    ``replace_image_to_label`` looks (``JPEGImages/`` or ``images/`` made ``labels/``)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise DatasetError(f"{path}: cannot read this file: {err}") from None
    options: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.split("#", 1)[0].partition("=")
        if sep:
            options[key.strip().lower()] = value.strip()
    listed = options.get("valid") or options.get("test")
    if not listed:
        raise DatasetError(f"{path}: not a darknet data file (no 'valid=' image list)")
    bases = [Path.cwd(), path.parent, path.parent.parent]
    problems: list[str] = []
    missing: list[str] = []
    list_file = _locate(listed, bases, path, "valid")
    images = _image_list(list_file, [*bases, list_file.parent], missing)
    if not images and not missing:
        raise DatasetError(f"{list_file}: the valid= list names no images")
    if options.get("names"):
        from yolocli.errors import ModelError
        from yolocli.families.darknet.cfg import read_names

        try:
            names = read_names(_locate(options["names"], bases, path, "names"))
        except ModelError as err:
            raise DatasetError(str(err)) from None
        classes = _match_classes(names, class_names, path, problems)
        n = len(names)
    else:
        classes, n = _identity_classes(class_names), len(class_names)
    pairs = [(image, _darknet_label(image)) for image in images]
    return _labelled(pairs, classes, n, problems, _compact(missing))


def _locate(name: str, bases: Sequence[Path], where: Path, key: str) -> Path:
    candidates = [Path(name)] if Path(name).is_absolute() else [b / name for b in bases]
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        tried = ", ".join(str(c) for c in candidates)
        raise DatasetError(f"{where}: {key}={name}: no such file (looked at {tried})")
    return found


def _darknet_label(image: Path) -> Path:
    """Beside the image, else where darknet's ``replace_image_to_label`` puts it."""
    beside = image.with_suffix(".txt")
    if beside.is_file():
        return beside
    text = str(image)
    for folder in ("/JPEGImages/", "/images/"):
        if folder in text:
            moved = Path(text.replace(folder, "/labels/")).with_suffix(".txt")
            if moved.is_file():
                return moved
    return beside


def _compact(missing: list[str], shown: int = 10) -> list[str]:
    """At most ``shown`` lines about missing images, then one line counting the rest."""
    if len(missing) <= shown:
        return missing
    return [*missing[:shown], f"... and {len(missing) - shown} more images not found"]


# -- COCO JSON ---------------------------------------------------------------------------------


def load_coco(
    path: Path, class_names: Sequence[str], images_dir: str | Path | None = None
) -> Dataset:
    """A COCO annotations file; image files are found under ``images_dir`` (default: the
    file's folder) by their ``file_name``, which must stay inside that folder: an absolute
    ``file_name`` or one that climbs out with ``..`` is refused, never read.

    Categories are matched to the model's classes by name. A category the model does not
    know still counts (its objects are all misses, as pycocotools would count them); a
    detection whose class is not a category is not counted, as in pycocotools. An image id
    listed twice for different files is left out: its annotations cannot be told apart.
    """
    doc = _read_coco(path)
    folder = Path(images_dir) if images_dir is not None else path.parent
    problems: list[str] = []
    missing: list[str] = []
    absent: list[str] = []  # listed, inside the folder, but not there
    names, categories = _coco_categories(doc.get("categories") or [], class_names, path, problems)
    listed: dict[int | str, list[dict[str, Any]]] = {}
    for i, entry in enumerate(doc["images"]):
        if not isinstance(entry, dict) or "id" not in entry or "file_name" not in entry:
            problems.append(f"{path}: images[{i}] has no id or file_name; left out")
            continue
        ident, file_name = entry["id"], entry["file_name"]
        if not _is_id(ident):
            problems.append(f"{path}: images[{i}]: id {ident!r} is not a number or a string; "
                            "left out")  # fmt: skip
            continue
        if not isinstance(file_name, str):
            problems.append(f"{path}: images[{i}]: file_name {file_name!r} is not a string; "
                            "left out")  # fmt: skip
            continue
        file = _inside(folder, file_name)
        if file is None:
            missing.append(
                f"{path}: image {ident} ({file_name}): refused: the file name leads outside "
                f"{folder}; left out of the evaluation"
            )
            continue
        if not file.is_file():
            absent.append(f"{path}: image {ident} ({file_name}): no such file {file}; "
                          "left out of the evaluation")  # fmt: skip
            continue
        listed.setdefault(ident, []).append({**entry, "_path": file, "_anns": []})
    by_id: dict[int | str, dict[str, Any]] = {}
    for ident, entries in listed.items():
        files = sorted({str(e["file_name"]) for e in entries})
        if len(files) > 1:
            missing.append(
                f"{path}: image id {ident!r} is listed {len(entries)} times, for "
                f"{', '.join(files)}: whose annotations are whose cannot be told; all left out"
            )
            continue
        if len(entries) > 1:
            problems.append(f"{path}: image id {ident!r} ({files[0]}) is listed "
                            f"{len(entries)} times; used once")  # fmt: skip
        by_id[ident] = entries[0]
    if absent and not by_id:
        where = f"--images {folder}" if images_dir is not None else f"{folder} (the JSON's folder)"
        raise DatasetError(
            f"{path}: none of its {len(absent)} images is in {where}, e.g. "
            f"{doc['images'][0].get('file_name')!r}; give the folder that holds them with "
            "--images DIR"
        )
    missing.extend(_compact(absent))
    for i, ann in enumerate(doc.get("annotations") or []):
        if not isinstance(ann, dict):
            continue
        ref = ann.get("image_id")
        image = by_id.get(ref) if isinstance(ref, int | str) and _is_id(ref) else None
        if image is not None:
            image["_anns"].append((i, ann))
            if ann.get("id") == 0 and not isinstance(ann.get("id"), bool):
                problems.append(
                    f"{path}: annotations[{i}] has annotation id 0: pycocotools takes a match "
                    "to id 0 for no match (it counts the detection as false), yolocli does "
                    "not, so pycocotools' figures for this file are lower; number from 1"
                )
    images = [
        _coco_image(path, entry, categories, problems)
        for _, entry in sorted(by_id.items(), key=lambda kv: _sort_key(kv[0]))
    ]
    classes = sorted(categories.values())
    ids = {cls: cat for cat, cls in categories.items()}
    return Dataset(images, classes, names, problems, ids, missing)


def _is_id(value: Any) -> bool:
    """COCO ids are numbers (strings are accepted, as pycocotools does): never a list,
    a mapping, a bool or null."""
    return isinstance(value, int | str) and not isinstance(value, bool)


def _inside(folder: Path, file_name: str) -> Path | None:
    """``folder / file_name`` if the name stays inside ``folder`` (no root, drive or
    ``..``); None otherwise. Lexical: a symlink the dataset's owner put inside is followed."""
    posix = PurePosixPath(file_name.replace("\\", "/"))
    if posix.is_absolute() or PureWindowsPath(file_name).drive or ".." in posix.parts:
        return None
    if not posix.parts or "\x00" in file_name:
        return None
    return folder / posix


def _sort_key(image_id: Any) -> tuple[int, Any]:
    return (0, image_id) if isinstance(image_id, int | float) else (1, str(image_id))


def _coco_categories(
    cats: list[Any], class_names: Sequence[str], path: Path, problems: list[str]
) -> tuple[dict[int, str], dict[Any, int]]:
    """Display names by class, and class by COCO category id (unknown names get classes
    past the model's)."""
    lookup = {name_key(name): i for i, name in enumerate(class_names)}
    names = dict(enumerate(class_names))
    categories: dict[Any, int] = {}
    extra = len(class_names)
    for cat in cats if isinstance(cats, list) else []:
        if not isinstance(cat, dict) or "id" not in cat:
            continue
        if not _is_id(cat["id"]):
            problems.append(f"{path}: category id {cat['id']!r} is not a number; left out")
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
    path: Path, entry: dict[str, Any], categories: dict[Any, int], problems: list[str]
) -> LabelledImage:
    width, height = entry.get("width"), entry.get("height")
    boxes, classes, areas, crowd = [], [], [], []
    for i, ann in entry["_anns"]:
        where = f"{path}: annotations[{i}] (image {entry['id']})"
        category = ann.get("category_id")
        cls = categories.get(category) if _is_id(category) else None
        bbox = ann.get("bbox")
        if cls is None:
            problems.append(f"{where}: category id {category!r} is not in categories")
            continue
        if (
            not isinstance(bbox, list)
            or len(bbox) != 4
            or not all(
                isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
                for v in bbox
            )
        ):
            problems.append(f"{where}: bbox {bbox!r} is not [x, y, w, h]; left out")
            continue
        if bbox[2] <= 0 or bbox[3] <= 0:
            problems.append(f"{where}: bbox {bbox!r} has no area (w or h not above 0); left out")
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
        areas.append(
            float(area)
            if isinstance(area, int | float) and math.isfinite(area)
            else bbox[2] * bbox[3]
        )
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
    """``file_name`` -> image id from a COCO annotations file (and base name -> id where no
    two images share the base name), for writing results that refer to its images."""
    return read_coco_ids(path)[0]


def read_coco_ids(path: Path) -> tuple[dict[str, int | str], dict[str, int | str]]:
    """A COCO annotations file's image ids (as `coco_image_ids`) and its categories, name ->
    id, for writing results (``detect -f coco --coco-ids``) that refer to both."""
    doc = _read_coco(path)
    ids: dict[str, int | str] = {}
    by_base: dict[str, list[int | str]] = {}
    for entry in doc["images"]:
        if not isinstance(entry, dict) or not _is_id(entry.get("id")):
            continue
        file_name = entry.get("file_name")
        if not isinstance(file_name, str):
            continue
        name = str(PurePosixPath(file_name.replace("\\", "/")))
        ids[name] = entry["id"]
        ids.setdefault(file_name, entry["id"])
        by_base.setdefault(PurePosixPath(name).name, []).append(entry["id"])
    for base, found in by_base.items():
        if len(set(found)) == 1:
            ids.setdefault(base, found[0])
    categories: dict[str, int | str] = {}
    cats = doc.get("categories")
    for cat in cats if isinstance(cats, list) else []:
        if isinstance(cat, dict) and _is_id(cat.get("id")) and isinstance(cat.get("name"), str):
            categories.setdefault(cat["name"], cat["id"])
    return ids, categories


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
    "read_coco_ids",
]
