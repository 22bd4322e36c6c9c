"""Attack/release ballistics: a one-pole smoother whose coefficient depends on direction.

    y[n] = y[n-1] + c[n] * (x[n] - y[n-1]),   c[n] = c_attack if x[n] < y[n-1] else c_release

"Attack" is the branch taken when the input falls below the smoothed value (more gain
reduction, for a gain in dB or a linear gain), "release" when it rises back.  Time-constant
convention, used everywhere in automix: ``c = 1 - exp(-1 / (tau_seconds * sample_rate))``, so a
step reaches 1 - 1/e (63.2 %) of its final value after ``tau``.

The recursion is sequential, so the forward pass is a numba kernel (one row per thread) that also
records which branch each sample took.  The backward pass is exact for that branch sequence: the
adjoint runs the same time-varying one-pole backwards in time (the algorithm torchcomp published,
written here from its description).  Kernels run on CPU; CUDA tensors make a round trip.
"""
from __future__ import annotations

import math

import numba
import numpy as np
import torch


def time_constant_to_coef(ms: torch.Tensor | float, sample_rate: float):
    """Smoothing coefficient ``c`` for a time constant in milliseconds (see module doc)."""
    if isinstance(ms, torch.Tensor):
        return -torch.expm1(-1000.0 / (ms * sample_rate))
    return -math.expm1(-1000.0 / (ms * sample_rate))


@numba.njit(parallel=True, cache=True, fastmath=False)
def _forward_kernel(x, c_att, c_rel, y0, y, attack):
    rows, n = x.shape
    for r in numba.prange(rows):
        prev = y0[r]
        ca = c_att[r]
        cr = c_rel[r]
        for i in range(n):
            v = x[r, i]
            if v < prev:
                prev = prev + ca * (v - prev)
                attack[r, i] = True
            else:
                prev = prev + cr * (v - prev)
                attack[r, i] = False
            y[r, i] = prev


@numba.njit(parallel=True, cache=True, fastmath=False)
def _backward_kernel(grad_y, x, y, y0, c_att, c_rel, attack, grad_x, grad_ca, grad_cr, grad_y0):
    rows, n = x.shape
    for r in numba.prange(rows):
        ca = c_att[r]
        cr = c_rel[r]
        carry = 0.0  # (1 - c[i+1]) * adjoint[i+1]
        sum_a = 0.0
        sum_r = 0.0
        for i in range(n - 1, -1, -1):
            lam = grad_y[r, i] + carry
            c = ca if attack[r, i] else cr
            grad_x[r, i] = c * lam
            prev = y[r, i - 1] if i > 0 else y0[r]
            d = lam * (x[r, i] - prev)
            if attack[r, i]:
                sum_a += d
            else:
                sum_r += d
            carry = (1.0 - c) * lam
        grad_ca[r] = sum_a
        grad_cr[r] = sum_r
        grad_y0[r] = carry


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().contiguous().numpy()


class _Ballistics(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, c_att, c_rel, y0):
        xn, can, crn, y0n = (_np(t) for t in (x, c_att, c_rel, y0))
        y = np.empty_like(xn)
        attack = np.empty(xn.shape, dtype=np.bool_)
        _forward_kernel(xn, can, crn, y0n, y, attack)
        y_t = torch.from_numpy(y).to(x.device)
        ctx.save_for_backward(x, y_t, y0, c_att, c_rel)
        ctx.attack = attack
        return y_t

    @staticmethod
    def backward(ctx, grad_y):
        x, y, y0, c_att, c_rel = ctx.saved_tensors
        gx = np.empty(x.shape, dtype=_np(x).dtype)
        gca = np.empty(c_att.shape, dtype=np.float64)
        gcr = np.empty(c_rel.shape, dtype=np.float64)
        gy0 = np.empty(y0.shape, dtype=np.float64)
        _backward_kernel(_np(grad_y.to(x.dtype)), _np(x), _np(y), _np(y0), _np(c_att), _np(c_rel),
                         ctx.attack, gx, gca, gcr, gy0)
        dev, dt = x.device, x.dtype
        return (torch.from_numpy(gx).to(dev),
                torch.from_numpy(gca).to(dev, dt),
                torch.from_numpy(gcr).to(dev, dt),
                torch.from_numpy(gy0).to(dev, dt))


def ballistics(x: torch.Tensor, c_attack: torch.Tensor, c_release: torch.Tensor,
               initial: torch.Tensor) -> torch.Tensor:
    """Smooth rows ``x`` (rows, samples) with per-row coefficients and initial states (rows,)."""
    dt = x.dtype
    rows = x.shape[0]
    c_attack = torch.as_tensor(c_attack, dtype=dt, device=x.device).expand(rows).contiguous()
    c_release = torch.as_tensor(c_release, dtype=dt, device=x.device).expand(rows).contiguous()
    initial = torch.as_tensor(initial, dtype=dt, device=x.device).expand(rows).contiguous()
    return _Ballistics.apply(x.contiguous(), c_attack, c_release, initial)
