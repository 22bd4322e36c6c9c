"""settings.json v1 files written by automix before the console graph (tests/fixtures/v1/,
made by make_fixtures.py at d9ab248) still validate and render bit for bit as they did."""
import json
from pathlib import Path

import numpy as np
import pytest

from automix.params import MASTER_SPECS, SPEC_VERSION, TRACK_SPECS
from automix.render import render_settings
from automix.settings import load_settings
from v1_session import digest, thin, write_session

FIXTURES = Path(__file__).parent / "fixtures" / "v1"
DIGESTS = json.loads((FIXTURES / "digests.json").read_text())


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    root = tmp_path_factory.mktemp("v1")
    stems, _ = write_session(root)
    return root, stems


@pytest.mark.parametrize("name", sorted(DIGESTS))
def test_v1_file_renders_bit_exactly_as_before(name, session):
    root, stems = session
    settings = load_settings(FIXTURES / f"{name}.json")
    assert settings["version"] == 1
    folder = root / "premix" if name.startswith("master") else stems
    mix, master = render_settings(settings, folder)
    want = DIGESTS[name]
    assert mix.shape == (2, want["frames"])
    old = np.load(FIXTURES / f"{name}.npz")
    # how far it moved, if it did (the digests below are the real check)
    for key, audio in (("mix", mix), ("master", master)):
        moved = np.abs(thin(audio) - old[key]).max()
        assert moved == 0.0, f"{name} {key}: moved by up to {moved:.3g}"
        assert digest(audio) == want[key], f"{name} {key}: not bit-identical"


def test_network_parameter_layout_is_unchanged():
    """The shipped checkpoint's outputs are these parameters, in this order, with these ranges."""
    specs = json.loads((FIXTURES / "param_specs.json").read_text())
    assert specs["spec_version"] == SPEC_VERSION
    for key, table in (("track", TRACK_SPECS), ("master", MASTER_SPECS)):
        assert [[s.name, s.unit, s.minimum, s.maximum, s.default, s.scale] for s in table] \
            == specs[key]
