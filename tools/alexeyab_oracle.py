"""Record AlexeyAB darknet's own detections for the parity tests (tests/test_alexeyab.py).

Usage (from the repository root; tests/data/alexeyab/README.md has the whole recipe):

    python tools/alexeyab_oracle.py --source /path/to/AlexeyAB-darknet [CASE ...]

``--source`` is a checkout of https://github.com/AlexeyAB/darknet (the references were made
at 59596d7). The script patches one thing there, the printing: ``detector test`` also prints
every (box, class) it reports, after its NMS, as ``DET class score x y w h`` (image-relative
centre and size, ``%.9g``). It builds darknet with gcc for the CPU with
``GPU=0 CUDNN=0 OPENCV=0 AVX=0 OPENMP=0`` (AVX=0: the AVX build computes stride-1 max-pool
wrongly, AlexeyAB/darknet#5793, which moves SPP models such as yolov4), writes each case's
random weights (`tests.alexeyab.write_weights`, seeded), runs ``detector test`` on each image
(``-thresh 0.05``, plus ``-letter_box`` for the letterbox runs) and writes
``tests/data/alexeyab/<case>.json``. The weights are not kept: the tests re-make them from
the seed and check their sha256.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.alexeyab import (  # noqa: E402
    CLASS_BIAS,
    OBJECTNESS_BIAS,
    parse_darknet,
    write_weights,
)

DATA = REPO / "tests" / "data"
OUT = DATA / "alexeyab"
THRESH = 0.05
BUILD = ["GPU=0", "CUDNN=0", "OPENCV=0", "AVX=0", "OPENMP=0", "LIBSO=0"]


@dataclass(frozen=True)
class Case:
    cfg: Path
    runs: list[tuple[str, bool]]  # (image, whether darknet is given -letter_box)
    seed: int = 1
    size: int | None = None  # the network input, if not the cfg's (a copy of the cfg says it)
    objectness_bias: float = OBJECTNESS_BIAS  # see tests.alexeyab.write_weights
    class_bias: float = CLASS_BIAS


CASES = {
    "yolov4-tiny": Case(
        REPO / "configs" / "yolov4-tiny.cfg",
        [
            ("chelsea.png", False),
            ("coffee.png", False),
            ("chelsea.png", True),
            ("coffee.png", True),
        ],
    ),
    # new_coords=1 with scale_x_y=2 (the heads' convolutions apply the logistic), diounms
    # with beta_nms=0.8, and [net] letter_box=1: darknet letterboxes without being asked.
    "yolov4-tiny-new-coords": Case(OUT / "yolov4-tiny-new-coords.cfg", [("coffee.png", False)]),
    # at 416 (the cfg says 608), for the tests' sake: yolov4 is 60 GFLOPs a pass at 608
    "yolov4": Case(
        REPO / "configs" / "yolov4.cfg",
        [("coffee.png", False)],
        size=416,
        objectness_bias=-1.75,
        class_bias=-2.0,
    ),
}

# the patch goes right after test_detector's NMS, before it draws the detections
NMS = (
    "            else diounms_sort(dets, nboxes, l.classes, nms, l.nms_kind, l.beta_nms);\n"
    "        }\n"
)
DRAW = (
    "        draw_detections_v3(im, dets, nboxes, thresh, names, alphabet, l.classes,"
    " ext_output);\n"
)
PATCH = """        { /* yolocli oracle: every (box, class) darknet reports, relative to the image */
            int di, dk;
            printf("IMAGE %d %d\\n", im.w, im.h);
            for (di = 0; di < nboxes; ++di) for (dk = 0; dk < l.classes; ++dk)
                if (dets[di].prob[dk] > thresh)
                    printf("DET %d %.9g %.9g %.9g %.9g %.9g\\n", dk, dets[di].prob[dk],
                        dets[di].bbox.x, dets[di].bbox.y, dets[di].bbox.w, dets[di].bbox.h);
        }
"""


def build(source: Path) -> Path:
    """Patch ``source``'s printing (once) and build its darknet for the CPU; its path."""
    detector = source / "src" / "detector.c"
    text = detector.read_text()
    if "yolocli oracle" not in text:
        if text.count(NMS + DRAW) != 1:
            sys.exit(f"{detector}: not the test_detector this patch was written for (59596d7)")
        detector.write_text(text.replace(NMS + DRAW, NMS + PATCH + DRAW))
    subprocess.run(["make", "-j2", *BUILD], cwd=source, check=True, stdout=subprocess.DEVNULL)
    return source / "darknet"


def short(value: float) -> float:
    """Seven significant digits: far finer than the tests' IoU 0.99 / score 0.005."""
    return float(f"{value:.7g}")


def record(binary: Path, case: str, work: Path) -> dict[str, object]:
    spec = CASES[case]
    cfg = spec.cfg
    weights = work / f"{case}.weights"
    text = cfg.read_text()
    sha = write_weights(text, weights, spec.seed, spec.objectness_bias, spec.class_bias)
    if spec.size is not None:
        cfg = work / cfg.name
        sized = re.sub(r"(?m)^(width|height)\s*=.*$", lambda m: f"{m[1]}={spec.size}", text)
        cfg.write_text(sized)
    names = REPO / "configs" / "coco.names"
    data = work / "coco.data"
    data.write_text(f"classes=80\nnames={names}\n")
    out: list[dict[str, object]] = []
    for image, letter_box in spec.runs:
        cmd = [str(binary), "detector", "test", str(data), str(cfg), str(weights),
               str(DATA / "images" / image), "-thresh", str(THRESH), "-dont_show"]  # fmt: skip
        if letter_box:
            cmd.append("-letter_box")
        done = subprocess.run(cmd, cwd=work, check=True, capture_output=True, text=True)
        ((width, height, rows),) = parse_darknet(done.stdout)
        print(f"{case}: {image} letter_box={letter_box}: {len(rows)} detections", file=sys.stderr)
        out.append({
            "image": image, "letter_box": letter_box, "width": width, "height": height,
            "detections": [[int(r[0]), *(short(v) for v in r[1:])] for r in rows],
        })  # fmt: skip
    return {
        "darknet": "AlexeyAB/darknet 59596d7, make " + " ".join(BUILD),
        "cfg": str(spec.cfg.relative_to(REPO)),
        "size": spec.size,
        "seed": spec.seed,
        "objectness_bias": spec.objectness_bias,
        "class_bias": spec.class_bias,
        "weights_sha256": sha,
        "thresh": THRESH,
        "runs": out,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, required=True, help="AlexeyAB/darknet checkout")
    parser.add_argument("cases", nargs="*", default=list(CASES), help=f"of {', '.join(CASES)}")
    args = parser.parse_args()
    binary = build(args.source.resolve())
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for case in args.cases:
            result = record(binary, case, Path(tmp))
            path = OUT / f"{case}.json"
            path.write_text(json.dumps(result, separators=(",", ":")) + "\n")
            print(f"wrote {path.relative_to(REPO)}", file=sys.stderr)


if __name__ == "__main__":
    main()
