"""Decode one image file to a square RGB uint8 array.

Every Pillow mode is mapped to RGB (16-bit and float images are rescaled, alpha is composited on
:data:`BACKGROUND`), EXIF orientation is applied, then the image is centre-cropped to a square and
resized with LANCZOS to ``size``. Images over the pixel limit of :mod:`.limits` are refused before decoding.
"""
from __future__ import annotations

import io
import os
import struct
import warnings
import zlib
from typing import BinaryIO, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import UnreadableImage
from .limits import InputLimits, InputTooLarge

__all__ = ["BACKGROUND", "InputTooLarge", "UnreadableImage", "center_crop_resize", "decode_image", "load_image",
           "to_rgb"]

BACKGROUND = (255, 255, 255)
"""RGB colour that transparent pixels are composited onto (part of the dataset cache key)."""

REDUCING_GAP = 3.0
"""Pillow ``reducing_gap``: big downscales first shrink with a fast box reduce, then LANCZOS."""

ImageInput = Union[bytes, bytearray, memoryview, str, os.PathLike, BinaryIO]

_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")

# What Pillow (and its codecs) raise for files that are not images, truncated or corrupt.
_DECODE_ERRORS = (
    UnidentifiedImageError,
    Image.DecompressionBombError,
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    KeyError,
    TypeError,
    ZeroDivisionError,
    NotImplementedError,
    struct.error,
    zlib.error,
)


def load_image(fp: ImageInput, size: int, max_pixels: int | None = None) -> np.ndarray:
    """Decode ``fp`` (raw bytes, a path or a binary file object) to RGB uint8 ``[size,size,3]``.

    Raises :class:`UnreadableImage` for anything that cannot be fully decoded, and
    :class:`~.limits.InputTooLarge` (before decoding) for an image of more than ``max_pixels`` pixels
    (default: :data:`~.limits.MAX_PIXELS` or ``$STYLEGAN_ANIME_MAX_PIXELS``).
    """
    return decode_image(fp, size, max_pixels)[0]


def decode_image(fp: ImageInput, size: int, max_pixels: int | None = None) -> tuple[np.ndarray, bool]:
    """:func:`load_image`, and whether the source was smaller than ``size`` (short side): it was upscaled."""
    if isinstance(fp, (bytes, bytearray, memoryview)):
        fp = io.BytesIO(fp)
    limits = InputLimits.from_env() if max_pixels is None else InputLimits(max_pixels=max_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit decides
            img_ctx = Image.open(fp)
        with img_ctx as img:
            width, height = img.size  # from the header: nothing decoded yet
            limits.check_pixels(width, height)
            # JPEG only: let the decoder downscale by 2/4/8 while keeping the short side large.
            img.draft(None, (int(size * REDUCING_GAP),) * 2)
            img.load()  # full decode now, so truncated data raises here
            img = _apply_orientation(img)
            square = center_crop_resize(to_rgb(img), size)
    except Image.DecompressionBombError as e:  # over Pillow's own cap (only when ours was raised above it)
        raise InputTooLarge(str(e)) from None
    except _DECODE_ERRORS as e:
        raise UnreadableImage(f"{type(e).__name__}: {e}") from e
    out = np.asarray(square, dtype=np.uint8)  # [size,size,3]
    if out.shape != (size, size, 3):  # pragma: no cover - defensive
        raise UnreadableImage(f"decoded to unexpected shape {out.shape}")
    return out, min(width, height) < size


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to an ``RGB`` image of the same size.

    - 16-bit (``I;16*``) and 32-bit ``I`` are read as 0..65535 and divided by 257;
    - ``F`` is read as 0..1 when all values lie in [0, 1], else as 0..255 (clipped);
    - anything with alpha or a transparency key (RGBA, LA, PA, P/L/RGB with ``transparency``)
      is composited onto :data:`BACKGROUND`;
    - everything else (1, L, P, CMYK, YCbCr, ...) uses Pillow's own conversion.
    """
    if img.mode in _SIXTEEN_BIT:
        wide = np.asarray(img).astype(np.float64)  # [H,W]
        return _gray_to_rgb(np.clip(wide, 0, 65535) / 257.0)
    if img.mode == "F":
        flt = np.nan_to_num(np.asarray(img, dtype=np.float64))  # [H,W]
        if flt.size and flt.min() >= 0.0 and flt.max() <= 1.0:
            flt = flt * 255.0
        return _gray_to_rgb(np.clip(flt, 0, 255))
    if img.has_transparency_data:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", img.size, BACKGROUND + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def center_crop_resize(img: Image.Image, size: int) -> Image.Image:
    """Crop the centred square of side ``min(w, h)`` and resize it to ``size x size`` (LANCZOS)."""
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    # Crop first: resize(box=...) would let the filter read pixels outside the box at its edges.
    square = img.crop((left, top, left + side, top + side))
    return square.resize((size, size), Image.Resampling.LANCZOS, reducing_gap=REDUCING_GAP)


def _gray_to_rgb(gray: np.ndarray) -> Image.Image:
    """Float gray in 0..255 ``[H,W]`` -> RGB image."""
    g8 = np.rint(gray).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(np.stack([g8, g8, g8], axis=-1)))  # [H,W,3]


def _apply_orientation(img: Image.Image) -> Image.Image:
    """Rotate/flip per the EXIF Orientation tag; a broken EXIF block is ignored, not fatal."""
    try:
        return ImageOps.exif_transpose(img)
    except _DECODE_ERRORS:
        return img
