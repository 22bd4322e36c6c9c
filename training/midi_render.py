"""Render a MIDI file to separate stems with fluidsynth and a General MIDI SoundFont.

A *part* is the notes of one MIDI track on one channel; a drum part (channel 10, index 9) is split
further into kit-piece groups (kick, snare, hi-hat, toms, cymbals, other percussion) when it uses
more than one group.  Each part is written to its own MIDI file that keeps *every* meta and sysex
event of the song (tempo, time signature, resets) and every non-note event of its channel from
every track (program, bank, volume, pan, pitch bend, sustain), so the part plays exactly as it
does in the whole song.  All files, including a copy of the whole song, get the same end time
(the song's end plus a release tail), are rendered with reverb and chorus off, float output,
the same gain and a high polyphony, and then trimmed or padded to one length.  fluidsynth is
linear in its voices, so the stems sum to the full render; the sum is checked (SDR in dB) and
written to ``stems.json``.  Levels are kept as the MIDI has them: one common scale factor is
applied to all stems only if the full render would clip in 24-bit PCM.

Known limits (reported, not hidden): two tracks that share one channel can interact (a note
repeated on the same key releases the previous one), and so can drum notes of one exclusive
class (open/closed hi-hat) -- which is why hi-hats stay in one group.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from automix.audio import write_audio
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
_TAIL_SECONDS = 2.0
_SUM_SDR_WARN_DB = 40.0


# --------------------------------------------------------------------------- discovery

def fluidsynth_binary() -> str:
    exe = shutil.which("fluidsynth")
    if exe is None:
        raise AutomixError("fluidsynth not found; install it (Debian/Ubuntu: apt-get install fluidsynth)")
    return exe


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


def _shared_channels(parts: list[Part]) -> list[int]:
    tracks_of: dict[int, set[int]] = {}
    for p in parts:
        tracks_of.setdefault(p.channel, set()).add(p.track)
    return sorted(ch for ch, ts in tracks_of.items() if len(ts) > 1)


def _end_tick(mid, tail_seconds: float) -> int:
    end, tempos = 0, [(-1, 500000)]
    for events in (_absolute(t) for t in mid.tracks):
        for tick, msg in events:
            if msg.type == "set_tempo":
                tempos.append((tick, msg.tempo))
            end = max(end, tick)
    tempo = max(tempos, key=lambda x: x[0])[1]  # the tempo in force at the end
    tail = int(round(tail_seconds * 1e6 / tempo * mid.ticks_per_beat))
    return end + max(tail, 1)


def part_file(mid, part: Part | None, end_tick: int):
    """A copy of ``mid`` holding only ``part``'s notes (None: all notes), ending at ``end_tick``."""
    import mido

    out = mido.MidiFile(type=mid.type, ticks_per_beat=mid.ticks_per_beat)
    for ti, track in enumerate(mid.tracks):
        new = mido.MidiTrack()
        last = 0
        for tick, msg in _absolute(track):
            if msg.type == "end_of_track":
                continue
            if part is not None and not msg.is_meta and msg.type != "sysex":
                if msg.type in _NOTE_TYPES:
                    keep = (ti == part.track and msg.channel == part.channel and
                            (part.drum_group is None or drum_group(msg.note) == part.drum_group))
                else:  # channel state (program, controllers, bend, pressure) of the part's channel
                    keep = msg.channel == part.channel
                if not keep:
                    continue
            new.append(msg.copy(time=tick - last))
            last = tick
        new.append(mido.MetaMessage("end_of_track", time=max(end_tick - last, 0)))
        out.tracks.append(new)
    return out


# --------------------------------------------------------------------------- normalization

class _TempoMap:
    """Ticks <-> seconds for one MIDI file (tempo events from every track)."""

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

    def tick_at(self, seconds: float) -> int:
        import bisect
        i = max(bisect.bisect_right(self.secs, seconds) - 1, 0)
        return int(np.ceil(self.ticks[i] + (seconds - self.secs[i]) * 1e6 * self.tpb / self.tempos[i] - 1e-9))


def _rebuild(events: list[tuple[int, int, object]]):
    """A track from (tick, order, message) triples (sorted; stable)."""
    import mido

    track, last = mido.MidiTrack(), 0
    for tick, _, msg in sorted(events, key=lambda e: (e[0], e[1])):
        track.append(msg.copy(time=tick - last))
        last = tick
    return track


def extend_short_notes(mid, min_seconds: float = 0.010):
    """Lengthen notes shorter than ``min_seconds`` in the file itself.

    fluidsynth does the same at play time (``synth.min-note-length``), but its bookkeeping
    depends on the other voices of the render, so a stem and the full song would differ; doing
    it in the MIDI and rendering with ``min-note-length=0`` keeps them identical.
    """
    import mido

    tmap = _TempoMap(mid)
    out = mido.MidiFile(type=mid.type, ticks_per_beat=mid.ticks_per_beat)
    for track in mid.tracks:
        events = [[tick, i, msg] for i, (tick, msg) in enumerate(_absolute(track))]
        open_notes: dict[tuple[int, int], list[list]] = {}
        next_on: dict[int, int] = {}  # index of a note-off event -> tick of the next same-key note-on
        for ev in events:
            msg = ev[2]
            if msg.type == "note_on" and msg.velocity > 0:
                key = (msg.channel, msg.note)
                for pending in open_notes.get(key, []):
                    next_on.setdefault(id(pending), ev[0])
                open_notes.setdefault(key, []).append(ev)
            elif msg.type in ("note_off", "note_on"):
                key = (msg.channel, msg.note)
                if open_notes.get(key):
                    on = open_notes[key].pop(0)
                    start = tmap.seconds(on[0])
                    if tmap.seconds(ev[0]) - start < min_seconds:
                        target = tmap.tick_at(start + min_seconds)
                        limit = min((e[0] for e in events if e[0] > on[0] and e[2].type == "note_on"
                                     and e[2].velocity > 0 and (e[2].channel, e[2].note) == key),
                                    default=None)
                        if limit is not None:
                            target = min(target, limit)
                        ev[0] = max(ev[0], target)
        end = [e for e in events if e[2].type == "end_of_track"]
        body = [tuple(e) for e in events if e[2].type != "end_of_track"]
        last = max((e[0] for e in body), default=0)
        track_out = _rebuild(body)
        eot = end[0][0] if end else last
        track_out.append(mido.MetaMessage("end_of_track", time=max(eot, last) - (last if body else 0)))
        out.tracks.append(track_out)
    return out


def separate_shared_channels(mid):
    """Give each track that shares a (non-drum) channel with an earlier track a free channel.

    The moved track takes a copy of every non-note event of its old channel (from all tracks)
    and leaves its own there too, so every channel sees the same program/controller stream as
    before; only collisions between the tracks' notes (same key re-triggered) go away.  Returns
    the new file and the list of (track, old, new) moves.
    """
    import mido

    tracks = [_absolute(t) for t in mid.tracks]
    note_tracks: dict[int, list[int]] = {}
    used = set()
    for ti, events in enumerate(tracks):
        for _, msg in events:
            if not msg.is_meta and hasattr(msg, "channel"):
                used.add(msg.channel)
                if msg.type == "note_on" and ti not in note_tracks.setdefault(msg.channel, []):
                    note_tracks[msg.channel].append(ti)
    free = [c for c in range(16) if c not in used and c != DRUM_CHANNEL]
    moves: list[tuple[int, int, int]] = []
    for ch, tis in sorted(note_tracks.items()):
        if ch == DRUM_CHANNEL:
            continue
        for ti in tis[1:]:
            if not free:
                break
            moves.append((ti, ch, free.pop(0)))
    if not moves:
        return mid, []
    out = mido.MidiFile(type=mid.type, ticks_per_beat=mid.ticks_per_beat)
    for ti, events in enumerate(tracks):
        mine = {old: new for t, old, new in moves if t == ti}
        new_events: list[tuple[int, int, object]] = []
        order = 0
        for tick, msg in events:
            if msg.type == "end_of_track":
                continue
            if not msg.is_meta and getattr(msg, "channel", None) in mine:
                new_ch = mine[msg.channel]
                if msg.type in _NOTE_TYPES:
                    msg = msg.copy(channel=new_ch)
                else:
                    new_events.append((tick, order, msg))
                    order += 1
                    msg = msg.copy(channel=new_ch)
            new_events.append((tick, order, msg))
            order += 1
        # the old channel's state changes made by other tracks, copied onto the new channel
        for old, new_ch in mine.items():
            for tj, other in enumerate(tracks):
                if tj == ti:
                    continue
                for tick, msg in other:
                    if not msg.is_meta and msg.type not in _NOTE_TYPES and getattr(msg, "channel", None) == old:
                        # after this track's own events at the same tick, as the player would
                        # process a later track; before them for an earlier track
                        new_events.append((tick, -1 if tj < ti else 10**9, msg.copy(channel=new_ch)))
        track = _rebuild(new_events)
        last = max((e[0] for e in new_events), default=0)
        eot = events[-1][0] if events else 0
        track.append(mido.MetaMessage("end_of_track", time=max(eot - last, 0)))
        out.tracks.append(track)
    return out, moves


# --------------------------------------------------------------------------- rendering

def fluidsynth_render(midi_path: Path, wav_path: Path, soundfont: Path, sample_rate: int,
                      gain: float = 0.2) -> None:
    """Render one MIDI file to float WAV with reverb and chorus off (deterministic, linear)."""
    cmd = [fluidsynth_binary(), "-q", "-n", "-i", "-R", "0", "-C", "0", "-g", f"{gain}",
           "-r", str(int(sample_rate)), "-O", "float", "-T", "wav",
           "-o", "synth.polyphony=4096", "-o", "synth.min-note-length=0", "-o", "synth.reverb.active=0",
           "-o", "synth.chorus.active=0", "-F", str(wav_path), str(soundfont), str(midi_path)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0 or not wav_path.is_file():
        msg = (res.stderr or res.stdout).strip().splitlines()
        raise AutomixError(f"fluidsynth failed on {midi_path.name}: {msg[-1] if msg else res.returncode}")


def _read_float(path: Path) -> np.ndarray:
    data, _ = sf.read(str(path), dtype="float32", always_2d=True)
    return np.ascontiguousarray(data.T)


def _fit(audio: np.ndarray, n: int) -> np.ndarray:
    if audio.shape[1] >= n:
        return audio[:, :n]
    return np.pad(audio, ((0, 0), (0, n - audio.shape[1])))


def sdr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    ref = reference.astype(np.float64)
    err = np.sum((ref - estimate.astype(np.float64)) ** 2)
    sig = np.sum(ref ** 2)
    if err == 0:
        return float("inf")
    return float(10 * np.log10(max(sig, 1e-30) / err))


def _db(x: float) -> float:
    return float(20 * np.log10(max(x, 1e-10)))


@dataclass
class RenderResult:
    song_dir: Path
    stems: list[Path]
    seconds: float
    sum_sdr_db: float
    parts: list[Part] = field(default_factory=list)


def render_midi(midi: str | os.PathLike, out_dir: str | os.PathLike, *,
                soundfont: str | os.PathLike | None = None, sample_rate: int = 44100,
                split_drums: bool = True, write_mixture: bool = True, jobs: int | None = None,
                tail_seconds: float = _TAIL_SECONDS, gain: float = 0.2, song_name: str | None = None,
                separate_channels: bool = True,
                extra_info: dict | None = None) -> RenderResult:
    """Render ``midi`` to ``out_dir/<song>/<stem>.wav`` (+ ``mixture.wav`` and ``stems.json``).

    The song folder is in the generic dataset layout. Stems are 24-bit stereo WAV at
    ``sample_rate``; their sum equals the full render (``sum_sdr_db`` in ``stems.json``).
    """
    midi = Path(midi)
    sf2 = find_soundfont(soundfont)
    fluidsynth_binary()
    mid = load_midi(midi)
    moves: list = []
    if separate_channels:
        mid, moves = separate_shared_channels(mid)
    mid = extend_short_notes(mid)
    parts = find_parts(mid, split_drums=split_drums)
    if not parts:
        raise AutomixError(f"{midi}: the MIDI file holds no notes")
    shared = _shared_channels(parts)
    if shared:
        warnings.warn(f"{midi.name}: tracks share MIDI channel(s) {', '.join(str(c + 1) for c in shared)}; "
                      "repeated notes there can make the stems differ slightly from the full render",
                      stacklevel=2)
    end = _end_tick(mid, tail_seconds)
    song_dir = Path(out_dir) / (song_name or _slug(midi.stem))
    jobs = jobs or os.cpu_count() or 1

    with tempfile.TemporaryDirectory(prefix="automix-midi-") as tmp:
        tmp = Path(tmp)
        jobs_list = [(None, tmp / "full")] + [(p, tmp / f"part{i:03d}") for i, p in enumerate(parts)]
        for part, base in jobs_list:
            part_file(mid, part, end).save(str(base.with_suffix(".mid")))
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            list(pool.map(lambda j: fluidsynth_render(j[1].with_suffix(".mid"), j[1].with_suffix(".wav"),
                                                      sf2, sample_rate, gain), jobs_list))
        full = _read_float(tmp / "full.wav")
        n = full.shape[1]
        stems = [_fit(_read_float(base.with_suffix(".wav")), n) for _, base in jobs_list[1:]]

    total = np.sum(stems, axis=0, dtype=np.float64)
    sdr = sdr_db(full, total)
    if sdr < _SUM_SDR_WARN_DB:
        warnings.warn(f"{midi.name}: stems sum to the full render only at {sdr:.1f} dB SDR", stacklevel=2)
    peak = float(max(np.abs(full).max(), np.abs(total).max(), max(float(np.abs(s).max()) for s in stems)))
    scale = 1.0 if peak <= 0.99 else 0.99 / peak  # one factor for all: relative levels kept

    song_dir.mkdir(parents=True, exist_ok=True)
    paths, meta = [], []
    for part, audio in zip(parts, stems):
        path = song_dir / f"{part.name}.wav"
        write_audio(path, audio * scale, sample_rate, bit_depth=24)
        paths.append(path)
        rms = float(np.sqrt(np.mean(np.square(audio * scale, dtype=np.float64))))
        entry = {k: v for k, v in asdict(part).items() if k not in ("name", "first_tick")}
        meta.append({"file": path.name, **entry, "program_name": GM_PROGRAMS[part.program] if not part.is_drums else None,
                     "rms_dbfs": round(_db(rms), 2),
                     "peak_dbfs": round(_db(float(np.abs(audio).max() * scale)), 2)})
    if write_mixture:
        write_audio(song_dir / "mixture.wav", full * scale, sample_rate, bit_depth=24)
    seconds = n / sample_rate
    info = {
        "format": "automix.stems", "version": 1,
        "source_midi": str(midi), "soundfont": str(sf2), "soundfont_copyright": copyright_file(sf2),
        "renderer": "fluidsynth (reverb off, chorus off, float)", "sample_rate": sample_rate,
        "seconds": round(seconds, 3), "sum_sdr_db": round(sdr, 2) if np.isfinite(sdr) else None,
        "channel_moves": [{"track": t, "from": a + 1, "to": b + 1} for t, a, b in moves],
        "scale": scale, "mixture": "mixture.wav" if write_mixture else None, "stems": meta,
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
            warnings.warn(f"skipped: {exc}", stacklevel=2)
    if not results:
        raise AutomixError(f"{folder}: none of the {len(files)} MIDI files could be rendered")
    return results
