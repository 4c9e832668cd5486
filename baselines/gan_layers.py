"""Pieces shared by SAGAN (`sagan.py`) and BigGAN (`biggan.py`).

    sn_conv / sn_linear / sn_embedding   layers with orthogonal init, then spectral norm
                                         (`torch.nn.utils.parametrizations.spectral_norm`, 1 power iteration
                                         per training forward; the raw weight is `...parametrizations.weight.original`)
    SelfAttention                        SAGAN's attention block, out = gamma * attn(x) + x, gamma starts at 0
    ConditionalBatchNorm2d               BatchNorm without affine; gain 1 + W_g c and bias W_b c from a vector c
    GBlock / DBlock                      the residual up / down blocks of both models
    hinge_d_loss / hinge_g_loss          the hinge loss
    orthogonal_penalty                   BigGAN's orthogonal regularisation sum ||W W^T * (1 - I)||_F^2
    truncated_normal                     a deterministic map from N(0, 1) samples to a truncated normal
    parse_attn_res                       the --attn-res flag: 'auto', 'none' or a comma list ('32,64')

Shapes are `[N, C, H, W]`. Both generators start from a 4x4 map and double it per block up to R; both
discriminators halve it per block down to 4x4, then run one more block at 4x4:

    R = 64:  G widths 8d 8d 4d 2d d      (4x4 -> 8 -> 16 -> 32 -> 64)
             D widths d 2d 4d 8d 8d      (32 -> 16 -> 8 -> 4 -> 4)
    R = 128: G widths 16d 16d 8d 4d 2d d and D widths d 2d 4d 8d 16d 16d

At 128 px these are the BigGAN 128x128 widths (Brock et al. 2019, appendix B); at 64 px the widest layer is
8d, the repo's `--dim` convention (common.dim_field), i.e. half BigGAN's 64x64 width at the 4x4 end.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import field

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from stylegan_anime.training.config import ConfigError
from stylegan_anime.training.recipe import RecipeConfig

from .common import num_blocks

# Z_DISTS: how batch.z ~ N(0, I) becomes the generator's input.
Z_DISTS = ("truncated", "normal")


# --------------------------------------------------------------------------------------------------------
# Config helper
# --------------------------------------------------------------------------------------------------------
def base_field(name: str, default):
    """A RecipeConfig field (e.g. `ema_kimg`) with a model-specific default and the base class's help."""
    base = {f.name: f for f in dataclasses.fields(RecipeConfig)}[name]
    return field(default=default, metadata=dict(base.metadata))


def attn_res_field(default: str = "auto"):
    """`attn_res`, one CLI flag for SAGAN and BigGAN: where self-attention goes."""
    return field(default=default, metadata={"help": (
        "feature-map sizes with self-attention in G and D: 'auto', 'none' or a comma list such as 32,64 "
        "(8 ... size/2) [auto: sagan 32 at 64 px and 32,64 at 128; biggan size/2]")})


# --------------------------------------------------------------------------------------------------------
# Resolutions, widths and where self-attention goes
# --------------------------------------------------------------------------------------------------------
def g_widths(dim: int, resolution: int) -> list[int]:
    """Channels of G's 4x4 stem followed by each block's output: 64 px [8d, 8d, 4d, 2d, d]."""
    n = num_blocks(resolution) + 1  # G blocks: 4 at 64 px, 5 at 128 px (ValueError on other sizes)
    top = 2 ** (n - 1)
    return [dim * top] + [dim * 2 ** (n - 1 - i) for i in range(n)]


def d_widths(dim: int, resolution: int) -> list[int]:
    """Channels after each D block: 64 px [d, 2d, 4d, 8d, 8d] (the last block keeps 4x4)."""
    n = num_blocks(resolution) + 1  # down-sampling blocks: R -> 4
    return [dim * 2 ** i for i in range(n)] + [dim * 2 ** (n - 1)]


def attn_choices(resolution: int) -> list[int]:
    """Feature-map sizes both G and D have: 8 ... R/2."""
    return [2 ** k for k in range(3, int(math.log2(resolution)))]


def parse_attn_res(text: str, resolution: int, auto: list[int]) -> list[int]:
    """'auto' -> `auto`; 'none' or '' -> []; '32' or '32,64' -> [32, 64]. ConfigError (a ValueError, shown
    by the CLI as one line) for a size neither network has (allowed: 8 ... R/2)."""
    text = str(text).strip().lower()
    if text == "auto":
        return sorted(auto)
    if text in ("", "none", "off"):
        return []
    allowed = attn_choices(resolution)
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit() or int(part) not in allowed:
            raise ConfigError(f"--attn-res: {part!r} is not a feature-map size at {resolution} px; "
                             f"use 'auto', 'none' or a comma list of {', '.join(map(str, allowed))}")
        out.append(int(part))
    return sorted(set(out))


# --------------------------------------------------------------------------------------------------------
# Spectrally normalised layers (orthogonal init first, as BigGAN; spectral norm is applied after init so
# its power-iteration vectors start from the initialised weight)
# --------------------------------------------------------------------------------------------------------
def sn(module: nn.Module) -> nn.Module:
    """Orthogonal init of `module.weight`, zero bias, then spectral norm on the weight."""
    nn.init.orthogonal_(module.weight)
    if getattr(module, "bias", None) is not None:
        nn.init.zeros_(module.bias)
    return spectral_norm(module)


def sn_conv(c_in: int, c_out: int, kernel: int = 3, bias: bool = True) -> nn.Module:
    """'same' conv (k1 or k3) with spectral norm."""
    return sn(nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=bias))


def sn_linear(c_in: int, c_out: int, bias: bool = True) -> nn.Module:
    return sn(nn.Linear(c_in, c_out, bias=bias))


def sn_embedding(num: int, dim: int) -> nn.Module:
    return sn(nn.Embedding(num, dim))


def has_spectral_norm(module: nn.Module) -> bool:
    from torch.nn.utils import parametrize

    return parametrize.is_parametrized(module, "weight") and any(
        type(p).__name__ == "_SpectralNorm" for p in module.parametrizations["weight"])


# --------------------------------------------------------------------------------------------------------
# Self-attention (Zhang et al. 2019, "Self-Attention GANs")
# --------------------------------------------------------------------------------------------------------
class SelfAttention(nn.Module):
    """x [N, C, H, W] -> x + gamma * o, gamma a learned scalar starting at 0 (identity at init).

        q = W_q x      [N, C/8, HW]   (query per output position)
        k = W_k x      [N, C/8, HW/4] (keys and values max-pooled 2x2 where H, W are even, as in the
        v = W_v x      [N, C/2, HW/4]  authors' TensorFlow release; attention still spans the whole map)
        a = softmax_j(q_i . k_j)       no 1/sqrt(d) scaling, as in the paper
        o = W_o (a v)  [N, C, H, W]
    Every 1x1 conv is spectrally normalised and bias-free.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.qk = max(channels // 8, 1)
        self.vc = max(channels // 2, 1)
        self.query = sn_conv(channels, self.qk, 1, bias=False)
        self.key = sn_conv(channels, self.qk, 1, bias=False)
        self.value = sn_conv(channels, self.vc, 1, bias=False)
        self.out = sn_conv(self.vc, channels, 1, bias=False)
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        q = self.query(x).flatten(2).transpose(1, 2)  # [N, HW, C/8]
        k, v = self.key(x), self.value(x)  # [N, C/8, H, W], [N, C/2, H, W]
        if h % 2 == 0 and w % 2 == 0 and h * w > 4:
            k, v = F.max_pool2d(k, 2), F.max_pool2d(v, 2)
        k = k.flatten(2).transpose(1, 2)  # [N, L, C/8]
        v = v.flatten(2).transpose(1, 2)  # [N, L, C/2]
        a = F.scaled_dot_product_attention(q.unsqueeze(1), k.unsqueeze(1), v.unsqueeze(1), scale=1.0)
        a = a.squeeze(1).transpose(1, 2).reshape(n, self.vc, h, w)  # [N, C/2, H, W]
        return x + self.gamma.to(x.dtype) * self.out(a)


# --------------------------------------------------------------------------------------------------------
# Conditional BatchNorm (de Vries et al. 2017; BigGAN's shared-embedding variant)
# --------------------------------------------------------------------------------------------------------
class ConditionalBatchNorm2d(nn.Module):
    """BN without affine, then per-sample gain and bias from a condition vector c [N, cond_dim]:
    out = BN(x) * (1 + W_g c) + W_b c, with W_g, W_b spectrally normalised linears without bias."""

    def __init__(self, channels: int, cond_dim: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.gain = sn_linear(cond_dim, channels, bias=False)
        self.bias = sn_linear(cond_dim, channels, bias=False)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        gain = 1 + self.gain(c)[:, :, None, None]  # [N, C, 1, 1]
        bias = self.bias(c)[:, :, None, None]
        return self.bn(x) * gain + bias


class _PlainBN(nn.BatchNorm2d):
    """BatchNorm2d (affine) that ignores a condition argument, so GBlock has one code path."""

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:  # noqa: ARG002
        return super().forward(x)


def g_norm(channels: int, cond_dim: int) -> nn.Module:
    return ConditionalBatchNorm2d(channels, cond_dim) if cond_dim > 0 else _PlainBN(channels)


# --------------------------------------------------------------------------------------------------------
# Residual blocks (SNGAN/SAGAN/BigGAN layout)
# --------------------------------------------------------------------------------------------------------
class GBlock(nn.Module):
    """[N, c_in, H, W] -> [N, c_out, 2H, 2W]:
        main  BN(c) -> ReLU -> up x2 (nearest) -> conv3 -> BN(c) -> ReLU -> conv3
        skip  up x2 -> conv1
    BN is conditional on c when cond_dim > 0 (BigGAN), plain otherwise (SAGAN)."""

    def __init__(self, c_in: int, c_out: int, cond_dim: int = 0):
        super().__init__()
        self.bn1 = g_norm(c_in, cond_dim)
        self.conv1 = sn_conv(c_in, c_out, 3)
        self.bn2 = g_norm(c_out, cond_dim)
        self.conv2 = sn_conv(c_out, c_out, 3)
        self.skip = sn_conv(c_in, c_out, 1)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        h = F.interpolate(F.relu(self.bn1(x, c)), scale_factor=2, mode="nearest")
        h = self.conv2(F.relu(self.bn2(self.conv1(h), c)))
        return h + self.skip(F.interpolate(x, scale_factor=2, mode="nearest"))


class DBlock(nn.Module):
    """[N, c_in, H, W] -> [N, c_out, H/2, W/2] (or H, W when down=False), no normalisation:
        main  (ReLU) -> conv3 -> ReLU -> conv3 -> (avgpool 2)
        skip  conv1 -> avgpool 2 (pre-activated blocks) or avgpool 2 -> conv1 (the first, on RGB)
    The skip is the identity when the block neither changes channels nor down-samples."""

    def __init__(self, c_in: int, c_out: int, down: bool = True, preact: bool = True):
        super().__init__()
        self.down, self.preact = down, preact
        self.conv1 = sn_conv(c_in, c_out, 3)
        self.conv2 = sn_conv(c_out, c_out, 3)
        self.skip = sn_conv(c_in, c_out, 1) if (c_in != c_out or down) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(x) if self.preact else x
        h = self.conv2(F.relu(self.conv1(h)))
        if self.down:
            h = F.avg_pool2d(h, 2)
        s = x
        if self.preact:
            s = self.skip(s) if self.skip is not None else s
            s = F.avg_pool2d(s, 2) if self.down else s
        else:
            s = F.avg_pool2d(s, 2) if self.down else s
            s = self.skip(s) if self.skip is not None else s
        return h + s


def split_sizes(total: int, parts: int) -> list[int]:
    """`total` split into `parts` near-equal sizes (the first ones one larger when it does not divide)."""
    if parts < 1 or total < parts:
        raise ValueError(f"cannot split {total} into {parts} parts of at least 1")
    base, extra = divmod(total, parts)
    return [base + (i < extra) for i in range(parts)]


class ResGenerator(nn.Module):
    """z [N, Z] (+ shared class vector [N, S]) -> [N, 3, R, R] in [-1, 1]:

        stem   SN linear -> [N, w0, 4, 4]
        blocks GBlock x B (up-sampling, widths g_widths), self-attention after blocks whose output size is
               in `attn`
        out    BN -> ReLU -> SN conv3 -> tanh

    hier=False (SAGAN): the whole z feeds the stem; BN in the blocks is plain (affine).
    hier=True (BigGAN): z is split into B + 1 chunks (`z_chunks`); chunk 0 feeds the stem, chunk i+1 is
    concatenated with the shared class vector and conditions block i's BatchNorms.
    """

    def __init__(self, z_dim: int, dim: int, resolution: int, attn: list[int], hier: bool = False,
                 shared_dim: int = 0):
        super().__init__()
        widths = g_widths(dim, resolution)
        n_blocks = len(widths) - 1
        self.hier = hier
        self.z_chunks = split_sizes(z_dim, n_blocks + 1) if hier else [z_dim]
        self.stem_channels = widths[0]
        self.stem = sn_linear(self.z_chunks[0], widths[0] * 16)
        blocks, attns, size = [], [], 4
        for i, (c_in, c_out) in enumerate(zip(widths[:-1], widths[1:])):
            cond_dim = self.z_chunks[i + 1] + shared_dim if hier else 0
            blocks.append(GBlock(c_in, c_out, cond_dim))
            size *= 2
            attns.append(SelfAttention(c_out) if size in attn else nn.Identity())
        self.blocks = nn.ModuleList(blocks)
        self.attn = nn.ModuleList(attns)
        self.out_bn = nn.BatchNorm2d(widths[-1])
        self.to_rgb = sn_conv(widths[-1], 3, 3)

    def forward(self, z: torch.Tensor, shared: torch.Tensor | None = None) -> torch.Tensor:
        if self.hier:
            chunks = torch.split(z, self.z_chunks, dim=1)
            conds = [chunk if shared is None else torch.cat([chunk, shared.to(chunk.dtype)], dim=1)
                     for chunk in chunks[1:]]
            x = self.stem(chunks[0])
        else:
            conds = [None] * len(self.blocks)
            x = self.stem(z)
        x = x.view(z.shape[0], self.stem_channels, 4, 4)  # [N, w0, 4, 4]
        for block, attn, c in zip(self.blocks, self.attn, conds):
            x = attn(block(x, c))
        return torch.tanh(self.to_rgb(F.relu(self.out_bn(x))))  # [N, 3, R, R]


class ResDiscriminatorBody(nn.Module):
    """x [N, 3, R, R] -> features [N, C] (ReLU, then sum over positions), with self-attention after the
    blocks whose output size is in `attn`."""

    def __init__(self, dim: int, resolution: int, attn: list[int]):
        super().__init__()
        widths = d_widths(dim, resolution)
        blocks, size, c_in = [], resolution, 3
        for i, c_out in enumerate(widths):
            down = i < len(widths) - 1
            blocks.append(DBlock(c_in, c_out, down=down, preact=i > 0))
            size = size // 2 if down else size
            if size in attn:
                blocks.append(SelfAttention(c_out))
            c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.out_channels = widths[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.blocks(x)).sum(dim=(2, 3))  # [N, C]


# --------------------------------------------------------------------------------------------------------
# Losses and regularisers
# --------------------------------------------------------------------------------------------------------
def hinge_d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """E[relu(1 - D(x))] + E[relu(1 + D(G(z)))] over scores [N] (computed in float32)."""
    return F.relu(1 - real.float()).mean() + F.relu(1 + fake.float()).mean()


def hinge_g_loss(fake: torch.Tensor) -> torch.Tensor:
    """-E[D(G(z))]."""
    return -fake.float().mean()


def orthogonal_penalty(weights) -> torch.Tensor:
    """BigGAN's orthogonal regularisation without beta: sum over W of ||W W^T * (1 - I)||_F^2, each W
    reshaped to [out, in*k*k]; only the off-diagonal of the Gram matrix is penalised, so row norms are
    free. Computed in float32 with autocast off."""
    total = None
    for w in weights:
        with torch.autocast(device_type=w.device.type, enabled=False):
            m = w.float().flatten(1)  # [out, rest]
            gram = m @ m.t()  # [out, out]
            off = gram - torch.diag_embed(torch.diagonal(gram))
            term = off.square().sum()
        total = term if total is None else total + term
    if total is None:
        return torch.zeros([])
    return total


def truncated_normal(z: torch.Tensor, bound: float, std: float = 1.0) -> torch.Tensor:
    """Map z ~ N(0, 1) (elementwise) to N(0, std^2) truncated to [-bound*std, bound*std], deterministically.

    Inverse-CDF: u = Phi(z) is uniform; rescaling it into [Phi(-b), Phi(b)] and inverting gives the
    truncated normal. For a symmetric interval, 2u' - 1 = erf(z/sqrt2) * erf(b/sqrt2), so
        x = std * sqrt2 * erfinv(erf(z / sqrt2) * erf(b / sqrt2)),
    which is monotone in z, odd, and needs no resampling (so it stays a function of the given z).
    Computed in float64 and clamped against rounding; returned in z's dtype.
    """
    if bound <= 0:
        raise ValueError(f"truncation bound must be positive, got {bound}")
    r2 = math.sqrt(2.0)
    z64 = z.double()
    x = r2 * torch.erfinv(torch.erf(z64 / r2) * math.erf(bound / r2))
    return (x.clamp(-bound, bound) * std).to(z.dtype)


def truncated_normal_std(bound: float, std: float = 1.0) -> float:
    """Standard deviation of N(0, std^2) truncated to +-bound*std (closed form)."""
    phi = math.exp(-bound * bound / 2) / math.sqrt(2 * math.pi)
    mass = math.erf(bound / math.sqrt(2))
    return std * math.sqrt(1 - 2 * bound * phi / mass)
