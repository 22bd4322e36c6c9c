"""The spectral executor: the console graph on long-term power spectra (the model the fits use).

A signal is summarised by its mid and side power spectra and their real cross spectrum
``Re(M S*)`` on the cells of :class:`automix.match._Model` (a :class:`Powers`; every tensor
(..., cells)).  Each processor of :mod:`automix.console.graph` has one function in
:data:`PROCESSORS` mapping powers to powers:

* linear, time-invariant stages act exactly: EQ multiplies by ``|H|^2``, a fader by ``g^2``,
  pan/width mix mid and side through the console's pan law;
* a delay changes no long-term spectrum (its output is taken as uncorrelated with the dry
  signal: true of sources whose correlation time is shorter than the delay);
* the space processors act by their expected power responses: the reverb's (its noise tail in
  expectation, the early reflections' comb averaged over each cell) and the echo's (the echoes'
  powers summed), the wet return uncorrelated with the dry;
* nonlinear stages are estimates: the compressor applies its static curve at the signal's RMS
  level (plus makeup), the limiter nothing (the fits set both from measurements of the
  rendered audio); a gain lane its mean power gain;
* signals summed on a bus are taken as mutually uncorrelated (their powers add).

tests/test_console_graph.py states how close this comes to the rendered and measured master.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

import math

from ..dsp import deesser as _deesser
from ..dsp import delay as _delay
from ..dsp import reverb as _reverb
from ..dsp.dynamics import gain_computer
from ..dsp.eq import Band, frequency_response
from ..dsp.stereo import pan_gains
from .batched import layout_bands
from .graph import DEESSER_FIELDS, MASTER_NAME

_EPS = 1e-20


@dataclass
class Powers:
    """Cell powers of mid, side and the real mid/side cross spectrum."""
    mid: torch.Tensor
    side: torch.Tensor
    cross: torch.Tensor

    def scaled(self, g) -> "Powers":
        return Powers(self.mid * g, self.side * g, self.cross * g)

    def __add__(self, other: "Powers") -> "Powers":
        return Powers(self.mid + other.mid, self.side + other.side, self.cross + other.cross)

    def total(self) -> torch.Tensor:
        """Mean square per channel: (|L|^2 + |R|^2) / 2 = |M|^2 + |S|^2."""
        return self.mid.sum(-1) + self.side.sum(-1)


def _t(v):
    return torch.as_tensor(v, dtype=torch.float64)


def eq_power(p: dict, model, key: str | None = None) -> torch.Tensor:
    """|H|^2 at the model's cells of the fixed-layout EQ in ``p`` (or the band list ``p[key]``)."""
    bands = layout_bands(p) if key is None else [
        Band(b.type, b.freq_hz, b.q, b.gain_db) for b in p[key]]
    if not bands:
        return torch.ones_like(model.omega)
    return frequency_response(bands, model.omega, model.sr).abs() ** 2


def align(x: Powers, p, model) -> Powers:
    """Polarity and a whole-sample delay change no long-term spectrum of the strip's own
    signal.  What they change is how two correlated stems sum, which this model (powers add on
    a bus) does not describe: the fits take every stem as independent, aligned or not."""
    return x


def eq(x: Powers, p, model) -> Powers:
    h = eq_power(p, model)
    if "graphic" in p:  # the master fit's match EQ, on top of the layout
        h = h * model.graphic_power(p["graphic"])
    return x.scaled(h)


def deess(x: Powers, p, model) -> Powers:
    """The de-esser's long-term power response (:func:`automix.dsp.deesser.spectral_power_gain`:
    ``1 - E_w[1 - g^2] |B|^2``, never a boost) on mid, side and cross alike (one gain on both
    channels).  It needs the band signal's frame levels, a measurement of the audio:
    ``p["deesser.frames"] = (level_db, weights)`` from :func:`automix.dsp.deesser.band_frames`
    of the strip's input, with ``deesser.threshold_db`` etc. (scalars); without them:
    bypassed."""
    if "deesser.threshold_db" not in p or "deesser.frames" not in p:
        return x
    params = {k: float(p.get(f"deesser.{k}", _deesser.DEFAULTS[k])) for k in DEESSER_FIELDS}
    level, weights = p["deesser.frames"]
    freqs = (model.omega * (model.sr / (2 * math.pi))).detach().cpu().numpy()
    g = _deesser.spectral_power_gain(freqs, level, weights, model.sr, params)
    return x.scaled(torch.as_tensor(g, dtype=x.mid.dtype, device=x.mid.device))


# the compressor's level estimate: RMS level (dB) of the signal + this (its detector follows
# peaks, which sit above the RMS; 3 dB is a sine's, noise peaks higher still)
COMPRESSOR_CREST_DB = 3.0


def compress(x: Powers, p, model) -> Powers:
    level = 10 * torch.log10(x.total() + _EPS) + COMPRESSOR_CREST_DB
    gain_db = gain_computer(level, _t(p["comp.threshold_db"]), _t(p["comp.ratio"]),
                            _t(p["comp.knee_db"])) + p["comp.makeup_db"]
    return x.scaled((10 ** (gain_db / 10)).unsqueeze(-1))


def fader(x: Powers, p, model) -> Powers:
    g = 10 ** (_t(p["gain_db"]) / 10)
    if "lane_power" in p:  # mean of the lane's power gain over the song
        g = g * p["lane_power"]
    return x.scaled(g.unsqueeze(-1) if g.dim() else g)


def pan_width(x: Powers, p, model) -> Powers:
    """Width, then pan (balance for stereo sources), as the fits' mix model writes it."""
    gl, gr = pan_gains(_t(p["pan"]), torch.as_tensor(p["is_stereo"]))
    a, b = ((gl + gr) / 2), ((gl - gr) / 2)
    w = _t(p["width"])
    if a.dim():
        a, b, w = a.unsqueeze(-1), b.unsqueeze(-1), w.unsqueeze(-1)
    mid, side, cross = x.mid, x.side, x.cross
    return Powers(a * a * mid + b * b * w * w * side + 2 * a * b * w * cross,
                  b * b * mid + a * a * w * w * side + 2 * a * b * w * cross,
                  a * b * (mid + w * w * side) + w * (a * a + b * b) * cross)


def stereo(x: Powers, p, model) -> Powers:
    """Master mid/side stage: the widener's delayed mid (uncorrelated with the side) adds its
    power to the side, the side EQ filters the side, width scales it."""
    side, cross = x.side, x.cross
    if "widener" in p:            # the fit's variable: power relative to the mid
        side = side + p["widener"] * x.mid
    elif "widener.gain_db" in p:  # as settings.json writes it
        side = side + 10 ** (_t(p["widener.gain_db"]) / 10) * x.mid
    if "side_graphic" in p:
        hs = model.graphic_power(p["side_graphic"])
        side, cross = side * hs, cross * hs.sqrt()
    elif p.get("side_eq"):
        hs = eq_power(p, model, "side_eq")
        side, cross = side * hs, cross * hs.sqrt()
    w = _t(p["width"])
    return Powers(x.mid, side * w ** 2, cross * w)


def limit(x: Powers, p, model) -> Powers:
    return x  # set from measurements of the render (automix.loudness_search)


def delay(x: Powers, p, model) -> Powers:
    return x


def _space_params(p: dict, prefix: str, names) -> tuple[dict, bool]:
    """The ``prefix.*`` parameters as tensors, and whether they were scalars (one row)."""
    q = {k: torch.as_tensor(p[f"{prefix}.{k}"], dtype=torch.float64) for k in names}
    return q, all(v.dim() == 0 for v in q.values())


def _rows_like(r: torch.Tensor, scalar: bool) -> torch.Tensor:
    return r[0] if scalar else r


CELL_OCTAVES = 1 / 12  # the width of the model's cells (automix.match._Model)


def reverb(x: Powers, p, model) -> Powers:
    """The reverb's expected power response (:func:`automix.dsp.reverb.reverb_power_response`,
    the early reflections' comb averaged over each cell) on the input's mid (it takes
    ``(L+R)/2``); the wet return is uncorrelated with everything else on the bus."""
    q, scalar = _space_params(p, "reverb", _reverb.PARAMS)
    freqs = model.omega * (model.sr / (2 * math.pi))
    r = _reverb.reverb_power_response(q, freqs, model.sr, cell_octaves=CELL_OCTAVES)
    return Powers(*(_rows_like(r[k], scalar) * x.mid for k in ("mid", "side", "cross")))


def echo(x: Powers, p, model) -> Powers:
    """The echoes' comb-averaged power (:func:`automix.dsp.delay.delay_power_response`): stereo
    scales mid, side and cross alike; ping-pong works on the input's mid."""
    q, scalar = _space_params(p, "echo", _delay.PARAMS)
    mode = p.get("mode", "stereo")
    freqs = model.omega * (model.sr / (2 * math.pi))
    r = _delay.delay_power_response(q, freqs, model.sr, mode, average=True)
    if mode == "stereo":
        return x.scaled(_rows_like(r["gain"], scalar))
    return Powers(*(_rows_like(r[k], scalar) * x.mid for k in ("mid", "side", "cross")))


# processor name (graph.py) -> spectral implementation
PROCESSORS = {"align": align, "eq": eq, "deesser": deess, "compressor": compress, "fader": fader,
              "pan_width": pan_width, "stereo": stereo, "limiter": limit, "delay": delay, "reverb": reverb, "echo": echo}


def strip(x: Powers, p: dict, model) -> Powers:
    for name in ("align", "eq", "deesser", "compressor", "fader", "pan_width"):
        x = PROCESSORS[name](x, p, model)
    return x


def master_chain(x: Powers, p: dict, model) -> Powers:
    for name in ("eq", "compressor", "stereo", "fader", "limiter"):
        x = PROCESSORS[name](x, p, model)
    return x


def _pre_fader(x: Powers, p: dict, model) -> Powers:
    for name in ("align", "eq", "deesser", "compressor"):
        x = PROCESSORS[name](x, p, model)
    return x


def console_graph(sources: list[Powers], routing, track_params: list[dict], master_params: dict,
                  model, group_params: list[dict] = (), bus_params: list[dict] = ()):
    """``(mix, master)`` powers of the whole graph: one :class:`Powers` per track (its stem),
    per-node parameter dicts (tracks' with ``is_stereo``)."""
    zero = Powers(*(torch.zeros_like(sources[0].mid),) * 3)
    bus = zero
    inputs: dict = {}

    def add(node, y):
        nonlocal bus
        out = routing.output[node]
        if out == MASTER_NAME:
            bus = bus + y
        else:
            inputs[out] = inputs.get(out, zero) + y

    for node in routing.order:
        kind, i = node
        x = sources[i] if kind == "track" else inputs.get(node, zero)
        if kind == "bus":
            p = bus_params[i]
            y = PROCESSORS[p.get("type", "delay")](x, p, model)
            for name in ("eq", "fader"):
                y = PROCESSORS[name](y, p, model)
            add(node, y)
            continue
        p = track_params[i] if kind == "track" else dict(group_params[i], is_stereo=True)
        pre = _pre_fader(x, p, model)
        y = pan_width(fader(pre, p, model), p, model)
        add(node, y)
        for k, level, is_pre in routing.sends.get(node, ()):
            tap = pre if is_pre else y
            inputs[("bus", k)] = inputs.get(("bus", k), zero) + tap.scaled(10 ** (level / 10))
    return bus, master_chain(bus, master_params, model)
