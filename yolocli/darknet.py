"""Darknet's file formats: reading a network's cfg, and the layout of its weights file.

Knowing how many parameters a cfg needs lets yolocli reject a weights file that belongs to a
different network before OpenCV reads it (OpenCV reports that as an assertion deep inside
its importer, or silently loads the wrong numbers), and lets the benchmarks write
layout-correct random weights for networks whose real weights cannot be fetched.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from yolocli.errors import ModelError
from yolocli.files import looks_like_html

# Layers that keep their input's channel count.
_PASS_THROUGH = {"maxpool", "upsample", "yolo", "region", "dropout", "shortcut", "avgpool"}
_HEADER_V2 = struct.Struct("<iiiq")  # major, minor, revision, images seen (int64 since 0.2)
_HEADER_V1 = struct.Struct("<iiii")


@dataclass(frozen=True)
class Section:
    """One ``[type]`` block of a cfg, with its ``key=value`` options as written."""

    type: str
    options: dict[str, str]
    line: int


@dataclass(frozen=True)
class Conv:
    """A convolutional layer's weight layout, in darknet's storage order."""

    filters: int
    size: int
    in_channels: int
    groups: int
    batch_normalize: bool

    @property
    def counts(self) -> tuple[int, ...]:
        """float32 counts as stored: biases, [BN scales, means, variances], weights."""
        bn = (self.filters,) * 3 if self.batch_normalize else ()
        weights = self.filters * (self.in_channels // self.groups) * self.size * self.size
        return (self.filters, *bn, weights)


@dataclass(frozen=True)
class Network:
    """What yolocli needs to know about a darknet network before loading it."""

    width: int
    height: int
    channels: int
    convs: tuple[Conv, ...]
    classes: int  # of the [yolo]/[region] layers; 0 if there are none

    @property
    def parameter_count(self) -> int:
        return sum(sum(c.counts) for c in self.convs)

    def weights_size(self, header_size: int = _HEADER_V2.size) -> int:
        """Bytes of a weights file for this network (darknet >= 0.2 headers are 20 bytes)."""
        return header_size + 4 * self.parameter_count


def parse_cfg(text: str, source: str = "cfg") -> list[Section]:
    """Split darknet cfg text into sections; a `ModelError` for text that is not a cfg."""
    sections: list[Section] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            if not line.endswith("]"):
                raise ModelError(f"{source}: line {lineno}: unclosed section header {line!r}")
            sections.append(Section(line[1:-1].strip().lower(), {}, lineno))
        elif "=" in line and sections:
            key, _, value = line.partition("=")
            sections[-1].options[key.strip()] = value.strip()
        else:
            raise ModelError(
                f"{source}: line {lineno}: not a darknet cfg line: {raw.strip()[:60]!r}"
            )
    if not sections or sections[0].type not in ("net", "network"):
        raise ModelError(f"{source}: not a darknet cfg (it must start with a [net] section)")
    return sections


def describe(sections: list[Section], source: str = "cfg") -> Network:
    """Trace channel counts through the layers to find every convolution's weight layout."""

    def number(sec: Section, key: str, default: int | None = None) -> int:
        value = sec.options.get(key)
        if value is None:
            if default is None:
                raise ModelError(f"{source}: line {sec.line}: [{sec.type}] needs {key}=")
            return default
        try:
            return int(value)
        except ValueError:
            raise ModelError(
                f"{source}: line {sec.line}: {key}={value} is not a whole number"
            ) from None

    channels = number(sections[0], "channels", 3)
    outputs: list[int] = []  # channels out of each layer, for [route]
    convs: list[Conv] = []
    classes = 0
    for index, sec in enumerate(sections[1:]):
        if sec.type in ("convolutional", "conv"):
            conv = Conv(
                filters=number(sec, "filters"),
                size=number(sec, "size", 1),
                in_channels=channels,
                groups=number(sec, "groups", 1),
                batch_normalize=number(sec, "batch_normalize", 0) != 0,
            )
            convs.append(conv)
            channels = conv.filters
        elif sec.type == "route":
            try:
                refs = [int(x) for x in sec.options["layers"].split(",")]
            except (KeyError, ValueError):
                raise ModelError(
                    f"{source}: line {sec.line}: [route] needs layers=i,j,..."
                ) from None
            total = 0
            for ref in refs:
                j = ref if ref >= 0 else index + ref
                if not 0 <= j < index:
                    raise ModelError(
                        f"{source}: line {sec.line}: [route] refers to missing layer {ref}"
                    )
                total += outputs[j]
            channels = total // number(sec, "groups", 1)
        elif sec.type == "reorg":
            channels *= number(sec, "stride", 2) ** 2
        elif sec.type in _PASS_THROUGH:
            if sec.type in ("yolo", "region"):
                classes = number(sec, "classes", 20)
        else:
            raise ModelError(f"{source}: line {sec.line}: unsupported layer [{sec.type}]")
        outputs.append(channels)
    return Network(
        width=number(sections[0], "width", 416),
        height=number(sections[0], "height", 416),
        channels=number(sections[0], "channels", 3),
        convs=tuple(convs),
        classes=classes,
    )


def read_cfg(path: Path) -> tuple[str, Network]:
    """The text of a cfg file and its `Network`; `ModelError` if it is missing or not a cfg."""
    data = _read_head_checked(path, "cfg file", whole=True)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ModelError(f"{path}: not a darknet cfg (it is not text)") from None
    return text, describe(parse_cfg(text, str(path)), str(path))


def header_size(path: Path) -> int:
    """Size of the header of darknet weights file ``path`` (16 or 20 bytes), as darknet reads it."""
    head = _read_head_checked(path, "weights file")
    if len(head) < _HEADER_V1.size:
        raise ModelError(f"{path}: too short to be a darknet weights file ({len(head)} bytes)")
    major, minor, _revision = struct.unpack_from("<iii", head)
    return (
        _HEADER_V2.size
        if major * 10 + minor >= 2 and major < 1000 and minor < 1000
        else _HEADER_V1.size
    )


def check_weights(network: Network, cfg: Path, weights: Path) -> None:
    """Raise `ModelError` unless ``weights`` holds at least what ``cfg`` needs.

    OpenCV reads the parameters in order and ignores any bytes after them, so a larger file
    loads (and is what some training tools write); a smaller one is a different network.
    """
    need = network.weights_size(header_size(weights))
    have = weights.stat().st_size
    if have < need:
        raise ModelError(
            f"{weights} has {have:,} bytes, but {cfg.name} needs {need:,}: the weights belong to a "
            "different network, or the file is truncated"
        )


def check_names(names: list[str], network: Network, path: Path) -> None:
    if network.classes and len(names) != network.classes:
        raise ModelError(
            f"{path} has {len(names)} class names, but the cfg's output layers have "
            f"{network.classes} classes"
        )


def read_names(path: Path) -> list[str]:
    """Class names, one per line (blank lines ignored)."""
    data = _read_head_checked(path, "names file", whole=True)
    names = [line.strip() for line in data.decode("utf-8", "replace").splitlines() if line.strip()]
    if not names:
        raise ModelError(f"{path}: the names file is empty")
    return names


def with_threshold(cfg_text: str, thresh: float) -> str:
    """``cfg_text`` with ``thresh`` set in every [yolo] and [region] section.

    OpenCV's output layers zero every class score not above the cfg's ``thresh`` (0.2 when
    unset), so any lower confidence threshold must be written into the cfg before loading.
    """
    out: list[str] = []
    in_output_layer = False
    for line in cfg_text.splitlines():
        stripped = line.strip().lower()
        if stripped.startswith("["):
            if in_output_layer:
                out.append(f"thresh={thresh!r}")
            in_output_layer = stripped in ("[yolo]", "[region]")
        elif in_output_layer and re.match(r"thresh\s*=", stripped):
            continue  # replaced by ours at the end of the section
        out.append(line)
    if in_output_layer:
        out.append(f"thresh={thresh!r}")
    return "\n".join(out) + "\n"


def write_random_weights(network: Network, path: Path, seed: int = 0) -> None:
    """Write a darknet 0.2 weights file of the right layout with random values.

    Batch-norm variances are positive, and all values are small, so a forward pass runs at
    full speed on ordinary numbers (speed does not depend on the values otherwise).
    """
    rng = np.random.default_rng(seed)
    with open(path, "wb") as f:
        f.write(_HEADER_V2.pack(0, 2, 0, 0))
        for conv in network.convs:
            for i, count in enumerate(conv.counts):
                is_variance = conv.batch_normalize and i == 3
                values = rng.uniform(0.5, 1.5, count) if is_variance else rng.normal(0, 0.05, count)
                f.write(values.astype("<f4").tobytes())


def _read_head_checked(path: Path, kind: str, whole: bool = False) -> bytes:
    """The first bytes of ``path`` (all of it if ``whole``), refusing HTML and missing files."""
    try:
        with open(path, "rb") as f:
            data = f.read() if whole else f.read(64)
    except FileNotFoundError:
        raise ModelError(f"{path}: no such {kind}") from None
    except IsADirectoryError:
        raise ModelError(f"{path}: is a folder, not a {kind}") from None
    except OSError as err:
        raise ModelError(f"{path}: cannot read the {kind}: {err.strerror}") from None
    if looks_like_html(data[:512]):
        raise ModelError(
            f"{path}: is an HTML page, not a {kind} (a failed download saved as a file?)"
        )
    if not data:
        raise ModelError(f"{path}: the {kind} is empty")
    return data
