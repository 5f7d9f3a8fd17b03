"""Postprocess: validation of every setting, and what each one keeps, on hand-made rows."""

from __future__ import annotations

import numpy as np
import pytest

from yolocli.errors import OptionError
from yolocli.families.darknet.letterbox import Letterbox
from yolocli.postprocess import Postprocess

NAMES = ["person", "bicycle", "car", "dog"]
BOX = Letterbox(100, 100, 416, 416)  # square: network-relative 0..1 is image 0..100


def rows(*dets: tuple[float, float, float, float, int, float]) -> np.ndarray:
    """Candidate rows from (cx, cy, w, h, class, score), coordinates relative to the image."""
    out = np.zeros((len(dets), 5 + len(NAMES)), np.float32)
    for i, (cx, cy, w, h, cls, score) in enumerate(dets):
        out[i, :4] = (cx, cy, w, h)
        out[i, 4] = 1.0
        out[i, 5 + cls] = score
    return out


@pytest.mark.parametrize(
    ("kwargs", "option", "message"),
    [
        ({"conf": 1.5}, "conf", "must be in [0, 1], got 1.5"),
        ({"conf": -0.1}, "conf", "must be in [0, 1]"),
        ({"nms": 2}, "nms", "must be in [0, 1], got 2"),
        ({"max_det": -1}, "max_det", "must be >= 0"),
        ({"classes": ()}, "classes", "the list is empty"),
    ],
)
def test_bad_settings_name_the_option(kwargs: dict, option: str, message: str) -> None:
    with pytest.raises(OptionError) as err:
        Postprocess(**kwargs)
    assert err.value.option == option
    assert message in err.value.message


@pytest.mark.parametrize(
    ("classes", "ids"),
    [(("person", "car"), (0, 2)), (("3", 1), (1, 3)), ((" dog ", "dog"), (3,))],
)
def test_classes_by_name_id_or_digits(classes: tuple, ids: tuple) -> None:
    assert Postprocess(classes=classes).for_names(NAMES).classes == ids


@pytest.mark.parametrize(
    ("classes", "message"),
    [
        (("dgo",), "unknown class 'dgo'; did you mean dog?"),
        (("4",), "class id 4 is outside 0..3"),
        (("x" * 10_000,), "unknown class '" + "x" * 40 + "...'"),
    ],
)
def test_unknown_classes_are_refused_briefly(classes: tuple, message: str) -> None:
    with pytest.raises(OptionError, match="classes") as err:
        Postprocess(classes=classes).for_names(NAMES)
    assert message in str(err.value)
    assert len(str(err.value)) < 200


def test_agnostic_nms_removes_what_class_aware_nms_keeps() -> None:
    pair = rows((0.5, 0.5, 0.4, 0.4, 0, 0.9), (0.51, 0.5, 0.4, 0.4, 3, 0.8))
    assert len(Postprocess(conf=0.1).apply(pair, BOX, NAMES)) == 2
    agnostic = Postprocess(conf=0.1, agnostic=True).apply(pair, BOX, NAMES)
    assert agnostic.labels == ["person"]


def test_a_box_is_reported_once_per_class_unless_single_label() -> None:
    two = rows((0.5, 0.5, 0.4, 0.4, 0, 0.9))
    two[0, 5 + 3] = 0.6  # the same box also scores 0.6 as a dog
    assert Postprocess(conf=0.5).apply(two, BOX, NAMES).labels == ["person", "dog"]
    assert Postprocess(conf=0.5, single_label=True).apply(two, BOX, NAMES).labels == ["person"]


def test_conf_is_strict_classes_and_max_det_select() -> None:
    cands = rows(
        (0.2, 0.2, 0.1, 0.1, 0, 0.5),  # exactly at conf: not reported (darknet: > thresh)
        (0.5, 0.5, 0.1, 0.1, 1, 0.7),
        (0.8, 0.8, 0.1, 0.1, 2, 0.9),
    )
    post = Postprocess(conf=0.5)
    assert post.apply(cands, BOX, NAMES).labels == ["car", "bicycle"]
    only = Postprocess(conf=0.1, classes=("person",)).for_names(NAMES)
    assert only.apply(cands, BOX, NAMES, only.allowed(len(NAMES))).labels == ["person"]
    assert Postprocess(conf=0.1, max_det=1).apply(cands, BOX, NAMES).labels == ["car"]


def test_boxes_are_clipped_after_nms() -> None:
    edge = rows((0.0, 0.5, 0.4, 0.4, 0, 0.9))
    dets = Postprocess(conf=0.1).apply(edge, BOX, NAMES)
    np.testing.assert_allclose(dets.xyxy, [[0, 30, 20, 70]], atol=1e-4)


def test_classes_of_their_own_have_their_own_threshold() -> None:
    cands = rows(
        (0.2, 0.2, 0.1, 0.1, 0, 0.45),  # person: under its own 0.5
        (0.5, 0.5, 0.1, 0.1, 2, 0.15),  # car: over its own 0.1, under the default
        (0.8, 0.8, 0.1, 0.1, 3, 0.35),  # dog: over the default 0.3
        (0.3, 0.8, 0.1, 0.1, 1, 0.25),  # bicycle: under the default
    )
    post = Postprocess(conf=0.3, class_conf={"person": 0.5, "Car": 0.1}).for_names(NAMES)
    assert post.class_conf == ((0, 0.5), (2, 0.1))
    assert post.min_conf == 0.1  # what the decoder may drop before apply
    assert post.apply(cands, BOX, NAMES).labels == ["dog", "car"]
    single = Postprocess(conf=0.3, class_conf={"person": 0.5, "car": 0.1}, single_label=True)
    assert single.for_names(NAMES).apply(cands, BOX, NAMES).labels == ["dog", "car"]
