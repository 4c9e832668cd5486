"""`stylegan-anime metrics` (score a checkpoint or a folder of images), `compare` (runs side by side) and
`download-inception` (the FID weights).
"""
from __future__ import annotations

from pathlib import Path

import click

from ..data import DataError
from ..training.checkpoint import error_text
from ..training.config import ConfigError
from .common import cli, user_errors


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
              help="comma-separated: fid5k, fid10k, fid50k, kid, swd, afd, c2st, tagacc (tag-conditional models)")
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
    _check_numbers(num, seed, size)
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
            return to_uint8(sampler.images(seeds, evaluation=True))

        plain = [m for m in wanted if m not in TAG_METRICS]
        values = evaluate(plain, generate, ds, num_gen=num, inception_path=inception, warn=warn,
                          device=sampler.device, seed=seed, desc=f"generating images from {checkpoint}") if plain else {}
        if "tagacc" in wanted:
            if not sampler.conditional:
                raise ConfigError(f"tagacc needs a tag-conditional model; this is {sampler.config.model}")

            def generate_tagged(labels):
                seeds = list(range(state["next"], state["next"] + len(labels)))
                state["next"] += len(labels)
                return to_uint8(sampler.images(seeds, labels=labels, evaluation=True))

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


def _check_numbers(num: int | None, seed: int, size: int | None) -> None:
    """--num, --seed and --size in range, before anything is read (ConfigError, one line)."""
    from ..generate import MAX_IMAGES, MAX_SEED
    from ..training.config import check_size
    if num is not None and not 1 <= num <= MAX_IMAGES:
        raise ConfigError(f"--num must be from 1 to {MAX_IMAGES:,} (generated images per metric), got {num}")
    if not 0 <= seed <= MAX_SEED - (num or 0):
        raise ConfigError(f"--seed must be from 0 to {MAX_SEED - (num or 0)}, got {seed}")
    if size is not None:
        check_size(size, "--size")


def _image_size(folder: str) -> int:
    """The size of the first readable image of a folder (generated images are square); ConfigError if none."""
    from ..metrics.registry import readable_images
    try:
        return readable_images(folder)[0][1][0]
    except ValueError as e:
        raise ConfigError(str(e)) from None


@cli.command(epilog="""
\b
Examples:
  stylegan-anime compare runs                                     # every run folder in runs/
  stylegan-anime compare runs/00000-dcgan-demo-64 runs/00001-stylegan2-demo-64 --plot compare.png
""")
@click.argument("runs", nargs=-1, required=True)
@click.option("--plot", type=click.Path(dir_okay=False), default=None, help="PNG of metrics vs kimg and wall-clock")
def compare(runs, plot):
    """Table of runs side by side (model, size, best and last metric values, kimg, wall-clock, img/s)."""
    from ..reports.compare import compare_runs, expand_run_dirs, format_table, plot_runs
    with user_errors():
        dirs = expand_run_dirs(runs)
        click.echo(format_table(compare_runs(dirs)))
        if plot:
            click.echo(f"wrote {plot_runs(dirs, plot)}", err=True)
