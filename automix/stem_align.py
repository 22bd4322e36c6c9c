"""Stems that carry one source twice (two microphones on a kick drum, a bass DI and its amp
mic): their polarity and time offset, measured, and the fix the mix job writes to settings.json.

Two microphones at different distances from a source record it with a delay (0.1 ms per
3.4 cm) and, depending on which side of the source each faces, possibly opposite polarity.
Summed as they are, the pair cancels partly: fully at low frequencies for opposite polarity
(the level the pair loses is analytic: ``(1 - g)^2`` instead of ``(1 + g)^2`` for two copies
at gains 1 and ``g``), as a comb filter for a delay.  The fix is the engineer's: flip one of
them, delay the earlier one so both line up.

Measurement, per pair of stems, on mono sums of the same excerpt (10 s from the middle of the
shortest stem: :data:`EXCERPT_S`), all from one FFT of each stem:

* the **lag**: the peak of the phase-transform generalised cross-correlation (GCC-PHAT, Knapp &
  Carter 1976) within +-:data:`MAX_LAG_MS`: the cross spectrum's magnitude is divided out, so
  every frequency votes for the delay with equal weight and the peak is one sample wide (the
  plain cross-correlation of low-frequency material is too broad to give the exact sample);
* the **evidence and the sign**: the normalised cross-correlation at that lag of the two stems
  band-limited to :data:`LOW_BAND_HZ` (below ~500 Hz two microphones on one source agree;
  above, their positions colour them differently), ``r_low`` in [-1, 1];
* ``r``: the same over the full band (what :mod:`automix.qc` reports).

A pair is **fixed** only when ``|r_low| >= FIX_CORRELATION`` (0.8): one source beyond doubt.
Unrelated stems, even ones playing in rhythm together in the same register, stay far under
it (on the benchmark's real stems, LMMS and Frets on Fire multitracks: |r_low| <= 0.21).  Pairs are taken strongest first; a stem
already tied to another keeps that tie (a third microphone on the same source is aligned to
the first two through its strongest partner).  Within each connected set of stems the signs
of the pairs' correlations chain into each stem's polarity relative to the others; the fewest
stems of the set are flipped (of two, the quieter), and every stem is delayed so that all line
up with the latest one (delays only: causal, whole samples, so ``automix render`` reproduces
them bit for bit).

What is written: ``tracks[i].polarity`` (-1) and ``tracks[i].delay_samples`` (docs/settings.md),
applied first in the track's strip by every executor of the console graph.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EXCERPT_S = 10.0          # the stems are compared on 10 s from the middle of the shortest
MAX_LAG_MS = 10.0         # two microphones on one source sit within ~3.4 m of each other
LOW_BAND_HZ = (30.0, 500.0)   # where two microphones on one source agree
REPORT_CORRELATION = 0.5  # |r| or |r_low| above this: reported as one source on two tracks
FIX_CORRELATION = 0.8     # |r_low| at the lag above this: fixed (flipped and/or aligned)
OFFSET_MS = 0.1           # a lag at least this long is reported as a time offset
PHAT_BAND_HZ = (30.0, 16000.0)  # the bins that vote for the lag
SCREEN_HZ = 2000.0         # the screen's spectrum cut (its correlation sampled at 2x this)
SCREEN_CORRELATION = 0.4  # pairs under this low-band correlation at every lag are not measured


@dataclass
class Pair:
    """One pair of stems ``i < j``: ``lag`` samples (> 0: ``j`` is later than ``i``), the
    normalised cross-correlations at that lag, full band (``r``) and low band (``r_low``)."""
    i: int
    j: int
    lag: int
    r: float
    r_low: float

    @property
    def correlated(self) -> bool:
        return max(abs(self.r), abs(self.r_low)) >= REPORT_CORRELATION

    @property
    def fixable(self) -> bool:
        return abs(self.r_low) >= FIX_CORRELATION


def excerpt_start(lengths, sample_rate: int) -> int:
    """The first sample of the excerpt every stem covers (the middle of the shortest)."""
    shortest = min(lengths, default=0)
    return max(0, (shortest - int(EXCERPT_S * sample_rate)) // 2)


def mono_excerpt(audio: np.ndarray, start: int, sample_rate: int) -> np.ndarray:
    """The mono sum of ``audio`` (channels, n) from ``start`` for EXCERPT_S, mean removed."""
    x = np.asarray(audio[:, start:start + int(EXCERPT_S * sample_rate)],
                   dtype=np.float64).mean(axis=0)
    return x - x.mean() if len(x) else x


def measure(excerpts: list[np.ndarray], sample_rate: int) -> list[Pair]:
    """The lag and correlations (:class:`Pair`) of every pair that may carry one source (its
    low-band correlation reaches SCREEN_CORRELATION at some lag within +-MAX_LAG_MS), from one
    FFT per excerpt; the other pairs are left out."""
    import scipy.fft

    n = max((len(x) for x in excerpts), default=0)
    if n == 0 or len(excerpts) < 2:
        return []
    size = scipy.fft.next_fast_len(2 * n, real=True)  # no circular wrap within +-n
    freqs = np.fft.rfftfreq(size, 1 / sample_rate)
    low = (freqs >= LOW_BAND_HZ[0]) & (freqs <= LOW_BAND_HZ[1])
    phat = (freqs >= PHAT_BAND_HZ[0]) & (freqs <= PHAT_BAND_HZ[1])
    spectra = [scipy.fft.rfft(x, size) for x in excerpts]
    full = [np.pad(x, (0, n - len(x))) for x in excerpts]
    energy = [float(np.dot(x, x)) for x in full]
    lows: dict = {}  # band-limited excerpts, made for the pairs that pass the screen

    def band(k):
        if k not in lows:
            lows[k] = scipy.fft.irfft(spectra[k] * low, size)[:n]
        return lows[k]
    lag_max = min(int(MAX_LAG_MS * 1e-3 * sample_rate), n - 1)
    lags = np.arange(-lag_max, lag_max + 1)

    def corr(a, b, lag):  # normalised correlation of a[t] and b[t - lag] (zeros outside)
        x, y = (a[lag:], b[:n - lag]) if lag >= 0 else (a[:n + lag], b[-lag:])
        den = np.sqrt(np.dot(a, a) * np.dot(b, b))
        return float(np.dot(x, y) / den) if den > 1e-12 else 0.0

    # low-band energies by Parseval (the one-sided spectrum counts interior bins twice)
    energy_low = [float(2 * np.sum(np.abs(s[low]) ** 2)) / size for s in spectra]
    # the screen: the low-band cross-correlation sampled at 4 kHz (its spectrum cut at 2 kHz,
    # band-limited interpolation: a peak is read at >= cos(22.5 deg) = 0.92 of its height), so
    # only pairs that may be one source pay for the full-rate GCC-PHAT
    top = int(np.searchsorted(freqs, SCREEN_HZ)) + 1
    coarse = 2 * (top - 1)
    reach = int(np.ceil(lag_max * coarse / size)) + 1
    pairs = []
    for i in range(len(spectra)):
        for j in range(i + 1, len(spectra)):
            if min(energy_low[i], energy_low[j], energy[i], energy[j]) <= 1e-12:
                continue
            xc = scipy.fft.irfft(spectra[i][:top] * np.conj(spectra[j][:top]) * low[:top],
                                 coarse) * (coarse / size)
            screen = np.concatenate((xc[coarse - reach:], xc[:reach + 1]))
            if np.abs(screen).max() / np.sqrt(energy_low[i] * energy_low[j]) < SCREEN_CORRELATION:
                continue  # not one source: no lag needed, nothing to report
            cross = spectra[i] * np.conj(spectra[j])
            mag = np.abs(cross)
            g = np.where(phat & (mag > 1e-20), cross / np.maximum(mag, 1e-30), 0.0)
            gcc = scipy.fft.irfft(g, size)
            window = np.concatenate((gcc[size - lag_max:], gcc[:lag_max + 1]))
            lag_ij = int(lags[int(np.argmax(np.abs(window)))])  # x_i later than x_j by this
            pairs.append(Pair(i, j, -lag_ij, corr(full[i], full[j], lag_ij),
                              corr(band(i), band(j), lag_ij)))
    return pairs


@dataclass
class Fix:
    """A stem's fix: ``polarity`` (+1 or -1) and ``delay_samples`` (>= 0)."""
    polarity: int = 1
    delay_samples: int = 0

    @property
    def active(self) -> bool:
        return self.polarity != 1 or self.delay_samples != 0


def plan(pairs: list[Pair], loudness=None, count: int | None = None) -> dict[int, Fix]:
    """Each stem's fix (only stems with something to do) from the measured pairs: the fixable
    pairs strongest first, each tying a stem that is not yet tied to its partner's set
    (:mod:`module docs <automix.stem_align>`).  ``loudness`` (LUFS per stem) picks which of a
    new pair keeps its polarity (the louder)."""
    offset: dict[int, int] = {}     # samples the stem's copy of the source is late
    sign: dict[int, int] = {}
    root: dict[int, int] = {}
    for p in sorted((p for p in pairs if p.fixable), key=lambda p: -abs(p.r_low)):
        s = 1 if p.r_low > 0 else -1
        a, b, lag = p.i, p.j, p.lag   # b is later than a by lag
        if a in root and b in root:
            continue  # both tied already (to each other or to separate sets): left as is
        if a not in root and b not in root:
            keep_b = loudness is not None and loudness[b] > loudness[a]
            first = b if keep_b else a
            offset[first], sign[first], root[first] = 0, 1, first
        if a in root:
            offset[b], sign[b], root[b] = offset[a] + lag, sign[a] * s, root[a]
        else:
            offset[a], sign[a], root[a] = offset[b] - lag, sign[b] * s, root[b]
    fixes = {}
    for k in root:
        members = [m for m in root if root[m] == root[k]]
        latest = max(offset[m] for m in members)
        # flip the fewest stems; on a tie the loudest keeps its polarity
        flips = sum(sign[m] < 0 for m in members)
        loudest = max(members, key=lambda m: loudness[m] if loudness is not None else -m)
        keep = 1 if 2 * flips < len(members) or (2 * flips == len(members)
                                                  and sign[loudest] > 0) else -1
        fix = Fix(sign[k] * keep, latest - offset[k])
        if fix.active:
            fixes[k] = fix
    return fixes


def describe(pair: Pair, names, sample_rate: int) -> list[str]:
    """What is wrong with a correlated pair (empty: in phase and in time)."""
    problems = []
    r = pair.r_low if abs(pair.r_low) >= abs(pair.r) else pair.r
    if r < 0:
        problems.append("polarity inverted between them")
    lag_ms = pair.lag / sample_rate * 1e3
    if abs(lag_ms) >= OFFSET_MS:
        later = names[pair.j] if pair.lag > 0 else names[pair.i]
        problems.append(f"{later} is {abs(lag_ms):.2f} ms late")
    return problems


def fix_note(name: str, fix: Fix, sample_rate: int) -> str:
    parts = []
    if fix.polarity < 0:
        parts.append("polarity flipped")
    if fix.delay_samples:
        parts.append(f"delayed {fix.delay_samples} samples "
                     f"({fix.delay_samples / sample_rate * 1e3:.2f} ms)")
    return f"{name}: {' and '.join(parts)}"


def apply(audio: np.ndarray, fix: Fix) -> np.ndarray:
    """``audio`` (channels, n) with ``fix`` applied, same length (the render's arithmetic:
    exact negation, whole-sample delay with zeros before); for measurements."""
    out = np.zeros_like(audio)
    d = fix.delay_samples
    out[:, d:] = audio[:, :audio.shape[1] - d] if d < audio.shape[1] else 0
    return out * fix.polarity if fix.polarity < 0 else out
