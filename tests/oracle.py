"""The tests' oracles: the reference darknet's detections on the test photos, and OpenCV 4's
darknet importer."""

from __future__ import annotations

import json
import re

import cv2
import numpy as np

from tests.conftest import DATA
from yolocli.detector import Detector

# The reference darknet's output on each test photo (yolov3-tiny, 416, letterbox, thresh 0.1).
REFERENCES = sorted((DATA / "reference").glob("*.json"))


def photo(name: str) -> np.ndarray:
    """A test photo as cv2.imread gives it (BGR)."""
    return cv2.imread(str(DATA / "images" / name), cv2.IMREAD_COLOR)


def assert_reference_answers(detector: Detector) -> None:
    """``detector`` (conf 0.1) finds on every test photo the reference's classes, with its
    scores within 0.005."""
    for path in REFERENCES:
        ref = json.loads(path.read_text())
        dets = detector.detect(photo(ref["image"]))
        assert sorted(dets.class_ids.tolist()) == sorted(d["class_id"] for d in ref["detections"])
        theirs = sorted(d["score"] for d in ref["detections"])
        np.testing.assert_allclose(sorted(dets.scores.tolist()), theirs, atol=0.005)


def with_threshold(cfg_text: str, thresh: float) -> str:
    """``cfg_text`` with ``thresh`` set in every [yolo] and [region] section.

    OpenCV's output layers zero every class score not above the cfg's ``thresh`` (0.2 when
    unset): comparing with their rows needs the cfg patched to 0 first. yolocli itself never
    patches a cfg (it decodes the raw heads), so this lives with the tests.
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
