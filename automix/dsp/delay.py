"""Feedback delay (echo), stereo or ping-pong, with a damping low-pass in the loop.

The loop element, for a delay of ``D = time_ms * fs / 1000`` samples (fractional), is

    G(z) = z^-Di * A(z) * L(z)

- ``Di = floor(D - 1/2)`` samples of plain delay (at least 1) and a first-order Thiran allpass
  ``A(z) = (eta + z^-1) / (1 + eta z^-1)``, ``eta = (1 - f) / (1 + f)``, for the rest
  ``f = D - Di`` in [0.5, 1.5): flat magnitude, phase delay ``f`` at low frequencies, and exactly
  ``z^-1`` (``eta = 0``) when ``D`` is a whole number of samples, so such delays are exact.
  The delay time is continuous, hence differentiable (within each sample step of ``Di``).
- damping ``L(z) = (1 - a) / (1 - a z^-1)``, ``a = exp(-2 pi damping_hz / fs)``: one-pole
  low-pass, unity at DC.

Modes (a structural choice, not a parameter):

- ``"stereo"``: each input channel has its own loop, ``Y_c = G / (1 - fb G) X_c``: echoes at
  ``k D`` with gains ``fb^(k-1)`` (times ``(A L)^k``).
- ``"pingpong"``: the input's mid ``U = (L+R)/2`` enters the left loop; each loop feeds the
  other: ``Y_L = G / (1 - fb^2 G^2) U``, ``Y_R = fb G^2 / (1 - fb^2 G^2) U``: echoes alternate
  left (D, 3D, ...) and right (2D, 4D, ...), gain ``fb^(k-1)`` for the k-th.

Stability: ``|A| = 1`` and ``|L| <= 1`` at every frequency (``|L(e^jw)| = (1-a) /
|1 - a e^-jw| <= (1-a)/(1-a)``), so the loop gain ``|fb G| <= fb < 1`` everywhere (ping-pong:
``|fb^2 G^2| <= fb^2``); feedback is limited to 0.99.

Three executors:

- training (:func:`delay`): batched torch by frequency sampling.  For a crop of ``T`` samples
  only the echoes starting before ``T`` matter, so the geometric series is truncated at
  ``K = ceil(T / Di)`` terms, ``G (1 - (fb G)^K) / (1 - fb G)``, a finite impulse response that
  equals the recursion on the crop, evaluated on an FFT grid that holds it whole (no wrap).
- render (:class:`DelayState`): the recursion sample by sample in float64 (numba), state carried
  from block to block; deterministic.
- spectral model (:func:`delay_power_response`, :func:`delay_decay_rt60`): the exact power
  response of the infinite series, and the echoes' decay time per frequency.

The time can be tempo-synced: :func:`tempo_bpm` (librosa's tempo estimator on the stems' sum) and
:func:`beats_to_ms`.
"""
from __future__ import annotations

import math

import numba
import numpy as np
import scipy.fft
import torch

from ..errors import AutomixError
from .limits import check_limits

PARAMS = ("time_ms", "feedback", "damping_hz")
MODES = ("stereo", "pingpong")
# the network's ranges: (name, unit, min, max, default, scale); automix.console.graph declares
# them as ParamSpecs
SPECS = (
    ("time_ms", "ms", 40.0, 1500.0, 375.0, "log"),
    ("feedback", "", 0.0, 0.8, 0.35, "linear"),
    ("damping_hz", "Hz", 500.0, 20000.0, 5000.0, "log"),
)
LIMITS = {"time_ms": (1.0, 5000.0), "feedback": (0.0, 0.99), "damping_hz": (10.0, 1e9)}


def check_params(p: dict, sample_rate: float | None = None, where: str = "delay") -> None:
    """One-line :class:`AutomixError` for a missing, non-finite or out-of-range parameter;
    with ``sample_rate``, also a delay shorter than 1.5 samples."""
    check_limits(p, {name: LIMITS[name] for name in PARAMS}, where,
                 hints={"feedback": "feedback 1 or more never dies away"})
    if sample_rate is not None and bool(
            (torch.as_tensor(p["time_ms"]) * sample_rate / 1000 < 1.5).any()):
        raise AutomixError(f"{where}.time_ms is shorter than 1.5 samples at {sample_rate} Hz")


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise AutomixError(f"delay mode must be one of {', '.join(MODES)}, not {mode!r}")


def split_delay(time_ms, sample_rate: float):
    """``(Di, eta)``: whole samples (a detached tensor) and the allpass coefficient."""
    d = torch.as_tensor(time_ms) * (sample_rate / 1000.0)
    di = torch.clamp(torch.floor(d.detach() - 0.5), min=1.0)
    f = d - di
    return di, (1 - f) / (1 + f)


def damping_coefficient(damping_hz, sample_rate: float):
    return torch.exp(-2 * math.pi * torch.as_tensor(damping_hz) / sample_rate)


def loop_response(p: dict, omega: torch.Tensor, sample_rate: float) -> torch.Tensor:
    """``G(e^jw)`` (rows, F) for parameters ``(rows,)`` at ``omega`` (rad/sample)."""
    di, eta = split_delay(p["time_ms"], sample_rate)
    a = damping_coefficient(p["damping_hz"], sample_rate)
    z1 = torch.exp(-1j * omega)
    ap = (eta[:, None] + z1) / (1 + eta[:, None] * z1)
    lp = (1 - a[:, None]) / (1 - a[:, None] * z1)
    return torch.exp(-1j * omega * di[:, None]) * ap * lp


def _rows(p: dict, dtype, device) -> dict:
    return {k: torch.as_tensor(p[k], dtype=dtype, device=device).reshape(-1) for k in PARAMS}


def _tail_samples(p: dict, sample_rate: float, terms: int) -> int:
    """A generous bound on how far ``(A L)^terms``'s impulse response reaches (relative decay
    below about 1e-14): K one-pole low-passes in series have mean ``K a/(1-a)`` and spread
    ``sqrt(K a)/(1-a)`` samples; the allpass (|eta| <= 1/3) adds at most ~30 K samples."""
    a = float(damping_coefficient(torch.as_tensor(p["damping_hz"]).detach().min(), sample_rate))
    scale = 1.0 / (1.0 - a)
    return int(terms * (a * scale + 30) + 12 * math.sqrt(terms) * scale + 40 * scale) + 64


def delay(x: torch.Tensor, p: dict, sample_rate: float, mode: str = "stereo") -> torch.Tensor:
    """Training executor: the return for sends ``x`` (rows, 2, T) (stereo) or (rows, 1 or 2, T)
    (ping-pong, which takes the mid), parameters ``(rows,)``: ``(rows, 2, T)``."""
    _check_mode(mode)
    T = x.shape[-1]
    p = _rows(p, x.dtype, x.device)
    di, _ = split_delay(p["time_ms"], sample_rate)
    step = 2 if mode == "pingpong" else 1
    terms = torch.ceil(T / (step * di))                    # loop traversals of each row
    reach = int((terms * step * di).max()) + _tail_samples(p, sample_rate, int(terms.max()) * step)
    n = scipy.fft.next_fast_len(T + reach, real=True)
    omega = torch.arange(n // 2 + 1, dtype=x.dtype, device=x.device) * (2 * math.pi / n)
    g = loop_response(p, omega, sample_rate)
    fb = p["feedback"][:, None]
    r = (fb * g) ** step
    series = (1 - torch.exp(terms[:, None] * torch.log(r))) / (1 - r)   # sum_{k<K} r^k
    if mode == "stereo":
        y = torch.fft.irfft(torch.fft.rfft(x, n=n) * (g * series)[:, None, :], n=n)
    else:
        u = torch.fft.rfft(x.mean(dim=-2), n=n)
        y = torch.fft.irfft(torch.stack((g * series * u, fb * g * g * series * u), dim=1), n=n)
    return y[..., :T]


# ---------------------------------------------------------------------------------------------
# Render executor
# ---------------------------------------------------------------------------------------------

@numba.njit(cache=True, nogil=True)
def _delay_kernel(x, out, line, state, di, eta, a, fb, pingpong, pos):
    """One block: ``x`` (channels, n) input, ``out`` (2, n) output; ``line`` (2, size) circular
    buffers of the loops' inputs s, ``state`` (2, 3): allpass input and output, low-pass output
    of each loop; ``pos`` the write index.  Returns the new write index."""
    size = line.shape[1]
    n = x.shape[1]
    for i in range(n):
        read = pos - di
        if read < 0:
            read += size
        d0 = 0.0
        d1 = 0.0
        for c in range(2):
            v = line[c, read]
            w = eta * v + state[c, 0] - eta * state[c, 1]
            state[c, 0] = v
            state[c, 1] = w
            y = (1.0 - a) * w + a * state[c, 2]
            state[c, 2] = y
            out[c, i] = y
            if c == 0:
                d0 = y
            else:
                d1 = y
        if pingpong:
            if x.shape[0] == 2:
                u = (x[0, i] + x[1, i]) / 2
            else:
                u = x[0, i]
            line[0, pos] = u + fb * d1
            line[1, pos] = fb * d0
        else:
            last = x.shape[0] - 1
            line[0, pos] = x[0, i] + fb * d0
            line[1, pos] = x[last, i] + fb * d1
        pos += 1
        if pos == size:
            pos = 0
    return pos


class DelayState:
    """Render executor: the delay of one send bus, float64, block by block; ``params`` numbers
    (settings.json's values).  A mono send feeds both loops (stereo mode)."""

    def __init__(self, params: dict, sample_rate: int, mode: str = "stereo"):
        _check_mode(mode)
        check_params(params, sample_rate)
        with torch.no_grad():
            di, eta = split_delay(torch.tensor(float(params["time_ms"]), dtype=torch.float64),
                                  sample_rate)
            a = damping_coefficient(torch.tensor(float(params["damping_hz"]),
                                                 dtype=torch.float64), sample_rate)
        self.di, self.eta, self.a = int(di), float(eta), float(a)
        self.fb = float(params["feedback"])
        self.pingpong = mode == "pingpong"
        self.line = np.zeros((2, self.di + 1))
        self.state = np.zeros((2, 3))
        self.pos = 0

    def process(self, block: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(block, dtype=np.float64)
        out = np.empty((2, x.shape[1]))
        self.pos = _delay_kernel(x, out, self.line, self.state, self.di, self.eta, self.a,
                                 self.fb, self.pingpong, self.pos)
        return out


# ---------------------------------------------------------------------------------------------
# Spectral model
# ---------------------------------------------------------------------------------------------

def delay_power_response(p: dict, freqs_hz, sample_rate: float, mode: str = "stereo",
                         average: bool = False) -> dict:
    """Exact power response at ``freqs_hz`` (rows, F).  ``"stereo"``: ``{"gain"}`` =
    ``|G / (1 - fb G)|^2``, which multiplies the input's mid, side and cross spectra alike.
    ``"pingpong"``: ``{"mid", "side", "cross"}`` relative to the input's mid power:
    ``|H_L + H_R|^2 / 4``, ``|H_L - H_R|^2 / 4``, ``Re((H_L+H_R)(H_L-H_R)*) / 4``.

    ``average``: the comb averaged over frequency (what a long-term spectrum on cells wider
    than ``fs / D`` sees): the echoes' powers add, ``sum_k fb^(2(k-1)) |L|^(2k)``, so stereo
    ``|L|^2 / (1 - fb^2 |L|^2)``; ping-pong left (odd echoes) ``P_L = |L|^2 / (1 - fb^4 |L|^4)``,
    right ``P_R = fb^2 |L|^2 P_L``, uncorrelated (different delays): mid = side =
    ``(P_L + P_R) / 4``, cross ``(P_L - P_R) / 4``."""
    _check_mode(mode)
    ref = torch.as_tensor(p["time_ms"])
    dtype = ref.dtype if ref.is_floating_point() else torch.float64
    p = _rows(p, dtype, ref.device)
    omega = 2 * math.pi * torch.as_tensor(freqs_hz, dtype=dtype) / sample_rate
    fb = p["feedback"][:, None]
    if average:
        a = damping_coefficient(p["damping_hz"], sample_rate)[:, None]
        lp2 = (1 - a) ** 2 / (1 - a * torch.exp(-1j * omega)).abs() ** 2
        if mode == "stereo":
            return {"gain": lp2 / (1 - fb ** 2 * lp2)}
        pl = lp2 / (1 - fb ** 4 * lp2 ** 2)
        pr = fb ** 2 * lp2 * pl
        return {"mid": (pl + pr) / 4, "side": (pl + pr) / 4, "cross": (pl - pr) / 4}
    g = loop_response(p, omega, sample_rate)
    if mode == "stereo":
        return {"gain": (g / (1 - fb * g)).abs() ** 2}
    hl = g / (1 - (fb * g) ** 2)
    hr = fb * g * hl
    m, s = (hl + hr) / 2, (hl - hr) / 2
    return {"mid": m.abs() ** 2, "side": s.abs() ** 2, "cross": (m * s.conj()).real}


def delay_decay_rt60(p: dict, freqs_hz, sample_rate: float) -> torch.Tensor:
    """Time (s) for the echoes to fall 60 dB at ``freqs_hz``: each trip round the loop takes
    ``D / fs`` seconds and scales the amplitude by ``fb |L(f)|``, so
    ``RT60(f) = 3 (D / fs) / -log10(fb |L(f)|)`` (0 when the feedback is 0: a single
    echo)."""
    ref = torch.as_tensor(p["time_ms"])
    dtype = ref.dtype if ref.is_floating_point() else torch.float64
    p = _rows(p, dtype, ref.device)
    omega = 2 * math.pi * torch.as_tensor(freqs_hz, dtype=dtype) / sample_rate
    a = damping_coefficient(p["damping_hz"], sample_rate)[:, None]
    lp = (1 - a) / (1 - a * torch.exp(-1j * omega)).abs()
    per_trip = torch.log10(torch.clamp(p["feedback"][:, None] * lp, min=1e-300))
    return torch.where(p["feedback"][:, None] > 0,
                       -3.0 * (p["time_ms"][:, None] / 1000.0) / per_trip,
                       torch.zeros_like(per_trip))


# ---------------------------------------------------------------------------------------------
# Tempo sync
# ---------------------------------------------------------------------------------------------

def tempo_bpm(audio: np.ndarray, sample_rate: int, max_seconds: float = 60.0) -> float:
    """The tempo (beats per minute) of ``audio`` (channels, samples) (e.g. the stems' sum) by
    librosa's tempo estimator (``librosa.feature.tempo``: autocorrelation of the onset strength,
    weighted by a log-normal prior around 120 BPM), on the mono sum of its middle
    ``max_seconds``.  One-line error when no beat is found."""
    import librosa

    x = np.asarray(audio, dtype=np.float64)
    x = x.mean(axis=0) if x.ndim == 2 else x
    n = int(max_seconds * sample_rate)
    if x.size > n:
        start = (x.size - n) // 2
        x = x[start:start + n]
    if x.size < 2 * sample_rate or not np.any(x):
        raise AutomixError("no tempo: the audio is silent or shorter than 2 s")
    onsets = librosa.onset.onset_strength(y=x.astype(np.float32), sr=sample_rate)
    bpm = float(np.atleast_1d(librosa.feature.tempo(onset_envelope=onsets, sr=sample_rate))[0])
    if not math.isfinite(bpm) or bpm <= 0:
        raise AutomixError("no tempo found (no beats in the audio)")
    return bpm


def stems_tempo_bpm(stems, sample_rate: int, max_seconds: float = 60.0) -> float:
    """:func:`tempo_bpm` of the stems' mono sum: ``stems`` a list of (channels, samples) arrays
    (1 or 2 channels, any lengths; the shorter padded with silence)."""
    if not stems:
        raise AutomixError("no stems to take a tempo from")
    n = max(np.asarray(s).shape[-1] for s in stems)
    total = np.zeros(n)
    for s in stems:
        x = np.atleast_2d(np.asarray(s, dtype=np.float64))
        total[:x.shape[1]] += x.mean(axis=0)
    return tempo_bpm(total[None], sample_rate, max_seconds)


def beats_to_ms(beats: float, bpm: float) -> float:
    """Delay time of ``beats`` beats (e.g. 0.75 for a dotted eighth) at ``bpm``."""
    if not (bpm > 0 and math.isfinite(bpm)) or not (beats > 0 and math.isfinite(beats)):
        raise AutomixError("beats and tempo must be positive numbers")
    return 60000.0 * beats / bpm
