"""Is a checkpoint's content usable? Its stored configuration, and its networks' tensors against that config.

`load_checkpoint` reads a file and checks its keys; this module checks what is *in* them, before any command
builds a network from it (generate, explore, project, directions, edit, video, metrics, train --resume, and
import-checkpoint on what it is about to write):

- the stored config: every field in the same range as the command line's (`validate_fields`, `check_size`,
  `validate_model` for the recipe's own config), the model known, conditional models with a tag vocabulary;
- the networks: the recipe is built on the `meta` device (shapes only: no memory, no weights), and every
  tensor of `nets.G`, `nets.D`, `nets.G_ema` must exist there with the same shape, and every tensor it needs
  must be stored;
- the networks a command uses (`use`): every floating tensor finite (a NaN generator draws blank pictures).

Each problem is one `CheckpointError` naming the key: `FILE: config.model_cfg.z_dim: --z-dim must be
positive, got -5`, `FILE: nets.G_ema.synthesis.b4.conv1.weight has shape [8, 8, 3, 3]; the stored config
(stylegan2, 64 px) needs [16, 16, 3, 3]`.
"""
from __future__ import annotations

import dataclasses
from typing import Iterable

import torch

from .checkpoint_errors import CheckpointError
from .config import ConfigError, TrainConfig, check_field, check_size

NETS = ("G", "D", "G_ema")
_SHOWN = 3  # names listed in a missing / unexpected message before "and N more"


def check_checkpoint(state: dict, path, use: Iterable[str] = NETS) -> TrainConfig:
    """The stored TrainConfig of `state` once config and tensors are checked (see the module doc); else a
    CheckpointError 'PATH: what is wrong'. `use`: the networks whose tensors must all be finite."""
    def bad(reason: str) -> CheckpointError:
        return CheckpointError(f"{path}: {reason}", reason)

    cfg, model_cfg = checked_config(state["config"], bad)
    recipe = _meta_recipe(cfg, model_cfg, bad)
    expected = {k: {n: tuple(t.shape) for n, t in net.state_dict().items()} for k, net in recipe.nets.items()}
    for key in NETS:
        _check_tensors(state["nets"][key], expected["G" if key == "G_ema" else key], f"nets.{key}", cfg, bad)
    for key in use:
        _check_finite(state["nets"][key], f"nets.{key}", bad)
    if {"G", "D"} <= set(use):  # a resume: the training state it restores too
        _check_training_state(state, recipe, cfg, bad)
    return cfg


def checked_config(config: dict, bad) -> tuple[TrainConfig, object]:
    """(TrainConfig, the recipe's Config) from a stored config dict, every field in its CLI range; `bad(reason)`
    makes the exception raised otherwise."""
    from ..models import get_recipe  # noqa: PLC0415 (the models import the recipes, which import this package)

    try:
        cfg = TrainConfig.from_dict(config)
    except TypeError as e:
        raise bad(f"config: {e}") from None
    for f in dataclasses.fields(cfg):
        if f.name == "size":
            _named("config.size", bad, check_size, cfg.size)
        else:
            _named(f"config.{f.name}", bad, check_field, f, getattr(cfg, f.name))
    if not isinstance(cfg.model, str):
        raise bad(f"config.model is not a name: {cfg.model!r}")
    try:
        recipe_cls = get_recipe(cfg.model)
    except KeyError as e:
        raise bad(f"config.model: {e.args[0]}") from None
    try:
        model_cfg = recipe_cls.make_config(**cfg.model_cfg)
    except (TypeError, ValueError) as e:
        raise bad(f"config.model_cfg: {_first_line(e)}") from None
    for f in dataclasses.fields(model_cfg):
        _named(f"config.model_cfg.{f.name}", bad, check_field, f, getattr(model_cfg, f.name))
    _named("config.model_cfg", bad, recipe_cls.check, model_cfg, cfg.size)
    if cfg.label_names is not None and not _is_vocabulary(cfg.label_names):
        raise bad("config.label_names is not a tag vocabulary ({'hair': ['blonde', ...], ...})")
    if recipe_cls.needs_labels(model_cfg) and not cfg.label_names:
        raise bad(f"config.label_names is missing: the {cfg.model} model is conditional and needs its tag vocabulary")
    return cfg, model_cfg


def _named(key: str, bad, check, *args) -> None:
    try:
        check(*args)
    except (ConfigError, ValueError, TypeError) as e:  # a recipe's `check` may raise a plain ValueError too
        raise bad(f"{key}: {_first_line(e)}") from None


def _is_vocabulary(names) -> bool:
    return isinstance(names, dict) and len(names) > 0 and all(
        isinstance(k, str) and isinstance(v, (list, tuple)) and len(v) > 0 and all(isinstance(t, str) for t in v)
        for k, v in names.items())


_BUILT: dict[str, object] = {}  # config -> its meta recipe: a command that loads twice (project: G, then D) builds once


def _meta_recipe(cfg: TrainConfig, model_cfg, bad):
    """The recipe the stored config builds, on the `meta` device: shapes only, no memory, no weights (the layers
    still draw their initial values: about a second for a 256 px StyleGAN2, so it is built once per config)."""
    from ..models import get_recipe  # noqa: PLC0415

    key = repr((get_recipe(cfg.model), cfg.size, sorted(cfg.model_cfg.items()), cfg.label_names))
    if key not in _BUILT:
        _BUILT.clear()
        _BUILT[key] = _build_meta(cfg, model_cfg, bad)
    return _BUILT[key]


def _build_meta(cfg: TrainConfig, model_cfg, bad):
    from ..models import get_recipe  # noqa: PLC0415

    recipe_cls = get_recipe(cfg.model)
    extra = {"label_names": cfg.label_names} if recipe_cls.needs_labels(model_cfg) else {}
    try:
        with torch.random.fork_rng(devices=[]):  # the layers draw their initial weights: not from the caller's RNG
            return recipe_cls(model_cfg, cfg.size, torch.device("meta"), **extra)
    except Exception as e:  # noqa: BLE001 - any value the recipe cannot build from: named, one line
        raise bad(f"config: the {cfg.model} networks cannot be built from it ({_first_line(e)})") from None


def _check_training_state(state: dict, recipe, cfg: TrainConfig, bad) -> None:
    """What a resume restores besides the networks: progress counters, optimiser moments (each the shape of its
    parameter), the fixed grid latents [grid_size**2, z_dim] and the RNG states (byte tensors)."""
    for key in ("nimg", "iteration", "skipped"):
        value = state["progress"][key]
        if isinstance(value, bool) or not isinstance(value, (int, float, torch.Tensor)) or int(value) < 0:
            raise bad(f"progress.{key} is not a count: {value!r}")
    for name, opt in recipe.opts.items():
        saved = state.get("opts", {}).get(name)
        if saved is not None:
            _check_optimizer(saved, opt, f"opts.{name}", bad)
    z = state.get("fixed", {}).get("z")
    want = [cfg.grid_size ** 2, recipe.z_dim]
    if z is not None and (not isinstance(z, torch.Tensor) or list(z.shape) != want or not z.is_floating_point()):
        raise bad(f"fixed.z is not the grid's latents: {_shape(z)}, the stored config needs {want}")
    rng = state.get("rng", {})
    if not isinstance(rng, dict):
        raise bad("rng is not a dict of generator states")
    for key in ("torch", "z"):
        t = rng.get(key)
        if t is not None and (not isinstance(t, torch.Tensor) or t.dtype != torch.uint8 or t.dim() != 1):
            raise bad(f"rng.{key} is not a generator state (a 1-d byte tensor): {_shape(t)}")
    if rng.get("torch") is not None and rng["torch"].numel() != torch.get_rng_state().numel():
        raise bad(f"rng.torch has {rng['torch'].numel()} bytes; a CPU generator state has {torch.get_rng_state().numel()}")


def _check_optimizer(saved, opt: torch.optim.Optimizer, where: str, bad) -> None:
    """An optimiser state dict: as many groups and parameters as the stored config's optimiser, every moment
    tensor (exp_avg ...) the shape of its parameter."""
    if not isinstance(saved, dict) or not isinstance(saved.get("param_groups"), list) \
            or not isinstance(saved.get("state"), dict):
        raise bad(f"{where} is not an optimiser state (a dict with 'state' and 'param_groups')")
    groups = saved["param_groups"]
    if len(groups) != len(opt.param_groups) or any(
            not isinstance(g, dict) or len(g.get("params", ())) != len(o["params"])
            for g, o in zip(groups, opt.param_groups)):
        raise bad(f"{where} has {[len(g.get('params', ())) if isinstance(g, dict) else '?' for g in groups]} "
                  f"parameters per group; the stored config's optimiser has "
                  f"{[len(o['params']) for o in opt.param_groups]}")
    shapes = {i: tuple(p.shape) for g, o in zip(groups, opt.param_groups) for i, p in zip(g["params"], o["params"])}
    for index, entry in saved["state"].items():
        if index not in shapes or not isinstance(entry, dict):
            raise bad(f"{where}.state[{index!r}] belongs to no parameter")
        for key, t in entry.items():
            if isinstance(t, torch.Tensor) and t.dim() > 0 and tuple(t.shape) != shapes[index]:
                raise bad(f"{where}.state[{index}].{key} has shape {list(t.shape)}; its parameter is "
                          f"{list(shapes[index])}")


def _shape(x) -> str:
    return f"shape {list(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__


def _check_tensors(sd, expected: dict[str, tuple], where: str, cfg: TrainConfig, bad) -> None:
    if not isinstance(sd, dict):
        raise bad(f"{where} is a {type(sd).__name__}, not a dict of tensors")
    config = f"the stored config ({cfg.model}, {cfg.size} px)"
    missing = [n for n in expected if n not in sd]
    unexpected = [n for n in sd if n not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"lacks {_names(missing)} that {config} needs")
        if unexpected:
            parts.append(f"has {_names(unexpected)} that {config} does not have")
        raise bad(f"{where} {' and '.join(parts)}: the weights do not match the config they were saved with")
    for name, shape in expected.items():
        t = sd[name]
        if not isinstance(t, torch.Tensor):
            raise bad(f"{where}.{name} is a {type(t).__name__}, not a tensor")
        if tuple(t.shape) != shape:
            raise bad(f"{where}.{name} has shape {list(t.shape)}; {config} needs {list(shape)}")


def _check_finite(sd: dict, where: str, bad) -> None:
    for name, t in sd.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            count = int((~torch.isfinite(t)).sum())
            raise bad(f"{where}.{name} has {count} non-finite value{'s' if count != 1 else ''} (NaN or inf) of "
                      f"{t.numel()}: the network is broken (saved from a diverged run?)")


def _names(names: list[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:_SHOWN])
    return shown + (f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
