"""Make multitrack training songs from material that is available offline.

Two sources, mixed by weight (``SynthConfig.sources``):

* ``mma`` -- Musical MIDI Accompaniment (Debian package ``mma``): a random groove from its
  standard library, a random tempo, key, mode and chord progression in a small song form
  (optional intro and ending grooves, a varied groove for the B section), plus a generated lead
  melody over the chords. MMA writes the multitrack MIDI.
* ``music21`` -- a score from the music21 corpus (PyPI ``music21``; Bach chorales by default),
  one part per MIDI channel, transposed, at a random tempo.

Every song then gets random General MIDI instruments per part (within the part's role: a bass
stays a bass), a random drum kit, random channel expression (unbalanced, like raw stems), MIDI
pan and effect sends removed (the console pans; stems stay dry), and is rendered to stems with
:func:`training.midi_render.render_midi`.  Each song folder holds the stems, ``mixture.wav``,
``stems.json`` (levels, labels, the stems-sum check), ``source.mid`` (+ ``source.mma``) and
``provenance.json`` (seed, source, choices, and the copyright files of the material used).

Everything is seeded per song: song ``i`` of seed ``s`` is the same whatever ``-n`` is, so a
dataset can be extended, and an interrupted run resumes (finished songs are kept).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from automix.errors import AutomixError

from .midi_render import (DRUM_CHANNEL, copyright_file, find_soundfont, find_soundfonts,
                          render_midi)

MMA_LIBRARY = Path("/usr/share/mma/lib/stdlib")
MMA_COPYRIGHT = "/usr/share/doc/mma/copyright"

NOTE_NAMES = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
CHORD_INTERVALS = {"": (0, 4, 7), "m": (0, 3, 7), "7": (0, 4, 7, 10), "maj7": (0, 4, 7, 11),
                   "m7": (0, 3, 7, 10), "dim": (0, 3, 6), "sus4": (0, 5, 7)}
PROGRESSIONS = {
    "major": ("I V vi IV", "I IV V I", "vi IV I V", "I vi IV V", "ii7 V7 Imaj7 Imaj7",
              "I IV I V", "I iii IV V", "IV I V vi", "I V IV V", "I bVII IV I",
              "Imaj7 vi7 ii7 V7", "I I IV IV V V I V"),
    "minor": ("i VI III VII", "i iv v i", "i VII VI V7", "i iv VII III", "i VI iv V7",
              "i iv i V7", "i VII i VII", "i i iv iv VI VI V7 V7"),
}
BLUES = "I7 I7 I7 I7 IV7 IV7 I7 I7 V7 IV7 I7 V7"
_ROMAN = {"i": 0, "ii": 1, "iii": 2, "iv": 3, "v": 4, "vi": 5, "vii": 6}

# General MIDI programs by role (0-based program numbers)
BASS_PROGRAMS = (32, 33, 34, 35, 36, 37, 38, 39, 43)
COMP_PROGRAMS = (0, 1, 2, 3, 4, 5, 6, 7, 11, 12, 16, 17, 18, 19, 21, 24, 25, 26, 27, 28, 29, 30,
                 40, 41, 42, 45, 46, 48, 49, 50, 52, 56, 57, 60, 61, 62, 64, 65, 66, 68, 71, 73,
                 80, 81, 88, 89, 90, 91, 94, 95)
LEAD_PROGRAMS = (11, 13, 22, 24, 26, 27, 29, 30, 40, 52, 53, 54, 56, 59, 64, 65, 66, 68, 71, 72,
                 73, 74, 78, 80, 81, 82, 84, 85, 87, 105, 109)
ENSEMBLE_PROGRAMS = {  # music21 parts by register: high -> low
    "high": (40, 52, 53, 56, 60, 64, 65, 68, 71, 72, 73, 74, 6, 19, 0, 11),
    "mid": (41, 42, 52, 53, 57, 60, 61, 65, 66, 69, 71, 19, 0, 4, 24, 46),
    "low": (42, 43, 57, 58, 67, 70, 32, 33, 35, 19, 0, 52),
}
DRUM_KITS = {0: 0.40, 8: 0.12, 16: 0.10, 24: 0.04, 25: 0.04, 32: 0.12, 40: 0.12, 48: 0.06}
_PAN_AND_SENDS = {10, 91, 93}  # pan, reverb send, chorus send: removed (dry, unpanned stems)


@dataclass
class SynthConfig:
    """How ``automix-data synth`` builds songs (``configs/data/synth.yaml``, key ``generate``)."""
    sources: dict = field(default_factory=lambda: {"mma": 0.75, "music21": 0.25})
    sample_rate: int = 44100
    seconds: tuple = (30.0, 75.0)          # target song length (section count is chosen to fit)
    tempo: tuple = (70.0, 160.0)           # bpm, log-uniform (mma); music21 uses 0.6x of it
    keep_program_prob: float = 0.3         # keep the groove's own instrument for a track
    melody_prob: float = 0.85              # add a generated lead melody (mma songs)
    split_drums: bool = True
    music21_composers: tuple = ("bach",)
    soundfont: str | None = None           # None: choose among the GM SoundFonts found
    audio_format: str = "flac"             # flac (small; silence compresses) or wav
    verify: bool = True                    # render the full song a second time to check the stems


# --------------------------------------------------------------------------- helpers

def mma_binary() -> str:
    exe = shutil.which("mma")
    if exe is None:
        raise AutomixError("mma not found; install it (Debian/Ubuntu: apt-get install mma)")
    return exe


@lru_cache(maxsize=4)
def mma_grooves(library: str = str(MMA_LIBRARY)) -> dict[str, list[str]]:
    """Groove names of the MMA library, grouped by file (a family of related grooves)."""
    lib = Path(library)
    if not lib.is_dir():
        raise AutomixError(f"{lib}: MMA groove library not found (apt-get install mma)")
    out: dict[str, list[str]] = {}
    for f in sorted(lib.glob("*.mma")):
        names = re.findall(r"^\s*DefGroove\s+(\S+)", f.read_text(errors="replace"),
                           flags=re.IGNORECASE | re.MULTILINE)
        names = [n for n in names if "metronome" not in n.lower()]
        if names:
            out[f.stem] = names
    if not out:
        raise AutomixError(f"{lib}: no grooves found")
    return out


def _is_main_groove(name: str) -> bool:
    return re.search(r"(intro|end|fill|break)\d*$", name, flags=re.IGNORECASE) is None


def parse_chord(symbol: str, key: int, mode: str) -> tuple[int, str]:
    """A roman-numeral chord (``bVII``, ``ii7``, ``Imaj7``) -> (root pitch class, quality)."""
    m = re.fullmatch(r"(b?)([ivIV]+)(maj7|m7|7|dim|sus4)?", symbol)
    if m is None:
        raise ValueError(symbol)
    flat, numeral, ext = m.groups()
    degree = _ROMAN[numeral.lower()]
    root = (key + SCALES[mode][degree] - (1 if flat else 0)) % 12
    minor = numeral.islower()
    if ext in (None, ""):
        quality = "m" if minor else ""
    elif ext == "7":
        quality = "m7" if minor else "7"
    else:
        quality = ext
    return root, quality


def chord_name(root: int, quality: str) -> str:
    return NOTE_NAMES[root] + quality


def _choice(rng: np.random.Generator, seq):
    return seq[int(rng.integers(len(seq)))]


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


# --------------------------------------------------------------------------- mma songs

def compose_mma(rng: np.random.Generator, cfg: SynthConfig) -> tuple[str, dict]:
    """An MMA song file (text) and what was chosen."""
    grooves = mma_grooves()
    family = _choice(rng, sorted(grooves))
    names = grooves[family]
    main = [n for n in names if _is_main_groove(n)] or names
    groove_a = _choice(rng, main)
    groove_b = _choice(rng, main) if rng.random() < 0.6 else groove_a
    intros = [n for n in names if re.search(r"intro\d*$", n, re.IGNORECASE)]
    endings = [n for n in names if re.search(r"end\d*$", n, re.IGNORECASE)]

    tempo = round(_log_uniform(rng, *cfg.tempo))
    key = int(rng.integers(12))
    mode = "minor" if rng.random() < 0.35 else "major"
    blues = "blues" in family.lower() or (mode == "major" and rng.random() < 0.08)
    prog_a = BLUES if blues else _choice(rng, PROGRESSIONS[mode])
    prog_b = BLUES if blues else _choice(rng, PROGRESSIONS[mode])

    def section(prog: str, bars: int) -> list[str]:
        chords = prog.split()
        return [chords[i % len(chords)] for i in range(bars)]

    sec_bars = 12 if blues else 8
    bar_seconds = 4 * 60.0 / tempo
    target = rng.uniform(*cfg.seconds)
    n_sections = int(np.clip(round(target / (sec_bars * bar_seconds)), 1, 8))
    form = _choice(rng, ("AABA", "ABAB", "AABB", "ABAC", "AAB", "ABA"))
    form = (form * 3)[:n_sections] if n_sections > 1 else "A"
    plan: list[tuple[str, str, list[str]]] = []  # (section label, groove, roman chords)
    if intros and rng.random() < 0.5:
        plan.append(("intro", _choice(rng, intros), section("I" if mode == "major" else "i", 4)))
    for label in form:
        groove = groove_a if label in "AC" else groove_b
        plan.append((label, groove, section(prog_a if label != "B" else prog_b, sec_bars)))
    if endings and rng.random() < 0.5:
        plan.append(("end", _choice(rng, endings), section("I" if mode == "major" else "i", 2)))

    lines = [f"// automix-data synth: groove family {family}", f"Tempo {tempo}"]
    bars: list[dict] = []
    bar = 1
    for label, groove, romans in plan:
        lines.append(f"Groove {groove}")
        for r in romans:
            root, quality = parse_chord(r, key, mode)
            lines.append(f"MidiMark bar{bar}")
            lines.append(f"{bar} {chord_name(root, quality)}")
            bars.append({"bar": bar, "section": label, "roman": r, "root": root, "quality": quality})
            bar += 1
    lines.append("MidiMark end")
    info = {"groove_family": family, "grooves": sorted({g for _, g, _ in plan}), "tempo_bpm": tempo,
            "key": NOTE_NAMES[key], "mode": mode, "form": "".join(p[0][0] if len(p[0]) > 1 else p[0]
                                                                 for p in plan),
            "progressions": sorted({prog_a, prog_b}), "bars": bars}
    return "\n".join(lines) + "\n", info


def run_mma(text: str, workdir: Path) -> Path:
    src = workdir / "source.mma"
    src.write_text(text)
    out = workdir / "source.mid"
    res = subprocess.run([mma_binary(), "-w", "-f", str(out), str(src)], capture_output=True,
                         text=True, cwd=workdir, timeout=120)
    if res.returncode != 0 or not out.is_file():
        msg = [ln for ln in (res.stdout + res.stderr).splitlines() if "PLUGIN" not in ln]
        raise AutomixError(f"mma failed: {msg[-1] if msg else res.returncode}")
    return out


def _markers(mid) -> list[tuple[int, str]]:
    out = []
    for track in mid.tracks:
        tick = 0
        for msg in track:
            tick += msg.time
            if msg.type == "marker":
                out.append((tick, msg.text))
    return sorted(out)


def add_melody(mid, bars: list[dict], key: int, mode: str, rng: np.random.Generator,
               channel: int, program: int) -> int:
    """Append a generated lead line (chord tones on strong beats, steps between) as a new track."""
    import mido

    marks = {text: tick for tick, text in _markers(mid)}
    tpb = mid.ticks_per_beat
    scale = SCALES[mode]
    lo = 57 + int(rng.integers(0, 8))
    pitches = [p for p in range(lo, lo + 20) if (p - key) % 12 in scale]
    events: list[tuple[int, int, object]] = []
    order = 0
    events.append((0, order, mido.Message("program_change", channel=channel, program=program)))
    idx = len(pitches) // 2
    for b, nxt in zip(bars, bars[1:] + [None]):
        if b["section"] in ("intro", "end"):
            continue
        start = marks.get(f"bar{b['bar']}")
        stop = marks.get(f"bar{nxt['bar']}") if nxt else marks.get("end")
        if start is None or stop is None:
            continue
        beats = (stop - start) / tpb
        chord = {(b["root"] + i) % 12 for i in CHORD_INTERVALS[b["quality"]]}
        pos = 0.0
        while pos < beats - 1e-6:
            dur = float(rng.choice([0.5, 1.0, 1.0, 1.5, 2.0], p=[0.3, 0.3, 0.15, 0.1, 0.15]))
            dur = min(dur, beats - pos)
            if rng.random() < 0.18:  # rest
                pos += dur
                continue
            strong = abs(pos - round(pos)) < 1e-6 and int(round(pos)) % 2 == 0
            if strong:  # nearest chord tone to where the line is
                cands = [i for i, p in enumerate(pitches) if p % 12 in chord]
                idx = min(cands, key=lambda i: abs(i - idx) + rng.random() * 1.5) if cands else idx
            else:
                idx = int(np.clip(idx + rng.choice([-2, -1, -1, 1, 1, 2, 0]), 0, len(pitches) - 1))
            vel = int(np.clip(rng.normal(92 if strong else 82, 8), 40, 127))
            t0 = start + int(round(pos * tpb))
            t1 = start + int(round((pos + dur * 0.92) * tpb))
            pitch = pitches[idx]
            events.append((t0, order + 2, mido.Message("note_on", channel=channel, note=pitch, velocity=vel)))
            events.append((max(t1, t0 + 1), order + 1, mido.Message("note_off", channel=channel, note=pitch, velocity=0)))
            order += 3
            pos += dur
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("track_name", name="Melody", time=0))
    last = 0
    for tick, _, msg in sorted(events, key=lambda e: (e[0], e[1])):
        track.append(msg.copy(time=tick - last))
        last = tick
    mid.tracks.append(track)
    return sum(1 for _, _, m in events if m.type == "note_on")


# --------------------------------------------------------------------------- music21 songs

@lru_cache(maxsize=4)
def music21_works(composers: tuple = ("bach",)) -> list[str]:
    try:
        from music21 import corpus
    except ImportError:
        raise AutomixError("music21 is not installed (pip install music21)") from None
    paths: list[str] = []
    for c in composers:
        paths += [str(p) for p in corpus.getComposer(c)]
    paths = sorted(set(p for p in paths if p.endswith((".mxl", ".xml", ".musicxml", ".krn", ".mid"))))
    if not paths:
        raise AutomixError(f"music21 corpus has no works for {', '.join(composers)}")
    return paths


def compose_music21(rng: np.random.Generator, cfg: SynthConfig, workdir: Path) -> tuple[Path, dict]:
    """A corpus score written to MIDI with one part per track; (path, what was chosen)."""
    from music21 import corpus

    works = music21_works(tuple(cfg.music21_composers))
    for _ in range(8):
        work = _choice(rng, works)
        try:
            score = corpus.parse(work)
        except Exception:  # an odd corpus file: take another
            continue
        if 2 <= len(score.parts) <= 8:
            break
    else:
        raise AutomixError("could not find a usable music21 score")
    out = workdir / "source.mid"
    score.write("midi", fp=str(out))
    tempo = round(_log_uniform(rng, *cfg.tempo) * 0.6)
    transpose = int(rng.integers(-5, 7))
    names = [str(p.partName or f"part{i + 1}") for i, p in enumerate(score.parts)]
    rel = work.split("corpus/", 1)[-1]
    return out, {"work": rel, "parts": names, "tempo_bpm": tempo, "transpose": transpose}


# --------------------------------------------------------------------------- MIDI edits

def _role(track_name: str, channel: int, median_pitch: float | None = None) -> str:
    """drums, bass, lead or comp -- from the MMA track name, checked against the register played
    (MMA's "Bass-Trp" is a trumpet line around G4: a comping part, not a bass)."""
    n = track_name.lower()
    if channel == DRUM_CHANNEL:
        return "drums"
    if n == "melody":
        return "lead"
    named_bass = n.startswith(("bass", "walk")) or "bass" in n.split("-")[0]
    if named_bass and (median_pitch is None or median_pitch < 60):  # below C4
        return "bass"
    if median_pitch is not None and median_pitch < 45:              # below A2, whatever its name
        return "bass"
    return "comp"


def edit_midi(mid, rng: np.random.Generator, cfg: SynthConfig, *, tempo_bpm: float | None = None,
              transpose: int = 0, separate_tracks: bool = False, roles: dict | None = None,
              drum_kits: list[int] | None = None) -> dict:
    """Instruments, kit, expression, no pan/sends; optional tempo, transpose, one channel per track.

    Returns the choices made (for provenance).
    """
    import mido

    tracks = list(mid.tracks)
    chosen: dict[str, dict] = {}
    free = [c for c in range(16) if c != DRUM_CHANNEL]
    for ti, track in enumerate(tracks):
        name = next((m.name for m in track if m.type == "track_name"), "")
        chans = sorted({m.channel for m in track if m.type == "note_on"})
        if not chans:
            continue
        new_channel = None
        if separate_tracks and chans != [DRUM_CHANNEL]:
            if not free:
                continue
            new_channel = free.pop(0)
        for ch in chans:
            out_ch = new_channel if new_channel is not None and ch != DRUM_CHANNEL else ch
            pitches = [m.note for m in track if m.type == "note_on" and m.velocity > 0 and m.channel == ch]
            role = (roles or {}).get(ti) or _role(name, ch, float(np.median(pitches)) if pitches else None)
            if role == "drums":
                kits = [k for k in DRUM_KITS if drum_kits is None or k in drum_kits] or [0]
                p = np.array([DRUM_KITS.get(k, 0.05) for k in kits])
                program = int(rng.choice(kits, p=p / p.sum()))
            else:
                pool = {"bass": BASS_PROGRAMS, "lead": LEAD_PROGRAMS}.get(role) or \
                    ENSEMBLE_PROGRAMS.get(role) or COMP_PROGRAMS
                keep = role in ("bass", "comp") and rng.random() < cfg.keep_program_prob
                program = None if keep else int(_choice(rng, pool))
            expression = int(rng.integers(70, 128))
            chosen[f"{ti}:{name or ch}"] = {"channel": out_ch + 1, "role": role, "program": program,
                                            "expression": expression}
            new_track = mido.MidiTrack()
            inserted = False
            carry = 0  # delta time of dropped messages, given to the next one
            for msg in track:
                if carry:
                    msg = msg.copy(time=msg.time + carry)
                    carry = 0
                if not inserted and not msg.is_meta:
                    new_track.append(mido.Message("control_change", channel=out_ch, control=11,
                                                  value=expression, time=msg.time))
                    msg = msg.copy(time=0)
                    inserted = True
                if not msg.is_meta and getattr(msg, "channel", None) == ch:
                    if msg.type == "control_change" and msg.control in _PAN_AND_SENDS:
                        carry = msg.time
                        continue
                    else:
                        if msg.type == "program_change" and program is not None:
                            msg = msg.copy(program=program)
                        elif msg.type in ("note_on", "note_off") and transpose and ch != DRUM_CHANNEL:
                            msg = msg.copy(note=int(np.clip(msg.note + transpose, 0, 127)))
                        if msg.type == "note_on" and msg.velocity > 0 and separate_tracks:
                            msg = msg.copy(velocity=int(np.clip(msg.velocity + rng.normal(0, 6), 20, 127)))
                        msg = msg.copy(channel=out_ch)
                new_track.append(msg)
            if program is not None and not any(m.type == "program_change" for m in new_track):
                new_track.insert(1 if new_track and new_track[0].is_meta else 0,
                                 mido.Message("program_change", channel=out_ch, program=program, time=0))
                # the inserted message takes time 0; following deltas are unchanged
            track = new_track
        mid.tracks[ti] = track
    if tempo_bpm is not None:
        us = int(round(60e6 / tempo_bpm))
        for track in mid.tracks:
            for i, msg in enumerate(track):
                if msg.type == "set_tempo":
                    track[i] = msg.copy(tempo=us)
        if not any(m.type == "set_tempo" for t in mid.tracks for m in t):
            mid.tracks[0].insert(0, mido.MetaMessage("set_tempo", tempo=us, time=0))
    return chosen


def _free_channel(mid) -> int:
    used = {m.channel for t in mid.tracks for m in t if not m.is_meta and hasattr(m, "channel")}
    for c in range(16):
        if c != DRUM_CHANNEL and c not in used:
            return c
    return 0


# --------------------------------------------------------------------------- songs

def song_rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index), 0x5EED]))


def available_sources(cfg: SynthConfig) -> dict[str, float]:
    srcs = {k: float(v) for k, v in dict(cfg.sources).items() if float(v) > 0}
    unknown = set(srcs) - {"mma", "music21"}
    if unknown:
        raise AutomixError(f"unknown synth source(s) {sorted(unknown)}; use mma and/or music21")
    if "mma" in srcs and shutil.which("mma") is None:
        warnings.warn("mma not installed: synth uses music21 only", stacklevel=2)
        srcs.pop("mma")
    if "music21" in srcs:
        import importlib.util

        if importlib.util.find_spec("music21") is None:
            warnings.warn("music21 not installed: synth uses mma only", stacklevel=2)
            srcs.pop("music21")
    if not srcs:
        raise AutomixError("no synth source available: apt-get install mma and/or pip install music21")
    return srcs


def make_song(index: int, out_dir: str | os.PathLike, *, seed: int = 0,
              cfg: SynthConfig | None = None, sources: dict | None = None) -> Path:
    """Make song ``index`` of ``seed`` in ``out_dir/song_<index>`` (kept if already complete)."""
    import mido

    cfg = cfg or SynthConfig()
    out_dir = Path(out_dir)
    name = f"song_{index:05d}"
    final = out_dir / name
    if (final / "provenance.json").is_file():
        return final
    sources = sources or available_sources(cfg)
    rng = song_rng(seed, index)
    kinds = sorted(sources)
    p = np.array([sources[k] for k in kinds])
    source = str(rng.choice(kinds, p=p / p.sum()))
    soundfonts = [find_soundfont(cfg.soundfont)] if cfg.soundfont else find_soundfonts()
    if not soundfonts:
        find_soundfont(None)  # raises the clear error
    sf2 = soundfonts[int(rng.integers(len(soundfonts)))]
    from .midi_render import soundfont_presets

    kits = sorted(prog for bank, prog in soundfont_presets(sf2) if bank == 128) or None

    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f".{name}-", dir=out_dir) as tmp:
        work = Path(tmp) / "work"
        work.mkdir()
        provenance: dict = {"generator": "automix-data synth", "seed": int(seed), "index": int(index),
                            "source": source, "soundfont": str(sf2),
                            "copyright": {"soundfont": copyright_file(sf2)}}
        if source == "mma":
            for attempt in range(6):
                text, info = compose_mma(rng, cfg)
                try:
                    midi_path = run_mma(text, work)
                    break
                except (AutomixError, subprocess.TimeoutExpired) as exc:
                    last = exc
            else:
                raise AutomixError(f"{name}: mma failed six times ({last})")
            mid = mido.MidiFile(str(midi_path))
            key = NOTE_NAMES.index(info["key"])
            if rng.random() < cfg.melody_prob:
                ch = _free_channel(mid)
                n = add_melody(mid, info["bars"], key, info["mode"], rng, ch, 0)
                info["melody"] = {"channel": ch + 1, "notes": n}
            info["choices"] = edit_midi(mid, rng, cfg, drum_kits=kits)
            provenance["mma"] = {k: v for k, v in info.items() if k != "bars"}
            provenance["mma"]["chords"] = [chord_name(b["root"], b["quality"]) for b in info["bars"]]
            provenance["copyright"]["mma"] = MMA_COPYRIGHT if Path(MMA_COPYRIGHT).is_file() else None
        else:
            midi_path, info = compose_music21(rng, cfg, work)
            mid = mido.MidiFile(str(midi_path))
            roles = {}
            note_tracks = [i for i, t in enumerate(mid.tracks) if any(m.type == "note_on" for m in t)]
            for j, ti in enumerate(note_tracks):
                frac = j / max(len(note_tracks) - 1, 1)
                roles[ti] = "high" if frac < 0.34 else ("mid" if frac < 0.67 else "low")
            info["choices"] = edit_midi(mid, rng, cfg, tempo_bpm=info["tempo_bpm"],
                                        transpose=info["transpose"], separate_tracks=True, roles=roles)
            provenance["music21"] = info
            provenance["copyright"]["music21"] = _music21_license()
        mid.save(str(work / "source.mid"))
        result = render_midi(work / "source.mid", tmp, soundfont=sf2, sample_rate=cfg.sample_rate,
                             split_drums=cfg.split_drums, audio_format=cfg.audio_format, song_name=name,
                             verify=cfg.verify)
        song_tmp = result.song_dir
        for f in ("source.mid", "source.mma"):
            if (work / f).is_file():
                shutil.copy2(work / f, song_tmp / f)
        stems_json = song_tmp / "stems.json"
        meta = json.loads(stems_json.read_text())
        meta["source_midi"] = "source.mid"
        roles = {int(k.split(":", 1)[0]): v["role"] for k, v in info.get("choices", {}).items()}
        for s in meta["stems"]:  # what the part does in the song beats its GM family
            role = "lead" if s.get("track_name") == "Melody" else roles.get(s.get("track"))
            if role in ("bass", "lead"):
                s["label"] = role
        stems_json.write_text(json.dumps(meta, indent=2) + "\n")
        provenance.update({"seconds": round(result.seconds, 3), "stems": [p.name for p in result.stems],
                           "sum_sdr_db": meta["sum_sdr_db"],
                           "render_seconds": round(time.perf_counter() - t0, 2)})
        (song_tmp / "provenance.json").write_text(json.dumps(provenance, indent=2) + "\n")
        if final.exists():
            shutil.rmtree(final)
        os.replace(song_tmp, final)
    return final


def _music21_license() -> str:
    try:
        from importlib.metadata import distribution
        dist = distribution("music21")
        for f in dist.files or []:
            if f.name.upper().startswith("LICENSE"):
                return str(f.locate())
    except Exception:
        pass
    return "music21 (BSD-3-Clause); corpus scores are public domain or as noted in music21/corpus"


def _make_song_job(args):
    index, out_dir, seed, cfg, sources = args
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            return index, make_song(index, out_dir, seed=seed, cfg=cfg, sources=sources), None, \
                [str(w.message) for w in caught]
        except AutomixError as exc:
            return index, None, str(exc), [str(w.message) for w in caught]


def synth_dataset(n: int, out_dir: str | os.PathLike, *, seed: int = 0, cfg: SynthConfig | None = None,
                  start: int = 0, jobs: int = 1, progress=None) -> list[Path]:
    """Make songs ``start .. start+n-1`` (``jobs`` in parallel processes).

    Songs already complete are kept; a song that fails is skipped with a warning.
    ``progress(done, n, index, path_or_None)`` is called as songs finish.
    """
    if n < 1:
        raise AutomixError("number of songs must be at least 1")
    cfg = cfg or SynthConfig()
    sources = available_sources(cfg)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    jobs_list = [(i, str(out_dir), seed, cfg, sources) for i in range(start, start + n)]
    songs: dict[int, Path] = {}

    def done(result, count):
        index, path, error, messages = result
        for m in messages:
            warnings.warn(m, stacklevel=3)
        if error:
            warnings.warn(f"song {index} skipped: {error}", stacklevel=3)
        else:
            songs[index] = path
        if progress:
            progress(count, n, index, path)

    if jobs <= 1:
        for k, job in enumerate(jobs_list, 1):
            done(_make_song_job(job), k)
    else:
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(_make_song_job, job) for job in jobs_list]
            for k, fut in enumerate(as_completed(futures), 1):
                done(fut.result(), k)
    if not songs:
        raise AutomixError("no song could be made")
    return [songs[i] for i in sorted(songs)]


def config_from_dict(d: dict | None) -> SynthConfig:
    d = dict(d or {})
    known = {f for f in SynthConfig.__dataclass_fields__}
    unknown = set(d) - known
    if unknown:
        raise AutomixError(f"unknown synth setting(s): {', '.join(sorted(unknown))}")
    for k in ("seconds", "tempo", "music21_composers"):
        if k in d and d[k] is not None:
            d[k] = tuple(d[k])
    if "sources" in d:
        d["sources"] = dict(d["sources"])
    return SynthConfig(**d)


__all__ = ["SynthConfig", "make_song", "synth_dataset", "compose_mma", "config_from_dict", "asdict"]
