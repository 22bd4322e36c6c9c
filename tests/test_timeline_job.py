"""The time plan in the mix job (issue 19): sections, the lead's rider lane, the de-esser and the
master's top and tail are written to settings.json, ``automix render`` of that file gives the
job's mix and master bit for bit, ``--static`` gives none of them, and the options' errors are
one line."""
import json

import numpy as np
import pytest
import soundfile as sf

import automix
from automix.cli import main
from automix.errors import AutomixError
from automix.render import render_settings

SR = 22050
SECONDS = 16
LEAD_IN_S = 1.0  # silence before anything plays: trimmed, less the 50 ms pre-roll


def _song(folder, rng):
    """A vocal-like lead over an accompaniment that is 6 dB louder from 8 s on, after 1 s of
    silence."""
    folder.mkdir(parents=True, exist_ok=True)
    n = SR * SECONDS
    t = np.arange(n) / SR
    on = (t >= LEAD_IN_S).astype(float)
    thick = np.where(t >= 8.0, 2.0, 1.0) * on
    beat = (t * 2) % 1
    kick = np.sin(2 * np.pi * 55 * t) * np.exp(-beat * 10) * 0.5 * thick
    chord = sum(np.sin(2 * np.pi * f * t + k) for k, f in enumerate([220, 277, 330])) * 0.06
    pad = np.stack([chord, 0.9 * chord]) * thick
    f0 = 220 * (1 + 0.05 * np.sin(2 * np.pi * 0.5 * t))
    phase = 2 * np.pi * np.cumsum(f0) / SR
    voice = sum(np.sin(k * phase) / k for k in range(1, 12)) * 0.15
    voice *= (0.6 + 0.4 * np.sin(2 * np.pi * 1.5 * t) ** 2) * on
    voice += 0.02 * rng.standard_normal(n) * ((t % 0.5) < 0.05) * on   # sibilant bursts
    sf.write(folder / "kick.wav", kick, SR)
    sf.write(folder / "pad.wav", pad.T, SR)
    sf.write(folder / "lead vocal.wav", voice, SR)
    mix = kick[None] * 0.7 + pad * 0.5 + voice[None]
    return mix


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    root = tmp_path_factory.mktemp("timeline")
    ref = _song(root / "stems", np.random.default_rng(3))
    sf.write(root / "reference.wav", (0.5 * ref / np.abs(ref).max()).T, SR, subtype="FLOAT")
    return root


def test_job_writes_sections_lanes_top_tail_and_renders_bit_exactly(case):
    r = automix.mix(case / "stems", case / "reference.wav", model=None, refine_steps=30,
                    fade_out=2.0, export_stems=True)
    s = r.settings
    assert s["version"] == 2 and s["sections"]
    assert s["sections"][0]["start_s"] == 0.0
    ends = [sec["end_s"] for sec in s["sections"]]
    assert ends == sorted(ends) and abs(ends[-1] - SECONDS) < 0.01
    vocal = next(t for t in s["tracks"] if t["name"] == "lead vocal")
    assert vocal["automation"]["gain_db"]["points"], "the lead has no rider lane"
    assert any("lead: lead vocal" in n for n in r.notes), r.notes
    tt = s["master"]["top_tail"]
    assert tt["fade_out_s"] == 2.0
    assert abs(tt["start_s"] - (LEAD_IN_S - 0.05)) < 0.01, tt
    assert r.master.shape[1] == pytest.approx((SECONDS - tt["start_s"]) * SR, abs=2)
    assert np.abs(r.master[:, -1]).max() < 1e-12 and np.abs(r.master[:, -SR:]).max() > 0
    # mix.wav is cut to the master's span (no fades): the two line up sample for sample, and
    # the printed stems still sum to it
    assert r.mix.shape == r.master.shape
    assert np.abs(r.mix[:, :int(0.04 * SR)]).max() == 0.0 < np.abs(r.mix[:, int(0.06 * SR)]).max()
    assert np.abs(r.mix[:, -1]).max() > 0                  # no fade-out on the mix
    assert all(p.shape == r.mix.shape for p in r.stems.values())
    assert np.allclose(sum(r.stems.values()), r.mix, atol=1e-6)
    printed = {}
    mix, master = render_settings(s, case / "stems", stems_out=printed)
    assert np.array_equal(r.mix, mix)
    assert np.array_equal(r.master, master)
    assert all(np.array_equal(printed[k], r.stems[k]) for k in r.stems)


def test_static_has_no_sections_lanes_or_trim(case):
    r = automix.mix(case / "stems", case / "reference.wav", model=None, refine_steps=30,
                    static=True)
    s = r.settings
    assert "sections" not in s and "top_tail" not in s["master"]
    assert not any(t.get("automation") or t.get("deesser") for t in s["tracks"])
    assert r.master.shape[1] == SECONDS * SR


def test_lead_none_and_named_lead(case, tmp_path):
    out = tmp_path / "out"
    assert main(["--stems", str(case / "stems"), "--reference", str(case / "reference.wav"),
                 "--no-model", "--refine-steps", "20", "--lead", "none", "-o", str(out)]) == 0
    s = json.loads((out / "settings.json").read_text())
    assert s["sections"]
    lanes = [t["automation"]["gain_db"]["points"] for t in s["tracks"] if t.get("automation")]
    # without a rider every track carries the same (contrast) lane, or none
    assert all(p == lanes[0] for p in lanes)
    # `automix render` of the written v2 file: the job's files, byte for byte
    again = tmp_path / "again"
    assert main(["render", "--stems", str(case / "stems"), "--settings",
                 str(out / "settings.json"), "-o", str(again)]) == 0
    for name in ("mix.wav", "master.wav"):
        assert (again / name).read_bytes() == (out / name).read_bytes(), name


@pytest.mark.parametrize("kwargs, message", [
    ({"lead": "nobody"}, "--lead nobody: no stem of that name"),
    ({"lead_margin": 20.0}, "--lead-margin 20.0: the lead's margin goes from -12 to 12 dB"),
    ({"fade_in": -1.0}, "--fade-in -1.0: a fade goes from 0 to 600 seconds"),
    ({"fade_out": 15.0, "fade_in": 5.0}, "longer together than the audio"),
])
def test_time_options_errors_are_one_line(case, kwargs, message):
    with pytest.raises(AutomixError) as err:
        automix.mix(case / "stems", case / "reference.wav", model=None, refine_steps=5,
                    **kwargs)
    text = str(err.value)
    assert message in text and "\n" not in text, text


@pytest.mark.parametrize("args, message", [
    (["--fade-out", "-2"], "argument --fade-out: a fade goes from 0 to 600 seconds"),
    (["--lead-margin", "13"], "argument --lead-margin: the lead's margin goes"),
    (["--lead", ""], "argument --lead"),
])
def test_cli_time_options_errors(case, capsys, args, message):
    with pytest.raises(SystemExit) as exit_:
        main(["--stems", str(case / "stems"), "--reference", str(case / "reference.wav"),
              "-o", "/nonexistent/x"] + args)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_report_draws_loudness_over_time_with_sections_and_lane(tmp_path):
    from matplotlib.image import imread

    from automix.report import write_report

    rng = np.random.default_rng(0)
    mix = 0.1 * rng.standard_normal((2, SR * 10))
    a = {"integrated_lufs": -20.0, "true_peak_dbtp": -1.0, "plr_db": 10.0,
         "loudness_range_lu": 3.0, "width_db": -10.0, "crest_factor_db": 12.0,
         "tonal_balance": {"bands_hz": [100.0, 1000.0], "mid_db": [0.0, -1.0],
                           "side_db": [-10.0, -11.0]}}
    settings = {"analysis": {"reference": a, "mix": a, "master": a}, "sample_rate": SR,
                "master": {"eq": [], "compressor": {}, "limiter": {}, "side_eq": [],
                           "widener": {}, "width": 1.0, "gain_db": 0.0},
                "tracks": [{"name": "vox", "automation": {"gain_db": {"ramp_ms": 1000.0, "points": [
                    {"time_s": 0.0, "gain_db": 2.0}, {"time_s": 5.0, "gain_db": -1.0}]}}}],
                "sections": [{"start_s": 0.0, "end_s": 5.0, "label": "A: x (soft)"},
                             {"start_s": 5.0, "end_s": 10.0, "label": "B: x, y (loud)"}]}
    plain = write_report(tmp_path / "plain.png", settings)
    timed = write_report(tmp_path / "timed.png", settings, {
        "reference_st": np.full(70, -20.0), "mix": mix, "master": mix, "sample_rate": SR,
        "lead": "vox"})
    assert imread(timed).shape[0] > imread(plain).shape[0] * 1.3


def test_rider_without_target_evens_sections_and_keeps_the_mean():
    """``target_margin_db=None`` (the job's default): the sections' margins meet at their
    duration-weighted mean, so the lead's average level stays where the fit put it."""
    from automix.lead import rider_from_loudness

    t = np.arange(0, 40, 0.1)                  # 3 s windows every 0.1 s over 43 s
    lead = np.full(len(t), -20.0)
    rest = np.where(t + 1.5 < 20.0, -22.0, -16.0)   # margin +2 then -4 dB
    ride = rider_from_loudness(lead, rest, [0.0, 20.0, 43.0], None)
    g = np.array(ride.gains_db)
    after = np.array(ride.margins_before) + g
    assert abs(after[0] - after[1]) < 0.01
    assert abs(np.average(g, weights=[20.0, 23.0])) < 0.2, g
    fixed = rider_from_loudness(lead, rest, [0.0, 20.0, 43.0], 1.0)
    assert np.allclose(np.array(fixed.margins_before) + np.array(fixed.gains_db), 1.0, atol=0.01)
