"""Reduced precision, opt-in: ``int8`` on ONNX Runtime and ``bf16`` on OpenVINO.

yolocli runs fp32 by default, which reproduces darknet's answers (its parity tests allow a
score difference of 0.005). Both reduced precisions roughly halve the forward pass on a CPU
with the instructions for them, and both move scores (benchmarks/RESULTS.md, "Reduced
precision"; README's "Precision"), so a detection near ``--conf`` can appear or vanish:

- ``int8``: ONNX Runtime's static quantization (QDQ, per-channel, int8 weights and
  activations, MinMax calibration), calibrated on up to `CALIBRATION_IMAGES` images, letterboxed
  as the model's darknet does. The quantized graph is made once per compiled graph and
  calibration set and kept in the model store. Runs on any x86-64 or ARM CPU; fast where the
  CPU has AVX-512 VNNI or AVX-VNNI (AVX2 alone: faster than fp32, less so).
- ``bf16``: OpenVINO's CPU plugin inferring in bfloat16, only where the CPU computes it
  natively (AVX-512 BF16 or AMX): elsewhere OpenVINO would quietly run fp32, so it is refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from yolocli import engines
from yolocli.errors import ImageError, OptionError

if TYPE_CHECKING:
    from yolocli.detector import Plan

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "int8", "bf16")
# the engine each reduced precision runs on
ENGINE = {"int8": "onnxruntime", "bf16": "openvino"}
CALIBRATION_IMAGES = 8  # int8's activation ranges come from this many images, at most
_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def backend_for(precision: str, backend: str, device: str) -> str:
    """The engine that runs ``precision`` given ``--backend`` ``backend`` (``auto`` picks it);
    `OptionError` (precision) saying why not: another engine, a device other than the CPU, the
    engine not installed, a CPU without bfloat16 instructions."""
    if precision not in PRECISIONS:
        raise OptionError(
            "precision", f"unknown precision {precision!r}; choose one of {PRECISIONS}"
        )
    if precision == "fp32":
        return engines.resolve(backend, device)
    needed = ENGINE[precision]
    if device != "cpu":
        raise OptionError("precision", f"{precision} runs on the CPU, not on {device!r}")
    if backend not in ("auto", needed):
        raise OptionError(
            "precision",
            f"{precision} runs on the {needed} engine (--backend {needed} or auto), "
            f"not on {backend}: it runs fp32 only",
        )
    if not engines.installed(needed):
        raise OptionError(
            "precision",
            f"{precision} needs the {needed} engine: pip install 'yolocli[{needed}]'",
        )
    if precision == "bf16":
        from yolocli.engines.devices import cpu_flags

        if not cpu_flags() & set(_BF16_FLAGS):
            raise OptionError(
                "precision",
                "bf16 needs a CPU that computes bfloat16 natively (AVX-512 BF16 or AMX: the "
                "avx512_bf16 or amx_bf16 flag); this CPU has neither, and OpenVINO would run "
                "fp32 instead. int8 runs on any CPU",
            )
    return needed


def calibration_images(paths: Sequence[Path]) -> tuple[Path, ...]:
    """The first `CALIBRATION_IMAGES` of ``paths`` that are files."""
    return tuple(p for p in paths if p.is_file())[:CALIBRATION_IMAGES]


def int8_graph(plan: Plan, fp32: Path) -> Path:
    """``fp32`` (the plan's compiled graph) quantized to int8 on the plan's calibration
    images, made once and kept in the model store; `OptionError` (precision) without any."""
    from yolocli.models.store import Store

    images = plan.calibration
    if not images:
        raise OptionError(
            "precision",
            "int8 is calibrated on images, and this run has none to read from files "
            "(stdin, streams and videos are not used): give at least one image file",
        )
    import onnxruntime

    digests = [hashlib.sha256(p.read_bytes()).hexdigest() for p in images]
    key = "\n".join(
        (fp32.name, str(fp32.stat().st_size), onnxruntime.__version__, "qdq-s8s8-perchannel",
         f"{plan.width}x{plan.height}", str(plan.letterbox), *digests)
    )  # fmt: skip

    def build() -> bytes:
        log.info(
            "quantizing %s to int8 on %d calibration image(s) (once; cached in the model store)",
            plan.info.name,
            len(images),
        )
        return _quantize(fp32, _blobs(plan, images))

    store = plan.store or Store.from_env()
    return store.derived(f"{fp32.stem}.int8.onnx", hashlib.sha256(key.encode()).hexdigest(), build)


def _blobs(plan: Plan, paths: Sequence[Path]) -> Iterator[object]:
    """Each calibration image as the network sees it: (1, 3, H, W) float32."""
    from yolocli.families.darknet.letterbox import Letterboxer
    from yolocli.io import images
    from yolocli.io.inputs import Source, safe_rel

    boxer = Letterboxer(plan.width, plan.height, stretch=not plan.letterbox)
    for path in paths:
        try:
            image = images.decode(images.read_bytes(Source(str(path), path, safe_rel([path.name]))))
        except ImageError as err:
            log.warning("not calibrating on %s: %s", path, err)
            continue
        blob, _ = boxer(image)
        yield blob[None]


@contextlib.contextmanager
def _root_quiet() -> Iterator[None]:
    """ONNX Runtime's quantizer warns through the root logger (advice on pre-processing a
    graph that needs none), which would also install a handler on it: neither, meanwhile."""
    root = logging.getLogger()
    level, guard = root.level, logging.NullHandler()
    root.addHandler(guard)
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.removeHandler(guard)
        root.setLevel(level)


def _quantize(fp32: Path, blobs: Iterator[object]) -> bytes:
    import tempfile

    from onnxruntime import quantization as q

    class Reader(q.CalibrationDataReader):  # type: ignore[misc]
        def get_next(self) -> dict[str, object] | None:
            blob = next(blobs, None)
            return None if blob is None else {"images": blob}

    with tempfile.TemporaryDirectory(prefix="yolocli-int8-") as tmp, _root_quiet():
        out = Path(tmp) / "int8.onnx"
        q.quantize_static(
            str(fp32), str(out), Reader(), quant_format=q.QuantFormat.QDQ, per_channel=True,
            activation_type=q.QuantType.QInt8, weight_type=q.QuantType.QInt8,
            calibrate_method=q.CalibrationMethod.MinMax,
        )  # fmt: skip
        return out.read_bytes()
