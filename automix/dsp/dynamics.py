"""Compressor and true-peak limiter, in torch, shared by the training and render paths.

Signals are ``(rows, channels, samples)``; parameters are tensors of shape ``(rows,)`` in
physical units.  Both processors are stereo-linked: one gain per row, applied to every channel.

Compressor: feed-forward, peak detector (``max_c |x|``), Giannoulis/Reiss soft-knee gain computer
in dB, then attack/release ballistics on the dB gain (:mod:`automix.dsp.ballistics`), then makeup.

Limiter: 8x-oversampled true-peak envelope -> required gain ``min(1, ceiling / peak)`` -> minimum
held over the look-ahead window -> release ballistics (instant attack) -> moving average over the
same window -> applied to the signal delayed by the window.  Hold and average span the same
``L`` samples, so every averaged value is at most the required gain of the sample it lands on:
the output never exceeds the ceiling at the detector's resolution.  The processor compensates its
own latency (the output is aligned with the input), so it needs the whole signal, or at least
``L`` samples of the future: the render path runs it on the full-length master bus.

The limiter aims ``TRUE_PEAK_MARGIN_DB`` below the ceiling: near Nyquist and at abrupt onsets,
good 4x meters with other interpolation filters read up to ~0.07 dB above automix's detector, and
a master must pass any of them.

Look-ahead is structural (an integer number of samples), not a differentiable parameter.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .ballistics import ballistics, time_constant_to_coef
from .truepeak import LIMITER_OVERSAMPLE, peak_envelope

LEVEL_FLOOR_DB = -120.0
_LEVEL_FLOOR = 10 ** (LEVEL_FLOOR_DB / 20)
_KNEE_EPS_DB = 1e-3
TRUE_PEAK_MARGIN_DB = 0.1


def db_to_amp(db):
    return torch.pow(10.0, db / 20)


def amp_to_db(amp):
    return 20 * torch.log10(torch.clamp(amp, min=_LEVEL_FLOOR))


def gain_computer(level_db, threshold_db, ratio, knee_db):
    """Static gain (dB, <= 0) of the soft-knee curve; safe and differentiable at knee 0.

    Below ``T - W/2``: 0.  Above ``T + W/2``: ``(1/R - 1)(x - T)``.  In between the quadratic
    ``(1/R - 1)(x - T + W/2)^2 / (2W)``, whose value and slope join both lines.
    """
    over = level_db - threshold_db
    slope = 1.0 / ratio - 1.0
    knee = torch.clamp(knee_db, min=_KNEE_EPS_DB)  # the knee branch is only selected when W > 0
    in_knee = slope * (over + knee / 2) ** 2 / (2 * knee)
    above = slope * over
    return torch.where(2 * over <= -knee_db, torch.zeros_like(over),
                       torch.where(2 * over > knee_db, above, in_knee))


def compressor(x, threshold_db, ratio, attack_ms, release_ms, knee_db, makeup_db, sample_rate,
               state=None):
    """Compress ``x`` (rows, channels, samples).  ``state`` is the smoothed gain (dB) per row
    carried from the previous block (``None``: start at no gain reduction).

    Returns ``(y, new_state)``.
    """
    col = lambda p: p.reshape(-1, 1)  # noqa: E731
    level_db = amp_to_db(x.abs().amax(dim=1))
    target = gain_computer(level_db, col(threshold_db), col(ratio), col(knee_db))
    if state is None:
        state = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    gain_db = ballistics(target, time_constant_to_coef(attack_ms, sample_rate),
                         time_constant_to_coef(release_ms, sample_rate), state)
    y = x * db_to_amp(gain_db + col(makeup_db)).unsqueeze(1)
    return y, gain_db[:, -1]


def lookahead_samples(lookahead_ms: float, sample_rate: float) -> int:
    return max(1, int(round(lookahead_ms * 1e-3 * sample_rate)))


def running_min(x, window: int, pad_value: float = 1.0):
    """Causal running minimum over ``[n - window + 1, n]`` of rows ``x`` (rows, T), O(T) by
    van Herk / Gil-Werman block prefix and suffix minima; differentiable (sub-gradient)."""
    if window <= 1:
        return x
    rows, n = x.shape
    padded = F.pad(x, (window - 1, 0), value=pad_value)
    total = padded.shape[1]
    blocks = -(-total // window)
    tail = blocks * window - total
    padded = F.pad(padded, (0, tail), value=pad_value).reshape(rows, blocks, window)
    prefix = torch.cummin(padded, dim=-1).values.reshape(rows, -1)
    suffix = torch.cummin(padded.flip(-1), dim=-1).values.flip(-1).reshape(rows, -1)
    # window starting at s (padded index) ends at s + window - 1
    return torch.minimum(suffix[:, :n], prefix[:, window - 1:window - 1 + n])


def moving_average(x, window: int):
    """Causal mean over ``[n - window + 1, n]`` (values before the start count as 1.0, i.e.
    unity gain), by a float64 cumulative sum."""
    if window <= 1:
        return x
    padded = F.pad(x.to(torch.float64), (window, 0), value=1.0)
    c = torch.cumsum(padded, dim=-1)
    return ((c[:, window:] - c[:, :-window]) / window).to(x.dtype)


def limiter_peak(x, lookahead: int):
    """The limiter's detector: 8x true-peak envelope (rows, T + L - 1), max over channels."""
    return peak_envelope(F.pad(x, (0, int(lookahead) - 1)), LIMITER_OVERSAMPLE).amax(dim=1)


def limiter(x, ceiling_dbtp, release_ms, lookahead: int, sample_rate, peak=None):
    """True-peak look-ahead limiter on ``x`` (rows, channels, samples), latency compensated.

    ``peak``: :func:`limiter_peak` of ``x`` when already known (it scales with ``x``, so a
    loudness search can detect once and try many gains)."""
    rows, channels, n = x.shape
    L = int(lookahead)
    if peak is None:
        peak = limiter_peak(x, L)
    ceiling = db_to_amp(ceiling_dbtp - TRUE_PEAK_MARGIN_DB).reshape(-1, 1)
    required = torch.clamp(ceiling / torch.clamp(peak, min=_LEVEL_FLOOR), max=1.0)
    held = running_min(required, L)
    released = ballistics(held, torch.ones(rows, dtype=x.dtype, device=x.device),
                          time_constant_to_coef(release_ms, sample_rate),
                          torch.ones(rows, dtype=x.dtype, device=x.device))
    gain = moving_average(released, L)
    # output[n] = x[n] * gain[n + L - 1]: the gain that was computed L - 1 samples ahead
    return x * gain[:, L - 1:L - 1 + n].unsqueeze(1)
