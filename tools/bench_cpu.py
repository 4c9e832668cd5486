"""How close StyleGAN2 training runs to this CPU's limit, and what each speed lever pays (issue #22).

    OMP_NUM_THREADS=1 python tools/bench_cpu.py limit            # item 1: FLOPs, img/s, GFLOP/s vs peak, op table
    OMP_NUM_THREADS=1 python tools/bench_cpu.py levers           # item 2: A/B of each lever, interleaved per step

`limit`, for the `cpu` preset at 64 and 128 px and the `auto` preset at 64 px with batch 8 (`--configs`):
each phase (G, D, and the lazy Greg/Dreg) is run through Trainer.run_phase on synthetic data, and amortised over
the lazy-regularisation cycle (a phase every `interval` iterations weighs 1/interval):

    FLOPs per image     matmul + convolution FLOPs (forward, backward and R1's double backward) counted per aten
                        op (cpu_speed.FlopCounter), a multiply-add = 2 FLOPs; element-wise ops are not counted
    img/s, CPU s/img    timed without the profiler: wall and this process's CPU seconds (a shared machine
                        inflates wall time much more than CPU time)
    GFLOP/s per core    FLOPs / CPU seconds, beside the core's peak (cpu_speed.cpu_peak)
    op table            torch.profiler self CPU time, grouped by what each op belongs to (convolution, resampling,
                        bias/activation, modulation/demodulation, fully connected, the optimiser; the R1 phase
                        as a whole, its double backward included), backward ops charged to their forward op

`levers`: the `cpu` preset at 64 px, one Trainer per variant, all built from the same seed, warmed up, then
stepped in turn (variant A step, variant B step, ...) for whole lazy cycles, so that every variant sees the same
machine load; whole iterations (every phase, EMA, sampling) are timed. The torch.compile variant's compile time
is reported on its own.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from stylegan_anime.benchmarks.training import _bench_trainer  # noqa: E402
from stylegan_anime.training import cpu_speed  # noqa: E402

CONFIGS = {"cpu64": ("cpu", 64, None), "cpu128": ("cpu", 128, None), "auto64b8": ("auto", 64, 8)}


def clocks():
    return time.perf_counter(), time.process_time()


def children_cpu() -> float:
    """CPU seconds of finished child processes (inductor's compiler runs: g++ and compile workers)."""
    import resource
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def build(preset: str, size: int, batch: int | None, amp: str = "off", **over):
    torch.manual_seed(0)
    return _bench_trainer("stylegan2", size, device="cpu", batch=batch, batch_gpu=None, amp=amp,
                          overrides=dict(preset=preset, **over), workdir=tempfile.mkdtemp(prefix="bench-cpu-"))


def _reals(t):
    x, c = t.sampler.sample(t.cfg.batch)
    return list(x.split(t.batch_gpu)), None if c is None else list(c.split(t.batch_gpu))


def run_phase(t, phase):
    reals, labels = _reals(t) if phase.needs_reals else (None, None)
    t.run_phase(phase, reals, labels)


# ---------------------------------------------------------------------------------------------------------
# Op table: each op's self CPU time charged to the innermost labelled function it ran in (backward ops: the
# function their forward op ran in), the R1 phase as a whole, the optimiser.
LABELS = []  # (module, attribute, label), patched only while profiling


def _label_targets():
    from stylegan_anime.cuda_ops import bias_act, upfirdn2d
    from stylegan_anime.stylegan2 import discriminator, generator, layers
    return [(upfirdn2d, "upfirdn2d", "resampling (upfirdn2d)"), (bias_act, "bias_act", "bias + activation"),
            (layers, "_conv", "convolution"), (generator, "modulated_conv2d", "modulation/demodulation"),
            (layers.FullyConnectedLayer, "forward", "fully connected (mapping, affine)"),
            (discriminator, "MinibatchStdLayer", None)]


@contextlib.contextmanager
def labelled():
    saved = []
    for obj, attr, label in _label_targets():
        if label is None or not hasattr(obj, attr):
            continue
        fn = getattr(obj, attr)

        def wrap(fn=fn, label=label):
            @functools.wraps(fn)
            def run(*a, **k):
                with torch.profiler.record_function(f"cat:{label}"):
                    return fn(*a, **k)
            return run
        saved.append((obj, attr, fn))
        setattr(obj, attr, wrap())
    try:
        yield
    finally:
        for obj, attr, fn in saved:
            setattr(obj, attr, fn)


def categorise(events) -> dict[str, float]:
    """Self CPU microseconds per category."""
    by_seq = {}
    for e in events:
        if e.sequence_nr is not None and e.sequence_nr >= 0 and not e.name.startswith("autograd::"):
            by_seq.setdefault((e.thread, e.sequence_nr), e)

    @functools.lru_cache(maxsize=None)
    def category(eid):
        e = events_by_id[eid]
        chain = []
        node = e
        while node is not None:
            chain.append(node)
            node = node.cpu_parent
        names = [n.name for n in chain]
        if "phase:Dreg" in names:
            return "R1 phase (Dreg: forward + double backward)"
        if "phase:Greg" in names:
            return "path-length phase (Greg)"
        if any(n.startswith("Optimizer") for n in names):
            return "optimiser (Adam)"
        for node in chain:
            if node.name.startswith("cat:"):
                return node.name[4:]
            if node.name.startswith("autograd::engine::evaluate_function") and node.sequence_nr is not None:
                fwd = by_seq.get((node.fwd_thread, node.sequence_nr)) or by_seq.get((node.thread, node.sequence_nr))
                if fwd is not None and fwd is not node:
                    return category(fwd.id)
        return "other (losses, copies, mapping glue)"

    events_by_id = {e.id: e for e in events}
    out = defaultdict(float)
    for e in events:
        if e.name.startswith(("cat:", "phase:", "Optimizer")) or e.self_cpu_time_total <= 0:
            continue
        if e.cpu_children and e.name.startswith("autograd::"):
            continue
        out[category(e.id)] += e.self_cpu_time_total
    return dict(out)


# ---------------------------------------------------------------------------------------------------------
def limit(args) -> None:
    peak = cpu_speed.cpu_peak()
    threads = torch.get_num_threads()
    print(f"# torch {torch.__version__}, {threads} thread(s), OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    print(f"# core: {peak.model}; peak per core {peak.fp32_gflops:.0f} GFLOP/s fp32, {peak.bf16_gflops:.0f} bf16 "
          f"(AVX-512), {peak.amx_gflops:.0f} bf16 (AMX) — {peak.how}")
    from stylegan_anime.cuda_ops import get_default_impl
    v = VARIANTS[args.variant]
    _use_variant(v, get_default_impl(), threads)
    print(f"# variant {args.variant}: {v}")
    for key in args.configs.split(","):
        preset, size, batch = CONFIGS[key]
        t = build(preset, size, batch, amp=v.get("amp", "off"), **v.get("over", {}))
        phases = t.recipe.phases
        for p in phases:  # warm-up: first-call allocations
            run_phase(t, p)
        flops = {}
        for p in phases:
            with cpu_speed.FlopCounter() as fc:
                run_phase(t, p)
            flops[p.name] = fc.total
        times = {}
        for p in phases:
            reps = args.reps if p.interval == 1 else max(1, args.reps // 2)
            w0, c0 = clocks()
            for _ in range(reps):
                run_phase(t, p)
            w1, c1 = clocks()
            times[p.name] = ((w1 - w0) / reps, (c1 - c0) / reps)
        # The rest of an iteration: sampling the reals and the EMA update.
        w0, c0 = clocks()
        for _ in range(args.reps):
            _reals(t)
            t._update_ema(t.cfg.batch)
        w1, c1 = clocks()
        rest = ((w1 - w0) / args.reps, (c1 - c0) / args.reps)
        B = t.cfg.batch
        per_iter_flops = sum(flops[p.name] / p.interval for p in phases)
        wall = sum(times[p.name][0] / p.interval for p in phases) + rest[0]
        cpu = sum(times[p.name][1] / p.interval for p in phases) + rest[1]
        gflops_core = per_iter_flops / cpu / 1e9  # CPU seconds are core-seconds
        print(f"\n## {preset} preset, {size} px, batch {B} ({t.cfg.model_cfg.get('preset')}); phases "
              + ", ".join(f"{p.name}/{p.interval}" for p in phases))
        print(f"FLOPs per image (lazy cycle averaged): {per_iter_flops / B / 1e9:.3f} GFLOP  ("
              + ", ".join(f"{p.name} {flops[p.name] / B / 1e9:.3f}" for p in phases) + " GFLOP/img per run)")
        print(f"per iteration: wall {wall:.3f} s, CPU {cpu:.3f} s  ->  {B / wall:.1f} img/s wall, "
              f"{cpu / B * 1000:.1f} CPU ms/img, {B / cpu:.1f} img per CPU-second")
        print(f"achieved {gflops_core:.1f} GFLOP/s per core = {100 * gflops_core / peak.fp32_gflops:.1f}% of fp32 "
              f"peak ({peak.fp32_gflops:.0f}), {100 * gflops_core / peak.bf16_gflops:.1f}% of AVX-512 bf16 peak")
        print("phase times (wall s, CPU s per run): " + ", ".join(
            f"{p.name} {times[p.name][0]:.3f}/{times[p.name][1]:.3f}" for p in phases)
            + f", sampling+EMA {rest[0]:.3f}/{rest[1]:.3f}")
        if args.no_profile:
            continue
        from torch.profiler import ProfilerActivity, profile
        cats = defaultdict(float)
        prof_wall = prof_cpu = 0.0
        for p in phases:
            with labelled():
                w0, c0 = clocks()
                with profile(activities=[ProfilerActivity.CPU]) as prof:
                    run_phase(t, p)
                w1, c1 = clocks()
            prof_wall += (w1 - w0) / p.interval
            prof_cpu += (c1 - c0) / p.interval
            for k, v in categorise(prof.events()).items():
                cats[k] += v / p.interval / 1e6
        # The profiler times ops by the wall clock: shares are of the profiled wall time, then scaled to the
        # unprofiled CPU seconds of the phases.
        total = cpu - rest[1]
        print(f"op table (share of profiled time, and as CPU s per iteration amortised; profiled {prof_wall:.3f} s "
              f"wall / {prof_cpu:.3f} s CPU, unprofiled {total:.3f} s CPU):")
        for k, v in sorted(cats.items(), key=lambda kv: -kv[1]):
            print(f"  {k:<45} {100 * v / prof_wall:5.1f}%  {total * v / prof_wall:8.4f} s")
        host = max(prof_wall - sum(cats.values()), 0.0)
        print(f"  {'host/Python (outside every op)':<45} {100 * host / prof_wall:5.1f}%  {total * host / prof_wall:8.4f} s")

# ---------------------------------------------------------------------------------------------------------
# Each variant: ops (the op implementation), amp, over (recipe fields), regrouped (layers.MODCONV_REGROUPED),
# fused / compile (cpu_speed levers), threads. "main" is the code before issue #22's defaults (4b2267c): the
# reference ops, float32 blocks (float16 falls back to float32 on a CPU), NCHW, the per-sample demodulation sum.
# "default" is what `train --preset cpu` runs now on a CPU (--ops auto -> the fused CPU kernels).
MAIN = dict(ops="ref", over=dict(fp16_dtype="float16", channels_last=False), regrouped=False)
DEFAULT = dict(ops="cpu", over=dict(), regrouped=True)


def _plus(base, **kw):
    """Variant `base` with the given keys replaced and `over` merged into its recipe overrides."""
    return {**base, **{k: v for k, v in kw.items() if k != "over"}, "over": {**base["over"], **kw.get("over", {})}}


def _main_plus(**kw):
    return _plus(MAIN, **kw)


def _default_plus(**kw):
    return _plus(DEFAULT, **kw)


VARIANTS = {
    "main": MAIN,
    "base": MAIN,  # the name the earlier tables use
    "amp-bf16": _main_plus(amp="bf16"),
    "channels_last": _main_plus(over=dict(channels_last=True)),
    "amp-bf16+cl": _main_plus(amp="bf16", over=dict(channels_last=True)),
    "bf16-blocks+cl": _main_plus(over=dict(fp16_dtype="bfloat16", channels_last=True)),
    "fused-modconv": _main_plus(fused=True),
    "amp-bf16+cl+fused": _main_plus(amp="bf16", over=dict(channels_last=True), fused=True),
    "ops-cpu": _main_plus(ops="cpu"),
    "ops-cpu+bf16-blocks+cl": _main_plus(ops="cpu", over=dict(fp16_dtype="bfloat16", channels_last=True)),
    "ops-cpu+amp-bf16+cl": _main_plus(ops="cpu", amp="bf16", over=dict(channels_last=True)),
    "regrouped": _main_plus(regrouped=True),
    "base-1thread": _main_plus(threads=1),
    "base-2threads": _main_plus(threads=2),
    "compile": _main_plus(compile=True),
    "amp-bf16+cl+compile": _main_plus(amp="bf16", over=dict(channels_last=True), compile=True),
    # today's default, and it with one lever taken off (what each lever is worth on top of the others)
    "default": DEFAULT,
    "default-no-cpu-ops": _default_plus(ops="ref"),
    "default-fp32": _default_plus(over=dict(fp16_dtype="float16")),
    "default-nchw": _default_plus(over=dict(channels_last=False)),
    "default-old-modconv": _default_plus(regrouped=False),
    "default+compile": _default_plus(compile=True),
    "default-1thread": _default_plus(threads=1),
}


def _use_variant(v, default_impl, threads):
    """The process-wide switches of variant v, set before each of its steps (the trainers share a process)."""
    from stylegan_anime.cuda_ops import set_default_impl
    from stylegan_anime.stylegan2 import layers
    torch.set_num_threads(v.get("threads", threads))
    set_default_impl(v.get("ops", default_impl))
    layers.MODCONV_REGROUPED = v.get("regrouped", True)


def levers(args) -> None:
    names = args.variants.split(",")
    threads = torch.get_num_threads()
    print(f"# torch {torch.__version__}, {threads} thread(s), OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}; "
          f"cpu preset 64 px batch 16; {args.cycles} lazy cycle(s) of 16 iterations per variant, interleaved per step")
    from stylegan_anime.cuda_ops import get_default_impl, set_default_impl
    default_impl = get_default_impl()
    trainers, compile_s = {}, {}
    for name in names:
        v = VARIANTS[name]
        _use_variant(v, default_impl, threads)
        t = build("cpu", 64, None, amp=v.get("amp", "off"), **v.get("over", {}))
        if v.get("fused"):
            cpu_speed.use_fused_modconv(t)
        w0, c0 = clocks()
        k0 = children_cpu()
        if v.get("compile"):
            cpu_speed.compile_forward(t)
        t.step()  # iteration 0: every phase (compiles the G and D phases)
        w1, c1 = clocks()
        compile_s[name] = (w1 - w0, c1 - c0 + children_cpu() - k0)
        for _ in range(args.warmup):
            t.step()
        trainers[name] = t
        print(f"{name}: built; first step (incl. compile) {compile_s[name][0]:.1f} s wall, "
              f"{compile_s[name][1]:.1f} s CPU (this process + compiler processes)", flush=True)
    # Align every trainer on the same point of the lazy cycle.
    for t in trainers.values():
        t.iteration = 16
    acc = {n: [0.0, 0.0, 0] for n in names}
    for _ in range(args.cycles * 16):
        for n in names:
            t = trainers[n]
            _use_variant(VARIANTS[n], default_impl, threads)
            w0, c0 = clocks()
            t.step()
            w1, c1 = clocks()
            a = acc[n]
            a[0] += w1 - w0
            a[1] += c1 - c0
            a[2] += t.cfg.batch
    peak = cpu_speed.cpu_peak()
    flops_img = None
    with contextlib.suppress(Exception):
        t = trainers[names[0]]
        _use_variant(VARIANTS[names[0]], default_impl, threads)
        per_iter = 0.0
        for p in t.recipe.phases:
            with cpu_speed.FlopCounter() as fc:
                run_phase(t, p)
            per_iter += fc.total / p.interval
        flops_img = per_iter / t.cfg.batch
    base = acc[names[0]]
    print(f"\n{'variant':<22} {'img/s wall':>10} {'img/CPU-s':>10} {'x wall':>7} {'x CPU':>7} {'GFLOP/s/core':>12} "
          f"{'%fp32 pk':>8} {'1st step s':>10}")
    for n in names:
        w, c, imgs = acc[n]
        gf = flops_img * imgs / c / 1e9 if flops_img else float("nan")
        print(f"{n:<22} {imgs / w:>10.1f} {imgs / c:>10.1f} {base[0] / w:>7.2f} {base[1] / c:>7.2f} {gf:>12.1f} "
              f"{100 * gf / peak.fp32_gflops:>8.1f} {compile_s[n][0]:>10.1f}")
    if flops_img:
        print(f"(FLOPs per image {flops_img / 1e9:.3f} GFLOP, counted on '{names[0]}'; img/CPU-s is images per "
              f"CPU-second of this process: the per-core rate)")


def modconv(args) -> None:
    """The three formulations of the modulated 3x3 convolution at the `cpu` preset's 64 px shapes (batch 16),
    forward + backward to x, weight and styles, interleaved, CPU seconds per call."""
    import torch.nn.functional as F

    from stylegan_anime.stylegan2.layers import modulated_conv2d

    def per_sample_bmm(x, weight, styles):
        N, I, H, W = x.shape
        O, _, kh, kw = weight.shape
        w = weight.unsqueeze(0) * styles.reshape(N, 1, I, 1, 1)
        w = w * (w.square().sum(dim=[2, 3, 4], keepdim=True) + 1e-8).rsqrt()
        cols = F.unfold(x, (kh, kw), padding=kh // 2)  # [N, I*kh*kw, H*W]
        return torch.bmm(w.reshape(N, O, I * kh * kw), cols).reshape(N, O, H, W)

    forms = {"scale activations (training's)": lambda x, w, s: modulated_conv2d(x, w, s, padding=1,
                                                                                fused_modconv=False),
             "grouped conv (per-sample weights)": lambda x, w, s: modulated_conv2d(x, w, s, padding=1,
                                                                                   fused_modconv=True),
             "batched matmul (unfold + bmm)": per_sample_bmm}
    shapes = [(64, 64, 8), (64, 64, 16), (64, 32, 32), (32, 16, 64), (16, 16, 64)]
    print(f"# {torch.get_num_threads()} thread(s); batch {args.batch}; CPU ms per forward+backward (wall ms)")
    print(f"{'I->O @ res':<14}" + "".join(f"{k:>36}" for k in forms))
    for I, O, res in shapes:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(args.batch, I, res, res, generator=g, requires_grad=True)
        w = torch.randn(O, I, 3, 3, generator=g, requires_grad=True)
        s = torch.randn(args.batch, I, generator=g, requires_grad=True)
        acc = {k: [0.0, 0.0] for k in forms}
        for k, f in forms.items():  # warm-up
            f(x, w, s).square().sum().backward()
        for _ in range(args.reps):
            for k, f in forms.items():
                w0, c0 = clocks()
                f(x, w, s).square().sum().backward()
                w1, c1 = clocks()
                acc[k][0] += w1 - w0
                acc[k][1] += c1 - c0
        print(f"{f'{I}->{O} @ {res}':<14}" + "".join(
            f"{1000 * c / args.reps:>27.2f} ({1000 * wl / args.reps:6.2f})" for wl, c in acc.values()), flush=True)


def phase_ab(args) -> None:
    """A/B of levers on the every-iteration phases (G, D) only, interleaved per phase run: for presets whose
    whole lazy cycle takes too long to time per variant (auto at 64 px: ~20 CPU s per iteration)."""
    preset, size, batch = CONFIGS[args.config]
    names = args.variants.split(",")
    print(f"# {torch.get_num_threads()} thread(s); {preset} preset {size} px batch {batch}; G and D phases, "
          f"{args.reps} run(s) each per variant, interleaved")
    trainers = {}
    from stylegan_anime.cuda_ops import get_default_impl
    default_impl, threads = get_default_impl(), torch.get_num_threads()
    for n in names:
        v = VARIANTS[n]
        _use_variant(v, default_impl, threads)
        t = build(preset, size, batch, amp=v.get("amp", "off"), **v.get("over", {}))
        for p in t.recipe.phases:
            if p.interval == 1:
                run_phase(t, p)  # warm-up
        trainers[n] = t
    acc = {n: [0.0, 0.0] for n in names}
    for _ in range(args.reps):
        for n in names:
            t = trainers[n]
            _use_variant(VARIANTS[n], default_impl, threads)
            for p in t.recipe.phases:
                if p.interval == 1:
                    w0, c0 = clocks()
                    run_phase(t, p)
                    w1, c1 = clocks()
                    acc[n][0] += w1 - w0
                    acc[n][1] += c1 - c0
    B = trainers[names[0]].cfg.batch
    base = acc[names[0]]
    print(f"{'variant':<22} {'img/s wall':>10} {'img/CPU-s':>10} {'x wall':>7} {'x CPU':>7}  (G + D phases only)")
    for n in names:
        w, c = acc[n]
        print(f"{n:<22} {B * args.reps / w:>10.2f} {B * args.reps / c:>10.2f} {base[0] / w:>7.2f} {base[1] / c:>7.2f}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("limit")
    a.add_argument("--configs", default="cpu64,cpu128,auto64b8")
    a.add_argument("--reps", type=int, default=4, help="timed runs of each every-iteration phase (lazy: half)")
    a.add_argument("--no-profile", action="store_true")
    a.add_argument("--variant", default="main", help="the configuration measured (see VARIANTS): main or default")
    b = sub.add_parser("levers")
    b.add_argument("--variants", default="main,default")
    b.add_argument("--cycles", type=int, default=1)
    b.add_argument("--warmup", type=int, default=2)
    c = sub.add_parser("phases")
    c.add_argument("--config", default="auto64b8", choices=list(CONFIGS))
    c.add_argument("--variants", default="base,amp-bf16,amp-bf16+cl")
    c.add_argument("--reps", type=int, default=2)
    m = sub.add_parser("modconv")
    m.add_argument("--batch", type=int, default=16)
    m.add_argument("--reps", type=int, default=10)
    args = p.parse_args(argv)
    {"limit": limit, "levers": levers, "phases": phase_ab, "modconv": modconv}[args.cmd](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
