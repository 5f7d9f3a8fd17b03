"""Does an Ultralytics export, made the way its docs say, run in yolocli with no flags, and
does it answer as Ultralytics' own ``predict`` does?

Two steps, two environments:

    # 1. with ultralytics installed (8.4.190 here): export each architecture and record predict
    python tools/check_ultralytics_exports.py export OUT_DIR [NAME ...]
    # 2. with yolocli installed: run each file through `yolocli detect`, compare
    python tools/check_ultralytics_exports.py compare OUT_DIR [NAME ...]

NAMEs (default: all) pick among ``VARIANTS``: ``export OUT_DIR yolov8n`` makes one file, as
benchmarks/run.py does for its Ultralytics peer.

Step 1 builds each architecture from Ultralytics' own yaml at its real "n" size (no
pretrained weights can be fetched here: random weights, batch norms calibrated on noise so
that the network sees the photos, class biases raised so that it reports something), exports
it with ``model.export(format="onnx", ...)`` (the defaults, plus the documented variants
``dynamic=True`` and ``nms=True``) and records ``YOLO(file).predict`` on the test photos at
Ultralytics' default conf 0.25 and iou 0.7. Step 2 runs ``yolocli detect PHOTOS -m FILE
--conf 0.25 --nms 0.7`` (Ultralytics' defaults; nothing else) and matches every detection:
same class, IoU >= 0.99 (a box that clipping made empty: corners within 0.01 px), score
within 1e-3; a detection only one side has counts against.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PHOTOS = sorted((REPO / "tests" / "data" / "images").iterdir())
CONF, IOU = 0.25, 0.7
# (name, yaml, export options)
VARIANTS: list[tuple[str, str, dict[str, Any]]] = [
    ("yolov5nu", "yolov5n.yaml", {}),
    ("yolov8n", "yolov8n.yaml", {}),
    ("yolo11n", "yolo11n.yaml", {}),
    ("yolo12n", "yolo12n.yaml", {}),
    ("yolov10n", "yolov10n.yaml", {}),
    ("yolo26n", "yolo26n.yaml", {}),
    ("yolo26n-end2end", "yolo26n.yaml", {"nms": False}),
    ("yolov8n-dynamic", "yolov8n.yaml", {"dynamic": True}),
    ("yolov8n-nms", "yolov8n.yaml", {"nms": True}),
    ("yolov8n-416", "yolov8n.yaml", {"imgsz": 416}),
]


def chosen(names: list[str]) -> list[tuple[str, str, dict[str, Any]]]:
    """The variants called ``names`` (all of them if none), refusing a name not in the list."""
    known = {v[0] for v in VARIANTS}
    if unknown := [n for n in names if n not in known]:
        sys.exit(f"unknown variant(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return [v for v in VARIANTS if not names or v[0] in names]


def export(out: Path, names: list[str]) -> None:
    import torch
    from ultralytics import YOLO

    out.mkdir(parents=True, exist_ok=True)
    for name, cfg, options in chosen(names):
        torch.manual_seed(0)
        model = YOLO(cfg)
        with torch.no_grad():
            for module in model.model.modules():
                if isinstance(module, torch.nn.BatchNorm2d):
                    module.reset_running_stats()
                    module.momentum = None
            model.model.train()
            for _ in range(3):
                model.model(torch.rand(2, 3, 320, 320))
            model.model.eval()
            head = model.model.model[-1]
            for branch in ("cv2", "one2one_cv2"):
                for seq in getattr(head, branch, None) or []:
                    seq[-1].weight.mul_(0.03)
            for branch in ("cv3", "one2one_cv3"):
                for seq in getattr(head, branch, None) or []:
                    # scores well spread below 1: saturated ones tie, and Ultralytics'
                    # sort (torch's) orders ties arbitrarily, so which 300 it keeps would too
                    seq[-1].weight.mul_(0.01)
                    seq[-1].bias.fill_(-4.0)
        try:
            onnx = Path(model.export(format="onnx", **options))
        except Exception as err:  # an export Ultralytics itself cannot make here
            print(name, "export failed:", err)
            continue
        target = out / f"{name}.onnx"
        onnx.replace(target)
        imgsz = options.get("imgsz", 640)
        answers = {}
        for photo in PHOTOS:
            (result,) = YOLO(str(target), task="detect").predict(
                str(photo), conf=CONF, iou=IOU, imgsz=imgsz, verbose=False
            )
            b = result.boxes
            answers[photo.name] = [
                {"box": box, "score": score, "class_id": int(cls)}
                for box, score, cls in zip(
                    b.xyxy.tolist(), b.conf.tolist(), b.cls.tolist(), strict=True
                )
            ]
        (out / f"{name}.json").write_text(json.dumps(answers))
        print(name, {k: len(v) for k, v in answers.items()})


def compare(out: Path, names: list[str]) -> None:
    import numpy as np

    from yolocli.ops import box_iou

    print(
        "| model | recognised as | detections | matched | matched where < 300 | worst IoU "
        "| worst score diff |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, _, _ in chosen(names):
        model, oracle = out / f"{name}.onnx", out / f"{name}.json"
        if not model.exists():
            print(f"| {name} | (Ultralytics could not export it) | | | | | |")
            continue
        proc = subprocess.run(
            [sys.executable, "-m", "yolocli", "detect", *map(str, PHOTOS), "-m", str(model),
             "--conf", str(CONF), "--nms", str(IOU), "-f", "jsonl", "--no-save", "-v"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            last = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "?"
            print(f"| {name} | fails: {last} | | | | | |")
            continue
        how = next((ln.split("runs as ")[1].split(":")[0] for ln in proc.stderr.splitlines()
                    if "runs as " in ln), "?")  # fmt: skip
        expected = json.loads(oracle.read_text())
        total = matched = 0
        # images where fewer than max_det (300) boxes pass: no cut among near-equal scores
        under_total = under_matched = 0
        worst_iou, worst_score = 1.0, 0.0
        for line in proc.stdout.splitlines():
            rec = json.loads(line)
            ref = expected[Path(rec["image"]).name]
            total += len(ref)
            w, h = rec["width"], rec["height"]
            rb = np.clip(np.array([r["box"] for r in ref]).reshape(-1, 4), 0, [w, h, w, h])
            used: set[int] = set()
            for d in rec["detections"]:
                if not len(rb):
                    break
                iou = box_iou(np.array([d["box"]]), rb)[0]
                # a box clipping made empty has no IoU: its corners must agree instead
                empty = (rb[:, 2] <= rb[:, 0]) | (rb[:, 3] <= rb[:, 1])
                near = np.abs(rb - np.array(d["box"])).max(axis=1) <= 0.01
                iou = np.where(empty, near * 1.0, iou)
                for j in np.argsort(-iou):  # the closest free one that fits
                    r = ref[j]
                    if iou[j] < 0.99:
                        break
                    if j in used or r["class_id"] != d["class_id"]:
                        continue
                    if abs(r["score"] - d["score"]) <= 1e-3:
                        used.add(int(j))
                        matched += 1
                        worst_iou = min(worst_iou, float(iou[j]))
                        worst_score = max(worst_score, abs(r["score"] - d["score"]))
                        break
            extra = len(rec["detections"]) - len(used)  # detections Ultralytics does not have
            total += extra
            if len(ref) < 300:
                under_total += len(ref) + extra
                under_matched += len(used)
        print(f"| {name} | {how} | {sum(len(v) for v in expected.values())} | "
              f"{matched}/{total} | {under_matched}/{under_total} | {worst_iou:.4f} | "
              f"{worst_score:.1e} |")  # fmt: skip


if __name__ == "__main__":
    {"export": export, "compare": compare}[sys.argv[1]](Path(sys.argv[2]), sys.argv[3:])
