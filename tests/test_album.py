"""automix album (issue 20 item 1): the plan's arithmetic, sequencing and its CUE sheet, song
collection, and end-to-end runs with bad songs (partial exit code), different rates, duplicate
names, --same-loudness, --sequence and --shard."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import butter, sosfilt

from automix import album
from automix.analysis import BANDS_HZ, analyze
from automix.cli import main
from automix.errors import AutomixError


def _features(lufs, mid, width=-10.0, lra=5.0, plr=10.0):
    return {"integrated_lufs": lufs, "width_db": width, "loudness_range_lu": lra, "plr_db": plr,
            "tonal_balance": {"bands_hz": list(BANDS_HZ), "mid_db": list(mid),
                              "side_db": list(np.asarray(mid) - 10)}}


def test_plan_loudness_window_and_same_loudness():
    flat = np.zeros(len(BANDS_HZ))
    f = [_features(-10, flat), _features(-12, flat), _features(-20, flat)]
    goals = album.plan(f, None, -14.0, window=3.0)
    assert [g["integrated_lufs"] for g in goals] == [-14.0, -16.0, -17.0]
    goals = album.plan(f, None, -14.0, same_loudness=True)
    assert [g["integrated_lufs"] for g in goals] == [-14.0] * 3
    goals = album.plan(f, None, None)     # no target, no reference: -14 for the loudest
    assert goals[0]["integrated_lufs"] == album.DEFAULT_ALBUM_LUFS


def test_plan_album_curve_is_the_mean_without_missing_bands():
    a = np.linspace(-6, 6, len(BANDS_HZ))
    b = -a.copy()
    b[-2:] = -120.0                      # a low-rate song: no top bands
    goals = album.plan([_features(-10, a, width=-8), _features(-11, b, width=-12)], None, -14.0)
    curve = np.array(goals[0]["tonal_balance"]["mid_db"])
    assert np.allclose(curve[:-2], 0.0) and np.allclose(curve[-2:], a[-2:])
    assert goals[1]["width_db"] == -10.0 and goals[0]["tonal_balance"] == goals[1]["tonal_balance"]
    ref = _features(-9, a, width=-7, lra=3, plr=8)
    goals = album.plan([_features(-10, b)], ref, None)
    assert goals[0]["integrated_lufs"] == -9 and goals[0]["width_db"] == -7
    assert goals[0]["tonal_balance"]["mid_db"] == list(a)


def test_sequence_gaps_crossfades_and_cue():
    sr = 1000
    a, b = np.ones((2, 3000)), np.ones((2, 2000))
    out, rate, cue = album.sequence([("a", a, sr), ("b", b, sr)], 1.5, 0.0)
    assert rate == sr and out.shape[1] == 3000 + 1500 + 2000
    assert np.all(out[:, 3000:4500] == 0)
    assert "INDEX 01 00:00:00" in cue and "INDEX 01 00:04:38" in cue  # 4.5 s = 4 s 37.5 frames
    out, _, cue = album.sequence([("a", a, sr), ("b", b, sr)], 0.0, 0.5)
    assert out.shape[1] == 3000 + 2000 - 500
    mid = out[0, 2500:3000]              # equal-power crossfade: sin^2 + cos^2 = 1 in power
    assert np.allclose(mid ** 2, np.sin(np.linspace(0, np.pi / 2, 500)) ** 2
                       + np.cos(np.linspace(0, np.pi / 2, 500)) ** 2
                       + 2 * np.sin(np.linspace(0, np.pi / 2, 500))
                       * np.cos(np.linspace(0, np.pi / 2, 500)))
    out, rate, _ = album.sequence([("a", a, 1000), ("b", b, 2000), ("c", a, 2000)], 0, 0)
    assert rate == 2000 and out.shape[1] == 6000 + 2000 + 3000


def test_collect_songs_and_shard(tmp_path):
    for d in ("x", "y"):
        (tmp_path / d).mkdir()
        sf.write(tmp_path / d / "song.wav", np.zeros((100, 2)), 8000)
    (tmp_path / "list.m3u").write_text("# album\ny/song.wav\nx/song.wav\n")
    songs = album.collect_songs([tmp_path / "list.m3u", tmp_path / "x"])
    assert [s.name for s in songs] == ["01-song", "02-song", "03-song"]
    assert songs[0].source == tmp_path / "y" / "song.wav"
    with pytest.raises(AutomixError, match="no audio files"):
        album.collect_songs([tmp_path / "list.m3u", tmp_path])
    assert album.parse_shard("2/4") == (2, 4)
    for bad in ("0/3", "4/3", "x"):
        with pytest.raises(AutomixError, match="--shard"):
            album.parse_shard(bad)


SR = 44100


def _song(path, sr, gain_db, tilt, seed, seconds=6.0):
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    noise = rng.standard_normal((2, n)) * 0.3
    kind = ("high", 3000) if tilt > 0 else ("low", 800)
    noise = noise + abs(tilt) * sosfilt(butter(2, kind[1], kind[0], fs=sr, output="sos"), noise)
    x = np.sin(2 * np.pi * 55 * t) * np.exp(-(t % 0.5) * 10) + noise
    x *= 10 ** (gain_db / 20) / np.abs(x).max()
    sf.write(path, x.T, sr, subtype="FLOAT")


@pytest.fixture(scope="module")
def songs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("album")
    for d in ("a", "b"):
        (tmp / d).mkdir()
    _song(tmp / "a" / "song.wav", SR, -2, 3, 1)
    _song(tmp / "b" / "song.wav", 48000, -14, -3, 2)       # another rate, same file name
    _song(tmp / "c.wav", SR, -8, 0.5, 3, seconds=4.0)      # another length
    sf.write(tmp / "silent.wav", np.zeros((SR * 4, 2)), SR)
    (tmp / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    (tmp / "album.txt").write_text("a/song.wav\nsilent.wav\nb/song.wav\ncorrupt.wav\nc.wav\n")
    return tmp


def test_album_run_partial_same_loudness_sequence(songs, capsys):
    out = songs / "out"
    code = main(["album", str(songs / "album.txt"), "-o", str(out), "--same-loudness",
                 "--target-lufs", "-14", "--sequence", "--codecs", "none", "--jobs", "2"])
    cap = capsys.readouterr()
    assert code == album.PARTIAL_EXIT
    assert "song 2 failed" in cap.err and "silent" in cap.err
    assert "song 4 failed" in cap.err and "corrupt.wav" in cap.err
    doc = json.loads((out / "album.json").read_text())
    assert [r["name"] for r in doc["songs"]] == ["01-song", "03-song", "05-c"]
    assert [f["number"] for f in doc["failed"]] == [2, 4]
    # the masters as written: one loudness (the goal: spread <= 1 LU), one tone
    after = []
    for r in doc["songs"]:
        x, sr = sf.read(out / f"{r['name']}.wav", always_2d=True)
        assert sr == r["sample_rate"]
        after.append(analyze(x.T, sr))
        assert after[-1]["true_peak_dbtp"] <= -1.0 + 0.01
    lufs = [a["integrated_lufs"] for a in after]
    assert max(lufs) - min(lufs) <= 1.0 and abs(np.mean(lufs) + 14) < 0.5
    assert doc["spread_after"]["tone_db"] < 0.5 * doc["spread_before"]["tone_db"]
    assert doc["spread_before"]["loudness_lu"] > 5
    # the sequenced album: every song and 2 s gaps, at the most common rate; CUE at the starts
    info = sf.info(out / "album.wav")
    lengths = [sf.info(out / f"{r['name']}.wav") for r in doc["songs"]]
    assert info.samplerate == SR
    expected = sum(round(i.frames * SR / i.samplerate) for i in lengths) + 2 * 2 * SR
    assert abs(info.frames - expected) <= 2
    cue = (out / "album.cue").read_text()
    assert cue.count("TRACK") == 3 and "INDEX 01 00:08:00" in cue   # 6 s song + 2 s gap
    assert "<table>" in (out / "album.html").read_text()


def test_album_shard_and_errors(songs, capsys):
    out = songs / "shard"
    files = [str(songs / "a" / "song.wav"), str(songs / "b" / "song.wav"), str(songs / "c.wav")]
    assert main(["album", *files, "-o", str(out), "--shard", "2/2", "--codecs", "none",
                 "--jobs", "1"]) == 0
    doc = json.loads((out / "album.json").read_text())
    assert [r["name"] for r in doc["songs"]] == ["02-song"]
    # the plan comes from every song: song 2 (14 dB under song 1) sits at the window's floor
    assert doc["songs"][0]["plan_lufs"] == pytest.approx(-14.0 - 3.0)
    capsys.readouterr()
    assert main(["album", *files, "-o", str(songs / "s2"), "--shard", "1/2", "--sequence"]) == 2
    assert "--sequence needs the whole album" in capsys.readouterr().err
    assert main(["album", str(songs / "silent.wav"), "-o", str(songs / "s3")]) == 2
    assert "no song could be read" in capsys.readouterr().err
    assert main(["album", *files, "-o", str(songs / "s4"), "--platform", "vinyl"]) == 2
    assert "choose from spotify" in capsys.readouterr().err


def test_forty_songs_plan_and_names(tmp_path):
    """40 songs: unique numbered names (many equal file names), one plan entry each."""
    for i in range(40):
        d = tmp_path / f"disc{i // 10}"
        d.mkdir(exist_ok=True)
        sf.write(d / f"track{i % 10}.wav", np.zeros((10, 2)), 8000)
    songs = album.collect_songs(sorted(tmp_path.iterdir()))
    assert len(songs) == 40 and len({s.name for s in songs}) == 40
    assert songs[39].name == "40-track9"
    rng = np.random.default_rng(0)
    f = [_features(float(rng.uniform(-25, -8)), rng.normal(0, 3, len(BANDS_HZ))) for _ in songs]
    goals = album.plan(f, None, -14.0, window=4.0)
    lufs = np.array([g["integrated_lufs"] for g in goals])
    assert lufs.max() == -14.0 and lufs.min() >= -18.0 - 1e-9
