"""What a mix or master run writes besides the WAVs, settings.json and report.png (issue 20):
the master in the extra ``--formats``, ``checks.json`` (:mod:`automix.qc` on the master, the
codec loop's report, the delivery preset) and ``report.html`` (:mod:`automix.report_html`).
The command line's writer calls :func:`extra_names` before the run and :func:`write` after it.
"""
from __future__ import annotations

import json
from pathlib import Path

from .codecs import DELIVERY_FORMATS, write_delivery


def extra_names(formats) -> list[str]:
    return ["report.html", "checks.json"] + [f"master{DELIVERY_FORMATS[f]}" for f in formats]


def submit_formats(folder, audio, sr, formats, bit_depth) -> None:
    """The master's extra files, written in the background like the WAVs."""
    for fmt in formats:
        folder.submit(write_delivery, folder.path(f"master{DELIVERY_FORMATS[fmt]}"), audio, sr,
                      fmt, bit_depth)


def write(folder, result, delivery, session, reference=None, stems=None) -> list[str]:
    """checks.json and report.html for ``result`` (an :class:`automix.api.Result`); returns the
    notes to add (codec loop, preset against the reference, stem problems).  ``stems``: the
    mix job's stems folder (its stems are checked too)."""
    from . import analysis, qc

    settings, sr = result.settings, result.sample_rate
    notes = list(session.notes) if session is not None else []
    notes += delivery.notes(settings.get("analysis", {}).get("reference"))
    codec_report = session.reports[-1] if session is not None and session.reports else None
    platforms = [delivery.platform.name] if delivery.platform else list(qc.PLATFORMS)
    checks = qc.check_audio(result.master, sr, delivery.ceiling,
                            codecs=() if codec_report else delivery.codecs,
                            platforms=platforms, features=settings["analysis"].get("master"),
                            coded=codec_report["after"] if codec_report else None)
    rows = getattr(result, "stem_checks", None)
    if rows is None and stems is not None:  # a mix job's result without them: read the stems
        from .api import find_stems
        rows = [c.as_dict() for c in qc.stem_checks(find_stems(stems)[0], sr)]
    if rows:  # the mix job: checks on the stems too (automix.stem_align's fixes included)
        checks["checks"] += rows
        notes += [f"{c['name']}: {c['detail']}" for c in rows if c["status"] != "pass"]
        checks["status"] = max([checks["status"]] + [c["status"] for c in rows
                                                     if c["status"] != "info"],
                               key=qc.STATUSES.index)
    doc = {"status": checks["status"], "checks": checks["checks"],
           "delivery": {"platform": delivery.platform.name if delivery.platform else None,
                        "target_lufs": delivery.target_lufs, "ceiling_dbtp": delivery.ceiling,
                        "codecs": list(delivery.codecs)},
           "codec_loop": {k: v for k, v in (codec_report or {}).items() if k != "note"} or None,
           "measurements": checks["measurements"], "notes": notes}
    path = folder.path("checks.json")
    from .audio import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(doc, indent=1, default=float), encoding="utf-8")
    # loudness over time, as report.png draws it: the reference, the mix, the master (placed
    # after the samples its top and tail cut)
    curves = {}
    ref_st = reference_loudness(result, reference)
    if ref_st is not None:
        curves["reference"] = ref_st
    start = settings["master"].get("top_tail", {}).get("start_s", 0.0)
    if result.mix is not None:  # cut to the master's span (automix.toptail): it starts there too
        curves["mix"] = (analysis.short_term_loudness(result.mix, sr), start)
    curves["master"] = (analysis.short_term_loudness(result.master, sr), start)
    a = settings["analysis"]
    players = {}
    if reference is not None:
        players["reference"] = (Path(reference).resolve(), a.get("reference", {}).get("integrated_lufs"))
    if result.mix is not None:
        players["mix"] = ("mix.wav", a.get("mix", {}).get("integrated_lufs"))
    players["master"] = ("master.wav", a.get("master", {}).get("integrated_lufs"))
    from .report_html import write_html

    write_html(folder.path("report.html"), settings, checks, players, curves, notes,
               title="automix master report", base=folder.out)
    return notes


def reference_loudness(result, reference):
    """The reference's short-term loudness (every 100 ms): from the audio the job kept for its
    time plan, else read from ``reference`` (a file at most REFERENCE_MAX_S long: a longer one
    was measured on excerpts, whose curve would not be the song's); None without one."""
    from . import analysis
    from .api import REFERENCE_MAX_S
    from .audio import audio_info, read_audio
    from .errors import AutomixError

    audio = (getattr(result, "timeline", None) or {}).get("reference")
    if audio is not None:
        return analysis.short_term_loudness(audio, result.sample_rate)
    if reference is None:
        return None
    try:
        if audio_info(reference).seconds > REFERENCE_MAX_S:
            return None
        audio, sr = read_audio(reference)
    except AutomixError:
        return None  # read once already by the job; a failure here costs only the curve
    return analysis.short_term_loudness(audio, sr)
