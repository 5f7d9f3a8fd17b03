"""Annotation: boxes and "dog 0.87" labels drawn on a copy of the image.

Deterministic: each class always gets the same color from a fixed palette, and line width
and font scale follow the image size, so labels read on a 300 px thumbnail and on a 4000 px
photo alike. Label tabs are kept inside the image.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from yolocli.detections import Detections

# 20 well-separated colors (BGR), in a fixed order; class id i uses PALETTE[i % 20].
PALETTE: tuple[tuple[int, int, int], ...] = (
    (56, 56, 255), (151, 157, 255), (31, 112, 255), (29, 178, 255), (49, 210, 207),
    (10, 249, 72), (23, 204, 146), (134, 219, 61), (52, 147, 26), (187, 212, 0),
    (168, 153, 44), (255, 194, 0), (147, 69, 52), (255, 115, 100), (236, 24, 0),
    (255, 56, 132), (133, 0, 82), (255, 56, 203), (200, 149, 255), (199, 55, 255),
)  # fmt: skip
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def color_for(class_id: int) -> tuple[int, int, int]:
    return PALETTE[class_id % len(PALETTE)]


def line_width(width: int, height: int) -> int:
    """Box line width in pixels: 2 on small images, growing with the image (10 at 4000 px)."""
    return max(2, round((width + height) / 2 * 0.003))


def _text_color(bgr: tuple[int, int, int]) -> tuple[int, int, int]:
    b, g, r = bgr
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 150 else (255, 255, 255)


def annotate(image: npt.NDArray[np.uint8], dets: Detections) -> npt.NDArray[np.uint8]:
    """A copy of ``image`` with every detection drawn; the input array is never modified."""
    out = image.copy()
    height, width = out.shape[:2]
    lw = line_width(width, height)
    scale = lw / 3
    thickness = max(lw - 1, 1)
    # Draw the weakest first, so the strongest boxes and labels end up on top.
    order = np.argsort(dets.scores, kind="stable")
    labels = dets.labels
    boxes = np.round(dets.xyxy).astype(np.int64)
    for i in order.tolist():
        x1, y1, x2, y2 = boxes[i].tolist()
        color = color_for(int(dets.class_ids[i]))
        cv2.rectangle(out, (x1, y1), (x2, y2), color, lw, cv2.LINE_AA)
        text = f"{labels[i]} {dets.scores[i]:.2f}"
        (tw, th), base = cv2.getTextSize(text, _FONT, scale, thickness)
        tab_h = th + base + lw
        # Above the box if it fits, else just inside its top edge; never past the right edge.
        top = y1 - tab_h if y1 - tab_h >= 0 else min(y1, height - tab_h)
        left = min(max(x1 - lw // 2, 0), max(width - tw - lw, 0))
        top = max(top, 0)
        cv2.rectangle(out, (left, top), (left + tw + lw, top + tab_h), color, -1, cv2.LINE_AA)
        cv2.putText(
            out, text, (left + lw // 2, top + th + lw // 2), _FONT, scale,
            _text_color(color), thickness, cv2.LINE_AA,
        )  # fmt: skip
    return out
