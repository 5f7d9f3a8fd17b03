"""COCO-style detection metrics, equal to pycocotools' ``COCOeval`` (bbox) on the same data.

The three steps mirror ``cocoeval.py``: `_match` (its ``evaluateImg``: greedy matching of one
image's detections of one class to its ground truth, per area range and IoU threshold),
`_accumulate` (precision at 101 recall points over all images) and `Evaluation`'s figures
(``summarize``: means over the entries that exist). Boxes are COCO's ``[x, y, w, h]`` in
pixels, as float64, and IoU is computed with the very operations of pycocotools' ``bbIou``, so
ties land on the same side of a threshold. What pycocotools orders by image id (detections of
equal score across images), this module orders by the images' order in the input: give images
sorted by id to reproduce its figures exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]

# The same expressions as pycocotools' Params, so the thresholds are the same floats.
IOU_THRESHOLDS: Floats = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1)
RECALL_POINTS: Floats = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1)
AREA_RANGES: dict[str, tuple[float, float]] = {
    "all": (0.0, 1e5**2),
    "small": (0.0, 32.0**2),
    "medium": (32.0**2, 96.0**2),
    "large": (96.0**2, 1e5**2),
}
MAX_DETS = 100
# The IoU threshold of the confusion matrix, and the score a detection needs to count in it.
MATRIX_IOU = 0.5
MATRIX_CONF = 0.25


@dataclass(frozen=True)
class Truth:
    """One image's ground truth: ``boxes`` (G, 4) ``[x, y, w, h]`` pixels, ``classes`` (G,),
    ``areas`` (G,) (COCO's ``area`` field: the object's area, which decides its size bucket)
    and ``crowd`` (G,) (COCO's ``iscrowd``: a region any number of detections may match,
    never counted as a miss)."""

    boxes: Floats
    classes: Ints
    areas: Floats
    crowd: Bools

    @classmethod
    def of(
        cls,
        boxes: npt.ArrayLike,
        classes: npt.ArrayLike,
        areas: npt.ArrayLike | None = None,
        crowd: npt.ArrayLike | None = None,
    ) -> Truth:
        """From anything array-like; ``areas`` default to w*h, ``crowd`` to none."""
        b = np.asarray(boxes, np.float64).reshape(-1, 4)
        a = b[:, 2] * b[:, 3] if areas is None else np.asarray(areas, np.float64).reshape(-1)
        c = np.zeros(len(b), bool) if crowd is None else np.asarray(crowd, bool).reshape(-1)
        return cls(b, np.asarray(classes, np.int64).reshape(-1), a, c)


@dataclass(frozen=True)
class Found:
    """One image's detections: ``boxes`` (D, 4) ``[x, y, w, h]``, ``scores`` (D,), ``classes``
    (D,), in the order a COCO results file would list them."""

    boxes: Floats
    scores: Floats
    classes: Ints

    @classmethod
    def of(cls, boxes: npt.ArrayLike, scores: npt.ArrayLike, classes: npt.ArrayLike) -> Found:
        return cls(
            np.asarray(boxes, np.float64).reshape(-1, 4),
            np.asarray(scores, np.float64).reshape(-1),
            np.asarray(classes, np.int64).reshape(-1),
        )


@dataclass(frozen=True)
class ClassResult:
    """One class's figures. ``ap`` and ``ap50`` are None for a class with no ground truth
    (pycocotools leaves it out of every mean). ``precision``/``recall`` hold at ``conf``, the
    score threshold with the best F1 at IoU 0.5 over all detections given."""

    class_id: int
    ap: float | None
    ap50: float | None
    boxes: int
    detections: int
    precision: float
    recall: float
    conf: float | None


@dataclass
class Evaluation:
    """Everything `evaluate` found. ``precision`` is pycocotools' ``eval['precision']`` at
    maxDets 100: (T, R, K, A) with -1 where a class has no ground truth in an area range;
    ``recall`` is (T, K, A)."""

    classes: list[int]
    precision: Floats
    recall: Floats
    per_class: list[ClassResult]
    confusion: Ints = field(repr=False)  # (K+1, K+1): rows truth, columns found; last: none

    def _mean(self, values: Floats) -> float:
        kept = values[values > -1]
        return float(np.mean(kept)) if kept.size else -1.0

    def ap(self, area: str = "all", iou: float | None = None) -> float:
        """pycocotools' AP: the mean precision over IoU thresholds (or at ``iou``), recall
        points and classes; -1 when no class has ground truth in the range."""
        a = list(AREA_RANGES).index(area)
        p = self.precision[..., a]
        if iou is not None:
            p = p[np.where(iou == IOU_THRESHOLDS)[0]]
        return self._mean(p)

    def ar(self, area: str = "all") -> float:
        """pycocotools' AR at maxDets 100."""
        return self._mean(self.recall[..., list(AREA_RANGES).index(area)])

    @property
    def map(self) -> float:
        return self.ap()

    @property
    def map50(self) -> float:
        return self.ap(iou=0.5)

    def stats(self) -> dict[str, float]:
        """The headline figures by name (pycocotools' stats[0:6] and stats[8:12])."""
        return {
            "map": self.map,
            "map50": self.map50,
            "map75": self.ap(iou=0.75),
            "map_small": self.ap("small"),
            "map_medium": self.ap("medium"),
            "map_large": self.ap("large"),
            "mar100": self.ar(),
            "mar_small": self.ar("small"),
            "mar_medium": self.ar("medium"),
            "mar_large": self.ar("large"),
        }


def _number(value: float | None) -> float | None:
    """A figure for JSON: None where pycocotools says -1 (nothing to measure)."""
    return None if value is None or value < 0 else round(float(value), 6)


def report(
    result: Evaluation, names: Mapping[int, str], category_ids: Mapping[int, int] | None = None
) -> dict[str, Any]:
    """The evaluation as one JSON-ready object: the headline figures (``map50``, ``map``, ...,
    in [0, 1], or null where nothing could be measured) and a ``classes`` list holding every
    class with ground truth or detections."""
    doc: dict[str, Any] = {name: _number(v) for name, v in result.stats().items()}
    classes = []
    for info in result.per_class:
        if not info.boxes and not info.detections:
            continue
        entry: dict[str, Any] = {
            "class_id": info.class_id,
            "name": names.get(info.class_id, str(info.class_id)),
            "boxes": info.boxes,
            "detections": info.detections,
            "ap50": _number(info.ap50),
            "ap": _number(info.ap),
            "precision": _number(info.precision),
            "recall": _number(info.recall),
            "conf": _number(info.conf),
        }
        if category_ids and info.class_id in category_ids:
            entry["category_id"] = category_ids[info.class_id]
        classes.append(entry)
    doc["classes"] = classes
    return doc


def table(doc: Mapping[str, Any]) -> str:
    """`report`'s object as text for people: the headline figures, then one row per class."""

    def f(value: Any) -> str:
        return "-" if value is None else f"{value:.3f}"

    lines = [
        f"mAP@0.5:0.95 {f(doc['map'])}   mAP@0.5 {f(doc['map50'])}   mAP@0.75 {f(doc['map75'])}",
        f"AP small {f(doc['map_small'])}   medium {f(doc['map_medium'])}   "
        f"large {f(doc['map_large'])}   AR@100 {f(doc['mar100'])}",
        "",
    ]
    rows = [r for r in doc["classes"] if r["boxes"]]
    others = [r for r in doc["classes"] if not r["boxes"]]
    total = {
        "name": "all",
        "boxes": sum(r["boxes"] for r in rows),
        "detections": sum(r["detections"] for r in rows),
        "ap50": doc["map50"],
        "ap": doc["map"],
        "precision": None,
        "recall": None,
        "conf": None,
    }
    width = max([len("class"), *(len(str(r["name"])) for r in rows)])
    lines.append(
        f"{'class':<{width}}  {'boxes':>6}  {'found':>6}  {'AP50':>6}  {'AP':>6}  "
        f"{'P':>6}  {'R':>6}  {'score':>6}"
    )
    for r in [total, *rows]:
        lines.append(
            f"{r['name']:<{width}}  {r['boxes']:>6}  {r['detections']:>6}  {f(r['ap50']):>6}  "
            f"{f(r['ap']):>6}  {f(r['precision']):>6}  {f(r['recall']):>6}  {f(r['conf']):>6}"
        )
    if others:
        n = sum(r["detections"] for r in others)
        lines.append(
            f"(and {n} detection{'s' * (n != 1)} of {len(others)} class"
            f"{'es' * (len(others) != 1)} without ground truth, which COCO's means leave out)"
        )
    lines.append(
        "(AP50: AP at IoU 0.5; AP: mean over IoU 0.5:0.95; P, R: precision and recall at IoU "
        "0.5 keeping scores of at least `score`, where F1 is best)"
    )
    return "\n".join(lines)


def box_iou_coco(dt: Floats, gt: Floats, crowd: Bools) -> Floats:
    """(D, G) IoU of ``[x, y, w, h]`` boxes as pycocotools' ``bbIou`` computes it: for a crowd
    ground-truth box the union is the detection's own area."""
    if len(dt) == 0 or len(gt) == 0:
        return np.zeros((len(dt), len(gt)))
    d, g = dt[:, None, :], gt[None, :, :]
    w = np.minimum(d[..., 2] + d[..., 0], g[..., 2] + g[..., 0]) - np.maximum(d[..., 0], g[..., 0])
    h = np.minimum(d[..., 3] + d[..., 1], g[..., 3] + g[..., 1]) - np.maximum(d[..., 1], g[..., 1])
    inter = w * h
    da, ga = d[..., 2] * d[..., 3], g[..., 2] * g[..., 3]
    union = np.where(crowd[None, :], da, da + ga - inter)
    overlap = (w > 0) & (h > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(overlap, inter / np.where(overlap, union, 1.0), 0.0)


@dataclass
class _Matched:
    """One image and class after matching: per area range (A) and IoU threshold (T)."""

    scores: Floats  # (D,) best first
    tp: Bools  # (A, T, D)
    fp: Bools  # (A, T, D)
    truths: Ints  # (A,) ground-truth boxes not ignored


def _ranges(areas: Floats) -> Bools:
    """(A, N): which area ranges leave these areas out (bounds count as inside, as in COCO)."""
    lo = np.array([r[0] for r in AREA_RANGES.values()])[:, None]
    hi = np.array([r[1] for r in AREA_RANGES.values()])[:, None]
    out: Bools = (areas[None, :] < lo) | (areas[None, :] > hi)
    return out


def _match(truth: Truth, found: Found, k: int) -> _Matched | None:
    """pycocotools' ``evaluateImg`` for one image and class, every area range and threshold.

    Detections, best first (ties in the given order), each take the unmatched ground-truth box
    they overlap most (at least the threshold; ties: the later box), preferring boxes that are
    not ignored (crowd or outside the area range); a crowd box may be taken again.
    """
    g_sel = truth.classes == k
    d_sel = found.classes == k
    if not g_sel.any() and not d_sel.any():
        return None
    gt, crowd, g_area = truth.boxes[g_sel], truth.crowd[g_sel], truth.areas[g_sel]
    order = np.argsort(-found.scores[d_sel], kind="mergesort")[:MAX_DETS]
    dt, scores = found.boxes[d_sel][order], found.scores[d_sel][order]
    n_a, n_t, n_d, n_g = len(AREA_RANGES), len(IOU_THRESHOLDS), len(dt), len(gt)
    g_ignore = crowd[None, :] | _ranges(g_area)  # (A, G)
    matched = np.full((n_a, n_t, n_d), -1)
    if n_g and n_d:
        ious = box_iou_coco(dt, gt, crowd)
        thresholds = np.minimum(IOU_THRESHOLDS, 1 - 1e-10)[None, :, None]
        taken = np.zeros((n_a, n_t, n_g), bool)
        flip = np.arange(n_g)[::-1]
        # Only a detection overlapping some box by the lowest threshold can match anything.
        for d in np.flatnonzero(ious.max(axis=1) >= IOU_THRESHOLDS[0]).tolist():
            iou = ious[d][None, None, :]
            free = (~taken | crowd) & (iou >= thresholds)  # (A, T, G)
            best = np.full((n_a, n_t), -1)
            # Boxes not ignored first; among them the highest IoU, the last one on a tie.
            for pool in (~g_ignore, g_ignore):
                if not (best < 0).any() or not pool.any():
                    continue
                cand = np.where(free & pool[:, None, :], iou, -np.inf)[..., flip]
                pick = n_g - 1 - np.argmax(cand, axis=-1)
                ok = (best < 0) & np.isfinite(np.max(cand, axis=-1))
                best = np.where(ok, pick, best)
            matched[..., d] = best
            a_idx, t_idx = np.nonzero(best >= 0)
            taken[a_idx, t_idx, best[a_idx, t_idx]] = True
    hit = matched >= 0
    ignored = ~hit & _ranges(dt[:, 2] * dt[:, 3])[:, None, :]  # unmatched and out of range
    if n_g:  # a detection matched to an ignored box is ignored too
        g_ign = np.broadcast_to(g_ignore[:, None, :], (n_a, n_t, n_g))
        ignored |= hit & np.take_along_axis(g_ign, np.maximum(matched, 0), axis=-1)
    return _Matched(
        scores=scores, tp=hit & ~ignored, fp=~hit & ~ignored, truths=(~g_ignore).sum(axis=1)
    )


def _accumulate(
    parts: list[_Matched],
) -> tuple[Floats, Floats, tuple[Floats, Bools, int]]:
    """pycocotools' ``accumulate`` for one class: precision (T, R, A) at the recall points
    (-1: no ground truth), recall (T, A), and the IoU-0.5 curve of area "all" (scores, hits,
    number of boxes) for the best-F1 point."""
    n_a, n_t, n_r = len(AREA_RANGES), len(IOU_THRESHOLDS), len(RECALL_POINTS)
    precision = -np.ones((n_t, n_r, n_a))
    recall = -np.ones((n_t, n_a))
    if not parts:
        return precision, recall, (np.zeros(0), np.zeros(0, bool), 0)
    scores = np.concatenate([p.scores for p in parts])
    order = np.argsort(-scores, kind="mergesort")
    tp_all = np.concatenate([p.tp for p in parts], axis=2)[..., order]
    fp_all = np.concatenate([p.fp for p in parts], axis=2)[..., order]
    truths = np.sum([p.truths for p in parts], axis=0)
    for a in range(n_a):
        if truths[a] == 0:
            continue
        tp = np.cumsum(tp_all[a], axis=1).astype(float)
        fp = np.cumsum(fp_all[a], axis=1).astype(float)
        rc = tp / truths[a]
        pr = tp / (fp + tp + np.spacing(1))
        n_d = tp.shape[1]
        recall[:, a] = rc[:, -1] if n_d else 0
        if not n_d:
            precision[:, :, a] = 0
            continue
        pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]  # precision envelope
        for t in range(n_t):
            idx = np.searchsorted(rc[t], RECALL_POINTS, side="left")
            inside = idx < n_d
            precision[t, :, a] = np.where(inside, pr[t, np.minimum(idx, n_d - 1)], 0)
    counted = tp_all[0, 0] | fp_all[0, 0]  # detections matched to crowd boxes count as neither
    return precision, recall, (scores[order][counted], tp_all[0, 0][counted], int(truths[0]))


def best_f1(scores: Floats, hits: Bools, n_truth: int) -> tuple[float, float, float | None]:
    """Precision, recall and the score threshold with the highest F1, keeping every detection
    scoring at least the threshold (so a cut never splits equal scores)."""
    if len(scores) == 0 or n_truth == 0:
        return 0.0, 0.0, None
    tp = np.cumsum(hits)
    p = tp / np.arange(1, len(hits) + 1)
    r = tp / n_truth
    f1 = 2 * p * r / np.maximum(p + r, np.finfo(float).eps)
    ends = np.append(scores[1:] != scores[:-1], True)
    i = int(np.flatnonzero(ends)[np.argmax(f1[ends])])
    return float(p[i]), float(r[i]), float(scores[i])


def confusion_matrix(
    truths: Sequence[Truth], found: Sequence[Found], classes: Sequence[int]
) -> Ints:
    """(K+1, K+1) counts: row = true class, column = found class, index K = nothing.

    Per image, detections scoring at least `MATRIX_CONF` and non-crowd ground truth are paired
    regardless of class at IoU above `MATRIX_IOU`, highest IoU first, each box at most once.
    """
    index = {c: i for i, c in enumerate(classes)}
    k = len(classes)
    matrix = np.zeros((k + 1, k + 1), np.int64)
    for truth, dets in zip(truths, found, strict=True):
        g_keep = ~truth.crowd & np.isin(truth.classes, classes)
        d_keep = (dets.scores >= MATRIX_CONF) & np.isin(dets.classes, classes)
        g_cls = np.array([index[c] for c in truth.classes[g_keep]], np.int64)
        d_cls = np.array([index[c] for c in dets.classes[d_keep]], np.int64)
        ious = box_iou_coco(dets.boxes[d_keep], truth.boxes[g_keep], np.zeros(len(g_cls), bool))
        di, gi = np.nonzero(ious > MATRIX_IOU)
        order = np.argsort(-ious[di, gi], kind="mergesort")
        used_d, used_g = np.zeros(len(d_cls), bool), np.zeros(len(g_cls), bool)
        for d, g in zip(di[order].tolist(), gi[order].tolist(), strict=True):
            if not used_d[d] and not used_g[g]:
                used_d[d] = used_g[g] = True
                matrix[g_cls[g], d_cls[d]] += 1
        matrix[:, k] += np.bincount(g_cls[~used_g], minlength=k + 1)  # missed
        matrix[k] += np.bincount(d_cls[~used_d], minlength=k + 1)  # found where nothing is
    return matrix


def evaluate(truths: Sequence[Truth], found: Sequence[Found], classes: Sequence[int]) -> Evaluation:
    """COCO bbox metrics of ``found`` against ``truths`` (one of each per image, same order)
    for the class ids in ``classes`` (pycocotools' catIds: detections of other classes are not
    counted; a class without ground truth is left out of the means)."""
    if len(truths) != len(found):
        raise ValueError(f"{len(truths)} ground truths but {len(found)} detection sets")
    cats = sorted(set(classes))
    n_a, n_t, n_r = len(AREA_RANGES), len(IOU_THRESHOLDS), len(RECALL_POINTS)
    precision = -np.ones((n_t, n_r, len(cats), n_a))
    recall = -np.ones((n_t, len(cats), n_a))
    per_class = []
    parts_by_class: dict[int, list[_Matched]] = {k: [] for k in cats}
    for truth, dets in zip(truths, found, strict=True):  # image by image, in order
        present = np.union1d(truth.classes, dets.classes).tolist()
        for k in present:
            if k in parts_by_class and (matched := _match(truth, dets, k)) is not None:
                parts_by_class[k].append(matched)
    for ki, k in enumerate(cats):
        parts = parts_by_class[k]
        precision[:, :, ki], recall[:, ki], (scores, hits, n_truth) = _accumulate(parts)
        has_truth = precision[0, 0, ki, 0] > -1
        p, r, conf = best_f1(scores, hits, n_truth)
        per_class.append(
            ClassResult(
                class_id=k,
                ap=float(precision[:, :, ki, 0].mean()) if has_truth else None,
                ap50=float(precision[0, :, ki, 0].mean()) if has_truth else None,
                boxes=n_truth,
                detections=len(scores),
                precision=p,
                recall=r,
                conf=conf,
            )
        )
    return Evaluation(cats, precision, recall, per_class, confusion_matrix(truths, found, cats))


def xyxy_to_xywh(xyxy: npt.ArrayLike) -> Floats:
    """(N, 4) corner boxes as COCO's ``[x, y, w, h]``."""
    b = np.asarray(xyxy, np.float64).reshape(-1, 4)
    return np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], axis=1)


__all__ = [
    "AREA_RANGES",
    "IOU_THRESHOLDS",
    "MAX_DETS",
    "RECALL_POINTS",
    "ClassResult",
    "Evaluation",
    "Found",
    "Truth",
    "best_f1",
    "box_iou_coco",
    "confusion_matrix",
    "evaluate",
    "report",
    "table",
    "xyxy_to_xywh",
]
