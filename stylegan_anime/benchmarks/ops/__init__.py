"""Per-op benchmark of the custom ops (issue #4): fused CUDA kernels vs the eager PyTorch reference vs
`torch.compile` of the reference, at the shapes StyleGAN2 really uses, then whole training steps with each.

1. **Shapes** (`shapes.py`). For every size, the StyleGAN2 G and D of the recipe (`auto` preset unless
   overridden) run one forward pass (G(z) then D(img), training mode) with `bias_act.bias_act` and
   `upfirdn2d.upfirdn2d` wrapped where the layers look them up (the `stylegan_anime.cuda_ops` submodules;
   `upsample2d`/`downsample2d` go through the same module global). Each distinct call signature (shape, dtype,
   memory format, act/gain/clamp, up/down/padding/filter) is recorded with how often it occurs per G+D forward
   and which layers call it. The forward runs on fake tensors (no memory, no arithmetic), so the full preset at
   batch 32 is recorded in a second even on a CPU; it falls back to a real forward under no_grad if fake
   tensors fail.
2. **Ops** (`timing.py`). Every signature: forward + backward (random cotangent, gradients w.r.t. x and the
   bias) through the public op with impl='cuda', impl='ref', and impl='ref' with its reference function
   (`_bias_act_ref` / `_upfirdn2d_ref`) replaced by `torch.compile` of it (fullgraph, static shapes; compiled
   afresh per signature). Warm-up, then the median over repeats of the mean over enough calls to fill
   --min-time, synchronising the GPU around every timed stretch. "weighted total" = sum of ms x occurrences per
   G+D forward.
3. **Training step** (`step.py`). The real `Trainer.step()` (all phases, lazy regularisation) with --ops cuda,
   --ops ref and ref with the reference functions patched to compiled ones (restored afterwards). An
   iteration's time is averaged over the regularisation cycle: each distinct set of due phases (G+D;
   G+Greg+D every pl_interval; all four every r1_interval) is timed on its own and weighted by how often it
   occurs in a cycle (--step-mode cycle times consecutive whole cycles instead). The R1 and path-length
   penalties need double backward, which torch.compile (aot_autograd) does not support: a phase that fails
   compiled is rerun with the eager reference, the all-compiled row says n/a with the reason, and a second row
   times compiled-where-it-works. The step compiles with static shapes (one graph per shape): with automatic
   dynamic shapes, inductor's code for `_upfirdn2d_ref` fails an assert_size_stride check on torch 2.13 (CPU)
   once channel counts vary (--compile-dynamic tries it anyway).
4. **Tables** (`report.py`): per op and per step, and issue #4's targets checked against what was measured.
   A cell that cannot be measured says `n/a` with a numbered reason under the table; nothing is made up.

`cli.py` holds the flags and the run that prints it all; `common.py` what the others share. The command is
`python tools/bench_ops.py` (a thin script calling `main`); everything below is importable for tests.
"""
from __future__ import annotations

from .cli import EPILOG, Options, build_parser, environment, main, parse_options, run
from .common import (DEFAULT_SIZES, DTYPE_SHORT, DTYPES, IMPLS, QUICK_BATCH, QUICK_OVERRIDES, SIZES, UsageError,
                     default_impl, one_line, patched, resolve_device, sync)
from .report import (OP_HEAD, STEP_HEAD, TARGET_OP_SPEEDUP, Footnotes, format_columns, op_rows, op_table, step_body,
                     step_table, target_summary, weighted_totals)
from .shapes import OpSig, Recorded, SignatureRecorder, build_networks, record_signatures, stylegan2_config
from .step import (DOUBLE_BACKWARD_MARKERS, StepTiming, make_trainer, phase_schedule, probe_compile_double_backward,
                   time_training_step)
from .timing import (CompiledReference, OpTiming, compiled_reference, cuda_unavailable_reason, fwd_bwd_runner,
                     make_inputs, op_callable, time_callable, time_op)

__all__ = [
    "EPILOG", "Options", "build_parser", "environment", "main", "parse_options", "run",
    "DEFAULT_SIZES", "DTYPE_SHORT", "DTYPES", "IMPLS", "QUICK_BATCH", "QUICK_OVERRIDES", "SIZES", "UsageError",
    "default_impl",
    "one_line", "patched", "resolve_device", "sync",
    "OP_HEAD", "STEP_HEAD", "TARGET_OP_SPEEDUP", "Footnotes", "format_columns", "op_rows", "op_table", "step_body",
    "step_table", "target_summary", "weighted_totals",
    "OpSig", "Recorded", "SignatureRecorder", "build_networks", "record_signatures", "stylegan2_config",
    "DOUBLE_BACKWARD_MARKERS", "StepTiming", "make_trainer", "phase_schedule", "probe_compile_double_backward",
    "time_training_step",
    "CompiledReference", "OpTiming", "compiled_reference", "cuda_unavailable_reason",
    "fwd_bwd_runner", "make_inputs", "op_callable", "time_callable", "time_op",
]
