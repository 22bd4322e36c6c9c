"""The public API: ``automix.mix`` (stems + reference -> mix, master, settings) and
``automix.master`` (mix + reference -> master, settings).

Data flow: inputs checked -> analysis -> starting point (heuristic) -> refinement on spectra
(:mod:`automix.match`) -> nonlinear stages set from measurements -> final render by the render
executor (:func:`automix.render.render_settings`, exactly what ``automix render`` runs).
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from . import analysis, background

from .audio import (BlockReader, audio_info, check_finite, is_audio_file, pad_to_length, peak,
                    read_audio, resample, to_stereo)
from .errors import AutomixError
from .options import (check_ceiling, check_fade, check_lead, check_lead_margin,
                      check_refine_steps, check_space, check_target_lufs)
from .mastering import (PROBE_MIN_S, PROBE_PART_S, PROBE_PARTS,  # noqa: F401 (the API's names)
                        _compress, _excerpt_starts, _join_faded, _master_notes, choose_compressor,
                        master_stage, measure_mix, probe_excerpts)
from .match import FADER_RANGE_DB, Spectra, Target, fit_mix
from .params import TRACK_SPECS, defaults
from .render import BLOCK, TrackStrip, bus_tail_samples, open_sources, render_graph
from .start import CENTRE_NAMES, heuristic_compressor, heuristic_start, starting_point  # noqa: F401
from .settings import (FORMAT, MASTER_DEFAULTS, VERSION, compressor_from_params,
                       master_from_params, rounded, tidy_track, track_from_params,
                       validate)

MIN_REFERENCE_S = 3.0
REFERENCE_MAX_S = 420.0     # longer references are measured on excerpts (bounded memory)
REFERENCE_PARTS, REFERENCE_PART_S = 14, 30.0
SILENT_PEAK = 1e-4          # -80 dBFS: a reference under this holds nothing to match
# Refinement after a network moves faders at most this far (dB; without one: FADER_RANGE_DB).
# On the human-target benchmark (benchmarks/human.py, 5 held-out producers' songs) the spectral
# fit's fader moves took the network's balance away from the producers' (stem balance error
# 2.69 -> 3.57 dB, log-mel 2.32 -> 2.54); within 3 / 1 dB: 2.93 / 2.62 dB, log-mel 2.34 / 2.37,
# with the known-target cases as good as with 12 dB (benchmarks/eval_model.py --known: 1.63).
MODEL_FADER_RANGE_DB = 1.0
MIX_LOUDNESS_LUFS = -20.0     # the mix bus is set here (or lower, for 1 dB of sample-peak headroom)


@dataclass
class Amounts:
    """How far to move toward the reference, per aspect (0 = leave as is, 1 = match)."""
    tone: float = 1.0
    width: float = 1.0
    dynamics: float = 1.0
    loudness: float = 1.0

    def __post_init__(self):
        for k, v in vars(self).items():
            if not 0.0 <= v <= 1.0:
                raise AutomixError(f"--{k} {v}: amounts go from 0 to 1")


def check_options(target_lufs=None, ceiling=-1.0, refine_steps=0, device="cpu") -> str:
    """The options of :func:`mix` and :func:`master` checked as the command line checks them
    (:mod:`automix.options`); returns the torch device to use."""
    check_target_lufs(target_lufs)
    check_ceiling(ceiling)
    check_refine_steps(refine_steps)
    name = str(device)
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return name
    if re.fullmatch(r"cuda(:\d+)?", name):
        index = int(name.split(":")[1]) if ":" in name else 0
        if not torch.cuda.is_available() or index >= torch.cuda.device_count():
            raise AutomixError(f"--device {name}: no such CUDA device is available "
                               "(use --device cpu)")
        return name
    raise AutomixError(f"--device {name}: choose cpu, cuda or auto")


@dataclass
class Result:
    """What a run produced: audio (float64, (2, samples)), settings in physical units, notes;
    ``stems``: the printed stems (``export_stems``): each top-level node's own contribution to
    the mix bus (tracks outside groups, groups, bus returns), name -> (2, samples); their sum
    is ``mix``."""
    settings: dict
    master: np.ndarray
    mix: np.ndarray | None
    sample_rate: int
    notes: list[str] = field(default_factory=list)
    stems: dict | None = None
    # the report's loudness-over-time plot: the reference (at the project rate) and the lead
    # ridden (automix.timeline), when the job planned the song's time
    timeline: dict | None = None
    # the mix job's checks on its stems (automix.qc.stem_checks_audio rows), measured on the
    # stems in memory; None: not a mix job
    stem_checks: list | None = None

    @property
    def analysis(self) -> dict:
        """The measurements (reference, mix, master: :func:`automix.analysis.analyze`) beside
        the recipe; settings.json carries a copy as its informational ``analysis``."""
        return self.settings.get("analysis", {})


# --- inputs ------------------------------------------------------------------------------------

def find_stems(folder) -> tuple[list[Path], list[str]]:
    """The audio files in ``folder`` and in its subfolders one level down (a user's groups:
    ``stems/drums/kick.wav``), sorted; notes for files that are not audio."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AutomixError(f"{folder}: no such folder")
    visible = [p for p in folder.iterdir() if not p.name.startswith(".")]
    files = sorted([p for p in visible if p.is_file()]
                   + [q for d in sorted(p for p in visible if p.is_dir()) for q in d.iterdir()
                      if q.is_file() and not q.name.startswith(".")])
    stems = [p for p in files if is_audio_file(p)]
    notes = [f"ignored {p.relative_to(folder).as_posix()} (not an audio file)" for p in files
             if not is_audio_file(p)]
    if not files:
        raise AutomixError(f"{folder}: the stems folder is empty")
    if not stems:
        raise AutomixError(f"{folder}: no audio files among {len(files)} files "
                           f"(expected .wav, .flac, .ogg, .aiff, .mp3)")
    return stems, notes


def load_reference(path, sample_rate: int | None = None) -> tuple[np.ndarray, int, list[str]]:
    info = audio_info(path)
    notes = []
    if info.seconds > REFERENCE_MAX_S:
        audio, sr = read_long_reference(path, info), info.sample_rate
        notes.append(f"the reference is {info.seconds / 60:.1f} min long: it is measured on "
                     f"{REFERENCE_PARTS} evenly spaced excerpts of {REFERENCE_PART_S:.0f} s")
    else:
        audio, sr = read_audio(path)
    if audio.shape[1] < MIN_REFERENCE_S * sr:
        raise AutomixError(f"{path}: the reference is {audio.shape[1] / sr:.1f} s long; "
                           f"it needs at least {MIN_REFERENCE_S:.0f} s")
    if peak(audio) < SILENT_PEAK:
        raise AutomixError(f"{path}: the reference is silent (peak under "
                           f"{20 * np.log10(SILENT_PEAK):.0f} dBFS): there is nothing to match")
    if audio.shape[0] == 1:
        notes.append(f"the reference {Path(path).name} is mono: width and side tone are not matched")
    elif np.array_equal(audio[0], audio[1]):
        notes.append(f"the reference {Path(path).name} is mono in two channels (left = right): "
                     "width and side tone are not matched")
    if sample_rate and sr != sample_rate:
        audio = resample(audio, sr, sample_rate)
        sr = sample_rate
    return audio, sr, notes


def _project_rate(infos) -> tuple[int, list[str]]:
    rates = [i.sample_rate for i in infos]
    sr = max(set(rates), key=lambda r: (rates.count(r), r))
    notes = [f"{i.path.name}: {i.sample_rate} Hz, resampled to {sr} Hz" for i in infos
             if i.sample_rate != sr]
    lengths = {round(i.seconds, 2) for i in infos}
    if len(lengths) > 1:
        notes.append(f"stems differ in length ({min(lengths):.2f}-{max(lengths):.2f} s); "
                     "shorter ones are padded with silence")
    return sr, notes


# --- stages: automix/start.py (starting point), automix/match.py (fits), automix/mastering.py
# (the master stage), automix/loudness_search.py (gain and limiter) ----------------------------

def read_long_reference(path, info) -> np.ndarray:
    """A reference longer than REFERENCE_MAX_S read as evenly spaced excerpts
    (REFERENCE_PARTS x REFERENCE_PART_S) straight from the file: its long-term statistics at a
    bounded memory cost (a 30-min file would take ~4 GB to analyse whole)."""
    run = int(REFERENCE_PART_S * info.sample_rate)
    pieces = []
    try:
        with sf.SoundFile(str(info.path)) as f:
            for start in _excerpt_starts(info.frames, run, REFERENCE_PARTS):
                f.seek(int(start))
                piece = f.read(run, dtype="float32", always_2d=True).T
                pieces.append(pad_to_length(np.ascontiguousarray(piece), run))
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AutomixError(f"{info.path}: cannot decode audio ({exc})") from None
    audio = _join_faded(pieces, info.sample_rate)
    check_finite(audio, info.path)
    return audio


def _reference_features(path, sr: int) -> tuple[dict, list[str], np.ndarray | None]:
    """The reference read, checked and analysed at ``sr`` (a background job), its notes, and
    its short-term loudness for the report's loudness-over-time plot (None for a reference
    long enough to be read as excerpts: that curve would not be the song's)."""
    audio, _, notes = load_reference(path, sr)
    whole = audio_info(path).seconds <= REFERENCE_MAX_S
    return (analysis.analyze(audio, sr), notes,
            analysis.short_term_loudness(audio, sr) if whole else None)


def _analyze_all(result_settings, reference, mix, master, sr, goal, ceiling, source):
    result_settings["target"] = {"lufs": goal, "true_peak_dbtp": ceiling, "source": source}
    result_settings["analysis"] = {"reference": reference,
                                   "mix": analysis.analyze(mix, sr) if mix is not None else {},
                                   "master": analysis.analyze(master, sr)}


# --- entry points ------------------------------------------------------------------------------

def resolve_model(model) -> tuple[object, list[str]]:
    """(the network or None, notes).  ``"default"``: ``$AUTOMIX_CHECKPOINT`` or the shipped
    checkpoint; when the shipped one is missing or unreadable the run goes on from the heuristic
    start and a note says so (never silently); None/False: no model; a path: that checkpoint
    (an error when it cannot be loaded: the user asked for it); an :class:`AutomixNet`: itself."""
    if model is None or model is False:
        return None, []
    from .model import AutomixNet, default_checkpoint, load_model
    from .model.checkpoint import DEFAULT_CHECKPOINT

    if isinstance(model, AutomixNet):
        return model.eval(), []
    if isinstance(model, str) and model == "default":
        path = default_checkpoint()
        if path is None:
            return None, [f"the shipped model {DEFAULT_CHECKPOINT} is missing: the mix starts "
                          "from the heuristic (reinstall automix, or pass --model PATH)"]
        if path != DEFAULT_CHECKPOINT:  # $AUTOMIX_CHECKPOINT: asked for by name
            return load_model(path), []
        try:
            return load_model(path), []
        except AutomixError as exc:
            return None, [f"the shipped model cannot be used ({exc}): the mix starts from the "
                          "heuristic (reinstall automix, or pass --model PATH)"]
    return load_model(model), []


STEM_MEMORY_BYTES = 1 << 30  # stems read once are kept (float32) up to this much, not re-read


@dataclass
class _Stems:
    """What the stages need to know about the stems.  The audio read by the survey is kept in
    ``audio`` while it fits in STEM_MEMORY_BYTES (8 stereo stems of 3 min take 0.5 GB); the
    rest is re-read from disk when needed, so memory stays bounded on long songs."""
    paths: list[Path]
    names: list[str]
    files: list[str]
    loudness: list[float]
    peaks_db: list[float]
    stereo: list[bool]
    silent: list[Path]
    mels: list | None  # the network's input, when a model is used
    frames: list[int] = field(default_factory=list)  # each stem's length at the project rate
    audio: dict = field(default_factory=dict)  # path -> float32 (channels, samples) at sr
    root: Path | None = None  # the stems folder (track names and files are relative to it)
    reference: np.ndarray | None = None  # the reference at the project rate (the time plan)

    def keep(self, path: Path, audio: np.ndarray) -> None:
        if sum(a.nbytes for a in self.audio.values()) + audio.nbytes <= STEM_MEMORY_BYTES:
            self.audio[path] = audio

    def read(self, path: Path, sr: int) -> np.ndarray:
        return self.audio[path] if path in self.audio else _read_stem(path, sr)

    def sources(self, settings: dict, folder) -> list[BlockReader]:
        """Block readers for the settings' tracks: kept stems from memory (the same float32
        samples a reader of the file gives), the others from disk."""
        return open_sources(settings, folder, {
            _stem_file(p, Path(folder)): self._reader(p, settings["sample_rate"])
            for p in self.audio})

    def _reader(self, path: Path, sr: int) -> BlockReader:
        # a file at the project rate streams as many frames as its header says (the decoded
        # length can differ, e.g. for some compressed formats); a resampled one is all in memory
        info = audio_info(path)
        frames = info.frames if info.sample_rate == sr else None
        return BlockReader.of_array(self.audio[path], frames)


def _stem_file(path: Path, root: Path) -> str:
    """A stem's ``file`` in settings.json: its path relative to the stems folder."""
    return path.relative_to(root).as_posix()


def _stem_name(path: Path, root: Path) -> str:
    """A stem's track name: its file name without extension, with its subfolder if any."""
    return path.relative_to(root).with_suffix("").as_posix()


def _read_stem(path: Path, sr: int) -> np.ndarray:
    audio, a_sr = read_audio(path)
    return resample(audio, a_sr, sr)


SURVEY_AHEAD = 3  # stems read and measured at once (two cores; bounded memory)


def _survey_stems(stem_paths, sr: int, length: int, with_mels: bool,
                  keep_audio: bool = True, root: Path | None = None) -> _Stems:
    # the stems are read and measured on the background pool: the reads, the K-weighting and
    # the FFTs release the GIL, so two stems are measured at once on two cores.  A few jobs run
    # ahead of the one being collected, so only those stems are in memory besides the kept ones.
    jobs = {}

    def submit(i):
        if i < len(stem_paths):
            jobs[i] = background.submit(_survey_stem, stem_paths[i], sr, length, with_mels)

    st = _Stems([], [], [], [], [], [], [], [] if with_mels else None, root=root)
    try:
        for i in range(SURVEY_AHEAD):
            submit(i)
        for i, path in enumerate(stem_paths):
            found = jobs.pop(i).result()
            submit(i + SURVEY_AHEAD)
            if found is None:
                st.silent.append(path)
                continue
            audio, loudness, peak_db, mel = found
            st.paths.append(path)
            st.names.append(_stem_name(path, root) if root else path.stem)
            st.files.append(_stem_file(path, root) if root else path.name)
            st.stereo.append(audio.shape[0] == 2)
            st.frames.append(audio.shape[1])
            st.loudness.append(loudness)
            st.peaks_db.append(peak_db)
            if with_mels:
                st.mels.append(mel)
            if keep_audio:
                st.keep(path, audio)
    except BaseException:  # a bad stem or Ctrl-C: do not read the rest first
        for job in jobs.values():
            job.cancel()
        raise
    return st


def _survey_stem(path: Path, sr: int, length: int, with_mels: bool):
    """One stem read and measured: (audio, loudness, peak dB, log-mel or None); None if silent."""
    audio = _read_stem(path, sr)
    top = peak(audio)
    if top < 1e-5:
        return None
    mel = None
    if with_mels:
        from .model.predict import song_mels  # cheap: torch is loaded already

        mel = song_mels(pad_to_length(audio, length)[None], sr)[0]
    return audio, max(analysis.integrated_loudness(audio, sr), -70.0), 20 * np.log10(top), mel


def _stem_spectra(st: _Stems, sr: int, compressors: list[dict]) -> list[Spectra]:
    """The fit models the linear stages: each stem is summarised after its (fixed) compressor."""
    return [Spectra.of(_compress(st.read(p, sr), c, sr), sr)
            for p, c in zip(st.paths, compressors)]


def _prepare(stems, reference, model, say, with_spectra: bool = False, keep_audio: bool = True,
             with_ambience: bool = False):
    """Inputs checked and analysed: (sample rate, stems survey, reference features, reference
    spectra on the mix fit's grid (None unless ``with_spectra``), reference log-mel or None,
    notes)."""
    stem_paths, notes = find_stems(stems)
    infos = [audio_info(p) for p in stem_paths]
    sr, rate_notes = _project_rate(infos)
    notes += rate_notes
    length = max(int(round(i.frames * sr / i.sample_rate)) for i in infos)
    ref_audio, _, ref_notes = load_reference(reference, sr)
    notes += ref_notes
    say("analysing the reference and the stems")
    ref_job = background.submit(analysis.analyze, ref_audio, sr)  # while the stems are read
    amb_job = None
    if with_ambience:  # the reference's reverberance, for the space stage (automix.space)
        from .ambience import ambience

        amb_job = background.submit(ambience, ref_audio, sr)
    ref_spectra_job = None
    if with_spectra:  # the mix fit's grid (the analysis' spectra are on another)
        ref_spectra_job = background.submit(Spectra.of, to_stereo(ref_audio), sr)
    ref_mel = None
    if model is not None:
        from .model.predict import song_mels

        ref_mel = song_mels(to_stereo(ref_audio)[None], sr)[0]
    st = _survey_stems(stem_paths, sr, length, with_mels=model is not None, keep_audio=keep_audio,
                       root=Path(stems))
    st.reference = ref_audio if keep_audio else None  # the time plan's contrast and sibilance
    del ref_audio
    ref_features = ref_job.result()
    if amb_job is not None:
        ref_features["ambience"] = amb_job.result()
    notes += [f"{_stem_file(p, Path(stems))} is silent: left out of matching (kept, muted, in "
              "the settings)"
              for p in st.silent]
    if not st.names:
        raise AutomixError(f"{stems}: every stem is silent")
    ref_spectra = ref_spectra_job.result() if ref_spectra_job is not None else None
    return sr, st, ref_features, ref_spectra, ref_mel, notes


def _settings_for(st: _Stems, track_params: dict, sr: int) -> dict:
    tracks = [track_from_params(n, f, {k: v[i] for k, v in track_params.items()})
              for i, (n, f) in enumerate(zip(st.names, st.files))]
    root = st.root
    tracks += [{"name": _stem_name(p, root) if root else p.stem,
                "file": _stem_file(p, root) if root else p.name, "eq": [], "compressor": {},
                "gain_db": 0.0,
                "pan": 0.0, "width": 1.0, "mute": True} for p in st.silent]
    return {"format": FORMAT, "version": VERSION, "sample_rate": sr, "tracks": tracks,
            "master": copy.deepcopy(MASTER_DEFAULTS)}


def predict_settings(stems, reference, *, model="default", ceiling: float = -1.0) -> dict:
    """The network's settings for a folder of stems and a reference file, as plain data
    (settings.json schema v1, physical units), without refinement or rendering."""
    net, model_notes = resolve_model(model)
    if net is None:
        raise AutomixError("no model: " + (model_notes[0] if model_notes else "model=None")
                           + "; pass model=PATH")
    sr, st, _, _, ref_mel, _ = _prepare(stems, reference, net, lambda msg: None, keep_audio=False)
    tracks, master = starting_point(st, net, ref_mel)
    settings = _settings_for(st, tracks, sr)
    settings["master"] = master_from_params(master)
    settings["master"]["limiter"]["ceiling_dbtp"] = float(ceiling)
    return validate(settings, "automix", tidy=True)


def mix(stems, reference, *, target_lufs: float | None = None, ceiling: float = -1.0,
        amounts: Amounts | None = None, refine_steps: int = 300, device: str = "cpu",
        model="default", progress=None, on_audio=None, groups: str = "auto",
        export_stems: bool = False, sample_rate: int | None = None, start=None,
        space: float = 1.0, lead: str = "auto", lead_margin: float | None = None,
        static: bool = False, fade_in: float = 0.0, fade_out: float = 0.0) -> Result:
    """Mix and master a folder of stems to a reference track.

    Arrays instead of files: ``stems={name: array}`` and ``reference=array`` (each
    ``(samples,)`` or ``(channels, samples)``, 1 or 2 channels) with ``sample_rate`` (a
    reference given as a file keeps its own rate).  They run the file pipeline on float32 WAV
    copies in a temporary folder (the precision files are read at); the settings name each
    track's file ``NAME.wav``.

    ``stems``: a folder (every audio file in it is a stem); ``reference``: an audio file;
    ``model``: ``"default"`` (the shipped network, when present), a checkpoint path, or None for
    refinement from the heuristic start; ``refine_steps``: gradient steps of each fit (0: the
    network's settings as they are); ``on_audio(name, audio, sample_rate)``: called with
    ``"mix"`` and ``"master"`` as soon as each is final (e.g. to start writing it while the
    rest runs; the arrays are not modified afterwards); ``groups``: ``"auto"`` (group buses
    from the stems' subfolders, else from their names and content: :mod:`automix.grouping`)
    or ``"none"`` (a flat console); ``export_stems``: also return the printed stems
    (:attr:`Result.stems`); ``start``: the starting point, ``start(survey, model,
    ref_mel) -> (track params, master params or None)`` (default
    :func:`automix.start.starting_point`: the network's prediction, or the heuristic);
    ``space`` (0..1): how much of the reference's reverberance to add with a reverb send bus
    (:mod:`automix.space`; default 1; 0: none).

    Time (docs/time.md, :mod:`automix.timeline`): the song's sections are found and written to
    the settings; ``lead`` (``"auto"``, ``"none"`` or a track name) is kept ``lead_margin`` dB
    (None: the default, +1) above the rest by a rider lane on its fader, the sections' loudness
    contrast follows the reference's (the dynamics amount), and a vocal lead brighter than the
    reference gets a de-esser; the master's leading and trailing silence is trimmed, with
    ``fade_in`` / ``fade_out`` seconds of equal-power fades.  ``static=True``: none of these
    (the static mix, the master untrimmed; fades still apply).
    """
    from .grouping import GROUP_MODES, form_groups

    if isinstance(stems, dict):
        return _mix_arrays(stems, reference, sample_rate, target_lufs=target_lufs,
                           ceiling=ceiling, amounts=amounts, refine_steps=refine_steps,
                           device=device, model=model, progress=progress, on_audio=on_audio,
                           groups=groups, export_stems=export_stems, start=start, space=space,
                           lead=lead, lead_margin=lead_margin, static=static, fade_in=fade_in,
                           fade_out=fade_out)
    if groups not in GROUP_MODES:
        raise AutomixError(f"--groups {groups}: choose {' or '.join(GROUP_MODES)}")
    on_audio = on_audio or (lambda name, audio, sr: None)
    amounts = amounts or Amounts()
    say = progress or (lambda msg: None)
    device = check_options(target_lufs, ceiling, refine_steps, device)
    net, model_notes = resolve_model(model)
    if net is None and refine_steps == 0:
        raise AutomixError("--refine-steps 0 needs a model (there is nothing to refine from)")
    space = check_space(space)
    lead = check_lead(lead)
    lead_margin = None if lead_margin is None else check_lead_margin(lead_margin)
    fade_in, fade_out = check_fade(fade_in, "--fade-in"), check_fade(fade_out, "--fade-out")
    sr, st, ref_features, ref_spectra, ref_mel, notes = _prepare(stems, reference, net, say,
                                                                 with_spectra=refine_steps > 0,
                                                                 with_ambience=space > 0)
    notes = model_notes + notes
    aligned, stem_checks, align_notes = _align_stems(st, sr)
    notes += align_notes
    if net is not None:
        say("predicting settings")
    start, master_start = (start or starting_point)(st, net, ref_mel)
    comps = [compressor_from_params({k: v[i] for k, v in start.items()})
             for i in range(len(st.names))]
    fitted, spectra = start, None
    if refine_steps > 0:
        spectra = _stem_spectra(st, sr, comps)
        say("refining the mix")
        # the mix always follows the reference; the amounts act on the master stage
        # after a network the balance is its (learned from producers' mixes); the fit
        # follows the reference's spectrum with EQ, pans and width, faders within a dB
        fitted, _ = fit_mix(spectra, st.stereo, Target.of(ref_features), start, sr,
                            steps=refine_steps, device=device, reference=ref_spectra,
                            fader_range_db=FADER_RANGE_DB if net is None else MODEL_FADER_RANGE_DB)
    settings = _settings_for(st, fitted, sr)
    for k, fix in aligned.items():  # first in the track's strip (automix.stem_align)
        if fix.polarity != 1:
            settings["tracks"][k]["polarity"] = fix.polarity
        if fix.delay_samples:
            settings["tracks"][k]["delay_samples"] = fix.delay_samples
    grouped = form_groups([t["name"] for t in settings["tracks"]], groups,
                          dict(zip(st.names, spectra)) if spectra else None, sr)
    if grouped:
        settings["groups"] = grouped
    settings = validate(settings, "automix", tidy=True)

    # Bus level: the faders move together so the mix sits near MIX_LOUDNESS_LUFS (estimated
    # from the stems' loudness, as uncorrelated sources add); re-rendered only if that leaves
    # less than 1 dB of sample-peak headroom.
    estimate = 10 * np.log10(sum(10 ** ((l + float(g)) / 10) for l, g in
                                 zip(st.loudness, fitted["gain_db"])))
    _shift_faders(settings, MIX_LOUDNESS_LUFS - estimate)
    if not static:  # sections, the lead rider, section contrast, de-esser (automix.timeline)
        say("following the song's sections")
        settings, time_notes, lead_name = _plan_time(settings, st, sr, lead, lead_margin,
                                                     amounts.dynamics,
                                                     ref_features.get("loudness_range_lu"))
        notes += time_notes
        # the report measures it in the background (0.4 s of CPU for 3 min)
        timeline = {"lead": lead_name,
                    "reference": None if st.reference is None else to_stereo(st.reference)}
    else:
        timeline = None
    # after the time plan: the send levels are calibrated on the strips as they will render
    # (EQ, compressor, lanes, groups: automix.space)
    notes += _add_space(settings, st, ref_features, sr, space, say, amounts.width)
    st.reference = None
    say("rendering the mix")
    printed = {} if export_stems else None
    mix_audio = _render_mix(settings, st.sources(settings, stems), printed)
    peak_db = 20 * np.log10(peak(mix_audio) + 1e-12)
    if peak_db > -1.0:
        _shift_faders(settings, -1.0 - peak_db)
        printed = {} if export_stems else None
        mix_audio = _render_mix(settings, st.sources(settings, stems), printed)
    st.audio.clear()  # the stems are not needed any more: free their memory for the master
    if static:  # nothing to trim: mix.wav is written while the master is made
        on_audio("mix", mix_audio, sr)

    say("mastering")
    mix_features, mix_spectra = measure_mix(mix_audio, sr)
    # the mix's ambience beside the reference's (the report's decay per band), in the background
    mix_ambience = None if ref_features.get("ambience") is None else \
        background.submit(_ambience_of, mix_audio, sr)
    settings["master"], goal, master_final = master_stage(
        mix_audio, sr, ref_features, mix_features, target_lufs, ceiling, amounts, device,
        predicted=master_start, refine_steps=refine_steps, spectra=mix_spectra)
    master_final = _top_tail(settings, master_final, sr, fade_in, fade_out, trim=not static)
    if not static:  # mix.wav and the printed stems cut to the master's span (automix.toptail)
        from .toptail import trim_printed, trim_to_span
        mix_audio = trim_to_span(mix_audio, settings["master"].get("top_tail"), sr)
        trim_printed(printed, settings["master"].get("top_tail"), sr)
        on_audio("mix", mix_audio, sr)
    on_audio("master", master_final, sr)
    settings = validate(settings, "automix")
    _analyze_all(settings, ref_features, None, master_final, sr, goal, ceiling,
                 "reference" if target_lufs is None else "target_lufs")
    settings["analysis"]["mix"] = mix_features
    if mix_ambience is not None:
        mix_features["ambience"] = mix_ambience.result()
    return Result(settings, master_final, mix_audio, sr, notes + _master_notes(settings),
                  stems=printed, timeline=timeline, stem_checks=stem_checks)


def _align_stems(st: _Stems, sr: int):
    """Stems that carry one source twice, measured on the stems in memory
    (:mod:`automix.stem_align`): ``(fixes by stem index, the stem check rows, notes)``.  The
    fixes go into the tracks' settings (``polarity``, ``delay_samples``), so the render applies
    them; the analysis and the fits see the stems as they are (a polarity or a delay of a few
    ms changes no stem's own spectrum or loudness)."""
    from . import qc, stem_align

    # one stem in memory at a time (a stem not kept by the survey is re-read from disk)
    start = stem_align.excerpt_start(st.frames, sr)
    clips, excerpts = [], []
    for name, path in zip(st.files, st.paths):
        audio = st.read(path, sr)
        clips.append(qc.stem_clip_check(name, audio))
        excerpts.append(stem_align.mono_excerpt(audio, start, sr))
        del audio
    pairs = stem_align.measure(excerpts, sr)
    fixes = stem_align.plan(pairs, st.loudness)
    rows = [c.as_dict() for c in clips + qc.stem_pair_checks(st.files, sr, pairs, fixes)]
    notes = []
    if fixes:
        notes.append("stems carrying one source twice, lined up: " + "; ".join(
            stem_align.fix_note(st.files[k], f, sr) for k, f in sorted(fixes.items()))
            + " (tracks[].polarity, delay_samples in settings.json)")
    return fixes, rows, notes


def _as_audio(value, what: str) -> np.ndarray:
    """An array argument as float32 (channels, samples), checked (one-line errors)."""
    try:
        a = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError):
        raise AutomixError(f"{what}: expected an array of samples") from None
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2 or a.shape[0] not in (1, 2) or a.shape[1] == 0:
        raise AutomixError(f"{what}: expected (samples,) or (channels, samples) with 1 or 2 "
                           f"channels, got shape {tuple(np.shape(value))}")
    check_finite(a, what)
    return a


def _mix_arrays(stems: dict, reference, sample_rate, **kwargs) -> Result:
    """:func:`mix` on arrays: float32 WAV copies in a temporary folder, the file pipeline."""
    import tempfile

    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) \
            or not 8000 <= sample_rate <= 384000:
        raise AutomixError(f"sample_rate={sample_rate!r}: arrays need their rate, an integer "
                           "8000..384000 Hz")
    if not stems:
        raise AutomixError("stems: no stems given")
    with tempfile.TemporaryDirectory(prefix="automix-arrays-") as tmp:
        folder = Path(tmp) / "stems"
        folder.mkdir()
        for name, audio in stems.items():
            if not isinstance(name, str) or not name or name.startswith(".") or "/" in name \
                    or "\\" in name:
                raise AutomixError(f"stems: {name!r} is not a usable stem name (a non-empty "
                                   "string, no '/' or leading '.')")
            sf.write(folder / f"{name}.wav", _as_audio(audio, f"stems[{name!r}]").T,
                     sample_rate, subtype="FLOAT")
        if not isinstance(reference, (str, Path)):
            path = Path(tmp) / "reference.wav"
            sf.write(path, _as_audio(reference, "reference").T, sample_rate, subtype="FLOAT")
            reference = path
        return mix(folder, reference, **kwargs)


def _add_space(settings: dict, st: _Stems, ref_features: dict, sr: int, space: float,
               say, width_amount: float = 1.0) -> list:
    """The reverb send bus and sends (:mod:`automix.space`) added to ``settings``; its notes."""
    from .space import plan_space

    if space <= 0:
        return []
    say("setting the space")
    taken = {e["name"] for key in ("tracks", "groups", "buses") for e in settings.get(key, [])}
    bus = next(n for n in ("space", *(f"space {i}" for i in range(2, 1000))) if n not in taken)
    buses, sends, notes, _ = plan_space(
        ref_features.get("ambience"), settings,
        {n: st.read(p, sr) for n, p in zip(st.names, st.paths)}, sr, amount=space, bus_name=bus,
        ref_plr_db=_sample_plr(ref_features), ref_width_db=ref_features.get("width_db"),
        width_amount=width_amount)
    if buses:
        settings["buses"] = settings.get("buses", []) + buses
        settings["sends"] = settings.get("sends", []) + sends
        settings.update(validate(settings, "automix", tidy=True))  # the fields' defaults
    return notes


def _ambience_of(audio: np.ndarray, sr: int) -> dict:
    from .ambience import ambience
    return ambience(audio, sr)


def _sample_plr(features: dict) -> float | None:
    """The PLR by sample peak (the space stage's PLR floor measures its excerpt so)."""
    if "sample_peak_dbfs" not in features or "integrated_lufs" not in features:
        return None
    return float(features["sample_peak_dbfs"] - features["integrated_lufs"])


def _plan_time(settings: dict, st: _Stems, sr: int, lead, lead_margin, dynamics: float,
               ref_lra: float | None = None):
    """:func:`automix.timeline.plan` on the static mix ``settings`` (faders set): the settings
    with lanes, sections and the lead's de-esser (validated, tidy), and the notes.
    ``ref_lra``: the reference's loudness range, as its analysis measured it."""
    from .sections import to_settings
    from .timeline import plan

    paths = dict(zip(st.names, st.paths))
    paths.update({_stem_name(p, st.root) if st.root else p.stem: p for p in st.silent})
    stems = {t["name"]: st.read(paths[t["name"]], sr) for t in settings["tracks"]}
    groups = {g["name"]: list(g["members"]) for g in settings.get("groups", [])} or None
    tp = plan(stems, settings, lead=lead, lead_margin_db=lead_margin,
              reference=None if st.reference is None else to_stereo(st.reference),
              dynamics_amount=dynamics, groups=groups, keep_lead_level=lead_margin is None,
              reference_lra_lu=ref_lra)
    out = dict(tp.settings, sections=to_settings(tp.sections))
    for t in out["tracks"]:
        if t["name"] in tp.deesser:
            t["deesser"] = dict(tp.deesser[t["name"]])
    return (validate(out, "automix", tidy=True), tp.notes,
            tp.lead.name if tp.lead is not None and tp.ride is not None else None)


def _top_tail(settings: dict, master_audio: np.ndarray, sr: int, fade_in: float,
              fade_out: float, trim: bool) -> np.ndarray:
    """The master trimmed and faded (:mod:`automix.toptail`), recorded as ``master.top_tail``
    so that ``automix render`` gives the same samples."""
    from .toptail import apply_settings, settings_for

    entry = settings_for(master_audio, sr, fade_in, fade_out, trim)
    if entry is None:
        return master_audio
    settings["master"]["top_tail"] = entry
    return apply_settings(master_audio, entry, sr)


def _shift_faders(settings: dict, offset_db: float) -> None:
    for t in settings["tracks"]:
        t["gain_db"] = rounded(float(np.clip(t["gain_db"] + offset_db, -120, 48)), "track_gain_db")


def _render_mix(settings: dict, sources: list[BlockReader], printed: dict | None = None
                ) -> np.ndarray:
    """The mix bus of the whole console graph (``printed``: filled with the printed stems)."""
    try:
        # the send buses' tails run on after the last stem ends (automix render does the same)
        length = max(s.frames for s in sources) + bus_tail_samples(settings)
        return render_graph(settings, sources, length, stems_out=printed)
    finally:
        for s in sources:
            s.close()


def neutral_mix(audio: np.ndarray, sr: int, name: str, file: str) -> tuple[np.ndarray, dict]:
    """A finished mix as ``automix master`` takes it: ``(stereo, track)``, the file through one
    neutral track strip (a mono file gets +3.01 dB to undo the pan law) of the render executor,
    so the master computed from it is what ``automix render`` of the settings gives."""
    mono = audio.shape[0] == 1
    track = tidy_track({"name": name, "file": file, "eq": [], "compressor": {},
                        "gain_db": 20 * np.log10(np.sqrt(2.0)) if mono else 0.0, "pan": 0.0,
                        "width": 1.0, "mute": False}, sr)
    out = np.zeros((2, audio.shape[1]))
    strip = TrackStrip(track, sr, audio.shape[0])
    for s in range(0, audio.shape[1], BLOCK):
        strip.process(audio[:, s:s + BLOCK], out[:, s:s + BLOCK])
    return out, track


def master(mix_path, reference, *, target_lufs: float | None = None, ceiling: float = -1.0,
           amounts: Amounts | None = None, device: str = "cpu", progress=None,
           on_audio=None) -> Result:
    """Master a finished mix (a file) to a reference track (``on_audio``: see :func:`mix`)."""
    amounts = amounts or Amounts()
    say = progress or (lambda msg: None)
    from .sections import find_sections_in_mix, to_settings

    device = check_options(target_lufs, ceiling, 0, device)
    mix_path = Path(mix_path)
    sr = audio_info(mix_path).sample_rate
    say("analysing")
    ref_job = background.submit(_reference_features, reference, sr)  # while the mix is read
    audio, sr = read_audio(mix_path)
    notes = []
    clipped = int((np.abs(audio) >= 0.9999).sum())
    if clipped > 2:
        notes.append(f"{mix_path.name} clips ({clipped} samples at full scale): the master keeps "
                     "that distortion; export the mix with headroom if you can")
    stereo_mix, track = neutral_mix(audio, sr, mix_path.stem, mix_path.name)
    del audio
    mix_features, mix_spectra = measure_mix(stereo_mix, sr)
    # the mix's sections (informational: settings.json, the report's plot)
    found = find_sections_in_mix(stereo_mix, sr)
    ref_features, ref_notes, ref_st = ref_job.result()
    notes += ref_notes
    say("mastering")
    master_settings, goal, master_final = master_stage(stereo_mix, sr, ref_features, mix_features,
                                                       target_lufs, ceiling, amounts, device,
                                                       spectra=mix_spectra)
    if on_audio is not None:
        on_audio("master", master_final, sr)
    settings = validate({"format": FORMAT, "version": VERSION, "sample_rate": sr,
                         "tracks": [track], "master": master_settings,
                         "sections": to_settings(found.sections)}, "automix")
    _analyze_all(settings, ref_features, None, master_final, sr, goal, ceiling,
                 "reference" if target_lufs is None else "target_lufs")
    settings["analysis"]["mix"] = mix_features
    return Result(settings, master_final, None, sr, notes + _master_notes(settings),
                  timeline={"lead": None, "reference_st": ref_st,
                            "mix_st": found.short_term_lufs})


STEM_FADER_RANGE_DB = 3.0  # stem mastering keeps the mix engineer's balance, within this


def master_stems(stems, reference, *, target_lufs: float | None = None, ceiling: float = -1.0,
                 amounts: Amounts | None = None, refine_steps: int = 300, device: str = "cpu",
                 progress=None, on_audio=None) -> Result:
    """Stem mastering: a few group stems of a finished mix (e.g. drums, bass, music, vocals
    bounced by the mix engineer) mastered to a reference through group buses.

    Every stem is a neutral track (a mono stem gets +3.01 dB, undoing the pan law) feeding a
    group bus of its own; the groups' faders are fitted toward the reference's tone within
    +-STEM_FADER_RANGE_DB (``refine_steps`` 0: left at 0 dB), with no pan, width or EQ change,
    so the mix's balance is kept; the master stage then masters their sum.  The mix returned is
    that sum (:attr:`Result.mix`), the settings (v2) render it and the master bit-exactly."""
    amounts = amounts or Amounts()
    say = progress or (lambda msg: None)
    device = check_options(target_lufs, ceiling, refine_steps, device)
    sr, st, ref_features, ref_spectra, _, notes = _prepare(stems, reference, None, say,
                                                           with_spectra=refine_steps > 0)
    pan_law = 20 * np.log10(np.sqrt(2.0))
    tracks = [tidy_track({"name": n, "file": f, "gain_db": 0.0 if stereo else pan_law}, sr)
              for n, f, stereo in zip(st.names, st.files, st.stereo)]
    tracks += [{"name": _stem_name(p, st.root), "file": _stem_file(p, st.root), "mute": True}
               for p in st.silent]
    offsets = np.zeros(len(st.names))
    if refine_steps > 0:
        say("balancing the group buses")
        start = defaults(TRACK_SPECS, (len(st.names),), torch.float64)
        start["gain_db"] = torch.tensor([t["gain_db"] for t in tracks[:len(st.names)]],
                                        dtype=torch.float64)
        fitted, _ = fit_mix([Spectra.of(st.read(p, sr), sr) for p in st.paths], st.stereo,
                            Target.of(ref_features), start, sr, steps=refine_steps,
                            fit_eq=False, device=device, reference=ref_spectra,
                            fader_range_db=STEM_FADER_RANGE_DB, fit_width=False)
        offsets = (fitted["gain_db"].double() - start["gain_db"]).numpy()
    taken = {t["name"] for t in tracks}
    groups = []
    for name, offset in zip(st.names, offsets):
        group = f"{name} bus"
        while group in taken:
            group += "+"
        taken.add(group)
        groups.append({"name": group, "members": [name], "gain_db": float(offset)})
    settings = validate({"format": FORMAT, "version": VERSION, "sample_rate": sr,
                         "tracks": tracks, "groups": groups,
                         "master": copy.deepcopy(MASTER_DEFAULTS)}, "automix", tidy=True)
    say("rendering the group buses")
    mix_audio = _render_mix(settings, st.sources(settings, stems))
    # the song's sections from the stems (informational: settings.json, the report's plot)
    from .sections import find_sections, to_settings
    found = find_sections({n: st.read(p, sr) for n, p in zip(st.names, st.paths)}, sr)
    settings["sections"] = to_settings(found.sections)
    ref_st = (analysis.short_term_loudness(st.reference, sr) if st.reference is not None
              and audio_info(reference).seconds <= REFERENCE_MAX_S else None)
    st.reference = None
    st.audio.clear()
    on_audio = on_audio or (lambda name, audio, sr: None)
    on_audio("mix", mix_audio, sr)
    say("mastering")
    mix_features, mix_spectra = measure_mix(mix_audio, sr)
    settings["master"], goal, master_final = master_stage(
        mix_audio, sr, ref_features, mix_features, target_lufs, ceiling, amounts, device,
        refine_steps=refine_steps, spectra=mix_spectra)
    on_audio("master", master_final, sr)
    settings = validate(settings, "automix")
    _analyze_all(settings, ref_features, None, master_final, sr, goal, ceiling,
                 "reference" if target_lufs is None else "target_lufs")
    settings["analysis"]["mix"] = mix_features
    return Result(settings, master_final, mix_audio, sr, notes + _master_notes(settings),
                  timeline={"lead": None, "reference_st": ref_st})
