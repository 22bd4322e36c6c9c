"""Inference: a trained :class:`AutomixNet` reads the stems and the reference and proposes
console settings (physical units), the starting point that refinement then improves."""
from __future__ import annotations

import numpy as np
import torch

from ..params import MASTER_SPECS, TRACK_SPECS, to_physical
from .features import log_mel_long
from .net import AutomixNet
from .tone_prior import SHELF_HZ, SHELF_Q

MAX_SECONDS = 40.0  # the statistics of a longer song come from evenly spaced excerpts
EXCERPTS = 4


def excerpts(audio: torch.Tensor, sample_rate: int, max_seconds: float = MAX_SECONDS,
             parts: int = EXCERPTS) -> list[torch.Tensor]:
    """``(..., T)`` -> the whole signal, or ``parts`` evenly spaced runs totalling ``max_seconds``."""
    T = audio.shape[-1]
    total = int(max_seconds * sample_rate)
    if T <= total:
        return [audio]
    run = total // parts
    starts = np.linspace(0, T - run, parts).round().astype(int)
    return [audio[..., s:s + run] for s in starts]


def song_mels(audio: np.ndarray | torch.Tensor, sample_rate: int) -> torch.Tensor:
    """``(N, C, T)`` (C = 1 or 2) -> ``(N, 2, M, F)`` log-mels of the excerpts, concatenated
    in time (the encoder pools over time, so the seams cost two frames out of hundreds)."""
    x = torch.as_tensor(audio, dtype=torch.float32)
    if x.shape[1] == 1:
        x = x.expand(-1, 2, -1)
    return torch.cat([log_mel_long(e, sample_rate, max_items=4)
                      for e in excerpts(x, sample_rate)], -1)


@torch.no_grad()
def predict_from_mels(model: AutomixNet, stem_mels: torch.Tensor, is_stereo, reference_mel: torch.Tensor
                      ) -> tuple[dict, dict]:
    """``stem_mels`` (N, 2, M, F), ``is_stereo`` (N,), ``reference_mel`` (2, M, F') ->
    (track params ``{name: (N,)}``, master params ``{name: ()}``), physical units, float64."""
    model.eval()
    mask = torch.ones(1, stem_mels.shape[0], dtype=torch.bool)
    stereo = torch.as_tensor(list(is_stereo), dtype=torch.bool)[None]
    track, master = model(stem_mels[None], mask, stereo, reference_mel[None])
    tp = {k: v[0] for k, v in to_physical(track.double(), TRACK_SPECS).items()}
    offsets = model.fader_offsets(stem_mels[None], mask, reference_mel[None])[0]
    learned, scale = tp["gain_db"], float(model.config.get("fader_deviation", 1.0))
    tp["gain_db"] = learned.mean() + scale * (learned - learned.mean()) + offsets.double()
    if model.tone_prior is not None:  # the shelves from each stem's own spectrum shape
        low_high = model.tone_prior(stem_mels)
        for slot, freq, gain in zip(("eq1_lowshelf", "eq5_highshelf"), SHELF_HZ, low_high.unbind(-1)):
            tp[f"{slot}.freq_hz"] = torch.full_like(gain, freq)
            tp[f"{slot}.q"] = torch.full_like(gain, SHELF_Q)
            tp[f"{slot}.gain_db"] = gain
    mp = {k: v[0] for k, v in to_physical(master.double(), MASTER_SPECS).items()}
    return tp, mp


def predict_params(model: AutomixNet, stems: list[np.ndarray], reference: np.ndarray,
                   sample_rate: int) -> tuple[dict, dict]:
    """Stems (each ``(C, T)``, C = 1 or 2) + reference ``(C, T)`` -> :func:`predict_from_mels`."""
    length = max(s.shape[-1] for s in stems)
    mels = torch.stack([song_mels(_padded(s, length)[None], sample_rate)[0] for s in stems])
    ref = song_mels(np.asarray(reference)[None], sample_rate)[0]
    return predict_from_mels(model, mels, [s.shape[0] == 2 for s in stems], ref)


def _padded(x: np.ndarray, length: int) -> np.ndarray:
    return x if x.shape[-1] == length else np.pad(x, ((0, 0), (0, length - x.shape[-1])))
