"""``report.html``: the run's report a person reads at a glance, beside report.png.

One self-contained file (inline CSS and JavaScript, plots as base64 PNG; nothing fetched, so
it works offline): the checks (:mod:`automix.qc`) as a traffic-light table, plots (tonal
balance of mid and side, loudness over time, correlation and mono loss per band), the master
chain and a per-track summary (fader, pan, width, EQ), and players for the reference, the mix
and the master.  The audio is referenced by relative paths (the files beside the report; the
reference where it lies), not embedded; the A/B switch plays one source at a time at matched
loudness (each turned down to the quietest one's integrated loudness) and keeps the play
position when it switches.
"""
from __future__ import annotations

import base64
import html
import io
import json
import os
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from .audio import atomic_path

_COLOURS = {"reference": "black", "mix": "tab:blue", "master": "tab:red"}
_LIGHT = {"pass": "#2e9e44", "warn": "#e0a100", "fail": "#d12b2b", "info": "#9aa0a6"}

_CSS = """
body{font-family:system-ui,sans-serif;margin:24px;max-width:1100px;color:#222}
h1{font-size:22px} h2{font-size:17px;margin-top:28px}
table{border-collapse:collapse;font-size:13px} td,th{padding:3px 10px;border-bottom:1px solid #ddd}
td.v{text-align:right;font-variant-numeric:tabular-nums}
.dot{display:inline-block;width:12px;height:12px;border-radius:6px;vertical-align:middle}
.player{display:flex;gap:8px;align-items:center;flex-wrap:wrap}
.player button{padding:6px 14px;border:1px solid #888;border-radius:4px;background:#f4f4f4;cursor:pointer}
.player button.on{background:#333;color:#fff}
img{max-width:100%}
"""

_JS = """
const srcs = JSON.parse(document.getElementById('ab-data').textContent);
const el = document.getElementById('ab-audio');
let current = null;
function pick(name){
  const s = srcs[name]; if(!s) return;
  const t = el.currentTime, playing = !el.paused;
  if(current !== name){ el.src = s.file; current = name; }
  el.volume = Math.min(1, Math.pow(10, s.gain_db/20));
  const go = () => { try { el.currentTime = t; } catch(e) {} if(playing) el.play(); };
  if(el.readyState >= 1) go(); else el.addEventListener('loadedmetadata', go, {once:true});
  document.querySelectorAll('.player button[data-src]').forEach(
    b => b.classList.toggle('on', b.dataset.src === name));
}
document.querySelectorAll('.player button[data-src]').forEach(b => b.onclick = () => pick(b.dataset.src));
document.getElementById('ab-toggle').onclick = () => {
  const names = Object.keys(srcs); pick(names[(names.indexOf(current) + 1) % names.length]);
};
pick(Object.keys(srcs).includes('master') ? 'master' : Object.keys(srcs)[0]);
"""


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _tonal_plot(analysis: dict) -> str:
    fig = Figure(figsize=(12, 3.6))
    axes = fig.subplots(1, 2)
    for ax, part in zip(axes, ("mid_db", "side_db")):
        for name, colour in _COLOURS.items():
            a = analysis.get(name)
            if a:
                tb = a["tonal_balance"]
                ax.semilogx(tb["bands_hz"], np.maximum(tb[part], -40), color=colour, label=name)
        ax.set_title(f"tonal balance, {part[:-3]} (dB re mean band)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.subplots_adjust(left=0.05, right=0.99, bottom=0.12, top=0.9, wspace=0.15)
    return _png(fig)


def _loudness_plot(curves: dict, hop_s: float = 0.1) -> str | None:
    """Short-term loudness over time, as report.png draws it: each curve (name -> values every
    ``hop_s``, or ``(values, offset_s)`` for a curve that starts later: the master after its
    top and tail) plotted at its 3 s windows' centres."""
    if not curves:
        return None
    fig = Figure(figsize=(12, 2.8))
    ax = fig.subplots()
    for name, curve in curves.items():
        st, offset = curve if isinstance(curve, tuple) else (curve, 0.0)
        st = np.asarray(st)
        if not st.size:
            continue
        ax.plot(offset + 1.5 + np.arange(st.size) * hop_s, np.maximum(st, -60),
                color=_COLOURS.get(name, "gray"), label=name, lw=2.0 if name == "master" else 1.2)
    ax.set_title("short-term loudness (3 s windows), LUFS")
    ax.set_xlabel("s")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.subplots_adjust(left=0.05, right=0.99, bottom=0.18, top=0.88)
    return _png(fig)


def _stereo_plot(stereo: dict) -> str | None:
    bands = stereo.get("bands") if stereo else None
    if not bands:
        return None
    names = [n for n, b in bands.items() if b["correlation"] is not None]
    fig = Figure(figsize=(12, 2.8))
    ax1, ax2 = fig.subplots(1, 2)
    ax1.bar(names, [bands[n]["correlation"] for n in names], color="tab:purple")
    ax1.axhline(0, color="k", lw=0.8)
    ax1.set_ylim(-1, 1)
    ax1.set_title(f"L/R correlation per band (overall {stereo['correlation']:+.2f})")
    ax2.bar(names, [bands[n]["mono_loss_db"] for n in names], color="tab:green")
    ax2.set_title("level lost folded to mono, dB")
    for ax in (ax1, ax2):
        ax.grid(True, axis="y", alpha=0.3)
    fig.subplots_adjust(left=0.05, right=0.99, bottom=0.12, top=0.88, wspace=0.15)
    return _png(fig)


def _decay_plot(settings: dict) -> str | None:
    """Decay per band, as report.png draws it (the reference's, the mix's, the reverbs')."""
    from .report import decay_rows, plot_decay

    decay = decay_rows(settings)
    if decay is None:
        return None
    fig = Figure(figsize=(11, 3.2))
    axes = fig.subplots(1, 2)
    plot_decay(axes[0], axes[1], decay)
    fig.subplots_adjust(left=0.06, right=0.99, bottom=0.2, top=0.88, wspace=0.2)
    return _png(fig)


def _checks_table(checks: dict) -> str:
    rows = []
    for c in checks["checks"]:
        value = "" if c["value"] is None else f"{c['value']:.2f} {c['unit']}"
        rows.append(f"<tr><td><span class=dot style='background:{_LIGHT[c['status']]}'></span> "
                    f"{c['status']}</td><td>{html.escape(c['name'])}</td><td class=v>"
                    f"{html.escape(value)}</td><td>{html.escape(c['detail'])}</td></tr>")
    return ("<table><tr><th></th><th>check</th><th>value</th><th>detail</th></tr>"
            + "".join(rows) + "</table>")


def _flags(t: dict, sr) -> str:
    """Mute and the stem alignment (automix.stem_align) of a track, in words."""
    flags = ["muted"] if t.get("mute") else []
    if t.get("polarity") == -1:
        flags.append("polarity flipped")
    if t.get("delay_samples") and sr:
        flags.append(f"delayed {t['delay_samples'] / sr * 1e3:.2f} ms")
    return ", ".join(flags)


def _tracks_table(settings: dict) -> str:
    rows = []
    for t in settings.get("tracks", []):
        eq = ", ".join(f"{b['type']} {b['freq_hz']:.0f} Hz {b.get('gain_db', 0):+.1f}"
                       for b in t.get("eq", []) if abs(b.get("gain_db", 0)) >= 0.05
                       or b["type"] in ("highpass", "lowpass"))
        comp = t.get("compressor") or {}
        rows.append(f"<tr><td>{html.escape(t['name'])}</td><td class=v>{t['gain_db']:+.1f}</td>"
                    f"<td class=v>{t['pan']:+.2f}</td><td class=v>{t['width']:.2f}</td>"
                    f"<td>{html.escape(_flags(t, settings.get('sample_rate')))}</td>"
                    f"<td>{'%.0f dB %.1f:1' % (comp['threshold_db'], comp['ratio']) if comp else ''}</td>"
                    f"<td>{html.escape(eq)}</td></tr>")
    return ("<table><tr><th>track</th><th>fader dB</th><th>pan</th><th>width</th><th></th>"
            "<th>compressor</th><th>EQ</th></tr>" + "".join(rows) + "</table>")


def write_html(path, settings: dict, checks: dict, players: dict, loudness_curves: dict | None = None,
               notes=(), title: str = "automix report", base=None) -> Path:
    """Write the report.  ``players``: name -> (file path, integrated LUFS) for the A/B
    switch (absolute paths made relative to ``base``, the folder the report will finally
    lie in: default its own); ``loudness_curves``: name -> short-term loudness every 100 ms
    (or ``(values, offset_s)``: see :func:`_loudness_plot`), drawn in the dict's order."""
    from .report import _settings_text  # the master chain, as report.png prints it

    path = Path(path)
    analysis = settings.get("analysis", {})
    quietest = min((lufs for _, lufs in players.values() if lufs is not None and lufs > -70),
                   default=None)
    ab = {}
    for name, (file, lufs) in players.items():
        rel = os.path.relpath(os.path.abspath(file), os.path.abspath(base or path.parent)) \
            if os.path.isabs(str(file)) else str(file)
        gain = 0.0 if quietest is None or lufs is None or lufs <= -70 else quietest - lufs
        ab[name] = {"file": Path(rel).as_posix(), "gain_db": round(gain, 2)}
    overall = checks["status"]
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{_CSS}</style></head><body>",
             f"<h1>{html.escape(title)} <span class=dot style='background:{_LIGHT[overall]};"
             f"width:16px;height:16px;border-radius:8px'></span> {overall}</h1>"]
    if ab:
        buttons = "".join(f"<button data-src='{html.escape(n)}'>{html.escape(n)}</button>"
                          for n in ab)
        parts.append("<h2>Listen (loudness-matched A/B; the position is kept)</h2>"
                     f"<div class=player><audio id=ab-audio controls preload=metadata></audio>"
                     f"{buttons}<button id=ab-toggle>A/B switch</button></div>"
                     "<p style='font-size:12px;color:#666'>"
                     + html.escape(", ".join(f"{n}: {v['file']} ({v['gain_db']:+.1f} dB)"
                                             for n, v in ab.items())) + "</p>")
    if notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes)
                     + "</ul>")
    parts.append("<h2>Checks</h2>" + _checks_table(checks))
    if analysis.get("master") or analysis.get("mix"):
        parts.append(f"<h2>Tonal balance</h2><img src='{_tonal_plot(analysis)}'>")
    img = _loudness_plot(loudness_curves or {})
    if img:
        parts.append(f"<h2>Loudness over time</h2><p class=curves>"
                     f"{html.escape(', '.join(loudness_curves))}</p><img src='{img}'>")
    img = _decay_plot(settings)
    if img:
        parts.append(f"<h2>Ambience (decay per band)</h2><img src='{img}'>")
    img = _stereo_plot(checks.get("measurements", {}).get("stereo"))
    if img:
        parts.append(f"<h2>Stereo field</h2><img src='{img}'>")
    if settings.get("master"):
        parts.append("<h2>Master chain</h2><pre>" + html.escape(_settings_text(settings))
                     + "</pre>")
    if len(settings.get("tracks", [])) > 1:
        parts.append("<h2>Tracks</h2>" + _tracks_table(settings))
    data = json.dumps(ab).replace("</", "<\\/")  # no "</script>" inside the script element
    parts.append(f"<script type='application/json' id=ab-data>{data}</script>"
                 f"<script>{_JS}</script></body></html>" if ab else "</body></html>")
    with atomic_path(path) as tmp:
        tmp.write_text("".join(parts), encoding="utf-8")
    return path
