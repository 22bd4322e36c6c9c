"""``automix-train``: train the parameter predictor on self-supervised pairs (Hydra configs).

    automix-train data.root=/path/to/songs                     # configs/train.yaml defaults
    automix-train data=musdb data.root=... loss=audio trainer.device=cuda
    automix-train ... trainer.resume=auto                      # continue <out>/checkpoints/last.pt
    torchrun --nproc_per_node 4 -m training.train ...          # DDP (nccl on GPU, gloo on CPU)

Everything is a pure function of the config and the step: the examples of step ``s`` come from
:class:`training.pairs.StepSampler`, the settings of each example from its own seeded generator,
so a resumed run computes exactly the steps an uninterrupted one would.  Outputs (``trainer.out_dir``
or Hydra's run folder): ``checkpoints/last.pt`` and ``best.pt``, ``log.csv`` and TensorBoard
events (when tensorboard is installed).  See training/README.md, "Training".
"""
from __future__ import annotations

import csv
import math
import os
import random
import sys
import time
from pathlib import Path
from typing import Any, Mapping

from automix._startup import quiet_interrupt

quiet_interrupt("automix-train")  # Ctrl-C while numpy and torch load: one line, exit 130

import numpy as np  # noqa: E402
import torch  # noqa: E402

from automix.errors import AutomixError  # noqa: E402
from automix.model import AutomixNet, count_parameters, load_checkpoint, save_checkpoint
from automix.params import MASTER_SPECS, TRACK_SPECS, to_physical

from .losses import (MultiResolutionSTFTLoss, audio_losses, needs_audio, param_loss,
                     total_loss, weights_from)
from .datasets import plain_config as plain
from .pairs import PairDataset, StepSampler, collate_pairs, section_crop_seconds

LOG_FIELDS = ("step", "kind", "epoch", "loss", "param", "stft", "loudness", "spectrum", "width",
              "dynamics", "lr", "grad_norm", "examples_per_s", "param_l1", "logmel_pred_db",
              "logmel_equal_sum_db", "seconds")
CONFIGS = Path(__file__).resolve().parents[1] / "configs"
_CEILING = [s.name for s in MASTER_SPECS].index("limiter.ceiling_dbtp")


# --------------------------------------------------------------------------- config helpers

def _get(c: Mapping, path: str, default=None):
    node: Any = c
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node or node[part] is None:
            return default
        node = node[part]
    return node


def lr_factor(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """Linear warm-up to 1 over ``warmup`` steps, then cosine decay to ``min_ratio`` at ``total``."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    span = max(total - warmup, 1)
    t = min(max(step - warmup, 0) / span, 1.0)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * t))


# --------------------------------------------------------------------------- RNG state

def rng_state() -> dict:
    np_state = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    state = {"torch": torch.get_rng_state(),
             "numpy": {"key": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                       "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
             "python": {"version": int(py_version), "internal": torch.tensor(py_internal, dtype=torch.int64),
                        "gauss": py_gauss}}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["internal"].tolist()), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


# --------------------------------------------------------------------------- distributed

class Dist:
    def __init__(self, device_kind: str):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.enabled = self.world > 1
        self.started_here = False
        if self.enabled and not torch.distributed.is_initialized():
            backend = "nccl" if device_kind == "cuda" else "gloo"
            if device_kind == "cuda":
                torch.cuda.set_device(self.local_rank)
            torch.distributed.init_process_group(backend)
            self.started_here = True

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            torch.distributed.barrier()

    def close(self) -> None:
        if self.started_here and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    name = str(name or "auto")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise AutomixError("trainer.device=cuda but no CUDA device is available")
        return torch.device(name if ":" in name else f"cuda:{local_rank}")
    if name != "cpu":
        raise AutomixError(f"trainer.device={name!r}: choose auto, cpu or cuda")
    return torch.device("cpu")


# --------------------------------------------------------------------------- data

def build_pairs(c: Mapping, split: str, render_target: bool, keep_audio: bool = False) -> PairDataset:
    from .datasets import build_dataset
    data = dict(c.get("data") or {})
    if not data:
        raise AutomixError("no data config (data=generic|musdb|medleydb|synth data.root=...)")
    data["crop_seconds"] = section_crop_seconds(float(c.get("section_seconds", 4.0)))
    # producers' multitracks (data.human, training/human_pairs.py) replace a share of the pairs
    human = dict(data.get("human") or {})
    ratio = float(human.get("ratio") or 0.0)
    if ratio > 0 and (split == "train" or float(human.get("valid_fraction") or 0.0) > 0):
        from .human_pairs import MixedPairs, build_human
        h = build_human(c, split, render_target, keep_audio, data["crop_seconds"])
        synthetic = None if ratio >= 1 else build_pairs(
            {**c, "data": {**data, "human": {**human, "ratio": 0.0}}}, split, render_target, keep_audio)
        return MixedPairs(synthetic, h, ratio, seed=int(c.get("seed", 0)))
    base = build_dataset(data, split)
    return PairDataset(base, data.get("priors"), seed=int(c.get("seed", 0)),
                       render_target=render_target, keep_audio=keep_audio)


def _worker_init(_):
    # numba's parallel kernels (the console's ballistics) pick a threading layer on first use; the
    # OpenMP one deadlocks in a forked child whose parent already ran torch's OpenMP pool, so
    # workers use numba's own thread pool (one worker = one core anyway).
    import numba
    numba.config.THREADING_LAYER = "workqueue"
    torch.set_num_threads(1)


def worker_start_method() -> str | None:
    """``None`` (fork) unless this process already runs numba's OpenMP layer, which aborts a
    forked child ("fork() called from a process already using GNU OpenMP"): then spawn.  Before
    numba starts a layer, this process is pointed at its fork-safe workqueue layer."""
    import numba
    from numba.np.ufunc import parallel as numba_parallel
    if not getattr(numba_parallel, "_is_initialized", False):
        numba.config.THREADING_LAYER = "workqueue"
        return None
    try:
        layer = numba.threading_layer()
    except ValueError:
        return None
    return "spawn" if layer == "omp" else None


def make_loader(ds, batch_sampler, workers: int, device: torch.device):
    kw = {}
    if workers > 0:
        kw = {"worker_init_fn": _worker_init, "prefetch_factor": 2,
              "multiprocessing_context": worker_start_method()}
    return torch.utils.data.DataLoader(ds, batch_sampler=batch_sampler, num_workers=workers,
                                       collate_fn=collate_pairs, pin_memory=device.type == "cuda",
                                       **kw)


def to_device(batch: Mapping[str, torch.Tensor], device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


# --------------------------------------------------------------------------- rendering

_GAIN = [spec.name for spec in TRACK_SPECS].index("gain_db")
_GAIN_SPEC = TRACK_SPECS[_GAIN]


def with_model_targets(model, batch: dict) -> dict:
    """The batch with its fader targets in the model's terms: for a ``relative_faders`` model,
    each true fader minus the balance point the model predicts from (computed from the same
    log-mels the model reads), kept as ``batch["fader_offset_db"]`` for rendering."""
    if not model.config.get("relative_faders"):
        return batch
    offsets = model.fader_offsets(batch["stem_mels"], batch["mask"], batch["reference_mel"])
    offsets = offsets.to(batch["track_params"].dtype)
    tp = batch["track_params"].clone()
    absolute = _GAIN_SPEC.to_physical(tp[..., _GAIN])
    tp[..., _GAIN] = _GAIN_SPEC.to_normalized(absolute - offsets).clamp(0.0, 1.0)
    return dict(batch, track_params=tp, fader_offset_db=offsets)


def render_prediction(track_norm, master_norm, batch, sample_rate: int, true_ceiling: bool = True,
                      offsets=None):
    """The console's master for predicted normalized parameters on the raw stems (float32);
    ``offsets`` (B, N) dB are added to the predicted faders (a relative-fader model's)."""
    from automix.console import console
    master_norm = master_norm.float()
    if true_ceiling:  # the user sets the ceiling; the prediction's is not heard in the reference
        master_norm = torch.cat([master_norm[:, :_CEILING], batch["master_params"][:, _CEILING:_CEILING + 1],
                                 master_norm[:, _CEILING + 1:]], 1)
    tp = to_physical(track_norm.float(), TRACK_SPECS)
    if offsets is not None:
        tp["gain_db"] = tp["gain_db"] + offsets.float()
    mp = to_physical(master_norm, MASTER_SPECS)
    _, master = console(batch["stems"].float(), batch["mask"], batch["is_stereo"], tp, mp, sample_rate)
    return master


def equal_loudness_sum(stems: torch.Tensor, mask: torch.Tensor, sample_rate: int,
                       target_lufs: float = -23.0) -> torch.Tensor:
    """The naive mix: every real stem at the same (ungated) loudness, summed: (B, 2, T)."""
    from automix.analysis import loudness_torch
    B, N, C, T = stems.shape
    lufs = loudness_torch(stems.reshape(B * N, C, T).float(), sample_rate).reshape(B, N)
    gain = torch.where(lufs > -70.0, 10 ** ((target_lufs - lufs) / 20), torch.zeros_like(lufs))
    gain = gain * mask.to(gain.dtype)
    return (stems * gain[:, :, None, None]).sum(1)


# --------------------------------------------------------------------------- logging

class Logger:
    def __init__(self, out: Path, enabled: bool, tensorboard: bool, every: int, resumed: bool):
        self.enabled, self.every = enabled, max(int(every), 1)
        self.tty = sys.stderr.isatty()
        self.tb = None
        self.csv_path = out / "log.csv"
        if not enabled:
            return
        new = not (resumed and self.csv_path.is_file())
        self.csv_file = open(self.csv_path, "w" if new else "a", newline="")
        self.csv = csv.DictWriter(self.csv_file, LOG_FIELDS, extrasaction="ignore")
        if new:
            self.csv.writeheader()
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self.tb = SummaryWriter(str(out / "tensorboard"))
            except Exception:  # tensorboard not installed: CSV only
                self.tb = None

    def row(self, values: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        self.csv.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in values.items()})
        self.csv_file.flush()
        if self.tb is not None:
            kind = values.get("kind", "train")
            for k, v in values.items():
                if isinstance(v, (int, float)) and k not in ("step", "epoch") and math.isfinite(v):
                    self.tb.add_scalar(f"{kind}/{k}", v, int(values["step"]))

    def progress(self, step: int, total: int, loss: float, rate: float, eta_s: float, final=False):
        if not self.enabled:
            return
        line = (f"step {step}/{total}  loss {loss:.4f}  {rate:.2f} ex/s  "
                f"ETA {_hms(eta_s)}")
        if self.tty:
            sys.stderr.write("\r" + line.ljust(70) + ("\n" if final else ""))
            sys.stderr.flush()
        elif final or step % self.every == 0:
            print(line, flush=True)

    def message(self, text: str) -> None:
        if self.enabled:
            if self.tty:
                sys.stderr.write("\r" + " " * 70 + "\r")
            print(text, flush=True)

    def close(self) -> None:
        if self.enabled:
            self.csv_file.close()
            if self.tb is not None:
                self.tb.close()


def _hms(s: float) -> str:
    if not math.isfinite(s):
        return "--"
    s = int(s)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


# --------------------------------------------------------------------------- validation

@torch.no_grad()
def validate(model, c: Mapping, device, sample_rate: int, autocast) -> dict:
    from automix.analysis import logmel_distance
    t = c["trainer"]
    n_batches = int(t.get("val_batches", 4))
    n_render = min(int(t.get("val_render_batches", 1)), n_batches)
    bs = int(t.get("batch_size", 4))
    ds_p, ds_r = c["_valid"]
    model.eval()
    l1, n, d_pred, d_sum = 0.0, 0, [], []
    for b in range(n_batches):
        keys = [(0, (b * bs + j) % len(ds_p)) for j in range(bs)]
        ds = ds_r if b < n_render else ds_p
        batch = with_model_targets(model, to_device(collate_pairs([ds[k] for k in keys]), device))
        with autocast():
            track, master = model(batch["stem_mels"], batch["mask"], batch["is_stereo"],
                                  batch["reference_mel"])
        l1 += float(param_loss(track, master, batch["track_params"], batch["master_params"],
                               batch["mask"])) * len(keys)
        n += len(keys)
        if b < n_render:
            pred = render_prediction(track, master, batch, sample_rate,
                                     offsets=batch.get("fader_offset_db")).cpu().numpy()
            naive = equal_loudness_sum(batch["stems"], batch["mask"], sample_rate).cpu().numpy()
            target = batch["target"].cpu().numpy()
            for i in range(len(keys)):
                d_pred.append(logmel_distance(pred[i], target[i], sample_rate))
                d_sum.append(logmel_distance(naive[i], target[i], sample_rate))
    model.train()
    out = {"param_l1": l1 / max(n, 1)}
    if d_pred:
        out["logmel_pred_db"] = float(np.mean(d_pred))
        out["logmel_equal_sum_db"] = float(np.mean(d_sum))
    return out


# --------------------------------------------------------------------------- the loop

def _resume_path(resume, out: Path) -> Path | None:
    if resume in (None, "", False, "none", "null"):
        return None
    if str(resume) == "auto":
        p = out / "checkpoints" / "last.pt"
        return p if p.is_file() else None
    p = Path(str(resume)).expanduser()
    if not p.is_file():
        raise AutomixError(f"trainer.resume={resume}: no such checkpoint file")
    return p


def train(cfg: Any, out_dir: str | os.PathLike | None = None) -> dict:
    """Run training from a config (DictConfig or plain dict); returns a summary dict (and the
    trained model under ``"model"``)."""
    c = plain(cfg)
    t = dict(c.get("trainer") or {})
    c["trainer"] = t
    o = dict(c.get("optim") or {})
    weights = weights_from(c.get("loss"))
    audio = needs_audio(weights)
    seed = int(c.get("seed", 0))
    max_steps = int(t.get("max_steps", 1000))
    bs = int(t.get("batch_size", 4))
    if max_steps < 0 or bs < 1:
        raise AutomixError("trainer.max_steps must be >= 0 and trainer.batch_size >= 1")
    out = Path(out_dir or t.get("out_dir") or "outputs/train").expanduser()

    device_name = str(t.get("device", "auto"))
    kind = "cuda" if (device_name.startswith("cuda") or
                      (device_name == "auto" and torch.cuda.is_available())) else "cpu"
    dist = Dist(kind)
    try:
        return _train(c, t, o, weights, audio, seed, max_steps, bs, out, dist)
    finally:
        dist.close()


def _train(c, t, o, weights, audio, seed, max_steps, bs, out: Path, dist: Dist) -> dict:
    device = pick_device(str(t.get("device", "auto")), dist.local_rank)
    seed_everything(seed + dist.rank)
    log = None
    train_ds = build_pairs(c, "train", render_target=audio)
    sr = train_ds.sample_rate
    val_every = int(t.get("val_every", 200) or 0)
    c["_valid"] = None
    if dist.main and val_every > 0 and int(t.get("val_batches", 4)) > 0:
        try:
            c["_valid"] = (build_pairs(c, "valid", render_target=False),
                           build_pairs(c, "valid", render_target=True))
        except AutomixError as exc:
            print(f"automix-train: no validation ({exc})", file=sys.stderr)

    model = AutomixNet(**dict(c.get("model") or {})).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=float(o.get("lr", 3e-4)),
                                  betas=tuple(o.get("betas", (0.9, 0.999))),
                                  weight_decay=float(o.get("weight_decay", 0.01)))
    warmup, min_ratio = int(o.get("warmup_steps", 100)), float(o.get("min_lr_ratio", 0.05))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, warmup, max_steps, min_ratio))

    step, best = 0, math.inf
    ckpt_dir = out / "checkpoints"
    resume = _resume_path(t.get("resume"), out)
    if resume is not None:
        data = load_checkpoint(resume, map_location="cpu")
        try:
            model.load_state_dict(data["model"])
            optimizer.load_state_dict(data["optimizer"])
            scheduler.load_state_dict(data["scheduler"])
            step = int(data["step"])
            best = float(data.get("best", math.inf))
            set_rng_state(data["rng"][dist.rank] if isinstance(data["rng"], list) and
                          dist.rank < len(data["rng"]) else
                          (data["rng"][0] if isinstance(data["rng"], list) else data["rng"]))
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:
            raise AutomixError(f"{resume}: cannot resume from it ({str(exc).splitlines()[0][:160]})") from None
    elif t.get("init_weights"):
        # fine-tuning: start from another run's (or the shipped) weights, with a fresh optimizer,
        # schedule and step count; the architecture must match
        init = Path(str(t["init_weights"])).expanduser()
        if not init.is_file():
            raise AutomixError(f"trainer.init_weights={init}: no such checkpoint file")
        data = load_checkpoint(init, map_location="cpu")
        # the fader's reference point may change (the gain head then learns the new residual)
        arch = lambda cfg: {k: v for k, v in dict(cfg or {}).items()  # noqa: E731
                            if k not in ("relative_faders", "fader_balance", "fader_deviation")}
        if arch(data.get("model_config")) != arch(model.config):
            raise AutomixError(f"{init}: its model config {data.get('model_config')} differs from this "
                               f"run's {dict(model.config)}; set model.* to match")
        model.load_state_dict(data["model"])

    net = model
    if dist.enabled:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    use_amp = bool(t.get("amp", True)) and device.type == "cuda"

    def autocast():
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_amp)

    if dist.main:
        out.mkdir(parents=True, exist_ok=True)
    log = Logger(out, dist.main, bool(t.get("tensorboard", True)), int(t.get("log_every", 10)),
                 resumed=resume is not None)
    log.message(f"automix-train: {len(train_ds.base.songs)} training songs, {sr} Hz, sections "
                f"{float(c.get('section_seconds', 4.0)):g} s, model {count_parameters(model) / 1e6:.2f} M "
                f"parameters, {'audio + parameter' if audio else 'parameter-only'} losses, "
                f"device {device}{f', {dist.world} processes' if dist.enabled else ''}, "
                f"out {out}" + (f", resumed at step {step}" if resume else "") +
                (f", weights from {t['init_weights']}" if t.get("init_weights") and not resume else ""))

    sampler = StepSampler(len(train_ds), bs, seed=seed, start_step=step, max_steps=max_steps,
                          rank=dist.rank, world_size=dist.world)
    workers = int(t.get("num_workers", 2))
    loader = make_loader(train_ds, sampler, workers, device)
    stft = MultiResolutionSTFTLoss(tuple(_get(c, "loss.fft_sizes", (512, 1024, 2048))),
                                   bool(_get(c, "loss.mid_side", True)))
    clip = float(t.get("grad_clip", 1.0) or 0.0)
    ckpt_every = int(t.get("ckpt_every", 500) or 0)
    best_metric = str(t.get("best_metric", "param_l1"))

    def save(name: str, cur_step: int):
        if not dist.main:
            return
        cfg_plain = {k: v for k, v in c.items() if not k.startswith("_")}
        save_checkpoint(ckpt_dir / name, model, optimizer=optimizer.state_dict(),
                        scheduler=scheduler.state_dict(), step=cur_step,
                        epoch=cur_step * bs * dist.world // max(len(train_ds), 1), best=best,
                        config=cfg_plain, rng=rng_state(), world_size=dist.world)

    net.train()
    first_step = step
    stop_after = t.get("stop_after_steps")
    stop_at = max_steps if stop_after in (None, 0) else min(max_steps, step + int(stop_after))
    losses: list[float] = []
    train_time, examples, t_rate, ex_rate = 0.0, 0, time.perf_counter(), 0
    last_loss = float("nan")
    try:
        it = iter(loader)
        t0 = time.perf_counter()
        while step < stop_at:
            batch = with_model_targets(model, to_device(next(it), device))
            with autocast():
                track, master = net(batch["stem_mels"], batch["mask"], batch["is_stereo"],
                                    batch["reference_mel"])
            terms = {}
            if weights["param"]:
                terms["param"] = param_loss(track, master, batch["track_params"],
                                            batch["master_params"], batch["mask"])
            if audio:
                pred = render_prediction(track, master, batch, sr, offsets=batch.get("fader_offset_db"))
                terms.update(audio_losses(pred, batch["target"], sr, weights, stft))
            loss = total_loss(terms, weights)
            if not torch.isfinite(loss):
                raise AutomixError(f"step {step}: the loss is not finite "
                                   f"({ {k: float(v) for k, v in terms.items()} }); lower optim.lr")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            gnorm = (torch.nn.utils.clip_grad_norm_(model.parameters(), clip) if clip > 0 else
                     torch.zeros(()))
            optimizer.step()
            scheduler.step()
            step += 1
            now = time.perf_counter()
            train_time += now - t0
            examples += bs * dist.world
            ex_rate += bs * dist.world
            last_loss = float(loss.detach())
            losses.append(last_loss)
            rate = ex_rate / max(now - t_rate, 1e-9)
            if step - first_step == 1:  # the first step waits for the workers to start: not timed
                t_rate, ex_rate = now, 0
                rate = examples / max(train_time, 1e-9)
            eta = (max_steps - step) * bs * dist.world / max(rate, 1e-9)
            if step < stop_at:
                log.progress(step, max_steps, last_loss, rate, eta)
            if dist.main and (step % log.every == 0 or step == max_steps):
                row = {"step": step, "kind": "train", "epoch": step * bs * dist.world // len(train_ds),
                       "loss": last_loss, "lr": scheduler.get_last_lr()[0],
                       "grad_norm": float(gnorm), "examples_per_s": rate, "seconds": train_time}
                row.update({k: float(v.detach()) for k, v in terms.items()})
                log.row(row)
            if c["_valid"] is not None and val_every > 0 and (step % val_every == 0 or step == max_steps):
                tv = time.perf_counter()
                v = validate(model, c, device, sr, autocast)
                t_rate += time.perf_counter() - tv  # validation time is not training time
                log.row({"step": step, "kind": "valid", **v, "seconds": time.perf_counter() - tv})
                log.message(f"valid @ {step}: " + ", ".join(f"{k} {x:.4f}" for k, x in v.items()))
                metric = v.get(best_metric, v["param_l1"])
                if metric < best:
                    best = metric
                    save("best.pt", step)
            if ckpt_every > 0 and step % ckpt_every == 0 and step < max_steps:
                ts = time.perf_counter()
                save("last.pt", step)
                t_rate += time.perf_counter() - ts
            dist.barrier() if (val_every and step % val_every == 0) else None
            t0 = time.perf_counter()
    except KeyboardInterrupt:
        if dist.main and step > first_step:
            save("last.pt", step)
            log.message(f"interrupted at step {step}; saved {ckpt_dir / 'last.pt'} (resume with "
                        f"trainer.resume={ckpt_dir / 'last.pt'})")
        log.close()
        raise SystemExit(130)
    save("last.pt", step)
    if dist.main and c["_valid"] is None and not (ckpt_dir / "best.pt").exists():
        save("best.pt", step)  # no validation: the last weights are the best we know
    steady = ex_rate / max(time.perf_counter() - t_rate, 1e-9) if step - first_step > 1 else \
        examples / max(train_time, 1e-9)
    summary = {"steps": step - first_step, "final_step": step, "examples": examples,
               "examples_per_s": steady, "seconds": train_time, "losses": losses, "out": str(out),
               "last_loss": last_loss, "model": model}
    if step - first_step > 0:
        log.progress(step, max_steps, last_loss, steady, 0.0, final=True)
    log.message(f"done: {step - first_step} steps, {examples} examples in {train_time:.1f} s, "
                f"{steady:.2f} examples/s (steady state); checkpoints in {ckpt_dir}")
    log.close()
    return summary


# --------------------------------------------------------------------------- entry point

def _task(cfg) -> None:
    from omegaconf.errors import OmegaConfBaseException

    try:
        out = _get(plain(cfg), "trainer.out_dir")
        if not out:
            from hydra.core.hydra_config import HydraConfig
            out = HydraConfig.get().runtime.output_dir
        train(cfg, out)
    except AutomixError as exc:
        print(f"automix-train: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except OmegaConfBaseException as exc:  # e.g. an interpolation that does not resolve
        print(f"automix-train: error: {_one_line(exc)}", file=sys.stderr)
        sys.exit(2)


def _one_line(exc: BaseException) -> str:
    """Hydra's and OmegaConf's messages in one line: the first paragraph, without the
    "full_key: ..." details and links; the options of a config group that was not found."""
    lines = []
    for line in str(exc).strip().splitlines():
        line = line.strip()
        if not line:
            break
        if line.startswith(("full_key:", "object_type=", "reference_type=", "See http")):
            continue
        lines.append(line)
    text = " ".join(lines) or type(exc).__name__
    override = getattr(exc, "override", None)  # a syntax error: name the override
    if isinstance(override, str):
        text = f"cannot parse the override {override!r}: {text}"
    options = getattr(exc, "options", None)
    if options:
        text += f" (available: {', '.join(options)})"
    return text


def _config_types(base, new, where: str = ""):
    """The first override that gives a setting a value of another type than its default (an
    integer setting ``abc``, a number ``true``): ``(key, value, expected)``, or None."""
    if isinstance(base, dict) and isinstance(new, dict):
        for key, value in new.items():
            if key in base:
                found = _config_types(base[key], value, f"{where}{key}" if not where
                                      else f"{where}.{key}")
                if found:
                    return found
        return None
    if isinstance(new, str) and "${" in new:  # an interpolation: checked when it resolves
        return None
    if isinstance(base, bool):
        ok, expected = isinstance(new, bool), "true or false"
    elif isinstance(base, int):
        ok, expected = isinstance(new, int) and not isinstance(new, bool), "an integer"
    elif isinstance(base, float):
        ok, expected = isinstance(new, (int, float)) and not isinstance(new, bool), "a number"
    else:
        return None
    return None if ok else (where, new, expected)


def check_overrides(argv: list[str]) -> None:
    """Compose the config as Hydra is about to, with the command line's overrides, and raise
    :class:`AutomixError` (one line) for what Hydra would report as a multi-line error with
    exit status 1 or what would fail later with a traceback: a key that does not exist, an
    unknown config group option, override syntax, a value of the wrong type."""
    from hydra import compose, initialize_config_dir
    from hydra._internal.utils import get_args_parser
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    args = get_args_parser().parse_args(argv)
    if (args.multirun or args.config_path or args.config_dir or args.config_name
            or args.experimental_rerun or args.help or args.hydra_help or args.shell_completion):
        return  # Hydra's own modes: left to Hydra
    groups = {p.name for p in CONFIGS.iterdir() if p.is_dir()}

    def key(override: str) -> str:
        return override.split("=", 1)[0].lstrip("+~").split("@", 1)[0]

    try:
        with initialize_config_dir(config_dir=str(CONFIGS), version_base=None):
            cfg = compose("train", overrides=list(args.overrides))
            base = compose("train", overrides=[o for o in args.overrides if key(o) in groups])
        new = OmegaConf.to_container(cfg, resolve=False)
        found = _config_types(OmegaConf.to_container(base, resolve=False), new)
    except (HydraException, OmegaConfBaseException) as exc:
        raise AutomixError(_one_line(exc)) from None
    if found:
        where, value, expected = found
        raise AutomixError(f"{where}={value}: expected {expected}")


def main() -> None:
    try:
        check_overrides(sys.argv[1:])
    except AutomixError as exc:
        print(f"automix-train: error: {exc}", file=sys.stderr)
        sys.exit(2)
    import hydra
    # the configs folder beside the package (an absolute path: with a module-based search
    # path Hydra would look for a python package called "configs")
    hydra.main(config_path=str(CONFIGS), config_name="train", version_base=None)(_task)()


if __name__ == "__main__":
    main()
