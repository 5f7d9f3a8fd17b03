"""A peer: the sequential script people write from OpenCV's DNN sample (object_detection.py).

imread, blobFromImage (plain resize, no letterbox), forward, a Python loop over every output
row, NMSBoxes per class, draw, imwrite; one image after another. Usage:

    python benchmarks/peers/opencv_sample.py CFG WEIGHTS NAMES OUT_DIR IMAGE...
"""

from __future__ import annotations

import os
import sys

import cv2
import numpy as np


def main() -> None:
    cfg, weights, names_file, out_dir, *images = sys.argv[1:]
    with open(names_file) as f:
        names = f.read().strip().splitlines()
    net = cv2.dnn.readNetFromDarknet(cfg, weights)
    layers = net.getUnconnectedOutLayersNames()
    os.makedirs(out_dir, exist_ok=True)
    conf_threshold, nms_threshold = 0.5, 0.45
    for path in images:
        frame = cv2.imread(path)
        height, width = frame.shape[:2]
        blob = cv2.dnn.blobFromImage(frame, 1 / 255.0, (416, 416), swapRB=True, crop=False)
        net.setInput(blob)
        outs = net.forward(layers)
        class_ids, confidences, boxes = [], [], []
        for out in outs:
            for detection in out:
                scores = detection[5:]
                class_id = int(np.argmax(scores))
                confidence = float(scores[class_id])
                if confidence > conf_threshold:
                    cx, cy = int(detection[0] * width), int(detection[1] * height)
                    w, h = int(detection[2] * width), int(detection[3] * height)
                    boxes.append([cx - w // 2, cy - h // 2, w, h])
                    class_ids.append(class_id)
                    confidences.append(confidence)
        keep = cv2.dnn.NMSBoxes(boxes, confidences, conf_threshold, nms_threshold)
        for i in np.array(keep).reshape(-1):
            x, y, w, h = boxes[i]
            cv2.rectangle(frame, (x, y), (x + w, y + h), (0, 255, 0), 2)
            label = f"{names[class_ids[i]]}: {confidences[i]:.2f}"
            cv2.putText(frame, label, (x, y - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 255, 0), 1)
        cv2.imwrite(os.path.join(out_dir, os.path.basename(path)), frame)


if __name__ == "__main__":
    main()
