"""What the time-varying settings add to the 8 stems x 3 min job: sections, lead, rider,
section contrast and the de-esser analysis (issue 19; budget: at most 1.5 s in all).

    .venv/bin/python benchmarks/speed_time.py                 # 8 stems x 180 s at 44.1 kHz
    .venv/bin/python benchmarks/speed_time.py --seconds 60 --repeats 5

Synthetic stereo stems (an arrangement of drums, bass, keys and a lead vocal, and noise-based
pads, with sections), float32 at the project rate, as the mix stage holds them.  Each part is
timed ``--repeats`` times after one warm-up call (numba and librosa compile once per install,
not per job): the fastest and median wall time and the median CPU time (all threads) are
printed, with the machine's load (a shared machine slows the wall times), and the whole
:func:`automix.timeline.plan` (what the mix stage adds; "job": with the reference's loudness
range given, as the job passes it from the reference's analysis), side by side with the one
console render of the static mix that every job makes (the ratio is what a loaded machine
changes least).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def stems_of(seconds: float, sr: int) -> dict:
    from synth_song import arrangement
    third = seconds / 3
    parts = {"keys": [(0, seconds)], "bass": [(third / 2, seconds)],
             "drums": [(third / 2, 2 * third), (2 * third + 8, seconds)],
             "vocal": [(third, seconds - 4)]}
    base = arrangement(parts, seconds, sr=sr)
    rng = np.random.default_rng(0)
    n = int(seconds * sr)
    out = {"Drums": base["drums"], "Bass": base["bass"], "Keys": base["keys"],
           "Lead Vocal": base["vocal"]}
    for i in range(4):                                   # pads: filtered noise, with gaps
        x = (rng.standard_normal((2, n)) * 0.02).astype(np.float32)
        x[:, : int((i + 1) * seconds / 8 * sr)] = 0
        out[f"pad{i}"] = x
    return out


def timed(fn, repeats: int) -> tuple[float, float, float]:
    """(min, median) wall seconds and (median, min) CPU seconds of ``fn`` after one warm-up
    call."""
    fn()
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return min(wall), statistics.median(wall), statistics.median(cpu), min(cpu)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=180.0)
    ap.add_argument("--sr", type=int, default=44100)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    from automix import lead, sections, timeline
    from automix.dsp import deesser
    from automix.settings import validate
    sr = a.sr
    stems = stems_of(a.seconds, sr)
    n = max(x.shape[1] for x in stems.values())
    rng = np.random.default_rng(1)
    reference = (rng.standard_normal((2, n)) * 0.05).astype(np.float32)
    reference[:, n // 2:] *= 2
    settings = validate({"format": "automix.settings", "version": 2, "sample_rate": sr,
                         "tracks": [{"name": k, "file": f"{k}.wav"} for k in stems],
                         "master": {}})
    found = sections.find_sections(stems, sr)
    edges = [0.0, *found.boundaries_s, n / sr]
    rest = sum(v for k, v in stems.items() if k != "Lead Vocal")
    from automix.analysis import loudness_range, short_term_loudness
    from automix.audio import BlockReader
    from automix.console.blocks import render_graph
    ref_lra = loudness_range(short_term_loudness(reference, sr))
    rows = {
        "sections (stems)": lambda: sections.find_sections(stems, sr),
        "sections (reference mix)": lambda: sections.find_sections_in_mix(reference, sr,
                                                                          use_beats=False),
        "find lead (8 stems)": lambda: lead.find_lead(stems, sr),
        "rider": lambda: lead.rider_lane(stems["Lead Vocal"], rest, sr, edges, 1.0),
        "de-esser analysis": lambda: (deesser.sibilance_db(reference, sr),
                                      deesser.deesser_for(stems["Lead Vocal"], sr, -30.0, True)),
        "timeline.plan (all)": lambda: timeline.plan(stems, settings, reference=reference,
                                                     keep_lead_level=True),
        "timeline.plan (job: ref LRA known)": lambda: timeline.plan(
            stems, settings, reference=reference, keep_lead_level=True, reference_lra_lu=ref_lra),
        "mix render (console, static)": lambda: render_graph(
            settings, [BlockReader.of_array(stems[t["name"]]) for t in settings["tracks"]], n),
    }
    print(f"{len(stems)} stems x {a.seconds:g} s at {sr} Hz, {a.repeats} runs after a warm-up; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"  {'':34s} {'min s':>7s} {'median s':>9s} {'cpu s':>7s} {'min cpu':>9s}")
    got = {}
    for name, fn in rows.items():
        lo, med, cpu, cpu_lo = timed(fn, a.repeats)
        got[name] = (lo, med, cpu)
        print(f"  {name:34s} {lo:7.3f} {med:9.3f} {cpu:7.3f} {cpu_lo:9.3f}", flush=True)
    # side by side: the plan against the one mix render every job does (same machine, same run)
    plan, render = got["timeline.plan (job: ref LRA known)"], got["mix render (console, static)"]
    print(f"  plan / mix render: wall (min) {plan[0] / render[0]:.2f}, cpu {plan[2] / render[2]:.2f}")
    print(f"  sections found: {[round(b, 2) for b in found.boundaries_s]}")


if __name__ == "__main__":
    main()
