"""Self-supervised training pairs: random console settings rendered from a song's own stems.

Every dataset crop is ``2 x section_seconds`` long and split in two sections of the same song:

    section A (first half)  --console(settings)--> the reference (the "finished song")
    section B (second half)                        the raw stems the network sees
                            --console(settings)--> the target (only when audio losses are on)

The settings are drawn from the priors (:mod:`training.priors`) with a generator that depends
only on ``(seed, epoch, index)``, so an example is the same in any worker, any process and after
a resume.  The network must recover the settings (normalized parameters) from the raw stems of B
and the reference made from A: it cannot copy the reference's waveform, it has to hear what was
done to it.

All of it runs in the DataLoader workers (:class:`PairDataset.__getitem__`), one torch thread
each, so rendering overlaps the training step.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from automix.render import TrackStrip, render_master
from automix.settings import validate
from automix.errors import AutomixError
from automix.model import log_mel
from automix.console.graph import eq_key  # the console's one key builder
from automix.params import MASTER_SPECS, TRACK_EQ_LAYOUT, TRACK_SPECS, spec_index, to_normalized

from .priors import prior_config, sample_settings

_TRACK = spec_index(TRACK_SPECS)
_MASTER = spec_index(MASTER_SPECS)
_COMP_KEYS = ("threshold_db", "ratio", "attack_ms", "release_ms", "knee_db", "makeup_db")


# --------------------------------------------------------------------------- settings -> params

def _eq_slots(bands: Sequence[Mapping[str, Any]], layout=TRACK_EQ_LAYOUT, where: str = "eq") -> dict:
    """Place each band in the first free slot of its type in the fixed layout; slots left
    free keep their defaults (a flat band, a high-pass parked at its lowest frequency)."""
    used = [False] * len(layout)
    out = {}
    for band in bands:
        kind = band["type"]
        for i, slot in enumerate(layout):
            if slot == kind and not used[i]:
                used[i] = True
                out[eq_key(i, slot, "freq_hz")] = float(band["freq_hz"])
                if "gain_db" in band and slot not in ("highpass", "lowpass"):
                    out[eq_key(i, slot, "gain_db")] = float(band["gain_db"])
                if "q" in band:
                    out[eq_key(i, slot, "q")] = float(band["q"])
                break
        else:
            raise AutomixError(f"{where}: a {kind} band does not fit the console's fixed EQ "
                               f"layout ({', '.join(layout)})")
    return out


def _physical(entry: Mapping[str, Any], specs: Mapping, where: str, master: bool) -> dict:
    p = {name: s.default for name, s in specs.items()}
    p.update(_eq_slots(entry.get("eq") or [], where=f"{where}.eq"))
    comp = entry.get("compressor") or {}
    for k in _COMP_KEYS:
        if k in comp:
            p[f"comp.{k}"] = float(comp[k])
    for k in ("gain_db", "width") + (() if master else ("pan",)):
        if k in entry:
            p[k] = float(entry[k])
    if master:
        lim = entry.get("limiter") or {}
        for k in ("ceiling_dbtp", "release_ms"):
            if k in lim:
                p[f"limiter.{k}"] = float(lim[k])
    # into the ranges the network predicts in (the priors stay inside them; hand-written
    # settings may not)
    return {k: min(max(v, specs[k].minimum), specs[k].maximum) for k, v in p.items()}


def params_from_settings(settings: Mapping[str, Any], n_tracks: int | None = None,
                         slots: Sequence[int] | None = None, dtype=torch.float32):
    """Schema-v1 ``tracks``/``master`` -> fixed-layout physical tensors.

    Returns ``(track {name: (N,)}, master {name: ()}, mask (N,) bool)``.  ``slots[i]`` is the
    row of ``settings["tracks"][i]`` (default: in order); rows without a track, and muted
    tracks, hold defaults and are masked out.  Missing processors and EQ bands take the
    defaults of :mod:`automix.params` (flat EQ, ratio 1, unity gain, centre, width 1).
    """
    tracks = list(settings.get("tracks") or [])
    slots = list(range(len(tracks))) if slots is None else [int(s) for s in slots]
    if len(slots) != len(tracks):
        raise ValueError(f"{len(slots)} slots for {len(tracks)} tracks")
    n = len(tracks) if n_tracks is None else int(n_tracks)
    rows = [{name: s.default for name, s in _TRACK.items()} for _ in range(n)]
    mask = torch.zeros(n, dtype=torch.bool)
    for i, (t, row) in enumerate(zip(tracks, slots)):
        rows[row] = _physical(t, _TRACK, f"tracks[{i}]", master=False)
        mask[row] = not bool(t.get("mute", False))
    track = {name: torch.tensor([r[name] for r in rows], dtype=dtype) for name in _TRACK}
    m = _physical(settings.get("master") or {}, _MASTER, "master", master=True)
    master = {name: torch.tensor(v, dtype=dtype) for name, v in m.items()}
    return track, master, mask


def normalized(physical: Mapping[str, torch.Tensor], specs) -> torch.Tensor:
    return to_normalized(dict(physical), specs).clamp(0.0, 1.0)


# --------------------------------------------------------------------------- the pair dataset

def _rms_db(x: torch.Tensor) -> float:
    return float(10 * torch.log10(x.double().square().mean() + 1e-20))


class PairDataset(Dataset):
    """Wraps a :class:`training.datasets.MultitrackDataset` whose crops are two sections long.

    Indices are ``(epoch, index)`` pairs (what :class:`StepSampler` yields) or plain ints
    (epoch 0).  Items (tensors only)::

        stem_mels     (N, 2, 64, F)  log-mel of the RAW stems of section B
        reference_mel (2, 64, F')    log-mel of the reference (section A through the console)
        mask, is_stereo (N,) bool
        track_params  (N, P_track)   true normalized parameters (defaults on padded rows)
        master_params (P_master,)
        stems         (N, 2, T)      raw section B        (with ``keep_audio``)
        target        (2, T)         section B rendered   (with ``render_target``)
        reference     (2, T)         the reference audio  (with ``keep_audio``)
    """

    def __init__(self, base, priors: Mapping[str, Any] | None = None, *, seed: int = 0,
                 render_target: bool = False, keep_audio: bool = False):
        self.base = base
        self.priors = prior_config(priors)
        self.seed = int(seed)
        self.render_target = bool(render_target)
        self.keep_audio = bool(keep_audio) or self.render_target
        self.sample_rate = int(base.sample_rate)
        self.section = base.crop_samples // 2
        if self.section < 2048:
            raise AutomixError("crop too short: each section needs at least 2048 samples")

    def __len__(self) -> int:
        return len(self.base)

    def rng(self, epoch: int, index: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence([self.seed, 7919, int(epoch), int(index)]))

    def __getitem__(self, key) -> dict[str, torch.Tensor]:
        epoch, index = key if isinstance(key, (tuple, list)) else (0, key)
        if torch.get_num_threads() != 1 and torch.utils.data.get_worker_info() is not None:
            torch.set_num_threads(1)
        self.base.set_epoch(int(epoch))
        item = self.base[int(index)]
        return self.make_pair(item, self.rng(epoch, index))

    @torch.no_grad()
    def make_pair(self, item: Mapping[str, Any], rng: np.random.Generator) -> dict[str, torch.Tensor]:
        sr, S = self.sample_rate, self.section
        stems, mask, stereo = item["stems"], item["mask"].clone(), item["is_stereo"]
        a, b = stems[..., :S], stems[..., S:2 * S]
        real = [int(i) for i in torch.nonzero(mask).flatten()]
        if not real:  # every file of the crop broke: a silent example, the loss still defined
            real = [0]
            mask[0] = True
        names = [item["names"][i] or f"track{i}" for i in real]
        names = [f"{n}#{k}" for k, n in enumerate(names)]  # unique, as the schema wants
        labels = [item["labels"][i] for i in real]
        levels = [_rms_db(stems[i]) for i in real]
        mix_level = _rms_db(stems[real].sum(0))
        settings = sample_settings(names, rng, self.priors, labels=labels, levels_db=levels,
                                   stereo=[bool(stereo[i]) for i in real], mix_level_db=mix_level)
        for strip in settings["tracks"] + [settings["master"]]:  # low training rates
            for band in strip["eq"]:
                band["freq_hz"] = min(band["freq_hz"], 0.45 * sr)
        tp, mp, used = params_from_settings(settings, len(mask), slots=real)
        mask = mask & used
        # References and targets need no gradient: the render executor's numba kernels make
        # them ~20x faster than the training executor (the two agree within -80 dB, tests).
        settings = validate(dict(settings, sample_rate=sr), "priors")
        reference = render_arrays(a, stereo, mask, real, settings, sr)[None]
        out = {"stem_mels": log_mel(b, sr), "reference_mel": log_mel(reference[0], sr),
               "mask": mask, "is_stereo": stereo.clone(),
               "track_params": normalized(tp, TRACK_SPECS),
               "master_params": normalized(mp, MASTER_SPECS)}
        if self.keep_audio:
            out["stems"] = b.contiguous()
            out["reference"] = reference[0].float()
        if self.render_target:
            out["target"] = render_arrays(b, stereo, mask, real, settings, sr)
        return out


def render_arrays(stems: torch.Tensor, is_stereo: torch.Tensor, mask: torch.Tensor,
                  slots: Sequence[int], settings: Mapping[str, Any], sample_rate: int) -> torch.Tensor:
    """The master of ``settings`` (tracks in ``slots`` order) for in-memory stems (N, 2, S),
    by the render executor; masked tracks are left out.  Returns (2, S) float32."""
    mix = np.zeros((2, stems.shape[-1]))
    for slot, track in zip(slots, settings["tracks"]):
        if mask[slot]:
            channels = 2 if is_stereo[slot] else 1
            x = stems[slot, :channels].double().numpy()
            TrackStrip(track, sample_rate, channels).process(x, mix)
    return torch.from_numpy(render_master(mix, settings["master"], sample_rate)).float()


_TRACK_KEYS = ("stem_mels", "mask", "is_stereo", "track_params", "stems")


def collate_pairs(batch: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack; items with fewer tracks are padded (mask False, default parameters)."""
    n = max(len(b["mask"]) for b in batch)
    out = {}
    for key in batch[0]:
        vals = [b[key] for b in batch]
        if key in _TRACK_KEYS:
            padded = []
            for v in vals:
                if len(v) < n:
                    if key == "track_params":
                        fill = normalized({k: torch.tensor(s.default) for k, s in _TRACK.items()},
                                          TRACK_SPECS).to(v.dtype).expand(n - len(v), -1)
                    else:
                        fill = v.new_zeros((n - len(v),) + tuple(v.shape[1:]))
                    v = torch.cat([v, fill])
                padded.append(v)
            vals = padded
        out[key] = torch.stack(vals)
    return out


# --------------------------------------------------------------------------- data order

class StepSampler(torch.utils.data.Sampler):
    """Batches of ``(epoch, index)`` keys as a pure function of ``(seed, step)``.

    The examples form one endless stream: epoch ``e`` is a permutation of the dataset drawn from
    a generator seeded with ``(seed, e)``; step ``s`` takes the stream's examples
    ``[s*B*W, (s+1)*B*W)`` (B per process, W processes) and rank ``r`` its ``r``-th share.  A
    resumed run starts at its step and sees exactly what an uninterrupted run would.
    """

    def __init__(self, n_items: int, batch_size: int, *, seed: int = 0, start_step: int = 0,
                 max_steps: int | None = None, rank: int = 0, world_size: int = 1):
        if n_items < 1:
            raise AutomixError("the dataset has no examples")
        self.n, self.batch_size, self.seed = int(n_items), int(batch_size), int(seed)
        self.start_step, self.max_steps = int(start_step), max_steps
        self.rank, self.world = int(rank), int(world_size)
        self._perm_epoch, self._perm = None, None

    def _permutation(self, epoch: int) -> list[int]:
        if self._perm_epoch != epoch:
            g = torch.Generator().manual_seed(int(np.random.SeedSequence([self.seed, 104729, epoch])
                                                  .generate_state(1)[0]))
            self._perm, self._perm_epoch = torch.randperm(self.n, generator=g).tolist(), epoch
        return self._perm

    def batch(self, step: int) -> list[tuple[int, int]]:
        first = (step * self.world + self.rank) * self.batch_size
        keys = []
        for g in range(first, first + self.batch_size):
            epoch, pos = divmod(g, self.n)
            keys.append((epoch, self._permutation(epoch)[pos]))
        return keys

    def __iter__(self):
        step = self.start_step
        while self.max_steps is None or step < self.max_steps:
            yield self.batch(step)
            step += 1

    def __len__(self) -> int:
        if self.max_steps is None:
            return 2 ** 62
        return max(0, int(self.max_steps) - self.start_step)


def section_crop_seconds(section_seconds: float) -> float:
    if not (section_seconds > 0 and math.isfinite(section_seconds)):
        raise AutomixError(f"section_seconds must be positive, got {section_seconds}")
    return 2.0 * float(section_seconds)
