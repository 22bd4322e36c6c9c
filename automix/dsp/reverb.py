"""Algorithmic stereo reverb: a finite impulse response built from the parameters, convolved.

Design choice.  A feedback delay network is a long recursion that is slow and fragile to
differentiate sample by sample; instead the reverb's impulse response (IR) is *built*
differentiably from its parameters and applied by FFT convolution.  The IR is finite, so the
reverb is trivially stable (no loop gain at all), and the three executors share one IR:

- training (:func:`reverb`): batched torch, the IR built in torch, convolved by FFT;
  differentiable in every parameter;
- render (:class:`ReverbState`): the same IR built once in float64 and convolved block by block
  (uniformly partitioned overlap-add, the tail carried from block to block); the noise is seeded,
  so a re-render is bit-exact;
- spectral model (:func:`reverb_power_response`, :func:`expected_decay_db`): the expected power
  the return adds per frequency (mid, side, cross) and the energy decay per band, in closed form.

The IR (per output channel ``c`` in {L, R}), with ``t`` in seconds after the pre-delay ``d``:

    h_c = HP * LP * delay_d * ( g_e * early_c + g_l * late_c )

- ``early_c(t) = sum_k a_ck delta(t - tau_ck)``: 12 reflections per channel at fixed (seeded)
  times between 3 and 60 ms, different for L and R, gains ``a_ck`` with random signs falling as
  ``exp(-tau / 40 ms)``, normalised to ``sum_k a_ck^2 = 1``.  Each is a band-limited (fractional)
  delay ``exp(-j w tau fs)`` on the FFT grid.
- ``late_c = (1 / sqrt(E_mid)) * sum_b e_b . n_cb``: the envelope ``e_b(t) = o(t) exp(-3 ln(10)
  t / RT60_b)`` (the amplitude falls 60 dB in RT60_b) on band ``b``'s noise ``n_cb``, for b in
  (low, mid, high).  ``n_cb`` (:func:`band_noise`): seeded white Gaussian noise, independent for
  L and R (so the tail is diffuse, with the echo density of noise from its first sample: no
  metallic ringing), split by zero-phase complementary crossovers ``C_low + C_mid + C_high = 1``
  at 500 Hz and 4 kHz (each transition a raised cosine over +-1/2 octave in log frequency) and
  flattened (its short-time energy made constant), periodic with a period of at least 3 s.
  ``o(t) = sin^2(pi t / 60 ms)`` for t < 30 ms, then 1: the late part fades in under the early
  reflections.  ``E_mid = sum_n e_mid(n)^2``, so the late part's expected power at mid
  frequencies is 1.
- Early/late balance ``r = 10^(early_late_db / 10)`` (early energy over late energy):
  ``g_e = sqrt(r / (1 + r))``, ``g_l = sqrt(1 / (1 + r))``: the return's expected power at mid
  frequencies is 1 (before HP/LP) whatever the balance.
- ``delay_d = exp(-j w d fs / 1000)`` (pre-delay ``d`` in ms, fractional: differentiable).
- ``HP``, ``LP``: the return's RBJ second-order high-pass and low-pass (Q 0.7071) of
  :mod:`automix.dsp.eq`, their exact frequency responses.
- Width ``w`` (0..1): ``h_L' = (1+w)/2 h_L + (1-w)/2 h_R``, ``h_R' = (1-w)/2 h_L + (1+w)/2 h_R``,
  i.e. mid ``(h_L+h_R)/2`` kept, side ``w (h_L-h_R)/2``.  The mono sum ``L'+R'`` does not depend on
  the width and, the two tails being uncorrelated, has no comb filtering: mono compatible.

Input: the send's mid ``u = (L+R)/2`` (mono in, stereo out); output ``y_c = u * h_c'``.

Everything is built on an FFT grid of ``n_fft`` points (:func:`ir_length`): the envelopes run
for ``1.4 max(RT60)`` (down 84 dB), then stop; the grid adds the pre-delay and a margin for the
filters' tails, so the circular wrap of the fractional delays and HP/LP is below -100 dB.  The
IR of a row depends on ``n_fft`` only through that wrap and the truncation: rows of a batch share
the longest row's length, which changes a row's output by less than -80 dB.
"""
from __future__ import annotations

import functools
import math

import numpy as np
import scipy.fft
import torch

from ..errors import AutomixError
from .limits import check_limits
from .eq import Band, decay_length, frequency_response

PARAMS = ("predelay_ms", "rt60_low_s", "rt60_mid_s", "rt60_high_s", "early_late_db", "width",
          "hp_hz", "lp_hz")

# the network's ranges (what a fit or prediction may choose): (name, unit, min, max, default,
# scale); automix.console.graph declares them as ParamSpecs
SPECS = (
    ("predelay_ms", "ms", 0.0, 150.0, 20.0, "linear"),
    ("rt60_low_s", "s", 0.2, 8.0, 1.8, "log"),
    ("rt60_mid_s", "s", 0.2, 8.0, 1.5, "log"),
    ("rt60_high_s", "s", 0.1, 6.0, 0.8, "log"),
    ("early_late_db", "dB", -24.0, 12.0, -6.0, "linear"),
    ("width", "", 0.0, 1.0, 1.0, "linear"),
    ("hp_hz", "Hz", 20.0, 1000.0, 150.0, "log"),
    ("lp_hz", "Hz", 1000.0, 20000.0, 9000.0, "log"),
)
# what a hand-edited settings file may hold (checked by :func:`check_params`)
LIMITS = {"predelay_ms": (0.0, 500.0), "rt60_low_s": (0.05, 30.0), "rt60_mid_s": (0.05, 30.0),
          "rt60_high_s": (0.05, 30.0), "early_late_db": (-60.0, 30.0), "width": (0.0, 1.0),
          "hp_hz": (10.0, 20000.0), "lp_hz": (100.0, 100000.0)}

CROSSOVER_HZ = (500.0, 4000.0)
BANDS = ("low", "mid", "high")
FILTER_Q = 0.7071
EARLY_COUNT = 12
EARLY_SPAN_MS = (3.0, 60.0)
EARLY_DECAY_MS = 40.0
ONSET_MS = 30.0
TAIL_RT60S = 1.4          # envelope length in units of the longest RT60 (-84 dB)
_LN1000 = 3.0 * math.log(10.0)   # amplitude exp(-_LN1000 t / RT60) is -60 dB at t = RT60
_NOISE_SEEDS = (0x5EED0, 0x5EED1)
_EARLY_SEED = 0xEA51


def check_params(p: dict, where: str = "reverb") -> None:
    """One-line :class:`AutomixError` for a missing, non-finite or out-of-range parameter
    (values may be numbers or tensors of any shape) and for ``hp_hz >= lp_hz``."""
    check_limits(p, {name: LIMITS[name] for name in PARAMS}, where)
    if bool((torch.as_tensor(p["hp_hz"]) >= torch.as_tensor(p["lp_hz"])).any()):
        raise AutomixError(f"{where}.hp_hz must be below {where}.lp_hz")


# ---------------------------------------------------------------------------------------------
# The fixed (seeded) parts
# ---------------------------------------------------------------------------------------------

FLATTEN_MS = (50.0, 20.0, 10.0)   # per band: the window over which its energy is made constant


def noise_period(sample_rate: float) -> int:
    """Length of the late noise's period: the power of two of at least 3 s (4.1 to 5.9 s at
    32 to 96 kHz)."""
    return 1 << int(math.ceil(math.log2(3.0 * sample_rate)))


@functools.lru_cache(maxsize=2)
def band_noise(sample_rate: float) -> np.ndarray:
    """``(2, 3, P)`` float64: per channel (one seed each) and band, periodic white Gaussian noise
    split by the crossovers (circularly, exact for a periodic signal) and *flattened*: divided by
    the square root of its own energy smoothed over ``FLATTEN_MS`` (circular moving average),
    then scaled back to its mean power.  Flat band energy is what makes each band's decay the
    envelope's straight line (a Schroeder RT60 within a few percent) instead of the scatter of a
    random decay (+-20 % at low frequencies).  Rate-dependent, parameter-free: cached."""
    n = noise_period(sample_rate)
    xo = _crossover_np(np.fft.rfftfreq(n, 1.0 / sample_rate))
    out = np.empty((2, 3, n))
    for c, seed in enumerate(_NOISE_SEEDS):
        spec = np.fft.rfft(np.random.default_rng(seed).standard_normal(n))
        for b in range(3):
            x = np.fft.irfft(spec * xo[b], n)
            w = max(1, int(round(FLATTEN_MS[b] * sample_rate / 1000.0)))
            power = x * x
            csum = np.concatenate(([0.0], np.cumsum(np.concatenate((power, power[:w])))))
            smooth = (csum[w:w + n] - csum[:n]) / w          # mean of power[i : i + w] (circular)
            smooth = np.roll(smooth, w // 2)                  # centred on i
            if not power.mean() > 0:        # a band wholly above Nyquist (a very low rate)
                out[c, b] = 0.0
                continue
            y = x / np.sqrt(np.maximum(smooth, 1e-30 * power.mean()))
            out[c, b] = y * np.sqrt(power.mean() / (y * y).mean())
    return out


def _late_noise(sample_rate: float, n: int) -> np.ndarray:
    """``(2, 3, n)``: :func:`band_noise` repeated to length ``n`` (a prefix of any longer one)."""
    base = band_noise(sample_rate)
    reps = -(-n // base.shape[-1])
    return np.tile(base, (1, 1, reps))[..., :n] if reps > 1 else base[..., :n]


@functools.lru_cache(maxsize=1)
def early_pattern() -> tuple[np.ndarray, np.ndarray]:
    """Reflection times (s) and gains, each (2, EARLY_COUNT): fixed, seeded, rate-independent."""
    rng = np.random.default_rng(_EARLY_SEED)
    lo, hi = EARLY_SPAN_MS
    times = np.sort(rng.uniform(lo, hi, size=(2, EARLY_COUNT)), axis=1) / 1000.0
    gains = (rng.choice([-1.0, 1.0], size=(2, EARLY_COUNT)) * rng.uniform(0.5, 1.0, (2, EARLY_COUNT))
             * np.exp(-times / (EARLY_DECAY_MS / 1000.0)))
    gains /= np.sqrt((gains ** 2).sum(axis=1, keepdims=True))
    return times, gains


def _crossover_np(freqs_hz: np.ndarray) -> np.ndarray:
    """:func:`crossover` in numpy (the same formula), for the noise's one-off split."""
    def low_part(f0):
        x = np.clip(np.log2(np.maximum(freqs_hz, 1e-3) / f0), -0.5, 0.5)
        return np.cos(math.pi / 2 * (x + 0.5)) ** 2
    low = low_part(CROSSOVER_HZ[0])
    high = 1.0 - low_part(CROSSOVER_HZ[1])
    return np.stack((low, 1.0 - low - high, high))


def crossover(freqs_hz: torch.Tensor) -> torch.Tensor:
    """Zero-phase complementary crossover magnitudes ``(3, F)`` (low, mid, high) summing to 1."""
    def low_part(f0):  # 1 below f0/sqrt2, 0 above f0*sqrt2, raised cosine in log2 between
        x = torch.log2(torch.clamp(freqs_hz, min=1e-3) / f0).clamp(-0.5, 0.5)
        return torch.cos(math.pi / 2 * (x + 0.5)) ** 2
    low = low_part(CROSSOVER_HZ[0])
    high = 1.0 - low_part(CROSSOVER_HZ[1])
    return torch.stack((low, 1.0 - low - high, high))


def onset(t: torch.Tensor) -> torch.Tensor:
    t_on = ONSET_MS / 1000.0
    return torch.where(t < t_on, torch.sin(math.pi / 2 * t / t_on) ** 2, torch.ones_like(t))


def _filters(p: dict, sample_rate: float) -> list[Band]:
    q = torch.full_like(p["hp_hz"], FILTER_Q)
    return [Band("highpass", p["hp_hz"], q), Band("lowpass", p["lp_hz"], q)]


def ir_length(p: dict, sample_rate: float) -> tuple[int, int]:
    """``(n_env, n_fft)`` for parameters ``p`` (the largest over rows): envelope samples
    (``1.4 max RT60``) and the FFT grid (pre-delay + envelope + the HP/LP's decay to 1e-12 +
    10 ms, rounded up to a fast length)."""
    with torch.no_grad():
        rt_max = max(float(torch.as_tensor(p[k]).max()) for k in PARAMS[1:4])
        pre = float(torch.as_tensor(p["predelay_ms"]).max())
        bands = _filters({k: torch.as_tensor(p[k], dtype=torch.float64).reshape(-1)
                          for k in ("hp_hz", "lp_hz")}, sample_rate)
        tail = decay_length(bands, sample_rate, floor=1e-12)
    n_env = int(math.ceil(TAIL_RT60S * rt_max * sample_rate))
    n = int(math.ceil(pre * sample_rate / 1000.0)) + n_env + tail + int(0.01 * sample_rate)
    return n_env, scipy.fft.next_fast_len(n, real=True)


# ---------------------------------------------------------------------------------------------
# The impulse response (torch, differentiable)
# ---------------------------------------------------------------------------------------------

def _rows(p: dict, dtype=None, device=None) -> dict:
    ref = torch.as_tensor(p["rt60_mid_s"])
    dtype = dtype or (ref.dtype if ref.is_floating_point() else torch.float64)
    return {k: torch.as_tensor(p[k], dtype=dtype, device=device or ref.device).reshape(-1)
            for k in PARAMS}


def _balance(p):
    r = torch.pow(10.0, p["early_late_db"] / 10)
    return torch.sqrt(r / (1 + r)), torch.sqrt(1 / (1 + r))


@functools.lru_cache(maxsize=4)
def _early_spectrum(sample_rate: float, n_fft: int) -> torch.Tensor:
    """The early reflections on the grid, (2, F) complex128 (no parameters: cached)."""
    times, gains = early_pattern()
    k = np.arange(n_fft // 2 + 1)
    out = np.zeros((2, k.size), dtype=np.complex128)
    for c in range(2):
        for tau, a in zip(times[c] * sample_rate, gains[c]):
            out[c] += a * np.exp(-2j * np.pi * k * (tau / n_fft))
    return torch.from_numpy(out)


def reverb_ir_spectrum(p: dict, sample_rate: float, n_env: int | None = None,
                       n_fft: int | None = None) -> torch.Tensor:
    """The IR's spectrum ``(rows, 2, n_fft//2 + 1)`` (complex) of the module docstring, width
    folded in.  ``p``: tensors ``(rows,)`` (or numbers); ``n_env``/``n_fft`` default to
    :func:`ir_length`."""
    p = _rows(p)
    dtype, device = p["rt60_mid_s"].dtype, p["rt60_mid_s"].device
    if n_env is None or n_fft is None:
        n_env, n_fft = ir_length(p, sample_rate)
    cdtype = torch.complex128 if dtype == torch.float64 else torch.complex64
    freqs = torch.arange(n_fft // 2 + 1, dtype=dtype, device=device) * (sample_rate / n_fft)
    omega = 2 * math.pi * freqs / sample_rate

    # late: seeded noise under per-band envelopes, split by the crossovers
    t = torch.arange(n_env, dtype=dtype, device=device) / sample_rate
    rt = torch.stack([p["rt60_low_s"], p["rt60_mid_s"], p["rt60_high_s"]], dim=1)  # (rows, 3)
    env = onset(t) * torch.exp(-(_LN1000 / rt).unsqueeze(-1) * t)                  # (rows, 3, n)
    e_mid = (env[:, 1] ** 2).sum(-1)                                               # (rows,)
    noise = torch.as_tensor(_late_noise(sample_rate, n_env), dtype=dtype, device=device)
    late = torch.einsum("rbn,cbn->rcn", env, noise) / torch.sqrt(e_mid)[:, None, None]
    late = torch.fft.rfft(late, n=n_fft)                                           # (rows, 2, F)

    early = _early_spectrum(sample_rate, n_fft).to(device)                          # (2, F)

    g_e, g_l = _balance(p)
    h = g_e[:, None, None] * early.to(cdtype) + g_l[:, None, None] * late.to(cdtype)
    shift = torch.exp(-1j * omega * (p["predelay_ms"] * sample_rate / 1000.0).unsqueeze(-1))
    h = h * (shift * frequency_response(_filters(p, sample_rate), omega, sample_rate)).unsqueeze(1)
    w = p["width"][:, None]
    left = (1 + w) / 2 * h[:, 0] + (1 - w) / 2 * h[:, 1]
    right = (1 - w) / 2 * h[:, 0] + (1 + w) / 2 * h[:, 1]
    return torch.stack((left, right), dim=1)


def reverb_ir(p: dict, sample_rate: float, n_env: int | None = None,
              n_fft: int | None = None) -> torch.Tensor:
    """The impulse response ``(rows, 2, n_fft)`` (real)."""
    if n_env is None or n_fft is None:
        n_env, n_fft = ir_length(p, sample_rate)
    return torch.fft.irfft(reverb_ir_spectrum(p, sample_rate, n_env, n_fft), n=n_fft)


def reverb(x: torch.Tensor, p: dict, sample_rate: float, n_env: int | None = None,
           n_fft: int | None = None) -> torch.Tensor:
    """Training executor: the return for send signals ``x`` (rows, 1 or 2, T), parameters
    ``(rows,)``: ``(rows, 2, T)``, the linear convolution of ``u = mean over channels of x`` with
    the IR, cut to the crop (only the IR's first T samples reach it)."""
    T = x.shape[-1]
    ir = reverb_ir({k: torch.as_tensor(v, dtype=x.dtype, device=x.device) for k, v in p.items()},
                   sample_rate, n_env, n_fft)[..., :T]
    u = x.mean(dim=-2, keepdim=True)
    n = scipy.fft.next_fast_len(T + ir.shape[-1] - 1, real=True)
    y = torch.fft.irfft(torch.fft.rfft(u, n=n) * torch.fft.rfft(ir, n=n), n=n)
    return y[..., :T]


# ---------------------------------------------------------------------------------------------
# Render executor
# ---------------------------------------------------------------------------------------------

class PartitionedConvolution:
    """Mono-in, multi-channel-out FIR convolution, block by block (uniformly partitioned
    convolution): the IR is cut into partitions of ``block`` samples ``h_p``; the input, in
    partitions of the same length ``x_k``, is kept as spectra (FFT of 2 x block) in a
    frequency-domain delay line; the output of partition ``k`` is the first half of
    ``irfft(X_k H_0 + sum_{p >= 1} X_{k-p} H_p)`` plus the second half of partition ``k-1``'s.
    Calls of any length work: a partition not yet complete is transformed with its missing
    samples as zeros (they cannot reach earlier outputs), so each call's output is exact and
    there is no latency; calls of exactly ``block`` samples cost one FFT and two inverse FFTs.
    Exact linear convolution up to float rounding; deterministic for a given sequence of call
    lengths.  ``block`` None: the first call's length, within 4,096..65,536."""

    def __init__(self, ir: np.ndarray, block: int | None):
        self.ir = np.asarray(ir, dtype=np.float64)
        self.block = None
        if block is not None:
            self._start(int(block))

    def _start(self, block: int) -> None:
        ir = self.ir
        self.block = block
        parts = max(1, -(-ir.shape[-1] // block))
        padded = np.zeros((ir.shape[0], parts * block))
        padded[:, :ir.shape[-1]] = ir
        self.H = scipy.fft.rfft(padded.reshape(ir.shape[0], parts, block), n=2 * block)
        self.past = np.zeros((max(1, parts - 1), block + 1), dtype=np.complex128)  # X_{k-1}, ...
        self.newest = 0                   # index in ``past`` of X_{k-1}
        self.older = None                 # sum_{p >= 1} X_{k-p} H_p of the current partition
        self.cur = np.zeros(block)        # the current partition's input so far
        self.pos = 0
        self.tail = np.zeros((ir.shape[0], block))

    def _older(self) -> np.ndarray:
        parts = self.H.shape[1]
        acc = np.zeros((self.H.shape[0], self.block + 1), dtype=np.complex128)
        for p in range(1, parts):
            acc += self.past[(self.newest - (p - 1)) % self.past.shape[0]] * self.H[:, p]
        return acc

    def process(self, u: np.ndarray) -> np.ndarray:
        """``u`` (n,) float64 -> ``(channels, n)``."""
        n = u.shape[-1]
        if self.block is None:
            self._start(min(max(n, 4096), 1 << 16))
        B = self.block
        out = np.empty((self.H.shape[0], n))
        done = 0
        while done < n:
            take = min(B - self.pos, n - done)
            self.cur[self.pos:self.pos + take] = u[done:done + take]
            if self.older is None:
                self.older = self._older()
            spec = scipy.fft.rfft(self.cur, n=2 * B)
            y = scipy.fft.irfft(spec * self.H[:, 0] + self.older, n=2 * B)
            end = self.pos + take
            out[:, done:done + take] = y[:, self.pos:end] + self.tail[:, self.pos:end]
            done += take
            self.pos = end
            if self.pos == B:             # the partition is complete: into the delay line
                self.newest = (self.newest + 1) % self.past.shape[0]
                self.past[self.newest] = spec
                self.tail = y[:, B:]
                self.cur = np.zeros(B)
                self.pos = 0
                self.older = None
        return out


class ReverbState:
    """Render executor: the reverb of one send bus, float64, block by block.  ``params``: numbers
    (settings.json's values); the IR is built once with :func:`reverb_ir` in float64 (the same
    function as the training executor), then convolved by :class:`PartitionedConvolution`
    (``block`` None: partitions of the first block's length)."""

    def __init__(self, params: dict, sample_rate: int, block: int | None = None):
        check_params(params)
        p = {k: torch.tensor([float(params[k])], dtype=torch.float64) for k in PARAMS}
        with torch.no_grad():
            self.ir = reverb_ir(p, sample_rate)[0].numpy()
        self.conv = PartitionedConvolution(self.ir, block)

    def process(self, block: np.ndarray) -> np.ndarray:
        """``block`` (1 or 2, n) float64, the send bus -> the return ``(2, n)``."""
        return self.conv.process(np.asarray(block, dtype=np.float64).mean(axis=0))


# ---------------------------------------------------------------------------------------------
# Spectral model
# ---------------------------------------------------------------------------------------------

def _late_band_products(p: dict, sample_rate: float, n_env: int) -> torch.Tensor:
    """``sum_n e_b(n) e_b'(n) / E_mid``, (rows, 3, 3)."""
    dtype = p["rt60_mid_s"].dtype
    t = torch.arange(n_env, dtype=dtype, device=p["rt60_mid_s"].device) / sample_rate
    rt = torch.stack([p["rt60_low_s"], p["rt60_mid_s"], p["rt60_high_s"]], dim=1)
    env = onset(t) * torch.exp(-(_LN1000 / rt).unsqueeze(-1) * t)
    gram = env @ env.transpose(1, 2)
    return gram / gram[:, 1:2, 1:2]


def _early_terms(f: torch.Tensor, width_octaves: float | None):
    """``|early_L|^2``, ``|early_R|^2`` and ``Re(early_L early_R*)`` at ``f`` (F,): exact, or
    averaged over ``[f 2^(-w/2), f 2^(w/2)]`` in closed form: each is a sum over reflection pairs
    ``a_k a_l cos(2 pi f (tau_k - tau_l))``, whose mean over ``[f1, f2]`` is
    ``(sin(2 pi f2 D) - sin(2 pi f1 D)) / (2 pi D (f2 - f1))`` (1 where ``D = 0``)."""
    times, gains = early_pattern()

    def pairs(c1, c2):
        d = torch.as_tensor((times[c1][:, None] - times[c2][None, :]).reshape(-1), dtype=f.dtype)
        w = torch.as_tensor((gains[c1][:, None] * gains[c2][None, :]).reshape(-1), dtype=f.dtype)
        if width_octaves is None:
            mean_cos = torch.cos(2 * math.pi * f[None, :] * d[:, None])
        else:
            f1, f2 = f * 2 ** (-width_octaves / 2), f * 2 ** (width_octaves / 2)
            dd = d[:, None]
            safe = torch.where(dd == 0, torch.ones_like(dd), dd)
            mean_cos = torch.where(
                dd == 0, torch.ones_like(dd * f1),
                (torch.sin(2 * math.pi * f2 * safe) - torch.sin(2 * math.pi * f1 * safe))
                / (2 * math.pi * safe * (f2 - f1)))
        return (w[:, None] * mean_cos).sum(0)

    return pairs(0, 0), pairs(1, 1), pairs(0, 1)


def reverb_power_response(p: dict, freqs_hz, sample_rate: float,
                          average_early: bool = False, cell_octaves: float | None = None) -> dict:
    """Expected power response of the return relative to its input ``u = (L+R)/2``, at
    ``freqs_hz`` (F,), over the seeded noise's ensemble (the early reflections exactly):
    ``{"mid", "side", "cross"}``, each (rows, F): ``E|M|^2``, ``E|S|^2``, ``Re E[M S*]`` with
    ``M = (H_L'+H_R')/2``, ``S = (H_L'-H_R')/2``.  Per channel,
    ``E|H_c|^2 = |HP LP|^2 (g_e^2 |early_c|^2 + g_l^2 sum_bb' C_b C_b' <e_b, e_b'> / E_mid)``;
    the two late tails are independent of each other and of the early part, so
    ``E[H_L H_R*] = |HP LP|^2 g_e^2 early_L early_R*``.  ``average_early``: the early part's
    comb averaged over frequency instead (``|early_c|^2 -> sum_k a_ck^2 = 1``, the L/R cross
    term -> 0: the reflection times differ), what a long-term spectrum on cells wider than the
    comb's teeth sees.  ``cell_octaves``: the early terms averaged exactly over cells of that
    width in octaves centred on ``freqs_hz`` (what the console's spectral executor uses: right
    also where the cells are narrower than the comb's teeth, at low frequencies)."""
    p = _rows(p)
    dtype = p["rt60_mid_s"].dtype
    f = torch.as_tensor(freqs_hz, dtype=dtype, device=p["rt60_mid_s"].device)
    omega = 2 * math.pi * f / sample_rate
    n_env, _ = ir_length(p, sample_rate)
    xo = crossover(f)                                                          # (3, F)
    late = torch.einsum("bf,rbc,cf->rf", xo, _late_band_products(p, sample_rate, n_env), xo)
    if average_early:
        el, er, elr = torch.ones_like(f), torch.ones_like(f), torch.zeros_like(f)
    else:
        el, er, elr = _early_terms(f, cell_octaves)
    g_e, g_l = (g[:, None] ** 2 for g in _balance(p))
    filt = frequency_response(_filters(p, sample_rate), omega, sample_rate).abs() ** 2
    pl = g_e * el + g_l * late
    pr = g_e * er + g_l * late
    lr = g_e * elr                                                             # Re E[H_L H_R*]
    w = p["width"][:, None]
    return {"mid": filt * (pl + pr + 2 * lr) / 4,
            "side": filt * w ** 2 * (pl + pr - 2 * lr) / 4,
            "cross": filt * w * (pl - pr) / 4}


def expected_decay_db(p: dict, times_s) -> torch.Tensor:
    """Expected Schroeder energy decay curve of the late part per band, (rows, 3, len(times)),
    in dB: ``10 log10(sum_{t' >= t} e_b(t')^2 / sum e_b^2)``, which after the 30 ms onset is the
    straight line ``-60 (t - t0) / RT60_b`` plus a constant (the time-domain measure a fit can
    compare with the reference's decay)."""
    p = _rows(p)
    t = torch.as_tensor(times_s, dtype=p["rt60_mid_s"].dtype)
    rt = torch.stack([p["rt60_low_s"], p["rt60_mid_s"], p["rt60_high_s"]], dim=1)
    # closed form for the pure exponential (the onset changes only the first 30 ms)
    t0 = ONSET_MS / 1000.0
    return -60.0 * torch.clamp(t - t0, min=0.0) / rt.unsqueeze(-1)
