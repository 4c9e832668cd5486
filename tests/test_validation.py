"""Flags are validated before anything is written, in one place, from the configs themselves.

Every numeric field of TrainConfig and of every registered recipe's Config declares its range in its field
metadata; `validate` checks them all (and each recipe's cross-field `check`) before the dataset is opened or
a run folder is made. The parametrised tests below are generated from `dataclasses.fields`, so a new field
is covered (and must declare a range) without new test code.
"""
from __future__ import annotations

import dataclasses
import math

import pytest

from stylegan_anime.cli import main
from stylegan_anime.models import get_recipe, model_names
from stylegan_anime.stylegan2.recipe import StyleGAN2, StyleGAN2Config
from stylegan_anime.training.config import (
    METADATA_KEYS,
    RANGE_KEYS,
    SIZES,
    ConfigError,
    TrainConfig,
    field_flag,
    field_kind,
    validate,
    validate_fields,
)
from stylegan_anime.training.recipe import Recipe

CONFIGS = {"train": TrainConfig, **{name: get_recipe(name).Config for name in model_names()}}
NUMERIC = [(owner, f) for owner, cls in CONFIGS.items() for f in dataclasses.fields(cls) if field_kind(f)]


def train_config(owner: str = "train", **values) -> TrainConfig:
    """A valid TrainConfig (the model's defaults) with `values` set on the trainer or, for a recipe owner, the
    model config."""
    model = "dcgan" if owner == "train" else owner
    model_cfg = dataclasses.asdict(get_recipe(model).Config())
    if owner != "train":
        model_cfg.update(values)
        values = {}
    return TrainConfig(data="demo:8", model=model, metrics="none", model_cfg=model_cfg, **values)


def out_of_range(f: dataclasses.Field) -> list:
    """Values just outside the field's declared range, plus nan and +-inf for floats."""
    m, kind = f.metadata, field_kind(f)
    step = 1 if kind is int else 0.5
    bad = []
    if "choices" in m:
        bad += [max(m["choices"]) + 1, min(m["choices"]) - 1]
    if "min" in m:
        bad.append(m["min"] - step)
    if "min_exclusive" in m:
        bad += [m["min_exclusive"], m["min_exclusive"] - step]
    if "max" in m:
        bad.append(m["max"] + step)
    if "max_exclusive" in m:
        bad += [m["max_exclusive"], m["max_exclusive"] + step]
    if kind is float:
        bad += [math.nan, math.inf, -math.inf]
    return [kind(v) if math.isfinite(v) else v for v in bad]


CASES = [pytest.param(owner, f, v, id=f"{owner}.{f.name}={v}") for owner, f in NUMERIC for v in out_of_range(f)]


def test_the_registry_and_trainer_have_numeric_fields():
    owners = {owner for owner, _ in NUMERIC}
    assert owners == set(CONFIGS) and len(CASES) > 3 * len(NUMERIC)


@pytest.mark.parametrize("owner,f", [pytest.param(o, f, id=f"{o}.{f.name}") for o, f in NUMERIC])
def test_every_numeric_field_declares_a_range(owner, f):
    assert any(k in f.metadata for k in RANGE_KEYS), (
        f"{owner}: numeric field {f.name!r} has no range metadata ({', '.join(RANGE_KEYS)})")


@pytest.mark.parametrize("owner", list(CONFIGS))
def test_metadata_keys_are_known(owner):
    for f in dataclasses.fields(CONFIGS[owner]):
        unknown = set(f.metadata) - set(METADATA_KEYS)
        assert not unknown, f"{owner}.{f.name}: unknown metadata {unknown} (a typo of {METADATA_KEYS}?)"


@pytest.mark.parametrize("owner,f,value", CASES)
def test_out_of_range_value_is_one_config_error_naming_the_flag(owner, f, value):
    cfg = train_config(owner, **{f.name: value})
    with pytest.raises(ConfigError) as e:
        validate(cfg)
    message = str(e.value)
    assert message.startswith(f"{field_flag(f)} ") and f"got {value}" in message, message
    assert "\n" not in message


@pytest.mark.parametrize("owner,f", [pytest.param(o, f, id=f"{o}.{f.name}") for o, f in NUMERIC])
def test_inclusive_bounds_are_allowed(owner, f):
    m, kind = f.metadata, field_kind(f)
    cls = CONFIGS[owner]
    for key in ("min", "max"):
        if key in m:
            values = {f.name: kind(m[key])} if owner != "train" else {"data": "demo", f.name: kind(m[key])}
            validate_fields(cls(**values))


@pytest.mark.parametrize("model", model_names())
@pytest.mark.parametrize("size", SIZES)
def test_defaults_validate(model, size):
    """Every model's defaults validate at the sizes it trains at (StyleGAN2: all; the fixed baselines: up to
    256 px), and say so in one ConfigError at the others."""
    cfg = TrainConfig(data="demo:8", model=model, size=size, metrics="none",
                      model_cfg=dataclasses.asdict(get_recipe(model).Config()))
    if size > 256 and not model.startswith("stylegan2"):
        with pytest.raises(ConfigError, match=r"this model trains at 32, 64, 128 or 256 px"):
            validate(cfg)
        return
    validate(cfg)
    validate_fields(TrainConfig(data="demo"))


def test_none_means_the_preset_decides():
    validate_fields(StyleGAN2Config(lr=None, gamma=None, channel_max=None))
    validate_fields(TrainConfig(data="demo", batch_gpu=None, minutes=None, aug_p=None, metrics_kimg=None))
    with pytest.raises(ConfigError, match="^--kimg must be"):
        validate_fields(TrainConfig(data="demo", kimg=None))  # not optional


def test_type_mismatch_is_a_config_error():
    with pytest.raises(ConfigError, match="^--dim must be an integer, got 1.5"):
        validate(train_config("dcgan", dim=1.5))
    with pytest.raises(ConfigError, match="^--lr-g must be a number, got 'fast'"):
        validate(train_config("dcgan", lr_g="fast"))


def test_renamed_flags_are_named_as_typed():
    with pytest.raises(ConfigError, match=r"^--snap must be positive, got 0.0"):
        validate(train_config(snap_kimg=0.0))
    with pytest.raises(ConfigError, match=r"^--aug-speed must be positive"):
        validate(train_config(aug_speed_kimg=-1.0))


# --- cross-field checks: the recipe's `check(cfg, resolution)` hook ---------------------------------------
def test_recipe_check_default_is_a_no_op():
    Recipe.check(get_recipe("dcgan").Config(), 64)


@pytest.mark.parametrize("size", SIZES)
def test_stylegan2_widths_give_channels_at_every_resolution(size):
    with pytest.raises(ConfigError, match=f"^--channel-base {size // 2} gives no channels at {size} px"):
        StyleGAN2.check(StyleGAN2Config(channel_base=size // 2), size)
    with pytest.raises(ConfigError, match="^--channel-max 0 "):
        StyleGAN2.check(StyleGAN2Config(channel_max=0), size)  # the preset's channel_base is fine
    StyleGAN2.check(StyleGAN2Config(channel_base=size, channel_max=1), size)  # one channel everywhere
    for preset in StyleGAN2Config.__dataclass_fields__["preset"].metadata["choices"]:
        StyleGAN2.check(StyleGAN2Config(preset=preset), size)
    with pytest.raises(ConfigError, match="^--channel-base"):  # through validate, before anything is built
        validate(dataclasses.replace(train_config("stylegan2", channel_base=size // 2), size=size))


@pytest.mark.parametrize("model", [m for m in model_names() if "dim" in {f.name for f in
                                                                          dataclasses.fields(get_recipe(m).Config)}])
def test_baseline_dim_gives_a_channel_in_every_layer(model):
    recipe = get_recipe(model)
    recipe.check(recipe.Config(dim=1), 128)
    with pytest.raises(ConfigError, match="^--dim 0 leaves a layer without channels"):
        recipe.check(recipe.Config(dim=0), 64)


def test_biggan_z_dim_and_attention_are_checked_before_building():
    with pytest.raises(ConfigError, match="^--z-dim must be at least 6 at 128 px"):
        validate(dataclasses.replace(train_config("biggan", z_dim=5), size=128))
    with pytest.raises(ConfigError, match="^--attn-res: '7'"):
        validate(train_config("sagan", attn_res="7"))


# --- the command line: one line, exit 2, before the dataset is opened or a run folder is made ------------
QUICK = ["--data", "demo:8", "--kimg", "0.008", "--metrics", "none", "--no-progress", "--device", "cpu",
         "--grid", "1", "--log", "0.008", "--snap", "1", "--preset", "cpu"]


@pytest.mark.parametrize("argv,flag", [
    (["--lr", "-1"], "--lr"),
    (["--model", "dcgan", "--lr-g", "-1"], "--lr-g"),
    (["--channel-max", "0"], "--channel-max"),
    (["--channel-base", "32"], "--channel-base"),
    (["--model", "dcgan", "--dim", "0"], "--dim"),
    (["--kimg", "nan"], "--kimg"),
    (["--kimg", "inf"], "--kimg"),
    (["--gamma", "nan"], "--gamma"),
    (["--batch-gpu", "0"], "--batch-gpu"),
    (["--model", "dcgan", "--beta2", "1"], "--beta2"),
    (["--style-mixing", "1.5"], "--style-mixing"),
    (["--snap", "0"], "--snap"),
    (["--model", "biggan", "--z-dim", "4"], "--z-dim"),
], ids=lambda x: " ".join(x) if isinstance(x, list) else x)
def test_cli_bad_flag_is_one_line_before_anything_is_written(argv, flag, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("STYLEGAN_ANIME_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    args = ["train", "--outdir", str(tmp_path / "runs")] + QUICK + argv
    if "--model" in argv:  # --preset is a StyleGAN2 flag
        args = args[:-len(argv) - 2] + argv
    with pytest.raises(SystemExit) as e:
        main(args)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert e.value.code == 2, err
    assert len(lines) == 1 and lines[0].startswith(f"error: {flag} "), err
    assert "Traceback" not in err
    if flag == "--channel-max":
        assert "--channel-base" not in lines[0]
    assert not (tmp_path / "runs").exists(), "no run folder before validation"
    assert not (tmp_path / "cache").exists(), "the dataset is not opened before validation"


@pytest.mark.parametrize("preset", StyleGAN2Config.__dataclass_fields__["preset"].metadata["choices"])
@pytest.mark.parametrize("size", SIZES)
def test_stylegan2_preset_values_are_within_the_declared_ranges(preset, size):
    """What a preset fills in must pass the same checks as a flag would."""
    from stylegan_anime.stylegan2.recipe import resolve

    full = resolve(StyleGAN2Config(preset=preset), size)
    validate_fields(full)
    StyleGAN2.check(full, size)
