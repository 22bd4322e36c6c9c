"""settings.json, schema v2 (v1 still read): load, validate, save, and conversion from console
parameters.

Version 2 adds the console graph's routing (:mod:`automix.console.graph`): ``groups`` (group
strips with their members), ``buses`` (send/return buses with a processor), ``sends``, and gain
automation lanes (``automation.gain_db``) on tracks, groups and buses.  A version 1 file has none
of these; it validates and renders exactly as before (tests/test_v1_fixtures.py).

The schema: docs/settings.md.  Validation is strict (unknown fields, wrong types and values
outside the limits below are errors) and every error is one line naming the field, e.g.
``settings.json: tracks[1].compressor.ratio = 0.5 is outside [1, 100]``.

The limits here bound what a person may write by hand; they are wider than the ranges the
network predicts in (:mod:`automix.params`).
"""
from __future__ import annotations

import json
import math
from pathlib import Path


from .audio import atomic_path
from .dsp.eq import BAND_TYPES, GAINLESS
from .errors import AutomixError
from .console.graph import (BUS_PROCESSORS, MASTER, MASTER_NAME, STRIP, RoutingError,
                            entry_from_params, route)
from .params import LIMITER_LOOKAHEAD_MS

FORMAT = "automix.settings"
VERSION = 2          # what automix writes
VERSIONS = (1, 2)    # what it reads
V2_FIELDS = ("groups", "buses", "sends", "sections")

# field -> (min, max); "nyquist" is replaced by sample_rate / 2 (exclusive)
LIMITS = {
    "freq_hz": (10.0, "nyquist"), "q": (0.1, 20.0), "eq_gain_db": (-30.0, 30.0),
    "threshold_db": (-90.0, 0.0), "ratio": (1.0, 100.0), "attack_ms": (0.01, 1000.0),
    "release_ms": (1.0, 10000.0), "knee_db": (0.0, 36.0), "makeup_db": (-48.0, 48.0),
    "track_gain_db": (-120.0, 48.0), "master_gain_db": (-48.0, 60.0),
    "pan": (-1.0, 1.0), "width": (0.0, 4.0),
    "ceiling_dbtp": (-30.0, 0.0), "lookahead_ms": (0.1, 50.0),
    "widener_gain_db": (-120.0, 0.0), "delay_ms": (1.0, 50.0),
    "time_s": (0.0, 86400.0), "lane_gain_db": (-120.0, 24.0), "ramp_ms": (0.0, 10000.0),
    "level_db": (-120.0, 24.0), "time_ms": (1.0, 5000.0),
    "predelay_ms": (0.0, 500.0), "rt60_s": (0.05, 30.0), "early_late_db": (-60.0, 30.0),
    "reverb_width": (0.0, 1.0), "feedback": (0.0, 0.99), "fade_s": (0.0, 600.0),
}
COMPRESSOR_DEFAULTS = {"threshold_db": 0.0, "ratio": 1.0, "attack_ms": 10.0, "release_ms": 150.0,
                       "knee_db": 6.0, "makeup_db": 0.0}
LIMITER_DEFAULTS = {"ceiling_dbtp": -1.0, "lookahead_ms": LIMITER_LOOKAHEAD_MS, "release_ms": 80.0}
TRACK_DEFAULTS = {"eq": [], "compressor": {}, "gain_db": 0.0, "pan": 0.0, "width": 1.0,
                  "mute": False, "automation": {}, "deesser": {}, "polarity": 1,
                  "delay_samples": 0}
# strip fields a version 1 file may not hold
V2_STRIP_FIELDS = ("automation", "deesser", "polarity", "delay_samples")
MAX_DELAY_S = 1.0   # a strip's delay_samples: at most this many seconds of samples
# a de-esser's fields when present (automix.dsp.deesser.DEFAULTS, rounded as written)
DEESSER_DEFAULTS = {"threshold_db": -30.0, "ratio": 4.0, "attack_ms": 1.0, "release_ms": 60.0,
                    "knee_db": 3.0, "freq_hz": 6324.6, "q": 1.05}
GROUP_DEFAULTS = {"members": [], "output": MASTER_NAME, **TRACK_DEFAULTS}
BUS_DEFAULTS = {"processor": {}, "eq": [], "gain_db": 0.0, "mute": False, "automation": {},
                "output": MASTER_NAME}
SEND_DEFAULTS = {"level_db": 0.0, "pre_fader": False}
LANE_DEFAULTS = {"ramp_ms": 10.0, "points": []}
DELAY_DEFAULTS = {"type": "delay", "time_ms": 250.0}
REVERB_DEFAULTS = {"type": "reverb", "predelay_ms": 20.0, "rt60_low_s": 1.8, "rt60_mid_s": 1.5,
                   "rt60_high_s": 0.8, "early_late_db": -6.0, "width": 1.0, "hp_hz": 150.0,
                   "lp_hz": 9000.0}
ECHO_DEFAULTS = {"type": "echo", "time_ms": 375.0, "feedback": 0.35, "damping_hz": 5000.0,
                 "mode": "stereo"}
BUS_PROCESSOR_DEFAULTS = {"delay": DELAY_DEFAULTS, "reverb": REVERB_DEFAULTS, "echo": ECHO_DEFAULTS}
ECHO_MODES = ("stereo", "pingpong")
# the limit (a LIMITS key) of each numeric field of a bus processor
PROCESSOR_LIMITS = {"time_ms": "time_ms", "predelay_ms": "predelay_ms", "rt60_low_s": "rt60_s",
                    "rt60_mid_s": "rt60_s", "rt60_high_s": "rt60_s",
                    "early_late_db": "early_late_db", "width": "reverb_width", "hp_hz": "freq_hz",
                    "lp_hz": "freq_hz", "feedback": "feedback", "damping_hz": "freq_hz"}
WIDENER_DEFAULTS = {"gain_db": -60.0, "delay_ms": 15.0}
MASTER_DEFAULTS = {"eq": [], "compressor": {}, "side_eq": [], "widener": {}, "width": 1.0,
                   "gain_db": 0.0, "limiter": {}}


# The step each field is written in: what an engineer would type (and what renders, so that
# `automix render` of a written file is bit-exact).  Times under 1 ms keep 0.01 ms.
RESOLUTION = {
    "freq_hz": 0.1, "q": 0.01, "eq_gain_db": 0.01, "threshold_db": 0.01, "ratio": 0.01,
    "attack_ms": 0.1, "release_ms": 0.1, "knee_db": 0.01, "makeup_db": 0.01,
    "track_gain_db": 0.01, "master_gain_db": 0.01, "pan": 0.001, "width": 0.001,
    "ceiling_dbtp": 0.01, "lookahead_ms": 0.1, "widener_gain_db": 0.01, "delay_ms": 0.1,
    "time_s": 0.001, "lane_gain_db": 0.01, "ramp_ms": 0.1, "level_db": 0.01, "time_ms": 0.1,
    "predelay_ms": 0.1, "rt60_s": 0.01, "early_late_db": 0.01, "reverb_width": 0.001,
    "feedback": 0.001, "fade_s": 0.001,
}
TIDY_TOP_HZ = 0.45  # x sample rate: where tidy() moves EQ bands placed at or above Nyquist


def rounded(value: float, limit: str) -> float:
    """``value`` in the step of :data:`RESOLUTION` (``limit`` names the field's kind)."""
    step = RESOLUTION[limit]
    if limit.endswith("_ms") and abs(value) < 1.0:
        step = 0.01
    decimals = max(0, -int(math.floor(math.log10(step) + 1e-9)))
    return float(round(value, decimals)) + 0.0  # + 0.0: no "-0.0" in the file


class _Checker:
    """Walks a settings dict.  Strict (``tidy`` False): any value outside its limits is an
    error.  ``tidy``: values are clamped into the limits and rounded to :data:`RESOLUTION`:
    for settings automix makes itself (a network or a fit may land a fader at +49 dB with 50
    stems, or an EQ band at Nyquist at 8 kHz)."""

    def __init__(self, source: str, sample_rate: float, tidy: bool = False):
        self.source = source
        self.nyquist = sample_rate / 2
        self.tidy = tidy
        self.version = VERSION

    def fail(self, where: str, msg: str):
        raise AutomixError(f"{self.source}: {where}{': ' if where else ''}{msg}")

    def obj(self, value, where, allowed, required=()):
        if not isinstance(value, dict):
            self.fail(where, f"expected an object, got {type(value).__name__}")
        for key in value:
            if key not in allowed:
                self.fail(where, f"unknown field {key!r} (allowed: {', '.join(sorted(allowed))})")
        for key in required:
            if key not in value:
                self.fail(where, f"missing field {key!r}")
        return value

    def number(self, value, where, limit):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            self.fail(where, f"expected a finite number, got {value!r}")
        lo, hi = LIMITS[limit]
        if self.tidy:
            top = TIDY_TOP_HZ * 2 * self.nyquist if hi == "nyquist" else hi
            return rounded(min(max(float(value), lo), top), limit)
        if hi == "nyquist":
            if not lo <= value < self.nyquist:
                self.fail("", f"{where} = {value} is outside [{lo:g}, {self.nyquist:g}) Hz")
        elif not lo <= value <= hi:
            self.fail("", f"{where} = {value} is outside [{lo:g}, {hi:g}]")
        return float(value)


def validate(settings, source: str = "settings", tidy: bool = False) -> dict:
    """Check a settings dict; return a normalised copy with defaults filled in.  ``tidy``:
    clamp and round the numbers instead of refusing them (:class:`_Checker`)."""
    c = _Checker(source, 1.0, tidy)
    c.obj(settings, "", {"format", "version", "sample_rate", "tracks", "master", "target",
                         "analysis", *V2_FIELDS},
          ("format", "version", "sample_rate", "tracks", "master"))
    if settings["format"] != FORMAT:
        c.fail("format", f"expected {FORMAT!r}, got {settings['format']!r}")
    version = settings["version"]
    if isinstance(version, bool) or version not in VERSIONS:
        c.fail("version", f"this automix reads versions 1 and 2, got {version!r}")
    c.version = version
    for key in V2_FIELDS:
        if key in settings and version < 2:
            c.fail(key, "needs \"version\": 2")
    sr = settings["sample_rate"]
    if isinstance(sr, bool) or not isinstance(sr, int) or not 8000 <= sr <= 384000:
        c.fail("sample_rate", f"expected an integer rate in Hz (8000..384000), got {sr!r}")
    c.nyquist = sr / 2
    tracks = settings["tracks"]
    if not isinstance(tracks, list) or not tracks:
        c.fail("tracks", "expected a non-empty list")
    out = {"format": FORMAT, "version": version, "sample_rate": sr,
           "tracks": [_track(c, t, f"tracks[{i}]") for i, t in enumerate(tracks)]}
    for key, check in (("groups", _group), ("buses", _bus), ("sends", _send)):
        if key in settings:
            if not isinstance(settings[key], list):
                c.fail(key, "expected a list")
            out[key] = [check(c, e, f"{key}[{i}]") for i, e in enumerate(settings[key])]
    if "sections" in settings:
        out["sections"] = _sections(c, settings["sections"])
    out["master"] = _master(c, settings["master"])
    if "target" in settings:
        t = c.obj(settings["target"], "target", {"lufs", "true_peak_dbtp", "source"})
        out["target"] = dict(t)
    if "analysis" in settings:
        a = c.obj(settings["analysis"], "analysis", {"reference", "mix", "master"})
        out["analysis"] = dict(a)
    names = [t["name"] for t in out["tracks"]]
    if len(set(names)) != len(names):
        c.fail("tracks", "track names must be unique")
    try:
        route(out)  # unknown members and buses, a track in two groups, cycles
    except RoutingError as exc:
        c.fail("", str(exc))
    return out


def _sections(c: _Checker, value, where="sections"):
    """Song sections (informational: the render does not read them): ``{start_s, end_s,
    label}`` in time order, not overlapping; :func:`check_sections_inside` checks them against
    the song's length once the stems are read."""
    if not isinstance(value, list):
        c.fail(where, "expected a list of {start_s, end_s, label} sections")
    out = []
    for i, sec in enumerate(value):
        w = f"{where}[{i}]"
        c.obj(sec, w, {"start_s", "end_s", "label"}, ("start_s", "end_s"))
        start = c.number(sec["start_s"], f"{w}.start_s", "time_s")
        end = c.number(sec["end_s"], f"{w}.end_s", "time_s")
        label = sec.get("label", "")
        if not isinstance(label, str):
            c.fail(f"{w}.label", f"expected a string, got {label!r}")
        if end <= start:
            c.fail(w, f"end_s ({end:g} s) must be after start_s ({start:g} s)")
        if out and start < out[-1]["end_s"]:
            c.fail(f"{w}.start_s", f"{start:g} s is before the end of sections[{i - 1}] "
                   f"({out[-1]['end_s']:g} s): sections must be in time order, not overlapping")
        out.append({"start_s": start, "end_s": end, "label": label})
    return out


SECTION_END_TOLERANCE_S = 0.0015   # end_s is written in 0.001 s steps


def check_sections_inside(settings: dict, length_s: float, source: str = "settings") -> None:
    """A one-line error when a section of ``settings`` ends after the song (``length_s``)."""
    for i, sec in enumerate(settings.get("sections") or []):
        if sec["end_s"] > length_s + SECTION_END_TOLERANCE_S:
            raise AutomixError(f"{source}: sections[{i}].end_s = {sec['end_s']:g} s is after "
                               f"the end of the song ({length_s:.3f} s)")


def tidy_master(master: dict, sample_rate: int) -> dict:
    """A master entry clamped and rounded as :func:`validate` with ``tidy`` writes it (for the
    master stage, which renders from it before the whole settings exist)."""
    return _master(_Checker("automix", sample_rate, tidy=True), master)


def tidy_track(track: dict, sample_rate: int) -> dict:
    """A track entry clamped and rounded (see :func:`tidy_master`)."""
    return _track(_Checker("automix", sample_rate, tidy=True), track, "track")


def _eq(c: _Checker, bands, where):
    if not isinstance(bands, list):
        c.fail(where, "expected a list of bands")
    out = []
    for i, band in enumerate(bands):
        w = f"{where}[{i}]"
        c.obj(band, w, {"type", "freq_hz", "gain_db", "q"}, ("type", "freq_hz"))
        kind = band["type"]
        if kind not in BAND_TYPES:
            c.fail(f"{w}.type", f"{kind!r} is not one of {', '.join(BAND_TYPES)}")
        b = {"type": kind, "freq_hz": c.number(band["freq_hz"], f"{w}.freq_hz", "freq_hz")}
        if kind in GAINLESS:
            if "gain_db" in band:
                c.fail(w, f"a {kind} band takes no gain_db")
        else:
            if "gain_db" not in band:
                c.fail(w, "missing field 'gain_db'")
            b["gain_db"] = c.number(band["gain_db"], f"{w}.gain_db", "eq_gain_db")
        b["q"] = c.number(band.get("q", 0.707), f"{w}.q", "q")
        out.append(b)
    return out


def _processor(c: _Checker, value, where, defaults, limits):
    c.obj(value, where, set(defaults))
    if not value:
        return {}
    return {k: c.number(value.get(k, d), f"{where}.{k}", limits.get(k, k))
            for k, d in defaults.items()}


def _name(c: _Checker, value, where):
    if not isinstance(value, str) or not value:
        c.fail(where, "expected a non-empty string")
    return value


def _bool(c: _Checker, value, where):
    if not isinstance(value, bool):
        c.fail(where, f"expected true or false, got {value!r}")
    return value


def _track(c: _Checker, t, where):
    allowed = {"name", "file", *TRACK_DEFAULTS} - (set(V2_STRIP_FIELDS) if c.version < 2 else set())
    c.obj(t, where, allowed, ("name", "file"))
    for key in ("name", "file"):
        _name(c, t[key], f"{where}.{key}")
    return {"name": t["name"], "file": t["file"], **_strip(c, t, where)}


def _strip(c: _Checker, t, where):
    """The fields of a track or group strip (automix.console.graph.STRIP)."""
    out = {"eq": _eq(c, t.get("eq", []), f"{where}.eq"),
           "compressor": _processor(c, t.get("compressor", {}), f"{where}.compressor",
                                    COMPRESSOR_DEFAULTS, {}),
           "gain_db": c.number(t.get("gain_db", 0.0), f"{where}.gain_db", "track_gain_db"),
           "pan": c.number(t.get("pan", 0.0), f"{where}.pan", "pan"),
           "width": c.number(t.get("width", 1.0), f"{where}.width", "width"),
           "mute": _bool(c, t.get("mute", False), f"{where}.mute")}
    if "automation" in t:
        out["automation"] = _automation(c, t["automation"], f"{where}.automation")
    if "deesser" in t:  # only when given: a strip without one renders as before
        out["deesser"] = _deesser(c, t["deesser"], f"{where}.deesser")
    # the alignment (automix.stem_align), only when given: whole numbers, so that a render
    # reproduces it exactly
    if "polarity" in t:
        if isinstance(t["polarity"], bool) or t["polarity"] not in (1, -1):
            c.fail(f"{where}.polarity", f"expected 1 or -1, got {t['polarity']!r}")
        out["polarity"] = int(t["polarity"])
    if "delay_samples" in t:
        d, top = t["delay_samples"], int(round(MAX_DELAY_S * 2 * c.nyquist))
        if isinstance(d, bool) or not isinstance(d, int) or not 0 <= d <= top:
            c.fail(f"{where}.delay_samples", f"expected a whole number of samples 0..{top} "
                   f"({MAX_DELAY_S:g} s at the sample rate), got {d!r}")
        out["delay_samples"] = d
    return out


def _deesser(c: _Checker, value, where):
    """A strip's de-esser (automix.dsp.deesser): an object, every field optional
    (DEESSER_DEFAULTS); ``{}`` is the default de-esser, not a bypass (leave the field out)."""
    c.obj(value, where, set(DEESSER_DEFAULTS))
    return {k: c.number(value.get(k, d), f"{where}.{k}", k) for k, d in DEESSER_DEFAULTS.items()}

def _automation(c: _Checker, value, where):
    """Automation lanes: ``{"gain_db": {"ramp_ms": ..., "points": [{"time_s", "gain_db"}]}}``."""
    c.obj(value, where, {"gain_db"})
    out = {}
    if "gain_db" in value:
        w = f"{where}.gain_db"
        lane = c.obj(value["gain_db"], w, set(LANE_DEFAULTS), ("points",))
        if not isinstance(lane["points"], list):
            c.fail(f"{w}.points", "expected a list of {time_s, gain_db} points")
        points = []
        for i, pt in enumerate(lane["points"]):
            pw = f"{w}.points[{i}]"
            c.obj(pt, pw, {"time_s", "gain_db"}, ("time_s", "gain_db"))
            points.append({"time_s": c.number(pt["time_s"], f"{pw}.time_s", "time_s"),
                           "gain_db": c.number(pt["gain_db"], f"{pw}.gain_db", "lane_gain_db")})
        if c.tidy:
            points.sort(key=lambda pt: pt["time_s"])
        for i in range(1, len(points)):
            if points[i]["time_s"] < points[i - 1]["time_s"]:
                c.fail(f"{w}.points[{i}].time_s", f"{points[i]['time_s']:g} s comes before "
                       f"points[{i - 1}] ({points[i - 1]['time_s']:g} s): points must be in "
                       "time order")
        out["gain_db"] = {"ramp_ms": c.number(lane.get("ramp_ms", LANE_DEFAULTS["ramp_ms"]),
                                              f"{w}.ramp_ms", "ramp_ms"),
                          "points": points}
    return out


def _group(c: _Checker, g, where):
    c.obj(g, where, {"name", *GROUP_DEFAULTS}, ("name", "members"))
    members = g["members"]
    if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
        c.fail(f"{where}.members", "expected a list of track names")
    return {"name": _name(c, g["name"], f"{where}.name"), "members": list(members),
            "output": _name(c, g.get("output", MASTER_NAME), f"{where}.output"),
            **_strip(c, g, where)}


def _bus(c: _Checker, b, where):
    c.obj(b, where, {"name", *BUS_DEFAULTS}, ("name", "processor"))
    out = {"name": _name(c, b["name"], f"{where}.name"),
           "processor": _bus_processor(c, b["processor"], f"{where}.processor"),
           "eq": _eq(c, b.get("eq", []), f"{where}.eq"),
           "gain_db": c.number(b.get("gain_db", 0.0), f"{where}.gain_db", "track_gain_db"),
           "mute": _bool(c, b.get("mute", False), f"{where}.mute"),
           "output": _name(c, b.get("output", MASTER_NAME), f"{where}.output")}
    if "automation" in b:
        out["automation"] = _automation(c, b["automation"], f"{where}.automation")
    return out


def _bus_processor(c: _Checker, proc, where):
    """A bus's processor: ``type`` (a key of BUS_PROCESSORS) and that type's fields."""
    allowed = {k for d in BUS_PROCESSOR_DEFAULTS.values() for k in d}
    c.obj(proc, where, allowed, ("type",))
    kind = proc["type"]
    if not isinstance(kind, str) or kind not in BUS_PROCESSORS:
        c.fail(f"{where}.type", f"{kind!r} is not one of {', '.join(BUS_PROCESSORS)}")
    defaults = BUS_PROCESSOR_DEFAULTS[kind]
    for key in proc:
        if key not in defaults:
            c.fail(where, f"{key!r} is not a field of a {kind} processor "
                   f"(its fields: {', '.join(defaults)})")
    out = {"type": kind}
    for key, default in defaults.items():
        if key == "mode":
            out[key] = proc.get(key, default)
            if out[key] not in ECHO_MODES:
                c.fail(f"{where}.mode", f"{out[key]!r} is not one of {', '.join(ECHO_MODES)}")
        elif key != "type":
            out[key] = c.number(proc.get(key, default), f"{where}.{key}", PROCESSOR_LIMITS[key])
    if kind == "reverb" and not out["hp_hz"] < out["lp_hz"]:
        c.fail(f"{where}.hp_hz", f"{out['hp_hz']:g} Hz must be below lp_hz ({out['lp_hz']:g} Hz)")
    if kind == "echo" and out["time_ms"] * c.nyquist * 2 / 1000 < 1.5:
        c.fail(f"{where}.time_ms", "is shorter than 1.5 samples")
    return out


def _send(c: _Checker, s, where):
    c.obj(s, where, {"source", "bus", *SEND_DEFAULTS}, ("source", "bus"))
    return {"source": _name(c, s["source"], f"{where}.source"),
            "bus": _name(c, s["bus"], f"{where}.bus"),
            "level_db": c.number(s.get("level_db", 0.0), f"{where}.level_db", "level_db"),
            "pre_fader": _bool(c, s.get("pre_fader", False), f"{where}.pre_fader")}


def _master(c: _Checker, m):
    c.obj(m, "master", set(MASTER_DEFAULTS) | ({"top_tail"} if c.version >= 2 else set()))
    out = _master_chain(c, m)
    if "top_tail" in m:  # only when given: a master without one renders as before
        out["top_tail"] = _top_tail(c, m["top_tail"], "master.top_tail")
    return out


TOP_TAIL_FIELDS = ("start_s", "end_s", "fade_in_s", "fade_out_s")


def _top_tail(c: _Checker, value, where):
    """The master's top and tail (automix.toptail): the span kept and equal-power fades."""
    c.obj(value, where, set(TOP_TAIL_FIELDS))
    out = {"start_s": c.number(value.get("start_s", 0.0), f"{where}.start_s", "time_s")}
    if "end_s" in value:
        out["end_s"] = c.number(value["end_s"], f"{where}.end_s", "time_s")
        if out["end_s"] <= out["start_s"]:
            c.fail(where, f"end_s ({out['end_s']:g} s) must be after start_s "
                   f"({out['start_s']:g} s)")
    for key in ("fade_in_s", "fade_out_s"):
        out[key] = c.number(value.get(key, 0.0), f"{where}.{key}", "fade_s")
    return out


def _master_chain(c: _Checker, m):
    return {"eq": _eq(c, m.get("eq", []), "master.eq"),
            "compressor": _processor(c, m.get("compressor", {}), "master.compressor",
                                     COMPRESSOR_DEFAULTS, {}),
            "side_eq": _eq(c, m.get("side_eq", []), "master.side_eq"),
            "widener": _processor(c, m.get("widener", {}), "master.widener", WIDENER_DEFAULTS,
                                  {"gain_db": "widener_gain_db"}),
            "width": c.number(m.get("width", 1.0), "master.width", "width"),
            "gain_db": c.number(m.get("gain_db", 0.0), "master.gain_db", "master_gain_db"),
            "limiter": _processor(c, m.get("limiter", {}), "master.limiter", LIMITER_DEFAULTS, {})}


_MAX_SETTINGS_BYTES = 64 << 20  # a 1000-track session is ~3 MB


def load_settings(path) -> dict:
    """Read and validate a settings file; every problem is an :class:`AutomixError` in one line
    (unreadable, not JSON, integers of hundreds of digits, nesting deeper than Python's
    recursion limit, a file of more than 64 MiB)."""
    path = Path(path)
    if not path.is_file():
        raise AutomixError(f"{path}: no such settings file")

    def integer(text: str) -> int:
        # the limits of every field are far below 10^30; longer integers would overflow floats
        # (OverflowError) or Python's int-string limit (ValueError) further on
        if len(text.lstrip("-")) > 30:
            raise AutomixError(f"{path}: the integer {text[:12]}... ({len(text)} digits) is out "
                               "of range")
        return int(text)

    try:
        if path.stat().st_size > _MAX_SETTINGS_BYTES:
            raise AutomixError(f"{path}: {path.stat().st_size >> 20} MiB is too large for a "
                               "settings file")
        data = json.loads(path.read_text(encoding="utf-8"), parse_int=integer)
        return validate(data, str(path))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AutomixError(f"{path}: not valid JSON ({exc})") from None
    except RecursionError:
        raise AutomixError(f"{path}: nested too deeply to be a settings file") from None
    except OSError as exc:
        raise AutomixError(f"{path}: cannot read ({exc.strerror or exc})") from None


def save_settings(path, settings: dict) -> Path:
    """Validate and write atomically (pretty JSON, floats written exactly)."""
    settings = validate(settings, str(path))
    for key in ("target", "analysis"):  # measurements: shown to 3 decimals (render ignores them)
        if key in settings:
            settings[key] = _round_floats(settings[key], 3)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(settings, indent=2, allow_nan=False) + "\n")
    return Path(path)


def _round_floats(value, decimals: int):
    if isinstance(value, float):
        return round(value, decimals) + 0.0 if math.isfinite(value) else value
    if isinstance(value, dict):
        return {k: _round_floats(v, decimals) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_round_floats(v, decimals) for v in value]
    return value


# --- console parameters (fixed layout, physical tensors) -> settings entries ---------------------

def eq_from_params(p: dict) -> list[dict]:
    """The fixed-layout EQ's bands (automix.console.graph builds the keys and places)."""
    return entry_from_params(STRIP, p, {"eq"})["eq"]


def compressor_from_params(p: dict) -> dict:
    return entry_from_params(STRIP, p, {"compressor"})["compressor"]


def track_from_params(name: str, file: str, p: dict) -> dict:
    """One track entry from scalar physical parameters (a dict of 0-d tensors or floats)."""
    return {"name": name, "file": file, **entry_from_params(STRIP, p), "mute": False}


def master_from_params(p: dict, lookahead_ms: float = LIMITER_LOOKAHEAD_MS) -> dict:
    m = entry_from_params(MASTER, p)
    m["limiter"]["lookahead_ms"] = lookahead_ms
    return {"side_eq": [], "widener": {}, **m}


def settings_from_params(names, files, track_params: dict, master_params: dict,
                         sample_rate: int, **extra) -> dict:
    """Settings dict from console parameters of ONE song: track tensors (N,), master 0-d."""
    tracks = [track_from_params(n, f, {k: v[i] for k, v in track_params.items()})
              for i, (n, f) in enumerate(zip(names, files))]
    return {"format": FORMAT, "version": VERSION, "sample_rate": int(sample_rate),
            "tracks": tracks, "master": master_from_params(master_params), **extra}
