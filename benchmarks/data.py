"""Benchmark material (issue 4): real music from Debian packages, cut into deterministic cases.

    .venv/bin/python benchmarks/data.py            # fetch + build the full case set, list it
    .venv/bin/python benchmarks/data.py --quick    # only what the quick mode needs

Where the music comes from (``apt-get download`` + ``dpkg -x`` into ``benchmarks/cache/``, no
root install; run ``apt-get update`` once first):

* real recorded stems: ``fretsonfire-songs-muldjord`` -- four metal songs, each a ``guitar.ogg``
  and a ``song.ogg`` (the backing: drums, bass, rhythm guitars) of the same length; a
  ``rhythm.ogg`` is used too where a song has one.  Each song is a 2-stem (or 3-stem) set.
* real masters used as references: ``wesnoth-1.16-music``, ``supertux-data`` (``music/``) and
  ``supertuxkart-data`` (``music/``): orchestral, chiptune/electronic and pop/rock game music.
* optionally, stems rendered from symbolic music by :mod:`training.synth` (``mma`` grooves with
  FluidSynth and a GM SoundFont), when that module and its tools are installed.

Cases (each a folder under ``benchmarks/cache/cases/<mode>-v<N>/<case id>/`` with ``case.json``,
``stems/``, ``reference.wav``, and the copyright files of every package it was cut from):

``mixing``
    a stem set (the loudest ``excerpt_s`` window of the stems' sum) + a real reference (the
    loudest ``excerpt_s`` window of a real master).
``mastering``
    ``mix.wav`` = the plain sum of a stem set (its loudest window that does not overlap the
    mixing excerpt) + a different real reference.
``known_target``
    a stem set (the loudest ``2 * excerpt_s`` window) mixed and mastered by an "engineer" chain
    that is independent of automix (pedalboard when it is installed -- GPL, used only here, as
    an optional benchmark dependency -- else the scipy chain below), with seeded realistic
    settings.  The first half of that master is ``reference.wav``; the second half is
    ``target.wav``, the ground truth automix never sees; ``stems/`` holds the second half of
    the stems.

Everything is deterministic: references are chosen by a hash of their names (not by ear),
excerpts by loudness, engineer settings from a seed per case, and written files are the same
bytes on every run (``case_digest`` checks this).
"""
from __future__ import annotations

import argparse
import glob
import hashlib
import json
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.ndimage import minimum_filter1d
from scipy.signal import lfilter, resample_poly, sosfilt

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CACHE = HERE / "cache"
CASES_VERSION = 1          # bump when the case builder changes (cases are rebuilt)
SR = 44100
SEED = 4

STEM_PACKAGE = "fretsonfire-songs-muldjord"
REFERENCE_PACKAGES = ("wesnoth-1.16-music", "supertux-data", "supertuxkart-data")
# music files inside each package (globs relative to the unpacked root)
PACKAGE_GLOBS = {
    STEM_PACKAGE: "usr/share/games/fretsonfire/data/songs/*/*/guitar.ogg",
    "wesnoth-1.16-music": "usr/share/games/wesnoth/*/data/core/music/*.ogg",
    "supertux-data": "usr/share/games/supertux2/music/**/*.ogg",
    "supertuxkart-data": "usr/share/games/supertuxkart/data/music/*.ogg",
}
MIN_REFERENCE_S = 60.0     # shorter files are jingles and stingers
SKIP_REFERENCE = ("_fast", "_old", "silence")   # tempo-up duplicates, superseded versions


@dataclass(frozen=True)
class Mode:
    name: str
    excerpt_s: float          # mixing/mastering excerpt; known-target halves
    packages: tuple           # what to fetch
    songs: int | None         # real stem sets used (None: all)
    mixing_refs_per_song: int
    mastering: bool
    rendered: int             # rendered (mma) songs


FULL = Mode("full", 30.0, (STEM_PACKAGE,) + REFERENCE_PACKAGES, None, 2, True, 2)
QUICK = Mode("quick", 8.0, (STEM_PACKAGE, "wesnoth-1.16-music"), 1, 1, False, 0)


# ---------------------------------------------------------------------------------------------
# Fetching
# ---------------------------------------------------------------------------------------------

def package_root(name: str, cache: Path = CACHE) -> Path:
    return cache / "pkgs" / name


def package_available(name: str) -> bool:
    """Whether apt knows a candidate version of ``name`` (``apt-cache policy``)."""
    try:
        out = subprocess.run(["apt-cache", "policy", name], capture_output=True, text=True,
                             timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    for line in out.splitlines():
        if line.strip().startswith("Candidate:"):
            return line.split(":", 1)[1].strip() not in ("", "(none)")
    return False


def fetch(name: str, cache: Path = CACHE, keep_deb: bool = False, log=print) -> Path | None:
    """``apt-get download`` + ``dpkg -x`` ``name`` into ``cache/pkgs/name``; None if unavailable."""
    root = package_root(name, cache)
    done = root / ".unpacked"
    if done.is_file():
        return root
    debs = cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    have = sorted(debs.glob(f"{name}_*.deb"))
    if not have:
        if not package_available(name):
            log(f"  {name}: not available from apt (run `apt-get update` first?); skipped")
            return None
        log(f"  {name}: apt-get download")
        r = subprocess.run(["apt-get", "download", name], cwd=debs, capture_output=True, text=True)
        have = sorted(debs.glob(f"{name}_*.deb"))
        if r.returncode != 0 or not have:
            log(f"  {name}: apt-get download failed: {r.stderr.strip()[-300:]}")
            return None
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    log(f"  {name}: dpkg -x {have[-1].name}")
    subprocess.run(["dpkg", "-x", str(have[-1]), str(root)], check=True)
    done.write_text(have[-1].name + "\n")
    if not keep_deb:
        have[-1].unlink()
    return root


def copyright_file(name: str, cache: Path = CACHE) -> Path | None:
    p = package_root(name, cache) / "usr/share/doc" / name / "copyright"
    return p if p.is_file() else None


# ---------------------------------------------------------------------------------------------
# Material: stem sets and references, found in the unpacked packages (or given by a test)
# ---------------------------------------------------------------------------------------------

@dataclass
class StemSet:
    name: str                       # e.g. "muldjord/chaos_god"
    stems: dict                     # stem name -> audio file
    source: str                     # package (or "rendered", "synthetic")
    copyrights: dict = field(default_factory=dict)   # file name in the case -> file to copy


@dataclass
class Reference:
    name: str                       # e.g. "wesnoth-1.16-music/battle"
    path: Path
    source: str
    copyrights: dict = field(default_factory=dict)


@dataclass
class Material:
    stem_sets: list
    references: list
    missing: list = field(default_factory=list)     # packages that could not be had


def _stable_key(text: str) -> str:
    return hashlib.sha1(f"automix-bench:{text}".encode()).hexdigest()


def find_stem_sets(cache: Path = CACHE) -> list[StemSet]:
    root = package_root(STEM_PACKAGE, cache)
    cr = copyright_file(STEM_PACKAGE, cache)
    sets = []
    for guitar in sorted(glob.glob(str(root / PACKAGE_GLOBS[STEM_PACKAGE]))):
        folder = Path(guitar).parent
        stems = {n: folder / f"{n}.ogg" for n in ("guitar", "rhythm", "song")
                 if (folder / f"{n}.ogg").is_file()}
        if len(stems) < 2:
            continue
        copies = {f"COPYRIGHT.{STEM_PACKAGE}": cr} if cr else {}
        if (folder / "readme.txt").is_file():            # the author asks that it travels along
            copies["README.muldjord.txt"] = folder / "readme.txt"
        sets.append(StemSet(f"{folder.parent.name}/{folder.name}", stems, STEM_PACKAGE, copies))
    return sets


def find_references(packages=REFERENCE_PACKAGES, cache: Path = CACHE) -> list[Reference]:
    """Real masters of each package, at least ``MIN_REFERENCE_S`` long, ordered by a hash of
    their names and interleaved across packages (wesnoth, supertux, supertuxkart, wesnoth, ...)."""
    per_pkg = []
    for pkg in packages:
        root = package_root(pkg, cache)
        if not (root / ".unpacked").is_file():
            continue
        cr = copyright_file(pkg, cache)
        refs = []
        for f in glob.glob(str(root / PACKAGE_GLOBS[pkg]), recursive=True):
            stem = Path(f).stem
            if any(s in stem for s in SKIP_REFERENCE):
                continue
            try:
                if sf.info(f).duration < MIN_REFERENCE_S:
                    continue
            except RuntimeError:
                continue
            name = f"{pkg}/{stem}"
            refs.append(Reference(name, Path(f), pkg, {f"COPYRIGHT.{pkg}": cr} if cr else {}))
        refs.sort(key=lambda r: _stable_key(r.name))
        per_pkg.append(refs)
    out = []
    for i in range(max((len(r) for r in per_pkg), default=0)):
        out += [refs[i] for refs in per_pkg if i < len(refs)]
    return out


def rendered_stem_sets(n: int, cache: Path = CACHE, log=print) -> list[StemSet]:
    """``n`` songs rendered by :mod:`training.synth` (mma grooves, seeded); [] when unavailable."""
    if n <= 0:
        return []
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    try:
        from training.midi_render import find_soundfonts
        from training.synth import SynthConfig, make_song
        fonts = find_soundfonts()
        if not fonts or shutil.which("mma") is None:
            raise RuntimeError("mma or a GM SoundFont is not installed")
        cfg = SynthConfig(sources={"mma": 1.0}, soundfont=str(fonts[0]), verify=False,
                          seconds=(60.0, 75.0))
        sets = []
        for i in range(n):
            song = make_song(i, cache / "rendered", seed=SEED, cfg=cfg, sources={"mma": 1.0})
            prov = json.loads((song / "provenance.json").read_text())
            stems = {Path(s).stem: song / s for s in prov["stems"]}
            copies = {"provenance.json": song / "provenance.json"}
            for what, path in (prov.get("copyright") or {}).items():
                if path and Path(str(path)).is_file():
                    copies[f"COPYRIGHT.{what}"] = Path(path)
            sets.append(StemSet(f"rendered/{song.name}", stems, "rendered", copies))
        return sets
    except Exception as exc:  # optional material: say why and go on
        log(f"  rendered stems skipped: {type(exc).__name__}: {exc}")
        return []


def find_material(mode: Mode = FULL, cache: Path = CACHE, fetch_missing: bool = True,
                  log=print) -> Material:
    missing = []
    for pkg in mode.packages:
        if (package_root(pkg, cache) / ".unpacked").is_file():
            continue
        if not fetch_missing or fetch(pkg, cache, log=log) is None:
            missing.append(pkg)
    sets = find_stem_sets(cache)
    if mode.songs is not None:
        sets = sets[:mode.songs]
    sets += rendered_stem_sets(mode.rendered, cache, log)
    refs = find_references([p for p in REFERENCE_PACKAGES if p in mode.packages], cache)
    return Material(sets, refs, missing)


# ---------------------------------------------------------------------------------------------
# Excerpts
# ---------------------------------------------------------------------------------------------

def read(path, sr: int = SR) -> np.ndarray:
    """A file as float64 (2, samples) at ``sr`` (mono duplicated, other rates resampled)."""
    x, file_sr = sf.read(str(path), dtype="float64", always_2d=True)
    x = x.T
    if x.shape[0] == 1:
        x = np.repeat(x, 2, axis=0)
    if x.shape[0] != 2:
        raise ValueError(f"{path}: {x.shape[0]} channels")
    if file_sr != sr:
        g = np.gcd(file_sr, sr)
        x = resample_poly(x, sr // g, file_sr // g, axis=-1)
    return np.ascontiguousarray(x)


def loudest_window(audio: np.ndarray, sr: int, seconds: float, hop_s: float = 0.5,
                   exclude: tuple[int, int] | None = None) -> int:
    """Start sample of the ``seconds`` window (starts on a ``hop_s`` grid) with the most energy;
    ``exclude`` = (start, stop) samples that the window must not overlap (if it can avoid it).
    The first of equal maxima wins, so the choice is deterministic."""
    n = audio.shape[-1]
    win = int(round(seconds * sr))
    if n <= win:
        return 0
    hop = max(1, int(round(hop_s * sr)))
    power = np.square(audio).reshape(-1, n).sum(0)
    csum = np.concatenate([[0.0], np.cumsum(power)])
    starts = np.arange(0, n - win + 1, hop)
    energy = csum[starts + win] - csum[starts]
    if exclude is not None:
        ok = (starts + win <= exclude[0]) | (starts >= exclude[1])
        if ok.any():
            energy = np.where(ok, energy, -np.inf)
    return int(starts[int(np.argmax(energy))])


def write(path: Path, audio: np.ndarray, sr: int = SR) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.asarray(audio).T, sr, subtype="PCM_24")


# ---------------------------------------------------------------------------------------------
# The "engineer": an independent mix + master chain with seeded, realistic settings
# ---------------------------------------------------------------------------------------------

def _log_uniform(rng, lo, hi):
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def engineer_settings(rng: np.random.Generator, stem_names: list[str]) -> dict:
    """Seeded settings in physical units, in the ranges a mix engineer uses."""
    tracks = {}
    for name in stem_names:
        tracks[name] = {
            "highpass_hz": _log_uniform(rng, 20.0, 120.0),
            "lowshelf": {"freq_hz": _log_uniform(rng, 80.0, 250.0), "gain_db": rng.uniform(-4, 4)},
            "peak": {"freq_hz": _log_uniform(rng, 300.0, 4000.0), "gain_db": rng.uniform(-5, 5),
                     "q": _log_uniform(rng, 0.7, 2.0)},
            "highshelf": {"freq_hz": _log_uniform(rng, 4000.0, 10000.0), "gain_db": rng.uniform(-4, 4)},
            "compressor": {"depth_db": rng.uniform(6.0, 18.0), "ratio": _log_uniform(rng, 1.5, 4.0),
                           "attack_ms": _log_uniform(rng, 3.0, 30.0),
                           "release_ms": _log_uniform(rng, 50.0, 300.0)},
            "level_db": rng.uniform(-6.0, 6.0),       # relative to equal loudness
            "pan": rng.uniform(-0.5, 0.5),
        }
    master = {
        "lowshelf": {"freq_hz": _log_uniform(rng, 60.0, 200.0), "gain_db": rng.uniform(-3, 3)},
        "peak": {"freq_hz": _log_uniform(rng, 400.0, 3000.0), "gain_db": rng.uniform(-2.5, 2.5),
                 "q": _log_uniform(rng, 0.5, 1.5)},
        "highshelf": {"freq_hz": _log_uniform(rng, 5000.0, 12000.0), "gain_db": rng.uniform(-3, 3)},
        "compressor": {"depth_db": rng.uniform(4.0, 10.0), "ratio": _log_uniform(rng, 1.5, 3.0),
                       "attack_ms": _log_uniform(rng, 10.0, 40.0),
                       "release_ms": _log_uniform(rng, 100.0, 400.0)},
        "width": rng.uniform(0.8, 1.3),
        "target_lufs": rng.uniform(-14.0, -9.0),
        "limiter": {"threshold_db": -1.0, "release_ms": _log_uniform(rng, 50.0, 200.0)},
    }
    return {"tracks": tracks, "master": master}


# --- scipy chain (used when pedalboard is not installed) ---

def _rbj_sos(kind: str, f0: float, sr: int, gain_db: float = 0.0, q: float = 0.7071) -> np.ndarray:
    """One RBJ audio-EQ-cookbook biquad as an SOS row (written here, not taken from automix)."""
    a = 10 ** (gain_db / 40)
    w0 = 2 * np.pi * f0 / sr
    cw, sw = np.cos(w0), np.sin(w0)
    alpha = sw / (2 * q)
    if kind == "highpass":
        b = [(1 + cw) / 2, -(1 + cw), (1 + cw) / 2]
        den = [1 + alpha, -2 * cw, 1 - alpha]
    elif kind == "peak":
        b = [1 + alpha * a, -2 * cw, 1 - alpha * a]
        den = [1 + alpha / a, -2 * cw, 1 - alpha / a]
    elif kind in ("lowshelf", "highshelf"):
        s = 2 * np.sqrt(a) * alpha
        sign = 1 if kind == "lowshelf" else -1
        b = [a * ((a + 1) - sign * (a - 1) * cw + s), sign * 2 * a * ((a - 1) - sign * (a + 1) * cw),
             a * ((a + 1) - sign * (a - 1) * cw - s)]
        den = [(a + 1) + sign * (a - 1) * cw + s, -sign * 2 * ((a - 1) + sign * (a + 1) * cw),
               (a + 1) + sign * (a - 1) * cw - s]
    else:
        raise ValueError(kind)
    b, den = np.array(b) / den[0], np.array(den) / den[0]
    return np.concatenate([b, den])[None]


def _scipy_compress(x, sr, threshold_db, ratio, attack_ms, release_ms, knee_db=6.0):
    """Feed-forward, stereo-linked: RMS detector (attack time constant), static soft-knee curve,
    gain reduction smoothed with the release time constant."""
    def pole(ms):
        return float(np.exp(-1.0 / (ms * 1e-3 * sr)))
    p = np.square(x).mean(0)
    a = pole(attack_ms)
    level = 10 * np.log10(lfilter([1 - a], [1, -a], p) + 1e-12)
    over = level - threshold_db
    gr = np.where(over <= -knee_db / 2, 0.0,
                  np.where(over >= knee_db / 2, over * (1 - 1 / ratio),
                           (1 - 1 / ratio) * (over + knee_db / 2) ** 2 / (2 * knee_db)))
    r = pole(release_ms)
    gr = lfilter([1 - r], [1, -r], gr)
    return x * 10 ** (-gr / 20)


def _scipy_limit(x, sr, threshold_db, release_ms, lookahead_ms=5.0, block=32):
    """Look-ahead sample-peak limiter (offline, so the look-ahead is a centred window): the gain
    each sample needs, held over +-look-ahead, released no faster than a one-pole of
    ``release_ms`` (run on 32-sample blocks), box-smoothed over the look-ahead -- the average
    of values held over a wider window stays at or under what each peak needs."""
    la = max(1, int(lookahead_ms * 1e-3 * sr))
    n = x.shape[1]
    need = np.minimum(1.0, 10 ** (threshold_db / 20) / np.maximum(np.abs(x).max(0), 1e-12))
    held = minimum_filter1d(need, 2 * la + 1)
    nb = -(-n // block)
    hb = np.pad(held, (0, nb * block - n), constant_values=1.0).reshape(nb, block).min(1)
    r = float(np.exp(-block / (release_ms * 1e-3 * sr)))
    gb = np.empty(nb)
    g = 1.0
    for i, v in enumerate(hb):
        g = min(v, r * g + (1 - r))
        gb[i] = g
    gain = np.repeat(gb, block)[:n]
    k = la + 1 - (la % 2)                     # odd length: centred
    gain = np.convolve(np.pad(gain, k // 2, mode="edge"), np.ones(k) / k, mode="valid")
    return x * gain


class _ScipyChain:
    name = "scipy"

    def __init__(self, sr):
        self.sr = sr

    def eq(self, x, bands):
        sos = np.concatenate([_rbj_sos(k, f, self.sr, g, q) for k, f, g, q in bands])
        return sosfilt(sos, x, axis=-1)

    def compress(self, x, threshold_db, ratio, attack_ms, release_ms):
        return _scipy_compress(x, self.sr, threshold_db, ratio, attack_ms, release_ms)

    def limit(self, x, threshold_db, release_ms):
        return _scipy_limit(x, self.sr, threshold_db, release_ms)


class _PedalboardChain:
    name = "pedalboard"

    def __init__(self, sr):
        import pedalboard
        self.pb, self.sr = pedalboard, sr

    def _run(self, plugins, x):
        return self.pb.Pedalboard(plugins)(x.astype(np.float32), self.sr).astype(np.float64)

    def eq(self, x, bands):
        pb = self.pb
        make = {"highpass": lambda f, g, q: pb.HighpassFilter(cutoff_frequency_hz=f),
                "lowshelf": lambda f, g, q: pb.LowShelfFilter(cutoff_frequency_hz=f, gain_db=g, q=q),
                "peak": lambda f, g, q: pb.PeakFilter(cutoff_frequency_hz=f, gain_db=g, q=q),
                "highshelf": lambda f, g, q: pb.HighShelfFilter(cutoff_frequency_hz=f, gain_db=g, q=q)}
        return self._run([make[k](f, g, q) for k, f, g, q in bands], x)

    def compress(self, x, threshold_db, ratio, attack_ms, release_ms):
        return self._run([self.pb.Compressor(threshold_db=threshold_db, ratio=ratio,
                                             attack_ms=attack_ms, release_ms=release_ms)], x)

    def limit(self, x, threshold_db, release_ms):
        return self._run([self.pb.Limiter(threshold_db=threshold_db, release_ms=release_ms)], x)


def engineer_engine(sr: int, prefer: str = "pedalboard"):
    if prefer == "pedalboard":
        try:
            return _PedalboardChain(sr)
        except ImportError:
            pass
    return _ScipyChain(sr)


def _lufs(x: np.ndarray, sr: int) -> float:
    import pyloudnorm
    return float(pyloudnorm.Meter(sr).integrated_loudness(x.T))


def _peak_db(x) -> float:
    return float(20 * np.log10(np.abs(x).max() + 1e-12))


def engineer_mix(stems: dict, sr: int, settings: dict, engine) -> np.ndarray:
    """Mix (EQ -> compressor -> level -> balance per stem) and master (EQ -> glue compressor ->
    width -> gain to the target loudness -> limiter) with the engine; returns (2, T) float64."""
    mix = 0.0
    for name, x in stems.items():
        t = settings["tracks"][name]
        y = engine.eq(x, [("highpass", t["highpass_hz"], 0.0, 0.7071),
                          ("lowshelf", t["lowshelf"]["freq_hz"], t["lowshelf"]["gain_db"], 0.7071),
                          ("peak", t["peak"]["freq_hz"], t["peak"]["gain_db"], t["peak"]["q"]),
                          ("highshelf", t["highshelf"]["freq_hz"], t["highshelf"]["gain_db"], 0.7071)])
        c = t["compressor"]
        y = engine.compress(y, _peak_db(y) - c["depth_db"], c["ratio"], c["attack_ms"], c["release_ms"])
        loud = _lufs(y, sr)
        y = y * 10 ** ((-23.0 - loud + t["level_db"]) / 20) if np.isfinite(loud) else y
        theta = (t["pan"] + 1) * np.pi / 4                   # constant-power balance
        y = y * (np.sqrt(2) * np.array([[np.cos(theta)], [np.sin(theta)]]))
        mix = mix + y
    m = settings["master"]
    y = engine.eq(mix, [("lowshelf", m["lowshelf"]["freq_hz"], m["lowshelf"]["gain_db"], 0.7071),
                        ("peak", m["peak"]["freq_hz"], m["peak"]["gain_db"], m["peak"]["q"]),
                        ("highshelf", m["highshelf"]["freq_hz"], m["highshelf"]["gain_db"], 0.7071)])
    c = m["compressor"]
    y = engine.compress(y, _peak_db(y) - c["depth_db"], c["ratio"], c["attack_ms"], c["release_ms"])
    mid, side = (y[0] + y[1]) / 2, (y[0] - y[1]) / 2 * m["width"]
    y = np.stack([mid + side, mid - side])
    lim = m["limiter"]

    def master(gain_db):
        return engine.limit(y * 10 ** (gain_db / 20), lim["threshold_db"], lim["release_ms"])

    g0 = m["target_lufs"] - _lufs(y, sr)
    l0 = _lufs(master(g0), sr)
    g1 = g0 + (m["target_lufs"] - l0)
    for _ in range(8):                        # secant search: the limiter gives back less
        l1 = _lufs(master(g1), sr)
        if abs(l1 - m["target_lufs"]) < 0.05 or g1 == g0:
            break
        slope = float(np.clip((l1 - l0) / (g1 - g0), 0.1, 1.5))
        g0, l0, g1 = g1, l1, float(np.clip(g1 + (m["target_lufs"] - l1) / slope, g1 - 12, g1 + 12))
    out = master(g1)
    m["gain_db"] = float(g1)
    return out


# ---------------------------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------------------------

@dataclass
class Case:
    id: str
    kind: str                  # mixing | mastering | known_target
    dir: Path
    stems: str | None          # folder of stems
    mix: str | None            # mastering input
    reference: str
    target: str | None         # known-target ground truth
    info: dict

    def path(self, rel: str | None) -> Path | None:
        return None if rel is None else self.dir / rel

    def to_json(self) -> dict:
        d = asdict(self)
        d["dir"] = str(self.dir)
        return d


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in text).strip("_").lower()


def _copy_copyrights(case_dir: Path, *things) -> list[str]:
    names = []
    for thing in things:
        for name, src in thing.copyrights.items():
            if src and Path(src).is_file():
                shutil.copyfile(src, case_dir / name)
                names.append(name)
    return sorted(set(names))


def _load_set(stem_set: StemSet, sr: int) -> dict:
    stems = {n: read(p, sr) for n, p in stem_set.stems.items()}
    n = max(x.shape[1] for x in stems.values())
    return {k: np.pad(v, ((0, 0), (0, n - v.shape[1]))) for k, v in stems.items()}


def _cut(x, start, length):
    y = x[:, start:start + length]
    return np.pad(y, ((0, 0), (0, length - y.shape[1]))) if y.shape[1] < length else y


def _reference_excerpt(ref: Reference, seconds: float, sr: int):
    audio = read(ref.path, sr)
    start = loudest_window(audio, sr, seconds)
    return _cut(audio, start, int(round(seconds * sr))), start / sr


def _finish(case_dir: Path, case: dict) -> Case:
    (case_dir / "case.json").write_text(json.dumps(case, indent=2, sort_keys=True) + "\n")
    return Case(dir=case_dir, **case)


def build_cases(material: Material, out_dir: Path, mode: Mode = FULL, sr: int = SR,
                engine: str = "pedalboard", log=print) -> list[Case]:
    """Cut excerpts and write every case of ``material`` into ``out_dir`` (kept when it exists
    with the same recipe).  Order: mixing, mastering and known-target cases interleaved, so that
    the first N cases cover every kind."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    refs = list(material.references)
    n_excerpt = int(round(mode.excerpt_s * sr))
    by_kind = {"mixing": [], "mastering": [], "known_target": []}
    pointers = {"mixing": 0, "mastering": -1}   # mixing walks the list forwards, mastering back

    def next_ref(kind):
        if not refs:
            return None
        r = refs[pointers[kind] % len(refs)]
        pointers[kind] += 1 if kind == "mixing" else -1
        return r

    for k, stem_set in enumerate(material.stem_sets):
        stems = None
        # mixing cases
        for j in range(mode.mixing_refs_per_song):
            ref = next_ref("mixing")
            if ref is None:
                break
            cid = f"mix_{_slug(stem_set.name)}__{_slug(ref.name)}"
            recipe = {"kind": "mixing", "stem_set": stem_set.name, "reference": ref.name,
                      "excerpt_s": mode.excerpt_s, "version": CASES_VERSION}
            case = _existing(out_dir / cid, recipe)
            if case is None:
                stems = stems if stems is not None else _load_set(stem_set, sr)
                total = sum(stems.values())
                start = loudest_window(total, sr, mode.excerpt_s)
                d = _fresh(out_dir / cid)
                for name, x in stems.items():
                    write(d / "stems" / f"{name}.wav", _cut(x, start, n_excerpt), sr)
                ref_audio, ref_off = _reference_excerpt(ref, mode.excerpt_s, sr)
                write(d / "reference.wav", ref_audio, sr)
                info = dict(recipe, stems_offset_s=start / sr, reference_offset_s=ref_off,
                            stem_names=sorted(stems), source=stem_set.source,
                            reference_source=ref.source,
                            copyright=_copy_copyrights(d, stem_set, ref))
                case = _finish(d, {"id": cid, "kind": "mixing", "stems": "stems", "mix": None,
                                   "reference": "reference.wav", "target": None, "info": info})
            by_kind["mixing"].append(case)
        # mastering case: the plain sum of another window of the same set
        if mode.mastering:
            ref = next_ref("mastering")
            if ref is not None:
                cid = f"master_{_slug(stem_set.name)}__{_slug(ref.name)}"
                recipe = {"kind": "mastering", "stem_set": stem_set.name, "reference": ref.name,
                          "excerpt_s": mode.excerpt_s, "version": CASES_VERSION}
                case = _existing(out_dir / cid, recipe)
                if case is None:
                    stems = stems if stems is not None else _load_set(stem_set, sr)
                    total = sum(stems.values())
                    first = loudest_window(total, sr, mode.excerpt_s)
                    start = loudest_window(total, sr, mode.excerpt_s,
                                           exclude=(first, first + n_excerpt))
                    d = _fresh(out_dir / cid)
                    write(d / "mix.wav", _cut(total, start, n_excerpt), sr)
                    ref_audio, ref_off = _reference_excerpt(ref, mode.excerpt_s, sr)
                    write(d / "reference.wav", ref_audio, sr)
                    info = dict(recipe, mix_offset_s=start / sr, reference_offset_s=ref_off,
                                stem_names=sorted(stems), source=stem_set.source,
                                reference_source=ref.source,
                                copyright=_copy_copyrights(d, stem_set, ref))
                    case = _finish(d, {"id": cid, "kind": "mastering", "stems": None,
                                       "mix": "mix.wav", "reference": "reference.wav",
                                       "target": None, "info": info})
                by_kind["mastering"].append(case)
        # known-target case
        cid = f"known_{_slug(stem_set.name)}"
        recipe = {"kind": "known_target", "stem_set": stem_set.name, "excerpt_s": mode.excerpt_s,
                  "engine_preference": engine, "version": CASES_VERSION, "seed": SEED + k}
        case = _existing(out_dir / cid, recipe)
        if case is None:
            stems = stems if stems is not None else _load_set(stem_set, sr)
            total = sum(stems.values())
            start = loudest_window(total, sr, 2 * mode.excerpt_s)
            cut = {n: _cut(x, start, 2 * n_excerpt) for n, x in stems.items()}
            rng = np.random.default_rng([SEED, k, int(_stable_key(stem_set.name)[:8], 16)])
            settings = engineer_settings(rng, sorted(cut))
            eng = engineer_engine(sr, engine)
            master = engineer_mix({n: cut[n] for n in sorted(cut)}, sr, settings, eng)
            d = _fresh(out_dir / cid)
            write(d / "reference.wav", master[:, :n_excerpt], sr)
            write(d / "target.wav", master[:, n_excerpt:], sr)
            for name, x in cut.items():
                write(d / "stems" / f"{name}.wav", x[:, n_excerpt:], sr)
            info = dict(recipe, stems_offset_s=start / sr, engine=eng.name,
                        engineer_settings=settings, stem_names=sorted(stems),
                        source=stem_set.source, copyright=_copy_copyrights(d, stem_set))
            case = _finish(d, {"id": cid, "kind": "known_target", "stems": "stems", "mix": None,
                               "reference": "reference.wav", "target": "target.wav", "info": info})
        by_kind["known_target"].append(case)
    cases = []
    for i in range(max(len(v) for v in by_kind.values())):
        cases += [v[i] for v in by_kind.values() if i < len(v)]
    keep = {c.id for c in cases}
    for d in out_dir.iterdir():          # cases of an older recipe
        if d.is_dir() and (d / "case.json").is_file() and d.name not in keep:
            shutil.rmtree(d)
    (out_dir / "cases.json").write_text(json.dumps([c.to_json() for c in cases], indent=2) + "\n")
    return cases


def _fresh(d: Path) -> Path:
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    return d


def _existing(d: Path, recipe: dict) -> Case | None:
    """The case in ``d`` if it was built from the same recipe."""
    f = d / "case.json"
    if not f.is_file():
        return None
    case = json.loads(f.read_text())
    if any(case["info"].get(k) != v for k, v in recipe.items()):
        return None
    return Case(dir=d, **case)


def case_digest(case: Case) -> str:
    """sha1 over every file of a case (names and bytes): equal digests = identical cases."""
    h = hashlib.sha1()
    for p in sorted(case.dir.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(case.dir)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# Synthetic material (the quick mode's fallback when the packages cannot be fetched; the tests)
# ---------------------------------------------------------------------------------------------

def synthetic_material(folder: Path, seconds: float = 20.0, sr: int = SR, seed: int = SEED,
                       sets: int = 1, references: int = 2) -> Material:
    """Music-like synthetic stems and references (seeded): a bass line, a chord pad with
    filtered-noise drums, and finished 'masters' of other seeds.  For smoke tests only."""
    folder = Path(folder)
    n = int(seconds * sr)
    t = np.arange(n) / sr

    def song(rng):
        bpm = rng.uniform(90, 140)
        beat = 60 / bpm
        root = rng.uniform(45, 65)
        notes = root * 2 ** (rng.integers(0, 8, size=int(seconds / beat) + 2) / 12)
        idx = (t / beat).astype(int)
        phase_t = t % beat
        env = np.exp(-phase_t * rng.uniform(3, 8))
        bass = np.sin(2 * np.pi * np.cumsum(notes[idx]) / sr) * env
        pad = sum(np.sin(2 * np.pi * notes[idx // 4 * 4] * r * t + p) for r, p in
                  ((2, 0.0), (2.5198, 1.0), (3, 2.0), (4, 0.5))) * 0.15
        noise = rng.standard_normal(n)
        hat = lfilter([1, -1], [1, -0.3], noise) * np.exp(-((t % (beat / 2)) * 40)) * 0.2
        kick = np.sin(2 * np.pi * 55 * t * np.exp(-phase_t * 8)) * np.exp(-phase_t * 10)
        drums = hat + kick
        spread = rng.uniform(0.2, 0.6)
        stereo = lambda x, d: np.stack([x, np.roll(x, d)]) * np.array([[1 - spread / 2], [1 + spread / 2]])
        return {"bass": stereo(0.5 * bass, 0), "backing": stereo(pad + drums, int(sr * 0.011))}

    stem_sets, refs = [], []
    for i in range(sets):
        rng = np.random.default_rng([seed, 1, i])
        stems = song(rng)
        d = folder / f"set{i}"
        for name, x in stems.items():
            write(d / f"{name}.wav", x / (np.abs(x).max() * 1.5), sr)
        (d / "COPYRIGHT").write_text("synthetic test material, no copyright\n")
        stem_sets.append(StemSet(f"synthetic/set{i}", {k: d / f"{k}.wav" for k in sorted(stems)},
                                 "synthetic", {"COPYRIGHT.synthetic": d / "COPYRIGHT"}))
    for i in range(references):
        rng = np.random.default_rng([seed, 2, i])
        stems = song(rng)
        eng = _ScipyChain(sr)
        master = engineer_mix(stems, sr, engineer_settings(rng, sorted(stems)), eng)
        p = folder / "refs" / f"ref{i}.wav"
        write(p, master, sr)
        refs.append(Reference(f"synthetic/ref{i}", p, "synthetic",
                              {"COPYRIGHT.synthetic": stem_sets[0].copyrights["COPYRIGHT.synthetic"]}))
    return Material(stem_sets, refs)


def prepare(mode: Mode = FULL, cache: Path = CACHE, fetch_missing: bool = True,
            allow_synthetic: bool = False, engine: str = "pedalboard", log=print) -> tuple[list, dict]:
    """Fetch (if needed) and build the cases of ``mode``; returns (cases, provenance info)."""
    material = find_material(mode, cache, fetch_missing, log)
    info = {"mode": mode.name, "missing_packages": material.missing, "synthetic": False}
    if not material.stem_sets or not material.references:
        if not allow_synthetic:
            raise SystemExit("no benchmark material: the Debian packages could not be fetched "
                             f"(missing: {', '.join(material.missing)}); run `apt-get update`")
        log("  real material unavailable: using synthetic stems and references (smoke test only)")
        material = synthetic_material(cache / "synthetic", seconds=max(20.0, 2.5 * mode.excerpt_s))
        info["synthetic"] = True
    sub = f"{mode.name}-v{CASES_VERSION}" + ("-synthetic" if info["synthetic"] else "")
    cases = build_cases(material, cache / "cases" / sub, mode, engine=engine, log=log)
    info["packages"] = {p: (package_root(p, cache) / ".unpacked").read_text().strip()
                        for p in mode.packages if (package_root(p, cache) / ".unpacked").is_file()}
    return cases, info


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="only the quick mode's material")
    ap.add_argument("--no-fetch", action="store_true", help="use only what is in the cache")
    args = ap.parse_args(argv)
    cases, info = prepare(QUICK if args.quick else FULL, fetch_missing=not args.no_fetch,
                          allow_synthetic=args.quick)
    print(json.dumps(info, indent=2))
    for c in cases:
        print(f"{c.kind:13s} {c.id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
