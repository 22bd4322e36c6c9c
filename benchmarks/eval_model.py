"""The network's benchmark (issue 6): log-mel distance to a known target for four systems.

    .venv/bin/python benchmarks/eval_model.py --model automix/checkpoints/automix-default.pt \\
        --synth data/synth [--songs 8] [--known] [--out benchmarks/results/model.json]

Systems, on the same stems and reference:
  (a) ``equal_loudness``  every stem at the same loudness, summed (no automix)
  (b) ``refine``          automix with no network: refinement from the heuristic start
  (c) ``model``           the network's settings as they are (``--refine-steps 0``)
  (d) ``model+refine``    the network's settings refined (the default ``automix``)
The bus level and master gain come from the loudness search in every automix system.

Cases:
  * held-out songs: the validation split (by song, as in training) of a synth/generic dataset.
    Per song, two adjacent sections; console settings drawn from the training priors; the
    reference is the first section rendered with them, the target the second (the stems of the
    second section are automix's input).  Same distribution as training, never trained on.
  * ``--known``: the benchmark's known-target cases (benchmarks/data.py: real stems mixed by an
    independent engineer chain; first half reference, second half target).
Metric: ``automix.analysis.logmel_distance`` (dB, after one level-aligning gain), plus wall time.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import automix  # noqa: E402
from automix import analysis  # noqa: E402
from automix.audio import read_audio, resample, to_stereo  # noqa: E402
from automix.render import render_settings  # noqa: E402
from automix.settings import validate  # noqa: E402
from benchmarks.run import equal_loudness_sum, read_stems  # noqa: E402

SYSTEMS = ("equal_loudness", "refine", "model", "model+refine")


def held_out_cases(root: Path, work: Path, songs: int, section_s: float, seed: int = 0):
    """Write (stems dir, reference, target) for the first ``songs`` validation songs."""
    from training.datasets import scan, split_songs
    from training.priors import sample_settings

    valid = split_songs(scan("generic", root), "valid", 0.1)[:songs]
    for k, song in enumerate(valid):
        rng = np.random.default_rng([seed, k])
        sr = 44100
        audio = {}
        for stem in song.stems:
            x, s = read_audio(stem.path)
            audio[stem.name] = to_stereo(resample(x, s, sr)) if x.shape[0] == 2 else resample(x, s, sr)
        n = max(x.shape[1] for x in audio.values())
        length = int(section_s * sr)
        start = max(0, (n - 2 * length) // 2)
        d = work / f"heldout_{song.id}"
        for part in ("a", "b"):
            (d / part).mkdir(parents=True, exist_ok=True)
        names = sorted(audio)
        levels = []
        for name in names:
            x = np.pad(audio[name], ((0, 0), (0, max(0, start + 2 * length - n))))
            sf.write(d / "a" / f"{name}.wav", x[:, start:start + length].T, sr, subtype="FLOAT")
            sf.write(d / "b" / f"{name}.wav", x[:, start + length:start + 2 * length].T, sr, subtype="FLOAT")
            levels.append(float(10 * np.log10(np.mean(x[:, start:start + 2 * length] ** 2) + 1e-12)))
        settings = sample_settings(names, rng, labels=[s.label for s in sorted(song.stems, key=lambda s: s.name)],
                                   levels_db=levels, stereo=[audio[nm].shape[0] == 2 for nm in names],
                                   files=[f"{nm}.wav" for nm in names], sample_rate=sr)
        settings = validate(settings)
        _, ref = render_settings(settings, d / "a")
        _, target = render_settings(settings, d / "b")
        sf.write(d / "reference.wav", ref.T, sr, subtype="FLOAT")
        sf.write(d / "target.wav", target.T, sr, subtype="FLOAT")
        yield {"id": f"heldout/{song.id}", "stems": d / "b", "reference": d / "reference.wav",
               "target": d / "target.wav"}


def known_cases():
    from benchmarks import data

    cases, _ = data.prepare(data.FULL, fetch_missing=False)
    for c in cases:
        if c.kind == "known_target":
            yield {"id": f"known/{c.id}", "stems": c.path(c.stems), "reference": c.path(c.reference),
                   "target": c.path(c.target)}


def run_case(case: dict, model: Path, steps: int) -> dict:
    target, tsr = read_audio(case["target"])
    out = {"id": case["id"]}
    for system in SYSTEMS:
        t0 = time.perf_counter()
        if system == "equal_loudness":
            stems, sr = read_stems(case["stems"])
            audio = equal_loudness_sum(stems, sr)
        else:
            use = None if system == "refine" else model
            r = automix.mix(case["stems"], case["reference"], model=use,
                            refine_steps=0 if system == "model" else steps)
            audio, sr = r.master, r.sample_rate
        wall = time.perf_counter() - t0
        out[system] = {"logmel_distance_db": analysis.logmel_distance(audio, target, sr, tsr),
                       "wall_s": wall}
    return out


def table(rows: list[dict]) -> str:
    lines = ["| case | " + " | ".join(SYSTEMS) + " |", "|---|" + "---|" * len(SYSTEMS)]
    for r in rows:
        lines.append(f"| {r['id']} | " + " | ".join(
            f"{r[s]['logmel_distance_db']:.2f} ({r[s]['wall_s']:.1f} s)" for s in SYSTEMS) + " |")
    for group in sorted({r["id"].split("/")[0] for r in rows}):
        sel = [r for r in rows if r["id"].startswith(group + "/")]
        lines.append(f"| **mean, {group} ({len(sel)})** | " + " | ".join(
            f"**{np.mean([r[s]['logmel_distance_db'] for r in sel]):.2f}** "
            f"({np.mean([r[s]['wall_s'] for r in sel]):.1f} s)" for s in SYSTEMS) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=ROOT / "automix" / "checkpoints" / "automix-default.pt")
    ap.add_argument("--synth", type=Path, default=None, help="dataset root for held-out songs")
    ap.add_argument("--songs", type=int, default=8)
    ap.add_argument("--section", type=float, default=10.0, help="section length, s")
    ap.add_argument("--known", action="store_true", help="also the benchmark's known-target cases")
    ap.add_argument("--steps", type=int, default=300, help="refinement steps")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "model.json")
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cases = []
        if args.synth:
            cases += list(held_out_cases(args.synth, Path(tmp), args.songs, args.section))
        if args.known:
            cases += list(known_cases())
        for case in cases:
            rows.append(run_case(case, args.model, args.steps))
            r = rows[-1]
            print(r["id"], "  ".join(f"{s} {r[s]['logmel_distance_db']:.2f}" for s in SYSTEMS), flush=True)
    print(table(rows))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows, "model": str(args.model)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
