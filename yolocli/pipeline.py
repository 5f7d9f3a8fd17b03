"""Many images through one `Detector`: streaming, in order, every failure kept to its image.

Reading, decoding and letterboxing run on worker threads ahead of inference; drawing,
encoding and writing run on worker threads behind it; the forward pass (itself
multi-threaded inside OpenCV) runs on the calling thread. Work waits in bounded windows, so
memory stays flat however many images there are, and results come out in input order, one
at a time, as soon as each is complete (its files written).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from yolocli import inputs, workers
from yolocli.detections import Detections
from yolocli.errors import ImageError
from yolocli.images import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS
from yolocli.model import Detector, Plan
from yolocli.outputs import Outputs, Saved, SaveOptions, Targets
from yolocli.preprocess import Letterbox
from yolocli.records import ImageRecord, OutputsRecord
from yolocli.slicing import Slicer
from yolocli.timing import STAGES, Clock, Timings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Options:
    """How much work to keep in flight."""

    batch: int = 1  # images per forward pass (in-process)
    workers: int = 1  # worker processes, each with its own network; 1: in this process
    threads: int | None = None  # engine threads per network (None: the engine's default)
    stage_threads: int = 2  # in-process: threads reading ahead, and drawing and writing behind
    max_bytes: int = DEFAULT_MAX_BYTES  # per input file, read no further
    max_pixels: int = DEFAULT_MAX_PIXELS  # per image, refused from its header
    slicer: Slicer | None = None  # sliced inference (yolocli.slicing); None: one pass an image


@dataclass
class Result:
    """What happened to one input."""

    source: inputs.Source
    width: int | None = None
    height: int | None = None
    detections: Detections | None = None
    error: str | None = None
    skipped: bool = False
    outputs: OutputsRecord = field(default_factory=lambda: OutputsRecord())
    warnings: list[str] = field(default_factory=list)
    timings: Timings = field(default_factory=dict)
    tiles: int = 1  # network passes this image took (more than one when sliced)

    @property
    def input_error(self) -> bool:
        """True if the input named no image at all (a pattern matching nothing, say)."""
        return self.source.not_an_image

    def record(self, model: str) -> ImageRecord:
        """The result as the documented record (`yolocli.records.ImageRecord`)."""
        rec: ImageRecord = {
            "image": self.source.name,
            "width": self.width,
            "height": self.height,
            "model": model,
            "detections": self.detections.records() if self.detections is not None else [],
            "outputs": self.outputs,
            "error": self.error,
        }
        if self.skipped:
            rec["skipped"] = True
        if self.warnings:
            rec["warnings"] = self.warnings
        return rec


@dataclass
class _Loaded:
    source: inputs.Source
    image: npt.NDArray[np.uint8]
    blob: npt.NDArray[np.float32]
    box: Letterbox
    targets: Targets
    timings: Timings
    warnings: list[str]


_END = object()


def _produce(sources: Iterable[inputs.Source], inbox: queue.Queue[Any]) -> None:
    """Feed ``inbox`` with every source, then ``_END`` (an exception is passed on as is)."""
    try:
        for source in sources:
            inbox.put(source)
    except BaseException as err:  # handed to the consuming thread, which raises it
        inbox.put(err)
    inbox.put(_END)


def _done(value: Any) -> Future[Any]:
    future: Future[Any] = Future()
    future.set_result(value)
    return future


class Pipeline:
    """Runs a `Detector` over a stream of `yolocli.inputs.Source` items; see `run`.

    ``outputs`` (entered by the caller) names and writes each input's files; None writes none.
    """

    def __init__(
        self,
        detector: Detector | Plan,
        outputs: Outputs | None = None,
        options: Options | None = None,
    ) -> None:
        self.plan = detector if isinstance(detector, Plan) else detector.plan
        self._detector = detector if isinstance(detector, Detector) else None
        self.outputs = outputs or Outputs(SaveOptions())
        self.options = options or Options()
        if self.options.batch < 1:
            raise ValueError(f"batch must be >= 1, got {self.options.batch}")
        if self.options.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.options.workers}")
        self.engine = ""  # what ran the network, once known (for --profile)

    @property
    def detector(self) -> Detector:
        """The in-process network (opened on first use when given a `Plan`)."""
        if self._detector is None:
            self._detector = Detector.from_plan(self.plan, self.options.threads)
        return self._detector

    def _early(self, source: inputs.Source, targets: Targets) -> Result | None:
        """The result of an input that needs no network: an error, or done in an earlier run."""
        if source.error:
            return Result(source, error=source.error)
        if targets.error:
            return Result(source, error=targets.error)
        done = self.outputs.done_before(source)
        if done is not None:
            return Result(source, skipped=True, outputs=done)
        return None

    # -- stages ----------------------------------------------------------------------------

    def _load(self, source: inputs.Source, targets: Targets) -> _Loaded | Result:
        early = self._early(source, targets)
        if early is not None:
            return early
        opts = self.options
        try:
            got = workers.load(
                self.detector, source, opts.max_bytes, opts.max_pixels, opts.slicer is None
            )
        except ImageError as err:
            return Result(source, error=str(err))
        except Exception as err:  # a bug must cost one image, not the batch
            log.debug("internal error on %s", source.name, exc_info=True)
            return Result(source, error=_internal(err))
        return _Loaded(source, got.image, got.blob, got.box, targets, got.timings, got.warnings)

    def _save(self, loaded: _Loaded, dets: Detections) -> Result:
        result = Result(
            loaded.source,
            width=loaded.box.width,
            height=loaded.box.height,
            detections=dets,
            warnings=loaded.warnings,
            timings=loaded.timings,
        )
        if self.options.slicer is not None:
            result.tiles = len(self.options.slicer.windows(loaded.box.width, loaded.box.height))
        self._store(result, lambda: self.outputs.save(
            loaded.source, loaded.targets, loaded.image, dets, loaded.box
        ))  # fmt: skip
        return result

    def _store(self, result: Result, save: Callable[[], Saved]) -> None:
        """Run ``save`` for ``result``; its failure becomes the result's error."""
        try:
            saved = save()
            result.outputs = saved.outputs
            result.timings.update(saved.timings)
        except ImageError as err:
            result.error = str(err)
        except MemoryError:
            result.error = "out of memory while drawing or encoding this image"
        except OSError as err:
            where = f" ({err.filename})" if err.filename else ""
            result.error = f"cannot write outputs: {err.strerror or err}{where}"
        except Exception as err:  # a bug must cost one image, not the batch
            log.debug("internal error saving %s", result.source.name, exc_info=True)
            result.error = _internal(err)

    # -- the loop --------------------------------------------------------------------------

    def run(self, sources: Iterable[inputs.Source]) -> Iterator[Result]:
        """Results in input order, each yielded once its outputs are written.

        Inputs are drawn from ``sources`` on a thread of their own, so a source that blocks
        (paths arriving on stdin from ``find``) never holds back images already in hand:
        whenever nothing is loading, every finished result is yielded before waiting for
        more input.
        """
        if self.options.workers > 1:
            yield from self._run_workers(sources)
            return
        opts = self.options
        self.engine = self.detector.engine.name
        window = 2 * opts.batch + opts.stage_threads
        inbox: queue.Queue[Any] = queue.Queue(maxsize=window)
        threading.Thread(
            target=_produce, args=(sources, inbox), name="yolocli-inputs", daemon=True
        ).start()
        loader = ThreadPoolExecutor(opts.stage_threads, thread_name_prefix="yolocli-load")
        saver = ThreadPoolExecutor(opts.stage_threads, thread_name_prefix="yolocli-save")
        loads: deque[Future[_Loaded | Result]] = deque()
        saves: deque[Future[Result]] = deque()
        exhausted = False

        def take_inputs(block: bool) -> bool:
            """Start loading what has arrived (waiting for one if ``block``); False at the end."""
            while len(loads) < window:
                try:
                    item = inbox.get(block=block)
                except queue.Empty:
                    return True
                if item is _END:
                    return False
                if isinstance(item, BaseException):
                    raise item
                loads.append(loader.submit(self._load, item, self.outputs.plan(item)))
                block = False
            return True

        try:
            while True:
                if not exhausted:
                    exhausted = not take_inputs(block=False)
                if not loads and not exhausted:
                    while saves:  # nothing in hand: hand out what is done, then wait
                        yield saves.popleft().result()
                    exhausted = not take_inputs(block=True)
                if not loads:
                    break
                batch: list[_Loaded] = []
                while loads and len(batch) < opts.batch:
                    item = loads.popleft().result()
                    if isinstance(item, Result):
                        saves.append(_done(item))
                    else:
                        batch.append(item)
                        if len(batch) < opts.batch and not loads:
                            break  # nothing else loaded yet: do not wait for a full batch
                if batch:
                    for loaded, dets in zip(batch, self._infer(batch), strict=True):
                        saves.append(saver.submit(self._save, loaded, dets))
                while saves and (saves[0].done() or len(saves) > window):
                    yield saves.popleft().result()
            while saves:
                yield saves.popleft().result()
        finally:
            loader.shutdown(wait=True, cancel_futures=True)
            saver.shutdown(wait=True, cancel_futures=True)

    def _run_workers(self, sources: Iterable[inputs.Source]) -> Iterator[Result]:
        """`run` with worker processes: each does the whole job for an image; this process
        names outputs, writes them, keeps input order and yields results as they complete."""
        opts = self.options
        window = 2 * opts.workers + 2  # inputs in hand: some in workers, some waiting
        inbox: queue.Queue[Any] = queue.Queue(maxsize=window)
        threading.Thread(
            target=_produce, args=(sources, inbox), name="yolocli-inputs", daemon=True
        ).start()
        order: deque[int] = deque()  # indices in hand, in input order
        waiting: deque[workers.Task] = deque()  # ready for the next idle worker
        held: dict[int, tuple[inputs.Source, Targets]] = {}
        finished: dict[int, Result] = {}
        exhausted, count = False, 0
        with workers.Workers(self.plan, opts.workers, opts.threads or 1) as pool:
            self.engine = f"{pool.engine} x {opts.workers} processes"
            while True:
                while not exhausted and len(order) < window:
                    try:  # wait for input only when nothing else is in hand
                        item = inbox.get(block=not order)
                    except queue.Empty:
                        break
                    if item is _END:
                        exhausted = True
                        break
                    if isinstance(item, BaseException):
                        raise item
                    targets = self.outputs.plan(item)
                    order.append(count)
                    early = self._early(item, targets)
                    if early is not None:
                        finished[count] = early
                    else:
                        held[count] = (item, targets)
                        waiting.append(workers.Task(
                            count, item, targets, self.outputs.options.save_conf,
                            opts.max_bytes, opts.max_pixels, opts.slicer,
                        ))  # fmt: skip
                    count += 1
                while waiting and pool.idle:
                    pool.submit(waiting.popleft())
                while order and order[0] in finished:
                    yield finished.pop(order.popleft())
                if not order:
                    if exhausted:
                        return
                    continue  # nothing in hand: wait for input
                # Block for answers when there is nothing else to do; otherwise only look.
                full = exhausted or len(order) >= window
                for done in pool.results(timeout=None if full else 0.05):
                    source, targets = held.pop(done.index)
                    finished[done.index] = self._finish(source, targets, done)

    def _finish(self, source: inputs.Source, targets: Targets, done: workers.Done) -> Result:
        """A worker's answer as a `Result`, its rendered outputs written here."""
        result = Result(source, done.width, done.height, error=done.error,
                        warnings=done.warnings, timings=done.timings, tiles=done.tiles)  # fmt: skip
        if done.error is None:
            dets, rendered = done.detections, done.rendered
            assert dets is not None
            assert rendered is not None
            result.detections = Detections(dets.xyxy, dets.scores, dets.class_ids, self.names)
            self._store(result, lambda: self.outputs.write(source, targets, rendered))
        return result

    @property
    def names(self) -> list[str]:
        return self.plan.info.class_names

    def _infer(self, batch: list[_Loaded]) -> list[Detections]:
        slicer = self.options.slicer
        if slicer is not None:  # each image is its own batch of tiles
            return [slicer.detect(self.detector, i.image, timings=i.timings) for i in batch]
        t0 = time.perf_counter()
        blobs = np.stack([item.blob for item in batch]) if len(batch) > 1 else batch[0].blob[None]
        outputs = self.detector.forward(blobs)
        t1 = time.perf_counter()
        results = []
        for i, item in enumerate(batch):
            clock = Clock(item.timings)
            results.append(self.detector.decode([o[i] for o in outputs], item.box))
            clock.lap("postprocess")
            item.timings["forward"] = ((t1 - t0) / len(batch), None)
        return results


def _internal(err: Exception) -> str:
    return f"internal error: {type(err).__name__}: {err}"


__all__ = ["STAGES", "Options", "Pipeline", "Result"]
