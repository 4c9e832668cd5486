"""Caps on what one input file may cost: a hostile or accidental "bomb" is skipped and counted, never decoded.

A 1 MB zip can hold a member that inflates to 1 GB, and a 0.5 MB PNG can declare 169 megapixels (a solid colour
compresses to almost nothing): decoding either costs gigabytes of RAM, times the number of worker processes.
Both sizes are known before any work is done, so such files are refused up front:

    max_pixels      64 Mpx (e.g. 8192 x 8192, 67,108,864 pixels): width x height from the image header, checked
                    before a single pixel is decoded. Real art for 1024 px training is far below it; one image at
                    the cap costs about 0.5-0.7 GB while it is decoded (8-bit RGB/RGBA; a 16-bit grey one up to
                    about 1.5 GB), per worker process.
    max_file_bytes  256 MiB: the size of a file in a folder, the declared inflated size of a zip member, and the
                    bytes actually read (at most max_file_bytes + 1 are ever read: a lying header cannot get past it).

Both can be changed with the environment variables STYLEGAN_ANIME_MAX_PIXELS and STYLEGAN_ANIME_MAX_FILE_BYTES
(positive integers); worker processes receive the values of the parent with the job.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from .errors import DataError, UnreadableImage

MAX_PIXELS = 64 * 2**20
MAX_FILE_BYTES = 256 * 2**20
PIXELS_ENV = "STYLEGAN_ANIME_MAX_PIXELS"
FILE_BYTES_ENV = "STYLEGAN_ANIME_MAX_FILE_BYTES"


class InputTooLarge(UnreadableImage):
    """One input file is over a limit of :class:`InputLimits`: it is skipped (and counted as too large, where
    the caller tells it from the other unreadable files: catch it first)."""


@dataclass(frozen=True)
class InputLimits:
    max_pixels: int = MAX_PIXELS          # decoded pixels (width x height) per image
    max_file_bytes: int = MAX_FILE_BYTES  # bytes per file / inflated zip member

    @classmethod
    def from_env(cls) -> "InputLimits":
        """The defaults, overridden by $STYLEGAN_ANIME_MAX_PIXELS / $STYLEGAN_ANIME_MAX_FILE_BYTES."""
        return cls(_env_int(PIXELS_ENV, MAX_PIXELS), _env_int(FILE_BYTES_ENV, MAX_FILE_BYTES))

    def describe(self) -> str:
        """'over 64 Mpx decoded or 256 MiB per file' (for warnings and summaries)."""
        return f"over {_amount(self.max_pixels, 'px')} decoded or {_amount(self.max_file_bytes, 'B')} per file"

    def check_pixels(self, width: int, height: int) -> None:
        """InputTooLarge when width x height is over max_pixels."""
        if width * height > self.max_pixels:
            raise InputTooLarge(f"{width}x{height} pixels, over the {_amount(self.max_pixels, 'px')} limit "
                                f"(${PIXELS_ENV})")

    def check_bytes(self, nbytes: int, what: str = "file") -> None:
        """InputTooLarge when a file of nbytes is over max_file_bytes."""
        if nbytes > self.max_file_bytes:
            raise InputTooLarge(f"{what} of {nbytes} bytes, over the {_amount(self.max_file_bytes, 'B')} limit "
                                f"(${FILE_BYTES_ENV})")


def read_capped(f, limit: int | None, what: str = "file") -> bytes:
    """All of binary file object ``f``, reading at most ``limit + 1`` bytes: InputTooLarge when there are more."""
    if limit is None:
        return f.read()
    data = f.read(limit + 1)
    if len(data) > limit:
        raise InputTooLarge(f"{what} inflates to more than {_amount(limit, 'B')} (${FILE_BYTES_ENV})")
    return data


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise DataError(f"${name} must be a positive integer, got {text!r}")
    return value


def _amount(n: int, unit: str) -> str:
    """64 Mpx, 256 MiB, 1000 px ..."""
    if unit == "B":
        for div, name in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
            if n >= div and n % div == 0:
                return f"{n // div} {name}"
        return f"{n} bytes"
    return f"{n // 2**20} Mpx" if n >= 2**20 and n % 2**20 == 0 else f"{n} px"
