"""Measure yolocli side by side with OpenCV's bare forward pass and a peer script.

    python benchmarks/run.py            # the full set, a few minutes; writes benchmarks/RESULTS.md
    python benchmarks/run.py --quick    # tiny sizes, seconds: checks the machinery (tests use it)

Every figure is written with the command (or code) that produced it. The real yolov3-tiny
weights come through yolocli's store (YOLOCLI_HOME, else this checkout's weights/); yolov3
runs on random weights of the right layout, since its speed does not depend on the values.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from tests.clusters import clustered  # noqa: E402
from yolocli import darknet  # noqa: E402
from yolocli.ops import nms  # noqa: E402
from yolocli.registry import config_dir, load_registry  # noqa: E402
from yolocli.store import Store  # noqa: E402

IMAGES = REPO / "tests" / "data" / "images"
PEERS = Path(__file__).resolve().parent / "peers"


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


def bare_forward(
    cfg: Path, weights: Path, images: list[Path], size: int, repeats: int = 1
) -> float:
    """Seconds per image of OpenCV's forward pass alone, on blobs made in advance, warm."""
    net = cv2.dnn.readNetFromDarknet(str(cfg), str(weights))
    names = net.getUnconnectedOutLayersNames()
    blobs = [
        cv2.dnn.blobFromImage(cv2.imread(str(p)), 1 / 255, (size, size), swapRB=True)
        for p in images
    ]
    net.setInput(blobs[0])
    net.forward(names)  # the first pass sets the network up; not part of the bound
    start = time.perf_counter()
    for _ in range(repeats):
        for blob in blobs:
            net.setInput(blob)
            net.forward(names)
    return (time.perf_counter() - start) / (len(blobs) * repeats)


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
        "\n".join(lines)
        + "\n\nEach cell is CPU time on the stage's thread (what the stage costs), then wall "
        "time in brackets (which also counts waiting for a core while the forward pass holds "
        "both). The forward pass runs on OpenCV's own threads: wall time only. Stages overlap "
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
    n, rounds = (12, 1) if quick else (240, 3)
    cfg = config_dir() / "yolov3-tiny.cfg"
    folders = {
        "JPEG photos": jpeg_folder_of(n, root),
        "the six test photos as they are (4 PNG, 2 JPEG)": folder_of(n, root),
    }
    goals = {"--no-save": 0.9, "annotated images saved": 0.8}
    lines = [
        "| images | run | images/s | ms/image | share of the bound | goal |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    commands: list[str] = []
    for kind, folder in folders.items():
        images = sorted(folder.iterdir())
        times: dict[str, list[float]] = {"bound": [], **{k: [] for k in goals}, "peer": []}
        for r in range(rounds):  # interleaved, so drifts in machine load hit every row alike
            times["bound"].append(bare_forward(cfg, tiny, images[: n // 2], 416))
            for label, extra in (("--no-save", ["--no-save"]), ("annotated images saved", [])):
                out = root / f"out-throughput-{len(commands)}-{r}"
                cmd = cli("detect", str(folder), "--model", "yolov3-tiny", "-f", "jsonl",
                          "-o", str(out), *extra)  # fmt: skip
                wall, _, stdout, _ = measured(cmd, env)
                assert len(stdout.splitlines()) == n
                times[label].append(wall / n)
                if r == 0 and kind == "JPEG photos":
                    commands.append(shown(cmd))
            peer_cmd = [sys.executable, str(PEERS / "opencv_sample.py"), str(cfg), str(tiny),
                        str(config_dir() / "coco.names"), str(root / f"out-peer-{r}"),
                        *map(str, images)]  # fmt: skip
            times["peer"].append(measured(peer_cmd, env)[0] / n)
        med = {k: statistics.median(v) for k, v in times.items()}
        bound = med["bound"]
        lines.append(f"| {kind} | bare OpenCV forward pass, blobs made in advance (the bound) "
                     f"| {1 / bound:.1f} | {bound * 1e3:.1f} | 1.00 | |")  # fmt: skip
        for label, goal in goals.items():
            share = bound / med[label]
            ok = share >= goal
            if kind == "JPEG photos":
                report.goal(f"throughput, {label}", f"{share:.2f} of the bound (goal {goal})", ok)
            lines.append(f"| {kind} | `yolocli detect`, {label} | {1 / med[label]:.1f} | "
                         f"{med[label] * 1e3:.1f} | {share:.2f} | >= {goal}: "
                         f"{'met' if ok else 'NOT met'} |")  # fmt: skip
        lines.append(f"| {kind} | peer: OpenCV-sample-style script, images saved | "
                     f"{1 / med['peer']:.1f} | {med['peer'] * 1e3:.1f} | "
                     f"{bound / med['peer']:.2f} | |")  # fmt: skip
    report.add(
        f"2, 3, 7. Folder throughput, yolov3-tiny at 416, {n} images",
        "\n".join(lines)
        + f"\n\nMedians of {rounds} interleaved rounds. Whole-process wall clock: Python start, "
        "imports, model load and OpenCV's first-pass set-up count for yolocli and the peer, "
        "not for the bound (its blobs are made before the clock starts, and its first pass "
        "is excluded). The peer does less than yolocli: no letterbox (a plain resize), one "
        "label per box, no records, no annotated-image safety.\n\nCommands (JPEG folder; the "
        "other is the same):\n\n"
        + "\n".join(f"    {c}" for c in commands)
        + "\n    python benchmarks/peers/opencv_sample.py CFG WEIGHTS coco.names OUT <the images>"
        + "\n    bound: cv2.dnn.readNetFromDarknet, blobFromImage for half the images, then "
        "timed net.setInput/net.forward over them (benchmarks/run.py: bare_forward)",
    )


def tuning_section(report: Report, tiny: Path, quick: bool) -> None:
    """The OpenCV settings yolocli could choose: batch size and threading, measured bare."""
    from concurrent.futures import ThreadPoolExecutor

    cfg = str(config_dir() / "yolov3-tiny.cfg")
    reps = 2 if quick else 12
    default_threads = cv2.getNumThreads()

    def net() -> cv2.dnn.Net:
        n = cv2.dnn.readNetFromDarknet(cfg, str(tiny))
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
        + f"\n\nyolocli's default is the first row (batch 1, OpenCV's own thread count); the "
        f"fastest here: {best[0]}, {best[1] * 1e3:.1f} ms. `--batch N` chooses another batch "
        "size (benchmarks/run.py: tuning_section).",
    )


def memory_section(report: Report, env: dict[str, str], root: Path, quick: bool) -> None:
    small, large = (6, 24) if quick else (30, 600)
    peaks = {}
    cmds = []
    for n in (small, large):
        folder = folder_of(n, root / "memory")
        cmd = cli("detect", str(folder), "--model", "yolov3-tiny", "-f", "jsonl",
                  "-o", str(root / f"out-memory-{n}"))  # fmt: skip
        _, rss, _, _ = measured(cmd, env)
        peaks[n] = rss / 1024
        cmds.append(shown(cmd))
    growth = peaks[large] - peaks[small]
    ok = growth <= 30
    report.goal(
        "peak RSS growth", f"{growth:+.1f} MiB from {small} to {large} images (goal <= 30)", ok
    )
    report.add(
        "4. Peak memory",
        f"| images | peak RSS |\n| --- | --- |\n| {small} | {peaks[small]:.1f} MiB |\n"
        f"| {large} | {peaks[large]:.1f} MiB |\n\nGrowth: {growth:+.1f} MiB (goal <= 30 MiB: "
        f"{'met' if ok else 'NOT met'}). Peak RSS from wait4(2) of each process.\n\nCommands:\n\n"
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
        report.goal(
            f"NMS at {n} boxes", f"ratio {ratio:.2f}, identical: {same}", same and ratio <= 1
        )
    report.add(
        "5. NMS against OpenCV",
        "\n".join(lines)
        + "\n\nSingle class, IoU 0.45, boxes in k clusters (centers uniform in 1000x1000, sizes "
        "20-200 px, jitter 10% of the size): a detector's raw output around k objects. OpenCV "
        "gets float64 (x, y, w, h) arrays, its fastest input. The two alternate in 11 rounds of "
        "many calls; times are medians, the ratio the median of the rounds' ratios "
        "(benchmarks/run.py: nms_section).",
    )


def cold_section(report: Report, env: dict[str, str], tiny: Path, quick: bool) -> None:
    image = IMAGES / "motorcycle_left.png"
    ours = cli("detect", str(image), "--model", "yolov3-tiny", "--no-save")
    base = [sys.executable, str(PEERS / "minimal_cold.py"), str(config_dir() / "yolov3-tiny.cfg"),
            str(tiny), str(image)]  # fmt: skip
    runs = 2 if quick else 11
    # As installed by pip, with compiled bytecode: this environment sets
    # PYTHONDONTWRITEBYTECODE, which would recompile yolocli's modules on every start.
    env = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
    measured(ours, env)  # writes the bytecode, and warms the page cache for both
    measured(base, env)
    m_ours, m_base, ratio = paired(
        lambda: measured(ours, env)[0], lambda: measured(base, env)[0], runs
    )
    ok = ratio <= 1.25
    report.goal("cold start", f"{ratio:.2f}x the minimal script (goal <= 1.25)", ok)
    report.add(
        "6. Cold start, one image",
        f"| command | median of {runs} |\n| --- | --- |\n"
        f"| `{shown(ours)}` | {m_ours * 1e3:.0f} ms |\n"
        f"| minimal cv2 script (benchmarks/peers/minimal_cold.py) | {m_base * 1e3:.0f} ms |\n\n"
        f"Ratio {ratio:.2f}, the median of the {runs} alternating pairs' ratios "
        f"(goal <= 1.25: {'met' if ok else 'NOT met'}). Both after one untimed run each, "
        "with Python's bytecode cache on, as a pip-installed yolocli has it.",
    )


# ------------------------------------------------------------------------------ main


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from yolocli import __version__

    return (
        f"- date: {datetime.date.today().isoformat()}\n"
        f"- machine: {cpu}, {os.cpu_count()} logical cores, "
        f"{platform.system()} {platform.release()}\n"
        f"- Python {platform.python_version()}, OpenCV {cv2.__version__} "
        f"({cv2.getNumThreads()} threads), NumPy {np.__version__}, yolocli {__version__}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: check the machinery only")
    parser.add_argument(
        "--output", type=Path, default=Path(__file__).resolve().parent / "RESULTS.md"
    )
    args = parser.parse_args()

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
        _, network = darknet.read_cfg(config_dir() / "yolov3.cfg")
        v3_weights = root / "yolov3-random.weights"
        darknet.write_random_weights(network, v3_weights)
        stages_section(report, env, tiny, v3_weights, root, args.quick)
        throughput_section(report, env, tiny, root, args.quick)
        memory_section(report, env, root, args.quick)
        nms_section(report, args.quick)
        tuning_section(report, tiny, args.quick)
        cold_section(report, env, tiny, args.quick)

    goals = "\n".join(
        f"| {name} | {value} | {'met' if ok else 'NOT met'} |" for name, value, ok in report.goals
    )
    text = (
        "# yolocli benchmark results\n\n"
        f"Written by `python benchmarks/run.py{' --quick' if args.quick else ''}`.\n\n"
        f"{machine()}\n\n## Goals\n\n| goal | measured | |\n| --- | --- | --- |\n{goals}\n\n"
        + "\n".join(report.sections)
    )
    args.output.write_text(text)
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
