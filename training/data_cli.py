"""``automix-data``: make and inspect multitrack training data.

  automix-data render-midi SONG.mid -o DIR [--soundfont SF2]   stems of one MIDI file -> DIR/<song>/
  automix-data render-midi FOLDER -o DIR                       every .mid/.midi under FOLDER
  automix-data synth -n N -o DIR [--seed S] [--jobs J]         N new songs from mma grooves / music21
  automix-data scan DIR [--layout generic|musdb|medleydb]      songs, stems, hours, split sizes
  automix-data priors kick bass vocals [--seed S]              one random console setting (JSON)

Errors in the user's input are one line on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

from automix.errors import AutomixError


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
    args = _parser().parse_args(argv)
    warnings.simplefilter("default")
    warnings.formatwarning = lambda msg, cat, *rest: f"warning: {msg}\n"
    try:
        return {"render-midi": _render_midi, "synth": _synth, "scan": _scan,
                "priors": _priors}[args.command](args)
    except AutomixError as exc:
        print(f"automix-data: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("automix-data: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into head & co.
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
