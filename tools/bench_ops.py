#!/usr/bin/env python3
"""Per-op benchmark of the custom ops (issue #4): fused CUDA kernels vs the eager PyTorch reference vs
`torch.compile` of the reference, at the shapes StyleGAN2 really uses, then whole training steps with each.

1. **Shapes.** For every size, the StyleGAN2 G and D of the recipe (`auto` preset unless overridden) run one
   forward pass (G(z) then D(img), training mode) with `bias_act.bias_act` and `upfirdn2d.upfirdn2d` wrapped
   where the layers look them up (the `stylegan_anime.cuda_ops` submodules; `upsample2d`/`downsample2d` go
   through the same module global). Each distinct call signature (shape, dtype, memory format, act/gain/clamp,
   up/down/padding/filter) is recorded with how often it occurs per G+D forward and which layers call it. The
   forward runs on fake tensors (no memory, no arithmetic), so the full preset at batch 32 is recorded in a
   second even on a CPU; it falls back to a real forward under no_grad if fake tensors fail.
2. **Ops.** Every signature: forward + backward (random cotangent, gradients w.r.t. x and the bias) through the
   public op with impl='cuda', impl='ref', and impl='ref' with its reference function (`_bias_act_ref` /
   `_upfirdn2d_ref`) replaced by `torch.compile` of it (fullgraph, static shapes; compiled afresh per
   signature). Warm-up, then the median over repeats of the mean over enough calls to fill --min-time,
   synchronising the GPU around every timed stretch. "weighted total" = sum of ms x occurrences per G+D forward.
3. **Training step.** The real `Trainer.step()` (all phases, lazy regularisation) with --ops cuda, --ops ref
   and ref with the reference functions patched to compiled ones (restored afterwards). An iteration's time is
   averaged over the regularisation cycle: each distinct set of due phases (G+D; G+Greg+D every pl_interval;
   all four every r1_interval) is timed on its own and weighted by how often it occurs in a cycle
   (--step-mode cycle times consecutive whole cycles instead). The R1 and path-length penalties need double
   backward, which torch.compile (aot_autograd) does not support: a phase that fails compiled is rerun with the
   eager reference, the all-compiled row says n/a with the reason, and a second row times compiled-where-it-works.
   The step compiles with static shapes (one graph per shape): with automatic dynamic shapes, inductor's code for
   `_upfirdn2d_ref` fails an assert_size_stride check on torch 2.13 (CPU) once channel counts vary
   (--compile-dynamic tries it anyway).

A cell that cannot be measured says `n/a` with a numbered reason under the table; nothing is made up.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import importlib
import inspect
import json
import math
import platform
import shlex
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch

BA = importlib.import_module("stylegan_anime.cuda_ops.bias_act")  # the modules the layers look the ops up in
UD = importlib.import_module("stylegan_anime.cuda_ops.upfirdn2d")
from stylegan_anime.cuda_ops import backend as ops_backend  # noqa: E402
from stylegan_anime.cuda_ops import build as ops_build  # noqa: E402

SIZES = (64, 128)
IMPLS = ("cuda", "ref", "compiled")
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
DTYPE_SHORT = {torch.float32: "f32", torch.float16: "f16", torch.bfloat16: "bf16", torch.float64: "f64"}
QUICK_OVERRIDES = dict(channel_base=256, channel_max=32, z_dim=32, w_dim=32)
QUICK_BATCH = 2


class UsageError(ValueError):
    """A bad command-line value: one line `error: ...`, exit code 2."""


def one_line(e: BaseException | str, limit: int = 160) -> str:
    """The first non-empty line of an exception's message (or its type name), shortened to `limit`."""
    text = e if isinstance(e, str) else str(e)
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    first = lines[0] if lines else (type(e).__name__ if isinstance(e, BaseException) else "")
    return first if len(first) <= limit else first[: limit - 3] + "..."


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {name}: CUDA is not available "
                         f"({'this torch is a CPU-only build' if torch.version.cuda is None else 'no GPU visible'})")
    try:
        return torch.device(name)
    except RuntimeError:
        raise UsageError(f"--device: unknown device {name!r} (auto, cpu, cuda or cuda:N)") from None


@contextlib.contextmanager
def patched(obj: Any, name: str, value: Any) -> Iterator[None]:
    """setattr for the duration of the block, restored even on error."""
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)


@contextlib.contextmanager
def default_impl(name: str) -> Iterator[None]:
    old = ops_backend.get_default_impl()
    ops_backend.set_default_impl(name)
    try:
        yield
    finally:
        ops_backend.set_default_impl(old)


# ==========================================================================================================
# 1. Signatures of the real network.


@dataclass(frozen=True)
class OpSig:
    """One distinct call of bias_act or upfirdn2d, with every argument normalised as the op itself does."""

    op: str  # 'bias_act' | 'upfirdn2d'
    shape: tuple[int, ...]
    dtype: str  # 'float32', ...
    channels_last: bool = False
    # bias_act
    dim: int = 1
    act: str = ""
    alpha: float = 0.0
    gain: float = 1.0
    clamp: float = -1.0  # < 0: none
    has_bias: bool = False
    # upfirdn2d (gain above is its gain too)
    up: tuple[int, int] = (1, 1)
    down: tuple[int, int] = (1, 1)
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)
    flip_filter: bool = False
    f_shape: tuple[int, ...] = ()  # () = no filter
    f_taps: tuple = field(default=(), repr=False)  # the filter's values (nested tuples), so it can be rebuilt

    @property
    def torch_dtype(self) -> torch.dtype:
        return getattr(torch, self.dtype)

    def shape_str(self) -> str:
        s = "x".join(map(str, self.shape)) + " " + DTYPE_SHORT.get(self.torch_dtype, self.dtype)
        return s + (" cl" if self.channels_last else "")

    def params_str(self) -> str:
        if self.op == "bias_act":
            p = [self.act]
            if self.act in BA.ACTIVATIONS and self.alpha != BA.ACTIVATIONS[self.act].def_alpha:
                p.append(f"a={self.alpha:g}")
            if self.gain != 1:
                p.append(f"g={self.gain:.3g}")
            if self.clamp >= 0:
                p.append(f"c={self.clamp:g}")
            if not self.has_bias:
                p.append("no-b")
            if self.dim != 1:
                p.append(f"dim={self.dim}")
            return " ".join(p)
        p = []
        if self.up != (1, 1):
            p.append(f"up{self.up[0]}" if self.up[0] == self.up[1] else f"up{self.up}")
        if self.down != (1, 1):
            p.append(f"down{self.down[0]}" if self.down[0] == self.down[1] else f"down{self.down}")
        p.append("pad" + ",".join(map(str, self.padding)))
        p.append("f" + "x".join(map(str, self.f_shape)) if self.f_shape else "f1")
        if self.gain != 1:
            p.append(f"g={self.gain:g}")
        if self.flip_filter:
            p.append("flip")
        return " ".join(p)

    def with_layout(self, dtype: torch.dtype | None = None, channels_last: bool | None = None) -> "OpSig":
        """The same call in another dtype / memory format (channels_last only applies to 4-D tensors)."""
        changes: dict[str, Any] = {}
        if dtype is not None:
            changes["dtype"] = str(dtype).removeprefix("torch.")
        if channels_last is not None:
            changes["channels_last"] = bool(channels_last) and len(self.shape) == 4
        return dataclasses.replace(self, **changes)


@dataclass
class Recorded:
    sig: OpSig
    count: int = 0  # calls per G+D forward
    where: set[str] = field(default_factory=set)  # 'G.SynthesisLayer', 'D.Conv2dLayer', ...

    def where_str(self) -> str:
        return ",".join(sorted(self.where))


def _is_channels_last(x: torch.Tensor) -> bool:
    return x.ndim == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def stylegan2_config(size: int, batch: int | None = None, overrides: dict | None = None, dtype: str = "net"):
    """The recipe's resolved StyleGAN2Config for this size. dtype: 'net' = the preset's reduced-precision
    layers as they are; 'float32' = none (num_fp16_res=0); 'float16'/'bfloat16' = the preset's layers in it."""
    from stylegan_anime.stylegan2.recipe import StyleGAN2, resolve

    over = dict(overrides or {})
    if batch is not None:
        over["batch"] = batch
    if dtype == "float32":
        over["num_fp16_res"] = 0
    elif dtype in ("float16", "bfloat16"):
        over["fp16_dtype"] = dtype
    return resolve(StyleGAN2.make_config(**over), size)


def build_networks(size: int, batch: int | None = None, overrides: dict | None = None, dtype: str = "net",
                   device: torch.device | str = "cpu", seed: int = 0):
    """(G, D, cfg) of the StyleGAN2 recipe at `size` in training mode, built as the recipe builds them."""
    from stylegan_anime.stylegan2.discriminator import Discriminator
    from stylegan_anime.stylegan2.generator import Generator
    from stylegan_anime.stylegan2.recipe import network_kwargs

    cfg = stylegan2_config(size, batch, overrides, dtype)
    G_kwargs, D_kwargs = network_kwargs(cfg, size)
    torch.manual_seed(seed)
    G = Generator(**G_kwargs).to(device).train()
    D = Discriminator(**D_kwargs).to(device).train()
    return G, D, cfg


class SignatureRecorder:
    """Wraps bias_act.bias_act and upfirdn2d.upfirdn2d (module attributes: what the layers and the
    upsample2d/downsample2d helpers call) and hooks every submodule of the networks to know which layer calls.
    The wrapped calls run the reference implementation."""

    def __init__(self) -> None:
        self.records: dict[OpSig, Recorded] = {}
        self._stack: list[str] = []
        self.taps_of: dict[int, tuple] = {}  # id(fake tensor) -> the values of the real one (small ones: filters)
        self._orig_bias_act = BA.bias_act
        self._orig_upfirdn2d = UD.upfirdn2d
        self._ba_sig = inspect.signature(BA.bias_act)
        self._ud_sig = inspect.signature(UD.upfirdn2d)

    # --- op wrappers -------------------------------------------------------------------------------
    def _add(self, sig: OpSig) -> None:
        rec = self.records.setdefault(sig, Recorded(sig))
        rec.count += 1
        rec.where.add(self._stack[-1] if self._stack else "?")

    def bias_act(self, *args, **kwargs):
        a = self._ba_sig.bind(*args, **kwargs)
        a.apply_defaults()
        x, b, act = a.arguments["x"], a.arguments["b"], a.arguments["act"]
        spec = BA.ACTIVATIONS.get(act)
        if spec is not None and isinstance(x, torch.Tensor) and x.ndim > 0:
            alpha, gain, clamp = a.arguments["alpha"], a.arguments["gain"], a.arguments["clamp"]
            self._add(OpSig(
                op="bias_act", shape=tuple(x.shape), dtype=_dtype_name(x.dtype), channels_last=_is_channels_last(x),
                dim=a.arguments["dim"] % x.ndim, act=act,
                alpha=float(spec.def_alpha if alpha is None else alpha),
                gain=float(spec.def_gain if gain is None else gain),
                clamp=-1.0 if clamp is None else float(clamp), has_bias=b is not None))
        a.arguments["impl"] = "ref"
        return self._orig_bias_act(*a.args, **a.kwargs)

    def upfirdn2d(self, *args, **kwargs):
        a = self._ud_sig.bind(*args, **kwargs)
        a.apply_defaults()
        x, f = a.arguments["x"], a.arguments["f"]
        if isinstance(x, torch.Tensor) and x.ndim == 4:
            taps: tuple = ()
            if f is not None:
                taps = self.taps_of.get(id(f), ())
                if not taps and type(f) is torch.Tensor:  # a real forward
                    taps = _nested_tuple(f.detach().cpu().tolist())
            self._add(OpSig(
                op="upfirdn2d", shape=tuple(x.shape), dtype=_dtype_name(x.dtype), channels_last=_is_channels_last(x),
                gain=float(a.arguments["gain"]), up=UD._parse_scaling(a.arguments["up"], "up"),
                down=UD._parse_scaling(a.arguments["down"], "down"),
                padding=UD._parse_padding(a.arguments["padding"]), flip_filter=bool(a.arguments["flip_filter"]),
                f_shape=tuple(f.shape) if f is not None else (), f_taps=taps))
        a.arguments["impl"] = "ref"
        return self._orig_upfirdn2d(*a.args, **a.kwargs)

    # --- layer tracking ----------------------------------------------------------------------------
    def _push(self, label: str) -> None:  # hooks must return None (a value would replace the input/output)
        self._stack.append(label)

    def _pop(self) -> None:
        self._stack.pop()

    @contextlib.contextmanager
    def track(self, net: torch.nn.Module, name: str) -> Iterator[None]:
        handles = []
        for m in net.modules():
            label = f"{name}.{type(m).__name__}"
            handles.append(m.register_forward_pre_hook(lambda mod, inp, label=label: self._push(label)))
            handles.append(m.register_forward_hook(lambda mod, inp, out: self._pop()))
        try:
            yield
        finally:
            for h in handles:
                h.remove()

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        with patched(BA, "bias_act", self.bias_act), patched(UD, "upfirdn2d", self.upfirdn2d):
            yield

    def sorted_records(self) -> list[Recorded]:
        order = {"bias_act": 0, "upfirdn2d": 1}
        return sorted(self.records.values(), key=lambda r: (order.get(r.sig.op, 9), r.sig.op,
                                                            -math.prod(r.sig.shape), r.sig.params_str(), r.sig.shape))


def _nested_tuple(v):
    return tuple(_nested_tuple(i) for i in v) if isinstance(v, list) else float(v)


def _forward_G_D(G: torch.nn.Module, D: torch.nn.Module, batch: int, device: torch.device,
                 rec: SignatureRecorder) -> None:
    z = torch.randn([batch, G.z_dim], device=device)
    c = torch.zeros([batch, G.c_dim], device=device)
    with rec.track(G, "G"):
        img = G(z, c)
    with rec.track(D, "D"):
        D(img, torch.zeros([batch, D.c_dim], device=device))


def record_signatures(size: int, batch: int | None = None, overrides: dict | None = None, dtype: str = "net",
                      device: torch.device | str = "cpu", fake: bool = True) -> tuple[list[Recorded], dict]:
    """The distinct bias_act / upfirdn2d calls of one G forward + one D forward (training mode) of the
    StyleGAN2 recipe at `size`, with their counts; and info ({'batch', 'mode', 'G_params', 'D_params', ...}).

    fake=True runs the forward on FakeTensors of `device` (exact shapes, dtypes and strides, no compute);
    if that fails (a private torch API), or with fake=False, a real forward under no_grad is run instead.
    """
    device = torch.device(device)
    G, D, cfg = build_networks(size, batch, overrides, dtype, device)
    info: dict[str, Any] = dict(size=size, batch=cfg.batch, channel_base=cfg.channel_base,
                                channel_max=cfg.channel_max, num_fp16_res=cfg.num_fp16_res, fp16_dtype=cfg.fp16_dtype,
                                G_params=sum(p.numel() for p in G.parameters()),
                                D_params=sum(p.numel() for p in D.parameters()))
    if fake:
        rec = SignatureRecorder()
        try:
            from torch._subclasses.fake_tensor import FakeTensorMode

            mode = FakeTensorMode()

            def to_fake(t: torch.Tensor) -> torch.Tensor:
                ft = mode.from_tensor(t)
                if t.numel() <= 256:  # the filters (and other small tensors): keep their values for the timing
                    rec.taps_of[id(ft)] = _nested_tuple(t.detach().cpu().tolist())
                return ft

            G._apply(to_fake)
            D._apply(to_fake)
            with mode, rec.active():
                _forward_G_D(G, D, cfg.batch, device, rec)
            info["mode"] = "fake tensors"
            return rec.sorted_records(), info
        except Exception as e:  # noqa: BLE001 - fall back to a real forward
            info["fake_error"] = one_line(e)
            G, D, cfg = build_networks(size, batch, overrides, dtype, device)
    rec = SignatureRecorder()
    with torch.no_grad(), rec.active():
        _forward_G_D(G, D, cfg.batch, device, rec)
    info["mode"] = "real forward"
    return rec.sorted_records(), info


# ==========================================================================================================
# 2. Per-op timing.


def compile_fn(fn: Callable, *, backend: str = "inductor", fullgraph: bool = True, dynamic: bool | None = None):
    """torch.compile (one place, so tests can watch what gets compiled)."""
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


# ==========================================================================================================
# 3. Whole training steps.


def phase_schedule(phases: Sequence[Any]) -> tuple[int, list[tuple[tuple[str, ...], int, int]]]:
    """(cycle length, [(due phase names, first iteration index in the cycle, occurrences per cycle)]).

    The cycle is the lcm of the phases' intervals; iteration i runs every phase with i % interval == 0."""
    cycle = 1
    for p in phases:
        cycle = math.lcm(cycle, max(1, int(p.interval)))
    groups: dict[tuple[str, ...], list[int]] = {}
    for i in range(cycle):
        due = tuple(p.name for p in phases if i % max(1, int(p.interval)) == 0)
        groups.setdefault(due, [i, 0])[1] += 1
    return cycle, [(due, first, n) for due, (first, n) in groups.items()]


def make_trainer(size: int, device: torch.device, batch: int | None = None, overrides: dict | None = None,
                 dtype: str = "net", workdir: str | Path | None = None):
    """A StyleGAN2 Trainer on synthetic data held in memory, as `stylegan_anime.bench.bench_model` builds it."""
    from stylegan_anime.bench import _Synthetic
    from stylegan_anime.models import get_recipe
    from stylegan_anime.training.config import TrainConfig
    from stylegan_anime.training.trainer import Trainer

    cfg0 = stylegan2_config(size, batch, overrides, dtype)
    over = {f.name: getattr(cfg0, f.name) for f in dataclasses.fields(cfg0)}
    mc = dataclasses.asdict(get_recipe("stylegan2").make_config(**over))
    workdir = Path(workdir or tempfile.mkdtemp(prefix="sga-bench-ops-"))
    cfg = TrainConfig(data="synthetic", size=size, model="stylegan2", batch_gpu=None, kimg=1e9, outdir=str(workdir),
                      amp="off", device=str(device), progress=False, metrics="", model_cfg=mc)
    data = _Synthetic(max(cfg.batch * 4, 64), size)
    return Trainer(cfg, workdir / "run", dataset=data)


@dataclass
class StepTiming:
    impl: str  # 'cuda' | 'ref' | 'compiled' | 'compiled-partial'
    ms: float | None  # per training iteration, averaged over the regularisation cycle
    reason: str = ""  # why n/a
    note: str = ""
    warmup_s: float | None = None  # warm-up wall-clock (includes compilation)
    per_due: dict[str, float] = field(default_factory=dict)  # '+'.join(due phases) -> ms


class _PhaseFallback:
    """Trainer.run_phase that runs a phase with the eager reference when it fails compiled (and remembers it)."""

    def __init__(self, trainer, eager_ctx: Callable[[], Any]):
        self.orig = trainer.run_phase
        self.eager_ctx = eager_ctx
        self.eager: dict[str, str] = {}  # phase name -> why it runs eager (the error, one line)
        self.double_backward: set[str] = set()  # phases that failed after asking for create_graph=True

    def __call__(self, phase, reals, labels):
        if phase.name in self.eager:
            with self.eager_ctx():
                return self.orig(phase, reals, labels)
        create_graph = []  # did this phase ask autograd for a differentiable gradient (R1, path length)?
        real_grad = torch.autograd.grad

        def spy(*args, **kwargs):
            if kwargs.get("create_graph"):
                create_graph.append(True)
            return real_grad(*args, **kwargs)

        try:
            with patched(torch.autograd, "grad", spy):
                return self.orig(phase, reals, labels)
        except Exception as e:  # noqa: BLE001 - e.g. double backward through a compiled function
            self.eager[phase.name] = one_line(e)
            if create_graph or any(m in str(e) for m in DOUBLE_BACKWARD_MARKERS):
                self.double_backward.add(phase.name)
            with self.eager_ctx():
                return self.orig(phase, reals, labels)


def _time_steps(trainer, device: torch.device, mode: str, warmup: int, repeats: int) -> tuple[float, float, dict]:
    """(ms per iteration over the cycle, warm-up seconds, {due set: ms})."""
    cycle, groups = phase_schedule(trainer.recipe.phases)
    sync(device)
    t_warm = time.perf_counter()
    if mode == "cycle":
        trainer.iteration = 0
        for _ in range(max(1, warmup) * cycle):
            trainer.step()
        sync(device)
        warm = time.perf_counter() - t_warm
        trainer.iteration = 0
        t0 = time.perf_counter()
        for _ in range(max(1, repeats) * cycle):
            trainer.step()
        sync(device)
        return (time.perf_counter() - t0) / (max(1, repeats) * cycle) * 1000, warm, {}
    for due, first, _ in groups:  # every due set once (compiles), then `warmup - 1` more
        for _ in range(max(1, warmup)):
            trainer.iteration = cycle + first
            trainer.step()
    sync(device)
    warm = time.perf_counter() - t_warm
    per_due, total = {}, 0.0
    for due, first, n in groups:
        times = []
        for _ in range(max(1, repeats)):
            trainer.iteration = cycle + first
            sync(device)
            t0 = time.perf_counter()
            trainer.step()
            sync(device)
            times.append(time.perf_counter() - t0)
        ms = statistics.median(times) * 1000
        per_due["+".join(due)] = ms
        total += ms * n
    return total / cycle, warm, per_due


def time_training_step(size: int, impl: str, device: torch.device, *, batch: int | None = None,
                       overrides: dict | None = None, dtype: str = "net", mode: str = "weighted", warmup: int = 2,
                       repeats: int = 3, backend: str = "inductor", cuda_reason: str | None | bool = False,
                       compile_dynamic: bool | None = False) -> list[StepTiming]:
    """One training-iteration time of the StyleGAN2 recipe with the ops of `impl` (rows: one, or for
    'compiled' two: all phases compiled, and compiled only in the phases where it works)."""
    if impl == "cuda":
        if cuda_reason is False:
            cuda_reason = cuda_unavailable_reason(device)
        if cuda_reason:
            return [StepTiming("cuda", None, reason=str(cuda_reason))]
    with tempfile.TemporaryDirectory(prefix="sga-bench-ops-") as tmp:
        try:
            if impl in ("cuda", "ref"):
                with default_impl(impl):
                    t = make_trainer(size, device, batch, overrides, dtype, tmp)
                    ms, warm, per_due = _time_steps(t, device, mode, warmup, repeats)
                return [StepTiming(impl, ms, warmup_s=warm, per_due=per_due)]
            if impl != "compiled":
                raise ValueError(f"unknown impl {impl!r}")
            return _time_compiled_step(size, device, batch, overrides, dtype, mode, warmup, repeats, backend,
                                       compile_dynamic, tmp)
        except Exception as e:  # noqa: BLE001
            return [StepTiming(impl, None, reason=one_line(e))]
        finally:
            torch._dynamo.reset()
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()


def _time_compiled_step(size, device, batch, overrides, dtype, mode, warmup, repeats, backend, dynamic,
                        tmp) -> list[StepTiming]:
    notes: set[str] = set()
    from torch._dynamo.utils import counters

    graphs_before = counters["stats"]["unique_graphs"]
    torch._dynamo.reset()
    with default_impl("ref"), compiled_reference(backend, dynamic=dynamic, notes=notes) as fns:
        orig_refs = {"bias_act": fns["bias_act"].fn, "upfirdn2d": fns["upfirdn2d"].fn}

        @contextlib.contextmanager
        def eager():
            with patched(BA, "_bias_act_ref", orig_refs["bias_act"]), \
                    patched(UD, "_upfirdn2d_ref", orig_refs["upfirdn2d"]):
                yield

        t = make_trainer(size, device, batch, overrides, dtype, tmp)
        fallback = _PhaseFallback(t, eager)
        t.run_phase = fallback  # Trainer.step looks it up on the instance
        ms, warm, per_due = _time_steps(t, device, mode, warmup, repeats)
    graphs = counters["stats"]["unique_graphs"] - graphs_before
    phase_names = [p.name for p in t.recipe.phases]
    extra = "; ".join(sorted(notes))
    if not fallback.eager:
        note = f"{graphs} graphs compiled" + (f"; {extra}" if extra else "")
        return [StepTiming("compiled", ms, note=note, warmup_s=warm, per_due=per_due)]
    eager_names = [n for n in phase_names if n in fallback.eager]
    first_reason = fallback.eager[eager_names[0]]
    errors = list(dict.fromkeys(fallback.eager[n] for n in eager_names))  # torch words it differently per graph
    if set(eager_names) <= fallback.double_backward:
        why = (f"phases {', '.join(eager_names)} need double backward (autograd.grad(create_graph=True)), which "
               f"fails through torch.compile'd functions: " + " / ".join(one_line(m, 110) for m in errors))
    elif len(errors) == 1:
        why = f"phases {', '.join(eager_names)} fail compiled: {first_reason}"
    else:
        why = "; ".join(f"phase {n} fails compiled: {fallback.eager[n]}" for n in eager_names)
    rows = [StepTiming("compiled", None, reason=why)]
    if len(eager_names) == len(phase_names):
        rows.append(StepTiming("compiled-partial", None, reason="every phase failed compiled: " + first_reason))
    else:
        compiled_names = [n for n in phase_names if n not in fallback.eager]
        note = (f"compiled in {', '.join(compiled_names)}; eager ref in {', '.join(eager_names)}; "
                f"{graphs} graphs compiled" + (f"; {extra}" if extra else ""))
        rows.append(StepTiming("compiled-partial", ms, note=note, warmup_s=warm, per_due=per_due))
    return rows


# How aot_autograd words a double backward it cannot do (with donated buffers on: at the create_graph=True
# backward already, as a donated-buffer error).
DOUBLE_BACKWARD_MARKERS = ("double backward", "create_graph=False")


def probe_compile_double_backward(backend: str = "inductor", device: torch.device | str = "cpu") -> str | None:
    """Does a torch.compile'd reference op survive double backward (what R1 / path length need)? None if it
    does, else the error (with torch's default settings, then with donated buffers off)."""
    device = torch.device(device)
    reasons = []
    for label, cfg in (("", {}), ("with donated_buffer=False: ", {"donated_buffer": False})):
        torch._dynamo.reset()
        try:
            import torch._functorch.config as fconf

            have = fconf.get_config_copy()
            with fconf.patch(**{k: v for k, v in cfg.items() if k in have}), \
                    compiled_reference(backend, dynamic=False), default_impl("ref"):
                x = torch.randn(2, 4, 8, 8, device=device, requires_grad=True)
                b = torch.randn(4, device=device, requires_grad=True)
                y = BA.bias_act(x, b, act="lrelu")
                (gx,) = torch.autograd.grad(y.square().sum(), x, create_graph=True)
                gx.square().sum().backward()
        except Exception as e:  # noqa: BLE001
            reasons.append(label + one_line(e, 200))
            continue
        finally:
            torch._dynamo.reset()
        if not label:
            return None
        return f"{reasons[0]} (it works with donated_buffer=False)"
    return " | ".join(reasons)


# ==========================================================================================================
# 4. Tables.


class Footnotes:
    def __init__(self) -> None:
        self.items: list[str] = []

    def ref(self, reason: str) -> str:
        if reason not in self.items:
            self.items.append(reason)
        return f"n/a[{self.items.index(reason) + 1}]"

    def lines(self) -> list[str]:
        return [f"  [{i + 1}] {r}" for i, r in enumerate(self.items)]


def format_columns(head: list[str], body: list[list[str]], right: set[int] | None = None) -> str:
    """Plain-text columns like stylegan_anime.bench.format_table (numbers right-aligned)."""
    right = right or set()
    widths = [max(len(x) for x in col) for col in zip(head, *body)]

    def line(cells):
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))]
        return "  ".join(cells).rstrip()

    return "\n".join([line(head), line(["-" * w for w in widths])] + [line(b) for b in body])


def _ms(v: float | None, notes: Footnotes, reason: str = "") -> str:
    if v is None:
        return notes.ref(reason or "not measured")
    return f"{v:.4f}" if v < 1 else f"{v:.3f}" if v < 100 else f"{v:.1f}"


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


OP_HEAD = ["op", "shape", "params", "n", "where", "cuda ms", "ref ms", "compiled ms", "cuda/ref", "cuda/compiled",
           "compiled/ref"]


def op_rows(size_rows: list[dict]) -> tuple[list[list[str]], list[str]]:
    """Table body (ops of one size, then its weighted total) and footnotes."""
    notes = Footnotes()
    body = []
    for r in size_rows:
        ms, why = r["ms"], r["reasons"]
        cells = [_ms(ms.get(i), notes, why.get(i, "")) if i in ms else "-" for i in IMPLS]
        body.append([r["op"], r["shape"], r["params"], str(r["count"]), r["where"], *cells,
                     _ratio(ms.get("ref"), ms.get("cuda")), _ratio(ms.get("compiled"), ms.get("cuda")),
                     _ratio(ms.get("ref"), ms.get("compiled"))])
    return body, notes.lines()


def weighted_totals(size_rows: list[dict]) -> dict[str, float | None]:
    """sum(ms x occurrences) per impl; None when any signature is n/a for it."""
    out: dict[str, float | None] = {}
    for impl in IMPLS:
        vals = [(r["ms"].get(impl), r["count"]) for r in size_rows if impl in r["ms"]]
        if vals:
            out[impl] = None if any(v is None for v, _ in vals) else sum(v * n for v, n in vals)
    return out


STEP_HEAD = ["size", "batch", "ops", "ms/iter", "s/kimg", "img/s", "vs ref", "warm-up s", "note"]


def step_body(rows: list[dict]) -> tuple[list[list[str]], list[str]]:
    notes = Footnotes()
    ref_ms = {r["size"]: r["ms"] for r in rows if r["impl"] == "ref"}
    body = []
    for r in rows:
        ms = r["ms"]
        per_img = ms / r["batch"] if ms else None
        body.append([str(r["size"]), str(r["batch"]), r["impl"], _ms(ms, notes, r["reason"]),
                     f"{per_img:.3f}" if per_img else "-", f"{1000 / per_img:.1f}" if per_img else "-",
                     _ratio(ref_ms.get(r["size"]), ms), f"{r['warmup_s']:.1f}" if r["warmup_s"] is not None else "-",
                     r["note"]])
    return body, notes.lines()


TARGET_OP_SPEEDUP = 3.0  # issue #4: each fused op >= 3x the eager reference (on an H100)


def target_summary(op_rows_all: list[dict], step_rows: list[dict]) -> list[str]:
    """Lines checking issue #4's targets against what was measured (nothing is claimed for n/a cells)."""
    lines = []
    for size in sorted({r["size"] for r in op_rows_all}):
        rows = [r for r in op_rows_all if r["size"] == size]
        pairs = [(r["ms"]["ref"] / r["ms"]["cuda"], r) for r in rows
                 if r["ms"].get("cuda") and r["ms"].get("ref")]
        if not pairs:
            why = next((r["reasons"].get("cuda") for r in rows if r["reasons"].get("cuda")), "cuda not timed")
            lines.append(f"{size} px ops: not checked (cuda n/a: {why})")
            continue
        ok = sum(1 for ratio, _ in pairs if ratio >= TARGET_OP_SPEEDUP)
        worst, wr = min(pairs, key=lambda p: p[0])
        totals = weighted_totals(rows)
        tot = (f"; weighted total {totals['ref'] / totals['cuda']:.2f}x" if totals.get("ref") and totals.get("cuda")
               else "")
        lines.append(f"{size} px ops: {ok}/{len(pairs)} signatures have cuda >= {TARGET_OP_SPEEDUP:g}x ref; slowest "
                     f"{worst:.2f}x ({wr['op']} {wr['shape']} {wr['params']}){tot}")
    for size in sorted({r["size"] for r in step_rows}):
        by = {r["impl"]: r for r in step_rows if r["size"] == size}
        cuda = by.get("cuda", {}).get("ms")
        comp = by.get("compiled", {}).get("ms")
        label = "compiled"
        if comp is None and by.get("compiled-partial", {}).get("ms"):
            comp, label = by["compiled-partial"]["ms"], "compiled-partial (the all-compiled step is n/a)"
        if cuda is None or comp is None:
            def state(impl, ms):
                return "not timed" if impl not in by else "n/a" if ms is None else "timed"

            lines.append(f"{size} px step: not checked (cuda {state('cuda', cuda)}, compiled "
                         f"{state('compiled', comp)})")
        else:
            verdict = "faster" if cuda < comp else "NOT faster"
            lines.append(f"{size} px step: cuda {cuda:.1f} ms vs {label} {comp:.1f} ms: {verdict} ({comp / cuda:.2f}x)")
    return lines


# ==========================================================================================================
# CLI.

EPILOG = """\
examples:
  python tools/bench_ops.py                         # GPU: auto preset at 64 and 128 px, batch 32, all impls
  python tools/bench_ops.py --quick                 # tiny widths/shapes, few repeats: a smoke test on a CPU
  python tools/bench_ops.py --sizes 64 --batch 4    # a CPU-sized run of the full preset
  python tools/bench_ops.py --sizes 128 --no-step --dtype float16 --channels-last
  python tools/bench_ops.py --no-ops --step-mode cycle --json steps.json
  python tools/bench_ops.py --impls ref,compiled --compile-backend aot_eager

Per-op times are ms per forward+backward call (median of --repeats); "n" = occurrences per G+D forward;
cuda/ref etc. are speedups. Step times are ms per training iteration averaged over the lazy-regularisation
cycle (every pl_interval / r1_interval iterations); s/kimg = seconds per thousand images.
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit code 2, no usage dump
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="tools/bench_ops.py", description=__doc__.split("\n\n")[0],
                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="64,128", help="comma-separated resolutions (64, 128) [64,128]")
    p.add_argument("--batch", type=int, default=None,
                   help=f"batch per forward pass [the preset's: 32; --quick: {QUICK_BATCH}]")
    p.add_argument("--dtype", default="net", help="net (each op in the dtype the network runs it: the preset's "
                   "reduced-precision layers; float16 falls back to float32 on a CPU), float32 (no reduced "
                   "precision: num_fp16_res=0), float16 or bfloat16 (every op cast to it; the step's reduced-"
                   "precision layers use it) [net]")
    p.add_argument("--channels-last", action="store_true", help="time the 4-D ops in channels_last memory format "
                   "(per-op only: the recipe has no channels_last option)")
    p.add_argument("--impls", default=",".join(IMPLS), help=f"comma-separated subset of {','.join(IMPLS)}")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:N [auto]")
    p.add_argument("--no-ops", action="store_true", help="skip the per-op timing")
    p.add_argument("--no-step", action="store_true", help="skip the training-step timing")
    p.add_argument("--warmup", type=int, default=None, help="warm-up calls per op [GPU 3, CPU 2, --quick 1]")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed repeats per op (median) [GPU 7, CPU 5, --quick 3]")
    p.add_argument("--min-time", type=float, default=None,
                   help="seconds each timed repeat of an op lasts at least [GPU 0.02, CPU 0.01, --quick 0.001]")
    p.add_argument("--step-mode", choices=("weighted", "cycle"), default="weighted",
                   help="weighted: each due-phase set timed on its own, weighted by its share of the cycle; "
                   "cycle: consecutive whole regularisation cycles [weighted]")
    p.add_argument("--step-warmup", type=int, default=None, help="warm-up steps per due set (cycles in cycle mode) "
                   "[GPU 2, CPU and --quick 1]")
    p.add_argument("--step-repeats", type=int, default=None,
                   help="timed steps per due set (median; cycles in cycle mode) [GPU 3, CPU and --quick 1]")
    p.add_argument("--compile-backend", default=None,
                   help="torch.compile backend [inductor; --quick: aot_eager, which traces like inductor (dynamo + "
                   "aot_autograd, so the same double-backward limits) but generates no code]")
    p.add_argument("--compile-dynamic", action="store_true",
                   help="compile the training step's reference ops with automatic dynamic shapes (dynamic=None) "
                   "instead of one static graph per shape; on torch 2.13 + inductor (CPU) that trips an "
                   "assert_size_stride error in _upfirdn2d_ref (then reported as n/a)")
    p.add_argument("--channel-base", type=int, default=None, help="override the preset's channel_base")
    p.add_argument("--channel-max", type=int, default=None, help="override the preset's channel_max")
    p.add_argument("--real-forward", action="store_true",
                   help="record the shapes with a real forward pass instead of fake tensors")
    tiny = ", ".join(f"{k}={v}" for k, v in QUICK_OVERRIDES.items())
    p.add_argument("--quick", action="store_true", help=f"tiny widths ({tiny}), batch {QUICK_BATCH}, few repeats")
    p.add_argument("--json", metavar="PATH", default=None, help="also write every row (and the environment) as JSON")
    return p


@dataclass
class Options:
    sizes: list[int]
    batch: int | None
    dtype: str
    channels_last: bool
    impls: list[str]
    device: torch.device
    overrides: dict
    warmup: int
    repeats: int
    min_time: float
    step_mode: str
    step_warmup: int
    step_repeats: int
    backend: str
    compile_dynamic: bool
    run_ops: bool
    run_step: bool
    fake: bool
    json_path: str | None


def parse_options(argv: Sequence[str] | None) -> Options:
    a = build_parser().parse_args(argv)
    sizes = []
    for s in a.sizes.split(","):
        s = s.strip()
        if not s:
            continue
        try:
            v = int(s)
        except ValueError:
            raise UsageError(f"--sizes: {s!r} is not a number; choose from {', '.join(map(str, SIZES))}") from None
        if v not in SIZES:
            raise UsageError(f"--sizes: unknown size {v}; choose from {', '.join(map(str, SIZES))}")
        if v not in sizes:
            sizes.append(v)
    if not sizes:
        raise UsageError("--sizes: give at least one size")
    if a.dtype not in ("net", *DTYPES):
        raise UsageError(f"--dtype: unknown dtype {a.dtype!r}; choose from net, {', '.join(DTYPES)}")
    impls = [i.strip() for i in a.impls.split(",") if i.strip()]
    bad = [i for i in impls if i not in IMPLS]
    if bad or not impls:
        raise UsageError(f"--impls: unknown {', '.join(bad) or '(none)'}; choose from {', '.join(IMPLS)}")
    if a.batch is not None and a.batch < 1:
        raise UsageError(f"--batch must be positive, got {a.batch}")
    for name in ("warmup", "step_warmup"):
        if getattr(a, name) is not None and getattr(a, name) < 0:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(a, name)}")
    for name in ("repeats", "step_repeats", "channel_base", "channel_max"):
        if getattr(a, name) is not None and getattr(a, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be positive, got {getattr(a, name)}")
    if a.min_time is not None and a.min_time < 0:
        raise UsageError(f"--min-time must be >= 0, got {a.min_time}")
    if a.no_ops and a.no_step:
        raise UsageError("--no-ops and --no-step leave nothing to do")
    overrides = dict(QUICK_OVERRIDES) if a.quick else {}
    if a.channel_base is not None:
        overrides["channel_base"] = a.channel_base
    if a.channel_max is not None:
        overrides["channel_max"] = a.channel_max
    q = a.quick
    device = resolve_device(a.device)
    cpu = device.type == "cpu"  # a CPU run is a try-out: fewer repeats (the compiles dominate anyway)
    return Options(
        sizes=sizes, batch=a.batch if a.batch is not None else (QUICK_BATCH if q else None), dtype=a.dtype,
        channels_last=a.channels_last, impls=[i for i in IMPLS if i in impls], device=device,
        overrides=overrides, warmup=a.warmup if a.warmup is not None else (1 if q else 2 if cpu else 3),
        repeats=a.repeats or (3 if q else 5 if cpu else 7),
        min_time=a.min_time if a.min_time is not None else (0.001 if q else 0.01 if cpu else 0.02),
        step_mode=a.step_mode, step_warmup=a.step_warmup if a.step_warmup is not None else (1 if q or cpu else 2),
        step_repeats=a.step_repeats or (1 if q or cpu else 3),
        backend=a.compile_backend or ("aot_eager" if q else "inductor"), compile_dynamic=a.compile_dynamic,
        run_ops=not a.no_ops,
        run_step=not a.no_step, fake=not a.real_forward, json_path=a.json)


def environment(device: torch.device) -> dict:
    env = {"torch": torch.__version__, "python": platform.python_version(), "device": str(device),
           "cuda": torch.version.cuda, "command": "python tools/bench_ops.py"}
    if device.type == "cuda":
        idx = device.index if device.index is not None else torch.cuda.current_device()
        major, minor = torch.cuda.get_device_capability(idx)
        env["gpu"] = f"{torch.cuda.get_device_name(idx)} (sm_{major}{minor})"
    else:
        env["cpu"] = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    return env


def run(opts: Options, out=None, argv: Sequence[str] | None = None) -> dict:
    """Run the benchmark, print the tables to `out` (default: sys.stdout), return everything as a JSON-able dict."""
    def say(text: str = "") -> None:
        print(text, file=out or sys.stdout, flush=True)

    env = environment(opts.device)
    if argv is not None:
        env["command"] = "python tools/bench_ops.py" + ("".join(" " + shlex.quote(a) for a in argv))
    result: dict[str, Any] = {"environment": env, "ops": [], "op_totals": [], "steps": [], "signature_info": [],
                              "notes": []}
    say(f"# {env['command']}")
    say(f"# torch {env['torch']}, python {env['python']}, device {env.get('gpu') or env.get('cpu')}")
    if "compiled" in opts.impls:
        env["compiled"] = (f"torch.compile(backend={opts.backend!r}) of the reference; per op: fullgraph, static "
                           f"shapes; step: {'automatic dynamic' if opts.compile_dynamic else 'static'} shapes")
        say(f"# compiled = {env['compiled']}")
    if "cuda" in opts.impls and opts.device.type == "cuda":
        say("# building / loading the CUDA ops (the first build takes a minute or two) ...")
    cuda_reason = cuda_unavailable_reason(opts.device) if "cuda" in opts.impls else None
    if "cuda" in opts.impls and opts.device.type == "cuda":
        say(f"# cuda ops: {'n/a: ' + cuda_reason if cuda_reason else 'loaded'}")

    compile_notes: set[str] = set()
    timed: dict[OpSig, OpTiming] = {}  # a signature shared by two sizes is timed once
    for size in opts.sizes:
        if not opts.run_ops:
            break
        records, info = record_signatures(size, opts.batch, opts.overrides, opts.dtype, opts.device, fake=opts.fake)
        result["signature_info"].append(info)
        n_ba = sum(r.count for r in records if r.sig.op == "bias_act")
        n_ud = sum(r.count for r in records if r.sig.op == "upfirdn2d")
        say()
        say(f"## ops at {size} px: batch {info['batch']}, channel_base {info['channel_base']}, channel_max "
            f"{info['channel_max']}, num_fp16_res {info['num_fp16_res']} ({info['fp16_dtype']}); one G+D forward = "
            f"{n_ba} bias_act + {n_ud} upfirdn2d calls, {len(records)} distinct (recorded with {info['mode']})")
        say("   ms per forward+backward call; n = occurrences per G+D forward"
            + ("; a signature met at an earlier size shows that timing" if size != opts.sizes[0] else ""))
        size_rows = []
        for rec in records:
            sig = rec.sig.with_layout(DTYPES.get(opts.dtype), True if opts.channels_last else None)
            if sig not in timed:
                timed[sig] = time_op(sig, opts.impls, opts.device, warmup=opts.warmup, repeats=opts.repeats,
                                     min_time=opts.min_time, backend=opts.backend, notes=compile_notes,
                                     cuda_reason=cuda_reason)
            t = timed[sig]
            size_rows.append(dict(size=size, op=sig.op, shape=sig.shape_str(), params=sig.params_str(),
                                  count=rec.count, where=rec.where_str(), ms=t.ms, reasons=t.reasons,
                                  signature={k: v for k, v in dataclasses.asdict(sig).items() if k != "f_taps"}))
        body, notes = op_rows(size_rows)
        totals = weighted_totals(size_rows)
        tot_notes = Footnotes()
        tot_cells = [("-" if i not in totals else _ms(totals[i], tot_notes, "a signature is n/a")) for i in IMPLS]
        body.append(["weighted total", "", "", str(sum(r["count"] for r in size_rows)), "", *tot_cells,
                     _ratio(totals.get("ref"), totals.get("cuda")), _ratio(totals.get("compiled"), totals.get("cuda")),
                     _ratio(totals.get("ref"), totals.get("compiled"))])
        say(format_columns(OP_HEAD, body, right={3, 5, 6, 7, 8, 9, 10}))
        for line in notes:
            say(line)
        if any(v is None for v in totals.values()):
            say("  (weighted total n/a: a signature is n/a in that column)")
        result["ops"].extend({k: v for k, v in r.items()} for r in size_rows)
        result["op_totals"].append(dict(size=size, batch=info["batch"], ms=totals))
    if compile_notes:
        say()
        for n in sorted(compile_notes):
            say(f"note: {n}")
        result["notes"].extend(sorted(compile_notes))

    if opts.run_step:
        say()
        steps_impls = list(opts.impls)
        rows = []
        for size in opts.sizes:
            cfg = stylegan2_config(size, opts.batch, opts.overrides, opts.dtype)
            for impl in steps_impls:
                for st in time_training_step(size, impl, opts.device, batch=opts.batch, overrides=opts.overrides,
                                             dtype=opts.dtype, mode=opts.step_mode, warmup=opts.step_warmup,
                                             repeats=opts.step_repeats, backend=opts.backend, cuda_reason=cuda_reason,
                                             compile_dynamic=None if opts.compile_dynamic else False):
                    rows.append(dict(size=size, batch=cfg.batch, impl=st.impl, ms=st.ms, reason=st.reason,
                                     note=st.note, warmup_s=st.warmup_s, per_due=st.per_due))
        cfg = stylegan2_config(opts.sizes[0], opts.batch, opts.overrides, opts.dtype)
        say(f"## training step (StyleGAN2 {cfg.preset}: G, Greg every {cfg.pl_interval}, D, Dreg every "
            f"{cfg.r1_interval}; num_fp16_res {cfg.num_fp16_res} ({cfg.fp16_dtype}); "
            f"{'averaged over the regularisation cycle' if opts.step_mode == 'weighted' else 'whole cycles timed'})")
        body, notes = step_body(rows)
        say(format_columns(STEP_HEAD, body, right={3, 4, 5, 6, 7}))
        for line in notes:
            say(line)
        result["steps"] = rows
        if "compiled" in opts.impls:
            probe = probe_compile_double_backward(opts.backend, opts.device)
            msg = ("torch.compile'd reference survives double backward" if probe is None
                   else f"torch.compile'd reference and double backward (R1, path length): {probe}")
            say(f"note: {msg}")
            result["notes"].append(msg)
    summary = target_summary(result["ops"], result["steps"])
    if summary:
        say()
        say("## issue #4 targets (meant for an H100)")
        for line in summary:
            say(f"  {line}")
        result["targets"] = summary
    if opts.json_path:
        Path(opts.json_path).write_text(json.dumps(result, indent=2, default=str) + "\n")
        say(f"\nwrote {opts.json_path}")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        opts = parse_options(argv)
    except UsageError as e:
        print(f"error: {one_line(str(e), 300)}", file=sys.stderr)
        return 2
    except SystemExit as e:  # --help
        return int(e.code or 0)
    try:
        run(opts, argv=argv)
    except KeyboardInterrupt:
        print("aborted", file=sys.stderr)
        return 130
    except (UsageError, ValueError, OSError) as e:
        print(f"error: {one_line(e, 300)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
