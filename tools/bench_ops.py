#!/usr/bin/env python3
"""Per-op benchmark of the custom ops (issue #4): fused CUDA kernels vs the eager PyTorch reference vs
`torch.compile` of the reference, at the shapes StyleGAN2 really uses, then whole training steps with each.

    python tools/bench_ops.py --sizes 64,128 --json bench_ops.json   # on a GPU (tools/gpu_checks.sh OUT bench-ops)
    python tools/bench_ops.py --quick                                 # tiny shapes: a smoke test on a CPU
    python tools/bench_ops.py --help                                  # every flag, with examples

The code lives in the package `stylegan_anime.benchmarks.ops` (shapes.py: the recorded op signatures; timing.py:
per-op timing; step.py: whole training steps; report.py: the tables; cli.py: these flags); its docstring
says what is measured and how.
"""
import sys

from stylegan_anime.benchmarks.ops import main

if __name__ == "__main__":
    sys.exit(main())
