"""Delivery presets: where a master goes, the loudness and true-peak ceiling it is made for,
the codecs it will meet, and what that platform's loudness normalisation does to it.

The figures and their sources are in docs/delivery.md (compiled 2026-12-06 from the services'
published help pages and the standards; services change them, so the docs give the date).
``normalisation`` models playback with normalisation on, as each service describes it:

* ``"both"``: turned down to the target, and up to it only as far as the true peak allows
  (the gain never takes the peak over ``up_peak_limit``); Spotify's default mode, Apple's
  Sound Check;
* ``"down"``: only turned down (a quiet master stays quiet); YouTube, TIDAL, Amazon Music;
* ``"programme"``: normalised to the target both ways (broadcast loudness normalisation: the
  broadcaster's own limiter then keeps the peaks at its ceiling);
* ``None``: played as it is (CD, a club's DJ system).
"""
from __future__ import annotations

from dataclasses import dataclass

from .errors import AutomixError


@dataclass(frozen=True)
class Platform:
    name: str
    lufs: float | None          # integrated loudness to master to (None: the reference's)
    ceiling_dbtp: float         # true-peak ceiling of the master
    codecs: tuple[str, ...]     # lossy codecs the listener meets (those libsndfile can run)
    normalisation: str | None   # "both" | "down" | "programme" | None (see the module doc)
    play_lufs: float | None     # the level the service plays at (normalisation target)
    up_peak_limit: float = -1.0  # "both": positive gain stops where the peak would pass this
    bit_depth: int | str = 24
    what: str = ""


PLATFORMS: dict[str, Platform] = {p.name: p for p in (
    Platform("spotify", -14.0, -1.0, ("vorbis", "mp3"), "both", -14.0,
             what="Spotify: normalised to -14 LUFS (default); -1 dBTP, Ogg Vorbis / AAC"),
    Platform("apple", -16.0, -1.0, ("mp3",), "both", -16.0,
             what="Apple Music Sound Check -16 LUFS; -1 dBTP (Apple Digital Masters), AAC "
                  "(MP3 128k stands in: no AAC encoder here)"),
    Platform("youtube", -14.0, -1.0, ("opus", "mp3"), "down", -14.0,
             what="YouTube: turned down to -14 LUFS, never up; Opus / AAC"),
    Platform("tidal", -14.0, -1.0, ("mp3",), "down", -14.0,
             what="TIDAL: normalised to -14 LUFS; lossless tiers and AAC"),
    Platform("amazon", -14.0, -2.0, ("mp3", "opus"), "down", -14.0,
             what="Amazon Music: -14 LUFS, -2 dBTP recommended"),
    Platform("cd", None, -0.3, (), None, None, bit_depth=16,
             what="CD: no normalisation; loudness as the reference, -0.3 dBTP, 16-bit 44.1 kHz"),
    Platform("broadcast", -23.0, -1.0, ("mp3",), "programme", -23.0,
             what="EBU R 128: -23 LUFS, max -1 dBTP"),
    Platform("club", -8.0, -0.3, (), None, None,
             what="club / DJ: no normalisation, loud (-8 LUFS), -0.3 dBTP, lossless"),
)}


def platform(name: str) -> Platform:
    """The preset called ``name``; an unknown name is a one-line error listing the choices."""
    p = PLATFORMS.get(str(name).strip().lower())
    if p is None:
        raise AutomixError(f"--platform {name}: no such platform; choose from "
                           f"{', '.join(PLATFORMS)}")
    return p


def normalised(p: Platform, integrated_lufs: float, true_peak_dbtp: float) -> dict:
    """What ``p``'s playback normalisation does to a file of this loudness and true peak:
    the gain it applies (dB), the loudness and the true peak it then plays at."""
    if p.normalisation is None or integrated_lufs <= -70.0:
        gain = 0.0
    else:
        gain = p.play_lufs - integrated_lufs
        if gain > 0 and p.normalisation == "down":
            gain = 0.0
        elif gain > 0 and p.normalisation == "both":
            gain = max(0.0, min(gain, p.up_peak_limit - true_peak_dbtp))
    return {"gain_db": gain, "plays_at_lufs": integrated_lufs + gain,
            "peak_dbtp": true_peak_dbtp + gain}


def reference_notes(p: Platform, reference: dict, target_lufs_given: bool,
                    ceiling_given: bool) -> list[str]:
    """Notes where the reference (its analysis) contradicts the preset ``p``, or where an
    explicit --target-lufs/--ceiling overrides it."""
    notes = []
    if target_lufs_given:
        notes.append(f"--target-lufs overrides the {p.name} preset's loudness")
    if ceiling_given:
        notes.append(f"--ceiling overrides the {p.name} preset's ceiling")
    ref_lufs, ref_tp = reference.get("integrated_lufs"), reference.get("true_peak_dbtp")
    if p.lufs is not None and ref_lufs is not None and abs(ref_lufs - p.lufs) > 3.0:
        notes.append(f"the reference reads {ref_lufs:.1f} LUFS but the {p.name} preset masters "
                     f"to {p.lufs:.1f} LUFS: tone, width and dynamics follow the reference, the "
                     "loudness follows the preset")
    if ref_tp is not None and ref_tp > p.ceiling_dbtp + 0.5:
        notes.append(f"the reference peaks at {ref_tp:+.1f} dBTP, over the {p.name} ceiling "
                     f"{p.ceiling_dbtp:+.1f} dBTP: the master keeps to the ceiling")
    return notes


DEFAULT_CEILING = -1.0


@dataclass
class Delivery:
    """A run's delivery options with the preset applied: explicit options win."""
    platform: Platform | None
    target_lufs: float | None
    ceiling: float
    bit_depth: int | str
    codecs: tuple[str, ...]
    target_given: bool
    ceiling_given: bool

    def notes(self, reference: dict | None) -> list[str]:
        if self.platform is None:
            return []
        return reference_notes(self.platform, reference or {}, self.target_given,
                               self.ceiling_given)


def resolve(platform_name: str | None, target_lufs: float | None, ceiling: float | None,
            bit_depth=None, codecs: str | None = None) -> Delivery:
    """``--platform`` with ``--target-lufs``, ``--ceiling``, ``--bit-depth``, ``--codecs``
    (None: not given).  Without a preset: the reference's loudness, -1 dBTP, 24-bit and the
    default codecs."""
    from .codecs import DEFAULT_CODECS, parse_codecs

    p = platform(platform_name) if platform_name else None
    lufs = target_lufs if target_lufs is not None else (p.lufs if p else None)
    ceil = ceiling if ceiling is not None else (p.ceiling_dbtp if p else DEFAULT_CEILING)
    depth = bit_depth if bit_depth is not None else (p.bit_depth if p else 24)
    if codecs is not None:
        chosen = parse_codecs(codecs)
    else:
        chosen = tuple(p.codecs) if p else DEFAULT_CODECS
    return Delivery(p, lufs, float(ceil), depth, chosen, p is not None and target_lufs is not None,
                    p is not None and ceiling is not None)
