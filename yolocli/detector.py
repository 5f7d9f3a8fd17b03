"""`Detector`: a darknet YOLO network on an engine, with darknet's own pre- and
post-processing around it.

The pipeline for one image: darknet's letterbox (`families.darknet.letterbox`), the forward
pass on an engine (`yolocli.engines`: OpenCV, ONNX Runtime or OpenVINO) up to the raw head tensors,
darknet's decoding of those heads in NumPy (`families.darknet.heads`), then `Postprocess`: every
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from yolocli import engines, options
from yolocli.detections import Detections
from yolocli.engines.devices import DEVICES, check_device
from yolocli.errors import EngineError, ImageError, ModelError, OptionError, OutputError
from yolocli.families import OnnxRecipe, is_onnx
from yolocli.families.darknet import cfg as darknet
from yolocli.families.darknet import heads
from yolocli.families.darknet.letterbox import Letterbox
from yolocli.postprocess import Postprocess
from yolocli.recipe import Recipe, darknet_recipe

if TYPE_CHECKING:
    from yolocli.models.store import Store

log = logging.getLogger(__name__)
VERBOSE = logging.INFO - 5  # shown with -v (yolocli.cli.common.VERBOSE)


@dataclass(frozen=True)
class ModelInfo:
    """Which files a `Detector` runs, and what its network looks like.

    A darknet model has a ``cfg`` (its text and parsed ``network``) and ``weights``; a model
    of another family (`yolocli.families`) is one ONNX file, ``weights``, with ``cfg`` and
    ``network`` None and its recipe an `yolocli.families.OnnxRecipe`.
    """

    name: str
    cfg: Path | None
    weights: Path
    names_file: Path | None
    cfg_text: str
    network: darknet.Network | None
    class_names: list[str]
    postprocess: Postprocess  # with classes resolved to ids of class_names
    registered_sha256: str | None = None  # the weights' sha256 where the registry knows it
    recipe: Recipe = field(default_factory=Recipe)  # how it runs (yolocli.recipe): chosen once

    def weights_sha256(self) -> str:
        """The weights file's sha256 (hashed here only for the caller's own files)."""
        return self.registered_sha256 or _sha256_cached(self.weights)


class Detector:
    """A YOLO detector: load once, then call `detect` on as many images as you like.

    >>> det = Detector("yolov3-tiny", postprocess=Postprocess(conf=0.25))  # doctest: +SKIP
    >>> dets = det.detect(cv2.imread("dog.jpg"))                           # doctest: +SKIP
    >>> dets.labels, dets.scores, dets.xyxy                                # doctest: +SKIP

    ``model`` names a registry model (fetched into the store on first use) or an ONNX file of
    another family (``"my_model.onnx"``: Ultralytics, YOLOv5/YOLOv7 or YOLOX, recognised as
    `yolocli.families` says; ``family`` overrides that, ``names`` supplies class names the
    file lacks); or pass ``cfg`` and ``weights`` (and optionally ``names``) for your own
    darknet model. ``size`` is the
    network input (a multiple of 32; default: the cfg's). The model runs as the darknet that
    made it runs it (`yolocli.recipe`): ``darknet`` ("pjreddie" or "alexeyab") overrides the
    flavour the registry states or the cfg implies; ``letterbox`` overrides the input mode
    (None: the flavour's: pjreddie letterboxes, AlexeyAB follows ``[net] letter_box``).
    What is kept of the network's candidates is ``postprocess``'s business
    (`yolocli.postprocess.Postprocess`). Settings are validated before any weights are fetched:
    a bad one raises `yolocli.errors.OptionError` naming it.
    """

    _engine: engines.Engine | None  # None while it opens (`from_plan` with wait=False)
    _failed: BaseException | None  # what opening it raised

    def __init__(
        self,
        model: str | None = None,
        *,
        size: int | tuple[int, int] | str | None = None,
        device: str = "cpu",
        backend: str = "auto",
        threads: int | None = None,
        letterbox: bool | None = None,
        cfg: str | os.PathLike[str] | None = None,
        weights: str | os.PathLike[str] | None = None,
        names: str | os.PathLike[str] | None = None,
        store: Store | None = None,
        postprocess: Postprocess | None = None,
        darknet: str | None = None,
        family: str | None = None,
        precision: str = "fp32",
        calibration: Sequence[str | os.PathLike[str]] = (),
    ) -> None:
        check_threads(threads)  # like every setting, before any weights are fetched
        self._open(
            plan(model, size=size, device=device, backend=backend, letterbox=letterbox, cfg=cfg,
                 weights=weights, names=names, store=store, postprocess=postprocess,
                 darknet=darknet, family=family, precision=precision, calibration=calibration),
            threads,
        )  # fmt: skip

    @classmethod
    def from_plan(cls, plan: Plan, threads: int | None = None, *, wait: bool = True) -> Detector:
        """A detector for a `Plan` made elsewhere (a worker process's copy of the network).

        ``wait`` False returns at once and opens the engine on a thread of its own (the
        engines load their graphs without holding the GIL): work that needs no network, such
        as reading and letterboxing the first image, goes on meanwhile, and the first use of
        `engine` waits for it (raising what opening raised). Call `ready` to wait sooner."""
        detector = cls.__new__(cls)
        detector._open(plan, threads, wait)
        return detector

    @property
    def engine(self) -> engines.Engine:
        """The engine running the network (waits for it if it is still opening)."""
        if self._engine is None:
            self._opening.join()
            if self._failed is not None:
                raise self._failed
            assert self._engine is not None
        return self._engine

    @engine.setter
    def engine(self, engine: engines.Engine) -> None:  # another engine for the same graph
        self.ready()  # (one opening still under way is not left to overwrite it)
        self._engine = engine

    def ready(self) -> Detector:
        """This detector once its engine is open; raises what opening it raised."""
        self.engine  # noqa: B018 (waits)
        return self

    def _open(self, plan: Plan, threads: int | None, wait: bool = True) -> None:
        threads = check_threads(threads)
        self.plan = plan
        self.info = plan.info
        self.backend = plan.backend
        self.names = plan.info.class_names
        self.postprocess = plan.info.postprocess
        self.device = plan.device
        self.recipe = plan.info.recipe
        self.letterbox = self.recipe.letterbox
        self.width, self.height = plan.width, plan.height
        network = plan.info.network  # None for an ONNX model: its recipe decodes its outputs
        self.heads = heads.yolo_heads(network) if network is not None else []
        # an ONNX file's fixed batch size (most exports fix it at 1)
        self._fixed_batch = self.recipe.batch if isinstance(self.recipe, OnnxRecipe) else None
        graph = engines.Graph(
            plan.info.name, plan.info.cfg, plan.info.cfg_text, plan.info.weights,
            plan.info.network, plan.width, plan.height, plan.compiled, self.recipe, plan.store,
            plan.precision,
        )  # fmt: skip
        self._local = threading.local()  # one Letterboxer (and its buffers) per thread
        self._engine = None
        self._failed = None
        if wait:
            self._engine = engines.open_engine(plan.backend, graph, plan.device, threads)
            return

        def open_it() -> None:
            try:
                self._engine = engines.open_engine(plan.backend, graph, plan.device, threads)
                if self._runtime_letterbox:  # its own small session: ready before the image
                    from yolocli.families.darknet.letterbox import runtime_letterbox_session

                    runtime_letterbox_session()
            except BaseException as err:  # raised where the engine is first wanted
                self._failed = err

        # Not a daemon: should the run end first (a usage error found after the plan, Ctrl-C),
        # Python waits for the opening to finish before it shuts down, rather than tearing
        # the engine's C++ down under it (which aborts the process).
        self._opening = threading.Thread(target=open_it, name="yolocli-open", daemon=False)
        self._opening.start()

    @property
    def _runtime_letterbox(self) -> bool:
        """Images are letterboxed by ONNX Runtime (`yolocli.families.darknet.letterbox`)."""
        return self.backend == "onnxruntime" and self.info.network is not None

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
        """The network input (3, h, w) for a BGR uint8 image, and its geometry, prepared as
        the model's recipe says (letterboxed or stretched)."""
        _check_image(image)
        prep = getattr(self._local, "prep", None)
        if prep is None:
            if self._runtime_letterbox:
                # a darknet model on ONNX Runtime: darknet's letterbox in the engine's own
                # code, half the CPU time (other families prepare images their own way)
                from yolocli.families.darknet.letterbox import RuntimeLetterboxer

                prep = RuntimeLetterboxer(self.width, self.height, stretch=not self.letterbox)
            else:
                prep = self.recipe.preprocessor(self.width, self.height)
            self._local.prep = prep
        return prep(image, out)

    def geometry(self, width: int, height: int) -> Letterbox:
        """Where a ``width`` x ``height`` image lands in this detector's input (no pixels
        touched: for callers that prepare the image elsewhere, as slicing does)."""
        return self.recipe.geometry(width, height, self.width, self.height)

    def forward(self, blobs: npt.NDArray[np.float32]) -> list[npt.NDArray[np.float32]]:
        """The raw heads for a (N, 3, h, w) batch: one (N, A*(5+C), H_i, W_i) per [yolo]
        layer, in cfg order, from whichever engine runs the network (an ONNX model: its
        outputs). A file whose batch size is fixed runs the batch in passes of that size."""
        step = self._fixed_batch
        if step is None or blobs.shape[0] == step:
            return self.engine.forward(blobs)
        if blobs.shape[0] % step:
            raise ModelError(
                f"{self.model_name} takes batches of {step} image(s) only, not {blobs.shape[0]}"
            )
        parts = [self.engine.forward(blobs[i : i + step]) for i in range(0, len(blobs), step)]
        return [np.concatenate(outs) for outs in zip(*parts, strict=True)]

    def decode(
        self,
        outputs: Sequence[npt.NDArray[np.float32]],
        box: Letterbox,
        postprocess: Postprocess | None = None,
    ) -> Detections:
        """Detections for one image from its raw outputs (for darknet each head's
        (A*(5+C), H_i, W_i)), decoded as the model's family does (darknet: `families.darknet.heads`;
        others: `yolocli.families`) and kept by ``postprocess`` (default: the detector's)."""
        post = self.postprocess if postprocess is None else postprocess.for_names(self.names)
        # only rows that can hold a score above conf: the rest cost most of the work
        rows = self.recipe.decode(outputs, self.heads, self.width, self.height, post.min_conf)
        return post.apply(rows, box, self.names, post.allowed(len(self.names)), self.recipe)

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
            f"device={self.device!r}, engine={self.engine.name!r}, darknet="
            f"{self.recipe.flavour!r}, postprocess={self.postprocess})"
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
    store: Store | None
    precision: str = (
        "fp32"  # or "int8" (ONNX Runtime), "bf16" (OpenVINO): yolocli.engines.precision
    )
    calibration: tuple[Path, ...] = ()  # int8's calibration images
    # a graph this process compiled outside the store (which could not keep it), handed to
    # worker processes so that each does not compile its own
    private_graph: Path | None = None

    @property
    def recipe(self) -> Recipe:
        """How the model is run (`yolocli.recipe`), the caller's input mode included."""
        return self.info.recipe

    @property
    def letterbox(self) -> bool:
        return self.info.recipe.letterbox

    def compiled(self) -> Path:
        """The network compiled to ONNX at this plan's input size (see `compiled`); for an
        ONNX model, its own file; for ``int8``, that graph quantized
        (`yolocli.engines.precision.int8_graph`)."""
        if self.info.network is None:
            return self.info.weights
        if self.private_graph is not None:
            from yolocli.models.onnxwire import check_self_contained

            check_self_contained(self.private_graph)
            graph = self.private_graph
        else:
            graph = compiled(self.info, self.width, self.height, self.store)
        if self.precision == "int8":
            from yolocli.engines.precision import int8_graph

            return int8_graph(self, graph)
        return graph

    @property
    def needs_onnx(self) -> bool:
        """True if the engine runs the compiled graph: not torch (it builds its own module from
        the cfg), nor OpenCV 4 on a pjreddie model (its darknet importer reads the files)."""
        from yolocli.engines.opencv import uses_darknet_importer

        return self.backend != "torch" and (
            self.backend != "opencv" or not uses_darknet_importer(self.recipe)
        )


def plan(
    model: str | None = None,
    *,
    size: int | tuple[int, int] | str | None = None,
    device: str = "cpu",
    backend: str = "auto",
    letterbox: bool | None = None,
    cfg: str | os.PathLike[str] | None = None,
    weights: str | os.PathLike[str] | None = None,
    names: str | os.PathLike[str] | None = None,
    store: Store | None = None,
    postprocess: Postprocess | None = None,
    darknet: str | None = None,
    family: str | None = None,
    precision: str = "fp32",
    calibration: Sequence[str | os.PathLike[str]] = (),
) -> Plan:
    """Resolve and check a detector's settings and files (see `Detector`); no engine yet.

    ``precision``: "fp32" (darknet's numbers), or opt-in "int8" (ONNX Runtime, calibrated on
    the first images of ``calibration``) or "bf16" (OpenVINO, on a CPU with bfloat16
    instructions): see `yolocli.engines.precision`; `OptionError` where it cannot run.

    Every argument is checked for its type and range first: `OptionError` naming it."""
    from yolocli.engines.precision import PRECISIONS, backend_for, calibration_images

    sides = _check_size(size)
    _check_model_args(model, cfg, weights, names, store)
    options.choice("device", device, DEVICES)
    options.choice("backend", backend, engines.BACKENDS)
    if letterbox is not None:
        letterbox = options.boolean("letterbox", letterbox)
    if postprocess is not None:
        options.anything("postprocess", postprocess, Postprocess)
    _check_recipe_args(darknet, family)
    options.choice("precision", precision, PRECISIONS)
    if isinstance(calibration, str | os.PathLike) or not isinstance(calibration, Sequence):
        raise OptionError("calibration", "must be a list of image paths")
    for item in calibration:
        options.path("calibration", item)
    onnx_model = model is not None and is_onnx(model)
    if family is not None and not onnx_model:
        raise OptionError("family", "is for ONNX models (--model my_model.onnx)")
    if onnx_model and backend == "auto" and device.startswith("cuda"):
        backend = "opencv"  # the torch engine runs darknet networks only
    if onnx_model and backend == "torch":
        raise EngineError(
            "the torch engine runs darknet networks only; an ONNX model runs on onnxruntime, "
            "openvino or opencv (--backend)"
        )
    if onnx_model and precision == "int8":
        raise OptionError("precision", "int8 is for darknet models so far, not an ONNX model")
    resolved = backend_for(precision, backend, device)
    if resolved == "opencv":
        check_device(device)  # before any download: a CPU-only OpenCV stays CPU-only
    if onnx_model:
        assert model is not None
        if cfg is not None or weights is not None:
            raise ModelError("give either an ONNX model or cfg/weights files, not both")
        if darknet is not None:
            raise OptionError("darknet", "is for darknet models, not an ONNX model")
        info = _resolve_onnx(model, names, sides, family, postprocess or Postprocess(), letterbox)
        log.log(VERBOSE, "%s runs as %s", info.name, info.recipe.describe())
        onnx_recipe = info.recipe
        assert isinstance(onnx_recipe, OnnxRecipe)
        return Plan(info, resolved, device, onnx_recipe.width, onnx_recipe.height, store, precision)
    info = _resolve(
        model, cfg, weights, names, store, postprocess or Postprocess(), darknet, letterbox
    )
    log.log(VERBOSE, "%s runs as %s", info.name, info.recipe.describe())
    assert info.network is not None
    width, height = sides or (info.network.width, info.network.height)
    images = calibration_images([Path(p) for p in calibration]) if precision == "int8" else ()
    return Plan(info, resolved, device, width, height, store, precision, images)


def _resolve_onnx(
    path: str,
    names: str | os.PathLike[str] | None,
    size: tuple[int, int] | None,
    family: str | None,
    postprocess: Postprocess,
    letterbox: bool | None,
) -> ModelInfo:
    """An ONNX model of a known family (`yolocli.families`): read, recognised, checked."""
    from yolocli import families

    if letterbox is False:
        raise OptionError(
            "letterbox", "an ONNX model is prepared as its family does: --no-letterbox is for "
            "darknet models"
        )  # fmt: skip
    names_path = Path(names) if names is not None else None
    given = darknet.read_names(names_path) if names_path is not None else None
    recipe = families.recognise(families.read_onnx(path), family, given, size)
    class_names = list(recipe.names)
    return ModelInfo(
        Path(path).stem, None, Path(path), names_path, "", None, class_names,
        postprocess.for_names(class_names), None, recipe,
    )  # fmt: skip


THREADS_PER_CORE = options.PER_CORE


def check_threads(threads: object) -> int | None:
    """``threads`` (None: the engine's default) as checked: 1 to `THREADS_PER_CORE` per core."""
    return None if threads is None else options.per_core("threads", threads, "threads")


def _check_recipe_args(darknet: object, family: object) -> None:
    """``darknet`` and ``family`` (None: from the model) are names yolocli knows."""
    from yolocli.families import FAMILIES
    from yolocli.recipe import FLAVOURS

    if darknet is not None:
        options.choice("darknet", darknet, FLAVOURS)
    if family is not None:
        options.choice("family", family, FAMILIES)


def _check_model_args(
    model: object, cfg: object, weights: object, names: object, store: object
) -> None:
    if model is not None:
        options.name("model", model)
    for option, value in (("cfg", cfg), ("weights", weights), ("names", names)):
        if value is not None:
            options.path(option, value)
    if store is not None:
        from yolocli.models.store import Store

        options.anything("store", store, Store)


def compiled(info: ModelInfo, width: int, height: int, store: Store | None = None) -> Path:
    """``info``'s network compiled to ONNX for a ``width`` x ``height`` input
    (`families.darknet.compiler`), made once and cached in the model store under `cache_key`
    (the cfg, the weights' sha256, the size, the recipe's part in the graph, the compiler),
    and checked to hold no external data before any engine loads it."""
    from yolocli.models.onnxwire import check_self_contained
    from yolocli.models.store import Store

    store = store or Store.from_env()
    size = f"{width}x{height}"
    recipe = info.recipe
    network = info.network
    if network is None:
        raise ModelError(f"{info.name} is an ONNX model already: there is nothing to compile")
    expected = info.weights_sha256()

    def build() -> bytes:
        from yolocli.families.darknet import (
            compiler,  # only when a graph is made: onnx is a slow import
        )
        from yolocli.io.files import sha256_file

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
        graph = compiler.compile_onnx(network, info.weights, size=(width, height), recipe=recipe)
        if _changed(before, os.stat(info.weights)):
            raise ModelError(f"{info.weights} changed while it was being compiled; run again")
        return bytes(graph.SerializeToString())

    about = {"model": info.name, "size": size, "weights_sha256": expected}
    key = cache_key(info.cfg_text, expected, width, height, recipe.cache_key)
    path = store.derived(f"{info.name}-{size}.onnx", key, build, about)
    check_self_contained(path)
    return path


def cache_key(cfg_text: str, weights_sha256: str, width: int, height: int, recipe_key: str) -> str:
    """The compiled graph's cache key (hex): everything the graph is made from, the cfg, the
    weights' sha256 (checked against the bytes compiled), the input size, the recipe's part
    in the graph (the darknet flavour's batch-norm formula) and the compiler."""
    parts = (cfg_text, weights_sha256, f"{width}x{height}", recipe_key, _compiler_fingerprint())
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
    size: int | tuple[int, int] | str | None = None,
    cfg: str | os.PathLike[str] | None = None,
    weights: str | os.PathLike[str] | None = None,
    names: str | os.PathLike[str] | None = None,
    store: Store | None = None,
    darknet: str | None = None,
    decoded: bool = False,
    nms: Postprocess | None = None,
    force: bool = False,
) -> Path:
    """Write ``model`` (a registry name, or ``cfg`` + ``weights``) compiled to ONNX at ``dest``.

    The graph takes ``images`` (N, 3, H, W) float32, RGB in [0, 1], prepared as the model's
    darknet does (letterboxed, or stretched for AlexeyAB's without ``letter_box``), and gives
    one raw head (N, A*(5+C), H_i, W_i) per ``[yolo]`` layer, ``head_0`` on;
    `families.darknet.heads` documents the decoding. Batch norm is folded with the formula of
    the model's darknet flavour (``darknet`` overrides it, as for `Detector`).

    ``decoded``: darknet's decode inside the graph instead, one ``output`` (N, R, 5 + C); with
    ``nms`` (its ``conf``, ``nms`` and ``max_det`` per class), the boxes ONNX's NMS keeps,
    ``detections`` (K, 7) (`yolocli.families.darknet.onnx_export`). Every export records the class
    names, input size, strides, anchors, flavour and preprocessing in ``metadata_props``.
    Returns ``dest``.

    Like every yolocli output, ``dest`` never replaces a file yolocli did not write (an ONNX
    graph whose producer is yolocli) unless ``force``, and its folder must exist: both are an
    `OutputError`, raised before anything is compiled.
    """
    import onnx

    from yolocli.families.darknet import onnx_export as darknet_onnx
    from yolocli.io.files import write_atomic

    sides = _check_size(size)
    options.path("output", dest)
    _check_model_args(model, cfg, weights, names, store)
    _check_recipe_args(darknet, None)
    options.boolean("decoded", decoded)
    options.boolean("force", force)
    if nms is not None:
        options.anything("nms", nms, Postprocess)
    if nms is not None and not decoded:
        raise OptionError("nms", "NMS in the graph needs the decoded form (decoded=True)")
    if model is not None and is_onnx(model):
        raise ModelError(f"{model} is an ONNX model already: export writes darknet models")
    out = Path(dest)
    check_export_target(out, force)
    info = _resolve(model, cfg, weights, names, store, Postprocess(), darknet)
    network = info.network
    assert network is not None
    width, height = sides or (network.width, network.height)
    graph = onnx.load_from_string(compiled(info, width, height, store).read_bytes())
    yolo_heads = heads.yolo_heads(network)
    from yolocli.families.darknet.cfg import (
        resized,  # (the parameter ``darknet`` hides the module here)
    )

    at_size = resized(network, width, height)
    shapes = [at_size.layers[h.layer].shape[1:] for h in yolo_heads]
    grids = [(int(h), int(w)) for h, w in shapes]
    extra: dict[str, str] = {}
    if not decoded:
        outputs = (
            "head_0.. (N, A*(5+C), H/s, W/s): the raw convolution outputs of each [yolo] layer, "
            "before any sigmoid; decode with 'heads' (darknet's get_yolo_box)"
        )
    elif nms is None:
        outputs = (
            f"{darknet_onnx.DECODED} (N, R, 5+C): cx, cy, w, h in input pixels, objectness, "
            "class probabilities (score = objectness x probability); no NMS"
        )
        darknet_onnx.decode_into(graph, yolo_heads, grids, width, height)
    else:
        outputs = (
            f"{darknet_onnx.DETECTIONS} (K, 7): batch, x1, y1, x2, y2 (input pixels), class, "
            "score (objectness x probability), after IoU NMS per class"
        )
        per_class = nms.max_det or 10_000
        darknet_onnx.decode_into(
            graph, yolo_heads, grids, width, height, (nms.conf, nms.nms, per_class)
        )
        extra = {"conf": str(nms.conf), "iou": str(nms.nms), "max_det_per_class": str(per_class)}
    meta = darknet_onnx.metadata(
        info.class_names, yolo_heads, grids, width, height, info.recipe, outputs, extra
    )
    darknet_onnx.set_metadata(graph, meta)
    check_export_target(out, force)  # again: it may have appeared while compiling
    try:
        write_atomic(out, graph.SerializeToString())
    except OSError as err:  # /proc/version, a read-only folder, a full disk ...
        from yolocli.io.inputs import os_reason

        reason = os_reason(err)
        if err.filename and Path(err.filename) != out:  # the temporary beside it
            reason = f"cannot create a file in {out.parent} ({reason})"
        raise OutputError(f"cannot write {out}: {reason}") from None
    return out


def check_export_target(out: Path, force: bool) -> None:
    """Refuse (`OutputError`) an export to a missing folder, or over a file yolocli did not
    write unless ``force``."""
    from yolocli.models.onnxwire import producer

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
    flavour: str | None = None,
    letterbox: bool | None = None,
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
        registered = None
    else:
        from yolocli.models.registry import load_registry
        from yolocli.models.store import Store

        registry = load_registry()
        spec = registry.get(model or registry.default)
        store = store or Store.from_env()
        name = spec.name
        cfg_path = store.ensure(spec.cfg)  # bundled: never fetched
        names_path = Path(names) if names is not None else store.ensure(spec.names)
        get_weights = functools.partial(store.ensure, spec.weights)
        sha = spec.weights.sha256
        registered = spec.darknet
    text, network = darknet.read_cfg(cfg_path)
    recipe = darknet_recipe(
        darknet.parse_cfg(text, str(cfg_path)),
        registered=registered,
        flavour=flavour,
        letterbox=letterbox,
    )
    if network.channels != 3:
        raise ModelError(
            f"{cfg_path}: the network takes {network.channels}-channel input; yolocli feeds it "
            "3-channel colour images"
        )
    if get_weights is None:  # the caller's own file: check it first, it is already here
        darknet.check_weights(network, cfg_path, weights_path)
    if names_path is None and network.classes == 80:
        from yolocli.models.registry import config_dir

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
        name, cfg_path, weights_path, names_path, text, network, class_names, postprocess, sha,
        recipe,
    )  # fmt: skip


@functools.cache
def _sha256_cached(path: Path) -> str:
    from yolocli.io.files import sha256_file

    return sha256_file(path)


@functools.cache
def _compiler_fingerprint() -> str:
    """A hash of the code that writes the graph: any change to it makes a new cache entry.
    Read from the source files, not imported: finding a cached graph (every worker process
    does) must not pay for importing onnx."""
    import importlib.util

    # the compiler, the cfg reader, and the recipe, whose fold_bn puts the batch norm into
    # the graph's weights
    modules = (
        "yolocli.families.darknet.compiler",
        "yolocli.families.darknet.cfg",
        "yolocli.recipe",
    )
    files = [importlib.util.find_spec(m) for m in modules]
    code = b"".join(Path(f.origin).read_bytes() for f in files if f is not None and f.origin)
    return hashlib.sha256(code).hexdigest()
