"""`Postprocess`: what is kept of a network's raw candidates, as darknet keeps it.

Separate from `yolocli.detector.Detector` (which network runs, on what) because these settings
never change the forward pass: one loaded network can serve several postprocessings, and every
setting is validated here, once, whoever builds it (library or command line).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from yolocli import ops, options
from yolocli.detections import Detections
from yolocli.errors import OptionError
from yolocli.families.darknet.letterbox import Letterbox
from yolocli.ops import clip_boxes
from yolocli.recipe import Recipe

# Candidates kept for NMS (highest scores first) when a very low conf lets through more:
# NMS work grows with the square of what is left in a cluster, and nothing of note ranks below.
MAX_CANDIDATES = 30_000
_IOU = Recipe()  # IoU NMS, for callers that give no recipe


@dataclass(frozen=True)
class Postprocess:
    """Which (box, class) candidates become detections.

    ``conf``: report scores (objectness x class probability) above this. ``nms``: IoU above
    which a weaker box of the same class is suppressed. ``classes``: only these, as ids or
    names (None: all). ``agnostic``: NMS across classes. ``single_label``: only each box's best
    class (darknet reports a box once for every class above ``conf``). ``max_det``: at most
    this many per image, best first (0: no cap). ``class_conf``: thresholds of their own for
    some classes, by name or id (``{"person": 0.5, "car": 0.3}``); the others keep ``conf``.
    Class names match as darknet or COCO spell them, in any case (``"Motorcycle"`` is
    darknet's ``motorbike``). Every setting is checked for its type and range: a bad one is
    an `OptionError` naming it.
    """

    conf: float = 0.5
    nms: float = 0.45
    classes: tuple[int | str, ...] | str | None = None
    agnostic: bool = False
    single_label: bool = False
    max_det: int = 300
    class_conf: Mapping[int | str, float] | tuple[tuple[int | str, float], ...] | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "conf", options.number("conf", self.conf, 0.0, 1.0))
        set_(self, "nms", options.number("nms", self.nms, 0.0, 1.0))
        set_(self, "agnostic", options.boolean("agnostic", self.agnostic))
        set_(self, "single_label", options.boolean("single_label", self.single_label))
        set_(self, "max_det", options.integer("max_det", self.max_det, 0))
        if self.classes is not None:
            classes = options.names("classes", self.classes)
            if not classes:
                raise OptionError("classes", "the list is empty, so nothing would be reported")
            set_(self, "classes", classes)
        if self.class_conf is not None:
            pairs = self.class_conf
            pairs = dict(pairs) if isinstance(pairs, tuple) else pairs
            set_(self, "class_conf", options.class_thresholds("class_conf", pairs) or None)

    def for_names(self, names: Sequence[str]) -> Postprocess:
        """This postprocessing with ``classes`` and ``class_conf`` as ids of ``names``;
        `OptionError` naming any class the model does not have (with the closest names)."""
        done = self
        if self.classes is not None:
            ids = class_ids(self.classes, names)
            done = replace(done, classes=tuple(sorted(set(ids))))
        pairs = self._pairs()
        if pairs:
            keys = class_ids((k for k, _ in pairs), names, option="class_conf")
            done = replace(done, class_conf=tuple(zip(keys, (t for _, t in pairs), strict=True)))
        return done

    def _pairs(self) -> tuple[tuple[int | str, float], ...]:
        """``class_conf`` as checked: (class, threshold) pairs."""
        return self.class_conf if isinstance(self.class_conf, tuple) else ()

    @property
    def min_conf(self) -> float:
        """The lowest threshold of any class: what the decoder may drop before `apply`."""
        return min([self.conf, *(t for _, t in self._pairs())])

    def thresholds(self, num_classes: int) -> npt.NDArray[np.float32] | float:
        """Each class's threshold, (num_classes,) (``class_conf`` must be ids), or ``conf``
        alone when no class has its own."""
        if not self._pairs():
            return self.conf
        table = np.full(num_classes, self.conf, dtype=np.float32)
        for cid, threshold in self._pairs():
            table[int(cid)] = threshold
        return table

    def allowed(self, num_classes: int) -> npt.NDArray[np.bool_] | None:
        """A (num_classes,) mask of the kept classes (None: all); ``classes`` must be ids."""
        if self.classes is None:
            return None
        mask = np.zeros(num_classes, dtype=bool)
        mask[[int(c) for c in self.classes]] = True
        return mask

    def apply(
        self,
        rows: npt.NDArray[np.float32],
        box: Letterbox,
        names: Sequence[str],
        allowed: npt.NDArray[np.bool_] | None = None,
        recipe: Recipe | None = None,
    ) -> Detections:
        """Detections from one image's candidate rows ``(R, 5 + C)``: network-relative
        (cx, cy, w, h), objectness, then the C class scores (already objectness x class).

        Boxes go back through the letterbox, NMS (the kind ``recipe`` says: IoU, or darknet's
        DIoU; default IoU) runs on the unclipped boxes (as darknet's does), then the kept
        boxes are clipped to the image.
        """
        scores = rows[:, 5:]
        conf = self.thresholds(scores.shape[1])  # one, or one per class
        if self.single_label or (recipe is not None and recipe.single_label):
            cls = scores.argmax(axis=1)
            best = scores[np.arange(scores.shape[0]), cls]
            (idx,) = np.nonzero(best > (conf[cls] if isinstance(conf, np.ndarray) else conf))
            cls, score = cls[idx], best[idx]
        else:
            idx, cls = np.nonzero(scores > conf)
            score = scores[idx, cls]
        if allowed is not None:
            wanted = allowed[cls]
            idx, cls, score = idx[wanted], cls[wanted], score[wanted]
        if score.size > MAX_CANDIDATES:
            top = np.argsort(-score, kind="stable")[:MAX_CANDIDATES]
            idx, cls, score = idx[top], cls[top], score[top]
        if score.size == 0:
            return Detections.empty(names)
        xyxy = box.to_image(rows[idx, :4])
        nms_kind = recipe or _IOU
        by_class = None if self.agnostic else cls

        def nms_of(subset: npt.NDArray[np.intp]) -> npt.NDArray[np.int64]:
            classes = None if by_class is None else by_class[subset]
            size = (box.width, box.height)
            return nms_kind.nms(xyxy[subset], score[subset], self.nms, classes, size)

        # only the first max_det boxes are kept: NMS on the best-scoring few that decide them
        kept = ops.first_kept(nms_of, score, self.max_det or 0)
        boxes = clip_boxes(xyxy[kept], box.width, box.height).astype(np.float32)
        return Detections(boxes, score[kept], cls[kept].astype(np.int64), names)


def class_ids(
    wanted: Iterable[int | str], names: Sequence[str], option: str = "classes"
) -> list[int]:
    """Ids for classes ``wanted`` given as ids, digit strings or names; `OptionError` naming
    ``option`` if one is unknown. A name matches exactly, else as `name_key` makes it (case,
    spacing and COCO's spellings of darknet's names aside: "Dining Table", "motorcycle")."""
    ids = []
    keys: dict[str, int] | None = None
    for item in wanted:
        text = str(item).strip()
        if isinstance(item, int) or text.isdigit():
            cid = int(text)
            if not 0 <= cid < len(names):
                raise OptionError(option, f"class id {cid} is outside 0..{len(names) - 1}")
            ids.append(cid)
        elif text in names:
            ids.append(list(names).index(text))
        elif name_key(text) in (keys := keys or _keys(names)):
            ids.append(keys[name_key(text)])
        else:
            close = difflib.get_close_matches(text.lower(), [n.lower() for n in names], n=3)
            close = [next(n for n in names if n.lower() == c) for c in close]
            hint = f"did you mean {', '.join(close)}? " if close else ""
            shown = text if len(text) <= 40 else text[:40] + "..."
            known = ", ".join(names) if len(names) <= 100 else f"{len(names)} classes"
            raise OptionError(option, f"unknown class {shown!r}; {hint}this model knows: {known}")
    return ids


# COCO's category names where darknet's coco.names spells them differently.
_COCO_SPELLINGS = {
    "motorcycle": "motorbike",
    "airplane": "aeroplane",
    "couch": "sofa",
    "tv": "tvmonitor",
}


def name_key(name: str) -> str:
    """A class name for matching across spellings: case, spaces and darknet's spellings of
    COCO's names aside ("dining table" is "diningtable", "tv" is "tvmonitor")."""
    low = " ".join(name.lower().split())
    return _COCO_SPELLINGS.get(low, low).replace(" ", "")


def _keys(names: Sequence[str]) -> dict[str, int]:
    """`name_key` -> class id; a key two classes share matches neither."""
    keys: dict[str, int] = {}
    for cid, n in enumerate(names):
        key = name_key(n)
        keys[key] = -1 if key in keys else cid
    return {k: v for k, v in keys.items() if v >= 0}
