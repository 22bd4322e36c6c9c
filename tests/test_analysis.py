"""Tests of automix.analysis: the numpy meters against pyloudnorm and the standards' own
definitions, and the torch twins against the numpy meters."""
from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pyloudnorm
import pytest
import torch

from automix import analysis as A
from automix.dsp.truepeak import true_peak
from automix.errors import AutomixError


# ---------------------------------------------------------------------------------------------
# test signals
# ---------------------------------------------------------------------------------------------

def white(sr, seconds, channels=2, seed=0, rms=0.1):
    return np.random.default_rng(seed).standard_normal((channels, int(sr * seconds))) * rms


def pink(sr, seconds, channels=2, seed=0, rms=0.1):
    """Exactly 1/f power (amplitude 1/sqrt(f)) shaped in the frequency domain."""
    n = int(sr * seconds)
    spec = np.fft.rfft(np.random.default_rng(seed).standard_normal((channels, n)), axis=-1)
    f = np.fft.rfftfreq(n, 1.0 / sr)
    spec[:, 1:] /= np.sqrt(f[1:])
    spec[:, 0] = 0.0
    x = np.fft.irfft(spec, n=n, axis=-1)
    return x * (rms / x.std())


def music(sr, seconds=8.0, seed=0):
    """Music-like stereo: kick and hats on a beat, a bass line, panned chords, a quiet break."""
    rng = np.random.default_rng(seed)
    n = int(sr * seconds)
    t = np.arange(n) / sr
    beat = 0.5
    phase = (t % beat) / beat
    kick = np.sin(2 * np.pi * 55 * t * (1 + 2 * np.exp(-phase * 20))) * np.exp(-phase * 8)
    hats = rng.standard_normal(n) * np.exp(-((t + beat / 2) % beat) * 60) * 0.3
    hats = np.diff(hats, prepend=0.0)                       # bright
    bass_f = np.where((t // 2) % 2 == 0, 55.0, 73.4)
    bass = 0.4 * np.sign(np.sin(2 * np.pi * np.cumsum(bass_f) / sr)) * 0.5
    chord = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) for f in (261.6, 329.6, 392.0, 523.3))
    chord *= 0.15 * (0.6 + 0.4 * np.sin(2 * np.pi * 0.25 * t))
    left = 0.5 * kick + 0.4 * bass + 0.8 * chord + 0.3 * hats
    right = 0.5 * kick + 0.4 * bass + 0.3 * chord + 0.6 * hats
    x = np.stack([left, right])
    quiet = (t > seconds * 0.6) & (t < seconds * 0.75)      # a break 20 dB down
    x[:, quiet] *= 0.1
    return 0.5 * x / np.abs(x).max()


def pyln(x, sr):
    return pyloudnorm.Meter(sr).integrated_loudness(x.T)


# ---------------------------------------------------------------------------------------------
# loudness
# ---------------------------------------------------------------------------------------------

def test_k_weighting_reproduces_bs1770_table_at_48k():
    (b1, a1), (b2, a2) = A.k_weighting_coefficients(48000)
    np.testing.assert_allclose(b1, [1.53512485958697, -2.69169618940638, 1.19839281085285],
                               atol=1e-9)
    np.testing.assert_allclose(a1, [1.0, -1.69065929318241, 0.73248077421585], atol=1e-9)
    np.testing.assert_allclose(b2, [1.0, -2.0, 1.0])
    np.testing.assert_allclose(a2, [1.0, -1.99004745483398, 0.99007225036621], atol=1e-9)


@pytest.mark.parametrize("sr", [44100, 48000, 96000])
@pytest.mark.parametrize("kind", ["white", "pink", "music", "mono"])
def test_integrated_loudness_agrees_with_pyloudnorm(sr, kind):
    seconds = 4.0 if sr == 96000 else 8.0
    x = {"white": lambda: white(sr, seconds, seed=1),
         "pink": lambda: pink(sr, seconds, seed=2),
         "music": lambda: music(sr, seconds),
         "mono": lambda: pink(sr, seconds, channels=1, seed=3)}[kind]()
    assert abs(A.integrated_loudness(x, sr) - pyln(x, sr)) < 0.1


def test_relative_gate_matters_and_matches_pyloudnorm():
    sr = 44100
    x = np.concatenate([white(sr, 4, seed=1), white(sr, 4, seed=2, rms=0.001)], axis=1)
    ungated = A._LUFS_OFFSET + 10 * np.log10(np.mean(np.sum(A.k_weight(x, sr) ** 2, 0)))
    gated = A.integrated_loudness(x, sr)
    assert gated > ungated + 2.5             # the quiet half (-40 dB) is gated out
    assert abs(gated - pyln(x, sr)) < 0.1


@pytest.mark.parametrize("sr", [44100, 48000])
def test_stereo_1khz_sine_at_minus_23_lufs(sr):
    # BS.1770-4: a 0 dBFS 1 kHz sine in one channel reads -3.01 LKFS.  Two channels add 3.01 dB,
    # so amplitude A in both reads -3.01 + 20 log10(A) + 10 log10(2).
    amp = 10 ** ((-23.0 + 3.01 - 10 * math.log10(2)) / 20)
    t = np.arange(sr * 5) / sr
    x = np.stack([amp * np.sin(2 * np.pi * 1000 * t)] * 2)
    assert A.integrated_loudness(x, sr) == pytest.approx(-23.0, abs=0.1)
    mono_full_scale = np.sin(2 * np.pi * 1000 * t)[None]
    assert A.integrated_loudness(mono_full_scale, sr) == pytest.approx(-3.01, abs=0.05)


def test_loudness_range_of_alternating_levels_is_their_difference():
    sr = 44100
    loud, quiet = white(sr, 10, seed=1), white(sr, 10, seed=2) * 10 ** (-10 / 20)
    x = np.concatenate([loud, quiet, loud[:, ::-1], quiet[:, ::-1]], axis=1)
    d = A.analyze(x, sr)
    assert d["loudness_range_lu"] == pytest.approx(10.0, abs=0.3)
    assert abs(d["loudness_range_lu"] - pyloudnorm.Meter(sr).loudness_range(x.T)) < 0.5
    steady = A.analyze(white(sr, 20, seed=3), sr)
    assert steady["loudness_range_lu"] < 0.3
    # short-term max: the loud part's loudness
    assert d["short_term_lufs_max"] == pytest.approx(A.integrated_loudness(loud, sr), abs=0.2)


def test_loudness_range_gates():
    assert A.loudness_range([-80.0, -90.0]) == 0.0                       # all below -70
    st = np.r_[np.full(50, -20.0), np.full(50, -30.0), np.full(30, -50.0)]  # -50 < rel gate
    assert A.loudness_range(st) == pytest.approx(10.0)


# ---------------------------------------------------------------------------------------------
# peaks
# ---------------------------------------------------------------------------------------------

def test_true_peak_of_quarter_rate_sine_at_45_degrees():
    sr = 48000
    n = np.arange(sr * 2)
    x = 0.5 * np.sin(np.pi / 2 * n + np.pi / 4)       # samples are +-0.5/sqrt(2)
    fade = np.ones_like(x)                              # smooth edges: no genuine overshoot
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(4000) / 4000)
    fade[:4000], fade[-4000:] = ramp, ramp[::-1]
    x = np.stack([x * fade, x * fade])
    d = A.analyze(x, sr)
    assert d["sample_peak_dbfs"] == pytest.approx(20 * math.log10(0.5 / math.sqrt(2)), abs=1e-6)
    assert d["true_peak_dbtp"] - d["sample_peak_dbfs"] == pytest.approx(3.0103, abs=0.05)
    assert d["plr_db"] == pytest.approx(d["true_peak_dbtp"] - d["integrated_lufs"])


def test_true_peak_uses_the_shared_meter():
    x = music(44100, 3.0, seed=4)
    expected = float(true_peak(torch.from_numpy(x)).max())
    assert A.true_peak_linear(x) == pytest.approx(max(expected, np.abs(x).max()), rel=1e-6)
    assert A.true_peak_linear(x) >= np.abs(x).max()


def test_crest_factor_of_sine_is_3db():
    sr = 44100
    x = np.sin(2 * np.pi * 1000 * np.arange(sr) / sr)[None]
    assert A.analyze(x, sr)["crest_factor_db"] == pytest.approx(3.0103, abs=0.01)


# ---------------------------------------------------------------------------------------------
# width and tonal balance
# ---------------------------------------------------------------------------------------------

def test_width():
    sr = 44100
    n = white(sr, 10, channels=2, seed=5)
    assert A.stereo_width_db(np.stack([n[0], n[0]])) == A.FLOOR_DB           # L = R
    assert A.stereo_width_db(n[:1]) == A.FLOOR_DB                            # mono
    assert A.stereo_width_db(np.zeros((2, 100))) == A.FLOOR_DB               # silence
    assert abs(A.stereo_width_db(n)) < 0.05                                  # independent
    assert A.stereo_width_db(np.stack([n[0], -n[0]])) == -A.FLOOR_DB         # L = -R
    a, b = 1.0, 0.5        # correlated, unequal gains: side/mid = ((a-b)/(a+b))^2
    expected = 20 * math.log10((a - b) / (a + b))
    assert A.stereo_width_db(np.stack([a * n[0], b * n[0]])) == pytest.approx(expected, abs=1e-9)


def test_band_definitions():
    assert len(A.BANDS_HZ) == A.N_BANDS == 27
    assert A.BANDS_HZ[0] == 40 and A.BANDS_HZ[-1] == 16000
    np.testing.assert_allclose(A.BAND_EDGES[1:, 0], A.BAND_EDGES[:-1, 1])     # contiguous
    np.testing.assert_allclose(A.BAND_CENTRES_EXACT / np.array(A.BANDS_HZ), 1.0, atol=0.03)
    # every bin's width is shared out completely between the bands it overlaps
    w = A.band_matrix(48000, 16384)
    inside = (np.arange(w.shape[1]) * 48000 / 16384 > A.BAND_EDGES[0, 0] + 3) & \
             (np.arange(w.shape[1]) * 48000 / 16384 < A.BAND_EDGES[-1, 1] - 3)
    np.testing.assert_allclose(w.sum(0)[inside], 1.0)


def test_tonal_balance_of_pink_noise_is_flat():
    tb = A.tonal_balance(pink(44100, 30, seed=6), 44100)
    assert tb["bands_hz"] == [float(f) for f in A.BANDS_HZ]
    # L and R independent, so mid and side are both pink: equal power in every 1/3 octave
    assert np.max(np.abs(tb["mid_db"])) < 1.0
    assert np.max(np.abs(tb["side_db"])) < 1.0


def test_tonal_balance_of_white_noise_follows_band_width():
    tb = A.tonal_balance(white(48000, 20, seed=7), 48000)
    bw = A.BAND_EDGES[:, 1] - A.BAND_EDGES[:, 0]
    expected = 10 * np.log10(bw / bw.mean())            # power proportional to bandwidth
    assert np.max(np.abs(np.array(tb["mid_db"]) - expected)) < 1.0
    assert np.max(np.abs(np.array(tb["side_db"]) - expected)) < 1.0


def test_tonal_balance_of_a_sine_and_of_mono():
    sr = 44100
    x = np.sin(2 * np.pi * 1000 * np.arange(sr * 5) / sr)[None]
    tb = A.tonal_balance(x, sr)
    mid = np.array(tb["mid_db"])
    k = A.BANDS_HZ.index(1000)
    # one band holds (nearly) all the power: 10 log10(27) above the mean
    assert mid[k] == pytest.approx(10 * math.log10(27), abs=0.01)
    assert np.all(np.delete(mid, k) < mid[k] - 60)
    assert tb["side_db"] == [A.FLOOR_DB] * 27


def test_tonal_balance_above_nyquist_is_floor_and_left_out_of_errors():
    x = pink(22050, 10, seed=8)
    d = A.analyze(x, 22050)
    tb = d["tonal_balance"]
    assert tb["mid_db"][-1] == A.FLOOR_DB                 # 16 kHz band, Nyquist 11 kHz
    ref = A.analyze(pink(44100, 10, seed=9), 44100)
    keep = A.common_bands(d, ref)
    assert keep.sum() == np.sum(A.BAND_EDGES[:, 1] <= 11025)
    assert A.tonal_error_db(d, ref) < 2.0


# ---------------------------------------------------------------------------------------------
# analyze, silence, comparisons, text
# ---------------------------------------------------------------------------------------------

def test_analyze_keys_and_json():
    d = A.analyze(music(44100, 6.0).astype(np.float32), 44100)
    json.dumps(d, allow_nan=False)
    assert set(d) >= {"integrated_lufs", "short_term_lufs_max", "loudness_range_lu",
                      "true_peak_dbtp", "sample_peak_dbfs", "plr_db", "crest_factor_db",
                      "tonal_balance", "width_db", "duration_s", "sample_rate", "channels"}
    assert d["duration_s"] == pytest.approx(6.0) and d["channels"] == 2
    assert d["sample_rate"] == 44100 and not d["silent"]
    assert d["true_peak_dbtp"] >= d["sample_peak_dbfs"]


@pytest.mark.parametrize("shape", [(2, 44100 * 3), (1, 44100), (2, 100), (1, 1)])
def test_silence_and_tiny_inputs(shape):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        d = A.analyze(np.zeros(shape, np.float32), 44100)
    json.dumps(d, allow_nan=False)
    assert d["silent"]
    for key in ("integrated_lufs", "short_term_lufs_max", "true_peak_dbtp", "sample_peak_dbfs",
                "width_db"):
        assert d[key] == A.FLOOR_DB
    assert d["plr_db"] == d["loudness_range_lu"] == d["crest_factor_db"] == 0.0
    assert d["tonal_balance"]["mid_db"] == [A.FLOOR_DB] * 27
    A.format_analysis(d)


def test_short_non_silent_input():
    d = A.analyze(white(44100, 0.2, seed=1), 44100)     # shorter than one 400 ms block
    assert abs(d["integrated_lufs"] - A.integrated_loudness(white(44100, 0.2, seed=1), 44100)) < 1e-9
    assert -30 < d["integrated_lufs"] < -5


def test_bad_shapes_are_clear_errors():
    with pytest.raises(AutomixError):
        A.analyze(np.zeros((3, 1000)), 44100)
    with pytest.raises(AutomixError):
        A.analyze(np.zeros((2, 0)), 44100)


def test_comparisons():
    sr = 44100
    x = music(sr, 6.0)
    a, b = A.analyze(x, sr), A.analyze(0.25 * x, sr)
    assert A.loudness_error_lu(a, b) == pytest.approx(20 * math.log10(4), abs=1e-6)
    # level does not change tone, width or PLR
    assert A.tonal_error_db(a, b) < 1e-4 and A.tonal_error_db(a, b, "side") < 1e-4
    assert A.width_error_db(a, b) < 1e-9 and A.plr_error_db(a, b) < 1e-6
    assert A.lra_error_lu(a, b) < 1e-6
    c = A.compare(a, b)
    assert set(c) == {"loudness_error_lu", "tonal_mid_error_db", "tonal_side_error_db",
                      "width_error_db", "plr_error_db", "lra_error_lu", "true_peak_dbtp"}
    tilted = A.analyze(pink(sr, 10, seed=1), sr)
    flat_white = A.analyze(white(sr, 10, seed=1), sr)
    bw = A.BAND_EDGES[:, 1] - A.BAND_EDGES[:, 0]
    expected = np.mean(np.abs(10 * np.log10(bw / bw.mean())))
    assert A.tonal_error_db(tilted, flat_white) == pytest.approx(expected, abs=0.5)
    with pytest.raises(ValueError):
        A.tonal_error_db(a, b, "both")


def test_format_analysis():
    d = A.analyze(music(44100, 4.0), 44100)
    text = A.format_analysis(d)
    assert f"{d['integrated_lufs']:.1f} LUFS" in text
    assert f"{d['true_peak_dbtp']:.1f} dBTP" in text
    assert "16k" in text and len(text.splitlines()) < 20


# ---------------------------------------------------------------------------------------------
# torch twins
# ---------------------------------------------------------------------------------------------

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("device", DEVICES)
def test_loudness_torch_matches_numpy(dtype, device):
    sr = 44100
    t = np.arange(sr * 6) / sr
    signals = [white(sr, 6, seed=1), pink(sr, 6, seed=2),
               np.stack([0.3 * np.sin(2 * np.pi * 440 * t)] * 2)]
    x = torch.tensor(np.stack(signals), dtype=dtype, device=device)
    expected = np.array([A.integrated_loudness(s, sr) for s in signals])
    for gate in (None, "absolute", "bs1770"):
        got = A.loudness_torch(x, sr, gate=gate).cpu().double().numpy()
        np.testing.assert_allclose(got, expected, atol=0.05)
    # with the standard's gates the twin is the meter (same filter, same blocks)
    m = music(sr, 8.0)
    got = A.loudness_torch(torch.tensor(m[None], dtype=torch.float64), sr, gate="bs1770")
    assert got.item() == pytest.approx(A.integrated_loudness(m, sr), abs=1e-6)


def test_k_weight_torch_equals_iir_filter():
    sr = 48000
    x = music(sr, 2.0, seed=3)
    got = A.k_weight_torch(torch.tensor(x), sr).numpy()
    np.testing.assert_allclose(got, A.k_weight(x, sr), atol=1e-9)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-6), (torch.float32, 0.05)])
def test_band_spectrum_torch_matches_numpy(dtype, tol):
    sr = 44100
    signals = [pink(sr, 12, seed=4), white(sr, 12, seed=5), music(sr, 12.0)]
    got = A.band_spectrum_torch(torch.tensor(np.stack(signals), dtype=dtype), sr).double().numpy()
    assert got.shape == (3, 2, 27)
    for g, s in zip(got, signals):
        tb = A.tonal_balance(s, sr)
        assert np.max(np.abs(g[0] - tb["mid_db"])) < tol
        assert np.max(np.abs(g[1] - tb["side_db"])) < tol
    mono = A.band_spectrum_torch(torch.tensor(signals[0][:1][None]), sr)
    assert torch.all(mono[0, 1] == A.FLOOR_DB)


def test_width_torch_matches_numpy():
    n = white(44100, 3, seed=6)
    signals = [n, np.stack([n[0], 0.5 * n[0]]), np.stack([n[0], n[0]])]
    got = A.width_torch(torch.tensor(np.stack(signals))).numpy()
    expected = [A.stereo_width_db(s) for s in signals]
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert A.width_torch(torch.tensor(n[:1][None])).item() == A.FLOOR_DB


def test_dynamics_torch():
    sr = 44100
    loud, quiet = white(sr, 6, seed=1), white(sr, 6, seed=2) * 0.1
    varying = np.concatenate([loud, quiet], axis=1)
    steady = white(sr, 12, seed=3)
    x = torch.tensor(np.stack([varying, steady]))
    dyn = A.dynamics_torch(x, sr)
    assert dyn.shape == (2, 2) and A.DYNAMICS_FEATURES == ("plr_db", "loudness_spread_lu")
    # scale-invariant statistics
    torch.testing.assert_close(A.dynamics_torch(0.3 * x, sr), dyn, atol=1e-3, rtol=0)
    # PLR proxy is at most the sample-peak PLR and near it (Gaussian noise: the mean of its top
    # 1e-5 samples sits ~1.5 dB below its maximum)
    d = A.analyze(steady, sr)
    sample_plr = d["sample_peak_dbfs"] - d["integrated_lufs"]
    assert sample_plr - 2.0 < dyn[1, 0].item() <= sample_plr + 0.05
    m = music(sr, 10.0)
    d = A.analyze(m, sr)
    proxy = A.plr_torch(torch.tensor(m[None]), sr).item()
    assert abs(proxy - (d["sample_peak_dbfs"] - d["integrated_lufs"])) < 1.0
    # two levels 20 dB apart, half the windows each: spread close to 10 LU; steady close to 0
    assert 8.0 < dyn[0, 1].item() < 10.5
    assert dyn[1, 1].item() < 0.2


@pytest.mark.parametrize("device", DEVICES)
def test_gradients_are_finite_and_nonzero(device):
    sr = 22050
    x = torch.tensor(np.stack([music(sr, 4.0), white(sr, 4.0, seed=1)]), dtype=torch.float32,
                     device=device, requires_grad=True)
    loss = (A.loudness_torch(x, sr).sum() + A.loudness_torch(x, sr, gate="bs1770").sum()
            + A.band_spectrum_torch(x, sr).sum() + A.width_torch(x).sum()
            + A.dynamics_torch(x, sr).sum())
    loss.backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for item in range(2):
        assert x.grad[item].abs().sum() > 0


@pytest.mark.parametrize("channels", [1, 2])
def test_gradients_on_silence_are_finite(channels):
    sr = 22050
    x = torch.zeros(2, channels, sr * 2, requires_grad=True)
    out = [A.loudness_torch(x, sr), A.loudness_torch(x, sr, gate="absolute"),
           A.band_spectrum_torch(x, sr), A.width_torch(x), A.dynamics_torch(x, sr)]
    assert out[0].tolist() == pytest.approx([A.FLOOR_DB] * 2)
    assert torch.all(out[2] == A.FLOOR_DB)
    sum(o.sum() for o in out).backward()
    assert torch.isfinite(x.grad).all()


def test_analyze_reuses_spectra_only_on_its_own_grid():
    x = pink(44100, 3, seed=11)
    plain = A.analyze(x, 44100)
    same = A.mid_side_power_spectra(x, 44100)
    assert A.analyze(x, 44100, spectra=same) == plain
    coarse = A.mid_side_power_spectra(x, 44100, 4096)  # another grid: recomputed, not misread
    assert A.analyze(x, 44100, spectra=coarse) == plain
    tilted = (same[0] * np.linspace(1, 4, len(same[0])), same[1], same[2])
    assert A.analyze(x, 44100, spectra=tilted)["tonal_balance"] != plain["tonal_balance"]  # used
