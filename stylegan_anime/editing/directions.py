"""Closed-form latent directions (SeFa: Shen & Zhou, "Closed-Form Factorization of Latent Semantics in GANs",
CVPR 2021) and edits along them. StyleGAN2 checkpoints only.

Every style layer maps w to styles with an affine A_l [C_l, w_dim]. A unit step d in W changes the styles
by A d, so the directions that move the styles most are the top eigenvectors of AᵀA, A the chosen layers'
affines stacked with each row (one style channel's weights) scaled to unit norm (as the SeFa authors do, so
that wide layers do not dominate). No training, no data: a few milliseconds.

    find_directions(G, layers, k)     -> Directions (unit vectors [k, w_dim], eigenvalues, sigma, layers)
    Directions.save / load_directions the .npz file `directions` writes and `edit` / `explore` read
    edit_ws(ws, dirs, index, amount)  ws moved by amount * sigma along direction `index`, on its layers only
    direction_figure / direction_video  rows = seeds, columns = steps (a labelled picture), or a sweep (mp4)
    tag_report                        which directions move a tag classifier's hair / eye predictions

Amounts are in units of sigma: the standard deviation of the model's own w along that direction (over
2,000 mapped random z), so that amount 2 is "two standard deviations" whatever the direction.
The ToRGB affines are left out by default, as in the SeFa paper's StyleGAN experiments.
"""
from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..generate import seed_latents
from ..imageio_utils import save_image, write_mp4
from ..output_files import new_output
from . import require_w_space
from ..figure_labels import LabelledGrid, face_size, labelled_grid, scale_frame, signed
from .latents import open_npz, parse_layer_spec, render, seed_ws
from ..number_checks import AMOUNT_LIMIT

DIRECTIONS_FORMAT = "stylegan-anime-directions"
SIGMA_SAMPLES = 2000
MAX_COLUMNS = 64  # --steps values in one figure


@dataclass
class Directions:
    vectors: torch.Tensor      # [k, w_dim] unit rows, strongest first
    eigenvalues: torch.Tensor  # [k] of the normalised AᵀA, descending
    sigma: torch.Tensor        # [k] std of the model's w along each vector
    layers: list[int]          # ws indices the directions were found on (and edits apply to)

    def __len__(self) -> int:
        return int(self.vectors.shape[0])

    def check_index(self, index: int) -> int:
        if not 0 <= int(index) < len(self):
            raise ValueError(f"direction {index} is out of range: this file has {len(self)} directions "
                             f"(0-{len(self) - 1})")
        return int(index)

    def save(self, path: str | os.PathLike, **meta) -> Path:
        """Write the .npz whole, never over an existing file (OutputExists)."""
        path = Path(path)
        with new_output(path) as tmp:
            np.savez(tmp, format=DIRECTIONS_FORMAT, directions=self.vectors.cpu().numpy().astype(np.float32),
                     eigenvalues=self.eigenvalues.cpu().numpy().astype(np.float32),
                     sigma=self.sigma.cpu().numpy().astype(np.float32), layers=np.asarray(self.layers, np.int64),
                     **{k: np.asarray(v) for k, v in meta.items()})
        return path


def style_affines(G, include_torgb: bool = False) -> list[tuple[int, str, torch.Tensor]]:
    """(ws index, layer name, effective affine weight [C, w_dim]) for every style layer."""
    syn = G.synthesis
    out, w_idx = [], 0
    for res in syn.block_resolutions:
        block = getattr(syn, f"b{res}")
        convs = [n for n in ("conv0", "conv1") if hasattr(block, n)]
        for j, name in enumerate(convs):
            fc = getattr(block, name).affine
            out.append((w_idx + j, f"b{res}.{name}", fc.weight.detach().float() * fc.weight_gain))
        if include_torgb and hasattr(block, "torgb"):
            fc = block.torgb.affine
            out.append((w_idx + len(convs), f"b{res}.torgb", fc.weight.detach().float() * fc.weight_gain))
        w_idx += block.num_conv
    return out


@torch.no_grad()
def find_directions(G, layers: Sequence[int] | str | None = None, k: int = 10, include_torgb: bool = False,
                    sigma_seed: int = 0) -> Directions:
    """The top-k SeFa directions of the style layers whose ws index is in `layers` (default: all)."""
    layer_ids = parse_layer_spec(layers, G) if not isinstance(layers, list) else sorted(set(layers))
    if not layer_ids or not all(0 <= i < G.num_ws for i in layer_ids):
        raise ValueError(f"layers must be ws indices 0-{G.num_ws - 1}, got {layer_ids}")
    rows = [w for i, _, w in style_affines(G, include_torgb) if i in layer_ids]
    if not rows:
        raise ValueError(f"no style layer reads ws {layer_ids}; choose other --layers")
    A = torch.cat(rows).double()                          # [sum C, w_dim]
    A = A / A.norm(dim=1, keepdim=True).clamp_min(1e-12)  # each style channel's row at unit norm
    evals, evecs = torch.linalg.eigh(A.T @ A)             # ascending, columns are eigenvectors
    if not 1 <= k <= evals.numel():
        raise ValueError(f"--num must be between 1 and {evals.numel()} (w_dim), got {k}")
    order = torch.argsort(evals, descending=True)[:k]
    vectors = evecs[:, order].T.contiguous()              # [k, w_dim]
    # An eigenvector's sign is arbitrary: fix it (largest component positive) so files are reproducible.
    pivot = vectors.abs().argmax(1)
    vectors = vectors * vectors.gather(1, pivot[:, None]).sign()
    vectors = vectors.float()
    sigma = _sigma(G, vectors, sigma_seed)
    return Directions(vectors, evals[order].float(), sigma, layer_ids)


def _sigma(G, vectors: torch.Tensor, seed: int) -> torch.Tensor:
    """Std of the model's w (random z, unconditional c = 0 rows) along each unit vector."""
    device = G.mapping.w_avg.device
    z = seed_latents(list(range(seed, seed + SIGMA_SAMPLES)), G.z_dim).to(device)
    c = torch.zeros([z.shape[0], G.c_dim], device=device)
    w = torch.cat([G.mapping(chunk, cc)[:, 0].float() for chunk, cc in zip(z.split(500), c.split(500))])
    return (w.cpu() @ vectors.T.cpu()).std(0).clamp_min(1e-8)


def load_directions(path: str | os.PathLike, G=None) -> Directions:
    """Read a file written by Directions.save; with G, check it fits that generator. One-line ValueErrors."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"directions file does not exist: {path}; make one with `stylegan-anime directions`")
    not_ours = f"{path} is not a directions file of stylegan-anime; make one with `stylegan-anime directions`"
    f = open_npz(path, not_ours)
    try:
        with f:
            if "format" not in f.files or str(f["format"]) != DIRECTIONS_FORMAT:
                raise ValueError(not_ours)
            vectors, evals = torch.from_numpy(f["directions"]), torch.from_numpy(f["eigenvalues"])
            sigma, layers = torch.from_numpy(f["sigma"]), [int(i) for i in f["layers"]]
    except (OSError, EOFError, KeyError, zipfile.BadZipFile) as e:
        raise ValueError(f"cannot read directions file {path}: {e}") from None
    if G is not None and (vectors.shape[-1] != G.w_dim or (layers and max(layers) >= G.num_ws)):
        raise ValueError(f"{path} was made for another generator (w_dim {vectors.shape[-1]}, layers up to "
                         f"{max(layers) if layers else '-'}); this one has w_dim {G.w_dim} and {G.num_ws} layers")
    return Directions(vectors.float(), evals.float(), sigma.float(), layers)


def edit_ws(ws: torch.Tensor, dirs: Directions, index: int, amount: float | torch.Tensor) -> torch.Tensor:
    """ws [N, L, C] moved by amount [N] (or a float) * sigma along direction `index`, on dirs.layers only."""
    index = dirs.check_index(index)
    step = (dirs.vectors[index] * dirs.sigma[index]).to(ws.device)         # [C]
    amount = torch.as_tensor(amount, dtype=ws.dtype, device=ws.device).reshape(-1, 1)  # [N or 1, 1]
    out = ws.clone()
    out[:, dirs.layers] = out[:, dirs.layers] + (amount * step)[:, None, :]
    return out


def parse_steps(text: str) -> list[float]:
    """'-3:3:7' (start:stop:count) or '-2,0,2' -> amounts (each |amount| <= AMOUNT_LIMIT sigma, at most 64)."""
    text = str(text).strip()
    try:
        if ":" in text:
            lo, hi, n = text.split(":")
            n = int(n)
            if n < 1:
                raise ValueError
            steps = np.linspace(float(lo), float(hi), n).tolist() if n > 1 else [float(lo)]
        else:
            steps = [float(t) for t in text.split(",") if t.strip()]
        if not steps or not all(np.isfinite(steps)):
            raise ValueError
    except ValueError:
        raise ValueError(f"--steps: cannot read {text!r}; use start:stop:count like -3:3:7 or a list like -2,0,2") from None
    if max(abs(a) for a in steps) > AMOUNT_LIMIT:
        raise ValueError(f"--steps: amounts are in sigma (standard deviations of w); keep them within "
                         f"+-{AMOUNT_LIMIT:g}, got {max(steps, key=abs):g}")
    if len(steps) > MAX_COLUMNS:
        raise ValueError(f"--steps: at most {MAX_COLUMNS} columns, got {len(steps)}")
    return steps


@torch.no_grad()
def direction_image(sampler, dirs: Directions, index: int, seeds: Sequence[int], steps: Sequence[float],
                    psi: float = 1.0, noise: str = "const", base_ws: torch.Tensor | None = None) -> np.ndarray:
    """uint8 [rows*H, len(steps)*W, 3]: rows = seeds (or base_ws [R, L, C] rows), columns = steps."""
    require_w_space(sampler, "directions")
    ws = base_ws.to(sampler.device) if base_ws is not None else seed_ws(sampler, seeds, psi)
    R, S = ws.shape[0], len(steps)
    grid = torch.cat([edit_ws(ws, dirs, index, a) for a in steps])  # [S*R, L, C], step-major
    cells = render(sampler, grid, noise)                              # [S*R, H, W, 3]
    H, W = cells.shape[1:3]
    return np.ascontiguousarray(cells.reshape(S, R, H, W, 3).transpose(1, 2, 0, 3, 4).reshape(R * H, S * W, 3))


def layer_text(layers: Sequence[int]) -> str:
    """[0, 1, 2, 3, 7] -> '0-3,7'."""
    parts, run = [], []
    for i in sorted(layers):
        if run and i == run[-1] + 1:
            run.append(i)
            continue
        if run:
            parts.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [i]
    if run:
        parts.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(parts)


def direction_grid(sampler, dirs: Directions, index: int, seeds: Sequence[int], steps: Sequence[float],
                   psi: float = 1.0, noise: str = "const", base_ws: torch.Tensor | None = None,
                   face_px: int | None = None, row_names: Sequence[str] | None = None) -> LabelledGrid:
    """direction_image with words: a title naming the direction, its layers and psi, 'seed N' (or row_names) per
    row, the amount in sigma per column; faces at face_px (default: face_size's)."""
    image = direction_image(sampler, dirs, index, seeds, steps, psi, noise, base_ws)
    S = len(steps)
    H = image.shape[1] // S
    R = image.shape[0] // H
    cells = image.reshape(R, H, S, H, 3).transpose(0, 2, 1, 3, 4)            # [R, S, H, W, 3]
    if row_names is not None:
        rows, start = list(row_names), "rows = latents"
    elif base_ws is None:
        rows, start = [f"seed {s}" for s in seeds], f"rows = seeds (psi {psi:g})"
    else:
        rows, start = [f"latent {i}" for i in range(R)], "rows = latents"
    title = (f"direction {index} (eigenvalue {float(dirs.eigenvalues[index]):.2f}, style layers "
             f"{layer_text(dirs.layers)}): {start}; columns = amount along it, in sigma (std of w)")
    return labelled_grid(cells, title=title, col_labels=[f"{signed(a)} sigma" for a in steps], row_labels=rows,
                         face_px=face_px)


def direction_figure(sampler, dirs: Directions, index: int, path, seeds: Sequence[int], steps: Sequence[float],
                     psi: float = 1.0, noise: str = "const", base_ws: torch.Tensor | None = None,
                     face_px: int | None = None, row_names: Sequence[str] | None = None) -> Path:
    """Write direction_grid's picture to path (never over an existing file: OutputExists)."""
    grid = direction_grid(sampler, dirs, index, seeds, steps, psi, noise, base_ws, face_px, row_names)
    with new_output(path) as tmp:
        save_image(grid.image, tmp)
    return Path(path)


def direction_video(sampler, dirs: Directions, index: int, path, seeds: Sequence[int], amount: float = 3.0,
                    fps: float = 30, seconds: float = 4.0, psi: float = 1.0, noise: str = "const",
                    base_ws: torch.Tensor | None = None, face_px: int | None = None) -> Path:
    """An mp4: the seeds side by side, swept 0 -> +amount -> -amount -> 0 along one direction, each face
    upscaled to face_px (default: face_size's). Never written over an existing file (OutputExists)."""

    n = max(int(round(fps * seconds)), 2)
    t = np.linspace(0, 1, n, endpoint=False)
    amounts = amount * np.sin(2 * np.pi * t)
    ws = base_ws.to(sampler.device) if base_ws is not None else seed_ws(sampler, seeds, psi)
    px = face_size(face_px, sampler.G.img_resolution)

    def frames():
        for a in amounts:
            cells = render(sampler, edit_ws(ws, dirs, index, float(a)), noise)  # [R, H, W, 3]
            yield scale_frame(np.concatenate(list(cells), axis=1), (px, px * len(cells)))

    with new_output(path) as tmp:
        write_mp4(frames(), tmp, fps)
    return Path(path)


@torch.no_grad()
def tag_report(sampler, dirs: Directions, classifier, group_names: dict[str, list[str]], n: int = 64,
               amount: float = 3.0, seed: int = 0, noise: str = "const") -> list[dict]:
    """Per direction: how a tag classifier's predictions move between -amount and +amount.

    For each label group (hair, eye): the class whose mean predicted probability rises most going to
    +amount (`plus`), the one that rises most going to -amount (`minus`), the size of that shift
    (mean |Δp| summed over classes / 2, the total-variation distance: 0 = no effect, 1 = every image
    changes class), and the share of images whose predicted class changes."""
    from ..metrics.tagacc import _prepare

    device = next(classifier.parameters()).device
    seeds = list(range(seed, seed + n))
    ws = seed_ws(sampler, seeds)
    rows = []
    for index in range(len(dirs)):
        probs = {}
        for sign in (-1, 1):
            images = render(sampler, edit_ws(ws, dirs, index, sign * amount), noise)
            probs[sign] = [torch.softmax(o, 1).cpu() for o in classifier(_prepare(images, device))]
        row = {"direction": index}
        for g, (group, names) in enumerate(group_names.items()):
            delta = probs[1][g].mean(0) - probs[-1][g].mean(0)  # [classes]
            flips = (probs[1][g].argmax(1) != probs[-1][g].argmax(1)).float().mean()
            row[group] = {"plus": names[int(delta.argmax())], "minus": names[int(delta.argmin())],
                          "shift": float(delta.abs().sum() / 2), "changed": float(flips)}
        rows.append(row)
    return rows


__all__ = ["DIRECTIONS_FORMAT", "Directions", "MAX_COLUMNS", "direction_figure", "direction_grid", "direction_image",
           "direction_video", "edit_ws", "find_directions", "layer_text", "load_directions", "parse_steps",
           "style_affines", "tag_report"]
