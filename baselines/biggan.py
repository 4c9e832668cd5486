"""BigGAN (Brock, Donahue, Simonyan 2019, "Large Scale GAN Training for High Fidelity Natural Image
Synthesis"), as a conditional recipe (`--model biggan`) on the hair / eye tags.

Classes. The labels are [N, K] int64, one column per tag group (hair, eye), -1 = unknown. Each group has
its own embedding table with one extra learned "unknown" row; the K group embeddings are CONCATENATED into
the shared class vector y [N, shared_dim] (shared_dim split evenly over the groups). `classes 'none'` (or a
recipe built without `label_names`) uses one dummy class: every label is 0, so the model is unconditional;
`needs_labels` is then False, so the trainer accepts unlabelled data (and ignores labels it has).

Generator (gan_layers.ResGenerator, hier=True): z [N, Z] is split into B + 1 chunks (hierarchical z; 5
chunks of 24 at 64 px, 6 of 20 at 128 px for Z = 120). Chunk 0 -> SN linear -> [N, w0, 4, 4]; block i gets
cat(chunk i+1, y) and projects it with per-block SN linears to the gains (1 + W_g c) and biases (W_b c) of
its conditional BatchNorms. Residual up-blocks, self-attention at `attn_res`, BN -> ReLU -> SN conv3 -> tanh.
Discriminator: residual SN down-blocks, self-attention, ReLU, sum pooling -> h [N, C];
    D(x, y) = w . h + b + sum_groups <E_group(y_group), h>      (projection discriminator, SN embeddings)
Orthogonal init everywhere.

Losses: hinge. G's loss adds ortho * sum_W ||W W^T * (1 - I)||_F^2 over G's raw (pre-spectral-norm) conv and
linear weights, the shared embedding excluded (BigGAN section 3.1; beta = 1e-4).

Defaults (source): Adam lr_g 5e-5, lr_d 2e-4, betas (0, 0.999), 2 D steps per G step (BigGAN paper: SA-GAN's
TTUR rates halved with 2 D steps per G step, section 3 / appendix C; PyTorch-StudioGAN's batch-64 BigGAN
configs use the same values),
z_dim 120 and shared_dim 128 (BigGAN at 128 px), batch 64 (small data; the paper used 2048), attention at
size/2 (the paper's 64x64 at 128 px; 32x32 at 64 px). EMA: 10 kimg half-life with a 0.05 ramp-up, this
repo's StyleGAN2 'auto' value; the paper's 0.9999 per step from iteration 20k at batch 2048 would be a
~14 Mimg half-life, longer than a small-data run.

Label dropout (our addition, `label_dropout`, 0 = paper): each label of reals and fakes alike is replaced
by "unknown" with this probability, so the unknown entries are trained even when the data has no unknown
tags and `generate` without labels (metrics, `stylegan-anime generate`) samples the whole data
distribution rather than an untrained class. Sampling with labels uses them as given.

Truncation: `generate(G, z, labels, psi=t)` feeds N(0, 1) truncated to [-t, t] (t in std units), made from
z by the inverse-CDF map (gan_layers.truncated_normal: deterministic, no resampling); psi None or 0 = off.
Note t = 1 is a strong truncation here (unlike StyleGAN2's psi = 1).
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
    ResDiscriminatorBody,
    ResGenerator,
    attn_res_field,
    base_field,
    d_widths,
    g_widths,
    hinge_d_loss,
    hinge_g_loss,
    orthogonal_penalty,
    parse_attn_res,
    sn_embedding,
    sn_linear,
    split_sizes,
    truncated_normal,
)

CLASSES = ("tags", "none")


@dataclass
class BigGANConfig(RecipeConfig):
    batch: int = batch_field(64)
    ema_kimg: float = base_field("ema_kimg", 10.0)
    ema_rampup: float = base_field("ema_rampup", 0.05)
    z_dim: int = z_dim_field(120)
    dim: int = dim_field(64)
    lr_g: float = lr_field("G", 5e-5)
    lr_d: float = lr_field("D", 2e-4)
    beta1: float = beta1_field(0.0)
    beta2: float = beta2_field(0.999)
    n_critic: int = n_critic_field(2)
    attn_res: str = attn_res_field()
    shared_dim: int = hparam(128, "BigGAN shared class embedding size (split evenly over the tag groups, concatenated)",
                             min=1)
    ortho: float = hparam(1e-4, "BigGAN orthogonal regularisation weight on G's weights (0: off)", min=0)
    classes: str = hparam("tags", "BigGAN classes: 'tags' (hair x eye labels of the data) or 'none' (one dummy "
                          "class: unconditional)", choices=CLASSES)
    label_dropout: float = hparam(0.1, "BigGAN: probability that a label of a real or fake is replaced by "
                                  "'unknown' (trains the unknown entries used when sampling without labels)",
                                  min=0, max_exclusive=1)
    grid_psi: float = hparam(0.5, "truncation of the extra Samples/ema_psi grid: z cut to [-psi, psi] (0: no grid)",
                             min=0)


def label_index(labels: torch.Tensor, n: int) -> torch.Tensor:
    """Labels of one group ([N], 0..n-1 or -1 unknown) -> embedding rows (unknown = row n)."""
    return torch.where(labels < 0, torch.full_like(labels, n), labels)


class ClassEmbedding(nn.Module):
    """labels [N, K] -> shared class vector [N, shared_dim]: one table per group (n_g + 1 rows, the last
    for unknown), concatenated. Not spectrally normalised (as BigGAN's shared embedding)."""

    def __init__(self, group_sizes: list[int], shared_dim: int):
        super().__init__()
        self.group_sizes = list(group_sizes)
        dims = split_sizes(shared_dim, len(group_sizes))
        self.tables = nn.ModuleList(nn.Embedding(n + 1, d) for n, d in zip(group_sizes, dims))
        for t in self.tables:
            nn.init.orthogonal_(t.weight)

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        return torch.cat([t(label_index(labels[:, g], n))
                          for g, (t, n) in enumerate(zip(self.tables, self.group_sizes))], dim=1)


class BigGANGenerator(ResGenerator):
    """(z [N, Z], labels [N, K]) -> [N, 3, R, R]."""

    def __init__(self, z_dim: int, dim: int, resolution: int, attn: list[int], group_sizes: list[int],
                 shared_dim: int):
        super().__init__(z_dim, dim, resolution, attn, hier=True, shared_dim=shared_dim)
        self.shared = ClassEmbedding(group_sizes, shared_dim)

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward(z, self.shared(labels))


class ProjectionDiscriminator(nn.Module):
    """(x [N, 3, R, R], labels [N, K]) -> [N]: linear(h) + sum_g <E_g(y_g), h>, E_g spectrally normalised
    embeddings with an extra row for unknown."""

    def __init__(self, dim: int, resolution: int, attn: list[int], group_sizes: list[int]):
        super().__init__()
        self.group_sizes = list(group_sizes)
        self.body = ResDiscriminatorBody(dim, resolution, attn)
        c = self.body.out_channels
        self.head = sn_linear(c, 1)
        self.embed = nn.ModuleList(sn_embedding(n + 1, c) for n in group_sizes)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.body(x)  # [N, C]
        out = self.head(h).squeeze(1)
        for g, (e, n) in enumerate(zip(self.embed, self.group_sizes)):
            out = out + (e(label_index(labels[:, g], n)).to(h.dtype) * h).sum(dim=1)
        return out


class BigGAN(Recipe):
    name = "biggan"
    Config = BigGANConfig
    description = ("BigGAN: class-conditional (hair/eye tags) residual SN G/D, shared embedding + hierarchical z, "
                   "projection D, orthogonal reg., hinge, truncation")
    conditional = True  # the class default; an instance says `conditional = False` in single-class mode

    @classmethod
    def needs_labels(cls, cfg: BigGANConfig) -> bool:
        """Labelled data is needed for classes 'tags' only; 'none' trains on any data."""
        return cfg.classes != "none"

    @classmethod
    def check(cls, cfg: BigGANConfig, resolution: int) -> None:
        """--dim gives every layer a channel, --z-dim one latent per z chunk, --attn-res sizes the nets have."""
        check_widths(cfg.dim, g_widths(cfg.dim, resolution) + d_widths(cfg.dim, resolution), resolution)
        chunks = num_blocks(resolution) + 2  # one z chunk for the stem and one per G block
        if cfg.z_dim < chunks:
            raise ConfigError(f"--z-dim must be at least {chunks} at {resolution} px (hierarchical z), got {cfg.z_dim}")
        parse_attn_res(cfg.attn_res, resolution, [resolution // 2])

    def __init__(self, cfg: BigGANConfig, resolution: int, device: torch.device,
                 label_names: dict[str, list[str]] | None = None):
        num_blocks(resolution)  # ConfigError unless 32, 64, 128 or 256
        if cfg.classes not in CLASSES:
            raise ConfigError(f"--classes must be one of {', '.join(CLASSES)}, got {cfg.classes!r}")
        if not 0 <= cfg.label_dropout < 1:
            raise ConfigError(f"--label-dropout must be in [0, 1), got {cfg.label_dropout}")
        if cfg.ortho < 0:
            raise ConfigError(f"--ortho must be >= 0, got {cfg.ortho}")
        self.check(cfg, resolution)
        super().__init__(cfg, resolution, device)
        self.single_class = cfg.classes == "none" or not label_names
        self.conditional = not self.single_class
        self.groups = {"class": 1} if self.single_class else {k: len(v) for k, v in label_names.items()}
        sizes = list(self.groups.values())
        if any(n < 1 for n in sizes):
            raise ConfigError(f"every label group needs at least one class, got {self.groups}")
        if cfg.shared_dim < len(sizes):
            raise ConfigError(f"--shared-dim must be at least the number of label groups ({len(sizes)})")
        self.attn = parse_attn_res(cfg.attn_res, resolution, [resolution // 2])
        G = BigGANGenerator(cfg.z_dim, cfg.dim, resolution, self.attn, sizes, cfg.shared_dim)
        D = ProjectionDiscriminator(cfg.dim, resolution, self.attn, sizes)
        self.nets = {"G": G.to(self.device), "D": D.to(self.device)}
        betas = (cfg.beta1, cfg.beta2)
        self.opts = {"G": adam(G.parameters(), self.device, lr=cfg.lr_g, betas=betas),
                     "D": adam(D.parameters(), self.device, lr=cfg.lr_d, betas=betas)}
        self.phases = [Phase("D", "D", self.loss_D, repeats=cfg.n_critic),
                       Phase("G", "G", self.loss_G, needs_reals=False)]
        self.z_dim = cfg.z_dim
        # Weights under orthogonal regularisation: G's conv/linear weights (the raw ones under spectral
        # norm), not the shared class embedding, not biases, BN or gamma.
        self.ortho_weights = [p for name, p in G.named_parameters() if p.ndim >= 2 and not name.startswith("shared.")]

    # ------------------------------------------------------------------ labels
    def class_labels(self, labels: torch.Tensor | None, n: int) -> torch.Tensor:
        """Labels [n, K] int64 on the device for the networks: zeros in single-class mode, the given
        labels otherwise (ValueError if missing or of the wrong width)."""
        if self.single_class:
            return torch.zeros(n, 1, dtype=torch.long, device=self.device)
        if labels is None:
            raise ValueError("BigGAN with classes 'tags' needs labels for every batch (use classes 'none' "
                             "for unlabelled data)")
        labels = labels.to(self.device, torch.long)
        if labels.ndim == 2 and labels.shape[0] == 1 and n > 1:  # one row for every sample
            labels = labels.expand(n, -1)
        if labels.ndim != 2 or labels.shape[1] != len(self.groups):
            raise ValueError(f"labels must be [N, {len(self.groups)}] ({', '.join(self.groups)}), "
                             f"got {list(labels.shape)}")
        too_big = labels >= torch.tensor(list(self.groups.values()), device=labels.device)
        if bool(too_big.any()):
            raise ValueError(f"a label is out of range for the groups {self.groups}")
        return labels

    def drop_labels(self, labels: torch.Tensor) -> torch.Tensor:
        """Training labels with each entry set to -1 (unknown) with probability label_dropout."""
        p = self.cfg.label_dropout
        if self.single_class or p <= 0:
            return labels
        return labels.masked_fill(torch.rand(labels.shape, device=labels.device) < p, -1)

    # ------------------------------------------------------------------ losses
    def ortho_penalty(self) -> torch.Tensor:
        return orthogonal_penalty(self.ortho_weights)

    def loss_D(self, batch: Batch) -> dict[str, torch.Tensor]:
        n = batch.z.shape[0]
        y_fake = self.drop_labels(self.class_labels(batch.fake_labels, n))
        y_real = self.drop_labels(self.class_labels(batch.labels, batch.reals.shape[0]))
        with torch.no_grad():
            fakes = self.nets["G"](batch.z, y_fake)
        real = self.nets["D"](batch.reals, y_real).float()  # [N]
        fake = self.nets["D"](fakes, y_fake).float()
        return {"loss": hinge_d_loss(real, fake), "D_real": real.mean().detach(), "D_fake": fake.mean().detach(),
                "real_sign": real.sign().mean().detach()}  # E[sign(D(x))]: the adaptive-augmentation signal

    def loss_G(self, batch: Batch) -> dict[str, torch.Tensor]:
        y = self.drop_labels(self.class_labels(batch.fake_labels, batch.z.shape[0]))
        fake = self.nets["D"](self.nets["G"](batch.z, y), y).float()
        out = {"loss": hinge_g_loss(fake), "D_fake": fake.mean().detach()}
        if self.cfg.ortho > 0:
            penalty = self.ortho_penalty()
            out["loss"] = out["loss"] + self.cfg.ortho * penalty
            out["ortho"] = penalty.detach()
        return out

    # ------------------------------------------------------------------ sampling
    def generate(self, G: nn.Module, z: torch.Tensor, labels: torch.Tensor | None = None,
                 psi: float | None = None, **kwargs) -> torch.Tensor:
        """Images for z (truncated to [-psi, psi] when psi > 0) and labels [N, K] or [1, K] (None: all
        unknown, i.e. the whole data distribution when trained with label_dropout > 0)."""
        if psi:
            z = truncated_normal(z, float(psi))
        if labels is None and not self.single_class:
            labels = torch.full((z.shape[0], len(self.groups)), -1, dtype=torch.long, device=z.device)
        return G(z, self.class_labels(labels, z.shape[0]))

    def grid_variants(self) -> dict[str, dict]:
        psi = self.cfg.grid_psi
        return {f"psi{psi:g}": {"psi": psi}} if psi and psi > 0 else {}
