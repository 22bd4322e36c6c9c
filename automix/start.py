"""The starting point of a mix: the network's prediction, or a heuristic.

:func:`starting_point` is the default ``start`` of :func:`automix.mix`; a caller may pass its
own (same signature) instead, e.g. to neutralise parts of the network's prediction.
"""
from __future__ import annotations

import re

import torch

from .params import TRACK_SPECS, defaults

CENTRE_NAMES = re.compile(r"kick|bass|sub|snare|vox|vocal|voice|lead|mono", re.I)


def heuristic_compressor(peak_db: float) -> dict:
    """Light compression: 2:1 from 12 dB under the stem's peak."""
    return {"threshold_db": max(-60.0, peak_db - 12.0), "ratio": 2.0, "attack_ms": 10.0,
            "release_ms": 150.0, "knee_db": 6.0, "makeup_db": 0.0}


def heuristic_start(names, loudness, peaks_db, is_stereo) -> dict:
    """Starting point: stems at equal loudness, flat EQ, light compression, pans spread."""
    n = len(names)
    p = defaults(TRACK_SPECS, (n,), torch.float64)
    p["gain_db"] = torch.tensor([-23.0 - l for l in loudness], dtype=torch.float64).clamp(-40, 20)
    comps = [heuristic_compressor(pk) for pk in peaks_db]
    for key in comps[0]:
        p[f"comp.{key}"] = torch.tensor([c[key] for c in comps], dtype=torch.float64)
    spread = [0.35, -0.35, 0.6, -0.6, 0.2, -0.2, 0.8, -0.8]
    k = 0
    pans = []
    for name, st in zip(names, is_stereo):
        if st or CENTRE_NAMES.search(name):
            pans.append(0.0)
        else:
            pans.append(spread[k % len(spread)])
            k += 1
    p["pan"] = torch.tensor(pans, dtype=torch.float64)
    return p


def starting_point(st, model, ref_mel):
    """The starting point: ``(track parameters (N,), master parameters or None)`` from the
    network's prediction (``model``), or the heuristic without one.  ``st``: the stem survey
    (names, loudness, peaks_db, stereo, mels)."""
    if model is None:
        return heuristic_start(st.names, st.loudness, st.peaks_db, st.stereo), None
    from .model import predict_from_mels

    return predict_from_mels(model, torch.stack(st.mels), st.stereo, ref_mel)
