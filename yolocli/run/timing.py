"""Time per stage, for ``--profile``: wall time and the CPU time of the thread that ran it.

CPU time is what a stage costs; wall time also counts waiting for a core while others (the
forward pass) use them. The forward pass runs on the engine's own threads, so its CPU time is
not known (None).
"""

from __future__ import annotations

import time

STAGES = (
    "read", "decode", "preprocess", "forward", "postprocess", "track", "draw", "encode", "write",
)  # fmt: skip

# stage -> (wall seconds, CPU seconds of the thread that ran it, or None)
Timings = dict[str, tuple[float, float | None]]


class Clock:
    """Laps of consecutive stages on one thread, in wall and thread CPU time."""

    def __init__(self, timings: Timings) -> None:
        self.timings = timings
        self.wall, self.cpu = time.perf_counter(), time.thread_time()

    def lap(self, stage: str) -> None:
        wall, cpu = time.perf_counter(), time.thread_time()
        self.timings[stage] = (wall - self.wall, cpu - self.cpu)
        self.wall, self.cpu = wall, cpu
