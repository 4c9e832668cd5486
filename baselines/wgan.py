"""WGAN with weight clipping (Arjovsky et al. 2017), as a recipe (`--model wgan`).

Networks: the HW6 DCGAN generator and discriminator (`dcgan.py`); the critic's output is a raw score
[N] (no sigmoid). Each iteration trains the critic n_critic = 5 times, clamping EVERY critic parameter
to [-clip, clip] after each step, then G once.

    loss_D = -E[D(x)] + E[D(G(z))]      (minimising it maximises the critic's estimate of W(P_real, P_G))
    loss_G = -E[D(G(z))]
Optimisers: RMSprop(lr 5e-5) for both.
Logged: D_real = E[D(x)], D_fake = E[D(G(z))], wdist = D_real - D_fake.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from stylegan_anime.training.recipe import Batch, RecipeConfig

from .common import BaselineRecipe, batch_field, dim_field, hparam, lr_field, n_critic_field, z_dim_field
from .dcgan import hw6_discriminator, hw6_generator


@dataclass
class WGANConfig(RecipeConfig):
    batch: int = batch_field(64)
    z_dim: int = z_dim_field(100)
    dim: int = dim_field(64)
    lr_g: float = lr_field("G", 5e-5)
    lr_d: float = lr_field("D", 5e-5)
    n_critic: int = n_critic_field(5)
    clip: float = hparam(0.01, "WGAN weight clipping: critic parameters are clamped to [-clip, clip]",
                         min_exclusive=0)


class WGAN(BaselineRecipe):
    name = "wgan"
    Config = WGANConfig
    description = "WGAN with weight clipping (HW6 DCGAN nets, RMSprop 5e-5, 5 critic steps)"

    def build_nets(self, cfg: WGANConfig, resolution: int):
        return hw6_generator(cfg.z_dim, cfg.dim, resolution), hw6_discriminator(cfg.dim, resolution)

    def build_optimizers(self, cfg: WGANConfig):
        return {
            "G": torch.optim.RMSprop(self.nets["G"].parameters(), lr=cfg.lr_g),
            "D": torch.optim.RMSprop(self.nets["D"].parameters(), lr=cfg.lr_d),
        }

    def loss_D(self, batch: Batch) -> dict[str, torch.Tensor]:
        real = self.scores(batch.reals)  # [N]
        fake = self.scores(self.fakes(batch.z))  # [N]
        wdist = real.mean() - fake.mean()
        return {"loss": -wdist, "D_real": real.mean().detach(), "D_fake": fake.mean().detach(),
                "real_sign": real.sign().mean().detach(),
                "wdist": wdist.detach()}

    def loss_G(self, batch: Batch) -> dict[str, torch.Tensor]:
        fake = self.scores(self.nets["G"](batch.z))  # [N]
        return {"loss": -fake.mean(), "D_fake": fake.mean().detach()}

    def after_D_step(self) -> None:
        """Clamp every critic parameter to [-clip, clip] (after each critic step)."""
        clip = self.cfg.clip
        with torch.no_grad():
            for p in self.nets["D"].parameters():
                p.clamp_(-clip, clip)
