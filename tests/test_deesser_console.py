"""The de-esser as a node of the console graph (graph.DEESSER on track and group strips): absent
by default (the network's specs unchanged), the batched executor agrees with the block render,
the spectral model's band cut with the rendered one, a v2 file with a de-esser re-renders bit
exactly whatever the block size, and its settings errors are one line."""
import numpy as np
import pytest
import torch

from automix.console import batched, blocks, graph, spectral
from automix.console.graph import STRIP, entry_from_params
from automix.dsp import deesser as D
from automix.errors import AutomixError
from automix.match import Spectra, _Model
from automix.settings import validate

from conftest import ArraySource

SR = 44100


def sibilant(seconds, seed=0):
    """A 300 Hz tone with bursts of white noise (60 ms every 250 ms): the bursts' 4-10 kHz band
    is far above the de-esser's threshold, the tone's far below."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    x = 0.3 * np.sin(2 * np.pi * 300 * t)
    gate = ((t % 0.25) < 0.06).astype(float)
    x = x + 0.25 * gate * rng.standard_normal(n)
    return np.vstack([x, 0.9 * x])


DEESS = {"threshold_db": -36.0, "ratio": 6.0, "attack_ms": 1.0, "release_ms": 60.0,
         "knee_db": 3.0, "freq_hz": 6324.6, "q": 1.05}


def settings_with(deess=True):
    base = {s.name: s.default for s in STRIP.specs}
    tracks = []
    for i in range(2):
        t = {"name": f"t{i}", "file": f"t{i}.wav", **entry_from_params(STRIP, base)}
        if deess and i == 0:
            t["deesser"] = dict(DEESS)
        tracks.append(t)
    return validate({"format": "automix.settings", "version": 2, "sample_rate": SR,
                     "tracks": tracks, "master": {}})


def render(settings, stems, block, stems_out=None):
    return blocks.render_graph(settings, [ArraySource(s) for s in stems], stems[0].shape[1],
                               block=block, stems_out=stems_out)


def test_declared_on_strips_without_network_parameters():
    assert graph.DEESSER in STRIP.processors
    names = [p.name for p in STRIP.processors]
    assert names.index("eq") < names.index("deesser") < names.index("compressor")
    assert graph.DEESSER.params == ()          # TRACK_SPECS (the checkpoint's layout) unchanged
    assert "deesser" not in entry_from_params(STRIP, {s.name: s.default for s in STRIP.specs})


def test_batched_agrees_with_block_render_and_cuts_only_where_set():
    stems = [sibilant(1.0, 0), sibilant(1.0, 1)]
    s = settings_with(True)
    mix = render(s, stems, block=10007)
    plain = render(settings_with(False), stems, block=10007)
    base = {k: torch.tensor([[v, v]], dtype=torch.float64)
            for k, v in graph.params_from_entry(STRIP, s["tracks"][1]).items()}
    # track 0 de-essed; track 1 given ratio 1 (its gain is exactly 1: unchanged)
    for k in graph.DEESSER_FIELDS:
        v = s["tracks"][0]["deesser"][k]
        base[f"deesser.{k}"] = torch.tensor([[v, 1.0 if k == "ratio" else v]],
                                            dtype=torch.float64)
    x = torch.tensor(np.stack(stems))[None]
    master = {sp.name: torch.tensor([sp.default], dtype=torch.float64)
              for sp in graph.MASTER.specs}
    tmix, _ = batched.console_graph(x, torch.ones(1, 2, dtype=torch.bool),
                                    torch.tensor([[True, True]]), graph.route(s), base, master, SR)
    err = np.abs(tmix[0].numpy() - mix).max() / np.abs(mix).max()
    db = 20 * np.log10(err)
    print(f"de-esser, batched vs block render: {db:.1f} dB")
    assert db < -80, db
    # the de-esser did something on track 0 alone: the difference from the plain render is
    # track 0's band cut, and it is large
    out_d, out_p = {}, {}
    render(s, stems, 1 << 14, out_d)
    render(settings_with(False), stems, 1 << 14, out_p)
    assert np.array_equal(out_d["t1"], out_p["t1"])
    assert not np.array_equal(mix, plain)
    cut = 10 * np.log10(np.sum((out_d["t0"] - out_p["t0"]) ** 2) / np.sum(out_p["t0"] ** 2))
    assert cut > -30, cut


def _band_energy(x, lo, hi):
    spec = np.abs(np.fft.rfft(x, axis=-1)) ** 2
    f = np.fft.rfftfreq(x.shape[-1], 1 / SR)
    return spec[:, (f >= lo) & (f < hi)].sum()


def test_spectral_model_band_cut_agrees_with_render():
    stems = [sibilant(4.0, 2), sibilant(4.0, 3)]
    s = settings_with(True)
    out_d, out_p = {}, {}
    render(s, stems, 1 << 16, out_d)
    render(settings_with(False), stems, 1 << 16, out_p)
    model = _Model(SR, 8192)
    sp = Spectra.of(stems[0], SR, 8192)
    src = spectral.Powers(*(model.summarise(getattr(sp, k)) for k in ("mid", "side", "cross")))
    p = {f"deesser.{k}": v for k, v in s["tracks"][0]["deesser"].items()}
    p["deesser.frames"] = D.band_frames(stems[0], SR, s["tracks"][0]["deesser"])
    y = spectral.PROCESSORS["deesser"](src, p, model)
    assert spectral.PROCESSORS["deesser"](src, {}, model) is src      # none: bypassed
    freqs = model.omega.numpy() * SR / (2 * np.pi)
    for lo, hi in ((4000.0, 10000.0), (5000.0, 8000.0)):
        cells = (freqs >= lo) & (freqs < hi)
        predicted = 10 * np.log10(float((y.mid + y.side)[cells].sum() / (src.mid + src.side)[cells].sum()))
        measured = 10 * np.log10(_band_energy(out_d["t0"], lo, hi)
                                 / _band_energy(out_p["t0"], lo, hi))
        print(f"{lo:.0f}-{hi:.0f} Hz cut: model {predicted:.2f} dB, render {measured:.2f} dB")
        assert predicted < -1.0 and abs(predicted - measured) < 1.0, (predicted, measured)
    # below the band the model and the render leave the tone alone
    cells = (freqs >= 200) & (freqs < 400)
    assert abs(10 * np.log10(float((y.mid / src.mid)[cells].mean()))) < 0.05


def test_v2_file_with_deesser_rerenders_bit_exactly():
    stems = [sibilant(2.0, 4), sibilant(2.0, 5)]
    s = settings_with(True)
    a = render(s, stems, block=1 << 14)
    b = render(validate(s), stems, block=4099)
    assert np.array_equal(a, b)


@pytest.mark.parametrize("version, deess, message", [
    (1, {}, "unknown field 'deesser'"),
    (2, {"ratio": 0.5}, "tracks[0].deesser.ratio = 0.5 is outside [1, 100]"),
    (2, {"band": 3}, "tracks[0].deesser: unknown field 'band'"),
    (2, {"freq_hz": 30000.0}, "tracks[0].deesser.freq_hz = 30000.0 is outside"),
    (2, [], "tracks[0].deesser: expected an object"),
])
def test_deesser_settings_errors_are_one_line(version, deess, message):
    s = {"format": "automix.settings", "version": version, "sample_rate": 44100,
         "tracks": [{"name": "a", "file": "a.wav", "deesser": deess}], "master": {}}
    with pytest.raises(AutomixError) as err:
        validate(s, "settings.json")
    text = str(err.value)
    assert message in text and "\n" not in text, text


def test_empty_object_is_the_default_deesser():
    s = validate({"format": "automix.settings", "version": 2, "sample_rate": 44100,
                  "tracks": [{"name": "a", "file": "a.wav", "deesser": {}}], "master": {}})
    assert s["tracks"][0]["deesser"]["ratio"] == 4.0
    assert s["tracks"][0]["deesser"]["freq_hz"] == pytest.approx(D.DEFAULTS["freq_hz"], abs=0.05)
