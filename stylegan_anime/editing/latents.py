"""W-space plumbing shared by `project`, `directions`, `edit` and `explore` (StyleGAN2 checkpoints only).

    seed_ws(sampler, seeds, psi, labels)   ws [N, num_ws, w_dim] of seeds (conditional models: labels)
    layer_groups(G)                        {"coarse": [...], "middle": [...], "fine": [...]} ws indices
    mix_layers(ws, ws2, layers)            ws with the given layers taken from ws2
    render(sampler, ws, noise)             uint8 [N, H, W, 3]
    save_latent / load_latent              the projected-latent file (.npz, key `ws` [num_ws, w_dim])

Style layers count from 0 at 4x4. Block r (4, 8, ..., R) reads the ws of its convs and one for its toRGB;
that toRGB w is also the next block's first conv w. Groups follow the StyleGAN paper: coarse = the
4-8 px blocks (pose, face shape), middle = 16-32 px (features, hair style), fine = 64 px and up (colours,
texture).
"""
from __future__ import annotations

import os
import re
import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..generate import seed_latents
from ..imageio_utils import to_uint8
from . import require_w_space

LATENT_FORMAT = "stylegan-anime-latent"
NOISE_CHOICES = ("const", "random", "none")


def ws_resolutions(G) -> list[int]:
    """The block resolution each ws index first feeds (its conv; the last one: the final toRGB)."""
    syn = G.synthesis
    out: list[int] = []
    for res in syn.block_resolutions:
        out.extend([res] * getattr(syn, f"b{res}").num_conv)
    out.extend([syn.img_resolution] * (G.num_ws - len(out)))
    return out


def layer_groups(G) -> dict[str, list[int]]:
    """ws indices of the coarse (4-8 px), middle (16-32 px) and fine (>= 64 px) style layers."""
    res = ws_resolutions(G)
    return {"coarse": [i for i, r in enumerate(res) if r <= 8],
            "middle": [i for i, r in enumerate(res) if 16 <= r <= 32],
            "fine": [i for i, r in enumerate(res) if r >= 64]}


def parse_layers(styles, num_ws: int) -> list[int]:
    """Layer indices from '0-3' / '0,2,4' / '0-3,8' / 'all' / '' or 'none' (no layer) / a list of ints."""
    if isinstance(styles, str):
        text = styles.strip().lower()
        if text == "all":
            return list(range(num_ws))
        layers: list[int] = []
        if text not in ("", "none"):
            for part in text.split(","):
                m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
                if not m:
                    raise ValueError(f"styles: cannot read {part.strip()!r}; use forms like 0-3, 0,2,4, all or none")
                lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
                if hi < lo:
                    raise ValueError(f"styles: range {part.strip()!r} runs backwards")
                layers.extend(range(lo, hi + 1))
    else:
        layers = [int(i) for i in styles]
    bad = [i for i in layers if not 0 <= i < num_ws]
    if bad:
        raise ValueError(f"styles: layer {bad[0]} is out of range; this generator has {num_ws} style layers "
                         f"(0-{num_ws - 1})")
    return sorted(set(layers))


def parse_layer_spec(spec: str | Sequence[int] | None, G) -> list[int]:
    """'all' / None -> every layer; 'coarse', 'middle', 'fine' (or a '+'-joined mix) or '0-3,8' -> indices."""
    if spec is None:
        return list(range(G.num_ws))
    if isinstance(spec, str):
        text = spec.strip().lower()
        groups = layer_groups(G)
        parts = [p.strip() for p in text.split("+")]
        if parts and all(p in groups for p in parts):
            return sorted({i for p in parts for i in groups[p]})
    return parse_layers(spec, G.num_ws)


def _is_conditional(recipe) -> bool:
    """Tag-conditional (--cond: a label encoder) or class-conditional (num_classes) StyleGAN2."""
    return getattr(recipe, "encoder", None) is not None or bool(getattr(recipe.cfg, "num_classes", 0))


def condition(sampler, n: int, labels: torch.Tensor | None = None) -> torch.Tensor:
    """The mapping network's condition c [n, c_dim]: empty for unconditional models; for a conditional
    StyleGAN2 the encoded labels ([1, K] or [n, K]; default: the sampler's random tags per seed 0..n-1)."""
    recipe = sampler.recipe
    if not _is_conditional(recipe):
        return torch.zeros([n, getattr(sampler.G, "c_dim", 0)], device=sampler.device)
    if labels is None:
        labels = sampler.seed_labels(list(range(n)))
    if labels.shape[0] == 1:
        labels = labels.expand(n, *labels.shape[1:])
    return recipe._c(n, labels)


@torch.no_grad()
def seed_ws(sampler, seeds: Sequence[int], psi: float = 1.0, labels: torch.Tensor | None = None,
            zero_condition: bool = False) -> torch.Tensor:
    """ws [len(seeds), num_ws, w_dim] (float32, on the sampler's device), truncated towards w_avg by psi.

    Conditional models map each seed with `labels` ([1, K] or [N, K]), by default the seed's own random tags or
    class; `zero_condition` maps with c = 0 instead (the videos' keyframes and the truncation / mixing
    figures: one condition-free path through W)."""
    require_w_space(sampler, "W space")
    z = seed_latents(list(seeds), sampler.recipe.z_dim).to(sampler.device)
    if zero_condition:
        c = torch.zeros([z.shape[0], getattr(sampler.G, "c_dim", 0)], device=sampler.device)
    else:
        if labels is None and _is_conditional(sampler.recipe):
            labels = sampler.seed_labels(list(seeds))
        c = condition(sampler, len(seeds), labels)
    return sampler.G.mapping(z, c, truncation_psi=psi).float()


def w_avg_ws(sampler) -> torch.Tensor:
    """ws [1, num_ws, w_dim] of the tracked average w (conditional models: the unconditional average)."""
    G = sampler.G
    return G.mapping.w_avg.detach().float().reshape(1, 1, -1).repeat(1, G.num_ws, 1)


def mix_layers(ws: torch.Tensor, ws2: torch.Tensor, layers: Sequence[int]) -> torch.Tensor:
    """ws [N, L, C] with the layers in `layers` replaced by ws2's ([N or 1, L, C])."""
    out = ws.clone()
    idx = list(layers)
    if idx:
        out[:, idx] = ws2.expand_as(ws)[:, idx]
    return out


@torch.no_grad()
def render(sampler, ws: torch.Tensor, noise: str = "const", batch: int = 16) -> np.ndarray:
    """uint8 [N, H, W, 3] from ws [N, num_ws, w_dim]; noise: 'const' (the trained fixed maps), 'random'
    or 'none'."""
    if noise not in NOISE_CHOICES:
        raise ValueError(f"noise must be one of {', '.join(NOISE_CHOICES)}, got {noise!r}")
    ws = ws.to(sampler.device)
    return np.concatenate([to_uint8(sampler.G.synthesis(chunk, noise_mode=noise).float().cpu())
                           for chunk in ws.split(batch)])


def save_latent(path: str | os.PathLike, ws: torch.Tensor, **meta) -> Path:
    """Write ws [num_ws, w_dim] (or [1, num_ws, w_dim]) and string/number metadata to the .npz `path` itself.
    Commands call it on the temporary path of output_files.new_output (never over a user's file)."""
    path = Path(path)
    ws = ws.detach().float().cpu().reshape(-1, ws.shape[-1]).numpy()
    np.savez(path, ws=ws, format=LATENT_FORMAT, **{k: np.asarray(v) for k, v in meta.items()})
    return path


def open_npz(path: Path, not_ours: str) -> np.lib.npyio.NpzFile:
    """np.load of an .npz archive (no pickles); ValueError(not_ours) for any other file (an image, a bare .npy,
    a broken zip: numpy's own messages would talk about pickles)."""
    try:
        f = np.load(path, allow_pickle=False)
    except (OSError, EOFError, ValueError, zipfile.BadZipFile):
        raise ValueError(not_ours) from None
    if not isinstance(f, np.lib.npyio.NpzFile):
        raise ValueError(not_ours)
    return f


def load_latent(path: str | os.PathLike, G) -> torch.Tensor:
    """ws [1, num_ws, w_dim] from a latent file of ours, or stylegan2-ada-pytorch's projected_w.npz (key `w`).
    A single w [w_dim] or [1, w_dim] is broadcast to every layer. One-line ValueError for anything else."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"latent file does not exist: {path}")
    f = open_npz(path, f"{path} is not a latent .npz file; make one with `stylegan-anime project`")
    try:
        with f:
            key = "ws" if "ws" in f.files else "w" if "w" in f.files else None
            if key is None:
                raise ValueError(f"{path} holds no latent (no 'ws' or 'w' array); make one with `project`")
            arr = np.asarray(f[key], dtype=np.float32)
    except (OSError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"cannot read latent file {path}: {e}") from None
    arr = arr.reshape(-1, arr.shape[-1]) if arr.ndim >= 1 else arr
    if arr.ndim != 2 or arr.shape[-1] != G.w_dim or arr.shape[0] not in (1, G.num_ws):
        raise ValueError(f"{path}: latent of shape {list(arr.shape)} does not fit this generator "
                         f"([{G.num_ws}, {G.w_dim}] or [1, {G.w_dim}])")
    ws = torch.from_numpy(arr)
    if ws.shape[0] == 1:
        ws = ws.repeat(G.num_ws, 1)
    return ws.unsqueeze(0)


__all__ = ["LATENT_FORMAT", "NOISE_CHOICES", "condition", "layer_groups", "load_latent", "mix_layers", "open_npz",
           "parse_layer_spec", "render", "save_latent", "seed_ws", "w_avg_ws", "ws_resolutions"]
