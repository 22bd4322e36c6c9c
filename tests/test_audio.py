"""Audio I/O: formats, channels, rates, errors, atomic writes."""
import numpy as np
import pytest
import soundfile as sf

from automix.audio import (BlockReader, pad_to_length, read_audio, resample, write_audio)
from automix.errors import AutomixError


@pytest.mark.parametrize("ext,subtype", [(".wav", "PCM_16"), (".flac", "PCM_24"),
                                         (".ogg", "VORBIS"), (".aiff", "PCM_16")])
@pytest.mark.parametrize("channels", [1, 2])
def test_read_formats(tmp_path, rng, ext, subtype, channels):
    x = (rng.standard_normal((4000, channels)) * 0.1).astype(np.float32)
    path = tmp_path / f"a{ext}"
    sf.write(path, x, 32000, subtype=subtype)
    audio, sr = read_audio(path)
    assert sr == 32000 and audio.shape == (channels, 4000) and audio.dtype == np.float32
    if subtype.startswith("PCM"):
        np.testing.assert_allclose(audio, x.T, atol=1e-4)


def test_read_errors(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"this is not audio at all" * 10)
    with pytest.raises(AutomixError, match="cannot read"):
        read_audio(bad)
    with pytest.raises(AutomixError, match="no such file"):
        read_audio(tmp_path / "missing.wav")
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros((0, 2)), 44100)
    with pytest.raises(AutomixError, match="no audio"):
        read_audio(empty)
    multi = tmp_path / "multi.wav"
    sf.write(multi, np.zeros((100, 6)), 44100)
    with pytest.raises(AutomixError, match="6 channels"):
        read_audio(multi)
    nan = tmp_path / "nan.wav"
    x = np.zeros((100, 2), np.float32)
    x[10, 1] = np.nan
    x[20, 0] = np.inf
    sf.write(nan, x, 44100, subtype="FLOAT")
    with pytest.raises(AutomixError, match="2 samples are NaN or infinite"):
        read_audio(nan)


def test_resample_keeps_a_sine(rng):
    t = np.arange(48000) / 48000
    x = np.sin(2 * np.pi * 1000 * t)[None].astype(np.float32)
    y = resample(x, 48000, 44100)
    assert y.shape == (1, 44100)
    expected = np.sin(2 * np.pi * 1000 * np.arange(44100) / 44100)
    np.testing.assert_allclose(y[0, 1000:-1000], expected[1000:-1000], atol=1e-3)


def test_pad_to_length():
    x = np.ones((2, 5), np.float32)
    assert pad_to_length(x, 8).shape == (2, 8) and pad_to_length(x, 8)[:, 5:].sum() == 0
    assert pad_to_length(x, 3).shape == (2, 3)


@pytest.mark.parametrize("depth,subtype", [(16, "PCM_16"), (24, "PCM_24"), ("float", "FLOAT")])
def test_write_atomic(tmp_path, rng, depth, subtype):
    x = rng.uniform(-0.9, 0.9, (2, 1000))
    path = write_audio(tmp_path / "out.wav", x, 44100, depth)
    assert sf.info(path).subtype == subtype
    y, sr = read_audio(path)
    # 16 bit: TPDF dither (+-1 LSB) then rounding (+-0.5 LSB); 24 bit: rounding
    np.testing.assert_allclose(y, x, atol=1.5 * 2.0 ** -15 if depth == 16 else 2.0 ** -24)
    assert [p.name for p in tmp_path.iterdir()] == ["out.wav"]  # no temp files left


def test_write_failure_keeps_the_old_file(tmp_path):
    path = tmp_path / "keep.wav"
    write_audio(path, np.zeros((1, 10)), 44100)
    before = path.read_bytes()
    with pytest.raises(AutomixError):
        write_audio(path, np.full((1, 10), np.nan), 44100)
    assert path.read_bytes() == before
    assert len(list(tmp_path.iterdir())) == 1


def test_block_reader_streams_and_resamples(tmp_path, rng):
    x = rng.standard_normal((3000, 2)).astype(np.float32) * 0.1
    sf.write(tmp_path / "a.wav", x, 44100, subtype="FLOAT")
    with BlockReader(tmp_path / "a.wav", 44100) as r:
        blocks = np.concatenate([r.read(1000) for _ in range(4)], -1)
    np.testing.assert_array_equal(blocks[:, :3000], x.T)
    assert not blocks[:, 3000:].any()
    with BlockReader(tmp_path / "a.wav", 22050) as r:
        assert r.frames == 1500 and r.read(2000).shape == (2, 2000)


def test_block_reader_of_an_array_streams_what_the_file_reader_streams(tmp_path, rng):
    """Stems kept in memory replace a file reader in the render: same frames, same samples."""
    x = rng.standard_normal((3000, 2)).astype(np.float32) * 0.1
    sf.write(tmp_path / "a.wav", x, 44100, subtype="PCM_24")
    audio, _ = read_audio(tmp_path / "a.wav")
    with BlockReader(tmp_path / "a.wav", 44100) as disk:
        memory = BlockReader.of_array(audio, disk.frames)
        assert memory.frames == disk.frames == 3000
        for n in (1000, 700, 2000, 500):
            np.testing.assert_array_equal(memory.read(n), disk.read(n))
    longer = BlockReader.of_array(audio, 3500)   # a header that promises more: zeros after
    block = longer.read(4000)
    assert longer.frames == 3500 and block.shape == (2, 4000) and not block[:, 3000:].any()
