"""album.html: every song's loudness, tone and width side by side, before and after
``automix album`` (self-contained: inline CSS, plots as base64 PNG)."""
from __future__ import annotations

import html

import numpy as np
from matplotlib.figure import Figure

from .audio import atomic_path
from .report_html import _CSS, _png


def _curves(doc: dict, ref: dict | None) -> str:
    fig = Figure(figsize=(12, 3.8))
    axes = fig.subplots(1, 2, sharey=True)
    from .analysis import BANDS_HZ
    for ax, when in zip(axes, ("before", "after")):
        for r in doc["songs"]:
            ax.semilogx(BANDS_HZ, np.maximum(r[when]["mid_db"], -40), lw=1.2, label=r["name"])
        if ref is not None:
            ax.semilogx(BANDS_HZ, np.maximum(ref["tonal_balance"]["mid_db"], -40), "k--", lw=2,
                        label="reference")
        ax.set_title(f"tonal balance (mid) {when}")
        ax.grid(True, which="both", alpha=0.3)
    axes[1].legend(fontsize=7, ncol=2)
    fig.subplots_adjust(left=0.05, right=0.99, bottom=0.12, top=0.9, wspace=0.05)
    return _png(fig)


def write_album_html(path, doc: dict, ref: dict | None = None) -> None:
    rows = []
    for r in doc["songs"]:
        b, a = r["before"], r["after"]
        rows.append(
            f"<tr><td>{html.escape(r['name'])}</td>"
            + "".join(f"<td class=v>{v:.1f}</td>" for v in (
                b["lufs"], a["lufs"], r["plan_lufs"], b["true_peak_dbtp"], a["true_peak_dbtp"],
                b["width_db"], a["width_db"], b["lra_lu"], a["lra_lu"]))
            + f"<td>{html.escape('; '.join(r['notes']))}</td></tr>")
    for f in doc["failed"]:
        rows.append(f"<tr><td>{f['number']:02d} {html.escape(f['source'])}</td>"
                    f"<td colspan=10 style='color:#d12b2b'>failed: {html.escape(f['error'])}</td></tr>")
    sb, sa = doc["spread_before"], doc["spread_after"]
    spread = ""
    if sb:
        spread = ("<table><tr><th>spread (max - min)</th><th>before</th><th>after</th></tr>"
                  + "".join(f"<tr><td>{label}</td><td class=v>{sb[k]:.2f}</td>"
                            f"<td class=v>{sa[k]:.2f}</td></tr>"
                            for k, label in (("loudness_lu", "loudness, LU"),
                                             ("tone_db", "tone (mid, mean over bands), dB"),
                                             ("width_db", "width, dB"), ("lra_lu", "LRA, LU")))
                  + "</table>")
    plan = doc["plan"]
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>automix album</title>"
            f"<style>{_CSS}</style></head><body><h1>automix album</h1>"
            f"<p>target {plan['target_lufs']:.1f} LUFS, "
            f"{'same loudness' if plan['same_loudness'] else 'relative loudness kept within %.1f LU' % plan['window_lu']}"
            f", tone toward the {html.escape(plan['curve'])}, ceiling {plan['ceiling_dbtp']:+.1f} dBTP"
            f", shard {doc['shard']}, {doc['seconds']:.0f} s on {doc['jobs']} processes</p>"
            + spread +
            "<h2>Songs</h2><table><tr><th>song</th><th>LUFS before</th><th>after</th><th>plan</th>"
            "<th>TP before</th><th>after</th><th>width before</th><th>after</th>"
            "<th>LRA before</th><th>after</th><th>notes</th></tr>" + "".join(rows) + "</table>"
            + (f"<h2>Tone</h2><img src='{_curves(doc, ref)}'>" if doc["songs"] else "")
            + "</body></html>")
    with atomic_path(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
