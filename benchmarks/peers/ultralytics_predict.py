"""The peer issue 25 names: Ultralytics' own ``predict`` on its own ONNX export.

Usage (with the python of an environment that has ultralytics and onnxruntime):

    python benchmarks/peers/ultralytics_predict.py MODEL.onnx FOLDER

``YOLO(MODEL, task="detect").predict(FOLDER, stream=True)`` on the CPU, every result consumed
as it comes, Ultralytics' defaults otherwise (conf 0.25, iou 0.7, the export's input size;
an ``.onnx`` file runs on ONNX Runtime). Prints ``images N boxes M`` so that the caller can
check the whole folder was done. Timed from outside, as a whole process (benchmarks/run.py).
"""

from __future__ import annotations

import sys

from ultralytics import YOLO


def main() -> None:
    model, folder = sys.argv[1:3]
    images = boxes = 0
    results = YOLO(model, task="detect").predict(
        folder, stream=True, verbose=False, save=False, device="cpu"
    )
    for result in results:
        images += 1
        boxes += len(result.boxes)
    print(f"images {images} boxes {boxes}", flush=True)


if __name__ == "__main__":
    main()
