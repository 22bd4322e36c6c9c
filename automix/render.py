"""The render executor: full-length songs in float64, block by block, from settings.

Track strips and the master's EQ, compressor, width and gain run on blocks of ``BLOCK`` samples
with their filter and envelope state carried from block to block, reading stems from disk as they
go, so memory grows with the song's length only through the stereo bus.  The limiter needs the
future (look-ahead, latency compensated), so it runs once on the whole master bus.

The processors are the same functions the training executor uses (:mod:`automix.dsp`); only the
EQ differs in method (``sosfilt`` here, frequency sampling there) with identical coefficients.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .audio import BlockReader
from .dsp.dynamics import compressor, db_to_amp, limiter, lookahead_samples
from .dsp.eq import Band, EqState
from .dsp.stereo import apply_width, pan_and_width
from .errors import AutomixError

BLOCK = 1 << 16
_T = lambda v: torch.tensor([float(v)], dtype=torch.float64)  # noqa: E731


def _bands(eq: list[dict]) -> list[Band]:
    return [Band(b["type"], b["freq_hz"], b["q"], b.get("gain_db")) for b in eq]


class _CompressorState:
    def __init__(self, comp: dict, sample_rate: int):
        self.args = [_T(comp[k]) for k in ("threshold_db", "ratio", "attack_ms", "release_ms",
                                           "knee_db", "makeup_db")] if comp else None
        self.sample_rate = sample_rate
        self.state = None

    def process(self, x: torch.Tensor) -> torch.Tensor:
        if self.args is None:
            return x
        y, self.state = compressor(x[None], *self.args, self.sample_rate, state=self.state)
        return y[0]


class TrackStrip:
    """One track: EQ -> compressor -> gain -> pan/width, on blocks of its source's channels."""

    def __init__(self, track: dict, sample_rate: int, channels: int):
        self.eq = EqState(_bands(track["eq"]), sample_rate, channels)
        self.comp = _CompressorState(track["compressor"], sample_rate)
        self.gain = 0.0 if track["mute"] else 10 ** (track["gain_db"] / 20)
        self.pan, self.width = _T(track["pan"]), _T(track["width"])
        self.is_stereo = torch.tensor([channels == 2])

    def process(self, block: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(self.eq.process(block.astype(np.float64)))
        x = self.comp.process(x) * self.gain
        x = x.expand(2, -1)  # a mono source is its one channel on both sides
        return pan_and_width(x[None], self.pan, self.width, self.is_stereo)[0]


class MasterPre:
    """The master chain before the limiter: EQ -> compressor -> width -> gain, block by block."""

    def __init__(self, master: dict, sample_rate: int):
        self.eq = EqState(_bands(master["eq"]), sample_rate, 2)
        self.comp = _CompressorState(master["compressor"], sample_rate)
        self.width = _T(master["width"])
        self.gain = 10 ** (master["gain_db"] / 20)

    def process(self, block: np.ndarray) -> np.ndarray:
        x = self.comp.process(torch.from_numpy(self.eq.process(block)))
        return (apply_width(x[None], self.width)[0] * self.gain).numpy()


def apply_limiter(x: np.ndarray, lim: dict, sample_rate: int) -> np.ndarray:
    if not lim:
        return x
    y = limiter(torch.from_numpy(x)[None], _T(lim["ceiling_dbtp"]), _T(lim["release_ms"]),
                lookahead_samples(lim["lookahead_ms"], sample_rate), sample_rate)
    return y[0].numpy()


def render_master(mix: np.ndarray, master: dict, sample_rate: int,
                  block: int = BLOCK) -> np.ndarray:
    """Master chain on a full-length float64 mix (2, T)."""
    chain = MasterPre(master, sample_rate)
    pre = np.empty_like(mix)
    for start in range(0, mix.shape[1], block):
        pre[:, start:start + block] = chain.process(mix[:, start:start + block])
    return apply_limiter(pre, master["limiter"], sample_rate)




def render_mix(sources: Sequence[BlockReader], tracks: list[dict], sample_rate: int,
               length: int, block: int = BLOCK, progress=None) -> np.ndarray:
    """Sum of the track strips, (2, length) float64; sources are read block by block."""
    strips = [TrackStrip(t, sample_rate, s.channels) for t, s in zip(tracks, sources)]
    mix = np.zeros((2, length))
    with torch.inference_mode():
        for start in range(0, length, block):
            n = min(block, length - start)
            for strip, src in zip(strips, sources):
                mix[:, start:start + n] += strip.process(src.read(n)).numpy()
            if progress:
                progress(start + n, length)
    return mix


def open_sources(settings: dict, stems_dir) -> list[BlockReader]:
    stems_dir = Path(stems_dir)
    sources = []
    for t in settings["tracks"]:
        path = stems_dir / t["file"]
        if not path.is_file():
            raise AutomixError(f"{path}: stem file named in the settings (track {t['name']!r}) "
                               "does not exist")
        sources.append(BlockReader(path, settings["sample_rate"]))
    return sources


def render_settings(settings: dict, stems_dir, progress=None) -> tuple[np.ndarray, np.ndarray]:
    """Render validated ``settings`` with stems from ``stems_dir``: ``(mix, master)`` float64."""
    sr = settings["sample_rate"]
    sources = open_sources(settings, stems_dir)
    try:
        length = max(s.frames for s in sources)
        mix = render_mix(sources, settings["tracks"], sr, length, progress=progress)
    finally:
        for s in sources:
            s.close()
    with torch.inference_mode():
        master = render_master(mix, settings["master"], sr)
    return mix, master
