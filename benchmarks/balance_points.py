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
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from automix import analysis  # noqa: E402
from automix.model.features import (fader_offsets_db, loudness_offsets_db,  # noqa: E402
                                    reference_balance_db)
from automix.model.predict import song_mels  # noqa: E402
from benchmarks.human import HELD_OUT  # noqa: E402
from training.human_pairs import EraseConfig, balance_error_db, erase  # noqa: E402

SR = 44100


def _read(path: Path) -> np.ndarray:
    x, sr = sf.read(str(path), dtype="float64", always_2d=True)
    assert sr == SR, (path, sr)
    return x.T


def points(mels: torch.Tensor, ref: torch.Tensor) -> dict[str, np.ndarray]:
    mask = torch.ones(1, mels.shape[0], dtype=torch.bool)
    m, r = mels[None], ref[None]
    loud = loudness_offsets_db(m, mask)
    out = {"equal loudness (BS.1770)": np.zeros(mels.shape[0]),
           "equal loudness read off the log-mels": loud[0].numpy(),
           "mel (median mel level)": fader_offsets_db(m, mask)[0].numpy(),
           "reference (strength 0.03, mel base; shipped)": reference_balance_db(m, mask, r)[0].numpy()}
    for st in (0.1, 0.3, 1.0):
        out[f"reference_loudness, strength {st:g}"] = reference_balance_db(m, mask, r, strength=st, base=loud)[0].numpy()
    return out


def song_case(song_dir: Path, seconds: float) -> dict | None:
    meta = json.loads((song_dir / "stems.json").read_text())
    files = [s["file"] for s in meta["stems"]]
    if len(files) < 2:
        return None
    residual = json.loads((song_dir / "lmms.json").read_text())["solo_sum_residual_db"]
    full = [_read(song_dir / f) for f in files]
    mix = sum(full) if residual > -40.0 else _read(song_dir / "mixture.wav")  # as benchmarks/human.py
    n = mix.shape[1]
    L = int(min(seconds, n / SR / 2 - 0.5) * SR)
    a, b = slice(n // 2 - L, n // 2), slice(n // 2, n // 2 + L)
    stems = np.stack([x[:, b] for x in full])
    stems = stems[[i for i, x in enumerate(stems) if analysis.integrated_loudness(x, SR) > -70.0]]
    seed = int.from_bytes(hashlib.sha1(song_dir.name.encode()).digest()[:4], "big")
    erased, er = erase(stems, SR, np.random.default_rng(seed), EraseConfig(pan_prob=0.5))
    weights = 10 ** (np.array([analysis.integrated_loudness(x, SR) for x in stems]) / 10)
    mels = torch.stack([song_mels(x[None], SR)[0] for x in erased])
    ref = song_mels(mix[None, :, a], SR)[0]
    return {k: balance_error_db(v, er.undo_gain_db, weights) for k, v in points(mels, ref).items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("/work/data/lmms"))
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "balance_points.json")
    a = ap.parse_args(argv)
    rows = {}
    for d in sorted(p for p in a.data.iterdir() if (p / "lmms.json").is_file()):
        r = song_case(d, a.seconds)
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
