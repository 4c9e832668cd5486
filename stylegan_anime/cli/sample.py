"""The `stylegan-anime` subcommands that sample a trained checkpoint: generate (grids, numbered files, tag or
colour conditions), videos, figures and tag grids (the functions live in `stylegan_anime.reports`; `tools/*.py`
are the same as standalone scripts). Bad input is a one-line `error: ...` with exit code 2.
"""
from __future__ import annotations

from pathlib import Path

import click

from ..training.config import ConfigError
from .common import cli, user_errors


def _sampler(checkpoint: str, device: str, ema: bool = True):
    from ..generate import Sampler
    return Sampler(checkpoint, device=device, use_ema=ema)


def _seeds(text: str) -> list[int]:
    from ..generate import parse_seeds
    return parse_seeds(text)


checkpoint_option = click.option("--checkpoint", required=True,
                                 help="a checkpoint file, or a run folder (its newest checkpoint)")
device_option = click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda | cuda:N")


GENERATE_EXAMPLES = """
\b
Examples:
  stylegan-anime generate --checkpoint runs/00000-stylegan2-demo-64 --seeds 0-63 --grid grid.png
  stylegan-anime generate --checkpoint runs/00000-stylegan2-demo-64/checkpoints/ckpt-000100000.pt \\
      --count 1000 --outdir submission --tgz submission.tgz     # 1.jpg ... 1000.jpg (NTU HW6 layout)
  stylegan-anime generate --checkpoint runs/00002-cgan-demo-64 --tags "pink hair, black eyes" --grid pink.png
  stylegan-anime generate --checkpoint runs/00003-acgan-demo-64 --hair-rgb "#ff8800" --eye-rgb 0,128,255 --grid c.png
  stylegan-anime generate --checkpoint cifar10.pt --class 3 --seeds 0-15 --grid class3.png   # class-conditional
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
@click.option("--class", "class_index", type=int, default=None,
              help="class-conditional models (an imported conditional NVlabs network): every image of class K "
                   "[default: a random class per seed]")
@click.option("--ema/--no-ema", default=True, show_default=True, help="use G_ema (default) or the raw G")
@click.option("--batch", type=int, default=64, show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--ops", type=click.Choice(["auto", "cuda", "ref"]), default="auto", show_default=True,
              help="custom ops: fused CUDA kernels, the PyTorch reference, or auto")
def generate(checkpoint, seeds, grid, cols, count, seed, outdir, ext, tgz, tags, hair_rgb, eye_rgb, ema, batch,
             device, ops, class_index=None):
    """Generate images from a checkpoint: a grid of seeds, or COUNT numbered files."""
    from ..cuda_ops import set_default_impl
    from ..generate import MAX_BATCH, Sampler, check_grid, count_seeds, parse_seeds
    from ..output_files import claim_paths

    set_default_impl(ops)
    if grid is None and count is None:
        raise ConfigError("say what to write: --grid FILE (with --seeds) or --count N --outdir DIR")
    if count is not None and outdir is None:
        raise ConfigError("--count needs --outdir DIR")
    if not 1 <= batch <= MAX_BATCH:
        raise ConfigError(f"--batch must be from 1 to {MAX_BATCH}, got {batch}")
    if tgz is not None and count is None:
        raise ConfigError("--tgz packs the --count images: give --count N --outdir DIR too")
    if tgz is not None and not Path(tgz).name.endswith((".tgz", ".tar.gz")):
        raise ConfigError(f"--tgz: the archive name must end in .tgz or .tar.gz, got {Path(tgz).name!r}")
    # every value and every output path checked before the checkpoint is read: nothing is drawn in vain
    grid_seeds = parse_seeds(seeds or "0-63") if grid is not None else None
    if grid_seeds is not None and cols is not None:
        check_grid(len(grid_seeds), 32, cols)  # --cols alone (the size is known once the checkpoint is read)
    file_seeds = count_seeds(count, seed) if count is not None else None
    claim_paths([p for p in (grid, tgz) if p is not None])
    if file_seeds is not None:
        claim_paths((Path(outdir) / f"{i}.{ext}" for i in range(1, count + 1)), "write into an empty or new --outdir")
    if grid is not None and tgz is not None and Path(grid).resolve() == Path(tgz).resolve():
        raise ConfigError("--grid and --tgz name the same file")
    sampler = Sampler(checkpoint, device=device, use_ema=ema)
    labels = _class_labels(sampler, class_index, tags_given=any(v is not None for v in (tags, hair_rgb, eye_rgb)))
    if labels is None:
        labels = _condition(sampler, tags, hair_rgb, eye_rgb)
    if grid_seeds is not None:
        check_grid(len(grid_seeds), sampler.config.size, cols)
    if grid is not None:
        path = sampler.save_grid(grid_seeds, grid, cols=cols, batch=batch, labels=labels)
        click.echo(f"wrote {path}", err=True)
    if file_seeds is not None:
        from ..output_files import new_output
        from ..training.checkpoint import writing
        from ..reports.submission import pack
        sampler.save_files(file_seeds, outdir, ext=ext, batch=batch, labels=labels)
        click.echo(f"wrote {count} images to {outdir}", err=True)
        if tgz is not None:
            files = [Path(outdir) / f"{i}.{ext}" for i in range(1, count + 1)]
            with writing(tgz), new_output(tgz) as tmp:  # never over a file that appeared meanwhile
                pack(files, Path(tmp))
            click.echo(f"wrote {tgz}", err=True)


def _class_labels(sampler, k: int | None, tags_given: bool = False):
    """--class K of a class-conditional model: labels [1, 1] (= K for every image); None without --class (a random
    class per seed) or for a model without classes."""
    import torch

    n = int(getattr(sampler.recipe.cfg, "num_classes", 0) or 0)
    if n and tags_given:
        raise ConfigError(f"--tags / --hair-rgb / --eye-rgb need a tag-conditional model; this one is "
                          f"class-conditional ({n} classes): use --class K")
    if k is None:
        return None
    if not n:
        raise ConfigError("--class needs a class-conditional model (e.g. an imported conditional NVlabs network); "
                          f"this {sampler.config.model} model has no classes")
    if not 0 <= k < n:
        raise ConfigError(f"--class must be from 0 to {n - 1} (the model has {n} classes), got {k}")
    return torch.tensor([[k]], dtype=torch.int64)


def _condition(sampler, tags, hair_rgb, eye_rgb):
    """The labels --tags / --hair-rgb / --eye-rgb ask for ([1, K], or a float condition), or None."""
    if tags is None and hair_rgb is None and eye_rgb is None:
        return None
    if not sampler.conditional:
        raise ConfigError(f"--tags / --hair-rgb / --eye-rgb need a tag-conditional model; this is {sampler.config.model}")
    from ..reports.tags import rgb_labels, tags_to_labels
    try:
        if tags is not None:
            if hair_rgb or eye_rgb:
                raise ValueError("give either --tags or --hair-rgb/--eye-rgb, not both")
            return tags_to_labels(tags, sampler.config.label_names)
        return rgb_labels(hair_rgb, eye_rgb, sampler=sampler)
    except ValueError as e:
        raise ConfigError(str(e)) from None


@cli.command(epilog="""
\b
Examples:
  stylegan-anime video --checkpoint runs/00000-stylegan2-faces-128 --seeds 0,1,2 --fps 30 --seconds 10 --output out.mp4
  stylegan-anime video --checkpoint RUN --seeds 0-5 --mode loop --grid 2x3 --psi 0.7 --output loop.mp4
  stylegan-anime video --checkpoint RUN --seeds 3,9 --mode z-slerp --seconds 4 --output walk.gif
""")
@checkpoint_option
@click.option("--seeds", required=True, help="keyframe seeds in order, e.g. 0,1,2 or 0-5 (at least 2)")
@click.option("--output", required=True, type=click.Path(dir_okay=False), help=".mp4 (H.264) or .gif")
@click.option("--mode", default="auto", show_default=True,
              help="auto | loop | z-slerp | w-lerp | z-loop | w-loop (auto: a smooth loop, in W for StyleGAN2)")
@click.option("--fps", type=float, default=30, show_default=True)
@click.option("--seconds", type=float, default=10.0, show_default=True)
@click.option("--grid", default="1x1", show_default=True, help="ROWSxCOLS interpolations in one video")
@click.option("--psi", type=float, default=1.0, show_default=True, help="truncation towards w_avg (StyleGAN2)")
@click.option("--batch", type=int, default=32, show_default=True)
@click.option("--face-px", type=int, default=None,
              help="each face this many pixels wide in the video [default: 256, or the model's size if larger]")
@device_option
def video(checkpoint, seeds, output, mode, fps, seconds, grid, psi, batch, face_px, device):
    """Interpolation video: z slerp, w lerp or a smooth looping spline through keyframe seeds (never written over
    an existing file)."""
    from ..output_files import claim_paths
    from ..figure_labels import face_size
    from ..number_checks import check_psi
    from ..reports.video import frame_count, parse_grid, render_video
    with user_errors():
        frame_count(fps, seconds)  # bad numbers before any work
        check_psi(psi)
        face_size(face_px, 1)
        claim_paths([output], "give another --output, or move that file away")
        path = render_video(_sampler(checkpoint, device), output, _seeds(seeds), mode=mode, fps=fps, seconds=seconds,
                            grid=parse_grid(grid), psi=psi, batch=batch, face_px=face_px)
    click.echo(f"wrote {path}", err=True)


@cli.command("style-mixing", epilog="""
\b
Examples:
  stylegan-anime style-mixing --checkpoint RUN --rows 1,2,3 --cols 10-14 --styles 0-3 --output mixing.png
""")
@checkpoint_option
@click.option("--rows", required=True, help="row seeds (their styles outside --styles are kept)")
@click.option("--cols", required=True, help="column seeds (their styles in --styles are copied)")
@click.option("--styles", default="0-3", show_default=True, help="layers of ws taken from the column seed")
@click.option("--psi", type=float, default=1.0, show_default=True)
@click.option("--output", required=True, type=click.Path(dir_okay=False))
@device_option
def style_mixing(checkpoint, rows, cols, styles, psi, output, device):
    """The StyleGAN style-mixing figure: row seeds x column seeds with a chosen range of styles swapped."""
    from ..reports.figures import style_mixing_figure
    with user_errors():
        path = style_mixing_figure(_sampler(checkpoint, device), output, _seeds(rows), _seeds(cols), styles=styles,
                                   psi=psi)
    click.echo(f"wrote {path}", err=True)


@cli.command(epilog="""
\b
Examples:
  stylegan-anime truncation --checkpoint RUN --seeds 0-5 --psis 1,0.7,0.5,0 --output truncation.png
""")
@checkpoint_option
@click.option("--seeds", required=True)
@click.option("--psis", default="1,0.7,0.5,0", show_default=True, help="truncation values, one column each")
@click.option("--output", required=True, type=click.Path(dir_okay=False))
@device_option
def truncation(checkpoint, seeds, psis, output, device):
    """Truncation sweep figure: rows = seeds, columns = psi (StyleGAN2)."""
    from ..reports.figures import truncation_figure
    try:
        values = [float(p) for p in psis.split(",")]
    except ValueError:
        raise ConfigError(f"--psis: expected numbers like 1,0.7,0.5, got {psis!r}") from None
    with user_errors():
        path = truncation_figure(_sampler(checkpoint, device), output, _seeds(seeds), psis=values)
    click.echo(f"wrote {path}", err=True)


@cli.command("tags-grid", epilog="""
\b
Examples:
  stylegan-anime tags-grid --checkpoint runs/00002-cgan-demo-64 --output hair_eye.png
  stylegan-anime tags-grid --checkpoint RUN --hair blonde,pink,blue --eye red,green --z-seed 7 --output g.png
""")
@checkpoint_option
@click.option("--output", required=True, type=click.Path(dir_okay=False))
@click.option("--z-seed", type=int, default=0, show_default=True, help="the one latent every cell uses")
@click.option("--hair", default=None, help="hair colours for the rows [default: all 12]")
@click.option("--eye", default=None, help="eye colours for the columns [default: all 10]")
@device_option
def tags_grid(checkpoint, output, z_seed, hair, eye, device):
    """Row: hair colour, column: eye colour, same z: what a tag-conditional model learned."""
    from ..reports.tags import hair_eye_grid
    with user_errors():
        path = hair_eye_grid(_sampler(checkpoint, device), output, z_seed=z_seed, hair=hair, eye=eye)
    click.echo(f"wrote {path}", err=True)
