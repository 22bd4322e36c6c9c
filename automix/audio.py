"""Audio files in and out.

Arrays are float32 numpy, shaped ``(channels, samples)``; one or two channels.  Reading checks
everything a user can get wrong (missing, unreadable, empty, >2 channels, NaN/inf) and raises
:class:`AutomixError` with a one-line message.  Writing is atomic: a temporary file in the target
folder, renamed over the target only once it is complete; integer formats are rounded (16-bit:
TPDF-dithered) here (:func:`write_audio`).
"""
from __future__ import annotations

import errno
import os
import secrets
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
    The float -> integer conversion is done here, not by libsndfile (whose WAV writer truncates
    toward -inf, -0.5 LSB of DC, and whose FLAC writer rounds): samples are scaled by 2^15 or
    2^23 (full scale 1.0 = 32768 LSB, libsndfile's read convention) and rounded to the nearest
    integer.  16-bit output gets TPDF dither first (two independent uniform values in
    [-0.5, 0.5) LSB, summed: triangular over +-1 LSB), once, as the last step, so the error is
    signal-independent noise of 0.5 LSB rms (1/12 + 2/12 = 1/4 LSB^2; -101 dBFS) with no DC and no
    distortion.  The dither is seeded by the audio's shape only, so writing the same audio again
    (``automix render`` of a written settings.json) gives the same file, byte for byte.  24-bit
    output is rounded without dither: its rounding error (0.29 LSB rms, -146 dBFS) is far below
    any signal a mix holds.  An I/O failure raises :class:`OSError` with the reason's errno
    (e.g. ENOSPC for a full disk) and ``path`` as its file name; the old file is kept.
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
    with atomic_path(path) as tmp:
        try:
            if subtype == "FLOAT":
                sf.write(os.fsencode(tmp), audio.T, int(sample_rate), subtype=subtype,
                         format=fmt)
            else:
                _write_pcm(tmp, audio, int(sample_rate), subtype, fmt)
        except RuntimeError as exc:  # soundfile.LibsndfileError: "System error." without errno
            code = _errno_of_failed_write(tmp)
            raise OSError(code, os.strerror(code), str(path)) from exc
    return path


_DITHER_SEED = 0x5EED_D17E
_WRITE_BLOCK = 1 << 16


def pcm_samples(audio: np.ndarray, bits: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """Float ``(channels, n)`` -> integer samples ``(n, channels)`` at ``bits`` (16 or 24):
    ``round(x * 2^(bits-1) + dither)``, clipped to the integer range; ``rng``: TPDF dither
    (None: plain rounding).  int16 for 16 bits; int32 holding the 24-bit value for 24."""
    scale = float(1 << (bits - 1))
    x = audio.T.astype(np.float64) * scale  # (n, channels)
    if rng is not None:
        x += rng.random(x.shape)
        x -= rng.random(x.shape)  # u1 - u2 = (u1 - 1/2) + (1/2 - u2): triangular over +-1 LSB
    np.rint(x, out=x)
    np.clip(x, -scale, scale - 1, out=x)
    return x.astype(np.int16 if bits == 16 else np.int32)


def _write_pcm(tmp: Path, audio: np.ndarray, sample_rate: int, subtype: str, fmt: str) -> None:
    bits = 16 if subtype == "PCM_16" else 24
    channels, frames = audio.shape
    rng = np.random.default_rng([_DITHER_SEED, channels, frames]) if bits == 16 else None
    # bytes: a name that is not UTF-8 (surrogate escapes) reaches libsndfile as it is
    with sf.SoundFile(os.fsencode(tmp), "w", sample_rate, channels, subtype=subtype,
                      format=fmt) as f:
        for start in range(0, frames, _WRITE_BLOCK):  # block by block: no full-length copies
            block = pcm_samples(audio[:, start:start + _WRITE_BLOCK], bits, rng)
            # libsndfile stores an int32's top 24 bits in a 24-bit file: exact
            f.write(block if bits == 16 else block << 8)


def _errno_of_failed_write(tmp: Path) -> int:
    """libsndfile reports a failed write as "System error." only; writing to the same file
    again shows the operating system's reason (ENOSPC, EDQUOT, EIO, ...)."""
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_APPEND)
    except OSError as exc:
        return exc.errno or errno.EIO
    try:
        # a full disk can still take the rest of the file's last page: that write is short,
        # not an error, so write on until the reason shows (2 MiB at most; the file is removed)
        for _ in range(32):
            os.write(fd, bytes(1 << 16))
        os.fsync(fd)
    except OSError as exc:
        return exc.errno or errno.EIO
    finally:
        os.close(fd)
    return errno.EIO


class atomic_path:
    """Context manager giving a temporary path next to ``path``; renamed onto it on success.

    The temporary file is created with mode 0666 less the umask (what a plain ``open`` would
    give, default ACLs included), so the result has the permissions of a normal write."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __enter__(self) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            tmp = self.path.parent / f".{self.path.name}.{secrets.token_hex(4)}.tmp"
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                continue
            os.close(fd)
            self.tmp = tmp
            return tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            try:
                os.replace(self.tmp, self.path)
            except BaseException:
                self.tmp.unlink(missing_ok=True)
                raise
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
