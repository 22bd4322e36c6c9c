"""Refinement: fit console parameters to a reference by gradient descent.

Matching works on long-term spectra, not on audio, so a fit takes well under a second whatever the
song's length: each source is summarised once by its mid and side power spectra and their cross
spectrum (Welch).  The console's linear stages act on those exactly: the EQ multiplies every
spectrum by ``|H(f)|^2`` (the console's own :func:`automix.dsp.eq.frequency_response`), gain by
``g^2``, and pan/width mix mid and side through the console's own pan law
(:func:`automix.dsp.stereo.pan_gains`).  Tracks are taken as mutually uncorrelated (their powers
add).  The fitted settings are then rendered at full rate by the real console and measured; the
nonlinear stages (compressor, limiter) are set from measurements of the rendered audio.

Losses follow docs/metrics.md: 1/3-octave mid and side curves normalised by their mean band
power, and width = side/mid energy in dB.  Regularisers pull toward neutral settings (EQ gains
toward 0 dB, faders and pans toward the starting point), and EQ gains are bounded by the
parameter spec (+-12 dB), so nothing boosts +45 dB into an empty band.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch

from . import analysis
from .console import spectral
from .dsp.eq import Band, frequency_response
from .params import MASTER_SPECS, TRACK_SPECS, spec_index

FADER_RANGE_DB = 12.0
EQ_GAIN_KEYS = ("eq1_lowshelf.gain_db", "eq2_peak.gain_db", "eq3_peak.gain_db",
                "eq4_peak.gain_db", "eq5_highshelf.gain_db")
_EPS = 1e-20

# The master's "match EQ": half-octave peaking bands from 40 Hz, fitted after (and on top of) the
# parametric layout so the master can follow the reference's tonal curve in detail, as
# Matchering's FIR does, but bounded (+-6 dB each, smooth across bands) and written into
# settings.json as ordinary peak bands.
GRAPHIC_CENTRES_HZ = tuple(40.0 * 2 ** (k / 2) for k in range(18))   # 40 Hz .. 14.5 kHz
GRAPHIC_Q = 2.0
GRAPHIC_MAX_DB = 6.0


@dataclass(frozen=True)
class MatchEQ:
    """A match EQ's layout: peak bands at fixed centres with one Q, gains bounded to
    +-``max_db`` and costed by :func:`_smooth_cost` (``size`` x sum g^2 + ``curve`` x sum of
    squared second differences, g normalised by the bound)."""
    centres_hz: tuple
    q: float
    max_db: float
    size: float
    curve: float


# "half-octave": the master's match EQ everywhere (mix, master): a smooth correction.
# "third-octave": the album's (automix album --match-eq): one band on each of the analysis'
# 1/3-octave bands (docs/metrics.md), so a song's master can land on the album curve band by
# band, not only on its half-octave outline.  Q 4.32 is a 1/3-octave bandwidth
# (1 / (2 sinh(ln 2 / 6)) = 4.318, written as settings.json rounds it); centres rounded to the
# 0.1 Hz that settings.json keeps, so the fit's model is exactly what is written.  A lighter
# curvature cost (the reference's curve has 1/3-octave detail to follow) and a wider bound.
MATCH_EQS = {
    "half-octave": MatchEQ(GRAPHIC_CENTRES_HZ, GRAPHIC_Q, GRAPHIC_MAX_DB, 0.01, 0.1),
    "third-octave": MatchEQ(tuple(round(float(f), 1) for f in analysis.BAND_CENTRES_EXACT),
                            4.32, 9.0, 0.01, 0.01),
}
DEFAULT_MATCH_EQ = "half-octave"
# The master's side EQ: the same centres, on the side channel alone (mid/side EQ), so the side's
# tone can follow the reference's without touching the mid.  Wider bounds than the main match EQ:
# side tone differs more between mixes, and it is less exposed.
SIDE_GRAPHIC_MAX_DB = 9.0
# The master's widener (a delayed copy of the mid added to the side) reaches widths that no
# side gain can on a near-mono mix.  Power of the added side relative to the mid: -100 dB (off)
# up to -3 dB.  A first fit starts it on, at -20 dB (from near off, the width term's pull is
# too weak to switch it on), and its costs turn it off where width and side EQ get there; it is
# left out of the settings when it moves the master's width by less than WIDENER_MIN_EFFECT_DB.
WIDENER_MAX = 0.5
WIDENER_START_DB = -20.0
WIDENER_MIN_EFFECT_DB = 0.1
WIDENER_DELAY_MS = 15.0
WIDENER_COST = 20.0      # per unit of power: width and side EQ come first
WIDENER_ON_COST = 0.2    # across its dB range, so that an unneeded widener goes all the way off
# The mix fit's left/right balance term: a miss of BALANCE_SCALE in (L - R) / (L + R) (about
# 0.9 dB of L/R level) in every band costs BALANCE_WEIGHT x a 1 dB tonal miss (Huber)
BALANCE_SCALE = 0.1
BALANCE_WEIGHT = 0.3
BALANCE_SIDE = 0.05  # a source whose bands lean less than this either way keeps its side
NPERSEG = 8192  # the mix fit's Welch segment (5.4 Hz bins at 44.1 kHz)
MASTER_FIT_MIN_GAIN = 0.002  # the master tone fit stops once 25 steps gain less than 0.2 %


@dataclass
class Spectra:
    """Power spectra on a Welch grid: mid, side, and the real mid/side cross spectrum."""
    mid: np.ndarray
    side: np.ndarray
    cross: np.ndarray

    @classmethod
    def of(cls, audio: np.ndarray, sample_rate: int, nperseg: int = NPERSEG) -> "Spectra":
        """Welch spectra on an ``nperseg`` grid (every spectra of one fit share it; the master
        fit uses the mix analysis' grid, so the two share one set of FFTs)."""
        return cls(*analysis.mid_side_power_spectra(audio, sample_rate, nperseg))

    @property
    def nperseg(self) -> int:
        return (len(self.mid) - 1) * 2


@dataclass
class Target:
    """What to match: normalised mid/side band curves (dB) and width (dB); None = don't."""
    mid_db: np.ndarray
    side_db: np.ndarray | None
    width_db: float | None

    @classmethod
    def of(cls, features: dict) -> "Target":
        tb = features["tonal_balance"]
        stereo = features["width_db"] > analysis.FLOOR_DB + 1
        return cls(np.asarray(tb["mid_db"]), np.asarray(tb["side_db"]) if stereo else None,
                   features["width_db"] if stereo else None)

    def shifted(self, predicted: "Target", measured: "Target") -> "Target":
        """This target corrected by a model error: aim off by (measured - predicted)."""
        def fix(t, p, m):
            return None if t is None or p is None or m is None else t - (m - p)
        return Target(fix(self.mid_db, predicted.mid_db, measured.mid_db),
                      fix(self.side_db, predicted.side_db, measured.side_db),
                      fix(self.width_db, predicted.width_db, measured.width_db))

    def moved(self, goal: "Target", start: "Target", tone: float, width: float) -> "Target":
        """This target plus ``amount * (goal - start)`` per aspect: moving a model's own view of
        a signal by a measured difference cancels the model's bias (amount 0 = no change).
        A mono start (no side) toward a stereo goal moves its width up from the analysis floor
        (-120 dB) and takes the goal's side tone: the side is then all the widener's."""
        def move(base, g, s, t):
            return None if base is None or g is None or s is None else base + t * (g - s)
        if start.width_db is None and goal.width_db is not None and width > 0:
            floor = analysis.FLOOR_DB
            return Target(move(self.mid_db, goal.mid_db, start.mid_db, tone), goal.side_db,
                          floor + width * (goal.width_db - floor))
        return Target(move(self.mid_db, goal.mid_db, start.mid_db, tone),
                      move(self.side_db, goal.side_db, start.side_db, tone),
                      move(self.width_db, goal.width_db, start.width_db, width))


def _torch(x):
    return torch.as_tensor(np.asarray(x), dtype=torch.float64)


SUBBANDS = 4  # per 1/3-octave band: the EQ is evaluated at 1/12-octave resolution


def _subband_edges(sample_rate: int) -> np.ndarray:
    """Edges (Hz) of the model's frequency cells: everything below the first band, 4 cells per
    1/3-octave band, everything above the last band up to Nyquist."""
    lo, hi = analysis.BAND_EDGES[0, 0], analysis.BAND_EDGES[-1, 1]
    inner = np.geomspace(lo, hi, analysis.N_BANDS * SUBBANDS + 1)
    inner = inner[inner < sample_rate / 2]
    return np.concatenate([[0.0], inner, [sample_rate / 2]])


def _cell_matrix(edges: np.ndarray, sample_rate: int, nperseg: int) -> np.ndarray:
    """(cells, bins): fraction of each FFT bin's width inside each cell."""
    df = sample_rate / nperseg
    f = np.arange(nperseg // 2 + 1) * df
    lo_bin, hi_bin = np.maximum(f - df / 2, 0.0), np.minimum(f + df / 2, sample_rate / 2)
    lo, hi = edges[:-1, None], edges[1:, None]
    return np.clip(np.minimum(hi, hi_bin) - np.maximum(lo, lo_bin), 0.0, None) / df


class _Model:
    """Spectra summarised on 1/12-octave cells; the EQ's |H|^2 evaluated at cell centres.  The
    console's processors act on the cell powers through the spectral executor
    (:mod:`automix.console.spectral`), generated from the console's one declaration."""

    def __init__(self, sample_rate: int, nperseg: int, match_eq: str = DEFAULT_MATCH_EQ):
        self.sr = sample_rate
        self.match_eq = MATCH_EQS[match_eq]  # the layout of "graphic" and "side_graphic" gains
        edges = _subband_edges(sample_rate)
        self.cells = _torch(_cell_matrix(edges, sample_rate, nperseg))   # (cells, bins)
        centres = np.sqrt(np.maximum(edges[:-1], 10.0) * edges[1:])
        self.omega = _torch(2 * np.pi * centres / sample_rate)
        n_inner = len(edges) - 3
        n_bands = min(analysis.N_BANDS, n_inner // SUBBANDS)
        band_of_cell = torch.zeros(analysis.N_BANDS, len(centres), dtype=torch.float64)
        for b in range(n_bands):
            band_of_cell[b, 1 + b * SUBBANDS:1 + (b + 1) * SUBBANDS] = 1.0
        self.bands = band_of_cell
        self.usable = _torch(np.arange(analysis.N_BANDS) < n_bands).to(torch.float64)

    def summarise(self, power) -> torch.Tensor:
        """Bin powers (..., bins) -> cell powers (..., cells)."""
        return _torch(power) @ self.cells.T

    def eq_power(self, params: dict) -> torch.Tensor:
        power = spectral.eq_power(params, self)
        if "graphic" in params:
            power = power * self.graphic_power(params["graphic"])
        return power

    def graphic_power(self, gains_db) -> torch.Tensor:
        """|H|^2 at the cells of a match EQ with these gains: all bands in one vectorised call."""
        g = graphic_band(gains_db, self.sr, self.match_eq)
        return (frequency_response([g], self.omega, self.sr).abs() ** 2).prod(-2)

    def master_powers(self, params: dict, mid, side):
        """Cell powers of the master's mid and side under master ``params`` (EQ -> stereo
        stage: side plus the widener's delayed mid, side EQ, width), from the mix's cell powers
        ``mid``, ``side``.  The widener's delayed mid is taken as uncorrelated with the side."""
        x = spectral.Powers(mid, side, torch.zeros_like(mid))
        for name in ("eq", "stereo"):  # the compressor and limiter: set from measurements
            x = spectral.PROCESSORS[name](x, params, self)
        return x.mid, x.side

    def features(self, p_mid, p_side):
        """Normalised band curves (dB) and width (dB) from cell powers."""
        out = []
        for p in (p_mid, p_side):
            b = self.bands @ p
            mean = (b * self.usable).sum() / self.usable.sum()
            out.append(10 * torch.log10(b + _EPS) - 10 * torch.log10(mean + _EPS))
        width = 10 * torch.log10((p_side.sum() + _EPS) / (p_mid.sum() + _EPS))
        return out[0], out[1], width

    def balance(self, p_mid, p_side, p_cross):
        """Left/right balance per 1/3-octave band, (L - R) / (L + R) in [-1, 1], from cell
        powers of mid, side and their real cross spectrum (|L|^2 - |R|^2 = 4 Re(M S*))."""
        return 2 * (self.bands @ p_cross) / (self.bands @ (p_mid + p_side) + _EPS)

    def loss(self, p_mid, p_side, target: Target, side_weight=0.5, width_weight=0.5):
        """Huber (1 dB) distance of the band curves and of the width: like docs/metrics.md's mean
        absolute dB errors, but smooth, so that a few far-off bands cannot dominate the fit."""
        mid_db, side_db, width = self.features(p_mid, p_side)
        w = self.usable

        def curve(a, b):
            return (_huber(a - _torch(b)) * w).sum() / w.sum()

        loss = curve(mid_db, target.mid_db)
        if target.side_db is not None:
            loss = loss + side_weight * curve(side_db, target.side_db)
        if target.width_db is not None:
            loss = loss + width_weight * _huber(width - target.width_db)
        return loss


def _graphic_centres(sample_rate: int, layout: MatchEQ = MATCH_EQS[DEFAULT_MATCH_EQ]) -> list[float]:
    """The match EQ's centres that the rate can hold (under 0.45 x the sample rate)."""
    return [f for f in layout.centres_hz if f < 0.45 * sample_rate]


def graphic_band(gains_db: torch.Tensor, sample_rate: int,
                 layout: MatchEQ = MATCH_EQS[DEFAULT_MATCH_EQ]) -> Band:
    """The match EQ as one vectorised peak band over its (G,) usable centres."""
    freqs = _graphic_centres(sample_rate, layout)
    g = torch.as_tensor(gains_db, dtype=torch.float64)[:len(freqs)]
    return Band("peak", torch.tensor(freqs, dtype=torch.float64),
                torch.full((len(freqs),), layout.q, dtype=torch.float64), g)


def graphic_eq_settings(gains_db, sample_rate: int, min_db: float = 0.05,
                        match_eq: str = DEFAULT_MATCH_EQ) -> list[dict]:
    """settings.json peak bands of a fitted match EQ (bands under ``min_db`` left out)."""
    layout = MATCH_EQS[match_eq]
    return [{"type": "peak", "freq_hz": float(f), "gain_db": round(float(g), 3), "q": layout.q}
            for f, g in zip(_graphic_centres(sample_rate, layout), gains_db)
            if abs(float(g)) >= min_db]


def _huber(x, delta: float = 1.0):
    a = x.abs()
    return torch.where(a < delta, 0.5 * x * x / delta, a - 0.5 * delta)


def _bounded(spec, raw):
    """A physical value inside the spec's range from an unbounded variable (tanh)."""
    mid = (spec.maximum + spec.minimum) / 2
    half = (spec.maximum - spec.minimum) / 2
    return mid + half * torch.tanh(raw)


def _unbounded(spec, value):
    mid = (spec.maximum + spec.minimum) / 2
    half = (spec.maximum - spec.minimum) / 2
    return torch.atanh(torch.clamp((torch.as_tensor(value, dtype=torch.float64) - mid) / half,
                                   -0.999, 0.999))


def _optimize(variables: dict, closure, steps: int, lr: float, betas=(0.9, 0.999), eps=1e-8,
              min_gain: float = 0.0, every: int = 25):
    """Plain Adam (written out: torch.optim's first import costs seconds of start-up).  With
    ``min_gain`` > 0 it stops early once ``every`` steps lower the loss by less than that
    fraction (a converged fit: further steps change the result by hundredths of a dB)."""
    params = list(variables.values())
    m = [torch.zeros_like(p) for p in params]
    v = [torch.zeros_like(p) for p in params]
    checkpoint = None
    for step in range(1, steps + 1):
        for p in params:
            p.grad = None
        loss = closure()
        loss.backward()
        if min_gain > 0 and step % every == 1:
            value = float(loss.detach())
            if checkpoint is not None and checkpoint - value < min_gain * abs(checkpoint):
                break
            checkpoint = value
        with torch.no_grad():
            for p, mi, vi in zip(params, m, v):
                mi.mul_(betas[0]).add_(p.grad, alpha=1 - betas[0])
                vi.mul_(betas[1]).addcmul_(p.grad, p.grad, value=1 - betas[1])
                m_hat = mi / (1 - betas[0] ** step)
                v_hat = vi / (1 - betas[1] ** step)
                p.sub_(lr * m_hat / (v_hat.sqrt() + eps))
    with torch.no_grad():
        return float(closure())


def _on(device: str):
    """A default-device context for non-CPU devices (on CPU, none: it costs per-op overhead)."""
    return torch.device(device) if device != "cpu" else contextlib.nullcontext()


def fit_mix(spectra: list[Spectra], is_stereo: list[bool], target: Target, start: dict,
            sample_rate: int, steps: int = 300, fit_eq: bool = True,
            device: str = "cpu", reference: Spectra | None = None,
            fader_range_db: float = FADER_RANGE_DB, fit_width: bool = True) -> tuple[dict, float]:
    """Fit track faders, EQ gains, pans and widths so the summed mix matches ``target``.

    ``start``: physical track parameters ``{name: (N,) tensor}`` (the heuristic or a network's
    prediction).  ``reference``: the reference's spectra (same grid); with them the mix also
    follows its left/right balance per band, which says on which side each source sits (mid
    and side powers alone cannot tell a mix from its mirror image).  Returns the fitted
    parameters (same form, on the CPU) and the final loss.  ``fader_range_db``: how far a fader
    may move from the start; ``fit_width`` False: widths stay as they start (stem mastering).
    """
    with _on(device):
        return _fit_mix(spectra, is_stereo, target, start, sample_rate, steps, fit_eq, reference,
                        fader_range_db, fit_width)


def _side_of(model: _Model, mid, start: dict, balance) -> torch.Tensor:
    """Per source, the side the reference's left/right balance puts it on, as a pan sign (+1
    right, -1 left, 0 when its bands lean neither way by more than BALANCE_SIDE; balance is
    (L - R) / (L + R), so a source leaning right has a negative one): the balance of each band,
    weighted by the source's share of that band at the start.  The fit starts panned sources
    on that side: near the centre the width term's pull outward (either way) is far stronger
    than the balance term's, so the fit alone would keep a source on its starting side."""
    power = model.eq_power(start) * (10 ** (start["gain_db"] / 10)).unsqueeze(-1) * mid
    share = (power @ model.bands.T) * model.usable                       # (N, bands)
    share = share / (share.sum(0, keepdim=True) + _EPS)
    lean = (share * balance).sum(-1) / (share.sum(-1) + _EPS)
    return torch.where(lean.abs() > BALANCE_SIDE, -torch.sign(lean), torch.zeros_like(lean))


def _fit_mix(spectra, is_stereo, target, start, sample_rate, steps, fit_eq, reference=None,
             fader_range_db=FADER_RANGE_DB, fit_width=True):
    model = _Model(sample_rate, spectra[0].nperseg)
    balance = None
    if reference is not None:
        balance = model.balance(*(model.summarise(getattr(reference, k)[None])[0]
                                  for k in ("mid", "side", "cross")))
    specs = spec_index(TRACK_SPECS)
    mid = model.summarise(np.stack([s.mid for s in spectra]))
    side = model.summarise(np.stack([s.side for s in spectra]))
    cross = model.summarise(np.stack([s.cross for s in spectra]))
    stereo = torch.tensor(is_stereo)
    start = {k: torch.as_tensor(v, dtype=torch.float64) for k, v in start.items()}
    # Faders move at most +-FADER_RANGE_DB from the start (the element balance is the start's,
    # refined); pans of centred sources (pan 0 at the start: bass, kick, vocals, stereo stems)
    # stay centred; EQ gains stay inside the spec's +-12 dB.
    names = (["width"] if fit_width else []) + (list(EQ_GAIN_KEYS) if fit_eq else [])
    raw = {k: _unbounded(specs[k], start[k]).clone().requires_grad_() for k in names}
    raw["gain_db"] = torch.zeros_like(start["gain_db"]).requires_grad_()
    pan = start["pan"]
    if balance is not None:
        pan = torch.where(_side_of(model, mid, start, balance) * pan < 0, -pan, pan)
    raw["pan"] = torch.atanh(pan.clamp(-0.99, 0.99)).clone().requires_grad_()
    centred = start["pan"] == 0

    def physical():
        p = dict(start)
        p.update({k: _bounded(specs[k], raw[k]) for k in names})
        p["gain_db"] = start["gain_db"] + fader_range_db * torch.tanh(raw["gain_db"])
        p["pan"] = torch.where(centred, start["pan"], torch.tanh(raw["pan"]))
        p["width"] = torch.where(stereo, p["width"], torch.ones_like(p["width"]))
        return p

    def closure():
        p = dict(physical(), is_stereo=stereo)
        # the track strips' linear stages (the compressors are applied to the spectra already)
        x = spectral.Powers(mid, side, cross)
        for name in ("eq", "fader", "pan_width"):
            x = spectral.PROCESSORS[name](x, p, model)
        p_mid, p_side = x.mid.sum(0), x.side.sum(0)
        loss = model.loss(p_mid, p_side, target)
        if balance is not None:  # Re(mid_out side_out*) of each panned, widened source
            p_cross = x.cross.sum(0)
            miss = (model.balance(p_mid, p_side, p_cross) - balance) / BALANCE_SCALE
            loss = loss + BALANCE_WEIGHT * (_huber(miss) * model.usable).sum() / model.usable.sum()
        reg = 0.5 * ((p["gain_db"] - start["gain_db"]) / 6).pow(2).mean()
        reg = reg + (p["pan"] - start["pan"]).pow(2).mean()
        reg = reg + (p["width"] - start["width"]).pow(2).mean()
        if fit_eq:
            reg = reg + sum(((p[k] - start[k]) / 6).pow(2).mean() for k in EQ_GAIN_KEYS) * 0.5
        return loss + reg

    final = _optimize(raw, closure, steps, lr=0.05)
    with torch.no_grad():
        return {k: v.detach().cpu().to(torch.float32) for k, v in physical().items()}, final


def predict_master(spectra: Spectra, params: dict, sample_rate: int,
                   match_eq: str = DEFAULT_MATCH_EQ) -> Target:
    """What the model predicts for the master's tone and width under ``params`` (whose match
    EQ gains, if any, are laid out as ``match_eq``)."""
    model = _Model(sample_rate, spectra.nperseg, match_eq)
    with torch.no_grad():
        p = {k: torch.as_tensor(v, dtype=torch.float64) for k, v in params.items()}
        mid_db, side_db, width = model.features(*model.master_powers(
            p, model.summarise(spectra.mid), model.summarise(spectra.side)))
    return Target(mid_db.numpy(), side_db.numpy(), float(width))


def fit_master_tone(spectra: Spectra, target: Target, start: dict, sample_rate: int,
                    steps: int = 300, device: str = "cpu",
                    init: dict | None = None,
                    match_eq: str = DEFAULT_MATCH_EQ) -> tuple[dict, float]:
    """Fit the master EQ gains, the match EQ's gains (returned under ``"graphic"``), the width
    and, when the target has a side, the side EQ's gains (``"side_graphic"``) and the widener's
    power relative to the mid (``"widener"``), so the master's tone and width match
    ``target``.  The fit is regularised toward ``start`` and begins at ``init`` (default:
    ``start``).  ``match_eq``: the layout of both match EQs (a :data:`MATCH_EQS` name)."""
    with _on(device):
        return _fit_master_tone(spectra, target, start, sample_rate, steps, init, match_eq)


def _graphic_raw(values, n: int, bound: float) -> torch.Tensor:
    g0 = torch.zeros(n) if values is None else torch.as_tensor(values)
    g0 = g0.to(torch.get_default_device(), torch.float64)  # a previous fit's result is on the CPU
    return torch.atanh((g0 / bound).clamp(-0.999, 0.999)).clone().requires_grad_()


def _smooth_cost(g: torch.Tensor, layout: MatchEQ = MATCH_EQS[DEFAULT_MATCH_EQ]) -> torch.Tensor:
    """Small and smooth (``g`` normalised by its bound): a tilt or a bump, not a comb."""
    return layout.size * g.pow(2).sum() + layout.curve * (g[2:] - 2 * g[1:-1] + g[:-2]).pow(2).sum()


# the widener's power is fitted on a dB scale, -100 dB up to WIDENER_MAX (Adam's steps are even)
_WIDENER_MID_DB = (10 * np.log10(WIDENER_MAX) - 100) / 2
_WIDENER_HALF_DB = (10 * np.log10(WIDENER_MAX) + 100) / 2


def _widener_power(raw: torch.Tensor) -> torch.Tensor:
    return 10 ** ((_WIDENER_MID_DB + _WIDENER_HALF_DB * torch.tanh(raw)) / 10)


def _widener_raw(power: float | None) -> torch.Tensor:
    """The fit's variable for a widener ``power``: None = a first fit's start, 0 = off."""
    db = WIDENER_START_DB if power is None else 10 * np.log10(max(power, 1e-12))
    value = np.arctanh(np.clip((db - _WIDENER_MID_DB) / _WIDENER_HALF_DB, -0.999, 0.999))
    return torch.tensor(value, dtype=torch.float64, requires_grad=True)


def _fit_master_tone(spectra, target, start, sample_rate, steps, init=None,
                     match_eq=DEFAULT_MATCH_EQ):
    model = _Model(sample_rate, spectra.nperseg, match_eq)
    layout = model.match_eq
    specs = spec_index(MASTER_SPECS)
    mid, side = model.summarise(spectra.mid), model.summarise(spectra.side)
    start = {k: torch.as_tensor(v, dtype=torch.float64) for k, v in start.items()}
    names = list(EQ_GAIN_KEYS) + (["width"] if target.width_db is not None else [])
    first = {k: torch.as_tensor(v, dtype=torch.float64) for k, v in (init or start).items()}
    raw = {k: _unbounded(specs[k], first[k]).clone().requires_grad_() for k in names}
    n = len(layout.centres_hz)
    raw["graphic"] = _graphic_raw(first.get("graphic"), n, layout.max_db)
    stereo = target.side_db is not None and target.width_db is not None
    # the widener only where the width control alone cannot get there (it adds up to +6 dB)
    widen = stereo and target.width_db > float(model.features(mid, side)[2]) + 20 * np.log10(
        specs["width"].maximum)
    if stereo:
        raw["side_graphic"] = _graphic_raw(first.get("side_graphic"), n, SIDE_GRAPHIC_MAX_DB)
    if widen:
        w0 = first.get("widener")
        raw["widener"] = _widener_raw(None if w0 is None else float(w0))

    def physical():
        p = dict(start)
        p.update({k: _bounded(specs[k], v) for k, v in raw.items() if k in specs})
        p["graphic"] = layout.max_db * torch.tanh(raw["graphic"])
        if stereo:
            p["side_graphic"] = SIDE_GRAPHIC_MAX_DB * torch.tanh(raw["side_graphic"])
        if widen:
            p["widener"] = _widener_power(raw["widener"])
        return p

    def closure():
        p = physical()
        loss = model.loss(*model.master_powers(p, mid, side), target, side_weight=0.25)
        # pulled toward the start (neutral, or the network's proposal)
        reg = sum(((p[k] - start[k]) / 6).pow(2) for k in EQ_GAIN_KEYS) * 0.02
        reg = reg + _smooth_cost(p["graphic"] / layout.max_db, layout)
        if stereo:
            reg = reg + _smooth_cost(p["side_graphic"] / SIDE_GRAPHIC_MAX_DB, layout)
        if widen:
            on = (torch.tanh(raw["widener"]) + 1) / 2  # 0 (off) .. 1 (WIDENER_MAX)
            reg = reg + WIDENER_COST * p["widener"] + WIDENER_ON_COST * on
        return loss + reg + 0.05 * (p["width"] - start["width"]) ** 2

    final = _optimize(raw, closure, steps, lr=0.05, min_gain=MASTER_FIT_MIN_GAIN)
    with torch.no_grad():
        p = physical()
        if widen:  # left out where it changes nothing audible
            off = dict(p, widener=torch.zeros((), dtype=torch.float64))
            effect = (model.features(*model.master_powers(p, mid, side))[2]
                      - model.features(*model.master_powers(off, mid, side))[2])
            if abs(float(effect)) < WIDENER_MIN_EFFECT_DB:
                p = off
        return {k: v.detach().cpu() for k, v in p.items()}, final
