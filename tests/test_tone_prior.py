"""The tone prior: per-track shelves from each stem's spectrum shape (automix/model/tone_prior.py,
training/tone_prior.py)."""
import numpy as np
import pytest
import scipy.signal
import torch

from automix.dsp.eq import biquad_coefficients
from automix.model import predict_from_mels, song_mels
from automix.model.checkpoint import load_model, save_checkpoint
from automix.model.net import AutomixNet
from automix.model.tone_prior import SHELF_HZ, SHELF_Q, mel_power, shape_db
from training.tone_prior import (cross_validate, draw, mean_bin_power, ridge, shelf_power, shelved_shape,
                                 with_prior)

SR = 44100


def _shelf(x, kind, gain_db):
    freq = SHELF_HZ[0] if kind == "lowshelf" else SHELF_HZ[1]
    c = [float(v) for v in biquad_coefficients(kind, torch.tensor(freq, dtype=torch.float64), gain_db,
                                              SHELF_Q, SR)]
    return scipy.signal.lfilter(c[:3], [1.0, *c[3:]], x, axis=-1)


def _coloured(rng, seconds=6.0, tilt_db_per_oct=-3.0):
    """Stereo noise with a spectral tilt (an FIR): a stem with content everywhere."""
    n = int(seconds * SR)
    f = np.fft.rfftfreq(n, 1 / SR)
    mag = np.where(f > 20, (np.maximum(f, 20) / 1000) ** (tilt_db_per_oct / 20 / np.log10(2)), 0)
    spec = (rng.standard_normal((2, len(f))) + 1j * rng.standard_normal((2, len(f)))) * mag
    x = np.fft.irfft(spec, n)
    return 0.1 * x / np.abs(x).max()


def test_shelved_shape_equals_the_shape_of_shelved_audio():
    """A shelf multiplies the mean power per bin by |H|^2: the feature-domain shelving agrees
    with filtering the audio, to within the STFT's leakage at the 120 Hz corner."""
    rng = np.random.default_rng(3)
    x = _coloured(rng)
    p = mean_bin_power(x, SR)
    for low, high in ((4.0, -3.0), (-4.0, 4.0)):
        y = _shelf(_shelf(x, "lowshelf", low), "highshelf", high)
        mels = song_mels(y[None], SR)[0]
        measured = shape_db(mel_power(mels)).numpy()
        predicted = shelved_shape(p, np.array([low]), np.array([high]), SR)[0]
        assert np.abs(measured - predicted).max() < 0.3, np.abs(measured - predicted).max()
        # and the shelves moved the ends as they should: low end up/down by ~low, top by ~high
        base = shelved_shape(p, np.zeros(1), np.zeros(1), SR)[0]
        ends = (predicted - base) - (predicted - base)[30]   # re a mid band (~1 kHz)
        assert abs(ends[0] - low) < 0.6 and abs(ends[-1] - high) < 1.0


def test_ridge_recovers_shelves_on_a_family_of_known_shape():
    """Stems of one natural shape (a -3 dB/oct tilt, random noise): every shape difference is the
    shelves, so the cross-validated prior recovers them almost exactly.  Stems whose natural
    tone already carries random shelves of the same spread (+-4 dB) are ambiguous: the best any
    predictor can do from the observed shelf n + s is r = sd(s) / sd(n + s) = 1/sqrt(2)."""
    rng = np.random.default_rng(0)
    p = mean_bin_power(_coloured(rng, 3.0), SR)
    same = [(f"s{k}", SR, [p * np.exp(0.05 * rng.standard_normal(p.shape))]) for k in range(10)]
    x, y, g = draw(same, 40, 4.0)
    scores = cross_validate(x, y, g)
    assert max(min(r) for r in scores.values()) > 0.95, scores
    varied = []
    for k in range(40):
        n_low, n_high = rng.uniform(-4, 4, 2)
        natural = p * shelf_power(np.array([n_low]), "lowshelf", SR, len(p))[0] \
            * shelf_power(np.array([n_high]), "highshelf", SR, len(p))[0]
        varied.append((f"v{k}", SR, [natural]))
    xv, yv, gv = draw(varied, 40, 4.0)
    best = max(cross_validate(xv, yv, gv).values(), key=sum)
    assert best == pytest.approx((2 ** -0.5, 2 ** -0.5), abs=0.06), best


def test_a_fitted_prior_sets_the_shelves_that_undo_a_new_stem(tmp_path):
    """End to end: the prior fitted on one family, saved in a checkpoint and loaded with
    weights_only, gives a new shelved stem of that family the console's shelves that undo it."""
    rng = np.random.default_rng(1)
    x = _coloured(rng, 4.0)
    p = mean_bin_power(x, SR)
    songs = [(f"s{k}", SR, [p * np.exp(0.05 * rng.standard_normal(p.shape))]) for k in range(8)]
    xs, ys, _ = draw(songs, 60, 4.0)
    w, b = ridge(xs, ys, 0.1)
    base = AutomixNet(dim=32, depth=1, heads=2)
    ckpt = {"model_config": dict(base.config), "model": base.state_dict()}
    path = save_checkpoint(tmp_path / "prior.pt", with_prior(ckpt, w, b))
    model = load_model(path)
    assert model.config["tone_prior"] and model.tone_prior is not None
    low, high = 3.0, -2.5
    y = _shelf(_shelf(x, "lowshelf", low), "highshelf", high)
    mels = song_mels(y[None], SR)
    tracks, _ = predict_from_mels(model, mels, [True], song_mels(x[None], SR)[0])
    assert tracks["eq1_lowshelf.freq_hz"][0] == SHELF_HZ[0] and tracks["eq5_highshelf.q"][0] == SHELF_Q
    assert tracks["eq1_lowshelf.gain_db"][0] == pytest.approx(-low, abs=0.5)
    assert tracks["eq5_highshelf.gain_db"][0] == pytest.approx(-high, abs=0.5)


def test_a_network_without_a_prior_keeps_its_own_shelves():
    torch.manual_seed(0)
    model = AutomixNet(dim=32, depth=1, heads=2)
    assert model.tone_prior is None and not any(k.startswith("tone_prior") for k in model.state_dict())
