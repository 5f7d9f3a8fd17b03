"""The cold-start baseline: the least a script must do for one image with cv2.

Load the network, letterbox-free blob, forward, NumPy decode, NMSBoxes, print. Usage:

    python benchmarks/peers/minimal_cold.py CFG WEIGHTS IMAGE    # OpenCV 4: darknet files
    python benchmarks/peers/minimal_cold.py MODEL.onnx IMAGE     # OpenCV 5: yolocli export's
                                                                 # graph of yolov3-tiny (raw heads)
"""

import sys

import cv2
import numpy as np

*model, image = sys.argv[1:]
frame = cv2.imread(image)
h, w = frame.shape[:2]
blob = cv2.dnn.blobFromImage(frame, 1 / 255.0, (416, 416), swapRB=True)
if len(model) == 2:
    net = cv2.dnn.readNetFromDarknet(*model)
    net.setInput(blob)
    out = np.concatenate(net.forward(net.getUnconnectedOutLayersNames()))
else:  # raw heads (1, 3*85, S, S): decode them as darknet does, with yolov3-tiny's anchors
    net = cv2.dnn.readNetFromONNX(model[0])
    net.setInput(blob)
    anchors = {13: [(81, 82), (135, 169), (344, 319)], 26: [(10, 14), (23, 27), (37, 58)]}
    rows = []
    for head in net.forward(net.getUnconnectedOutLayersNames()):
        s = head.shape[-1]
        p = head.reshape(3, 85, s, s).transpose(0, 2, 3, 1)
        gy, gx = np.mgrid[:s, :s]
        a = np.array(anchors[s], np.float32)[:, None, None, :]
        sig = 1 / (1 + np.exp(-p))
        xy = (sig[..., :2] + np.stack([gx, gy], -1)) / s
        wh = np.exp(p[..., 2:4]) * a / 416
        rows.append(np.concatenate([xy, wh, sig[..., 4:5], sig[..., 5:] * sig[..., 4:5]], -1))
    out = np.concatenate([r.reshape(-1, 85) for r in rows])
scores = out[:, 5:]
rows, cls = np.nonzero(scores > 0.5)
xywh = out[rows, :4] * [w, h, w, h]
xywh[:, :2] -= xywh[:, 2:] / 2
keep = cv2.dnn.NMSBoxes(xywh.tolist(), scores[rows, cls].tolist(), 0.5, 0.45)
print(len(keep), "objects")
