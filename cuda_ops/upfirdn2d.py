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

Two implementations behind the `impl` switch (see `backend.py`): the pure-PyTorch reference, differentiable
to any order through plain autograd, and the fused CUDA kernel (`upfirdn2d.cu`: one pass per call, a
separable filter as a row pass plus a column pass). The CUDA path is a recursive autograd Function: the
gradient of upfirdn2d is upfirdn2d of the gradient with the flipped filter, up and down swapped and
matching padding, so it differentiates to any order too (with respect to x; a filter that needs a gradient
goes to the reference).
"""
from __future__ import annotations

import dataclasses
import math
import operator
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from . import backend, build
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

    chosen = resolve_impl(impl, x, op="upfirdn2d", unsupported=_cuda_unsupported(x, f))
    if chosen in ("cuda", "cpu"):  # 'cpu': the fused CPU kernels (upfirdn2d_cpu.cpp), same Function
        return _upfirdn2d_cuda(x, f, upx, upy, downx, downy, px0, px1, py0, py1, flip_filter, gain,
                               plugin="upfirdn2d_cpu" if chosen == "cpu" else "upfirdn2d")
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
# The CUDA path.

_CUDA_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def _cuda_unsupported(x: torch.Tensor, f: torch.Tensor | None) -> str | None:
    if x.dtype not in _CUDA_DTYPES:
        return f"the upfirdn2d kernel supports float32/float64/float16/bfloat16, not {x.dtype}"
    if f is not None and f.requires_grad and torch.is_grad_enabled():
        return "the upfirdn2d kernel does not differentiate with respect to the filter f (detach it)"
    return None


def _plugin(name: str = "upfirdn2d"):
    return build.get_plugin(name)


def _upfirdn2d_cuda(
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
    plugin: str = "upfirdn2d",
) -> torch.Tensor:
    """The kernel wants a contiguous [fh, fw] filter in float32 (float64 for float64 x) on x's device."""
    f_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    if f is None:
        f = torch.ones([1, 1], dtype=f_dtype, device=x.device)
    f = f.detach().to(device=x.device, dtype=f_dtype)
    if f.ndim == 1 and f.numel() == 1:
        f = torch.outer(f, f)  # a separable 1-tap filter is applied twice: [[f0 * f0]]
    if f.ndim == 2:
        cfg = _KernelConfig(upx, upy, downx, downy, px0, px1, py0, py1, flip_filter, gain * upx * upy, plugin)
        return _Upfirdn2dCuda.apply(x, f.contiguous(), cfg)

    # Separable: a [1, fw] pass along x and a [fw, 1] pass along y, cheaper order first.
    fw = f.shape[0]
    row, col = f.reshape(1, fw).contiguous(), f.reshape(fw, 1).contiguous()
    cfg_x = _KernelConfig(upx, 1, downx, 1, px0, px1, 0, 0, flip_filter, gain * upx, plugin)
    cfg_y = _KernelConfig(1, upy, 1, downy, 0, 0, py0, py1, flip_filter, float(upy), plugin)
    H, W = x.shape[2], x.shape[3]
    out_w = (W * upx + px0 + px1 - fw) // downx + 1
    out_h = (H * upy + py0 + py1 - fw) // downy + 1
    taps_x, taps_y = -(-fw // upx), -(-fw // upy)
    cost_x_first = H * out_w * taps_x + out_h * out_w * taps_y
    cost_y_first = out_h * W * taps_y + out_h * out_w * taps_x
    if cost_x_first <= cost_y_first:
        return _Upfirdn2dCuda.apply(_Upfirdn2dCuda.apply(x, row, cfg_x), col, cfg_y)
    cfg_y = dataclasses.replace(cfg_y, scale=gain * upy)
    cfg_x = dataclasses.replace(cfg_x, scale=float(upx))
    return _Upfirdn2dCuda.apply(_Upfirdn2dCuda.apply(x, col, cfg_y), row, cfg_x)


@dataclasses.dataclass(frozen=True)
class _KernelConfig:
    upx: int
    upy: int
    downx: int
    downy: int
    px0: int
    px1: int
    py0: int
    py1: int
    flip: bool
    scale: float  # everything the kernel multiplies by: the op's gain * up_x * up_y
    plugin: str = "upfirdn2d"  # build.get_plugin name: 'upfirdn2d' (CUDA) or 'upfirdn2d_cpu' (impl='cpu')


class _Upfirdn2dCuda(torch.autograd.Function):
    """One kernel pass with a 2-D filter. Its gradient is the same Function (so any order works)."""

    @staticmethod
    def forward(ctx, x, f, cfg: _KernelConfig):  # noqa: D102
        c = cfg
        y = _plugin(c.plugin).upfirdn2d(
            x, f, c.upx, c.upy, c.downx, c.downy, c.px0, c.px1, c.py0, c.py1, c.flip, c.scale,
            backend.poison_outputs(),
        )
        ctx.save_for_backward(f)
        ctx.cfg = cfg
        ctx.in_hw = (x.shape[2], x.shape[3])
        return y

    @staticmethod
    def backward(ctx, dy):  # noqa: D102
        (f,) = ctx.saved_tensors
        dx = None
        if ctx.needs_input_grad[0]:
            dx = _Upfirdn2dCuda.apply(dy, f, _transpose_config(ctx.cfg, ctx.in_hw, dy.shape[2:], f.shape))
        return dx, None, None


def _transpose_config(c: _KernelConfig, in_hw, out_hw, f_shape) -> _KernelConfig:
    """The adjoint of one pass: swap up/down, flip the filter, pad so that the output is the input's size.

    Along x: forward output o reads input i through filter tap i*up + p0 - o*down (in correlation form),
    so the adjoint pass with up' = down, down' = up and the flipped filter needs p0' = fw - 1 - p0, and
    p1' = W*up - Wo*down + p0 - up + 1 makes its output exactly W wide.
    """
    H, W = in_hw
    Ho, Wo = out_hw
    fh, fw = f_shape
    return _KernelConfig(
        upx=c.downx,
        upy=c.downy,
        downx=c.upx,
        downy=c.upy,
        px0=fw - 1 - c.px0,
        px1=W * c.upx - Wo * c.downx + c.px0 - c.upx + 1,
        py0=fh - 1 - c.py0,
        py1=H * c.upy - Ho * c.downy + c.py0 - c.upy + 1,
        flip=not c.flip,
        scale=c.scale,
        plugin=c.plugin,
    )


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
