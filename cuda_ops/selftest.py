"""Self-test of a freshly built or loaded CUDA plugin, before any training step uses it.

`build.get_plugin(op)` calls `run(op, module)` once per build key (the verdict is kept in the build's
`status.json`, so a cached plugin that passed is not tested again). Each op runs once per dtype
(float32, float16, bfloat16, float64) on small fixed inputs, the cases StyleGAN2 depends on:

- bias_act:  lrelu with clamp, and swish (which has a second derivative), on a channels_last [2,5,3,4] tensor;
- upfirdn2d: up 2 with a separable 4-tap filter, down 2 with a 4x4 filter, channels_last input, a gain.

For each case: the forward output, the backward (gradients of x and the bias for a fixed cotangent) and one
double backward (the gradient of <gradient, v> with respect to the cotangent and x, as R1 / path length do)
are compared with the pure-PyTorch reference evaluated in float64 on the same (already rounded) inputs. The
error is max |ours - reference| / max(1, max |reference|); above the dtype's tolerance the plugin fails and
`SelfTestFailed` says which case, which quantity and the max error.
"""
from __future__ import annotations

import types
from typing import Callable

import torch

__all__ = ["TOLERANCE", "SelfTestFailed", "run", "device"]

# Normalised max error allowed per dtype: kernels compute in float32 (float64 for float64), so this is a few
# roundings of the storage dtype, far below what a wrong index, gain or branch gives (errors of order 1).
# Measured with the kernels' CPU emulation: float32 1.3e-7, float16 6.5e-4, bfloat16 5.3e-3, float64 4e-16.
# A GPU's libm (expf, tanhf) and summation order differ by a few ulp: float32 keeps a wide margin (a 2 % bug
# gives 1e-2).
TOLERANCE = {torch.float64: 1e-9, torch.float32: 5e-5, torch.float16: 5e-3, torch.bfloat16: 4e-2}
DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)


class SelfTestFailed(RuntimeError):
    """The plugin's results differ from the reference; `max_error` is the largest normalised error seen."""

    def __init__(self, message: str, max_error: float):
        super().__init__(message)
        self.max_error = max_error


def device() -> torch.device:
    """Where the self-test runs: the current CUDA device (a CPU only in tests, with a stand-in plugin)."""
    return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")


def _error(ours: torch.Tensor, ref: torch.Tensor) -> float:
    ours, ref = ours.detach().double(), ref.detach().double()
    if ours.shape != ref.shape:
        return float("inf")
    if not torch.isfinite(ours).all():
        return float("inf")
    return float((ours - ref).abs().max() / max(1.0, float(ref.abs().max())))


def _grads(fn: Callable, x: torch.Tensor, b: torch.Tensor | None, dy: torch.Tensor, v: torch.Tensor):
    """[y, dx, db, d(<dx, v>)/d dy, d(<dx, v>)/dx] of y = fn(x, b) (None where not defined)."""
    inputs = [x] + ([b] if b is not None else [])
    y = fn(x, b)
    grads = torch.autograd.grad(y, inputs, dy, create_graph=True)
    dx = grads[0]
    db = grads[1] if b is not None else None
    second = torch.autograd.grad((dx * v).sum(), [dy, x], allow_unused=True)
    return [y, dx, db, *second]


NAMES = ("forward", "grad x", "grad bias", "double backward (cotangent)", "double backward (x)")


def _cases(op: str, dev: torch.device):
    """(case name, shape of x, bias or None, fn(x, b, impl)) for `op`."""
    from . import bias_act as ba
    from . import upfirdn2d as ud

    if op == "bias_act":
        return [
            ("lrelu clamp 0.6 channels_last", [2, 5, 3, 4], 5,
             lambda x, b, impl: ba.bias_act(x, b, act="lrelu", clamp=0.6, impl=impl)),
            ("swish gain 0.7 channels_last", [2, 5, 3, 4], 5,
             lambda x, b, impl: ba.bias_act(x, b, act="swish", gain=0.7, impl=impl)),
        ]
    f1 = ud.setup_filter([1, 3, 3, 1], device=dev)
    f2 = ud.setup_filter(torch.arange(1.0, 17.0).reshape(4, 4), device=dev)  # asymmetric: catches a missed flip
    return [
        ("up 2, 4-tap separable filter, channels_last", [2, 3, 5, 4], None,
         lambda x, b, impl: ud.upsample2d(x, f1, up=2, impl=impl)),
        ("down 2, 4x4 filter, gain 1.5, channels_last", [2, 3, 8, 6], None,
         lambda x, b, impl: ud.downsample2d(x, f2, down=2, gain=1.5, impl=impl)),
    ]


def run(op: str, module: types.ModuleType, dev: torch.device | None = None) -> float:
    """Check `module` (the compiled `op`) against the reference: the largest normalised error, or
    SelfTestFailed. The caller (build._verify) makes build.get_plugin(op) return `module` meanwhile."""
    del module  # the ops reach it through build.get_plugin, as in training
    dev = device() if dev is None else dev
    impl = "cuda"
    if op.endswith("_cpu"):  # a fused CPU plugin (build.CPU_OPS): the same cases through impl='cpu'
        op, impl, dev = op[: -len("_cpu")], "cpu", torch.device("cpu")
    gen = torch.Generator().manual_seed(2024)
    worst = 0.0
    for case, shape, channels, fn in _cases(op, dev):
        base = [torch.randn(shape, generator=gen, dtype=torch.float64) * 2,
                torch.randn([channels], generator=gen, dtype=torch.float64) if channels else None]
        out_shape = list(fn(base[0], base[1], "ref").shape)
        base += [torch.randn(out_shape, generator=gen, dtype=torch.float64),
                 torch.randn(shape, generator=gen, dtype=torch.float64)]  # cotangent dy, direction v
        for dtype in DTYPES:
            ours_in = [_prep(t, dtype, dev, channels_last=True) for t in base]
            # The reference sees the values the kernel sees: rounded to `dtype`, then widened to float64.
            ref_in = [_prep(None if t is None else t.to(dtype), torch.float64, dev, channels_last=False)
                      for t in base]
            try:
                ours = _grads(lambda x, b: fn(x, b, impl), *ours_in)
                if dev.type == "cuda":
                    torch.cuda.synchronize(dev)
            except Exception as e:  # noqa: BLE001 - a launch error, a refused layout: the plugin is not usable
                first = (str(e).strip().splitlines() or [""])[0][:200]
                raise SelfTestFailed(f"self-test failed: {op} {case}, {_short(dtype)}: {type(e).__name__}: {first}",
                                     float("inf")) from e
            ref = _grads(lambda x, b: fn(x, b, "ref"), *ref_in)
            for name, a, r in zip(NAMES, ours, ref):
                if a is None and r is None:
                    continue
                if a is None or r is None:  # a gradient one side leaves undefined is zero
                    a = torch.zeros_like(r) if a is None else a
                    r = torch.zeros_like(a) if r is None else r
                err = _error(a, r)
                worst = max(worst, err)
                if not err <= TOLERANCE[dtype]:
                    raise SelfTestFailed(f"self-test failed: {op} {case}, {_short(dtype)}, {name}: max error "
                                         f"{err:.3g} (tolerance {TOLERANCE[dtype]:g})", err)
    return worst


def _prep(t: torch.Tensor | None, dtype: torch.dtype, dev: torch.device, channels_last: bool) -> torch.Tensor | None:
    if t is None:
        return None
    t = t.to(dtype).to(dev)
    if channels_last and t.ndim == 4:
        t = t.contiguous(memory_format=torch.channels_last)
    return t.detach().requires_grad_(True)


def _short(dtype: torch.dtype) -> str:
    return {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16",
            torch.float64: "float64"}[dtype]
