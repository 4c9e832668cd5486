"""Compare training runs: a table (model, size, kimg, wall-clock, img/s, best/last of every metric) and,
with --plot, metric curves against kimg and wall-clock.

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
fid/kid/swd, highest for afd. Runs without metrics are plotted by Loss/G and Loss/D.
""")
@click.argument("runs", nargs=-1, required=True)
@click.option("--plot", type=click.Path(dir_okay=False), default=None, help="also write a plot (.png/.pdf/.svg)")
@click.option("--json", "as_json", is_flag=True, help="print the rows as JSON instead of a table")
@click.option("--progress/--no-progress", default=True, show_default=True, help="progress bar while reading runs")
def main(runs, plot, as_json, progress):
    """Compare the runs RUNS... (run folders, or folders of run folders)."""
    from stylegan_anime.tools.compare import compare_runs, format_table, plot_runs

    rows = compare_runs(runs, progress=progress)
    click.echo(json.dumps(rows, indent=2) if as_json else format_table(rows))
    if plot:
        path = plot_runs(runs, plot)
        click.echo(f"wrote {path}", err=True)


if __name__ == "__main__":
    from stylegan_anime.tools import run_click

    run_click(main, prog_name="tools/compare_runs.py")
