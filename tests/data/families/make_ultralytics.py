"""Build the tiny Ultralytics test models and record Ultralytics' own ``predict`` on them.

Run once, in an environment with ``ultralytics`` (these files: 8.4.190, with torch 2.14.1
and torchvision 0.29.1 from PyPI, onnx and onnxruntime), from the repository root:

    python tests/data/families/make_ultralytics.py

Two models, random weights, width multiple 0.0625 and 5 named classes (small ONNX files):

- ``ultralytics_v8_random.onnx``: YOLOv8's own yaml (``cfg/models/v8/yolov8.yaml``), the
  (N, 4 + C, A) head with the DFL inside the graph;
- ``ultralytics_26_random.onnx``: YOLO26's yaml (``cfg/models/26/yolo26.yaml``), the
  end-to-end (N, 300, 6) head (exported with ``nms=False``, which 8.4 needs for it).

Both are exported by Ultralytics' exporter at a non-square 256x320 input (so that a swapped
width and height shows), with its metadata (names, imgsz, stride, task). The class biases are
raised: a random head otherwise scores nothing above any useful threshold. The oracle is
``YOLO(onnx_file).predict`` on the test photos: Ultralytics' letterbox, the same ONNX file on
ONNX Runtime, and Ultralytics' NMS, at the conf and iou recorded in the JSON file.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
import ultralytics
import yaml
from ultralytics import YOLO

HERE = Path(__file__).parent
IMAGES = HERE.parent / "images"
IMGSZ = [256, 320]  # (height, width)
# (conf, iou): Ultralytics' predict defaults, and a lower pair that keeps more boxes
SETTINGS = ((0.25, 0.7), (0.1, 0.5))
NAMES = {0: "person", 1: "car", 2: "dog", 3: "cat", 4: "bird"}  # a custom 5-class model
BOX_GAIN = {"v8": 0.1, "26": 0.03}  # 26: distances straight from the conv, keep them > 0
CLS_GAIN = 0.04
CLS_BIAS = {"v8": -2.5, "26": -3.5}


def build(kind: str, work: Path) -> Path:
    """Export the tiny ``kind`` ("v8" or "26") model; returns the ONNX file's path in ``work``."""
    root = Path(ultralytics.__file__).parent / "cfg" / "models"
    cfg = yaml.safe_load((root / kind / f"yolo{'v8' if kind == 'v8' else '26'}.yaml").read_text())
    cfg["scales"] = {"t": [0.33, 0.0625, 1024]}
    cfg["scale"] = "t"
    cfg["nc"] = len(NAMES)
    path = work / f"tiny-{kind}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    torch.manual_seed(22)
    model = YOLO(str(path))
    model.model.names = NAMES
    head = model.model.model[-1]
    with torch.no_grad():
        # A random network this deep passes a vanishing signal (every layer shrinks it): let
        # each batch norm learn its statistics on random-noise images (never the test photos),
        # so every layer sees normalised activations as in a trained network.
        for module in model.model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.reset_running_stats()
                module.momentum = None  # a plain average over the batches
        model.model.train()
        for _ in range(4):
            model.model(torch.rand(4, 3, *IMGSZ))
        model.model.eval()
        # the last convolutions: boxes of sensible sizes, and a few percent of the anchors
        # scoring above conf (a random head otherwise scores all or nothing)
        for branch in ("cv2", "one2one_cv2"):
            for seq in getattr(head, branch, None) or []:
                seq[-1].weight.mul_(BOX_GAIN[kind])
        for branch in ("cv3", "one2one_cv3"):
            for seq in getattr(head, branch, None) or []:
                seq[-1].weight.mul_(CLS_GAIN)
                seq[-1].bias.fill_(CLS_BIAS[kind])
    # nms=False: the end-to-end head where the model has one (YOLO26), as its docs export it
    onnx = model.export(
        format="onnx",
        imgsz=IMGSZ,
        dynamic=False,
        simplify=True,
        nms=False if kind == "26" else None,
    )
    return Path(onnx)


def oracle(onnx: Path, conf: float, iou: float) -> dict[str, Any]:
    model = YOLO(str(onnx), task="detect")
    answers: dict[str, Any] = {}
    for image in sorted(IMAGES.iterdir()):
        (result,) = model.predict(str(image), conf=conf, iou=iou, imgsz=IMGSZ, verbose=False)
        boxes = result.boxes
        answers[image.name] = [
            {"box": [round(v, 4) for v in box], "score": round(score, 6), "class_id": int(cls)}
            for box, score, cls in zip(
                boxes.xyxy.tolist(), boxes.conf.tolist(), boxes.cls.tolist(), strict=True
            )
        ]
    return answers


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for kind, name in (("v8", "ultralytics_v8_random"), ("26", "ultralytics_26_random")):
            onnx = build(kind, Path(tmp))
            target = HERE / f"{name}.onnx"
            shutil.copyfile(onnx, target)
            runs = []
            for conf, iou in SETTINGS:
                answers = oracle(target, conf, iou)
                runs.append({"conf": conf, "iou": iou, "images": answers})
                print(name, target.stat().st_size, conf, {k: len(v) for k, v in answers.items()})
            out = {"ultralytics": ultralytics.__version__, "imgsz": IMGSZ, "runs": runs}
            (HERE / f"{name}.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
