"""The deterministic session the v1 fixtures were made from (tests/fixtures/v1/): stems and a
reference generated from a seed, written as float WAV (exact), and the render digests.

Used by tests/fixtures/v1/make_fixtures.py (run once, with the code of commit d9ab248, before
the console graph existed) and by tests/test_v1_fixtures.py (re-renders and demands bit-exact
equality)."""
from __future__ import annotations

import hashlib

import numpy as np
import soundfile as sf

SR = 22050
SECONDS = 3.0


def write_session(root, seed: int = 16):
    """Stems (two mono, two stereo, one shorter) and a wide stereo reference under ``root``."""
    rng = np.random.default_rng(seed)
    n = int(SR * SECONDS)
    t = np.arange(n) / SR
    beat = (t * 2) % 1
    kick = np.sin(2 * np.pi * 55 * t * (1 + np.exp(-beat * 30))) * np.exp(-beat * 8) * 0.7
    hats = np.diff(rng.standard_normal(n) * np.exp(-((t * 8) % 1) * 40) * 0.2, prepend=0)
    hats = np.stack([hats, np.roll(hats, 7) * 0.8])
    bass = np.sin(2 * np.pi * 55 * t * (1 + (np.floor(t) % 2) * 0.5)) * 0.3
    chord = sum(np.sin(2 * np.pi * f * t + k) for k, f in enumerate([220, 277, 330, 440])) * 0.08
    keys = np.stack([chord * (1 + 0.3 * np.sin(2 * np.pi * 0.5 * t)),
                     chord * (1 - 0.3 * np.sin(2 * np.pi * 0.5 * t))])
    vox = (np.sin(2 * np.pi * 330 * t + 3 * np.sin(2 * np.pi * 5 * t)) * 0.2
           * (0.5 + 0.5 * np.sin(2 * np.pi * 0.7 * t)))[: n - 2000]
    stems = root / "stems"
    stems.mkdir(parents=True, exist_ok=True)
    for name, audio in (("kick", kick), ("hats", hats), ("bass", bass), ("keys", keys),
                        ("vox", vox)):
        sf.write(stems / f"{name}.wav", np.asarray(audio, np.float32).T, SR, subtype="FLOAT")
    ref = np.stack([kick * 0.5 + bass * 0.6 + hats[0] + keys[0] * 1.5,
                    kick * 0.5 + bass * 0.6 + hats[1] * 0.5 + keys[1] * 1.2 + 0.05
                    * rng.standard_normal(n)]) * 1.3
    sf.write(root / "reference.wav", np.asarray(ref, np.float32).T, SR, subtype="FLOAT")
    premix = root / "premix"  # a finished mix, for `automix master`
    premix.mkdir(exist_ok=True)
    sf.write(premix / "premix.wav", np.asarray(ref[:, ::-1] * 0.4, np.float32).T, SR,
             subtype="FLOAT")
    return stems, root / "reference.wav"


def digest(audio: np.ndarray) -> str:
    """SHA-256 of a render's float64 samples (C order)."""
    return hashlib.sha256(np.ascontiguousarray(audio, dtype=np.float64).tobytes()).hexdigest()


def thin(audio: np.ndarray) -> np.ndarray:
    """Every 101st sample: small enough to keep, to say by how much a render moved."""
    return np.ascontiguousarray(audio[:, ::101], dtype=np.float64)
