"""Codec-safe ceiling: the master stays under its true-peak ceiling after lossy coding too.

The master stage (:func:`automix.api.master_stage`) limits to the ceiling; this module then
encodes and decodes the master with each codec asked for (:mod:`automix.codecs`: MP3 128 kbps,
Opus, Vorbis; in pieces on the codec's frame grid, so the reading is one whole-file encode's),
measures the decoded true peak per 0.25 s block, and, while any decoded version is over the
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

from .codecs import DEFAULT_CODECS

FLOOR_DB = 3.0          # the limiter's ceiling goes at most this far under the ceiling asked for
MARGIN_DB = 0.1         # each round aims this far under the ceiling (codec peaks move a little)
TOLERANCE_DB = 0.05     # a decoded peak this close over the ceiling passes (meter resolution)
MAX_ROUNDS = 4
WINDOW_GUARD_DB = 2.0   # a block is coded again when its predicted decoded peak is this close
                        # to the worst prediction or to the ceiling; the others keep the
                        # prediction.  On real music (benchmarks/codec_loop.py) a block's
                        # prediction is off by 0.1 dB (median), 0.4 dB (p95), 1 dB at most
# Codecs coded in windows after the first round: MP3 (LAME), whose windows on its frame grid
# read exactly what the whole file does (tests/test_codec_safe.py), and the slowest of the
# default codecs (3x Vorbis here).  Vorbis' block switching does not always fall back into the
# whole file's block sequence (measured: a window on the 2048 grid stayed 0.4 dB off for 10 s),
# so Vorbis and Opus are coded whole every round.
WINDOWED_CODECS = ("mp3",)
# Whether the loop's later rounds code windows at all.  Off: measured side by side
# (benchmarks/codec_loop.py, its docstring has the table) the windows read exactly what
# coding the whole master reads (0.000 dB apart on a synthetic loud master, the example song
# and 240 s of real music), but saved only 0-9 % of the audio coded and no wall time: on a
# limited master the blocks within WINDOW_GUARD_DB of the worst decoded peak lie all through
# the song, and each window needs WINDOW_CONTEXT_S of run-in.
WINDOWED = False


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


def _db(x):
    return 20 * np.log10(np.maximum(x, 1e-9))


def make_safe(pre, master, final, goal, sr, ceiling, codecs, windowed: bool | None = None):
    """(master settings, master audio, report) with every codec's decoded true peak at or
    under ``ceiling`` where the floor allows.  ``final`` must be exactly ``pre`` scaled by
    ``master["gain_db"]`` and limited by ``master["limiter"]`` (as the render executor does).

    The first measurement codes the whole master and keeps the decoded true peak per
    PEAK_BLOCK_S block, and what the codec added there over the master's own true peak (its
    overshoot).  ``windowed``: each later round codes only the blocks whose predicted decoded
    peak -- the new master's own true peak there plus that block's last overshoot -- is within
    WINDOW_GUARD_DB of the ceiling (:func:`automix.codecs.coded_block_peaks`: windows with
    context, on the codecs' frame grid); the other blocks keep the prediction.  Without it,
    every round codes the whole master again (the benchmark's baseline)."""
    from .codecs import coded_block_peaks, master_block_peaks
    from .loudness_search import LIMITER_RELEASES_MS, loudness_stage
    from .render import apply_limiter_inplace
    from .settings import tidy_master

    t0 = time.perf_counter()
    windowed = WINDOWED if windowed is None else windowed
    coded = coded_block_peaks(final, sr, {c: None for c in codecs})
    unavailable = [c for c, v in coded.items() if v is None]
    decoded = {c: v[0] for c, v in coded.items() if v is not None}
    encoded = sum(v[1] for v in coded.values() if v is not None)
    own = _db(master_block_peaks(final, sr)) if windowed else None
    overshoot = {c: _db(p) - own for c, p in decoded.items()} if windowed else None

    def worst_of():
        return {c: (float(_db(np.nanmax(decoded[c]))) if c in decoded else None) for c in codecs}

    peaks = worst_of()
    report = {"codecs": list(codecs), "ceiling_dbtp": float(ceiling),
              "before": dict(peaks), "limiter_ceiling_before": master["limiter"]["ceiling_dbtp"],
              "rounds": 0, "floor_hit": False, "windowed": windowed}
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
        if windowed:
            own = _db(master_block_peaks(final, sr))
            predicted = {c: own + overshoot[c] for c in decoded}
            whole = {c: None for c in decoded if c not in WINDOWED_CODECS}
            # the blocks that may hold the worst decoded peak: within the guard of the worst
            # prediction (a block's decoded peak moves by up to ~3 dB from round to round on
            # dense material: the codec's noise is drawn anew) or of the ceiling
            select = {c: predicted[c] > min(ceiling, np.nanmax(predicted[c])) - WINDOW_GUARD_DB
                      for c in decoded}
            coded = coded_block_peaks(final, sr, {**whole, **{
                c: select[c] for c in decoded if c not in whole and select[c].any()}})
            for c in decoded:
                got = coded.get(c)
                if c in whole:
                    decoded[c], overshoot[c] = got[0], _db(got[0]) - own
                    encoded += got[1]
                    continue
                decoded[c] = 10 ** (predicted[c] / 20)
                if got is not None:
                    decoded[c][select[c]] = got[0][select[c]]
                    overshoot[c][select[c]] = (_db(got[0]) - own)[select[c]]
                    encoded += got[1]
        else:
            coded = coded_block_peaks(final, sr, {c: None for c in decoded})
            decoded = {c: v[0] for c, v in coded.items()}
            encoded += sum(v[1] for v in coded.values())
        peaks = worst_of()
        report["rounds"] += 1
    if _worst(peaks) > ceiling + TOLERANCE_DB and master["limiter"]["ceiling_dbtp"] <= floor + 1e-9:
        report["floor_hit"] = True
    report.update(after=dict(peaks), limiter_ceiling_after=master["limiter"]["ceiling_dbtp"],
                  seconds=time.perf_counter() - t0, unavailable=unavailable,
                  passed=_worst(peaks) <= ceiling + TOLERANCE_DB,
                  encoded_s=round(encoded, 2))
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
