"""Whole training steps: the real `Trainer.step()` (all phases, lazy regularisation) with each impl, averaged over
the regularisation cycle; a phase that fails compiled (double backward: R1, path length) reruns eager."""
from __future__ import annotations

import contextlib
import dataclasses
import gc
import math
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from .common import BA, UD, default_impl, one_line, patched, sync
from .shapes import stylegan2_config
from .timing import compiled_reference, cuda_unavailable_reason


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
    """A StyleGAN2 Trainer on synthetic data held in memory, as `stylegan_anime.benchmarks.training.bench_model` builds it."""
    from stylegan_anime.benchmarks.training import _Synthetic
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
