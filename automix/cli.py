"""Command line.

    automix --stems DIR --reference REF [-o OUT]      mix and master stems to a reference
    automix master --input MIX --reference REF        master a finished mix
    automix render --stems DIR --settings S.json      apply (possibly edited) settings
    automix analyze FILE [--json]                     loudness, peaks, tone, width

Every user error is one line on stderr and exit code 2; nothing the user gave is overwritten.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from .errors import AutomixError

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


def prepare_output_dir(out: Path, inputs: list[Path], force: bool, names: list[str]) -> Path:
    """Check the output folder: not an input folder, and no earlier results unless ``force``."""
    out = out.resolve()
    for src in inputs:
        src = src.resolve()
        folder = src if src.is_dir() else src.parent
        if out == folder or folder in out.parents and src.is_dir():
            raise AutomixError(f"{out}: the output folder is an input folder; choose another -o")
    if out.exists() and not out.is_dir():
        raise AutomixError(f"{out}: exists and is not a folder")
    if out.exists() and any(out.iterdir()) and not force:
        existing = [n for n in names if (out / n).exists()] or ["other files"]
        raise AutomixError(f"{out}: the output folder exists ({', '.join(existing)}); "
                           "use --force to replace automix's files in it")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _bit_depth(value: str):
    if value == "float":
        return "float"
    if value in ("16", "24"):
        return int(value)
    raise argparse.ArgumentTypeError("choose 16, 24 or float")


def cmd_render(args) -> int:
    from .audio import write_audio
    from .render import render_settings
    from .settings import load_settings

    settings = load_settings(args.settings)
    stems = Path(args.stems)
    if not stems.is_dir():
        raise AutomixError(f"{stems}: no such folder")
    out = prepare_output_dir(Path(args.output), [stems], args.force, ["mix.wav", "master.wav"])
    mix, master = render_settings(settings, stems, progress=Progress("rendering"))
    sr = settings["sample_rate"]
    write_audio(out / "mix.wav", mix, sr, args.bit_depth)
    write_audio(out / "master.wav", master, sr, args.bit_depth)
    print(f"wrote {out / 'mix.wav'} and {out / 'master.wav'}")
    return 0


OUTPUT_NAMES = ["mix.wav", "master.wav", "settings.json", "report.png"]


def _amount(value: str) -> float:
    v = float(value)
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"{value}: amounts go from 0 to 1")
    return v


def _ceiling(value: str) -> float:
    v = float(value)
    if not -30.0 <= v <= 0.0:
        raise argparse.ArgumentTypeError(f"{value}: the ceiling goes from -30 to 0 dBTP")
    return v


def _target(value: str) -> float:
    v = float(value)
    if not -60.0 <= v <= 0.0:
        raise argparse.ArgumentTypeError(f"{value}: target loudness goes from -60 to 0 LUFS")
    return v


def _add_matching_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--reference", required=True, help="the reference track (a finished song)")
    p.add_argument("-o", "--output", default="automix-out", help="output folder (default: %(default)s)")
    p.add_argument("--force", action="store_true", help="replace automix's files in an existing folder")
    p.add_argument("--target-lufs", type=_target, default=None,
                   help="integrated loudness of the master instead of the reference's (e.g. -14)")
    p.add_argument("--ceiling", type=_ceiling, default=-1.0, help="true-peak ceiling, dBTP (default -1)")
    for aspect in ("tone", "width", "dynamics", "loudness"):
        p.add_argument(f"--{aspect}", type=_amount, default=1.0,
                       help=f"how far the master moves toward the reference's {aspect}, 0..1 (default 1)")
    p.add_argument("--bit-depth", type=_bit_depth, default=24, help="16, 24 (default) or float")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where the refinement runs (default: auto = cuda if available)")


def _steps(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"{n}: must be 0 or more")
    return n


def _device(name: str) -> str:
    import torch
    if name == "cuda" and not torch.cuda.is_available():
        raise AutomixError("--device cuda: no CUDA device is available (use --device cpu)")
    return "cuda" if name == "auto" and torch.cuda.is_available() else ("cpu" if name == "auto" else name)


def _amounts(args):
    from .api import Amounts
    return Amounts(tone=args.tone, width=args.width, dynamics=args.dynamics, loudness=args.loudness)


class _Writer:
    """Writes the WAVs in the background as soon as the API hands them over (``on_audio``),
    while it analyses the master, then settings.json and report.png."""

    def __init__(self, out: Path, bit_depth):
        self.out, self.bit_depth, self.jobs = out, bit_depth, []

    def on_audio(self, name: str, audio, sample_rate: int) -> None:
        from . import background
        from .audio import write_audio

        self.jobs.append(background.submit(write_audio, self.out / f"{name}.wav", audio,
                                           sample_rate, self.bit_depth))

    def run(self, make_result) -> None:
        """``make_result(on_audio)`` (the API call), then every output written and reported."""
        try:
            result = make_result(self.on_audio)
        except BaseException:
            for job in self.jobs:  # a failed run leaves no half-written temp files behind
                job.exception()
            raise
        from . import background
        from .report import summary_text, write_report
        from .settings import save_settings

        self.jobs.append(background.submit(write_report, self.out / "report.png", result.settings))
        save_settings(self.out / "settings.json", result.settings)
        for job in self.jobs:
            job.result()
        for note in result.notes:
            print(f"note: {note}", file=sys.stderr)
        print(summary_text(result.settings["analysis"]))
        print(f"wrote {', '.join(n for n in OUTPUT_NAMES if (self.out / n).exists())} to {self.out}")


def _import_report_in_background() -> None:
    """matplotlib takes ~1 s to import; done while the audio work (mostly GIL-free kernels)
    runs, the report is ready to draw when the master is."""
    import importlib

    from . import background
    background.submit(importlib.import_module, "automix.report")


def cmd_mix(args) -> int:
    from .api import mix

    stems = Path(args.stems)
    out = prepare_output_dir(Path(args.output), [stems, Path(args.reference)], args.force, OUTPUT_NAMES)
    progress = Progress("automix")
    _import_report_in_background()
    _Writer(out, args.bit_depth).run(lambda on_audio: mix(
        stems, args.reference, target_lufs=args.target_lufs, ceiling=args.ceiling,
        amounts=_amounts(args), refine_steps=args.refine_steps, device=_device(args.device),
        model=args.model, progress=progress.note, on_audio=on_audio))
    return 0


def cmd_master(args) -> int:
    from .api import master

    mix_path = Path(args.input)
    out = prepare_output_dir(Path(args.output), [mix_path, Path(args.reference)], args.force,
                             OUTPUT_NAMES)
    progress = Progress("automix master")
    _import_report_in_background()
    _Writer(out, args.bit_depth).run(lambda on_audio: master(
        mix_path, args.reference, target_lufs=args.target_lufs, ceiling=args.ceiling,
        amounts=_amounts(args), device=_device(args.device), progress=progress.note,
        on_audio=on_audio))
    return 0


def cmd_analyze(args) -> int:
    import json

    from .analysis import analyze, format_analysis
    from .audio import read_audio

    audio, sr = read_audio(args.file)
    result = analyze(audio, sr)
    print(json.dumps(result, indent=2) if args.json else format_analysis(result))
    return 0


def build_mix_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="automix", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Mix and master a folder of stems to a reference track.",
        epilog="other commands: automix master | render | analyze  (automix COMMAND --help)")
    p.add_argument("--stems", required=True, help="folder of stems (every audio file is a stem)")
    _add_matching_options(p)
    p.add_argument("--refine-steps", type=_steps, default=300,
                   help="gradient steps of each refinement fit (default 300; 0: the network's "
                        "settings as they are)")
    model = p.add_mutually_exclusive_group()
    model.add_argument("--model", default="default", metavar="PATH",
                       help="checkpoint of the parameter predictor (default: the shipped one)")
    model.add_argument("--no-model", dest="model", action="store_const", const=None,
                       help="no network: refine from a heuristic start")
    p.set_defaults(func=cmd_mix)
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="automix", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("master", help="master a finished mix to a reference")
    m.add_argument("--input", required=True, help="the mix to master")
    _add_matching_options(m)
    m.set_defaults(func=cmd_master)
    a = sub.add_parser("analyze", help="loudness, true peak, tonal balance, width of a file")
    a.add_argument("file")
    a.add_argument("--json", action="store_true", help="print JSON")
    a.set_defaults(func=cmd_analyze)
    r = sub.add_parser("render", help="render stems with a settings.json (mix.wav and master.wav)")
    r.add_argument("--stems", required=True, help="folder holding the stems named in the settings")
    r.add_argument("--settings", required=True, help="settings.json (schema v1)")
    r.add_argument("-o", "--output", default="automix-render", help="output folder")
    r.add_argument("--force", action="store_true", help="replace results in an existing folder")
    r.add_argument("--bit-depth", type=_bit_depth, default=24, help="16, 24 (default) or float")
    r.set_defaults(func=cmd_render)
    return parser


SUBCOMMANDS = ("master", "render", "analyze")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in SUBCOMMANDS:
        args = build_parser().parse_args(argv)
    else:
        args = build_mix_parser().parse_args(argv)
    try:
        return args.func(args)
    except AutomixError as exc:
        print(f"automix: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("automix: interrupted", file=sys.stderr)
        return 130


def run() -> None:
    """The console script: :func:`main`, then an immediate exit.  Every output is written,
    closed and renamed into place by then; the interpreter's teardown (torch, numba, thread
    pools) would add ~0.9 s that the user waits for and nothing else."""
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
