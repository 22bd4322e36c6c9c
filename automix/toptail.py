"""Top and tail: leading and trailing silence trimmed, equal-power fades in and out.

* **Silence** is every sample whose magnitude (any channel) is more than ``SILENCE_DB`` (60 dB)
  under the audio's sample peak.  The kept span runs from the first sample above it, less a
  pre-roll of ``PRE_ROLL_S`` (50 ms, so an attack's lead-in is never cut), to the last sample
  above it, plus ``POST_ROLL_S`` (100 ms of the decay), within the audio.  Audio that is silent
  throughout is kept whole.
* **Fades** are equal-power (``--fade-in``/``--fade-out`` seconds): over ``n`` samples,
  ``t_k = k / (n - 1)``, fade-in ``sin(pi t / 2)`` from 0 to 1, fade-out ``cos(pi t / 2)`` from 1
  to 0; at every ``t``, ``in^2 + out^2 = 1``, so a crossfade between uncorrelated signals keeps
  their power.  The fade-in's first sample and the fade-out's last sample are 0.
  Fades go on the master after the limiter (a gain <= 1 cannot raise its true peak).
* **mix.wav** (and the printed stems, which sum to it) is cut to the master's span, the same
  samples, so that mix and master line up sample for sample; it gets no fades (the fades are
  a mastering decision, and a mix handed on is better whole within its span).  The span is found
  on the master: a limiter raises quiet passages relative to the peak, so the master is where
  a tail is audible first.
"""
from __future__ import annotations

import math

import numpy as np

from .errors import AutomixError

SILENCE_DB = -60.0
PRE_ROLL_S = 0.05
POST_ROLL_S = 0.1


def find_trim(audio: np.ndarray, sample_rate: int, silence_db: float = SILENCE_DB,
              pre_roll_s: float = PRE_ROLL_S, post_roll_s: float = POST_ROLL_S) -> tuple[int, int]:
    """``(start, end)`` samples (end exclusive) of ``audio`` (channels, n) without its leading
    and trailing silence (module doc)."""
    x = np.asarray(audio)
    x = x[None] if x.ndim == 1 else x
    n = x.shape[1]
    mag = np.abs(x).max(axis=0)
    peak = float(mag.max()) if n else 0.0
    if peak <= 0.0:
        return 0, n
    loud = np.flatnonzero(mag > peak * 10.0 ** (silence_db / 20.0))
    start = max(0, int(loud[0]) - int(round(pre_roll_s * sample_rate)))
    end = min(n, int(loud[-1]) + 1 + int(round(post_roll_s * sample_rate)))
    return start, end


def fade_curves(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Equal-power fade-in and fade-out of ``n`` samples (module doc)."""
    if n < 2:
        return np.ones(max(n, 0)), np.ones(max(n, 0))
    t = np.arange(n, dtype=np.float64) / (n - 1)
    return np.sin(0.5 * np.pi * t), np.cos(0.5 * np.pi * t)


def apply_fades(audio: np.ndarray, sample_rate: int, fade_in_s: float = 0.0,
                fade_out_s: float = 0.0) -> np.ndarray:
    """``audio`` (channels, n) with an equal-power fade-in over its first ``fade_in_s`` seconds
    and a fade-out over its last ``fade_out_s`` (a new float64 array)."""
    for name, v in (("--fade-in", fade_in_s), ("--fade-out", fade_out_s)):
        if not np.isfinite(v) or v < 0:
            raise AutomixError(f"{name} {v}: a fade is a number of seconds >= 0")
    y = np.array(audio, dtype=np.float64)
    n = y.shape[-1]
    n_in, n_out = int(round(fade_in_s * sample_rate)), int(round(fade_out_s * sample_rate))
    if n_in + n_out > n:
        raise AutomixError(f"--fade-in {fade_in_s:g} s and --fade-out {fade_out_s:g} s are "
                           f"longer together than the audio ({n / sample_rate:.2f} s)")
    if n_in:
        y[..., :n_in] *= fade_curves(n_in)[0]
    if n_out:
        y[..., n - n_out:] *= fade_curves(n_out)[1]
    return y


def top_and_tail(audio: np.ndarray, sample_rate: int, fade_in_s: float = 0.0,
                 fade_out_s: float = 0.0, trim: bool = True):
    """Trim (optionally) then fade: returns ``(audio, (start, end))``, the span kept in samples
    of the input."""
    start, end = find_trim(audio, sample_rate) if trim else (0, np.asarray(audio).shape[-1])
    return apply_fades(np.asarray(audio)[..., start:end], sample_rate, fade_in_s,
                       fade_out_s), (start, end)


# --- settings.json master.top_tail --------------------------------------------------------------

def settings_for(audio: np.ndarray, sample_rate: int, fade_in_s: float = 0.0,
                 fade_out_s: float = 0.0, trim: bool = True) -> dict | None:
    """The ``master.top_tail`` entry for ``audio`` (the limited master): the span without its
    silence (:func:`find_trim`; start rounded down, end up, to the settings' 0.001 s) and the
    fades; None when it would change nothing."""
    n = np.asarray(audio).shape[-1]
    start, end = find_trim(audio, sample_rate) if trim else (0, n)
    start_s = math.floor(start / sample_rate * 1000) / 1000
    end_s = math.ceil(end / sample_rate * 1000) / 1000
    entry = {"start_s": start_s, "fade_in_s": round(float(fade_in_s), 3),
             "fade_out_s": round(float(fade_out_s), 3)}
    if span(entry | {"end_s": end_s}, n, sample_rate)[1] < n:
        entry["end_s"] = end_s
    a, b = span(entry, n, sample_rate)
    if (a, b) == (0, n) and not entry["fade_in_s"] and not entry["fade_out_s"]:
        return None
    apply_fades(np.zeros((1, b - a)), sample_rate, entry["fade_in_s"],
                entry["fade_out_s"])  # the fades fit in the span, else a one-line error
    return entry


def span(entry: dict, n: int, sample_rate: int) -> tuple[int, int]:
    """The samples ``(start, end)`` a ``top_tail`` entry keeps of ``n`` (within the audio)."""
    start = min(n, int(round(entry.get("start_s", 0.0) * sample_rate)))
    end = n if entry.get("end_s") is None else min(n, int(round(entry["end_s"] * sample_rate)))
    return start, max(start, end)


def apply_settings(audio: np.ndarray, entry: dict | None, sample_rate: int) -> np.ndarray:
    """``audio`` (channels, n) cut to the entry's span and faded (a new float64 array); the
    render's and the job's one way of applying ``master.top_tail``."""
    if not entry:
        return audio
    start, end = span(entry, np.asarray(audio).shape[-1], sample_rate)
    return apply_fades(np.asarray(audio)[..., start:end], sample_rate,
                       entry.get("fade_in_s", 0.0), entry.get("fade_out_s", 0.0))


def trim_to_span(audio: np.ndarray, entry: dict | None, sample_rate: int) -> np.ndarray:
    """``audio`` (channels, n: the mix, a printed stem) cut to the span a ``top_tail`` entry
    keeps, no fades (a view; ``audio`` itself when the entry keeps everything)."""
    if not entry:
        return audio
    start, end = span(entry, np.asarray(audio).shape[-1], sample_rate)
    if (start, end) == (0, np.asarray(audio).shape[-1]):
        return audio
    return np.asarray(audio)[..., start:end]


def trim_printed(stems: dict | None, entry: dict | None, sample_rate: int) -> None:
    """The printed stems ``{name: (channels, n)}`` cut in place to the entry's span, as mix.wav
    is (they sum to it)."""
    for name in list(stems or {}):
        stems[name] = trim_to_span(stems[name], entry, sample_rate)
