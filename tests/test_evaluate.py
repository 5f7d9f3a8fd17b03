"""The evaluator against its oracle, pycocotools' COCOeval, on generated data."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import DATA, run_cli
from yolocli.eval.evaluate import Found, Truth, best_f1, box_iou_coco, confusion_matrix, evaluate
from yolocli.io.formats import COCO80_TO_91, coco_names

COCO = pytest.importorskip("pycocotools.coco")
COCOEVAL = pytest.importorskip("pycocotools.cocoeval")

CATEGORIES = [1, 2, 3, 4]  # 4 never has ground truth below; 9 is not a category at all
STATS = ["map", "map50", "map75", "map_small", "map_medium", "map_large"]
STATS_AR = {8: "mar100", 9: "mar_small", 10: "mar_medium", 11: "mar_large"}

# Coarse grids make ties (equal scores, equal IoUs, duplicate boxes) common; sizes span the
# small (< 32²), medium and large (> 96²) buckets.
coord = st.sampled_from([0.0, 10.0, 20.0, 40.0, 80.0, 100.5])
size = st.sampled_from([8.0, 20.0, 31.0, 32.0, 50.0, 96.0, 120.0])
score = st.sampled_from([0.1, 0.3, 0.3, 0.5, 0.9, 0.001])
box = st.tuples(coord, coord, size, size)


@st.composite
def datasets(draw: Any, crowd: bool = False) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(ground-truth annotations, detections) over images 1..5, COCO style."""
    gts: list[dict[str, Any]] = []
    dts: list[dict[str, Any]] = []
    for image in range(1, 6):
        for b in draw(st.lists(st.tuples(box, st.sampled_from([1, 2, 3])), max_size=6)):
            (x, y, w, h), cat = b
            area = draw(st.sampled_from([w * h, w * h, 500.0, 5000.0, 20000.0]))
            is_crowd = draw(st.booleans()) if crowd else False
            gts.append(
                {"image_id": image, "category_id": cat, "bbox": [x, y, w, h], "area": area,
                 "iscrowd": int(is_crowd), "id": len(gts) + 1}
            )  # fmt: skip
        for gt in [g for g in gts if g["image_id"] == image]:
            for _ in range(draw(st.integers(0, 2))):  # duplicates and near misses of real boxes
                x, y, w, h = gt["bbox"]
                dx, dy = draw(st.sampled_from([0.0, 2.0, 5.0])), draw(st.sampled_from([0.0, 7.0]))
                cat = draw(st.sampled_from([gt["category_id"], gt["category_id"], 4, 9]))
                dts.append(
                    {"image_id": image, "category_id": cat, "bbox": [x + dx, y + dy, w, h],
                     "score": draw(score)}
                )  # fmt: skip
        for b in draw(st.lists(st.tuples(box, st.sampled_from([1, 2, 3, 4, 9])), max_size=4)):
            dts.append(
                {"image_id": image, "category_id": b[1], "bbox": list(b[0]), "score": draw(score)}
            )
    return gts, dts


def cocoeval(gts: list[dict[str, Any]], dts: list[dict[str, Any]]) -> Any:
    """pycocotools' stats, its quiet way."""
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO.COCO()
        gt.dataset = {
            "images": [{"id": i, "width": 300, "height": 300} for i in range(1, 6)],
            "annotations": gts,
            "categories": [{"id": c, "name": str(c)} for c in CATEGORIES],
        }
        gt.createIndex()
        dt = gt.loadRes([dict(d) for d in dts])
        ev = COCOEVAL.COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def ours(gts: list[dict[str, Any]], dts: list[dict[str, Any]]) -> Any:
    truths = [
        Truth.of(
            [g["bbox"] for g in gts if g["image_id"] == i],
            [g["category_id"] for g in gts if g["image_id"] == i],
            [g["area"] for g in gts if g["image_id"] == i],
            [g["iscrowd"] for g in gts if g["image_id"] == i],
        )
        for i in range(1, 6)
    ]
    found = [
        Found.of(
            [d["bbox"] for d in dts if d["image_id"] == i],
            [d["score"] for d in dts if d["image_id"] == i],
            [d["category_id"] for d in dts if d["image_id"] == i],
        )
        for i in range(1, 6)
    ]
    return evaluate(truths, found, CATEGORIES)


def check_equal(gts: list[dict[str, Any]], dts: list[dict[str, Any]]) -> None:
    ref = cocoeval(gts, dts)
    got = ours(gts, dts)
    stats = got.stats()
    for i, name in enumerate(STATS):
        assert stats[name] == pytest.approx(ref.stats[i], abs=1e-4), name
    for i, name in STATS_AR.items():
        assert stats[name] == pytest.approx(ref.stats[i], abs=1e-4), name
    # The whole precision table too, not just its means.
    np.testing.assert_allclose(got.precision, ref.eval["precision"][..., 2], atol=1e-12)
    np.testing.assert_allclose(got.recall, ref.eval["recall"][..., 2], atol=1e-12)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(datasets())
def test_equals_pycocotools(data: tuple[list[dict[str, Any]], list[dict[str, Any]]]) -> None:
    gts, dts = data
    if dts:  # pycocotools cannot load an empty results list
        check_equal(gts, dts)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(datasets(crowd=True))
def test_equals_pycocotools_with_crowds(
    data: tuple[list[dict[str, Any]], list[dict[str, Any]]],
) -> None:
    gts, dts = data
    if dts:
        check_equal(gts, dts)


def d(image: int, cat: int, bbox: list[float], s: float) -> dict[str, Any]:
    return {"image_id": image, "category_id": cat, "bbox": bbox, "score": s}


def g(image: int, cat: int, bbox: list[float], crowd: int = 0, n: int = 1) -> dict[str, Any]:
    return {"image_id": image, "category_id": cat, "bbox": bbox, "area": bbox[2] * bbox[3],
            "iscrowd": crowd, "id": n}  # fmt: skip


@pytest.mark.parametrize(
    ("gts", "dts"),
    [
        # IoU exactly 0.5: counts as a match at the 0.5 threshold
        ([g(1, 1, [0, 0, 100, 100])], [d(1, 1, [0, 0, 100, 50], 0.9)]),
        # two detections of one box, equal scores: one true, one false positive
        ([g(1, 1, [0, 0, 50, 50])], [d(1, 1, [0, 0, 50, 50], 0.5), d(1, 1, [1, 0, 50, 50], 0.5)]),
        # equal scores in different images: image order decides
        (
            [g(1, 1, [0, 0, 50, 50]), g(2, 1, [0, 0, 50, 50], n=2)],
            [d(2, 1, [200, 200, 50, 50], 0.5), d(1, 1, [0, 0, 50, 50], 0.5)],
        ),
        # a crowd region swallows several detections without a miss or false positive
        (
            [g(1, 1, [0, 0, 200, 200], crowd=1), g(1, 1, [300, 300, 40, 40], n=2)],
            [
                d(1, 1, [10, 10, 50, 50], 0.9),
                d(1, 1, [60, 60, 50, 50], 0.8),
                d(1, 1, [300, 300, 40, 40], 0.7),
            ],
        ),
        # ground truth only in class 1, detections only in absent class 2 and non-category 9
        ([g(1, 1, [0, 0, 50, 50])], [d(1, 2, [0, 0, 50, 50], 0.9), d(1, 9, [0, 0, 50, 50], 0.9)]),
        # a detection equally close to two boxes takes the later one, as pycocotools does,
        # which leaves the earlier one to the next detection
        (
            [g(1, 1, [0, 0, 10, 10]), g(1, 1, [2, 0, 10, 10], n=2)],
            [d(1, 1, [1, 0, 10, 10], 0.9), d(1, 1, [-1, 0, 10, 10], 0.8)],
        ),
        # an image with nothing at all beside one with everything
        ([g(3, 3, [5, 5, 10, 10])], [d(3, 3, [5, 5, 10, 10], 1.0)]),
    ],
)
def test_edge_cases_equal_pycocotools(gts: list[dict[str, Any]], dts: list[dict[str, Any]]) -> None:
    check_equal(gts, dts)


def test_box_iou_matches_definition() -> None:
    a = np.array([[0.0, 0.0, 10.0, 10.0]])
    b = np.array([[5.0, 0.0, 10.0, 10.0], [20.0, 20.0, 5.0, 5.0], [0.0, 0.0, 20.0, 20.0]])
    iou = box_iou_coco(a, b, np.array([False, False, True]))
    np.testing.assert_allclose(iou, [[50 / 150, 0.0, 100 / 100]])
    assert box_iou_coco(np.zeros((0, 4)), b, np.zeros(3, bool)).shape == (0, 3)


@pytest.mark.parametrize(
    ("scores", "hits", "n", "expected"),
    [
        ([0.9, 0.8, 0.7], [True, True, False], 2, (1.0, 1.0, 0.8)),
        # a cut never splits a tie: 0.5 and 0.5 go together
        ([0.9, 0.5, 0.5], [True, False, True], 2, (2 / 3, 1.0, 0.5)),
        ([], [], 3, (0.0, 0.0, None)),
    ],
)
def test_best_f1(
    scores: list[float], hits: list[bool], n: int, expected: tuple[float, float, float | None]
) -> None:
    assert best_f1(np.array(scores), np.array(hits, bool), n) == pytest.approx(expected)


def test_confusion_matrix_counts_swaps_misses_and_false_alarms() -> None:
    truth = Truth.of([[0, 0, 50, 50], [100, 100, 50, 50], [200, 0, 30, 30]], [1, 2, 2])
    found = Found.of(
        [[0, 0, 50, 50], [100, 100, 50, 50], [0, 200, 40, 40], [200, 0, 30, 30]],
        [0.9, 0.8, 0.7, 0.1],  # the last one is below the matrix's score threshold
        [1, 1, 2, 2],
    )
    m = confusion_matrix([truth], [found], [1, 2])
    # rows: truth 1, truth 2, none; columns: found 1, found 2, none
    assert m.tolist() == [[1, 0, 0], [1, 0, 1], [0, 1, 0]]


def test_no_ground_truth_anywhere_gives_minus_one() -> None:
    result = evaluate([Truth.of([], [])], [Found.of([[0, 0, 5, 5]], [0.5], [1])], [1])
    assert result.map == -1.0
    assert result.per_class[0].ap is None


# -- yolocli val, end to end ------------------------------------------------------------------

REFERENCE = DATA / "reference"


def reference_truth() -> list[tuple[Path, int, int, list[tuple[int, list[float]]]]]:
    """(image, width, height, [(class id, [x1, y1, x2, y2] clipped)]) from the reference
    darknet output: ground truth a model should find."""
    items = []
    for ref in sorted(REFERENCE.glob("*.json")):
        doc = json.loads(ref.read_text())
        image = DATA / "images" / doc["image"]
        h, w = cv2.imread(str(image)).shape[:2]
        boxes = []
        for det in doc["detections"]:
            x1, y1, x2, y2 = det["box_xyxy"]
            boxes.append((det["class_id"], [max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)]))
        items.append((image, w, h, boxes))
    return items


def coco_dataset(root: Path, prefix: str = "images/") -> Path:
    """The test photos as a COCO dataset: COCO's category ids and names (not darknet's); file
    names ``prefix`` + name, relative to the JSON's folder."""
    coco_spelling = {
        "motorbike": "motorcycle", "aeroplane": "airplane", "sofa": "couch",
        "pottedplant": "potted plant", "diningtable": "dining table", "tvmonitor": "tv",
    }  # fmt: skip
    images, annotations = [], []
    (root / "images").mkdir(parents=True)
    for n, (image, w, h, boxes) in enumerate(reference_truth(), 1):
        shutil.copy(image, root / "images" / image.name)
        images.append({"id": n * 10, "file_name": prefix + image.name, "width": w, "height": h})
        for cls, (x1, y1, x2, y2) in boxes:
            annotations.append(
                {"id": len(annotations) + 1, "image_id": n * 10,
                 "category_id": COCO80_TO_91[cls], "bbox": [x1, y1, x2 - x1, y2 - y1],
                 "area": (x2 - x1) * (y2 - y1), "iscrowd": 0}
            )  # fmt: skip
    categories = [
        {"id": cid, "name": coco_spelling.get(name, name)}
        for cid, name in zip(COCO80_TO_91, coco_names(), strict=True)
    ]
    path = root / "instances.json"
    doc = {"images": images, "annotations": annotations, "categories": categories}
    path.write_text(json.dumps(doc))
    return path


def yolo_dataset(root: Path) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for image, w, h, boxes in reference_truth():
        shutil.copy(image, root / "images" / image.name)
        lines = [
            f"{cls} {(x1 + x2) / 2 / w} {(y1 + y2) / 2 / h} {(x2 - x1) / w} {(y2 - y1) / h}"
            for cls, (x1, y1, x2, y2) in boxes
        ]
        if lines:  # an image without objects has no label file
            (root / "labels" / f"{image.stem}.txt").write_text("\n".join(lines) + "\n")
    return root


def test_val_equals_pycocotools_on_the_same_detections(
    tmp_path: Path, use_real_store: Path
) -> None:
    gt_path = coco_dataset(tmp_path / "coco")
    result = run_cli("val", str(gt_path), "-m", "yolov3-tiny", "-f", "json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    detect = run_cli(
        "detect", str(tmp_path / "coco" / "images"), "-m", "yolov3-tiny", "--conf", "0.001",
        "--nms", "0.6", "--no-save", "-f", "coco", "--coco-ids", str(gt_path),
    )  # fmt: skip
    assert detect.exit_code == 0, detect.stderr
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO.COCO(str(gt_path))
        ev = COCOEVAL.COCOeval(gt, gt.loadRes(json.loads(detect.stdout)), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    for i, name in enumerate(STATS):
        expected = None if ev.stats[i] == -1 else ev.stats[i]
        assert doc[name] == pytest.approx(expected, abs=1e-4), name
    assert 0.5 < doc["map50"] <= 1  # the detections are the reference's: a good score
    assert doc["images"] == 6
    by_name = {c["name"]: c for c in doc["classes"]}
    assert by_name["motorbike"]["category_id"] == 4  # COCO's "motorcycle", matched by name
    assert by_name["motorbike"]["boxes"] == 3


def test_val_on_a_yolo_folder_reports_bad_labels_and_writes_plots(
    tmp_path: Path, use_real_store: Path
) -> None:
    pytest.importorskip("matplotlib")
    root = yolo_dataset(tmp_path / "data")
    label = root / "labels" / "coffee.txt"
    good = label.read_text()
    label.write_text(good + "0 0.5 0.5 0.2\n99 0.5 0.5 0.1 0.1\n0 1.5 1.5 0.1 0.1\n")
    plots = tmp_path / "plots"
    result = run_cli("val", str(root), "-m", "yolov3-tiny", "--plots", str(plots))
    assert result.exit_code == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    n = len(good.splitlines())
    assert warnings == [
        f"yolocli: warning: {label}:{n + 1}: expected 5 fields (class cx cy w h), got 4; "
        "line skipped",
        f"yolocli: warning: {label}:{n + 2}: class id 99 is out of range: the model has 80 "
        "classes (0-79); line skipped",
        f"yolocli: warning: {label}:{n + 3}: box [1.45, 1.45, 0.1, 0.1] lies outside the "
        "image; left out",
    ]
    out = result.stdout.splitlines()
    assert out[0] == f"yolov3-tiny on {root}: 6 images, 12 boxes"
    assert out[1].startswith("mAP@0.5:0.95 0.9")
    rows = {line.split()[0]: line.split() for line in out[4:] if line and line[0] != "("}
    assert rows["person"][1] == "2"  # boxes
    assert float(rows["all"][3]) > 0.9  # mAP@0.5 on the reference's own detections
    assert (plots / "pr_curve.png").stat().st_size > 1000
    assert (plots / "confusion_matrix.png").stat().st_size > 1000
    assert (plots / "pr_curves" / "person.png").is_file()


def test_val_goes_on_without_a_missing_image(tmp_path: Path, use_real_store: Path) -> None:
    gt_path = coco_dataset(tmp_path / "coco", prefix="")
    (tmp_path / "coco" / "images" / "rocket.jpg").unlink()
    result = run_cli(
        "val", str(gt_path), "--images", str(tmp_path / "coco" / "images"), "-m", "yolov3-tiny",
        "-f", "json",
    )  # fmt: skip
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if "rocket" in line]
    assert len(lines) == 1
    assert "image 60 (rocket.jpg): no such file" in lines[0]
    assert json.loads(result.stdout)["images"] == 5


def test_val_plots_without_matplotlib_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    root = yolo_dataset(tmp_path / "data")
    result = run_cli("val", str(root), "--plots", str(tmp_path / "plots"))
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "yolocli: error: plots need matplotlib, which is not installed: "
        "pip install 'yolocli[plots]'"
    ]


# -- the dataset layouts of other tools ----------------------------------------------------------

COCO_SPELLING = {
    "motorbike": "motorcycle", "aeroplane": "airplane", "sofa": "couch",
    "pottedplant": "potted plant", "diningtable": "dining table", "tvmonitor": "tv",
}  # fmt: skip


def yolo_lines(boxes: list[tuple[int, list[float]]], w: int, h: int, ids: dict[int, int]) -> str:
    return "".join(
        f"{ids[cls]} {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} {(x2 - x1) / w:.6f} "
        f"{(y2 - y1) / h:.6f}\n"
        for cls, (x1, y1, x2, y2) in boxes
    )


def ultralytics_dataset(root: Path) -> Path:
    """As Ultralytics' own coco8.yaml lays a dataset out: ``path`` (relative), ``val:
    images/val``, labels in ``labels/val``, ``names`` a mapping with COCO's spellings."""
    names = [COCO_SPELLING.get(n, n) for n in coco_names()]
    (root / "coco8" / "images" / "val").mkdir(parents=True)
    (root / "coco8" / "labels" / "val").mkdir(parents=True)
    for image, w, h, boxes in reference_truth():
        shutil.copy(image, root / "coco8" / "images" / "val" / image.name)
        if boxes:
            label = root / "coco8" / "labels" / "val" / f"{image.stem}.txt"
            label.write_text(yolo_lines(boxes, w, h, {i: i for i in range(80)}))
    lines = ["path: coco8  # dataset root dir", "train: images/train", "val: images/val",
             "test:  # optional", "", "names:"]  # fmt: skip
    lines += [f"  {i}: {name}" for i, name in enumerate(names)]
    path = root / "coco8.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def darknet_dataset(root: Path) -> tuple[Path, list[str]]:
    """As AlexeyAB darknet's README lays out a custom dataset: ``data/obj.data`` with
    ``valid = data/test.txt`` listing ``data/obj/x.jpg`` (relative to darknet's folder, the
    parent of ``data/``), labels ``data/obj/x.txt`` beside the images, and ``obj.names`` with
    only this dataset's classes, numbered its own way."""
    truth = reference_truth()
    present = sorted({cls for *_, boxes in truth for cls, _ in boxes}, reverse=True)
    ids = {cls: i for i, cls in enumerate(present)}
    names = [coco_names()[cls] for cls in present]
    obj = root / "data" / "obj"
    obj.mkdir(parents=True)
    listed = []
    for image, w, h, boxes in truth:
        shutil.copy(image, obj / image.name)
        (obj / f"{image.stem}.txt").write_text(yolo_lines(boxes, w, h, ids))
        listed.append(f"data/obj/{image.name}\n")
    (root / "data" / "test.txt").write_text("".join(listed))
    (root / "data" / "obj.names").write_text("".join(f"{n}\n" for n in names))
    path = root / "data" / "obj.data"
    path.write_text(
        f"classes = {len(names)}\ntrain  = data/train.txt\nvalid  = data/test.txt\n"
        "names = data/obj.names\nbackup = backup/\n"
    )
    return path, names


def test_val_reads_ultralytics_and_darknet_datasets_as_the_yolo_folder(
    tmp_path: Path, use_real_store: Path
) -> None:
    root = yolo_dataset(tmp_path / "yolo")
    expected = json.loads(run_cli("val", str(root), "-m", "yolov3-tiny", "-f", "json").stdout)
    assert expected["images"] == 6

    yaml_path = ultralytics_dataset(tmp_path / "ultra")
    result = run_cli("val", str(yaml_path), "-m", "yolov3-tiny", "-f", "json")
    assert result.exit_code == 0, result.stderr
    assert "warning" not in result.stderr  # COCO's spellings are darknet's classes
    got = json.loads(result.stdout)
    for key in ("images", "boxes", *STATS):
        assert got[key] == expected[key], key

    data_path, names = darknet_dataset(tmp_path / "darknet")
    result = run_cli("val", str(data_path), "-m", "yolov3-tiny", "-f", "json")
    assert result.exit_code == 0, result.stderr
    got = json.loads(result.stdout)
    for key in ("images", "boxes", *STATS):
        assert got[key] == expected[key], key
    assert sorted(c["name"] for c in got["classes"]) == sorted(names)


def labelstudio_coco_dataset(root: Path) -> Path:
    """The test photos as a labelling tool's COCO export numbers them: only the labelled
    classes, capitalized names in the labelling config's (here alphabetical) order, category
    and image ids from 0; the file names under ``images/``. Annotation ids start at 1:
    pycocotools takes a match to annotation id 0 for no match (see the test below)."""
    truth = reference_truth()
    present = sorted({coco_names()[c] for *_, boxes in truth for c, _ in boxes})
    category = {name: i for i, name in enumerate(present)}
    images, annotations = [], []
    (root / "images").mkdir(parents=True)
    for n, (image, w, h, boxes) in enumerate(truth):
        shutil.copy(image, root / "images" / image.name)
        images.append({"width": w, "height": h, "id": n, "file_name": f"images/{image.name}"})
        for cls, (x1, y1, x2, y2) in boxes:
            annotations.append(
                {"id": len(annotations) + 1, "image_id": n,
                 "category_id": category[coco_names()[cls]], "segmentation": [],
                 "bbox": [x1, y1, x2 - x1, y2 - y1], "ignore": 0, "iscrowd": 0,
                 "area": (x2 - x1) * (y2 - y1)}
            )  # fmt: skip
    categories = [{"id": i, "name": COCO_SPELLING.get(n, n).title()} for n, i in category.items()]
    doc = {"images": images, "categories": categories, "annotations": annotations,
           "info": {"year": 2026, "version": "1.0", "description": "", "contributor":
                    "Label Studio", "url": "", "date_created": ""}}  # fmt: skip
    path = root / "result.json"
    path.write_text(json.dumps(doc))
    return path


def test_detect_coco_with_custom_category_ids_scores_as_val_in_pycocotools(
    tmp_path: Path, use_real_store: Path
) -> None:
    gt_path = labelstudio_coco_dataset(tmp_path / "ls")
    result = run_cli("val", str(gt_path), "-m", "yolov3-tiny", "-f", "json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    detect = run_cli(
        "detect", str(tmp_path / "ls" / "images"), "-m", "yolov3-tiny", "--conf", "0.001",
        "--nms", "0.6", "--no-save", "-f", "coco", "--coco-ids", str(gt_path),
    )  # fmt: skip
    assert detect.exit_code == 0, detect.stderr
    # the classes the JSON has no category for are named, once
    notes = [line for line in detect.stderr.splitlines() if "no category" in line]
    assert len(notes) == 1
    assert "person" not in notes[0]
    assert "toothbrush" in notes[0]
    results = json.loads(detect.stdout)
    assert {r["category_id"] for r in results} <= {c["id"] for c in json.loads(
        gt_path.read_text())["categories"]}  # fmt: skip
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO.COCO(str(gt_path))
        ev = COCOEVAL.COCOeval(gt, gt.loadRes(results), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    for i, name in enumerate(STATS):
        expected = None if ev.stats[i] == -1 else ev.stats[i]
        assert doc[name] == pytest.approx(expected, abs=1e-4), name
    assert doc["map50"] > 0.9


def test_val_warns_that_pycocotools_mis_scores_annotation_id_0(tmp_path: Path) -> None:
    from yolocli.eval.datasets import load

    gt_path = labelstudio_coco_dataset(tmp_path / "ls")
    doc = json.loads(gt_path.read_text())
    for ann in doc["annotations"]:
        ann["id"] -= 1
    gt_path.write_text(json.dumps(doc))
    problems = load(gt_path, coco_names()).problems
    assert len(problems) == 1
    assert "annotation id 0" in problems[0]
    assert "pycocotools" in problems[0]
