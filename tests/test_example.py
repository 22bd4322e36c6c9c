"""README's example command, as written there, on the bundled example song: the master meets
the ceiling and the reference's loudness, and its settings re-render bit-exactly."""
import re
import shlex
from pathlib import Path

import numpy as np
import soundfile as sf

from automix.analysis import integrated_loudness, true_peak_linear
from automix.cli import main

ROOT = Path(__file__).resolve().parents[1]


def readme_command() -> list[str]:
    """The run command of README's first screen (``.venv/bin/automix ...``), as argv."""
    text = (ROOT / "README.md").read_text()
    line = next(l for l in text.splitlines() if re.match(r"\s+\S*automix --stems examples/", l))
    argv = shlex.split(line.strip())
    assert Path(argv[0]).name == "automix"
    return argv[1:]


def test_readme_example_runs_end_to_end(tmp_path, monkeypatch):
    argv = readme_command()
    stems = ROOT / argv[argv.index("--stems") + 1]
    reference = ROOT / argv[argv.index("--reference") + 1]
    assert len(list(stems.glob("*.flac"))) >= 4 and reference.is_file()
    out = tmp_path / argv[argv.index("-o") + 1]
    monkeypatch.chdir(ROOT)  # the command's paths are relative to the repository
    argv[argv.index("-o") + 1] = str(out)
    assert main(argv) == 0

    master, sr = sf.read(out / "master.wav", always_2d=True)
    ref, ref_sr = sf.read(reference, always_2d=True)
    assert sr == ref_sr
    assert 20 * np.log10(true_peak_linear(master.T)) <= -1.0
    assert abs(integrated_loudness(master.T, sr) - integrated_loudness(ref.T, sr)) < 0.5
    mix, _ = sf.read(out / "mix.wav", always_2d=True)
    assert mix.shape == master.shape and np.abs(mix).max() > 0.05

    assert main(["render", "--stems", str(stems), "--settings", str(out / "settings.json"),
                 "-o", str(tmp_path / "again")]) == 0
    for name in ("mix.wav", "master.wav"):
        assert (tmp_path / "again" / name).read_bytes() == (out / name).read_bytes(), name
