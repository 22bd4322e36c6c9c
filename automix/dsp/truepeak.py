"""True-peak detection by oversampling (ITU-R BS.1770-4 Annex 2 style).

The interpolator is a Kaiser-windowed sinc with its cut-off at the original Nyquist frequency and
48 taps per phase (BS.1770's example filter has 12 per phase): its passband is flat to about
20.5 kHz at 44.1 kHz, so inter-sample peaks of content near Nyquist are read, not missed.
Meters (analysis) use the standard 4x; the limiter detects at 8x, because a 4x grid can miss up to
0.7 dB of a peak near Nyquist and a master must pass any good 4x meter.

Each phase is a 49-tap FIR; all phases are evaluated as one matrix product on a sliding window
(``unfold``), block by block, which is fast on CPU, runs on GPU, and is differentiable.  The render
path's limiter (:func:`automix.dsp.dynamics.limit_in_place`) streams the same filter through a
numba kernel, :func:`abs_max_block`, on short float32 segments instead.
"""
from __future__ import annotations

import functools

import numba
import numpy as np
import torch
import torch.nn.functional as F

METER_OVERSAMPLE = 4
LIMITER_OVERSAMPLE = 8
TAPS_PER_PHASE = 48
_REACH = TAPS_PER_PHASE // 2  # input samples each side that an interpolated value depends on
_BLOCK = 1 << 16


@functools.lru_cache(maxsize=None)
def polyphase_matrix(factor: int) -> np.ndarray:
    """``H[i, p]``: weight of input sample ``n - REACH + i`` in the value at time ``n + p/factor``."""
    half = factor * _REACH
    k = np.arange(-half, half + 1)
    h = np.sinc(k / factor) * np.kaiser(len(k), 8.0)
    matrix = np.zeros((2 * _REACH + 1, factor))
    for p in range(factor):
        for i in range(2 * _REACH + 1):
            idx = factor * (_REACH - i) + p + half  # h index of offset factor*(n-m) + p
            if 0 <= idx < len(h):
                matrix[i, p] = h[idx]
        matrix[:, p] /= matrix[:, p].sum()  # unit gain at DC for every phase
    return matrix


@functools.lru_cache(maxsize=None)
def polyphase_matrix_f32(factor: int) -> np.ndarray:
    """:func:`polyphase_matrix` in float32, phases first ``(factor, taps)``, for the kernels."""
    return np.ascontiguousarray(polyphase_matrix(factor).T, dtype=np.float32)


@numba.njit(cache=True, nogil=True)
def abs_max_block(seg, H, count, acc, out):
    """``out[k] = max(out[k], max_p |sum_i H[p, i] * seg[k + i]|)`` for ``k < count``: the
    oversampled peak over ``[n, n+1)`` of the sample at ``seg[k + REACH]`` (float32, as in
    :func:`oversampled_abs_max`).  ``seg`` holds ``count + 2 * REACH`` samples; ``acc`` is scratch
    of at least ``count``.  Tap-outer loops, so the sample loop vectorises."""
    factor, taps = H.shape
    for p in range(factor):
        for k in range(count):
            acc[k] = 0.0
        i = 0
        while i + 7 <= taps:  # 7 taps per pass over the block: fewer loads and stores of acc
            h0, h1, h2, h3 = H[p, i], H[p, i + 1], H[p, i + 2], H[p, i + 3]
            h4, h5, h6 = H[p, i + 4], H[p, i + 5], H[p, i + 6]
            for k in range(count):
                acc[k] += (h0 * seg[k + i] + h1 * seg[k + i + 1] + h2 * seg[k + i + 2]
                           + h3 * seg[k + i + 3] + h4 * seg[k + i + 4] + h5 * seg[k + i + 5]
                           + h6 * seg[k + i + 6])
            i += 7
        while i < taps:
            h = H[p, i]
            for k in range(count):
                acc[k] += h * seg[k + i]
            i += 1
        for k in range(count):
            a = abs(acc[k])
            if a > out[k]:
                out[k] = a


@numba.njit(cache=True, nogil=True)
def _true_peak_rows(x, H, block):
    """max over rows and samples of :func:`abs_max_block`, streaming (float32, no copies)."""
    rows, n = x.shape
    R = (H.shape[1] - 1) // 2
    seg = np.zeros(block + 2 * R, np.float32)
    acc = np.empty(block, np.float32)
    out = np.empty(block, np.float32)
    best = 0.0
    for r in range(rows):
        for b in range(0, n, block):
            count = min(block, n - b)
            for k in range(count + 2 * R):
                pos = b - R + k
                seg[k] = np.float32(x[r, pos]) if 0 <= pos < n else np.float32(0.0)
            for k in range(count):
                out[k] = 0.0
            abs_max_block(seg, H, count, acc, out)
            for k in range(count):
                if out[k] > best:
                    best = out[k]
    return best


def true_peak_array(audio: np.ndarray, factor: int = METER_OVERSAMPLE) -> float:
    """:func:`true_peak` of a numpy array (rows, T), max over rows: the same float32 detector,
    streamed block by block (a full song needs no unfolded copies)."""
    x = np.ascontiguousarray(np.atleast_2d(audio))
    return float(_true_peak_rows(x, polyphase_matrix_f32(factor), 8192))


def oversampled_abs_max(x: torch.Tensor, factor: int) -> torch.Tensor:
    """``max_p |x(n + p/factor)|`` for each sample ``n`` of rows ``x`` (..., T): the peak of the
    interpolated signal over ``[n, n+1)``.  Samples outside the signal count as zero."""
    shape = x.shape
    # Peak detection needs no more than float32 (1e-7 relative); float64 matrix products are
    # several times slower on CPU.  Only a float64 gradient check keeps float64.
    dtype = x.dtype if (x.requires_grad and torch.is_grad_enabled()) else torch.float32
    rows = x.reshape(-1, shape[-1]).to(dtype)
    H = torch.as_tensor(polyphase_matrix(factor), dtype=dtype, device=x.device)
    # CPU matrix products with few output columns take a slow path (measured: 4 columns 3x
    # slower than 16); zero columns cost less than they save and do not change the maximum.
    H = F.pad(H, (0, max(0, 16 - factor)))
    padded = F.pad(rows, (_REACH, _REACH))
    out = []
    for start in range(0, shape[-1], _BLOCK):
        stop = min(start + _BLOCK, shape[-1])
        window = padded[:, start:stop + 2 * _REACH].unfold(-1, 2 * _REACH + 1, 1)
        out.append((window @ H).abs().amax(-1))
    return torch.cat(out, -1).reshape(shape).to(x.dtype)


def peak_envelope(x: torch.Tensor, factor: int = METER_OVERSAMPLE) -> torch.Tensor:
    """Per-sample true-peak envelope (..., T): the largest |value| of the interpolated signal
    within one sample either side of each sample, so a gain that holds over a sample's
    neighbourhood holds over the inter-sample peaks around it."""
    per_interval = oversampled_abs_max(x, factor)
    before = F.pad(per_interval[..., :-1], (1, 0))
    return torch.maximum(per_interval, before)


def true_peak(x: torch.Tensor, factor: int = METER_OVERSAMPLE) -> torch.Tensor:
    """Linear true peak over the last axis."""
    return oversampled_abs_max(x, factor).amax(-1)
