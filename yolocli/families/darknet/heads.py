"""Darknet's decoding of raw YOLO head tensors, in NumPy: what a ``[yolo]`` layer computes.

A network compiled to any engine ends at the convolutions that feed its ``[yolo]`` layers;
`decode` turns those raw tensors ``(A*(5+C), H, W)`` into candidate rows ``(R, 5 + C)``:
network-relative (cx, cy, w, h), objectness, then objectness x class probability for each
class. That is the format and the row order of OpenCV's ``[yolo]`` layer (with its cfg
``thresh`` at 0), so `yolocli.postprocess.Postprocess.apply` takes either.

The arithmetic is AlexeyAB darknet's (``src/yolo_layer.c``): ``forward_yolo_layer`` applies
the logistic to x, y, objectness and classes and then ``x * scale_x_y - (scale_x_y - 1) / 2``
to x and y (``scal_add_cpu``); ``get_yolo_box`` adds the cell and divides by the grid, and
takes ``exp(t) * anchor / net`` for w and h (in double, stored as float);
``get_yolo_detections`` reports ``objectness * class`` per class. With ``new_coords=1`` the
convolution has already applied the logistic, so none is applied here, and w and h are
``t * t * 4 * anchor / net``. Floating point follows the C: float32 throughout except the
double ``exp`` for w and h, so results equal darknet's to the last bit or two.

Options of ``[yolo]`` that change inference decoding: ``mask``/``anchors``/``num`` (the masked
anchors), ``classes``, ``scale_x_y`` and ``new_coords``. Everything else the registered cfgs
set there is for training only (``forward_yolo_layer`` returns before using it when not
training): ``jitter``, ``ignore_thresh``, ``truth_thresh``, ``iou_thresh``, ``random``,
``resize``, ``max_delta``, ``cls_normalizer``, ``iou_normalizer``, ``iou_loss``. ``nms_kind``
and ``beta_nms`` do not change decoding but do change darknet's NMS afterwards
(``detector.c`` calls ``diounms_sort`` instead of ``do_nms_sort``); that is NMS's business.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from yolocli.errors import ModelError
from yolocli.families.darknet import cfg as darknet

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class YoloHead:
    """What decoding needs of one ``[yolo]`` layer.

    ``anchors``: the masked anchors, (w, h) pairs in pixels of the network input as the cfg
    gives them (A pairs: the head's tensor has A*(5+classes) channels). ``layer``: the
    ``[yolo]`` layer's darknet index (OpenCV names it ``yolo_<layer>``).
    """

    anchors: tuple[tuple[float, float], ...]
    classes: int
    scale_x_y: float = 1.0
    new_coords: bool = False
    layer: int = -1

    @property
    def channels(self) -> int:
        """Channels of this head's raw tensor: A * (5 + classes)."""
        return len(self.anchors) * (5 + self.classes)

    @property
    def anchor_array(self) -> FloatArray:
        """The masked anchors as an (A, 2) float32 array (darknet keeps them as float)."""
        return np.array(self.anchors, dtype=np.float32).reshape(-1, 2)


def yolo_heads(network: darknet.Network) -> list[YoloHead]:
    """The network's ``[yolo]`` heads in cfg order (the order of its raw outputs).

    `ModelError` for a network without one, or with a ``[region]`` layer (YOLOv2's, which
    decodes differently and is not supported here).
    """
    heads = []
    for index, layer in enumerate(network.layers):
        sec = layer.section
        if sec.type == "region":
            raise ModelError(
                f"line {sec.line}: [region] layers (YOLOv2) are not supported; only [yolo]"
            )
        if sec.type != "yolo":
            continue
        opts = sec.options
        # darknet.describe has checked classes, num, anchors and mask against each other
        values = [float(v) for v in opts["anchors"].split(",")]
        pairs = [(values[2 * m], values[2 * m + 1]) for m in _ints(opts["mask"])]
        heads.append(
            YoloHead(
                anchors=tuple(pairs),
                classes=int(opts["classes"]),
                scale_x_y=_float_option(sec, "scale_x_y", 1.0),
                new_coords=_float_option(sec, "new_coords", 0.0) != 0,
                layer=index,
            )
        )
    if not heads:
        raise ModelError("the network has no [yolo] layer: nothing to decode")
    return heads


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",")]


def _float_option(sec: darknet.Section, key: str, default: float) -> float:
    text = sec.options.get(key)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        line = sec.lines.get(key, sec.line)
        raise ModelError(f"line {line}: [yolo] {key}={darknet.excerpt(text)}: not a number")
    return value


def decode(
    raw: Sequence[npt.NDArray[np.float32]],
    heads: Sequence[YoloHead],
    net_w: int,
    net_h: int,
    min_objectness: float | None = None,
) -> FloatArray:
    """Candidate rows (R, 5 + C) float32 for ONE image from its raw head tensors.

    ``raw[i]`` is head i's tensor (A*(5+C), H_i, W_i), before any activation. Rows are
    OpenCV's ``[yolo]`` rows concatenated over the heads, in its order: cell by cell (row
    major), anchor fastest within a cell.

    ``min_objectness``: only the rows whose objectness is above it, still in that order. Their
    values are the same to the last bit; only they can hold a score above it (a score is
    objectness x a probability of at most 1), and darknet's ``get_yolo_detections`` skips the
    others the same way. Most rows of a photo fall below any useful ``conf``, so this skips
    most of the work.
    """
    _check([np.asarray(r)[None] for r in raw], heads)
    return _decode_image(raw, heads, net_w, net_h, min_objectness)


def _decode_image(
    raw: Sequence[npt.NDArray[np.float32]],
    heads: Sequence[YoloHead],
    net_w: int,
    net_h: int,
    min_objectness: float | None = None,
) -> FloatArray:
    """`decode` of outputs already checked against ``heads``."""
    parts = []
    # exp overflows to inf exactly where darknet's does (a logistic of 0, or an infinite
    # box): the values are darknet's, the warnings are noise.
    with np.errstate(over="ignore"):
        for r, head in zip(raw, heads, strict=True):
            a, k, (h, w) = len(head.anchors), 5 + head.classes, r.shape[1:]
            t = np.asarray(r, dtype=np.float32).reshape(a, k, h * w)
            if min_objectness is None:
                anchor, cell = np.divmod(np.arange(a * h * w), a)[::-1]
            else:
                # (H*W, A): OpenCV's row order; nonzero walks it row major
                cell, anchor = np.nonzero(_logistic(t[:, 4].T, head) > min_objectness)
            columns = t[anchor, :, cell].T  # (K, M): every value of the kept rows
            parts.append(_decode_columns(columns, cell, anchor, head, w, h, net_w, net_h).T)
    return np.concatenate(parts) if len(parts) > 1 else np.ascontiguousarray(parts[0])


def decode_batch(
    raw: Sequence[npt.NDArray[np.float32]],
    heads: Sequence[YoloHead],
    net_w: int,
    net_h: int,
) -> FloatArray:
    """`decode` for a batch: ``raw[i]`` is head i's (N, A*(5+C), H_i, W_i); returns (N, R, 5 + C).

    ``result[j]`` is image j's rows, as `decode` gives them.
    """
    n, total = _check(raw, heads)
    rows = np.empty((n, total, 5 + heads[0].classes), dtype=np.float32)
    for j in range(n):
        rows[j] = _decode_image([r[j] for r in raw], heads, net_w, net_h)
    return rows


def _check(raw: Sequence[npt.NDArray[np.float32]], heads: Sequence[YoloHead]) -> tuple[int, int]:
    """(images, rows per image) of a batch of raw outputs; `ModelError` if they do not fit."""
    if len(raw) != len(heads):
        raise ModelError(f"{len(raw)} raw outputs for {len(heads)} [yolo] heads")
    if not heads:
        raise ModelError("no [yolo] heads to decode")
    classes = heads[0].classes
    n = -1
    total = 0
    for i, (r, head) in enumerate(zip(raw, heads, strict=True)):
        if r.ndim != 4 or r.shape[1] != head.channels:
            raise ModelError(
                f"raw output {i} has shape {tuple(r.shape)}, but its [yolo] head needs "
                f"(N, {head.channels}, H, W)"
            )
        if head.classes != classes:
            raise ModelError(f"head {i} has {head.classes} classes, head 0 has {classes}")
        if n not in (-1, r.shape[0]):
            raise ModelError(f"raw output {i} holds {r.shape[0]} images, output 0 holds {n}")
        n = r.shape[0]
        total += len(head.anchors) * r.shape[2] * r.shape[3]
    return n, total


def _logistic(t: FloatArray, head: YoloHead) -> FloatArray:
    """darknet's ``logistic_activate`` in float32, ``1 / (1 + exp(-t))`` (none with new_coords:
    the convolution has applied it already)."""
    if head.new_coords:
        return t.copy()
    out = np.negative(t)
    np.exp(out, out=out)
    out += np.float32(1)
    np.reciprocal(out, out=out)
    return out


def _decode_columns(
    t: FloatArray,
    cell: npt.NDArray[np.intp],
    anchor: npt.NDArray[np.intp],
    head: YoloHead,
    w: int,
    h: int,
    net_w: int,
    net_h: int,
) -> FloatArray:
    """Decoded values (5 + C, M) of M raw columns ``t`` (5 + C, M) of one head: column m is
    grid cell ``cell[m]`` (row major) of anchor ``anchor[m]``. float32 as the C."""
    out = _logistic(t, head)
    out[5:] *= out[4]
    if head.new_coords:
        # get_yolo_detections keeps a score only if above its thresh (here 0); with the
        # logistic applied above they are never below, here the convolution decides
        np.fmax(out[5:], np.float32(0), out=out[5:])

    # scal_add_cpu: x * scale + beta, beta computed in double from the float scale, then float
    scale = np.float32(head.scale_x_y)
    beta = np.float32(-0.5 * (float(scale) - 1.0))
    xy = out[:2]
    xy *= scale
    xy += beta
    out[0] += (cell % w).astype(np.float32)
    out[0] /= np.float32(w)
    out[1] += (cell // w).astype(np.float32)
    out[1] /= np.float32(h)

    anchors = head.anchor_array[anchor].T  # (2, M)
    if head.new_coords:
        # float arithmetic left to right, as the C: x * x * 4 * anchor / net
        twh = t[2:4]
        wh = twh * twh * np.float32(4) * anchors
        wh /= np.array([[net_w], [net_h]], dtype=np.float32)
        out[2:4] = wh
    else:
        # C's exp() is double: exp(t) * anchor / net in double, stored as float
        wh64 = np.exp(t[2:4].astype(np.float64))
        wh64 *= anchors.astype(np.float64)
        wh64 /= np.array([[net_w], [net_h]], dtype=np.float64)
        out[2:4] = wh64
    return out
