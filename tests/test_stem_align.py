"""Stems that carry one source twice (automix/stem_align.py): a crafted pair -- one stem a
polarity-inverted and/or k-sample-delayed copy of the other, plus independent noise -- is found
with the exact lag and sign and fixed; the fixed sum regains the level the cancellation lost (the
analytic power of the sum); unrelated stems are left alone; every executor applies the fields
alike; the mix job writes the fix to settings.json and `automix render` of it gives the job's
mix and master bit for bit; bad fields are one-line errors."""
import copy

import numpy as np
import pytest
import soundfile as sf
import torch

import automix
from automix import qc, stem_align
from automix.console import batched, blocks, graph, spectral
from automix.errors import AutomixError
from automix.render import render_settings
from automix.settings import FORMAT, validate

from conftest import ArraySource

SR = 22050


def _source(rng, n):
    """Music-like noise: most of its power low (white noise through a leaky integrator,
    corner ~70 Hz at 22.05 kHz)."""
    from scipy.signal import lfilter

    x = lfilter([1.0], [1.0, -0.98], rng.standard_normal(n))
    return x / x.std()


def _shift(x, k):
    """``x`` delayed by ``k`` samples (advanced for k < 0), zeros in."""
    out = np.zeros_like(x)
    if k >= 0:
        out[k:] = x[:len(x) - k]
    else:
        out[:k] = x[-k:]
    return out


def _measure(stems):
    start = stem_align.excerpt_start([len(s) for s in stems], SR)
    return stem_align.measure([stem_align.mono_excerpt(s[None], start, SR) for s in stems], SR)


@pytest.mark.parametrize("lag, sign", [(37, -1), (0, -1), (120, 1), (-53, -1), (5, 1)])
def test_crafted_pair_found_with_exact_lag_and_sign(lag, sign):
    rng = np.random.default_rng(abs(lag) + 7)
    n = SR * 12
    a = 0.3 * _source(rng, n)
    b = sign * 0.6 * _shift(a, lag) + 0.02 * rng.standard_normal(n)  # b late by `lag`
    pairs = _measure([a, b])
    assert len(pairs) == 1
    p = pairs[0]
    assert p.lag == lag and np.sign(p.r_low) == sign and p.fixable
    fixes = stem_align.plan(pairs, loudness=[-12.0, -18.0])
    want = {}
    if sign < 0:
        want[1] = stem_align.Fix(-1, 0)  # the quieter stem is flipped
    if lag > 0:
        want.setdefault(0, stem_align.Fix())
        want[0] = stem_align.Fix(want[0].polarity, lag)  # the earlier one waits for the later
    elif lag < 0:
        want[1] = stem_align.Fix(want.get(1, stem_align.Fix()).polarity, -lag)
    assert fixes == want


def test_unrelated_stems_are_left_alone():
    """Independent noises, and a kick and a bass playing the same beat in the same register,
    and a pad: nothing is fixed, nothing even reported as one source."""
    rng = np.random.default_rng(1)
    n = SR * 12
    t = np.arange(n) / SR
    beat = (t * 2) % 1
    kick = np.sin(2 * np.pi * (50 + 80 * np.exp(-beat * 30)) * beat) * np.exp(-beat * 8)
    notes = 55 * 2 ** (np.array([0, 3, 5, 7])[(t * 2).astype(int) % 4] / 12)
    bass = 0.5 * (2 * ((np.cumsum(notes) / SR) % 1) - 1) * np.exp(-beat * 3)
    pad = sum(np.sin(2 * np.pi * f * t) for f in (110, 138.6, 164.8)) * 0.1
    stems = [kick, bass, pad, rng.standard_normal(n) * 0.1, _source(rng, n) * 0.1]
    pairs = _measure(stems)
    assert not [p for p in pairs if p.fixable]
    assert stem_align.plan(pairs) == {}
    assert not [c for c in qc.stem_checks_audio([f"s{i}" for i in range(5)],
                                                [s[None] for s in stems], SR)
                if c.name.startswith("stem pair")]


def test_moderate_correlation_is_reported_not_fixed():
    rng = np.random.default_rng(2)
    n = SR * 12
    a = _source(rng, n)
    b = -0.65 * a + 0.76 * _source(rng, n)   # r ~ -0.65: related, not beyond doubt
    pairs = _measure([a, b])
    assert len(pairs) == 1 and not pairs[0].fixable and pairs[0].correlated
    assert stem_align.plan(pairs) == {}
    row = [c for c in qc.stem_checks_audio(["a", "b"], [a[None], b[None]], SR, pairs, {})
           if c.name == "stem pair a / b"][0]
    assert row.status == "warn" and "not fixed: the low-band correlation is under 0.8" in row.detail


def test_three_microphones_on_one_source_line_up():
    """c is late on a by 30, b late on a by 12 and inverted: a and b are delayed to c."""
    rng = np.random.default_rng(3)
    n = SR * 12
    a = _source(rng, n)
    b = -0.8 * _shift(a, 12) + 0.02 * rng.standard_normal(n)
    c = 0.7 * _shift(a, 30) + 0.02 * rng.standard_normal(n)
    fixes = stem_align.plan(_measure([a, b, c]), loudness=[-10.0, -12.0, -13.0])
    assert fixes == {0: stem_align.Fix(1, 30), 1: stem_align.Fix(-1, 18)}
    aligned = [stem_align.apply(x[None], fixes.get(k, stem_align.Fix()))[0]
               for k, x in enumerate((a, b, c))]
    for x in aligned[1:]:  # every stem now in phase and in time with the first
        assert np.corrcoef(aligned[0][100:], x[100:])[0, 1] > 0.99


def _settings(tracks):
    return validate({"format": FORMAT, "version": 2, "sample_rate": SR,
                     "tracks": [{"name": name, "file": f"{name}.wav", **fields}
                                for name, fields in tracks],
                     "master": {}})


def test_render_regains_the_level_the_cancellation_lost():
    """a = s, b = -g s delayed by k, plus independent noise (s and the noise white, unit and
    sigma^2 power).  Summed as they are the pair holds s(t) - g s(t - k) + n: power
    1 + g^2 + sigma^2 (white: s and its delayed copy are uncorrelated); aligned (a delayed by
    k) and flipped: (1 + g)^2 + sigma^2.  And with k = 0: (1 - g)^2 + sigma^2 before."""
    rng = np.random.default_rng(4)
    n, g, sigma = SR * 4, 0.8, 0.1
    for k in (0, 29):
        s = rng.standard_normal(n) * 0.1
        noise = sigma * 0.1 * rng.standard_normal(n)
        a, b = s, -g * _shift(s, k) + noise
        plain = _settings([("a", {}), ("b", {})])
        fixed = _settings([("a", {"delay_samples": k} if k else {}), ("b", {"polarity": -1})])
        power = []
        for st in (plain, fixed):
            mix = blocks.render_graph(st, [ArraySource(a[None]), ArraySource(b[None])], n,
                                      block=1000)   # the delay line crosses blocks
            power.append(np.mean(mix[0, 200:] ** 2) / 0.01 * 2)  # centre pan: -3 dB per side
        before = (1 - g) ** 2 + sigma ** 2 if k == 0 else 1 + g ** 2 + sigma ** 2
        after = (1 + g) ** 2 + sigma ** 2
        assert 10 * np.log10(power[0]) == pytest.approx(10 * np.log10(before), abs=0.1)
        assert 10 * np.log10(power[1]) == pytest.approx(10 * np.log10(after), abs=0.1)


def test_every_executor_applies_the_fields_alike():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 2, 5000))
    p = {"polarity": torch.tensor([-1, 1, -1]), "delay_samples": torch.tensor([0, 17, 300])}
    got = batched.align(torch.tensor(x), p, SR).numpy()
    for r in range(3):
        entry = {"polarity": int(p["polarity"][r]), "delay_samples": int(p["delay_samples"][r])}
        proc = blocks.PROCESSORS["align"](entry, SR, 2)
        y = x[r].copy()
        out = np.concatenate([proc.process(np.ascontiguousarray(y[:, s:s + 128]), s)
                              for s in range(0, 5000, 128)], axis=1)
        want = entry["polarity"] * _shift2(x[r], entry["delay_samples"])
        assert np.array_equal(out, want) and np.array_equal(got[r], want)
    # bypassed without the fields: the same object, no operation
    same = torch.tensor(x)
    assert batched.align(same, {}, SR) is same
    powers = spectral.Powers(torch.ones(4), torch.ones(4), torch.zeros(4))
    assert spectral.align(powers, {}, None) is powers
    assert graph.STRIP.processors[0].name == "align" and not graph.STRIP.processors[0].params


def _shift2(x, k):
    return np.stack([_shift(c, k) for c in x])


@pytest.mark.parametrize("field, value, message", [
    ("polarity", 0, "tracks[0].polarity: expected 1 or -1, got 0"),
    ("polarity", True, "tracks[0].polarity: expected 1 or -1, got True"),
    ("delay_samples", -1, "tracks[0].delay_samples: expected a whole number of samples 0..22050"),
    ("delay_samples", 2.5, "tracks[0].delay_samples: expected a whole number of samples"),
    ("delay_samples", 22051, "got 22051"),
])
def test_bad_fields_are_one_line_errors(field, value, message):
    with pytest.raises(AutomixError) as err:
        _settings([("a", {field: value})])
    assert message in str(err.value) and "\n" not in str(err.value)
    v1 = {"format": FORMAT, "version": 1, "sample_rate": SR,
          "tracks": [{"name": "a", "file": "a.wav", "polarity": -1}], "master": {}}
    with pytest.raises(AutomixError, match="unknown field 'polarity'"):
        validate(copy.deepcopy(v1))


def test_mix_job_fixes_the_pair_and_renders_bit_exactly(tmp_path):
    """kick_out: kick_in inverted and 22 samples (1 ms) late; keys unrelated.  The job flips
    kick_out, delays kick_in, says so, and `automix render` of its settings gives its mix and
    master bit for bit."""
    rng = np.random.default_rng(6)
    n = SR * 12
    t = np.arange(n) / SR
    beat = (t * 2) % 1
    kick = np.sin(2 * np.pi * (50 + 80 * np.exp(-beat * 30)) * beat) * np.exp(-beat * 6) * 0.5
    kick += 0.02 * rng.standard_normal(n) * np.exp(-beat * 40)
    stems = tmp_path / "stems"
    stems.mkdir()
    sf.write(stems / "kick_in.wav", kick, SR, subtype="FLOAT")
    sf.write(stems / "kick_out.wav", -0.6 * _shift(kick, 22) + 0.003 * rng.standard_normal(n),
             SR, subtype="FLOAT")
    keys = sum(np.sin(2 * np.pi * f * t) for f in (262, 330, 392)) * 0.1
    sf.write(stems / "keys.wav", np.stack([keys, 0.8 * keys]).T, SR, subtype="FLOAT")
    ref = np.stack([kick + keys, kick + 0.8 * keys]) * 0.5
    sf.write(tmp_path / "reference.wav", ref.T, SR, subtype="FLOAT")
    r = automix.mix(stems, tmp_path / "reference.wav", model=None, refine_steps=10, static=True)
    tracks = {tr["name"]: tr for tr in r.settings["tracks"]}
    assert tracks["kick_out"].get("polarity") == -1 and "delay_samples" not in tracks["kick_out"]
    assert tracks["kick_in"].get("delay_samples") == 22 and "polarity" not in tracks["kick_in"]
    assert "polarity" not in tracks["keys"] and "delay_samples" not in tracks["keys"]
    assert any("lined up" in note and "kick_out.wav: polarity flipped" in note
               for note in r.notes), r.notes
    row = [c for c in r.stem_checks if c["name"] == "stem pair kick_in.wav / kick_out.wav"][0]
    assert row["status"] == "pass" and "fixed" in row["detail"]
    mix, master = render_settings(r.settings, stems)
    assert np.array_equal(r.mix, mix) and np.array_equal(r.master, master)
