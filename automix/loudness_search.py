"""The master's gain and limiter release: how loud the limited master is at a given gain,
searched until it reads the target loudness.

Each exact evaluation runs the render limiter's gain computer over every sample and measures
BS.1770 loudness of ``K(pre) x gain`` (K-weighting is linear and the limiter's gain moves
slowly, so the pre-limiter signal is K-weighted once; the final render is measured exactly and
the two agree within ~0.01 LU).  That costs ~0.2 s per evaluation on a 3-minute song, and a
secant search needs 5-8 of them per release tried.  So the search runs on a *surrogate*: the
same gain computer on the detector envelope decimated by block maxima (``D`` ~16 samples) with
the K-weighted power summed per block: ~D times cheaper, within a few tenths of a LU.  The exact
evaluation then only polishes the surrogate's answer (its offset at that gain is subtracted and
the surrogate searched again), usually 1-2 exact evaluations per release.
"""
from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from . import analysis
from .dsp.dynamics import limiter_envelope, limiter_gain, lookahead_samples

GAIN_RANGE_DB = (-48.0, 36.0)  # the lower end: settings.json's master.gain_db limit
TOLERANCE_LU = 0.02
LIMITER_RELEASES_MS = (80.0, 40.0, 20.0, 10.0)  # faster release: louder, at more distortion


def _secant(loudness, target: float, g0: float, tolerance: float, iterations: int):
    """Gain (dB) where ``loudness(gain)`` reaches ``target``, starting at ``g0``; returns the
    last evaluated (gain, loudness)."""
    lo, hi = GAIN_RANGE_DB
    g0 = float(np.clip(g0, lo, hi))
    l0 = loudness(g0)
    g1 = float(np.clip(g0 + (target - l0), lo, hi))
    for _ in range(iterations):
        if abs(l0 - target) < tolerance or g1 == g0:
            break
        l1 = loudness(g1)
        slope = (l1 - l0) / (g1 - g0)
        slope = min(max(slope, 0.05), 1.5)  # the limiter gives back less than the gain put in
        g0, l0, g1 = g1, l1, float(np.clip(g1 + (target - l1) / slope, lo, hi))
    return g0, l0


def _block_divisor(sample_rate: int, most: int = 16) -> int:
    """The largest D <= ``most`` dividing the 100 ms loudness hop (1 if the hop is fractional),
    so that blocks of D samples tile the hops exactly."""
    hop = sample_rate * analysis.BLOCK_HOP_S
    if abs(hop - round(hop)) > 1e-9:
        return 1
    return max(d for d in range(1, most + 1) if round(hop) % d == 0)


@numba.njit(cache=True, nogil=True)
def _decimate(envelope, weighted, d, env_blocks):
    """Block maxima of the detector ``envelope`` (``env_blocks`` blocks of ``d``, zero past its
    end) and the root mean K-weighted power (channels summed) per block of ``weighted``."""
    env = np.zeros(env_blocks, np.float32)
    for m in range(env_blocks):
        top = np.float32(0.0)
        for i in range(m * d, min((m + 1) * d, envelope.shape[0])):
            top = max(top, envelope[i])
        env[m] = top
    channels, n = weighted.shape
    blocks = -(-n // d)
    rms = np.zeros(blocks)
    for m in range(blocks):
        acc = 0.0
        for i in range(m * d, min((m + 1) * d, n)):
            for c in range(channels):
                acc += weighted[c, i] * weighted[c, i]
        rms[m] = np.sqrt(acc / d)
    return env, rms


@dataclass
class _Surrogate:
    """The loudness-vs-gain curve on D-sample blocks (see the module docstring)."""
    envelope: np.ndarray      # block maxima of the detector envelope (float32)
    rms: np.ndarray           # (1, blocks) sqrt of the mean K-weighted power per block
    lookahead: int            # in blocks
    rate: float               # blocks per second
    blocks: int

    @classmethod
    def of(cls, envelope: np.ndarray, weighted: np.ndarray, lookahead: int,
           sample_rate: int) -> "_Surrogate":
        d = _block_divisor(sample_rate)
        blocks = -(-weighted.shape[-1] // d)
        la = max(1, int(round(lookahead / d)))
        env, rms = _decimate(envelope, np.ascontiguousarray(weighted, dtype=np.float64), d,
                             blocks + la - 1)
        return cls(env, rms[None], la, sample_rate / d, blocks)

    def loudness(self, gain_db: float, ceiling_dbtp: float, release_ms: float) -> float:
        g = limiter_gain(self.envelope, self.blocks, gain_db, ceiling_dbtp, release_ms,
                         self.lookahead, self.rate)
        return analysis.loudness_of_weighted(self.rms, self.rate, g)


def match_loudness(pre: np.ndarray, limiter_settings: dict, target_lufs: float, sr: int,
                   envelope: np.ndarray | None = None, weighted: np.ndarray | None = None,
                   surrogate: _Surrogate | None = None, polish: int = 4) -> tuple[float, float]:
    """Master gain (dB) so that the limited master reads ``target_lufs``.  Returns the gain and
    the loudness it reaches by the exact evaluation (short of the target when the limiter
    cannot get there)."""
    L = lookahead_samples(limiter_settings["lookahead_ms"], sr)
    if envelope is None:
        envelope = limiter_envelope(pre, L)
    if weighted is None:
        weighted = analysis.k_weight(pre, sr)
    if surrogate is None:
        surrogate = _Surrogate.of(envelope, weighted, L, sr)
    ceiling, release = limiter_settings["ceiling_dbtp"], limiter_settings["release_ms"]

    def exact(gain_db):
        g = limiter_gain(envelope, pre.shape[-1], gain_db, ceiling, release, L, sr)
        return analysis.loudness_of_weighted(weighted, sr, g)

    def approx(gain_db):
        return surrogate.loudness(gain_db, ceiling, release)

    start = target_lufs - analysis.loudness_of_weighted(weighted, sr)
    gain, _ = _secant(approx, target_lufs, start, TOLERANCE_LU / 4, 20)
    reached = exact(gain)
    for _ in range(polish):
        if abs(reached - target_lufs) < TOLERANCE_LU:
            break
        offset = reached - approx(gain)   # the surrogate's error near this gain
        new, _ = _secant(approx, target_lufs - offset, gain, TOLERANCE_LU / 4, 20)
        if abs(new - gain) < 1e-4:
            break
        gain, reached = new, exact(new)
    return gain, reached


def loudness_stage(pre: np.ndarray, limiter_settings: dict, target_lufs: float, sr: int,
                   releases=LIMITER_RELEASES_MS) -> dict:
    """Gain and, where the target is too loud for a gentle limiter, a faster release (tried
    in the order of ``releases``)."""
    L = lookahead_samples(limiter_settings["lookahead_ms"], sr)
    envelope = limiter_envelope(pre, L)
    weighted = analysis.k_weight(pre, sr)  # shared by every release's search
    surrogate = _Surrogate.of(envelope, weighted, L, sr)
    for release in releases:
        lim = dict(limiter_settings, release_ms=release)
        gain, reached = match_loudness(pre, lim, target_lufs, sr, envelope=envelope,
                                       weighted=weighted, surrogate=surrogate)
        if reached >= target_lufs - 0.1:
            break
    return {"gain_db": gain, "limiter": lim, "reached_lufs": reached, "envelope": envelope}
