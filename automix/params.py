"""Parameter specs: every console parameter's unit, range, default and scale, in one place.

The network predicts values in [0, 1]; :meth:`ParamSpec.to_physical` maps them to physical
units (dB, Hz, Q, ms, ratio, pan) and :meth:`ParamSpec.to_normalized` maps back.  Frequencies,
Q, times and ratios use a log scale, so equal steps of the normalized value are equal ratios.

The console has a fixed processor layout per strip (needed for batching and for a network with a
fixed number of outputs): EQ ``highpass, lowshelf, peak, peak, peak, highshelf``, compressor,
gain, pan (tracks) or width (master), and the master's limiter.  settings.json may hold other
layouts; the render path takes any.
"""
from __future__ import annotations

import torch

# One declaration of the console (automix/console/graph.py) builds every key and spec.
from .console.graph import (LIMITER_LOOKAHEAD_MS, MASTER_SPECS, SPEC_VERSION,  # noqa: E402,F401
                            TRACK_EQ_LAYOUT, TRACK_SPECS, ParamSpec)


def spec_index(specs) -> dict[str, ParamSpec]:
    return {s.name: s for s in specs}


def defaults(specs, shape=(), dtype=torch.float32, device=None) -> dict[str, torch.Tensor]:
    """Physical default values, each a tensor of ``shape``."""
    return {s.name: torch.full(shape, s.default, dtype=dtype, device=device) for s in specs}


def to_physical(normalized: torch.Tensor, specs) -> dict[str, torch.Tensor]:
    """``(..., len(specs))`` normalized values -> dict of physical tensors ``(...)``."""
    return {s.name: s.to_physical(normalized[..., i]) for i, s in enumerate(specs)}


def to_normalized(physical: dict[str, torch.Tensor], specs) -> torch.Tensor:
    return torch.stack([s.to_normalized(physical[s.name]) for s in specs], dim=-1)
