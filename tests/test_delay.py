"""The delay (automix/dsp/delay.py) against math: taps at exact times with exact gains, the damped
echoes against scipy's filters, loop gain < 1 at every frequency, executors' agreement,
gradients, tempo sync, bad input."""
import math

import numpy as np
import pytest
import scipy.signal
import torch

from automix.dsp import delay as D
from automix.errors import AutomixError


def params(rows=1, **kw):
    base = dict(time_ms=10.0, feedback=0.6, damping_hz=1e9)
    base.update(kw)
    return {k: torch.full((rows,), float(v), dtype=torch.float64) for k, v in base.items()}


def impulse(T, rows=1, channels=2):
    x = torch.zeros(rows, channels, T, dtype=torch.float64)
    x[..., 0] = 1.0
    return x


@pytest.mark.parametrize("sr", [22050, 44100, 48000, 96000])
def test_stereo_taps_exact_without_damping(sr):
    D_samples = 441 if sr == 44100 else 480 if sr == 48000 else int(sr / 100)
    p = params(time_ms=1000.0 * D_samples / sr, feedback=0.6)
    T = 6 * D_samples
    y = D.delay(impulse(T), p, sr).numpy()[0]
    want = np.zeros(T)
    for k in range(1, 6):
        want[k * D_samples] = 0.6 ** (k - 1)
    for c in range(2):
        np.testing.assert_allclose(y[c], want, atol=1e-12)
    st = D.DelayState({k: float(v) for k, v in p.items()}, sr)
    out = st.process(impulse(T)[0].numpy())
    np.testing.assert_allclose(out[0], want, atol=1e-15)


def test_pingpong_taps_alternate_sides():
    sr, Ds, fb = 44100, 441, 0.7
    p = params(time_ms=10.0, feedback=fb)
    T = 7 * Ds
    x = impulse(T)
    x[:, 1] = 0.0                         # a hard-left impulse: the mid is 1/2
    for y in (D.delay(x, p, sr, "pingpong").numpy()[0],
              D.DelayState({k: float(v) for k, v in p.items()}, sr, "pingpong").process(
                  x[0].numpy())):
        left, right = np.zeros(T), np.zeros(T)
        for k in range(1, 7):
            (left if k % 2 else right)[k * Ds] = 0.5 * fb ** (k - 1)
        np.testing.assert_allclose(y[0], left, atol=1e-12)
        np.testing.assert_allclose(y[1], right, atol=1e-12)


def test_damped_echoes_equal_the_filters_applied_k_times():
    """The k-th echo is the one-pole low-pass applied k times (scipy.signal.lfilter), at k D."""
    sr, Ds, fb, fc = 32000, 320, 0.8, 2000.0
    p = params(time_ms=10.0, feedback=fb, damping_hz=fc)
    T = 4 * Ds
    a = math.exp(-2 * math.pi * fc / sr)
    want = np.zeros(T)
    echo = np.zeros(T)
    echo[0] = 1.0
    for k in range(1, 4):
        echo = scipy.signal.lfilter([1 - a], [1, -a], echo)
        want[k * Ds:] += fb ** (k - 1) * echo[:T - k * Ds]
    y = D.delay(impulse(T), p, sr).numpy()[0, 0]
    np.testing.assert_allclose(y, want, atol=1e-12)
    r = D.DelayState({k: float(v) for k, v in p.items()}, sr).process(impulse(T)[0].numpy())
    np.testing.assert_allclose(r[0], want, atol=1e-12)


def test_fractional_time_is_a_thiran_allpass():
    """10.7 samples: 10 whole samples then ``(eta + z^-1) / (1 + eta z^-1)`` with f = 0.7,
    eta = 0.3 / 1.7, computed by scipy as an independent check; flat magnitude."""
    sr = 10000
    p = params(time_ms=1.07, feedback=0.0)
    T = 64
    y = D.delay(impulse(T), p, sr).numpy()[0, 0]
    eta = (1 - 0.7) / (1 + 0.7)
    x = np.zeros(T)
    x[10] = 1.0
    want = scipy.signal.lfilter([eta, 1.0], [1.0, eta], x)
    np.testing.assert_allclose(y, want, atol=1e-12)
    assert abs(np.sum(y * np.arange(T)) / np.sum(y) - 10.7) < 1e-9   # DC group delay 10.7
    np.testing.assert_allclose(np.abs(np.fft.rfft(want, 4096))[1:], 1.0, atol=1e-6)


def test_loop_gain_below_one_at_every_frequency():
    rng = np.random.default_rng(0)
    for sr in (22050, 44100, 96000):
        p = {"time_ms": torch.tensor(rng.uniform(1.0, 4000.0, 50)),
             "feedback": torch.tensor(np.r_[rng.uniform(0, 0.99, 49), 0.99]),
             "damping_hz": torch.tensor(np.exp(rng.uniform(np.log(20), np.log(1e6), 50)))}
        omega = torch.linspace(0, math.pi, 4097, dtype=torch.float64)
        gain = (p["feedback"][:, None] * D.loop_response(p, omega, sr)).abs()
        assert float(gain.max()) <= 0.99 + 1e-12
    # and the recursion dies away: 0.99 feedback, no damping, 30 s
    st = D.DelayState({"time_ms": 5.0, "feedback": 0.99, "damping_hz": 1e9}, 8000)
    out = st.process(np.r_[1.0, np.zeros(8000 * 30 - 1)][None])
    # the last 800 samples hold the echo at 239200 = 5980 x 40 samples: gain 0.99^5979
    assert np.abs(out[:, -800:]).max() == pytest.approx(0.99 ** 5979, rel=1e-9)


@pytest.mark.parametrize("mode", D.MODES)
def test_training_and_render_agree_and_rerender_is_bit_exact(mode):
    sr, T = 44100, 12000
    rng = np.random.default_rng(2)
    p = {"time_ms": torch.tensor([10.0123, 77.7, 3.05]), "feedback": torch.tensor([0.7, 0.95, 0.3]),
         "damping_hz": torch.tensor([1e9, 3000.0, 800.0])}
    p = {k: v.double() for k, v in p.items()}
    x = torch.tensor(rng.standard_normal((3, 2, T)) * 0.1)
    y = D.delay(x, p, sr, mode).numpy()
    for r in range(3):
        row = {k: float(v[r]) for k, v in p.items()}
        runs = []
        for _ in range(2):
            st = D.DelayState(row, sr, mode)
            runs.append(np.concatenate([st.process(x[r, :, i:i + 1000].numpy())
                                        for i in range(0, T, 1000)], axis=1))
        assert np.array_equal(runs[0], runs[1])
        err = np.sum((runs[0] - y[r]) ** 2) / np.sum(runs[0] ** 2)
        assert 10 * np.log10(err) < -80


@pytest.mark.parametrize("mode", D.MODES)
def test_gradcheck_every_parameter(mode):
    sr, T = 8000, 80
    p = params(time_ms=2.3456, feedback=0.5, damping_hz=1500.0)
    x = torch.tensor(np.random.default_rng(1).standard_normal((1, 2, T)))
    names = list(D.PARAMS)
    vals = [p[k].clone().requires_grad_(True) for k in names]

    def f(*v):
        return D.delay(x, dict(zip(names, v)), sr, mode)

    assert torch.autograd.gradcheck(f, vals, eps=1e-7, atol=1e-6, rtol=1e-4, fast_mode=True)
    grads = torch.autograd.grad((f(*vals) ** 2).sum(), vals)
    assert all(float(g.abs()) > 0 for g in grads)


def test_power_response_and_decay_time():
    sr = 48000
    p = params(time_ms=250.0, feedback=0.5, damping_hz=4000.0)
    f = torch.tensor([0.0, 1000.0, 8000.0], dtype=torch.float64)
    a = math.exp(-2 * math.pi * 4000.0 / sr)
    lp = (1 - a) / np.abs(1 - a * np.exp(-2j * np.pi * f.numpy() / sr))
    rt = D.delay_decay_rt60(p, f, sr)[0].numpy()
    np.testing.assert_allclose(rt, 3 * 0.25 / -np.log10(0.5 * lp), rtol=1e-12)
    assert abs(rt[0] - 3 * 0.25 / math.log10(2)) < 1e-9      # 60 dB in 2.49 s at DC
    # the power response equals |FFT|^2 of the impulse response (27 echoes: decayed to 1e-19)
    p = params(time_ms=100.0, feedback=0.2, damping_hz=4000.0)
    T = 1 << 17
    h = D.DelayState({k: float(v) for k, v in p.items()}, sr).process(impulse(T)[0].numpy())[0]
    freqs = np.fft.rfftfreq(T, 1 / sr)
    got = np.abs(np.fft.rfft(h)) ** 2
    want = D.delay_power_response(p, torch.tensor(freqs), sr)["gain"][0].numpy()
    np.testing.assert_allclose(got, want, rtol=1e-6)
    pp = D.delay_power_response(p, torch.tensor(freqs), sr, "pingpong")
    hp = D.DelayState({k: float(v) for k, v in p.items()}, sr, "pingpong").process(
        impulse(T, channels=1)[0].numpy())
    m, s = np.fft.rfft((hp[0] + hp[1]) / 2), np.fft.rfft((hp[0] - hp[1]) / 2)
    np.testing.assert_allclose(np.abs(m) ** 2, pp["mid"][0].numpy(), rtol=1e-6)
    np.testing.assert_allclose(np.abs(s) ** 2, pp["side"][0].numpy(), rtol=1e-6)
    np.testing.assert_allclose((m * s.conj()).real, pp["cross"][0].numpy(), rtol=1e-6, atol=1e-9)


def test_tempo_sync():
    sr, bpm = 22050, 120.0
    n = int(sr * 12)
    x = np.zeros(n)
    rng = np.random.default_rng(0)
    for start in range(0, n - 2000, int(sr * 60 / bpm)):   # a decaying noise burst per beat
        x[start:start + 2000] += rng.standard_normal(2000) * np.exp(-np.arange(2000) / 300)
    got = D.tempo_bpm(np.stack([x, x]), sr)
    assert abs(got - bpm) / bpm < 0.03
    # the same beats split over two stems of different lengths and layouts
    half = x.copy()
    half[::2] = 0.0
    stems = [np.stack([x - half, x - half]), half[None, : n - sr]]
    assert abs(D.stems_tempo_bpm(stems, sr) - bpm) / bpm < 0.03
    assert D.beats_to_ms(0.75, 120.0) == 375.0
    with pytest.raises(AutomixError, match="silent"):
        D.tempo_bpm(np.zeros((2, sr * 3)), sr)


@pytest.mark.parametrize("bad, match", [
    (dict(feedback=1.0), "feedback must be within 0..0.99"),
    (dict(time_ms=float("inf")), "time_ms must be a finite"),
    (dict(time_ms=0.01), "must be within"),
    (dict(damping_hz=-5.0), "damping_hz must be within"),
])
def test_bad_params_one_line_error(bad, match):
    row = {k: float(v[0]) for k, v in params(**bad).items()}
    with pytest.raises(AutomixError, match=match) as e:
        D.DelayState(row, 44100)
    assert "\n" not in str(e.value)
    with pytest.raises(AutomixError, match="shorter than 1.5 samples"):
        D.DelayState({"time_ms": 1.0, "feedback": 0.5, "damping_hz": 1e9}, 1000)
    with pytest.raises(AutomixError, match="mode"):
        D.DelayState({"time_ms": 10.0, "feedback": 0.5, "damping_hz": 1e9}, 44100, "tape")


@pytest.mark.parametrize("mode", D.MODES)
def test_comb_averaged_power_is_the_mean_of_the_exact_response(mode):
    """The spectral executor's comb-averaged power equals the exact response's mean over a band
    holding many teeth (D = 10 ms: teeth every 100 Hz; bands of 1 kHz)."""
    sr = 48000
    p = params(time_ms=10.0, feedback=0.7, damping_hz=3000.0)
    f = torch.linspace(0, 12000, 120001, dtype=torch.float64)
    exact = D.delay_power_response(p, f, sr, mode)
    avg = D.delay_power_response(p, f, sr, mode, average=True)
    for lo in (500.0, 2000.0, 6000.0, 10000.0):
        band = (f >= lo) & (f < lo + 1000.0)
        for key in exact:
            want = float(exact[key][0, band].mean())
            got = float(avg[key][0, band].mean())
            assert abs(got - want) <= 0.02 * abs(want) + 1e-9, (lo, key, got, want)
