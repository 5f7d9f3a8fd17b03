"""Annotation: deterministic, scaled to the image, labels inside it, input untouched."""

from __future__ import annotations

import numpy as np
import pytest

from yolocli import Detections
from yolocli.draw import PALETTE, annotate, color_for, line_width


def one(box: list[float], cls: int = 16, score: float = 0.87) -> Detections:
    return Detections(
        np.array([box]), np.array([score]), np.array([cls]), names=[str(i) for i in range(80)]
    )


def test_input_is_never_modified_and_size_is_kept() -> None:
    img = np.full((120, 200, 3), 90, np.uint8)
    before = img.copy()
    out = annotate(img, one([20, 30, 150, 100]))
    np.testing.assert_array_equal(img, before)
    assert out.shape == img.shape
    assert not np.array_equal(out, img)


def test_drawing_is_deterministic_and_colors_follow_the_class() -> None:
    img = np.zeros((200, 300, 3), np.uint8)
    d = one([10, 40, 200, 180], cls=3)
    np.testing.assert_array_equal(annotate(img, d), annotate(img, d))
    assert color_for(3) == color_for(3 + len(PALETTE)) == PALETTE[3]
    drawn = annotate(img, d)
    assert tuple(drawn[110, 10].tolist()) == PALETTE[3]  # the left edge of the box


@pytest.mark.parametrize(("size", "width"), [((300, 200), 2), ((1000, 750), 3), ((4000, 3000), 10)])
def test_line_width_grows_with_the_image(size: tuple[int, int], width: int) -> None:
    assert line_width(*size) == width


@pytest.mark.parametrize(
    "box", [[0, 0, 60, 40], [250, 5, 300, 60], [0, 170, 300, 200], [280, 0, 300, 200]]
)
def test_label_tab_stays_inside_the_image(box: list[float]) -> None:
    """Boxes at every edge: the filled tab (the box color) is drawn, and never clipped away."""
    img = np.zeros((200, 300, 3), np.uint8)
    drawn = annotate(img, one(box, cls=0))
    filled = np.all(drawn == PALETTE[0], axis=2)
    rows = np.flatnonzero(filled.sum(axis=1) > 20)  # rows crossed by the tab's fill
    assert rows.size >= 5
