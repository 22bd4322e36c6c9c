"""Training pairs from producers' multitracks (``automix-data lmms``): undo an erased balance.

A human pair is made the way the human-target benchmark (``benchmarks/human.py``) makes its case:

    producer's stems of section B --erase--> what the network sees
        erase = per stem: random +-``shelf_db`` low shelf and high shelf (RBJ, the console's own
        ``eq1_lowshelf``/``eq5_highshelf`` slots), optionally a random pan of a mono-content stem
        (balance law, as the console pans a two-channel track), then one gain to ``target_lufs``
        integrated (every stem equally loud: the producer's balance is gone)
    producer's mix of section A                the reference
    producer's stems of section B, summed      the target (``render_target``)

The true console settings are the exact inverse (:func:`undo_settings`): shelves of the opposite
gain at the same frequency and Q (an RBJ shelf of ``-g`` is the inverse filter of ``+g``), pan
``-p`` with ``-20 log10 cos(p pi/2)`` dB of gain (what the balance law loses on the way there and
back), and the gain that undoes the loudness step. Track gains are given with their mean removed
(the mean goes to the master gain), so that they stay inside the console's fader range.

:class:`HumanPairDataset` yields the keys of :class:`training.pairs.PairDataset`, so
:class:`MixedPairs` can draw each example from one or the other with probability ``ratio``
(``data.human.ratio`` in ``configs/data/*.yaml``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import scipy.signal
import torch
from torch.utils.data import Dataset

from automix.analysis import integrated_loudness
from automix.dsp.eq import biquad_coefficients
from automix.errors import AutomixError

SILENT_LUFS = -70.0   # below this a stem is left as it is (not scaled up from silence)


@dataclass(frozen=True)
class EraseConfig:
    target_lufs: float = -23.0
    shelf_db: float = 4.0             # each shelf gain is uniform in [-shelf_db, +shelf_db]
    low_shelf_hz: float = 120.0       # the console's eq1_lowshelf default
    high_shelf_hz: float = 8000.0     # the console's eq5_highshelf default
    shelf_q: float = 0.707
    pan_prob: float = 0.0             # probability that a mono-content stem is panned
    pan_max: float = 0.6              # |pan| of that perturbation, uniform in [-pan_max, pan_max]

    @classmethod
    def of(cls, cfg: Mapping[str, Any] | None) -> "EraseConfig":
        cfg = dict(cfg or {})
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise AutomixError(f"data.human.erase: unknown key {unknown[0]} (known: {', '.join(sorted(known))})")
        out = cls(**{k: float(v) for k, v in cfg.items()})
        if not (0 <= out.pan_prob <= 1 and 0 <= out.pan_max < 1 and out.shelf_db >= 0):
            raise AutomixError("data.human.erase: pan_prob in 0..1, pan_max in 0..1 (exclusive), shelf_db >= 0")
        return out


@dataclass
class Erasure:
    """What :func:`erase` did to each stem (arrays of length N)."""
    gain_db: np.ndarray       # the loudness step
    low_db: np.ndarray        # low-shelf gain applied
    high_db: np.ndarray       # high-shelf gain applied
    pan: np.ndarray           # pan applied (0: none)
    active: np.ndarray        # loud enough to be levelled
    cfg: EraseConfig = field(default_factory=EraseConfig)

    @property
    def undo_gain_db(self) -> np.ndarray:
        """The fader offset that undoes the loudness step and the pan's level loss."""
        return -self.gain_db - 20.0 * np.log10(np.cos(self.pan * math.pi / 2))


def is_mono_content(x: np.ndarray, tol: float = 1e-10) -> bool:
    """Both channels hold the same signal (``|L-R|^2 <= tol |L+R|^2``)."""
    x = np.asarray(x)
    if x.shape[0] < 2:
        return True
    return float(np.sum((x[0] - x[1]) ** 2)) <= tol * float(np.sum((x[0] + x[1]) ** 2))


def shelf(x: np.ndarray, kind: str, freq_hz: float, gain_db: float, q: float, sample_rate: int) -> np.ndarray:
    """One RBJ shelf (the console's coefficients) over (channels, T), float64, from zero state."""
    b0, b1, b2, a1, a2 = (float(c) for c in biquad_coefficients(kind, torch.tensor(float(freq_hz), dtype=torch.float64),
                                                               gain_db, q, sample_rate))
    return scipy.signal.lfilter([b0, b1, b2], [1.0, a1, a2], x, axis=-1)


def balance_gains(pan: float) -> tuple[float, float]:
    """The console's pan law for a two-channel track (unity at the centre)."""
    theta = (pan + 1) * math.pi / 4
    return math.sqrt(2) * math.cos(theta), math.sqrt(2) * math.sin(theta)


def erase(stems: np.ndarray, sample_rate: int, rng: np.random.Generator,
          cfg: EraseConfig = EraseConfig(), active: Sequence[bool] | None = None) -> tuple[np.ndarray, Erasure]:
    """Erase the producer's balance of ``stems`` (N, 2, T) (see the module notes).
    Returns the erased stems (float64) and what was done."""
    stems = np.asarray(stems, dtype=np.float64)
    n = stems.shape[0]
    low = rng.uniform(-cfg.shelf_db, cfg.shelf_db, n)
    high = rng.uniform(-cfg.shelf_db, cfg.shelf_db, n)
    pan_draw = rng.uniform(-cfg.pan_max, cfg.pan_max, n)
    pan_on = rng.uniform(size=n) < cfg.pan_prob
    out = np.zeros_like(stems)
    gain = np.zeros(n)
    pan = np.zeros(n)
    act = np.zeros(n, bool)
    for i in range(n):
        if active is not None and not active[i]:
            low[i] = high[i] = 0.0
            out[i] = stems[i]
            continue
        x = shelf(stems[i], "lowshelf", cfg.low_shelf_hz, low[i], cfg.shelf_q, sample_rate)
        x = shelf(x, "highshelf", cfg.high_shelf_hz, high[i], cfg.shelf_q, sample_rate)
        if pan_on[i] and is_mono_content(stems[i]):
            pan[i] = pan_draw[i]
            gl, gr = balance_gains(pan[i])
            x = np.stack([x[0] * gl, x[1] * gr])
        lufs = integrated_loudness(x, sample_rate)
        if math.isfinite(lufs) and lufs > SILENT_LUFS:
            gain[i] = cfg.target_lufs - lufs
            act[i] = True
        out[i] = x * 10 ** (gain[i] / 20)
    return out, Erasure(gain, low, high, pan, act, cfg)


def undo_settings(er: Erasure, names: Sequence[str], *, remove_mean: bool = True) -> dict:
    """Schema-v1 settings (``tracks`` + ``master``) that turn the erased stems back into the
    producer's stems. With ``remove_mean`` the mean undo gain of the active stems goes to the
    master gain (the console's fader range is -40..+20 dB)."""
    undo = er.undo_gain_db
    mean = float(np.mean(undo[er.active])) if remove_mean and er.active.any() else 0.0
    c = er.cfg
    tracks = []
    for i, name in enumerate(names):
        tracks.append({
            "name": name, "file": f"{name}.wav", "gain_db": float(undo[i] - mean), "pan": float(-er.pan[i]),
            "eq": [{"type": "lowshelf", "freq_hz": c.low_shelf_hz, "gain_db": float(-er.low_db[i]), "q": c.shelf_q},
                   {"type": "highshelf", "freq_hz": c.high_shelf_hz, "gain_db": float(-er.high_db[i]), "q": c.shelf_q}],
        })
    from automix.settings import FORMAT, VERSION

    return {"format": FORMAT, "version": VERSION, "tracks": tracks, "master": {"gain_db": mean}}


# ------------------------------------------------------------------------------ the balance metric

def balance_error_db(offsets_db: Sequence[float], true_offsets_db: Sequence[float],
                     weights: Sequence[float] | None = None) -> float:
    """Stem balance error: each track's offset and the true one, each with its (weighted) mean
    removed, then the weighted mean of ``|difference|`` in dB. ``weights`` (e.g. each stem's
    share of the producer's mix power: loudness-weighted) default to equal; a song-wide level
    shift costs nothing."""
    o = np.asarray(offsets_db, dtype=np.float64)
    t = np.asarray(true_offsets_db, dtype=np.float64)
    if o.shape != t.shape or o.ndim != 1 or len(o) == 0:
        raise ValueError("offsets and true offsets: two 1-D sequences of the same length")
    w = np.ones_like(o) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != o.shape or (w < 0).any() or w.sum() <= 0:
        raise ValueError("weights: non-negative, one per track, not all zero")
    w = w / w.sum()
    d = (o - np.sum(w * o)) - (t - np.sum(w * t))
    return float(np.sum(w * np.abs(d)))


# ------------------------------------------------------------------------------ the pair dataset

class HumanPairDataset(Dataset):
    """Pairs from producers' multitracks; items have the keys of :class:`training.pairs.PairDataset`.

    ``base`` is a :class:`training.datasets.MultitrackDataset` over ``automix-data lmms`` songs,
    crops two sections long. The reference is the producer's ``mixture.wav`` over section A when
    the crop holds all of the song's stems (else the sum of the crop's stems over A)."""

    def __init__(self, base, erase_cfg: EraseConfig | Mapping | None = None, *, seed: int = 0,
                 render_target: bool = False, keep_audio: bool = False, reference: str = "mixture"):
        if reference not in ("mixture", "stems"):
            raise AutomixError(f"data.human.reference {reference!r}: expected mixture or stems")
        self.base = base
        self.cfg = erase_cfg if isinstance(erase_cfg, EraseConfig) else EraseConfig.of(erase_cfg)
        self.seed = int(seed)
        self.render_target = bool(render_target)
        self.keep_audio = bool(keep_audio) or self.render_target
        self.reference = reference
        self.sample_rate = int(base.sample_rate)
        self.section = base.crop_samples // 2
        self._songs = {s.id: s for s in base.songs}

    def __len__(self) -> int:
        return len(self.base)

    def rng(self, epoch: int, index: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence([self.seed, 15485863, int(epoch), int(index)]))

    def __getitem__(self, key) -> dict[str, torch.Tensor]:
        epoch, index = key if isinstance(key, (tuple, list)) else (0, key)
        self.base.set_epoch(int(epoch))
        item = self.base[int(index)]
        return self.make_pair(item, self.rng(epoch, index))

    def _mixture(self, item, n: int) -> np.ndarray | None:
        from .datasets import _stem, read_crop

        song = self._songs.get(item["song"])
        if self.reference != "mixture" or song is None or int(item["mask"].sum()) < len(song.stems):
            return None
        path = Path(song.stems[0].path).parent / "mixture.wav"
        if not path.is_file():
            return None
        info = _stem(path)
        if info is None:
            return None
        x = read_crop(info, item["start_seconds"], n, self.sample_rate)
        return np.broadcast_to(x, (2, n)) if x.shape[0] == 1 else x[:2]

    @torch.no_grad()
    def make_pair(self, item: Mapping[str, Any], rng: np.random.Generator) -> dict[str, torch.Tensor]:
        from automix.model import log_mel
        from automix.params import MASTER_SPECS, TRACK_SPECS

        from .pairs import normalized, params_from_settings

        sr, S = self.sample_rate, self.section
        stems, mask = item["stems"], item["mask"].clone()
        real = [int(i) for i in torch.nonzero(mask).flatten()] or [0]
        mask[real[0]] = True
        b = stems[real, :, S:2 * S].double().numpy()
        erased, er = erase(b, sr, rng, self.cfg, active=[bool(item["active"][i]) for i in real])
        names = [f"{item['names'][i] or 'track'}#{k}" for k, i in enumerate(real)]
        settings = undo_settings(er, names)
        tp, mp, used = params_from_settings(settings, len(mask), slots=real)
        mask = mask & used
        full = self._mixture(item, 2 * S)
        if full is not None:
            reference = torch.from_numpy(np.ascontiguousarray(full[:, :S])).float()
        else:
            reference = stems[real, :, :S].sum(0).float()
        seen = torch.zeros_like(stems[..., :S])
        seen[real] = torch.from_numpy(erased).float()
        # every stem is two-channel here: a panned mono-content stem is no longer mono
        is_stereo = mask.clone()
        out = {"stem_mels": log_mel(seen, sr), "reference_mel": log_mel(reference, sr),
               "mask": mask, "is_stereo": is_stereo,
               "track_params": normalized(tp, TRACK_SPECS), "master_params": normalized(mp, MASTER_SPECS)}
        if self.keep_audio:
            out["stems"] = seen.contiguous()
            out["reference"] = reference
        if self.render_target:
            out["target"] = torch.from_numpy(b.sum(0)).float()
        return out


class MixedPairs(Dataset):
    """Synthetic pairs, with probability ``ratio`` replaced by a human pair (same keys).

    Which source an ``(epoch, index)`` key takes depends only on ``(seed, epoch, index)``; a human
    pair takes song ``index`` modulo the human songs, with its own crop and erasure for every
    index. ``ratio`` 1: human pairs only."""

    def __init__(self, synthetic: Dataset | None, human: Dataset, ratio: float, seed: int = 0):
        if not 0.0 < ratio <= 1.0:
            raise AutomixError(f"data.human.ratio {ratio:g}: expected 0 < ratio <= 1")
        if synthetic is None and ratio < 1.0:
            raise AutomixError("data.human.ratio < 1 needs synthetic data")
        self.synthetic, self.human, self.ratio, self.seed = synthetic, human, float(ratio), int(seed)
        self.sample_rate = human.sample_rate

    def __len__(self) -> int:
        return len(self.synthetic) if self.synthetic is not None else len(self.human)

    @property
    def base(self):
        """What the trainer reports: the songs of both sources."""
        from types import SimpleNamespace

        songs = list(self.human.base.songs) + (list(self.synthetic.base.songs) if self.synthetic is not None else [])
        return SimpleNamespace(songs=songs, sample_rate=self.sample_rate)

    def source(self, epoch: int, index: int) -> str:
        u = np.random.default_rng(np.random.SeedSequence([self.seed, 32452843, int(epoch), int(index)])).uniform()
        return "human" if u < self.ratio else "synthetic"

    def __getitem__(self, key):
        epoch, index = key if isinstance(key, (tuple, list)) else (0, key)
        if self.source(epoch, index) == "human":
            # the full index: the song is index % songs, the crop and the erasure depend on all of it
            return self.human[(epoch, int(index))]
        return self.synthetic[(epoch, index)]


def build_human(c: Mapping[str, Any], split: str, render_target: bool, keep_audio: bool,
                crop_seconds: float) -> HumanPairDataset:
    """The human pairs of ``data.human`` (root, erase, reference, exclude_songs, valid_fraction)."""
    from .datasets import MultitrackDataset, scan_generic, split_songs

    data = dict(c.get("data") or {})
    h = dict(data.get("human") or {})
    if not h.get("root"):
        raise AutomixError("data.human.root: the folder automix-data lmms wrote")
    songs = scan_generic(h["root"], min_stems=2)
    held = {str(s).lower() for s in (h.get("exclude_songs") or [])}
    songs = [s for s in songs if s.id.lower() not in held]
    songs = split_songs(songs, split, float(h.get("valid_fraction", 0.0)), salt=str(data.get("split_salt", "automix")))
    if not songs:
        raise AutomixError(f"data.human.root {h['root']}: no {split} songs")
    base = MultitrackDataset(songs, sample_rate=int(data.get("sample_rate", 44100)), crop_seconds=crop_seconds,
                             max_tracks=int(data.get("max_tracks", 16)), seed=int(data.get("seed", 0)) + 1,
                             samples_per_epoch=h.get("samples_per_epoch"),
                             silence_db=float(data.get("silence_db", -60.0)),
                             min_active=int(data.get("min_active", 2)), pad_to_max_tracks=bool(data.get("pad_to_max_tracks", True)))
    return HumanPairDataset(base, h.get("erase"), seed=int(c.get("seed", 0)), render_target=render_target,
                            keep_audio=keep_audio, reference=str(h.get("reference", "mixture")))
