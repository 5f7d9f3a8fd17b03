"""The store's decisions and configuration, without a network."""

from __future__ import annotations

from pathlib import Path

import pytest

from yolocli.errors import StoreError
from yolocli.registry import load_registry
from yolocli.store import Action, Store, default_home, local_action

TINY = load_registry().get("yolov3-tiny")


@pytest.mark.parametrize(
    ("exists", "stamp_current", "hash_matches", "action"),
    [
        (False, False, None, Action.FETCH),
        (True, True, None, Action.USE),
        (True, False, None, Action.HASH),
        (True, False, True, Action.USE),
        (True, False, False, Action.REFETCH),
    ],
)
def test_local_action(
    exists: bool, stamp_current: bool, hash_matches: bool | None, action: Action
) -> None:
    assert local_action(exists, stamp_current, hash_matches) is action


@pytest.mark.parametrize(
    ("env", "home"),
    [
        ({"YOLOCLI_HOME": "/data/models", "XDG_CACHE_HOME": "/xdg"}, "/data/models"),
        ({"XDG_CACHE_HOME": "/xdg"}, "/xdg/yolocli"),
        ({"XDG_CACHE_HOME": "relative/ignored"}, str(Path.home() / ".cache" / "yolocli")),
        ({}, str(Path.home() / ".cache" / "yolocli")),
    ],
)
def test_default_home(env: dict[str, str], home: str) -> None:
    assert str(default_home(env)) == home


def test_mirror_replaces_network_origins_but_not_bundled_files() -> None:
    store = Store.from_env({"YOLOCLI_HOME": "/s", "YOLOCLI_MIRROR": "https://m.example/darknet"})
    assert store.origins(TINY.weights) == ("https://m.example/darknet/yolov3-tiny.weights",)
    assert store.path(TINY.cfg).parent != Path("/s")
    assert store.origins(load_registry().get("yolov3").weights) == (
        "https://m.example/darknet/yolov3.weights",
    )


@pytest.mark.parametrize(
    ("value", "offline"), [("1", True), ("yes", True), ("0", False), ("", False)]
)
def test_offline_flag(value: str, offline: bool) -> None:
    assert Store.from_env({"YOLOCLI_OFFLINE": value}).offline is offline


def test_timeout_must_be_a_positive_number() -> None:
    assert Store.from_env({"YOLOCLI_TIMEOUT": "2.5"}).downloader.policy.read_timeout == 2.5
    with pytest.raises(
        StoreError, match="YOLOCLI_TIMEOUT must be a positive number of seconds, not 'soon'"
    ):
        Store.from_env({"YOLOCLI_TIMEOUT": "soon"})


def test_offline_missing_model_is_an_immediate_error_naming_the_variable(tmp_path: Path) -> None:
    store = Store.from_env({"YOLOCLI_HOME": str(tmp_path), "YOLOCLI_OFFLINE": "1"})
    with pytest.raises(StoreError, match="YOLOCLI_OFFLINE is set"):
        store.ensure(TINY.weights)
    assert list(tmp_path.iterdir()) == []


def test_stamp_trusts_an_untouched_file_and_rehashes_a_touched_one(
    tmp_path: Path, tiny_weights: Path
) -> None:
    store = Store.from_env({"YOLOCLI_HOME": str(tmp_path), "YOLOCLI_OFFLINE": "1"})
    installed = tmp_path / TINY.weights.name
    installed.write_bytes(tiny_weights.read_bytes())
    assert store.ensure(TINY.weights) == installed  # hashed once, then stamped
    assert (tmp_path / ".verified" / TINY.weights.name).exists()
    installed.write_bytes(b"\0" * TINY.weights.size)  # same size, new contents and mtime
    with pytest.raises(
        StoreError, match=r"is corrupt \(sha256 mismatch\) and YOLOCLI_OFFLINE is set"
    ):
        store.ensure(TINY.weights)
    assert installed.exists()  # offline, a bad file is reported, not deleted
