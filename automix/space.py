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
8. **Pre-delay** (:data:`FIT_PREDELAY`, off by default: measured, not shipped, docs/space.md):
   the reverb is linear and time-invariant and its pre-delay a pure delay, so the return at
   pre-delay ``d`` is the return at 0 delayed by ``d`` samples (to -100 dB: tests).  With it
   on, the return is rendered once at ``20 ms - k`` STFT hops and read ``k`` hops later and at
   the whole hops nearest 0, 40 and 80 ms (its frames shifted; :meth:`_PlrProbe.delay`), the
   level search of 6-7 runs at each (the blind RT60 read once per level, at 20 ms: a delay
   moves no decay rate), and the best pair wins.  Off: the default 20 ms.
9. **Amount** ``space`` (0..1): every send level moves by ``10 log10(space)`` dB, so the
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
FIT_PREDELAY = False     # True: the pre-delay fitted with the send level (docs/space.md: not
                         # shipped)
PREDELAYS_MS = (0.0, 20.0, 40.0, 80.0)   # the pre-delays tried, each to whole STFT hops


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
    """``Re(A B*)`` per band and frame (bands, frames), channels summed (the spectra's
    re/im pairs as one real axis: ``sum re re' + im im'``)."""
    return np.stack([np.einsum("cfb,cfb->f", x.view(x.real.dtype), y.view(y.real.dtype))
                     for x, y in zip(a, b)]).astype(np.float64)


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
    it, and only the blocks whose bound reaches the best block's exact peak are measured.

    ``ret`` may start ``lead`` samples before ``dry`` (the pre-delay fit): :meth:`delay` then
    reads the return delayed by ``0..lead`` samples (``ret[:, lead - d:][:, :n]``), recomputing
    only the Gram entries and blocks that hold it (the return is K-weighted once, from rest at
    its own start).  At first the delay is 0."""

    BLOCK = 512

    def __init__(self, dry: np.ndarray, ret: np.ndarray, sample_rate: int,
                 ref_width_db: float | None = None, width_amount: float = 1.0, lead: int = 0):
        from . import analysis as an
        from .match import WIDENER_DELAY_MS

        self.n, self.lead, self.sample_rate = dry.shape[1], int(lead), sample_rate
        # the dry parts (mid, side) and the return's (mid, side; from `lead` samples earlier)
        self.dry = np.stack([(dry[0] + dry[-1]) / 2, (dry[0] - dry[-1]) / 2])
        self.ret = np.stack([(ret[0] + ret[-1]) / 2, (ret[0] - ret[-1]) / 2])
        self.rho = None if ref_width_db is None or width_amount <= 0 else \
            10 ** (float(ref_width_db) / 10)
        self.amount = float(width_amount)
        self.dry_w = an.k_weight(self.dry, sample_rate)
        self.ret_w = an.k_weight(self.ret, sample_rate)
        self.ms = lambda x: an._Hops.of(  # noqa: E731  (BS.1770 blocks' mean squares)
            x[None], sample_rate).window_mean_squares(an.BLOCK_S)
        self.widener = min(int(round(WIDENER_DELAY_MS * sample_rate / 1000)), self.n)
        self.fixed: dict = {}          # Gram entries of the dry parts alone (any delay)
        self.saved: dict = {}          # per delay: its Gram matrices, energies, block maxima
        self.gated = an._gated_loudness
        # the widener's parts only when the dry mix needs the widener (a return brings side
        # of its own: it only lowers that); stage(0) reads the dry energies alone
        self.em = np.diag([float(self.dry[0] @ self.dry[0]), 0.0])
        self.es = np.diag([float(self.dry[1] @ self.dry[1]), 0.0])
        self.widens = self.rho is not None and self.stage(0.0)[1] > 0
        # the peak's blocks: the dry parts' cut once, the return's at each delay
        plain = [self.dry[0], self.dry[1]] + ([self._late(self.dry[0])] if self.widens else [])
        self.dry_blocks = [self._blocks(x) for x in plain]
        self.delay(0)

    def _late(self, x: np.ndarray) -> np.ndarray:
        """``x`` delayed by the widener's delay (zeros first)."""
        d = self.widener
        return np.pad(x[..., :x.shape[-1] - d], [(0, 0)] * (x.ndim - 1) + [(d, 0)])

    def _blocks(self, x: np.ndarray) -> np.ndarray:
        """``x`` (n,) as float32 blocks (blocks, BLOCK), zeros after its end."""
        b = self.BLOCK
        return np.pad(x.astype(np.float32), (0, -x.shape[-1] % b)).reshape(-1, b)

    def delay(self, samples: int) -> "_PlrProbe":
        """Read the return delayed by ``samples`` (0..lead): its Gram entries, energies and
        peak blocks' maxima (kept per delay, so coming back to one costs nothing)."""
        start = self.lead - int(samples)
        if not 0 <= start <= self.lead:
            raise ValueError(f"delay {samples} outside 0..{self.lead}")
        if start == getattr(self, "start", None):
            return self
        self.start = start
        r = self.ret[:, start:start + self.n]
        late = [self._late(r[0])] if self.widens else []
        # the return's blocks at this delay (mid, side, the mid delayed by the widener's delay)
        self.ret_blocks = [self._blocks(x) for x in [r[0], r[1]] + late]
        if start in self.saved:
            self.gm, self.gs, self.em, self.es, self.mmax, self.smax = self.saved[start]
            return self
        rw = self.ret_w[:, start:start + self.n]
        d = self.dry
        # plain energies (the width's measure, analysis.stereo_width_db) as (1, g) forms
        self.em = np.array([[d[0] @ d[0], d[0] @ r[0]], [d[0] @ r[0], r[0] @ r[0]]])
        self.es = np.array([[d[1] @ d[1], d[1] @ r[1]], [d[1] @ r[1], r[1] @ r[1]]])
        # the K-weighted parts: 0 D mid, 1 R mid, 2 D side, 3 R side (4, 5: the mids delayed
        # by the widener's delay; the K-weighting commutes with it)
        w = [self.dry_w[0], rw[0], self.dry_w[1], rw[1]]
        if self.widens:
            w += [self._late(self.dry_w[0]), self._late(rw[0])]
        own: dict = {}

        def entry(i, j):   # per block: 2 a.b = |a + b|^2 - |a|^2 - |b|^2
            key = (min(i, j), max(i, j))
            store = self.fixed if key[0] % 2 == 0 and key[1] % 2 == 0 else own   # dry alone
            if key not in store:
                if i == j:
                    store[key] = self.ms(w[i])
                else:
                    store[key] = (self.ms(w[i] + w[j]) - entry(i, i) - entry(j, j)) / 2
            return store[key]

        def gram(rows):
            return np.stack([np.stack([entry(i, j) for j in rows]) for i in rows])

        self.gm = gram([0, 1])
        self.gs = gram([2, 3, 4, 5] if self.widens else [2, 3])
        peak = lambda x: np.abs(x).max(axis=1)   # noqa: E731
        ret_max = [peak(x) for x in self.ret_blocks]
        self.mmax = np.stack([peak(self.dry_blocks[0]), ret_max[0]])
        self.smax = np.stack([peak(self.dry_blocks[1]), ret_max[1]]
                             + ([peak(self.dry_blocks[2]), ret_max[2]] if self.widens else []))
        self.saved[start] = (self.gm, self.gs, self.em, self.es, self.mmax, self.smax)
        return self

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
            idx = np.asarray(idx)
            rb = self.ret_blocks
            mb = np.stack([self.dry_blocks[0][idx], rb[0][idx]])
            sb = [self.dry_blocks[1][idx], rb[1][idx]]
            if self.widens:
                sb += [self.dry_blocks[2][idx], rb[2][idx]]
            m = np.tensordot(cm.astype(np.float32), mb, axes=1)
            s = np.tensordot(cs.astype(np.float32), np.stack(sb), axes=1)
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

    # the return of the sends at 0 dB at width 1 and pre-delay 0, from `lead` samples before
    # the excerpt: the reverb is linear and time-invariant and its pre-delay a pure delay, so
    # the return at pre-delay d is this one d samples later, and the return at width w is
    # [M + w S, M - w S] (the reverb's width is linear in w): one render gives every width and
    # pre-delay.  The pre-delays tried are whole STFT hops, so the delayed return's spectra
    # are the same frames, shifted.
    hop = int(round(hop_s * sample_rate))
    hop_ms = hop * 1000 / sample_rate
    if FIT_PREDELAY:   # the default and the default -+ whole hops nearest PREDELAYS_MS
        first_k = int(proc["predelay_ms"] // hop_ms)
        base_ms = proc["predelay_ms"] - first_k * hop_ms
        shifts = sorted({max(0, int(round((ms - base_ms) / hop_ms))) for ms in PREDELAYS_MS}
                        | {first_k})
    else:
        base_ms, shifts, first_k = proc["predelay_ms"], [0], 0
    lead = shifts[-1] * hop
    full = rv.ReverbState({**{k: proc[k] for k in rv.PARAMS}, "width": 1.0,
                           "predelay_ms": base_ms}, sample_rate).process(send[None])
    full = full[:, pre - lead:] if pre >= lead else np.pad(full, ((0, 0), (lead - pre, 0)))
    m_long, s_long = (full[0] + full[1]) / 2, (full[0] - full[1]) / 2
    del full
    n = dry.shape[1]
    at = lambda x, k: x[..., lead - k * hop:lead - k * hop + n]   # noqa: E731  (k hops later)

    # band powers of D + g R(w, k) for every g, w and k, from one STFT of each
    sm_ss = _band_spectra(np.stack([m_long, s_long]), sample_rate)[0]
    frames, first = pd.shape[1], lead // hop
    shifts = [k for k in shifts if first - k + frames <= sm_ss[0].shape[1]]
    pm_long = _power([x[:1] for x in sm_ss])
    ps_long = _power([x[1:] for x in sm_ss])
    d_sum = [(x[:1] + x[1:]) for x in sd]
    d_diff = [(x[:1] - x[1:]) for x in sd]
    parts: dict = {}

    def returned(k):
        """``(|M|^2, |S|^2, Re(D_L+D_R) M*, Re(D_L-D_R) S*)`` per band and frame, k hops later."""
        if k not in parts:
            cut = slice(first - k, first - k + frames)
            parts[k] = (pm_long[:, cut], ps_long[:, cut],
                        _cross(d_sum, [x[:1, cut] for x in sm_ss]),
                        _cross(d_diff, [x[1:, cut] for x in sm_ss]))
        return parts[k]

    def mix_power(level_db, width, k):
        """Band power per frame of the mix at this send level, width and pre-delay."""
        gain = 0.0 if level_db is None else 10 ** (level_db / 20)
        pm, ps, cm, cs = returned(k)
        pr = 2 * pm + 2 * width * width * ps           # sum over L, R of |M +- w S|^2
        pc = cm + width * cs                            # Re(D_L R_L* + D_R R_R*)
        return np.maximum(pd + gain * gain * pr + 2 * gain * pc, 1e-30)

    read: dict = {}

    def cost(level_db, width, k=first_k):
        """How far the mix at this send level, width and pre-delay reads from the reference
        (dB-like).  Its blind RT60 is read at the default pre-delay (once per level and width):
        a pre-delay delays the return's decays but does not change their rates; the early/late
        proxy, which it does move, is read at pre-delay ``k``."""
        power = mix_power(level_db, width, k)
        if (level_db, width) not in read:
            at_first = power if k == first_k else mix_power(level_db, width, first_k)
            read[(level_db, width)] = [amb.blind_rt60(10 * np.log10(at_first[i]), hop_s)[0]
                                       for i in use]
        total = 0.0
        for i, rt in zip(use, read[(level_db, width)]):
            el = amb.early_late_db(power[i], hop_s, rt or ref_rt[bands[i]])
            total += abs((el if el is not None else 60.0) - ref_el[bands[i]])
            total += RT_WEIGHT_DB * abs(math.log2(max(rt or FLOOR_RT60_S, FLOOR_RT60_S)
                                                  / ref_rt[bands[i]]))
        return total / max(1, len(use))

    levels = [float(v) for v in LEVELS_DB]
    dry_cost = cost(None, 1.0)

    # the width: the one whose mix (at the level a first, coarse search finds, at the default
    # pre-delay) reads the reference's mid-band coherence (the return's own coherence is not
    # the mix's: a near-mono mix needs a near-mono reverb, or its side fills with the reverb)
    width = proc["width"]
    ref_coh = dict(zip(ref_amb["bands"], ref_amb["coherence"])).get("mid")
    if ref_coh is not None and ref_coh < MONO_COHERENCE:
        first_pass = {v: cost(v, width) for v in levels[::16] + [levels[-1]]}   # every 8 dB
        g0 = 10 ** (min(first_pass, key=first_pass.get) / 20)
        width = _width_for(ref_coh, dry, at(m_long, first_k), at(s_long, first_k), g0,
                           sample_rate)
        proc = dict(proc, width=width)
        info["reverb"] = proc

    # the PLR floor: a reverb makes the mix denser (loudness up, peaks barely), and the master
    # can lower a PLR (limiter, compressor, its EQ) but never raise it, so the sends stop where
    # the excerpt's PLR, read as the master's stereo stage will widen the mix (_PlrProbe),
    # would fall under min(the dry mix's - PLR_TOLERANCE_DB, the reference's +
    # PLR_MARGIN_DB): a dry mix denser than that keeps its PLR
    plr = None
    if ref_plr_db is not None:
        plr = _PlrProbe(dry, np.stack([m_long + width * s_long, m_long - width * s_long]),
                        sample_rate, ref_width_db, width_amount, lead=lead)
        floor = min(plr(0.0) - PLR_TOLERANCE_DB, float(ref_plr_db) + PLR_MARGIN_DB)
        info["plr_floor_db"] = floor

    # the send level at the default pre-delay, as ever: every 4 dB under the floor, then
    # 0.5 dB steps within 2 dB of the best; with FIT_PREDELAY the same at every pre-delay of
    # the grid, and the best pair wins
    def under_floor(k, v):
        return plr is None or plr.delay(k * hop)(10 ** (v / 20)) >= floor

    def search(k):
        """{(k, level): cost} of the best level every 4 dB at pre-delay k under the floor and
        of the levels every 0.5 dB within 2 dB of it (the floor read in the order of the
        levels' costs, until one passes)."""
        costs = {v: cost(v, width, k) for v in levels[::8] + [levels[-1]]}
        top = next((v for v in sorted(costs, key=costs.get) if under_floor(k, v)), None)
        if top is None:
            return {}
        return {(k, top): costs[top],
                **{(k, v): cost(v, width, k) for v in levels
                   if abs(v - top) <= 2.0 and v != top and under_floor(k, v)}}

    found = {}
    for k in [first_k] + [k for k in shifts if k != first_k]:
        found.update(search(k))
    if not found:
        return [], [], ["space: any reverb would make the mix denser than the reference "
                        "(PLR): no reverb added"], info
    best_k, best = min(found, key=found.get)
    proc = dict(proc, predelay_ms=round(base_ms + best_k * hop_ms, 1))
    info["reverb"] = proc
    info["predelay_costs"] = {round(base_ms + k * hop_ms, 1):
                              min(c for (kk, _), c in found.items() if kk == k)
                              for k in sorted({kk for kk, _ in found})}
    info.update(dry_cost=dry_cost, send_db=best, cost=found[(best_k, best)])
    if dry_cost <= found[(best_k, best)] + WET_MARGIN_DB:
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
