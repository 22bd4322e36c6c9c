"""The master's PLR from both sides (issue 17, the mixing cases; automix.mastering).

The limiter only lowers a master's peak-to-loudness ratio; a mix denser than the reference (a
PLR under the target's) is opened up by the glue compressor: one whose 30 ms attack lets short
transients through lowers the loudness more than the peaks.  The aim is the target PLR capped by
what the true-peak ceiling leaves at the loudness goal (ceiling - goal): the ceiling wins.
PLR here is measured independently of the search: 4x-oversampled true peak minus BS.1770
integrated loudness of the rendered audio.
"""
import numpy as np
import pytest

from automix import analysis
from automix.api import Amounts
from automix.console.blocks import compress

SR = 44100


def _notes_with_onsets(seconds: float = 12.0) -> np.ndarray:
    """A 0.6 s, 220 Hz note every second, each opening with a 2 ms, 3 kHz click, over faint
    independent noise per side: the peaks are the onsets' clicks, the loudness is the notes'
    bodies, and the 0.4 s gaps let a compressor's gain recover before the next onset."""
    rng = np.random.default_rng(3)
    n = int(seconds * SR)
    x = 0.003 * rng.standard_normal((2, n))
    t = np.arange(int(0.6 * SR)) / SR
    note = 0.25 * np.sin(2 * np.pi * 220 * t) * np.minimum(1, t / 0.005) * np.minimum(1, (0.6 - t) / 0.02)
    k = np.arange(int(0.002 * SR)) / SR
    note[:k.size] += 0.5 * np.sin(2 * np.pi * 3000 * k) * np.exp(-k / 0.0007)
    for s in range(SR // 4, n - note.size, SR):
        x[:, s:s + note.size] += note
    return x


def _plr(x: np.ndarray) -> float:
    return 20 * np.log10(analysis.true_peak_linear(x)) - analysis.integrated_loudness(x, SR)


def _flat_master() -> dict:
    import torch

    from automix.params import MASTER_SPECS, defaults
    from automix.settings import master_from_params
    return master_from_params(defaults(MASTER_SPECS, (), torch.float64))


def _plr_choice(x, chosen, aim):
    """compressor_for_plr on ``x`` under a flat master whose loudness-range choice is ``chosen``."""
    from automix.mastering import _pre_limiter, compressor_for_plr

    master = dict(_flat_master(), compressor=chosen)
    lra = analysis.loudness_range(analysis.short_term_loudness(x, SR))
    return compressor_for_plr(x, master, SR, lra, aim, _pre_limiter(x, master, SR, chosen))


def test_compressor_for_plr_opens_up_a_dense_mix():
    """Short of the aim by more than PLR_SHORT_DB: a compressor is chosen whose exact render
    raises the PLR by over 2 dB with attack 30 ms (the clicks pass, the notes' bodies are turned
    down); a loudness-range choice that already leaves the PLR within PLR_SHORT_DB of the aim,
    or a mix already there, is kept (None)."""
    from automix.mastering import PLR_SHORT_DB

    x = _notes_with_onsets()
    plr = _plr(x)
    # the flat master chain (a 20 Hz high-pass) moves this mix's PLR by well under 0.5 dB
    assert _plr_choice(x, {}, plr + PLR_SHORT_DB - 0.5) is None
    idle = {"threshold_db": 0.0, "ratio": 1.5, "attack_ms": 30.0, "release_ms": 300.0,
            "knee_db": 6.0, "makeup_db": 0.0}   # never reached: changes nothing
    comp = _plr_choice(x, idle, plr + 6.0)
    assert comp and comp["attack_ms"] == 30.0 and comp["ratio"] > 1
    opened = _plr(compress(x, comp, SR))
    assert opened > plr + 2.0
    # that compressor as the loudness-range choice: within reach of an aim it already meets
    assert _plr_choice(x, comp, opened - 0.2) is None


def _reference(x: np.ndarray, plr_db: float) -> dict:
    """The mix's own analysis with another PLR (tone, width and loudness range as the mix's)."""
    return dict(analysis.analyze(x, SR), plr_db=plr_db)


def _master(x, ref, target_lufs, monkeypatch=None):
    from automix import mastering

    if monkeypatch is not None:  # the stage as it was: the loudness-range choice only
        monkeypatch.setattr(mastering, "compressor_for_plr", lambda *a: None)
    features, spectra = mastering.measure_mix(x, SR)
    master, goal, final = mastering.master_stage(x, SR, ref, features, target_lufs, -1.0,
                                                 Amounts(), refine_steps=5, spectra=spectra)
    return master, goal, final


def test_master_reaches_toward_a_higher_reference_plr(monkeypatch):
    """Room under the ceiling (goal -20 LUFS, ceiling -1 dBTP: up to 19 dB of PLR) and a
    reference at 18 dB: the master's PLR rises by over 2 dB against the stage without the PLR
    choice, it peaks under the ceiling and is no further from the reference's PLR."""
    x = _notes_with_onsets()
    ref = _reference(x, 18.0)
    master, goal, final = _master(x, ref, -20.0)
    assert goal == -20.0 and master["compressor"]
    new = _plr(final)
    assert 20 * np.log10(analysis.true_peak_linear(final)) <= -1.0 + 1e-6
    assert analysis.integrated_loudness(final, SR) == pytest.approx(-20.0, abs=0.1)
    old_master, _, old_final = _master(x, ref, -20.0, monkeypatch)
    assert not old_master["compressor"]
    old = _plr(old_final)
    assert new > old + 2.0 and abs(new - 18.0) < abs(old - 18.0)


def test_ceiling_wins_over_plr_matching(monkeypatch):
    """A loudness goal of -8 LUFS under a -1 dBTP ceiling leaves at most 7 dB of PLR (true peak
    <= ceiling, loudness = goal), under the mix's own: no compressor is chosen for PLR, the
    limiter holds the master at that floor, and the PLR error left is the reference's PLR minus
    (ceiling - goal), the floor the ceiling sets."""
    x = _notes_with_onsets()
    assert _plr(x) > 7.5
    ref = _reference(x, 18.0)
    master, goal, final = _master(x, ref, -8.0)
    assert not master["compressor"]
    tp = 20 * np.log10(analysis.true_peak_linear(final))
    lufs = analysis.integrated_loudness(final, SR)
    assert tp <= -1.0 + 1e-6 and lufs == pytest.approx(-8.0, abs=0.1)
    assert _plr(final) == pytest.approx(-1.0 - goal, abs=0.3)
    assert 18.0 - _plr(final) == pytest.approx(18.0 - 7.0, abs=0.3)
