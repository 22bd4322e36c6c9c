"""A built wheel carries the shipped network: installed into a fresh virtual environment (not
editable, away from this checkout), ``automix.predict_settings`` runs on the bundled example."""
import json
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(p.parent for p in (ROOT / "examples").glob("*/stems"))


def _run(cmd, **kw):
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.skipif(not EXAMPLES, reason="no example song in examples/")
def test_wheel_in_a_fresh_venv_uses_the_shipped_model(tmp_path):
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
          str(ROOT), "-w", str(tmp_path / "dist")])
    wheel = next((tmp_path / "dist").glob("automix-*.whl"))
    assert "automix/checkpoints/automix-default.pt" in zipfile.ZipFile(wheel).namelist()

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    python = venv / "bin" / "python"
    _run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)])
    # the dependencies (torch ...) come from this environment's site-packages, added as a plain
    # path: its .pth files, the editable install's finder among them, are not run
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).strip())
    (site / "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")

    song = EXAMPLES[0]
    script = ("import json, automix, automix.model.checkpoint as c\n"
              f"s = automix.predict_settings({str(song / 'stems')!r}, "
              f"{str(song / 'reference.flac')!r})\n"
              "print(json.dumps({'file': automix.__file__, 'model': str(c.DEFAULT_CHECKPOINT),"
              " 'tracks': len(s['tracks']), 'gains': [t['gain_db'] for t in s['tracks']]}))\n")
    out = json.loads(_run([str(python), "-c", script], cwd=tmp_path).strip().splitlines()[-1])
    assert out["file"].startswith(str(site)), out          # the wheel's automix, not this tree
    assert out["model"].startswith(str(site)) and Path(out["model"]).is_file()
    assert out["tracks"] == len(list((song / "stems").iterdir()))
    assert len(set(out["gains"])) > 1                       # the network's faders, not defaults
