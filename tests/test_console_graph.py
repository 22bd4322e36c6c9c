"""The console graph (automix/console/): every declared processor exists in all three executors;
the whole graph (groups, a nested group, a send bus, lanes, master side EQ + widener + limiter)
agrees between the batched and block executors and, within stated tolerances, between the
spectral model and the rendered, measured master; routing, lanes and sends against plain math;
v2 files re-render bit-exactly; one-line errors."""
import json

import numpy as np
import pytest
import torch

from automix import analysis
from automix.console import batched, blocks, graph, spectral
from automix.console.graph import BUS, MASTER, STRIP, entry_from_params, params_from_entry
from automix.dsp.eq import Band
from automix.errors import AutomixError
from automix.match import Spectra, _Model
from automix.render import render_settings
from automix.settings import load_settings, master_from_params, save_settings, validate

from conftest import ArraySource, random_params

SR = 44100


# --- the declaration -------------------------------------------------------------------------

def test_every_processor_has_all_three_executors():
    """Built from the declaration's node lists: a processor declared (or added to a node kind)
    without a batched, block or spectral implementation fails here."""
    declared = graph.all_processors()
    assert {"eq", "compressor", "fader", "pan_width", "stereo", "limiter", "delay"} <= set(declared)
    for name in declared:
        for executor in (batched, blocks, spectral):
            assert name in executor.PROCESSORS, f"{executor.__name__} lacks processor {name!r}"
    for kind in graph.NODE_KINDS:
        for proc in kind.processors:
            assert proc is declared[proc.name] or proc.params == declared[proc.name].params \
                or proc.name == "fader"


def test_declaration_builds_keys_specs_and_places():
    keys = [p.key for p in STRIP.params]
    assert len(keys) == len(set(keys))
    assert keys[:3] == ["eq0_highpass.freq_hz", "eq0_highpass.q", "eq1_lowshelf.freq_hz"]
    p = {s.name: s.default for s in STRIP.specs}
    p["eq3_peak.gain_db"] = 2.5
    entry = entry_from_params(STRIP, p)
    assert entry["eq"][3] == {"type": "peak", "freq_hz": 1000.0, "gain_db": 2.5, "q": 1.0}
    assert entry["compressor"]["ratio"] == 1.0 and entry["pan"] == 0.0
    assert params_from_entry(STRIP, entry) == p
    m = {s.name: s.default for s in MASTER.specs}
    assert entry_from_params(MASTER, m)["limiter"] == {"ceiling_dbtp": -1.0, "release_ms": 80.0}


# --- a whole graph ---------------------------------------------------------------------------

def _noise(rng, n, channels, lo, hi):
    """Band-limited noise with a slow level envelope (so compressors and lanes move)."""
    x = rng.standard_normal((channels, n))
    spec = np.fft.rfft(x)
    f = np.fft.rfftfreq(n, 1 / SR)
    spec[:, (f < lo) | (f > hi)] *= 0.05
    x = np.fft.irfft(spec, n)
    env = 0.6 + 0.4 * np.sin(2 * np.pi * np.arange(n) / SR * 0.7 + rng.uniform(0, 6))
    return 0.15 * x * env


BANDS = [(30, 200), (100, 2000), (200, 8000), (1000, 16000), (50, 20000)]
STEREO = [True, False, True, False, True]


def whole_graph(seed, n, moderate=False):
    """Settings (v2) with every node on, the per-node parameters, and the stems."""
    rng = np.random.default_rng(seed)
    g = torch.Generator().manual_seed(seed)
    stems = [_noise(rng, n, 2 if st else 1, *band) for st, band in zip(STEREO, BANDS)]
    tp = random_params(STRIP.specs, (5,), g)
    gp = random_params(STRIP.specs, (2,), g)
    bp = random_params(BUS.specs, (1,), g)
    mp = random_params(MASTER.specs, (), g)
    if moderate:  # the spectral model's compressor is a static estimate (see spectral.py)
        for p in (tp, gp):
            p["comp.ratio"] = torch.clamp(p["comp.ratio"], max=2.5)
            p["comp.threshold_db"] = torch.clamp(p["comp.threshold_db"], min=-24.0)
            p["gain_db"] = p["gain_db"].clamp(-12, 6)
        mp["comp.ratio"] = torch.tensor(1.5, dtype=torch.float64)
        mp["comp.threshold_db"] = torch.tensor(-12.0, dtype=torch.float64)
    mp["gain_db"] = torch.tensor(6.0 if moderate else 14.0, dtype=torch.float64)
    bp["delay.time_ms"] = torch.tensor([45.0], dtype=torch.float64)
    names = [f"t{i}" for i in range(5)]
    tracks = []
    for i, name in enumerate(names):
        t = {"name": name, "file": f"{name}.wav", **entry_from_params(STRIP, {k: v[i] for k, v in tp.items()}),
             "mute": False}
        tracks.append(t)
    tracks[3]["automation"] = {"gain_db": {"ramp_ms": 30.0, "points": [
        {"time_s": 0.0, "gain_db": 0.0}, {"time_s": n / SR * 0.3, "gain_db": -8.0},
        {"time_s": n / SR * 0.6, "gain_db": 3.0}]}}
    groups = []
    for j, (name, members, out) in enumerate((("drums", ["t0", "t1"], "band"),
                                              ("band", ["t2"], "master"))):
        groups.append({"name": name, "members": members, "output": out,
                       **entry_from_params(STRIP, {k: v[j] for k, v in gp.items()}),
                       "mute": False})
    groups[0]["automation"] = {"gain_db": {"ramp_ms": 0.0, "points": [
        {"time_s": 0.0, "gain_db": -2.0}, {"time_s": n / SR * 0.5, "gain_db": 1.0}]}}
    bus = {"name": "echo", **entry_from_params(BUS, {k: v[0] for k, v in bp.items()}),
           "mute": False, "output": "master"}
    bus["processor"]["type"] = "delay"
    master = master_from_params(mp)
    master["side_eq"] = [{"type": "peak", "freq_hz": 800.0, "gain_db": 5.0, "q": 1.5},
                         {"type": "highshelf", "freq_hz": 6000.0, "gain_db": -4.0, "q": 0.7}]
    master["widener"] = {"gain_db": -10.0, "delay_ms": 12.0}
    settings = validate({"format": "automix.settings", "version": 2, "sample_rate": SR,
                         "tracks": tracks, "groups": groups, "buses": [bus],
                         "sends": [{"source": "t4", "bus": "echo", "level_db": -6.0},
                                   {"source": "drums", "bus": "echo", "level_db": -9.0,
                                    "pre_fader": True}],
                         "master": master})
    return settings, stems, (tp, gp, bp, mp)


def _render(settings, stems, block=10007):
    sources = [ArraySource(s) for s in stems]
    with torch.inference_mode():
        mix = blocks.render_graph(settings, sources, stems[0].shape[1], block=block)
        master = blocks.render_master(mix, settings["master"], SR, block=7919)
    return mix, master


def _lanes(entries, n):
    return torch.stack([batched.lane_curve((e.get("automation") or {}).get("gain_db"), n, SR)
                        for e in entries])[None]


def test_whole_graph_batched_agrees_with_block_render():
    n, preroll = SR * 2, SR // 2
    settings, stems, (tp, gp, bp, mp) = whole_graph(0, n)
    mix, master = _render(settings, stems)
    x = torch.tensor(np.stack([s if s.shape[0] == 2 else np.vstack([s, s]) for s in stems]))[None]
    tpb = {k: v[None] for k, v in tp.items()}
    tpb["lane_db"] = _lanes(settings["tracks"], n)
    gpb = {k: v[None] for k, v in gp.items()}
    gpb["lane_db"] = _lanes(settings["groups"], n)
    bpb = {k: v[None] for k, v in bp.items()}
    mpb = {k: v.reshape(1) for k, v in mp.items()}
    mpb["side_eq"] = [Band(b["type"], torch.tensor([b["freq_hz"]]), torch.tensor([b["q"]]),
                           torch.tensor([b["gain_db"]])) for b in settings["master"]["side_eq"]]
    mpb["widener.gain_db"] = torch.tensor([-10.0], dtype=torch.float64)
    mpb["widener.delay_ms"] = 12.0
    tmix, tmaster = batched.console_graph(
        x, torch.ones(1, 5, dtype=torch.bool), torch.tensor(STEREO)[None],
        graph.route(settings), tpb, mpb, SR, group_params=gpb, bus_params=bpb)
    assert float(tmaster.abs().max()) > 0.5  # the limiter is engaged
    for name, train, render in (("mix", tmix[0].numpy(), mix), ("master", tmaster[0].numpy(), master)):
        err = np.abs(train[:, preroll:] - render[:, preroll:]).max()
        db = 20 * np.log10(err / np.abs(render).max())
        print(f"batched vs block render, {name}: {db:.1f} dB")
        assert db < -80, (name, db)


# The spectral model's tolerances (what the fits need: the master fit works on 1/3-octave
# curves normalised by their mean and on the width; the mix fit on the same): mean absolute
# error of the mid and side curves over the bands, and the width.  Measured on this graph
# (pytest -s prints it): mid 0.89 dB, side 1.17 dB, width 0.17 dB; the compressors' static
# estimate and the lanes' mean power are most of it.
MID_TOL_DB, SIDE_TOL_DB, WIDTH_TOL_DB = 1.25, 1.5, 0.5


def test_whole_graph_spectral_model_agrees_with_measured_render():
    n = SR * 6
    settings, stems, (tp, gp, bp, mp) = whole_graph(1, n, moderate=True)
    _, master = _render(settings, stems, block=1 << 16)
    model = _Model(SR, 8192)
    sources = []
    for s in stems:
        sp = Spectra.of(s, SR, 8192)
        sources.append(spectral.Powers(*(model.summarise(getattr(sp, k))
                                         for k in ("mid", "side", "cross"))))

    def lane_power(entry):
        db = batched.lane_curve((entry.get("automation") or {}).get("gain_db"), n, SR)
        return float((10 ** (db / 10)).mean())

    t_params = [dict({k: v[i] for k, v in tp.items()}, is_stereo=STEREO[i],
                     lane_power=lane_power(settings["tracks"][i])) for i in range(5)]
    g_params = [dict({k: v[j] for k, v in gp.items()}, lane_power=lane_power(settings["groups"][j]))
                for j in range(2)]
    b_params = [dict({k: v[0] for k, v in bp.items()}, type="delay")]
    m_params = dict(mp, side_eq=[Band(b["type"], torch.tensor(b["freq_hz"], dtype=torch.float64),
                                      torch.tensor(b["q"], dtype=torch.float64),
                                      torch.tensor(b["gain_db"], dtype=torch.float64))
                                 for b in settings["master"]["side_eq"]])
    m_params["widener.gain_db"] = -10.0
    _, out = spectral.console_graph(sources, graph.route(settings), t_params, m_params, model,
                                    g_params, b_params)
    mid_db, side_db, width = model.features(out.mid, out.side)
    tb = analysis.tonal_balance(master, SR)
    usable = model.usable.numpy() > 0
    mid_err = np.abs(mid_db.numpy() - np.array(tb["mid_db"]))[usable].mean()
    side_err = np.abs(side_db.numpy() - np.array(tb["side_db"]))[usable].mean()
    width_err = abs(float(width) - analysis.stereo_width_db(master))
    print(f"spectral model vs measured render: mid {mid_err:.2f} dB, side {side_err:.2f} dB, "
          f"width {width_err:.2f} dB")
    assert mid_err < MID_TOL_DB and side_err < SIDE_TOL_DB and width_err < WIDTH_TOL_DB


# --- routing, lanes and sends against plain math ---------------------------------------------

def _plain(name, **kw):
    return {"name": name, "file": f"{name}.wav", **kw}


def _v2(tracks, **kw):
    return validate({"format": "automix.settings", "version": 2, "sample_rate": 8000,
                     "tracks": tracks, "master": {}, **kw})


def _mix(settings, stems, block=1000):
    return blocks.render_graph(settings, [ArraySource(s) for s in stems], stems[0].shape[1],
                               block=block)


def test_group_sums_members_through_its_fader_and_delay_bus_shifts():
    rng = np.random.default_rng(0)
    a, b, c = (rng.standard_normal((2, 4000)) for _ in range(3))
    s = _v2([_plain("a"), _plain("b"), _plain("c", gain_db=-6.0)],
            groups=[{"name": "g", "members": ["a", "b"], "gain_db": 6.0}],
            buses=[{"name": "d", "processor": {"type": "delay", "time_ms": 25.0},
                    "gain_db": -20.0}],
            sends=[{"source": "c", "bus": "d", "level_db": -3.0, "pre_fader": True}])
    mix = _mix(s, [a, b, c])
    gain = lambda db: 10 ** (db / 20)  # noqa: E731
    delayed = np.pad(c, ((0, 0), (200, 0)))[:, :4000]  # 25 ms at 8 kHz
    want = (a + b) * gain(6.0) + c * gain(-6.0) + delayed * gain(-3.0) * gain(-20.0)
    # rtol: the stereo pan law's sqrt(2) is a float32 constant in dsp/stereo.pan_gains (gain
    # 1 + 7e-8 at the centre; kept: v1 files render bit-exactly)
    np.testing.assert_allclose(mix, want, rtol=0, atol=1e-6)


def test_post_fader_send_follows_fader_and_mute():
    x = np.ones((1, 2000))
    bus = [{"name": "d", "processor": {"type": "delay", "time_ms": 10.0}}]
    on = _mix(_v2([_plain("a", gain_db=-6.0)], buses=bus,
                  sends=[{"source": "a", "bus": "d", "level_db": 0.0}]), [x])
    dry = 10 ** (-6 / 20) / np.sqrt(2)  # mono at the centre: -3 dB per side
    np.testing.assert_allclose(on[:, 100:], 2 * dry, rtol=1e-12)
    np.testing.assert_allclose(on[:, 5:80], dry, rtol=1e-12)
    muted = _mix(_v2([_plain("a", mute=True)], buses=bus,
                     sends=[{"source": "a", "bus": "d"}]), [x])
    assert not muted.any()


def test_lane_is_sample_accurate_and_block_independent():
    x = np.full((1, 8000), 0.5)
    lane = {"gain_db": {"ramp_ms": 0.0, "points": [{"time_s": 0.0, "gain_db": 0.0},
                                                   {"time_s": 0.3, "gain_db": -6.0}]}}
    s = _v2([_plain("a", automation=lane)])
    mix = _mix(s, [x], block=777)
    left = mix[0] * np.sqrt(2) / 0.5
    step = 2400  # 0.3 s at 8 kHz: the first sample at or after it
    np.testing.assert_allclose(left[:step], 1.0, rtol=1e-12)
    np.testing.assert_allclose(left[step:], 10 ** (-6 / 20), rtol=1e-12)
    ramp = {"gain_db": {"ramp_ms": 100.0, "points": [{"time_s": 0.0, "gain_db": 0.0},
                                                     {"time_s": 0.5, "gain_db": -12.0}]}}
    s = _v2([_plain("a", automation=ramp)])
    one, other = _mix(s, [x], block=8000), _mix(s, [x], block=333)
    assert np.array_equal(one, other)
    db = 20 * np.log10(one[0] * np.sqrt(2) / 0.5)
    np.testing.assert_allclose(db[4000 + 400], -6.0, atol=1e-9)  # half way up the ramp
    np.testing.assert_allclose(db[4800:], -12.0, atol=1e-9)


def test_printed_stems_sum_to_the_mix():
    settings, stems, _ = whole_graph(2, 20000)
    out = {}
    mix = blocks.render_graph(settings, [ArraySource(s) for s in stems], 20000, block=4096,
                              stems_out=out)
    assert set(out) == {"t3", "t4", "band", "echo"}
    assert np.array_equal(mix, _mix(settings, stems, block=4096))
    err = np.abs(sum(out.values()) - mix).max() / np.abs(mix).max()
    assert err < 10 ** (-90 / 20)


def test_v2_file_rerenders_bit_exactly(tmp_path):
    import soundfile as sf

    settings, stems, _ = whole_graph(3, 30000)
    folder = tmp_path / "stems"
    folder.mkdir()
    for t, s in zip(settings["tracks"], stems):
        sf.write(folder / t["file"], s.T.astype(np.float32), SR, subtype="FLOAT")
    save_settings(tmp_path / "settings.json", settings)
    loaded = load_settings(tmp_path / "settings.json")
    assert loaded == json.loads((tmp_path / "settings.json").read_text())
    first = render_settings(loaded, folder)
    again = render_settings(load_settings(tmp_path / "settings.json"), folder)
    for x, y in zip(first, again):
        assert np.array_equal(x, y)


# --- errors ----------------------------------------------------------------------------------

@pytest.mark.parametrize("edit,message", [
    (lambda s: s["groups"][0]["members"].append("nope"), "groups[0].members[1]: 'nope' is not a track"),
    (lambda s: s["sends"].append({"source": "a", "bus": "missing"}), "sends[1].bus: 'missing' is not a bus"),
    (lambda s: s["groups"].append({"name": "h", "members": [], "output": "g"})
     or s["groups"][0].update(output="h"), "routing cycle"),
    (lambda s: s["sends"].append({"source": "g", "bus": "d"}) or s["buses"][0].update(output="g"),
     "routing cycle"),
    (lambda s: s["groups"].append({"name": "h", "members": ["a"]}), "already in group 'g'"),
    (lambda s: s["tracks"][0].update(automation={"gain_db": {"points": [
        {"time_s": 2.0, "gain_db": 0.0}, {"time_s": 1.0, "gain_db": 0.0}]}}),
     "tracks[0].automation.gain_db.points[1].time_s: 1 s comes before points[0]"),
    (lambda s: s.update(version=1), "groups: needs \"version\": 2"),
    (lambda s: s["buses"][0]["processor"].update(type="chorus"), "buses[0].processor.type"),
    (lambda s: s["groups"][0].update(name="a"), "'a' is used twice"),
])
def test_routing_errors_are_one_line_naming_the_field(edit, message):
    s = {"format": "automix.settings", "version": 2, "sample_rate": 8000,
         "tracks": [_plain("a"), _plain("b")],
         "groups": [{"name": "g", "members": ["a"]}],
         "buses": [{"name": "d", "processor": {"type": "delay"}}],
         "sends": [{"source": "b", "bus": "d"}], "master": {}}
    validate(s)
    edit(s)
    with pytest.raises(AutomixError) as err:
        validate(s, "settings.json")
    text = str(err.value)
    assert message in text and "\n" not in text and text.startswith("settings.json: ")


def test_parallel_track_strips_give_the_sequential_bits(monkeypatch):
    settings, stems, _ = whole_graph(4, 30000)

    def run():
        out = {}
        mix = blocks.render_graph(settings, [ArraySource(s) for s in stems], 30000, block=4096,
                                  stems_out=out)
        return mix, out

    sequential = run()
    monkeypatch.setattr(blocks, "PARALLEL_MIN_CORES", 1)
    parallel = run()
    assert np.array_equal(sequential[0], parallel[0])
    assert all(np.array_equal(sequential[1][k], parallel[1][k]) for k in sequential[1])
