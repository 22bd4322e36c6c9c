"""Realistic random console settings: the priors of the self-supervised training targets.

:func:`sample_settings` draws one setting for a song's tracks and master in physical units, as a
plain dict in the ``settings.json`` schema v1 (``tracks``/``master`` entries; see docs/settings.md).
The distributions are chosen to look like real mixes, not like a uniform box:

=====================  ==========================================================================
fader ``gain_db``      normal, mean 0 dB, sd 4 dB, + optional per-role offsets, clipped to [-24, +12];
                       plus an optional pull towards equal stem loudness (``level_match``), added
                       after that clip (the sum is clipped to the console's fader range only)
``pan``                centre roles (kick, snare, bass, lead vocal, lead): normal sd 0.05; other
                       tracks: 25 % near centre (sd 0.1), else normal sd 0.5; clipped to [-1, 1]
``width``              log-normal, median 1.0, sigma 0.15, in [0, 2]; 1.0 for mono tracks
EQ (fixed 6 bands)     highpass, lowshelf, peak, peak, peak, highshelf -- the console's layout.
                       High-pass engaged with p = 0.6 at a log-normal frequency (median 80 Hz;
                       30 Hz for kick/bass), else parked at 20 Hz. Shelf/peak gains are Laplace
                       (scale 2 dB: median |gain| 1.4 dB, 90 % within 4.6 dB), clipped to +-12 dB.
                       Peaks sit in low / mid / high regions (80-500, 300-3000, 1500-12000 Hz,
                       log-uniform), Q log-normal around 1.0 in [0.3, 8].
compressor             engaged with p = 0.75, else ratio 1 (transparent). Ratio log-normal,
                       median 2.5, sigma 0.4, in [1, 20]. Threshold ``level - N(6, 4)`` dB when the
                       stem's level (RMS dBFS) is given, else N(-20, 6); attack log-normal median
                       10 ms, release median 120 ms, knee N(6, 3) in [0, 12] dB, make-up = half the
                       estimated gain reduction (+- 1 dB).
master                 same EQ layout with half the gains; glue compressor (p = 0.7, ratio median
                       1.8, threshold 4 dB below the mix level, attack 20 ms, release 200 ms);
                       width median 1.05; gain N(3, 2) dB; true-peak limiter with ceiling
                       -1 dBTP (70 %) or -0.1/-0.5/-2, the console's fixed 2 ms look-ahead,
                       release log-normal median 80 ms.
=====================  ==========================================================================

All of it is a :class:`PriorConfig` (dataclasses), loadable from ``configs/data/priors.yaml``
(:func:`prior_config`); every draw comes from the ``numpy`` generator passed in, so a seed fixes
the settings.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from automix.errors import AutomixError
from automix.params import LIMITER_LOOKAHEAD_MS, TRACK_SPECS, spec_index

EQ_LAYOUT = ("highpass", "lowshelf", "peak", "peak", "peak", "highshelf")


# --------------------------------------------------------------------------- configuration

@dataclass
class GainPrior:
    mean_db: float = 0.0
    sd_db: float = 4.0
    min_db: float = -24.0
    max_db: float = 12.0
    level_match: float = 1.0        # 0: ignore stem levels; 1: pull every stem to the median level
    role_offsets_db: dict = field(default_factory=dict)  # e.g. {"vocals": 2.0}


@dataclass
class PanPrior:
    centre_roles: tuple = ("kick", "snare", "bass", "vocals", "lead")
    centre_sd: float = 0.05
    centre_prob: float = 0.25       # other tracks that still sit near the centre
    near_centre_sd: float = 0.1
    spread_sd: float = 0.5


@dataclass
class WidthPrior:
    median: float = 1.0
    sigma: float = 0.15
    min: float = 0.0
    max: float = 2.0


@dataclass
class EqPrior:
    highpass_prob: float = 0.6
    highpass_off_hz: float = 20.0
    highpass_median_hz: float = 80.0
    highpass_low_median_hz: float = 30.0   # for kick and bass
    highpass_sigma: float = 0.5
    highpass_range_hz: tuple = (20.0, 400.0)
    highpass_q: float = 0.707
    gain_scale_db: float = 2.0             # Laplace scale of shelf and peak gains
    gain_limit_db: float = 12.0
    lowshelf_median_hz: float = 150.0
    lowshelf_sigma: float = 0.4
    lowshelf_range_hz: tuple = (40.0, 500.0)
    peak_bands_hz: tuple = ((80.0, 500.0), (300.0, 3000.0), (1500.0, 12000.0))
    peak_q_median: float = 1.0
    peak_q_sigma: float = 0.5
    peak_q_range: tuple = (0.3, 8.0)
    highshelf_median_hz: float = 6000.0
    highshelf_sigma: float = 0.35
    highshelf_range_hz: tuple = (2000.0, 16000.0)
    shelf_q: float = 0.707


@dataclass
class CompressorPrior:
    prob: float = 0.75
    ratio_median: float = 2.5
    ratio_sigma: float = 0.4
    ratio_range: tuple = (1.0, 20.0)
    threshold_below_level_db: float = 6.0   # threshold = level - N(this, sd) when levels are known
    threshold_below_level_sd_db: float = 4.0
    threshold_mean_db: float = -20.0        # when they are not
    threshold_sd_db: float = 6.0
    threshold_range_db: tuple = (-60.0, 0.0)
    attack_median_ms: float = 10.0
    attack_sigma: float = 0.8
    attack_range_ms: tuple = (0.1, 100.0)
    release_median_ms: float = 120.0
    release_sigma: float = 0.6
    release_range_ms: tuple = (10.0, 1000.0)
    knee_mean_db: float = 6.0
    knee_sd_db: float = 3.0
    knee_range_db: tuple = (0.0, 12.0)
    makeup_fraction: float = 0.5            # of the estimated gain reduction
    makeup_sd_db: float = 1.0
    makeup_range_db: tuple = (0.0, 12.0)
    assumed_level_db: float = -18.0         # for the make-up estimate when no level is given


@dataclass
class LimiterPrior:
    ceilings_dbtp: tuple = (-1.0, -0.1, -0.5, -2.0)
    ceiling_probs: tuple = (0.7, 0.1, 0.1, 0.1)
    lookahead_median_ms: float = LIMITER_LOOKAHEAD_MS  # the console's look-ahead is fixed...
    lookahead_sigma: float = 0.0                       # ...so it is not drawn by default
    lookahead_range_ms: tuple = (0.5, 10.0)
    release_median_ms: float = 80.0
    release_sigma: float = 0.5
    release_range_ms: tuple = (10.0, 1000.0)


def _master_eq() -> EqPrior:
    return EqPrior(highpass_prob=0.3, highpass_median_hz=30.0, highpass_low_median_hz=30.0,
                   highpass_sigma=0.3, highpass_range_hz=(20.0, 120.0), gain_scale_db=1.0,
                   gain_limit_db=6.0, peak_q_median=0.8)


def _master_compressor() -> CompressorPrior:
    return CompressorPrior(prob=0.7, ratio_median=1.8, ratio_sigma=0.3, ratio_range=(1.0, 6.0),
                           threshold_below_level_db=4.0, threshold_below_level_sd_db=2.0,
                           threshold_mean_db=-16.0, threshold_sd_db=4.0, attack_median_ms=20.0,
                           attack_sigma=0.5, release_median_ms=200.0, release_sigma=0.5,
                           knee_mean_db=6.0, knee_sd_db=2.0, assumed_level_db=-14.0)


@dataclass
class MasterPrior:
    prob: float = 1.0               # else the master is neutral (all processors bypassed)
    eq: EqPrior = field(default_factory=_master_eq)
    compressor: CompressorPrior = field(default_factory=_master_compressor)
    width: WidthPrior = field(default_factory=lambda: WidthPrior(median=1.05, sigma=0.1, min=0.5, max=1.5))
    gain: GainPrior = field(default_factory=lambda: GainPrior(mean_db=3.0, sd_db=2.0, min_db=-6.0, max_db=12.0))
    limiter: LimiterPrior = field(default_factory=LimiterPrior)


@dataclass
class PriorConfig:
    gain: GainPrior = field(default_factory=GainPrior)
    pan: PanPrior = field(default_factory=PanPrior)
    width: WidthPrior = field(default_factory=WidthPrior)
    eq: EqPrior = field(default_factory=EqPrior)
    compressor: CompressorPrior = field(default_factory=CompressorPrior)
    master: MasterPrior = field(default_factory=MasterPrior)


def _apply(obj, data: Mapping[str, Any], where: str):
    """Set the fields of dataclass ``obj`` from ``data`` (recursively; unknown keys are errors)."""
    names = {f.name for f in fields(obj)}
    for key, val in data.items():
        if key not in names:
            raise AutomixError(f"priors: unknown setting {where}{key}")
        cur = getattr(obj, key)
        if is_dataclass(cur):
            if not isinstance(val, Mapping):
                raise AutomixError(f"priors: {where}{key} must be a mapping")
            _apply(cur, val, f"{where}{key}.")  # from this field's own defaults
            continue
        if isinstance(cur, tuple) and val is not None:
            val = tuple(tuple(v) if isinstance(v, (list, tuple)) else v for v in val)
        elif isinstance(cur, dict):
            val = dict(val or {})
        elif isinstance(cur, float) and isinstance(val, (int, float)) and not isinstance(val, bool):
            val = float(val)
        setattr(obj, key, val)
    return obj


def prior_config(data: Mapping[str, Any] | PriorConfig | None = None) -> PriorConfig:
    """A :class:`PriorConfig` from a (Hydra/OmegaConf or plain) mapping; missing keys keep defaults."""
    if data is None:
        return PriorConfig()
    if isinstance(data, PriorConfig):
        return data
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(data, DictConfig):
            data = OmegaConf.to_container(data, resolve=True)  # type: ignore[assignment]
    except ImportError:
        pass
    return _apply(PriorConfig(), dict(data), "")


# --------------------------------------------------------------------------- roles

_ROLE_PATTERNS = (  # first match wins; matched against "name label" in lower case
    ("kick", r"\b(kick|kik|bd|bass ?drum)\w*"),
    ("snare", r"\b(snare|sd|rim(shot)?|clap)\w*"),
    ("hihat", r"\b(hi ?hats?|hh|hat)\b"),
    ("toms", r"\b(toms?|floor ?tom)\b"),
    ("cymbals", r"\b(cymbals?|crash|ride|china|splash|overheads?|oh)\b"),
    ("drums", r"\b(drums?|kit|room|percussion|perc|shaker|tambourine|conga|bongo)\w*"),
    ("bass", r"\b(bass|sub|808|contrabass|double bass|upright)\w*"),
    ("backing", r"\b(backing|bvs?|bgv|choir|harmony|harmonies|backs?|doubles?)\b"),
    ("vocals", r"\b(vocals?|vox|voice|singer|lead vocal|vocal lead)\w*"),
    ("lead", r"\b(lead|melody|solo)\w*"),
)


def track_role(name: str, label: str = "") -> str:
    """A coarse role from a track name/label: kick, snare, hihat, toms, cymbals, drums, bass,
    backing, vocals, lead or other (used for pan and high-pass priors)."""
    text = re.sub(r"[_\-.]+", " ", f"{name} {label}".lower())
    for role, pattern in _ROLE_PATTERNS:
        if re.search(pattern, text):
            return role
    return "other"


# --------------------------------------------------------------------------- sampling

def _lognormal(rng, median: float, sigma: float, lo: float, hi: float) -> float:
    return float(np.clip(median * np.exp(sigma * rng.standard_normal()), lo, hi))


def _laplace(rng, scale: float, limit: float) -> float:
    return float(np.clip(rng.laplace(0.0, scale), -limit, limit))


def _r(x: float, nd: int = 2) -> float:
    return float(round(float(x), nd))


def sample_eq(rng: np.random.Generator, p: EqPrior, low_role: bool = False) -> list[dict]:
    """The fixed 6-band layout: highpass, lowshelf, peak, peak, peak, highshelf."""
    if rng.random() < p.highpass_prob:
        med = p.highpass_low_median_hz if low_role else p.highpass_median_hz
        hp = _lognormal(rng, med, p.highpass_sigma, *p.highpass_range_hz)
    else:
        hp = p.highpass_off_hz
    bands = [{"type": "highpass", "freq_hz": _r(hp, 1), "q": _r(p.highpass_q, 3)},
             {"type": "lowshelf", "freq_hz": _r(_lognormal(rng, p.lowshelf_median_hz, p.lowshelf_sigma,
                                                            *p.lowshelf_range_hz), 1),
              "gain_db": _r(_laplace(rng, p.gain_scale_db, p.gain_limit_db)), "q": _r(p.shelf_q, 3)}]
    for lo, hi in p.peak_bands_hz:
        f = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        bands.append({"type": "peak", "freq_hz": _r(f, 1),
                      "gain_db": _r(_laplace(rng, p.gain_scale_db, p.gain_limit_db)),
                      "q": _r(_lognormal(rng, p.peak_q_median, p.peak_q_sigma, *p.peak_q_range), 3)})
    bands.append({"type": "highshelf",
                  "freq_hz": _r(_lognormal(rng, p.highshelf_median_hz, p.highshelf_sigma,
                                           *p.highshelf_range_hz), 1),
                  "gain_db": _r(_laplace(rng, p.gain_scale_db, p.gain_limit_db)), "q": _r(p.shelf_q, 3)})
    return bands


def sample_compressor(rng: np.random.Generator, p: CompressorPrior, level_db: float | None) -> dict:
    engaged = rng.random() < p.prob
    # draw everything either way: the stream of random numbers does not depend on the outcome
    ratio = _lognormal(rng, p.ratio_median, p.ratio_sigma, *p.ratio_range)
    if level_db is not None and np.isfinite(level_db):
        thr = level_db - (p.threshold_below_level_db + p.threshold_below_level_sd_db * rng.standard_normal())
    else:
        thr = p.threshold_mean_db + p.threshold_sd_db * rng.standard_normal()
    thr = float(np.clip(thr, *p.threshold_range_db))
    attack = _lognormal(rng, p.attack_median_ms, p.attack_sigma, *p.attack_range_ms)
    release = _lognormal(rng, p.release_median_ms, p.release_sigma, *p.release_range_ms)
    knee = float(np.clip(p.knee_mean_db + p.knee_sd_db * rng.standard_normal(), *p.knee_range_db))
    noise = rng.standard_normal()
    if not engaged:
        ratio, thr = 1.0, 0.0
    level = level_db if level_db is not None and np.isfinite(level_db) else p.assumed_level_db
    reduction = max(level - thr, 0.0) * (1.0 - 1.0 / ratio)
    makeup = 0.0 if not engaged else float(np.clip(p.makeup_fraction * reduction + p.makeup_sd_db * noise,
                                                   *p.makeup_range_db))
    return {"threshold_db": _r(thr), "ratio": _r(ratio, 3), "attack_ms": _r(attack), "release_ms": _r(release),
            "knee_db": _r(knee), "makeup_db": _r(makeup)}


def sample_pan(rng: np.random.Generator, p: PanPrior, role: str) -> float:
    z = rng.standard_normal()
    near = rng.random() < p.centre_prob
    if role in p.centre_roles:
        sd = p.centre_sd
    else:
        sd = p.near_centre_sd if near else p.spread_sd
    return _r(np.clip(sd * z, -1.0, 1.0), 3)


_FADER = spec_index(TRACK_SPECS)["gain_db"]


def _gain(rng, p: GainPrior, role: str, level_db: float | None, ref_level: float | None) -> float:
    """The mix engineer's deviation (clipped to [min_db, max_db]) plus the level match.  The
    match is added after that clip: clipping the sum cut the boost of stems recorded more than
    ~12 dB under the median, so a network trained on it learned to leave quiet stems quiet."""
    g = float(np.clip(p.mean_db + p.sd_db * rng.standard_normal()
                      + float(p.role_offsets_db.get(role, 0.0)), p.min_db, p.max_db))
    if p.level_match and level_db is not None and ref_level is not None and np.isfinite(level_db):
        g += p.level_match * (ref_level - level_db)
    return _r(np.clip(g, _FADER.minimum, _FADER.maximum))


def sample_limiter(rng: np.random.Generator, p: LimiterPrior) -> dict:
    probs = np.asarray(p.ceiling_probs, float)
    ceiling = float(rng.choice(np.asarray(p.ceilings_dbtp, float), p=probs / probs.sum()))
    return {"ceiling_dbtp": _r(ceiling),
            "lookahead_ms": _r(_lognormal(rng, p.lookahead_median_ms, p.lookahead_sigma, *p.lookahead_range_ms)),
            "release_ms": _r(_lognormal(rng, p.release_median_ms, p.release_sigma, *p.release_range_ms))}


def sample_master(rng: np.random.Generator, p: MasterPrior, mix_level_db: float | None = None) -> dict:
    if rng.random() >= p.prob:
        return {"width": 1.0, "gain_db": 0.0}  # every other processor omitted = bypassed
    return {"eq": sample_eq(rng, p.eq, low_role=True),
            "compressor": sample_compressor(rng, p.compressor, mix_level_db),
            "width": _r(_lognormal(rng, p.width.median, p.width.sigma, p.width.min, p.width.max), 3),
            "gain_db": _r(np.clip(p.gain.mean_db + p.gain.sd_db * rng.standard_normal(),
                                  p.gain.min_db, p.gain.max_db)),
            "limiter": sample_limiter(rng, p.limiter)}


def sample_settings(track_names: Sequence[str], rng: np.random.Generator | int | None = None,
                    config: PriorConfig | Mapping[str, Any] | None = None, *,
                    labels: Sequence[str] | None = None, levels_db: Sequence[float] | None = None,
                    stereo: Sequence[bool] | None = None, mix_level_db: float | None = None,
                    files: Sequence[str] | None = None, sample_rate: int | None = None) -> dict:
    """One random console setting for ``track_names`` (settings.json schema v1 fields).

    ``labels`` (instrument labels) refine the roles found from the names; ``levels_db`` (each
    stem's RMS level in dBFS) place compressor thresholds relative to the material and feed
    ``gain.level_match``; ``stereo`` (per track) gives mono tracks width 1.0; ``mix_level_db``
    places the master compressor; ``files`` fills each track's ``file`` (default: its name).
    With ``sample_rate`` the result is a complete settings.json (``automix.settings.validate``
    accepts it). ``rng`` is a numpy Generator or a seed.
    """
    cfg = prior_config(config)
    if not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(rng)
    n = len(track_names)
    for seq, what in ((labels, "labels"), (levels_db, "levels_db"), (stereo, "stereo"), (files, "files")):
        if seq is not None and len(seq) != n:
            raise ValueError(f"{what} has {len(seq)} entries for {n} tracks")
    finite = [lv for lv in (levels_db or []) if lv is not None and np.isfinite(lv)]
    ref_level = float(np.median(finite)) if finite else None
    tracks = []
    for i, name in enumerate(track_names):
        role = track_role(name, labels[i] if labels else "")
        level = levels_db[i] if levels_db is not None else None
        is_stereo = True if stereo is None else bool(stereo[i])
        eq = sample_eq(rng, cfg.eq, low_role=role in ("kick", "bass"))
        comp = sample_compressor(rng, cfg.compressor, level)
        gain = _gain(rng, cfg.gain, role, level, ref_level)
        pan = sample_pan(rng, cfg.pan, role)
        w = _lognormal(rng, cfg.width.median, cfg.width.sigma, cfg.width.min, cfg.width.max)
        tracks.append({"name": str(name), "file": str(files[i] if files else name), "eq": eq, "compressor": comp, "gain_db": gain, "pan": pan,
                       "width": _r(w if is_stereo else 1.0, 3), "mute": False})
    out: dict[str, Any] = {"format": "automix.settings", "version": 1}
    if sample_rate is not None:
        out["sample_rate"] = int(sample_rate)
    out["tracks"] = tracks
    out["master"] = sample_master(rng, cfg.master, mix_level_db)
    return out
