"""Reference matching end to end on synthetic songs whose answer is known: the reference is
rendered by the console itself from the same stems with known settings."""
import json

import numpy as np
import pytest
import soundfile as sf
import torch

import automix
from automix import analysis
from automix.cli import main
from automix.params import MASTER_SPECS, TRACK_SPECS, defaults
from automix.render import render_settings
from automix.settings import settings_from_params, validate

SR = 32000
SECONDS = 8


def make_stems(folder, rng):
    folder.mkdir(parents=True, exist_ok=True)
    t = np.arange(SR * SECONDS) / SR
    beat = (t * 2) % 1
    kick = np.sin(2 * np.pi * 55 * t * (1 + np.exp(-beat * 30))) * np.exp(-beat * 8) * 0.8
    hats = rng.standard_normal(len(t)) * np.exp(-((t * 8) % 1) * 40) * 0.2
    hats = np.diff(hats, prepend=0)  # bright
    bass = np.sin(2 * np.pi * 55 * t * (1 + (np.floor(t / 2) % 2) * 0.5)) * 0.3
    chord = sum(np.sin(2 * np.pi * f * t + k) for k, f in enumerate([220, 277, 330, 440])) * 0.08
    pad = np.stack([chord * (1 + 0.3 * np.sin(2 * np.pi * 0.2 * t)),
                    chord * (1 - 0.3 * np.sin(2 * np.pi * 0.2 * t))])
    sf.write(folder / "kick.wav", kick, SR)
    sf.write(folder / "hats.wav", hats, SR)
    sf.write(folder / "bass.flac", bass, SR)
    sf.write(folder / "pad.wav", pad.T, SR)
    return ["kick", "hats", "bass", "pad"], ["kick.wav", "hats.wav", "bass.flac", "pad.wav"]


@pytest.fixture(scope="module")
def known_case(tmp_path_factory):
    """Stems, and a reference mixed and mastered by the console with known settings."""
    root = tmp_path_factory.mktemp("case")
    names, files = make_stems(root / "stems", np.random.default_rng(7))
    tp = defaults(TRACK_SPECS, (4,), torch.float64)
    tp["gain_db"] = torch.tensor([-2.0, -12.0, 0.0, -6.0], dtype=torch.float64)
    tp["pan"] = torch.tensor([0.0, 0.5, 0.0, -0.2], dtype=torch.float64)
    tp["eq5_highshelf.gain_db"] = torch.tensor([0.0, -4.0, 0.0, 3.0], dtype=torch.float64)
    mp = defaults(MASTER_SPECS, (), torch.float64)
    mp["gain_db"] = torch.tensor(10.0, dtype=torch.float64)
    mp["eq1_lowshelf.gain_db"] = torch.tensor(2.0, dtype=torch.float64)
    settings = validate(settings_from_params(names, files, tp, mp, SR))
    _, ref = render_settings(settings, root / "stems")
    sf.write(root / "reference.wav", ref.T, SR, subtype="FLOAT")
    out = root / "out"
    # refinement alone (this matching), independent of whichever network is shipped;
    # the network's path is tested in test_model_inference.py
    code = main(["--stems", str(root / "stems"), "--reference", str(root / "reference.wav"),
                 "--no-model", "-o", str(out)])
    assert code == 0
    return root, out


def test_master_matches_the_reference(known_case):
    root, out = known_case
    a = json.loads((out / "settings.json").read_text())["analysis"]
    ref, master = a["reference"], a["master"]
    assert analysis.loudness_error_lu(master, ref) <= 0.5
    assert master["true_peak_dbtp"] <= -1.0 + 1e-6
    assert analysis.tonal_error_db(master, ref, "mid") <= 1.5
    assert analysis.width_error_db(master, ref) <= 1.0
    # the files say what the settings say
    audio, sr = sf.read(out / "master.wav", always_2d=True)
    assert sr == SR and sf.info(out / "master.wav").subtype == "PCM_24"
    measured = analysis.analyze(audio.T, sr)
    assert measured["integrated_lufs"] == pytest.approx(master["integrated_lufs"], abs=0.05)
    assert measured["true_peak_dbtp"] <= -1.0 + 0.01
    assert (out / "report.png").stat().st_size > 10000


def test_render_reproduces_master_bit_exactly(known_case):
    root, out = known_case
    assert main(["render", "--stems", str(root / "stems"), "--settings",
                 str(out / "settings.json"), "-o", str(root / "again")]) == 0
    for name in ("mix.wav", "master.wav"):
        assert (root / "again" / name).read_bytes() == (out / name).read_bytes()


def test_master_command_and_amounts(known_case, tmp_path):
    root, out = known_case
    full = automix.master(out / "mix.wav", root / "reference.wav")
    ref = full.settings["analysis"]["reference"]
    got = full.settings["analysis"]["master"]
    assert abs(got["integrated_lufs"] - ref["integrated_lufs"]) <= 0.5
    assert got["true_peak_dbtp"] <= -1.0 + 1e-6
    streaming = automix.master(out / "mix.wav", root / "reference.wav", target_lufs=-16.0)
    assert streaming.settings["analysis"]["master"]["integrated_lufs"] == pytest.approx(-16, abs=0.5)
    still = automix.master(out / "mix.wav", root / "reference.wav",
                           amounts=automix.Amounts(loudness=0.0, tone=0.0, width=0.0))
    mix_lufs = still.settings["analysis"]["mix"]["integrated_lufs"]
    assert still.settings["analysis"]["master"]["integrated_lufs"] == pytest.approx(mix_lufs, abs=0.5)
    assert all(abs(b.get("gain_db", 0.0)) < 0.5 for b in still.settings["master"]["eq"])


def test_unreachable_loudness_is_reported(known_case):
    """-2 LUFS under a -1 dBTP ceiling needs a peak-to-loudness ratio of 1 dB: the limiter stops
    short, the true peak still holds, and the user is told by how much."""
    root, out = known_case
    r = automix.master(out / "mix.wav", root / "reference.wav", target_lufs=-2.0)
    got = r.settings["analysis"]["master"]
    assert got["true_peak_dbtp"] <= -1.0 + 1e-6
    short = -2.0 - got["integrated_lufs"]
    assert short > 0.5
    assert any(f"{short:.1f} LU short of the target -2.0 LUFS" in n for n in r.notes), r.notes
    ok = automix.master(out / "mix.wav", root / "reference.wav", target_lufs=-16.0)
    assert not any("short of the target" in n for n in ok.notes)


def test_analyze_command(known_case, capsys):
    root, _ = known_case
    assert main(["analyze", str(root / "reference.wav"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["true_peak_dbtp"] <= -1.0 + 0.01 and data["sample_rate"] == SR


def test_api_master_is_the_render_executors_output(known_case):
    """mix() and master() keep the last pre-limiter pass instead of re-rendering: the floats
    must be exactly what the render executor makes from the settings they return."""
    root, out = known_case
    r = automix.master(out / "mix.wav", root / "reference.wav")
    _, again = render_settings(r.settings, out)
    assert np.array_equal(r.master, again)
    m = automix.mix(root / "stems", root / "reference.wav", model=None, refine_steps=40)
    mix_again, master_again = render_settings(m.settings, root / "stems")
    assert np.array_equal(m.mix, mix_again)
    assert np.array_equal(m.master, master_again)


def test_stems_kept_in_memory_or_reread_give_the_same_mix(known_case, monkeypatch):
    """Stems read once are kept in memory up to a budget; past it they are re-read from disk.
    Both paths must feed the fit and the render the same samples."""
    root, _ = known_case
    kept = automix.mix(root / "stems", root / "reference.wav", model=None, refine_steps=20)
    monkeypatch.setattr(automix.api, "STEM_MEMORY_BYTES", 0)
    reread = automix.mix(root / "stems", root / "reference.wav", model=None, refine_steps=20)
    assert np.array_equal(kept.mix, reread.mix) and np.array_equal(kept.master, reread.master)
    assert kept.settings["tracks"] == reread.settings["tracks"]


def test_first_master_pass_on_excerpts(known_case, monkeypatch):
    """A long mix's first master pass (which only measures the limiter's tilt) runs on
    excerpts: the master still meets the loudness and ceiling, its tone stays within 0.3 dB of
    the two full passes, and it is still exactly the render executor's output."""
    from automix import mastering

    root, out = known_case
    full = automix.master(out / "mix.wav", root / "reference.wav")
    monkeypatch.setattr(mastering, "PROBE_MIN_S", 4.0)   # this 8 s mix counts as long...
    monkeypatch.setattr(mastering, "PROBE_PART_S", 1.0)  # ...and is probed by 6 x 1 s
    probed = automix.master(out / "mix.wav", root / "reference.wav")
    ref, got = probed.settings["analysis"]["reference"], probed.settings["analysis"]["master"]
    assert probed.settings["master"]["eq"] != full.settings["master"]["eq"]  # the probe was used
    assert analysis.loudness_error_lu(got, ref) <= min(0.5, analysis.loudness_error_lu(
        full.settings["analysis"]["master"], ref) + 0.1)
    assert got["true_peak_dbtp"] <= -1.0 + 1e-6
    tone_full = analysis.tonal_error_db(full.settings["analysis"]["master"], ref, "mid")
    assert analysis.tonal_error_db(got, ref, "mid") <= tone_full + 0.3
    _, again = render_settings(probed.settings, out)
    assert np.array_equal(probed.master, again)


def test_probe_excerpts_are_even_and_click_free():
    from automix.api import probe_excerpts

    sr = 1000
    x = np.ones((2, 100 * sr))
    p = probe_excerpts(x, sr, parts=4, seconds=2.0)
    assert p.shape == (2, 8 * sr)
    assert np.all(p[:, ::2 * sr] == 0) and np.all(p[:, 1000] == 1)  # faded in, whole inside
    ramp = np.arange(100 * sr, dtype=float)[None].repeat(2, 0)
    starts = probe_excerpts(ramp, sr, parts=4, seconds=2.0)[0, 2 * sr - 1000::2 * sr] - 1000
    assert np.allclose(starts, [0, 32667, 65333, 98000], atol=1)


def test_failed_run_leaves_no_temp_files(known_case, tmp_path, monkeypatch, capsys):
    """The CLI starts writing mix.wav as soon as the mix exists; when mastering then fails the
    run still ends with one line and exit 2, the started write completes and is discarded: the
    output folder is replaced as a whole, so the new folder is gone again (no temp files)."""
    from automix import api
    from automix.errors import AutomixError

    root, _ = known_case

    def broken(*args, **kwargs):
        raise AutomixError("mastering failed on purpose")

    import time

    from automix import audio as audio_module

    write = audio_module.write_audio

    def slow_write(*args, **kwargs):  # still writing when the run fails
        time.sleep(0.5)
        return write(*args, **kwargs)

    monkeypatch.setattr(api, "master_stage", broken)
    monkeypatch.setattr(audio_module, "write_audio", slow_write)
    out = tmp_path / "out"
    code = main(["--stems", str(root / "stems"), "--reference", str(root / "reference.wav"),
                 "--no-model", "--refine-steps", "5", "-o", str(out)])
    assert code == 2
    assert capsys.readouterr().err.strip() == "automix: error: mastering failed on purpose"
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == []


def _band_noise(rng, lo, hi, n, sr):
    f = np.fft.rfftfreq(n, 1 / sr)
    return np.fft.irfft(np.fft.rfft(rng.standard_normal(n)) * ((f >= lo) & (f < hi)), n) * 0.1


def test_mix_model_reads_left_right_balance_per_band():
    """(L - R) / (L + R) per 1/3-octave band from the mid/side/cross spectra equals the one
    computed from the channels directly: 0.6 where L = 2 R (in amplitude), -0.6 where R = 2 L."""
    from automix.match import Spectra, _Model

    sr, n = 44100, 4 * 44100
    rng = np.random.default_rng(0)
    low, high = _band_noise(rng, 50, 500, n, sr), _band_noise(rng, 2000, 12000, n, sr)
    audio = np.stack([low + 0.5 * high, 0.5 * low + high])
    spectra = Spectra.of(audio, sr)
    model = _Model(sr, spectra.nperseg)
    beta = model.balance(*(model.summarise(getattr(spectra, k)[None])[0]
                           for k in ("mid", "side", "cross"))).numpy()
    centres = np.array(analysis.BANDS_HZ)
    assert beta[(centres >= 80) & (centres <= 315)] == pytest.approx(0.6, abs=0.02)
    assert beta[(centres >= 3150) & (centres <= 8000)] == pytest.approx(-0.6, abs=0.02)


def test_mix_fit_puts_sources_on_the_reference_side():
    """Two mono sources; the reference pans the low one right (+0.4) and the high one left
    (-0.4) with the constant-power law; the fit starts each on the wrong side (-+0.1).  Mid and
    side powers alone cannot tell a mix from its mirror image (without the reference's spectra
    the pans stay on the wrong side); with the reference's left/right balance they cross over."""
    from automix.match import Spectra, Target, fit_mix

    sr, n = 44100, 4 * 44100
    rng = np.random.default_rng(1)
    low, high = _band_noise(rng, 50, 500, n, sr), _band_noise(rng, 2000, 12000, n, sr)
    truth = {"low": 0.4, "high": -0.4}
    theta = {k: (p + 1) * np.pi / 4 for k, p in truth.items()}
    ref = sum(np.stack([np.cos(theta[k]) * x, np.sin(theta[k]) * x])
              for k, x in (("low", _band_noise(rng, 50, 500, n, sr)),
                           ("high", _band_noise(rng, 2000, 12000, n, sr))))
    spectra = [Spectra.of(np.stack([x, x]), sr) for x in (low, high)]
    start = defaults(TRACK_SPECS, (2,), torch.float64)
    start["pan"] = torch.tensor([-0.1, 0.1], dtype=torch.float64)
    target = Target.of(analysis.analyze(ref, sr))
    blind, _ = fit_mix(spectra, [False, False], target, start, sr, steps=200)
    seeing, _ = fit_mix(spectra, [False, False], target, start, sr, steps=200,
                        reference=Spectra.of(ref, sr))
    assert blind["pan"][0] < 0 < blind["pan"][1]
    assert seeing["pan"].tolist() == pytest.approx([0.4, -0.4], abs=0.1)
