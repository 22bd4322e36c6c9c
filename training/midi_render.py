"""Render a MIDI file to separate stems with FluidSynth and a General MIDI SoundFont.

A *part* is the notes of one MIDI track on one channel; a drum part (MIDI channel 10) is split
further into kit-piece groups (kick, snare, hi-hat, toms, cymbals, other percussion) when it uses
more than one group.

How the stems are made (and why they sum to the song):

* libfluidsynth (the library of the Debian ``fluidsynth`` package) is driven in-process through
  ``ctypes``. Every part gets a synth channel of its own (up to 256; drum parts are drum
  channels) and its own stereo output ("audio group"), so ONE pass of ONE synth renders all the
  stems: every voice is computed exactly once, as in a normal render, and only its routing
  differs. Each part receives its own notes plus every non-note event of its original MIDI
  channel from every track (program, bank, volume, expression, pan, sustain, pitch bend,
  pressure), so it plays as it does in the song. Tempo changes are honoured; events land on
  fluidsynth's 64-sample blocks.
* A second synth renders the same events into a single stereo output: the full render. The sum
  of the stems is checked against it (``sum_sdr_db`` in ``stems.json``; float rounding only,
  typically > 120 dB). The full render is written as ``mixture.wav``/``.flac``. (``verify=False``
  skips it and writes the sum of the stems instead, at half the cost.)
* Why not one ``fluidsynth -F`` run per part: FluidSynth ramps a new voice's output gain from
  whatever the previous voice in the same slot left behind, so a part rendered alone starts its
  notes slightly differently than inside the song; summed stems then miss the full render by
  only ~40-70 dB SDR. Rendering all parts in one synth avoids that, and is several times faster.
* Reverb and chorus are off (stems stay dry and the sum stays exact). Levels are kept as the MIDI
  has them: the only gain is ONE factor for the whole song (full render peak at ``peak_db``),
  never per stem. A stem whose two channels are identical is written as mono.

Two deliberate differences from playing the file through ``fluidsynth`` on the command line:
tracks that share a channel become separate parts (they no longer cut each other's repeated
notes), and system-exclusive messages are ignored (a GM/GS reset would undo the drum-channel
assignment of the split kit pieces).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import re
import subprocess
import tempfile
import threading
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from automix.errors import AutomixError

DRUM_CHANNEL = 9  # MIDI channel 10

# General MIDI percussion key map -> kit-piece groups.  Keys of one exclusive class
# (closed/pedal/open hi-hat; short/long whistle, guiro; mute/open cuica, triangle) stay together.
DRUM_GROUPS: dict[str, frozenset[int]] = {
    "kick": frozenset({35, 36}),
    "snare": frozenset({37, 38, 39, 40}),       # side stick, snare, hand clap, electric snare
    "hihat": frozenset({42, 44, 46}),
    "toms": frozenset({41, 43, 45, 47, 48, 50}),
    "cymbals": frozenset({49, 51, 52, 53, 55, 57, 59}),
}
DRUM_OTHER = "percussion"  # every other key (tambourine, cowbell, congas, ...)

GM_FAMILIES = ("piano", "chromatic_percussion", "organ", "guitar", "bass", "strings", "ensemble",
               "brass", "reed", "pipe", "synth_lead", "synth_pad", "synth_effects", "ethnic",
               "percussive", "sound_effects")

GM_PROGRAMS = (
    "acoustic grand piano", "bright acoustic piano", "electric grand piano", "honky-tonk piano",
    "electric piano 1", "electric piano 2", "harpsichord", "clavinet", "celesta", "glockenspiel",
    "music box", "vibraphone", "marimba", "xylophone", "tubular bells", "dulcimer", "drawbar organ",
    "percussive organ", "rock organ", "church organ", "reed organ", "accordion", "harmonica",
    "tango accordion", "acoustic guitar nylon", "acoustic guitar steel", "electric guitar jazz",
    "electric guitar clean", "electric guitar muted", "overdriven guitar", "distortion guitar",
    "guitar harmonics", "acoustic bass", "electric bass finger", "electric bass pick",
    "fretless bass", "slap bass 1", "slap bass 2", "synth bass 1", "synth bass 2", "violin", "viola",
    "cello", "contrabass", "tremolo strings", "pizzicato strings", "orchestral harp", "timpani",
    "string ensemble 1", "string ensemble 2", "synth strings 1", "synth strings 2", "choir aahs",
    "voice oohs", "synth voice", "orchestra hit", "trumpet", "trombone", "tuba", "muted trumpet",
    "french horn", "brass section", "synth brass 1", "synth brass 2", "soprano sax", "alto sax",
    "tenor sax", "baritone sax", "oboe", "english horn", "bassoon", "clarinet", "piccolo", "flute",
    "recorder", "pan flute", "blown bottle", "shakuhachi", "whistle", "ocarina", "lead square",
    "lead sawtooth", "lead calliope", "lead chiff", "lead charang", "lead voice", "lead fifths",
    "lead bass and lead", "pad new age", "pad warm", "pad polysynth", "pad choir", "pad bowed",
    "pad metallic", "pad halo", "pad sweep", "fx rain", "fx soundtrack", "fx crystal",
    "fx atmosphere", "fx brightness", "fx goblins", "fx echoes", "fx sci-fi", "sitar", "banjo",
    "shamisen", "koto", "kalimba", "bagpipe", "fiddle", "shanai", "tinkle bell", "agogo",
    "steel drums", "woodblock", "taiko drum", "melodic tom", "synth drum", "reverse cymbal",
    "guitar fret noise", "breath noise", "seashore", "bird tweet", "telephone ring", "helicopter",
    "applause", "gunshot")
assert len(GM_PROGRAMS) == 128

# Smallest first: tests and the synth prefer the 6 MB TimGM6mb over the 140 MB FluidR3.
SOUNDFONT_CANDIDATES = (
    "/usr/share/sounds/sf2/TimGM6mb.sf2",
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/soundfonts/default.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2",
)
_KNOWN_COPYRIGHT = {
    "TimGM6mb.sf2": "/usr/share/doc/timgm6mb-soundfont/copyright",
    "FluidR3_GM.sf2": "/usr/share/doc/fluid-soundfont-gm/copyright",
}
_NOTE_TYPES = ("note_on", "note_off", "polytouch")
_TAIL_SECONDS = 3.0         # rendered after the last event (releases); trailing silence is cut
_SILENCE_DB = -100.0        # a stem quieter than this (peak) is dropped; the tail is cut there
_SUM_SDR_WARN_DB = 40.0
_BLOCK = 1 << 16            # samples per fluid_synth_process call at most
_IN_MEMORY_BYTES = 1 << 30  # larger stem sets are rendered into a memory-mapped temp file


# --------------------------------------------------------------------------- discovery

def find_soundfonts() -> list[Path]:
    """All General MIDI SoundFonts found in the usual system places, smallest first, deduplicated."""
    seen: dict[Path, Path] = {}
    for cand in SOUNDFONT_CANDIDATES:
        p = Path(cand)
        if p.is_file():
            seen.setdefault(p.resolve(), p)
    for folder in ("/usr/share/sounds/sf2", "/usr/share/soundfonts"):
        for p in sorted(Path(folder).glob("*.sf2")) if Path(folder).is_dir() else []:
            seen.setdefault(p.resolve(), p)
    return sorted(seen.keys(), key=lambda p: p.stat().st_size)


def find_soundfont(explicit: str | os.PathLike | None = None) -> Path:
    """The SoundFont to use: ``explicit``, else $AUTOMIX_SOUNDFONT, else the smallest on the system."""
    for cand in (explicit, os.environ.get("AUTOMIX_SOUNDFONT") or None):
        if cand is not None:
            p = Path(cand)
            if not p.is_file():
                raise AutomixError(f"{p}: no such SoundFont file")
            return p
    found = find_soundfonts()
    if not found:
        raise AutomixError(
            "no General MIDI SoundFont found; install one (apt-get install timgm6mb-soundfont "
            "or fluid-soundfont-gm) or pass --soundfont FILE.sf2")
    return found[0]


def soundfont_presets(path: str | os.PathLike) -> list[tuple[int, int]]:
    """(bank, program) of every preset in an SF2 file (reads only the preset headers)."""
    import struct

    out: list[tuple[int, int]] = []
    try:
        with open(path, "rb") as f:
            riff, size, kind = struct.unpack("<4sI4s", f.read(12))
            if riff != b"RIFF" or kind != b"sfbk":
                return out
            while f.tell() < size + 8:
                head = f.read(8)
                if len(head) < 8:
                    break
                cid, csz = struct.unpack("<4sI", head)
                start = f.tell()
                if cid == b"LIST" and f.read(4) == b"pdta":
                    while f.tell() < start + csz:
                        sid, ssz = struct.unpack("<4sI", f.read(8))
                        if sid == b"phdr":
                            data = f.read(ssz)
                            for i in range(ssz // 38 - 1):  # the last record is the terminal EOP
                                prog, bank = struct.unpack("<HH", data[i * 38 + 20:i * 38 + 24])
                                out.append((bank, prog))
                            return out
                        f.seek(ssz + (ssz & 1), 1)
                f.seek(start + csz + (csz & 1))
    except (OSError, struct.error):
        return out
    return out


def copyright_file(path: str | os.PathLike) -> str | None:
    """The Debian copyright file of the package that ships ``path`` (None if unknown)."""
    path = Path(path)
    try:
        out = subprocess.run(["dpkg", "-S", str(path.resolve())], capture_output=True, text=True,
                             timeout=10)
        if out.returncode == 0 and ":" in out.stdout:
            pkg = out.stdout.split(":", 1)[0].strip().split(",")[0].strip()
            doc = Path("/usr/share/doc") / pkg / "copyright"
            if doc.is_file():
                return str(doc)
    except (OSError, subprocess.SubprocessError):
        pass
    known = _KNOWN_COPYRIGHT.get(path.resolve().name)
    return known if known and Path(known).is_file() else None


# --------------------------------------------------------------------------- MIDI parts

@dataclass
class Part:
    """The notes of one track on one channel (one kit-piece group for drums)."""
    track: int
    channel: int
    drum_group: str | None
    notes: int
    program: int
    track_name: str
    name: str = ""
    label: str = ""
    family: str = ""
    first_tick: int = 0

    @property
    def is_drums(self) -> bool:
        return self.channel == DRUM_CHANNEL


def load_midi(path: str | os.PathLike):
    import mido

    path = Path(path)
    if not path.is_file():
        raise AutomixError(f"{path}: no such MIDI file")
    try:
        mid = mido.MidiFile(str(path), clip=True)
    except Exception as exc:
        raise AutomixError(f"{path}: cannot read MIDI ({str(exc).strip() or type(exc).__name__})") from None
    if mid.type == 2:
        raise AutomixError(f"{path}: MIDI type 2 (independent sequences) is not supported")
    return mid


def _absolute(track) -> list[tuple[int, object]]:
    out, tick = [], 0
    for msg in track:
        tick += msg.time
        out.append((tick, msg))
    return out


def drum_group(note: int) -> str:
    for name, keys in DRUM_GROUPS.items():
        if note in keys:
            return name
    return DRUM_OTHER


def find_parts(mid, split_drums: bool = True) -> list[Part]:
    """The parts of a MIDI file in track order, named uniquely (``stems`` file names)."""
    tracks = [_absolute(t) for t in mid.tracks]
    # program per channel over time, from any track (a channel's state is global)
    programs: dict[int, list[tuple[int, int]]] = {}
    for events in tracks:
        for tick, msg in events:
            if msg.type == "program_change":
                programs.setdefault(msg.channel, []).append((tick, msg.program))
    for ch in programs:
        programs[ch].sort(key=lambda x: x[0])

    parts: list[Part] = []
    for ti, events in enumerate(tracks):
        track_name = next((m.name for _, m in events if m.type == "track_name"), "").strip()
        counts: dict[tuple[int, str | None], list[int]] = {}
        for tick, msg in events:
            if msg.type == "note_on" and msg.velocity > 0:
                group = None
                if msg.channel == DRUM_CHANNEL and split_drums:
                    group = drum_group(msg.note)
                key = (msg.channel, group)
                counts.setdefault(key, [0, tick])[0] += 1
        # a drum part that uses one group only stays one "drums" stem
        drum_keys = [k for k in counts if k[0] == DRUM_CHANNEL]
        if len(drum_keys) == 1 and drum_keys[0][1] is not None:
            counts[(DRUM_CHANNEL, None)] = counts.pop(drum_keys[0])
        for (ch, group), (n, first) in counts.items():
            prog = 0
            for tick, p in programs.get(ch, []):
                if tick <= first:
                    prog = p
            parts.append(Part(track=ti, channel=ch, drum_group=group, notes=n, program=prog,
                              track_name=track_name, first_tick=first))
    order = list(DRUM_GROUPS) + [DRUM_OTHER]
    parts.sort(key=lambda p: (p.track, p.channel,
                              order.index(p.drum_group) if p.drum_group in order else -1))
    _name_parts(parts)
    return parts


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "part"


def _name_parts(parts: list[Part]) -> None:
    used: dict[str, int] = {}
    for p in parts:
        if p.is_drums:
            p.family = "drums"
            p.label = p.drum_group or "drums"
            base = "drums" if p.drum_group is None else f"drums_{p.drum_group}"
        else:
            p.family = GM_FAMILIES[p.program // 8]
            p.label = p.family
            base = _slug(GM_PROGRAMS[p.program])
        used[base] = used.get(base, 0) + 1
        p.name = base if used[base] == 1 else f"{base}_{used[base]}"


class _TempoMap:
    """Ticks -> seconds for one MIDI file (tempo events from every track)."""

    def __init__(self, mid):
        changes: dict[int, int] = {}
        for events in (_absolute(t) for t in mid.tracks):
            for tick, msg in events:
                if msg.type == "set_tempo":
                    changes[tick] = msg.tempo
        self.tpb = mid.ticks_per_beat
        ticks = [0] + sorted(t for t in changes if t > 0)
        tempos = [changes.get(0, 500000)] + [changes[t] for t in ticks[1:]]
        secs = [0.0]
        for i in range(1, len(ticks)):
            secs.append(secs[-1] + (ticks[i] - ticks[i - 1]) * tempos[i - 1] / 1e6 / self.tpb)
        self.ticks, self.tempos, self.secs = ticks, tempos, secs

    def _seg(self, tick: float) -> int:
        import bisect
        return max(bisect.bisect_right(self.ticks, tick) - 1, 0)

    def seconds(self, tick: int) -> float:
        i = self._seg(tick)
        return self.secs[i] + (tick - self.ticks[i]) * self.tempos[i] / 1e6 / self.tpb


# --------------------------------------------------------------------------- libfluidsynth

_LIB = None
_LIB_LOCK = threading.Lock()


def _fluidsynth_lib():
    """libfluidsynth (2.x) through ctypes, with the few functions used here typed."""
    global _LIB
    with _LIB_LOCK:
        if _LIB is not None:
            return _LIB
        name = ctypes.util.find_library("fluidsynth")
        lib = None
        for cand in (name, "libfluidsynth.so.3", "libfluidsynth.so.2", "libfluidsynth.so"):
            if not cand:
                continue
            try:
                lib = ctypes.CDLL(cand)
                break
            except OSError:
                continue
        if lib is None:
            raise AutomixError("libfluidsynth not found; install FluidSynth "
                               "(Debian/Ubuntu: apt-get install fluidsynth)")
        vp, i, d, cp = ctypes.c_void_p, ctypes.c_int, ctypes.c_double, ctypes.c_char_p
        sigs = {
            "new_fluid_settings": ([], vp), "delete_fluid_settings": ([vp], None),
            "fluid_settings_setint": ([vp, cp, i], i), "fluid_settings_setnum": ([vp, cp, d], i),
            "new_fluid_synth": ([vp], vp), "delete_fluid_synth": ([vp], None),
            "fluid_synth_sfload": ([vp, cp, i], i),
            "fluid_synth_set_channel_type": ([vp, i, i], i),
            "fluid_synth_noteon": ([vp, i, i, i], i), "fluid_synth_noteoff": ([vp, i, i], i),
            "fluid_synth_cc": ([vp, i, i, i], i), "fluid_synth_program_change": ([vp, i, i], i),
            "fluid_synth_pitch_bend": ([vp, i, i], i), "fluid_synth_channel_pressure": ([vp, i, i], i),
            "fluid_synth_key_pressure": ([vp, i, i, i], i),
            "fluid_synth_process": ([vp, i, i, vp, i, vp], i),
            "fluid_set_log_function": ([i, vp, vp], vp),
        }
        try:
            for fn, (args, res) in sigs.items():
                f = getattr(lib, fn)
                f.argtypes, f.restype = args, res
        except AttributeError as exc:
            raise AutomixError(f"libfluidsynth is too old (needs 2.x): {exc}") from None
        for level in (1, 2, 3, 4):  # errors are checked through return codes instead
            lib.fluid_set_log_function(level, None, None)
        _LIB = lib
        return lib


_MESSAGE_CALLS = {
    "note_on": lambda m, ch: ("fluid_synth_noteon", (ch, m.note, m.velocity)) if m.velocity > 0
    else ("fluid_synth_noteoff", (ch, m.note)),
    "note_off": lambda m, ch: ("fluid_synth_noteoff", (ch, m.note)),
    "polytouch": lambda m, ch: ("fluid_synth_key_pressure", (ch, m.note, m.value)),
    "control_change": lambda m, ch: ("fluid_synth_cc", (ch, m.control, m.value)),
    "program_change": lambda m, ch: ("fluid_synth_program_change", (ch, m.program)),
    "pitchwheel": lambda m, ch: ("fluid_synth_pitch_bend", (ch, m.pitch + 8192)),
    "aftertouch": lambda m, ch: ("fluid_synth_channel_pressure", (ch, m.value)),
}


def schedule(mid, parts: list[Part], sample_rate: int) -> tuple[list[tuple[int, str, tuple]], int]:
    """Synth calls ``(sample, function, args)`` with part ``i`` on synth channel ``i``.

    Returns the calls in playing order and the sample after the last event.
    """
    tmap = _TempoMap(mid)
    key_of = {(p.track, p.channel, p.drum_group): i for i, p in enumerate(parts)}
    split_tracks = {p.track for p in parts if p.is_drums and p.drum_group is not None}
    by_channel: dict[int, list[int]] = {}
    for i, p in enumerate(parts):
        by_channel.setdefault(p.channel, []).append(i)
    calls: list[tuple[int, int, int, str, tuple]] = []
    last = 0
    for ti, track in enumerate(mid.tracks):
        for k, (tick, msg) in enumerate(_absolute(track)):
            if msg.is_meta or msg.type not in _MESSAGE_CALLS:
                last = max(last, tick) if msg.is_meta and msg.type != "end_of_track" else last
                continue  # sysex, clock, ... are not sent (see the module notes)
            last = max(last, tick)
            if msg.type in _NOTE_TYPES:
                group = drum_group(msg.note) if (msg.channel == DRUM_CHANNEL and ti in split_tracks) else None
                target = key_of.get((ti, msg.channel, group))
                targets = [] if target is None else [target]
            else:
                targets = by_channel.get(msg.channel, [])
            if not targets:
                continue
            sample = int(round(tmap.seconds(tick) * sample_rate))
            for t in targets:
                fn, args = _MESSAGE_CALLS[msg.type](msg, t)
                calls.append((sample, ti, k, fn, args))
    calls.sort(key=lambda c: (c[0], c[1], c[2]))
    end = int(round(tmap.seconds(last) * sample_rate))
    return [(c[0], c[3], c[4]) for c in calls], end


def _synth_render(calls, n_parts: int, drums: list[bool], total: int, soundfont: Path,
                  sample_rate: int, gain: float, out: np.ndarray) -> None:
    """Render ``calls`` into ``out``: ``(n_parts, 2, total)`` (one group per part) or ``(1, 2, total)``."""
    lib = _fluidsynth_lib()
    groups = out.shape[0]
    channels = 16 * ((n_parts + 15) // 16)
    if channels > 256:
        raise AutomixError(f"{n_parts} parts: FluidSynth plays at most 256 channels")
    settings = lib.new_fluid_settings()
    synth = None
    try:
        for key, val in (("synth.midi-channels", channels), ("synth.audio-groups", groups),
                         ("synth.audio-channels", groups), ("synth.polyphony", 4096),
                         ("synth.reverb.active", 0), ("synth.chorus.active", 0), ("synth.cpu-cores", 1)):
            if lib.fluid_settings_setint(settings, key.encode(), int(val)) != 0:
                raise AutomixError(f"FluidSynth refused setting {key}={val}")
        lib.fluid_settings_setnum(settings, b"synth.sample-rate", float(sample_rate))
        lib.fluid_settings_setnum(settings, b"synth.gain", float(gain))
        synth = lib.new_fluid_synth(settings)
        if not synth:
            raise AutomixError("FluidSynth could not start a synthesizer")
        if lib.fluid_synth_sfload(synth, str(soundfont).encode(), 1) < 0:
            raise AutomixError(f"{soundfont}: FluidSynth cannot load this SoundFont")
        for ch in range(channels):  # the type first: program 0 then picks the drum bank (128)
            lib.fluid_synth_set_channel_type(synth, ch, 1 if ch < n_parts and drums[ch] else 0)
            lib.fluid_synth_program_change(synth, ch, 0)
        scratch = np.zeros((4, _BLOCK), np.float32)  # reverb/chorus outputs (both off)
        fx = (ctypes.c_void_p * 4)(*[scratch[k].ctypes.data for k in range(4)])
        base = out.ctypes.data
        rows = out.shape[0] * 2
        ptrs = (ctypes.c_void_p * rows)()
        pos = 0

        def run(n: int) -> None:
            nonlocal pos
            while n > 0:
                step = min(n, _BLOCK)
                for r in range(rows):
                    ptrs[r] = base + (r * total + pos) * 4
                if lib.fluid_synth_process(synth, step, 4, fx, rows, ptrs) != 0:
                    raise AutomixError("FluidSynth failed while rendering")
                pos += step
                n -= step

        for sample, fn, args in calls:
            if sample > pos:
                run(min(sample, total) - pos)
            getattr(lib, fn)(synth, *args)
        run(total - pos)
    finally:
        if synth:
            lib.delete_fluid_synth(synth)
        lib.delete_fluid_settings(settings)


def render_parts(mid, parts: list[Part], soundfont: Path, sample_rate: int, *, gain: float = 0.2,
                 tail_seconds: float = _TAIL_SECONDS, workdir: Path | None = None,
                 verify: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Stems ``(parts, 2, n)`` and the full render ``(2, n)``, float32, trailing silence cut.

    ``verify=False`` skips the second synth: the full render is then the sum of the stems (what
    the second synth gives up to float rounding, as the tests check), at half the cost.
    Stems of more than ``_IN_MEMORY_BYTES`` live in a memory-mapped file under ``workdir``.
    """
    calls, end = schedule(mid, parts, sample_rate)
    total = end + int(round(tail_seconds * sample_rate))
    if workdir is not None and len(parts) * 2 * total * 4 > _IN_MEMORY_BYTES:
        stems = np.lib.format.open_memmap(Path(workdir) / "stems.npy", mode="w+", dtype=np.float32,
                                          shape=(len(parts), 2, total))
    else:
        stems = np.zeros((len(parts), 2, total), np.float32)
    full = np.zeros((1, 2, total), np.float32)
    drums = [p.is_drums for p in parts]
    errors: list[BaseException] = []

    def job(out):
        try:
            _synth_render(calls, len(parts), drums, total, soundfont, sample_rate, gain, out)
        except BaseException as exc:  # re-raised in the caller
            errors.append(exc)

    if verify:
        # One synth after the other: two libfluidsynth synths rendering side by side in threads
        # occasionally disagreed (CI saw a -10 dB stems-vs-full SDR once in ~10 runs), which
        # points at state the library shares between synths.
        job(full)
        job(stems)
    else:
        job(stems)
        for st in stems:
            full[0] += st
    if errors:
        raise errors[0]
    full = full[0]
    floor = 10 ** (_SILENCE_DB / 20)
    loud = np.flatnonzero(np.abs(full).max(axis=0) > floor)
    n = int(loud[-1]) + 1 + int(0.05 * sample_rate) if loud.size else total
    n = min(n, total)
    return stems[:, :, :n], full[:, :n]


# --------------------------------------------------------------------------- files

def sdr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    ref = np.asarray(reference, np.float64)
    err = float(np.sum((ref - np.asarray(estimate, np.float64)) ** 2))
    sig = float(np.sum(ref ** 2))
    if err == 0:
        return float("inf")
    return float(10 * np.log10(max(sig, 1e-30) / err))


def _db(x: float) -> float:
    return float(20 * np.log10(max(float(x), 1e-10)))


def _write(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    """24-bit WAV or FLAC, written block by block (atomic: temp file renamed at the end)."""
    fmt = {".wav": "WAV", ".flac": "FLAC"}[path.suffix.lower()]
    tmp = path.with_name(f".{path.name}.tmp")
    with sf.SoundFile(str(tmp), "w", samplerate=sample_rate, channels=audio.shape[0],
                      subtype="PCM_24", format=fmt) as f:
        for start in range(0, audio.shape[1], _BLOCK * 4):
            f.write(np.clip(audio[:, start:start + _BLOCK * 4].T, -1.0, 1.0))
    os.replace(tmp, path)


@dataclass
class RenderResult:
    song_dir: Path
    stems: list[Path]
    seconds: float
    sum_sdr_db: float
    parts: list[Part] = field(default_factory=list)


def render_midi(midi: str | os.PathLike, out_dir: str | os.PathLike, *,
                soundfont: str | os.PathLike | None = None, sample_rate: int = 44100,
                split_drums: bool = True, write_mixture: bool = True, audio_format: str = "flac",
                peak_db: float | None = -1.0, gain: float = 0.2, tail_seconds: float = _TAIL_SECONDS,
                song_name: str | None = None, extra_info: dict | None = None,
                verify: bool = True) -> RenderResult:
    """Render ``midi`` to ``out_dir/<song>/<stem>.flac`` (+ ``mixture.flac``, ``stems.json``).

    The song folder is in the generic dataset layout. Stems are 24-bit at ``sample_rate``, mono
    when both channels are equal; one gain for the whole song puts the full render's peak at
    ``peak_db`` dBFS (None: FluidSynth's own level, lowered only if it would clip).
    """
    midi = Path(midi)
    if audio_format not in ("flac", "wav"):
        raise AutomixError(f"audio format {audio_format!r}: choose flac or wav")
    sf2 = find_soundfont(soundfont)
    _fluidsynth_lib()
    mid = load_midi(midi)
    parts = find_parts(mid, split_drums=split_drums)
    if not parts:
        raise AutomixError(f"{midi}: the MIDI file holds no notes")
    song_dir = Path(out_dir) / (song_name or _slug(midi.stem))

    with tempfile.TemporaryDirectory(prefix="automix-midi-") as tmp:
        stems, full = render_parts(mid, parts, sf2, sample_rate, gain=gain,
                                   tail_seconds=tail_seconds, workdir=Path(tmp), verify=verify)
        total = np.zeros_like(full, dtype=np.float64)
        for s in stems:
            total += s
        sdr = sdr_db(full, total)
        if verify and sdr < _SUM_SDR_WARN_DB:
            warnings.warn(f"{midi.name}: stems sum to the full render only at {sdr:.1f} dB SDR",
                          stacklevel=2)
        peak = float(np.abs(full).max())
        if peak <= 0:
            raise AutomixError(f"{midi}: the render is silent (does the SoundFont have these instruments?)")
        stem_peaks = [float(np.abs(s).max()) for s in stems]
        scale = 10 ** (peak_db / 20) / peak if peak_db is not None else 1.0
        scale = min(scale, 0.999 / max(stem_peaks + [peak]))  # nothing clips in 24-bit PCM

        song_dir.mkdir(parents=True, exist_ok=True)
        paths, meta = [], []
        for part, audio, pk in zip(parts, stems, stem_peaks):
            if _db(pk) < _SILENCE_DB:
                warnings.warn(f"{midi.name}: part {part.name} renders silent; no stem written",
                              stacklevel=2)
                continue
            mono = bool(np.array_equal(audio[0], audio[1]))
            data = (audio[:1] if mono else audio) * scale
            path = song_dir / f"{part.name}.{audio_format}"
            _write(path, data, sample_rate)
            paths.append(path)
            rms = float(np.sqrt(np.mean(np.square(data, dtype=np.float64))))
            entry = {k: v for k, v in asdict(part).items() if k not in ("name", "first_tick")}
            meta.append({"file": path.name, **entry, "channel": part.channel + 1,
                         "program_name": None if part.is_drums else GM_PROGRAMS[part.program],
                         "channels": 1 if mono else 2, "rms_dbfs": round(_db(rms), 2),
                         "peak_dbfs": round(_db(pk * scale), 2)})
        if write_mixture:
            _write(song_dir / f"mixture.{audio_format}", full * scale, sample_rate)
        seconds = full.shape[1] / sample_rate
        del stems
    info = {
        "format": "automix.stems", "version": 1,
        "source_midi": str(midi), "soundfont": str(sf2), "soundfont_copyright": copyright_file(sf2),
        "renderer": "libfluidsynth, one synth channel and output per part, reverb/chorus off",
        "sample_rate": sample_rate, "seconds": round(seconds, 3),
        "sum_sdr_db": (round(sdr, 2) if np.isfinite(sdr) else None) if verify else None,
        "song_gain_db": round(_db(scale), 3),
        "mixture": f"mixture.{audio_format}" if write_mixture else None, "stems": meta,
    }
    if extra_info:
        info.update(extra_info)
    (song_dir / "stems.json").write_text(json.dumps(info, indent=2) + "\n")
    return RenderResult(song_dir, paths, seconds, sdr, parts)


def render_midi_folder(folder: str | os.PathLike, out_dir: str | os.PathLike, **kwargs) -> list[RenderResult]:
    """Render every ``*.mid``/``*.midi`` under ``folder``; a file that fails is skipped with a warning."""
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".mid", ".midi") and p.is_file())
    if not files:
        raise AutomixError(f"{folder}: no .mid or .midi files found")
    results, names = [], set()
    for f in files:
        name = _slug(str(f.relative_to(folder).with_suffix("")))
        if name in names:
            name = f"{name}_{len(names)}"
        names.add(name)
        try:
            results.append(render_midi(f, out_dir, song_name=name, **kwargs))
        except AutomixError as exc:
            warnings.warn(f"{f}: skipped ({exc})", stacklevel=2)
    if not results:
        raise AutomixError(f"{folder}: none of the {len(files)} MIDI files could be rendered")
    return results
