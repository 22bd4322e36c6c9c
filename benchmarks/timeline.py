"""The time plan (issue 19) against the static mix, on the example song and the LMMS renders.

    .venv/bin/python benchmarks/timeline.py [--lmms /work/data/lmms] [--json results/timeline.json]
        [--max-seconds S] [--margin DB] [--ablate]
    .venv/bin/python benchmarks/timeline.py --pump OUT_DIR [--sections-from settings.json]

**Cases**: the bundled example (``examples/dirty-love``: its stems, its reference) and every
song in ``--lmms`` (the LMMS renders of ``automix-data lmms``: the stems its ``lmms.json`` lists,
``mixture.wav``, the human mix, as the reference) with at least 3 stems (and at most
``--max-seconds`` long).

**Static vs plan**: each case's stems at the balance they come with (faders 0 dB: for an LMMS
song that is the human balance), once as they are (the static mix, what ``--static`` leaves the
plan's stage) and once with :func:`automix.timeline.plan` (lead ``auto``, margin +1 dB, dynamics
amount 1): sections, the rider lane, the section-contrast lane.  The lead and the rest are
rendered apart through the console (their sum is the mix: a flat console is linear).  Printed
per case: the lead found; the spread (max - min) of the lead's margin over the sections, static
and planned; the mix's loudness range (EBU R128 LRA) error against the reference's; the log-mel
distance (``analysis.logmel_distance``, dB after one level-aligning gain) of each mix to the
reference.  For an LMMS song the reference is the human mix of these very stems, so the static
balance is its own target: any lane can only move away from it (the number says how far).

**--ablate**: also each lane alone (the rider with dynamics amount 0; the contrast lane with
``--lead none``), to tell which one moves a mix away from the static one.

**--pump OUT**: an ``automix`` output folder (settings.json with sections, the stems from the
example): the master limiter's gain reduction, in 50 ms frames, and its change across each
section boundary (mean over 1 s after minus 1 s before) against the same change at every frame
at least 2 s from a boundary (within sections).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from automix import analysis, timeline  # noqa: E402
from automix.audio import read_audio  # noqa: E402
from automix.settings import validate  # noqa: E402
from benchmarks.lead_margin import _render, margins  # noqa: E402

SR = 44100
KEEP_LEAD_LEVEL, MARGIN = True, None   # the job's default (--margin DB: an absolute target)
ABLATE = False                         # --ablate: also each lane alone


def cases(lmms: Path | None, max_seconds: float = 1e9):
    ex = ROOT / "examples/dirty-love"
    yield "dirty-love (example)", sorted((ex / "stems").iterdir()), ex / "reference.flac"
    if lmms is None or not lmms.is_dir():
        return
    for d in sorted(p for p in lmms.iterdir() if (p / "lmms.json").exists()):
        meta = json.loads((d / "lmms.json").read_text())
        files = [d / f"{s['name']}.wav" for s in meta["stems"]]
        if len(files) >= 3 and all(f.exists() for f in files) and \
                meta.get("seconds", 0.0) <= max_seconds:
            yield d.name, files, d / "mixture.wav"


def _stereo(a):
    return np.vstack([a, a]) if a.shape[0] == 1 else a


def run_case(name, files, ref_path):
    stems = {}
    for f in files:
        a, sr = read_audio(f)
        assert sr == SR, (f, sr)
        stems[f.stem] = np.asarray(a, dtype=np.float64)
    n = max(a.shape[1] for a in stems.values())
    stems = {k: np.pad(v, ((0, 0), (0, n - v.shape[1]))) for k, v in stems.items()}
    ref, rsr = read_audio(ref_path)
    ref = _stereo(np.asarray(ref, dtype=np.float64))
    settings = validate({"format": "automix.settings", "version": 2, "sample_rate": SR,
                         "tracks": [{"name": k, "file": f"{k}.wav"} for k in stems],
                         "master": {}})
    def plan(**kw):
        return timeline.plan(stems, settings, reference=ref.astype(np.float32),
                             keep_lead_level=KEEP_LEAD_LEVEL, lead_margin_db=MARGIN,
                             **dict(dict(dynamics_amount=1.0), **kw))

    tp = plan()
    planned = validate(tp.settings)
    edges = [0.0] + [s.end_s for s in tp.sections]
    lead = tp.lead.name if tp.lead is not None else None
    out = {"case": name, "lead": lead, "lead_reason": tp.lead.reason if tp.lead else None,
           "ridden": tp.ride is not None, "sections": len(tp.sections), "notes": tp.notes,
           "ride_db": tp.ride.gains_db if tp.ride else None,
           "contrast_db": tp.contrast.gains_db if tp.contrast else None}
    ref_lra = analysis.loudness_range(analysis.short_term_loudness(ref, rsr))
    variants = [("static", settings), ("plan", planned)]
    if ABLATE:  # each lane alone: the rider (no contrast), the contrast (no rider)
        variants += [("rider", validate(plan(dynamics_amount=0.0).settings)),
                     ("contrast", validate(plan(lead="none").settings))]
    for tag, s in variants:
        if lead is not None and tag in ("static", "plan"):
            lead_a = _render(s, stems, lead, n, solo=True)
            rest = _render(s, stems, lead, n, solo=False)
            mix = lead_a + rest
            m = [x for x in margins(lead_a, rest, edges, SR) if x is not None]
            out[f"{tag}_margins_db"] = [round(float(x), 2) for x in m]
            out[f"{tag}_margin_spread_db"] = float(np.ptp(m)) if len(m) > 1 else None
        else:
            mix = _render(s, stems, "", n, solo=False)
        lra = analysis.loudness_range(analysis.short_term_loudness(mix, SR))
        out[f"{tag}_lra_err_lu"] = abs(lra - ref_lra)
        out[f"{tag}_logmel_db"] = analysis.logmel_distance(mix, ref, SR, rsr)
    out["ref_lra_lu"] = ref_lra
    return out


def pump(folder: Path, sections_from: Path | None = None):
    """The master limiter's gain reduction across section boundaries (module doc);
    ``sections_from``: another output's settings.json whose sections to use (a ``--static``
    run has none)."""
    from automix.console.blocks import MasterPre
    from automix.render import render_settings
    from automix.settings import load_settings

    s = load_settings(folder / "settings.json")
    stems = ROOT / "examples/dirty-love/stems"
    mix, master = render_settings(s, stems)
    sr = s["sample_rate"]
    pre = MasterPre(s["master"], sr).process(mix, 0)
    if s["master"].get("top_tail"):
        return {"error": "top_tail set: align pre and post first"}
    hop = int(0.05 * sr)
    frames = min(pre.shape[1], master.shape[1]) // hop
    e = lambda x: (x[:, :frames * hop] ** 2).reshape(2, frames, hop).sum(axis=(0, 2))  # noqa
    gr = 10 * np.log10(np.maximum(e(master), 1e-20) / np.maximum(e(pre), 1e-20))
    t = (np.arange(frames) + 0.5) * hop / sr
    secs = (json.loads(sections_from.read_text()) if sections_from else s).get("sections", [])
    bounds = [sec["start_s"] for sec in secs[1:]]

    def step(i):
        w = int(1.0 / 0.05)
        if i - w < 0 or i + w > frames:
            return None
        return float(gr[i:i + w].mean() - gr[i - w:i].mean())

    at = [abs(step(int(round(b / 0.05)))) for b in bounds if step(int(round(b / 0.05))) is not None]
    inside = [abs(x) for i in range(frames)
              if all(abs(t[i] - b) >= 2.0 for b in bounds) and (x := step(i)) is not None]
    return {"boundaries_s": bounds, "gr_mean_db": float(gr.mean()),
            "limiter_release_ms": s["master"]["limiter"]["release_ms"],
            "gr_change_at_boundaries_db": [round(x, 3) for x in at],
            "gr_change_within_sections_db": {"median": float(np.median(inside)),
                                             "p95": float(np.percentile(inside, 95)),
                                             "max": float(np.max(inside))}}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lmms", type=Path, default=Path("/work/data/lmms"))
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--max-seconds", type=float, default=1e9,
                    help="leave out LMMS songs longer than this (a busy machine)")
    ap.add_argument("--pump", type=Path, nargs="*", default=None)
    ap.add_argument("--sections-from", type=Path, default=None)
    ap.add_argument("--margin", type=float, default=None,
                    help="an absolute lead margin target (the job's --lead-margin); default: "
                         "the job's default, the margin evened out around its mean")
    ap.add_argument("--ablate", action="store_true",
                    help="also the rider alone (dynamics amount 0) and the contrast lane alone "
                         "(--lead none): which lane moves the mix")
    args = ap.parse_args()
    global KEEP_LEAD_LEVEL, MARGIN, ABLATE
    KEEP_LEAD_LEVEL, MARGIN, ABLATE = args.margin is None, args.margin, args.ablate
    if args.pump is not None:
        for folder in args.pump:
            print(folder, json.dumps(pump(folder, args.sections_from)))
        return
    rows = []
    for name, files, ref in cases(args.lmms, args.max_seconds):
        r = run_case(name, files, ref)
        rows.append(r)
        fmt = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
        shown = f"{r['lead']}{'' if r['ridden'] else ' (not ridden)'}" if r["lead"] else "None"
        print(f"{name:42s} lead={shown:31s} sections={r['sections']} "
              f"spread static/plan {fmt(r.get('static_margin_spread_db'))}/"
              f"{fmt(r.get('plan_margin_spread_db'))} dB  LRA err {r['static_lra_err_lu']:.2f}/"
              f"{r['plan_lra_err_lu']:.2f} LU  log-mel {r['static_logmel_db']:.3f}/"
              f"{r['plan_logmel_db']:.3f} dB", flush=True)
        if ABLATE:
            print(" " * 42 + "  ".join(f"{t} alone: log-mel {r[t + '_logmel_db']:.3f} dB, LRA err "
                                       f"{r[t + '_lra_err_lu']:.2f} LU" for t in ("rider", "contrast")),
                  flush=True)
    keys = ("static_lra_err_lu", "plan_lra_err_lu", "static_logmel_db", "plan_logmel_db")
    print("mean  " + "  ".join(f"{k} {np.mean([r[k] for r in rows]):.3f}" for k in keys))
    led = [r for r in rows if r.get("plan_margin_spread_db") is not None and r["ridden"]]
    if led:
        print(f"ridden lead cases {len(led)}: margin spread static {np.mean([r['static_margin_spread_db'] for r in led]):.2f}"
              f" -> plan {np.mean([r['plan_margin_spread_db'] for r in led]):.2f} dB (mean)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
