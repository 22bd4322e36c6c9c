"""The codec-safe ceiling loop (automix/codec_safe.py), whole-master rounds against windowed
rounds, side by side in one run on the same inputs: wall time (ratio), seconds of audio
encoded, and whether the windowed measure finds the same worst decoded true peak as coding the
whole final master (goal: within 0.1 dB per codec).

    .venv/bin/python benchmarks/codec_loop.py [--pairs 1] [--codecs mp3,vorbis] [--json F]

Cases:
* ``synthetic``: a 3-minute loud master built to overshoot: quiet verses (-12 dB) and loud
  choruses of noise and a 55 Hz kick every 0.5 s, limited to -1 dBTP at -8 LUFS;
* ``example``: the example song (examples/dirty-love, 24 s), the master stage's own inputs
  captured from a full `automix.mix` run (the loop's arguments: pre-limiter signal, master
  settings, limited master, loudness goal), cached in benchmarks/cache/codec_loop/;
* ``real``: 240 s of real music (wesnoth "knolls", orchestral) mastered by `automix master`
  to wesnoth "vengeful", captured the same way.

Both loops start from the same arguments; the first round of each codes the whole master (it
has to find the peaks), so the saving is in the later rounds.  The runs alternate
(full, windowed, full, windowed ...) because this machine's speed drifts within minutes; the
seconds of audio coded are the load-independent measure of the work.

Measured (2026-12-06, 2 loaded cores, load 6-15, so the wall times are noise; mp3 + vorbis,
-1 dBTP; `--json` writes these rows):

=========  ======  ======  ===============================  ==================  ========
case       master  rounds  audio coded full / windowed (s)  work ratio          error
=========  ======  ======  ===============================  ==================  ========
synthetic  180 s   2 (*)   1271 / 1162                      1.09x               0.000 dB
example    24 s    1       96 / 96                          1.00x               0.000 dB
real       240 s   2       1707 / 1601                      1.07x               0.000 dB
=========  ======  ======  ===============================  ==================  ========

(*) at the floor.  The windows read exactly what coding the whole master reads, but the blocks
within 2 dB of the worst decoded peak lie all through a limited master and each window needs
3 s of run-in: windowed rounds are off by default (``automix.codec_safe.WINDOWED``).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CACHE = ROOT / "benchmarks" / "cache" / "codec_loop"
SR = 44100


def synthetic(seconds: float = 180.0):
    from automix.loudness_search import loudness_stage
    from automix.render import apply_limiter
    from automix.settings import MASTER_DEFAULTS, tidy_master

    rng = np.random.default_rng(3)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    kick = np.sin(2 * np.pi * 55 * t) * np.exp(-(t % 0.5) * 12)
    level = np.where((t // 20) % 2 == 1, 1.0, 10 ** (-6 / 20))   # 20 s verses and choruses
    pre = np.ascontiguousarray((0.15 * rng.standard_normal((2, n)) + 0.6 * kick) * level)
    goal, ceiling = -9.0, -1.0
    master = tidy_master(dict(MASTER_DEFAULTS, limiter={"ceiling_dbtp": ceiling,
                                                        "release_ms": 80.0, "lookahead_ms": 5.0}), SR)
    loud = loudness_stage(pre, master["limiter"], goal, SR)
    master = tidy_master(dict(master, gain_db=loud["gain_db"], limiter=loud["limiter"]), SR)
    final = apply_limiter(pre * 10 ** (master["gain_db"] / 20), master["limiter"], SR)
    return pre, master, final, goal, SR, ceiling


def example():
    """The loop's arguments in the example song's mix job (captured once, cached)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / "example.npz"
    if not path.exists():
        import automix

        _capture(path, lambda: automix.mix(ROOT / "examples" / "dirty-love" / "stems",
                                           ROOT / "examples" / "dirty-love" / "reference.flac"))
    return _load(path)


MUSIC = (ROOT / "benchmarks" / "cache" / "pkgs" / "wesnoth-1.16-music" / "usr" / "share" / "games"
         / "wesnoth" / "1.16" / "data" / "core" / "music")


def real():
    """Real music: the first 240 s of wesnoth "knolls" at -6 dB mastered by `automix master` to
    wesnoth "vengeful" (the material of benchmarks/speed_master.py; the Debian package that
    benchmarks/data.py fetches), the loop's arguments captured once."""
    import soundfile as sf

    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / "knolls.npz"
    if not path.exists():
        if not MUSIC.is_dir():
            sys.exit(f"codec_loop: {MUSIC} is missing; run .venv/bin/python benchmarks/data.py")
        knolls, sr = sf.read(MUSIC / "knolls.ogg", always_2d=True)
        sf.write(CACHE / "knolls240.wav", knolls[:240 * sr] * 10 ** (-6 / 20), sr, subtype="PCM_24")
        vengeful, sr = sf.read(MUSIC / "vengeful.ogg", always_2d=True)
        sf.write(CACHE / "vengeful.wav", np.clip(vengeful, -1, 1), sr, subtype="PCM_24")
        _capture(path, lambda: __import__("automix").master(CACHE / "knolls240.wav",
                                                            CACHE / "vengeful.wav"))
    return _load(path)


def _capture(path, run):
    """Run a job inside a codec session with the loop replaced by a recorder of its
    arguments; saved to ``path``."""
    from automix import codec_safe

    captured = {}

    def capture(pre, master, final, goal, sr, ceiling, codecs, windowed=True):
        captured.update(pre=pre, master=master, final=final, goal=goal, sr=sr, ceiling=ceiling)
        return master, final, {"note": None}

    real_make_safe, codec_safe.make_safe = codec_safe.make_safe, capture
    try:
        with codec_safe.configured(("mp3",)):
            run()
    finally:
        codec_safe.make_safe = real_make_safe
    np.savez(path, pre=captured["pre"], final=captured["final"],
             meta=json.dumps({k: captured[k] for k in ("master", "goal", "sr", "ceiling")}))


def _load(path):
    data = np.load(path)
    meta = json.loads(str(data["meta"]))
    return data["pre"], meta["master"], data["final"], meta["goal"], meta["sr"], meta["ceiling"]


def run_case(name, args, codecs, pairs):
    from automix import codec_safe, codecs as codecs_mod

    pre, master, final, goal, sr, ceiling = args
    times = {"full": [], "windowed": []}
    reports = {}
    for _ in range(pairs):
        for mode in ("full", "windowed"):
            t0 = time.perf_counter()
            new, out, report = codec_safe.make_safe(pre, dict(master), final, goal, sr, ceiling,
                                                    codecs, windowed=mode == "windowed")
            times[mode].append(time.perf_counter() - t0)
            reports[mode] = (new, out, report)
    # the windowed loop's final master coded whole: the worst decoded peak it should have found
    _, out_w, rep_w = reports["windowed"]
    whole = codecs_mod.coded_block_peaks(out_w, sr, {c: None for c in codecs})
    check = {c: float(20 * np.log10(np.nanmax(whole[c][0]))) for c in codecs if whole[c]}
    row = {"case": name, "seconds": final.shape[1] / sr, "codecs": list(codecs),
           "full_s": statistics.median(times["full"]),
           "windowed_s": statistics.median(times["windowed"]),
           "rounds": {m: reports[m][2]["rounds"] for m in reports},
           "encoded_s": {m: reports[m][2]["encoded_s"] for m in reports},
           "before": reports["full"][2]["before"],
           "after": {m: reports[m][2]["after"] for m in reports},
           "limiter_after": {m: reports[m][0]["limiter"]["ceiling_dbtp"] for m in reports},
           "windowed_after_coded_whole": check,
           "max_error_db": max(abs(check[c] - rep_w["after"][c]) for c in check)}
    row["ratio"] = row["full_s"] / row["windowed_s"]
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=1)
    ap.add_argument("--codecs", default="mp3,vorbis")
    ap.add_argument("--cases", default="synthetic,example,real")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    from automix.codecs import parse_codecs

    codecs = parse_codecs(args.codecs)
    rows = []
    for name in args.cases.split(","):
        inputs = {"synthetic": synthetic, "example": example, "real": real}[name]()
        row = run_case(name, inputs, codecs, args.pairs)
        rows.append(row)
        print(f"{name}: {row['seconds']:.0f} s master, codecs {','.join(codecs)}")
        print(f"  decoded true peak before the loop: "
              + ", ".join(f"{c} {v:+.2f}" for c, v in row["before"].items()) + " dBTP")
        for mode in ("full", "windowed"):
            print(f"  {mode:>8}: {row[f'{mode}_s']:6.1f} s, {row['rounds'][mode]} rounds, "
                  f"{row['encoded_s'][mode]:7.1f} s of audio coded, after "
                  + ", ".join(f"{c} {v:+.2f}" for c, v in row["after"][mode].items())
                  + f" dBTP, limiter {row['limiter_after'][mode]:+.2f}")
        print(f"  ratio full/windowed: {row['ratio']:.2f}x; the windowed final master coded whole: "
              + ", ".join(f"{c} {v:+.2f}" for c, v in row["windowed_after_coded_whole"].items())
              + f" dBTP (max error {row['max_error_db']:.3f} dB)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
