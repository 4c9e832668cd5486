"""Compare training runs: a table of what each run reached and a plot of its metrics.

A run folder holds `config.json`, TensorBoard event files (one per training session: a resumed run adds
one) and, when metrics were evaluated during training, `metrics.jsonl` with one JSON object per evaluation,
`{"kimg": float, "train_s": float, "maintenance_s": float, "cpu_s": float, "wall_s": float, "<metric>": float,
"num_images/<metric>": int}`
(runs before train_s have only wall_s, which counted evaluation time too).

    train min    minutes of training time (train_s: evaluation, grids and checkpoints not counted), from the
                 last metrics line or the events' Progress/train_seconds, whichever is later
    wall-clock   the sum over sessions (event files) of the span between the file's first event and its last
                 scalar or image, so time between a crash and a resume does not count
    img/s        the mean of the logged Perf/img_per_s values
    metrics      from metrics.jsonl; without it, from the Metrics/<name> scalars of the events
    best         the minimum for distances (fid*, kid*, swd*, ppl*), the maximum for scores (afd*, is*,
                 precision*, recall*); unknown names count as distances (lower is better)

A resumed session re-logs the steps after its checkpoint; the later session's points replace the earlier
session's points from its first step on. The plot draws each metric against kimg and against training hours
(train_s; wall_s for older runs; for curves from the events, Progress/train_seconds where it was logged).
"""
from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np
from tqdm.auto import tqdm

from ..metrics.direction import lower_is_better

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_EVENTS = re.compile(r"events\.out\.tfevents\.(\d+)")


def is_part(metric: str) -> bool:
    """A part of a metric, or its reference, rather than a metric: swd/64, tagacc/hair, swd_floor (real vs real)."""
    return "/" in metric or metric.endswith("_floor")


@dataclass
class Series:
    """One scalar curve: step (images shown), value, wall (seconds of training since the run began: train_s
    where the run logged it, else wall-clock)."""

    step: np.ndarray
    value: np.ndarray
    wall: np.ndarray

    @property
    def kimg(self) -> np.ndarray:
        return self.step / 1000


@dataclass
class Run:
    path: Path
    name: str
    config: dict
    scalars: dict[str, Series] = field(default_factory=dict)
    metrics: dict[str, Series] = field(default_factory=dict)  # from metrics.jsonl, else Metrics/* scalars
    wall_s: float = 0.0
    train_s: float | None = None  # seconds of training time (None: a run from before train_s)
    sessions: int = 0

    @property
    def model(self) -> str:
        return str(self.config.get("model", "?"))

    @property
    def size(self) -> int | None:
        return self.config.get("size")

    @property
    def kimg(self) -> float:
        ends = [s.step.max() / 1000 for s in self.scalars.values() if len(s.step)]
        ends += [s.kimg.max() for s in self.metrics.values() if len(s.step)]
        return float(max(ends, default=0.0))


# ----------------------------------------------------------------------------------------------------- loading
def is_run_dir(path: Path) -> bool:
    return path.is_dir() and ((path / "config.json").is_file() or any(_event_files(path)))


def expand_run_dirs(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Each path is a run folder, or a folder of run folders (e.g. `runs/`), expanded in name order."""
    out: list[Path] = []
    for p in map(Path, paths):
        if is_run_dir(p):
            out.append(p)
        elif p.is_dir() and (subs := sorted(q for q in p.iterdir() if is_run_dir(q))):
            out.extend(subs)
        else:
            raise ValueError(f"not a run folder (no config.json or TensorBoard events): {p}")
    return out


def _event_files(run_dir: Path) -> list[Path]:
    files = [p for p in run_dir.iterdir() if p.is_file() and _EVENTS.match(p.name)]
    return sorted(files, key=lambda p: (int(_EVENTS.match(p.name).group(1)), p.name))


def load_run(run_dir: str | os.PathLike) -> Run:
    """Read a run folder: config.json, every TensorBoard event file, metrics.jsonl (all optional but one)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: PLC0415

    path = Path(run_dir)
    if not is_run_dir(path):
        raise ValueError(f"not a run folder (no config.json or TensorBoard events): {path}")
    config = {}
    if (path / "config.json").is_file():
        try:
            config = json.loads((path / "config.json").read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"cannot read {path / 'config.json'}: {e}") from None
    run = Run(path=path, name=path.name, config=config)

    merged: dict[str, list[tuple[float, float, float]]] = {}  # tag -> [(step, value, wall)]
    offset = 0.0
    for file in _event_files(path):
        acc = EventAccumulator(str(file), size_guidance={"scalars": 0, "images": 1, "tensors": 1,
                                                         "histograms": 1, "audio": 1})
        try:
            acc.Reload()
            start = acc.FirstEventTimestamp()
        except Exception:  # an empty or truncated file (a session killed at once): nothing to read
            continue
        tags = acc.Tags()
        last = start
        for tag in tags.get("scalars", []):
            events = acc.Scalars(tag)
            if not events:
                continue
            last = max(last, max(e.wall_time for e in events))
            first_step = min(e.step for e in events)
            kept = [p for p in merged.get(tag, []) if p[0] < first_step]
            merged[tag] = kept + [(e.step, e.value, e.wall_time - start + offset) for e in events]
        for tag in tags.get("images", []):
            last = max([last] + [e.wall_time for e in acc.Images(tag)])
        offset += last - start
        run.sessions += 1
    run.wall_s = offset
    for tag, points in merged.items():
        points.sort(key=lambda p: p[0])
        arr = np.array(points, dtype=np.float64).reshape(-1, 3)
        run.scalars[tag] = Series(arr[:, 0], arr[:, 1], arr[:, 2])

    run.metrics, run.train_s = _read_metrics_jsonl(path / "metrics.jsonl")
    train = run.scalars.get("Progress/train_seconds")
    if train is not None and len(train.step):  # events on the training-time axis; the later of the two counts
        for s in run.scalars.values():
            s.wall = np.interp(s.step, train.step, train.value)
        run.train_s = max(run.train_s or 0.0, float(train.value.max()))
    if not run.metrics:
        run.metrics = {tag.split("/", 1)[1]: s for tag, s in run.scalars.items() if tag.startswith("Metrics/")}
    return run


TIME_KEYS = ("kimg", "wall_s", "train_s", "maintenance_s", "cpu_s")  # metrics.jsonl keys that are not metrics
COUNT_PREFIX = "num_images/"  # num_images/<metric>: how many generated images it scored (not a metric either)


def _read_metrics_jsonl(file: Path) -> tuple[dict[str, Series], float | None]:
    """Metric name -> Series (wall: train_s, or wall_s in older runs), and the last line's train_s."""
    if not file.is_file():
        return {}, None
    rows: dict[str, list[tuple[float, float, float]]] = {}
    last_train_s = None
    for line in file.read_text().splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:  # blank, or the last line of a run killed mid-write
            continue
        if not isinstance(entry, dict) or "kimg" not in entry:
            continue
        kimg, wall = float(entry["kimg"]), float(entry.get("train_s", entry.get("wall_s", math.nan)))
        last_train_s = float(entry["train_s"]) if "train_s" in entry else last_train_s
        for k, v in entry.items():
            if k in TIME_KEYS or k.startswith(COUNT_PREFIX) or isinstance(v, bool) or not isinstance(v, (int, float)):
                continue
            rows.setdefault(k, []).append((kimg * 1000, float(v), wall))
    out = {}
    for k, points in rows.items():
        arr = np.array(points, dtype=np.float64)
        out[k] = Series(arr[:, 0], arr[:, 1], arr[:, 2])
    return out, last_train_s


def _load_all(run_dirs: Sequence[str | os.PathLike], progress: bool) -> list[Run]:
    dirs = expand_run_dirs(run_dirs)
    if not dirs:
        raise ValueError("give at least one run folder")
    runs = [load_run(d) for d in tqdm(dirs, disable=not progress or len(dirs) < 2, desc="reading runs", unit="run")]
    names = [r.name for r in runs]
    for r in runs:  # the same folder name under different outdirs: say which
        if names.count(r.name) > 1:
            r.name = f"{r.path.parent.name}/{r.name}"
    return runs


# ----------------------------------------------------------------------------------------------------- table
def compare_runs(run_dirs: Sequence[str | os.PathLike], progress: bool = False) -> list[dict]:
    """One row per run: run, model, size, kimg, train_minutes, wall_s, img_per_s, and per metric m: m_best,
    m_best_kimg, m_last (None where a run lacks it)."""
    runs = _load_all(run_dirs, progress)
    metric_names = _metric_names(runs)
    rows = []
    for r in runs:
        perf = r.scalars.get("Perf/img_per_s")
        row = {"run": r.name, "model": r.model, "size": r.size, "kimg": r.kimg,
               "train_minutes": None if r.train_s is None else r.train_s / 60, "wall_s": r.wall_s,
               "img_per_s": float(perf.value.mean()) if perf is not None and len(perf.value) else None}
        for m in metric_names:
            s = r.metrics.get(m)
            finite = s is not None and np.isfinite(s.value).any()
            if finite:
                vals = np.where(np.isfinite(s.value), s.value, np.inf if lower_is_better(m) else -np.inf)
                i = int(vals.argmin() if lower_is_better(m) else vals.argmax())
                row[f"{m}_best"], row[f"{m}_best_kimg"], row[f"{m}_last"] = (
                    float(s.value[i]), float(s.kimg[i]), float(s.value[-1]))
            else:
                row[f"{m}_best"] = row[f"{m}_best_kimg"] = row[f"{m}_last"] = None
        rows.append(row)
    return rows


def _metric_names(runs: Sequence[Run]) -> list[str]:
    names: list[str] = []
    for r in runs:
        names += [m for m in r.metrics if m not in names]
    return names


def format_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "-"
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _num(v, fmt: str = ".4g") -> str:
    return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, fmt)


TERMINAL = "terminal"  # format_table's width: the terminal's columns when stdout is one, else no limit


def terminal_width() -> int | None:
    """The columns of the terminal stdout writes to (at least 40), or None when it is no terminal (a pipe, a file)."""
    import shutil  # noqa: PLC0415
    import sys  # noqa: PLC0415
    try:
        if not sys.stdout.isatty():
            return None
    except (AttributeError, ValueError):
        return None
    return max(40, shutil.get_terminal_size((100, 24)).columns)


def format_table(rows: Sequence[dict], width: int | str | None = TERMINAL, levels: bool = False) -> str:
    """Aligned plain text: text columns left-aligned, numbers right-aligned; '-' where a value is missing.

    The parts of a metric (swd/64, swd/32 ..., tagacc/hair) and its real-vs-real floor (swd_floor) are left out
    unless `levels`. `width`: the most characters a line may have (TERMINAL: the terminal's width when stdout is
    one, else no limit; None: no limit); a wider table is wrapped into blocks of columns, each block starting
    with the run's name, one blank line between blocks."""
    if not rows:
        return "(no runs)"
    metrics: list[str] = []
    for row in rows:
        metrics += [k[:-5] for k in row if k.endswith("_best") and k[:-5] not in metrics
                    and (levels or not is_part(k[:-5]))]
    columns = [("run", [str(r.get("run", "")) for r in rows], True),
               ("model", [str(r.get("model", "")) for r in rows], True),
               ("size", [_num(r.get("size"), "d") for r in rows], False),
               ("kimg", [_num(r.get("kimg"), ".4g") for r in rows], False),
               ("train min", [_num(r.get("train_minutes"), ".1f") for r in rows], False),
               ("wall", [format_duration(r.get("wall_s")) for r in rows], False),
               ("img/s", [_num(r.get("img_per_s"), ".1f") for r in rows], False)]
    for m in metrics:
        arrow = "lower" if lower_is_better(m) else "higher"
        best = ["-" if r.get(f"{m}_best") is None else f"{r[f'{m}_best']:.4g} @{r[f'{m}_best_kimg']:g}kimg"
                for r in rows]
        columns += [(f"{m} best ({arrow})", best, False), (f"{m} last", [_num(r.get(f"{m}_last")) for r in rows], False)]
    limit = terminal_width() if width == TERMINAL else width
    return "\n\n".join(_block(cols) for cols in _wrap(columns, limit))


def _column_width(column) -> int:
    header, cells, _ = column
    return max(len(c) for c in [header, *cells])


def _wrap(columns: list, limit: int | None) -> list[list]:
    """The columns in blocks of at most `limit` characters a line (2 between columns); every block after the
    first starts with the run column again. A single column wider than the limit gets a block of its own."""
    if limit is None or sum(_column_width(c) + 2 for c in columns) - 2 <= limit:
        return [columns]
    blocks, block = [], [columns[0]]
    for column in columns[1:]:
        if len(block) > 1 and sum(_column_width(c) + 2 for c in block + [column]) - 2 > limit:
            blocks.append(block)
            block = [columns[0]]
        block.append(column)
    return blocks + [block]


def _block(columns: list) -> str:
    widths = [_column_width(c) for c in columns]

    def line(cells):
        return "  ".join(c.ljust(w) if left else c.rjust(w)
                         for c, w, (_, _, left) in zip(cells, widths, columns)).rstrip()

    rows = [line([c[1][i] for c in columns]) for i in range(len(columns[0][1]))]
    return "\n".join([line([c[0] for c in columns]), "  ".join("-" * w for w in widths)] + rows)


# ----------------------------------------------------------------------------------------------------- plot
def plot_runs(run_dirs: Sequence[str | os.PathLike], out_png: str | os.PathLike, progress: bool = False) -> Path:
    """One row of subplots per metric (from metrics.jsonl / Metrics/*; not their parts such as swd/64), plotted
    against kimg (left) and training hours (right), one line per run with a legend. Runs without any metric, or
    with a single evaluation (a short run), get rows for Loss/G and Loss/D from their events too. Uses matplotlib's Agg canvas directly (no pyplot, no global backend)."""
    out = Path(out_png)
    if out.suffix.lower() not in (".png", ".pdf", ".svg", ".jpg"):
        raise ValueError(f"plot format must be .png, .pdf, .svg or .jpg, got {out.name!r}")
    fig = _figure(_load_all(run_dirs, progress))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    return out


def _figure(runs: Sequence[Run]) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415
    from matplotlib.figure import Figure  # noqa: PLC0415

    panels: list[tuple[str, list[tuple[str, "Series"]]]] = []  # (title, [(run name, series)])
    for m in _metric_names(runs):
        if is_part(m):  # swd/64, swd/32 ..., tagacc/hair, swd_floor: the metric's mean stands for them
            continue
        arrow = "lower is better" if lower_is_better(m) else "higher is better"
        panels.append((f"{m} ({arrow})", [(r.name, r.metrics[m]) for r in runs if m in r.metrics]))
    # a run without metrics, or with one evaluation only (a short run: its final one), is also drawn by its losses
    bare = [r for r in runs if max((len(s.step) for s in r.metrics.values()), default=0) < 2]
    for tag in ("Loss/G", "Loss/D"):
        curves = [(r.name, r.scalars[tag]) for r in bare if tag in r.scalars]
        if curves:
            panels.append((tag, curves))
    if not panels:
        raise ValueError("nothing to plot: the runs have neither metrics nor Loss/G, Loss/D scalars")

    names = [r.name for r in runs]
    colors = {n: f"C{i % 10}" for i, n in enumerate(names)}
    fig = Figure(figsize=(12, 3.2 * len(panels)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(panels), 2, squeeze=False)
    for (title, curves), (ax_k, ax_t) in zip(panels, axes):
        for name, s in curves:  # lines with markers where the points are few (one point: a marker alone)
            marker = "o" if len(s.step) < 20 else None
            ax_k.plot(s.kimg, s.value, marker=marker, color=colors[name], label=name)
            ok = np.isfinite(s.wall)
            if ok.any():
                ax_t.plot(s.wall[ok] / 3600, s.value[ok], marker=marker, color=colors[name], label=name)
        ax_k.set_xlabel("kimg (real images shown / 1000)")
        ax_t.set_xlabel("training hours")
        for ax in (ax_k, ax_t):
            ax.set_title(title)
            ax.grid(True, alpha=0.3)
            if ax.has_data():
                ax.legend(fontsize="small")
    return fig


__all__ = ["Run", "Series", "compare_runs", "expand_run_dirs", "format_duration", "format_table", "load_run",
           "lower_is_better", "plot_runs"]
