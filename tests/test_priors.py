"""Console-setting priors: schema, ranges, documented statistics, seeding (training/priors.py)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

try:
    import training  # noqa: F401
except ImportError:  # the repository root is not on sys.path (training/ not installed)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from automix.errors import AutomixError
from training.priors import EQ_LAYOUT, PriorConfig, prior_config, sample_settings, track_role

NAMES = ["Kick In", "Snare Top", "Bass DI", "Lead Vox", "Gtr L", "Gtr R", "Keys", "OH"]
TRACK_KEYS = {"name", "file", "eq", "compressor", "gain_db", "pan", "width", "mute"}
COMP_KEYS = {"threshold_db", "ratio", "attack_ms", "release_ms", "knee_db", "makeup_db"}


@pytest.fixture(scope="module")
def draws():
    rng = np.random.default_rng(0)
    return [sample_settings(NAMES, rng) for _ in range(600)]


def test_schema_and_fixed_eq_layout():
    s = sample_settings(NAMES, 1, sample_rate=48000)
    assert s["format"] == "automix.settings" and s["version"] == 1 and s["sample_rate"] == 48000
    assert [t["name"] for t in s["tracks"]] == NAMES
    for t in s["tracks"]:
        assert set(t) == TRACK_KEYS and t["mute"] is False
        assert tuple(b["type"] for b in t["eq"]) == EQ_LAYOUT
        assert "gain_db" not in t["eq"][0] and all("gain_db" in b for b in t["eq"][1:])
        assert set(t["compressor"]) == COMP_KEYS
    m = s["master"]
    assert set(m) == {"eq", "compressor", "width", "gain_db", "limiter"}
    assert tuple(b["type"] for b in m["eq"]) == EQ_LAYOUT
    assert set(m["limiter"]) == {"ceiling_dbtp", "lookahead_ms", "release_ms"}
    json.dumps(s)  # plain data


def test_values_stay_in_range(draws):
    for s in draws:
        for t in s["tracks"]:
            assert -24 <= t["gain_db"] <= 12 and -1 <= t["pan"] <= 1 and 0 <= t["width"] <= 2
            hp, ls, *peaks, hs = t["eq"]
            assert 20 <= hp["freq_hz"] <= 400
            assert 40 <= ls["freq_hz"] <= 500 and 2000 <= hs["freq_hz"] <= 16000
            for b in t["eq"][1:]:
                assert -12 <= b["gain_db"] <= 12 and 0.3 <= b["q"] <= 8
            for (lo, hi), b in zip(((80, 500), (300, 3000), (1500, 12000)), peaks):
                assert lo * 0.999 <= b["freq_hz"] <= hi * 1.001
            c = t["compressor"]
            assert 1 <= c["ratio"] <= 20 and -60 <= c["threshold_db"] <= 0
            assert 0.1 <= c["attack_ms"] <= 100 and 10 <= c["release_ms"] <= 1000
            assert 0 <= c["knee_db"] <= 12 and 0 <= c["makeup_db"] <= 12
        m = s["master"]
        assert m["limiter"]["ceiling_dbtp"] in (-1.0, -0.1, -0.5, -2.0)
        assert 0.5 <= m["width"] <= 1.5 and all(abs(b.get("gain_db", 0)) <= 6 for b in m["eq"])


def test_documented_statistics(draws):
    tracks = [t for s in draws for t in s["tracks"]]
    gains = np.array([t["gain_db"] for t in tracks])
    assert abs(gains.mean()) < 0.3 and 3.6 < gains.std() < 4.4
    eq_gains = np.abs([b["gain_db"] for t in tracks for b in t["eq"][1:]])
    assert 1.2 < np.median(eq_gains) < 1.6           # Laplace scale 2: median 2 ln 2 = 1.39 dB
    assert 0.87 < np.mean(eq_gains < 4.6) < 0.93      # 90 % within 2 ln 10 = 4.6 dB
    comps = [t["compressor"] for t in tracks]
    engaged = [c for c in comps if c["ratio"] > 1.0]
    assert 0.71 < len(engaged) / len(comps) < 0.79
    assert 2.3 < np.median([c["ratio"] for c in engaged]) < 2.7
    assert 8 < np.median([c["attack_ms"] for c in engaged]) < 12
    assert 100 < np.median([c["release_ms"] for c in engaged]) < 140
    hp = np.array([t["eq"][0]["freq_hz"] for t in tracks])
    assert 0.55 < np.mean(hp > 20.0) < 0.65
    by_name = {n: np.array([s["tracks"][i]["pan"] for s in draws]) for i, n in enumerate(NAMES)}
    for centred in ("Kick In", "Snare Top", "Bass DI", "Lead Vox"):
        assert np.abs(by_name[centred]).max() < 0.25 and np.abs(by_name[centred]).std() < 0.05
    for spread in ("Gtr L", "Keys", "OH"):
        assert by_name[spread].std() > 0.3 and abs(by_name[spread].mean()) < 0.1
    kick_hp = np.array([s["tracks"][0]["eq"][0]["freq_hz"] for s in draws])
    keys_hp = np.array([s["tracks"][6]["eq"][0]["freq_hz"] for s in draws])
    assert np.median(kick_hp[kick_hp > 20]) < np.median(keys_hp[keys_hp > 20])


def test_threshold_follows_the_stem_level_and_mono_has_unit_width():
    rng = np.random.default_rng(5)
    levels = [-30.0, -12.0]
    below = {0: [], 1: []}
    for _ in range(400):
        s = sample_settings(["a", "b"], rng, levels_db=levels, stereo=[False, True])
        assert s["tracks"][0]["width"] == 1.0
        for i in (0, 1):
            c = s["tracks"][i]["compressor"]
            if c["ratio"] > 1:
                below[i].append(levels[i] - c["threshold_db"])
    for i in (0, 1):
        assert 5 < np.mean(below[i]) < 7 and 3 < np.std(below[i]) < 5


def test_seeded_and_configurable():
    assert sample_settings(NAMES, 7) == sample_settings(NAMES, 7)
    assert sample_settings(NAMES, 7) != sample_settings(NAMES, 8)
    flat = prior_config({"gain": {"sd_db": 0.0}, "eq": {"gain_scale_db": 0.0},
                         "compressor": {"prob": 0.0}, "master": {"prob": 0.0}})
    s = sample_settings(NAMES, 3, flat)
    assert all(t["gain_db"] == 0 and t["compressor"]["ratio"] == 1.0 for t in s["tracks"])
    assert all(b.get("gain_db", 0) == 0 for t in s["tracks"] for b in t["eq"])
    assert s["master"] == {"width": 1.0, "gain_db": 0.0}
    with pytest.raises(AutomixError, match="unknown setting gain.nope"):
        prior_config({"gain": {"nope": 1}})
    with pytest.raises(ValueError):
        sample_settings(["a", "b"], 0, levels_db=[-20.0])


def test_yaml_matches_the_dataclass_defaults():
    import yaml

    path = Path(__file__).resolve().parents[1] / "configs" / "data" / "priors.yaml"
    assert prior_config(yaml.safe_load(path.read_text())) == PriorConfig()


@pytest.mark.parametrize("name,role", [("Kick In", "kick"), ("BD", "kick"), ("drums_kick", "kick"),
                                       ("Snare Bottom", "snare"), ("Bass DI", "bass"),
                                       ("acoustic_bass", "bass"), ("Lead Vox", "vocals"),
                                       ("BV 2", "backing"), ("OH L", "cymbals"), ("melody", "lead"),
                                       ("Gtr", "other")])
def test_track_roles(name, role):
    assert track_role(name) == role


def _flat(entry: dict, master: bool) -> dict:
    """A settings entry as console parameter names (automix.params)."""
    p = {}
    for i, b in enumerate(entry["eq"]):
        for k in ("freq_hz", "gain_db", "q"):
            if k in b:
                p[f"eq{i}_{b['type']}.{k}"] = b[k]
    p.update({f"comp.{k}": v for k, v in entry["compressor"].items()})
    p["gain_db"], p["width"] = entry["gain_db"], entry["width"]
    if master:
        p.update({f"limiter.{k}": v for k, v in entry["limiter"].items() if k != "lookahead_ms"})
    else:
        p["pan"] = entry["pan"]
    return p


def test_draws_fit_the_console_specs_and_the_settings_schema(draws):
    from automix.params import LIMITER_LOOKAHEAD_MS, MASTER_SPECS, TRACK_SPECS
    from automix.settings import validate

    track_specs = {s.name: s for s in TRACK_SPECS}
    master_specs = {s.name: s for s in MASTER_SPECS}
    for s in draws[:200]:
        for t in s["tracks"]:
            p = _flat(t, master=False)
            assert set(p) == set(track_specs)
            for k, v in p.items():
                assert track_specs[k].minimum <= v <= track_specs[k].maximum, (k, v)
        p = _flat(s["master"], master=True)
        assert set(p) == set(master_specs)
        for k, v in p.items():
            assert master_specs[k].minimum <= v <= master_specs[k].maximum, (k, v)
        assert s["master"]["limiter"]["lookahead_ms"] == LIMITER_LOOKAHEAD_MS
    full = sample_settings(NAMES, 4, files=[f"{n}.wav" for n in NAMES], sample_rate=44100)
    assert validate(full)["tracks"][0]["file"] == "Kick In.wav"


def test_level_match_is_not_undone_by_the_deviation_clip():
    """A stem 12 dB under the median is pulled up by level_match x 12 dB on average: the
    [min_db, max_db] clip bounds the random deviation only (clipping the sum at +12 dB taught
    the network to leave quiet stems quiet); the sum stays in the console's fader range."""
    cfg = prior_config({"gain": {"level_match": 1.0}})
    rng = np.random.default_rng(11)
    a, b, far = [], [], []
    for _ in range(400):
        s = sample_settings(["a", "b", "c", "d", "e"], rng, cfg,
                            levels_db=[-32.0, -20.0, -20.0, -60.0, -20.0])
        a.append(s["tracks"][0]["gain_db"])
        b.append(s["tracks"][1]["gain_db"])
        far.append(s["tracks"][3]["gain_db"])
    assert abs(np.mean(a) - np.mean(b) - 12.0) < 0.7   # the old clip of the sum gave ~10.4
    assert 3.0 < np.std(a) < 5.0
    assert max(far) == 20.0 and min(far) > 10.0       # clipped at the console's +20 dB only
