"""First-step sanity: after the first training iteration of a process, the losses and gradients are finite, and
the log says which implementation of each custom op ran (and in which dtypes) and which dtype each block used.

The trainer arms it once, before its loop (`watch_first_step(trainer)`): the next `trainer.step()` runs with
op-usage counting on (`cuda_ops.backend.record_usage`), forward hooks on every network and on every block
that has a precision of its own (a `use_fp16` attribute: StyleGAN2's synthesis and discriminator blocks), and
a look at each phase's loss and gradients; then everything is removed again, so later steps cost nothing.

On by default on CUDA only (where the fused ops and reduced precision run for the first time); on a CPU with
`STYLEGAN_ANIME_SANITY=1`, never with `STYLEGAN_ANIME_SANITY=0`. A non-finite loss, or a non-finite gradient
that no GradScaler accounts for, raises `FirstStepError` with the report (the first thing to compare is
`--ops ref`). A GradScaler's first steps may overflow; that is noted, not an error.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any

import torch

ENV = "STYLEGAN_ANIME_SANITY"
PREFIX = "first step: "


class FirstStepError(RuntimeError):
    """The first training iteration produced a non-finite loss or gradient."""


@dataclasses.dataclass
class FirstStepReport:
    ops: dict[tuple[str, str, str], int] = dataclasses.field(default_factory=dict)  # (op, impl, dtype): calls
    blocks: dict[str, set[str]] = dataclasses.field(default_factory=dict)  # "G synthesis.b64": {"float16"}
    losses: dict[str, list[float]] = dataclasses.field(default_factory=dict)  # phase: loss per round
    grads: dict[str, str] = dataclasses.field(default_factory=dict)  # phase: "finite" | what went wrong
    problems: list[str] = dataclasses.field(default_factory=list)

    def lines(self) -> list[str]:
        """What the log says, one topic per line."""
        out = []
        per_op: dict[str, list[str]] = {}
        for (op, impl, dtype), n in sorted(self.ops.items()):
            per_op.setdefault(op, []).append(f"{impl} {dtype} x{n}")
        out.append("ops: " + ("; ".join(f"{op} {', '.join(v)}" for op, v in per_op.items())
                              if per_op else "no custom op ran"))
        nets: dict[str, list[str]] = {}
        for name, dtypes in self.blocks.items():
            net, _, block = name.partition(" ")
            nets.setdefault(net, []).append(f"{block or 'output'} {'/'.join(sorted(dtypes))}")
        out.append("dtypes: " + ("; ".join(f"{net}: {', '.join(v)}" for net, v in nets.items()) or "none seen"))
        out.append("losses: " + (", ".join(f"{k} {_fmt(v)}" for k, v in self.losses.items()) or "none"))
        out.append("gradients: " + (", ".join(f"{k} {v}" for k, v in self.grads.items()) or "none"))
        return [PREFIX + line for line in out]


def _fmt(values: list[float]) -> str:
    return "/".join(f"{v:.4g}" for v in values)


def enabled(device: torch.device) -> bool:
    flag = os.environ.get(ENV, "").strip()
    if flag in ("0", "1"):
        return flag == "1"
    return device.type == "cuda"


def _first_tensor(out: Any) -> torch.Tensor | None:
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)):
        for item in out:
            t = _first_tensor(item)
            if t is not None:
                return t
    if isinstance(out, dict):
        return _first_tensor(list(out.values()))
    return None


def _hook_dtypes(nets: dict[str, torch.nn.Module], report: FirstStepReport) -> list:
    """Forward hooks recording the output dtype of each network and of each block with a precision setting."""
    handles = []
    for net_name, net in nets.items():
        for path, module in net.named_modules():
            if path and not hasattr(module, "use_fp16"):
                continue
            key = f"{net_name} {path}".rstrip()

            def hook(module, args, out, key=key):
                t = _first_tensor(out)
                if t is not None and t.is_floating_point():
                    report.blocks.setdefault(key, set()).add(str(t.dtype).replace("torch.", ""))

            handles.append(module.register_forward_hook(hook))
    return handles


def check_phase(trainer, phase, report: FirstStepReport) -> None:
    """Record whether the gradients `phase` left on its network are finite (called after run_phase)."""
    net = trainer.recipe.nets[phase.net]
    grads = [p.grad for p in net.parameters() if p.grad is not None]
    scaler = getattr(trainer, "scalers", {}).get(phase.net)
    scaled = scaler is not None and scaler.is_enabled()
    if grads and all(bool(torch.isfinite(g).all()) for g in grads):
        report.grads[phase.name] = "finite"
        return
    what = "non-finite" if grads else "dropped (non-finite: the step was skipped)"
    if scaled:
        report.grads[phase.name] = f"{what}, GradScaler overflow (its scale is lowered; normal in the first steps)"
    else:
        report.grads[phase.name] = what
        report.problems.append(f"{phase.name} gradients {what}")


def record_losses(phase_name: str, out: dict, report: FirstStepReport) -> None:
    loss = out.get("loss")
    if isinstance(loss, torch.Tensor):
        value = float(loss.detach().float())
        report.losses.setdefault(phase_name, []).append(value)
        if not torch.isfinite(torch.tensor(value)):
            report.problems.append(f"{phase_name} loss {value}")


def run_first_step(trainer) -> FirstStepReport:
    """trainer.step() once with everything watched; the report (problems listed, nothing raised)."""
    from ..cuda_ops import backend

    report = FirstStepReport()
    nets = dict(trainer.recipe.nets)
    handles = _hook_dtypes(nets, report)
    run_phase, record = trainer.run_phase, trainer._record
    own = {k: vars(trainer)[k] for k in ("run_phase", "_record") if k in vars(trainer)}  # wrappers of a caller

    def watched_phase(phase, *args, **kwargs):
        result = run_phase(phase, *args, **kwargs)
        check_phase(trainer, phase, report)
        return result

    def watched_record(phase_name, out):
        record_losses(phase_name, out, report)
        return record(phase_name, out)

    trainer.run_phase, trainer._record = watched_phase, watched_record
    backend.record_usage(True)
    try:
        trainer.step()
    finally:
        report.ops = backend.record_usage(False) or {}
        for h in handles:
            h.remove()
        for name in ("run_phase", "_record"):  # as they were: the class's methods or a caller's wrappers
            if name in own:
                setattr(trainer, name, own[name])
            else:
                delattr(trainer, name)
    return report


def write(trainer, lines: list[str]) -> None:
    monitor = getattr(trainer, "monitor", None)
    for line in lines:
        if monitor is not None:
            monitor.write(line)
        elif getattr(getattr(trainer, "dist", None), "is_main", True):
            import sys
            print(line, file=sys.stderr, flush=True)


def watch_first_step(trainer, force: bool | None = None) -> bool:
    """Make the trainer's next step() the watched first step (see the module docstring). Returns whether it
    was armed (force: True/False overrides `enabled`)."""
    if not (enabled(trainer.device) if force is None else force):
        return False
    step = trainer.step

    def first_step() -> None:
        del trainer.step  # later steps: the class's method, untouched
        report = run_first_step(trainer)
        write(trainer, report.lines())
        if report.problems:
            raise FirstStepError(
                "the first training iteration is not finite: " + "; ".join(report.problems)
                + ". Compare with --ops ref (the reference ops) and --amp off; the report above says which "
                  "implementation each op used and which dtype each block ran in")

    del step
    trainer.step = first_step
    return True
