"""Build the tiny YOLOv5-layout test model and record YOLOv5's own answers on it.

Run once, in an environment with torch, torchvision, ultralytics (YOLOv5's utils import it),
onnx, onnxruntime and opencv-python, from the repository root:

    python tests/data/families/make_yolov5.py --yolov5-src PATH/TO/YOLOV5

``--yolov5-src`` is a checkout of ultralytics/yolov5 (these files were made at 5081342f0).
The oracle is that checkout's own code, run as ``detect.py`` runs an ONNX model (``auto``
letterbox off, ``multi_label`` off): ``letterbox`` from ``utils/augmentations.py`` and
``non_max_suppression`` and ``scale_boxes`` from ``utils/general.py``, taken from the files
and run alone (their modules import much more); nothing of them is copied here. The boxes are
recorded before ``detect.py``'s display rounding. The photos are cropped first (`crop`).

The network is random and small; its head is YOLOv5's ``Detect`` in export mode: per stride
8, 16, 32 three anchors, sigmoid outputs decoded in the graph (``xy = (2 s - 0.5 + cell) *
stride``, ``wh = (2 s)^2 * anchor``), (N, 3 x cells, 5 + C).
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnxruntime
import torch
import torchvision
from torch import nn
from ultralytics.utils import LOGGER
from ultralytics.utils.ops import clip_boxes, xywh2xyxy

HERE = Path(__file__).parent
IMAGES = HERE.parent / "images"
CLASSES = 4
SIZE = (256, 320)  # (height, width)
ANCHORS = [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]]
STRIDES = (8, 16, 32)
CONF, IOU = 0.25, 0.45  # detect.py's defaults
ASPECT = 1.2  # the photos are cropped to this width / height: see crop()


def crop(image: np.ndarray) -> np.ndarray:
    """The photo's top-left part of aspect 1.2, a little narrower than the input's 1.25.

    The letterbox then pads a few pixels on each side, less than a grid cell: a cell that
    sees only the uniform padding gives exactly the outputs of every other such cell, and
    the tied scores are ordered one way by yolocli's stable sort and another by torch's."""
    h, w = image.shape[:2]
    if w > h * ASPECT:
        return image[:, : int(h * ASPECT)]
    return image[: int(w / ASPECT)]


class TinyYolov5(nn.Module):
    def __init__(self, classes: int) -> None:
        super().__init__()
        self.no = 5 + classes
        self.stem = nn.Sequential(
            nn.Conv2d(3, 8, 3, 2, 1), nn.SiLU(), nn.Conv2d(8, 8, 3, 2, 1), nn.SiLU(),
            nn.Conv2d(8, 8, 3, 2, 1), nn.SiLU(),
        )  # fmt: skip
        self.down = nn.ModuleList([nn.Conv2d(8, 8, 3, 2, 1), nn.Conv2d(8, 8, 3, 2, 1)])
        self.m = nn.ModuleList([nn.Conv2d(8, 3 * self.no, 1) for _ in STRIDES])

    def levels(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = [self.stem(x)]
        for down in self.down:
            out.append(torch.nn.functional.silu(down(out[-1])))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = []
        for i, f in enumerate(self.levels(x)):
            t = self.m[i](f)
            bs, _, ny, nx = t.shape
            t = t.view(bs, 3, self.no, ny, nx).permute(0, 1, 3, 4, 2).sigmoid()
            yv, xv = torch.meshgrid(torch.arange(ny), torch.arange(nx), indexing="ij")
            grid = torch.stack((xv, yv), 2).view(1, 1, ny, nx, 2).float() - 0.5
            anchor = torch.tensor(ANCHORS[i], dtype=torch.float32).view(1, 3, 1, 1, 2)
            xy = (t[..., :2] * 2 + grid) * STRIDES[i]
            wh = (t[..., 2:4] * 2) ** 2 * anchor
            z.append(torch.cat((xy, wh, t[..., 4:]), 4).view(bs, 3 * nx * ny, self.no))
        return torch.cat(z, 1)


def build(path: Path) -> None:
    torch.manual_seed(5)
    model = TinyYolov5(CLASSES).eval()
    with torch.no_grad():
        # faint random features: spread each head's outputs on smooth noise (never the photos)
        noise = torch.nn.functional.interpolate(
            torch.rand(8, 3, SIZE[0] // 16, SIZE[1] // 16), size=SIZE, mode="bilinear"
        )
        for conv, feature in zip(model.m, model.levels(noise), strict=True):
            raw = conv(feature) - conv.bias.view(1, -1, 1, 1)
            gain = 1.5 / raw.std()
            conv.weight.mul_(gain)
            bias = (-raw.mean((0, 2, 3)) * gain).view(3, -1)
            bias[:, 4] -= 1.5  # objectness, and classes, low enough that few boxes pass
            bias[:, 5:] -= 0.5
            conv.bias.copy_(bias.reshape(-1))
    torch.onnx.export(
        model, (torch.zeros(1, 3, *SIZE),), str(path), input_names=["images"],
        output_names=["output0"], opset_version=12, dynamo=False,
    )  # fmt: skip


def load_yolov5(src: Path) -> dict[str, Any]:
    """letterbox, non_max_suppression and scale_boxes, from the checkout's files, run alone."""
    namespace: dict[str, Any] = {
        "cv2": cv2, "np": np, "torch": torch, "torchvision": torchvision, "math": math,
        "time": time, "LOGGER": LOGGER, "xywh2xyxy": xywh2xyxy, "clip_boxes": clip_boxes,
    }  # fmt: skip
    for file, names in (
        ("utils/augmentations.py", {"letterbox"}),
        ("utils/general.py", {"non_max_suppression", "scale_boxes"}),
    ):
        tree = ast.parse((src / file).read_text())
        funcs = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in names]
        exec(compile(ast.Module(funcs, []), file, "exec"), namespace)
    return namespace


def oracle(model: Path, src: Path) -> dict[str, Any]:
    """detect.py's steps for an ONNX model, per image."""
    v5 = load_yolov5(src)
    session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    answers: dict[str, Any] = {}
    for image_path in sorted(IMAGES.iterdir()):
        im0 = crop(cv2.imread(str(image_path)))
        im = v5["letterbox"](im0, SIZE, stride=32, auto=False)[0]
        im = np.ascontiguousarray(im.transpose((2, 0, 1))[::-1])  # HWC to CHW, BGR to RGB
        im = torch.from_numpy(im).float() / 255
        pred = torch.from_numpy(session.run(None, {"images": im[None].numpy()})[0])
        (det,) = v5["non_max_suppression"](pred, CONF, IOU, None, False, max_det=1000)
        det[:, :4] = v5["scale_boxes"](im.shape[1:], det[:, :4], im0.shape)
        answers[image_path.name] = [
            {"box": [round(v, 4) for v in d[:4]], "score": round(d[4], 6), "class_id": int(d[5])}
            for d in det.tolist()
        ]
    return answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--yolov5-src", type=Path, required=True)
    args = parser.parse_args()
    model = HERE / "yolov5_tiny_random.onnx"
    build(model)
    answers = oracle(model, args.yolov5_src)
    out = {"size": list(SIZE), "conf": CONF, "iou": IOU, "max_det": 1000, "images": answers}
    (HERE / "yolov5_reference.json").write_text(json.dumps(out, indent=1) + "\n")
    for name, dets in answers.items():
        print(name, len(dets))


if __name__ == "__main__":
    main()
