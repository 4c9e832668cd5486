"""Preview what the trainer will see: a grid of images from any --data source, after conversion and cropping.

    python tools/show_dataset.py --data ~/anime-faces --size 64 --out preview.png
    python tools/show_dataset.py --data demo --size 128 --count 36 --out demo.png
"""
from __future__ import annotations

import sys

import click
import numpy as np
import torch


@click.command()
@click.option("--data", required=True, help="folder | file.zip | packed set | demo | demo:N")
@click.option("--size", type=int, default=64, show_default=True)
@click.option("--count", type=int, default=64, show_default=True, help="images in the grid")
@click.option("--seed", type=int, default=0, show_default=True, help="which random images to show")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="PNG to write")
def main(data, size, count, seed, out):
    from stylegan_anime.data import DataError, open_dataset
    from stylegan_anime.imageio_utils import make_grid, save_image

    try:
        ds = open_dataset(data, size)
    except DataError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
    idx = np.sort(np.random.default_rng(seed).choice(len(ds), size=min(count, len(ds)), replace=False))
    x = torch.from_numpy(np.array(ds.images[idx])).permute(0, 3, 1, 2).float() / 127.5 - 1
    save_image(make_grid(x), out)
    click.echo(f"{len(ds)} images of {size}x{size} in {data}; wrote {len(idx)} to {out}", err=True)


if __name__ == "__main__":
    main()
