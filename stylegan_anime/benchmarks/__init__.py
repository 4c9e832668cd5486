"""Benchmarks: how fast training runs and where its time goes.

    training    `stylegan-anime bench`: img/s, s/kimg and peak memory of whole training steps per model and
                size (synthetic data in memory), the profile of a step, stylegan2-ada-pytorch's own loop beside
                ours (`--reference`, with its slow-op fallback detected and labelled)
    ops         `stylegan-anime bench-ops` / tools/bench_ops.py: every upfirdn2d and bias_act call of the
                StyleGAN2 networks recorded with its shapes, timed per implementation (fused CUDA, eager
                reference, torch.compile), and whole steps with each

The scripts in tools/ (bench_sizes.py, bench_cpu.py, bench_ops_cpu.py) measure on top of these.
"""
