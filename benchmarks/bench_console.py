"""Console benchmark (issue 2): render speed, training-path speed and peak memory, side by side.

    .venv/bin/python benchmarks/bench_console.py            # full run (several minutes)
    .venv/bin/python benchmarks/bench_console.py --quick    # tiny sizes, < 60 s (CI smoke test)
    .venv/bin/python benchmarks/bench_console.py --render-only  # render time/memory only (~4 min)

Measured in ONE run, so ratios compare numbers taken on the same (noisy) machine:

1. ``render_settings`` of 8 stereo stems x 3 min at 44.1 kHz (24-bit WAVs on disk, every
   processor engaged) against the floor, the plain sum of the same files read with soundfile;
   and ``automix render`` end to end (a subprocess: imports, render, two 24-bit WAVs written).
   The render runs as users get it (default threads) and, in interleaved rounds, with
   ``OMP_WAIT_POLICY=PASSIVE`` and with one thread (diagnostics; see ``VARIANTS``).
2. The training path: ``console`` forward + backward (loss = mean |master|), float32, 2 torch
   threads, a batch of 16 songs x 8 tracks x 5 s, and a smaller batch for scale.
3. Peak memory and time of a 10-minute, 16-stem song (``render_settings`` and the CLI).
4. A per-stage profile of the 8 x 3 min render (manual timers around each processor; one thread,
   so it shows CPU cost rather than waits) and the
   top functions by own time (cProfile), plus the gain reduction each dynamics stage applied,
   which shows that the compressors and the limiter really were working.

Every measurement runs in a fresh child process, started by a tiny launcher; its peak memory is
that child's own ``ru_maxrss`` (``os.wait4`` in the launcher: a child of this torch-laden process
would inherit its high-water mark), so numbers do not leak into each other.  Times are medians
of repetitions (renders: one child per repetition and variant, in interleaved rounds), each after
a warm-up render of tiny stems (numba kernels loaded, allocator warm).
The stems' files are in the page cache for both the render and the plain sum (both read them
after the warm-up), so neither pays for the disk.

Stems are synthetic but music-like (kick, snare/hats, bass, pad, guitar, lead, piano, shaker:
harmonic tones and filtered noise on a 120 bpm grid, with note envelopes and song sections that
come and go), generated once with a fixed seed into ``benchmarks/cache/console/`` (gitignored).
Results: a markdown table on stdout and JSON in ``benchmarks/results/console.json``.
``--quick`` sets ``OMP_WAIT_POLICY=PASSIVE`` (unless set) so the smoke test stays fast on a
shared machine; the full run measures the default environment.
"""
from __future__ import annotations

import argparse
import cProfile
import datetime
import json
import os
import platform
import pstats
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import soundfile as sf

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CACHE = HERE / "cache" / "console"
RESULTS = HERE / "results"
SR = 44100
SEED = 20240602
GEN_VERSION = 1  # bump when the stem generator changes (the cache is rebuilt)

TARGET_RENDER_S = 6.0
TARGET_PEAK_MIB = 4096.0

FULL = dict(render_stems=8, render_seconds=180.0, train_batches=[(16, 8, 5.0), (4, 8, 5.0)],
            long_stems=16, long_seconds=600.0, long_loop_seconds=30.0, reps=3, cli_reps=3,
            variants=3, long_render_child=True)
QUICK = dict(render_stems=8, render_seconds=8.0, train_batches=[(2, 4, 1.0)],
             long_stems=4, long_seconds=20.0, long_loop_seconds=5.0, reps=1, cli_reps=1,
             variants=1, long_render_child=False)
# --render-only: the render measurements alone (8 x 3 min timing, per-stage profile, 16 x 10 min
# time and peak memory), without the CLI, the diagnostic thread variants and the training path
RENDER_ONLY = dict(FULL, train_batches=[], cli_reps=0, variants=1, long_cli=False)
# The render as users get it (torch's default: one thread per core, libgomp threads spinning when
# idle), then two diagnostic variants, run in interleaved rounds: libgomp threads sleeping instead
# of spinning, and one thread for torch and numba.  With another busy process on a 2-core
# machine, spinning threads make each of the render's thousands of small parallel regions (one
# per torch op on a 64 k-sample block) wait for a descheduled thread.
VARIANTS = [("default (2 threads)", {}, 2),
            ("OMP_WAIT_POLICY=PASSIVE", {"OMP_WAIT_POLICY": "PASSIVE"}, 2),
            ("1 thread (torch, numba)", {"OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}, 1)]
TRAIN_REP_BUDGET_S = 90.0  # training path: stop repeating once this much time is spent


# ------------------------------------------------------------------------------------------------
# synthetic, music-like stems

KINDS = ("kick", "snare_hats", "bass", "pad", "guitar", "lead", "piano", "shaker")
BEAT = 0.5  # 120 bpm


def _bandpass(x, lo, hi, order=2):
    from scipy.signal import butter, sosfilt
    nyq = SR / 2
    if lo <= 0:
        sos = butter(order, hi / nyq, "lowpass", output="sos")
    elif hi >= nyq:
        sos = butter(order, lo / nyq, "highpass", output="sos")
    else:
        sos = butter(order, [lo / nyq, hi / nyq], "bandpass", output="sos")
    return sosfilt(sos, x, axis=-1)


def _onsets(T, step_s, prob, rng, offset_s=0.0, jitter_s=0.004):
    grid = np.arange(offset_s, T / SR, step_s)
    grid = grid[rng.random(len(grid)) < prob]
    t = grid + jitter_s * rng.standard_normal(len(grid))
    return np.unique(np.clip((t * SR).astype(np.int64), 0, T - 1))


def _notes(T, onsets):
    """Index of the sounding note and seconds since its onset, per sample."""
    n = np.arange(T)
    idx = np.searchsorted(onsets, n, side="right") - 1
    dt = np.where(idx >= 0, n - onsets[np.maximum(idx, 0)], 10 ** 9) / SR
    return np.maximum(idx, 0), dt


def _env(dt, attack, decay):
    return (1 - np.exp(-dt / attack)) * np.exp(-dt / decay)


def _harmonic(freq, n_harm, tilt, rng):
    """Sum of harmonics of a per-sample frequency track (band-limited below Nyquist)."""
    phase = 2 * np.pi * np.cumsum(freq) / SR + rng.uniform(0, 2 * np.pi)
    out = np.zeros_like(freq)
    for k in range(1, n_harm + 1):
        out += np.where(k * freq < 0.45 * SR, np.sin(k * phase) / k ** tilt, 0.0)
    return out


def _midi_hz(m):
    return 440.0 * 2 ** ((np.asarray(m, dtype=np.float64) - 69) / 12)


def _sections(T, rng, mute_prob=0.15):
    """Song structure: a level per 16 s section (some sections silent), 50 ms ramps."""
    edges = np.arange(0, T / SR + 16, 16.0)
    levels = np.where(rng.random(len(edges)) < mute_prob, 0.0, rng.uniform(0.45, 1.0, len(edges)))
    levels[0] = max(levels[0], 0.6)
    t = np.arange(T) / SR
    i = np.minimum((t // 16).astype(int), len(edges) - 1)
    frac = np.clip((t - edges[i]) / 0.05, 0, 1)
    prev = levels[np.maximum(i - 1, 0)]
    return prev + (levels[i] - prev) * frac


def synth_stem(kind: str, seconds: float, seed: int) -> np.ndarray:
    """One stereo stem (2, T) float32, music-like, deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    T = int(round(seconds * SR))
    scale = np.array([0, 2, 3, 5, 7, 8, 10])  # natural minor
    root = 45 + int(rng.integers(-3, 4))
    pick = lambda n, lo, hi: root + (scale[rng.integers(0, 7, n)] + 12 * rng.integers(lo, hi, n))  # noqa: E731
    noise = lambda: rng.standard_normal(T)  # noqa: E731
    if kind == "kick":
        on = _onsets(T, BEAT, 0.95, rng)
        _, dt = _notes(T, on)
        f = 48 + 110 * np.exp(-dt / 0.025)
        mono = _harmonic(f, 1, 1, rng) * _env(dt, 0.001, 0.22) + 0.3 * _bandpass(noise(), 1500, 6000) * _env(dt, 0.0005, 0.01)
        left = right = mono
    elif kind == "snare_hats":
        on = _onsets(T, 2 * BEAT, 0.97, rng, offset_s=BEAT)
        _, dt = _notes(T, on)
        snare = _bandpass(noise(), 180, 6000) * _env(dt, 0.0008, 0.12) + 0.4 * np.sin(2 * np.pi * 190 * dt) * _env(dt, 0.001, 0.06)
        onh = _onsets(T, BEAT / 2, 0.85, rng)
        _, dth = _notes(T, onh)
        hats = _bandpass(noise(), 7000, SR, 4) * _env(dth, 0.0005, 0.035)
        left, right = snare + 0.5 * hats, snare + 0.35 * np.roll(hats, 40)
    elif kind == "bass":
        on = _onsets(T, BEAT / 2, 0.8, rng)
        idx, dt = _notes(T, on)
        f = _midi_hz(pick(len(on), -1, 1))[idx]
        mono = _bandpass(_harmonic(f, 12, 1.3, rng), 0, 900) * _env(dt, 0.003, 0.45)
        left = right = mono
    elif kind == "pad":
        on = _onsets(T, 8 * BEAT, 1.0, rng, jitter_s=0.0)
        idx, dt = _notes(T, on)
        chord = pick(len(on), 1, 2)
        left = np.zeros(T)
        right = np.zeros(T)
        for third, det in ((0, 1.0), (3, 1.003), (7, 0.997)):
            f = _midi_hz(chord + third)[idx]
            left += _harmonic(f * det, 8, 1.8, rng)
            right += _harmonic(f / det, 8, 1.8, rng)
        e = _env(dt, 0.35, 6.0)
        left, right = _bandpass(left, 0, 4000) * e, _bandpass(right, 0, 4000) * e
    elif kind == "guitar":
        on = _onsets(T, BEAT / 2, 0.7, rng)
        idx, dt = _notes(T, on)
        f = _midi_hz(pick(len(on), 1, 3))[idx]
        tone = _harmonic(f, 10, 1.0, rng) * _env(dt, 0.002, 0.3)
        body = _bandpass(tone + 0.05 * noise() * _env(dt, 0.001, 0.02), 90, 5000)
        left, right = body, 0.6 * np.roll(body, int(0.012 * SR)) + 0.4 * body
    elif kind == "lead":
        on = _onsets(T, BEAT, 0.6, rng)
        idx, dt = _notes(T, on)
        vib = 1 + 0.006 * np.sin(2 * np.pi * 5.5 * np.arange(T) / SR)
        f = _midi_hz(pick(len(on), 2, 4))[idx] * vib
        voice = _harmonic(f, 14, 1.1, rng)
        voice = _bandpass(voice, 250, 1200) + 0.5 * _bandpass(voice, 2000, 3500)
        breath = 0.03 * _bandpass(noise(), 3000, 9000)
        e = _env(dt, 0.04, 0.8)
        left, right = (voice + breath) * e, (voice + 0.8 * breath) * e
    elif kind == "piano":
        on = _onsets(T, BEAT / 2, 0.55, rng)
        idx, dt = _notes(T, on)
        f = _midi_hz(pick(len(on), 1, 3))[idx]
        tone = _harmonic(f, 16, 1.5, rng) * _env(dt, 0.001, 1.1)
        left, right = 0.9 * tone + 0.1 * np.roll(tone, 200), 0.7 * tone + 0.3 * np.roll(tone, 500)
    elif kind == "shaker":
        on = _onsets(T, BEAT / 4, 0.9, rng)
        _, dt = _notes(T, on)
        n = _bandpass(noise(), 5000, 14000)
        e = _env(dt, 0.006, 0.05)
        left, right = n * e, np.roll(n, 17) * e
    else:
        raise ValueError(kind)
    x = np.stack([left, right]) * _sections(T, rng)
    rms = np.sqrt(np.mean(x ** 2)) + 1e-12
    x *= 10 ** (rng.uniform(-21, -16) / 20) / rms
    peak = np.abs(x).max()
    if peak > 0.89:  # -1 dBFS, like a recorded stem
        x *= 0.89 / peak
    return x.astype(np.float32)


def _stem_names(n):
    return [f"{i + 1:02d}_{KINDS[i % len(KINDS)]}.wav" for i in range(n)]


def ensure_stems(folder: Path, n: int, seconds: float, seed: int,
                 loop_seconds: float | None = None) -> list[str]:
    """Generate (once) ``n`` stereo 24-bit WAV stems; ``loop_seconds``: synthesise that much per
    stem and loop it to ``seconds``, written block by block (quick, bounded memory)."""
    names = _stem_names(n)
    manifest = {"generator": GEN_VERSION, "n": n, "seconds": seconds, "seed": seed,
                "loop_seconds": loop_seconds, "sample_rate": SR, "subtype": "PCM_24"}
    mpath = folder / "manifest.json"
    if mpath.is_file() and json.loads(mpath.read_text()) == manifest and \
            all((folder / f).is_file() for f in names):
        return names
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    t0 = time.perf_counter()
    total = int(round(seconds * SR))
    for i, name in enumerate(names):
        kind = KINDS[i % len(KINDS)]
        if loop_seconds is None:
            sf.write(str(folder / name), synth_stem(kind, seconds, seed + i).T, SR, subtype="PCM_24")
            continue
        piece = np.ascontiguousarray(synth_stem(kind, loop_seconds, seed + i).T)
        with sf.SoundFile(str(folder / name), "w", SR, 2, subtype="PCM_24") as f:
            left = total
            while left > 0:
                f.write(piece[:left])
                left -= len(piece)
    mpath.write_text(json.dumps(manifest))
    print(f"  generated {n} stems x {seconds:g} s in {folder.relative_to(ROOT)} "
          f"({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
    return names


def make_settings(names: list[str], seed: int) -> dict:
    """Moderately random console settings with every processor engaged.

    Normalised parameters are drawn in [0.2, 0.8] (no extreme corners) and mapped with
    ``to_physical``; then compressor thresholds and ratios are drawn where the compressors work
    on these stems (-20 dBFS-ish RMS), track gains stay moderate, and the master gain pushes the
    bus into the limiter.
    """
    import torch
    from automix.params import MASTER_SPECS, TRACK_SPECS, to_physical
    from automix.settings import settings_from_params, validate

    g = torch.Generator().manual_seed(seed)
    n = len(names)
    u = lambda *shape: 0.2 + 0.6 * torch.rand(*shape, generator=g, dtype=torch.float64)  # noqa: E731
    r = lambda lo, hi, *shape: lo + (hi - lo) * torch.rand(*shape, generator=g, dtype=torch.float64)  # noqa: E731
    tp = to_physical(u(n, len(TRACK_SPECS)), TRACK_SPECS)
    tp["comp.threshold_db"] = r(-30.0, -18.0, n)
    tp["comp.ratio"] = r(2.0, 6.0, n)
    tp["comp.attack_ms"] = torch.exp(r(np.log(1.0), np.log(30.0), n))
    tp["comp.release_ms"] = torch.exp(r(np.log(50.0), np.log(400.0), n))
    tp["comp.makeup_db"] = r(0.0, 6.0, n)
    tp["gain_db"] = r(-8.0, 0.0, n)
    mp = to_physical(u(len(MASTER_SPECS)), MASTER_SPECS)
    mp["comp.threshold_db"] = r(-22.0, -16.0, ())
    mp["comp.ratio"] = r(1.5, 3.0, ())
    mp["comp.makeup_db"] = r(0.0, 2.0, ())
    mp["gain_db"] = r(10.0, 12.0, ())
    mp["limiter.ceiling_dbtp"] = torch.tensor(-1.0, dtype=torch.float64)
    tracks = [Path(f).stem for f in names]
    return validate(settings_from_params(tracks, names, tp, mp, SR))


# ------------------------------------------------------------------------------------------------
# child processes: each measurement in a fresh interpreter


def _maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_child(args: list[str], result_path: Path, env: dict | None = None) -> dict:
    """Run this script as a child; return its JSON result plus its own peak RSS (wait4)."""
    result_path.unlink(missing_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", *args,
           "--result", str(result_path)]
    return _run_measured(cmd, result_path, env)


def _busy_cpu_s() -> float:
    """CPU seconds all processes have spent busy since boot (/proc/stat; 0 if unavailable)."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return 0.0
    return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")  # minus idle and iowait


# A child's ru_maxrss starts from its parent's high-water mark (Linux records the parent's memory
# map at exec), and this process has torch loaded.  So a tiny launcher starts each measured
# command and reports the command's own rusage: wall time, CPU time and peak RSS.
_LAUNCHER = """
import json, os, sys, time
t0 = time.perf_counter()
pid = os.posix_spawnp(sys.argv[2], sys.argv[2:], os.environ)
_, status, ru = os.wait4(pid, 0)
wall = time.perf_counter() - t0
with open(sys.argv[1], "w") as f:
    json.dump({"wall_s": wall, "maxrss_kib": ru.ru_maxrss, "cpu_s": ru.ru_utime + ru.ru_stime,
               "returncode": os.waitstatus_to_exitcode(status)}, f)
"""


def _run_measured(cmd, result_path: Path | None = None, env: dict | None = None) -> dict:
    """Run ``cmd`` (through the launcher); wall time, its own peak RSS, and the CPU other
    processes used meanwhile (``others_cores``: average cores busy outside this measurement, a
    noise indicator)."""
    usage_path = CACHE / "tmp" / "usage.json"
    usage_path.parent.mkdir(parents=True, exist_ok=True)
    usage_path.unlink(missing_ok=True)
    ch = lambda: (lambda r: r.ru_utime + r.ru_stime)(resource.getrusage(resource.RUSAGE_CHILDREN))  # noqa: E731
    busy0, ch0, t0 = _busy_cpu_s(), ch(), time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _LAUNCHER, str(usage_path), *map(str, cmd)],
                          cwd=ROOT, env=None if env is None else {**os.environ, **env})
    others = (_busy_cpu_s() - busy0) - (ch() - ch0)  # CPU used by everything but us
    span = time.perf_counter() - t0
    if not usage_path.is_file():
        print(f"  !! launcher failed for {' '.join(map(str, cmd[:4]))} ...", file=sys.stderr)
        return {"returncode": proc.returncode or -1, "wall_s": float("nan"),
                "peak_rss_mib": float("nan"), "cpu_s": float("nan"), "others_cores": float("nan")}
    u = json.loads(usage_path.read_text())
    usage_path.unlink()
    wall = u["wall_s"]
    out = {"returncode": u["returncode"], "wall_s": wall, "peak_rss_mib": u["maxrss_kib"] / 1024.0,
           "cpu_s": u["cpu_s"], "others_cores": max(others, 0.0) / span}
    if result_path is not None and result_path.is_file():
        out.update(json.loads(result_path.read_text()))
    if out["returncode"] != 0:
        print(f"  !! {' '.join(map(str, cmd[:4]))} ... exited with {out['returncode']}",
              file=sys.stderr)
    return out


def _child_setup(a):
    import torch
    torch.set_num_threads(a.threads)
    return torch


def _warm_render(warm_dir: Path):
    from automix.render import render_settings
    from automix.settings import load_settings
    render_settings(load_settings(warm_dir / "settings.json"), warm_dir)


def plain_sum(folder: Path, files: list[str], block: int) -> np.ndarray:
    """The floor: read the same files block by block with soundfile and sum them (float64)."""
    handles = [sf.SoundFile(str(folder / f)) for f in files]
    try:
        length = max(h.frames for h in handles)
        mix = np.zeros((2, length))
        for h in handles:
            for start in range(0, h.frames, block):
                x = h.read(block, dtype="float32", always_2d=True).T
                mix[:, start:start + x.shape[1]] += x  # mono would broadcast to both sides
    finally:
        for h in handles:
            h.close()
    return mix


def child_render(a) -> dict:
    """Render vs plain sum, interleaved, ``reps`` times."""
    _child_setup(a)
    from automix.render import BLOCK, render_settings
    from automix.settings import load_settings
    settings = load_settings(a.stems / "settings.json")
    files = [t["file"] for t in settings["tracks"]]
    _warm_render(a.warm)
    plain_sum(a.stems, files, BLOCK)  # page cache warm for both
    base = _maxrss_mib()
    render, floor = [], []
    for r in range(a.reps):
        order = ("sum", "render") if r % 2 == 0 else ("render", "sum")
        for what in order:
            t0 = time.perf_counter()
            if what == "sum":
                out = plain_sum(a.stems, files, BLOCK)
                floor.append(time.perf_counter() - t0)
            else:
                out = render_settings(settings, a.stems)
                render.append(time.perf_counter() - t0)
            del out
    return {"render_s": render, "plain_sum_s": floor, "baseline_rss_mib": base}


class StageTimer:
    """Nested timers around patched functions; a stage's path is its callers' names."""

    def __init__(self):
        self.total = defaultdict(float)
        self.calls = defaultdict(int)
        self.stack: list[str] = []

    def wrap(self, name, fn):
        def timed(*args, **kwargs):
            path = "/".join([*self.stack, name])
            self.stack.append(name)
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.total[path] += time.perf_counter() - t0
                self.calls[path] += 1
                self.stack.pop()
        timed.__wrapped__ = fn
        return timed

    def table(self):
        rows = []
        for path, t in sorted(self.total.items()):
            children = sum(v for p, v in self.total.items()
                           if p.startswith(path + "/") and p.count("/") == path.count("/") + 1)
            rows.append({"stage": path, "total_s": t, "self_s": t - children,
                         "calls": self.calls[path]})
        return rows


def _patch(targets):
    """targets: [(owner, attribute, replacement)] -> list of originals to restore."""
    saved = []
    for owner, attr, new in targets:
        saved.append((owner, attr, getattr(owner, attr)))
        setattr(owner, attr, new)
    return saved


def _restore(saved):
    for owner, attr, old in reversed(saved):
        setattr(owner, attr, old)


def _stage_patches(timer: StageTimer):
    """Timers around each render stage that exists in this version of automix."""
    import automix.audio as audio
    import automix.dsp.dynamics as dyn
    import automix.dsp.eq as eq
    import automix.render as render
    owners = {"render": render, "audio": audio, "dyn": dyn, "eq": eq}
    stages = [
        ("render", "render_mix", "mix bus"),
        ("render", "render_master", "master"),
        ("render", "open_sources", "open files"),
        ("audio", "BlockReader.read", "read+decode"),
        ("render", "TrackStrip.process", "strip"),
        ("render", "MasterPre.process", "pre-limiter"),
        ("eq", "EqState.process", "eq (sosfilt)"),
        ("render", "_CompressorState.process", "compressor"),
        ("render", "pan_and_width", "pan+width"),
        ("render", "apply_width", "width"),
        ("render", "apply_limiter", "limiter"),
        ("render", "apply_limiter_inplace", "limiter"),
        ("eq", "EqState.process_inplace", "eq (numba)"),
        ("render", "compressor_kernel", "compressor (numba)"),
        ("render", "pan_width_accumulate", "gain+width+pan (numba)"),
        ("dyn", "amp_to_db", "level detector"),
        ("dyn", "gain_computer", "gain computer"),
        ("dyn", "ballistics", "ballistics (numba)"),
        ("dyn", "peak_envelope", "true-peak 8x"),
        ("dyn", "running_min", "hold (running min)"),
        ("dyn", "moving_average", "moving average"),
    ]
    patches = []
    for owner_name, path, label in stages:
        owner = owners[owner_name]
        *outer, attr = path.split(".")
        for name in outer:
            owner = getattr(owner, name, None)
        fn = getattr(owner, attr, None) if owner is not None else None
        if fn is not None:
            patches.append((owner, attr, timer.wrap(label, fn)))
    return patches


def child_profile(a) -> dict:
    """One render with stage timers; one under cProfile that also records gain reduction."""
    torch = _child_setup(a)
    import automix.dsp.dynamics as dyn
    from automix.render import render_settings
    from automix.settings import load_settings
    settings = load_settings(a.stems / "settings.json")
    _warm_render(a.warm)
    render_settings(settings, a.stems)  # page cache, as in the timed runs

    timer = StageTimer()
    saved = _patch(_stage_patches(timer))
    try:
        t0 = time.perf_counter()
        mix, master = render_settings(settings, a.stems)
        total = time.perf_counter() - t0
    finally:
        _restore(saved)

    # gain reduction actually applied (shows that the dynamics stages are engaged), measured
    # from each dynamics kernel's input and output: compressors (without makeup) per sample, the
    # limiter's applied gain per output sample
    gr = defaultdict(lambda: {"min_gain_db": 0.0, "sum_db": 0.0, "n": 0})
    who = []

    def record(key, before, after, offset_db=0.0):
        level = np.abs(before).max(0)
        ok = level > 1e-9
        db = 20 * np.log10(np.abs(after).max(0)[ok] / level[ok]) - offset_db
        if db.size:
            s = gr[key]
            s["min_gain_db"] = min(s["min_gain_db"], float(db.min()))
            s["sum_db"] += float(db.sum())
            s["n"] += db.size

    import automix.render as render
    strip_proc, master_proc = render.TrackStrip.process, render.MasterPre.process
    comp_kernel, limiter_inplace = render.compressor_kernel, render.apply_limiter_inplace

    def comp_stats(x, p, state):
        before = x.copy()
        comp_kernel(x, p, state)
        if p[0]:
            record(who[-1] if who else "?", before, x, p[4])

    def tagged(tag, fn):
        def f(*args, **kw):
            who.append(tag)
            try:
                return fn(*args, **kw)
            finally:
                who.pop()
        return f

    pre_peak = []

    def lim_stats(x, *args, **kw):
        pre_peak.append(float(np.abs(x).max()))
        before = x.copy()
        limiter_inplace(x, *args, **kw)
        record("limiter", before, x)

    saved = _patch([(render, "compressor_kernel", comp_stats),
                    (render.TrackStrip, "process", tagged("track compressors", strip_proc)),
                    (render.MasterPre, "process", tagged("master compressor", master_proc)),
                    (render, "apply_limiter_inplace", lim_stats)])
    prof = cProfile.Profile()
    try:
        t0 = time.perf_counter()
        prof.enable()
        render_settings(settings, a.stems)
        prof.disable()
        cprofile_total = time.perf_counter() - t0
    finally:
        _restore(saved)
    stats = pstats.Stats(prof)
    top = []
    for (file, line, func), (cc, nc, tt, ct, _) in sorted(stats.stats.items(),
                                                        key=lambda kv: -kv[1][2])[:15]:
        short = file.split("site-packages/")[-1].replace(str(ROOT) + "/", "")
        top.append({"function": f"{short}:{line}({func})", "calls": nc, "tottime_s": tt,
                    "cumtime_s": ct})
    out_peak = float(np.abs(master).max())
    return {"render_s": total, "stages": timer.table(), "cprofile_total_s": cprofile_total,
            "cprofile_top": top,
            "gain_reduction": {k: {"max_db": -v["min_gain_db"], "mean_db": -v["sum_db"] / max(v["n"], 1)}
                               for k, v in gr.items()},
            "limiter_input_peak_dbfs": 20 * np.log10(max(pre_peak)) if pre_peak else None,
            "master_sample_peak_dbfs": 20 * np.log10(out_peak),
            "mix_sample_peak_dbfs": 20 * np.log10(float(np.abs(mix).max()))}


def child_train(a) -> dict:
    """console forward + backward, float32, on crops of the cached stems."""
    torch = _child_setup(a)
    from automix.console import console
    from automix.params import MASTER_SPECS, TRACK_SPECS, to_physical
    B, N, T = a.batch, a.tracks, int(round(a.seconds * SR))
    rng = np.random.default_rng(SEED)
    files = sorted(p for p in a.stems.glob("*.wav"))
    stems = np.empty((B, N, 2, T), np.float32)
    for b in range(B):
        for n in range(N):
            f = files[(b + n) % len(files)]
            frames = sf.info(str(f)).frames
            start = int(rng.integers(0, max(frames - T, 1)))
            x, _ = sf.read(str(f), start=start, frames=T, dtype="float32", always_2d=True)
            stems[b, n, :, :x.shape[0]] = x.T
            stems[b, n, :, x.shape[0]:] = 0
    stems = torch.from_numpy(stems)
    mask = torch.ones(B, N, dtype=torch.bool)
    is_stereo = torch.ones(B, N, dtype=torch.bool)
    g = torch.Generator().manual_seed(SEED)

    def step(stems, mask, is_stereo):
        b, n = mask.shape
        ut = torch.rand(b, n, len(TRACK_SPECS), generator=g, requires_grad=True)
        um = torch.rand(b, len(MASTER_SPECS), generator=g, requires_grad=True)
        t0 = time.perf_counter()
        mix, master = console(stems, mask, is_stereo, to_physical(ut, TRACK_SPECS),
                              to_physical(um, MASTER_SPECS), SR)
        loss = master.abs().mean()
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        assert torch.isfinite(ut.grad).all() and torch.isfinite(um.grad).all()
        return t1 - t0, t2 - t1

    step(stems[:1, :2, :, :SR // 2].contiguous(), mask[:1, :2], is_stereo[:1, :2])  # warm-up
    base = _maxrss_mib()
    fwd, bwd = [], []
    spent = 0.0
    while len(fwd) < a.reps and (not fwd or spent < TRAIN_REP_BUDGET_S):
        f, b = step(stems, mask, is_stereo)
        fwd.append(f)
        bwd.append(b)
        spent += f + b
    return {"forward_s": fwd, "backward_s": bwd, "baseline_rss_mib": base,
            "input_mib": stems.numel() * 4 / 2 ** 20}


def child_long(a) -> dict:
    """One render of a long song: time and (via wait4) peak memory."""
    _child_setup(a)
    from automix.render import render_settings
    from automix.settings import load_settings
    settings = load_settings(a.stems / "settings.json")
    _warm_render(a.warm)
    base = _maxrss_mib()
    t0 = time.perf_counter()
    mix, master = render_settings(settings, a.stems)
    return {"render_s": time.perf_counter() - t0, "baseline_rss_mib": base,
            "output_mib": (mix.nbytes + master.nbytes) / 2 ** 20}


CHILDREN = {"render": child_render, "profile": child_profile, "train": child_train,
            "long": child_long}


# ------------------------------------------------------------------------------------------------
# the run


def _cli(stems: Path, out: Path) -> dict:
    exe = Path(sys.executable).parent / "automix"
    cmd = [str(exe)] if exe.is_file() else [sys.executable, "-m", "automix.cli"]
    cmd += ["render", "--stems", str(stems), "--settings", str(stems / "settings.json"),
            "-o", str(out), "--force"]
    r = _run_measured(cmd)
    shutil.rmtree(out, ignore_errors=True)
    return r


def _med(xs):
    return statistics.median(xs) if xs else float("nan")


def _machine() -> dict:
    model = platform.processor() or "?"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    import numba
    import torch
    try:
        git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "automix"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
        git += " (automix/ modified)" if dirty else ""
    except OSError:
        git = "?"
    return {"cpu": model, "automix_commit": git, "cores": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "numpy": np.__version__, "numba": numba.__version__,
            "torch_threads": 2}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes (< 60 s), for CI")
    p.add_argument("--render-only", action="store_true",
                   help="full sizes, render measurements only: 8 x 3 min render (3 reps, default "
                        "threads), per-stage profile, 16 x 10 min render time and peak memory; "
                        "no CLI, thread variants or training path (about 4 min)")
    p.add_argument("--json", type=Path, default=RESULTS / "console.json", help="result file")
    p.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    p.add_argument("--stems", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--warm", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--reps", type=int, default=3, help=argparse.SUPPRESS)
    p.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    p.add_argument("--tracks", type=int, help=argparse.SUPPRESS)
    p.add_argument("--seconds", type=float, help=argparse.SUPPRESS)
    p.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=2, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        a.result.write_text(json.dumps(CHILDREN[a.child](a)))
        return 0
    return run(a)


def run(a) -> int:
    cfg = QUICK if a.quick else RENDER_ONLY if a.render_only else FULL
    mode = "quick" if a.quick else "full"
    if a.quick:
        # a smoke test: keep it fast and steady on a shared machine (see VARIANTS); the full run
        # measures the default environment
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    t_start = time.perf_counter()
    print(f"console benchmark ({mode}); stems in {CACHE.relative_to(ROOT)}/", file=sys.stderr)

    def stems_dir(name, n, seconds, seed, loop=None):
        folder = CACHE / name
        names = ensure_stems(folder, n, seconds, seed, loop)
        sj = folder / "settings.json"
        settings = make_settings(names, seed)
        if not sj.is_file() or json.loads(sj.read_text()) != settings:
            from automix.settings import save_settings
            save_settings(sj, settings)
        return folder

    warm = stems_dir("warmup_2x2s", 2, 2.0, SEED + 900)
    n8, s8 = cfg["render_stems"], cfg["render_seconds"]
    song = stems_dir(f"{mode}_{n8}x{s8:g}s", n8, s8, SEED)  # render-only shares the full stems
    nl, sl = cfg["long_stems"], cfg["long_seconds"]
    long = stems_dir(f"{mode}_{nl}x{sl:g}s_looped", nl, sl, SEED + 100, cfg["long_loop_seconds"])
    tmp = CACHE / "tmp"
    tmp.mkdir(exist_ok=True)
    res = tmp / "child.json"
    common = ["--warm", str(warm), "--reps", str(cfg["reps"])]
    children = []

    def child(args, env=None):
        r = run_child(args, res, env)
        children.append(r)
        return r

    variants = VARIANTS[:cfg["variants"]]
    print(f"[1/5] render {n8} x {s8:g} s vs plain sum: {cfg['reps']} round(s) of "
          f"{', '.join(v[0] for v in variants)}", file=sys.stderr)
    rounds = {name: [] for name, _, _ in variants}
    for _ in range(cfg["reps"]):
        for name, env, threads in variants:
            rounds[name].append(child(["render", "--stems", str(song), "--warm", str(warm),
                                       "--reps", "1", "--threads", str(threads)], env))
    print("[2/5] per-stage profile", file=sys.stderr)
    # single-threaded, so the split reflects CPU cost, not waits on a busy machine's threads
    _, prof_env, prof_threads = VARIANTS[2]
    prof = child(["profile", "--stems", str(song), *common, "--threads", str(prof_threads)], prof_env)
    prof["env"] = {**prof_env, "torch_threads": prof_threads}
    print("[3/5] automix render (CLI, end to end)", file=sys.stderr)
    startup = {"wall_s": None} if a.quick or not cfg["cli_reps"] else \
        _run_measured([sys.executable, "-c", "import automix.cli, automix.render"])
    cli = [_cli(song, tmp / "cli-out") for _ in range(cfg["cli_reps"])]
    children += cli
    print("[4/5] training path", file=sys.stderr)
    train = []
    for B, N, secs in cfg["train_batches"]:
        r = child(["train", "--stems", str(song), "--batch", str(B), "--tracks", str(N),
                   "--seconds", str(secs), *common])
        r.update(batch=B, tracks=N, seconds=secs)
        train.append(r)
    print(f"[5/5] long song {nl} x {sl:g} s", file=sys.stderr)
    longr = child(["long", "--stems", str(long), *common]) if cfg["long_render_child"] else {}
    if cfg.get("long_cli", True):
        longcli = _cli(long, tmp / "cli-out-long")
        children.append(longcli)
    else:
        longcli = {"wall_s": None, "peak_rss_mib": None, "returncode": None}
    res.unlink(missing_ok=True)

    def render_summary(runs):
        ok = [r for r in runs if r.get("render_s")]
        if not ok:
            return {"returncodes": [r["returncode"] for r in runs]}
        rs = [x for r in ok for x in r["render_s"]]
        fs = [x for r in ok for x in r["plain_sum_s"]]
        rm, fm = _med(rs), _med(fs)
        return {"render_s": rs, "plain_sum_s": fs, "render_median_s": rm,
                "plain_sum_median_s": fm, "x_realtime": s8 / rm, "ratio_to_plain_sum": rm / fm,
                "ratio_to_plain_sum_per_rep": [x / y for x, y in zip(rs, fs)],
                "others_cores": [r["others_cores"] for r in runs],
                "child_peak_rss_mib": max(r["peak_rss_mib"] for r in ok),
                "child_baseline_rss_mib": ok[0].get("baseline_rss_mib")}

    summaries = {name: render_summary(runs) for name, runs in rounds.items()}
    rsum = summaries[variants[0][0]]
    f_med = rsum.get("plain_sum_median_s", float("nan"))
    cli_med = _med([c["wall_s"] for c in cli]) if cli else None
    results = {
        "benchmark": "console", "mode": mode + (" (render only)" if a.render_only else ""),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": " ".join([".venv/bin/python", "benchmarks/bench_console.py"]
                            + (["--quick"] if a.quick else [])
                            + (["--render-only"] if a.render_only else [])),
        "machine": _machine(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default (spin, then sleep)"),
        "render": {"stems": n8, "seconds": s8, **rsum,
                   "target_s": None if a.quick else TARGET_RENDER_S},
        "render_variants": [{"name": name, "env": env, "torch_threads": threads, **summaries[name]}
                            for name, env, threads in variants[1:]],
        "loadavg_end": os.getloadavg(),
        "cli": {"wall_s": [c["wall_s"] for c in cli], "median_s": cli_med,
                "x_realtime": s8 / cli_med if cli else None,
                "ratio_to_plain_sum": cli_med / f_med if cli else None,
                "peak_rss_mib": max(c["peak_rss_mib"] for c in cli) if cli else None,
                "import_startup_s": startup["wall_s"],
                "returncodes": [c["returncode"] for c in cli]},
        "profile": prof,
        "train": [{"batch": t["batch"], "tracks": t["tracks"], "seconds": t["seconds"],
                   "forward_s": t.get("forward_s"), "backward_s": t.get("backward_s"),
                   "fwd_bwd_median_s": _med([f + b for f, b in zip(t.get("forward_s") or [],
                                                                   t.get("backward_s") or [])]),
                   "peak_rss_mib": t["peak_rss_mib"], "baseline_rss_mib": t.get("baseline_rss_mib"),
                   "input_mib": t.get("input_mib"), "returncode": t["returncode"]} for t in train],
        "long": {"stems": nl, "seconds": sl, "render_s": longr.get("render_s"),
                 "x_realtime": sl / longr["render_s"] if longr.get("render_s") else None,
                 "peak_rss_mib": longr.get("peak_rss_mib"),
                 "baseline_rss_mib": longr.get("baseline_rss_mib"),
                 "output_mib": longr.get("output_mib"),
                 "cli_wall_s": longcli["wall_s"], "cli_peak_rss_mib": longcli["peak_rss_mib"],
                 "cli_returncode": longcli["returncode"], "target_peak_mib": TARGET_PEAK_MIB},
        "total_benchmark_s": time.perf_counter() - t_start,
    }
    failed = [c for c in children if c.get("returncode") != 0]
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(results, indent=2) + "\n")
    print(report(results))
    print(f"\nJSON: {a.json}  ({results['total_benchmark_s']:.0f} s in all)")
    if failed:
        print(f"{len(failed)} measurement(s) failed", file=sys.stderr)
    return 1 if failed else 0


def _dur(seconds: float) -> str:
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"


def _span(xs) -> str:
    return f" ({min(xs):.2f}-{max(xs):.2f})" if xs and len(xs) > 1 else ""


def report(r: dict) -> str:
    """Markdown tables of a result dict."""
    m = r["machine"]
    rd, cli, lg = r["render"], r["cli"], r["long"]
    L = [f"Console benchmark ({r['mode']}), {r['date']}, {m['cpu']} ({m['cores']} cores), "
         f"torch {m['torch']}, numba {m['numba']}, OMP_WAIT_POLICY {r['omp_wait_policy']}, "
         f"automix {m.get('automix_commit', '?')}", ""]
    ok = lambda good: "" if good is None else (" (target met)" if good else " (**target missed**)")  # noqa: E731
    mib = lambda v: f"{v:.0f} MiB" if v else ""  # noqa: E731
    L += ["| measurement | time (median) | x real time | ratio to plain sum | peak RSS (process) |",
          "|---|---|---|---|---|"]
    if rd.get("render_s"):
        target = rd.get("target_s")
        L.append(f"| plain sum, {rd['stems']} stems x {rd['seconds']:g} s (floor: soundfile read + "
                 f"sum) | {rd['plain_sum_median_s']:.2f} s "
                 f"| {rd['seconds'] / rd['plain_sum_median_s']:.0f}x | 1 | |")
        L.append(f"| render_settings, {rd['stems']} x {rd['seconds']:g} s, all processors on "
                 f"| {rd['render_median_s']:.2f} s{_span(rd['render_s'])}"
                 f"{ok(rd['render_median_s'] < target if target else None)} "
                 f"| {rd['x_realtime']:.1f}x | {rd['ratio_to_plain_sum']:.1f} "
                 f"| {mib(rd['child_peak_rss_mib'])} |")
    else:
        L.append(f"| render_settings | failed (exit {rd.get('returncode')}) | | | |")
    for v in r.get("render_variants") or []:
        if v.get("render_s"):
            L.append(f"| the same, {v['name']} (diagnostic) | {v['render_median_s']:.2f} s"
                     f"{_span(v['render_s'])} "
                     f"| {v['x_realtime']:.1f}x | {v['ratio_to_plain_sum']:.1f} "
                     f"| {mib(v['child_peak_rss_mib'])} |")
    imports = f", imports ~{cli['import_startup_s']:.1f} s" if cli["import_startup_s"] else ""
    if cli.get("median_s"):
        L.append(f"| `automix render` CLI end to end (process start{imports}, "
             f"2 x 24-bit WAV written) | {cli['median_s']:.2f} s{_span(cli['wall_s'])} "
             f"| {cli['x_realtime']:.1f}x "
             f"| {cli['ratio_to_plain_sum']:.1f} | {mib(cli['peak_rss_mib'])} |")
    full = r["mode"].startswith("full")
    if lg.get("render_s"):
        L.append(f"| render_settings, {lg['stems']} stems x {_dur(lg['seconds'])} "
                 f"| {lg['render_s']:.1f} s | {lg['x_realtime']:.1f}x | "
                 f"| {mib(lg['peak_rss_mib'])}{ok(lg['peak_rss_mib'] < lg['target_peak_mib'] if full else None)} |")
    if lg.get("cli_wall_s"):
        L.append(f"| `automix render` CLI, {lg['stems']} stems x {_dur(lg['seconds'])} "
             f"| {lg['cli_wall_s']:.1f} s | {lg['seconds'] / lg['cli_wall_s']:.1f}x | "
             f"| {mib(lg['cli_peak_rss_mib'])}{ok(lg['cli_peak_rss_mib'] < lg['target_peak_mib'] if full else None)} |")
    if rd.get("others_cores"):
        oc = rd["others_cores"]
        L += ["", f"Noise: other processes kept {min(oc):.2f}-{max(oc):.2f} cores busy during the "
              f"default render measurements ({len(oc)} runs; load average at the end "
              f"{r['loadavg_end'][0]:.1f})."]
    if r["train"]:
        L += ["", "Training path (console forward + backward, loss = mean |master|, float32, CPU, "
          "2 threads):", "",
          "| batch (songs x tracks x s) | forward | backward | fwd+bwd | reps | song-s per s "
          "| peak RSS | input tensor |", "|---|---|---|---|---|---|---|---|"]
    for t in r["train"]:
        if not t.get("forward_s"):
            L.append(f"| {t['batch']} x {t['tracks']} x {t['seconds']:g} | failed (exit "
                     f"{t['returncode']}) | | | | | {mib(t['peak_rss_mib'])} | |")
            continue
        tot = t["fwd_bwd_median_s"]
        L.append(f"| {t['batch']} x {t['tracks']} x {t['seconds']:g} | {_med(t['forward_s']):.2f} s "
                 f"| {_med(t['backward_s']):.2f} s | {tot:.2f} s | {len(t['forward_s'])} "
                 f"| {t['batch'] * t['seconds'] / tot:.2f} | {mib(t['peak_rss_mib'])} "
                 f"| {t['input_mib']:.0f} MiB |")
    pr = r["profile"]
    if pr.get("stages"):
        L += ["", f"Per-stage profile of the {rd['stems']} x {rd['seconds']:g} s render "
              f"({pr['render_s']:.2f} s with timers, 1 thread for torch and numba; "
              "own = total minus the stages listed under it):",
              "", "| stage | calls | total | own | % of render |", "|---|---|---|---|---|"]
        for st in pr["stages"]:
            L.append(f"| {st['stage']} | {st['calls']} | {st['total_s']:.3f} s | {st['self_s']:.3f} s "
                     f"| {100 * st['total_s'] / pr['render_s']:.1f} |")
        L += ["", "Top functions by own time (cProfile, "
              f"{pr['cprofile_total_s']:.2f} s under the profiler):", "",
              "| function | calls | own | cumulative |", "|---|---|---|---|"]
        for f in pr["cprofile_top"][:12]:
            L.append(f"| `{f['function']}` | {f['calls']} | {f['tottime_s']:.3f} s | {f['cumtime_s']:.3f} s |")
        L += ["", "Dynamics engaged (gain reduction in dB, mean over samples / max): " + ", ".join(
            f"{k} {g['mean_db']:.1f} / {g['max_db']:.1f}" for k, g in pr["gain_reduction"].items())
            + f"; limiter input peak {pr['limiter_input_peak_dbfs']:+.1f} dBFS, master sample peak "
            f"{pr['master_sample_peak_dbfs']:+.2f} dBFS."]
    return "\n".join(L)


if __name__ == "__main__":
    sys.exit(main())
