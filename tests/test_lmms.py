"""The LMMS renderer (training/lmms.py) on a tiny project the test writes itself."""
import json
import shutil

import numpy as np
import pytest
import soundfile as sf

from training import lmms
from training.data_cli import main as data_main

needs_lmms = pytest.mark.skipif(shutil.which("lmms") is None,
                                reason="lmms is not installed (Debian: apt-get install lmms; CI installs it)")


def _tiny(tmp_path):
    path = tmp_path / "tiny.mmp"
    path.write_text(lmms.tiny_project_xml())
    return path


def test_plan_groups_tracks_on_a_nonlinear_mixer_channel(tmp_path):
    root = lmms.load_project(_tiny(tmp_path))
    stems, notes = lmms.plan_stems(root)
    assert [s.track_names for s in stems] == [["kick"], ["hat", "clap"]]
    assert "hardLimiter" in stems[1].reasons[0]
    assert notes["skipped_tracks"] == ["unused (muted by the producer)"]
    solo = lmms.solo_copy(root, stems[1].tracks)
    muted = [t.get("muted") for t in lmms.song_tracks(solo)]
    assert muted == ["1", "0", "0", "1"]


def test_linear_effects_do_not_group():
    import xml.etree.ElementTree as ET

    eq = ET.fromstring('<fxchain enabled="1"><effect name="eq" on="1"/><effect name="ladspaeffect" on="1">'
                       '<key><attribute name="plugin" value="Plate2x2"/></key></effect></fxchain>')
    comp = ET.fromstring('<fxchain enabled="1"><effect name="ladspaeffect" on="1">'
                         '<key><attribute name="plugin" value="Compressor"/></key></effect></fxchain>')
    off = ET.fromstring('<fxchain enabled="0"><effect name="waveshaper" on="1"/></fxchain>')
    assert lmms._chain_nonlinear(eq) == []
    assert lmms._chain_nonlinear(comp) == ["Compressor"]
    assert lmms._chain_nonlinear(off) == []


def test_only_the_issue_projects_are_rendered(tmp_path, capsys):
    assert len(lmms.PROJECTS) == 18
    assert data_main(["lmms", "-o", str(tmp_path), "--only", "Skiessi-Onion"]) == 2
    assert "reserved test set" in capsys.readouterr().err


def test_copyright_stanza():
    text = ("Files: *\nCopyright: x\nLicense: GPL-2+\n\n"
            "Files: data/projects/demos/Oglsdl-*\n data/projects/shorties/Crunk*\nCopyright: 2009 someone\n"
            "License: Artistic-2\n")
    assert "Artistic-2" in lmms.copyright_stanza("shorties/Crunk(Demo)", text)
    assert "Artistic-2" in lmms.copyright_stanza("demos/Oglsdl-Dr8v2", text)
    assert "GPL-2+" in lmms.copyright_stanza("demos/Other", text)


@needs_lmms
def test_render_song_stems_add_up_and_resume(tmp_path):
    out = tmp_path / "data"
    song = lmms.render_song(_tiny(tmp_path), out, progress=lambda s: None)
    meta = json.loads((song / "lmms.json").read_text())
    assert meta["sample_rate"] == 44100
    files = json.loads((song / "stems.json").read_text())["stems"]
    assert [f["file"] for f in files] == ["kick.wav", "Perc group.wav"]
    mix, sr = sf.read(song / "mixture.wav", dtype="float64")
    assert sr == 44100 and len(mix) == meta["frames"] and np.abs(mix).max() > 0.05
    stems = [sf.read(song / f["file"], dtype="float64")[0] for f in files]
    assert all(len(s) == len(mix) for s in stems)
    # deterministic samples: the solo renders add up to the full render (the issue's -145 dB)
    err = mix - sum(stems)
    assert 10 * np.log10(np.sum(err ** 2) / np.sum(mix ** 2)) < -120
    assert meta["solo_sum_residual_db"] < -120
    assert (song / "COPYRIGHT.txt").is_file()
    # the grouping matters: hat and clap rendered apart do not add up to their group
    root = lmms.load_project(tmp_path / "tiny.mmp")
    parts = []
    for i in (1, 2):
        lmms.save_project(lmms.solo_copy(root, [i]), tmp_path / "one.mmp")
        lmms.render_project(tmp_path / "one.mmp", tmp_path / f"one{i}.wav")
        x = sf.read(tmp_path / f"one{i}.wav", dtype="float64", always_2d=True)[0]
        parts.append(np.pad(x, ((0, max(0, len(mix) - len(x))), (0, 0)))[:len(mix)])
    group = stems[1]
    assert 10 * np.log10(np.sum((group - sum(parts)) ** 2) / np.sum(group ** 2)) > -60
    # finished songs are not rendered again
    stamp = (song / "lmms.json").stat().st_mtime_ns
    assert lmms.render_song(tmp_path / "tiny.mmp", out) == song
    assert (song / "lmms.json").stat().st_mtime_ns == stamp


@needs_lmms
def test_render_retries_a_crash_after_a_complete_file(tmp_path, monkeypatch):
    """lmms 1.2.2 may segfault on exit after writing the file: two crashed runs with the same
    length count as a render."""
    calls = []
    real = lmms.subprocess.run

    def crashing(cmd, **kw):
        p = real(cmd, **kw)
        calls.append(p.returncode)
        return lmms.subprocess.CompletedProcess(cmd, -11)

    monkeypatch.setattr(lmms.subprocess, "run", crashing)
    frames = lmms.render_project(_tiny(tmp_path), tmp_path / "x.wav")
    assert frames > 0 and len(calls) == 2


@needs_lmms
def test_master_dynamics_are_left_out_of_the_stems(tmp_path):
    """A limiter on the master acts on the sum: the stems are rendered without it and add up to
    premaster.wav; mixture.wav keeps it."""
    path = tmp_path / "limited.mmp"
    path.write_text(lmms.tiny_project_xml(master_limiter=True))
    song = lmms.render_song(path, tmp_path / "data", progress=lambda s: None)
    meta = json.loads((song / "lmms.json").read_text())
    assert meta["master_nonlinear"] == ["hardLimiter"]
    pre = sf.read(song / "premaster.wav", dtype="float64")[0]
    mix = sf.read(song / "mixture.wav", dtype="float64")[0]
    stems = [sf.read(song / s["file"], dtype="float64")[0]
             for s in json.loads((song / "stems.json").read_text())["stems"]]
    assert 10 * np.log10(np.sum((pre - sum(stems)) ** 2) / np.sum(pre ** 2)) < -120
    assert 10 * np.log10(np.sum((mix - pre) ** 2) / np.sum(mix ** 2)) > -40   # the limiter did work
    assert meta["solo_sum_residual_db"] < -120


def test_the_projects_credits_are_their_own_stanza():
    """The real copyright file: later stanzas override ``Files: *`` (Crunk is Artistic-2)."""
    if not lmms.COPYRIGHT.is_file():
        pytest.skip("lmms-common is not installed")
    text = lmms.COPYRIGHT.read_text(errors="replace")
    assert "Artistic-2" in lmms.copyright_stanza("shorties/Crunk(Demo)", text)
    assert "CC-BY-SA-3" in lmms.copyright_stanza("demos/Alf42red-Mauiwowi", text)


def test_a_peak_controller_sidechain_groups_its_source_and_targets(tmp_path):
    import xml.etree.ElementTree as ET

    root = lmms.load_project(_tiny(tmp_path))
    kick, hat = lmms.song_tracks(root)[0], lmms.song_tracks(root)[1]
    chain = kick.find("instrumenttrack/fxchain")
    chain.set("enabled", "1")
    chain.append(ET.fromstring('<effect name="peakcontrollereffect" on="1"><peakcontrollereffectcontrols '
                               'effectId="7" base="0.5" amount="-0.5"/></effect>'))
    root.find("song").append(ET.fromstring('<controllers><Peakcontroller name="c" effectId="7" type="3"/>'
                                           '</controllers>'))
    assert [s.track_names for s in lmms.plan_stems(root)[0]] == [["kick"], ["hat", "clap"]]
    hat.find("instrumenttrack").append(ET.fromstring('<connection><vol id="0"/></connection>'))
    stems = lmms.plan_stems(root)[0]
    assert [sorted(s.track_names) for s in stems] == [["clap", "hat", "kick"]]
    assert any("peak controller" in r for r in stems[0].reasons)
