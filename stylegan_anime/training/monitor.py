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
"""
from __future__ import annotations

import resource
import sys
import time
from collections import defaultdict

import numpy as np
import torch
from tqdm.auto import tqdm


class Monitor:
    def __init__(self, run_dir, total_kimg: float, start_kimg: float, device: torch.device, progress: bool = True):
        from torch.utils.tensorboard import SummaryWriter  # imported late: it is slow to import

        self.writer = SummaryWriter(log_dir=str(run_dir))
        self.device = device
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = defaultdict(int)
        self.last_time = time.perf_counter()
        self.last_nimg = int(start_kimg * 1000)
        self.bar = tqdm(total=round(total_kimg, 3), initial=round(start_kimg, 3), unit="kimg", disable=not progress,
                        dynamic_ncols=True, bar_format="{l_bar}{bar}| {n:.2f}/{total:.2f} kimg [{elapsed}<{remaining}{postfix}]",
                        file=sys.stderr)

    # --- accumulation (cheap, on device) ---
    def add(self, name: str, value: torch.Tensor) -> None:
        v = value.detach().float()
        self.sums[name] = self.sums[name] + v if name in self.sums else v.clone()
        self.counts[name] += 1

    def advance(self, kimg: float) -> None:
        self.bar.update(round(kimg - self.bar.n, 3))

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

    def write(self, line: str) -> None:
        self.bar.write(line, file=sys.stderr)

    def close(self) -> None:
        self.bar.close()
        self.writer.flush()
        self.writer.close()


def peak_memory_gb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux reports KiB
