#!/usr/bin/env python3
"""The parts of `tools/gpu_checks.sh OUT first` that are Python: build, a training smoke run, a loss-parity check.

    python tools/gpu_smoke.py build     # both CUDA plugins, built side by side (one process each), self-tested
    python tools/gpu_smoke.py smoke     # 10 iterations of StyleGAN2 in the fp16 path with every regulariser
    python tools/gpu_smoke.py parity    # 5 iterations with --ops cuda and with --ops ref: the same losses?

On a CUDA GPU: `smoke` is the auto preset at 64 px, 4 float16 resolutions with conv clamp 256, --amp fp16 (the
GradScaler path), R1 every 4 and path length every 2 iterations; the first step is checked and reported
(training/sanity.py: which implementation each op ran, which dtype each block used). `parity` is the same net in
float32 (TF32 off) with each op implementation, same seed; the losses per phase and iteration must agree within
1e-2 (relative, of at least 0.1). Without a GPU (a dry run): `build` and `parity` skip, `smoke` runs a tiny
network on the CPU for one iteration (bfloat16 blocks), so every part of the script is exercised. Exit 1 when a
check fails.
"""
from __future__ import annotations

import argparse
import math
import subprocess
import sys
import time

import torch

SMOKE_ITERATIONS = 10
DRY_ITERATIONS = 1  # on a CPU: the first step has every phase due
PARITY_ITERATIONS = 5
PARITY_TOLERANCE = 1e-2


def _cuda() -> bool:
    return torch.cuda.is_available()


def build() -> int:
    if not _cuda():
        print("build: skipped: no CUDA GPU")
        return 0
    from stylegan_anime.cuda_ops import build as B

    start = time.monotonic()
    procs = {op: subprocess.Popen([sys.executable, "-c", f"from stylegan_anime.cuda_ops import build; "
                                   f"build.get_plugin({op!r})"]) for op in B.OPS}
    failed = 0
    for op, proc in procs.items():
        rc = proc.wait()
        state, detail = B.plugin_status(op)
        print(f"build: {op}: exit {rc} after {time.monotonic() - start:.0f} s: {state}: {detail}", flush=True)
        failed += rc != 0 or state != "built"
    return 1 if failed else 0


def _trainer(cuda: bool, amp: str, fp16_res: int, workdir: str):
    from stylegan_anime.benchmarks.training import _bench_trainer

    if cuda:
        over = dict(preset="auto", num_fp16_res=fp16_res, r1_interval=4, pl_interval=2)
        size = 64
    else:  # the dry run: a tiny net, bfloat16 blocks (float16 blocks compute in float32 on a CPU)
        over = dict(preset="cpu", channel_base=128, channel_max=8, z_dim=8, w_dim=8, batch=4, pl_weight=2.0,
                    num_fp16_res=fp16_res, fp16_dtype="bfloat16", r1_interval=4, pl_interval=2)
        size, amp = 32, "off" if amp == "fp16" else amp
    return _bench_trainer("stylegan2", size, device="cuda" if cuda else "cpu", batch=None, batch_gpu=None, amp=amp,
                          overrides=over, workdir=workdir)


def _run(t, iterations: int, first_report: bool) -> list[dict[str, float]]:
    """Losses per iteration ({phase: loss of its first round}); the first step through the sanity check."""
    from stylegan_anime.training import sanity

    losses: list[dict[str, float]] = []
    record = t._record

    def watched(phase_name, out):
        losses[-1].setdefault(phase_name, float(out["loss"].detach().float()))
        return record(phase_name, out)

    t._record = watched
    try:
        for i in range(iterations):
            losses.append({})
            if i == 0 and first_report:
                report = sanity.run_first_step(t)
                for line in report.lines():
                    print(line)
                if report.problems:
                    print("smoke: FAILED: " + "; ".join(report.problems))
            else:
                t.step()
    finally:
        del t._record
    return losses


def smoke() -> int:
    import tempfile

    from stylegan_anime.benchmarks.training import backend_flags

    cuda = _cuda()
    print(f"smoke: {'cuda' if cuda else 'cpu (dry run: a tiny network)'}, {backend_flags()}")
    with tempfile.TemporaryDirectory(prefix="sga-smoke-") as tmp:
        t = _trainer(cuda, "fp16", 4, tmp)
        print(f"smoke: {t.cfg.size} px, batch {t.cfg.batch}, amp {t.cfg.amp}, phases "
              + ", ".join(f"{p.name} every {p.interval}" for p in t.recipe.phases))
        start = time.monotonic()
        iterations = SMOKE_ITERATIONS if cuda else DRY_ITERATIONS
        losses = _run(t, iterations, first_report=True)
        if cuda:
            torch.cuda.synchronize()
        for i, row in enumerate(losses):
            print(f"smoke: iteration {i}: " + ", ".join(f"{k} {v:.4g}" for k, v in row.items()))
        bad = [(i, k, v) for i, row in enumerate(losses) for k, v in row.items() if not math.isfinite(v)]
        print(f"smoke: {iterations} iterations in {time.monotonic() - start:.1f} s, {t.skipped} optimiser "
              f"steps skipped (non-finite gradients; the GradScaler's first steps may overflow)")
        phases = {k for row in losses for k in row}
        if not {"G", "D", "Greg", "Dreg"} <= phases:
            print(f"smoke: FAILED: not every regulariser ran: {sorted(phases)}")
            return 1
        if bad:
            print(f"smoke: FAILED: non-finite losses: {bad[:5]}")
            return 1
    print("smoke: ok")
    return 0


def parity() -> int:
    if not _cuda():
        print("parity: skipped: --ops cuda needs a CUDA GPU")
        return 0
    import tempfile

    from stylegan_anime.benchmarks.training import backend_flags
    from stylegan_anime.cuda_ops import backend

    print(f"parity: {backend_flags()}")
    runs = {}
    for impl in ("cuda", "ref"):
        backend.set_default_impl(impl)
        with tempfile.TemporaryDirectory(prefix="sga-parity-") as tmp:
            runs[impl] = _run(_trainer(True, "off", 0, tmp), PARITY_ITERATIONS, first_report=False)
    backend.set_default_impl("auto")
    worst = 0.0
    for i, (a, b) in enumerate(zip(runs["cuda"], runs["ref"])):
        cells = []
        for k in b:
            err = abs(a.get(k, math.nan) - b[k]) / max(abs(b[k]), 0.1)
            worst = max(worst, err) if math.isfinite(err) else math.inf
            cells.append(f"{k} {a.get(k, math.nan):.6g} vs {b[k]:.6g} ({err:.1e})")
        print(f"parity: iteration {i}: cuda vs ref: " + ", ".join(cells))
    ok = worst <= PARITY_TOLERANCE
    print(f"parity: {'ok' if ok else 'FAILED'}: largest relative difference {worst:.2e} "
          f"(tolerance {PARITY_TOLERANCE:g})")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("part", choices=["build", "smoke", "parity"])
    args = ap.parse_args(argv)
    return {"build": build, "smoke": smoke, "parity": parity}[args.part]()


if __name__ == "__main__":
    sys.exit(main())
