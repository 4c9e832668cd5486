"""Tag-conditional DCGAN with a matching-aware discriminator, as a recipe (`--model cgan`, conditional).

The seed's architecture at 64 px (dim d = 64, z = 100, the 22-dim one-hot condition c = 12 hair + 10 eye,
embed e = 256):

Generator:
    c [N, 22] -> text_dense: Linear(22 -> e) + LeakyReLU(0.2)                        [N, 256]
    concat(z, text) [N, 356] -> Linear(356 -> 8d*4*4) -> reshape                       [N, 8d, 4, 4]
    -> 3 x [BatchNorm2d + LeakyReLU(0.2) + ConvT(k4 s2 p1, bias)]: 8d -> 4d -> 2d -> d  [N, d, 32, 32]
    -> BatchNorm2d(d) + LeakyReLU(0.2) + ConvT(d -> 3, k4 s2 p1, bias) + Tanh          [N, 3, 64, 64]
  Trainable parameters with these settings: 5,688,387 (see `generator_parameter_count`):
      text_dense  22*256 + 256                          =     5,888
      fc          356*8192 + 8192                       = 2,924,544
      BN 512, 256, 128, 64 (weight + bias)  2*(512+256+128+64) = 1,920
      ConvT 512->256  512*256*16 + 256                  = 2,097,408
      ConvT 256->128  256*128*16 + 128                  =   524,416
      ConvT 128->64   128*64*16 + 64                    =   131,136
      ConvT 64->3     64*3*16 + 3                       =     3,075
                                                  total = 5,688,387
Discriminator:
    x [N, 3, 64, 64] -> Conv(3 -> d, k4 s2 p1) + LeakyReLU(0.2)                        [N, d, 32, 32]
    -> 3 x [Conv(k4 s2 p1) + BatchNorm2d + LeakyReLU(0.2)]: d -> 2d -> 4d -> 8d         [N, 8d, 4, 4]
    c -> Linear(22 -> e) + LeakyReLU(0.2), broadcast to 4x4                            [N, 256, 4, 4]
    concat -> [N, 8d + e = 768, 4, 4] -> Conv 1x1 (768 -> 8d) + BatchNorm2d + LeakyReLU [N, 512, 4, 4]
    -> flatten -> Linear(8d*16 -> 1) -> [N] logit (the sigmoid lives in BCE-with-logits, as in the other
    baselines, so autocast is safe)
At 128 px G starts from 16d at 4x4 and both nets get one more block (as the unconditional baselines).

Losses (matching-aware D, "GAN-CLS"):
    loss_D = BCE(D(x, c), 1) + 1/2 [BCE(D(G(z, c_f), c_f), 0) + BCE(D(x, c_wrong), 0)]
    loss_G = BCE(D(G(z, c_f), c_f), 1)
c = the reals' labels, c_f = Batch.fake_labels (drawn by the trainer from the data's label rows),
c_wrong = c with a random non-empty subset of its known attributes changed to another class
(`conditioning.mismatched_labels`): a real image with the wrong tags must be rejected too.
Optimisers: Adam(lr 2e-4, betas (0.5, 0.999)) for both. Init as the other baselines (N(0, 0.02)).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from stylegan_anime.training.recipe import Batch, RecipeConfig

from .common import (
    BaselineRecipe,
    adam_optimizers,
    batch_field,
    beta1_field,
    beta2_field,
    d_norm,
    dim_field,
    down_conv,
    lr_field,
    n_critic_field,
    num_blocks,
    up_conv,
    z_dim_field,
)
from .conditioning import LabelEncoder, check_label_names, cond_embed_field, embed_dim_field, mismatched_labels

LEAK = 0.2


class CondGenerator(nn.Module):
    """(z [N, Z], labels [N, K] int64 or an encoded float condition [N, C]) -> [N, 3, R, R] in [-1, 1]."""

    def __init__(self, z_dim: int, dim: int, resolution: int, encoder: LabelEncoder, embed_dim: int = 256):
        super().__init__()
        n = num_blocks(resolution)
        widths = [dim * 2 ** (n - i) for i in range(n + 1)]  # 64 px: [8d, 4d, 2d, d]
        self.start = widths[0]
        self.encode = encoder
        self.text_dense = nn.Sequential(nn.Linear(encoder.dim, embed_dim), nn.LeakyReLU(LEAK))
        self.fc = nn.Linear(z_dim + embed_dim, widths[0] * 4 * 4)
        self.body = nn.Sequential(*[
            nn.Sequential(nn.BatchNorm2d(c_in), nn.LeakyReLU(LEAK), up_conv(c_in, c_out, 4, bias=True))
            for c_in, c_out in zip(widths[:-1], widths[1:])
        ])
        self.to_rgb = nn.Sequential(nn.BatchNorm2d(dim), nn.LeakyReLU(LEAK), up_conv(dim, 3, 4, bias=True))
        self.out = nn.Tanh()

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        text = self.text_dense(self.encode(labels).to(z.dtype))  # [N, e]
        x = self.fc(torch.cat([z, text], dim=1))  # [N, 8d*16]
        x = x.view(x.shape[0], self.start, 4, 4)  # [N, 8d, 4, 4]
        return self.out(self.to_rgb(self.body(x)))  # [N, 3, R, R]


def conv_trunk(dim: int, resolution: int, norm: str = "batch") -> tuple[nn.Sequential, int]:
    """x [N, 3, R, R] -> [N, C, 4, 4] with k4 s2 p1 convs (first without norm); returns (trunk, C)."""
    n = num_blocks(resolution)
    widths = [dim * 2**i for i in range(n + 1)]  # 64 px: [d, 2d, 4d, 8d]
    layers = [nn.Sequential(down_conv(3, dim, 4, bias=True), nn.LeakyReLU(LEAK))]
    layers += [nn.Sequential(down_conv(c_in, c_out, 4, bias=True), d_norm(norm, c_out), nn.LeakyReLU(LEAK))
               for c_in, c_out in zip(widths[:-1], widths[1:])]
    return nn.Sequential(*layers), widths[-1]


class CondDiscriminator(nn.Module):
    """(x [N, 3, R, R], labels [N, K] or condition [N, C]) -> [N] logits of "real image with these tags"."""

    def __init__(self, dim: int, resolution: int, encoder: LabelEncoder, embed_dim: int = 256):
        super().__init__()
        self.encode = encoder
        self.trunk, width = conv_trunk(dim, resolution)
        self.text_dense = nn.Sequential(nn.Linear(encoder.dim, embed_dim), nn.LeakyReLU(LEAK))
        self.joint = nn.Sequential(nn.Conv2d(width + embed_dim, width, 1), nn.BatchNorm2d(width), nn.LeakyReLU(LEAK))
        self.head = nn.Linear(width * 4 * 4, 1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.trunk(x)  # [N, 8d, 4, 4]
        text = self.text_dense(self.encode(labels).to(h.dtype))  # [N, e]
        text = text[:, :, None, None].expand(-1, -1, h.shape[2], h.shape[3])  # [N, e, 4, 4]
        h = self.joint(torch.cat([h, text], dim=1))  # [N, 8d + e, 4, 4] -> [N, 8d, 4, 4]
        return self.head(h.flatten(1)).view(-1)  # [N]


def generator_parameter_count(z_dim: int = 100, cond_dim: int = 22, embed_dim: int = 256, dim: int = 64,
                              resolution: int = 64) -> int:
    """Trainable parameters of `CondGenerator`, counted layer by layer (5,688,387 at the defaults)."""
    n = num_blocks(resolution)
    widths = [dim * 2 ** (n - i) for i in range(n + 1)] + [3]
    total = cond_dim * embed_dim + embed_dim  # text_dense
    total += (z_dim + embed_dim) * widths[0] * 16 + widths[0] * 16  # fc
    for c_in, c_out in zip(widths[:-1], widths[1:]):
        total += 2 * c_in  # BatchNorm2d before the ConvT
        total += c_in * c_out * 4 * 4 + c_out  # ConvT k4 with bias
    return total


# --------------------------------------------------------------------------------------------------------
class ConditionalRecipe(BaselineRecipe):
    """Base of the conditional baselines: label vocabulary, the encoder, label-aware sampling."""

    conditional = True
    d_loss_scale: ClassVar[float] = 1.0

    def __init__(self, cfg: RecipeConfig, resolution: int, device: torch.device,
                 label_names: dict[str, list[str]] | None = None):
        self.label_names = check_label_names(label_names)
        super().__init__(cfg, resolution, device)

    @property
    def label_sizes(self) -> list[int]:
        return [len(v) for v in self.label_names.values()]

    def make_encoder(self, cfg) -> LabelEncoder:
        return LabelEncoder(cfg.cond_embed, self.label_names)

    def build_optimizers(self, cfg):
        return adam_optimizers(self.nets, cfg)

    # --- sampling -----------------------------------------------------------------------------------
    def default_labels(self, z: torch.Tensor) -> torch.Tensor:
        """Labels for a caller that gives none (metrics, `generate --seeds`): uniform classes, a pure
        function of each latent (column k from Phi(z[:, k]), Phi the normal CDF), so seed s keeps its image
        whatever the batch."""
        cols = []
        for k, size in enumerate(self.label_sizes):
            u = 0.5 * (1 + torch.erf(z[:, k % z.shape[1]].float() / 2**0.5))  # U(0, 1) for z ~ N(0, 1)
            cols.append((u * size).long().clamp(0, size - 1))
        return torch.stack(cols, dim=1)  # [N, K]

    def generate(self, G: nn.Module, z: torch.Tensor, labels: torch.Tensor | None = None, **kwargs) -> torch.Tensor:
        """Images of G for latents z [N, Z] and labels [N, K] int64 (-1: unknown) or a float condition
        [N, C] (e.g. any RGB colours with cond_embed rgb); labels None: `default_labels(z)`."""
        if kwargs:
            raise ValueError(f"{self.name} takes no sampling options, got {', '.join(kwargs)}")
        if labels is None:
            labels = self.default_labels(z)
        labels = labels.to(z.device)
        if labels.shape[0] == 1 and z.shape[0] > 1:
            labels = labels.expand(z.shape[0], -1)
        return G(z, labels)

    # --- helpers for the losses ---------------------------------------------------------------------
    def real_labels(self, batch: Batch) -> torch.Tensor:
        if batch.labels is None:
            raise ValueError(f"--model {self.name} is conditional: the real batch has no labels")
        return batch.labels

    def gen_labels(self, batch: Batch) -> torch.Tensor:
        """Labels to generate with: the trainer's fake_labels, else the reals' labels, else random."""
        if batch.fake_labels is not None:
            return batch.fake_labels
        if batch.labels is not None:
            return batch.labels
        return self.default_labels(batch.z)

    def fakes(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:  # noqa: D102
        with torch.no_grad():
            return self.nets["G"](z, labels)


def bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    logits = logits.float()
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


@dataclass
class CGANConfig(RecipeConfig):
    batch: int = batch_field(64)
    z_dim: int = z_dim_field(100)
    dim: int = dim_field(64)
    embed_dim: int = embed_dim_field(256)
    cond_embed: str = cond_embed_field("onehot")
    lr_g: float = lr_field("G", 2e-4)
    lr_d: float = lr_field("D", 2e-4)
    beta1: float = beta1_field(0.5)
    beta2: float = beta2_field(0.999)
    n_critic: int = n_critic_field(1)


class CGAN(ConditionalRecipe):
    name = "cgan"
    Config = CGANConfig
    description = "tag-conditional DCGAN (hair/eye colour), matching-aware D with mismatched tags, Adam 2e-4"

    def build_nets(self, cfg: CGANConfig, resolution: int):
        G = CondGenerator(cfg.z_dim, cfg.dim, resolution, self.make_encoder(cfg), cfg.embed_dim)
        D = CondDiscriminator(cfg.dim, resolution, self.make_encoder(cfg), cfg.embed_dim)
        return G, D

    def loss_D(self, batch: Batch) -> dict[str, torch.Tensor]:
        D = self.nets["D"]
        c = self.real_labels(batch)  # [N, K]
        c_fake = self.gen_labels(batch)  # [N, K]
        c_wrong, valid = mismatched_labels(c, self.label_sizes)  # [N, K], [N]
        real = D(batch.reals, c).float()  # [N] logits
        fake = D(self.fakes(batch.z, c_fake), c_fake).float()
        wrong = D(batch.reals, c_wrong).float()
        loss_real = bce(real, 1.0)
        loss_fake = bce(fake, 0.0)
        per_wrong = F.binary_cross_entropy_with_logits(wrong, torch.zeros_like(wrong), reduction="none")
        w = valid.float()
        loss_wrong = (per_wrong * w).sum() / w.sum().clamp(min=1)  # rows without a known tag cannot be wrong
        return {
            "loss": loss_real + 0.5 * (loss_fake + loss_wrong),
            "D_real": torch.sigmoid(real).mean().detach(),
            "D_fake": torch.sigmoid(fake).mean().detach(),
            "D_wrong": ((torch.sigmoid(wrong) * w).sum() / w.sum().clamp(min=1)).detach(),  # reals, wrong tags
        }

    def loss_G(self, batch: Batch) -> dict[str, torch.Tensor]:
        c = self.gen_labels(batch)
        fake = self.nets["D"](self.nets["G"](batch.z, c), c).float()
        return {"loss": bce(fake, 1.0), "D_fake": torch.sigmoid(fake).mean().detach()}
