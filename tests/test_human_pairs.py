"""Human pairs (training/human_pairs.py): the erasure, its exact inverse through the console, the
balance-error metric, and the pair dataset on a small rendered (or synthetic) multitrack."""
import json
import math
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

from automix.analysis import integrated_loudness
from automix.render import TrackStrip
from automix.settings import validate
from training import human_pairs as hp

SR = 44100


def _synthetic_song(seconds=3.0, seed=0):
    """Three stems: a stereo pad, a mono (L == R) bass, a mono hat-like noise burst track."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    pad = np.stack([0.2 * np.sin(2 * np.pi * 330 * t), 0.15 * np.sin(2 * np.pi * 331 * t + 1)])
    bass = 0.4 * np.sin(2 * np.pi * 55 * t) * (1 + 0.5 * np.sin(2 * np.pi * 2 * t))
    hat = rng.normal(0, 0.05, len(t)) * (np.mod(t, 0.25) < 0.03)
    return np.stack([pad, np.stack([bass, bass]), np.stack([hat, hat])])


def _rendered_song(tmp_path):
    """The stems of the tiny LMMS project when lmms is installed (else None)."""
    if shutil.which("lmms") is None:
        return None
    from training import lmms

    path = tmp_path / "tiny.mmp"
    path.write_text(lmms.tiny_project_xml())
    song = lmms.render_song(path, tmp_path / "data", progress=lambda s: None)
    files = [s["file"] for s in json.loads((song / "stems.json").read_text())["stems"]]
    return np.stack([sf.read(song / f, dtype="float64", always_2d=True)[0].T for f in files])


def _through_console(erased, settings):
    """The settings' track strips (the render executor), summed."""
    s = validate(dict(settings, sample_rate=SR), "test")
    out = np.zeros((2, erased.shape[-1]))
    for x, track in zip(erased, s["tracks"]):
        TrackStrip(track, SR, 2).process(np.ascontiguousarray(x), out)
    return out


def _db(err, ref):
    return 10 * math.log10(np.sum(err ** 2) / np.sum(ref ** 2))


@pytest.mark.parametrize("source", ["synthetic", "lmms"])
def test_erasure_and_its_inverse_recover_the_producers_sum(tmp_path, source):
    stems = _synthetic_song() if source == "synthetic" else _rendered_song(tmp_path)
    if stems is None:
        pytest.skip("lmms is not installed: the synthetic case covers the erasure")
    cfg = hp.EraseConfig(pan_prob=1.0)
    erased, er = hp.erase(stems, SR, np.random.default_rng(3), cfg)
    producer = stems.sum(0)
    # the balance is really gone: every stem at the target loudness, the sum far from the producer's
    for x in erased:
        assert integrated_loudness(x, SR) == pytest.approx(cfg.target_lufs, abs=0.05)
    assert _db(erased.sum(0) - producer, producer) > -10
    assert np.all(np.abs(er.low_db) <= 4) and np.all(np.abs(er.high_db) <= 4) and np.abs(er.low_db).max() > 0.5
    mono = [hp.is_mono_content(s) for s in stems]
    assert all((er.pan[i] != 0) == mono[i] for i in range(len(stems)))
    # the true offsets undo it, through the console's own track strips
    undo = hp.undo_settings(er, [f"t{i}" for i in range(len(stems))], remove_mean=False)
    assert _db(_through_console(erased, undo) - producer, producer) < -60
    # with the mean moved to the master gain
    centred = hp.undo_settings(er, [f"t{i}" for i in range(len(stems))])
    g = 10 ** (centred["master"]["gain_db"] / 20)
    assert _db(g * _through_console(erased, centred) - producer, producer) < -60
    assert abs(np.mean([t["gain_db"] for t in centred["tracks"]])) < 1e-9


def test_balance_error_hand_computed():
    # a song-wide shift costs nothing
    assert hp.balance_error_db([0, -6, 3], [10, 4, 13]) == pytest.approx(0.0)
    # equal weights: offsets [0, 0] vs truth [0, -6]: centred 0,0 vs +3,-3 -> mean |d| = 3
    assert hp.balance_error_db([0, 0], [0, -6]) == pytest.approx(3.0)
    # weights 3:1 -> weighted means 0 and -1.5; d = (0 - 0) - (0 + 1.5) = -1.5, (0) - (-6 + 1.5) = 4.5
    # weighted mean |d| = 0.75 * 1.5 + 0.25 * 4.5 = 2.25
    assert hp.balance_error_db([0, 0], [0, -6], [3, 1]) == pytest.approx(2.25)
    # three tracks, equal weights: o = [1, 2, 6] (mean 3) -> [-2, -1, 3]; t = [0, 0, 0]; mean |d| = 2
    assert hp.balance_error_db([1, 2, 6], [0, 0, 0]) == pytest.approx(2.0)
    with pytest.raises(ValueError):
        hp.balance_error_db([1, 2], [1])


def _song_folder(root, stems):
    song = root / "song"
    song.mkdir(parents=True)
    for i, s in enumerate(stems):
        sf.write(song / f"stem{i}.wav", s.T.astype(np.float32), SR, subtype="FLOAT")
    sf.write(song / "mixture.wav", stems.sum(0).T.astype(np.float32), SR, subtype="FLOAT")
    return song


def test_pair_dataset_and_mixing_ratio(tmp_path):
    from training.datasets import MultitrackDataset, scan_generic

    stems = _synthetic_song(seconds=4.0)
    _song_folder(tmp_path / "human", stems)
    songs = scan_generic(tmp_path / "human")
    base = MultitrackDataset(songs, crop_seconds=2.0, pad_to_max_tracks=False)
    ds = hp.HumanPairDataset(base, {"pan_prob": 0.5}, render_target=True)
    item = ds[(0, 0)]
    n, S = 3, base.crop_samples // 2
    assert item["stems"].shape == (n, 2, S) and item["target"].shape == (2, S)
    assert item["track_params"].shape[0] == n and bool(item["mask"].all())
    assert set(item) >= {"stem_mels", "reference_mel", "mask", "is_stereo", "track_params", "master_params",
                         "stems", "reference", "target"}
    # the reference is the producer's mix of section A, the target the producer's stems of B
    start = int(round(base[0]["start_seconds"] * SR))
    assert torch.allclose(item["reference"], torch.from_numpy(stems.sum(0)[:, start:start + S]).float(), atol=1e-5)
    assert torch.allclose(item["target"], torch.from_numpy(stems.sum(0)[:, start + S:start + 2 * S]).float(), atol=1e-5)
    assert not torch.allclose(item["stems"].sum(0), item["target"], atol=1e-2)
    # same key, same example
    assert torch.equal(ds[(0, 0)]["stems"], item["stems"])

    class Synth(torch.utils.data.Dataset):
        sample_rate = SR

        def __len__(self):
            return 1000

        def __getitem__(self, key):
            return "synthetic"

    mixed = hp.MixedPairs(Synth(), ds, ratio=0.25)
    picks = [mixed.source(0, i) for i in range(1000)]
    assert 0.2 < picks.count("human") / 1000 < 0.3
    assert mixed[(0, picks.index("synthetic"))] == "synthetic"
    assert isinstance(mixed[(0, picks.index("human"))], dict)
    with pytest.raises(Exception):
        hp.MixedPairs(Synth(), ds, ratio=1.5)


def test_build_pairs_mixes_by_the_configured_ratio(tmp_path):
    from training.train import build_pairs

    _song_folder(tmp_path / "human", _synthetic_song(seconds=4.0))
    _song_folder(tmp_path / "synth", _synthetic_song(seconds=4.0, seed=1))
    c = {"seed": 0, "section_seconds": 1.0,
         "data": {"layout": "generic", "root": str(tmp_path / "synth"), "valid_fraction": 0.0,
                  "human": {"root": str(tmp_path / "human"), "ratio": 0.5, "erase": {"pan_prob": 0.5}}}}
    ds = build_pairs(c, "train", render_target=False)
    assert isinstance(ds, hp.MixedPairs) and len(ds.base.songs) == 2
    for i in range(6):  # both sources give items of the same shape (padded to max_tracks)
        item = ds[(0, i)]
        assert item["stem_mels"].shape[0] == 16 and int(item["mask"].sum()) == 3
    assert {ds.source(0, i) for i in range(6)} == {"human", "synthetic"}
    c["data"]["human"]["ratio"] = 0.0
    assert not isinstance(build_pairs(c, "train", render_target=False), hp.MixedPairs)


def test_benchmark_split_is_by_producer():
    from benchmarks import human
    from training import lmms

    songs = {lmms.song_id(p) for p in lmms.PROJECTS}
    assert set(human.HELD_OUT) | set(human.TRAIN) == songs
    assert not set(human.HELD_OUT) & set(human.TRAIN)
    held = {p for ps in human.HELD_OUT.values() for p in ps}
    trained = {p for ps in human.TRAIN.values() for p in ps}
    assert len(human.HELD_OUT) >= 4 and not held & trained


def test_config_excludes_the_benchmark_songs():
    import yaml
    from pathlib import Path

    from benchmarks import human

    cfg = yaml.safe_load((Path(__file__).parents[1] / "configs" / "data" / "generic.yaml").read_text())
    assert set(cfg["human"]["exclude_songs"]) == set(human.HELD_OUT)
    hp.EraseConfig.of(cfg["human"]["erase"])  # every key known


def test_mixed_pairs_give_distinct_human_examples(tmp_path):
    from training.datasets import MultitrackDataset, scan_generic

    _song_folder(tmp_path / "human", _synthetic_song(seconds=4.0))
    base = MultitrackDataset(scan_generic(tmp_path / "human"), crop_seconds=1.0, pad_to_max_tracks=False)
    mixed = hp.MixedPairs(None, hp.HumanPairDataset(base, None, keep_audio=True), ratio=1.0)
    a, b = mixed[(0, 0)], mixed[(0, 1)]   # one song: both are that song, different crops/erasures
    assert not torch.equal(a["stems"], b["stems"])
