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

The render path computes the same formulas with numba kernels on float64 numpy arrays:
:func:`compressor_kernel` (level detector, gain computer, ballistics and gain, sample by sample,
state carried between blocks) and :func:`limit_in_place` (the whole limiter streamed through the
song in short blocks, writing the output over its input, so that no full-length intermediate is
ever allocated).  They differ from the torch functions only in float rounding.
"""
from __future__ import annotations

import math

import numba
import numpy as np
import torch
import torch.nn.functional as F

from .ballistics import ballistics, time_constant_to_coef
from .truepeak import _REACH, LIMITER_OVERSAMPLE, abs_max_block, peak_envelope, polyphase_matrix_f32

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


# ------------------------------------------------------------------------------------------------
# render path: numba kernels, same formulas as above, float64


_DB_PER_NEPER = 20.0 / math.log(10.0)
_NEPER_PER_DB = math.log(10.0) / 20.0


class CompressorParams:
    """Scalar compressor settings for :func:`compressor_kernel`, derived with the torch functions
    above (float64), so coefficients match the training path's exactly.  ``comp`` may be empty or
    ``None`` (no compressor: unity gain)."""

    def __init__(self, comp: dict | None, sample_rate: float):
        t = lambda v: torch.tensor([float(v)], dtype=torch.float64)  # noqa: E731
        if not comp:
            self.array = np.zeros(7)  # enabled = 0
            return
        with torch.no_grad():
            c_att = float(time_constant_to_coef(t(comp["attack_ms"]), sample_rate))
            c_rel = float(time_constant_to_coef(t(comp["release_ms"]), sample_rate))
        self.array = np.array([1.0, *(float(comp[k]) for k in ("threshold_db", "ratio", "knee_db",
                                                             "makeup_db")), c_att, c_rel])


@numba.njit(cache=True, nogil=True)
def _level(x, out):
    """``out[i] = max(max_c |x[c, i]|, LEVEL_FLOOR)``: the detector before :func:`amp_to_db`."""
    channels, n = x.shape
    for i in range(n):
        out[i] = _LEVEL_FLOOR
    for c in range(channels):  # channel-outer, so the sample loop vectorises
        for i in range(n):
            a = abs(x[c, i])
            out[i] = a if a > out[i] else out[i]


@numba.njit(cache=True, nogil=True)
def _gain_path(log_level, p, state):
    """In place over ``log_level`` (natural log of the level, per sample): :func:`gain_computer`,
    :func:`ballistics` (state carried in ``state[0]``) and makeup, leaving the gain in nepers
    (``ln 10 / 20`` times dB), ready for ``exp``."""
    threshold, slope, knee_db = p[1], 1.0 / p[2] - 1.0, p[3]
    knee = max(knee_db, _KNEE_EPS_DB)
    c_att, c_rel, makeup = p[5], p[6], p[4]
    g = state[0]
    # written with selects rather than branches: on audio, which side is taken changes
    # unpredictably from sample to sample
    for i in range(log_level.shape[0]):
        over = _DB_PER_NEPER * log_level[i] - threshold  # level in dB (20 log10) - threshold
        d = over + knee / 2.0
        target = slope * over if 2.0 * over > knee_db else slope * (d * d) / (2.0 * knee)
        target = 0.0 if 2.0 * over <= -knee_db else target
        c = c_att if target < g else c_rel
        g = g + c * (target - g)
        log_level[i] = (g + makeup) * _NEPER_PER_DB
    # Released for a long time, g decays towards 0 and would end in subnormal numbers, which
    # are slow (see eq.sos_filter_inplace): flushed here, once per block, off the recursion's
    # critical path.  The gain in dB changes by < 1e-200, its amplitude not at all.
    state[0] = g if abs(g) >= 1e-200 else 0.0


def compressor_kernel(x: np.ndarray, p: np.ndarray, state: np.ndarray) -> None:
    """:func:`compressor` on one block ``x`` (channels, n) float64 C-contiguous, in place, with
    ``p`` from :class:`CompressorParams` and ``state`` (1,) the smoothed gain in dB carried from
    block to block.  The sequential part (gain computer, ballistics) is a numba loop; the
    logarithm and exponential of every sample are numpy's vectorised ones (a few times faster
    than scalar calls).  ``20 log10`` and ``10 ** (dB / 20)`` are taken as ``log`` and ``exp``
    with constant factors: float rounding apart, the same values."""
    if p[0] == 0.0:
        return
    x *= compressor_gain(log_level(x), p, state)


def log_level(x: np.ndarray) -> np.ndarray:
    """Natural log of the compressor's detector level per sample of ``x`` (channels, n)."""
    work = np.empty(x.shape[1])
    _level(x, work)
    return np.log(work, out=work)


def compressor_gain(log_lvl: np.ndarray, p: np.ndarray, state: np.ndarray) -> np.ndarray:
    """The compressor's linear gain per sample from :func:`log_level` (overwritten in place and
    returned), ``p`` and ``state`` as in :func:`compressor_kernel`."""
    _gain_path(log_lvl, p, state)
    return np.exp(log_lvl, out=log_lvl)


def limiter_params(ceiling_dbtp: float, release_ms: float, sample_rate: float):
    """``(ceiling (linear, margin applied), release coefficient)`` as :func:`limiter` computes
    them (float64 torch)."""
    t = lambda v: torch.tensor([float(v)], dtype=torch.float64)  # noqa: E731
    with torch.no_grad():
        ceiling = float(db_to_amp(t(ceiling_dbtp) - TRUE_PEAK_MARGIN_DB))
        c_rel = float(time_constant_to_coef(t(release_ms), sample_rate))
    return ceiling, c_rel


_LIMITER_BLOCK = 4096


def limit_in_place(x: np.ndarray, ceiling_dbtp: float, release_ms: float, lookahead: int,
                   sample_rate: float) -> None:
    """:func:`limiter` on one song ``x`` (channels, samples), float64 C-contiguous, written over
    ``x``.  The detector runs in float32 like :func:`oversampled_abs_max`; hold, release and
    average are the same recursions (the running minimum by a monotonic queue, exact)."""
    if x.dtype != np.float64 or not x.flags.c_contiguous or x.ndim != 2:
        raise ValueError("limit_in_place needs a C-contiguous float64 (channels, samples) array")
    ceiling, c_rel = limiter_params(ceiling_dbtp, release_ms, sample_rate)
    _limit_kernel(x, polyphase_matrix_f32(LIMITER_OVERSAMPLE), ceiling, c_rel, int(lookahead),
                  _LIMITER_BLOCK)


@numba.njit(cache=True, nogil=True)
def _hold_release_average(required, first, c_rel, L, q_val, q_idx, qs, ring, state, gains):
    """The limiter's sequential part for one block: ``required`` gains (count,) at detector
    positions ``first, first + 1, ...`` -> ``gains`` (count,) after hold (running minimum over
    the look-ahead window), release ballistics (instant attack) and the moving average.

    State carried between blocks: the monotonic queue ``q_val``/``q_idx`` (circular over
    ``L + 1`` slots, values increasing from head to tail) with ``qs`` = (head, tail, length,
    ring position), the last ``L`` released values ``ring`` and ``state[0]`` = released."""
    Q = L + 1
    q_head, q_tail, q_len, ring_pos = qs[0], qs[1], qs[2], qs[3]
    released = state[0]
    window_sum = 0.0  # re-summed every block, so rounding cannot drift over a song
    for k in range(L):
        window_sum += ring[k]
    for k in range(required.shape[0]):
        m = first + k
        r = required[k]
        while q_len > 0:  # indices wrap by comparison (integer modulo is slow)
            last = q_tail - 1 if q_tail > 0 else Q - 1
            if q_val[last] < r:
                break
            q_tail = last
            q_len -= 1
        q_val[q_tail] = r
        q_idx[q_tail] = m
        q_tail = q_tail + 1 if q_tail + 1 < Q else 0
        q_len += 1
        if q_idx[q_head] <= m - L:
            q_head = q_head + 1 if q_head + 1 < Q else 0
            q_len -= 1
        held = q_val[q_head]
        c = 1.0 if held < released else c_rel
        released = released + c * (held - released)
        window_sum += released - ring[ring_pos]
        ring[ring_pos] = released
        ring_pos = ring_pos + 1 if ring_pos + 1 < L else 0
        gains[k] = window_sum / L
    qs[0], qs[1], qs[2], qs[3] = q_head, q_tail, q_len, ring_pos
    state[0] = released


@numba.njit(cache=True, nogil=True)
def _limit_kernel(x, H, ceiling, c_rel, L, block):
    channels, n = x.shape
    R = _REACH
    N = n + L - 1  # detector positions: the signal padded with L - 1 zeros (look-ahead)
    seg = np.zeros((channels, block + 2 * R), np.float32)  # positions [b - R, b + count + R)
    acc = np.empty(block, np.float32)
    per_interval = np.empty(block, np.float32)
    prev_interval = 0.0  # the previous position's per-interval peak (0 before the start)
    required = np.empty(block)
    gains = np.empty(block)
    # hold/release/average state (see _hold_release_average); 1.0 = no reduction before the start
    q_val, q_idx, qs = np.empty(L + 1), np.empty(L + 1, np.int64), np.zeros(4, np.int64)
    ring, state = np.ones(L), np.ones(1)
    for b in range(0, N, block):
        count = min(block, N - b)
        # 1. input segment; samples are read from x before any of them is overwritten (the
        # output lags the detector by L - 1 samples, the segment leads it by R)
        start = 0
        if b > 0:
            for c in range(channels):
                for k in range(2 * R):
                    seg[c, k] = seg[c, block + k]
            start = 2 * R
        for c in range(channels):
            for k in range(start, count + 2 * R):
                pos = b - R + k
                seg[c, k] = np.float32(x[c, pos]) if 0 <= pos < n else np.float32(0.0)
        # 2. 8x oversampled peak per interval, max over channels
        for k in range(count):
            per_interval[k] = 0.0
        for c in range(channels):
            abs_max_block(seg[c], H, count, acc, per_interval)
        # 3. sequential part: required gain per position, then hold, release, average
        for k in range(count):
            pk = float(per_interval[k])
            peak = max(pk, prev_interval)  # the envelope also covers the interval before
            prev_interval = pk
            required[k] = min(ceiling / max(peak, _LEVEL_FLOOR), 1.0)
        _hold_release_average(required[:count], b, c_rel, L, q_val, q_idx, qs, ring, state,
                              gains)
        for k in range(count):
            j = b + k - (L - 1)  # output[j] = x[j] * gain[j + L - 1]
            if j >= 0:
                for c in range(channels):
                    x[c, j] = x[c, j] * gains[k]


# ------------------------------------------------------------------------------------------------
# loudness search: the limiter's detector once, then the limiter at many gains


@numba.njit(cache=True, nogil=True)
def _envelope_kernel(x, H, L, block):
    channels, n = x.shape
    R = (H.shape[1] - 1) // 2
    N = n + L - 1
    env = np.empty(N, np.float32)
    seg = np.zeros(block + 2 * R, np.float32)
    acc = np.empty(block, np.float32)
    per_interval = np.empty(block, np.float32)
    prev = np.float32(0.0)
    for b in range(0, N, block):
        count = min(block, N - b)
        for k in range(count):
            per_interval[k] = 0.0
        for c in range(channels):
            for k in range(count + 2 * R):
                pos = b - R + k
                seg[k] = np.float32(x[c, pos]) if 0 <= pos < n else np.float32(0.0)
            abs_max_block(seg, H, count, acc, per_interval)
        for k in range(count):
            env[b + k] = max(per_interval[k], prev)
            prev = per_interval[k]
    return env


def limiter_envelope(x: np.ndarray, lookahead: int) -> np.ndarray:
    """The render limiter's detector for ``x`` (channels, samples): (samples + L - 1,) float32.
    It scales with the input, so a gain search detects once (:func:`limit_scaled`)."""
    return _envelope_kernel(np.ascontiguousarray(x), polyphase_matrix_f32(LIMITER_OVERSAMPLE),
                            int(lookahead), _LIMITER_BLOCK)


@numba.njit(cache=True, nogil=True)
def _limiter_gain_kernel(env, scale, ceiling, c_rel, L, n, block):
    """The limiter's gain per output sample (n,) for an input scaled by ``scale`` (included)."""
    N = env.shape[0]
    gain = np.empty(n)
    required = np.empty(block)
    gains = np.empty(block)
    q_val, q_idx, qs = np.empty(L + 1), np.empty(L + 1, np.int64), np.zeros(4, np.int64)
    ring, state = np.ones(L), np.ones(1)
    for b in range(0, N, block):
        count = min(block, N - b)
        for k in range(count):
            required[k] = min(ceiling / max(float(env[b + k]) * scale, _LEVEL_FLOOR), 1.0)
        _hold_release_average(required[:count], b, c_rel, L, q_val, q_idx, qs, ring, state,
                              gains)
        for k in range(count):
            j = b + k - (L - 1)
            if j >= 0:
                gain[j] = scale * gains[k]
    return gain


def limiter_gain(env: np.ndarray, n: int, gain_db: float, ceiling_dbtp: float, release_ms: float,
                 lookahead: int, sample_rate: float) -> np.ndarray:
    """Per-sample gain (n,) of the limiter on ``x * 10^(gain_db/20)`` (the input gain included),
    from the unscaled detector ``env`` (:func:`limiter_envelope`)."""
    ceiling, c_rel = limiter_params(ceiling_dbtp, release_ms, sample_rate)
    return _limiter_gain_kernel(env, 10 ** (gain_db / 20), ceiling, c_rel, int(lookahead), int(n),
                                _LIMITER_BLOCK)


def limit_scaled(x: np.ndarray, env: np.ndarray, gain_db: float, ceiling_dbtp: float,
                 release_ms: float, lookahead: int, sample_rate: float) -> np.ndarray:
    """The limiter on ``x * 10^(gain_db/20)`` from the unscaled detector ``env``
    (:func:`limiter_envelope`): a new float64 array, ``x`` unchanged."""
    g = limiter_gain(env, x.shape[-1], gain_db, ceiling_dbtp, release_ms, lookahead, sample_rate)
    return np.asarray(x, dtype=np.float64) * g
