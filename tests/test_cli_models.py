"""``yolocli models …`` through the real entry point."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import Mirror, run_cli, spawn


def test_list_marks_the_default_and_shows_installed(mirror: Mirror) -> None:
    before = run_cli("models", "list")
    assert before.exit_code == 0
    lines = before.stdout.splitlines()
    assert lines[0].split() == ["NAME", "SIZE", "STATUS", "COMPILED", "DESCRIPTION"]
    assert lines[1].startswith("yolov3 *")
    assert lines[2].split()[:4] == ["yolov3-tiny", "35.4", "MB", "not"]

    assert run_cli("models", "download", "yolov3-tiny").exit_code == 0
    records = json.loads(run_cli("models", "list", "--json").stdout)
    by_name = {r["name"]: r for r in records}
    assert by_name["yolov3-tiny"]["installed"] is True
    assert by_name["yolov3"] == {**by_name["yolov3"], "default": True, "installed": False}


def test_path_says_where_files_are_without_fetching(mirror: Mirror) -> None:
    """A path lookup never starts a download: it says where and whether, exit 1 if missing."""
    before = run_cli("models", "path", "yolov3-tiny")
    assert before.exit_code == 1
    rows = [line.split("\t") for line in before.stdout.splitlines()]
    assert [r[0] for r in rows] == ["cfg", "weights", "names"]
    assert rows[1] == ["weights", str(mirror.installed), "not installed"]
    assert rows[0][2] == rows[2][2] == "installed"  # bundled with the package
    assert not mirror.installed.exists()
    assert mirror.server.seen == []
    assert "yolocli models download yolov3-tiny" in before.stderr
    only = run_cli("models", "path", "yolov3-tiny", "--file", "weights")
    assert (only.exit_code, only.stdout) == (1, f"{mirror.installed}\n")

    fetched = run_cli("models", "path", "yolov3-tiny", "--fetch")
    assert fetched.exit_code == 0
    rows = [line.split("\t") for line in fetched.stdout.splitlines()]
    assert all(Path(path).is_file() and state == "installed" for _, path, state in rows)


def test_remove_deletes_weights_and_partial_downloads(mirror: Mirror) -> None:
    assert run_cli("models", "download", "yolov3-tiny").exit_code == 0
    mirror.part.write_bytes(b"half")
    result = run_cli("models", "remove", "yolov3-tiny")
    assert result.exit_code == 0
    assert "removed yolov3-tiny (35.4 MB freed)" in result.stderr
    assert not mirror.installed.exists()
    assert not mirror.part.exists()
    assert run_cli("models", "remove", "yolov3-tiny").exit_code == 0  # idempotent


def test_verify_with_nothing_installed_is_fine_and_named_missing_model_fails(
    mirror: Mirror,
) -> None:
    assert run_cli("models", "verify").exit_code == 0
    named = run_cli("models", "verify", "yolov3-tiny")
    assert named.exit_code == 1
    assert "yolov3-tiny.weights: not installed" in named.stdout


@pytest.mark.parametrize("command", [["download"], ["verify"], ["path"], ["remove"]])
def test_unknown_model_is_a_usage_error_listing_known_models(command: list[str]) -> None:
    result = run_cli("models", *command, "yolov9")
    assert result.exit_code == 2
    assert (
        "unknown model 'yolov9'; known models: yolov3, yolov3-tiny, yolov4, yolov4-tiny"
        in result.stderr
    )


def test_help_documents_the_environment() -> None:
    for args in (["--help"], ["models", "--help"], ["models", "download", "-h"]):
        out = run_cli(*args).stdout
        for var in ("YOLOCLI_HOME", "YOLOCLI_MIRROR", "YOLOCLI_OFFLINE"):
            assert var in out, (args, var)


def test_version_and_a_real_process() -> None:
    proc = spawn(["--version"], env=dict(os.environ))
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert out.startswith("yolocli, version ")
