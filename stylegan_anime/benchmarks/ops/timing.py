"""Per-op timing: forward + backward of one recorded signature with impl='cuda', impl='ref', and impl='ref' with
the reference functions replaced by torch.compile of them; the timer every measurement uses."""
from __future__ import annotations

import contextlib
import math
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import torch

from stylegan_anime.cuda_ops import build as ops_build

from .common import BA, UD, one_line, patched, sync
from .shapes import OpSig, _is_channels_last


def compile_fn(fn: Callable, *, backend: str = "inductor", fullgraph: bool = True, dynamic: bool | None = None):
    """torch.compile (one place, so tests can watch what gets compiled: patch `opbench.timing.compile_fn`)."""
    return torch.compile(fn, backend=backend, fullgraph=fullgraph, dynamic=dynamic)


class CompiledReference:
    """torch.compile of a reference function; fullgraph first, without fullgraph if that graph-breaks."""

    def __init__(self, fn: Callable, name: str, backend: str, dynamic: bool | None, notes: set[str]):
        self.fn, self.name, self.backend, self.dynamic, self.notes = fn, name, backend, dynamic, notes
        self.compiled = compile_fn(fn, backend=backend, fullgraph=True, dynamic=dynamic)
        self.fullgraph = True

    def __call__(self, *args):
        if self.fullgraph:
            try:
                return self.compiled(*args)
            except Exception as e:  # noqa: BLE001
                if type(e).__name__ != "Unsupported":  # only a graph break is retried without fullgraph
                    raise
                self.notes.add(f"{self.name}: graph break, compiled without fullgraph ({one_line(e)})")
                self.compiled = compile_fn(self.fn, backend=self.backend, fullgraph=False, dynamic=self.dynamic)
                self.fullgraph = False
        return self.compiled(*args)


def _dynamo_config(**want):
    """torch._dynamo.config.patch of the keys this torch has."""
    have = torch._dynamo.config.get_config_copy()
    return torch._dynamo.config.patch(**{k: v for k, v in want.items() if k in have})


@contextlib.contextmanager
def compiled_reference(backend: str = "inductor", dynamic: bool | None = None,
                       notes: set[str] | None = None) -> Iterator[dict[str, CompiledReference]]:
    """Replace `_bias_act_ref` and `_upfirdn2d_ref` (what impl='ref' runs) by torch.compile of them; restore
    them afterwards. The recompile limit is raised and hitting it is an error, never a silent eager fallback."""
    notes = set() if notes is None else notes
    fns = {"bias_act": CompiledReference(BA._bias_act_ref, "bias_act", backend, dynamic, notes),
           "upfirdn2d": CompiledReference(UD._upfirdn2d_ref, "upfirdn2d", backend, dynamic, notes)}
    with _dynamo_config(recompile_limit=1024, accumulated_recompile_limit=1 << 16, fail_on_recompile_limit_hit=True,
                        cache_size_limit=1024), \
            patched(BA, "_bias_act_ref", fns["bias_act"]), patched(UD, "_upfirdn2d_ref", fns["upfirdn2d"]):
        yield fns


def cuda_unavailable_reason(device: torch.device) -> str | None:
    """Why impl='cuda' cannot be timed here (None: it can; builds the plugins on first use)."""
    if device.type != "cuda":
        if torch.version.cuda is None:
            return "no CUDA (this torch is a CPU-only build)"
        if not torch.cuda.is_available():
            return "no CUDA (no GPU visible)"
        return "timing on the CPU (--device cpu)"
    for op in ops_build.OPS:
        try:
            ops_build.get_plugin(op)
        except ops_build.PluginUnavailable as e:
            return f"the {op} plugin is unavailable: {one_line(e)}"
    return None


def make_inputs(sig: OpSig, device: torch.device, seed: int = 0) -> dict[str, torch.Tensor | None]:
    """x (requires grad) and b (requires grad, x's dtype as the layers pass it) or the filter f (float32)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(sig.shape, generator=g).to(device=device, dtype=sig.torch_dtype)
    if sig.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    if sig.op == "bias_act":
        b = None
        if sig.has_bias:
            b = torch.randn([sig.shape[sig.dim]], generator=g).to(device=device, dtype=sig.torch_dtype)
            b.requires_grad_(True)
        return {"x": x, "b": b}
    f = None
    if sig.f_shape:
        f = (torch.tensor(sig.f_taps, dtype=torch.float32) if sig.f_taps
             else torch.full(sig.f_shape, 1.0 / math.prod(sig.f_shape)))
        f = f.to(device)
    return {"x": x, "f": f}


def op_callable(sig: OpSig, impl: str) -> Callable[..., torch.Tensor]:
    """The public op with this signature's arguments and `impl` ('cuda' or 'ref'; 'compiled' is 'ref' inside
    `compiled_reference`). Looked up at call time, so patches apply."""
    if sig.op == "bias_act":
        clamp = sig.clamp if sig.clamp >= 0 else None
        return lambda x, b: BA.bias_act(x, b, dim=sig.dim, act=sig.act, alpha=sig.alpha, gain=sig.gain, clamp=clamp,
                                        impl=impl)
    if sig.op == "upfirdn2d":
        return lambda x, f: UD.upfirdn2d(x, f, up=sig.up, down=sig.down, padding=sig.padding,
                                         flip_filter=sig.flip_filter, gain=sig.gain, impl=impl)
    raise ValueError(f"unknown op {sig.op!r}")


def time_callable(run: Callable[[], Any], device: torch.device, warmup: int = 3, repeats: int = 7,
                  min_time: float = 0.02, max_inner: int = 10000) -> float:
    """Median over `repeats` of the mean seconds per call of `run`, each repeat calling it often enough to
    take about `min_time` (calibrated after `warmup` calls); the GPU is synchronised around every stretch."""
    for _ in range(warmup):
        run()
    sync(device)
    t0 = time.perf_counter()
    run()
    sync(device)
    one = time.perf_counter() - t0
    inner = max(1, min(max_inner, int(min_time / max(one, 1e-7))))
    times = []
    for _ in range(max(1, repeats)):
        sync(device)
        t0 = time.perf_counter()
        for _ in range(inner):
            run()
        sync(device)
        times.append((time.perf_counter() - t0) / inner)
    return statistics.median(times)


def fwd_bwd_runner(fn: Callable[..., torch.Tensor], inputs: dict[str, torch.Tensor | None]) -> Callable[[], Any]:
    """One forward + backward: gradients of <y, random cotangent> w.r.t. x and the bias (not the filter)."""
    args = list(inputs.values())
    wrt = [t for k, t in inputs.items() if k in ("x", "b") and t is not None]
    y = fn(*args)
    g = torch.randn(y.shape, generator=torch.Generator().manual_seed(1)).to(device=y.device, dtype=y.dtype)
    g = g.contiguous(memory_format=torch.channels_last) if _is_channels_last(y) else g

    def run():
        out = fn(*args)
        return torch.autograd.grad(out, wrt, g)

    return run


@dataclass
class OpTiming:
    ms: dict[str, float | None]  # impl -> ms per forward+backward, None = n/a
    reasons: dict[str, str]  # impl -> why n/a


def time_op(sig: OpSig, impls: Sequence[str], device: torch.device, *, warmup: int = 3, repeats: int = 7,
            min_time: float = 0.02, backend: str = "inductor", notes: set[str] | None = None,
            cuda_reason: str | None | bool = False) -> OpTiming:
    """Forward+backward ms of one signature for each impl; n/a with a reason instead of raising.

    cuda_reason: False = work it out (cuda_unavailable_reason); None/str = already known.
    """
    notes = set() if notes is None else notes
    if cuda_reason is False and "cuda" in impls:
        cuda_reason = cuda_unavailable_reason(device)
    out = OpTiming({}, {})
    for impl in impls:
        if impl == "cuda" and cuda_reason:
            out.ms[impl], out.reasons[impl] = None, str(cuda_reason)
            continue
        try:
            inputs = make_inputs(sig, device)
            if impl == "compiled":
                torch._dynamo.reset()  # every signature compiled on its own, static shapes
                with compiled_reference(backend, dynamic=False, notes=notes):
                    run = fwd_bwd_runner(op_callable(sig, "ref"), inputs)
                    sec = time_callable(run, device, warmup, repeats, min_time)
            else:
                run = fwd_bwd_runner(op_callable(sig, impl), inputs)
                sec = time_callable(run, device, warmup, repeats, min_time)
            out.ms[impl] = sec * 1000
        except Exception as e:  # noqa: BLE001 - an unsupported dtype, a compile error: n/a, not a crash
            out.ms[impl], out.reasons[impl] = None, one_line(e)
        finally:
            if impl == "compiled":
                torch._dynamo.reset()
    return out
