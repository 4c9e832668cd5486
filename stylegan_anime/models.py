"""The model registry: `--model NAME` -> recipe class. Recipes are imported on first use."""
from __future__ import annotations

import importlib

from .training.recipe import Recipe

# name -> "module:Class". New models (StyleGAN2, SAGAN, BigGAN ...) register here.
_REGISTRY: dict[str, "str | type[Recipe]"] = {
    "stylegan2": "stylegan_anime.stylegan2.recipe:StyleGAN2",
    "dcgan": "stylegan_anime.baselines.dcgan:DCGAN",
    "dcgan-tutorial": "stylegan_anime.baselines.dcgan_tutorial:DCGANTutorial",
    "wgan": "stylegan_anime.baselines.wgan:WGAN",
    "wgan-gp": "stylegan_anime.baselines.wgan_gp:WGANGP",
    "sagan": "stylegan_anime.baselines.sagan:SAGAN",
    "biggan": "stylegan_anime.baselines.biggan:BigGAN",
    "cgan": "stylegan_anime.baselines.cgan:CGAN",
    "acgan": "stylegan_anime.baselines.acgan:ACGAN",
}


def register_model(name: str, target: "str | type[Recipe]") -> None:
    """Add a model: target is "module:Class" (imported on first use) or the recipe class itself."""
    _REGISTRY[name] = target


def model_names() -> list[str]:
    return list(_REGISTRY)


def get_recipe(name: str) -> type[Recipe]:
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; choose from {', '.join(_REGISTRY)}")
    target = _REGISTRY[name]
    if not isinstance(target, str):
        return target
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)
