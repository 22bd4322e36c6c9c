"""The mastering stage: master chain settings for a mix so the master matches a reference.

Data flow (one way): the mix and its measurements -> the tone fit on spectra
(:mod:`automix.match`) -> the glue compressor from a loudness-range search (and a PLR one when
the mix through the fitted EQ is denser than the aim) -> the pre-limiter chain rendered by
the block executor -> gain and limiter from the loudness search (:mod:`automix.loudness_search`)
-> optionally the codec-safe ceiling loop (:mod:`automix.codec_safe`).  Used by ``automix``,
``automix master`` and ``automix album``.
"""
from __future__ import annotations

import itertools
from concurrent.futures import Future

import numpy as np
import torch

from . import analysis, background
from .console.blocks import (BLOCK, CompressorProbe, MasterPre, apply_limiter_inplace, compress,
                             limit_with_envelope)
from .loudness_search import LIMITER_RELEASES_MS, loudness_stage
from .match import (DEFAULT_MATCH_EQ, EQ_GAIN_KEYS, WIDENER_DELAY_MS, Spectra, Target,
                    fit_master_tone, graphic_eq_settings, predict_master)
from .params import MASTER_SPECS, defaults
from .settings import master_from_params, tidy_master

PROBE_MIN_S = 90.0            # longer mixes: the master's first pass runs on excerpts
PROBE_PARTS, PROBE_PART_S = 6, 10.0


def _compress(audio: np.ndarray, comp: dict, sr: int) -> np.ndarray:
    """``audio`` through the compressor ``comp`` (the block executor's): a new array."""
    return compress(audio, comp, sr)


def probe_excerpts(audio: np.ndarray, sr: int, parts: int | None = None,
                   seconds: float | None = None) -> np.ndarray:
    """``parts`` evenly spaced excerpts of ``seconds`` each (default ``PROBE_PARTS`` x
    ``PROBE_PART_S``), joined with 5 ms fades (no clicks at the seams): a long song's
    statistics at a fraction of its length."""
    parts, seconds = parts or PROBE_PARTS, seconds or PROBE_PART_S
    run, n = int(seconds * sr), audio.shape[1]
    if parts * run >= n:
        raise ValueError("probe_excerpts: the excerpts would not be shorter than the audio")
    return _join_faded([audio[:, s:s + run] for s in _excerpt_starts(n, run, parts)], sr)


def _excerpt_starts(n: int, run: int, parts: int) -> np.ndarray:
    return np.linspace(0, n - run, parts).round().astype(int)


def _join_faded(pieces: list[np.ndarray], sr: int) -> np.ndarray:
    """Excerpts of equal length joined with 5 ms fades (no clicks at the seams)."""
    run = pieces[0].shape[1]
    fade = np.ones(run, np.float32)
    ramp = np.sin(np.linspace(0, np.pi / 2, int(0.005 * sr))) ** 2
    fade[:ramp.size], fade[run - ramp.size:] = ramp, ramp[::-1]
    return np.concatenate([p * fade for p in pieces], axis=1)


def choose_compressor(mix: np.ndarray, sr: int, target_lra: float, current_lra: float,
                      plr_short_db: float = 0.0) -> dict:
    """Master glue compressor whose measured loudness range comes closest to ``target_lra``
    (a small search on a 4x-decimated copy; no compression when the mix is already tighter).

    ``plr_short_db`` > 0: the mix's peak-to-loudness ratio is that far under the master's aim,
    and the candidates are also scored on the PLR they leave missing (1 dB of PLR counts as
    1 LU of loudness range): a compressor whose attack lets the transients through lowers the
    loudness more than the peaks."""
    if current_lra <= target_lra + 0.5 and plr_short_db <= PLR_SHORT_DB:
        return {}
    low = np.ascontiguousarray(mix[:, ::4], dtype=np.float64)  # the statistics survive this
    lsr = sr // 4
    peak_db = 20 * np.log10(np.abs(low).max() + 1e-12)   # the thresholds' reference
    # the compressor's gain moves slowly against K-weighting: K(compressed) ~ K(low) x gain,
    # so the detector level and the K-weighting are computed once for all candidates
    probe, weighted = CompressorProbe(low), analysis.k_weight(low, lsr)
    if plr_short_db > 0:  # the PLR search only: the full-rate peaks (the LRA search needs none)
        n = low.shape[1]
        # the full-rate peak over the 4 samples under each decimated one (the gain holds over them)
        peaks = np.pad(np.abs(mix).max(axis=0), (0, 4 * n - mix.shape[1])).reshape(n, 4).max(axis=1)
        plr = 20 * np.log10(peaks.max() + 1e-12) - analysis.loudness_of_weighted(weighted, lsr)
    best, best_cost = {}, abs(current_lra - target_lra) + max(0.0, plr_short_db)
    # for PLR also a 1 s release: the bodies stay turned down between onsets
    releases = (300.0, 1000.0) if plr_short_db > 0 else (300.0,)
    for depth, ratio, release in itertools.product((6.0, 10.0, 14.0, 18.0), (1.5, 2.0, 3.0, 4.0),
                                                   releases):
        comp = {"threshold_db": peak_db - depth, "ratio": ratio, "attack_ms": 30.0,
                "release_ms": release, "knee_db": 6.0, "makeup_db": 0.0}
        gain = probe.gain(comp, lsr)
        lra = analysis.loudness_range(analysis.short_term_loudness_of_weighted(weighted, lsr, gain))
        cost = abs(lra - target_lra) + 0.05 * ratio + 0.02 * depth
        if plr_short_db > 0:  # the PLR the compressor adds: peaks and loudness under one gain
            added = (20 * np.log10((peaks * gain).max() + 1e-12)
                     - analysis.loudness_of_weighted(weighted, lsr, gain) - plr)
            cost += max(0.0, plr_short_db - added)
        if cost < best_cost:
            best, best_cost = comp, cost
    return best


# A master denser than its aim (issue 17, the mixing cases): nothing after the compressor raises
# the peak-to-loudness ratio (the limiter only lowers it), so when the mix through the master's
# tone EQ has a PLR further than this under the aim, the glue compressor is chosen for the PLR
# as well as the loudness range.  The aim is the target PLR, capped by what the true-peak
# ceiling allows at the loudness goal (ceiling - goal): the ceiling wins over PLR matching.
PLR_SHORT_DB = 0.5


def _pre_limiter(mix: np.ndarray, master: dict, sr: int, compressor: dict) -> np.ndarray:
    """``mix`` through ``master``'s chain before the limiter, with ``compressor``, at gain 0 dB
    (in ``mix``'s dtype)."""
    chain = MasterPre(tidy_master(dict(master, compressor=compressor, gain_db=0.0), sr), sr)
    x = np.empty_like(mix)
    for s in range(0, mix.shape[1], BLOCK):
        x[:, s:s + BLOCK] = chain.process(mix[:, s:s + BLOCK])
    return x


def _plr_db(x: np.ndarray, sr: int) -> float:
    return 20 * np.log10(analysis.true_peak_linear(x) + 1e-12) - analysis.integrated_loudness(x, sr)


def compressor_for_plr(mix: np.ndarray, master: dict, sr: int, target_lra: float,
                       plr_aim: float, pre: np.ndarray) -> dict | None:
    """A glue compressor chosen for the PLR too, or None to keep ``master``'s (the loudness-range
    choice).  ``pre``: the mix (or the first pass's excerpts of it) through ``master``'s chain
    before the limiter, at any gain; when its PLR is more than PLR_SHORT_DB under ``plr_aim``,
    :func:`choose_compressor` runs on ``mix`` (the same signal as ``pre``: the whole mix, or the
    first pass's excerpts of a long one) through the chain without a compressor, with the
    shortfall.  Measured after the EQ: it moves a mix's PLR by several dB (a limited mix's
    flattened peaks grow again through the EQ's phase shifts)."""
    if plr_aim - _plr_db(pre, sr) <= PLR_SHORT_DB:
        return None
    x = _pre_limiter(mix, master, sr, {})
    lra = analysis.loudness_range(analysis.short_term_loudness(x, sr))
    return choose_compressor(x, sr, target_lra, lra, plr_aim - _plr_db(x, sr))


# The loudness goal of an unmastered reference (issue 17 item 3).  A producer's unmastered mix
# (a float bounce) can peak far above full scale: the LMMS demo songs' mixes peak at +3..+8 dBTP
# with a peak-to-loudness ratio (PLR) of 14-16 dB.  Matching such a reference's loudness under
# the ceiling limits its peaks by (true peak - ceiling) dB, 4-9 dB harder than its producer
# ever did, and that moves the master away from the mix (human benchmark: master 3.61 dB log-mel
# from the producer's mix against mix.wav's 3.15).  The ceiling always wins (team decision), so
# the goal gives: it is lowered by the reference's excess peak beyond a margin the limiter takes
# without harm.  Masters are told apart by their density: a finished master, even one whose
# true peak is well above the ceiling (clipped loud masters: +2..+3.4 dBTP in the real-music
# benchmark cases, +4..+6 dBTP once decoded from Vorbis/MP3), is limited to a PLR of 7-13 dB,
# which matching its loudness keeps; the rule fades out between the two PLRs below.
UNMASTERED_MARGIN_DB = 2.5        # peaks up to this far over the ceiling: the limiter's ordinary job
UNMASTERED_PLR_DB = (13.0, 14.0)  # PLR at/under the first: a master (kept); at/over the second: not


def reference_loudness(reference: dict, ceiling: float) -> tuple[float, float]:
    """(loudness goal in LUFS, dB it was lowered by) for ``reference``'s features under the
    true-peak ``ceiling``: its integrated loudness, lowered by ``max(0, true peak - ceiling -
    UNMASTERED_MARGIN_DB)`` scaled by how far its PLR is into the unmastered range (0 at 13 dB,
    1 at 14 dB and above).  Ordinary masters (true peak under ceiling + 2.5 dB, or PLR <= 13 dB)
    keep their loudness.  An explicit ``--target-lufs`` bypasses this."""
    lufs = float(reference["integrated_lufs"])
    excess = float(reference.get("true_peak_dbtp", -np.inf)) - ceiling - UNMASTERED_MARGIN_DB
    lo, hi = UNMASTERED_PLR_DB
    unmastered = float(np.clip((float(reference.get("plr_db", 0.0)) - lo) / (hi - lo), 0.0, 1.0))
    lowered = max(0.0, excess) * unmastered
    return lufs - lowered, lowered


def measure_mix(mix: np.ndarray, sr: int) -> tuple[dict, Spectra]:
    """The mix's analysis and the spectra the master fit needs: one set of FFTs for both."""
    spectra = Spectra.of(mix, sr, analysis.welch_segment(sr, mix.shape[1]))
    return analysis.analyze(mix, sr, spectra=(spectra.mid, spectra.side)), spectra


def master_stage(mix: np.ndarray, sr: int, reference: dict, mix_features: dict,
                 target_lufs: float | None, ceiling: float, amounts: Amounts, device: str = "cpu",
                 predicted: dict | None = None, refine_steps: int = 300,
                 spectra: Spectra | None = None, match_eq: str = DEFAULT_MATCH_EQ):
    """Master chain settings for ``mix`` (2, T) so the master matches ``reference``.

    ``predicted``: the network's master parameters (physical), the start of the tone fit; with
    ``refine_steps`` 0 they are used as they are (EQ and width scaled by the amounts, the
    network's compressor instead of the loudness-range search).  The gain and limiter always
    come from the loudness search, which measures the rendered result.  ``spectra``: the
    mix's (:func:`measure_mix`), when already computed.  ``match_eq``: the match EQs' layout
    (:data:`automix.match.MATCH_EQS`; ``automix album`` uses the finer "third-octave").
    """
    start = {k: v for k, v in defaults(MASTER_SPECS, (), torch.float64).items()}
    if predicted is not None:
        start.update({k: torch.as_tensor(v, dtype=torch.float64) for k, v in predicted.items()
                      if not k.startswith("limiter.") and k != "gain_db"})
        for k in EQ_GAIN_KEYS:
            start[k] = start[k] * amounts.tone
        start["width"] = 1.0 + (start["width"] - 1.0) * amounts.width
    spectra = spectra or Spectra.of(mix, sr)
    target = predict_master(spectra, start, sr).moved(
        Target.of(reference), Target.of(mix_features), amounts.tone, amounts.width)
    mix_lra = mix_features["loudness_range_lu"]
    target_lra = mix_lra + amounts.dynamics * (reference["loudness_range_lu"] - mix_lra)
    if predicted is not None and refine_steps == 0:
        compressor = Future()
        compressor.set_result(master_from_params(start)["compressor"] if amounts.dynamics > 0 else {})
    else:  # its numba kernels run beside the first tone fit
        compressor = background.submit(choose_compressor, mix, sr, target_lra, mix_lra)
    goal = reference_loudness(reference, ceiling)[0] if target_lufs is None else float(target_lufs)
    goal = mix_features["integrated_lufs"] + amounts.loudness * (goal - mix_features["integrated_lufs"])
    mix_plr = mix_features["plr_db"]
    target_plr = mix_plr + amounts.dynamics * (reference["plr_db"] - mix_plr)
    # Two passes: the first only measures how the compressor and limiter tilt the spectrum
    # (heavy limiting dulls the top), the second aims off by that.  On a long mix the first
    # pass runs on evenly spaced excerpts: the tilt is a smooth, slowly varying correction.
    two_passes = refine_steps > 0 and amounts.tone > 0
    probe, probe_spectra, probe_goal = mix, spectra, goal
    if two_passes and mix.shape[1] > PROBE_MIN_S * sr:
        probe = probe_excerpts(mix, sr)
        probe_spectra = Spectra.of(probe, sr, spectra.nperseg)
        probe_goal = goal + analysis.integrated_loudness(probe, sr) - mix_features["integrated_lufs"]
    aim = target
    for attempt in range(2):
        on_probe = attempt == 0 and two_passes
        signal, signal_goal = (probe, probe_goal) if on_probe else (mix, goal)
        if refine_steps > 0:  # the second pass continues from the first: fewer steps
            fitted, _ = fit_master_tone(spectra, aim, start, sr, device=device,
                                        steps=refine_steps if attempt == 0 else max(refine_steps // 3, 1),
                                        init=None if attempt == 0 else fitted,
                                        match_eq=match_eq)
        else:
            fitted = start
        master = master_from_params(fitted)
        if "graphic" in fitted:
            master["eq"] += graphic_eq_settings(fitted["graphic"], sr, match_eq=match_eq)
        if "side_graphic" in fitted:
            master["side_eq"] = graphic_eq_settings(fitted["side_graphic"], sr, match_eq=match_eq)
        if float(fitted.get("widener", 0.0)) > 0:
            master["widener"] = {"gain_db": round(10 * np.log10(float(fitted["widener"])), 3),
                                 "delay_ms": WIDENER_DELAY_MS}
        # Dynamics: a reference denser than the ceiling forces (peaks well under it at this
        # loudness) is matched by limiting to its peak-to-loudness ratio: a lower limiter ceiling.
        # (at most 6 dB under the ceiling: beyond that the limiter would be heard)
        # (rounded down to the 0.01 dB the file keeps: never above the ceiling asked for)
        master["limiter"]["ceiling_dbtp"] = np.floor(100 * float(np.clip(
            goal + target_plr, ceiling - 6.0, ceiling)) + 1e-6) / 100
        if attempt == 0:
            comp = compressor.result()
        master["compressor"] = comp
        master["gain_db"] = 0.0
        master = tidy_master(master, sr)  # rendered as settings.json will say it
        pre = _pre_limiter(signal, master, sr, master["compressor"])
        # the PLR choice: once, in the first pass (its signal: the whole mix, or its excerpts
        # when long), when this pass's pre-limiter signal falls short of the aim
        if attempt == 0 and amounts.dynamics > 0 and not (predicted is not None
                                                          and refine_steps == 0):
            plr_comp = compressor_for_plr(signal, master, sr, target_lra,
                                          min(target_plr, ceiling - goal), pre)
            if plr_comp is not None:
                comp = master["compressor"] = plr_comp
                master = tidy_master(master, sr)
                pre = _pre_limiter(signal, master, sr, master["compressor"])
        # the second pass starts from the release the first one needed (on the same signal)
        releases = LIMITER_RELEASES_MS if attempt == 0 or probe is not mix else tuple(
            r for r in LIMITER_RELEASES_MS if r <= loud["limiter"]["release_ms"])
        loud = loudness_stage(pre, master["limiter"], signal_goal, sr, releases)
        master["gain_db"], master["limiter"] = loud["gain_db"], loud["limiter"]
        master = tidy_master(master, sr)
        gain = master["gain_db"]
        if attempt == 1 or not two_passes:
            break
        lim = master["limiter"]
        limited = limit_with_envelope(pre, loud["envelope"], gain, lim, sr)
        got = Target.of({"tonal_balance": analysis.tonal_balance(limited, sr),
                         "width_db": analysis.stereo_width_db(limited)})
        aim = aim.shifted(predict_master(probe_spectra, fitted, sr, match_eq), got)
    # The master itself, from the last pass's pre-limiter signal (rendered at gain 1): scaling
    # it by the gain is the render executor's own last operation before the limiter, so this is
    # bit-identical to render_master(mix, master) without running the chain a third time.
    final = pre * (10 ** (master["gain_db"] / 20))
    apply_limiter_inplace(final, master["limiter"], sr)
    # Codec-safe ceiling (automix/codec_safe.py, issue 20): inside a codec session (the CLI's
    # --codecs) the master is encoded/decoded and, if a decoded copy peaks over the ceiling,
    # redone with a lower limiter ceiling; outside one this returns master, final unchanged.
    from . import codec_safe
    master, final = codec_safe.apply(pre, master, final, goal, sr, ceiling)
    return master, goal, final


def _master_notes(settings: dict) -> list[str]:
    """What the master could not do as asked, or did in an unusual way, for the user."""
    master, a = settings["master"], settings["analysis"]
    notes = []
    target, ref = settings.get("target", {}), a.get("reference", {})
    if target.get("source") == "reference" and "integrated_lufs" in ref:
        goal, lowered = reference_loudness(ref, target["true_peak_dbtp"])
        if lowered > 0.05:
            notes.append(
                f"the reference peaks at {ref['true_peak_dbtp']:+.1f} dBTP with a PLR of "
                f"{ref['plr_db']:.1f} dB: an unmastered mix; matching its {ref['integrated_lufs']:.1f} "
                f"LUFS under the {target['true_peak_dbtp']:.1f} dBTP ceiling would limit its peaks "
                f"{ref['true_peak_dbtp'] - target['true_peak_dbtp']:.1f} dB harder than its producer "
                f"did, so its loudness is taken as {goal:.1f} LUFS ({lowered:.1f} LU lower; the "
                f"ceiling wins over loudness); --target-lufs sets the loudness yourself")
    short = settings["target"]["lufs"] - a["master"]["integrated_lufs"]
    if short > 0.5:
        notes.append(f"the master reads {a['master']['integrated_lufs']:.1f} LUFS, {short:.1f} LU "
                     f"short of the target {settings['target']['lufs']:.1f} LUFS: the limiter "
                     f"is at its limit (gain {master['gain_db']:+.0f} dB, release "
                     f"{master['limiter']['release_ms']:g} ms); louder would only distort")
    elif short < -0.5:
        notes.append(f"the master reads {a['master']['integrated_lufs']:.1f} LUFS, {-short:.1f} LU "
                     f"above the target {settings['target']['lufs']:.1f} LUFS: the master gain is "
                     f"at its lowest ({master['gain_db']:+.0f} dB)")
    if master.get("widener"):
        w = master["widener"]
        notes.append(f"the mix is narrow (width {a['mix']['width_db']:.0f} dB, the reference "
                     f"{a['reference']['width_db']:.0f} dB): the master's width comes partly from "
                     f"the widener (the mid, delayed {w['delay_ms']:g} ms, at "
                     f"{w['gain_db']:.1f} dB in the side); --width 0 keeps the mix's image")
    return notes
