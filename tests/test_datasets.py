"""Reading labelled data: YOLO-layout folders and COCO JSON, bad entries one line each."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from yolocli.eval.datasets import (
    DatasetError,
    clip_box,
    coco_image_ids,
    load,
    name_key,
    parse_label_line,
)
from yolocli.io.formats import coco_names

IMAGES = Path(__file__).parent / "data" / "images"
NAMES = ["person", "bicycle", "car"]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("0 0.5 0.5 0.2 0.4", (0, [0.4, 0.3, 0.2, 0.4], None)),
        ("2 0.5 0.5 1.0 1.0", (2, [0.0, 0.0, 1.0, 1.0], None)),
        ("0 0.5 0.5 0.2", "expected 5 fields (class cx cy w h), got 4"),
        ("0 0.5 0.5 0.2 0.4 0.9", "expected 5 fields (class cx cy w h), got 6"),
        ("3 0.5 0.5 0.2 0.4", "class id 3 is out of range: the model has 3 classes (0-2)"),
        ("-1 0.5 0.5 0.2 0.4", "class id -1 is out of range: the model has 3 classes (0-2)"),
        ("car 0.5 0.5 0.2 0.4", "class id 'car' is not a whole number"),
        ("0 0.5 x 0.2 0.4", "box '0.5 x 0.2 0.4' is not four numbers"),
        ("0 0.5 0.5 0 0.4", "box 0.5 0.5 0 0.4 has no area"),
        ("0 0.5 0.5 nan 0.4", "box 0.5 0.5 nan 0.4 has no area"),
        # reaching past an edge: clipped, with a note
        ("1 0.9 0.5 0.4 0.2", (1, [0.7, 0.4, 0.3, 0.2], "reaches outside the image; clipped")),
        # entirely outside: left out, with a note
        ("1 1.5 0.5 0.2 0.2", (1, None, "lies outside the image; left out")),
        # a segmentation line (Ultralytics' -seg labels): the box around its polygon
        ("1 0.2 0.3 0.6 0.3 0.4 0.7", (1, [0.2, 0.3, 0.4, 0.4], None)),
        ("1 0.2 0.3 0.6 0.3 0.4", "expected 5 fields (class cx cy w h), got 6"),
        ("1 0.2 0.3 0.6 x 0.4 0.7", "polygon '0.2 0.3 0.6 x 0.4 0.7' is not numbers"),
        # float noise past the edge is no problem and changes nothing
        ("0 0.5 0.5 1.0002 1.0", (0, [-0.0001, 0.0, 1.0002, 1.0], None)),
    ],
)
def test_label_lines(line: str, expected: Any) -> None:
    got = parse_label_line(line.split(), len(NAMES))
    if isinstance(expected, str):
        assert got == expected
        return
    assert not isinstance(got, str)
    cls, box, note = got
    assert cls == expected[0]
    if expected[1] is None:
        assert box is None
    else:
        assert box == pytest.approx(expected[1])
    if expected[2] is None:
        assert note is None
    else:
        assert note is not None
        assert expected[2] in note


def test_clip_box_in_pixels() -> None:
    assert clip_box([10, 10, 20, 20], 100, 100, 1.0) == ([10, 10, 20, 20], None)
    box, note = clip_box([90, -5, 20, 20], 100, 100, 1.0)
    assert box == [90, 0, 10, 15]
    assert note is not None
    assert "[90, -5, 20, 20]" in note


def yolo_folder(root: Path, labels: dict[str, str]) -> Path:
    (root / "images" / "sub").mkdir(parents=True)
    (root / "labels" / "sub").mkdir(parents=True)
    shutil.copy(IMAGES / "chelsea.png", root / "images" / "a.png")
    shutil.copy(IMAGES / "coffee.png", root / "images" / "sub" / "b.png")
    shutil.copy(IMAGES / "rocket.jpg", root / "images" / "c.jpg")  # no label file: no objects
    for rel, text in labels.items():
        (root / "labels" / rel).write_text(text)
    return root


def test_yolo_folder_reports_each_bad_line_and_keeps_the_rest(tmp_path: Path) -> None:
    root = yolo_folder(
        tmp_path,
        {
            "a.txt": "0 0.5 0.5 0.2 0.4\n0 0.5 0.5 0.2\n\n7 0.5 0.5 0.1 0.1\n1 0.9 0.5 0.4 0.2\n",
            "sub/b.txt": "2 0.25 0.25 0.5 0.5\n",
        },
    )
    data = load(root, NAMES)
    assert [i.path.name for i in data.images] == ["a.png", "c.jpg", "b.png"]  # files, then folders
    assert [i.image_id for i in data.images] == [1, 2, 3]
    a, c, b = data.images
    assert a.classes.tolist() == [0, 1]
    assert b.classes.tolist() == [2]
    assert len(c.classes) == 0
    label = root / "labels" / "a.txt"
    assert data.problems == [
        f"{label}:2: expected 5 fields (class cx cy w h), got 4; line skipped",
        f"{label}:4: class id 7 is out of range: the model has 3 classes (0-2); line skipped",
        f"{label}:5: box [0.7, 0.4, 0.4, 0.2] reaches outside the image; clipped to it",
    ]
    truth = b.truth(600, 400)  # normalized to pixels once the size is known
    np.testing.assert_allclose(truth.boxes, [[0, 0, 300, 200]])
    np.testing.assert_allclose(truth.areas, [300 * 200])  # YOLO labels: areas are w*h


@pytest.mark.parametrize("make", ["nothing", "no images folder", "empty images folder"])
def test_not_a_dataset_is_one_error(tmp_path: Path, make: str) -> None:
    target = tmp_path / "data"
    if make != "nothing":
        target.mkdir()
    if make == "empty images folder":
        (target / "images").mkdir()
    with pytest.raises(DatasetError, match="data"):
        load(target, NAMES)


def coco_file(tmp_path: Path, doc: dict[str, Any]) -> Path:
    shutil.copy(IMAGES / "chelsea.png", tmp_path / "chelsea.png")
    shutil.copy(IMAGES / "coffee.png", tmp_path / "coffee.png")
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(doc))
    return path


COCO_DOC: dict[str, Any] = {
    "images": [
        {"id": 7, "file_name": "coffee.png", "width": 600, "height": 400},
        {"id": 3, "file_name": "chelsea.png", "width": 451, "height": 300},
        {"id": 5, "file_name": "gone.png", "width": 100, "height": 100},
    ],
    "categories": [
        {"id": 1, "name": "person"},
        {"id": 4, "name": "motorcycle"},  # darknet's "motorbike"
        {"id": 99, "name": "unicorn"},
    ],
    "annotations": [
        {"id": 1, "image_id": 7, "category_id": 1, "bbox": [10, 20, 30, 40], "area": 900,
         "iscrowd": 0},
        {"id": 2, "image_id": 7, "category_id": 4, "bbox": [0, 0, 600, 400], "area": 5,
         "iscrowd": 1},
        {"id": 3, "image_id": 3, "category_id": 99, "bbox": [1, 1, 10, 10]},
        {"id": 4, "image_id": 3, "category_id": 1, "bbox": [440, 0, 20, 10]},
        {"id": 5, "image_id": 3, "category_id": 12, "bbox": [1, 1, 10, 10]},
        {"id": 6, "image_id": 3, "category_id": 1, "bbox": [1, 1, 10]},
        {"id": 7, "image_id": 5, "category_id": 1, "bbox": [1, 1, 10, 10]},
    ],
}  # fmt: skip


def test_coco_json(tmp_path: Path) -> None:
    path = coco_file(tmp_path, COCO_DOC)
    data = load(path, coco_names())
    assert [i.image_id for i in data.images] == [3, 7]  # sorted by id, as pycocotools does
    chelsea, coffee = data.images
    motorbike = coco_names().index("motorbike")
    assert data.category_ids == {0: 1, motorbike: 4, 80: 99}
    assert data.classes == [0, motorbike, 80]
    assert data.names[80] == "unicorn"  # unknown to the model, still counted: all missed
    assert coffee.classes.tolist() == [0, motorbike]
    assert coffee.areas is not None
    assert coffee.areas.tolist() == [900, 5]  # the area field, not w*h
    assert coffee.crowd is not None
    assert coffee.crowd.tolist() == [False, True]
    assert chelsea.classes.tolist() == [80, 0]
    np.testing.assert_allclose(chelsea.boxes, [[1, 1, 10, 10], [440, 0, 11, 10]])  # clipped
    assert chelsea.areas is not None
    assert chelsea.areas.tolist() == [100, 110]  # no area field: w*h
    problems = "\n".join(data.problems)
    assert len(data.problems) == 4, problems
    assert "category 'unicorn' (id 99) is not a class of this model" in problems
    assert len(data.missing) == 1
    assert "image 5 (gone.png): no such file" in data.missing[0]
    assert "annotations[3] (image 3): box [440, 0, 20, 10] reaches outside" in problems
    assert "annotations[4] (image 3): category id 12 is not in categories" in problems
    assert "annotations[5] (image 3): bbox [1, 1, 10] is not [x, y, w, h]" in problems


def test_coco_images_folder(tmp_path: Path) -> None:
    path = coco_file(tmp_path, COCO_DOC)
    elsewhere = tmp_path / "pictures"
    elsewhere.mkdir()
    shutil.move(tmp_path / "coffee.png", elsewhere / "coffee.png")
    data = load(path, coco_names(), images_dir=elsewhere)
    assert [i.path for i in data.images] == [elsewhere / "coffee.png"]


@pytest.mark.parametrize(
    ("text", "message"),
    [("{", "not JSON"), ("[]", "not a COCO annotations file"), ('{"x": 1}', 'no "images"')],
)
def test_bad_coco_file_is_one_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "a.json"
    path.write_text(text)
    with pytest.raises(DatasetError, match=message):
        load(path, NAMES)
    with pytest.raises(DatasetError, match=message):
        coco_image_ids(path)


def test_coco_image_ids_by_name_and_base_name(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text(json.dumps({"images": [{"id": 9, "file_name": "val/x.jpg"}]}))
    assert coco_image_ids(path) == {"val/x.jpg": 9, "x.jpg": 9}


@pytest.mark.parametrize(
    ("coco", "darknet"),
    [("motorcycle", "motorbike"), ("dining table", "diningtable"), ("TV", "tvmonitor"),
     ("potted plant", "pottedplant"), ("couch", "sofa"), ("airplane", "aeroplane")],
)  # fmt: skip
def test_coco_names_match_darknet_spellings(coco: str, darknet: str) -> None:
    assert name_key(coco) == name_key(darknet)


# -- hostile or broken COCO files ----------------------------------------------------------------


def test_coco_file_names_cannot_leave_the_images_folder(tmp_path: Path) -> None:
    outside = tmp_path / "secret.png"
    shutil.copy(IMAGES / "chelsea.png", outside)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    doc = {
        "images": [
            {"id": 1, "file_name": "coffee.png"},
            {"id": 2, "file_name": "../secret.png"},
            {"id": 3, "file_name": str(outside)},
            {"id": 4, "file_name": "/proc/self/environ"},
            {"id": 5, "file_name": "sub/../../secret.png"},
        ],
        "categories": [{"id": 1, "name": "person"}],
        "annotations": [],
    }
    path = coco_file(data_dir, doc)
    data = load(path, NAMES)
    assert [i.image_id for i in data.images] == [1]
    assert len(data.missing) == 4
    assert all("refused" in line for line in data.missing)
    # --images confines the same way
    data = load(path, NAMES, images_dir=data_dir)
    assert [i.path for i in data.images] == [data_dir / "coffee.png"]


def test_duplicate_image_ids_are_reported_not_merged(tmp_path: Path) -> None:
    doc = {
        "images": [
            {"id": 1, "file_name": "coffee.png"},
            {"id": 1, "file_name": "chelsea.png"},
            {"id": 2, "file_name": "coffee.png"},
            {"id": 2, "file_name": "coffee.png"},  # the same entry twice: harmless, used once
        ],
        "categories": [{"id": 1, "name": "person"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5]}],
    }
    data = load(coco_file(tmp_path, doc), NAMES)
    assert [i.image_id for i in data.images] == [2]
    assert len(data.missing) == 1
    assert "image id 1 is listed 2 times, for chelsea.png, coffee.png" in data.missing[0]
    assert any("image id 2 (coffee.png) is listed 2 times; used once" in p for p in data.problems)


def test_negative_or_empty_boxes_are_left_out_without_an_image_size(tmp_path: Path) -> None:
    doc = {
        "images": [{"id": 1, "file_name": "coffee.png"}],  # no width or height
        "categories": [{"id": 1, "name": "person"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [50, 50, -20, 10]},
            {"id": 2, "image_id": 1, "category_id": 1, "bbox": [50, 50, 20, 0]},
            {"id": 3, "image_id": 1, "category_id": 1, "bbox": [50, 50, 20, 10]},
        ],
    }
    data = load(coco_file(tmp_path, doc), NAMES)
    np.testing.assert_allclose(data.images[0].boxes, [[50, 50, 20, 10]])
    assert sum("has no area" in p for p in data.problems) == 2


@pytest.mark.parametrize("bad", [[1], {"a": 1}, None, True, 1.5])
def test_ids_of_the_wrong_type_are_reported(tmp_path: Path, bad: Any) -> None:
    doc = {
        "images": [{"id": bad, "file_name": "chelsea.png"}, {"id": 1, "file_name": "coffee.png"}],
        "categories": [{"id": bad, "name": "car"}, {"id": 1, "name": "person"}],
        "annotations": [
            {"id": 1, "image_id": bad, "category_id": 1, "bbox": [1, 1, 5, 5]},
            {"id": 2, "image_id": 1, "category_id": bad, "bbox": [1, 1, 5, 5]},
            {"id": 3, "image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5]},
        ],
    }
    data = load(coco_file(tmp_path, doc), NAMES)
    assert [i.image_id for i in data.images] == [1]
    assert data.images[0].classes.tolist() == [0]
    problems = "\n".join(data.problems)
    assert "is not a number" in problems
    assert "category id" in problems


def test_an_unreadable_label_file_leaves_its_image_out(tmp_path: Path) -> None:
    root = yolo_folder(tmp_path, {"a.txt": "0 0.5 0.5 0.2 0.4\n"})
    (root / "labels" / "sub" / "b.txt").write_bytes(b"2 0.25 0.25 0.5 0.5 \xff\n")
    data = load(root, NAMES)
    assert [i.path.name for i in data.images] == ["a.png", "c.jpg"]  # not b.png, scored empty
    assert len(data.missing) == 1
    assert "b.png" in data.missing[0]
    assert "not UTF-8" in data.missing[0]
    assert "left out of the evaluation" in data.missing[0]


def test_a_label_file_without_an_image_is_reported(tmp_path: Path) -> None:
    root = yolo_folder(tmp_path, {"a.txt": "0 0.5 0.5 0.2 0.4\n", "gone.txt": "1 .5 .5 .1 .1\n"})
    (root / "labels" / "classes.txt").write_text("person\nbicycle\ncar\n")  # LabelImg's list
    data = load(root, NAMES)
    assert data.problems == [f"{root / 'labels' / 'gone.txt'}: a label file with no image; "
                             "not evaluated"]  # fmt: skip


def test_a_coco_file_far_from_its_images_says_to_use_images_once(tmp_path: Path) -> None:
    doc = {"images": [{"id": i, "file_name": f"{i:012d}.jpg"} for i in range(500)]}
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(DatasetError, match=r"none of its 500 images .* --images DIR"):
        load(path, NAMES)
    with pytest.raises(DatasetError, match=r"in --images"):
        load(path, NAMES, images_dir=tmp_path)


def test_many_missing_images_are_counted_not_listed(tmp_path: Path) -> None:
    doc = {"images": [{"id": i, "file_name": f"{i}.jpg"} for i in range(50)]}
    doc["images"].append({"id": 99, "file_name": "coffee.png"})
    data = load(coco_file(tmp_path, doc), NAMES)
    assert len(data.images) == 1
    assert len(data.missing) == 11
    assert data.missing[-1] == "... and 40 more images not found"


def test_ultralytics_yaml_with_a_list_file_and_its_own_class_names(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    (root / "images" / "val").mkdir(parents=True)
    (root / "labels" / "val").mkdir(parents=True)
    shutil.copy(IMAGES / "chelsea.png", root / "images" / "val" / "a.png")
    shutil.copy(IMAGES / "coffee.png", root / "images" / "val" / "b.png")
    (root / "labels" / "val" / "a.txt").write_text("1 0.5 0.5 0.2 0.2\n0 0.5 0.5 0.4 0.4\n")
    (root / "labels" / "val" / "zombie.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (root / "val.txt").write_text("./images/val/a.png\n./images/val/b.png\n")
    # no `path`: the yaml's folder; names as a list, in the dataset's own order
    (root / "data.yaml").write_text("val: val.txt\nnames: ['Car', 'Straßenauto']\n")
    data = load(root, NAMES)  # a folder with a data.yaml: the yaml describes it
    assert [i.path.name for i in data.images] == ["a.png", "b.png"]
    a, b = data.images
    assert a.classes.tolist() == [3, 2]  # Straßenauto: past the model's; Car: class 2 "car"
    assert data.names[3] == "Straßenauto"
    assert data.classes == [2, 3]
    assert len(b.classes) == 0
    problems = "\n".join(data.problems)
    assert "class 'Straßenauto' (id 1) is not a class of this model" in problems
    assert "zombie.txt: a label file with no image" in problems


def test_bad_ultralytics_yaml_is_one_error(tmp_path: Path) -> None:
    path = tmp_path / "data.yaml"
    path.write_text("train: images/train\n")
    with pytest.raises(DatasetError, match="no 'val' entry"):
        load(path, NAMES)
    path.write_text("val: images/nowhere\n")
    with pytest.raises(DatasetError, match="no such folder or file"):
        load(path, NAMES)


def test_darknet_data_file_missing_list_names_where_it_looked(tmp_path: Path) -> None:
    path = tmp_path / "obj.data"
    path.write_text("classes = 1\nvalid = data/valid.txt\n")
    with pytest.raises(DatasetError, match=r"valid=data/valid.txt: no such file \(looked at"):
        load(path, NAMES)
