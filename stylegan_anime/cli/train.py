"""The `stylegan-anime` command: train, generate, prepare-data.

User mistakes (bad flags, missing data, unreadable checkpoints) are one line on stderr, `error: ...`,
exit code 2, never a traceback. Ctrl-C during training saves a checkpoint and exits with 130.
A run that diverges (NaN/inf gradients for --max-skipped iterations in a row) exits with 3.
"""
from __future__ import annotations

import dataclasses
import errno
import sys
from pathlib import Path

import click
from click.core import ParameterSource

from ..data import DataError
from ..models import get_recipe, model_names
from ..stylegan2.official_import import ImportCheckpointError
from ..training import console
from ..training.checkpoint import (CheckpointError, RunLock, WriteError, checkpoint_dir, error_text, find_resume,
                                  load_checkpoint, new_run_dir, os_reason, remove_stale_temps, writing)
from ..training.config import RESUMABLE_OVERRIDES, ConfigError, TrainConfig, validate

USER_ERRORS = (ConfigError, DataError, CheckpointError, ImportCheckpointError, WriteError)


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


# ---------------------------------------------------------------------------------------------------
@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="stylegan-anime")
def cli():
    """stylegan-anime: StyleGAN2-first GAN trainer for anime faces, with DCGAN/WGAN/WGAN-GP baselines.

    \b
    Examples:
      stylegan-anime train --data ~/faces --size 128 --outdir runs        # StyleGAN2, auto preset
      stylegan-anime train --data demo --size 64 --model dcgan --dim 32 --kimg 5
      stylegan-anime train --resume auto --outdir runs --kimg 200
      stylegan-anime generate --checkpoint runs/00000-stylegan2-faces-128 --seeds 0-63 --grid grid.png
      stylegan-anime prepare-data ~/faces.zip faces-64 --size 64
      stylegan-anime import-checkpoint network-snapshot-025000.pkl anime.pt
    """


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
  # equal training time: stop after 2 hours of training (evaluation not counted), FID every 15 minutes of it
  stylegan-anime train --data faces.zip --kimg 100000 --minutes 120 --metrics fid10k --metrics-minutes 15

--data takes a folder (recursive; jpg/jpeg/png/webp/bmp), a .zip, a packed set, 'demo' (10,000 procedural
faces) or 'demo:N'. kimg counts thousands of real images shown to D. Ctrl-C saves a checkpoint.

\b
Exit codes: 0 done; 2 a user error (one line); 3 diverged: --max-skipped iterations in a row had NaN/inf
gradients (nothing saved after the last good checkpoint; learning rate, --gamma or fp16 are likely causes);
130 interrupted (Ctrl-C / SIGTERM on any process) after saving a checkpoint; 1 another process of the run failed.
"""


@cli.command(epilog=TRAIN_EXAMPLES)
@click.option("--data", help="folder | file.zip | packed set | demo | demo:N")
@click.option("--labels", default=None, type=click.Path(dir_okay=False),
              help="CSV/JSON: file name -> tags like 'blonde hair blue eyes' (tag-conditional models)")
@click.option("--size", type=int, default=64, show_default=True, help="resolution: 64 or 128")
@click.option("--model", type=click.Choice(model_names()), default="stylegan2", show_default=True)
@click.option("--batch-gpu", type=int, default=None, help="images per forward pass; batch/batch-gpu rounds are accumulated")
@click.option("--kimg", type=float, default=100.0, show_default=True, help="train until this many kimg of reals were shown")
@click.option("--minutes", type=float, default=None,
              help="...or until this many minutes of training time, whichever comes first (evaluation, grids and "
                   "checkpoints are not counted); then the final grids, metrics and checkpoint as at --kimg")
@click.option("--outdir", default="runs", show_default=True, help="runs are written to OUTDIR/NNNNN-model-data-size")
@click.option("--resume", default=None, help="'auto' (newest run in --outdir) or a checkpoint / run folder")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--amp", type=click.Choice(["off", "bf16", "fp16"]), default="off", show_default=True, help="mixed precision")
@click.option("--xflip/--no-xflip", default=False, show_default=True, help="random horizontal flips of the reals")
@click.option("--snap", "snap_kimg", type=float, default=10.0, show_default=True, help="checkpoint every N kimg")
@click.option("--grid", "grid_kimg", type=float, default=2.0, show_default=True, help="sample grid every N kimg")
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
              help="metrics of G_ema during training, comma-separated (fid10k, fid50k, kid, swd, afd) or none")
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
@click.option("--ops", type=click.Choice(["auto", "cuda", "ref"]), default="auto", show_default=True,
              help="custom ops: fused CUDA kernels (built on first use), the PyTorch reference, or auto")
@_model_options
@click.pass_context
def train(ctx, **kw):
    """Train a GAN (any model) on a folder, zip, packed set or the built-in demo faces."""
    from ..cuda_ops import set_default_impl
    from ..training import distributed

    console.begin_command()  # a closed terminal or pipe never stops the run; lines for RUN/log.txt (console.py)
    set_default_impl(kw.pop("ops"))
    d = distributed.init_from_env(kw["device"])  # a torchrun launch: join the group; else one process
    try:
        _train(ctx, kw, d)
    except RuntimeError as e:  # a collective failed: some other rank died (torchrun stops the rest)
        if not d.active or isinstance(e, USER_ERRORS):
            raise
        raise RankFailed(f"rank {d.rank}: another process of the run stopped ({str(e).splitlines()[0]})") from None
    finally:
        distributed.shutdown()


class RankFailed(click.ClickException):
    exit_code = 1


EXIT_DIVERGED = 3  # training diverged (trainer.Diverged): nothing saved after the last good checkpoint
EXIT_INTERRUPTED = 130  # Ctrl-C / SIGTERM: stopped after saving a checkpoint (128 + SIGINT, as a shell reports)


def _train(ctx, kw: dict, d) -> None:
    from ..data import open_dataset
    from ..training.distributed import barrier, broadcast_object
    from ..training.trainer import Diverged, Interrupted, Trainer, train_seconds

    say = console.say if d.is_main else (lambda msg: None)
    _quiet_thread_write_errors()
    given = {k for k in kw if ctx.get_parameter_source(k) == ParameterSource.COMMANDLINE}
    if "metrics_minutes" in given and "metrics_kimg" not in given:  # evaluate by training time only
        kw["metrics_kimg"] = None
        given.add("metrics_kimg")
    model_keys = set(_model_fields())
    resume = kw.pop("resume")
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

    imported = state is not None and "imported" in state  # an imported network: fine-tune it in a new run
    if state is None:
        cfg = _new_config(kw, given, model_keys)
    else:
        cfg = _resumed_config(state, kw, given, model_keys, fine_tune=imported)
    validate(cfg, world=d.world)
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
    say(f"done: {trainer.nimg / 1000:g} kimg in {trainer.train_s / 60:.1f} minutes of training; checkpoint {path}\n"
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


def _new_config(kw: dict, given: set[str], model_keys: set[str]) -> TrainConfig:
    if not kw.get("data"):
        raise ConfigError("--data is required: a folder of images, a .zip, a packed set, or 'demo'")
    recipe_cls = get_recipe(kw["model"])
    own = {f.name for f in dataclasses.fields(recipe_cls.Config)}
    foreign = sorted((given & model_keys) - own)
    if foreign:
        flags = ", ".join("--" + k.replace("_", "-") for k in foreign)
        raise ConfigError(f"{flags} does not apply to --model {kw['model']}")
    model_cfg = recipe_cls.make_config(**{k: kw[k] for k in own})
    model_cfg = dataclasses.asdict(recipe_cls.resolve_config(model_cfg, kw["size"]))  # config.json: the values used
    trainer_kw = {k: v for k, v in kw.items() if k not in model_keys}
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
            raise ConfigError("fine-tuning an imported network needs --data")
    for key in sorted(given - {"outdir", "resume"}):
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


# ---------------------------------------------------------------------------------------------------
GENERATE_EXAMPLES = """
\b
Examples:
  stylegan-anime generate --checkpoint runs/00000-stylegan2-demo-64 --seeds 0-63 --grid grid.png
  stylegan-anime generate --checkpoint runs/00000-stylegan2-demo-64/checkpoints/ckpt-000100000.pt \\
      --count 1000 --outdir submission --tgz submission.tgz     # 1.jpg ... 1000.jpg (NTU HW6 layout)
  stylegan-anime generate --checkpoint runs/00002-cgan-demo-64 --tags "pink hair, black eyes" --grid pink.png
  stylegan-anime generate --checkpoint runs/00003-acgan-demo-64 --hair-rgb "#ff8800" --eye-rgb 0,128,255 --grid c.png
"""


@cli.command(epilog=GENERATE_EXAMPLES)
@click.option("--checkpoint", required=True, help="a checkpoint file, or a run folder (its newest checkpoint)")
@click.option("--seeds", default=None, help="seeds for --grid, e.g. 0-63 or 1,5,9 [default: 0-63]")
@click.option("--grid", type=click.Path(dir_okay=False), default=None, help="write one grid picture here")
@click.option("--cols", type=int, default=None, help="grid columns [default: square]")
@click.option("--count", type=int, default=None, help="write COUNT images (seeds 0..COUNT-1, offset by --seed)")
@click.option("--seed", type=int, default=0, show_default=True, help="first seed for --count")
@click.option("--outdir", type=click.Path(file_okay=False), default=None, help="folder for --count images")
@click.option("--ext", type=click.Choice(["jpg", "png"]), default="jpg", show_default=True)
@click.option("--tgz", type=click.Path(dir_okay=False), default=None, help="also pack the --count images into this .tgz")
@click.option("--tags", default=None, help="tag-conditional models: e.g. 'pink hair, black eyes' for every image")
@click.option("--hair-rgb", default=None, help="rgb-embed models: hair colour as #rrggbb, r,g,b or a colour name")
@click.option("--eye-rgb", default=None, help="rgb-embed models: eye colour as #rrggbb, r,g,b or a colour name")
@click.option("--ema/--no-ema", default=True, show_default=True, help="use G_ema (default) or the raw G")
@click.option("--batch", type=int, default=64, show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--ops", type=click.Choice(["auto", "cuda", "ref"]), default="auto", show_default=True,
              help="custom ops: fused CUDA kernels, the PyTorch reference, or auto")
def generate(checkpoint, seeds, grid, cols, count, seed, outdir, ext, tgz, tags, hair_rgb, eye_rgb, ema, batch,
             device, ops):
    """Generate images from a checkpoint: a grid of seeds, or COUNT numbered files."""
    from ..cuda_ops import set_default_impl
    from ..generate import Sampler, parse_seeds

    set_default_impl(ops)
    if grid is None and count is None:
        raise ConfigError("say what to write: --grid FILE (with --seeds) or --count N --outdir DIR")
    if count is not None and (count < 1 or outdir is None):
        raise ConfigError("--count needs a positive number and --outdir DIR")
    if batch < 1:
        raise ConfigError(f"--batch must be positive, got {batch}")
    if tgz is not None and count is None:
        raise ConfigError("--tgz packs the --count images: give --count N --outdir DIR too")
    sampler = Sampler(checkpoint, device=device, use_ema=ema)
    labels = _condition(sampler, tags, hair_rgb, eye_rgb)
    if grid is not None:
        path = sampler.save_grid(parse_seeds(seeds or "0-63"), grid, cols=cols, batch=batch, labels=labels)
        click.echo(f"wrote {path}", err=True)
    if count is not None:
        from ..tools.submission import pack
        sampler.save_files(list(range(seed, seed + count)), outdir, ext=ext, batch=batch, labels=labels)
        click.echo(f"wrote {count} images to {outdir}", err=True)
        if tgz is not None:
            files = [Path(outdir) / f"{i}.{ext}" for i in range(1, count + 1)]
            click.echo(f"wrote {pack(files, Path(tgz))}", err=True)


def _condition(sampler, tags, hair_rgb, eye_rgb):
    """The labels --tags / --hair-rgb / --eye-rgb ask for ([1, K], or a float condition), or None."""
    if tags is None and hair_rgb is None and eye_rgb is None:
        return None
    if not sampler.conditional:
        raise ConfigError(f"--tags / --hair-rgb / --eye-rgb need a tag-conditional model; this is {sampler.config.model}")
    from ..tools.tags import rgb_labels, tags_to_labels
    try:
        if tags is not None:
            if hair_rgb or eye_rgb:
                raise ValueError("give either --tags or --hair-rgb/--eye-rgb, not both")
            return tags_to_labels(tags, sampler.config.label_names)
        return rgb_labels(hair_rgb, eye_rgb, sampler=sampler)
    except ValueError as e:
        raise ConfigError(str(e)) from None


# ---------------------------------------------------------------------------------------------------
@cli.command("prepare-data", epilog="""
\b
Examples:
  stylegan-anime prepare-data ~/anime-faces faces-64 --size 64
  stylegan-anime prepare-data crypko.zip crypko-128 --size 128
  stylegan-anime prepare-data ~/faces faces-64 --size 64 --labels tags.csv   # for cgan / acgan / --cond
  stylegan-anime train --data faces-64 --size 64
""")
@click.argument("source")
@click.argument("out")
@click.option("--size", type=int, default=64, show_default=True, help="resolution: 64 or 128")
@click.option("--workers", type=int, default=None, help="decoding processes [default: up to 8]")
@click.option("--labels", default=None, type=click.Path(dir_okay=False),
              help="CSV/JSON: file name -> tags like 'blonde hair blue eyes', stored in the pack")
def prepare_data(source, out, size, workers, labels):
    """Decode SOURCE (folder, zip or demo) once into a packed set OUT for fast, repeatable training."""
    from ..data import prepare_dataset
    from ..training.config import SIZES

    if size not in SIZES:
        raise ConfigError(f"--size must be one of {', '.join(map(str, SIZES))}, got {size}")
    ds = prepare_dataset(source, out, size, workers=workers, labels=labels)
    click.echo(f"packed {len(ds)} images of {size}x{size} into {out}", err=True)


# ---------------------------------------------------------------------------------------------------
@cli.command("import-checkpoint", epilog="""
\b
Examples:
  stylegan-anime import-checkpoint network-snapshot-025000.pkl anime.pt
  stylegan-anime generate --checkpoint anime.pt --seeds 0-15 --grid grid.png
  stylegan-anime train --resume anime.pt --data ~/faces --kimg 200 --gamma 1   # fine-tune (64/128 px models)
""")
@click.argument("pkl", type=click.Path(dir_okay=False))
@click.argument("out", type=click.Path(dir_okay=False))
def import_checkpoint_cmd(pkl, out):
    """Import a stylegan2-ada-pytorch network pickle (G, D, G_ema) without running any code from it."""
    from ..stylegan2.official_import import import_checkpoint

    if not Path(pkl).is_file():
        raise ConfigError(f"pickle does not exist: {pkl}")
    path = import_checkpoint(pkl, out)
    click.echo(f"imported {pkl} -> {path}", err=True)


# ---------------------------------------------------------------------------------------------------
@cli.command(epilog="""
\b
Examples:
  stylegan-anime bench                                   # every model; StyleGAN2 auto at 64/128 px on CUDA,
                                                         # its cpu preset at 64 px on a CPU
  stylegan-anime bench --models stylegan2 --preset cpu --channel-base 2048 --channel-max 128
  stylegan-anime bench --models stylegan2 --sizes 128 --kimg 4 --amp bf16
  stylegan-anime bench --models stylegan2 --sizes 128 --reference ~/src/stylegan2-ada-pytorch
  stylegan-anime bench --models stylegan2 --sizes 64 --profile prof/   # op table + Chrome trace per case
""")
@click.option("--models", default="stylegan2,dcgan,dcgan-tutorial,wgan,wgan-gp", show_default=True)
@click.option("--sizes", default=None, help="comma-separated, 64 and/or 128 [default: 64,128 on CUDA, 64 on a CPU]")
@click.option("--preset", type=click.Choice(["auto", "paper", "cpu"]), default=None,
              help="StyleGAN2 preset [default: auto on CUDA, cpu on a CPU]")
@click.option("--channel-base", type=int, default=None, help="StyleGAN2 channel base [default: the preset's]")
@click.option("--channel-max", type=int, default=None, help="StyleGAN2 channel maximum [default: the preset's]")
@click.option("--kimg", type=float, default=1.0, show_default=True, help="timed kimg per case (after warm-up)")
@click.option("--warmup", type=int, default=3, show_default=True, help="untimed iterations first")
@click.option("--batch-gpu", type=int, default=None, help="images per forward pass [default: the whole batch]")
@click.option("--amp", type=click.Choice(["off", "bf16", "fp16"]), default="off", show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--ops", type=click.Choice(["auto", "cuda", "ref"]), default="auto", show_default=True)
@click.option("--reference", type=click.Path(file_okay=False), default=None,
              help="a stylegan2-ada-pytorch checkout to time on the same GPU (StyleGAN2 sizes only)")
@click.option("--profile", "profile_dir", type=click.Path(file_okay=False), default=None,
              help="instead of timing, profile each case with torch.profiler: op table (printed and written) and a "
                   "Chrome trace in this folder")
@click.option("--profile-iterations", type=int, default=16, show_default=True,
              help="iterations profiled (16 covers StyleGAN2's lazy regularisation)")
def bench(models, sizes, preset, channel_base, channel_max, kimg, warmup, batch_gpu, amp, device, ops, reference,
          profile_dir, profile_iterations):
    """Time training per model: s/kimg, img/s and peak memory after warm-up, printed as a table."""
    from ..bench import bench_data, bench_model, bench_plan, bench_reference, format_table
    from ..cuda_ops import set_default_impl
    from ..training.trainer import resolve_device

    set_default_impl(ops)
    names = [m.strip() for m in models.split(",") if m.strip()]
    unknown = [m for m in names if m not in model_names()]
    if unknown:
        raise ConfigError(f"--models: unknown {', '.join(unknown)}; choose from {', '.join(model_names())}")
    try:
        res, sg2 = bench_plan(resolve_device(device).type == "cuda", sizes, preset, channel_base, channel_max)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if kimg <= 0 or warmup < 0:
        raise ConfigError("--kimg must be positive, --warmup >= 0")
    over = lambda name: sg2 if name == "stylegan2" else None  # noqa: E731  (the StyleGAN2 flags)
    sg2_note = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in sg2.items())
    if reference:
        from ..bench import check_reference
        try:
            check_reference(reference)
        except ValueError as e:
            raise ConfigError(str(e)) from None
    if profile_dir:
        from ..bench import profile_model
        if profile_iterations < 1:
            raise ConfigError("--profile-iterations must be at least 1")
        for size in res:
            for name in names:
                click.echo(f"profiling {name} at {size} px ...", err=True)
                table, trace = profile_model(name, size, profile_dir, iterations=profile_iterations, warmup=warmup,
                                             device=device, batch_gpu=batch_gpu, amp=amp, overrides=over(name))
                click.echo(table)
                click.echo(f"trace: {trace}", err=True)
        return
    rows = []
    for size in res:
        click.echo(f"data delivery at {size} px: {bench_data(size, device=device):,.0f} img/s", err=True)
        for name in names:
            click.echo(f"timing {name} at {size} px ...", err=True)
            rows.append(bench_model(name, size, kimg=kimg, warmup=warmup, device=device, batch_gpu=batch_gpu, amp=amp,
                                    overrides=over(name)))
            if name == "stylegan2":
                rows[-1].note = sg2_note
        if reference and "stylegan2" in names:
            ours = next(r for r in rows if r.name == "stylegan2" and r.size == size)
            try:
                ref = bench_reference(reference, size, batch=ours.batch, kimg=max(kimg, 4))
            except ValueError as e:
                raise ConfigError(str(e)) from None
            ref.note = f"ours is {ref.sec_per_kimg / ours.sec_per_kimg:.2f}x faster"
            rows.append(ref)
    device_name = torch_device_name(device)
    click.echo(f"# {device_name}, torch {__import__('torch').__version__}")
    click.echo(format_table(rows))


def torch_device_name(device: str) -> str:
    import torch
    if device != "cpu" and torch.cuda.is_available():
        return torch.cuda.get_device_name()
    import platform
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


# ---------------------------------------------------------------------------------------------------
@cli.command(epilog="""
\b
Examples:
  stylegan-anime doctor            # report only
  stylegan-anime doctor --build    # also compile the CUDA ops now (on a GPU machine)
""")
@click.option("--build", "try_build", is_flag=True, help="compile the CUDA ops now if a GPU is present (else only report)")
def doctor(try_build):
    """Check torch, CUDA, nvcc, ninja and the compiler; say whether training uses the fused CUDA ops or the reference."""
    from ..cuda_ops import doctor_report

    rows = doctor_report(try_build=try_build)
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        click.echo(f"{key:<{width}}  {value}")


@cli.command("metrics", epilog="""
\b
Examples:
  stylegan-anime metrics --checkpoint runs/00001-stylegan2-faces-64 --data faces --metrics fid10k,kid,swd,afd
  stylegan-anime metrics --images submission --data faces --metrics fid10k,afd     # a folder 1.jpg ... N.jpg
  stylegan-anime metrics --images gen96 --data faces-64 --size 64 --metrics swd     # 96 px images vs a 64 px pack
  stylegan-anime metrics --checkpoint RUN --data faces --metrics fid10k --inception ~/pt_inception-2015-12-05-6726825d.pth
""")
@click.option("--checkpoint", default=None, help="a checkpoint or run folder to generate from (G_ema, psi 1)")
@click.option("--images", type=click.Path(file_okay=False), default=None, help="...or a folder of generated images")
@click.option("--data", required=True, help="the real images: folder | zip | packed set | demo")
@click.option("--metrics", "names", default="swd", show_default=True,
              help="comma-separated: fid5k, fid10k, fid50k, kid, swd, afd, tagacc (tag-conditional models)")
@click.option("--num", type=int, default=None, help="generated images per metric [default: the metric's own]")
@click.option("--inception", type=click.Path(dir_okay=False), default=None, help="FID Inception weights file")
@click.option("--seed", type=int, default=0, show_default=True, help="first seed of the generated images")
@click.option("--size", type=int, default=None,
              help="the resolution the images are compared at (--data is opened at it, generated images are "
                   "resized to it) [default: the checkpoint's size; for --images, the first image's]")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object instead of lines")
@click.option("--device", default="auto", show_default=True)
def metrics_cmd(checkpoint, images, data, names, num, inception, seed, size, as_json, device):
    """Score a checkpoint or a folder of generated images: FID, KID, SWD, anime-face detection rate."""
    import json as _json

    import numpy as np
    import torch

    from ..metrics import ALL_METRICS, TAG_METRICS, evaluate, evaluate_folder, evaluate_tags

    wanted = [m.strip() for m in names.split(",") if m.strip()]
    unknown = [m for m in wanted if m not in ALL_METRICS]
    if unknown:
        raise ConfigError(f"--metrics: unknown {', '.join(unknown)}; choose from {', '.join(ALL_METRICS)}")
    if (checkpoint is None) == (images is None):
        raise ConfigError("give exactly one of --checkpoint and --images")
    if images is not None and any(m in TAG_METRICS for m in wanted):
        raise ConfigError("tagacc scores a checkpoint (it asks for tags): use --checkpoint")
    warn = lambda msg: click.echo(f"warning: {msg}", err=True)  # noqa: E731
    if images is not None:
        if not Path(images).is_dir():
            raise ConfigError(f"--images folder does not exist: {images}")
        ds = _metrics_data(data, size, _image_size(images), "the first image's")
        try:
            values = evaluate_folder(wanted, images, ds, num_gen=num, inception_path=inception, warn=warn,
                                     device=device if device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
        except ValueError as e:
            raise ConfigError(str(e)) from None
    else:
        from ..generate import Sampler
        from ..imageio_utils import to_uint8
        sampler = Sampler(checkpoint, device=device)
        ds = _metrics_data(data, size, sampler.config.size, "the checkpoint's")
        state = {"next": seed}

        def generate(n: int) -> np.ndarray:
            seeds = list(range(state["next"], state["next"] + n))
            state["next"] += n
            return to_uint8(sampler.images(seeds))

        plain = [m for m in wanted if m not in TAG_METRICS]
        values = evaluate(plain, generate, ds, num_gen=num, inception_path=inception, warn=warn,
                          device=sampler.device, seed=seed, desc=f"generating images from {checkpoint}") if plain else {}
        if "tagacc" in wanted:
            if not sampler.conditional:
                raise ConfigError(f"tagacc needs a tag-conditional model; this is {sampler.config.model}")

            def generate_tagged(labels):
                seeds = list(range(state["next"], state["next"] + len(labels)))
                state["next"] += len(labels)
                return to_uint8(sampler.images(seeds, labels=labels))

            values.update(evaluate_tags(generate_tagged, ds, n=num or 1000, device=sampler.device, seed=seed))
    if as_json:
        click.echo(_json.dumps(values))
    else:
        for k, v in values.items():
            click.echo(f"{k:<12} {v:.6g}")


@cli.command("download-inception", epilog="""
\b
Examples:
  stylegan-anime download-inception                      # into the torch-hub cache, where FID looks first
  stylegan-anime download-inception --dest ~/weights/    # then --inception ~/weights/pt_inception-...pth
""")
@click.option("--dest", default=None, help="file or folder [default: the torch-hub cache]")
def download_inception_cmd(dest):
    """Fetch the FID Inception-v3 weights (pytorch-fid's file, SHA-256 checked) on a machine with network."""
    from ..metrics import download_inception
    try:
        path = download_inception(dest)
    except Exception as e:  # no network, proxy, hash mismatch: one line, nothing half-written is kept
        raise ConfigError(f"download failed: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    click.echo(f"saved {path}", err=True)


def _metrics_data(data: str, size: int | None, default: int, whose: str):
    """--data opened at --size, or at the default (the checkpoint's or the first image's size), saying so when
    that size does not fit."""
    from ..data import open_dataset
    try:
        return open_dataset(data, size or default)
    except (DataError, ConfigError) as e:
        if size is not None:
            raise
        raise ConfigError(f"{error_text(e)} (the images are compared at {whose} size {default}; "
                      f"choose another with --size)") from None


def _image_size(folder: str) -> int:
    """The size of the first image of a folder (generated images are square)."""
    from PIL import Image
    for p in sorted(Path(folder).iterdir()):
        if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp", ".bmp"):
            with Image.open(p) as im:
                return im.size[0]
    raise ConfigError(f"no images in {folder}")


from . import sample  # noqa: E402,F401  (registers video, style-mixing, truncation, tags-grid, compare)


# ---------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> None:
    """Console entry point: runs the click group, turning user mistakes into one-line errors (exit 2)."""
    # console.say: the line also goes to RUN/log.txt while a training run's log is open (closed at the end)
    try:
        code = cli.main(args=argv, prog_name="stylegan-anime", standalone_mode=False)
    except click.exceptions.Abort:
        console.say("aborted")
        sys.exit(130)
    except click.ClickException as e:  # bad flags, missing arguments, wrong types (exit 2); a failed rank (1)
        console.say(f"error: {e.format_message()}")
        sys.exit(e.exit_code if isinstance(e, RankFailed) else 2)
    except USER_ERRORS as e:
        console.say(f"error: {error_text(e)}")
        sys.exit(2)
    except BaseException as e:  # a bug, or Ctrl-C twice: the traceback as usual, and in RUN/log.txt
        if not isinstance(e, SystemExit):
            import traceback
            console.log(traceback.format_exc().rstrip())
        raise
    finally:
        console.end_command()
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
