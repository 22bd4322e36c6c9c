"""What a piece of audio measures: loudness, peaks, dynamics, tonal balance and stereo width.

Two halves share one set of definitions (docs/metrics.md, "How quality is measured"):

* :func:`analyze` (numpy/scipy, full length, exact) returns a plain JSON-serializable dict;
* ``*_torch`` twins (batched ``(batch, channels, samples)``, float32/float64, CPU/CUDA, with
  gradients) used as training and refinement losses.

Metrics
-------
``integrated_lufs``
    ITU-R BS.1770-4 integrated loudness: K-weighting, 400 ms blocks with 75 % overlap, absolute
    gate -70 LUFS, relative gate -10 LU.  The K-weighting is the standard's two biquads derived
    from their analog prototypes (high shelf +4 dB at 1681.97 Hz, high-pass at 38.135 Hz) by the
    bilinear transform with pre-warping, so it exists for any sample rate and reproduces the
    standard's 48 kHz coefficient table.  Channel weights are 1 for left and right; a mono file's
    single channel has weight 1 too (as pyloudnorm; a "dual mono" meter would read +3 dB more).
``short_term_lufs_max``
    Largest 3 s short-term loudness (EBU Tech 3341), windows every 100 ms.
``loudness_range_lu``
    EBU Tech 3342 LRA: 3 s short-term loudness every 100 ms, absolute gate -70 LUFS, relative
    gate -20 LU below the energy mean of the absolute-gated windows, 95th minus 10th percentile.
``true_peak_dbtp`` / ``sample_peak_dbfs``
    Largest |value| of the 4x oversampled signal (:func:`automix.dsp.truepeak.true_peak`) / of
    the samples.
``plr_db``
    Peak-to-loudness ratio, true peak minus integrated loudness.
``crest_factor_db``
    Sample peak over RMS (all channels pooled), in dB.
``tonal_balance``
    Long-term average power spectrum (Welch, Hann, 50 % overlap, ~2.7-2.9 Hz resolution) of
    mid ``(L+R)/2`` and side ``(L-R)/2``, integrated into the 27 IEC 1/3-octave bands whose
    nominal centres run 40 Hz ... 16 kHz (exact edges ``1000 * 10**((k -+ 0.5)/10)`` Hz, each
    FFT bin weighted by the fraction of its width inside the band).  Each curve is in dB relative
    to its own mean band power.  Because it is *band power*, pink noise is flat and white noise
    rises 1 dB per band (3 dB/octave).
``width_db``
    ``10*log10(side energy / mid energy)``: 0 dB for independent equal-power channels,
    -inf for mono, +inf for L = -R; clipped to [-120, +120].

Silence and floors
------------------
``-inf`` is not JSON, so every level in dB is floored at :data:`FLOOR_DB` = -120: the loudness of
silence (or of anything whose every block falls below the -70 LUFS gate) is -120 LUFS, a silent
peak is -120 dB, a band with no power is -120 dB below the curve's mean, and the side curve of a
mono file (side is exactly zero) is -120 in every band; its width is -120 dB.  Differences that
involve a floored loudness (PLR, LRA) are reported as 0.0; ``silent`` is True when the
integrated loudness is floored.  The torch twins use the same floors through eps terms, so
their gradients stay finite on silence.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numba
import numpy as np
import torch
import torch.nn.functional as F
import scipy.fft

from . import background
from .audio import peak, resample
from .dsp import truepeak as _truepeak
from .dsp.eq import sos_filter_inplace
from .errors import AutomixError

FLOOR_DB = -120.0          # every dB value is >= this (and width <= -FLOOR_DB)
ABS_GATE_LUFS = -70.0
REL_GATE_LU = -10.0        # integrated loudness
LRA_REL_GATE_LU = -20.0    # loudness range
BLOCK_S, BLOCK_HOP_S = 0.4, 0.1     # BS.1770 gating blocks (75 % overlap)
SHORT_TERM_S = 3.0
LRA_PERCENTILES = (10.0, 95.0)
_LUFS_OFFSET = -0.691

# 1/3-octave bands: IEC 61260 base-10 exact centres, labelled by their nominal values.
BANDS_HZ = (40, 50, 63, 80, 100, 125, 160, 200, 250, 315, 400, 500, 630, 800, 1000, 1250, 1600,
            2000, 2500, 3150, 4000, 5000, 6300, 8000, 10000, 12500, 16000)
_BAND_INDEX = np.arange(-14, 13)                            # 1000 Hz is index 0
BAND_CENTRES_EXACT = 1000.0 * 10.0 ** (_BAND_INDEX / 10.0)
BAND_EDGES = np.stack([BAND_CENTRES_EXACT * 10.0 ** (-0.05),
                       BAND_CENTRES_EXACT * 10.0 ** 0.05], axis=1)   # (27, 2) lo, hi in Hz
N_BANDS = len(BANDS_HZ)

DYNAMICS_FEATURES = ("plr_db", "loudness_spread_lu")

# eps terms: a mean square of _MS_EPS reads FLOOR_DB LUFS; power ratios are floored at 1e-12.
_MS_EPS = 10.0 ** ((FLOOR_DB - _LUFS_OFFSET) / 10.0)
_RATIO_FLOOR = 10.0 ** (FLOOR_DB / 10.0)
_POWER_EPS = 1e-12         # band power / energy below which a curve counts as silent
_PEAK_EPS = 10.0 ** (FLOOR_DB / 20.0)


# ---------------------------------------------------------------------------------------------
# K-weighting
# ---------------------------------------------------------------------------------------------

# Analog prototypes of the BS.1770 pre-filter (stage 1: high shelf; stage 2: high-pass RLB).
_SHELF_F0, _SHELF_GAIN_DB, _SHELF_Q = 1681.974450955533, 3.999843853973347, 0.7071752369554196
_SHELF_VB_EXP = 0.4996667741545416    # band-edge gain exponent of the shelf
_HP_F0, _HP_Q = 38.13547087602444, 0.5003270373238773


@functools.lru_cache(maxsize=None)
def k_weighting_coefficients(sample_rate: float) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """The two K-weighting biquads ``((b, a), (b, a))`` (a[0] = 1) for ``sample_rate``.

    Bilinear transform of the analog prototypes, pre-warped at each stage's corner; at 48 kHz
    this gives the coefficient table of ITU-R BS.1770-4 (the high-pass keeps the table's
    numerator ``[1, -2, 1]``, i.e. its +0.04 dB high-frequency gain).
    """
    fs = float(sample_rate)
    k = math.tan(math.pi * _SHELF_F0 / fs)
    vh = 10.0 ** (_SHELF_GAIN_DB / 20.0)
    vb = vh ** _SHELF_VB_EXP
    a0 = 1.0 + k / _SHELF_Q + k * k
    b1 = np.array([vh + vb * k / _SHELF_Q + k * k, 2.0 * (k * k - vh),
                   vh - vb * k / _SHELF_Q + k * k]) / a0
    a1 = np.array([1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / _SHELF_Q + k * k) / a0])
    k = math.tan(math.pi * _HP_F0 / fs)
    a0 = 1.0 + k / _HP_Q + k * k
    b2 = np.array([1.0, -2.0, 1.0])
    a2 = np.array([1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / _HP_Q + k * k) / a0])
    return (b1, a1), (b2, a2)


def k_weighting_response(freqs_hz: np.ndarray, sample_rate: float) -> np.ndarray:
    """Complex frequency response of the K-weighting at ``freqs_hz`` (complex128)."""
    z1 = np.exp(-2j * np.pi * np.asarray(freqs_hz, dtype=np.float64) / sample_rate)
    h = np.ones_like(z1)
    for b, a in k_weighting_coefficients(sample_rate):
        h = h * (b[0] + b[1] * z1 + b[2] * z1 * z1) / (a[0] + a[1] * z1 + a[2] * z1 * z1)
    return h


def k_weight(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """K-weighted ``audio`` (float64, same shape), filtered along the last axis."""
    sos = np.array([np.concatenate([b, a]) for b, a in k_weighting_coefficients(sample_rate)])
    x = np.asarray(audio, dtype=np.float64)
    if x.ndim != 2:
        from scipy.signal import sosfilt  # imported here: scipy.signal costs ~1 s to import

        return sosfilt(sos, x, axis=-1)
    # the render path's numba recursion: sosfilt's operations in sosfilt's order, ~4x faster
    y = np.array(x, order="C")
    sos_filter_inplace(sos, y, np.zeros((sos.shape[0], y.shape[0], 2)))
    return y


# ---------------------------------------------------------------------------------------------
# Loudness (numpy)
# ---------------------------------------------------------------------------------------------

def _as_channels(audio: np.ndarray) -> np.ndarray:
    audio = np.asarray(audio)
    if audio.ndim == 1:
        audio = audio[None]
    if audio.ndim != 2:
        raise AutomixError(f"expected audio shaped (channels, samples), got {audio.shape}")
    if audio.shape[0] not in (1, 2):
        raise AutomixError(f"{audio.shape[0]} channels; automix analyses mono or stereo audio")
    if audio.shape[1] == 0:
        raise AutomixError("the audio holds no samples")
    return audio.astype(np.float64, copy=False)


@numba.njit(cache=True, nogil=True)
def _hop_energy_kernel(x, gain, bounds):
    """Sums over the hops ``[bounds[k], bounds[k+1])`` of ``sum_c (x[c, i] * gain[i])**2``
    (``gain`` empty: 1), plus the sum over every sample: one pass, no per-sample temporaries."""
    channels, n = x.shape
    sums = np.zeros(len(bounds) - 1)
    for k in range(len(bounds) - 1):
        acc = 0.0
        for i in range(bounds[k], bounds[k + 1]):
            g = gain[i] if gain.shape[0] else 1.0
            for c in range(channels):
                v = x[c, i] * g
                acc += v * v
        sums[k] = acc
    total = sums.sum()
    for i in range(bounds[-1], n):
        g = gain[i] if gain.shape[0] else 1.0
        for c in range(channels):
            v = x[c, i] * g
            total += v * v
    return sums, total


@dataclass
class _Hops:
    """Channel-summed power of a (K-weighted) signal per 100 ms hop: enough for every
    BS.1770 / EBU window, which are whole numbers of hops."""
    sums: np.ndarray
    lengths: np.ndarray
    mean_power: float   # over every sample (the answer for a signal shorter than one window)

    @classmethod
    def of(cls, weighted: np.ndarray, sample_rate: int, gain: np.ndarray | None = None) -> "_Hops":
        n = weighted.shape[-1]
        bounds = np.round(np.arange(0, n / sample_rate / BLOCK_HOP_S + 1e-9) * BLOCK_HOP_S
                          * sample_rate).astype(np.int64)
        bounds = bounds[bounds <= n]
        x = np.ascontiguousarray(weighted, dtype=np.float64)
        g = np.zeros(0) if gain is None else np.ascontiguousarray(gain, dtype=np.float64)
        if len(bounds) < 2:
            bounds = np.zeros(1, dtype=np.int64)
        sums, total = _hop_energy_kernel(x, g, bounds)
        return cls(sums, np.diff(bounds), total / n)

    def window_mean_squares(self, window_s: float) -> np.ndarray:
        """Mean power over windows of ``window_s`` every 100 ms (complete windows only); a
        signal shorter than one window gives one window: the whole signal."""
        per = int(round(window_s / BLOCK_HOP_S))
        if len(self.sums) < per:
            return np.array([self.mean_power])
        kernel = np.ones(per)
        e = np.convolve(self.sums, kernel, mode="valid")
        n = np.convolve(self.lengths.astype(np.float64), kernel, mode="valid")
        return np.maximum(e, 0.0) / n


def _weighted_hops(audio: np.ndarray, sample_rate: int) -> _Hops:
    """Hop energies of the K-weighted ``audio`` (all channel weights are 1)."""
    return _Hops.of(k_weight(audio, sample_rate), sample_rate)


def _lufs(ms) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return _LUFS_OFFSET + 10.0 * np.log10(ms)


def _gated_loudness(block_ms: np.ndarray) -> float:
    """BS.1770 two-stage gating of block mean squares; FLOOR_DB when nothing passes."""
    lk = _lufs(block_ms)
    keep = lk >= ABS_GATE_LUFS
    if not keep.any():
        return FLOOR_DB
    rel = _lufs(block_ms[keep].mean()) + REL_GATE_LU
    keep &= lk > rel
    return float(max(_lufs(block_ms[keep].mean()), FLOOR_DB))


def integrated_loudness(audio: np.ndarray, sample_rate: int) -> float:
    """ITU-R BS.1770-4 integrated loudness in LUFS (FLOOR_DB = -120 for silence)."""
    audio = _as_channels(audio)
    return _gated_loudness(_weighted_hops(audio, sample_rate).window_mean_squares(BLOCK_S))


def loudness_of_weighted(weighted: np.ndarray, sample_rate: int,
                         gain: np.ndarray | None = None) -> float:
    """:func:`integrated_loudness` of a signal that is already K-weighted (channels, samples),
    optionally times a per-sample ``gain`` (samples,) applied on the fly."""
    weighted = _as_channels(weighted)
    return _gated_loudness(_Hops.of(weighted, sample_rate, gain).window_mean_squares(BLOCK_S))


def short_term_loudness_of_weighted(weighted: np.ndarray, sample_rate: int,
                                    gain: np.ndarray | None = None) -> np.ndarray:
    """:func:`short_term_loudness` of a K-weighted signal, optionally times a per-sample gain."""
    ms = _Hops.of(_as_channels(weighted), sample_rate, gain).window_mean_squares(SHORT_TERM_S)
    return np.maximum(_lufs(ms), FLOOR_DB)


def short_term_loudness(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """3 s short-term loudness every 100 ms, in LUFS (floored at FLOOR_DB)."""
    return short_term_loudness_of_weighted(k_weight(_as_channels(audio), sample_rate), sample_rate)


def loudness_range(short_term: np.ndarray) -> float:
    """EBU Tech 3342 loudness range (LU) of short-term loudness values; 0.0 when gated out."""
    st = np.asarray(short_term, dtype=np.float64)
    st = st[st >= ABS_GATE_LUFS]
    if len(st) == 0:
        return 0.0
    rel = 10.0 * np.log10(np.mean(10.0 ** (st / 10.0))) + LRA_REL_GATE_LU
    st = st[st >= rel]
    lo, hi = np.percentile(st, LRA_PERCENTILES)
    return float(hi - lo)


# ---------------------------------------------------------------------------------------------
# Tonal balance and width (numpy)
# ---------------------------------------------------------------------------------------------

def welch_segment(sample_rate: int, n_samples: int) -> int:
    """Welch segment length: a power of two giving <= ~2.9 Hz resolution (16384 at 44.1/48 kHz,
    32768 at 96 kHz), shortened to the largest power of two that fits a short signal."""
    target = 1 << max(4, int(math.ceil(math.log2(sample_rate / 3.0))))
    fits = 1 << max(4, int(math.floor(math.log2(max(n_samples, 16)))))
    return min(target, fits)


@functools.lru_cache(maxsize=32)
def band_matrix(sample_rate: int, nperseg: int) -> np.ndarray:
    """(N_BANDS, nperseg//2+1) weights: fraction of each FFT bin's width inside each band."""
    df = sample_rate / nperseg
    f = np.arange(nperseg // 2 + 1) * df
    lo_bin = np.maximum(f - df / 2, 0.0)
    hi_bin = np.minimum(f + df / 2, sample_rate / 2)
    lo, hi = BAND_EDGES[:, :1], BAND_EDGES[:, 1:]
    overlap = np.clip(np.minimum(hi, hi_bin) - np.maximum(lo, lo_bin), 0.0, None)
    return overlap / df


def _welch_scale(sample_rate: int, nperseg: int) -> tuple[np.ndarray, np.ndarray]:
    """Periodic Hann window and the per-bin factor turning mean |X|^2 into one-sided PSD * df
    (i.e. power per bin, as ``scipy.signal.welch(..., scaling='density') * df``)."""
    n = np.arange(nperseg)
    win = 0.5 - 0.5 * np.cos(2 * np.pi * n / nperseg)
    scale = np.full(nperseg // 2 + 1, 2.0 / (nperseg * np.sum(win ** 2)))
    scale[0] /= 2
    if nperseg % 2 == 0:
        scale[-1] /= 2
    return win, scale


def _welch_segments(x: np.ndarray, sample_rate: int, nperseg: int | None):
    """Hann-windowed 50 %-overlap segments of rows ``x`` (..., samples) as chunks (bounded
    memory on long files), with the per-bin scale and the segment count."""
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[-1]
    nperseg = nperseg or welch_segment(sample_rate, n)
    if n < nperseg:
        x = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, nperseg - n)])
    win, scale = _welch_scale(sample_rate, nperseg)
    segs = np.lib.stride_tricks.sliding_window_view(x, nperseg, axis=-1)[..., ::nperseg // 2, :]
    step = max(1, (1 << 22) // nperseg)
    chunks = (scipy.fft.rfft(segs[..., s:s + step, :] * win, axis=-1, workers=-1)
              for s in range(0, segs.shape[-2], step))
    return chunks, scale, segs.shape[-2]


def average_power_spectrum(x: np.ndarray, sample_rate: int,
                           nperseg: int | None = None) -> np.ndarray:
    """Welch power per FFT bin of rows ``x`` (..., samples): Hann, 50 % overlap, no detrend."""
    chunks, scale, count = _welch_segments(x, sample_rate, nperseg)
    total = 0.0
    for spec in chunks:
        total = total + (spec.real ** 2 + spec.imag ** 2).sum(axis=-2)
    return total / count * scale


@numba.njit(cache=True, nogil=True)
def _accumulate_mid_side(spec, acc):
    """``acc[0..2] +=`` sums over segments of |L+R|^2, |L-R|^2 and |L|^2-|R|^2, for the FFTs
    ``spec`` (2, segments, bins) of L and R; one pass instead of a dozen array operations."""
    for k in range(spec.shape[1]):
        for b in range(spec.shape[2]):
            lr, li = spec[0, k, b].real, spec[0, k, b].imag
            rr, ri = spec[1, k, b].real, spec[1, k, b].imag
            mr, mi, dr, di = lr + rr, li + ri, lr - rr, li - ri  # no cancellation on near-mono
            acc[0, b] += mr * mr + mi * mi
            acc[1, b] += dr * dr + di * di
            acc[2, b] += (lr * lr + li * li) - (rr * rr + ri * ri)


def mid_side_power_spectra(audio: np.ndarray, sample_rate: int, nperseg: int | None = None
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Welch power per bin of mid ``(L+R)/2`` and side ``(L-R)/2`` and their real cross
    spectrum ``Re(M S*)``, from the FFTs of L and R alone (the FFT is linear): half the FFTs
    of transforming mid, side, L and R.  A mono signal is all mid."""
    audio = np.asarray(audio)
    if audio.shape[0] == 1:
        mid = average_power_spectrum(audio[0], sample_rate, nperseg)
        return mid, np.zeros_like(mid), np.zeros_like(mid)
    chunks, scale, count = _welch_segments(audio, sample_rate, nperseg)
    acc = np.zeros((3, len(scale)))
    for spec in chunks:
        _accumulate_mid_side(spec, acc)
    pm, ps, pc = acc
    norm = scale / (4 * count)
    return pm * norm, ps * norm, pc * norm


def _normalized_db(p, mean, log10):
    """``10 log10(p / mean)``, floored at FLOOR_DB; exactly FLOOR_DB where p == 0 (also when
    everything is 0).  Shared by numpy and torch so both floor identically."""
    return 10.0 * (log10(p + _RATIO_FLOOR * mean + _RATIO_FLOOR * _POWER_EPS)
                   - log10(mean + _POWER_EPS))


def mid_side(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mid ``(L+R)/2`` and side ``(L-R)/2``; a mono signal is all mid (side = 0)."""
    if audio.shape[0] == 1:
        return audio[0], np.zeros_like(audio[0])
    return 0.5 * (audio[0] + audio[1]), 0.5 * (audio[0] - audio[1])


def tonal_balance(audio: np.ndarray, sample_rate: int, spectra=None) -> dict:
    """1/3-octave band power of mid and side, each in dB relative to its own mean band power.
    ``spectra``: this audio's (mid, side, ...) Welch spectra when already computed (used if
    they are on this function's own grid)."""
    audio = _as_channels(audio)
    if spectra is None or (len(spectra[0]) - 1) * 2 != welch_segment(sample_rate, audio.shape[-1]):
        spectra = mid_side_power_spectra(audio, sample_rate)
    psd = np.stack(spectra[:2])
    bands = psd @ band_matrix(sample_rate, (psd.shape[-1] - 1) * 2).T        # (2, N_BANDS)
    db = _normalized_db(bands, bands.mean(-1, keepdims=True), np.log10)
    db = np.where(bands > 0.0, np.maximum(db, FLOOR_DB), FLOOR_DB)   # floor exactly, not ~1e-14 off
    return {"bands_hz": [float(f) for f in BANDS_HZ],
            "mid_db": [float(v) for v in db[0]], "side_db": [float(v) for v in db[1]]}


def stereo_width_db(audio: np.ndarray) -> float:
    """``10 log10(side energy / mid energy)`` in [-120, +120]; -120 for mono, L = R or silence."""
    audio = _as_channels(audio)
    mid, side = mid_side(audio)
    s, m = float(np.dot(side, side)), float(np.dot(mid, mid))
    if s == 0.0:
        return FLOOR_DB
    if m == 0.0:
        return -FLOOR_DB
    return float(np.clip(10.0 * np.log10(s / m), FLOOR_DB, -FLOOR_DB))


def true_peak_linear(audio: np.ndarray) -> float:
    """Linear true peak of ``audio`` (channels, samples), all channels, by the shared meter
    :func:`automix.dsp.truepeak.true_peak` (4x oversampling); never below the sample peak."""
    audio = _as_channels(audio)
    tp = _truepeak.true_peak_array(audio)
    return max(tp, peak(audio))   # the samples lie on the oversampled grid


def _db(x: float) -> float:
    return float(20.0 * np.log10(x)) if x > _PEAK_EPS else FLOOR_DB


# ---------------------------------------------------------------------------------------------
# analyze
# ---------------------------------------------------------------------------------------------

def analyze(audio: np.ndarray, sample_rate: int, spectra=None) -> dict:
    """Every metric of the module docstring for ``audio`` (channels, samples), as plain data.
    ``spectra``: see :func:`tonal_balance`."""
    audio = _as_channels(audio)
    sample_rate = int(sample_rate)
    true_peak = background.submit(true_peak_linear, audio)  # overlaps the loudness and spectra
    hops = _weighted_hops(audio, sample_rate)
    lufs = _gated_loudness(hops.window_mean_squares(BLOCK_S))
    silent = lufs <= FLOOR_DB
    st = np.maximum(_lufs(hops.window_mean_squares(SHORT_TERM_S)), FLOOR_DB)
    sp = peak(audio)
    rms = float(np.sqrt(np.mean(audio * audio)))
    width = stereo_width_db(audio)
    tonal = tonal_balance(audio, sample_rate, spectra)
    tp = true_peak.result()
    return {
        "duration_s": audio.shape[1] / sample_rate,
        "sample_rate": sample_rate,
        "channels": int(audio.shape[0]),
        "silent": bool(silent),
        "integrated_lufs": float(lufs),
        "short_term_lufs_max": float(st.max()),
        "loudness_range_lu": loudness_range(st),
        "true_peak_dbtp": _db(tp),
        "sample_peak_dbfs": _db(sp),
        "plr_db": 0.0 if silent else _db(tp) - float(lufs),
        "crest_factor_db": _db(sp) - _db(rms) if rms > _PEAK_EPS else 0.0,
        "width_db": width,
        "tonal_balance": tonal,
    }


# ---------------------------------------------------------------------------------------------
# Comparing two analyses (the errors of docs/metrics.md)
# ---------------------------------------------------------------------------------------------

def loudness_error_lu(a: dict, b: dict) -> float:
    return abs(a["integrated_lufs"] - b["integrated_lufs"])


def common_bands(a: dict, b: dict) -> np.ndarray:
    """Mask of the bands lying wholly below both analyses' Nyquist frequency."""
    nyquist = min(a["sample_rate"], b["sample_rate"]) / 2.0
    return BAND_EDGES[:, 1] <= nyquist


def tonal_error_db(a: dict, b: dict, part: str = "mid") -> float:
    """Mean absolute difference (dB) of the normalized ``part`` ("mid" or "side") band curves,
    over the bands both sample rates cover."""
    if part not in ("mid", "side"):
        raise ValueError(f"part must be 'mid' or 'side', not {part!r}")
    key = f"{part}_db"
    keep = common_bands(a, b)
    da = np.asarray(a["tonal_balance"][key])[keep]
    db = np.asarray(b["tonal_balance"][key])[keep]
    return float(np.mean(np.abs(da - db)))


def width_error_db(a: dict, b: dict) -> float:
    return abs(a["width_db"] - b["width_db"])


def plr_error_db(a: dict, b: dict) -> float:
    return abs(a["plr_db"] - b["plr_db"])


def lra_error_lu(a: dict, b: dict) -> float:
    return abs(a["loudness_range_lu"] - b["loudness_range_lu"])


def compare(a: dict, b: dict) -> dict:
    """All of docs/metrics.md's errors of analysis ``a`` against ``b`` (the reference or target)."""
    return {
        "loudness_error_lu": loudness_error_lu(a, b),
        "tonal_mid_error_db": tonal_error_db(a, b, "mid"),
        "tonal_side_error_db": tonal_error_db(a, b, "side"),
        "width_error_db": width_error_db(a, b),
        "plr_error_db": plr_error_db(a, b),
        "lra_error_lu": lra_error_lu(a, b),
        "true_peak_dbtp": a["true_peak_dbtp"],
    }


def format_analysis(d: dict) -> str:
    """A short multi-line text of an analysis (for ``automix analyze FILE``)."""
    mins, secs = divmod(d["duration_s"], 60.0)
    layout = {1: "mono", 2: "stereo"}.get(d["channels"], f"{d['channels']} ch")
    lines = [
        f"duration    {int(mins)}:{secs:04.1f}  ({d['sample_rate']} Hz, {layout})",
        f"loudness    {_fmt(d['integrated_lufs'])} LUFS integrated, "
        f"{_fmt(d['short_term_lufs_max'])} LUFS short-term max, "
        f"LRA {d['loudness_range_lu']:.1f} LU" + ("  (silent)" if d.get("silent") else ""),
        f"peaks       {_fmt(d['true_peak_dbtp'])} dBTP true peak, "
        f"{_fmt(d['sample_peak_dbfs'])} dBFS sample peak",
        f"dynamics    PLR {d['plr_db']:.1f} dB, crest factor {d['crest_factor_db']:.1f} dB",
        f"width       {_fmt(d['width_db'])} dB (side/mid energy)",
        "tonal balance (1/3-octave band power, dB re. mean band)",
    ]
    tb = d["tonal_balance"]
    for start in range(0, len(tb["bands_hz"]), 9):
        sl = slice(start, start + 9)
        lines.append("  Hz    " + "".join(f"{_hz(f):>7}" for f in tb["bands_hz"][sl]))
        lines.append("  mid   " + "".join(f"{v:>7.1f}" for v in tb["mid_db"][sl]))
        lines.append("  side  " + "".join(f"{v:>7.1f}" for v in tb["side_db"][sl]))
    return "\n".join(lines)


def _fmt(v: float) -> str:
    return "-inf" if v <= FLOOR_DB else f"{v:.1f}"


def _hz(f: float) -> str:
    return f"{f / 1000:g}k" if f >= 1000 else f"{f:g}"


# ---------------------------------------------------------------------------------------------
# Differentiable torch twins
# ---------------------------------------------------------------------------------------------

def _check_batch(x: torch.Tensor) -> torch.Tensor:
    if x.dim() == 2:
        x = x.unsqueeze(0)
    if x.dim() != 3 or x.shape[1] not in (1, 2):
        raise ValueError(f"expected (batch, channels<=2, samples), got {tuple(x.shape)}")
    return x


@functools.lru_cache(maxsize=16)
def _k_response_np(sample_rate: int, n_fft: int) -> np.ndarray:
    return k_weighting_response(np.arange(n_fft // 2 + 1) * sample_rate / n_fft, sample_rate)


def k_weight_torch(x: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """K-weighting of ``x`` (..., samples) by frequency sampling: the crop is zero-padded to an
    FFT of at least twice its length (plus 0.25 s for the filters' decay), multiplied by the
    analytic response of the same biquads as :func:`k_weight` and cut back, so it equals
    ``lfilter`` of the crop from rest (to float precision) and is differentiable."""
    n = x.shape[-1]
    n_fft = 1 << int(math.ceil(math.log2(n + max(n, sample_rate // 4))))
    cdtype = torch.complex128 if x.dtype == torch.float64 else torch.complex64
    h = torch.as_tensor(_k_response_np(int(sample_rate), n_fft), dtype=cdtype, device=x.device)
    return torch.fft.irfft(torch.fft.rfft(x, n=n_fft) * h, n=n_fft)[..., :n]


def _lufs_torch(ms: torch.Tensor) -> torch.Tensor:
    return _LUFS_OFFSET + 10.0 * torch.log10(ms + _MS_EPS)


def _blocks(power: torch.Tensor, sample_rate: int, window_s: float, hop_s: float) -> torch.Tensor:
    """Mean of ``power`` (batch, samples) over windows; one window if the crop is shorter."""
    win = max(1, int(round(window_s * sample_rate)))
    hop = max(1, int(round(hop_s * sample_rate)))
    if power.shape[-1] < win:
        return power.mean(-1, keepdim=True)
    return F.avg_pool1d(power.unsqueeze(1), win, hop).squeeze(1)


def _gated_mean(z: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Mean of ``z`` over the kept blocks (a mask without gradient); all blocks if none kept."""
    keep = keep.to(z.dtype)
    none = keep.sum(-1, keepdim=True) == 0
    keep = torch.where(none, torch.ones_like(keep), keep)
    return (z * keep).sum(-1) / keep.sum(-1)


def loudness_torch(x: torch.Tensor, sample_rate: int, gate: str | None = None,
                   weighted_power: torch.Tensor | None = None) -> torch.Tensor:
    """K-weighted loudness (LUFS) of each item of ``x`` (batch, channels, samples) -> (batch,).

    ``gate``: None (default) - plain mean square over the crop (no gating at all);
    "absolute" - mean over 400 ms blocks (100 ms hop) at or above -70 LUFS;
    "bs1770" - both BS.1770 gates.  Gate masks are computed without gradient (the kept blocks
    carry it).  Silence reads FLOOR_DB with finite gradients.
    """
    x = _check_batch(x)
    p = weighted_power if weighted_power is not None else \
        k_weight_torch(x, sample_rate).square().sum(1)
    if gate is None:
        return _lufs_torch(p.mean(-1))
    if gate not in ("absolute", "bs1770"):
        raise ValueError(f"gate must be None, 'absolute' or 'bs1770', not {gate!r}")
    z = _blocks(p, sample_rate, BLOCK_S, BLOCK_HOP_S)
    with torch.no_grad():
        lk = _lufs_torch(z)
        keep = lk >= ABS_GATE_LUFS
        if gate == "bs1770":
            rel = _lufs_torch(_gated_mean(z, keep)) + REL_GATE_LU
            keep = keep & (lk > rel.unsqueeze(-1))
    return _lufs_torch(_gated_mean(z, keep))


def band_spectrum_torch(x: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """1/3-octave band power (dB re. each curve's mean band) of mid and side:
    (batch, 2, N_BANDS), same Welch setup, bands and floors as :func:`tonal_balance`."""
    x = _check_batch(x)
    if x.shape[1] == 1:
        ms = torch.cat([x, torch.zeros_like(x)], 1)
    else:
        ms = torch.stack([x[:, 0] + x[:, 1], x[:, 0] - x[:, 1]], 1) * 0.5
    b, _, n = ms.shape
    nperseg = welch_segment(sample_rate, n)
    if n < nperseg:
        ms = F.pad(ms, (0, nperseg - n))
    win, scale = _welch_scale(sample_rate, nperseg)
    win_t = torch.as_tensor(win, dtype=x.dtype, device=x.device)
    spec = torch.stft(ms.reshape(b * 2, -1), nperseg, hop_length=nperseg // 2, window=win_t,
                      center=False, return_complex=True)                    # (2b, bins, frames)
    power = (spec.real.square() + spec.imag.square()).mean(-1)
    weights = band_matrix(sample_rate, nperseg).T * scale[:, None]
    bands = power @ torch.as_tensor(weights, dtype=x.dtype, device=x.device)
    bands = bands.reshape(b, 2, -1)
    return _normalized_db(bands, bands.mean(-1, keepdim=True), torch.log10)


def width_torch(x: torch.Tensor) -> torch.Tensor:
    """``10 log10(side energy / mid energy)`` per item -> (batch,), in [-120, +120]; mono
    input and silence give -120 (with zero, finite gradient)."""
    x = _check_batch(x)
    if x.shape[1] == 1:
        return x.sum((1, 2)) * 0.0 + FLOOR_DB
    m = (0.5 * (x[:, 0] + x[:, 1])).square().mean(-1)
    s = (0.5 * (x[:, 0] - x[:, 1])).square().mean(-1)
    return _normalized_db(s, m, torch.log10).clamp(max=-FLOOR_DB)


def plr_torch(x: torch.Tensor, sample_rate: int, top_fraction: float = 1e-5,
              weighted_power: torch.Tensor | None = None) -> torch.Tensor:
    """Soft peak-to-loudness ratio (dB) per item -> (batch,).

    The peak is the mean of the largest ``top_fraction`` of |samples| (all channels; at least
    one sample; ~9 samples in a 10 s stereo crop at 44.1 kHz), so its gradient reaches the loudest
    few samples rather than one; it sits at or below the sample peak (within ~0.5 dB on music,
    ~1.5 dB on Gaussian noise; a limited master's top samples all sit at the ceiling).  Loudness is :func:`loudness_torch` with the absolute gate.
    """
    x = _check_batch(x)
    flat = x.abs().reshape(x.shape[0], -1)
    k = max(1, int(round(top_fraction * flat.shape[-1])))
    peak = flat.topk(k, dim=-1).values.mean(-1)
    peak_db = 20.0 * torch.log10(peak + _PEAK_EPS)
    return peak_db - loudness_torch(x, sample_rate, gate="absolute", weighted_power=weighted_power)


def loudness_spread_torch(x: torch.Tensor, sample_rate: int, window_s: float = SHORT_TERM_S,
                          hop_s: float = 0.25,
                          weighted_power: torch.Tensor | None = None) -> torch.Tensor:
    """Standard deviation (LU) of short-term loudness per item -> (batch,): a differentiable
    stand-in for LRA.  Windows of ``window_s`` (shortened to a quarter of a short crop) every
    ``hop_s``; windows gated as LRA's (-70 LUFS absolute, -20 LU relative; masks without
    gradient).  For normally distributed short-term loudness LRA ~ 2.93 x this value."""
    x = _check_batch(x)
    p = weighted_power if weighted_power is not None else \
        k_weight_torch(x, sample_rate).square().sum(1)
    window_s = min(window_s, p.shape[-1] / sample_rate / 4.0)
    hop_s = min(hop_s, window_s)
    ell = _lufs_torch(_blocks(p, sample_rate, window_s, hop_s))
    with torch.no_grad():
        keep = ell >= ABS_GATE_LUFS
        energy = _gated_mean(10.0 ** (ell / 10.0), keep)
        keep = keep & (ell >= 10.0 * torch.log10(energy).unsqueeze(-1) + LRA_REL_GATE_LU)
        w = keep.to(ell.dtype)
        w = torch.where(w.sum(-1, keepdim=True) == 0, torch.ones_like(w), w)
        w = w / w.sum(-1, keepdim=True)
    mean = (ell * w).sum(-1, keepdim=True)
    return torch.sqrt(((ell - mean).square() * w).sum(-1) + 1e-8)


def dynamics_torch(x: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """Differentiable dynamics statistics (batch, 2), columns :data:`DYNAMICS_FEATURES`:
    ``plr_db`` (:func:`plr_torch`, drives PLR matching) and ``loudness_spread_lu``
    (:func:`loudness_spread_torch`, drives LRA matching).  Compare a mix with a reference
    through the same function on crops of the same length."""
    x = _check_batch(x)
    p = k_weight_torch(x, sample_rate).square().sum(1)
    return torch.stack([plr_torch(x, sample_rate, weighted_power=p),
                        loudness_spread_torch(x, sample_rate, weighted_power=p)], -1)


# --- distance to a known target mix (docs/metrics.md) --------------------------------------

LOGMEL = {"n_fft": 2048, "hop_length": 512, "n_mels": 128, "fmin": 20.0, "floor_db": 80.0}


def logmel_db(audio: np.ndarray, sr: int) -> np.ndarray:
    """Mel power spectrogram in dB, (channels, n_mels, frames)."""
    import librosa
    audio = np.atleast_2d(np.asarray(audio, dtype=np.float64))
    s = librosa.feature.melspectrogram(y=audio, sr=sr, n_fft=LOGMEL["n_fft"],
                                       hop_length=LOGMEL["hop_length"], n_mels=LOGMEL["n_mels"],
                                       fmin=LOGMEL["fmin"], fmax=sr / 2, power=2.0)
    return 10.0 * np.log10(s + 1e-20)


def logmel_distance(estimate: np.ndarray, target: np.ndarray, sr: int,
                    target_sr: int | None = None) -> float:
    """Mean absolute difference (dB) of the log-mel spectrograms of ``estimate`` and
    ``target`` (both (channels, samples); mono is compared to both channels), after ONE gain
    that aligns their levels: the median of the per-cell differences, which is the gain that
    minimises the mean absolute difference.  Cells more than 80 dB under the target's loudest
    cell are floored there (in both), so silence does not dominate.  The estimate is resampled
    to the target's rate and cut or zero-padded to its length."""
    estimate = np.atleast_2d(np.asarray(estimate, dtype=np.float64))
    target = np.atleast_2d(np.asarray(target, dtype=np.float64))
    target_sr = target_sr or sr
    if sr != target_sr:
        estimate = resample(estimate, sr, target_sr).astype(np.float64)
    n = target.shape[1]
    estimate = np.pad(estimate, ((0, 0), (0, max(0, n - estimate.shape[1]))))[:, :n]
    if estimate.shape[0] != target.shape[0]:
        estimate, target = (np.broadcast_to(x, (2, n)) for x in (estimate, target))
    e, t = logmel_db(estimate, target_sr), logmel_db(target, target_sr)
    floor = t.max() - LOGMEL["floor_db"]
    live = t > floor
    gain = float(np.median((e - t)[live])) if live.any() else 0.0
    e = np.maximum(e - gain, floor)
    t = np.maximum(t, floor)
    return float(np.mean(np.abs(e - t)))
