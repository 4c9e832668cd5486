"""`stylegan-anime prepare-data` and `import-checkpoint`: turn what you have (images, a stylegan2-ada-pytorch
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
