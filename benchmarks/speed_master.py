"""Wall time of the commands a user runs, side by side: `automix master` against Matchering on
the same 4-minute mix, in alternating pairs (this machine's speed drifts by tens of percent
within minutes, so only times taken side by side are compared), and `automix --stems` on
8 stems x 3 minutes.

    .venv/bin/python benchmarks/speed_master.py [--pairs 4] [--no-stems]

Material (built once into benchmarks/cache/speed/ from the Debian packages that
`benchmarks/data.py` fetches): the mix is the first 240 s of wesnoth-1.16-music "knolls" at
-6 dB, the reference wesnoth "vengeful" (6 min), both 24-bit WAV at 44.1 kHz; the stems are
`benchmarks/cache/console/full_8x180s` (made by `benchmarks/bench_console.py`).  Every command
runs as its own process (start-up and imports included), output discarded.  Matchering 2.0.6
is an optional, GPL benchmark dependency (`.[bench]`), never imported by automix.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "benchmarks" / "cache"
MUSIC = CACHE / "pkgs" / "wesnoth-1.16-music" / "usr" / "share" / "games" / "wesnoth" / "1.16" / "data" / "core" / "music"
STEMS = CACHE / "console" / "full_8x180s"


def material(folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    mix, ref = folder / "mix4min.wav", folder / "ref.wav"
    if not (mix.exists() and ref.exists()):
        if not MUSIC.is_dir():
            sys.exit(f"speed_master: {MUSIC} is missing; run .venv/bin/python benchmarks/data.py first")
        knolls, sr = sf.read(MUSIC / "knolls.ogg", always_2d=True)
        sf.write(mix, knolls[:240 * sr] * 10 ** (-6 / 20), sr, subtype="PCM_24")
        vengeful, sr = sf.read(MUSIC / "vengeful.ogg", always_2d=True)
        sf.write(ref, np.clip(vengeful, -1, 1), sr, subtype="PCM_24")
    return mix, ref


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    if proc.returncode != 0:
        sys.exit(f"speed_master: {' '.join(cmd[:4])}... failed: {proc.stderr.strip()[-300:]}")
    return time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=4)
    ap.add_argument("--no-stems", action="store_true", help="skip the 8 x 3 min mixing run")
    args = ap.parse_args(argv)
    work = CACHE / "speed"
    mix, ref = material(work)
    py = sys.executable
    automix = [py, "-m", "automix.cli"]
    if not args.no_stems:
        if not STEMS.is_dir():
            sys.exit(f"speed_master: {STEMS} is missing; run benchmarks/bench_console.py --quick once")
        t = timed(automix + ["--stems", str(STEMS), "--reference", str(ref), "-o", str(work / "out_mix"), "--force"])
        print(f"automix --stems 8 x 3 min: {t:.1f} s", flush=True)
    try:
        import matchering  # noqa: F401
        have_mg = True
    except ImportError:
        have_mg = False
        print("matchering is not installed (pip install '.[bench]'): automix alone")
    mg = [py, "-c", "import matchering as mg; mg.process(target=%r, reference=%r, results=[mg.pcm24(%r)])"
          % (str(mix), str(ref), str(work / "matchering.wav"))]
    a, m = [], []
    for k in range(args.pairs):
        a.append(timed(automix + ["master", "--input", str(mix), "--reference", str(ref),
                                  "-o", str(work / "out_master"), "--force"]))
        line = f"pair {k + 1}: automix master {a[-1]:.2f} s"
        if have_mg:
            m.append(timed(mg))
            line += f", Matchering {m[-1]:.2f} s, ratio {a[-1] / m[-1]:.2f}"
        print(line, flush=True)
    print(f"automix master median {statistics.median(a):.2f} s", end="")
    if m:
        print(f"; Matchering median {statistics.median(m):.2f} s; ratio of sums {sum(a) / sum(m):.2f}")
    else:
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
