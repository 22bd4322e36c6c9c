"""The real-music benchmark's own code (benchmarks/data.py, benchmarks/run.py) on tiny synthetic
audio: no network, no Debian packages; the Matchering check is skipped when it is not installed."""
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from automix import analysis  # noqa: E402
from benchmarks import data, run  # noqa: E402

SR = 44100


def noise(seconds, seed=0, channels=2):
    return np.random.default_rng(seed).standard_normal((channels, int(seconds * SR))) * 0.1


# --- log-mel distance --------------------------------------------------------------------------

def test_logmel_distance_zero_for_identical_and_level_only_changes():
    x = noise(3.0)
    assert run.logmel_distance(x, x, SR) == pytest.approx(0.0, abs=1e-9)
    # one level-aligning gain: a pure gain change costs nothing
    assert run.logmel_distance(0.3 * x, x, SR) == pytest.approx(0.0, abs=1e-6)
    assert run.logmel_distance(x, 0.3 * x, SR) == pytest.approx(0.0, abs=1e-6)


def test_logmel_distance_of_a_known_change():
    x = noise(4.0, seed=1)
    y = x.copy()
    y[:, : y.shape[1] // 2] *= 2.0          # +6.02 dB on half the frames
    # whatever single gain aligns them, half the cells stay 6.02 dB apart: mean 3.01 dB
    assert run.logmel_distance(y, x, SR) == pytest.approx(3.01, abs=0.15)
    # a 6 dB cut of everything above 4 kHz (about 1/4 of the mel bands at 44.1 kHz, 128 bands)
    from scipy.signal import butter, sosfiltfilt
    high = sosfiltfilt(butter(8, 4000, "highpass", fs=SR, output="sos"), x, axis=-1)
    low = x - high
    d = run.logmel_distance(low + 0.5 * high, x, SR)
    assert 0.8 < d < 2.5


def test_logmel_distance_pads_and_handles_mono():
    x = noise(2.0, seed=2)
    mono = x[:1]
    assert run.logmel_distance(mono, np.repeat(mono, 2, axis=0), SR) == pytest.approx(0.0, abs=1e-9)
    assert run.logmel_distance(x[:, :-1000], x, SR) < 0.5


# --- baselines ---------------------------------------------------------------------------------

def test_equal_loudness_baseline_makes_stems_equally_loud():
    stems = {"quiet": noise(3.0, 3) * 0.05, "loud": noise(3.0, 4) * 2.0, "mid": noise(3.0, 5)}
    gains = run.equal_loudness_gains(stems, SR)
    for name, x in stems.items():
        assert analysis.integrated_loudness(gains[name] * x, SR) == pytest.approx(run.EQUAL_LOUDNESS_LUFS, abs=0.05)
    mix = run.equal_loudness_sum(stems, SR)
    assert analysis.analyze(mix, SR)["true_peak_dbtp"] <= run.CEILING_DBTP + 1e-6
    # never turned up: the sum of -23 LUFS stems of quiet material keeps its level
    soft = {k: v * 1e-3 for k, v in stems.items()}
    quiet_mix = run.equal_loudness_sum(soft, SR)
    expected = sum(run.equal_loudness_gains(soft, SR)[k] * v for k, v in soft.items())
    if analysis.true_peak_linear(expected) <= 10 ** (run.CEILING_DBTP / 20):
        np.testing.assert_allclose(quiet_mix, expected)


def test_equal_loudness_leaves_silent_stems_alone():
    stems = {"a": noise(2.0, 6), "silent": np.zeros((2, 2 * SR))}
    gains = run.equal_loudness_gains(stems, SR)
    assert gains["silent"] == 1.0


def test_plain_sum():
    a, b = noise(1.0, 7), noise(1.0, 8)
    np.testing.assert_allclose(run.plain_sum({"a": a, "b": b}), a + b)


# --- cases -------------------------------------------------------------------------------------

TEST_MODE = data.Mode("test", 2.0, (), None, 1, True, 0)


def test_loudest_window_finds_the_loud_part_and_respects_exclusion():
    x = noise(10.0, 9) * 0.01
    x[:, 6 * SR:8 * SR] *= 100
    start = data.loudest_window(x, SR, 2.0)
    assert start == 6 * SR
    other = data.loudest_window(x, SR, 2.0, exclude=(start, start + 2 * SR))
    assert other + 2 * SR <= start or other >= start + 2 * SR


def test_case_builder_is_deterministic(tmp_path):
    m1 = data.synthetic_material(tmp_path / "m1", seconds=6.0, references=2)
    m2 = data.synthetic_material(tmp_path / "m2", seconds=6.0, references=2)
    c1 = data.build_cases(m1, tmp_path / "c1", TEST_MODE, engine="scipy", log=lambda *_: None)
    c2 = data.build_cases(m2, tmp_path / "c2", TEST_MODE, engine="scipy", log=lambda *_: None)
    assert [c.kind for c in c1] == ["mixing", "mastering", "known_target"]
    assert [c.id for c in c1] == [c.id for c in c2]
    assert [data.case_digest(a) for a in c1] == [data.case_digest(b) for b in c2]
    for case in c1:
        assert (case.dir / "COPYRIGHT.synthetic").is_file()     # provenance travels with the data
        ref, sr = data.read(case.path(case.reference)), SR
        assert ref.shape[1] == int(TEST_MODE.excerpt_s * sr)
    known = c1[2]
    target = data.read(known.path(known.target))
    stems = sorted((known.dir / "stems").glob("*.wav"))
    assert target.shape[1] == int(TEST_MODE.excerpt_s * SR)
    assert all(data.read(p).shape[1] == target.shape[1] for p in stems)
    assert known.info["engine"] == "scipy"
    assert json.loads((known.dir / "case.json").read_text())["info"]["engineer_settings"]["master"]
    # an unchanged recipe keeps the built case (same files, not rebuilt)
    again = data.build_cases(m1, tmp_path / "c1", TEST_MODE, engine="scipy", log=lambda *_: None)
    assert [data.case_digest(a) for a in again] == [data.case_digest(a) for a in c1]


def test_engineer_chain_reaches_its_loudness_and_stays_under_its_limit():
    rng = np.random.default_rng(0)
    stems = {"a": noise(4.0, 10), "b": noise(4.0, 11) * 0.2}
    settings = data.engineer_settings(rng, sorted(stems))
    master = data.engineer_mix(stems, SR, settings, data.engineer_engine(SR, "scipy"))
    assert analysis.integrated_loudness(master, SR) == pytest.approx(settings["master"]["target_lufs"], abs=0.3)
    assert np.abs(master).max() <= 10 ** (-1.0 / 20) + 1e-9


# --- child processes and the report ------------------------------------------------------------

def test_child_peak_memory_is_the_childs_own(tmp_path):
    ballast = np.ones(400 * 2 ** 20 // 8)      # this process holds > 400 MiB
    ballast[::4096] = 2.0
    r = run.run_child([sys.executable, "-c", "import numpy as np; a = np.ones(50 * 2**20 // 8); a[::512] = 2"],
                      tmp_path / "child.log")
    assert r["returncode"] == 0 and r["wall_s"] > 0
    assert 40 < r["peak_rss_mib"] < 350
    bad = run.run_child([sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"], tmp_path / "bad.log")
    assert bad["returncode"] == 3 and "boom" in bad["error"]
    del ballast


def _fake_record(kind, i):
    def sysm(x, tp):
        return {"loudness_error_lu": x, "true_peak_dbtp": tp, "tp_ok": tp <= -1.0,
                "tonal_mid_error_db": x, "tonal_side_error_db": x, "width_error_db": x,
                "plr_error_db": x, "lra_error_lu": x, "wall_s": 1.0 + x, "peak_rss_mib": 100.0,
                "tonal_mid_db": [0.0] * 27, **({"logmel_distance_db": x} if kind == "known_target" else {})}
    systems = {n: sysm(0.5 + i, -1.5) for n in run.SYSTEMS[kind]}
    systems["matchering"] = sysm(1.0 + i, 0.5)
    return {"id": f"{kind}{i}", "kind": kind, "n_stems": 2, "duration_s": 30.0, "systems": systems,
            "basis_tonal_mid_db": [0.0] * 27, "time_ratio_automix_over_matchering": 0.75,
            "basis_true_peak_dbtp": (-2.0, 0.5)[i]}


def test_summary_and_markdown(tmp_path):
    records = [_fake_record(k, i) for k in ("mixing", "mastering", "known_target") for i in range(2)]
    summary = run.summarize(records)
    s = summary["known_target"]
    assert s["systems"]["automix"]["logmel_distance_db"] == pytest.approx(1.0)
    assert s["systems"]["matchering"]["tp_pass"] == "0/2"
    assert s["automix_vs_matchering"]["tonal_mid_error_db"]["automix_better"] == 2
    assert s["time_ratio_median"] == pytest.approx(0.75)
    assert s["plr_floor_db"] == pytest.approx((0.0 + 1.5) / 2)  # only the +0.5 dBTP basis has one
    result = {"started": "now", "mode": "test", "elapsed_s": 1.0, "data": {}, "engines": ["scipy"],
              "machine": {"cpu": "cpu", "cores": 2, "load_start": "0", "load_end": "0"},
              "cases": records, "summary": summary, "scaling": None}
    md = run.markdown(result)
    assert "Known-target cases" in md and "`automix`" in md and "log-mel" in md
    assert "ceiling (where the target peaks above it" in md and "mean 0.75 dB" in md
    assert run.plots(result, tmp_path)      # the tonal-balance plot


@pytest.mark.skipif(importlib.util.find_spec("matchering") is None, reason="matchering not installed")
def test_matchering_runs_on_a_tiny_case(tmp_path):
    m = data.synthetic_material(tmp_path / "m", seconds=4.0, references=1)
    target = sum(data.read(p) for p in m.stem_sets[0].stems.values()) * 0.3
    data.write(tmp_path / "target.wav", target)
    r = run.run_matchering(tmp_path / "target.wav", m.references[0].path, tmp_path / "out.wav")
    assert r["returncode"] == 0, r
    out = data.read(tmp_path / "out.wav")
    a, b = analysis.analyze(out, SR), analysis.analyze(data.read(m.references[0].path), SR)
    assert analysis.loudness_error_lu(a, b) < 3.0
