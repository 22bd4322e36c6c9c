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


def test_frame_align_is_the_mp3_padding_period():
    """128 kbps MP3 at 44.1 kHz: a frame holds 1152 x 128000 / 8 / 44100 = 417.96 bytes, so
    frames of 417 and 418 bytes alternate in a pattern of 49 frames (56448 samples); at 48 kHz
    every frame is 384 bytes (period 1)."""
    assert codecs.frame_align("mp3", 44100) == 49 * 1152
    assert codecs.frame_align("mp3", 48000) == 1152
    assert codecs.frame_align("mp3", 32000) == 1152   # 576 bytes exactly
    assert codecs.frame_align("vorbis", 44100) == 2048


def _one_encode_blocks(audio, codec):
    """Decoded true peak per PEAK_BLOCK_S block of ONE encode of the whole master, measured
    with an independent meter (scipy's polyphase 4x resampling, per block)."""
    coded = codecs.round_trip(audio, SR, codec).audio
    block = int(codecs.PEAK_BLOCK_S * SR)
    up = np.abs(resample_poly(coded, 4, 1, axis=-1)).max(axis=0)
    return np.array([max(up[4 * k:4 * (k + block)].max(), np.abs(coded[:, k:k + block]).max())
                     for k in range(0, coded.shape[1], block)])


@pytest.mark.parametrize("codec", ["mp3", "vorbis"])
def test_pieces_and_windows_give_the_one_encode_peaks(codec, monkeypatch):
    """Coded in overlapping pieces (parallel) or, for the codecs the loop codes in windows, in
    windows around chosen blocks, each starting on the codec's frame grid with enough run-in:
    every block's decoded true peak is the one encode's (to the meters' difference: the run-in
    puts the encoder in the whole file's state, bit for bit)."""
    for n in (10, 1000, 4567):
        covered = np.zeros(n, bool)
        for a, b, s, e in codecs._pieces(n, 100, 7):
            assert a <= s < e <= b and a % 7 == 0
            covered[s:e] = True
        assert covered.all()
    if not codecs.available(codec):
        pytest.skip(f"no {codec} encoder")
    pre, goal, ceiling = loud_pre(14.0), -9.0, -1.0
    _, final = limited_master(pre, goal, ceiling)
    want = _one_encode_blocks(final, codec)
    monkeypatch.setattr(codecs, "CHUNK_S", 4.0)
    assert len(codecs._pieces(final.shape[1], SR)) == 4
    pieces, seconds = codecs.coded_block_peaks(final, SR, {codec: None})[codec]
    assert seconds > final.shape[1] / SR   # the overlaps are coded twice
    tol = 0.05  # dB: the two meters' interpolators differ slightly
    assert np.allclose(20 * np.log10(pieces), 20 * np.log10(want[:len(pieces)]), atol=tol)
    if codec not in codec_safe.WINDOWED_CODECS:
        return  # coded whole every round (Vorbis: its block switching may not resync)
    chosen = np.zeros(len(pieces), bool)
    chosen[[9, 30, 31, 47]] = True
    windows, seconds = codecs.coded_block_peaks(final, SR, {codec: chosen})[codec]
    assert np.isnan(windows[~chosen]).all() and seconds < final.shape[1] / SR
    assert np.allclose(20 * np.log10(windows[chosen]), 20 * np.log10(want[chosen]), atol=tol)
    # the same reading as the pieces, bit for bit where both coded the block from the same state
    assert np.allclose(windows[chosen], pieces[chosen], rtol=1e-6)


def test_windowed_loop_agrees_with_whole_master_rounds():
    """A master with 4 loud seconds and then 6 quiet ones (-30 dB): the windowed loop codes less
    audio, ends at the same limiter ceiling, and its decoded peaks are the whole-master
    loop's."""
    if not codecs.available("mp3"):
        pytest.skip("no MP3 encoder")
    pre = np.ascontiguousarray(np.concatenate([loud_pre(4.0), 0.03 * loud_pre(6.0)], axis=1))
    goal, ceiling = -9.0, -1.0   # the loud part as in the tests above; the quiet one is gated
    master, final = limited_master(pre, goal, ceiling)
    runs = {w: codec_safe.make_safe(pre, master, final, goal, SR, ceiling, ("mp3",), windowed=w)
            for w in (False, True)}
    (m_full, out_full, r_full), (m_win, out_win, r_win) = runs[False], runs[True]
    assert r_full["rounds"] >= 1 and r_full["rounds"] == r_win["rounds"]
    assert r_win["encoded_s"] < r_full["encoded_s"]
    assert m_win["limiter"]["ceiling_dbtp"] == m_full["limiter"]["ceiling_dbtp"]
    assert np.array_equal(out_win, out_full)
    assert r_win["after"]["mp3"] == pytest.approx(r_full["after"]["mp3"], abs=0.1)
