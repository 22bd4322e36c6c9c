"""The console, declared once: its processors, their parameters, and the routing graph.

Everything else is generated from this file:

* the parameter keys (``eq2_peak.gain_db``, ``comp.ratio``, ``gain_db`` ...), their
  :class:`ParamSpec` (unit, range, default, scale) and where each lives in a settings.json entry
  (:attr:`Param.where`);
* the network's output layout (:data:`TRACK_SPECS`, :data:`MASTER_SPECS`, re-exported by
  :mod:`automix.params`; the shipped checkpoint was trained on exactly these);
* the three executors, each a table ``processor name -> implementation``:
  :mod:`automix.console.batched` (torch, differentiable, training),
  :mod:`automix.console.blocks` (float64 block render, what ``automix render`` runs) and
  :mod:`automix.console.spectral` (the long-term-spectrum model the fits use).
  tests/test_console_graph.py fails when a declared processor lacks one of the three.

The graph (docs/console.md)::

    track strips --(member of a group?)--> group strips --(output)--> ... --> master chain
          \\--- sends (level dB, pre/post fader) ---> buses: processor -> return EQ -> fader --/

* a **strip** (tracks and groups): ``align -> eq -> deesser -> compressor -> fader -> pan_width``
  (the alignment -- polarity, whole-sample delay -- and the de-esser only where settings name
  them); the fader takes the gain automation lane (``automation.gain_db``).
* a **bus** (send/return): ``processor (delay, reverb or echo) -> eq (return EQ) -> fader``.
* the **master**: ``eq -> compressor -> stereo (widener, side EQ, width) -> fader -> limiter``.

Adding a processor: declare a :class:`Processor` here (its parameters with their settings
location), add one function to each executor's ``PROCESSORS`` table, add its settings fields to
:mod:`automix.settings` and docs/settings.md.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

SPEC_VERSION = 1  # bump when a name, range, scale or the layout changes (checkpoints record it)

# Structural settings: not predicted, not differentiable (integer samples).
LIMITER_LOOKAHEAD_MS = 2.0

# The fixed EQ layout of the network's strips (settings.json may hold any list of bands).
TRACK_EQ_LAYOUT = ("highpass", "lowshelf", "peak", "peak", "peak", "highshelf")
GAINLESS = ("highpass", "lowpass")


@dataclass(frozen=True)
class ParamSpec:
    """One parameter's unit, range, default and scale.  The network predicts values in [0, 1];
    :meth:`to_physical` maps them to physical units and :meth:`to_normalized` back.
    Frequencies, Q, times and ratios use a log scale (equal steps = equal ratios)."""
    name: str
    unit: str
    minimum: float
    maximum: float
    default: float
    scale: str = "linear"  # or "log"

    def to_physical(self, normalized):
        n = torch.as_tensor(normalized)
        if self.scale == "log":
            lo, hi = math.log(self.minimum), math.log(self.maximum)
            return torch.exp(lo + n * (hi - lo))
        return self.minimum + n * (self.maximum - self.minimum)

    def to_normalized(self, physical):
        p = torch.as_tensor(physical)
        if self.scale == "log":
            lo, hi = math.log(self.minimum), math.log(self.maximum)
            return (torch.log(p) - lo) / (hi - lo)
        return (p - self.minimum) / (self.maximum - self.minimum)


@dataclass(frozen=True)
class Param:
    """A parameter of a processor: its key in the executors' parameter dicts, its spec, and
    its place in the node's settings.json entry (a path of keys and list indices, e.g.
    ``("eq", 2, "gain_db")``)."""
    spec: ParamSpec
    where: tuple

    @property
    def key(self) -> str:
        return self.spec.name


@dataclass(frozen=True)
class Processor:
    """A processor of the console.  ``params``: its fixed-layout parameters (what the network
    predicts and the fits move); ``fields``: the settings.json fields of a node entry it reads
    (any band list, etc.: the render executor takes any); ``fixed``: constant entries written
    beside the parameters (an EQ band's type)."""
    name: str
    fields: tuple[str, ...]
    params: tuple[Param, ...] = ()
    fixed: tuple[tuple[tuple, object], ...] = ()
    doc: str = ""


def _p(key, unit, lo, hi, default, scale="linear", where=None) -> Param:
    return Param(ParamSpec(key, unit, lo, hi, default, scale), where or (key,))


# --- processors ------------------------------------------------------------------------------

_EQ_RANGES = {  # per slot of TRACK_EQ_LAYOUT: (freq lo, hi, default), (q lo, hi, default)
    0: ((20.0, 600.0, 20.0), (0.5, 2.0, 0.707)),
    1: ((30.0, 600.0, 120.0), (0.4, 1.5, 0.707)),
    2: ((40.0, 1000.0, 200.0), (0.3, 8.0, 1.0)),
    3: ((200.0, 5000.0, 1000.0), (0.3, 8.0, 1.0)),
    4: ((1000.0, 16000.0, 4000.0), (0.3, 8.0, 1.0)),
    5: ((1500.0, 18000.0, 8000.0), (0.4, 1.5, 0.707)),
}


def eq_key(i: int, kind: str, name: str) -> str:
    """The key of band ``i`` (of type ``kind``) parameter ``name`` of the fixed EQ layout."""
    return f"eq{i}_{kind}.{name}"


def eq_processor(name: str = "eq", settings_field: str = "eq", max_gain: float = 12.0,
                 layout=TRACK_EQ_LAYOUT) -> Processor:
    """A parametric EQ: any list of bands in settings; the fixed layout for network and fits."""
    params, fixed = [], []
    for i, kind in enumerate(layout):
        (flo, fhi, fdef), (qlo, qhi, qdef) = _EQ_RANGES[i]
        params.append(_p(eq_key(i, kind, "freq_hz"), "Hz", flo, fhi, fdef, "log",
                         (settings_field, i, "freq_hz")))
        if kind not in GAINLESS:
            params.append(_p(eq_key(i, kind, "gain_db"), "dB", -max_gain, max_gain, 0.0,
                             where=(settings_field, i, "gain_db")))
        params.append(_p(eq_key(i, kind, "q"), "", qlo, qhi, qdef, "log",
                         (settings_field, i, "q")))
        fixed.append(((settings_field, i, "type"), kind))
    return Processor(name, (settings_field,), tuple(params), tuple(fixed),
                     "RBJ biquads in series (automix.dsp.eq)")


COMPRESSOR_FIELDS = ("threshold_db", "ratio", "attack_ms", "release_ms", "knee_db", "makeup_db")

COMPRESSOR = Processor("compressor", ("compressor",), tuple(
    _p(f"comp.{k}", unit, lo, hi, d, scale, ("compressor", k)) for k, unit, lo, hi, d, scale in (
        ("threshold_db", "dB", -60.0, 0.0, 0.0, "linear"),
        ("ratio", "", 1.0, 20.0, 1.0, "log"),
        ("attack_ms", "ms", 0.1, 100.0, 10.0, "log"),
        ("release_ms", "ms", 10.0, 2000.0, 150.0, "log"),
        ("knee_db", "dB", 0.0, 12.0, 6.0, "linear"),
        ("makeup_db", "dB", -12.0, 24.0, 0.0, "linear"))),
    doc="feed-forward, peak detector, soft knee (automix.dsp.dynamics)")


def fader(lo: float, hi: float) -> Processor:
    """Gain, mute and the gain automation lane (dB added to the fader, sample by sample)."""
    return Processor("fader", ("gain_db", "mute", "automation"),
                     (_p("gain_db", "dB", lo, hi, 0.0),),
                     doc="gain_db + automation lane; mute = gain 0")


PAN_WIDTH = Processor("pan_width", ("pan", "width"),
                      (_p("pan", "", -1.0, 1.0, 0.0), _p("width", "", 0.0, 2.0, 1.0)),
                      doc="width (mid/side) then constant-power pan (automix.dsp.stereo)")

STEREO = Processor("stereo", ("widener", "side_eq", "width"), (_p("width", "", 0.0, 2.0, 1.0),),
                   doc="master mid/side stage: widener (delayed mid into the side), side EQ, width")

LIMITER = Processor("limiter", ("limiter",), (
    _p("limiter.ceiling_dbtp", "dBTP", -12.0, 0.0, -1.0, where=("limiter", "ceiling_dbtp")),
    _p("limiter.release_ms", "ms", 10.0, 1000.0, 80.0, "log", ("limiter", "release_ms"))),
    doc="true-peak look-ahead limiter (automix.dsp.dynamics), whole song")

# A strip's de-esser (automix.dsp.deesser): set by a rule (automix.timeline), not predicted by
# the network, so it declares no fixed-layout parameters (the strip's specs, and the shipped
# checkpoint, are unchanged).  Absent from a settings entry: bypassed, the strip's arithmetic
# is that of the v1 render.  The batched executor reads ``deesser.<field>`` keys (DEESSER_KEYS)
# when a caller passes them.
DEESSER_FIELDS = ("threshold_db", "ratio", "attack_ms", "release_ms", "knee_db", "freq_hz", "q")
DEESSER_KEYS = tuple(f"deesser.{k}" for k in DEESSER_FIELDS)
DEESSER = Processor("deesser", ("deesser",),
                    doc="dynamic cut of the 4-10 kHz sibilance band, y = x + (g - 1) B(x) "
                        "(automix.dsp.deesser); absent = bypassed")

# A strip's polarity and whole-sample delay (automix.stem_align sets them for stems that carry
# one source twice): structural like the limiter's look-ahead, not predicted, no fixed-layout
# parameters.  Absent (polarity 1, delay 0): no operation at all, the v1 render's arithmetic.
# The batched executor reads ``polarity`` / ``delay_samples`` (rows,) when a caller passes them.
ALIGN = Processor("align", ("polarity", "delay_samples"),
                  doc="polarity (+1/-1, exact negation) then a delay of whole samples (zeros "
                      "before); first in the strip; absent = bypassed")

DELAY = Processor("delay", ("processor",),
                  (_p("delay.time_ms", "ms", 1.0, 2000.0, 250.0, "log", ("processor", "time_ms")),),
                  doc="a plain delay (the test processor of send buses)")


def _space(name: str, specs, doc: str) -> Processor:
    """A space processor of send buses (automix.dsp.reverb / delay): its specs (the network's
    ranges) keyed ``name.field``, each living at ``processor.field``."""
    return Processor(name, ("processor",), tuple(
        _p(f"{name}.{key}", unit, lo, hi, default, scale, ("processor", key))
        for key, unit, lo, hi, default, scale in specs), doc=doc)


def _reverb_specs():
    from ..dsp.reverb import SPECS
    return SPECS


def _echo_specs():
    from ..dsp.delay import SPECS
    return SPECS


REVERB = _space("reverb", _reverb_specs(),
                "stereo reverb: a finite impulse response built from pre-delay, RT60 per band "
                "(low/mid/high), early/late balance, width, return HP/LP (automix.dsp.reverb)")
ECHO = _space("echo", _echo_specs(),
              "feedback delay, stereo or ping-pong (processor.mode), damping low-pass in the "
              "loop (automix.dsp.delay)")

# Processors a bus may run, by the ``processor.type`` its settings entry names.
BUS_PROCESSORS = {"delay": DELAY, "reverb": REVERB, "echo": ECHO}


# --- nodes -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class NodeKind:
    """A kind of node: its processors in signal order."""
    name: str
    processors: tuple[Processor, ...]

    @property
    def params(self) -> tuple[Param, ...]:
        return tuple(p for proc in self.processors for p in proc.params)

    @property
    def specs(self) -> tuple[ParamSpec, ...]:
        return tuple(p.spec for p in self.params)


STRIP = NodeKind("strip", (ALIGN, eq_processor(), DEESSER, COMPRESSOR, fader(-40.0, 20.0), PAN_WIDTH))
BUS = NodeKind("bus", (DELAY, eq_processor(), fader(-40.0, 20.0)))
MASTER = NodeKind("master", (eq_processor(), COMPRESSOR, STEREO, fader(-24.0, 36.0), LIMITER))

NODE_KINDS = (STRIP, BUS, MASTER)


def all_processors() -> dict[str, Processor]:
    """Every processor the console has, by name (what each executor must implement)."""
    found = {}
    for kind in NODE_KINDS:
        for proc in kind.processors:
            found.setdefault(proc.name, proc)
    for proc in BUS_PROCESSORS.values():
        found.setdefault(proc.name, proc)
    return found


# The network's outputs: the fixed-layout parameters of a track strip and of the master.
TRACK_SPECS: tuple[ParamSpec, ...] = STRIP.specs
MASTER_SPECS: tuple[ParamSpec, ...] = MASTER.specs


# --- settings entries <-> parameters -----------------------------------------------------------

def _set(entry: dict, where: tuple, value) -> None:
    node = entry
    for key, nxt in zip(where[:-1], where[1:]):
        if isinstance(key, int):
            while len(node) <= key:
                node.append({})
            node = node[key]
        else:
            node = node.setdefault(key, [] if isinstance(nxt, int) else {})
    node[where[-1]] = value


def _get(entry: dict, where: tuple):
    node = entry
    for key in where:
        node = node[key]
    return node


def _scalar(v) -> float:
    return float(v.detach().cpu().item()) if isinstance(v, torch.Tensor) else float(v)


def entry_from_params(kind: NodeKind, params: dict, processors=None) -> dict:
    """A settings entry (the fields of ``kind``'s processors, or of ``processors`` by name) from
    scalar physical parameters (0-d tensors or floats), each written where it is declared."""
    entry: dict = {}
    for proc in kind.processors:
        if processors is not None and proc.name not in processors:
            continue
        for where, value in proc.fixed:
            _set(entry, where, value)
        for p in proc.params:
            _set(entry, p.where, _scalar(params[p.key]))
    return entry


def params_from_entry(kind: NodeKind, entry: dict, processors=None) -> dict:
    """The inverse of :func:`entry_from_params` for an entry in the fixed layout (floats);
    raises ``KeyError``/``IndexError`` where the entry has another layout."""
    out = {}
    for proc in kind.processors:
        if processors is not None and proc.name not in processors:
            continue
        for where, value in proc.fixed:
            if _get(entry, where) != value:
                raise KeyError(f"{'.'.join(map(str, where))} is not {value!r}")
        for p in proc.params:
            out[p.key] = float(_get(entry, p.where))
    return out


# --- routing -----------------------------------------------------------------------------------

MASTER_NAME = "master"


@dataclass
class Route:
    """The routing of one settings dict, checked and in execution order.

    ``order``: ``("track", i)``, ``("group", j)``, ``("bus", k)`` with every node after all of
    its inputs (tracks first, in track order).  ``output[node]``: ``"master"`` or a
    ``("group", j)`` / ``("bus", k)`` it is summed into; ``sends[node]``: ``(bus index, level
    dB, pre_fader)`` in the order the settings list them."""
    order: list
    output: dict
    sends: dict = field(default_factory=dict)

    @property
    def flat(self) -> bool:
        return all(v == MASTER_NAME for v in self.output.values()) and not any(self.sends.values())


class RoutingError(ValueError):
    """A routing problem; the message names the field."""


def route(settings: dict) -> Route:
    """The routing of (schema-checked) settings: group members, outputs, sends; raises
    :class:`RoutingError` with the field named for an unknown member or bus, a track in two
    groups, or a cycle."""
    tracks = [t["name"] for t in settings["tracks"]]
    groups = [g["name"] for g in settings.get("groups", [])]
    buses = [b["name"] for b in settings.get("buses", [])]
    names: dict[str, tuple] = {}
    for kind, seq, where in (("track", tracks, "tracks"), ("group", groups, "groups"),
                             ("bus", buses, "buses")):
        for i, n in enumerate(seq):
            if n in names or n == MASTER_NAME:
                raise RoutingError(f"{where}[{i}].name: {n!r} is used twice (tracks, groups and "
                                   "buses share one name space; 'master' is the master)")
            names[n] = (kind, i)
    output = {("track", i): MASTER_NAME for i in range(len(tracks))}
    for j, g in enumerate(settings.get("groups", [])):
        for m, member in enumerate(g["members"]):
            node = names.get(member)
            if node is None or node[0] != "track":
                raise RoutingError(f"groups[{j}].members[{m}]: {member!r} is not a track")
            if output[node] != MASTER_NAME:
                raise RoutingError(f"groups[{j}].members[{m}]: {member!r} is already in group "
                                   f"{groups[output[node][1]]!r}")
            output[node] = ("group", j)
    for kind, entries in (("group", settings.get("groups", [])), ("bus", settings.get("buses", []))):
        where = "groups" if kind == "group" else "buses"
        for j, e in enumerate(entries):
            out = e.get("output", MASTER_NAME)
            if out == MASTER_NAME:
                output[(kind, j)] = MASTER_NAME
                continue
            node = names.get(out)
            if node is None or node[0] != "group":
                raise RoutingError(f"{where}[{j}].output: {out!r} is not a group (or 'master')")
            output[(kind, j)] = node
    sends: dict = {node: [] for node in output}
    for s_i, s in enumerate(settings.get("sends", [])):
        src = names.get(s["source"])
        if src is None or src[0] == "bus":
            raise RoutingError(f"sends[{s_i}].source: {s['source']!r} is not a track or group")
        bus = names.get(s["bus"])
        if bus is None or bus[0] != "bus":
            raise RoutingError(f"sends[{s_i}].bus: {s['bus']!r} is not a bus")
        sends[src].append((bus[1], s["level_db"], s["pre_fader"]))
    # execution order: depth-first topological sort, tracks first; a node waits for its inputs
    inputs: dict = {node: [] for node in output}
    for node, out in output.items():
        if out != MASTER_NAME:
            inputs[out].append(node)
    for node, lst in sends.items():
        for k, _, _ in lst:
            inputs[("bus", k)].append(node)
    order, state = [], {}
    label = {v: k for k, v in names.items()}

    def visit(node, path):
        if state.get(node) == "done":
            return
        if state.get(node) == "open":
            cycle = path[path.index(node):] + [node]
            raise RoutingError("routing cycle: " + " -> ".join(label[n] for n in cycle)
                               + " (groups[].output, buses[].output and sends[] form a loop)")
        state[node] = "open"
        for src in inputs[node]:
            visit(src, path + [node])
        state[node] = "done"
        order.append(node)

    for node in sorted(output, key=lambda n: (("track", "group", "bus").index(n[0]), n[1])):
        visit(node, [])
    # tracks first, in track order, as a flat console sums them (v1 renders bit-exactly)
    order = [n for n in order if n[0] == "track"] + [n for n in order if n[0] != "track"]
    return Route(order, output, sends)
