"""``automix album``: several songs mastered to one consistent sound (issue 20 item 1).

    songs (files, folders, a list file; or stem folders, each mixed first)
      -> every song read and analysed (in parallel; a silent or unreadable song fails alone)
      -> the album plan: one target per song for loudness, tone, width and dynamics
      -> every song mastered by the master stage (automix.api.master_stage) toward its plan,
         codec-safe (automix.codec_safe), in parallel over processes
      -> one master per song (+ its settings.json), album.json + album.html (before/after),
         optionally the sequenced album (album.wav + album.cue)

**The plan.** The *album curve* is the reference's tonal balance (mid and side) when a
``--reference`` is given, else the mean of the songs' own curves (bands a song cannot hold,
above its Nyquist frequency, left out of the mean); width, loudness range and PLR targets are
the reference's, else the album's median.  Every song's master is fitted to that curve (the
amounts ``--tone``/``--width``/``--dynamics`` say how far), so the album shares one tonal
balance and one width while each song keeps its arrangement.  Loudness: the loudest song is
mastered to the album target (``--target-lufs``, else the ``--platform``'s, else the
reference's, else -14 LUFS) and each other song keeps its distance to the loudest as the mixes
have it, but at most ``--window`` LU (default 3) under it -- album normalisation with a floor;
``--same-loudness`` masters every song to the target.

**Parallel and sharded.** Songs are analysed and mastered in a process pool (``--jobs``,
default: the machine's cores; each worker single-threaded).  ``--shard i/n`` masters only the
songs ``k`` with ``k % n == i - 1`` (1-based song numbers minus one) but analyses all of them,
so every shard computes the same plan: any job scheduler can run the n shards anywhere, each
into its own output folder.  The sequenced album needs every song: it is refused with
``--shard``.

**Exit codes.** 0: every song mastered; 3: some songs failed (each named with its reason on
stderr and in album.json), the rest mastered; 2: nothing could be mastered, or bad options.
"""
from __future__ import annotations

import copy
import json
import multiprocessing
import os
import re
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import AutomixError

PARTIAL_EXIT = 3
DEFAULT_WINDOW_LU = 3.0
DEFAULT_ALBUM_LUFS = -14.0
# The album's master match EQ: one peak band per 1/3-octave analysis band, so every song lands
# on the album curve band by band (the half-octave EQ of a single master follows only its
# outline: 5-6 dB of tonal spread was left across an album, more than half of Matchering's)
ALBUM_MATCH_EQ = "third-octave"
LIST_SUFFIXES = (".txt", ".m3u", ".m3u8", ".list")


@dataclass
class Song:
    number: int          # 1-based position in the album
    source: Path         # a mix file, or a stems folder
    name: str            # output name: "NN-title", unique
    stems: bool = False


# --- inputs -------------------------------------------------------------------------------------

def _safe(title: str) -> str:
    return re.sub(r"[^\w.+-]+", "_", title).strip("._") or "song"


def collect_songs(inputs, stem_folders: bool = False) -> list[Song]:
    """Songs in order: files as given; a folder's audio files sorted by name (or, with
    ``stem_folders``, each folder is one song's stems); a list file (.txt/.m3u: one path per
    line, relative to the list, '#' comments).  Output names are numbered ("03-title"), so
    equal file names from different folders never collide."""
    from .audio import is_audio_file

    paths: list[tuple[Path, bool]] = []
    for item in inputs:
        p = Path(item)
        if stem_folders:
            if not p.is_dir():
                raise AutomixError(f"{p}: not a folder (with --stem-folders every song is a "
                                   "folder of stems)")
            paths.append((p, True))
        elif p.is_dir():
            found = sorted(q for q in p.iterdir() if q.is_file() and is_audio_file(q)
                           and not q.name.startswith("."))
            if not found:
                raise AutomixError(f"{p}: no audio files in the folder")
            paths += [(q, False) for q in found]
        elif p.suffix.lower() in LIST_SUFFIXES and p.is_file():
            for line in p.read_text(encoding="utf-8", errors="replace").splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    q = Path(line) if Path(line).is_absolute() else p.parent / line
                    paths.append((q, False))
        else:
            paths.append((p, False))  # checked when read: the song fails alone
    if not paths:
        raise AutomixError("no songs given")
    return [Song(i + 1, path, f"{i + 1:02d}-{_safe(path.stem if not st else path.name)}", st)
            for i, (path, st) in enumerate(paths)]


def parse_shard(text: str | None) -> tuple[int, int]:
    if not text:
        return 1, 1
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
        raise AutomixError(f"--shard {text}: write i/n with 1 <= i <= n (e.g. 2/4)")
    return int(m.group(1)), int(m.group(2))


# --- workers (run in child processes) -------------------------------------------------------------

def _worker_init() -> None:
    # two processes on two cores: one thread each (torch's and numba's pools would oversubscribe)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch
    torch.set_num_threads(1)


def analyse_song(song: Song, work_dir: str, reference: str | None, mix_options: dict) -> dict:
    """One song read (stems: mixed first by :func:`automix.mix`, the mix kept in
    ``work_dir``), checked and analysed.  Never raises for the song's own problems: returns
    ``{"ok": False, "error": ...}`` so the rest of the album goes on."""
    from .analysis import analyze
    from .api import neutral_mix
    from .audio import read_audio, write_audio

    try:
        notes = []
        if song.stems:
            if reference is None:
                raise AutomixError("stem folders are mixed to the --reference: give one")
            from .api import mix

            result = mix(song.source, reference, **mix_options)
            mix_path = Path(work_dir) / f"{song.name}.mix.wav"
            write_audio(mix_path, result.mix, result.sample_rate, "float")
            notes += result.notes
        else:
            mix_path = song.source
        audio, sr = read_audio(mix_path)
        stereo, _ = neutral_mix(audio, sr, song.name, Path(mix_path).name)
        features = analyze(stereo, sr)
        if features["silent"] or features["integrated_lufs"] < -70:
            raise AutomixError("the song is silent: nothing to master")
        clipped = int((np.abs(audio) >= 0.9999).sum())
        if clipped > 2:
            notes.append(f"the mix clips ({clipped} samples at full scale)")
        return {"ok": True, "mix_path": str(mix_path), "sample_rate": sr, "features": features,
                "notes": notes}
    except AutomixError as exc:
        return {"ok": False, "error": str(exc)}
    except Exception as exc:  # a decoder crash in one song must not stop the album
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def master_song(song: Song, mix_path: str, goal: dict, ceiling: float, amounts, codecs,
                out_dir: str, bit_depth, formats, match_eq: str = ALBUM_MATCH_EQ) -> dict:
    """One song mastered toward its plan ``goal`` (a reference-features dict) and written as
    ``out_dir/<name>.wav`` (+ formats, + ``<name>.settings.json``).  ``match_eq``: the
    master's match EQ layout (:data:`automix.match.MATCH_EQS`)."""
    from . import analysis, codec_safe
    from .api import master_stage, measure_mix, neutral_mix
    from .audio import read_audio, write_audio
    from .settings import FORMAT, VERSION, save_settings, validate

    try:
        t0 = time.perf_counter()
        audio, sr = read_audio(mix_path)
        stereo, track = neutral_mix(audio, sr, song.name, Path(mix_path).name)
        del audio
        mix_features, spectra = measure_mix(stereo, sr)
        with codec_safe.configured(codecs) as session:
            master, target, final = master_stage(stereo, sr, goal, mix_features,
                                                 goal["integrated_lufs"], ceiling, amounts,
                                                 spectra=spectra, match_eq=match_eq)
        settings = validate({"format": FORMAT, "version": VERSION, "sample_rate": sr,
                             "tracks": [track], "master": master}, "automix")
        after = analysis.analyze(final, sr)
        settings["target"] = {"lufs": target, "true_peak_dbtp": ceiling, "source": "album plan"}
        settings["analysis"] = {"reference": goal, "mix": mix_features, "master": after}
        out = Path(out_dir)
        write_audio(out / f"{song.name}.wav", final, sr, bit_depth)
        if formats:
            from .codecs import DELIVERY_FORMATS, write_delivery
            for fmt in formats:
                write_delivery(out / f"{song.name}{DELIVERY_FORMATS[fmt]}", final, sr, fmt, bit_depth)
        save_settings(out / f"{song.name}.settings.json", settings)
        report = session.reports[-1] if session.reports else None
        notes = list(session.notes)
        if after["integrated_lufs"] < target - 0.5:
            notes.append(f"reads {after['integrated_lufs']:.1f} LUFS, short of its plan "
                         f"{target:.1f} LUFS (the limiter is at its limit)")
        return {"ok": True, "after": after, "before": mix_features, "notes": notes,
                "codec_loop": {k: v for k, v in report.items() if k != "note"} if report else None,
                "seconds": time.perf_counter() - t0, "sample_rate": sr}
    except AutomixError as exc:
        return {"ok": False, "error": str(exc)}
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


class _InProcess:
    """``--jobs 1``: the songs one after another in this process (no start-up of a worker)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    @staticmethod
    def map(fn, *iterables):
        return map(fn, *iterables)


def _pool(jobs: int):
    if jobs == 1:
        return _InProcess()
    # spawned, not forked: this process already runs threads (torch, the background pool)
    return _Pool(jobs, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_init)


class _Pool(ProcessPoolExecutor):
    """A process pool that, left by an error, Ctrl-C or SIGTERM, stops its workers at once
    (instead of waiting for the songs in progress) and drops the songs not started."""

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            return super().__exit__(exc_type, exc, tb)
        for proc in list((self._processes or {}).values()):  # our own children
            proc.terminate()
        self.shutdown(wait=True, cancel_futures=True)
        return False


# --- the plan -------------------------------------------------------------------------------------

def album_curve(features: list[dict]) -> dict:
    """The mean tonal balance of the songs (mid and side, dB re mean band); a band a song
    cannot hold (floored: above its Nyquist, or no side at all) is left out of the mean."""
    from .analysis import BANDS_HZ, FLOOR_DB

    out = {"bands_hz": [float(f) for f in BANDS_HZ]}
    for part in ("mid_db", "side_db"):
        stack = np.array([f["tonal_balance"][part] for f in features], dtype=np.float64)
        stack[stack <= FLOOR_DB + 1] = np.nan
        with warnings.catch_warnings():  # a band no song holds (mono songs' side): floored
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(stack, axis=0) if stack.size else np.array([])
        out[part] = [float(v) if np.isfinite(v) else FLOOR_DB for v in mean]
    return out


def plan(features: list[dict], reference: dict | None, target_lufs: float | None,
         same_loudness: bool = False, window: float = DEFAULT_WINDOW_LU) -> list[dict]:
    """Per song, the features its master aims at (the master stage's ``reference``):
    tonal balance, width, loudness range, PLR and integrated loudness (see the module doc)."""
    from .analysis import FLOOR_DB

    if target_lufs is None:
        target_lufs = reference["integrated_lufs"] if reference else DEFAULT_ALBUM_LUFS
    if reference is not None:
        curve, width = reference["tonal_balance"], reference["width_db"]
        lra, plr = reference["loudness_range_lu"], reference["plr_db"]
    else:
        curve = album_curve(features)
        widths = [f["width_db"] for f in features if f["width_db"] > FLOOR_DB + 1]
        width = float(np.median(widths)) if widths else FLOOR_DB
        lra = float(np.median([f["loudness_range_lu"] for f in features]))
        plr = float(np.median([f["plr_db"] for f in features]))
    loud = np.array([f["integrated_lufs"] for f in features])
    goals = []
    for f, lufs in zip(features, loud):
        offset = 0.0 if same_loudness else float(np.clip(lufs - loud.max(), -window, 0.0))
        goals.append({"integrated_lufs": float(target_lufs + offset), "tonal_balance":
                      copy.deepcopy(curve), "width_db": float(width),
                      "loudness_range_lu": float(lra), "plr_db": float(plr)})
    return goals


# --- sequencing ---------------------------------------------------------------------------------

def _cue_time(seconds: float) -> str:
    frames = int(round(seconds * 75))  # CUE sheets count 75 frames per second
    m, rest = divmod(frames, 75 * 60)
    s, f = divmod(rest, 75)
    return f"{m:02d}:{s:02d}:{f:02d}"


def sequence(masters: list[tuple[str, np.ndarray, int]], gap_s: float, crossfade_s: float,
             title: str = "automix album") -> tuple[np.ndarray, int, str]:
    """The songs (name, audio (2, n), rate) as one programme: ``gap_s`` of silence between
    songs, or overlapped by ``crossfade_s`` with equal-power fades; songs at other rates are
    resampled to the most common one.  Returns (audio, rate, CUE sheet text)."""
    from .audio import resample

    rates = [sr for _, _, sr in masters]
    rate = max(set(rates), key=lambda r: (rates.count(r), r))
    pieces = [(n, resample(a.astype(np.float32), sr, rate).astype(np.float64)) for n, a, sr in masters]
    xf = int(round(crossfade_s * rate))
    gap = int(round(gap_s * rate))
    total = sum(p.shape[1] for _, p in pieces) + (len(pieces) - 1) * (gap - xf)
    out = np.zeros((2, max(total, 1)))
    pos, starts = 0, []
    for k, (name, p) in enumerate(pieces):
        p = p.copy()
        n = p.shape[1]
        f = min(xf, n // 2)
        if f > 0 and k > 0:
            p[:, :f] *= np.sin(np.linspace(0, np.pi / 2, f)) ** 1  # equal power with the cos out
        if f > 0 and k < len(pieces) - 1:
            p[:, n - f:] *= np.cos(np.linspace(0, np.pi / 2, f))
        out[:, pos:pos + n] += p
        starts.append((name, pos / rate))
        pos += n + gap - (xf if k < len(pieces) - 1 else 0)
    lines = [f'TITLE "{title}"', 'FILE "album.wav" WAVE']
    for i, (name, start) in enumerate(starts, 1):
        lines += [f"  TRACK {i:02d} AUDIO", f'    TITLE "{name}"',
                  f"    INDEX 01 {_cue_time(start)}"]
    return out, rate, "\n".join(lines) + "\n"


# --- the command --------------------------------------------------------------------------------

def _summary(f: dict) -> dict:
    return {"lufs": f["integrated_lufs"], "true_peak_dbtp": f["true_peak_dbtp"],
            "lra_lu": f["loudness_range_lu"], "plr_db": f["plr_db"], "width_db": f["width_db"],
            "mid_db": f["tonal_balance"]["mid_db"], "side_db": f["tonal_balance"]["side_db"]}


def spreads(summaries: list[dict]) -> dict:
    """Album consistency: max - min across songs of loudness and width, and the tonal spread:
    the mean over bands of (max - min) of the mid curves (bands every song holds)."""
    from .analysis import FLOOR_DB

    if not summaries:
        return {}
    mids = np.array([s["mid_db"] for s in summaries])
    keep = (mids > FLOOR_DB + 1).all(axis=0)
    widths = [s["width_db"] for s in summaries if s["width_db"] > FLOOR_DB + 1]
    return {"loudness_lu": float(np.ptp([s["lufs"] for s in summaries])),
            "tone_db": float(np.ptp(mids[:, keep], axis=0).mean()) if keep.any() else 0.0,
            "width_db": float(np.ptp(widths)) if widths else 0.0,
            "lra_lu": float(np.ptp([s["lra_lu"] for s in summaries]))}


def run(args, progress=print) -> int:
    """``automix album`` (see :func:`automix.cli.cmd_album` for the options)."""
    from .api import Amounts
    from .codecs import parse_formats
    from .delivery import resolve
    from .outdir import OutputFolder

    songs = collect_songs(args.songs, args.stem_folders)
    shard, shards = parse_shard(args.shard)
    if args.sequence and shards > 1:
        raise AutomixError("--sequence needs the whole album: run it without --shard")
    if args.window < 0:
        raise AutomixError(f"--window {args.window}: a loudness window is >= 0 LU")
    if args.gap < 0 or args.crossfade < 0:
        raise AutomixError("--gap and --crossfade are seconds >= 0")
    delivery = resolve(args.platform, args.target_lufs, args.ceiling, args.bit_depth, args.codecs)
    formats = parse_formats(args.formats)
    amounts = Amounts(tone=args.tone, width=args.width, dynamics=args.dynamics,
                      loudness=args.loudness)
    from .match import MATCH_EQS
    match_eq = getattr(args, "match_eq", ALBUM_MATCH_EQ)
    if match_eq not in MATCH_EQS:
        raise AutomixError(f"--match-eq {match_eq}: choose one of {', '.join(MATCH_EQS)}")
    mine = [s for s in songs if (s.number - 1) % shards == shard - 1]
    from .codecs import DELIVERY_FORMATS
    names = [f"{s.name}{ext}" for s in mine for ext in
             [".wav", ".settings.json"] + [DELIVERY_FORMATS[f] for f in formats]]
    names += ["album.json", "album.html"] + (["album.wav", "album.cue"] if args.sequence else [])
    inputs = [s.source for s in songs] + ([Path(args.reference)] if args.reference else [])
    jobs = max(1, min(args.jobs or os.cpu_count() or 1, len(songs)))
    t0 = time.perf_counter()
    with OutputFolder(args.output, names, args.force, inputs) as folder:
        ref_features, ref_notes = None, []
        if args.reference:
            from .api import load_reference
            from .analysis import analyze
            audio, sr, ref_notes = load_reference(args.reference)
            from .audio import to_stereo
            ref_features = analyze(to_stereo(audio), sr)
            del audio
        work = folder.path("")  # stem mixes are made in the staging folder (not kept)
        mix_options = {"target_lufs": None, "ceiling": delivery.ceiling, "model": args.model}
        with _pool(jobs) as pool:
            progress(f"analysing {len(songs)} songs on {jobs} processes")
            found = list(pool.map(analyse_song, songs, [str(work)] * len(songs),
                                  [args.reference] * len(songs), [mix_options] * len(songs)))
            ok = [(s, r) for s, r in zip(songs, found) if r["ok"]]
            if not ok:
                raise AutomixError("no song could be read: " + "; ".join(
                    f"{s.source}: {r['error']}" for s, r in zip(songs, found)))
            goals = plan([r["features"] for _, r in ok], ref_features, delivery.target_lufs,
                         args.same_loudness, args.window)
            goal_of = {s.number: g for (s, _), g in zip(ok, goals)}
            todo = [(s, r) for s, r in ok if s in mine]
            progress(f"mastering {len(todo)} songs")
            results = list(pool.map(
                master_song, [s for s, _ in todo], [r["mix_path"] for _, r in todo],
                [goal_of[s.number] for s, _ in todo], [delivery.ceiling] * len(todo),
                [amounts] * len(todo), [delivery.codecs] * len(todo),
                [str(work)] * len(todo), [delivery.bit_depth] * len(todo),
                [formats] * len(todo), [match_eq] * len(todo)))
        by_number = {s.number: r for (s, _), r in zip(todo, results)}
        rows, failed = [], []
        for s, r in zip(songs, found):
            if s not in mine:
                continue
            done = by_number.get(s.number)
            if not r["ok"] or not done["ok"]:
                failed.append((s, r.get("error") or done["error"]))
                continue
            rows.append({"number": s.number, "name": s.name, "source": str(s.source),
                         "sample_rate": done["sample_rate"], "plan_lufs": goal_of[s.number][
                             "integrated_lufs"], "before": _summary(r["features"]),
                         "after": _summary(done["after"]), "notes": r["notes"] + done["notes"],
                         "codec_loop": done["codec_loop"], "seconds": done["seconds"]})
        for s in songs:  # stem mixes were work files only
            p = folder.path(f"{s.name}.mix.wav")
            if p.exists():
                p.unlink()
        doc = {"songs": rows, "failed": [{"number": s.number, "source": str(s.source),
                                          "error": e} for s, e in failed],
               "shard": f"{shard}/{shards}", "plan": {
                   "target_lufs": delivery.target_lufs if delivery.target_lufs is not None else
                   (ref_features["integrated_lufs"] if ref_features else DEFAULT_ALBUM_LUFS),
                   "same_loudness": bool(args.same_loudness), "window_lu": args.window,
                   "curve": "reference" if ref_features else "album mean",
                   "match_eq": match_eq,
                   "ceiling_dbtp": delivery.ceiling, "codecs": list(delivery.codecs),
                   "platform": delivery.platform.name if delivery.platform else None},
               "spread_before": spreads([r["before"] for r in rows]),
               "spread_after": spreads([r["after"] for r in rows]),
               "notes": ref_notes + delivery.notes(ref_features),
               "seconds": time.perf_counter() - t0, "jobs": jobs}
        if args.sequence and rows:
            from .audio import read_audio, write_audio
            masters = []
            for r in rows:
                a, sr = read_audio(folder.path(f"{r['name']}.wav"))
                masters.append((r["name"], a, sr))
            album, rate, cue = sequence(masters, args.gap, args.crossfade)
            write_audio(folder.path("album.wav"), album, rate, delivery.bit_depth)
            folder.path("album.cue").write_text(cue, encoding="utf-8")
        folder.path("album.json").write_text(json.dumps(doc, indent=1), encoding="utf-8")
        from .album_report import write_album_html
        write_album_html(folder.path("album.html"), doc, ref_features)
        folder.commit()
    for n in doc["notes"]:
        print(f"note: {n}", file=sys.stderr)
    for r in rows:
        for n in r["notes"]:
            print(f"note: {r['name']}: {n}", file=sys.stderr)
    print(format_table(doc))
    for s, e in failed:
        print(f"automix: song {s.number} failed ({s.source}): {e}", file=sys.stderr)
    print(f"wrote {len(rows)} masters to {folder.out}" + (f"; {len(failed)} songs failed"
                                                           if failed else ""))
    return PARTIAL_EXIT if failed else 0


def format_table(doc: dict) -> str:
    lines = [f"{'song':<28}{'LUFS before':>12}{'after':>8}{'plan':>8}{'width b/a':>14}"
             f"{'TP after':>10}"]
    for r in doc["songs"]:
        b, a = r["before"], r["after"]
        lines.append(f"{r['name'][:27]:<28}{b['lufs']:>12.1f}{a['lufs']:>8.1f}"
                     f"{r['plan_lufs']:>8.1f}{b['width_db']:>7.1f}/{a['width_db']:<6.1f}"
                     f"{a['true_peak_dbtp']:>10.1f}")
    sb, sa = doc["spread_before"], doc["spread_after"]
    if sb:
        lines.append(f"spread (max-min) before/after: loudness {sb['loudness_lu']:.1f}/"
                     f"{sa['loudness_lu']:.1f} LU, tone {sb['tone_db']:.1f}/{sa['tone_db']:.1f} dB, "
                     f"width {sb['width_db']:.1f}/{sa['width_db']:.1f} dB")
    return "\n".join(lines)
