"""Multitrack datasets: find the songs of a folder, and serve aligned random crops of their stems.

Layouts (``layout`` in ``configs/data/*.yaml``):

``generic``   ``ROOT/<song>/<stem>.{wav,flac,ogg,...}``: every audio file directly in a song folder
              is a stem, except mixtures (``mixture``, ``mix``, ``mixdown``, ``master``, ``full mix``
              ... or ``<song>_mix``; see ``MIXTURE_NAMES``). Hidden files (``._x.wav``) are ignored.
              Labels come from the file names, or from ``stems.json`` when the folder has one
              (what ``automix-data render-midi``/``synth`` write).
``musdb``     MUSDB18-HQ: ``ROOT/{train,test}/<song>/{drums,bass,other,vocals}.wav`` (+ the excluded
              ``mixture.wav``). ``subsets`` picks train and/or test.
``medleydb``  MedleyDB: ``ROOT/<Song>/<Song>_STEMS/*.wav``; instrument labels from
              ``<Song>_METADATA.yaml`` (in the song folder, or ``ROOT/Metadata/``) when present.
``synth``     what ``automix-data synth`` writes (the generic layout).

A song needs at least two readable stems; unreadable files and songs with fewer stems are skipped
with a :class:`DatasetWarning`; a dataset with no usable song is an :class:`AutomixError`.

:class:`MultitrackDataset` yields, per index, one crop of one song (song ``index % n_songs``)::

    stems     float32 (max_tracks, 2, crop_samples)  mono stems on both channels, zero padding
              (``pad_to_max_tracks=False``: the song's own track count; ``collate_crops`` then
              pads each batch to its largest song -- much less memory for songs with few stems)
    mask      bool (max_tracks,)   True for real tracks
    is_stereo bool (max_tracks,)   the file had two channels
    active    bool (max_tracks,)   the track is not silent in this crop
    names, labels   lists of max_tracks strings ("" for padding)
    song (str), start_seconds (float), sample_rate (int)

Crops start at the same instant in every stem (each stem is read with a partial read of just
the frames needed, then resampled to ``sample_rate`` if its rate differs). A crop in which fewer
than ``min_active`` tracks are above ``silence_db`` is redrawn (up to ``max_tries``, then the
best one is kept). Songs with more than ``max_tracks`` stems get a random subset per crop.

Determinism: the crop of ``index`` depends only on ``(seed, epoch, index)`` through its own
``numpy`` generator, never on global state, so any number of DataLoader workers (and any worker
start method) gives the same batches. Call :meth:`MultitrackDataset.set_epoch` for new crops
each epoch (before creating the DataLoader iterator; not with ``persistent_workers``).

The validation split is by song: a song is in ``valid`` when a hash of ``salt:song_id`` falls
below ``valid_fraction`` -- stable when songs are added or removed, the same on every machine.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import Dataset

from automix.audio import AUDIO_EXTENSIONS, audio_info, resample
from automix.errors import AutomixError

MIXTURE_NAMES = frozenset({
    "mixture", "mix", "mixdown", "mix down", "master", "mastered", "full mix", "fullmix",
    "stereo mix", "stereomix", "final mix", "premaster", "mixture stereo", "linear mixture",
})
LAYOUTS = ("generic", "musdb", "medleydb", "synth")
MUSDB_STEMS = ("drums", "bass", "other", "vocals")


class DatasetWarning(UserWarning):
    """A file or song that was skipped, and why."""


def _warn(msg: str) -> None:
    warnings.warn(msg, DatasetWarning, stacklevel=3)


@dataclass(frozen=True)
class StemInfo:
    path: str
    name: str           # file name without extension
    label: str          # instrument label (lower case)
    sample_rate: int
    frames: int
    channels: int

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate


@dataclass(frozen=True)
class SongInfo:
    id: str
    stems: tuple[StemInfo, ...]
    layout: str = "generic"

    @property
    def seconds(self) -> float:
        return max(s.seconds for s in self.stems)


# --------------------------------------------------------------------------- scanning

def _norm(name: str) -> str:
    return re.sub(r"[\s_\-.]+", " ", name.lower()).strip()


def label_from_name(name: str) -> str:
    """``"03_Kick-In"`` -> ``"kick in"``: numbering and separators removed, lower case."""
    text = _norm(name)
    text = re.sub(r"^(\d+\s*)+", "", text)
    text = re.sub(r"(\s*\d+)+$", "", text)
    return text.strip() or _norm(name)


def is_mixture_name(stem_name: str, song_name: str = "", extra: Iterable[str] = ()) -> bool:
    """True for files that hold a mix rather than a stem (``mixture.wav``, ``<song>_mix.wav``)."""
    n = _norm(stem_name)
    names = MIXTURE_NAMES | {_norm(e) for e in extra}
    if n in names:
        return True
    song = _norm(song_name)
    if song and n.startswith(song + " "):
        return n[len(song) + 1:] in names
    return False


def _audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in AUDIO_EXTENSIONS)


def _stem(path: Path, label: str | None = None) -> StemInfo | None:
    try:
        info = audio_info(path)
    except AutomixError as exc:
        _warn(f"skipped stem: {exc}")
        return None
    return StemInfo(str(path), path.stem, (label or label_from_name(path.stem)).lower(),
                    info.sample_rate, info.frames, info.channels)


def _song(song_id: str, stems: list[StemInfo | None], layout: str, min_stems: int) -> SongInfo | None:
    good = [s for s in stems if s is not None]
    if len(good) < min_stems:
        _warn(f"skipped song {song_id}: {len(good)} readable stem(s), needs at least {min_stems}")
        return None
    return SongInfo(song_id, tuple(good), layout)


def _labels_from_stems_json(folder: Path) -> dict[str, str]:
    path = folder / "stems.json"
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
        return {s["file"]: str(s.get("label") or "") for s in data.get("stems", []) if s.get("file")}
    except (ValueError, KeyError, TypeError, AttributeError):
        _warn(f"{path}: unreadable stems.json, labels taken from file names")
        return {}


def _check_root(root: str | os.PathLike) -> Path:
    root = Path(root).expanduser()
    if not root.is_dir():
        raise AutomixError(f"{root}: dataset folder not found")
    return root


def scan_generic(root: str | os.PathLike, *, exclude: Iterable[str] = (), min_stems: int = 2,
                 layout: str = "generic") -> list[SongInfo]:
    """Songs of ``ROOT/<song>/<stem>.<ext>`` (see the module notes)."""
    root = _check_root(root)
    songs = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = _audio_files(folder)
        if not files:
            continue
        labels = _labels_from_stems_json(folder)
        stems = [_stem(f, labels.get(f.name) or None) for f in files
                 if not is_mixture_name(f.stem, folder.name, exclude)]
        song = _song(folder.name, stems, layout, min_stems)
        if song:
            songs.append(song)
    return songs


def scan_musdb(root: str | os.PathLike, *, subsets: Sequence[str] = ("train",),
               min_stems: int = 2) -> list[SongInfo]:
    """MUSDB18-HQ songs of the given subsets (``ROOT/train``, ``ROOT/test``)."""
    root = _check_root(root)
    songs = []
    if not any((root / s).is_dir() for s in subsets):
        if list(root.glob("**/*.stem.mp4"))[:1]:
            raise AutomixError(f"{root}: MUSDB18 .stem.mp4 files are not read; use MUSDB18-HQ (wav) "
                               "or decode them first (musdbconvert)")
        raise AutomixError(f"{root}: no {' or '.join(subsets)} folder (MUSDB18-HQ layout: "
                           "ROOT/train/<song>/{drums,bass,other,vocals}.wav)")
    for subset in subsets:
        sub = root / subset
        if not sub.is_dir():
            _warn(f"{sub}: subset folder missing")
            continue
        for folder in sorted(p for p in sub.iterdir() if p.is_dir() and not p.name.startswith(".")):
            files = {f.stem.lower(): f for f in _audio_files(folder)}
            stems = []
            for name in MUSDB_STEMS:
                if name in files:
                    stems.append(_stem(files[name], name))
                else:
                    _warn(f"{folder}: {name} stem missing")
            song = _song(f"{subset}/{folder.name}", stems, "musdb", min_stems)
            if song:
                songs.append(song)
    return songs


def _medleydb_metadata(root: Path, folder: Path, song: str) -> dict[str, str]:
    for cand in (folder / f"{song}_METADATA.yaml", root / "Metadata" / f"{song}_METADATA.yaml",
                 root.parent / "Metadata" / f"{song}_METADATA.yaml"):
        if cand.is_file():
            break
    else:
        return {}
    try:
        import yaml

        data = yaml.safe_load(cand.read_text(errors="replace")) or {}
        labels = {}
        for entry in (data.get("stems") or {}).values():
            inst = entry.get("instrument")
            if isinstance(inst, (list, tuple)):
                inst = "/".join(str(i) for i in inst)
            if entry.get("filename") and inst:
                labels[str(entry["filename"])] = str(inst)
        return labels
    except Exception as exc:  # a broken YAML file should not stop the scan
        _warn(f"{cand}: unreadable metadata ({type(exc).__name__}); labels from file names")
        return {}


def scan_medleydb(root: str | os.PathLike, *, min_stems: int = 2) -> list[SongInfo]:
    """MedleyDB songs: ``ROOT/<Song>/<Song>_STEMS/*.wav`` (+ metadata labels)."""
    root = _check_root(root)
    songs = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        stem_dir = folder / f"{folder.name}_STEMS"
        if not stem_dir.is_dir():
            continue
        labels = _medleydb_metadata(root, folder, folder.name)
        stems = [_stem(f, labels.get(f.name)) for f in _audio_files(stem_dir)]
        song = _song(folder.name, stems, "medleydb", min_stems)
        if song:
            songs.append(song)
    return songs


def scan(layout: str, root: str | os.PathLike, **options: Any) -> list[SongInfo]:
    """Songs of ``root`` in ``layout``; an AutomixError when there is none."""
    if layout in ("generic", "synth"):
        songs = scan_generic(root, exclude=options.get("exclude") or (),
                             min_stems=options.get("min_stems", 2), layout=layout)
        hint = "expected ROOT/<song>/<stem>.wav (two or more stems per song folder)"
    elif layout == "musdb":
        songs = scan_musdb(root, subsets=tuple(options.get("subsets") or ("train",)),
                           min_stems=options.get("min_stems", 2))
        hint = "expected ROOT/train/<song>/{drums,bass,other,vocals}.wav"
    elif layout == "medleydb":
        songs = scan_medleydb(root, min_stems=options.get("min_stems", 2))
        hint = "expected ROOT/<Song>/<Song>_STEMS/*.wav"
    else:
        raise AutomixError(f"unknown dataset layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    if not songs:
        raise AutomixError(f"{root}: no usable song found for layout {layout!r} ({hint})")
    return songs


# --------------------------------------------------------------------------- splits

def split_of(song_id: str, valid_fraction: float, salt: str = "automix") -> str:
    """``"valid"`` or ``"train"`` from a hash of the song id (stable, machine independent)."""
    h = int.from_bytes(hashlib.sha1(f"{salt}:{song_id}".encode()).digest()[:8], "big") / 2.0 ** 64
    return "valid" if h < valid_fraction else "train"


def split_songs(songs: Sequence[SongInfo], split: str, valid_fraction: float = 0.1,
                salt: str = "automix") -> list[SongInfo]:
    """The songs of ``split`` (``train``, ``valid`` or ``all``).

    With two or more songs and 0 < valid_fraction < 1 neither split is left empty: the song with
    the lowest (highest) hash is moved when needed.
    """
    if split == "all":
        return list(songs)
    if split not in ("train", "valid"):
        raise AutomixError(f"split {split!r}: choose train, valid or all")
    tags = {s.id: split_of(s.id, valid_fraction, salt) for s in songs}
    if len(songs) >= 2 and 0 < valid_fraction < 1:
        def key(s: SongInfo) -> bytes:
            return hashlib.sha1(f"{salt}:{s.id}".encode()).digest()
        if "valid" not in tags.values():
            tags[min(songs, key=key).id] = "valid"
        if "train" not in tags.values():
            tags[max(songs, key=key).id] = "train"
    return [s for s in songs if tags[s.id] == split]


# --------------------------------------------------------------------------- reading crops

def read_frames(path: str, start: int, frames: int, total: int) -> np.ndarray:
    """``frames`` frames from ``start`` (may be negative or run past the end: zeros), ``(ch, n)``."""
    with sf.SoundFile(path) as f:
        channels = f.channels
        lo, hi = max(start, 0), min(start + frames, total)
        out = np.zeros((channels, frames), np.float32)
        if hi > lo:
            f.seek(lo)
            data = f.read(hi - lo, dtype="float32", always_2d=True)
            out[:, lo - start:lo - start + data.shape[0]] = data.T
    return out


def read_crop(stem: StemInfo, start_seconds: float, n: int, sample_rate: int) -> np.ndarray:
    """``n`` samples at ``sample_rate`` from ``start_seconds``, ``(channels, n)`` float32.

    Another rate is resampled from a partial read that starts on a sample where the two rates'
    grids coincide, so the crop starts exactly at ``round(start_seconds * sample_rate)``.
    """
    sr = stem.sample_rate
    start_out = int(round(start_seconds * sample_rate))
    if sr == sample_rate:
        return read_frames(stem.path, start_out, n, stem.frames)
    g = math.gcd(sr, sample_rate)
    q_in, p_out = sr // g, sample_rate // g      # q_in input samples span p_out output samples
    margin = 64                                  # output samples each side of the crop
    block = (start_out - margin) // p_out
    first = block * q_in
    j0 = start_out - block * p_out               # the crop's first sample in the resampled read
    n_in = int(math.ceil((j0 + n + margin) * sr / sample_rate)) + 1
    y = resample(read_frames(stem.path, first, n_in, stem.frames), sr, sample_rate)[:, j0:j0 + n]
    if y.shape[1] < n:
        y = np.pad(y, ((0, 0), (0, n - y.shape[1])))
    return np.ascontiguousarray(y, dtype=np.float32)


def _rms_db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.square(x, dtype=np.float64)) + 1e-20))


class MultitrackDataset(Dataset):
    """Aligned random crops of the stems of a list of songs (see the module notes)."""

    def __init__(self, songs: Sequence[SongInfo], *, sample_rate: int = 44100,
                 crop_seconds: float = 5.0, max_tracks: int = 16, seed: int = 0,
                 samples_per_epoch: int | None = None, silence_db: float = -60.0,
                 min_active: int = 2, max_tries: int = 10, shuffle_tracks: bool = False,
                 pad_to_max_tracks: bool = True):
        if not songs:
            raise AutomixError("the dataset has no songs")
        if max_tracks < 1 or crop_seconds <= 0 or sample_rate <= 0:
            raise AutomixError("max_tracks, crop_seconds and sample_rate must be positive")
        self.songs = list(songs)
        self.sample_rate = int(sample_rate)
        self.crop_seconds = float(crop_seconds)
        self.crop_samples = int(round(crop_seconds * sample_rate))
        self.max_tracks = int(max_tracks)
        self.seed = int(seed)
        self.samples_per_epoch = samples_per_epoch
        self.silence_db = float(silence_db)
        self.min_active = int(min_active)
        self.max_tries = max(int(max_tries), 1)
        self.shuffle_tracks = bool(shuffle_tracks)
        self.pad_to_max_tracks = bool(pad_to_max_tracks)
        self.epoch = 0
        self._bad: set[str] = set()

    def __len__(self) -> int:
        return int(self.samples_per_epoch) if self.samples_per_epoch else len(self.songs)

    @property
    def hours(self) -> float:
        return sum(s.seconds for s in self.songs) / 3600

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence([self.seed, self.epoch, int(index)]))

    def _read(self, stem: StemInfo, start: float) -> np.ndarray | None:
        if stem.path in self._bad:
            return None
        try:
            audio = read_crop(stem, start, self.crop_samples, self.sample_rate)
        except Exception as exc:  # a file that broke after the scan: drop it, keep training
            self._bad.add(stem.path)
            _warn(f"{stem.path}: unreadable ({type(exc).__name__}: {exc}); track left out")
            return None
        if not np.isfinite(audio).all():
            self._bad.add(stem.path)
            _warn(f"{stem.path}: NaN or infinite samples; track left out")
            return None
        return audio

    def __getitem__(self, index: int) -> dict[str, Any]:
        if index < 0:
            index += len(self)
        rng = self.rng(index)
        song = self.songs[index % len(self.songs)]
        n_stems = len(song.stems)
        span = max(song.seconds - self.crop_seconds, 0.0)
        best = None
        for _ in range(self.max_tries):
            if n_stems > self.max_tracks:
                chosen = np.sort(rng.choice(n_stems, self.max_tracks, replace=False))
            else:
                chosen = np.arange(n_stems)
            if self.shuffle_tracks:
                chosen = rng.permutation(chosen)
            start = float(rng.uniform(0.0, span)) if span > 0 else 0.0
            start = round(start * self.sample_rate) / self.sample_rate  # on the output grid
            audio = [self._read(song.stems[i], start) for i in chosen]
            active = [a is not None and _rms_db(a) > self.silence_db for a in audio]
            n_active = sum(active)
            if best is None or n_active > best[3]:
                best = (chosen, start, audio, n_active, active)
            if n_active >= min(self.min_active, len(chosen)):
                break
        chosen, start, audio, _, active = best
        return self._item(song, chosen, start, audio, active)

    def _item(self, song: SongInfo, chosen, start: float, audio, active) -> dict[str, Any]:
        T = self.max_tracks if self.pad_to_max_tracks else len(chosen)
        n = self.crop_samples
        stems = np.zeros((T, 2, n), np.float32)
        mask = np.zeros(T, bool)
        stereo = np.zeros(T, bool)
        act = np.zeros(T, bool)
        names, labels = [""] * T, [""] * T
        for slot, (i, a, on) in enumerate(zip(chosen, audio, active)):
            stem = song.stems[int(i)]
            names[slot], labels[slot] = stem.name, stem.label
            if a is None:
                continue
            stems[slot] = a  # a mono stem broadcasts to both channels
            mask[slot] = True
            stereo[slot] = a.shape[0] == 2
            act[slot] = bool(on)
        return {"stems": torch.from_numpy(stems), "mask": torch.from_numpy(mask),
                "is_stereo": torch.from_numpy(stereo), "active": torch.from_numpy(act),
                "names": names, "labels": labels, "song": song.id,
                "start_seconds": float(start), "sample_rate": self.sample_rate}


_TRACK_KEYS = ("stems", "mask", "is_stereo", "active")


def collate_crops(batch: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Stack tensors; keep names/labels as one list per example (``batch[i]["names"]``).

    Items with fewer tracks than others (``pad_to_max_tracks=False``) are padded to the batch's
    largest track count: zeros, ``mask`` False, name "".
    """
    out: dict[str, Any] = {}
    tracks = max(len(b["mask"]) for b in batch)
    for key in batch[0]:
        vals = [b[key] for b in batch]
        if isinstance(vals[0], torch.Tensor):
            if vals[0].dim() >= 1 and key in _TRACK_KEYS:
                vals = [v if len(v) == tracks else
                        torch.cat([v, v.new_zeros((tracks - len(v),) + tuple(v.shape[1:]))]) for v in vals]
            out[key] = torch.stack(vals)
        elif key in ("names", "labels"):
            out[key] = [list(v) + [""] * (tracks - len(v)) for v in vals]
        elif isinstance(vals[0], (int, float)) and not isinstance(vals[0], bool):
            out[key] = torch.tensor(vals)
        else:
            out[key] = list(vals)
    return out


# --------------------------------------------------------------------------- from a config

_DATASET_KEYS = ("sample_rate", "crop_seconds", "max_tracks", "seed", "samples_per_epoch",
                 "silence_db", "min_active", "max_tries", "shuffle_tracks", "pad_to_max_tracks")


def plain_config(cfg: Any) -> dict:
    """A Hydra/OmegaConf node (or a mapping) as plain nested dicts."""
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(cfg, DictConfig):
            return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    except ImportError:
        pass
    return {k: plain_config(v) if isinstance(v, Mapping) else v for k, v in dict(cfg).items()}


def build_dataset(cfg: Mapping[str, Any] | Any, split: str = "train") -> MultitrackDataset:
    """A dataset from a ``configs/data/*.yaml`` node (``layout``, ``root``, crop options)."""
    c = plain_config(cfg)
    layout = c.get("layout", "generic")
    root = c.get("root")
    if root in (None, "", "???"):
        raise AutomixError(f"data.root is not set (the folder of the {layout} dataset)")
    if layout == "synth":
        gen = dict(c.get("generate") or {})
        n = int(gen.pop("songs", 0) or 0)
        seed = int(gen.pop("seed", c.get("seed", 0)))
        if n > 0:
            from .synth import config_from_dict, synth_dataset

            have = sum(1 for p in Path(root).glob("song_*/provenance.json")) if Path(root).is_dir() else 0
            if have < n:
                synth_dataset(n, root, seed=seed, cfg=config_from_dict(gen))
    songs = scan(layout, root, exclude=c.get("exclude") or (), subsets=c.get("subsets"),
                 min_stems=int(c.get("min_stems", 2)))
    songs = split_songs(songs, split, float(c.get("valid_fraction", 0.1)), str(c.get("split_salt", "automix")))
    if not songs:
        raise AutomixError(f"{root}: the {split} split has no songs (valid_fraction "
                           f"{c.get('valid_fraction', 0.1)})")
    kwargs = {k: c[k] for k in _DATASET_KEYS if k in c and c[k] is not None}
    return MultitrackDataset(songs, **kwargs)
