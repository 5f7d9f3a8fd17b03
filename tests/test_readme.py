"""The README's set-up commands stay true: CI runs the test one verbatim."""

from __future__ import annotations

import re

from tests.conftest import REPO

README = (REPO / "README.md").read_text()


def setup_commands() -> list[str]:
    section = README.split("## Set up", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", section)


def test_readme_has_exactly_two_setup_commands() -> None:
    install, tests = setup_commands()
    assert "pip install ." in install
    assert "yolocli detect" in install
    assert "pytest" in tests


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    _, tests = setup_commands()
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert tests in ci


def test_the_sample_image_of_the_install_command_ships_in_the_repo() -> None:
    install, _ = setup_commands()
    image = re.search(r"detect (\S+)", install)
    assert image is not None
    assert (REPO / image.group(1)).is_file()


def test_the_library_example_runs(use_real_store: object) -> None:
    """The README's Python example, run as written on a real photo."""
    (code,) = re.findall(r"```python\n(.+?)\n```", README, re.S)
    code = code.replace('"dog.jpg"', repr(str(REPO / "tests" / "data" / "images" / "coffee.png")))
    scope: dict[str, object] = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert len(scope["dets"]) > 0  # type: ignore[arg-type]


def test_install_commands_work_from_the_checkout() -> None:
    """yolocli is not on the package index: the README installs extras as '.[extra]', and
    names 'yolocli[extra]' once, for a package installed from an index."""
    extras = re.findall(r"pip install\s+(?:-e\s+)?'([^'\[]+)\[", README)
    assert extras.count("yolocli") == 1, extras
    assert set(extras) == {".", "yolocli"}
