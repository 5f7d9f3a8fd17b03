"""The benchmark machinery runs end to end (at a tiny size; no test asserts a time)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, WEIGHTS_CACHE


def test_quick_benchmark_writes_every_table(tmp_path: Path, tiny_weights: Path) -> None:
    out = tmp_path / "RESULTS.md"
    env = {**os.environ, "YOLOCLI_HOME": str(WEIGHTS_CACHE)}
    subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "run.py"), "--quick", "--output", str(out)],
        env=env, check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    text = out.read_text()
    for heading in (
        "## Goals",
        "## 1. Time per image by stage",
        "## 2, 3, 7. Folder throughput",
        "## 4. Peak memory",
        "## 5. NMS against OpenCV",
        "## Tuning: batch size and threads",
        "## 6. Cold start, one image",
        "## Engines: forward ms/image",
        "## Engines: `yolocli detect` folder throughput by backend",
        "## Reduced precision (opt-in: --precision int8, bf16)",
        "| command | precision | mAP@0.5:0.95 |",
        "## 8. Folder from a cold start against the best bare configuration",
        "## 9. Every model family",
        "## Tracking: cost per frame",
    ):
        assert heading in text
    assert "| 5000 | 60 |" in text
    assert "| yes |" in text  # identical kept lists
    assert "- CPU flags that change the forward pass: " in text
    assert "(byte-compiled, as an install leaves it)" in text
    assert "`--backend opencv` (the default install's engine)" in text
    assert "| hand-written: `yolocli.Detector` in a `multiprocessing.Pool`, no outputs |" in text
    assert (
        "| the work alone: read, decode, letterbox, forward pass, heads and NMS, no start-up |"
        in text
    )
    assert "(goal 0.9; the work alone, without start-up: " in text
    assert "| the least work, from a cold start: decode, one-call stretched blob, " in text
    assert "; the least work, from a cold start: " in text  # beside each goal
    assert "| yolov3-tiny | 416 | 1 | " in text  # an engines row
    assert "| int8 static (QDQ, per-channel) |" in text or "Neither ONNX Runtime" in text
