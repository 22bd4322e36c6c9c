"""The block executor: the console graph on float64 numpy blocks, state carried between blocks.

Each processor of :mod:`automix.console.graph` has one implementation in :data:`PROCESSORS`: a
class built from the node's settings entry (``(entry, sample_rate, channels)``) whose
``process(x, start)`` works on a block ``x`` (channels, n) float64 C-contiguous starting at
sample ``start`` of the song, in place where it can.  The nodes (:class:`StripNode`,
:class:`BusNode`, :class:`MasterPre`) run them in the declared order; :func:`render_graph` runs
the nodes in the routing order of :func:`automix.console.graph.route`.

The kernels are the numba ones of :mod:`automix.dsp`; coefficients come from the same torch
functions as the batched executor's, so the two differ only in float rounding
(tests/test_console_graph.py).  A flat console (no groups, buses, sends or lanes) performs
exactly the operations of the v1 render, in the same order: v1 files render bit for bit as
before (tests/test_v1_fixtures.py).
"""
from __future__ import annotations

import numpy as np
import torch

from ..dsp import deesser as _deesser
from ..dsp import delay as _delay
from ..dsp import reverb as _reverb
from ..dsp.dynamics import (CompressorParams, compressor_gain, compressor_kernel, limit_in_place,
                            limit_scaled, log_level, lookahead_samples)
from ..dsp.eq import Band, EqState
from ..dsp.stereo import pan_gains, pan_width_accumulate
from .graph import MASTER_NAME, route

BLOCK = 1 << 16


def bands_of(eq: list[dict]) -> list[Band]:
    return [Band(b["type"], b["freq_hz"], b["q"], b.get("gain_db")) for b in eq]


def lane_db(lane: dict | None, start: int, n: int, sample_rate: int) -> np.ndarray | None:
    """The gain lane's value (dB) at samples ``start .. start + n - 1``, or None without one.

    The lane holds its first point's gain until that point; at each later point's ``time_s`` it
    moves linearly (in dB) to that point's gain over ``ramp_ms``: the sum of one clipped ramp
    per step, evaluated at each sample's own time, so the value of a sample does not depend on
    where a block starts (bit-exact re-render with any block size)."""
    if not lane or not lane["points"]:
        return None
    points, ramp = lane["points"], lane["ramp_ms"] / 1000.0
    t = (start + np.arange(n)) / sample_rate
    value = np.full(n, float(points[0]["gain_db"]))
    for prev, p in zip(points[:-1], points[1:]):
        step = p["gain_db"] - prev["gain_db"]
        if ramp > 0:
            value += step * np.clip((t - p["time_s"]) / ramp, 0.0, 1.0)
        else:
            value += step * (t >= p["time_s"])
    return value


# --- processors --------------------------------------------------------------------------------

class Align:
    """Polarity (exact negation) then a delay of ``delay_samples`` whole samples (a delay line
    carried between blocks); bypassed (no operation at all) at polarity 1, delay 0."""

    def __init__(self, entry, sample_rate, channels):
        self.flip = entry.get("polarity", 1) == -1
        self.line = np.zeros((channels, int(entry.get("delay_samples", 0))))

    def process(self, x, start):
        if self.flip:
            np.negative(x, out=x)
        d = self.line.shape[1]
        if d:
            joined = np.concatenate((self.line, x), axis=1)
            self.line = joined[:, joined.shape[1] - d:].copy()
            x[:] = joined[:, :x.shape[1]]
        return x


class Eq:
    def __init__(self, bands: list[dict], sample_rate: int, channels: int):
        self.state = EqState(bands_of(bands), sample_rate, channels)

    @classmethod
    def of(cls, entry, sample_rate, channels, field="eq"):
        return cls(entry.get(field) or [], sample_rate, channels)

    def process(self, x, start):
        self.state.process_inplace(x)
        return x


class Deesser:
    """The strip's de-esser (:class:`automix.dsp.deesser.DeesserState`, band filter and gain
    state carried between blocks); bypassed (no operation at all) when the entry has none."""

    def __init__(self, entry, sample_rate, channels):
        params = entry.get("deesser")
        self.state = _deesser.DeesserState(params, sample_rate, channels) if params else None

    def process(self, x, start):
        if self.state is not None:
            self.state.process_inplace(x)
        return x


class Compressor:
    def __init__(self, entry, sample_rate, channels):
        self.p = CompressorParams(entry.get("compressor"), sample_rate).array
        self.state = np.zeros(1)  # smoothed gain (dB), carried from block to block

    def process(self, x, start):
        compressor_kernel(x, self.p, self.state)
        return x


class Fader:
    """Gain (0 when muted) and the gain lane.  The static gain is not applied here: the pan
    stage takes it as its ``pre_gain`` (one pass, the v1 render's arithmetic); ``process``
    applies the lane, ``gain`` is the static factor."""

    def __init__(self, entry, sample_rate, channels):
        self.gain = 0.0 if entry.get("mute") else 10 ** (entry.get("gain_db", 0.0) / 20)
        self.lane = (entry.get("automation") or {}).get("gain_db")
        self.sr = sample_rate

    def process(self, x, start):
        db = lane_db(self.lane, start, x.shape[1], self.sr)
        if db is not None:
            x *= 10 ** (db / 20)
        return x


class PanWidth:
    def __init__(self, entry, sample_rate, channels):
        with torch.no_grad():
            gl, gr = pan_gains(torch.tensor([float(entry.get("pan", 0.0))], dtype=torch.float64),
                               torch.tensor([channels == 2]))
        self.gl, self.gr = float(gl), float(gr)
        self.width = float(entry.get("width", 1.0))

    def accumulate(self, x, pre_gain, out):
        """``out`` (2, n) += pan(width(x * pre_gain))."""
        pan_width_accumulate(x, pre_gain, self.width, self.gl, self.gr, out)


class Stereo:
    """The master's mid/side stage on mid ``M = (L+R)/2`` and side ``S = (L-R)/2``: the widener
    adds the mid delayed by ``delay_ms`` at ``gain_db`` to the side (Lauridsen's pseudo-stereo:
    complementary combs in L and R, so ``L+R`` is untouched and the master stays mono
    compatible), the side EQ filters the side alone, and ``S *= width``.  Both are bypassed
    when absent; then the stage is plain width."""

    def __init__(self, entry, sample_rate, channels):
        self.width = float(entry.get("width", 1.0))
        side_eq = entry.get("side_eq") or []
        self.side_eq = EqState(bands_of(side_eq), sample_rate, 1) if side_eq else None
        widener = entry.get("widener") or {}
        self.widen = 10 ** (widener["gain_db"] / 20) if widener else 0.0
        delay = int(round(widener.get("delay_ms", 0.0) * sample_rate / 1000)) if widener else 0
        self.delay_line = np.zeros(delay)  # the mid's last ``delay`` samples

    @property
    def plain(self) -> bool:
        return self.side_eq is None and not self.widen

    def process_gain(self, x, gain):
        """The stage and then ``gain``: a new (2, n) array."""
        out = np.zeros((2, x.shape[1]))
        if self.plain:
            pan_width_accumulate(x, 1.0, self.width, gain, gain, out)  # width, then gain
            return out
        mid = (x[0] + x[1]) / 2
        side = ((x[0] - x[1]) / 2)[None].copy()
        if self.widen:
            d = len(self.delay_line)
            line = np.concatenate((self.delay_line, mid))
            side[0] += self.widen * line[:len(mid)]
            self.delay_line = line[len(line) - d:]
        if self.side_eq is not None:
            self.side_eq.process_inplace(side)
        side = side[0] * self.width
        out[0] = (mid + side) * gain
        out[1] = (mid - side) * gain
        return out


class Limiter:
    """Whole-song: it needs the future (look-ahead); runs on the finished master bus."""

    def __init__(self, entry, sample_rate, channels):
        self.lim, self.sr = entry.get("limiter") or {}, sample_rate

    def process(self, x, start=0):
        if self.lim:
            limit_in_place(x, self.lim["ceiling_dbtp"], self.lim["release_ms"],
                           lookahead_samples(self.lim["lookahead_ms"], self.sr), self.sr)
        return x


class Delay:
    """A plain delay of ``processor.time_ms`` (whole samples), per channel."""

    def __init__(self, entry, sample_rate, channels):
        d = int(round(entry["processor"]["time_ms"] * sample_rate / 1000))
        self.line = np.zeros((channels, d))

    def process(self, x, start):
        d = self.line.shape[1]
        joined = np.concatenate((self.line, x), axis=1)
        self.line = joined[:, joined.shape[1] - d:].copy()
        x[:] = joined[:, :x.shape[1]]
        return x


class Reverb:
    """Send-bus reverb: :class:`automix.dsp.reverb.ReverbState` (the impulse response built once
    in float64, partitioned convolution of the bus's mid with the tail carried; partitions of
    the first block's length).  Returns a new (2, n) block."""

    def __init__(self, entry, sample_rate, channels):
        proc = entry["processor"]
        self.state = _reverb.ReverbState({k: proc[k] for k in _reverb.PARAMS}, sample_rate)

    def process(self, x, start):
        return self.state.process(x)


class Echo:
    """Send-bus feedback delay: :class:`automix.dsp.delay.DelayState` (numba recursion, state
    carried).  Returns a new (2, n) block."""

    def __init__(self, entry, sample_rate, channels):
        proc = entry["processor"]
        self.state = _delay.DelayState({k: proc[k] for k in _delay.PARAMS}, sample_rate,
                                       proc.get("mode", "stereo"))

    def process(self, x, start):
        return self.state.process(x)


# processor name (graph.py) -> block implementation
PROCESSORS = {"align": Align, "eq": Eq.of, "deesser": Deesser, "compressor": Compressor, "fader": Fader,
              "pan_width": PanWidth, "stereo": Stereo, "limiter": Limiter, "delay": Delay, "reverb": Reverb,
              "echo": Echo}


# --- nodes -------------------------------------------------------------------------------------

class StripNode:
    """A track or group strip: (align) -> EQ -> de-esser -> compressor -> fader (+ lane) ->
    pan/width."""

    def __init__(self, entry: dict, sample_rate: int, channels: int):
        self.align = PROCESSORS["align"](entry, sample_rate, channels)
        self.eq = PROCESSORS["eq"](entry, sample_rate, channels)
        self.deess = PROCESSORS["deesser"](entry, sample_rate, channels)
        self.comp = PROCESSORS["compressor"](entry, sample_rate, channels)
        self.fader = PROCESSORS["fader"](entry, sample_rate, channels)
        self.pan = PROCESSORS["pan_width"](entry, sample_rate, channels)

    def process(self, block: np.ndarray, out: np.ndarray | None = None, start: int = 0,
                sends=(), owned: bool = False) -> np.ndarray:
        """Add the strip's stereo output for ``block`` (channels, n) to ``out`` (2, n) float64
        C-contiguous (a new zero array if ``None``); returns ``out``.  ``sends``: ``(bus buffer
        (2, n), amplitude, pre_fader)``, each fed from the tap it names.  ``owned``: ``block``
        is a float64 C-contiguous buffer the caller no longer needs (processed in place)."""
        x = block if owned else np.array(block, dtype=np.float64, order="C")  # in place
        self.align.process(x, start)
        self.eq.process(x, start)
        self.deess.process(x, start)
        self.comp.process(x, start)
        for buf, amp, pre in sends:
            if pre:
                buf += amp * (x if x.shape[0] == 2 else np.vstack((x, x)))
        self.fader.process(x, start)
        if out is None:
            out = np.zeros((2, x.shape[1]))
        self.pan.accumulate(x, self.fader.gain, out)
        for buf, amp, pre in sends:
            if not pre:  # the strip's output at the send level, straight into the bus
                self.pan.accumulate(x, self.fader.gain * amp, buf)
        return out


class BusNode:
    """A send/return bus: processor -> return EQ -> fader (+ lane), summed into ``out``."""

    def __init__(self, entry: dict, sample_rate: int):
        self.proc = PROCESSORS[entry["processor"]["type"]](entry, sample_rate, 2)
        self.eq = PROCESSORS["eq"](entry, sample_rate, 2)
        self.fader = PROCESSORS["fader"](entry, sample_rate, 2)

    def process(self, x: np.ndarray, out: np.ndarray, start: int = 0,
                owned: bool = False) -> np.ndarray:
        x = self.proc.process(x if owned else np.array(x, dtype=np.float64, order="C"), start)
        self.eq.process(x, start)
        self.fader.process(x, start)
        out += x * self.fader.gain
        return out


class MasterPre:
    """The master chain before the limiter: EQ -> compressor -> stereo stage -> gain."""

    def __init__(self, master: dict, sample_rate: int):
        self.eq = PROCESSORS["eq"](master, sample_rate, 2)
        self.comp = PROCESSORS["compressor"](master, sample_rate, 2)
        self.stereo = PROCESSORS["stereo"](master, sample_rate, 2)
        self.fader = PROCESSORS["fader"](master, sample_rate, 2)

    def process(self, block: np.ndarray, start: int = 0) -> np.ndarray:
        """The chain's output for ``block`` (2, n): a new float64 array."""
        x = np.array(block, dtype=np.float64, order="C")
        self.eq.process(x, start)
        self.comp.process(x, start)
        return self.stereo.process_gain(x, self.fader.gain)


# v1 name of a track's strip
TrackStrip = StripNode


def apply_limiter_inplace(x: np.ndarray, lim: dict, sample_rate: int) -> None:
    """The limiter of settings ``lim`` on ``x`` (2, T) float64 C-contiguous, written over it."""
    PROCESSORS["limiter"]({"limiter": lim}, sample_rate, 2).process(x)


def compress(audio: np.ndarray, comp: dict, sample_rate: int) -> np.ndarray:
    """``audio`` through the compressor ``comp`` (a strip's processor), whole: a new array."""
    y = np.array(audio, dtype=np.float64, order="C")
    PROCESSORS["compressor"]({"compressor": comp}, sample_rate, y.shape[0]).process(y, 0)
    return y


class CompressorProbe:
    """The compressor's gain (linear, per sample) on one signal for many candidate settings:
    the detector level is computed once (the master stage's loudness-range search)."""

    def __init__(self, x: np.ndarray):
        self.level = log_level(x)

    def gain(self, comp: dict, sample_rate: int) -> np.ndarray:
        return compressor_gain(self.level.copy(), CompressorParams(comp, sample_rate).array,
                               np.zeros(1))


def limit_with_envelope(pre: np.ndarray, envelope: np.ndarray, gain_db: float, lim: dict,
                        sample_rate: int) -> np.ndarray:
    """The limiter of settings ``lim`` on ``pre`` scaled by ``gain_db``, from the detector
    envelope the loudness search measured (:func:`automix.dsp.dynamics.limit_scaled`)."""
    return limit_scaled(pre, envelope, gain_db, lim["ceiling_dbtp"], lim["release_ms"],
                        lookahead_samples(lim["lookahead_ms"], sample_rate), sample_rate)


def render_master(mix: np.ndarray, master: dict, sample_rate: int,
                  block: int = BLOCK) -> np.ndarray:
    """Master chain on a full-length float64 mix (2, T): a new array (``mix`` unchanged)."""
    chain = MasterPre(master, sample_rate)
    out = np.empty(mix.shape)
    for start in range(0, mix.shape[1], block):
        out[:, start:start + block] = chain.process(mix[:, start:start + block], start)
    apply_limiter_inplace(out, master["limiter"], sample_rate)
    return out


_POOL = None


PARALLEL_MIN_CORES = 4  # fewer: one thread (measured on a busy 2-core machine, threads cost
                        # ~15 % more CPU and gained no wall time)


def _strip_pool():
    """Threads for the track strips (the numba kernels release the GIL), or None under
    PARALLEL_MIN_CORES cores.  Its own pool: a render may run inside a job of
    :mod:`automix.background`."""
    global _POOL
    import os
    from concurrent.futures import ThreadPoolExecutor

    cores = min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                else (os.cpu_count() or 1))
    if cores < PARALLEL_MIN_CORES:
        return None
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=cores, thread_name_prefix="automix-strip")
    return _POOL


def render_graph(settings: dict, sources, length: int, block: int = BLOCK, progress=None,
                 stems_out: dict | None = None) -> np.ndarray:
    """The mix bus (2, length) float64 of validated ``settings``: tracks (read block by block
    from ``sources``, one per track), groups and buses in routing order.

    ``stems_out``: a dict to fill with each node's own contribution to the mix bus (name ->
    (2, length)): the tracks routed to the master, the groups, the buses; they sum to the mix
    (printed stems)."""
    sr = settings["sample_rate"]
    r = route(settings)
    groups, buses = settings.get("groups", []), settings.get("buses", [])
    nodes = {}
    for node in r.order:
        kind, i = node
        if kind == "track":
            nodes[node] = StripNode(settings["tracks"][i], sr, sources[i].channels)
        elif kind == "group":
            nodes[node] = StripNode(groups[i], sr, 2)
        else:
            nodes[node] = BusNode(buses[i], sr)
    amps = {node: [(k, 10 ** (level / 20), pre) for k, level, pre in lst]
            for node, lst in r.sends.items()}
    names = {node: (settings["tracks"] if node[0] == "track" else groups if node[0] == "group"
                    else buses)[node[1]]["name"] for node in r.order}
    if stems_out is not None:
        for node in r.order:
            if r.output[node] == MASTER_NAME:
                stems_out[names[node]] = np.zeros((2, length))
    tracks = [node for node in r.order if node[0] == "track"]
    pool = _strip_pool() if len(tracks) > 1 else None

    # each track's own buffers, kept from block to block (fresh pages would cost page faults)
    buffers = {node: np.empty((1 + len(amps[node]), 2, min(block, length)))
               for node in tracks}

    def track_block(node, start, n):
        """One track's block into buffers of its own (so tracks run in parallel): its
        contribution and one buffer per send."""
        own = buffers[node]
        if own.shape[2] == n:
            own.fill(0.0)
        else:  # the last, shorter block (C-contiguous rows for the kernels)
            own = np.zeros((own.shape[0], 2, n))
        sends = [(own[1 + j], a, pre) for j, (_, a, pre) in enumerate(amps[node])]
        nodes[node].process(sources[node[1]].read(n), own[0], start, sends)
        return own[0], own[1:]

    mix = np.empty((2, length))
    for start in range(0, length, block):
        n = min(block, length - start)
        bus = np.zeros((2, n))
        inputs = {node: np.zeros((2, n)) for node in r.order if node[0] != "track"}
        # tracks: in parallel (the kernels release the GIL) each into its own buffers, then
        # summed in track order (0 + y = y exactly: the arithmetic of the sequential sum
        # below, which adds each strip straight into its bus; both give v1 bit for bit)
        if pool is None:
            for node in tracks:
                out = r.output[node]
                own = stems_out is not None and out == MASTER_NAME
                dest = np.zeros((2, n)) if own else (bus if out == MASTER_NAME else inputs[out])
                nodes[node].process(sources[node[1]].read(n), dest, start,
                                    [(inputs[("bus", k)], a, pre) for k, a, pre in amps[node]])
                if own:
                    stems_out[names[node]][:, start:start + n] = dest
                    bus += dest
        done = (pool.map(track_block, tracks, [start] * len(tracks), [n] * len(tracks))
                if pool is not None else ())
        for node, (own, sent) in zip(tracks, done):
            out = r.output[node]
            target = bus if out == MASTER_NAME else inputs[out]
            target += own
            if stems_out is not None and out == MASTER_NAME:
                stems_out[names[node]][:, start:start + n] = own
            for (k, _, _), buf in zip(amps[node], sent):
                inputs[("bus", k)] += buf
        for node in r.order[len(tracks):]:
            out = r.output[node]
            own = stems_out is not None and out == MASTER_NAME
            dest = np.zeros((2, n)) if own else (bus if out == MASTER_NAME else inputs[out])
            strip = nodes[node]
            if node[0] == "bus":
                strip.process(inputs[node], dest, start, owned=True)
            else:
                strip.process(inputs[node], dest, start,
                              [(inputs[("bus", k)], a, pre) for k, a, pre in amps[node]],
                              owned=True)
            if own:
                stems_out[names[node]][:, start:start + n] = dest
                bus += dest
        mix[:, start:start + n] = bus
        if progress:
            progress(start + n, length)
    return mix
