"""Many images through one `Detector`: streaming, in order, every failure kept to its image.

Reading, decoding and letterboxing run on worker threads ahead of inference; drawing,
encoding and writing run on worker threads behind it; the forward pass (itself
multi-threaded inside OpenCV) runs on the calling thread. Work waits in bounded windows, so
memory stays flat however many images there are, and results come out in input order, one
at a time, as soon as each is complete (its files written).

A video file, camera or stream is one `Source` that becomes many frames: the thread that
draws inputs decodes it (`yolocli.io.video.frames`) ahead of inference, into the same bounded
window, and each frame gives its own `Result` (``frame`` and ``time`` set), then one closing
`Result` per video (``frame`` None, ``frames`` counted) once its annotated video is written.
Frames always run on one network in this process: shipping decoded frames to worker
processes would cost more than the forward pass they save, so with workers a video waits
until the images before it are done and then runs here.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from yolocli.detections import Detections
from yolocli.detector import Detector, Plan
from yolocli.draw import annotate
from yolocli.errors import ImageError, internal
from yolocli.families.darknet.letterbox import Letterbox
from yolocli.io import inputs, video
from yolocli.io.images import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS
from yolocli.io.outputs import Outputs, Saved, SaveOptions, Targets
from yolocli.io.records import ImageRecord, OutputsRecord
from yolocli.run import signals, workers
from yolocli.run.timing import STAGES, Clock, Timings
from yolocli.slicing import Slicer

log = logging.getLogger(__name__)


Overlay = Callable[[npt.NDArray[np.uint8]], None]  # draws on a frame's annotated copy


class VideoHook(Protocol):
    """Work on one video's detections in frame order, on the inference thread (a tracker:
    `yolocli.tracking.session`). ``frame`` returns the detections to keep for the frame, an
    `Overlay` for its annotated copy (or None) and fields for its record; ``end`` the fields
    for the video's closing record."""

    def frame(
        self, time: float, detections: Detections
    ) -> tuple[Detections, Overlay | None, dict[str, Any]]: ...

    def end(self) -> dict[str, Any]: ...


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
    video: video.ReadOptions = field(default_factory=video.ReadOptions)  # frames to read
    per_video: Callable[[], VideoHook] | None = None  # a fresh hook for each video (tracking)

    def __post_init__(self) -> None:
        from yolocli import options
        from yolocli.detector import check_threads

        options.integer("batch", self.batch, 1)
        options.per_core("workers", self.workers, "worker processes")
        check_threads(self.threads)
        options.integer("stage_threads", self.stage_threads, 1)
        options.integer("max_bytes", self.max_bytes, 1)
        options.integer("max_pixels", self.max_pixels, 1)


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
    frame: int | None = None  # a video frame's index in its source (None: an image, or a video)
    time: float | None = None  # a video frame's time, seconds from the start
    frames: int | None = None  # a video's closing result: how many frames were processed
    drawn: npt.NDArray[np.uint8] | None = field(default=None, repr=False)  # for the video
    video_id: int | None = field(default=None, repr=False)
    extra: dict[str, Any] = field(default_factory=dict)  # more record fields (a VideoHook's)

    @property
    def video_end(self) -> bool:
        """True for a video's closing result (after all its frames)."""
        return self.source.is_video and self.frame is None

    @property
    def input_error(self) -> bool:
        """True if the input named no image at all (a pattern matching nothing, say)."""
        return self.source.not_an_image

    def record(self, model: str) -> ImageRecord:
        """The result as the documented record (`yolocli.io.records.ImageRecord`)."""
        rec: ImageRecord = {
            "image": self.source.name,
            "width": self.width,
            "height": self.height,
            "model": model,
            "detections": self.detections.records() if self.detections is not None else [],
            "outputs": self.outputs,
            "error": self.error,
        }
        if self.source.is_video:
            rec["frame"] = self.frame
            rec["time"] = None if self.time is None else round(self.time, 6)
            if self.frame is None:
                rec["frames"] = self.frames or 0
        if self.skipped:
            rec["skipped"] = True
        if self.warnings:
            rec["warnings"] = self.warnings
        rec.update(self.extra)  # type: ignore[typeddict-item]
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
    frame: video.Frame | None = None
    video_id: int | None = None
    draw: bool = False  # keep an annotated copy for the video's output
    overlay: Overlay | None = None  # a VideoHook's drawing for this frame
    extra: dict[str, Any] = field(default_factory=dict)  # a VideoHook's record fields


@dataclass
class _VideoStart:
    id: int
    source: inputs.Source


@dataclass
class _VideoFrame:
    id: int
    source: inputs.Source
    frame: video.Frame


@dataclass
class _VideoEnd:
    id: int
    source: inputs.Source
    error: str | None


@dataclass
class _Video:
    """A video being processed: its targets, its output once the first frame is in."""

    targets: Targets
    sink: video.VideoSink | None = None
    frames: int = 0
    error: str | None = None
    fps: float | None = None
    source: inputs.Source | None = None


_END = object()


def _put(inbox: queue.Queue[Any], item: Any, stop: threading.Event) -> bool:
    """Put ``item`` unless ``stop`` is set first (then False)."""
    while not stop.is_set():
        try:
            inbox.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _produce(
    sources: Iterable[inputs.Source],
    inbox: queue.Queue[Any],
    stop: threading.Event,
    expand: Callable[[inputs.Source], Iterator[Any]] | None = None,
) -> None:
    """Feed ``inbox`` with every source (a video as ``expand`` gives it, when given), then
    ``_END`` (an exception is passed on as is); gives up when ``stop`` is set."""
    try:
        for source in sources:
            items = expand(source) if expand is not None and source.is_video else [source]
            for item in items:
                if not _put(inbox, item, stop):
                    if isinstance(items, Generator):
                        items.close()  # releases a video's capture now
                    return
    except BaseException as err:  # handed to the consuming thread, which raises it
        _put(inbox, err, stop)
    _put(inbox, _END, stop)


def _done(value: Any) -> Future[Any]:
    future: Future[Any] = Future()
    future.set_result(value)
    return future


def store(result: Result, save: Callable[[], Saved]) -> None:
    """Run ``save`` (writing ``result``'s outputs); its failure becomes the result's error."""
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
        result.error = internal(err)


class Pipeline:
    """Runs a `Detector` over a stream of `yolocli.io.inputs.Source` items; see `run`.

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
        self._videos: dict[int, _Video] = {}
        # closing results of the videos an interrupted run left open (see `_close_videos`)
        self.interrupted: list[Result] = []
        self._cancelled: set[int] = set()  # videos whose frames are no longer wanted
        self._hooks: dict[int, VideoHook] = {}  # per video, with Options.per_video
        self._ids = itertools.count()

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
            if opts.slicer is not None:  # before the passes: too many is this image's error
                w, h = got.box.width, got.box.height
                note = opts.slicer.passes_note(len(opts.slicer.windows(w, h)), w, h)
                got.warnings += [note] if note else []
        except ImageError as err:
            return Result(source, error=str(err))
        except Exception as err:  # a bug must cost one image, not the batch
            log.debug("internal error on %s", source.name, exc_info=True)
            return Result(source, error=internal(err))
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
        if loaded.frame is not None:
            result.frame, result.time = loaded.frame.index, loaded.frame.time
            result.video_id = loaded.video_id
            result.extra = loaded.extra
            if loaded.draw:
                clock = Clock(result.timings)
                result.drawn = annotate(loaded.image, dets, self.outputs.options.style)
                if loaded.overlay is not None:
                    loaded.overlay(result.drawn)
                clock.lap("draw")
        self._store(result, lambda: self.outputs.save(
            loaded.source, loaded.targets, loaded.image, dets, loaded.box
        ))  # fmt: skip
        return result

    def _store(self, result: Result, save: Callable[[], Saved]) -> None:
        store(result, save)

    # -- video ---------------------------------------------------------------------------

    def _expand_video(self, source: inputs.Source) -> Iterator[Any]:
        """A video `Source` as a start, its frames and an end (on the inputs thread, so
        decoding runs ahead of inference); one done before or unusable passes as it is."""
        if source.error or self.outputs.done_before(source) is not None:
            yield source  # answered without reading, like an image (`_early`)
            return
        vid = next(self._ids)
        yield _VideoStart(vid, source)
        error = None
        target = str(source.path) if source.path is not None else source.name
        try:
            with contextlib.closing(video.frames(target, source.kind, self.options.video)) as it:
                for frame in it:
                    if vid in self._cancelled:
                        break
                    yield _VideoFrame(vid, source, frame)
        except ImageError as err:
            error = str(err)
        except Exception as err:  # a bug must cost one video, not the batch
            log.debug("internal error reading %s", source.name, exc_info=True)
            error = internal(err)
        yield _VideoEnd(vid, source, error)

    def _load_frame(self, item: _VideoFrame, targets: Targets, draw: bool) -> _Loaded | Result:
        frame = item.frame
        if targets.error:
            return Result(item.source, error=targets.error, frame=frame.index, time=frame.time,
                          video_id=item.id)  # fmt: skip
        timings: Timings = {}
        clock = Clock(timings)
        try:
            if self.options.slicer is None:
                blob, box = self.detector.preprocess(frame.image)
                clock.lap("preprocess")
            else:
                height, width = frame.image.shape[:2]
                blob = np.zeros((0, 0, 0), np.float32)
                box = self.detector.geometry(width, height)
        except Exception as err:  # a bug must cost one frame, not the video
            log.debug("internal error on %s", item.source.name, exc_info=True)
            return Result(item.source, error=internal(err), frame=frame.index,
                          time=frame.time, video_id=item.id)  # fmt: skip
        return _Loaded(item.source, frame.image, blob, box, targets, timings,
                       list(frame.warnings), frame, item.id, draw)  # fmt: skip

    def _deliver(self, result: Result) -> Result:
        """On the calling thread, in order: a frame's annotated copy into its video; at a
        video's end, the video finished and named in its closing result."""
        state = self._videos.get(result.video_id) if result.video_id is not None else None
        if state is None:
            return result
        if result.frame is not None:
            state.frames += result.error is None
            drawn, result.drawn = result.drawn, None
            if drawn is not None and state.error is None and state.targets.image is not None:
                try:
                    if state.sink is None:
                        stride = self.options.video.stride
                        fps = (state.fps or video.DEFAULT_FPS) / stride
                        height, width = drawn.shape[:2]
                        target = state.targets.image
                        state.sink = self.outputs.open_video(target, fps, width, height)
                    state.sink.write(drawn)
                except (ImageError, OSError) as err:
                    state.error = str(err)
                    assert result.video_id is not None
                    self._cancelled.add(result.video_id)
            return result
        del self._videos[result.video_id]  # type: ignore[arg-type]
        hook = self._hooks.pop(result.video_id, None)  # type: ignore[arg-type]
        if hook is not None:
            result.extra = hook.end()
        result.frames = state.frames
        if state.sink is not None:
            try:
                result.outputs["image"] = str(state.sink.close())
            except (ImageError, OSError) as err:
                state.error = state.error or str(err)
        result.error = result.error or state.error
        return result

    def _close_videos(self) -> None:
        """Finish every video still open (an interrupted run): the frames so far play, and
        each gets its closing result in `interrupted`, for the caller to deliver. Stopping a
        camera or stream is how it ends: no error. A file stopped part-way is one."""
        for vid, state in self._videos.items():
            result = None
            if state.source is not None:
                result = Result(state.source, video_id=vid, frames=state.frames)
            if state.sink is not None:
                try:
                    path = state.sink.close()
                    if result is not None:
                        result.outputs["image"] = str(path)
                except (ImageError, OSError) as err:
                    state.error = state.error or str(err)
            if result is None:
                continue
            result.error = state.error
            if result.error is None and result.source.kind not in ("camera", "stream"):
                result.error = f"interrupted after {state.frames} frames; those were processed"
            self.interrupted.append(result)
        self._videos.clear()
        self._hooks.clear()

    # -- the loop --------------------------------------------------------------------------

    def run(self, sources: Iterable[inputs.Source]) -> Iterator[Result]:
        """Results in input order, each yielded once its outputs are written.

        Inputs are drawn from ``sources`` on a thread of their own, so a source that blocks
        (paths arriving on stdin from ``find``) never holds back images already in hand:
        whenever nothing is loading, every finished result is yielded before waiting for
        more input. A video gives a result per frame, then a closing one (see the module).
        """
        if self.options.workers > 1:
            yield from self._run_workers(sources)
        else:
            yield from self._run_here(sources)

    def _run_here(self, sources: Iterable[inputs.Source]) -> Iterator[Result]:
        opts = self.options

        def opened() -> None:
            """Waits for an engine still opening (`Detector.from_plan` with ``wait=False``):
            first wanted once the first image is loaded, and before any result is out, so a
            network that cannot open fails the run before it prints anything."""
            if not self.engine:
                self.engine = self.detector.engine.name

        window = 2 * opts.batch + opts.stage_threads
        inbox: queue.Queue[Any] = queue.Queue(maxsize=window)
        stop = threading.Event()
        threading.Thread(
            target=_produce, args=(sources, inbox, stop, self._expand_video),
            name="yolocli-inputs", daemon=True,
        ).start()  # fmt: skip
        loader = ThreadPoolExecutor(opts.stage_threads, thread_name_prefix="yolocli-load")
        saver = ThreadPoolExecutor(opts.stage_threads, thread_name_prefix="yolocli-save")
        loads: deque[Future[_Loaded | Result]] = deque()
        saves: deque[Future[Result]] = deque()
        exhausted = False

        def take_inputs(block: bool) -> bool:
            """Start loading what has arrived (waiting for one if ``block``); False at the end."""
            while len(loads) < window:
                try:
                    item = signals.get(inbox) if block else inbox.get_nowait()
                except queue.Empty:
                    return True
                if item is _END:
                    return False
                if isinstance(item, BaseException):
                    raise item
                if isinstance(item, _VideoStart):
                    targets = self.outputs.plan(item.source)
                    self._videos[item.id] = _Video(targets, error=targets.error, source=item.source)
                    if opts.per_video is not None:
                        self._hooks[item.id] = opts.per_video()
                    if targets.error:
                        self._cancelled.add(item.id)
                    continue
                if isinstance(item, _VideoFrame):
                    state = self._videos[item.id]
                    if state.error:
                        continue  # the video failed: its remaining frames are not wanted
                    state.fps = state.fps or item.frame.fps
                    targets = self.outputs.frame_targets(state.targets, item.frame.index)
                    draw = state.targets.image is not None
                    loads.append(loader.submit(self._load_frame, item, targets, draw))
                elif isinstance(item, _VideoEnd):
                    loads.append(_done(Result(item.source, error=item.error, video_id=item.id)))
                else:
                    loads.append(loader.submit(self._load, item, self.outputs.plan(item)))
                block = False
            return True

        try:
            while True:
                if not exhausted:
                    exhausted = not take_inputs(block=False)
                if not loads and not exhausted:
                    while saves:  # nothing in hand: hand out what is done, then wait
                        yield self._deliver(signals.result(saves.popleft()))
                    exhausted = not take_inputs(block=True)
                if not loads:
                    break
                batch: list[_Loaded] = []
                while loads and len(batch) < opts.batch:
                    item = signals.result(loads.popleft())
                    if isinstance(item, Result):
                        saves.append(_done(item))
                    else:
                        batch.append(item)
                        if len(batch) < opts.batch and not loads:
                            break  # nothing else loaded yet: do not wait for a full batch
                opened()
                if batch:
                    for loaded, dets in zip(batch, self._infer(batch), strict=True):
                        dets = self._hook(loaded, dets)
                        saves.append(saver.submit(self._save, loaded, dets))
                while saves and (saves[0].done() or len(saves) > window):
                    yield self._deliver(signals.result(saves.popleft()))
            opened()  # no input at all: the network must still have opened
            while saves:
                yield self._deliver(signals.result(saves.popleft()))
        finally:
            stop.set()
            loader.shutdown(wait=True, cancel_futures=True)
            saver.shutdown(wait=True, cancel_futures=True)
            self._close_videos()

    def _run_workers(self, sources: Iterable[inputs.Source]) -> Iterator[Result]:
        """`run` with worker processes: each does the whole job for an image; this process
        names outputs, writes them, keeps input order and yields results as they complete."""
        opts = self.options
        window = (workers.DEPTH + 1) * opts.workers + 2  # in hand: in workers, or waiting
        inbox: queue.Queue[Any] = queue.Queue(maxsize=window)
        stop = threading.Event()
        lister = threading.Thread(
            target=_produce, args=(sources, inbox, stop), name="yolocli-inputs", daemon=True
        )
        # The workers start before the thread that lists the inputs: with no thread of this
        # process running they can be forked, ready in a quarter of a spawned one's time. It
        # lists while their networks load, so the first images are in hand when they are ready.
        try:
            with workers.Workers(
                self.plan, opts.workers, opts.threads or 1, while_loading=lister.start
            ) as pool:
                yield from self._run_pool(pool, inbox, window)
        finally:
            stop.set()

    def _run_pool(
        self, pool: workers.Workers, inbox: queue.Queue[Any], window: int
    ) -> Iterator[Result]:
        opts = self.options
        order: deque[int] = deque()  # indices in hand, in input order
        waiting: deque[workers.Task] = deque()  # ready for the next idle worker
        held: dict[int, tuple[inputs.Source, Targets]] = {}
        finished: dict[int, Result] = {}
        exhausted, count = False, 0
        video_next: inputs.Source | None = None  # waits until every earlier input is out
        self.engine = pool.described
        while True:
            while not exhausted and video_next is None and len(order) < window:
                try:  # wait for input only when nothing else is in hand
                    item = inbox.get_nowait() if order else signals.get(inbox)
                except queue.Empty:
                    break
                if item is _END:
                    exhausted = True
                    break
                if isinstance(item, BaseException):
                    raise item
                if item.is_video:
                    video_next = item
                    break
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
                        self.outputs.options.style,
                    ))  # fmt: skip
                count += 1
            # Once the input has ended, no image waits in a worker's pipe behind another while
            # a worker has none: the last ones go to whichever is free first, as from a shared
            # queue, and the run does not end on one worker alone with two images.
            while waiting and pool.room(1 if exhausted else workers.DEPTH):
                pool.submit(waiting.popleft())
            while order and order[0] in finished:
                yield finished.pop(order.popleft())
            if not order and video_next is not None:
                # Frames run here: one network with the engine's own threads.
                if self._detector is None:
                    self._detector = Detector.from_plan(self.plan)
                yield from self._run_here([video_next])
                self.engine = pool.described
                video_next = None
                continue
            if not order:
                if exhausted:
                    return
                continue  # nothing in hand: wait for input
            # Wait for answers when there is nothing else to do (a look for Ctrl-C every
            # `signals.POLL` seconds); otherwise only look.
            full = exhausted or len(order) >= window
            signals.check()
            for done in pool.results(timeout=signals.POLL if full else 0.05):
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

    def _hook(self, loaded: _Loaded, dets: Detections) -> Detections:
        """A frame's detections through its video's hook, here, in frame order."""
        hook = self._hooks.get(loaded.video_id) if loaded.video_id is not None else None
        if hook is None or loaded.frame is None:
            return dets
        clock = Clock(loaded.timings)
        dets, loaded.overlay, loaded.extra = hook.frame(loaded.frame.time, dets)
        clock.lap("track")
        return dets

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


__all__ = ["STAGES", "Options", "Pipeline", "Result", "store"]
