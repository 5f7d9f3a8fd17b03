"""Line counts of `yolocli track`, default settings, on clips made from the six test photos.

    python benchmarks/track_clips.py                      # every clip, the default command
    python benchmarks/track_clips.py --contained 1        # ... counting every track (before)
    python benchmarks/track_clips.py a d --nms 0.3        # some clips, other options

Each clip (40 frames at 10 fps, 1280x720, a noisy grey background) has two or three photos
gliding across x = 640 or stopping short, passing over one another; clip e has a person who
stops on the line and jitters there (never a crossing). Each clip is written as MJPG AVI and
run through ``yolocli track CLIP -m yolov3-tiny -f jsonl --line 640,0,640,720 --no-save``;
the closing record's counts are printed against the true crossings (a sprite's centre going
from one side of x = 640 to the other), with MOTA, IDF1 and ID switches (motmetrics, IoU
>= 0.5) against the sprites' boxes. benchmarks/RESULTS.md, "Tracking", has the figures.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.mot import clear_and_identity  # noqa: E402

IMAGES = REPO / "tests" / "data" / "images"
W, H, FPS, N = 1280, 720, 10.0, 40
LABEL = {"astronaut.png": "person", "grace_hopper.jpg": "person", "chelsea.png": "cat",
         "coffee.png": "cup", "motorcycle_left.png": "motorbike"}  # fmt: skip


@dataclass(frozen=True)
class Sprite:
    """A photo ``width`` px wide (mirrored: facing the other way) moving its top-left corner
    from ``start`` to ``end`` between frames ``first`` and ``last``."""

    photo: str
    width: int
    start: tuple[float, float]
    end: tuple[float, float]
    first: int = 0
    last: int = N - 1
    mirror: bool = False

    def at(self, f: int) -> tuple[float, float] | None:
        if not self.first <= f <= self.last:
            return None
        u = (f - self.first) / max(self.last - self.first, 1)
        return (self.start[0] + u * (self.end[0] - self.start[0]),
                self.start[1] + u * (self.end[1] - self.start[1]))  # fmt: skip

    def image(self) -> np.ndarray:
        im = cv2.imread(str(IMAGES / self.photo))
        if self.mirror:
            im = im[:, ::-1]
        h = round(im.shape[0] * self.width / im.shape[1])
        return cv2.resize(im, (self.width, h), interpolation=cv2.INTER_AREA)


S = Sprite
CLIPS: dict[str, tuple[Sprite, ...]] = {
    "a": (S("astronaut.png", 300, (40, 60), (900, 120)),
          S("chelsea.png", 340, (900, 380), (60, 330), mirror=True),
          S("coffee.png", 300, (980, 60), (820, 100), 10)),
    "b": (S("grace_hopper.jpg", 280, (30, 200), (950, 250)),
          S("motorcycle_left.png", 360, (880, 80), (40, 300), mirror=True),
          S("coffee.png", 320, (60, 420), (300, 400))),
    "c": (S("grace_hopper.jpg", 260, (20, 40), (960, 100)),
          S("astronaut.png", 300, (950, 260), (20, 200), mirror=True),
          S("coffee.png", 320, (900, 430), (100, 390))),
    "d": (S("chelsea.png", 360, (10, 20), (880, 10)),
          S("motorcycle_left.png", 380, (40, 430), (860, 460)),
          S("astronaut.png", 320, (940, 200), (30, 230), 5)),
    "e": (S("grace_hopper.jpg", 300, (100, 100), (500, 110)),  # jitters on the line from 20
          S("chelsea.png", 320, (920, 400), (40, 380), mirror=True)),
    "f": (S("chelsea.png", 300, (340, 0), (540, 5)),  # slow: 50 px/s
          S("motorcycle_left.png", 300, (360, 470), (560, 480)),
          S("astronaut.png", 260, (600, 205), (400, 210))),
    "g": (S("grace_hopper.jpg", 300, (380, 300), (580, 330)),
          S("chelsea.png", 340, (560, 30), (360, 20), mirror=True)),
    "h": (S("chelsea.png", 300, (240, 0), (640, 5)),
          S("motorcycle_left.png", 300, (260, 470), (660, 480)),
          S("astronaut.png", 260, (700, 205), (300, 210))),
}  # fmt: skip
JITTER = {"e": (0, 20)}  # clip: (sprite, from frame)


def render(name: str) -> tuple[list[np.ndarray], list[dict[int, list[int]]]]:
    """The clip's frames and each frame's true boxes by sprite id (from 1)."""
    sprites = CLIPS[name]
    rng = np.random.default_rng(7)
    background = np.full((H, W, 3), 200, np.uint8)
    background += rng.integers(0, 12, background.shape, dtype=np.uint8)
    pixels = [s.image() for s in sprites]
    jitter = JITTER.get(name)
    images, truth = [], []
    for f in range(N):
        image = background.copy()
        boxes = {}
        for i, (s, p) in enumerate(zip(sprites, pixels, strict=True)):
            pos = s.at(f)
            if pos is None:
                continue
            x, y = round(pos[0]), round(pos[1])
            h, w = p.shape[:2]
            if jitter and i == jitter[0] and f >= jitter[1]:
                x = round(640 - w / 2 + 6 * np.sin(f * 2.1))
            x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, W), min(y + h, H)
            image[y0:y1, x0:x1] = p[y0 - y : y1 - y, x0 - x : x1 - x]
            boxes[i + 1] = [x0, y0, x1, y1]
        images.append(image)
        truth.append(boxes)
    return images, truth


def crossings(name: str) -> dict[str, dict[str, int]]:
    """The true crossings of x = 640 by each sprite's centre (moving left is "in")."""
    out: dict[str, dict[str, int]] = {"in": {}, "out": {}}
    for i, s in enumerate(CLIPS[name]):
        if JITTER.get(name, (None,))[0] == i:
            continue  # ends on the line
        w = s.image().shape[1]
        c0, c1 = s.start[0] + w / 2, s.end[0] + w / 2
        way = "in" if c0 > 640 > c1 else "out" if c0 < 640 < c1 else None
        if way:
            out[way][LABEL[s.photo]] = out[way].get(LABEL[s.photo], 0) + 1
    return out


def main(argv: list[str]) -> None:
    names = [a for a in argv if a in CLIPS]  # the rest are options for yolocli track
    extra = [a for a in argv if a not in CLIPS]
    exact = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name in names or list(CLIPS):
            images, truth = render(name)
            path = Path(tmp) / f"{name}.avi"
            out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (W, H))
            for image in images:
                out.write(image)
            out.release()
            run = subprocess.run(
                [sys.executable, "-m", "yolocli", "track", str(path), "-m", "yolov3-tiny",
                 "-f", "jsonl", "--line", "640,0,640,720", "--no-save", *extra],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            records = [json.loads(line) for line in run.stdout.splitlines()]
            counted = records[-1]["lines"][0]
            true = crossings(name)
            ok = counted["in"] == true["in"] and counted["out"] == true["out"]
            exact += ok
            rows = [[r["frame"] + 1, d["track_id"], d["box"][0], d["box"][1],
                     d["box"][2] - d["box"][0], d["box"][3] - d["box"][1], 1, -1, -1, -1]
                    for r in records[:-1] for d in r["detections"]]  # fmt: skip
            gt = [[f + 1, i, b[0], b[1], b[2] - b[0], b[3] - b[1], 1, -1, -1, -1]
                  for f, boxes in enumerate(truth) for i, b in boxes.items()]  # fmt: skip
            m = clear_and_identity(np.array(gt, float), np.array(rows, float).reshape(-1, 10))
            print(f"{name}: {'exact' if ok else 'WRONG'}  in {counted['in']} out {counted['out']}"
                  f"  (true: in {true['in']} out {true['out']})  MOTA {m['MOTA']:.3f} "
                  f"IDF1 {m['IDF1']:.3f} IDSW {m['IDSW']}", flush=True)  # fmt: skip
    print(f"{exact} of {len(names or CLIPS)} clips counted exactly")


if __name__ == "__main__":
    main(sys.argv[1:])
