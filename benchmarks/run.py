"""Measure yolocli side by side with OpenCV's bare forward pass and a peer script.

    python benchmarks/run.py            # the full set, a few minutes; writes benchmarks/RESULTS.md
    python benchmarks/run.py --quick    # tiny sizes, seconds: checks the machinery (tests use it)
    python benchmarks/run.py --only engines --output engines.md    # some sections only

Every figure is written with the command (or code) that produced it. The real yolov3-tiny
weights come through yolocli's store (YOLOCLI_HOME, else this checkout's weights/); yolov3
runs on random weights of the right layout, since its speed does not depend on the values.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from tests.clusters import clustered  # noqa: E402
from yolocli import engines  # noqa: E402
from yolocli.detections import Detections  # noqa: E402
from yolocli.families.darknet import cfg as darknet  # noqa: E402
from yolocli.models.registry import config_dir, load_registry  # noqa: E402
from yolocli.models.store import Store  # noqa: E402
from yolocli.ops import nms  # noqa: E402

IMAGES = REPO / "tests" / "data" / "images"
REFERENCES = REPO / "tests" / "data" / "reference"
PEERS = Path(__file__).resolve().parent / "peers"
# Random yolov3 weights (250 MB) and compiled graphs survive between runs here.
CACHE = Path(tempfile.gettempdir()) / "yolocli-bench-cache"
THREADS = 2  # every engine gets the same thread count: this machine's cores
HAS_DARKNET = hasattr(cv2.dnn, "readNetFromDarknet")  # OpenCV 5 removed the darknet importer
FAMILIES = REPO / "tests" / "data" / "families"  # one small ONNX model of each family
FOLDER = 280  # photos in issue 25's folder: what users run, where start-up still counts
# interleaved rounds of the folder runs (sections 8 and 9) unless --rounds says otherwise. A
# share moves by about +-0.03 between runs of 3 rounds on a shared machine.
FOLDER_ROUNDS = 3
# Issue 25 also asks yolocli to beat Ultralytics' own predict (stream, ONNX Runtime) on its
# own model: that peer runs in an environment of its own (--ultralytics-python).
FAMILY_TODO = (
    "| TODO: Ultralytics' own `predict` (stream=True, ONNX Runtime) on its own export, as a "
    "peer | | | | not measured: run with `--ultralytics-python PATH` (the python of an "
    "environment with ultralytics, torch and onnxruntime) | |"
)
# The n-size Ultralytics architectures the peer runs, exported by Ultralytics' own exporter
# (tools/check_ultralytics_exports.py, random weights: none can be downloaded here).
ULTRALYTICS_MODELS = ("yolov8n", "yolo11n")
ULTRALYTICS_EXPORTS = REPO / "tools" / "check_ultralytics_exports.py"


@dataclass
class Report:
    """Sections of RESULTS.md, each a table plus the commands behind it."""

    sections: list[str] = field(default_factory=list)
    goals: list[tuple[str, str, bool]] = field(default_factory=list)

    def add(self, title: str, text: str) -> None:
        self.sections.append(f"## {title}\n\n{text.strip()}\n")
        print(f"\n## {title}\n{text.strip()}", flush=True)

    def goal(self, name: str, value: str, met: bool) -> None:
        self.goals.append((name, value, met))


def against(value: float, goal: float) -> str:
    """``value`` to 2 decimals, or 3 where 2 would print the goal itself (0.897 is not 0.90:
    a goal line must not read "0.90 ... NOT met")."""
    text = f"{value:.2f}"
    return f"{value:.3f}" if text == f"{goal:.2f}" and value != goal else text


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "yolocli", *args]


WORKDIR = ""  # the run's temporary folder, shown as $TMP in commands


def shown(cmd: Sequence[str]) -> str:
    """A command as a person would type it (paths shortened)."""
    text = " ".join(str(c) for c in cmd)
    text = text.replace(sys.executable + " -m yolocli", "yolocli").replace(sys.executable, "python")
    text = text.replace(str(REPO) + "/", "")
    return text.replace(WORKDIR, "$TMP") if WORKDIR else text


def measured(cmd: Sequence[str], env: dict[str, str]) -> tuple[float, int, str, str]:
    """(wall seconds, peak RSS in KiB, stdout, stderr) of one real process."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(list(cmd), stdout=out, stderr=err, env=env, cwd=REPO)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"{shown(cmd)} exited {proc.returncode}:\n{stderr}")
    return wall, int(usage.ru_maxrss), stdout, stderr


def folder_of(n: int, root: Path) -> Path:
    """``n`` real photos (the six test images, cycled) in a fresh folder."""
    folder = root / f"images-{n}"
    folder.mkdir(parents=True, exist_ok=True)
    sources = sorted(IMAGES.iterdir())
    for i in range(n):
        src = sources[i % len(sources)]
        shutil.copyfile(src, folder / f"{i:04d}-{src.name}")
    return folder


def profile_table(stderr: str) -> dict[str, tuple[float, float | None]]:
    """Stage -> (wall ms, cpu ms or None) from ``detect --profile`` output."""
    stages: dict[str, tuple[float, float | None]] = {}
    for line in stderr.splitlines():
        parts = line.split()
        if line.startswith("  wall clock"):
            stages["wall clock"] = (float(parts[2]), None)
        elif line.startswith("  ") and len(parts) == 3 and parts[0] != "stage":
            stages[parts[0]] = (float(parts[1]), None if parts[2] == "-" else float(parts[2]))
    return stages


# ------------------------------------------------------------------------------ engines

ENGINE_LABELS = {
    "opencv-darknet": "OpenCV darknet importer",
    "opencv-onnx": "OpenCV ONNX importer (compiled graph)",
    "onnxruntime": "ONNX Runtime",
    "openvino": "OpenVINO",
}
# the engines benchmarks/peers/least_work.py runs
LEAST_WORK_KINDS = ("onnxruntime", "opencv-onnx", "opencv-darknet")
# yolocli's backend name -> the bare engine it runs here
BACKEND_KIND = {
    "opencv": "opencv-darknet" if HAS_DARKNET else "opencv-onnx",
    "onnxruntime": "onnxruntime",
    "openvino": "openvino",
}


def engine_kinds() -> list[str]:
    """The bare engines this environment can run, OpenCV's first (the ratios' reference)."""
    kinds = ["opencv-darknet"] if HAS_DARKNET else []
    kinds.append("opencv-onnx")
    kinds += [b for b in ("onnxruntime", "openvino") if engines.installed(b)]
    return kinds


def reference_kind() -> str:
    """What ratios are taken to: OpenCV's darknet importer, or its ONNX importer on OpenCV 5."""
    return "opencv-darknet" if HAS_DARKNET else "opencv-onnx"


def versions() -> str:
    parts = [f"OpenCV {cv2.__version__}"]
    for module in ("onnxruntime", "openvino"):
        if engines.installed(module):
            mod = __import__(module)
            parts.append(f"{module} {mod.__version__.split('-')[0]}")
    return ", ".join(parts)


Runner = Callable[[np.ndarray], object]


def bare_engine(kind: str, cfg: Path, weights: Path, onnx: Callable[[], Path],
                precision: str = "f32") -> Runner:  # fmt: skip
    """A function running one forward pass of ``kind`` on a blob, with yolocli's settings for
    that engine (2 threads, fp32 unless ``precision`` says otherwise), nothing around it."""
    if kind.startswith("opencv"):
        cv2.setNumThreads(THREADS)  # process-wide: OpenCV has no per-network setting
        net = (
            cv2.dnn.readNetFromDarknet(str(cfg), str(weights))
            if kind == "opencv-darknet"
            else cv2.dnn.readNetFromONNX(str(onnx()))
        )
        names = net.getUnconnectedOutLayersNames()

        def run_cv(blob: np.ndarray) -> object:
            net.setInput(blob)
            return net.forward(names)

        return run_cv
    if kind == "onnxruntime":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = THREADS
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        path = onnx() if precision == "f32" else Path(precision)  # an int8 model's path
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda blob: session.run(None, {name: blob})
    if kind == "openvino":
        import openvino as ov

        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": precision,
                  "INFERENCE_NUM_THREADS": THREADS}  # fmt: skip
        request = ov.Core().compile_model(str(onnx()), "CPU", config).create_infer_request()
        return lambda blob: request.infer({0: blob})
    raise ValueError(kind)


def compiled_onnx(cfg: Path, weights: Path, size: int) -> Path:
    """``cfg`` + ``weights`` compiled by yolocli at ``size``, cached by their contents."""
    from yolocli.families.darknet.compiler import compile_onnx
    from yolocli.io.files import sha256_file

    key = f"{cfg.stem}-{size}-{sha256_file(weights)[:12]}-{sha256_file(cfg)[:8]}"
    path = CACHE / f"{key}-{compiler_stamp()}.onnx"
    if not path.exists():
        _, network = darknet.read_cfg(cfg)
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(compile_onnx(network, weights, size=(size, size)).SerializeToString())
        tmp.replace(path)
    return path


@functools.cache
def compiler_stamp() -> str:
    import hashlib

    from yolocli.families.darknet import compiler

    return hashlib.sha256(Path(compiler.__file__ or "").read_bytes()).hexdigest()[:8]


def random_v3_weights() -> Path:
    """yolov3's darknet layout filled with random values, written once into the cache."""
    path = CACHE / "yolov3-random.weights"
    if not path.exists():
        _, network = darknet.read_cfg(config_dir() / "yolov3.cfg")
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        darknet.write_random_weights(network, tmp)
        tmp.replace(path)
    return path


def photo_blobs(size: int, n: int, height: int | None = None) -> list[np.ndarray]:
    """``n`` letterboxed test photos (cycled), (1, 3, height or size, size) each, as yolocli
    feeds darknet models (other families' inputs have the same shape and cost)."""
    from yolocli.families.darknet.letterbox import letterbox

    photos = [cv2.imread(str(p)) for p in sorted(IMAGES.iterdir())]
    return [letterbox(photos[i % len(photos)], size, height or size) for i in range(n)]


def timed(run: Runner, blobs: Sequence[np.ndarray], repeats: int = 1) -> float:
    """Seconds per image of ``run`` over ``blobs`` (made before the clock starts)."""
    start = time.perf_counter()
    for _ in range(repeats):
        for blob in blobs:
            run(blob)
    return (time.perf_counter() - start) / (repeats * sum(len(b) for b in blobs))


def interleaved(runs: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Each function once per round, in a rotating order, with a short pause between them
    (a thread pool that spins after its run must not slow the next engine)."""
    times: dict[str, list[float]] = {k: [] for k in runs}
    keys = list(runs)
    for r in range(rounds):
        for key in keys[r % len(keys) :] + keys[: r % len(keys)]:
            time.sleep(0.05)
            times[key].append(runs[key]())
    return times


def spread(values: Sequence[float], scale: float = 1e3) -> str:
    return f"{min(values) * scale:.1f}-{max(values) * scale:.1f}"


def ratios(a: Sequence[float], b: Sequence[float]) -> float:
    """The median of the per-round ratios a/b: what drift between rounds leaves alone."""
    return statistics.median(x / y for x, y in zip(a, b, strict=True))


def mean_time(fn: Callable[[], object], repeats: int) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def paired(
    a: Callable[[], float], b: Callable[[], float], rounds: int
) -> tuple[float, float, float]:
    """(median a, median b, median of the per-round ratios a/b), a and b run alternately.

    This machine's speed drifts by 20-30% over minutes; a ratio taken within each round,
    then the median across rounds, is what such drift leaves alone.
    """
    ta, tb = [], []
    for _ in range(rounds):
        ta.append(a())
        tb.append(b())
    ratios = [x / y for x, y in zip(ta, tb, strict=True)]
    return statistics.median(ta), statistics.median(tb), statistics.median(ratios)


# ------------------------------------------------------------------------------ sections


def stages_section(report: Report, env: dict[str, str], tiny: Path, v3_weights: Path, root: Path,
                   quick: bool) -> None:  # fmt: skip
    folder = folder_of(6 if quick else 60, root)
    rows = []
    cmds = []
    runs = [("yolov3-tiny", 416, ["--model", "yolov3-tiny"])]
    v3_cfg = config_dir() / "yolov3.cfg"
    v3 = ["--cfg", str(v3_cfg), "--weights", str(v3_weights)]
    sizes = (320,) if quick else (320, 416, 608)
    v3_folder = folder_of(2 if quick else 6, root / "v3")
    runs += [("yolov3 (random weights)", size, [*v3, "--size", str(size)]) for size in sizes]
    for name, size, model_args in runs:
        src = folder if name == "yolov3-tiny" else v3_folder
        out = root / f"out-stages-{name.split()[0]}-{size}"
        cmd = cli("detect", str(src), *model_args, "-f", "jsonl", "-o", str(out), "--profile")
        _, _, _, stderr = measured(cmd, env)
        stages = profile_table(stderr)
        n = len(list(src.iterdir()))
        rows.append((name, size, n, stages))
        cmds.append(shown(cmd))
    order = ["read", "decode", "preprocess", "forward", "postprocess", "draw", "encode", "write"]
    lines = [
        "| model | size | images | " + " | ".join(order) + " | wall clock |",
        "| --- | --- | --- |" + " --- |" * (len(order) + 1),
    ]

    def cell(value: tuple[float, float | None] | None) -> str:
        if value is None:
            return ""
        wall, cpu = value
        return f"{wall:.1f}" if cpu is None else f"{cpu:.1f} ({wall:.1f})"

    for name, size, n, st in rows:
        cells = [cell(st.get(s)) for s in [*order, "wall clock"]]
        lines.append(f"| {name} | {size} | {n} | " + " | ".join(cells) + " |")
    report.add(
        "1. Time per image by stage (ms)",
        "\n".join(lines) + f"\n\nEngine: `--backend auto`, which is "
        f"{ENGINE_LABELS[BACKEND_KIND[engines.resolve('auto', 'cpu')]]} here. "
        "Each cell is CPU time on the stage's thread (what the stage costs), then wall "
        "time in brackets (which also counts waiting for a core while the forward pass holds "
        "both). The forward pass runs on the engine's own threads: wall time only. Stages overlap "
        "on three kinds of thread (read/decode/preprocess ahead of the forward pass, "
        "draw/encode/write behind it), so the wall clock per image is less than their sum. "
        "`postprocess` is decoding the YOLO outputs plus NMS. From `--profile`.\n\nCommands:\n\n"
        + "\n".join(f"    {c}" for c in cmds),
    )


def jpeg_folder_of(n: int, root: Path) -> Path:
    """``n`` photos as a camera or phone leaves them: the six test images as JPEG (q95)."""
    folder = root / f"jpeg-{n}"
    folder.mkdir(parents=True, exist_ok=True)
    encoded = []
    for src in sorted(IMAGES.iterdir()):
        _, buf = cv2.imencode(".jpg", cv2.imread(str(src)), [cv2.IMWRITE_JPEG_QUALITY, 95])
        encoded.append((src.stem, buf.tobytes()))
    for i in range(n):
        stem, data = encoded[i % len(encoded)]
        (folder / f"{i:04d}-{stem}.jpg").write_bytes(data)
    return folder


def throughput_section(
    report: Report, env: dict[str, str], tiny: Path, root: Path, quick: bool
) -> None:
    n, rounds = (6, 1) if quick else (240, 3)
    cfg = config_dir() / "yolov3-tiny.cfg"
    folders = {"JPEG photos": jpeg_folder_of(n, root)}
    if not quick:
        folders["the six test photos as they are (4 PNG, 2 JPEG)"] = folder_of(n, root)
    auto = BACKEND_KIND[engines.resolve("auto", "cpu")]
    kinds = engine_kinds()
    onnx = compiled_onnx(cfg, tiny, 416)
    bounds = {k: bare_engine(k, cfg, tiny, lambda: onnx) for k in kinds}
    blobs = photo_blobs(416, 6 if quick else 24)
    for run in bounds.values():
        run(blobs[0])  # set-up pass, not part of the bound
    goals = {"--no-save": 0.9, "annotated images saved": 0.8}
    lines = [
        "| images | run | engine | images/s | ms/image | share of the same engine's bound "
        "| share of the best bound | goal |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    commands: list[str] = []
    for kind, folder in folders.items():
        images = sorted(folder.iterdir())
        times: dict[str, list[float]] = {k: [] for k in [*kinds, *goals, "peer"]}
        for r in range(rounds):  # interleaved, so drifts in machine load hit every row alike
            for k, run in bounds.items():  # bounds before and after the processes: a short
                times[k].append(timed(run, blobs))  # burst of load then moves one sample only
            for label, extra in (("--no-save", ["--no-save"]), ("annotated images saved", [])):
                out = root / f"out-throughput-{len(commands)}-{r}"
                cmd = cli("detect", str(folder), "--model", "yolov3-tiny", "-f", "jsonl",
                          "-o", str(out), *extra)  # fmt: skip
                wall, _, stdout, _ = measured(cmd, env)
                assert len(stdout.splitlines()) == n
                times[label].append(wall / n)
                if r == 0 and kind == "JPEG photos":
                    commands.append(shown(cmd))
            if HAS_DARKNET:  # the peer is the OpenCV sample: darknet files, OpenCV 4 only
                peer_cmd = [sys.executable, str(PEERS / "opencv_sample.py"), str(cfg), str(tiny),
                            str(config_dir() / "coco.names"), str(root / f"out-peer-{r}"),
                            *map(str, images)]  # fmt: skip
                times["peer"].append(measured(peer_cmd, env)[0] / n)
            for k, run in bounds.items():
                times[k].append(timed(run, blobs))
        med = {k: statistics.median(v) for k, v in times.items() if v}
        best = min(kinds, key=lambda k: med[k])
        for k in kinds:
            lines.append(f"| {kind} | bare forward pass, blobs made in advance (a bound) | "
                         f"{ENGINE_LABELS[k]} | {1 / med[k]:.1f} | {med[k] * 1e3:.1f} | 1.00 | "
                         f"{med[best] / med[k]:.2f} | |")  # fmt: skip
        for label, goal in goals.items():
            share = med[auto] / med[label]
            ok = share >= goal
            if kind == "JPEG photos":
                best_share = med[best] / med[label]
                value = (f"{share:.2f} of the same engine's bound ({ENGINE_LABELS[auto]}; "
                         f"{best_share:.2f} of the best) (goal {goal})")  # fmt: skip
                report.goal(f"throughput, {label}", value, ok)
            lines.append(f"| {kind} | `yolocli detect`, {label} | {ENGINE_LABELS[auto]} (auto) "
                         f"| {1 / med[label]:.1f} | {med[label] * 1e3:.1f} | {share:.2f} | "
                         f"{med[best] / med[label]:.2f} | >= {goal}: "
                         f"{'met' if ok else 'NOT met'} |")  # fmt: skip
        if "peer" in med:
            ref = "opencv-darknet"
            lines.append(f"| {kind} | peer: OpenCV-sample-style script, images saved | "
                         f"{ENGINE_LABELS[ref]} | {1 / med['peer']:.1f} | "
                         f"{med['peer'] * 1e3:.1f} | {med[ref] / med['peer']:.2f} | "
                         f"{med[best] / med['peer']:.2f} | |")  # fmt: skip
    peer_note = (
        ""
        if HAS_DARKNET
        else " The peer script (OpenCV's DNN sample) needs the darknet "
        "importer, which this OpenCV lacks: no peer row."
    )
    report.add(
        f"2, 3, 7. Folder throughput, yolov3-tiny at 416, {n} images",
        "\n".join(lines)
        + f"\n\nMedians of {rounds} interleaved rounds (each bound measured at the start "
        "and the end of every round). `yolocli detect` runs its default "
        f"`--backend auto`, which is {ENGINE_LABELS[auto]} here; its share is taken of that "
        "engine's bare bound (like with like) and of the fastest bound. Whole-process wall "
        "clock: Python start, imports, model load and the engine's first-pass set-up count for "
        "yolocli and the peer, not for the bounds (their blobs, letterboxed as yolocli does, are "
        "made before the clock starts, and their first pass is excluded; 2 threads each). The "
        "peer does less than yolocli: no letterbox (a plain resize), one label per box, no "
        f"records, no annotated-image safety.{peer_note}\n\nCommands (JPEG folder; the "
        "other is the same):\n\n"
        + "\n".join(f"    {c}" for c in commands)
        + "\n    python benchmarks/peers/opencv_sample.py CFG WEIGHTS coco.names OUT <the images>"
        + "\n    bounds: benchmarks/run.py: bare_engine, timed over letterboxed blobs of the "
        "test photos",
    )


def started_together(commands: Sequence[Sequence[str]], go: Path,
                     env: dict[str, str] | None = None, pass_fds: Sequence[int] = ()
                     ) -> list[str]:  # fmt: skip
    """The standard output of each of ``commands``, processes that each print "ready" once
    set up and then wait for the file ``go`` (`wait_for_go`): created when all are ready, so
    that they start their timed work together. ``pass_fds``: file descriptors they inherit."""
    procs = [subprocess.Popen(list(cmd), stdout=subprocess.PIPE, text=True, env=env, cwd=REPO,
                              pass_fds=pass_fds)
             for cmd in commands]  # fmt: skip
    for proc in procs:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
    go.touch()
    return [proc.communicate()[0] for proc in procs]


def wait_for_go(go: Path) -> None:
    """A peer of `started_together`: say it is ready, then wait for the others."""
    print("ready", flush=True)
    while not go.exists():
        time.sleep(0.002)


def bare_parallel(kind: str, k: int, threads: int, n: int, tiny: Path, onnx: Path,
                  root: Path, size: str = "416x416") -> float:  # fmt: skip
    """Images/s of ``k`` bare networks of ``kind`` with ``threads`` threads each, in separate
    processes started together, ``n`` forward passes each (blobs made in advance)."""
    go = root / f"go-{kind}-{k}x{threads}-{time.monotonic_ns()}"
    cfg = config_dir() / "yolov3-tiny.cfg"
    command = [sys.executable, str(PEERS / "bare_parallel.py"), kind, str(threads), str(n),
               str(cfg), str(tiny), str(onnx), str(go), size]  # fmt: skip
    elapsed = [float(out.strip()) for out in started_together([command] * k, go)]
    return k * n / max(elapsed)


def work_alone(backend: str, k: int, folder: Path, root: Path, env: dict[str, str]) -> float:
    """Images/s of ``k`` processes started together, each doing yolocli's per-image work on
    ``folder``'s photos after its set-up, taking them from one shared queue
    (benchmarks/peers/work_alone.py)."""
    go = root / f"go-work-{backend}-{k}-{time.monotonic_ns()}"
    n = sum(1 for _ in folder.iterdir())
    queue, feed = os.pipe()  # every index, written before the start (4 bytes each: < 64 KiB)
    try:
        with open(feed, "wb") as pipe:
            pipe.write(b"".join(i.to_bytes(4, "little") for i in range(n)))
        command = [sys.executable, str(PEERS / "work_alone.py"), "yolov3-tiny", backend,
                   str(folder), str(queue), str(go)]  # fmt: skip
        answers = [out.split() for out in started_together([command] * k, go, env, [queue])]
    finally:
        os.close(queue)
    assert sum(int(done) for _, done in answers) == n
    return n / max(float(s) for s, _ in answers)


def least_work_model(kind: str, tiny: Path, onnx: Path, root: Path) -> list[str]:
    """The MODEL arguments of benchmarks/peers/least_work.py for engine ``kind``: for ONNX
    Runtime, the compiled graph as it optimizes it for this CPU (made once per run, before
    any clock, as yolocli's store keeps it), so that opening it costs what yolocli's does."""
    if kind == "opencv-darknet":
        return [str(config_dir() / "yolov3-tiny.cfg"), str(tiny)]
    if kind != "onnxruntime":
        return [str(onnx)]
    optimized = root / f"{onnx.stem}.optimized.onnx"
    if not optimized.exists():
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.optimized_model_filepath = str(optimized)
        options.log_severity_level = 3  # (not the warning that the file suits this CPU only)
        ort.InferenceSession(str(onnx), options, providers=["CPUExecutionProvider"])
    return [str(optimized)]


def workers_section(
    report: Report, env: dict[str, str], tiny: Path, root: Path, quick: bool,
    rounds: int = FOLDER_ROUNDS,
) -> None:  # fmt: skip
    """Issues 11 and 25: the machine's best bare configuration of each engine (every k
    dividing the cores: k networks x cores/k threads, separate processes) against `yolocli
    detect DIR` from a cold start, with its defaults (the engine `auto` picks) and on the
    default install's engine (OpenCV, `--backend opencv`), all in the same rounds."""
    cores = os.cpu_count() or 1
    n, passes, rounds = (6, 6, 1) if quick else (FOLDER, 100, rounds)
    folder = jpeg_folder_of(n, root)
    auto = BACKEND_KIND[engines.resolve("auto", "cpu")]
    opencv = BACKEND_KIND["opencv"]
    kinds = list(dict.fromkeys([auto, opencv]))
    onnx = compiled_onnx(config_dir() / "yolov3-tiny.cfg", tiny, 416)
    configs = [(k, cores // k) for k in range(1, cores + 1) if cores % k == 0]
    # (what, extra arguments, the bound's engine, goal): issue 25's three goals
    runs = [
        ("--no-save", ["--no-save"], auto, 0.9),
        ("annotated images saved", [], auto, 0.85),
        ("`--backend opencv` (the default install's engine), --no-save",
         ["--backend", "opencv", "--no-save"], opencv, 0.9),
    ]  # fmt: skip
    # yolocli.Detector by hand in a multiprocessing.Pool, on each engine (--backend auto, opencv)
    pools = {auto: "auto", opencv: "opencv"}
    rates: dict[tuple[str, int, int] | str, list[float]] = {}
    commands: list[str] = []
    for r in range(rounds):  # interleaved: bounds and yolocli share each round's load
        for kind in kinds:
            for k, t in configs:
                rates.setdefault((kind, k, t), []).append(
                    bare_parallel(kind, k, t, passes, tiny, onnx, root)
                )
        for i, (label, extra, _, _) in enumerate(runs):
            out = root / f"out-workers-{n}-{i}-{r}"
            cmd = cli("detect", str(folder), "--model", "yolov3-tiny", "-f", "jsonl",
                      "-o", str(out), "--profile", *extra)  # fmt: skip
            wall, _, stdout, stderr = measured(cmd, env)
            assert len(stdout.splitlines()) == n
            rates.setdefault(label, []).append(n / wall)
            engine_line = next((ln for ln in stderr.splitlines() if "engine:" in ln), "")
            if r == 0:
                commands.append(f"{shown(cmd)}\n      ->{engine_line}")
            shutil.rmtree(out, ignore_errors=True)
        for kind, backend in pools.items():  # the work alone: the ceiling of any pipeline
            rates.setdefault(f"alone {kind}", []).append(
                work_alone(backend, cores, folder, root, env)
            )
            if r == 0:
                commands.append(f"python benchmarks/peers/work_alone.py yolov3-tiny {backend} "
                                f"$TMP/jpeg-{n} QUEUE GO    # {cores} of them, together, "
                                "sharing a queue of the photos")  # fmt: skip
        for kind in pools:  # the least work from a cold start: the ceiling of any tool
            if kind not in LEAST_WORK_KINDS:
                continue
            cmd = [sys.executable, str(PEERS / "least_work.py"), kind, str(folder), str(cores),
                   *least_work_model(kind, tiny, onnx, root)]  # fmt: skip
            wall, _, stdout, _ = measured(cmd, env)
            assert len(stdout.splitlines()) == n
            rates.setdefault(f"least {kind}", []).append(n / wall)
            if r == 0:
                commands.append(shown(cmd))
        for kind, backend in pools.items():  # the same stages called by hand, no pipeline
            cmd = [sys.executable, str(PEERS / "library_pool.py"), "yolov3-tiny", str(folder),
                   str(cores), backend]  # fmt: skip
            wall, _, stdout, _ = measured(cmd, env)
            assert len(stdout.splitlines()) == n
            rates.setdefault(f"pool {kind}", []).append(n / wall)
            if r == 0:
                commands.append(shown(cmd))
    med = {key: statistics.median(v) for key, v in rates.items()}
    lines = ["| run | engine | networks x threads | images/s | share of the engine's best bound |",
             "| --- | --- | --- | --- | --- |"]  # fmt: skip
    best = {kind: max(med[(kind, k, t)] for k, t in configs) for kind in kinds}
    for kind in kinds:
        for k, t in configs:
            lines.append(f"| bare forward passes, separate processes | {ENGINE_LABELS[kind]} | "
                         f"{k} x {t} | {med[(kind, k, t)]:.1f} | "
                         f"{med[(kind, k, t)] / best[kind]:.2f} |")  # fmt: skip

    def shared(key: str, kind: str) -> float:
        """The median of the rounds' ratios: each round's run against that round's bound."""
        return statistics.median(rates[key][r] / max(rates[(kind, k, t)][r] for k, t in configs)
                                 for r in range(rounds))  # fmt: skip

    ceiling = {kind: shared(f"alone {kind}", kind) for kind in pools}
    least = {kind: shared(f"least {kind}", kind) for kind in pools if kind in LEAST_WORK_KINDS}
    for kind in pools:
        alone = med[f"alone {kind}"]
        lines.append(f"| the work alone: read, decode, letterbox, forward pass, heads and NMS, "
                     f"no start-up | {ENGINE_LABELS[kind]} | {cores} x 1 | {alone:.1f} | "
                     f"{ceiling[kind]:.2f} (the ceiling) |")  # fmt: skip
    for kind in least:
        lines.append(f"| the least work, from a cold start: decode, one-call stretched blob, "
                     f"forward pass, heads, `NMSBoxes` (not darknet's answers) | "
                     f"{ENGINE_LABELS[kind]} | {cores} x 1 | {med[f'least {kind}']:.1f} | "
                     f"{least[kind]:.2f} (any tool's ceiling) |")  # fmt: skip
    for label, extra, kind, goal in runs:
        share = shared(label, kind)
        ok = share >= goal
        verdict = f" (goal >= {goal}: {'met' if ok else 'NOT met'})"
        report.goal(f"{n} photos from a cold start, {label}",
                    f"{against(share, goal)} of the best bare {ENGINE_LABELS[kind]} "
                    f"configuration (goal {goal}; the work alone, without start-up"
                    f"{'' if '--no-save' in extra else ' or saving'}: {ceiling[kind]:.2f}"
                    + (f"; the least work, from a cold start: {least[kind]:.2f}"
                       if kind in least else "") + ")",
                    ok)  # fmt: skip
        lines.append(f"| `yolocli detect DIR`, {label} | {ENGINE_LABELS[kind]} | auto | "
                     f"{med[label]:.1f} | {against(share, goal)}{verdict} |")  # fmt: skip
    versus = []
    for kind in pools:
        pool = f"pool {kind}"
        share = shared(pool, kind)
        lines.append(f"| hand-written: `yolocli.Detector` in a `multiprocessing.Pool`, no "
                     f"outputs | {ENGINE_LABELS[kind]} | {cores} x 1 | {med[pool]:.1f} | "
                     f"{share:.2f} |")  # fmt: skip
        for label, extra, run_kind, _ in runs:
            if run_kind == kind and "--no-save" in extra:
                ratio = statistics.median(rates[label][r] / rates[pool][r] for r in range(rounds))
                versus.append(f"{ratio:.2f} of its images/s ({ENGINE_LABELS[kind]}, {label})")
    report.add(
        f"8. Folder from a cold start against the best bare configuration ({cores} cores)",
        "\n".join(lines)
        + f"\n\nMedians of {rounds} interleaved rounds; a share is the median of the rounds' "
        "ratios (each run against the bound of its own round). A bound is k processes started "
        f"together, each running {passes} bare forward passes of yolov3-tiny at 416 on blobs "
        "letterboxed before the clock starts (benchmarks/peers/bare_parallel.py); its rate is "
        "k x passes over the slowest process's time, and the engine's best k is the bound. "
        "`yolocli detect` is the whole process from a cold start: Python start, imports, "
        "worker start-up, reading, decoding, letterboxing, decoding the heads, NMS, drawing "
        f"and writing included, on {n} JPEG photos.\n\nThe work alone "
        "(benchmarks/peers/work_alone.py) is the ceiling of any run with yolocli's stages: "
        "k processes set up as the bound's are (imports and the network opened, one image "
        "done, before the clock starts), started together, each doing what a worker of "
        "`yolocli detect DIR --no-save` does with its share of the same photos (read, "
        "decode, letterbox, forward pass, decode the heads, NMS), with no start-up and no "
        "pipeline around it. A cold start adds at least Python, the imports and opening the "
        "network (section 6's minimal script).\n\nThe least work "
        "(benchmarks/peers/least_work.py) is the ceiling of any tool from a cold start, "
        "whatever its answers: one process imports NumPy and OpenCV and forks k, each "
        "opening the network (ONNX Runtime: the graph it optimized before the clock) and "
        "taking photos from a shared queue, then for each the least a detector must do: "
        "`cv2.imdecode`, `cv2.dnn.blobFromImage` (the photo stretched to the input in one "
        "call, no letterbox), the forward pass, the heads of the cells above the threshold, "
        "`cv2.dnn.NMSBoxes`; no outputs but a line a photo, no yolocli. A goal above its "
        "share is out of reach on this machine for any detector.\n\nThe hand-written run "
        "(benchmarks/peers/library_pool.py) is the floor of any pipeline around yolocli's "
        "own stages: from a cold start, a pool of forked processes each opening a "
        "`yolocli.Detector` and calling `cv2.imread` and `Detector.detect` on each photo, "
        "with no outputs, progress, limits or error handling. `yolocli detect DIR` ran at "
        + "; ".join(versus)
        + ": what its pipeline costs. The rest of the distance to the bound is the work "
        "itself (start-up, reading, decoding, letterboxing, decoding the heads, NMS).\n\n"
        "Commands:\n\n" + "\n".join(f"    {c}" for c in commands),
    )


def ultralytics_exports(python: str, names: Sequence[str]) -> Path:
    """The folder holding ``NAME.onnx`` (and ``NAME.json``, Ultralytics' own answers on the test
    photos) for each of ``names``: exported with ``python`` (an environment with ultralytics)
    by tools/check_ultralytics_exports.py, once per Ultralytics version and export recipe."""
    import hashlib

    asked = subprocess.run([python, "-c", "import ultralytics; print(ultralytics.__version__)"],
                           capture_output=True, text=True, check=True)  # fmt: skip
    # the last word: Ultralytics' first import in a fresh environment announces its settings
    version = asked.stdout.split()[-1]
    recipe = hashlib.sha256(ULTRALYTICS_EXPORTS.read_bytes()).hexdigest()[:8]
    out = CACHE / f"ultralytics-{version}-{recipe}"
    missing = [n for n in names if not all((out / f"{n}.{e}").exists() for e in ("onnx", "json"))]
    if missing:
        # Ultralytics writes the export beside its yaml, in the working directory: a fresh one
        with tempfile.TemporaryDirectory(prefix="yolocli-ul-export-") as cwd:
            made = subprocess.run([python, str(ULTRALYTICS_EXPORTS), "export", str(out), *missing],
                                  cwd=cwd, capture_output=True, text=True, check=False)  # fmt: skip
        if made.returncode != 0 or not all((out / f"{n}.onnx").exists() for n in missing):
            raise RuntimeError(f"exporting {', '.join(missing)} with {python} failed:\n"
                               f"{made.stdout}{made.stderr}")  # fmt: skip
    return out


def families_section(
    report: Report, env: dict[str, str], tiny: Path, root: Path, quick: bool,
    models: Sequence[Path] = (), peer_python: str | None = None, rounds: int = FOLDER_ROUNDS,
) -> None:  # fmt: skip
    """Issue 25, "the same for every model family": each family's ONNX model (default: the
    test models in tests/data/families) from a cold start on the same folder, against the best
    bare ONNX Runtime configuration of that model, in the same interleaved rounds. With
    ``peer_python`` (an environment with ultralytics), also Ultralytics' n-size exports, each
    run by yolocli and by Ultralytics' own ``predict`` (benchmarks/peers/ultralytics_predict.py)
    in the same rounds: issue 25 asks yolocli to beat that peer on its own model."""
    import onnxruntime as ort

    cores = os.cpu_count() or 1
    n, passes, rounds = (6, 6, 1) if quick else (FOLDER, 100, rounds)
    folder = jpeg_folder_of(n, root)
    configs = [(k, cores // k) for k in range(1, cores + 1) if cores % k == 0]
    models = list(models) or sorted(FAMILIES.glob("*.onnx"))
    exports: list[Path] = []
    if peer_python:
        names = ULTRALYTICS_MODELS[:1] if quick else ULTRALYTICS_MODELS
        made = ultralytics_exports(peer_python, names)
        exports = [made / f"{name}.onnx" for name in names]
    sizes = {}
    for model in [*models, *exports]:
        shape = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]
                                     ).get_inputs()[0].shape  # fmt: skip
        sizes[model] = f"{shape[3]}x{shape[2]}"
    # Ultralytics' predict defaults, given to yolocli too on the peer's models: the same boxes
    # kept (the random-weight exports keep hundreds an image), the same work after the network
    ultralytics_keep = ["--conf", "0.25", "--nms", "0.7"]
    peer_env = {k: v for k, v in env.items() if k != "PYTHONPATH"}  # its own environment only
    rates: dict[tuple[Path, int, int] | Path | tuple[Path, str], list[float]] = {}
    boxes: dict[tuple[Path, str], set[int]] = {}
    commands: list[str] = []
    peer_commands: list[str] = []
    for r in range(rounds):
        for model in [*models, *exports]:
            for k, t in configs:
                rates.setdefault((model, k, t), []).append(bare_parallel(
                    "onnxruntime", k, t, passes, tiny, model, root, sizes[model]))  # fmt: skip
            out = root / f"out-family-{model.stem}-{r}"
            keep = ultralytics_keep if model in exports else []
            cmd = cli("detect", str(folder), "--model", str(model), "-f", "jsonl", "-o",
                      str(out), "--no-save", *keep)  # fmt: skip
            wall, _, stdout, _ = measured(cmd, env)
            assert len(stdout.splitlines()) == n
            rates.setdefault(model, []).append(n / wall)
            if r == 0:
                (peer_commands if model in exports else commands).append(shown(cmd))
            shutil.rmtree(out, ignore_errors=True)
            if model not in exports:
                continue
            found = sum(len(json.loads(line)["detections"]) for line in stdout.splitlines())
            boxes.setdefault((model, "yolocli"), set()).add(found)
            assert peer_python
            peer_cmd = [peer_python, str(PEERS / "ultralytics_predict.py"), str(model),
                        str(folder)]  # fmt: skip
            wall, _, stdout, _ = measured(peer_cmd, peer_env)
            # the last line: Ultralytics prints what it loads on stdout before it
            done, found = (int(x) for x in stdout.splitlines()[-1].split()[1::2])
            assert done == n, stdout
            rates.setdefault((model, "peer"), []).append(n / wall)
            boxes.setdefault((model, "peer"), set()).add(found)
            if r == 0:
                peer_commands.append(shown(peer_cmd).replace(peer_python, "ULTRALYTICS_PYTHON"))

    def bound_round(model: Path, r: int) -> float:
        return max(rates[(model, *c)][r] for c in configs)

    def best_bound(model: Path) -> str:
        med = {c: statistics.median(rates[(model, *c)]) for c in configs}
        best = max(med, key=lambda c: med[c])
        return f"{med[best]:.1f} images/s ({best[0]} x {best[1]})"

    lines = ["| model | input | best bare ONNX Runtime (k x threads) | `yolocli detect DIR "
             "--no-save` | share | goal |", "| --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for model in models:
        share = statistics.median(rates[model][r] / bound_round(model, r) for r in range(rounds))
        ok = share >= 0.9
        report.goal(f"{n} photos from a cold start, {model.name}",
                    f"{against(share, 0.9)} of its best bare ONNX Runtime configuration "
                    "(goal 0.9)", ok)  # fmt: skip
        lines.append(f"| {model.name} | {sizes[model]} | {best_bound(model)} | "
                     f"{statistics.median(rates[model]):.1f} images/s | "
                     f"{against(share, 0.9)} | >= 0.9: {'met' if ok else 'NOT met'} |")  # fmt: skip
    if not exports:
        lines.append(FAMILY_TODO)
    text = "\n".join(lines) + (
        f"\n\nMedians of {rounds} interleaved rounds; shares are medians of per-round ratios, "
        "as in section 8. The default models are the test suite's small random-weight models "
        "of each family's real layout (tests/data/families): their forward pass is far "
        "cheaper than a real export's, so the share mostly measures what yolocli does around "
        "it; pass real exports with `--family-model PATH` (repeatable) for the figure that "
        "matters.\n\nCommands:\n\n" + "\n".join(f"    {c}" for c in commands)
    )
    if exports:
        rows = {
            model: PeerRow(
                size=sizes[model],
                best=best_bound(model),
                bound=[bound_round(model, r) for r in range(rounds)],
                ours=rates[model],
                peer=rates[(model, "peer")],
                ours_boxes=boxes[(model, "yolocli")],
                peer_boxes=boxes[(model, "peer")],
            )
            for model in exports
        }
        text += "\n\n" + peer_table(report, n, rows, peer_python or "", peer_commands)
    report.add("9. Every model family: the same folder, each family's own ONNX model", text)


@dataclass(frozen=True)
class PeerRow:
    """One Ultralytics export in section 9: its input, its best bound (text) and, per round,
    the bound's, yolocli's and the peer's images/s; the box counts each found over the folder."""

    size: str
    best: str
    bound: list[float]
    ours: list[float]
    peer: list[float]
    ours_boxes: set[int]
    peer_boxes: set[int]


def peer_table(report: Report, n: int, rows: dict[Path, PeerRow], peer_python: str,
               commands: Sequence[str]) -> str:  # fmt: skip
    """Section 9's second table: yolocli against Ultralytics' own predict on its own exports,
    both as shares of the same bound; sets the goals "beats the peer" and ">= 0.9"."""
    lines = ["| model | input | best bare ONNX Runtime (k x threads) | `yolocli detect DIR "
             "--no-save` | share | Ultralytics `predict` (stream) | share | yolocli / "
             "Ultralytics | boxes found (yolocli, Ultralytics) | goals |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for model, row in rows.items():
        ours, peer = row.ours, row.peer
        share, peer_share = ratios(ours, row.bound), ratios(peer, row.bound)
        beats = ratios(ours, peer)
        ok, beaten = share >= 0.9, beats > 1
        report.goal(f"{n} photos from a cold start, Ultralytics' {model.name}",
                    f"{against(share, 0.9)} of its best bare ONNX Runtime configuration "
                    "(goal 0.9)", ok)  # fmt: skip
        report.goal(f"{n} photos from a cold start, Ultralytics' {model.name}: yolocli beats "
                    "Ultralytics' predict", f"{against(beats, 1)}x its images/s (yolocli "
                    f"{against(share, 0.9)} of the bound, Ultralytics {peer_share:.2f})",
                    beaten)  # fmt: skip
        found = ", ".join(" / ".join(map(str, sorted(b))) for b in (row.ours_boxes, row.peer_boxes))
        lines.append(f"| {model.name} (Ultralytics export, random weights) | {row.size} | "
                     f"{row.best} | {statistics.median(ours):.1f} images/s | "
                     f"{share:.2f} | {statistics.median(peer):.1f} images/s | {peer_share:.2f} "
                     f"| {beats:.2f} | {found} | >= 0.9: {'met' if ok else 'NOT met'}; beats "
                     f"Ultralytics: {'met' if beaten else 'NOT met'} |")  # fmt: skip
    exports = list(rows)
    agree = subprocess.run([sys.executable, str(ULTRALYTICS_EXPORTS), "compare",
                            str(exports[0].parent), *(m.stem for m in exports)],
                           capture_output=True, text=True, check=True, cwd=REPO).stdout  # fmt: skip
    version = subprocess.run([peer_python, "-c", "import ultralytics, onnxruntime, torch; "
                              "print(ultralytics.__version__, onnxruntime.__version__, "
                              "torch.__version__)"], capture_output=True, text=True,
                             check=True).stdout.split()  # fmt: skip
    return (
        f"Ultralytics' own `predict` as the peer (issue 25: yolocli must beat it on its own "
        f"model), on Ultralytics {version[0]}'s n-size exports, ONNX Runtime {version[1]} "
        f"(torch {version[2]}) in the peer's own environment:\n\n"
        + "\n".join(lines)
        + f"\n\nSame {n} JPEG photos and the same interleaved rounds as above; each share is "
        "the median of per-round ratios to that round's best bare ONNX Runtime configuration "
        "of the same model (blobs of the model's input size made in advance), and yolocli / "
        "Ultralytics the median of per-round ratios of their images/s. Both are whole "
        "processes from a cold start (Python start, imports, model load included). The "
        'peer is `YOLO(MODEL, task="detect").predict(DIR, stream=True, verbose=False, '
        'save=False, device="cpu")` with every result consumed, Ultralytics\' defaults '
        "otherwise (conf 0.25, iou 0.7, the export's 640 input, ONNX Runtime as Ultralytics "
        "sets it up); yolocli gets the same conf and IoU so that both keep the same boxes "
        "(their counts over the folder, per round, are in the table), and writes JSON Lines "
        "records, which the peer does not. The exports are Ultralytics' own "
        '`model.export(format="onnx")` of the architecture\'s yaml with random weights '
        "(none can be downloaded here; tools/check_ultralytics_exports.py): the forward pass "
        "costs what a trained model's does, but they keep far more boxes an image (up to "
        "max_det, 300) than a trained model would, so both spend more after the network.\n\n"
        "Same answers: yolocli against Ultralytics' own `predict` on the test photos, at "
        "Ultralytics' defaults (`python tools/check_ultralytics_exports.py compare DIR "
        f"{' '.join(m.stem for m in exports)}`):\n\n{agree.strip()}\n\nCommands (the "
        "exports are made once into the bench cache with `ULTRALYTICS_PYTHON "
        f"tools/check_ultralytics_exports.py export DIR {' '.join(m.stem for m in exports)}`"
        "):\n\n" + "\n".join(f"    {c}" for c in commands)
    )


def tuning_section(report: Report, tiny: Path, quick: bool) -> None:
    """The OpenCV settings yolocli could choose: batch size and threading, measured bare."""
    from concurrent.futures import ThreadPoolExecutor

    cfg = config_dir() / "yolov3-tiny.cfg"
    reps = 1 if quick else 12
    default_threads = cv2.getNumThreads()
    onnx = compiled_onnx(cfg, tiny, 416)

    def net() -> cv2.dnn.Net:
        n = (
            cv2.dnn.readNetFromDarknet(str(cfg), str(tiny))
            if HAS_DARKNET
            else cv2.dnn.readNetFromONNX(str(onnx))
        )
        n.setInput(np.zeros((1, 3, 416, 416), np.float32))
        n.forward(n.getUnconnectedOutLayersNames())
        return n

    def per_image(nets: list[cv2.dnn.Net], batch: int) -> float:
        blob = np.random.default_rng(0).random((batch, 3, 416, 416), dtype=np.float32)

        def work(n: cv2.dnn.Net) -> None:
            names = n.getUnconnectedOutLayersNames()
            for _ in range(reps):
                n.setInput(blob)
                n.forward(names)

        for n in nets:  # warm at this batch size
            n.setInput(blob)
            n.forward(n.getUnconnectedOutLayersNames())
        start = time.perf_counter()
        with ThreadPoolExecutor(len(nets)) as pool:
            list(pool.map(work, nets))
        return (time.perf_counter() - start) / (reps * batch * len(nets))

    nets = [net(), net()]
    rows = []
    for batch in (1, 2, 4, 8):
        rows.append((f"1 network, {default_threads} OpenCV threads, batch {batch}",
                     per_image(nets[:1], batch)))  # fmt: skip
    cv2.setNumThreads(1)
    rows.append(("1 network, 1 OpenCV thread, batch 1", per_image(nets[:1], 1)))
    rows.append(("2 networks on 2 Python threads, 1 OpenCV thread each", per_image(nets, 1)))
    cv2.setNumThreads(default_threads)
    lines = ["| configuration | forward ms/image |", "| --- | --- |"]
    lines += [f"| {name} | {t * 1e3:.1f} |" for name, t in rows]
    best = min(rows, key=lambda row: row[1])
    report.add(
        "Tuning: batch size and threads (yolov3-tiny, 416, bare forward)",
        "\n".join(lines)
        + f"\n\nOpenCV only, its {ENGINE_LABELS[reference_kind()]}; the other engines' batch "
        "sizes are in the Engines table. With `--backend opencv`, yolocli's default is the "
        "first row (batch 1, OpenCV's own thread count); the "
        f"fastest here: {best[0]}, {best[1] * 1e3:.1f} ms. `--batch N` chooses another batch "
        "size (benchmarks/run.py: tuning_section).",
    )


def memory_section(report: Report, env: dict[str, str], root: Path, quick: bool) -> None:
    """Peak RSS of the largest process, short run against long, with one network in the
    process and with worker processes (what `auto` picks for each folder differs, so each
    is measured both ways)."""
    small, large = (3, 12) if quick else (30, 600)
    peaks: dict[tuple[str, int], float] = {}
    cmds = []
    modes = {"one network in the process (-j 1)": "1", "2 worker processes (-j 2)": "2"}
    for mode, j in modes.items():
        for n in (small, large):
            folder = jpeg_folder_of(n, root / "memory")
            cmd = cli("detect", str(folder), "--model", "yolov3-tiny", "-f", "jsonl",
                      "-o", str(root / f"out-memory-{j}-{n}"), "-j", j)  # fmt: skip
            _, rss, _, _ = measured(cmd, env)
            peaks[(mode, n)] = rss / 1024
            cmds.append(shown(cmd))
    lines = [f"| run | {small} images | {large} images | growth |", "| --- | --- | --- | --- |"]
    worst = 0.0
    for mode in modes:
        growth = peaks[(mode, large)] - peaks[(mode, small)]
        worst = max(worst, growth)
        lines.append(f"| {mode} | {peaks[(mode, small)]:.1f} MiB | "
                     f"{peaks[(mode, large)]:.1f} MiB | {growth:+.1f} MiB |")  # fmt: skip
    ok = worst <= 30
    report.goal("peak RSS growth", f"{worst:+.1f} MiB at most, {small} to {large} images "
                f"(goal <= 30)", ok)  # fmt: skip
    report.add(
        "4. Peak memory",
        "\n".join(lines)
        + f"\n\nLargest growth: {worst:+.1f} MiB (goal <= 30 MiB: {'met' if ok else 'NOT met'}). "
        "Peak RSS of the largest single process (wait4(2) of the command, whose worker "
        "processes it has reaped), JPEG photos of six sizes.\n\nCommands:\n\n"
        + "\n".join(f"    {c}" for c in cmds),
    )


def nms_section(report: Report, quick: bool) -> None:
    lines = [
        "| boxes | clusters | kept | cv2.dnn.NMSBoxes | yolocli.ops.nms | ratio | same kept list |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    cases = [(100, 10), (1000, 30), (5000, 60)]
    worst = 0.0
    for n, k in cases:
        xyxy, scores = clustered(n, k, seed=n)
        xywh = xyxy.astype(np.float64)
        xywh[:, 2:] -= xywh[:, :2]
        ours = nms(xyxy, scores, 0.45)
        theirs = np.asarray(cv2.dnn.NMSBoxes(xywh, scores, 0.0, 0.45)).reshape(-1)
        same = ours.tolist() == theirs.tolist()
        reps = 3 if quick else max(5, 20000 // n)
        ours_fn = functools.partial(nms, xyxy, scores, 0.45)
        theirs_fn = functools.partial(cv2.dnn.NMSBoxes, xywh, scores, 0.0, 0.45)
        t_us, t_cv, ratio = paired(
            functools.partial(mean_time, ours_fn, reps),
            functools.partial(mean_time, theirs_fn, reps),
            rounds=3 if quick else 11,
        )
        worst = max(worst, ratio)
        lines.append(f"| {n} | {k} | {len(ours)} | {t_cv * 1e6:.0f} us | {t_us * 1e6:.0f} us | "
                     f"{ratio:.2f} | {'yes' if same else 'NO'} |")  # fmt: skip
        if n >= 1000:  # issue 25: at or under OpenCV's cost from 1,000 boxes up
            report.goal(f"NMS at {n} boxes", f"{against(ratio, 1)}x OpenCV's time (goal <= 1), "
                        f"identical: {same}", same and ratio <= 1)  # fmt: skip
    report.add(
        "5. NMS against OpenCV",
        "\n".join(lines)
        + "\n\nSingle class, IoU 0.45, boxes in k clusters (centers uniform in 1000x1000, sizes "
        "20-200 px, jitter 10% of the size): a detector's raw output around k objects. OpenCV "
        "gets float64 (x, y, w, h) arrays, its fastest input. The two alternate in 11 rounds of "
        "many calls; times are medians, the ratio the median of the rounds' ratios "
        "(benchmarks/run.py: nms_section).",
    )


def moving_scene(n: int, frames: int, seed: int) -> list[tuple[float, Detections]]:
    """``n`` objects moving at constant velocity in a 1920x1080 frame at 30 fps, as a
    detector reports them: 3 px of jitter, 10% missed, scores uniform in [0.1, 1]."""
    rng = np.random.default_rng(seed)
    pos = rng.uniform([0, 0], [1800, 960], (n, 2))
    vel = rng.uniform(-3, 3, (n, 2))
    size = rng.uniform([30, 60], [90, 180], (n, 2))
    scene = []
    for f in range(frames):
        xy = pos + f * vel
        xyxy = np.concatenate([xy, xy + size], axis=1) + rng.uniform(-3, 3, (n, 4))
        keep = rng.random(n) >= 0.1
        dets = Detections(
            xyxy[keep], rng.uniform(0.1, 1.0, int(keep.sum())), np.zeros(int(keep.sum()))
        )
        scene.append((f / 30, dets))
    return scene


def tracking_section(report: Report, quick: bool) -> None:
    """Tracker cost per frame (yolocli.tracking), and its scores on the TUD sequences."""
    from yolocli.tracking import ByteTrack, LineCounter, Sort, ZoneCounter

    lines = ["| tracker | objects | median ms/frame | p95 ms/frame | + a line and a zone |",
             "| --- | --- | --- | --- | --- |"]  # fmt: skip
    frames = 60 if quick else 600
    for name, make in (("bytetrack", ByteTrack), ("sort", Sort)):
        for n in (10, 50, 200):
            scene = moving_scene(n, frames, seed=n)
            times, counted = [], []
            for with_counters in (False, True):
                tracker = make()
                line = LineCounter((960, 0), (960, 1080))
                zone = ZoneCounter([(0, 0), (960, 0), (960, 1080), (0, 1080)])
                spent = []
                for t, dets in scene:
                    start = time.perf_counter()
                    out = tracker.update(dets, t)
                    if with_counters:
                        line.update(out)
                        zone.update(out)
                    spent.append(time.perf_counter() - start)
                (counted if with_counters else times).extend(spent[10:])  # after warm-up
            med = statistics.median(times) * 1e3
            p95 = float(np.percentile(times, 95)) * 1e3
            both = statistics.median(counted) * 1e3
            lines.append(f"| {name} | {n} | {med:.3f} | {p95:.3f} | {both:.3f} |")
            if n == 50:
                report.goal(f"{name} cost per frame at 50 objects", f"{med:.3f} ms (p95 {p95:.3f})",
                            med < 1.0)  # fmt: skip
    report.add(
        "Tracking: cost per frame",
        "\n".join(lines)
        + f"\n\n{frames} frames of n objects moving at constant velocity in 1920x1080 at 30 "
        "fps, with 3 px jitter, 10% missed and scores uniform in [0.1, 1] "
        "(benchmarks/run.py: moving_scene); the time of `update(detections, timestamp)` per "
        "frame after 10 frames of warm-up, and in the last column with a LineCounter and a "
        "ZoneCounter updated too. One process, one thread (`python benchmarks/run.py --only "
        "tracking`).",
    )


def cold_section(report: Report, env: dict[str, str], tiny: Path, quick: bool) -> None:
    image = IMAGES / "motorcycle_left.png"
    cfg = config_dir() / "yolov3-tiny.cfg"
    auto = BACKEND_KIND[engines.resolve("auto", "cpu")]
    cmds = {
        "auto": cli("detect", str(image), "--model", "yolov3-tiny", "--no-save"),
        "opencv": cli("detect", str(image), "--model", "yolov3-tiny", "--backend", "opencv",
                      "--no-save"),
        # OpenCV 5 has no darknet importer: the script reads the graph yolocli export writes
        "minimal": [sys.executable, str(PEERS / "minimal_cold.py"),
                    *(map(str, (cfg, tiny)) if HAS_DARKNET
                      else [str(compiled_onnx(cfg, tiny, 416))]), str(image)],
    }  # fmt: skip
    runs = 1 if quick else 11
    # yolocli's modules run from their bytecode, as installed by pip (`byte_compiled`)
    for cmd in cmds.values() if not quick else ():  # caches the compiled graph, warms the
        measured(cmd, env)  # page cache (--quick checks only the machinery)
    times = interleaved({k: (lambda c=c: measured(c, env)[0]) for k, c in cmds.items()}, runs)
    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = ratios(times["auto"], times["minimal"])
    like = ratios(times["opencv"], times["minimal"])
    ok = ratio <= 1.25
    report.goal("cold start", f"{against(ratio, 1.25)}x the minimal script (goal <= 1.25); "
                f"{like:.2f}x with --backend opencv", ok)  # fmt: skip
    engine = ENGINE_LABELS[reference_kind()]
    report.add(
        "6. Cold start, one image",
        f"| command | engine | median of {runs} | ratio to the minimal script |\n"
        "| --- | --- | --- | --- |\n"
        f"| `{shown(cmds['auto'])}` | {ENGINE_LABELS[auto]} (auto) | {med['auto'] * 1e3:.0f} ms "
        f"| {ratio:.2f} |\n"
        f"| `{shown(cmds['opencv'])}` | {engine} | {med['opencv'] * 1e3:.0f} ms | {like:.2f} |\n"
        f"| minimal cv2 script (benchmarks/peers/minimal_cold.py) | {engine} | "
        f"{med['minimal'] * 1e3:.0f} ms | 1.00 |\n\n"
        f"Ratios: the median of the {runs} interleaved rounds' ratios (goal <= 1.25 for the "
        f"default: {'met' if ok else 'NOT met'}). In a full run, all after one untimed run "
        "each (which also caches the compiled graph in the store), with yolocli's modules "
        "byte-compiled, as a pip-installed yolocli has them. The default backend pays for "
        "importing its engine (ONNX Runtime or OpenVINO) on top of OpenCV, which yolocli always "
        "imports.",
    )


def engines_section(report: Report, tiny: Path, quick: bool) -> dict[str, float]:
    """Forward ms/image of every engine on the same blobs, batch 1 and the best batch;
    returns each engine's yolov3-tiny batch-1 ms (for the README's summary)."""
    kinds = engine_kinds()
    ref = reference_kind()
    v3 = config_dir() / "yolov3.cfg"
    tiny_cfg = config_dir() / "yolov3-tiny.cfg"
    if quick:
        models = [("yolov3-tiny", tiny_cfg, tiny, 416, (1, 2))]  # yolov3's loads take seconds
        rounds, budget = 1, 0.02
    else:  # yolov3 at batch 8: 5-10 s a pass on two cores, no gain in earlier runs
        models = [("yolov3-tiny", tiny_cfg, tiny, 416, (1, 2, 4, 8)),
                  ("yolov3 (random weights)", v3, None, 416, (1, 2, 4)),
                  ("yolov3 (random weights)", v3, None, 608, (1, 2, 4))]  # fmt: skip
        rounds, budget = 5, 0.25
    head = " | ".join(ENGINE_LABELS[k] for k in kinds)
    lines = [
        f"| model | size | batch | {head} |",
        "| --- | --- | --- |" + " --- |" * len(kinds),
    ]
    summary: dict[str, float] = {}
    for name, cfg, weights, size, batches in models:
        weights = weights or random_v3_weights()
        onnx = compiled_onnx(cfg, weights, size)
        # One network per engine and batch size: OpenCV sets a network up again whenever the
        # input shape changes, and every (engine, batch) pair alternates within each round.
        runs: dict[tuple[str, int], Callable[[], float]] = {}
        for batch in batches:
            blob = np.concatenate(photo_blobs(size, batch))
            for k in kinds:
                run = bare_engine(k, cfg, weights, lambda o=onnx: o)
                run(blob)  # the first pass sets the engine up: not timed
                reps = max(1, round(budget / (timed(run, [blob]) * batch)))
                runs[k, batch] = functools.partial(timed, run, [blob], reps)
        times = interleaved(runs, rounds)
        del runs
        med = {key: statistics.median(v) for key, v in times.items()}
        best_batch = {k: min(batches, key=lambda b, k=k: med[k, b]) for k in kinds}
        row1 = []
        rowb = []
        for k in kinds:
            r1 = ratios(times[k, 1], times[ref, 1])
            row1.append(f"{med[k, 1] * 1e3:.1f} ({spread(times[k, 1])}), x{r1:.2f}")
            best = best_batch[k]
            rb = ratios(times[k, best], times[ref, 1])
            rowb.append(f"{med[k, best] * 1e3:.1f} at batch {best}, x{rb:.2f}")
            if name == "yolov3-tiny":
                summary[k] = med[k, 1]
        lines.append(f"| {name} | {size} | 1 | " + " | ".join(row1) + " |")
        lines.append(f"| {name} | {size} | best of {batches} | " + " | ".join(rowb) + " |")
    report.add(
        "Engines: forward ms/image",
        "\n".join(lines)
        + f"\n\nEach cell: the median ms/image of {rounds} interleaved rounds (every engine "
        "and batch size once per round, the order rotating each round), the spread "
        "(fastest-slowest round) in brackets, and the ratio to "
        f"{ENGINE_LABELS[ref]} at batch 1, the median of the per-round ratios. fp32, 2 "
        "threads each (OpenCV's process-wide setting, ONNX Runtime's intra-op threads, "
        "OpenVINO's INFERENCE_NUM_THREADS and LATENCY hint); the same letterboxed test "
        "photos as blobs made before the clock starts; one network per engine and batch "
        "size, each given one untimed pass first. yolov3 runs random weights of its real "
        "layout (speed does not depend on the values). Every engine except OpenCV's "
        "darknet importer runs the graph `yolocli export` writes "
        "(families.darknet.compiler.compile_onnx).\n\nCode: benchmarks/run.py: engines_section, "
        "bare_engine (the same settings as yolocli/engines/).",
    )
    return summary


def backends_section(report: Report, env: dict[str, str], root: Path, quick: bool) -> None:
    """`yolocli detect DIR` end to end with ``--backend auto`` and each explicit backend."""
    n, rounds = (6, 1) if quick else (96, 3)
    folder = jpeg_folder_of(n, root / "backends")
    backends = ["auto"] + [b for b in ("opencv", "onnxruntime", "openvino") if engines.installed(b)]
    cmds = {b: cli("detect", str(folder), "--model", "yolov3-tiny", "--backend", b, "--no-save",
                   "-f", "jsonl", "-o", str(root / f"out-backend-{b}"))
            for b in backends}  # fmt: skip

    def wall(b: str) -> float:
        seconds, _, stdout, _ = measured(cmds[b], env)
        assert len(stdout.splitlines()) == n
        return seconds / n

    times = interleaved({b: functools.partial(wall, b) for b in backends}, rounds)
    auto = engines.resolve("auto", "cpu")
    lines = ["| --backend | engine | images/s | ms/image (spread) | ratio to opencv |",
             "| --- | --- | --- | --- | --- |"]  # fmt: skip
    for b in backends:
        m = statistics.median(times[b])
        kind = BACKEND_KIND[auto if b == "auto" else b]
        ratio = ratios(times[b], times["opencv"])
        lines.append(f"| {b} | {ENGINE_LABELS[kind]} | {1 / m:.1f} | {m * 1e3:.1f} "
                     f"({spread(times[b])}) | {ratio:.2f} |")  # fmt: skip
    report.add(
        f"Engines: `yolocli detect` folder throughput by backend, yolov3-tiny at 416, {n} JPEG "
        "photos",
        "\n".join(lines)
        + f"\n\n`auto` chose {auto} here (AUTO_ORDER {engines.AUTO_ORDER}). Whole-process "
        f"wall clock (start, imports, model load included), medians of {rounds} interleaved "
        "rounds, ratio = the median of the per-round ratios to `--backend opencv`; the engine "
        "uses every core (no --threads).\n\nCommands:\n\n"
        + "\n".join(f"    {shown(c)}" for c in cmds.values()),
    )


class SwappedEngine:
    """An engine answering like yolocli's, for a session yolocli does not make itself."""

    def __init__(self, run: Runner, name: str) -> None:
        self.run, self.name = run, name

    def forward(self, blobs: np.ndarray) -> list[np.ndarray]:
        out = self.run(np.ascontiguousarray(blobs, dtype=np.float32))
        if isinstance(out, dict) or hasattr(out, "values"):  # OpenVINO's result
            out = list(out.values())
        return [np.asarray(o, dtype=np.float32) for o in out]  # type: ignore[union-attr]


def reference_match(det: object) -> tuple[int, int, float]:
    """(reference detections found with the same class at IoU >= 0.5, how many there are,
    the worst score difference among those found) for ``det`` on the six reference photos."""
    import json

    from yolocli.ops import box_iou

    found = total = 0
    worst = 0.0
    for path in sorted(REFERENCES.glob("*.json")):
        ref = json.loads(path.read_text())
        got = det.detect(cv2.imread(str(IMAGES / ref["image"])))  # type: ignore[attr-defined]
        used: set[int] = set()
        for d in ref["detections"]:
            total += 1
            if len(got) == 0:
                continue
            iou = box_iou(np.array([d["box_xyxy"]]), got.xyxy)[0]
            ok = [i for i in np.argsort(-iou) if iou[i] >= 0.5
                  and int(got.class_ids[i]) == d["class_id"] and int(i) not in used]  # fmt: skip
            if ok:
                used.add(int(ok[0]))
                found += 1
                worst = max(worst, abs(float(got.scores[ok[0]]) - d["score"]))
    return found, total, worst


def quantized_int8(det: object) -> Path:
    """The int8 graph `yolocli detect --precision int8` runs (yolocli.engines.precision: ONNX
    Runtime's static QDQ, per-channel), calibrated on the six test photos, from the store."""
    import dataclasses

    from yolocli.engines.precision import calibration_images

    photos = calibration_images(sorted(IMAGES.iterdir()))
    plan = dataclasses.replace(det.plan, precision="int8", calibration=photos)  # type: ignore[attr-defined]
    return Path(plan.compiled())


def val_costs(env: dict[str, str], root: Path, precisions: Sequence[str]) -> list[str]:
    """Table rows: what `yolocli val` says on the six test photos (ground truth: the reference
    darknet's own detections) for each of ``precisions``."""
    import json

    from tests.test_evaluate import yolo_dataset

    data = yolo_dataset(root / "val-data")
    rows = []
    for precision in precisions:
        cmd = cli(
            "val", str(data), "--model", "yolov3-tiny", "--precision", precision, "-f", "json"
        )
        result = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
        doc = json.loads(result.stdout)
        rows.append(f"| `{shown(cmd)}` | {precision} | {doc['map']:.3f} | {doc['map50']:.3f} | "
                    f"{doc['map75']:.3f} | {doc['mar100']:.3f} |")  # fmt: skip
    return rows


def precision_section(
    report: Report, env: dict[str, str], store: Store, root: Path, quick: bool
) -> None:
    """`--precision int8` and `bf16` against fp32 on the same engine: speed, what happens to
    the reference detections, and what `yolocli val` says. Opt-in: yolocli runs fp32."""
    from yolocli.detector import Detector
    from yolocli.postprocess import Postprocess

    size = 416
    rounds, budget = (1, 0.02) if quick else (5, 0.4)
    post = Postprocess(conf=0.1, nms=0.45)  # the reference files' thresholds
    variants: list[tuple[str, str, str, str]] = []  # (engine, precision, kind, precision arg)
    det = None
    for backend in ("onnxruntime", "openvino"):
        if engines.installed(backend):
            det = det or Detector("yolov3-tiny", backend=backend, threads=THREADS, store=store,
                                  postprocess=post)  # fmt: skip
    if det is None:
        report.add("Reduced precision (opt-in: --precision int8, bf16)", "Neither ONNX "
                   "Runtime nor OpenVINO is installed here: nothing to measure.")  # fmt: skip
        return
    onnx = det.compiled()
    cfg, weights = det.info.cfg, det.info.weights
    if engines.installed("onnxruntime"):
        int8 = quantized_int8(det)
        variants += [
            ("ONNX Runtime", "fp32", "onnxruntime", "f32"),
            ("ONNX Runtime", "int8 static (QDQ, per-channel)", "onnxruntime", str(int8)),
        ]
    from yolocli.engines.devices import cpu_flags

    bf16_here = bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})
    if engines.installed("openvino") and bf16_here:
        variants += [
            ("OpenVINO", "fp32", "openvino", "f32"),
            ("OpenVINO", "bf16 (INFERENCE_PRECISION_HINT)", "openvino", "bf16"),
        ]
    runners = {v: bare_engine(v[2], cfg, weights, lambda: onnx, v[3]) for v in variants}
    blobs = photo_blobs(size, 6)
    reps = {}
    for v, run in runners.items():
        run(blobs[0])
        reps[v] = max(1, round(budget / (timed(run, blobs) * 6)))
    times = interleaved({v: functools.partial(timed, runners[v], blobs, reps[v])
                         for v in variants}, rounds)  # fmt: skip
    lines = ["| engine | precision | forward ms/image (spread) | ratio to fp32 | reference "
             "detections found | worst score difference |",
             "| --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for v in variants:
        engine, precision, kind, _ = v
        fp32 = next(w for w in variants if w[2] == kind and w[1] == "fp32")
        det.engine = SwappedEngine(runners[v], f"{engine} {precision}")
        found, total, worst = reference_match(det)
        lines.append(f"| {engine} | {precision} | {statistics.median(times[v]) * 1e3:.1f} "
                     f"({spread(times[v])}) | {ratios(times[v], times[fp32]):.2f} | "
                     f"{found} of {total} | {worst:.3f} |")  # fmt: skip
    ov_note = ""
    if engines.installed("openvino"):
        import openvino as ov

        core = ov.Core()
        chosen = core.compile_model(str(onnx), "CPU").get_property("INFERENCE_PRECISION_HINT")
        caps = core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
        ov_note = (
            f" OpenVINO's CPU plugin, left to itself, infers in {chosen} here "
            f"(capabilities: {', '.join(map(str, caps))}); yolocli asks for f32 unless "
            "`--precision bf16`."
        )
    val_rows = val_costs(env, root, ["fp32"] + [p for p, ok in (
        ("int8", engines.installed("onnxruntime")),
        ("bf16", engines.installed("openvino") and bf16_here)) if ok])  # fmt: skip
    report.add(
        "Reduced precision (opt-in: --precision int8, bf16)",
        "\n".join(lines)
        + f"\n\nyolov3-tiny (real weights) at {size}, batch 1, 2 threads, the six test photos "
        f"as blobs; medians of {rounds} interleaved rounds, ratio = median of per-round ratios "
        "to fp32 on the same engine. Detections: yolocli's own decoding and NMS (conf 0.1, "
        "NMS 0.45, as the references) on the engine's raw heads; a reference detection "
        "counts as found if one of the same class overlaps it at IoU >= 0.5; the score "
        "difference is taken over those found. int8: onnxruntime.quantization.quantize_static, "
        "QDQ, per-channel, int8 weights and activations, calibrated (MinMax) on the six test "
        f"photos: the graph `--precision int8` runs (yolocli.engines.precision).{ov_note}"
        + (
            ""
            if bf16_here
            else " bf16: not measured, this CPU has neither avx512_bf16 nor "
            "amx_bf16 (`--precision bf16` refuses to run here)."
        )
        + "\n\nWhat `yolocli val` says on the six test photos, the ground truth being the "
        "reference darknet's own detections (so fp32 is near 1 by construction, and the loss "
        "is what the precision costs); int8 calibrated on the same six photos:\n\n"
        "| command | precision | mAP@0.5:0.95 | mAP@0.5 | mAP@0.75 | AR@100 |\n"
        "| --- | --- | --- | --- | --- | --- |\n"
        + "\n".join(val_rows)
        + "\n\nCode: benchmarks/run.py: precision_section, val_costs.",
    )


# ------------------------------------------------------------------------------ main


def ray_node(*args: str) -> subprocess.Popen[bytes]:
    """``ray start --block ARGS`` in a process group of its own (stopped with `stop_node`)."""
    ray_cli = Path(sys.executable).parent / "ray"
    cmd = [str(ray_cli), "start", "--block", "--disable-usage-stats", *args]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip


def stop_node(node: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the node's process group, then SIGKILL to what is left of it (Ray's GCS
    server may outlive `ray start --block`)."""
    import signal

    with contextlib.suppress(ProcessLookupError):
        os.killpg(node.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        node.wait(timeout=20)
    time.sleep(2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(node.pid, signal.SIGKILL)
    node.wait()


def wait_for_cpus(address: str, cpus: int, env: dict[str, str]) -> None:
    probe = (
        "import sys, time, yolocli.ray\nyolocli.ray.connect(sys.argv[1])\nimport ray\n"
        "t = time.time()\nwhile ray.cluster_resources().get('CPU', 0) < int(sys.argv[2]):\n"
        "    assert time.time() - t < 120, ray.cluster_resources()\n    time.sleep(0.5)\n"
    )
    deadline = time.monotonic() + 180  # a loaded machine starts a head slowly
    while True:
        got = subprocess.run([sys.executable, "-c", probe, address, str(cpus)], env=env,
                             timeout=300, capture_output=True, text=True, check=False)  # fmt: skip
        if got.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the Ray cluster at {address} did not come up:\n{got.stderr}")
        time.sleep(2)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def ray_cluster(cpus_per_node: Sequence[int], env: dict[str, str]) -> Iterator[str]:
    """A Ray cluster on this machine; yields the head's address. One node: `ray start --head`,
    as the README's recipe. More: `ray.cluster_utils.Cluster` (a second `ray start` on the
    same host does not join), nodes as separate processes all the same."""
    if len(cpus_per_node) > 1:
        from ray.cluster_utils import Cluster

        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": cpus_per_node[0]})
        try:
            for cpus in cpus_per_node[1:]:
                cluster.add_node(num_cpus=cpus)
            cluster.wait_for_nodes()
            yield cluster.address
        finally:
            cluster.shutdown()
        return
    port = free_port()
    address = f"127.0.0.1:{port}"
    node = ray_node("--head", f"--port={port}", f"--num-cpus={cpus_per_node[0]}",
                    "--include-dashboard=false")  # fmt: skip
    try:
        wait_for_cpus(address, cpus_per_node[0], env)
        yield address
    finally:
        stop_node(node)


def ray_section(report: Report, env: dict[str, str], root: Path, quick: bool) -> None:
    """Issue 24: `yolocli detect DIR --ray HOST:PORT` against yolocli's own default run on
    the same JPEG folder (records compared), one simulated node against two, and a paper
    estimate for 20 million images from the per-core rate measured here.

    Each cluster runs the job twice: a cluster's first Ray Data job also starts Ray Data's
    own helper actors (statistics, autoscaling, actor locations, usage: four Python processes
    that live as long as the cluster), which a cluster that has run a job before already has.
    The default run is measured right before each Ray run, and each share is of that pair."""
    try:
        import ray  # noqa: F401
    except ImportError:
        report.add("Ray: the same detector on a cluster", "Not measured: Ray is not installed "
                   "(pip install 'yolocli[ray]').")  # fmt: skip
        return
    n = 12 if quick else 600
    folder = jpeg_folder_of(n, root)
    base = ["detect", str(folder), "--model", "yolov3-tiny", "-f", "jsonl", "--no-save", "-q"]
    local = cli(*base)
    reference = measured(local, env)[2]  # untimed: warms the page cache and the store
    assert len(reference.splitlines()) == n
    # (layout, cluster, job, Ray's images/s, the default run's just before, its ratio)
    rows: list[tuple[str, str, str, float, float]] = []
    commands = [shown(local) + "    # the default run, before each Ray run"]
    layouts = [("one node of 2 CPUs", [2])] if quick else [
        ("one node of 2 CPUs", [2]), ("one node of 1 CPU", [1]), ("two nodes of 1 CPU", [1, 1]),
    ]  # fmt: skip
    for label, cpus in layouts:
        # ray.cluster_utils clusters run without the token authentication `ray start` turns on
        run_env = {**env, "RAY_AUTH_MODE": "disabled"} if len(cpus) > 1 else env
        with ray_cluster(cpus, env) as address:
            cmd = cli(*base, "--ray", address)
            for job in ("first job", "a later job"):
                own = n / measured(local, env)[0]
                wall, _, stdout, stderr = measured(cmd, run_env)
                if stdout != reference:
                    raise RuntimeError(f"{shown(cmd)}: the records differ from the local "
                                       f"run's:\n{stderr}")  # fmt: skip
                rows.append((label, " + ".join(f"{c} CPU" for c in cpus), job, n / wall, own))
                print(rows[-1], flush=True)
        made = (
            f"ray start --head --num-cpus {cpus[0]}"
            if len(cpus) == 1
            else "ray.cluster_utils.Cluster: " + ", ".join(f"a node of {c} CPU" for c in cpus)
        )
        commands.append(f"{shown(cmd)}    # {label}: {made}")  # fmt: skip
    lines = ["| cluster | nodes | job | `--ray` images/s | default run images/s (just before) "
             "| share |", "| --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for label, cluster, job, rate, own in rows:
        lines.append(f"| {label} | {cluster} | {job} | {rate:.2f} | {own:.2f} | "
                     f"{rate / own:.2f} |")  # fmt: skip
    first, later = rows[0][3] / rows[0][4], rows[1][3] / rows[1][4]
    report.goal(f"Ray, {n} photos, one node of 2 CPUs, a later job",
                f"{later:.2f} of yolocli's default run (goal 0.8); the cluster's first job "
                f"{first:.2f}", later >= 0.8)  # fmt: skip
    text = "\n".join(lines)
    if not quick:
        one = rows[3][3]  # one node of 1 CPU, a later job
        two = rows[5][3]  # two nodes of 1 CPU, a later job
        per_core = two / 2
        text += (f"\n\nScaling from one node of 1 CPU to two (later jobs): {two / one:.2f}x "
                 f"(ideal 2.0). Per-core rate on the two-node cluster: {per_core:.2f} "
                 "images/s.\n\nPaper estimate, 20 million images on N nodes of 16 cores, at "
                 "that per-core rate and at the quiet-machine rate of section 8 (35.1 images/s "
                 "on 2 cores, 17.6 a core), assuming linear scaling and object storage that "
                 "keeps up:\n\n"
                 "| nodes (16 cores) | hours at the rate measured here | hours at 17.6/core |\n"
                 "| --- | --- | --- |\n")  # fmt: skip
        for nodes in (1, 10, 50, 100):
            hours = [20e6 / (rate * 16 * nodes) / 3600 for rate in (per_core, 17.6)]
            text += f"| {nodes} | {hours[0]:.1f} | {hours[1]:.1f} |\n"
    report.add(
        f"Ray: the same detector on a cluster, {n} JPEG photos",
        text + "\n\nEach figure is the whole `yolocli detect` process against a cluster "
        "started beforehand (`ray start`, as the README's recipe), connecting included; every "
        "Ray run's JSON Lines are checked equal to the default run's. A cluster's first job "
        "also starts Ray Data's own helper actors (four Python processes that then live as long "
        "as the cluster); later jobs find them running. One round each: the clusters take "
        "minutes to start and stop.\n\nCommands:\n\n" + "\n".join(f"    {c}" for c in commands),
    )


def jpeg_decoder() -> str:
    """simplejpeg's version (yolocli decodes plain JPEGs with it), or that OpenCV decodes them."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"simplejpeg {version('simplejpeg')}"
    except PackageNotFoundError:  # yolocli falls back to OpenCV
        return "no simplejpeg (OpenCV decodes every JPEG)"


def byte_compiled() -> str:
    """Byte-compile yolocli's modules, as `pip install` leaves an installed package, and say
    so. The runs import yolocli from this checkout (PYTHONPATH), and where no process may
    write ``__pycache__`` (PYTHONDONTWRITEBYTECODE, set on these machines, or a read-only
    checkout) every run would compile its modules from source: 0.1-0.15 s of a cold start
    here (its imports, 0.2-0.25 s with the bytecode), which no installed yolocli pays."""
    import compileall

    if compileall.compile_dir(REPO / "yolocli", quiet=1):
        return "byte-compiled, as an install leaves it"
    return "NOT byte-compiled (its modules could not be compiled: each run compiles them)"


def machine(yolocli_build: str) -> str:
    """The header's lines on this machine; ``yolocli_build``: how yolocli runs (`byte_compiled`)."""
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from yolocli import __version__
    from yolocli.engines.devices import cpu_flags

    flags = cpu_flags()
    shown_flags = [f for f in SIMD_FLAGS if f in flags] or [
        "(none of " + ", ".join(SIMD_FLAGS) + ")"
    ]
    return (
        f"- date: {datetime.date.today().isoformat()}\n"
        f"- machine: {cpu}, {os.cpu_count()} logical cores, "
        f"{platform.system()} {platform.release()}\n"
        f"- Python {platform.python_version()}, {versions()} "
        f"(OpenCV: {cv2.getNumThreads()} threads), NumPy {np.__version__}, {jpeg_decoder()}, "
        f"yolocli {__version__} ({yolocli_build})\n"
        f"- CPU flags that change the forward pass: {' '.join(shown_flags)}\n"
        f"- load average at the start: {load_average()}"
    )


# What the engines' kernels use: AVX2/FMA everywhere, AVX-512 and VNNI for int8, BF16/AMX.
SIMD_FLAGS = (
    "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl",
    "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8",
)  # fmt: skip


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


GOALS = (
    "workers",
    "families",
    "cold",
    "memory",
    "nms",
    "precision",
)  # the sections issue 25 judges
SECTIONS = ("stages", "throughput", "workers", "families", "memory", "nms", "tuning", "cold",
            "engines", "backends", "precision", "tracking", "ray")  # fmt: skip
OPTIONAL = ("ray",)  # run with --only: they need an extra (and minutes)


def shown_args(args: argparse.Namespace) -> str:
    """The options that change what a run measures, as typed (not --output)."""
    words = [" --quick"] if args.quick else []
    if args.only:
        words.append(" --only " + " ".join(args.only))
    if args.rounds != FOLDER_ROUNDS:
        words.append(f" --rounds {args.rounds}")
    return "".join(words)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: check the machinery only")
    parser.add_argument(
        "--output", type=Path, default=Path(__file__).resolve().parent / "RESULTS.md"
    )
    parser.add_argument(
        "--only", nargs="+", choices=(*SECTIONS, "goals"),
        help="run these sections only (default: all); goals: those that judge issue 25's goals "
        f"({', '.join(GOALS)})",
    )  # fmt: skip
    parser.add_argument(
        "--family-model", type=Path, action="append", default=[], metavar="ONNX",
        help="an ONNX model of another family for section 9 (repeatable; default: the test "
        "models in tests/data/families)",
    )  # fmt: skip
    parser.add_argument(
        "--ultralytics-python", metavar="PATH",
        help="the python of an environment with ultralytics (and torch, onnxruntime): section 9 "
        "then exports Ultralytics' n-size models with it and runs Ultralytics' own predict on "
        "them as a peer (benchmarks/peers/ultralytics_predict.py)",
    )  # fmt: skip
    parser.add_argument(
        "--rounds", type=int, default=FOLDER_ROUNDS, metavar="N",
        help=f"interleaved rounds of the folder runs, sections 8 and 9 (default {FOLDER_ROUNDS}; "
        "more rounds, steadier medians, longer runs)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    only = list(dict.fromkeys(s for o in args.only or () for s in (GOALS if o == "goals" else [o])))
    at_start = machine(byte_compiled())  # (its load average is the one before the run)
    print(at_start, flush=True)

    home = os.environ.get("YOLOCLI_HOME") or str(REPO / "weights")
    env = {**os.environ, "YOLOCLI_HOME": home, "PYTHONPATH": str(REPO)}
    store = Store.from_env({"YOLOCLI_HOME": home})
    tiny = store.ensure(load_registry().get("yolov3-tiny").weights)
    env["YOLOCLI_OFFLINE"] = "1"
    report = Report()
    global WORKDIR
    with tempfile.TemporaryDirectory(prefix="yolocli-bench-") as tmp:
        root = Path(tmp)
        WORKDIR = tmp
        v3_weights = random_v3_weights()
        sections: dict[str, Callable[[], object]] = {
            "stages": lambda: stages_section(report, env, tiny, v3_weights, root, args.quick),
            "throughput": lambda: throughput_section(report, env, tiny, root, args.quick),
            "workers": lambda: workers_section(report, env, tiny, root, args.quick, args.rounds),
            "families": lambda: families_section(
                report,
                env,
                tiny,
                root,
                args.quick,
                args.family_model,
                args.ultralytics_python,
                args.rounds,
            ),
            "memory": lambda: memory_section(report, env, root, args.quick),
            "nms": lambda: nms_section(report, args.quick),
            "tuning": lambda: tuning_section(report, tiny, args.quick),
            "cold": lambda: cold_section(report, env, tiny, args.quick),
            "engines": lambda: engines_section(report, tiny, args.quick),
            "backends": lambda: backends_section(report, env, root, args.quick),
            "precision": lambda: precision_section(report, env, store, root, args.quick),
            "tracking": lambda: tracking_section(report, args.quick),
            "ray": lambda: ray_section(report, env, root, args.quick),
        }
        for key in only or [s for s in sections if s not in OPTIONAL]:
            start = time.perf_counter()
            sections[key]()
            print(f"({time.perf_counter() - start:.1f} s)", flush=True)

    goals = "\n".join(
        f"| {name} | {value} | {'met' if ok else 'NOT met'} |" for name, value, ok in report.goals
    )
    text = (
        "# yolocli benchmark results\n\n"
        f"Written by `python benchmarks/run.py{shown_args(args)}`.\n\n"
        f"{at_start}\n\n## Goals\n\n| goal | measured | |\n| --- | --- | --- |\n{goals}\n\n"
        + "\n".join(report.sections)
    )
    args.output.write_text(text)
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
