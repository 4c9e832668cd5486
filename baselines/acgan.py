"""Auxiliary-classifier GAN (Odena et al. 2017) on hair/eye tags, as a recipe (`--model acgan`, conditional).

Generator: the cgan generator (`cgan.CondGenerator`), conditioned on the one-hot or rgb encoding of the
labels (`cond_embed`).
Discriminator (no condition input):
    x [N, 3, R, R] -> Conv(3 -> d, k4 s2 p1) + LeakyReLU(0.2) -> B x [Conv(k4 s2 p1) + BatchNorm2d + LeakyReLU]
    -> [N, 8d, 4, 4] (16d at 128 px) -> flatten -> three linear heads:
       real/fake  -> [N] logit
       hair       -> [N, 12] class logits
       eye        -> [N, 10] class logits          (one head per label group, in label_names order)
Losses (c = reals' labels, c_f = Batch.fake_labels; CE summed over the groups, -1 labels ignored):
    loss_D = BCE(adv(x), 1) + BCE(adv(G(z, c_f)), 0) + cls_weight * [CE(cls(x), c) + CE(cls(G(z, c_f)), c_f)]
    loss_G = BCE(adv(G(z, c_f)), 1) + cls_weight * CE(cls(G(z, c_f)), c_f)
CE is `cross_entropy(..., ignore_index=-1)` summed over the known rows and divided by their number, so a
batch whose labels of one group are all unknown contributes 0 (not NaN).
Optimisers: Adam(lr 2e-4, betas (0.5, 0.999)) for both.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from stylegan_anime.training.recipe import Batch

from .cgan import CGANConfig, ConditionalRecipe, CondGenerator, bce, conv_trunk
from .common import hparam


class ACDiscriminator(nn.Module):
    """x [N, 3, R, R] -> (adv [N] logits, [class logits [N, n_k] per label group])."""

    def __init__(self, dim: int, resolution: int, sizes: list[int]):
        super().__init__()
        self.trunk, width = conv_trunk(dim, resolution)
        feat = width * 4 * 4
        self.adv = nn.Linear(feat, 1)
        self.cls = nn.ModuleList([nn.Linear(feat, n) for n in sizes])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        h = self.trunk(x).flatten(1)  # [N, 8d*16]
        return self.adv(h).view(-1), [head(h) for head in self.cls]


def masked_ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the rows with a known label (target >= 0); 0 when there are none."""
    target = target.long()
    total = F.cross_entropy(logits.float(), target, ignore_index=-1, reduction="sum")
    return total / (target >= 0).sum().clamp(min=1)


def class_loss(logits: list[torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
    """Sum over label groups of `masked_ce` (column k of labels [N, K] against logits[k])."""
    return sum(masked_ce(lg, labels[:, k]) for k, lg in enumerate(logits))


def accuracy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    known = target >= 0
    hits = (logits.argmax(1) == target) & known
    return hits.sum().float() / known.sum().clamp(min=1)


@dataclass
class ACGANConfig(CGANConfig):
    """CGAN's hyperparameters plus the weight of the classifier heads."""

    cls_weight: float = hparam(1.0, "weight of the auxiliary classifier's cross-entropy (ACGAN)", min=0)


class ACGAN(ConditionalRecipe):
    name = "acgan"
    Config = ACGANConfig
    description = "ACGAN: conditional G, D with real/fake + hair + eye classifier heads, Adam 2e-4"

    def build_nets(self, cfg: ACGANConfig, resolution: int):
        G = CondGenerator(cfg.z_dim, cfg.dim, resolution, self.make_encoder(cfg), cfg.embed_dim)
        D = ACDiscriminator(cfg.dim, resolution, self.label_sizes)
        return G, D

    def loss_D(self, batch: Batch) -> dict[str, torch.Tensor]:
        D = self.nets["D"]
        c = self.real_labels(batch)
        c_fake = self.gen_labels(batch)
        adv_r, cls_r = D(batch.reals)
        adv_f, cls_f = D(self.fakes(batch.z, c_fake))
        ce_real, ce_fake = class_loss(cls_r, c), class_loss(cls_f, c_fake)
        out = {
            "loss": bce(adv_r, 1.0) + bce(adv_f, 0.0) + self.cfg.cls_weight * (ce_real + ce_fake),
            "D_real": torch.sigmoid(adv_r.float()).mean().detach(),
            "D_fake": torch.sigmoid(adv_f.float()).mean().detach(),
            "D_cls_real": ce_real.detach(),
            "D_cls_fake": ce_fake.detach(),
        }
        for k, group in enumerate(self.label_names):
            out[f"acc_{group}"] = accuracy(cls_r[k].detach(), c[:, k])  # classifier accuracy on reals
        return out

    def loss_G(self, batch: Batch) -> dict[str, torch.Tensor]:
        c = self.gen_labels(batch)
        adv, cls = self.nets["D"](self.nets["G"](batch.z, c))
        ce = class_loss(cls, c)
        return {"loss": bce(adv, 1.0) + self.cfg.cls_weight * ce, "D_fake": torch.sigmoid(adv.float()).mean().detach(),
                "G_cls": ce.detach()}
