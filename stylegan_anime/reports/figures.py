"""The classic StyleGAN figures, for StyleGAN2 checkpoints (they need W space).

style_mixing_figure: a (1 + rows) x (1 + cols) image grid. Top row: the column seeds' images; left column:
    the row seeds' images (the top-left corner is white); cell (r, c): the row seed's ws with the layers in
    `styles` replaced by the column seed's ws. Layers count from 0 at 4x4 (coarse: pose, face shape) up to
    num_ws - 1 (fine: colours, texture); '0-3' takes the coarse styles of the column seed.
truncation_figure: rows = seeds, columns = psi values; psi 1 is the untruncated image and psi 0 is the
    image of w_avg, identical in every row.

Both use constant noise, so cells differ only by their ws. The `*_image` functions give the bare grid; the
`*_figure` functions write it labelled (a title, 'seed N' per row, the column seeds or 'psi P' per column) with
every face upscaled to face_px (default 256, or the model's size if larger), never over an existing file.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..imageio_utils import save_image
from ..output_files import claim_paths, new_output
from ..editing import require_w_space
from ..figure_labels import face_size, labelled_grid
from ..editing.latents import parse_layers, render, seed_ws
from ..number_checks import check_psi


def _check_seeds(name: str, seeds: Sequence[int]) -> list[int]:
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError(f"{name}: give at least one seed")
    return seeds


def _tile(cells: np.ndarray) -> np.ndarray:
    """[R, C, H, W, 3] -> [R*H, C*W, 3]."""
    R, C, H, W, ch = cells.shape
    return np.ascontiguousarray(cells.transpose(0, 2, 1, 3, 4).reshape(R * H, C * W, ch))


def style_mixing_image(sampler, row_seeds: Sequence[int], col_seeds: Sequence[int], styles="0-3",
                       psi: float = 1.0, batch: int = 64) -> np.ndarray:
    """The style-mixing figure as uint8 [(1+rows)*H, (1+cols)*W, 3] (see the module docstring)."""
    require_w_space(sampler, "style mixing")
    rows, cols = _check_seeds("row seeds", row_seeds), _check_seeds("column seeds", col_seeds)
    if batch < 1:
        raise ValueError(f"batch must be positive, got {batch}")
    layers = parse_layers(styles, sampler.G.num_ws)
    ws = seed_ws(sampler, rows + cols, check_psi(psi), zero_condition=True)
    w_row, w_col = ws[:len(rows)], ws[len(rows):]
    mixed = w_row[:, None].repeat(1, len(cols), 1, 1)  # [R, C, num_ws, w_dim]
    if layers:
        mixed[:, :, layers] = w_col[None, :, layers]
    pics = render(sampler, torch.cat([w_row, w_col, mixed.flatten(0, 1)]), "const", batch)
    row_pics, col_pics, cell_pics = pics[:len(rows)], pics[len(rows):len(rows) + len(cols)], pics[len(rows) + len(cols):]
    H, W = pics.shape[1:3]
    canvas = np.full((1 + len(rows), 1 + len(cols), H, W, 3), 255, dtype=np.uint8)
    canvas[0, 1:] = col_pics
    canvas[1:, 0] = row_pics
    canvas[1:, 1:] = cell_pics.reshape(len(rows), len(cols), H, W, 3)
    return _tile(canvas)


def style_mixing_figure(sampler, out_png: str | os.PathLike, row_seeds: Sequence[int], col_seeds: Sequence[int],
                        styles="0-3", psi: float = 1.0, batch: int = 64, face_px: int | None = None) -> Path:
    """Write the style-mixing figure, labelled (StyleGAN2 only; ValueError otherwise); returns the path."""
    path = _figure_path(out_png)
    face_size(face_px, 1)  # a bad --face-px before any work
    image = style_mixing_image(sampler, row_seeds, col_seeds, styles, psi, batch)
    rows, cols = [int(s) for s in row_seeds], [int(s) for s in col_seeds]
    H = image.shape[0] // (1 + len(rows))
    cells = image.reshape(1 + len(rows), H, 1 + len(cols), H, 3).transpose(0, 2, 1, 3, 4)
    layers = parse_layers(styles, sampler.G.num_ws)
    title = (f"style mixing (psi {psi:g}): each cell is its row's seed with style layers "
             f"{_layers_text(layers)} of {sampler.G.num_ws} taken from its column's seed")
    grid = labelled_grid(cells, title=title, col_labels=[""] + [f"seed {s}" for s in cols],
                         row_labels=[""] + [f"seed {s}" for s in rows], face_px=face_px)
    return _save(grid.image, path)


def _layers_text(layers: list[int]) -> str:
    from ..editing.directions import layer_text

    return layer_text(layers) if layers else "none"


def truncation_image(sampler, seeds: Sequence[int], psis: Sequence[float] = (1.0, 0.7, 0.5, 0.0),
                     batch: int = 64) -> np.ndarray:
    """uint8 [len(seeds)*H, len(psis)*W, 3]: rows = seeds, columns = psi values."""
    require_w_space(sampler, "the truncation figure")
    seeds = _check_seeds("seeds", seeds)
    psis = [check_psi(p, "psis") for p in psis]
    if not psis:
        raise ValueError("psis: give at least one truncation value")
    if batch < 1:
        raise ValueError(f"batch must be positive, got {batch}")
    ws = torch.stack([seed_ws(sampler, seeds, psi, zero_condition=True) for psi in psis], dim=1)  # [S, P, num_ws, w_dim]
    pics = render(sampler, ws.flatten(0, 1), "const", batch)
    H, W = pics.shape[1:3]
    return _tile(pics.reshape(len(seeds), len(psis), H, W, 3))


def truncation_figure(sampler, out_png: str | os.PathLike, seeds: Sequence[int],
                      psis: Sequence[float] = (1.0, 0.7, 0.5, 0.0), batch: int = 64,
                      face_px: int | None = None) -> Path:
    """Write the truncation figure, labelled (StyleGAN2 only; ValueError otherwise); returns the path."""
    path = _figure_path(out_png)
    face_size(face_px, 1)
    image = truncation_image(sampler, seeds, psis, batch)
    S, P = len(seeds), len(psis)
    H = image.shape[0] // S
    cells = image.reshape(S, H, P, H, 3).transpose(0, 2, 1, 3, 4)
    title = "truncation: rows = seeds, columns = psi (1 = untruncated, 0 = the average face w_avg)"
    grid = labelled_grid(cells, title=title, col_labels=[f"psi {float(p):g}" for p in psis],
                         row_labels=[f"seed {int(s)}" for s in seeds], face_px=face_px)
    return _save(grid.image, path)


def _figure_path(path: str | os.PathLike) -> Path:
    """Check the extension, and that nothing is there (OutputExists), before any work."""
    path = Path(path)
    if path.suffix.lower() not in (".png", ".jpg", ".jpeg", ".webp"):
        raise ValueError(f"figure format must be .png, .jpg or .webp, got {path.name!r}")
    claim_paths([path])
    return path


def _save(image: np.ndarray, path: Path) -> Path:
    with new_output(path) as tmp:
        save_image(image, tmp)
    return path


__all__ = ["style_mixing_figure", "style_mixing_image", "truncation_figure", "truncation_image"]
