"""`Detector`: a darknet YOLO network in OpenCV's DNN module, with darknet's own pre- and
post-processing around it.

The pipeline for one image: darknet's letterbox (`yolocli.preprocess`), OpenCV's forward
pass, then decoding in NumPy: every (box, class) whose score (objectness x class
probability) is above ``conf``, boxes mapped back through the letterbox, per-class NMS on the
unclipped boxes as darknet does, then clipping to the image.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import numpy.typing as npt

from yolocli import darknet
from yolocli.detections import Detections
from yolocli.devices import check_device
from yolocli.errors import ImageError, ModelError
from yolocli.ops import clip_boxes, nms
from yolocli.preprocess import Letterbox, Letterboxer

if TYPE_CHECKING:
    from yolocli.store import Store

log = logging.getLogger(__name__)

# Candidates kept for NMS (highest scores first) when a very low --conf lets through more:
# NMS work grows with the square of what is left in a cluster, and nothing of note ranks below.
MAX_CANDIDATES = 30_000


@dataclass(frozen=True)
class ModelInfo:
    """Which files a `Detector` runs, and what its network looks like."""

    name: str
    cfg: Path
    weights: Path
    names_file: Path | None
    cfg_text: str
    network: darknet.Network


def _read_net(cfg_text: str, weights: Path) -> cv2.dnn.Net:
    """Load a darknet network from cfg text and a weights file (via a temporary cfg file:
    OpenCV reads files several times faster than the same cfg from a memory buffer)."""
    fd, tmp = tempfile.mkstemp(prefix="yolocli-", suffix=".cfg")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(cfg_text)
        return cv2.dnn.readNetFromDarknet(tmp, str(weights))
    except cv2.error as err:
        first = str(err).strip().splitlines()[-1] if str(err).strip() else "unknown error"
        raise ModelError(f"OpenCV cannot load {weights.name}: {first}") from None
    finally:
        os.unlink(tmp)


class Detector:
    """A YOLO detector: load once, then call `detect` on as many images as you like.

    >>> det = Detector("yolov3-tiny", conf=0.25)          # doctest: +SKIP
    >>> dets = det.detect(cv2.imread("dog.jpg"))          # doctest: +SKIP
    >>> dets.labels, dets.scores, dets.xyxy               # doctest: +SKIP

    ``model`` names a registry model (fetched into the store on first use); or pass
    ``cfg`` and ``weights`` (and optionally ``names``) for your own darknet model.
    ``size`` is the network input (a multiple of 32; default: the cfg's). A box is reported
    once for every class whose score is above ``conf`` (as darknet does), unless
    ``single_label``. ``classes`` keeps only those class ids; ``agnostic`` runs NMS across
    classes; ``max_det`` caps detections per image (best first; 0 for no cap).
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        size: int | None = None,
        conf: float = 0.5,
        nms: float = 0.45,
        device: str = "cpu",
        classes: Iterable[int] | None = None,
        agnostic: bool = False,
        single_label: bool = False,
        max_det: int = 300,
        letterbox: bool = True,
        cfg: str | os.PathLike[str] | None = None,
        weights: str | os.PathLike[str] | None = None,
        names: str | os.PathLike[str] | None = None,
        store: Store | None = None,
    ) -> None:
        if not 0.0 <= conf <= 1.0:
            raise ValueError(f"conf must be in [0, 1], got {conf}")
        if not 0.0 <= nms <= 1.0:
            raise ValueError(f"nms must be in [0, 1], got {nms}")
        if size is not None and (size <= 0 or size % 32):
            raise ValueError(f"size must be a positive multiple of 32, got {size}")
        if max_det < 0:
            raise ValueError(f"max_det must be >= 0, got {max_det}")
        check_device(device)
        self.info = _resolve(model, cfg, weights, names, store)
        self.names: list[str] = (
            darknet.read_names(self.info.names_file)
            if self.info.names_file
            else [str(i) for i in range(self.info.network.classes)]
        )
        darknet.check_names(self.names, self.info.network, self.info.names_file or Path("names"))
        self.conf = conf
        self.nms_threshold = nms
        self.device = device
        self.agnostic = agnostic
        self.single_label = single_label
        self.max_det = max_det
        self.letterbox = letterbox
        network = self.info.network
        self.width, self.height = (size, size) if size else (network.width, network.height)
        self._allowed: npt.NDArray[np.bool_] | None = None
        if classes is not None:
            wanted = sorted(set(int(c) for c in classes))
            bad = [c for c in wanted if not 0 <= c < len(self.names)]
            if bad:
                raise ValueError(f"class ids {bad} are outside 0..{len(self.names) - 1}")
            self._allowed = np.zeros(len(self.names), dtype=bool)
            self._allowed[wanted] = True
        self._net = self._load()
        self._outputs = list(self._net.getUnconnectedOutLayersNames())
        self._local = threading.local()  # one Letterboxer (and its buffers) per thread

    @property
    def model_name(self) -> str:
        return self.info.name

    def _load(self) -> cv2.dnn.Net:
        # OpenCV's [yolo] layer zeroes every class score not above the cfg's thresh (0.2 by
        # default): lower it to 0 so that any conf the caller asks for really works.
        net = _read_net(darknet.with_threshold(self.info.cfg_text, 0.0), self.info.weights)
        if self.device == "cpu":
            net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
            net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
        elif self.device == "opencl":
            net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
            net.setPreferableTarget(cv2.dnn.DNN_TARGET_OPENCL)
        else:
            net.setPreferableBackend(cv2.dnn.DNN_BACKEND_CUDA)
            target = (
                cv2.dnn.DNN_TARGET_CUDA_FP16
                if self.device == "cuda-fp16"
                else cv2.dnn.DNN_TARGET_CUDA
            )
            net.setPreferableTarget(target)
        return net

    # -- the pipeline, in stages (the CLI times them separately for --profile) ----------------

    def preprocess(
        self, image: npt.NDArray[np.uint8], out: npt.NDArray[np.float32] | None = None
    ) -> tuple[npt.NDArray[np.float32], Letterbox]:
        """The network input (3, h, w) for a BGR uint8 image, and its geometry."""
        _check_image(image)
        prep = getattr(self._local, "prep", None)
        if prep is None:
            prep = self._local.prep = Letterboxer(
                self.width, self.height, stretch=not self.letterbox
            )
        return prep(image, out)

    def forward(self, blobs: npt.NDArray[np.float32]) -> list[npt.NDArray[np.float32]]:
        """Raw outputs of the YOLO layers for a (N, 3, h, w) batch: each (N, rows, 5 + classes)."""
        self._net.setInput(blobs)
        outs = self._net.forward(self._outputs)
        n = blobs.shape[0]
        return [np.asarray(o, dtype=np.float32).reshape(n, -1, o.shape[-1]) for o in outs]

    def decode(self, outputs: Sequence[npt.NDArray[np.float32]], box: Letterbox) -> Detections:
        """Detections for one image from its rows of the YOLO outputs (each (rows, 5 + C))."""
        rows = np.concatenate(outputs) if len(outputs) > 1 else outputs[0]
        scores = rows[:, 5:]
        if self.single_label:
            cls = scores.argmax(axis=1)
            best = scores[np.arange(scores.shape[0]), cls]
            (idx,) = np.nonzero(best > self.conf)
            cls, score = cls[idx], best[idx]
        else:
            idx, cls = np.nonzero(scores > self.conf)
            score = scores[idx, cls]
        if self._allowed is not None:
            wanted = self._allowed[cls]
            idx, cls, score = idx[wanted], cls[wanted], score[wanted]
        if score.size > MAX_CANDIDATES:
            top = np.argsort(-score, kind="stable")[:MAX_CANDIDATES]
            idx, cls, score = idx[top], cls[top], score[top]
        if score.size == 0:
            return Detections.empty(self.names)
        xyxy = box.to_image(rows[idx, :4])
        kept = nms(xyxy, score, self.nms_threshold, class_ids=None if self.agnostic else cls)
        if self.max_det:
            kept = kept[: self.max_det]
        boxes = clip_boxes(xyxy[kept], box.width, box.height).astype(np.float32)
        return Detections(boxes, score[kept], cls[kept].astype(np.int64), self.names)

    def detect(self, image: npt.NDArray[np.uint8]) -> Detections:
        """Objects in one BGR uint8 image (as ``cv2.imread`` returns), best score first."""
        blob, box = self.preprocess(image)
        (out,) = zip(*self.forward(blob[None]), strict=True)
        return self.decode(out, box)

    def __repr__(self) -> str:
        return (
            f"Detector({self.model_name!r}, size={self.width}x{self.height}, conf={self.conf}, "
            f"nms={self.nms_threshold}, device={self.device!r})"
        )


def _check_image(image: object) -> None:
    if not isinstance(image, np.ndarray):
        raise ImageError(f"expected an image array, got {type(image).__name__}")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ImageError(
            f"expected a BGR uint8 image of shape (H, W, 3), got {image.dtype} {image.shape}"
        )
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ImageError("the image is empty (0 pixels)")


def _resolve(
    model: str | None,
    cfg: str | os.PathLike[str] | None,
    weights: str | os.PathLike[str] | None,
    names: str | os.PathLike[str] | None,
    store: Store | None,
) -> ModelInfo:
    """The files to run: a registry model through the store, or the caller's own files."""
    if cfg is not None or weights is not None:
        if cfg is None or weights is None:
            raise ModelError("a custom model needs both a cfg and a weights file")
        if model is not None:
            raise ModelError("give either a model name or cfg/weights files, not both")
        cfg_path, weights_path = Path(cfg), Path(weights)
        text, network = darknet.read_cfg(cfg_path)
        darknet.check_weights(network, cfg_path, weights_path)
        names_path = Path(names) if names is not None else None
        if names_path is None and network.classes == 80:
            from yolocli.registry import config_dir

            names_path = config_dir() / "coco.names"
            log.info("no --names given for an 80-class network: using the COCO class names")
        return ModelInfo(cfg_path.stem, cfg_path, weights_path, names_path, text, network)

    from yolocli.registry import load_registry
    from yolocli.store import Store

    registry = load_registry()
    spec = registry.get(model or registry.default)
    files = (store or Store.from_env()).ensure_model(spec)
    text, network = darknet.read_cfg(files.cfg)
    darknet.check_weights(network, files.cfg, files.weights)
    names_path = Path(names) if names is not None else files.names
    return ModelInfo(spec.name, files.cfg, files.weights, names_path, text, network)
