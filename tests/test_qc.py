"""automix check / automix.qc (issue 20 item 4): every check fires on a crafted fault and stays
quiet on clean material; the platform normalisation model against hand-worked numbers."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from automix import codecs, qc
from automix.cli import main
from automix.delivery import PLATFORMS, normalised, platform
from automix.errors import AutomixError
from automix.render import apply_limiter

SR = 44100
DOCS = Path(__file__).resolve().parents[1] / "docs" / "checks.md"


def clean(seconds=4.0, loud=False):
    """A plausible master: mono bass and centre, a little independent ambience per side,
    limited to -1 dBTP (at a moderate loudness unless ``loud``)."""
    rng = np.random.default_rng(7)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    bass = 0.3 * np.sin(2 * np.pi * 60 * t) * (1 + 0.5 * np.sin(2 * np.pi * 1.5 * t))
    centre = 0.06 * rng.standard_normal(n) * (1 + 0.8 * np.sin(2 * np.pi * 0.5 * t))
    x = np.stack([bass + centre] * 2) + 0.025 * rng.standard_normal((2, n))
    x *= 10 ** ((6 if loud else -4) / 20)
    lim = {"ceiling_dbtp": -1.0, "release_ms": 80.0, "lookahead_ms": 5.0}
    return apply_limiter(np.ascontiguousarray(x), lim, SR)


def statuses(result, prefix):
    return [c["status"] for c in result["checks"] if c["name"].startswith(prefix)]


def status(result, name):
    found = [c["status"] for c in result["checks"] if c["name"] == name] or statuses(result, name)
    assert len(found) == 1, (name, found)
    return found[0]


FAULT_CHECKS = ("true peak", "true-peak overs", "DC offset", "clipped-sample runs", "L/R balance",
                "phase correlation", "mono fold-down loss", "correlation ", "mono loss ",
                "polarity", "width")


def test_clean_material_passes_every_fault_check():
    r = qc.check_audio(clean(), SR, codecs=("mp3",) if codecs.available("mp3") else ())
    for prefix in FAULT_CHECKS + ("true peak after",):
        assert set(statuses(r, prefix)) <= {"pass"}, (prefix, statuses(r, prefix))
    assert r["status"] in ("pass", "warn")  # warn only from judgement checks (LRA, PLR, platforms)


def test_dc_offset():
    x = clean()
    x[0] += 0.02    # -34 dBFS
    x[1] += 0.004   # -48 dBFS
    r = qc.check_audio(x, SR, codecs=())
    assert status(r, "DC offset L") == "fail" and status(r, "DC offset R") == "warn"
    dc = [c["value"] for c in r["checks"] if c["name"] == "DC offset L"][0]
    assert abs(dc - 20 * np.log10(abs(x[0].mean()))) < 1e-9


def test_clipping():
    x = np.clip(clean(loud=True) * 3.0, -1.0, 1.0)
    r = qc.check_audio(x, SR, codecs=())
    assert status(r, "clipped-sample runs") == "fail"
    assert status(r, "true peak") == "fail"
    # the count agrees with a plain scan for runs of 3+ samples at full scale
    runs = 0
    for ch in x:
        n = 0
        for v in np.abs(ch) >= qc.CLIP_LEVEL:
            n = n + 1 if v else 0
            runs += n == qc.CLIP_RUN
    assert [c["value"] for c in r["checks"] if c["name"] == "clipped-sample runs"][0] == runs


def test_inverted_channel():
    x = clean()
    x[1] *= -1
    r = qc.check_audio(x, SR, codecs=())
    assert status(r, "polarity") == "fail"
    assert status(r, "phase correlation") == "fail"
    assert status(r, "correlation bass") == "fail"
    assert status(r, "mono fold-down loss") == "fail"


def test_mono_incompatible_wide_synth():
    """A synth put wide by opposite polarity (L = s, R = -s) around 1 kHz: its band cancels in
    mono; the bass stays mono, so no channel is called inverted."""
    x = clean()
    t = np.arange(x.shape[1]) / SR
    synth = 0.25 * np.sign(np.sin(2 * np.pi * 880 * t)) * 0.5
    from scipy.signal import butter, sosfilt
    synth = sosfilt(butter(4, [700, 2400], "bandpass", fs=SR, output="sos"), synth)
    x = x + np.stack([synth, -synth])
    r = qc.check_audio(x, SR, codecs=())
    assert status(r, "correlation mid") == "fail"
    assert status(r, "mono loss mid") == "fail"
    assert status(r, "correlation bass") == "pass"
    assert status(r, "polarity") == "pass"


def test_lr_balance():
    x = clean()
    x[0] *= 10 ** (4 / 20)
    r = qc.check_audio(x, SR, codecs=())
    assert status(r, "L/R balance") == "fail"
    bal = [c["value"] for c in r["checks"] if c["name"] == "L/R balance"][0]
    assert abs(bal - 4.0) < 0.3


def test_true_peak_overs_against_independent_meter():
    """A tone at fs/4, 45 degrees off the samples: samples at 0.707, true peak 1.0 (0 dBTP)."""
    n = SR
    x = np.sin(2 * np.pi * (SR / 4) * np.arange(n) / SR + np.pi / 4)
    x = np.stack([x, x]) * 10 ** (-0.5 / 20)           # true peak -0.5 dBTP
    x[:, : n // 2] *= 10 ** (-3 / 20)                   # first half under the ceiling
    up = np.abs(resample_poly(x[0], 4, 1))[4 * (n // 2 + 2000): -8000]  # steady part
    assert 20 * np.log10(up.max()) == pytest.approx(-0.5, abs=0.05)
    assert 20 * np.log10(np.abs(x).max()) < -3.4        # the samples do not show it
    over, over0 = qc.true_peak_overs(x, -1.0)
    assert over == 2 and over0 == 0                      # one event per channel, second half
    r = qc.check_audio(x, SR, codecs=())
    assert status(r, "true peak") == "warn" and status(r, "true-peak overs") == "warn"


def test_codec_overshoot_is_reported():
    if not codecs.available("mp3"):
        pytest.skip("no MP3 encoder")
    rng = np.random.default_rng(3)
    n = 4 * SR
    t = np.arange(n) / SR
    pre = 0.15 * rng.standard_normal((2, n)) + 0.6 * np.sin(2 * np.pi * 55 * t) * np.exp(-(t % 0.5) * 12)
    x = apply_limiter(np.ascontiguousarray(pre * 10 ** (10 / 20)),
                      {"ceiling_dbtp": -1.0, "release_ms": 40.0, "lookahead_ms": 5.0}, SR)
    r = qc.check_audio(x, SR, codecs=("mp3",))
    assert status(r, "true peak") == "pass"
    assert status(r, "true peak after mp3") in ("warn", "fail")


def test_platform_normalisation_model():
    sp, yt, bc = platform("spotify"), platform("youtube"), platform("broadcast")
    assert normalised(sp, -8.0, -1.0) == {"gain_db": -6.0, "plays_at_lufs": -14.0, "peak_dbtp": -7.0}
    assert normalised(sp, -20.0, -10.0)["gain_db"] == 6.0           # up, peak allows it
    assert normalised(sp, -20.0, -3.0)["gain_db"] == 2.0            # up until -1 dBTP
    assert normalised(yt, -20.0, -10.0)["gain_db"] == 0.0           # never up
    assert normalised(bc, -10.0, -1.0)["gain_db"] == -13.0
    assert normalised(platform("cd"), -10.0, -1.0)["gain_db"] == 0.0
    with pytest.raises(AutomixError, match="choose from spotify, apple, youtube, tidal, amazon, "
                                           "cd, broadcast, club"):
        platform("napster")


def test_check_cli(tmp_path, capsys):
    path = tmp_path / "m.wav"
    x = clean()
    x[1] *= -1
    sf.write(path, x.T, SR, subtype="FLOAT")
    assert main(["check", str(path), "--json", "--codecs", "none", "--platform", "spotify"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "fail"
    names = [c["name"] for c in out["checks"]]
    assert "polarity" in names and "spotify normalisation" in names
    assert "youtube normalisation" not in names
    assert main(["check", str(path), "--platform", "napster"]) == 2
    assert "choose from spotify" in capsys.readouterr().err
    assert main(["check", str(tmp_path / "missing.wav")]) == 2


def test_docs_state_every_check():
    text = DOCS.read_text()
    r = qc.check_audio(clean(1.0), SR, codecs=())
    for c in r["checks"]:
        generic = re.sub(r" \(.*\)$", "", c["name"])
        generic = re.sub(r"^(DC offset) [LR]$", r"\1", generic)
        generic = re.sub(r"^(correlation|mono loss) \S+$", r"\1 per band", generic)
        generic = re.sub(r"^\S+ normalisation$", "platform normalisation", generic)
        assert generic in text, generic


def test_stem_checks(tmp_path):
    """Two microphones on one source (the second inverted and 1 ms = 44 samples late), an
    unrelated stem, a clipped stem: each reported; nothing said about the unrelated pairs."""
    rng = np.random.default_rng(0)
    n = SR * 3
    src = rng.standard_normal(n) * 0.2
    sf.write(tmp_path / "kick_in.wav", src, SR)
    sf.write(tmp_path / "kick_out.wav", -0.7 * np.roll(src, 44) + 0.05 * rng.standard_normal(n), SR)
    sf.write(tmp_path / "keys.wav", rng.standard_normal((n, 2)) * 0.2, SR)
    sf.write(tmp_path / "gtr.wav", np.clip(rng.standard_normal(n), -1, 1), SR, subtype="FLOAT")
    checks = {c.name: c for c in qc.stem_checks(sorted(tmp_path.iterdir()), SR)}
    assert checks["stem clipping gtr.wav"].status == "fail"
    assert checks["stem clipping keys.wav"].status == "pass"
    pair = checks["stem pair kick_in.wav / kick_out.wav"]
    assert pair.status == "warn" and pair.value < -0.9
    assert "polarity inverted" in pair.detail and "kick_out.wav is 1.00 ms late" in pair.detail
    assert not [k for k in checks if k.startswith("stem pair") and "keys" in k]
    # in phase and in time: reported as fine
    sf.write(tmp_path / "kick_out.wav", 0.7 * src, SR)
    pair = {c.name: c for c in qc.stem_checks(sorted(tmp_path.iterdir()), SR)}[
        "stem pair kick_in.wav / kick_out.wav"]
    assert pair.status == "pass" and pair.value > 0.9
