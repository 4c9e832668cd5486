"""`stylegan-anime prepare-data` and `import-checkpoint`: turn what you have (images, an NVlabs StyleGAN2
pickle) into what training and sampling read (a packed set, a checkpoint).
"""
from __future__ import annotations

from pathlib import Path

import click

from ..training.config import ConfigError
from .common import cli


@cli.command("prepare-data", epilog="""
\b
Examples:
  stylegan-anime prepare-data ~/anime-faces faces-64 --size 64
  stylegan-anime prepare-data crypko.zip crypko-128 --size 128
  stylegan-anime prepare-data ~/faces faces-64 --size 64 --labels tags.csv   # for cgan / acgan / --cond
  stylegan-anime prepare-data ~/illustrations faces-128 --size 128 --crop-faces   # needs [faces]
  stylegan-anime prepare-data art.zip faces-64 --size 64 --crop-faces --margin 0.6 --min-face 40
  stylegan-anime train --data faces-64 --size 64
""")
@click.argument("source")
@click.argument("out")
@click.option("--size", type=int, default=64, show_default=True,
              help="resolution: a power of two from 32 to 1024; smaller sources are upscaled (Lanczos) and counted")
@click.option("--workers", type=int, default=None, help="decoding processes [default: up to 8]")
@click.option("--labels", default=None, type=click.Path(dir_okay=False),
              help="CSV/JSON: file name -> tags like 'blonde hair blue eyes', stored in the pack")
@click.option("--crop-faces", is_flag=True,
              help="SOURCE holds whole illustrations: detect anime faces (animeface) and pack a square crop of each")
@click.option("--margin", type=float, default=0.5, show_default=True,
              help="--crop-faces: crop side = (1 + 2 x margin) x face size")
@click.option("--min-face", type=int, default=None,
              help="--crop-faces: skip faces smaller than this (source px) [default: size / (1 + 2 x margin)]")
@click.option("--dedup-distance", type=int, default=4, show_default=True,
              help="--crop-faces: drop crops within this many bits (of 64) of a kept crop's perceptual hash; "
                   "0 = identical only, -1 = keep all")
@click.option("--progress/--no-progress", default=True, show_default=True, help="progress bar")
def prepare_data(source, out, size, workers, labels, crop_faces, margin, min_face, dedup_distance, progress):
    """Decode SOURCE (folder, zip or demo) once into a packed set OUT for fast, repeatable training.

    With --crop-faces, SOURCE holds whole illustrations: every anime face found is cropped out (a square
    around it), near duplicates are dropped, and each crop's source file and box are recorded in the pack.
    """
    from ..data import prepare_dataset
    from ..training.config import check_size

    check_size(size)
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers must be positive, got {workers}")
    ctx = click.get_current_context()
    given = [f"--{n.replace('_', '-')}" for n in ("margin", "min_face", "dedup_distance")
             if ctx.get_parameter_source(n) is not click.core.ParameterSource.DEFAULT]
    if given and not crop_faces:
        raise ConfigError(f"{given[0]} only applies with --crop-faces")
    if crop_faces:
        from ..data.faces import CropSettings, crop_faces as crop

        settings = CropSettings(size, margin=margin, min_face=min_face, dedup_distance=dedup_distance)
        ds, report = crop(source, out, settings, labels=labels, workers=workers, progress=progress)
        for line in report.lines():
            click.echo(line, err=True)
        click.echo(f"packed {len(ds)} face crops of {size}x{size} into {out}", err=True)
        return
    ds = prepare_dataset(source, out, size, workers=workers, labels=labels, progress=progress)
    upscaled = int(ds.meta.get("upscaled", 0))
    note = f" ({upscaled} upscaled from smaller sources)" if upscaled else ""
    click.echo(f"packed {len(ds)} images of {size}x{size} into {out}{note}", err=True)


# ---------------------------------------------------------------------------------------------------
@cli.command("import-checkpoint", epilog="""
\b
Examples:
  stylegan-anime import-checkpoint network-snapshot-025000.pkl anime.pt     # stylegan2-ada-pytorch
  stylegan-anime import-checkpoint anime-portraits-512-tf.pkl portraits.pt   # a TensorFlow-era pickle
  stylegan-anime import-checkpoint cifar10.pkl cifar.pt                     # class-conditional (10 classes)
  stylegan-anime generate --checkpoint anime.pt --seeds 0-15 --grid grid.png
  stylegan-anime generate --checkpoint cifar.pt --class 3 --seeds 0-15 --grid cats.png
  stylegan-anime train --resume anime.pt --data ~/faces --kimg 200 --gamma 1   # fine-tune
""")
@click.argument("pkl", type=click.Path(dir_okay=False))
@click.argument("out", type=click.Path(dir_okay=False))
def import_checkpoint_cmd(pkl, out):
    """Import an NVlabs StyleGAN2 network pickle (G, D, G_ema) without running any code from it.

    Both formats: stylegan2-ada-pytorch snapshots (network-snapshot-*.pkl, and NVlabs' published PyTorch
    models) and TensorFlow-era pickles of the stylegan2 / stylegan2-ada TensorFlow releases (read without
    TensorFlow). Conditional networks become class-conditional models: generate --class K.
    """
    from ..stylegan2.import_pickle import import_pickle

    if not Path(pkl).is_file():
        raise ConfigError(f"pickle does not exist: {pkl}")
    summary = import_pickle(pkl, out)
    click.echo(summary.line(pkl), err=True)
