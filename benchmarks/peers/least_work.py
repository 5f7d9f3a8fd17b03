"""The least work any detector could do on a folder from a cold start: the most any tool
could reach on this machine, whatever its answers.

Usage: least_work.py KIND FOLDER K MODEL...

KIND is an engine as benchmarks/run.py names them, MODEL yolov3-tiny at 416 as it reads it:
``onnxruntime`` GRAPH (the compiled graph as ONNX Runtime optimized it, saved in advance, so
that opening it optimizes nothing), ``opencv-onnx`` GRAPH (the compiled graph: raw heads), or
``opencv-darknet`` CFG WEIGHTS (OpenCV 4's darknet importer, which decodes the heads itself).
Or ``ultralytics`` GRAPH: an Ultralytics detection export (output (1, 4 + classes, anchors)),
as ONNX Runtime optimized it, at Ultralytics' thresholds (conf 0.25, IoU 0.7, 300 boxes).

Imports NumPy and OpenCV, lists FOLDER, forks K processes, each importing the engine and
opening the network with one thread, then taking photos one at a time from a shared queue
(a pipe of indices: no photo waits behind a slow one) and doing the least any detector
must: read and decode the JPEG (``cv2.imdecode``), make the input in one OpenCV call
(``cv2.dnn.blobFromImage``: a stretched uint8 resize, scaled, channels swapped; no
letterbox, no darknet sampling), run the network, decode the heads of the anchors that
pass yolocli's default thresholds (conf 0.5, NMS 0.45) in NumPy, and ``cv2.dnn.NMSBoxes``.
An Ultralytics export gets its letterbox as cheaply (``cv2.resize`` and
``cv2.copyMakeBorder`` of the uint8 photo, then the blob), its best class per anchor and
``cv2.dnn.NMSBoxesBatched``.
Each process writes one line per photo (its path and box count) when it is done.

No yolocli import, no command line to parse, no output files, no error handling: its
answers are not darknet's (the input is stretched), so this is not a peer to match, but the
floor of the work itself. Its share of the bound (the bare forward passes) is a fair
ceiling for every cold-start run on the machine.
"""

import os
import sys
import traceback

import cv2
import numpy as np

# yolov3-tiny's [yolo] layers: grid size -> its three anchors (cfg masks 3,4,5 and 0,1,2)
ANCHORS = {13: [(81, 82), (135, 169), (344, 319)], 26: [(10, 14), (23, 27), (37, 58)]}
SIZE, CONF, NMS = 416, 0.5, 0.45
ULTRALYTICS_SIZE = 640  # the exports' input (Ultralytics' default imgsz)
LOGIT_CONF = float(np.log(CONF / (1 - CONF)))  # objectness > CONF, before the sigmoid


def open_network(kind: str, model: list[str]):
    """A function from a blob to the network's outputs, with one engine thread."""
    if kind in ("onnxruntime", "ultralytics"):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        session = ort.InferenceSession(model[0], options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda blob: session.run(None, {name: blob})
    cv2.setNumThreads(1)
    net = cv2.dnn.readNetFromONNX(*model) if kind == "opencv-onnx" else cv2.dnn.readNet(*model)
    names = net.getUnconnectedOutLayersNames()

    def run(blob):
        net.setInput(blob)
        return net.forward(names)

    return run


def boxes_in(outputs, width: int, height: int) -> int:
    """How many boxes NMS keeps, from the network's outputs for one image: raw heads
    (N, 3 * 85, S, S), or the darknet importer's decoded rows (R, 85), box relative."""
    rows = []
    if outputs[0].ndim == 2:  # decoded: cx, cy, w, h, objectness, objectness x class
        r = np.concatenate(outputs)
        rows.append(np.column_stack([r[:, :4] * [width, height, width, height], r[:, 5:]]))
    for head in outputs if outputs[0].ndim == 4 else ():
        s = head.shape[-1]
        p = head.reshape(3, -1, s, s)
        a, y, x = np.nonzero(p[:, 4] > LOGIT_CONF)  # only cells that can score above CONF
        if a.size == 0:
            continue
        q = p[a, :, y, x]
        sig = 1 / (1 + np.exp(-q))
        anchors = np.array(ANCHORS[s], np.float32)[a]
        rows.append(np.column_stack([
            (sig[:, 0] + x) / s * width, (sig[:, 1] + y) / s * height,
            np.exp(q[:, 2]) * anchors[:, 0] / SIZE * width,
            np.exp(q[:, 3]) * anchors[:, 1] / SIZE * height,
            sig[:, 5:] * sig[:, 4:5],
        ]))  # fmt: skip
    if not rows:
        return 0
    r = np.concatenate(rows)
    i, c = np.nonzero(r[:, 4:] > CONF)
    if i.size == 0:
        return 0
    xywh = r[i, :4]
    xywh[:, :2] -= xywh[:, 2:] / 2
    return len(cv2.dnn.NMSBoxes(xywh.tolist(), r[i, 4 + c].tolist(), CONF, NMS))


def ultralytics_boxes(image, forward) -> int:
    """How many boxes an Ultralytics export keeps in ``image``: its letterbox (centred, gray
    114), its best class per anchor above 0.25, NMS per class at IoU 0.7, 300 at most."""
    h, w = image.shape[:2]
    r = min(ULTRALYTICS_SIZE / h, ULTRALYTICS_SIZE / w)
    new_w, new_h = round(w * r), round(h * r)
    top, left = (ULTRALYTICS_SIZE - new_h) // 2, (ULTRALYTICS_SIZE - new_w) // 2
    canvas = cv2.copyMakeBorder(
        cv2.resize(image, (new_w, new_h)), top, ULTRALYTICS_SIZE - new_h - top, left,
        ULTRALYTICS_SIZE - new_w - left, cv2.BORDER_CONSTANT, value=(114, 114, 114),
    )  # fmt: skip
    out = forward(cv2.dnn.blobFromImage(canvas, 1 / 255.0, swapRB=True))[0][0]
    best = out[4:].max(axis=0)
    (keep,) = np.nonzero(best > 0.25)
    if keep.size == 0:
        return 0
    picked = out[:, keep]
    xywh = np.ascontiguousarray(picked[:4].T)
    xywh[:, :2] -= xywh[:, 2:] / 2
    classes = picked[4:].argmax(axis=0)
    return len(cv2.dnn.NMSBoxesBatched(xywh, best[keep], classes, 0.25, 0.7, top_k=300))


def work(kind: str, model: list[str], files: list[str], queue: int) -> None:
    forward = open_network(kind, model)
    lines = []
    while index := os.read(queue, 4):  # reads of 4 bytes from a pipe are atomic
        path = files[int.from_bytes(index, "little")]
        image = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_COLOR)
        if kind == "ultralytics":
            lines.append(f"{path} {ultralytics_boxes(image, forward)}\n")
            continue
        blob = cv2.dnn.blobFromImage(image, 1 / 255.0, (SIZE, SIZE), swapRB=True)
        lines.append(f"{path} {boxes_in(forward(blob), image.shape[1], image.shape[0])}\n")
    os.write(1, "".join(lines).encode())


def main() -> None:
    kind, folder, k, *model = sys.argv[1:]
    files = sorted(os.path.join(folder, f) for f in os.listdir(folder))
    if len(files) > 16_000:  # the queue is written whole into the pipe's 64 KiB first
        sys.exit("least_work.py takes folders of at most 16,000 photos")
    queue, feed = os.pipe()
    os.write(feed, b"".join(i.to_bytes(4, "little") for i in range(len(files))))
    os.close(feed)
    children = []
    for _ in range(int(k)):
        pid = os.fork()
        if pid == 0:
            status = 1
            try:
                work(kind, model, files, queue)
                status = 0
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(status)
        children.append(pid)
    failed = sum(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) != 0 for pid in children)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
