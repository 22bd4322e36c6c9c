"""The two executors agree; every parameter gets a gradient; gradchecks on small inputs."""
import numpy as np
import pytest
import torch

from automix.console import console, master_chain, track_strips
from automix.params import MASTER_SPECS, TRACK_SPECS, defaults, to_normalized, to_physical
from automix.render import render_master, render_mix
from automix.settings import settings_from_params, validate

from conftest import ArraySource, random_params

SR = 44100


def song(rng, n_tracks, length):
    """Noise bursts with a level envelope (so compressors move), some mono tracks."""
    env = np.repeat(rng.uniform(0.02, 0.6, (n_tracks, length // 2000 + 1)), 2000, -1)[:, :length]
    x = rng.standard_normal((n_tracks, 2, length)) * env[:, None]
    is_stereo = np.array([i % 3 != 1 for i in range(n_tracks)])
    x[~is_stereo, 1] = x[~is_stereo, 0]
    return x, is_stereo


@pytest.mark.parametrize("seed", [0, 1])
def test_training_path_agrees_with_render_path(seed, rng):
    n_tracks, length, preroll = 4, SR * 2, SR // 2
    x, is_stereo = song(np.random.default_rng(seed), n_tracks, length)
    g = torch.Generator().manual_seed(seed)
    tp = random_params(TRACK_SPECS, (1, n_tracks), g, torch.float32)
    mp = random_params(MASTER_SPECS, (1,), g, torch.float32)
    mp["gain_db"] = torch.tensor([12.0])  # drive the limiter
    mix, master = console(torch.tensor(x, dtype=torch.float32)[None],
                          torch.ones(1, n_tracks, dtype=torch.bool),
                          torch.tensor(is_stereo)[None], tp, mp, SR)
    names = [f"t{i}" for i in range(n_tracks)]
    settings = validate(settings_from_params(names, names, {k: v[0] for k, v in tp.items()},
                                             {k: v[0] for k, v in mp.items()}, SR))
    sources = [ArraySource(x[i] if is_stereo[i] else x[i, :1]) for i in range(n_tracks)]
    with torch.inference_mode():
        rmix = render_mix(sources, settings["tracks"], SR, length, block=10007)
        rmaster = render_master(rmix, settings["master"], SR, block=7919)
    for train, render in ((mix[0].numpy(), rmix), (master[0].numpy(), rmaster)):
        err = np.abs(train[:, preroll:] - render[:, preroll:]).max()
        assert 20 * np.log10(err / np.abs(render).max()) < -80


def test_padding_tracks_contribute_nothing(rng):
    x, is_stereo = song(rng, 3, 4000)
    g = torch.Generator().manual_seed(3)
    tp = random_params(TRACK_SPECS, (1, 3), g)
    mp = random_params(MASTER_SPECS, (1,), g)
    stems = torch.tensor(x)[None]
    mask = torch.tensor([[True, True, False]])
    mix, _ = console(stems, mask, torch.tensor(is_stereo)[None], tp, mp, 8000)
    two = {k: v[:, :2] for k, v in tp.items()}
    mix2, _ = console(stems[:, :2], mask[:, :2], torch.tensor(is_stereo)[None, :2], two, mp, 8000)
    torch.testing.assert_close(mix, mix2)


def active_params(n_tracks, dtype=torch.float64):
    """Settings under which every processor acts on the test signal (so every gradient is
    non-zero): boosts/cuts in every band, compressors over threshold, limiter engaged."""
    tp = defaults(TRACK_SPECS, (1, n_tracks), dtype)
    mp = defaults(MASTER_SPECS, (1,), dtype)
    for p in (tp, mp):
        for i, kind in enumerate(("lowshelf", "peak", "peak", "peak", "highshelf"), start=1):
            p[f"eq{i}_{kind}.gain_db"] = p[f"eq{i}_{kind}.gain_db"] + 3.0
        p["eq0_highpass.freq_hz"] = p["eq0_highpass.freq_hz"] * 3
        p["comp.threshold_db"] = p["comp.threshold_db"] - 30.0
        p["comp.ratio"] = p["comp.ratio"] * 4
        p["comp.knee_db"] = p["comp.knee_db"] * 0 + 6.0
        p["comp.makeup_db"] = p["comp.makeup_db"] + 1.0
    tp["pan"] = tp["pan"] + 0.3
    tp["width"] = tp["width"] * 1.2
    mp["width"] = mp["width"] * 1.1
    mp["gain_db"] = mp["gain_db"] + 20.0
    return tp, mp


def test_every_parameter_gets_a_finite_nonzero_gradient(rng):
    x, is_stereo = song(rng, 3, 11025)
    tp, mp = active_params(3)
    leaves = {("track", k): v.clone().requires_grad_() for k, v in tp.items()}
    leaves.update({("master", k): v.clone().requires_grad_() for k, v in mp.items()})
    mix, master = console(torch.tensor(x)[None], torch.ones(1, 3, dtype=torch.bool),
                          torch.tensor(is_stereo)[None],
                          {k: leaves["track", k] for k in tp}, {k: leaves["master", k] for k in mp},
                          22050)  # every band's default frequency below Nyquist
    target = torch.tensor(rng.standard_normal(master.shape)) * 0.1
    loss = (master - target).pow(2).mean() + (mix - target).abs().mean()
    loss.backward()
    for (where, name), leaf in leaves.items():
        grad = leaf.grad
        assert grad is not None and torch.isfinite(grad).all(), (where, name)
        if where == "track" and name == "width":
            grad = grad[:, is_stereo]  # width does nothing to a mono source
        assert (grad.abs() > 0).all(), (where, name)


def test_console_gradcheck_small(rng):
    x, is_stereo = song(rng, 2, 48)
    tp, mp = active_params(2)
    names = ["eq3_peak.gain_db", "comp.threshold_db", "comp.attack_ms", "pan", "gain_db"]
    stems = torch.tensor(x)[None]

    def f(*values):
        p = dict(tp)
        p.update(zip(names, values))
        return track_strips(stems, torch.tensor(is_stereo)[None], p, 8000)

    args = [tp[n].clone().requires_grad_() for n in names]
    assert torch.autograd.gradcheck(f, args, atol=1e-6)

    mix = stems.sum(1) * 3
    mnames = ["eq5_highshelf.freq_hz", "comp.release_ms", "width", "limiter.ceiling_dbtp"]

    def m(*values):
        p = dict(mp)
        p.update(zip(mnames, values))
        p["gain_db"] = p["gain_db"] * 0
        return master_chain(mix, p, 8000)

    assert torch.autograd.gradcheck(m, [mp[n].clone().requires_grad_() for n in mnames], atol=1e-6)


def test_normalized_mapping_round_trip():
    g = torch.Generator().manual_seed(0)
    for specs in (TRACK_SPECS, MASTER_SPECS):
        n = torch.rand(5, len(specs), generator=g, dtype=torch.float64)
        torch.testing.assert_close(to_normalized(to_physical(n, specs), specs), n)
        d = defaults(specs, (), torch.float64)
        for s in specs:
            assert s.minimum <= s.default <= s.maximum
            assert float(s.to_physical(0.0)) == pytest.approx(s.minimum)
            assert float(s.to_physical(1.0)) == pytest.approx(s.maximum)
        assert ((to_normalized(d, specs) >= 0) & (to_normalized(d, specs) <= 1)).all()
