"""The reference protocol: several models trained for the same *training time* on the same data, evaluated at
the same training-time points, then compared (table, curves against kimg and hours, one final grid each).

    entries   'dcgan', 'wgan-gp', or 'NAME=MODEL --flag value ...' (e.g. 'stylegan2-cpu=stylegan2 --preset cpu')
    logdir/   one folder per entry holding its run (and train.log), then
              summary.txt (the compare table), summary.json, points.md (every evaluation by training
              minute, a Markdown table), compare.png, grids/NAME.png, commands.txt

Every entry is one `stylegan-anime train --resume auto --outdir logdir/NAME --minutes M --metrics-minutes E`:
a fresh start the first time, the continuation of its own checkpoint after an interruption, so running the
same protocol command again picks up where it stopped (a finished entry is marked by logdir/NAME/DONE and
skipped). Entries run `parallel` at a time, each with `threads` CPU threads (OMP_NUM_THREADS), so that
models share the machine equally; Ctrl-C is passed on to every run, each saves a checkpoint, and the next
call resumes them.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from .compare import compare_runs, expand_run_dirs, format_table, plot_runs

__all__ = ["Entry", "parse_entry", "train_command", "run_protocol", "summarize"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
DONE = "DONE"
HUGE_KIMG = 1_000_000  # the training-time budget ends these runs, not kimg


@dataclass
class Entry:
    name: str  # folder under logdir
    model: str  # --model
    flags: list[str] = field(default_factory=list)  # extra train flags


def parse_entry(spec: str) -> Entry:
    """'dcgan' or 'NAME=MODEL --flag value ...' -> Entry; ValueError with a one-line reason."""
    head, _, rest = spec.strip().partition(" ")
    name, sep, model = head.partition("=")
    if not sep:
        name = model = head
    if not _NAME.match(name or ""):
        raise ValueError(f"model entry {spec!r}: the name {name!r} must be letters, digits, '.', '_' or '-'")
    if not model:
        raise ValueError(f"model entry {spec!r}: no model after '='")
    try:
        flags = shlex.split(rest)
    except ValueError as e:
        raise ValueError(f"model entry {spec!r}: {e}") from None
    return Entry(name, model, flags)


def train_command(entry: Entry, data: str, size: int, minutes: float, eval_minutes: float, logdir: Path,
                  metrics: str = "swd,afd", seed: int = 0, inception: str | None = None,
                  python: str = sys.executable) -> list[str]:
    """The train command of one entry: the same for the first start and every continuation."""
    cmd = [python, "-m", "stylegan_anime.cli", "train", "--resume", "auto", "--outdir", str(logdir / entry.name),
           "--data", data, "--size", str(size), "--model", entry.model, "--seed", str(seed),
           "--kimg", str(HUGE_KIMG), "--minutes", f"{minutes:g}", "--metrics-minutes", f"{eval_minutes:g}",
           "--metrics", metrics, "--no-progress"]
    if inception:
        cmd += ["--inception", inception]
    return cmd + list(entry.flags)


def run_protocol(entries: Sequence[Entry], data: str, size: int, minutes: float, eval_minutes: float,
                 logdir: str | os.PathLike, metrics: str = "swd,afd", threads: int = 1, parallel: int | None = None,
                 seed: int = 0, inception: str | None = None, say=print) -> int:
    """Train every unfinished entry (resuming its own run), `parallel` at a time; then summarize.
    Returns 0 when every entry finished, 130 when interrupted, 1 when some run failed."""
    logdir = Path(logdir)
    logdir.mkdir(parents=True, exist_ok=True)
    names = [e.name for e in entries]
    if len(set(names)) != len(names):
        raise ValueError(f"model entries need distinct names; got {', '.join(names)}")
    parallel = parallel or len(entries)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    todo = [e for e in entries if not (logdir / e.name / DONE).exists()]
    for e in entries:
        if e not in todo:
            say(f"{e.name}: finished earlier (remove {logdir / e.name / DONE} to train it again)")
    commands = {e.name: train_command(e, data, size, minutes, eval_minutes, logdir, metrics, seed, inception)
                for e in entries}
    with open(logdir / "commands.txt", "a") as f:
        f.write(f"# {time.strftime('%Y-%m-%d %H:%M:%S')}  OMP_NUM_THREADS={threads}, {parallel} at a time\n")
        f.writelines(shlex.join(commands[e.name]) + "\n" for e in todo)

    running: dict[str, subprocess.Popen] = {}
    failed: list[str] = []
    interrupted = False
    old = signal.getsignal(signal.SIGINT)

    def stop(signum, frame):  # pass Ctrl-C on; each run saves a checkpoint
        nonlocal interrupted
        interrupted = True
        for p in running.values():
            p.send_signal(signal.SIGINT)

    signal.signal(signal.SIGINT, stop)
    try:
        queue = list(todo)
        while queue or running:
            while queue and len(running) < parallel and not interrupted:
                e = queue.pop(0)
                (logdir / e.name).mkdir(exist_ok=True)
                log = open(logdir / e.name / "train.log", "a")
                say(f"{e.name}: {shlex.join(commands[e.name][1:])}")
                running[e.name] = subprocess.Popen(commands[e.name], env=env, stdout=log, stderr=subprocess.STDOUT,
                                                   stdin=subprocess.DEVNULL, start_new_session=True)
                log.close()
            for name, p in list(running.items()):
                if p.poll() is None:
                    continue
                del running[name]
                if p.returncode == 0:
                    (logdir / name / DONE).write_text(time.strftime("%Y-%m-%d %H:%M:%S\n"))
                    say(f"{name}: finished")
                elif p.returncode == 130 or interrupted:
                    say(f"{name}: stopped with a checkpoint; run the same command to continue")
                else:
                    failed.append(name)
                    say(f"{name}: failed (exit {p.returncode}); see {logdir / name / 'train.log'}")
            if interrupted and not running:
                break
            time.sleep(0.5)
    finally:
        signal.signal(signal.SIGINT, old)
    summarize(entries, logdir, say=say)
    return 130 if interrupted else 1 if failed else 0


def _run_dir(logdir: Path, entry: Entry) -> Path | None:
    runs = expand_run_dirs([logdir / entry.name]) if (logdir / entry.name).is_dir() else []
    return runs[-1] if runs else None


def _grid_nimg(path: Path) -> tuple[int, str]:
    """A grid's images shown: fakes-TAG-000000512.png (nimg), or fakes-TAG-000020kimg.png of older runs."""
    m = re.search(r"-(\d+)(kimg)?\.png$", path.name)
    return (int(m[1]) * (1000 if m[2] else 1) if m else -1), path.name


def summarize(entries: Sequence[Entry], logdir: str | os.PathLike, say=print) -> Path | None:
    """The compare table (summary.txt, summary.json), the curves (compare.png) and the newest G_ema grid of
    every entry that has a run (grids/NAME.png). Returns the table's path, None when no entry has a run."""
    logdir = Path(logdir)
    found = [(e, r) for e in entries if (r := _run_dir(logdir, e)) is not None]
    if not found:
        say("no runs to summarize yet")
        return None
    runs = [r for _, r in found]
    rows = compare_runs(runs)
    for (e, _), row in zip(found, rows):
        row["entry"] = e.name
    table = format_table(rows)
    (logdir / "summary.txt").write_text(table + "\n")
    (logdir / "points.md").write_text(points_table([(e.name, r) for e, r in found]) + "\n")
    (logdir / "summary.json").write_text(json.dumps(rows, indent=2, default=str) + "\n")
    plot_runs(runs, logdir / "compare.png")
    grids = logdir / "grids"
    grids.mkdir(exist_ok=True)
    for e, r in found:
        pngs = sorted(r.glob("fakes-ema-*.png"), key=_grid_nimg) or sorted(r.glob("fakes-G-*.png"), key=_grid_nimg)
        pngs = [p for p in pngs if "psi" not in p.name] or pngs
        if pngs:
            shutil.copyfile(pngs[-1], grids / f"{e.name}.png")
    say(table)
    say(f"wrote {logdir / 'summary.txt'}, {logdir / 'points.md'}, {logdir / 'compare.png'}, {grids}/")
    return logdir / "summary.txt"


def points_table(runs: Sequence[tuple[str, Path]]) -> str:
    """Every evaluation of every run as Markdown rows: entry, training minutes, kimg, CPU minutes, metrics."""
    lines = []
    for name, run in runs:
        file = run / "metrics.jsonl"
        if file.exists():
            lines += [(name, json.loads(x)) for x in file.read_text().splitlines() if x.strip()]
    if not lines:
        return "(no evaluations yet)"
    skip = {"kimg", "wall_s", "train_s", "maintenance_s", "cpu_s"}
    metrics = sorted({k for _, d in lines for k in d if k not in skip and "/" not in k})
    head = ["model", "training min", "kimg", "CPU min", *metrics]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, d in lines:
        t = d.get("train_s", d.get("wall_s", float("nan")))
        cells = [name, f"{t / 60:.1f}", f"{d['kimg']:.1f}", f"{d.get('cpu_s', float('nan')) / 60:.1f}"]
        cells += [f"{d[m]:.4g}" if m in d else "-" for m in metrics]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)
