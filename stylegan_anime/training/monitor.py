"""What a run shows while it trains: TensorBoard scalars and grids, a progress bar, and console lines.

The same tag names for every model, so runs compare side by side in one TensorBoard:
    Loss/<phase>         the phase's loss (Loss/D, Loss/G, Loss/Dreg ...)
    Stats/<name>         other values a recipe reports (Stats/D_real, Stats/gp, Stats/wdist ...)
    Progress/kimg, Progress/lr_<net>, Progress/skipped_steps
    Progress/train_seconds, Progress/maintenance_seconds, Progress/train_cpu_seconds   (see trainer.py)
    Metrics/<name>, MetricsByTime/<name>   the same values, stepped by images shown / by seconds of training
    Perf/img_per_s, Perf/sec_per_kimg, Perf/peak_mem_gb
    Samples/G, Samples/ema, Samples/reals
The TensorBoard step is the number of real images shown (kimg x 1000), except in MetricsByTime/*.
Statistics are summed as device tensors and read back only when logged (no host sync per step).

The console: a progress bar on a terminal (stderr a TTY and --progress), else plain status lines every
--status-every seconds (default 60 without the bar, off with it; 0: off), and one at the end:

    kimg 1.536/100  time 5m12s  s/kimg 203.1  img/s 4.92  eta 5h33m  loss G 1.23 D 0.456  aug p 0.12  mem 1.85 GB

(time: training seconds, train_s; s/kimg and img/s: since the previous status line; eta: to --kimg or to
--minutes, whichever comes first, training time only; aug p when augmenting; mem: peak CUDA memory allocated,
or the process's peak RSS on a CPU). RUN/log.txt gets a status line at every scalar flush (--log) and every
line the console shows (warnings, checkpoints, metrics ...), appended and flushed (see console.py).
"""
from __future__ import annotations

import math
import resource
import time
from collections import defaultdict

import numpy as np
import torch
from tqdm.auto import tqdm

from . import console


class Monitor:
    def __init__(self, run_dir, total_kimg: float, start_kimg: float, device: torch.device, progress: bool = True,
                 status_every: float | None = None, budget_s: float = math.inf):
        from torch.utils.tensorboard import SummaryWriter  # imported late: it is slow to import

        self.writer = SummaryWriter(log_dir=str(run_dir))
        self.run_log = console.open_run_log(run_dir)
        self.stderr = console.stderr()
        self.bar_shown = bool(progress) and (console.isatty(self.stderr) or _in_notebook())
        self.status_every = status_every_s(status_every, self.bar_shown)
        self.total_nimg, self.budget_s = total_kimg * 1000, budget_s
        self._clock = time.monotonic  # status lines every status_every seconds of this clock; tests replace it
        self._status_at = self._clock()
        self._status_nimg, self._status_train_s = int(start_kimg * 1000), None
        self._losses: dict[str, float] = {}  # the mean losses of the last flush
        self.device = device
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = defaultdict(int)
        self.last_time = time.perf_counter()
        self.last_nimg = int(start_kimg * 1000)
        self.bar = tqdm(total=round(total_kimg, 3), initial=round(start_kimg, 3), unit="kimg",
                        disable=not self.bar_shown, dynamic_ncols=True,
                        bar_format="{l_bar}{bar}| {n:.2f}/{total:.2f} kimg [{elapsed}<{remaining}{postfix}]",
                        file=self.stderr)

    # --- accumulation (cheap, on device) ---
    def add(self, name: str, value: torch.Tensor) -> None:
        v = value.detach().float()
        self.sums[name] = self.sums[name] + v if name in self.sums else v.clone()
        self.counts[name] += 1

    def advance(self, kimg: float) -> None:
        step = round(kimg - self.bar.n, 3)
        if self.bar.total is not None and self.bar.n + step > self.bar.total:  # the last batch ends past --kimg:
            self.bar.total = self.bar.n + step  # the total is what is reached (no clamped bar, no negative ETA)
        self.bar.update(step)

    # --- flushing (host sync here only) ---
    def flush(self, nimg: int, extra: dict[str, float]) -> dict[str, float]:
        now = time.perf_counter()
        dt, dn = now - self.last_time, nimg - self.last_nimg
        values = {k: (self.sums[k] / self.counts[k]).item() for k in self.sums}
        if dn > 0 and dt > 0:
            values["Perf/img_per_s"] = dn / dt
            values["Perf/sec_per_kimg"] = dt / dn * 1000
        values["Perf/peak_mem_gb"] = peak_memory_gb(self.device)
        values["Progress/kimg"] = nimg / 1000
        values.update(extra)
        for k, v in values.items():
            if np.isfinite(v):
                self.writer.add_scalar(k, v, global_step=nimg)
        self.sums.clear()
        self.counts.clear()
        self.last_time, self.last_nimg = now, nimg
        short = {k.split("/")[-1]: v for k, v in values.items() if k.startswith("Loss/")}
        self._losses = dict(short)
        if "Perf/img_per_s" in values:
            short["img/s"] = values["Perf/img_per_s"]
        self.bar.set_postfix({k: f"{v:.3g}" for k, v in short.items()}, refresh=False)
        return values

    def hparams(self, hparams: dict, metric_tags: list[str]) -> None:
        """Write the run's hyperparameters for TensorBoard's HPARAMS tab, into this run's own event file."""
        from torch.utils.tensorboard.summary import hparams as hparams_summary

        exp, ssi, sei = hparams_summary(hparams, {tag: 0.0 for tag in metric_tags + ["Loss/G", "Loss/D"]})
        for summary in (exp, ssi, sei):
            self.writer.file_writer.add_summary(summary)

    def image(self, tag: str, grid: np.ndarray, nimg: int) -> None:
        self.writer.add_image(tag, grid, global_step=nimg, dataformats="HWC")

    def status(self, nimg: int, train_s: float, *, augment_p: float | None = None, tick: bool = False,
               end: bool = False) -> str | None:
        """After an iteration: the status line on the console when status_every seconds have passed (and at the
        end), and into log.txt then and at every scalar flush (`tick`). Costs a clock read when nothing is due.
        Returns the line written, if any."""
        now = self._clock()
        show = self.status_every > 0 and (end or now - self._status_at >= self.status_every)
        if not (show or tick or end):
            return None
        line = self.status_line(nimg, train_s, augment_p)
        if show:
            self._status_at = now
            self.write(line)
        else:
            console.log(line)
        return line

    def losses(self) -> dict[str, float]:
        """The mean losses since the last flush ({'D': 0.69, 'G': 1.2}), else those of the last flush."""
        return {k.split("/", 1)[1]: (self.sums[k] / self.counts[k]).item() for k in self.sums
                if k.startswith("Loss/")} or dict(self._losses)

    def status_line(self, nimg: int, train_s: float, augment_p: float | None = None) -> str:
        losses = self.losses()
        dn, dt = nimg - self._status_nimg, train_s - (self._status_train_s or 0.0)  # since the last status line
        sec_per_img = dt / dn if dn > 0 and dt > 0 else math.nan
        self._status_nimg, self._status_train_s = nimg, train_s
        eta, why = math.inf, ""
        if math.isfinite(sec_per_img):
            eta = max(0.0, self.total_nimg - nimg) * sec_per_img
        if math.isfinite(self.budget_s) and self.budget_s - train_s < eta:
            eta, why = max(0.0, self.budget_s - train_s), " (--minutes)"
        parts = [f"kimg {nimg / 1000:.3f}/{self.total_nimg / 1000:g}", f"time {console.format_duration(train_s)}",
                 f"s/kimg {sec_per_img * 1000:.4g}" if math.isfinite(sec_per_img) else "s/kimg ?",
                 f"img/s {1 / sec_per_img:.4g}" if math.isfinite(sec_per_img) and sec_per_img > 0 else "img/s ?",
                 f"eta {console.format_duration(eta)}{why}"]
        if losses:
            parts.append("loss " + " ".join(f"{k} {v:.4g}" for k, v in losses.items()))
        if augment_p is not None:
            parts.append(f"aug p {augment_p:.3f}")
        parts.append(f"mem {peak_memory_gb(self.device):.2f} GB")
        return "  ".join(parts)

    def start_status(self, nimg: int, train_s: float) -> None:
        """Where the rates of the first status line start (training begins, or resumes, here)."""
        self._status_nimg, self._status_train_s = nimg, train_s
        self._status_at = self._clock()

    def write(self, line: str) -> None:
        """A line on the console (above the bar; a no-op once the console is gone) and in log.txt."""
        if self.bar_shown:
            self.bar.write(line, file=self.stderr)
        else:
            self.stderr.write(line + "\n")
            self.stderr.flush()
        console.log(line)

    def close(self) -> None:
        try:
            if self.bar.total is not None and self.bar.n > self.bar.total:
                self.bar.total = self.bar.n  # the total reached, never a clamped bar
            self.bar.close()
            self.writer.flush()
            self.writer.close()
        finally:
            console.close_run_log(self.run_log)


def run_hparams(cfg, recipe_cfg) -> dict:
    """Flat hyperparameters for TensorBoard's HPARAMS tab: model, size, batch, amp, data and every model value."""
    import dataclasses  # noqa: PLC0415
    out = {"model": cfg.model, "size": cfg.size, "batch": cfg.batch, "amp": cfg.amp, "data": cfg.data}
    out.update({f"m.{k}": v for k, v in dataclasses.asdict(recipe_cfg).items() if isinstance(v, (int, float, str, bool))})
    return out


def _in_notebook() -> bool:
    """tqdm.auto draws a widget in a Jupyter notebook (whose stderr is no TTY)."""
    from tqdm import autonotebook
    return autonotebook.tqdm.__module__.endswith("notebook")


def status_every_s(value: float | None, bar_shown: bool) -> float:
    """--status-every: the given seconds (0: off), else 60 without a progress bar and off with one."""
    if value is not None:
        return float(value)
    return 0.0 if bar_shown else 60.0


def peak_memory_gb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux reports KiB
