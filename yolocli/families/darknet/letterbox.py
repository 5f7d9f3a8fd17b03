"""Image to network input, exactly as the reference darknet does it, and boxes back again.

Darknet letterboxes: it keeps the aspect ratio, resizes with its own bilinear sampling
(corner-aligned source coordinates, float32 arithmetic on [0, 1] pixels, horizontal pass then
vertical), and centers the result on a 0.5-gray canvas. A plain ``cv2.resize`` of the uint8
image samples at different positions and rounds to uint8, which moves scores by up to 0.05.

Here the same float32 operations run in the same order, bit for bit, but only on the source
rows and columns darknet actually reads (two per output row and column, gathered with one
``cv2.remap`` in nearest mode), so the work is proportional to the network input, not to
the photo: a 4000 px image costs what a 400 px one does. Sampling plans are kept per image
size and shared by the process; each thread reuses one set of work buffers, so a folder of
same-sized photos allocates nothing after the first.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, NamedTuple

import cv2
import numpy as np
import numpy.typing as npt

# darknet's pixel values: (float)(uint8) / 255. computed in double, stored as float
_TO_UNIT = (np.arange(256, dtype=np.float64) / 255.0).astype(np.float32)
_GRAY = np.float32(0.5)


@dataclass(frozen=True)
class Letterbox:
    """Where a (width x height) image lands in a (net_width x net_height) network input.

    ``stretch``: resized to fill the input, aspect ratio not kept (darknet without letterbox).
    """

    width: int
    height: int
    net_width: int
    net_height: int
    stretch: bool = False

    @property
    def new_size(self) -> tuple[int, int]:
        """(new_w, new_h) of the resized image, with darknet's integer arithmetic."""
        w, h, nw, nh = self.width, self.height, self.net_width, self.net_height
        if self.stretch:
            return nw, nh
        if nw / w < nh / h:
            return nw, max(1, (h * nw) // w)
        return max(1, (w * nh) // h), nh

    @property
    def offset(self) -> tuple[int, int]:
        new_w, new_h = self.new_size
        return (self.net_width - new_w) // 2, (self.net_height - new_h) // 2

    def to_image(self, cxcywh: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
        """Network-relative (cx, cy, w, h) boxes, shape (N, 4), to unclipped image-pixel xyxy.

        This is darknet's ``correct_yolo_boxes`` followed by its conversion to pixels,
        including its use of ``(net - new) / 2.`` (a half pixel off the integer offset the
        letterbox used when the padding is odd): the reference's boxes, not a tidier formula.
        """
        new_w, new_h = self.new_size
        nw, nh = self.net_width, self.net_height
        b = np.asarray(cxcywh, dtype=np.float64)
        cx = (b[:, 0] - (nw - new_w) / 2.0 / nw) / (np.float32(new_w) / np.float32(nw))
        cy = (b[:, 1] - (nh - new_h) / 2.0 / nh) / (np.float32(new_h) / np.float32(nh))
        w = b[:, 2] * (np.float32(nw) / np.float32(new_w))
        h = b[:, 3] * (np.float32(nh) / np.float32(new_h))
        out = np.empty((b.shape[0], 4), dtype=np.float64)
        out[:, 0] = (cx - w / 2.0) * self.width
        out[:, 1] = (cy - h / 2.0) * self.height
        out[:, 2] = (cx + w / 2.0) * self.width
        out[:, 3] = (cy + h / 2.0) * self.height
        return out


@dataclass(frozen=True)
class _Axis:
    """darknet's bilinear sampling along one axis: out[i] = w0[i]*src[i0[i]] + w1[i]*src[i1[i]]."""

    i0: npt.NDArray[np.intp]
    i1: npt.NDArray[np.intp]
    w0: npt.NDArray[np.float32]
    w1: npt.NDArray[np.float32]


@functools.lru_cache(maxsize=64)
def _axis(src: int, dst: int) -> _Axis:
    """The sampling plan of darknet's ``resize_image`` from ``src`` to ``dst`` pixels.

    Float32 like the C: ``scale = (float)(src - 1) / (dst - 1)``, ``s = i * scale``,
    ``d = s - (int)s``. The last output pixel takes the last source pixel alone, with weight
    ``1 - d`` (darknet skips the second term there, and so does this plan).
    """
    i = np.arange(dst)
    if dst == 1 or src == 1:
        last = np.full(dst, src - 1, dtype=np.intp)
        return _Axis(last, last, np.ones(dst, np.float32), np.zeros(dst, np.float32))
    scale = np.float32(src - 1) / np.float32(dst - 1)
    s = i.astype(np.float32) * scale
    i0 = s.astype(np.intp)  # truncation, like (int)
    d = s - i0.astype(np.float32)
    i1 = np.minimum(i0 + 1, src - 1)
    w0 = np.float32(1) - d
    w1 = d.copy()
    w1[-1] = 0  # darknet: no second term for the last row/column
    i1[-1] = i0[-1]
    return _Axis(i0, i1, w0.astype(np.float32), w1.astype(np.float32))


def _columns(src: int, dst: int) -> _Axis:
    plan = _axis(src, dst)
    if dst == 1 or src == 1:
        return plan
    # darknet copies the last source column into the last output column (weight exactly 1)
    i0, i1, w0 = plan.i0.copy(), plan.i1.copy(), plan.w0.copy()
    i0[-1] = i1[-1] = src - 1
    w0[-1] = 1
    return _Axis(i0, i1, w0, plan.w1)


def _gather_map(cols: npt.NDArray[np.intp], rows: npt.NDArray[np.intp]) -> npt.NDArray[np.int16]:
    """A map for ``cv2.remap`` in nearest mode that gathers ``image[rows][:, cols]`` exactly:
    OpenCV's packed int16 (x, y) map, the fastest kind to build and to use."""
    packed = np.empty((rows.size, cols.size, 2), dtype=np.int16)
    packed[..., 0] = cols[None, :]
    packed[..., 1] = rows[:, None]
    return packed


# cv2.remap handles images and maps below this size on each side (SHRT_MAX).
_REMAP_LIMIT = 32767
# The letterbox runs in horizontal strips of output rows, each with its work buffers about
# this size (one float32 strip of the resized image), so that a strip's buffers stay in a
# core's L2 cache from the gather to the output: 416 px wide, 26 rows. Whole-image buffers
# (10 MB for a 640 x 427 photo) went out to memory and back at every step: 2.7 ms an image
# alone and 4.4 ms right after a forward pass had emptied the caches, against 2.0 and
# 2.9 ms in strips (OpenCV engine, one thread, Xeon with 2 MB of L2 a core).
_STRIP_BYTES = 128 * 1024


class _Strip(NamedTuple):
    """Output rows ``rows`` of the resized image and what they read: the positions ``src``
    of ``_Plan.src_rows``, the gather maps for those rows, and each output row's two source
    rows (numbered from ``src.start``) with their weights."""

    rows: slice
    src: slice
    maps: list[npt.NDArray[np.int16]] | None
    upper: npt.NDArray[np.intp]
    lower: npt.NDArray[np.intp]
    w_upper: npt.NDArray[np.float32]
    w_lower: npt.NDArray[np.float32]


class _Plan:
    """What letterboxing images of one size needs and never changes: gather maps and weights,
    cut into strips. Shared by every thread (`_plan` caches them for the process)."""

    def __init__(self, box: Letterbox) -> None:
        self.box = box
        new_w, new_h = box.new_size
        cols = _columns(box.width, new_w)
        rows = _axis(box.height, new_h)
        # darknet's horizontal pass depends only on the source row, and neighbouring output
        # rows share source rows (a 427-row photo gives 277 output rows from 427 distinct
        # source rows, not 554): run it once per distinct row, then pick rows for the
        # vertical pass.
        self.src_rows, inverse = np.unique(np.concatenate([rows.i0, rows.i1]), return_inverse=True)
        upper, lower = inverse[:new_h], inverse[new_h:]
        self.src_cols = (cols.i0, cols.i1)
        maps: list[npt.NDArray[np.int16]] | None = None
        if max(box.width, box.height, self.src_rows.size, new_w) < _REMAP_LIMIT:
            # Nearest-neighbour remap with integer coordinates is an exact gather.
            maps = [_gather_map(c, self.src_rows) for c in self.src_cols]
        # Work on (rows, new_w * 3) views so every NumPy loop runs long and contiguous.
        self.col_w = (np.repeat(cols.w0, 3), np.repeat(cols.w1, 3))
        self.new_h, self.new_w = new_h, new_w
        step = max(1, _STRIP_BYTES // (new_w * 3 * 4))
        self.strips: list[_Strip] = []
        for y0 in range(0, new_h, step):
            y1 = min(new_h, y0 + step)
            # (both index runs rise, but darknet's last row may read back one row: min/max)
            r0, r1 = int(upper[y0:y1].min()), int(lower[y0:y1].max()) + 1
            self.strips.append(
                _Strip(
                    rows=slice(y0, y1), src=slice(r0, r1),
                    maps=None if maps is None else [m[r0:r1] for m in maps],
                    upper=upper[y0:y1] - r0, lower=lower[y0:y1] - r0,
                    w_upper=rows.w0[y0:y1, None], w_lower=rows.w1[y0:y1, None],
                )
            )  # fmt: skip
        self.strip_src = max(s.src.stop - s.src.start for s in self.strips)
        self.strip_rows = min(step, new_h)

    def run(self, image: npt.NDArray[np.uint8], out: npt.NDArray[np.float32], work: _Work) -> None:
        h, w = self.new_h, self.new_w
        left, top = self.box.offset
        # the gray canvas: only where the picture does not go
        out[:, :top] = _GRAY
        out[:, top + h :] = _GRAY
        out[:, top : top + h, :left] = _GRAY
        out[:, top : top + h, left + w :] = _GRAY
        work.reserve(self.strip_src, self.strip_rows, w)
        for strip in self.strips:
            n, m = strip.src.stop - strip.src.start, strip.rows.stop - strip.rows.start
            picked, unit, (upper, lower) = work.views(n, m, w)
            for k in range(2):
                if strip.maps is not None:
                    cv2.remap(image, strip.maps[k], None, cv2.INTER_NEAREST, dst=picked[k])  # type: ignore[call-overload, unused-ignore]
                else:  # beyond remap's limits: the same gather in NumPy, slower
                    picked[k][...] = image[self.src_rows[strip.src]][:, self.src_cols[k]]
                cv2.LUT(picked[k], _TO_UNIT_LUT, dst=unit[k])
            part, right = (u.reshape(n, w * 3) for u in unit)
            # horizontal pass: darknet's "part" image, for every source row the strip reads
            part *= self.col_w[0]
            right *= self.col_w[1]
            part += right
            # vertical pass: each output row from its two source rows
            # (mode="clip": the indices are in range by construction, and NumPy's default
            # "raise" copies through a temporary when given ``out``)
            np.take(part, strip.upper, axis=0, out=upper, mode="clip")
            upper *= strip.w_upper
            np.take(part, strip.lower, axis=0, out=lower, mode="clip")
            lower *= strip.w_lower
            upper += lower
            # BGR (H, W, C) -> RGB planes
            planes = upper.reshape(m, w, 3).transpose(2, 0, 1)[::-1]
            out[:, top + strip.rows.start : top + strip.rows.stop, left : left + w] = planes


_TO_UNIT_LUT = _TO_UNIT.reshape(1, 256)


@functools.lru_cache(maxsize=8)
def _plan(box: Letterbox) -> _Plan:
    """The plan for one image size, kept for the process: a folder of a few sizes builds each
    once, whichever thread meets it first."""
    return _Plan(box)


class _Work:
    """One thread's work buffers, sized for the largest strip met so far and never shrunk:
    memory stays flat however many image sizes a folder holds (a strip is bounded by the
    network input's width), and the buffers are reused by every strip of every image."""

    def __init__(self) -> None:
        self.size = 0
        self._picked: list[npt.NDArray[np.uint8]] = []
        self._float: list[npt.NDArray[np.float32]] = []

    def reserve(self, rows: int, h: int, w: int) -> None:
        """Room for `views` of up to ``rows`` source rows and ``h`` output rows, ``w`` wide."""
        n = max(rows, 2 * h) * w * 3
        if n > self.size:
            self.size = n
            self._picked = [np.empty(n, np.uint8) for _ in range(2)]
            self._float = [np.empty(n, np.float32) for _ in range(3)]

    def views(
        self, rows: int, h: int, w: int
    ) -> tuple[
        list[npt.NDArray[np.uint8]],
        list[npt.NDArray[np.float32]],
        list[npt.NDArray[np.float32]],
    ]:
        """(picked, unit, resized) for ``rows`` source rows and an ``h`` x ``w`` strip of the
        resized image: two (rows, w, 3) uint8, two (rows, w, 3) float32, two (h, w * 3)
        float32, all contiguous (`reserve` first)."""
        shape, m = (rows, w, 3), rows * w * 3
        half, resized = h * w * 3, self._float[2]
        return (
            [b[:m].reshape(shape) for b in self._picked],
            [b[:m].reshape(shape) for b in self._float[:2]],
            [resized[i * half : (i + 1) * half].reshape(h, w * 3) for i in range(2)],
        )


class Letterboxer:
    """Darknet's letterbox into a fixed network size.

    ``stretch=True`` resizes to the whole input instead (no letterbox). Sampling plans are
    shared by the process; the work buffers are this object's, so it is not thread-safe:
    give each thread its own.
    """

    def __init__(self, net_width: int, net_height: int, *, stretch: bool = False) -> None:
        self.net_width = net_width
        self.net_height = net_height
        self.stretch = stretch
        self._work = _Work()

    def __call__(
        self, image: npt.NDArray[np.uint8], out: npt.NDArray[np.float32] | None = None
    ) -> tuple[npt.NDArray[np.float32], Letterbox]:
        """Letterbox BGR uint8 ``image`` (H, W, 3) into ``out`` (3, net_h, net_w) RGB float32
        (a new array if not given); returns it and the `Letterbox` geometry."""
        if out is None:
            out = np.empty((3, self.net_height, self.net_width), np.float32)
        height, width = image.shape[:2]
        plan = _plan(Letterbox(width, height, self.net_width, self.net_height, self.stretch))
        plan.run(image, out, self._work)
        return out, plan.box


class RuntimeLetterboxer(Letterboxer):
    """`Letterboxer` run by ONNX Runtime: the same resize (``Resize``, linear, corner-aligned
    source positions: darknet's ``resize_image``) in the engine's own code, on CPU time that
    the forward pass needs on a busy machine. OpenCV splits the photo into RGB planes (0.05 ms),
    the graph scales the pixels to [0, 1] (``DequantizeLinear``: cast and divide in one pass),
    resizes and pads: 1.0-1.5 ms against 1.5-2.4 ms for the exact NumPy version on photos of
    0.14-0.37 megapixels (one core, AVX-512 Xeon).

    The graph reads the whole photo, while the NumPy version gathers only the rows and
    columns darknet samples: past `MAX_AREA_RATIO` times the resized image's area (a
    0.9-megapixel photo into 416 x 234 took 2.0 ms either way, a 2-megapixel one 17 ms
    against 2.0), the NumPy version runs instead.

    Not bit for bit: ONNX Runtime computes the bilinear weights in its own order, and
    multiplies by float32(1/255) where darknet divides by 255, which moves input values by up
    to 5e-5 (a 255th is 4e-3), far inside the parity of the reference tests. Where darknet's
    float32 arithmetic makes its last output row read the next-to-last source row almost
    alone (an artefact the graph would not reproduce), and for images of one row or column,
    the exact `Letterboxer` runs too. Used when the network runs on ONNX Runtime anyway
    (`yolocli.detector.Detector.preprocess`)."""

    MAX_AREA_RATIO = 6

    def __init__(self, net_width: int, net_height: int, *, stretch: bool = False) -> None:
        super().__init__(net_width, net_height, stretch=stretch)
        self._session = runtime_letterbox_session()
        self._sizes = np.array([1, 3, 0, 0], np.int64)
        self._pads = np.zeros(8, np.int64)
        self._planes = np.empty(0, np.uint8)  # grown to the largest photo met, then reused

    def __call__(
        self, image: npt.NDArray[np.uint8], out: npt.NDArray[np.float32] | None = None
    ) -> tuple[npt.NDArray[np.float32], Letterbox]:
        height, width = image.shape[:2]
        box = Letterbox(width, height, self.net_width, self.net_height, self.stretch)
        new_w, new_h = box.new_size
        too_large = height * width > self.MAX_AREA_RATIO * new_h * new_w
        if too_large or not _graph_matches(height, new_h, width, new_w):
            return super().__call__(image, out)
        left, top = box.offset
        self._sizes[2:] = new_h, new_w
        self._pads[2:4] = top, left
        self._pads[6:8] = self.net_height - new_h - top, self.net_width - new_w - left
        if self._planes.size < image.size:
            self._planes = np.empty(image.size, np.uint8)
        planes = self._planes[: image.size].reshape(1, 3, height, width)
        cv2.split(image, [planes[0, 2], planes[0, 1], planes[0, 0]])  # BGR -> RGB planes
        feed = {"planes": planes, "sizes": self._sizes, "pads": self._pads}
        blob = self._session.run(None, feed)[0][0]
        if out is None:
            return blob, box
        out[...] = blob
        return out, box


@functools.lru_cache(maxsize=256)
def _graph_matches(src_h: int, dst_h: int, src_w: int, dst_w: int) -> bool:
    """True if the graph's corner-aligned resize samples where darknet does, up to rounding:
    no axis of one pixel, and darknet's last output row on the last source row."""
    if min(src_h, dst_h, src_w, dst_w) < 2:
        return False
    return int(_axis(src_h, dst_h).i0[-1]) == src_h - 1


@functools.cache
def runtime_letterbox_session() -> Any:
    """One ONNX Runtime session of the letterbox graph for the process (sessions are
    thread-safe); one thread: it runs on the calling thread, beside the forward pass."""
    import onnxruntime as ort

    from yolocli.families.darknet._letterbox_graph import GRAPH

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(GRAPH, options, providers=["CPUExecutionProvider"])


def letterbox(
    image: npt.NDArray[np.uint8], net_width: int, net_height: int
) -> npt.NDArray[np.float32]:
    """A (1, 3, net_height, net_width) RGB float32 blob of the BGR uint8 ``image``, exactly as
    darknet would feed it to the network (convenience; `Letterboxer` reuses its work)."""
    blob, _ = Letterboxer(net_width, net_height)(image)
    return blob[None]
