"""Tests for the built-in procedural demo faces (stylegan_anime.data.demo)."""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

import numpy as np
import pytest

from stylegan_anime.data import demo

N_BATCH = 500  # images rendered once at 64 px and shared by the statistical tests


def _render(seed, index, size):
    return demo.render_face(seed, index, size)


@pytest.fixture(scope="module")
def batch64():
    out = [_render(0, i, 64) for i in range(N_BATCH)]
    images = np.stack([o[0] for o in out])
    hair = np.array([o[1] for o in out])
    eye = np.array([o[2] for o in out])
    return images, hair, eye


def _near_fraction(images: np.ndarray, palette, dist: float) -> np.ndarray:
    """[N, K]: per image, the fraction of pixels within ``dist`` (RGB) of each palette colour.

    Uses a 64^3 colour lookup table (4-level bins) so that it stays fast on big batches.
    """
    q = (images.reshape(len(images), -1, 3) >> 2).astype(np.int32)
    code = (q[..., 0] << 12) | (q[..., 1] << 6) | q[..., 2]
    centres = np.arange(64, dtype=np.float32) * 4 + 1.5
    grid = np.stack(np.meshgrid(centres, centres, centres, indexing="ij"), axis=-1).reshape(-1, 3)
    out = []
    for colour in np.asarray(palette, dtype=np.float32):
        lut = ((grid - colour) ** 2).sum(axis=-1) < dist * dist
        out.append(lut[code].mean(axis=1))
    return np.stack(out, axis=1)


# --------------------------------------------------------------------------- interface

def test_tag_tuples_exact():
    assert demo.HAIR_COLORS == (
        "blonde", "brown", "black", "blue", "pink", "purple",
        "green", "red", "silver", "white", "orange", "aqua",
    )
    assert demo.EYE_COLORS == (
        "black", "blue", "brown", "green", "orange", "pink", "purple", "red", "yellow", "aqua",
    )
    assert isinstance(demo.HAIR_COLORS, tuple) and isinstance(demo.EYE_COLORS, tuple)
    assert len(demo.HAIR_RGB) == len(demo.HAIR_COLORS)
    assert len(demo.EYE_RGB) == len(demo.EYE_COLORS)


def test_constants():
    assert isinstance(demo.DEMO_VERSION, int) and not isinstance(demo.DEMO_VERSION, bool)
    assert demo.DEMO_VERSION >= 1
    assert demo.DEFAULT_COUNT == 10_000


def test_pure_numpy_pil_imports():
    """The demo module must not need torch (or anything beyond numpy / PIL / stdlib)."""
    tree = ast.parse(Path(demo.__file__).read_text())
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            roots.add(node.module.split(".")[0])
    assert roots <= {"__future__", "colorsys", "math", "numpy", "PIL"}, roots


@pytest.mark.parametrize("size", [32, 64, 128, 256])
def test_shape_dtype_labels(size):
    img, hair, eye = _render(3, 7, size)
    assert isinstance(img, np.ndarray)
    assert img.shape == (size, size, 3)
    assert img.dtype == np.uint8
    assert type(hair) is int and type(eye) is int
    assert 0 <= hair < len(demo.HAIR_COLORS) and 0 <= eye < len(demo.EYE_COLORS)
    assert img.std() > 10  # something was drawn
    assert img.flags.writeable and img.flags.c_contiguous  # usable with torch.from_numpy as is


@pytest.mark.parametrize("args", [(-1, 0, 64), (0, -1, 64), (0, 0, 4), (0, 0, 5000)])
def test_invalid_arguments(args):
    with pytest.raises(ValueError):
        _render(*args)


# --------------------------------------------------------------------------- determinism

def test_deterministic_bytes():
    for size in (64, 128):
        a = _render(5, 123, size)
        b = _render(5, 123, size)
        assert a[0].tobytes() == b[0].tobytes()
        assert a[1:] == b[1:]


def test_call_order_irrelevant():
    idx = list(range(20, 28))
    forward = {i: _render(1, i, 64) for i in idx}
    backward = {}
    for i in reversed(idx):
        _render(2, i + 1000, 64)  # unrelated renders in between must not matter
        backward[i] = _render(1, i, 64)
    for i in idx:
        assert forward[i][0].tobytes() == backward[i][0].tobytes()
        assert forward[i][1:] == backward[i][1:]


def test_different_index_or_seed_differs():
    base = _render(0, 10, 64)[0]
    assert not np.array_equal(base, _render(0, 11, 64)[0])
    assert not np.array_equal(base, _render(1, 10, 64)[0])


def test_same_face_at_every_size():
    """Geometry and labels are sampled in unit coordinates: sizes show the same face."""
    for i in range(6):
        small, h64, e64 = _render(0, i, 64)
        big, h128, e128 = _render(0, i, 128)
        assert (h64, e64) == (h128, e128)
        down = big.astype(np.float32).reshape(64, 2, 64, 2, 3).mean(axis=(1, 3))
        same = np.abs(down - small).mean()
        other = np.abs(down - _render(0, i + 50, 64)[0]).mean()
        assert same < 8.0 and same < other / 4, (same, other)


# --------------------------------------------------------------------------- labels

def test_labels_in_range_and_all_classes(batch64):
    _, hair, eye = batch64
    assert hair.min() >= 0 and hair.max() < 12 and eye.min() >= 0 and eye.max() < 10
    assert set(hair[:300].tolist()) == set(range(12))
    assert set(eye[:300].tolist()) == set(range(10))
    # uniform choice: no class is starved or dominant (expected ~42 and ~50 of 500)
    assert np.bincount(hair, minlength=12).min() >= 15 and np.bincount(hair, minlength=12).max() <= 80
    assert np.bincount(eye, minlength=10).min() >= 20 and np.bincount(eye, minlength=10).max() <= 90


def test_hair_label_matches_pixels(batch64):
    images, hair, _ = batch64
    frac = _near_fraction(images, demo.HAIR_RGB, 30.0)  # [N, 12]
    own = frac[np.arange(len(hair)), hair]
    # the labelled colour covers a real part of the picture...
    assert np.mean(own >= 0.03) >= 0.97, np.sort(own)[:10]
    # ...and is, per image, the most common of the 12 hair colours
    accuracy = np.mean(frac.argmax(axis=1) == hair)
    assert accuracy >= 0.9, accuracy
    # per class, images labelled k have far more k-coloured pixels than the others
    for k in range(12):
        inside, outside = frac[hair == k, k].mean(), frac[hair != k, k].mean()
        assert inside > 5 * outside + 0.02, (demo.HAIR_COLORS[k], inside, outside)


def test_eye_label_matches_pixels():
    # irises are small, so look at 128 px and compare medians (robust to the odd
    # background or clothing that happens to share an eye colour)
    out = [_render(4, i, 128) for i in range(200)]
    images = np.stack([o[0] for o in out])
    eye = np.array([o[2] for o in out])
    assert set(eye.tolist()) == set(range(10))
    count = _near_fraction(images, demo.EYE_RGB, 25.0) * 128 * 128  # [N, 10] pixel counts
    for k in range(10):
        inside = np.median(count[eye == k, k])
        outside = np.median(count[eye != k, k])
        assert inside > 4 * outside + 8, (demo.EYE_COLORS[k], inside, outside)


# --------------------------------------------------------------------------- variety

def test_no_duplicates_in_500(batch64):
    images, _, _ = batch64
    digests = {hashlib.sha1(im.tobytes()).hexdigest() for im in images}
    assert len(digests) == len(images)


def test_images_are_varied(batch64):
    images, _, _ = batch64
    x = images[:50].astype(np.float32)
    gray = x.mean(axis=-1)
    rgb = np.concatenate([np.abs(x[i + 1:] - x[i]).mean(axis=(1, 2, 3)) for i in range(49)])
    lum = np.concatenate([np.abs(gray[i + 1:] - gray[i]).mean(axis=(1, 2)) for i in range(49)])
    assert len(rgb) == 50 * 49 // 2
    assert rgb.min() > 10 and rgb.mean() > 35, (rgb.min(), rgb.mean())
    # not only colours: brightness structure (layout, shapes) differs as well
    assert lum.min() > 5 and lum.mean() > 25, (lum.min(), lum.mean())
    # every pixel position changes across the set (faces move, hair styles differ)
    assert (x.std(axis=0).mean(axis=-1) > 5).mean() > 0.95
