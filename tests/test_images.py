"""Reading, decoding and writing images."""

from __future__ import annotations

from pathlib import Path

import pytest

from yolocli.files import write_atomic


def test_write_atomic_leaves_nothing_behind_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "a" / "out.jpg"
    write_atomic(target, b"complete")
    assert target.read_bytes() == b"complete"
    with pytest.raises(TypeError):
        write_atomic(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == b"complete"
    assert [p.name for p in target.parent.iterdir()] == ["out.jpg"]
