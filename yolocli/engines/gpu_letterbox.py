"""Darknet's letterbox as PyTorch tensor ops, and JPEG decoding on the GPU, to feed a GPU.

At GPU speeds (over a thousand images a second for yolov3 at 416) the CPU cannot decode and
letterbox fast enough; so images can be decoded by nvJPEG (through torchvision) and
letterboxed where they already are. The arithmetic is `families.darknet.letterbox`'s, step for step:
the same sampling plans (corner-aligned source coordinates, the last row and column as darknet
takes them), pixels as ``float32(v) / 255``, the horizontal pass then the vertical one as
separate float32 multiplies and adds (no fused multiply-add), and the 0.5 gray canvas. On CPU
tensors that gives the NumPy `Letterboxer`'s values bit for bit (tests/test_torch_engine.py);
on a GPU the same operations are IEEE float32 too (the ``gpu`` tests check it there).

Needs PyTorch (``pip install 'yolocli[cuda]'``); decoding needs torchvision as well.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from yolocli.errors import EngineError, ImageError
from yolocli.families.darknet.letterbox import Letterbox, _axis, _columns

_GRAY = 0.5
_JPEG_MAGIC = b"\xff\xd8\xff"


@dataclass(frozen=True)
class _TensorPlan:
    """One image size's sampling plan, as tensors on the letterboxer's device."""

    box: Letterbox
    rows: torch.Tensor  # (2 * new_h,) int64: the source rows of both vertical taps
    col0: torch.Tensor  # (new_w,) int64
    col1: torch.Tensor
    col_w0: torch.Tensor  # (new_w,) float32
    col_w1: torch.Tensor
    row_w0: torch.Tensor  # (new_h, 1) float32
    row_w1: torch.Tensor


def _plan(box: Letterbox, device: torch.device) -> _TensorPlan:
    new_w, new_h = box.new_size
    cols = _columns(box.width, new_w)
    rows = _axis(box.height, new_h)

    def put(array: object, dtype: torch.dtype) -> torch.Tensor:
        return torch.as_tensor(array, dtype=dtype).to(device)

    return _TensorPlan(
        box=box,
        rows=torch.cat([put(rows.i0, torch.int64), put(rows.i1, torch.int64)]),
        col0=put(cols.i0, torch.int64),
        col1=put(cols.i1, torch.int64),
        col_w0=put(cols.w0, torch.float32),
        col_w1=put(cols.w1, torch.float32),
        row_w0=put(rows.w0, torch.float32)[:, None],
        row_w1=put(rows.w1, torch.float32)[:, None],
    )


class TensorLetterboxer:
    """`families.darknet.letterbox.Letterboxer` for uint8 image tensors, on any torch device.

    Images are ``(H, W, 3)`` BGR (a ``cv2.imread`` array as a tensor) or, with
    ``rgb_chw=True``, ``(3, H, W)`` RGB (what torchvision decodes). Sampling plans are kept
    per image size on the device. Results are float32 RGB planes, as the engines take them.
    """

    def __init__(
        self,
        net_width: int,
        net_height: int,
        *,
        stretch: bool = False,
        device: str | torch.device = "cpu",
        cache_size: int = 8,
    ) -> None:
        self.net_width = net_width
        self.net_height = net_height
        self.stretch = stretch
        self.device = torch.device(device)
        self._plans: OrderedDict[tuple[int, int], _TensorPlan] = OrderedDict()
        self._cache_size = cache_size

    def plan(self, width: int, height: int) -> _TensorPlan:
        key = (width, height)
        plan = self._plans.get(key)
        if plan is None:
            box = Letterbox(width, height, self.net_width, self.net_height, self.stretch)
            plan = self._plans[key] = _plan(box, self.device)
            if len(self._plans) > self._cache_size:
                self._plans.popitem(last=False)
        else:
            self._plans.move_to_end(key)
        return plan

    def __call__(
        self, image: torch.Tensor, out: torch.Tensor | None = None, *, rgb_chw: bool = False
    ) -> tuple[torch.Tensor, Letterbox]:
        """Letterbox one uint8 ``image`` into ``out`` (3, net_h, net_w) float32 on the
        letterboxer's device (a new tensor if not given); returns it and the geometry."""
        chw = _as_chw(image, rgb_chw).to(self.device, non_blocking=True)
        plan = self.plan(int(chw.shape[2]), int(chw.shape[1]))
        if out is None:
            out = torch.empty(
                (3, self.net_height, self.net_width), dtype=torch.float32, device=self.device
            )
        resized = _resize(chw, plan)
        if not rgb_chw:
            resized = resized.flip(0)  # BGR -> RGB planes
        new_w, new_h = plan.box.new_size
        left, top = plan.box.offset
        out.fill_(_GRAY)
        out[:, top : top + new_h, left : left + new_w] = resized
        return out, plan.box

    def batch(
        self, images: Sequence[torch.Tensor], *, rgb_chw: bool = False
    ) -> tuple[torch.Tensor, list[Letterbox]]:
        """A ``(N, 3, net_h, net_w)`` float32 batch of ``images`` (any sizes) on the device,
        and each image's geometry."""
        out = torch.empty(
            (len(images), 3, self.net_height, self.net_width),
            dtype=torch.float32,
            device=self.device,
        )
        boxes = [self(image, out[k], rgb_chw=rgb_chw)[1] for k, image in enumerate(images)]
        return out, boxes


def _as_chw(image: torch.Tensor, rgb_chw: bool) -> torch.Tensor:
    """A (3, H, W) uint8 view of ``image``, refusing anything else with an `ImageError`."""
    shape = tuple(image.shape)
    ok = image.dtype == torch.uint8 and image.dim() == 3
    ok = ok and (shape[0] == 3 if rgb_chw else shape[2] == 3)
    if not ok or min(shape) < 1:
        layout = "(3, H, W) RGB" if rgb_chw else "(H, W, 3) BGR"
        raise ImageError(
            f"expected a {layout} uint8 image tensor, got shape {shape} of {image.dtype}"
        )
    return image if rgb_chw else image.permute(2, 0, 1)


def _resize(chw: torch.Tensor, plan: _TensorPlan) -> torch.Tensor:
    """darknet's bilinear resize of a (3, H, W) uint8 tensor to (3, new_h, new_w) float32:
    only the source rows and columns darknet reads are gathered and converted."""
    picked = chw.index_select(1, plan.rows)  # (3, 2*new_h, W): both vertical taps' rows
    # float32(v) / 255 equals darknet's (float)(v / 255.) for every v in 0..255 (tested)
    left = picked.index_select(2, plan.col0).to(torch.float32) / 255
    right = picked.index_select(2, plan.col1).to(torch.float32) / 255
    # separate multiplies and adds, in the NumPy letterbox's order, for the same rounding
    part = left * plan.col_w0
    part += right * plan.col_w1
    new_h = plan.row_w0.shape[0]
    resized = part[:, :new_h] * plan.row_w0
    resized += part[:, new_h:] * plan.row_w1
    return resized


def is_jpeg(data: bytes) -> bool:
    """True if ``data`` starts like a JPEG file (what nvJPEG can decode)."""
    return data[:3] == _JPEG_MAGIC


def decode_jpegs(data: Sequence[bytes], device: str | torch.device = "cuda") -> list[torch.Tensor]:
    """JPEG files' bytes decoded to ``(3, H, W)`` RGB uint8 tensors on ``device``: with
    nvJPEG on a CUDA device (one batched call), libjpeg-turbo on the CPU; EXIF orientation
    applied as ``cv2.imread`` applies it. Needs torchvision (`EngineError` naming the extra).

    nvJPEG's IDCT and chroma upsampling may differ from libjpeg's by a step or two on some
    pixels, so detections can differ slightly from the CPU path's on JPEG inputs.
    """
    try:
        from torchvision.io import ImageReadMode, decode_jpeg
    except ImportError:
        raise EngineError(
            "decoding on the GPU needs torchvision: pip install 'yolocli[cuda]'"
        ) from None
    tensors = [torch.frombuffer(bytearray(d), dtype=torch.uint8) for d in data]
    try:
        images = decode_jpeg(
            tensors, mode=ImageReadMode.RGB, device=device, apply_exif_orientation=True
        )
    except RuntimeError as err:
        raise ImageError(f"cannot decode JPEG: {str(err).strip().splitlines()[0]}") from None
    return list(images)
