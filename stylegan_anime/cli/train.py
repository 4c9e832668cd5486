"""`stylegan-anime train`: its flags (the per-model ones generated from every recipe's Config dataclass), the
examples, and the run: new or resumed config, run folder and lock, exit codes 3 (diverged) and 130 (interrupted).
"""
from __future__ import annotations

import dataclasses
import errno
import sys
import time
from pathlib import Path

import click
from click.core import ParameterSource

from ..models import get_recipe, model_names
from ..training import console
from ..training.checkpoint import (RunLock, WriteError, checkpoint_dir, find_resume, load_checkpoint, new_run_dir,
                                  os_reason, remove_stale_temps, writing)
from ..training.config import RESUMABLE_OVERRIDES, ConfigError, TrainConfig, validate
from .common import EXIT_DIVERGED, EXIT_INTERRUPTED, USER_ERRORS, RankFailed, cli


# ---------------------------------------------------------------------------------------------------
# Per-model hyperparameter flags, generated from every recipe's Config dataclass.
def _model_fields() -> dict[str, tuple[dataclasses.Field, dict[str, object]]]:
    """field name -> (field, {model: default}) over all registered models."""
    fields: dict[str, tuple[dataclasses.Field, dict[str, object]]] = {}
    for name in model_names():
        for f in dataclasses.fields(get_recipe(name).Config):
            default = f.default if f.default is not dataclasses.MISSING else None
            if f.name in fields:
                fields[f.name][1][name] = default
            else:
                fields[f.name] = (f, {name: default})
    return fields


def _field_type(f: dataclasses.Field) -> type:
    """int / float / str / bool of a config field; `float | None` (a preset-resolved value) counts as float."""
    if isinstance(f.type, type):
        return f.type
    name = str(f.type).replace(" ", "").replace("|None", "").replace("Optional[", "").rstrip("]")
    return {"int": int, "float": float, "str": str, "bool": bool}[name]


def _model_options(func):
    for fname, (f, defaults) in sorted(_model_fields().items(), reverse=True):
        flag = "--" + fname.replace("_", "-")
        kind = _field_type(f)
        per_model = ", ".join(f"{m} {d}" for m, d in defaults.items())
        help_text = f"{f.metadata.get('help', '')} [default: {per_model}]"
        if kind is bool:
            opt = click.option(f"{flag}/--no-{flag[2:]}", fname, default=None, help=help_text)
        elif "choices" in f.metadata:
            opt = click.option(flag, fname, type=click.Choice(f.metadata["choices"]), default=None, help=help_text)
        else:
            opt = click.option(flag, fname, type=kind, default=None, help=help_text)
        func = opt(func)
    return func


TRAIN_EXAMPLES = """
\b
Examples:
  # StyleGAN2 (auto preset) on your own folder (or .zip, or a set packed by prepare-data) at 128 px
  stylegan-anime train --data ~/anime-faces --size 128 --outdir runs
  # a few minutes on a laptop CPU, built-in procedural faces, no download
  stylegan-anime train --data demo --size 64 --channel-base 1024 --channel-max 64 --kimg 4
  # a baseline to compare against in the same TensorBoard
  stylegan-anime train --data ~/anime-faces --size 128 --model wgan-gp --outdir runs
  # gradient accumulation: global batch 64 as 4 rounds of 16
  stylegan-anime train --data faces.zip --batch 64 --batch-gpu 16
  # continue the newest run in runs/ (optimisers, kimg and RNG restored), train to 500 kimg
  stylegan-anime train --resume auto --outdir runs --kimg 500
  # fine-tune an imported NVlabs pickle (a new run at 0 kimg), first 10 D layers frozen (Freeze-D)
  stylegan-anime train --resume ffhq256.pt --data ~/faces --kimg 200 --augment diffaug --freezed 10
  # a new run from your own run's weights, on other data
  stylegan-anime train --resume runs/00003-stylegan2-faces-256 --fresh --data ~/other-faces
  # 512 px with stylegan2-ada-pytorch's paper512 settings (a GPU configuration)
  stylegan-anime train --data faces-512 --size 512 --preset paper512
  # equal training time: stop after 2 hours of training (evaluation not counted), FID every 15 minutes of it
  stylegan-anime train --data faces.zip --kimg 100000 --minutes 120 --metrics fid10k --metrics-minutes 15

--data takes a folder (recursive; jpg/jpeg/png/webp/bmp), a .zip, a packed set, 'demo' (10,000 procedural
faces) or 'demo:N'. kimg counts thousands of real images shown to D. Ctrl-C saves a checkpoint.

\b
Exit codes: 0 done; 2 a user error (one line); 3 diverged: --max-skipped iterations in a row had NaN/inf
gradients, or the networks exploded (a weight above 1e5 or NaN, a loss above 1e8) (nothing saved after the last
good checkpoint; learning rate, --gamma or fp16 are likely causes);
130 interrupted (Ctrl-C / SIGTERM on any process) after saving a checkpoint; 1 another process of the run failed.
"""


@cli.command(epilog=TRAIN_EXAMPLES)
@click.option("--data", help="folder | file.zip | packed set | demo | demo:N")
@click.option("--labels", default=None, type=click.Path(dir_okay=False),
              help="CSV/JSON: file name -> tags like 'blonde hair blue eyes' (tag-conditional models)")
@click.option("--size", type=int, default=64, show_default=True, help="resolution: a power of two from 32 to 1024")
@click.option("--model", type=click.Choice(model_names()), default="stylegan2", show_default=True)
@click.option("--batch-gpu", type=int, default=None, help="images per forward pass; batch/batch-gpu rounds are accumulated")
@click.option("--kimg", type=float, default=100.0, show_default=True, help="train until this many kimg of reals were shown")
@click.option("--minutes", type=float, default=None,
              help="...or until this many minutes of training time, whichever comes first (evaluation, grids and "
                   "checkpoints are not counted); then the final grids, metrics and checkpoint as at --kimg")
@click.option("--outdir", default="runs", show_default=True, help="runs are written to OUTDIR/NNNNN-model-data-size")
@click.option("--resume", default=None, help="'auto' (newest run in --outdir) or a checkpoint / run folder; an "
                                              "imported model (stylegan-anime import) is fine-tuned in a new run")
@click.option("--fresh", is_flag=True, default=False,
              help="with --resume: fine-tune, i.e. start a NEW run from the checkpoint's networks (G, D, G_ema) at "
                   "0 kimg with fresh optimisers, augmentation and RNG, as an imported model does")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--amp", type=click.Choice(["off", "bf16", "fp16"]), default="off", show_default=True, help="mixed precision")
@click.option("--xflip/--no-xflip", default=False, show_default=True, help="random horizontal flips of the reals")
@click.option("--snap", "snap_kimg", type=float, default=10.0, show_default=True, help="checkpoint every N kimg")
@click.option("--grid", "grid_kimg", type=float, default=2.0, show_default=True, help="sample grid every N kimg")
@click.option("--grid-size", type=int, default=None,
              help="sample grids are N x N [default: 8, fewer above 256 px so that a grid stays <= 2048 px wide]")
@click.option("--log", "log_kimg", type=float, default=0.5, show_default=True, help="scalars to TensorBoard every N kimg")
@click.option("--keep", type=int, default=3, show_default=True, help="checkpoints kept (newest)")
@click.option("--augment", type=click.Choice(["none", "diffaug"]), default="none", show_default=True,
              help="DiffAugment everything D sees (small datasets: use it); p adapts towards --aug-target")
@click.option("--aug-policy", default="color,translation,cutout", show_default=True)
@click.option("--aug-target", type=float, default=0.6, show_default=True,
              help="adaptive p: target of E[sign(D(real))]; 0 keeps p fixed")
@click.option("--aug-p", type=float, default=None, help="initial p [default: 0 adaptive, 1 fixed]")
@click.option("--aug-speed", "aug_speed_kimg", type=float, default=100.0, show_default=True,
              help="adaptive p can go from 0 to 1 in this many kimg")
@click.option("--metrics", default="swd", show_default=True,
              help="metrics of G_ema during training, comma-separated (fid10k, fid50k, kid, swd, afd, c2st) or none")
@click.option("--metrics-kimg", type=float, default=50.0, show_default=True, help="evaluate every N kimg and at the end")
@click.option("--metrics-minutes", type=float, default=None,
              help="evaluate every N minutes of training time and at the end; alone it replaces the --metrics-kimg "
                   "schedule, with --metrics-kimg given too both apply")
@click.option("--metrics-num", type=int, default=None, help="generated images per metric [default: the metric's own]")
@click.option("--inception", type=click.Path(dir_okay=False), default=None,
              help="FID Inception weights (pt_inception-2015-12-05-6726825d.pth) [default: torch-hub cache]")
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda | cuda:N")
@click.option("--workers", type=int, default=None, help="processes for decoding images when packing a dataset")
@click.option("--progress/--no-progress", default=True, show_default=True,
              help="progress bar (when stderr is a terminal)")
@click.option("--status-every", type=float, default=None, metavar="SECONDS",
              help="a plain status line (kimg, time, s/kimg, img/s, ETA, losses, augment p, peak memory) every N "
                   "seconds; 0: off [default: 60 without a progress bar, off with one]. RUN/log.txt keeps them "
                   "(and one per --log), every warning and error")
@click.option("--max-skipped", type=int, default=50, show_default=True,
              help="a diverged run stops (exit code 3, nothing saved after the last good checkpoint) after N "
                   "iterations in a row with most optimiser steps skipped for NaN/inf gradients; 0: never")
@click.option("--ops", type=click.Choice(["auto", "cuda", "ref", "cpu"]), default="auto", show_default=True,
              help="custom ops: cuda (fused CUDA kernels), cpu (fused CPU kernels), ref (the PyTorch reference) or "
                   "auto: the fused kernels of the device (built once on first use, about a minute), the reference "
                   "where they cannot build")
@_model_options
@click.pass_context
def train(ctx, **kw):
    """Train a GAN (any model) on a folder, zip, packed set or the built-in demo faces."""
    from ..cuda_ops import get_default_impl, set_default_impl
    from ..training import distributed

    console.begin_command()  # a closed terminal or pipe never stops the run; lines for RUN/log.txt (console.py)
    ops, previous_ops = kw.pop("ops"), get_default_impl()
    set_default_impl(ops)
    d = distributed.init_from_env(kw["device"])  # a torchrun launch: join the group; else one process
    try:
        _train(ctx, kw, d, ops)
    except RuntimeError as e:  # a collective failed: some other rank died (torchrun stops the rest)
        if not d.active or isinstance(e, USER_ERRORS):
            raise
        raise RankFailed(f"rank {d.rank}: another process of the run stopped ({str(e).splitlines()[0]})") from None
    finally:
        distributed.shutdown()
        set_default_impl(previous_ops)  # in-process callers (tests, notebooks) get the process default back


def _train(ctx, kw: dict, d, ops: str = "auto") -> None:
    from ..data import open_dataset
    from ..training.distributed import barrier, broadcast_object
    from ..training.trainer import Diverged, Interrupted, Trainer, train_seconds

    say = console.say if d.is_main else (lambda msg: None)
    _quiet_thread_write_errors()
    started = time.monotonic()  # the `done:` line's wall minutes
    given = {k for k in kw if ctx.get_parameter_source(k) == ParameterSource.COMMANDLINE}
    if "metrics_minutes" in given and "metrics_kimg" not in given:  # evaluate by training time only
        kw["metrics_kimg"] = None
        given.add("metrics_kimg")
    model_keys = set(_model_fields())
    resume = kw.pop("resume")
    fresh = kw.pop("fresh")
    if fresh and not resume:
        raise ConfigError("--fresh starts a new run from a checkpoint's weights: give that checkpoint with --resume")
    state = None
    warn = lambda msg: say(f"warning: {msg}")  # noqa: E731
    held = None  # the RunLock of the run folder this process writes (rank 0 only)
    if resume == "auto":
        found = broadcast_object(find_resume(kw["outdir"]), d)
        if found is None:
            say(f"--resume auto: no checkpoint in {kw['outdir']}; starting a new run")
        else:  # the newest run: its newest readable checkpoint
            held = _lock_run(ctx, Path(found).parent.parent, d)
            state = load_checkpoint(Path(found).parent.parent, warn=warn, set_aside=held is not None)
    elif resume:
        held = _lock_run(ctx, _run_of(resume), d)  # before reading: no other process writes there meanwhile
        state = load_checkpoint(resume, warn=warn, set_aside=held is not None and Path(resume).is_dir())

    if state is not None and fresh and "imported" not in state:
        state = weights_only(state)
    imported = state is not None and "imported" in state  # an imported network: fine-tune it in a new run
    if state is None:
        cfg = _new_config(kw, given, model_keys, gpus=d.world)
    else:
        cfg = _resumed_config(state, kw, given, model_keys, fine_tune=imported)
    validate(cfg, world=d.world)
    from ..training.trainer import resolve_device
    resolve_device(cfg.device)  # a device this machine lacks is an error before a run folder is made
    if state is not None and state["progress"]["nimg"] >= cfg.kimg * 1000:
        raise ConfigError(f"the run already reached {state['progress']['nimg'] / 1000:g} kimg; "
                          f"pass a larger --kimg to train further")
    if state is not None and cfg.minutes is not None and train_seconds(state["progress"]) >= cfg.minutes * 60:
        raise ConfigError(f"the run already trained {train_seconds(state['progress']) / 60:.1f} minutes; "
                          f"pass a larger --minutes to train further")
    if not d.is_main:
        barrier(d)  # rank 0 decodes and caches the dataset first; the others then open the cache
    dataset = open_dataset(cfg.data, cfg.size, workers=cfg.workers, progress=cfg.progress and d.is_main,
                           labels=cfg.labels)
    if d.is_main:
        barrier(d)
    from ..training.trainer import check_labels
    check_labels(cfg, dataset)
    if d.is_main and (state is None or imported) and _device_type(cfg.device) == "cpu":
        from ..training.cpu_estimate import cpu_preset_hint
        hint = cpu_preset_hint(cfg)  # a GPU preset on a CPU: the expected speed, within seconds
        if hint:
            say(hint)
    if ops == "auto" and cfg.model == "stylegan2" and _device_type(cfg.device) == "cpu":
        if long_cpu_run(cfg):
            from ..cuda_ops.backend import prefer_cpu_kernels
            prefer_cpu_kernels(say)  # the fused CPU kernels (1.4x a step) when they build, else the reference ops
        else:
            say("ops: the PyTorch reference (a short run: building the fused CPU kernels, about a minute once, "
                "would not pay; --ops cpu builds and uses them)")
    run_dir = None
    if d.is_main:  # errors above come before any folder is made
        if state is None or imported:
            if held is not None:
                held.release()
            run_dir = new_run_dir(cfg.outdir, _run_name(cfg))
            held = _lock_run(ctx, run_dir, d)
        else:
            run_dir = Path(state["path"]).parent.parent
            if held is None or held.run_dir.resolve() != run_dir.resolve():
                held = _lock_run(ctx, run_dir, d)
            say(f"resuming {run_dir} at kimg {state['progress']['nimg'] / 1000:.2f} from {state['path']}")
        with writing(run_dir / "log.txt"):
            console.command_run_log(run_dir)  # the lines said so far, and every line until the command ends
        say(f"run folder: {run_dir}" + (f" ({d.world} processes)" if d.active else ""))
    run_dir = Path(broadcast_object(str(run_dir), d))
    trainer = Trainer(cfg, run_dir, dataset=dataset, resume=state, dist=d)
    try:
        path = trainer.train()
    except OSError as e:  # a write the trainer does not wrap itself (TensorBoard's event file ...): one line
        if e.errno not in _WRITE_ERRNOS:
            raise
        raise WriteError(f"cannot write {e.filename or run_dir}: {os_reason(e)}") from None
    except Interrupted as e:
        say(f"interrupted at kimg {trainer.nimg / 1000:.2f}; checkpoint saved to {e.checkpoint}\n"
            f"continue with: stylegan-anime train --resume {run_dir}")
        barrier(d)  # no rank leaves before rank 0 said so: torchrun stops the others when the first one exits
        sys.exit(EXIT_INTERRUPTED)
    except Diverged as e:
        say(f"error: {e}")
        barrier(d)
        sys.exit(EXIT_DIVERGED)
    say(f"done: {trainer.nimg / 1000:g} kimg in {trainer.train_s / 60:.1f} minutes of training, "
        f"{(time.monotonic() - started) / 60:.1f} minutes wall (data, evaluation, grids, checkpoints included); "
        f"checkpoint {path}\n"
        f"view: tensorboard --logdir {cfg.outdir}")


_WRITE_ERRNOS = (errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EFBIG)  # errors only a write can have


def _quiet_thread_write_errors() -> None:
    """TensorBoard writes its event file in a thread; on a full or read-only disk that thread dies with a
    traceback, and the main thread then raises the same error (one `cannot write` line): keep the thread quiet."""
    import threading
    previous = threading.excepthook
    if getattr(previous, "quiet_write_errors", False):
        return

    def hook(args):
        if not (isinstance(args.exc_value, OSError) and args.exc_value.errno in _WRITE_ERRNOS):
            previous(args)
    hook.quiet_write_errors = True
    threading.excepthook = hook


def _run_of(resume: str) -> Path | None:
    """The run folder a --resume path belongs to (a run folder, or RUN/checkpoints/FILE), else None."""
    p = Path(resume)
    run = p if p.is_dir() else p.parent.parent if p.parent.name == "checkpoints" else None
    return run if run is not None and checkpoint_dir(run).is_dir() else None


def _lock_run(ctx, run: Path | None, d) -> RunLock | None:
    """Rank 0 holds the run folder's lock until the command ends (the kernel releases it if the process dies);
    a second writer is RunLockedError (exit 2). With the lock held, temp files of killed writes are removed."""
    if run is None or not d.is_main:
        return None
    lock = ctx.with_resource(RunLock(run))
    remove_stale_temps(run)
    return lock


# `--ops auto` builds the fused CPU kernels (about a minute, once per machine) for a run that can last at least
# this many kimg at 64 px (4x fewer at 128 px ...) and at least LONG_RUN_MINUTES: a short demo would spend more time
# compiling than the kernels save. Decided from the command alone, so that a resumed run makes the same choice.
LONG_RUN_KIMG64 = 10.0
LONG_RUN_MINUTES = 5.0


def long_cpu_run(cfg) -> bool:
    kimg64 = cfg.kimg * (cfg.size / 64) ** 2
    return kimg64 >= LONG_RUN_KIMG64 and (cfg.minutes is None or cfg.minutes >= LONG_RUN_MINUTES)


def _device_type(name: str) -> str:
    import torch
    return ("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name.split(":")[0]


def weights_only(state: dict) -> dict:
    """A run's checkpoint as a model to fine-tune (--fresh): its config and networks, progress from 0 kimg, no
    optimiser, augmentation, RNG or recipe state (what `import` writes for an NVlabs pickle)."""
    return {"format": state.get("format"), "config": state["config"], "nets": state["nets"],
            "progress": {"nimg": 0, "iteration": 0, "skipped": 0},
            "imported": {"from": str(state.get("path", "")), "kimg": state["progress"]["nimg"] / 1000}}


def _new_config(kw: dict, given: set[str], model_keys: set[str], gpus: int = 1) -> TrainConfig:
    if not kw.get("data"):
        raise ConfigError("--data is required: a folder of images, a .zip, a packed set, or 'demo'")
    recipe_cls = get_recipe(kw["model"])
    own = {f.name for f in dataclasses.fields(recipe_cls.Config)}
    foreign = sorted((given & model_keys) - own)
    if foreign:
        flags = ", ".join("--" + k.replace("_", "-") for k in foreign)
        raise ConfigError(f"{flags} does not apply to --model {kw['model']}")
    model_cfg = recipe_cls.make_config(**{k: kw[k] for k in own})
    # config.json: the values used (the auto preset's batch depends on the number of processes, as in NVlabs')
    model_cfg = dataclasses.asdict(recipe_cls.resolve_config(model_cfg, kw["size"], gpus))
    trainer_kw = {k: v for k, v in kw.items() if k not in model_keys}
    if trainer_kw.get("grid_size") is None:  # 8 x 8 up to 256 px; 4 x 4 at 512, 2 x 2 at 1024 (PNG encoding time)
        trainer_kw["grid_size"] = min(8, max(2, 2048 // kw["size"]))
    return TrainConfig(**trainer_kw, model_cfg=model_cfg)


def _resumed_config(state: dict, kw: dict, given: set[str], model_keys: set[str],
                    fine_tune: bool = False) -> TrainConfig:
    """The saved config with the flags that may change on resume. Fine-tuning an imported network may also
    change every training hyperparameter (lr, gamma, batch ...), but not the architecture."""
    saved = TrainConfig.from_dict(state["config"])
    arch = set(getattr(get_recipe(saved.model), "arch_fields", ()))
    if fine_tune:
        saved.outdir = kw["outdir"]
        if not kw.get("data"):
            raise ConfigError("fine-tuning needs --data: the images to fine-tune on")
        if "size" in given and kw["size"] != saved.size:
            raise ConfigError(f"the model is {saved.size} px and fine-tuning trains at its size: drop --size "
                              f"{kw['size']} (images are resized to {saved.size}), or start from a "
                              f"{kw['size']} px model")
        # A new run: every trainer setting comes from this command (defaults included), not from the run the
        # weights came from; the model (architecture, size, label vocabulary) stays.
        for f in dataclasses.fields(TrainConfig):
            if f.name in kw and f.name not in ("size", "model", "model_cfg", "label_names"):
                setattr(saved, f.name, kw[f.name])
        if saved.grid_size is None:
            saved.grid_size = min(8, max(2, 2048 // saved.size))
        recipe_cls = get_recipe(saved.model)
        if saved.labels and not recipe_cls.needs_labels(recipe_cls.make_config(**saved.model_cfg)):
            raise ConfigError(f"--labels {saved.labels}: the model is unconditional and would ignore them; drop "
                              f"--labels (or fine-tune a conditional model)")
    for key in sorted(given - {"outdir", "resume", "fresh"}):
        if key in RESUMABLE_OVERRIDES or key == "data":
            setattr(saved, key, kw[key])
            continue
        if fine_tune and key in model_keys and key not in arch:
            saved.model_cfg[key] = kw[key]
            continue
        old = saved.model_cfg.get(key) if key in model_keys else getattr(saved, key, None)
        if kw[key] != old:
            flag = "--" + key.replace("_", "-")
            raise ConfigError(f"{flag} {kw[key]} differs from the resumed run's {old}; "
                              f"drop the flag or start a new run")
    return saved


def _run_name(cfg: TrainConfig) -> str:
    """model-data-size; a data name that already ends with the size (mlds-64, faces_128, anime64) is not
    followed by it again."""
    import re
    data = "demo" if cfg.data.startswith("demo") else Path(cfg.data.rstrip("/")).stem or "data"
    return f"{cfg.model}-{data}" + ("" if re.search(rf"(?<!\d){cfg.size}$", data) else f"-{cfg.size}")
