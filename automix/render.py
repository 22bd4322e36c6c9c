"""The render executor: full-length songs in float64, block by block, from settings.

Track strips and the master's EQ, compressor, width and gain run on blocks of ``BLOCK`` samples
with their filter and envelope state carried from block to block, reading stems from disk as they
go, so memory grows with the song's length only through the stereo bus.  The limiter needs the
future (look-ahead, latency compensated): it streams through the finished master bus in short
blocks and writes its output over its input, so the render holds two full-length buffers in all
(the mix it returns and the master).

The processors compute the formulas of the training executor (:mod:`automix.dsp`), as numba
kernels on float64 numpy blocks instead of torch operations: EQ sections
(:func:`~automix.dsp.eq.sos_filter_inplace`, ``sosfilt``'s recursion; the training path samples
the same filters' frequency response), compressor (:func:`~automix.dsp.dynamics.compressor_kernel`),
fader, width and pan (:func:`~automix.dsp.stereo.pan_width_accumulate`) and the limiter
(:func:`~automix.dsp.dynamics.limit_in_place`).  Coefficients come from the same torch functions;
the two executors differ only in float rounding (tests/test_console.py).  There is one code path,
so ``automix render`` of a written settings file reproduces its master bit for bit.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .audio import BlockReader, is_audio_file
from .dsp.dynamics import CompressorParams, compressor_kernel, limit_in_place, lookahead_samples
from .dsp.eq import Band, EqState
from .dsp.stereo import pan_gains, pan_width_accumulate
from .errors import AutomixError

BLOCK = 1 << 16


def _bands(eq: list[dict]) -> list[Band]:
    return [Band(b["type"], b["freq_hz"], b["q"], b.get("gain_db")) for b in eq]


class TrackStrip:
    """One track: EQ -> compressor -> gain -> pan/width, on blocks of its source's channels."""

    def __init__(self, track: dict, sample_rate: int, channels: int):
        self.eq = EqState(_bands(track["eq"]), sample_rate, channels)
        self.comp = CompressorParams(track["compressor"], sample_rate).array
        self.comp_state = np.zeros(1)  # smoothed gain (dB), carried from block to block
        self.gain = 0.0 if track["mute"] else 10 ** (track["gain_db"] / 20)
        with torch.no_grad():
            gl, gr = pan_gains(torch.tensor([float(track["pan"])], dtype=torch.float64),
                               torch.tensor([channels == 2]))
        self.gl, self.gr = float(gl), float(gr)
        self.width = float(track["width"])

    def process(self, block: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Add the strip's stereo output for ``block`` (channels, n) to ``out`` (2, n) float64
        C-contiguous (a new zero array if ``None``); returns ``out``."""
        x = np.array(block, dtype=np.float64, order="C")  # the strip's own buffer, in place
        self.eq.process_inplace(x)
        compressor_kernel(x, self.comp, self.comp_state)
        if out is None:
            out = np.zeros((2, x.shape[1]))
        pan_width_accumulate(x, self.gain, self.width, self.gl, self.gr, out)
        return out


class MasterPre:
    """The master chain before the limiter: EQ -> compressor -> stereo stage -> gain, block by
    block.  The stereo stage works on mid ``M = (L+R)/2`` and side ``S = (L-R)/2``: the widener
    adds the mid delayed by ``delay_ms`` at ``gain_db`` to the side (Lauridsen's pseudo-stereo:
    complementary combs in L and R, so ``L+R`` is untouched and the master stays mono
    compatible), the side EQ filters the side alone, and ``S *= width``.  Both are bypassed
    when absent; then the stage is plain width, as before."""

    def __init__(self, master: dict, sample_rate: int):
        self.eq = EqState(_bands(master["eq"]), sample_rate, 2)
        self.comp = CompressorParams(master["compressor"], sample_rate).array
        self.comp_state = np.zeros(1)
        self.width = float(master["width"])
        self.gain = 10 ** (master["gain_db"] / 20)
        side_eq = master.get("side_eq") or []
        self.side_eq = EqState(_bands(side_eq), sample_rate, 1) if side_eq else None
        widener = master.get("widener") or {}
        self.widen = 10 ** (widener["gain_db"] / 20) if widener else 0.0
        delay = int(round(widener.get("delay_ms", 0.0) * sample_rate / 1000)) if widener else 0
        self.delay_line = np.zeros(delay)  # the mid's last ``delay`` samples

    def process(self, block: np.ndarray) -> np.ndarray:
        """The chain's output for ``block`` (2, n): a new float64 array."""
        x = np.array(block, dtype=np.float64, order="C")
        self.eq.process_inplace(x)
        compressor_kernel(x, self.comp, self.comp_state)
        out = np.zeros((2, x.shape[1]))
        if self.side_eq is None and not self.widen:
            pan_width_accumulate(x, 1.0, self.width, self.gain, self.gain, out)  # width, then gain
            return out
        mid = (x[0] + x[1]) / 2
        side = ((x[0] - x[1]) / 2)[None].copy()
        if self.widen:
            d = len(self.delay_line)
            line = np.concatenate((self.delay_line, mid))
            side[0] += self.widen * line[:len(mid)]
            self.delay_line = line[len(line) - d:]
        if self.side_eq is not None:
            self.side_eq.process_inplace(side)
        side = side[0] * self.width
        out[0] = (mid + side) * self.gain
        out[1] = (mid - side) * self.gain
        return out


def apply_limiter_inplace(x: np.ndarray, lim: dict, sample_rate: int) -> None:
    """The limiter of settings ``lim`` on ``x`` (2, T) float64 C-contiguous, written over it."""
    if lim:
        limit_in_place(x, lim["ceiling_dbtp"], lim["release_ms"],
                       lookahead_samples(lim["lookahead_ms"], sample_rate), sample_rate)


def apply_limiter(x: np.ndarray, lim: dict, sample_rate: int) -> np.ndarray:
    """The limiter of settings ``lim`` on ``x`` (2, T): a new float64 array (``x`` unchanged)."""
    if not lim:
        return x
    y = np.array(x, dtype=np.float64, order="C")
    apply_limiter_inplace(y, lim, sample_rate)
    return y


def render_master(mix: np.ndarray, master: dict, sample_rate: int,
                  block: int = BLOCK) -> np.ndarray:
    """Master chain on a full-length float64 mix (2, T): a new array (``mix`` unchanged)."""
    chain = MasterPre(master, sample_rate)
    out = np.empty(mix.shape)
    for start in range(0, mix.shape[1], block):
        out[:, start:start + block] = chain.process(mix[:, start:start + block])
    apply_limiter_inplace(out, master["limiter"], sample_rate)
    return out


def render_mix(sources: Sequence[BlockReader], tracks: list[dict], sample_rate: int,
               length: int, block: int = BLOCK, progress=None) -> np.ndarray:
    """Sum of the track strips, (2, length) float64; sources are read block by block."""
    strips = [TrackStrip(t, sample_rate, s.channels) for t, s in zip(tracks, sources)]
    mix = np.empty((2, length))
    for start in range(0, length, block):
        n = min(block, length - start)
        bus = np.zeros((2, n))
        for strip, src in zip(strips, sources):  # summed in track order
            strip.process(src.read(n), bus)
        mix[:, start:start + n] = bus
        if progress:
            progress(start + n, length)
    return mix


def open_sources(settings: dict, stems_dir, readers=None, source: str = "settings",
                 confine: bool = False) -> list[BlockReader]:
    """A reader per track of ``settings``: from ``readers`` (file name -> reader) when it has
    one, else the file in ``stems_dir``.

    A file name must be a relative path that stays inside ``stems_dir`` (no absolute path, no
    ``..`` leading out).  ``confine``: for settings from a file (data a user may have been sent,
    maybe with the stems): the name must also resolve, symbolic links followed, to an audio file
    inside ``stems_dir``.  A refused name gets the same message as a missing file, so the error
    does not tell whether a path outside exists (``source``: the settings' name in it)."""
    root = Path(stems_dir).resolve()
    sources = []
    try:
        for i, t in enumerate(settings["tracks"]):
            if readers and t["file"] in readers:
                sources.append(readers[t["file"]])
                continue
            path = _stem_path(root, t["file"], f"{source}: tracks[{i}].file", confine)
            sources.append(BlockReader(path, settings["sample_rate"]))
    except BaseException:
        for s in sources:
            if not (readers and any(s is r for r in readers.values())):
                s.close()
        raise
    return sources


def _stem_path(root: Path, name: str, where: str, confine: bool) -> Path:
    """``root / name`` when it is an audio file inside ``root`` (``confine``: resolved)."""
    try:
        path = Path(os.path.normpath(root / name))
        inside = path.is_relative_to(root) and path != root
        if inside and confine:
            path = path.resolve()
            inside = path.is_relative_to(root) and path != root
        inside = inside and path.is_file() and is_audio_file(path)
    except (OSError, ValueError, RuntimeError):  # a loop of links, a NUL byte, a name too long
        inside = False
    if not inside:
        raise AutomixError(f"{where} {name!r}: not an audio file inside the stems folder")
    return path


def render_settings(settings: dict, stems_dir, progress=None,
                    source: str = "settings") -> tuple[np.ndarray, np.ndarray]:
    """Render validated ``settings`` with stems from ``stems_dir``: ``(mix, master)`` float64
    (``source``: the settings' name in error messages)."""
    sr = settings["sample_rate"]
    sources = open_sources(settings, stems_dir, source=source, confine=True)
    try:
        length = max(s.frames for s in sources)
        mix = render_mix(sources, settings["tracks"], sr, length, progress=progress)
    finally:
        for s in sources:
            s.close()
    with torch.inference_mode():
        master = render_master(mix, settings["master"], sr)
    return mix, master
