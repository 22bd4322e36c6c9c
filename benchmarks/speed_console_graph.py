"""Render speed of the console graph (issue 16), side by side in one run: 8 stems x 3 min at
44.1 kHz through

* ``v1@d9ab248``: the render executor as it was before the console graph (``render_settings``
  of commit d9ab248, loaded from git), on flat v1 settings;
* ``flat``: today's ``render_settings`` on the same v1 settings (must be bit-identical);
* ``graph``: today's ``render_settings`` on v2 settings: the same tracks in three group buses
  (drums, music, vocals, each with a 6-band EQ and a compressor) and one delay send bus fed
  post-fader by the vocal group, with a 2-band return EQ;
* ``routing``: the same routing with the groups' and the bus's processors empty (faders only):
  the cost of the graph itself, without the added DSP.

    nice -n 19 .venv/bin/python benchmarks/speed_console_graph.py [--rounds 3] [--seconds 180]

Stems are synthetic (band-limited noise with level envelopes, 16-bit WAV, 5 stereo, 3 mono),
written once to a temporary folder.  The configurations run in alternating rounds (this
machine's speed drifts within minutes); the median of each is reported with the ratios, as
wall time and as the process's CPU time (less sensitive to other jobs on a shared machine; the
render is single-threaded here: torch is set to one thread, the kernels are numba loops).
"""
from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from automix.console.graph import MASTER, STRIP  # noqa: E402
from automix.render import render_settings  # noqa: E402
from automix.settings import settings_from_params, validate  # noqa: E402

SR = 44100
BASELINE = "d9ab248"
NAMES = ["kick", "snare", "hats", "bass", "keys", "guitar", "vocal", "backing"]
GROUPS = {"drums": ["kick", "snare", "hats"], "music": ["bass", "keys", "guitar"],
          "vocals": ["vocal", "backing"]}


def old_render_settings():
    """``render_settings`` of the baseline commit, as a module inside the automix package (its
    relative imports resolve to today's audio and dsp modules, unchanged since)."""
    source = subprocess.run(["git", "show", f"{BASELINE}:automix/render.py"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout
    spec = importlib.util.spec_from_loader("automix._render_baseline", loader=None)
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "automix"
    exec(compile(source, f"{BASELINE}:automix/render.py", "exec"), module.__dict__)
    return module.render_settings


def write_stems(folder: Path, seconds: float) -> None:
    rng = np.random.default_rng(16)
    n = int(seconds * SR)
    for i, name in enumerate(NAMES):
        channels = 1 if name in ("kick", "bass", "vocal") else 2
        x = rng.standard_normal((n, channels)).astype(np.float32)
        env = 0.5 + 0.4 * np.sin(2 * np.pi * np.arange(n) / SR * (0.3 + 0.1 * i))
        x *= (0.1 * env[:, None]).astype(np.float32)
        sf.write(folder / f"{name}.wav", x, SR, subtype="PCM_16")


def settings_pair() -> tuple[dict, dict, dict]:
    """(flat v1 settings, the same with groups and a delay send, the same routing with faders
    only) as automix writes them."""
    g = torch.Generator().manual_seed(0)
    tp = {s.name: s.to_physical(torch.rand(len(NAMES), generator=g, dtype=torch.float64) * 0.6
                                + 0.2) for s in STRIP.specs}
    tp["comp.ratio"] = torch.full((len(NAMES),), 3.0, dtype=torch.float64)
    tp["comp.threshold_db"] = torch.full((len(NAMES),), -24.0, dtype=torch.float64)
    mp = {s.name: torch.tensor(s.default, dtype=torch.float64) for s in MASTER.specs}
    mp["comp.ratio"] = torch.tensor(2.0, dtype=torch.float64)
    mp["comp.threshold_db"] = torch.tensor(-18.0, dtype=torch.float64)
    flat = settings_from_params(NAMES, [f"{n}.wav" for n in NAMES], tp, mp, SR)
    flat["version"] = 1
    flat = validate(flat, tidy=True)
    graph = dict(flat, version=2)
    group_strip = {"eq": flat["tracks"][0]["eq"], "compressor": flat["tracks"][0]["compressor"],
                   "gain_db": -2.0}
    graph["groups"] = [{"name": name, "members": members, **group_strip}
                       for name, members in GROUPS.items()]
    graph["buses"] = [{"name": "echo", "processor": {"type": "delay", "time_ms": 375.0},
                       "eq": [{"type": "highpass", "freq_hz": 200.0},
                              {"type": "lowpass", "freq_hz": 6000.0}], "gain_db": -8.0}]
    graph["sends"] = [{"source": "vocals", "bus": "echo", "level_db": -6.0}]
    routing = dict(graph, groups=[{"name": g["name"], "members": g["members"], "gain_db": -2.0}
                                  for g in graph["groups"]],
                   buses=[dict(graph["buses"][0], eq=[])])
    return flat, validate(graph), validate(routing)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=180.0)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    baseline = old_render_settings()
    flat, graph, routing = settings_pair()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_stems(folder, args.seconds)
        runs = {"v1@" + BASELINE: lambda: baseline(flat, folder),
                "flat": lambda: render_settings(flat, folder),
                "graph": lambda: render_settings(graph, folder),
                "routing": lambda: render_settings(routing, folder)}
        outputs = {name: run() for name, run in runs.items()}  # warm-up (numba caches)
        same = all(np.array_equal(a, b) for a, b in zip(outputs["v1@" + BASELINE],
                                                          outputs["flat"]))
        del outputs
        times = {name: [] for name in runs}
        cpu = {name: [] for name in runs}
        for r in range(args.rounds):
            for name, run in runs.items():
                t0, c0 = time.perf_counter(), time.process_time()
                run()
                times[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s ({cpu[k][-1]:.2f} s cpu)"
                                                 for k, v in times.items()), flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    base, base_cpu = med["v1@" + BASELINE], med_cpu["v1@" + BASELINE]
    print(f"\n{len(NAMES)} stems x {args.seconds:.0f} s, {args.rounds} rounds (median):")
    for k, v in med.items():
        print(f"  {k:14s} wall {v:6.2f} s  x{v / base:.3f}   cpu {med_cpu[k]:6.2f} s  "
              f"x{med_cpu[k] / base_cpu:.3f}   (of v1@{BASELINE})")
    print(f"flat v1 settings render bit-identically to v1@{BASELINE}: {same}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
