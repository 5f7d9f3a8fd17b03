"""One of k bare networks running side by side: the bound for parallel workers.

Usage: bare_parallel.py KIND THREADS N CFG WEIGHTS ONNX GO [WIDTHxHEIGHT]

Loads engine KIND (see benchmarks/run.py bare_engine) with THREADS threads, letterboxes the
test photos before any clock starts, runs one set-up pass, prints "ready", waits until the
file GO exists (so that all k processes start together), then runs N forward passes and
prints their wall-clock seconds. No yolocli pipeline: only the engine.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import run as bench


def main() -> None:
    kind, threads, n, cfg, weights, onnx, go = sys.argv[1:8]
    width, height = map(int, (sys.argv[8] if len(sys.argv) > 8 else "416x416").split("x"))
    bench.THREADS = int(threads)
    runner = bench.bare_engine(kind, Path(cfg), Path(weights), lambda: Path(onnx))
    blobs = bench.photo_blobs(width, 6, height)
    runner(blobs[0])  # set-up pass
    bench.wait_for_go(Path(go))
    start = time.perf_counter()
    for i in range(int(n)):
        runner(blobs[i % len(blobs)])
    print(f"{time.perf_counter() - start:.6f}", flush=True)


if __name__ == "__main__":
    main()
