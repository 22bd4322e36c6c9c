"""The master's loudness search: the surrogate-guided search lands on the target as measured on
the real limited render (an independent BS.1770 meter, pyloudnorm)."""
import numpy as np
import pyloudnorm
import pytest

from automix.dsp.dynamics import limit_in_place, lookahead_samples
from automix.loudness_search import _block_divisor, loudness_stage, match_loudness

SR = 44100


def music_like(seconds=20, seed=0):
    """Noise with a little low-frequency drift and drum-like bursts: a crest factor the limiter has to work on."""
    rng = np.random.default_rng(seed)
    n = SR * seconds
    x = rng.standard_normal((2, n)) + 0.02 * np.cumsum(rng.standard_normal((2, n)), axis=1) / np.sqrt(SR)
    t = np.arange(n) / SR
    hits = np.exp(-((t * 2) % 1) * 25)
    x = x * (0.2 + hits)
    return 0.1 * x / np.abs(x).max()


@pytest.mark.parametrize("target", [-14.0, -9.0])
def test_search_reaches_the_target_on_the_rendered_master(target):
    pre = music_like()
    lim = {"ceiling_dbtp": -1.0, "release_ms": 40.0, "lookahead_ms": 1.5}
    gain, reached = match_loudness(pre, lim, target, SR)
    assert abs(reached - target) < 0.02
    y = np.ascontiguousarray(pre * 10 ** (gain / 20))
    limit_in_place(y, lim["ceiling_dbtp"], lim["release_ms"], lookahead_samples(lim["lookahead_ms"], SR), SR)
    measured = pyloudnorm.Meter(SR).integrated_loudness(y.T)
    assert measured == pytest.approx(target, abs=0.06)
    assert np.abs(y).max() <= 10 ** (-1.0 / 20)


def test_release_gets_faster_only_when_the_target_needs_it():
    pre = music_like(seed=1)
    lim = {"ceiling_dbtp": -1.0, "release_ms": 80.0, "lookahead_ms": 1.5}
    gentle = loudness_stage(pre, lim, -16.0, SR)
    assert gentle["limiter"]["release_ms"] == 80.0 and abs(gentle["reached_lufs"] + 16) < 0.02
    loud = loudness_stage(pre, lim, -6.0, SR)
    assert loud["limiter"]["release_ms"] < 80.0


def test_blocks_tile_the_loudness_hop():
    for sr in (22050, 32000, 44100, 48000, 88200, 96000):
        d = _block_divisor(sr)
        assert 8 <= d <= 16 and round(sr * 0.1) % d == 0
    assert _block_divisor(11025) == 1  # a 1102.5-sample hop: no tiling, full rate
