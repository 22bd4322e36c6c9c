"""Song sections: known boundaries of a synthetic arrangement, none on a steady one."""
import numpy as np
import pytest

from automix import sections
from automix.errors import AutomixError
from synth_song import SR, arrangement

PARTS = {"keys": [(0, 40)], "bass": [(8, 40)], "drums": [(8, 20), (24, 40)],
         "vocal": [(20, 32)]}
TRUE_BOUNDS = [8.0, 20.0, 24.0, 32.0]


@pytest.fixture(scope="module")
def song():
    return arrangement(PARTS, 40)


@pytest.fixture(scope="module")
def steady():
    return arrangement({k: [(0, 40)] for k in PARTS}, 40)


def _match(found, truth, tol):
    assert len(found) == len(truth), (found, truth)
    err = np.abs(np.asarray(found) - np.asarray(truth))
    assert err.max() <= tol, (found, truth)
    return err


def test_stem_sections_found_within_half_a_second_and_labelled(song):
    r = sections.find_sections(song, SR)
    assert r.tempo_bpm is not None and abs(r.tempo_bpm - 120) < 6
    _match(r.boundaries_s, TRUE_BOUNDS, 0.5)
    active = [set(s.active) for s in r.sections]
    assert active == [{"keys"}, {"keys", "bass", "drums"}, {"keys", "bass", "vocal"},
                      {"keys", "bass", "drums", "vocal"}, {"keys", "bass", "drums"}]
    letters = [s.letter for s in r.sections]
    assert letters == ["A", "B", "C", "D", "B"]          # the same arrangement, the same letter
    assert r.sections[0].loudness_lufs < r.sections[3].loudness_lufs - 3
    assert "(loud)" in r.sections[3].label
    out = sections.to_settings(r.sections)
    assert out[0]["start_s"] == 0.0 and out[-1]["end_s"] == 40.0
    assert all(a["end_s"] == b["start_s"] for a, b in zip(out[:-1], out[1:]))
    assert set(out[1]) == {"start_s", "end_s", "label"}


def test_groups_label_sections(song):
    r = sections.find_sections(song, SR, groups={"rhythm": ["bass", "drums"],
                                                "vocals": ["vocal"], "music": ["keys"]},
                               use_beats=False)
    assert [set(s.active) for s in r.sections][:3] == [{"music"}, {"rhythm", "music"},
                                                        {"rhythm", "vocals", "music"}]


def test_mix_sections_found_within_half_a_second(song):
    mix = sum(song.values())
    r = sections.find_sections_in_mix(mix, SR)
    _match(r.boundaries_s, TRUE_BOUNDS, 0.5)
    assert r.sections[0].label.endswith("(medium)") or r.sections[0].label.endswith("(soft)")


def test_no_boundary_on_a_steady_arrangement(steady):
    assert len(sections.find_sections(steady, SR).sections) == 1
    assert len(sections.find_sections_in_mix(sum(steady.values()), SR).sections) == 1
    # background novelty stays far under the threshold
    nov = sections.find_sections(steady, SR, use_beats=False).novelty
    assert nov[40:-40].max() < sections.THRESHOLD / 2


def test_novelty_of_an_ideal_boundary_is_one_minus_the_cross_similarity():
    # two steady halves whose features differ by d: S = exp(-d^2) across, 1 within
    for d in (0.3, 1.0, 2.0):
        f = np.zeros((1, 200))
        f[0, 100:] = d
        nov = sections.novelty_curve(f, 20)
        assert nov[100] == pytest.approx(1 - np.exp(-d * d), abs=1e-12)
        assert nov[:75].max() < 1e-12 and nov[125:].max() < 1e-12


def test_checkerboard_kernel_signs_and_sums():
    k = sections.checkerboard_kernel(8)
    assert k.shape == (16, 16)
    assert k[:8, :8].min() > 0 and k[8:, 8:].min() > 0 and k[:8, 8:].max() < 0
    assert k[k > 0].sum() == pytest.approx(1) and k[k < 0].sum() == pytest.approx(-1)


def test_snap_moves_to_the_nearest_beat_and_fills_gaps():
    beats = np.arange(0, 20, 0.5)
    got = sections.snap(np.array([3.2, 7.9, 12.26]), beats, 120.0)
    assert list(got) == [3.0, 8.0, 12.5]
    assert list(sections.snap(np.array([3.2]), beats, None)) == [3.2]
    assert list(sections.snap(np.array([25.0]), beats, 120.0)) == [25.0]   # beyond the beats
    gappy = np.concatenate([np.arange(0, 5, 0.5), np.arange(7, 10, 0.5)])
    assert np.allclose(sections.fill_gaps(gappy, 0.5), np.arange(0, 10, 0.5))


def test_too_short_and_empty_are_one_line_errors():
    with pytest.raises(AutomixError):
        sections.find_sections({}, SR)
    with pytest.raises(AutomixError, match="too short"):
        sections.find_sections_in_mix(np.zeros((2, 100)), SR)


@pytest.mark.parametrize("bpm", [78.0, 95.0, 140.0])
def test_beat_tracker_on_a_click_track(bpm):
    rng = np.random.default_rng(int(bpm))
    n = 30 * SR
    x = 0.01 * rng.standard_normal(n)
    period = 60.0 / bpm
    clicks = np.arange(0.3, 30 - 0.1, period)
    for t in clicks:
        i = int(t * SR)
        x[i:i + 200] += np.exp(-np.arange(200) / 40) * rng.standard_normal(200)
    tempo, beats = sections.beat_times(x.astype(np.float32), SR)
    assert tempo == pytest.approx(bpm, rel=0.03)
    err = np.abs(beats[:, None] - clicks[None]).min(axis=1)
    assert np.median(err) < 0.03 and len(beats) >= 0.9 * len(clicks)


def test_no_tempo_in_noise_or_silence():
    rng = np.random.default_rng(0)
    assert sections.beat_times(np.zeros(SR * 10, np.float32), SR) == (None, pytest.approx([]))
    tempo, beats = sections.beat_times(rng.standard_normal(SR * 10).astype(np.float32), SR)
    assert tempo is None or len(beats) >= 8          # noise may "find" a beat; never crashes
