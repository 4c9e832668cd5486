"""Compare training runs: a table (model, size, kimg, training minutes, wall-clock, img/s, best/last of every
metric) that fits the terminal (wider tables wrap into blocks of columns, each starting with the run's name) and,
with --plot, metric curves against kimg and training hours.

    python tools/compare_runs.py runs/00000-stylegan2-faces-64 runs/00001-dcgan-faces-64 --plot compare.png
"""
from __future__ import annotations

import json

import click


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110}, epilog="""
\b
Examples:
  python tools/compare_runs.py runs/00000-stylegan2-faces-64 runs/00001-dcgan-faces-64
  python tools/compare_runs.py runs --plot compare.png          # every run folder inside runs/
  python tools/compare_runs.py runs/000* --json > table.json

\b
Metrics come from each run's metrics.jsonl (else its Metrics/* TensorBoard scalars); best = lowest for
fid/kid/swd, highest for afd; --levels adds the parts of a metric (swd/64, swd/32 ...). Runs without metrics,
or with a single evaluation, are also plotted by Loss/G and Loss/D.
""")
@click.argument("runs", nargs=-1, required=True)
@click.option("--plot", type=click.Path(dir_okay=False), default=None, help="also write a plot (.png/.pdf/.svg)")
@click.option("--json", "as_json", is_flag=True, help="print the rows as JSON instead of a table")
@click.option("--progress/--no-progress", default=True, show_default=True, help="progress bar while reading runs")
@click.option("--width", type=click.IntRange(min=40), default=None,
              help="wrap the table at this many characters [default: the terminal's width; no limit in a pipe]")
@click.option("--levels", is_flag=True, help="also the parts of each metric (swd/64, swd/32 ..., tagacc/hair)")
def main(runs, plot, as_json, progress, width, levels):
    """Compare the runs RUNS... (run folders, or folders of run folders)."""
    from stylegan_anime.reports.compare import compare_runs, format_table, plot_runs

    rows = compare_runs(runs, progress=progress)
    table = format_table(rows, width="terminal" if width is None else width, levels=levels)
    click.echo(json.dumps(rows, indent=2) if as_json else table)
    if plot:
        path = plot_runs(runs, plot)
        click.echo(f"wrote {path}", err=True)


if __name__ == "__main__":
    from stylegan_anime.one_line import run_click

    run_click(main, prog_name="tools/compare_runs.py")
