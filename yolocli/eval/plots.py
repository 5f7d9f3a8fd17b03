"""Pictures of an `eval.evaluate.Evaluation`: precision-recall curves and a confusion matrix.

Needs matplotlib, the ``plots`` extra (``pip install 'yolocli[plots]'``); nothing else in
yolocli does. Figures are drawn on matplotlib's Agg canvas directly (no pyplot, no display,
no global state), so plotting works on servers and from threads.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from yolocli.errors import YolocliError
from yolocli.eval.evaluate import RECALL_POINTS, Evaluation

OVERALL = "pr_curve.png"
MATRIX = "confusion_matrix.png"
PER_CLASS = "pr_curves"  # a folder: one PNG per class with ground truth


class PlotError(YolocliError):
    """Plots were asked for but cannot be drawn (matplotlib is not installed)."""


def check_available() -> None:
    """Raise `PlotError` naming the extra to install if matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise PlotError(
            "plots need matplotlib, which is not installed: pip install 'yolocli[plots]'"
        ) from None


def _figure(width: float, height: float) -> Any:
    check_available()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _file_name(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name).strip("._") or "class"


def plot_pr_curves(result: Evaluation, names: Mapping[int, str], out_dir: Path) -> list[Path]:
    """``pr_curve.png``: every class's interpolated precision-recall curve at IoU 0.5 (thin)
    and their mean (bold, the curve whose area is mAP@0.5); ``pr_curves/NAME.png``: one class
    at IoU 0.5 and averaged over 0.5:0.95. Classes without ground truth have no curve."""
    out_dir.mkdir(parents=True, exist_ok=True)
    at50 = result.precision[0, :, :, 0]  # (R, K), area "all"
    present = [k for k in range(len(result.classes)) if at50[0, k] > -1]
    fig = _figure(7, 6)
    ax = fig.add_subplot()
    label_each = len(present) <= 12
    for k in present:
        info = result.per_class[k]
        label = f"{names.get(info.class_id, info.class_id)} {info.ap50:.3f}" if label_each else None
        ax.plot(RECALL_POINTS, at50[:, k], linewidth=1, alpha=0.7 if label_each else 0.35,
                label=label)  # fmt: skip
    if present:
        mean = at50[:, present].mean(axis=1)
        ax.plot(RECALL_POINTS, mean, color="black", linewidth=3,
                label=f"all classes mAP@0.5 {result.map50:.3f}")  # fmt: skip
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="Recall", ylabel="Precision")
    ax.set_title("Precision-recall at IoU 0.5 (COCO 101-point interpolation)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize="small")
    paths = [out_dir / OVERALL]
    fig.savefig(paths[0])
    folder = out_dir / PER_CLASS
    if present:
        folder.mkdir(exist_ok=True)
    used: set[str] = set()
    for k in present:
        info = result.per_class[k]
        name = str(names.get(info.class_id, info.class_id))
        fig = _figure(5, 4.5)
        ax = fig.add_subplot()
        ax.plot(RECALL_POINTS, at50[:, k], linewidth=2, label=f"IoU 0.5: AP {info.ap50:.3f}")
        mean = result.precision[:, :, k, 0].mean(axis=0)
        ax.plot(RECALL_POINTS, mean, linewidth=2, label=f"IoU 0.5:0.95: AP {info.ap:.3f}")
        if info.conf is not None:
            ax.plot([info.recall], [info.precision], "o", color="black",
                    label=f"best F1 at score {info.conf:.3f}")  # fmt: skip
        ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="Recall", ylabel="Precision")
        ax.set_title(f"{name} ({info.boxes} boxes)")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left", fontsize="small")
        stem = _file_name(name)
        while stem in used:  # two names that differ only in odd characters
            stem += "_"
        used.add(stem)
        paths.append(folder / f"{stem}.png")
        fig.savefig(paths[-1])
    return paths


def plot_confusion(result: Evaluation, names: Mapping[int, str], out_dir: Path) -> Path:
    """``confusion_matrix.png``: counts at IoU 0.5 and score 0.25 (see
    `yolocli.eval.evaluate.confusion_matrix`), shaded by the share of each true class; only the
    classes that occur, plus "background" (missed objects, false detections)."""
    from yolocli.eval.evaluate import MATRIX_CONF, MATRIX_IOU

    out_dir.mkdir(parents=True, exist_ok=True)
    m = result.confusion
    k = len(result.classes)
    keep = [i for i in range(k) if m[i].sum() or m[:, i].sum()] + [k]
    sub = m[np.ix_(keep, keep)]
    labels = [str(names.get(result.classes[i], result.classes[i])) for i in keep[:-1]]
    labels.append("background")
    n = len(keep)
    side = min(max(4.0, 0.35 * n + 2.5), 30.0)
    fig = _figure(side + 1, side)
    ax = fig.add_subplot()
    totals = sub.sum(axis=1, keepdims=True)
    share = np.divide(sub, totals, out=np.zeros(sub.shape), where=totals > 0)
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, shrink=0.8, label="share of the true class")
    if n <= 40:
        for (i, j), count in np.ndenumerate(sub):
            if count:
                ax.text(j, i, str(count), ha="center", va="center", fontsize="x-small",
                        color="white" if share[i, j] > 0.5 else "black")  # fmt: skip
    ax.set_xticks(range(n), labels, rotation=90, fontsize="small")
    ax.set_yticks(range(n), labels, fontsize="small")
    ax.set(xlabel="Detected", ylabel="True")
    ax.set_title(f"Confusion matrix (IoU > {MATRIX_IOU}, score ≥ {MATRIX_CONF})")
    path = out_dir / MATRIX
    fig.savefig(path)
    return path


def plot_all(result: Evaluation, names: Mapping[int, str], out_dir: Path) -> list[Path]:
    """Every plot into ``out_dir``; the paths written."""
    check_available()
    return [*plot_pr_curves(result, names, out_dir), plot_confusion(result, names, out_dir)]


__all__ = ["PlotError", "check_available", "plot_all", "plot_confusion", "plot_pr_curves"]
