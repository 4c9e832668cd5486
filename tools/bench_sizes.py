"""StyleGAN2 training cost per size on this CPU: the `cpu` preset measured, the GPU presets estimated.

For each size: one training iteration of `--preset cpu` timed without and with the lazy regularisers (so the
R1/path-length cost is amortised over its interval exactly, without running 16 iterations at 512 px), as
wall seconds and as this process's CPU seconds (a shared, busy machine inflates wall time, much less CPU time),
beside the one-line estimate that `train` prints for a GPU preset on a CPU (training/cpu_estimate.py) for the
`cpu` preset (to check the estimate) and for `auto`.

    OMP_NUM_THREADS=1 python tools/bench_sizes.py --sizes 64,128,256,512
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _clock():
    return time.perf_counter(), time.process_time()


def measure(size: int, preset: str = "cpu", plain: int = 2, batch: int | None = None):
    import numpy as np
    import torch
    from types import SimpleNamespace

    from stylegan_anime.stylegan2.recipe import StyleGAN2Config, resolve
    from stylegan_anime.training.config import TrainConfig
    from stylegan_anime.training.trainer import Trainer

    mc = resolve(StyleGAN2Config(preset=preset, batch=batch), size)
    n = max(mc.batch * 2, 32)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)

    class Data(SimpleNamespace):
        def __len__(self):
            return n

    work = Path(tempfile.mkdtemp(prefix="bench-sizes-"))
    cfg = TrainConfig(data="synthetic", size=size, kimg=1e9, outdir=str(work), device="cpu", progress=False,
                      metrics="", model_cfg=dataclasses.asdict(mc))
    t = Trainer(cfg, work / "run", dataset=Data(images=images, labels=None, label_names=None))
    t.step()  # iteration 0: every phase (lazy ones too), first-call allocations
    t.step()
    w0, c0 = _clock()
    for _ in range(plain):
        t.step()
    w1, c1 = _clock()
    plain_w, plain_c = (w1 - w0) / plain, (c1 - c0) / plain
    intervals = [p.interval for p in t.recipe.phases if p.interval > 1]
    reg_w = reg_c = 0.0
    for interval in sorted(set(intervals)):
        t.iteration = interval * 1000  # a multiple of every interval that equals this one ...
        due = [p for p in t.recipe.phases if p.interval > 1 and t.iteration % p.interval == 0]
        w0, c0 = _clock()
        t.step()
        w1, c1 = _clock()
        share = 1 / interval / len(due)  # ... each lazy phase amortised over its own interval
        reg_w += (w1 - w0 - plain_w) * share * len(due)
        reg_c += (c1 - c0 - plain_c) * share * len(due)
    per_kimg = lambda s: s * 1000 / mc.batch  # noqa: E731
    return per_kimg(plain_w + reg_w), per_kimg(plain_c + reg_c), mc


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="64,128,256,512")
    p.add_argument("--no-estimate", action="store_true", help="skip the estimates (auto at 1024 px takes a while)")
    p.add_argument("--calibrate", type=int, default=0, metavar="SIZE",
                   help="instead: measure the auto preset at SIZE with batch 4 and its estimate, both in CPU seconds "
                        "(checks cpu_estimate's phase weights on a compute-bound network)")
    args = p.parse_args(argv)
    if args.calibrate:
        import time as _time

        from stylegan_anime.stylegan2.recipe import StyleGAN2Config as _C, resolve as _r
        from stylegan_anime.training.cpu_estimate import estimate as _est
        wall, cpu, mc = measure(args.calibrate, preset="auto", plain=1, batch=4)
        est = _est(_r(_C(batch=4), args.calibrate), args.calibrate, clock=_time.process_time).s_per_kimg
        print(f"auto at {args.calibrate} px, batch 4: measured {cpu:,.0f} CPU s/kimg ({wall:,.0f} wall), "
              f"estimate {est:,.0f} CPU s/kimg: estimate / measured = {est / cpu:.2f}")
        return 0
    import torch

    from stylegan_anime.stylegan2.recipe import StyleGAN2Config, resolve
    from stylegan_anime.training.cpu_estimate import estimate

    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS', 'unset')}")
    print(f"{'size':>5} | {'cpu preset s/kimg wall':>22} | {'CPU s/kimg':>10} | {'estimate cpu':>12} | "
          f"{'estimate auto':>13} | {'auto batch':>10}")
    for size in [int(s) for s in args.sizes.split(",")]:
        wall, cpu, mc = measure(size)
        est_cpu = est_auto = float("nan")
        if not args.no_estimate:
            est_cpu = estimate(mc, size).s_per_kimg
            est_auto = estimate(resolve(StyleGAN2Config(), size), size).s_per_kimg
        print(f"{size:>5} | {wall:>22,.0f} | {cpu:>10,.0f} | {est_cpu:>12,.0f} | {est_auto:>13,.0f} | "
              f"{resolve(StyleGAN2Config(), size).batch:>10}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
