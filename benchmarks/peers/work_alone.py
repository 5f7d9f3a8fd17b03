"""One of k processes doing a folder's per-image work and nothing else: the ceiling of any
pipeline from a cold start.

Usage: work_alone.py MODEL BACKEND PART PARTS FOLDER GO

Opens a `yolocli.Detector` (BACKEND, one engine thread) and runs one set-up image, prints
"ready", waits until the file GO exists (so that all k processes start together), then
does, for every PARTS-th JPEG photo of FOLDER from the PART-th on, the work `yolocli detect
DIR --no-save` does in a worker, with yolocli's own stages: read the file, decode it (into
reused memory), letterbox it, run the forward pass, decode the heads and apply NMS. It
prints its wall-clock seconds and the number of photos.

No start-up (Python, imports, opening the network all happen before the clock), no pipeline
(no inputs to list, no records to write, no other process to answer to): the bound's own
set-up rules, with the per-image work the bound leaves out. Its rate over the bound's is the
highest share any cold-start run of `yolocli detect DIR` could reach with these stages.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path, PurePosixPath

from yolocli import Detector
from yolocli.io import images
from yolocli.io.inputs import Source
from yolocli.run import workers


def main() -> None:
    model, backend, part, parts, folder, go = sys.argv[1:7]
    detector = Detector(model, backend=backend, threads=1)
    paths = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() == ".jpg")
    mine = [Source(str(p), p, PurePosixPath(p.name)) for p in paths[int(part) :: int(parts)]]
    scratch = images.Scratch()

    def work(source: Source) -> int:
        loaded = workers.load(detector, source, images.DEFAULT_MAX_BYTES,
                              images.DEFAULT_MAX_PIXELS, scratch=scratch)  # fmt: skip
        heads = detector.forward(loaded.blob[None])
        return len(detector.decode([h[0] for h in heads], loaded.box))

    work(mine[0])  # set-up pass, as the bound's
    print("ready", flush=True)
    while not Path(go).exists():
        time.sleep(0.002)
    start = time.perf_counter()
    for source in mine:
        work(source)
    print(f"{time.perf_counter() - start:.6f} {len(mine)}", flush=True)


if __name__ == "__main__":
    main()
