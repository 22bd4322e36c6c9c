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


def test_compressed_loudness_range_from_the_gain_alone():
    """choose_compressor's shortcut: the loudness range of K(x) x compressor gain equals that
    of the really compressed signal, K-weighted (within 0.2 LU)."""
    from automix import analysis
    from automix.api import _compress
    from automix.dsp.dynamics import CompressorParams, compressor_gain, log_level

    x = music_like(seconds=40, seed=2)
    x = x * np.repeat(np.array([0.1, 1.0, 0.3, 0.6]), x.shape[1] // 4 + 1)[None, :x.shape[1]]
    comp = {"threshold_db": -50.0, "ratio": 4.0, "attack_ms": 30.0, "release_ms": 300.0,
            "knee_db": 6.0, "makeup_db": 0.0}
    exact = analysis.loudness_range(analysis.short_term_loudness(_compress(x, comp, SR), SR))
    gain = compressor_gain(log_level(x), CompressorParams(comp, SR).array, np.zeros(1))
    fast = analysis.loudness_range(analysis.short_term_loudness_of_weighted(analysis.k_weight(x, SR), SR, gain))
    before = analysis.loudness_range(analysis.short_term_loudness(x, SR))
    assert before - exact > 3.0          # the compressor does narrow the range
    assert fast == pytest.approx(exact, abs=0.2)
