"""Command line: ``automix render`` (and the other subcommands as they land).

Every user error is one line on stderr and exit code 2; nothing the user gave is overwritten.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .errors import AutomixError


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="automix", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("render", help="render stems with a settings.json (mix.wav and master.wav)")
    r.add_argument("--stems", required=True, help="folder holding the stems named in the settings")
    r.add_argument("--settings", required=True, help="settings.json (schema v1)")
    r.add_argument("-o", "--output", default="automix-render", help="output folder")
    r.add_argument("--force", action="store_true", help="replace results in an existing folder")
    r.add_argument("--bit-depth", type=_bit_depth, default=24, help="16, 24 (default) or float")
    r.set_defaults(func=cmd_render)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except AutomixError as exc:
        print(f"automix: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("automix: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
