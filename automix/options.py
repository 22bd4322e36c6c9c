"""The ranges of the job's options, checked in one place for the command line (while parsing,
before any heavy import) and the Python API (:func:`automix.api.check_options`)."""
from __future__ import annotations

from .errors import AutomixError

TARGET_LUFS_RANGE = (-60.0, 0.0)
CEILING_RANGE_DBTP = (-30.0, 0.0)
MAX_REFINE_STEPS = 5000     # each fit converges in a few hundred steps; more only costs time


def check_target_lufs(value) -> float | None:
    lo, hi = TARGET_LUFS_RANGE
    if value is not None and not lo <= float(value) <= hi:
        raise AutomixError(f"--target-lufs {value}: target loudness goes from {lo:g} to {hi:g} LUFS")
    return None if value is None else float(value)


def check_ceiling(value) -> float:
    lo, hi = CEILING_RANGE_DBTP
    if not lo <= float(value) <= hi:
        raise AutomixError(f"--ceiling {value}: the ceiling goes from {lo:g} to {hi:g} dBTP")
    return float(value)


def check_refine_steps(value) -> int:
    if isinstance(value, bool) or int(value) != value or not 0 <= value <= MAX_REFINE_STEPS:
        raise AutomixError(f"--refine-steps {value}: a whole number from 0 to {MAX_REFINE_STEPS}")
    return int(value)


LEAD_MARGIN_RANGE_DB = (-12.0, 12.0)   # lead minus the rest of the mix, short-term loudness


def check_lead_margin(value) -> float:
    lo, hi = LEAD_MARGIN_RANGE_DB
    if isinstance(value, bool) or not lo <= float(value) <= hi:
        raise AutomixError(f"--lead-margin {value}: the lead's margin goes from {lo:g} to {hi:g} dB")
    return float(value)


def check_space(value) -> float:
    """``--space``: how much reverb of the reference's kind to add (automix.space): 0..1."""
    if isinstance(value, bool) or not 0.0 <= float(value) <= 1.0:
        raise AutomixError(f"--space {value}: space goes from 0 (no reverb sends) to 1")
    return float(value)


def check_lead(value) -> str | None:
    """``--lead``: ``auto`` (found from names and audio: None), ``none`` (no rider) or a stem's
    name (checked against the stems by :func:`automix.lead.find_lead`)."""
    if value is None or value == "auto":
        return None
    if not isinstance(value, str) or not value.strip():
        raise AutomixError(f"--lead {value!r}: a stem's name, 'auto' or 'none'")
    return "none" if value.lower() == "none" else value


MAX_FADE_S = 600.0


def check_fade(value, name: str = "--fade-in") -> float:
    """``--fade-in`` / ``--fade-out``: seconds of an equal-power fade on the master, 0..600."""
    if isinstance(value, bool) or not 0.0 <= float(value) <= MAX_FADE_S:
        raise AutomixError(f"{name} {value}: a fade goes from 0 to {MAX_FADE_S:g} seconds")
    return float(value)
