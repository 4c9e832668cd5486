"""DCGAN as in the NTU ML 2021 HW6 sample code, as a recipe (`--model dcgan`).

Generator (64 px, dim d = 64, z = 100):
    z [N, 100] -> Linear(100 -> 8d*4*4, no bias) + BatchNorm1d + ReLU -> [N, 8d, 4, 4]
    -> 3 x [ConvT(k5 s2 p2 op1, no bias) + BatchNorm2d + ReLU]: 8d -> 4d -> 2d -> d  [N, d, 32, 32]
    -> ConvT(d -> 3, k5 s2 p2 op1) + Tanh                                            [N, 3, 64, 64]
Discriminator:
    x [N, 3, 64, 64] -> Conv(3 -> d, k5 s2 p2) + LeakyReLU(0.2)                     [N, d, 32, 32]
    -> 3 x [Conv(k5 s2 p2) + BatchNorm2d + LeakyReLU(0.2)]: d -> 2d -> 4d -> 8d      [N, 8d, 4, 4]
    -> Conv(8d -> 1, k4) -> [N]  (then Sigmoid, see below)
At 128 px both get one more block (G starts from 16d at 4x4, D goes up to 16d), at 256 px two; at 32 px one fewer.

The sample's D ends in a Sigmoid and trains with BCE on probabilities. The trainer may run under autocast
(bf16/fp16), where BCE on probabilities is unsafe, so `D.forward` returns the LOGIT and the losses apply the
sigmoid inside `binary_cross_entropy_with_logits`: mathematically the same model and loss.

Losses (BCE, as in the sample):
    loss_D = (BCE(D(x), 1) + BCE(D(G(z)), 0)) / 2
    loss_G = BCE(D(G(z)), 1)                      (non-saturating)
Optimisers: Adam(lr 1e-4, betas (0.5, 0.999)) for both. Init: N(0, 0.02) convs/linear, BN weight N(1, 0.02).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from stylegan_anime.training.recipe import Batch, RecipeConfig

from .common import (
    BaselineRecipe,
    adam_optimizers,
    Discriminator,
    Generator,
    batch_field,
    beta1_field,
    beta2_field,
    dim_field,
    lr_field,
    n_critic_field,
    z_dim_field,
)


def hw6_generator(z_dim: int, dim: int, resolution: int) -> Generator:
    """The HW6 generator (also used by WGAN and WGAN-GP): z [N, z_dim] -> [N, 3, R, R]."""
    return Generator(z_dim, dim, resolution, kernel=5, stem="linear", rgb_bias=True)


def hw6_discriminator(dim: int, resolution: int, norm: str = "batch") -> Discriminator:
    """The HW6 discriminator without its final Sigmoid: x [N, 3, R, R] -> [N] logits / critic values."""
    return Discriminator(dim, resolution, kernel=5, bias=True, norm=norm)


@dataclass
class DCGANConfig(RecipeConfig):
    batch: int = batch_field(64)
    z_dim: int = z_dim_field(100)
    dim: int = dim_field(64)
    lr_g: float = lr_field("G", 1e-4)
    lr_d: float = lr_field("D", 1e-4)
    beta1: float = beta1_field(0.5)
    beta2: float = beta2_field(0.999)
    n_critic: int = n_critic_field(1)


class DCGAN(BaselineRecipe):
    name = "dcgan"
    Config = DCGANConfig
    description = "DCGAN, NTU ML HW6 sample (k5 convs, BCE, Adam 1e-4)"

    # loss_D = d_loss_scale * (BCE_real + BCE_fake): the HW6 sample averages the two terms.
    d_loss_scale = 0.5

    def build_nets(self, cfg: DCGANConfig, resolution: int):
        return hw6_generator(cfg.z_dim, cfg.dim, resolution), hw6_discriminator(cfg.dim, resolution)

    def build_optimizers(self, cfg: DCGANConfig):
        return adam_optimizers(self.nets, cfg)

    def loss_D(self, batch: Batch) -> dict[str, torch.Tensor]:
        real = self.scores(batch.reals)  # [N] logits
        fake = self.scores(self.fakes(batch.z))  # [N] logits, no graph into G
        loss_real = F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
        loss_fake = F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))
        return {
            "loss": self.d_loss_scale * (loss_real + loss_fake),
            "D_real": torch.sigmoid(real).mean().detach(),  # mean probability "real" on reals
            "real_sign": real.sign().mean().detach(),  # E[sign(D(x))]: the adaptive-augmentation signal
            "D_fake": torch.sigmoid(fake).mean().detach(),  # ... and on fakes
        }

    def loss_G(self, batch: Batch) -> dict[str, torch.Tensor]:
        fake = self.scores(self.nets["G"](batch.z))  # [N] logits, graph through D into G
        return {
            "loss": F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake)),
            "D_fake": torch.sigmoid(fake).mean().detach(),
        }
