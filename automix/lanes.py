"""Gain automation lanes: a fader that moves with the song, applied sample-accurately (numpy).

A lane is plain data, as settings.json v2 carries it::

    {"points": [{"time_s": 0.0, "gain_db": 0.0}, {"time_s": 31.75, "gain_db": 2.5}, ...],
     "ramp_s": 1.0}

Meaning (what a person editing the file should expect):

* each point is a set-point: from ``time_s`` on, the gain moves to ``gain_db`` along a straight
  line in dB that takes ``ramp_s`` seconds, then holds;
* before the first point the gain is the first point's gain (a lane never starts with a jump);
* a point that comes before the previous ramp has finished starts its own ramp from wherever the
  gain has got to, so the curve is continuous whatever the spacing;
* times are in seconds from the start of the song; points must be in increasing time order.

So the gain never jumps: between two samples it changes by at most
``max |gain_db[k] - gain_db[k-1]| / (ramp_s * sample_rate)`` dB (``ramp_s`` is at least 1 ms).
The curve is evaluated at each sample's own time ``n / sample_rate``, block by block if need be
(:func:`lane_gain_db` with a start sample), with no state: every block gives the same samples as
the whole song would, so re-rendering is bit-exact.

The rider and section-contrast lanes (:mod:`automix.lead`) are made here; the console graph
(issue 16) carries them in settings.json and its render path applies them.
"""
from __future__ import annotations

import numpy as np

from .errors import AutomixError

DEFAULT_RAMP_S = 1.0


def make_lane(points, ramp_s: float = DEFAULT_RAMP_S) -> dict:
    """A lane from ``(time_s, gain_db)`` pairs (rounded to 1 ms and 0.01 dB, the steps a person
    types), checked."""
    lane = {"points": [{"time_s": round(float(t), 3) + 0.0, "gain_db": round(float(g), 2) + 0.0}
                       for t, g in points],
            "ramp_s": round(float(ramp_s), 3)}
    check_lane(lane)
    return lane


def check_lane(lane: dict, where: str = "lane") -> None:
    """One-line :class:`AutomixError` for a malformed lane."""
    if not isinstance(lane, dict) or not isinstance(lane.get("points"), list):
        raise AutomixError(f"{where}: a lane is {{\"points\": [...], \"ramp_s\": seconds}}")
    ramp = lane.get("ramp_s", DEFAULT_RAMP_S)
    if not isinstance(ramp, (int, float)) or not 0.001 <= ramp <= 60.0:
        raise AutomixError(f"{where}.ramp_s = {ramp!r} is outside [0.001, 60] seconds")
    last = -np.inf
    for i, p in enumerate(lane["points"]):
        t, g = (p.get("time_s"), p.get("gain_db")) if isinstance(p, dict) else (None, None)
        if not isinstance(t, (int, float)) or not isinstance(g, (int, float)) \
                or not np.isfinite(t) or not np.isfinite(g):
            raise AutomixError(f"{where}.points[{i}] needs numbers time_s and gain_db")
        if t < 0 or t <= last:
            raise AutomixError(f"{where}.points[{i}].time_s = {t} is not after the previous point")
        if not -60.0 <= g <= 24.0:
            raise AutomixError(f"{where}.points[{i}].gain_db = {g} is outside [-60, 24]")
        last = t


def breakpoints(lane: dict) -> tuple[np.ndarray, np.ndarray]:
    """The lane as a piecewise-linear curve: corner times (s) and gains (dB), for ``np.interp``
    (constant beyond both ends)."""
    points = lane["points"]
    if not points:
        return np.zeros(1), np.zeros(1)
    ramp = float(lane.get("ramp_s", DEFAULT_RAMP_S))
    times = [float(points[0]["time_s"])]
    gains = [float(points[0]["gain_db"])]
    for p in points[1:]:
        t, g = float(p["time_s"]), float(p["gain_db"])
        start = float(np.interp(t, times, gains))   # where the previous ramp has got to
        keep = int(np.searchsorted(times, t, side="left"))
        times, gains = times[:keep] + [t], gains[:keep] + [start]
        times.append(t + ramp)
        gains.append(g)
    return np.asarray(times), np.asarray(gains)


def lane_gain_db(lane: dict | None, n: int, sample_rate: float, start: int = 0) -> np.ndarray:
    """The lane's gain in dB at samples ``start .. start + n - 1`` (0 dB everywhere without a
    lane or points)."""
    if not lane or not lane.get("points"):
        return np.zeros(n)
    t, g = breakpoints(lane)
    return np.interp((start + np.arange(n, dtype=np.float64)) / sample_rate, t, g)


def apply_lane(audio: np.ndarray, lane: dict | None, sample_rate: float,
               start: int = 0) -> np.ndarray:
    """``audio`` (channels, n) or (n,) times the lane's gain at each sample, float64 (a new
    array); ``start`` is the block's first sample in the song."""
    audio = np.asarray(audio, dtype=np.float64)
    gain = 10.0 ** (lane_gain_db(lane, audio.shape[-1], sample_rate, start) / 20.0)
    return audio * gain
