"""`Detections`: the one result type, parallel NumPy arrays, one row per detected object."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from yolocli.io.records import DetectionRecord


@dataclass(frozen=True)
class Detections:
    """Objects found in one image.

    ``xyxy`` (N, 4) float32 pixel boxes (x1, y1, x2, y2) in the original image; ``scores`` (N,)
    float32; ``class_ids`` (N,) int64; ``names`` the model's class names, so ``labels`` can
    say "dog". Select rows like an array: ``dets[dets.scores > 0.5]``, ``dets[:3]``.
    ``track_ids`` (N,) int64 or None: set by a tracker (`yolocli.tracking`), the id of each
    detection's track, -1 where it belongs to none.
    """

    xyxy: npt.NDArray[np.float32]
    scores: npt.NDArray[np.float32]
    class_ids: npt.NDArray[np.int64]
    names: Sequence[str] = field(default=(), repr=False, compare=False)
    track_ids: npt.NDArray[np.int64] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        xyxy = np.asarray(self.xyxy, dtype=np.float32)
        if xyxy.size == 0:
            xyxy = xyxy.reshape(0, 4)
        scores = np.asarray(self.scores, dtype=np.float32)
        class_ids = np.asarray(self.class_ids, dtype=np.int64)
        if xyxy.ndim != 2 or xyxy.shape[1] != 4:
            raise ValueError(f"xyxy must have shape (N, 4), got {xyxy.shape}")
        n = xyxy.shape[0]
        if scores.shape != (n,):
            raise ValueError(f"scores must have shape ({n},) to match xyxy, got {scores.shape}")
        if class_ids.shape != (n,):
            raise ValueError(
                f"class_ids must have shape ({n},) to match xyxy, got {class_ids.shape}"
            )
        object.__setattr__(self, "xyxy", xyxy)
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "class_ids", class_ids)
        if self.track_ids is not None:
            track_ids = np.asarray(self.track_ids, dtype=np.int64)
            if track_ids.shape != (n,):
                raise ValueError(
                    f"track_ids must have shape ({n},) to match xyxy, got {track_ids.shape}"
                )
            object.__setattr__(self, "track_ids", track_ids)

    @classmethod
    def empty(cls, names: Sequence[str] = ()) -> Detections:
        return cls(
            np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64), names
        )

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def __getitem__(self, index: Any) -> Detections:
        """Rows selected by a boolean mask, an index array or a slice (a new `Detections`)."""
        if isinstance(index, int | np.integer):
            index = [int(index)]
        tracks = None if self.track_ids is None else self.track_ids[index]
        return Detections(
            self.xyxy[index], self.scores[index], self.class_ids[index], self.names, tracks
        )

    @property
    def labels(self) -> list[str]:
        """Class names, one per detection (the class id as text where no name is known)."""
        names = self.names
        return [names[i] if 0 <= i < len(names) else str(i) for i in self.class_ids.tolist()]

    def records(self) -> list[DetectionRecord]:
        """One plain dict per detection (label, class_id, score, box, and ``track_id`` where
        tracked: an int, or None for a detection in no track), ready for JSON."""
        records: list[DetectionRecord] = [
            {"label": label, "class_id": cid, "score": score, "box": box}
            for label, cid, score, box in zip(
                self.labels,
                self.class_ids.tolist(),
                np.round(self.scores.astype(np.float64), 6).tolist(),
                np.round(self.xyxy.astype(np.float64), 2).tolist(),
                strict=True,
            )
        ]
        if self.track_ids is not None:
            for record, tid in zip(records, self.track_ids.tolist(), strict=True):
                record["track_id"] = tid if tid >= 0 else None
        return records

    def sorted(self) -> Detections:
        """Highest score first (ties keep their order)."""
        return self[np.argsort(-self.scores, kind="stable")]
