"""Sections for ``automix master`` (found on the mix) and ``automix master --stems`` (found on
the group stems): known boundaries of a synthetic arrangement, written to settings.json and
drawn on report.png's loudness-over-time row."""
import json

import numpy as np
import pytest
import soundfile as sf
from matplotlib.image import imread

from automix.cli import main
from synth_song import SR, arrangement

SECONDS = 18
PARTS = {"keys": [(0, 18)], "bass": [(8, 18)], "drums": [(8, 18)]}
BOUNDARY_S = 8.0


@pytest.fixture(scope="module")
def song(tmp_path_factory):
    root = tmp_path_factory.mktemp("master_sections")
    stems = arrangement(PARTS, SECONDS)
    (root / "stems").mkdir()
    for name, audio in stems.items():
        sf.write(root / "stems" / f"{name}.wav", audio.T, SR, subtype="FLOAT")
    mix = sum(stems.values())
    sf.write(root / "mix.wav", (0.5 * mix / np.abs(mix).max()).T, SR, subtype="FLOAT")
    rng = np.random.default_rng(2)
    ref = 0.1 * rng.standard_normal((2, 12 * SR))
    sf.write(root / "reference.wav", ref.T, SR, subtype="FLOAT")
    return root


def _plain_report_height(tmp_path, settings):
    from automix.report import write_report
    return imread(write_report(tmp_path / "plain.png", settings)).shape[0]


@pytest.mark.parametrize("args, labels", [
    (["--input", "mix.wav"], None),
    (["--stems", "stems"], {"keys", "bass", "drums"}),
])
def test_master_writes_sections_and_draws_them(song, tmp_path, args, labels):
    out = tmp_path / "out"
    argv = ["master", args[0], str(song / args[1]), "--reference", str(song / "reference.wav"),
            "-o", str(out)]
    assert main(argv) == 0
    s = json.loads((out / "settings.json").read_text())
    bounds = [sec["start_s"] for sec in s["sections"][1:]]
    assert len(bounds) == 1 and abs(bounds[0] - BOUNDARY_S) <= 0.5, s["sections"]
    assert s["sections"][-1]["end_s"] == pytest.approx(SECONDS, abs=0.01)
    if labels:  # from the stems: each section says which stems play
        assert s["sections"][0]["label"].startswith("A: keys")
        assert set(s["sections"][1]["label"].split(": ")[1].split(" (")[0].split(", ")) == labels
    # report.png has the loudness-over-time row (taller than the plain report)
    assert imread(out / "report.png").shape[0] > 1.3 * _plain_report_height(tmp_path, s)
