"""Issue 21 and issue 15 (items 4, 5): what the command line does when the environment fails it.

The output folder is replaced as a whole (a full disk, a read-only folder, a directory in the
way, a failed swap, Ctrl-C, SIGTERM and a second run leave it exactly as it was, or exactly the
new set, and no temporary file); ``render`` reads only audio files inside the stems folder;
settings files, option values and Hydra overrides that used to raise tracebacks are one-line
errors; 16-bit files are TPDF-dithered and rounded, 24-bit files rounded; outputs get the
permissions of a normal write; a missing optional dependency names the extra to install.
"""
import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from automix.cli import main
from automix.params import MASTER_SPECS, TRACK_SPECS
from automix.settings import save_settings, settings_from_params

from conftest import random_params

SR = 22050
REPO = Path(__file__).resolve().parents[1]
SET = ["master.wav", "mix.wav", "notes.txt"]  # notes.txt: the user's own file in OUT


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("project")
    stems = root / "stems"
    stems.mkdir()
    rng = np.random.default_rng(3)
    t = np.arange(SR * 2) / SR
    sf.write(stems / "a.wav", np.sin(2 * np.pi * 220 * t) * 0.3, SR)
    sf.write(stems / "b.wav", rng.standard_normal((len(t), 2)) * 0.05, SR)
    g = torch.Generator().manual_seed(5)
    settings = settings_from_params(["a", "b"], ["a.wav", "b.wav"],
                                    random_params(TRACK_SPECS, (2,), g),
                                    random_params(MASTER_SPECS, (), g), SR)
    save_settings(root / "settings.json", settings)
    sf.write(root / "secret.wav", rng.standard_normal((len(t), 2)) * 0.05, SR)
    return root


def render_args(project, out, *extra):
    return ["render", "--stems", str(project / "stems"), "--settings",
            str(project / "settings.json"), "-o", str(out), *map(str, extra)]


def snapshot(folder: Path) -> dict:
    """Every entry under ``folder`` (hidden ones too): file -> sha256, folder -> 'dir'."""
    out = {}
    for p in sorted(folder.rglob("*")):
        out[str(p.relative_to(folder))] = "dir" if p.is_dir() else \
            hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def no_leftovers(*folders):
    for folder in folders:
        left = [p for p in folder.rglob("*") if ".automix-tmp-" in str(p) or p.name.endswith(".tmp")]
        assert not left, left


def one_line(capsys, code, expected_code=2):
    err = capsys.readouterr().err
    assert code == expected_code, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("automix: error: ") and "automix: error: automix:" not in err, err
    return err


@pytest.fixture
def old_set(project, tmp_path, capsys):
    """OUT holding an earlier render (24 bit) and a file of the user's."""
    out = tmp_path / "out"
    assert main(render_args(project, out)) == 0
    (out / "notes.txt").write_text("mine")
    capsys.readouterr()
    before = snapshot(out)
    assert sorted(before) == SET
    return out, before


@pytest.fixture
def spy_render(monkeypatch):
    """Records whether the render (the computation) started."""
    from automix import render

    calls = []
    original = render.render_settings

    def spy(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(render, "render_settings", spy)
    return calls


# --------------------------------------------------------------------------- render paths

def test_render_reads_only_audio_files_inside_the_stems_folder(project, tmp_path, capsys):
    stems = project / "stems"
    (stems / "notes.txt").write_text("not audio")
    (stems / "sub").mkdir(exist_ok=True)
    sf.write(stems / "sub" / "c.wav", np.zeros((100, 1)), SR)
    links = {"out.wav": project / "secret.wav", "in.wav": stems / "b.wav"}
    for name, target in links.items():
        if not (stems / name).is_symlink():
            (stems / name).symlink_to(target)
    data = json.loads((project / "settings.json").read_text())
    messages = {}
    try:
        for name in [str(project / "secret.wav"), "../secret.wav", "sub/../../secret.wav",
                     "out.wav", "missing.wav", str(project / "missing.wav"), "notes.txt", "sub",
                     "."]:
            data["tracks"][1]["file"] = name
            (tmp_path / "s.json").write_text(json.dumps(data))
            code = main(["render", "--stems", str(stems), "--settings", str(tmp_path / "s.json"),
                         "-o", str(tmp_path / "o")])
            err = one_line(capsys, code)
            # the same words whether the path exists or not
            messages[name] = err.replace(repr(name), "NAME")
            assert not (tmp_path / "o").exists()
        assert len(set(messages.values())) == 1, messages
        assert "tracks[1].file NAME: not an audio file inside the stems folder" in messages["out.wav"]
        for ok in ("sub/c.wav", "in.wav"):  # inside, or a link that stays inside
            data["tracks"][1]["file"] = ok
            (tmp_path / "s.json").write_text(json.dumps(data))
            assert main(["render", "--stems", str(stems), "--settings", str(tmp_path / "s.json"),
                         "-o", str(tmp_path / ok.replace("/", "_")), "--bit-depth", "float"]) == 0
    finally:
        for name in ("notes.txt", "out.wav", "in.wav"):
            (stems / name).unlink()
        (stems / "sub" / "c.wav").unlink()
        (stems / "sub").rmdir()


# --------------------------------------------------------------------------- the output folder

def _failing_writer(monkeypatch, name: str, error: int):
    """write_audio that writes half of ``name`` and fails as the file system would."""
    from automix import audio

    original = audio.write_audio

    def write(path, data, *args, **kwargs):
        if Path(path).name == name:
            with audio.atomic_path(path) as tmp:
                tmp.write_bytes(b"RIFF" + bytes(1000))
                raise OSError(error, os.strerror(error), str(path))
        return original(path, data, *args, **kwargs)

    monkeypatch.setattr(audio, "write_audio", write)


@pytest.mark.parametrize("error,reason", [(errno.ENOSPC, "the disk is full"),
                                          (errno.EROFS, "read-only file system"),
                                          (errno.EACCES, "permission denied")])
def test_write_failure_leaves_the_old_set(project, old_set, monkeypatch, capsys, error, reason):
    out, before = old_set
    _failing_writer(monkeypatch, "master.wav", error)
    err = one_line(capsys, main(render_args(project, out, "--force", "--bit-depth", 16)))
    assert f"{out / 'master.wav'}: {reason}" in err  # the file's place in OUT, not a temp name
    assert snapshot(out) == before
    no_leftovers(out.parent)


def test_mix_failure_after_the_wavs_leaves_the_old_four_files(project, tmp_path, monkeypatch,
                                                             capsys):
    """The matching command's set: mix.wav and master.wav are complete when settings.json
    fails; OUT keeps every earlier file, byte for byte."""
    from automix import settings

    out = tmp_path / "out"
    out.mkdir()
    for name in ("mix.wav", "master.wav", "settings.json", "report.png", "notes.txt"):
        (out / name).write_bytes(name.encode() * 10)
    before = snapshot(out)
    sf.write(tmp_path / "ref.wav", np.random.default_rng(1).standard_normal((SR * 4, 2)) * 0.1, SR)

    def full(path, s):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(settings, "save_settings", full)
    code = main(["--stems", str(project / "stems"), "--reference", str(tmp_path / "ref.wav"),
                 "-o", str(out), "--force", "--no-model", "--refine-steps", "2"])
    err = one_line(capsys, code)
    assert f"{out / 'settings.json'}: the disk is full" in err
    assert snapshot(out) == before
    no_leftovers(tmp_path)


def _mount(*args):
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


@pytest.fixture
def tmpfs(tmp_path):
    """An 800 kB tmpfs (root only): room for one render of the test song, not for two."""
    point = tmp_path / "tmpfs"
    point.mkdir()
    if os.geteuid() != 0 or not _mount("-t", "tmpfs", "-o", "size=800k", "tmpfs", str(point)):
        pytest.skip("needs root and mount permission for a tmpfs")
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


def test_real_full_disk_and_read_only_file_system(project, tmpfs, capsys, spy_render):
    out = tmpfs / "out"
    assert main(render_args(project, out, "--bit-depth", 16)) == 0  # 2 x 176 kB
    (out / "notes.txt").write_text("mine")
    before = snapshot(out)
    capsys.readouterr()
    # float: 2 x 353 kB more while the old files are still there
    assert main(render_args(project, out, "--force", "--bit-depth", "float")) == 2
    err = capsys.readouterr().err
    assert "the disk is full" in err and err.count("\n") == 1 and "Traceback" not in err, err
    assert snapshot(out) == before
    no_leftovers(tmpfs)
    assert _mount("-o", "remount,ro", str(tmpfs))
    spy_render.clear()
    err = one_line(capsys, main(render_args(project, out, "--force")))
    assert "read-only file system" in err and not spy_render  # refused before the work
    err = one_line(capsys, main(render_args(project, tmpfs / "new")))
    assert "read-only file system" in err and not spy_render
    assert snapshot(out) == before


def test_unwritable_folder_is_refused_before_the_work(project, old_set, monkeypatch, capsys,
                                                     spy_render):
    out, before = old_set
    import tempfile

    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", kwargs.get("dir"))

    monkeypatch.setattr(tempfile, "mkdtemp", refuse)
    err = one_line(capsys, main(render_args(project, out, "--force")))
    assert f"{out}: cannot write to the output folder (read-only file system)" in err
    assert not spy_render and snapshot(out) == before
    err = one_line(capsys, main(render_args(project, out.parent / "new")))
    assert not (out.parent / "new").exists() and not spy_render  # the folder it made: removed


def test_a_directory_in_the_way(project, old_set, capsys, spy_render):
    out, _ = old_set
    (out / "master.wav").unlink()
    (out / "master.wav").mkdir()
    (out / "master.wav" / "keep.txt").write_text("mine")
    before = snapshot(out)
    err = one_line(capsys, main(render_args(project, out, "--force")))
    assert f"{out / 'master.wav'} is a directory" in err and not spy_render
    assert snapshot(out) == before


def test_a_failed_swap_puts_the_old_files_back(project, old_set, monkeypatch, capsys):
    out, before = old_set
    from automix import outdir

    rename, failed = os.rename, []

    def flaky(src, dst):  # the second new file, once: mix.wav is already in
        if Path(dst) == out / "master.wav" and ".automix-tmp-" in str(src) and not failed:
            failed.append(src)
            raise OSError(errno.EIO, "Input/output error", str(dst))
        rename(src, dst)

    monkeypatch.setattr(outdir.os, "rename", flaky)
    err = one_line(capsys, main(render_args(project, out, "--force", "--bit-depth", 16)))
    assert "the folder is as it was" in err
    monkeypatch.undo()
    assert failed and snapshot(out) == before
    no_leftovers(out.parent)


def test_success_replaces_only_automix_files(project, old_set, tmp_path, capsys):
    out, before = old_set
    assert main(render_args(project, out, "--force", "--bit-depth", 16)) == 0
    assert main(render_args(project, tmp_path / "fresh", "--bit-depth", 16)) == 0
    after = snapshot(out)
    assert sorted(after) == SET and after["notes.txt"] == before["notes.txt"]
    fresh = snapshot(tmp_path / "fresh")
    assert after["mix.wav"] == fresh["mix.wav"] != before["mix.wav"]  # exactly the new set
    assert after["master.wav"] == fresh["master.wav"]
    no_leftovers(tmp_path)


@pytest.mark.parametrize("umask,file_mode,dir_mode", [(0o022, 0o644, 0o755),
                                                      (0o027, 0o640, 0o750)])
def test_output_permissions_follow_the_umask(project, tmp_path, capsys, umask, file_mode,
                                             dir_mode):
    old = os.umask(umask)
    try:
        out = tmp_path / "made" / "out"
        assert main(render_args(project, out)) == 0
    finally:
        os.umask(old)
    for name in ("mix.wav", "master.wav"):
        assert (out / name).stat().st_mode & 0o7777 == file_mode
    assert out.stat().st_mode & 0o7777 == dir_mode
    assert out.parent.stat().st_mode & 0o7777 == dir_mode


# --------------------------------------------------------------------------- signals, a second run

CHILD = """
import os, signal, sys, time
# Ctrl-C as a terminal gives it, whatever the test runner's process left to its children
# (an inherited ignored SIGINT or a blocked signal mask would make this child deaf to it)
signal.pthread_sigmask(signal.SIG_SETMASK, [])
signal.signal(signal.SIGINT, signal.default_int_handler)
import automix.audio as audio
original = audio._write_pcm
def slow(tmp, *args):
    original(tmp, *args)
    if "master" in tmp.name:
        open(os.environ["READY"], "w").close()
        # short sleeps: a signal the kernel hands to a worker thread is acted on by the main
        # thread at its next bytecode, which one long sleep would put off for the whole pause
        for _ in range(int(float(os.environ["PAUSE"]) / 0.05)):
            time.sleep(0.05)
audio._write_pcm = slow
from automix.cli import run
sys.argv = ["automix"] + sys.argv[1:]
run()
"""


def _start_child(project, out, pause, tmp_path, *extra):
    """`automix render` in a child process that pauses with master.wav written in the staging
    folder (mid-run, holding the lock)."""
    ready = tmp_path / "ready"
    ready.unlink(missing_ok=True)
    env = dict(os.environ, READY=str(ready), PAUSE=str(pause), PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-c", CHILD, *render_args(project, out, *extra)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    return proc


@pytest.mark.parametrize("sig,code,message", [(signal.SIGINT, 130, "automix: interrupted\n"),
                                              (signal.SIGTERM, 143, "automix: terminated\n")])
def test_signal_mid_run_leaves_the_old_set(project, old_set, tmp_path, sig, code, message):
    out, before = old_set
    proc = _start_child(project, out, 60, tmp_path, "--force", "--bit-depth", 16)
    assert list(out.glob(".automix-tmp-*/.master.wav.*.tmp"))  # really mid-write
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == code and err == message, err
    assert snapshot(out) == before
    no_leftovers(out.parent)


def test_second_run_into_the_same_folder_is_refused(project, old_set, tmp_path, capsys):
    out, before = old_set
    first = _start_child(project, out, 1.5, tmp_path, "--force", "--bit-depth", 16)
    err = one_line(capsys, main(render_args(project, out, "--force", "--bit-depth", "float")))
    assert f"{out} is in use by another automix run" in err
    assert first.wait(timeout=30) == 0, first.communicate()
    assert main(render_args(project, tmp_path / "fresh", "--bit-depth", 16)) == 0
    after, fresh = snapshot(out), snapshot(tmp_path / "fresh")
    assert after["mix.wav"] == fresh["mix.wav"] and after["master.wav"] == fresh["master.wav"]
    assert after["notes.txt"] == before["notes.txt"]
    no_leftovers(tmp_path)


# --------------------------------------------------------------------------- one-line errors

@pytest.mark.parametrize("text,fragment", [
    ('{"format": "automix.settings", "version": 1, "sample_rate": 1%s}' % ("0" * 400),
     "(401 digits) is out of range"),
    ('{"tracks": [{"gain_db": %s}]}' % ("9" * 5000), "(5000 digits) is out of range"),
    ("[" * 100000 + "]" * 100000, "nested too deeply"),
])
def test_settings_numbers_and_nesting(project, tmp_path, capsys, text, fragment):
    (tmp_path / "s.json").write_text(text)
    code = main(["render", "--stems", str(project / "stems"), "--settings",
                 str(tmp_path / "s.json"), "-o", str(tmp_path / "o")])
    assert fragment in one_line(capsys, code)


def test_api_messages_are_prefixed_once(project, tmp_path, capsys):
    """Two stems with one name (a.wav, a.flac): the API's "automix: tracks: ..." error."""
    stems = tmp_path / "stems"
    stems.mkdir()
    x = np.random.default_rng(2).standard_normal((SR * 4, 2)) * 0.1
    sf.write(stems / "a.wav", x, SR)
    sf.write(stems / "a.flac", x[:, :1], SR)
    sf.write(tmp_path / "ref.wav", x, SR)
    code = main(["--stems", str(stems), "--reference", str(tmp_path / "ref.wav"), "-o",
                 str(tmp_path / "o"), "--no-model", "--refine-steps", "2"])
    assert "automix: error: tracks: track names must be unique" in one_line(capsys, code)


def test_interrupt_before_the_command_runs(monkeypatch, capsys):
    from automix import cli

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_mix_parser", interrupted)
    assert main(["--stems", "x", "--reference", "y"]) == 130
    assert capsys.readouterr().err == "automix: interrupted\n"


def test_non_utf8_output_folder_and_closed_stdout(project, tmp_path):
    """Console script runs: a folder name that is not UTF-8 works; ``analyze >&-`` says in one
    line that it has nowhere to print (no traceback)."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = os.fsencode(tmp_path) + b"/\xff-out"
    proc = subprocess.run([sys.executable, "-m", "automix.cli", *render_args(project, "X")[:-1],
                           out], capture_output=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert out + b"/master.wav" in proc.stdout and b"Traceback" not in proc.stderr
    assert sorted(os.listdir(out)) == [b"master.wav", b"mix.wav"]
    proc = subprocess.run([sys.executable, "-m", "automix.cli", "analyze",
                           str(project / "stems" / "b.wav")], capture_output=True, env=env,
                          preexec_fn=lambda: os.close(1))
    assert proc.returncode == 2
    assert proc.stderr == b"automix: error: standard output is closed: nowhere to print the " \
                          b"analysis\n"


def test_train_interrupted_while_importing(tmp_path):
    """Ctrl-C while automix-train still imports numpy and torch: one line, exit 130."""
    code = """
import sys
class Interrupt:
    def find_spec(self, name, path=None, target=None):
        if name == "numpy":
            raise KeyboardInterrupt
sys.meta_path.insert(0, Interrupt())
sys.argv[0] = "/usr/bin/automix-train"
from training.train import main
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.returncode == 130 and proc.stderr == "automix-train: interrupted\n", proc.stderr


@pytest.mark.parametrize("argv,fragment", [
    (["trainer.max_steps=abc"], "trainer.max_steps=abc: expected an integer"),
    (["optim.lr=fast"], "optim.lr=fast: expected a number"),
    (["trainer.amp=3"], "trainer.amp=3: expected true or false"),
    (["nosuchkey=1"], "Could not override 'nosuchkey'"),
    (["data=nosuch"], "Could not find 'data/nosuch' (available: generic"),
    (["trainer.max_steps=["], "cannot parse the override 'trainer.max_steps=['"),
])
def test_train_bad_overrides(monkeypatch, capsys, argv, fragment):
    from training import train

    monkeypatch.setattr(sys, "argv", ["automix-train", *argv])
    with pytest.raises(SystemExit) as exc:
        train.main()
    err = capsys.readouterr().err
    assert exc.value.code == 2 and fragment in err and err.count("\n") == 1, err
    train.check_overrides(["trainer.max_steps=5", "optim.lr=1", "data=generic", "loss=audio"])


@pytest.mark.parametrize("argv,fragment", [
    (["synth", "-n", "1", "-o", "X", "--sample-rate", "0"], "--sample-rate 0: expected a rate"),
    (["synth", "-n", "1", "-o", "X", "--jobs", "0"], "--jobs 0: must be at least 1"),
    (["synth", "-n", "0", "-o", "X"], "-n/--songs 0: must be at least 1"),
    (["synth", "-n", "1", "-o", "X", "--start", "-1"], "--start -1: must be at least 0"),
    (["synth", "-n", "1", "-o", "X", "--max-seconds", "inf"], "--max-seconds inf: expected a finite"),
    (["render-midi", "x.mid", "-o", "X", "--sample-rate", "100"], "--sample-rate 100"),
    (["render-midi", "x.mid", "-o", "X", "--peak-db", "nan"], "--peak-db nan"),
    (["scan", "X", "--valid-fraction", "2"], "--valid-fraction 2: expected 0..1"),
    (["priors", "kick", "--seed", "-1"], "--seed -1: must be at least 0"),
])
def test_data_cli_bad_values(tmp_path, capsys, argv, fragment):
    from training.data_cli import main as data_main

    code = data_main([str(tmp_path / "o") if a == "X" else a for a in argv])
    err = capsys.readouterr().err
    assert code == 2 and fragment in err and err.count("\n") == 1, err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("command", ["render-midi", "synth"])
def test_data_cli_missing_optional_dependency(tmp_path, monkeypatch, capsys, command):
    from training.data_cli import main as data_main

    monkeypatch.setitem(sys.modules, "mido", None)  # import mido fails
    argv = ["render-midi", str(tmp_path / "x.mid")] if command == "render-midi" else \
        ["synth", "-n", "1"]
    assert data_main([*argv, "-o", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err == \
        f'automix-data: error: {command} needs mido: pip install "automix[train]"\n'


# --------------------------------------------------------------------------- sample formats

def test_16_bit_is_tpdf_dithered_and_rounded(tmp_path):
    """A -70 dBFS sine fading out (about 10 LSB): the error against the float signal has no DC,
    0.5 LSB rms (TPDF's 1/6 LSB^2 plus rounding's 1/12 = 1/4) and no harmonics of the sine
    (truncation: -0.5 LSB DC; plain rounding: error correlated with the signal)."""
    from automix.audio import write_audio

    n, f0 = 1 << 18, 1000 * SR / (1 << 14)  # f0 on an FFT bin
    t = np.arange(n)
    x = 10 ** (-70 / 20) * np.sin(2 * np.pi * f0 * t / SR) * np.linspace(1, 0.2, n)
    x = np.stack([x, -x])
    path = write_audio(tmp_path / "d.wav", x, SR, 16)
    y, _ = sf.read(path, dtype="int16")
    e = y.T.astype(np.float64) - x * 32768
    assert abs(e.mean()) < 0.05 and abs(e.std() - 0.5) < 0.01, (e.mean(), e.std())
    assert np.abs(e).max() <= 1.5 + 1e-9
    assert abs(np.corrcoef(e[0], x[0])[0, 1]) < 0.01
    spec = np.abs(np.fft.rfft(e[0] * np.hanning(n))) ** 2
    floor = np.median(spec)
    bins = [int(round(k * f0 * n / SR)) for k in range(1, 8) if k * f0 < SR / 2]
    for b in bins:  # no line at the sine or its harmonics (a few dB: noise of one bin)
        assert spec[b - 2:b + 3].max() < floor * 10 ** (12 / 10), (b, spec[b] / floor)
    again = write_audio(tmp_path / "e.wav", x, SR, 16)  # seeded: the same file, byte for byte
    assert again.read_bytes() == path.read_bytes()


@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_24_bit_rounds_to_nearest(tmp_path, suffix):
    """libsndfile's WAV writer truncates toward -inf (0.6 LSB -> 0, -0.4 -> -1); write_audio
    rounds: the error is at most half an LSB, in WAV and FLAC alike."""
    from automix.audio import write_audio

    lsb = np.array([0.0, 0.4, 0.6, -0.4, -0.6, 100.6, -100.4, 8388607.4, 9e6, -9e6])
    path = write_audio(tmp_path / f"r{suffix}", lsb[None] / 2 ** 23, SR, 24)
    y, _ = sf.read(path, dtype="int32")
    assert (y >> 8).tolist() == [0, 0, 1, 0, -1, 101, -100, 8388607, 8388607, -8388608]


def test_full_disk_reason_when_the_last_page_has_room(tmpfs):
    """A file filled to a full disk that ends inside a page: the first probe write is short, not
    an error; the reason reported is still the full disk, not an unknown input/output error."""
    from automix.audio import _errno_of_failed_write

    filled = tmpfs / "filled"
    with open(filled, "wb", buffering=0) as f:
        with pytest.raises(OSError) as full:
            while True:
                f.write(bytes(1000))
    assert full.value.errno == errno.ENOSPC
    os.truncate(filled, filled.stat().st_size - 100)  # its last page stays allocated, 100 B free
    assert _errno_of_failed_write(filled) == errno.ENOSPC
