"""Custom ops (upfirdn2d, bias_act): pure-PyTorch references, fused CUDA kernels and fused CPU kernels, the
plugins built on first use.

`backend` picks the implementation (`impl='auto' | 'cuda' | 'cpu' | 'ref'`), `build` compiles and caches the
plugins (never at import) and self-tests each one (`selftest`) before first use, `doctor_report()` describes
the toolchain and what each op will run.
"""

# `upfirdn2d` and `bias_act` stay the *submodules* (NVlabs style): call `upfirdn2d.upfirdn2d(...)`,
# `upfirdn2d.setup_filter(...)`, `bias_act.bias_act(...)`. Never re-export the same-named functions here:
# they would shadow the submodules.
from . import backend, bias_act, build, selftest, upfirdn2d
from .backend import IMPLS, OpsFallbackWarning, doctor_report, get_default_impl, resolve_impl, set_default_impl
from .bias_act import ACTIVATIONS, Activation
from .upfirdn2d import downsample2d, filter2d, setup_filter, upsample2d

build.use_selftest(selftest)  # every plugin is checked against the reference before first use

__all__ = [
    "backend",
    "bias_act",
    "build",
    "upfirdn2d",
    "IMPLS",
    "OpsFallbackWarning",
    "doctor_report",
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
