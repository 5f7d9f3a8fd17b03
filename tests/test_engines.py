"""Engines: each one gives the same raw heads and the reference answers; choosing and
installing them; the compiled graph's cache; ``yolocli export``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import DATA, WEIGHTS_CACHE, run_cli
from tests.oracle import assert_reference_answers, photo
from yolocli import engines
from yolocli.detector import Detector
from yolocli.engines.opencv import has_darknet_importer
from yolocli.errors import EngineError, OptionError
from yolocli.families.darknet.letterbox import letterbox
from yolocli.models.store import Store
from yolocli.postprocess import Postprocess

BACKENDS = ["opencv", "onnxruntime", "openvino"]


@pytest.fixture(scope="module")
def detectors(real_store: Store) -> dict[str, Detector]:
    post = Postprocess(conf=0.1, nms=0.45)
    return {b: Detector("yolov3-tiny", backend=b, store=real_store, postprocess=post)
            for b in BACKENDS}  # fmt: skip


@pytest.fixture(scope="module")
def blob() -> np.ndarray:
    return np.concatenate(
        [letterbox(photo(n), 416, 416) for n in ("motorcycle_left.png", "coffee.png")]
    )


def test_every_engine_gives_the_same_raw_heads(
    detectors: dict[str, Detector], blob: np.ndarray
) -> None:
    """Within 1e-3 (heads reach about 20) of OpenCV's darknet importer where it exists,
    else of ONNX Runtime; batch 2; the shapes are the [yolo] layers' (N, A*(5+C), H, W)."""
    reference = detectors["opencv" if has_darknet_importer() else "onnxruntime"].forward(blob)
    assert [r.shape for r in reference] == [(2, 255, 13, 13), (2, 255, 26, 26)]
    for backend, det in detectors.items():
        got = det.forward(blob)
        worst = max(float(np.abs(g - r).max()) for g, r in zip(got, reference, strict=True))
        print(f"\n{det.engine.name}: max |raw head difference| {worst:.2e}")
        assert worst < 1e-3, backend


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_engine_gives_the_reference_answers(
    detectors: dict[str, Detector], backend: str
) -> None:
    det = detectors[backend]
    assert_reference_answers(det)


def test_auto_takes_the_fastest_installed_engine() -> None:
    assert engines.AUTO_ORDER == ("onnxruntime", "openvino", "opencv")
    assert engines.resolve("auto", "cpu") == "onnxruntime"  # the test extra installs it
    assert engines.resolve("auto", "opencl") == "opencv"  # the only one with OpenCL and CUDA


def test_an_engine_that_is_not_installed_names_its_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # what an uninstalled package looks like
    assert not engines.installed("onnxruntime")
    assert engines.resolve("auto", "cpu") == "openvino"
    with pytest.raises(EngineError, match=r"pip install 'yolocli\[onnxruntime\]'"):
        engines.resolve("onnxruntime", "cpu")
    with pytest.raises(OptionError, match="unknown backend 'tensorrt'"):
        engines.resolve("tensorrt", "cpu")


def test_backend_on_the_command_line(use_real_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    image = str(DATA / "images" / "motorcycle_left.png")
    for backend in BACKENDS:
        result = run_cli("detect", image, "-m", "yolov3-tiny", "--backend", backend, "--no-save",
                         "-f", "jsonl", "--threads", "1")  # fmt: skip
        assert result.exit_code == 0, result.stderr
        assert json.loads(result.stdout)["detections"][0]["label"] == "motorbike"
    monkeypatch.setitem(sys.modules, "openvino", None)
    missing = run_cli("detect", image, "-m", "yolov3-tiny", "--backend", "openvino")
    assert missing.exit_code == 1
    assert missing.stderr == (
        "yolocli: error: the openvino engine is not installed: pip install 'yolocli[openvino]' "
        "(it needs the openvino package)\n"
    )


def test_each_engine_honours_its_thread_count(real_store: Store) -> None:
    ort = Detector("yolov3-tiny", backend="onnxruntime", threads=1, store=real_store).engine
    assert ort.session.get_session_options().intra_op_num_threads == 1  # type: ignore[attr-defined]
    ov = Detector("yolov3-tiny", backend="openvino", threads=1, store=real_store).engine
    assert ov.model.get_property("INFERENCE_NUM_THREADS") == 1  # type: ignore[attr-defined]
    before = cv2.getNumThreads()
    try:
        Detector("yolov3-tiny", backend="opencv", threads=1, store=real_store)
        assert cv2.getNumThreads() == 1
    finally:
        cv2.setNumThreads(before)


def test_the_compiled_graph_is_cached_verified_and_remade_when_wrong(
    tmp_path: Path, tiny_weights: Path
) -> None:
    store = Store.from_env({"YOLOCLI_HOME": str(tmp_path)})
    cfg = DATA.parent.parent / "configs" / "yolov3-tiny.cfg"
    det = Detector(cfg=cfg, weights=tiny_weights, backend="onnxruntime", store=store)
    graph = det.compiled()
    assert graph.parent == tmp_path / "derived"
    assert graph.name.startswith("yolov3-tiny-416x416-")
    made = graph.stat().st_mtime_ns
    assert Detector(cfg=cfg, weights=tiny_weights, store=store).compiled() == graph
    assert graph.stat().st_mtime_ns == made  # used again, not compiled again
    other = Detector(cfg=cfg, weights=tiny_weights, size=320, store=store).compiled()
    assert other != graph  # the size is part of the key
    with open(graph, "r+b") as f:  # corrupt it in place, keeping size and mtime
        f.seek(1000)
        f.write(b"\0" * 16)
    os.utime(graph, ns=(made, made))  # the ctime the kernel set cannot be set back
    again = Detector(cfg=cfg, weights=tiny_weights, backend="onnxruntime", store=store)
    assert again.compiled() == graph
    assert graph.stat().st_mtime_ns != made  # made afresh
    assert len(again.detect(photo("motorcycle_left.png"))) > 0


def test_export_writes_a_graph_onnx_runtime_runs_with_batch_2(
    tmp_path: Path, use_real_store: Path, real_store: Store, blob: np.ndarray
) -> None:
    import onnxruntime as ort

    out = tmp_path / "t.onnx"
    result = run_cli("export", "yolov3-tiny", "-o", str(out))
    assert result.exit_code == 0, result.stderr
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["images"]
    heads = session.run(None, {"images": blob})
    assert [h.shape for h in heads] == [(2, 255, 13, 13), (2, 255, 26, 26)]
    ours = Detector("yolov3-tiny", backend="onnxruntime", store=real_store).forward(blob)
    for mine, theirs in zip(ours, heads, strict=True):
        np.testing.assert_allclose(mine, theirs, atol=1e-5)
    small = run_cli("export", "yolov3-tiny", "--size", "320", "-o", str(tmp_path / "s.onnx"))
    assert small.exit_code == 0
    session = ort.InferenceSession(str(tmp_path / "s.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_outputs()[0].shape[2:] == [10, 10]
    bad = run_cli("export", "yolov3-tiny", "--size", "100", "-o", str(tmp_path / "x.onnx"))
    assert bad.exit_code == 2
    assert "Invalid value for '--size'" in bad.stderr


def test_the_library_keeps_opencvs_own_warnings_off_stderr(tiny_weights: Path) -> None:
    """Bug 9 of the everyday-use pass: every Detector on OpenCV 5 printed "[ WARN:0@0.177]
    ... setPreferableTarget Targets are not supported by the new graph engine"."""
    code = (
        "from yolocli import Detector; from yolocli.models.store import Store; "
        f"Detector('yolov3-tiny', backend='opencv', store=Store.from_env("
        f"{{'YOLOCLI_HOME': {str(WEIGHTS_CACHE)!r}, 'YOLOCLI_OFFLINE': '1'}}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


def test_onnx_runtime_keeps_its_optimized_graph_and_opens_it_unoptimized(
    tmp_path: Path, tiny_weights: Path, blob: np.ndarray
) -> None:
    import onnxruntime as ort

    from yolocli.engines.onnxruntime import session_options

    store = Store.from_env({"YOLOCLI_HOME": str(tmp_path)})
    cfg = DATA.parent.parent / "configs" / "yolov3-tiny.cfg"
    first = Detector(cfg=cfg, weights=tiny_weights, backend="onnxruntime", store=store)
    (kept,) = (tmp_path / "derived").glob("*.ort-*.bin")
    made = kept.stat().st_mtime_ns
    again = Detector(cfg=cfg, weights=tiny_weights, backend="onnxruntime", store=store)
    assert kept.stat().st_mtime_ns == made  # opened, not made again
    level = again.engine.session.get_session_options().graph_optimization_level  # type: ignore[attr-defined]
    assert level == ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    # the same numbers as a session that optimizes the compiled graph itself
    plain = ort.InferenceSession(str(first.compiled()), session_options(None))
    want = plain.run(None, {"images": blob})
    for got in (first.forward(blob), again.forward(blob)):
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(g, w)
    # a cached copy changed in place (size and modification time kept) no longer matches its
    # signed record in the store: it is made again, never loaded
    with open(kept, "r+b") as f:
        f.write(b"not a graph" * 8)
    os.utime(kept, ns=(made, made))
    broken = Detector(cfg=cfg, weights=tiny_weights, backend="onnxruntime", store=store)
    assert not kept.read_bytes().startswith(b"not a graph")
    level = broken.engine.session.get_session_options().graph_optimization_level  # type: ignore[attr-defined]
    assert level == ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    np.testing.assert_array_equal(broken.forward(blob)[0], want[0])


@pytest.mark.parametrize("align", [64, 1 << 16])
def test_a_packed_graph_maps_its_weights_and_runs_as_onnx_runtime_wrote_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, align: int
) -> None:
    """The packed file (graph, then its weights) opens with the weights mapped from it, and
    gives the numbers of the graph ONNX Runtime wrote; an alignment smaller than the graph
    (64 bytes) makes room past it, offsets moved again."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from yolocli.engines import onnxruntime as engine

    rng = np.random.default_rng(0)
    weights = [rng.standard_normal((8, c, 3, 3)).astype(np.float32) for c in (3, 8, 8)]
    nodes = [
        helper.make_node("Conv", [src, f"w{i}"], [f"y{i}"], pads=[1, 1, 1, 1])
        for i, src in enumerate(["x", "y0", "y1"])
    ]
    model = helper.make_model(
        helper.make_graph(
            nodes, "convs",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
            [helper.make_tensor_value_info("y2", TensorProto.FLOAT, [1, 8, 16, 16])],
            [numpy_helper.from_array(w, f"w{i}") for i, w in enumerate(weights)],
        ),
        opset_imports=[helper.make_opsetid("", 17)],
    )  # fmt: skip
    source = tmp_path / "convs.onnx"
    onnx.save(model, source)
    out = tmp_path / "optimized.onnx"
    options = engine.session_options(1, True, out)
    options.add_session_config_entry(
        "session.optimized_model_external_initializers_file_name", "weights.bin"
    )
    ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
    assert (tmp_path / "weights.bin").stat().st_size >= sum(w.nbytes for w in weights) // 2

    monkeypatch.setattr(engine, "_ALIGN", align)
    packed = tmp_path / "store" / "convs.ort-0123.bin"
    packed.parent.mkdir()
    packed.write_bytes(engine._pack(out, tmp_path / "weights.bin", packed.name))
    assert packed.read_bytes().startswith(engine._MAGIC)
    (tmp_path / "weights.bin").unlink()  # the packed file needs nothing else
    x = rng.standard_normal((1, 3, 16, 16)).astype(np.float32)
    want = ort.InferenceSession(str(source), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    got = engine._open_packed(packed, 1).run(None, {"x": x})
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="not a packed graph"):
        engine._open_packed(source, 1)


def test_export_never_replaces_a_file_it_did_not_write(
    tmp_path: Path, use_real_store: Path
) -> None:
    """Export follows detect's rule: a JPEG at the name stays (exit 2) unless --force; a
    graph yolocli exported before is replaced; a missing folder is never created."""
    precious = tmp_path / "precious.jpg"
    precious.write_bytes(b"\xff\xd8\xff\xe0 a photo")
    refused = run_cli("export", "yolov3-tiny", "-o", str(precious))
    assert refused.exit_code == 2
    assert "is not a graph yolocli exported" in refused.stderr
    assert "--force" in refused.stderr
    assert precious.read_bytes() == b"\xff\xd8\xff\xe0 a photo"

    graph = tmp_path / "t.onnx"
    assert run_cli("export", "-m", "yolov3-tiny", "-o", str(graph)).exit_code == 0
    again = run_cli("export", "--model", "yolov3-tiny", "--size", "320", "-o", str(graph))
    assert again.exit_code == 0, again.stderr  # its own earlier export: replaced
    forced = run_cli("export", "yolov3-tiny", "-o", str(precious), "--force")
    assert forced.exit_code == 0
    assert precious.read_bytes()[:2] != b"\xff\xd8"  # an ONNX graph now

    nowhere = tmp_path / "nonexistent" / "dir" / "x.onnx"
    missing = run_cli("export", "yolov3-tiny", "-o", str(nowhere))
    assert missing.exit_code == 2
    assert "does not exist" in missing.stderr
    assert not (tmp_path / "nonexistent").exists()

    two = run_cli("export", "yolov3-tiny", "-m", "yolov3", "-o", str(graph))
    assert two.exit_code == 2
    assert "two models given" in two.stderr
