"""Trainer configuration: what the trainer itself needs, independent of the model.

The model's hyperparameters live in the recipe's own dataclass (`RecipeConfig` subclass) and are stored
next to this one in `model_cfg` so a checkpoint holds the full configuration as plain values.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, field

SIZES = tuple(2 ** i for i in range(5, 11))  # every power of two from 32 to 1024 px
SIZE_TEXT = "a power of two from 32 to 1024 (32, 64, 128, 256, 512, 1024)"
AMP_MODES = ("off", "bf16", "fp16")
AUGMENTS = ("none", "diffaug")

# Flags that may differ when resuming a run (everything else must match the saved configuration).
RESUMABLE_OVERRIDES = ("kimg", "minutes", "batch_gpu", "snap_kimg", "grid_kimg", "log_kimg", "keep", "progress",
                       "device", "amp", "workers", "metrics", "metrics_kimg", "metrics_minutes", "metrics_num",
                       "inception", "augment", "aug_policy", "aug_target", "aug_p", "aug_speed_kimg",
                       "max_skipped", "status_every")

# ---------------------------------------------------------------------------------------------------
# Field metadata, on TrainConfig and on every recipe's Config: each numeric field declares its range and
# `validate_fields` checks them all (one place, before anything is written). Keys:
#   min / max                      inclusive bounds
#   min_exclusive / max_exclusive  exclusive bounds (lr: min_exclusive=0; beta: min=0, max_exclusive=1)
#   choices                        the allowed values (also click's choices for str flags)
#   flag                           the CLI flag when it is not --field-name (snap_kimg: --snap)
#   unit                           named in the message ("a positive number of minutes")
# Floats must also be finite. A value of None (allowed by a `| None` type) means "the preset / default
# decides" and is not checked.
RANGE_KEYS = ("min", "min_exclusive", "max", "max_exclusive", "choices")
METADATA_KEYS = ("help", "flag", "unit") + RANGE_KEYS


def _f(default, help: str = "", **meta):
    """A dataclass field with its help and range metadata (see RANGE_KEYS)."""
    return field(default=default, metadata={"help": help, **meta})


@dataclass
class TrainConfig:
    data: str  # folder, zip, packed dir, 'demo' or 'demo:N'
    labels: str | None = None  # CSV/JSON file name -> tags ('blonde hair blue eyes') for a folder or zip
    size: int = _f(64, choices=SIZES)  # output resolution: a power of two, 32 ... 1024
    model: str = "stylegan2"
    batch_gpu: int | None = _f(None, min=1)  # images per forward pass; None = the global batch (no accumulation)
    kimg: float = _f(100.0, min_exclusive=0)  # train until this many thousand real images have been shown to D
    minutes: float | None = _f(None, "... or this many minutes of training time (train_s), whichever comes first",
                               min_exclusive=0, unit="minutes")
    outdir: str = "runs"
    seed: int = _f(0, min=0, max=2**32 - 1)
    amp: str = _f("off", choices=AMP_MODES)  # off | bf16 | fp16
    xflip: bool = False  # random horizontal flips of the reals
    snap_kimg: float = _f(10.0, "checkpoint every N kimg (also at the end and on Ctrl-C)",
                          min_exclusive=0, flag="--snap")
    grid_kimg: float = _f(2.0, min_exclusive=0, flag="--grid")  # sample grid to TensorBoard and PNG every N kimg
    log_kimg: float = _f(0.5, min_exclusive=0, flag="--log")  # scalars to TensorBoard every N kimg
    keep: int = _f(3, min=1)  # checkpoints kept (newest)
    augment: str = _f("none", "none | diffaug: DiffAugment of everything D sees (training/augment.py)",
                      choices=AUGMENTS)
    aug_policy: str = "color,translation,cutout"
    aug_target: float = _f(0.6, min=0, max_exclusive=1)  # adaptive p: target of E[sign(D(real))]; 0 = fixed p
    aug_p: float | None = _f(None, min=0, max=1)  # initial p (default: 0 when adaptive, 1 when fixed)
    aug_speed_kimg: float = _f(100.0, "adaptive p can go from 0 to 1 in this many kimg",
                               min_exclusive=0, flag="--aug-speed")
    metrics: str = "swd"  # comma-separated metrics evaluated on G_ema during training ('' or 'none': off)
    metrics_kimg: float | None = _f(50.0, min_exclusive=0)  # evaluate every N kimg (None: not by kimg) and at the end
    metrics_minutes: float | None = _f(None, "also evaluate every N minutes of training time (train_s)",
                                       min_exclusive=0, unit="minutes")
    metrics_num: int | None = _f(None, "generated images per metric (default: the metric's own, e.g. 10k for fid10k)",
                                 min=1)
    inception: str | None = None  # FID Inception weights file (default: $STYLEGAN_ANIME_INCEPTION or torch-hub cache)
    grid_size: int = _f(8, min=1)  # the sample grid is grid_size x grid_size
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    workers: int | None = _f(None, min=0)  # processes for decoding images when the dataset is packed
    progress: bool = True
    status_every: float | None = _f(None, "a plain status line every N seconds (0: off) [default: 60 without a "
                                          "progress bar, off with one]", min=0, unit="seconds")
    max_skipped: int = _f(50, "stop (exit code 3, nothing saved) after N iterations in a row whose optimiser steps "
                              "were mostly skipped for non-finite gradients (a diverged run); 0 never stops", min=0)
    model_cfg: dict = field(default_factory=dict)  # the recipe's hyperparameters (asdict of its Config)
    label_names: dict | None = None  # the data's label vocabulary, kept for conditional models ({'hair': [...]})

    @property
    def batch(self) -> int:
        batch = self.model_cfg.get("batch")
        if batch is None:  # a preset decides it (StyleGAN2's cpu preset: 16)
            from ..models import get_recipe  # noqa: PLC0415
            recipe = get_recipe(self.model)
            batch = recipe.resolve_config(recipe.make_config(**self.model_cfg), self.size).batch
        return int(batch)

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


def check_size(size, flag: str = "--size") -> int:
    """`size` as an int when it is a power of two from 32 to 1024, else ConfigError naming `flag`."""
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or int(size) not in SIZES:
        raise ConfigError(f"{flag} must be {SIZE_TEXT}, got {size}")
    return int(size)


def field_flag(f: dataclasses.Field) -> str:
    """The CLI flag of a config field, as the user types it: --lr-g (or the field's `flag` metadata)."""
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def field_kind(f: dataclasses.Field) -> type | None:
    """int or float for a numeric field (`int`, `float | None` ...), else None (str, bool, dict ...)."""
    text = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    parts = {p.strip() for p in text.replace("Optional[", "").rstrip("]").split("|")} - {"None", "NoneType"}
    return {"int": int, "float": float}.get(parts.pop()) if len(parts) == 1 else None


def field_range(f: dataclasses.Field) -> str:
    """The allowed values in words: 'positive', '>= 0', 'in [0, 1)', 'one of 64, 128'."""
    m = f.metadata
    if "choices" in m:
        return "one of " + ", ".join(map(str, m["choices"]))
    lo = ("[", m["min"]) if "min" in m else ("(", m["min_exclusive"]) if "min_exclusive" in m else None
    hi = ("]", m["max"]) if "max" in m else (")", m["max_exclusive"]) if "max_exclusive" in m else None
    if lo and hi:
        text = f"in {lo[0]}{lo[1]}, {hi[1]}{hi[0]}"
    elif lo:
        text = "positive" if lo == ("(", 0) else f"{'>=' if lo[0] == '[' else '>'} {lo[1]}"
    elif hi:
        text = f"{'<=' if hi[0] == ']' else '<'} {hi[1]}"
    else:
        text = "a finite number" if field_kind(f) is float else "an integer"
    if "unit" in m:
        text = f"a positive number of {m['unit']}" if text == "positive" else f"{text} ({m['unit']})"
    return text


def check_field(f: dataclasses.Field, value) -> None:
    """ConfigError naming the field's flag, the value and the allowed range, unless `value` is allowed."""
    kind, m = field_kind(f), f.metadata
    if value is None and ("None" in str(f.type) or kind is None and "choices" not in m):
        return  # None: the preset / default decides
    shown = repr(value) if isinstance(value, str) else value
    if m.get("choices") is SIZES:
        check_size(value, field_flag(f))
        return
    if "choices" in m:
        if value not in m["choices"]:
            raise ConfigError(f"{field_flag(f)} must be {field_range(f)}, got {shown}")
        return
    if kind is None:
        return
    number = numbers.Integral if kind is int else numbers.Real
    if isinstance(value, bool) or not isinstance(value, number):
        raise ConfigError(f"{field_flag(f)} must be {'an integer' if kind is int else 'a number'}, got {shown}")
    ok = math.isfinite(value)
    ok = ok and ("min" not in m or value >= m["min"]) and ("min_exclusive" not in m or value > m["min_exclusive"])
    ok = ok and ("max" not in m or value <= m["max"]) and ("max_exclusive" not in m or value < m["max_exclusive"])
    if not ok:
        raise ConfigError(f"{field_flag(f)} must be {field_range(f)}, got {shown}")


def validate_fields(cfg) -> None:
    """Every field of a config dataclass (TrainConfig, a recipe's Config) within its declared range."""
    for f in dataclasses.fields(cfg):
        check_field(f, getattr(cfg, f.name))


def validate_model(cfg: TrainConfig):
    """The recipe's Config of `cfg`, its fields each in range and passing the recipe's cross-field `check`."""
    from ..models import get_recipe  # noqa: PLC0415 (the models import the recipes, which import this module)

    try:
        recipe_cls = get_recipe(cfg.model)
    except KeyError as e:
        raise ConfigError(f"--model: {e.args[0]}") from None
    try:
        model_cfg = recipe_cls.make_config(**cfg.model_cfg)
    except (TypeError, ValueError) as e:
        raise ConfigError(str(e)) from None
    validate_fields(model_cfg)
    recipe_cls.check(model_cfg, cfg.size)
    return model_cfg


def validate(cfg: TrainConfig, world: int = 1) -> None:
    """Every user mistake in the configuration, as a ConfigError: called before anything is written."""
    validate_fields(cfg)
    validate_model(cfg)
    batch = cfg.batch
    if batch < 1:
        raise ConfigError(f"--batch must be positive, got {batch}")
    if batch % world != 0:
        raise ConfigError(f"--batch {batch} is not divisible by the {world} processes")
    bg = cfg.batch_gpu or batch // world
    if (batch // world) % bg != 0:
        per = "" if world == 1 else f" / {world} processes = {batch // world}"
        raise ConfigError(f"--batch {batch}{per} is not divisible by --batch-gpu {bg}")
    if cfg.metric_list:
        try:
            from ..metrics import ALL_METRICS as METRICS  # noqa: PLC0415 (imports scipy; only when asked)
        except ImportError as e:
            raise ConfigError(f"--metrics: metrics are not available ({e})") from None

        unknown = [m for m in cfg.metric_list if m not in METRICS]
        if unknown:
            raise ConfigError(f"--metrics: unknown {', '.join(unknown)}; choose from {', '.join(METRICS)}")
    if cfg.augment == "diffaug":
        from .augment import DiffAugment
        try:
            DiffAugment(cfg.aug_policy)
        except ValueError as e:
            raise ConfigError(f"--aug-policy: {e}") from None
