"""The batched executor: the console graph in torch, differentiable, float32 or float64, CPU/GPU.

    stems (B, N, 2, T) --track strip: (align) EQ -> compressor -> fader -> pan/width--> groups / master
    groups (B, G, 2, T) --group strip--> master or another group;  sends -> buses (B, 2, T)
    --processor -> return EQ -> fader--> master;  master: EQ -> compressor -> stereo (widener,
    side EQ, width) -> fader -> limiter

Each processor of :mod:`automix.console.graph` has one function in :data:`PROCESSORS`.
Parameters are dicts of physical-unit tensors named by the declaration: ``(B, N)`` for tracks,
``(B, G)`` for groups, ``(B, K)`` for buses, ``(B,)`` for the master.  ``mask`` (B, N) marks real
tracks (padding is silent and contributes nothing); ``is_stereo`` (B, N) picks the pan law (mono
sources are carried as two equal channels).  Optional keys: ``"lane_db"`` (B, N|G, T), a gain
lane already sampled (:func:`lane_curve`); a strip's de-esser, ``"deesser.threshold_db"`` etc.
(rows,) (:func:`deess`); the master's ``"side_eq"`` (a list of
:class:`~automix.dsp.eq.Band` of (B,) tensors) and ``"widener.gain_db"`` / ``"widener.delay_ms"``
(the delay is whole samples, not differentiable, as the limiter's look-ahead).

The block executor (:mod:`automix.console.blocks`) runs the same processors on full songs;
tests hold the two to agree.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..dsp import deesser as _deesser
from ..dsp import delay as _delay
from ..dsp import reverb as _reverb
from ..dsp.dynamics import compressor, db_to_amp, limiter, lookahead_samples
from ..dsp.eq import Band, eq_fsm
from ..dsp.stereo import apply_width, pan_and_width
from .graph import DEESSER_FIELDS, LIMITER_LOOKAHEAD_MS, MASTER_NAME, TRACK_EQ_LAYOUT, eq_key


def layout_bands(params: dict, layout=TRACK_EQ_LAYOUT, expand=lambda t: t) -> list[Band]:
    """Bands of the fixed EQ layout from a parameter dict (``expand`` shapes each tensor)."""
    bands = []
    for i, kind in enumerate(layout):
        gain = (None if kind in ("highpass", "lowpass")
                else expand(params[eq_key(i, kind, "gain_db")]))
        bands.append(Band(kind, expand(params[eq_key(i, kind, "freq_hz")]),
                          expand(params[eq_key(i, kind, "q")]), gain))
    return bands


def _col(t):
    return t.reshape(-1, 1)


# --- processors: x (rows, channels, T), p: parameters with (rows,) tensors ---------------------

def align(x, p, sample_rate):
    """The strip's polarity and whole-sample delay when ``p`` holds ``polarity`` /
    ``delay_samples`` (rows,) (settings ``tracks[i].polarity`` / ``delay_samples``); without
    them: bypassed.  A row of polarity 1 and delay 0 passes unchanged."""
    if "polarity" in p:
        x = x * p["polarity"].to(x.dtype).reshape(-1, 1, 1)
    if "delay_samples" in p:
        delays = p["delay_samples"].reshape(-1)
        x = torch.stack([_delayed(x[r], int(d)) for r, d in enumerate(delays)])
    return x


def eq(x, p, sample_rate):
    return eq_fsm(x, layout_bands(p, expand=_col), sample_rate)


def deess(x, p, sample_rate):
    """The strip's de-esser (:func:`automix.dsp.deesser.deesser`) when ``p`` holds
    ``deesser.threshold_db`` (rows,); its other ``deesser.*`` keys default as in
    :data:`automix.dsp.deesser.DEFAULTS`.  A row with ratio 1 passes unchanged (bit for bit:
    its gain is exactly 1).  Without the keys: bypassed."""
    if "deesser.threshold_db" not in p:
        return x
    q = {k: p.get(f"deesser.{k}", _deesser.DEFAULTS[k]) for k in DEESSER_FIELDS}
    y, _, _ = _deesser.deesser(x, q["threshold_db"], q["ratio"], q["attack_ms"],
                               q["release_ms"], sample_rate, knee_db=q["knee_db"],
                               freq_hz=q["freq_hz"], q=q["q"])
    return y


def compress(x, p, sample_rate):
    y, _ = compressor(x, p["comp.threshold_db"], p["comp.ratio"], p["comp.attack_ms"],
                      p["comp.release_ms"], p["comp.knee_db"], p["comp.makeup_db"], sample_rate)
    return y


def fader(x, p, sample_rate):
    x = x * db_to_amp(p["gain_db"]).reshape(-1, 1, 1)
    if "lane_db" in p:
        x = x * db_to_amp(p["lane_db"]).unsqueeze(1)
    return x


def pan_width(x, p, sample_rate):
    return pan_and_width(x, p["pan"], p["width"], p["is_stereo"])


def delay_samples(delay_ms, sample_rate) -> int:
    return int(round(float(delay_ms) * sample_rate / 1000))


def _delayed(x, d: int):
    """``x`` (..., T) delayed by ``d`` whole samples (zeros before)."""
    return F.pad(x, (d, 0))[..., :x.shape[-1]] if d > 0 else x


def stereo(x, p, sample_rate):
    """Master mid/side stage (see :class:`automix.console.blocks.Stereo`)."""
    side_eq, widen = p.get("side_eq"), "widener.gain_db" in p
    if not side_eq and not widen:
        return apply_width(x, p["width"])
    mid = (x[:, 0] + x[:, 1]) / 2
    side = (x[:, 0] - x[:, 1]) / 2
    if widen:
        d = delay_samples(p["widener.delay_ms"], sample_rate)
        side = side + db_to_amp(p["widener.gain_db"]).reshape(-1, 1) * _delayed(mid, d)
    if side_eq:
        side = eq_fsm(side[:, None], [Band(b.type, _col(b.freq_hz), _col(b.q),
                                           None if b.gain_db is None else _col(b.gain_db))
                                      for b in side_eq], sample_rate)[:, 0]
    side = side * p["width"].reshape(-1, 1)
    return torch.stack((mid + side, mid - side), dim=1)


def limit(x, p, sample_rate, lookahead_ms=LIMITER_LOOKAHEAD_MS):
    return limiter(x, p["limiter.ceiling_dbtp"], p["limiter.release_ms"],
                   lookahead_samples(lookahead_ms, sample_rate), sample_rate)


def delay(x, p, sample_rate):
    """A plain delay; ``delay.time_ms`` (rows,) in whole samples, row by row."""
    times = p["delay.time_ms"].reshape(-1)
    return torch.stack([_delayed(x[r], delay_samples(times[r], sample_rate))
                        for r in range(x.shape[0])])


def reverb(x, p, sample_rate):
    """Send-bus reverb (:func:`automix.dsp.reverb.reverb`): the mid of ``x`` convolved with the
    impulse response built from the ``reverb.*`` parameters (rows,); differentiable in all."""
    return _reverb.reverb(x, {k: p[f"reverb.{k}"] for k in _reverb.PARAMS}, sample_rate)


def echo(x, p, sample_rate):
    """Send-bus feedback delay (:func:`automix.dsp.delay.delay`); ``p["mode"]``: ``"stereo"``
    (default) or ``"pingpong"``."""
    return _delay.delay(x, {k: p[f"echo.{k}"] for k in _delay.PARAMS}, sample_rate,
                        p.get("mode", "stereo"))


# processor name (graph.py) -> batched implementation
PROCESSORS = {"align": align, "eq": eq, "deesser": deess, "compressor": compress, "fader": fader,
              "pan_width": pan_width, "stereo": stereo, "limiter": limit, "delay": delay, "reverb": reverb, "echo": echo}


# --- nodes ------------------------------------------------------------------------------------

def _strip(x, p, is_stereo, sample_rate, taps: bool = False):
    """(rows, 2, T) through a strip; with ``taps``: ``(pre-fader, output)``."""
    x = PROCESSORS["align"](x, p, sample_rate)
    x = PROCESSORS["eq"](x, p, sample_rate)
    x = PROCESSORS["deesser"](x, p, sample_rate)
    x = PROCESSORS["compressor"](x, p, sample_rate)
    pre = x
    x = PROCESSORS["fader"](x, p, sample_rate)
    x = PROCESSORS["pan_width"](x, dict(p, is_stereo=is_stereo), sample_rate)
    return (pre, x) if taps else x


def _flat(params: dict, B: int, N: int) -> dict:
    return {k: (v.reshape(B * N, *v.shape[2:]) if isinstance(v, torch.Tensor) else v)
            for k, v in params.items()}


def track_strips(stems, is_stereo, params, sample_rate, taps: bool = False):
    """(B, N, 2, T) -> processed tracks (B, N, 2, T) (with ``taps``: also the pre-fader tap)."""
    B, N, C, T = stems.shape
    out = _strip(stems.reshape(B * N, C, T), _flat(params, B, N), is_stereo.reshape(B * N),
                 sample_rate, taps)
    if taps:
        return out[0].reshape(B, N, C, T), out[1].reshape(B, N, C, T)
    return out.reshape(B, N, C, T)


def mix_bus(stems, mask, is_stereo, params, sample_rate):
    """Sum of the track strips over the real (unmasked) tracks: (B, 2, T)."""
    tracks = track_strips(stems, is_stereo, params, sample_rate)
    return (tracks * mask[:, :, None, None].to(tracks.dtype)).sum(1)


def master_chain(mix, params, sample_rate, lookahead_ms=LIMITER_LOOKAHEAD_MS):
    """(B, 2, T) -> (B, 2, T)."""
    x = PROCESSORS["eq"](mix, params, sample_rate)
    x = PROCESSORS["compressor"](x, params, sample_rate)
    x = PROCESSORS["stereo"](x, params, sample_rate)
    x = PROCESSORS["fader"](x, params, sample_rate)
    return limit(x, params, sample_rate, lookahead_ms)


def console(stems, mask, is_stereo, track_params, master_params, sample_rate):
    """The flat console: returns ``(mix, master)``, each (B, 2, T)."""
    mix = mix_bus(stems, mask, is_stereo, track_params, sample_rate)
    return mix, master_chain(mix, master_params, sample_rate)


def _column(params: dict, j: int) -> dict:
    """Column ``j`` of (B, K) tensors; a list or tuple holds one value per column (a bus's
    processor ``type`` and ``mode``); anything else is shared."""
    return {k: (v[:, j] if isinstance(v, torch.Tensor) else v[j] if isinstance(v, (list, tuple))
                else v) for k, v in params.items()}


def console_graph(stems, mask, is_stereo, routing, track_params, master_params, sample_rate,
                  group_params=None, bus_params=None, lookahead_ms=LIMITER_LOOKAHEAD_MS):
    """The whole graph: ``routing`` (a :class:`~automix.console.graph.Route`, shared by the
    batch) says where each track, group and bus goes and what it sends.  Returns ``(mix,
    master)``, each (B, 2, T); the sum onto the master bus is in routing order (tracks first),
    as the block executor sums."""
    B, N, C, T = stems.shape
    pre, tracks = track_strips(stems, is_stereo, track_params, sample_rate, taps=True)
    m = mask[:, :, None, None].to(tracks.dtype)
    pre, tracks = pre * m, tracks * m
    bus = torch.zeros(B, C, T, dtype=stems.dtype, device=stems.device)
    inputs: dict = {}

    def add(node, x):
        nonlocal bus
        out = routing.output[node]
        if out == MASTER_NAME:
            bus = bus + x
        else:
            inputs[out] = inputs.get(out, 0) + x

    def send(node, pre_tap, post):
        for k, level, is_pre in routing.sends.get(node, ()):
            tap = pre_tap if is_pre else post
            inputs[("bus", k)] = inputs.get(("bus", k), 0) + tap * 10 ** (level / 20)

    true = torch.ones(B, dtype=torch.bool, device=stems.device)
    for node in routing.order:
        kind, i = node
        if kind == "track":
            add(node, tracks[:, i])
            send(node, pre[:, i], tracks[:, i])
            continue
        x = inputs.get(node)
        if x is None:
            x = torch.zeros_like(bus)
        if kind == "group":
            p_pre, y = _strip(x, _column(group_params, i), true, sample_rate, taps=True)
            add(node, y)
            send(node, p_pre, y)
        else:
            p = _column(bus_params, i)
            y = PROCESSORS[p.get("type", "delay")](x, p, sample_rate)
            y = PROCESSORS["eq"](y, p, sample_rate)
            add(node, PROCESSORS["fader"](y, p, sample_rate))
    return bus, master_chain(bus, master_params, sample_rate, lookahead_ms)


def lane_curve(lane: dict | None, T: int, sample_rate: int, dtype=torch.float64, start: int = 0):
    """A gain lane (settings ``automation.gain_db``) sampled at ``T`` samples: (T,) dB
    (zeros without one); the formula of :func:`automix.console.blocks.lane_db`."""
    t = (start + torch.arange(T, dtype=torch.float64)) / sample_rate
    if not lane or not lane["points"]:
        return torch.zeros(T, dtype=dtype)
    points, ramp = lane["points"], lane["ramp_ms"] / 1000.0
    value = torch.full((T,), float(points[0]["gain_db"]), dtype=torch.float64)
    for prev, p in zip(points[:-1], points[1:]):
        step = p["gain_db"] - prev["gain_db"]
        if ramp > 0:
            value = value + step * ((t - p["time_s"]) / ramp).clamp(0.0, 1.0)
        else:
            value = value + step * (t >= p["time_s"]).to(torch.float64)
    return value.to(dtype)
