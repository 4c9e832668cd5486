"""Latent-space interpolation videos from a checkpoint.

Modes (`render_video(..., mode=...)`):

    z-slerp   spherical interpolation in z between consecutive keyframe seeds; first frame = first seed,
              last frame = last seed (any model)
    w-lerp    StyleGAN2 only: each keyframe seed's z is mapped to w, truncated by psi towards w_avg, and
              consecutive ws are interpolated linearly
    z-loop    a closed periodic Catmull-Rom spline through the keyframe zs: the direction follows the spline,
              the length is the spline of the keyframes' lengths (so every frame stays on the shell where z
              lives); the last frame flows into the first
    w-loop    the same closed spline through the keyframe ws (StyleGAN2 only, after truncation)
    loop      w-loop for StyleGAN2, z-loop for the z-only baselines
    auto      = loop

A loop of K keyframes puts frame i at spline time i*K/N (N frames), so keyframe k is frame k*N/K and the
frame after the last one would be the first. A non-looping path puts frame i at i*(K-1)/(N-1).

A grid of R x C cells shows R*C independent interpolations: cell k (row-major) uses the keyframe seeds
`seed + 1000*k` (cell 0 uses the seeds as given). StyleGAN2 frames use constant noise (noise_mode='const'),
so nothing flickers between frames.

Every face is upscaled to face_px (default 256, or the model's size if larger: figure_labels.face_size) before
encoding: a 64 px face at its native size is a postage stamp. The file is written to a temporary name and
linked into place without overwriting anything (output_files.new_output: OutputExists if the path is taken).

Frames are generated batch by batch and streamed to the encoder: `.mp4` is H.264 (libx264, yuv420p, crf 18)
written through the ffmpeg binary shipped with imageio-ffmpeg; `.gif` is written by Pillow (one adaptive
palette per frame, loops forever). Pillow keeps the palettised GIF frames (1 byte per pixel) until it writes
the file and merges *identical* consecutive frames into one longer frame; GIF delays are multiples of 10 ms,
so frame delays are rounded cumulatively to keep the total duration right.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ..generate import seed_latents
from ..imageio_utils import to_uint8, write_mp4
from ..output_files import claim_paths, new_output
from ..editing import has_w_space, model_name, require_w_space
from ..editing.latents import seed_ws
from ..figure_labels import face_size, scale_frame
from ..number_checks import FPS_RANGE, SECONDS_RANGE, check_number, check_psi

MODES = ("auto", "loop", "z-slerp", "w-lerp", "z-loop", "w-loop")
FORMATS = (".mp4", ".gif")
CELL_SEED_STRIDE = 1000  # cell k of a grid uses seed + 1000*k


# ----------------------------------------------------------------------------------------------------- input
def parse_grid(grid) -> tuple[int, int]:
    """'2x3' / '2X3' / (2, 3) -> (rows, cols); ValueError unless both are positive integers."""
    if isinstance(grid, str):
        m = re.fullmatch(r"\s*(-?\d+)\s*[xX×,]\s*(-?\d+)\s*", grid)
        if not m:
            raise ValueError(f"grid: cannot read {grid!r}; use ROWSxCOLS, e.g. 2x3")
        rows, cols = int(m.group(1)), int(m.group(2))
    else:
        try:
            rows, cols = (int(v) for v in grid)
        except (TypeError, ValueError):
            raise ValueError(f"grid must be (rows, cols), got {grid!r}") from None
    if rows < 1 or cols < 1:
        raise ValueError(f"grid rows and columns must be positive, got {rows}x{cols}")
    return rows, cols


def frame_count(fps: float, seconds: float) -> int:
    """round(fps * seconds); ValueError for non-finite, non-positive or absurd values (see number_checks)."""
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if not seconds > 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    fps = check_number("fps", fps, *FPS_RANGE, lo_open=True)
    seconds = check_number("seconds", seconds, *SECONDS_RANGE, lo_open=True)
    n = round(fps * seconds)
    if n < 1:
        raise ValueError(f"{fps} fps x {seconds} s is less than one frame")
    return n


def resolve_mode(sampler, mode: str) -> str:
    """The concrete mode ('z-slerp', 'w-lerp', 'z-loop', 'w-loop') for this model."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    if mode in ("auto", "loop"):
        return "w-loop" if has_w_space(sampler) else "z-loop"
    if mode.startswith("w-"):
        require_w_space(sampler, f"mode {mode}")
    return mode


def _check_seeds(seeds: Sequence[int]) -> list[int]:
    seeds = [int(s) for s in seeds]
    if len(seeds) < 2:
        raise ValueError(f"need at least 2 seeds to interpolate between, got {len(seeds)}")
    return seeds


def _check_psi(sampler, psi: float) -> float:
    psi = check_psi(psi)
    if psi != 1.0 and not has_w_space(sampler):
        raise ValueError(f"truncation (psi={psi:g}) needs a StyleGAN2 checkpoint; this one is {model_name(sampler)}")
    return psi


# ----------------------------------------------------------------------------------------------------- math
def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation of rows a, b [n, D] at t [n] (t=0 gives a exactly, t=1 gives b); the lengths
    interpolate smoothly too. Nearly parallel rows fall back to linear interpolation."""
    a64, b64, t = a.double(), b.double(), t.double()[:, None]
    cos = (a64 / a64.norm(dim=1, keepdim=True) * (b64 / b64.norm(dim=1, keepdim=True))).sum(1, keepdim=True)
    omega = torch.arccos(cos.clamp(-1, 1))
    so = torch.sin(omega)
    near = so.abs() < 1e-6
    so = torch.where(near, torch.ones_like(so), so)
    wa = torch.where(near, 1 - t, torch.sin((1 - t) * omega) / so)
    wb = torch.where(near, t, torch.sin(t * omega) / so)
    return (wa * a64 + wb * b64).to(a.dtype)


def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Linear interpolation of a, b [n, ...] at t [n]."""
    t = t.to(a.dtype).reshape(-1, *[1] * (a.ndim - 1))
    return a + (b - a) * t


def catmull_rom_loop(keys: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Closed uniform Catmull-Rom spline through keys [K, ...] at times t [n] (period K, key k at t=k):
    C1-continuous everywhere, including where the last key joins the first."""
    K = keys.shape[0]
    k64 = keys.double()
    i = torch.floor(t).long()
    u = (t.double() - i.double()).reshape(-1, *[1] * (keys.ndim - 1))
    p0, p1, p2, p3 = (k64[(i + d) % K] for d in (-1, 0, 1, 2))
    out = 0.5 * (2 * p1 + (p2 - p0) * u + (2 * p0 - 5 * p1 + 4 * p2 - p3) * u ** 2
                 + (3 * p1 - p0 - 3 * p2 + p3) * u ** 3)
    return out.to(keys.dtype)


def _times(n_frames: int, keys: int, loop: bool) -> torch.Tensor:
    if loop:
        return torch.arange(n_frames, dtype=torch.float64) * keys / n_frames
    if n_frames == 1:
        return torch.zeros(1, dtype=torch.float64)
    return torch.linspace(0, keys - 1, n_frames, dtype=torch.float64)


@torch.no_grad()
def latent_path(sampler, seeds: Sequence[int], mode: str = "auto", n_frames: int = 300,
                psi: float = 1.0) -> tuple[str, torch.Tensor]:
    """The latents of every frame of one interpolation: ('z', [n_frames, z_dim]) or
    ('w', [n_frames, num_ws, w_dim]), on the sampler's device."""
    seeds = _check_seeds(seeds)
    mode = resolve_mode(sampler, mode)
    psi = _check_psi(sampler, psi)
    if n_frames < 1:
        raise ValueError(f"n_frames must be positive, got {n_frames}")
    space, kind = mode.split("-")
    K = len(seeds)
    keys = (seed_latents(seeds, sampler.recipe.z_dim).to(sampler.device) if space == "z"
            else seed_ws(sampler, seeds, psi, zero_condition=True))
    t = _times(n_frames, K, loop=kind == "loop").to(sampler.device)
    if kind == "loop":
        path = catmull_rom_loop(keys, t)
        if space == "z":  # back onto the shell: spline direction, spline of the keyframe lengths
            norms = catmull_rom_loop(keys.norm(dim=1, keepdim=True), t)
            path = path / path.norm(dim=1, keepdim=True).clamp_min(1e-8) * norms
        return space, path
    seg = torch.floor(t).long().clamp(max=K - 2)
    u = t - seg.double()
    interp = slerp if kind == "slerp" else lerp
    return space, interp(keys[seg], keys[seg + 1], u)


# ----------------------------------------------------------------------------------------------------- frames
@torch.no_grad()
def _synthesize(sampler, space: str, latents: torch.Tensor, psi: float) -> torch.Tensor:
    G = sampler.G
    if space == "w":
        return G.synthesis(latents, noise_mode="const").float()
    if has_w_space(sampler):
        return sampler.recipe.generate(G, latents, psi=psi, noise_mode="const").float()
    return sampler.recipe.generate(G, latents).float()


def video_frames(sampler, seeds: Sequence[int], mode: str = "auto", n_frames: int = 300, grid=(1, 1),
                 psi: float = 1.0, batch: int = 32) -> Iterator[np.ndarray]:
    """Validate now, then return an iterator of n_frames uint8 frames [rows*H, cols*W, 3], generated
    `batch` images at a time (only one batch of frames is held in memory)."""
    rows, cols = parse_grid(grid)
    seeds = _check_seeds(seeds)
    if batch < 1:
        raise ValueError(f"batch must be positive, got {batch}")
    cells = rows * cols
    paths = [latent_path(sampler, [s + CELL_SEED_STRIDE * k for s in seeds], mode, n_frames, psi)
             for k in range(cells)]
    space = paths[0][0]
    lat = torch.stack([p for _, p in paths], dim=1)  # [n_frames, cells, ...]
    per_chunk = max(1, batch // cells)

    def gen() -> Iterator[np.ndarray]:
        for f0 in range(0, n_frames, per_chunk):
            chunk = lat[f0:f0 + per_chunk]
            f = chunk.shape[0]
            imgs = to_uint8(_synthesize(sampler, space, chunk.flatten(0, 1), psi).cpu())  # [f*cells, H, W, 3]
            h, w = imgs.shape[1:3]
            tiles = imgs.reshape(f, rows, cols, h, w, 3).transpose(0, 1, 3, 2, 4, 5)
            yield from np.ascontiguousarray(tiles.reshape(f, rows * h, cols * w, 3))

    return gen()


# ----------------------------------------------------------------------------------------------------- writing
def render_video(sampler, out_path: str | os.PathLike, seeds: Sequence[int], mode: str = "auto", fps: float = 30,
                 seconds: float = 10.0, grid=(1, 1), psi: float = 1.0, batch: int = 32,
                 progress: bool = True, face_px: int | None = None) -> Path:
    """Write an interpolation video of round(fps*seconds) frames [rows*face_px, cols*face_px] to out_path (.mp4 or
    .gif); returns the path. OutputExists (before any work) if out_path exists. See the module docstring."""
    out = Path(out_path)
    ext = out.suffix.lower()
    if ext not in FORMATS:
        raise ValueError(f"video format must be .mp4 or .gif, got {out.name!r}")
    n = frame_count(fps, seconds)
    px = face_size(face_px, _native(sampler))
    rows, cols = parse_grid(grid)
    claim_paths([out])
    frames = video_frames(sampler, seeds, mode, n, grid, psi, batch)  # validates everything else
    scaled = (scale_frame(f, (rows * px, cols * px)) for f in frames)
    bar = tqdm(scaled, total=n, disable=not progress, desc=f"rendering {out.name}", unit="frame")
    try:
        with new_output(out) as tmp:
            if ext == ".mp4":
                write_mp4(bar, tmp, fps)
            else:
                _write_gif(bar, tmp, fps, n)
    finally:
        bar.close()
    return out


def _native(sampler) -> int:
    """The generator's image size (one probe image for a model that does not say)."""
    res = getattr(sampler.G, "img_resolution", None) or getattr(getattr(sampler, "config", None), "size", None)
    if res is None:
        res = int(sampler.images([0]).shape[-1])
    return int(res)


def gif_durations(fps: float, n: int) -> list[int]:
    """Per-frame delays in ms, multiples of 10 (GIF's unit), rounded cumulatively so the total stays n/fps."""
    ends = [round(i * 100 / fps) * 10 for i in range(n + 1)]
    return [max(10, b - a) for a, b in zip(ends, ends[1:])]


def _write_gif(frames: Iterator[np.ndarray], path: Path, fps: float, n: int) -> None:
    from PIL import Image  # noqa: PLC0415

    it = iter(frames)
    first = Image.fromarray(next(it))
    first.save(path, format="GIF", save_all=True, append_images=(Image.fromarray(f) for f in it),
               duration=gif_durations(fps, n), loop=0, optimize=False)


__all__ = ["MODES", "catmull_rom_loop", "frame_count", "gif_durations", "latent_path", "lerp",
           "parse_grid", "render_video", "resolve_mode", "slerp", "video_frames"]
