"""Fused bias + activation + gain + clamp.

    y = clamp(act(x + b, alpha) * gain, -clamp, clamp)

with `b` broadcast along dimension `dim` of `x`. Two implementations behind the `impl` switch (see
`backend.py`): the pure-PyTorch reference (`_bias_act_ref`, differentiable to any order) and the fused CUDA
kernel (`bias_act.cu`: float32/float16/bfloat16 computed in float32, float64 in float64; contiguous,
channels_last or any other memory-dense layout). The CUDA path is an autograd Function whose backward is itself a
differentiable Function built on the same kernel (its first- and second-order gradient modes), so
R1 / path-length penalties can double-backprop through it; third-order gradients need impl='ref'.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable

import torch
import torch.nn.functional as F

from . import backend, build
from .backend import resolve_impl

__all__ = ["Activation", "ACTIVATIONS", "bias_act"]


@dataclasses.dataclass(frozen=True)
class Activation:
    """One activation: `func(x, alpha)` with the defaults bias_act uses when alpha/gain are None."""

    name: str
    def_alpha: float  # ignored by activations without a parameter
    def_gain: float  # chosen so that the activation roughly preserves the signal's magnitude
    func: Callable[[torch.Tensor, float], torch.Tensor]


_SQRT2 = math.sqrt(2)

ACTIVATIONS: dict[str, Activation] = {
    a.name: a
    for a in [
        Activation("linear", 0.0, 1.0, lambda x, alpha: x),
        Activation("relu", 0.0, _SQRT2, lambda x, alpha: F.relu(x)),
        Activation("lrelu", 0.2, _SQRT2, lambda x, alpha: F.leaky_relu(x, alpha)),
        Activation("tanh", 0.0, 1.0, lambda x, alpha: torch.tanh(x)),
        Activation("sigmoid", 0.0, 1.0, lambda x, alpha: torch.sigmoid(x)),
        Activation("elu", 1.0, 1.0, lambda x, alpha: F.elu(x, alpha)),
        Activation("selu", 0.0, 1.0, lambda x, alpha: F.selu(x)),
        Activation("softplus", 0.0, 1.0, lambda x, alpha: F.softplus(x)),
        Activation("swish", 0.0, _SQRT2, lambda x, alpha: torch.sigmoid(x) * x),
    ]
}


def bias_act(
    x: torch.Tensor,
    b: torch.Tensor | None = None,
    dim: int = 1,
    act: str = "linear",
    alpha: float | None = None,
    gain: float | None = None,
    clamp: float | None = None,
    impl: str | None = None,
) -> torch.Tensor:
    """Add bias `b` [x.shape[dim]] along `dim`, apply `act`, scale by `gain`, clamp to [-clamp, clamp].

    x:     any-shape float tensor, e.g. [N,C,H,W] with dim=1 or [N,L,C] with dim=2 (negative dims allowed).
    alpha: the activation's parameter (lrelu slope, elu scale); None = its default. Others ignore it.
    gain:  None = the activation's default gain (see ACTIVATIONS).
    clamp: None or negative = no clamping.
    impl:  None (the default set in backend), 'auto', 'cuda', 'ref' or 'cpu' (the fused CPU kernels).
    Returns a tensor of x's shape and dtype.
    """
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"bias_act: x must be a floating-point torch.Tensor; got {_describe(x)}")
    if act not in ACTIVATIONS:
        raise ValueError(f"bias_act: unknown activation {act!r}; choose from {', '.join(ACTIVATIONS)}")
    if not -x.ndim <= dim < x.ndim:
        raise ValueError(f"bias_act: dim={dim} is out of range for x of shape {list(x.shape)}")
    dim %= x.ndim
    if b is not None:
        if not isinstance(b, torch.Tensor) or b.ndim != 1:
            raise ValueError(f"bias_act: b must be a 1-D tensor; got {_describe(b)}")
        if b.shape[0] != x.shape[dim]:
            raise ValueError(
                f"bias_act: b has {b.shape[0]} elements but x.shape[{dim}] = {x.shape[dim]} "
                f"(x shape {list(x.shape)})"
            )
    spec = ACTIVATIONS[act]
    alpha = float(spec.def_alpha if alpha is None else alpha)
    gain = float(spec.def_gain if gain is None else gain)
    clamp = -1.0 if clamp is None else float(clamp)

    chosen = resolve_impl(impl, x, op="bias_act", unsupported=_cuda_unsupported(x, act))
    if chosen in ("cuda", "cpu"):  # 'cpu': the fused CPU kernels (bias_act_cpu.cpp), same Functions
        return _bias_act_cuda(x, b, dim, spec, alpha, gain, clamp, "bias_act_cpu" if chosen == "cpu" else "bias_act")
    return _bias_act_ref(x, b, dim, spec, alpha, gain, clamp)


def _bias_act_ref(
    x: torch.Tensor, b: torch.Tensor | None, dim: int, spec: Activation, alpha: float, gain: float, clamp: float
) -> torch.Tensor:
    """Composition of torch ops, so autograd differentiates it to any order."""
    if b is not None:
        shape = [1] * x.ndim
        shape[dim] = -1
        x = x + b.to(x.dtype).reshape(shape)  # [..., C, ...] + [1, .., C, .., 1]
    x = spec.func(x, alpha)
    if gain != 1:
        x = x * gain
    if clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x


def _describe(v: object) -> str:
    if isinstance(v, torch.Tensor):
        return f"tensor of shape {list(v.shape)} and dtype {v.dtype}"
    return type(v).__name__


# --------------------------------------------------------------------------------------------------------
# The CUDA path.

_CUDA_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)

# name: (kernel id (BiasActKind in bias_act.h), what the gradient is computed from, has a 2nd derivative)
# 'y': the derivative follows from the output (saving y costs nothing: the next layer keeps it anyway).
# 'x': it needs the input. A nonzero 2nd derivative also needs x, since the 2nd-order term goes to x.
_CUDA_ACTS: dict[str, tuple[int, str, bool]] = {
    "linear": (0, "y", False),
    "relu": (1, "y", False),
    "lrelu": (2, "y", False),  # 'x' when alpha < 0 (then the sign of y no longer tells the branch)
    "tanh": (3, "y", True),
    "sigmoid": (4, "y", True),
    "elu": (5, "x", True),
    "selu": (6, "x", True),
    "softplus": (7, "x", True),
    "swish": (8, "x", True),
}

_FORWARD, _GRAD1, _GRAD2 = 0, 1, 2


@dataclasses.dataclass(frozen=True)
class _CudaConfig:
    dim: int
    act_id: int
    alpha: float
    gain: float
    clamp: float
    save_x: bool  # keep x (and b) for the backward
    save_y: bool  # keep y for the backward
    has_2nd: bool
    plugin: str = "bias_act"  # build.get_plugin name: 'bias_act' (CUDA) or 'bias_act_cpu' (impl='cpu')


def _cuda_unsupported(x: torch.Tensor, act: str = "linear") -> str | None:
    if x.dtype not in _CUDA_DTYPES:
        return f"the bias_act kernel supports float32/float64/float16/bfloat16, not {x.dtype}"
    if act not in _CUDA_ACTS:
        return f"the bias_act kernel has no activation {act!r}"
    return None


def _plugin(name: str = "bias_act"):
    return build.get_plugin(name)


def _is_dense(t: torch.Tensor) -> bool:
    """True when `t` covers its memory exactly once: a permutation of a contiguous tensor."""
    dims = sorted((st, sz) for st, sz in zip(t.stride(), t.shape) if sz != 1)
    expected = 1
    for st, sz in dims:
        if st != expected:
            return False
        expected *= sz
    return True


def _like(t: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """`t` with `ref`'s memory layout (the kernel walks all its tensors with one flat index)."""
    if t.stride() == ref.stride() and t.dtype == ref.dtype:
        return t
    out = torch.empty_strided(ref.shape, ref.stride(), dtype=ref.dtype, device=ref.device)
    out.copy_(t)
    return out


def _sum_to_bias(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sum over every dimension but `dim` (note: `t.sum([])` would sum over all of them)."""
    dims = [d for d in range(t.ndim) if d != dim]
    return t.sum(dims) if dims else t


def _bias_act_cuda(
    x: torch.Tensor, b: torch.Tensor | None, dim: int, spec: Activation, alpha: float, gain: float, clamp: float,
    plugin: str = "bias_act",
) -> torch.Tensor:
    if x.numel() == 0:
        return _bias_act_ref(x, b, dim, spec, alpha, gain, clamp)
    if not _is_dense(x):
        x = x.contiguous()
    if b is not None:
        b = b.to(x.dtype).contiguous()  # differentiable: the gradient flows back to b's own dtype
    act_id, ref, has_2nd = _CUDA_ACTS[spec.name]
    if spec.name == "lrelu" and alpha < 0:
        ref = "x"
    cfg = _CudaConfig(
        dim=dim,
        act_id=act_id,
        alpha=alpha,
        gain=gain,
        clamp=clamp,
        save_x=ref == "x" or has_2nd,
        save_y=(ref == "y" and spec.name != "linear") or clamp >= 0,
        has_2nd=has_2nd,
        plugin=plugin,
    )
    return _BiasActCuda.apply(x, b, cfg)


def _run(x, b, xref, yref, dy, mode: int, cfg: _CudaConfig) -> torch.Tensor:
    return _plugin(cfg.plugin).bias_act(
        x, b, xref, yref, dy, mode, cfg.dim, cfg.act_id, cfg.alpha, cfg.gain, cfg.clamp, backend.poison_outputs()
    )


class _BiasActCuda(torch.autograd.Function):
    """y = clamp(gain * act(x + b)) by the fused kernel."""

    @staticmethod
    def forward(ctx, x, b, cfg: _CudaConfig):  # noqa: D102
        y = _run(x, b, None, None, None, _FORWARD, cfg)
        ctx.cfg = cfg
        ctx.save_for_backward(
            x if cfg.save_x else None, b if cfg.save_x else None, y if cfg.save_y else None
        )
        return y

    @staticmethod
    def backward(ctx, dy):  # noqa: D102
        x, b, y = ctx.saved_tensors
        cfg = ctx.cfg
        dx = db = None
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
            # y enters the gradient as a constant: its dependence on x is part of the grad2 mode's formula
            # (which goes to x), so no gradient should flow into y (and then, as zeros, through forward).
            dx = _BiasActCudaGrad.apply(dy, x, b, None if y is None else y.detach(), cfg)
        if ctx.needs_input_grad[1]:
            db = _sum_to_bias(dx, cfg.dim)
        return (dx if ctx.needs_input_grad[0] else None), db, None


class _BiasActCudaGrad(torch.autograd.Function):
    """dx = dy * gain * act'(x + b) * (not clamped), differentiable once more (for R1 / path length)."""

    @staticmethod
    def forward(ctx, dy, x, b, y, cfg: _CudaConfig):  # noqa: D102
        ref = y if y is not None else x
        dy = _like(dy, ref) if ref is not None else (dy if _is_dense(dy) else dy.contiguous())
        dx = _run(dy, b if x is not None else None, x, y, None, _GRAD1, cfg)
        ctx.cfg = cfg
        ctx.save_for_backward(dy if cfg.has_2nd else None, x, b, y)
        return dx

    @staticmethod
    def backward(ctx, d_dx):  # noqa: D102
        dy, x, b, y = ctx.saved_tensors
        cfg = ctx.cfg
        d_dy = d_x = d_b = None
        if ctx.needs_input_grad[0]:  # dx is linear in dy: the same Function again
            d_dy = _BiasActCudaGrad.apply(d_dx, x, b, y, cfg)
        if cfg.has_2nd and (ctx.needs_input_grad[1] or ctx.needs_input_grad[2]):
            d_x = _BiasActCudaGrad2.apply(d_dx, dy, x, b, y, cfg)
            if ctx.needs_input_grad[2]:
                d_b = _sum_to_bias(d_x, cfg.dim)
        return d_dy, (d_x if ctx.needs_input_grad[1] else None), d_b, None, None


class _BiasActCudaGrad2(torch.autograd.Function):
    """The second-order term d_dx * dy * gain * act''(x + b) * (not clamped); not differentiable again."""

    @staticmethod
    def forward(ctx, d_dx, dy, x, b, y, cfg: _CudaConfig):  # noqa: D102
        return _run(_like(d_dx, dy), b, x, y, dy, _GRAD2, cfg)

    @staticmethod
    def backward(ctx, *grads):  # noqa: D102
        raise RuntimeError(
            "bias_act(impl='cuda') is differentiable up to second order; use impl='ref' (--ops ref) for "
            "third-order gradients"
        )
