"""What Ray's workers import for tests/test_ray.py (a test module itself is not importable
by them): a `Detect` that dies once, mid-block, as an actor killed by the OOM killer would."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from yolocli.io.inputs import expand_sources
from yolocli.ray import Detect, Item, local_items

MARKER = os.path.join(tempfile.gettempdir(), "yolocli-test-ray-die-once")


class DiesOnce(Detect):
    """Dies (no goodbye, like SIGKILL) on its second batch, once: the first batch of its
    block has gone out already, so Ray retries a block that is half delivered."""

    calls = 0

    def __call__(self, batch: dict[str, Any]) -> Any:
        self.calls += 1
        if self.calls == 2 and os.path.exists(MARKER):
            os.unlink(MARKER)
            os._exit(1)
        return super().__call__(batch)


def items_for(folder: Path) -> list[Item]:
    return local_items(expand_sources([str(folder)]))
