"""Per-image cost of drawing (yolocli.draw.annotate): boxes and labels, no encoding.

    python benchmarks/draw.py

Three image sizes, 5 and 30 detections each. "cold": every label text is new (each tab is
rendered by FreeType); "warm": the texts repeat, as a video's labels do from frame to frame
(tabs come from the cache). The copy of the image that annotate makes is reported alone.
Minimum of 5 rounds of 20 images; run on a quiet machine.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from yolocli import Detections
from yolocli.draw import annotate
from yolocli.io.formats import coco_names


def scene(rng: np.random.Generator, w: int, h: int, n: int) -> Detections:
    centers = rng.uniform([0.1 * w, 0.1 * h], [0.9 * w, 0.9 * h], (n, 2))
    sizes = rng.uniform(0.05, 0.3, (n, 2)) * [w, h]
    boxes = np.concatenate([centers - sizes / 2, centers + sizes / 2], axis=1)
    scores = rng.uniform(0.3, 0.99, n)
    return Detections(boxes, scores, rng.integers(0, 80, n), names=coco_names())


def per_image_ms(image: np.ndarray, rounds: list[list[Detections | None]]) -> float:
    """The best round's time per image: annotate (or, for None, only the copy it makes)."""
    times = []
    for batch in rounds:
        start = time.perf_counter()
        for d in batch:
            if d is None:
                image.copy()
            else:
                annotate(image, d)
        times.append((time.perf_counter() - start) / len(batch))
    return min(times) * 1e3


def main() -> None:
    rng = np.random.default_rng(0)
    print(f"{'image':>10} {'boxes':>5} {'copy ms':>8} {'cold ms':>8} {'warm ms':>8}")
    for w, h in ((160, 120), (640, 480), (4000, 3000)):
        image = np.full((h, w, 3), 100, np.uint8)
        for n in (5, 30):
            warm: list[Detections | None] = [scene(rng, w, h, n) for _ in range(20)]
            per_image_ms(image, [warm])  # fills the caches
            fresh = [[scene(rng, w, h, n) for _ in range(20)] for _ in range(5)]
            copy = per_image_ms(image, [[None] * 20] * 5)
            cold = per_image_ms(image, fresh)  # type: ignore[arg-type]
            hot = per_image_ms(image, [warm] * 5)
            print(f"{w}x{h:<5} {n:5d} {copy:8.2f} {cold:8.2f} {hot:8.2f}")


if __name__ == "__main__":
    main()
