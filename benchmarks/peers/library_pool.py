"""yolocli's library called by hand on a folder: the pipeline's floor.

Usage: library_pool.py MODEL FOLDER K [BACKEND]

What a careful person writes with `yolocli.Detector` and nothing else: a
``multiprocessing.Pool`` of K forked processes, each opening its own `Detector` (one engine
thread) in the pool's initializer, then for each photo ``cv2.imread`` and `Detector.detect`
(the same letterbox, forward pass, decoding and NMS as `yolocli detect`); the parent prints
one JSON line per photo with its box count. The model must be in the store, compiled and
optimized already (as the benchmark's earlier runs leave it). No output files, no progress,
no per-image error handling, no limits on bytes or pixels, no replacement of a dead worker.

Run from a cold start like `yolocli detect DIR`, the gap between the two is what yolocli's
pipeline costs; the gap between this script and the bare forward passes
(bare_parallel.py) is what the work itself costs: start-up, reading, decoding and
letterboxing each photo, decoding the heads and NMS.
"""

from __future__ import annotations

import json
import multiprocessing
import sys
from pathlib import Path

import cv2
import numpy as np

from yolocli import Detector

_detector: Detector | None = None


def _open(model: str, backend: str) -> None:
    global _detector
    _detector = Detector(model, backend=backend, threads=1)


def _detect(path: str) -> tuple[str, int]:
    assert _detector is not None
    return path, len(_detector.detect(np.asarray(cv2.imread(path), np.uint8)))


def main() -> None:
    model, folder, k = sys.argv[1:4]
    backend = sys.argv[4] if len(sys.argv) > 4 else "auto"
    paths = sorted(str(p) for p in Path(folder).iterdir() if p.suffix.lower() == ".jpg")
    context = multiprocessing.get_context("fork")
    with context.Pool(int(k), _open, (model, backend)) as pool:
        for path, boxes in pool.imap(_detect, paths, chunksize=4):
            print(json.dumps({"path": path, "boxes": boxes}))


if __name__ == "__main__":
    main()
