"""Make the reference for the end-to-end clip (tests/clip.py): roboflow ``trackers``'
ByteTrack fed with ``yolocli detect``'s own detections on it. Two steps, two environments
(``trackers`` needs ``opencv-python``, which cannot share one with yolocli):

    # 1. in yolocli's environment: the clip, and yolocli detect's detections -> clip/det.txt
    .venv/bin/python tests/data/tracking/make_clip_reference.py detect
    # 2. in the trackers environment (see make_reference.py): -> clip/trackers-bytetrack.txt
    /tmp/trackers-env/bin/python tests/data/tracking/make_clip_reference.py track

The detections are those of ``yolocli detect clip.avi -m yolov3-tiny --classes motorbike
--nms 0.3 --conf 0.1`` (the settings tests/test_tracking.py gives ``yolocli track``), as
MOTChallenge lines ``frame,-1,x,y,w,h,score,-1,-1,-1`` with frames from 1.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
REPO = HERE.parents[2]
OUT = HERE / "clip"
FPS = 10.0  # tests/clip.py


def detect() -> None:
    sys.path.insert(0, str(REPO))
    from tests.clip import write_video

    OUT.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip.avi"
        write_video(clip)
        run = subprocess.run(
            [sys.executable, "-m", "yolocli", "detect", str(clip), "-m", "yolov3-tiny",
             "--classes", "motorbike", "--nms", "0.3", "--conf", "0.1", "--no-save",
             "-f", "jsonl"],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
    lines = []
    for text in run.stdout.splitlines():
        record = json.loads(text)
        if record.get("frame") is None:
            continue
        for d in record["detections"]:
            x1, y1, x2, y2 = d["box"]
            lines.append(f"{record['frame'] + 1},-1,{x1:.2f},{y1:.2f},{x2 - x1:.2f},"
                         f"{y2 - y1:.2f},{d['score']:.6f},-1,-1,-1")  # fmt: skip
    (OUT / "det.txt").write_text("\n".join(lines) + "\n")


def track() -> None:
    import numpy as np
    import supervision as sv
    from trackers import ByteTrackTracker

    det = np.loadtxt(OUT / "det.txt", delimiter=",", ndmin=2)
    tracker = ByteTrackTracker(frame_rate=FPS)
    lines = []
    for frame in range(1, int(det[:, 0].max()) + 1):
        d = det[det[:, 0] == frame]
        xyxy = np.concatenate([d[:, 2:4], d[:, 2:4] + d[:, 4:6]], axis=1).reshape(-1, 4)
        result = tracker.update(sv.Detections(xyxy=xyxy, confidence=d[:, 6]),
                                timestamp=(frame - 1) / FPS)  # fmt: skip
        for (x1, y1, x2, y2), s, tid in zip(
            result.xyxy, result.confidence, result.tracker_id, strict=True
        ):
            if tid >= 0:
                box = f"{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f}"
                lines.append(f"{frame},{tid},{box},{s:.6f},-1,-1,-1")
    (OUT / "trackers-bytetrack.txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    {"detect": detect, "track": track}[sys.argv[1]]()
