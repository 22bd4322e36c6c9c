"""How near each fader balance point comes to producers' balances (issue 17 item 4).

    .venv/bin/python benchmarks/balance_points.py [--data /work/data/lmms] [--seconds 30]

On every rendered LMMS song (``automix-data lmms``) with two or more stems: the middle 2 x L
seconds, the first half of the producer's mix as the reference, the second half's stems with
the producer's balance erased exactly as ``benchmarks/human.py`` erases them (same seed per
song). For each balance point the network's faders can be relative to
(:mod:`automix.model.features`), the stem balance error (:func:`training.human_pairs.balance_error_db`,
loudness-weighted, mean removed) against the fader offsets that undo the erasure. No network,
no refinement: only the point a relative-fader model starts from.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from automix.model.features import (fader_offsets_db, loudness_offsets_db,  # noqa: E402
                                    reference_balance_db)
from automix.model.predict import song_mels  # noqa: E402
from benchmarks.human import HELD_OUT, make_case  # noqa: E402
from training.human_pairs import balance_error_db  # noqa: E402

SR = 44100


def points(mels: torch.Tensor, ref: torch.Tensor) -> dict[str, np.ndarray]:
    mask = torch.ones(1, mels.shape[0], dtype=torch.bool)
    m, r = mels[None], ref[None]
    loud = loudness_offsets_db(m, mask)
    out = {"equal loudness (BS.1770)": np.zeros(mels.shape[0]),
           "equal loudness read off the log-mels": loud[0].numpy(),
           "mel (median mel level)": fader_offsets_db(m, mask)[0].numpy(),
           "reference (strength 0.03, mel base; ft9's)": reference_balance_db(m, mask, r)[0].numpy()}
    for st in (0.1, 0.3, 1.0):
        out[f"reference_loudness, strength {st:g}"] = reference_balance_db(m, mask, r, strength=st, base=loud)[0].numpy()
    return out


def song_case(song_dir: Path, seconds: float, work: Path) -> dict | None:
    """Each point's balance error on one song's case (:func:`benchmarks.human.make_case`: the
    same parts and erasure as the human-target benchmark); None for a one-stem song."""
    if len(json.loads((song_dir / "stems.json").read_text())["stems"]) < 2:
        return None
    case = make_case(song_dir, work, seconds, SR)
    mels = torch.stack([song_mels(x[None], SR)[0] for x in case["erased"]])
    ref = song_mels(case["reference"][None], SR)[0]
    return {k: balance_error_db(v, case["true_fader_db"], case["weights"]) for k, v in points(mels, ref).items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("/work/data/lmms"))
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "cache" / "human")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "balance_points.json")
    a = ap.parse_args(argv)
    rows = {}
    for d in sorted(p for p in a.data.iterdir() if (p / "lmms.json").is_file()):
        r = song_case(d, a.seconds, a.work)
        if r is not None:
            rows[d.name] = r
            print(d.name, " ".join(f"{v:.2f}" for v in r.values()), flush=True)
    if not rows:
        ap.error(f"no rendered songs under {a.data} (automix-data lmms -o {a.data})")
    groups = {"held out": [s for s in rows if s in HELD_OUT], "training": [s for s in rows if s not in HELD_OUT],
              "all": list(rows)}
    keys = list(next(iter(rows.values())))
    lines = ["| balance point | " + " | ".join(f"{g} ({len(v)})" for g, v in groups.items()) + " |",
             "|---" * (len(groups) + 1) + "|"]
    for k in keys:
        lines.append(f"| {k} | " + " | ".join(f"{np.mean([rows[s][k] for s in v]):.2f}" if v else "—"
                                              for v in groups.values()) + " |")
    table = "\n".join(lines)
    print(table)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"rows": rows, "table": table}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
