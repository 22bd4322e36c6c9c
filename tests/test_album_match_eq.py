"""The album's fine match EQ (automix.match.MATCH_EQS["third-octave"], issue 20's album tonal
spread): what the fit models is what settings.json writes (checked against an independent RBJ
peaking-filter response), a master of a signal with 1/3-octave bumps and notches lands on a
flat target when rendered by the real renderer (the half-octave EQ cannot), and an album of
songs with different tones ends on one curve, reproduced by ``automix render``."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch

from automix import analysis
from automix.api import Amounts
from automix.cli import main
from automix.console.blocks import render_master
from automix.mastering import master_stage, measure_mix
from automix.match import MATCH_EQS, _Model, graphic_eq_settings
from automix.settings import tidy_master

SR = 44100


def _rbj_peak_power(f0, q, gain_db, omega, sr):
    """|H(e^jw)|^2 of an RBJ cookbook peaking biquad, written out here (not the console's)."""
    a = 10 ** (gain_db / 40)
    w0 = 2 * math.pi * f0 / sr
    alpha = math.sin(w0) / (2 * q)
    b = np.array([1 + alpha * a, -2 * math.cos(w0), 1 - alpha * a])
    d = np.array([1 + alpha / a, -2 * math.cos(w0), 1 - alpha / a])
    z = np.exp(-1j * np.asarray(omega)[:, None] * np.arange(3))
    return np.abs((z @ b) / (z @ d)) ** 2


def test_third_octave_layout_is_what_settings_write():
    layout = MATCH_EQS["third-octave"]
    # one band on each analysis band, 1/3 octave wide (Q = 1 / (2 sinh(ln 2 / 6)))
    assert np.allclose(layout.centres_hz, analysis.BAND_CENTRES_EXACT, atol=0.05)
    assert layout.q == pytest.approx(1 / (2 * math.sinh(math.log(2) / 6)), abs=0.005)
    rng = np.random.default_rng(3)
    for sr in (44100, 32000):          # at 32 kHz the 16 kHz band is left out (over 0.45 sr)
        gains = rng.uniform(-layout.max_db, layout.max_db, len(layout.centres_hz))
        bands = graphic_eq_settings(gains, sr, match_eq="third-octave")
        assert len(bands) == sum(f < 0.45 * sr for f in layout.centres_hz)
        # settings.json keeps centres and Q as the model has them (gains rounded to 0.01 dB)
        written = tidy_master({"eq": bands, "limiter": {"ceiling_dbtp": -1.0}}, sr)["eq"]
        assert [(b["freq_hz"], b["q"]) for b in written] == [(b["freq_hz"], b["q"])
                                                             for b in bands]
        model = _Model(sr, 16384, "third-octave")
        modelled = model.graphic_power(torch.as_tensor(gains)).numpy()
        omega = model.omega.numpy()
        rendered = np.prod([_rbj_peak_power(b["freq_hz"], b["q"], b["gain_db"], omega, sr)
                            for b in written], axis=0)
        assert np.abs(10 * np.log10(modelled / rendered)).max() < 0.03
        # at a band's own centre, far from the others' gains, the band's own gain
        lone = np.zeros(len(layout.centres_hz))
        lone[12] = 6.0
        at = np.array([2 * math.pi * layout.centres_hz[12] / sr])
        b = graphic_eq_settings(lone, sr, match_eq="third-octave")[0]
        assert 10 * np.log10(_rbj_peak_power(b["freq_hz"], b["q"], b["gain_db"], at, sr)[0]) \
            == pytest.approx(6.0, abs=1e-6)


def _bumped_noise(seconds, bumps, seed=0, tilt=0.0):
    """White noise with Gaussian (1/8-octave) bumps and notches ``(Hz, dB)`` and a tilt (dB
    per octave around 1 kHz), and the same noise without them; mono in both channels, about
    -26 dBFS RMS."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    octaves = np.log2(np.maximum(np.fft.rfftfreq(n, 1 / SR), 1.0))
    gain_db = sum(a * np.exp(-0.5 * ((octaves - np.log2(f)) / 0.125) ** 2) for f, a in bumps)
    gain_db = gain_db + tilt * (octaves - np.log2(1000.0))
    flat = np.fft.irfft(spectrum, n)
    bumped = np.fft.irfft(spectrum * 10 ** (gain_db / 20), n)
    scale = 0.05 / flat.std()
    return np.stack([bumped, bumped]) * scale, np.stack([flat, flat]) * scale


BUMPS = [(200, 6.0), (400, -6.0), (1250, 5.0), (1600, -5.0), (5000, 6.0)]


def test_fine_match_eq_flattens_third_octave_bumps_when_rendered():
    mix, flat = _bumped_noise(5.0, BUMPS)
    reference = analysis.analyze(flat, SR)
    target = np.array(reference["tonal_balance"]["mid_db"])
    features, spectra = measure_mix(mix, SR)
    before = np.abs(np.array(features["tonal_balance"]["mid_db"]) - target)
    assert before.max() > 4.5                       # the bumps are there to begin with
    errors = {}
    for layout in ("third-octave", "half-octave"):
        master, _, final = master_stage(mix, SR, reference, features, None, -1.0,
                                        Amounts(tone=1, width=1, dynamics=0, loudness=0),
                                        spectra=spectra, match_eq=layout)
        # the settings rendered by the real renderer are the master
        assert np.array_equal(render_master(mix, master, SR), final)
        got = np.array(analysis.tonal_balance(final, SR)["mid_db"])
        errors[layout] = np.abs(got - target)
    fine, coarse = errors["third-octave"], errors["half-octave"]
    assert fine.max() < 2.0 and fine.mean() < 0.5
    assert coarse.max() > 2.5                       # half-octave bands cannot follow them


def test_album_songs_of_different_tones_end_on_one_curve(tmp_path, capsys):
    (tmp_path / "mixes").mkdir()
    songs = []
    patterns = [[(160, 6.0), (630, -5.0), (3150, 4.0)],
                [(250, -6.0), (1000, 6.0), (8000, -5.0)],
                [(100, -4.0), (500, 5.0), (2000, -6.0), (6300, 5.0)]]
    for i, (bumps, tilt) in enumerate(zip(patterns, (1.0, -1.0, 0.0))):
        mix, _ = _bumped_noise(4.0, bumps, seed=i, tilt=tilt)
        songs.append(tmp_path / "mixes" / f"song{i}.wav")
        sf.write(songs[-1], (mix * 10 ** (-4 * i / 20)).T, SR, subtype="FLOAT")
    out = tmp_path / "album"
    assert main(["album", *map(str, songs), "-o", str(out), "--same-loudness", "--codecs",
                 "none", "--jobs", "1", "--bit-depth", "float"]) == 0
    capsys.readouterr()
    doc = json.loads((out / "album.json").read_text())
    assert doc["plan"]["match_eq"] == "third-octave"
    before, after = doc["spread_before"]["tone_db"], doc["spread_after"]["tone_db"]
    assert before > 4.0 and after < 1.0
    # automix render of a song's settings.json reproduces its master
    name = doc["songs"][1]["name"]
    settings = json.loads((out / f"{name}.settings.json").read_text())
    assert sum(b["q"] == MATCH_EQS["third-octave"].q for b in settings["master"]["eq"]) > 10
    assert main(["render", "--stems", str(tmp_path / "mixes"), "--settings",
                 str(out / f"{name}.settings.json"), "-o", str(tmp_path / "render"),
                 "--bit-depth", "float"]) == 0
    rendered, _ = sf.read(tmp_path / "render" / "master.wav", always_2d=True)
    master, _ = sf.read(out / f"{name}.wav", always_2d=True)
    assert rendered.shape == master.shape and np.abs(rendered - master).max() < 1e-6
    capsys.readouterr()
    assert main(["album", *map(str, songs), "-o", str(tmp_path / "bad"),
                 "--match-eq", "octave"]) == 2
    err = capsys.readouterr().err
    assert "--match-eq octave" in err and "half-octave, third-octave" in err
