"""Space matching (automix/space.py, automix.mix(space=...)): known answers on synthetic
material (a dry reference gives no buses; a reference convolved with exponential noise of RT60
1.5 s gives a reverb whose RT60 reads within 20 % and a wetter mix; an already wet stem gets
less send), --space 0, bit-exact re-render, and bad references (no NaN, true peak under the
ceiling)."""
import math

import numpy as np
import pytest
import scipy.signal
import soundfile as sf

import automix
from automix import ambience as A
from automix.analysis import true_peak_linear
from automix.errors import AutomixError
from automix.options import check_space
from automix.render import render_settings
from automix.report import _space_lines, decay_rows, write_report
from automix.report_html import write_html
from automix.space import flat_settings, plan_space

SR = 22050


def notes(seconds, seed, sr=SR):
    """Sparse dry notes (plucks, tones, bursts of 50-300 ms with gaps: free decays to read)."""
    rng = np.random.default_rng(seed)
    x = np.zeros(int(seconds * sr))
    t = 0.2
    while t < seconds - 1:
        length, start = int(rng.uniform(0.05, 0.3) * sr), int(t * sr)
        i = np.arange(length)
        f = rng.uniform(150, 3000)
        kind = rng.integers(3)
        if kind == 0:
            burst = rng.standard_normal(length) * np.exp(-i / (0.03 * sr))
        else:
            burst = sum(np.sin(2 * np.pi * f * k * i / sr) / k for k in range(1, 6))
        burst *= np.minimum(1, np.minimum(i, length - i) / (0.005 * sr))
        x[start:start + length] += burst * rng.uniform(0.3, 1)
        t += rng.uniform(0.4, 2.0)
    return 0.3 * x / np.abs(x).max()


def exp_noise_ir(rt60, seed, sr=SR):
    rng = np.random.default_rng(seed)
    t = np.arange(int(1.5 * rt60 * sr)) / sr
    return rng.standard_normal((2, t.size)) * np.exp(-3 * math.log(10) * t / rt60)


def wet(x, rt60, seed=5, sr=SR):
    h = exp_noise_ir(rt60, seed, sr)
    y = np.stack([scipy.signal.fftconvolve(x, h[c])[:x.size] for c in range(2)])
    return 0.5 * y / np.abs(y).max()


def late_db(audio, rt60, sr=SR):
    """The mid band's early/late proxy with a fixed RT60 (lower = wetter)."""
    _, power, hop_s, names = A.band_levels(audio, sr)
    return A.early_late_db(power[names.index("mid")], hop_s, rt60)


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    root = tmp_path_factory.mktemp("space")
    stems = root / "stems"
    stems.mkdir()
    a, b = notes(20, 1), notes(20, 2)
    sf.write(stems / "keys.wav", a, SR, subtype="FLOAT")
    sf.write(stems / "perc.wav", b, SR, subtype="FLOAT")
    dry = np.stack([a + b, a + b])
    sf.write(root / "dry.wav", (0.5 * dry / np.abs(dry).max()).T, SR, subtype="FLOAT")
    sf.write(root / "wet.wav", wet(a + b, 1.5).T, SR, subtype="FLOAT")
    return root, stems


def run(session, ref, **kw):
    root, stems = session
    kw.setdefault("space", 1.0)  # off by default (docs/space.md): these tests ask for it
    return automix.mix(stems, root / ref, model=None, refine_steps=10, **kw)


def test_dry_reference_gives_no_buses(session):
    r = run(session, "dry.wav")
    assert not r.settings.get("buses") and not r.settings.get("sends")
    assert any("reads dry" in n or "already read as wet" in n for n in r.notes), r.notes


def test_wet_reference_gets_matching_reverb_and_rerenders_bit_exactly(session, tmp_path):
    r = run(session, "wet.wav")
    (bus,) = r.settings["buses"]
    proc = bus["processor"]
    assert proc["type"] == "reverb" and abs(proc["rt60_mid_s"] / 1.5 - 1) < 0.2, proc
    assert {s["source"] for s in r.settings["sends"]} == {"keys", "perc"}
    assert any("reverb bus" in n for n in r.notes), r.notes
    ref_amb = r.analysis["reference"]["ambience"]
    assert abs(ref_amb["rt60_s"][1] / 1.5 - 1) < 0.2
    dry = run(session, "wet.wav", space=0.0)
    assert not dry.settings.get("buses")
    wet_el, dry_el = late_db(r.mix, 1.5), late_db(dry.mix, 1.5)
    # wetter than without, and toward the reference's reading (as far as the PLR floor lets
    # the sends go: here -2 dB, where +6 dB would match the early/late reading)
    assert wet_el < dry_el - 0.75, (wet_el, dry_el)
    # the blind RT60 of the mix: the dry one reads its notes' decays, the spaced one the reverb's
    rt_wet, rt_dry = A.ambience(r.mix, SR)["rt60_s"][1], A.ambience(dry.mix, SR)["rt60_s"][1]
    assert abs(rt_wet / 1.5 - 1) < 0.2 and rt_dry < 0.5, (rt_wet, rt_dry)
    ref = sf.read(session[0] / "wet.wav", always_2d=True)[0].T
    assert abs(wet_el - late_db(ref, 1.5)) < abs(dry_el - late_db(ref, 1.5))
    # the PLR floor: the master's PLR no further from the reference's than without space
    plr = {k: v.analysis["master"]["plr_db"] for k, v in (("wet", r), ("dry", dry))}
    ref_plr = r.analysis["reference"]["plr_db"]
    assert abs(plr["wet"] - ref_plr) <= abs(plr["dry"] - ref_plr) + 0.1, (plr, ref_plr)
    # half the space: sends 3 dB lower
    half = run(session, "wet.wav", space=0.5)
    for s_full, s_half in zip(r.settings["sends"], half.settings["sends"]):
        assert s_half["level_db"] == pytest.approx(s_full["level_db"] - 10 * math.log10(2),
                                                   abs=0.02)
    # the report's settings panel names the reference's decay and the reverb's
    lines = _space_lines(r.settings)
    assert lines[0].startswith("reference RT60") and "reverb 'space'" in lines[1], lines
    # the report's decay per band: the reference's and the mix's readings, the reverb as set
    decay = decay_rows(r.settings)
    assert decay["rt60"]["reference"] == ref_amb["rt60_s"]
    assert decay["rt60"]["mix"] == r.analysis["mix"]["ambience"]["rt60_s"]
    assert abs(decay["rt60"]["mix"][1] / proc["rt60_mid_s"] - 1) < 0.2   # the reverb's decay
    assert decay["rt60"]["reverb 'space'"] == [proc[f"rt60_{b}_s"] for b in ("low", "mid", "high")]
    assert decay_rows(dry.settings) is None   # space 0: no ambience measured, no plot
    png = write_report(tmp_path / "report.png", r.settings)
    assert png.stat().st_size > 10000
    assert "Ambience (decay per band)" in write_html(tmp_path / "r.html", r.settings,
                                                     {"status": "pass", "checks": []}, {}).read_text()
    # automix render reproduces it bit for bit
    mix, master = render_settings(automix.settings.validate(r.settings, "t"), session[1])
    assert np.array_equal(mix, r.mix) and np.array_equal(master, r.master)
    assert 20 * math.log10(true_peak_linear(r.master)) <= -1.0 + 1e-6


def test_near_mono_mix_master_plr_no_further_with_space(tmp_path):
    """One mono stem against a wide reverberant reference: the mix is near mono, so the master
    widens it with its widener (the mid delayed, whose peaks add to the mid's).  A reverb
    filling the side takes the widener's place in the master; read on the mix alone, the PLR
    floor let through sends that moved the mix's PLR by a few hundredths of a dB and the
    master's by a whole one (Greshz-CoolSnip).  Read through the master's stereo stage, the
    job's master PLR is no further from the reference's with space than without."""
    a = notes(20, 61)
    (tmp_path / "st").mkdir()
    sf.write(tmp_path / "st" / "lead.wav", a, SR, subtype="FLOAT")
    sf.write(tmp_path / "wet.wav", wet(a, 1.5, seed=12).T, SR, subtype="FLOAT")
    out = {sp: automix.mix(tmp_path / "st", tmp_path / "wet.wav", model=None, refine_steps=10,
                           space=sp) for sp in (0.0, 1.0)}
    dry = out[0.0]
    assert dry.analysis["mix"]["width_db"] < -40 and dry.settings["master"].get("widener")
    ref_plr = dry.analysis["reference"]["plr_db"]
    miss = {sp: abs(r.analysis["master"]["plr_db"] - ref_plr) for sp, r in out.items()}
    assert miss[1.0] <= miss[0.0] + 0.05, miss


def test_wet_stem_gets_less_send_than_dry_stem():
    a, b = notes(20, 3), notes(20, 4)
    b_wet = b + wet(b, 1.5, seed=9).mean(axis=0)          # its own reverb, with the direct sound
    ref = wet(a + b, 1.5)
    ref_amb = A.ambience(ref, SR)
    buses, sends, _, info = plan_space(ref_amb, flat_settings(["dry", "wetstem"], [0, 0], [0, 0], SR),
                                       {"dry": a[None], "wetstem": b_wet[None]}, SR)
    assert buses
    levels = {s["source"]: s["level_db"] for s in sends}
    assert "dry" in levels and levels.get("wetstem", -200) < levels["dry"] - 3, levels


def test_space_zero_and_range():
    ref_amb = A.ambience(wet(notes(10, 1), 1.5), SR)
    assert plan_space(ref_amb, flat_settings(["x"], [0], [0], SR), {"x": notes(10, 2)[None]}, SR,
                      amount=0.0)[:2] == ([], [])
    assert check_space(0.25) == 0.25
    for bad in (-0.1, 1.5, True):
        with pytest.raises(AutomixError, match="--space"):
            check_space(bad)


def _reference(kind, sr):
    x = notes(12, 7, sr)
    if kind == "cathedral":
        return wet(x, 8.0, sr=sr)
    if kind == "gaps":
        y = wet(x, 1.5, sr=sr)
        y[:, sr * 3:sr * 7] = 0
        return y
    if kind == "short":
        return wet(x, 1.0, sr=sr)[:, :3 * sr]
    if kind == "mono":
        return wet(x, 1.5, sr=sr)[:1]
    return wet(x, 1.0, sr=sr)


@pytest.mark.parametrize("kind,sr", [("cathedral", SR), ("gaps", SR), ("short", SR),
                                     ("mono", SR), ("plain", 96000)])
def test_bad_references_plan_finite(kind, sr):
    ref_amb = A.ambience(_reference(kind, sr), sr)
    stems = [notes(8, 1, sr)[None], np.stack([notes(8, 2, sr)] * 2)]
    buses, sends, note, _ = plan_space(ref_amb, flat_settings(["a", "b"], [0.0, -3.0], [0.3, 0.0], sr),
                                       dict(zip("ab", stems)), sr)
    assert note
    for s in sends:
        assert math.isfinite(s["level_db"])
    for bus in buses:
        p = bus["processor"]
        assert all(math.isfinite(v) for k, v in p.items() if k != "type")
        assert p["lp_hz"] < sr / 2
        if kind == "mono":
            assert p["width"] == 1.0


@pytest.mark.parametrize("kind,sr", [("cathedral", SR), ("mono3s", 48000)])
def test_bad_reference_full_job_under_ceiling(tmp_path, session, kind, sr):
    ref = tmp_path / f"{kind}.wav"
    audio = wet(notes(10, 8, sr), 8.0, sr=sr) if kind == "cathedral" else \
        wet(notes(4, 8, sr), 1.0, sr=sr)[:1, :3 * sr]      # 3 s, mono, at another rate
    sf.write(ref, audio.T, sr, subtype="FLOAT")
    r = automix.mix(session[1], ref, model=None, refine_steps=10, space=1.0)
    assert np.isfinite(r.master).all() and np.isfinite(r.mix).all()
    assert 20 * math.log10(true_peak_linear(r.master)) <= -1.0 + 1e-6


def test_wet_stems_get_no_bus_dry_stems_get_one():
    """Stems that carry their own reverb (dry notes convolved with exponential noise of RT60
    1.5 s) get no bus, against a dry reference and against a wet one (their own sum, or a
    shorter reverb): a reverb only adds late energy.  The same notes dry, against the wet sum,
    get a bus whose reverb reads the reference's RT60 within 20 %."""
    a, b, c = notes(20, 11), notes(20, 12), notes(20, 13)
    wet_stems = {"keys": wet(a, 1.5, 3), "perc": wet(b, 1.5, 4), "pad": wet(c, 1.5, 6)}
    dry_stems = {"keys": np.stack([a, a]), "perc": b[None], "pad": c[None]}
    console = flat_settings(list(wet_stems), [0.0, -2.0, 1.0], [0.0, 0.4, -0.3], SR)
    refs = {"dry": np.stack([a + b + c] * 2), "own sum": sum(wet_stems.values()),
            "RT60 0.8 s": wet(a + b + c, 0.8, 7)}
    for name, ref in refs.items():
        buses, sends, note, info = plan_space(A.ambience(ref, SR), console, wet_stems, SR)
        assert not buses and not sends, (name, note, info)
        assert "dry" in note[0] or "already" in note[0], note
    buses, sends, note, _ = plan_space(A.ambience(refs["own sum"], SR), console, dry_stems, SR)
    (bus,) = buses
    assert {s["source"] for s in sends} == set(dry_stems), sends
    # the reverb's own decay (Schroeder, T20 of its impulse response) is the reference's
    from automix.dsp.reverb import reverb_ir
    import torch
    p = {k: torch.tensor([float(bus["processor"][k])], dtype=torch.float64)
         for k in ("predelay_ms", "rt60_low_s", "rt60_mid_s", "rt60_high_s", "early_late_db",
                   "width", "hp_hz", "lp_hz")}
    ir = reverb_ir(p, SR)[0].numpy().mean(axis=0)
    sos = scipy.signal.butter(4, [700, 2800], "bandpass", fs=SR, output="sos")
    e = np.cumsum((scipy.signal.sosfilt(sos, ir) ** 2)[::-1])[::-1]
    edc = 10 * np.log10(e / e[0])
    t5, t25 = np.argmax(edc <= -5), np.argmax(edc <= -25)
    rt = 3 * (t25 - t5) / SR
    assert abs(rt / 1.5 - 1) < 0.2, rt


def test_calibration_renders_through_the_console():
    """The calibration's excerpt is the render's mix: EQ, compressor, a fader lane and a group
    strip included (render_excerpt from the song's start equals render_graph's samples)."""
    from automix.console.blocks import render_graph
    from automix.space import render_excerpt
    from conftest import ArraySource  # the tests' in-memory block source

    x, y = notes(6, 21), notes(6, 22)
    settings = automix.settings.validate({
        "format": automix.settings.FORMAT, "version": 2, "sample_rate": SR,
        "tracks": [
            {"name": "x", "file": "x.wav", "gain_db": -3.0, "pan": -0.5,
             "eq": [{"type": "peak", "freq_hz": 1000.0, "q": 1.0, "gain_db": 6.0}],
             "compressor": {"threshold_db": -30.0, "ratio": 4.0, "knee_db": 6.0,
                            "attack_ms": 5.0, "release_ms": 100.0, "makeup_db": 3.0},
             "automation": {"gain_db": {"ramp_ms": 50.0, "points": [
                 {"time_s": 0.0, "gain_db": 0.0}, {"time_s": 3.0, "gain_db": -6.0}]}}},
            {"name": "y", "file": "y.wav", "gain_db": 0.0, "pan": 0.3}],
        "groups": [{"name": "g", "members": ["y"], "gain_db": -2.0,
                    "eq": [{"type": "highshelf", "freq_hz": 3000.0, "q": 0.7,
                            "gain_db": -4.0}]}],
        "master": automix.settings.tidy_master({}, SR)}, "t", tidy=True)
    stems = {"x": x[None], "y": np.stack([y, 0.5 * y])}
    n = x.size
    got = render_excerpt(settings, stems, 0, n, SR)
    want = render_graph(settings, [ArraySource(stems["x"]), ArraySource(stems["y"])], n)
    assert np.max(np.abs(got - want)) < 1e-12 * np.max(np.abs(want)) + 1e-15
    # a flat console (faders and pans only) would differ: the strips matter
    flat = render_excerpt(flat_settings(["x", "y"], [-3.0, 0.0], [-0.5, 0.3], SR), stems, 0, n, SR)
    assert np.max(np.abs(flat - want)) > 0.1 * np.max(np.abs(want))


def test_plr_probe_matches_the_meter():
    """The calibration's PLR of D + g R (block powers combined, peaks bounded per block) is the
    loudness meter's on the summed signal, for every g."""
    from automix.analysis import integrated_loudness
    from automix.space import _PlrProbe

    a, b = notes(12, 31), notes(12, 32)
    dry = np.stack([a + b, 0.7 * a + b])
    ret = wet(a + b, 1.5, seed=2)
    probe = _PlrProbe(dry, ret, SR)
    for g in (0.0, 0.2, 0.7, 1.5, 3.0):
        x = dry + g * ret
        want = 20 * math.log10(np.abs(x).max()) - integrated_loudness(x, SR)
        assert probe(g) == pytest.approx(want, abs=1e-4), g


def _master_image(x, ref_width_db, amount=1.0, sr=SR):
    """The mix ``x`` as the module doc says the master's stereo stage leaves it, written out
    directly: the side/mid energy ratio taken to the reference's (moved by ``amount`` in dB),
    first by a side gain of at most 2 x 10^(9/20) (width 2, +9 dB of side EQ), then by the mid
    delayed 15 ms at the power still missing (at most 0.5 of the mid's)."""
    m, s = (x[0] + x[1]) / 2, (x[0] - x[1]) / 2
    em, es = float(m @ m), float(s @ s)
    rho = (10 ** (ref_width_db / 10)) ** amount * (es / em) ** (1 - amount)
    k = min(2 * 10 ** (9 / 20), math.sqrt(rho * em / es))
    w = math.sqrt(min(max(rho - k * k * es / em, 0.0), 0.5))
    d = int(round(0.015 * sr))
    side = k * s + w * np.concatenate([np.zeros(d), m[:-d]])
    return np.stack([m + side, m - side]), k, w


def test_plr_probe_reads_the_mix_through_the_masters_stereo_stage():
    """With the reference's width, the probe's PLR of D + g R is the meter's on the mix as the
    master's stereo stage will widen it (written out independently above): a near-mono mix
    (the widener fills what the side gain cannot), a mix wider than the reference (narrowed),
    and a width amount of 0.5.  The side gain alone brings the width to the reference's."""
    from automix.analysis import integrated_loudness, stereo_width_db
    from automix.space import _PlrProbe

    a, b = notes(12, 41), notes(12, 42)
    ret = wet(a + b, 1.5, seed=3)
    cases = {"near mono": (np.stack([a + b, a + 0.999 * b]), -6.0, 1.0),
             "wide": (np.stack([a + 0.2 * b, 0.3 * a + b]), -12.0, 1.0),
             "half amount": (np.stack([a + 0.9 * b, a + b]), -4.0, 0.5)}
    for name, (dry, width, amount) in cases.items():
        probe = _PlrProbe(dry, ret, SR, width, amount)
        for g in (0.0, 0.1, 0.4, 1.0):
            image, k, w = _master_image(dry + g * ret, width, amount)
            want = 20 * math.log10(np.abs(image).max()) - integrated_loudness(image, SR)
            assert probe(g) == pytest.approx(want, abs=1e-3), (name, g)
            assert probe.stage(g) == pytest.approx((k, w), rel=1e-9, abs=1e-6), (name, g)
            if w == 0 and amount == 1:
                assert stereo_width_db(image) == pytest.approx(width, abs=1e-6), (name, g)
    # near mono: the master widens with its widener, whose delayed mid adds to the mid's
    # peaks; a reverb that fills the side takes its place (raised by the side gain), so the
    # master's PLR falls by more than half a dB where the mix's does not fall at all (the
    # floor reads the former; Greshz-CoolSnip in benchmarks/space.py)
    dry = cases["near mono"][0]
    plain, master = _PlrProbe(dry, ret, SR), _PlrProbe(dry, ret, SR, -6.0)
    assert master.stage(0.0)[1] > 0.3 > master.stage(0.1)[1]
    assert plain(0.1) >= plain(0.0) and master(0.1) < master(0.0) - 0.5


@pytest.mark.parametrize("dynamics", [1.0, 0.5])
def test_master_plr_target_with_a_reverb_return(dynamics):
    """A reverb return added to a mix changes the mix's PLR; the master's limiter ceiling
    follows the design with it: ``goal + target_plr`` with ``target_plr = mix_plr + dynamics
    (reference's - mix_plr)``, the mix's PLR measured here (true peak - BS.1770 loudness),
    clipped to [ceiling - 6, ceiling] and rounded down to 0.01 dB, so the return moves the
    ceiling by ``(1 - dynamics)`` x the PLR it moved; the master peaks under it."""
    from automix.analysis import analyze, integrated_loudness
    from automix.api import Amounts
    from automix.dsp.reverb import ReverbState
    from automix.mastering import master_stage, measure_mix

    a, b = notes(12, 51), notes(12, 52)
    dry = np.stack([a + 0.5 * b, 0.5 * a + b])
    rev = {"predelay_ms": 20.0, "rt60_low_s": 1.8, "rt60_mid_s": 1.5, "rt60_high_s": 0.8,
           "early_late_db": -6.0, "width": 1.0, "hp_hz": 150.0, "lp_hz": 9000.0}
    mixes = {"dry": dry, "wet": dry + 0.5 * ReverbState(rev, SR).process(dry)}
    ref = dict(analyze(wet(a + b, 1.0, seed=9), SR), integrated_lufs=-16.0)
    plr, ceilings = {}, {}
    for name, mix in mixes.items():
        plr[name] = 20 * math.log10(true_peak_linear(mix)) - integrated_loudness(mix, SR)
        features, spectra = measure_mix(mix.astype(np.float32), SR)
        for ref_plr in (10.0, 11.5):
            master, goal, final = master_stage(
                mix, SR, dict(ref, plr_db=ref_plr), features, None, -1.0,
                Amounts(dynamics=dynamics), refine_steps=5, spectra=spectra)
            target = plr[name] + dynamics * (ref_plr - plr[name])
            want = math.floor(100 * float(np.clip(goal + target, -7.0, -1.0)) + 1e-6) / 100
            assert goal == -16.0 and -7.0 < want < -1.0
            assert master["limiter"]["ceiling_dbtp"] == pytest.approx(want, abs=0.011), name
            assert 20 * math.log10(true_peak_linear(final)) <= want + 1e-6
            ceilings[name, ref_plr] = master["limiter"]["ceiling_dbtp"]
    assert abs(plr["wet"] - plr["dry"]) > 0.5   # the return moved the mix's PLR
    for ref_plr in (10.0, 11.5):
        moved = ceilings["wet", ref_plr] - ceilings["dry", ref_plr]
        assert moved == pytest.approx((1 - dynamics) * (plr["wet"] - plr["dry"]), abs=0.025)


def test_reverb_tail_runs_past_the_last_stem(tmp_path):
    """The mix runs on after the stems end by the send buses' tail (a reverb's pre-delay + 1.4
    x its longest RT60), so a note at the song's end keeps its reverb; automix render and the
    job agree on the length; a console without buses keeps the stems' length."""
    from automix.render import bus_tail_samples

    x = np.zeros(3 * SR)
    x[-SR // 10:] = 0.3 * np.random.default_rng(4).standard_normal(SR // 10)  # a burst to the end
    (tmp_path / "st").mkdir()
    sf.write(tmp_path / "st" / "x.wav", x, SR, subtype="FLOAT")
    rev = {"type": "reverb", "predelay_ms": 20.0, "rt60_low_s": 1.0, "rt60_mid_s": 1.2,
           "rt60_high_s": 0.8, "early_late_db": -6.0, "width": 1.0, "hp_hz": 150.0,
           "lp_hz": 9000.0}
    base = {"format": automix.settings.FORMAT, "version": 2, "sample_rate": SR,
            "tracks": [{"name": "x", "file": "x.wav"}],
            "master": automix.settings.tidy_master({}, SR)}
    flat = automix.settings.validate(base, "t", tidy=True)
    spaced = automix.settings.validate(dict(base, buses=[{"name": "v", "processor": rev}],
                                            sends=[{"source": "x", "bus": "v"}]), "t", tidy=True)
    assert bus_tail_samples(flat) == 0
    assert bus_tail_samples(spaced) == math.ceil((0.02 + 1.4 * 1.2) * SR)
    mix_flat, _ = render_settings(flat, tmp_path / "st")
    mix, _ = render_settings(spaced, tmp_path / "st")
    assert mix_flat.shape[1] == x.size and mix.shape[1] == x.size + bus_tail_samples(spaced)
    # the tail after the stem's end: the reverb's decay, 60 dB per RT60 (mid band, +-20 %)
    tail = mix[:, x.size:].mean(axis=0)
    sos = scipy.signal.butter(4, [700, 2800], "bandpass", fs=SR, output="sos")
    e = np.cumsum((scipy.signal.sosfilt(sos, tail) ** 2)[::-1])[::-1]
    edc = 10 * np.log10(e / e[0])
    rt = 3 * (np.argmax(edc <= -25) - np.argmax(edc <= -5)) / SR
    assert abs(rt / 1.2 - 1) < 0.2, rt
    # the echo's tail: its repeats down to -60 dB, at most 10 s
    echo = {"type": "echo", "time_ms": 250.0, "feedback": 0.5, "damping_hz": 6000.0}
    with_echo = dict(spaced, buses=[{"name": "v", "processor": echo}])
    assert bus_tail_samples(with_echo) == math.ceil(0.25 * 10 * SR)   # 0.5^10 = -60.2 dB
    loud = dict(spaced, buses=[{"name": "v", "processor": dict(echo, feedback=0.99)}])
    assert bus_tail_samples(loud) == 10 * SR


def test_width_for_matches_the_closed_form():
    """A return alone (no dry mix) of width w has L/R coherence (1 - w^2) / (1 + w^2) when its
    mid and side parts are independent and equally loud: the fitted width for a target
    coherence c is sqrt((1 - c) / (1 + c)), to the grid's 0.05."""
    from automix.space import _width_for

    rng = np.random.default_rng(3)
    m, s = rng.standard_normal((2, 20 * SR))
    dry = np.zeros((2, m.size))
    for c in (0.1, 0.4, 0.8):
        assert _width_for(c, dry, m, s, 1.0, SR) == pytest.approx(math.sqrt((1 - c) / (1 + c)),
                                                                  abs=0.03), c
    # a mono dry mix and a mono target: the return must be mono (width 0), while a less
    # coherent target asks for a wider return the quieter it is
    d = rng.standard_normal(m.size)
    assert _width_for(1.0, np.stack([d, d]), m, s, 0.5, SR) == 0.0
    assert _width_for(0.9, np.stack([d, d]), m, s, 0.5, SR) > \
        _width_for(0.9, np.stack([d, d]), m, s, 1.0, SR)


def test_decay_plot_without_any_reading_says_so_without_a_warning():
    """A reference too short or dense for a blind RT60 has no decay points: the panel says
    "no reading" instead of an empty legend (matplotlib's warning would reach the user)."""
    import warnings

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from automix.report import plot_decay

    fig, (a, b) = plt.subplots(1, 2)
    decay = {"bands": ["low", "mid", "high"], "centres_hz": [250.0, 1000.0, 4000.0],
             "rt60": {"reference": [None, None, None], "mix": [None, None, None]},
             "early_late": {"reference": [None, None, None]}}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plot_decay(a, b, decay)
    assert [t.get_text() for t in a.texts] == ["no reading"] and a.get_legend() is None
    decay["rt60"]["mix"] = [0.5, None, 0.4]
    fig2, (c, d) = plt.subplots(1, 2)
    plot_decay(c, d, decay)
    assert [t.get_text() for t in c.get_legend().get_texts()] == ["mix"] and not c.texts
    plt.close(fig)
    plt.close(fig2)


def test_reverb_return_with_a_predelay_is_the_return_without_it_delayed():
    """The pre-delay fit's premise (automix/space.py: one render gives every pre-delay): the
    reverb is linear and time-invariant and its pre-delay a pure delay, so its return at
    pre-delay ``d`` (a whole number of samples) is its return at pre-delay 0 delayed by ``d``
    samples, block by block as in one call.  Not bit for bit: the impulse response is built on
    an FFT grid whose length grows with the pre-delay, on which the early reflections'
    fractional delays and the return filters wrap differently, below -100 dB (the reverb's
    docstring); a fractional pre-delay is not such a shift."""
    from automix.dsp.reverb import ReverbState

    p = {"rt60_low_s": 0.9, "rt60_mid_s": 0.7, "rt60_high_s": 0.4, "early_late_db": -6.0,
         "width": 0.8, "hp_hz": 150.0, "lp_hz": 9000.0}
    x = notes(4, 3)
    y0 = ReverbState({**p, "predelay_ms": 0.0}, SR).process(x[None])
    top = np.abs(y0).max()
    for d_ms in (20.0, 40.0, 80.0):                   # 441, 882, 1764 samples at 22.05 kHz
        d = int(round(d_ms * SR / 1000))
        want = np.pad(y0, ((0, 0), (d, 0)))[:, :x.size]
        whole = ReverbState({**p, "predelay_ms": d_ms}, SR).process(x[None])
        state = ReverbState({**p, "predelay_ms": d_ms}, SR, block=4096)
        blocks = np.concatenate([state.process(x[None, i:i + 4096])
                                 for i in range(0, x.size, 4096)], axis=1)
        for y in (whole, blocks):
            assert np.abs(y - want).max() < 1e-5 * top, d_ms
    # and a fractional pre-delay is not a whole-sample shift (the test can tell)
    half = ReverbState({**p, "predelay_ms": 150.0}, SR).process(x[None])   # 3307.5 samples
    assert np.abs(half - np.pad(y0, ((0, 0), (3308, 0)))[:, :x.size]).max() > 0.1 * top


def test_plr_probe_reads_a_delayed_return():
    """The probe given the return from ``lead`` samples early reads, after ``delay(d)``, the
    PLR of ``D + g R`` with R delayed by ``d`` (``ret[:, lead - d:][:, :n]``), as the meter
    reads the explicitly delayed mix through the master's stereo stage, also coming back to a
    delay read before; the near-mono case uses the widener's parts."""
    from automix.analysis import integrated_loudness
    from automix.space import _PlrProbe

    a, b = notes(12, 41), notes(12, 42)
    n, lead = a.size, 3000
    ret = wet(np.concatenate([np.zeros(lead), a + b]), 1.5, seed=3)
    cases = {"near mono": (np.stack([a + b, a + 0.999 * b]), -6.0),
             "wide": (np.stack([a + 0.2 * b, 0.3 * a + b]), -12.0),
             "as it is": (np.stack([a + 0.2 * b, 0.3 * a + b]), None)}
    for name, (dry, width) in cases.items():
        probe = _PlrProbe(dry, ret, SR, width, lead=lead)
        assert probe.widens == (name == "near mono")
        for d in (0, 700, 3000, 700):
            probe.delay(d)
            for g in (0.0, 0.3, 1.0):
                x = dry + g * ret[:, lead - d:lead - d + n]
                image = x if width is None else _master_image(x, width)[0]
                want = 20 * math.log10(np.abs(image).max()) - integrated_loudness(image, SR)
                assert probe(g) == pytest.approx(want, abs=1e-3), (name, d, g)
    with pytest.raises(ValueError):
        probe.delay(lead + 1)


def test_predelay_fit_reads_the_delayed_return(monkeypatch):
    """With ``FIT_PREDELAY`` the return is rendered once at ``20 ms - k`` whole STFT hops and
    read ``k`` hops later (its frames shifted, the PLR probe's slices moved): with the grid
    reduced to the default, that reading is the one of the return rendered at 20 ms (same
    width, send level, PLR floor, cost to float precision).  With the whole grid the written
    pre-delay is one of the grid's and the chosen pair costs no more than the default's."""
    import automix.space as S

    a, b = notes(20, 1), notes(20, 2)
    stems = {"keys": a[None], "perc": b[None]}
    settings = flat_settings(["keys", "perc"], [0.0, -2.0], [-0.3, 0.3], SR)
    ref = np.stack([a + b, 0.8 * a + b]) + wet(a + b, 1.5)
    ref_amb = A.ambience(ref, SR)
    kw = dict(ref_plr_db=13.0, ref_width_db=-10.0)

    def plan(fit, grid=S.PREDELAYS_MS):
        monkeypatch.setattr(S, "FIT_PREDELAY", fit)
        monkeypatch.setattr(S, "PREDELAYS_MS", grid)
        return plan_space(ref_amb, settings, stems, SR, **kw)

    default, shifted, fitted = plan(False), plan(True, (20.0,)), plan(True)
    assert default[0], default[2]
    d, s, f = default[3], shifted[3], fitted[3]
    assert s["reverb"] == d["reverb"] and s["send_db"] == d["send_db"]
    assert s["plr_floor_db"] == pytest.approx(d["plr_floor_db"], abs=1e-6)
    assert s["cost"] == pytest.approx(d["cost"], rel=1e-4)
    hop_ms = 1000 * A._pow2(0.023, SR) / A.HOP_DIV / SR
    grid = set(f["predelay_costs"])
    assert f["reverb"]["predelay_ms"] in grid and 20.0 in grid and len(grid) == 4
    assert all(abs((g - 20.0) / hop_ms - round((g - 20.0) / hop_ms)) < 0.02 for g in grid)
    assert f["cost"] <= d["cost"] + 1e-9
    if fitted[0]:   # the settings carry it
        assert fitted[0][0]["processor"]["predelay_ms"] == f["reverb"]["predelay_ms"]


def test_predelay_fit_finds_a_references_predelay(monkeypatch):
    """Dry notes against a reference made of them plus their convolution with exponential
    noise (RT60 1.5 s) that starts 40 or 80 ms late: the fitted pre-delay is the grid's
    nearest (37.4 / 78.0 ms at 22.05 kHz: 20 ms -+ whole STFT hops), with no PLR floor.  (A
    reference without pre-delay reads 2.6 and 20 ms within 0.01 of each other: the proxy tells
    tens of ms apart, not a few; and on the rendered mix the mean early/late error does not
    fall with the fitted pre-delay here, its low band's stays: BENCHMARKS.md.)"""
    import automix.space as S

    monkeypatch.setattr(S, "FIT_PREDELAY", True)
    a, b = notes(20, 1), notes(20, 2)
    stems = {"keys": a[None], "perc": b[None]}
    settings = flat_settings(["keys", "perc"], [0.0, 0.0], [0.0, 0.0], SR)
    h = exp_noise_ir(1.5, 5)
    for pre_ms, want in ((40, 37.4), (80, 78.0)):
        hd = np.pad(h, ((0, 0), (int(round(pre_ms * SR / 1000)), 0)))
        x = a + b
        y = np.stack([scipy.signal.fftconvolve(x, hd[c])[:x.size] for c in range(2)])
        ref = x + y * math.sqrt(2 * (x ** 2).sum() / (y ** 2).sum())
        buses, _, _, info = plan_space(A.ambience(ref, SR), settings, stems, SR)
        assert buses and buses[0]["processor"]["predelay_ms"] == want, info["predelay_costs"]
