"""One of k processes doing a folder's per-image work and nothing else: the ceiling of any
pipeline from a cold start.

Usage: work_alone.py MODEL BACKEND FOLDER QUEUE GO

Opens a `yolocli.Detector` (BACKEND, one engine thread) and runs one set-up image, prints
"ready", waits until the file GO exists (so that all k processes start together), then
takes the images of FOLDER (listed as `yolocli detect DIR` lists it) one at a time from
QUEUE, a file descriptor it inherits from benchmarks/run.py: a pipe of 4-byte indices,
shared by the k processes, so that none idles at the end while another has work left (as
`yolocli detect` hands out images). For each it does the work `yolocli detect DIR
--no-save` does in a worker, with yolocli's own stages: read the file, decode it (into
reused memory), letterbox it, run the forward pass, decode the heads and apply NMS. It
prints its wall-clock seconds and the number of images it did.

No start-up (Python, imports, opening the network and listing the folder all happen before
the clock), no pipeline (no records to write, no other process to answer to): the bound's
own set-up rules, with the per-image work the bound leaves out. Its rate over the bound's is
the highest share any cold-start run of `yolocli detect DIR` could reach with these stages.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import run as bench

from yolocli import Detector
from yolocli.io import images
from yolocli.io.inputs import Source, expand_sources
from yolocli.run import workers


def main() -> None:
    model, backend, folder, queue, go = sys.argv[1:6]
    detector = Detector(model, backend=backend, threads=1)
    sources = list(expand_sources([folder]))  # as `yolocli detect DIR`
    scratch = images.Scratch()

    def work(source: Source) -> int:
        loaded = workers.load(detector, source, images.DEFAULT_MAX_BYTES,
                              images.DEFAULT_MAX_PIXELS, scratch=scratch)  # fmt: skip
        heads = detector.forward(loaded.blob[None])
        return len(detector.decode([h[0] for h in heads], loaded.box))

    work(sources[0])  # set-up pass, as the bound's
    bench.wait_for_go(Path(go))
    start = time.perf_counter()
    done = 0
    while index := os.read(int(queue), 4):  # reads of 4 bytes from a pipe are atomic
        work(sources[int.from_bytes(index, "little")])
        done += 1
    print(f"{time.perf_counter() - start:.6f} {done}", flush=True)


if __name__ == "__main__":
    main()
