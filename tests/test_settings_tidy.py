"""Settings automix writes: numbers rounded to what a person would type, clamped to what the
schema allows at every sample rate, and re-rendered bit-exactly; the default model never
silently missing."""
import json
import math

import numpy as np
import pytest
import soundfile as sf

import automix
from automix.analysis import true_peak_linear
from automix.cli import main
from automix.errors import AutomixError
from automix.settings import LIMITS, RESOLUTION, rounded, validate

SR = 22050


def _song(folder, sr, seconds=5.0, n_extra=0, seed=3):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    t = np.arange(int(sr * seconds)) / sr
    sf.write(folder / "bass.wav", 0.3 * np.sin(2 * np.pi * 55 * t), sr)
    sf.write(folder / "hats.wav", 0.1 * np.diff(rng.standard_normal(len(t)), prepend=0), sr)
    chord = 0.1 * sum(np.sin(2 * np.pi * f * t) for f in (220, 277, 330))
    sf.write(folder / "pad.wav", np.stack([chord, 0.7 * chord]).T, sr)
    for i in range(n_extra):  # more voices: short tones at random pitches
        f = 100 * 2 ** rng.uniform(0, 4)
        sf.write(folder / f"voice{i:02d}.wav", 0.05 * np.sin(2 * np.pi * f * t) * (t % 1 < 0.5), sr)
    return folder


def _reference(path, sr, seconds=5.0):
    rng = np.random.default_rng(4)
    t = np.arange(int(sr * seconds)) / sr
    ref = np.stack([np.sin(2 * np.pi * 110 * t), np.sin(2 * np.pi * 110 * t + 0.3)]) * 0.3
    ref += 0.05 * rng.standard_normal(ref.shape)
    sf.write(path, ref.T, sr)
    return path


def _numbers(settings):
    """(limit name, value) of every number a render uses."""
    def eq(bands):
        for b in bands:
            yield "freq_hz", b["freq_hz"]
            yield "q", b["q"]
            if "gain_db" in b:
                yield "eq_gain_db", b["gain_db"]

    def proc(d, names=None):
        for k, v in d.items():
            yield (names or {}).get(k, k), v

    for t in settings["tracks"]:
        yield from eq(t["eq"])
        yield from proc(t["compressor"])
        yield "track_gain_db", t["gain_db"]
        yield "pan", t["pan"]
        yield "width", t["width"]
    m = settings["master"]
    yield from eq(m["eq"])
    yield from eq(m["side_eq"])
    yield from proc(m["compressor"])
    yield from proc(m["widener"], {"gain_db": "widener_gain_db"})
    yield from proc(m["limiter"])
    yield "width", m["width"]
    yield "master_gain_db", m["gain_db"]


def _is_rounded(limit, value):
    step = 0.01 if limit.endswith("_ms") and abs(value) < 1 else RESOLUTION[limit]
    return math.isclose(value / step, round(value / step), abs_tol=1e-6)


def test_rounding_rule():
    assert rounded(50.16990280151367, "freq_hz") == 50.2
    assert rounded(-3.014999, "track_gain_db") == -3.01
    assert rounded(0.70710678, "q") == 0.71
    assert rounded(0.123456, "pan") == 0.123
    assert rounded(12.345, "attack_ms") == 12.3
    assert rounded(0.0437, "attack_ms") == 0.04  # under 1 ms: 0.01 ms, never rounded to 0
    assert str(rounded(-0.0001, "pan")) == "0.0"


def test_tidy_clamps_what_the_strict_check_refuses():
    s = {"format": "automix.settings", "version": 1, "sample_rate": 8000,
         "tracks": [{"name": "a", "file": "a.wav", "gain_db": 49.2,
                     "eq": [{"type": "peak", "freq_hz": 4000.0, "gain_db": 31.0, "q": 0.05}]}],
         "master": {"gain_db": 0.123456}}
    with pytest.raises(AutomixError, match=r"tracks\[0\]\.eq\[0\]\.freq_hz = 4000.0"):
        validate(s)
    tidy = validate(s, tidy=True)
    band = tidy["tracks"][0]["eq"][0]
    assert tidy["tracks"][0]["gain_db"] == LIMITS["track_gain_db"][1]
    assert band["freq_hz"] == 3600.0 and band["gain_db"] == 30.0 and band["q"] == 0.1
    assert tidy["master"]["gain_db"] == 0.12
    assert validate(tidy) == tidy  # what tidy writes, the strict check accepts unchanged


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    root = tmp_path_factory.mktemp("tidy")
    stems = _song(root / "stems", SR)
    ref = _reference(root / "ref.wav", SR)
    assert main(["--stems", str(stems), "--reference", str(ref), "-o", str(root / "out"),
                 "--refine-steps", "20"]) == 0
    return root, stems


def test_written_settings_are_rounded_and_rerender_bit_exactly(job):
    root, stems = job
    text = (root / "out" / "settings.json").read_text()
    settings = json.loads(text)
    values = list(_numbers(settings))
    assert len(values) > 40
    bad = [(k, v) for k, v in values if not _is_rounded(k, v)]
    assert not bad, bad
    # no float32 noise anywhere in the file, measurements included
    assert not any(len(tok.split(".")[1]) > 3 for tok in
                   text.replace(",", " ").replace("]", " ").split() if tok[:1] in "-0123456789"
                   and "." in tok and "e" not in tok)
    assert main(["render", "--stems", str(stems), "--settings", str(root / "out" / "settings.json"),
                 "-o", str(root / "again")]) == 0
    for name in ("mix.wav", "master.wav"):
        a, _ = sf.read(root / "out" / name, dtype="int32")
        b, _ = sf.read(root / "again" / name, dtype="int32")
        assert np.array_equal(a, b), name


@pytest.mark.parametrize("sr", [8000, 11025])
def test_low_sample_rates_mix_and_master(tmp_path, sr):
    stems = _song(tmp_path / "stems", sr)
    ref = _reference(tmp_path / "ref.wav", sr)
    assert main(["--stems", str(stems), "--reference", str(ref), "-o", str(tmp_path / "mix"),
                 "--refine-steps", "10"]) == 0
    assert main(["master", "--input", str(stems / "pad.wav"), "--reference", str(ref),
                 "-o", str(tmp_path / "master")]) == 0
    for out in ("mix", "master"):
        settings = json.loads((tmp_path / out / "settings.json").read_text())
        freqs = [b["freq_hz"] for t in settings["tracks"] for b in t["eq"]]
        freqs += [b["freq_hz"] for b in settings["master"]["eq"]]
        assert max(freqs) < sr / 2
        audio, _ = sf.read(tmp_path / out / "master.wav", always_2d=True)
        assert 20 * np.log10(true_peak_linear(audio.T)) <= -1.0 + 0.05


def test_fifty_stems_with_the_model_stay_in_the_schema(tmp_path):
    stems = _song(tmp_path / "stems", 8000, seconds=3.0, n_extra=50)
    ref = _reference(tmp_path / "ref.wav", 8000, seconds=4.0)
    result = automix.mix(stems, ref, refine_steps=0)
    assert len(result.settings["tracks"]) == 53
    assert validate(result.settings) == result.settings


def test_a_missing_default_model_is_said_and_a_missing_requested_one_is_an_error(
        job, tmp_path, monkeypatch):
    root, stems = job
    import automix.model.checkpoint as ckpt
    monkeypatch.setattr(ckpt, "DEFAULT_CHECKPOINT", tmp_path / "gone.pt")
    result = automix.mix(stems, root / "ref.wav", refine_steps=5)
    assert any("shipped model" in n and "missing" in n for n in result.notes)
    with pytest.raises(AutomixError, match="no model"):
        automix.predict_settings(stems, root / "ref.wav")
    (tmp_path / "gone.pt").write_bytes(b"not a checkpoint")
    result = automix.mix(stems, root / "ref.wav", refine_steps=5)
    assert any("cannot be used" in n for n in result.notes)
    monkeypatch.setenv("AUTOMIX_CHECKPOINT", str(tmp_path / "typo.pt"))
    with pytest.raises(AutomixError, match="AUTOMIX_CHECKPOINT"):
        automix.mix(stems, root / "ref.wav", refine_steps=5)


def test_render_of_a_master_without_limiter_warns_where_it_peaks(job, capsys):
    root, stems = job
    settings = json.loads((root / "out" / "settings.json").read_text())
    settings["master"]["limiter"] = {}
    settings["master"]["gain_db"] += 12.0
    (root / "loud.json").write_text(json.dumps(settings))
    capsys.readouterr()
    assert main(["render", "--stems", str(stems), "--settings", str(root / "loud.json"),
                 "-o", str(root / "loud"), "--bit-depth", "float"]) == 0
    err = capsys.readouterr().err
    master, _ = sf.read(root / "loud" / "master.wav", always_2d=True)
    tp = 20 * np.log10(true_peak_linear(master.T))
    assert tp > 0 and f"peaks at {tp:+.1f} dBTP" in err and "no master.limiter" in err
    # the file as written (with its limiter) renders without a note
    assert main(["render", "--stems", str(stems), "--settings", str(root / "out" / "settings.json"),
                 "-o", str(root / "quiet")]) == 0
    assert "note:" not in capsys.readouterr().err
