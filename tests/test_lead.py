"""The lead on top: finding it, riding it section by section, and the sections' contrast."""
import numpy as np
import pytest

from automix import analysis, lead
from automix.console.blocks import lane_db
from automix.errors import AutomixError
from synth_song import SR, arrangement, bass, chords, drums, vocal

SECONDS = 30


def _margin(lead_audio, rest_audio, edges):
    """Lead minus rest short-term loudness per section, windows wholly inside (the test's
    own measurement, from the BS.1770 meter)."""
    ls = analysis.short_term_loudness(lead_audio, SR)
    rs = analysis.short_term_loudness(rest_audio, SR)
    t0 = np.arange(len(ls)) * 0.1
    out = []
    for a, b in zip(edges[:-1], edges[1:]):
        m = (t0 >= a) & (t0 + 3.0 <= b)
        e = lambda v: 10 * np.log10(np.mean(10 ** (v[m] / 10)))  # noqa: E731
        out.append(e(ls) - e(rs))
    return np.array(out)


@pytest.fixture(scope="module")
def song():
    rng = np.random.default_rng(1)
    n = SECONDS * SR
    acc = 0.25 * (drums(SECONDS, rng) + bass(SECONDS) + chords(SECONDS))[:n]
    acc[n // 2:] *= 10 ** (6 / 20)                       # the arrangement thickens by 6 dB
    voc = 0.2 * vocal(SECONDS)[:n]
    return np.stack([voc, voc]), np.stack([acc, acc])


def test_rider_keeps_the_margin_within_1_db_of_the_target(song):
    voc, acc = song
    edges = [0.0, 15.0, 30.0]
    before = _margin(voc, acc, edges)
    assert before[0] - before[1] == pytest.approx(6.0, abs=0.3)
    target = before[0] - 2.0                               # a target between the two halves
    ride = lead.rider_lane(voc, acc, SR, edges, target_margin_db=target)
    ridden = lead.lane_apply(voc, ride.lane, SR)
    after = _margin(ridden, acc, edges)
    assert np.abs(after - target).max() < 1.0, (before, after, target)
    assert np.ptp(after) < 0.5 < 5.0 < np.ptp(before)
    g = lane_db(ride.lane, 0, voc.shape[1], SR)
    assert np.abs(g).max() <= lead.MAX_RIDE_DB
    # continuous: no step larger than the ramp allows
    pts = [p["gain_db"] for p in ride.lane["points"]]
    steps = [abs(b - a) for a, b in zip(pts[:-1], pts[1:])]
    allowed = max(steps) / (ride.lane["ramp_ms"] / 1000 * SR)
    assert np.abs(np.diff(g)).max() <= allowed * (1 + 1e-9)
    # the ramp is centred on the boundary
    mid = lane_db(ride.lane, int(15.0 * SR), 1, SR)[0]
    assert mid == pytest.approx(np.mean(ride.gains_db), abs=0.02)


def test_rider_holds_within_6_db_and_through_sections_without_the_lead(song):
    voc, acc = song
    voc = voc.copy()
    voc[:, 10 * SR:20 * SR] = 0.0                          # the lead rests in the middle
    edges = [0.0, 10.0, 20.0, 30.0]
    ride = lead.rider_lane(voc, acc, SR, edges, target_margin_db=20.0)
    assert ride.clipped and max(ride.gains_db) == lead.MAX_RIDE_DB
    assert ride.margins_before[1] is None
    assert ride.gains_db[1] == ride.gains_db[2]           # takes the next section's gain


def test_rider_evens_out_the_sections_when_the_target_is_out_of_reach(song):
    voc, acc = song
    edges = [0.0, 15.0, 30.0]
    before = _margin(voc, acc, edges)
    ride = lead.rider_lane(voc, acc, SR, edges, target_margin_db=before.max() + 20.0)
    after = _margin(lead.lane_apply(voc, ride.lane, SR), acc, edges)
    assert ride.clipped and max(abs(g) for g in ride.gains_db) <= lead.MAX_RIDE_DB
    assert np.ptp(after) < 0.5 < 5.0 < np.ptp(before)       # still evened out
    assert max(ride.gains_db) == lead.MAX_RIDE_DB           # and as close to the target as allowed


def test_section_lane_ramps_centred_and_never_overlapping():
    lane = lead.section_lane([0, 10, 11, 30], [0.0, 3.0, -2.0], ramp_ms=1000)
    assert lane["ramp_ms"] == 500.0                        # half the shortest section
    assert [p["time_s"] for p in lane["points"]] == [0.0, 9.75, 10.75]
    g = lane_db(lane, 0, 30 * 100, 100)
    assert g[900] == 0.0 and g[1000] == pytest.approx(1.5) and g[1050] == 3.0 and g[1100] == pytest.approx(0.5)
    assert g[1500] == -2.0
    assert lead.section_lane([0, 5, 9], [0.0, 0.0])["points"] == []


def test_lead_found_by_name_and_by_audio():
    parts = {k: [(0, 12)] for k in ("drums", "bass", "keys", "vocal")}
    stems = arrangement(parts, 12)
    named = {"Drums": stems["drums"], "Bass DI": stems["bass"], "Keys": stems["keys"],
             "BGV harmony": stems["vocal"], "Lead Vox": stems["vocal"] * 0.5}
    choice = lead.find_lead(named, SR)
    assert choice.name == "Lead Vox"
    anonymous = {f"track{i}": stems[k] for i, k in enumerate(("drums", "bass", "keys", "vocal"))}
    choice = lead.find_lead(anonymous, SR)
    assert choice.name == "track3", [(c.name, round(c.salience, 2), round(c.centroid_hz))
                                     for c in choice.cues]
    # the same from the 0.1 s hop powers the section finder computes
    from automix.sections import stem_features
    f = stem_features(anonymous, SR)
    assert lead.find_lead(anonymous, SR, hop_power=dict(zip(f.names, f.power))).name == "track3"
    no_lead = {k: anonymous[k] for k in ("track0", "track1")}   # drums and bass only
    assert lead.find_lead(no_lead, SR).name is None
    silent = dict(named, **{"Lead Vox": np.zeros_like(stems["vocal"])})
    assert lead.find_lead(silent, SR).name != "Lead Vox"


def test_lead_override():
    stems = {"a": np.zeros((2, SR)), "b": np.zeros((2, SR))}
    assert lead.find_lead(stems, SR, "b").name == "b"
    assert lead.find_lead(stems, SR, "none").name is None
    with pytest.raises(AutomixError, match="--lead c: no stem"):
        lead.find_lead(stems, SR, "c")


def test_name_cues():
    assert lead.name_score("Lead Vocal") > lead.name_score("vocals") > lead.name_score("melody")
    assert lead.name_score("backing vocals") < lead.name_score("vocals")
    assert lead.name_score("Voc_02") > 0 and lead.name_score("Trumpet") > 0
    assert lead.name_score("Keys") == 0.0
    assert lead.name_score("kick") < 0 and lead.name_score("Bass DI") < 0
    assert lead.name_score("Soft Saw Pad") < 0 and lead.name_score("bass vocal") > 0


def test_contrast_lane_moves_the_loudness_range_to_the_reference():
    rng = np.random.default_rng(3)
    edges = np.array([0.0, 8.0, 16.0, 24.0, 32.0])
    levels = np.array([-24.0, -20.0, -24.0, -20.0])       # sections 4 LU apart
    n = int(edges[-1] * SR)
    x = rng.standard_normal((2, n)) * 0.05
    for (a, b), l in zip(zip(edges[:-1], edges[1:]), levels):
        x[:, int(a * SR):int(b * SR)] *= 10 ** ((l + 20) / 20)

    def lra(y):                                            # the EBU meter on the rendered lane
        return analysis.loudness_range(analysis.short_term_loudness(y, SR))

    st = analysis.short_term_loudness(x, SR)
    l0 = lra(x)
    assert 3.0 < l0 < 5.0
    c = lead.contrast_lane(st, edges, reference_lra_lu=l0 + 2.0, tolerance_lu=0.0)
    assert c.lra_mix == pytest.approx(l0, abs=1e-9)
    assert lra(lead.lane_apply(x, c.lane, SR)) == pytest.approx(l0 + 2.0, abs=0.3)
    # louder sections up, softer down: the deviations scaled, the mean level kept
    assert c.gains_db[1] > 0 > c.gains_db[0] and abs(np.mean(c.gains_db)) < 0.05
    half = lead.contrast_lane(st, edges, reference_lra_lu=l0 + 2.0, amount=0.5, tolerance_lu=0.0)
    assert lra(lead.lane_apply(x, half.lane, SR)) == pytest.approx(l0 + 1.0, abs=0.3)
    less = lead.contrast_lane(st, edges, reference_lra_lu=l0 - 2.0, tolerance_lu=0.0)
    assert lra(lead.lane_apply(x, less.lane, SR)) == pytest.approx(l0 - 2.0, abs=0.3)
    assert c.gains_db[0] < less.gains_db[0] and less.gains_db[1] < 0
    wide = lead.contrast_lane(st, edges, reference_lra_lu=l0 + 20.0)
    assert max(abs(g) for g in wide.gains_db) == lead.MAX_CONTRAST_DB
    # within the tolerance: no lane; beyond it: to the near edge of the band
    assert lead.contrast_lane(st, edges, reference_lra_lu=l0 + 0.9).lane["points"] == []
    edge = lead.contrast_lane(st, edges, reference_lra_lu=l0 + 3.0)
    assert lra(lead.lane_apply(x, edge.lane, SR)) == pytest.approx(
        l0 + 3.0 - lead.CONTRAST_TOLERANCE_LU, abs=0.3)
    one = lead.contrast_lane(st, [0.0, 32.0], reference_lra_lu=l0 + 3.0)
    assert one.lane["points"] == []                        # one section: nothing to contrast


def test_rider_tolerance_and_sections_without_the_lead():
    """The job's evening-out: a section within ``tolerance_db`` of the mean margin is left
    alone, one further away is brought to the band's edge; a section where the lead does not
    play (``plays``) has no margin and takes its neighbour's gain."""
    from automix.lead import rider_from_loudness

    t0 = np.arange(0, 27.01, 0.1)                     # windows of 3 s over 30 s
    lead_st = np.full(len(t0), -20.0)
    rest = np.select([t0 + 3 <= 10.0, t0 >= 10.0], [-20.0, -17.0], -18.0)
    rest[t0 >= 20.0] = -20.5                          # margins 0, -3, +0.5 dB
    edges = [0.0, 10.0, 20.0, 30.0]
    ride = rider_from_loudness(lead_st, rest, edges, None, tolerance_db=1.0)
    m = np.array(ride.margins_before)
    assert m == pytest.approx([0.0, -3.0, 0.5], abs=1e-6)
    d = m.mean() - m                                  # 1/3 of the song each
    want = np.sign(d) * np.maximum(np.abs(d) - 1.0, 0.0)
    assert ride.gains_db == pytest.approx(list(want), abs=1e-6)
    assert ride.gains_db[0] == 0.0 and ride.gains_db[1] > 0 > ride.gains_db[2]
    after = m + np.array(ride.gains_db)
    assert np.abs(after - m.mean()).max() <= 1.0 + 1e-9
    plays = [True, True, False]
    ride = rider_from_loudness(lead_st, rest, edges, None, tolerance_db=1.0, plays=plays)
    assert ride.margins_before[2] is None
    assert ride.gains_db == pytest.approx([-0.5, 0.5, 0.5], abs=1e-6)
