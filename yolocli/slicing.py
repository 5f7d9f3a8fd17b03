"""Sliced inference over an image pyramid: small objects in large images.

A 416 px network sees a 4000 px photo shrunk ten times, and small objects vanish. `Slicer`
cuts the image (and, with ``scales``, smaller copies of it) into overlapping tiles
(`yolocli.ops.tiles`), runs every tile through the network at its own input size, in
batches, maps the boxes back to the original pixels, adds one pass over the whole image for
the objects larger than a tile, and merges the lot (`yolocli.ops.merge`).

Boxes cut by a tile edge. An object across an inner tile edge comes out of each tile as a
piece ending at (or, the network's boxes being loose, near) that edge. The rule here, in two
steps before the merge:

1. A detection within ``edge`` (a share of the tile's side) of an inner side of its tile is
   *cut* (the image border is not an inner side: nothing is cut there). A cut box is dropped
   when a larger uncut box of its class covers most of it (IoS of at least `COVER`): the
   whole object, seen whole by the full-image pass or by a neighbouring tile.
2. The cut boxes left are joined when they are pieces of one object: two cut boxes of one
   class from different passes that agree where both passes saw the image (each cropped to
   the intersection of the two windows, IoU of at least `AGREE`) become one box, their
   union, with the better score. Pieces of one object chain across several tiles.

So an object larger than the tile overlap is reported once: whole from the full-image pass,
or joined from its pieces; a whole object never loses to a piece of itself, and two distinct
objects are only joined if both are cut and they coincide in the band the tiles share.
``merge="nmm", match="ios"`` (SAHI's choice) would also join pieces, but it fuses every
small object with a larger one of its class that contains it (a child in front of an adult).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import cv2
import numpy as np
import numpy.typing as npt

from yolocli import ops, options
from yolocli.detections import Detections
from yolocli.errors import ImageError, OptionError
from yolocli.postprocess import Postprocess
from yolocli.run import signals
from yolocli.run.timing import Timings

if TYPE_CHECKING:
    from yolocli.detector import Detector
    from yolocli.recipe import Recipe

# A cut box is dropped when a larger uncut box of its class covers at least this share of it.
# A piece of an object lies inside the object's whole box (IoS near 1); 0.6 leaves room for
# the two boxes' own jitter while a neighbour of the same class rarely covers that much.
COVER = 0.6
# Two cut boxes from different passes are pieces of one object when, cropped to the part of
# the image both passes saw, they overlap this much (IoU): there they see the same thing.
AGREE = 0.5


class Windows(NamedTuple):
    """The network passes for one image: window ``i`` is ``xyxy[i]`` (T, 4) int64, in the
    pixels of the image scaled by ``scale[i]`` (T,); ``inner[i]`` (T, 4) bool says which of
    its sides (left, top, right, bottom) lie inside the image, where objects can be cut."""

    xyxy: npt.NDArray[np.int64]
    scale: npt.NDArray[np.float64]
    inner: npt.NDArray[np.bool_]

    def __len__(self) -> int:
        return int(self.scale.shape[0])

    @property
    def whole(self) -> bool:
        """True if the only pass is the whole image at its own size (a plain detection)."""
        return len(self) == 1 and bool(self.scale[0] == 1.0) and not self.inner.any()


# A tile is enlarged at most this many times to the network's input size.
MAX_ENLARGEMENT = 4
# Network passes for one image: a warning above MANY_PASSES, its error above MAX_PASSES (at
# 10-100 ms a pass on a CPU, 4096 passes are minutes for one photo).
MANY_PASSES = 256
MAX_PASSES = 4096


@dataclass(frozen=True)
class Slicer:
    """How to slice: tiles of ``size`` pixels of the original image (an int, or (w, h)),
    neighbours overlapping by ``overlap`` of a tile; one tiling per scale in ``scales`` (1:
    the image itself, 0.5: a copy half as large; a copy no larger than a tile is one pass
    over the whole image); ``full``: also one pass over the whole image, for the objects
    larger than a tile.

    Results are merged with ``merge`` (``"nms"`` or ``"nmm"``) matching by ``match``
    (``"iou"``, ``"ios"`` or ``"diou"``; None: the detector's own measure, as its model's
    recipe says: darknet's DIoU for AlexeyAB cfgs with ``nms_kind``, else IoU) above
    ``threshold`` (None: the postprocessing's ``nms``).
    The default, NMS by the detector's own measure at its own threshold, is its own rule: it
    keeps apart overlapping objects of one class (a crowd) that IoS merging would fuse, and
    the cut-box rule (see the module) already handles the pieces that IoU cannot match.
    ``edge``: how close to an inner tile side a box must come to count as cut, as a share of
    the tile's side (0.04: 16 px of a 416 px tile; None: no cut-box rule). ``batch``: tiles
    per forward pass.

    >>> dets = Slicer(416).detect(detector, cv2.imread("big.jpg"))  # doctest: +SKIP
    """

    size: int | tuple[int, int]
    overlap: float = 0.2
    scales: tuple[float, ...] = (1.0,)
    full: bool = True
    merge: str = "nms"
    match: str | None = None
    threshold: float | None = None
    edge: float | None = 0.04
    batch: int = 8

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if isinstance(self.size, str):
            raise OptionError("slice", f"must be a number of pixels or (w, h), got {self.size!r}")
        w, h = options.size("slice", self.size, 1, 1 << 20)
        if w < 32 or h < 32:
            raise OptionError("slice", f"tiles must be at least 32 pixels a side, got {self.size}")
        set_(self, "size", w if w == h else (w, h))
        set_(self, "overlap", options.number("overlap", self.overlap, 0.0, 1.0))
        if self.overlap >= 1.0:
            raise OptionError("overlap", f"must be in [0, 1), got {self.overlap}")
        if not isinstance(self.scales, tuple | list) or not self.scales:
            raise OptionError("scales", f"must be a list of scales in (0, 1], got {self.scales!r}")
        scales = tuple(options.number("scales", s, 0.0, 1.0) for s in self.scales)
        if not all(s > 0.0 for s in scales):
            raise OptionError(
                "scales", f"each scale must be in (0, 1] (1: the image itself), got {self.scales}"
            )
        set_(self, "scales", tuple(dict.fromkeys(scales)))
        set_(self, "full", options.boolean("full", self.full))
        set_(self, "merge", options.choice("merge", self.merge, ops.MERGE_METHODS))
        if self.match is not None:  # None: the model's own measure (its NMS kind)
            set_(self, "match", options.choice("match", self.match, ops.MATCH_METRICS))
        if self.threshold is not None:
            set_(self, "threshold", options.number("threshold", self.threshold, 0.0, 1.0))
        if self.edge is not None:
            set_(self, "edge", options.number("edge", self.edge, 0.0, 0.5))
            if self.edge >= 0.5:
                raise OptionError("edge", f"must be in [0, 0.5), got {self.edge}")
        set_(self, "batch", options.integer("batch", self.batch, 1))

    def check_network(self, width: int, height: int) -> None:
        """`OptionError` if a tile is smaller than a quarter of the network input it is scaled
        to (``--slice 32`` at 416: each tile enlarged 13 times, hours of passes per photo)."""
        tile_w, tile_h = (self.size, self.size) if isinstance(self.size, int) else self.size
        if tile_w * MAX_ENLARGEMENT < width or tile_h * MAX_ENLARGEMENT < height:
            raise OptionError(
                "slice",
                f"tiles of {tile_w}x{tile_h} for a {width}x{height} network would each be "
                f"enlarged more than {MAX_ENLARGEMENT} times: use tiles of at least "
                f"{-(-width // MAX_ENLARGEMENT)}x{-(-height // MAX_ENLARGEMENT)} (the network's "
                "size is usual)",
            )

    def passes_note(self, passes: int, width: int, height: int) -> str | None:
        """A warning for an image that takes more than `MANY_PASSES` network passes; an
        `ImageError` (that image's error, the others go on) above `MAX_PASSES`."""
        if passes > MAX_PASSES:
            raise ImageError(
                f"--slice {self.size} would take {passes:,} network passes for this "
                f"{width}x{height} image, over the limit of {MAX_PASSES:,}: use larger tiles"
            )
        if passes > MANY_PASSES:
            return (
                f"{passes:,} network passes for this {width}x{height} image (--slice "
                f"{self.size}): slow; larger tiles take fewer"
            )
        return None

    def windows(self, width: int, height: int) -> Windows:
        """Every network pass for a ``width`` x ``height`` image: the tiles of each scale,
        then the whole image (``full``); a scale that needs no more than one tile is a pass
        over the whole image, and the whole image is run once however often it is asked for.
        """
        parts: list[tuple[npt.NDArray[np.int64], float]] = []
        whole = False
        for s in self.scales:
            w, h = _scaled(width, height, s)
            cut = ops.tiles(w, h, self.size, self.overlap)
            if len(cut) == 1:
                whole = True
            else:
                parts.append((cut, s))
        if whole or self.full or not parts:
            parts.append((np.array([[0, 0, width, height]], dtype=np.int64), 1.0))
        xyxy = np.concatenate([p for p, _ in parts])
        scale = np.concatenate([np.full(len(p), s, dtype=np.float64) for p, s in parts])
        sizes = np.array([_scaled(width, height, s) for s in scale], dtype=np.int64).reshape(-1, 2)
        inner = np.concatenate([xyxy[:, :2] > 0, xyxy[:, 2:] < sizes], axis=1)
        return Windows(xyxy, scale, inner)

    def detect(
        self,
        detector: Detector,
        image: npt.NDArray[np.uint8],
        postprocess: Postprocess | None = None,
        timings: Timings | None = None,
    ) -> Detections:
        """Objects in one BGR uint8 image, found tile by tile, best score first.

        ``postprocess`` (default: the detector's) applies to every pass; its ``nms`` is the
        merge threshold unless ``threshold`` is set, its ``agnostic`` makes the merge ignore
        classes, and its ``max_det`` caps the merged result. An image that needs a single
        pass gives exactly ``detector.detect(image, postprocess)``. ``timings``, if given,
        receives the seconds spent per stage (preprocess, forward, postprocess) over all
        tiles, as `yolocli.run.timing.Timings`.
        """
        height, width = image.shape[:2]
        self.check_network(detector.width, detector.height)
        win = self.windows(width, height)
        self.passes_note(len(win), width, height)  # refuses absurdly many passes
        post = (
            detector.postprocess if postprocess is None else postprocess.for_names(detector.names)
        )
        clock = _Clock(timings)
        if win.whole:
            blob, box = detector.preprocess(image)
            clock.lap("preprocess")
            (out,) = zip(*detector.forward(blob[None]), strict=True)
            clock.lap("forward")
            dets = detector.decode(out, box, post)
            clock.lap("postprocess")
            return dets
        copies: dict[float, npt.NDArray[np.uint8]] = {1.0: image}
        for s in np.unique(win.scale[win.scale != 1.0]).tolist():
            size = _scaled(width, height, s)
            copies[s] = cv2.resize(image, size, interpolation=cv2.INTER_AREA)  # type: ignore[assignment]
        clock.lap("preprocess")
        found: list[tuple[Detections, int]] = []
        blobs = np.empty(
            (min(self.batch, len(win)), 3, detector.height, detector.width), np.float32
        )
        for lo in range(0, len(win), self.batch):
            signals.check()  # a run's Ctrl-C, between the batches of a large image's tiles
            idx = range(lo, min(len(win), lo + self.batch))
            boxes = []
            for k, i in enumerate(idx):
                x1, y1, x2, y2 = win.xyxy[i].tolist()
                tile = copies[float(win.scale[i])][y1:y2, x1:x2]
                boxes.append(detector.preprocess(tile, blobs[k])[1])
            clock.lap("preprocess")
            heads = detector.forward(blobs[: len(idx)])
            clock.lap("forward")
            for k, i in enumerate(idx):
                found.append((detector.decode([o[k] for o in heads], boxes[k], post), i))
            clock.lap("postprocess")
        dets = self._combine(
            found, win, post, detector.names, (detector.width, detector.height),
            detector.recipe, (width, height),
        )  # fmt: skip
        clock.lap("postprocess")
        return dets

    def _combine(
        self,
        found: Sequence[tuple[Detections, int]],
        win: Windows,
        post: Postprocess,
        names: Sequence[str],
        net: tuple[int, int],
        recipe: Recipe,
        image: tuple[int, int],
    ) -> Detections:
        """The detections of every pass, in original pixels, cut boxes resolved, merged."""
        counts = np.array([len(d) for d, _ in found], dtype=np.int64)
        if counts.sum() == 0:
            return Detections.empty(names)
        which = np.repeat(np.array([i for _, i in found], dtype=np.int64), counts)
        # how many network pixels each pass gives a pixel of the image: finer views first
        sides = (win.xyxy[:, 2:] - win.xyxy[:, :2]).astype(np.float64)
        fineness = win.scale * np.min(np.array(net) / sides, axis=1)
        local = np.concatenate([d.xyxy for d, _ in found]).astype(np.float64)
        scores = np.concatenate([d.scores for d, _ in found])
        cls = np.concatenate([d.class_ids for d, _ in found])
        origin = win.xyxy[which]
        xyxy = (local + np.tile(origin[:, :2], 2)) / win.scale[which, None]
        if self.edge is not None:
            cut = _cut(local, origin, win.inner[which], self.edge)
            keep = ~_covered_cuts(xyxy, cls, cut, ~cut)
            xyxy, scores, cls, which, cut = (
                xyxy[keep],
                scores[keep],
                cls[keep],
                which[keep],
                cut[keep],
            )
            seen = win.xyxy / win.scale[:, None]  # each pass's window, in original pixels
            keep, joined = _join_pieces(xyxy, scores, cls, cut, seen[which])
            # what is left of an object joined from its pieces: the bits inside it
            keep &= ~_covered_cuts(xyxy, cls, cut & ~joined, joined)
            xyxy, scores, cls, which = xyxy[keep], scores[keep], cls[keep], which[keep]
        # the detector's own measure by default; DIoU on boxes relative to the whole image,
        # as darknet would measure them had it seen the image in one pass
        match = self.match or recipe.nms_kind
        merged = ops.merge(
            xyxy,
            scores,
            None if post.agnostic else cls,
            method=self.merge,
            match=match,
            threshold=post.nms if self.threshold is None else self.threshold,
            priority=fineness[which],
            beta=recipe.beta_nms,
            scale=image,
        )
        keep_ = merged.keep[: post.max_det] if post.max_det else merged.keep
        boxes = merged.xyxy[: len(keep_)].astype(np.float32)
        return Detections(boxes, scores[keep_], cls[keep_], names)


def _scaled(width: int, height: int, scale: float) -> tuple[int, int]:
    """The size of the image scaled by ``scale`` (at least one pixel a side)."""
    if scale == 1.0:
        return width, height
    return max(1, round(width * scale)), max(1, round(height * scale))


def _cut(
    local: npt.NDArray[np.float64],
    origin: npt.NDArray[np.int64],
    inner: npt.NDArray[np.bool_],
    edge: float,
) -> npt.NDArray[np.bool_]:
    """(N,) True for boxes (in their tile's pixels) within ``edge`` (a share of the tile's
    side) of an inner side of their tile."""
    size = np.tile((origin[:, 2:] - origin[:, :2]).astype(np.float64), 2)
    near = np.concatenate([local[:, :2], size[:, 2:] - local[:, 2:]], axis=1) <= edge * size
    out: npt.NDArray[np.bool_] = np.asarray((near & inner).any(axis=1))
    return out


def _covered_cuts(
    xyxy: npt.NDArray[np.float64],
    cls: npt.NDArray[np.int64],
    cut: npt.NDArray[np.bool_],
    covers: npt.NDArray[np.bool_],
) -> npt.NDArray[np.bool_]:
    """(N,) True for the ``cut`` boxes that a larger ``covers`` box of the same class covers
    (IoS of at least `COVER`): pieces of an object that was also seen whole."""
    out = np.zeros(cut.shape[0], dtype=bool)
    pieces, whole = np.flatnonzero(cut), np.flatnonzero(covers)
    if pieces.size == 0 or whole.size == 0:
        return out
    area = (xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1])
    step = max(1, (1 << 16) // whole.size)  # bounds the (step, whole) temporaries
    for lo in range(0, pieces.size, step):
        p = pieces[lo : lo + step]
        m = ops.box_ios(xyxy[p], xyxy[whole]) >= COVER
        m = m & np.equal.outer(cls[p], cls[whole]) & np.less.outer(area[p], area[whole])
        out[p] = m.any(axis=1)
    return out


def _join_pieces(
    xyxy: npt.NDArray[np.float64],
    scores: npt.NDArray[np.float32],
    cls: npt.NDArray[np.int64],
    cut: npt.NDArray[np.bool_],
    seen: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Join the cut boxes that are pieces of one object: two cut boxes of one class from
    different passes are, if they agree where both passes saw the image (cropped to the
    intersection of their windows ``seen`` (N, 4), IoU of at least `AGREE`). Each group of
    pieces becomes its best-scoring piece, grown (in place in ``xyxy``) to their union.
    Returns the (N,) masks of the boxes left and of those grown from several pieces."""
    keep = np.ones(cut.shape[0], dtype=bool)
    joined = np.zeros(cut.shape[0], dtype=bool)
    p = np.flatnonzero(cut)
    if p.size < 2:
        return keep, joined
    box, win = xyxy[p], seen[p]
    # shared window of each pair, and each box of the pair cropped to it: (P, P, 4)
    shared = np.concatenate(
        [
            np.maximum(win[:, None, :2], win[None, :, :2]),
            np.minimum(win[:, None, 2:], win[None, :, 2:]),
        ],
        axis=2,
    )
    lo, hi = shared[..., :2], np.maximum(shared[..., 2:], shared[..., :2])
    a = np.concatenate([np.clip(box[:, None, :2], lo, hi), np.clip(box[:, None, 2:], lo, hi)], 2)
    b = np.concatenate([np.clip(box[None, :, :2], lo, hi), np.clip(box[None, :, 2:], lo, hi)], 2)
    inter = np.prod(
        np.clip(np.minimum(a[..., 2:], b[..., 2:]) - np.maximum(a[..., :2], b[..., :2]), 0, None),
        axis=2,
    )
    area_a = np.prod(a[..., 2:] - a[..., :2], axis=2)
    area_b = np.prod(b[..., 2:] - b[..., :2], axis=2)
    union = area_a + area_b - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        agree = np.where(union > 0, inter / union, 0.0) >= AGREE
    agree &= np.equal.outer(cls[p], cls[p])
    agree &= (win[:, None, :] != win[None, :, :]).any(axis=2)  # different passes only
    agree |= np.eye(p.size, dtype=bool)
    # groups: connected components, by spreading the smallest member index to a fixed point
    label = np.arange(p.size)
    while True:
        new = np.where(agree, label[None, :], p.size).min(axis=1)
        if (new == label).all():
            break
        label = new
    best = np.lexsort((-scores[p], label))  # by group, best score first
    first = np.ones(p.size, dtype=bool)
    first[1:] = label[best][1:] != label[best][:-1]
    starts = np.flatnonzero(first)
    grouped = box[best]
    xyxy[p[best[first]], :2] = np.minimum.reduceat(grouped[:, :2], starts, axis=0)
    xyxy[p[best[first]], 2:] = np.maximum.reduceat(grouped[:, 2:], starts, axis=0)
    keep[p[best[~first]]] = False
    joined[p[best[first]]] = np.diff(np.append(starts, p.size)) > 1
    return keep, joined


class _Clock:
    """Seconds per stage added up over laps (wall time, and the thread's CPU time except for
    the forward pass, which runs on the engine's threads)."""

    def __init__(self, timings: Timings | None) -> None:
        self.timings = timings
        self.wall, self.cpu = time.perf_counter(), time.thread_time()

    def lap(self, stage: str) -> None:
        if self.timings is None:
            return
        wall, cpu = time.perf_counter(), time.thread_time()
        old_wall, old_cpu = self.timings.get(stage, (0.0, 0.0))
        new_cpu = None if stage == "forward" else (old_cpu or 0.0) + cpu - self.cpu
        self.timings[stage] = (old_wall + wall - self.wall, new_cpu)
        self.wall, self.cpu = wall, cpu
