"""The API checks its options as the command line does, says when it misses a target, refuses a
silent reference, and measures a very long reference on excerpts (bounded memory)."""
import numpy as np
import pytest
import soundfile as sf

import automix
import automix.api as api
from automix.analysis import analyze
from automix.errors import AutomixError

SR = 22050


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("options")
    rng = np.random.default_rng(7)
    t = np.arange(SR * 8) / SR
    mix = np.stack([0.3 * np.sin(2 * np.pi * 220 * t), 0.1 * rng.standard_normal(t.size)])
    sf.write(root / "mix.wav", mix.T, SR)
    ref = 0.2 * rng.standard_normal((2, t.size)) * (0.6 + 0.4 * np.sin(2 * np.pi * t / 3))
    sf.write(root / "ref.wav", ref.T, SR)
    sf.write(root / "silent.wav", np.zeros((t.size, 2)), SR)
    return root


@pytest.mark.parametrize("kwargs,message", [
    ({"target_lufs": 20.0}, "--target-lufs 20.0"),
    ({"ceiling": 6.0}, "--ceiling 6.0"),
    ({"device": "tpu"}, "--device tpu: choose cpu, cuda or auto"),
    ({"refine_steps": 10 ** 20}, "--refine-steps"),
    ({"refine_steps": -1}, "--refine-steps"),
])
def test_api_refuses_what_the_command_line_refuses(files, kwargs, message):
    call = automix.mix if "refine_steps" in kwargs else automix.master
    first = files / "mix.wav" if call is automix.master else files
    with pytest.raises(AutomixError, match=message.replace("+", r"\+")):
        call(first, files / "ref.wav", **kwargs)


def test_a_very_quiet_target_is_reached(files):
    result = automix.master(files / "mix.wav", files / "ref.wav", target_lufs=-60.0)
    got = result.settings["analysis"]["master"]["integrated_lufs"]
    assert abs(got - -60.0) < 0.5, got  # the master gain used to stop at -24 dB (-48 LUFS here)


def test_a_missed_target_is_said(files, monkeypatch):
    from automix import mastering  # the master stage's module

    monkeypatch.setattr(mastering, "loudness_stage", _stuck_at_lowest_gain)
    result = automix.master(files / "mix.wav", files / "ref.wav", target_lufs=-60.0)
    assert any("above the target -60.0 LUFS" in n for n in result.notes), result.notes


def _stuck_at_lowest_gain(pre, limiter, goal, sr, releases):
    from automix.loudness_search import loudness_stage
    loud = loudness_stage(pre, limiter, goal, sr, releases)
    return dict(loud, gain_db=-6.0)


def test_silent_reference_is_an_error(files):
    with pytest.raises(AutomixError, match="the reference is silent"):
        automix.master(files / "mix.wav", files / "silent.wav")


def test_long_reference_is_measured_on_excerpts(files, monkeypatch):
    monkeypatch.setattr(api, "REFERENCE_MAX_S", 4.0)
    monkeypatch.setattr(api, "REFERENCE_PARTS", 3)
    monkeypatch.setattr(api, "REFERENCE_PART_S", 1.5)
    audio, sr, notes = api.load_reference(files / "ref.wav")
    assert audio.shape == (2, int(1.5 * SR) * 3) and sr == SR
    assert any("measured on 3 evenly spaced excerpts" in n for n in notes)
    whole, _ = sf.read(files / "ref.wav", always_2d=True, dtype="float32")
    run = int(1.5 * SR)
    last = whole.shape[0] - run
    # the excerpts are the file's own samples at evenly spaced starts (fades at the seams only)
    mid = slice(run // 2 - 10, run // 2 + 10)
    for k, start in enumerate((0, last // 2, last)):
        np.testing.assert_array_equal(audio[:, k * run:(k + 1) * run][:, mid],
                                      whole[start:start + run].T[:, mid])
    # a stationary reference reads the same loudness and width from its excerpts
    rng = np.random.default_rng(8)
    noise = (0.1 * rng.standard_normal((SR * 8, 2)) @ [[1.0, 0.6], [0.0, 0.8]]).astype(np.float32)
    sf.write(files / "steady.wav", noise, SR, subtype="FLOAT")
    audio, _, _ = api.load_reference(files / "steady.wav")
    a, b = analyze(audio, sr), analyze(noise.T, sr)
    assert abs(a["integrated_lufs"] - b["integrated_lufs"]) < 0.5
    assert abs(a["width_db"] - b["width_db"]) < 0.5
