"""Ambience: how reverberant and how diffuse a recording is, measured blindly (no impulse response).

Three measures per band, on the reverb's bands (:data:`BANDS`: low 100-500 Hz, mid 500-4000 Hz,
high 4-12 kHz, the top capped at 0.45 x the sample rate):

1. **Blind RT60** from the distribution of decay rates after offsets (the family of Wen, Habets
   & Naylor, "Blind estimation of reverberation time based on the distribution of signal decay
   rates", ICASSP 2008, and the subband decay-rate methods of the ACE challenge, Eaton et al.
   2016).  A sound in a room cannot die away faster than the room lets it: after an offset the
   band's level falls at the reverberation's rate, and elsewhere more slowly.  So the fastest
   *consistent* decays in the signal carry the RT60:

   - STFT (periodic Hann, ``n_fft`` the power of two nearest 23 ms, hop ``n_fft/4``); band power
     per frame ``P_b[m] = sum over the band's bins of |X|^2``, in dB ``L_b[m]``;
   - least-squares slopes ``s`` (dB/s) of ``L_b`` over sliding windows of 0.1, 0.2, 0.4, 0.8
     and 1.6 s (every frame);
   - a window counts as a free decay when its line explains the level well (``R^2 >= 0.9``),
     falls by at least 10 dB across the window, and every frame lies within 60 dB of the band's
     loudest frame and 10 dB above its floor (the 5th percentile of the frames' levels);
   - per window length with at least 8 counted windows, the decay rate is the median of the
     fastest quarter of its slopes, ``RT60 = -60 / s``; the window length that reads is the one
     whose own estimate puts the drop across the window closest to 25 dB (short windows for
     short decays, long ones for long decays: a window much shorter than the decay is fooled by
     level fluctuations, a much longer one runs into the floor), which reads 0.3 to 5 s;
     ``None`` when no length has 8 windows (no offsets: a continuous signal, too short, or a
     decay too long for the gaps).
2. **Inter-channel coherence** per band, from Welch cross and auto spectra (periodic Hann,
   ``n_fft`` the power of two nearest 46 ms, 50 % overlap, complete segments): ``sum_band |S_LR| /
   sum_band sqrt(S_LL S_RR)``, the magnitude coherence averaged over the band's bins weighted by
   their power.  1 for identical (or mono) channels, 0 for independent ones (up to the estimate's
   bias, about ``sqrt(pi / 4K)`` for K segments: 0.03 for 30 s at 44.1 kHz).  A diffuse reverb
   lowers it; ``None`` for a band without power.
3. **Early/late energy proxy** per band (dB), the direct-plus-early to late-reverberant energy
   ratio by the late reverberant spectral variance estimator of Lebart, Boucher & Denbigh (2001)
   (as in Habets' dereverberation work): the late energy in frame ``m`` is what the energy of 50
   ms earlier leaves after decaying at the band's RT60,
   ``late[m] = min(P[m], exp(-2 D T_l) P[m - N_l])``, ``D = 3 ln(10) / RT60``, ``T_l = 50 ms``;
   ``early_late_db = 10 log10(sum (P - late) / sum late)``.  High for dry material (tens of dB),
   falling as the reverb grows; uses the band's blind RT60 (``None`` when that is ``None``).

Everything is plain data (JSON-serialisable); a mono file is measured as its one channel.
"""
from __future__ import annotations

import math

import numpy as np
import scipy.fft
import scipy.signal

BANDS = (("low", 100.0, 500.0), ("mid", 500.0, 4000.0), ("high", 4000.0, 12000.0))
FIT_WINDOWS_S = (0.1, 0.2, 0.4, 0.8, 1.6)
TARGET_DROP_DB = 25.0
MIN_R2 = 0.9
MIN_DROP_DB = 10.0
RANGE_DB = 60.0
FLOOR_MARGIN_DB = 10.0
FASTEST_SHARE = 0.25
MIN_WINDOWS = 8
LATE_MS = 50.0
HOP_DIV = 4


def _pow2(seconds: float, sample_rate: int) -> int:
    return 1 << max(4, int(round(math.log2(seconds * sample_rate))))


def band_edges(sample_rate: int) -> list[tuple[str, float, float]]:
    """The bands with their top capped at 0.45 x the sample rate (a band left empty is dropped)."""
    out = []
    for name, lo, hi in BANDS:
        hi = min(hi, 0.45 * sample_rate)
        if hi > lo * 1.5:
            out.append((name, lo, hi))
    return out


def band_levels(audio: np.ndarray, sample_rate: int):
    """``(levels_db (bands, frames), power (bands, frames), hop_s, names)`` of the channels'
    summed band power per STFT frame (frames of ``n_fft`` every ``hop`` samples from the first
    sample, complete frames only; computed in chunks of frames, so memory stays small)."""
    x = np.atleast_2d(np.asarray(audio, dtype=np.float64))
    n_fft = _pow2(0.023, sample_rate)
    hop = n_fft // HOP_DIV
    if x.shape[1] < n_fft:
        x = np.pad(x, ((0, 0), (0, n_fft - x.shape[1])))
    x = x.astype(np.float32)                                   # the STFT in float32 (speed)
    window = scipy.signal.get_window("hann", n_fft).astype(np.float32)   # periodic
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    bands = band_edges(sample_rate)
    keep = [np.flatnonzero((freqs >= lo) & (freqs < hi)) for _, lo, hi in bands]
    first = min(k[0] for k in keep) if bands else 0
    last = max(k[-1] for k in keep) + 1 if bands else 1
    frames = (x.shape[1] - n_fft) // hop + 1
    p = np.zeros((len(bands), frames))
    chunk = 2048
    for c in range(x.shape[0]):
        view = np.lib.stride_tricks.sliding_window_view(x[c], n_fft)[::hop]
        for start in range(0, frames, chunk):
            spec = scipy.fft.rfft(view[start:start + chunk] * window, axis=1)[:, first:last]
            power = spec.real * spec.real + spec.imag * spec.imag
            for b, k in enumerate(keep):   # each band's bins: a contiguous run
                p[b, start:start + chunk] += power[:, k[0] - first:k[-1] + 1 - first].sum(
                    axis=1, dtype=np.float64)
    levels = 10 * np.log10(np.maximum(p, 1e-30))
    return levels, p, hop / sample_rate, [b[0] for b in bands]


def _window_slopes(levels: np.ndarray, frames: int, hop_s: float):
    """Least-squares slope (dB/s) and R^2 of every window of ``frames`` frames: (starts,).
    Running sums: for the window at ``i``, ``S = sum y``, ``K = sum (j - i) y_j``, ``Q = sum y^2``;
    slope ``= hop (K - (m-1)/2 S) / stt``, ``ss_tot = Q - S^2 / m``."""
    m = frames
    n = levels.size - m + 1
    if n <= 0:
        return np.empty(0), np.empty(0)
    t = np.arange(m) * hop_s
    stt = ((t - t.mean()) ** 2).sum()
    j = np.arange(levels.size, dtype=np.float64)

    def window_sums(v):
        c = np.concatenate(([0.0], np.cumsum(v)))
        return c[m:] - c[:n]

    s = window_sums(levels)
    k = window_sums(j * levels) - j[:n] * s
    q = window_sums(levels * levels)
    slope = hop_s * (k - (m - 1) / 2 * s) / stt
    ss_tot = np.maximum(q - s * s / m, 0.0)
    ss_res = ss_tot - slope * slope * stt
    r2 = np.where(ss_tot > 1e-9, 1 - ss_res / np.maximum(ss_tot, 1e-300), 0.0)
    return slope, r2


def decay_rates(levels: np.ndarray, hop_s: float) -> dict:
    """The slopes (dB/s, negative) of the windows that count as free decays (module doc), by
    window length (s)."""
    top = levels.max()
    floor = np.percentile(levels, 5)
    ok = (levels >= top - RANGE_DB) & (levels >= floor + FLOOR_MARGIN_DB)
    found = {}
    for w_s in FIT_WINDOWS_S:
        frames = max(3, int(round(w_s / hop_s)))
        slope, r2 = _window_slopes(levels, frames, hop_s)
        if slope.size == 0:
            continue
        inside = np.lib.stride_tricks.sliding_window_view(ok, frames).all(axis=1)
        drop = -slope * (frames - 1) * hop_s
        found[w_s] = slope[inside & (r2 >= MIN_R2) & (drop >= MIN_DROP_DB)]
    return found


def rt60_from_rates(slopes: np.ndarray) -> float | None:
    """``-60 / median(fastest quarter of slopes)``; ``None`` with fewer than 8 slopes."""
    if slopes.size < MIN_WINDOWS:
        return None
    fastest = np.sort(slopes)[:max(1, int(math.ceil(FASTEST_SHARE * slopes.size)))]
    return float(-60.0 / np.median(fastest))


def blind_rt60(levels: np.ndarray, hop_s: float) -> tuple[float | None, float | None, int]:
    """``(RT60, window length that read it, its number of windows)`` of one band's levels: the
    window length whose estimate puts the drop across the window closest to 25 dB."""
    best = None
    for w_s, slopes in decay_rates(levels, hop_s).items():
        rt = rt60_from_rates(slopes)
        if rt is None:
            continue
        score = abs(math.log(60.0 * w_s / rt / TARGET_DROP_DB))
        if best is None or score < best[0]:
            best = (score, rt, w_s, int(slopes.size))
    return (None, None, 0) if best is None else best[1:]


def coherence(audio: np.ndarray, sample_rate: int) -> list[float | None]:
    """Inter-channel coherence per band (module doc); 1.0 for a mono file."""
    x = np.atleast_2d(np.asarray(audio, dtype=np.float64))
    bands = band_edges(sample_rate)
    if x.shape[0] == 1:
        return [1.0 if np.any(x) else None for _ in bands]
    n_fft = min(_pow2(0.046, sample_rate), max(16, 1 << int(math.log2(max(16, x.shape[1])))))
    if x.shape[1] < n_fft:
        x = np.pad(x, ((0, 0), (0, n_fft - x.shape[1])))
    hop = n_fft // 2
    window = scipy.signal.get_window("hann", n_fft)          # periodic
    f = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    views = [np.lib.stride_tricks.sliding_window_view(x[c], n_fft)[::hop] for c in range(2)]
    sxx = np.zeros(f.size)
    syy = np.zeros(f.size)
    sxy = np.zeros(f.size, dtype=np.complex128)
    for start in range(0, views[0].shape[0], 1024):        # Welch's averages, in chunks
        a = np.fft.rfft(views[0][start:start + 1024] * window, axis=1)
        b = np.fft.rfft(views[1][start:start + 1024] * window, axis=1)
        sxx += (a.real ** 2 + a.imag ** 2).sum(0)
        syy += (b.real ** 2 + b.imag ** 2).sum(0)
        sxy += (a * b.conj()).sum(0)
    out = []
    for _, lo, hi in bands:
        sel = (f >= lo) & (f < hi)
        den = np.sqrt(sxx[sel] * syy[sel]).sum()
        out.append(float(min(1.0, np.abs(sxy[sel]).sum() / den)) if den > 0 else None)
    return out


def early_late_db(power: np.ndarray, hop_s: float, rt60: float | None) -> float | None:
    """Lebart's late-energy proxy of one band's frame powers (module doc)."""
    if rt60 is None or not np.any(power > 0):
        return None
    lag = max(1, int(round(LATE_MS / 1000.0 / hop_s)))
    decay = math.exp(-2 * 3 * math.log(10) / rt60 * lag * hop_s)
    late = np.zeros_like(power)
    late[lag:] = np.minimum(power[lag:], decay * power[:-lag])
    total_late = late.sum()
    early = (power - late).sum()
    if total_late <= 0:
        return None
    return float(10 * math.log10(max(early, 1e-30) / total_late))


def ambience(audio: np.ndarray, sample_rate: int) -> dict:
    """All three measures of the module docstring for ``audio`` (channels, samples)."""
    levels, power, hop_s, names = band_levels(audio, sample_rate)
    rts, windows, counts, ratios = [], [], [], []
    for b in range(len(names)):
        rt, window, count = blind_rt60(levels[b], hop_s)
        rts.append(rt)
        windows.append(window)
        counts.append(count)
        ratios.append(early_late_db(power[b], hop_s, rt))
    return {
        "bands": names,
        "bands_hz": [[lo, hi] for _, lo, hi in band_edges(sample_rate)],
        "rt60_s": rts,
        "decay_window_s": windows,
        "decay_windows": counts,
        "coherence": coherence(audio, sample_rate),
        "early_late_db": ratios,
    }


def format_ambience(a: dict) -> list[str]:
    """Lines for ``automix analyze``'s text output."""
    def col(v, fmt):
        return f"{'-':>8}" if v is None else f"{v:>8{fmt}}"
    return [
        "ambience (blind, per band)      " + "".join(f"{n:>8}" for n in a["bands"]),
        "  RT60 s (decay rates)          " + "".join(col(v, ".2f") for v in a["rt60_s"]),
        "  early/late dB (Lebart proxy)  " + "".join(col(v, ".1f") for v in a["early_late_db"]),
        "  inter-channel coherence       " + "".join(col(v, ".2f") for v in a["coherence"]),
    ]
