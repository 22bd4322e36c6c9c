"""Space matching (issue 18 item 3, automix/space.py) on real stems: does ``--space`` bring the
mix's ambience toward the reference's without hurting the other metrics?

    nice -n 19 .venv/bin/python benchmarks/space.py [--songs DirtyLove Crunk_Demo ..] [--seconds 30]
        [--data /work/data/lmms] [--out benchmarks/results/space.json] [--speed]
        [--predelay default|fit]

Material: the example song (examples/dirty-love, 24 s) and LMMS songs rendered by
``automix-data lmms`` (their stems, the song's middle ``--seconds``), every stem with the same
breaks (0.6 s of silence every 4 s: stops, so a blind RT60 has free decays to read in the
references and in the mixes alike).  Per song, two references made from the song's own stems
(so the answer is known):

* ``dry``: the stems' plain sum;
* ``rev1.5``: the same sum plus its convolution with exponentially decaying stereo noise of
  RT60 1.5 s (independent L/R), the reverb at the dry part's energy.

Each reference is matched twice from the heuristic start (``model=None``, ``--refine-steps``),
``space=0`` and ``space=1``; the mix bus (mix.wav) is measured: ambience errors (blind RT60 per
band as |log2 ratio|, a band the mix does not read while the reference does counts as the ratio
to 0.2 s, the estimator's floor; early/late proxy |dB|; coherence |difference|, means over bands)
and the other metrics of automix.analysis on the master (tonal mid/side error dB, width error
dB, PLR error dB; each row also keeps the PLR of the mix, the master and the reference).
``--speed``: also the fit's own cost (automix.space.plan_space) on 8 synthetic stems x 3 min
at 44.1 kHz.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import scipy.signal
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import automix  # noqa: E402
from automix import analysis  # noqa: E402
from automix.ambience import ambience  # noqa: E402
from automix.audio import resample, to_stereo  # noqa: E402

RT60 = 1.5
FLOOR_RT = 0.2


def load_song(name: str, data: Path, seconds: float) -> tuple[dict, int]:
    if name == "dirty-love":
        files = sorted((ROOT / "examples/dirty-love/stems").glob("*.flac"))
    else:
        meta = json.loads((data / name / "stems.json").read_text())
        files = [data / name / s["file"] for s in meta["stems"]]
    stems, sr = {}, None
    for f in files:
        x, r = sf.read(f, always_2d=True, dtype="float32")
        x = x.T
        if sr is None:
            sr = r
        x = resample(x, r, sr) if r != sr else x
        n = int(seconds * sr)
        if x.shape[1] > n:
            s0 = (x.shape[1] - n) // 2
            x = x[:, s0:s0 + n]
        x = x * ((np.arange(x.shape[1]) / sr % 4.0) < 3.4)   # breaks: 0.6 s every 4 s
        if np.abs(x).max() > 1e-4:
            stems[f.stem] = np.ascontiguousarray(x)
    return stems, sr


def references(stems: dict, sr: int) -> dict:
    n = max(s.shape[1] for s in stems.values())
    dry = sum(np.pad(to_stereo(s), ((0, 0), (0, n - s.shape[1]))) for s in stems.values())
    rng = np.random.default_rng(15)
    tt = np.arange(int(1.5 * RT60 * sr)) / sr
    h = rng.standard_normal((2, tt.size)) * np.exp(-3 * math.log(10) * tt / RT60)
    mid = dry.mean(axis=0)
    rev = np.stack([scipy.signal.fftconvolve(mid, h[c])[:n] for c in range(2)])
    rev *= math.sqrt((dry ** 2).sum() / max((rev ** 2).sum(), 1e-30))
    refs = {"dry": dry, "rev1.5": dry + rev}
    return {k: (0.5 * v / np.abs(v).max()).astype(np.float32) for k, v in refs.items()}


def amb_errors(a: dict, r: dict) -> dict:
    rt, el, coh = [], [], []
    for am, ar in zip(a["rt60_s"], r["rt60_s"]):
        if ar is not None:
            rt.append(abs(math.log2((am or FLOOR_RT) / ar)))
    for am, ar in zip(a["early_late_db"], r["early_late_db"]):
        if ar is not None and am is not None:
            el.append(abs(am - ar))
    for am, ar in zip(a["coherence"], r["coherence"]):
        if ar is not None and am is not None:
            coh.append(abs(am - ar))
    mean = (lambda v: float(np.mean(v)) if v else None)
    return {"rt60_log2": mean(rt), "early_late_db": mean(el), "coherence": mean(coh)}


def run_song(name: str, data: Path, seconds: float, steps: int) -> list[dict]:
    stems, sr = load_song(name, data, seconds)
    rows = []
    for ref_name, ref in references(stems, sr).items():
        ref_amb = ambience(ref, sr)
        ref_an = analysis.analyze(ref, sr)
        for space in (0.0, 1.0):
            t0 = time.time()
            r = automix.mix(stems, ref, sample_rate=sr, model=None, refine_steps=steps,
                            space=space)
            mix_amb = ambience(r.mix, sr)
            an = analysis.analyze(r.master, sr)
            rows.append({
                "song": name, "reference": ref_name, "space": space,
                "seconds": round(time.time() - t0, 1),
                "buses": [b["processor"] for b in r.settings.get("buses", [])],
                "sends": {s["source"]: s["level_db"] for s in r.settings.get("sends", [])},
                "notes": [n for n in r.notes if n.startswith("space")],
                "ref_ambience": ref_amb, "mix_ambience": mix_amb,
                **amb_errors(mix_amb, ref_amb),
                "tonal_mid_db": analysis.tonal_error_db(an, ref_an, "mid"),
                "tonal_side_db": analysis.tonal_error_db(an, ref_an, "side"),
                "width_db": analysis.width_error_db(an, ref_an),
                "plr_db": analysis.plr_error_db(an, ref_an),
                # the PLR's path: the mix's, the master's, the reference's (dB)
                "plr_mix_master_ref": [round(float(r.analysis["mix"]["plr_db"]), 2),
                                       round(float(an["plr_db"]), 2),
                                       round(float(ref_an["plr_db"]), 2)],
            })
            print(json.dumps({k: v for k, v in rows[-1].items()
                              if k not in ("ref_ambience", "mix_ambience")}), flush=True)
    return rows


def speed(rounds: int = 3) -> dict:
    """The fit's cost on 8 synthetic stems x 3 min, 44.1 kHz (a reverberant reference), with
    the strips of benchmarks/speed_space.py (EQ, compressor, fader, pan: the calibration
    renders them) and the reference's PLR and width (the send cap, read through the master's
    stereo stage)."""
    from automix.space import plan_space
    from benchmarks.speed_space import NAMES, configurations

    sr, n = 44100, 180 * 44100
    rng = np.random.default_rng(0)
    env = np.repeat(rng.uniform(0, 1, n // 4410 + 1) > 0.4, 4410)[:n]
    stems = {name: (rng.standard_normal((1 + i % 2, n)) * env * 0.1).astype(np.float32)
             for i, name in enumerate(NAMES)}
    settings = configurations()["dry"]
    # a reference wetter than the noise stems read (early/late -6 dB), so the fit runs to the
    # end: reverb render, width fit, PLR floor, level search (a drier one stops early)
    ref_amb = {"bands": ["low", "mid", "high"], "rt60_s": [1.8, 1.5, 0.9],
               "early_late_db": [-6.0, -6.0, -6.0], "coherence": [0.6, 0.4, 0.3]}
    times = []
    for _ in range(rounds):
        t0 = time.process_time()
        w0 = time.time()
        plan_space(ref_amb, settings, stems, sr, ref_plr_db=12.0, ref_width_db=-6.0)
        times.append((time.time() - w0, time.process_time() - t0))
    return {"wall_s": min(t[0] for t in times), "cpu_s": min(t[1] for t in times)}


def table(rows: list[dict]) -> str:
    lines = ["| song | reference | space | RT60 err (log2) | early/late err dB | coherence err | "
             "tonal mid dB | tonal side dB | width dB | PLR dB | reverb (RT60 l/m/h s) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    fmt = (lambda v, f=".2f": "-" if v is None else format(v, f))
    for r in rows:
        rev = r["buses"][0] if r["buses"] else None
        lines.append(
            f"| {r['song']} | {r['reference']} | {r['space']:g} | {fmt(r['rt60_log2'])} | "
            f"{fmt(r['early_late_db'])} | {fmt(r['coherence'])} | {fmt(r['tonal_mid_db'])} | "
            f"{fmt(r['tonal_side_db'])} | {fmt(r['width_db'])} | {fmt(r['plr_db'])} | "
            + ("none" if rev is None else
               f"{rev['rt60_low_s']:.2f}/{rev['rt60_mid_s']:.2f}/{rev['rt60_high_s']:.2f}") + " |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--songs", nargs="+", default=["dirty-love"])
    ap.add_argument("--data", type=Path, default=Path("/work/data/lmms"))
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--refine-steps", type=int, default=100)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/space.json")
    ap.add_argument("--speed", action="store_true")
    ap.add_argument("--predelay", choices=("default", "fit"), default=None,
                    help="the reverb's pre-delay: the default (20 ms) or fitted with the send "
                    "level (automix.space.FIT_PREDELAY); default: as automix.space ships")
    a = ap.parse_args()
    if a.predelay is not None:
        import automix.space as space
        space.FIT_PREDELAY = a.predelay == "fit"
    rows = []
    for song in a.songs:
        rows += run_song(song, a.data, a.seconds, a.refine_steps)
    result = {"rows": rows}
    if a.speed:
        result["fit_speed"] = speed()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=1) + "\n")
    print(table(rows))
    if a.speed:
        print(f"fit (plan_space) on 8 stems x 3 min: {result['fit_speed']}")


if __name__ == "__main__":
    main()
