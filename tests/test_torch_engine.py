"""The torch engine and the tensor letterbox: on the CPU, the same raw heads as the compiled
graph on ONNX Runtime, the reference answers, and the NumPy letterbox's pixels bit for bit;
``--device cuda`` never falls back to the CPU in silence; on a GPU (``gpu`` marker), the same.

Tests that need PyTorch skip without it: CI installs the CPU wheel (``torch==2.13.0``) where
it can; ``pip install 'yolocli[cuda]'`` installs it with CUDA.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from tests.conftest import DATA
from tests.oracle import REFERENCES, assert_reference_answers, photo
from tests.test_compiler import EVERY_LAYER, photo_blob, run_onnx, write_scaled_weights
from yolocli import engines
from yolocli.detector import Detector
from yolocli.engines.devices import CUDA_EXTRA, opencv_has_cuda
from yolocli.errors import DeviceError, EngineError, ImageError, ModelError
from yolocli.families.darknet import cfg as darknet
from yolocli.families.darknet.compiler import compile_onnx
from yolocli.families.darknet.letterbox import Letterboxer
from yolocli.models.store import Store
from yolocli.postprocess import Postprocess

HAVE_TORCH = engines.installed("torch")
needs_torch = pytest.mark.skipif(
    not HAVE_TORCH, reason="PyTorch is not installed (pip install torch, or 'yolocli[cuda]')"
)
PHOTOS = sorted((DATA / "images").iterdir())


def cuda_ready() -> bool:
    if not HAVE_TORCH:
        return False
    import torch

    return bool(torch.cuda.is_available())


needs_gpu = pytest.mark.skipif(not cuda_ready(), reason="no CUDA GPU for PyTorch")


def random_image(width: int, height: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


# -- the tensor letterbox against the NumPy one ---------------------------------------------

# (image width, height, network width, height): odd paddings, upscaling, 1-pixel sides,
# extreme aspect ratios, the network's own size, a non-square network
AWKWARD = [
    (1, 1, 416, 416),
    (1, 9, 416, 416),
    (9, 1, 416, 416),
    (7, 5, 416, 416),
    (415, 417, 416, 416),
    (416, 416, 416, 416),
    (3000, 40, 416, 416),
    (40, 3000, 416, 416),
    (641, 479, 320, 256),
    (2, 2, 32, 32),
]


@needs_torch
@pytest.mark.parametrize("path", PHOTOS, ids=lambda p: p.name)
@pytest.mark.parametrize("rgb_chw", [False, True], ids=["bgr-hwc", "rgb-chw"])
def test_the_tensor_letterbox_gives_the_numpy_pixels_on_the_photos(
    path: Path, rgb_chw: bool
) -> None:
    import torch

    from yolocli.engines.gpu_letterbox import TensorLetterboxer

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    expected, box = Letterboxer(416, 416)(image)
    tensor = torch.from_numpy(image)
    if rgb_chw:  # torchvision's layout
        tensor = tensor.flip(2).permute(2, 0, 1).contiguous()
    got, got_box = TensorLetterboxer(416, 416)(tensor, rgb_chw=rgb_chw)
    assert got_box == box
    assert got.dtype == torch.float32
    np.testing.assert_array_equal(got.numpy(), expected)  # bit for bit


@needs_torch
@pytest.mark.parametrize("stretch", [False, True], ids=["letterbox", "stretch"])
@pytest.mark.parametrize(("width", "height", "net_w", "net_h"), AWKWARD)
def test_the_tensor_letterbox_gives_the_numpy_pixels_at_awkward_sizes(
    width: int, height: int, net_w: int, net_h: int, stretch: bool
) -> None:
    import torch

    from yolocli.engines.gpu_letterbox import TensorLetterboxer

    image = random_image(width, height, seed=width * 7 + height)
    expected, box = Letterboxer(net_w, net_h, stretch=stretch)(image)
    got, got_box = TensorLetterboxer(net_w, net_h, stretch=stretch)(torch.from_numpy(image))
    assert got_box == box
    np.testing.assert_array_equal(got.numpy(), expected)


@needs_torch
def test_a_batch_of_mixed_sizes_letterboxes_each_image_as_alone() -> None:
    import torch

    from yolocli.engines.gpu_letterbox import TensorLetterboxer

    images = [photo(p.name) for p in PHOTOS[:3]] + [random_image(5, 300)]
    letterboxer = TensorLetterboxer(320, 256, cache_size=2)  # plans evicted and rebuilt
    for _ in range(2):
        batch, boxes = letterboxer.batch([torch.from_numpy(im) for im in images])
        assert batch.shape == (4, 3, 256, 320)
        for k, image in enumerate(images):
            expected, box = Letterboxer(320, 256)(image)
            assert boxes[k] == box
            np.testing.assert_array_equal(batch[k].numpy(), expected)


@needs_torch
@pytest.mark.parametrize(
    ("shape", "dtype", "rgb_chw"),
    [
        ((10, 10), "uint8", False),
        ((10, 10, 4), "uint8", False),
        ((3, 10, 10), "uint8", False),
        ((10, 10, 3), "uint8", True),
        ((10, 10, 3), "float32", False),
        ((0, 10, 3), "uint8", False),
    ],
)
def test_what_is_not_an_image_tensor_is_an_image_error(
    shape: tuple[int, ...], dtype: str, rgb_chw: bool
) -> None:
    import torch

    from yolocli.engines.gpu_letterbox import TensorLetterboxer

    tensor = torch.zeros(shape, dtype=getattr(torch, dtype))
    with pytest.raises(ImageError, match=r"expected a .* uint8 image tensor, got shape"):
        TensorLetterboxer(416, 416)(tensor, rgb_chw=rgb_chw)


def test_jpeg_files_are_told_from_others() -> None:
    if not HAVE_TORCH:
        pytest.skip("PyTorch is not installed")
    from yolocli.engines.gpu_letterbox import is_jpeg

    assert is_jpeg((DATA / "images" / "rocket.jpg").read_bytes())
    assert not is_jpeg((DATA / "images" / "coffee.png").read_bytes())
    assert not is_jpeg(b"")


# -- the engine on the CPU -------------------------------------------------------------------


@pytest.fixture(scope="module")
def torch_tiny(real_store: Store) -> Detector:
    if not HAVE_TORCH:
        pytest.skip("PyTorch is not installed")
    post = Postprocess(conf=0.1, nms=0.45)
    return Detector("yolov3-tiny", backend="torch", store=real_store, postprocess=post)


@pytest.fixture(scope="module")
def ort_tiny(real_store: Store) -> Detector:
    pytest.importorskip("onnxruntime")
    return Detector("yolov3-tiny", backend="onnxruntime", store=real_store)


@pytest.mark.parametrize("batch", [1, 3])
def test_the_torch_engine_gives_onnx_runtimes_raw_heads(
    torch_tiny: Detector, ort_tiny: Detector, batch: int
) -> None:
    """The real yolov3-tiny weights on the photos, within 1e-3 (heads reach about 20)."""
    blob = photo_blob(416, 416, PHOTOS[:batch])
    reference = ort_tiny.forward(blob)
    got = torch_tiny.forward(blob)
    assert [g.shape for g in got] == [r.shape for r in reference]
    assert [r.shape[1:] for r in reference] == [(255, 13, 13), (255, 26, 26)]
    assert all(g.dtype == np.float32 and g.flags.c_contiguous for g in got)
    worst = max(float(np.abs(g - r).max()) for g, r in zip(got, reference, strict=True))
    print(f"\n{torch_tiny.engine.name}: max |raw head difference| {worst:.2e}")
    assert worst < 1e-3
    assert max(float(np.abs(r).max()) for r in reference) > 5  # a test that can fail


def test_the_torch_engine_gives_the_reference_answers(torch_tiny: Detector) -> None:
    assert torch_tiny.engine.name.startswith("PyTorch ")
    assert_reference_answers(torch_tiny)


def test_tensors_in_tensors_out(torch_tiny: Detector) -> None:
    """`forward_tensors` keeps the heads as tensors (on the GPU, for decoding there later)."""
    import torch

    engine: Any = torch_tiny.engine
    blob = photo_blob(416, 416, PHOTOS[:2])
    heads = engine.forward_tensors(torch.from_numpy(blob))
    assert all(isinstance(h, torch.Tensor) and h.dtype == torch.float32 for h in heads)
    for tensor, array in zip(heads, torch_tiny.forward(blob), strict=True):
        np.testing.assert_array_equal(tensor.numpy(), array)


@pytest.mark.parametrize("act", ["linear", "leaky", "mish", "logistic", "swish"])
def test_every_layer_type_and_activation_matches_the_compiled_graph(
    tmp_path: Path, act: str
) -> None:
    """Grouped route, size-2 stride-1 and SPP-style pooling, shortcut, upsample, and a
    convolution without batch norm, with weights scaled so heads reach ~10-50."""
    if not HAVE_TORCH:
        pytest.skip("PyTorch is not installed")
    from yolocli.engines.torch import build_module

    cfg = tmp_path / "x.cfg"
    cfg.write_text(EVERY_LAYER.format(act=act))
    network = darknet.read_cfg(cfg)[1]
    weights = tmp_path / "x.weights"
    write_scaled_weights(network, weights)
    blob = photo_blob(64, 64)
    (theirs,) = run_onnx(compile_onnx(network, weights).SerializeToString(), blob)
    import torch

    with torch.inference_mode():
        (ours,) = build_module(network, weights)(torch.from_numpy(blob))
    assert ours.shape == theirs.shape == (2, 18, 64, 64)
    assert np.abs(theirs).max() > 1
    assert np.abs(ours.numpy() - theirs).max() < 1e-3


def test_a_layer_the_engine_cannot_run_is_named(tmp_path: Path) -> None:
    if not HAVE_TORCH:
        pytest.skip("PyTorch is not installed")
    from tests.test_compiler import CONV, HEAD, NET
    from yolocli.engines.torch import build_module

    text = NET + CONV + "[reorg]\nstride=2\n" + HEAD
    network = darknet.describe(darknet.parse_cfg(text, "x.cfg"), "x.cfg")
    weights = tmp_path / "x.weights"
    darknet.write_random_weights(network, weights)
    with pytest.raises(ModelError, match=r"layer 1 \[reorg\]: this layer type is not supported"):
        build_module(network, weights)


def test_another_input_size_follows_the_network(real_store: Store) -> None:
    if not HAVE_TORCH:
        pytest.skip("PyTorch is not installed")
    det = Detector("yolov3-tiny", size=320, backend="torch", store=real_store)
    heads = det.forward(photo_blob(320, 320, PHOTOS[:1]))
    assert [h.shape for h in heads] == [(1, 255, 10, 10), (1, 255, 20, 20)]


# -- choosing the engine, and refusing honestly ---------------------------------------------


@needs_torch
def test_the_torch_engine_runs_on_cpu_and_cuda_but_not_opencl() -> None:
    assert engines.resolve("torch", "cpu") == "torch"
    with pytest.raises(EngineError, match=r"torch engine runs on 'cpu', 'cuda', 'cuda-fp16', not"):
        engines.resolve("torch", "opencl")
    assert engines.resolve("auto", "cpu") != "torch"  # measured slower on CPUs than ORT


@pytest.mark.skipif(cuda_ready(), reason="PyTorch sees a GPU here: nothing to refuse")
@pytest.mark.parametrize("device", ["cuda", "cuda-fp16"])
def test_cuda_without_a_gpu_names_the_extra_and_never_runs_on_the_cpu(
    real_store: Store, device: str
) -> None:
    """Whether torch is missing or CPU-only, the refusal names `pip install 'yolocli[cuda]'`."""
    if opencv_has_cuda():
        pytest.skip("this OpenCV has CUDA: auto takes it")
    assert engines.resolve("auto", device) == "opencv"  # whose device check then refuses
    with pytest.raises(DeviceError) as err:
        Detector("yolov3-tiny", device=device, store=real_store)
    message = str(err.value)
    assert message.startswith(f"device {device!r} needs OpenCV built with CUDA or the torch engine")
    assert CUDA_EXTRA in message
    if HAVE_TORCH:
        assert "CPU-only build" in message  # this machine's torch: the CPU wheel
        refusal = r"CPU-only build \(pip install 'yolocli\[cuda\]'.*; or run on the CPU$"
        with pytest.raises(DeviceError, match=refusal):
            engines.resolve("torch", device)  # before any download


def test_without_torch_the_message_says_it_is_not_installed(
    real_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    if opencv_has_cuda():
        pytest.skip("this OpenCV has CUDA: the refusal cannot happen")
    monkeypatch.setitem(sys.modules, "torch", None)  # what an uninstalled package looks like
    with pytest.raises(DeviceError) as err:
        Detector("yolov3-tiny", device="cuda", store=real_store)
    assert "the torch engine is not installed: pip install 'yolocli[cuda]'" in str(err.value)
    with pytest.raises(EngineError, match=r"pip install 'yolocli\[cuda\]' \(it needs the torch"):
        engines.resolve("torch", "cpu")


# -- on a GPU ---------------------------------------------------------------------------------


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("device", ["cuda", "cuda-fp16"])
def test_on_the_gpu_the_reference_answers(real_store: Store, device: str) -> None:
    """fp32 gives the reference answers; fp16 is reported (its scores move slightly)."""
    assert engines.resolve("auto", device) == "torch"
    post = Postprocess(conf=0.1, nms=0.45)
    det = Detector("yolov3-tiny", device=device, store=real_store, postprocess=post)
    assert det.backend == "torch"
    worst = 0.0
    for path in REFERENCES:
        ref = json.loads(path.read_text())
        dets = det.detect(photo(ref["image"]))
        theirs = sorted(d["score"] for d in ref["detections"])
        if device == "cuda":
            ids = sorted(d["class_id"] for d in ref["detections"])
            assert sorted(dets.class_ids.tolist()) == ids
            np.testing.assert_allclose(sorted(dets.scores.tolist()), theirs, atol=0.005)
        elif len(dets) == len(theirs):
            worst = max(
                worst, float(np.abs(np.subtract(sorted(dets.scores), theirs)).max(initial=0))
            )
    print(f"\n{det.engine.name}: worst score difference from the reference {worst:.4f}")
    assert worst < 0.05


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("path", PHOTOS, ids=lambda p: p.name)
def test_on_the_gpu_the_letterbox_gives_the_numpy_pixels(path: Path) -> None:
    import torch

    from yolocli.engines.gpu_letterbox import TensorLetterboxer

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    expected, _ = Letterboxer(416, 416)(image)
    got, _ = TensorLetterboxer(416, 416, device="cuda")(torch.from_numpy(image))
    assert got.device.type == "cuda"
    diff = float(np.abs(got.cpu().numpy() - expected).max())
    print(f"\n{path.name}: max |GPU - NumPy letterbox| {diff:.2e}")
    assert diff <= 1 / 255  # one 8-bit step at most; bit for bit expected


@pytest.mark.gpu
@needs_gpu
def test_on_the_gpu_nvjpeg_decodes_close_to_opencv() -> None:
    pytest.importorskip("torchvision")
    from yolocli.engines.gpu_letterbox import decode_jpegs

    paths = [p for p in PHOTOS if p.suffix == ".jpg"]
    decoded = decode_jpegs([p.read_bytes() for p in paths], device="cuda")
    for path, tensor in zip(paths, decoded, strict=True):
        assert tensor.device.type == "cuda"
        expected = cv2.imread(str(path), cv2.IMREAD_COLOR)[:, :, ::-1].transpose(2, 0, 1)
        assert tuple(tensor.shape) == expected.shape
        diff = np.abs(tensor.cpu().numpy().astype(int) - expected.astype(int))
        print(f"\n{path.name}: nvJPEG vs OpenCV: max {diff.max()}, mean {diff.mean():.3f}")
        assert diff.mean() < 1.0
