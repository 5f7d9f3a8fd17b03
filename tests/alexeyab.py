"""AlexeyAB darknet as an oracle: layout-correct random weights that make every term of its
formulas matter, its recorded detections, and the comparison the parity tests make.

The reference files in ``tests/data/alexeyab/`` were made by ``tools/alexeyab_oracle.py``
(see ``tests/data/alexeyab/README.md``) from AlexeyAB's own ``detector test``; the weights
they ran on are re-made here, bit for bit, from the seed recorded with them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from yolocli.families.darknet import cfg as darknet
from yolocli.ops import box_iou

# Batch-norm variances this small make AlexeyAB's epsilon (1e-5, inside the square root) and
# pjreddie's (1e-6, outside) give visibly different networks.
VARIANCE = (2e-5, 2e-3)
# Biases of the [yolo] heads' objectness and class channels: a few hundred boxes per image
# pass a 0.05 threshold (darknet's NMS is quadratic in them), and they overlap enough for
# IoU- and DIoU-NMS to keep different ones.
OBJECTNESS_BIAS = -5.5
CLASS_BIAS = -2.5
# The gain of a residual branch's last convolution: a [shortcut] adds its input back, so at
# full gain yolov4's 23 of them would multiply the activations' variance by 2**23.
RESIDUAL_GAIN = 0.3

# Parity: a darknet detection is matched by one of yolocli's of the same class with IoU at
# least this and a score this close (the criterion).
MATCH_IOU = 0.99
MATCH_SCORE = 0.005
MATCH_PIXELS = 0.5


def write_weights(
    cfg_text: str,
    path: Path,
    seed: int,
    objectness_bias: float = OBJECTNESS_BIAS,
    class_bias: float = CLASS_BIAS,
) -> str:
    """Write random weights of ``cfg_text``'s layout to ``path``; return their sha256.

    He-scaled convolution weights; batch norms whose scale is about sqrt(variance), so the
    folded factor stays near 1 and a deep network neither explodes nor fades, while the
    variance itself is small (`VARIANCE`); residual branches damped (`RESIDUAL_GAIN`); the
    heads' objectness and class biases shifted by ``objectness_bias`` and ``class_bias``.
    ``np.random.RandomState``: its streams are frozen across NumPy versions.
    """
    network = darknet.describe(darknet.parse_cfg(cfg_text))
    rng = np.random.RandomState(seed)
    heads = _head_convs(network)
    residual = _residual_convs(network)
    out = bytearray(struct_header())
    for index, conv in enumerate(network.convs):
        fan_in = conv.in_channels // conv.groups * conv.size * conv.size
        biases = rng.normal(0.0, 0.1, conv.filters)
        if index in heads:
            per_anchor = 5 + network.classes
            channel = np.arange(conv.filters) % per_anchor
            biases[channel == 4] += objectness_bias
            biases[channel >= 5] += class_bias
        parts = [biases]
        if conv.batch_normalize:
            variances = rng.uniform(*VARIANCE, conv.filters)
            scales = np.sqrt(variances) * rng.uniform(0.5, 1.5, conv.filters)
            if index in residual:
                scales *= RESIDUAL_GAIN
            means = rng.normal(0.0, 0.05, conv.filters)
            parts += [scales, means, variances]
        std = np.sqrt(2.0 / fan_in) if conv.batch_normalize else np.sqrt(1.0 / fan_in)
        parts.append(rng.normal(0.0, std, sum(conv.counts) - sum(p.size for p in parts)))
        for part in parts:
            out += part.astype("<f4").tobytes()
    path.write_bytes(bytes(out))
    return hashlib.sha256(out).hexdigest()


def struct_header() -> bytes:
    """A darknet 0.2 weights header (major, minor, revision, images seen)."""
    return np.array([0, 2, 0], "<i4").tobytes() + np.array([0], "<i8").tobytes()


def _conv_indices(network: darknet.Network) -> dict[int, int]:
    """Layer index -> index among the convolutions, for every convolutional layer."""
    layers = enumerate(network.layers)
    convs = [i for i, layer in layers if layer.section.type == "convolutional"]
    return {layer: k for k, layer in enumerate(convs)}


def _head_convs(network: darknet.Network) -> set[int]:
    """Indices (among the convolutions) of those that feed a [yolo] layer."""
    convs = _conv_indices(network)
    return {
        convs[layer.inputs[0]]
        for layer in network.layers
        if layer.section.type == "yolo" and layer.inputs[0] in convs
    }


def _residual_convs(network: darknet.Network) -> set[int]:
    """Indices (among the convolutions) of those whose output a [shortcut] adds to."""
    convs = _conv_indices(network)
    return {
        convs[j]
        for layer in network.layers
        if layer.section.type == "shortcut"
        for j in layer.inputs
        if j in convs
    }


@dataclass(frozen=True)
class Found:
    """Detections of one image, (N,) class ids and scores and (N, 4) pixel xyxy, clipped."""

    class_ids: np.ndarray
    scores: np.ndarray
    xyxy: np.ndarray


def parse_darknet(stdout: str) -> list[tuple[int, int, list[list[float]]]]:
    """The detections the patched ``detector test`` prints, per image: (width, height, rows
    of [class, score, cx, cy, w, h] relative to the image)."""
    images: list[tuple[int, int, list[list[float]]]] = []
    for line in stdout.splitlines():
        if line.startswith("IMAGE "):
            w, h = (int(v) for v in line.split()[1:3])
            images.append((w, h, []))
        elif line.startswith("DET "):
            images[-1][2].append([float(v) for v in line.split()[1:]])
    return images


def from_record(image: dict[str, object]) -> Found:
    """A recorded image's darknet detections in yolocli's terms: darknet's relative box to
    pixels (``(x - w/2) * width`` ...) and clipped, as yolocli reports boxes."""
    rows = np.asarray(image["detections"], dtype=np.float64).reshape(-1, 6)
    width, height = float(image["width"]), float(image["height"])  # type: ignore[arg-type]
    cx, cy, w, h = rows[:, 2], rows[:, 3], rows[:, 4], rows[:, 5]
    xyxy = np.stack([(cx - w / 2) * width, (cy - h / 2) * height,
                     (cx + w / 2) * width, (cy + h / 2) * height], axis=1)  # fmt: skip
    np.clip(xyxy[:, 0::2], 0, width, out=xyxy[:, 0::2])
    np.clip(xyxy[:, 1::2], 0, height, out=xyxy[:, 1::2])
    return Found(rows[:, 0].astype(np.int64), rows[:, 1], xyxy)


def match(ours: Found, theirs: Found) -> tuple[int, int]:
    """(darknet detections matched, our detections left over), one to one, per class: a
    match has IoU >= `MATCH_IOU` and a score within `MATCH_SCORE`. Boxes wholly outside the
    image (darknet reports them too) have no area once clipped, so no IoU: two of them match
    when their corners are within `MATCH_PIXELS`."""
    matched = 0
    for cls in np.union1d(ours.class_ids, theirs.class_ids):
        a = np.flatnonzero(theirs.class_ids == cls)
        b = np.flatnonzero(ours.class_ids == cls)
        if a.size == 0 or b.size == 0:
            continue
        ok = box_iou(theirs.xyxy[a], ours.xyxy[b]) >= MATCH_IOU
        flat_a, flat_b = _flat(theirs.xyxy[a]), _flat(ours.xyxy[b])
        if flat_a.any() and flat_b.any():
            near = np.abs(theirs.xyxy[a][:, None, :] - ours.xyxy[b][None, :, :]).max(axis=2)
            ok |= np.outer(flat_a, flat_b) & (near <= MATCH_PIXELS)
        ok &= np.abs(np.subtract.outer(theirs.scores[a], ours.scores[b])) <= MATCH_SCORE
        taken = np.zeros(b.size, dtype=bool)
        for i in range(a.size):  # few candidates per row: greedy one-to-one is exact enough
            (cands,) = np.nonzero(ok[i] & ~taken)
            if cands.size:
                taken[cands[0]] = True
                matched += 1
    return matched, int(ours.scores.size - matched)


def _flat(xyxy: np.ndarray) -> np.ndarray:
    """(N,) True for boxes without area."""
    out: np.ndarray = (xyxy[:, 2] <= xyxy[:, 0]) | (xyxy[:, 3] <= xyxy[:, 1])
    return out


def load_reference(path: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads(path.read_text())
    return data
