"""The tone prior: per-track low and high shelf gains read off each stem's own spectrum.

Why a separate, linear part: trained end to end on producers' multitracks (10 songs, 600 CPU
steps) the network's per-track shelves came out uncorrelated with the tone a stem was given
(r = -0.09 / -0.16 on held-out songs: checkpoints/README.md).  What a stem's spectrum says
about its tone is mostly *where its long-term spectrum sits against what stems usually look
like*, and that is a regression we can fit in closed form on many more examples than the
network sees: every stem of the training songs under thousands of random shelves, applied
exactly in the feature domain (:func:`shelved_shape`).

    stem log-mels (2, M, F)  -> mean mid power per mel band (M,)  [mel_power]
                             -> dB re its loudest band, floored at -SHAPE_FLOOR_DB  [shape_db]
                             -> w @ shape + b = (low, high) shelf gain in dB        [ShelfPrior]

The shelves are the console's own slots, ``eq1_lowshelf`` at ``SHELF_HZ[0]`` and
``eq5_highshelf`` at ``SHELF_HZ[1]`` (Q ``SHELF_Q``): the fit (``training/tone_prior.py``) learns
the gains that undo random shelves there, so a stem with a boosted top gets a cut.
"""
from __future__ import annotations

import torch
from torch import nn

from .features import N_MELS

SHELF_HZ = (120.0, 8000.0)
SHELF_Q = 0.707
SHAPE_FLOOR_DB = 60.0
MAX_GAIN_DB = 6.0  # a prior, not a rescue: never more than this either way


def mel_power(stem_mels: torch.Tensor) -> torch.Tensor:
    """``(..., 2, M, F)`` log-mels in dB -> ``(..., M)`` mean mid power per band (linear)."""
    return torch.pow(10.0, stem_mels[..., 0, :, :].double() / 10).mean(-1)


def shape_db(power: torch.Tensor) -> torch.Tensor:
    """``(..., M)`` mean band power -> its shape: dB re the loudest band, floored (level-free)."""
    db = 10 * torch.log10(power.double().clamp_min(1e-30))
    return (db - db.amax(-1, keepdim=True)).clamp_min(-SHAPE_FLOOR_DB)


class ShelfPrior(nn.Module):
    """``shape (..., M)`` -> ``(..., 2)`` low and high shelf gains (dB): one linear map, fitted by
    ridge regression (``training/tone_prior.py``), bounded to +-``MAX_GAIN_DB``."""

    def __init__(self, bands: int = N_MELS):
        super().__init__()
        self.linear = nn.Linear(bands, 2, dtype=torch.float64)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, stem_mels: torch.Tensor) -> torch.Tensor:
        """``(..., 2, M, F)`` stem log-mels -> ``(..., 2)`` (low, high) shelf gains in dB."""
        return self.gains(shape_db(mel_power(stem_mels)))

    def gains(self, shape: torch.Tensor) -> torch.Tensor:
        x = shape.to(self.linear.weight.dtype)
        return self.linear(x).clamp(-MAX_GAIN_DB, MAX_GAIN_DB)
