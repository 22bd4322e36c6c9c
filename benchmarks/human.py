"""Human-target benchmark (issue 17): how close automix gets to a *producer's* mix.

    .venv/bin/python benchmarks/human.py [--data /work/data/lmms] [--songs A B ..] [--seconds 30]
        [--no-matchering] [--systems S ..] [--candidate CKPT] [--space S] [--diagnose [--variants V ..]] [--live] [--append]
        [--out benchmarks/results/human.json]

Material: the producers' multitracks that ``automix-data lmms`` renders (LMMS demo projects,
training/lmms.py). Per held-out song: the song's middle ``2 x L`` seconds (L = ``--seconds``, less
for short songs) split in two; the first part of the producer's ``mixture.wav`` is the
reference, the second part is the target; the stems of the second part, with the producer's
balance erased (:func:`training.human_pairs.erase`: every stem at -23 LUFS, a random +-4 dB low
and high shelf each, mono-content stems panned at random with probability 0.5; seeded by the song
name), are what every system gets.

Split, by producer (no producer on both sides; ``configs/data/generic.yaml``'s
``human.exclude_songs`` keeps the held-out songs out of training):

    held out (benchmark)                         producers
      CapDan-ReggaeTry                           CapDan
      CapDan-ReggaetonTry                        CapDan
      CapDan-TwilightArea-OriginalByAlf42red     CapDan, Alf42red
      CapDan-ZeroSumGame-OriginalByZakarra       CapDan, Zakarra
      Alf42red-Mauiwowi                          Alf42red
    training: the other 13 of the 18 (EsoXLB, Jousboxx, Oglsdl x2, Settel, Shovon, Socceroos,
      StrictProduction, TameAnderson, Crunk(Demo), DirtyLove, Greshz, Surrender)

Systems: ``equal_loudness`` (the erased stems summed, turned down to -1 dBTP when above),
``matchering`` (Matchering 2.0.6 mastering that sum to the reference; only where importable),
``refine`` (``--no-model``), ``network`` (``--refine-steps 0``), ``network+refine`` (default);
with ``--candidate CKPT`` also ``candidate`` and ``candidate+refine``: another checkpoint, side by side.

Metrics of mix.wav and master.wav against the producer's mix of the second part:
``logmel_db`` (:func:`automix.analysis.logmel_distance`, one level-aligning gain),
``tonal_mid_db``/``tonal_side_db``/``width_db`` (:func:`automix.analysis.compare`), and the stem
balance errors (:func:`training.human_pairs.balance_error_db`, mean removed, weighted by each
producer stem's share of the producer's mix power):
``balance_fader_db`` -- each track's fader against the fader offset that undoes the erasure;
``balance_level_db`` -- each track's effective level change through its whole strip (EQ, compressor,
fader: loudness out minus loudness in) against the producer's (producer stem minus erased stem); ``shelf r low/high``: Pearson correlation, over every stem of every
song, between the low/high shelf gains a system set and the ones that undo the erasure's shelves.

``--diagnose`` (issue 17 item 3) re-runs the master stage (:func:`automix.api.master_stage`) on the
network+refine mix.wav with one part disabled at a time (the glue compressor; the second tone
pass; all tone and width; everything but gain + limiter), reports each one's log-mel distance to
the producer's mix and its limiting depth, and the floor: the producer's own mix of the second
part through a transparent limiter to the same ceiling (-1 dBTP) and loudness goal (the
reference's).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _snapshot() -> str | None:
    """Run on the committed ``automix/`` (``git archive HEAD``): other engineers edit the working
    tree while a long run goes on. Returns the commit, or None outside a git checkout."""
    import subprocess
    import tarfile
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.strip()
        folder = ROOT / "benchmarks" / "cache" / "snapshots" / rev
        if not (folder / "automix" / "__init__.py").is_file():
            folder.mkdir(parents=True, exist_ok=True)
            tar = subprocess.run(["git", "archive", "--format=tar", "HEAD", "automix"], cwd=ROOT,
                                 capture_output=True, check=True).stdout
            import io
            with tarfile.open(fileobj=io.BytesIO(tar)) as t:
                t.extractall(folder, filter="data")
        sys.path.insert(0, str(folder))
        return rev
    except (OSError, subprocess.CalledProcessError):
        return None


SNAPSHOT = _snapshot() if __name__ == "__main__" and "--live" not in sys.argv else None

from automix import analysis  # noqa: E402

HELD_OUT = {
    "CapDan-ReggaeTry": ("CapDan",),
    "CapDan-ReggaetonTry": ("CapDan",),
    "CapDan-TwilightArea-OriginalByAlf42red": ("CapDan", "Alf42red"),
    "CapDan-ZeroSumGame-OriginalByZakarra": ("CapDan", "Zakarra"),
    "Alf42red-Mauiwowi": ("Alf42red",),
}
TRAIN = {
    "EsoXLB-CPU": ("EsoXLB",), "Jousboxx-BuzzerBeater": ("Jousboxx",), "Oglsdl-Dr8v2": ("Oglsdl",),
    "Oglsdl-PpTrip": ("Oglsdl",), "Settel-InnerRecreation": ("Settel",),
    "Shovon-ProgressiveHousePluckDemo": ("Shovon",), "Socceroos-Progress": ("Socceroos",),
    "StrictProduction-DearJonDoe": ("StrictProduction",), "TameAnderson-MakeMe": ("TameAnderson",),
    "Crunk_Demo": ("Crunk(Demo) author",), "DirtyLove": ("DirtyLove author",),
    "Greshz-CoolSnip": ("Greshz",), "Surrender-Main": ("Surrender",),
}
SYSTEMS = ("equal_loudness", "matchering", "refine", "network", "network+refine")
CEILING_DBTP = -1.0
EL_LUFS = -23.0


# ------------------------------------------------------------------------------------- the cases

def _read(path: Path) -> np.ndarray:
    x, sr = sf.read(str(path), dtype="float64", always_2d=True)
    assert sr == 44100, (path, sr)
    return x.T


def make_case(song_dir: Path, work: Path, seconds: float, sr: int = 44100) -> dict:
    """Write the case of one song (erased stems, reference, target) and return its facts."""
    from training.human_pairs import EraseConfig, erase

    meta = json.loads((song_dir / "stems.json").read_text())
    files = [s["file"] for s in meta["stems"]]
    residual = json.loads((song_dir / "lmms.json").read_text())["solo_sum_residual_db"]
    # Where the solo renders do not add up to the full render (ZynAddSubFX, SID: not
    # reproducible run to run), the producer's mix is the sum of the stems, so that target,
    # reference and the erased stems come from the same renders.
    use_sum = residual > -40.0
    full = [_read(song_dir / f) for f in files]  # each stem read once
    mix = sum(full) if use_sum else _read(song_dir / "mixture.wav")
    n = mix.shape[1]
    L = int(min(seconds, n / sr / 2 - 0.5) * sr)
    mid = n // 2
    a, b = slice(mid - L, mid), slice(mid, mid + L)
    stems = np.stack([x[:, b] for x in full])
    del full
    loud = [analysis.integrated_loudness(x, sr) for x in stems]
    keep = [i for i, l in enumerate(loud) if l > -70.0]
    stems, files = stems[keep], [files[i] for i in keep]
    seed = int.from_bytes(hashlib.sha1(song_dir.name.encode()).digest()[:4], "big")
    erased, er = erase(stems, sr, np.random.default_rng(seed), EraseConfig(pan_prob=0.5))
    case = work / song_dir.name
    (case / "stems").mkdir(parents=True, exist_ok=True)
    names = [Path(f).stem for f in files]
    for name, x in zip(names, erased):
        sf.write(case / "stems" / f"{name}.wav", x.T.astype(np.float32), sr, subtype="FLOAT")
    sf.write(case / "reference.wav", mix[:, a].T.astype(np.float32), sr, subtype="FLOAT")
    sf.write(case / "target.wav", mix[:, b].T.astype(np.float32), sr, subtype="FLOAT")
    producer_level = [analysis.integrated_loudness(x, sr) for x in stems]
    return {"song": song_dir.name, "dir": case, "names": names, "seconds": L / sr,
            "erased": erased, "producer_stems": stems, "target": mix[:, b], "reference": mix[:, a],
            "reference_lufs":
            analysis.integrated_loudness(mix[:, a], sr),
            "true_fader_db": er.undo_gain_db,
            # the tone perturbation each stem got: a system that undoes it sets the opposite shelves
            "true_low_shelf_db": -np.asarray(er.low_db, dtype=float),
            "true_high_shelf_db": -np.asarray(er.high_db, dtype=float),
            "true_level_db": np.array(producer_level) - np.array([analysis.integrated_loudness(x, sr) for x in erased]),
            "weights": 10 ** (np.array(producer_level) / 10),
            "reference_peak_dbfs": float(20 * np.log10(np.max(np.abs(mix[:, a])) + 1e-12)),
            "solo_sum_residual_db": residual, "producer_mix": "sum of the stems" if use_sum else "mixture.wav"}


# ------------------------------------------------------------------------------------- metrics

def audio_metrics(audio: np.ndarray, target: np.ndarray, sr: int, target_an: dict) -> dict:
    c = analysis.compare(analysis.analyze(audio, sr), target_an)
    return {"logmel_db": analysis.logmel_distance(audio, target, sr),
            "tonal_mid_db": c["tonal_mid_error_db"], "tonal_side_db": c["tonal_side_error_db"],
            "width_db": c["width_error_db"]}


def track_levels(settings: dict, case: dict, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Per case stem: automix's fader (dB) and its effective level change through the strip."""
    from automix.render import TrackStrip

    by_name = {Path(t["file"]).stem: t for t in settings["tracks"]}
    fader, level = [], []
    for name, x in zip(case["names"], case["erased"]):
        t = by_name[name]
        fader.append(float(t["gain_db"]))
        out = TrackStrip(t, sr, x.shape[0]).process(np.ascontiguousarray(x))
        level.append(analysis.integrated_loudness(out, sr) - analysis.integrated_loudness(x, sr))
    return np.array(fader), np.array(level)


def track_shelves(settings: dict, case: dict) -> dict:
    """Per case stem: the low and high shelf gains automix set (0 where it set none), beside the
    shelves that undo the erasure's tone perturbation (issue 17 item 4's correlation)."""
    by_name = {Path(t["file"]).stem: t for t in settings["tracks"]}
    low, high = [], []
    for name in case["names"]:
        bands = by_name[name].get("eq") or []
        low.append(sum(float(b.get("gain_db", 0.0)) for b in bands if b.get("type") == "lowshelf"))
        high.append(sum(float(b.get("gain_db", 0.0)) for b in bands if b.get("type") == "highshelf"))
    return {"low_shelf_db": low, "high_shelf_db": high,
            "true_low_shelf_db": case["true_low_shelf_db"].tolist(),
            "true_high_shelf_db": case["true_high_shelf_db"].tolist()}


def shelf_correlation(rows: list[dict], system: str) -> tuple[float | None, float | None]:
    """Pearson r between the shelf gains a system set and the ones that undo the perturbation,
    over every stem of every song (low, high)."""
    out = []
    for kind in ("low", "high"):
        p, t = [], []
        for r in rows:
            sh = r["systems"].get(system, {}).get("shelves")
            if sh:
                p += sh[f"{kind}_shelf_db"]
                t += sh[f"true_{kind}_shelf_db"]
        ok = len(p) > 2 and np.std(p) > 1e-9 and np.std(t) > 1e-9
        out.append(float(np.corrcoef(p, t)[0, 1]) if ok else None)
    return tuple(out)


def balance(case: dict, fader: np.ndarray, level: np.ndarray) -> dict:
    from training.human_pairs import balance_error_db

    w = case["weights"]
    return {"balance_fader_db": balance_error_db(fader, case["true_fader_db"], w),
            "balance_level_db": balance_error_db(level, case["true_level_db"], w)}


def transparent_limit(x: np.ndarray, goal_lufs: float, sr: int, ceiling: float = CEILING_DBTP) -> tuple[np.ndarray, dict]:
    """``x`` turned up/down to ``goal_lufs`` through automix's own limiter at ``ceiling`` (no EQ,
    no compressor): the least a master at that loudness and ceiling must change."""
    from automix.console.blocks import apply_limiter_inplace
    from automix.loudness_search import loudness_stage
    from automix.settings import LIMITER_DEFAULTS

    lim = dict(LIMITER_DEFAULTS, ceiling_dbtp=ceiling)
    loud = loudness_stage(np.ascontiguousarray(x), lim, goal_lufs, sr)
    scaled = x * 10 ** (loud["gain_db"] / 20)
    out = scaled.copy()
    apply_limiter_inplace(out, loud["limiter"], sr)
    return out, limiting_depth(scaled, out, loud["limiter"]["ceiling_dbtp"], sr) | {"gain_db": loud["gain_db"]}


def limiting_depth(scaled: np.ndarray, limited: np.ndarray, ceiling: float, sr: int) -> dict:
    """How hard a limiter worked: true peak over its ceiling going in, and loudness it took."""
    tp = 20 * np.log10(analysis.true_peak_linear(scaled) + 1e-12)
    return {"peaks_over_ceiling_db": float(tp - ceiling),
            "loudness_lost_lu": float(analysis.integrated_loudness(scaled, sr) - analysis.integrated_loudness(limited, sr))}


# ------------------------------------------------------------------------------------- systems

def run_systems(case: dict, sr: int, use_matchering: bool, steps: int, log=print,
                systems=SYSTEMS, candidate: Path | None = None, space: float | None = None) -> dict:
    import automix
    from benchmarks.run import equal_loudness_sum, have_matchering

    target = case["target"]
    t_an = analysis.analyze(target, sr)
    rows = {}
    el = equal_loudness_sum({n: x for n, x in zip(case["names"], case["erased"])}, sr, EL_LUFS, CEILING_DBTP)
    zeros = np.zeros(len(case["names"]))
    rows["equal_loudness"] = {"mix": audio_metrics(el, target, sr, t_an), "master": None,
                              **balance(case, zeros, zeros)}
    if "matchering" not in systems:
        rows["matchering"] = {"error": "not run (--systems)"}
    elif use_matchering and have_matchering():
        import warnings

        import matchering as mg
        src = case["dir"] / "equal_loudness.wav"
        sf.write(src, el.T, sr, subtype="FLOAT")
        out = case["dir"] / "matchering.wav"
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mg.log(lambda *a: None)
            mg.process(target=str(src), reference=str(case["dir"] / "reference.wav"), results=[mg.pcm24(str(out))])
        m = _read(out)
        rows["matchering"] = {"mix": None, "master": audio_metrics(m, target, sr, t_an),
                              **balance(case, zeros, zeros), "wall_s": time.perf_counter() - t0}
    else:
        rows["matchering"] = {"error": "matchering not importable (pip install matchering==2.0.6)"
                              if use_matchering else "--no-matchering"}
    runs = {"refine": dict(model=None, refine_steps=steps), "network": dict(model="default", refine_steps=0),
            "network+refine": dict(model="default", refine_steps=steps)}
    if candidate is not None:  # a checkpoint to compare with the shipped one, side by side
        runs |= {"candidate": dict(model=str(candidate), refine_steps=0),
                 "candidate+refine": dict(model=str(candidate), refine_steps=steps)}
    results = {}
    for name, kw in runs.items():
        if name not in systems:
            rows[name] = {"error": "not run (--systems)"}
            continue
        t0 = time.perf_counter()
        if space is not None:
            kw = dict(kw, space=space)
        r = automix.mix(case["dir"] / "stems", case["dir"] / "reference.wav", **kw)
        fader, level = track_levels(r.settings, case, sr)
        rows[name] = {"mix": audio_metrics(r.mix, target, sr, t_an), "master": audio_metrics(r.master, target, sr, t_an),
                      **balance(case, fader, level), "shelves": track_shelves(r.settings, case),
                      "wall_s": time.perf_counter() - t0}
        results[name] = r
        log(f"  {case['song']} {name}: mix {rows[name]['mix']['logmel_db']:.2f} master "
            f"{rows[name]['master']['logmel_db']:.2f} balance {rows[name]['balance_fader_db']:.2f}/"
            f"{rows[name]['balance_level_db']:.2f} dB ({rows[name]['wall_s']:.0f} s)")
    return rows, results


# ------------------------------------------------------------------------------------- item 3

def diagnose(case: dict, result, sr: int, steps: int, only: list[str] | None = None) -> dict:
    """The master stage again on the network+refine mix, one part disabled at a time
    (``only``: the variants whose names contain one of these strings)."""
    import contextlib

    from automix import api
    from automix.match import Target
    from automix.render import MasterPre

    # the master stage's own module (automix.mastering since issue 16; automix.api before)
    import importlib
    stage_module = importlib.import_module(api.master_stage.__module__)
    mix = np.ascontiguousarray(result.mix)
    target = case["target"]
    ref_features = analysis.analyze(_read(case["dir"] / "reference.wav"), sr)
    mix_features, spectra = api.measure_mix(mix, sr)

    @contextlib.contextmanager
    def patched(obj, attr, value):
        old = getattr(obj, attr)
        setattr(obj, attr, value)
        try:
            yield
        finally:
            setattr(obj, attr, old)

    def stage(amounts=None, target_lufs=None):
        m, goal, final = api.master_stage(mix, sr, ref_features, mix_features, target_lufs, CEILING_DBTP,
                                          amounts or api.Amounts(), "cpu", predicted=None,
                                          refine_steps=steps, spectra=spectra)
        pre = MasterPre(dict(m, gain_db=0.0), sr)
        scaled = np.empty_like(mix)
        for s in range(0, mix.shape[1], api.BLOCK):
            scaled[:, s:s + api.BLOCK] = pre.process(mix[:, s:s + api.BLOCK])
        scaled *= 10 ** (m["gain_db"] / 20)
        return final, goal, {"compressor": bool(m["compressor"]), "eq_bands": len(m["eq"]),
                             "limiter_ceiling_dbtp": m["limiter"]["ceiling_dbtp"],
                             **limiting_depth(scaled, final, m["limiter"]["ceiling_dbtp"], sr)}

    out = {}
    variants = {
        "as is": lambda: stage(),
        "no glue compressor": lambda: _with(patched(stage_module, "choose_compressor", lambda *a, **k: {}), stage),
        "one tone pass": lambda: _with(patched(Target, "shifted", lambda self, p, m: self), stage),
        "no tone, no width": lambda: stage(api.Amounts(tone=0.0, width=0.0)),
        "gain + limiter only": lambda: stage(api.Amounts(tone=0.0, width=0.0, dynamics=0.0)),
    }
    # the candidate fix: a reference that peaks above the ceiling is matched as if it had been
    # turned down to peak at the ceiling (its loudness goal lowered by the excess)
    excess = max(0.0, ref_features["true_peak_dbtp"] - CEILING_DBTP)
    lowered = ref_features["integrated_lufs"] - excess
    variants["goal lowered by the reference's excess peak"] = lambda: stage(target_lufs=lowered)
    # the rule the master stage applies (automix.mastering.reference_loudness, since issue 17
    # item 3) against the goal before it: the reference's own loudness (an explicit target)
    variants["goal = the reference's loudness (before the rule)"] = \
        lambda: stage(target_lufs=ref_features["integrated_lufs"])
    rule = getattr(stage_module, "reference_loudness", None)
    if rule is not None:
        variants["goal by the rule, margin 1.5 dB"] = lambda: _with(
            patched(stage_module, "UNMASTERED_MARGIN_DB", 1.5), stage)
    variants["lowered goal + one tone pass"] = lambda: _with(patched(Target, "shifted", lambda self, p, m: self),
                                                             lambda: stage(target_lufs=lowered))
    if only:
        variants = {k: v for k, v in variants.items() if any(o in k for o in only)}
    goal = None
    for name, run in variants.items():
        final, g, info = run()
        goal = g if goal is None else goal
        info["goal_lufs"] = g
        out[name] = {"logmel_db": analysis.logmel_distance(final, target, sr), **info}
    floor, info = transparent_limit(target, goal, sr)
    out["floor: producer's mix, transparent limiter"] = {"logmel_db": analysis.logmel_distance(floor, target, sr), **info}
    floor, info = transparent_limit(target, lowered, sr)
    out["floor at the lowered goal"] = {"logmel_db": analysis.logmel_distance(floor, target, sr), **info}
    lim_mix, info = transparent_limit(mix, goal, sr)
    out["automix mix.wav, transparent limiter"] = {"logmel_db": analysis.logmel_distance(lim_mix, target, sr), **info}
    out["mix.wav (no master)"] = {"logmel_db": analysis.logmel_distance(mix, target, sr)}
    out["goal_lufs"] = goal
    out["lowered_goal_lufs"] = lowered
    return out


def _with(ctx, fn):
    with ctx:
        return fn()


# ------------------------------------------------------------------------------------- report

def _mean(rows, system, part, key):
    vals = [r["systems"][system][part][key] for r in rows
            if r["systems"].get(system, {}).get(part) is not None]
    return float(np.mean(vals)) if vals else None


def _mean_flat(rows, system, key):
    vals = [r["systems"][system][key] for r in rows if key in r["systems"].get(system, {})]
    return float(np.mean(vals)) if vals else None


def table(rows: list[dict], systems=SYSTEMS) -> str:
    def f(v):
        return "—" if v is None else f"{v:.2f}"
    head = ("| system | mix log-mel | master log-mel | mix tonal mid/side | master tonal mid/side | "
            "mix width | master width | balance fader | balance level | shelf r low/high |")
    lines = [f"Mean over {len(rows)} held-out songs ({', '.join(r['song'] for r in rows)}); dB.", "",
             head, "|---" * 10 + "|"]
    for s in systems:
        if all("error" in r["systems"].get(s, {"error": 1}) for r in rows):
            lines.append(f"| {s} | " + " | ".join(["n/a"] * 9) + " |")
            continue
        lines.append(
            f"| {s} | {f(_mean(rows, s, 'mix', 'logmel_db'))} | {f(_mean(rows, s, 'master', 'logmel_db'))} | "
            f"{f(_mean(rows, s, 'mix', 'tonal_mid_db'))} / {f(_mean(rows, s, 'mix', 'tonal_side_db'))} | "
            f"{f(_mean(rows, s, 'master', 'tonal_mid_db'))} / {f(_mean(rows, s, 'master', 'tonal_side_db'))} | "
            f"{f(_mean(rows, s, 'mix', 'width_db'))} | {f(_mean(rows, s, 'master', 'width_db'))} | "
            f"{f(_mean_flat(rows, s, 'balance_fader_db'))} | {f(_mean_flat(rows, s, 'balance_level_db'))} | "
            + " / ".join(f(v) for v in shelf_correlation(rows, s)) + " |")
    diag = [r["diagnosis"] for r in rows if r.get("diagnosis")]
    if diag:
        lines += ["", f"Master stage on the network+refine mix.wav, parts disabled (mean over {len(diag)} songs):", "",
                  "| variant | log-mel to producer | peaks over ceiling going in | loudness lost to the limiter |",
                  "|---|---|---|---|"]
        for k in diag[0]:
            if k.endswith("goal_lufs"):
                continue
            lm = np.mean([d[k]["logmel_db"] for d in diag])
            po = [d[k].get("peaks_over_ceiling_db") for d in diag]
            ll = [d[k].get("loudness_lost_lu") for d in diag]
            lines.append(f"| {k} | {lm:.2f} | {f(np.mean(po)) if None not in po else '—'} | "
                         f"{f(np.mean(ll)) if None not in ll else '—'} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("/work/data/lmms"), help="what automix-data lmms wrote")
    ap.add_argument("--songs", nargs="+", default=None, help="held-out songs to run (default: all rendered)")
    ap.add_argument("--seconds", type=float, default=30.0, help="length of the reference and of the target part")
    ap.add_argument("--steps", type=int, default=300, help="refinement steps")
    ap.add_argument("--no-matchering", action="store_true")
    ap.add_argument("--diagnose", action="store_true", help="issue 17 item 3: the master stage, part by part")
    ap.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=SYSTEMS,
                    help="systems to run (default: all; --diagnose needs network+refine)")
    ap.add_argument("--variants", nargs="+", default=None,
                    help="--diagnose: only the variants whose names contain one of these")
    ap.add_argument("--candidate", type=Path, default=None,
                    help="a checkpoint to run beside the shipped network (systems candidate, candidate+refine)")
    ap.add_argument("--space", type=float, default=None,
                    help="automix.mix(space=) for every automix system (docs/space.md; default: automix's)")
    ap.add_argument("--live", action="store_true", help="use the working tree's automix/, not HEAD's")
    ap.add_argument("--append", action="store_true", help="keep the rows of other songs already in --out")
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "cache" / "human")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "human.json")
    a = ap.parse_args(argv)
    systems = list(a.systems) + (["candidate", "candidate+refine"] if a.candidate else [])
    if a.candidate and not a.candidate.is_file():
        ap.error(f"--candidate {a.candidate}: no such checkpoint")
    songs = a.songs or [s for s in HELD_OUT if (a.data / s / "lmms.json").is_file()]
    if a.diagnose and "network+refine" not in a.systems:
        ap.error("--diagnose re-masters the network+refine mix: include it in --systems")
    bad = [s for s in songs if s not in HELD_OUT]
    if bad:
        ap.error(f"{bad[0]} is not a held-out song (training songs are never benchmarked): {', '.join(HELD_OUT)}")
    missing = [s for s in songs if not (a.data / s / "lmms.json").is_file()]
    if missing or not songs:
        ap.error(f"not rendered yet: {', '.join(missing) or 'any held-out song'} (automix-data lmms -o {a.data})")
    sr = 44100
    import automix
    print(f"automix from {Path(automix.__file__).parent} (HEAD {SNAPSHOT or 'working tree'})", flush=True)
    rows = []
    if a.append and a.out.is_file():  # keep the other songs' rows of an earlier run
        rows = [r for r in json.loads(a.out.read_text())["rows"] if r["song"] not in songs]
    for song in songs:
        t0 = time.perf_counter()
        case = make_case(a.data / song, a.work, a.seconds, sr)
        print(f"{song}: {len(case['names'])} stems, {case['seconds']:.1f} s parts, reference peaks at "
              f"{case['reference_peak_dbfs']:+.1f} dBFS, {case['reference_lufs']:.1f} LUFS", flush=True)
        measured, results = run_systems(case, sr, not a.no_matchering, a.steps, systems=systems,
                                       candidate=a.candidate, space=a.space)
        row = {"song": song, "stems": len(case["names"]), "seconds": case["seconds"],
               "reference_lufs": case["reference_lufs"], "reference_peak_dbfs": case["reference_peak_dbfs"],
               "solo_sum_residual_db": case["solo_sum_residual_db"], "systems": measured}
        if a.diagnose:
            row["diagnosis"] = diagnose(case, results["network+refine"], sr, a.steps, a.variants)
            for k, v in row["diagnosis"].items():
                if not k.endswith("goal_lufs"):
                    print(f"  diagnose {k}: {v['logmel_db']:.2f} dB", flush=True)
        rows.append(row)
        print(f"  ({time.perf_counter() - t0:.0f} s)", flush=True)
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps({"rows": rows, "table": table(rows, systems), "automix_commit": SNAPSHOT,
                                     "space": a.space},
                                    indent=2, default=float))
    print(table(rows, systems))
    return 0


if __name__ == "__main__":
    sys.exit(main())
