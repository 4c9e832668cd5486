"""Turning generator output into pictures: uint8 conversion, grids, and writing PNG/JPEG files."""
from __future__ import annotations

import math
import os

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
