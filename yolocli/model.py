"""`Detector`: a darknet YOLO network in OpenCV's DNN module, with darknet's own pre- and
post-processing around it.

The pipeline for one image: darknet's letterbox (`yolocli.preprocess`), OpenCV's forward
pass, then decoding in NumPy: every (box, class) whose score (objectness x class
probability) is above ``conf``, boxes mapped back through the letterbox, per-class NMS on the
unclipped boxes as darknet does, then clipping to the image.
"""

from __future__ import annotations

import functools
import logging
import os
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import numpy.typing as npt

from yolocli import darknet
from yolocli.detections import Detections
from yolocli.devices import check_device
from yolocli.errors import ImageError, ModelError, OptionError
from yolocli.postprocess import Postprocess
from yolocli.preprocess import Letterbox, Letterboxer

if TYPE_CHECKING:
    from yolocli.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelInfo:
    """Which files a `Detector` runs, and what its network looks like."""

    name: str
    cfg: Path
    weights: Path
    names_file: Path | None
    cfg_text: str
    network: darknet.Network
    class_names: list[str]
    postprocess: Postprocess  # with classes resolved to ids of class_names


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

    >>> det = Detector("yolov3-tiny", postprocess=Postprocess(conf=0.25))  # doctest: +SKIP
    >>> dets = det.detect(cv2.imread("dog.jpg"))                           # doctest: +SKIP
    >>> dets.labels, dets.scores, dets.xyxy                                # doctest: +SKIP

    ``model`` names a registry model (fetched into the store on first use); or pass ``cfg``
    and ``weights`` (and optionally ``names``) for your own darknet model. ``size`` is the
    network input (a multiple of 32; default: the cfg's); ``letterbox`` keeps the aspect ratio
    as darknet does. What is kept of the network's candidates is ``postprocess``'s business
    (`yolocli.postprocess.Postprocess`). Settings are validated before any weights are fetched:
    a bad one raises `yolocli.errors.OptionError` naming it.
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        size: int | None = None,
        device: str = "cpu",
        letterbox: bool = True,
        cfg: str | os.PathLike[str] | None = None,
        weights: str | os.PathLike[str] | None = None,
        names: str | os.PathLike[str] | None = None,
        store: Store | None = None,
        postprocess: Postprocess | None = None,
    ) -> None:
        if size is not None and not (0 < size <= darknet.MAX_SIDE and size % 32 == 0):
            raise OptionError(
                "size",
                f"must be a multiple of 32 from 32 to {darknet.MAX_SIDE} (320, 416, 608), "
                f"not {size}",
            )
        check_device(device)
        self.info = _resolve(model, cfg, weights, names, store, postprocess or Postprocess())
        self.names = self.info.class_names
        self.postprocess = self.info.postprocess
        self.device = device
        self.letterbox = letterbox
        network = self.info.network
        self.width, self.height = (size, size) if size else (network.width, network.height)
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

    def decode(
        self,
        outputs: Sequence[npt.NDArray[np.float32]],
        box: Letterbox,
        postprocess: Postprocess | None = None,
    ) -> Detections:
        """Detections for one image from its rows of the YOLO outputs (each (rows, 5 + C)),
        kept by ``postprocess`` (default: the detector's)."""
        post = self.postprocess if postprocess is None else postprocess.for_names(self.names)
        rows = np.concatenate(outputs) if len(outputs) > 1 else outputs[0]
        return post.apply(rows, box, self.names, post.allowed(len(self.names)))

    def detect(
        self, image: npt.NDArray[np.uint8], postprocess: Postprocess | None = None
    ) -> Detections:
        """Objects in one BGR uint8 image (as ``cv2.imread`` returns), best score first."""
        blob, box = self.preprocess(image)
        (out,) = zip(*self.forward(blob[None]), strict=True)
        return self.decode(out, box, postprocess)

    def __repr__(self) -> str:
        return (
            f"Detector({self.model_name!r}, size={self.width}x{self.height}, "
            f"device={self.device!r}, postprocess={self.postprocess})"
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
    postprocess: Postprocess,
) -> ModelInfo:
    """The files to run (a registry model through the store, or the caller's own), checked
    against each other. Everything that needs no weights is checked before they are fetched."""
    if cfg is not None or weights is not None:
        if cfg is None or weights is None:
            raise ModelError("a custom model needs both a cfg and a weights file")
        if model is not None:
            raise ModelError("give either a model name or cfg/weights files, not both")
        name, cfg_path = Path(cfg).stem, Path(cfg)
        names_path = Path(names) if names is not None else None
        get_weights = None
        weights_path = Path(weights)
    else:
        from yolocli.registry import load_registry
        from yolocli.store import Store

        registry = load_registry()
        spec = registry.get(model or registry.default)
        store = store or Store.from_env()
        name = spec.name
        cfg_path = store.ensure(spec.cfg)  # bundled: never fetched
        names_path = Path(names) if names is not None else store.ensure(spec.names)
        get_weights = functools.partial(store.ensure, spec.weights)
    text, network = darknet.read_cfg(cfg_path)
    if network.channels != 3:
        raise ModelError(
            f"{cfg_path}: the network takes {network.channels}-channel input; yolocli feeds it "
            "3-channel colour images"
        )
    if get_weights is None:  # the caller's own file: check it first, it is already here
        darknet.check_weights(network, cfg_path, weights_path)
    if names_path is None and network.classes == 80:
        from yolocli.registry import config_dir

        names_path = config_dir() / "coco.names"
        log.info("no names file given for an 80-class network: using the COCO class names")
    class_names = (
        darknet.read_names(names_path)
        if names_path is not None
        else [str(i) for i in range(network.classes)]
    )
    darknet.check_names(class_names, network, names_path or Path("names"))
    postprocess = postprocess.for_names(class_names)
    if get_weights is not None:  # fetched only now, once everything else is known good
        weights_path = get_weights()
        darknet.check_weights(network, cfg_path, weights_path)
    return ModelInfo(
        name, cfg_path, weights_path, names_path, text, network, class_names, postprocess
    )
