"""Where the network's settings win or lose: the model-only system of ``eval_model.py`` on the
known-target cases, with one part of the prediction replaced at a time.

    .venv/bin/python benchmarks/ablate_model.py [--model PATH]

Variants (each runs ``automix.mix(..., refine_steps=0)``, so the loudness search and the limiter
are re-run for every variant; log-mel distance to the hidden target, dB, lower is better):
  model              the network's settings as they are (eval_model.py's "model")
  el_faders          faders replaced by equal loudness (-23 LUFS per stem, the heuristic's)
  ref_balance_faders faders replaced by the reference balance point alone
                     (automix.model.features.reference_balance_db, no learned deviation)
  el+flat_track_eq   ... and every track EQ gain 0 dB
  el+no_track_comp   ... and every track compressor at ratio 1
  el+flat_master_eq  ... and every master EQ gain 0 dB
  el+all_neutral     equal-loudness faders, flat EQs, no compression (pans, widths, master width
                     and glue compressor still the network's)
and ``equal_loudness``, the stems summed at equal loudness with no limiter (eval_model.py's (a)).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import automix  # noqa: E402
from automix import analysis  # noqa: E402
from automix.start import starting_point  # noqa: E402
from automix.audio import read_audio  # noqa: E402
from automix.model.features import reference_balance_db  # noqa: E402
from benchmarks.eval_model import known_cases  # noqa: E402
from benchmarks.run import equal_loudness_sum, read_stems  # noqa: E402

VARIANTS = {
    "model": set(),
    "el_faders": {"faders"},
    "ref_balance_faders": {"ref_faders"},
    "el+flat_track_eq": {"faders", "track_eq"},
    "el+no_track_comp": {"faders", "track_comp"},
    "el+flat_master_eq": {"faders", "master_eq"},
    "el+all_neutral": {"faders", "track_eq", "track_comp", "master_eq"},
}


def _neutralised(start, parts: set):
    """A ``start`` for :func:`automix.mix`: ``start`` with ``parts`` of the network's
    prediction replaced."""
    def patched(st, model, ref_mel):
        tp, mp = start(st, model, ref_mel)
        if "faders" in parts:
            tp["gain_db"] = torch.tensor([-23.0 - l for l in st.loudness], dtype=torch.float64).clamp(-40, 20)
        if "ref_faders" in parts:
            mels = torch.stack(st.mels)[None]
            tp["gain_db"] = reference_balance_db(mels, torch.ones(mels.shape[:2], dtype=torch.bool),
                                                 ref_mel[None])[0].double()
        for group, params in (("track_eq", tp), ("master_eq", mp)):
            if group in parts:
                for k in params:
                    if k.startswith("eq") and k.endswith("gain_db"):
                        params[k] = params[k] * 0
        if "track_comp" in parts:
            tp["comp.ratio"] = torch.ones_like(tp["comp.ratio"])
        return tp, mp
    return patched


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "automix" / "checkpoints" / "automix-default.pt"))
    args = ap.parse_args(argv)
    cases = list(known_cases())
    original = starting_point
    rows = {"equal_loudness": []}
    for case in cases:
        target, tsr = read_audio(case["target"])
        stems, sr = read_stems(case["stems"])
        rows["equal_loudness"].append(analysis.logmel_distance(equal_loudness_sum(stems, sr), target, sr, tsr))
    for name, parts in VARIANTS.items():
        start = _neutralised(original, parts)
        rows[name] = []
        for case in cases:
            target, tsr = read_audio(case["target"])
            r = automix.mix(case["stems"], case["reference"], refine_steps=0, model=args.model,
                            start=start)
            rows[name].append(analysis.logmel_distance(r.master, target, r.sample_rate, tsr))
        print(name, "done", flush=True)
    ids = [c["id"].split("/", 1)[1].replace("known_", "") for c in cases]
    print("| variant | " + " | ".join(ids) + " | mean |")
    print("|---|" + "---|" * (len(ids) + 1))
    for name, values in rows.items():
        print(f"| {name} | " + " | ".join(f"{v:.2f}" for v in values) + f" | **{np.mean(values):.2f}** |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
