"""Album benchmark (issue 20): an album of songs at mixed levels and tones, mastered by
``automix album`` (to a reference, with ``--same-loudness``, and with the default relative
loudness plan) and by Matchering 2.0.6 song by song to the same reference (when importable).

Reported, across the songs (max - min): integrated loudness, tonal balance (the mean over the
1/3-octave bands of the mid curve's max - min), width; before (the mixes), after automix album,
after Matchering.  Plus the true peak of every master after MP3 128 kbps (LAME via libsndfile)
with the codec-safe ceiling off (``--codecs none``: the masters as they were before issue 20)
and on (``--codecs mp3``), how many pass -1 dBTP, the loop's time, and the wall time of each
album run.

Material (no network): songs rendered from MIDI by ``training/synth.py`` (mma grooves, GM
SoundFont, fluidsynth; the benchmark's own synthetic-song source) when those tools are
installed, else synthetic test songs (``--source synthetic``), or real music (``--source
real``: up to 10 songs of the supertux-data package that benchmarks/data.py fetches, several
styles, each excerpt from 20 s in).  Each song's mixture then gets
a seeded "mix engineer" change -- a level (-26..-10 LUFS) and a tilt (low and high shelves,
+-5 dB) -- so the album starts with mixed levels and tones.  The reference is
``examples/dirty-love/reference.flac`` (a real master, shipped in the repository).

    .venv/bin/python benchmarks/album.py                       # 8 songs x 180 s (the issue's size)
    .venv/bin/python benchmarks/album.py --songs 6 --seconds 40 --source synthetic   # quick
    .venv/bin/python benchmarks/album.py --songs 8 --seconds 60 --source real --parts tone
    .venv/bin/python benchmarks/album.py --songs 8 --seconds 60 --source real --parts fit-time
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from automix import analysis, codecs  # noqa: E402
from automix.album import spreads  # noqa: E402

REFERENCE = ROOT / "examples" / "dirty-love" / "reference.flac"
AUTOMIX = [sys.executable, "-m", "automix.cli"]


def shelf_tilt(x: np.ndarray, sr: int, low_db: float, high_db: float) -> np.ndarray:
    """Low shelf at 200 Hz and high shelf at 4 kHz (RBJ cookbook, S = 1), float64."""
    from scipy.signal import sosfilt

    def shelf(f0, gain, high):
        A = 10 ** (gain / 40)
        w = 2 * np.pi * f0 / sr
        alpha = np.sin(w) / 2 * np.sqrt(2)
        c, s2 = np.cos(w), 2 * np.sqrt(A) * alpha
        sign = -1 if high else 1
        b0 = A * ((A + 1) - sign * (A - 1) * c + s2)
        b1 = 2 * sign * A * ((A - 1) - sign * (A + 1) * c)
        b2 = A * ((A + 1) - sign * (A - 1) * c - s2)
        a0 = (A + 1) + sign * (A - 1) * c + s2
        a1 = -2 * sign * ((A - 1) + sign * (A + 1) * c)
        a2 = (A + 1) + sign * (A - 1) * c - s2
        return np.array([[b0, b1, b2, a0, a1, a2]]) / a0

    y = sosfilt(shelf(200.0, low_db, False), x, axis=-1)
    return sosfilt(shelf(4000.0, high_db, True), y, axis=-1)


def synthetic_song(i: int, seconds: float, sr: int = 44100) -> np.ndarray:
    """A stand-in song: kick, bass line, chords, hats and a lead, seeded by ``i``."""
    rng = np.random.default_rng(100 + i)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    bpm = rng.uniform(80, 140)
    beat = (t * bpm / 60) % 1
    kick = np.sin(2 * np.pi * 50 * t * (1 + np.exp(-beat * 30))) * np.exp(-beat * 8)
    root = 55 * 2 ** (rng.integers(0, 12) / 12)
    bar = ((t * bpm / 240).astype(int)) % 4
    step = np.array([0, 5, 7, 3])[bar]
    bass = 0.5 * np.sign(np.sin(2 * np.pi * root * 2 ** (step / 12) * t)) * 0.4
    chords = sum(np.sin(2 * np.pi * root * 4 * 2 ** ((step + k) / 12) * t + ph)
                 for k, ph in ((0, 0), (4, 1), (7, 2))) * 0.12
    hats = rng.standard_normal(n) * np.exp(-((t * bpm / 30) % 1) * 40) * 0.15
    lead = np.sin(2 * np.pi * root * 8 * 2 ** (rng.integers(0, 7, n // sr + 1)[(t).astype(int)] / 12) * t) * 0.15
    left = kick + bass + chords * 1.1 + hats * 0.7 + lead * 0.8
    right = kick + bass + chords * 0.9 + np.roll(hats, 331) * 0.7 + lead * 1.2
    return np.stack([left, right])


def synth_song(i: int, seconds: float, work: Path) -> np.ndarray | None:
    """Song ``i`` rendered from MIDI by training/synth.py (None when its tools are missing)."""
    try:
        from training.synth import SynthConfig, make_song
        cfg = SynthConfig(seconds=(seconds, seconds), sources={"mma": 1.0}, verify=False,
                          audio_format="flac")
        folder = make_song(i, work / "synth", seed=20, cfg=cfg)
    except Exception as exc:  # mma/fluidsynth/SoundFont missing
        print(f"synth song {i} unavailable ({exc}); using synthetic songs", file=sys.stderr)
        return None
    audio, _ = sf.read(folder / "mixture.wav" if (folder / "mixture.wav").exists()
                       else folder / "mixture.flac", always_2d=True)
    return audio.T


SUPERTUX = ROOT / "benchmarks" / "cache" / "pkgs" / "supertux-data" / "usr" / "share" / "games" / "supertux2" / "music"
# real music of several styles (orchestral, chiptune, rock, ambient), each >= 100 s
REAL_SONGS = ("antarctic/airship_2", "antarctic/arctic_breeze", "antarctic/chipdisko",
              "castle/darkforestkeep", "forest/beneath_the_rabbit_hole", "forest/bright_thunders",
              "forest/forest-sprint", "misc/battle_theme", "forest/shallow-green",
              "forest/clavelian_march")


def real_song(i: int, seconds: float) -> np.ndarray | None:
    """``seconds`` of a real song (supertux-data, the Debian package benchmarks/data.py
    fetches) from 20 s in (past most intros)."""
    if i >= len(REAL_SONGS) or not SUPERTUX.is_dir():
        return None
    x, sr = sf.read(SUPERTUX / f"{REAL_SONGS[i]}.ogg", always_2d=True)
    if sr != 44100:
        from automix.audio import resample
        x = resample(x.T.astype(np.float32), sr, 44100).T
    start = min(20 * 44100, max(0, len(x) - int(seconds * 44100)))
    return x[start:start + int(seconds * 44100)].T


def make_album(n: int, seconds: float, source: str, work: Path) -> list[Path]:
    rng = np.random.default_rng(7)
    songs_dir = work / "songs"
    songs_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = songs_dir / f"song{i + 1}.wav"
        paths.append(path)
        if path.exists():
            continue
        x = (synth_song(i, seconds, work) if source == "synth"
             else real_song(i, seconds) if source == "real" else None)
        if x is None and source == "real":
            raise SystemExit(f"album: real song {i + 1} is missing ({SUPERTUX}; run "
                             f"benchmarks/data.py; at most {len(REAL_SONGS)} songs)")
        if x is None:
            x = synthetic_song(i, seconds)
        x = shelf_tilt(np.asarray(x, np.float64), 44100, rng.uniform(-5, 5), rng.uniform(-5, 5))
        lufs = rng.uniform(-26, -10)
        x *= 10 ** ((lufs - analysis.integrated_loudness(x, 44100)) / 20)
        if np.abs(x).max() > 0.99:  # a mix has headroom: no clipping in the source
            x *= 0.99 / np.abs(x).max()
        sf.write(path, x.T, 44100, subtype="FLOAT")
    return paths


def summarise(path: Path) -> dict:
    x, sr = sf.read(path, always_2d=True)
    a = analysis.analyze(x.T, sr)
    return {"lufs": a["integrated_lufs"], "true_peak_dbtp": a["true_peak_dbtp"],
            "lra_lu": a["loudness_range_lu"], "plr_db": a["plr_db"], "width_db": a["width_db"],
            "mid_db": a["tonal_balance"]["mid_db"], "side_db": a["tonal_balance"]["side_db"]}


def mp3_peak(path: Path) -> float:
    x, sr = sf.read(path, always_2d=True)
    return codecs.coded_true_peaks(x.T, sr, ("mp3",))["mp3"]


# the tonal spread split into three regions (1/3-octave band centres, Hz)
REGIONS = {"to_160_hz": (0, 160), "200_to_2500_hz": (200, 2500), "from_3150_hz": (3150, 1e9)}


def tone_detail(summaries: list[dict]) -> dict:
    """The tonal spread per region (mean over its bands of max - min of the mid curves), each
    song's mean absolute distance (dB) from the album curve (the reference's mid curve, all
    bands), and the highest true peak."""
    x, sr = sf.read(REFERENCE, always_2d=True)
    curve = np.array(analysis.tonal_balance(x.T, sr)["mid_db"])
    mids = np.array([s["mid_db"] for s in summaries])
    ptp, bands = np.ptp(mids, axis=0), np.array(analysis.BANDS_HZ)
    return {"tone_db_by_region": {k: round(float(ptp[(bands >= lo) & (bands <= hi)].mean()), 2)
                                  for k, (lo, hi) in REGIONS.items()},
            "tone_error_to_curve_db": [round(float(v), 2)
                                       for v in np.abs(mids - curve).mean(axis=1)],
            "true_peak_max_dbtp": round(max(s["true_peak_dbtp"] for s in summaries), 2)}


SNAPSHOT: Path | None = None


def snapshot(work: Path) -> Path:
    """A copy of automix/ taken when the run starts: edits made in the shared tree during a
    long run do not mix versions (as benchmarks/run.py does)."""
    dest = work / "snapshot"
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(ROOT / "automix", dest / "automix",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pt"))
    return dest


def run_album(songs, out: Path, extra: list[str]) -> tuple[float, dict]:
    if out.exists():
        shutil.rmtree(out)
    cmd = AUTOMIX + ["album", *map(str, songs), "--reference", str(REFERENCE), "-o", str(out),
                     *extra]
    env = dict(os.environ, PYTHONPATH=str(SNAPSHOT)) if SNAPSHOT else None
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=SNAPSHOT or ROOT, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"automix album failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return wall, json.loads((out / "album.json").read_text())


def _matchering_key(songs) -> dict:
    """What Matchering's masters depend on: its version, the reference and the songs (size and
    modification time of each file)."""
    from importlib.metadata import version

    def stamp(p: Path) -> list:
        st = p.stat()
        return [st.st_size, st.st_mtime_ns]
    return {"matchering": version("matchering"), "reference": [REFERENCE.name, *stamp(REFERENCE)],
            "songs": {p.name: stamp(p) for p in songs}}


def run_matchering(songs, out: Path) -> tuple[float, list[Path]] | None:
    """Matchering on every song (800+ s for 8 x 60 s on 2 busy cores), or its masters from a
    previous run when ``out/run.json`` says they were made from these very files (the wall
    time reported is then that run's)."""
    import importlib.util
    if importlib.util.find_spec("matchering") is None:
        return None
    out.mkdir(parents=True, exist_ok=True)
    record, key = out / "run.json", _matchering_key(songs)
    results = [out / f"{p.stem}.wav" for p in songs]
    if record.exists() and all(p.exists() for p in results):
        done = json.loads(record.read_text())
        if done.get("key") == key:
            print(f"matchering: masters reused from {out} (made {done.get('made', '?')})",
                  file=sys.stderr)
            return float(done["wall_s"]), results
    code = ("import sys, matchering as mg\n"
            "for src, dst in zip(sys.argv[2::2], sys.argv[3::2]):\n"
            "    mg.process(target=src, reference=sys.argv[1], results=[mg.pcm24(dst)])\n")
    args = [str(REFERENCE)] + [str(v) for pair in zip(songs, results) for v in pair]
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True)
    wall = time.perf_counter() - t0
    record.write_text(json.dumps({"key": key, "wall_s": wall, "made": time.strftime(
        "%Y-%m-%d %H:%M UTC", time.gmtime())}, indent=1))
    return wall, results


def fit_times(songs, repeats: int = 2) -> dict:
    """Seconds of the master tone fit (automix.match.fit_master_tone, 300 steps, one thread)
    per song with each match EQ layout, the layouts interleaved (a shared machine drifts)."""
    import torch

    from automix.audio import to_stereo
    from automix.mastering import measure_mix
    from automix.match import MATCH_EQS, Target, fit_master_tone, predict_master
    from automix.params import MASTER_SPECS, defaults

    torch.set_num_threads(1)
    x, sr = sf.read(REFERENCE, always_2d=True)
    ref = analysis.analyze(to_stereo(x.T), sr)
    start = defaults(MASTER_SPECS, (), torch.float64)
    times = {name: [] for name in MATCH_EQS}
    for path in songs:
        audio, sr = sf.read(path, always_2d=True)
        features, spectra = measure_mix(audio.T, sr)
        target = predict_master(spectra, start, sr).moved(Target.of(ref), Target.of(features),
                                                          1.0, 1.0)
        for _ in range(repeats):
            for name in times:
                t0 = time.perf_counter()
                fit_master_tone(spectra, target, start, sr, match_eq=name)
                times[name].append(time.perf_counter() - t0)
    out = {name: {"median_s": round(float(np.median(t)), 3), "fits": len(t)}
           for name, t in times.items()}
    out["ratio_third_to_half"] = round(out["third-octave"]["median_s"]
                                       / out["half-octave"]["median_s"], 3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--songs", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=180.0)
    ap.add_argument("--source", choices=("synth", "synthetic", "real"), default="synth")
    ap.add_argument("--parts", choices=("all", "tone", "fit-time"), default="all",
                    help="tone: only the spreads of automix album --same-loudness (codec loop "
                         "off; its third-octave match EQ and the half-octave one) and "
                         "Matchering's); fit-time: only the master tone fit's time per song "
                         "with each match EQ layout")
    ap.add_argument("--work", default=str(ROOT / "benchmarks" / "cache" / "album"))
    ap.add_argument("--jobs", type=int, default=None)
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()
    work = Path(args.work) / f"{args.source}-{args.songs}x{args.seconds:g}"
    global SNAPSHOT
    songs = make_album(args.songs, args.seconds, args.source, work)
    if args.parts == "fit-time":
        print(json.dumps(fit_times(songs), indent=1))
        return
    SNAPSHOT = snapshot(work)
    before = [summarise(p) for p in songs]
    jobs = ["--jobs", str(args.jobs)] if args.jobs else []
    res = {"songs": len(songs), "seconds": args.seconds, "source": args.source,
           "cores": os.cpu_count(), "load_average_at_start": os.getloadavg(),
           "before": spreads(before)}
    wall_off, doc_off = run_album(songs, work / "album-same-nocodec",
                                  ["--same-loudness", "--codecs", "none", *jobs])
    if args.parts == "tone":
        # the album's match EQ (third-octave, the default) against the single master's
        wall_half, doc_half = run_album(songs, work / "album-same-nocodec-half",
                                        ["--same-loudness", "--codecs", "none", "--match-eq",
                                         "half-octave", *jobs])
        curve = doc_off["plan"]["curve"]
        for key, folder, doc, wall in (
                ("automix_same_loudness_no_codec_loop", "album-same-nocodec", doc_off, wall_off),
                ("automix_half_octave_match_eq", "album-same-nocodec-half", doc_half, wall_half)):
            after = [summarise(work / folder / f"{r['name']}.wav") for r in doc["songs"]]
            res[key] = dict(spreads(after), **tone_detail(after), wall_s=wall,
                            master_s=[round(r["seconds"], 1) for r in doc["songs"]])
        m = run_matchering(songs, work / "matchering")
        if m is None:
            res["matchering"] = "not importable"
        else:
            after = [summarise(p) for p in m[1]]
            res["matchering"] = dict(spreads(after), **tone_detail(after), wall_s=m[0])
        res["before"].update(tone_detail(before))
        assert curve == "reference"
        res["load_average_at_end"] = os.getloadavg()
        print(json.dumps(res, indent=1))
        if args.json:
            Path(args.json).write_text(json.dumps(res, indent=1))
        return
    wall_on, doc_on = run_album(songs, work / "album-same", ["--same-loudness", "--codecs", "mp3",
                                                             *jobs])
    wall_rel, doc_rel = run_album(songs, work / "album-relative", ["--codecs", "mp3", *jobs])
    for key, doc, wall in (("automix_same_loudness", doc_on, wall_on),
                           ("automix_relative", doc_rel, wall_rel)):
        after = [summarise(work / ("album-same" if key.endswith("loudness") else "album-relative")
                           / f"{r['name']}.wav") for r in doc["songs"]]
        res[key] = dict(spreads(after), wall_s=wall)
    res["automix_same_loudness_no_codec_loop"] = dict(
        spreads([summarise(work / "album-same-nocodec" / f"{r['name']}.wav")
                 for r in doc_off["songs"]]), wall_s=wall_off)
    # MP3 128k true peak of every master: codec loop off (today's masters) vs on
    off = [mp3_peak(work / "album-same-nocodec" / f"{r['name']}.wav") for r in doc_off["songs"]]
    on = [mp3_peak(work / "album-same" / f"{r['name']}.wav") for r in doc_on["songs"]]
    loop_s = [r["codec_loop"]["seconds"] for r in doc_on["songs"] if r.get("codec_loop")]
    res["mp3_128k"] = {"ceiling_dbtp": -1.0, "before_loop_dbtp": off, "after_loop_dbtp": on,
                       "pass_before": sum(p <= -1.0 + 0.05 for p in off),
                       "pass_after": sum(p <= -1.0 + 0.05 for p in on),
                       "loop_seconds_per_song": loop_s,
                       "loop_rounds": [r["codec_loop"]["rounds"] for r in doc_on["songs"]
                                       if r.get("codec_loop")]}
    m = run_matchering(songs, work / "matchering")
    if m is None:
        res["matchering"] = "not importable (pip install matchering==2.0.6): not measured"
    else:
        wall_m, paths = m
        res["matchering"] = dict(spreads([summarise(p) for p in paths]), wall_s=wall_m)
        res["matchering"]["mp3_128k_dbtp"] = [mp3_peak(p) for p in paths]
    res["load_average_at_end"] = os.getloadavg()  # the machine is shared: timings depend on it
    print(json.dumps(res, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
