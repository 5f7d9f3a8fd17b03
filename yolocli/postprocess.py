"""`Postprocess`: what is kept of a network's raw candidates, as darknet keeps it.

Separate from `yolocli.model.Detector` (which network runs, on what) because these settings
never change the forward pass: one loaded network can serve several postprocessings, and every
setting is validated here, once, whoever builds it (library or command line).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from yolocli.detections import Detections
from yolocli.errors import OptionError
from yolocli.ops import clip_boxes
from yolocli.preprocess import Letterbox
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
    this many per image, best first (0: no cap).
    """

    conf: float = 0.5
    nms: float = 0.45
    classes: tuple[int | str, ...] | None = None
    agnostic: bool = False
    single_label: bool = False
    max_det: int = 300

    def __post_init__(self) -> None:
        if not 0.0 <= self.conf <= 1.0:
            raise OptionError("conf", f"must be in [0, 1], got {self.conf}")
        if not 0.0 <= self.nms <= 1.0:
            raise OptionError("nms", f"must be in [0, 1], got {self.nms}")
        if self.max_det < 0:
            raise OptionError("max_det", f"must be >= 0, got {self.max_det}")
        if self.classes is not None:
            classes = tuple(self.classes)
            if not classes:
                raise OptionError("classes", "the list is empty, so nothing would be reported")
            object.__setattr__(self, "classes", classes)

    def for_names(self, names: Sequence[str]) -> Postprocess:
        """This postprocessing with ``classes`` as ids of ``names``; `OptionError` naming any
        class the model does not have (with the closest names it does have)."""
        if self.classes is None:
            return self
        return replace(self, classes=tuple(sorted(set(class_ids(self.classes, names)))))

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
        if self.single_label or (recipe is not None and recipe.single_label):
            cls = scores.argmax(axis=1)
            best = scores[np.arange(scores.shape[0]), cls]
            (idx,) = np.nonzero(best > self.conf)
            cls, score = cls[idx], best[idx]
        else:
            idx, cls = np.nonzero(scores > self.conf)
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
        kept = (recipe or _IOU).nms(
            xyxy, score, self.nms, None if self.agnostic else cls, (box.width, box.height)
        )
        if self.max_det:
            kept = kept[: self.max_det]
        boxes = clip_boxes(xyxy[kept], box.width, box.height).astype(np.float32)
        return Detections(boxes, score[kept], cls[kept].astype(np.int64), names)


def class_ids(wanted: Iterable[int | str], names: Sequence[str]) -> list[int]:
    """Ids for class ``wanted`` given as ids, digit strings or names; `OptionError` if unknown."""
    ids = []
    for item in wanted:
        text = str(item).strip()
        if isinstance(item, int) or text.isdigit():
            cid = int(text)
            if not 0 <= cid < len(names):
                raise OptionError("classes", f"class id {cid} is outside 0..{len(names) - 1}")
            ids.append(cid)
        elif text in names:
            ids.append(list(names).index(text))
        else:
            close = difflib.get_close_matches(text, list(names), n=3)
            hint = f"did you mean {', '.join(close)}? " if close else ""
            shown = text if len(text) <= 40 else text[:40] + "..."
            known = ", ".join(names) if len(names) <= 100 else f"{len(names)} classes"
            raise OptionError(
                "classes", f"unknown class {shown!r}; {hint}this model knows: {known}"
            )
    return ids
