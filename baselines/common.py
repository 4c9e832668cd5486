"""Pieces shared by the four baselines: config fields, weight init, the G/D builders and a recipe base.

Everything here is model-agnostic; each model file (`dcgan.py`, `dcgan_tutorial.py`, `wgan.py`,
`wgan_gp.py`) picks its layer flavour, norm, optimisers and losses from it.

Shapes are written `[N, C, H, W]`. Both generators start from a 4x4 map and double the size per block;
both discriminators halve it per block down to 4x4 and end with a 4x4 "valid" conv to one value:

    resolution 64:  3 middle blocks, widest map dim*8
    resolution 128: 4 middle blocks, widest map dim*16
"""
from __future__ import annotations

import dataclasses
from dataclasses import field
from typing import Any, Callable, ClassVar

import torch
from torch import nn

from stylegan_anime.training.config import ConfigError
from stylegan_anime.training.recipe import Batch, Phase, Recipe, RecipeConfig, adam

RESOLUTIONS = (32, 64, 128, 256)  # where the DCGAN-style stacks extend by one block per doubling
D_NORMS = ("batch", "layer", "instance", "none")


# --------------------------------------------------------------------------------------------------------
# Config fields. One factory per hyperparameter so the same flag has the same name, type and help in
# every model (only the default differs).
# --------------------------------------------------------------------------------------------------------
def hparam(default: Any, help: str, **meta: Any):
    """A dataclass field carrying its CLI help (and optional `choices`, and for a number its range: `min`,
    `min_exclusive`, `max`, `max_exclusive`, checked by training.config.validate_fields)."""
    return field(default=default, metadata={"help": help, **meta})


def batch_field(default: int):
    """`batch` with a model-specific default and the base class's help text."""
    base = {f.name: f for f in dataclasses.fields(RecipeConfig)}["batch"]
    return field(default=default, metadata=dict(base.metadata))


def z_dim_field(default: int = 100):
    return hparam(default, "latent size (z ~ N(0, I))", min=1)


def dim_field(default: int = 64):
    return hparam(default, "base channel width of G and D (the widest layer is dim*8 at 64 px, dim*16 at 128)",
                  min=1)


def lr_field(net: str, default: float):
    return hparam(default, f"learning rate of {net}", min_exclusive=0)


def beta1_field(default: float):
    return hparam(default, "Adam beta1 (both networks)", min=0, max_exclusive=1)


def beta2_field(default: float):
    return hparam(default, "Adam beta2 (both networks)", min=0, max_exclusive=1)


def n_critic_field(default: int):
    return hparam(default, "D (critic) steps per G step", min=1)


# --------------------------------------------------------------------------------------------------------
# Resolution and initialisation
# --------------------------------------------------------------------------------------------------------
def num_blocks(resolution: int) -> int:
    """Middle blocks between the 4x4 map and the outer layer: log2(R) - 3 (2 at 32 px, 3 at 64, 4 at 128, 5 at
    256). ConfigError (one line at the CLI) for other sizes: these fixed stacks stop at 256 px."""
    if isinstance(resolution, bool) or resolution not in RESOLUTIONS:
        raise ConfigError(f"--size {resolution}: this model trains at {', '.join(map(str, RESOLUTIONS[:-1]))} or "
                          f"{RESOLUTIONS[-1]} px (StyleGAN2 at every power of two from 32 to 1024)")
    return int(resolution).bit_length() - 1 - 3


def check_widths(dim: int, widths: list[int], resolution: int) -> None:
    """ConfigError naming --dim unless every layer of these widths (G's and D's channels) has a channel."""
    if min(widths) < 1:
        raise ConfigError(f"--dim {dim} leaves a layer without channels at {resolution} px (widths {widths}); "
                          f"it must be >= 1")


def init_weights(module: nn.Module) -> None:
    """DCGAN init, for `net.apply`: conv/linear weights ~ N(0, 0.02); BatchNorm weight ~ N(1, 0.02), bias 0.

    Conv/linear biases keep PyTorch's default init (as in the HW6 sample). Other norms (GroupNorm,
    InstanceNorm) keep their default weight 1, bias 0.
    """
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


# --------------------------------------------------------------------------------------------------------
# Layers. `kernel` picks the flavour: 5 = HW6 (k5 s2 p2, ConvT output_padding 1), 4 = PyTorch tutorial
# (k4 s2 p1). Both exactly double (ConvT) or halve (Conv) H and W.
# --------------------------------------------------------------------------------------------------------
def up_conv(c_in: int, c_out: int, kernel: int, bias: bool) -> nn.ConvTranspose2d:
    """[N, c_in, H, W] -> [N, c_out, 2H, 2W]."""
    if kernel == 5:
        return nn.ConvTranspose2d(c_in, c_out, 5, stride=2, padding=2, output_padding=1, bias=bias)
    if kernel == 4:
        return nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=bias)
    raise ValueError(f"kernel must be 4 or 5, got {kernel}")


def down_conv(c_in: int, c_out: int, kernel: int, bias: bool) -> nn.Conv2d:
    """[N, c_in, H, W] -> [N, c_out, H/2, W/2]."""
    if kernel not in (4, 5):
        raise ValueError(f"kernel must be 4 or 5, got {kernel}")
    return nn.Conv2d(c_in, c_out, kernel, stride=2, padding=(kernel - 1) // 2, bias=bias)


def d_norm(kind: str, channels: int) -> nn.Module:
    """Normalisation after a D conv: 'batch', 'layer' (over [C,H,W] per sample), 'instance' or 'none'."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)  # one group = LayerNorm over [C, H, W], per-channel affine
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm must be one of {', '.join(D_NORMS)}, got {kind!r}")


class LinearStem(nn.Module):
    """HW6 stem: z [N, Z] -> Linear (no bias) -> BatchNorm1d -> ReLU -> [N, C, 4, 4]."""

    def __init__(self, z_dim: int, channels: int):
        super().__init__()
        self.channels = channels
        self.fc = nn.Linear(z_dim, channels * 4 * 4, bias=False)
        self.bn = nn.BatchNorm1d(channels * 4 * 4)
        self.act = nn.ReLU()

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.act(self.bn(self.fc(z)))  # [N, C*16]
        return x.view(x.shape[0], self.channels, 4, 4)  # [N, C, 4, 4]


class ConvStem(nn.Module):
    """Tutorial stem: z [N, Z] -> [N, Z, 1, 1] -> ConvT(k4 s1 p0, no bias) -> BatchNorm2d -> ReLU -> [N, C, 4, 4]."""

    def __init__(self, z_dim: int, channels: int):
        super().__init__()
        self.conv = nn.ConvTranspose2d(z_dim, channels, 4, stride=1, padding=0, bias=False)
        self.bn = nn.BatchNorm2d(channels)
        self.act = nn.ReLU()

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(z.view(z.shape[0], -1, 1, 1))))  # [N, C, 4, 4]


class Generator(nn.Module):
    """z [N, Z] -> stem [N, dim*2^B, 4, 4] -> B x (ConvT + BN + ReLU, halving C) -> [N, dim, R/2, R/2]
    -> to_rgb ConvT [N, 3, R, R] -> tanh.   (B = num_blocks(R))
    """

    def __init__(self, z_dim: int, dim: int, resolution: int, *, kernel: int, stem: str, rgb_bias: bool):
        super().__init__()
        n = num_blocks(resolution)
        widths = [dim * 2 ** (n - i) for i in range(n + 1)]  # e.g. 64 px: [8d, 4d, 2d, d]
        stems = {"linear": LinearStem, "conv": ConvStem}
        self.stem = stems[stem](z_dim, widths[0])
        self.body = nn.Sequential(*[
            nn.Sequential(up_conv(c_in, c_out, kernel, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())
            for c_in, c_out in zip(widths[:-1], widths[1:])
        ])
        self.to_rgb = up_conv(dim, 3, kernel, bias=rgb_bias)
        self.out = nn.Tanh()

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.out(self.to_rgb(self.body(self.stem(z))))  # [N, 3, R, R] in [-1, 1]


class Discriminator(nn.Module):
    """x [N, 3, R, R] -> from_rgb conv + LReLU [N, dim, R/2, R/2] -> B x (conv + norm + LReLU, doubling C)
    -> [N, dim*2^B, 4, 4] -> head conv k4 [N, 1, 1, 1] -> [N] raw score (a logit / critic value; no sigmoid).
    """

    def __init__(self, dim: int, resolution: int, *, kernel: int, bias: bool, norm: str):
        super().__init__()
        n = num_blocks(resolution)
        widths = [dim * 2**i for i in range(n + 1)]  # e.g. 64 px: [d, 2d, 4d, 8d]
        self.from_rgb = nn.Sequential(down_conv(3, dim, kernel, bias), nn.LeakyReLU(0.2))
        self.body = nn.Sequential(*[
            nn.Sequential(down_conv(c_in, c_out, kernel, bias), d_norm(norm, c_out), nn.LeakyReLU(0.2))
            for c_in, c_out in zip(widths[:-1], widths[1:])
        ])
        self.head = nn.Conv2d(widths[-1], 1, 4, stride=1, padding=0, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.head(self.body(self.from_rgb(x)))  # [N, 1, 1, 1]
        return y.reshape(y.shape[0])  # [N]


def adam_optimizers(nets: dict[str, nn.Module], cfg) -> dict[str, torch.optim.Optimizer]:
    """Adam for G (lr_g) and D (lr_d), both with betas (beta1, beta2)."""
    betas = (cfg.beta1, cfg.beta2)
    return {k: adam(nets[k].parameters(), next(nets[k].parameters()).device, lr=lr, betas=betas)
            for k, lr in (("G", cfg.lr_g), ("D", cfg.lr_d))}


# --------------------------------------------------------------------------------------------------------
# Recipe base: one D phase (n_critic repeats) and one G phase.
# --------------------------------------------------------------------------------------------------------
class BaselineRecipe(Recipe):
    """Builds nets (`build_nets`), applies `init_weights`, moves them to the device, builds the optimisers
    (`build_optimizers`) and the phases [D x n_critic (+ `after_D_step`), G].

    Subclasses implement `build_nets`, `build_optimizers`, `loss_D`, `loss_G`; `after_D_step` is optional.
    Losses look the networks up in `self.nets` at call time.
    """

    after_D_step: ClassVar[Callable[[], None] | None] = None

    @classmethod
    def check(cls, cfg, resolution: int) -> None:
        """--dim gives every layer a channel: G's widths dim * 2^(B-i) and D's dim * 2^i, B = num_blocks."""
        n = num_blocks(resolution)
        check_widths(cfg.dim, [cfg.dim * 2 ** i for i in range(n + 1)], resolution)

    def __init__(self, cfg: RecipeConfig, resolution: int, device: torch.device):
        num_blocks(resolution)  # ValueError on an unsupported resolution
        super().__init__(cfg, resolution, device)
        G, D = self.build_nets(cfg, resolution)
        G.apply(init_weights)
        D.apply(init_weights)
        self.nets = {"G": G.to(self.device), "D": D.to(self.device)}
        self.opts = self.build_optimizers(cfg)
        self.phases = [
            Phase("D", "D", self.loss_D, repeats=cfg.n_critic, after_step=self.after_D_step),
            Phase("G", "G", self.loss_G, needs_reals=False),
        ]
        self.z_dim = cfg.z_dim

    def build_nets(self, cfg, resolution: int) -> tuple[nn.Module, nn.Module]:
        raise NotImplementedError

    def build_optimizers(self, cfg) -> dict[str, torch.optim.Optimizer]:
        raise NotImplementedError

    def loss_D(self, batch: Batch) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def loss_G(self, batch: Batch) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    # --- helpers for the losses ---------------------------------------------------------------------
    def fakes(self, z: torch.Tensor) -> torch.Tensor:
        """G(z) [N, 3, H, W] without a graph (for D's step)."""
        with torch.no_grad():
            return self.nets["G"](z)

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """D(x) as float32 [N] (reductions stay in float32 under autocast)."""
        return self.nets["D"](x).float()
