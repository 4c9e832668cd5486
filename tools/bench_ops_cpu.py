"""Fused CPU kernels (`--ops cpu`) against the reference ops (issue #22): per op, and per training step.

    python tools/bench_ops_cpu.py ops               # each op's forward + backward at the cpu preset's shapes
    python tools/bench_ops_cpu.py train --steps 32  # train --preset cpu --size 64: fused vs reference steps

`ops`: batch 16 at the StyleGAN2 `cpu` preset's shapes (64 ch at 8-32 px, 32 ch at 64 px, 16 ch at 64 px):
bias + lrelu with the default gain and clamp 256, the 4x4 low-pass filter as the networks call it
(filter2d at the upsampled size, downsample2d, upsample2d); forward + backward (x and, for bias_act, the bias).
Fused and reference calls alternate (one of each per round, same thread count), so both see the same load of
a shared machine; each row is measured at 1 and at 2 threads (torch.set_num_threads). Wall and this process's
CPU time (median per call).

`train`: two Trainers of `--preset cpu --size 64` built from the same seed, one stepped with the reference ops
and one with the fused CPU kernels, alternating step by step (the process-wide op default is switched before
each step), whole lazy-regularisation cycles (16 iterations) per variant; img/s by wall and by CPU time.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from stylegan_anime.cuda_ops import backend, bias_act, build, upfirdn2d  # noqa: E402

SHAPES = [(64, 8), (64, 16), (64, 32), (32, 64), (16, 64)]  # (channels, pixels) of the cpu preset
BATCH = 16


def _cases(C: int, H: int, dtype: torch.dtype, layout=torch.contiguous_format):
    f = upfirdn2d.setup_filter([1, 3, 3, 1], separable=False)
    g = torch.Generator().manual_seed(C * 1000 + H)
    x = torch.randn(BATCH, C, H, H, generator=g).to(dtype).contiguous(memory_format=layout)
    b = torch.randn(C, generator=g).to(dtype)
    return [
        ("bias_act lrelu clamp", x, b, lambda x, b, impl: bias_act.bias_act(x, b, act="lrelu", clamp=256, impl=impl)),
        ("filter2d 4x4 (gain 4)", x, None, lambda x, b, impl: upfirdn2d.filter2d(x, f, gain=4, impl=impl)),
        ("downsample2d 4x4", x, None, lambda x, b, impl: upfirdn2d.downsample2d(x, f, impl=impl)),
        ("upsample2d 4x4", x[:, :, : H // 2, : H // 2].contiguous(memory_format=layout), None,
         lambda x, b, impl: upfirdn2d.upsample2d(x, f, impl=impl)),
    ]


def _fwd_bwd(fn, x, b, impl):
    xs = x.detach().requires_grad_(True)
    bs = None if b is None else b.detach().requires_grad_(True)
    y = fn(xs, bs, impl)
    y.backward(torch.ones_like(y))


def ops(args) -> None:
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[args.dtype]
    plugin = {op: build.get_plugin(op) for op in build.CPU_OPS}  # build (or load) first: not timed
    print(f"# torch {torch.__version__}; kernels: {plugin['upfirdn2d_cpu'].isa()}; {args.dtype}; batch {BATCH}; "
          f"{'channels_last' if args.channels_last else 'NCHW'}; "
          f"forward + backward; median of {args.reps} interleaved rounds; ms per call (wall / CPU)")
    print(f"{'op':<24} {'shape':>10} {'thr':>3} {'ref wall':>9} {'cpu wall':>9} {'ref CPU':>8} {'cpu CPU':>8} "
          f"{'x wall':>7} {'x CPU':>6}")
    totals = {}
    for C, H in SHAPES:
        layout = torch.channels_last if args.channels_last else torch.contiguous_format
        for name, x, b, fn in _cases(C, H, dtype, layout):
            for threads in args.threads:
                torch.set_num_threads(threads)
                for impl in ("ref", "cpu"):  # warm up
                    _fwd_bwd(fn, x, b, impl)
                times = {"ref": ([], []), "cpu": ([], [])}
                for _ in range(args.reps):
                    for impl in ("ref", "cpu"):
                        w0, c0 = time.perf_counter(), time.process_time()
                        _fwd_bwd(fn, x, b, impl)
                        times[impl][0].append(time.perf_counter() - w0)
                        times[impl][1].append(time.process_time() - c0)
                med = {k: (statistics.median(v[0]) * 1e3, statistics.median(v[1]) * 1e3) for k, v in times.items()}
                t = totals.setdefault((name, threads), [0.0, 0.0, 0.0, 0.0])
                for i, v in enumerate((*med["ref"], *med["cpu"])):
                    t[i] += v
                print(f"{name:<24} {f'{C}x{H}x{H}':>10} {threads:>3} {med['ref'][0]:>9.3f} {med['cpu'][0]:>9.3f} "
                      f"{med['ref'][1]:>8.3f} {med['cpu'][1]:>8.3f} {med['ref'][0] / med['cpu'][0]:>7.2f} "
                      f"{med['ref'][1] / max(med['cpu'][1], 1e-9):>6.2f}", flush=True)
    print("\n# sum over the shapes")
    for (name, threads), (rw, rc, cw, cc) in totals.items():
        print(f"{name:<24} {'all':>10} {threads:>3} {rw:>9.3f} {cw:>9.3f} {rc:>8.3f} {cc:>8.3f} {rw / cw:>7.2f} "
              f"{rc / max(cc, 1e-9):>6.2f}")


def train(args) -> None:
    from stylegan_anime.benchmarks.training import _bench_trainer

    for op in build.CPU_OPS:
        build.get_plugin(op)
    threads = torch.get_num_threads()
    print(f"# torch {torch.__version__}, {threads} thread(s), OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}; "
          f"train --preset cpu --size 64 (batch 16); {args.steps} steps per variant after {args.warmup} warm-up "
          f"steps, interleaved step by step; amp {args.amp}")
    trainers = {}
    for impl in ("ref", "cpu"):
        torch.manual_seed(0)
        backend.set_default_impl(impl)
        t = _bench_trainer("stylegan2", 64, device="cpu", batch=None, batch_gpu=None, amp=args.amp,
                           overrides=dict(preset="cpu"), workdir=tempfile.mkdtemp(prefix="bench-ops-cpu-"))
        for _ in range(args.warmup):
            t.step()
        t.iteration = 16  # both at the same point of the lazy-regularisation cycle
        trainers[impl] = t
    acc = {impl: [0.0, 0.0, 0] for impl in trainers}
    for _ in range(args.steps):
        for impl, t in trainers.items():
            backend.set_default_impl(impl)
            w0, c0 = time.perf_counter(), time.process_time()
            t.step()
            acc[impl][0] += time.perf_counter() - w0
            acc[impl][1] += time.process_time() - c0
            acc[impl][2] += t.cfg.batch
    backend.set_default_impl("auto")
    (rw, rc, n), (cw, cc, _) = acc["ref"], acc["cpu"]
    print(f"{'ops':<6} {'img/s wall':>10} {'img/CPU-s':>10}")
    print(f"{'ref':<6} {n / rw:>10.2f} {n / rc:>10.2f}")
    print(f"{'cpu':<6} {n / cw:>10.2f} {n / cc:>10.2f}")
    print(f"fused / reference: x{rw / cw:.3f} by wall, x{rc / cc:.3f} by CPU time")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    o = sub.add_parser("ops")
    o.add_argument("--reps", type=int, default=20)
    o.add_argument("--threads", type=lambda s: [int(v) for v in s.split(",")], default=[1, 2])
    o.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    o.add_argument("--channels-last", action="store_true", help="inputs in channels_last (training's layout on a CPU)")
    t = sub.add_parser("train")
    t.add_argument("--steps", type=int, default=32)
    t.add_argument("--warmup", type=int, default=3)
    t.add_argument("--amp", default="off")
    args = p.parse_args(argv)
    {"ops": ops, "train": train}[args.cmd](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
