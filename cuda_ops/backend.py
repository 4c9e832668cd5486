"""Choose the implementation behind the custom ops: the pure-PyTorch reference or fused CUDA kernels.

Every op takes `impl=None | 'auto' | 'cuda' | 'ref'`:

- `'ref'`:  the pure-PyTorch reference (any device, any float dtype, differentiable to any order).
- `'cuda'`: the fused CUDA kernels. They do not exist yet, so asking for them raises a RuntimeError.
- `'auto'`: the fastest available implementation for the input tensor; for now always `'ref'`.
- `None`:   the process-wide default, settable with `set_default_impl()` (the CLI's `--ops` flag).
"""
from __future__ import annotations

import torch

IMPLS = ("auto", "cuda", "ref")

_CUDA_UNAVAILABLE = "CUDA kernels for cuda_ops are not available yet; use impl='ref' (--ops ref)"

_default_impl = "auto"


def _check_impl(impl: object) -> str:
    if not isinstance(impl, str) or impl not in IMPLS:
        raise ValueError(f"impl must be one of {', '.join(repr(i) for i in IMPLS)}; got {impl!r}")
    return impl


def set_default_impl(name: str) -> None:
    """Set the implementation that ops use when called with `impl=None`."""
    global _default_impl
    _default_impl = _check_impl(name)


def get_default_impl() -> str:
    """The implementation that ops use when called with `impl=None` ('auto' unless changed)."""
    return _default_impl


def resolve_impl(impl: str | None, x: torch.Tensor) -> str:
    """Turn a requested `impl` (or None = the default) into the one to run on `x`: currently always 'ref'."""
    impl = _check_impl(_default_impl if impl is None else impl)
    if impl == "cuda":
        raise RuntimeError(_CUDA_UNAVAILABLE)
    # 'auto' will pick 'cuda' for CUDA tensors once the kernels exist; `x` is taken for that decision.
    return "ref"
