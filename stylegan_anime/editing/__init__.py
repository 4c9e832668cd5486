"""W-space editing of a trained StyleGAN2: latents, projection, closed-form directions.

    latents     W-space plumbing: seed ws, layer groups and specs, mixing, rendering, latent files
    projector   project: an image -> its latent (stylegan2-ada-pytorch's method, no download needed)
    directions  closed-form (SeFa) directions, edits along them, their figures, videos and tag report

Used by the `project`, `directions`, `edit` and `explore` commands (stylegan_anime/cli/editing.py,
stylegan_anime/explore/) and by the reports (videos and figures interpolate in W). Every function raises
ValueError with a one-line message on bad input.
"""
from __future__ import annotations


def has_w_space(sampler) -> bool:
    """True for a StyleGAN2 generator (mapping + synthesis networks), False for the z-only baselines."""
    G = sampler.G
    return hasattr(G, "mapping") and hasattr(G, "synthesis") and hasattr(G, "num_ws")


def model_name(sampler) -> str:
    return getattr(getattr(sampler, "config", None), "model", None) or type(sampler.G).__name__


def require_w_space(sampler, what: str) -> None:
    if not has_w_space(sampler):
        raise ValueError(f"{what} needs a StyleGAN2 checkpoint (W space); this one is {model_name(sampler)}, "
                         f"which has only z")
