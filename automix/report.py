"""The report image: reference vs mix vs master, so a person sees at a glance what changed."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure  # no pyplot: no global state, safe in a worker thread

from .audio import atomic_path

_COLOURS = {"reference": "black", "mix": "tab:blue", "master": "tab:red"}
_ROWS = [("integrated_lufs", "loudness (LUFS)"), ("true_peak_dbtp", "true peak (dBTP)"),
         ("plr_db", "PLR (dB)"), ("loudness_range_lu", "LRA (LU)"), ("width_db", "width (dB)"),
         ("crest_factor_db", "crest factor (dB)")]


def summary_rows(analysis: dict) -> list[tuple[str, list[str]]]:
    names = [n for n in ("reference", "mix", "master") if analysis.get(n)]
    rows = []
    for key, label in _ROWS:
        rows.append((label, [f"{analysis[n][key]:.1f}" for n in names]))
    return [("", names)] + rows


def summary_text(analysis: dict) -> str:
    rows = summary_rows(analysis)
    return "\n".join(f"{label:<20}" + "".join(f"{v:>11}" for v in values) for label, values in rows)


def write_report(path, settings: dict, timeline: dict | None = None) -> Path:
    """report.png; ``timeline`` (the job's, when it found the song's sections: ``reference``,
    ``mix`` and ``master`` audio or their short-term loudness ``reference_st``, ``mix_st``,
    ``master_st``; ``sample_rate``; ``lead``) adds a row: short-term loudness over time with the
    sections and the lead's lane."""
    analysis = settings["analysis"]
    decay = decay_rows(settings)
    if timeline or decay:
        heights = [1, 1.75 if timeline else 1.3] + ([1.0] if timeline else []) \
            + ([0.8] if decay else [])
        fig = Figure(figsize=(13, 9.5 + (5.0 if timeline else 0) + (3.6 if decay else 0)))
        grid = fig.add_gridspec(len(heights), 2, height_ratios=heights)
        axes = np.array([[fig.add_subplot(grid[r, c]) for c in range(2)] for r in range(2)])
        if timeline:
            _plot_time(fig.add_subplot(grid[2, :]), settings, timeline)
        if decay:
            plot_decay(fig.add_subplot(grid[len(heights) - 1, 0]),
                       fig.add_subplot(grid[len(heights) - 1, 1]), decay)
    else:
        fig = Figure(figsize=(13, 9.5))
        axes = fig.subplots(2, 2, gridspec_kw={"height_ratios": [1, 1.3]})
    for ax, part, title in ((axes[0, 0], "mid_db", "tonal balance, mid"),
                            (axes[0, 1], "side_db", "tonal balance, side")):
        for name, colour in _COLOURS.items():
            a = analysis.get(name)
            if a:
                tb = a["tonal_balance"]
                ax.semilogx(tb["bands_hz"], tb[part], color=colour, label=name,
                            lw=2.2 if name == "master" else 1.4)
        ax.set_title(f"{title} (1/3 octave, dB re mean band power)")
        ax.set_xlabel("Hz")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        lo = min(min(analysis[n]["tonal_balance"][part]) for n in _COLOURS if analysis.get(n))
        ax.set_ylim(max(lo, -40) - 2, None)
    rows = summary_rows(analysis)
    ax = axes[1, 0]
    ax.axis("off")
    # the row labels as a first column: its width is set, the text is never clipped
    table = ax.table(cellText=[[label, *v] for label, v in rows[1:]], colLabels=["", *rows[0][1]],
                     colWidths=[0.31, 0.23, 0.23, 0.23], cellLoc="right", bbox=[0, 0.25, 1, 0.65])
    for r in range(1, len(rows)):
        table[r, 0].set_text_props(ha="left")
    ax.set_title("loudness, peaks, dynamics, width")
    ax = axes[1, 1]
    ax.axis("off")
    ax.set_title("master chain settings")
    ax.text(0, 1, _settings_text(settings), va="top", family="monospace", fontsize=8.5,
            transform=ax.transAxes)
    # fixed margins (tight_layout would measure every text: a third of the drawing time)
    if timeline or decay:
        fig.subplots_adjust(left=0.06, right=0.95, top=0.97, bottom=0.04, wspace=0.16,
                            hspace=0.3)
    else:
        fig.subplots_adjust(left=0.06, right=0.985, top=0.96, bottom=0.01, wspace=0.16,
                            hspace=0.22)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    return path


def _plot_time(ax, settings: dict, timeline: dict) -> None:
    """Short-term loudness (BS.1770, 3 s windows every 0.1 s) of reference, mix and master over
    time; the sections shaded and lettered; the lead's fader lane (dB) on the right axis."""
    from .analysis import short_term_loudness
    from .console.blocks import lane_db

    sr = timeline["sample_rate"]
    # mix and master trimmed to one span (automix.toptail): both start this far into the song
    start = settings["master"].get("top_tail", {}).get("start_s", 0.0)

    def loudness(name):  # kept by the job (``NAME_st``) or measured here from the audio
        st = timeline.get(f"{name}_st")
        if st is None and timeline.get(name) is not None:
            st = short_term_loudness(timeline[name], sr)
        return st

    curves = {"reference": (loudness("reference"), 0.0), "mix": (loudness("mix"), start),
              "master": (loudness("master"), start)}
    for name, (st, offset) in curves.items():
        if st is not None and len(st):
            t = offset + 1.5 + 0.1 * np.arange(len(st))   # window centres
            ax.plot(t, np.maximum(st, -70), color=_COLOURS[name], label=name,
                    lw=2.0 if name == "master" else 1.2)
    for i, sec in enumerate(settings.get("sections", [])):
        ax.axvspan(sec["start_s"], sec["end_s"], color="0.85" if i % 2 else "0.93", zorder=0)
        ax.text((sec["start_s"] + sec["end_s"]) / 2, 0.98, sec["label"].split(":")[0],
                transform=ax.get_xaxis_transform(), ha="center", va="top", fontsize=9)
    ax.set_xlabel("s")
    ax.set_ylabel("short-term loudness (LUFS)")
    lo = min(float(np.percentile(c[0], 5)) for c in curves.values()
             if c[0] is not None and len(c[0]))
    ax.set_ylim(max(lo, -60) - 3, None)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower left")
    lead = next((t for t in settings["tracks"] if t["name"] == timeline.get("lead")), None)
    lane = ((lead or {}).get("automation") or {}).get("gain_db")
    title = "loudness over time, sections shaded"
    if lane and lane["points"] and timeline.get("mix") is not None:
        n = timeline["mix"].shape[1]
        step = max(1, sr // 20)
        db = lane_db(lane, 0, n, sr)[::step]
        right = ax.twinx()
        right.plot(np.arange(len(db)) * step / sr, db, color="tab:green", lw=1.4, ls="--")
        right.set_ylabel(f"lead lane: {lead['name']} (dB)", color="tab:green")
        right.set_ylim(-7, 7)
        title += f"; the lead's fader lane dashed ({lead['name']})"
    ax.set_title(title)


def _settings_text(settings: dict) -> str:
    m = settings["master"]
    lines = ["EQ:"]
    for b in m["eq"]:
        gain = f"{b['gain_db']:+5.1f} dB" if "gain_db" in b else "        "
        lines.append(f"  {b['type']:<9} {b['freq_hz']:7.0f} Hz {gain}  Q {b['q']:.2f}")
    c = m["compressor"]
    lines.append("compressor: " + (f"{c['threshold_db']:.1f} dB, {c['ratio']:.1f}:1, "
                                   f"{c['attack_ms']:.0f}/{c['release_ms']:.0f} ms" if c else "off"))
    side = [b.get("gain_db", 0.0) for b in m.get("side_eq", [])]
    if side:
        lines.append(f"side EQ: {len(side)} bands, {min(side):+.1f} .. {max(side):+.1f} dB")
    if m.get("widener"):
        w = m["widener"]
        lines.append(f"widener: delayed mid {w['gain_db']:+.1f} dB, {w['delay_ms']:.0f} ms")
    lines.append(f"width: {m['width']:.2f}   gain: {m['gain_db']:+.1f} dB")
    lim = m["limiter"]
    if lim:
        lines.append(f"limiter: ceiling {lim['ceiling_dbtp']:.1f} dBTP, release {lim['release_ms']:.0f} ms")
    t = settings.get("target", {})
    if t:
        lines.append(f"target: {t['lufs']:.1f} LUFS ({t['source']})")
    lines.append(f"tracks: {len(settings['tracks'])}")
    lines += _space_lines(settings)
    return "\n".join(lines)


def _space_lines(settings: dict) -> list[str]:
    """The reference's decay per band beside the reverb buses' (automix.space)."""
    out = []
    amb = settings.get("analysis", {}).get("reference", {}).get("ambience")
    if amb:
        rts = "/".join("-" if v is None else f"{v:.2f}" for v in amb["rt60_s"])
        out.append(f"reference RT60 {'/'.join(amb['bands'])}: {rts} s")
    for bus in settings.get("buses", []):
        p = bus["processor"]
        if p.get("type") == "reverb":
            levels = [s["level_db"] for s in settings.get("sends", []) if s["bus"] == bus["name"]]
            out.append(f"reverb '{bus['name']}': RT60 {p['rt60_low_s']:.2f}/{p['rt60_mid_s']:.2f}/"
                       f"{p['rt60_high_s']:.2f} s, width {p['width']:.2f}, {len(levels)} sends"
                       + (f" {min(levels):+.1f}..{max(levels):+.1f} dB" if levels else ""))
    return out


def decay_rows(settings: dict) -> dict | None:
    """The reference's and the mix's ambience per band (automix.ambience, measured when the
    job set the space) and each reverb bus's RT60 per band, or None when the reference's is
    not in the analysis: ``{"bands", "centres_hz", "rt60": {name: [s or None]},
    "early_late": {name: [dB or None]}}``."""
    a = settings.get("analysis", {})
    ref = (a.get("reference") or {}).get("ambience")
    if not ref:
        return None
    out = {"bands": ref["bands"],
           "centres_hz": [float(np.sqrt(lo * hi)) for lo, hi in ref["bands_hz"]],
           "rt60": {"reference": ref["rt60_s"]}, "early_late": {"reference": ref["early_late_db"]}}
    mix = (a.get("mix") or {}).get("ambience")
    if mix and mix["bands"] == ref["bands"]:
        out["rt60"]["mix"] = mix["rt60_s"]
        out["early_late"]["mix"] = mix["early_late_db"]
    for bus in settings.get("buses", []):
        p = bus["processor"]
        if p.get("type") == "reverb":
            out["rt60"][f"reverb '{bus['name']}'"] = [p.get(f"rt60_{b}_s") for b in ref["bands"]]
    return out


def plot_decay(ax_rt, ax_el, decay: dict) -> None:
    """Decay per band: blind RT60 (reference, mix, and the reverb buses as set) and the
    early/late proxy (lower = wetter); a band with no reading is left out."""
    styles = {"reference": dict(color="black", marker="o", lw=1.4),
              "mix": dict(color="tab:blue", marker="s", lw=1.4)}
    x = decay["centres_hz"]
    for ax, key, title, unit in ((ax_rt, "rt60", "decay per band (blind RT60)", "s"),
                                 (ax_el, "early_late", "early/late per band (lower = wetter)",
                                  "dB")):
        drawn = 0
        for name, values in decay[key].items():
            pts = [(f, v) for f, v in zip(x, values) if v is not None]
            style = styles.get(name, dict(color="tab:green", marker="x", ls="--", lw=1.0))
            if pts:
                ax.semilogx(*zip(*pts), label=name, **style)
                drawn += 1
        ax.set_xticks(x)
        ax.set_xticklabels([f"{b}\n{f:.0f} Hz" for b, f in zip(decay["bands"], x)])
        ax.minorticks_off()
        ax.set_xlim(x[0] / 1.6, x[-1] * 1.6)
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        if drawn:
            ax.legend(fontsize=8)
        else:  # too short or too dense a signal for a blind decay reading
            ax.text(0.5, 0.5, "no reading", transform=ax.transAxes, ha="center", va="center",
                    color="0.5")
