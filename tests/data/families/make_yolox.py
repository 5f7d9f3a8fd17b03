"""Build the tiny YOLOX-layout test model and record the YOLOX demo's answers on it.

Run once, in an environment with torch, onnx, onnxruntime and opencv-python (not the
project's: the oracle must not be yolocli), from the repository root:

    python tests/data/families/make_yolox.py --yolox-src PATH/TO/YOLOX

``--yolox-src`` is a checkout of Megvii-BaseDetection/YOLOX (these files were made at commit
6ddff48). The oracle is that checkout's own code, run as its ONNX demo
(``demo/ONNXRuntime/onnx_inference.py``) runs it: ``preproc`` from
``yolox/data/data_augment.py`` and ``demo_postprocess`` and ``multiclass_nms`` from
``yolox/utils/demo_utils.py``, loaded from the checkout (nothing of it is copied here).

The network is random and small, but its head is YOLOX's (``yolox/models/yolo_head.py`` in
inference with ``decode_in_inference=False``, as ``tools/export_onnx.py`` exports it): per
stride 8, 16, 32 a 4-channel box regression (raw), a sigmoid objectness and sigmoid class
scores, concatenated, flattened and permuted to (N, A, 5 + C).
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import cv2
import numpy as np
import onnxruntime
import torch
from torch import nn

HERE = Path(__file__).parent
IMAGES = HERE.parent / "images"
CLASSES = 5
SIZE = (256, 320)  # (height, width), as YOLOX's input_shape: not square, to catch swaps
SCORE_THR = 0.1  # the demo's
NMS_THR = 0.45  # the demo's
OBJ_BIAS, CLS_BIAS = -3.0, -1.5  # a random head otherwise scores everything alike


class TinyYolox(nn.Module):
    """A YOLOX-layout network: a strided backbone and YOLOX's decoupled head at 8, 16, 32."""

    def __init__(self, classes: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 8, 3, 2, 1), nn.SiLU(), nn.Conv2d(8, 8, 3, 2, 1), nn.SiLU(),
            nn.Conv2d(8, 8, 3, 2, 1), nn.SiLU(),
        )  # fmt: skip
        self.down = nn.ModuleList([nn.Conv2d(8, 8, 3, 2, 1), nn.Conv2d(8, 8, 3, 2, 1)])
        self.reg = nn.ModuleList([nn.Conv2d(8, 4, 1) for _ in range(3)])
        self.obj = nn.ModuleList([nn.Conv2d(8, 1, 1) for _ in range(3)])
        self.cls = nn.ModuleList([nn.Conv2d(8, classes, 1) for _ in range(3)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x / 255.0  # the network itself takes 0-255 BGR, as YOLOX's do
        levels = [self.stem(x)]
        for down in self.down:
            levels.append(torch.nn.functional.silu(down(levels[-1])))
        outputs = [
            torch.cat([reg(f), obj(f).sigmoid(), cls(f).sigmoid()], 1)
            for f, reg, obj, cls in zip(levels, self.reg, self.obj, self.cls, strict=True)
        ]
        return torch.cat([o.flatten(start_dim=2) for o in outputs], dim=2).permute(0, 2, 1)


def build(path: Path) -> None:
    torch.manual_seed(22)
    model = TinyYolox(CLASSES).eval()
    with torch.no_grad():
        # A random network's features are faint: scale each prediction convolution so that
        # its outputs spread by a set amount on random-noise images (never the test photos),
        # then shift them so that a few percent of the anchors score above the threshold.
        # smooth noise: blobs, correlated over neighbouring pixels as a photo is
        noise = torch.nn.functional.interpolate(
            torch.rand(8, 3, SIZE[0] // 16, SIZE[1] // 16) * 255, size=SIZE, mode="bilinear"
        )
        levels = [model.stem(noise / 255.0)]
        for down in model.down:
            levels.append(torch.nn.functional.silu(down(levels[-1])))
        for k, feature in enumerate(levels):
            for conv, spread, bias in (
                (model.reg[k], 0.5, [0.5, 0.5, 1.0, 1.0]),  # xy near the cell, wh ~ 3 strides
                (model.obj[k], 1.5, [OBJ_BIAS]),
                (model.cls[k], 1.5, [CLS_BIAS] * CLASSES),
            ):
                raw = conv(feature) - conv.bias.view(1, -1, 1, 1)
                gain = spread / raw.std()
                conv.weight.mul_(gain)
                conv.bias.copy_(torch.tensor(bias) - raw.mean((0, 2, 3)) * gain)
    dummy = torch.zeros(1, 3, *SIZE)
    torch.onnx.export(
        model, (dummy,), str(path), input_names=["images"], output_names=["output"],
        opset_version=11, dynamo=False,
    )  # fmt: skip


def load_yolox(src: Path) -> tuple[ModuleType, Any]:
    """The YOLOX checkout's demo_utils module and its ``preproc`` function."""
    spec = importlib.util.spec_from_file_location(
        "demo_utils", src / "yolox" / "utils" / "demo_utils.py"
    )
    assert spec is not None
    assert spec.loader is not None
    demo_utils = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo_utils)
    # data_augment.py imports the whole yolox package; only preproc is needed, so it is taken
    # from the file as written there and run alone
    tree = ast.parse((src / "yolox" / "data" / "data_augment.py").read_text())
    (func,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "preproc"]
    namespace: dict[str, Any] = {"cv2": cv2, "np": np}
    exec(compile(ast.Module([func], []), "data_augment.py", "exec"), namespace)
    return demo_utils, namespace["preproc"]


def oracle(model: Path, src: Path) -> dict[str, Any]:
    """The demo's detections for every test image (onnx_inference.py's main, per image)."""
    demo_utils, preprocess = load_yolox(src)
    session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    answers: dict[str, Any] = {}
    for image_path in sorted(IMAGES.iterdir()):
        origin_img = cv2.imread(str(image_path))
        img, ratio = preprocess(origin_img, SIZE)
        output = session.run(None, {session.get_inputs()[0].name: img[None, :, :, :]})
        predictions = demo_utils.demo_postprocess(output[0], SIZE)[0]
        boxes = predictions[:, :4]
        scores = predictions[:, 4:5] * predictions[:, 5:]
        boxes_xyxy = np.ones_like(boxes)
        boxes_xyxy[:, 0] = boxes[:, 0] - boxes[:, 2] / 2.0
        boxes_xyxy[:, 1] = boxes[:, 1] - boxes[:, 3] / 2.0
        boxes_xyxy[:, 2] = boxes[:, 0] + boxes[:, 2] / 2.0
        boxes_xyxy[:, 3] = boxes[:, 1] + boxes[:, 3] / 2.0
        boxes_xyxy /= ratio
        dets = demo_utils.multiclass_nms(boxes_xyxy, scores, nms_thr=NMS_THR, score_thr=SCORE_THR)
        found = [] if dets is None else dets.tolist()
        answers[image_path.name] = [
            {"box": [round(v, 4) for v in d[:4]], "score": round(d[4], 6), "class_id": int(d[5])}
            for d in found
        ]
    return answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--yolox-src", type=Path, required=True)
    args = parser.parse_args()
    model = HERE / "yolox_tiny_random.onnx"
    build(model)
    answers = oracle(model, args.yolox_src)
    out = {"size": list(SIZE), "score_thr": SCORE_THR, "nms_thr": NMS_THR, "images": answers}
    (HERE / "yolox_reference.json").write_text(json.dumps(out, indent=1) + "\n")
    for name, dets in answers.items():
        print(name, len(dets))


if __name__ == "__main__":
    main()
