"""Darknet cfg and weights layouts: checked against the real published files' sizes."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from yolocli.darknet import (
    check_weights,
    describe,
    header_size,
    parse_cfg,
    read_cfg,
    with_threshold,
    write_random_weights,
)
from yolocli.errors import ModelError
from yolocli.registry import config_dir, load_registry

REGISTRY = load_registry()


@pytest.mark.parametrize("name", list(REGISTRY.models))
def test_cfg_layout_predicts_the_published_weights_size_exactly(name: str) -> None:
    """Tracing channels through every cfg gives the real files' byte counts: the layout
    code is right for yolov3, yolov3-tiny, yolov4 (mish, SPP) and yolov4-tiny (grouped routes)."""
    model = REGISTRY.get(name)
    _, network = read_cfg(config_dir() / model.cfg.name)
    assert network.weights_size() == model.weights.size
    assert network.classes == 80


def test_random_weights_have_the_real_layout(tmp_path: Path) -> None:
    _, network = read_cfg(config_dir() / "yolov4-tiny.cfg")
    out = tmp_path / "random.weights"
    write_random_weights(network, out)
    assert out.stat().st_size == REGISTRY.get("yolov4-tiny").weights.size
    assert struct.unpack("<iiiq", out.read_bytes()[:20]) == (0, 2, 0, 0)


def test_weights_for_another_network_are_refused(tmp_path: Path, tiny_weights: Path) -> None:
    cfg = config_dir() / "yolov3.cfg"
    _, network = read_cfg(cfg)
    with pytest.raises(ModelError, match=r"has 35,434,956 bytes, but yolov3.cfg needs 248,007,048"):
        check_weights(network, cfg, tiny_weights)


@pytest.mark.parametrize(
    ("head", "size"),
    [((0, 2, 0), 20), ((0, 1, 0), 16), ((1, 0, 0), 20), ((1000, 0, 0), 16)],
)
def test_header_size_follows_darknets_version_rule(
    tmp_path: Path, head: tuple[int, int, int], size: int
) -> None:
    path = tmp_path / "w.weights"
    path.write_bytes(struct.pack("<iii", *head) + b"\0" * 8)
    assert header_size(path) == size


def test_html_and_missing_files_are_named(tmp_path: Path) -> None:
    page = tmp_path / "yolov3.weights"
    page.write_bytes(b"\n<!DOCTYPE html><html><body>Not Found</body></html>")
    with pytest.raises(ModelError, match="is an HTML page, not a weights file"):
        header_size(page)
    with pytest.raises(ModelError, match="no such cfg file"):
        read_cfg(tmp_path / "missing.cfg")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("hello world", "not a darknet cfg line"),
        ("[convolutional]\nfilters=3\n", "must start with a \\[net\\] section"),
        ("[net]\n[convolutional]\nsize=3\n", "needs filters="),
        ("[net]\n[route]\nlayers=-4\n", "refers to missing layer -4"),
        ("[net]\n[transformer]\n", "unsupported layer \\[transformer\\]"),
    ],
)
def test_bad_cfgs_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        describe(parse_cfg(text, "x.cfg"), "x.cfg")


def test_with_threshold_rewrites_every_output_layer() -> None:
    text = (config_dir() / "yolov3-tiny.cfg").read_text()
    patched = parse_cfg(with_threshold(text + "\n[yolo]\nthresh = .7\nclasses=80\n", 0.05))
    outputs = [s for s in patched if s.type == "yolo"]
    assert len(outputs) == 3
    assert all(s.options["thresh"] == "0.05" for s in outputs)
    others = [s for s in patched if s.type != "yolo"]
    assert all("thresh" not in s.options for s in others)
