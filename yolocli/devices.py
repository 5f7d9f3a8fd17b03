"""Compute devices: what ``--device`` may name, and an honest check that it really works.

OpenCV falls back to the CPU with only a log line when a CUDA or OpenCL target is
unavailable; yolocli checks first and says what is missing instead.
"""

from __future__ import annotations

DEVICES = ("cpu", "opencl", "cuda", "cuda-fp16")


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
        raise DeviceError(
            f"device {device!r} needs OpenCV built with CUDA, and this one "
            f"(OpenCV {cv2.__version__}) is not: the pip wheels (opencv-python-headless) are "
            "CPU-only. Build OpenCV from source with -DWITH_CUDA=ON -DWITH_CUDNN=ON "
            "-DOPENCV_DNN_CUDA=ON (keeping 4.x), or run on the CPU"
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
