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
from .output_files import claim_paths, new_output
from .training.checkpoint import load_checkpoint, writing
from .training.config import ConfigError, TrainConfig
from .training.recipe import seeded_noise
from .training.trainer import build_recipe, resolve_device


MAX_SEED = 2**32 - 1  # seeds are 0 ... 2**32-1 (numpy's and StyleGAN's range)
MAX_IMAGES = 100_000  # images one command call draws (--seeds, --count): a typo must not run for days
MAX_BATCH = 1024  # images per forward pass
MAX_GRID_PIXELS = 2**27  # one grid picture: 134 M pixels (400 MB as uint8; 128 images of 1024 px, 32768 of 64 px)


def parse_seeds(text: str, flag: str = "--seeds") -> list[int]:
    """'0-63' / '1,5,9' / '0-3,10' -> list of ints (ranges inclusive), each in 0 ... MAX_SEED and at most
    MAX_IMAGES in all (checked before any list is built: '0-999999999' is one ConfigError, at once)."""
    seeds: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise ConfigError(f"{flag}: cannot read {part!r}; use forms like 0-63 or 1,5,9 or 0-3,10")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi < lo:
            raise ConfigError(f"{flag}: range {part!r} runs backwards")
        if hi > MAX_SEED:
            raise ConfigError(f"{flag}: seed {hi} is too large; seeds are 0 to {MAX_SEED}")
        if len(seeds) + (hi - lo + 1) > MAX_IMAGES:
            raise ConfigError(f"{flag} {_short(text)} asks for {len(seeds) + hi - lo + 1:,} or more images; at most "
                              f"{MAX_IMAGES:,} per call (split the range over several calls)")
        seeds.extend(range(lo, hi + 1))
    return seeds


def count_seeds(count: int, first: int = 0) -> list[int]:
    """Seeds first ... first+count-1 for --count / --seed: ConfigError unless 1 <= count <= MAX_IMAGES and every
    seed is in 0 ... MAX_SEED."""
    if count < 1 or count > MAX_IMAGES:
        raise ConfigError(f"--count must be from 1 to {MAX_IMAGES:,} (images per call), got {count}")
    if first < 0 or first + count - 1 > MAX_SEED:
        raise ConfigError(f"--seed {first} with --count {count} leaves the seed range 0 to {MAX_SEED}")
    return list(range(first, first + count))


def check_grid(n: int, size: int, cols: int | None) -> None:
    """A grid of n images of size px in `cols` columns fits in memory: ConfigError otherwise (naming the flag)."""
    if cols is not None and not 1 <= cols <= n:
        raise ConfigError(f"--cols must be from 1 to the number of seeds ({n}), got {cols}")
    if n * size * size > MAX_GRID_PIXELS:
        raise ConfigError(f"--seeds: a grid of {n:,} images of {size} px is too large for one picture (at most "
                          f"{MAX_GRID_PIXELS // (size * size):,} at this size); write files with --count N --outdir DIR")


def _short(text: str, limit: int = 40) -> str:
    text = str(text)
    return text if len(text) <= limit else text[:limit] + "..."


def seed_latents(seeds: list[int], z_dim: int) -> torch.Tensor:
    """[len(seeds), z_dim] latents, one generator per seed."""
    return torch.stack([torch.randn(z_dim, generator=torch.Generator().manual_seed(s)) for s in seeds])


class Sampler:
    """A generator loaded from a checkpoint, ready to turn seeds into images."""

    def __init__(self, checkpoint: str | Path, device: str = "auto", use_ema: bool = True):
        self.device = resolve_device(device)  # a bad --device before the checkpoint is read
        net = "G_ema" if use_ema else "G"
        # load_checkpoint checks the stored config and every tensor against it, and this network finite, so
        # neither building nor loading below can fail on what the file holds (a one-line CheckpointError instead)
        state = load_checkpoint(checkpoint, use=(net,))
        self.config = TrainConfig.from_dict(state["config"])
        self.recipe = build_recipe(self.config, self.device)
        self.G = self.recipe.nets["G"]
        self.G.load_state_dict(state["nets"][net])
        self.G.eval().requires_grad_(False)
        self.kimg = int(state["progress"]["nimg"]) / 1000

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
        """One picture of the seeds' images; never overwrites `path` (OutputExists, checked before drawing)."""
        check_grid(len(seeds), self.config.size, cols)
        claim_paths([path])
        grid = make_grid(self.images(seeds, batch, labels=labels), cols=cols)
        with writing(path), new_output(path) as tmp:  # read-only / full disk: WriteError, one line
            save_image(grid, tmp)
        return Path(path)

    def save_files(self, seeds: list[int], outdir: str | Path, ext: str = "jpg", batch: int = 64,
                   progress: bool = True, labels: torch.Tensor | None = None) -> Path:
        """1.ext ... N.ext (the NTU HW6 submission layout), one per seed in order. Files already there are never
        overwritten: OutputExists before any image is drawn."""
        outdir = Path(outdir)
        claim_paths((outdir / f"{n}.{ext}" for n in range(1, len(seeds) + 1)),
                    "write into an empty or new --outdir")
        with writing(outdir):
            outdir.mkdir(parents=True, exist_ok=True)
        n = 0
        bar = tqdm(total=len(seeds), disable=not progress, desc="writing", unit="img")
        for i in range(0, len(seeds), batch):
            chunk_labels = None if labels is None or labels.shape[0] == 1 else labels[i:i + batch]
            for pic in to_uint8(self.images(seeds[i:i + batch], batch, labels=labels if chunk_labels is None
                                            else chunk_labels)):
                n += 1
                with writing(outdir / f"{n}.{ext}"), new_output(outdir / f"{n}.{ext}") as tmp:
                    save_image(pic, tmp)
                bar.update(1)
        bar.close()
        return outdir
