"""True-peak limiter checked by an independent 4x meter; pan and width against their laws."""
import math

import numpy as np
import pytest
import scipy.signal
import torch

from automix.dsp.dynamics import limiter, lookahead_samples
from automix.dsp.stereo import apply_width, pan_and_width

SR = 44100
T64 = lambda v: torch.tensor([float(v)], dtype=torch.float64)  # noqa: E731
# An interpolator designed here with scipy, independent of automix's own polyphase filter.
_METER_TAPS = scipy.signal.firwin(4 * 64 + 1, 1 / 4, window=("kaiser", 9.0))


def meter_dbtp(x):
    up = scipy.signal.resample_poly(x, 4, 1, axis=-1, window=_METER_TAPS)
    return 20 * np.log10(np.abs(up).max())


def hard_material(rng):
    t = np.arange(2 * SR) / SR
    square = np.sign(np.sin(2 * np.pi * 441 * t))
    fs4 = np.sin(np.pi / 2 * np.arange(2 * SR) + np.pi / 4) * np.hanning(2 * SR) ** 0.1
    near_nyquist = np.sin(2 * np.pi * 19500 * t + 0.3)
    drums = np.zeros(2 * SR)
    for start in range(0, 2 * SR, SR // 4):
        n = np.arange(SR // 8)
        hit = np.sin(2 * np.pi * 60 * n / SR * (1 + 2 * np.exp(-n / 400))) * np.exp(-n / 3000)
        hit += rng.standard_normal(len(n)) * np.exp(-n / 300)
        drums[start:start + len(n)] += hit
    music = (np.sin(2 * np.pi * 110 * t) + 0.5 * np.sin(2 * np.pi * 220.5 * t + 1)
             + 0.3 * np.sin(2 * np.pi * 1320 * t) + 0.5 * drums)
    music = scipy.signal.lfilter([1, -0.5], [1], music) / 3 * 10  # +20 dB overdriven music
    cases = {"square": 2 * square, "fs/4 at 45 deg": 4 * fs4, "19.5 kHz": 2 * near_nyquist,
             "drums": 3 * drums, "music +20 dB": music}
    # 2 ms fades: an abrupt full-scale start excites each interpolator's Gibbs ripple
    # differently, so two good meters disagree there by ~0.1 dB; music starts from silence.
    fade = np.ones(2 * SR)
    ramp = np.sin(np.linspace(0, np.pi / 2, 88)) ** 2
    fade[:88], fade[-88:] = ramp, ramp[::-1]
    return {k: np.stack([v, np.roll(v, 3) * 0.8]) * fade for k, v in cases.items()}


@pytest.mark.parametrize("ceiling", [-1.0, -0.1, -3.0])
def test_limiter_output_stays_below_ceiling(rng, ceiling):
    for name, x in hard_material(rng).items():
        assert meter_dbtp(x) > ceiling + 3, name  # the material really needs limiting
        y = limiter(torch.tensor(x)[None], T64(ceiling), T64(80.0),
                    lookahead_samples(2.0, SR), SR)[0].numpy()
        assert meter_dbtp(y) <= ceiling + 0.05, name
        assert meter_dbtp(y) > ceiling - 1.0, name  # and it does not just turn everything down


@pytest.mark.parametrize("ceiling", [-1.0, -3.0])
def test_render_path_limiter_stays_below_ceiling_and_matches_training_path(rng, ceiling):
    """The render executor's streaming in-place limiter (numba), through the same meter."""
    from automix.render import apply_limiter

    lim = {"ceiling_dbtp": ceiling, "release_ms": 80.0, "lookahead_ms": 2.0}
    for name, x in hard_material(rng).items():
        y = apply_limiter(x, lim, SR)
        assert meter_dbtp(y) <= ceiling + 0.05, name
        assert meter_dbtp(y) > ceiling - 1.0, name
        ref = limiter(torch.tensor(x)[None], T64(ceiling), T64(80.0),
                      lookahead_samples(2.0, SR), SR)[0].numpy()
        assert np.abs(y - ref).max() <= 1e-5 * np.abs(ref).max(), name


def test_limiter_leaves_quiet_material_untouched(rng):
    x = rng.standard_normal((2, SR)) * 0.05
    y = limiter(torch.tensor(x)[None], T64(-1.0), T64(80.0), 88, SR)[0].numpy()
    np.testing.assert_allclose(y, x, atol=1e-12)


def test_limiter_gradients_and_gradcheck():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 2, 200, generator=g, dtype=torch.float64) * 2
    ceiling, release = T64(-1.0).requires_grad_(), T64(5.0).requires_grad_()
    x.requires_grad_()
    assert torch.autograd.gradcheck(lambda c, r, s: limiter(s, c, r, 8, 8000),
                                    (ceiling, release, x), atol=1e-6)


@pytest.mark.parametrize("pan", np.linspace(-1, 1, 21))
def test_mono_pan_is_constant_power(pan):
    x = torch.ones(1, 2, 8, dtype=torch.float64)  # a mono source on both channels
    y = pan_and_width(x, T64(pan), T64(1.0), torch.tensor([False]))[0, :, 0]
    power_db = 10 * math.log10(float(y[0] ** 2 + y[1] ** 2))
    assert power_db == pytest.approx(0.0, abs=0.01)
    if pan == 0:
        assert 20 * math.log10(float(y[0])) == pytest.approx(-3.0103, abs=0.01)
        assert float(y[0]) == pytest.approx(float(y[1]))
    if pan == -1:
        assert abs(float(y[1])) < 1e-12


def test_stereo_source_stays_stereo(rng):
    x = torch.tensor(rng.standard_normal((1, 2, 1000)))
    y = pan_and_width(x, T64(0.0), T64(1.0), torch.tensor([True]))
    torch.testing.assert_close(y, x)  # centre balance and width 1: the image is untouched
    y = pan_and_width(x, T64(0.3), T64(1.0), torch.tensor([True]))
    assert torch.corrcoef(y[0])[0, 1].abs() < 0.5  # still two independent channels


def test_width_mid_side(rng):
    x = torch.tensor(rng.standard_normal((2, 500)))
    mid, side = (x[0] + x[1]) / 2, (x[0] - x[1]) / 2
    for w in (0.0, 0.5, 1.0, 1.7):
        y = apply_width(x, torch.tensor(w, dtype=torch.float64))
        torch.testing.assert_close((y[0] + y[1]) / 2, mid)
        torch.testing.assert_close((y[0] - y[1]) / 2, w * side)
