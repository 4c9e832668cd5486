"""Synthetic "illustrations" with faces at known places, to measure `prepare-data --crop-faces`: face images
pasted without overlap onto larger canvases cluttered with noise, rectangles, ellipses and lines.

    image, boxes = illustration(rng, [face0, face1], 800, 600)   # boxes: the pasted squares (x0, y0, x1, y1)

Used by tests/test_faces.py (procedural demo faces) and tools/bench_crop_faces.py (real face crops).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from PIL import Image, ImageDraw

from .faces import box_iou


def clutter(rng: np.random.Generator, width: int, height: int, shapes: int = 40) -> Image.Image:
    """A busy background: noise, coloured rectangles and ellipses, thick lines."""
    noise = rng.integers(120, 255, size=(height, width, 3), dtype=np.uint8)
    img = Image.fromarray(noise)
    draw = ImageDraw.Draw(img)
    for _ in range(shapes):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        w, h = int(rng.integers(10, 160)), int(rng.integers(10, 160))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        shape = rng.integers(3)
        if shape == 0:
            draw.rectangle([x, y, x + w, y + h], fill=colour)
        elif shape == 1:
            draw.ellipse([x, y, x + w, y + h], fill=colour)
        else:
            draw.line([x, y, x + w, y + h], fill=colour, width=int(rng.integers(2, 12)))
    return img


def _overlap(a, b) -> bool:
    """True when the boxes share some area (touching edges is fine)."""
    return not (a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1])


def illustration(rng: np.random.Generator, faces: int, face: Callable[[int, int], np.ndarray],
                 width: int = 640, height: int = 480, sides: tuple[int, int] = (100, 200)):
    """A cluttered canvas with `faces` faces pasted without overlap; face(i, side) -> uint8 [side, side, 3].
    Returns (PIL image, [pasted squares (x0, y0, x1, y1)])."""
    img = clutter(rng, width, height)
    boxes: list[tuple[int, int, int, int]] = []
    tries = 0
    while len(boxes) < faces:
        tries += 1
        if tries > 1000 * faces:
            raise ValueError(f"cannot place {faces} faces of {sides[0]}-{sides[1]} px on {width}x{height} without overlap")
        side = int(rng.integers(*sides))
        x, y = int(rng.integers(0, width - side)), int(rng.integers(0, height - side))
        box = (x, y, x + side, y + side)
        if any(_overlap(box, b) for b in boxes):
            continue
        img.paste(Image.fromarray(face(len(boxes), side)), (x, y))
        boxes.append(box)
    return img, boxes


def match_boxes(truth: list, found: list) -> list[float]:
    """For each true box, the best IoU of any found box (0 when none overlaps)."""
    return [max((box_iou(t, f) for f in found), default=0.0) for t in truth]


__all__ = ["clutter", "illustration", "match_boxes"]
