"""The wheel carries everything yolocli needs at run time, so it works from any folder."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO, WEIGHTS_CACHE


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(REPO)],
        check=True,
    )
    (built,) = out.glob("yolocli-*.whl")
    return built


def test_wheel_contains_configs_and_type_marker(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in (
        "yolocli/configs/models.toml",
        "yolocli/configs/coco.names",
        "yolocli/configs/yolov3.cfg",
        "yolocli/configs/yolov3-tiny.cfg",
        "yolocli/configs/yolov4.cfg",
        "yolocli/configs/yolov4-tiny.cfg",
        "yolocli/py.typed",
        "yolocli/cli/__init__.py",
        "yolocli/fonts/DejaVuSansCondensed-Bold.ttf",  # label text (yolocli.draw)
        "yolocli/fonts/LICENSE-DejaVu.txt",
    ):
        assert needed in names
    assert not any(name.startswith("tests/") for name in names)


def test_installed_wheel_runs_from_an_unrelated_folder(
    wheel: Path, tmp_path: Path, tiny_weights: Path
) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": str(target),
        "YOLOCLI_HOME": str(WEIGHTS_CACHE),
        "YOLOCLI_OFFLINE": "1",
    }
    where = subprocess.run(
        [sys.executable, "-c", "import yolocli; print(yolocli.__file__)"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert where.stdout.startswith(str(target))
    paths = subprocess.run(
        [sys.executable, "-m", "yolocli", "models", "path", "yolov3-tiny"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
    )
    assert paths.returncode == 0, paths.stderr
    found = {line.split("\t")[0]: line.split("\t")[1] for line in paths.stdout.splitlines()}
    assert all(line.endswith("\tinstalled") for line in paths.stdout.splitlines())
    assert found["cfg"].startswith(str(target / "yolocli" / "configs"))
    assert found["weights"] == str(tiny_weights)
