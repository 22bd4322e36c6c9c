"""Ambience measures (automix/ambience.py) on signals with known answers."""
import math

import numpy as np
import pytest
import scipy.signal
import torch

from automix import ambience as A
from automix.dsp import reverb as R

SR = 22050


def dry_material(seconds, seed=0):
    """Notes with gaps: noise bursts, harmonic tones and plucks of 50-300 ms (5 ms ramps), an
    onset every 0.4-2.5 s."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    x = np.zeros(n)
    t = 0.2
    while t < seconds - 1:
        length, start = int(rng.uniform(0.05, 0.3) * SR), int(t * SR)
        i = np.arange(length)
        kind = rng.integers(3)
        if kind == 0:
            burst = rng.standard_normal(length)
        elif kind == 1:
            f = rng.uniform(100, 3000)
            burst = sum(np.sin(2 * np.pi * f * k * i / SR) / k for k in range(1, 8))
        else:
            burst = rng.standard_normal(length) * np.exp(-i / (0.03 * SR))
        burst *= np.minimum(1, np.minimum(i, length - i) / (0.005 * SR))
        x[start:start + length] += burst * rng.uniform(0.3, 1)
        t += rng.uniform(0.4, 2.5)
    return x


def exp_noise_ir(rt60, seed):
    """Two independent Gaussian noises under exp(-3 ln10 t / RT60): no direct sound."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(1.5 * rt60 * SR)) / SR
    return rng.standard_normal((2, t.size)) * np.exp(-3 * math.log(10) * t / rt60)


def convolve(x, h):
    return np.stack([scipy.signal.fftconvolve(x, h[c])[:x.size] for c in range(2)])


@pytest.mark.parametrize("rt60", [0.3, 0.8, 2.0, 5.0])
def test_blind_rt60_within_20_percent(rt60):
    y = convolve(dry_material(30, seed=1), exp_noise_ir(rt60, seed=11))
    a = A.ambience(y, SR)
    assert a["bands"] == ["low", "mid", "high"]
    for name, got in zip(a["bands"], a["rt60_s"]):
        assert got is not None and abs(got / rt60 - 1) < 0.20, (name, got)
    # early/late proxy against the IR's own ratio (first 50 ms over the rest):
    # exp(2 D T) - 1 with D = 3 ln10 / RT60, T = 50 ms
    truth = 10 * math.log10(math.exp(2 * 3 * math.log(10) / rt60 * 0.05) - 1)
    if rt60 <= 2.0:
        for got in a["early_late_db"]:
            assert abs(got - truth) < 4.0, (got, truth)


def test_reverb_processor_reads_its_rt60():
    """Dry notes through automix's own reverb (mid RT60 1.2 s, wet only) read 1.2 s +- 20 %."""
    x = dry_material(30, seed=2)
    p = {k: torch.tensor([v], dtype=torch.float64) for k, v in dict(
        predelay_ms=10.0, rt60_low_s=1.2, rt60_mid_s=1.2, rt60_high_s=1.2, early_late_db=-10.0,
        width=1.0, hp_hz=20.0, lp_hz=10000.0).items()}
    ir = R.reverb_ir(p, SR)[0].numpy()
    a = A.ambience(convolve(x, ir), SR)
    assert abs(a["rt60_s"][1] / 1.2 - 1) < 0.20, a["rt60_s"]
    assert a["coherence"][1] < 0.5


def test_ordering_dry_to_wet():
    x = dry_material(30, seed=3)
    dry = A.ambience(np.stack([x, x]), SR)
    wet = [A.ambience(convolve(x, exp_noise_ir(rt, 5)), SR) for rt in (0.3, 0.8, 2.0)]
    for b in range(3):
        assert dry["rt60_s"][b] < 0.3                      # the estimator's floor (~0.2 s)
        values = [dry["early_late_db"][b]] + [w["early_late_db"][b] for w in wet]
        assert values == sorted(values, reverse=True)       # wetter reads lower


def test_coherence_known_pairs():
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((2, SR * 30))
    assert max(A.coherence(noise, SR)) < 0.05               # independent: ~0 (bias 0.025)
    assert A.coherence(np.stack([noise[0], noise[0]]), SR) == pytest.approx([1.0] * 3)
    assert A.coherence(np.stack([noise[0], -0.5 * noise[0]]), SR) == pytest.approx([1.0] * 3)
    assert A.coherence(noise[:1], SR) == [1.0, 1.0, 1.0]    # a mono file
    mixed = np.stack([noise[0] + noise[1], noise[0]])
    # L = a + b, R = a: |coherence| = 1/sqrt2
    assert A.coherence(mixed, SR) == pytest.approx([1 / math.sqrt(2)] * 3, abs=0.03)


@pytest.mark.parametrize("sr", [22050, 44100, 96000])
def test_bad_input_no_nan(sr):
    rng = np.random.default_rng(1)
    cases = {
        "silence": np.zeros((2, sr * 3)),
        "3 s noise": rng.standard_normal((2, sr * 3)),
        "tiny": rng.standard_normal((1, 100)),
        "gaps": np.concatenate([rng.standard_normal((2, sr)), np.zeros((2, sr * 2)),
                                rng.standard_normal((2, sr))], axis=1),
    }
    for name, x in cases.items():
        a = A.ambience(x, sr)
        for key in ("rt60_s", "coherence", "early_late_db"):
            assert all(v is None or math.isfinite(v) for v in a[key]), (name, key, a[key])
    assert A.ambience(np.zeros((2, sr * 3)), sr)["rt60_s"] == [None, None, None]


def test_analyze_command_prints_ambience(tmp_path, capsys):
    import json

    import soundfile as sf

    from automix.cli import main

    x = convolve(dry_material(12, seed=4), exp_noise_ir(0.8, 6))
    sf.write(tmp_path / "wet.wav", (0.3 * x / np.abs(x).max()).T, SR)
    assert main(["analyze", str(tmp_path / "wet.wav"), "--json"]) == 0
    amb = json.loads(capsys.readouterr().out)["ambience"]
    assert amb["bands"] == ["low", "mid", "high"] and abs(amb["rt60_s"][1] / 0.8 - 1) < 0.2
    assert main(["analyze", str(tmp_path / "wet.wav")]) == 0
    text = capsys.readouterr().out
    assert "RT60 s (decay rates)" in text and "inter-channel coherence" in text
