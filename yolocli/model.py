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

from yolocli import darknet, engines, heads
from yolocli.detections import Detections
from yolocli.devices import check_device
from yolocli.errors import ImageError, ModelError, OptionError, OutputError
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
        size: int | None = None,
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
        rows = heads.decode(outputs, self.heads, self.width, self.height, post.conf)
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
    # a graph this process compiled outside the store (which could not keep it), handed to
    # worker processes so that each does not compile its own
    private_graph: Path | None = None

    def compiled(self) -> Path:
        """The network compiled to ONNX at this plan's input size (see `compiled`)."""
        if self.private_graph is not None:
            from yolocli.onnxwire import check_self_contained

            check_self_contained(self.private_graph)
            return self.private_graph
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
    size: int | None = None,
    device: str = "cpu",
    backend: str = "auto",
    letterbox: bool = True,
    cfg: str | os.PathLike[str] | None = None,
    weights: str | os.PathLike[str] | None = None,
    names: str | os.PathLike[str] | None = None,
    store: Store | None = None,
    postprocess: Postprocess | None = None,
) -> Plan:
    """Resolve and check a detector's settings and files (see `Detector`); no engine yet."""
    _check_size(size)
    resolved = engines.resolve(backend, device)
    if resolved == "opencv":
        check_device(device)  # before any download: a CPU-only OpenCV stays CPU-only
    info = _resolve(model, cfg, weights, names, store, postprocess or Postprocess())
    width, height = (size, size) if size else (info.network.width, info.network.height)
    return Plan(info, resolved, device, width, height, letterbox, store)


def compiled(info: ModelInfo, width: int, height: int, store: Store | None = None) -> Path:
    """``info``'s network compiled to ONNX for a ``width`` x ``height`` input
    (`yolocli.compiler`), made once and cached in the model store under `cache_key`, and
    checked to hold no external data before any engine loads it."""
    from yolocli.onnxwire import check_self_contained
    from yolocli.store import Store

    store = store or Store.from_env()
    size = f"{width}x{height}"
    expected = info.weights_sha256()

    def build() -> bytes:
        from yolocli import compiler  # only when a graph is made: onnx is a slow import
        from yolocli.files import sha256_file

        before = os.stat(info.weights)
        # the bytes compiled must be the bytes the key names, whatever a stamp said
        actual = sha256_file(info.weights)
        if actual != expected:
            if info.registered_sha256 is not None:
                store.forget_file(info.weights)
            raise ModelError(
                f"{info.weights} is not the file that was verified (sha256 {actual}, expected "
                f"{expected}): it was changed in place; run again to hash it afresh "
                "(a registry model's file is then downloaded again)"
            )
        log.info("compiling %s to ONNX at %s (once; cached in the model store)", info.name, size)
        graph = compiler.compile_onnx(info.network, info.weights, size=(width, height))
        if _changed(before, os.stat(info.weights)):
            raise ModelError(f"{info.weights} changed while it was being compiled; run again")
        return bytes(graph.SerializeToString())

    about = {"model": info.name, "size": size, "weights_sha256": expected}
    key = cache_key(info.cfg_text, expected, width, height)
    path = store.derived(f"{info.name}-{size}.onnx", key, build, about)
    check_self_contained(path)
    return path


def cache_key(cfg_text: str, weights_sha256: str, width: int, height: int) -> str:
    """The compiled graph's cache key (hex): everything the graph is made from, the cfg, the
    weights' sha256 (checked against the bytes compiled), the input size and the compiler."""
    parts = (cfg_text, weights_sha256, f"{width}x{height}", _compiler_fingerprint())
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _changed(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_size, a.st_mtime_ns, a.st_ctime_ns, a.st_ino) != (
        b.st_size,
        b.st_mtime_ns,
        b.st_ctime_ns,
        b.st_ino,
    )


def export_onnx(
    dest: str | os.PathLike[str],
    model: str | None = None,
    *,
    size: int | None = None,
    cfg: str | os.PathLike[str] | None = None,
    weights: str | os.PathLike[str] | None = None,
    store: Store | None = None,
    force: bool = False,
) -> Path:
    """Write ``model`` (a registry name, or ``cfg`` + ``weights``) compiled to ONNX at ``dest``.

    The graph takes ``images`` (N, 3, H, W) float32, RGB in [0, 1], letterboxed as darknet
    does, and gives one raw head (N, A*(5+C), H_i, W_i) per ``[yolo]`` layer, ``head_0`` on;
    `yolocli.heads` documents the decoding. Returns ``dest``.

    Like every yolocli output, ``dest`` never replaces a file yolocli did not write (an ONNX
    graph whose producer is yolocli) unless ``force``, and its folder must exist: both are an
    `OutputError`, raised before anything is compiled.
    """
    from yolocli.files import write_atomic

    _check_size(size)
    out = Path(dest)
    check_export_target(out, force)
    info = _resolve(model, cfg, weights, None, store, Postprocess())
    width, height = (size, size) if size else (info.network.width, info.network.height)
    data = compiled(info, width, height, store).read_bytes()
    check_export_target(out, force)  # again: it may have appeared while compiling
    try:
        write_atomic(out, data)
    except OSError as err:
        reason = err.strerror or str(err)
        if err.filename and Path(err.filename) != out:  # the temporary beside it
            reason = f"cannot create a file in {out.parent} ({reason})"
        raise OutputError(f"cannot write {out}: {reason}") from None
    return out


def check_export_target(out: Path, force: bool) -> None:
    """Refuse (`OutputError`) an export to a missing folder, or over a file yolocli did not
    write unless ``force``."""
    from yolocli.onnxwire import producer

    folder = out.parent
    if not folder.is_dir():
        raise OutputError(
            f"cannot write {out}: the folder {folder} does not exist (yolocli does not create "
            "it for you: make it first)"
        )
    if out.is_dir():
        raise OutputError(f"cannot write {out}: it is a folder")
    if force or not (out.exists() or out.is_symlink()):
        return
    if out.is_symlink() or not out.is_file() or producer(out) != "yolocli":
        raise OutputError(
            f"{out} exists and is not a graph yolocli exported; yolocli never replaces a "
            "file it did not write: choose another name, or add --force to replace it"
        )


def _check_size(size: int | None) -> None:
    if size is not None and not (0 < size <= darknet.MAX_SIDE and size % 32 == 0):
        raise OptionError(
            "size",
            f"must be a multiple of 32 from 32 to {darknet.MAX_SIDE} (320, 416, 608), not {size}",
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
