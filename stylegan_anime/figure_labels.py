"""Figures that explain themselves: faces upscaled to a viewable size, with a title, column and row labels.

    face_size(face_px, native)            the tile size to draw: face_px, or max(256, native) when None
    upscale(tiles, px)                    uint8 [N, h, w, 3] -> [N, px, px, 3] (Lanczos; a no-op at px == h)
    scale_frame(frame, (H, W))            one uint8 video frame [h, w, 3] -> [H, W, 3]
    labelled_grid(cells, ...)             uint8 [R, C, h, w, 3] -> LabelledGrid (the picture and where its cells are)

The picture of `labelled_grid` is, from the top: a title band, a band of column labels, then the R x C
tiles at face_px each; a band of row labels runs down the left of the tiles (absent without row labels).
Text is Pillow's built-in font (ImageFont.load_default, no download), black on white, ASCII only (the
built-in font has no Greek letters: write "sigma", "psi").
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

DEFAULT_FACE_PX = 256
FACE_PX_RANGE = (16, 2048)
BACKGROUND = 255
INK = (0, 0, 0)


def face_size(face_px: int | None, native: int) -> int:
    """The size to draw each face at: face_px, or (None) max(DEFAULT_FACE_PX, native). ValueError if absurd."""
    if face_px is None:
        return max(DEFAULT_FACE_PX, int(native))
    lo, hi = FACE_PX_RANGE
    if not lo <= int(face_px) <= hi:
        raise ValueError(f"--face-px must be between {lo} and {hi} pixels, got {face_px}")
    return int(face_px)


def upscale(tiles: np.ndarray, px: int) -> np.ndarray:
    """uint8 [N, h, w, 3] -> [N, px, px, 3], Lanczos-resampled (returned unchanged when already px x px)."""
    if tiles.shape[1] == px and tiles.shape[2] == px:
        return tiles
    return np.stack([np.asarray(Image.fromarray(t).resize((px, px), Image.LANCZOS)) for t in tiles])


def scale_frame(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """One frame uint8 [h, w, 3] -> [H, W, 3] for size = (H, W) (Lanczos; unchanged at the same size)."""
    H, W = size
    if frame.shape[:2] == (H, W):
        return frame
    return np.asarray(Image.fromarray(frame).resize((W, H), Image.LANCZOS))


def font(px: int) -> ImageFont.ImageFont:
    """Pillow's default font at px pixels (a FreeType font in Pillow >= 10.1; the old bitmap font otherwise)."""
    try:
        return ImageFont.load_default(size=px)
    except TypeError:  # Pillow < 10.1: no size argument
        return ImageFont.load_default()


def text_px(face_px: int) -> int:
    """Label height for tiles of face_px: 16 px at 256 px faces, never below 12 px nor above 28 px."""
    return max(12, min(28, face_px // 16))


@dataclass
class LabelledGrid:
    image: np.ndarray   # uint8 [top + R*face_px, left + C*face_px, 3]
    top: int            # rows of the title and column-label bands
    left: int           # columns of the row-label band (0 without row labels)
    face_px: int
    rows: int
    cols: int

    def cell(self, r: int, c: int) -> np.ndarray:
        """The tile at row r, column c: uint8 [face_px, face_px, 3]."""
        y, x = self.top + r * self.face_px, self.left + c * self.face_px
        return self.image[y:y + self.face_px, x:x + self.face_px]


def _width(f, text: str) -> int:
    box = f.getbbox(text)
    return int(box[2] - box[0])


def _fit_lines(f, text: str, width: int) -> list[str]:
    """Word-wrap text to lines no wider than width (a single long word stays on its own line)."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split(" "):
            cand = f"{line} {word}" if line else word
            if line and _width(f, cand) > width:
                lines.append(line)
                line = word
            else:
                line = cand
        lines.append(line)
    return lines


def labelled_grid(cells: np.ndarray, *, title: str = "", col_labels: Sequence[str] | None = None,
                  row_labels: Sequence[str] | None = None, face_px: int | None = None) -> LabelledGrid:
    """cells uint8 [R, C, h, w, 3] -> the tiles upscaled to face_px (None: face_size's default) with a title
    band on top, col_labels (C) centred over the columns and row_labels (R) left of the rows."""
    R, C, h, w, _ = cells.shape
    px = face_size(face_px, max(h, w))
    tiles = upscale(cells.reshape(R * C, h, w, 3), px).reshape(R, C, px, px, 3)
    size = text_px(px)
    f, pad = font(size), max(2, size // 3)
    line = size + pad
    if col_labels is not None and len(col_labels) != C:
        raise ValueError(f"{len(col_labels)} column labels for {C} columns")
    if row_labels is not None and len(row_labels) != R:
        raise ValueError(f"{len(row_labels)} row labels for {R} rows")
    left = (max(_width(f, t) for t in row_labels) + 2 * pad) if row_labels else 0
    width = left + C * px
    title_lines = _fit_lines(f, title, width - 2 * pad) if title else []
    col_lines = [_fit_lines(f, t, px - 2 * pad) for t in col_labels] if col_labels else []
    title_h = len(title_lines) * line + pad if title_lines else 0
    col_h = max(len(c) for c in col_lines) * line + pad if col_lines else 0
    top = title_h + col_h

    canvas = Image.new("RGB", (width, top + R * px), (BACKGROUND,) * 3)
    body = np.ascontiguousarray(tiles.transpose(0, 2, 1, 3, 4).reshape(R * px, C * px, 3))
    canvas.paste(Image.fromarray(body), (left, top))
    draw = ImageDraw.Draw(canvas)
    for i, text in enumerate(title_lines):
        draw.text((pad, pad + i * line), text, fill=INK, font=f)
    for c, lines in enumerate(col_lines):
        for i, text in enumerate(lines):
            x = left + c * px + (px - _width(f, text)) // 2
            draw.text((x, title_h + i * line), text, fill=INK, font=f)
    for r, text in enumerate(row_labels or []):
        draw.text((pad, top + r * px + (px - size) // 2), text, fill=INK, font=f)
    return LabelledGrid(np.asarray(canvas), top, left, px, R, C)


def signed(value: float) -> str:
    """-3 -> '-3', 1.5 -> '+1.5', 0 -> '0' (column labels of amounts)."""
    text = f"{value:g}"
    return text if value <= 0 else "+" + text


__all__ = ["DEFAULT_FACE_PX", "FACE_PX_RANGE", "LabelledGrid", "face_size", "font", "labelled_grid", "scale_frame",
           "signed", "text_px", "upscale"]
