"""Upsample, FIR-filter, downsample: the resampling op of StyleGAN2.

`upfirdn2d(x, f, up, down, padding)` on `x` [N,C,H,W], per channel:

1. upsample by inserting `up - 1` zeros after every pixel (per axis)  -> [N,C,H*up_y,W*up_x]
2. pad with zeros (negative padding crops)                            -> [N,C,H*up_y+py0+py1,W*up_x+px0+px1]
3. convolve with the FIR filter `f` (true convolution, i.e. the filter is flipped; `flip_filter=True`
   gives correlation instead), keeping only the "valid" outputs
4. keep every `down`-th pixel, starting with the first                 -> [N,C,out_h,out_w]

    out_w = (W * up_x + px0 + px1 - fw) // down_x + 1      (likewise out_h)

Gain convention: the output is multiplied by `gain * up_x * up_y`. The factor `up_x * up_y` makes up for
the zeros inserted in step 1, so with a normalized filter (sum 1, see `setup_filter`) upsampling keeps the
average brightness of the image. (NVlabs' upfirdn2d leaves that factor to its callers: there,
`upsample2d` passes `gain * up**2`; here `upfirdn2d` applies it itself and `upsample2d` passes `gain` on.)

Filters: None = identity [1x1]; a 1-D tensor [fw] is separable (applied along x and then along y);
a 2-D tensor is [fh, fw]. Build them with `setup_filter`.

This module holds the pure-PyTorch reference, differentiable to any order through plain autograd; the
fused CUDA kernel will plug in behind the same `impl` switch (see `backend.py`).
"""
from __future__ import annotations

import math
import operator
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .backend import resolve_impl

__all__ = ["setup_filter", "upfirdn2d", "filter2d", "upsample2d", "downsample2d"]

IntOrPair = int | Sequence[int]

# --------------------------------------------------------------------------------------------------------
# Argument parsing.


def _parse_scaling(s: IntOrPair, name: str) -> tuple[int, int]:
    """`up`/`down` as int or (sx, sy) -> (sx, sy), both >= 1."""
    try:
        if isinstance(s, (int, np.integer)) and not isinstance(s, bool):
            sx = sy = operator.index(s)
        else:
            sx, sy = (operator.index(v) for v in s)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an int or a pair of ints (x, y); got {s!r}") from None
    if sx < 1 or sy < 1:
        raise ValueError(f"{name} factors must be >= 1; got {s!r}")
    return sx, sy


def _parse_padding(padding: IntOrPair) -> tuple[int, int, int, int]:
    """int, (px, py) or (x0, x1, y0, y1) -> (x0, x1, y0, y1)."""
    try:
        if isinstance(padding, (int, np.integer)) and not isinstance(padding, bool):
            p = [operator.index(padding)] * 4
        else:
            p = [operator.index(v) for v in padding]
            if len(p) == 2:
                p = [p[0], p[0], p[1], p[1]]
    except (TypeError, ValueError):
        p = []
    if len(p) != 4:
        raise ValueError(f"padding must be an int, (px, py) or (x0, x1, y0, y1); got {padding!r}")
    return p[0], p[1], p[2], p[3]


def _check_filter(f: torch.Tensor | None) -> None:
    if f is None:
        return
    if not isinstance(f, torch.Tensor) or not f.is_floating_point():
        raise TypeError(f"f must be None or a floating-point torch.Tensor (see setup_filter); got {type(f).__name__}")
    if f.ndim not in (1, 2) or f.numel() == 0:
        raise ValueError(f"f must be a non-empty 1-D (separable) or 2-D [fh, fw] filter; got shape {list(f.shape)}")


def _get_filter_size(f: torch.Tensor | None) -> tuple[int, int]:
    """(fw, fh) of a filter: None -> (1, 1), 1-D [n] -> (n, n), 2-D [fh, fw] -> (fw, fh)."""
    _check_filter(f)
    if f is None:
        return 1, 1
    return int(f.shape[-1]), int(f.shape[0])


# --------------------------------------------------------------------------------------------------------
# Filters.


def setup_filter(
    f,
    device: torch.device = torch.device("cpu"),
    normalize: bool = True,
    flip_filter: bool = False,
    gain: float = 1,
    separable: bool | None = None,
) -> torch.Tensor:
    """Make a float32 FIR filter tensor from a list, array, tensor or scalar (None = [1]).

    separable: None = keep the dimensionality (1-D stays separable, 2-D stays 2-D); False turns a 1-D
               filter into its 2-D outer product; True requires a 1-D filter.
    normalize: scale so that the 2-D filter sums to 1 (for a 1-D filter: the 1-D taps sum to 1).
    gain:      multiplies the 2-D filter; a 1-D filter gets gain**0.5 since it is applied twice.
    Returns [fw] (separable) or [fh, fw] on `device`.
    """
    f = torch.as_tensor(1.0 if f is None else f, dtype=torch.float32).detach().clone()
    if f.ndim == 0:
        f = f[None]
    if f.ndim not in (1, 2) or f.numel() == 0:
        raise ValueError(f"setup_filter: need a non-empty 1-D or 2-D filter; got shape {list(f.shape)}")
    if separable is None:
        separable = f.ndim == 1
    if separable and f.ndim != 1:
        raise ValueError(f"setup_filter: a separable filter must be 1-D; got shape {list(f.shape)}")
    if not separable and f.ndim == 1:
        f = torch.outer(f, f)  # [fw] -> [fw, fw]

    if normalize:
        total = f.sum()
        if total == 0:
            raise ValueError("setup_filter: cannot normalize a filter whose taps sum to 0 (pass normalize=False)")
        f = f / total
    if flip_filter:
        f = f.flip(list(range(f.ndim)))
    if f.ndim == 1 and gain < 0:
        raise ValueError("setup_filter: a negative gain needs a 2-D filter (separable=False)")
    f = f * (gain ** (f.ndim / 2))
    return f.to(device)


# --------------------------------------------------------------------------------------------------------
# The op.


def upfirdn2d(
    x: torch.Tensor,
    f: torch.Tensor | None,
    up: IntOrPair = 1,
    down: IntOrPair = 1,
    padding: IntOrPair = 0,
    flip_filter: bool = False,
    gain: float = 1,
    impl: str | None = None,
) -> torch.Tensor:
    """Upsample (zero insertion), pad, convolve with `f`, downsample. See the module docstring.

    x:       [N,C,H,W] float tensor (contiguous or channels_last).
    f:       None, [fw] (separable) or [fh, fw]; cast to x's dtype and device.
    up/down: int or (x, y) integer factors >= 1.
    padding: int, (px, py) or (x0, x1, y0, y1) on the upsampled image; negative values crop.
    gain:    the output is multiplied by gain * up_x * up_y.
    Returns [N,C,out_h,out_w] with out_w = (W*up_x + x0 + x1 - fw) // down_x + 1.
    """
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.ndim != 4:
        got = f"shape {list(x.shape)}, dtype {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"upfirdn2d: x must be a floating-point [N,C,H,W] tensor; got {got}")
    upx, upy = _parse_scaling(up, "up")
    downx, downy = _parse_scaling(down, "down")
    px0, px1, py0, py1 = _parse_padding(padding)
    fw, fh = _get_filter_size(f)
    H, W = x.shape[2], x.shape[3]
    padded_w, padded_h = W * upx + px0 + px1, H * upy + py0 + py1
    if padded_w < fw or padded_h < fh:
        raise ValueError(
            f"upfirdn2d: empty output: input {H}x{W} upsampled by ({upx},{upy}) and padded by "
            f"{(px0, px1, py0, py1)} is {padded_h}x{padded_w}, smaller than the {fh}x{fw} filter"
        )

    resolve_impl(impl, x)  # only 'ref' exists so far
    return _upfirdn2d_ref(x, f, upx, upy, downx, downy, px0, px1, py0, py1, flip_filter, gain)


def _upfirdn2d_ref(
    x: torch.Tensor,
    f: torch.Tensor | None,
    upx: int,
    upy: int,
    downx: int,
    downy: int,
    px0: int,
    px1: int,
    py0: int,
    py1: int,
    flip_filter: bool,
    gain: float,
) -> torch.Tensor:
    """Plain torch ops, differentiable to any order by autograd."""
    N, C, H, W = x.shape

    # 1. Zero insertion: [N,C,H,1,W,1] -> pad the singleton axes -> [N,C,H*upy,W*upx].
    if upx > 1 or upy > 1:
        x = x.reshape(N, C, H, 1, W, 1)
        x = F.pad(x, [0, upx - 1, 0, 0, 0, upy - 1])
        x = x.reshape(N, C, H * upy, W * upx)

    # 2. Pad with zeros, then crop where padding is negative.
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0) : x.shape[2] - max(-py1, 0), max(-px0, 0) : x.shape[3] - max(-px1, 0)]

    # 3 + 4. Depthwise conv (groups=C); its stride does the downsampling. conv2d computes correlation, so
    # flipping the filter gives true convolution. Scale in the wider dtype, then cast to x's dtype.
    if f is None:
        f = torch.ones([1, 1], device=x.device)
    f = f.to(device=x.device, dtype=torch.promote_types(f.dtype, x.dtype))
    if not flip_filter:
        f = f.flip(list(range(f.ndim)))
    if f.ndim == 2:
        w = (f * (gain * upx * upy)).to(x.dtype)
        w = w[None, None].repeat(C, 1, 1, 1)  # [C,1,fh,fw]
        return F.conv2d(x, w, stride=(downy, downx), groups=C)

    # Separable: along x, then along y; gain split as sqrt(|gain|) per axis, the sign on the x pass.
    g = math.sqrt(abs(gain))
    wx = (f * (math.copysign(g, gain) * upx)).to(x.dtype)
    wy = (f * (g * upy)).to(x.dtype)
    x = F.conv2d(x, wx[None, None, None, :].repeat(C, 1, 1, 1), stride=(1, downx), groups=C)  # [C,1,1,fw]
    x = F.conv2d(x, wy[None, None, :, None].repeat(C, 1, 1, 1), stride=(downy, 1), groups=C)  # [C,1,fw,1]
    return x


# --------------------------------------------------------------------------------------------------------
# Size-preserving helpers.


def filter2d(
    x: torch.Tensor,
    f: torch.Tensor | None,
    padding: IntOrPair = 0,
    flip_filter: bool = False,
    gain: float = 1,
    impl: str | None = None,
) -> torch.Tensor:
    """Filter [N,C,H,W] -> [N,C,H,W], padded so the output is the input's size (extra `padding` adds on)."""
    px0, px1, py0, py1 = _parse_padding(padding)
    fw, fh = _get_filter_size(f)
    p = [px0 + fw // 2, px1 + (fw - 1) // 2, py0 + fh // 2, py1 + (fh - 1) // 2]
    return upfirdn2d(x, f, padding=p, flip_filter=flip_filter, gain=gain, impl=impl)


def upsample2d(
    x: torch.Tensor,
    f: torch.Tensor | None,
    up: IntOrPair = 2,
    padding: IntOrPair = 0,
    flip_filter: bool = False,
    gain: float = 1,
    impl: str | None = None,
) -> torch.Tensor:
    """Upsample [N,C,H,W] -> [N,C,H*up_y,W*up_x] (plus any extra `padding`), keeping average brightness."""
    upx, upy = _parse_scaling(up, "up")
    px0, px1, py0, py1 = _parse_padding(padding)
    fw, fh = _get_filter_size(f)
    p = [
        px0 + (fw + upx - 1) // 2,
        px1 + (fw - upx) // 2,
        py0 + (fh + upy - 1) // 2,
        py1 + (fh - upy) // 2,
    ]
    return upfirdn2d(x, f, up=(upx, upy), padding=p, flip_filter=flip_filter, gain=gain, impl=impl)


def downsample2d(
    x: torch.Tensor,
    f: torch.Tensor | None,
    down: IntOrPair = 2,
    padding: IntOrPair = 0,
    flip_filter: bool = False,
    gain: float = 1,
    impl: str | None = None,
) -> torch.Tensor:
    """Downsample [N,C,H,W] -> [N,C,H//down_y,W//down_x] (plus any extra `padding`)."""
    downx, downy = _parse_scaling(down, "down")
    px0, px1, py0, py1 = _parse_padding(padding)
    fw, fh = _get_filter_size(f)
    p = [
        px0 + (fw - downx + 1) // 2,
        px1 + (fw - downx) // 2,
        py0 + (fh - downy + 1) // 2,
        py1 + (fh - downy) // 2,
    ]
    return upfirdn2d(x, f, down=(downx, downy), padding=p, flip_filter=flip_filter, gain=gain, impl=impl)
