"""Settings that move with the song: sections, the lead rider, section contrast, de-esser rule.

:func:`plan` takes the stems (as arrays at the project rate) and a validated settings dict (the
static mix) and returns the settings with gain automation lanes added (version 2), the
sections, and notes.  It is the one call the mix stage makes between the fit and the render.

How the stems are taken "as they sit in the mix": each stem times its static fader gain (a mono
stem at the centre's -3 dB pan law; mute: left out).  EQ and compression are not applied here
(rendering every strip would cost a full render): they shift a stem's loudness by about the same
amount in every section, so the rider's section-to-section moves are right, and its absolute
margin is off by what the strip's EQ and compressor change the lead's loudness relative to the
rest (typically a dB or two).

Lanes: the rider's lane on the lead's fader (:func:`automix.lead.rider_lane`, within +-6 dB) and
the contrast lane (:func:`automix.lead.contrast_lane`, within +-3 dB) on every track's fader
(the same gain on each: the mix bus moves, and the lead's margin stays).  Both hold one gain
per section, so on the lead they add section by section into one lane.  ``static=True`` (the
``--static`` option) adds no lane: today's static mix.

The contrast lane follows the reference's loudness range (LRA), given as ``reference_lra_lu``
or measured on ``reference``.

The de-esser rule (:func:`automix.dsp.deesser.deesser_for`) is evaluated on every stem whose name
says voice (:func:`automix.lead.is_vocal_name`: lead or backing), against the reference's
sibilance; its settings are returned in
``TimePlan.deesser`` (the job puts them in ``tracks[].deesser``, a strip processor of the
console graph).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from . import analysis
from . import lead as lead_mod
from . import sections as sections_mod
from .dsp import deesser
from .dsp.eq import sos_filter_inplace
from .errors import AutomixError
from .options import check_lead_margin


@dataclass
class TimePlan:
    settings: dict
    sections: list                       # automix.sections.Section
    lead: lead_mod.LeadChoice | None = None
    ride: lead_mod.Ride | None = None
    contrast: lead_mod.Contrast | None = None
    deesser: dict = field(default_factory=dict)      # track name -> de-esser settings
    notes: list = field(default_factory=list)


def _k_weight_inplace(x: np.ndarray, sr: int) -> None:
    """:func:`automix.analysis.k_weight` of a C-contiguous float64 (2, n) array, in place
    (the same two biquads and recursion, without its copies of a full-length signal)."""
    sos = np.array([np.concatenate([b, a]) for b, a in analysis.k_weighting_coefficients(sr)])
    sos_filter_inplace(sos, x, np.zeros((sos.shape[0], x.shape[0], 2)))


def _fader(track: dict, audio) -> float:
    """The linear gain a stem sits at in the mix: its fader, the centre's -3 dB pan law for a
    mono stem (carried on both sides), 0 when muted."""
    if track.get("mute"):
        return 0.0
    g = 10.0 ** (float(track.get("gain_db", 0.0)) / 20.0)
    a = np.asarray(audio)
    return g / math.sqrt(2.0) if a.ndim == 1 or a.shape[0] == 1 else g


def plan(stems: dict, settings: dict, *, lead: str | None = None,
         lead_margin_db: float | None = None, static: bool = False,
         reference: np.ndarray | None = None, dynamics_amount: float = 1.0,
         groups: dict | None = None, keep_lead_level: bool = False,
         reference_lra_lu: float | None = None) -> TimePlan:
    """Sections, lanes and the de-esser rule for the static mix ``settings`` (module doc).

    ``stems``: ``{track name: (channels, samples)}`` for the tracks of ``settings``;
    ``lead``: a track name, ``"none"``, or None (found automatically); ``lead_margin_db``: the
    target margin (None: :data:`automix.lead.DEFAULT_MARGIN_DB`); ``reference``: the reference
    audio at the project rate (for the contrast and sibilance targets); ``keep_lead_level``
    (with ``lead_margin_db`` None): no margin target, the rider only evens the lead's margin out
    across sections around its mean (the job's default: its static faders were fitted to the
    reference, so the lead's average level already follows it)."""
    sr = int(settings["sample_rate"])
    if lead_margin_db is not None:
        margin = check_lead_margin(lead_margin_db)
    else:
        margin = None if keep_lead_level else lead_mod.DEFAULT_MARGIN_DB
    tracks = {t["name"]: t for t in settings["tracks"]}
    missing = [name for name in tracks if name not in stems]
    if missing:
        raise AutomixError(f"no audio for track {missing[0]!r}")
    gain = {name: _fader(tracks[name], stems[name]) for name in tracks}
    n = max(np.asarray(stems[name]).shape[-1] for name in tracks)
    mix32 = np.zeros((2, n), dtype=np.float32)
    for name in tracks:
        a = np.asarray(stems[name], dtype=np.float32)
        mix32[:, :a.shape[-1]] += a * np.float32(gain[name])   # (1, n) broadcasts to both sides
    feats = sections_mod.stem_features({name: stems[name] for name in tracks}, sr,
                                       mono=mix32.mean(axis=0))
    mix = mix32.astype(np.float64)      # the K-filter works in place on float64
    feats.power *= np.array([gain[name] ** 2 for name in feats.names])[:, None]
    choice = None if static else lead_mod.find_lead(
        {k: v for k, v in stems.items() if k in tracks and not tracks[k].get("mute")}, sr, lead,
        hop_power=dict(zip(feats.names, feats.power)))
    # K-weighted lead and rest: the K-filter is linear, so their sum is the mix's (one filter
    # pass each, shared by the sections' loudness, the rider and the contrast)
    k_lead = lead_st = rest_st = None
    if choice is not None and choice.name is not None:
        k_lead = np.zeros((2, n))
        a = np.asarray(stems[choice.name])
        k_lead[:, :a.shape[-1]] = a * gain[choice.name]
        mix -= k_lead                                                # the rest, for now
        _k_weight_inplace(mix, sr)
        _k_weight_inplace(k_lead, sr)
        rest_st = analysis.short_term_loudness_of_weighted(mix, sr)
        lead_st = analysis.short_term_loudness_of_weighted(k_lead, sr)
        mix += k_lead                                                # the whole mix again
    else:
        _k_weight_inplace(mix, sr)
    weighted = mix
    found = sections_mod.find_sections({}, sr, groups=groups, weighted_sum=weighted,
                                       features=feats)
    out = TimePlan(settings, found.sections, lead=choice)
    edges = [0.0] + [float(b) for b in found.boundaries_s] + [n / sr]
    out.notes.append(f"{len(found.sections)} sections: "
                     + ", ".join(s.label for s in found.sections))
    if static:
        out.notes.append("--static: no automation")
        return out
    gains = {name: np.zeros(len(edges) - 1) for name in tracks}
    if k_lead is not None:
        # the sections where the lead plays (as the labels say): a margin measured where it
        # only rings out or plays a note or two is not one to even out
        plays = sections_mod.playing(feats.power[feats.names.index(choice.name)], edges)[0]
        ride = lead_mod.rider_from_loudness(
            lead_st, rest_st, edges, margin, plays=plays,
            tolerance_db=lead_mod.RIDE_TOLERANCE_DB if margin is None else 0.0)
        sits = lead_mod.mean_margin(ride.margins_before, edges)
        if margin is None and lead is None and sits is not None \
                and sits < lead_mod.BACKGROUND_MARGIN_DB:
            # found, not named: a part the static mix keeps this far under the rest is not
            # carried as a lead; evening it out would only move a background part around
            out.notes.append(f"no lead rider: {choice.name} ({choice.reason}) sits "
                             f"{-sits:.1f} dB under the rest of the mix: a background part")
        else:
            out.ride = ride
            gains[choice.name] += np.asarray(ride.gains_db)
            lo, hi = min(ride.gains_db), max(ride.gains_db)
            goal = ("its margin evened out across sections (within "
                    f"{lead_mod.RIDE_TOLERANCE_DB:g} dB)" if margin is None
                    else f"a {margin:+.1f} dB margin")
            out.notes.append(f"lead: {choice.name} ({choice.reason}); rider {lo:+.1f}..{hi:+.1f} "
                             f"dB for {goal}" + (" (held at +-6 dB)" if ride.clipped else ""))
    else:
        out.notes.append(f"no lead rider: {choice.reason}")
    # the de-esser rule on every voice (by name: lead or backing), whether ridden or not
    vocals = [name for name in tracks if not tracks[name].get("mute")
              and lead_mod.is_vocal_name(name)]
    if reference is not None and vocals:
        ref_sib = deesser.sibilance_db(reference, sr)
        for name in vocals:
            params = deesser.deesser_for(stems[name], sr, ref_sib, vocal_like=True)
            if params:
                out.deesser[name] = params
                out.notes.append(f"de-esser on {name}: threshold {params['threshold_db']:.1f} "
                                 f"dB (its sibilance is above the reference's "
                                 f"{ref_sib:.1f} dB)")
    if (reference is not None or reference_lra_lu is not None) and dynamics_amount > 0:
        if reference_lra_lu is None:
            reference_lra_lu = analysis.loudness_range(
                analysis.short_term_loudness(np.asarray(reference), sr))
        if out.ride is not None:
            # the mix with the ridden lead, window by window: the rest's power plus the
            # lead's times its section gain squared (lead and rest taken as uncorrelated)
            g = lead_mod._windows_gain(len(lead_st), edges, gains[choice.name])
            st = 10 * np.log10(10 ** (rest_st / 10) + 10 ** ((lead_st + g) / 10))
        else:
            st = found.short_term_lufs
        out.contrast = lead_mod.contrast_lane(st, edges, reference_lra_lu, dynamics_amount)
        c = out.contrast
        if c.lane["points"]:
            for name in tracks:
                gains[name] += np.asarray(c.gains_db)
            out.notes.append(f"section contrast: loudness range {c.lra_mix:.1f} LU -> "
                             f"{c.lra_planned:.1f} LU (reference {c.lra_reference:.1f} LU)")
    new = dict(settings, version=2, tracks=[dict(t) for t in settings["tracks"]])
    for t in new["tracks"]:
        lane = lead_mod.section_lane(edges, gains[t["name"]])
        if lane["points"]:
            t["automation"] = dict(t.get("automation") or {}, gain_db=lane)
    out.settings = new
    return out
