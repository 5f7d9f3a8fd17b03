"""Make the tracking reference files in this folder (run once; the tests only read them).

The detections: the ground truth of TUD-Campus and TUD-Stadtmitte (shipped in the
motmetrics wheel, ``motmetrics/data/*/gt.txt``) with 10% of the boxes dropped, each side
moved by up to 3 px and a score drawn from U(0.7, 1.0), with a fixed seed:
``SEQ/det.txt``, MOTChallenge lines ``frame,-1,x,y,w,h,score,-1,-1,-1``.

The oracle: roboflow ``trackers``' ByteTrack (``ByteTrackTracker`` with its defaults and the
sequence's frame rate, each frame's timestamp ``(frame - 1) / fps``) on those detections:
``SEQ/trackers-bytetrack.txt`` (MOTChallenge results), and ``trackers.json``, the metrics
``trackers.eval`` gives for those results (against the ground truth with its class and
visibility columns set to 1, since ``trackers.eval`` drops rows where they are not, and the
TUD files have -1 there).

``trackers`` needs ``opencv-python``, which cannot share an environment with yolocli's
``opencv-python-headless``, so this runs in an environment of its own:

    python3 -m venv /tmp/trackers-env
    /tmp/trackers-env/bin/pip install trackers==2.6.1 opencv-python motmetrics==1.4.0
    /tmp/trackers-env/bin/python tests/data/tracking/make_reference.py
"""

from __future__ import annotations

import json
import tempfile
from importlib.metadata import version
from pathlib import Path

import motmetrics
import numpy as np
import supervision as sv
from trackers import ByteTrackTracker
from trackers.eval import evaluate_mot_sequence

HERE = Path(__file__).parent
SEQUENCES = {"TUD-Campus": 25.0, "TUD-Stadtmitte": 25.0}  # frame rates (MOTChallenge seqinfo)
SEED = 23
DROP = 0.10
JITTER = 3.0


def detections(gt: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(N, 7) frame, x, y, w, h, score: the ground truth, thinned and jittered."""
    keep = rng.random(len(gt)) >= DROP
    g = gt[keep]
    x1 = g[:, 2] + rng.uniform(-JITTER, JITTER, len(g))
    y1 = g[:, 3] + rng.uniform(-JITTER, JITTER, len(g))
    x2 = g[:, 2] + g[:, 4] + rng.uniform(-JITTER, JITTER, len(g))
    y2 = g[:, 3] + g[:, 5] + rng.uniform(-JITTER, JITTER, len(g))
    score = rng.uniform(0.7, 1.0, len(g))
    return np.stack([g[:, 0], x1, y1, x2 - x1, y2 - y1, score], axis=1)


def main() -> None:
    rng = np.random.default_rng(SEED)
    data = Path(motmetrics.__file__).parent / "data"
    summary: dict[str, object] = {"trackers": version("trackers"), "sequences": {}}
    for name, fps in SEQUENCES.items():
        gt = np.loadtxt(data / name / "gt.txt", delimiter=",")
        det = detections(gt, rng)
        out = HERE / name
        out.mkdir(exist_ok=True)
        with open(out / "det.txt", "w") as f:
            for fr, x, y, w, h, s in det:
                f.write(f"{int(fr)},-1,{x:.2f},{y:.2f},{w:.2f},{h:.2f},{s:.4f},-1,-1,-1\n")
        det = np.loadtxt(out / "det.txt", delimiter=",").reshape(-1, 10)  # as the tests read it
        tracker = ByteTrackTracker(frame_rate=fps)
        lines = []
        for frame in range(1, int(gt[:, 0].max()) + 1):
            d = det[det[:, 0] == frame]
            xyxy = np.concatenate([d[:, 2:4], d[:, 2:4] + d[:, 4:6]], axis=1)
            dets = sv.Detections(xyxy=xyxy.reshape(-1, 4), confidence=d[:, 6])
            result = tracker.update(dets, timestamp=(frame - 1) / fps)
            for (x1, y1, x2, y2), s, tid in zip(
                result.xyxy, result.confidence, result.tracker_id, strict=True
            ):
                if tid >= 0:
                    box = f"{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f}"
                    lines.append(f"{frame},{tid},{box},{s:.4f},-1,-1,-1")
        (out / "trackers-bytetrack.txt").write_text("\n".join(lines) + "\n")
        with tempfile.TemporaryDirectory() as tmp:
            fixed = gt.copy()
            fixed[:, 6:9] = 1  # consider, class 1 (pedestrian), visibility 1
            gt_path = Path(tmp) / "gt.txt"
            np.savetxt(gt_path, fixed, delimiter=",", fmt="%g")
            res = evaluate_mot_sequence(
                gt_path, out / "trackers-bytetrack.txt", metrics=["CLEAR", "HOTA", "Identity"]
            )
        summary["sequences"][name] = {  # type: ignore[index]
            "MOTA": res.CLEAR.MOTA,
            "IDSW": res.CLEAR.IDSW,
            "IDF1": res.Identity.IDF1,
            "HOTA": res.HOTA.HOTA,
            "DetA": res.HOTA.DetA,
            "AssA": res.HOTA.AssA,
        }
    (HERE / "trackers.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
