"""The loudness goal of an unmastered reference (issue 17 item 3, automix.mastering.reference_loudness).

A reference peaking far above the ceiling with an unlimited peak-to-loudness ratio (an unmastered
float bounce) gets a loudness goal lowered by its true peak over ceiling + 2.5 dB, said in a note;
ordinary references (a dense one at -1 dBTP, a sparse one at +1 dBTP) keep their loudness;
``--target-lufs`` overrides the rule.  Loudness and true peak are measured independently of the
rule (automix.analysis, BS.1770 / 4x oversampled peak).
"""
import numpy as np
import pytest
import soundfile as sf

import automix
from automix import analysis
from automix.mastering import UNMASTERED_MARGIN_DB, reference_loudness

SR = 44100
CEILING = -1.0


def _sparse_hits(seconds: float, seed: int) -> np.ndarray:
    """Unlimited material: decaying 70 Hz + click hits every 0.5 s over quiet noise, PLR > 14 dB."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(int(0.15 * SR)) / SR
    hit = np.sin(2 * np.pi * 70 * t) * np.exp(-t / 0.03)
    hit[:40] += np.hanning(80)[:40] * rng.standard_normal(40) * 0.5
    x = 0.01 * rng.standard_normal((2, n))
    for s in range(0, n - hit.size, SR // 2):
        x[:, s:s + hit.size] += hit
    return x


def _dense(seconds: float, seed: int) -> np.ndarray:
    """Dense material (noise with a slow swell): a mastered-like PLR around 11-13 dB."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    swell = 1 + 0.3 * np.sin(2 * np.pi * 0.5 * np.arange(n) / SR)
    return np.clip(rng.standard_normal((2, n)), -3.5, 3.5) * swell


def _at_true_peak(x: np.ndarray, dbtp: float) -> np.ndarray:
    return x * 10 ** (dbtp / 20) / analysis.true_peak_linear(x)


def _write(path, x):
    sf.write(path, x.T.astype(np.float32), SR, subtype="FLOAT")  # float: may exceed full scale
    return path


@pytest.fixture(scope="module")
def mix_file(tmp_path_factory):
    # the mix to master: a different take of the sparse material, quiet (-20 LUFS-ish)
    x = _sparse_hits(4.0, 1)
    x *= 10 ** ((-20 - analysis.integrated_loudness(x, SR)) / 20)
    return _write(tmp_path_factory.mktemp("mix") / "mix.wav", x)


def _ref(tmp_path, make, dbtp):
    x = _at_true_peak(make(4.0, 2), dbtp)
    return _write(tmp_path / f"ref_{dbtp:+g}.wav", x), analysis.analyze(x, SR)


def _lowering_note(notes):
    return [n for n in notes if "unmastered" in n]


def test_unmastered_reference_gets_a_lower_goal_and_a_note(tmp_path, mix_file):
    ref, feats = _ref(tmp_path, _sparse_hits, 6.0)
    assert feats["true_peak_dbtp"] == pytest.approx(6.0, abs=0.01) and feats["plr_db"] > 14.5
    r = automix.master(mix_file, ref, ceiling=CEILING)
    expected = feats["integrated_lufs"] - (6.0 - CEILING - UNMASTERED_MARGIN_DB)  # PLR >= 14: all of it
    assert r.settings["target"]["lufs"] == pytest.approx(expected, abs=0.05)
    assert r.settings["target"]["lufs"] < feats["integrated_lufs"] - 4.0
    got = analysis.analyze(r.master, SR)
    assert got["integrated_lufs"] == pytest.approx(expected, abs=0.5)
    assert got["true_peak_dbtp"] <= CEILING + 0.1
    note = _lowering_note(r.notes)
    assert len(note) == 1 and "--target-lufs" in note[0] and f"{6.0 - CEILING - UNMASTERED_MARGIN_DB:.1f} LU lower" in note[0]


@pytest.mark.parametrize("make,dbtp", [(_dense, -1.0), (_sparse_hits, 1.0)])
def test_ordinary_references_keep_their_loudness(tmp_path, mix_file, make, dbtp):
    ref, feats = _ref(tmp_path, make, dbtp)
    assert feats["true_peak_dbtp"] == pytest.approx(dbtp, abs=0.01)
    r = automix.master(mix_file, ref, ceiling=CEILING)
    assert r.settings["target"]["lufs"] == pytest.approx(feats["integrated_lufs"], abs=1e-6)  # untouched
    got = analysis.analyze(r.master, SR)
    assert abs(got["integrated_lufs"] - feats["integrated_lufs"]) < 0.5
    assert not _lowering_note(r.notes)


def test_target_lufs_overrides_the_rule(tmp_path, mix_file):
    ref, feats = _ref(tmp_path, _sparse_hits, 6.0)
    r = automix.master(mix_file, ref, ceiling=CEILING, target_lufs=-9.0)
    assert r.settings["target"]["lufs"] == -9.0 and r.settings["target"]["source"] == "target_lufs"
    assert not _lowering_note(r.notes)


def test_dense_master_far_over_the_ceiling_keeps_its_loudness():
    # a clipped loud master decoded from MP3 (measured: +5.9 dBTP, PLR 9.7) is a master
    lufs = -3.8
    assert reference_loudness({"integrated_lufs": lufs, "true_peak_dbtp": 5.9, "plr_db": 9.7},
                              CEILING) == (lufs, 0.0)
    # between PLR 13 and 14 dB the lowering fades in linearly: half of it at 13.5
    goal, lowered = reference_loudness({"integrated_lufs": -10.0, "true_peak_dbtp": 3.5, "plr_db": 13.5},
                                       CEILING)
    assert lowered == pytest.approx(0.5 * (3.5 - CEILING - UNMASTERED_MARGIN_DB)) and goal == -10.0 - lowered
