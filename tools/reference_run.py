"""The reference protocol: models x training-time budget x data -> one log folder, evaluated at the same
training-time points, then a compare table, curves (against kimg and training hours) and a grid per model.

    python tools/reference_run.py --data faces.zip --minutes 60 --logdir runs/reference \\
        --model "stylegan2-cpu=stylegan2 --preset cpu" --model dcgan --model wgan-gp

Interrupted (Ctrl-C, a closed laptop, the end of a sitting)? Run the same command again: every unfinished
model resumes from its own checkpoint, finished ones are skipped.
"""
from __future__ import annotations

import click

EXAMPLES = """
\b
Examples:
  # docs/quality.md: three models, 60 training minutes each, SWD and AFD every 10 minutes, one thread each
  python tools/reference_run.py --data ../shared/data/anime-faces-96-10k.zip --size 64 --minutes 60 \\
      --eval-minutes 10 --logdir runs/reference --threads 1 \\
      --model "stylegan2-cpu=stylegan2 --preset cpu" --model "dcgan" --model "wgan-gp"
  # a sweep is the same protocol with variants of one model
  python tools/reference_run.py --data faces.zip --minutes 20 --eval-minutes 20 --logdir runs/sweep --parallel 2 \\
      --model "narrow=stylegan2 --channel-base 1024 --channel-max 64" \\
      --model "nopl=stylegan2 --channel-base 1024 --channel-max 64 --pl-weight 0"
  # only redraw the table, curves and grids of what has run so far
  python tools/reference_run.py --logdir runs/reference --summary-only --model ... (the same models)

\b
--model takes MODEL or NAME=MODEL FLAGS...; NAME is the run's folder under --logdir. Each model trains
with `stylegan-anime train --resume auto --minutes M --metrics-minutes E` (training time excludes
evaluation, grids and checkpoints). Add --inception FILE to score FID too (--metrics fid10k,swd,afd).
"""


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110}, epilog=EXAMPLES)
@click.option("--model", "models", multiple=True, required=True, help="MODEL or 'NAME=MODEL --flag value ...' (repeat)")
@click.option("--data", default=None, help="the training images: folder | zip | packed set | demo")
@click.option("--size", type=int, default=64, show_default=True, help="resolution (64 or 128)")
@click.option("--minutes", type=float, default=60, show_default=True, help="training minutes per model")
@click.option("--eval-minutes", type=float, default=10, show_default=True, help="evaluate every N training minutes")
@click.option("--logdir", required=True, type=click.Path(file_okay=False), help="one folder for the whole protocol")
@click.option("--metrics", default="swd,afd", show_default=True, help="metrics at every evaluation")
@click.option("--inception", default=None, type=click.Path(dir_okay=False, exists=True), help="FID Inception weights")
@click.option("--threads", type=int, default=1, show_default=True, help="CPU threads per model (OMP_NUM_THREADS)")
@click.option("--parallel", type=int, default=None, help="models trained at once [default: all]")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--summary-only", is_flag=True, help="train nothing; redraw the table, curves and grids")
def main(models, data, size, minutes, eval_minutes, logdir, metrics, inception, threads, parallel, seed, summary_only):
    """Train MODELs for the same training time on the same data and compare them."""
    import sys

    from stylegan_anime.reports.reference import parse_entry, run_protocol, summarize

    entries = [parse_entry(m) for m in models]
    if summary_only:
        summarize(entries, logdir)
        return
    if not data:
        raise click.UsageError("--data is required (unless --summary-only)")
    for name, value in (("--minutes", minutes), ("--eval-minutes", eval_minutes)):
        if not value > 0 or value == float("inf"):
            raise click.UsageError(f"{name} must be a positive number, got {value}")
    if threads < 1 or (parallel is not None and parallel < 1):
        raise click.UsageError("--threads and --parallel must be at least 1")
    sys.exit(run_protocol(entries, data, size, minutes, eval_minutes, logdir, metrics=metrics, threads=threads,
                          parallel=parallel, seed=seed, inception=inception, say=lambda m: click.echo(m, err=True)))


if __name__ == "__main__":
    from stylegan_anime.one_line import run_click

    run_click(main, prog_name="tools/reference_run.py")
