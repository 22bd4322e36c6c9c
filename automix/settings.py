"""settings.json, schema v1: load, validate, save, and conversion from console parameters.

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

import torch

from .audio import atomic_path
from .dsp.eq import BAND_TYPES, GAINLESS
from .errors import AutomixError
from .params import LIMITER_LOOKAHEAD_MS, TRACK_EQ_LAYOUT

FORMAT = "automix.settings"
VERSION = 1

# field -> (min, max); "nyquist" is replaced by sample_rate / 2 (exclusive)
LIMITS = {
    "freq_hz": (10.0, "nyquist"), "q": (0.1, 20.0), "eq_gain_db": (-30.0, 30.0),
    "threshold_db": (-90.0, 0.0), "ratio": (1.0, 100.0), "attack_ms": (0.01, 1000.0),
    "release_ms": (1.0, 10000.0), "knee_db": (0.0, 36.0), "makeup_db": (-48.0, 48.0),
    "track_gain_db": (-120.0, 48.0), "master_gain_db": (-48.0, 60.0),
    "pan": (-1.0, 1.0), "width": (0.0, 4.0),
    "ceiling_dbtp": (-30.0, 0.0), "lookahead_ms": (0.1, 50.0),
    "widener_gain_db": (-120.0, 0.0), "delay_ms": (1.0, 50.0),
}
COMPRESSOR_DEFAULTS = {"threshold_db": 0.0, "ratio": 1.0, "attack_ms": 10.0, "release_ms": 150.0,
                       "knee_db": 6.0, "makeup_db": 0.0}
LIMITER_DEFAULTS = {"ceiling_dbtp": -1.0, "lookahead_ms": LIMITER_LOOKAHEAD_MS, "release_ms": 80.0}
TRACK_DEFAULTS = {"eq": [], "compressor": {}, "gain_db": 0.0, "pan": 0.0, "width": 1.0,
                  "mute": False}
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
                         "analysis"}, ("format", "version", "sample_rate", "tracks", "master"))
    if settings["format"] != FORMAT:
        c.fail("format", f"expected {FORMAT!r}, got {settings['format']!r}")
    if settings["version"] != VERSION:
        c.fail("version", f"this automix reads version {VERSION}, got {settings['version']!r}")
    sr = settings["sample_rate"]
    if isinstance(sr, bool) or not isinstance(sr, int) or not 8000 <= sr <= 384000:
        c.fail("sample_rate", f"expected an integer rate in Hz (8000..384000), got {sr!r}")
    c.nyquist = sr / 2
    tracks = settings["tracks"]
    if not isinstance(tracks, list) or not tracks:
        c.fail("tracks", "expected a non-empty list")
    out = {"format": FORMAT, "version": VERSION, "sample_rate": sr,
           "tracks": [_track(c, t, f"tracks[{i}]") for i, t in enumerate(tracks)],
           "master": _master(c, settings["master"])}
    if "target" in settings:
        t = c.obj(settings["target"], "target", {"lufs", "true_peak_dbtp", "source"})
        out["target"] = dict(t)
    if "analysis" in settings:
        a = c.obj(settings["analysis"], "analysis", {"reference", "mix", "master"})
        out["analysis"] = dict(a)
    names = [t["name"] for t in out["tracks"]]
    if len(set(names)) != len(names):
        c.fail("tracks", "track names must be unique")
    return out


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


def _track(c: _Checker, t, where):
    c.obj(t, where, {"name", "file", *TRACK_DEFAULTS}, ("name", "file"))
    for key in ("name", "file"):
        if not isinstance(t[key], str) or not t[key]:
            c.fail(f"{where}.{key}", "expected a non-empty string")
    mute = t.get("mute", False)
    if not isinstance(mute, bool):
        c.fail(f"{where}.mute", f"expected true or false, got {mute!r}")
    return {"name": t["name"], "file": t["file"],
            "eq": _eq(c, t.get("eq", []), f"{where}.eq"),
            "compressor": _processor(c, t.get("compressor", {}), f"{where}.compressor",
                                     COMPRESSOR_DEFAULTS, {}),
            "gain_db": c.number(t.get("gain_db", 0.0), f"{where}.gain_db", "track_gain_db"),
            "pan": c.number(t.get("pan", 0.0), f"{where}.pan", "pan"),
            "width": c.number(t.get("width", 1.0), f"{where}.width", "width"),
            "mute": mute}


def _master(c: _Checker, m):
    c.obj(m, "master", set(MASTER_DEFAULTS))
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

def _f(v) -> float:
    return float(v.detach().cpu().item()) if isinstance(v, torch.Tensor) else float(v)


def eq_from_params(p: dict, layout=TRACK_EQ_LAYOUT) -> list[dict]:
    bands = []
    for i, kind in enumerate(layout):
        key = f"eq{i}_{kind}"
        band = {"type": kind, "freq_hz": _f(p[f"{key}.freq_hz"])}
        if kind not in GAINLESS:
            band["gain_db"] = _f(p[f"{key}.gain_db"])
        band["q"] = _f(p[f"{key}.q"])
        bands.append(band)
    return bands


def compressor_from_params(p: dict) -> dict:
    return {k: _f(p[f"comp.{k}"]) for k in COMPRESSOR_DEFAULTS}


def track_from_params(name: str, file: str, p: dict) -> dict:
    """One track entry from scalar physical parameters (a dict of 0-d tensors or floats)."""
    return {"name": name, "file": file, "eq": eq_from_params(p),
            "compressor": compressor_from_params(p), "gain_db": _f(p["gain_db"]),
            "pan": _f(p["pan"]), "width": _f(p["width"]), "mute": False}


def master_from_params(p: dict, lookahead_ms: float = LIMITER_LOOKAHEAD_MS) -> dict:
    return {"eq": eq_from_params(p), "compressor": compressor_from_params(p), "side_eq": [],
            "widener": {}, "width": _f(p["width"]), "gain_db": _f(p["gain_db"]),
            "limiter": {"ceiling_dbtp": _f(p["limiter.ceiling_dbtp"]), "lookahead_ms": lookahead_ms,
                        "release_ms": _f(p["limiter.release_ms"])}}


def settings_from_params(names, files, track_params: dict, master_params: dict,
                         sample_rate: int, **extra) -> dict:
    """Settings dict from console parameters of ONE song: track tensors (N,), master 0-d."""
    tracks = [track_from_params(n, f, {k: v[i] for k, v in track_params.items()})
              for i, (n, f) in enumerate(zip(names, files))]
    return {"format": FORMAT, "version": VERSION, "sample_rate": int(sample_rate),
            "tracks": tracks, "master": master_from_params(master_params), **extra}
