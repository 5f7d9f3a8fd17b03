"""The cold-start baseline: the least a script must do for one image with cv2.

Load the network, letterbox-free blob, forward, NumPy decode, NMSBoxes, print. Usage:

    python benchmarks/peers/minimal_cold.py CFG WEIGHTS IMAGE
"""

import sys

import cv2
import numpy as np

cfg, weights, image = sys.argv[1:]
net = cv2.dnn.readNetFromDarknet(cfg, weights)
frame = cv2.imread(image)
h, w = frame.shape[:2]
net.setInput(cv2.dnn.blobFromImage(frame, 1 / 255.0, (416, 416), swapRB=True))
out = np.concatenate(net.forward(net.getUnconnectedOutLayersNames()))
scores = out[:, 5:]
rows, cls = np.nonzero(scores > 0.5)
xywh = out[rows, :4] * [w, h, w, h]
xywh[:, :2] -= xywh[:, 2:] / 2
keep = cv2.dnn.NMSBoxes(xywh.tolist(), scores[rows, cls].tolist(), 0.5, 0.45)
print(len(keep), "objects")
