"""Sliced Wasserstein Distance between image sets on a Laplacian pyramid (Karras et al. 2018, ProGAN §5).

Recipe, after the paper's description:

1. Each image (uint8 ``[N,H,W,3]``, turned into float 0..255) is decomposed into a Laplacian pyramid
   with the 5x5 binomial filter ([1,4,6,4,1]/16 squared, reflected borders), from full resolution
   down to the coarsest level that is still at least 16 px (64 px -> levels 64, 32, 16; 96 px ->
   96, 48, 24).  The coarsest level is the low-pass image itself, the others are band-pass.
2. At every level, ``patches_per_image`` random 7x7x3 neighbourhoods are cut out of each image:
   one 147-d descriptor each.
3. Per level, the descriptors of both sets are normalised per colour channel with the mean and
   standard deviation of the *combined* sets.  (ProGAN's released code normalises each set with its
   own statistics, which hides global colour shifts; numbers are therefore close to, not identical
   with, the paper's.)
4. The sliced Wasserstein distance is estimated with ``dir_repeats`` x ``dirs_per_repeat`` random
   unit directions: project both sets, sort, average |a_(i) - b_(i)|.  Sets of different sizes are
   truncated to the smaller one.  Values are reported x1e3, per level and averaged.

The floor: SWD between two *disjoint* sets of reals of the same size (:func:`disjoint_halves`) is
what a perfect generator would score with that many images; each level has its own floor (the
coarse level's is the highest: its 7x7 patches overlap across a 16 px image, so they are fewer
independent samples). ``evaluate`` reports it beside the metric as ``swd_floor/<size>`` and
``swd_floor``, so every level can be read against its floor.

Everything random (patch positions, directions) comes from ``seed``: equal inputs give equal results.
Patch positions depend only on (seed, level, image index), so image i of both sets is cut at the same
places (two identical sets score exactly 0) and a set split over processes gives what one pass gives.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["SWDAccumulator", "disjoint_halves", "floor_values", "laplacian_pyramid", "patch_positions",
           "pyramid_sizes", "sliced_wasserstein", "swd"]

MIN_LEVEL = 16
PATCH = 7


def pyramid_sizes(resolution: int, min_size: int = MIN_LEVEL) -> list[int]:
    """Level sizes from ``resolution`` halving while the next level keeps >= ``min_size`` px."""
    if resolution < max(min_size, PATCH):
        raise ValueError(f"SWD needs images of at least {max(min_size, PATCH)} px, got {resolution}")
    sizes = [int(resolution)]
    while (sizes[-1] + 1) // 2 >= min_size:
        sizes.append((sizes[-1] + 1) // 2)
    return sizes


def _blur(x: torch.Tensor) -> torch.Tensor:
    """Separable 5x5 binomial blur ([1,4,6,4,1]/16 per axis) with reflected borders; x [N,C,H,W].

    Written as weighted sums of shifted slices: several times faster than a grouped conv2d on CPU.
    """
    h, w = x.shape[-2:]
    p = F.pad(x, (2, 2, 2, 2), mode="reflect")  # needs H, W >= 3: levels stay >= 16 px
    p = (p[..., 0:w] + p[..., 4:w + 4] + 4.0 * (p[..., 1:w + 1] + p[..., 3:w + 3]) + 6.0 * p[..., 2:w + 2]) / 16.0
    return (p[..., 0:h, :] + p[..., 4:h + 4, :] + 4.0 * (p[..., 1:h + 1, :] + p[..., 3:h + 3, :])
            + 6.0 * p[..., 2:h + 2, :]) / 16.0


def _down(x: torch.Tensor) -> torch.Tensor:
    return _blur(x)[:, :, ::2, ::2]


def _up(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    n, c, h, w = x.shape
    z = x.new_zeros(n, c, 2 * h, 2 * w)
    z[:, :, ::2, ::2] = x
    return (_blur(z) * 4.0)[:, :, : size[0], : size[1]]


def laplacian_pyramid(x: torch.Tensor, num_levels: int) -> list[torch.Tensor]:
    """x [N,C,H,W] float -> [band_0 (H), band_1 (H/2), ..., low-pass (H/2^(L-1))]."""
    levels = []
    cur = x
    for _ in range(num_levels - 1):
        low = _down(cur)
        levels.append(cur - _up(low, cur.shape[-2:]))
        cur = low
    levels.append(cur)
    return levels


def patch_positions(indices: Iterable[int], size: int, per_image: int, seed: int, level: int) -> torch.Tensor:
    """Centres of the 7x7 patches of images with these (global) indices at one pyramid level: int64 [n,P,2].

    A function of (seed, level, image index) only (a counter-based Philox stream per image), so a set
    scored in any batching, or split over several processes, gets the same patches.
    """
    r = PATCH // 2
    out = np.empty((len(indices := list(indices)), per_image, 2), np.int64)
    for j, i in enumerate(indices):
        rng = np.random.Generator(np.random.Philox(key=(int(seed) % 2**64) << 64 | int(i), counter=int(level)))
        out[j] = rng.integers(r, size - r, size=(per_image, 2))
    return torch.from_numpy(out)


def _sample_patches(level: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """7x7 neighbourhoods: level [N,C,H,W], centres int64 [N,P,2] (y, x) -> [N*P, C*49] (float32)."""
    n, c, h, w = level.shape
    per_image = centres.shape[1]
    r = PATCH // 2
    centres = centres.to(level.device)
    ys, xs = centres[..., 0], centres[..., 1]
    off = torch.arange(-r, r + 1, device=level.device)
    yy = (ys[..., None, None] + off[:, None]).expand(n, per_image, PATCH, PATCH)  # n x P x 7 x 7
    xx = (xs[..., None, None] + off[None, :]).expand(n, per_image, PATCH, PATCH)
    flat = level.reshape(n, c, h * w)
    idx = (yy * w + xx).reshape(n, 1, -1).expand(n, c, -1)                      # n x C x (P*49)
    patches = torch.gather(flat, 2, idx).reshape(n, c, per_image, PATCH * PATCH)
    return patches.permute(0, 2, 1, 3).reshape(n * per_image, c * PATCH * PATCH).float()


@dataclass
class SWDAccumulator:
    """Collects pyramid descriptors of one image set, batch by batch.

    ``add(images, start)`` takes uint8 [n,H,W,3] whose first image has index ``start`` in the set
    (default: the next index); ``level(l)`` is float32 [count*P, 147] in image-index order. Batches
    added out of order, or by other processes and merged with ``extend(other.batches())``, give the
    same descriptors as one pass in order.
    """

    resolution: int
    patches_per_image: int = 128
    seed: int = 0
    device: str | torch.device = "cpu"
    count: int = 0

    def __post_init__(self):
        self.sizes = pyramid_sizes(self.resolution)
        self._batches: dict[int, list[torch.Tensor]] = {}  # start index -> per-level descriptors

    @torch.no_grad()
    def add(self, images: np.ndarray, start: int | None = None) -> None:
        arr = np.asarray(images)
        if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
            raise ValueError(f"SWD expects uint8 images [N,H,W,3], got {arr.dtype} {list(arr.shape)}")
        if arr.shape[1] != self.resolution or arr.shape[2] != self.resolution:
            raise ValueError(f"SWD set is {self.resolution} px but got images of {arr.shape[1]}x{arr.shape[2]}")
        start = self._next_index() if start is None else int(start)
        x = torch.from_numpy(np.ascontiguousarray(arr)).to(self.device).permute(0, 3, 1, 2).float()
        indices = range(start, start + len(arr))
        # float16 storage halves memory (4096 images x 128 patches x 147 = 77M values per level);
        # its 11-bit mantissa is finer than the uint8 quantisation of the inputs.
        self._put(start, [_sample_patches(band, patch_positions(indices, size, self.patches_per_image, self.seed, lvl))
                          .half().cpu()
                          for lvl, (size, band) in enumerate(zip(self.sizes, laplacian_pyramid(x, len(self.sizes))))])

    def _next_index(self) -> int:
        return max((s + len(d[0]) // self.patches_per_image for s, d in self._batches.items()), default=0)

    def _put(self, start: int, levels: list[torch.Tensor]) -> None:
        if start in self._batches:
            raise ValueError(f"SWD: images from index {start} were added twice")
        self._batches[start] = levels
        self.count += len(levels[0]) // self.patches_per_image

    def batches(self) -> list[tuple[int, list[torch.Tensor]]]:
        """(start index, per-level float16 descriptors) of every batch added: what ``extend`` takes."""
        return sorted(self._batches.items(), key=lambda kv: kv[0])

    def extend(self, batches: Iterable[tuple[int, list[torch.Tensor]]]) -> None:
        """Add batches collected by another accumulator of the same settings (e.g. on another rank)."""
        for start, levels in batches:
            if len(levels) != len(self.sizes):
                raise ValueError(f"SWD: a batch has {len(levels)} pyramid levels, expected {len(self.sizes)}")
            self._put(int(start), list(levels))

    def level(self, i: int) -> torch.Tensor:
        """float32 [count*P, 147] descriptors of pyramid level ``i``, in image-index order."""
        parts = [levels[i] for _, levels in self.batches()]
        return torch.cat(parts, 0).float() if parts else torch.zeros(0, 3 * PATCH * PATCH)


@torch.no_grad()
def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, dir_repeats: int = 4, dirs_per_repeat: int = 128,
                       seed: int = 0, device=None, scale: torch.Tensor | None = None) -> float:
    """Mean over random unit directions of the 1-D Wasserstein-1 distance of the projections.

    a [n,D], b [m,D]; the larger set is truncated to min(n, m) rows (rows are already random).
    ``scale`` [D]: measure in the space x / scale (the per-channel standardisation); a common
    offset does not change sorted-projection differences, so the mean need not be subtracted.
    """
    n = min(len(a), len(b))
    if n < 1:
        raise ValueError("sliced_wasserstein needs non-empty sets")
    device = device or a.device
    a, b = a[:n].to(device), b[:n].to(device)
    gen = torch.Generator().manual_seed(int(seed))
    total = 0.0
    for _ in range(dir_repeats):
        dirs = torch.randn(a.shape[1], dirs_per_repeat, generator=gen, dtype=torch.float32)
        dirs /= dirs.norm(dim=0, keepdim=True)                        # D x K, unit columns
        if scale is not None:
            dirs /= scale.float()[:, None]
        dirs = dirs.to(device)
        pa, pb = _sorted_projections(a, dirs), _sorted_projections(b, dirs)  # K x n, rows sorted
        total += float(np.abs(pa - pb).mean(dtype=np.float64))
    return total / dir_repeats


def _sorted_projections(x: torch.Tensor, dirs: torch.Tensor) -> np.ndarray:
    """x [n,D], dirs [D,K] -> float32 [K,n] projections, each row sorted.

    numpy sorts in place on CPU (torch.sort is ~10x slower there); torch.sort on accelerators.
    """
    proj = torch.mm(dirs.T, x.T)                                      # K x n, contiguous
    if proj.device.type != "cpu":
        return torch.sort(proj, dim=1)[0].cpu().numpy()
    out = proj.numpy()
    out.sort(axis=1)
    return out


def _joint_channel_std(a: torch.Tensor, b: torch.Tensor, chunk: int = 1 << 16) -> torch.Tensor:
    """Std of each colour channel (3 groups of 49 components) over both sets -> [D] per component."""
    s1 = torch.zeros(a.shape[1], dtype=torch.float64)
    s2 = torch.zeros(a.shape[1], dtype=torch.float64)
    for t in (a, b):
        for i in range(0, len(t), chunk):
            c = t[i:i + chunk].double().cpu()
            s1 += c.sum(0)
            s2 += (c * c).sum(0)
    count = (len(a) + len(b)) * PATCH * PATCH
    s1c, s2c = s1.view(3, -1).sum(1), s2.view(3, -1).sum(1)
    var = (s2c - s1c * s1c / count) / max(count - 1, 1)
    std = var.clamp_min(0).sqrt().clamp_min(1e-8)
    return std.repeat_interleave(PATCH * PATCH)


def swd_from_accumulators(real: SWDAccumulator, fake: SWDAccumulator, dir_repeats: int = 4,
                          dirs_per_repeat: int = 128, seed: int = 0, device=None) -> dict[str, float]:
    """{'swd/<size>': value x1e3 per level, 'swd': their mean}."""
    if real.sizes != fake.sizes:
        raise ValueError(f"pyramid levels differ: {real.sizes} vs {fake.sizes}")
    out = {}
    for i, size in enumerate(real.sizes):
        a, b = real.level(i), fake.level(i)
        out[f"swd/{size}"] = 1e3 * sliced_wasserstein(a, b, dir_repeats, dirs_per_repeat, seed=seed + 1000 * i,
                                                      device=device, scale=_joint_channel_std(a, b))
    out["swd"] = float(np.mean([out[f"swd/{s}"] for s in real.sizes]))
    return out


def swd(images_a: np.ndarray | Iterable[np.ndarray], images_b: np.ndarray | Iterable[np.ndarray], *,
        patches_per_image: int = 128, dir_repeats: int = 4, dirs_per_repeat: int = 128, seed: int = 0,
        device="cpu", batch_size: int = 256) -> dict[str, float]:
    """SWD (x1e3) between two sets of uint8 [N,H,W,3] images of the same size (arrays or batch iterables).

    Returns per-level values ``swd/<size>`` and their average ``swd``; deterministic for ``seed``.
    """
    accs = []
    for images in (images_a, images_b):
        batches = [images] if isinstance(images, np.ndarray) else images
        acc = None
        for batch in batches:
            for i in range(0, len(batch), batch_size):
                part = np.asarray(batch[i:i + batch_size])
                if acc is None:
                    acc = SWDAccumulator(part.shape[1], patches_per_image, seed=seed, device=device)
                acc.add(part)
        if acc is None:
            raise ValueError("SWD needs non-empty image sets")
        accs.append(acc)
    return swd_from_accumulators(accs[0], accs[1], dir_repeats, dirs_per_repeat, seed=seed, device=device)


def disjoint_halves(num_total: int, num: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint index sets of ``m = min(num, num_total // 2)`` reals each, for the real-vs-real floor.

    Entries ``[0, m)`` and ``[m, 2m)`` of the fixed permutation of the dataset that real subsets come from
    (``numpy.random.default_rng(seed).permutation``): the first is the metric's own real subset whenever
    that is a proper subset (:func:`.stats.real_subset`).
    """
    m = min(int(num), int(num_total) // 2)
    perm = np.random.default_rng(seed).permutation(int(num_total))
    return perm[:m], perm[m:2 * m]


def floor_values(sizes: list[int], levels) -> dict[str, float]:
    """Per-level floor values (same order as ``sizes``) -> ``{'swd_floor/<size>': ..., 'swd_floor': mean}``."""
    levels = [float(v) for v in np.asarray(levels).reshape(-1)]
    if len(levels) != len(sizes):
        raise ValueError(f"SWD floor: {len(levels)} values for {len(sizes)} levels")
    out = {f"swd_floor/{s}": v for s, v in zip(sizes, levels)}
    out["swd_floor"] = float(np.mean(levels))
    return out
