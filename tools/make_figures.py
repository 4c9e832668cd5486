"""StyleGAN figures from a StyleGAN2 checkpoint: style mixing and truncation.

    python tools/make_figures.py style-mixing --checkpoint RUN --rows 85,100,75 --cols 55,821,1789 --output mix.png
    python tools/make_figures.py truncation --checkpoint RUN --seeds 0-5 --output trunc.png
"""
from __future__ import annotations

import click

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 110}


@click.group(context_settings=CONTEXT, epilog="""
\b
Examples:
  python tools/make_figures.py style-mixing --checkpoint RUN --rows 85,100,75 --cols 55,821,1789 --styles 0-3 \\
      --output mix.png
  python tools/make_figures.py truncation --checkpoint RUN --seeds 0-5 --psis 1,0.7,0.5,0 --output trunc.png
""")
def main():
    """StyleGAN2 figures (they need W space, so baseline checkpoints are refused)."""


def _sampler(checkpoint, ema, device):
    from stylegan_anime.generate import Sampler

    return Sampler(checkpoint, device=device, use_ema=ema)


def _common(func):
    func = click.option("--face-px", type=int, default=None,
                        help="each face this many pixels wide [default: 256, or the model's size if larger]")(func)
    func = click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda | cuda:N")(func)
    func = click.option("--ema/--no-ema", default=True, show_default=True, help="use G_ema (default) or the raw G")(func)
    func = click.option("--batch", type=int, default=64, show_default=True, help="images per forward pass")(func)
    func = click.option("--output", required=True, type=click.Path(dir_okay=False),
                        help="picture to write (.png, .jpg), labelled; never over an existing file")(func)
    return click.option("--checkpoint", required=True, help="a StyleGAN2 checkpoint file or run folder")(func)


def _check_first(output, face_px, *psis):
    """Before the checkpoint is read: a taken --output, a bad --face-px or psi (one-line errors)."""
    from stylegan_anime.output_files import claim_paths
    from stylegan_anime.figure_labels import face_size
    from stylegan_anime.number_checks import check_psi

    face_size(face_px, 1)
    for psi in psis:
        check_psi(psi)
    claim_paths([output], "give another --output, or move that file away")


@main.command("style-mixing", epilog="""
\b
Top row: the --cols seeds; left column: the --rows seeds; cell (r, c): row seed r with the style layers
--styles taken from column seed c. Layers count from 0 (4x4, coarse: pose and shape) to num_ws-1 (fine:
colour and texture): 0-3 coarse, 4-7 middle, 8- fine at 64 px (10 layers).
\b
Example:
  python tools/make_figures.py style-mixing --checkpoint RUN --rows 1-4 --cols 10-15 --styles 4-7 --output mid.png
""")
@_common
@click.option("--rows", "row_seeds", required=True, help="seeds down the left column, e.g. 85,100,75")
@click.option("--cols", "col_seeds", required=True, help="seeds along the top row, e.g. 55,821,1789")
@click.option("--styles", default="0-3", show_default=True, help="layers taken from the column seed: 0-3, 4,5, all, none")
@click.option("--psi", type=float, default=1.0, show_default=True, help="truncation towards w_avg")
def style_mixing(checkpoint, output, batch, ema, device, face_px, row_seeds, col_seeds, styles, psi):
    """Style-mixing figure: rows x cols cells mixing the styles of two seeds."""
    from stylegan_anime.generate import parse_seeds
    from stylegan_anime.reports.figures import style_mixing_figure

    rows, cols = parse_seeds(row_seeds), parse_seeds(col_seeds)
    _check_first(output, face_px, psi)
    path = style_mixing_figure(_sampler(checkpoint, ema, device), output, rows, cols, styles=styles, psi=psi,
                               batch=batch, face_px=face_px)
    click.echo(f"wrote {path} ({len(rows)} x {len(cols)} mixes, styles {styles})", err=True)


@main.command(epilog="""
\b
Example:
  python tools/make_figures.py truncation --checkpoint RUN --seeds 0-7 --psis 1,0.8,0.6,0.4,0.2,0 --output trunc.png
""")
@_common
@click.option("--seeds", required=True, help="one row per seed, e.g. 0-5")
@click.option("--psis", default="1,0.7,0.5,0", show_default=True, help="one column per truncation psi")
def truncation(checkpoint, output, batch, ema, device, face_px, seeds, psis):
    """Truncation figure: rows = seeds, columns = psi (psi 0 is the average face w_avg)."""
    from stylegan_anime.generate import parse_seeds
    from stylegan_anime.reports.figures import truncation_figure

    try:
        psi_list = [float(p) for p in psis.split(",") if p.strip()]
    except ValueError:
        raise click.UsageError(f"--psis: cannot read {psis!r}; use numbers like 1,0.7,0.5,0") from None
    seed_list = parse_seeds(seeds)
    _check_first(output, face_px, *psi_list)
    path = truncation_figure(_sampler(checkpoint, ema, device), output, seed_list, psis=psi_list, batch=batch,
                             face_px=face_px)
    click.echo(f"wrote {path} ({len(seed_list)} seeds x {len(psi_list)} psi values)", err=True)


if __name__ == "__main__":
    from stylegan_anime.one_line import run_click

    run_click(main, prog_name="tools/make_figures.py")
