"""Tags for the tag-conditional checkpoints (`cgan`, `acgan`): text -> labels, colours -> rgb condition,
and the "Row: hair, Col: eye" figure.

    tags_to_labels("pink hair, black eyes")   -> LongTensor [[4, 0]]  (hair, eye; -1 = not given)
    rgb_labels((255, 0, 0), "#3060ff")       -> FloatTensor [1, 6]   (hair RGB, eye RGB in [0, 1]) for
                                                checkpoints trained with --cond-embed rgb
    hair_eye_grid(sampler, "grid.png")        rows = hair colours, columns = eye colours, one latent

Either kind of labels goes to `sampler.recipe.generate(sampler.G, z, labels)`; a [1, K] row is used for
every latent. Errors are ValueError with a one-line message (the CLI prints `error: ...`).
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from ..data.labels import LABEL_NAMES, parse_tags_detailed, valid_tags_text
from ..imageio_utils import save_image, to_uint8

__all__ = ["hair_eye_grid", "hair_eye_image", "label_names_of", "parse_rgb", "rgb_labels", "tags_to_labels"]


def _map_to(label_names: dict | None, group: str, idx: int) -> int:
    """Index `idx` of the standard vocabulary -> index in `label_names` (the checkpoint's vocabulary)."""
    if idx < 0 or label_names is None:
        return idx
    name = LABEL_NAMES[group][idx]
    names = list(label_names.get(group, []))
    if name not in names:
        raise ValueError(f"this checkpoint has no {group} colour {name!r}; it knows {', '.join(names)}")
    return names.index(name)


def tags_to_labels(text: str | Sequence[str], label_names: dict | None = None) -> torch.Tensor:
    """``"pink hair, black eyes"`` -> LongTensor [1, 2] (hair, eye). A group that is not mentioned is -1
    (unknown: "any"). Unknown or conflicting tags are a ValueError naming the tag and listing the valid
    colours. `label_names`: the checkpoint's vocabulary when it is not the standard one."""
    parsed = parse_tags_detailed(text)
    if parsed.unknown:
        raise ValueError(f"unknown tag {parsed.unknown[0]!r} in {str(text)!r}; valid {valid_tags_text()}")
    if parsed.conflicts:
        raise ValueError(f"two different {parsed.conflicts[0]} colours in {str(text)!r}; give one")
    if parsed.hair < 0 and parsed.eye < 0:
        raise ValueError(f"no hair or eye colour in {str(text)!r}; write e.g. 'pink hair, black eyes' "
                         f"(valid {valid_tags_text()})")
    row = [_map_to(label_names, "hair", parsed.hair), _map_to(label_names, "eye", parsed.eye)]
    return torch.tensor([row], dtype=torch.int64)


def parse_rgb(value, group: str = "hair") -> tuple[float, float, float]:
    """A colour as RGB in [0, 1]: a colour name of `group`'s palette ('pink'), '#rrggbb', 'r,g,b' with
    0-255 values, or a sequence of three 0-255 numbers."""
    from stylegan_anime.baselines.conditioning import palette_rgb  # noqa: PLC0415 (torch-only import)

    what = f"{group} colour {value!r}"
    if isinstance(value, str):
        text = value.strip().lower()
        m = re.fullmatch(r"#?([0-9a-f]{6})", text)
        if m and (text.startswith("#") or not text.isalpha()):
            h = m.group(1)
            return tuple(int(h[i:i + 2], 16) / 255.0 for i in (0, 2, 4))
        if re.fullmatch(r"[a-z]+", text):
            try:
                return tuple(float(v) for v in palette_rgb(group, [text])[0])
            except ValueError:
                raise ValueError(f"unknown {what}; use a name ({', '.join(LABEL_NAMES[group])}), "
                                 f"#rrggbb or r,g,b") from None
        parts = re.split(r"[,\s]+", text.strip("()[] "))
    else:
        parts = list(value)
    try:
        rgb = [float(p) for p in parts]
    except (TypeError, ValueError):
        raise ValueError(f"cannot read {what}; use a name, #rrggbb or r,g,b with values 0-255") from None
    if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
        raise ValueError(f"{what} must be three values in 0-255")
    return tuple(v / 255.0 for v in rgb)


def rgb_labels(hair_rgb=None, eye_rgb=None, sampler=None) -> torch.Tensor:
    """FloatTensor [1, 6]: hair RGB then eye RGB in [0, 1], the condition of a `--cond-embed rgb` model.
    Each colour: see `parse_rgb`; None = that group's palette mean (the "unknown" colour). With
    `sampler`, check that its checkpoint was trained with the rgb encoding."""
    if sampler is not None:
        embed = getattr(getattr(sampler.recipe, "cfg", None), "cond_embed", None)
        if embed != "rgb":
            raise ValueError(f"RGB colours need a conditional checkpoint trained with --cond-embed rgb; this one "
                             f"is {_model_name(sampler)}" + (f" with --cond-embed {embed}" if embed else ""))
    from stylegan_anime.baselines.conditioning import palette_rgb  # noqa: PLC0415

    row = []
    for group, value in (("hair", hair_rgb), ("eye", eye_rgb)):
        if value is None:
            row.extend(float(v) for v in palette_rgb(group, LABEL_NAMES[group]).mean(0))
        else:
            row.extend(parse_rgb(value, group))
    return torch.tensor([row], dtype=torch.float32)


# --------------------------------------------------------------------------------------------------------
# The hair x eye figure
# --------------------------------------------------------------------------------------------------------
def _model_name(sampler) -> str:
    return getattr(getattr(sampler, "config", None), "model", None) or type(sampler.G).__name__


def label_names_of(sampler) -> dict[str, list[str]]:
    """The checkpoint's label vocabulary; ValueError for an unconditional model."""
    if not getattr(sampler.recipe, "conditional", False):
        raise ValueError(f"the hair x eye grid needs a tag-conditional checkpoint (cgan, acgan); this one is "
                         f"{_model_name(sampler)}")
    names = getattr(sampler.recipe, "label_names", None) or getattr(sampler.config, "label_names", None)
    if not names or "hair" not in names or "eye" not in names:
        raise ValueError(f"this checkpoint has no hair/eye labels (label groups: {', '.join(names or [])})")
    return {k: list(v) for k, v in names.items()}


def _pick(group: str, wanted, names: list[str]) -> list[int]:
    if wanted is None:
        return list(range(len(names)))
    if isinstance(wanted, str):
        wanted = [w for w in re.split(r"[,\s]+", wanted) if w]
    out = []
    for w in wanted:
        if isinstance(w, (int, np.integer)):
            if not 0 <= int(w) < len(names):
                raise ValueError(f"{group} index {w} is out of range 0-{len(names) - 1}")
            out.append(int(w))
            continue
        key = str(w).strip().lower()
        key = {"gray": "silver", "grey": "silver", "blond": "blonde"}.get(key, key) if key not in names else key
        if key not in names:
            raise ValueError(f"unknown {group} colour {w!r}; valid: {', '.join(names)}")
        out.append(names.index(key))
    if not out:
        raise ValueError(f"give at least one {group} colour")
    return out


def _font(px: int):
    try:
        return ImageFont.load_default(size=px)
    except (TypeError, OSError, ImportError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def header_sizes(H: int, W: int) -> tuple[int, int]:
    """(height of the header row, width of the header column) of the labelled figure for H x W cells."""
    return max(12, H // 4), W


def _add_headers(grid: np.ndarray, rows: list[str], cols: list[str], H: int, W: int) -> np.ndarray:
    hh, hw = header_sizes(H, W)
    canvas = Image.new("RGB", (hw + grid.shape[1], hh + grid.shape[0]), (255, 255, 255))
    canvas.paste(Image.fromarray(grid), (hw, hh))
    draw = ImageDraw.Draw(canvas)
    font = _font(max(8, min(hh - 2, W // 5)))
    black = (0, 0, 0)
    draw.text((2, hh // 2), "hair \\ eye", fill=black, font=font, anchor="lm")
    for c, name in enumerate(cols):
        draw.text((hw + c * W + W // 2, hh // 2), name, fill=black, font=font, anchor="mm")
    for r, name in enumerate(rows):
        draw.text((hw // 2, hh + r * H + H // 2), name, fill=black, font=font, anchor="mm")
    return np.asarray(canvas)


@torch.no_grad()
def hair_eye_image(sampler, z_seed: int = 0, hair=None, eye=None, headers: bool = True,
                   batch: int = 64) -> np.ndarray:
    """uint8 figure: rows = hair colours, columns = eye colours, the latent of `z_seed` in every cell.
    Without headers it is exactly [rows*H, cols*W, 3]; with them a header row (hair \\ eye, the eye names)
    and a header column (the hair names) of `header_sizes(H, W)` are added on top and on the left."""
    from ..generate import seed_latents  # noqa: PLC0415

    names = label_names_of(sampler)
    groups = list(names)
    rows, cols = _pick("hair", hair, names["hair"]), _pick("eye", eye, names["eye"])
    if batch < 1:
        raise ValueError(f"batch must be positive, got {batch}")
    n = len(rows) * len(cols)
    labels = torch.full((n, len(groups)), -1, dtype=torch.int64)  # other groups (if any): unknown
    labels[:, groups.index("hair")] = torch.tensor(rows).repeat_interleave(len(cols))
    labels[:, groups.index("eye")] = torch.tensor(cols).repeat(len(rows))
    z = seed_latents([int(z_seed)], sampler.recipe.z_dim).expand(n, -1)
    device = getattr(sampler, "device", torch.device("cpu"))
    pics = np.concatenate([
        to_uint8(sampler.recipe.generate(sampler.G, zc.to(device), lc.to(device)).float().cpu())
        for zc, lc in zip(z.split(batch), labels.split(batch))
    ])  # [n, H, W, 3], row-major: hair-major, eye-minor
    H, W = pics.shape[1:3]
    grid = np.ascontiguousarray(pics.reshape(len(rows), len(cols), H, W, 3).transpose(0, 2, 1, 3, 4)
                                .reshape(len(rows) * H, len(cols) * W, 3))
    if headers:
        grid = _add_headers(grid, [names["hair"][i] for i in rows], [names["eye"][i] for i in cols], H, W)
    return grid


def hair_eye_grid(sampler, out_png: str | os.PathLike, z_seed: int = 0, hair=None, eye=None,
                  headers: bool = True, batch: int = 64) -> Path:
    """Write the seed's "Row: hair, Col: eye" figure (see `hair_eye_image`); returns the path.
    `hair` / `eye`: None for every colour, or colour names / indices (a list, or 'pink,blue')."""
    path = Path(out_png)
    if path.suffix.lower() not in (".png", ".jpg", ".jpeg", ".webp"):
        raise ValueError(f"figure format must be .png, .jpg or .webp, got {path.name!r}")
    image = hair_eye_image(sampler, z_seed, hair, eye, headers, batch)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(image, path)
    return path
