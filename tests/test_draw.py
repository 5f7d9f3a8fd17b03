"""Annotation: deterministic, distinct colors, legible labels that stay in the image and apart."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from yolocli import Detections
from yolocli.draw import (
    FONT_SHARE,
    MIN_FONT_SIZE,
    PALETTE,
    Style,
    annotate,
    color_for,
    font_size,
    label_layout,
    label_tabs,
    label_text,
    line_width,
    text_color,
)

NAMES = [str(i) for i in range(80)]
COCO = ["person", "bicycle", "car", "motorbike"] + [f"c{i}" for i in range(4, 80)]


def dets(
    boxes: list[list[float]], classes: list[int] | None = None, scores: list[float] | None = None,
    names: list[str] = NAMES,
) -> Detections:  # fmt: skip
    n = len(boxes)
    return Detections(
        np.array(boxes, dtype=np.float64).reshape(-1, 4),
        np.array(scores if scores is not None else [0.87] * n),
        np.array(classes if classes is not None else [16] * n),
        names=names,
    )


def rect_overlap(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    """Shared area of two (x1, y1, x2, y2) rectangles, the obvious way."""
    return max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))


def pairwise_overlap(rects: list[tuple[int, ...]]) -> int:
    return sum(rect_overlap(p, q) for i, p in enumerate(rects) for q in rects[i + 1 :])


def lab(bgr: list[tuple[int, int, int]]) -> np.ndarray:
    """CIELAB (L in 0..100) through OpenCV's float conversion: independent of draw.py's Oklab."""
    a = np.array(bgr, np.float32).reshape(-1, 1, 3) / 255
    return cv2.cvtColor(a, cv2.COLOR_BGR2Lab).reshape(-1, 3).astype(np.float64)


# --- the image itself ---------------------------------------------------------------------


def test_input_is_never_modified_and_size_is_kept() -> None:
    img = np.full((120, 200, 3), 90, np.uint8)
    before = img.copy()
    out = annotate(img, dets([[20, 30, 150, 100]]))
    np.testing.assert_array_equal(img, before)
    assert out.shape == img.shape
    assert not np.array_equal(out, img)


def test_in_place_draws_the_same_on_the_image_itself() -> None:
    img = np.full((120, 200, 3), 90, np.uint8)
    d = dets([[20, 30, 150, 100], [5, 5, 60, 40]], classes=[3, 17], scores=[0.9, 0.4])
    expected = annotate(img, d)
    drawn = annotate(img, d, in_place=True)
    assert drawn is img
    np.testing.assert_array_equal(img, expected)


def test_no_detections_draws_nothing() -> None:
    img = np.full((50, 60, 3), 7, np.uint8)
    np.testing.assert_array_equal(annotate(img, Detections.empty(NAMES)), img)


def test_drawing_is_deterministic_and_colors_follow_the_class() -> None:
    img = np.zeros((200, 300, 3), np.uint8)
    d = dets([[10, 40, 200, 180], [50, 60, 120, 150]], classes=[3, 17], scores=[0.9, 0.4])
    np.testing.assert_array_equal(annotate(img, d), annotate(img.copy(), d[[0, 1]]))
    drawn = annotate(img, d)
    assert tuple(drawn[110, 10].tolist()) == color_for(3)  # the left edge of box 0
    assert tuple(drawn[110, 50].tolist()) == color_for(17)  # the left edge of box 1
    # The palette is a fixed rule, not state: pinned values, and any id (past 80 too) works.
    assert PALETTE[:3] == ((137, 151, 253), (237, 136, 6), (11, 168, 158))
    assert color_for(1000) == color_for(1000)
    assert len(set(PALETTE)) == 80


@pytest.mark.parametrize(("size", "width"), [((300, 200), 2), ((1000, 750), 3), ((4000, 3000), 10)])
def test_line_width_grows_with_the_image(size: tuple[int, int], width: int) -> None:
    assert line_width(*size) == width


# --- colors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("step", "min_delta_e", "min_hue_degrees"),
    [(1, 50, 90), (2, 40, 45), (3, 25, 0), (5, 15, 0), (8, 12, 0)],
)
def test_nearby_class_ids_get_clearly_different_colors(
    step: int, min_delta_e: float, min_hue_degrees: float
) -> None:
    """COCO groups related classes under consecutive ids (horse 17, sheep 18, cow 19): ids 1
    and 2 apart must differ far beyond a just-noticeable difference (CIE76 dE ~ 2.3) and in
    hue, not just in saturation; every id within a window of 8 still visibly (past id 80
    too: the rule has no wrap)."""
    colors = lab([color_for(i) for i in range(160)])
    delta = np.linalg.norm(colors[step:] - colors[:-step], axis=1)
    assert delta.min() >= min_delta_e, int(np.argmin(delta))
    hue = np.degrees(np.arctan2(colors[:, 2], colors[:, 1]))
    hue_delta = np.abs((hue[step:] - hue[:-step] + 180) % 360 - 180)
    assert hue_delta.min() >= min_hue_degrees, int(np.argmin(hue_delta))
    assert np.hypot(colors[:, 1], colors[:, 2]).min() >= 30  # colorful enough for hue to show


def test_horse_and_cow_are_told_apart() -> None:
    """The issue's case: 17 and 19 were two magentas 21 degrees of hue apart."""
    horse, cow = lab([color_for(17), color_for(19)])
    hues = np.degrees(np.arctan2([horse[2], cow[2]], [horse[1], cow[1]]))
    assert abs((hues[0] - hues[1] + 180) % 360 - 180) >= 60
    assert np.linalg.norm(horse - cow) >= 50


def test_label_text_contrasts_with_its_tab() -> None:
    """Black or white text, whichever reads better: WCAG contrast >= 4.5 on every color."""

    def luminance(bgr: tuple[int, int, int]) -> float:
        c = np.array(bgr[::-1]) / 255
        lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
        return float(lin @ [0.2126, 0.7152, 0.0722])

    for bgr in PALETTE:
        a, b = luminance(bgr), luminance(text_color(bgr))
        assert (max(a, b) + 0.05) / (min(a, b) + 0.05) >= 4.5, bgr
    assert text_color((255, 255, 255)) == (0, 0, 0)
    assert text_color((0, 0, 0)) == (255, 255, 255)


# --- text ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("dog", "dog 0.87"),
        ("x" * 40, "x" * 40 + " 0.87"),
        ("x" * 41, "x" * 40 + "... 0.87"),
        ("x" * 10_000_000, "x" * 40 + "... 0.87"),
        ("café\n", "café? 0.87"),
        ("猫", "猫 0.87"),
        ("Straßenauto", "Straßenauto 0.87"),
        ("a\x00b\x7f\u200b", "a?b?? 0.87"),
    ],
)
def test_label_text_is_short_and_printable(name: str, text: str) -> None:
    assert label_text(name, 0.87) == text


def test_hide_conf_leaves_the_name() -> None:
    assert label_text("dog", 0.87, hide_conf=True) == "dog"


@pytest.mark.parametrize(("name", "drawn_as"), [("y" * 10_000_000, "y" * 40 + "...")])
def test_drawn_labels_are_cut(name: str, drawn_as: str) -> None:
    """The pixels are those of the cut name (never a megabyte-long tab)."""
    img = np.full((300, 1200, 3), 40, np.uint8)  # wide enough for 40 characters
    box = [[50, 120, 350, 280]]
    got = annotate(img, dets(box, [0], names=[name]))
    want = annotate(img, dets(box, [0], names=[drawn_as]))
    np.testing.assert_array_equal(got, want)


def test_non_ascii_names_are_drawn_not_question_marks() -> None:
    """Hershey fonts drew "Straßenauto" as "Stra?enauto": FreeType draws the real glyph."""
    img = np.full((200, 400, 3), 40, np.uint8)
    box = [[50, 80, 350, 180]]
    real = annotate(img, dets(box, [0], names=["Straßenauto"]))
    marked = annotate(img, dets(box, [0], names=["Stra?enauto"]))
    assert not np.array_equal(real, marked)
    assert label_tabs(dets(box, [0], names=["Straßenauto"]), 400, 200)[0].text.startswith("Straß")


def test_a_label_wider_than_the_image_is_cut_to_fit() -> None:
    (tab,) = label_tabs(dets([[10, 10, 150, 110]], [0], names=["z" * 40]), 160, 120)
    assert tab.text.endswith("... 0.87")
    assert tab.rect[0] >= 0
    assert tab.rect[2] <= 160


def test_font_size_follows_the_image_with_a_legible_minimum() -> None:
    assert font_size(160, 120) == MIN_FONT_SIZE
    assert font_size(640, 480) == round(560 * FONT_SHARE)
    assert font_size(4000, 3000) == round(3500 * FONT_SHARE)


# --- the layout rule, pinned ----------------------------------------------------------------

# (image size, boxes): a big and a tiny box on each image. The rule: one font size per image
# (from the image, never from the box), every tab equally tall and inside the image.
GOLDEN = [
    ((160, 120), [[10, 30, 150, 110], [120, 100, 126, 106]], 9),
    ((640, 480), [[40, 60, 600, 460], [300, 200, 310, 208]], 17),
    ((4000, 3000), [[100, 100, 3000, 2800], [3200, 2500, 3300, 2580]], 105),
]


@pytest.mark.parametrize(("size", "boxes", "px"), GOLDEN, ids=["160", "640", "4000"])
def test_label_size_comes_from_the_image_not_the_box(
    size: tuple[int, int], boxes: list[list[float]], px: int
) -> None:
    w, h = size
    tabs = label_tabs(dets(boxes, [23, 2], [0.95, 0.65], names=COCO), w, h)
    assert [t.size for t in tabs] == [px, px]
    heights = {t.rect[3] - t.rect[1] for t in tabs}
    assert len(heights) == 1  # "giraffe 0.95" on a whole-image box as tall as "car 0.65"
    (tall,) = heights
    assert px < tall <= 1.6 * px  # the font's line and a little padding
    for t in tabs:
        x1, y1, x2, y2 = t.rect
        assert 0 <= x1 < x2 <= w
        assert 0 <= y1 < y2 <= h
    drawn = annotate(np.zeros((h, w, 3), np.uint8), dets(boxes, [23, 2], [0.95, 0.65], COCO))
    x1, y1, x2, y2 = tabs[0].rect
    assert np.all(drawn[y1:y2, x1:x2] == color_for(23), axis=2).mean() > 0.5


def test_style_overrides_sizes_and_hides_labels_or_scores() -> None:
    d = dets([[40, 60, 600, 460]], [0], names=COCO)
    img = np.zeros((480, 640, 3), np.uint8)
    (tab,) = label_tabs(d, 640, 480, Style(font_size=30))
    assert tab.size == 30
    (tab,) = label_tabs(d, 640, 480, Style(hide_conf=True))
    assert tab.text == "person"
    bare = annotate(img, d, Style(hide_labels=True))
    assert np.array_equal(bare, annotate(img, d, Style(hide_labels=True)))
    assert np.all(bare[30:57, 40:200] == 0)  # no tab above the box
    thick = annotate(img, d, Style(line_width=9, hide_labels=True))
    assert tuple(thick[260, 44].tolist()) == color_for(0)  # 4 px inside the left edge
    assert tuple(bare[260, 44].tolist()) == (0, 0, 0)
    (tab,) = label_tabs(d, 640, 480, texts=["#7 person"])
    assert tab.text == "#7 person"


# --- where labels go ----------------------------------------------------------------------

W, H = 300, 200
EDGE_BOXES = {
    "top-left": [0, 0, 60, 40],
    "top-right": [250, 0, 300, 60],
    "bottom-left": [0, 160, 70, 200],
    "bottom-right": [240, 150, 300, 200],
    "top edge": [100, 0, 180, 50],
    "bottom edge": [0, 170, 300, 200],
    "right edge": [280, 0, 300, 200],
    "left edge": [0, 40, 12, 120],
    "whole image": [0, 0, 300, 200],
    "past every edge": [-50, -40, 350, 260],
    "zero size at a corner": [300, 200, 300, 200],
}


@pytest.mark.parametrize("box", EDGE_BOXES.values(), ids=EDGE_BOXES.keys())
def test_label_tab_stays_inside_the_image(box: list[float]) -> None:
    """Boxes at every edge and corner: the tab lies inside the image, and it is really
    painted there (its color fills most of its rectangle)."""
    d = dets([box], [0])
    (tab,) = label_tabs(d, W, H)
    x1, y1, x2, y2 = tab.rect
    assert 0 <= x1 < x2 <= W
    assert 0 <= y1 < y2 <= H
    drawn = annotate(np.zeros((H, W, 3), np.uint8), d)
    fill = np.all(drawn[y1:y2, x1:x2] == color_for(0), axis=2)
    assert fill.mean() > 0.5


def test_layout_prefers_above_then_inside_then_below() -> None:
    """Three identical large boxes: the first gets the spot above, the next inside the top
    edge, the third below; none overlaps another."""
    rects = label_layout([[50, 50, 250, 150]] * 3, [[60, 12]] * 3, W, H).tolist()
    assert rects == [[50, 38, 110, 50], [50, 50, 110, 62], [50, 150, 110, 162]]


def test_layout_keeps_small_boxes_visible() -> None:
    """A tab larger than a quarter of its box goes below it before it goes inside it."""
    rects = label_layout([[50, 5, 80, 35], [50, 5, 80, 35]], [[60, 12]] * 2, W, H).tolist()
    assert rects == [[50, 35, 110, 47], [50, 5, 110, 17]]  # below first: above does not fit


def test_layout_takes_the_least_overlapping_spot_when_none_is_free() -> None:
    rects = label_layout([[0, 0, 300, 20]] * 3, [[300, 12]] * 3, W, 20)
    assert rects.tolist()[:2] == [[0, 0, 300, 12], [0, 8, 300, 20]]
    assert label_layout(np.zeros((0, 4)), np.zeros((0, 2)), W, H).shape == (0, 4)


def test_stronger_labels_get_the_better_spot() -> None:
    d = dets([[50, 50, 250, 150]] * 2, classes=[5, 9], scores=[0.3, 0.9])
    weak, strong = label_tabs(d, W, H)
    # The box line's outer edge is at y = 49: strong above it, weak inside the box.
    assert strong.rect[3] <= 49 <= weak.rect[1]


def test_stronger_labels_end_on_top_where_tabs_must_overlap() -> None:
    d = dets([[0, 0, 200, 20], [0, 0, 200, 20]], classes=[5, 9], scores=[0.3, 0.9])
    weak, strong = label_tabs(d, 200, 20)
    x1, y1 = max(weak.rect[0], strong.rect[0]), max(weak.rect[1], strong.rect[1])
    x2, y2 = min(weak.rect[2], strong.rect[2]), min(weak.rect[3], strong.rect[3])
    assert x2 > x1  # a 20 px high image has no room for two tabs
    assert y2 > y1
    shared = annotate(np.zeros((20, 200, 3), np.uint8), d)[y1:y2, x1:x2]
    on_top = np.all(shared == color_for(9), axis=2).sum()
    assert on_top > 3 * np.all(shared == color_for(5), axis=2).sum()


def naive_tabs(d: Detections, width: int, height: int) -> list[tuple[int, ...]]:
    """yolocli 0.x's placement, with today's tab sizes: above the box, else inside its top."""
    out = []
    boxes = np.round(d.xyxy).astype(int).tolist()
    for box, tab in zip(boxes, label_tabs(d, width, height), strict=True):
        w, h = tab.rect[2] - tab.rect[0], tab.rect[3] - tab.rect[1]
        top = box[1] - h if box[1] - h >= 0 else min(box[1], height - h)
        left = min(max(box[0], 0), width - w)
        out.append((left, top, left + w, top + h))
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_crowded_scene_labels_overlap_far_less_than_naive_placement(seed: int) -> None:
    """30 overlapping boxes on a 640x480 image: the greedy layout cuts the tab area hidden
    under other tabs to a fifth of what placing every tab above its box hides (measured:
    3-15%)."""
    rng = np.random.default_rng(seed)
    centers = rng.uniform([60, 60], [580, 420], (30, 2))
    sizes = rng.uniform(40, 160, (30, 2))
    d = Detections(
        np.concatenate([centers - sizes / 2, centers + sizes / 2], axis=1),
        rng.uniform(0.1, 0.95, 30),
        rng.integers(0, 80, 30),
        names=COCO,
    )
    rects = [t.rect for t in label_tabs(d, 640, 480)]
    assert min(min(r[0], r[1]) for r in rects) >= 0
    assert all(r[2] <= 640 and r[3] <= 480 for r in rects)
    naive = pairwise_overlap(naive_tabs(d, 640, 480))
    assert naive > 0
    assert pairwise_overlap(rects) <= naive / 5


@pytest.mark.parametrize(
    "boxes", [[[20, 50, 60, 90], [95, 10, 140, 40]], [[0, 0, 30, 25], [130, 95, 160, 120]]]
)
def test_thumbnail_labels_do_not_bury_small_boxes(boxes: list[list[float]]) -> None:
    """On a 160x120 thumbnail: text at the legible minimum, and each tab either outside its
    small box or covering at most a quarter of it."""
    d = dets(boxes, [17, 19], [0.81, 0.47], names=COCO)
    for tab, box in zip(label_tabs(d, 160, 120), boxes, strict=True):
        assert tab.size == MIN_FONT_SIZE
        area = (box[2] - box[0]) * (box[3] - box[1])
        assert rect_overlap(tab.rect, tuple(int(v) for v in box)) <= area / 4, (tab, box)
        assert tab.rect[3] - tab.rect[1] <= 0.12 * 120
    # The same seen in the pixels: inside each box (its lines left out), at most a quarter
    # is painted with a tab's solid fill.
    drawn = annotate(np.full((120, 160, 3), 128, np.uint8), d)
    for (x1, y1, x2, y2), cls in zip(np.array(boxes, int).tolist(), [17, 19], strict=True):
        inside = drawn[y1 + 3 : y2 - 2, x1 + 3 : x2 - 2]
        assert np.all(inside == color_for(cls), axis=2).mean() <= 0.25


# --- fonts ----------------------------------------------------------------------------------


def test_characters_the_shipped_font_lacks_use_a_fallback_font_or_show_as_question_marks(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from yolocli import draw

    assert draw.covered("Straßenauto Ёжик café")
    assert not draw.covered("犬")
    monkeypatch.setattr(draw, "FALLBACK_FONTS", ())
    monkeypatch.delenv("YOLOCLI_FONT", raising=False)
    draw.fallback_font.cache_clear()
    draw._warn_missing_glyphs.cache_clear()
    with caplog.at_level("WARNING", logger="yolocli.draw"):
        font, shown = draw.font_for("犬 0.87", 20)
    assert shown == "? 0.87"
    assert "YOLOCLI_FONT" in caplog.text
    other = str(draw.FONT_FILE)  # any real font file stands for a CJK one here
    monkeypatch.setenv("YOLOCLI_FONT", other)
    draw.fallback_font.cache_clear()
    font, shown = draw.font_for("犬 0.87", 20)
    assert shown == "犬 0.87"
    assert font.path == other
    draw.fallback_font.cache_clear()
