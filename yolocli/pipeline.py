"""Many images through one `Detector`: streaming, in order, every failure kept to its image.

Reading, decoding and letterboxing run on worker threads ahead of inference; drawing,
encoding and writing run on worker threads behind it; the forward pass (itself
multi-threaded inside OpenCV) runs on the calling thread. Work waits in bounded windows, so
memory stays flat however many images there are, and results come out in input order, one
at a time, as soon as each is complete (its files written).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from yolocli import images, inputs
from yolocli.detections import Detections
from yolocli.draw import annotate
from yolocli.errors import ImageError
from yolocli.files import write_atomic
from yolocli.model import Detector
from yolocli.preprocess import Letterbox

log = logging.getLogger(__name__)

STAGES = ("read", "decode", "preprocess", "forward", "postprocess", "draw", "encode", "write")

# Per stage: (wall seconds, CPU seconds of the thread that ran it). CPU time is what the stage
# costs; wall time also counts waiting for a core while others (the forward pass) use them.
# The forward pass runs on OpenCV's own threads, so its CPU time is not known (None).
Timings = dict[str, tuple[float, float | None]]


class _Clock:
    """Laps of consecutive stages on one thread, in wall and thread CPU time."""

    def __init__(self, timings: Timings) -> None:
        self.timings = timings
        self.wall, self.cpu = time.perf_counter(), time.thread_time()

    def lap(self, stage: str) -> None:
        wall, cpu = time.perf_counter(), time.thread_time()
        self.timings[stage] = (wall - self.wall, cpu - self.cpu)
        self.wall, self.cpu = wall, cpu


@dataclass
class Options:
    """What to write for each image, and how much work to keep in flight."""

    out_dir: Path | None = None  # None: write no files at all
    save_images: bool = True
    save_txt: bool = False
    save_conf: bool = False
    save_crops: bool = False
    skip_existing: bool = False
    batch: int = 1
    workers: int = 2


@dataclass
class Result:
    """What happened to one input."""

    source: inputs.Source
    width: int | None = None
    height: int | None = None
    detections: Detections | None = None
    error: str | None = None
    skipped: bool = False
    outputs: list[Path] = field(default_factory=list)
    timings: Timings = field(default_factory=dict)

    def record(self, model: str) -> dict[str, Any]:
        """The result as a record for the output formats (see `yolocli.formats`)."""
        rec: dict[str, Any] = {
            "image": self.source.name,
            "width": self.width,
            "height": self.height,
            "model": model,
            "detections": self.detections.records() if self.detections is not None else [],
            "error": self.error,
        }
        if self.skipped:
            rec["skipped"] = True
        return rec


@dataclass
class _Loaded:
    source: inputs.Source
    image: npt.NDArray[np.uint8]
    blob: npt.NDArray[np.float32]
    box: Letterbox
    targets: _Targets
    timings: Timings


@dataclass(frozen=True)
class _Targets:
    """Output paths of one image (None where that output is not wanted)."""

    image: Path | None
    labels: Path | None
    crops: tuple[Path, str] | None  # (folder holding <label>/ subfolders, this image's stem)

    def expected(self) -> list[Path]:
        return [p for p in (self.image, self.labels) if p is not None]


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
    """Runs a `Detector` over a stream of `yolocli.inputs.Source` items; see `run`."""

    def __init__(self, detector: Detector, options: Options | None = None) -> None:
        self.detector = detector
        self.options = options or Options()
        self._claimed: set[Path] = set()
        if self.options.batch < 1:
            raise ValueError(f"batch must be >= 1, got {self.options.batch}")

    # -- output naming -------------------------------------------------------------------

    def _claim(self, path: Path) -> Path:
        """``path``, or ``name-2.ext``, ``name-3.ext``… if another input of this run has it.

        Deterministic for a given input order, so a rerun maps every input to the same files.
        """
        candidate, n = path, 1
        while candidate in self._claimed:
            n += 1
            candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
        self._claimed.add(candidate)
        return candidate

    def _targets(self, source: inputs.Source) -> _Targets:
        opts = self.options
        if opts.out_dir is None:
            return _Targets(None, None, None)
        rel = source.rel
        image = self._claim(inputs.output_path(opts.out_dir, rel)) if opts.save_images else None
        labels = None
        if opts.save_txt:
            labels = self._claim(inputs.output_path(opts.out_dir, rel, suffix=".txt"))
        crops = None
        if opts.save_crops:
            # Claimed here, on the one thread that claims: crops of two inputs never collide.
            folder = opts.out_dir / "crops"
            unique = self._claim(folder / rel.with_suffix("")).relative_to(folder)
            crops = (folder, "_".join(unique.parts))
        return _Targets(image, labels, crops)

    # -- stages ----------------------------------------------------------------------------

    def _load(self, source: inputs.Source, targets: _Targets) -> _Loaded | Result:
        timings: Timings = {}
        if source.error:
            return Result(source, error=source.error)
        if (
            self.options.skip_existing
            and targets.expected()
            and all(p.exists() for p in targets.expected())
        ):
            return Result(source, skipped=True, outputs=targets.expected())
        try:
            clock = _Clock(timings)
            data = images.read_bytes(source)
            clock.lap("read")
            image = images.decode(data)
            clock.lap("decode")
            blob, box = self.detector.preprocess(image)
            clock.lap("preprocess")
        except ImageError as err:
            return Result(source, error=str(err))
        except Exception as err:  # a bug must cost one image, not the batch
            log.debug("internal error on %s", source.name, exc_info=True)
            return Result(source, error=_internal(err))
        return _Loaded(source, image, blob, box, targets, timings)

    def _save(self, loaded: _Loaded, dets: Detections) -> Result:
        result = Result(
            loaded.source,
            width=loaded.box.width,
            height=loaded.box.height,
            detections=dets,
            timings=loaded.timings,
        )
        t = loaded.targets
        try:
            if t.image is not None:
                self._guard_input(loaded.source, t.image)
                clock = _Clock(result.timings)
                drawn = annotate(loaded.image, dets)
                clock.lap("draw")
                data = images.encode_image(drawn, t.image.suffix)
                clock.lap("encode")
                write_atomic(t.image, data)
                clock.lap("write")
                result.outputs.append(t.image)
            if t.labels is not None:
                self._guard_input(loaded.source, t.labels)
                write_atomic(t.labels, yolo_labels(dets, loaded.box, self.options.save_conf))
                result.outputs.append(t.labels)
            if t.crops is not None:
                result.outputs += self._save_crops(loaded, dets, t.crops)
        except ImageError as err:
            result.error = str(err)
        except MemoryError:
            result.error = "out of memory while drawing or encoding this image"
        except OSError as err:
            where = f" ({err.filename})" if err.filename else ""
            result.error = f"cannot write outputs: {err.strerror or err}{where}"
        except Exception as err:  # a bug must cost one image, not the batch
            log.debug("internal error saving %s", loaded.source.name, exc_info=True)
            result.error = _internal(err)
        return result

    def _guard_input(self, source: inputs.Source, target: Path) -> None:
        if source.path is not None and target.exists() and _same_file(source.path, target):
            raise ImageError(f"refusing to overwrite the input with its output {target}")

    def _save_crops(self, loaded: _Loaded, dets: Detections, where: tuple[Path, str]) -> list[Path]:
        """One JPEG per detection: ``<crops>/<label>/<image stem>_<index>.jpg``."""
        folder, stem = where
        written = []
        boxes = np.round(dets.xyxy).astype(np.int64)
        for i, label in enumerate(dets.labels):
            x1, y1, x2, y2 = boxes[i].tolist()
            if x2 <= x1 or y2 <= y1:
                continue
            crop = loaded.image[y1:y2, x1:x2]
            target = folder / _safe_label(label) / f"{stem}_{i}.jpg"
            write_atomic(target, images.encode_image(crop, ".jpg"))
            written.append(target)
        return written

    # -- the loop --------------------------------------------------------------------------

    def run(self, sources: Iterable[inputs.Source]) -> Iterator[Result]:
        """Results in input order, each yielded once its outputs are written.

        Inputs are drawn from ``sources`` on a thread of their own, so a source that blocks
        (paths arriving on stdin from ``find``) never holds back images already in hand:
        whenever nothing is loading, every finished result is yielded before waiting for
        more input.
        """
        opts = self.options
        window = 2 * opts.batch + opts.workers
        inbox: queue.Queue[Any] = queue.Queue(maxsize=window)
        threading.Thread(
            target=_produce, args=(sources, inbox), name="yolocli-inputs", daemon=True
        ).start()
        loader = ThreadPoolExecutor(opts.workers, thread_name_prefix="yolocli-load")
        saver = ThreadPoolExecutor(opts.workers, thread_name_prefix="yolocli-save")
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
                loads.append(loader.submit(self._load, item, self._targets(item)))
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

    def _infer(self, batch: list[_Loaded]) -> list[Detections]:
        t0 = time.perf_counter()
        blobs = np.stack([item.blob for item in batch]) if len(batch) > 1 else batch[0].blob[None]
        outputs = self.detector.forward(blobs)
        t1 = time.perf_counter()
        results = []
        for i, item in enumerate(batch):
            clock = _Clock(item.timings)
            results.append(self.detector.decode([o[i] for o in outputs], item.box))
            clock.lap("postprocess")
            item.timings["forward"] = ((t1 - t0) / len(batch), None)
        return results


def yolo_labels(dets: Detections, box: Letterbox, with_conf: bool) -> bytes:
    """Darknet/YOLO label lines: ``class cx cy w h`` normalized to the image [+ score]."""
    xyxy = dets.xyxy.astype(np.float64)
    w, h = box.width, box.height
    cx = (xyxy[:, 0] + xyxy[:, 2]) / 2 / w
    cy = (xyxy[:, 1] + xyxy[:, 3]) / 2 / h
    bw = (xyxy[:, 2] - xyxy[:, 0]) / w
    bh = (xyxy[:, 3] - xyxy[:, 1]) / h
    lines = []
    for i, cls in enumerate(dets.class_ids.tolist()):
        line = f"{cls} {cx[i]:.6f} {cy[i]:.6f} {bw[i]:.6f} {bh[i]:.6f}"
        if with_conf:
            line += f" {dets.scores[i]:.6f}"
        lines.append(line)
    return ("\n".join(lines) + "\n").encode() if lines else b""


def _internal(err: Exception) -> str:
    return f"internal error: {type(err).__name__}: {err} (rerun with --debug for the traceback)"


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _safe_label(label: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_." else "_" for c in label).strip(".")
    return cleaned or "unnamed"


__all__ = ["STAGES", "Options", "Pipeline", "Result", "Timings", "yolo_labels"]
