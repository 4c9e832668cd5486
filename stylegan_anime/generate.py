"""Images from a checkpoint alone: rebuild the recipe from the saved config, load G_ema (or G), sample.

Seed s always gives the same latent: z = randn(z_dim) from a generator seeded with s, independent of
batch size and of which other seeds are asked for.
"""
from __future__ import annotations

import re
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .imageio_utils import make_grid, save_image, to_uint8
from .training.checkpoint import load_checkpoint, writing
from .training.config import ConfigError, TrainConfig
from .training.recipe import seeded_noise
from .training.trainer import build_recipe, resolve_device


def parse_seeds(text: str) -> list[int]:
    """'0-63' / '1,5,9' / '0-3,10' -> list of ints (ranges inclusive)."""
    seeds: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise ConfigError(f"--seeds: cannot read {part!r}; use forms like 0-63 or 1,5,9 or 0-3,10")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi < lo:
            raise ConfigError(f"--seeds: range {part!r} runs backwards")
        seeds.extend(range(lo, hi + 1))
    return seeds


def seed_latents(seeds: list[int], z_dim: int) -> torch.Tensor:
    """[len(seeds), z_dim] latents, one generator per seed."""
    return torch.stack([torch.randn(z_dim, generator=torch.Generator().manual_seed(s)) for s in seeds])


class Sampler:
    """A generator loaded from a checkpoint, ready to turn seeds into images."""

    def __init__(self, checkpoint: str | Path, device: str = "auto", use_ema: bool = True):
        state = load_checkpoint(checkpoint)
        self.config = TrainConfig.from_dict(state["config"])
        self.device = resolve_device(device)
        self.recipe = build_recipe(self.config, self.device)
        self.G = self.recipe.nets["G"]
        self.G.load_state_dict(state["nets"]["G_ema" if use_ema else "G"])
        self.G.eval().requires_grad_(False)
        self.kimg = state["progress"]["nimg"] / 1000

    @property
    def conditional(self) -> bool:
        return type(self.recipe).needs_labels(self.recipe.cfg)

    def seed_labels(self, seeds: list[int]) -> torch.Tensor | None:
        """For a conditional model: random tags per seed (deterministic), [len(seeds), K]; else None."""
        names = self.config.label_names
        if not self.conditional or not names:
            return None
        rows = []
        for s in seeds:
            g = torch.Generator().manual_seed(s + 1_000_003)
            rows.append([int(torch.randint(len(v), [], generator=g)) for v in names.values()])
        return torch.tensor(rows, dtype=torch.int64)

    @torch.no_grad()
    def images(self, seeds: list[int], batch: int = 64, progress: bool = False,
               labels: torch.Tensor | None = None, evaluation: bool = False) -> torch.Tensor:
        """[len(seeds), 3, H, W] in [-1, 1] on the CPU. labels [len(seeds), K] (or [1, K] for all seeds)
        for a conditional model; default: random tags per seed. evaluation: images as metrics score them
        (StyleGAN2 with random noise, seeded by each batch's first seed) instead of the grids' fixed noise."""
        z = seed_latents(seeds, self.recipe.z_dim)
        if labels is None:
            labels = self.seed_labels(seeds)
        elif labels.shape[0] == 1:
            labels = labels.expand(len(seeds), *labels.shape[1:])
        out = []
        for i, chunk in enumerate(tqdm(z.split(batch), disable=not progress, desc="generating", unit="batch")):
            c = None if labels is None else labels[i * batch:i * batch + len(chunk)].to(self.device)
            if evaluation:
                with seeded_noise(seeds[i * batch] + 1_000_033, self.device):
                    out.append(self.recipe.generate(self.G, chunk.to(self.device), c, **self.recipe.eval_options()).float().cpu())
            else:
                out.append(self.recipe.generate(self.G, chunk.to(self.device), c).float().cpu())
        return torch.cat(out)

    def save_grid(self, seeds: list[int], path: str | Path, cols: int | None = None, batch: int = 64,
                  labels: torch.Tensor | None = None) -> Path:
        grid = make_grid(self.images(seeds, batch, labels=labels), cols=cols)
        with writing(path, remove_partial=True):  # read-only / full disk: WriteError, one line
            save_image(grid, path)
        return Path(path)

    def save_files(self, seeds: list[int], outdir: str | Path, ext: str = "jpg", batch: int = 64,
                   progress: bool = True, labels: torch.Tensor | None = None) -> Path:
        """1.ext ... N.ext (the NTU HW6 submission layout), one per seed in order."""
        outdir = Path(outdir)
        with writing(outdir):
            outdir.mkdir(parents=True, exist_ok=True)
        n = 0
        bar = tqdm(total=len(seeds), disable=not progress, desc="writing", unit="img")
        for i in range(0, len(seeds), batch):
            chunk_labels = None if labels is None or labels.shape[0] == 1 else labels[i:i + batch]
            for pic in to_uint8(self.images(seeds[i:i + batch], batch, labels=labels if chunk_labels is None
                                            else chunk_labels)):
                n += 1
                with writing(outdir / f"{n}.{ext}", remove_partial=True):
                    save_image(pic, outdir / f"{n}.{ext}")
                bar.update(1)
        bar.close()
        return outdir
