"""Top and tail: silence trimmed with pre-roll, equal-power fades against the math."""
import numpy as np
import pytest

from automix import toptail
from automix.errors import AutomixError

SR = 8000


def test_trim_keeps_the_music_with_a_small_pre_roll():
    rng = np.random.default_rng(0)
    x = 1e-5 * rng.standard_normal((2, 5 * SR))              # -100 dB hiss: silence
    x[:, SR:3 * SR] = 0.5 * rng.standard_normal((2, 2 * SR))
    start, end = toptail.find_trim(x, SR)
    assert start == SR - int(0.05 * SR)
    last = np.flatnonzero(np.abs(x).max(axis=0) > np.abs(x).max() * 1e-3)[-1]   # -60 dB
    assert end == last + 1 + int(0.1 * SR) and 3 * SR - 10 < last < 3 * SR
    y, span = toptail.top_and_tail(x, SR)
    assert span == (start, end) and np.array_equal(y, x[:, start:end])
    # nothing to trim, or all silent: untouched
    assert toptail.find_trim(x[:, SR:3 * SR], SR) == (0, 2 * SR)
    assert toptail.find_trim(np.zeros((2, 100)), SR) == (0, 100)


def test_equal_power_fades():
    fin, fout = toptail.fade_curves(1001)
    assert np.allclose(fin ** 2 + fout ** 2, 1.0, atol=1e-15, rtol=0)
    assert fin[0] == 0.0 and fin[-1] == 1.0 and fout[0] == 1.0 and abs(fout[-1]) < 1e-16
    assert np.all(np.diff(fin) > 0) and np.all(np.diff(fout) < 0)
    assert fin[500] == pytest.approx(np.sqrt(0.5))            # -3 dB at the middle
    # a crossfade between two uncorrelated noises keeps their power
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((2, 200, 1001))
    mix = a * fout + b * fin
    seg = np.mean((mix[:, :1000] ** 2).reshape(200, 10, 100), axis=(0, 2))  # 20 000 values each
    assert seg == pytest.approx(np.ones(10), abs=0.05)
    linear = a * (1 - np.linspace(0, 1, 1001)) + b * np.linspace(0, 1, 1001)
    assert np.mean(linear[:, 450:550] ** 2) < 0.55            # a linear crossfade dips 3 dB


def test_apply_fades_touches_only_the_ends():
    x = np.ones((2, 10 * SR))
    y = toptail.apply_fades(x, SR, fade_in_s=1.0, fade_out_s=2.0)
    fin, _ = toptail.fade_curves(SR)
    _, fout = toptail.fade_curves(2 * SR)
    assert np.array_equal(y[:, :SR], np.broadcast_to(fin, (2, SR)))
    assert np.array_equal(y[:, -2 * SR:], np.broadcast_to(fout, (2, 2 * SR)))
    assert np.array_equal(y[:, SR:-2 * SR], x[:, SR:-2 * SR])
    assert y[0, 0] == 0.0 and y[0, -1] < 1e-16


def test_fade_errors_are_one_line():
    with pytest.raises(AutomixError, match="--fade-in -1"):
        toptail.apply_fades(np.ones((1, 100)), SR, fade_in_s=-1)
    with pytest.raises(AutomixError, match="longer together"):
        toptail.apply_fades(np.ones((1, 100)), SR, fade_in_s=0.01, fade_out_s=0.01)
