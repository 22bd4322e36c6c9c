"""``automix-data``: make and inspect multitrack training data.

  automix-data render-midi SONG.mid -o DIR [--soundfont SF2]   stems of one MIDI file -> DIR/<song>/
  automix-data render-midi FOLDER -o DIR                       every .mid/.midi under FOLDER
  automix-data synth -n N -o DIR [--seed S] [--jobs J]         N new songs from mma grooves / music21
  automix-data lmms -o DIR [--only NAME ...] [--nice N]      the 18 LMMS demo projects of issue 17 ->
                                                             DIR/<song>/ (solo stems + mixture.wav)
  automix-data scan DIR [--layout generic|musdb|medleydb]      songs, stems, hours, split sizes
  automix-data priors kick bass vocals [--seed S]              one random console setting (JSON)

Errors in the user's input are one line on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from pathlib import Path

from automix._startup import quiet_interrupt
from automix.errors import AutomixError

quiet_interrupt("automix-data")  # Ctrl-C before main() runs: one line, exit 130

TRAIN_EXTRA = 'pip install "automix[train]"'
# what each command cannot run without (optional dependencies of the "train" extra)
NEEDS = {"render-midi": ("mido",), "synth": ("mido",)}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="automix-data", description="Make and inspect automix training data.")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("render-midi", help="render a MIDI file (or a folder of them) to stems")
    r.add_argument("input", help="a .mid file or a folder with .mid/.midi files")
    r.add_argument("-o", "--output", required=True, help="dataset folder; songs go to OUTPUT/<song>/")
    r.add_argument("--soundfont", help="General MIDI .sf2 (default: $AUTOMIX_SOUNDFONT or the system's)")
    r.add_argument("--sample-rate", type=int, default=44100)
    r.add_argument("--format", choices=("flac", "wav"), default="flac", help="stem files (24-bit)")
    r.add_argument("--no-drum-split", action="store_true", help="one drum stem instead of kit pieces")
    r.add_argument("--no-mixture", action="store_true", help="do not write the full render")
    r.add_argument("--peak-db", type=float, default=-1.0,
                   help="one song-wide gain puts the full render's peak here (default -1 dBFS)")
    r.add_argument("--keep-level", action="store_true",
                   help="keep FluidSynth's own level instead (lowered only to avoid clipping)")
    r.add_argument("--no-verify", action="store_true",
                   help="skip the second (full) render; the mixture is then the sum of the stems")

    s = sub.add_parser("synth", help="make N songs in the generic layout from offline material")
    s.add_argument("-n", "--songs", type=int, required=True)
    s.add_argument("-o", "--output", required=True)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--start", type=int, default=0, help="index of the first song (to extend a set)")
    s.add_argument("--jobs", type=int, default=1, help="songs made in parallel (processes)")
    s.add_argument("--source", choices=("mix", "mma", "music21"), default="mix")
    s.add_argument("--soundfont")
    s.add_argument("--sample-rate", type=int, default=44100)
    s.add_argument("--format", choices=("flac", "wav"), default="flac")
    s.add_argument("--min-seconds", type=float, default=30.0)
    s.add_argument("--max-seconds", type=float, default=75.0)
    s.add_argument("--no-verify", action="store_true",
                   help="skip the full render that checks each song's stems (about 2x faster)")
    s.add_argument("-q", "--quiet", action="store_true")

    m = sub.add_parser("lmms", help="render the LMMS demo projects of issue 17 to stems + producer's mix")
    m.add_argument("-o", "--output", required=True, help="dataset folder; songs go to OUTPUT/<song>/")
    m.add_argument("--only", nargs="+", metavar="NAME",
                   help="render only these projects (song names or paths like shorties/DirtyLove)")
    m.add_argument("--nice", type=int, default=0, help="run each lmms under nice -n N (0..19)")
    m.add_argument("--list", action="store_true", help="print the projects and their stems; render nothing")

    c = sub.add_parser("scan", help="list the songs a dataset folder holds")
    c.add_argument("root")
    c.add_argument("--layout", default="generic", choices=("generic", "musdb", "medleydb", "synth"))
    c.add_argument("--subsets", default="train", help="musdb: comma-separated (train,test)")
    c.add_argument("--valid-fraction", type=float, default=0.1)
    c.add_argument("-v", "--verbose", action="store_true", help="one line per song")

    q = sub.add_parser("priors", help="print one random console setting for the given tracks")
    q.add_argument("tracks", nargs="+")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--config", help="a priors YAML (configs/data/priors.yaml)")
    return p


def _require(command: str) -> None:
    """A one-line error naming the extra when an optional dependency is missing (found without
    importing it: music21 takes seconds)."""
    import importlib.util

    for module in NEEDS.get(command, ()):
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # e.g. sys.modules[module] is None
            found = False
        if not found:
            raise AutomixError(f"{command} needs {module}: {TRAIN_EXTRA}")


def _finite(value: float, option: str) -> float:
    if not math.isfinite(value):
        raise AutomixError(f"{option} {value}: expected a finite number")
    return value


def _check(a) -> None:
    """Option values the commands cannot work with: one line each."""
    if a.command in ("render-midi", "synth") and not 8000 <= a.sample_rate <= 384000:
        raise AutomixError(f"--sample-rate {a.sample_rate}: expected a rate in Hz, 8000..384000")
    if a.command == "render-midi" and _finite(a.peak_db, "--peak-db") > 0:
        raise AutomixError(f"--peak-db {a.peak_db:g}: at most 0 dBFS (24-bit stems clip above)")
    if a.command == "synth":
        for option, value, least in (("-n/--songs", a.songs, 1), ("--jobs", a.jobs, 1),
                                     ("--start", a.start, 0), ("--seed", a.seed, 0)):
            if value < least:
                raise AutomixError(f"{option} {value}: must be at least {least}")
        _finite(a.min_seconds, "--min-seconds")
        _finite(a.max_seconds, "--max-seconds")
    if a.command == "scan" and not 0.0 <= a.valid_fraction <= 1.0:
        raise AutomixError(f"--valid-fraction {a.valid_fraction:g}: expected 0..1")
    if a.command == "lmms" and not 0 <= a.nice <= 19:
        raise AutomixError(f"--nice {a.nice}: expected 0..19")
    if a.command == "priors" and a.seed < 0:
        raise AutomixError(f"--seed {a.seed}: must be at least 0")


def _render_midi(a) -> int:
    from .midi_render import render_midi, render_midi_folder

    opts = dict(soundfont=a.soundfont, sample_rate=a.sample_rate, split_drums=not a.no_drum_split,
                write_mixture=not a.no_mixture, audio_format=a.format,
                peak_db=None if a.keep_level else a.peak_db, verify=not a.no_verify)
    src = Path(a.input)
    t0 = time.perf_counter()
    if src.is_dir():
        results = render_midi_folder(src, a.output, **opts)
    else:
        results = [render_midi(src, a.output, **opts)]
    for r in results:
        check = f", stems sum to the full render at {r.sum_sdr_db:.1f} dB SDR" if not a.no_verify else ""
        print(f"{r.song_dir}: {len(r.stems)} stems, {r.seconds:.1f} s{check}")
    print(f"{len(results)} song(s) in {time.perf_counter() - t0:.1f} s")
    return 0


def _synth(a) -> int:
    from .synth import SynthConfig, synth_dataset

    sources = {"mix": {"mma": 0.75, "music21": 0.25}, "mma": {"mma": 1.0}, "music21": {"music21": 1.0}}
    if not 0 < a.min_seconds <= a.max_seconds:
        raise AutomixError("--min-seconds must be positive and at most --max-seconds")
    cfg = SynthConfig(sources=sources[a.source], sample_rate=a.sample_rate, soundfont=a.soundfont,
                      seconds=(a.min_seconds, a.max_seconds), audio_format=a.format,
                      verify=not a.no_verify)
    t0 = time.perf_counter()
    total = {"seconds": 0.0}

    def progress(done, n, index, path):
        if path is None:
            return
        prov = json.loads((Path(path) / "provenance.json").read_text())
        total["seconds"] += prov["seconds"]
        if not a.quiet:
            print(f"[{done}/{n}] {Path(path).name}  {prov['source']:<8} {prov['seconds']:6.1f} s  "
                  f"{len(prov['stems'])} stems", flush=True)

    songs = synth_dataset(a.songs, a.output, seed=a.seed, cfg=cfg, start=a.start, jobs=a.jobs,
                          progress=progress)
    dt = time.perf_counter() - t0
    hours = total["seconds"] / 3600
    print(f"{len(songs)} songs, {hours * 60:.1f} min of audio in {dt:.1f} s "
          f"({len(songs) / dt * 60:.1f} songs/min, {hours / dt * 60 * 60:.1f} min of audio per min)")
    return 0


def _lmms(a) -> int:
    from .lmms import PROJECTS, load_project, plan_stems, project_path, render_dataset, song_id, song_seconds

    projects = list(PROJECTS)
    if a.only:
        by_name = {song_id(p).lower(): p for p in PROJECTS} | {p.lower(): p for p in PROJECTS}
        unknown = [n for n in a.only if n.lower() not in by_name]
        if unknown:
            raise AutomixError(f"{unknown[0]}: not one of the 18 projects of issue 17 "
                               "(automix-data lmms --list shows them; the other demos are a reserved test set)")
        projects = [by_name[n.lower()] for n in a.only]
    if a.list:
        for rel in projects:
            root = load_project(project_path(rel))
            stems, notes = plan_stems(root)
            print(f"{song_id(rel)}\t{song_seconds(root):5.0f} s\t{len(stems)} stems\t{rel}")
        return 0
    t0 = time.perf_counter()
    songs = render_dataset(a.output, projects, nice=a.nice,
                           progress=lambda s: print(f"{time.perf_counter() - t0:7.0f} s  {s}", flush=True))
    for song in songs:
        meta = json.loads((song / "lmms.json").read_text())
        print(f"{song.name}: {len(meta['stems'])} stems, {meta['seconds']:.1f} s, "
              f"solo sum residual {meta['solo_sum_residual_db']:.1f} dB, repeat render {meta.get('repeat_render_residual_db', float('nan')):.1f} dB")
    return 0


def _scan(a) -> int:
    from .datasets import scan, split_of

    songs = scan(a.layout, a.root, subsets=[s for s in a.subsets.split(",") if s])
    n_valid = sum(split_of(s.id, a.valid_fraction) == "valid" for s in songs)
    stems = sum(len(s.stems) for s in songs)
    hours = sum(s.seconds for s in songs) / 3600
    if a.verbose:
        for s in songs:
            labels = ", ".join(st.label for st in s.stems)
            print(f"{s.id}\t{s.seconds:7.1f} s\t{len(s.stems)} stems\t{labels}")
    print(f"{len(songs)} songs, {stems} stems, {hours:.2f} h; split at {a.valid_fraction:g}: "
          f"{len(songs) - n_valid} train / {n_valid} valid")
    return 0


def _priors(a) -> int:
    from .priors import prior_config, sample_settings

    data = None
    if a.config:
        import yaml

        try:
            data = yaml.safe_load(Path(a.config).read_text())
        except OSError as exc:
            raise AutomixError(f"{a.config}: {exc.strerror}") from None
    print(json.dumps(sample_settings(a.tracks, a.seed, prior_config(data)), indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = None
    try:
        args = _parser().parse_args(argv)
        warnings.simplefilter("default")
        warnings.formatwarning = lambda msg, cat, *rest: f"warning: {msg}\n"
        _check(args)
        _require(args.command)
        return {"render-midi": _render_midi, "synth": _synth, "lmms": _lmms, "scan": _scan,
                "priors": _priors}[args.command](args)
    except AutomixError as exc:
        print(f"automix-data: error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:  # an optional dependency imported further on
        if exc.name and exc.name.split(".")[0] in ("mido", "music21", "tensorboard"):
            command = args.command if args is not None else "automix-data"
            print(f"automix-data: error: {command} needs {exc.name.split('.')[0]}: "
                  f"{TRAIN_EXTRA}", file=sys.stderr)
            return 2
        raise
    except KeyboardInterrupt:
        print("automix-data: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into head & co.
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
