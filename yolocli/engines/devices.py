"""Compute devices: what ``--device`` may name, and an honest check that it really works.

OpenCV falls back to the CPU with only a log line when a CUDA or OpenCL target is
unavailable; yolocli checks first and says what is missing instead. CUDA comes from either of
two places: PyTorch with CUDA (the torch engine, ``pip install 'yolocli[cuda]'``), or an
OpenCV built with CUDA and cuDNN; with neither, the message names both ways.
"""

from __future__ import annotations

import importlib.util

DEVICES = ("cpu", "opencl", "cuda", "cuda-fp16")
CUDA_EXTRA = "pip install 'yolocli[cuda]'"


def torch_cuda_problem() -> str | None:
    """Why the torch engine cannot run on an NVIDIA GPU here, or None if it can.

    Imports torch only when it is installed (seconds; only asked about for a CUDA device).
    """
    try:
        if importlib.util.find_spec("torch") is None:
            return f"the torch engine is not installed: {CUDA_EXTRA} (PyTorch with CUDA)"
    except ValueError:  # sys.modules holds None for it: deliberately made unimportable
        return f"the torch engine is not installed: {CUDA_EXTRA} (PyTorch with CUDA)"
    import torch

    if torch.version.cuda is None:
        return (
            f"PyTorch {torch.__version__} is installed but is a CPU-only build ({CUDA_EXTRA} "
            "in a fresh environment gives the CUDA build on Linux; elsewhere, install torch "
            "with CUDA as pytorch.org says)"
        )
    if not torch.cuda.is_available():
        return (
            f"PyTorch {torch.__version__} (CUDA {torch.version.cuda}) sees no NVIDIA GPU "
            "(check the driver, nvidia-smi and CUDA_VISIBLE_DEVICES)"
        )
    return None


def torch_has_cuda() -> bool:
    """True if the torch engine can run on an NVIDIA GPU here."""
    return torch_cuda_problem() is None


def opencv_has_cuda() -> bool:
    """True if this OpenCV was compiled with CUDA (its build information says so)."""
    import cv2

    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("NVIDIA CUDA:"):
            return "YES" in line
    return False


def cuda_devices() -> int:
    """NVIDIA GPUs this OpenCV can use (0 for builds without CUDA)."""
    import cv2

    try:
        return int(cv2.cuda.getCudaEnabledDeviceCount())
    except (cv2.error, AttributeError):
        return 0


def check_device(device: str) -> None:
    """Raise `DeviceError` unless ``device`` really runs in this OpenCV build.

    OpenCV itself only logs "switching to CPU" and carries on, which hides a wrong setup.
    """
    import cv2

    from yolocli.errors import DeviceError

    if device not in DEVICES:
        raise DeviceError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    if device == "opencl" and not (cv2.ocl.haveOpenCL() and _opencl_device()):
        raise DeviceError(
            "device 'opencl': this OpenCV finds no OpenCL device (install your GPU's OpenCL "
            "driver, e.g. an ICD loader and vendor runtime), or run on the CPU"
        )
    if device.startswith("cuda") and not opencv_has_cuda():
        problem = torch_cuda_problem()
        torch_part = (
            "the torch engine runs on this GPU: choose backend 'torch' (or 'auto')"
            if problem is None
            else problem
        )
        raise DeviceError(
            f"device {device!r} needs OpenCV built with CUDA or the torch engine: "
            f"{torch_part}; and this OpenCV ({cv2.__version__}) is not built with CUDA: the pip "
            "wheels (opencv-python-headless) are CPU-only. Build OpenCV from source with "
            "-DWITH_CUDA=ON -DWITH_CUDNN=ON -DOPENCV_DNN_CUDA=ON (keeping 4.x), or run on the CPU"
        )
    if device.startswith("cuda") and cuda_devices() < 1:
        raise DeviceError(
            f"device {device!r}: OpenCV has CUDA but sees no NVIDIA GPU (check the driver, "
            "nvidia-smi and CUDA_VISIBLE_DEVICES), or run on the CPU"
        )


def _opencl_device() -> bool:
    import cv2

    try:
        cv2.ocl.setUseOpenCL(True)
        return bool(cv2.ocl.useOpenCL())
    except cv2.error:
        return False


def cpu_flags() -> frozenset[str]:
    """The CPU's instruction-set flags as Linux lists them (``avx2``, ``avx512_vnni``,
    ``avx512_bf16``, ``amx_bf16``...); empty where /proc/cpuinfo cannot be read."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()
