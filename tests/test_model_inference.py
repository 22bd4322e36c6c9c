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
    for i, t in enumerate(settings["tracks"]):
        assert t["gain_db"] == pytest.approx(float(tracks["gain_db"][i]), abs=1e-4)
        assert t["pan"] == pytest.approx(float(tracks["pan"][i]), abs=1e-4)
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
    assert any(abs(a["gain_db"] - b["gain_db"]) > 0.01 for a, b in
               zip(only.settings["tracks"], refined.settings["tracks"]))
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
