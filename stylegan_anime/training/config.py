"""Trainer configuration: what the trainer itself needs, independent of the model.

The model's hyperparameters live in the recipe's own dataclass (`RecipeConfig` subclass) and are stored
next to this one in `model_cfg` so a checkpoint holds the full configuration as plain values.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

SIZES = (64, 128)
AMP_MODES = ("off", "bf16", "fp16")

# Flags that may differ when resuming a run (everything else must match the saved configuration).
RESUMABLE_OVERRIDES = ("kimg", "minutes", "batch_gpu", "snap_kimg", "grid_kimg", "log_kimg", "keep", "progress",
                       "device", "amp", "workers", "metrics", "metrics_kimg", "metrics_minutes", "metrics_num",
                       "inception", "augment", "aug_policy", "aug_target", "aug_p", "aug_speed_kimg")


@dataclass
class TrainConfig:
    data: str  # folder, zip, packed dir, 'demo' or 'demo:N'
    labels: str | None = None  # CSV/JSON file name -> tags ('blonde hair blue eyes') for a folder or zip
    size: int = 64  # output resolution (64 or 128)
    model: str = "stylegan2"
    batch_gpu: int | None = None  # images per forward pass; None = the global batch (no accumulation)
    kimg: float = 100.0  # train until this many thousand real images have been shown to D
    minutes: float | None = None  # ... or this many minutes of training time (train_s), whichever comes first
    outdir: str = "runs"
    seed: int = 0
    amp: str = "off"  # off | bf16 | fp16
    xflip: bool = False  # random horizontal flips of the reals
    snap_kimg: float = 10.0  # checkpoint every N kimg (also at the end and on Ctrl-C)
    grid_kimg: float = 2.0  # sample grid to TensorBoard and PNG every N kimg
    log_kimg: float = 0.5  # scalars to TensorBoard every N kimg
    keep: int = 3  # checkpoints kept (newest)
    augment: str = "none"  # none | diffaug: DiffAugment of everything D sees (training/augment.py)
    aug_policy: str = "color,translation,cutout"
    aug_target: float = 0.6  # adaptive p: target of E[sign(D(real))]; 0 = fixed p
    aug_p: float | None = None  # initial p (default: 0 when adaptive, 1 when fixed)
    aug_speed_kimg: float = 100.0  # adaptive p can go from 0 to 1 in this many kimg
    metrics: str = "swd"  # comma-separated metrics evaluated on G_ema during training ('' or 'none': off)
    metrics_kimg: float | None = 50.0  # evaluate every N kimg (None: not by kimg) and at the end
    metrics_minutes: float | None = None  # also evaluate every N minutes of training time (train_s)
    metrics_num: int | None = None  # generated images per metric (default: the metric's own, e.g. 10k for fid10k)
    inception: str | None = None  # FID Inception weights file (default: $STYLEGAN_ANIME_INCEPTION or torch-hub cache)
    grid_size: int = 8  # the sample grid is grid_size x grid_size
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    workers: int | None = None  # processes for decoding images when the dataset is packed
    progress: bool = True
    model_cfg: dict = field(default_factory=dict)  # the recipe's hyperparameters (asdict of its Config)
    label_names: dict | None = None  # the data's label vocabulary, kept for conditional models ({'hair': [...]})

    @property
    def batch(self) -> int:
        return int(self.model_cfg["batch"])

    @property
    def rounds(self) -> int:
        """Gradient accumulation rounds per optimiser step (one process)."""
        return self.batch // (self.batch_gpu or self.batch)

    @property
    def metric_list(self) -> list[str]:
        names = [m.strip() for m in self.metrics.split(",") if m.strip()]
        return [] if names in (["none"], ["off"]) else names

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


class ConfigError(ValueError):
    """A user mistake in the configuration: reported as one line, exit code 2."""


def validate(cfg: TrainConfig, world: int = 1) -> None:
    if cfg.size not in SIZES:
        raise ConfigError(f"--size must be one of {', '.join(map(str, SIZES))}, got {cfg.size}")
    if cfg.amp not in AMP_MODES:
        raise ConfigError(f"--amp must be one of {', '.join(AMP_MODES)}, got {cfg.amp!r}")
    batch = cfg.batch
    if batch < 1:
        raise ConfigError(f"--batch must be positive, got {batch}")
    if batch % world != 0:
        raise ConfigError(f"--batch {batch} is not divisible by the {world} processes")
    bg = cfg.batch_gpu or batch // world
    if bg < 1:
        raise ConfigError(f"--batch-gpu must be positive, got {bg}")
    if (batch // world) % bg != 0:
        per = "" if world == 1 else f" / {world} processes = {batch // world}"
        raise ConfigError(f"--batch {batch}{per} is not divisible by --batch-gpu {bg}")
    if cfg.kimg <= 0:
        raise ConfigError(f"--kimg must be positive, got {cfg.kimg}")
    for name in ("snap_kimg", "grid_kimg", "log_kimg", "metrics_kimg"):
        if getattr(cfg, name) is not None and getattr(cfg, name) <= 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be positive, got {getattr(cfg, name)}")
    for name in ("minutes", "metrics_minutes"):
        value = getattr(cfg, name)
        if value is not None and not (value > 0 and math.isfinite(value)):
            raise ConfigError(f"--{name.replace('_', '-')} must be a positive number of minutes, got {value}")
    if cfg.metric_list:
        try:
            from ..metrics import ALL_METRICS as METRICS  # noqa: PLC0415 (imports scipy; only when asked)
        except ImportError as e:
            raise ConfigError(f"--metrics: metrics are not available ({e})") from None

        unknown = [m for m in cfg.metric_list if m not in METRICS]
        if unknown:
            raise ConfigError(f"--metrics: unknown {', '.join(unknown)}; choose from {', '.join(METRICS)}")
    if cfg.augment not in ("none", "diffaug"):
        raise ConfigError(f"--augment must be none or diffaug, got {cfg.augment!r}")
    if cfg.augment == "diffaug":
        from .augment import DiffAugment
        try:
            DiffAugment(cfg.aug_policy)
        except ValueError as e:
            raise ConfigError(f"--aug-policy: {e}") from None
        if cfg.aug_p is not None and not 0 <= cfg.aug_p <= 1:
            raise ConfigError(f"--aug-p must be in [0, 1], got {cfg.aug_p}")
    if cfg.keep < 1:
        raise ConfigError(f"--keep must be at least 1, got {cfg.keep}")
