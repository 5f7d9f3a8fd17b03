"""Tracking metrics as the field computes them: MOTA, IDF1 and ID switches from motmetrics,
HOTA as TrackEval (and ``trackers.eval``) define it, and MOTChallenge files in and out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

if not hasattr(np, "asfarray"):  # motmetrics 1.4.0 still calls it; NumPy 2 removed it
    np.asfarray = lambda a, dtype=np.float64: np.asarray(a, dtype=dtype)  # type: ignore[attr-defined]

import motmetrics

DATA = Path(motmetrics.__file__).parent / "data"  # TUD-Campus, TUD-Stadtmitte: gt.txt


def read_mot(path: Path) -> np.ndarray:
    """(N, 10) MOTChallenge lines: frame, id, x, y, w, h, score, ..."""
    return np.loadtxt(path, delimiter=",", ndmin=2).reshape(-1, 10)


def _frames(rows: np.ndarray) -> dict[int, np.ndarray]:
    return {int(f): rows[rows[:, 0] == f] for f in np.unique(rows[:, 0])}


def _iou_xywh(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = np.concatenate([a[:, :2], a[:, :2] + a[:, 2:4]], axis=1)
    b = np.concatenate([b[:, :2], b[:, :2] + b[:, 2:4]], axis=1)
    iw = np.minimum.outer(a[:, 2], b[:, 2]) - np.maximum.outer(a[:, 0], b[:, 0])
    ih = np.minimum.outer(a[:, 3], b[:, 3]) - np.maximum.outer(a[:, 1], b[:, 1])
    inter = np.maximum(iw, 0) * np.maximum(ih, 0)
    area_a = a[:, 2:4].__sub__(a[:, :2]).prod(1)
    area_b = b[:, 2:4].__sub__(b[:, :2]).prod(1)
    union = np.add.outer(area_a, area_b) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def clear_and_identity(gt: np.ndarray, res: np.ndarray) -> dict[str, float]:
    """motmetrics' MOTA, IDF1, ID switches (IoU >= 0.5 to match, as MOTChallenge)."""
    acc = motmetrics.MOTAccumulator(auto_id=False)
    g, r = _frames(gt), _frames(res)
    empty = np.zeros((0, 10))
    for frame in sorted(set(g) | set(r)):
        gf, rf = g.get(frame, empty), r.get(frame, empty)
        dist = motmetrics.distances.iou_matrix(gf[:, 2:6], rf[:, 2:6], max_iou=0.5)
        acc.update(
            gf[:, 1].astype(int).tolist(), rf[:, 1].astype(int).tolist(), dist, frameid=frame
        )
    mh = motmetrics.metrics.create()
    s = mh.compute(acc, metrics=["mota", "idf1", "num_switches"], name="seq")
    return {"MOTA": float(s["mota"].iloc[0]), "IDF1": float(s["idf1"].iloc[0]),
            "IDSW": int(s["num_switches"].iloc[0])}  # fmt: skip


def hota(gt: np.ndarray, res: np.ndarray) -> float:
    """HOTA averaged over IoU thresholds 0.05..0.95, as TrackEval's ``HOTA.eval_sequence``."""
    g, r = _frames(gt), _frames(res)
    frames = sorted(set(g) | set(r))
    empty = np.zeros((0, 10))
    gid = {v: i for i, v in enumerate(np.unique(gt[:, 1]).tolist())}
    tid = {v: i for i, v in enumerate(np.unique(res[:, 1]).tolist())} if len(res) else {}
    seq = []
    for f in frames:
        gf, rf = g.get(f, empty), r.get(f, empty)
        seq.append((
            np.array([gid[v] for v in gf[:, 1].tolist()], int),
            np.array([tid[v] for v in rf[:, 1].tolist()], int),
            _iou_xywh(gf[:, 2:6], rf[:, 2:6]),
        ))  # fmt: skip
    alphas = np.arange(0.05, 0.99, 0.05)
    potential = np.zeros((len(gid), len(tid)))
    gcount = np.zeros((len(gid), 1))
    tcount = np.zeros((1, len(tid)))
    for gi, ti, sim in seq:
        denom = sim.sum(0)[None, :] + sim.sum(1)[:, None] - sim
        sim_iou = np.zeros_like(sim)
        mask = denom > 0 + np.finfo("float").eps
        sim_iou[mask] = sim[mask] / denom[mask]
        potential[gi[:, None], ti[None, :]] += sim_iou
        gcount[gi] += 1
        tcount[0, ti] += 1
    align = potential / (gcount + tcount - potential)
    tp = np.zeros(len(alphas))
    fn = np.zeros(len(alphas))
    fp = np.zeros(len(alphas))
    matches = [np.zeros_like(potential) for _ in alphas]
    for gi, ti, sim in seq:
        if len(gi) == 0:
            fp += len(ti)
            continue
        if len(ti) == 0:
            fn += len(gi)
            continue
        rows, cols = linear_sum_assignment(-(align[gi[:, None], ti[None, :]] * sim))
        for a, alpha in enumerate(alphas):
            ok = sim[rows, cols] >= alpha - np.finfo("float").eps
            n = int(ok.sum())
            tp[a] += n
            fn[a] += len(gi) - n
            fp[a] += len(ti) - n
            matches[a][gi[rows[ok]], ti[cols[ok]]] += 1
    values = []
    for a in range(len(alphas)):
        m = matches[a]
        ass = m / np.maximum(1, gcount + tcount - m)
        ass_a = np.sum(m * ass) / max(1.0, tp[a])
        det_a = tp[a] / max(1.0, tp[a] + fn[a] + fp[a])
        values.append(np.sqrt(det_a * ass_a))
    return float(np.mean(values))
