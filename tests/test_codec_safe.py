"""Lossy codecs and the codec-safe ceiling (issue 20 item 3): the decoded master of a case built
to overshoot (a loud, brick-wall-limited master) ends at or under the ceiling, measured by an
independent 4x true-peak meter (scipy polyphase resampling), and the master it returns is the
render executor's own (pre x gain through the limiter its settings name)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import resample_poly

from automix import analysis, codec_safe, codecs
from automix.errors import AutomixError
from automix.loudness_search import loudness_stage
from automix.render import apply_limiter
from automix.settings import MASTER_DEFAULTS, tidy_master

SR = 44100


def independent_true_peak_db(audio: np.ndarray) -> float:
    up = resample_poly(audio, 4, 1, axis=-1)
    return float(20 * np.log10(max(np.abs(up).max(), np.abs(audio).max())))


def loud_pre(seconds: float = 4.0) -> np.ndarray:
    """Noise plus a decaying 55 Hz kick every 0.5 s: dense, peaky material a limiter squashes."""
    rng = np.random.default_rng(3)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    kick = np.sin(2 * np.pi * 55 * t) * np.exp(-(t % 0.5) * 12)
    return np.ascontiguousarray(0.15 * rng.standard_normal((2, n)) + 0.6 * kick)


def limited_master(pre, goal, ceiling):
    master = dict(MASTER_DEFAULTS, limiter={"ceiling_dbtp": ceiling, "release_ms": 80.0,
                                            "lookahead_ms": 5.0})
    master = tidy_master(master, SR)
    loud = loudness_stage(pre, master["limiter"], goal, SR)
    master = tidy_master(dict(master, gain_db=loud["gain_db"], limiter=loud["limiter"]), SR)
    final = apply_limiter(pre * 10 ** (master["gain_db"] / 20), master["limiter"], SR)
    return master, final


def test_parse_codecs():
    assert codecs.parse_codecs("mp3, opus,mp3") == ("mp3", "opus")
    assert codecs.parse_codecs("none") == ()
    with pytest.raises(AutomixError, match="choose from mp3, opus, vorbis"):
        codecs.parse_codecs("aac")


@pytest.mark.parametrize("codec", codecs.CODECS)
def test_round_trip_keeps_a_tone(codec):
    """A 1 kHz tone at -6 dBFS comes back at its level (the codec path is wired correctly)."""
    if not codecs.available(codec):
        pytest.skip(f"no {codec} encoder in this libsndfile")
    t = np.arange(SR * 2) / SR
    x = 0.5 * np.stack([np.sin(2 * np.pi * 1000 * t)] * 2)
    coded = codecs.round_trip(x, SR, codec)
    assert coded.audio.shape[0] == 2
    assert coded.audio.shape[1] >= 0.95 * 2 * coded.sample_rate
    mid = coded.audio[:, coded.sample_rate // 2: -coded.sample_rate // 2]
    assert abs(20 * np.log10(np.sqrt(2 * np.mean(mid ** 2))) - 20 * np.log10(0.5)) < 0.5


def test_loop_brings_every_decoded_peak_under_the_ceiling():
    if not codecs.available("mp3"):
        pytest.skip("no MP3 encoder")
    pre, goal, ceiling = loud_pre(), -9.0, -1.0
    master, final = limited_master(pre, goal, ceiling)
    before = codecs.round_trip(final, SR, "mp3").audio
    assert independent_true_peak_db(before) > ceiling + 0.2, "the case must overshoot"
    used = tuple(c for c in ("mp3", "opus") if codecs.available(c))
    new, out, report = codec_safe.make_safe(pre, master, final, goal, SR, ceiling, used)
    assert report["rounds"] >= 1 and report["passed"] and not report["floor_hit"]
    for codec in used:
        decoded = codecs.round_trip(out, SR, codec).audio
        assert independent_true_peak_db(decoded) <= ceiling + 0.1, codec
    assert new["limiter"]["ceiling_dbtp"] < ceiling
    assert new["limiter"]["ceiling_dbtp"] >= ceiling - codec_safe.FLOOR_DB
    # the returned master is what its settings render to
    assert np.array_equal(out, apply_limiter(pre * 10 ** (new["gain_db"] / 20), new["limiter"], SR))
    # and it still reads the loudness target
    assert abs(analysis.integrated_loudness(out, SR) - goal) < 0.15
    assert "limiter's ceiling went from" in report["note"]


def test_floor_stops_the_loop_and_says_so(monkeypatch):
    if not codecs.available("mp3"):
        pytest.skip("no MP3 encoder")
    monkeypatch.setattr(codec_safe, "FLOOR_DB", 0.05)
    pre, goal, ceiling = loud_pre(), -7.5, -1.0
    master, final = limited_master(pre, goal, ceiling)
    new, out, report = codec_safe.make_safe(pre, master, final, goal, SR, ceiling, ("mp3",))
    assert report["floor_hit"] and not report["passed"]
    assert new["limiter"]["ceiling_dbtp"] >= ceiling - 0.05 - 1e-9
    assert "floor" in report["note"]


def test_no_session_no_change():
    pre = loud_pre(2.0)
    master, final = limited_master(pre, -8.0, -1.0)
    assert codec_safe.current() is None
    got_master, got = codec_safe.apply(pre, master, final, -8.0, SR, -1.0)
    assert got is final and got_master is master
    with codec_safe.configured(()) as session:
        assert codec_safe.apply(pre, master, final, -8.0, SR, -1.0)[1] is final
        assert session.reports == []


def test_pieces_cover_the_master_and_agree_with_one_encode(monkeypatch):
    """Coded in overlapping pieces (parallel), the decoded peak is the one-piece encode's."""
    for n in (10, 1000, 4567):
        pieces = codecs._pieces(n, 100)
        covered = np.zeros(n, bool)
        for a, b, s, e in pieces:
            assert a <= s < e <= b
            covered[s:e] = True
        assert covered.all()
    if not codecs.available("mp3"):
        pytest.skip("no MP3 encoder")
    pre, goal, ceiling = loud_pre(6.0), -9.0, -1.0
    _, final = limited_master(pre, goal, ceiling)
    whole = codecs.coded_true_peaks(final, SR, ("mp3",))["mp3"]
    monkeypatch.setattr(codecs, "CHUNK_S", 1.5)
    monkeypatch.setattr(codecs, "OVERLAP_S", 0.5)
    assert len(codecs._pieces(final.shape[1], SR)) == 4
    assert codecs.coded_true_peaks(final, SR, ("mp3",))["mp3"] == pytest.approx(whole, abs=0.3)
