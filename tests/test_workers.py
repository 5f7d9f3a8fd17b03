"""Worker processes: how many, the same answers as one network, and surviving a crash."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path, PurePosixPath

import pytest

from tests import awkward
from tests.conftest import DATA, WEIGHTS_CACHE, spawn
from yolocli.detector import plan
from yolocli.io.inputs import Source
from yolocli.io.outputs import Targets
from yolocli.models.store import Store
from yolocli.run.workers import (
    DEPTH,
    WORKER_BASE_BYTES,
    Done,
    Task,
    Workers,
    auto_workers,
    start_method,
)

TINY = ["--model", "yolov3-tiny", "--conf", "0.2", "-f", "jsonl"]
MB = 1 << 20
COFFEE = DATA / "images" / "coffee.png"


def coffee(name: str) -> Source:
    """The test photo as an input called ``name`` (which names its outputs)."""
    return Source(name, COFFEE, PurePosixPath(name))


def task_for(index: int, source: Source) -> Task:
    """A worker's task for ``source``: no outputs, limits far above any test photo."""
    return Task(index, source, Targets(), False, 1 << 30, 1 << 30)


@pytest.fixture
def env(tiny_weights: Path) -> dict[str, str]:
    return {**os.environ, "YOLOCLI_HOME": str(WEIGHTS_CACHE), "YOLOCLI_OFFLINE": "1"}


@pytest.mark.parametrize(
    ("cores", "memory", "device", "expected"),
    [
        (2, 8 << 30, "cpu", (2, 1)),  # 2 x 1 beat 1 x 2 on 2 cores too (RESULTS.md)
        (2, 700 * MB, "cpu", (1, 2)),  # memory for one worker: in process
        (4, 8 << 30, "cpu", (4, 1)),  # one per core, one thread each
        (16, 64 << 30, "cpu", (16, 1)),
        (16, 2 * (WORKER_BASE_BYTES + 3 * 35_434_956) + 10 * MB, "cpu", (1, 16)),  # room for 1
        (16, 8 * (WORKER_BASE_BYTES + 3 * 35_434_956) + 10 * MB, "cpu", (4, 4)),
        (1, 8 << 30, "cpu", (1, 1)),
        (8, 1 << 30, "cpu", (1, 8)),  # memory for one worker: in process
        (16, 64 << 30, "opencl", (1, 16)),  # a GPU device: one network, in process
    ],
)
def test_auto_workers_follows_cores_memory_and_device(
    real_store: Store, cores: int, memory: int, device: str, expected: tuple[int, int]
) -> None:
    tiny = dataclasses.replace(plan("yolov3-tiny", store=real_store), device=device)
    assert auto_workers(tiny, cores, memory) == expected


def run(args: list[str], env: dict[str, str]) -> tuple[int, list[dict], str]:
    proc = spawn(args, env=env)
    stdout, stderr = proc.communicate(timeout=300)
    return proc.returncode, [json.loads(line) for line in stdout.splitlines()], stderr


def test_workers_give_the_same_records_in_the_same_order(
    tmp_path: Path, env: dict[str, str]
) -> None:
    folder = tmp_path / "in"
    awkward.copies(folder, 12)
    one = run(["detect", str(folder), *TINY, "-o", str(tmp_path / "a"), "-j", "1"], env)
    three = run(["detect", str(folder), *TINY, "-o", str(tmp_path / "b"), "-j", "3"], env)
    assert one[0] == three[0] == 0
    for a, b in zip(one[1], three[1], strict=True):
        assert (a["image"], a["detections"]) == (b["image"], b["detections"])
        assert Path(b["outputs"]["image"]).read_bytes() == Path(a["outputs"]["image"]).read_bytes()


def crash_hook(tmp_path: Path, pythonpath: str | None) -> str:
    """A PYTHONPATH under which reading any ``*crash.png`` is a real SIGSEGV. Loaded by every
    Python that starts with it, worker processes included."""
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(
        "import os, signal\n"
        "import yolocli.io.images as images\n"
        "_read = images.read_bytes\n"
        "def read_bytes(source, **kwargs):\n"
        "    if source.name.endswith('crash.png'):\n"
        "        os.kill(os.getpid(), signal.SIGSEGV)\n"
        "    return _read(source, **kwargs)\n"
        "images.read_bytes = read_bytes\n"
    )
    return os.pathsep.join(filter(None, [str(hooks), pythonpath]))


def test_a_worker_that_crashes_costs_one_image(tmp_path: Path, env: dict[str, str]) -> None:
    """A real SIGSEGV in a worker, in the middle of one image: that image's record says so,
    a new worker takes over, every other image is processed, exit status 1."""
    folder = tmp_path / "in"
    awkward.copies(folder, 8)
    (folder / "004-crash.png").write_bytes(COFFEE.read_bytes())
    path = crash_hook(tmp_path, env.get("PYTHONPATH"))
    code, recs, stderr = run(
        ["detect", str(folder), *TINY, "--no-save", "-j", "2"], {**env, "PYTHONPATH": path}
    )
    assert code == 1, stderr
    assert len(recs) == 9, stderr
    errors = {Path(r["image"]).name: r["error"] for r in recs if r["error"]}
    assert errors == {
        "004-crash.png": "the worker process running this image died: it was killed by SIGSEGV"
    }
    assert "a worker process died while on" in stderr
    assert re.search(r"yolocli: 9 images, \d+ objects, 1 failed in ", stderr)


@pytest.mark.parametrize(
    ("platform", "threads", "modules", "expected"),
    [
        ("linux", [], ["numpy", "cv2", "yolocli"], "fork"),
        ("linux", ["yolocli-stderr"], [], "fork"),  # blocks on its own pipe: harmless
        ("linux", ["yolocli-inputs"], [], "spawn"),  # lists folders: may hold any lock
        ("linux", ["Thread-1"], [], "spawn"),  # a caller's thread
        ("linux", [], ["onnxruntime"], "spawn"),  # starts threads of its own
        ("linux", [], ["torch"], "spawn"),
        ("darwin", [], [], "spawn"),
        ("win32", [], [], "spawn"),
    ],
)  # fmt: skip
def test_workers_are_forked_only_where_that_is_safe(
    platform: str, threads: list[str], modules: list[str], expected: str
) -> None:
    assert start_method(platform, threads, modules) == expected
    # a library's pool started since yolocli loaded (OpenCV's, at its first parallel call)
    assert start_method(platform, threads, modules, native=1) == "spawn"


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="OpenCV starts no pool on one core")
def test_a_process_that_ran_opencvs_thread_pool_spawns_its_workers() -> None:
    """A forked child whose parent had run OpenCV's pool hung in cv2.setNumThreads(1) (OpenCV
    4.14 and 5.1): once the pool has started, workers are spawned."""
    script = (
        "import numpy as np, cv2\n"
        "from yolocli.run import workers\n"
        "print(workers._this_start_method())\n"
        "big = np.zeros((3000, 4000, 3), np.uint8)\n"
        "cv2.setNumThreads(2)\n"
        "cv2.GaussianBlur(big, (15, 15), 0)\n"
        "print(workers._this_start_method())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    assert out == ["fork", "spawn"]


def test_workers_on_the_command_line(tmp_path: Path, env: dict[str, str]) -> None:
    folder = tmp_path / "in"
    awkward.copies(folder, 4)
    code, recs, stderr = run(["detect", str(folder), *TINY, "--no-save", "--profile"], env)
    assert code == 0
    assert len(recs) == 4
    assert "(auto: fewer than 20 images, so one network in this process)" in stderr
    code, recs, stderr = run(["detect", str(folder), *TINY, "--no-save", "--profile", "-j2"], env)
    assert code == 0
    assert len(recs) == 4
    assert re.search(r"engine: .+ x 2 forked processes, 1 thread\(s\) each \(--workers 2\)", stderr)
    code, _, stderr = run(["detect", str(folder), *TINY, "-j", "zero"], env)
    assert code == 2
    assert "'zero' is not 'auto' or a number of processes" in stderr


@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_the_images_queued_behind_a_crash_go_to_the_new_worker(
    real_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, start: str
) -> None:
    """One worker holding two images dies on the first: that one is an error, the second is
    answered by the worker started in its place, forked or spawned."""
    monkeypatch.setenv("PYTHONPATH", crash_hook(tmp_path, os.environ.get("PYTHONPATH")))
    if start == "fork":  # a forked worker runs no sitecustomize: it inherits this process's
        import yolocli.io.images as images

        hooks = tmp_path / "hooks" / "sitecustomize.py"
        spec = importlib.util.spec_from_file_location("crash_hook", hooks)
        assert spec is not None
        assert spec.loader is not None
        monkeypatch.setattr(images, "read_bytes", images.read_bytes)  # put back afterwards
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
    names = ["crash.png", "coffee.png"]
    tasks = [task_for(i, coffee(n)) for i, n in enumerate(names)]
    with Workers(plan("yolov3-tiny", store=real_store), 1, 1, start=start) as pool:
        assert pool.method == start
        assert pool.room() == DEPTH >= 2
        for task in tasks:
            pool.submit(task)
        answers: dict[int, Done] = {}
        for _ in range(10):  # an answer each time, unless a task was lost
            answers.update((d.index, d) for d in pool.results(timeout=60))
            if len(answers) == len(tasks):
                break
        assert pool.replaced == 1
    assert (
        answers[0].error == "the worker process running this image died: it was killed by SIGSEGV"
    )
    assert answers[1].error is None
    assert answers[1].detections is not None
    assert len(answers[1].detections) > 0


def test_a_stopped_worker_is_replaced_and_its_image_gets_an_error(real_store: Store) -> None:
    """The audit's W18: a SIGSTOPped worker stalled the run forever. A worker silent on one
    image for far longer than images take (here a 3 s floor) is killed and replaced; its image
    is an error, the images queued behind it go to the new worker."""
    names = ["a.png", "b.png", "c.png"]
    tasks = [task_for(i, coffee(n)) for i, n in enumerate(names)]
    with Workers(plan("yolov3-tiny", store=real_store), 1, 1, min_silence=3.0) as pool:
        pool.submit(tasks[0])
        answers = {d.index: d for d in pool.results(timeout=60)}
        assert answers[0].error is None  # one image answered: the pace is known
        stopped = pool.workers[0].process
        os.kill(stopped.pid, signal.SIGSTOP)
        for task in tasks[1:]:
            pool.submit(task)
        started = time.monotonic()
        while len(answers) < len(tasks) and time.monotonic() - started < 60:
            answers.update((d.index, d) for d in pool.results(timeout=1))
        assert pool.replaced == 1
        assert not stopped.is_alive()
    error = answers[1].error or ""
    assert error.startswith("the worker process running this image died: it was silent for ")
    assert "(stopped or hung?)" in error
    assert answers[2].error is None
    assert answers[2].detections is not None
    assert len(answers[2].detections) > 0


def test_workers_share_the_graph_a_store_could_not_keep(
    tiny_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store that cannot keep the compiled graph (read-only, full; here ``derived`` is a
    file, which stops even root): this process compiles it once into a private folder and
    the workers load that copy, rather than each compiling and writing its own."""
    home = tmp_path / "store"
    home.mkdir()
    os.link(tiny_weights, home / "yolov3-tiny.weights")
    (home / "derived").write_text("not a folder")
    store = Store.from_env({"YOLOCLI_HOME": str(home), "YOLOCLI_OFFLINE": "1"})
    workers_tmp = tmp_path / "workers-tmp"
    workers_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(workers_tmp))  # where a worker would write its own copy
    source = coffee("c.png")
    with Workers(plan("yolov3-tiny", store=store, backend="onnxruntime"), 2, 1) as pool:
        assert pool.plan.private_graph is not None
        assert not pool.plan.private_graph.is_relative_to(home)
        for i in range(2):
            pool.submit(task_for(i, source))
        answers: dict[int, Done] = {}
        for _ in range(10):
            answers.update((d.index, d) for d in pool.results(timeout=60))
            if len(answers) == 2:
                break
    assert [answers[i].error for i in range(2)] == [None, None]
    assert list(workers_tmp.glob("yolocli-graphs-*")) == []


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="OpenCV starts no pool on one core")
def test_a_forked_opencv_worker_survives_a_parent_that_ran_opencvs_pool(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """Forced to fork after the parent ran OpenCV's pool (which start_method refuses), a
    worker on the OpenCV engine with one thread still answers: one thread is
    cv2.setNumThreads(0), not 1, which hung there on OpenCV 4.14 and 5.1."""
    script = tmp_path / "fork_after_pool.py"
    script.write_text(
        "import numpy as np, cv2\n"
        "from pathlib import PurePosixPath\n"
        "from yolocli.detector import plan\n"
        "from yolocli.io.inputs import Source\n"
        "from yolocli.io.outputs import Targets\n"
        "from yolocli.run.workers import Task, Workers\n"
        "cv2.setNumThreads(2)\n"
        "cv2.GaussianBlur(np.zeros((3000, 4000, 3), np.uint8), (15, 15), 0)\n"
        "model = plan('yolov3-tiny', backend='opencv')\n"
        "with Workers(model, 1, 1, start='fork') as pool:\n"
        f"    image = Source('c.png', {str(DATA / 'images' / 'coffee.png')!r},\n"
        "                   PurePosixPath('c'))\n"
        "    pool.submit(Task(0, image, Targets(), False, 1 << 30, 1 << 30))\n"
        "    done = [d for _ in range(10) for d in pool.results(timeout=60)]\n"
        "    assert done and done[0].error is None, done\n"
        "    print(pool.method, len(done[0].detections))\n"
    )
    proc = subprocess.run([sys.executable, str(script)], env=env, text=True,
                          capture_output=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    method, found = proc.stdout.split()
    assert method == "fork"
    assert int(found) > 0


def test_workers_do_not_run_the_main_script_again(tmp_path: Path, env: dict[str, str]) -> None:
    """A spawned worker needs nothing of the script that started it: the ``yolocli`` command's
    own file imports the whole command line, which cost every worker's start. The script here
    notes each time its top level runs; run through a worker, it must run once (here)."""
    marker = tmp_path / "ran"
    script = tmp_path / "uses_workers.py"
    script.write_text(
        "import os, sys\n"
        f"with open({str(marker)!r}, 'a') as f:\n"
        "    f.write(f'{os.getpid()}\\n')\n"
        "from pathlib import PurePosixPath\n"
        "from yolocli.detector import plan\n"
        "from yolocli.io.inputs import Source\n"
        "from yolocli.io.outputs import Targets\n"
        "from yolocli.run.workers import Task, Workers\n"
        # no `if __name__ == '__main__'` guard: a worker that ran this file would start workers
        "with Workers(plan('yolov3-tiny'), 1, 1, start='spawn') as pool:\n"
        f"    image = Source('c.png', {str(DATA / 'images' / 'coffee.png')!r},\n"
        "                   PurePosixPath('c'))\n"
        "    pool.submit(Task(0, image, Targets(), False, 1 << 30, 1 << 30))\n"
        "    done = [d for _ in range(10) for d in pool.results(timeout=60)]\n"
        "    assert done and done[0].error is None, done\n"
        "    print(sys.modules['__main__'].__file__)\n"
    )
    proc = subprocess.Popen([sys.executable, str(script)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert stdout.strip() == str(script)  # put back after the worker started
    assert marker.read_text().splitlines() == [str(proc.pid)]


def test_the_command_line_opens_early_only_runs_that_stay_in_process() -> None:
    """`yolocli detect a.jpg b.jpg` opens its network before the inputs are listed, sure that
    the run stays in this process: so few files that no worker would start."""
    from yolocli.cli.detect import EARLY_MAX
    from yolocli.run.workers import MIN_IMAGES, MIN_IMAGES_FORKED

    assert min(MIN_IMAGES, MIN_IMAGES_FORKED) > EARLY_MAX


def test_the_inputs_are_listed_while_the_networks_load(real_store: Store) -> None:
    """`while_loading` runs once, after every worker has started and before this process
    waited for any network to load: the pipeline starts the thread that lists its inputs
    there. The workers all start before that thread, so none is spawned for its sake."""
    import threading

    calls: list[float] = []
    started = threading.Event()

    def listing() -> None:
        calls.append(time.monotonic())
        threading.Thread(target=started.set, name="yolocli-inputs").start()

    before = time.monotonic()
    with Workers(plan("yolov3-tiny", store=real_store), 2, 1, while_loading=listing) as pool:
        ready = time.monotonic()
        assert len(calls) == 1
        assert before < calls[0] < ready
        assert started.wait(10)
        # every worker started before the thread did: as the first one, forked where this
        # process allows it (a suite that loaded ONNX Runtime before spawns them all)
        assert [w.method for w in pool.workers] == [pool.method] * 2
        pool.submit(task_for(0, coffee("c.png")))
        answers = {d.index: d for d in pool.results(timeout=60)}
    assert answers[0].error is None


def test_room_counts_what_the_workers_take_at_a_depth(real_store: Store) -> None:
    source = coffee("c.png")
    with Workers(plan("yolov3-tiny", store=real_store), 2, 1) as pool:
        assert pool.room(1) == 2
        assert pool.room(DEPTH) == pool.room() == 2 * DEPTH
        pool.submit(task_for(0, source))
        assert pool.room(1) == 1  # the other worker
        assert pool.room(DEPTH) == 2 * DEPTH - 1
        answers: dict[int, Done] = {}
        while not answers:
            answers.update((d.index, d) for d in pool.results(timeout=60))
        assert pool.room(1) == 2


def test_once_the_input_ends_no_image_waits_behind_another_while_a_worker_is_free(
    real_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three images for two workers: the input ends at once, so the third goes to whichever
    worker finishes first, as from a shared queue, rather than into a busy worker's pipe
    behind its image while the other may already be free."""
    from yolocli.run import workers as workers_module
    from yolocli.run.pipeline import Options, Pipeline

    held: list[list[int]] = []
    submit = workers_module.Workers.submit

    def spied(self: Workers, task: Task) -> None:
        submit(self, task)
        held.append([len(w.tasks) for w in self.workers])

    monkeypatch.setattr(workers_module.Workers, "submit", spied)
    sources = [coffee(f"{i}.png") for i in range(3)]
    pipeline = Pipeline(plan("yolov3-tiny", store=real_store), options=Options(workers=2))
    results = list(pipeline.run(sources))
    assert [r.source.name for r in results] == ["0.png", "1.png", "2.png"]
    assert all(r.error is None for r in results)
    assert len(held) == 3
    assert all(max(counts) == 1 for counts in held), held
