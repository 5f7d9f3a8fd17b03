"""The recipe: which darknet a model runs as, why, and what that changes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import DATA, REPO, run_cli
from yolocli.detector import Detector, compiled
from yolocli.errors import ModelError, OptionError
from yolocli.families.darknet import cfg as darknet
from yolocli.models.registry import config_dir, load_registry
from yolocli.recipe import Recipe, darknet_recipe

CFGS = config_dir()


def sections(text: str) -> list[darknet.Section]:
    return darknet.parse_cfg(text)


def recipe_of(name: str, **kwargs: object) -> Recipe:
    """The recipe of registered model ``name``, as the registry states its flavour."""
    spec = load_registry().get(name)
    text = (CFGS / spec.cfg.name).read_text()
    return darknet_recipe(sections(text), registered=spec.darknet, **kwargs)  # type: ignore[arg-type]


def test_the_registry_says_which_darknet_made_each_model() -> None:
    flavours = {name: spec.darknet for name, spec in load_registry().models.items()}
    assert flavours["yolov4"] == flavours["yolov4-tiny"] == "alexeyab"
    assert flavours["yolov3"] == flavours["yolov3-tiny"] == "pjreddie"


@pytest.mark.parametrize(
    ("name", "flavour", "letterbox", "bn", "nms_kind"),
    [
        ("yolov3-tiny", "pjreddie", True, "pjreddie", "iou"),
        ("yolov3", "pjreddie", True, "pjreddie", "iou"),
        # AlexeyAB stretches unless letter_box=1; both yolov4 cfgs say nms_kind=greedynms
        ("yolov4-tiny", "alexeyab", False, "alexeyab", "diou"),
        ("yolov4", "alexeyab", False, "alexeyab", "diou"),
    ],
)
def test_registered_models_recipes(
    name: str, flavour: str, letterbox: bool, bn: str, nms_kind: str
) -> None:
    recipe = recipe_of(name)
    assert (recipe.flavour, recipe.letterbox, recipe.bn, recipe.nms_kind) == (
        flavour,
        letterbox,
        bn,
        nms_kind,
    )
    assert recipe.beta_nms == 0.6  # greedynms' fixed exponent
    assert "registry" in recipe.why


NET = "[net]\nwidth=64\nheight=64\n"
YOLO = "[yolo]\nmask=0\nanchors=10,14\nclasses=1\nnum=1\n"


@pytest.mark.parametrize(
    ("extra_net", "extra_yolo", "activation", "flavour", "because"),
    [
        ("", "", "leaky", "pjreddie", "nothing only AlexeyAB"),
        ("", "scale_x_y=1.05\n", "leaky", "alexeyab", "scale_x_y"),
        ("", "nms_kind=greedynms\n", "leaky", "alexeyab", "nms_kind"),
        ("", "new_coords=1\n", "logistic", "alexeyab", "new_coords"),
        ("letter_box=1\n", "", "leaky", "alexeyab", "letter_box"),
        ("mosaic=1\n", "", "leaky", "alexeyab", "mosaic"),
        ("", "", "mish", "alexeyab", "activation=mish"),
    ],
)
def test_a_cfg_tells_its_darknet_by_the_keys_only_alexeyab_reads(
    extra_net: str, extra_yolo: str, activation: str, flavour: str, because: str
) -> None:
    text = (
        NET + extra_net + f"[convolutional]\nfilters=6\nsize=1\nactivation={activation}\n"
        + YOLO + extra_yolo
    )  # fmt: skip
    recipe = darknet_recipe(sections(text))
    assert recipe.flavour == flavour
    assert because in recipe.why


@pytest.mark.parametrize(
    ("net", "yolo", "letterbox", "nms_kind", "beta"),
    [
        ("", "", False, "iou", 0.6),
        ("letter_box=1\n", "", True, "iou", 0.6),
        ("letter_box=0\n", "nms_kind=greedynms\nbeta_nms=0.9\n", False, "diou", 0.6),
        ("", "nms_kind=diounms\nbeta_nms=0.8\n", False, "diou", 0.8),
        ("", "nms_kind=diounms\n", False, "diou", 0.6),
        ("", "nms_kind=cornersnms\n", False, "iou", 0.6),  # not for detector test's NMS kinds
    ],
)
def test_alexeyab_reads_letter_box_nms_kind_and_beta_nms(
    net: str, yolo: str, letterbox: bool, nms_kind: str, beta: float
) -> None:
    text = NET + net + "[convolutional]\nfilters=6\nsize=1\n" + YOLO + "scale_x_y=1.1\n" + yolo
    recipe = darknet_recipe(sections(text))
    assert (recipe.flavour, recipe.letterbox, recipe.nms_kind) == ("alexeyab", letterbox, nms_kind)
    assert recipe.beta_nms == pytest.approx(beta)


def test_the_last_yolo_layer_decides_the_nms_as_in_test_detector() -> None:
    text = (
        NET + "[convolutional]\nfilters=6\nsize=1\n" + YOLO + "nms_kind=greedynms\n"
        + "[route]\nlayers=-2\n[convolutional]\nfilters=6\nsize=1\n" + YOLO
    )  # fmt: skip
    assert darknet_recipe(sections(text)).nms_kind == "iou"


def test_the_caller_overrides_flavour_and_input_mode() -> None:
    forced = recipe_of("yolov4-tiny", flavour="pjreddie")
    assert (forced.flavour, forced.bn, forced.nms_kind, forced.letterbox) == (
        "pjreddie", "pjreddie", "iou", True,
    )  # fmt: skip
    assert "--darknet pjreddie" in forced.why
    boxed = recipe_of("yolov4-tiny", letterbox=True)
    assert (boxed.flavour, boxed.letterbox, boxed.letterbox_from) == (
        "alexeyab",
        True,
        "the caller",
    )
    assert recipe_of("yolov3", flavour="alexeyab").nms_kind == "iou"  # its cfg has no nms_kind
    with pytest.raises(OptionError, match="pjreddie, alexeyab"):
        recipe_of("yolov3", flavour="opencv")


def test_describe_says_which_darknet_and_why() -> None:
    line = recipe_of("yolov4-tiny").describe()
    assert line.startswith("darknet (alexeyab), because the registry says")
    assert "input stretch ([net] letter_box=0)" in line
    assert "DIoU-NMS (beta 0.6)" in line


def test_batch_norm_folds_by_each_darknets_formula() -> None:
    """pjreddie: scale / (sqrt(var) + 1e-6); AlexeyAB: scale / sqrt(var + 1e-5), in double."""
    weights = np.full((2, 1, 1, 1), 2.0, np.float32)
    bn = (np.array([1.0, 3.0], np.float32), np.array([0.5, -1.0], np.float32),
          np.array([1e-4, 4.0], np.float32))  # fmt: skip
    params = darknet.ConvWeights(np.array([0.1, 0.2], np.float32), bn, weights)
    for flavour, factor in [
        ("pjreddie", bn[0] / (np.sqrt(bn[2].astype(np.float64)) + 1e-6)),
        ("alexeyab", bn[0] / np.sqrt(bn[2].astype(np.float64) + 1e-5)),
    ]:
        w, b = Recipe(flavour=flavour, bn=flavour).fold_bn(params)
        np.testing.assert_allclose(w[:, 0, 0, 0], 2.0 * factor, rtol=1e-6)
        np.testing.assert_allclose(b, params.biases - bn[1] * factor, rtol=1e-6)
    # small variances are where the two differ: here by 5%
    pj = Recipe().fold_bn(params)[0][0, 0, 0, 0]
    ab = Recipe(flavour="alexeyab", bn="alexeyab").fold_bn(params)[0][0, 0, 0, 0]
    assert ab < 0.96 * pj


def test_the_compiled_graph_is_cached_per_flavour(tmp_path: Path) -> None:
    """Same cfg, weights and size, other flavour: another graph, with other numbers."""
    from tests.alexeyab import write_weights

    cfg = DATA / "alexeyab" / "yolov4-tiny-new-coords.cfg"
    weights = tmp_path / "w.weights"
    write_weights(cfg.read_text(), weights, 3)
    paths = {}
    for flavour in ("alexeyab", "pjreddie"):
        det = Detector(cfg=cfg, weights=weights, size=64, backend="onnxruntime", darknet=flavour)
        paths[flavour] = det.compiled()
        assert det.recipe.flavour == flavour
        assert compiled(det.info, 64, 64) == paths[flavour]  # found again, not remade
    assert paths["alexeyab"] != paths["pjreddie"]
    assert paths["alexeyab"].read_bytes() != paths["pjreddie"].read_bytes()


def test_verbose_and_profile_say_which_darknet_ran_and_why(tmp_path: Path) -> None:
    from tests.alexeyab import write_weights

    cfg = REPO / "configs" / "yolov4-tiny.cfg"
    weights = tmp_path / "w.weights"
    write_weights(cfg.read_text(), weights, 3)
    image = str(DATA / "images" / "chelsea.png")
    args = ["--cfg", str(cfg), "--weights", str(weights), "--size", "160", "--no-save"]
    result = run_cli("detect", image, *args, "-v", "-f", "jsonl")
    assert result.exit_code == 0, result.output
    assert "yolov4-tiny runs as darknet (alexeyab), because the cfg uses" in result.stderr
    assert json.loads(result.stdout)["image"].endswith("chelsea.png")
    quiet = run_cli("detect", image, *args, "-f", "jsonl")
    assert "runs as" not in quiet.stderr  # a note for -v, not for every run
    profiled = run_cli("detect", image, *args, "--darknet", "pjreddie", "--profile")
    assert "model runs as darknet (pjreddie), because it was asked for" in profiled.stderr
    bad = run_cli("detect", image, *args, "--darknet", "opencv")
    assert bad.exit_code == 2
    assert "'opencv' is not one of 'pjreddie', 'alexeyab'" in bad.stderr


def test_slicing_and_workers_follow_the_recipe(tmp_path: Path) -> None:
    """Tiles are prepared and kept as the model's darknet would (stretched, DIoU-NMS), the
    merge measures with DIoU by default, and worker processes get the same recipe."""
    from tests.alexeyab import write_weights
    from tests.oracle import photo
    from yolocli.postprocess import Postprocess
    from yolocli.slicing import Slicer

    cfg = REPO / "configs" / "yolov4-tiny.cfg"
    weights = tmp_path / "w.weights"
    write_weights(cfg.read_text(), weights, 1)
    post = Postprocess(conf=0.05, max_det=0)
    det = Detector(cfg=cfg, weights=weights, size=160, backend="onnxruntime", postprocess=post)
    assert Slicer(200).match is None
    image = photo("coffee.png")
    default = Slicer(200).detect(det, image)
    explicit = Slicer(200, match="diou").detect(det, image)
    assert len(default) > 10
    np.testing.assert_array_equal(default.xyxy, explicit.xyxy)
    np.testing.assert_array_equal(default.scores, explicit.scores)

    images = [str(DATA / "images" / name) for name in ("coffee.png", "chelsea.png")]
    args = ["--cfg", str(cfg), "--weights", str(weights), "--size", "160", "--conf", "0.05",
            "--max-det", "0", "--no-save", "-f", "jsonl"]  # fmt: skip
    here = run_cli("detect", *images, *args, "-j", "1")
    workers = run_cli("detect", *images, *args, "-j", "2")
    assert here.exit_code == workers.exit_code == 0, workers.output
    assert here.stdout == workers.stdout
    first = json.loads(here.stdout.splitlines()[0])
    assert len(first["detections"]) == len(det.detect(image))


def test_export_folds_batch_norm_as_the_models_darknet(tmp_path: Path) -> None:
    """export follows the recipe too: the registry's or the cfg's darknet, or --darknet's."""
    from tests.alexeyab import write_weights

    cfg = DATA / "alexeyab" / "yolov4-tiny-new-coords.cfg"
    weights = tmp_path / "w.weights"
    write_weights(cfg.read_text(), weights, 3)
    out = {}
    for flag in ([], ["--darknet", "alexeyab"], ["--darknet", "pjreddie"]):
        path = tmp_path / f"{len(out)}.onnx"
        result = run_cli("export", "--cfg", str(cfg), "--weights", str(weights), "-o", str(path),
                         "--size", "64", *flag)  # fmt: skip
        assert result.exit_code == 0, result.output
        out[" ".join(flag)] = path.read_bytes()
    assert out[""] == out["--darknet alexeyab"]  # the cfg says AlexeyAB's
    assert out[""] != out["--darknet pjreddie"]


def test_a_darknet_recipe_only_takes_darknets_input() -> None:
    """Its preprocessor implements darknet's preparation only: asking for another is an
    error, not silently ignored (another family brings its own preprocessor)."""
    with pytest.raises(ModelError, match="feeds darknet"):
        Recipe(pad_value=114 / 255)
    with pytest.raises(OptionError, match="darknet"):
        Recipe(flavour="ultralytics")
    assert Recipe(family="other", flavour="x", pad_value=114 / 255).pad_value == 114 / 255
