"""Quality checks of a finished file: what a mastering engineer looks at before delivery.

Each check returns a :class:`Check` with a status -- ``pass``, ``warn``, ``fail`` or ``info``
(a measurement with no verdict) -- and the thresholds are stated in docs/checks.md.  Loudness, LRA, true peak, PLR and width
come from :func:`automix.analysis.analyze`; the rest is measured here:

* momentary loudness (400 ms windows) from the analysis' own K-weighted 100 ms hops;
* true-peak *overs*: events (runs of consecutive samples) whose 4x-interpolated peak passes the
  ceiling, from the shared true-peak interpolator (:mod:`automix.dsp.truepeak`);
* true peak after each lossy codec (:mod:`automix.codecs`);
* DC offset per channel, runs of clipped samples (3+ consecutive samples within 0.001 dB of
  full scale), L/R balance (K-weighted channel loudness difference);
* phase correlation of L and R overall and per band, the level lost when folded to mono
  (per band, relative to the channels' mean power: independent channels lose 3 dB, identical
  ones 0 dB, opposite ones everything), an inverted-polarity channel, width;
* what each platform's loudness normalisation does to the file (:mod:`automix.delivery`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numba
import numpy as np

from . import analysis
from .codecs import DEFAULT_CODECS, coded_true_peaks
from .delivery import PLATFORMS, normalised
from .dsp.truepeak import METER_OVERSAMPLE, abs_max_block, polyphase_matrix_f32

STATUSES = ("pass", "info", "warn", "fail")  # in order of concern

# The pass/warn/fail limits are written out in each check below and listed in
# docs/checks.md (tests/test_qc.py triggers each one on a crafted fault).

CLIP_LEVEL = 10 ** (-0.001 / 20)   # within 0.001 dB of full scale
CLIP_RUN = 3                       # consecutive samples
OVER_GAP = 441                     # overs closer than this (10 ms at 44.1 kHz) are one event
BANDS = (("bass", 20.0, 150.0), ("low-mid", 150.0, 600.0), ("mid", 600.0, 2500.0),
         ("presence", 2500.0, 8000.0), ("air", 8000.0, 20000.0))


@dataclass
class Check:
    name: str
    value: float | None
    unit: str
    status: str
    detail: str

    def as_dict(self) -> dict:
        return asdict(self)


def _above(value, warn, fail=None) -> str:
    if fail is not None and value > fail:
        return "fail"
    return "warn" if value > warn else "pass"


def _below(value, warn, fail=None) -> str:
    if fail is not None and value < fail:
        return "fail"
    return "warn" if value < warn else "pass"


def _db(x: float) -> float:
    return float(20 * np.log10(x)) if x > 1e-12 else analysis.FLOOR_DB


# --- measurements ------------------------------------------------------------------------------

def momentary_max_lufs(audio: np.ndarray, sr: int) -> float:
    """Largest momentary loudness (EBU Tech 3341: 400 ms windows, every 100 ms)."""
    hops = analysis._weighted_hops(audio, sr)
    ms = hops.window_mean_squares(analysis.BLOCK_S)
    return float(max(analysis._lufs(ms.max()), analysis.FLOOR_DB))


def _runs(mask: np.ndarray, min_len: int = 1) -> int:
    """Number of runs of True of at least ``min_len`` in a boolean array."""
    if not mask.any():
        return 0
    edges = np.diff(np.concatenate(([0], mask.view(np.int8), [0])))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return int(((stops - starts) >= min_len).sum())


@numba.njit(cache=True, nogil=True)
def _interval_peaks(x, H, block):
    """Per sample, the 4x-interpolated peak over the interval after it (one channel): the
    true-peak meter's own filter (:func:`automix.dsp.truepeak.abs_max_block`), kept per sample."""
    n = x.shape[0]
    R = (H.shape[1] - 1) // 2
    seg = np.zeros(block + 2 * R, np.float32)
    acc = np.empty(block, np.float32)
    out = np.zeros(n, np.float32)
    for b in range(0, n, block):
        count = min(block, n - b)
        for k in range(count + 2 * R):
            pos = b - R + k
            seg[k] = np.float32(x[pos]) if 0 <= pos < n else np.float32(0.0)
        abs_max_block(seg, H, count, acc, out[b:b + count])
    return out


def true_peak_overs(audio: np.ndarray, ceiling_dbtp: float) -> tuple[int, int]:
    """(events over ``ceiling_dbtp``, events over 0 dBTP), per channel, summed: groups of
    samples whose 4x-interpolated peak over the following interval passes the level, less than
    ``OVER_GAP`` samples apart."""
    H = polyphase_matrix_f32(METER_OVERSAMPLE)
    over, over0 = 0, 0
    for ch in np.atleast_2d(audio):
        env = _interval_peaks(np.ascontiguousarray(ch), H, 8192)
        over += _events(env > 10 ** (ceiling_dbtp / 20))
        over0 += _events(env > 1.0)
    return over, over0


def _events(mask: np.ndarray, gap: int = OVER_GAP) -> int:
    """Groups of True whose members lie less than ``gap`` samples apart (the peaks of one
    loud waveform, a half period apart, are one event)."""
    idx = np.flatnonzero(mask)
    return 0 if idx.size == 0 else 1 + int((np.diff(idx) >= gap).sum())


def clipped_runs(audio: np.ndarray) -> list[int]:
    """Per channel, the runs of ``CLIP_RUN`` or more consecutive samples at full scale."""
    return [_runs(np.abs(ch) >= CLIP_LEVEL, CLIP_RUN) for ch in np.atleast_2d(audio)]


def channel_loudness(audio: np.ndarray, sr: int) -> list[float]:
    return [analysis.integrated_loudness(ch[None], sr) for ch in np.atleast_2d(audio)]


def band_stereo(audio: np.ndarray, sr: int) -> dict:
    """Correlation and mono fold-down loss of L/R, overall and per band, from their (cross)
    power spectra (Welch): per band, corr = Re(S_LR) / sqrt(S_LL S_RR) and
    loss = 10 log10(P_(L+R)/2 / mean(P_L, P_R))."""
    from scipy.signal import csd, welch

    left, right = (np.asarray(c, np.float64) for c in audio)
    left, right = left - left.mean(), right - right.mean()
    nper = int(min(8192, max(256, 2 ** int(np.log2(max(left.size // 8, 256))))))
    f, sll = welch(left, sr, nperseg=nper)
    _, srr = welch(right, sr, nperseg=nper)
    _, slr = csd(left, right, sr, nperseg=nper)

    def stats(keep):
        pl, pr, x = sll[keep].sum(), srr[keep].sum(), slr[keep].real.sum()
        if pl <= 1e-20 or pr <= 1e-20:
            return None, None
        corr = float(np.clip(x / np.sqrt(pl * pr), -1, 1))
        mono = max((pl + pr + 2 * x) / 4, 1e-30)
        return corr, float(max(10 * np.log10(mono / ((pl + pr) / 2)), analysis.FLOOR_DB))

    overall_corr = float(np.dot(left, right) / (np.sqrt(np.dot(left, left) * np.dot(right, right))
                                                + 1e-30))
    out = {"correlation": overall_corr, "mono_loss_db": stats(f > 0)[1], "bands": {}}
    for name, lo, hi in BANDS:
        if lo >= sr / 2:
            continue
        corr, loss = stats((f >= lo) & (f < hi))
        out["bands"][name] = {"hz": [lo, min(hi, sr / 2)], "correlation": corr,
                              "mono_loss_db": loss}
    return out


# --- the checks --------------------------------------------------------------------------------

def check_audio(audio: np.ndarray, sr: int, ceiling: float = -1.0, codecs=DEFAULT_CODECS,
                platforms=tuple(PLATFORMS), features: dict | None = None,
                coded: dict | None = None) -> dict:
    """Every check of the module docstring on ``audio`` (channels, samples).  ``features``:
    its :func:`automix.analysis.analyze`, when already measured; ``coded``: codec -> decoded
    true peak, when already measured (the codec loop's last round).  Returns
    ``{"checks": [Check dicts], "status": worst, "measurements": {...}}``."""
    audio = np.atleast_2d(np.asarray(audio, dtype=np.float64))
    from . import background

    codec_job = background.submit(coded_true_peaks, audio, sr, codecs) \
        if codecs and coded is None else None
    a = features or analysis.analyze(audio, sr)
    checks: list[Check] = []

    def add(name, value, unit, status, detail):
        checks.append(Check(name, None if value is None else float(value), unit, status, detail))

    silent = a["silent"]
    lufs, tp = a["integrated_lufs"], a["true_peak_dbtp"]
    add("integrated loudness", lufs, "LUFS", "fail" if silent else "info",
        "silent: nothing to deliver" if silent else "BS.1770-4, gated")
    add("short-term loudness max", a["short_term_lufs_max"], "LUFS", "info", "3 s windows")
    add("momentary loudness max", momentary_max_lufs(audio, sr), "LUFS", "info", "400 ms windows")
    add("loudness range", a["loudness_range_lu"], "LU",
        _below(a["loudness_range_lu"], 2.0) if not silent else "info",
        "EBU Tech 3342; under 2 LU: hardly any macro-dynamics left")
    add("true peak", tp, "dBTP", _above(tp, ceiling, 0.0),
        f"4x oversampled; ceiling {ceiling:+.1f} dBTP, over 0 dBTP clips")
    over, over0 = true_peak_overs(audio, ceiling)
    add("true-peak overs", over, "events", "fail" if over0 else ("warn" if over else "pass"),
        f"{over} over the ceiling, {over0} over 0 dBTP")
    add("PLR", a["plr_db"], "dB", "info" if silent else _below(a["plr_db"], 8.0, 5.0),
        "true peak to loudness ratio; under 8 dB: heavily limited, under 5 dB: crushed")
    for c, m in enumerate(audio):
        dc = _db(abs(float(m.mean())))
        add(f"DC offset {'LR'[c] if audio.shape[0] == 2 else 'mono'}", dc, "dBFS",
            _above(dc, -60.0, -40.0), "mean sample value; remove with a high-pass")
    runs = clipped_runs(audio)
    add("clipped-sample runs", sum(runs), "runs", _above(sum(runs), 0, 10),
        f"runs of {CLIP_RUN}+ samples at full scale, per channel {runs}")
    stereo = {}
    if audio.shape[0] == 2:
        cl, cr = channel_loudness(audio, sr)
        bal = cl - cr if cl > -70 and cr > -70 else 0.0
        add("L/R balance", bal, "dB", _above(abs(bal), 1.0, 3.0),
            "K-weighted loudness left minus right")
        stereo = band_stereo(audio, sr)
        identical = np.array_equal(audio[0], audio[1])
        add("phase correlation", stereo["correlation"], "",
            "pass" if identical else _below(stereo["correlation"], 0.2, -0.2),
            "+1 mono, 0 unrelated, -1 opposite")
        loss = stereo["mono_loss_db"]
        if loss is not None:
            add("mono fold-down loss", loss, "dB", _below(loss, -4.5, -8.0),
                "(L+R)/2 against the channels' mean level; independent channels: -3 dB")
        for name, b in stereo["bands"].items():
            if b["correlation"] is None:
                continue
            bass = name == "bass"
            lo, hi = b["hz"]
            add(f"correlation {name} ({lo:g}-{hi:g} Hz)", b["correlation"], "",
                _below(b["correlation"], 0.7, 0.0) if bass else _below(b["correlation"], 0.0, -0.3),
                "bass should be near mono" if bass else "negative: cancels in mono")
            add(f"mono loss {name} ({lo:g}-{hi:g} Hz)", b["mono_loss_db"], "dB",
                _below(b["mono_loss_db"], -1.5, -3.5) if bass
                else _below(b["mono_loss_db"], -4.5, -8.0), "level lost folded to mono")
        bass = stereo["bands"].get("bass", {}).get("correlation")
        inverted = stereo["correlation"] < -0.5 and (bass is None or bass < -0.5)
        add("polarity", stereo["correlation"], "", "fail" if inverted else "pass",
            "one channel looks polarity-inverted: flip it" if inverted
            else "no channel inverted")
        w = a["width_db"]
        add("width", w, "dB", "pass" if w <= analysis.FLOOR_DB else _above(w, -3.0, 0.0),
            "side/mid energy; mono" if w <= analysis.FLOOR_DB else
            "side/mid energy; above 0 dB the side outweighs the mid")
    else:
        add("width", None, "", "info", "mono file")
    coded = codec_job.result() if codec_job is not None else dict(coded or {})
    for codec, peak in coded.items():
        if peak is None:
            add(f"true peak after {codec}", None, "dBTP", "info", "no encoder here")
        else:
            add(f"true peak after {codec}", peak, "dBTP", _above(peak, ceiling + 0.05, 0.0),
                "decoded " + ("MP3 128 kbps" if codec == "mp3" else f"{codec} ~128 kbps"))
    platform_rows = {}
    for name in platforms:
        p = PLATFORMS[name]
        n = normalised(p, lufs, tp)
        platform_rows[name] = n
        if silent or p.normalisation is None:
            status, detail = "info", "no normalisation: plays as it is"
        else:
            down = -n["gain_db"]
            quieter = p.play_lufs - n["plays_at_lufs"]
            # a music master is always turned down for broadcast: no verdict there
            status = ("info" if p.normalisation == "programme" else
                      "warn" if down > 6.0 or quieter > 1.0 else "pass")
            detail = (f"gain {n['gain_db']:+.1f} dB -> {n['plays_at_lufs']:.1f} LUFS, "
                      f"peak {n['peak_dbtp']:+.1f} dBTP")
            if down > 6.0 and status == "warn":
                detail += "; turned down > 6 dB: limiting bought no loudness here"
            elif quieter > 1.0:
                detail += f"; plays {quieter:.1f} LU under the others"
        add(f"{name} normalisation", n["gain_db"], "dB", status, detail)
    # overall: the worst verdict ("info" rows carry none)
    worst = max((c.status for c in checks if c.status != "info"), key=STATUSES.index,
                default="pass")
    return {"status": worst, "checks": [c.as_dict() for c in checks],
            "measurements": {"analysis": a, "stereo": stereo, "codecs": coded,
                             "platforms": platform_rows, "ceiling_dbtp": ceiling}}


_MARK = {"pass": "ok  ", "info": "    ", "warn": "WARN", "fail": "FAIL"}


def format_checks(result: dict) -> str:
    lines = []
    for c in result["checks"]:
        value = "" if c["value"] is None else f"{c['value']:.2f} {c['unit']}".strip()
        lines.append(f"{_MARK[c['status']]}  {c['name']:<32} {value:>14}   {c['detail']}")
    lines.append(f"overall: {result['status']}")
    return "\n".join(lines)


# --- stems (the mix job) ---------------------------------------------------------------------

def stem_checks(paths, sample_rate: int) -> list[Check]:
    """:func:`stem_checks_audio` on stem files (read and resampled to ``sample_rate``); the mix
    job passes the stems it holds in memory instead."""
    from .audio import read_audio, resample

    names, audios = [], []
    for p in paths:
        audio, sr = read_audio(p)
        names.append(p.name)
        audios.append(resample(audio, sr, sample_rate))
    return stem_checks_audio(names, audios, sample_rate)


def stem_checks_audio(names, audios, sample_rate: int, pairs=None, fixes=None) -> list[Check]:
    """Checks on the stems of a mix job (``audios``: (channels, n) at ``sample_rate``):
    clipping inside each stem, and, for pairs that carry one source twice (two microphones on
    one source), inverted polarity and a time offset (:mod:`automix.stem_align`: the lag by
    GCC-PHAT within +-10 ms, the correlation in the low band, 10 s from the middle of the
    shortest stem).  ``pairs``: the measurement when the caller made it already; ``fixes``
    (stem index -> :class:`automix.stem_align.Fix`): what the mix job fixed (such a pair
    passes, its row saying how)."""
    from . import stem_align

    if pairs is None:
        start = stem_align.excerpt_start([a.shape[1] for a in audios], sample_rate)
        pairs = stem_align.measure([stem_align.mono_excerpt(a, start, sample_rate)
                                    for a in audios], sample_rate)
    return ([stem_clip_check(name, audio) for name, audio in zip(names, audios)]
            + stem_pair_checks(names, sample_rate, pairs, fixes))


def stem_clip_check(name: str, audio: np.ndarray) -> Check:
    """Clipping inside one stem (runs of CLIP_RUN+ samples at full scale)."""
    runs = sum(clipped_runs(audio))
    return Check(f"stem clipping {name}", runs, "runs", _above(runs, 0, 10),
                 f"runs of {CLIP_RUN}+ samples at full scale inside the stem")


def stem_pair_checks(names, sample_rate: int, pairs, fixes=None) -> list[Check]:
    """A row per pair of stems that carry one source twice (:func:`stem_checks_audio`)."""
    from . import stem_align

    checks = []
    fixes = fixes or {}
    for p in pairs:
        if not p.correlated:
            continue
        problems = stem_align.describe(p, names, sample_rate)
        what = f"one source on two tracks (r {p.r:.2f}, low band {p.r_low:.2f})"
        fixed = [stem_align.fix_note(names[k], fixes[k], sample_rate) for k in (p.i, p.j)
                 if k in fixes]
        if not problems:
            status, detail = "pass", what + ": in phase and in time"
        elif fixed and p.fixable:
            status, detail = "pass", f"{what}: {'; '.join(problems)}; fixed: {'; '.join(fixed)}"
        else:
            why = ("the mix job fixes it" if p.fixable else
                   f"the low-band correlation is under {stem_align.FIX_CORRELATION:g}")
            status, detail = "warn", (f"{what}: {'; '.join(problems)} (not fixed: {why}; by "
                                      "hand: tracks[].polarity, delay_samples)")
        checks.append(Check(f"stem pair {names[p.i]} / {names[p.j]}", p.r, "", status, detail))
    return checks
