"""Audio files in and out.

Arrays are float32 numpy, shaped ``(channels, samples)``; one or two channels.  Reading checks
everything a user can get wrong (missing, unreadable, empty, >2 channels, NaN/inf) and raises
:class:`AutomixError` with a one-line message.  Writing is atomic: a temporary file in the target
folder, renamed over the target only once it is complete.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf

from .errors import AutomixError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".aif", ".aiff", ".aifc", ".mp3", ".w64", ".caf")

# Output formats: the extension picks the container, ``bit_depth`` the sample format.
_SUBTYPES = {16: "PCM_16", 24: "PCM_24", 32: "FLOAT", "float": "FLOAT"}
_FORMATS = {".wav": "WAV", ".flac": "FLAC"}


@dataclass(frozen=True)
class AudioInfo:
    path: Path
    sample_rate: int
    frames: int
    channels: int

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate


def is_audio_file(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in AUDIO_EXTENSIONS


def audio_info(path: str | os.PathLike) -> AudioInfo:
    """Header information, checked (exists, readable, not empty, at most two channels)."""
    path = Path(path)
    if not path.is_file():
        raise AutomixError(f"{path}: no such file")
    try:
        info = sf.info(str(path))
    except Exception as exc:  # libsndfile's own message is short and clear
        raise AutomixError(f"{path}: cannot read audio ({_short(exc)})") from None
    if info.frames <= 0:
        raise AutomixError(f"{path}: the file holds no audio")
    if info.channels > 2:
        raise AutomixError(
            f"{path}: {info.channels} channels; automix takes mono or stereo files "
            "(downmix it first)")
    return AudioInfo(path, int(info.samplerate), int(info.frames), int(info.channels))


def read_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read a whole file as float32 ``(channels, samples)`` and its sample rate."""
    info = audio_info(path)
    try:
        data, sr = sf.read(str(info.path), dtype="float32", always_2d=True)
    except Exception as exc:
        raise AutomixError(f"{info.path}: cannot decode audio ({_short(exc)})") from None
    if data.shape[0] == 0:
        raise AutomixError(f"{info.path}: the file holds no audio")
    audio = np.ascontiguousarray(data.T)
    check_finite(audio, info.path)
    return audio, int(sr)


def check_finite(audio: np.ndarray, name: object) -> None:
    # min and max are NaN or infinite when any sample is (no temporary array)
    if audio.size and not (np.isfinite(audio.min()) and np.isfinite(audio.max())):
        bad = int((~np.isfinite(audio)).sum())
        raise AutomixError(f"{name}: {bad} samples are NaN or infinite")


def peak(audio: np.ndarray) -> float:
    """Largest absolute sample value (no temporary array)."""
    return float(max(-audio.min(), audio.max())) if audio.size else 0.0


def resample(audio: np.ndarray, sr_from: int, sr_to: int) -> np.ndarray:
    """Band-limited polyphase resampling along the last axis (float32 in, float32 out)."""
    if sr_from == sr_to:
        return audio
    from scipy.signal import resample_poly  # imported here: scipy.signal costs ~1 s to import

    ratio = Fraction(sr_to, sr_from).limit_denominator(1000)
    out = resample_poly(audio.astype(np.float64), ratio.numerator, ratio.denominator, axis=-1)
    return out.astype(np.float32)


def pad_to_length(audio: np.ndarray, length: int) -> np.ndarray:
    """Zero-pad (or cut) the last axis to ``length`` samples."""
    n = audio.shape[-1]
    if n == length:
        return audio
    if n > length:
        return audio[..., :length]
    pad = [(0, 0)] * (audio.ndim - 1) + [(0, length - n)]
    return np.pad(audio, pad)


def to_stereo(audio: np.ndarray) -> np.ndarray:
    return audio if audio.shape[0] == 2 else np.repeat(audio, 2, axis=0)


def write_audio(path: str | os.PathLike, audio: np.ndarray, sample_rate: int,
                bit_depth: int | str = 24) -> Path:
    """Write ``(channels, samples)`` audio atomically as WAV or FLAC.

    PCM formats clip at full scale (the limiter keeps masters below it); float keeps everything.
    """
    path = Path(path)
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise AutomixError(f"{path}: can only write .wav or .flac")
    subtype = _SUBTYPES.get(bit_depth)
    if subtype is None:
        raise AutomixError(f"bit depth {bit_depth!r}: choose 16, 24 or float")
    if fmt == "FLAC" and subtype == "FLOAT":
        raise AutomixError(f"{path}: FLAC stores integers only; use 16 or 24 bit, or a .wav file")
    audio = np.asarray(audio)
    if audio.ndim != 2 or audio.shape[0] not in (1, 2):
        raise ValueError(f"expected (channels, samples) with 1 or 2 channels, got {audio.shape}")
    check_finite(audio, path)
    if subtype != "FLOAT":
        audio = np.clip(audio, -1.0, 1.0)
    with atomic_path(path) as tmp:
        sf.write(str(tmp), audio.T, int(sample_rate), subtype=subtype, format=fmt)
    return path


class atomic_path:
    """Context manager giving a temporary path next to ``path``; renamed onto it on success."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __enter__(self) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        os.close(fd)
        self.tmp = Path(tmp)
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)


class BlockReader:
    """Reads a file block by block at a target sample rate; zeros after its end.

    Files at the target rate stream from disk (so a long song never sits in memory whole);
    a file at another rate is resampled once on open (documented memory cost).
    """

    def __init__(self, path: str | os.PathLike, sample_rate: int):
        self.info = audio_info(path)
        self.channels = self.info.channels
        self._pos = 0
        if self.info.sample_rate == sample_rate:
            self._file = sf.SoundFile(str(self.info.path))
            self._data = None
            self.frames = self.info.frames
        else:
            audio, sr = read_audio(path)
            self._data = resample(audio, sr, sample_rate)
            self._file = None
            self.frames = self._data.shape[1]

    @classmethod
    def of_array(cls, audio: np.ndarray, frames: int | None = None) -> "BlockReader":
        """A reader of audio already in memory: float32 ``(channels, samples)`` at the target
        rate, e.g. a file read whole by :func:`read_audio` (the same samples it streams);
        ``frames``: the length to report (default: the array's), zeros past the array."""
        reader = cls.__new__(cls)
        reader.frames = audio.shape[1] if frames is None else int(frames)
        reader.info, reader.channels, reader._pos = None, audio.shape[0], 0
        reader._data, reader._file = audio[:, :reader.frames], None
        return reader

    def read(self, n: int) -> np.ndarray:
        """The next ``n`` samples as float32 ``(channels, n)``."""
        if self._data is not None:
            block = self._data[:, self._pos:self._pos + n]
        else:
            block = self._file.read(n, dtype="float32", always_2d=True).T if self._pos < self.frames \
                else np.zeros((self.channels, 0), np.float32)
            check_finite(block, self.info.path)
        self._pos += n
        return pad_to_length(np.ascontiguousarray(block), n)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _short(exc: Exception) -> str:
    return str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
