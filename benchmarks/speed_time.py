"""What the time-varying settings add to the 8 stems x 3 min job: sections, lead, rider,
section contrast and the de-esser analysis (issue 19; budget: at most 1.5 s in all).

    .venv/bin/python benchmarks/speed_time.py                 # 8 stems x 180 s at 44.1 kHz
    .venv/bin/python benchmarks/speed_time.py --seconds 60 --repeats 5

Synthetic stereo stems (an arrangement of drums, bass, keys and a lead vocal, and noise-based
pads, with sections), float32 at the project rate, as the mix stage holds them.  Each part is
timed ``--repeats`` times after one warm-up call (numba and librosa compile once per install,
not per job): the fastest and median wall time and the median CPU time (all threads) are
printed, with the machine's load (a shared machine slows the wall times), and the whole
:func:`automix.timeline.plan` (what the mix stage would add).
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
    """(min, median) wall seconds and median CPU seconds of ``fn`` after one warm-up call."""
    fn()
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return min(wall), statistics.median(wall), statistics.median(cpu)


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
    rows = {
        "sections (stems)": lambda: sections.find_sections(stems, sr),
        "sections (reference mix)": lambda: sections.find_sections_in_mix(reference, sr,
                                                                          use_beats=False),
        "find lead (8 stems)": lambda: lead.find_lead(stems, sr),
        "rider": lambda: lead.rider_lane(stems["Lead Vocal"], rest, sr, edges, 1.0),
        "de-esser analysis": lambda: (deesser.sibilance_db(reference, sr),
                                      deesser.deesser_for(stems["Lead Vocal"], sr, -30.0, True)),
        "timeline.plan (all)": lambda: timeline.plan(stems, settings, reference=reference),
    }
    print(f"{len(stems)} stems x {a.seconds:g} s at {sr} Hz, {a.repeats} runs after a warm-up; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"  {'':28s} {'min s':>7s} {'median s':>9s} {'cpu s':>7s}")
    for name, fn in rows.items():
        lo, med, cpu = timed(fn, a.repeats)
        print(f"  {name:28s} {lo:7.3f} {med:9.3f} {cpu:7.3f}")
    print(f"  sections found: {[round(b, 2) for b in found.boundaries_s]}")


if __name__ == "__main__":
    main()
