"""Render cost of the space processors (issue 18: reverb + delay on 8 stems x 3 min may add at
most 1.5 s to ``render_settings``), side by side in one run, 44.1 kHz:

* ``dry``: version 2 settings, 8 tracks into the master, no buses;
* ``reverb``: the same plus a reverb bus (RT60 low/mid/high 2.5/2.0/1.2 s, pre-delay 20 ms)
  fed post-fader by every track;
* ``echo``: the dry settings plus a ping-pong echo bus (375 ms, feedback 0.4, damping 5 kHz)
  fed by three tracks;
* ``space``: both buses (what the issue's budget is about);
* ``cathedral``: both, the reverb at RT60 8/6/4 s (the longest IR the network's ranges allow).

    nice -n 19 .venv/bin/python benchmarks/speed_space.py [--rounds 3] [--seconds 180]

Stems are synthetic (noise with level envelopes, 16-bit WAV, 5 stereo, 3 mono), written once to
a temporary folder.  The configurations run in alternating rounds; the median of each is
reported with what it adds to ``dry``, as wall time and as this process's CPU time (all
threads; steadier than wall time on a shared machine).  ``--cold`` also times, in fresh
processes, the one-off set-up a first reverb render pays (the seeded noise, the IR).
"""
from __future__ import annotations

import argparse
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
from automix.dsp.reverb import PARAMS  # noqa: E402
from automix.render import render_settings  # noqa: E402
from automix.settings import settings_from_params, validate  # noqa: E402

SR = 44100
NAMES = ["kick", "snare", "hats", "bass", "keys", "guitar", "vocal", "backing"]
REVERB = {"type": "reverb", "predelay_ms": 20.0, "rt60_low_s": 2.5, "rt60_mid_s": 2.0,
          "rt60_high_s": 1.2, "early_late_db": -6.0, "width": 1.0, "hp_hz": 150.0,
          "lp_hz": 9000.0}
ECHO = {"type": "echo", "time_ms": 375.0, "feedback": 0.4, "damping_hz": 5000.0,
        "mode": "pingpong"}


def write_stems(folder: Path, seconds: float) -> None:
    rng = np.random.default_rng(18)
    n = int(seconds * SR)
    for i, name in enumerate(NAMES):
        channels = 1 if name in ("kick", "bass", "vocal") else 2
        x = rng.standard_normal((n, channels)).astype(np.float32)
        env = 0.5 + 0.4 * np.sin(2 * np.pi * np.arange(n) / SR * (0.3 + 0.1 * i))
        x *= (0.1 * env[:, None]).astype(np.float32)
        sf.write(folder / f"{name}.wav", x, SR, subtype="PCM_16")


def configurations() -> dict:
    g = torch.Generator().manual_seed(0)
    tp = {s.name: s.to_physical(torch.rand(len(NAMES), generator=g, dtype=torch.float64) * 0.6
                                + 0.2) for s in STRIP.specs}
    mp = {s.name: torch.tensor(s.default, dtype=torch.float64) for s in MASTER.specs}
    dry = settings_from_params(NAMES, [f"{n}.wav" for n in NAMES], tp, mp, SR)
    dry = validate(dict(dry, version=2), tidy=True)
    verb = {"name": "verb", "processor": REVERB, "gain_db": -6.0}
    echo = {"name": "echo", "processor": ECHO, "gain_db": -6.0}
    verb_sends = [{"source": n, "bus": "verb", "level_db": -12.0} for n in NAMES]
    echo_sends = [{"source": n, "bus": "echo", "level_db": -10.0}
                  for n in ("keys", "guitar", "vocal")]
    cathedral = dict(verb, processor=dict(REVERB, rt60_low_s=8.0, rt60_mid_s=6.0,
                                          rt60_high_s=4.0))
    return {
        "dry": dry,
        "reverb": validate(dict(dry, buses=[verb], sends=verb_sends)),
        "echo": validate(dict(dry, buses=[echo], sends=echo_sends)),
        "space": validate(dict(dry, buses=[verb, echo], sends=verb_sends + echo_sends)),
        "cathedral": validate(dict(dry, buses=[cathedral, echo], sends=verb_sends + echo_sends)),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=180.0)
    ap.add_argument("--cold", action="store_true", help="also time the reverb's cold set-up")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    configs = configurations()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_stems(folder, args.seconds)
        first = {name: render_settings(s, folder) for name, s in configs.items()}  # warm-up
        again = render_settings(configs["space"], folder)
        exact = all(np.array_equal(a, b) for a, b in zip(first["space"], again))
        del first, again
        times = {name: [] for name in configs}
        cpu = {name: [] for name in configs}
        for r in range(args.rounds):
            for name, s in configs.items():
                t0, c0 = time.perf_counter(), time.process_time()
                render_settings(s, folder)
                times[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s ({cpu[k][-1]:.2f} cpu)"
                                                 for k, v in times.items()), flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    mcpu = {k: statistics.median(v) for k, v in cpu.items()}
    print(f"\n{len(NAMES)} stems x {args.seconds:.0f} s at {SR} Hz, {args.rounds} rounds "
          "(median render_settings):")
    for k in med:
        print(f"  {k:10s} wall {med[k]:6.2f} s (adds {med[k] - med['dry']:+.2f} s)   "
              f"cpu {mcpu[k]:6.2f} s (adds {mcpu[k] - mcpu['dry']:+.2f} s)")
    print(f"space settings re-render bit-exactly: {exact}")
    if args.cold:
        code = ("import time, torch; torch.set_num_threads(1); from automix.dsp import reverb as R; "
                "t = time.process_time(); R.ReverbState(dict(R.__dict__['_BENCH']), 44100); "
                "print(time.process_time() - t)")
        for name in ("space", "cathedral"):
            proc = configs[name]["buses"][0]["processor"]
            params = {k: proc[k] for k in PARAMS}
            src = code.replace("dict(R.__dict__['_BENCH'])", repr(params))
            out = subprocess.run([sys.executable, "-c", src], capture_output=True, text=True,
                                 cwd=ROOT, check=True).stdout.strip()
            print(f"cold reverb set-up ({name}: seeded noise + IR), cpu: {float(out):.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
