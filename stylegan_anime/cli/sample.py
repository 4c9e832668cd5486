"""The `stylegan-anime` subcommands for working with trained checkpoints and runs: videos, figures, tag
grids and run comparison (the functions live in `stylegan_anime.tools`; `tools/*.py` are the same as
standalone scripts). Bad input is a one-line `error: ...` with exit code 2.
"""
from __future__ import annotations

import contextlib

import click

from .train import cli
from ..training.config import ConfigError


@contextlib.contextmanager
def user_errors():
    """The tools raise ValueError for bad input: report it as a user mistake (one line, exit 2)."""
    try:
        yield
    except ValueError as e:
        raise ConfigError(str(e).splitlines()[0] if str(e) else type(e).__name__) from None


def _sampler(checkpoint: str, device: str, ema: bool = True):
    from ..generate import Sampler
    return Sampler(checkpoint, device=device, use_ema=ema)


def _seeds(text: str) -> list[int]:
    from ..generate import parse_seeds
    return parse_seeds(text)


checkpoint_option = click.option("--checkpoint", required=True,
                                 help="a checkpoint file, or a run folder (its newest checkpoint)")
device_option = click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda | cuda:N")


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
@device_option
def video(checkpoint, seeds, output, mode, fps, seconds, grid, psi, batch, device):
    """Interpolation video: z slerp, w lerp or a smooth looping spline through keyframe seeds."""
    from ..tools.video import parse_grid, render_video
    with user_errors():
        path = render_video(_sampler(checkpoint, device), output, _seeds(seeds), mode=mode, fps=fps, seconds=seconds,
                            grid=parse_grid(grid), psi=psi, batch=batch)
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
    from ..tools.figures import style_mixing_figure
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
    from ..tools.figures import truncation_figure
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
    from ..tools.tags import hair_eye_grid
    with user_errors():
        path = hair_eye_grid(_sampler(checkpoint, device), output, z_seed=z_seed, hair=hair, eye=eye)
    click.echo(f"wrote {path}", err=True)


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
    from ..tools.compare import compare_runs, expand_run_dirs, format_table, plot_runs
    with user_errors():
        dirs = expand_run_dirs(runs)
        click.echo(format_table(compare_runs(dirs)))
        if plot:
            click.echo(f"wrote {plot_runs(dirs, plot)}", err=True)
