"""The parameter predictor: stems + reference -> every console parameter, normalized to [0, 1].

    stem log-mels (B, N, 2, M, F) --shared encoder--> track tokens (B, N, D) (+ stereo flag)
    reference log-mel (B, 2, M, F) --same encoder---> reference token (B, 1, D)
    a learned master token                              (B, 1, D)
        -> transformer over [tracks | reference | master] with a padding mask (no positions:
           the tracks are a set, so predictions are order-equivariant)
        -> track head (B, N, len(TRACK_SPECS)), master head (B, len(MASTER_SPECS)), sigmoids
    optional tone prior (``tone_prior``): each track's low/high shelf gains from its own
    spectrum shape by a linear map fitted apart (automix/model/tone_prior.py); inference uses
    them in place of the track head's shelves

``automix.params.to_physical`` turns the outputs into dB, Hz, ms.  The heads start at the
parameter defaults (flat EQ, no compression, unity gain) so an untrained model is neutral.
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import AutomixError
from ..params import MASTER_SPECS, TRACK_SPECS
from .features import N_MELS, fader_offsets_db, loudness_offsets_db, reference_balance_db
from .tone_prior import ShelfPrior


class Encoder(nn.Module):
    """(B, 2, M, F) mid/side log-mel in dB -> (B, D): a strided CNN plus band statistics,
    pooled over time (mean and standard deviation), so any length works."""

    def __init__(self, dim: int, channels=(32, 64, 96, 128)):
        super().__init__()
        layers, c_in = [], 2
        for c in channels:
            layers += [nn.Conv2d(c_in, c, 3, stride=2, padding=1), nn.GroupNorm(4, c), nn.GELU()]
            c_in = c
        self.cnn = nn.Sequential(*layers)
        bands_out = N_MELS // 2 ** len(channels)
        self.from_cnn = nn.Linear(2 * c_in * bands_out, dim)
        self.from_stats = nn.Linear(4 * N_MELS, dim)
        self.out = nn.Sequential(nn.GELU(), nn.Linear(dim, dim))

    def forward(self, mel_db: torch.Tensor) -> torch.Tensor:
        x = (mel_db + 50.0) / 25.0  # about zero mean, unit scale for music levels
        h = self.cnn(x)  # (B, C, M', F')
        h = h.flatten(1, 2)  # (B, C*M', F')
        cnn = torch.cat([h.mean(-1), h.std(-1, unbiased=False)], -1)
        stats = torch.cat([x.mean(-1), x.std(-1, unbiased=False)], -1).flatten(1)  # (B, 4*M)
        return self.out(self.from_cnn(cnn) + self.from_stats(stats))


FADER_BALANCES = ("mel", "reference", "reference_loudness")
LOUDNESS_BALANCE_STRENGTH = 0.3  # balance error on 16 LMMS songs, 0.1 / 0.3 / 1: 1.83 / 1.72 / 1.94 dB (benchmarks/balance_points.py)


class AutomixNet(nn.Module):
    def __init__(self, dim: int = 192, depth: int = 4, heads: int = 6, ff_mult: int = 2,
                 dropout: float = 0.0, relative_faders: bool = False, fader_balance: str = "mel",
                 fader_deviation: float = 1.0, tone_prior: bool = False):
        super().__init__()
        # relative_faders: the gain head predicts each fader from a balance point instead of
        # from the raw stem level; fader_balance says which: "mel", every stem at the median
        # level (features.fader_offsets_db), or "reference", the levels at which the stems'
        # summed spectrum follows the reference's (features.reference_balance_db), or
        # "reference_loudness", the same fit pulled (10x harder) toward equal loudness instead
        # of equal mel level (nearer producers' balances: training/README.md)
        # fader_deviation: how much of the learned deviation from the balance point inference
        # applies (1: all of it; 0: faders at the balance point, shifted by the mean learned
        # fader); an inference setting, training always learns the whole deviation
        if not 0.0 <= float(fader_deviation) <= 1.0:
            raise AutomixError(f"model.fader_deviation={fader_deviation!r}: expected 0..1")
        if fader_balance not in FADER_BALANCES:
            raise AutomixError(f"model.fader_balance={fader_balance!r}: choose {', '.join(FADER_BALANCES)}")
        self.config = {"dim": dim, "depth": depth, "heads": heads, "ff_mult": ff_mult,
                       "dropout": dropout, "relative_faders": bool(relative_faders),
                       "fader_balance": fader_balance, "fader_deviation": float(fader_deviation),
                       "tone_prior": bool(tone_prior)}
        # not trained with the rest: fitted in closed form by training/tone_prior.py
        self.tone_prior = ShelfPrior() if tone_prior else None
        self.encoder = Encoder(dim)
        self.kind = nn.Embedding(3, dim)  # 0 track, 1 reference, 2 master
        self.stereo = nn.Embedding(2, dim)
        self.master = nn.Parameter(torch.zeros(dim))
        layer = nn.TransformerEncoderLayer(dim, heads, ff_mult * dim, dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.track_head = nn.Linear(dim, len(TRACK_SPECS))
        self.master_head = nn.Linear(dim, len(MASTER_SPECS))
        for head, specs in ((self.track_head, TRACK_SPECS), (self.master_head, MASTER_SPECS)):
            nn.init.normal_(head.weight, std=1e-3)
            with torch.no_grad():  # sigmoid(bias) = the normalized default
                d = torch.tensor([float(s.to_normalized(s.default)) for s in specs])
                head.bias.copy_(torch.logit(d.clamp(0.02, 0.98)))

    def fader_offsets(self, stem_mels: torch.Tensor, mask: torch.Tensor,
                      reference_mel: torch.Tensor) -> torch.Tensor:
        """dB added to the predicted faders (B, N): the balance point, or 0 for absolute faders."""
        if self.config.get("relative_faders"):
            kind = self.config.get("fader_balance")
            if kind == "reference":
                return reference_balance_db(stem_mels, mask, reference_mel)
            if kind == "reference_loudness":
                return reference_balance_db(stem_mels, mask, reference_mel, strength=LOUDNESS_BALANCE_STRENGTH,
                                            base=loudness_offsets_db(stem_mels, mask))
            return fader_offsets_db(stem_mels, mask)
        return torch.zeros(mask.shape, dtype=stem_mels.dtype, device=stem_mels.device)

    def forward(self, stem_mels: torch.Tensor, mask: torch.Tensor, is_stereo: torch.Tensor,
                reference_mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``stem_mels`` (B, N, 2, M, F), ``mask``/``is_stereo`` (B, N) bool, ``reference_mel``
        (B, 2, M, F') -> (track (B, N, P_track), master (B, P_master)) in [0, 1]."""
        B, N = mask.shape
        tracks = self.encoder(stem_mels.flatten(0, 1)).reshape(B, N, -1)
        tracks = tracks + self.kind.weight[0] + self.stereo(is_stereo.long())
        ref = (self.encoder(reference_mel) + self.kind.weight[1])[:, None]
        master = (self.master + self.kind.weight[2]).expand(B, 1, -1)
        tokens = torch.cat([tracks, ref, master], 1)
        pad = torch.cat([~mask.bool(), mask.new_zeros(B, 2, dtype=torch.bool)], 1)
        h = self.norm(self.transformer(tokens, src_key_padding_mask=pad))
        track = torch.sigmoid(self.track_head(h[:, :N]))
        master = torch.sigmoid(self.master_head(h[:, N + 1]))
        return track, master


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
