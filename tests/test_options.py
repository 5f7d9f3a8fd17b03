"""Every public setting of `Postprocess`, `Detector` and `export_onnx` is checked for its type
and range: each bad value is an `OptionError` naming the setting, before any work (no weights
fetched, no graph compiled). The table of bad values is keyed by parameter name and must cover
every parameter the signatures have, so a new setting cannot go unchecked."""

from __future__ import annotations

import dataclasses
import inspect
import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from yolocli import options
from yolocli.detector import THREADS_PER_CORE, Detector, export_onnx
from yolocli.errors import OptionError
from yolocli.models.store import Store
from yolocli.postprocess import Postprocess, class_ids
from yolocli.slicing import Slicer

COCO = (Path(__file__).parent.parent / "configs" / "coco.names").read_text().splitlines()

# Wrong values for every parameter: wrong types first (never coerced), then out of range.
BAD_POSTPROCESS = {
    "conf": ["0.5", None, True, math.nan, math.inf, 1.5, -0.1, [0.5]],
    "nms": ["0.45", True, math.nan, 2, -1],
    "classes": [1.5, {"person"}.__iter__(), [None], [True], [0.0], (), "", " , "],
    "agnostic": ["no", "yes", 0, 1, None],
    "single_label": ["no", 1, None],
    "max_det": [1.5, "300", True, -1, None],
    "class_conf": ["person=0.5", [("person", 0.5)], {"person": "0.5"}, {"car": 2.0},
                   {None: 0.5}, {"car": True}, {"person,car": 0.5}, {"": 0.5}],
}  # fmt: skip

BAD_DETECTOR = {
    "model": ["", "  ", 3, Path("yolov3-tiny")],
    "size": [100, 0, -32, 32000, 416.0, "big", "640x", (416,), (416, 416, 3), True, "41 6"],
    "device": ["gpu", None, 0],
    "backend": ["fast", None, 1],
    "threads": [0, -1, 1.5, "4", True, THREADS_PER_CORE * 4096],
    "letterbox": ["no", 0],  # None: the model's own input mode
    "darknet": ["AlexeyAB", "darknet", 1, True],
    "family": ["yolov8", "", 3],
    "precision": ["fp16", "INT8", None, 8],
    "calibration": ["photos/", 3, [3], [None]],
    "cfg": ["", 3],
    "weights": ["", 3],
    "names": ["", 3.0],
    "store": ["/tmp/store", 3],
    "postprocess": [{"conf": 0.5}, 0.5],
}
BAD_SLICER = {
    "size": ["416", 16, 416.0, (416,), True, None],
    "overlap": ["0.2", 1.0, -0.1, math.nan, None],
    "scales": ["1,0.5", (), (0,), (1.5,), ("1",), 1.0],
    "full": ["no", 1, None],
    "merge": ["wbf", None],
    "match": ["giou", 1],  # None: the model's own measure
    "threshold": ["0.5", 2.0, math.nan],
    "edge": ["0.04", 0.5, -1],
    "batch": [0, 1.5, "8", True],
}
BAD_EXPORT = {
    "dest": ["", 3, None],
    "model": BAD_DETECTOR["model"],
    "size": BAD_DETECTOR["size"],
    "cfg": BAD_DETECTOR["cfg"],
    "weights": BAD_DETECTOR["weights"],
    "names": BAD_DETECTOR["names"],
    "store": BAD_DETECTOR["store"],
    "darknet": BAD_DETECTOR["darknet"],
    "decoded": ["yes", 1, None],
    "nms": [{"conf": 0.5}, 0.45],
    "force": ["yes", 1, None],
}


def test_every_parameter_has_bad_values_in_the_table() -> None:
    assert {f.name for f in dataclasses.fields(Postprocess)} == set(BAD_POSTPROCESS)
    assert set(inspect.signature(Detector).parameters) == set(BAD_DETECTOR)
    assert set(inspect.signature(export_onnx).parameters) == set(BAD_EXPORT)
    assert {f.name for f in dataclasses.fields(Slicer)} == set(BAD_SLICER)


def _cases(table: dict[str, list[object]]) -> list[tuple[str, object]]:
    return [(name, value) for name, values in table.items() for value in values]


@pytest.mark.parametrize(("option", "value"), _cases(BAD_POSTPROCESS))
def test_bad_postprocess_settings_are_option_errors_naming_them(option: str, value: object) -> None:
    with pytest.raises(OptionError) as err:
        Postprocess(**{option: value}).for_names(COCO)
    assert err.value.option.split("[")[0] == option


@pytest.mark.parametrize(("option", "value"), _cases(BAD_SLICER))
def test_bad_slicer_settings_are_option_errors_naming_them(option: str, value: object) -> None:
    kwargs: dict[str, object] = {"size": 416, option: value}
    with pytest.raises(OptionError) as err:
        Slicer(**kwargs)  # type: ignore[arg-type]
    assert err.value.option == ("slice" if option == "size" else option)


@pytest.mark.parametrize(("option", "value"), _cases(BAD_DETECTOR))
def test_bad_detector_settings_are_option_errors_before_any_download(
    tmp_path: Path, option: str, value: object
) -> None:
    """An empty offline store: a fetch would fail with a DownloadError, not an OptionError."""
    store = Store.from_env({"YOLOCLI_HOME": str(tmp_path), "YOLOCLI_OFFLINE": "1"})
    kwargs: dict[str, object] = {"store": store, option: value}
    if option in ("cfg", "weights"):  # a custom model needs both
        kwargs = {**kwargs, "cfg": tmp_path / "x.cfg", "weights": tmp_path / "x.weights"}
        kwargs[option] = value
    with pytest.raises(OptionError) as err:
        Detector(**kwargs)  # type: ignore[arg-type]
    assert err.value.option == option
    assert not list(tmp_path.rglob("*.part"))
    assert not list(tmp_path.rglob("*.weights"))


@pytest.mark.parametrize(("option", "value"), _cases(BAD_EXPORT))
def test_bad_export_settings_are_option_errors(tmp_path: Path, option: str, value: object) -> None:
    store = Store.from_env({"YOLOCLI_HOME": str(tmp_path), "YOLOCLI_OFFLINE": "1"})
    kwargs: dict[str, object] = {"dest": tmp_path / "x.onnx", "store": store, option: value}
    if option in ("cfg", "weights"):
        kwargs = {**kwargs, "cfg": tmp_path / "x.cfg", "weights": tmp_path / "x.weights"}
        kwargs[option] = value
    with pytest.raises(OptionError) as err:
        export_onnx(**kwargs)  # type: ignore[arg-type]
    assert err.value.option == ("output" if option == "dest" else option)


def test_good_values_in_every_spelling() -> None:
    import numpy as np

    post = Postprocess(conf=np.float32(0.25), nms=1, classes="person, car", agnostic=np.True_,
                       max_det=np.int64(5), class_conf={"Person": 0.5, 2: 0.3})  # fmt: skip
    assert (post.conf, post.nms, post.classes, post.agnostic, post.max_det) == (
        0.25, 1.0, ("person", "car"), True, 5,
    )  # fmt: skip
    resolved = post.for_names(COCO)
    assert resolved.classes == (0, 2)
    assert resolved.class_conf == ((0, 0.5), (2, 0.3))
    assert options.size("size", "640x384", 32, 4096) == (640, 384)
    assert options.size("size", (640, 384), 32, 4096) == (640, 384)
    assert options.size("size", 416, 32, 4096) == (416, 416)


# ------------------------------------------------------------------------ class names


@pytest.mark.parametrize(
    ("wanted", "ids"),
    [
        (["motorcycle", "dining table"], [3, 60]),  # COCO's spellings of darknet's names
        (["Person", "DOG", "Traffic Light"], [0, 16, 9]),  # any case
        (["airplane", "couch", "tv", "tvmonitor"], [4, 57, 62, 62]),
        (["0", 2, "motorbike"], [0, 2, 3]),
    ],
)
def test_classes_match_coco_spellings_in_any_case(wanted: list, ids: list[int]) -> None:
    assert class_ids(wanted, COCO) == ids


def test_an_unknown_class_still_gets_the_did_you_mean_hint() -> None:
    with pytest.raises(OptionError, match=r"unknown class 'Persn'; did you mean person\?"):
        class_ids(["Persn"], COCO)


# ------------------------------------------------------------------------ thresholds text


@pytest.mark.parametrize(
    ("text", "default", "per_class"),
    [
        ("0.25", 0.25, {}),
        ("0.25,person=0.5,car=0.3", 0.25, {"person": 0.5, "car": 0.3}),
        ("person=0.5", math.nan, {"person": 0.5}),
        (" 0.1 , dining table = 0.7 ", 0.1, {"dining table": 0.7}),
    ],
)
def test_threshold_text(text: str, default: float, per_class: dict) -> None:
    got_default, got = options.thresholds("conf", text)
    assert got == per_class
    assert got_default == default or (math.isnan(default) and math.isnan(got_default))


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "is empty"), ("0.2,0.3", "two default"), ("person=", "give a number"),
     ("=0.5", "class name is missing"), ("0.2,car=1.5", "must be in [0, 1]"), ("inf", "finite")],
)  # fmt: skip
def test_bad_threshold_text(text: str, message: str) -> None:
    with pytest.raises(OptionError) as err:
        options.thresholds("conf", text)
    assert message in err.value.message


@given(st.one_of(st.text(max_size=5), st.none(), st.lists(st.integers(), max_size=2)))
def test_size_takes_only_sizes(value: object) -> None:
    """Whatever it is given, a size is (w, h) in multiples of 32, or an OptionError."""
    outcome: object
    try:
        outcome = options.size("size", value, 32, 4096)
    except OptionError as err:
        outcome = err.option
    assert outcome == "size" or all(side % 32 == 0 for side in outcome)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("option", "value"),
    [("workers", 99_999), ("workers", 0), ("workers", "2"), ("threads", 10_000), ("batch", 0),
     ("max_bytes", 0), ("max_pixels", 1.5), ("stage_threads", 0)],
)  # fmt: skip
def test_pipeline_options_are_checked_too(option: str, value: object) -> None:
    """The library's own pipeline cannot be asked for 99,999 worker processes either."""
    from yolocli.run.pipeline import Options

    with pytest.raises(OptionError) as err:
        Options(**{option: value})  # type: ignore[arg-type]
    assert err.value.option == option
