"""Compressor: static curve, time constants and gradients, checked against formulas and a plain
Python loop written here; ballistics gradients by gradcheck."""
import math

import numpy as np
import pytest
import torch

from automix.dsp.ballistics import ballistics, time_constant_to_coef
from automix.dsp.dynamics import compressor

SR = 44100
T64 = lambda v: torch.tensor([float(v)], dtype=torch.float64)  # noqa: E731


def soft_knee_db(x, T, R, W):
    """Static output level (Giannoulis, Massberg & Reiss 2012, eq. 4)."""
    if 2 * (x - T) < -W:
        return x
    if W > 0 and 2 * abs(x - T) <= W:
        return x + (1 / R - 1) * (x - T + W / 2) ** 2 / (2 * W)
    return T + (x - T) / R


def run(x, thr=-20, ratio=4, att=1.0, rel=100.0, knee=6, makeup=0.0):
    y, _ = compressor(torch.as_tensor(x, dtype=torch.float64)[None], T64(thr), T64(ratio),
                      T64(att), T64(rel), T64(knee), T64(makeup), SR)
    return y[0].numpy()


@pytest.mark.parametrize("knee", [0.0, 6.0, 12.0])
def test_static_curve_matches_soft_knee_formula(knee):
    t = np.arange(SR) / SR
    for level in np.arange(-40.0, 0.1, 2.5):
        x = 10 ** (level / 20) * np.sin(2 * np.pi * 1000 * t)
        y = run(np.stack([x, x]), thr=-20, ratio=4, att=0.1, rel=3000.0, knee=knee, makeup=2.0)
        out = 20 * np.log10(np.abs(y[0, -SR // 10:]).max())
        assert out == pytest.approx(soft_knee_db(level, -20, 4, knee) + 2.0, abs=0.1), level


def _crossing_time(gain_db, start, target_fraction, final):
    """Seconds after ``start`` until the gain has covered ``target_fraction`` of its move."""
    g0 = gain_db[start - 1]
    goal = g0 + target_fraction * (final - g0)
    seg = gain_db[start:]
    idx = np.argmax(seg <= goal) if final < g0 else np.argmax(seg >= goal)
    return idx / SR


@pytest.mark.parametrize("att,rel", [(5.0, 100.0), (20.0, 400.0), (1.0, 50.0)])
def test_attack_and_release_time_constants(att, rel):
    n = SR
    level = np.full(3 * n, 10 ** (-50 / 20))
    level[n:2 * n] = 10 ** (-10 / 20)  # step 40 dB up into compression, then back down
    x = np.stack([level, level])
    y = run(x, thr=-30, ratio=4, att=att, rel=rel, knee=0)
    gain_db = 20 * np.log10(y[0] / x[0])
    final_gr = (1 / 4 - 1) * (-10 - -30)  # -15 dB
    assert gain_db[2 * n - 1] == pytest.approx(final_gr, abs=0.01)
    t_att = _crossing_time(gain_db, n, 1 - 1 / math.e, final_gr)
    t_rel = _crossing_time(gain_db, 2 * n, 1 - 1 / math.e, 0.0)
    assert t_att == pytest.approx(att / 1000, rel=0.1)
    assert t_rel == pytest.approx(rel / 1000, rel=0.1)


def test_release_changes_the_output(rng):
    x = rng.standard_normal((2, SR)) * np.repeat(rng.uniform(0.01, 1, 20), SR // 20 + 1)[:SR]
    a = run(x, rel=50.0)
    b = run(x, rel=500.0)
    assert np.abs(a - b).max() > 1e-2


def naive_ballistics(x, ca, cr, y0):
    out, prev = [], y0
    for v in x:
        c = ca if v < prev else cr
        prev = prev + c * (v - prev)
        out.append(prev)
    return np.array(out)


def test_ballistics_matches_plain_loop(rng):
    x = rng.standard_normal(3000).cumsum()
    y = ballistics(torch.tensor(x)[None], torch.tensor(0.3, dtype=torch.float64),
                   torch.tensor(0.01, dtype=torch.float64), torch.tensor(0.5, dtype=torch.float64))
    np.testing.assert_allclose(y[0].numpy(), naive_ballistics(x, 0.3, 0.01, 0.5), atol=1e-12)


def test_ballistics_gradcheck():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 40, generator=g, dtype=torch.float64).cumsum(-1).requires_grad_()
    ca = torch.tensor([0.5, 0.2, 0.9], dtype=torch.float64, requires_grad=True)
    cr = torch.tensor([0.05, 0.1, 0.3], dtype=torch.float64, requires_grad=True)
    y0 = torch.tensor([0.0, 1.0, -1.0], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(ballistics, (x, ca, cr, y0))


def test_time_constant_convention():
    # a step reaches 1 - 1/e after tau: (1 - c)^(tau * sr) = 1/e
    c = time_constant_to_coef(10.0, SR)
    assert (1 - c) ** (0.010 * SR) == pytest.approx(1 / math.e, rel=1e-9)


def test_compressor_gradcheck_including_knee_zero():
    g = torch.Generator().manual_seed(1)
    x = (torch.randn(1, 2, 64, generator=g, dtype=torch.float64) * 0.5)

    def f(thr, ratio, att, rel, knee, makeup):
        return compressor(x, thr, ratio, att, rel, knee, makeup, 8000)[0]

    for knee in (4.0, 0.0):
        args = [T64(-12.0), T64(3.0), T64(2.0), T64(20.0), T64(knee), T64(1.0)]
        for a in args:
            a.requires_grad_()
        y = f(*args)
        y.pow(2).sum().backward()
        assert all(torch.isfinite(a.grad).all() for a in args)
        if knee > 0:  # at knee 0 the knee gradient is zero almost everywhere (hard knee)
            assert torch.autograd.gradcheck(f, args, atol=1e-6)
