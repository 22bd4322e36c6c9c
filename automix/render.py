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

import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .audio import BlockReader, is_audio_file
from .console.blocks import (BLOCK, MasterPre, StripNode, TrackStrip,  # noqa: F401 (re-exported)
                             apply_limiter_inplace, render_graph, render_master)
from .dsp.dynamics import compressor_kernel  # noqa: F401 (benchmarks/bench_console.py patches it)
from .errors import AutomixError
from .settings import check_sections_inside


def apply_limiter(x: np.ndarray, lim: dict, sample_rate: int) -> np.ndarray:
    """The limiter of settings ``lim`` on ``x`` (2, T): a new float64 array (``x`` unchanged)."""
    if not lim:
        return x
    y = np.array(x, dtype=np.float64, order="C")
    apply_limiter_inplace(y, lim, sample_rate)
    return y


TAIL_MAX_S = 10.0   # a send bus's tail kept after the last stem ends, at most
TAIL_DB = -60.0     # an echo's tail: until its repeats have fallen this far


def bus_tail_samples(settings: dict) -> int:
    """Samples the mix runs on after the longest stem ends, so the send buses' tails are not
    cut at the song's end: the longest over the buses of the reverb's impulse response
    (pre-delay + ``1.4 x`` its longest RT60, where its envelope stops), the echo's repeats
    down to :data:`TAIL_DB` (``time x log(10^(TAIL_DB/20)) / log(feedback)``), a plain delay's
    time; at most :data:`TAIL_MAX_S`.  0 without buses (a flat console renders as before)."""
    from .dsp.reverb import TAIL_RT60S

    sr = settings["sample_rate"]
    tail = 0.0
    for bus in settings.get("buses", []):
        p = bus["processor"]
        kind = p.get("type")
        if kind == "reverb":
            t = p["predelay_ms"] / 1000 + TAIL_RT60S * max(p[f"rt60_{b}_s"]
                                                           for b in ("low", "mid", "high"))
        elif kind == "echo":
            fb = float(p["feedback"])
            repeats = 1 if fb <= 0 else math.ceil(TAIL_DB / 20 * math.log(10) / math.log(fb))
            t = p["time_ms"] / 1000 * max(1, repeats)
        else:
            t = p.get("time_ms", 0.0) / 1000
        tail = max(tail, t)
    return int(math.ceil(min(tail, TAIL_MAX_S) * sr))


def render_mix(sources: Sequence[BlockReader], tracks: list[dict], sample_rate: int,
               length: int, block: int = BLOCK, progress=None) -> np.ndarray:
    """Sum of the track strips of a flat console, (2, length) float64; sources are read block
    by block (the console graph with tracks only: :func:`render_graph`)."""
    return render_graph({"sample_rate": sample_rate, "tracks": tracks}, sources, length, block,
                        progress)


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


def render_settings(settings: dict, stems_dir, progress=None, source: str = "settings",
                    stems_out: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Render validated ``settings`` with stems from ``stems_dir``: ``(mix, master)`` float64
    (``source``: the settings' name in error messages; ``stems_out``: see
    :func:`~automix.console.blocks.render_graph`)."""
    sr = settings["sample_rate"]
    sources = open_sources(settings, stems_dir, source=source, confine=True)
    try:
        length = max(s.frames for s in sources) + bus_tail_samples(settings)
        check_sections_inside(settings, length / sr, source)  # informational, but must fit
        mix = render_graph(settings, sources, length, progress=progress, stems_out=stems_out)
    finally:
        for s in sources:
            s.close()
    with torch.inference_mode():
        master = render_master(mix, settings["master"], sr)
    # master.top_tail: the span kept (mix, printed stems and master) and the master's fades
    from .toptail import apply_settings, trim_printed, trim_to_span
    entry = settings["master"].get("top_tail")
    trim_printed(stems_out, entry, sr)
    return trim_to_span(mix, entry, sr), apply_settings(master, entry, sr)
