"""Range checks shared by the processors whose settings a person may edit by hand."""
from __future__ import annotations

import torch

from ..errors import AutomixError


def check_limits(p: dict, limits: dict, where: str, hints: dict | None = None) -> None:
    """One-line :class:`AutomixError` for a parameter of ``limits`` (name -> (lo, hi)) that is
    missing from ``p``, not finite, or outside its range; values may be numbers or tensors of
    any shape.  ``hints`` (name -> text) adds why a limit is there."""
    for name, (lo, hi) in limits.items():
        if name not in p:
            raise AutomixError(f"{where}: missing parameter {name!r}")
        v = torch.as_tensor(p[name], dtype=torch.float64)
        if not bool(torch.isfinite(v).all()):
            raise AutomixError(f"{where}.{name} must be a finite number")
        if bool((v < lo).any()) or bool((v > hi).any()):
            bad = float(v.flatten()[0] if v.numel() == 1 else (v.min() if bool((v < lo).any()) else v.max()))
            hint = (hints or {}).get(name)
            raise AutomixError(f"{where}.{name} must be within {lo:g}..{hi:g}, got {bad:g}"
                               + (f" ({hint})" if hint else ""))
