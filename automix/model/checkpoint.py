"""Checkpoints: plain tensors and numbers only, loaded with ``weights_only=True`` (no code runs).

A checkpoint is a dict: ``format``, ``version``, ``spec_version`` (the parameter layout the
heads were trained for, :data:`automix.params.SPEC_VERSION`), ``model_config`` (the
:class:`AutomixNet` arguments), ``model`` (the state dict) and, from training, anything else
(optimizer, step, config, RNG states) under other keys.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from ..audio import atomic_path
from ..errors import AutomixError
from ..params import SPEC_VERSION
from .net import AutomixNet

FORMAT = "automix.checkpoint"
VERSION = 1
# The model shipped with automix (trained by `automix-train`, model card: checkpoints/README.md).
# It is package data (pyproject.toml), so a wheel or `pip install .` carries it too.
DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "automix-default.pt"


def default_checkpoint() -> Path | None:
    """``$AUTOMIX_CHECKPOINT`` when set (an error when it names no file: the user asked for
    it), else the shipped file, or None when that is missing."""
    env = os.environ.get("AUTOMIX_CHECKPOINT")
    if env:
        if not Path(env).is_file():
            raise AutomixError(f"$AUTOMIX_CHECKPOINT={env}: no such checkpoint file")
        return Path(env)
    return DEFAULT_CHECKPOINT if DEFAULT_CHECKPOINT.is_file() else None


def save_checkpoint(path, model: AutomixNet, **extra) -> Path:
    """Write atomically (temp file + rename): an interrupted save never leaves half a file."""
    payload = {"format": FORMAT, "version": VERSION, "spec_version": SPEC_VERSION,
               "model_config": dict(model.config), "model": model.state_dict(), **extra}
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_checkpoint(path, map_location="cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise AutomixError(f"{path}: no such checkpoint file")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # pickle with code, a truncated file, not a torch file at all
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AutomixError(f"{path}: not a loadable automix checkpoint ({first[:160]})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise AutomixError(f"{path}: not an automix checkpoint")
    if data.get("version") != VERSION:
        raise AutomixError(f"{path}: checkpoint format version {data.get('version')}, this "
                           f"automix reads version {VERSION}")
    if data.get("spec_version") != SPEC_VERSION:
        raise AutomixError(f"{path}: trained for parameter spec version "
                           f"{data.get('spec_version')}, this automix uses {SPEC_VERSION}; "
                           "retrain it or use the automix version it was made with")
    return data


def model_from_checkpoint(data: dict) -> AutomixNet:
    try:
        model = AutomixNet(**data["model_config"])
        model.load_state_dict(data["model"])
    except (KeyError, TypeError, RuntimeError) as exc:
        raise AutomixError(f"checkpoint does not fit the model: {str(exc).splitlines()[0][:160]}") from None
    return model.eval()


def load_model(path) -> AutomixNet:
    return model_from_checkpoint(load_checkpoint(path))
