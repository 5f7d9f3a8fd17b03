"""Annotation: boxes and "dog 0.87" labels drawn on a copy of the image.

Deterministic: each class always gets the same color, and the same input gives the same pixels.
The line width and the text size are derived from the image once (`Style.resolve`), so every
label of a picture has the same size whatever its box; `Style` overrides them and hides labels
or scores. Label tabs stay inside the image and are placed so they cover each other as little
as a simple greedy pass can manage (`label_layout`).

Text is drawn with FreeType (Pillow) in DejaVu Sans Condensed Bold, shipped in the wheel as a
subset (Latin, Greek, Cyrillic: 84 KB) so "Straßenauto" reads as written. For characters
outside it ("犬") a system font that has them is used when one is found (``YOLOCLI_FONT``
first, then the usual CJK fonts of Linux, macOS and Windows); otherwise they show as "?".
"""

from __future__ import annotations

import functools
import logging
import os
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import cv2
import numpy as np
import numpy.typing as npt

from yolocli.detections import Detections

if TYPE_CHECKING:
    from PIL import ImageFont

log = logging.getLogger(__name__)

# Below this size (pixels) text stops being readable, whatever the image size.
MIN_FONT_SIZE = 9
# The font's size as a share of the image's mean side (20 px at 640x480, 105 at 4000x3000).
FONT_SHARE = 0.03
# Class names longer than this are cut (a hostile names file can hold a megabyte-long name).
MAX_NAME_CHARS = 40
# A tab larger than this share of its box goes outside the box when there is room.
_INSIDE_SHARE = 0.25
_PHI = (5**0.5 - 1) / 2

FONT_FILE = Path(__file__).parent / "fonts" / "DejaVuSansCondensed-Bold.ttf"
# The code points of the shipped subset (yolocli/fonts/README.md says how it was made).
FONT_RANGES = (
    (0x20, 0x7E), (0xA0, 0x24F), (0x370, 0x3FF), (0x400, 0x4FF), (0x2010, 0x2027),
    (0x2030, 0x205E), (0x20AC, 0x20AC), (0x2122, 0x2122), (0xFFFD, 0xFFFD),
)  # fmt: skip
# Fonts with CJK (and more) tried, in order, for characters the shipped font lacks.
FALLBACK_FONTS = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/wenquanyi/wqy-microhei/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
    "/System/Library/Fonts/PingFang.ttc",
    "/System/Library/Fonts/Hiragino Sans GB.ttc",
    "/System/Library/Fonts/Supplemental/Arial Unicode.ttf",
    "/Library/Fonts/Arial Unicode.ttf",
    "C:/Windows/Fonts/msyh.ttc",
    "C:/Windows/Fonts/YuGothM.ttc",
    "C:/Windows/Fonts/malgun.ttf",
)


def _oklch_to_linear_rgb(lightness: float, chroma: float, hue: float) -> npt.NDArray[np.float64]:
    """Oklab (Björn Ottosson's matrices), from polar form, to linear sRGB; ``hue`` in turns."""
    a, b = chroma * np.cos(2 * np.pi * hue), chroma * np.sin(2 * np.pi * hue)
    lms = np.array(
        [
            lightness + 0.3963377774 * a + 0.2158037573 * b,
            lightness - 0.1055613458 * a - 0.0638541728 * b,
            lightness - 0.0894841775 * a - 1.2914855480 * b,
        ]
    )
    to_rgb = np.array(
        [
            [4.0767416621, -3.3077115913, 0.2309699292],
            [-1.2684380046, 2.6097574011, -0.3413193965],
            [-0.0041960863, -0.7034186147, 1.7076147010],
        ]
    )
    rgb: npt.NDArray[np.float64] = to_rgb @ lms**3
    return rgb


@functools.lru_cache(maxsize=1024)
def color_for(class_id: int) -> tuple[int, int, int]:
    """The BGR color of a class: any id, always the same.

    Hues advance by the golden angle (137.5 degrees) from one id to the next, in a perceptual
    space (Oklch), so ids 1 and 2 apart land far apart on the hue circle; lightness cycles over
    three levels so the ids whose golden hues come closest within a window (5 and 8 apart)
    still differ in lightness. Chroma is lowered only as far as needed to stay in sRGB.
    """
    hue = (0.08 + class_id * _PHI) % 1.0
    lightness = (0.78, 0.62, 0.70)[class_id % 3]
    chroma = 0.2
    rgb = _oklch_to_linear_rgb(lightness, chroma, hue)
    while rgb.min() < 0 or rgb.max() > 1:
        chroma -= 0.005
        rgb = _oklch_to_linear_rgb(lightness, chroma, hue)
    srgb = np.where(rgb <= 0.0031308, 12.92 * rgb, 1.055 * rgb ** (1 / 2.4) - 0.055)
    r, g, b = np.round(srgb * 255).astype(int).tolist()
    return (b, g, r)


if TYPE_CHECKING:
    PALETTE: tuple[tuple[int, int, int], ...]


def __getattr__(name: str) -> object:
    # PALETTE, the colors of the 80 COCO classes, for reference (ids past 80 keep following
    # the rule): made when first asked for, not at every start (80 colors cost milliseconds).
    if name == "PALETTE":
        return tuple(color_for(i) for i in range(80))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def text_color(bgr: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black or white, whichever contrasts more with ``bgr`` (WCAG relative luminance)."""
    lin = [(c / 255) / 12.92 if c <= 10 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in bgr]
    luminance = 0.0722 * lin[0] + 0.7152 * lin[1] + 0.2126 * lin[2]
    # Contrast with black (L + 0.05) / 0.05 beats contrast with white 1.05 / (L + 0.05) here:
    return (0, 0, 0) if luminance > (1.05 * 0.05) ** 0.5 - 0.05 else (255, 255, 255)


def line_width(width: int, height: int) -> int:
    """Box line width in pixels: 2 on small images, growing with the image (10 at 4000 px)."""
    return max(2, round((width + height) / 2 * 0.003))


def font_size(width: int, height: int) -> int:
    """Label text size in pixels for a ``width`` x ``height`` image: `FONT_SHARE` of its mean
    side, never below `MIN_FONT_SIZE`. One size for every label of the image."""
    return max(MIN_FONT_SIZE, round((width + height) / 2 * FONT_SHARE))


@dataclass(frozen=True)
class Style:
    """How `annotate` draws: ``line_width`` and ``font_size`` in pixels (None: derived from
    the image, `line_width` and `font_size`), and whether to leave out the labels or only
    their scores."""

    line_width: int | None = None
    font_size: int | None = None
    hide_labels: bool = False
    hide_conf: bool = False

    def resolve(self, width: int, height: int) -> tuple[int, int]:
        """(line width, font size) in pixels for a ``width`` x ``height`` image."""
        lw = self.line_width if self.line_width is not None else line_width(width, height)
        size = self.font_size if self.font_size is not None else font_size(width, height)
        return lw, size


def _clean(text: str) -> str:
    """``text`` without control, format or unassigned characters (each becomes "?"): they
    have no glyph, and a newline would break the tab."""
    return "".join("?" if unicodedata.category(c)[0] == "C" else c for c in text)


def label_text(
    name: str, score: float | None, max_chars: int = MAX_NAME_CHARS, hide_conf: bool = False
) -> str:
    """The drawn text: the name cut to ``max_chars`` ("..." marks the cut), control
    characters shown as "?", then the score (unless ``hide_conf`` or None)."""
    head = name[: max_chars + 1]
    if len(head) > max_chars:
        head = head[:max_chars] + "..."
    head = _clean(head)
    if hide_conf or score is None:
        return head
    return f"{head} {score:.2f}"


@functools.lru_cache(maxsize=4096)
def covered(text: str) -> bool:
    """Whether the shipped font has every character of ``text``."""
    return all(any(lo <= ord(c) <= hi for lo, hi in FONT_RANGES) for c in text)


@functools.lru_cache(maxsize=1)
def fallback_font() -> str | None:
    """A font file for characters the shipped font lacks: ``YOLOCLI_FONT``, else the first
    of `FALLBACK_FONTS` that exists; None if there is none."""
    chosen = os.environ.get("YOLOCLI_FONT")
    if chosen:
        if Path(chosen).is_file():
            return chosen
        log.warning("YOLOCLI_FONT=%s: no such font file; looking for a system font", chosen)
    return next((f for f in FALLBACK_FONTS if Path(f).is_file()), None)


@functools.lru_cache(maxsize=64)
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    from PIL import ImageFont

    return ImageFont.truetype(path, size)


@functools.lru_cache(maxsize=1)
def _warn_missing_glyphs() -> None:
    log.warning(
        "a class name has characters the shipped font lacks and no system font with them was "
        "found; they are drawn as '?'. Set YOLOCLI_FONT to a font file that has them"
    )


def font_for(text: str, size: int) -> tuple[ImageFont.FreeTypeFont, str]:
    """The font to draw ``text`` at ``size`` px, and the text as it will be drawn: the
    shipped font when it has every character, else a fallback font, else the shipped font
    with the missing characters as "?"."""
    if covered(text):
        return _font(str(FONT_FILE), size), text
    other = fallback_font()
    if other is not None:
        return _font(other, size), text
    _warn_missing_glyphs()
    shown = "".join(c if covered(c) else "?" for c in text)
    return _font(str(FONT_FILE), size), shown


class Tab(NamedTuple):
    """One label as drawn: its text, font size (px), and its tab (x1, y1, x2, y2) in pixels."""

    text: str
    size: int
    rect: tuple[int, int, int, int]


IntArray = npt.NDArray[np.int64]


def overlap_area(rects: IntArray, placed: IntArray) -> IntArray:
    """(K,) total area each rectangle of ``rects`` (K, 4) shares with those in ``placed`` (M, 4)."""
    iw = np.minimum.outer(rects[:, 2], placed[:, 2]) - np.maximum.outer(rects[:, 0], placed[:, 0])
    ih = np.minimum.outer(rects[:, 3], placed[:, 3]) - np.maximum.outer(rects[:, 1], placed[:, 1])
    total: npt.NDArray[np.int64] = (np.maximum(iw, 0) * np.maximum(ih, 0)).sum(axis=1)
    return total


def label_layout(
    boxes: npt.ArrayLike, sizes: npt.ArrayLike, width: int, height: int
) -> npt.NDArray[np.int64]:
    """Where each label tab goes: (N, 4) int rectangles (x1, y1, x2, y2), one per box.

    ``boxes`` (N, 4) are placed in the order given (put the strongest first: the earlier a
    label, the better its spot); ``sizes`` (N, 2) are the tabs' (width, height). Each tab tries,
    in order, above its box, inside its top edge, below it, inside its bottom edge (a tab that
    would hide more than a quarter of a small box tries the two outside spots first), shifted
    into the image, and takes the first spot that touches no tab placed before it, else the
    spot that overlaps them least. Spots that only fit once shifted into the image are tried
    after those that fit as they are. Deterministic, and pure: no pixels involved.
    """
    xyxy = np.round(np.asarray(boxes, dtype=np.float64)).astype(np.int64).reshape(-1, 4)
    wh = np.asarray(sizes, dtype=np.int64).reshape(-1, 2)
    out = np.zeros((len(xyxy), 4), dtype=np.int64)
    for i, ((x1, y1, x2, y2), (w, h)) in enumerate(zip(xyxy.tolist(), wh.tolist(), strict=True)):
        tops = [y1 - h, y1, y2, y2 - h]  # above, inside top, below, inside bottom
        if w * h > _INSIDE_SHARE * max(x2 - x1, 0) * max(y2 - y1, 0):
            tops = [tops[0], tops[2], tops[1], tops[3]]
        # Spots that must be shifted to fit the image go last: shifted, they cover the box.
        tops.sort(key=lambda t: not 0 <= t <= height - h)
        left = min(max(x1, 0), max(width - w, 0))
        top = np.clip(tops, 0, max(height - h, 0))
        spots = np.stack([np.full(4, left), top, np.full(4, left + w), top + h], axis=1)
        cost = overlap_area(spots, out[:i]) if i else np.zeros(4, dtype=np.int64)
        out[i] = spots[int(np.argmin(cost))]  # argmin: the first of the cheapest spots
    return out


def _pad(size: int) -> int:
    """Space around the text in its tab: a fifth of the font size, at least 1 px."""
    return max(1, round(size * 0.2))


@functools.lru_cache(maxsize=1024)
def _word(word: str, size: int, font_path: str) -> npt.NDArray[np.uint8]:
    """(line height, advance width) coverage of one word, antialiased by FreeType. Labels
    are drawn word by word ("traffic", "light", "0.87"), so a picture's or a video's labels
    reuse the few words they are made of instead of rendering every text anew."""
    from PIL import Image, ImageDraw

    font = _font(font_path, size)
    ascent, descent = font.getmetrics()
    canvas = Image.new("L", (max(1, int(np.ceil(font.getlength(word)))), ascent + descent))
    ImageDraw.Draw(canvas).text((0, 0), word, font=font, fill=255, anchor="la")
    return np.asarray(canvas)


def _text_mask(text: str, size: int) -> npt.NDArray[np.uint8]:
    """(line height, width) coverage of ``text`` at ``size`` px, words and spaces."""
    font, shown = font_for(text, size)
    ascent, descent = font.getmetrics()
    space = round(font.getlength(" "))
    words = [_word(w, size, font.path) for w in shown.split(" ")]  # type: ignore[arg-type]
    width = sum(w.shape[1] for w in words) + space * (len(words) - 1)
    mask = np.zeros((ascent + descent, width), np.uint8)
    x = 0
    for w in words:
        mask[:, x : x + w.shape[1]] = w
        x += w.shape[1] + space
    return mask


@functools.lru_cache(maxsize=4096)
def _tab_size(text: str, size: int) -> tuple[int, int]:
    """(width, height) of the tab for ``text`` at ``size`` px. The height is the font's line
    (ascent + descent) whatever the text, so every tab of an image is equally tall."""
    mask = _text_mask(text, size)
    pad = _pad(size)
    return mask.shape[1] + 2 * pad, mask.shape[0] + pad


def label_tabs(
    dets: Detections,
    width: int,
    height: int,
    style: Style | None = None,
    texts: Sequence[str] | None = None,
) -> list[Tab]:
    """The labels `annotate` draws for ``dets`` on a ``width`` x ``height`` image, in
    detection order: text, font size and tab rectangle (laid out by `label_layout`).
    ``texts`` replaces the "name score" text of each detection (a tracker's "#7 car", say)."""
    style = style or Style()
    lw, size = style.resolve(width, height)
    names = dets.names
    out_texts: list[str] = []
    sizes: list[tuple[int, int]] = []
    tracks = dets.track_ids.tolist() if dets.track_ids is not None else [-1] * len(dets)
    for i, (cid, score, tid) in enumerate(
        zip(dets.class_ids.tolist(), dets.scores.tolist(), tracks, strict=True)
    ):
        name = names[cid] if 0 <= cid < len(names) else str(cid)
        name = f"#{tid} {name}" if tid >= 0 else name  # a tracked object: its id first
        if texts is not None:
            name, score = texts[i], None
        text = label_text(name, score, hide_conf=style.hide_conf)
        w, h = _tab_size(text, size)
        chars = min(len(name), MAX_NAME_CHARS)
        while w > width and chars > 0:  # wider than the image: cut the name further
            chars -= 1
            text = label_text(name, score, chars, hide_conf=style.hide_conf)
            w, h = _tab_size(text, size)
        out_texts.append(text)
        sizes.append((w, h))
    order = np.argsort(-dets.scores, kind="stable")
    rects = np.zeros((len(dets), 4), dtype=np.int64)
    if len(dets):
        # Tabs attach to the outer edge of the box line, which is centred on the box edge.
        outer = np.round(dets.xyxy[order]) + np.array([-1, -1, 1, 1]) * (lw // 2)
        rects[order] = label_layout(outer, np.array(sizes)[order], width, height)
    return [
        Tab(t, size, (r[0], r[1], r[2], r[3]))
        for t, r in zip(out_texts, rects.tolist(), strict=True)
    ]


@functools.lru_cache(maxsize=1024)
def _blend_table(back: tuple[int, int, int]) -> npt.NDArray[np.uint8]:
    """(1, 256, 3): the tab's color at each text coverage, from ``back`` to its text color."""
    base = np.array(back, np.float64)
    ink = np.array(text_color(back), np.float64)
    cover = np.arange(256)[:, None] / 255
    table: npt.NDArray[np.uint8] = np.round(base + (ink - base) * cover).astype(np.uint8)
    return table.reshape(1, 256, 3)  # as cv2.LUT takes it


def _tab_pixels(
    text: str, size: int, width: int, height: int, back: tuple[int, int, int]
) -> npt.NDArray[np.uint8]:
    """The (height, width, 3) BGR pixels of a tab: ``text`` in black or white on ``back``."""
    mask = _text_mask(text, size)
    pad = _pad(size)
    cover = np.zeros((height, width), np.uint8)
    h, w = min(mask.shape[0], height - pad // 2), min(mask.shape[1], width - pad)
    cover[pad // 2 : pad // 2 + h, pad : pad + w] = mask[:h, :w]
    pixels = cv2.LUT(cv2.merge([cover, cover, cover]), _blend_table(back))
    return np.asarray(pixels, np.uint8)


def annotate(
    image: npt.NDArray[np.uint8],
    dets: Detections,
    style: Style | None = None,
    texts: Sequence[str] | None = None,
    *,
    in_place: bool = False,
) -> npt.NDArray[np.uint8]:
    """A copy of ``image`` with every detection drawn; the input array is never modified
    (``in_place``: drawn on ``image`` itself, which is returned).

    Boxes first, weakest under strongest; then the label tabs (unless ``style.hide_labels``),
    also weakest first, so no box line crosses a label and the strongest label ends on top
    where tabs must overlap. ``texts``: one label text per detection instead of "name score".
    """
    style = style or Style()
    out = image if in_place else image.copy()
    height, width = out.shape[:2]
    lw, _ = style.resolve(width, height)
    order = np.argsort(dets.scores, kind="stable").tolist()
    boxes = np.round(dets.xyxy).astype(np.int64).tolist()
    colors = [color_for(c) for c in dets.class_ids.tolist()]
    for i in order:
        x1, y1, x2, y2 = boxes[i]
        cv2.rectangle(out, (x1, y1), (x2, y2), colors[i], lw, cv2.LINE_AA)
    if style.hide_labels:
        return out
    tabs = label_tabs(dets, width, height, style, texts)
    for i in order:
        tab = tabs[i]
        x1, y1, x2, y2 = tab.rect
        pixels = _tab_pixels(tab.text, tab.size, x2 - x1, y2 - y1, colors[i])
        # The tab may be larger than a tiny image: draw the part inside it.
        cx1, cy1, cx2, cy2 = max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)
        if cx2 > cx1 and cy2 > cy1:
            out[cy1:cy2, cx1:cx2] = pixels[cy1 - y1 : cy2 - y1, cx1 - x1 : cx2 - x1]
    return out
