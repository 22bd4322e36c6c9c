"""The design reference in docs/ against the code: every field the settings validator accepts is
documented with its default and limits, the examples validate, and every pointer to a doc
resolves (no pointer to a design file outside the repository)."""
from __future__ import annotations

import copy
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from automix import settings as S
from automix.dsp.eq import BAND_TYPES
from automix.errors import AutomixError

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SETTINGS_MD = DOCS / "settings.md"
SKIP_DIRS = {".git", ".venv", "__pycache__", ".pytest_cache", "build", "dist", "cache", "results",
             "outputs", "multirun"}


def _doc() -> str:
    return SETTINGS_MD.read_text()


def _json_blocks(text: str) -> list[str]:
    return re.findall(r"```json\n(.*?)```", text, flags=re.S)


def _minimal() -> dict:
    return {"format": S.FORMAT, "version": S.VERSION, "sample_rate": 44100,
            "tracks": [{"name": "a", "file": "a.wav", "eq": [{"type": "peak", "freq_hz": 100.0,
                                                             "gain_db": 1.0}],
                        "compressor": {"ratio": 2.0}, "deesser": {"threshold_db": -30.0}}],
            "master": {"widener": {"gain_db": -20.0}, "limiter": {"ceiling_dbtp": -1.0},
                       "top_tail": {"fade_out_s": 1.0}},
            "target": {}, "analysis": {},
            "groups": [{"name": "g", "members": ["a"],
                        "automation": {"gain_db": {"points": [{"time_s": 0.0, "gain_db": 0.0}]}}}],
            "buses": [{"name": "b", "processor": {"type": "delay"}}],
            "sends": [{"source": "a", "bus": "b"}],
            "sections": [{"start_s": 0.0, "end_s": 1.0, "label": "A"}]}


def _allowed(place) -> set[str]:
    """The fields the validator accepts at one place, read from its own error message for an
    unknown field there (so a field added to the validator is found here without a list)."""
    s = _minimal()
    place(s)["zz_not_a_field"] = 1
    with pytest.raises(AutomixError) as err:
        S.validate(s, "settings.json")
    found = re.search(r"unknown field 'zz_not_a_field' \(allowed: ([^)]*)\)", str(err.value))
    assert found, str(err.value)
    return set(found.group(1).split(", "))


PLACES = {
    "top level": lambda s: s,
    "track": lambda s: s["tracks"][0],
    "EQ band": lambda s: s["tracks"][0]["eq"][0],
    "compressor": lambda s: s["tracks"][0]["compressor"],
    "de-esser": lambda s: s["tracks"][0]["deesser"],
    "master": lambda s: s["master"],
    "widener": lambda s: s["master"]["widener"],
    "limiter": lambda s: s["master"]["limiter"],
    "top and tail": lambda s: s["master"]["top_tail"],
    "group": lambda s: s["groups"][0],
    "bus": lambda s: s["buses"][0],
    "bus processor": lambda s: s["buses"][0]["processor"],
    "send": lambda s: s["sends"][0],
    "automation": lambda s: s["groups"][0]["automation"],
    "automation lane": lambda s: s["groups"][0]["automation"]["gain_db"],
    "lane point": lambda s: s["groups"][0]["automation"]["gain_db"]["points"][0],
    "section": lambda s: s["sections"][0],
    "target": lambda s: s["target"],
    "analysis": lambda s: s["analysis"],
}


@pytest.mark.parametrize("place", PLACES)
def test_every_accepted_field_is_documented(place):
    doc = _doc()
    fields = _allowed(PLACES[place])
    missing = sorted(f for f in fields if f"`{f}`" not in doc)
    assert not missing, f"docs/settings.md does not describe {place} fields {missing}"


def test_limits_band_types_and_defaults_are_documented():
    doc = _doc()
    lines = doc.splitlines()

    def line_with(*parts):
        return any(all(p in line for p in parts) for line in lines)

    for name, (lo, hi) in S.LIMITS.items():
        if hi == "nyquist":
            assert line_with(f"`{name}`", f"{lo:g} Hz", "sample_rate / 2"), name
        else:
            assert line_with(f"`{name}`", f"{lo:g}..{hi:g}"), f"limit {name} [{lo:g}, {hi:g}]"
    for kind in BAND_TYPES:
        assert line_with("`type`", f"`{kind}`"), kind
    for defaults in (S.COMPRESSOR_DEFAULTS, S.LIMITER_DEFAULTS, S.WIDENER_DEFAULTS,
                     S.TRACK_DEFAULTS, S.MASTER_DEFAULTS):
        for key, value in defaults.items():
            assert line_with(f"| `{key}` |", f"`{json.dumps(value)}`"), f"default of {key}"


def _numbers(obj, key=""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _numbers(v, k)
    elif isinstance(obj, list):
        for v in obj:
            yield from _numbers(v, key)
    elif isinstance(obj, float):
        yield key, obj


def _decimals(key: str) -> int | None:
    """The number convention of docs/settings.md: 0.01 dB, 0.1 Hz, 0.01 Q, 0.1 ms, 0.001 pan."""
    if key.endswith(("_db", "_dbtp")) or key == "lufs":
        return 2
    if key.endswith("_hz"):
        return 1
    if key.endswith("_ms"):
        return 1
    return {"q": 2, "pan": 3}.get(key)


def test_settings_examples_validate_and_follow_the_number_convention():
    blocks = [json.loads(b) for b in _json_blocks(_doc())]
    examples = [b for b in blocks if "format" in b]
    assert len(examples) >= 2
    for ex in examples:
        out = S.validate(copy.deepcopy(ex), "docs/settings.md")
        assert len(out["tracks"]) == len(ex["tracks"])
        for key, value in _numbers(ex):
            d = _decimals(key)
            if d is not None:
                assert round(value, d) == value, f"{key} = {value} in docs/settings.md"


def _repo_files() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                             cwd=ROOT, capture_output=True, text=True, check=True, timeout=30)
        return [ROOT / p for p in out.stdout.splitlines() if (ROOT / p).is_file()]
    except (OSError, subprocess.SubprocessError):
        files = []
        for folder, dirs, names in os.walk(ROOT):
            dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.endswith(".egg-info")]
            files += [Path(folder) / n for n in names]
        return files


def _texts():
    for path in _repo_files():
        if path.stat().st_size > 2_000_000:
            continue
        data = path.read_bytes()
        if b"\0" in data:
            continue
        try:
            yield path, data.decode("utf-8")
        except UnicodeDecodeError:
            continue


def test_no_pointer_to_a_design_file_outside_the_repository():
    needle = "DESIGN" + ".md"  # not written out, so this file does not match itself
    hits = [str(p.relative_to(ROOT)) for p, text in _texts() if needle in text]
    assert not hits, f"{needle} is not in the repository (see docs/): mentioned in {hits}"


def _slug(heading: str) -> str:
    """GitHub's anchor for a markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(md: Path) -> set[str]:
    return {_slug(m) for m in re.findall(r"^#+ (.*)$", md.read_text(), flags=re.M)}


def test_pointers_to_docs_resolve():
    bad = []
    for path, text in _texts():
        rel = path.relative_to(ROOT)
        if path.suffix == ".md":
            for target in re.findall(r"\]\(([^)\s]+)\)", text):
                if "://" in target or target.startswith(("#", "mailto:")):
                    continue
                file, _, anchor = target.partition("#")
                dest = (path.parent / file).resolve()
                if not dest.exists():
                    bad.append(f"{rel}: {target}")
                elif anchor and dest.suffix == ".md" and dest.parent == DOCS \
                        and anchor not in _anchors(dest):
                    bad.append(f"{rel}: {target} (no such heading)")
        # plain-text mentions in code and docs
        for name in re.findall(r"docs/([\w.-]+\.md)\b", text):
            if not (DOCS / name).is_file():
                bad.append(f"{rel}: docs/{name}")
    assert not bad, bad
