"""Training-speed benchmark: s/kimg, img/s and peak memory per model, after warm-up, as a table.

    stylegan-anime bench                                   # every model; StyleGAN2 auto at 64 and 128 px on
                                                           # CUDA, the cpu preset at 64 px on a CPU
    stylegan-anime bench --models stylegan2 --sizes 128 --kimg 2
    stylegan-anime bench --reference ~/src/stylegan2-ada-pytorch   # also time that code on the same GPU

Each case trains on synthetic uint8 images held where training runs (so the loader is not what is timed;
`data img/s` measures batch delivery on its own), runs `warmup` iterations, then times whole iterations
(all phases, regularisers included) until `kimg` thousand images were shown. GPU timings synchronise
before reading the clock.

`--reference PATH` runs the user's stylegan2-ada-pytorch checkout (`train.py`, never shipped with this
project) at the same resolution, batch and regularisation on the same GPU, on a dataset zip written from
the same synthetic images, and parses its `sec/kimg` and `gpumem` from the log.
"""
from __future__ import annotations

import dataclasses
import io
import json
import re
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .models import get_recipe
from .training.config import TrainConfig
from .training.trainer import Trainer


@dataclass
class BenchResult:
    name: str
    size: int
    batch: int
    sec_per_kimg: float
    img_per_s: float
    peak_mem_gb: float
    note: str = ""


class _Synthetic:
    """uint8 [N,H,W,3] noise with some structure; enough for timing."""

    def __init__(self, n: int, size: int, seed: int = 0):
        rng = np.random.default_rng(seed)
        base = rng.integers(0, 256, size=(n, size // 8, size // 8, 3), dtype=np.uint8)
        self.images = np.repeat(np.repeat(base, 8, axis=1), 8, axis=2)
        self.labels = None
        self.label_names = None

    def __len__(self):
        return len(self.images)


BENCH_SIZES = (64, 128)


def bench_plan(cuda: bool, sizes: str | None = None, preset: str | None = None, channel_base: int | None = None,
               channel_max: int | None = None) -> tuple[list[int], dict]:
    """The sizes to time and StyleGAN2's overrides, from the flags given (None: not given). Defaults: on CUDA
    the auto preset at 64 and 128 px; on a CPU the `cpu` preset at 64 px only (auto at 128 px takes hours
    there). ValueError (one line, naming the flag) for a bad value."""
    if sizes is None:
        res = list(BENCH_SIZES) if cuda else [64]
    else:
        try:
            res = [int(x) for x in sizes.split(",") if x.strip()]
        except ValueError:
            raise ValueError(f"--sizes: expected numbers like 64,128, got {sizes!r}") from None
        if not res or any(r not in BENCH_SIZES for r in res):
            raise ValueError(f"--sizes must be 64 and/or 128, got {sizes!r}")
    over = {"preset": preset or ("auto" if cuda else "cpu"), "channel_base": channel_base, "channel_max": channel_max}
    over = {k: v for k, v in over.items() if v is not None}
    from .training.config import ConfigError, validate_fields  # noqa: PLC0415
    recipe = get_recipe("stylegan2")
    try:
        mc = recipe.make_config(**over)
        validate_fields(mc)
        for r in res:
            recipe.check(mc, r)
    except (ConfigError, TypeError) as e:
        raise ValueError(str(e)) from None
    return res, over


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _bench_trainer(model: str, size: int, *, device: str, batch: int | None, batch_gpu: int | None, amp: str,
                   overrides: dict | None, workdir: str | Path | None) -> Trainer:
    recipe_cls = get_recipe(model)
    over = dict(overrides or {})
    if batch is not None:
        over["batch"] = batch
    mc = dataclasses.asdict(recipe_cls.make_config(**over))
    workdir = Path(workdir or tempfile.mkdtemp(prefix="sga-bench-"))
    cfg = TrainConfig(data="synthetic", size=size, model=model, batch_gpu=batch_gpu, kimg=1e9, outdir=str(workdir),
                      amp=amp, device=device, progress=False, metrics="", model_cfg=mc)
    return Trainer(cfg, workdir / "run", dataset=_Synthetic(max(cfg.batch * 4, 256), size))


def bench_model(model: str, size: int, *, kimg: float = 1.0, warmup: int = 3, device: str = "auto",
                batch: int | None = None, batch_gpu: int | None = None, amp: str = "off",
                overrides: dict | None = None, workdir: str | Path | None = None) -> BenchResult:
    """Time training of one model configuration (tiny overrides make it usable in tests)."""
    t = _bench_trainer(model, size, device=device, batch=batch, batch_gpu=batch_gpu, amp=amp, overrides=overrides,
                       workdir=workdir)
    for _ in range(warmup):
        t.step()
    if t.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(t.device)
    _sync(t.device)
    start_img, start = t.nimg, time.perf_counter()
    while t.nimg - start_img < kimg * 1000:
        t.step()
    _sync(t.device)
    dt, shown = time.perf_counter() - start, t.nimg - start_img
    from .training.monitor import peak_memory_gb
    return BenchResult(f"{model}", size, t.cfg.batch, dt / shown * 1000, shown / dt, peak_memory_gb(t.device))


def profile_model(model: str, size: int, out_dir: str | Path, *, iterations: int = 16, warmup: int = 3,
                  device: str = "auto", batch: int | None = None, batch_gpu: int | None = None, amp: str = "off",
                  overrides: dict | None = None, row_limit: int = 30) -> tuple[str, Path]:
    """torch.profiler over `iterations` training iterations after warm-up (16 covers StyleGAN2's lazy
    regularisation interval). Returns the table of ops by self time (device time on CUDA) and writes it,
    with a Chrome trace (chrome://tracing or ui.perfetto.dev), to out_dir. Each phase is a `phase:<name>`
    range in the trace."""
    from torch.profiler import ProfilerActivity, profile
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t = _bench_trainer(model, size, device=device, batch=batch, batch_gpu=batch_gpu, amp=amp, overrides=overrides,
                       workdir=out_dir / "work")
    for _ in range(warmup):
        t.step()
    _sync(t.device)
    cuda = t.device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        for _ in range(iterations):
            t.step()
        _sync(t.device)
    sort = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    table = prof.key_averages().table(sort_by=sort, row_limit=row_limit)
    stem = f"profile-{model}-{size}"
    head = (f"# {model} at {size} px, batch {t.cfg.batch}, amp {amp}, {iterations} iterations after {warmup} "
            f"warm-up, on {t.device}; sorted by {sort}\n")
    (out_dir / f"{stem}.txt").write_text(head + table + "\n")
    trace = out_dir / f"{stem}.trace.json"
    prof.export_chrome_trace(str(trace))
    return head + table, trace


def bench_data(size: int, batch: int = 64, seconds: float = 2.0, device: str = "auto") -> float:
    """Images per second the batch sampler delivers (float [-1,1] NCHW on the device)."""
    from .data.sampler import BatchSampler
    from .training.trainer import resolve_device
    dev = resolve_device(device)
    s = BatchSampler(_Synthetic(4096, size), dev, seed=0, xflip=True)
    s.sample(batch)
    _sync(dev)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        s.sample(batch)
        n += batch
    _sync(dev)
    return n / (time.perf_counter() - start)


# ---------------------------------------------------------------------------------------------------------
# The reference implementation (a user's stylegan2-ada-pytorch checkout).
def write_reference_zip(path: Path, size: int, count: int = 512) -> Path:
    """A dataset zip in stylegan2-ada-pytorch's format (PNG files), from the synthetic images."""
    from PIL import Image
    data = _Synthetic(count, size)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
        for i, img in enumerate(data.images):
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="png", compress_level=0)
            z.writestr(f"{i:05d}.png", buf.getvalue())
        z.writestr("dataset.json", json.dumps({"labels": None}))
    return path


def reference_command(checkout: Path, data_zip: Path, outdir: Path, batch: int, kimg: float,
                      python: str = sys.executable) -> list[str]:
    """train.py with the auto config, all regularisers, no augmentation or metrics, one GPU."""
    return [python, str(checkout / "train.py"), f"--outdir={outdir}", f"--data={data_zip}", "--gpus=1",
            "--cfg=auto", f"--batch={batch}", f"--kimg={max(int(kimg), 1)}", "--snap=1000", "--metrics=none",
            "--aug=noaug", "--mirror=0"]


_TICK = re.compile(r"tick\s+(\d+).*?kimg\s+([\d.]+).*?sec/kimg\s+([\d.]+).*?gpumem\s+([\d.]+)")


def parse_reference_log(text: str) -> tuple[float, float] | None:
    """(sec/kimg, gpumem GB) of the last tick after the first (tick 0 includes start-up); None if none."""
    ticks = [(int(m[1]), float(m[3]), float(m[4])) for m in _TICK.finditer(text)]
    ticks = [t for t in ticks if t[0] > 0] or ticks
    if not ticks:
        return None
    _, sec, mem = ticks[-1]
    return sec, mem


def check_reference(checkout: str | Path) -> Path:
    """The checkout's path, or ValueError (checked before any timing starts)."""
    checkout = Path(checkout).expanduser()
    if not (checkout / "train.py").is_file():
        raise ValueError(f"--reference: no train.py in {checkout} (expected a stylegan2-ada-pytorch checkout)")
    if not torch.cuda.is_available():
        raise ValueError("--reference needs a CUDA GPU (stylegan2-ada-pytorch trains on CUDA only)")
    return checkout


def bench_reference(checkout: str | Path, size: int, batch: int = 32, kimg: float = 8,
                    timeout_s: float = 1800) -> BenchResult:
    checkout = check_reference(checkout)
    with tempfile.TemporaryDirectory(prefix="sga-ref-") as tmp:
        tmp = Path(tmp)
        cmd = reference_command(checkout, write_reference_zip(tmp / f"data{size}.zip", size), tmp / "out", batch,
                                kimg)
        proc = subprocess.run(cmd, cwd=checkout, capture_output=True, text=True, timeout=timeout_s)
        parsed = parse_reference_log(proc.stdout + proc.stderr)
    if parsed is None:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or ["no output"]
        raise ValueError(f"--reference: no timing in its log (exit {proc.returncode}): {tail[0]}")
    sec, mem = parsed
    return BenchResult("stylegan2-ada-pytorch", size, batch, sec, 1000 / sec, mem, note="reference")


def format_table(rows: list[BenchResult]) -> str:
    head = ["model", "size", "batch", "s/kimg", "img/s", "peak GB", "note"]
    body = [[r.name, str(r.size), str(r.batch), f"{r.sec_per_kimg:.3f}", f"{r.img_per_s:.1f}",
             f"{r.peak_mem_gb:.2f}", r.note] for r in rows]
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(head), line(["-" * w for w in widths])] + [line(b) for b in body])
