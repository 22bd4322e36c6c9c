"""Producers' multitracks from LMMS projects: one solo render per stem, the full mix beside them.

``automix-data lmms -o DIR`` renders the 18 demo projects of Debian's ``lmms-common`` that issue 17
names (:data:`PROJECTS`; the other demos are a reserved test set and are refused) into the generic
layout::

    DIR/<song>/<stem>.wav      32-bit float solo renders (one per stem, same length as the mix)
    DIR/<song>/mixture.wav     the producer's full render (a mixture name: the scanner skips it)
    DIR/<song>/premaster.wav   only where the master channel has non-linear effects (a limiter):
                               the full render without them -- what the stems add up to
    DIR/<song>/stems.json      file -> label, and the tracks each stem holds
    DIR/<song>/lmms.json       provenance: project, tracks, groups, solo-sum residual (dB), timings
    DIR/<song>/COPYRIGHT.txt   the project's stanza of lmms-common's copyright file, then all of it

How a stem is made: a copy of the project in which every other *song-level* track (instrument,
sample and beat/bassline tracks; automation tracks keep playing) has ``muted="1"`` is rendered by a
fresh ``lmms --allowroot render -a`` at 44.1 kHz. ``lmms rendertracks`` is not used: in 1.2.2 its
tracks come out late with garbage and carried-over effect state. The stems add up to the mix only
where the signal path is linear after the point where tracks meet, so tracks that meet on a mixer
(FX) channel with a non-linear effect (compressor, limiter, distortion...), or beat/bassline tracks
that play the same beat instrument whose own chain is non-linear, are rendered together as one
stem (:func:`plan_stems`), and so are the tracks on both sides of a peak-controller sidechain.
Non-linear effects on the master channel act on the whole sum: stems
are rendered with them switched off and add up to ``premaster.wav`` (``mixture_vs_premaster_db``
says how much the master dynamics changed the mix). The residual
``10 log10(|premaster - sum(stems)|^2 / |premaster|^2)`` is kept per song in ``lmms.json``
(ZynAddSubFX and SID are not reproducible run to run, so their songs have a residual even when
linear: the cached renders are the truth).

lmms 1.2.2 sometimes segfaults on exit after writing a complete file: a render is retried until
lmms exits 0, or two crashed attempts wrote the same number of frames.

Resumable: finished songs (``lmms.json`` present) are skipped; within a song each solo render is
kept in ``DIR/.partial/<song>/`` as it finishes, and the finished song folder appears at once
(renamed into place).
"""
from __future__ import annotations

import copy
import fnmatch
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import soundfile as sf

from automix.errors import AutomixError

PROJECT_ROOT = Path("/usr/share/lmms/projects")
COPYRIGHT = Path("/usr/share/doc/lmms-common/copyright")
SAMPLE_RATE = 44100

# issue 17: the only projects we may render (relative to PROJECT_ROOT, without extension)
PROJECTS = (
    "demos/Alf42red-Mauiwowi", "demos/CapDan/CapDan-ReggaeTry", "demos/CapDan/CapDan-ReggaetonTry",
    "demos/CapDan/CapDan-TwilightArea-OriginalByAlf42red",
    "demos/CapDan/CapDan-ZeroSumGame-OriginalByZakarra", "demos/EsoXLB-CPU",
    "demos/Jousboxx-BuzzerBeater", "demos/Oglsdl-Dr8v2", "demos/Oglsdl-PpTrip",
    "demos/Settel-InnerRecreation", "demos/Shovon-ProgressiveHousePluckDemo",
    "demos/Socceroos-Progress", "demos/StrictProduction-DearJonDoe", "demos/TameAnderson-MakeMe",
    "shorties/Crunk(Demo)", "shorties/DirtyLove", "shorties/Greshz-CoolSnip", "shorties/Surrender-Main",
)

# song-level track types that make sound (lmms Track::TrackTypes): instrument, beat/bassline, sample
AUDIBLE_TYPES = {"0", "1", "2"}
TICKS_PER_BAR = 192   # at 4/4: 48 ticks per beat

# effects whose output for a sum of inputs is the sum of the outputs (filters, EQs, delays,
# reverbs, modulation with a free-running LFO, gains, stereo matrices, meters). Anything else --
# dynamics, distortion, pitch shifting, envelope followers, peak controllers -- is non-linear.
LINEAR_NATIVE = {"eq", "stereoenhancer", "stereomatrix", "amplifier", "spectrumanalyzer", "bassbooster",
                 "dualfilter", "delay", "reverbsc", "crossovereq", "flanger", "multitapecho"}
LINEAR_LADSPA = {
    "Filter", "Flanger", "MultiChorus", "Phaser", "Reverb", "VintageDelay",         # calf
    "ChorusI", "Eq", "Eq2x2", "Narrower", "PhaserI", "PhaserII", "Plate2x2", "ToneStack",  # caps
    "amp_stereo", "canyon_delay", "delay_1s", "fbdelay_1s", "freeverb3", "hpf", "lpf",      # cmt
    "comb", "dcRemove", "dj_eq", "highpass_iir", "autoPhaser", "fourByFourPole",           # swh
    "tap_chorusflanger", "tap_stereo_echo", "tap_equalizer", "tap_reverb",                 # tap
}
NONDETERMINISTIC = {"zynaddsubfx", "sid"}


# ---------------------------------------------------------------------------------------- project

def load_project(path: str | os.PathLike) -> ET.Element:
    """The XML of an ``.mmp`` or ``.mmpz`` (4-byte big-endian length, then zlib)."""
    data = Path(path).read_bytes()
    if str(path).endswith(".mmpz"):
        try:
            data = zlib.decompress(data[4:])
        except zlib.error as exc:
            raise AutomixError(f"{path}: not an LMMS .mmpz ({exc})") from None
    try:
        return ET.fromstring(data)
    except ET.ParseError as exc:
        raise AutomixError(f"{path}: not an LMMS project ({exc})") from None


def save_project(root: ET.Element, path: str | os.PathLike) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write('<?xml version="1.0"?>\n<!DOCTYPE lmms-project>\n')
        f.write(ET.tostring(root, encoding="unicode"))


def song_tracks(root: ET.Element) -> list[ET.Element]:
    tc = root.find("song/trackcontainer")
    if tc is None:
        raise AutomixError("not an LMMS song project (no song/trackcontainer)")
    return tc.findall("track")


def _effect_linear(effect: ET.Element) -> bool:
    name = effect.get("name", "")
    if name == "ladspaeffect":
        labels = [a.get("value", "") for a in effect.iter("attribute") if a.get("name") == "plugin"]
        return bool(labels) and all(lab in LINEAR_LADSPA for lab in labels)
    return name in LINEAR_NATIVE


def _chain_nonlinear(chain: ET.Element | None) -> list[str]:
    """Names of the active non-linear effects of an ``<fxchain>``."""
    if chain is None or chain.get("enabled", "1") == "0":
        return []
    out = []
    for e in chain.findall("effect"):
        if e.get("on", "1") == "0" or _effect_linear(e):
            continue
        label = e.get("name", "?")
        if label == "ladspaeffect":
            label = " ".join(a.get("value", "") for a in e.iter("attribute") if a.get("name") == "plugin")
        out.append(label)
    return out


def _has_notes(track: ET.Element) -> bool:
    return any(p.get("muted", "0") != "1" and (p.find("note") is not None or track.get("type") == "2")
               for p in list(track.findall("pattern")) + list(track.findall("sampletco")))


@dataclass
class Stem:
    name: str
    tracks: list[int]                    # indices into song_tracks()
    track_names: list[str]
    reasons: list[str] = field(default_factory=list)   # why tracks were grouped


def _fx_channels(root: ET.Element) -> tuple[dict[int, list[str]], dict[int, list[int]], dict[int, str]]:
    """Per mixer channel: its non-linear effects, the channels it sends to, and its name."""
    nonlin, sends, names = {}, {}, {}
    mixer = root.find("song/fxmixer")
    for ch in (mixer.findall("fxchannel") if mixer is not None else []):
        n = int(ch.get("num", "0"))
        nonlin[n] = _chain_nonlinear(ch.find("fxchain"))
        names[n] = ch.get("name", f"FX {n}")
        sends[n] = [int(s.get("channel", "0")) for s in ch.findall("send")]
        if n != 0 and not ch.findall("send"):
            sends[n] = [0]
    return nonlin, sends, names


def _downstream(start: int, sends: dict[int, list[int]]) -> set[int]:
    seen, todo = set(), [start]
    while todo:
        c = todo.pop()
        if c in seen:
            continue
        seen.add(c)
        todo.extend(sends.get(c, [0] if c != 0 else []))
    return seen


def _sidechains(root: ET.Element, tracks: list[ET.Element], bb_instruments: list[ET.Element]) -> dict:
    """Per peak controller (``pc<index>``): where its effect sits and where the parameters it
    drives sit, as ``("track", i)``, ``("bb", j)`` or ``("fx", channel)`` locations."""
    ctrls = root.find("song/controllers")
    if ctrls is None:
        return {}
    peak = {idx: c.get("effectId") for idx, c in enumerate(list(ctrls)) if c.tag.lower() == "peakcontroller"}
    if not peak:
        return {}
    parents = {child: p for p in root.iter() for child in p}
    song_level = {t: i for i, t in enumerate(tracks)}
    bb_level = {t: j for j, t in enumerate(bb_instruments)}

    def locate(el):
        while el is not None:
            if el.tag == "fxchannel":
                return ("fx", int(el.get("num", "0")))
            if el.tag == "track" and el in song_level:
                return ("track", song_level[el])
            if el.tag == "track" and el in bb_level:
                return ("bb", bb_level[el])
            el = parents.get(el)
        return None

    out = {f"pc{idx}": (set(), set()) for idx in peak}
    for ctl in root.iter("peakcontrollereffectcontrols"):
        for idx, eid in peak.items():
            loc = locate(ctl)
            if ctl.get("effectId") == eid and loc is not None:
                out[f"pc{idx}"][0].add(loc)
    for conn in root.iter("connection"):
        for ref in conn:
            try:
                idx = int(ref.get("id", "-1"))
            except ValueError:
                continue
            loc = locate(conn)
            if idx in peak and loc is not None:
                out[f"pc{idx}"][1].add(loc)
    return out


def _bb_patterns_played(track: ET.Element) -> bool:
    return any(t.get("muted", "0") != "1" for t in track.findall("bbtco"))


def plan_stems(root: ET.Element) -> tuple[list[Stem], dict]:
    """Which song-level tracks are rendered together (see the module notes), plus notes on the
    project: master-channel non-linear effects, skipped tracks, non-reproducible instruments."""
    tracks = song_tracks(root)
    nonlin, sends, fx_names = _fx_channels(root)
    bb_tracks = [t for t in tracks if t.get("type") == "1"]
    bb_container = None
    for t in bb_tracks:
        bb_container = t.find("bbtrack/trackcontainer")
        if bb_container is not None:
            break
    bb_instruments = bb_container.findall("track") if bb_container is not None else []

    units: list[int] = []          # audible song-level track indices
    keys: dict[int, set[str]] = {}  # resources whose non-linearity ties tracks together
    chans: dict[int, set[int]] = {}  # mixer channels each unit's audio passes through
    plays_bb: dict[int, set[int]] = {}  # beat instruments each beat track plays
    skipped = []
    for i, t in enumerate(tracks):
        ttype, name = t.get("type"), t.get("name", f"track {i}")
        if ttype not in AUDIBLE_TYPES:
            continue
        if t.get("muted", "0") == "1":
            skipped.append(f"{name} (muted by the producer)")
            continue
        k: set[str] = set()
        chans[i], plays_bb[i] = set(), set()
        if ttype == "0":
            if not _has_notes(t):
                skipped.append(f"{name} (no notes)")
                continue
            it = t.find("instrumenttrack")
            ch = int(it.get("fxch", "0")) if it is not None else 0
            k |= {f"fx{c}" for c in _downstream(ch, sends) if c != 0 and nonlin.get(c)}
            chans[i] |= _downstream(ch, sends)
        elif ttype == "1":
            if not _bb_patterns_played(t):
                skipped.append(f"{name} (never played)")
                continue
            bb_index = bb_tracks.index(t)
            lo, hi = bb_index * TICKS_PER_BAR, (bb_index + 1) * TICKS_PER_BAR
            for j, inst in enumerate(bb_instruments):
                if inst.get("muted", "0") == "1":
                    continue
                plays = any(lo <= int(p.get("pos", "0")) < hi and p.find("note") is not None
                            for p in inst.findall("pattern"))
                if not plays:
                    continue
                it = inst.find("instrumenttrack")
                ch = int(it.get("fxch", "0")) if it is not None else 0
                k |= {f"fx{c}" for c in _downstream(ch, sends) if c != 0 and nonlin.get(c)}
                chans[i] |= _downstream(ch, sends)
                plays_bb[i].add(j)
                # one instrument (one effect chain, one voice pool) shared by several beat tracks
                if it is not None and (_chain_nonlinear(it.find("fxchain"))):
                    k.add(f"bb{j}")
        elif ttype == "2":
            if not _has_notes(t):
                skipped.append(f"{name} (no samples)")
                continue
        units.append(i)
        keys[i] = k

    # Peak controllers are sidechains: the tracks feeding one and the tracks whose parameters it
    # moves depend on each other's audio, so they are one stem too.
    def reached(loc) -> set[int]:
        kind, x = loc
        return {u for u in units if (kind == "track" and u == x) or (kind == "bb" and x in plays_bb[u])
                or (kind == "fx" and x != 0 and x in chans[u])}

    for key, (src, dst) in _sidechains(root, tracks, bb_instruments).items():
        feeding = set().union(*[reached(loc) for loc in src]) if src else set()
        moved = set().union(*[reached(loc) for loc in dst]) if dst else set()
        if feeding and moved:
            for u in feeding | moved:
                keys[u].add(key)

    # union-find over units sharing a key
    parent = {u: u for u in units}

    def find(u):
        while parent[u] != u:
            parent[u] = parent[parent[u]]
            u = parent[u]
        return u

    owner: dict[str, int] = {}
    for u in units:
        for k in keys[u]:
            if k in owner:
                parent[find(u)] = find(owner[k])
            else:
                owner[k] = u
    groups: dict[int, list[int]] = {}
    for u in units:
        groups.setdefault(find(u), []).append(u)

    stems, used = [], set()
    for members in groups.values():
        names = [tracks[i].get("name", f"track {i}") for i in members]
        shared = sorted(set.intersection(*[keys[i] for i in members])) if len(members) > 1 else []
        reasons = []
        for k in sorted(set().union(*[keys[i] for i in members])) if len(members) > 1 else []:
            if k.startswith("fx"):
                c = int(k[2:])
                reasons.append(f"mixer channel {c} ({fx_names.get(c, '')}): {', '.join(nonlin[c])}")
            elif k.startswith("pc"):
                reasons.append(f"peak controller {int(k[2:]) + 1} (a sidechain between them)")
            else:
                reasons.append(f"beat instrument {bb_instruments[int(k[2:])].get('name')} with non-linear effects")
        if len(members) > 1:
            base = (fx_names.get(int(shared[0][2:])) if shared and shared[0].startswith("fx") else None) or names[0]
            base = base + " group"
        else:
            base = names[0]
        stem_name = _unique(_safe_name(base), used)
        stems.append(Stem(stem_name, members, names, reasons))

    insts = sorted({i.get("name", "") for i in root.iter("instrument")} & NONDETERMINISTIC)
    notes = {"master_nonlinear": nonlin.get(0, []), "skipped_tracks": skipped,
             "nondeterministic_instruments": insts}
    return stems, notes


def _safe_name(name: str) -> str:
    s = re.sub(r"[^A-Za-z0-9._ -]+", "_", name).strip(" ._") or "track"
    s = re.sub(r"\s+", " ", s)
    from training.datasets import is_mixture_name  # a stem must not look like a mixture
    return s + " stem" if is_mixture_name(s) else s


def _unique(name: str, used: set[str]) -> str:
    out, n = name, 2
    while out.lower() in used:
        out, n = f"{name} {n}", n + 1
    used.add(out.lower())
    return out


def bypass_master_dynamics(root: ET.Element) -> ET.Element:
    """A copy whose master channel's non-linear effects are switched off (``on="0"``)."""
    r = copy.deepcopy(root)
    mixer = r.find("song/fxmixer")
    for ch in (mixer.findall("fxchannel") if mixer is not None else []):
        if ch.get("num", "0") == "0" and ch.find("fxchain") is not None:
            for e in ch.find("fxchain").findall("effect"):
                if not _effect_linear(e):
                    e.set("on", "0")
    return r


def solo_copy(root: ET.Element, keep: Iterable[int]) -> ET.Element:
    """A copy with every audible song-level track outside ``keep`` muted and nothing soloed."""
    keep = set(keep)
    r = copy.deepcopy(root)
    for i, t in enumerate(song_tracks(r)):
        t.set("solo", "0")
        if t.get("type") in AUDIBLE_TYPES and i not in keep:
            t.set("muted", "1")
    return r


def song_seconds(root: ET.Element) -> float:
    """Length of the arrangement from its clips (an estimate for ordering: shortest first)."""
    head = root.find("head")
    bpm = float(head.get("bpm", "140")) if head is not None else 140.0
    end = 0
    for t in song_tracks(root):
        for tco in list(t.findall("pattern")) + list(t.findall("bbtco")) + list(t.findall("sampletco")):
            end = max(end, int(float(tco.get("pos", "0"))) + int(float(tco.get("len", "0"))))
    return end / (TICKS_PER_BAR / 4) * 60.0 / bpm


# ----------------------------------------------------------------------------------------- render

SAMPLE_DIR = Path("/usr/share/lmms/samples")

_ONE_SHOT = """<?xml version="1.0"?>
<!DOCTYPE lmms-project>
<lmms-project version="1.0" type="song" creator="LMMS" creatorversion="1.2.2">
 <head bpm="120" timesig_numerator="4" timesig_denominator="4" mastervol="100" masterpitch="0"/>
 <song>
  <trackcontainer type="song">
   <track type="0" name="one shot" muted="0" solo="0">
    <instrumenttrack vol="100" pan="0" fxch="0" basenote="57" pitch="0" pitchrange="1" usemasterpitch="1">
     <instrument name="audiofileprocessor">
      <audiofileprocessor src="{src}" amp="100" sframe="0" eframe="1" lframe="0" looped="0"
                          reversed="0" stutter="0" interp="1"/>
     </instrument>
     <fxchain enabled="0" numofeffects="0"/>
    </instrumenttrack>
    <pattern pos="0" len="{ticks}" steps="16" muted="0" type="1" name="one shot">
     <note pos="0" len="{ticks}" key="57" vol="100" pan="0"/>
    </pattern>
   </track>
  </trackcontainer>
  <fxmixer><fxchannel num="0" name="Master" volume="1" muted="0"><fxchain enabled="0" numofeffects="0"/></fxchannel></fxmixer>
 </song>
</lmms-project>
"""


def freeze_drumsynth(root: ET.Element, cache: Path, *, sample_rate: int = SAMPLE_RATE, nice: int = 0) -> list[str]:
    """Replace every DrumSynth (``.ds``) sample of the project by one fixed rendering of it.

    LMMS synthesises a ``.ds`` drum into noise each time a project is loaded, differently every
    run (two renders of the same project then differ by ~0 dB, and solo renders cannot add up to
    the mix). Each ``.ds`` is rendered once on its own (a one-note project at the sample's own
    pitch, unit gains), trailing silence trimmed, kept in ``cache`` (reused when resuming), and the
    project's ``src`` is pointed at it. Returns the frozen sources."""
    cache.mkdir(parents=True, exist_ok=True)
    frozen = {}
    for afp in root.iter("audiofileprocessor"):
        src = afp.get("src", "")
        if not src.lower().endswith(".ds"):
            continue
        if src not in frozen:
            wav = cache / (f"ds{len(frozen):02d}_" + re.sub(r"[^A-Za-z0-9._-]+", "_", Path(src).stem) + ".wav")
            if not wav.is_file():
                path = Path(src) if Path(src).is_absolute() else SAMPLE_DIR / src
                mmp = cache / "one_shot.mmp"
                mmp.write_text(_ONE_SHOT.format(src=str(path), ticks=TICKS_PER_BAR * 4))
                tmp = cache / "one_shot.wav"
                render_project(mmp, tmp, sample_rate=sample_rate, nice=nice)
                x, _ = sf.read(str(tmp), dtype="float32", always_2d=True)
                loud = np.flatnonzero(np.max(np.abs(x), axis=1) > 0)
                x = x[: (loud[-1] + 1 if len(loud) else 1)]
                sf.write(str(cache / "frozen.part.wav"), x, sample_rate, subtype="FLOAT")
                os.replace(cache / "frozen.part.wav", wav)
                tmp.unlink(missing_ok=True)
                mmp.unlink(missing_ok=True)
            frozen[src] = str(wav.resolve())
        afp.set("src", frozen[src])
    return sorted(frozen)


def lmms_binary() -> str | None:
    return shutil.which("lmms")


def render_project(project: str | os.PathLike, wav: str | os.PathLike, *, sample_rate: int = SAMPLE_RATE,
                   tries: int = 6, timeout: float = 3600.0, nice: int = 0) -> int:
    """Render one project file with a fresh lmms into a 32-bit float WAV; returns its frames.
    lmms 1.2.2 sometimes segfaults on exit after writing a complete file: a render counts when
    lmms exits 0, or when two crashed attempts in a row wrote the same readable length."""
    exe = lmms_binary()
    if exe is None:
        raise AutomixError("lmms not found (Debian: apt-get install lmms)")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    cmd = [exe, "--allowroot", "render", str(project), "-f", "wav", "-a", "-s", str(sample_rate),
           "-o", str(wav)]
    if nice:
        cmd = ["nice", "-n", str(nice)] + cmd
    last = None
    for _ in range(tries):
        Path(wav).unlink(missing_ok=True)
        try:
            p = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               timeout=timeout, cwd=tempfile.gettempdir())
            code = p.returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
        frames = 0
        if Path(wav).is_file():
            try:
                frames = sf.info(str(wav)).frames
            except RuntimeError:
                frames = 0
        if frames > 0 and (code == 0 or frames == last):
            return frames
        last = frames or None
    raise AutomixError(f"lmms could not render {project} ({tries} tries)")


def _read(path: Path, frames: int) -> np.ndarray:
    x, _ = sf.read(str(path), dtype="float64", always_2d=True)
    if x.shape[1] == 1:
        x = np.repeat(x, 2, axis=1)
    out = np.zeros((frames, 2))
    n = min(frames, len(x))
    out[:n] = x[:n, :2]
    return out


def residual_db(mix: np.ndarray, stems: Sequence[np.ndarray]) -> float:
    """Energy of ``mix - sum(stems)`` relative to the mix, in dB (-200 when they are equal)."""
    err = mix - np.sum(stems, axis=0)
    e, m = float(np.sum(err ** 2)), float(np.sum(mix ** 2))
    if m == 0.0:
        return 0.0 if e > 0 else -200.0
    return max(10.0 * np.log10(e / m), -200.0) if e > 0 else -200.0   # -200: identical (JSON has no -inf)


def copyright_stanza(rel: str, text: str) -> str:
    """The paragraph of a Debian copyright file whose ``Files:`` patterns match the project (the
    last one that matches: later paragraphs override ``Files: *``)."""
    target = f"data/projects/{rel}"
    found = ""
    for para in text.split("\n\n"):
        lines = para.splitlines()
        if not lines or not lines[0].startswith("Files:"):
            continue
        pats, i = lines[0][len("Files:"):].split(), 1
        while i < len(lines) and lines[i].startswith(" ") and ":" not in lines[i].split()[0]:
            pats += lines[i].split()
            i += 1
        if any(fnmatch.fnmatch(target + ext, p) for p in pats for ext in (".mmp", ".mmpz")):
            found = para
    return found


def project_path(rel: str, root: Path = PROJECT_ROOT) -> Path:
    for ext in (".mmpz", ".mmp"):
        p = root / (rel + ext)
        if p.is_file():
            return p
    raise AutomixError(f"{root / rel}.mmp(z) not found (Debian: apt-get install lmms-common)")


def song_id(rel: str) -> str:
    return _safe_name(Path(rel).name)


def _write_json(path: Path, data) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def write_copyright(folder: Path, project: Path, rel: str | None, copyright_file: Path | None = COPYRIGHT) -> None:
    """``folder/COPYRIGHT.txt``: the project's stanza of the copyright file, then all of it."""
    if copyright_file is None or not Path(copyright_file).is_file():
        return
    text = Path(copyright_file).read_text(errors="replace")
    stanza = copyright_stanza(rel or Path(project).stem, text)
    body = (f"Derived from the LMMS project {project} (Debian lmms-common) by rendering it with lmms.\n"
            f"Licence and credits of the project (stanza of {copyright_file}):\n\n{stanza or '(no stanza matched)'}"
            f"\n\n---- full {copyright_file} ----\n\n{text}")
    path = Path(folder) / "COPYRIGHT.txt"
    if not path.is_file() or path.read_text(errors="replace") != body:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(body)
        os.replace(tmp, path)


def render_song(project: str | os.PathLike, out_root: str | os.PathLike, *, name: str | None = None,
                rel: str | None = None, sample_rate: int = SAMPLE_RATE, nice: int = 0,
                copyright_file: Path | None = COPYRIGHT,
                progress: Callable[[str], None] = lambda s: None) -> Path:
    """Render one project into ``out_root/<name>/`` (see the module notes). Returns the folder;
    a folder that is already finished (``lmms.json``) is returned as it is."""
    project = Path(project)
    out_root = Path(out_root)
    name = name or _safe_name(project.stem)
    final = out_root / name
    if (final / "lmms.json").is_file():
        return final
    if final.exists():
        raise AutomixError(f"{final} exists but is not a finished song (no lmms.json); remove it")
    work = out_root / ".partial" / name
    work.mkdir(parents=True, exist_ok=True)
    root = load_project(project)
    frozen = freeze_drumsynth(root, work / "drumsynth", sample_rate=sample_rate, nice=nice)
    stems, notes = plan_stems(root)
    notes["frozen_drumsynth_samples"] = frozen
    if not stems:
        raise AutomixError(f"{project}: no audible track")
    timings = {}

    def rendered(tag: str, xml_root: ET.Element) -> Path:
        wav = work / f"{tag}.wav"
        done = work / f"{tag}.done"
        if done.is_file() and wav.is_file():
            return wav
        mmp = work / f"{tag}.mmp"
        save_project(xml_root, mmp)
        t0 = time.perf_counter()
        tmp = work / f"{tag}.part.wav"
        render_project(mmp, tmp, sample_rate=sample_rate, nice=nice)
        os.replace(tmp, wav)
        done.write_text("")
        mmp.unlink(missing_ok=True)
        timings[tag] = round(time.perf_counter() - t0, 1)
        return wav

    total = len(stems) + 2
    t_song = time.perf_counter()
    progress(f"{name}: full mix (1/{total})")
    # the producer's project as it is (nothing soloed): tracks left out of the stems stay in the mix
    mix_wav = rendered("mixture", solo_copy(root, range(len(song_tracks(root)))))
    frames = sf.info(str(mix_wav)).frames
    # a second full render measures how reproducible the project is (ZynAddSubFX, SID, shared noise)
    progress(f"{name}: full mix again, to measure reproducibility (2/{total})")
    again_wav = rendered("mixture_again", solo_copy(root, range(len(song_tracks(root)))))
    # Non-linear master effects (a limiter on the master bus) act on the sum: the stems are
    # rendered without them, and add up to premaster.wav, the full mix rendered the same way.
    pre_root = bypass_master_dynamics(root) if notes["master_nonlinear"] else root
    pre_wav = mix_wav
    if notes["master_nonlinear"]:
        total += 1
        progress(f"{name}: full mix without the master's {', '.join(notes['master_nonlinear'])} (3/{total})")
        pre_wav = rendered("premaster", solo_copy(pre_root, range(len(song_tracks(root)))))
    files = []
    first = total - len(stems) + 1
    for k, stem in enumerate(stems, first):
        progress(f"{name}: {stem.name} ({k}/{total}; tracks: {', '.join(stem.track_names)})")
        tag = hashlib.sha1(",".join(map(str, stem.tracks)).encode()).hexdigest()[:8]
        files.append(rendered(f"stem_{k - first:02d}_{tag}", solo_copy(pre_root, stem.tracks)))

    mix = _read(mix_wav, frames)
    audio = [_read(f, frames) for f in files]
    premaster = _read(pre_wav, frames) if pre_wav != mix_wav else mix
    res = residual_db(premaster, audio)
    repeat = residual_db(mix, [_read(again_wav, frames)])
    master_effect = residual_db(mix, [premaster])
    entries = []
    staging = out_root / ".partial" / f"{name}.out"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    shutil.copyfile(mix_wav, staging / "mixture.wav")
    if pre_wav != mix_wav:
        shutil.copyfile(pre_wav, staging / "premaster.wav")   # a mixture name: not a stem
    for stem, x in zip(stems, audio):
        rms = float(np.sqrt(np.mean(x ** 2)))
        if rms == 0.0:      # a track that never sounds (e.g. a beat pattern of muted instruments)
            notes.setdefault("silent_stems", []).append(stem.name)
            continue
        sf.write(str(staging / f"{stem.name}.wav"), x.astype(np.float32), sample_rate, subtype="FLOAT")
        entries.append({"file": f"{stem.name}.wav", "label": stem.track_names[0].lower() if len(stem.tracks) == 1
                        else stem.name.lower(), "tracks": stem.track_names, "grouped_because": stem.reasons,
                        "rms_dbfs": round(20 * np.log10(rms), 2)})
    _write_json(staging / "stems.json", {"stems": entries})
    write_copyright(staging, project, rel, copyright_file)
    meta = {"project": str(project), "rel": rel, "sample_rate": sample_rate, "frames": frames,
            "seconds": round(frames / sample_rate, 3), "solo_sum_residual_db": round(res, 2),
            "mixture_vs_premaster_db": round(master_effect, 2),
            "repeat_render_residual_db": round(repeat, 2),
            "mix_peak_dbfs": round(20 * np.log10(max(np.max(np.abs(mix)), 1e-12)), 2),
            "stems": [{"name": s.name, "tracks": s.track_names, "grouped_because": s.reasons} for s in stems],
            "render_seconds": round(time.perf_counter() - t_song, 1), "render_seconds_per_file": timings,
            **notes}
    _write_json(staging / "lmms.json", meta)
    os.replace(staging, final)
    shutil.rmtree(work, ignore_errors=True)
    progress(f"{name}: done, {len(entries)} stems, {frames / sample_rate:.1f} s, "
             f"solo sum residual {res:.1f} dB (two full renders differ by {repeat:.1f} dB; "
             f"master dynamics: {master_effect:.1f} dB)")
    return final


def render_dataset(out_root: str | os.PathLike, projects: Sequence[str] = PROJECTS, *,
                   project_root: Path = PROJECT_ROOT, sample_rate: int = SAMPLE_RATE, nice: int = 0,
                   progress: Callable[[str], None] = print) -> list[Path]:
    """Render the named projects (default: all 18), shortest first, skipping finished ones."""
    bad = [p for p in projects if p not in PROJECTS]
    if bad:
        raise AutomixError(f"{bad[0]}: not one of the 18 projects of issue 17 (the others are a reserved test set)")
    out_root = Path(out_root)
    out_root.mkdir(parents=True, exist_ok=True)
    order = sorted(projects, key=lambda rel: song_seconds(load_project(project_path(rel, project_root))))
    done = []
    for n, rel in enumerate(order, 1):
        name = song_id(rel)
        if (out_root / name / "lmms.json").is_file():
            write_copyright(out_root / name, project_path(rel, project_root), rel)  # kept up to date
            progress(f"[{n}/{len(order)}] {name}: cached")
            done.append(out_root / name)
            continue
        progress(f"[{n}/{len(order)}] {name}: rendering")
        done.append(render_song(project_path(rel, project_root), out_root, name=name, rel=rel,
                                sample_rate=sample_rate, nice=nice,
                                progress=lambda s, n=n: progress(f"[{n}/{len(order)}] {s}")))
    return done


def tiny_project_xml(bars: int = 2, bpm: int = 120, master_limiter: bool = False) -> str:
    """A small self-contained project for tests and smoke checks: three sample tracks (kick on
    mixer channel 1; hat and clap on channel 2, which has a hard limiter at -18 dB -- a non-linear effect,
    so they must come out as one stem), a hat panned left, and one muted track. ``master_limiter``:
    the same limiter on the master channel too."""
    def track(name, sample, fxch, pan, steps, muted=0):
        notes = "".join(f'<note pos="{s * 12}" len="-192" key="57" vol="100" pan="0"/>' for s in steps)
        patterns = "".join(f'<pattern pos="{b * TICKS_PER_BAR}" len="{TICKS_PER_BAR}" steps="16" muted="0" '
                           f'type="1" name="{name}">{notes}</pattern>' for b in range(bars))
        return (f'<track type="0" name="{name}" muted="{muted}" solo="0">'
                f'<instrumenttrack vol="100" pan="{pan}" fxch="{fxch}" basenote="57" pitch="0" pitchrange="1" '
                f'usemasterpitch="1"><instrument name="audiofileprocessor"><audiofileprocessor '
                f'src="drums/{sample}" amp="100" sframe="0" eframe="1" lframe="0" looped="0" reversed="0" '
                f'stutter="0" interp="1"/></instrument><fxchain enabled="0" numofeffects="0"/>'
                f'</instrumenttrack>{patterns}</track>')

    limiter = ('<fxchain enabled="1" numofeffects="1"><effect name="ladspaeffect" on="1" wet="1" gate="0" '
               'autoquit="1" autoquit_numerator="4" autoquit_denominator="4"><ladspacontrols ports="6" link="1">'
               '<port00 link="1" data="-18"/><port01 link="1" data="1"/><port02 link="1" data="0"/>'
               '<port10 data="-18"/><port11 data="1"/><port12 data="0"/></ladspacontrols><key>'
               '<attribute name="file" value="hard_limiter_1413"/><attribute name="plugin" value="hardLimiter"/>'
               '</key></effect></fxchain>')
    plain = '<fxchain enabled="0" numofeffects="0"/>'
    return ('<?xml version="1.0"?>\n<!DOCTYPE lmms-project>\n'
            '<lmms-project version="1.0" type="song" creator="LMMS" creatorversion="1.2.2">'
            f'<head bpm="{bpm}" timesig_numerator="4" timesig_denominator="4" mastervol="100" masterpitch="0"/>'
            '<song><trackcontainer type="song">'
            + track("kick", "kick01.ogg", 1, 0, [0, 4, 8, 12])
            + track("hat", "hihat_closed01.ogg", 2, -40, [2, 6, 10, 14])
            + track("clap", "clap01.ogg", 2, 0, [4, 12])
            + track("unused", "crash01.ogg", 0, 0, [0], muted=1)
            + '</trackcontainer><fxmixer>'
            f'<fxchannel num="0" name="Master" volume="1" muted="0">{limiter if master_limiter else plain}</fxchannel>'
            f'<fxchannel num="1" name="Kick" volume="1" muted="0">{plain}<send channel="0" amount="1"/></fxchannel>'
            f'<fxchannel num="2" name="Perc" volume="0.8" muted="0">{limiter}<send channel="0" amount="1"/></fxchannel>'
            '</fxmixer></song></lmms-project>\n')
