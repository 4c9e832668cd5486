"""CPU speed levers and the measurements behind them (issue #22), A/B by tools/bench_cpu.py (numbers in
docs/benchmarks.md). The levers that paid are defaults elsewhere: channels_last is the StyleGAN2 recipe's
`channels_last` field (on a CPU; `to_channels_last` below does it), bfloat16 blocks the `cpu` preset's
`fp16_dtype`, the fused CPU kernels `train --ops auto` on a CPU (cuda_ops.backend.prefer_cpu_kernels), the
regrouped demodulation stylegan2/layers.py. The rest stay opt-in functions here:

    cpu_peak()                 the core's peak GFLOP/s in fp32 and bf16, from /proc/cpuinfo (flags and clock)
    FlopCounter                FLOPs of matmuls and convolutions (forward, backward, double backward) of a block
                               of code, counted per aten op (torch.utils.flop_counter's formulas, without its
                               module tracker, which trips over autograd.grad)
    use_channels_last(t)       a Trainer's networks (G, D, G_ema) with 4-D weights in channels_last
    compile_forward(t)         torch.compile (inductor, C++ on a CPU) of G's synthesis and D's forward for the phases
                               without a double backward (G, D); Greg/Dreg stay eager
    use_fused_modconv(t)       G's modulated convolutions as grouped convolutions in training too
    set_threads(n)             intra-op threads for torch (and the OpenMP pool)
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import re
from collections import defaultdict
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

# ---------------------------------------------------------------------------------------------------------
# The core's peak.


@dataclasses.dataclass
class CpuPeak:
    model: str
    ghz: float  # the clock /proc/cpuinfo reports (the nominal clock under a hypervisor; turbo not seen)
    fp32_flop_per_cycle: int
    bf16_flop_per_cycle: int  # AVX-512 BF16 dot products (vdpbf16ps)
    amx_bf16_flop_per_cycle: int  # AMX tiles (tdpbf16ps); 0 without amx_bf16
    how: str

    @property
    def fp32_gflops(self) -> float:
        return self.fp32_flop_per_cycle * self.ghz

    @property
    def bf16_gflops(self) -> float:
        return self.bf16_flop_per_cycle * self.ghz

    @property
    def amx_gflops(self) -> float:
        return self.amx_bf16_flop_per_cycle * self.ghz


def cpu_peak(cpuinfo: str | None = None) -> CpuPeak:
    """Peak FLOP rate of one core from /proc/cpuinfo (or the text given): vector width x FMA units x 2 x clock.

    AVX-512 server cores (Intel Xeon Skylake-SP and later with two 512-bit FMA ports; AMD Zen 4 runs 512-bit
    ops as two 256-bit halves on its 4 FP pipes, 2 of them FMA: the same 32 fp32 FMAs per cycle): 32 fp32 FMA
    = 64 FLOP per cycle. avx512_bf16's vdpbf16ps does 2 bf16 products per fp32 lane: 128 FLOP per cycle. AMX
    (amx_bf16): one tdpbf16ps (16x16x32 = 8192 multiply-adds) per 16 cycles = 1024 FLOP per cycle. AVX2 + FMA
    without AVX-512: 2 x 8 fp32 FMA = 32 FLOP per cycle, bf16 none faster (16 bf16 products via fp32: 32).
    """
    text = cpuinfo if cpuinfo is not None else Path("/proc/cpuinfo").read_text()
    flags = set()
    model, mhz = "unknown", 0.0
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "flags" and not flags:
            flags = set(value.split())
        elif key == "model name" and model == "unknown":
            model = value.strip()
        elif key == "cpu MHz" and not mhz:
            mhz = float(value)
    ghz = mhz / 1000 if mhz else float("nan")
    if "avx512f" in flags:
        fp32 = 64
        how = "AVX-512: 2 FMA units x 16 fp32 lanes x 2 FLOP"
    elif "fma" in flags and "avx2" in flags:
        fp32 = 32
        how = "AVX2: 2 FMA units x 8 fp32 lanes x 2 FLOP"
    else:
        fp32 = 8
        how = "SSE: 4 lanes x 2 FLOP (no FMA)"
    bf16 = 2 * fp32 if "avx512_bf16" in flags else fp32
    amx = 1024 if "amx_bf16" in flags else 0
    how += (f"; bf16 {'2x via avx512_bf16' if bf16 > fp32 else 'no faster'}"
            f"{'; AMX-BF16 1024 FLOP/cycle' if amx else ''}; clock {mhz:.0f} MHz from /proc/cpuinfo")
    return CpuPeak(model, ghz, fp32, bf16, amx, how)


# ---------------------------------------------------------------------------------------------------------
# FLOPs.


class FlopCounter(TorchDispatchMode):
    """Counts matmul and convolution FLOPs (a multiply-add = 2) of every aten op run inside, double backward
    included, by op; `total`. Element-wise ops are not counted (they are memory-bound, not FLOP-bound)."""

    def __init__(self):
        super().__init__()
        from torch.utils.flop_counter import flop_registry
        self._registry = flop_registry
        self.by_op: dict[str, int] = defaultdict(int)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        fn = self._registry.get(func._overloadpacket)
        if fn is not None:
            self.by_op[str(func._overloadpacket).split(".")[-1]] += int(fn(*args, **kwargs, out_val=out))
        return out

    @property
    def total(self) -> int:
        return sum(self.by_op.values())


# ---------------------------------------------------------------------------------------------------------
# Levers.


def set_threads(n: int) -> None:
    """torch's intra-op threads (its OpenMP pool); inter-op work in this loop is nil."""
    torch.set_num_threads(int(n))


def to_channels_last(module: torch.nn.Module) -> None:
    """Every 4-D parameter and buffer of `module` in channels_last (NHWC), in place."""
    with torch.no_grad():
        for t in list(module.parameters()) + list(module.buffers()):
            if t.ndim == 4:
                t.data = t.data.contiguous(memory_format=torch.channels_last)


def use_channels_last(trainer) -> None:
    """Every 4-D weight of G, D and G_ema in channels_last (NHWC), so that oneDNN's convolutions run in its
    native blocked layout and their outputs stay NHWC; the numbers do not change (a memory layout only). Call
    before the first step (Adam's moments take the weights' layout when they are created)."""
    for net in list(trainer.recipe.nets.values()) + [trainer.G_ema]:
        to_channels_last(net)


def use_fused_modconv(trainer, min_res: int = 32) -> None:
    """Training's G computes the modulated convolutions of its blocks at `min_res` px and above as one grouped
    convolution over per-sample weights (`fused_modconv=True`, what evaluation uses) instead of scaling the
    activations around the shared weight: the same function (tests/test_cpu_speed.py checks it in float64), and
    on a CPU the faster one at the `cpu` preset's widths from 32 px up (tools/bench_cpu.py modconv)."""
    synthesis = trainer.recipe.nets["G"].synthesis
    for res in synthesis.block_resolutions:
        if res >= min_res:
            block = getattr(synthesis, f"b{res}")
            block.forward = functools.partial(_fused_block, type(block).forward.__get__(block))


def _fused_block(forward, *args, fused_modconv=None, **kwargs):
    return forward(*args, fused_modconv=True if fused_modconv is None else fused_modconv, **kwargs)


LEVERS = ("channels_last", "fused_modconv", "compile")


def apply(trainer, levers: str | list[str]) -> list[str]:
    """Pull the named levers (a comma-separated string or a list, from LEVERS) on a freshly built Trainer, before
    its first step; returns them in the order applied. For a future `train --cpu-levers` flag: the trainer needs
    one line after it is built (`cpu_speed.apply(trainer, cfg.cpu_levers)`). ValueError naming an unknown one."""
    names = [n.strip() for n in (levers.split(",") if isinstance(levers, str) else levers) if n.strip()]
    bad = [n for n in names if n not in LEVERS]
    if bad:
        raise ValueError(f"unknown CPU lever(s) {', '.join(bad)}; choose from {', '.join(LEVERS)}")
    done = []
    for name in LEVERS:  # a fixed order: compile last, so that it traces the other levers' modules
        if name in names:
            {"channels_last": use_channels_last, "fused_modconv": use_fused_modconv,
             "compile": compile_forward}[name](trainer)
            done.append(name)
    return done


class _PhaseSwitch:
    """eager > 0 while a phase with a double backward runs: the modules then run eagerly."""

    def __init__(self):
        self.eager = 0
        self.calls = [0, 0]  # [compiled, eager] calls so far (tests read it)


def compile_forward(trainer, mode: str | None = None, dynamic: bool = False, backend: str = "inductor") -> None:
    """torch.compile (inductor; C++/OpenMP code on a CPU) of G.synthesis and D.forward, used by the phases
    without a double backward (G and D); Greg and Dreg (autograd.grad with create_graph, which aot_autograd
    does not support) run the same modules eagerly. The weights are shared, the state dict is unchanged; the
    numbers are eager's within float rounding (inductor fuses and reorders element-wise work). The first call
    of each phase compiles (tens of seconds on a CPU: tools/bench_cpu.py reports it)."""
    recipe = trainer.recipe
    switch = _PhaseSwitch()
    for module in (recipe.nets["G"].synthesis, recipe.nets["D"]):
        eager = type(module).forward.__get__(module)  # the class's forward, bound: no recursion into the router
        compiled = torch.compile(eager, mode=mode, dynamic=dynamic, backend=backend)
        module.forward = functools.partial(_route, switch, eager, compiled)  # module(...) calls this
    for phase in recipe.phases:
        if phase.name in ("Greg", "Dreg"):
            phase.loss = _eager_phase(phase.loss, switch)
    trainer.compiled_switch = switch


def _route(switch, eager, compiled, *args, **kwargs):
    switch.calls[bool(switch.eager)] += 1
    return (eager if switch.eager else compiled)(*args, **kwargs)


def _eager_phase(loss, switch):
    @functools.wraps(loss)
    def run(batch):
        switch.eager += 1
        try:
            return loss(batch)
        finally:
            switch.eager -= 1
    return run


__all__ = ["CpuPeak", "cpu_peak", "FlopCounter", "set_threads", "use_channels_last", "compile_forward", "use_fused_modconv", "apply", "LEVERS"]
