"""Training losses: parameters (always cheap) and audio (the prediction rendered by the console).

``param``      masked L1 between predicted and true normalized parameters; padded tracks are
               left out, the master's limiter ceiling too (the user sets it, it is not heard
               in the reference), and a compressor's attack/release/knee when the true
               compressor is off (ratio 1: they do nothing, so they cannot be heard).
``stft``       multi-resolution STFT loss (spectral convergence + log magnitude, FFT sizes of
               the config) on L/R and on mid/side of the master.
``loudness``   |integrated (ungated) loudness difference| in LU, :func:`loudness_torch`.
``spectrum``   1/3-octave tonal balance of mid and side, mean |dB| difference.
``width``      |side/mid energy ratio difference| in dB.
``dynamics``   |PLR difference| + |loudness-spread difference| (dB / LU).

Weights come from the config (``loss.*``); a weight of 0 skips the term.  When every audio
weight is 0 the prediction is not rendered at all (:func:`needs_audio`).
"""
from __future__ import annotations

from typing import Mapping

import torch

from automix.analysis import band_spectrum_torch, dynamics_torch, loudness_torch, width_torch
from automix.params import MASTER_SPECS, TRACK_SPECS

AUDIO_TERMS = ("stft", "loudness", "spectrum", "width", "dynamics")
DEFAULT_WEIGHTS = {"param": 1.0, "stft": 0.0, "loudness": 0.0, "spectrum": 0.0, "width": 0.0,
                   "dynamics": 0.0}

_T = {s.name: i for i, s in enumerate(TRACK_SPECS)}
_M = {s.name: i for i, s in enumerate(MASTER_SPECS)}
_COMP_IDLE = ("comp.attack_ms", "comp.release_ms", "comp.knee_db")
_EXCLUDED_MASTER = ("limiter.ceiling_dbtp",)


def weights_from(cfg: Mapping | None) -> dict[str, float]:
    w = dict(DEFAULT_WEIGHTS)
    for k, v in dict(cfg or {}).items():
        if k in w:
            w[k] = float(v)
    return w


def needs_audio(weights: Mapping[str, float]) -> bool:
    return any(float(weights.get(k, 0.0)) != 0.0 for k in AUDIO_TERMS)


def _idle_compressor(params: torch.Tensor, ratio_index: int, indices) -> torch.Tensor:
    """(..., P) weights: 0 on ``indices`` where the true ratio is 1 (normalized 0)."""
    w = torch.ones_like(params)
    idle = params[..., ratio_index] < 1e-4
    for i in indices:
        w[..., i] = torch.where(idle, 0.0, 1.0)
    return w


def param_loss(pred_track: torch.Tensor, pred_master: torch.Tensor, true_track: torch.Tensor,
               true_master: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Masked L1 on normalized parameters: the mean over real tracks' parameters and the mean
    over the master's, averaged (the master counts as much as all the tracks together)."""
    wt = _idle_compressor(true_track, _T["comp.ratio"], [_T[k] for k in _COMP_IDLE])
    wt = wt * mask[..., None].to(wt.dtype)
    track = ((pred_track.float() - true_track).abs() * wt).sum() / wt.sum().clamp_min(1.0)
    wm = _idle_compressor(true_master, _M["comp.ratio"], [_M[k] for k in _COMP_IDLE])
    for k in _EXCLUDED_MASTER:
        wm[..., _M[k]] = 0.0
    master = ((pred_master.float() - true_master).abs() * wm).sum() / wm.sum().clamp_min(1.0)
    return 0.5 * (track + master)


def _mid_side(x: torch.Tensor) -> torch.Tensor:
    return torch.stack([x[:, 0] + x[:, 1], x[:, 0] - x[:, 1]], 1) * 0.5


class MultiResolutionSTFTLoss(torch.nn.Module):
    """Spectral convergence + mean |log magnitude difference| over several FFT sizes (hop 1/4,
    Hann), on L/R and, with ``mid_side``, also on mid/side; (B, 2, T) -> scalar."""

    def __init__(self, fft_sizes=(512, 1024, 2048), mid_side: bool = True, eps: float = 1e-7):
        super().__init__()
        self.fft_sizes = tuple(int(n) for n in fft_sizes)
        self.mid_side = bool(mid_side)
        self.eps = float(eps)

    def _one(self, pred: torch.Tensor, target: torch.Tensor, n_fft: int) -> torch.Tensor:
        window = torch.hann_window(n_fft, device=pred.device, dtype=pred.dtype)
        p = pred.reshape(-1, pred.shape[-1])
        t = target.reshape(-1, target.shape[-1])
        P = torch.stft(p, n_fft, n_fft // 4, window=window, return_complex=True).abs()
        T = torch.stft(t, n_fft, n_fft // 4, window=window, return_complex=True).abs()
        sc = torch.linalg.vector_norm(T - P, dim=(-2, -1)) / \
            torch.linalg.vector_norm(T, dim=(-2, -1)).clamp_min(self.eps)
        logmag = (torch.log(T + self.eps) - torch.log(P + self.eps)).abs().mean((-2, -1))
        return sc.mean() + logmag.mean()

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        pred, target = pred.float(), target.float()
        pairs = [(pred, target)]
        if self.mid_side:
            pairs.append((_mid_side(pred), _mid_side(target)))
        total = pred.new_zeros(())
        for p, t in pairs:
            for n in self.fft_sizes:
                total = total + self._one(p, t, n)
        return total / (len(pairs) * len(self.fft_sizes))


def audio_losses(pred: torch.Tensor, target: torch.Tensor, sample_rate: int,
                 weights: Mapping[str, float], stft: MultiResolutionSTFTLoss | None = None
                 ) -> dict[str, torch.Tensor]:
    """The audio terms with a non-zero weight (unweighted values), pred/target (B, 2, T)."""
    pred, target = pred.float(), target.float()
    out: dict[str, torch.Tensor] = {}
    if weights.get("stft", 0.0):
        out["stft"] = (stft or MultiResolutionSTFTLoss())(pred, target)
    if weights.get("loudness", 0.0):
        out["loudness"] = (loudness_torch(pred, sample_rate) -
                           loudness_torch(target, sample_rate)).abs().mean()
    if weights.get("spectrum", 0.0):
        out["spectrum"] = (band_spectrum_torch(pred, sample_rate) -
                           band_spectrum_torch(target, sample_rate)).abs().mean()
    if weights.get("width", 0.0):
        out["width"] = (width_torch(pred) - width_torch(target)).abs().mean()
    if weights.get("dynamics", 0.0):
        out["dynamics"] = (dynamics_torch(pred, sample_rate) -
                           dynamics_torch(target, sample_rate)).abs().sum(-1).mean()
    return out


def total_loss(terms: Mapping[str, torch.Tensor], weights: Mapping[str, float]) -> torch.Tensor:
    first = next(iter(terms.values()))
    total = first.new_zeros(())
    for k, v in terms.items():
        total = total + float(weights.get(k, 0.0)) * v
    return total
