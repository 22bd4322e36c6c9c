"""Synthetic multitrack songs with a known arrangement (for the sections and lead tests)."""
from __future__ import annotations

import numpy as np

SR = 22050
BPM = 120.0
BEAT = 60.0 / BPM


def _env(n, attack, decay, sr=SR):
    t = np.arange(n) / sr
    return np.minimum(1.0, t / max(attack, 1e-4)) * np.exp(-t / decay)


def drums(seconds, rng, sr=SR):
    n = int(seconds * sr)
    x = np.zeros(n)
    for k in range(int(seconds / BEAT * 2)):
        i = int(k * BEAT / 2 * sr)
        m = min(n - i, int(0.3 * sr))
        if k % 2 == 0:  # kick on the beat
            t = np.arange(m) / sr
            x[i:i + m] += 0.8 * np.sin(2 * np.pi * (50 * t + 60 * (1 - np.exp(-t / 0.03)))) \
                * _env(m, 0.002, 0.12, sr)
        h = min(n - i, int(0.05 * sr))  # hat on every 8th
        x[i:i + h] += 0.15 * rng.standard_normal(h) * _env(h, 0.001, 0.015, sr)
    return x


def tone(freqs, seconds, note_s, amps=(1, 0.5, 0.3, 0.2), vibrato=0.0, gap_s=0.0, sr=SR):
    """Notes of harmonic tones, ``freqs`` cycled, one every ``note_s``."""
    n = int(seconds * sr)
    x = np.zeros(n)
    per = int(note_s * sr)
    for k, i in enumerate(range(0, n, per)):
        m = min(per, n - i)
        t = np.arange(m) / sr
        f0 = freqs[k % len(freqs)]
        phase = 2 * np.pi * f0 * (t + vibrato / (2 * np.pi * 5.5) * np.sin(2 * np.pi * 5.5 * t))
        note = sum(a * np.sin(h * phase) for h, a in enumerate(amps, 1))
        env = np.minimum(1.0, t / 0.02) * np.minimum(1.0, (m - np.arange(m)) / sr / 0.05)
        if gap_s:
            env *= t < note_s - gap_s
        x[i:i + m] = note * env
    return x


def chords(seconds, sr=SR):
    roots = [220.0, 174.6, 261.6, 196.0]
    n = int(seconds * sr)
    x = np.zeros(n)
    for f in (1.0, 1.26, 1.5):
        x += tone([r * f for r in roots], seconds, 4 * BEAT, amps=(0.3, 0.1, 0.05), sr=sr)
    return x


def vocal(seconds, sr=SR):
    return tone([294.0, 330.0, 392.0, 349.0, 262.0], seconds, BEAT * 1.5,
                amps=(0.5, 0.4, 0.3, 0.25, 0.2, 0.15, 0.1), vibrato=0.02, gap_s=0.1, sr=sr)


def bass(seconds, sr=SR):
    return tone([55.0, 55.0, 73.4, 65.4], seconds, 2 * BEAT, amps=(0.8, 0.3, 0.1), sr=sr)


def arrangement(parts, seconds, seed=0, sr=SR):
    """Stems ``{name: (2, n)}`` where each stem plays only in its ``(start, end)`` spans:
    ``parts = {name: [(start_s, end_s), ...]}``."""
    rng = np.random.default_rng(seed)
    makers = {"drums": lambda: drums(seconds, rng, sr), "bass": lambda: bass(seconds, sr),
              "keys": lambda: chords(seconds, sr), "vocal": lambda: vocal(seconds, sr)}
    n = int(seconds * sr)
    out = {}
    for name, spans in parts.items():
        x = makers[name]()[:n]
        gate = np.zeros(n)
        for a, b in spans:
            gate[int(a * sr):int(b * sr)] = 1.0
        y = 0.25 * x * gate
        out[name] = np.stack([y, y]).astype(np.float32)
    return out
