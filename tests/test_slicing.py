"""Sliced inference with the real yolov3-tiny on pictures built from the test photos."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import DATA, run_cli
from yolocli.detections import Detections
from yolocli.detector import Detector
from yolocli.errors import OptionError
from yolocli.ops import box_ios, box_iou
from yolocli.run.signals import Signals
from yolocli.slicing import Slicer

GRAY = 114


def photo(name: str) -> np.ndarray:
    image = cv2.imread(str(DATA / "images" / name))
    assert image is not None
    return image


def shrink(image: np.ndarray, side: int) -> tuple[np.ndarray, float]:
    """``image`` with its longer side ``side`` pixels, and the factor."""
    f = side / max(image.shape[:2])
    size = (round(image.shape[1] * f), round(image.shape[0] * f))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), f


def same(a: Detections, b: Detections) -> None:
    np.testing.assert_array_equal(a.xyxy, b.xyxy)
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_array_equal(a.class_ids, b.class_ids)


# -- settings and windows (no network) -------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "option"),
    [
        ({"size": 16}, "slice"),
        ({"size": (416, 0)}, "slice"),
        ({"overlap": 1.0}, "overlap"),
        ({"overlap": -0.1}, "overlap"),
        ({"scales": ()}, "scales"),
        ({"scales": (1.0, 2.0)}, "scales"),
        ({"scales": (0.0,)}, "scales"),
        ({"merge": "wbf"}, "merge"),
        ({"match": "giou"}, "match"),
        ({"threshold": 1.5}, "threshold"),
        ({"edge": -1}, "edge"),
        ({"batch": 0}, "batch"),
    ],
)
def test_bad_settings_name_their_option(kwargs: dict[str, object], option: str) -> None:
    settings = {"size": 416, **kwargs}
    with pytest.raises(OptionError) as err:
        Slicer(**settings)  # type: ignore[arg-type]
    assert err.value.option == option


@pytest.mark.parametrize(
    ("slicer", "size", "passes"),
    [
        # no larger than a tile: the image, once, whatever else is asked
        (Slicer(416), (400, 300), [(1.0, [0, 0, 400, 300])]),
        (Slicer(416, full=False, scales=(1.0, 0.5)), (416, 416), [(1.0, [0, 0, 416, 416])]),
        # two tiles, then the whole image
        (
            Slicer(416),
            (700, 416),
            [(1.0, [0, 0, 416, 416]), (1.0, [284, 0, 700, 416]), (1.0, [0, 0, 700, 416])],
        ),
        (Slicer(416, full=False), (700, 416), [(1.0, [0, 0, 416, 416]), (1.0, [284, 0, 700, 416])]),
        # a scale whose copy fits in a tile is the whole-image pass (once, with full)
        (
            Slicer(416, scales=(1.0, 0.5)),
            (700, 416),
            [(1.0, [0, 0, 416, 416]), (1.0, [284, 0, 700, 416]), (1.0, [0, 0, 700, 416])],
        ),
        (
            Slicer(300, full=False, scales=(0.5, 0.25)),
            (1000, 400),
            [(0.5, [0, 0, 300, 200]), (0.5, [200, 0, 500, 200]), (1.0, [0, 0, 1000, 400])],
        ),
    ],
)
def test_windows(
    slicer: Slicer, size: tuple[int, int], passes: list[tuple[float, list[int]]]
) -> None:
    win = slicer.windows(*size)
    assert list(zip(win.scale.tolist(), win.xyxy.tolist(), strict=True)) == passes
    assert win.whole == (len(passes) == 1)


def test_inner_edges_are_the_ones_inside_the_image() -> None:
    win = Slicer(416, full=True).windows(1000, 416)
    assert win.inner.tolist() == [
        [False, False, True, False],  # left tile: only its right side is inside
        [True, False, True, False],
        [True, False, False, False],
        [False, False, False, False],  # the whole image has no inner side
    ]


# -- with the network ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "slicer",
    [
        Slicer(640),
        Slicer((600, 400), scales=(1.0, 0.5)),
        Slicer(416, scales=(0.5,), full=False),  # 300x200 at 0.5: the whole image, once
    ],
)
def test_an_image_no_larger_than_a_tile_gives_exactly_the_plain_result(
    tiny: Detector, slicer: Slicer
) -> None:
    image = photo("coffee.png")  # 600x400
    same(slicer.detect(tiny, image), tiny.detect(image))


@pytest.fixture(scope="module")
def two_photos() -> np.ndarray:
    """1000x416: three 416 tiles; one photo wholly inside the left tile only, one inside the
    right tile only."""
    canvas = np.full((416, 1000, 3), GRAY, np.uint8)
    for name, x0 in (("grace_hopper.jpg", 16), ("motorcycle_left.png", 720)):
        small, _ = shrink(photo(name), 260)
        canvas[60 : 60 + small.shape[0], x0 : x0 + small.shape[1]] = small
    return canvas


@pytest.mark.parametrize("full", [False, True])
def test_an_object_whole_in_one_tile_is_found_where_the_tile_alone_finds_it(
    tiny: Detector, two_photos: np.ndarray, full: bool
) -> None:
    slicer = Slicer(416, full=full)
    got = slicer.detect(tiny, two_photos)
    win = slicer.windows(1000, 416)
    checked = 0
    for x1, y1, x2, y2 in win.xyxy[[0, 2]].tolist():
        alone = tiny.detect(np.ascontiguousarray(two_photos[y1:y2, x1:x2]))
        moved = alone.xyxy + np.array([x1, y1, x1, y1], np.float32)
        for box, cls in zip(moved, alone.class_ids, strict=True):
            near = np.abs(got.xyxy - box).max(axis=1) <= 1
            assert (near & (got.class_ids == cls)).any(), (box, cls)
            checked += 1
    assert checked >= 8  # the photos do give the network something to find


def test_timings_add_up_over_the_tiles(tiny: Detector, two_photos: np.ndarray) -> None:
    timings: dict[str, tuple[float, float | None]] = {}
    Slicer(416, batch=2).detect(tiny, two_photos, timings=timings)
    assert set(timings) == {"preprocess", "forward", "postprocess"}
    assert timings["forward"][1] is None  # the engine's threads: no CPU time known
    assert all(wall > 0 for wall, _ in timings.values())


@pytest.mark.usefixtures("python_signals")
def test_ctrl_c_in_a_run_stops_a_large_image_between_its_batches(
    tiny: Detector, two_photos: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    passes = []
    forward = tiny.forward

    def interrupted_forward(blobs: np.ndarray) -> list[np.ndarray]:
        passes.append(len(blobs))
        signal.raise_signal(signal.SIGINT)  # Ctrl-C during the first pass
        return forward(blobs)

    monkeypatch.setattr(tiny, "forward", interrupted_forward)
    with Signals(), pytest.raises(KeyboardInterrupt):
        Slicer(416, batch=1).detect(tiny, two_photos)
    assert passes == [1]  # of the 4 or more tiles, only the first ran


@pytest.fixture(scope="module")
def big_person(tiny: Detector) -> tuple[np.ndarray, np.ndarray]:
    """Grace Hopper at 1.5x (768x900): she spans all nine 416 tiles. Returns the image and
    her box from a plain run (the largest person box)."""
    image = photo("grace_hopper.jpg")
    image = cv2.resize(image, (image.shape[1] * 3 // 2, image.shape[0] * 3 // 2))
    plain = tiny.detect(image)
    people = plain[plain.class_ids == 0]
    area = (people.xyxy[:, 2] - people.xyxy[:, 0]) * (people.xyxy[:, 3] - people.xyxy[:, 1])
    return image, people.xyxy[area.argmax()]


def pieces(dets: Detections, whole: np.ndarray, win_edges: np.ndarray) -> np.ndarray:
    """Person boxes that are a part of ``whole`` (inside it, at most 60% of it) and end on
    an inner tile edge: an object cut in pieces by the tiling."""
    people = dets.xyxy[dets.class_ids == 0].astype(np.float64)
    inside = box_ios(people, whole[None])[:, 0] >= 0.9
    area = (people[:, 2] - people[:, 0]) * (people[:, 3] - people[:, 1])
    part = area <= 0.6 * (whole[2] - whole[0]) * (whole[3] - whole[1])
    on_edge = np.isin(people, win_edges).any(axis=1)
    return people[inside & part & on_edge]


def test_a_large_object_across_tiles_comes_out_whole_not_in_pieces(
    tiny: Detector, big_person: tuple[np.ndarray, np.ndarray]
) -> None:
    image, whole = big_person
    win = Slicer(416).windows(image.shape[1], image.shape[0])
    edges = np.unique(win.xyxy[win.inner])  # the coordinates of inner tile sides
    with_rule = Slicer(416).detect(tiny, image)
    without = Slicer(416, edge=None).detect(tiny, image)
    assert len(pieces(without, whole, edges)) >= 2  # what the rule is for
    assert len(pieces(with_rule, whole, edges)) == 0
    found = box_iou(with_rule.xyxy[with_rule.class_ids == 0], whole[None])[:, 0]
    assert (found > 0.9).sum() == 1  # and she is there, once


# -- small objects in a large image ----------------------------------------------------------

NAMES = sorted(p.name for p in (DATA / "images").iterdir())


@pytest.fixture(scope="module")
def mosaic(tiny: Detector) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 3000x1200 canvas holding each test photo twice, shrunk to 240 px: the image, and
    the ground truth (boxes, classes): each photo's own plain detections (score >= 0.2),
    scaled and moved to where the photo lies in the canvas."""
    canvas = np.full((1200, 3000, 3), GRAY, np.uint8)
    boxes, classes = [], []
    for row in range(2):
        for col, name in enumerate(NAMES):
            image = photo(name)
            truth = tiny.detect(image)
            truth = truth[truth.scores >= 0.2]
            small, f = shrink(image, 240)
            x0, y0 = 100 + col * 480 + row * 150, 150 + row * 550
            canvas[y0 : y0 + small.shape[0], x0 : x0 + small.shape[1]] = small
            boxes.append(truth.xyxy * f + [x0, y0, x0, y0])
            classes.append(truth.class_ids)
    return canvas, np.concatenate(boxes), np.concatenate(classes)


def recall(dets: Detections, boxes: np.ndarray, classes: np.ndarray) -> float:
    """Share of the true boxes found by a detection of their class at IoU >= 0.5."""
    iou = box_iou(boxes, dets.xyxy) * (classes[:, None] == dets.class_ids[None, :])
    return float((iou.max(axis=1, initial=0.0) >= 0.5).mean())


def test_slicing_finds_the_small_objects_a_plain_run_misses(
    tiny: Detector, mosaic: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> None:
    canvas, boxes, classes = mosaic
    assert len(boxes) >= 10
    plain = recall(tiny.detect(canvas), boxes, classes)
    sliced = recall(Slicer(416, overlap=0.2).detect(tiny, canvas), boxes, classes)
    print(f"recall at IoU 0.5 of {len(boxes)} objects: plain {plain:.2f}, sliced {sliced:.2f}")
    assert plain <= 0.1
    assert sliced >= 0.5


@pytest.mark.parametrize(("edge", "boxes"), [(0.04, 1), (None, 2)])
def test_an_object_cut_by_every_tile_is_joined_from_its_pieces(
    tiny: Detector, edge: float | None, boxes: int
) -> None:
    """The cat (300 px at x 200-500) straddles the 416 tiles' shared band (292-416) and no
    tile sees it whole; without the full-image pass only its pieces are found."""
    small, _ = shrink(photo("chelsea.png"), 300)
    canvas = np.full((416, 1000, 3), GRAY, np.uint8)
    canvas[50 : 50 + small.shape[0], 200:500] = small
    dets = Slicer(416, full=False, edge=edge).detect(tiny, canvas)
    cats = dets[dets.labels == np.array("cat")]
    assert len(cats) == boxes
    if edge is not None:
        assert box_iou(cats.xyxy, [[200, 50, 500, 50 + small.shape[0]]])[0, 0] >= 0.7


def test_slice_on_the_command_line_in_process_and_in_workers(
    tmp_path: Path,
    use_real_store: Path,
    tiny: Detector,
    mosaic: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    """`detect big.png --slice 416` finds what the library's Slicer finds, with one network or
    with worker processes; --profile counts the passes; the --slice options need --slice."""
    canvas, boxes, classes = mosaic
    big = tmp_path / "big.png"
    cv2.imwrite(str(big), canvas)
    args = ["detect", str(big), "-m", "yolov3-tiny", "--conf", "0.1", "-f", "jsonl"]
    plain = run_cli(*args, "--no-save")
    found = {}
    for workers in ("1", "2"):
        result = run_cli(*args, "-o", str(tmp_path / workers), "--slice", "416", "--profile",
                         "-j", workers)  # fmt: skip
        assert result.exit_code == 0, result.stderr
        found[workers] = json.loads(result.stdout)
        assert "network passes per image (--slice): 37.0" in result.stderr
    assert found["1"]["detections"] == found["2"]["detections"]
    ours = Slicer(416).detect(tiny, canvas)
    assert len(found["1"]["detections"]) == len(ours)
    sliced = np.array([d["box"] for d in found["1"]["detections"]], np.float32)
    cls = np.array([d["class_id"] for d in found["1"]["detections"]])
    unsliced = json.loads(plain.stdout)["detections"]
    assert recall(Detections(sliced, np.ones(len(cls)), cls), boxes, classes) >= 0.5
    assert len(unsliced) < len(found["1"]["detections"])
    bad = run_cli(*args, "--scales", "1,0.5")
    assert bad.exit_code == 2
    assert "--scales is about sliced inference: add --slice S" in bad.stderr
    worse = run_cli(*args, "--slice", "16")
    assert worse.exit_code == 2
    assert "Invalid value for '--slice': tiles must be at least 32 pixels a side" in worse.stderr
