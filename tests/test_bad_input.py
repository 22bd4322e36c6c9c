"""Every bad input of the matching commands: a one-line error and exit code 2, or handled and
reported; nothing the user gave is overwritten."""
import numpy as np
import pytest
import soundfile as sf

from automix.cli import main

SR = 32000


@pytest.fixture
def case(tmp_path, rng):
    stems = tmp_path / "stems"
    stems.mkdir()
    t = np.arange(SR * 4) / SR
    sf.write(stems / "a.wav", np.sin(2 * np.pi * 220 * t) * 0.3, SR)
    sf.write(stems / "b.wav", rng.standard_normal((len(t), 2)) * 0.05, SR)
    ref = np.stack([np.sin(2 * np.pi * 330 * t), rng.standard_normal(len(t)) * 0.2]).T * 0.5
    sf.write(tmp_path / "ref.wav", ref, SR)
    return tmp_path, stems


def run(capsys, *args):
    code = main([str(a) for a in args])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def assert_one_line_error(code, err, fragment):
    assert code == 2, err
    assert fragment in err and err.count("\n") == 1 and "Traceback" not in err, err


def test_empty_and_non_audio_folders(case, capsys):
    tmp, _ = case
    (tmp / "empty").mkdir()
    code, _, err = run(capsys, "--stems", tmp / "empty", "--reference", tmp / "ref.wav", "-o", tmp / "o")
    assert_one_line_error(code, err, "empty")
    (tmp / "docs").mkdir()
    (tmp / "docs" / "notes.txt").write_text("hello")
    code, _, err = run(capsys, "--stems", tmp / "docs", "--reference", tmp / "ref.wav", "-o", tmp / "o")
    assert_one_line_error(code, err, "no audio files")


def test_non_audio_files_are_ignored_with_a_note(case, capsys):
    tmp, stems = case
    (stems / "readme.txt").write_text("not audio")
    code, _, err = run(capsys, "--stems", stems, "--reference", tmp / "ref.wav", "-o", tmp / "o")
    assert code == 0 and "ignored readme.txt" in err


@pytest.mark.parametrize("problem,fragment", [
    ("corrupt", "cannot read"), ("nan", "NaN or infinite"), ("channels", "4 channels")])
def test_bad_stem_files(case, capsys, problem, fragment):
    tmp, stems = case
    if problem == "corrupt":
        (stems / "c.wav").write_bytes(b"RIFF....WAVEfmt garbage" * 20)
    elif problem == "nan":
        x = np.zeros((SR, 2), np.float32)
        x[5] = np.nan
        sf.write(stems / "c.wav", x, SR, subtype="FLOAT")
    else:
        sf.write(stems / "c.wav", np.zeros((SR, 4)), SR)
    code, _, err = run(capsys, "--stems", stems, "--reference", tmp / "ref.wav", "-o", tmp / "o")
    assert_one_line_error(code, err, fragment)
    assert "c.wav" in err


def test_silent_stem_and_mixed_rates_are_handled_and_reported(case, capsys):
    tmp, stems = case
    sf.write(stems / "silent.wav", np.zeros((SR * 4, 2)), SR)
    t = np.arange(44100 * 3) / 44100
    sf.write(stems / "other_rate.wav", np.sin(2 * np.pi * 500 * t) * 0.2, 44100)
    code, _, err = run(capsys, "--stems", stems, "--reference", tmp / "ref.wav", "-o", tmp / "o")
    assert code == 0, err
    assert "silent.wav is silent" in err
    assert "other_rate.wav: 44100 Hz, resampled to 32000 Hz" in err
    assert "differ in length" in err
    info = sf.info(tmp / "o" / "master.wav")
    assert info.samplerate == SR and info.frames == SR * 4


def test_reference_problems(case, capsys):
    tmp, stems = case
    sf.write(tmp / "short.wav", np.zeros((SR * 2, 2)) + 0.1, SR)
    code, _, err = run(capsys, "--stems", stems, "--reference", tmp / "short.wav", "-o", tmp / "o")
    assert_one_line_error(code, err, "at least 3 s")
    sf.write(tmp / "wide.wav", np.zeros((SR * 4, 6)), SR)
    code, _, err = run(capsys, "--stems", stems, "--reference", tmp / "wide.wav", "-o", tmp / "o")
    assert_one_line_error(code, err, "6 channels")
    code, _, err = run(capsys, "--stems", stems, "--reference", tmp / "missing.wav", "-o", tmp / "o")
    assert_one_line_error(code, err, "no such file")


def test_mono_reference_is_handled(case, capsys, rng):
    tmp, stems = case
    sf.write(tmp / "mono.wav", rng.standard_normal(SR * 4) * 0.2, SR)
    code, _, err = run(capsys, "--stems", stems, "--reference", tmp / "mono.wav", "-o", tmp / "o")
    assert code == 0 and "mono" in err


def test_output_folder_rules(case, capsys):
    tmp, stems = case
    args = ["--stems", stems, "--reference", tmp / "ref.wav"]
    assert run(capsys, *args, "-o", tmp / "o")[0] == 0
    before = (tmp / "o" / "master.wav").read_bytes()
    code, _, err = run(capsys, *args, "-o", tmp / "o")
    assert_one_line_error(code, err, "--force")
    assert (tmp / "o" / "master.wav").read_bytes() == before
    code, _, err = run(capsys, *args, "-o", stems)
    assert_one_line_error(code, err, "input folder")
    assert sorted(p.name for p in stems.iterdir()) == ["a.wav", "b.wav"]
    assert run(capsys, *args, "-o", tmp / "o", "--force")[0] == 0


def test_clipping_mix_is_reported(case, capsys):
    tmp, _ = case
    t = np.arange(SR * 4) / SR
    mix = np.clip(np.sin(2 * np.pi * 100 * t) * 2, -1, 1)
    sf.write(tmp / "mix.wav", np.stack([mix, mix]).T, SR, subtype="FLOAT")
    code, _, err = run(capsys, "master", "--input", tmp / "mix.wav", "--reference", tmp / "ref.wav",
                       "-o", tmp / "m")
    assert code == 0 and "clips" in err
    assert sf.info(tmp / "m" / "master.wav").frames == SR * 4


def test_bad_option_values(case, capsys):
    tmp, stems = case
    with pytest.raises(SystemExit) as exc:
        main(["--stems", str(stems), "--reference", str(tmp / "ref.wav"), "--tone", "1.5"])
    assert exc.value.code == 2
    assert "amounts go from 0 to 1" in capsys.readouterr().err
