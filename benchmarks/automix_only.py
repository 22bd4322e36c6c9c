"""automix alone on the real-music benchmark's cached mixing/mastering cases, in-process.

    .venv/bin/python benchmarks/automix_only.py master|mix [--model PATH|none] [--ceiling DBTP]
        [--groups auto|none] [--space 0..1]

A quick re-measure of automix's quality after a change, without re-running the baselines
(Matchering's numbers do not change): prints per-case and mean errors against the reference
(docs/metrics.md: loudness LU, true peak dBTP, tonal mid/side dB, width dB, PLR dB, LRA LU)
and the wall time.  The cases come from `benchmarks/data.py` (run it, or benchmarks/run.py, once).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import automix  # noqa: E402
from automix import analysis  # noqa: E402

COLUMNS = ("loudness", "true_peak", "tonal_mid", "tonal_side", "width", "plr", "lra", "time_s")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("kind", choices=("master", "mix"))
    ap.add_argument("--model", default="default", help="checkpoint, or none (mix only)")
    ap.add_argument("--ceiling", type=float, default=-1.0, help="true-peak ceiling (dBTP)")
    ap.add_argument("--groups", choices=("auto", "none"), default="auto",
                    help="mix: group buses (automix --groups; issue 16: on vs off)")
    ap.add_argument("--space", type=float, default=0.0, help="mix: automix --space (issue 18)")
    ap.add_argument("--cases", type=Path, default=ROOT / "benchmarks" / "cache" / "cases" / "full-v1")
    args = ap.parse_args(argv)
    model = None if args.model == "none" else args.model
    rows = []
    for d in sorted(args.cases.glob(f"{args.kind}_*")):
        t0 = time.perf_counter()
        if args.kind == "master":
            r = automix.master(d / "mix.wav", d / "reference.wav", ceiling=args.ceiling)
        else:
            r = automix.mix(d / "stems", d / "reference.wav", model=model, ceiling=args.ceiling,
                            groups=args.groups, space=args.space)
        a = r.settings["analysis"]
        m, ref = a["master"], a["reference"]
        row = (analysis.loudness_error_lu(m, ref), m["true_peak_dbtp"],
               analysis.tonal_error_db(m, ref, "mid"), analysis.tonal_error_db(m, ref, "side"),
               analysis.width_error_db(m, ref), analysis.plr_error_db(m, ref),
               abs(m["loudness_range_lu"] - ref["loudness_range_lu"]), time.perf_counter() - t0)
        rows.append(row)
        print(f"{d.name[:48]:48s} " + " ".join(f"{x:7.2f}" for x in row), flush=True)
    if not rows:
        raise SystemExit(f"no {args.kind} cases under {args.cases}: run benchmarks/data.py first")
    print(f"{'mean':48s} " + " ".join(f"{x:7.2f}" for x in np.mean(rows, 0)))
    print(f"{'columns':48s} " + " ".join(f"{c:>7s}" for c in COLUMNS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
