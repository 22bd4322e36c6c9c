"""Space: a reverb send bus set so the mix's ambience follows the reference's.

Inputs: the reference's blind ambience (:func:`automix.ambience.ambience`: RT60, early/late
proxy and inter-channel coherence per band), the stems (in memory) and the mix's settings (its
track strips, lanes and groups, as they will render).  Output: settings.json ``buses`` + ``sends`` (version 2) and notes.

1. **Is there space to add?**  The reference needs a blind RT60 in the mid band of at least
   :data:`MIN_RT60_S`; otherwise it reads dry (no free decays, or only very short ones) and the
   mix stays dry: no bus.
2. **The reverb** (:mod:`automix.dsp.reverb`, one bus named :data:`BUS`): RT60 low/mid/high =
   the reference's readings (a band without a reading takes the mid's with the reverb's default
   ratios 1.2 and 0.53), clamped to the reverb's ranges; width from the reference's mid-band
   coherence ``c``: the return of width ``w`` has L/R coherence ``(1 - w^2) / (1 + w^2)``, so
   ``w = sqrt((1 - c) / (1 + c))`` (0.3..1) gives the return the reference's diffuseness; a
   mono reference (coherence >= 0.99) leaves the width to the mix (1).  Pre-delay 20 ms,
   early/late -6 dB, return high-pass 150 Hz (keeps the low end clean), low-pass 9 kHz: the
   reverb's defaults (not measurable blindly with any reliability).
3. **The calibration excerpt, through the console**: the loudest :data:`EXCERPT_S` seconds of
   the stems (by their summed energy), with a pre-roll of ``1.4 x`` the longest RT60 (so the
   compressors have settled and the tail from before the excerpt is there), rendered through
   the console the settings describe (:func:`render_excerpt`: every track's EQ, de-esser,
   compressor, fader with its automation lane, pan and width, and the group strips: the
   render's own block code), so the stems read as wet as they will render.
4. **Each stem's own ambience** (blind RT60 and early/late of its strip output's mid, mid band,
   on the excerpt's middle :data:`STEM_S` seconds): a stem with its own decay (RT60 >=
   :data:`MIN_RT60_S`) already carries a late share ``f_s = 1 / (1 + 10^(el_s / 10))``; the
   reference's is ``f_r`` likewise; the stem's send is lowered by ``10 log10(1 - f_s / f_r)``
   dB, and it gets none when that is under -10 dB (it is about as wet as the reference
   already).  Stems named bass/sub/kick get no send (the low end stays dry, as engineers keep
   it).
5. **Already as wet?**  A reverb only adds late energy: when ``D`` (the console's mix bus of the
   excerpt) reads its own decay (mid RT60 >= :data:`MIN_RT60_S`) and its early/late proxy at
   the *reference's* RT60 per band is within :data:`WET_MARGIN_DB` of the reference's (or
   wetter), no bus.  (Both: the proxy alone counts sustained dry notes as late energy.)
6. **Send level, by measurement**: the console's mix bus ``D`` of the excerpt and the reverb's
   return ``R`` of the post-fader sends at 0 dB (each track's strip output at its offset;
   the render executor's reverb) are rendered once.  The mix at common send level ``g`` is
   ``D + g R``; its band powers per STFT frame are ``|D|^2 + g^2 |R|^2 + 2 g Re(D R*)`` summed
   over each band's bins (the STFT is linear), so every candidate level costs only the
   readings, not a render.  Each candidate mix is read as the reference was (blind RT60, then
   the early/late proxy with that RT60; the reference's RT60 where the mix reads none); its cost
   is the mean over the bands the reference reads of ``|early/late - reference's| + 6
   |log2(RT60 / reference's)|`` (an octave of RT60 weighs as 6 dB; no reading counts as 0.2 s).
   Levels -40..+6 dB every 4 dB, then 0.5 dB steps within 2 dB of the best.  When the dry mix
   costs no more than the best level plus :data:`WET_MARGIN_DB`, the stems already read as wet
   as the reference: no bus.
7. **PLR floor**: a reverb makes the mix denser (loudness up, peaks barely) and the master can
   lower a PLR but never raise it, so only levels whose excerpt PLR (sample peak - BS.1770
   integrated loudness of ``D + g R``, exact for any ``g``: :class:`_PlrProbe`) stays at or
   above ``min(PLR(D) - PLR_TOLERANCE_DB, reference's + PLR_MARGIN_DB)`` are candidates.
   The PLR is read as the master's stereo stage will leave the mix: its side brought to the
   reference's width (scaled by the job's width amount), by a side gain within the master's
   range and then, on a near-mono mix, the master's widener (the mid delayed 15 ms).  Read on
   the mix as it is, a reverb that filled a near-mono mix's side got that side raised by
   ~13 dB in the master, in place of the widener's delayed mid, whose peaks add to the mid's:
   the mix's PLR moved 0.09 dB, the master's 1.0 dB (Greshz-CoolSnip, benchmarks/space.py).
8. **Amount** ``space`` (0..1): every send level moves by ``10 log10(space)`` dB, so the
   energy the reverb adds is proportional to ``space`` (0.5: -3 dB, half the reverberant
   energy); 0 gives no bus.

The echo bus of issue 18 is not chosen here (no blind measure of a reference's echoes yet).
"""
from __future__ import annotations

import math
import re

import numpy as np
import scipy.fft
import scipy.signal

from . import ambience as amb
from .dsp import reverb as rv

BUS = "space"
MIN_RT60_S = 0.3
WET_MARGIN_DB = 1.0
EXCERPT_S = 30.0         # shorter excerpts read too few decays (12 s: level swings of 12 dB)
LEVELS_DB = np.arange(-40.0, 6.25, 0.5)   # +6 dB at most: the return 4x the sends
STEM_S = 15.0            # each stem's own ambience: the excerpt's middle 15 s (cost)
MIN_SEND_DB = -10.0      # a stem that would need less than this gets no send
RT_WEIGHT_DB = 6.0       # in the level's cost: an octave of RT60 error weighs as 6 dB
FLOOR_RT60_S = 0.2       # the blind estimator's floor (a band with no reading counts as this)
MONO_COHERENCE = 0.99
PLR_TOLERANCE_DB = 0.05  # the reverb may always lower the mix's PLR this much (read through the
                         # master's stereo stage; its tone fit then roughly doubles it)
PLR_MARGIN_DB = 0.5      # and otherwise down to the reference's + this (the master's own loss)
DRY_NAMES = re.compile(r"bass|sub|kick", re.I)
DEFAULT_RATIOS = {"low": 1.8 / 1.5, "high": 0.8 / 1.5}


def _spec(name):
    for key, _, lo, hi, default, _ in rv.SPECS:
        if key == name:
            return lo, hi, default
    raise KeyError(name)


def _clamp(name, value):
    lo, hi, _ = _spec(name)
    return float(min(hi, max(lo, value)))


def reverb_for(ref_amb: dict, sample_rate: int) -> dict | None:
    """The reverb's processor settings from the reference's ambience (module doc, 2), or None
    when the reference reads dry."""
    rts = dict(zip(ref_amb["bands"], ref_amb["rt60_s"]))
    mid = rts.get("mid")
    if mid is None or mid < MIN_RT60_S:
        return None
    p = {"type": "reverb"}
    for band in ("low", "mid", "high"):
        value = rts.get(band)
        if value is None:
            value = mid * DEFAULT_RATIOS.get(band, 1.0)
        p[f"rt60_{band}_s"] = round(_clamp(f"rt60_{band}_s", value), 3)
    coh = dict(zip(ref_amb["bands"], ref_amb["coherence"])).get("mid")
    if coh is None or coh >= MONO_COHERENCE:
        width = 1.0
    else:
        width = min(1.0, max(0.3, math.sqrt((1 - coh) / (1 + coh))))
    p["width"] = round(width, 3)
    p["predelay_ms"] = _spec("predelay_ms")[2]
    p["early_late_db"] = _spec("early_late_db")[2]
    p["hp_hz"] = _spec("hp_hz")[2]
    p["lp_hz"] = float(min(_spec("lp_hz")[2], 0.45 * sample_rate))
    return p


def _excerpt(stems: list[np.ndarray], sample_rate: int, seconds: float) -> tuple[int, int]:
    """(start, length) of the loudest ``seconds`` of the stems' summed energy (1 s steps)."""
    n = max(s.shape[-1] for s in stems)
    length = min(n, int(seconds * sample_rate))
    step = sample_rate
    blocks = max(1, n // step)
    energy = np.zeros(blocks)
    for s in stems:   # every 8th sample: the energy per second, cheaply
        m = s[..., :blocks * step:8].astype(np.float32)
        per = m.shape[-1] // blocks
        e = (m[..., :blocks * per] * m[..., :blocks * per]).reshape(m.shape[0], blocks, per) \
            .sum(axis=(0, 2)) if per > 0 else np.array([float((m * m).sum())])
        energy[:e.size] += e
    span = max(1, length // step)
    if blocks <= span:
        return 0, length
    run = np.convolve(energy, np.ones(span), mode="valid")
    return int(np.argmax(run)) * step, length


def _band_spectra(x: np.ndarray, sample_rate: int, only: tuple | None = None):
    """``(spectra, hop_s, names)``: the complex STFT (channels, frames, bins) of ``x`` on the
    ambience grid (:func:`automix.ambience.band_levels`'s frames), cut to each band's bins
    (``only``: these bands)."""
    n_fft = amb._pow2(0.023, sample_rate)
    hop = n_fft // amb.HOP_DIV
    if x.shape[-1] < n_fft:
        x = np.pad(x, ((0, 0), (0, n_fft - x.shape[-1])))
    window = scipy.signal.get_window("hann", n_fft).astype(np.float32)
    view = np.lib.stride_tricks.sliding_window_view(x.astype(np.float32), n_fft, axis=-1)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    bands = [b for b in amb.band_edges(sample_rate) if only is None or b[0] in only]
    if not bands:
        return [], hop / sample_rate, []
    keep = [np.flatnonzero((freqs >= lo) & (freqs < hi)) for _, lo, hi in bands]
    first, last = min(k[0] for k in keep), max(k[-1] for k in keep) + 1
    spec = scipy.fft.rfft(view[:, ::hop] * window, axis=-1)[..., first:last]
    return ([spec[..., k[0] - first:k[-1] + 1 - first] for k in keep], hop / sample_rate,
            [b[0] for b in bands])


def _power(spectra: list) -> np.ndarray:
    """Band power per frame (bands, frames), channels summed."""
    return np.stack([(s.real * s.real + s.imag * s.imag).sum(axis=(0, 2), dtype=np.float64)
                     for s in spectra])


def _cross(a: list, b: list) -> np.ndarray:
    """``Re(A B*)`` per band and frame (bands, frames), channels summed."""
    return np.stack([(x.real * y.real + x.imag * y.imag).sum(axis=(0, 2), dtype=np.float64)
                     for x, y in zip(a, b)])


def stem_ambience(mid: np.ndarray, sample_rate: int) -> tuple[float | None, float | None]:
    """(blind RT60, early/late dB) of one stem's mid signal in the mid band."""
    spectra, hop_s, names = _band_spectra(np.atleast_2d(mid), sample_rate, only=("mid",))
    if not names:
        return None, None
    power = _power(spectra)[0]
    rt, _, _ = amb.blind_rt60(10 * np.log10(np.maximum(power, 1e-30)), hop_s)
    return rt, amb.early_late_db(power, hop_s, rt)


def _late_share(el_db: float) -> float:
    return 1.0 / (1.0 + 10 ** (el_db / 10))


def render_excerpt(settings: dict, stems: dict, lo: int, hi: int, sample_rate: int,
                   on_track=None) -> np.ndarray:
    """The console's mix bus ``(2, hi - lo)`` float64 on samples ``lo .. hi`` of the song: each
    track through its whole strip (EQ, de-esser, compressor, fader with its gain lane, pan and
    width: :class:`automix.console.blocks.StripNode`, the render's own code), the groups in
    routing order; buses and sends left out.  ``stems``: track name -> audio (channels, samples)
    (a track without audio, e.g. a silent stem, adds nothing).  ``on_track(index, name, out)``
    is called with each track's own stereo output (its post-fader send tap) as it comes, so no
    more than one is held."""
    from .console.blocks import StripNode
    from .console.graph import MASTER_NAME, route

    bare = {k: v for k, v in settings.items() if k not in ("buses", "sends")}
    r = route(bare)
    n = hi - lo
    bus = np.zeros((2, n))
    inputs = {node: np.zeros((2, n)) for node in r.order if node[0] != "track"}
    for node in r.order:
        kind, i = node
        dest = bus if r.output[node] == MASTER_NAME else inputs[r.output[node]]
        if kind == "track":
            entry = settings["tracks"][i]
            audio = stems.get(entry["name"])
            if audio is None:
                continue
            a = np.atleast_2d(audio)
            piece = np.zeros((a.shape[0], n))
            got = a[:, lo:hi]
            piece[:, :got.shape[1]] = got
            out = StripNode(entry, sample_rate, piece.shape[0]).process(piece, None, lo,
                                                                       owned=True)
            if on_track is not None:
                on_track(i, entry["name"], out)
        else:
            out = StripNode(settings["groups"][i], sample_rate, 2).process(inputs[node], None,
                                                                          lo, owned=True)
        dest += out
    return bus


def flat_settings(names: list[str], gains_db: list[float], pans: list[float],
                  sample_rate: int) -> dict:
    """A console of plain tracks (fader and pan only), for tests and benchmarks."""
    return {"sample_rate": int(sample_rate),
            "tracks": [{"name": n, "gain_db": float(g), "pan": float(p)}
                       for n, g, p in zip(names, gains_db, pans)]}


class _PlrProbe:
    """PLR (sample peak dB - BS.1770 integrated loudness) of the mix ``D + g R`` for any ``g``,
    read as the master's stereo stage will leave it (module doc, 7).

    With mid ``m = m_D + g m_R`` and side ``s = s_D + g s_R`` of the mix, the master's stereo
    stage (:func:`automix.match.fit_master_tone`) brings the side/mid energy ratio to the
    reference's ``rho``: first by a side gain ``k = sqrt(rho E_m / E_s)``, within the master's
    range ``[0, 2 x 10^(9/20)]`` (its width up to 2, its side EQ up to +9 dB), then, for what
    is still missing, by its widener, the mid delayed ``WIDENER_DELAY_MS`` added to the side at
    power ``w^2 = min(rho - k^2 E_s / E_m, WIDENER_MAX)``.  The image is ``L, R = m +- (k s + w m')``
    (``m'`` the delayed mid); ``ref_width_db`` None: ``k = 1, w = 0`` (the mix as it is).

    Exact for any ``g`` from one pass: the K-weighting is linear and ``L^2 + R^2 = 2 (m^2 +
    side^2)`` (the mid/side cross terms cancel), so each gating block's mean square is a
    quadratic form in ``(1, g)`` for the mid and in ``(k, k g, w, w g)`` for the side, over the
    blocks' Gram matrices of the six K-weighted parts.  The peak ``max(|L|, |R|) = |m| +
    |side|`` is exact: per block of :attr:`BLOCK` samples the sum of the parts' maxima bounds
    it, and only the blocks whose bound reaches the best block's exact peak are measured."""

    BLOCK = 512

    def __init__(self, dry: np.ndarray, ret: np.ndarray, sample_rate: int,
                 ref_width_db: float | None = None, width_amount: float = 1.0):
        from . import analysis as an
        from .match import WIDENER_DELAY_MS

        # the parts: mids of D and R, sides of D and R (a mono part has no side)
        parts = np.stack([(dry[0] + dry[-1]) / 2, (ret[0] + ret[-1]) / 2,
                          (dry[0] - dry[-1]) / 2, (ret[0] - ret[-1]) / 2])
        self.rho = None if ref_width_db is None or width_amount <= 0 else \
            10 ** (float(ref_width_db) / 10)
        self.amount = float(width_amount)
        # plain energies (the width's measure, analysis.stereo_width_db) as (1, g) forms
        self.em, self.es = parts[:2] @ parts[:2].T, parts[2:] @ parts[2:].T
        weighted = an.k_weight(parts, sample_rate)
        # the widener's parts, the mids delayed (the K-weighting commutes with the delay), when
        # the dry mix needs the widener (a return brings side of its own: it only lowers that)
        self.widens = self.rho is not None and self.stage(0.0)[1] > 0
        if self.widens:
            delay = min(int(round(WIDENER_DELAY_MS * sample_rate / 1000)), parts.shape[1])
            shift = lambda x: np.pad(x[..., :x.shape[-1] - delay],  # noqa: E731
                                     [(0, 0)] * (x.ndim - 1) + [(delay, 0)])
            parts = np.concatenate([parts, shift(parts[:2])])
            weighted = np.concatenate([weighted, shift(weighted[:2])])

        def ms(x):
            return an._Hops.of(x[None], sample_rate).window_mean_squares(an.BLOCK_S)

        def gram(rows):   # per block: 2 a.b = |a + b|^2 - |a|^2 - |b|^2
            own = [ms(weighted[i]) for i in rows]
            g = np.empty((len(rows), len(rows), own[0].size))
            for a, i in enumerate(rows):
                g[a, a] = own[a]
                for b in range(a + 1, len(rows)):
                    g[a, b] = g[b, a] = (ms(weighted[i] + weighted[rows[b]]) - own[a] - own[b]) / 2
            return g

        self.gm = gram([0, 1])
        self.gs = gram([2, 3, 4, 5] if self.widens else [2, 3])
        self.gated = an._gated_loudness
        b = self.BLOCK
        pad = -parts.shape[1] % b
        blocks = np.pad(parts, ((0, 0), (0, pad))).astype(np.float32).reshape(len(parts), -1, b)
        self.mb, self.sb = blocks[:2], blocks[2:]
        self.mmax, self.smax = np.abs(self.mb).max(axis=2), np.abs(self.sb).max(axis=2)

    def stage(self, gain: float) -> tuple[float, float]:
        """The master's side gain ``k`` and widener amplitude ``w`` for the mix at ``gain``."""
        if self.rho is None:
            return 1.0, 0.0
        from .match import SIDE_GRAPHIC_MAX_DB, WIDENER_MAX
        from .params import MASTER_SPECS

        v = np.array([1.0, gain])
        em, es = float(v @ self.em @ v), float(v @ self.es @ v)
        if em <= 0:
            return 1.0, 0.0
        width_max = next(s.maximum for s in MASTER_SPECS if s.name == "width")
        k_max = width_max * 10 ** (SIDE_GRAPHIC_MAX_DB / 20)
        # the width the master aims at: the reference's, moved by the width amount (in dB)
        rho = self.rho ** self.amount * (es / em) ** (1 - self.amount) if es > 0 else self.rho
        k = min(k_max, math.sqrt(rho * em / es)) if es > 0 else k_max
        w2 = min(max(rho - k * k * es / em, 0.0), WIDENER_MAX)
        return k, math.sqrt(w2)

    def __call__(self, gain: float) -> float:
        k, w = self.stage(gain)
        cm = np.array([1.0, gain])
        cs = np.array([k, k * gain, w, w * gain])[:len(self.gs)]
        ms = 2 * (np.einsum("i,ijn,j->n", cm, self.gm, cm)
                  + np.einsum("i,ijn,j->n", cs, self.gs, cs))
        return 20 * math.log10(max(self.peak(cm, cs), 1e-12)) - self.gated(np.maximum(ms, 0.0))

    def peak(self, cm: np.ndarray, cs: np.ndarray) -> float:
        """``max |m| + |side|`` over the samples (the larger of |L|, |R|)."""
        bound = np.abs(cm) @ self.mmax + np.abs(cs) @ self.smax
        best = int(np.argmax(bound))

        def exact(idx):
            m = np.tensordot(cm.astype(np.float32), self.mb[:, idx], axes=1)
            s = np.tensordot(cs.astype(np.float32), self.sb[:, idx], axes=1)
            return float((np.abs(m) + np.abs(s)).max())

        low = exact([best])
        maybe = np.flatnonzero(bound > low)
        if maybe.size:
            low = max(low, exact(maybe))
        return low


WIDTHS = np.linspace(0.0, 1.0, 21)


def _width_for(ref_coh: float, dry: np.ndarray, m_ret: np.ndarray, s_ret: np.ndarray,
               gain: float, sample_rate: int) -> float:
    """The reverb width (of :data:`WIDTHS`) whose mix ``D + g [M + w S, M - w S]`` has the
    mid-band inter-channel coherence nearest ``ref_coh`` (Welch spectra as
    :func:`automix.ambience.coherence`; the channels are linear in ``w``, so one STFT of each
    of D_L, D_R, M and S gives every width)."""
    n_fft = amb._pow2(0.046, sample_rate)
    hop = n_fft // 2
    n = dry.shape[1]
    if n < n_fft:
        return 1.0
    window = scipy.signal.get_window("hann", n_fft)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    lo, hi = next((b[1], b[2]) for b in amb.band_edges(sample_rate) if b[0] == "mid")
    k = np.flatnonzero((freqs >= lo) & (freqs < hi))

    def spec(x):
        view = np.lib.stride_tricks.sliding_window_view(x.astype(np.float32), n_fft)[::hop]
        return scipy.fft.rfft(view * window.astype(np.float32), axis=-1)[:, k[0]:k[-1] + 1]

    m = spec(m_ret)
    a, c, b = spec(dry[0]) + gain * m, spec(dry[1]) + gain * m, gain * spec(s_ret)
    # Welch averages per bin; with L = a + w b, R = c - w b:
    # S_LL = aa + 2 w Re(ab) + w^2 bb, S_RR = cc - 2 w Re(cb) + w^2 bb,
    # S_LR = E[L R*] = ac - w ab + w bc - w^2 bb   (xy = E[x y*])
    mean = lambda x, y: (x * y.conj()).mean(axis=0)   # noqa: E731
    aa, cc, bb = (mean(x, x).real for x in (a, c, b))
    ab, cb, ac = mean(a, b), mean(c, b), mean(a, c)
    best, width = None, 1.0
    for w in WIDTHS:
        sxy = np.abs(ac - w * ab + w * cb.conj() - w * w * bb).sum()
        den = np.sqrt(np.maximum(aa + 2 * w * ab.real + w * w * bb, 0)
                      * np.maximum(cc - 2 * w * cb.real + w * w * bb, 0)).sum()
        if den <= 0:
            continue
        miss = abs(sxy / den - ref_coh)
        if best is None or miss < best - 1e-9:
            best, width = miss, float(w)
    return round(width, 3)


def plan_space(ref_amb: dict | None, settings: dict, stems: dict, sample_rate: int,
               amount: float = 1.0, bus_name: str = BUS,
               ref_plr_db: float | None = None, ref_width_db: float | None = None,
               width_amount: float = 1.0) -> tuple[list, list, list[str], dict]:
    """``(buses, sends, notes, info)`` for ``settings`` (module doc; ``stems``: track name ->
    audio; ``ref_plr_db``: the reference's PLR by its sample peak, the floor of the mix's,
    None: no floor; ``ref_width_db``, ``width_amount``: the reference's width and the job's
    width amount, for the master's stereo stage the floor reads the mix through, None: the
    mix as it is); no
    buses when the reference reads dry, the stems are as wet already, or ``amount`` is 0.
    ``info``: the calibration's readings (for benchmarks and tests)."""
    info: dict = {}
    if amount <= 0:
        return [], [], ["space 0: no reverb added"], info
    if ref_amb is None:
        return [], [], [], info
    proc = reverb_for(ref_amb, sample_rate)
    if proc is None:
        return [], [], ["space: the reference reads dry (no decay of at least "
                        f"{MIN_RT60_S:g} s): no reverb added"], info
    info["reverb"] = proc
    names = [t["name"] for t in settings["tracks"]]
    present = [stems[n] for n in names if stems.get(n) is not None]
    if not present:
        return [], [], [], info
    ref_el = dict(zip(ref_amb["bands"], ref_amb["early_late_db"]))
    ref_rt = dict(zip(ref_amb["bands"], ref_amb["rt60_s"]))
    start, length = _excerpt(present, sample_rate, EXCERPT_S)
    pre = min(start, int(1.4 * max(proc[f"rt60_{b}_s"] for b in ("low", "mid", "high"))
                         * sample_rate))
    lo, hi = start - pre, start + length

    # each track through the console; its own ambience -> its send offset (dB) or None
    f_ref = _late_share(ref_el["mid"]) if ref_el.get("mid") is not None else None
    offsets: dict = {}
    wet_names: list[str] = []
    send = np.zeros(hi - lo)

    def on_track(i, name, out):
        offset = 0.0
        if DRY_NAMES.search(name) or not np.any(out):
            offset = None
        elif f_ref is not None:
            mid = out.mean(axis=0)[pre:]
            cut = max(0, (mid.size - int(STEM_S * sample_rate)) // 2)   # its middle 15 s
            rt_s, el_s = stem_ambience(mid[cut:mid.size - cut], sample_rate)
            if rt_s is not None and el_s is not None and rt_s >= MIN_RT60_S:
                need = 1.0 - _late_share(el_s) / f_ref
                offset = 10 * math.log10(need) if need > 10 ** (MIN_SEND_DB / 10) else None
                if offset is None:
                    wet_names.append(name)
        offsets[name] = offset
        if offset is not None:   # the post-fader send's mid (what the reverb takes)
            send[:] += (out[0] + out[1]) * (0.5 * 10 ** (offset / 20))

    mixed = render_excerpt(settings, stems, lo, hi, sample_rate, on_track)
    dry = mixed[:, pre:]
    offsets = [offsets.get(n) for n in names]
    info["offsets_db"] = dict(zip(names, offsets))
    if not any(o is not None for o in offsets):
        return [], [], ["space: every stem is already as wet as the reference (or kept dry): "
                        "no reverb added"], info

    use = [b for b in amb.band_edges(sample_rate)
           if ref_el.get(b[0]) is not None and ref_rt.get(b[0])]
    if not use:
        return [], [], ["space: the reference's early/late reading is missing: no reverb "
                        "added"], info

    # how wet the console's mix already is: its late share read at the reference's decay
    # rates (the same proxy as the reference's, so sustained notes bias both alike); a reverb
    # only adds late energy, so a mix as wet as the reference gets none
    sd, hop_s, bands = _band_spectra(dry, sample_rate)
    pd = _power(sd)
    use = [bands.index(b[0]) for b in use]

    def wetness(power):
        """Mean over the reference's bands of (early/late at its RT60 - the reference's), dB:
        positive = drier than the reference."""
        out = []
        for i in use:
            el = amb.early_late_db(power[i], hop_s, ref_rt[bands[i]])
            out.append((el if el is not None else 60.0) - ref_el[bands[i]])
        return float(np.mean(out))

    info["dry_wetness_db"] = dry_wetness = wetness(pd)
    mid_band = bands.index("mid") if "mid" in bands else use[0]
    info["dry_rt60_s"] = dry_rt = amb.blind_rt60(10 * np.log10(np.maximum(pd[mid_band], 1e-30)),
                                                 hop_s)[0]
    # as much late energy as the reference's within WET_MARGIN_DB and its own decays (the proxy
    # alone counts sustained dry notes as late energy), or more late energy than the
    # reference's outright (a mastered reference's compression stretches its blind RT60, so a
    # mix as wet as it may read shorter decays: the human-target benchmark's CapDan songs)
    if dry_wetness <= 0.0 or (dry_rt is not None and dry_rt >= MIN_RT60_S
                              and dry_wetness <= WET_MARGIN_DB):
        return [], [], ["space: the stems already read as wet as the reference: no reverb "
                        "added"], info

    # the return of the sends at 0 dB on the excerpt (pre-roll dropped), at width 1: the return
    # at width w is [M + w S, M - w S] (the reverb's width is linear in w), so one render
    # gives every width
    full = rv.ReverbState({**{k: proc[k] for k in rv.PARAMS}, "width": 1.0},
                          sample_rate).process(send[None])[:, pre:]
    m_ret, s_ret = (full[0] + full[1]) / 2, (full[0] - full[1]) / 2
    del full

    # band powers of D + g R(w) for every g and w, from one STFT of each
    sm_ss = _band_spectra(np.stack([m_ret, s_ret]), sample_rate)[0]
    pm = _power([x[:1] for x in sm_ss])
    ps = _power([x[1:] for x in sm_ss])
    cm = _cross([(x[:1] + x[1:]) for x in sd], [x[:1] for x in sm_ss])
    cs = _cross([(x[:1] - x[1:]) for x in sd], [x[1:] for x in sm_ss])

    def cost(level_db, width):
        """How far the mix at this send level and width reads from the reference (dB-like)."""
        gain = 0.0 if level_db is None else 10 ** (level_db / 20)
        pr = 2 * pm + 2 * width * width * ps           # sum over L, R of |M +- w S|^2
        pc = cm + width * cs                            # Re(D_L R_L* + D_R R_R*)
        power = np.maximum(pd + gain * gain * pr + 2 * gain * pc, 1e-30)
        levels = 10 * np.log10(power)
        total = 0.0
        for i in use:
            rt, _, _ = amb.blind_rt60(levels[i], hop_s)
            el = amb.early_late_db(power[i], hop_s, rt or ref_rt[bands[i]])
            total += abs((el if el is not None else 60.0) - ref_el[bands[i]])
            total += RT_WEIGHT_DB * abs(math.log2(max(rt or FLOOR_RT60_S, FLOOR_RT60_S)
                                                  / ref_rt[bands[i]]))
        return total / max(1, len(use))

    levels = [float(v) for v in LEVELS_DB]
    dry_cost = cost(None, 1.0)

    # the width: the one whose mix (at the level a first, coarse search finds) reads the
    # reference's mid-band coherence (the return's own coherence is not the mix's: a near-mono
    # mix needs a near-mono reverb, or its side fills with the reverb)
    width = proc["width"]
    ref_coh = dict(zip(ref_amb["bands"], ref_amb["coherence"])).get("mid")
    if ref_coh is not None and ref_coh < MONO_COHERENCE:
        first = {v: cost(v, width) for v in levels[::16] + [levels[-1]]}   # every 8 dB
        g0 = 10 ** (min(first, key=first.get) / 20)
        width = _width_for(ref_coh, dry, m_ret, s_ret, g0, sample_rate)
        proc = dict(proc, width=width)
        info["reverb"] = proc
    ret = np.stack([m_ret + width * s_ret, m_ret - width * s_ret])

    # the PLR floor: a reverb makes the mix denser (loudness up, peaks barely), and the master
    # can lower a PLR (limiter, compressor, its EQ) but never raise it, so the sends stop where
    # the excerpt's PLR, read as the master's stereo stage will widen the mix (_PlrProbe),
    # would fall under min(the dry mix's - PLR_TOLERANCE_DB, the reference's +
    # PLR_MARGIN_DB): a dry mix denser than that keeps its PLR
    ok = lambda v: True   # noqa: E731
    if ref_plr_db is not None:
        plr = _PlrProbe(dry, ret, sample_rate, ref_width_db, width_amount)
        floor = min(plr(0.0) - PLR_TOLERANCE_DB, float(ref_plr_db) + PLR_MARGIN_DB)
        info["plr_floor_db"] = floor
        ok = lambda v: plr(10 ** (v / 20)) >= floor   # noqa: E731  (not monotonic in g)
    coarse = {v: cost(v, width) for v in levels[::8] + [levels[-1]] if ok(v)}
    if not coarse:
        return [], [], ["space: any reverb would make the mix denser than the reference "
                        "(PLR): no reverb added"], info
    top = min(coarse, key=coarse.get)
    fine = {v: cost(v, width) for v in levels
            if abs(v - top) <= 2.0 and v not in coarse and ok(v)}
    found = {**coarse, **fine}
    best = min(found, key=found.get)
    info.update(dry_cost=dry_cost, send_db=best, cost=found[best])
    if dry_cost <= found[best] + WET_MARGIN_DB:
        return [], [], ["space: the stems already read as wet as the reference (as far as "
                        "the PLR lets a reverb go): no reverb added"], info
    shift = best + 10 * math.log10(amount)
    bus = {"name": bus_name, "processor": proc, "gain_db": 0.0}
    sends = [{"source": n, "bus": bus_name,
              "level_db": round(float(np.clip(shift + o, -120, 24)), 2)}
             for n, o in zip(names, offsets) if o is not None]
    levels = [s["level_db"] for s in sends]
    note = (f"space: reverb bus '{bus_name}' (RT60 {proc['rt60_low_s']:.2f}/"
            f"{proc['rt60_mid_s']:.2f}/"
            f"{proc['rt60_high_s']:.2f} s low/mid/high, width {proc['width']:.2f}), sends "
            f"{min(levels):.1f}..{max(levels):.1f} dB on {len(sends)} of {len(names)} tracks")
    skipped = [n for n, o in zip(names, offsets) if o is None]
    if skipped:
        note += f"; dry: {', '.join(skipped)}"
    if wet_names:
        note += f" ({', '.join(wet_names)} already wet)"
    return [bus], sends, [note], info
