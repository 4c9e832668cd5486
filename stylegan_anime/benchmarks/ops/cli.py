"""The command line of `tools/bench_ops.py`: flags, the run that prints the tables (and writes --json), main."""
from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from .common import (DEFAULT_SIZES, DTYPES, IMPLS, QUICK_BATCH, QUICK_OVERRIDES, SIZES, UsageError, one_line,
                     resolve_device)
from .report import op_table, step_table, target_summary
from .shapes import OpSig, record_signatures, stylegan2_config
from .step import probe_compile_double_backward, time_training_step
from .timing import OpTiming, cuda_unavailable_reason, time_op

EPILOG = """\
examples:
  python tools/bench_ops.py                         # GPU: auto preset at 64 and 128 px, batch 32, all impls
  python tools/bench_ops.py --quick                 # tiny widths/shapes, few repeats: a smoke test on a CPU
  python tools/bench_ops.py --sizes 64 --batch 4    # a CPU-sized run of the full preset
  python tools/bench_ops.py --sizes 128 --no-step --dtype float16 --channels-last
  python tools/bench_ops.py --no-ops --step-mode cycle --json steps.json
  python tools/bench_ops.py --impls ref,compiled --compile-backend aot_eager

Per-op times are ms per forward+backward call (median of --repeats); "n" = occurrences per G+D forward;
cuda/ref etc. are speedups. Step times are ms per training iteration averaged over the lazy-regularisation
cycle (every pl_interval / r1_interval iterations); s/kimg = seconds per thousand images.
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit code 2, no usage dump
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    description = sys.modules[__package__].__doc__.split("\n\n")[0]  # the package docstring's first paragraph
    p = _Parser(prog="tools/bench_ops.py", description=description,
                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)),
                   help="comma-separated resolutions, powers of two from 32 to 1024 [64,128]")
    p.add_argument("--batch", type=int, default=None,
                   help=f"batch per forward pass [the preset's: 32; --quick: {QUICK_BATCH}]")
    p.add_argument("--dtype", default="net", help="net (each op in the dtype the network runs it: the preset's "
                   "reduced-precision layers; float16 falls back to float32 on a CPU), float32 (no reduced "
                   "precision: num_fp16_res=0), float16 or bfloat16 (every op cast to it; the step's reduced-"
                   "precision layers use it) [net]")
    p.add_argument("--channels-last", action="store_true", help="time the 4-D ops in channels_last memory format "
                   "(per-op only: the recipe has no channels_last option)")
    p.add_argument("--impls", default=",".join(IMPLS), help=f"comma-separated subset of {','.join(IMPLS)}")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:N [auto]")
    p.add_argument("--no-ops", action="store_true", help="skip the per-op timing")
    p.add_argument("--no-step", action="store_true", help="skip the training-step timing")
    p.add_argument("--warmup", type=int, default=None, help="warm-up calls per op [GPU 3, CPU 2, --quick 1]")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed repeats per op (median) [GPU 7, CPU 5, --quick 3]")
    p.add_argument("--min-time", type=float, default=None,
                   help="seconds each timed repeat of an op lasts at least [GPU 0.02, CPU 0.01, --quick 0.001]")
    p.add_argument("--step-mode", choices=("weighted", "cycle"), default="weighted",
                   help="weighted: each due-phase set timed on its own, weighted by its share of the cycle; "
                   "cycle: consecutive whole regularisation cycles [weighted]")
    p.add_argument("--step-warmup", type=int, default=None, help="warm-up steps per due set (cycles in cycle mode) "
                   "[GPU 2, CPU and --quick 1]")
    p.add_argument("--step-repeats", type=int, default=None,
                   help="timed steps per due set (median; cycles in cycle mode) [GPU 3, CPU and --quick 1]")
    p.add_argument("--compile-backend", default=None,
                   help="torch.compile backend [inductor; --quick: aot_eager, which traces like inductor (dynamo + "
                   "aot_autograd, so the same double-backward limits) but generates no code]")
    p.add_argument("--compile-dynamic", action="store_true",
                   help="compile the training step's reference ops with automatic dynamic shapes (dynamic=None) "
                   "instead of one static graph per shape; on torch 2.13 + inductor (CPU) that trips an "
                   "assert_size_stride error in _upfirdn2d_ref (then reported as n/a)")
    p.add_argument("--channel-base", type=int, default=None, help="override the preset's channel_base")
    p.add_argument("--channel-max", type=int, default=None, help="override the preset's channel_max")
    p.add_argument("--real-forward", action="store_true",
                   help="record the shapes with a real forward pass instead of fake tensors")
    tiny = ", ".join(f"{k}={v}" for k, v in QUICK_OVERRIDES.items())
    p.add_argument("--quick", action="store_true", help=f"tiny widths ({tiny}), batch {QUICK_BATCH}, few repeats")
    p.add_argument("--json", metavar="PATH", default=None, help="also write every row (and the environment) as JSON")
    return p


@dataclass
class Options:
    sizes: list[int]
    batch: int | None
    dtype: str
    channels_last: bool
    impls: list[str]
    device: torch.device
    overrides: dict
    warmup: int
    repeats: int
    min_time: float
    step_mode: str
    step_warmup: int
    step_repeats: int
    backend: str
    compile_dynamic: bool
    run_ops: bool
    run_step: bool
    fake: bool
    json_path: str | None


def parse_options(argv: Sequence[str] | None) -> Options:
    a = build_parser().parse_args(argv)
    sizes = []
    for s in a.sizes.split(","):
        s = s.strip()
        if not s:
            continue
        try:
            v = int(s)
        except ValueError:
            raise UsageError(f"--sizes: {s!r} is not a number; choose from {', '.join(map(str, SIZES))}") from None
        if v not in SIZES:
            raise UsageError(f"--sizes: unknown size {v}; choose from {', '.join(map(str, SIZES))}")
        if v not in sizes:
            sizes.append(v)
    if not sizes:
        raise UsageError("--sizes: give at least one size")
    if a.dtype not in ("net", *DTYPES):
        raise UsageError(f"--dtype: unknown dtype {a.dtype!r}; choose from net, {', '.join(DTYPES)}")
    impls = [i.strip() for i in a.impls.split(",") if i.strip()]
    bad = [i for i in impls if i not in IMPLS]
    if bad or not impls:
        raise UsageError(f"--impls: unknown {', '.join(bad) or '(none)'}; choose from {', '.join(IMPLS)}")
    if a.batch is not None and a.batch < 1:
        raise UsageError(f"--batch must be positive, got {a.batch}")
    for name in ("warmup", "step_warmup"):
        if getattr(a, name) is not None and getattr(a, name) < 0:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(a, name)}")
    for name in ("repeats", "step_repeats", "channel_base", "channel_max"):
        if getattr(a, name) is not None and getattr(a, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be positive, got {getattr(a, name)}")
    if a.min_time is not None and a.min_time < 0:
        raise UsageError(f"--min-time must be >= 0, got {a.min_time}")
    if a.no_ops and a.no_step:
        raise UsageError("--no-ops and --no-step leave nothing to do")
    overrides = dict(QUICK_OVERRIDES) if a.quick else {}
    if a.channel_base is not None:
        overrides["channel_base"] = a.channel_base
    if a.channel_max is not None:
        overrides["channel_max"] = a.channel_max
    q = a.quick
    device = resolve_device(a.device)
    cpu = device.type == "cpu"  # a CPU run is a try-out: fewer repeats (the compiles dominate anyway)
    return Options(
        sizes=sizes, batch=a.batch if a.batch is not None else (QUICK_BATCH if q else None), dtype=a.dtype,
        channels_last=a.channels_last, impls=[i for i in IMPLS if i in impls], device=device,
        overrides=overrides, warmup=a.warmup if a.warmup is not None else (1 if q else 2 if cpu else 3),
        repeats=a.repeats or (3 if q else 5 if cpu else 7),
        min_time=a.min_time if a.min_time is not None else (0.001 if q else 0.01 if cpu else 0.02),
        step_mode=a.step_mode, step_warmup=a.step_warmup if a.step_warmup is not None else (1 if q or cpu else 2),
        step_repeats=a.step_repeats or (1 if q or cpu else 3),
        backend=a.compile_backend or ("aot_eager" if q else "inductor"), compile_dynamic=a.compile_dynamic,
        run_ops=not a.no_ops,
        run_step=not a.no_step, fake=not a.real_forward, json_path=a.json)


def environment(device: torch.device) -> dict:
    env = {"torch": torch.__version__, "python": platform.python_version(), "device": str(device),
           "cuda": torch.version.cuda, "command": "python tools/bench_ops.py"}
    if device.type == "cuda":
        idx = device.index if device.index is not None else torch.cuda.current_device()
        major, minor = torch.cuda.get_device_capability(idx)
        env["gpu"] = f"{torch.cuda.get_device_name(idx)} (sm_{major}{minor})"
    else:
        env["cpu"] = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    return env


def run(opts: Options, out=None, argv: Sequence[str] | None = None) -> dict:
    """Run the benchmark, print the tables to `out` (default: sys.stdout), return everything as a JSON-able dict."""
    def say(text: str = "") -> None:
        print(text, file=out or sys.stdout, flush=True)

    env = environment(opts.device)
    if argv is not None:
        env["command"] = "python tools/bench_ops.py" + ("".join(" " + shlex.quote(a) for a in argv))
    result: dict[str, Any] = {"environment": env, "ops": [], "op_totals": [], "steps": [], "signature_info": [],
                              "notes": []}
    say(f"# {env['command']}")
    say(f"# torch {env['torch']}, python {env['python']}, device {env.get('gpu') or env.get('cpu')}")
    if "compiled" in opts.impls:
        env["compiled"] = (f"torch.compile(backend={opts.backend!r}) of the reference; per op: fullgraph, static "
                           f"shapes; step: {'automatic dynamic' if opts.compile_dynamic else 'static'} shapes")
        say(f"# compiled = {env['compiled']}")
    if "cuda" in opts.impls and opts.device.type == "cuda":
        say("# building / loading the CUDA ops (the first build takes a minute or two) ...")
    cuda_reason = cuda_unavailable_reason(opts.device) if "cuda" in opts.impls else None
    if "cuda" in opts.impls and opts.device.type == "cuda":
        say(f"# cuda ops: {'n/a: ' + cuda_reason if cuda_reason else 'loaded'}")

    compile_notes: set[str] = set()
    timed: dict[OpSig, OpTiming] = {}  # a signature shared by two sizes is timed once
    for size in opts.sizes:
        if not opts.run_ops:
            break
        records, info = record_signatures(size, opts.batch, opts.overrides, opts.dtype, opts.device, fake=opts.fake)
        result["signature_info"].append(info)
        n_ba = sum(r.count for r in records if r.sig.op == "bias_act")
        n_ud = sum(r.count for r in records if r.sig.op == "upfirdn2d")
        say()
        say(f"## ops at {size} px: batch {info['batch']}, channel_base {info['channel_base']}, channel_max "
            f"{info['channel_max']}, num_fp16_res {info['num_fp16_res']} ({info['fp16_dtype']}); one G+D forward = "
            f"{n_ba} bias_act + {n_ud} upfirdn2d calls, {len(records)} distinct (recorded with {info['mode']})")
        say("   ms per forward+backward call; n = occurrences per G+D forward"
            + ("; a signature met at an earlier size shows that timing" if size != opts.sizes[0] else ""))
        size_rows = []
        for rec in records:
            sig = rec.sig.with_layout(DTYPES.get(opts.dtype), True if opts.channels_last else None)
            if sig not in timed:
                timed[sig] = time_op(sig, opts.impls, opts.device, warmup=opts.warmup, repeats=opts.repeats,
                                     min_time=opts.min_time, backend=opts.backend, notes=compile_notes,
                                     cuda_reason=cuda_reason)
            t = timed[sig]
            size_rows.append(dict(size=size, op=sig.op, shape=sig.shape_str(), params=sig.params_str(),
                                  count=rec.count, where=rec.where_str(), ms=t.ms, reasons=t.reasons,
                                  signature={k: v for k, v in dataclasses.asdict(sig).items() if k != "f_taps"}))
        table, notes, totals = op_table(size_rows)
        say(table)
        for line in notes:
            say(line)
        if any(v is None for v in totals.values()):
            say("  (weighted total n/a: a signature is n/a in that column)")
        result["ops"].extend({k: v for k, v in r.items()} for r in size_rows)
        result["op_totals"].append(dict(size=size, batch=info["batch"], ms=totals))
    if compile_notes:
        say()
        for n in sorted(compile_notes):
            say(f"note: {n}")
        result["notes"].extend(sorted(compile_notes))

    if opts.run_step:
        say()
        steps_impls = list(opts.impls)
        rows = []
        for size in opts.sizes:
            cfg = stylegan2_config(size, opts.batch, opts.overrides, opts.dtype)
            for impl in steps_impls:
                for st in time_training_step(size, impl, opts.device, batch=opts.batch, overrides=opts.overrides,
                                             dtype=opts.dtype, mode=opts.step_mode, warmup=opts.step_warmup,
                                             repeats=opts.step_repeats, backend=opts.backend, cuda_reason=cuda_reason,
                                             compile_dynamic=None if opts.compile_dynamic else False):
                    rows.append(dict(size=size, batch=cfg.batch, impl=st.impl, ms=st.ms, reason=st.reason,
                                     note=st.note, warmup_s=st.warmup_s, per_due=st.per_due))
        cfg = stylegan2_config(opts.sizes[0], opts.batch, opts.overrides, opts.dtype)
        say(f"## training step (StyleGAN2 {cfg.preset}: G, Greg every {cfg.pl_interval}, D, Dreg every "
            f"{cfg.r1_interval}; num_fp16_res {cfg.num_fp16_res} ({cfg.fp16_dtype}); "
            f"{'averaged over the regularisation cycle' if opts.step_mode == 'weighted' else 'whole cycles timed'})")
        table, notes = step_table(rows)
        say(table)
        for line in notes:
            say(line)
        result["steps"] = rows
        if "compiled" in opts.impls:
            probe = probe_compile_double_backward(opts.backend, opts.device)
            msg = ("torch.compile'd reference survives double backward" if probe is None
                   else f"torch.compile'd reference and double backward (R1, path length): {probe}")
            say(f"note: {msg}")
            result["notes"].append(msg)
    summary = target_summary(result["ops"], result["steps"])
    if summary:
        say()
        say("## issue #4 targets (meant for an H100)")
        for line in summary:
            say(f"  {line}")
        result["targets"] = summary
    if opts.json_path:
        Path(opts.json_path).write_text(json.dumps(result, indent=2, default=str) + "\n")
        say(f"\nwrote {opts.json_path}")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        opts = parse_options(argv)
    except UsageError as e:
        print(f"error: {one_line(str(e), 300)}", file=sys.stderr)
        return 2
    except SystemExit as e:  # --help
        return int(e.code or 0)
    try:
        run(opts, argv=argv)
    except KeyboardInterrupt:
        print("aborted", file=sys.stderr)
        return 130
    except (UsageError, ValueError, OSError) as e:
        print(f"error: {one_line(e, 300)}", file=sys.stderr)
        return 2
    return 0
