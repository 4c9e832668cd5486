"""Figures that explain themselves (tools.figure_labels) and the number ranges of the W-space commands
(tools.number_checks). No model: synthetic tiles, so every test here takes milliseconds."""
from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from stylegan_anime.figure_labels import (DEFAULT_FACE_PX, face_size, labelled_grid, scale_frame, signed,
                                                upscale)
from stylegan_anime.number_checks import AMOUNT_LIMIT, check_amount, check_number, check_psi


def tiles(rows: int, cols: int, px: int = 8) -> np.ndarray:
    """uint8 [rows, cols, px, px, 3]: each tile one mid-grey level (never white, never black)."""
    levels = np.linspace(60, 200, rows * cols).astype(np.uint8).reshape(rows, cols)
    return np.broadcast_to(levels[:, :, None, None, None], (rows, cols, px, px, 3)).copy()


def test_face_size_default_and_range():
    assert face_size(None, 64) == DEFAULT_FACE_PX == 256      # small models: upscaled to a viewable size
    assert face_size(None, 512) == 512                        # big ones are never shrunk by default
    assert face_size(100, 64) == 100
    for bad in (0, 8, 100_000):
        with pytest.raises(ValueError, match="--face-px must be between"):
            face_size(bad, 64)


def test_upscale_and_scale_frame():
    small = np.arange(4 * 4 * 3, dtype=np.uint8).reshape(1, 4, 4, 3)
    big = upscale(small, 12)
    assert big.shape == (1, 12, 12, 3) and big.dtype == np.uint8
    assert upscale(small, 4) is small                          # same size: untouched
    frame = np.zeros((8, 16, 3), np.uint8)
    assert scale_frame(frame, (32, 64)).shape == (32, 64, 3)


def test_labelled_grid_has_label_bands_with_text():
    cells = tiles(2, 3)
    g = labelled_grid(cells, title="a title", col_labels=["-1 sigma", "0 sigma", "+1 sigma"],
                      row_labels=["seed 0", "seed 1"], face_px=64)
    img = g.image
    assert (g.rows, g.cols, g.face_px) == (2, 3, 64)
    assert img.shape == (g.top + 2 * 64, g.left + 3 * 64, 3)  # bigger than the bare grid by the bands
    assert g.top > 0 and g.left > 0
    for r in range(2):
        for c in range(3):                                    # tiles upscaled to 64 px and in place
            assert np.array_equal(g.cell(r, c), np.broadcast_to(cells[r, c, 0, 0], (64, 64, 3)))
    dark = (img < 40).all(axis=2)                             # text pixels (the tiles are 60..200)
    assert dark[:g.top].any() and dark[g.top:, :g.left].any()
    for c in range(3):                                        # a label over each column
        assert dark[:g.top, g.left + c * 64:g.left + (c + 1) * 64].any()
    for r in range(2):                                        # and beside each row
        assert dark[g.top + r * 64:g.top + (r + 1) * 64, :g.left].any()
    assert not dark[g.top:, g.left:].any()                    # no text drawn over the faces


def test_labels_are_optional_and_counted():
    plain = labelled_grid(tiles(1, 2), face_px=32)
    assert plain.top == 0 and plain.left == 0 and plain.image.shape == (32, 64, 3)
    titled = labelled_grid(tiles(1, 2), title="x", face_px=32)
    assert titled.top > 0 and titled.left == 0
    with pytest.raises(ValueError, match="2 column labels for 3 columns"):
        labelled_grid(tiles(1, 3), col_labels=["a", "b"], face_px=32)
    with pytest.raises(ValueError, match="1 row labels for 2 rows"):
        labelled_grid(tiles(2, 1), row_labels=["a"], face_px=32)


def test_long_titles_wrap_instead_of_running_off():
    words = " ".join(f"word{i}" for i in range(40))
    one = labelled_grid(tiles(1, 2), title="short", face_px=64)
    many = labelled_grid(tiles(1, 2), title=words, face_px=64)
    assert many.image.shape[1] == one.image.shape[1]          # the width stays the grid's
    assert many.top > 2 * one.top                             # the title took several lines
    right = many.image[:many.top, -2:]
    assert (right == 255).all()                               # nothing drawn past the right edge


def test_default_face_size_in_a_figure():
    g = labelled_grid(tiles(1, 1, px=64), col_labels=["target"])
    assert g.face_px == 256 and g.image.shape[1] == 256


def test_signed():
    assert [signed(v) for v in (-3.0, 0.0, 1.5, 2.0)] == ["-3", "0", "+1.5", "+2"]


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, "x"])
def test_non_finite_numbers_are_refused(value):
    with pytest.raises(ValueError, match="--psi must be"):
        check_psi(value)
    with pytest.raises(ValueError, match="--amount"):
        check_amount(value)


def test_ranges():
    assert check_psi(-2) == -2.0 and check_psi(0.7) == 0.7 and check_psi(2) == 2.0
    for bad in (-2.01, 3, 1e30):
        with pytest.raises(ValueError, match=r"--psi must be in \[-2, 2\]"):
            check_psi(bad)
    assert check_amount(-AMOUNT_LIMIT) == -100 and check_amount(100) == 100
    with pytest.raises(ValueError, match=r"--amount \(in sigma\) must be in \[-100, 100\], got 1e\+30"):
        check_amount(1e30)
    assert check_number("--lr", 10, 0, 10, lo_open=True) == 10
    with pytest.raises(ValueError, match=r"--lr must be in \(0, 10\], got 0"):
        check_number("--lr", 0, 0, 10, lo_open=True)


def test_labels_are_readable_at_the_default_size(tmp_path):
    """The label text is taller than a few pixels at 256 px faces (Pillow's scalable default font)."""
    g = labelled_grid(tiles(1, 1, px=64), title="seed 0 psi 0.7", face_px=256)
    rows = np.nonzero((g.image[:g.top] < 40).all(axis=2).any(axis=1))[0]
    assert rows.max() - rows.min() >= 10
    Image.fromarray(g.image).save(tmp_path / "f.png")         # a plain RGB picture
