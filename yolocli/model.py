"""`Detector`: a darknet YOLO network on an engine, with darknet's own pre- and
post-processing around it.

The pipeline for one image: darknet's letterbox (`yolocli.preprocess`), the forward pass on an
engine (`yolocli.engines`: OpenCV, ONNX Runtime or OpenVINO) up to the raw head tensors,
darknet's decoding of those heads in NumPy (`yolocli.heads`), then `Postprocess`: every
(box, class) whose score (objectness x class probability) is above ``conf``, boxes mapped back
through the letterbox, per-class NMS on the unclipped boxes as darknet does, then clipping.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from yolocli import darknet, engines, heads, options
from yolocli.detections import Detections
from yolocli.devices import DEVICES, check_device
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
    registered_sha256: str | None = None  # the weights' sha256 where the registry knows it

    def weights_sha256(self) -> str:
        """The weights file's sha256 (hashed here only for the caller's own files)."""
        return self.registered_sha256 or _sha256_cached(self.weights)


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
        size: int | tuple[int, int] | str | None = None,
        device: str = "cpu",
        backend: str = "auto",
        threads: int | None = None,
        letterbox: bool = True,
        cfg: str | os.PathLike[str] | None = None,
        weights: str | os.PathLike[str] | None = None,
        names: str | os.PathLike[str] | None = None,
        store: Store | None = None,
        postprocess: Postprocess | None = None,
    ) -> None:
        check_threads(threads)  # like every setting, before any weights are fetched
        self._open(
            plan(model, size=size, device=device, backend=backend, letterbox=letterbox, cfg=cfg,
                 weights=weights, names=names, store=store, postprocess=postprocess),
            threads,
        )  # fmt: skip

    @classmethod
    def from_plan(cls, plan: Plan, threads: int | None = None) -> Detector:
        """A detector for a `Plan` made elsewhere (a worker process's copy of the network)."""
        detector = cls.__new__(cls)
        detector._open(plan, threads)
        return detector

    def _open(self, plan: Plan, threads: int | None) -> None:
        threads = check_threads(threads)
        self.plan = plan
        self.info = plan.info
        self.backend = plan.backend
        self.names = plan.info.class_names
        self.postprocess = plan.info.postprocess
        self.device = plan.device
        self.letterbox = plan.letterbox
        self.width, self.height = plan.width, plan.height
        self.heads = heads.yolo_heads(plan.info.network)
        graph = engines.Graph(
            plan.info.name, plan.info.cfg, plan.info.cfg_text, plan.info.weights,
            plan.info.network, plan.width, plan.height, plan.compiled,
        )  # fmt: skip
        self.engine = engines.open_engine(plan.backend, graph, plan.device, threads)
        self._local = threading.local()  # one Letterboxer (and its buffers) per thread

    @property
    def model_name(self) -> str:
        return self.info.name

    def compiled(self) -> Path:
        """The network compiled to ONNX at this detector's input size (see `compiled`)."""
        return self.plan.compiled()

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
        """The raw heads for a (N, 3, h, w) batch: one (N, A*(5+C), H_i, W_i) per [yolo]
        layer, in cfg order, from whichever engine runs the network."""
        return self.engine.forward(blobs)

    def decode(
        self,
        outputs: Sequence[npt.NDArray[np.float32]],
        box: Letterbox,
        postprocess: Postprocess | None = None,
    ) -> Detections:
        """Detections for one image from its raw heads (each (A*(5+C), H_i, W_i)), decoded as
        darknet does (`yolocli.heads`) and kept by ``postprocess`` (default: the detector's)."""
        post = self.postprocess if postprocess is None else postprocess.for_names(self.names)
        # only rows that can hold a score above conf: the rest cost most of the work
        rows = heads.decode(outputs, self.heads, self.width, self.height, post.min_conf)
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
            f"device={self.device!r}, engine={self.engine.name!r}, postprocess={self.postprocess})"
        )


@dataclass(frozen=True)
class Plan:
    """Everything a `Detector` is made from, resolved and checked, but no engine loaded:
    small and picklable, so worker processes can each open their own copy of the network
    (`Detector.from_plan`) without fetching, hashing or compiling anything again."""

    info: ModelInfo
    backend: str  # resolved: never "auto"
    device: str
    width: int
    height: int
    letterbox: bool
    store: Store | None

    def compiled(self) -> Path:
        """The network compiled to ONNX at this plan's input size (see `compiled`)."""
        return compiled(self.info, self.width, self.height, self.store)

    @property
    def needs_onnx(self) -> bool:
        """True if the engine runs the compiled graph: not torch (it builds its own module from
        the cfg), nor OpenCV 4 (its darknet importer reads the files)."""
        from yolocli.engines.opencv import has_darknet_importer

        return self.backend != "torch" and (self.backend != "opencv" or not has_darknet_importer())


def plan(
    model: str | None = None,
    *,
    size: int | tuple[int, int] | str | None = None,
    device: str = "cpu",
    backend: str = "auto",
    letterbox: bool = True,
    cfg: str | os.PathLike[str] | None = None,
    weights: str | os.PathLike[str] | None = None,
    names: str | os.PathLike[str] | None = None,
    store: Store | None = None,
    postprocess: Postprocess | None = None,
) -> Plan:
    """Resolve and check a detector's settings and files (see `Detector`); no engine yet.
    Every argument is checked for its type and range first: `OptionError` naming it."""
    sides = _check_size(size)
    _check_model_args(model, cfg, weights, names, store)
    options.choice("device", device, DEVICES)
    options.choice("backend", backend, engines.BACKENDS)
    letterbox = options.boolean("letterbox", letterbox)
    if postprocess is not None:
        options.anything("postprocess", postprocess, Postprocess)
    resolved = engines.resolve(backend, device)
    if resolved == "opencv":
        check_device(device)  # before any download: a CPU-only OpenCV stays CPU-only
    info = _resolve(model, cfg, weights, names, store, postprocess or Postprocess())
    width, height = sides or (info.network.width, info.network.height)
    return Plan(info, resolved, device, width, height, letterbox, store)


THREADS_PER_CORE = options.PER_CORE


def check_threads(threads: object) -> int | None:
    """``threads`` (None: the engine's default) as checked: 1 to `THREADS_PER_CORE` per core."""
    return None if threads is None else options.per_core("threads", threads, "threads")


def _check_model_args(
    model: object, cfg: object, weights: object, names: object, store: object
) -> None:
    if model is not None:
        options.name("model", model)
    for option, value in (("cfg", cfg), ("weights", weights), ("names", names)):
        if value is not None:
            options.path(option, value)
    if store is not None:
        from yolocli.store import Store

        options.anything("store", store, Store)


def compiled(info: ModelInfo, width: int, height: int, store: Store | None = None) -> Path:
    """``info``'s network compiled to ONNX for a ``width`` x ``height`` input
    (`yolocli.compiler`), made once and cached in the model store, keyed by everything it is
    made from: the cfg, the weights' sha256, the size and the compiler itself."""
    from yolocli.store import Store

    store = store or Store.from_env()
    size = f"{width}x{height}"
    key = "\n".join((info.cfg_text, info.weights_sha256(), size, _compiler_fingerprint()))

    def build() -> bytes:
        from yolocli import compiler  # only when a graph is made: onnx is a slow import

        log.info("compiling %s to ONNX at %s (once; cached in the model store)", info.name, size)
        graph = compiler.compile_onnx(info.network, info.weights, size=(width, height))
        return bytes(graph.SerializeToString())

    digest = hashlib.sha256(key.encode()).hexdigest()
    return store.derived(f"{info.name}-{size}.onnx", digest, build)


def export_onnx(
    dest: str | os.PathLike[str],
    model: str | None = None,
    *,
    size: int | tuple[int, int] | str | None = None,
    cfg: str | os.PathLike[str] | None = None,
    weights: str | os.PathLike[str] | None = None,
    store: Store | None = None,
) -> Path:
    """Write ``model`` (a registry name, or ``cfg`` + ``weights``) compiled to ONNX at ``dest``.

    The graph takes ``images`` (N, 3, H, W) float32, RGB in [0, 1], letterboxed as darknet
    does, and gives one raw head (N, A*(5+C), H_i, W_i) per ``[yolo]`` layer, ``head_0`` on;
    `yolocli.heads` documents the decoding. Returns ``dest``.
    """
    from yolocli.files import write_atomic

    sides = _check_size(size)
    options.path("output", dest)
    _check_model_args(model, cfg, weights, None, store)
    info = _resolve(model, cfg, weights, None, store, Postprocess())
    width, height = sides or (info.network.width, info.network.height)
    out = Path(dest)
    graph = compiled(info, width, height, store).read_bytes()
    try:
        write_atomic(out, graph)
    except OSError as err:  # /proc/version, a read-only folder, a full disk ...
        from yolocli.inputs import os_reason

        raise OptionError("output", f"cannot write {out}: {os_reason(err)}") from None
    return out


def _check_size(size: object) -> tuple[int, int] | None:
    """``size`` (an int, a (width, height) pair, or ``'640x384'``) as (width, height)."""
    if size is None:
        return None
    return options.size("size", size, 32, darknet.MAX_SIDE)


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
        sha = None
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
        sha = spec.weights.sha256
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
        name, cfg_path, weights_path, names_path, text, network, class_names, postprocess, sha
    )


@functools.cache
def _sha256_cached(path: Path) -> str:
    from yolocli.files import sha256_file

    return sha256_file(path)


@functools.cache
def _compiler_fingerprint() -> str:
    """A hash of the code that writes the graph: any change to it makes a new cache entry.
    Read from the source files, not imported: finding a cached graph (every worker process
    does) must not pay for importing onnx."""
    import importlib.util

    files = [importlib.util.find_spec(f"yolocli.{m}") for m in ("compiler", "darknet")]
    code = b"".join(Path(f.origin).read_bytes() for f in files if f is not None and f.origin)
    return hashlib.sha256(code).hexdigest()
