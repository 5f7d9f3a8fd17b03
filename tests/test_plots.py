"""Plots of an evaluation: real PNG files, and one clear line without matplotlib."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import pytest

from yolocli.errors import YolocliError
from yolocli.eval.evaluate import Found, Truth, evaluate
from yolocli.eval.plots import MATRIX, OVERALL, PER_CLASS, PlotError, check_available, plot_all

NAMES = {0: "person", 1: "traffic/light", 2: "never seen"}


def small_evaluation() -> object:
    truths = [Truth.of([[0, 0, 50, 50], [100, 100, 40, 40]], [0, 1]), Truth.of([], [])]
    found = [
        Found.of([[0, 0, 50, 50], [100, 100, 40, 45], [300, 0, 9, 9]], [0.9, 0.6, 0.3], [0, 1, 0]),
        Found.of([[5, 5, 20, 20]], [0.8], [2]),
    ]
    return evaluate(truths, found, [0, 1, 2])


def test_plots_are_pngs(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    written = plot_all(small_evaluation(), NAMES, tmp_path / "plots")  # type: ignore[arg-type]
    names = sorted(p.relative_to(tmp_path / "plots").as_posix() for p in written)
    # one curve file per class with ground truth; a "/" in a name does not make a folder
    assert names == sorted(
        [OVERALL, MATRIX, f"{PER_CLASS}/person.png", f"{PER_CLASS}/traffic_light.png"]
    )
    for path in written:
        image = cv2.imread(str(path))
        assert image is not None, path
        assert min(image.shape[:2]) >= 300


def test_missing_matplotlib_is_one_line_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # what an absent package looks like
    with pytest.raises(PlotError) as info:
        check_available()
    assert isinstance(info.value, YolocliError)
    assert "yolocli[plots]" in str(info.value)
    assert "\n" not in str(info.value)
