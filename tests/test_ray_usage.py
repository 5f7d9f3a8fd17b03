"""``detect --ray`` usage errors and the missing extra: no cluster needed, so these run in every
environment (tests/test_ray.py needs Ray)."""

from __future__ import annotations

import importlib.util

import pytest

from tests.conftest import DATA, run_cli

IMAGES = str(DATA / "images")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--unordered",), "--unordered is about a Ray run: add --ray ADDRESS"),
        (("--records-to", "found/"), "--records-to is about a Ray run"),
        (("-o", "s3://bucket/out"), "s3://bucket/out: object-store URIs are read and written by"),
        (("--ray", "local", "--records-to", "found/"), "--records-to has the cluster write only"),
    ],
)
def test_cluster_options_are_checked_before_any_work(args: tuple[str, ...], message: str) -> None:
    got = run_cli("detect", IMAGES, *args)
    assert got.exit_code == 2
    assert message in got.stderr


def test_a_uri_source_without_ray_says_how() -> None:
    got = run_cli("detect", "s3://bucket/photos/", "--no-save")
    assert got.exit_code == 2
    assert "add --ray ADDRESS (--ray local runs one here)" in got.stderr


@pytest.mark.skipif(importlib.util.find_spec("ray") is not None, reason="Ray is installed here")
def test_without_the_extra_ray_names_it(use_real_store: object) -> None:
    got = run_cli("detect", IMAGES, "--ray", "local", "--no-save")
    assert got.exit_code == 1
    assert "--ray needs Ray: pip install 'yolocli[ray]'" in got.stderr
