"""Latent interpolation videos from a checkpoint: z-slerp, w-lerp (StyleGAN2) or a seamless loop.

    python tools/interpolate.py --checkpoint runs/00000-stylegan2-faces-64 --seeds 0,1,2 --output out.mp4
"""
from __future__ import annotations

import click

EXAMPLES = """
\b
Examples:
  python tools/interpolate.py --checkpoint RUN --seeds 0,1,2 --fps 30 --seconds 10 --output out.mp4
  python tools/interpolate.py --checkpoint RUN --seeds 0-5 --mode loop --grid 2x3 --psi 0.7 --output loop.mp4
  python tools/interpolate.py --checkpoint RUN/checkpoints/ckpt-000100000.pt --seeds 3,7 --mode z-slerp \\
      --fps 15 --seconds 4 --output pair.gif

\b
Modes: loop (= auto): a closed spline through the seeds, in W for StyleGAN2 and in z for the baselines,
  whose last frame flows into the first; z-slerp: spherical steps between consecutive seeds; w-lerp:
  linear steps in W (StyleGAN2); z-loop / w-loop: the loop in the named space.
Grid cell k (row-major) uses the seeds + 1000*k; cell 0 uses the seeds as given.
Every face is drawn --face-px wide (default 256, or the model's size if larger). An existing --output is
never overwritten.
"""


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110}, epilog=EXAMPLES)
@click.option("--checkpoint", required=True, help="a checkpoint file, or a run folder (its newest checkpoint)")
@click.option("--seeds", required=True, help="keyframe seeds in order, e.g. 0,1,2 or 0-5 (at least 2)")
@click.option("--output", required=True, type=click.Path(dir_okay=False), help="video to write: .mp4 (H.264) or .gif")
@click.option("--mode", default="auto", show_default=True,
              type=click.Choice(["auto", "loop", "z-slerp", "w-lerp", "z-loop", "w-loop"]))
@click.option("--fps", type=float, default=30, show_default=True, help="frames per second")
@click.option("--seconds", type=float, default=10.0, show_default=True, help="length; frames = round(fps * seconds)")
@click.option("--grid", default="1x1", show_default=True, help="ROWSxCOLS independent interpolations in one video")
@click.option("--psi", type=float, default=1.0, show_default=True, help="truncation towards w_avg (StyleGAN2)")
@click.option("--batch", type=int, default=32, show_default=True, help="images per forward pass")
@click.option("--ema/--no-ema", default=True, show_default=True, help="use G_ema (default) or the raw G")
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda | cuda:N")
@click.option("--progress/--no-progress", default=True, show_default=True, help="progress bar")
@click.option("--face-px", type=int, default=None,
              help="each face this many pixels wide [default: 256, or the model's size if larger]")
def main(checkpoint, seeds, output, mode, fps, seconds, grid, psi, batch, ema, device, progress, face_px):
    """Render an interpolation video between the given seeds."""
    from stylegan_anime.generate import Sampler, parse_seeds
    from stylegan_anime.output_files import claim_paths
    from stylegan_anime.figure_labels import face_size
    from stylegan_anime.number_checks import check_psi
    from stylegan_anime.reports.video import frame_count, parse_grid, render_video

    seed_list = parse_seeds(seeds)
    if len(seed_list) < 2:
        raise click.UsageError(f"--seeds: need at least 2 seeds to interpolate between, got {len(seed_list)}")
    if not output.lower().endswith((".mp4", ".gif")):
        raise click.UsageError(f"--output must end in .mp4 or .gif, got {output!r}")
    n = frame_count(fps, seconds)  # bad input fails here, before the checkpoint is loaded
    rows, cols = parse_grid(grid)
    check_psi(psi)
    face_size(face_px, 1)
    claim_paths([output], "give another --output, or move that file away")
    sampler = Sampler(checkpoint, device=device, use_ema=ema)
    path = render_video(sampler, output, seed_list, mode=mode, fps=fps, seconds=seconds, grid=(rows, cols),
                        psi=psi, batch=batch, progress=progress, face_px=face_px)
    click.echo(f"wrote {path} ({n} frames, {rows}x{cols} grid)", err=True)


if __name__ == "__main__":
    from stylegan_anime.one_line import run_click

    run_click(main, prog_name="tools/interpolate.py")
