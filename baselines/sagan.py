"""SAGAN (Zhang, Goodfellow, Metaxas, Odena 2019, "Self-Attention Generative Adversarial Networks"), as a
recipe (`--model sagan`), unconditional.

Networks (gan_layers.py), spectral norm on every conv and linear of BOTH networks:
    G  z [N, Z] -> SN linear -> [N, w0, 4, 4] -> residual up-blocks (BN, ReLU, nearest x2, SN conv3) with
       self-attention after the blocks at `attn_res` -> BN -> ReLU -> SN conv3 -> tanh    [N, 3, R, R]
    D  x -> residual down-blocks (no normalisation, avgpool) with self-attention at `attn_res`
       -> ReLU -> sum over positions -> SN linear -> [N] score
    widths: R = 64: G 8d 8d 4d 2d d, D d 2d 4d 8d 8d; R = 128: G 16d ... d, D d ... 16d 16d
Self-attention: q, k with C/8 channels, v with C/2, keys/values max-pooled 2x2 (the authors' TF release),
out = gamma * W_o(attn) + x with gamma initialised to 0. `attn_res` 'auto' is 32 at 64 px and 32,64 at
128 px (the paper's best placements, feat32/feat64, Table 1).

Loss: hinge, D: E[relu(1 - D(x))] + E[relu(1 + D(G(z)))], G: -E[D(G(z))].
Optimisers (paper, section 5): TTUR, Adam lr_d 4e-4, lr_g 1e-4, betas (0, 0.9); one D step per G step.
Latent: batch.z ~ N(0, I) mapped deterministically (`latent`) to N(0, 0.5^2) truncated to [-1, 1]
(z_dist 'truncated', inverse-CDF, see gan_layers.truncated_normal) or used as is ('normal').
EMA of G: 10 kimg half-life with a 0.05 ramp-up (this repo's StyleGAN2 'auto' values; the SAGAN paper has
no EMA, later SAGAN/BigGAN code keeps a 0.9999-per-step EMA).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from stylegan_anime.training.config import ConfigError
from stylegan_anime.training.recipe import Batch, Phase, Recipe, RecipeConfig, adam

from .common import (
    batch_field,
    beta1_field,
    beta2_field,
    check_widths,
    dim_field,
    hparam,
    lr_field,
    n_critic_field,
    num_blocks,
    z_dim_field,
)
from .gan_layers import (
    Z_DISTS,
    ResDiscriminatorBody,
    ResGenerator,
    attn_res_field,
    base_field,
    d_widths,
    g_widths,
    hinge_d_loss,
    hinge_g_loss,
    parse_attn_res,
    sn_linear,
    truncated_normal,
)

# 'truncated': N(0, 0.5^2) cut at +-2 std, i.e. values in [-1, 1].
TRUNC_STD, TRUNC_BOUND = 0.5, 2.0


@dataclass
class SAGANConfig(RecipeConfig):
    batch: int = batch_field(64)
    ema_kimg: float = base_field("ema_kimg", 10.0)
    ema_rampup: float = base_field("ema_rampup", 0.05)
    z_dim: int = z_dim_field(128)
    dim: int = dim_field(64)
    lr_g: float = lr_field("G", 1e-4)
    lr_d: float = lr_field("D", 4e-4)
    beta1: float = beta1_field(0.0)
    beta2: float = beta2_field(0.9)
    n_critic: int = n_critic_field(1)
    attn_res: str = attn_res_field()
    z_dist: str = hparam("truncated", "latent fed to G: 'truncated' N(0, 0.5^2) cut to [-1, 1] (a deterministic "
                         "map of z ~ N(0, I)) or 'normal' N(0, I)", choices=Z_DISTS)


class SAGANDiscriminator(nn.Module):
    """x [N, 3, R, R] -> [N] hinge score."""

    def __init__(self, dim: int, resolution: int, attn: list[int]):
        super().__init__()
        self.body = ResDiscriminatorBody(dim, resolution, attn)
        self.head = sn_linear(self.body.out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x)).squeeze(1)


def sagan_attn_auto(resolution: int) -> list[int]:
    """Self-attention at 16 px maps for 32 px images, 32 at 64 px, 32 and 64 from 128 px on."""
    return {32: [16], 64: [32]}.get(resolution, [32, 64])


class SAGAN(Recipe):
    name = "sagan"
    Config = SAGANConfig
    description = "SAGAN: residual SN G and D, self-attention, hinge loss, TTUR Adam 1e-4/4e-4 (0, 0.9)"

    @classmethod
    def check(cls, cfg: SAGANConfig, resolution: int) -> None:
        """--dim gives every layer a channel; --attn-res names feature-map sizes the networks have."""
        check_widths(cfg.dim, g_widths(cfg.dim, resolution) + d_widths(cfg.dim, resolution), resolution)
        parse_attn_res(cfg.attn_res, resolution, sagan_attn_auto(resolution))

    def __init__(self, cfg: SAGANConfig, resolution: int, device: torch.device):
        num_blocks(resolution)  # ConfigError unless 32, 64, 128 or 256
        if cfg.z_dist not in Z_DISTS:
            raise ConfigError(f"--z-dist must be one of {', '.join(Z_DISTS)}, got {cfg.z_dist!r}")
        super().__init__(cfg, resolution, device)
        self.attn = parse_attn_res(cfg.attn_res, resolution, sagan_attn_auto(resolution))
        G = ResGenerator(cfg.z_dim, cfg.dim, resolution, self.attn)
        D = SAGANDiscriminator(cfg.dim, resolution, self.attn)
        self.nets = {"G": G.to(self.device), "D": D.to(self.device)}
        betas = (cfg.beta1, cfg.beta2)
        self.opts = {"G": adam(G.parameters(), self.device, lr=cfg.lr_g, betas=betas),
                     "D": adam(D.parameters(), self.device, lr=cfg.lr_d, betas=betas)}
        self.phases = [Phase("D", "D", self.loss_D, repeats=cfg.n_critic),
                       Phase("G", "G", self.loss_G, needs_reals=False)]
        self.z_dim = cfg.z_dim

    def latent(self, z: torch.Tensor) -> torch.Tensor:
        """The generator's input for z ~ N(0, I): a deterministic function of z."""
        if self.cfg.z_dist == "truncated":
            return truncated_normal(z, TRUNC_BOUND, TRUNC_STD)
        return z

    def loss_D(self, batch: Batch) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            fakes = self.nets["G"](self.latent(batch.z))
        real = self.nets["D"](batch.reals).float()  # [N]
        fake = self.nets["D"](fakes).float()
        return {"loss": hinge_d_loss(real, fake), "D_real": real.mean().detach(), "D_fake": fake.mean().detach(),
                "real_sign": real.sign().mean().detach()}  # E[sign(D(x))]: the adaptive-augmentation signal

    def loss_G(self, batch: Batch) -> dict[str, torch.Tensor]:
        fake = self.nets["D"](self.nets["G"](self.latent(batch.z))).float()
        return {"loss": hinge_g_loss(fake), "D_fake": fake.mean().detach()}

    def generate(self, G: nn.Module, z: torch.Tensor, labels: torch.Tensor | None = None, **kwargs) -> torch.Tensor:
        return G(self.latent(z))
