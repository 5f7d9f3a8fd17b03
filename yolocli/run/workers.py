"""Worker processes: k copies of the network, each doing the whole job for its images.

A worker reads, decodes and letterboxes an image, runs the forward pass on its own engine
with a share of the cores, decodes the heads, runs NMS, and renders the outputs (annotated
image, labels, crops) to bytes. The parent process only plans names, writes files, keeps
order and streams records, so nothing it does competes with the workers for long.

Workers are forked where that is safe (`start_method`): a forked worker has OpenCV, NumPy and
yolocli loaded already, and is ready in 0.08 s against 0.32 s for a spawned one (two workers,
2 cores), which starts a Python and imports them again; on 280 photos the whole run took 0.96
of the time. Anywhere else (another thread of this process running, an engine that starts
threads of its own already loaded, a library's thread pool started, not Linux) they are
spawned.

Processes rather than threads: measured no slower here (benchmarks/RESULTS.md), and a worker
that dies (a segfault in a decoder, the kernel's OOM killer) costs the one image it held: that
image gets an error record, a new worker takes its place, and the run goes on. So does one
that falls silent (stopped with SIGSTOP, hung in a decoder) for far longer than an image
takes (`silence_limit`): it is killed and replaced.

`auto_workers` decides how many: one per core, each with one engine thread (the best
configuration measured for yolov3-tiny on 2 cores, and for yolov3-tiny and yolov3 alike on 16),
as many as memory allows with room to spare (each holds a copy of the network); one in-process
network on a GPU device and on a single core.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import select
import selectors
import signal
import sys
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from yolocli.detections import Detections
from yolocli.detector import Detector, Plan
from yolocli.draw import Style
from yolocli.errors import ImageError, YolocliError, internal
from yolocli.families.darknet.letterbox import Letterbox
from yolocli.io import images
from yolocli.io.inputs import Source
from yolocli.io.outputs import Rendered, Targets, render
from yolocli.models.store import is_private_copy
from yolocli.run.timing import Clock, Timings
from yolocli.slicing import Slicer

if TYPE_CHECKING:
    import multiprocessing.connection

log = logging.getLogger(__name__)

# Memory one worker needs beyond its weights (interpreter, OpenCV, the engine's workspace,
# image buffers), and how many times the weights' size the engine holds (measured: ONNX
# Runtime keeps the graph's initializers plus optimized copies).
WORKER_BASE_BYTES = 300 << 20
WEIGHTS_FACTOR = 3
MEMORY_SHARE = 0.5  # of the available memory, at most, for all workers together

# Fewer images than this run on one network in the calling process: starting workers (a
# Python, OpenCV and an engine each, about 0.5 s) takes longer than they save on a short run.
# On 2 cores with yolov3-tiny, 2 workers were 3% slower than one network on 40 JPEG photos and
# 6% faster on 100 (farm-bench, whole process; benchmarks/RESULTS.md, "Workers").
MIN_IMAGES = 100
# Forked workers (`start_method`) are ready in about 0.1 s, and two of them beat one network
# of two threads from about 20 images: 0.97 of its time on 20 JPEG photos, 0.94 on 40, 0.93
# on 60 (farm-bench, 7 pairs each, yolov3-tiny on ONNX Runtime, 2 cores).
MIN_IMAGES_FORKED = 20

# Tasks sent to a worker before it answers the first: with two, the next image is already
# in its pipe when it finishes one, so it never waits for this process to hand it work.
DEPTH = 2

# Fewer cores than this run one network in the calling process: one core has nothing to share.
# From 2 up, one worker of one thread per core: on 2 cores, 1,200 JPEG photos took 35.0 s with
# 2 workers against 39.9 s for one network of 2 threads (yolov3-tiny, ONNX Runtime); on 16
# cores 16 x 1 ran 148 images/s against 70 for 1 x 16 (issue 11's bare measurements).
MIN_CORES = 2

# A worker silent on one image for longer than max(MIN_SILENCE, SILENCE_FACTOR x the slowest
# answer so far) is taken for stopped or hung, killed and replaced. yolov3 at 608 takes under
# a second an image here; a sliced image takes a pass per tile, hence its larger floor.
MIN_SILENCE = 60.0
MIN_SILENCE_SLICED = 600.0
SILENCE_FACTOR = 10.0
PAUSE_GRACE = 1.0  # seconds this process may be away from the workers before that is excused


@dataclass(frozen=True)
class Task:
    """One image for a worker: where it is, which outputs to render, within which limits."""

    index: int
    source: Source
    targets: Targets
    save_conf: bool
    max_bytes: int
    max_pixels: int
    slicer: Slicer | None = None
    style: Style | None = None  # how the annotated image is drawn


@dataclass
class Done:
    """A worker's answer for one `Task`: detections as arrays, outputs as bytes."""

    index: int
    width: int | None = None
    height: int | None = None
    detections: Detections | None = None
    rendered: Rendered | None = None
    tiles: int = 1  # network passes it took (more than one when sliced)
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    timings: Timings = field(default_factory=dict)


@dataclass
class Loaded:
    """An image read, decoded and letterboxed: the first half of the per-image job."""

    image: npt.NDArray[np.uint8]
    blob: npt.NDArray[np.float32]
    box: Letterbox
    warnings: list[str]
    timings: Timings


def load(
    detector: Detector,
    source: Source,
    max_bytes: int,
    max_pixels: int,
    letterbox: bool = True,
    scratch: images.Scratch | None = None,
) -> Loaded:
    """Read, decode and letterbox ``source`` for ``detector``; `ImageError` saying why not.

    ``letterbox`` False leaves that to a `Slicer` (``blob`` is then empty), which letterboxes
    each tile itself; ``box`` still gives the image's size. ``scratch``: memory the pixels
    may be decoded into (`images.decode`), reused by the next image."""
    timings: Timings = {}
    clock = Clock(timings)
    data = images.read_bytes(source, max_bytes=max_bytes)
    clock.lap("read")
    image = images.decode(data, max_pixels=max_pixels, scratch=scratch)
    note = images.frame_note(data)
    clock.lap("decode")
    if letterbox:
        blob, box = detector.preprocess(image)
        clock.lap("preprocess")
    else:
        height, width = image.shape[:2]
        blob = np.zeros((0, 0, 0), np.float32)
        box = detector.geometry(width, height)
    return Loaded(image, blob, box, [note] if note else [], timings)


def run_task(detector: Detector, task: Task, scratch: images.Scratch | None = None) -> Done:
    """The whole job for one image, as a worker does it; every failure is the image's error.

    The decoded image lives only in here: it may be decoded into ``scratch`` (one per worker,
    reused image after image) and the annotations are drawn on it in place."""
    done = Done(task.index)
    try:
        slicer = task.slicer
        loaded = load(
            detector, task.source, task.max_bytes, task.max_pixels, slicer is None, scratch
        )
        done.timings, done.warnings = loaded.timings, loaded.warnings
        done.width, done.height = loaded.box.width, loaded.box.height
        if slicer is not None:
            done.tiles = len(slicer.windows(loaded.box.width, loaded.box.height))
            note = slicer.passes_note(done.tiles, loaded.box.width, loaded.box.height)
            done.warnings += [note] if note else []
            dets = slicer.detect(detector, loaded.image, timings=done.timings)
        else:
            clock = Clock(done.timings)
            heads = detector.forward(loaded.blob[None])
            clock.lap("forward")
            dets = detector.decode([h[0] for h in heads], loaded.box)
            clock.lap("postprocess")
        done.detections = Detections(dets.xyxy, dets.scores, dets.class_ids)  # names: parent's
        done.rendered = render(
            task.targets, loaded.image, dets, loaded.box, task.save_conf, task.style, in_place=True
        )
        done.timings.update(done.rendered.timings)
    except ImageError as err:
        done.error = str(err)
    except MemoryError:
        done.error = "out of memory while processing this image"
    except Exception as err:  # a bug must cost one image, not the batch
        log.debug("internal error on %s", task.source.name, exc_info=True)
        done.error = internal(err)
    return done


def _worker_main(
    conn: multiprocessing.connection.Connection,
    plan: Plan,
    threads: int,
    parents: list[multiprocessing.connection.Connection] | None = None,
) -> None:
    """A worker process: open the network, then answer tasks until told to stop or orphaned.

    ``parents``: in a forked worker, the parent's ends of every worker's pipe, its own
    included, which it inherited. It closes them: while any process but the parent holds one,
    the worker at its other end never learns that the parent is gone (killed, say), and lives
    on. A spawned worker inherits none."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    if parents is not None:  # forked: as a spawned worker would be,
        for end in parents:
            end.close()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # SIGTERM kills it, and Python's own
        sys.stderr = sys.__stderr__  # messages go where the C libraries' do (fd 2, which the
        # command line drains: cli.common)
    try:
        detector = Detector.from_plan(plan, threads)
    except Exception as err:
        conn.send(("failed", str(err) if isinstance(err, YolocliError) else repr(err)))
        return
    conn.send(("ready", detector.engine.name))
    scratch = images.Scratch()
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return  # the parent is gone (killed, say): nothing left to do
        if task is None:  # done: nothing to tidy (no files, no buffered answers), so no
            os._exit(0)  # interpreter and engine teardown for the parent to wait for
        try:
            conn.send(run_task(detector, task, scratch))
        except (BrokenPipeError, OSError):
            return


# Modules whose import or sessions start threads of their own, which a forked child would
# lack: where one is loaded, workers are spawned.
THREADED_MODULES = ("onnxruntime", "openvino", "torch", "ray")
# This process's threads that a forked child can do without: each only blocks on a pipe of
# its own, which the child never reads (cli.common's drain of the C libraries' stderr).
FORK_SAFE_THREADS = frozenset({"yolocli-stderr"})


def start_method(
    platform: str, threads: Collection[str], modules: Collection[str], native: int = 0
) -> str:
    """How to start a worker: ``"fork"`` where it is safe, else ``"spawn"``.

    Safe: on Linux (elsewhere system libraries may not survive a fork), with no other thread of
    this process running but those in `FORK_SAFE_THREADS` (``threads``: the other threads'
    names), none of `THREADED_MODULES` loaded (``modules``), and no native thread started
    since yolocli loaded (``native``: OpenCV starts its pool at its first parallel call). A
    thread holding a lock at the fork leaves it locked forever in the child, and a pool the
    child believes it has is not there: on OpenCV 4.14 and 5.1 alike, a forked child whose
    parent had run OpenCV's pool hung in ``cv2.setNumThreads(1)``. The idle threads NumPy's
    BLAS and OpenCV start when they load are no such risk.
    """
    if platform != "linux":
        return "spawn"
    if any(name not in FORK_SAFE_THREADS for name in threads):
        return "spawn"
    if any(module in modules for module in THREADED_MODULES):
        return "spawn"
    if native > 0:
        return "spawn"
    return "fork"


def _native_threads() -> int:
    """Threads of this process that Python did not start (libraries' pools); 0 where
    /proc cannot say."""
    try:
        return len(os.listdir("/proc/self/task")) - threading.active_count()
    except OSError:
        return 0


# Taken when yolocli's run machinery loads, after NumPy and OpenCV (yolocli.detector).
_NATIVE_AT_LOAD = _native_threads()


def _this_start_method() -> str:
    this = threading.current_thread()
    others = [t.name for t in threading.enumerate() if t is not this]
    started = _native_threads() - _NATIVE_AT_LOAD
    return start_method(sys.platform, others, sys.modules.keys(), started)


class _Worker:
    def __init__(
        self,
        plan: Plan,
        threads: int,
        number: int,
        method: str | None,
        others: list[multiprocessing.connection.Connection],
    ) -> None:
        """``others``: the running workers' pipes (this process's ends), which a forked
        worker closes."""
        import multiprocessing  # here: a run of one network never starts a process

        method = method or _this_start_method()
        self.method = method
        ctx: Any = multiprocessing.get_context(method)
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(
            target=_worker_main,
            args=(child, plan, threads, [*others, self.conn] if method == "fork" else None),
            name=f"yolocli-worker-{number}",
            daemon=True,
        )
        if method == "fork":
            for stream in (sys.stdout, sys.stderr):  # or the child would write them again
                with contextlib.suppress(Exception):
                    stream.flush()
            with warnings.catch_warnings():
                # Python 3.12+ warns of any native thread: see start_method for why these are safe
                warnings.filterwarnings("ignore", "This process .* is multi-threaded")
                self.process.start()
        else:
            with _main_not_rerun():
                self.process.start()
        child.close()
        # Whether an answer waits in the pipe, in one system call: `Connection.poll` builds
        # and tears down a selector each time (0.05 of 0.44 s, this process's CPU time in
        # the run, in cProfile with a thread-time clock; 280 photos, two workers).
        self._answer_waits = select.poll()
        self._answer_waits.register(self.conn.fileno(), select.POLLIN)
        self.tasks: deque[Task] = deque()  # sent, not answered; the first is the one it runs
        self.busy_since = 0.0  # when it started on tasks[0] (monotonic seconds)

    def answered(self) -> bool:
        """True if an answer (or the end of the pipe) is there to read."""
        return bool(self._answer_waits.poll(0))

    def death(self) -> str:
        """Why the process ended, in words (its exit status or signal)."""
        self.process.join(timeout=1)
        code = self.process.exitcode
        if code is not None and code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            hint = " (out of memory?)" if -code == signal.SIGKILL else ""
            return f"it was killed by {name}{hint}"
        return f"it exited with status {code}"


@contextlib.contextmanager
def _main_not_rerun() -> Iterator[None]:
    """A worker started meanwhile does not run this process's main script again.

    A spawned process runs the parent's ``__main__`` file first (as ``__mp_main__``), for
    functions defined there. A worker needs none (its task and everything in it are
    yolocli's), and for the ``yolocli`` command that file imports the whole command line,
    Click included: about 0.05 s of each worker's start on a 2-core machine, spent while
    the machine has nothing else to do but start workers. ``python -m`` runs skip it already
    (multiprocessing leaves ``*.__main__`` modules alone); so do scripts that use yolocli
    here, which then need no ``if __name__ == "__main__"`` guard for yolocli's workers."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or path is None or getattr(main, "__spec__", None) is not None:
        yield
        return
    del main.__file__  # multiprocessing.spawn reads it while the process starts
    try:
        yield
    finally:
        main.__file__ = path


class Workers:
    """``count`` worker processes over one `Plan`, each with ``threads`` engine threads.

    `submit` hands a task to an idle worker; `results` yields `Done` answers as they arrive,
    replacing a worker that dies (its task's answer is then an error). Use as a context
    manager: leaving it stops every worker.

    ``start``: ``"fork"`` or ``"spawn"``; None lets `start_method` choose for each worker
    (the first ones are usually forked, and a replacement started while other threads run
    is spawned). `method` says how the first ones were started. ``while_loading``: called once
    every worker has started, while their networks load (they are forked before it runs).
    """

    def __init__(
        self,
        plan: Plan,
        count: int,
        threads: int,
        min_silence: float | None = None,
        start: str | None = None,
        while_loading: Callable[[], object] | None = None,
    ) -> None:
        if count < 1 or threads < 1:
            raise ValueError(f"need at least one worker and one thread, got {count} x {threads}")
        self.plan, self.count, self.threads = plan, count, threads
        self.min_silence = min_silence  # None: MIN_SILENCE, or MIN_SILENCE_SLICED
        self.start = start
        self.method = ""
        self.slowest = 0.0  # seconds, the longest a worker took on one image so far
        self._polled = time.monotonic()  # when this process last looked for answers
        self.engine = ""
        self._started = 0
        self.replaced = 0
        self.workers: list[_Worker] = []
        # one selector for the run: answers and deaths (pipes and process sentinels)
        self._selector = selectors.DefaultSelector()
        if plan.needs_onnx:
            graph = plan.compiled()  # once, here, rather than in every worker at the same time
            if is_private_copy(graph):  # the store could not keep it: hand the workers this one
                plan = dataclasses.replace(plan, private_graph=graph)
                self.plan = plan
        try:
            # all start together (each imports and loads its network), then all are awaited
            for _ in range(count):
                self.workers.append(self._launch())
            self.method = self.workers[0].method
            if while_loading is not None:
                while_loading()
            for worker in self.workers:
                self._ready(worker)
        except BaseException:
            self.close()
            raise

    def _launch(self) -> _Worker:
        self._started += 1
        others = [w.conn for w in self.workers]
        worker = _Worker(self.plan, self.threads, self._started, self.start, others)
        self._selector.register(worker.conn, selectors.EVENT_READ, worker)
        self._selector.register(worker.process.sentinel, selectors.EVENT_READ, worker)
        return worker

    def _forget(self, worker: _Worker) -> None:
        for fileobj in (worker.conn, worker.process.sentinel):
            with contextlib.suppress(KeyError, ValueError, OSError):
                self._selector.unregister(fileobj)
        with contextlib.suppress(ValueError):
            self.workers.remove(worker)
        worker.conn.close()

    def _ready(self, worker: _Worker) -> None:
        """Wait for ``worker``'s network to load; `YolocliError` saying why it did not."""
        try:
            status, detail = worker.conn.recv()
        except (EOFError, OSError):
            raise YolocliError(f"a worker process could not start: {worker.death()}") from None
        if status != "ready":
            worker.process.join()
            raise YolocliError(f"a worker process could not load the network: {detail}")
        self.engine = detail

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def described(self) -> str:
        """What runs the network, for --profile: the engine, and how many worker processes
        started how ("ONNX Runtime 1.32.0 x 2 forked processes")."""
        return f"{self.engine} x {self.count} {self.method}ed processes"

    def room(self, depth: int = DEPTH) -> int:
        """How many more tasks the workers take now if each holds up to ``depth`` (at most
        `DEPTH`: the next image already in its pipe when it finishes one)."""
        return sum(max(0, depth - len(w.tasks)) for w in self.workers)

    def submit(self, task: Task) -> None:
        """Give ``task`` to the least busy worker (one must have room: see `room`)."""
        worker = min(self.workers, key=lambda w: len(w.tasks))
        assert len(worker.tasks) < DEPTH
        self._send(worker, task)

    @staticmethod
    def _send(worker: _Worker, task: Task) -> None:
        if not worker.tasks:
            worker.busy_since = time.monotonic()
        worker.tasks.append(task)
        # if it died, `results` notices, answers for the task and replaces the worker
        with contextlib.suppress(BrokenPipeError, OSError):
            worker.conn.send(task)

    def silence_limit(self, task: Task) -> float:
        """Seconds a worker may spend on ``task`` before it is taken for stopped or hung."""
        floor = self.min_silence
        if floor is None:
            floor = MIN_SILENCE_SLICED if task.slicer is not None else MIN_SILENCE
        return max(floor, SILENCE_FACTOR * self.slowest)

    @staticmethod
    def _excuse(workers: list[_Worker], seconds: float) -> None:
        if seconds > 0:
            for worker in workers:
                worker.busy_since += seconds

    def _deadline(self, worker: _Worker) -> float:
        return worker.busy_since + self.silence_limit(worker.tasks[0])

    def results(self, timeout: float | None = None) -> Iterator[Done]:
        """Answers that are ready (waiting up to ``timeout`` seconds for the first one), and
        the error answer of any image whose worker fell silent (that worker replaced)."""
        busy = [w for w in self.workers if w.tasks]
        if not busy:
            return
        # Time this process did not spend waiting on the workers (stopped with Ctrl-Z, or
        # blocked writing to a paused pager) is not their silence: deadlines move on by it.
        self._excuse(busy, time.monotonic() - self._polled - PAUSE_GRACE)
        wake = min(self._deadline(w) for w in busy) - time.monotonic()
        timeout = max(0.0, wake if timeout is None else min(timeout, wake))
        before = time.monotonic()
        ready = self._selector.select(timeout)
        self._polled = time.monotonic()
        self._excuse(busy, self._polled - before - timeout - PAUSE_GRACE)
        yield from self._answers(ready)
        now = time.monotonic()
        for worker in [w for w in self.workers if w.tasks and self._deadline(w) <= now]:
            silent = now - worker.busy_since
            worker.process.kill()  # a stopped process dies of SIGKILL too
            why = (
                f"it was silent for {silent:.0f} s on this image (stopped or hung?), far longer "
                f"than any image took so far ({self.slowest:.1f} s), so it was killed"
            )
            answer = self._replace(worker, why)
            if answer is not None:
                yield answer

    def _answers(self, ready: list[tuple[selectors.SelectorKey, int]]) -> Iterator[Done]:
        for key, _ in ready:
            worker: _Worker = key.data
            if worker not in self.workers:
                continue  # its pipe and its sentinel were both ready: replaced already
            # Its answers first: a worker that died may have answered earlier tasks.
            dead = key.fileobj == worker.process.sentinel
            while worker.tasks:
                try:
                    if not worker.answered():
                        break
                    done: Done = worker.conn.recv()
                except (EOFError, OSError):
                    dead = True  # it died mid-answer, or before answering
                    break
                worker.tasks.popleft()
                now = time.monotonic()
                self.slowest = max(self.slowest, now - worker.busy_since)
                worker.busy_since = now
                yield done
            if dead:
                answer = self._replace(worker)
                if answer is not None:
                    yield answer

    def _replace(self, worker: _Worker, why: str | None = None) -> Done | None:
        """A new worker in place of a dead (or killed) one, given the tasks it had not
        started, and the error answer for the task it was running (None if it died between
        tasks). ``why``: what happened, when this process knows better than the exit status."""
        task = worker.tasks.popleft() if worker.tasks else None
        rest = list(worker.tasks)
        worker.tasks.clear()
        if why is None:
            why = worker.death()
        else:
            worker.process.join(timeout=1)  # reaped: no zombie left behind
        where = f"while on {task.source.name}" if task is not None else "between images"
        log.warning("a worker process died %s (%s); starting another", where, why)
        self._forget(worker)
        self.replaced += 1
        worker = self._launch()
        self.workers.append(worker)
        self._ready(worker)
        for waiting in rest:
            self._send(worker, waiting)
        if task is None:
            return None
        return Done(task.index, error=f"the worker process running this image died: {why}")

    def close(self) -> None:
        """Stop every worker: ask nicely, then insist."""
        for worker in self.workers:
            with contextlib.suppress(BrokenPipeError, OSError):
                worker.conn.send(None)
        for worker in self.workers:
            worker.process.join(timeout=2)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(timeout=2)
            worker.conn.close()
        self.workers.clear()
        self._selector.close()


def available_memory() -> int | None:
    """Bytes of memory available to new processes (Linux's MemAvailable), or None."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def auto_workers(
    plan: Plan, cores: int | None = None, memory: int | None = None
) -> tuple[int, int]:
    """(worker processes, engine threads each) for ``plan`` on this machine.

    One worker per core with one thread each: on 2 and 16 cores alike, k networks of one
    thread beat one network on every core for yolov3-tiny and yolov3 (benchmarks/RESULTS.md).
    At most as many as half the available memory holds (each worker needs about three times
    the weights' size plus 300 MB); a GPU device gets one in-process network.
    Returns (1, cores) when one network should run in the calling process: on a GPU device,
    and on fewer than `MIN_CORES` cores. (The command line also keeps runs of fewer than
    `MIN_IMAGES` images in process.)
    """
    cores = cores or os.cpu_count() or 1
    if plan.device != "cpu" or cores < MIN_CORES:
        return 1, cores
    memory = available_memory() if memory is None else memory
    count = cores
    if memory is not None:
        need = WORKER_BASE_BYTES + WEIGHTS_FACTOR * plan.info.weights.stat().st_size
        count = min(count, max(1, int(memory * MEMORY_SHARE // need)))
    if count <= 1:
        return 1, cores
    return count, max(1, cores // count)


def min_images() -> int:
    """Runs of fewer images than this keep one network in this process: `MIN_IMAGES`, or
    `MIN_IMAGES_FORKED` where workers would be forked now."""
    return MIN_IMAGES_FORKED if _this_start_method() == "fork" else MIN_IMAGES


def choose_workers(
    plan: Any,
    few: bool,
    workers: str,
    threads: int | None,
    options: Any,
    videos: bool = False,
    limit: int = MIN_IMAGES,
) -> tuple[Any, str]:
    """``options`` with the worker processes and engine threads to use, and the rule that
    chose them in words (for --profile). ``few``: the run is known to have fewer than
    ``limit`` images (`min_images`); ``videos``: it names a video, camera or stream, whose
    frames run in this process anyway (`yolocli.run.pipeline`)."""
    import dataclasses

    cores = os.cpu_count() or 1
    share: int | None
    if workers != "auto":
        count = int(workers)
        share = threads or max(1, cores // count)
        rule = f"--workers {count}"
        if count > 1 and options.batch > 1:
            log.warning(
                "--batch %d is not used with --workers %d: each worker process runs one image "
                "at a time (-j 1 batches on one network in this process)",
                options.batch,
                count,
            )
    elif options.batch > 1:
        count, share = 1, threads  # batches are formed on one network, here
        rule = f"auto: --batch {options.batch} batches on one network in this process"
    elif videos:
        count, share = 1, threads  # frames are not worth shipping to other processes
        rule = "auto: videos run on one network in this process"
    elif few:
        count, share = 1, threads  # starting worker processes would cost more than they save
        rule = f"auto: fewer than {limit} images, so one network in this process"
    else:
        count, share = auto_workers(plan, cores)
        share = threads or share
        rule = (
            f"auto: {cores} cores, one worker per core as memory allows"
            if count > 1
            else f"auto: one network in this process ({cores} cores, {plan.device})"
        )
    return dataclasses.replace(options, workers=count, threads=share), rule
