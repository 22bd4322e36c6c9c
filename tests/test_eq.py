"""EQ against an independent RBJ cookbook implementation evaluated with scipy.signal.freqz."""
import numpy as np
import pytest
import scipy.signal
import torch

from automix.dsp.eq import Band, EqState, eq_fsm


def cookbook(kind, f0, gain_db, q, fs):
    """Audio EQ Cookbook (R. Bristow-Johnson), written out independently of automix."""
    A = 10 ** (gain_db / 40)
    w0 = 2 * np.pi * f0 / fs
    c, s = np.cos(w0), np.sin(w0)
    al = s / (2 * q)
    if kind == "highpass":
        b = [(1 + c) / 2, -(1 + c), (1 + c) / 2]
        a = [1 + al, -2 * c, 1 - al]
    elif kind == "peak":
        b = [1 + al * A, -2 * c, 1 - al * A]
        a = [1 + al / A, -2 * c, 1 - al / A]
    elif kind == "lowshelf":
        r = 2 * np.sqrt(A) * al
        b = [A * ((A + 1) - (A - 1) * c + r), 2 * A * ((A - 1) - (A + 1) * c),
             A * ((A + 1) - (A - 1) * c - r)]
        a = [(A + 1) + (A - 1) * c + r, -2 * ((A - 1) + (A + 1) * c), (A + 1) + (A - 1) * c - r]
    elif kind == "highshelf":
        r = 2 * np.sqrt(A) * al
        b = [A * ((A + 1) + (A - 1) * c + r), -2 * A * ((A - 1) + (A + 1) * c),
             A * ((A + 1) + (A - 1) * c - r)]
        a = [(A + 1) - (A - 1) * c + r, 2 * ((A - 1) - (A + 1) * c), (A + 1) - (A - 1) * c - r]
    return np.array(b), np.array(a)


def random_bands(rng, fs):
    bands = [("highpass", rng.uniform(20, 200), 0.0, rng.uniform(0.5, 1.5)),
             ("peak", 30.0, rng.choice([-9.0, 9.0]), 8.0),            # the hard low, narrow band
             ("lowshelf", rng.uniform(40, 400), rng.uniform(-12, 12), rng.uniform(0.4, 1.4)),
             ("peak", rng.uniform(200, 6000), rng.uniform(-12, 12), rng.uniform(0.3, 6)),
             ("highshelf", 18000.0, rng.uniform(-12, 12), 0.707)]
    return bands


def analytic_db(bands, freqs, fs):
    h = np.ones(len(freqs), complex)
    for kind, f0, g, q in bands:
        b, a = cookbook(kind, f0, g, q, fs)
        h *= scipy.signal.freqz(b, a, worN=freqs, fs=fs)[1]
    return 20 * np.log10(np.abs(h))


def measured_db(y, fs, freqs):
    spec = np.fft.rfft(y)
    bins = np.fft.rfftfreq(len(y), 1 / fs)
    return np.interp(freqs, bins, 20 * np.log10(np.abs(spec)))


@pytest.mark.parametrize("fs", [44100, 48000])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_eq_magnitude_matches_cookbook(fs, seed):
    rng = np.random.default_rng(seed)
    bands = random_bands(rng, fs)
    n = 1 << 18  # 0.17 Hz bins: fine enough to sample a Q 8 band at 30 Hz
    freqs = np.geomspace(20, 20000, 400)
    # interpolating the measured spectrum needs bins exactly at the frequencies; evaluate there
    freqs = np.round(freqs * n / fs) * fs / n
    expected = analytic_db(bands, freqs, fs)
    impulse = np.zeros(n)
    impulse[0] = 1.0
    tb = [Band(k, torch.tensor(f, dtype=torch.float64), torch.tensor(q, dtype=torch.float64),
               None if k == "highpass" else torch.tensor(g, dtype=torch.float64))
          for k, f, g, q in bands]
    train = eq_fsm(torch.tensor(impulse)[None], tb, fs)[0].numpy()
    render_bands = [Band(k, f, q, None if k == "highpass" else g) for k, f, g, q in bands]
    render = EqState(render_bands, fs, 1).process(impulse[None])[0]
    for y in (train, render):
        err = np.abs(measured_db(y, fs, freqs) - expected)
        assert err.max() < 0.05, f"max error {err.max():.3f} dB at {freqs[err.argmax()]:.0f} Hz"


def test_eq_render_blocks_equal_whole(rng):
    x = rng.standard_normal((2, 30000))
    bands = [Band("peak", 100.0, 4.0, 6.0), Band("highshelf", 5000.0, 0.7, -3.0)]
    whole = EqState(bands, 44100, 2).process(x)
    st = EqState(bands, 44100, 2)
    blocks = np.concatenate([st.process(x[:, i:i + 777]) for i in range(0, 30000, 777)], -1)
    np.testing.assert_allclose(blocks, whole, atol=1e-12)
