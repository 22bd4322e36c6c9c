"""How fast the command line answers when there is no work: ``--help`` and argument errors.

    .venv/bin/python benchmarks/speed_cli.py                  # this checkout
    .venv/bin/python benchmarks/speed_cli.py --before 42b94a9 # and a git revision, side by side

The goal (issue 15): under 0.5 s, i.e. no torch / numba / librosa before argparse has answered.
Each command runs ``--repeats`` times, the checkouts alternating (a noisy machine slows both
alike); the median wall time of each is printed, and the ratio old / new.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {
    "automix --help": ["--help"],
    "automix master --help": ["master", "--help"],
    "automix render --help": ["render", "--help"],
    "automix --bogus (error)": ["--bogus"],
}
LAUNCH = "import sys; from automix.cli import main; sys.exit(main(sys.argv[1:]))"


def wall(tree: Path, args: list[str]) -> float:
    env = dict(os.environ, PYTHONPATH=str(tree))
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", LAUNCH, *args], env=env, cwd=tempfile.gettempdir(),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", help="a git revision to measure beside this checkout")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    trees = {"now": ROOT}
    with tempfile.TemporaryDirectory() as tmp:
        if args.before:
            old = Path(tmp) / "before"
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(old),
                            args.before], check=True)
            trees = {args.before: old, "now": ROOT}
        try:
            print(f"{'command':28s}" + "".join(f"{name:>12s}" for name in trees)
                  + ("       ratio" if args.before else ""))
            for label, cmd in COMMANDS.items():
                times = {name: [] for name in trees}
                for _ in range(args.repeats):
                    for name, tree in trees.items():
                        times[name].append(wall(tree, cmd))
                med = {name: statistics.median(t) for name, t in times.items()}
                line = f"{label:28s}" + "".join(f"{med[n]:10.2f} s" for n in trees)
                if args.before:
                    line += f"{med[args.before] / med['now']:11.0f}x"
                print(line)
        finally:
            if args.before:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                                str(trees[args.before])], check=False)


if __name__ == "__main__":
    main()
