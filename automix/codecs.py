"""Lossy codecs, in memory: what a master looks like after a streaming service encodes it.

A lossy encoder throws away detail the ear misses, and the decoded waveform is not the
original: its peaks move, typically upward on a brick-wall-limited master (the limiter's
flat-topped peaks get their missing harmonics' phases scrambled).  So a master that reads
-1 dBTP can read above it -- even above full scale -- once coded.  This module encodes and
decodes with the encoders libsndfile carries (LAME for MP3, libvorbis, libopus: they come with
the ``soundfile`` wheel, nothing is downloaded), in memory, and measures the decoded true peak.

Codecs (the bit rates a listener meets on the services' standard tiers):

=========  ====================================================  =========================
name       encoder (libsndfile)                                  rate it runs at
=========  ====================================================  =========================
``mp3``    MPEG-1 Layer III, 128 kbps CBR (LAME)                 the master's (<= 48 kHz)
``opus``   Ogg Opus, ~128 kbps                                   48 kHz (Opus' own rate)
``vorbis`` Ogg Vorbis, quality ~4 (~128 kbps on music)           the master's
=========  ====================================================  =========================

The codec-safe ceiling loop that uses this lives in :mod:`automix.codec_safe`.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import soundfile as sf

from .errors import AutomixError

# libsndfile's compression level in [0, 1] maps linearly onto each encoder's range:
# MP3 CBR 320..32 kbps (MPEG-1, >= 32 kHz) or 160..8 kbps (MPEG-2, 16-24 kHz), LAME rounding to
# the nearest standard rate; Opus 512..~6 kbps; Vorbis quality 1..0.  The levels below give
# 128 kbps MP3 (measured: 128.7 kbps at 44.1 and 48 kHz), ~128 kbps Opus and Vorbis q0.4.
_MP3_LEVEL = {"mpeg1": (320 - 128) / (320 - 32), "mpeg2": (160 - 128) / (160 - 8)}
_OPUS_LEVEL = (512 - 128) / (512 - 6)
_VORBIS_LEVEL = 0.6
OPUS_RATE = 48000
MP3_MAX_RATE = 48000
CODECS = ("mp3", "opus", "vorbis")
DEFAULT_CODECS = ("mp3", "vorbis")  # Opus encodes ~4x slower than Vorbis here
_ENCODE_BLOCK = 8192


@dataclass(frozen=True)
class Coded:
    """One codec's result: the decoded audio (float64, (channels, n)) at ``sample_rate``."""
    codec: str
    audio: np.ndarray
    sample_rate: int
    bytes: int


def parse_codecs(text: str) -> tuple[str, ...]:
    """``"mp3,opus"`` -> ("mp3", "opus"); ``"none"`` or ``""`` -> (); unknown -> one-line error."""
    text = (text or "").strip().lower()
    if text in ("", "none", "off"):
        return ()
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    bad = [n for n in names if n not in CODECS]
    if bad:
        raise AutomixError(f"codec {bad[0]!r}: choose from {', '.join(CODECS)} (or none)")
    return names


def _resample(audio: np.ndarray, sr_from: int, sr_to: int) -> np.ndarray:
    if sr_from == sr_to:
        return audio
    from .audio import resample

    return resample(audio.astype(np.float32), sr_from, sr_to)


def encode(audio: np.ndarray, sample_rate: int, codec: str) -> tuple[bytes, int]:
    """``audio`` (channels, n) encoded with ``codec``: (the file's bytes, the rate it runs at).
    Samples beyond full scale are clipped, as a PCM source feeding an encoder would be."""
    x = np.clip(np.asarray(audio, dtype=np.float64), -1.0, 1.0)
    if codec == "mp3":
        rate = min(sample_rate, MP3_MAX_RATE)
        if rate < 32000 and rate not in (16000, 22050, 24000):
            rate = 22050 if rate > 16000 else 16000
        options = dict(format="MP3", subtype="MPEG_LAYER_III", bitrate_mode="CONSTANT",
                       compression_level=_MP3_LEVEL["mpeg1" if rate >= 32000 else "mpeg2"])
    elif codec == "opus":
        rate = OPUS_RATE
        options = dict(format="OGG", subtype="OPUS", compression_level=_OPUS_LEVEL)
    elif codec == "vorbis":
        rate = sample_rate
        options = dict(format="OGG", subtype="VORBIS", compression_level=_VORBIS_LEVEL)
    else:
        raise AutomixError(f"codec {codec!r}: choose from {', '.join(CODECS)}")
    x = np.ascontiguousarray(_resample(x, sample_rate, rate).T)
    buf = io.BytesIO()
    try:
        with sf.SoundFile(buf, "w", rate, x.shape[1], **options) as f:
            # block by block: libsndfile's Vorbis writer crashes on very large single writes
            for start in range(0, x.shape[0], _ENCODE_BLOCK):
                f.write(x[start:start + _ENCODE_BLOCK])
    except (sf.LibsndfileError, TypeError, ValueError) as exc:
        raise CodecUnavailable(f"{codec}: this libsndfile cannot encode it ({exc})") from None
    return buf.getvalue(), rate


def decode(data: bytes) -> tuple[np.ndarray, int]:
    audio, rate = sf.read(io.BytesIO(data), dtype="float64", always_2d=True)
    return np.ascontiguousarray(audio.T), int(rate)


def round_trip(audio: np.ndarray, sample_rate: int, codec: str) -> Coded:
    """Encode and decode ``audio``: what a listener's player gets from the service."""
    data, _ = encode(audio, sample_rate, codec)
    decoded, rate = decode(data)
    return Coded(codec, decoded, rate, len(data))


class CodecUnavailable(AutomixError):
    """The libsndfile here has no encoder for a codec (older libsndfile, no MP3)."""


def available(codec: str) -> bool:
    try:
        round_trip(np.zeros((2, 4800)), 48000, codec)
        return True
    except CodecUnavailable:
        return False


CHUNK_S = 30.0     # long masters are coded in pieces of this length, in parallel ...
OVERLAP_S = 3.0    # ... each with at least this much of its neighbours before and after, and
                   # starting on the codec's frame grid (:func:`frame_align`): after a run-in
                   # the piece's decoded samples are the whole file's, bit for bit (MP3 needs
                   # up to ~2 s: at 1.5 s one block of a test master read 0.14 dB off)


def frame_align(codec: str, sample_rate: int) -> int:
    """The step (samples of the master) on which a piece must start for its encoder to fall
    into the whole file's state after a short run-in, so that its decoded samples become the
    whole file's exactly (measured: MP3 after <= 1 s, Vorbis after 0.25 s; tests/test_codec_safe.py).

    * MP3 (LAME, CBR): frames of 1152 samples (576 under 32 kHz), and a frame's size in bytes
      alternates between two values by a running remainder from the file's start (the padding
      slot): at 128 kbps and 44.1 kHz the pattern repeats every 49 frames, 56448 samples;
    * Vorbis: long blocks of 2048 samples, overlapping by half;
    * Opus: 20 ms frames at 48 kHz (the master is resampled: 20 ms of the master's samples)."""
    if codec == "mp3":
        rate = min(sample_rate, MP3_MAX_RATE)
        if rate < 32000 and rate not in (16000, 22050, 24000):
            rate = 22050 if rate > 16000 else 16000
        frame = 1152 if rate >= 32000 else 576
        bytes_num = frame // 8 * 128000            # frame bytes x rate (the padding remainder)
        period = rate // np.gcd(bytes_num % rate, rate) if bytes_num % rate else 1
        step = frame * period
        return step if rate == sample_rate else max(1, int(round(step * sample_rate / rate)))
    if codec == "vorbis":
        return 2048
    if codec == "opus":
        return max(1, int(round(0.02 * sample_rate)))
    return 1


def _pieces(n: int, sr: int, align: int = 1) -> list[tuple[int, int, int, int]]:
    """(start, stop) of each piece to encode and (start, stop) of the part measured in it; a
    piece starts on a multiple of ``align``."""
    chunk, overlap = int(CHUNK_S * sr), int(OVERLAP_S * sr)
    if n <= chunk + 2 * overlap:
        return [(0, n, 0, n)]
    out = []
    for s in range(0, n, chunk):
        e = min(s + chunk, n)
        out.append((max(0, s - overlap) // align * align, min(n, e + overlap), s, e))
    return out


def _coded_peak(audio: np.ndarray, sample_rate: int, codec: str, a: int, b: int, s: int,
                e: int) -> float:
    from .analysis import true_peak_linear

    coded = round_trip(audio[:, a:b], sample_rate, codec)
    scale = coded.sample_rate / sample_rate
    # the measured part, widened by 0.1 s for the codec's delay (its peaks lie there too)
    lo = max(0, int((s - a) * scale) - coded.sample_rate // 10)
    hi = min(coded.audio.shape[1], int((e - a) * scale) + coded.sample_rate // 10)
    return true_peak_linear(coded.audio[:, lo:hi])


def coded_true_peaks(audio: np.ndarray, sample_rate: int, codecs) -> dict[str, float | None]:
    """True peak (dBTP, 4x meter) of ``audio`` after each codec's round trip; None for a codec
    this libsndfile lacks.  Every codec, and every 30 s piece of a long master (coded with 1 s
    of its neighbours each side), runs on the background pool (the encoders release the GIL)."""
    from . import background

    audio = np.asarray(audio)
    jobs = {}
    for codec in codecs:
        try:
            encode(np.zeros((audio.shape[0], 64)), sample_rate, codec)
        except CodecUnavailable:
            jobs[codec] = None
            continue
        jobs[codec] = [background.submit(_coded_peak, audio, sample_rate, codec, *piece)
                       for piece in _pieces(audio.shape[1], sample_rate,
                                            frame_align(codec, sample_rate))]
    return {c: None if js is None else float(20 * np.log10(max(j.result() for j in js) + 1e-12))
            for c, js in jobs.items()}


# --- decoded true peak per block: where the codec-safe loop needs to look again ----------------

PEAK_BLOCK_S = 0.25      # the decoded true peak is kept per block of this length
WINDOW_CONTEXT_S = 3.0   # a window is encoded from at least this much of the master before it,
                         # starting on the codec's frame grid (:func:`frame_align`), so the
                         # encoder's state is the whole file's when the window begins (MP3 at
                         # 1.5 s still missed a block by 0.5 dB; at 3 s none, in
                         # tests/test_codec_safe.py and benchmarks/codec_loop.py) ...
WINDOW_TAIL_S = 0.5      # ... and this much after it (the encoder's flush)


def block_count(n: int, sr: int) -> int:
    return -(-n // max(1, int(PEAK_BLOCK_S * sr)))


def _peak_envelope(audio: np.ndarray) -> np.ndarray:
    """Per sample, the 4x-interpolated peak over the interval after it, max over channels
    (:func:`automix.qc._interval_peaks`: the shared true-peak meter's filter) and at least the
    sample's own magnitude: the max of any span of it is that span's true peak."""
    from .dsp.truepeak import METER_OVERSAMPLE, polyphase_matrix_f32
    from .qc import _interval_peaks

    H = polyphase_matrix_f32(METER_OVERSAMPLE)
    env = np.zeros(audio.shape[1], np.float32)
    for ch in np.atleast_2d(audio):
        ch = np.ascontiguousarray(ch)
        env = np.maximum(env, _interval_peaks(ch, H, 8192))
        env = np.maximum(env, np.abs(ch).astype(np.float32))
    return env


def _block_peaks_of(audio, sample_rate, codec, a, b, first, last) -> tuple[int, np.ndarray]:
    """Encode ``audio[:, a:b]``; the decoded true peak (linear) of blocks ``first..last - 1``
    (the decoders here give the input's timeline back: no delay, same length)."""
    coded = round_trip(audio[:, a:b], sample_rate, codec)
    scale = coded.sample_rate / sample_rate
    block = int(PEAK_BLOCK_S * sample_rate)
    env = _peak_envelope(coded.audio)
    starts = ((np.arange(first, last + 1) * block - a) * scale).astype(np.int64)
    edges = np.clip(starts, 0, len(env))
    peaks = np.array([env[lo:hi].max() if hi > lo else 0.0
                      for lo, hi in zip(edges[:-1], edges[1:])])
    return first, peaks


def _spans(blocks: np.ndarray, sr: int) -> list[tuple[int, int]]:
    """Runs of the selected blocks, merged where the gap between them is shorter than the two
    contexts they would encode, and cut into CHUNK_S pieces (run in parallel): (first, last)."""
    block = int(PEAK_BLOCK_S * sr)
    join = int(np.ceil((WINDOW_CONTEXT_S + WINDOW_TAIL_S) * sr / block))
    longest = max(1, int(CHUNK_S * sr / block))
    spans = []
    for k in np.flatnonzero(blocks):
        if spans and k - spans[-1][1] <= join and k + 1 - spans[-1][0] <= longest:
            spans[-1][1] = k + 1
        else:
            spans.append([k, k + 1])
    return [tuple(s) for s in spans]


def coded_block_peaks(audio: np.ndarray, sample_rate: int, blocks: dict) -> dict:
    """The decoded true peak (linear) of every PEAK_BLOCK_S block of ``audio`` after each
    codec's round trip: ``blocks`` maps each codec to None (the whole master, in CHUNK_S
    pieces with OVERLAP_S each side) or a bool per block (only those are measured, NaN
    elsewhere: each run of them encoded as a window with WINDOW_CONTEXT_S of the master each
    side, starting on the codec's frame grid: :func:`frame_align`).  Returns codec -> (peaks, seconds of audio
    encoded), or None for a codec this libsndfile lacks.  Every window of every codec runs on
    the background pool at once (the encoders release the GIL)."""
    from . import background

    n = audio.shape[1]
    block = int(PEAK_BLOCK_S * sample_rate)
    count = block_count(n, sample_rate)
    jobs, encoded = {}, {}
    for codec, selected in blocks.items():
        try:
            encode(np.zeros((audio.shape[0], 64)), sample_rate, codec)
        except CodecUnavailable:
            jobs[codec] = None
            continue
        align = frame_align(codec, sample_rate)
        if selected is None:
            parts = [(a, b, s // block, min(count, -(-e // block)))
                     for a, b, s, e in _pieces(n, sample_rate, align)]
        else:
            ctx, tail = int(WINDOW_CONTEXT_S * sample_rate), int(WINDOW_TAIL_S * sample_rate)
            parts = [(max(0, first * block - ctx) // align * align,
                      min(n, last * block + tail), first, last)
                     for first, last in _spans(np.asarray(selected, bool), sample_rate)]
        encoded[codec] = sum(b - a for a, b, _, _ in parts) / sample_rate
        jobs[codec] = [background.submit(_block_peaks_of, audio, sample_rate, codec, *part)
                       for part in parts]
    out = {}
    for codec, js in jobs.items():
        if js is None:
            out[codec] = None
            continue
        peaks = np.full(count, np.nan)
        for job in js:
            first, got = job.result()
            # neighbouring pieces share a block at their seam: the larger reading holds
            peaks[first:first + len(got)] = np.fmax(peaks[first:first + len(got)], got)
        out[codec] = (peaks, encoded[codec])
    return out


def master_block_peaks(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """The true peak (linear) of every PEAK_BLOCK_S block of ``audio`` itself (no codec)."""
    block = int(PEAK_BLOCK_S * sample_rate)
    env = _peak_envelope(audio)
    return np.array([env[k:k + block].max() for k in range(0, len(env), block)])


# Delivery files (``--formats``): the same encoders at the rates a download or a DJ gets.
DELIVERY_FORMATS = {"flac": ".flac", "mp3": ".mp3", "ogg": ".ogg", "opus": ".opus"}
_DELIVERY = {
    "mp3": dict(format="MP3", subtype="MPEG_LAYER_III", bitrate_mode="CONSTANT",
                compression_level=0.0),                    # 320 kbps CBR
    "ogg": dict(format="OGG", subtype="VORBIS", compression_level=0.3),   # Vorbis q7, ~220 kbps
    "opus": dict(format="OGG", subtype="OPUS", compression_level=(512 - 192) / (512 - 6)),
}


def parse_formats(text: str) -> tuple[str, ...]:
    """``--formats flac,mp3``: extra files of the master beside master.wav."""
    text = (text or "").strip().lower()
    if text in ("", "none", "wav"):
        return ()
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip() and n.strip() != "wav"))
    bad = [n for n in names if n not in DELIVERY_FORMATS]
    if bad:
        raise AutomixError(f"format {bad[0]!r}: choose from wav, {', '.join(DELIVERY_FORMATS)}")
    for n in names:  # checked before any work: an older libsndfile has no MP3 or Opus
        codec = {"mp3": "mp3", "ogg": "vorbis", "opus": "opus"}.get(n)
        if codec and not available(codec):
            raise AutomixError(f"--formats {n}: the libsndfile here cannot write it "
                               "(soundfile >= 0.12 with libsndfile >= 1.1 can)")
    return names


def write_delivery(path, audio: np.ndarray, sample_rate: int, fmt: str,
                   bit_depth: int | str = 24) -> None:
    """The master as a delivery file: FLAC through :func:`automix.audio.write_audio` (16-bit
    dithered once there, like the WAV), lossy formats encoded from the float master (no dither:
    the encoder takes floats), atomically."""
    import os

    from .audio import atomic_path, write_audio

    if fmt == "flac":
        write_audio(path, audio, sample_rate, 24 if bit_depth == "float" else bit_depth)
        return
    options = dict(_DELIVERY[fmt])
    rate = sample_rate
    if fmt == "opus":
        rate = OPUS_RATE
    elif fmt == "mp3":
        rate = min(sample_rate, MP3_MAX_RATE)
        if rate < 32000:
            options["compression_level"] = 0.0
    x = np.ascontiguousarray(_resample(np.clip(np.asarray(audio, np.float64), -1, 1),
                                       sample_rate, rate).T)
    with atomic_path(path) as tmp:
        with sf.SoundFile(os.fsencode(tmp), "w", rate, x.shape[1], **options) as f:
            for start in range(0, x.shape[0], _ENCODE_BLOCK):
                f.write(x[start:start + _ENCODE_BLOCK])
