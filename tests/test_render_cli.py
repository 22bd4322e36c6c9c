"""`automix render`: round trip, bit-exact re-render, and one-line errors for bad settings."""
import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from automix.cli import main
from automix.params import MASTER_SPECS, TRACK_SPECS
from automix.settings import load_settings, save_settings, settings_from_params

from conftest import random_params

SR = 22050


@pytest.fixture
def session(tmp_path, rng):
    stems = tmp_path / "stems"
    stems.mkdir()
    names = ["drums", "bass", "keys"]
    for i, name in enumerate(names):
        ch = 1 if name == "bass" else 2
        sf.write(stems / f"{name}.wav", rng.standard_normal((SR * 2 + i * 100, ch)) * 0.1, SR)
    g = torch.Generator().manual_seed(5)
    tp = random_params(TRACK_SPECS, (3,), g)
    mp = random_params(MASTER_SPECS, (), g)
    settings = settings_from_params(names, [f"{n}.wav" for n in names], tp, mp, SR)
    save_settings(tmp_path / "settings.json", settings)
    return tmp_path, stems


def test_round_trip_is_bit_identical(session):
    tmp, stems = session
    loaded = load_settings(tmp / "settings.json")
    save_settings(tmp / "again.json", loaded)
    assert json.loads((tmp / "again.json").read_text()) == loaded
    for out in ("a", "b"):
        assert main(["render", "--stems", str(stems), "--settings", str(tmp / "again.json"),
                     "-o", str(tmp / out)]) == 0
    for name in ("mix.wav", "master.wav"):
        assert (tmp / "a" / name).read_bytes() == (tmp / "b" / name).read_bytes()
        info = sf.info(tmp / "a" / name)
        assert info.samplerate == SR and info.channels == 2 and info.subtype == "PCM_24"
        assert info.frames == SR * 2 + 200  # the longest stem
    master, _ = sf.read(tmp / "a" / "master.wav")
    assert np.abs(master).max() > 0.01


def _edit(tmp, fn):
    data = json.loads((tmp / "settings.json").read_text())
    fn(data)
    (tmp / "bad.json").write_text(json.dumps(data))
    return tmp / "bad.json"


@pytest.mark.parametrize("edit,message", [
    (lambda d: d["tracks"][0].update(reverb=1), "unknown field 'reverb'"),
    (lambda d: d["tracks"][1]["compressor"].update(ratio=0.5), "tracks[1].compressor.ratio = 0.5"),
    (lambda d: d["tracks"][0]["eq"][2].update(freq_hz=30000.0), "tracks[0].eq[2].freq_hz"),
    (lambda d: d["master"]["limiter"].update(ceiling_dbtp=3.0), "master.limiter.ceiling_dbtp"),
    (lambda d: d["tracks"][2].update(file="nope.wav"), "nope.wav"),
    (lambda d: d.update(version=3), "version"),
    (lambda d: d["tracks"][0].update(pan="left"), "tracks[0].pan"),
])
def test_bad_settings_one_line_error(session, capsys, edit, message):
    tmp, stems = session
    bad = _edit(tmp, edit)
    code = main(["render", "--stems", str(stems), "--settings", str(bad), "-o", str(tmp / "o")])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_refuses_existing_output_and_input_folder(session, capsys):
    tmp, stems = session
    args = ["render", "--stems", str(stems), "--settings", str(tmp / "settings.json")]
    assert main(args + ["-o", str(tmp / "o")]) == 0
    before = (tmp / "o" / "master.wav").read_bytes()
    assert main(args + ["-o", str(tmp / "o")]) == 2
    assert "--force" in capsys.readouterr().err
    assert (tmp / "o" / "master.wav").read_bytes() == before
    assert main(args + ["-o", str(stems)]) == 2
    assert "input folder" in capsys.readouterr().err
    assert main(args + ["-o", str(tmp / "o"), "--force"]) == 0


def test_console_script_invalid_json_no_traceback(tmp_path):
    (tmp_path / "s.json").write_text("{not json")
    proc = subprocess.run([sys.executable, "-m", "automix.cli", "render", "--stems", str(tmp_path),
                           "--settings", str(tmp_path / "s.json"), "-o", str(tmp_path / "o")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "not valid JSON" in proc.stderr and "Traceback" not in proc.stderr
