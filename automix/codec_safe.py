"""Codec-safe ceiling: the master stays under its true-peak ceiling after lossy coding too.

The master stage (:func:`automix.api.master_stage`) limits to the ceiling; this module then
encodes and decodes the master with each codec asked for (:mod:`automix.codecs`: MP3 128 kbps,
Opus, Vorbis), measures the decoded true peak, and, while any decoded version is over the
ceiling, lowers the limiter's ceiling by the worst overshoot (+0.1 dB) and redoes the loudness
stage (gain search + limiter) on the same pre-limiter signal, so the loudness target is kept
where the limiter can still reach it.  It stops when every codec passes, after
``MAX_ROUNDS`` rounds, or at the floor ``FLOOR_DB`` under the ceiling (further down, the
limiting itself would be heard); what happened is reported (a note, ``checks.json``, the
report).

The loop is switched on by a *session* (``with configured(codecs) as session:``), which the
command line opens for every run (``--codecs``, default ``mp3,vorbis``) and which collects the
reports; an API call outside a session masters exactly as before (no codec round trips).
A context variable carries the session so that the master stage's signature, shared with the
console-graph work, needs no new parameter.
"""
from __future__ import annotations

import contextvars
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from .codecs import DEFAULT_CODECS, coded_true_peaks

FLOOR_DB = 3.0          # the limiter's ceiling goes at most this far under the ceiling asked for
MARGIN_DB = 0.1         # each round aims this far under the ceiling (codec peaks move a little)
TOLERANCE_DB = 0.05     # a decoded peak this close over the ceiling passes (meter resolution)
MAX_ROUNDS = 4


@dataclass
class Session:
    """Which codecs every master of this session is checked against, and the reports."""
    codecs: tuple[str, ...] = DEFAULT_CODECS
    reports: list[dict] = field(default_factory=list)

    @property
    def notes(self) -> list[str]:
        return [r["note"] for r in self.reports if r.get("note")]


_SESSION: contextvars.ContextVar[Session | None] = contextvars.ContextVar(
    "automix_codec_session", default=None)


@contextmanager
def configured(codecs=DEFAULT_CODECS):
    """``with configured(("mp3", "opus")) as session:`` every master made inside is
    codec-safe; ``session.reports`` / ``session.notes`` say what the loop did.  ``codecs=()``:
    the decoded peaks are not checked."""
    session = Session(tuple(codecs))
    token = _SESSION.set(session)
    try:
        yield session
    finally:
        _SESSION.reset(token)


def current() -> Session | None:
    return _SESSION.get()


def _worst(peaks: dict) -> float:
    measured = [p for p in peaks.values() if p is not None]
    return max(measured) if measured else -np.inf


def apply(pre: np.ndarray, master: dict, final: np.ndarray, goal: float, sr: int,
          ceiling: float) -> tuple[dict, np.ndarray]:
    """The hook of the master stage: with a session open, ``final`` (the limited master,
    ``pre`` x gain through ``master["limiter"]``) checked after each codec and redone with a
    lower limiter ceiling until it passes; otherwise returned unchanged."""
    session = current()
    if session is None or not session.codecs or not master.get("limiter"):
        return master, final
    master, final, report = make_safe(pre, master, final, goal, sr, ceiling, session.codecs)
    session.reports.append(report)
    return master, final


def make_safe(pre, master, final, goal, sr, ceiling, codecs):
    """(master settings, master audio, report) with every codec's decoded true peak at or
    under ``ceiling`` where the floor allows.  ``final`` must be exactly ``pre`` scaled by
    ``master["gain_db"]`` and limited by ``master["limiter"]`` (as the render executor does)."""
    from .loudness_search import LIMITER_RELEASES_MS, loudness_stage
    from .render import apply_limiter_inplace
    from .settings import tidy_master

    t0 = time.perf_counter()
    peaks = coded_true_peaks(final, sr, codecs)
    report = {"codecs": list(codecs), "ceiling_dbtp": float(ceiling),
              "before": dict(peaks), "limiter_ceiling_before": master["limiter"]["ceiling_dbtp"],
              "rounds": 0, "floor_hit": False}
    unavailable = [c for c, p in peaks.items() if p is None]
    floor = ceiling - FLOOR_DB
    while _worst(peaks) > ceiling + TOLERANCE_DB and report["rounds"] < MAX_ROUNDS:
        lim = master["limiter"]
        if lim["ceiling_dbtp"] <= floor + 1e-9:
            report["floor_hit"] = True
            break
        lower = lim["ceiling_dbtp"] - (_worst(peaks) - ceiling) - MARGIN_DB
        # the 0.01 dB settings.json keeps, rounded down (never above what was measured safe)
        lower = np.floor(100 * max(lower, floor) + 1e-6) / 100
        releases = tuple(r for r in LIMITER_RELEASES_MS if r <= lim["release_ms"]) \
            or (lim["release_ms"],)
        loud = loudness_stage(pre, dict(lim, ceiling_dbtp=float(lower)), goal, sr, releases)
        master = dict(master, gain_db=loud["gain_db"], limiter=loud["limiter"])
        master = tidy_master(master, sr)
        # as the master stage makes it: pre x gain, then the limiter (what render reproduces)
        final = pre * (10 ** (master["gain_db"] / 20))
        apply_limiter_inplace(final, master["limiter"], sr)
        peaks = coded_true_peaks(final, sr, codecs)
        report["rounds"] += 1
    if _worst(peaks) > ceiling + TOLERANCE_DB and master["limiter"]["ceiling_dbtp"] <= floor + 1e-9:
        report["floor_hit"] = True
    report.update(after=dict(peaks), limiter_ceiling_after=master["limiter"]["ceiling_dbtp"],
                  seconds=time.perf_counter() - t0, unavailable=unavailable,
                  passed=_worst(peaks) <= ceiling + TOLERANCE_DB)
    report["note"] = _note(report)
    return master, final, report


def _fmt(peaks: dict) -> str:
    return ", ".join(f"{c} {p:+.2f}" for c, p in peaks.items() if p is not None)


def _note(r: dict) -> str | None:
    parts = []
    if r["unavailable"]:
        parts.append(f"no encoder here for {', '.join(r['unavailable'])}: not checked")
    if r["rounds"] == 0 and r["passed"]:
        return "; ".join(parts) or None
    if r["rounds"]:
        parts.append(f"after lossy coding the master peaked at {_fmt(r['before'])} dBTP, over the "
                     f"{r['ceiling_dbtp']:+.1f} dBTP ceiling: the limiter's ceiling went from "
                     f"{r['limiter_ceiling_before']:+.2f} to {r['limiter_ceiling_after']:+.2f} dBTP "
                     f"(now {_fmt(r['after'])} dBTP)")
    if not r["passed"]:
        parts.append(f"the coded master still peaks over the ceiling ({_fmt(r['after'])} dBTP): "
                     + (f"the limiter's ceiling is at its floor, {FLOOR_DB:g} dB under the "
                        "ceiling; lower the loudness target" if r["floor_hit"] else
                        f"stopped after {MAX_ROUNDS} rounds"))
    return "; ".join(parts)
