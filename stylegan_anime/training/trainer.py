"""The one training loop. Every model is a recipe (see recipe.py); the trainer owns the rest:

    data            a BatchSampler on the training device
    latents         z ~ N(0, I) drawn here, for the whole global batch at once, then split into rounds
    accumulation    global batch = batch_gpu x rounds; each round's loss is scaled by 1/rounds
    mixed precision torch.autocast (bf16 / fp16); fp16 adds a GradScaler per network
    safety          a step whose gradients are not finite is skipped (counted in Progress/skipped_steps)
    EMA of G        half-life ema_kimg, optional ramp-up; BatchNorm buffers are copied
    output          TensorBoard scalars + grids, PNG grids, checkpoints (periodic, final, on Ctrl-C/SIGTERM),
                    status lines and RUN/log.txt; a closed terminal or pipe never stops a run (console.py)
    time            train_s counts the seconds of training iterations only; evaluation, grids and checkpoints go to
                    maintenance_s (cpu_s: the process's CPU seconds of training). --minutes stops and
                    --metrics-minutes evaluates on train_s, so runs compare at equal training time

Resuming from a checkpoint restores networks, optimisers, scalers, recipe state, counters and every random
stream (torch CPU/CUDA generators and the sampler's), so a resumed run equals an uninterrupted one.

Length (~720 lines): one loop and the state it must restore exactly on resume (phases, EMA, time counters,
divergence, evaluation, grids, checkpoints, signals) read best together; the parts that stand alone live beside
it (console.py, monitor.py, checkpoint.py, distributed.py). Next split candidate: evaluation and grids.
"""
from __future__ import annotations

import contextlib
import copy
import json
import math
import signal
import sys
import time
from dataclasses import asdict as dataclasses_asdict
from pathlib import Path

import numpy as np
import torch

from ..data import open_dataset
from ..data.sampler import BatchSampler
from ..imageio_utils import make_grid, save_image, to_uint8
from ..models import get_recipe
from .augment import DiffAugment
from . import console
from .checkpoint import save_checkpoint, writing
from .config import TrainConfig
from .distributed import Dist, all_reduce_mean_, barrier
from .monitor import Monitor
from .recipe import Batch, Phase, Recipe, seeded_noise, set_requires_grad

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
STOP_CHECK_EVERY = 4  # under torchrun, ranks agree on Ctrl-C and train_s every N iterations (an all-reduce + host sync)
EXPLODED = 1e4  # |mean loss| or max |weight| above this (still finite) at a scalar flush: the "exploding" warning
WARN_EVERY_S = 60.0  # skipped-step and exploding warnings: the first at once, then at most one a minute


class Diverged(Exception):
    """Training stopped: cfg.max_skipped iterations in a row had (at least half of) their optimiser steps skipped
    for non-finite gradients. Nothing was saved over the last good checkpoint (`last_good`, None if none)."""

    def __init__(self, kimg: float, streak: int, last_good: Path | None, amp: str):
        fp16 = ("fp16 overflow (--amp fp16 without a conv clamp: try --amp bf16)" if amp == "fp16" else
                "with --amp fp16, overflow without a conv clamp (try --amp bf16)")
        super().__init__(
            f"training diverged at kimg {kimg:.2f}: {streak} iterations in a row had at least half of their "
            f"optimiser steps skipped for non-finite (NaN/inf) gradients; nothing new was saved.\n"
            f"likely causes: a learning rate too high (--lr, --lr-g, --lr-d), too strong a regulariser (--gamma), "
            f"or {fp16}; start a new run with lower values.\n"
            f"last good checkpoint: {last_good if last_good is not None else 'none (diverged before the first one)'}")
        self.kimg, self.streak, self.last_good = kimg, streak, last_good


class Interrupted(Exception):
    """Training stopped on Ctrl-C / SIGTERM after saving a checkpoint."""

    def __init__(self, checkpoint: Path):
        super().__init__(f"interrupted; checkpoint saved to {checkpoint}")
        self.checkpoint = checkpoint


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        from .config import ConfigError
        raise ConfigError("--device cuda was asked for, but this torch build sees no CUDA GPU")
    return device


def check_labels(cfg: TrainConfig, dataset) -> None:
    """A conditional configuration needs labelled data: ConfigError before anything is built or written."""
    recipe_cls = get_recipe(cfg.model)
    if recipe_cls.needs_labels(recipe_cls.make_config(**cfg.model_cfg)) and not (
            cfg.label_names or getattr(dataset, "label_names", None)):
        from .config import ConfigError
        raise ConfigError(f"--model {cfg.model} is conditional and needs labelled data (--data demo, or --labels "
                          f"FILE with your images){'; or --classes none' if cfg.model == 'biggan' else ''}")


def build_recipe(cfg: TrainConfig, device: torch.device) -> Recipe:
    recipe_cls = get_recipe(cfg.model)
    model_cfg = recipe_cls.make_config(**cfg.model_cfg)
    extra = {}
    if recipe_cls.needs_labels(model_cfg):
        if not cfg.label_names:
            from .config import ConfigError
            raise ConfigError(f"--model {cfg.model} is conditional and needs labelled data (e.g. --data demo, "
                              f"or prepare-data --labels FILE)")
        extra["label_names"] = cfg.label_names
    return recipe_cls(model_cfg, cfg.size, device, **extra)


class Trainer:
    def __init__(self, cfg: TrainConfig, run_dir: str | Path, dataset=None, resume: dict | None = None,
                 dist: Dist | None = None):
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.dist = dist or Dist()
        self.device = resolve_device(cfg.device)
        if self.dist.active and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
        if dataset is None:
            dataset = open_dataset(cfg.data, cfg.size, workers=cfg.workers, progress=cfg.progress, labels=cfg.labels)
        if cfg.label_names is None and getattr(dataset, "label_names", None):
            cfg.label_names = dict(dataset.label_names)
        torch.manual_seed(cfg.seed)  # identical initial weights on every rank
        self.recipe = build_recipe(cfg, self.device)
        if self.dist.active:  # recipe-internal randomness (noise, mixing, penalties) differs per rank
            torch.manual_seed(cfg.seed * 1000 + self.dist.rank + 1)
        self.G = self.recipe.nets["G"]
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        self.augment = None
        if cfg.augment == "diffaug":  # everything D sees goes through it: a forward pre-hook on D
            p = cfg.aug_p if cfg.aug_p is not None else (0.0 if cfg.aug_target > 0 else 1.0)
            self.augment = DiffAugment(cfg.aug_policy, p=p, target=cfg.aug_target, speed_kimg=cfg.aug_speed_kimg)
            self.recipe.nets["D"].register_forward_pre_hook(self.augment.hook)
        self.augment_rt = float("nan")
        amp_on = cfg.amp != "off"
        self.autocast = dict(device_type=self.device.type, dtype=AMP_DTYPES.get(cfg.amp, torch.float32), enabled=amp_on)
        self.scalers = {k: torch.amp.GradScaler(self.device.type, enabled=cfg.amp == "fp16") for k in self.recipe.opts}
        self.dataset = dataset
        self.sampler = BatchSampler(dataset, self.device, seed=cfg.seed, xflip=cfg.xflip)
        self.per_rank = cfg.batch // self.dist.world  # this rank's share of the global batch
        self.batch_gpu = cfg.batch_gpu or self.per_rank
        self.rounds = self.per_rank // self.batch_gpu
        # Latents of the global batch come from a generator shared by all ranks; each keeps its slice.
        self.z_gen = torch.Generator(device=self.device).manual_seed(cfg.seed + 7)
        self.nimg = 0
        self.iteration = 0
        self._skipped, self._skipped_device = 0, None  # see the `skipped` property
        # Divergence watch (see _check_skipped): this iteration's optimiser steps and how many were skipped (a
        # device tensor on the fused path), and the run of consecutive iterations with at least half skipped.
        self._iter_steps, self._iter_skipped, self._iter_skipped_device = 0, 0, None
        self._streak: int | torch.Tensor = 0
        self._skipped_reported = 0  # skipped steps already reported on the console
        self._warned_at: dict[str, float] = {}  # kind of warning -> when it was last printed (_warn_clock)
        self._warn_clock = time.monotonic  # tests replace it
        self.train_s = 0.0  # seconds of training iterations (carried across resumes), see _maintenance
        self.maintenance_s = 0.0  # seconds of evaluation, grids and checkpoints
        self.cpu_s = 0.0  # this process's CPU seconds during training iterations
        self._clock, self._cpu_clock = time.perf_counter, time.process_time  # tests replace them
        self._lap: tuple[float, float] | None = None  # the clocks when the current stretch of training began
        fixed = torch.Generator().manual_seed(cfg.seed + 1)
        self.fixed_z = torch.randn(cfg.grid_size ** 2, self.recipe.z_dim, generator=fixed)
        self.fixed_labels = self.sampler.random_labels(cfg.grid_size ** 2, fixed)  # [n,K] or None
        self._stop = False  # agreed by every rank; set from _stop_requested (this process's Ctrl-C)
        self._stop_requested = False
        self.monitor: Monitor | None = None
        if resume is not None:
            self.load_state_dict(resume)

    # ------------------------------------------------------------------ one iteration
    def _draw_z(self) -> list[torch.Tensor]:
        z = torch.randn(self.cfg.batch, self.recipe.z_dim, device=self.device, generator=self.z_gen)
        z = z[self.dist.rank * self.per_rank:(self.dist.rank + 1) * self.per_rank]
        return list(z.split(self.batch_gpu))

    def _draw_fake_labels(self) -> list[torch.Tensor] | None:
        """Labels for the global batch of fakes, drawn from the data's label rows (shared stream), sliced."""
        c = self.sampler.random_labels(self.cfg.batch, self.z_gen if self.z_gen.device.type == "cpu" else None)
        if c is None:
            return None
        c = c[self.dist.rank * self.per_rank:(self.dist.rank + 1) * self.per_rank]
        return list(c.to(self.device).split(self.batch_gpu))

    def run_phase(self, phase: Phase, reals: list[torch.Tensor] | None, labels: list | None) -> None:
        """One optimiser step of phase.net over the global batch, accumulated over rounds."""
        net, opt, scaler = self.recipe.nets[phase.net], self.recipe.opts[phase.net], self.scalers[phase.net]
        for name, module in self.recipe.nets.items():
            set_requires_grad(module, name == phase.net)
        opt.zero_grad(set_to_none=True)
        zs = self._draw_z()
        fake_labels = self._draw_fake_labels()
        for r in range(self.rounds):
            batch = Batch(z=zs[r], reals=None if reals is None else reals[r],
                          labels=None if labels is None else labels[r],
                          fake_labels=None if fake_labels is None else fake_labels[r])
            with torch.profiler.record_function(f"phase:{phase.name}"):  # a named range in profiles
                with torch.autocast(**self.autocast):
                    out = phase.loss(batch)
                scaler.scale(out["loss"].float() / self.rounds).backward()
            self._record(phase.name, out)
            if self.augment is not None and "real_sign" in out:
                self.augment.accumulate(out["real_sign"], zs[r].shape[0])
        grads = [p.grad for p in net.parameters() if p.grad is not None]
        all_reduce_mean_(grads, self.dist.world)  # one gradient sync per step, after the last round
        scaler.unscale_(opt)
        self._iter_steps += bool(grads)
        if grads and _skips_on_device(opt, scaler, phase):
            # A fused optimiser takes the verdict as a device tensor and leaves weights, moments and its
            # step count alone when it is 1: no host sync, so the CPU keeps queueing the next phase's kernels.
            bad = torch.stack(torch._foreach_norm(grads)).isfinite().all().logical_not().float()
            opt.grad_scale, opt.found_inf = None, bad
            try:
                opt.step()
            finally:
                del opt.grad_scale, opt.found_inf
            self._skipped_device = bad if self._skipped_device is None else self._skipped_device + bad
            self._iter_skipped_device = bad if self._iter_skipped_device is None else self._iter_skipped_device + bad
            return
        finite = bool(torch.stack(torch._foreach_norm(grads)).isfinite().all()) if grads else True
        if finite:
            scaler.step(opt)
        else:
            self._skipped += 1
            self._iter_skipped += 1
            opt.zero_grad(set_to_none=True)
        scaler.update()
        if finite and phase.after_step is not None:
            phase.after_step()

    @property
    def skipped(self) -> int:
        """Optimiser steps skipped for non-finite gradients (reading it syncs with the device)."""
        if self._skipped_device is not None:
            self._skipped += int(self._skipped_device.item())
            self._skipped_device = None
        return self._skipped

    @skipped.setter
    def skipped(self, value: int) -> None:
        self._skipped, self._skipped_device = int(value), None

    def _record(self, phase_name: str, out: dict) -> None:
        if self.monitor is None:
            return
        for k, v in out.items():
            self.monitor.add(f"Loss/{phase_name}" if k == "loss" else f"Stats/{k}", v)

    def step(self) -> None:
        """One training iteration: every due phase, `repeats` times each, then the EMA update."""
        due = [p for p in self.recipe.phases if self.iteration % p.interval == 0]
        needs = max((p.repeats for p in due if p.needs_reals), default=0)
        real_batches = []
        self._iter_steps, self._iter_skipped, self._iter_skipped_device = 0, 0, None
        for _ in range(needs):  # repeat k of every phase shares real batch k
            x, c = self.sampler.sample(self.cfg.batch, part=(self.dist.rank, self.dist.world))
            real_batches.append((list(x.split(self.batch_gpu)), None if c is None else list(c.split(self.batch_gpu))))
        for phase in due:
            for k in range(phase.repeats):
                reals, labels = real_batches[k] if phase.needs_reals else (None, None)
                self.run_phase(phase, reals, labels)
        self._count_streak()
        shown = needs * self.cfg.batch
        self.nimg += shown
        self.iteration += 1
        self._update_ema(shown)
        if self.augment is not None and self.iteration % self.augment.interval == 0:
            if self.dist.active and self.augment._sign_sum is not None:
                all_reduce_mean_([self.augment._sign_sum], self.dist.world)
            rt = self.augment.adjust(self.cfg.batch)
            self.augment_rt = self.augment_rt if rt is None else rt

    @torch.no_grad()
    def _update_ema(self, shown: int) -> None:
        mc = self.recipe.cfg
        ema_nimg = mc.ema_kimg * 1000
        if mc.ema_rampup:
            ema_nimg = min(ema_nimg, self.nimg * mc.ema_rampup)
        beta = 0.5 ** (shown / ema_nimg) if ema_nimg > 0 else 0.0
        # one multi-tensor kernel instead of two per parameter; G_ema = beta * G_ema + (1 - beta) * G
        torch._foreach_lerp_(list(self.G_ema.parameters()), [p.detach() for p in self.G.parameters()], 1.0 - beta)
        for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers()):
            b_ema.copy_(b)

    # ------------------------------------------------------------------ the loop
    def train(self) -> Path:
        """Train until cfg.kimg (or cfg.minutes of train_s); returns the final checkpoint path. Raises Interrupted
        on Ctrl-C/SIGTERM."""
        cfg = self.cfg
        total = int(round(cfg.kimg * 1000))
        main = self.dist.is_main
        console.guard_std_streams()  # a closed terminal or pipe never stops the run (see console.py)
        if main:  # a read-only or full output folder: WriteError (one line), see checkpoint.writing
            with writing(self.run_dir / "config.json"):
                self.run_dir.mkdir(parents=True, exist_ok=True)
                (self.run_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
            with writing(self.run_dir):
                self.monitor = Monitor(self.run_dir, cfg.kimg, self.nimg / 1000, self.device, progress=cfg.progress,
                                       status_every=cfg.status_every,
                                       budget_s=math.inf if cfg.minutes is None else cfg.minutes * 60)
        budget_s = math.inf if cfg.minutes is None else cfg.minutes * 60
        old_handlers = self._install_signal_handlers()
        try:
            if main:
                self.monitor.hparams(self._hparams(), [f"Metrics/{m}" for m in cfg.metric_list])
            if self.nimg == 0 and main:
                with self._maintenance():
                    self._write_reals()
                    self._write_grids()
            self._lap = (self._clock(), self._cpu_clock())  # training time runs from here
            if main:
                self.monitor.start_status(self.nimg, self.train_s)
            agreed_s = self.train_s  # train_s at the last agreement of the ranks: time decisions are made on it
            end = self.nimg >= total or agreed_s >= budget_s
            self._skipped_reported, self._streak = self.skipped, 0  # a resumed run reports only its own skips
            while not end:
                before, before_s = self.nimg, agreed_s
                self.step()
                self._charge_training()
                if not self.dist.active or self.iteration % STOP_CHECK_EVERY == 0:  # the same iterations on every rank
                    self._agree()  # so that all stop together, and decide on the same train_s
                    agreed_s = self.train_s
                end = self.nimg >= total or self._stop or agreed_s >= budget_s
                due = ((cfg.metrics_kimg is not None and _crossed(before, self.nimg, cfg.metrics_kimg * 1000))
                       or (cfg.metrics_minutes is not None and _crossed(before_s, agreed_s, cfg.metrics_minutes * 60)))
                flush = _crossed(before, self.nimg, cfg.log_kimg * 1000) or end
                diverged = flush and self._check_skipped()  # every rank alike; nothing is saved after it
                if main:
                    self.monitor.advance(self.nimg / 1000)
                    self.monitor.status(self.nimg, self.train_s, augment_p=None if self.augment is None else
                                        self.augment.p, tick=flush, end=end)  # before flush: its losses
                    if flush:
                        self._check_explosion(self.monitor.flush(self.nimg, self._progress_scalars()))
                    if _crossed(before, self.nimg, cfg.grid_kimg * 1000) and not diverged:
                        with self._maintenance():
                            self._write_grids()
                if diverged:
                    raise self._diverged()
                if due and not end:
                    with self._maintenance():
                        self.evaluate()  # on every rank: each scores its share of the images
                if main and _crossed(before, self.nimg, cfg.snap_kimg * 1000) and not end and not self._postpone_save():
                    with self._maintenance():
                        self.save()
            if self._stop:
                with self._maintenance():
                    path = self.save()
                barrier(self.dist)
                raise Interrupted(path)
            if main:
                with self._maintenance():
                    self._write_grids()
            with self._maintenance():
                self.evaluate()
            with self._maintenance():  # one at a time: the checkpoint counts the grids and evaluation
                path = self.save()
            barrier(self.dist)  # every rank returns once rank 0's checkpoint is written, and they leave the
            return path         # process group together (a rank tearing down early can abort under gloo)
        finally:
            self._restore_signal_handlers(old_handlers)
            if self.monitor is not None:
                failing = sys.exc_info()[1] is not None  # a WriteError: a full disk's next error must not hide it
                with contextlib.suppress(OSError) if failing else contextlib.nullcontext():
                    self.monitor.close()
            self.monitor = None

    def _charge_training(self) -> None:
        """Add the time since the last lap to train_s and cpu_s; a new lap begins."""
        if self._lap is None:  # not training yet
            return
        wall, cpu = self._clock(), self._cpu_clock()
        self.train_s += wall - self._lap[0]
        self.cpu_s += cpu - self._lap[1]
        self._lap = (wall, cpu)

    @contextlib.contextmanager
    def _maintenance(self):
        """The block's seconds go to maintenance_s, not train_s. On CUDA the training kernels still queued are
        waited for first, and charged to training."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self._charge_training()
        start = self._clock()
        try:
            yield
        finally:
            wall = self._clock()
            self.maintenance_s += wall - start
            self._lap = (wall, self._cpu_clock())

    def _agree(self) -> None:
        """Under torchrun, one all-reduce: every rank stops if any was asked to (Ctrl-C), and every rank takes
        rank 0's train_s (the others' clocks also run while they wait for rank 0's grids and checkpoints)."""
        if not self.dist.active:
            self._stop = self._stop_requested
            return
        t = torch.tensor([float(self._stop_requested), self.train_s if self.dist.is_main else 0.0],
                         dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(t)
        stop, self.train_s = t.tolist()
        self._stop = stop > 0

    # ------------------------------------------------------------------ divergence
    def _count_streak(self) -> None:
        """After an iteration: the streak grows by one if at least half of its optimiser steps were skipped, else
        it is 0. On the fused path the count stays a device tensor (no host sync); _streak_now reads it."""
        if not self._iter_steps:
            return
        skipped = self._iter_skipped
        if self._iter_skipped_device is not None:
            skipped = self._iter_skipped_device + skipped
        self._streak = (self._streak + 1) * (2 * skipped >= self._iter_steps)

    def _streak_now(self) -> int:
        """Iterations in a row with at least half of their optimiser steps skipped (reading it syncs)."""
        if isinstance(self._streak, torch.Tensor):
            self._streak = int(self._streak.item())
        return self._streak

    def _warn_due(self, kind: str) -> bool:
        """A console warning of this kind now? The first at once, then at most one every WARN_EVERY_S."""
        if self.monitor is None:  # rank 0 alone writes
            return False
        now, last = self._warn_clock(), self._warned_at.get(kind)
        if last is not None and now - last < WARN_EVERY_S:
            return False
        self._warned_at[kind] = now
        return True

    def _check_skipped(self) -> bool:
        """At every scalar flush (on every rank, at the same iterations, where the device counters are read
        anyway): report skipped optimiser steps, and say whether the run diverged (cfg.max_skipped iterations in a
        row with at least half of their steps skipped; the gradients are all-reduced, so every rank agrees)."""
        total, streak = self.skipped, self._streak_now()
        new = total - self._skipped_reported
        if new > 0 and self._warn_due("skipped"):
            row = ""
            if streak:
                limit = f" (the run stops at {self.cfg.max_skipped}, --max-skipped)" if self.cfg.max_skipped else ""
                row = f"; {streak} iteration{'s' * (streak != 1)} in a row had at least half skipped{limit}"
            self.monitor.write(f"warning: kimg {self.nimg / 1000:.2f}: {new} optimiser step{'s' * (new != 1)} "
                               f"skipped for non-finite (NaN/inf) gradients since the last report, {total} in all{row}")
            self._skipped_reported = total
        return bool(self.cfg.max_skipped) and streak >= self.cfg.max_skipped

    def _check_explosion(self, values: dict[str, float]) -> None:
        """At a scalar flush on rank 0: warn when the mean losses or the weights are huge but still finite (no
        step is skipped then, so _check_skipped is silent). One multi-tensor max |w| over every network."""
        big = {k.split("/", 1)[1]: v for k, v in values.items()
               if k.startswith("Loss/") and math.isfinite(v) and abs(v) > EXPLODED}
        weights = [p.detach() for net in self.recipe.nets.values() for p in net.parameters()]
        norms = torch._foreach_norm(weights, ord=math.inf) if weights else [torch.zeros(())]
        w_max = float(torch.stack([n.float() for n in norms]).max())
        if (big or not w_max <= EXPLODED) and self._warn_due("exploding"):
            losses = "".join(f"loss {k} {v:.3g}, " for k, v in big.items())
            self.monitor.write(f"warning: kimg {self.nimg / 1000:.2f}: training is exploding: {losses}max |weight| "
                               f"{w_max:.3g} (warned above {EXPLODED:g}); likely a learning rate too high (--lr, "
                               f"--lr-g, --lr-d){' or --gamma' if 'gamma' in self.cfg.model_cfg else ''}")

    def _postpone_save(self) -> bool:
        """A periodic checkpoint in the middle of a streak of skipped steps would hold the weights that give NaN
        and push a good checkpoint out (--keep): not written; the next snapshot (or the final one) is."""
        streak = self._streak_now()
        if streak and self.monitor is not None:
            self.monitor.write(f"kimg {self.nimg / 1000:.2f}: no checkpoint now: the last {streak} iteration"
                               f"{'s' * (streak != 1)} had at least half of their optimiser steps skipped")
        return bool(streak)

    def _diverged(self) -> Diverged:
        from .checkpoint import list_checkpoints
        found = list_checkpoints(self.run_dir)
        return Diverged(self.nimg / 1000, self._streak_now(), found[-1] if found else None, self.cfg.amp)

    def _progress_scalars(self) -> dict[str, float]:
        out = {f"Progress/lr_{k}": opt.param_groups[0]["lr"] for k, opt in self.recipe.opts.items()}
        out["Progress/skipped_steps"] = float(self.skipped)
        out["Progress/train_seconds"] = self.train_s
        out["Progress/maintenance_seconds"] = self.maintenance_s
        out["Progress/train_cpu_seconds"] = self.cpu_s
        if self.augment is not None:
            out["Progress/augment_p"] = self.augment.p
            out["Stats/augment_rt"] = self.augment_rt
        return out

    # ------------------------------------------------------------------ metrics
    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Metrics of G_ema (untruncated) against the dataset's non-augmented reals: TensorBoard Metrics/* (step:
        images shown) and MetricsByTime/* (step: seconds of training), and one JSON line in metrics.jsonl with
        kimg, train_s, maintenance_s, cpu_s and wall_s (= train_s, for readers of older runs). A metric that
        cannot run (e.g. no Inception file) is skipped with one warning and training goes on. Under torchrun
        every rank calls this: the generated images are shared out between ranks and rank 0 computes and
        writes the scores (tagacc runs on rank 0)."""
        names = self.cfg.metric_list
        if not names:
            return {}
        from ..metrics import TAG_METRICS, evaluate, evaluate_tags  # noqa: PLC0415
        from .distributed import object_group  # noqa: PLC0415

        latents = EvalLatents(self.recipe.z_dim, self.cfg.seed + 2)  # the same latents at every evaluation

        def generate(n: int, labels: torch.Tensor | None = None, start: int | None = None) -> np.ndarray:
            first = latents.pos if start is None else int(start)
            z = latents.take(n, start).to(self.device)
            c = [None] * n if labels is None else labels.to(self.device)
            with seeded_noise(self.cfg.seed * 1_000_003 + first, self.device):  # any rank: the same noise
                out = [self.recipe.generate(self.G_ema, zc, None if cc is None or cc[0] is None else cc, **self.recipe.eval_options())
                       for zc, cc in zip(z.split(self.batch_gpu), _split(c, self.batch_gpu))]
            return to_uint8(torch.cat(out))

        main = self.dist.is_main
        warn = self.monitor.write if self.monitor is not None else print
        plain = [m for m in names if m not in TAG_METRICS]
        started = time.perf_counter()
        if self.monitor is not None:  # announced: a long evaluation must not look like a hang
            from ..metrics import METRICS  # noqa: PLC0415
            count = max([self.cfg.metrics_num or METRICS[m].num_gen for m in plain if m in METRICS]
                        + [self.cfg.metrics_num or 1000] * ("tagacc" in names))
            self.monitor.write(f"kimg {self.nimg / 1000:.2f}: evaluating {', '.join(names)} on {count} images ...")
        bars = self.monitor is not None and self.monitor.bar_shown  # progress bars on a terminal only
        values = evaluate(plain, generate, self.dataset, device=self.device, progress=bars, warn=warn,
                          num_gen=self.cfg.metrics_num, inception_path=self.cfg.inception,
                          seed=self.cfg.seed, group=object_group(self.dist)) if plain else {}
        if "tagacc" in names and main:
            if not type(self.recipe).needs_labels(self.recipe.cfg):
                warn(f"skipping tagacc: --model {self.cfg.model} is not tag-conditional")
            else:
                values.update(evaluate_tags(lambda c: generate(len(c), c), self.dataset,
                                            n=self.cfg.metrics_num or 1000, device=self.device, seed=self.cfg.seed))
        if values and main:
            if self.monitor is not None:
                for k, v in values.items():
                    self.monitor.writer.add_scalar(f"Metrics/{k}", v, global_step=self.nimg)
                    self.monitor.writer.add_scalar(f"MetricsByTime/{k}", v, global_step=int(round(self.train_s)))
                self.monitor.write(f"kimg {self.nimg / 1000:.2f}: " + ", ".join(f"{k} {v:.4g}" for k, v in values.items())
                                   + f" (evaluated in {console.format_duration(time.perf_counter() - started)})")
            with writing(self.run_dir / "metrics.jsonl"), open(self.run_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps({"kimg": self.nimg / 1000, "wall_s": round(self.train_s, 2),
                                    "train_s": round(self.train_s, 2), "maintenance_s": round(self.maintenance_s, 2),
                                    "cpu_s": round(self.cpu_s, 2), **values}) + "\n")
        elif self.monitor is not None:
            self.monitor.write(f"kimg {self.nimg / 1000:.2f}: evaluation done in "
                               f"{console.format_duration(time.perf_counter() - started)}; no metric could run")
        return values

    def _hparams(self) -> dict:
        """Flat hyperparameters for TensorBoard's HPARAMS tab: model, size, batch and every model value."""
        out = {"model": self.cfg.model, "size": self.cfg.size, "batch": self.cfg.batch, "amp": self.cfg.amp,
               "data": self.cfg.data}
        out.update({f"m.{k}": v for k, v in dataclasses_asdict(self.recipe.cfg).items()
                    if isinstance(v, (int, float, str, bool))})
        return out

    # ------------------------------------------------------------------ pictures
    @torch.no_grad()
    def sample_grid(self, G: torch.nn.Module, **kwargs) -> "np.ndarray":  # noqa: F821
        was_training = G.training
        G.eval()
        labels = [None] * len(self.fixed_z) if self.fixed_labels is None else self.fixed_labels.to(self.device)
        images = [self.recipe.generate(G, z.to(self.device), None if c is None or c[0] is None else c, **kwargs)
                  for z, c in zip(self.fixed_z.split(self.batch_gpu), _split(labels, self.batch_gpu))]
        G.train(was_training)
        return make_grid(torch.cat(images), cols=self.cfg.grid_size)

    def _write_grids(self) -> None:
        """Samples/<tag> and RUN/fakes-<tag>-<nimg, 9 digits>.png (as checkpoints: no --grid interval overwrites
        another, and names sort in order). A model without EMA (ema_kimg 0: G_ema is G) writes no fakes-ema-*
        copies of fakes-G-* (variants: fakes-G_<suffix>-*); TensorBoard keeps every model's tags (Samples/ema)."""
        ema = (self.recipe.cfg.ema_kimg or 0) > 0
        grids = [("G", self.G, {}), ("ema", self.G_ema, {})]
        grids += [(f"ema_{suffix}", self.G_ema, kw) for suffix, kw in self.recipe.grid_variants().items()]
        drawn = {}  # picture name -> grid: without EMA, `ema` is the G picture
        for tag, G, kw in grids:
            name = tag if ema else tag.replace("ema", "G", 1)
            if name not in drawn:
                drawn[name] = self.sample_grid(G, **kw)
                path = self.run_dir / f"fakes-{name}-{self.nimg:09d}.png"
                with writing(path, remove_partial=True):
                    save_image(drawn[name], path)
            self.monitor.image(f"Samples/{tag}", drawn[name], self.nimg)

    def _write_reals(self) -> None:
        gen_state = self.sampler.state_dict()  # peeking at reals must not move the sampler
        x, _ = self.sampler.sample(self.cfg.grid_size ** 2)
        self.sampler.load_state_dict(gen_state)
        grid = make_grid(x, cols=self.cfg.grid_size)
        self.monitor.image("Samples/reals", grid, 0)
        with writing(self.run_dir / "reals.png", remove_partial=True):
            save_image(grid, self.run_dir / "reals.png")

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        return {
            "config": self.cfg.to_dict(),
            "nets": {**{k: m.state_dict() for k, m in self.recipe.nets.items()}, "G_ema": self.G_ema.state_dict()},
            "opts": {k: o.state_dict() for k, o in self.recipe.opts.items()},
            "scalers": {k: s.state_dict() for k, s in self.scalers.items()},
            "recipe": self.recipe.state_dict(),
            "augment": None if self.augment is None else self.augment.state_dict(),
            "progress": {"nimg": self.nimg, "iteration": self.iteration, "skipped": self.skipped,
                         "train_s": self.train_s, "maintenance_s": self.maintenance_s, "cpu_s": self.cpu_s},
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "sampler": self.sampler.state_dict(),
                "z": self.z_gen.get_state(),
            },
            "fixed": {"z": self.fixed_z, **({} if self.fixed_labels is None else {"labels": self.fixed_labels})},
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore a checkpoint. Networks are required; optimiser, scaler, RNG, sampler and grid states are
        restored when present (an imported network has only networks: it starts fresh optimisers)."""
        for k, m in self.recipe.nets.items():
            m.load_state_dict(state["nets"][k])
        self.G_ema.load_state_dict(state["nets"]["G_ema"])
        for k, o in self.recipe.opts.items():
            if k in state.get("opts", {}):
                o.load_state_dict(state["opts"][k])
        for k, s in self.scalers.items():
            if state.get("scalers", {}).get(k):
                s.load_state_dict(state["scalers"][k])
        self.recipe.load_state_dict(state.get("recipe", {}))
        if self.augment is not None and state.get("augment"):
            self.augment.load_state_dict(state["augment"])
        prog = state["progress"]
        self.nimg, self.iteration, self.skipped = int(prog["nimg"]), int(prog["iteration"]), int(prog["skipped"])
        self.train_s = train_seconds(prog)
        self.maintenance_s, self.cpu_s = float(prog.get("maintenance_s", 0.0)), float(prog.get("cpu_s", 0.0))
        rng = state.get("rng", {})
        if "torch" in rng:
            torch.set_rng_state(rng["torch"])
        if torch.cuda.is_available() and rng.get("cuda"):
            torch.cuda.set_rng_state_all(rng["cuda"][: torch.cuda.device_count()])
        if "sampler" in rng:
            self.sampler.load_state_dict(rng["sampler"])
        if "z" in rng:
            self.z_gen.set_state(rng["z"])
        if self.dist.active:  # per-rank streams continue from the saved one, shifted by rank
            torch.manual_seed(int(torch.randint(2**62, [])) + self.dist.rank)
        if "fixed" in state:
            self.fixed_z = state["fixed"]["z"]
            self.fixed_labels = state["fixed"].get("labels", self.fixed_labels)

    def save(self) -> Path:
        """Checkpoint (rank 0 writes; every rank returns the path)."""
        if not self.dist.is_main:
            from .checkpoint import checkpoint_dir
            return checkpoint_dir(self.run_dir) / f"ckpt-{self.nimg:09d}.pt"
        path = save_checkpoint(self.state_dict(), self.run_dir, self.nimg, keep=self.cfg.keep)
        if self.monitor is not None:
            self.monitor.write(f"kimg {self.nimg / 1000:.2f}: checkpoint {path}")
        return path

    # ------------------------------------------------------------------ Ctrl-C / SIGTERM
    def _install_signal_handlers(self):
        def request_stop(signum, frame):
            if self._stop_requested:  # a second Ctrl-C stops at once
                raise KeyboardInterrupt
            self._stop_requested = True
            if self.monitor is not None:
                self.monitor.write("stopping after this step and saving a checkpoint (Ctrl-C again to abort)")

        old = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                old[sig] = signal.signal(sig, request_stop)
            except ValueError:  # not the main thread: leave signals alone
                pass
        hup = console.ignore_hangup()  # a closed terminal: noted in log.txt, training goes on
        if hup is not None:
            old[hup[0]] = hup[1]
        return old

    @staticmethod
    def _restore_signal_handlers(old) -> None:
        for sig, handler in old.items():
            signal.signal(sig, handler)

    def request_stop(self) -> None:
        """Stop at the end of the current iteration, as Ctrl-C does (used by tests and embedding code)."""
        self._stop_requested = True


class EvalLatents:
    """The latents of evaluation image i, i = 0, 1, ...: drawn in fixed chunks from one seeded stream, so
    any rank asking for any range (``take(n, start)``) gets the rows one process would."""

    CHUNK = 1024

    def __init__(self, z_dim: int, seed: int):
        self.z_dim = z_dim
        self.gen = torch.Generator().manual_seed(seed)
        self.bank = torch.zeros(0, z_dim)
        self.pos = 0

    def take(self, n: int, start: int | None = None) -> torch.Tensor:
        """Rows start ... start+n-1 ([n, z_dim], CPU); without start, the n rows after the last taken."""
        start = self.pos if start is None else int(start)
        while len(self.bank) < start + n:
            self.bank = torch.cat([self.bank, torch.randn(self.CHUNK, self.z_dim, generator=self.gen)])
        self.pos = start + n
        return self.bank[start:start + n]


def _skips_on_device(opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler, phase: Phase) -> bool:
    """Can this step skip non-finite gradients without a host sync? Fused optimisers (Adam/AdamW/SGD with
    fused=True, which recipes use on CUDA) take `found_inf` on the device; fp16's GradScaler and after-step
    hooks (weight clipping) need the verdict on the host."""
    return (bool(getattr(opt, "_step_supports_amp_scaling", False)) and not scaler.is_enabled()
            and phase.after_step is None)


def _split(x, n: int) -> list:
    return list(x.split(n)) if isinstance(x, torch.Tensor) else [x[i:i + n] for i in range(0, len(x), n)]


def train_seconds(progress: dict) -> float:
    """A checkpoint's training seconds; checkpoints before train_s kept `wall_s` (evaluation included)."""
    return float(progress.get("train_s", progress.get("wall_s", 0.0)))


def _crossed(before: float, after: float, every: float) -> bool:
    """Did a counter (images shown, seconds of training) pass a multiple of `every` between before and after?"""
    return math.floor(after / every) > math.floor(before / every)
