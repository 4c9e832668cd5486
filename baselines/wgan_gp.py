"""WGAN-GP (Gulrajani et al. 2017), as a recipe (`--model wgan-gp`).

Networks: the HW6 DCGAN generator (`dcgan.py`) and the HW6 discriminator with its BatchNorm replaced,
because the penalty is defined per sample and BatchNorm mixes samples: `critic_norm`
    'layer'    (default) LayerNorm over [C, H, W] per sample, as GroupNorm(1, C)
    'instance' InstanceNorm2d(affine=True)
    'none'     no normalisation
The critic outputs a raw score [N].

    x_hat   = eps * x + (1 - eps) * G(z),  eps ~ U[0, 1] per sample
    gp      = E[(||grad_x_hat D(x_hat)||_2 - 1)^2]
    loss_D  = E[D(G(z))] - E[D(x)] + gp_weight * gp
    loss_G  = -E[D(G(z))]
The penalty is computed in float32 with autocast off and `create_graph=True`, so its gradient trains D.
Optimisers: Adam(lr 1e-4, betas (0.0, 0.9)); n_critic 5.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from stylegan_anime.training.recipe import Batch, RecipeConfig

from .common import (
    BaselineRecipe,
    adam_optimizers,
    batch_field,
    beta1_field,
    beta2_field,
    dim_field,
    hparam,
    lr_field,
    n_critic_field,
    z_dim_field,
)
from .dcgan import hw6_discriminator, hw6_generator
from .wgan import WGAN

CRITIC_NORMS = ("layer", "instance", "none")


def gradient_penalty(D: nn.Module, reals: torch.Tensor, fakes: torch.Tensor) -> torch.Tensor:
    """E[(||grad D(x_hat)||_2 - 1)^2] over random interpolates of reals and fakes [N, 3, H, W], in float32.

    The returned scalar keeps its graph (create_graph=True): backpropagating it reaches D's parameters.
    """
    with torch.autocast(device_type=reals.device.type, enabled=False):
        reals, fakes = reals.detach().float(), fakes.detach().float()
        eps = torch.rand(reals.shape[0], 1, 1, 1, device=reals.device)  # [N, 1, 1, 1]
        x_hat = (eps * reals + (1 - eps) * fakes).requires_grad_(True)  # [N, 3, H, W]
        score = D(x_hat).float()  # [N]
        (grad,) = torch.autograd.grad(score.sum(), x_hat, create_graph=True)  # [N, 3, H, W]
        norm = torch.linalg.vector_norm(grad.flatten(1), dim=1)  # [N]
        return (norm - 1).square().mean()


@dataclass
class WGANGPConfig(RecipeConfig):
    batch: int = batch_field(64)
    z_dim: int = z_dim_field(100)
    dim: int = dim_field(64)
    lr_g: float = lr_field("G", 1e-4)
    lr_d: float = lr_field("D", 1e-4)
    beta1: float = beta1_field(0.0)
    beta2: float = beta2_field(0.9)
    n_critic: int = n_critic_field(5)
    gp_weight: float = hparam(10.0, "WGAN-GP gradient penalty weight (lambda)", min=0)
    critic_norm: str = hparam("layer", "WGAN-GP critic normalisation (no BatchNorm: the penalty is per sample)",
                              choices=CRITIC_NORMS)


class WGANGP(BaselineRecipe):
    name = "wgan-gp"
    Config = WGANGPConfig
    description = "WGAN-GP (HW6 G, critic with LayerNorm, gradient penalty 10, Adam 1e-4 (0, 0.9))"

    def build_nets(self, cfg: WGANGPConfig, resolution: int):
        if cfg.critic_norm not in CRITIC_NORMS:
            raise ValueError(f"critic_norm must be one of {', '.join(CRITIC_NORMS)}, got {cfg.critic_norm!r}")
        return hw6_generator(cfg.z_dim, cfg.dim, resolution), hw6_discriminator(cfg.dim, resolution,
                                                                                norm=cfg.critic_norm)

    def build_optimizers(self, cfg: WGANGPConfig):
        return adam_optimizers(self.nets, cfg)

    def loss_D(self, batch: Batch) -> dict[str, torch.Tensor]:
        fakes = self.fakes(batch.z)  # [N, 3, H, W], no graph into G
        real = self.scores(batch.reals)  # [N]
        fake = self.scores(fakes)  # [N]
        wdist = real.mean() - fake.mean()
        gp = gradient_penalty(self.nets["D"], batch.reals, fakes)
        return {"loss": -wdist + self.cfg.gp_weight * gp, "D_real": real.mean().detach(),
                "real_sign": real.sign().mean().detach(),
                "D_fake": fake.mean().detach(), "wdist": wdist.detach(), "gp": gp.detach()}

    loss_G = WGAN.loss_G  # -E[D(G(z))], as in WGAN
