"""Groups in the main job (automix.grouping, automix.mix(groups=..., export_stems=...)): groups
from subfolders or from names and content, --groups none flat, printed stems that sum to the
mix, and `automix render` of the written v2 settings reproducing the run bit for bit."""
import shutil

import numpy as np
import pytest

import automix
from automix.grouping import form_groups, low_share
from automix.match import Spectra
from automix.render import render_settings
from v1_session import SR, write_session


def test_groups_from_names_and_content():
    g = form_groups(["Kick", "snare_top", "Bass DI", "lead vox", "keys", "pad", "thing"])
    assert {x["name"]: x["members"] for x in g} == {
        "drums": ["Kick", "snare_top"], "bass": ["Bass DI"], "vocals": ["lead vox"],
        "music": ["keys", "pad", "thing"]}
    rng = np.random.default_rng(0)
    t = np.arange(SR * 2) / SR
    low = np.sin(2 * np.pi * 60 * t)[None]
    bright = rng.standard_normal((1, SR * 2))
    spectra = {"thing": Spectra.of(low, SR), "other": Spectra.of(bright, SR)}
    assert low_share(spectra["thing"], SR) > 0.99 and low_share(spectra["other"], SR) < 0.05
    g = form_groups(["thing", "other"], spectra=spectra, sample_rate=SR)
    assert {x["name"]: x["members"] for x in g} == {"bass": ["thing"], "music": ["other"]}
    assert form_groups(["keys", "pad"]) == []          # one group of everything: none
    assert form_groups(["kick", "keys"], "none") == []
    # a group never takes a track's name
    assert [x["name"] for x in form_groups(["bass", "drums"])] == ["bass group", "drums group"]


def test_groups_from_subfolders():
    g = form_groups(["drums/kick", "drums/snare", "keys/rhodes", "vocal"])
    assert g == [{"name": "drums", "members": ["drums/kick", "drums/snare"]},
                 {"name": "keys", "members": ["keys/rhodes"]}]


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    root = tmp_path_factory.mktemp("groups")
    stems, reference = write_session(root)
    return root, stems, reference


def test_main_job_with_groups_and_printed_stems(session):
    root, stems, reference = session
    r = automix.mix(stems, reference, model=None, refine_steps=20, export_stems=True)
    groups = {g["name"]: g["members"] for g in r.settings["groups"]}
    assert groups == {"drums": ["hats", "kick"], "bass group": ["bass"], "music": ["keys"],
                      "vocals": ["vox"]}
    assert r.settings["version"] == 2
    mix, master = render_settings(r.settings, stems)
    assert np.array_equal(mix, r.mix) and np.array_equal(master, r.master)
    assert set(r.stems) == set(groups)
    err = np.abs(sum(r.stems.values()) - r.mix).max() / np.abs(r.mix).max()
    assert 20 * np.log10(err + 1e-300) < -90
    flat = automix.mix(stems, reference, model=None, refine_steps=20, groups="none")
    assert "groups" not in flat.settings
    # neutral group strips: the same mix but for the stereo pan law's float32 sqrt(2)
    np.testing.assert_allclose(flat.mix, r.mix, atol=1e-6)


def test_main_job_with_subfolder_groups(session, tmp_path):
    root, stems, reference = session
    nested = tmp_path / "stems"
    (nested / "drums").mkdir(parents=True)
    for name in ("kick", "hats"):
        shutil.copy(stems / f"{name}.wav", nested / "drums" / f"{name}.wav")
    for name in ("bass", "keys"):
        shutil.copy(stems / f"{name}.wav", nested / f"{name}.wav")
    r = automix.mix(nested, reference, model=None, refine_steps=10)
    assert r.settings["groups"] == [{**r.settings["groups"][0], "name": "drums",
                                     "members": ["drums/hats", "drums/kick"]}]
    files = {t["name"]: t["file"] for t in r.settings["tracks"]}
    assert files["drums/kick"] == "drums/kick.wav" and files["bass"] == "bass.wav"
    mix, _ = render_settings(r.settings, nested)
    assert np.array_equal(mix, r.mix)
    with pytest.raises(automix.AutomixError, match="--groups"):
        automix.mix(nested, reference, model=None, groups="flat")


def test_array_level_api_is_the_file_pipeline(session):
    import soundfile as sf

    root, stems, reference = session
    arrays = {p.stem: sf.read(p, dtype="float32", always_2d=True)[0].T
              for p in sorted(stems.iterdir())}
    ref, sr = sf.read(reference, dtype="float32", always_2d=True)
    by_files = automix.mix(stems, reference, model=None, refine_steps=10)
    by_arrays = automix.mix(arrays, ref.T, sample_rate=sr, model=None, refine_steps=10)
    assert np.array_equal(by_files.master, by_arrays.master)
    assert by_arrays.analysis["master"]["integrated_lufs"] == \
        by_files.settings["analysis"]["master"]["integrated_lufs"]
    assert [t["file"] for t in by_arrays.settings["tracks"]] == \
        [t["file"] for t in by_files.settings["tracks"]]
    with pytest.raises(automix.AutomixError, match="sample_rate"):
        automix.mix(arrays, ref.T, model=None)
    with pytest.raises(automix.AutomixError, match="channels"):
        automix.mix({"a": np.zeros((3, 100))}, ref.T, sample_rate=sr, model=None)


def test_cli_export_stems_sum_to_mix_wav(session, tmp_path):
    import soundfile as sf

    from automix.cli import main

    root, stems, reference = session
    out = tmp_path / "out"
    assert main(["--stems", str(stems), "--reference", str(reference), "--no-model",
                 "--refine-steps", "10", "--export-stems", "-o", str(out)]) == 0
    mix, _ = sf.read(out / "mix.wav", always_2d=True)
    printed = sorted(p.name for p in (out / "stems").iterdir())
    assert printed == ["bass group.wav", "drums.wav", "music.wav", "vocals.wav"]
    total = sum(sf.read(out / "stems" / p, always_2d=True)[0] for p in printed)
    err = np.abs(total - mix).max() / np.abs(mix).max()
    assert 20 * np.log10(err) < -90, 20 * np.log10(err)
    flat = tmp_path / "flat"
    assert main(["--stems", str(stems), "--reference", str(reference), "--no-model",
                 "--refine-steps", "10", "--groups", "none", "-o", str(flat)]) == 0
    assert not (flat / "stems").exists()


def test_stem_mastering_keeps_the_balance(session, tmp_path):
    import soundfile as sf

    from automix.cli import main

    root, stems, reference = session
    out = tmp_path / "out"
    assert main(["master", "--stems", str(stems), "--reference", str(reference),
                 "-o", str(out)]) == 0
    from automix.settings import load_settings

    s = load_settings(out / "settings.json")
    assert [g["members"] for g in s["groups"]] == [[t["name"]] for t in s["tracks"]]
    assert all(abs(g["gain_db"]) <= 3.0 and g["pan"] == 0.0 and g["eq"] == [] for g in s["groups"])
    assert all(t["eq"] == [] and t["compressor"] == {} and t["pan"] == 0.0 for t in s["tracks"])
    # the bounce's balance: a mono stem at +3.01 dB (undoing the pan law), stereo at 0 dB
    mono = {"kick", "bass", "vox"}
    assert all(t["gain_db"] == (3.01 if t["name"] in mono else 0.0) for t in s["tracks"])
    mix, master = render_settings(s, stems)
    written, _ = sf.read(out / "master.wav", always_2d=True)
    assert np.abs(written.T - master).max() < 2 ** -22  # 24-bit rounding of the same render
    got = s["analysis"]["master"]["integrated_lufs"]
    assert abs(got - s["analysis"]["reference"]["integrated_lufs"]) < 1.0


def test_render_export_stems_of_a_v2_file(session, tmp_path):
    import soundfile as sf

    from automix.cli import main
    from automix.settings import save_settings

    root, stems, reference = session
    settings = {"format": "automix.settings", "version": 2, "sample_rate": SR,
                "tracks": [{"name": n, "file": f"{n}.wav"} for n in ("kick", "hats", "vox")],
                "groups": [{"name": "drums", "members": ["kick", "hats"], "gain_db": -3.0}],
                "buses": [{"name": "echo", "processor": {"type": "delay", "time_ms": 120.0}}],
                "sends": [{"source": "vox", "bus": "echo", "level_db": -6.0}],
                "master": {}}
    save_settings(tmp_path / "s.json", settings)
    assert main(["render", "--stems", str(stems), "--settings", str(tmp_path / "s.json"),
                 "--export-stems", "--bit-depth", "float", "-o", str(tmp_path / "o")]) == 0
    mix, _ = sf.read(tmp_path / "o" / "mix.wav", always_2d=True)
    printed = sorted(p.name for p in (tmp_path / "o" / "stems").iterdir())
    assert printed == ["drums.wav", "echo.wav", "vox.wav"]
    total = sum(sf.read(tmp_path / "o" / "stems" / p, always_2d=True)[0] for p in printed)
    assert 20 * np.log10(np.abs(total - mix).max() / np.abs(mix).max()) < -90
