"""The master's stereo stage: side EQ and widener against their definitions, and the master fit
using them (side tone of a stereo mix; width of a near-mono mix)."""
import numpy as np
import pytest
import scipy.signal
import soundfile as sf
from test_eq import cookbook

import automix
from automix import analysis
from automix.errors import AutomixError
from automix.match import Spectra, graphic_eq_settings, predict_master
from automix.params import MASTER_SPECS, defaults
from automix.render import render_master, render_settings
from automix.settings import validate

SR = 44100
SIDE_EQ = [{"type": "lowshelf", "freq_hz": 200.0, "gain_db": -6.0, "q": 0.707},
           {"type": "peak", "freq_hz": 3000.0, "gain_db": 7.5, "q": 2.0}]


def chain(**master):
    """A master with nothing but the given stereo-stage fields (no limiter)."""
    settings = {"format": "automix.settings", "version": 1, "sample_rate": SR,
                "tracks": [{"name": "a", "file": "a.wav"}], "master": master}
    return validate(settings)["master"]


def test_side_eq_filters_the_side_alone(rng):
    x = rng.standard_normal((2, SR))
    out = render_master(x, chain(side_eq=SIDE_EQ, width=1.5), SR, block=7000)
    mid, side = (x[0] + x[1]) / 2, (x[0] - x[1]) / 2
    expect = side
    for b in SIDE_EQ:  # the cookbook biquads, written out independently in test_eq.py
        expect = scipy.signal.lfilter(*cookbook(b["type"], b["freq_hz"], b["gain_db"], b["q"], SR),
                                      expect)
    np.testing.assert_allclose((out[0] + out[1]) / 2, mid, atol=1e-12)
    np.testing.assert_allclose((out[0] - out[1]) / 2, 1.5 * expect, atol=1e-9)


def test_widener_adds_the_delayed_mid_to_the_side_and_keeps_the_mono_sum(rng):
    mono = rng.standard_normal(SR)
    x = np.stack([mono, mono])
    out = render_master(x, chain(widener={"gain_db": -12.0, "delay_ms": 10.0}), SR, block=3000)
    d = round(0.010 * SR)
    np.testing.assert_allclose(out[0] + out[1], 2 * mono, atol=1e-12)   # mono compatible
    side = (out[0] - out[1]) / 2
    np.testing.assert_allclose(side[d:], 10 ** (-12 / 20) * mono[:-d], atol=1e-12)
    assert np.all(side[:d] == 0)
    width = analysis.stereo_width_db(out)
    assert width == pytest.approx(-12.0, abs=0.1)


def test_master_without_stereo_fields_is_plain_width(rng):
    x = rng.standard_normal((2, 5000))
    out = render_master(x, chain(width=0.5), SR)
    mid, side = (x[0] + x[1]) / 2, (x[0] - x[1]) / 2
    np.testing.assert_allclose(out, np.stack([mid + side / 2, mid - side / 2]), atol=1e-12)


@pytest.mark.parametrize("widener, message", [
    ({"gain_db": 3.0}, "master.widener.gain_db = 3.0 is outside"),
    ({"gain_db": -10.0, "delay_ms": 200.0}, "master.widener.delay_ms = 200.0 is outside"),
    ({"gain_db": -10.0, "mix": 1}, "unknown field 'mix'"),
])
def test_bad_widener_settings(widener, message):
    with pytest.raises(AutomixError, match=message):
        chain(widener=widener)


def test_fit_model_predicts_the_rendered_stereo_stage(rng):
    """The master fit's spectral model of the stereo stage (side + widener power, side EQ,
    width) against the rendered and measured master."""
    n = 6 * SR
    mid = scipy.signal.lfilter([1], [1, -0.9], rng.standard_normal(n)) * 0.05
    side = rng.standard_normal(n) * 0.01
    x = np.stack([mid + side, mid - side])
    params = {"width": 1.3, "widener": 10 ** (-15 / 10),
              "side_graphic": np.linspace(-4.0, 6.0, 18)}
    p = {k: float(v) for k, v in defaults(MASTER_SPECS).items()}
    p.update(params)
    predicted = predict_master(Spectra.of(x, SR), p, SR)
    master = chain(side_eq=graphic_eq_settings(params["side_graphic"], SR),
                   widener={"gain_db": -15.0, "delay_ms": 15.0}, width=1.3)
    out = render_master(x, master, SR)
    got = analysis.analyze(out, SR)
    assert got["width_db"] == pytest.approx(predicted.width_db, abs=0.3)
    side_db = np.asarray(got["tonal_balance"]["side_db"])
    assert np.mean(np.abs(side_db - predicted.side_db)) < 0.5


@pytest.fixture(scope="module")
def stereo_cases(tmp_path_factory):
    """A near-mono mix and a stereo mix whose side is tilted, with references of known width
    and side tone."""
    rng = np.random.default_rng(3)
    root = tmp_path_factory.mktemp("stereo")
    n = 10 * SR
    t = np.arange(n) / SR
    env = 0.6 + 0.4 * np.sin(2 * np.pi * 0.5 * t) ** 2
    mid = scipy.signal.lfilter([1], [1, -0.95], rng.standard_normal(n)) * 0.03 * env
    noise = rng.standard_normal(n) * 0.05 * env
    bright = rng.standard_normal(n) * 0.02 * env
    dark = scipy.signal.lfilter([1], [1, -0.6], rng.standard_normal(n)) * 0.01 * env  # -12 dB tilt
    ref_side = noise * 0.5                      # flat side, width about -8 dB
    files = {"reference": np.stack([mid + ref_side, mid - ref_side]),
             "near_mono": np.stack([mid + 1e-4 * noise, mid - 1e-4 * noise]),
             "dark_side": np.stack([mid + dark, mid - dark]),
             "bright_reference": np.stack([mid + bright, mid - bright])}
    for name, audio in files.items():
        sf.write(root / f"{name}.wav", audio.T, SR, subtype="FLOAT")
    sf.write(root / "mono.wav", mid, SR, subtype="FLOAT")  # one channel
    return root


def test_master_widens_a_near_mono_mix(stereo_cases):
    root = stereo_cases
    r = automix.master(root / "near_mono.wav", root / "reference.wav")
    a = r.settings["analysis"]
    assert a["mix"]["width_db"] < -50
    assert analysis.width_error_db(a["master"], a["reference"]) < 1.0
    assert r.settings["master"]["widener"]["gain_db"] > -30
    assert any("the mix is narrow" in n and "--width 0" in n for n in r.notes)
    # `automix render` of the settings (side EQ and widener included) gives the same master
    _, again = render_settings(r.settings, root)
    assert np.array_equal(again, r.master)
    # --width 0 keeps the mix's width: no widener
    kept = automix.master(root / "near_mono.wav", root / "reference.wav",
                          amounts=automix.Amounts(width=0.0))
    assert kept.settings["master"]["widener"] == {} and not kept.notes
    assert kept.settings["analysis"]["master"]["width_db"] < -50


def test_master_widens_a_mono_file_and_follows_the_width_amount(stereo_cases):
    root = stereo_cases
    full = automix.master(root / "mono.wav", root / "reference.wav")
    a = full.settings["analysis"]
    assert a["mix"]["width_db"] == analysis.FLOOR_DB  # exactly mono
    assert analysis.width_error_db(a["master"], a["reference"]) < 1.0
    assert full.settings["master"]["widener"]
    # half the way from the near-mono mix's width to the reference's, in dB
    half = automix.master(root / "near_mono.wav", root / "reference.wav",
                          amounts=automix.Amounts(width=0.5))
    a = half.settings["analysis"]
    goal = (a["mix"]["width_db"] + a["reference"]["width_db"]) / 2
    assert a["master"]["width_db"] == pytest.approx(goal, abs=1.5)
    assert half.settings["master"]["widener"]


def test_master_follows_the_side_tone_without_widening(stereo_cases):
    root = stereo_cases
    r = automix.master(root / "dark_side.wav", root / "bright_reference.wav")
    a = r.settings["analysis"]
    before = analysis.tonal_error_db(a["mix"], a["reference"], "side")
    after = analysis.tonal_error_db(a["master"], a["reference"], "side")
    assert before > 3.0
    assert after < 1.0
    assert r.settings["master"]["widener"] == {}      # the mix has a side: no synthetic one
    assert len(r.settings["master"]["side_eq"]) > 0
