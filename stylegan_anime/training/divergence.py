"""When a run has diverged: the rules the trainer applies, and the error that stops it (exit code 3).

Two kinds of divergence, both checked at every scalar flush (--log) on every rank at the same iterations:

    skipped steps   NaN/inf gradients: the optimiser step is skipped (trainer.run_phase); cfg.max_skipped
                    iterations in a row with at least half of their steps skipped stop the run.
    explosion       the gradients stay finite but the networks blow up (DCGAN with --lr-g 1e6 --lr-d 1e6: weights
                    1e7, losses 1e15, not one step skipped). A run has EXPLODED when
                        a parameter or floating-point buffer of any network (G, D, G_ema ...) is NaN/inf, or
                        max |parameter| > STOP_WEIGHT (1e5), or
                        a mean loss since the last flush has |loss| > STOP_LOSS (1e8)
                    and it stops at once. Healthy runs stay far below: 0.4-kimg runs of DCGAN, DCGAN-tutorial,
                    WGAN, WGAN-GP (default and --dim 16) and StyleGAN2 (--preset cpu and tiny) measured max
                    |parameter| <= 1.1 for the baselines and <= 476 for StyleGAN2 (its mapping network stores weights
                    x100 for the 0.01 learning-rate multiplier; Adam moves a weight by about lr per step, so 1e5 is
                    out of reach of a sane lr), |loss| <= 45. One Adam step at lr 1e6 takes a weight to 1e6. Between
                    WARN (1e4) and the stop thresholds the run goes on with a warning.

A checkpoint is never written from an exploded state: the trainer checks again right before every save
(periodic, final, on Ctrl-C) and raises Diverged instead. Nothing is saved after the last good checkpoint.
NaN/inf mean losses alone are not an explosion: their steps were skipped and left the weights alone (the skip
counter's business; a periodic checkpoint in a streak of them is postponed).
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import torch

WARN = 1e4  # |mean loss| or max |parameter| above this (still finite): the "exploding" warning
STOP_WEIGHT = 1e5  # max |parameter| above this (or any NaN/inf parameter or buffer): exploded, the run stops
STOP_LOSS = 1e8  # |mean loss| above this: exploded, the run stops


@dataclass
class Health:
    """The size of a run's numbers at one moment: max |parameter| over every network (NaN when one is not
    finite, or a buffer is not), and the mean losses since the last flush ({'D': 0.7, 'G': 1.2})."""

    w_max: float
    losses: dict[str, float] = field(default_factory=dict)

    @property
    def exploded(self) -> str | None:
        """Why the run exploded, in words, or None (the rule: module docstring)."""
        if not math.isfinite(self.w_max):
            return "a weight is NaN/inf"
        big = {k: v for k, v in self.losses.items() if math.isfinite(v) and abs(v) > STOP_LOSS}
        if self.w_max > STOP_WEIGHT or big:
            losses = "".join(f", loss {k} {v:.3g}" for k, v in big.items())
            return (f"the networks exploded: max |weight| {self.w_max:.3g}{losses} (the run stops above "
                    f"{STOP_WEIGHT:g} for weights, {STOP_LOSS:g} for losses)")
        return None

    @property
    def huge(self) -> dict[str, float]:
        """The losses above WARN (finite), for the warning."""
        return {k: v for k, v in self.losses.items() if math.isfinite(v) and abs(v) > WARN}

    @property
    def warn(self) -> bool:
        return bool(self.huge) or not self.w_max <= WARN


def measure(nets: Iterable[torch.nn.Module], losses: dict[str, float] | None = None) -> Health:
    """Health of these networks: one multi-tensor max |w| over every parameter, and one finiteness check of the
    floating-point buffers (BatchNorm statistics); one host sync."""
    nets = list(nets)
    params = [p.detach() for net in nets for p in net.parameters()]
    buffers = [b.detach() for net in nets for b in net.buffers() if b.is_floating_point() and b.numel()]
    norms = [n.float() for n in torch._foreach_norm(params, ord=math.inf)] if params else [torch.zeros(())]
    w_max = torch.stack(norms).max()
    if buffers:
        bad = torch.stack([n.float() for n in torch._foreach_norm(buffers, ord=math.inf)]).isfinite().all().logical_not()
        w_max = torch.where(bad, torch.full_like(w_max, math.nan), w_max)
    return Health(float(w_max), dict(losses or {}))


def lr_flags(model: str, model_cfg: dict) -> str:
    """The learning-rate flags of this model with their values, from its recipe Config: '--lr-g 1e+06 and
    --lr-d 1e+06' (DCGAN), '--lr 0.0025' (StyleGAN2)."""
    from ..models import get_recipe  # noqa: PLC0415
    from .config import field_flag  # noqa: PLC0415

    fields = [f for f in dataclasses.fields(get_recipe(model).Config) if f.name == "lr" or f.name.startswith("lr_")]
    parts = [field_flag(f) + ("" if model_cfg.get(f.name) is None else f" {model_cfg[f.name]:g}") for f in fields]
    return " and ".join(parts) or "the learning rate"


class Diverged(Exception):
    """Training stopped: cfg.max_skipped iterations in a row had (at least half of) their optimiser steps skipped
    for non-finite gradients, or the networks exploded (`explosion`: why, see the module docstring). Nothing was
    saved over the last good checkpoint (`last_good`, None if none)."""

    def __init__(self, kimg: float, streak: int, last_good: Path | None, amp: str, *, explosion: str | None = None,
                 lr: str = "--lr, --lr-g, --lr-d", gamma: bool = True):
        last = f"last good checkpoint: {last_good if last_good is not None else 'none (diverged before the first one)'}"
        if explosion is not None:
            text = (f"training diverged at kimg {kimg:.2f}: {explosion}; nothing new was saved.\n"
                    f"lower the learning rate: start a new run with {lr} lowered"
                    f"{' (or a smaller --gamma)' if gamma else ''}.\n{last}")
        else:
            fp16 = ("fp16 overflow (--amp fp16 without a conv clamp: try --amp bf16)" if amp == "fp16" else
                    "with --amp fp16, overflow without a conv clamp (try --amp bf16)")
            text = (f"training diverged at kimg {kimg:.2f}: {streak} iterations in a row had at least half of their "
                    f"optimiser steps skipped for non-finite (NaN/inf) gradients; nothing new was saved.\n"
                    f"likely causes: a learning rate too high ({lr}), too strong a regulariser (--gamma), "
                    f"or {fp16}; start a new run with lower values.\n{last}")
        super().__init__(text)
        self.kimg, self.streak, self.last_good, self.explosion = kimg, streak, last_good, explosion


WARN_EVERY_S = 60.0  # skipped-step and exploding warnings: the first at once, then at most one a minute


class DivergenceWatch:
    """A trainer's divergence bookkeeping: the streak of iterations with at least half of their optimiser steps
    skipped, the console warnings (at once, then at most one a minute per kind), and the explosion rule. Every
    check runs on every rank at the same iterations, and every rank comes to the same answer."""

    def __init__(self, trainer):
        self.t = trainer
        self.streak: int | torch.Tensor = 0  # a device tensor on the fused path until streak_now reads it
        self.skipped_reported = 0  # skipped steps already reported on the console
        self.warned_at: dict[str, float] = {}  # kind of warning -> when it was last printed (clock)
        self.clock = time.monotonic  # tests replace it
        self.explosion: str | None = None  # why the networks count as exploded, else None

    def count(self, steps: int, skipped: int, skipped_device: torch.Tensor | None) -> None:
        """After an iteration of `steps` optimiser steps, `skipped` (+ `skipped_device`) of them skipped: the streak
        grows by one if at least half were skipped, else it is 0. No host sync on the fused path."""
        if not steps:
            return
        if skipped_device is not None:
            skipped = skipped_device + skipped
        self.streak = (self.streak + 1) * (2 * skipped >= steps)

    def streak_now(self) -> int:
        """Iterations in a row with at least half of their optimiser steps skipped (reading it syncs)."""
        if isinstance(self.streak, torch.Tensor):
            self.streak = int(self.streak.item())
        return self.streak

    def restart(self, skipped: int) -> None:
        """Training (re)starts: a resumed run reports only its own skips."""
        self.skipped_reported, self.streak = skipped, 0

    def warn_due(self, kind: str) -> bool:
        """A console warning of this kind now? The first at once, then at most one every WARN_EVERY_S."""
        if self.t.monitor is None:  # rank 0 alone writes
            return False
        now, last = self.clock(), self.warned_at.get(kind)
        if last is not None and now - last < WARN_EVERY_S:
            return False
        self.warned_at[kind] = now
        return True

    def check(self, values: dict[str, float]) -> bool:
        """At a scalar flush, on every rank (`values`: rank 0's flushed scalars, {} elsewhere): report skipped steps
        and explosions, and say whether the run diverged (the module's rules)."""
        if self.check_skipped():
            return True
        t = self.t
        health = self.health({k.split("/", 1)[1]: v for k, v in values.items() if k.startswith("Loss/")})
        if health.warn and not health.exploded and self.warn_due("exploding"):
            losses = "".join(f"loss {k} {v:.3g}, " for k, v in health.huge.items())
            t.monitor.write(f"warning: kimg {t.nimg / 1000:.2f}: training is exploding: {losses}max |weight| "
                            f"{health.w_max:.3g} (warned above {WARN:g}); likely a learning rate too high "
                            f"({lr_flags(t.cfg.model, t.cfg.model_cfg)})"
                            f"{' or --gamma' if 'gamma' in t.cfg.model_cfg else ''}")
        return self.agree_exploded(health)

    def health(self, losses: dict[str, float] | None = None) -> Health:
        """The weights of every network and the given mean losses (default: those since the last flush)."""
        t = self.t
        if losses is None:
            losses = t.monitor.losses() if t.monitor is not None else {}
        return measure([*t.recipe.nets.values(), t.G_ema], losses)

    def agree_exploded(self, health: Health) -> bool:
        """Did the run explode (on any rank: rank 0 alone sees the losses)? Remembers why, for the message."""
        from .distributed import any_rank  # noqa: PLC0415
        self.explosion = health.exploded
        return any_rank(self.explosion is not None, self.t.dist, self.t.device)

    def refuse_exploded(self, agree: bool = True) -> None:
        """Before a checkpoint: raise Diverged when the networks or losses exploded. `agree`: on every rank (one
        all-reduce); else this rank alone (rank 0 inside save)."""
        health = self.health()
        if self.agree_exploded(health) if agree else health.exploded is not None:
            self.explosion = health.exploded or self.explosion
            raise self.error()

    def check_skipped(self) -> bool:
        """Report skipped optimiser steps, and say whether the run diverged (cfg.max_skipped iterations in a row
        with at least half of their steps skipped; the gradients are all-reduced, so every rank agrees)."""
        t = self.t
        total, streak = t.skipped, self.streak_now()
        new = total - self.skipped_reported
        if new > 0 and self.warn_due("skipped"):
            row = ""
            if streak:
                limit = f" (the run stops at {t.cfg.max_skipped}, --max-skipped)" if t.cfg.max_skipped else ""
                row = f"; {streak} iteration{'s' * (streak != 1)} in a row had at least half skipped{limit}"
            t.monitor.write(f"warning: kimg {t.nimg / 1000:.2f}: {new} optimiser step{'s' * (new != 1)} "
                            f"skipped for non-finite (NaN/inf) gradients since the last report, {total} in all{row}")
            self.skipped_reported = total
        return bool(t.cfg.max_skipped) and streak >= t.cfg.max_skipped

    def postpone_save(self) -> bool:
        """A periodic checkpoint in the middle of a streak of skipped steps would hold the weights that give NaN
        and push a good checkpoint out (--keep): not written; the next snapshot (or the final one) is."""
        streak = self.streak_now()
        if streak and self.t.monitor is not None:
            self.t.monitor.write(f"kimg {self.t.nimg / 1000:.2f}: no checkpoint now: the last {streak} iteration"
                                 f"{'s' * (streak != 1)} had at least half of their optimiser steps skipped")
        return bool(streak)

    def error(self) -> Diverged:
        """The Diverged to raise now, naming the last good checkpoint and the model's learning-rate flags."""
        from .checkpoint import list_checkpoints  # noqa: PLC0415
        t = self.t
        found = list_checkpoints(t.run_dir)
        streak = self.streak_now()
        why = self.explosion if self.explosion is not None or streak else "the networks exploded on another rank"
        return Diverged(t.nimg / 1000, streak, found[-1] if found else None, t.cfg.amp, explosion=why,
                        lr=lr_flags(t.cfg.model, t.cfg.model_cfg), gamma="gamma" in t.cfg.model_cfg)
