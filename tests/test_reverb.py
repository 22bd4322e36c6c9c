"""The reverb (automix/dsp/reverb.py) against math: Schroeder RT60 per band, echo density,
executors' agreement, bit-exact re-render, gradients to every parameter, bad input."""
import math

import numpy as np
import pytest
import scipy.signal
import torch

from automix.dsp import reverb as R
from automix.errors import AutomixError


def params(rows=1, **kw):
    base = dict(predelay_ms=12.3, rt60_low_s=2.4, rt60_mid_s=1.2, rt60_high_s=0.5,
                early_late_db=-6.0, width=1.0, hp_hz=20.0, lp_hz=20000.0)
    base.update(kw)
    return {k: torch.full((rows,), float(v), dtype=torch.float64) if not torch.is_tensor(v)
            else v.to(torch.float64) for k, v in base.items()}


def schroeder_rt60(ir, sr, lo_hz, hi_hz, lo_db=-5.0, hi_db=-25.0):
    """T20 of the band ``lo_hz..hi_hz``: Butterworth band-pass (order 4 per edge) run on the
    time-reversed IR (so the filter's own ringing does not lengthen the decay), Schroeder
    backward integration, least-squares line between -5 and -25 dB, extrapolated to -60 dB."""
    sos = scipy.signal.butter(4, [lo_hz, hi_hz], btype="band", fs=sr, output="sos")
    y = scipy.signal.sosfilt(sos, ir[::-1])[::-1]
    e = np.cumsum((y ** 2)[::-1])[::-1]
    edc = 10 * np.log10(e / e[0] + 1e-300)
    i0, i1 = np.argmax(edc < lo_db), np.argmax(edc < hi_db)
    slope, _ = np.polyfit(np.arange(i0, i1) / sr, edc[i0:i1], 1)
    return -60.0 / slope


# where each band is alone (the crossovers at 500 Hz and 4 kHz blend over +-1/2 octave)
BANDS_HZ = ((25.0, 350.0), (710.0, 2800.0), (5700.0, 14000.0))


@pytest.mark.parametrize("rts", [(2.4, 1.2, 0.5), (0.6, 1.0, 1.8), (0.3, 0.3, 0.3)])
def test_schroeder_rt60_per_band_within_10_percent(rts):
    sr = 32000
    p = params(rt60_low_s=rts[0], rt60_mid_s=rts[1], rt60_high_s=rts[2])
    ir = R.reverb_ir(p, sr)[0].numpy()
    for c in range(2):
        for (lo, hi), want in zip(BANDS_HZ, rts):
            got = schroeder_rt60(ir[c], sr, lo, hi)
            assert abs(got / want - 1) < 0.10, (c, lo, got, want)


def test_finite_ir_decays_inside_its_grid_and_predelay_is_exact():
    sr = 22050
    p = params(predelay_ms=40.0, early_late_db=-60.0, rt60_low_s=0.4, rt60_mid_s=0.4,
               rt60_high_s=0.4)
    n_env, n_fft = R.ir_length(p, sr)
    ir = R.reverb_ir(p, sr)[0].numpy()
    energy = (ir ** 2).sum()
    # stable by construction (finite IR); and nothing wraps round the grid: the last 5 % and
    # the time before the pre-delay hold less than -100 dB of the energy
    assert (ir[:, -n_fft // 20:] ** 2).sum() / energy < 1e-10
    assert (ir[:, :int(0.040 * sr) - 50] ** 2).sum() / energy < 1e-10


def test_echo_density_is_that_of_noise_after_50_ms():
    """Abel & Huang's normalised echo density (share of samples outside one standard deviation in
    a 20 ms window, over erfc(1/sqrt2)) is ~1 for Gaussian noise and well under 1 for sparse
    echoes (metallic ringing)."""
    sr = 44100
    ir = R.reverb_ir(params(predelay_ms=0.0), sr)[0].numpy()
    win = int(0.02 * sr)
    for c in range(2):
        for start_s in (0.05, 0.1, 0.3, 0.6):
            seg = ir[c, int(start_s * sr):int(start_s * sr) + win]
            seg = seg / np.exp(-3 * math.log(10) * np.arange(win) / sr / 1.2)  # undo the decay
            ned = np.mean(np.abs(seg) > seg.std()) / math.erfc(1 / math.sqrt(2))
            assert 0.85 < ned < 1.15, (start_s, ned)


def test_channels_decorrelated_and_mono_sum_independent_of_width():
    sr = 22050
    irs = {w: R.reverb_ir(params(width=w), sr)[0].numpy() for w in (0.0, 0.5, 1.0)}
    mono = {w: ir[0] + ir[1] for w, ir in irs.items()}
    np.testing.assert_allclose(mono[0.0], mono[1.0], atol=1e-12)
    np.testing.assert_allclose(mono[0.5], mono[1.0], atol=1e-12)
    late = irs[1.0][:, int(0.08 * sr):]
    rho = (late[0] * late[1]).sum() / np.sqrt((late[0] ** 2).sum() * (late[1] ** 2).sum())
    assert abs(rho) < 0.05
    np.testing.assert_allclose(irs[0.0][0], irs[0.0][1], atol=1e-12)  # width 0: mono return


def test_training_and_render_agree_and_rerender_is_bit_exact():
    sr, T, block = 16000, 20000, 4096
    rng = np.random.default_rng(3)
    x = torch.tensor(rng.standard_normal((2, 2, T)) * 0.1)
    p = params(2)
    p["rt60_mid_s"] = torch.tensor([0.7, 1.3], dtype=torch.float64)  # rows of different lengths
    p["predelay_ms"] = torch.tensor([3.3, 51.7], dtype=torch.float64)
    p["hp_hz"] = torch.tensor([80.0, 300.0], dtype=torch.float64)
    p["lp_hz"] = torch.tensor([6000.0, 12000.0], dtype=torch.float64)
    y = R.reverb(x, p, sr).numpy()
    for r in range(2):
        row = {k: float(v[r]) for k, v in p.items()}
        outs = []
        for _ in range(2):
            st = R.ReverbState(row, sr, block)
            outs.append(np.concatenate([st.process(x[r, :, i:i + block].numpy())
                                        for i in range(0, T, block)], axis=1))
        assert np.array_equal(outs[0], outs[1])
        err = np.sum((outs[0] - y[r]) ** 2) / np.sum(outs[0] ** 2)
        assert 10 * np.log10(err) < -80, 10 * np.log10(err)


def test_partitioned_convolution_is_linear_convolution():
    rng = np.random.default_rng(0)
    ir = rng.standard_normal((2, 700))
    u = rng.standard_normal(1000)
    conv = R.PartitionedConvolution(ir, 128)
    y = np.concatenate([conv.process(u[i:i + 128]) for i in range(0, 1000, 128)], axis=1)
    want = np.stack([np.convolve(u, ir[c])[:1000] for c in range(2)])
    np.testing.assert_allclose(y, want, atol=1e-11)
    # calls of any length, in any order, give the same convolution
    rng2 = np.random.default_rng(5)
    cuts = np.sort(rng2.choice(np.arange(1, 1000), 12, replace=False))
    conv = R.PartitionedConvolution(ir, None)
    pieces = np.split(u, cuts)
    y = np.concatenate([conv.process(p) for p in pieces], axis=1)
    assert conv.block == 4096
    np.testing.assert_allclose(y, want, atol=1e-11)
    conv = R.PartitionedConvolution(ir, 100)
    y = np.concatenate([conv.process(p) for p in pieces], axis=1)
    np.testing.assert_allclose(y, want, atol=1e-11)


def test_gradcheck_every_parameter():
    sr, T = 8000, 96
    p = params(rt60_low_s=0.12, rt60_mid_s=0.1, rt60_high_s=0.08, predelay_ms=1.3, hp_hz=200.0,
               lp_hz=1500.0, width=0.7, early_late_db=-3.0)
    n_env, n_fft = R.ir_length(p, sr)
    x = torch.tensor(np.random.default_rng(1).standard_normal((1, 2, T)))
    names = list(R.PARAMS)

    def f(*vals):
        return R.reverb(x, dict(zip(names, vals)), sr, n_env, n_fft)

    vals = [p[k].clone().requires_grad_(True) for k in names]
    assert torch.autograd.gradcheck(f, vals, eps=1e-6, atol=1e-6, rtol=1e-4, fast_mode=True)
    y = f(*vals)
    grads = torch.autograd.grad((y ** 2).sum(), vals)
    assert all(float(g.abs().sum()) > 0 for g in grads)


@pytest.mark.parametrize("sr", [22050, 44100, 96000])
def test_no_nan_at_any_rate(sr):
    p = params(rt60_low_s=0.3, rt60_mid_s=0.3, rt60_high_s=0.3, lp_hz=20000.0, hp_hz=20.0)
    x = torch.zeros(1, 2, 2048, dtype=torch.float64)
    x[..., 0] = 1.0
    y = R.reverb(x, p, sr)
    assert torch.isfinite(y).all() and y.abs().max() > 0
    power = R.reverb_power_response(p, [100.0, 1000.0, 0.45 * sr], sr)
    assert all(torch.isfinite(v).all() for v in power.values())


def test_power_response_matches_the_ir():
    """The spectral model's expected power per octave equals the built IR's within 1.5 dB."""
    sr = 32000
    p = params(rt60_low_s=2.0, rt60_mid_s=1.0, rt60_high_s=0.6, hp_hz=150.0, lp_hz=7000.0,
               width=0.6)
    ir = R.reverb_ir(p, sr)[0].numpy()
    n = ir.shape[1]
    spec = np.fft.rfft(ir, axis=1)
    f = np.fft.rfftfreq(n, 1 / sr)
    m, s = (spec[0] + spec[1]) / 2, (spec[0] - spec[1]) / 2
    model = R.reverb_power_response(p, torch.tensor(f[::8]), sr)   # every 8th bin is plenty
    for fc in (250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0):
        band = (f > fc / math.sqrt(2)) & (f < fc * math.sqrt(2))
        for part, got in (("mid", np.abs(m) ** 2), ("side", np.abs(s) ** 2)):
            want = float(model[part][0, band[::8]].mean())
            diff = 10 * np.log10(got[band].mean() / want)
            assert abs(diff) < 1.5, (fc, part, diff)
    # the comb-averaged early part (the console's spectral executor) over the same octaves
    averaged = R.reverb_power_response(p, torch.tensor(f), sr, average_early=True)
    for fc in (250.0, 1000.0, 4000.0):
        band = (f > fc / math.sqrt(2)) & (f < fc * math.sqrt(2))
        for part, got in (("mid", np.abs(m) ** 2), ("side", np.abs(s) ** 2)):
            diff = 10 * np.log10(got[band].mean() / float(averaged[part][0, band].mean()))
            assert abs(diff) < 1.5, (fc, part, diff)
    t = torch.tensor([0.03, 1.03])
    decay = R.expected_decay_db(p, t)
    np.testing.assert_allclose(decay[0, :, 1].numpy(), [-30.0, -60.0, -100.0])


@pytest.mark.parametrize("bad, match", [
    (dict(rt60_mid_s=0.0), "rt60_mid_s must be within"),
    (dict(width=1.5), "width must be within"),
    (dict(predelay_ms=float("nan")), "predelay_ms must be a finite"),
    (dict(hp_hz=5000.0, lp_hz=4000.0), "hp_hz must be below"),
])
def test_bad_params_one_line_error(bad, match):
    row = {k: float(v[0]) for k, v in params(**bad).items()}
    with pytest.raises(AutomixError, match=match) as e:
        R.ReverbState(row, 44100)
    assert "\n" not in str(e.value)
    with pytest.raises(AutomixError, match="missing parameter"):
        R.check_params({"width": 1.0})


def test_a_row_in_a_longer_batch_changes_by_less_than_80_db():
    """Rows of a batch share the longest row's IR length: a short reverb next to a long one
    differs from itself alone only beyond its own length (below -84 dB) and by the grid's
    wrap."""
    sr, T = 16000, 24000
    x = torch.tensor(np.random.default_rng(4).standard_normal((2, 2, T)) * 0.1)
    short = params(rt60_low_s=0.5, rt60_mid_s=0.4, rt60_high_s=0.3, predelay_ms=7.7)
    both = params(2, rt60_low_s=0.5, rt60_mid_s=0.4, rt60_high_s=0.3, predelay_ms=7.7)
    for k in ("rt60_low_s", "rt60_mid_s", "rt60_high_s"):
        both[k] = torch.tensor([float(short[k][0]), 3.0], dtype=torch.float64)
    both["predelay_ms"] = torch.tensor([7.7, 120.0], dtype=torch.float64)
    alone = R.reverb(x[:1], short, sr)[0]
    batch = R.reverb(x, both, sr)[0]
    err = float(((alone - batch) ** 2).sum() / (alone ** 2).sum())
    assert 10 * math.log10(err) < -80, 10 * math.log10(err)
