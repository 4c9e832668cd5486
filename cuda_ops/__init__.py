"""Custom ops (upfirdn2d, bias_act): pure-PyTorch references now, fused CUDA kernels later."""

# `upfirdn2d` and `bias_act` stay the *submodules* (NVlabs style): call `upfirdn2d.upfirdn2d(...)`,
# `upfirdn2d.setup_filter(...)`, `bias_act.bias_act(...)`. Never re-export the same-named functions here:
# they would shadow the submodules.
from . import backend, bias_act, upfirdn2d
from .backend import IMPLS, get_default_impl, resolve_impl, set_default_impl
from .bias_act import ACTIVATIONS, Activation
from .upfirdn2d import downsample2d, filter2d, setup_filter, upsample2d

__all__ = [
    "backend",
    "bias_act",
    "upfirdn2d",
    "IMPLS",
    "get_default_impl",
    "resolve_impl",
    "set_default_impl",
    "ACTIVATIONS",
    "Activation",
    "setup_filter",
    "filter2d",
    "upsample2d",
    "downsample2d",
]
