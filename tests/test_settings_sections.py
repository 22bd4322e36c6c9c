"""settings.json ``sections`` (informational): validated (time order, no overlap, end after
start, version 2), checked against the song's length by the render, and without effect on the
rendered audio."""
import numpy as np
import pytest
import soundfile as sf

from automix.errors import AutomixError
from automix.render import render_settings
from automix.settings import validate

SR = 44100


def _settings(sections, version=2):
    return {"format": "automix.settings", "version": version, "sample_rate": SR,
            "tracks": [{"name": "a", "file": "a.wav", "gain_db": -3.0}], "master": {},
            "sections": sections}


def test_valid_sections_are_kept_with_default_label():
    out = validate(_settings([{"start_s": 0.0, "end_s": 1.5, "label": "A: drums (soft)"},
                              {"start_s": 1.5, "end_s": 2.0}]))
    assert out["sections"] == [{"start_s": 0.0, "end_s": 1.5, "label": "A: drums (soft)"},
                               {"start_s": 1.5, "end_s": 2.0, "label": ""}]


@pytest.mark.parametrize("sections, version, message", [
    ([{"start_s": 0.0, "end_s": 1.0}], 1, 'sections: needs "version": 2'),
    ({"start_s": 0.0}, 2, "sections: expected a list"),
    ([{"start_s": 0.0, "end_s": 12.0}, {"start_s": 10.0, "end_s": 20.0}], 2,
     "sections[1].start_s: 10 s is before the end of sections[0] (12 s)"),
    ([{"start_s": 5.0, "end_s": 5.0}], 2, "sections[0]: end_s (5 s) must be after start_s (5 s)"),
    ([{"start_s": -1.0, "end_s": 5.0}], 2, "sections[0].start_s = -1.0 is outside [0, 86400]"),
    ([{"start_s": 0.0}], 2, "sections[0]: missing field 'end_s'"),
    ([{"start_s": 0.0, "end_s": 1.0, "label": 3}], 2, "sections[0].label: expected a string"),
    ([{"start_s": 0.0, "end_s": 1.0, "kind": "verse"}], 2, "sections[0]: unknown field 'kind'"),
])
def test_section_errors_are_one_line(sections, version, message):
    with pytest.raises(AutomixError) as err:
        validate(_settings(sections, version), "settings.json")
    text = str(err.value)
    assert message in text and "\n" not in text, text


def test_render_ignores_sections_but_checks_they_fit(tmp_path):
    rng = np.random.default_rng(0)
    sf.write(tmp_path / "a.wav", 0.1 * rng.standard_normal((2 * SR, 2)), SR, subtype="FLOAT")
    with_sections = validate(_settings([{"start_s": 0.0, "end_s": 1.2, "label": "A"},
                                        {"start_s": 1.2, "end_s": 2.0, "label": "B"}]))
    without = validate(dict(_settings([]), sections=[]))
    a = render_settings(with_sections, tmp_path)
    b = render_settings(without, tmp_path)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    late = validate(_settings([{"start_s": 0.0, "end_s": 2.5}]))
    with pytest.raises(AutomixError) as err:
        render_settings(late, tmp_path, source="settings.json")
    assert "sections[0].end_s = 2.5 s is after the end of the song (2.000 s)" in str(err.value)
