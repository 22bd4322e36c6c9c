"""The parameter predictor at inference: checkpoints load safely, mismatches fail clearly, and
`automix` / `automix.predict_settings` use a model's prediction (with and without refinement)."""
import json

import numpy as np
import pytest
import soundfile as sf
import torch

import automix
from automix.cli import main
from automix.errors import AutomixError
from automix.model import AutomixNet, load_checkpoint, load_model, predict_params, save_checkpoint
from automix.params import MASTER_SPECS, SPEC_VERSION, TRACK_SPECS
from automix.settings import validate

SR = 22050


def _song(folder, rng, seconds=6.0):
    folder.mkdir(parents=True)
    t = np.arange(int(SR * seconds)) / SR
    sf.write(folder / "bass.wav", 0.3 * np.sin(2 * np.pi * 55 * t), SR)
    sf.write(folder / "hats.wav", 0.1 * np.diff(rng.standard_normal(len(t)), prepend=0), SR)
    chord = 0.1 * sum(np.sin(2 * np.pi * f * t) for f in (220, 277, 330))
    sf.write(folder / "pad.wav", np.stack([chord, 0.7 * chord]).T, SR)
    return folder


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    root = tmp_path_factory.mktemp("model")
    rng = np.random.default_rng(3)
    stems = _song(root / "stems", rng)
    ref = np.stack([np.sin(2 * np.pi * 110 * np.arange(SR * 5) / SR)] * 2) * 0.3
    ref += 0.05 * rng.standard_normal(ref.shape)
    sf.write(root / "ref.wav", ref.T, SR)
    torch.manual_seed(0)
    net = AutomixNet(dim=32, depth=1, heads=2)
    with torch.no_grad():  # a model with an opinion: not the neutral default
        net.track_head.bias.add_(torch.linspace(-1, 1, len(TRACK_SPECS)))
    save_checkpoint(root / "net.pt", net)
    return root, net


def test_checkpoint_round_trip_gives_the_same_prediction(case):
    root, net = case
    stems = [np.random.default_rng(i).standard_normal((2, SR * 3)) * 0.1 for i in range(3)]
    ref = stems[0] + stems[1]
    a = predict_params(net, stems, ref, SR)
    b = predict_params(load_model(root / "net.pt"), stems, ref, SR)
    for x, y in zip(a, b):
        assert set(x) == {s.name for s in TRACK_SPECS} or set(x) == {s.name for s in MASTER_SPECS}
        for k in x:
            assert torch.equal(x[k], y[k])


def test_wrong_spec_version_and_code_carrying_files_fail_clearly(case, tmp_path):
    root, _ = case
    data = torch.load(root / "net.pt", weights_only=True)
    data["spec_version"] = SPEC_VERSION + 1
    torch.save(data, tmp_path / "old.pt")
    with pytest.raises(AutomixError, match=f"spec version {SPEC_VERSION + 1}"):
        load_checkpoint(tmp_path / "old.pt")
    # a pickle that would run code on load is refused by weights_only, not executed
    torch.save({"format": "automix.checkpoint", "payload": Exploit()}, tmp_path / "evil.pt")
    with pytest.raises(AutomixError, match="not a loadable automix checkpoint"):
        load_checkpoint(tmp_path / "evil.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(AutomixError):
        load_checkpoint(tmp_path / "junk.pt")


class Exploit:
    def __reduce__(self):
        return (exec, ("raise SystemExit('code ran')",))


def test_cli_reports_a_bad_model_in_one_line(case, tmp_path, capsys):
    root, _ = case
    data = torch.load(root / "net.pt", weights_only=True)
    data["spec_version"] = 99
    torch.save(data, tmp_path / "old.pt")
    code = main(["--stems", str(root / "stems"), "--reference", str(root / "ref.wav"),
                 "--model", str(tmp_path / "old.pt"), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "spec version 99" in err[0]
    code = main(["--stems", str(root / "stems"), "--reference", str(root / "ref.wav"),
                 "--no-model", "--refine-steps", "0", "-o", str(tmp_path / "out2")])
    assert code == 2 and "needs a model" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_predict_settings_is_the_models_prediction(case):
    root, net = case
    settings = automix.predict_settings(root / "stems", root / "ref.wav", model=root / "net.pt")
    validate(settings)
    assert [t["name"] for t in settings["tracks"]] == ["bass", "hats", "pad"]
    # the same numbers as the network's own output, mapped through the parameter specs
    from automix.audio import read_audio
    stems = [read_audio(root / "stems" / f)[0] for f in ("bass.wav", "hats.wav", "pad.wav")]
    tracks, master = predict_params(net, stems, read_audio(root / "ref.wav")[0], SR)
    # (rounded to the steps settings.json keeps: 0.01 dB, 0.001 pan)
    for i, t in enumerate(settings["tracks"]):
        assert t["gain_db"] == pytest.approx(float(tracks["gain_db"][i]), abs=0.005 + 1e-6)
        assert t["pan"] == pytest.approx(float(tracks["pan"][i]), abs=0.0005 + 1e-6)
    assert settings["master"]["limiter"]["ceiling_dbtp"] == -1.0


def test_model_only_and_model_plus_refinement_runs(case, tmp_path):
    root, net = case
    only = automix.mix(root / "stems", root / "ref.wav", model=net, refine_steps=0)
    refined = automix.mix(root / "stems", root / "ref.wav", model=net, refine_steps=30)
    predicted = automix.predict_settings(root / "stems", root / "ref.wav", model=net)
    # model only: the tracks' EQ and pans are the network's (faders move together to set the bus)
    for a, p in zip(only.settings["tracks"], predicted["tracks"]):
        assert a["pan"] == pytest.approx(p["pan"], abs=1e-6)
        assert a["eq"] == p["eq"]
    offsets = [a["gain_db"] - p["gain_db"] for a, p in zip(only.settings["tracks"], predicted["tracks"])]
    assert max(offsets) - min(offsets) < 1e-6
    # refinement moves away from the prediction, and both masters respect the ceiling
    moves = [b["gain_db"] - a["gain_db"] for a, b in zip(only.settings["tracks"], refined.settings["tracks"])]
    assert any(abs(m - moves[0]) > 0.01 for m in moves)
    # ...but keeps the network's balance: relative to one another (the bus gain moves them all
    # together) the faders stay within +-MODEL_FADER_RANGE_DB of the prediction
    from automix.api import MODEL_FADER_RANGE_DB
    rel = np.array(moves) - np.mean(moves)
    assert np.abs(rel).max() <= 2 * MODEL_FADER_RANGE_DB + 1e-6
    for r in (only, refined):
        assert r.settings["analysis"]["master"]["true_peak_dbtp"] <= -1.0 + 1e-6


def test_export_keeps_the_model_and_drops_training_state(case, tmp_path):
    from training.export import export

    root, net = case
    opt = torch.optim.AdamW(net.parameters())
    save_checkpoint(tmp_path / "train.pt", net, optimizer=opt.state_dict(), step=7,
                    config={"seed": 0})
    info = export(tmp_path / "train.pt", tmp_path / "ship.pt")
    shipped = load_checkpoint(tmp_path / "ship.pt")
    assert info["step"] == 7 and "optimizer" not in shipped
    assert shipped["training"]["config"] == {"seed": 0}
    for k, v in net.state_dict().items():
        assert torch.equal(shipped["model"][k], v)


def test_relative_faders_start_from_the_balance_point():
    """A relative-fader model's prediction is its head's fader plus the dB that bring each stem
    to the median stem level, read off the log-mels: a stem 12 dB hotter gets 12 dB less."""
    from automix.model.features import fader_offsets_db, log_mel
    from automix.model.predict import predict_from_mels

    rng = np.random.default_rng(3)
    noise = torch.tensor(rng.standard_normal((1, 2, 44100)) * 0.05, dtype=torch.float32)
    mels = torch.cat([log_mel(noise * g, 44100) for g in (1.0, 10 ** (12 / 20), 10 ** (-6 / 20))])
    off = fader_offsets_db(mels)
    assert off.tolist() == pytest.approx([0.0, -12.0, 6.0], abs=0.05)
    # a padded track changes nothing for the real ones and gets 0
    padded = torch.cat([mels, torch.full_like(mels[:1], -100.0)])
    off4 = fader_offsets_db(padded, torch.tensor([True, True, True, False]))
    assert off4[:3].tolist() == pytest.approx(off.tolist(), abs=1e-9) and off4[3] == 0
    torch.manual_seed(0)
    absolute, relative = AutomixNet(dim=32, depth=1, heads=2), AutomixNet(dim=32, depth=1, heads=2,
                                                                          relative_faders=True)
    relative.load_state_dict(absolute.state_dict())
    ref = log_mel(noise, 44100)[0]
    a, _ = predict_from_mels(absolute, mels, [True] * 3, ref)
    r, _ = predict_from_mels(relative, mels, [True] * 3, ref)
    assert (r["gain_db"] - a["gain_db"]).tolist() == pytest.approx(off.tolist(), abs=1e-4)


def _band_mels(levels_db, bands, frames=50, floor=-100.0):
    """Synthetic (N, 2, 64, F) log-mels: stem i has ``levels_db[i]`` dB in ``bands[i]`` (mid),
    floor elsewhere and in the side."""
    mels = torch.full((len(levels_db), 2, 64, frames), floor, dtype=torch.float64)
    for i, (lev, b) in enumerate(zip(levels_db, bands)):
        mels[i, 0, b] = lev
    return mels


def test_reference_balance_recovers_the_reference_levels():
    """Stems with disjoint spectra, reference = their sum with known gains (+ any overall
    level).  With disjoint bands each band's dB residual is linear in the faders, so the fit's
    objective is an exact quadratic: mean_m (d_m - mean d)^2 + s/N |x - b|^2 with d = x - gains
    in the stem's bands; its minimum, solved here with numpy, is gains minus a constant shrunk
    a little toward the balance point b (-10 log10 of each stem's band count over the median's)."""
    from automix.model.features import fader_offsets_db, reference_balance_db

    sizes = [20, 20, 24]
    edges = np.cumsum([0] + sizes)
    bands = [slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]
    gains = np.array([4.0, -3.0, 0.0])
    stems = _band_mels([-20.0, -20.0, -20.0], bands)
    ref = _band_mels((-20.0 + gains + 7.0).tolist(), bands)
    ref = 10 * torch.log10(torch.pow(10.0, ref / 10).sum(0))  # (2, 64, F): the sum
    mask = torch.ones(1, 3, dtype=torch.bool)
    x = reference_balance_db(stems[None], mask, ref[None])[0]
    level = 10 * np.log10(sizes)
    b = np.median(level) - level
    p = np.array(sizes) / 64.0
    centre = np.eye(3) - np.outer(np.ones(3), p)        # d -> d - mean over bands
    quad = centre.T @ np.diag(p) @ centre
    s = 0.03 / 3
    expected = np.linalg.solve(quad + s * np.eye(3), quad @ gains + s * b)
    assert x.tolist() == pytest.approx(expected.tolist(), abs=0.01)
    assert float(x[0] - x[1]) == pytest.approx(7.0, abs=0.3)  # the shrinkage is small
    # stems the spectrum cannot tell apart stay at the balance point (the same level)
    same = _band_mels([-20.0, -26.0], [slice(0, 64)] * 2)
    y = reference_balance_db(same[None], torch.ones(1, 2, dtype=torch.bool), ref[None])[0]
    assert float(y[1] - y[0]) == pytest.approx(6.0, abs=0.01)
    assert y.tolist() == pytest.approx(fader_offsets_db(same[None])[0].tolist(), abs=0.01)
    # a padded track gets 0 and changes nothing; the order of the stems does not matter
    padded = torch.cat([stems, torch.full_like(stems[:1], -100.0)])
    z = reference_balance_db(padded[None], torch.tensor([[True, True, True, False]]), ref[None])[0]
    assert z[3] == 0 and z[:3].tolist() == pytest.approx(x.tolist(), abs=1e-6)
    perm = [2, 0, 1]
    w = reference_balance_db(stems[perm][None], mask, ref[None])[0]
    assert w.tolist() == pytest.approx(x[perm].tolist(), abs=1e-6)


def test_reference_balance_on_real_log_mels():
    """Low-passed and high-passed noise; the reference is other noise through the same filters
    at +6 and -2 dB: the fitted faders differ by 8 dB, within 0.75 dB (the log-mel front end and
    the fit together; the filters' edge bands, where the window's leakage of random noise
    differs between stem and reference, and the pull toward the balance point cost a little)."""
    from automix.model.features import log_mel, reference_balance_db

    sr, n = 44100, 3 * 44100
    rng = np.random.default_rng(5)
    f = np.fft.rfftfreq(n, 1 / sr)

    def band(lo, hi):
        spec = np.fft.rfft(rng.standard_normal((2, n)), axis=-1) * ((f >= lo) & (f < hi))
        return np.fft.irfft(spec, n, axis=-1) * 0.1

    low, high = band(40, 400), band(3000, 12000)
    ref = band(40, 400) * 10 ** (6 / 20) + band(3000, 12000) * 10 ** (-2 / 20)
    mels = log_mel(torch.tensor(np.stack([low, high]), dtype=torch.float32), sr)
    x = reference_balance_db(mels[None], torch.ones(1, 2, dtype=torch.bool),
                             log_mel(torch.tensor(ref, dtype=torch.float32), sr)[None])[0]
    assert float(x[0] - x[1]) == pytest.approx(8.0, abs=0.75)


def _balanced_prediction_offsets(fader_balance: str, seed: int):
    """Three noise stems at 0.05 / 0.2 / 0.01 and their sum as the reference: the dB a
    ``fader_balance`` model adds to the faders of the same weights without relative faders,
    with the log-mels and the mask."""
    from automix.model.features import log_mel
    from automix.model.predict import predict_from_mels

    rng = np.random.default_rng(seed)
    audio = torch.tensor(rng.standard_normal((3, 2, 44100)) * [[[0.05]], [[0.2]], [[0.01]]],
                         dtype=torch.float32)
    mels, ref = log_mel(audio, 44100), log_mel(audio.sum(0), 44100)
    torch.manual_seed(0)
    absolute = AutomixNet(dim=32, depth=1, heads=2)
    balanced = AutomixNet(dim=32, depth=1, heads=2, relative_faders=True, fader_balance=fader_balance)
    balanced.load_state_dict(absolute.state_dict())
    a, _ = predict_from_mels(absolute, mels, [True] * 3, ref)
    b, _ = predict_from_mels(balanced, mels, [True] * 3, ref)
    return b["gain_db"] - a["gain_db"], mels, ref, torch.ones(1, 3, dtype=torch.bool)


def test_reference_balanced_model_adds_the_fitted_offsets():
    from automix.model.features import reference_balance_db

    added, mels, ref, mask = _balanced_prediction_offsets("reference", 4)
    off = reference_balance_db(mels[None], mask, ref[None])[0]
    assert added.tolist() == pytest.approx(off.tolist(), abs=1e-4)
    from automix.errors import AutomixError

    with pytest.raises(AutomixError, match="fader_balance"):
        AutomixNet(dim=32, depth=1, heads=2, fader_balance="loudest")


def test_reference_balance_ignores_dead_bands_and_silent_references():
    """A band where the reference has content but no stem does (no fader can reach it) does
    not move the faders; a reference at the floor everywhere leaves the balance point."""
    from automix.model.features import fader_offsets_db, reference_balance_db

    bands = [slice(0, 20), slice(20, 40)]
    stems = _band_mels([-20.0, -20.0], bands)
    ref = 10 * torch.log10(torch.pow(10.0, _band_mels([-16.0, -23.0], bands) / 10).sum(0))
    mask = torch.ones(1, 2, dtype=torch.bool)
    x = reference_balance_db(stems[None], mask, ref[None])[0]
    extra = ref.clone()
    extra[0, 40:] = -30.0  # content only the reference has
    y = reference_balance_db(stems[None], mask, extra[None])[0]
    assert torch.isfinite(y).all() and y.tolist() == pytest.approx(x.tolist(), abs=1e-6)
    assert float(x[0] - x[1]) == pytest.approx(7.0, abs=0.3)
    silent = torch.full_like(ref, -100.0)
    z = reference_balance_db(stems[None], mask, silent[None])[0]
    assert z.tolist() == pytest.approx(fader_offsets_db(stems[None])[0].tolist(), abs=1e-9)


def test_loudness_offsets_follow_bs1770_on_audio():
    """The equal-loudness point read off log-mels agrees with BS.1770 integrated loudness of
    the audio (an independent measure: automix.analysis, pyloudnorm-checked): stems of very
    different spectra and levels, one of them gated (half silence), within 0.7 dB.  (The mels
    stop at 16 kHz: content above it is not seen, so the test signals keep below it.)"""
    from automix.analysis import integrated_loudness
    from automix.model.features import log_mel, loudness_offsets_db

    sr, n = 44100, 6 * 44100
    rng = np.random.default_rng(3)
    t = np.arange(n) / sr
    f = np.fft.rfftfreq(n, 1 / sr)

    def noise(shape):  # noise with amplitude spectrum ``shape(f)``, inside the mels' 20 Hz-16 kHz
        spec = np.fft.rfft(rng.standard_normal(n)) * np.where((f > 30) & (f < 15000), shape(f), 0.0)
        return np.fft.irfft(spec, n)

    bass = 0.3 * np.sin(2 * np.pi * 60 * t)                        # K-weighting lowers it
    hats = noise(lambda f: ((f > 5000) & (f < 12000)) * 1.0) * 0.3  # the pre-filter raises it
    gated = noise(lambda f: 1.0) * 0.5 * (t % 2 < 1)               # silent half the time
    pink = noise(lambda f: 1 / np.sqrt(np.maximum(f, 1.0)))
    pink *= 0.02 / np.sqrt(np.mean(pink ** 2))
    stems = np.stack([np.stack([x, x]) for x in (bass, hats, gated, pink)])
    lufs = np.array([integrated_loudness(x, sr) for x in stems])
    expected = np.median(lufs) - lufs
    mels = log_mel(torch.tensor(stems, dtype=torch.float32), sr)
    got = loudness_offsets_db(mels).numpy()
    assert np.ptp(lufs) > 10  # the stems really differ
    assert got == pytest.approx(expected - np.median(expected - got), abs=0.7)


def test_loudness_reference_balance_model_adds_its_offsets():
    """fader_balance="reference_loudness": the predicted faders are the absolute model's plus
    the reference fit pulled toward equal loudness, with that mode's strength."""
    from automix.model.features import loudness_offsets_db, reference_balance_db
    from automix.model.net import LOUDNESS_BALANCE_STRENGTH

    added, mels, ref, mask = _balanced_prediction_offsets("reference_loudness", 1)
    off = reference_balance_db(mels[None], mask, ref[None], strength=LOUDNESS_BALANCE_STRENGTH,
                               base=loudness_offsets_db(mels[None], mask))[0]
    assert added.tolist() == pytest.approx(off.tolist(), abs=1e-4)
    # three white noises: the reference cannot tell them apart, so the fit stays at the
    # equal-loudness point, which for one spectrum is the level ratio to the median stem
    lo = loudness_offsets_db(mels[None], mask)[0]
    assert (off - lo).abs().max() < 0.2
    assert lo.tolist() == pytest.approx([0.0, 20 * np.log10(0.05 / 0.2), 20 * np.log10(0.05 / 0.01)], abs=0.3)


def test_fader_deviation_zero_puts_faders_at_the_balance_point():
    """fader_deviation=0: every fader is the balance point plus the one mean learned fader (the
    network still sets the level and everything else); 1 keeps the whole learned deviation."""
    from automix.model.features import log_mel
    from automix.model.predict import predict_from_mels

    rng = np.random.default_rng(5)
    audio = torch.tensor(rng.standard_normal((3, 2, 44100)) * [[[0.05]], [[0.2]], [[0.01]]], dtype=torch.float32)
    mels, ref = log_mel(audio, 44100), log_mel(audio.sum(0), 44100)
    torch.manual_seed(0)
    kw = dict(dim=32, depth=1, heads=2, relative_faders=True, fader_balance="reference_loudness")
    full = AutomixNet(**kw)
    with torch.no_grad():  # a network with an opinion about the balance
        full.track_head.bias.add_(torch.linspace(-1, 1, len(TRACK_SPECS)))
        full.track_head.weight.normal_(0, 0.3)
    none = AutomixNet(**kw, fader_deviation=0.0)
    none.load_state_dict(full.state_dict())
    a, _ = predict_from_mels(full, mels, [True] * 3, ref)
    b, _ = predict_from_mels(none, mels, [True] * 3, ref)
    mask = torch.ones(1, 3, dtype=torch.bool)
    point = full.fader_offsets(mels[None], mask, ref[None])[0].double()
    learned = a["gain_db"] - point
    assert learned.std() > 0.1  # the full model does deviate
    assert b["gain_db"].tolist() == pytest.approx((point + learned.mean()).tolist(), abs=1e-4)
    assert b["pan"].tolist() == pytest.approx(a["pan"].tolist())
    with pytest.raises(AutomixError, match="fader_deviation"):
        AutomixNet(**kw, fader_deviation=1.5)
