"""Model families beyond darknet: ONNX files from Ultralytics, YOLOv5/YOLOv7 and YOLOX.

Each family is one small module saying how its reference code prepares an image, decodes the
network's output and keeps boxes (`ultralytics`, `yolov5`, `yolox`; the shared resize-and-pad
is `resize`). This module reads an ONNX file (`read_onnx`), recognises which family made it
(`recognise`: from the metadata Ultralytics and YOLOv5 write, else from the output shapes),
and returns an `OnnxRecipe`: the model's `yolocli.recipe.Recipe` (one small frozen, picklable
object per model) that the detector asks how to prepare an image (`OnnxRecipe.preprocessor`),
how to turn the engine's outputs into candidate rows (`OnnxRecipe.decode`), and which NMS the
family runs (`OnnxRecipe.nms`).

Candidate rows have the darknet decoder's format (`yolocli.families.darknet.heads`): ``(R, 5 + C)``,
network-relative (cx, cy, w, h), an objectness column, then the C class scores, so
`yolocli.postprocess.Postprocess` keeps them as it keeps darknet's.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from yolocli.errors import ModelError
from yolocli.families import ultralytics, yolov5, yolox
from yolocli.families.darknet.heads import YoloHead
from yolocli.families.resize import Padded, fill
from yolocli.models import onnxwire
from yolocli.models.onnxwire import Dim, Shape
from yolocli.recipe import Recipe

log = logging.getLogger(__name__)

# what --family accepts (yolov7 is decoded exactly as yolov5)
FAMILIES = ("ultralytics", "yolov5", "yolov7", "yolox")
# the layouts a recognised model has (an Ultralytics model is one of two)
LAYOUTS = ("ultralytics", "ultralytics-end2end", "yolov5", "yolox", "yolox-decoded")
DEFAULT_SIZE = 640


@dataclass(frozen=True)
class OnnxFile:
    """What recognising a model needs of its ONNX file: metadata, input and output shapes."""

    path: Path
    metadata: Mapping[str, str]
    input_name: str
    input_shape: Shape
    outputs: tuple[tuple[str, Shape], ...]
    ops: frozenset[str] = frozenset()  # the graph's operator types

    def describe(self) -> str:
        """``input images (1, 3, 640, 640); outputs output0 (1, 84, 8400)``, for messages."""
        outs = ", ".join(f"{name} {_shape(s)}" for name, s in self.outputs) or "none"
        return f"input {self.input_name} {_shape(self.input_shape)}; outputs {outs}"


def _shape(shape: Shape) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"


def is_onnx(path: str | Path) -> bool:
    """True if ``path`` names an ONNX file (by its suffix): ``--model my.onnx``."""
    return str(path).lower().endswith(".onnx")


def read_onnx(path: str | Path) -> OnnxFile:
    """The metadata and tensor shapes of the ONNX file at ``path`` (weights not loaded);
    `ModelError` if it is missing or not an ONNX model. Read from the protobuf encoding
    (`yolocli.models.onnxwire.summary`), without importing onnx: 0.6 s saved on every run."""
    p = Path(path)
    if not p.is_file():
        raise ModelError(f"{p}: no such model file")
    try:
        metadata, initializers, graph_inputs, outputs, ops = onnxwire.summary_of(p)
    except OSError as err:
        raise ModelError(f"{p}: cannot read it ({err.strerror})") from None
    except ModelError:
        raise ModelError(f"{p}: not an ONNX model (its protobuf encoding is broken)") from None
    inputs = [(name, dims) for name, dims in graph_inputs if name not in initializers]
    if len(inputs) != 1:
        names = ", ".join(name for name, _ in inputs) or "none"
        raise ModelError(f"{p}: a detector takes one image input; this graph takes {names}")
    return OnnxFile(
        path=p,
        metadata=metadata,
        input_name=inputs[0][0],
        input_shape=inputs[0][1],
        outputs=tuple(outputs),
        ops=frozenset(ops),
    )


@dataclass(frozen=True)
class OnnxRecipe(Recipe):
    """The `yolocli.recipe.Recipe` of one recognised ONNX model: the file, its family's
    layout, and the hooks the pipeline asks (`preprocessor`, `geometry`, `decode`, `nms`).

    ``layout``: one of `LAYOUTS`. ``output``: the index of the engine output to decode.
    ``strides``: the grid strides. ``names``: the class names. ``batch``: the images per
    forward pass the file is fixed at (most exports fix it at 1), None if any. ``why`` (the
    base's): how the family was recognised, for ``-v`` and ``--profile``. Small, frozen and
    picklable: worker processes get it with the plan.
    """

    path: Path = Path()
    layout: str = "ultralytics"
    width: int = DEFAULT_SIZE
    height: int = DEFAULT_SIZE
    names: tuple[str, ...] = ()
    output: int = 0
    strides: tuple[int, ...] = ()
    batch: int | None = None  # images per forward pass the file is fixed at (None: any)

    @property
    def name(self) -> str:
        return _FAMILY_NAMES[self.layout]

    @property
    def classes(self) -> int:
        return len(self.names)

    @property
    def agnostic(self) -> bool:
        """NMS across classes (YOLOX's demo runs it so)."""
        return self.layout.startswith("yolox")

    @property
    def nms_description(self) -> str:
        if self.layout == "ultralytics-end2end":
            return "no NMS (the network keeps one box per object)"
        if self.layout.startswith("yolox"):
            return "best class per box, IoU NMS across classes with pixel-inclusive areas"
        return "best class per box, IoU NMS per class"

    def describe(self) -> str:
        """One line for ``-v`` and ``--profile``: the family, why, the input and the NMS."""
        place = "centred" if self.centred else "top-left"
        pixels = f"{'RGB' if self.rgb else 'BGR'}, {'0-1' if self.scale != 1 else '0-255'}"
        return (
            f"{self.name}, because of its {self.why}: input {self.width}x{self.height} "
            f"letterboxed {place} on gray 114, {pixels}; {self.nms_description}"
        )

    def geometry(self, width: int, height: int, net_width: int, net_height: int) -> Padded:
        """Where a ``width`` x ``height`` image lands in the network input (`Padded`)."""
        if self.layout.startswith("yolox"):
            return yolox.geometry(width, height, net_width, net_height)
        if self.layout == "yolov5":
            return yolov5.geometry(width, height, net_width, net_height)
        return ultralytics.geometry(width, height, net_width, net_height)

    def preprocessor(self, net_width: int, net_height: int) -> _Preparer:
        return _Preparer(self, net_width, net_height)

    def decode(
        self,
        outputs: Sequence[npt.NDArray[np.float32]],
        yolo_heads: Sequence[YoloHead] = (),
        net_width: int = 0,
        net_height: int = 0,
        min_score: float | None = None,
    ) -> npt.NDArray[np.float32]:
        """Candidate rows (R, 5 + C) of ONE image from the engine's outputs (each without the
        batch axis), by the family's decoder; ``min_score``: only rows that can score above
        it. (``yolo_heads`` and the input size are darknet's business: this recipe knows its
        own layout and size.)"""
        if self.output >= len(outputs):
            raise ModelError(
                f"the engine gave {len(outputs)} outputs; the model's is #{self.output}"
            )
        out = outputs[self.output]
        w, h = self.width, self.height
        if self.layout == "ultralytics":
            rows = ultralytics.decode(out, w, h, min_score)
        elif self.layout == "ultralytics-end2end":
            rows = ultralytics.decode_end2end(out, w, h, self.classes, min_score)
        elif self.layout in ("yolov5", "yolox-decoded"):  # boxes in pixels, obj, probabilities
            rows = yolov5.decode(out, w, h, min_score)
        else:
            rows = yolox.decode(out, w, h, self.strides, min_score)
        if rows.shape[1] != 5 + self.classes:
            raise ModelError(
                f"{self.path.name}: its output has {rows.shape[1] - 5} classes, its names "
                f"{self.classes}"
            )
        return rows

    def nms(
        self,
        xyxy: npt.NDArray[np.floating],
        scores: npt.NDArray[np.floating],
        threshold: float,
        class_ids: npt.ArrayLike | None,
        image_size: tuple[int, int],
    ) -> npt.NDArray[np.int64]:
        """The family's NMS: none for end-to-end heads (best first), YOLOX's demo across
        classes with pixel-inclusive areas, else IoU NMS (per class unless ``class_ids`` is
        None)."""
        from yolocli import ops

        if self.layout == "ultralytics-end2end":
            return np.argsort(-np.asarray(scores), kind="stable")
        if self.layout.startswith("yolox"):
            # (x2 - x1 + 1) * (y2 - y1 + 1) areas are the areas of boxes a pixel larger
            grown = np.asarray(xyxy, dtype=np.float64) + np.array([0.0, 0.0, 1.0, 1.0])
            return ops.nms(grown, scores, threshold, None)
        return ops.nms(xyxy, scores, threshold, class_ids)


_FAMILY_NAMES = {
    "ultralytics": "Ultralytics",
    "ultralytics-end2end": "Ultralytics end-to-end",
    "yolov5": "YOLOv5/YOLOv7",
    "yolox": "YOLOX",
    "yolox-decoded": "YOLOX (decoded in the graph)",
}


class _Preparer:
    """image -> (network input (3, H, W) float32, `Padded`) for one recipe; resizing
    allocates per call (``cv2.resize``), so it holds no buffers and any thread may share it."""

    def __init__(self, recipe: OnnxRecipe, net_width: int, net_height: int) -> None:
        self.recipe, self.net_width, self.net_height = recipe, net_width, net_height

    def __call__(
        self, image: npt.NDArray[np.uint8], out: npt.NDArray[np.float32] | None = None
    ) -> tuple[npt.NDArray[np.float32], Padded]:
        r = self.recipe
        box = r.geometry(image.shape[1], image.shape[0], self.net_width, self.net_height)
        return fill(image, box, rgb=r.rgb, unit=r.scale != 1.0, out=out), box


def recognise(
    onnx_file: OnnxFile,
    family: str | None = None,
    names: Sequence[str] | None = None,
    size: tuple[int, int] | None = None,
) -> OnnxRecipe:
    """The `OnnxRecipe` for ``onnx_file``: the family from ``family`` (one of `FAMILIES`), else
    from Ultralytics' or YOLOv5's metadata, else from the output shapes; class names from
    ``names``, else the metadata, else COCO's for 80 classes, else numbers.

    `ModelError` naming the shapes found when the layout fits no family (or not the one
    given); `OptionError` for a ``size`` the file cannot take.
    """
    from yolocli.errors import OptionError

    meta = onnx_file.metadata
    if family is not None and family not in FAMILIES:
        raise OptionError("family", f"unknown family {family!r}; choose one of {FAMILIES}")
    if family is None and ultralytics.is_ultralytics(meta):
        task = meta.get("task", "detect")
        if task != "detect":
            raise ModelError(
                f"{onnx_file.path.name} is an Ultralytics {task!r} model; yolocli runs "
                "detection models (task 'detect')"
            )
        family, reason = "ultralytics", "Ultralytics metadata"
    elif family is None and "stride" in meta and "names" in meta:
        family, reason = "yolov5", "YOLOv5 metadata"
    elif family is not None:
        reason = f"--family {family}"
    else:
        reason = "output shape"
    width, height = _input_size(onnx_file, size)
    layout, output, strides, classes = _layout(onnx_file, family, width, height)
    if layout == "yolox" and "Exp" in onnx_file.ops:
        # exported with decode_in_inference: the grid decode (exp of the sizes) is in the graph
        layout = "yolox-decoded"
    if reason == "output shape":
        reason = f"output shape {_shape(onnx_file.outputs[output][1])}"
    class_names = _names(onnx_file, names, classes)
    yolox_like = layout.startswith("yolox")
    return OnnxRecipe(
        family=layout.split("-")[0], flavour="", why=reason, letterbox=True,
        letterbox_from="the family's", pad_value=114 / 255, centred=not yolox_like,
        rgb=not yolox_like, scale=1.0 if yolox_like else 1.0 / 255.0, bn="none",
        names_from="model" if "names" in meta and names is None else "file",
        single_label=True, path=onnx_file.path, layout=layout, width=width, height=height,
        names=tuple(class_names), output=output, strides=strides,
        batch=batch if isinstance(batch := onnx_file.input_shape[0], int) else None,
    )  # fmt: skip


def _input_size(onnx_file: OnnxFile, size: tuple[int, int] | None) -> tuple[int, int]:
    """(width, height) of the network input: the file's fixed size, else ``size`` (width,
    height), else the
    metadata's ``imgsz``, else 640."""
    from yolocli.errors import OptionError

    shape = onnx_file.input_shape
    if len(shape) != 4 or (shape[1] not in (3, None) and not isinstance(shape[1], str)):
        raise ModelError(
            f"{onnx_file.path.name}: a detector takes (N, 3, H, W) images; {onnx_file.describe()}"
        )
    h, w = shape[2], shape[3]
    if isinstance(h, int) and isinstance(w, int):
        if size is not None and size != (w, h):
            raise OptionError(
                "size", f"{onnx_file.path.name} takes {w}x{h} input only (its shape is fixed)"
            )
        return w, h
    if size is not None:
        return size
    imgsz = ultralytics.imgsz_from_metadata(onnx_file.metadata.get("imgsz", ""))
    if imgsz is not None:
        return imgsz[1], imgsz[0]
    return DEFAULT_SIZE, DEFAULT_SIZE


def _layout(
    onnx_file: OnnxFile, family: str | None, width: int, height: int
) -> tuple[str, int, tuple[int, ...], int]:
    """(layout, output index, strides, classes) of the first output that fits ``family`` (any
    family when None); `ModelError` naming every shape when none fits."""
    for index, (_, shape) in enumerate(onnx_file.outputs):
        if len(shape) != 3:
            continue
        p6 = onnx_file.metadata.get("stride") == "64"
        found = _fits(shape[1], shape[2], family, width, height, p6)
        if found is not None:
            layout, strides, classes = found
            return layout, index, strides, classes
    wanted = (
        "Ultralytics (N, 4 + classes, anchors) or end-to-end (N, boxes, 6), YOLOv5/YOLOv7 "
        "(N, 3 x cells, 5 + classes), YOLOX (N, cells, 5 + classes)"
    )
    if family is not None:
        wanted = {
            "ultralytics": "(N, 4 + classes, anchors) or end-to-end (N, boxes, 6)",
            "yolov5": "(N, 3 x cells, 5 + classes)",
            "yolov7": "(N, 3 x cells, 5 + classes)",
            "yolox": "(N, cells, 5 + classes)",
        }[family]
        wanted = f"a {family} model's output is {wanted}"
    else:
        wanted = "the layouts yolocli knows: " + wanted
    raise ModelError(
        f"{onnx_file.path.name}: no output fits {wanted}, with cells the grid cells of strides "
        f"8-32 at {width}x{height}; found {onnx_file.describe()}. If it is one of these at "
        "another input size, give --size; if its sizes are left open, give --family; for "
        "another family, yolocli cannot decode it"
    )


def _fits(
    d1: Dim, d2: Dim, family: str | None, width: int, height: int, p6: bool = False
) -> tuple[str, tuple[int, ...], int] | None:
    """The (layout, strides, classes) an output (N, d1, d2) has for ``family``, or None.

    A dimension the file leaves open (a dynamic export's ``anchors``) fits the grid at any
    input size; an open anchor count cannot tell YOLOX from YOLOv5, so only ``family`` can.
    ``p6``: the metadata says the largest stride is 64."""
    default = yolox.STRIDES_P6 if p6 else yolox.STRIDES
    if isinstance(d1, int) and not isinstance(d2, int):
        if family in (None, "ultralytics") and d1 >= 5:
            return "ultralytics", default, d1 - 4
        return None
    if isinstance(d2, int) and not isinstance(d1, int):
        if family == "yolox" and d2 >= 6:
            return "yolox", default, d2 - 5
        if family in ("yolov5", "yolov7") and d2 >= 6:
            return "yolov5", default, d2 - 5
        if family == "ultralytics" and d2 == 6:
            return "ultralytics-end2end", (), -1
        return None
    if not (isinstance(d1, int) and isinstance(d2, int)):
        return None
    anchor_free = yolox.strides_for(d2, width, height)
    if family in (None, "ultralytics") and anchor_free is not None and 5 <= d1 < d2:
        return "ultralytics", anchor_free, d1 - 4
    if family in (None, "yolox"):
        strides = yolox.strides_for(d1, width, height)
        if strides is not None and d2 >= 6:
            return "yolox", strides, d2 - 5
    if family in (None, "yolov5", "yolov7"):
        strides = yolox.strides_for(d1, width, height, yolov5.ANCHORS_PER_CELL)
        if strides is not None and d2 >= 6:
            return "yolov5", strides, d2 - 5
    if family in (None, "ultralytics") and d2 == 6 and d1 <= 10_000:
        return "ultralytics-end2end", (), -1  # classes from the names
    return None


def _names(onnx_file: OnnxFile, names: Sequence[str] | None, classes: int) -> list[str]:
    """The class names: given, else the metadata's, else COCO's for 80 classes, else numbers;
    `ModelError` when their number differs from the output's."""
    source = "the names given"
    if names is None and "names" in onnx_file.metadata:
        names = ultralytics.names_from_metadata(onnx_file.metadata["names"])
        source = "its names metadata"
    if names is None and classes == 80:
        from yolocli.families.darknet import cfg as darknet
        from yolocli.models.registry import config_dir

        log.info("no class names in %s: using the COCO names", onnx_file.path.name)
        names = darknet.read_names(config_dir() / "coco.names")
        source = "COCO's names"
    if names is None:
        if classes < 0:
            raise ModelError(
                f"{onnx_file.path.name}: an end-to-end output does not say how many classes the "
                "model has, and the file has no names: give --names"
            )
        return [str(i) for i in range(classes)]
    if classes >= 0 and len(names) != classes:
        raise ModelError(
            f"{onnx_file.path.name}: its output has {classes} classes, but {source} list "
            f"{len(names)}"
        )
    return list(names)


__all__ = ["FAMILIES", "OnnxFile", "OnnxRecipe", "Padded", "is_onnx", "read_onnx", "recognise"]
