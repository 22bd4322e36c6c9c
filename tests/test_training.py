"""automix-train: pairs, losses, the trainer (learning, exact resume, DDP), checkpoints, the model's
set properties.  Everything runs on a tiny generated dataset (16 kHz, 0.5 s sections) and a tiny
model, so the whole file takes well under a minute and a half on two busy cores."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from automix.errors import AutomixError
from automix.model import AutomixNet, load_checkpoint, model_from_checkpoint, save_checkpoint
from automix.params import MASTER_SPECS, TRACK_SPECS, defaults, to_physical
from automix.settings import settings_from_params

from training.losses import MultiResolutionSTFTLoss, audio_losses, param_loss
from training.pairs import PairDataset, StepSampler, collate_pairs, params_from_settings
from training.train import build_pairs, render_prediction, train

ROOT = Path(__file__).resolve().parents[1]
SR = 16000
TINY = {"dim": 32, "depth": 1, "heads": 2, "ff_mult": 2, "dropout": 0.0}


def make_songs(root: Path, n_songs: int = 5, seconds: float = 2.0, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    for s in range(n_songs):
        d = root / f"song_{s:02d}"
        d.mkdir(parents=True)
        for k, name in enumerate(["bass", "keys", "lead", "pad"][: 2 + s % 3]):
            f0 = rng.uniform(60, 1500)
            env = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.5, 3) * t) ** 2
            x = 0.2 * env * np.sin(2 * np.pi * f0 * t) + 0.01 * rng.standard_normal(t.size)
            if k % 2:  # a stereo stem
                x = np.stack([x, np.roll(x, 37) * 0.8], 1)
            sf.write(d / f"{name}.wav", x.astype(np.float32), SR)
    return root


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return make_songs(tmp_path_factory.mktemp("songs"))


def config(data_root, loss: str = "params", **trainer):
    """The real configs (configs/train.yaml) through Hydra's compose API, made tiny."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf
    overrides = [f"data=generic", f"data.root={data_root}", f"data.sample_rate={SR}",
                 "data.max_tracks=4", f"loss={loss}", "section_seconds=0.5"]
    with initialize_config_dir(str(ROOT / "configs"), version_base=None):
        cfg = compose("train", overrides=overrides)
    c = OmegaConf.to_container(cfg, resolve=True)
    c["model"] = dict(TINY)
    c["optim"].update({"lr": 3e-3, "warmup_steps": 0})
    c["trainer"].update({"batch_size": 4, "num_workers": 0, "device": "cpu", "val_every": 0,
                         "ckpt_every": 0, "log_every": 1000, "tensorboard": False})
    c["trainer"].update(trainer)
    return c


def batch_of(ds, keys):
    return collate_pairs([ds[k] for k in keys])


# --------------------------------------------------------------------------- pairs

def test_params_from_settings_round_trip():
    gen = torch.Generator().manual_seed(0)
    tp = to_physical(torch.rand(3, len(TRACK_SPECS), generator=gen), TRACK_SPECS)
    mp = to_physical(torch.rand(len(MASTER_SPECS), generator=gen), MASTER_SPECS)
    s = settings_from_params(["a", "b", "c"], ["a.wav", "b.wav", "c.wav"], tp, mp, 44100)
    s["tracks"][1]["mute"] = True
    s["tracks"][2]["eq"] = [b for b in s["tracks"][2]["eq"] if b["type"] != "peak"][:1]
    s["tracks"][2]["compressor"] = {}
    t2, m2, mask = params_from_settings(s, 4, slots=[0, 1, 3])
    assert mask.tolist() == [True, False, False, True]
    for k in tp:
        assert torch.allclose(t2[k][0], tp[k][0], rtol=1e-5, atol=1e-4), k
    for k in mp:
        assert torch.allclose(m2[k], mp[k], rtol=1e-5, atol=1e-4), k
    d = defaults(TRACK_SPECS)
    assert float(t2["eq2_peak.gain_db"][3]) == 0.0 and float(t2["comp.ratio"][3]) == 1.0
    assert float(t2["eq0_highpass.freq_hz"][3]) == pytest.approx(float(tp["eq0_highpass.freq_hz"][2]), rel=1e-5)
    assert all(float(t2[k][2]) == pytest.approx(float(d[k])) for k in d)  # empty row: defaults
    with pytest.raises(AutomixError, match="fixed EQ layout"):
        params_from_settings({"tracks": [{"name": "x", "file": "x", "eq": [{"type": "lowpass", "freq_hz": 9e3}]}],
                              "master": {}})


def test_pairs_deterministic_and_shaped(data_root):
    c = config(data_root)
    ds = build_pairs(c, "train", render_target=True)
    a, b = ds[(1, 2)], ds[(1, 2)]
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert not torch.equal(ds[(2, 2)]["track_params"], a["track_params"])
    n = len(a["mask"])
    assert a["stem_mels"].shape[:3] == (n, 2, 64) and a["reference_mel"].shape[:2] == (2, 64)
    assert a["track_params"].shape == (n, len(TRACK_SPECS))
    assert a["master_params"].shape == (len(MASTER_SPECS),)
    assert a["stems"].shape == (n, 2, SR // 2) and a["target"].shape == (2, SR // 2)
    assert 0 <= float(a["track_params"].min()) and float(a["track_params"].max()) <= 1
    assert torch.isfinite(a["reference"]).all() and a["reference"].abs().max() > 1e-3
    # parameter-only pairs carry no audio
    assert "stems" not in build_pairs(c, "train", render_target=False)[(1, 2)]


def test_step_sampler_resume_and_ranks():
    full = list(StepSampler(7, 3, seed=5, max_steps=6))
    assert list(StepSampler(7, 3, seed=5, start_step=4, max_steps=6)) == full[4:]
    r0 = list(StepSampler(7, 3, seed=5, max_steps=4, rank=0, world_size=2))
    r1 = list(StepSampler(7, 3, seed=5, max_steps=4, rank=1, world_size=2))
    stream = [k for s in range(4) for k in r0[s] + r1[s]]
    assert stream == [k for b in StepSampler(7, 6, seed=5, max_steps=4) for k in b]
    epoch0 = sorted(i for e, i in stream if e == 0)
    assert epoch0 == list(range(7))  # each epoch is a permutation


# --------------------------------------------------------------------------- losses

def test_param_loss_masking():
    true_t = torch.rand(2, 3, len(TRACK_SPECS))
    true_m = torch.rand(2, len(MASTER_SPECS))
    mask = torch.tensor([[True, True, False], [True, False, False]])
    pred_t = true_t.clone()
    pred_t[0, 2] += 0.5  # a padded track: ignored
    pred_m = true_m.clone()
    ceiling = [s.name for s in MASTER_SPECS].index("limiter.ceiling_dbtp")
    pred_m[:, ceiling] += 0.5  # the ceiling: ignored
    assert float(param_loss(pred_t, pred_m, true_t, true_m, mask)) == 0.0
    pred_t[0, 1, 0] += 0.5
    assert float(param_loss(pred_t, pred_m, true_t, true_m, mask)) > 0.0


def test_mrstft_zero_for_identical_and_positive_otherwise():
    x = torch.randn(2, 2, 4000)
    loss = MultiResolutionSTFTLoss()
    assert float(loss(x, x)) < 1e-5
    assert float(loss(x * 0.5, x)) > 0.1


# --------------------------------------------------------------------------- the trainer

def test_training_lowers_the_loss(data_root):
    """The network and the parameter loss can learn: overfit one fixed batch."""
    ds = build_pairs(config(data_root), "train", render_target=False)
    batch = batch_of(ds, [(0, i) for i in range(4)])
    torch.manual_seed(0)
    model = AutomixNet(**TINY)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        track, master = model(batch["stem_mels"], batch["mask"], batch["is_stereo"], batch["reference_mel"])
        loss = param_loss(track, master, batch["track_params"], batch["master_params"], batch["mask"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5]), losses


def test_resume_reproduces_the_uninterrupted_run(data_root, tmp_path):
    full = train(config(data_root, max_steps=4, batch_size=2, val_every=2, val_batches=1), tmp_path / "a")
    assert len(full["losses"]) == 4 and all(np.isfinite(full["losses"])) and full["examples_per_s"] > 0
    log = (tmp_path / "a" / "log.csv").read_text().splitlines()
    assert log[0].startswith("step,kind") and any(",valid," in row for row in log)
    assert (tmp_path / "a" / "checkpoints" / "best.pt").is_file()
    first = train(config(data_root, max_steps=4, batch_size=2, stop_after_steps=2,
                         num_workers=1), tmp_path / "b")
    assert first["final_step"] == 2
    ckpt = load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")
    assert ckpt["step"] == 2 and "optimizer" in ckpt and "scheduler" in ckpt and "rng" in ckpt
    assert isinstance(ckpt["config"], dict)
    second = train(config(data_root, max_steps=4, batch_size=2, resume="auto"), tmp_path / "b")
    assert second["final_step"] == 4 and second["steps"] == 2
    assert np.allclose(full["losses"][2:], second["losses"], rtol=0, atol=1e-7)
    a, b = full["model"].state_dict(), second["model"].state_dict()
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=0, atol=1e-6), k


def test_audio_loss_step(data_root, tmp_path):
    c = config(data_root, loss="audio")
    ds = build_pairs(c, "train", render_target=True)
    batch = batch_of(ds, [(0, 0), (0, 1)])
    torch.manual_seed(0)
    model = AutomixNet(**TINY)
    track, master = model(batch["stem_mels"], batch["mask"], batch["is_stereo"], batch["reference_mel"])
    pred = render_prediction(track, master, batch, SR)
    weights = {k: float(c["loss"][k]) for k in ("stft", "loudness", "spectrum", "width", "dynamics")}
    terms = audio_losses(pred, batch["target"], SR, weights)
    assert set(terms) == set(weights)
    total = sum(weights[k] * v for k, v in terms.items())
    assert torch.isfinite(total)
    total.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert float(model.track_head.weight.grad.abs().sum()) > 0
    assert float(model.encoder.out[1].weight.grad.abs().sum()) > 0
    # and one step of the trainer in audio mode
    out = train(config(data_root, loss="audio", max_steps=1, batch_size=2), tmp_path / "audio")
    assert np.isfinite(out["last_loss"])


def test_bad_config_is_one_line_exit_2(tmp_path):
    with pytest.raises(AutomixError, match="no such|not found"):
        train(config(tmp_path / "nothing", max_steps=1), tmp_path / "x")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.run([sys.executable, "-m", "training.train", f"data.root={tmp_path / 'nothing'}",
                        f"trainer.out_dir={tmp_path / 'y'}"], capture_output=True, text=True,
                       cwd=tmp_path, env=env, timeout=120)
    assert p.returncode == 2, p.stderr
    assert p.stderr.strip().count("\n") == 0 and "automix-train: error:" in p.stderr
    assert "Traceback" not in p.stderr


# --------------------------------------------------------------------------- checkpoints

def _inputs(n=3, frames=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(1, n, 2, 64, frames, generator=g) * 10 - 40, torch.ones(1, n, dtype=torch.bool),
            torch.tensor([[True, False, True][:n] + [False] * max(0, n - 3)]),
            torch.randn(1, 2, 64, frames + 5, generator=g) * 10 - 30)


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(3)
    model = AutomixNet(**TINY).eval()
    path = save_checkpoint(tmp_path / "m.pt", model, step=5, config={"a": 1})
    loaded = model_from_checkpoint(load_checkpoint(path))
    x = _inputs()
    with torch.no_grad():
        for a, b in zip(model(*x), loaded(*x)):
            assert torch.equal(a, b)


def test_checkpoint_wrong_spec_version(tmp_path):
    model = AutomixNet(**TINY)
    path = save_checkpoint(tmp_path / "m.pt", model)
    data = torch.load(path, weights_only=True)
    data["spec_version"] = 999
    torch.save(data, tmp_path / "old.pt")
    with pytest.raises(AutomixError, match="spec version 999"):
        load_checkpoint(tmp_path / "old.pt")


# --------------------------------------------------------------------------- the model's set properties

def test_model_masking_and_order_invariance():
    torch.manual_seed(4)
    model = AutomixNet(**TINY).eval()
    mels, mask, stereo, ref = _inputs()
    with torch.no_grad():
        t0, m0 = model(mels, mask, stereo, ref)
        # a padded (mask=False) track changes nothing for the others or the master
        pad = torch.cat([mels, torch.randn(1, 1, 2, 64, mels.shape[-1]) * 10 - 20], 1)
        t1, m1 = model(pad, torch.cat([mask, torch.zeros(1, 1, dtype=torch.bool)], 1),
                       torch.cat([stereo, torch.ones(1, 1, dtype=torch.bool)], 1), ref)
        assert torch.allclose(t1[:, :3], t0, atol=1e-5) and torch.allclose(m1, m0, atol=1e-5)
        # permuting the tracks permutes the track outputs; the master is unchanged
        perm = torch.tensor([2, 0, 1])
        t2, m2 = model(mels[:, perm], mask[:, perm], stereo[:, perm], ref)
        assert torch.allclose(t2, t0[:, perm], atol=1e-5) and torch.allclose(m2, m0, atol=1e-5)


# --------------------------------------------------------------------------- DDP

def _ddp_worker(rank, world, port, cfg, out, result_dir):
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank)})
    torch.set_num_threads(1)
    res = train(cfg, out)
    torch.save({k: v.detach().clone() for k, v in res["model"].state_dict().items()},
               Path(result_dir) / f"rank{rank}.pt")


def test_ddp_two_cpu_processes(data_root, tmp_path):
    import torch.multiprocessing as mp
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_worker, args=(2, port, config(data_root, max_steps=2, batch_size=2), str(tmp_path / "run"),
                   str(tmp_path)),
             nprocs=2, join=True)
    a, b = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert ckpt["step"] == 2 and ckpt["world_size"] == 2
    init = AutomixNet(**TINY).state_dict()
    changed = any(not torch.equal(init[k], a[k]) for k in a if init[k].shape == a[k].shape)
    assert changed


def test_fader_targets_are_relative_to_the_models_balance_point(data_root):
    """Training and inference share one fader convention: for a reference-balanced model the
    trainer's targets are the true faders minus ``reference_balance_db`` of the batch's own
    log-mels (what ``predict_from_mels`` adds back), so target + offset = the true fader."""
    from automix.model.features import reference_balance_db
    from automix.params import TRACK_SPECS
    from training.train import with_model_targets

    ds = build_pairs(config(data_root), "train", render_target=False)
    batch = batch_of(ds, [(0, 0), (0, 1)])
    model = AutomixNet(**TINY, relative_faders=True, fader_balance="reference")
    out = with_model_targets(model, batch)
    offsets = reference_balance_db(batch["stem_mels"], batch["mask"], batch["reference_mel"])
    assert torch.allclose(out["fader_offset_db"].float(), offsets.float(), atol=1e-5)
    gain = [s.name for s in TRACK_SPECS].index("gain_db")
    spec = TRACK_SPECS[gain]
    true = spec.to_physical(batch["track_params"][..., gain])
    back = spec.to_physical(out["track_params"][..., gain]) + out["fader_offset_db"]
    inside = batch["mask"] & ((true - offsets) > spec.minimum) & ((true - offsets) < spec.maximum)
    assert inside.sum() >= 4
    assert torch.allclose(back[inside].float(), true[inside].float(), atol=1e-3)
    assert not torch.allclose(out["track_params"][..., gain], batch["track_params"][..., gain])
