"""Delivery (issue 20 item 2): 16-bit TPDF dither of the right level and spectrum, applied once;
--platform presets, --formats, checks.json and report.html of a master run."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import welch

from automix import codecs
from automix.audio import pcm_samples, write_audio
from automix.cli import main

SR = 44100
LSB = 1 / 32768


def test_tpdf_dither_level_flat_spectrum_and_no_noise_modulation():
    """TPDF over +-1 LSB then rounding: error variance 1/12 + 1/6 = 1/4 LSB^2 (0.5 LSB rms)
    whatever the signal sits at between two steps (plain rounding would give 0 .. 1/4:
    distortion), zero mean, white."""
    n = 1 << 18
    rng = np.random.default_rng(1)
    for offset in (0.0, 0.25, 0.5):
        x = np.full((1, n), offset * LSB)
        err = pcm_samples(x, 16, rng)[:, 0].astype(np.float64) - offset
        assert np.var(err) == pytest.approx(0.25, rel=0.02)
        assert abs(err.mean()) < 0.01
    t = np.arange(n) / SR
    x = 0.01 * np.sin(2 * np.pi * 997 * t)[None]
    err = pcm_samples(x, 16, rng)[:, 0] / 32768.0 - x[0]
    assert np.sqrt(np.mean(err ** 2)) / LSB == pytest.approx(0.5, rel=0.02)
    assert abs(np.corrcoef(err, x[0])[0, 1]) < 0.01        # independent of the signal
    f, p = welch(err, SR, nperseg=4096)
    bands = [p[(f > lo) & (f < hi)].mean() for lo, hi in ((50, 2000), (2000, 8000), (8000, 20000))]
    assert 10 * np.log10(max(bands) / min(bands)) < 0.5    # flat (white) within 0.5 dB
    # white noise of variance 1/4 LSB^2 has the one-sided density 2 var / fs
    assert np.mean(p[(f > 50) & (f < 20000)]) == pytest.approx(2 * 0.25 * LSB ** 2 / SR, rel=0.05)


@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_16_bit_files_are_dithered_once(tmp_path, suffix):
    """Once: the file's error is 0.5 LSB rms (twice would be 0.71, none 0.29)."""
    rng = np.random.default_rng(2)
    x = 0.2 * rng.standard_normal((2, SR))
    write_audio(tmp_path / f"a{suffix}", x, SR, 16)
    y, _ = sf.read(tmp_path / f"a{suffix}", dtype="int16")
    err = y.T / 32768.0 - x
    assert np.sqrt(np.mean(err ** 2)) / LSB == pytest.approx(0.5, rel=0.03)


def _song(path, seconds, gain_db, seed):
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    beat = np.sin(2 * np.pi * 55 * t) * np.exp(-(t % 0.5) * 10)
    x = np.stack([beat + 0.2 * rng.standard_normal(n), beat + 0.2 * rng.standard_normal(n)])
    x *= 10 ** (gain_db / 20) / np.abs(x).max()
    sf.write(path, x.T, SR, subtype="FLOAT")
    return path


@pytest.fixture(scope="module")
def master_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("deliver")
    mix = _song(tmp / "mix.wav", 8, -6, 1)
    ref = _song(tmp / "ref.wav", 8, -0.2, 2)   # a loud reference
    out = tmp / "out"
    import contextlib
    import io
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["master", "--input", str(mix), "--reference", str(ref), "-o", str(out),
                     "--platform", "broadcast", "--bit-depth", "16",
                     "--formats", "flac,mp3" if codecs.available("mp3") else "flac"])
    return code, out, err.getvalue(), ref


def test_platform_preset_and_formats(master_run):
    code, out, err, ref = master_run
    assert code == 0
    assert {"master.wav", "master.flac", "checks.json", "report.html"} <= \
        {p.name for p in out.iterdir()}
    checks = json.loads((out / "checks.json").read_text())
    assert checks["delivery"]["platform"] == "broadcast"
    assert checks["delivery"]["target_lufs"] == -23.0
    settings = json.loads((out / "settings.json").read_text())
    assert settings["analysis"]["master"]["integrated_lufs"] == pytest.approx(-23.0, abs=0.2)
    assert settings["analysis"]["master"]["true_peak_dbtp"] <= -1.0 + 1e-6
    # the loud reference contradicts the broadcast preset: a note says which one wins
    assert "the broadcast preset masters to -23.0 LUFS" in err
    # FLAC and WAV carry the same 16-bit samples: one dither, shared
    w, _ = sf.read(out / "master.wav", dtype="int16")
    f, _ = sf.read(out / "master.flac", dtype="int16")
    assert sf.info(out / "master.flac").subtype == "PCM_16" and np.array_equal(w, f)
    if codecs.available("mp3"):
        m, msr = sf.read(out / "master.mp3")
        assert msr == SR and abs(len(m) - len(w)) < 0.05 * SR


def test_report_html_is_self_contained(master_run):
    _, out, _, ref = master_run
    page = (out / "report.html").read_text()
    assert "http://" not in page and "https://" not in page
    assert page.count("data:image/png;base64,") >= 2
    data = json.loads(re.search(r"id=ab-data>(.*?)</script>", page).group(1))
    assert data["master"]["file"] == "master.wav"
    assert (out / data["reference"]["file"]).resolve() == ref.resolve()
    # loudness-matched: the louder source is turned down to the quieter one
    assert max(v["gain_db"] for v in data.values()) == 0.0
    assert data["reference"]["gain_db"] < -10
    checks = json.loads((out / "checks.json").read_text())["checks"]
    for c in checks:  # every check is a row of the traffic-light table, with its light
        assert re.search(r"<td><span class=dot style='background:#[0-9a-f]{6}'></span> "
                         + c["status"] + r"</td><td>" + re.escape(c["name"]), page), c["name"]
    assert "true peak after mp3" in page or not codecs.available("mp3")
    # loudness over time: the reference beside the master, as report.png draws it
    assert "<p class=curves>reference, master</p>" in page


def test_report_reference_loudness_curve(tmp_path):
    """The reference's curve: from the audio the job kept for its time plan, else from the
    file; none without a reference."""
    from types import SimpleNamespace

    from automix import analysis, deliverables

    path = _song(tmp_path / "r.wav", 6, -3, 5)
    audio, sr = sf.read(path, dtype="float32", always_2d=True)
    want = analysis.short_term_loudness(audio.T, sr)
    no_time = SimpleNamespace(timeline=None, sample_rate=sr)
    assert np.allclose(deliverables.reference_loudness(no_time, path), want)
    kept = SimpleNamespace(timeline={"reference": 0.5 * audio.T}, sample_rate=sr)
    got = deliverables.reference_loudness(kept, None)
    assert np.allclose(got[want > -60], want[want > -60] + 20 * np.log10(0.5), atol=1e-3)
    assert deliverables.reference_loudness(no_time, None) is None


def test_unknown_platform_is_one_line_before_any_work(tmp_path, capsys):
    mix = _song(tmp_path / "m.wav", 3, -6, 1)
    code = main(["master", "--input", str(mix), "--reference", str(mix), "-o",
                 str(tmp_path / "o"), "--platform", "myspace"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "choose from spotify, apple, youtube, tidal, amazon, cd, " \
                                   "broadcast, club" in err
    assert not (tmp_path / "o").exists()
    assert main(["master", "--input", str(mix), "--reference", str(mix), "-o",
                 str(tmp_path / "o"), "--formats", "aac"]) == 2


def test_ab_switch_keeps_position_and_matches_loudness(master_run, tmp_path):
    """The report's player script, run by node against a stub page: switching source keeps
    the play position and playing state, and sets each source's matching gain."""
    import shutil
    import subprocess

    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        pytest.skip("node is not installed")
    _, out, _, _ = master_run
    page = (out / "report.html").read_text()
    data = re.search(r"id=ab-data>(.*?)</script>", page).group(1)
    script = re.findall(r"<script>(.*?)</script>", page, flags=re.S)[-1]
    stub = """
const listeners = {};
const audioEl = {src: '', currentTime: 0, paused: true, readyState: 1, volume: 1,
            play() { this.paused = false; }, addEventListener() {}};
const buttons = %s.map(n => ({dataset: {src: n}, classList: {toggle() {}}}));
const toggle = {};
global.document = {
  getElementById: id => id === 'ab-data' ? {textContent: %s} : id === 'ab-audio' ? audioEl : toggle,
  querySelectorAll: () => buttons,
};
""" % (json.dumps(list(json.loads(data))), json.dumps(data))
    check = """
const log = [];
log.push([el.src, el.volume]);
el.currentTime = 12.5; el.paused = false;
toggle.onclick();
log.push([el.src, el.volume, el.currentTime, el.paused]);
buttons[0].onclick();
log.push([el.src, el.volume, el.currentTime, el.paused]);
console.log(JSON.stringify(log));
"""
    (tmp_path / "ab.js").write_text(stub + script + check)
    got = json.loads(subprocess.run([node, str(tmp_path / "ab.js")], capture_output=True,
                                    text=True, check=True).stdout)
    srcs = json.loads(data)
    names = list(srcs)
    assert got[0][0] == srcs["master"]["file"]
    assert got[0][1] == pytest.approx(10 ** (srcs["master"]["gain_db"] / 20))
    nxt = names[(names.index("master") + 1) % len(names)]
    assert got[1][0] == srcs[nxt]["file"] and got[1][2] == 12.5 and got[1][3] is False
    assert got[1][1] == pytest.approx(min(1, 10 ** (srcs[nxt]["gain_db"] / 20)))
    assert got[2][0] == srcs[names[0]]["file"] and got[2][2] == 12.5
