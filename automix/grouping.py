"""Group buses for the main job: which stems go into which group (settings.json v2 ``groups``).

How engineers organise a mix: drums, bass, vocals and the rest of the music each on a group
bus.  A user who has made groups (``stems/drums/kick.wav`` ...) gets those: one group per
subfolder.  Otherwise stems are grouped by name (``kick``, ``snare``, ``vox``, ``bass`` ...) and,
for names that say nothing, by content (a stem with nearly all of its power under 250 Hz is
bass).  Groups are formed only when at least two would have members (one group of everything
is the master bus again).  The group strips start neutral (no EQ, no compressor, 0 dB): the mix
is the flat console's; the groups are there to print, master and refine per group.
"""
from __future__ import annotations

import re

import numpy as np

GROUP_MODES = ("auto", "none")

_BY_NAME = (  # checked in order: "bass drum" is drums, "backing vocal" vocals
    ("drums", re.compile(r"kick|snare|hat|hh|tom|cymbal|overhead|\boh\b|ride|crash|perc|drum|"
                         r"clap|shaker|tamb|room|bd\b|sd\b", re.I)),
    ("vocals", re.compile(r"vox|vocal|voice|sing|choir|harmony|adlib|\bbv|backing|lead ?v", re.I)),
    ("bass", re.compile(r"bass|sub\b|808", re.I)),
)
LOW_SHARE_BASS = 0.85   # share of a stem's power under LOW_HZ for it to be bass by content
LOW_HZ = 250.0


def group_of_name(name: str) -> str | None:
    for group, pattern in _BY_NAME:
        if pattern.search(name):
            return group
    return None


def low_share(spectra, sample_rate: int) -> float:
    """Share of a stem's power (mid + side) below LOW_HZ, from its Welch spectra."""
    power = np.asarray(spectra.mid) + np.asarray(spectra.side)
    f = np.arange(len(power)) * sample_rate / ((len(power) - 1) * 2)
    total = power.sum()
    return float(power[f < LOW_HZ].sum() / total) if total > 0 else 0.0


def form_groups(names: list[str], mode: str = "auto", spectra=None,
                sample_rate: int | None = None, taken=()) -> list[dict]:
    """``groups`` entries (settings v2) for tracks ``names`` (subfolder tracks are named
    ``folder/stem``); ``spectra``: track name -> :class:`~automix.match.Spectra` where known
    (for content); ``taken``: names a group must not take (tracks, buses)."""
    if mode == "none":
        return []
    members: dict[str, list[str]] = {}
    if any("/" in n for n in names):  # the user's own groups: one per subfolder
        for n in names:
            if "/" in n:
                members.setdefault(n.split("/", 1)[0], []).append(n)
    else:
        for n in names:
            group = group_of_name(n)
            if group is None and spectra and n in spectra and low_share(spectra[n], sample_rate) \
                    >= LOW_SHARE_BASS:
                group = "bass"
            members.setdefault(group or "music", []).append(n)
        if len(members) < 2:
            return []
    taken = set(taken) | set(names)
    groups = []
    for group, tracks in members.items():
        name = group if group not in taken else f"{group} group"
        while name in taken:
            name += "+"
        taken.add(name)
        groups.append({"name": name, "members": tracks})
    return groups
