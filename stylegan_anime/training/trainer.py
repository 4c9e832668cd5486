"""The one training loop. Every model is a recipe (see recipe.py); the trainer owns the rest:

    data            a BatchSampler on the training device
    latents         z ~ N(0, I) drawn here, for the whole global batch at once, then split into rounds
    accumulation    global batch = batch_gpu x rounds; each round's loss is scaled by 1/rounds
    mixed precision torch.autocast (bf16 / fp16); fp16 adds a GradScaler per network
    safety          a step whose gradients are not finite is skipped (counted in Progress/skipped_steps); a
                    diverged run (a streak of skipped steps, or exploded networks) stops, never saving over the
                    last good checkpoint (divergence.py: the rules, the warnings, Diverged)
    EMA of G        half-life ema_kimg, optional ramp-up; BatchNorm buffers are copied
    output          TensorBoard scalars and status lines (monitor.py), RUN/log.txt; a closed terminal or pipe never
                    stops a run, Ctrl-C/SIGTERM saves and stops (console.py); metrics, the final evaluation and
                    the sample grids (evaluation.py); checkpoints, periodic and final (checkpoint.py, run_state.py)
    time            train_s counts the seconds of training iterations only; evaluation, grids and checkpoints go to
                    maintenance_s (cpu_s: the process's CPU seconds of training). --minutes stops and
                    --metrics-minutes evaluates on train_s, so runs compare at equal training time

Resuming from a checkpoint restores networks, optimisers, scalers, recipe state, counters and every random
stream (torch CPU/CUDA generators and the sampler's), so a resumed run equals an uninterrupted one.

Here: the loop and what it must restore exactly on resume (phases, EMA, time counters); the parts that stand
alone live beside it (evaluation.py, divergence.py, run_state.py, monitor.py, console.py, checkpoint.py,
distributed.py).
"""
from __future__ import annotations

import contextlib
import copy
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ..data import open_dataset
from ..data.sampler import BatchSampler
from ..models import get_recipe
from .augment import DiffAugment
from . import console, evaluation, run_state
from .evaluation import EvalLatents  # noqa: F401  (its old home: trainer.EvalLatents)
from .checkpoint import save_checkpoint, writing
from .config import TrainConfig
from .distributed import Dist, all_reduce_mean_, barrier
from .divergence import Diverged, DivergenceWatch  # noqa: F401  (Diverged: its old home, trainer.Diverged)
from .monitor import Monitor, run_hparams
from .recipe import Batch, Phase, Recipe, set_requires_grad
from .run_state import train_seconds  # noqa: F401  (its old home: trainer.train_seconds)

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
STOP_CHECK_EVERY = 4  # under torchrun, ranks agree on Ctrl-C and train_s every N iterations (an all-reduce + host sync)


class Interrupted(Exception):
    """Training stopped on Ctrl-C / SIGTERM after saving a checkpoint."""

    def __init__(self, checkpoint: Path):
        super().__init__(f"interrupted; checkpoint saved to {checkpoint}")
        self.checkpoint = checkpoint


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    from .config import ConfigError
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"--device must be auto, cpu, cuda or cuda:N, got {name!r}") from None
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"--device must be auto, cpu, cuda or cuda:N, got {name!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for, but this torch build sees no CUDA GPU")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA GPU(s), "
                          f"numbered from 0")
    return device


def check_labels(cfg: TrainConfig, dataset) -> None:
    """A conditional configuration needs labelled data: ConfigError before anything is built or written."""
    recipe_cls = get_recipe(cfg.model)
    classes = int(cfg.model_cfg.get("num_classes") or 0)
    if classes:  # class-conditional (an imported conditional NVlabs network): the *data* must carry classes
        from ..stylegan2.recipe import check_class_names
        from .config import ConfigError
        names = getattr(dataset, "label_names", None)
        try:
            if not names:
                raise ValueError(f"this StyleGAN2 is class-conditional ({classes} classes) and needs one class "
                                 f"label per image, but {cfg.data} has no labels; fine-tune an unconditional model")
            check_class_names(names, classes)
        except ValueError as e:
            raise ConfigError(str(e)) from None
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
        # Divergence watch (divergence.py): this iteration's optimiser steps and how many were skipped (a
        # device tensor on the fused path), and the run of consecutive iterations with at least half skipped.
        self._iter_steps, self._iter_skipped, self._iter_skipped_device = 0, 0, None
        self.watch = DivergenceWatch(self)
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
        self._finishing = False  # the final grids, evaluation and checkpoint are under way
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
        self.watch.count(self._iter_steps, self._iter_skipped, self._iter_skipped_device)
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
                self.monitor.hparams(run_hparams(cfg, self.recipe.cfg), [f"Metrics/{m}" for m in cfg.metric_list])
            if self.nimg == 0 and main:
                with self._maintenance():
                    self._write_reals()
                    self._write_grids()
            self._lap = (self._clock(), self._cpu_clock())  # training time runs from here
            if main:
                self.monitor.start_status(self.nimg, self.train_s)
            agreed_s = self.train_s  # train_s at the last agreement of the ranks: time decisions are made on it
            end = self.nimg >= total or agreed_s >= budget_s
            self.watch.restart(self.skipped)  # a resumed run reports only its own skips
            from .sanity import watch_first_step  # noqa: PLC0415
            watch_first_step(self)  # on CUDA: the first step() is checked (finite) and logged (ops, dtypes)
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
                values = {}
                if main:
                    self.monitor.advance(self.nimg / 1000)
                    self.monitor.status(self.nimg, self.train_s, augment_p=None if self.augment is None else
                                        self.augment.p, tick=flush, end=end)  # before flush: its losses
                    if flush:
                        values = self.monitor.flush(self.nimg, self._progress_scalars())
                diverged = flush and self.watch.check(values)  # every rank alike; nothing is saved after it
                if main and _crossed(before, self.nimg, cfg.grid_kimg * 1000) and not diverged:
                    with self._maintenance():
                        self._write_grids()
                if diverged:
                    raise self.watch.error()
                if due and not end:
                    with self._maintenance():
                        self.evaluate()  # on every rank: each scores its share of the images
                if _crossed(before, self.nimg, cfg.snap_kimg * 1000) and not end:
                    self.watch.refuse_exploded()  # every rank alike: an exploded run stops before it saves
                    if main and not self.watch.postpone_save():
                        with self._maintenance():
                            self.save()
            self.watch.refuse_exploded()  # before the final (or Ctrl-C) checkpoint
            if self._stop:
                with self._maintenance():
                    path = self.save()
                barrier(self.dist)
                raise Interrupted(path)
            if main:
                with self._maintenance():
                    self._write_grids()
            self._finishing = True  # the final evaluation says so, and how to skip it
            with self._maintenance():
                self.evaluate()
            with self._maintenance():  # one at a time: the checkpoint counts the grids and evaluation
                path = self.save()
            barrier(self.dist)  # every rank returns once rank 0's checkpoint is written, and they leave the
            return path         # process group together (a rank tearing down early can abort under gloo)
        finally:
            console.restore_handlers(old_handlers)
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

    # ------------------------------------------------------------------ divergence (divergence.py)
    def _streak_now(self) -> int:
        return self.watch.streak_now()

    @property
    def _warn_clock(self):
        return self.watch.clock

    @_warn_clock.setter
    def _warn_clock(self, clock) -> None:  # tests replace it
        self.watch.clock = clock

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

    # ------------------------------------------------------------------ metrics and pictures (evaluation.py)
    def evaluate(self) -> dict[str, float]:
        """Metrics of G_ema into TensorBoard and metrics.jsonl (evaluation.evaluate); every rank calls it."""
        return evaluation.evaluate(self, final=self._finishing)

    def sample_grid(self, G: torch.nn.Module, **kwargs) -> np.ndarray:
        return evaluation.sample_grid(self, G, **kwargs)

    def _write_grids(self) -> None:
        evaluation.write_grids(self)

    def _write_reals(self) -> None:
        evaluation.write_reals(self)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        return run_state.trainer_state(self)

    def load_state_dict(self, state: dict) -> None:
        """Restore a checkpoint (run_state.load_trainer_state: networks required, the rest when present)."""
        run_state.load_trainer_state(self, state)

    def save(self) -> Path:
        """Checkpoint (rank 0 writes; every rank returns the path)."""
        if not self.dist.is_main:
            from .checkpoint import checkpoint_dir
            return checkpoint_dir(self.run_dir) / f"ckpt-{self.nimg:09d}.pt"
        self.watch.refuse_exploded(agree=False)  # never a checkpoint of exploded networks (no collective here)
        path = save_checkpoint(self.state_dict(), self.run_dir, self.nimg, keep=self.cfg.keep)
        if self.monitor is not None:
            self.monitor.write(f"kimg {self.nimg / 1000:.2f}: checkpoint {path}")
        return path

    # ------------------------------------------------------------------ Ctrl-C / SIGTERM
    def _install_signal_handlers(self) -> dict:
        def request_stop(signum, frame):
            if self._stop_requested:  # a second Ctrl-C stops at once
                raise KeyboardInterrupt
            self._stop_requested = True
            if self.monitor is not None:
                self.monitor.write("stopping after this step and saving a checkpoint (Ctrl-C again to abort)")
        return console.install_stop_handlers(request_stop)

    def request_stop(self) -> None:
        """Stop at the end of the current iteration, as Ctrl-C does (used by tests and embedding code)."""
        self._stop_requested = True


def _skips_on_device(opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler, phase: Phase) -> bool:
    """Can this step skip non-finite gradients without a host sync? Fused optimisers (Adam/AdamW/SGD with
    fused=True, which recipes use on CUDA) take `found_inf` on the device; fp16's GradScaler and after-step
    hooks (weight clipping) need the verdict on the host."""
    return (bool(getattr(opt, "_step_supports_amp_scaling", False)) and not scaler.is_enabled()
            and phase.after_step is None)


def _crossed(before: float, after: float, every: float) -> bool:
    """Did a counter (images shown, seconds of training) pass a multiple of `every` between before and after?"""
    return math.floor(after / every) > math.floor(before / every)
