#!/usr/bin/env python3
"""Regenerate examples/dirty-love/ from Debian's LMMS demo project shorties/DirtyLove.

Provenance script: not run by CI.  It needs Debian's `lmms` package
(1.2.2+dfsg1-6 in bookworm; `apt-get install lmms`, which pulls in `lmms-common`, the package
that holds the demo projects), plus numpy, soundfile and pyloudnorm (all in the automix venv):

    .venv/bin/python examples/make_example.py

What it does, step by step:

1. Reads the project DirtyLove.mmpz (4-byte big-endian length + zlib-compressed XML).
2. Renders the full song once with `lmms render` (44.1 kHz, 16-bit WAV), and each stem as its
   own fresh `lmms render` of a copy of the project in which every song-level instrument or
   beat/bassline track not in that stem has muted="1" (automation tracks stay on).
   `lmms rendertracks` is not used: in 1.2.2 its tracks come out late with garbage.  lmms
   sometimes crashes on exit after writing a complete file, so a render is retried.
3. Prints how far the solo renders are from adding up to the full render over the stems'
   excerpt.  They do not add up exactly: the project's master channel has a look-ahead limiter
   (non-linear), and the Organic pad is not the same from one render to the next.
4. Cuts the stems' excerpt (STEMS_START .. +STEMS_LENGTH s) from every solo render at the same
   sample positions, applies 10 ms fades, folds a stem whose channels are identical to mono, and
   normalises each stem to STEM_LUFS integrated: the producer's balance is erased, so automix has
   work to do.
5. Cuts the reference from the full render (REF_START .. +REF_LENGTH s, a part of the song the
   stems do not contain) with 10 ms fades, as the producer's limiter left it.
6. Writes stems/*.flac and reference.flac (16-bit FLAC), and copies the Debian copyright file of
   lmms-common beside them (the project is under "Files: *" there: GPL-2+).
"""
import argparse
import copy
import os
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import numpy as np
import pyloudnorm
import soundfile as sf

PROJECT = "/usr/share/lmms/projects/shorties/DirtyLove.mmpz"
COPYRIGHT = "/usr/share/doc/lmms-common/copyright"
OUT = Path(__file__).resolve().parent / "dirty-love"
SR = 44100

# stem name -> indices of the song-level <track> elements that play in it.  Tracks 9 and 10 are
# automation tracks (always on).  Everything routed through mixer channel 1 ("Beat": amplifier,
# CAPS Clip, amplifier) is one stem, so the clipper sees what it sees in the full song.
STEMS = {
    "drums": [0, 1, 2, 8, 11, 12],  # beat/bassline tracks (kick, clap, hats, snares), crash, 2 sfxr
    "bass": [3],                    # TripleOscillator
    "bell_arp": [4],                # TripleOscillator
    "fm": [5],                      # TripleOscillator
    "voice": [6],                   # "Killed Voice", TripleOscillator
    "pad": [7],                     # Organic
}
# track 13 ("Broken") plays only in the last 20 s, outside both excerpts: left muted.
AUTOMATION = {9, 10}
STEMS_START, STEMS_LENGTH = 12.0, 24.0   # bell_arp fades out and the pad comes in here
REF_START, REF_LENGTH = 48.0, 24.0
FADE = 0.010
STEM_LUFS = -23.0


def load_project(path):
    data = open(path, "rb").read()
    if path.endswith(".mmpz"):
        data = zlib.decompress(data[4:])
    return ET.fromstring(data)


def save_project(root, path):
    with open(path, "w", encoding="utf-8") as f:
        f.write('<?xml version="1.0"?>\n<!DOCTYPE lmms-project>\n')
        f.write(ET.tostring(root, encoding="unicode"))


def solo_copy(root, keep):
    r = copy.deepcopy(root)
    for i, t in enumerate(r.find("song/trackcontainer").findall("track")):
        if i not in AUTOMATION:
            t.set("muted", "0" if i in keep else "1")
        t.set("solo", "0")
    return r


def render(mmp, wav, tries=6):
    """Render one project to a 16-bit WAV.  A render counts when lmms exits 0, or when two
    crashed attempts in a row wrote the same number of frames."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    last = None
    for _ in range(tries):
        if os.path.exists(wav):
            os.remove(wav)
        p = subprocess.run(["lmms", "--allowroot", "render", mmp, "-f", "wav", "-s", str(SR),
                            "-o", wav], env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        try:
            frames = sf.info(wav).frames if os.path.exists(wav) else 0
        except RuntimeError:
            frames = 0
        if frames > 0 and (p.returncode == 0 or frames == last):
            return
        last = frames or None
        print(f"  render of {mmp} exited {p.returncode} with {frames} frames, retrying",
              file=sys.stderr)
    raise SystemExit(f"lmms could not render {mmp}")


def read(path, frames):
    x, sr = sf.read(path, dtype="float64", always_2d=True)
    assert sr == SR, sr
    out = np.zeros((frames, 2))
    out[:min(frames, len(x))] = x[:frames]  # lmms stops at the last note of a solo render
    return out


def cut(x, start, length):
    a = int(round(start * SR))
    y = x[a:a + int(round(length * SR))].copy()
    n = int(round(FADE * SR))
    ramp = np.linspace(0.0, 1.0, n)[:, None]
    y[:n] *= ramp
    y[-n:] *= ramp[::-1]
    return y


def main():
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    root = load_project(PROJECT)
    meter = pyloudnorm.Meter(SR)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        save_project(root, tmp / "full.mmp")
        render(str(tmp / "full.mmp"), str(tmp / "full.wav"))
        frames = sf.info(str(tmp / "full.wav")).frames
        full = read(tmp / "full.wav", frames)
        stems = {}
        for name, keep in STEMS.items():
            print(f"rendering {name} ...", file=sys.stderr)
            save_project(solo_copy(root, set(keep)), tmp / f"{name}.mmp")
            render(str(tmp / f"{name}.mmp"), str(tmp / f"{name}.wav"))
            stems[name] = read(tmp / f"{name}.wav", frames)
    residual = full - sum(stems.values())
    a, b = (int(round(t * SR)) for t in (STEMS_START, STEMS_START + STEMS_LENGTH))
    print(f"solo renders vs full render over the stems' excerpt: "
          f"{20 * np.log10(np.std(residual[a:b]) / np.std(full[a:b])):.1f} dB", file=sys.stderr)

    if OUT.exists():
        shutil.rmtree(OUT)
    (OUT / "stems").mkdir(parents=True)
    for name, x in stems.items():
        y = cut(x, STEMS_START, STEMS_LENGTH)
        if np.array_equal(y[:, 0], y[:, 1]):
            y = y[:, :1]
        y *= 10 ** ((STEM_LUFS - meter.integrated_loudness(y)) / 20)
        sf.write(OUT / "stems" / f"{name}.flac", y, SR, subtype="PCM_16")
    sf.write(OUT / "reference.flac", cut(full, REF_START, REF_LENGTH), SR, subtype="PCM_16")
    shutil.copy(COPYRIGHT, OUT / "COPYRIGHT.lmms-common")
    size = sum(p.stat().st_size for p in OUT.rglob("*.flac"))
    print(f"wrote {OUT} ({size / 1e6:.1f} MB of FLAC)", file=sys.stderr)


if __name__ == "__main__":
    main()
