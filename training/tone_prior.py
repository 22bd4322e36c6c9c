"""Fit the tone prior (automix/model/tone_prior.py) and write it into a checkpoint.

    python -m training.tone_prior --roots /work/data/lmms /work/data/synth \\
        --checkpoint automix/checkpoints/automix-default.pt --out with-prior.pt

Every stem of every song under ``--roots`` (generic layout; ``--exclude`` songs, by default the
held-out songs of ``configs/data/generic.yaml``, never read) is measured once: its mean mid
power per STFT bin, on the excerpts inference reads (``automix.model.predict.excerpts``).  A
shelf is a linear filter, so a shelved stem's mean power per bin is the stem's times the
shelf's power response ``|H(f)|^2``, exactly, and its mel shape follows without touching the
audio (:func:`shelved_shape`).  Each stem is drawn under ``--draws`` random low/high shelves
(uniform +-``--shelf-db``, the human pairs' erasure: training/human_pairs.py) and the prior is
the ridge regression from the shelved shape to the gains that undo them.  ``--alpha`` is chosen
by cross-validation over songs (grouped folds, so no song is on both sides), and the folds'
Pearson r of predicted against true undo gains is printed: what to expect on unseen songs.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch

from automix.audio import read_audio
from automix.dsp.eq import Band, frequency_response
from automix.errors import AutomixError
from automix.model.features import mel_filters, power_frames
from automix.model.predict import excerpts
from automix.model.tone_prior import SHELF_HZ, SHELF_Q, ShelfPrior, shape_db

ALPHAS = (0.1, 1.0, 10.0, 100.0)
FOLDS = 5


def default_excluded() -> list[str]:
    import yaml

    cfg = Path(__file__).resolve().parents[1] / "configs" / "data" / "generic.yaml"
    return list(yaml.safe_load(cfg.read_text())["human"]["exclude_songs"] or [])


def mean_bin_power(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """``(C, T)`` -> mean mid power per STFT bin over the excerpts the network reads."""
    x = torch.as_tensor(audio, dtype=torch.float32)
    if x.shape[0] == 1:
        x = x.expand(2, -1)
    frames = torch.cat([power_frames(e[0], sample_rate)[0] for e in excerpts(x[None], sample_rate)], -1)
    return frames.double().mean(-1).numpy()


def shelf_power(gains_db: np.ndarray, kind: str, sample_rate: int, bins: int) -> np.ndarray:
    """``(D,)`` shelf gains -> ``(D, bins)`` power responses of the console's RBJ shelf."""
    omega = torch.linspace(0, math.pi, bins, dtype=torch.float64)
    g = torch.as_tensor(gains_db, dtype=torch.float64)
    freq = SHELF_HZ[0] if kind == "lowshelf" else SHELF_HZ[1]
    band = Band(kind, torch.full_like(g, freq), torch.full_like(g, SHELF_Q), g)
    return (frequency_response([band], omega, sample_rate).abs() ** 2).numpy()


def shelved_shape(bin_power: np.ndarray, low_db: np.ndarray, high_db: np.ndarray,
                  sample_rate: int) -> np.ndarray:
    """The mel shape (``shape_db``) of a stem of mean bin power ``bin_power`` after low/high
    shelves of ``low_db``/``high_db`` (D,) dB -> ``(D, N_MELS)``."""
    bins = bin_power.shape[-1]
    power = bin_power * shelf_power(low_db, "lowshelf", sample_rate, bins) \
        * shelf_power(high_db, "highshelf", sample_rate, bins)
    mel = torch.as_tensor(power) @ mel_filters(sample_rate).double()
    return shape_db(mel).numpy()


def measure_songs(roots, excluded, log=print, only=None) -> list[tuple[str, int, list[np.ndarray]]]:
    """(song id, sample rate, [mean bin power per audible stem]) for every song kept (all but
    ``excluded``; only those named in ``only`` when given)."""
    from training.datasets import scan_generic

    skip = {s.lower() for s in excluded}
    songs = []
    for root in roots:
        for song in scan_generic(root):
            if song.id.lower() in skip or (only is not None and song.id not in only):
                continue
            powers, rate = [], None
            for stem in song.stems:
                audio, sr = read_audio(stem.path)
                if rate is not None and sr != rate:
                    continue  # one rate per song (the shelves' responses are per rate)
                p = mean_bin_power(audio, sr)
                if p.max() > 1e-10:  # silent stems say nothing about tone
                    powers.append(p)
                    rate = sr
            if powers:
                songs.append((f"{Path(root).name}/{song.id}", rate, powers))
                log(f"  {songs[-1][0]}: {len(powers)} stems")
    return songs


def draw(songs, draws: int, shelf_db: float, seed: int = 0):
    """Features (S, N_MELS), undo gains (S, 2) and the song index of every sample."""
    rng = np.random.default_rng(seed)
    xs, ys, groups = [], [], []
    for k, (_, sr, powers) in enumerate(songs):
        for p in powers:
            low, high = rng.uniform(-shelf_db, shelf_db, (2, draws))
            xs.append(shelved_shape(p, low, high, sr))
            ys.append(np.stack([-low, -high], 1))
            groups.append(np.full(draws, k))
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(groups)


def ridge(x: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form ridge with an unpenalised intercept: (W (F, 2), b (2,))."""
    mx, my = x.mean(0), y.mean(0)
    xc = x - mx
    w = np.linalg.solve(xc.T @ xc + alpha * len(x) * np.eye(x.shape[1]), xc.T @ (y - my))
    return w, my - mx @ w


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / math.sqrt((a * a).sum() * (b * b).sum() + 1e-30))


def cross_validate(x, y, groups, alphas=ALPHAS, folds: int = FOLDS) -> dict:
    """Pearson r (low, high) of grouped k-fold predictions, per alpha."""
    fold_of = np.asarray(groups) % folds
    out = {}
    for alpha in alphas:
        pred = np.zeros_like(y)
        for f in range(folds):
            test = fold_of == f
            if test.all() or not test.any():
                continue
            w, b = ridge(x[~test], y[~test], alpha)
            pred[test] = x[test] @ w + b
        out[alpha] = (pearson(pred[:, 0], y[:, 0]), pearson(pred[:, 1], y[:, 1]))
    return out


def with_prior(checkpoint: dict, w: np.ndarray, b: np.ndarray):
    """The checkpoint's network with a tone prior of weights ``w`` (F, 2) and bias ``b``."""
    from automix.model.net import AutomixNet

    model = AutomixNet(**dict(checkpoint["model_config"], tone_prior=True))
    state = {k: v for k, v in checkpoint["model"].items() if not k.startswith("tone_prior.")}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or any(not k.startswith("tone_prior.") for k in missing):
        raise AutomixError("checkpoint does not fit the model")
    prior: ShelfPrior = model.tone_prior
    with torch.no_grad():
        prior.linear.weight.copy_(torch.as_tensor(w.T))
        prior.linear.bias.copy_(torch.as_tensor(b))
    return model.eval()


def main(argv=None) -> int:
    from automix.model.checkpoint import load_checkpoint, save_checkpoint

    ap = argparse.ArgumentParser(prog="python -m training.tone_prior", description=__doc__.split("\n")[0])
    ap.add_argument("--roots", nargs="+", required=True, help="generic-layout dataset folders")
    ap.add_argument("--exclude", nargs="*", default=None,
                    help="songs never read (default: configs/data/generic.yaml's held-out songs)")
    ap.add_argument("--checkpoint", required=True, help="the network to add the prior to")
    ap.add_argument("--out", required=True, help="checkpoint to write (never the input)")
    ap.add_argument("--draws", type=int, default=64, help="random shelf pairs per stem")
    ap.add_argument("--shelf-db", type=float, default=4.0, help="shelf gains uniform in +-this")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--evaluate", nargs="*", default=[],
                    help="excluded songs to score the fitted prior on (r of --draws shelves per stem; "
                         "read after the fit, never fitted on)")
    a = ap.parse_args(argv)
    try:
        if Path(a.out).resolve() == Path(a.checkpoint).resolve():
            raise AutomixError("--out must differ from --checkpoint (it is never overwritten)")
        base = load_checkpoint(a.checkpoint)
        excluded = default_excluded() if a.exclude is None else a.exclude
        print(f"measuring stems (excluded: {', '.join(excluded) or 'none'})", flush=True)
        songs = measure_songs(a.roots, excluded, log=lambda m: print(m, flush=True))
        if len(songs) < FOLDS:
            raise AutomixError(f"{len(songs)} songs with audible stems: need at least {FOLDS}")
        x, y, groups = draw(songs, a.draws, a.shelf_db, a.seed)
        scores = cross_validate(x, y, groups)
        for alpha, (rl, rh) in scores.items():
            print(f"alpha {alpha:g}: cross-validated r low {rl:.3f} high {rh:.3f}")
        alpha = max(scores, key=lambda k: sum(scores[k]))
        w, b = ridge(x, y, alpha)
        model = with_prior(base, w, b)
        fit = {"alpha": float(alpha), "cv_r_low": scores[alpha][0], "cv_r_high": scores[alpha][1],
               "songs": len(songs), "stems": int(sum(len(s[2]) for s in songs)),
               "draws": int(a.draws), "shelf_db": float(a.shelf_db)}
        kept = {k: v for k, v in base.items()  # the network's own provenance travels along
                if k not in ("format", "version", "spec_version", "model_config", "model", "tone_prior_fit")}
        save_checkpoint(a.out, model, **kept, tone_prior_fit=fit)
        print(f"wrote {a.out}: alpha {alpha:g}, {fit['stems']} stems of {fit['songs']} songs")
        if a.evaluate:
            unknown = sorted(set(a.evaluate) - set(excluded))
            if unknown:
                raise AutomixError(f"--evaluate {unknown[0]}: only excluded songs can be scored")
            held = measure_songs(a.roots, [], log=lambda m: None, only=set(a.evaluate))
            xh, yh, _ = draw(held, a.draws, a.shelf_db, a.seed + 1)
            pred = xh @ w + b
            print(f"evaluated on {len(held)} excluded songs ({sum(len(s[2]) for s in held)} stems): "
                  f"r low {pearson(pred[:, 0], yh[:, 0]):.3f} high {pearson(pred[:, 1], yh[:, 1]):.3f}")
        return 0
    except AutomixError as exc:
        print(f"tone_prior: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
