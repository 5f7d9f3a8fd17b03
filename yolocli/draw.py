"""Annotation: boxes and "dog 0.87" labels drawn on a copy of the image.

Deterministic: each class always gets the same color, and the same input gives the same pixels.
Text is scaled by the image and by its box together, never below what Hershey fonts can show
legibly; label tabs stay inside the image and are placed so they cover each other as little as
a simple greedy pass can manage (`label_layout`).
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import cv2
import numpy as np
import numpy.typing as npt

from yolocli.detections import Detections

_FONT = cv2.FONT_HERSHEY_SIMPLEX
# Below this scale Hershey text stops being readable, whatever the image size.
MIN_FONT_SCALE = 0.35
# Class names longer than this are cut (a hostile names file can hold a megabyte-long name).
MAX_NAME_CHARS = 40
# A tab larger than this share of its box goes outside the box when there is room.
_INSIDE_SHARE = 0.25
_PHI = (5**0.5 - 1) / 2


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


# The colors of the 80 COCO classes, for reference (ids past 80 keep following the rule).
PALETTE: tuple[tuple[int, int, int], ...] = tuple(color_for(i) for i in range(80))


def text_color(bgr: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black or white, whichever contrasts more with ``bgr`` (WCAG relative luminance)."""
    lin = [(c / 255) / 12.92 if c <= 10 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in bgr]
    luminance = 0.0722 * lin[0] + 0.7152 * lin[1] + 0.2126 * lin[2]
    # Contrast with black (L + 0.05) / 0.05 beats contrast with white 1.05 / (L + 0.05) here:
    return (0, 0, 0) if luminance > (1.05 * 0.05) ** 0.5 - 0.05 else (255, 255, 255)


def line_width(width: int, height: int) -> int:
    """Box line width in pixels: 2 on small images, growing with the image (10 at 4000 px)."""
    return max(2, round((width + height) / 2 * 0.003))


def font_scale(width: int, height: int, box_w: float, box_h: float) -> float:
    """Hershey font scale for one label: by the image (0.5 at about 550 px), smaller for a
    small box so its tab does not bury it, and never below `MIN_FONT_SCALE`."""
    by_image = (width + height) / 2 / 1100
    by_box = math.sqrt(max(box_w * box_h, 0.0)) / 70
    return max(MIN_FONT_SCALE, min(by_image, by_box))


def label_text(name: str, score: float, max_chars: int = MAX_NAME_CHARS) -> str:
    """The drawn text: the name cut to ``max_chars`` ("..." marks the cut) and made ASCII
    (Hershey fonts draw nothing else; every other character becomes "?"), then the score."""
    head = name[: max_chars + 1]
    if len(head) > max_chars:
        head = head[:max_chars] + "..."
    safe = "".join(c if " " <= c <= "~" else "?" for c in head)
    return f"{safe} {score:.2f}"


class Tab(NamedTuple):
    """One label as drawn: its text and font, and its tab (x1, y1, x2, y2) in pixels."""

    text: str
    scale: float
    thickness: int
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


def label_tabs(dets: Detections, width: int, height: int) -> list[Tab]:
    """The labels `annotate` draws for ``dets`` on a ``width`` x ``height`` image, in
    detection order: text, font and tab rectangle (laid out by `label_layout`)."""
    lw = line_width(width, height)
    texts: list[str] = []
    scales: list[float] = []
    thicknesses: list[int] = []
    sizes: list[tuple[int, int]] = []
    names = dets.names
    tracks = dets.track_ids.tolist() if dets.track_ids is not None else [-1] * len(dets)
    for box, cid, score, tid in zip(
        dets.xyxy.tolist(), dets.class_ids.tolist(), dets.scores.tolist(), tracks, strict=True
    ):
        name = names[cid] if 0 <= cid < len(names) else str(cid)
        name = f"#{tid} {name}" if tid >= 0 else name  # a tracked object: its id first
        scale = font_scale(width, height, box[2] - box[0], box[3] - box[1])
        thickness = max(1, round(scale * 1.4))
        text = label_text(name, score)
        w, h = _tab_size(text, scale, thickness, lw)
        chars = min(len(name), MAX_NAME_CHARS)
        while w > width and chars > 0:  # wider than the image: cut the name further
            chars -= 1
            text = label_text(name, score, chars)
            w, h = _tab_size(text, scale, thickness, lw)
        texts.append(text)
        scales.append(scale)
        thicknesses.append(thickness)
        sizes.append((w, h))
    order = np.argsort(-dets.scores, kind="stable")
    rects = np.zeros((len(dets), 4), dtype=np.int64)
    if len(dets):
        # Tabs attach to the outer edge of the box line, which is centred on the box edge.
        outer = np.round(dets.xyxy[order]) + np.array([-1, -1, 1, 1]) * (lw // 2)
        rects[order] = label_layout(outer, np.array(sizes)[order], width, height)
    return [
        Tab(t, s, k, (r[0], r[1], r[2], r[3]))
        for t, s, k, r in zip(texts, scales, thicknesses, rects.tolist(), strict=True)
    ]


def _tab_size(text: str, scale: float, thickness: int, lw: int) -> tuple[int, int]:
    (tw, th), base = cv2.getTextSize(text, _FONT, scale, thickness)
    pad = _pad(scale, lw)
    return tw + 2 * pad, th + base + pad


def _pad(scale: float, lw: int) -> int:
    return max(1, round(3 * scale), lw // 2)


def annotate(image: npt.NDArray[np.uint8], dets: Detections) -> npt.NDArray[np.uint8]:
    """A copy of ``image`` with every detection drawn; the input array is never modified.

    Boxes first, weakest under strongest; then the label tabs, also weakest first, so no box
    line crosses a label and the strongest label ends on top where tabs must overlap.
    """
    out = image.copy()
    height, width = out.shape[:2]
    lw = line_width(width, height)
    order = np.argsort(dets.scores, kind="stable").tolist()
    boxes = np.round(dets.xyxy).astype(np.int64).tolist()
    colors = [color_for(c) for c in dets.class_ids.tolist()]
    for i in order:
        x1, y1, x2, y2 = boxes[i]
        cv2.rectangle(out, (x1, y1), (x2, y2), colors[i], lw, cv2.LINE_AA)
    tabs = label_tabs(dets, width, height)
    for i in order:
        tab = tabs[i]
        x1, y1, x2, y2 = tab.rect
        cv2.rectangle(out, (x1, y1), (x2 - 1, y2 - 1), colors[i], -1)
        pad = _pad(tab.scale, lw)
        (_, th), _ = cv2.getTextSize(tab.text, _FONT, tab.scale, tab.thickness)
        cv2.putText(
            out, tab.text, (x1 + pad, y1 + pad // 2 + th), _FONT, tab.scale,
            text_color(colors[i]), tab.thickness, cv2.LINE_AA,
        )  # fmt: skip
    return out
