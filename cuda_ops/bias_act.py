"""Fused bias + activation + gain + clamp.

    y = clamp(act(x + b, alpha) * gain, -clamp, clamp)

with `b` broadcast along dimension `dim` of `x`. This module holds the pure-PyTorch reference; the fused
CUDA kernel will plug in behind the same `impl` switch (see `backend.py`).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable

import torch
import torch.nn.functional as F

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
    impl:  None (the default set in backend), 'auto', 'cuda' or 'ref'.
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

    resolve_impl(impl, x)  # only 'ref' exists so far
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
