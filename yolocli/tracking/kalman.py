"""A constant-velocity Kalman filter over many boxes at once, stepped by elapsed time.

The state of a box is ``(cx, cy, a, h, vcx, vcy, va, vh)``: centre, aspect ratio w/h, height
and their velocities, as in ByteTrack's and DeepSORT's ``KalmanFilter``, with the same noise
model (standard deviations proportional to the box height). Those filters advance one *frame*
per step; this one advances by ``dt`` seconds, counted in steps of `STEP` (1/30 s, the frame
interval those noise constants were tuned at), so a skipped frame (``--vid-stride``, a camera
that keeps only its newest frame, a dropped stream packet) is a longer step, not a lost one.

All functions work on stacks: ``mean`` (N, 8), ``cov`` (N, 8, 8), ``dt`` (N,) or a scalar;
they return new arrays.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]

STEP = 1 / 30  # seconds in one motion step: the frame interval the noise constants assume
POSITION_STD = 1 / 20  # of the box height, per step (ByteTrack's _std_weight_position)
VELOCITY_STD = 1 / 160  # of the box height, per step (ByteTrack's _std_weight_velocity)


def xyxy_to_xyah(xyxy: npt.ArrayLike) -> F64:
    """(N, 4) corners as (N, 4) centre x, centre y, aspect w/h, height."""
    b = np.asarray(xyxy, np.float64).reshape(-1, 4)
    w = b[:, 2] - b[:, 0]
    h = np.maximum(b[:, 3] - b[:, 1], 1.0)  # a flat box (clipped at an edge) stays tractable
    return np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, w / h, h], axis=1)


def xyah_to_xyxy(xyah: npt.ArrayLike) -> F64:
    """(N, 4+) centre x, centre y, aspect, height (extra columns ignored) as (N, 4) corners."""
    s = np.asarray(xyah, np.float64)
    if s.size == 0:
        return np.zeros((0, 4))
    w = s[:, 2] * s[:, 3]
    half = np.stack([w, s[:, 3]], axis=1) / 2
    return np.concatenate([s[:, :2] - half, s[:, :2] + half], axis=1)


def initiate(xyah: F64) -> tuple[F64, F64]:
    """A new state for each (N, 4) measurement: zero velocity, ByteTrack's initial spread."""
    n = len(xyah)
    mean = np.concatenate([xyah, np.zeros((n, 4))], axis=1)
    h = xyah[:, 3]
    p, v = POSITION_STD, VELOCITY_STD
    std = np.stack(
        [2 * p * h, 2 * p * h, np.full(n, 1e-2), 2 * p * h,
         10 * v * h, 10 * v * h, np.full(n, 1e-5), 10 * v * h],
        axis=1,
    )  # fmt: skip
    cov = np.zeros((n, 8, 8))
    idx = np.arange(8)
    cov[:, idx, idx] = std**2
    return mean, cov


# Per-step process noise: standard deviations proportional to the box height, plus a fixed
# variance for the aspect ratio and its velocity (ByteTrack's values).
_NOISE_STD = np.array([POSITION_STD, POSITION_STD, 0, POSITION_STD,
                       VELOCITY_STD, VELOCITY_STD, 0, VELOCITY_STD])  # fmt: skip
_NOISE_FIXED = np.array([0, 0, 1e-4, 0, 0, 0, 1e-10, 0])
_MEASURE_STD = np.array([POSITION_STD, POSITION_STD, 0, POSITION_STD])
_MEASURE_FIXED = np.array([0, 0, 1e-2, 0])
_I8 = np.arange(8)
_I4 = np.arange(4)


def predict(mean: F64, cov: F64, dt: npt.ArrayLike) -> tuple[F64, F64]:
    """Each state moved on by its ``dt`` seconds (>= 0); uncertainty grows with the time."""
    n = len(mean)
    if n == 0:
        return mean.copy(), cov.copy()
    steps = np.broadcast_to(np.maximum(np.asarray(dt, np.float64), 0.0) / STEP, (n,))
    s = steps[:, None]
    new_mean = mean.copy()
    new_mean[:, :4] += s * mean[:, 4:]
    # F P F^T for F = [[I, sI], [0, I]], by blocks: P = [[A, B], [B^T, C]] becomes
    # [[A + s(B + B^T) + s^2 C, B + sC], [B^T + sC, C]].
    s3 = s[:, :, None]
    a, b, c = cov[:, :4, :4], cov[:, :4, 4:], cov[:, 4:, 4:]
    bc = b + s3 * c
    new_cov = np.empty_like(cov)
    new_cov[:, :4, :4] = a + s3 * (b + b.transpose(0, 2, 1)) + s3 * s3 * c
    new_cov[:, :4, 4:] = bc
    new_cov[:, 4:, :4] = bc.transpose(0, 2, 1)
    new_cov[:, 4:, 4:] = c
    # Process noise is a random walk: its variance grows in proportion to the time elapsed.
    var = ((mean[:, 3:4] * _NOISE_STD) ** 2 + _NOISE_FIXED) * s
    new_cov[:, _I8, _I8] += var
    return new_mean, new_cov


def update(mean: F64, cov: F64, xyah: F64) -> tuple[F64, F64]:
    """Each state corrected by its (N, 4) measurement."""
    if len(mean) == 0:
        return mean.copy(), cov.copy()
    r = (mean[:, 3:4] * _MEASURE_STD) ** 2 + _MEASURE_FIXED
    projected = mean[:, :4]
    s = cov[:, :4, :4].copy()
    s[:, _I4, _I4] += r
    pht = cov[:, :, :4]  # P H^T with H = [I 0]
    # K = P H^T S^-1, solved rather than inverted (S is symmetric positive definite).
    gain = np.linalg.solve(s, pht.transpose(0, 2, 1)).transpose(0, 2, 1)
    innovation = xyah - projected
    new_mean = mean + np.einsum("nij,nj->ni", gain, innovation)
    new_cov = cov - gain @ s @ gain.transpose(0, 2, 1)
    return new_mean, new_cov
