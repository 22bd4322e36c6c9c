"""De-esser: a dynamic EQ cut on the sibilance band (4-10 kHz by default), in three forms.

The math
--------
Band signal (the Regalia-Mitra decomposition of a peaking filter)::

    b = B(x),   B(z) = (1 - A(z)) / 2,

where ``A`` is the second-order all-pass centred on ``f0`` with quality ``Q``.  ``B`` is the RBJ
band-pass with 0 dB peak gain, coefficients (``w0 = 2 pi f0 / fs``, ``alpha = sin w0 / 2Q``)::

    b = (alpha, 0, -alpha) / (1 + alpha),   a = (1, -2 cos w0 / (1 + alpha), (1 - alpha) / (1 + alpha))

Defaults ``f0 = sqrt(4000 x 10000) = 6325 Hz``, ``Q = f0 / (10000 - 4000) = 1.054``: ``|B|`` is
1 at ``f0`` and -3 dB at 4 and 10 kHz.

Detector and gain, as the compressor (:mod:`automix.dsp.dynamics`), on the band signal alone:
``level = 20 log10 max_c |b|`` (floored at -120 dB), the soft-knee gain computer
``G(level; threshold, ratio, knee) <= 0`` dB, attack/release ballistics on that gain (time
constant ``c = 1 - exp(-1 / (tau fs))``, state: the smoothed gain in dB, starting at 0), then
``g = 10 ** (gain_db / 20)``.

Output::

    y = x + (g - 1) b

With ``A(e^jw) = e^(j theta)``, ``1 + (g - 1) B = e^(j theta/2) (cos(theta/2) + j g sin(theta/2))``
for a constant ``g``, so the power response is ``cos^2(theta/2) + g^2 sin^2(theta/2)`` =
``1 - (1 - g^2) |B|^2``: between ``g^2`` (at ``f0``) and 1 (far from it), never a boost.  When
the band is under the threshold, ``g = 1`` exactly and ``y = x`` exactly.  Out of band the cut
fades as ``|B|^2``: at 2 kHz ``|B|^2 = 0.10`` (at most -0.46 dB however deep the cut), at 1 kHz
0.023 (-0.1 dB).

Forms
-----
* :func:`deesser` — batched torch ``(rows, C, T)`` with parameters ``(rows,)``, differentiable
  (band filter by frequency sampling, exactly as :func:`automix.dsp.eq.eq_fsm`; ballistics with
  exact gradients); returns the output and the carried gain state.
* :class:`DeesserState` — the render form: float64 blocks, the band filter's state and the
  smoothed gain carried from block to block (the EQ's sos kernel and the compressor's gain
  kernel), so any block size gives the same samples (bit-exact re-render).
* :func:`spectral_power_gain` — the spectral model's stand-in: the long-term power response
  ``sum_j w_j (1 - (1 - g_j^2) |B(f)|^2)`` over 10 ms frames ``j`` of the band signal, ``g_j``
  the static curve at frame ``j``'s detector level (:func:`band_frames`), ``w_j`` frame ``j``'s
  share of the band energy.  Ballistics are ignored (attack and release short against the frames) and the
  cross term is exact for a gain constant within a frame.
"""
from __future__ import annotations

import math

import numpy as np
import scipy.fft
import torch

from .ballistics import ballistics, time_constant_to_coef
from .dynamics import (CompressorParams, amp_to_db, compressor_gain, db_to_amp, gain_computer,
                       log_level)
from .eq import fft_length, sos_filter_inplace

BAND_LO_HZ, BAND_HI_HZ = 4000.0, 10000.0
DEFAULTS = {"threshold_db": -30.0, "ratio": 4.0, "attack_ms": 1.0, "release_ms": 60.0,
            "knee_db": 3.0, "freq_hz": math.sqrt(BAND_LO_HZ * BAND_HI_HZ),
            "q": math.sqrt(BAND_LO_HZ * BAND_HI_HZ) / (BAND_HI_HZ - BAND_LO_HZ)}


def band_coefficients(freq_hz, q, sample_rate: float):
    """``(b0, b1, b2, a1, a2)`` of ``B = (1 - A) / 2`` (module doc), torch, broadcast."""
    freq_hz = torch.as_tensor(freq_hz)
    q = torch.as_tensor(q, dtype=freq_hz.dtype, device=freq_hz.device)
    w0 = 2 * math.pi * torch.clamp(freq_hz, max=0.49 * sample_rate) / sample_rate
    alpha = torch.sin(w0) / (2 * q)
    a0 = 1 + alpha
    return alpha / a0, torch.zeros_like(alpha), -alpha / a0, -2 * torch.cos(w0) / a0, \
        (1 - alpha) / a0


def band_response(freq_hz, q, freqs_hz, sample_rate: float) -> np.ndarray:
    """Complex ``B`` at ``freqs_hz`` (numpy, for scalar ``freq_hz``, ``q``)."""
    with torch.no_grad():
        b0, b1, b2, a1, a2 = (float(c) for c in band_coefficients(
            torch.tensor(float(freq_hz), dtype=torch.float64), float(q), sample_rate))
    z1 = np.exp(-2j * np.pi * np.asarray(freqs_hz, dtype=np.float64) / sample_rate)
    return (b0 + b1 * z1 + b2 * z1 * z1) / (1 + a1 * z1 + a2 * z1 * z1)


def _decay(a2: torch.Tensor, floor: float = 1e-16) -> int:
    """Samples until the band filter's impulse response decays below ``floor`` (complex poles of
    radius ``sqrt(a2)``; real poles only for Q < 0.5, covered by the same bound on a2)."""
    r = float(torch.sqrt(torch.clamp(a2.detach().abs().max(), min=1e-30)))
    if r >= 1.0:
        return 1 << 20
    return int(min(1 << 20, max(64, math.ceil(math.log(floor) / math.log(max(r, 1e-8))))))


def band_fsm(x: torch.Tensor, freq_hz: torch.Tensor, q: torch.Tensor,
             sample_rate: float) -> torch.Tensor:
    """``B(x)`` of ``x`` (rows, C, T) by frequency sampling (equal to the IIR run from rest)."""
    col = lambda p: torch.as_tensor(p, dtype=x.dtype, device=x.device).reshape(-1, 1, 1)  # noqa
    b0, b1, b2, a1, a2 = band_coefficients(col(freq_hz), col(q), sample_rate)
    n = x.shape[-1]
    n_fft = fft_length(n, _decay(a2))
    omega = torch.linspace(0, math.pi, n_fft // 2 + 1, dtype=x.dtype, device=x.device)
    ctype = torch.complex128 if x.dtype == torch.float64 else torch.complex64
    z1 = torch.exp(-1j * omega.to(torch.float64)).to(ctype)
    h = (b0 + b1 * z1 + b2 * z1 * z1) / (1 + a1 * z1 + a2 * z1 * z1)
    return torch.fft.irfft(torch.fft.rfft(x, n_fft) * h, n_fft)[..., :n]


def deesser(x: torch.Tensor, threshold_db, ratio, attack_ms, release_ms, sample_rate: float,
            knee_db=DEFAULTS["knee_db"], freq_hz=DEFAULTS["freq_hz"], q=DEFAULTS["q"],
            state=None):
    """De-ess ``x`` (rows, C, T); parameters are tensors (rows,) or scalars in physical units.
    ``state``: the smoothed gain (dB) per row from a previous block (None: 0).

    Returns ``(y, gain_db (rows, T), new_state)``."""
    rows = x.shape[0]
    p = lambda v: torch.as_tensor(v, dtype=x.dtype, device=x.device).expand(rows)  # noqa: E731
    col = lambda v: p(v).reshape(-1, 1)  # noqa: E731
    b = band_fsm(x, p(freq_hz), p(q), sample_rate)
    level_db = amp_to_db(b.abs().amax(dim=1))
    target = gain_computer(level_db, col(threshold_db), col(ratio), col(knee_db))
    if state is None:
        state = torch.zeros(rows, dtype=x.dtype, device=x.device)
    gain_db = ballistics(target, time_constant_to_coef(p(attack_ms), sample_rate),
                         time_constant_to_coef(p(release_ms), sample_rate), state)
    y = x + (db_to_amp(gain_db) - 1).unsqueeze(1) * b
    return y, gain_db, gain_db[:, -1]


def _settings(params: dict | None) -> dict:
    out = dict(DEFAULTS)
    out.update(params or {})
    return out


class DeesserState:
    """Render form for one (multi-channel) signal: float64, state carried between blocks."""

    def __init__(self, params: dict | None, sample_rate: float, channels: int):
        s = _settings(params)
        with torch.no_grad():
            b0, b1, b2, a1, a2 = (float(c) for c in band_coefficients(
                torch.tensor(float(s["freq_hz"]), dtype=torch.float64), float(s["q"]),
                sample_rate))
        self.sos = np.array([[b0, b1, b2, 1.0, a1, a2]])
        self.zi = np.zeros((1, channels, 2))
        self.p = CompressorParams({k: s[k] for k in ("threshold_db", "ratio", "knee_db",
                                                     "attack_ms", "release_ms")}
                                  | {"makeup_db": 0.0}, sample_rate).array
        self.gain_state = np.zeros(1)

    def process_inplace(self, x: np.ndarray) -> np.ndarray:
        """De-ess a C-contiguous float64 block (channels, n) in place; returns the linear gain
        per sample."""
        b = np.array(x, dtype=np.float64, order="C")
        sos_filter_inplace(self.sos, b, self.zi)
        g = compressor_gain(log_level(b), self.p, self.gain_state)
        x += (g - 1.0) * b
        return g


# ---------------------------------------------------------------------------------------------
# spectral model
# ---------------------------------------------------------------------------------------------

def band_frames(x: np.ndarray, sample_rate: float, params: dict | None = None,
                frame_s: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """Detector level (dB) and energy share of the band signal ``B(x)`` in frames of
    ``frame_s``.  The level is the 90th percentile of ``max_c |b|`` in the frame: the detector's
    fast attack and slower release settle near the upper envelope (0.99 of a sine's peak, 1.64
    sigma of noise); measured on bursts of band noise, the predicted band cut is then within
    0.2 dB of the rendered one (the frame maximum overestimates it by 1.5 dB)."""
    s = _settings(params)
    st = DeesserState(s, sample_rate, x.shape[0])
    b = np.array(x, dtype=np.float64, order="C")
    sos_filter_inplace(st.sos, b, st.zi)
    hop = max(1, int(round(frame_s * sample_rate)))
    frames = b.shape[1] // hop
    a = np.abs(b[:, :frames * hop]).reshape(b.shape[0], frames, hop)
    energy = (a * a).sum(axis=(0, 2))
    k = int(0.9 * (hop - 1))
    level = np.partition(a.max(axis=0), k, axis=1)[:, k]
    return 20.0 * np.log10(np.maximum(level, 1e-6)), energy / max(energy.sum(), 1e-300)


def static_gain_db(level_db, params: dict | None = None) -> np.ndarray:
    """The gain computer (dB) at band levels ``level_db`` (numpy)."""
    s = _settings(params)
    with torch.no_grad():
        g = gain_computer(torch.as_tensor(np.asarray(level_db, dtype=np.float64)),
                          torch.tensor(float(s["threshold_db"]), dtype=torch.float64),
                          torch.tensor(float(s["ratio"]), dtype=torch.float64),
                          torch.tensor(float(s["knee_db"]), dtype=torch.float64))
    return g.numpy()


def spectral_power_gain(freqs_hz, level_db, weights, sample_rate: float,
                        params: dict | None = None) -> np.ndarray:
    """Long-term power response of the de-esser at ``freqs_hz`` given the band frames
    (:func:`band_frames`): ``1 - E_w[1 - g^2] |B(f)|^2`` (module doc)."""
    s = _settings(params)
    g2 = 10.0 ** (static_gain_db(level_db, s) / 10.0)
    cut = float(np.sum(np.asarray(weights) * (1.0 - g2)))
    b2 = np.abs(band_response(s["freq_hz"], s["q"], freqs_hz, sample_rate)) ** 2
    return 1.0 - cut * b2


# ---------------------------------------------------------------------------------------------
# sibilance and the rule that sets the de-esser
# ---------------------------------------------------------------------------------------------

SIBILANCE_BAND_HZ = (4000.0, 10000.0)
BODY_BAND_HZ = (300.0, 4000.0)


def sibilance_db(audio: np.ndarray, sample_rate: float, active_db: float = 30.0) -> float | None:
    """Energy in 4-10 kHz over energy in 0.3-4 kHz (dB), over the frames (about 46 ms) where
    the audio plays (within ``active_db`` of its 95th-percentile frame level, above -70 dBFS;
    at most 1000 of them, evenly spread: 46 s of a song).
    None when nothing plays or the sample rate cannot hold 10 kHz."""
    if sample_rate / 2 <= SIBILANCE_BAND_HZ[1]:
        return None
    x = np.asarray(audio, dtype=np.float32)
    mono = x.mean(axis=0) if x.ndim == 2 else x
    n = 1 << int(round(math.log2(0.046 * sample_rate)))
    frames = len(mono) // n
    if frames < 1:
        return None
    f = mono[:frames * n].reshape(frames, n)
    level = 10 * np.log10(np.maximum(np.einsum("ij,ij->i", f, f, dtype=np.float64) / n, 1e-20))
    on = (level > np.percentile(level, 95) - active_db) & (level > -70.0)
    if not on.any():
        return None
    idx = np.flatnonzero(on)
    idx = idx[np.linspace(0, len(idx) - 1, min(len(idx), 1000)).astype(np.int64)]
    spec = scipy.fft.rfft(f[idx] * np.hanning(n).astype(np.float32), axis=1)
    power = spec.real ** 2 + spec.imag ** 2
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    band = lambda lo, hi: float(power[:, (freqs >= lo) & (freqs < hi)].sum())  # noqa: E731
    body = band(*BODY_BAND_HZ)
    if body <= 0.0:
        return None
    return 10.0 * math.log10(max(band(*SIBILANCE_BAND_HZ), 1e-30) / body)


def deesser_for(audio: np.ndarray, sample_rate: float, reference_sibilance_db: float | None,
                vocal_like: bool, max_cut_db: float = 10.0) -> dict | None:
    """The rule: a vocal-like stem whose sibilance (:func:`sibilance_db`) exceeds the
    reference's gets a de-esser whose expected cut of the band energy (the spectral model's,
    :func:`spectral_power_gain` at the band centre) equals the excess, at most ``max_cut_db``;
    ratio 4, knee 3 dB, attack 1 ms, release 60 ms, the threshold found by bisection.  A full
    mix's ratio includes cymbals and is usually above a voice's, so the rule fires only on a
    voice brighter than the whole reference.  None when not needed."""
    if not vocal_like or reference_sibilance_db is None:
        return None
    s = sibilance_db(audio, sample_rate)
    if s is None or s <= reference_sibilance_db:
        return None
    goal = min(s - reference_sibilance_db, max_cut_db)
    params = dict(DEFAULTS)
    level, w = band_frames(np.atleast_2d(audio), sample_rate, params)
    f0 = params["freq_hz"]

    def cut_db(threshold):
        params["threshold_db"] = threshold
        return -10.0 * math.log10(spectral_power_gain([f0], level, w, sample_rate, params)[0])

    lo, hi = -90.0, 0.0                    # cut_db decreases as the threshold rises
    if cut_db(hi) >= goal:
        threshold = hi
    else:
        for _ in range(40):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if cut_db(mid) > goal else (lo, mid)
        threshold = (lo + hi) / 2
    if cut_db(threshold) < 0.1:
        return None
    params["threshold_db"] = round(threshold, 2)
    return {k: round(float(v), 2) for k, v in params.items()}
