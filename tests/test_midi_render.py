"""MIDI -> stems with FluidSynth, and the synthetic song generator (training/midi_render.py, synth.py).

Skipped when FluidSynth (libfluidsynth), a GM SoundFont, mma or music21 are not installed; CI
installs them (apt: fluidsynth timgm6mb-soundfont mma; pip: mido music21).
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

try:
    import training  # noqa: F401
except ImportError:  # the repository root is not on sys.path (training/ not installed)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from automix.errors import AutomixError

mido = pytest.importorskip("mido")


def _have_fluidsynth() -> bool:
    from training.midi_render import _fluidsynth_lib, find_soundfonts

    try:
        _fluidsynth_lib()
    except AutomixError:
        return False
    return bool(find_soundfonts())


needs_fluidsynth = pytest.mark.skipif(not _have_fluidsynth(),
                                      reason="FluidSynth or a GM SoundFont is not installed")
needs_mma = pytest.mark.skipif(shutil.which("mma") is None, reason="mma is not installed")

TPB = 480
TEMPO_CHANGE_TICK = 4 * TPB  # 120 bpm for 4 beats (2 s), then 90 bpm


def _track(name, events):
    """A track from (tick, message) pairs."""
    t = mido.MidiTrack()
    t.append(mido.MetaMessage("track_name", name=name, time=0))
    last = 0
    for tick, msg in sorted(events, key=lambda e: e[0]):
        t.append(msg.copy(time=tick - last))
        last = tick
    return t


def _notes(ch, pitch, starts, length, velocity):
    ev = []
    for s in starts:
        ev.append((s, mido.Message("note_on", channel=ch, note=pitch, velocity=velocity)))
        ev.append((s + length, mido.Message("note_off", channel=ch, note=pitch, velocity=0)))
    return ev


def tiny_song(path: Path, bass_velocity: int = 30) -> Path:
    """Piano, a quiet bass, a drum kit (kick, snare, hats, crash) and a second track on the piano's
    channel; a tempo change, controllers and pitch bend."""
    mid = mido.MidiFile(type=1, ticks_per_beat=TPB)
    mid.tracks.append(_track("meta", [
        (0, mido.MetaMessage("set_tempo", tempo=500000)),
        (0, mido.MetaMessage("time_signature", numerator=4, denominator=4)),
        (TEMPO_CHANGE_TICK, mido.MetaMessage("set_tempo", tempo=666667))]))
    piano = [(0, mido.Message("program_change", channel=0, program=0)),
             (0, mido.Message("control_change", channel=0, control=7, value=110)),
             (3 * TPB, mido.Message("pitchwheel", channel=0, pitch=1200)),
             (4 * TPB, mido.Message("pitchwheel", channel=0, pitch=0))]
    piano += _notes(0, 60, [TPB, 3 * TPB, 6 * TPB], TPB, 90) + _notes(0, 64, [TPB, 5 * TPB], 2 * TPB, 80)
    mid.tracks.append(_track("Piano", piano))
    bass = [(0, mido.Message("program_change", channel=1, program=33))]
    bass += _notes(1, 36, [0, 2 * TPB, 4 * TPB, 6 * TPB], TPB, bass_velocity)
    mid.tracks.append(_track("Bass", bass))
    drums = _notes(9, 36, [0, 2 * TPB, 4 * TPB, 6 * TPB], 10, 110) + _notes(9, 38, [TPB, 3 * TPB, 5 * TPB], 10, 100)
    drums += _notes(9, 42, list(range(0, 7 * TPB, TPB // 2)), 10, 80) + _notes(9, 46, [7 * TPB], 10, 80)
    drums += _notes(9, 49, [0], 10, 90)
    mid.tracks.append(_track("Drums", drums))
    mid.tracks.append(_track("Piano 2", _notes(0, 60, [2 * TPB, 3 * TPB], TPB // 2, 70)))
    mid.save(str(path))
    return path


def _read(path: Path) -> np.ndarray:
    data, _ = sf.read(str(path), dtype="float64", always_2d=True)
    return data.T if data.shape[1] == 2 else np.repeat(data.T, 2, axis=0)


def _share(x: np.ndarray, sr: int, lo: float, hi: float) -> float:
    """Share of the energy between lo and hi Hz."""
    spec = np.abs(np.fft.rfft(x.mean(0))) ** 2
    freqs = np.fft.rfftfreq(x.shape[1], 1 / sr)
    return float(spec[(freqs >= lo) & (freqs < hi)].sum() / spec.sum())


@needs_fluidsynth
def test_stems_sum_to_the_full_render(tmp_path):
    from training.midi_render import render_midi, sdr_db

    res = render_midi(tiny_song(tmp_path / "tiny.mid"), tmp_path / "out", sample_rate=22050)
    song = tmp_path / "out" / "tiny"
    names = [p.stem for p in res.stems]
    assert names == ["acoustic_grand_piano", "electric_bass_finger", "drums_kick", "drums_snare",
                     "drums_hihat", "drums_cymbals", "acoustic_grand_piano_2"]
    stems = [_read(p) for p in res.stems]
    full = _read(song / "mixture.flac")
    assert all(s.shape == full.shape for s in stems)
    assert sdr_db(full, sum(stems)) > 40  # from the 24-bit files on disk
    assert res.sum_sdr_db > 100           # before quantization: float rounding only
    info = json.loads((song / "stems.json").read_text())
    assert info["sum_sdr_db"] > 100 and [s["file"] for s in info["stems"]] == [p.name for p in res.stems]
    assert {s["label"] for s in info["stems"]} >= {"piano", "bass", "kick", "snare", "hihat", "cymbals"}
    assert abs(20 * np.log10(np.abs(full).max()) - (-1.0)) < 0.01  # one song gain: peak at -1 dBFS
    # the stems hold what their names say
    by = dict(zip(names, stems))
    assert _share(by["drums_kick"], 22050, 0, 200) > 0.5        # kick: low
    assert _share(by["drums_hihat"], 22050, 4000, 11025) > 0.5  # hats: high (the drum kit, not a piano)
    # levels are as the MIDI has them: the quiet bass stays quiet (no per-stem normalization)
    peaks = {n: np.abs(s).max() for n, s in by.items()}
    assert peaks["electric_bass_finger"] < 0.5 * peaks["acoustic_grand_piano"]


@needs_fluidsynth
def test_timing_follows_the_tempo_map(tmp_path):
    from training.midi_render import render_midi

    sr = 22050
    res = render_midi(tiny_song(tmp_path / "t.mid"), tmp_path / "out", sample_rate=sr, split_drums=False)
    piano = _read(res.stems[0])
    env = np.abs(piano).max(0)
    onset = np.flatnonzero(env > 1e-3)[0] / sr
    assert abs(onset - 0.5) < 0.01  # first note on beat 2 at 120 bpm
    # the note at tick 6*TPB: 2 s at 120 bpm, then 2 beats at 90 bpm = 1.333 s
    after = env[int(3.2 * sr):]
    onset2 = 3.2 + np.flatnonzero(after > 0.5 * env[int(0.5 * sr):int(1.0 * sr)].max())[0] / sr
    assert abs(onset2 - (2.0 + 4 / 3)) < 0.02
    assert [p.stem for p in res.stems].count("drums") == 1 and len(res.stems) == 4


@needs_fluidsynth
def test_keep_level_and_bad_soundfont(tmp_path):
    from training.midi_render import render_midi

    midi = tiny_song(tmp_path / "k.mid")
    res = render_midi(midi, tmp_path / "out", peak_db=None, write_mixture=False, audio_format="wav")
    assert res.stems[0].suffix == ".wav" and not (res.song_dir / "mixture.wav").exists()
    assert json.loads((res.song_dir / "stems.json").read_text())["song_gain_db"] == 0.0
    with pytest.raises(AutomixError, match="no such SoundFont"):
        render_midi(midi, tmp_path / "out", soundfont=tmp_path / "missing.sf2")
    empty = mido.MidiFile(type=1)
    empty.tracks.append(_track("x", []))
    empty.save(str(tmp_path / "empty.mid"))
    with pytest.raises(AutomixError, match="no notes"):
        render_midi(tmp_path / "empty.mid", tmp_path / "out")


@needs_fluidsynth
def test_cli_render_midi_folder(tmp_path, capsys):
    from training.data_cli import main

    src = tmp_path / "midi"
    src.mkdir()
    tiny_song(src / "one.mid")
    tiny_song(src / "two.mid", bass_velocity=90)
    (src / "broken.mid").write_bytes(b"MThd not really")
    with pytest.warns(UserWarning, match="broken.mid"):
        assert main(["render-midi", str(src), "-o", str(tmp_path / "out"), "--sample-rate", "22050"]) == 0
    out = capsys.readouterr().out
    assert "2 song(s)" in out and "dB SDR" in out
    from training.datasets import scan

    songs = scan("generic", tmp_path / "out")
    assert [s.id for s in songs] == ["one", "two"] and len(songs[0].stems) == 7
    assert main(["render-midi", str(tmp_path / "nothing.mid"), "-o", str(tmp_path / "o")]) == 2
    assert "no such MIDI file" in capsys.readouterr().err


@needs_fluidsynth
@needs_mma
def test_synth_mma_song(tmp_path, capsys):
    from training.data_cli import main
    from training.datasets import scan
    from training.synth import SynthConfig, compose_mma

    args = ["synth", "-n", "1", "-o", str(tmp_path / "syn"), "--source", "mma", "--seed", "3",
            "--min-seconds", "6", "--max-seconds", "9", "--sample-rate", "22050"]
    assert main(args) == 0
    song = tmp_path / "syn" / "song_00000"
    prov = json.loads((song / "provenance.json").read_text())
    assert prov["source"] == "mma" and prov["copyright"]["mma"] == "/usr/share/doc/mma/copyright"
    assert prov["copyright"]["soundfont"] and prov["mma"]["grooves"] and prov["mma"]["chords"]
    assert (song / "source.mma").is_file() and (song / "source.mid").is_file()
    info = json.loads((song / "stems.json").read_text())
    assert len(info["stems"]) >= 3 and info["sum_sdr_db"] > 40
    stems = [_read(song / s["file"]) for s in info["stems"]]
    assert 10 * np.log10(np.sum(_read(song / "mixture.flac") ** 2)
                         / np.sum((_read(song / "mixture.flac") - sum(stems)) ** 2)) > 40
    (s,) = scan("synth", tmp_path / "syn")
    assert {st.label for st in s.stems} == {m["label"] for m in info["stems"]}
    assert "songs/min" in capsys.readouterr().out
    # finished songs are kept (resume), and a song is a pure function of (seed, index)
    mtime = (song / "provenance.json").stat().st_mtime
    assert main(args) == 0 and (song / "provenance.json").stat().st_mtime == mtime
    cfg = SynthConfig()
    a = compose_mma(np.random.default_rng(1), cfg)
    assert a == compose_mma(np.random.default_rng(1), cfg) != compose_mma(np.random.default_rng(2), cfg)


@needs_fluidsynth
def test_synth_music21_song(tmp_path):
    pytest.importorskip("music21")
    from training.synth import SynthConfig, make_song

    cfg = SynthConfig(sources={"music21": 1.0}, sample_rate=22050)
    song = make_song(0, tmp_path / "syn", seed=1, cfg=cfg)
    prov = json.loads((song / "provenance.json").read_text())
    assert prov["source"] == "music21" and prov["music21"]["work"].startswith("bach/")
    info = json.loads((song / "stems.json").read_text())
    assert len(info["stems"]) == len(prov["music21"]["parts"]) >= 2
    assert len({s["channel"] for s in info["stems"]}) == len(info["stems"])  # one channel per part
    assert info["sum_sdr_db"] > 40
