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
the same synthetic images, and parses its `sec/kimg` and `gpumem` from the log. Like for like: both sides run
with cuDNN autotuning on and TF32 off (NVlabs' defaults; `backend_flags` sets ours, `--nobench=False
--allow-tf32=False` the reference's), and the reference builds its plugins in a fresh TORCH_EXTENSIONS_DIR
(a killed earlier build cannot block it, a stale one cannot be reused). Its log is read for its fallback to
slow reference ops (its plugins fail to build on recent torch): such a row is labelled and no speed-up is
claimed from it (`reference_problems`).
"""
from __future__ import annotations

import dataclasses
import io
import json
import os
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

from ..models import get_recipe
from ..training.config import TrainConfig
from ..training.trainer import Trainer


@dataclass
class BenchResult:
    name: str
    size: int
    batch: int
    sec_per_kimg: float
    img_per_s: float
    peak_mem_gb: float
    note: str = ""
    problems: list[str] = dataclasses.field(default_factory=list)  # why the row is not like for like (reference)


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


DEFAULT_CUDA_SIZES = (64, 128)  # what `bench` times on CUDA when --sizes is not given (any of SIZES may be asked)


def bench_plan(cuda: bool, sizes: str | None = None, preset: str | None = None, channel_base: int | None = None,
               channel_max: int | None = None) -> tuple[list[int], dict]:
    """The sizes to time and StyleGAN2's overrides, from the flags given (None: not given). Defaults: on CUDA
    the auto preset at 64 and 128 px; on a CPU the `cpu` preset at 64 px only (auto at 128 px takes hours
    there). ValueError (one line, naming the flag) for a bad value."""
    if sizes is None:
        res = list(DEFAULT_CUDA_SIZES) if cuda else [64]
    else:
        from ..training.config import SIZE_TEXT, ConfigError, check_size  # noqa: PLC0415
        res = []
        for part in (x.strip() for x in sizes.split(",")):
            if not part:
                continue
            try:
                size = check_size(int(part), "--sizes")
            except (ValueError, ConfigError):
                raise ValueError(f"--sizes: each size must be {SIZE_TEXT}, got {part!r}") from None
            if size not in res:
                res.append(size)
        if not res:
            raise ValueError(f"--sizes: give at least one size ({SIZE_TEXT}), got {sizes!r}")
    over = {"preset": preset or ("auto" if cuda else "cpu"), "channel_base": channel_base, "channel_max": channel_max}
    over = {k: v for k, v in over.items() if v is not None}
    from ..training.config import ConfigError, validate_fields  # noqa: PLC0415
    recipe = get_recipe("stylegan2")
    try:
        mc = recipe.make_config(**over)
        validate_fields(mc)
        for r in res:
            recipe.check(mc, r)
    except (ConfigError, TypeError) as e:
        raise ValueError(str(e)) from None
    return res, over


# Like stylegan2-ada-pytorch's defaults (training_loop.py): cuDNN autotuning on, TF32 off for matmul and conv.
BACKEND_FLAGS = {"cudnn.benchmark": True, "tf32": False}


def backend_flags(benchmark: bool = True, tf32: bool = False) -> str:
    """Set cudnn.benchmark and TF32 (matmul and cuDNN) for our side; returns them as printed for both sides."""
    torch.backends.cudnn.benchmark = benchmark
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    return flags_text(torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32,
                      torch.backends.cudnn.allow_tf32)


def flags_text(benchmark: bool, tf32_matmul: bool, tf32_cudnn: bool) -> str:
    return f"cudnn.benchmark {benchmark}, TF32 matmul {tf32_matmul}, TF32 cudnn {tf32_cudnn}"


def reference_flags_text(benchmark: bool = True, tf32: bool = False) -> str:
    """The same line for the reference (what its --nobench / --allow-tf32 flags set in its training loop)."""
    return flags_text(benchmark, tf32, tf32)


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


def bench_batch(model: str, size: int, overrides: dict | None = None) -> int:
    """The global batch bench_model would train `model` at `size` with (the recipe's preset decides it)."""
    mc = dataclasses.asdict(get_recipe(model).make_config(**dict(overrides or {})))
    return TrainConfig(data="synthetic", size=size, model=model, model_cfg=mc).batch


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
    from ..training.monitor import peak_memory_gb
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
    from ..data.sampler import BatchSampler
    from ..training.trainer import resolve_device
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
                      python: str = sys.executable, benchmark: bool = True, tf32: bool = False) -> list[str]:
    """train.py with the auto config, all regularisers, no augmentation or metrics, one GPU; cuDNN autotuning
    and TF32 as given (the same as ours)."""
    return [python, str(checkout / "train.py"), f"--outdir={outdir}", f"--data={data_zip}", "--gpus=1",
            "--cfg=auto", f"--batch={batch}", f"--kimg={max(int(kimg), 1)}", "--snap=1000", "--metrics=none",
            "--aug=noaug", "--mirror=0", f"--nobench={not benchmark}", f"--allow-tf32={tf32}"]


# What stylegan2-ada-pytorch prints when a plugin does not build (torch_utils/ops/*.py, custom_ops.py).
_NV_FALLBACK = re.compile(r"Failed to build CUDA kernels for (\w+)\. Falling back to slow reference implementation")
_NV_PLUGIN_FAILED = re.compile(r'Setting up PyTorch plugin "(\w+)"\.\.\.\s*Failed!')


def reference_problems(text: str) -> list[str]:
    """What in the reference's log makes its timing not like for like: each op that fell back to its slow
    reference implementation, each plugin whose build failed. [] when the log shows none."""
    problems = []
    slow = sorted(set(_NV_FALLBACK.findall(text)))
    if slow:
        problems.append(f"slow reference ops for {', '.join(slow)} (its CUDA build failed)")
    failed = sorted(set(_NV_PLUGIN_FAILED.findall(text)) - {f"{op}_plugin" for op in slow})
    if failed:
        problems.append(f"plugin build failed: {', '.join(failed)}")
    return problems


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
                    timeout_s: float = 1800, extensions_dir: str | Path | None = None,
                    log_path: str | Path | None = None) -> BenchResult:
    """Time the checkout (CUDA only). See run_reference."""
    return run_reference(check_reference(checkout), size, batch, kimg, timeout_s, extensions_dir, log_path)


def run_reference(checkout: Path, size: int, batch: int = 32, kimg: float = 8, timeout_s: float = 1800,
                  extensions_dir: str | Path | None = None, log_path: str | Path | None = None) -> BenchResult:
    """Run the checkout's train.py with TORCH_EXTENSIONS_DIR = `extensions_dir` (None: a fresh one inside its
    temporary folder), parse its timing, and label the row when its log shows a fallback to slow ops
    (`problems` then lists why; `note` starts with 'NOT COMPARABLE'). Its whole log is appended to `log_path`."""
    with tempfile.TemporaryDirectory(prefix="sga-ref-") as tmp:
        tmp = Path(tmp)
        cmd = reference_command(checkout, write_reference_zip(tmp / f"data{size}.zip", size), tmp / "out", batch,
                                kimg, benchmark=BACKEND_FLAGS["cudnn.benchmark"], tf32=BACKEND_FLAGS["tf32"])
        env = dict(os.environ, TORCH_EXTENSIONS_DIR=str(extensions_dir or tmp / "torch_extensions"))
        proc = subprocess.run(cmd, cwd=checkout, capture_output=True, text=True, timeout=timeout_s, env=env)
        text = proc.stdout + proc.stderr
        if log_path is not None:
            with open(log_path, "a") as f:
                f.write(f"# {' '.join(cmd)}\n# TORCH_EXTENSIONS_DIR={env['TORCH_EXTENSIONS_DIR']}\n{text}\n")
        parsed = parse_reference_log(text)
    if parsed is None:
        tail = text.strip().splitlines()[-1:] or ["no output"]
        raise ValueError(f"--reference: no timing in its log (exit {proc.returncode}): {tail[0]}")
    sec, mem = parsed
    problems = reference_problems(text)
    note = "NOT COMPARABLE: " + "; ".join(problems) if problems else "reference"
    return BenchResult("stylegan2-ada-pytorch", size, batch, sec, 1000 / sec, mem, note=note, problems=problems)


TABLE_HEAD = ["model", "size", "batch", "s/kimg", "img/s", "peak GB", "note"]
TABLE_WIDTHS = [21, 4, 5, 8, 8, 7, 0]  # fixed, so that each row can be printed as soon as it is measured


def _line(cells: list[str]) -> str:
    return "  ".join(c.ljust(w) for c, w in zip(cells, TABLE_WIDTHS)).rstrip()


def format_head() -> str:
    """The table's two heading lines."""
    return "\n".join([_line(TABLE_HEAD), _line(["-" * max(w, len(h)) for w, h in zip(TABLE_WIDTHS, TABLE_HEAD)])])


def format_row(r: BenchResult) -> str:
    return _line([r.name, str(r.size), str(r.batch), f"{r.sec_per_kimg:.3f}", f"{r.img_per_s:.1f}",
                  f"{r.peak_mem_gb:.2f}", r.note])


def format_table(rows: list[BenchResult]) -> str:
    return "\n".join([format_head()] + [format_row(r) for r in rows])
