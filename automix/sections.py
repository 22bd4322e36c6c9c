"""Song sections: where the arrangement changes, from the stems or from a finished mix.

Method (Foote's novelty on a self-similarity matrix, on features an engineer would read):

1. **Frames** every ``HOP_S`` = 0.1 s (the hop of the loudness meters in :mod:`automix.analysis`).
2. **Features** per frame, smoothed over ``SMOOTH_S`` (energies averaged before the log):

   * from stems, one *activity* per stem: its level in dB relative to its own loud level
     (95th percentile of its frames), mapped ``-30 dB -> 0 .. 0 dB -> 1`` and clipped (0 under
     -70 dBFS): which stems play, and how hard;
   * the *spectral shape* of the sum (or of the mix): power in 9 octave bands (40 Hz-20 kHz)
     in dB relative to the frame's total, clipped at -40 dB, over 20 dB;
   * the *level* of the sum (or of the mix): dB relative to its 95th percentile over 12 dB,
     clipped to [-2.5, 0] (a chorus 6 dB up moves it by 0.5, a novelty of 0.22).

   Stem activity and level weigh 1, spectral shape 0.25 with stems and 0.5 from a mix alone (weights on
   squared distances; chord changes within a section move the shape, so it weighs less).
3. **Self-similarity** ``S[i, j] = exp(-|f_i - f_j|^2)``, in (0, 1]: 1 for identical frames,
   ``exp(-1) = 0.37`` between frames that differ by one stem entering.
4. **Novelty**: ``S`` correlated along its diagonal with a checkerboard kernel of half-width
   ``KERNEL_S`` (3 s) under a Gaussian taper (sigma = half-width / 2), normalised so that an
   ideal boundary between two internally steady parts of cross-similarity ``s`` scores
   ``1 - s`` and a steady passage scores 0. The feature sequence is extended at both ends by its
   first and last frame.
5. **Boundaries**: local maxima of the novelty above ``THRESHOLD`` (0.12), at least
   ``MIN_SECTION_S`` (4 s) apart and from the ends (a weaker peak within that distance of a
   stronger one is dropped).
6. **Beats**: when the beat tracker finds a tempo (:func:`beat_times`: spectral-flux onsets of
   the mono sum decimated to about 11 kHz, tempo from their autocorrelation under a log-normal
   prior at 120 BPM, beats by Ellis's dynamic programming; at least 8 beats), each boundary
   moves to the nearest beat within 0.75 of a beat period. Bars are not used: there is no
   downbeat tracker, and a wrong bar phase would move a boundary by up to two beats.
7. **Labels**: each section gets the stems (or groups) that play in it (a stem plays when, in at
   least half of the section's frames, its level is within ``ACTIVE_DB`` = 20 dB of its loudest
   section's and above -70 dBFS), a
   letter per distinct arrangement in order of appearance (A, B, ...; from a mix alone, per
   loudness class), and its loudness: the energy mean of the 3 s short-term loudness (K-weighted,
   BS.1770) of the sum over the windows centred in the section, in LUFS, with a class word
   (``loud`` within 3 LU of the loudest section, ``medium`` within 8 LU, else ``soft``).

The result is plain data, ready for settings.json ``sections`` (:func:`to_settings`).
"""
from __future__ import annotations

import math
import string
from dataclasses import dataclass, field

import numba
import numpy as np
import scipy.fft

from . import analysis
from .errors import AutomixError

HOP_S = 0.1
SMOOTH_S = 0.5
SHAPE_FLOOR_DB = -40.0
SHAPE_WEIGHT = {"stems": 0.25, "mix": 0.5}
KERNEL_S = 3.0
THRESHOLD = 0.12
MIN_SECTION_S = 4.0
ACTIVE_DB = 20.0
ACTIVITY_RANGE_DB = 30.0
SILENT_DBFS = -70.0
OCTAVE_EDGES_HZ = (40, 80, 160, 320, 640, 1280, 2560, 5120, 10240, 20000)
BEAT_SR = 11025
BEAT_HOP = 256


@dataclass
class Section:
    start_s: float
    end_s: float
    label: str
    letter: str
    active: list = field(default_factory=list)
    loudness_lufs: float = analysis.FLOOR_DB

    def to_settings(self) -> dict:
        return {"start_s": round(self.start_s, 3), "end_s": round(self.end_s, 3),
                "label": self.label}


@dataclass
class SectionAnalysis:
    sections: list
    boundaries_s: np.ndarray            # the inner boundaries, seconds
    novelty: np.ndarray                 # per frame
    tempo_bpm: float | None
    beats_s: np.ndarray
    short_term_lufs: np.ndarray         # of the sum, 3 s windows every 100 ms
    frames: int = 0


def to_settings(sections) -> list[dict]:
    """``[{"start_s", "end_s", "label"}, ...]`` for settings.json."""
    return [s.to_settings() for s in sections]


# ---------------------------------------------------------------------------------------------
# features
# ---------------------------------------------------------------------------------------------

def _channels(audio) -> np.ndarray:
    a = np.asarray(audio)
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2 or a.shape[1] == 0:
        raise AutomixError(f"expected audio shaped (channels, samples), got {a.shape}")
    return a


def _frame_power(audio: np.ndarray, hop: int, frames: int) -> np.ndarray:
    """Mean power (all channels) of ``audio`` in consecutive hops."""
    x = audio[:, :hop * frames].astype(np.float32, copy=False)
    p = np.einsum("cfh,cfh->f", x.reshape(x.shape[0], frames, hop),
                  x.reshape(x.shape[0], frames, hop), dtype=np.float64)
    return p / (hop * x.shape[0])


def _smooth(p: np.ndarray, frames: int) -> np.ndarray:
    """Moving average over ``frames`` along the last axis, centred, edge-replicated."""
    if frames <= 1:
        return p
    pad = frames // 2
    q = np.pad(p, [(0, 0)] * (p.ndim - 1) + [(pad, frames - 1 - pad)], mode="edge")
    c = np.cumsum(q, axis=-1)
    c = np.concatenate([np.zeros(c.shape[:-1] + (1,)), c], axis=-1)
    return (c[..., frames:] - c[..., :-frames]) / frames


def _db(p):
    return 10.0 * np.log10(np.maximum(p, 1e-20))


def activity(levels_db: np.ndarray) -> np.ndarray:
    """(stems, frames) smoothed levels in dBFS -> activity in [0, 1] (module doc, step 2)."""
    ref = np.percentile(levels_db, 95, axis=-1, keepdims=True)
    a = np.clip((levels_db - (ref - ACTIVITY_RANGE_DB)) / ACTIVITY_RANGE_DB, 0.0, 1.0)
    return np.where(levels_db < SILENT_DBFS, 0.0, a)


def _level_feature(power: np.ndarray, smooth: int) -> np.ndarray:
    """(1, frames): the level in dB relative to its 95th percentile, over 12 dB, in [-2.5, 0]."""
    level = _db(_smooth(power[None], smooth))
    return np.clip((level - np.percentile(level, 95)) / 12.0, -2.5, 0.0)


def _band_shape(mono: np.ndarray, sample_rate: int, hop: int, frames: int) -> np.ndarray:
    """(9, frames): octave-band powers of each hop (Hann window over the hop)."""
    n_fft = scipy.fft.next_fast_len(hop, real=True)
    x = mono[:hop * frames].astype(np.float32, copy=False).reshape(frames, hop)
    spec = scipy.fft.rfft(x * np.hanning(hop).astype(np.float32), n=n_fft, axis=1)
    spec = spec.real ** 2 + spec.imag ** 2
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    idx = np.searchsorted(freqs, np.asarray(OCTAVE_EDGES_HZ, dtype=np.float64))
    csum = np.concatenate([np.zeros((frames, 1)), np.cumsum(spec, axis=1, dtype=np.float64)], 1)
    return (csum[:, idx[1:]] - csum[:, idx[:-1]]).T


def _shape_features(bands: np.ndarray, smooth: int) -> np.ndarray:
    """Each band's power relative to the frame's total, in dB, clipped at ``SHAPE_FLOOR_DB``,
    over 20 dB (bands smoothed over ``smooth`` frames first)."""
    b = _smooth(bands, smooth)
    rel = _db(b) - _db(b.sum(axis=0, keepdims=True))
    return np.clip(rel, SHAPE_FLOOR_DB, 0.0) / 20.0


# ---------------------------------------------------------------------------------------------
# novelty and boundaries
# ---------------------------------------------------------------------------------------------

def checkerboard_kernel(half: int) -> np.ndarray:
    """(2 half, 2 half) Gaussian-tapered checkerboard, +1 on the diagonal quadrants, -1 off
    them, each sign's weights summing to 1 (module doc, step 4)."""
    u = np.arange(-half, half) + 0.5
    taper = np.exp(-0.5 * (u / (half / 2.0)) ** 2)
    w = np.outer(taper, taper)
    sign = np.sign(np.outer(u, u))
    k = w * sign
    k[k > 0] /= k[k > 0].sum()
    k[k < 0] /= -k[k < 0].sum()
    return k


def novelty_curve(features: np.ndarray, half: int) -> np.ndarray:
    """Foote novelty of ``features`` (dims, frames): at frame ``n`` the kernel covers frames
    ``n - half .. n + half - 1``, i.e. a boundary between frames ``n - 1`` and ``n``."""
    f = np.pad(features, [(0, 0), (half, half)], mode="edge")             # (dims, frames + 2h)
    n = features.shape[1]
    k = checkerboard_kernel(half)
    win = np.lib.stride_tricks.sliding_window_view(f, 2 * half, axis=1)   # (dims, n + 1, 2h)
    out = np.empty(n)
    # only the blocks along the diagonal of S: O(frames x (2 half)^2), never frames^2 memory
    for a in range(0, n, 256):
        w = np.transpose(win[:, a:min(n, a + 256)], (1, 2, 0))           # (chunk, 2h, dims)
        sq = (w * w).sum(axis=2)
        d2 = np.maximum(sq[:, :, None] + sq[:, None, :] - 2.0 * w @ w.transpose(0, 2, 1), 0.0)
        out[a:a + len(w)] = (np.exp(-d2) * k).sum(axis=(1, 2))
    return np.maximum(out, 0.0)


def pick_peaks(novelty: np.ndarray, threshold: float, min_gap: int) -> np.ndarray:
    """Frames of novelty peaks above ``threshold``, strongest first kept, at least ``min_gap``
    apart and from both ends; returned in time order."""
    n = len(novelty)
    cand = [i for i in range(1, n - 1) if novelty[i] >= threshold
            and novelty[i] >= novelty[i - 1] and novelty[i] > novelty[i + 1]
            and min_gap <= i <= n - min_gap]
    kept: list[int] = []
    for i in sorted(cand, key=lambda j: -novelty[j]):
        if all(abs(i - j) >= min_gap for j in kept):
            kept.append(i)
    return np.asarray(sorted(kept), dtype=np.int64)


def onset_envelope(mono: np.ndarray, sample_rate: int) -> tuple[np.ndarray, float]:
    """Spectral flux of ``mono``: a copy decimated to about 11 kHz by block averaging (onsets
    survive the aliasing), 1024-point Hann frames every ``BEAT_HOP`` (256) samples, the
    half-wave rectified rise of the log magnitude summed over frequency, mean removed and
    floored at 0.  Returns the envelope and its frame rate (Hz)."""
    q = max(1, int(round(sample_rate / BEAT_SR)))
    n = len(mono) // q
    y = mono[:n * q].reshape(n, q).mean(axis=1, dtype=np.float32) if q > 1 else \
        np.asarray(mono, dtype=np.float32)
    sr = sample_rate / q
    frames = (len(y) - 1024) // BEAT_HOP + 1
    if frames < 8:
        return np.zeros(0), sr / BEAT_HOP
    idx = np.arange(frames)[:, None] * BEAT_HOP + np.arange(1024)
    spec = np.abs(scipy.fft.rfft(y[idx] * np.hanning(1024).astype(np.float32), axis=1))
    logmag = np.log1p(1000.0 * spec / max(float(spec.max()), 1e-12))
    flux = np.maximum(np.diff(logmag, axis=0), 0.0).sum(axis=1)
    flux = np.concatenate([[0.0], flux])
    return np.maximum(flux - flux.mean(), 0.0), sr / BEAT_HOP


def estimate_tempo(env: np.ndarray, rate: float, prior_bpm: float = 120.0) -> float | None:
    """Tempo (BPM) from the autocorrelation of the onset envelope, weighted by a log-normal
    prior centred on ``prior_bpm`` (one octave wide), between 50 and 220 BPM (Ellis 2007)."""
    n = len(env)
    if n < 4 * rate or not env.any():
        return None
    # widen the onsets (a period rarely lands on a whole number of frames: a one-frame click
    # would correlate better at twice the period, where the rounding error is spread)
    env = np.convolve(env, [1 / 16, 4 / 16, 6 / 16, 4 / 16, 1 / 16], mode="same")
    spec = np.fft.rfft(env - env.mean(), 2 * n)
    ac = np.fft.irfft(np.abs(spec) ** 2)[:n]
    lags = np.arange(int(rate * 60 / 220), min(n - 1, int(rate * 60 / 50)) + 1)
    bpm = 60.0 * rate / lags
    weighted = ac[lags] * np.exp(-0.5 * np.log2(bpm / prior_bpm) ** 2)
    if not weighted.max() > 0:
        return None
    k = int(np.argmax(weighted))
    if 0 < k < len(lags) - 1:      # parabolic interpolation of the peak lag
        a, b, c = weighted[k - 1], weighted[k], weighted[k + 1]
        d = 0.5 * (a - c) / (a - 2 * b + c) if a - 2 * b + c < 0 else 0.0
        return float(60.0 * rate / (lags[k] + d))
    return float(bpm[k])


def track_beats(env: np.ndarray, rate: float, tempo: float, tightness: float = 100.0):
    """Beat frames by dynamic programming (Ellis 2007): the best chain of onsets whose spacing
    stays near the tempo's period, scored ``onset + max(score(prev) - tightness *
    log(gap / period)^2)`` over gaps of half to twice the period."""
    period = 60.0 * rate / tempo
    n = len(env)
    norm = env / (env.std() + 1e-12)
    lo, hi = max(1, int(round(period / 2))), int(round(2 * period))
    gaps = np.arange(lo, hi + 1)
    penalty = -tightness * np.log(gaps / period) ** 2
    score, back = _beat_dp(norm, gaps, penalty)
    # end on the best-scoring frame among the last period's local maxima
    tail = np.arange(max(0, n - hi), n)
    t = int(tail[np.argmax(score[tail])])
    beats = []
    while t >= 0:
        beats.append(t)
        t = int(back[t])
    beats = np.asarray(beats[::-1])
    strong = norm[beats] > 0.1 * norm[beats].mean() if len(beats) else beats
    return beats[np.flatnonzero(strong)[0]:] if len(beats) and strong.any() else beats


@numba.njit(cache=True, nogil=True)
def _beat_dp(norm, gaps, penalty):
    """The forward pass of :func:`track_beats`: best chain score ending at each frame and the
    frame before it (-1: a chain starts here)."""
    n = norm.shape[0]
    score = norm.copy()
    back = np.full(n, -1)
    for t in range(gaps[0], n):
        best, arg = -np.inf, -1
        for j in range(gaps.shape[0]):
            p = t - gaps[j]
            if p < 0:
                break
            v = score[p] + penalty[j]
            if v > best:
                best, arg = v, p
        if best > 0:
            score[t] = norm[t] + best
            back[t] = arg
    return score, back


def beat_times(mono: np.ndarray, sample_rate: int) -> tuple[float | None, np.ndarray]:
    """Tempo and beat times of ``mono``; ``(None, [])`` when there is no steady beat.

    Onset envelope (:func:`onset_envelope`), tempo from at most its middle 60 s
    (:func:`estimate_tempo`), beats over the whole song (:func:`track_beats`).  Where the
    tracked beats leave a gap (a break without drums), the grid is filled with evenly spaced
    beats, so that a boundary inside the break still lands on the beat.  (automix's own
    tracker: librosa's costs about 3 s of CPU per process to import, twice this whole step.)"""
    env, rate = onset_envelope(mono, sample_rate)
    if len(env) == 0:
        return None, np.zeros(0)
    span = int(60 * rate)
    mid = max(0, (len(env) - span) // 2)
    tempo = estimate_tempo(env[mid:mid + span], rate)
    if tempo is None:
        return None, np.zeros(0)
    beats = track_beats(env, rate, tempo)
    if len(beats) < 8:
        return None, np.zeros(0)
    # frame k's window is centred at k * hop + 512 samples (of the decimated copy)
    times = (beats * BEAT_HOP + 512) / rate / BEAT_HOP
    return tempo, fill_gaps(times, 60.0 / tempo)


def fill_gaps(beats_s: np.ndarray, period: float) -> np.ndarray:
    """Beats with every gap longer than 1.5 periods filled by evenly spaced beats."""
    out = [beats_s[:1]]
    for a, b in zip(beats_s[:-1], beats_s[1:]):
        k = int(round((b - a) / period))
        if b - a > 1.5 * period and k > 1:
            out.append(a + (b - a) * np.arange(1, k) / k)
        out.append(np.array([b]))
    return np.concatenate(out)


def snap(times_s: np.ndarray, beats_s: np.ndarray, tempo: float | None) -> np.ndarray:
    """Each time moved to the nearest beat when that is within 0.75 of a beat period (the
    tracker's beats wander by a tenth of a period or so around the true grid)."""
    if tempo is None or len(beats_s) == 0 or len(times_s) == 0:
        return np.asarray(times_s, dtype=np.float64)
    period = 60.0 / tempo
    idx = np.clip(np.searchsorted(beats_s, times_s), 1, len(beats_s) - 1)
    near = np.where(np.abs(beats_s[idx - 1] - times_s) <= np.abs(beats_s[idx] - times_s),
                    beats_s[idx - 1], beats_s[idx])
    out = np.where(np.abs(near - times_s) <= 0.75 * period, near, times_s)
    return np.unique(np.round(out, 6))


# ---------------------------------------------------------------------------------------------
# entry points
# ---------------------------------------------------------------------------------------------

@dataclass
class StemFeatures:
    """Per-stem power every ``HOP_S`` and the mono sum: what the section finder reads of the
    stems (also what :func:`automix.lead.find_lead` can reuse)."""
    names: list
    power: np.ndarray           # (stems, frames) mean power per hop
    mono: np.ndarray            # (samples,) float32
    hop: int
    frames: int


def stem_features(stems: dict, sample_rate: int, mono: np.ndarray | None = None) -> StemFeatures:
    """:class:`StemFeatures` of ``stems`` ``{name: (channels, samples)}``; ``mono``: the mono
    sum when the caller has it."""
    if not stems:
        raise AutomixError("sections need at least one stem")
    arrays = {k: _channels(v) for k, v in stems.items()}
    n = max(a.shape[1] for a in arrays.values())
    hop = int(round(HOP_S * sample_rate))
    frames = n // hop
    if frames < 4:
        raise AutomixError("the song is too short to find sections (under 0.4 s)")
    names = list(arrays)
    power = np.zeros((len(names), frames))
    total = mono is None
    if total:
        mono = np.zeros(n, dtype=np.float32)
    for i, name in enumerate(names):
        a = arrays[name]
        usable = min(frames, a.shape[1] // hop)
        power[i, :usable] = _frame_power(a, hop, usable)
        if total:
            mono[:a.shape[1]] += a.mean(axis=0, dtype=np.float32)
    return StemFeatures(names, power, mono, hop, frames)


def find_sections(stems: dict, sample_rate: int, groups: dict | None = None,
                  use_beats: bool = True, weighted_sum: np.ndarray | None = None,
                  features: StemFeatures | None = None) -> SectionAnalysis:
    """Sections of a song from its stems ``{name: (channels, samples)}`` (module doc).

    ``groups`` (``{group: [stem names]}``) labels sections by group instead of by stem;
    ``weighted_sum``: the K-weighted stereo sum of the stems when the caller has it (for the
    loudness labels; computed here otherwise); ``features``: :func:`stem_features` of the
    stems, when the caller has them."""
    f = features or stem_features(stems, sample_rate)
    smooth = max(1, int(round(SMOOTH_S / HOP_S)))
    act = activity(_db(_smooth(f.power, smooth)))
    shape = _shape_features(_band_shape(f.mono, sample_rate, f.hop, f.frames), smooth)
    feats = np.concatenate([act, _level_feature(f.power.sum(axis=0), smooth),
                            shape * math.sqrt(SHAPE_WEIGHT["stems"])])
    if weighted_sum is None:
        arrays = {k: _channels(v) for k, v in stems.items()}
        weighted_sum = _stem_weighted_sum(arrays, max(a.shape[1] for a in arrays.values()),
                                          sample_rate)
    return _finish(feats, f.mono, sample_rate, f.hop, f.frames, use_beats, weighted_sum,
                   f.names, f.power, groups)


def find_sections_in_mix(mix: np.ndarray, sample_rate: int,
                         use_beats: bool = True) -> SectionAnalysis:
    """Sections of a finished mix (for ``automix master`` and the reference): spectral shape
    and level novelty; labelled by loudness class (module doc)."""
    mix = _channels(mix)
    n = mix.shape[1]
    hop = int(round(HOP_S * sample_rate))
    frames = n // hop
    if frames < 4:
        raise AutomixError("the song is too short to find sections (under 0.4 s)")
    smooth = max(1, int(round(SMOOTH_S / HOP_S)))
    mono = mix.mean(axis=0, dtype=np.float32)
    lev = _level_feature(_frame_power(mix, hop, frames), smooth)
    shape = _shape_features(_band_shape(mono, sample_rate, hop, frames),
                            smooth)
    features = np.concatenate([lev, shape * math.sqrt(SHAPE_WEIGHT["mix"])])
    weighted = analysis.k_weight(mix, sample_rate)
    return _finish(features, mono, sample_rate, hop, frames, use_beats, weighted, None, None, None)


def _stem_weighted_sum(arrays: dict, n: int, sample_rate: int) -> np.ndarray:
    """K-weighted stereo sum of the stems (the K-filter is linear: filter the sum once)."""
    total = np.zeros((2, n))
    for a in arrays.values():
        total[:, :a.shape[1]] += a if a.shape[0] == 2 else np.repeat(a, 2, axis=0) / math.sqrt(2)
    return analysis.k_weight(total, sample_rate)


def _finish(features, mono, sample_rate, hop, frames, use_beats, weighted, names, power,
            groups) -> SectionAnalysis:
    half = max(2, int(round(KERNEL_S / HOP_S)))
    nov = novelty_curve(features, half)
    peaks = pick_peaks(nov, THRESHOLD, int(round(MIN_SECTION_S / HOP_S)))
    bounds = peaks * HOP_S
    tempo, beats = (beat_times(mono, sample_rate) if use_beats and len(bounds)
                    else (None, np.zeros(0)))
    bounds = snap(bounds, beats, tempo)
    duration = weighted.shape[1] / sample_rate
    bounds = bounds[(bounds > 0.5) & (bounds < duration - 0.5)]
    st = analysis.short_term_loudness_of_weighted(weighted, sample_rate)
    edges = np.concatenate([[0.0], bounds, [duration]])
    sections = _label(edges, st, names, power, groups, hop / sample_rate)
    return SectionAnalysis(sections, bounds, nov, tempo, beats, st, frames)


def section_loudness(short_term: np.ndarray, start_s: float, end_s: float) -> float:
    """Energy mean of the 3 s short-term loudness values whose windows are centred in
    ``[start_s, end_s)`` (the nearest window when none is), in LUFS; FLOOR_DB when silent."""
    centres = np.arange(len(short_term)) * analysis.BLOCK_HOP_S + analysis.SHORT_TERM_S / 2
    inside = (centres >= start_s) & (centres < end_s)
    if not inside.any():
        inside = np.zeros(len(short_term), bool)
        inside[int(np.argmin(np.abs(centres - (start_s + end_s) / 2)))] = True
    v = short_term[inside]
    v = v[v > analysis.ABS_GATE_LUFS]
    if len(v) == 0:
        return analysis.FLOOR_DB
    return float(10.0 * np.log10(np.mean(10.0 ** (v / 10.0))))


def playing(power: np.ndarray, edges_s, frame_s: float = HOP_S) -> np.ndarray:
    """(stems, sections) bool: a stem plays in a section when it sounds (its smoothed level
    within ``ACTIVE_DB`` of its loudest section's mean level, above ``SILENT_DBFS``) in at
    least half of the section's frames.  ``power``: (stems, frames) mean power per frame."""
    power = np.atleast_2d(power)
    edges = np.asarray(edges_s, dtype=np.float64)
    level = _db(_smooth(power, int(round(SMOOTH_S / HOP_S))))
    lev = np.zeros((power.shape[0], len(edges) - 1))
    spans = []
    for k, (a, b) in enumerate(zip(edges[:-1], edges[1:])):
        i0 = min(int(a / frame_s), power.shape[1] - 1)
        i1 = max(i0 + 1, min(int(b / frame_s), power.shape[1]))
        spans.append((i0, i1))
        lev[:, k] = _db(power[:, i0:i1].mean(axis=1))
    floor = np.maximum(lev.max(axis=1, keepdims=True) - ACTIVE_DB, SILENT_DBFS)
    sounding = level > floor
    return np.stack([sounding[:, i0:i1].mean(axis=1) >= 0.5 for i0, i1 in spans], axis=1)


def _label(edges, st, names, power, groups, frame_s) -> list:
    loud = [section_loudness(st, a, b) for a, b in zip(edges[:-1], edges[1:])]
    top = max(loud)
    active_sets = []
    if names is not None:
        # a stem plays in a section when it sounds (within ACTIVE_DB of its loudest section's
        # level, above SILENT_DBFS) in at least half of the section's frames
        on = playing(power, edges, frame_s)
        for k in range(len(edges) - 1):
            now = [nm for i, nm in enumerate(names) if on[i, k]]
            if groups:
                now = [g for g, members in groups.items() if set(members) & set(now)]
            active_sets.append(now)
    letters: dict = {}
    out = []
    for k, (a, b) in enumerate(zip(edges[:-1], edges[1:])):
        word = ("silent" if loud[k] <= analysis.FLOOR_DB else "loud" if loud[k] >= top - 3.0
                else "medium" if loud[k] >= top - 8.0 else "soft")
        key = tuple(active_sets[k]) if names is not None else word
        letter = letters.setdefault(key, _letter(len(letters)))
        what = (", ".join(active_sets[k]) or "nothing") if names is not None else None
        label = f"{letter}: {what} ({word})" if what is not None else f"{letter} ({word})"
        out.append(Section(float(a), float(b), label, letter,
                           active_sets[k] if names is not None else [], loud[k]))
    return out


def _letter(i: int) -> str:
    abc = string.ascii_uppercase
    return abc[i] if i < 26 else abc[i // 26 - 1] + abc[i % 26]
