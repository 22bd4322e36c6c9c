"""Dataset layouts, aligned crops, determinism, workers, splits and bad data (training/datasets.py)."""
from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

try:
    import training  # noqa: F401
except ImportError:  # the repository root is not on sys.path (training/ not installed)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from automix.errors import AutomixError
from training.datasets import (DatasetWarning, MultitrackDataset, build_dataset, collate_crops,
                               is_mixture_name, label_from_name, read_crop, scan, split_of,
                               split_songs)

SR = 8000  # small files keep the tests fast


def noise(seconds: float, channels: int = 1, seed: int = 0, sr: int = SR) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal((channels, int(seconds * sr))) * 0.1).astype(np.float32)


def write(path: Path, audio: np.ndarray, sr: int = SR) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.asarray(audio).T, sr, subtype="FLOAT" if path.suffix == ".wav" else None)
    return path


def make_generic(root: Path, songs: int = 3, stems: int = 3, seconds: float = 2.0) -> Path:
    for s in range(songs):
        for k in range(stems):
            write(root / f"song{s}" / f"{k:02d}_stem{k}.wav", noise(seconds, 1 + k % 2, seed=10 * s + k))
        write(root / f"song{s}" / "mixture.wav", noise(seconds, 2, seed=99))
    return root


# --------------------------------------------------------------------------- layouts

def test_generic_layout_skips_mixtures_and_labels_from_names(tmp_path):
    root = tmp_path / "ds"
    song = root / "My Song"
    write(song / "01_Kick In.wav", noise(1))
    write(song / "Bass DI.flac", noise(1, seed=1))
    write(song / "vox.ogg", noise(1, seed=2))
    for mix in ("mixture.wav", "Mix.wav", "My Song_mix.wav", "master.flac"):
        write(song / mix, noise(1, 2, seed=3))
    (song / "notes.txt").write_text("not audio")
    write(song / "._hidden.wav", noise(1))
    songs = scan("generic", root)
    assert [s.id for s in songs] == ["My Song"]
    names = sorted(st.name for st in songs[0].stems)
    assert names == ["01_Kick In", "Bass DI", "vox"]
    assert sorted(st.label for st in songs[0].stems) == ["bass di", "kick in", "vox"]
    assert is_mixture_name("mixture") and is_mixture_name("Song_Mix", "song")
    assert not is_mixture_name("drum mix bus") and not is_mixture_name("song")
    assert label_from_name("03_Guitar-L_2") == "guitar l"


def test_generic_labels_from_stems_json(tmp_path):
    song = tmp_path / "ds" / "a"
    write(song / "x.wav", noise(1))
    write(song / "y.wav", noise(1, seed=1))
    (song / "stems.json").write_text('{"stems": [{"file": "x.wav", "label": "Kick"}]}')
    (s,) = scan("generic", tmp_path / "ds")
    assert {st.name: st.label for st in s.stems} == {"x": "kick", "y": "y"}


def test_musdb_layout(tmp_path):
    root = tmp_path / "musdb"
    for subset, songs in (("train", ("A - one", "B - two")), ("test", ("C - three",))):
        for song in songs:
            for k, name in enumerate(("drums", "bass", "other", "vocals", "mixture")):
                write(root / subset / song / f"{name}.wav", noise(1, 2, seed=k))
    train = scan("musdb", root)
    assert [s.id for s in train] == ["train/A - one", "train/B - two"]
    assert [st.label for st in train[0].stems] == ["drums", "bass", "other", "vocals"]
    both = scan("musdb", root, subsets=["train", "test"])
    assert len(both) == 3
    ds = MultitrackDataset(train, sample_rate=SR, crop_seconds=0.5, max_tracks=4)
    item = ds[0]
    assert item["stems"].shape == (4, 2, SR // 2) and item["mask"].all() and item["is_stereo"].all()
    with pytest.raises(AutomixError, match="MUSDB18-HQ"):
        scan("musdb", tmp_path / "musdb" / "train")


def test_medleydb_layout_with_metadata(tmp_path):
    root = tmp_path / "medley"
    song = "Artist_Title"
    stems = root / song / f"{song}_STEMS"
    for k in (1, 2, 3):
        write(stems / f"{song}_STEM_0{k}.wav", noise(1, seed=k))
    write(root / song / f"{song}_MIX.wav", noise(1, 2))
    (root / song / f"{song}_METADATA.yaml").write_text(
        "artist: Artist\nstems:\n"
        f"  S01:\n    filename: {song}_STEM_01.wav\n    instrument: electric bass\n"
        f"  S02:\n    filename: {song}_STEM_02.wav\n    instrument: [drum set, percussion]\n")
    # a second song without metadata: labels from the file names
    other = root / "Other_Song" / "Other_Song_STEMS"
    write(other / "Other_Song_STEM_01.wav", noise(1))
    write(other / "Other_Song_STEM_02.wav", noise(1, seed=5))
    songs = scan("medleydb", root)
    assert [s.id for s in songs] == [song, "Other_Song"]
    labels = [st.label for st in songs[0].stems]
    assert labels[:2] == ["electric bass", "drum set/percussion"]
    assert len(songs[0].stems) == 3  # the _MIX file is not a stem


# --------------------------------------------------------------------------- crops

def test_crops_are_aligned_across_stems(tmp_path):
    sig = noise(3.0, 1, seed=7)[0]
    d = 123  # stem b is stem a delayed by d samples
    write(tmp_path / "ds" / "s" / "a.wav", sig[None])
    write(tmp_path / "ds" / "s" / "b.wav", np.concatenate([np.zeros(d, np.float32), sig[:-d]])[None])
    write(tmp_path / "ds" / "s" / "c.wav", -sig[None])
    ds = MultitrackDataset(scan("generic", tmp_path / "ds"), sample_rate=SR, crop_seconds=0.5,
                           max_tracks=4, samples_per_epoch=8)
    for i in range(8):
        item = ds[i]
        a, b, c = (item["stems"][k, 0].numpy() for k in range(3))
        np.testing.assert_array_equal(a + c, 0)            # same instant in every stem
        np.testing.assert_array_equal(b[d:], a[:-d])       # and offsets keep their sign
        start = int(round(item["start_seconds"] * SR))
        np.testing.assert_array_equal(a, sig[start:start + SR // 2])


def test_crops_aligned_across_sample_rates(tmp_path):
    # the same band-limited signal written at 8 kHz and at 12 kHz: after resampling to 8 kHz
    # the crops agree sample for sample
    freqs = np.array([110.0, 347.0, 1210.0, 2400.0])

    def tones(sr):
        t = np.arange(int(3.0 * sr)) / sr
        return (0.2 * np.sin(2 * np.pi * freqs[:, None] * t).sum(0))[None].astype(np.float32)

    write(tmp_path / "ds" / "s" / "a.wav", tones(SR), SR)
    write(tmp_path / "ds" / "s" / "b.wav", tones(12000), 12000)
    ds = MultitrackDataset(scan("generic", tmp_path / "ds"), sample_rate=SR, crop_seconds=0.5,
                           samples_per_epoch=6)
    for i in range(6):
        x = ds[i]["stems"]
        err = (x[0] - x[1]).pow(2).mean() / x[0].pow(2).mean()
        assert 10 * torch.log10(err) < -50


def test_read_crop_beyond_the_ends_is_zero_padded(tmp_path):
    path = write(tmp_path / "x.wav", np.ones((1, SR), np.float32))
    from training.datasets import StemInfo

    stem = StemInfo(str(path), "x", "x", SR, SR, 1)
    out = read_crop(stem, 0.75, SR // 2, SR)
    assert out.shape == (1, SR // 2)
    assert out[0, : SR // 4].min() == 1 and out[0, SR // 4:].max() == 0


def test_mono_stereo_mask_and_padding(tmp_path):
    root = make_generic(tmp_path / "ds", songs=1, stems=3)
    ds = MultitrackDataset(scan("generic", root), sample_rate=SR, crop_seconds=0.25, max_tracks=6)
    item = ds[0]
    assert item["stems"].dtype == torch.float32 and item["stems"].shape == (6, 2, SR // 4)
    assert item["mask"].tolist() == [True, True, True, False, False, False]
    assert item["is_stereo"].tolist() == [False, True, False, False, False, False]
    assert torch.equal(item["stems"][0, 0], item["stems"][0, 1])        # mono -> both channels
    assert not torch.equal(item["stems"][1, 0], item["stems"][1, 1])
    assert item["stems"][3:].abs().sum() == 0
    assert item["names"] == ["00_stem0", "01_stem1", "02_stem2", "", "", ""]


def test_songs_with_more_stems_than_max_tracks_get_a_subset(tmp_path):
    root = make_generic(tmp_path / "ds", songs=1, stems=5)
    ds = MultitrackDataset(scan("generic", root), sample_rate=SR, crop_seconds=0.25, max_tracks=3,
                           samples_per_epoch=10)
    seen = set()
    for i in range(10):
        item = ds[i]
        assert item["mask"].all()
        seen.update(item["names"])
    assert len(seen) == 5


def test_silent_crops_are_redrawn(tmp_path):
    sr, n = SR, 4 * SR
    for k in range(2):  # stems silent except in the last quarter
        a = np.zeros((1, n), np.float32)
        a[:, 3 * n // 4:] = noise(1.0, seed=k)
        write(tmp_path / "ds" / "s" / f"{k}.wav", a, sr)
    ds = MultitrackDataset(scan("generic", tmp_path / "ds"), sample_rate=sr, crop_seconds=0.5,
                           samples_per_epoch=20, max_tries=30)
    items = [ds[i] for i in range(20)]
    assert all(it["active"][:2].all() for it in items)
    assert all(it["start_seconds"] > 2.5 for it in items)


def test_deterministic_with_seed_and_epoch(tmp_path):
    root = make_generic(tmp_path / "ds", songs=2, seconds=4.0)
    songs = scan("generic", root)
    a = MultitrackDataset(songs, sample_rate=SR, crop_seconds=0.5, seed=3, samples_per_epoch=6)
    b = MultitrackDataset(songs, sample_rate=SR, crop_seconds=0.5, seed=3, samples_per_epoch=6)
    c = MultitrackDataset(songs, sample_rate=SR, crop_seconds=0.5, seed=4, samples_per_epoch=6)
    for i in (0, 3, 5):
        assert torch.equal(a[i]["stems"], b[i]["stems"])
        assert a[i]["start_seconds"] == b[i]["start_seconds"]
    assert [a[i]["start_seconds"] for i in range(6)] != [c[i]["start_seconds"] for i in range(6)]
    before = [a[i]["start_seconds"] for i in range(6)]
    a.set_epoch(1)
    assert [a[i]["start_seconds"] for i in range(6)] != before


def test_dataloader_with_two_workers_matches_single_process(tmp_path):
    root = make_generic(tmp_path / "ds", songs=3, seconds=3.0)
    ds = MultitrackDataset(scan("generic", root), sample_rate=SR, crop_seconds=0.5, max_tracks=4,
                           samples_per_epoch=8, seed=1)
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2, collate_fn=collate_crops)
    batches = list(loader)
    assert len(batches) == 2
    b = batches[1]
    assert b["stems"].shape == (4, 4, 2, SR // 2) and b["mask"].shape == (4, 4)
    assert isinstance(b["names"], list) and len(b["names"]) == 4 and len(b["names"][0]) == 4
    for j in range(4):
        assert torch.equal(b["stems"][j], ds[4 + j]["stems"])
    # the default collate works too
    default = next(iter(torch.utils.data.DataLoader(ds, batch_size=2, num_workers=0)))
    assert default["stems"].shape == (2, 4, 2, SR // 2)


def test_validation_split_by_song_is_disjoint_and_stable(tmp_path):
    root = tmp_path / "ds"
    for s in range(40):
        for k in range(2):
            write(root / f"song{s:02d}" / f"{k}.wav", noise(0.1, seed=k))
    songs = scan("generic", root)
    train = split_songs(songs, "train", 0.2)
    valid = split_songs(songs, "valid", 0.2)
    assert {s.id for s in train}.isdisjoint({s.id for s in valid})
    assert len(train) + len(valid) == 40 and 2 <= len(valid) <= 16
    assert [s.id for s in split_songs(list(reversed(songs)), "valid", 0.2)][::-1] == [s.id for s in valid]
    assert all(split_of(s.id, 0.2) == "valid" for s in valid)
    # removing songs does not move the others
    assert {s.id for s in split_songs(songs[:20], "valid", 0.2)} == {s.id for s in valid if s.id < "song20"}
    # tiny datasets keep one song on each side
    two = songs[:2]
    assert len(split_songs(two, "valid", 0.1)) == 1 and len(split_songs(two, "train", 0.1)) == 1


# --------------------------------------------------------------------------- bad data

def test_empty_folder_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(AutomixError, match="no usable song"):
        scan("generic", tmp_path / "empty")
    with pytest.raises(AutomixError, match="not found"):
        scan("generic", tmp_path / "missing")
    with pytest.raises(AutomixError, match="layout"):
        scan("nope", tmp_path / "empty")


def test_one_stem_songs_and_unreadable_files_are_skipped_with_a_warning(tmp_path):
    root = make_generic(tmp_path / "ds", songs=1, stems=2)
    write(root / "lonely" / "only.wav", noise(1))
    bad = root / "broken"
    write(bad / "good.wav", noise(1))
    (bad / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" + bytes(100))
    write(bad / "good2.wav", noise(1, seed=3))
    with pytest.warns(DatasetWarning) as record:
        songs = scan("generic", root)
    text = " ".join(str(w.message) for w in record)
    assert "lonely" in text and "corrupt.wav" in text
    assert sorted(s.id for s in songs) == ["broken", "song0"]
    assert len([s for s in songs if s.id == "broken"][0].stems) == 2
    # only bad songs: an error, not an empty dataset
    only_bad = tmp_path / "bad"
    write(only_bad / "x" / "one.wav", noise(1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(AutomixError, match="no usable song"):
            scan("generic", only_bad)


def test_file_that_breaks_after_the_scan_is_left_out(tmp_path):
    root = make_generic(tmp_path / "ds", songs=1, stems=3)
    ds = MultitrackDataset(scan("generic", root), sample_rate=SR, crop_seconds=0.25)
    (root / "song0" / "01_stem1.wav").write_bytes(b"garbage")
    with pytest.warns(DatasetWarning, match="unreadable"):
        item = ds[0]
    assert item["mask"].tolist()[:3] == [True, False, True]


def test_build_dataset_from_hydra_config(tmp_path):
    from hydra import compose, initialize_config_dir

    root = make_generic(tmp_path / "ds", songs=6, seconds=1.0)
    configs = Path(__file__).resolve().parents[1] / "configs"
    with initialize_config_dir(config_dir=str(configs), version_base=None):
        cfg = compose(overrides=["+data=generic", f"data.root={root}", f"data.sample_rate={SR}",
                                 "data.crop_seconds=0.25", "data.valid_fraction=0.34"])
    train, valid = build_dataset(cfg.data, "train"), build_dataset(cfg.data, "valid")
    assert len(train) + len(valid) == 6 and len(valid) >= 1
    assert train[0]["stems"].shape == (16, 2, SR // 4)
    with initialize_config_dir(config_dir=str(configs), version_base=None):
        cfg = compose(overrides=["+data=generic"])
    with pytest.raises(AutomixError, match="root"):
        build_dataset(cfg.data)


def test_batch_padding_when_items_keep_their_track_count(tmp_path):
    root = tmp_path / "ds"
    for s, k in (("a", 2), ("b", 4)):
        for j in range(k):
            write(root / s / f"{j}.wav", noise(1.0, seed=j))
    ds = MultitrackDataset(scan("generic", root), sample_rate=SR, crop_seconds=0.25, max_tracks=8,
                           pad_to_max_tracks=False)
    assert ds[0]["stems"].shape[0] == 2 and ds[1]["stems"].shape[0] == 4
    b = collate_crops([ds[0], ds[1]])
    assert b["stems"].shape == (2, 4, 2, SR // 4)
    assert b["mask"].tolist() == [[True, True, False, False], [True] * 4]
    assert b["names"][0] == ["0", "1", "", ""] and b["stems"][0, 2:].abs().sum() == 0
