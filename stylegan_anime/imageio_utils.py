"""Turning generator output into pictures: uint8 conversion, grids, and writing PNG/JPEG and H.264 .mp4 files."""
from __future__ import annotations

import math
import os
from typing import Iterable

import numpy as np
import torch
from PIL import Image


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """[N,3,H,W] floats in [-1,1] -> uint8 [N,H,W,3]."""
    x = (images.detach().float().clamp(-1, 1) + 1) * 127.5
    return x.round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def make_grid(images: torch.Tensor, cols: int | None = None) -> np.ndarray:
    """[N,3,H,W] in [-1,1] -> one uint8 picture [rows*H, cols*W, 3], row-major."""
    pics = to_uint8(images)
    n, h, w, c = pics.shape
    cols = cols or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    grid = np.zeros((rows * h, cols * w, c), dtype=np.uint8)
    for i, pic in enumerate(pics):
        r, q = divmod(i, cols)
        grid[r * h:(r + 1) * h, q * w:(q + 1) * w] = pic
    return grid


def save_image(array: np.ndarray, path: str | os.PathLike, quality: int = 95) -> None:
    """Save uint8 [H,W,3]; the format follows the extension (.png, .jpg ...)."""
    Image.fromarray(array).save(path, quality=quality)


def write_mp4(frames: Iterable[np.ndarray], path: str | os.PathLike, fps: float) -> None:
    """H.264 .mp4 (yuv420p, crf 18) from uint8 frames [H, W, 3] (odd sizes padded by one edge row/column)."""
    import imageio_ffmpeg  # noqa: PLC0415

    writer = None
    try:
        for frame in frames:
            h, w = frame.shape[:2]
            if h % 2 or w % 2:  # yuv420p needs even sizes: repeat the last row / column
                frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
            if writer is None:
                writer = imageio_ffmpeg.write_frames(
                    str(path), (frame.shape[1], frame.shape[0]), fps=fps, codec="libx264", pix_fmt_out="yuv420p",
                    quality=None, macro_block_size=2, ffmpeg_log_level="error",
                    output_params=["-crf", "18", "-preset", "medium", "-movflags", "+faststart"])
                writer.send(None)
            writer.send(np.ascontiguousarray(frame))
    finally:
        if writer is not None:
            writer.close()
