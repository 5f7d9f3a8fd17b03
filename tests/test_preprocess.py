"""The letterbox against a line-by-line transcription of darknet's C (image.c)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.conftest import DATA
from yolocli.families.darknet.letterbox import _STRIP_BYTES, Letterbox, Letterboxer, letterbox


def darknet_resize(im: np.ndarray, w: int, h: int) -> np.ndarray:
    """darknet's resize_image, transcribed: im is (c, H, W) float32 in [0, 1]."""
    c, height, width = im.shape
    part = np.zeros((c, height, w), np.float32)
    out = np.zeros((c, h, w), np.float32)
    w_scale = np.float32(width - 1) / np.float32(w - 1) if w > 1 else np.float32(0)
    h_scale = np.float32(height - 1) / np.float32(h - 1) if h > 1 else np.float32(0)
    for col in range(w):
        if col == w - 1 or width == 1:
            part[:, :, col] = im[:, :, width - 1]
        else:
            sx = np.float32(col) * w_scale
            ix = int(sx)
            dx = np.float32(sx - np.float32(ix))
            part[:, :, col] = (np.float32(1) - dx) * im[:, :, ix] + dx * im[:, :, ix + 1]
    for r in range(h):
        sy = np.float32(r) * h_scale
        iy = int(sy)
        dy = np.float32(sy - np.float32(iy))
        out[:, r, :] = (np.float32(1) - dy) * part[:, iy, :]
        if r == h - 1 or height == 1:
            continue
        out[:, r, :] += dy * part[:, iy + 1, :]
    return out


def darknet_letterbox(bgr: np.ndarray, w: int, h: int) -> np.ndarray:
    """darknet's letterbox_image on an image loaded like load_image_color (RGB, /255.)."""
    im = (bgr[:, :, ::-1].transpose(2, 0, 1).astype(np.float64) / 255.0).astype(np.float32)
    _, height, width = im.shape
    if w / width < h / height:
        new_w, new_h = w, (height * w) // width
    else:
        new_w, new_h = (width * h) // height, h
    boxed = np.full((3, h, w), 0.5, np.float32)
    top, left = (h - new_h) // 2, (w - new_w) // 2
    boxed[:, top : top + new_h, left : left + new_w] = darknet_resize(im, new_w, new_h)
    return boxed


@pytest.mark.parametrize("name", ["grace_hopper.jpg", "coffee.png", "chelsea.png"])
def test_letterbox_is_bit_identical_to_darknet(name: str) -> None:
    img = cv2.imread(str(DATA / "images" / name))
    np.testing.assert_array_equal(letterbox(img, 416, 416)[0], darknet_letterbox(img, 416, 416))


@pytest.mark.parametrize(
    ("shape", "net"),
    [((480, 640), 416), ((640, 480), 320), ((37, 1000), 416), ((1000, 3), 416), ((1, 1), 32),
     ((416, 416), 416), ((200, 100), 608),
     ((121, 1664), 416),  # two strips, and darknet's last row reads back a source row
     ((300, 400), 1280),  # a wide input: strips of 8 rows
     ((200, 33000), 416)],  # wider than cv2.remap handles: the NumPy gather
)  # fmt: skip
def test_letterbox_matches_darknet_on_awkward_sizes(shape: tuple[int, int], net: int) -> None:
    rng = np.random.default_rng(sum(shape))
    img = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    np.testing.assert_array_equal(letterbox(img, net, net)[0], darknet_letterbox(img, net, net))


def test_letterboxer_reuses_plans_and_is_still_exact() -> None:
    rng = np.random.default_rng(0)
    prep = Letterboxer(416, 416)
    for _ in range(2):
        for shape in [(300, 500), (500, 300), (300, 500)]:
            img = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
            blob, box = prep(img)
            assert (box.width, box.height) == (shape[1], shape[0])
            np.testing.assert_array_equal(blob, darknet_letterbox(img, 416, 416))


def test_work_buffers_hold_a_strip_grow_once_and_serve_every_size_exactly() -> None:
    """The letterbox runs in strips of rows: its buffers grow to the largest strip met,
    never shrink, and stay one strip's size however large the photo."""
    rng = np.random.default_rng(1)
    prep = Letterboxer(320, 320)
    sizes = []
    for shape in [(100, 150), (400, 300), (30, 700), (240, 320), (1500, 2000), (400, 300)]:
        img = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
        np.testing.assert_array_equal(prep(img)[0], darknet_letterbox(img, 320, 320))
        sizes.append(prep._work.size)
    assert sizes == sorted(sizes)  # never shrunk
    # two source rows per output row at most, plus darknet's last row: one strip's worth
    assert max(sizes) * 4 <= 2 * _STRIP_BYTES + 2 * 320 * 3 * 4


@pytest.mark.parametrize(
    ("size", "new", "offset"),
    [
        ((640, 480), (416, 312), (0, 52)),
        ((480, 640), (312, 416), (52, 0)),
        ((500, 500), (416, 416), (0, 0)),
    ],
)
def test_geometry_uses_darknets_integer_arithmetic(
    size: tuple[int, int], new: tuple[int, int], offset: tuple[int, int]
) -> None:
    box = Letterbox(*size, 416, 416)
    assert box.new_size == new
    assert box.offset == offset


@pytest.mark.parametrize("stretch", [False, True])
def test_boxes_map_back_to_the_image(stretch: bool) -> None:
    """The whole letterboxed picture, as a network-relative box, is the whole image."""
    box = Letterbox(640, 480, 416, 416, stretch=stretch)
    new_w, new_h = box.new_size
    whole = np.array([[0.5, 0.5, new_w / 416, new_h / 416]])
    np.testing.assert_allclose(box.to_image(whole), [[0, 0, 640, 480]], atol=1e-3)
    # a box in the top-left quarter of the picture, in network coordinates
    left, top = box.offset
    quarter = np.array(
        [[(left + new_w / 4) / 416, (top + new_h / 4) / 416, new_w / 2 / 416, new_h / 2 / 416]]
    )
    np.testing.assert_allclose(box.to_image(quarter), [[0, 0, 320, 240]], atol=1e-3)


def test_stretch_fills_the_whole_input() -> None:
    img = np.full((100, 300, 3), 200, np.uint8)
    blob, _ = Letterboxer(416, 416, stretch=True)(img)
    assert np.allclose(blob, 200 / 255)


# -- the letterbox ONNX Runtime runs (families.darknet.letterbox.RuntimeLetterboxer) ----------


@pytest.mark.parametrize(
    ("shape", "net", "stretch"),
    [((480, 640), 416, False), ((640, 480), 320, False), ((37, 1000), 416, False),
     ((1000, 3), 416, False), ((1, 1), 32, False), ((416, 416), 416, False),
     ((200, 100), 608, False), ((427, 640), 416, True), ((2, 42), 64, True)],
)  # fmt: skip
def test_the_runtime_letterbox_is_darknets_to_within_rounding(
    shape: tuple[int, int], net: int, stretch: bool
) -> None:
    from yolocli.families.darknet.letterbox import RuntimeLetterboxer

    rng = np.random.default_rng(sum(shape))
    img = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    exact, box = Letterboxer(net, net, stretch=stretch)(img)
    ours, same_box = RuntimeLetterboxer(net, net, stretch=stretch)(img)
    assert same_box == box
    # a 255th is 3.9e-3: rounding in another order moves values by a few 1e-5 at most
    np.testing.assert_allclose(ours, exact, rtol=0, atol=1e-4)
    if not stretch:
        np.testing.assert_allclose(ours, darknet_letterbox(img, net, net), rtol=0, atol=1e-4)


@pytest.mark.parametrize("name", ["grace_hopper.jpg", "coffee.png", "motorcycle_left.png"])
def test_the_runtime_letterbox_on_photos_writes_into_the_given_buffer(name: str) -> None:
    from yolocli.families.darknet.letterbox import RuntimeLetterboxer

    img = cv2.imread(str(DATA / "images" / name))
    out = np.full((3, 416, 416), -1, np.float32)
    got, _ = RuntimeLetterboxer(416, 416)(img, out)
    assert got is out
    np.testing.assert_allclose(out, darknet_letterbox(img, 416, 416), rtol=0, atol=1e-4)


def test_where_darknets_last_row_is_an_artefact_the_exact_letterbox_runs() -> None:
    # 42 rows to 2: darknet's float32 position of the last output row falls just short of
    # the last source row, so it reads the first row with weight ~6e-8 (a black row). The
    # graph would read the true last row: the exact NumPy letterbox runs instead.
    from yolocli.families.darknet.letterbox import RuntimeLetterboxer, _graph_matches

    assert not _graph_matches(2, 42, 8, 8)
    img = np.full((2, 8, 3), 200, np.uint8)
    exact, _ = Letterboxer(8, 42, stretch=True)(img)
    ours, _ = RuntimeLetterboxer(8, 42, stretch=True)(img)
    np.testing.assert_array_equal(ours, exact)
    assert exact[:, -1].max() < 1e-6  # darknet's artefact, reproduced


def test_a_photo_far_larger_than_the_input_takes_the_gathering_letterbox() -> None:
    # The graph reads every pixel of the photo; the NumPy letterbox only the ones darknet
    # samples, so past MAX_AREA_RATIO it is the faster one (17 ms against 2 for 2 megapixels)
    from yolocli.families.darknet.letterbox import RuntimeLetterboxer

    rng = np.random.default_rng(7)
    runtime = RuntimeLetterboxer(64, 64)
    small = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)  # 1.6 x the resized area
    large = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)  # 40 x
    for img, exact_expected in ((small, False), (large, True)):
        exact, _ = Letterboxer(64, 64)(img)
        ours, _ = runtime(img)
        assert np.array_equal(ours, exact) == exact_expected
        np.testing.assert_allclose(ours, exact, rtol=0, atol=1e-4)


def test_the_embedded_letterbox_graph_is_what_the_tool_makes() -> None:
    import importlib.util

    from tests.conftest import REPO
    from yolocli.families.darknet._letterbox_graph import GRAPH

    spec = importlib.util.spec_from_file_location("tool", REPO / "tools" / "letterbox_graph.py")
    assert spec is not None
    assert spec.loader is not None
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert tool.graph_bytes() == GRAPH
