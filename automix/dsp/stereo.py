"""Panning and stereo width.

Every track is carried as two channels; a mono source is its one channel on both sides.
- Width (mid/side): ``M = (L+R)/2``, ``S = width * (L-R)/2``, ``L' = M+S``, ``R' = M-S``; width 1 is
  the identity, 0 is mono, and it has no effect on a mono source (S = 0).
- Pan, constant power: ``theta = (pan + 1) * pi/4``, gains ``sqrt2*cos(theta)``, ``sqrt2*sin(theta)``
  (pan -1 hard left, +1 hard right).  For a stereo source this is a balance control: unity at the
  centre, so the stereo image is kept.  A mono source is scaled by ``1/sqrt2`` first, which makes
  its law ``cos/sin``: -3 dB per side at the centre and L^2 + R^2 constant across positions.
"""
from __future__ import annotations

import math

import numba
import torch


def apply_width(x, width):
    """``x`` (..., 2, T), ``width`` broadcastable to ``x.shape[:-2]``."""
    w = width.unsqueeze(-1)
    mid = (x[..., 0, :] + x[..., 1, :]) / 2
    side = (x[..., 0, :] - x[..., 1, :]) / 2 * w
    return torch.stack((mid + side, mid - side), dim=-2)


def pan_gains(pan, is_stereo):
    """Left and right gains for pan positions; ``is_stereo`` picks balance vs mono law."""
    theta = (pan + 1) * (math.pi / 4)
    scale = torch.where(is_stereo, math.sqrt(2.0), 1.0).to(theta.dtype)
    return scale * torch.cos(theta), scale * torch.sin(theta)


def pan_and_width(x, pan, width, is_stereo):
    """Track stereo stage: width (stereo sources), then pan/balance."""
    x = apply_width(x, width)
    gl, gr = pan_gains(pan, is_stereo)
    return torch.stack((x[..., 0, :] * gl.unsqueeze(-1), x[..., 1, :] * gr.unsqueeze(-1)), dim=-2)


@numba.njit(cache=True, nogil=True)
def pan_width_accumulate(x, pre_gain, width, gl, gr, out):
    """Render path, one block: ``out += pan(width(x * pre_gain))`` with pan gains ``gl, gr``
    (from :func:`pan_gains`), ``x`` (1 or 2, n) float64, ``out`` (2, n) float64.  The operations
    of :func:`pan_and_width` on a fader-scaled block, in the same order; a mono block is its one
    channel on both sides (width leaves it unchanged).  The master uses it with ``pre_gain`` 1 and
    its gain as ``gl = gr``, which is :func:`apply_width` followed by the gain."""
    channels, n = x.shape
    if channels == 1:
        for i in range(n):
            y = x[0, i] * pre_gain
            out[0, i] += y * gl
            out[1, i] += y * gr
    else:
        for i in range(n):
            a = x[0, i] * pre_gain
            b = x[1, i] * pre_gain
            mid = (a + b) / 2
            side = (a - b) / 2 * width
            out[0, i] += (mid + side) * gl
            out[1, i] += (mid - side) * gr
