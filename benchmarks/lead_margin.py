"""The lead's margin over the rest of the mix, section by section, with and without the rider
(issue 19), on real multitracks: the bundled example song and the human-mix cases in
benchmarks/cache/human (present after ``benchmarks/human.py`` has fetched them).

    .venv/bin/python benchmarks/lead_margin.py [--margin 1.0]

Each case's stems are taken at the balance they come with (static faders at 0 dB); the plan
(:func:`automix.timeline.plan`) finds sections and the lead and writes the rider's lane; the lead
and the rest are then rendered separately through the console (with and without the lane) and
measured with the BS.1770 short-term meter: per section, the energy mean over the 3 s windows
wholly inside it where the lead plays.  Printed: the lead found (and why), the sections, the
margins, their spread (max - min) and their largest distance from the target.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from automix import analysis, timeline
from automix.audio import BlockReader, read_audio
from automix.console.blocks import render_graph
from automix.settings import validate

ROOT = Path(__file__).resolve().parents[1]


def cases():
    yield "dirty-love (example)", ROOT / "examples/dirty-love/stems"
    for d in sorted((ROOT / "benchmarks/cache/human").glob("*/stems")):
        yield d.parent.name, d


def _render(settings, stems, lead, n, solo: bool):
    """The lead alone (``solo``) or everything but the lead, through the console."""
    s = dict(settings, tracks=[dict(t, mute=(t["name"] != lead) if solo else (t["name"] == lead))
                               for t in settings["tracks"]])
    return render_graph(validate(s), [BlockReader.of_array(stems[t["name"]]) for t in settings["tracks"]], n)


def margins(lead, rest, edges, sr):
    ls, rs = (analysis.short_term_loudness(x, sr) for x in (lead, rest))
    t0 = np.arange(len(ls)) * 0.1
    out = []
    for a, b in zip(edges[:-1], edges[1:]):
        m = (t0 >= a) & (t0 + 3 <= b) & (ls > ls.max() - 20) & (ls > -70)
        if m.sum() >= 5 and rs[m].max() > -70:
            e = lambda v: 10 * np.log10(np.mean(10 ** (v[m] / 10)))  # noqa: E731
            out.append(e(ls) - e(rs))
    return np.array(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--margin", type=float, default=1.0)
    a = ap.parse_args()
    for name, folder in cases():
        files = sorted(p for p in folder.iterdir() if p.suffix in (".wav", ".flac", ".ogg"))
        stems, sr = {}, None
        for f in files:
            x, sr = read_audio(f)
            stems[f.stem] = x
        n = max(x.shape[1] for x in stems.values())
        settings = validate({"format": "automix.settings", "version": 2, "sample_rate": sr,
                             "tracks": [{"name": k, "file": f"{k}.wav"} for k in stems],
                             "master": {}})
        p = timeline.plan(stems, settings, lead_margin_db=a.margin)
        print(f"{name}: {len(stems)} stems, {n / sr:.1f} s")
        print(f"  sections: {[round(s.start_s, 2) for s in p.sections]}")
        if p.lead is None or p.lead.name is None:
            print(f"  no lead ({p.lead.reason if p.lead else '-'})")
            continue
        lead = p.lead.name
        edges = [s.start_s for s in p.sections] + [n / sr]
        res = {}
        for label, s in (("static", settings), ("rider", validate(p.settings))):
            lead_audio = _render(s, stems, lead, n, True)
            rest_audio = _render(s, stems, lead, n, False)
            res[label] = margins(lead_audio, rest_audio, edges, sr)
        print(f"  lead: {lead} ({p.lead.reason}); rider gains {np.round(p.ride.gains_db, 2)}")
        for label, m in res.items():
            if len(m):
                print(f"  {label:6s}: margins {np.round(m, 2)} dB, spread {np.ptp(m):.2f} dB, "
                      f"max |margin - target| {np.abs(m - a.margin).max():.2f} dB")
            else:
                print(f"  {label:6s}: no section long enough to measure")


if __name__ == "__main__":
    main()
