"""What the trainer shows of its generator: metrics (during training and the final evaluation) and sample grids.

    evaluate(trainer)     metrics of G_ema (untruncated) against the dataset's non-augmented reals, announced,
                          with progress (a bar on a terminal, else status lines), scored with a hint of which
                          way is better, into TensorBoard Metrics/* + MetricsByTime/* and one metrics.jsonl line
    images_for(m, cfg)    how many generated images metric m scores in this run (the rule below)
    write_grids(trainer)  Samples/<tag> and RUN/fakes-<tag>-<nimg>.png; write_reals: Samples/reals, RUN/reals.png
    EvalLatents           the latents of evaluation image i, the same for every evaluation and every rank

How many images (every evaluation of a run, in training and final, uses the same numbers, so its curve
compares with itself; each metrics.jsonl line records them as num_images/<metric>):
    --metrics-num N       N for every metric
    otherwise             the metric's own count (swd 4,096; fid10k 10,000 ...), except that SWD, whose name
                          carries no count, is scaled to the run's --kimg: below 10 kimg 1,024 images, below
                          50 kimg 2,048, from 50 kimg on 4,096. A 2-kimg try evaluates in a quarter of the time;
                          SWD from fewer images reads somewhat higher, so compare runs at equal num_images/swd.
"""
from __future__ import annotations

import json
import time

import numpy as np
import torch

from ..imageio_utils import make_grid, save_image, to_uint8
from . import console
from .checkpoint import writing
from .recipe import seeded_noise

SCALED_METRICS = ("swd",)  # metrics whose count the run's length decides (names with a count keep it: fid10k)
SHORT_RUNS = ((10.0, 1024), (50.0, 2048))  # (--kimg below this, images) for SCALED_METRICS
TAG_IMAGES = 1000  # tagacc's images without --metrics-num
PROGRESS_EVERY_S = 30.0  # status lines of a long evaluation without a progress bar (at most this far apart)
# Which way is better, and what real images score where it is known (docs/quality.md: real vs real at 64 px on
# 10,000 anime faces, SWD from 4,096 images; AFD of real anime faces).
REAL_REFERENCE = {"afd": "real faces 0.881", "c2st": "real vs real 0.50"}
REAL_SWD_64 = "real vs real 18.3 on 64 px anime faces"


def images_for(metric: str, cfg) -> int:
    """Generated images metric `metric` scores in a run of this TrainConfig (the rule: module docstring)."""
    from ..metrics import METRICS  # noqa: PLC0415
    if cfg.metrics_num:
        return int(cfg.metrics_num)
    if metric not in METRICS:
        return TAG_IMAGES
    if metric in SCALED_METRICS:
        for below, images in SHORT_RUNS:
            if cfg.kimg < below:
                return min(images, METRICS[metric].num_gen)
    return METRICS[metric].num_gen


def scaled_because(names: list[str], cfg) -> str:
    """' (SWD on fewer images: a run under 10 kimg; --metrics-num sets the count)' when the rule cut a count."""
    from ..metrics import METRICS  # noqa: PLC0415
    cut = [m for m in names if m in SCALED_METRICS and images_for(m, cfg) < METRICS[m].num_gen]
    if not cut or cfg.metrics_num:
        return ""
    below = next(b for b, _ in SHORT_RUNS if cfg.kimg < b)
    return f" ({', '.join(cut)} on fewer images: a run under {below:g} kimg; --metrics-num sets the count)"


def hint(metric: str, value_count: int, size: int, floor: float | None = None) -> str:
    """' (lower is better; real vs real 18.3)', ' (higher is better; real faces 0.881)' ... for the console line
    of a metric; `floor`: the real-vs-real value measured with it (swd_floor), else a known reference."""
    from ..metrics.direction import lower_is_better  # noqa: PLC0415
    words = ["lower is better" if lower_is_better(metric) else "higher is better"]
    if floor is not None:
        words.append(f"real vs real {floor:.4g}")
    elif metric in REAL_REFERENCE:
        words.append(REAL_REFERENCE[metric])
    elif metric == "swd" and size == 64 and value_count == 4096:
        words.append(REAL_SWD_64)
    return f" ({'; '.join(words)})"


def metrics_line(values: dict[str, float], counts: dict[str, int], size: int) -> str:
    """The console's view of an evaluation: each metric with its hint; its parts (swd/64 ...) and its real-vs-real
    floor (swd_floor) stay in TensorBoard and metrics.jsonl."""
    shown = [m for m in values if "/" not in m and not m.endswith("_floor")]
    return ", ".join(f"{m} {values[m]:.4g}" + hint(m, counts.get(m, 0), size, values.get(f"{m}_floor"))
                     for m in shown)


class EvalLatents:
    """The latents of evaluation image i, i = 0, 1, ...: drawn in fixed chunks from one seeded stream, so
    any rank asking for any range (``take(n, start)``) gets the rows one process would."""

    CHUNK = 1024

    def __init__(self, z_dim: int, seed: int):
        self.z_dim = z_dim
        self.gen = torch.Generator().manual_seed(seed)
        self.bank = torch.zeros(0, z_dim)
        self.pos = 0

    def take(self, n: int, start: int | None = None) -> torch.Tensor:
        """Rows start ... start+n-1 ([n, z_dim], CPU); without start, the n rows after the last taken."""
        start = self.pos if start is None else int(start)
        while len(self.bank) < start + n:
            self.bank = torch.cat([self.bank, torch.randn(self.CHUNK, self.z_dim, generator=self.gen)])
        self.pos = start + n
        return self.bank[start:start + n]


class ProgressLines:
    """Status lines of an evaluation where no bar is shown: generated images every `every` seconds, and one line
    when the generated images are done and the reals are read and scored. `write` None: silent."""

    def __init__(self, write, prefix: str, total: int, every: float, clock=time.monotonic):
        self.write, self.prefix, self.total, self.every, self.clock = write, prefix, total, every, clock
        self.started = self.last = clock()
        self.done = 0

    def count(self, n: int) -> None:
        """n more images were generated (images past `total`, e.g. tagacc's after the metrics': no lines)."""
        self.done += n
        if self.write is None or self.done - n >= self.total:
            return
        now = self.clock()
        if self.done >= self.total:
            self.write(f"{self.prefix}: {self.total} images generated in "
                       f"{console.format_duration(now - self.started)}; scoring them against the reals ...")
        elif now - self.last >= self.every:
            self.write(f"{self.prefix}: {self.done}/{self.total} images generated "
                       f"({console.format_duration(now - self.started)})")
        else:
            return
        self.last = now


def _generator(t, latents: EvalLatents, progress: ProgressLines):
    """generate(n, labels=None, start=None) -> uint8 [n,H,W,3]: images of G_ema, with seeded noise per range."""
    def generate(n: int, labels: torch.Tensor | None = None, start: int | None = None) -> np.ndarray:
        first = latents.pos if start is None else int(start)
        z = latents.take(n, start).to(t.device)
        c = [None] * n if labels is None else labels.to(t.device)
        with seeded_noise(t.cfg.seed * 1_000_003 + first, t.device):  # any rank: the same noise
            out = [t.recipe.generate(t.G_ema, zc, None if cc is None or cc[0] is None else cc,
                                     **t.recipe.eval_options())
                   for zc, cc in zip(z.split(t.batch_gpu), split(c, t.batch_gpu))]
        progress.count(n)
        return to_uint8(torch.cat(out))
    return generate


@torch.no_grad()
def evaluate(t, final: bool = False) -> dict[str, float]:
    """Metrics of trainer `t`'s G_ema: TensorBoard Metrics/* (step: images shown) and MetricsByTime/* (step:
    seconds of training), and one JSON line in metrics.jsonl with kimg, train_s, maintenance_s, cpu_s, wall_s
    (= train_s, for readers of older runs), num_images/<metric> and the values. A metric that cannot run (e.g. no
    Inception file) is skipped with one warning and training goes on. Under torchrun every rank calls this: the
    generated images are shared out between ranks and rank 0 computes and writes the scores (tagacc: rank 0)."""
    cfg = t.cfg
    names = cfg.metric_list
    if not names:
        return {}
    from ..metrics import TAG_METRICS, evaluate as evaluate_metrics, evaluate_tags  # noqa: PLC0415
    from .distributed import object_group  # noqa: PLC0415

    main, monitor = t.dist.is_main, t.monitor
    warn = monitor.write if monitor is not None else print
    plain = [m for m in names if m not in TAG_METRICS]
    counts = {m: images_for(m, cfg) for m in names}
    count = max(counts.values())
    kimg = f"kimg {t.nimg / 1000:.2f}"
    bars = monitor is not None and monitor.bar_shown  # progress bars on a terminal only
    every = min(PROGRESS_EVERY_S, monitor.status_every or PROGRESS_EVERY_S) if monitor is not None else 0.0
    lines = monitor is not None and not bars and monitor.status_every > 0
    progress = ProgressLines(warn if lines else None, f"{kimg}: evaluating", max([counts[m] for m in plain], default=0),
                             every)

    def warn_and_count(line: str) -> None:  # a metric that cannot run ("skipping fid10k: ...") generates nothing
        warn(line)
        if line.startswith("skipping "):
            gone = {m.strip() for m in line[len("skipping "):].split(":")[0].split(",")}
            progress.total = max([counts[m] for m in plain if m not in gone], default=0)

    if monitor is not None:  # announced: a long evaluation must not look like a hang
        what = "final evaluation" if final else "evaluating"
        monitor.write(f"{kimg}: {what} {', '.join(names)} on {count} images{scaled_because(names, cfg)} ..."
                      + (" (skip it with --metrics none)" if final else ""))
    started = time.perf_counter()
    latents = EvalLatents(t.recipe.z_dim, cfg.seed + 2)  # the same latents at every evaluation
    generate = _generator(t, latents, progress)
    values = evaluate_metrics(plain, generate, t.dataset, device=t.device, progress=bars, warn=warn_and_count,
                              num_gen={m: counts[m] for m in plain}, inception_path=cfg.inception, seed=cfg.seed,
                              group=object_group(t.dist), desc=f"{kimg}: generating images") if plain else {}
    if "tagacc" in names and main:
        if not type(t.recipe).needs_labels(t.recipe.cfg):
            warn(f"skipping tagacc: --model {cfg.model} is not tag-conditional")
        else:
            values.update(evaluate_tags(lambda c: generate(len(c), c), t.dataset, n=counts["tagacc"],
                                        device=t.device, seed=cfg.seed))
    took = console.format_duration(time.perf_counter() - started)
    if values and main:
        if monitor is not None:
            for k, v in values.items():
                monitor.writer.add_scalar(f"Metrics/{k}", v, global_step=t.nimg)
                monitor.writer.add_scalar(f"MetricsByTime/{k}", v, global_step=int(round(t.train_s)))
            monitor.write(f"{kimg}: {metrics_line(values, counts, cfg.size)}; evaluated in {took}")
        scored = {f"num_images/{m}": counts[m] for m in names if any(k == m or k.startswith(m + "/") for k in values)}
        with writing(t.run_dir / "metrics.jsonl"), open(t.run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps({"kimg": t.nimg / 1000, "wall_s": round(t.train_s, 2), "train_s": round(t.train_s, 2),
                                "maintenance_s": round(t.maintenance_s, 2), "cpu_s": round(t.cpu_s, 2),
                                **values, **scored}) + "\n")
    elif monitor is not None:
        monitor.write(f"{kimg}: evaluation done in {took}; no metric could run")
    return values


# ------------------------------------------------------------------------------------------------ pictures
@torch.no_grad()
def sample_grid(t, G: torch.nn.Module, **kwargs) -> np.ndarray:
    """G's images of the fixed grid latents (and labels), as one uint8 [H,W,3] grid of cfg.grid_size columns."""
    was_training = G.training
    G.eval()
    labels = [None] * len(t.fixed_z) if t.fixed_labels is None else t.fixed_labels.to(t.device)
    images = [t.recipe.generate(G, z.to(t.device), None if c is None or c[0] is None else c, **kwargs)
              for z, c in zip(t.fixed_z.split(t.batch_gpu), split(labels, t.batch_gpu))]
    G.train(was_training)
    return make_grid(torch.cat(images), cols=t.cfg.grid_size)


def write_grids(t) -> None:
    """Samples/<tag> and RUN/fakes-<tag>-<nimg, 9 digits>.png (as checkpoints: no --grid interval overwrites
    another, and names sort in order). A model without EMA (ema_kimg 0: G_ema is G) writes no fakes-ema-*
    copies of fakes-G-* (variants: fakes-G_<suffix>-*); TensorBoard keeps every model's tags (Samples/ema)."""
    ema = (t.recipe.cfg.ema_kimg or 0) > 0
    grids = [("G", t.G, {}), ("ema", t.G_ema, {})]
    grids += [(f"ema_{suffix}", t.G_ema, kw) for suffix, kw in t.recipe.grid_variants().items()]
    drawn = {}  # picture name -> grid: without EMA, `ema` is the G picture
    for tag, G, kw in grids:
        name = tag if ema else tag.replace("ema", "G", 1)
        if name not in drawn:
            drawn[name] = t.sample_grid(G, **kw)
            path = t.run_dir / f"fakes-{name}-{t.nimg:09d}.png"
            with writing(path, remove_partial=True):
                save_image(drawn[name], path)
        t.monitor.image(f"Samples/{tag}", drawn[name], t.nimg)


def write_reals(t) -> None:
    """Samples/reals and RUN/reals.png: a grid of reals, drawn without moving the sampler."""
    gen_state = t.sampler.state_dict()  # peeking at reals must not move the sampler
    x, _ = t.sampler.sample(t.cfg.grid_size ** 2)
    t.sampler.load_state_dict(gen_state)
    grid = make_grid(x, cols=t.cfg.grid_size)
    t.monitor.image("Samples/reals", grid, 0)
    with writing(t.run_dir / "reals.png", remove_partial=True):
        save_image(grid, t.run_dir / "reals.png")


def split(x, n: int) -> list:
    """A tensor's or list's chunks of n rows."""
    return list(x.split(n)) if isinstance(x, torch.Tensor) else [x[i:i + n] for i in range(0, len(x), n)]
