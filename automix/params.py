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

import math
from dataclasses import dataclass

import torch

SPEC_VERSION = 1  # bump when a name, range, scale or the layout changes (checkpoints record it)


@dataclass(frozen=True)
class ParamSpec:
    name: str
    unit: str
    minimum: float
    maximum: float
    default: float
    scale: str = "linear"  # or "log"

    def to_physical(self, normalized):
        n = torch.as_tensor(normalized)
        if self.scale == "log":
            lo, hi = math.log(self.minimum), math.log(self.maximum)
            return torch.exp(lo + n * (hi - lo))
        return self.minimum + n * (self.maximum - self.minimum)

    def to_normalized(self, physical):
        p = torch.as_tensor(physical)
        if self.scale == "log":
            lo, hi = math.log(self.minimum), math.log(self.maximum)
            return (torch.log(p) - lo) / (hi - lo)
        return (p - self.minimum) / (self.maximum - self.minimum)


def _eq_specs(prefix: str, max_gain: float) -> list[ParamSpec]:
    g = max_gain
    return [
        ParamSpec(f"{prefix}eq0_highpass.freq_hz", "Hz", 20.0, 600.0, 20.0, "log"),
        ParamSpec(f"{prefix}eq0_highpass.q", "", 0.5, 2.0, 0.707, "log"),
        ParamSpec(f"{prefix}eq1_lowshelf.freq_hz", "Hz", 30.0, 600.0, 120.0, "log"),
        ParamSpec(f"{prefix}eq1_lowshelf.gain_db", "dB", -g, g, 0.0),
        ParamSpec(f"{prefix}eq1_lowshelf.q", "", 0.4, 1.5, 0.707, "log"),
        ParamSpec(f"{prefix}eq2_peak.freq_hz", "Hz", 40.0, 1000.0, 200.0, "log"),
        ParamSpec(f"{prefix}eq2_peak.gain_db", "dB", -g, g, 0.0),
        ParamSpec(f"{prefix}eq2_peak.q", "", 0.3, 8.0, 1.0, "log"),
        ParamSpec(f"{prefix}eq3_peak.freq_hz", "Hz", 200.0, 5000.0, 1000.0, "log"),
        ParamSpec(f"{prefix}eq3_peak.gain_db", "dB", -g, g, 0.0),
        ParamSpec(f"{prefix}eq3_peak.q", "", 0.3, 8.0, 1.0, "log"),
        ParamSpec(f"{prefix}eq4_peak.freq_hz", "Hz", 1000.0, 16000.0, 4000.0, "log"),
        ParamSpec(f"{prefix}eq4_peak.gain_db", "dB", -g, g, 0.0),
        ParamSpec(f"{prefix}eq4_peak.q", "", 0.3, 8.0, 1.0, "log"),
        ParamSpec(f"{prefix}eq5_highshelf.freq_hz", "Hz", 1500.0, 18000.0, 8000.0, "log"),
        ParamSpec(f"{prefix}eq5_highshelf.gain_db", "dB", -g, g, 0.0),
        ParamSpec(f"{prefix}eq5_highshelf.q", "", 0.4, 1.5, 0.707, "log"),
    ]


def _compressor_specs(prefix: str) -> list[ParamSpec]:
    return [
        ParamSpec(f"{prefix}comp.threshold_db", "dB", -60.0, 0.0, 0.0),
        ParamSpec(f"{prefix}comp.ratio", "", 1.0, 20.0, 1.0, "log"),
        ParamSpec(f"{prefix}comp.attack_ms", "ms", 0.1, 100.0, 10.0, "log"),
        ParamSpec(f"{prefix}comp.release_ms", "ms", 10.0, 2000.0, 150.0, "log"),
        ParamSpec(f"{prefix}comp.knee_db", "dB", 0.0, 12.0, 6.0),
        ParamSpec(f"{prefix}comp.makeup_db", "dB", -12.0, 24.0, 0.0),
    ]


TRACK_EQ_LAYOUT = ("highpass", "lowshelf", "peak", "peak", "peak", "highshelf")

TRACK_SPECS: tuple[ParamSpec, ...] = tuple(
    _eq_specs("", 12.0) + _compressor_specs("") + [
        ParamSpec("gain_db", "dB", -40.0, 20.0, 0.0),
        ParamSpec("pan", "", -1.0, 1.0, 0.0),
        ParamSpec("width", "", 0.0, 2.0, 1.0),
    ])

MASTER_SPECS: tuple[ParamSpec, ...] = tuple(
    _eq_specs("", 12.0) + _compressor_specs("") + [
        ParamSpec("width", "", 0.0, 2.0, 1.0),
        ParamSpec("gain_db", "dB", -24.0, 36.0, 0.0),
        ParamSpec("limiter.ceiling_dbtp", "dBTP", -12.0, 0.0, -1.0),
        ParamSpec("limiter.release_ms", "ms", 10.0, 1000.0, 80.0, "log"),
    ])

# Structural settings: not predicted, not differentiable (integer samples).
LIMITER_LOOKAHEAD_MS = 2.0


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
