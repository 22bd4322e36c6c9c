"""The network's front end: log-mel spectrograms of mid and side, calibrated in dB.

Stems and references are described by two channels, mid = (L+R)/2 and side = (L-R)/2, so the
network sees stereo information (a mono source has silent side).  The analysis window scales
with the sample rate (about 46 ms) and the mel bands span 20 Hz-16 kHz at any rate >= 32 kHz,
so a model trained at 44.1 kHz reads 48 kHz material the same way.  Values are dB of mean power
per band (a full-scale sine near 0 dB), not normalized per file: the levels are what the
network needs to set faders.
"""
from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torchaudio

N_MELS = 64
F_MIN, F_MAX = 20.0, 16000.0
FLOOR_DB = -100.0
LIVE_DB = 60.0  # reference_balance_db: bands this far under the reference's loudest are ignored


def frame_length(sample_rate: int) -> int:
    """STFT size: the power of two nearest 46 ms (2048 at 44.1/48 kHz)."""
    return 2 ** round(math.log2(0.0464 * sample_rate))


@functools.lru_cache(maxsize=8)
def _filters(sample_rate: int, n_fft: int) -> tuple[torch.Tensor, torch.Tensor]:
    fb = torchaudio.functional.melscale_fbanks(n_fft // 2 + 1, F_MIN, min(F_MAX, sample_rate / 2),
                                               N_MELS, sample_rate, norm="slaney",
                                               mel_scale="slaney")
    fb = fb / fb.sum(0, keepdim=True).clamp_min(1e-12)  # each band: mean power of its bins
    window = torch.hann_window(n_fft)
    return fb, window


def power_frames(audio: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """``(..., 2, T)`` stereo audio -> ``(..., 2, bins, frames)`` mid/side STFT power, scaled so
    that a full-scale sine reads about 0 dB in its band once :func:`mel_filters` average it."""
    n_fft = frame_length(sample_rate)
    window = _filters(int(sample_rate), n_fft)[1].to(audio.device)
    lead = audio.shape[:-2]
    x = audio.reshape(-1, 2, audio.shape[-1]).float()
    ms = torch.stack([x.sum(1) / 2, (x[:, 0] - x[:, 1]) / 2], 1).reshape(-1, x.shape[-1])
    if ms.shape[-1] < n_fft:
        ms = torch.nn.functional.pad(ms, (0, n_fft - ms.shape[-1]))
    spec = torch.stft(ms, n_fft, n_fft // 2, window=window, center=False, return_complex=True)
    # |X|^2 / (sum w^2 * n/2): a full-scale sine reads about 0 dB in its band
    power = spec.real.square() + spec.imag.square()
    power = power * (4.0 / window.square().sum() / n_fft)
    return power.reshape(*lead, 2, *power.shape[-2:])


def mel_filters(sample_rate: int) -> torch.Tensor:
    """``(bins, N_MELS)``: each mel band's column averages the power of its STFT bins."""
    return _filters(int(sample_rate), frame_length(sample_rate))[0]


def log_mel(audio: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """``(..., 2, T)`` stereo audio -> ``(..., 2, N_MELS, frames)`` mid/side log-mel in dB."""
    power = power_frames(audio, sample_rate)
    mel = torch.einsum("...ft,fm->...mt", power, mel_filters(sample_rate).to(power.device))
    return 10 * torch.log10(mel.clamp_min(10 ** (FLOOR_DB / 10)))


def log_mel_long(audio: torch.Tensor, sample_rate: int, max_items: int = 1) -> torch.Tensor:
    """:func:`log_mel` of ``(N, 2, T)`` a few items at a time (a full song's STFT is large)."""
    return torch.cat([log_mel(audio[i:i + max_items], sample_rate)
                      for i in range(0, audio.shape[0], max_items)])


def fader_offsets_db(stem_mels: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``(..., N, 2, M, F)`` stem log-mels -> ``(..., N)`` dB that bring each stem to the median
    stem level (levels read off the log-mels themselves, so training and inference agree; 0 on
    padded tracks; at most +-24 dB).  A network with ``relative_faders`` predicts each fader
    from this loudness-balanced point, so its prior centre is a balanced mix, not the raw
    stem levels."""
    level = 10 * torch.log10(torch.pow(10.0, stem_mels.double() / 10).mean((-3, -2, -1)) + 1e-12)
    if mask is None:
        mask = torch.ones(level.shape, dtype=torch.bool, device=level.device)
    median = torch.nanmedian(level.masked_fill(~mask, float("nan")), dim=-1, keepdim=True).values
    offsets = torch.where(mask, (median - level).clamp(-24.0, 24.0), torch.zeros_like(level))
    return torch.nan_to_num(offsets).to(stem_mels.dtype)


@functools.lru_cache(maxsize=1)
def _band_loudness_weights() -> torch.Tensor:
    """``(N_MELS,)`` weights that turn mean power per mel band into K-weighted power: each
    band's K-weighting (BS.1770 pre-filter and high-pass, power response at the band centre)
    times its bandwidth in Hz (half the span of its triangle), so that the weighted sum over
    bands approximates the K-weighted power of the whole spectrum at any sample rate."""
    from ..analysis import k_weighting_response

    lo, hi = _hz_to_mel(F_MIN), _hz_to_mel(F_MAX)
    points = np.array([_mel_to_hz(lo + (hi - lo) * i / (N_MELS + 1)) for i in range(N_MELS + 2)])
    centres, width = points[1:-1], (points[2:] - points[:-2]) / 2
    k = np.abs(k_weighting_response(centres, 48000.0)) ** 2
    return torch.from_numpy(k * width / (k * width).sum())


def _hz_to_mel(f: float) -> float:  # slaney, as _filters: linear below 1 kHz, logarithmic above
    return f / (200.0 / 3) if f < 1000.0 else 15.0 + math.log(f / 1000.0) / (math.log(6.4) / 27.0)


def _mel_to_hz(m: float) -> float:
    return m * (200.0 / 3) if m < 15.0 else 1000.0 * math.exp((m - 15.0) * math.log(6.4) / 27.0)


def loudness_offsets_db(stem_mels: torch.Tensor, mask: torch.Tensor | None = None,
                        block_frames: int = 16) -> torch.Tensor:
    """``(..., N, 2, M, F)`` stem log-mels -> ``(..., N)`` dB that bring every stem to the median
    stem *loudness* (0 on padded tracks; at most +-24 dB): the equal-loudness point.

    Loudness is read off the log-mels like BS.1770 reads it off audio: K-weighted power
    (:func:`_band_loudness_weights`; mid + side power is half of L + R power, a constant),
    in blocks of ``block_frames`` frames (~370 ms at 44.1 kHz), gated absolutely at -70 dB and
    relatively 10 dB under the mean of the blocks that pass; the level is the mean of the
    blocks left.  On human mixes the loudness-equal point is much nearer the producers'
    balance than the mel-level one (``fader_offsets_db``): 2.1 vs 3.5 dB mean balance error."""
    w = _band_loudness_weights().to(stem_mels.device)
    p = torch.pow(10.0, stem_mels.double() / 10).sum(-3)                       # (..., N, M, F) mid+side
    k = torch.einsum("...mf,m->...f", p, w)                                    # (..., N, F)
    F = k.shape[-1]
    n = max(1, F // block_frames)
    blocks = k[..., :n * block_frames].reshape(*k.shape[:-1], n, -1).mean(-1) if F >= block_frames \
        else k.mean(-1, keepdim=True)
    alive = blocks > 1e-7                                                      # -70 dB
    mean = (blocks * alive).sum(-1) / alive.sum(-1).clamp_min(1)
    keep = alive & (blocks > mean[..., None] * 0.1)                           # -10 dB relative
    level = 10 * torch.log10((blocks * keep).sum(-1) / keep.sum(-1).clamp_min(1) + 1e-12)
    if mask is None:
        mask = torch.ones(level.shape, dtype=torch.bool, device=level.device)
    median = torch.nanmedian(level.masked_fill(~mask, float("nan")), dim=-1, keepdim=True).values
    offsets = torch.where(mask, (median - level).clamp(-24.0, 24.0), torch.zeros_like(level))
    return torch.nan_to_num(offsets).to(stem_mels.dtype)


def reference_balance_db(stem_mels: torch.Tensor, mask: torch.Tensor, reference_mel: torch.Tensor,
                         strength: float = 0.03, iterations: int = 10,
                         base: torch.Tensor | None = None) -> torch.Tensor:
    """``(B, N, 2, M, F)`` stem log-mels, ``(B, N)`` mask, ``(B, 2, M, F')`` reference log-mel ->
    ``(B, N)`` fader offsets (dB) whose summed long-term mid spectrum follows the reference's.

    The reference is a mix of (other sections of) these stems, so the shape of its long-term
    spectrum says how loud each stem sits in it: the offsets ``x`` minimise, per song,
    ``mean_m (r_m - mean r)^2 + strength * mean_i (x_i - b_i)^2``, where ``r_m`` is the dB
    difference of the summed stems and the reference in mel band m (the overall level is free)
    and ``b`` the balanced point (``base``; default :func:`fader_offsets_db`, the median mel
    level), which the second term pulls toward where the spectra cannot tell stems apart.  The means over m take only the live
    bands: those within ``LIVE_DB`` of the reference's loudest, 20 dB above the floor, and
    where some stem is 20 dB above the floor (the others hold leakage and the floor, not the
    balance); with none live, the result is ``b``.  Gauss-Newton on the exact Jacobian
    (the derivative of band m's dB by stem i's fader dB is stem i's share of the band's power);
    deterministic, no autograd, batched over songs.  0 on padded tracks; at most +-40 dB.
    """
    base = (fader_offsets_db(stem_mels, mask) if base is None else base).double()
    m = mask.to(torch.float64)
    power = torch.pow(10.0, stem_mels[..., 0, :, :].double() / 10).mean(-1)  # (B, N, M) mid
    ref_power = torch.pow(10.0, reference_mel[..., 0, :, :].double() / 10).mean(-1)  # (B, M)
    ref = 10 * torch.log10(ref_power + 1e-20)
    n_tracks = m.sum(-1, keepdim=True).clamp_min(1.0)
    # bands more than LIVE_DB under the reference's loudest (or near the floor) hold only
    # leakage and the floor, not the balance; nor do bands where no stem has content (no
    # fader can change them)
    loudest_stem = stem_mels[..., 0, :, :].double().mean(-1).masked_fill(~mask[..., None], FLOOR_DB)
    live = ((ref > (ref.amax(-1, keepdim=True) - LIVE_DB).clamp_min(FLOOR_DB + 20))
            & (loudest_stem.amax(-2) > FLOOR_DB + 20)).to(torch.float64)
    w = live / live.sum(-1, keepdim=True).clamp_min(1.0)  # (B, M); all 0: the balance point
    eye = torch.eye(power.shape[-2], dtype=torch.float64, device=power.device)
    x = base.clone()
    for _ in range(iterations):
        share = torch.pow(10.0, x / 10)[..., None] * m[..., None] * power  # (B, N, M)
        total = share.sum(-2) + 1e-20
        r = 10 * torch.log10(total) - ref
        r = r - (w * r).sum(-1, keepdim=True)
        jac = share / total[..., None, :]
        jac = jac - (w[..., None, :] * jac).sum(-1, keepdim=True)    # of the centred residual
        wjac = jac * w[..., None, :]
        grad = (wjac @ r[..., None])[..., 0] + strength * (x - base) * m / n_tracks
        hess = wjac @ jac.transpose(-1, -2) + (strength / n_tracks)[..., None] * eye
        step = torch.linalg.solve(hess, grad[..., None])[..., 0]
        x = x - step.clamp(-6.0, 6.0) * m
    return torch.where(mask, x.clamp(-40.0, 40.0), torch.zeros_like(x)).to(stem_mels.dtype)
