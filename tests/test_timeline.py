"""Time plan: sections + rider + contrast into settings v2, rendered by the console."""
import numpy as np
import pytest

from automix import analysis, timeline
from automix.audio import BlockReader
from automix.console.blocks import render_graph
from automix.errors import AutomixError
from automix.settings import validate
from synth_song import SR, arrangement

PARTS = {"keys": [(0, 36)], "bass": [(12, 36)], "drums": [(12, 36)], "Lead Vocal": [(4, 34)]}


@pytest.fixture(scope="module")
def song():
    stems = arrangement({k if k != "Lead Vocal" else "vocal": v for k, v in PARTS.items()}, 36)
    stems["Lead Vocal"] = stems.pop("vocal") * 2.0
    for k in ("keys", "bass", "drums"):                  # the accompaniment thickens at 24 s
        stems[k][:, 24 * SR:] *= 2.0
    settings = {"format": "automix.settings", "version": 2, "sample_rate": SR,
                "tracks": [{"name": k, "file": f"{k}.wav", "gain_db": -3.0} for k in stems],
                "master": {}}
    return stems, validate(settings)


def _render(settings, stems):
    sources = lambda: [BlockReader.of_array(stems[t["name"]]) for t in settings["tracks"]]  # noqa: E731
    n = max(s.frames for s in sources())
    lead = dict(settings, tracks=[dict(t, mute=t["name"] != "Lead Vocal")
                                  for t in settings["tracks"]])
    rest = dict(settings, tracks=[dict(t, mute=t["name"] == "Lead Vocal")
                                  for t in settings["tracks"]])
    return render_graph(validate(lead), sources(), n), render_graph(validate(rest), sources(), n)


def _margins(lead, rest, edges):
    ls, rs = (analysis.short_term_loudness(x, SR) for x in (lead, rest))
    t0 = np.arange(len(ls)) * 0.1
    out = []
    for a, b in zip(edges[:-1], edges[1:]):
        m = (t0 >= a) & (t0 + 3 <= b) & (ls > ls.max() - 20)
        if m.sum() > 5 and rs[m].max() > -70:
            out.append(10 * np.log10(np.mean(10 ** (ls[m] / 10)))
                       - 10 * np.log10(np.mean(10 ** (rs[m] / 10))))
    return np.array(out)


def test_plan_rides_the_lead_through_the_console_render(song):
    stems, settings = song
    p = timeline.plan(stems, settings, lead_margin_db=4.0)
    assert p.lead.name == "Lead Vocal"
    bounds = [s.start_s for s in p.sections[1:]]
    assert any(abs(b - 12.0) <= 0.5 for b in bounds) and any(abs(b - 24.0) <= 0.5 for b in bounds)
    new = validate(p.settings)                              # a valid v2 settings file
    lane = new["tracks"][[t["name"] for t in new["tracks"]].index("Lead Vocal")]["automation"]
    assert lane["gain_db"]["points"] and all(abs(pt["gain_db"]) <= 6 for pt in
                                             lane["gain_db"]["points"])
    edges = [0.0] + bounds + [36.0]
    before = _margins(*_render(settings, stems), edges)
    after = _margins(*_render(new, stems), edges)
    # the strip has no EQ or compressor here, so the plan's estimate is the rendered margin
    assert np.abs(after - 4.0).max() < 1.0, (before, after)
    assert np.ptp(after) < np.ptp(before) - 3.0


def test_static_and_no_lead(song):
    stems, settings = song
    p = timeline.plan(stems, settings, static=True)
    assert p.settings is settings and p.lead is None and len(p.sections) >= 3
    p = timeline.plan(stems, settings, lead="none")
    assert all("automation" not in t for t in p.settings["tracks"])
    with pytest.raises(AutomixError, match="--lead-margin 30"):
        timeline.plan(stems, settings, lead_margin_db=30)


def test_a_found_lead_far_under_the_rest_is_not_ridden(song):
    """An automatically found lead the static mix keeps more than 10 dB under the rest is a
    background part: no rider (a named lead, or a margin target, is ridden all the same)."""
    stems, settings = song
    low = validate(dict(settings, tracks=[dict(t, gain_db=-30.0) if t["name"] == "Lead Vocal"
                                          else t for t in settings["tracks"]]))
    p = timeline.plan(stems, low, keep_lead_level=True)
    assert p.lead.name == "Lead Vocal" and p.ride is None
    assert any("background part" in n for n in p.notes)
    assert all("automation" not in t for t in p.settings["tracks"])
    named = timeline.plan(stems, low, lead="Lead Vocal", keep_lead_level=True)
    assert named.ride is not None and any(g != 0 for g in named.ride.gains_db)
    assert timeline.plan(stems, settings, keep_lead_level=True).ride is not None


def test_contrast_follows_a_reference_with_more_spread(song):
    stems, settings = song
    rng = np.random.default_rng(5)
    ref = rng.standard_normal((2, 36 * SR)) * 0.05
    ref[:, 18 * SR:] *= 10 ** (8 / 20)                    # a reference whose second half is +8 LU
    p = timeline.plan(stems, settings, lead="none", reference=ref)
    assert p.contrast is not None and p.contrast.lra_reference > p.contrast.lra_mix + 1.0
    assert p.contrast.lra_planned > p.contrast.lra_mix
    lanes = [t["automation"]["gain_db"] for t in p.settings["tracks"] if "automation" in t]
    assert len(lanes) == 4 and all(lane == lanes[0] for lane in lanes)
    assert max(abs(pt["gain_db"]) for pt in lanes[0]["points"]) <= 3.0
    p0 = timeline.plan(stems, settings, lead="none", reference=ref, dynamics_amount=0.0)
    assert p0.contrast is None
    # a reference whose loudness range is the mix's: no lane
    same = timeline.plan(stems, settings, lead="none", reference_lra_lu=p.contrast.lra_mix)
    assert same.contrast is not None and same.contrast.lane["points"] == []


def test_deesser_fires_on_a_sibilant_voice_against_a_dull_reference_only():
    """The plan's de-esser rule: a voice with 60 ms bursts of 5-10 kHz noise (an "s" every
    0.5 s) over a dull reference (nothing above 3 kHz) gets a de-esser; against a bright
    reference (white noise: 4-10 kHz over 0.3-4 kHz is +2.1 dB) it does not; a stem with the
    same audio whose name does not say voice never does; ``--static`` sets none."""
    from scipy.signal import butter, sosfilt

    rng = np.random.default_rng(7)
    seconds = 12
    n = seconds * SR
    t = np.arange(n) / SR
    tone = sum(np.sin(2 * np.pi * 220 * k * t) / k for k in range(1, 10)) * 0.1
    hiss = sosfilt(butter(6, [5000, 10000], "bandpass", fs=SR, output="sos"),
                   rng.standard_normal(n)) * 0.05
    voice = tone + hiss * ((t % 0.5) < 0.06)
    keys = arrangement({"keys": [(0, seconds)]}, seconds)["keys"]
    dull = sosfilt(butter(8, 3000, fs=SR, output="sos"), rng.standard_normal((2, n)), axis=1)
    bright = rng.standard_normal((2, n)) * 0.1
    from automix.dsp.deesser import sibilance_db
    assert sibilance_db(voice, SR) > sibilance_db(dull, SR) + 10
    assert sibilance_db(voice, SR) < sibilance_db(bright, SR) - 3

    def plan(name, ref, **kw):
        stems = {"keys": keys, name: np.stack([voice, voice])}
        s = validate({"format": "automix.settings", "version": 2, "sample_rate": SR,
                      "tracks": [{"name": k, "file": f"{k}.wav"} for k in stems], "master": {}})
        return timeline.plan(stems, s, reference=ref, keep_lead_level=True, **kw)

    fired = plan("Lead Vox", dull)
    assert set(fired.deesser) == {"Lead Vox"}
    assert -90 < fired.deesser["Lead Vox"]["threshold_db"] < 0
    assert any(nt.startswith("de-esser on Lead Vox") for nt in fired.notes)
    assert plan("backing vocals", dull, lead="none").deesser.keys() == {"backing vocals"}
    assert plan("Lead Vox", bright).deesser == {}
    assert plan("synth lead", dull).deesser == {}
    assert plan("Lead Vox", dull, static=True).deesser == {}
