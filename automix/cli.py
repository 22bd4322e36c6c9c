"""Command line.

    automix --stems DIR --reference REF [-o OUT]      mix and master stems to a reference
    automix master --input MIX --reference REF        master a finished mix
    automix render --stems DIR --settings S.json      apply (possibly edited) settings
    automix analyze FILE [--json]                     loudness, peaks, tone, width, ambience
    automix check FILE [--json]                       delivery checks (docs/checks.md)
    automix album SONG... [--reference REF]           master songs to one consistent album

Every user error is one line on stderr and exit code 2; nothing the user gave is overwritten.
The output folder is replaced as a whole (:mod:`automix.outdir`): a run that fails, is
interrupted (Ctrl-C: exit 130; SIGTERM: 143) or finds it in use by another run leaves it as it
was.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from ._startup import quiet_interrupt
from .errors import AutomixError

quiet_interrupt("automix")  # Ctrl-C before main() runs: one line, exit 130

# torch's OpenMP threads spin while they wait: with another busy process on a 2-core machine
# that made renders 15x slower (BENCHMARKS.md); passive waiting costs ~nothing when idle.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


class Progress:
    """A one-line progress display on a terminal; silent when stderr is not a TTY."""

    def __init__(self, label: str, enabled: bool | None = None):
        self.label = label
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.start = time.perf_counter()

    def __call__(self, done: float, total: float) -> None:
        if self.enabled:
            pct = 100.0 * done / max(total, 1)
            sys.stderr.write(f"\r{self.label}: {pct:5.1f}%  {time.perf_counter() - self.start:6.1f} s")
            sys.stderr.flush()
            if done >= total:
                sys.stderr.write("\n")

    def note(self, msg: str) -> None:
        if self.enabled:
            sys.stderr.write(f"{msg}\n")


def _bit_depth(value: str):
    if value == "float":
        return "float"
    if value in ("16", "24"):
        return int(value)
    raise argparse.ArgumentTypeError("choose 16, 24 or float")


def cmd_render(args) -> int:
    from .audio import write_audio
    from .outdir import OutputFolder
    from .render import render_settings
    from .settings import load_settings

    settings = load_settings(args.settings)
    stems = Path(args.stems)
    if not stems.is_dir():
        raise AutomixError(f"{stems}: no such folder")
    printed = {} if args.export_stems else None
    names = ["mix.wav", "master.wav"] + (["stems"] if args.export_stems else [])
    with OutputFolder(args.output, names, args.force, [stems]) as folder:
        mix, master = render_settings(settings, stems, progress=Progress("rendering"),
                                      source=str(args.settings), stems_out=printed)
        sr = settings["sample_rate"]
        if printed:
            _write_printed_stems(folder, printed, sr, args.bit_depth)
        folder.submit(write_audio, folder.path("mix.wav"), mix, sr, args.bit_depth)
        write_audio(folder.path("master.wav"), master, sr, args.bit_depth)
        note = _render_peak_note(settings, master)
        folder.commit()
    if note:
        print(f"note: {note}", file=sys.stderr)
    print(f"wrote {folder.out / 'mix.wav'} and {folder.out / 'master.wav'}")
    return 0


def _render_peak_note(settings: dict, master) -> str | None:
    """A hand-edited master may lack a limiter (or be driven past it): say where it peaks."""
    import numpy as np

    from .analysis import true_peak_linear

    tp = 20 * np.log10(true_peak_linear(master) + 1e-12)
    limiter = settings["master"]["limiter"]
    if not limiter and tp > 0.0:
        return (f"master.wav peaks at {tp:+.1f} dBTP: the settings have no master.limiter, so "
                "nothing keeps it under full scale (it clips in PCM files)")
    if limiter and tp > limiter["ceiling_dbtp"] + 0.1:
        return (f"master.wav peaks at {tp:+.1f} dBTP, above its limiter ceiling "
                f"{limiter['ceiling_dbtp']:+.1f} dBTP")
    return None


OUTPUT_NAMES = ["mix.wav", "master.wav", "settings.json", "report.png"]


def _number(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None


def _amount(value: str) -> float:
    v = _number(value)
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"{value}: amounts go from 0 to 1")
    return v


def _checked(check, value):
    """An :mod:`automix.options` check as an argparse type (the API runs the same one)."""
    try:
        return check(value)
    except AutomixError as exc:
        raise argparse.ArgumentTypeError(str(exc).split(": ", 1)[1]) from None


def _ceiling(value: str) -> float:
    from .options import check_ceiling
    return _checked(check_ceiling, _number(value))


def _target(value: str) -> float:
    from .options import check_target_lufs
    return _checked(check_target_lufs, _number(value))


def _add_matching_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--reference", required=True, help="the reference track (a finished song)")
    p.add_argument("-o", "--output", default="automix-out", help="output folder (default: %(default)s)")
    p.add_argument("--force", action="store_true", help="replace automix's files in an existing folder")
    p.add_argument("--target-lufs", type=_target, default=None,
                   help="integrated loudness of the master instead of the reference's (e.g. -14)")
    p.add_argument("--ceiling", type=_ceiling, default=None,
                   help="true-peak ceiling, dBTP (default -1, or the --platform's)")
    for aspect in ("tone", "width", "dynamics", "loudness"):
        p.add_argument(f"--{aspect}", type=_amount, default=1.0,
                       help=f"how far the master moves toward the reference's {aspect}, 0..1 (default 1)")
    p.add_argument("--bit-depth", type=_bit_depth, default=None,
                   help="16, 24 (default; cd preset: 16) or float")
    _add_delivery_options(p)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where the refinement runs (default: auto = cuda if available)")


def _add_delivery_options(p: argparse.ArgumentParser) -> None:
    """Issue 20: delivery presets, extra formats, the codecs the master must survive."""
    from .delivery import PLATFORMS
    p.add_argument("--platform", default=None, metavar="NAME",
                   help=f"delivery preset: {'|'.join(PLATFORMS)} (loudness, ceiling, codecs; "
                        "docs/delivery.md)")
    p.add_argument("--formats", default="", metavar="LIST",
                   help="extra files of the master: flac,mp3,ogg,opus (default: none)")
    p.add_argument("--codecs", default=None, metavar="LIST",
                   help="lossy codecs whose decoded true peak must stay under the ceiling: "
                        "mp3,opus,vorbis or none (default: mp3,vorbis or the platform's)")


def _delivery(args):
    """The delivery options with the --platform preset applied (explicit options win)."""
    from .codecs import parse_formats
    from .delivery import resolve
    d = resolve(args.platform, args.target_lufs, args.ceiling, args.bit_depth, args.codecs)
    return d, parse_formats(args.formats)


def _lead(value: str) -> str:
    from .options import check_lead
    _checked(check_lead, value)
    return value


def _lead_margin(value: str) -> float:
    from .options import check_lead_margin
    return _checked(check_lead_margin, _number(value))


def _fade_in(value: str) -> float:
    from .options import check_fade
    return _checked(lambda v: check_fade(v, "--fade-in"), _number(value))


def _fade_out(value: str) -> float:
    from .options import check_fade
    return _checked(lambda v: check_fade(v, "--fade-out"), _number(value))


def _steps(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    from .options import check_refine_steps
    return _checked(check_refine_steps, n)


def _amounts(args):
    from .api import Amounts
    return Amounts(tone=args.tone, width=args.width, dynamics=args.dynamics, loudness=args.loudness)


class _Writer:
    """Writes the WAVs in the background as soon as the API hands them over (``on_audio``),
    while it analyses the master, then settings.json and report.png, all into the output
    folder's staging folder, and swaps the set in when it is complete (:mod:`automix.outdir`:
    a failed or interrupted run leaves the output folder as it was)."""

    def __init__(self, folder, bit_depth, delivery=None, formats=(), reference=None, stems=None):
        self.folder, self.bit_depth = folder, bit_depth
        self.delivery, self.formats, self.reference = delivery, formats, reference
        self.stems = stems

    def on_audio(self, name: str, audio, sample_rate: int) -> None:
        from .audio import write_audio

        self.folder.submit(write_audio, self.folder.path(f"{name}.wav"), audio, sample_rate,
                           self.bit_depth)
        if name == "master" and self.formats:  # issue 20: master.flac/.mp3/.ogg/.opus
            from . import deliverables
            deliverables.submit_formats(self.folder, audio, sample_rate, self.formats,
                                        self.bit_depth)

    def run(self, make_result) -> None:
        """``make_result(on_audio)`` (the API call), then every output written and reported."""
        from . import codec_safe, deliverables

        # the codec-safe ceiling loop runs inside this session (automix/codec_safe.py)
        with codec_safe.configured(self.delivery.codecs if self.delivery else ()) as session:
            result = make_result(self.on_audio)
        from .report import summary_text, write_report
        from .settings import save_settings

        self.folder.submit(write_report, self.folder.path("report.png"), result.settings,
                           _timeline_curves(result))
        save_settings(self.folder.path("settings.json"), result.settings)
        if getattr(result, "stems", None):  # --export-stems (issue 16): stems/NAME.wav
            _write_printed_stems(self.folder, result.stems, result.sample_rate, self.bit_depth)
        extra = []
        if self.delivery is not None:  # checks.json, report.html; codec and preset notes
            extra = deliverables.write(self.folder, result, self.delivery, session,
                                       self.reference, self.stems)
        written = self.folder.commit()
        for note in result.notes + extra:
            print(f"note: {note}", file=sys.stderr)
        print(summary_text(result.settings["analysis"]))
        print(f"wrote {', '.join(written)} to {self.folder.out}")


def _write_printed_stems(folder, stems: dict, sample_rate: int, bit_depth) -> None:
    """The printed stems into the output set's ``stems/`` folder: one file per top-level node
    of the console (a subfolder track ``drums/kick`` becomes ``drums_kick.wav``)."""
    from .audio import write_audio

    target = folder.path("stems")
    target.mkdir()
    used = set()
    for name, audio in stems.items():
        base = "".join(c if c.isalnum() or c in " -_+()" else "_" for c in name) or "stem"
        file = base
        while file.lower() in used:
            file += "_"
        used.add(file.lower())
        folder.submit(write_audio, target / f"{file}.wav", audio, sample_rate, bit_depth)


def _import_report_in_background() -> None:
    """matplotlib takes ~1 s to import; done while the audio work (mostly GIL-free kernels)
    runs, the report is ready to draw when the master is."""
    import importlib

    from . import background
    background.submit(importlib.import_module, "automix.report")


def _timeline_curves(result) -> dict | None:
    """What the report's loudness-over-time plot needs (automix.report.write_report)."""
    t = getattr(result, "timeline", None)
    if not t:
        return None
    return dict(t, mix=result.mix, master=result.master, sample_rate=result.sample_rate)


def cmd_mix(args) -> int:
    from .api import mix
    from .deliverables import extra_names
    from .outdir import OutputFolder

    stems = Path(args.stems)
    delivery, formats = _delivery(args)
    printed = ["stems"] if args.export_stems else []
    with OutputFolder(args.output, OUTPUT_NAMES + extra_names(formats) + printed, args.force,
                      [stems, Path(args.reference)]) as folder:
        progress = Progress("automix")
        _import_report_in_background()
        _Writer(folder, delivery.bit_depth, delivery, formats, args.reference, stems).run(
            lambda on_audio: mix(
            stems, args.reference, target_lufs=delivery.target_lufs, ceiling=delivery.ceiling,
            amounts=_amounts(args), refine_steps=args.refine_steps, device=args.device,
            model=args.model, progress=progress.note, on_audio=on_audio, groups=args.groups,
            export_stems=args.export_stems, space=args.space, lead=args.lead,
            lead_margin=args.lead_margin, static=args.static, fade_in=args.fade_in,
            fade_out=args.fade_out))
    return 0


def cmd_master(args) -> int:
    from .api import master, master_stems
    from .deliverables import extra_names
    from .outdir import OutputFolder

    # a finished mix (--input), or group stems of one mix (--stems, issue 16: stem mastering)
    stems = Path(args.stems) if args.stems is not None else None
    source = stems if stems is not None else Path(args.input)
    job = master_stems if stems is not None else master
    delivery, formats = _delivery(args)
    with OutputFolder(args.output, OUTPUT_NAMES + extra_names(formats), args.force,
                      [source, Path(args.reference)]) as folder:
        progress = Progress("automix master")
        _import_report_in_background()
        _Writer(folder, delivery.bit_depth, delivery, formats, args.reference, stems).run(
            lambda on_audio: job(
            source, args.reference, target_lufs=delivery.target_lufs, ceiling=delivery.ceiling,
            amounts=_amounts(args), device=args.device, progress=progress.note,
            on_audio=on_audio))
    return 0


def cmd_analyze(args) -> int:
    import json

    from .analysis import analyze, format_analysis
    from .audio import read_audio

    if sys.stdout is None:
        raise AutomixError("standard output is closed: nowhere to print the analysis")
    from .ambience import ambience, format_ambience

    audio, sr = read_audio(args.file)
    result = analyze(audio, sr)
    result["ambience"] = ambience(audio, sr)  # reverberance and diffuseness (docs/metrics.md)
    print(json.dumps(result, indent=2) if args.json
          else "\n".join([format_analysis(result)] + format_ambience(result["ambience"])))
    return 0


def cmd_check(args) -> int:
    """Issue 20: the delivery checks of one file (automix/qc.py, docs/checks.md)."""
    import json

    from .audio import read_audio
    from .codecs import parse_codecs
    from .delivery import PLATFORMS, platform
    from .qc import check_audio, format_checks

    if sys.stdout is None:
        raise AutomixError("standard output is closed: nowhere to print the checks")
    p = platform(args.platform) if args.platform else None
    ceiling = args.ceiling if args.ceiling is not None else (p.ceiling_dbtp if p else -1.0)
    codecs = parse_codecs(args.codecs) if args.codecs is not None else (
        p.codecs if p else parse_codecs("mp3,vorbis"))
    audio, sr = read_audio(args.file)
    result = check_audio(audio, sr, ceiling, codecs, [p.name] if p else list(PLATFORMS))
    if args.json:
        print(json.dumps({k: result[k] for k in ("status", "checks")}, indent=1))
    else:
        print(format_checks(result))
    return 0


def cmd_album(args) -> int:
    """Issue 20: several songs mastered to one consistent sound (automix/album.py)."""
    from .album import run
    return run(args, progress=Progress("automix album").note)


def _add_album_parser(sub) -> None:
    a = sub.add_parser("album", help="master several songs to one consistent album",
                       description="Master several songs to one consistent sound. Exit code 3: "
                                   "some songs failed (named on stderr), the rest mastered.")
    a.add_argument("songs", nargs="+",
                   help="mix files, folders of mixes (sorted by name), or a .txt/.m3u list "
                        "in album order")
    a.add_argument("--stem-folders", action="store_true",
                   help="each SONG is a folder of stems, mixed first (needs --reference)")
    a.add_argument("--reference", default=None,
                   help="reference track: the album's tone, width, dynamics (default: the "
                        "album's own mean)")
    a.add_argument("-o", "--output", default="automix-album", help="output folder")
    a.add_argument("--force", action="store_true", help="replace automix's files in the folder")
    a.add_argument("--target-lufs", type=_target, default=None,
                   help="loudness of the loudest song (default: the platform's, the "
                        "reference's, or -14)")
    a.add_argument("--ceiling", type=_ceiling, default=None, help="true-peak ceiling, dBTP")
    a.add_argument("--same-loudness", action="store_true", help="every song at the target")
    a.add_argument("--window", type=_number, default=3.0,
                   help="quieter songs stay at most this many LU under the loudest (default 3)")
    for aspect in ("tone", "width", "dynamics", "loudness"):
        a.add_argument(f"--{aspect}", type=_amount, default=1.0,
                       help=f"how far each song moves toward the album's {aspect}, 0..1")
    a.add_argument("--match-eq", default="third-octave", metavar="third-octave|half-octave",
                   help="the masters' match EQ: one band per 1/3 octave, so every song lands "
                        "on the album curve band by band (default), or the single master's "
                        "smoother half-octave EQ")
    a.add_argument("--bit-depth", type=_bit_depth, default=None, help="16, 24 (default) or float")
    _add_delivery_options(a)
    a.add_argument("--sequence", action="store_true",
                   help="also write the album as one file (album.wav) with a CUE sheet")
    a.add_argument("--gap", type=_number, default=2.0, help="seconds between songs (default 2)")
    a.add_argument("--crossfade", type=_number, default=0.0,
                   help="seconds the songs overlap instead (with --gap 0)")
    a.add_argument("--jobs", type=int, default=None, help="processes (default: every core)")
    a.add_argument("--shard", default=None, metavar="I/N",
                   help="master only the songs k with k %% N == I-1 (plan from all songs)")
    a.add_argument("--model", default="default", help=argparse.SUPPRESS)
    a.set_defaults(func=cmd_album)


def build_mix_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="automix", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Mix and master a folder of stems to a reference track.",
        epilog="other commands: automix master | album | render | analyze | check  "
               "(automix COMMAND --help)")
    p.add_argument("--stems", required=True,
                   help="folder of stems (every audio file is a stem; files in its subfolders "
                        "too, one group bus per subfolder)")
    _add_matching_options(p)
    p.add_argument("--refine-steps", type=_steps, default=300,
                   help="gradient steps of each refinement fit (default 300; 0: the network's "
                        "settings as they are)")
    model = p.add_mutually_exclusive_group()
    model.add_argument("--model", default="default", metavar="PATH",
                       help="checkpoint of the parameter predictor (default: the shipped one)")
    model.add_argument("--no-model", dest="model", action="store_const", const=None,
                       help="no network: refine from a heuristic start")
    p.add_argument("--groups", choices=("auto", "none"), default="auto",
                   help="group buses: auto (from subfolders, else from stem names and content: "
                        "drums, bass, vocals, music) or none (a flat console)")
    p.add_argument("--export-stems", action="store_true",
                   help="also write stems/NAME.wav: every track outside a group and every "
                        "group, post fader and pan; they sum to mix.wav")
    p.add_argument("--space", type=_amount, default=1.0, metavar="0..1",
                   help="reverb of the reference's kind added by a send bus, set so the mix's "
                        "ambience follows the reference's (default 1; 0: no sends; each send moves "
                        "by 10*log10(space) dB; a dry reference or stems already as wet as the "
                        "reference give no bus)")
    p.add_argument("--lead", type=_lead, default="auto", metavar="NAME|none|auto",
                   help="the stem kept on top by a rider lane on its fader (default auto: found "
                        "from names and audio; none: no rider)")
    p.add_argument("--lead-margin", type=_lead_margin, default=None, metavar="DB",
                   help="an absolute target for the lead's short-term loudness above the rest, "
                        "every section (-12..12; default: none, the margin is evened out "
                        "across sections around its mean)")
    p.add_argument("--static", action="store_true",
                   help="one static setting for the whole song: no sections, lanes, de-esser "
                        "or trimming (the mix before issue 19)")
    p.add_argument("--fade-in", type=_fade_in, default=0.0, metavar="S",
                   help="equal-power fade-in of the master, seconds (default 0)")
    p.add_argument("--fade-out", type=_fade_out, default=0.0, metavar="S",
                   help="equal-power fade-out of the master, seconds (default 0)")
    p.set_defaults(func=cmd_mix)
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="automix", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("master", help="master a finished mix to a reference")
    what = m.add_mutually_exclusive_group(required=True)
    what.add_argument("--input", help="the mix to master")
    what.add_argument("--stems", help="stem mastering: a folder of group stems of one mix (e.g. "
                                      "drums, bass, music, vocals), balance kept within +-3 dB")
    _add_matching_options(m)
    m.set_defaults(func=cmd_master)
    a = sub.add_parser("analyze",
                       help="loudness, true peak, tonal balance, width, ambience of a file")
    a.add_argument("file")
    a.add_argument("--json", action="store_true", help="print JSON")
    a.set_defaults(func=cmd_analyze)
    _add_album_parser(sub)
    c = sub.add_parser("check", help="delivery checks of a file (loudness, peaks, codecs, phase)")
    c.add_argument("file")
    c.add_argument("--json", action="store_true", help="print JSON")
    c.add_argument("--ceiling", type=_ceiling, default=None, help="true-peak ceiling (default -1)")
    c.add_argument("--platform", default=None, metavar="NAME",
                   help="judge for one platform's preset (default: show every platform)")
    c.add_argument("--codecs", default=None, metavar="LIST",
                   help="codecs to check: mp3,opus,vorbis or none (default mp3,vorbis)")
    c.set_defaults(func=cmd_check)
    r = sub.add_parser("render", help="render stems with a settings.json (mix.wav and master.wav)")
    r.add_argument("--stems", required=True, help="folder holding the stems named in the settings")
    r.add_argument("--settings", required=True, help="settings.json (schema v1 or v2)")
    r.add_argument("-o", "--output", default="automix-render", help="output folder")
    r.add_argument("--force", action="store_true", help="replace results in an existing folder")
    r.add_argument("--bit-depth", type=_bit_depth, default=24, help="16, 24 (default) or float")
    r.add_argument("--export-stems", action="store_true",
                   help="also write stems/NAME.wav (every top-level track, group and bus "
                        "return; they sum to mix.wav)")
    r.set_defaults(func=cmd_render)
    return parser


SUBCOMMANDS = ("master", "render", "analyze", "check", "album")


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C's KeyboardInterrupt, so every ``finally``
    and cleanup runs (no temporary files are left behind)."""


def _on_sigterm(signum, frame):
    raise Terminated


def _error(message: str) -> None:
    # one line, prefixed once (an API message may carry its own "automix: " source name)
    message = " ".join(str(message).split("\n")).strip()
    while message.startswith("automix: "):
        message = message[len("automix: "):]
    print(f"automix: error: {message}", file=sys.stderr)


def _tolerant_streams() -> None:
    """Paths that are not UTF-8 (bytes a file system allows) print as the bytes they are on
    stdout, and escaped on stderr, instead of raising UnicodeEncodeError."""
    for stream, errors in ((sys.stdout, "surrogateescape"), (sys.stderr, "backslashreplace")):
        try:
            if getattr(stream, "errors", None) == "strict":
                stream.reconfigure(errors=errors)
        except (AttributeError, ValueError, OSError):
            pass


def main(argv: list[str] | None = None) -> int:
    import signal
    import threading

    from .outdir import os_error_text

    _tolerant_streams()
    old_term = None
    if threading.current_thread() is threading.main_thread():
        old_term = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        argv = sys.argv[1:] if argv is None else list(argv)
        if argv and argv[0] in SUBCOMMANDS:
            args = build_parser().parse_args(argv)
        else:
            args = build_mix_parser().parse_args(argv)
        return args.func(args)
    except AutomixError as exc:
        _error(str(exc))
        return 2
    except Terminated:
        print("automix: terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("automix: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # stdout piped into head & co. and closed: nothing more to say
        return 1
    except OSError as exc:  # the operating system refused something (not the user's data)
        _error(os_error_text(exc))
        return 2
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)


def _open_standard_fds() -> None:
    """A closed stdin, stdout or stderr (``>&-``) becomes /dev/null, so a file automix opens
    never gets descriptor 1 or 2 (where a stray write would land in it); ``sys.stdout`` stays
    None, so ``analyze`` can say it has nowhere to print."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)


def _flush(stream) -> bool:
    try:
        if stream is not None:
            stream.flush()
        return True
    except (OSError, ValueError):
        return False


def run() -> None:
    """The console script: :func:`main`, then an immediate exit.  Every output is written,
    closed and renamed into place by then (the output folder's cleanup runs inside
    :func:`main`, on every way out); the interpreter's teardown (torch, numba, thread pools)
    would add ~0.9 s that the user waits for and nothing else."""
    try:
        _open_standard_fds()
        code = main()
        if not _flush(sys.stdout):  # e.g. > /dev/full, or a pipe closed early
            if code == 0:
                print("automix: error: cannot write to standard output", file=sys.stderr)
                code = 2
    except KeyboardInterrupt:  # Ctrl-C before main's own handler was reached
        print("automix: interrupted", file=sys.stderr)
        code = 130
    _flush(sys.stderr)
    os._exit(code)


if __name__ == "__main__":
    run()
