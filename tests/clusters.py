"""Clustered boxes: the realistic NMS input shared by the tests and the benchmarks."""

from __future__ import annotations

import numpy as np


def clustered(n: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` boxes (float32 xyxy) and scores in ``k`` clusters, like a detector's raw output
    around ``k`` objects: centers uniform in 1000x1000, sizes 20-200 px, jitter 10% of the
    size."""
    rng = np.random.default_rng(seed)
    centers = rng.uniform(50, 950, (k, 2))
    sizes = rng.uniform(20, 200, (k, 2))
    member = rng.integers(0, k, n)
    c = centers[member] + rng.normal(0, 0.1, (n, 2)) * sizes[member]
    s = sizes[member] * rng.uniform(0.8, 1.2, (n, 2))
    xyxy = np.concatenate([c - s / 2, c + s / 2], axis=1).astype(np.float32)
    return xyxy, rng.uniform(0, 1, n).astype(np.float32)
