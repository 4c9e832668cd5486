"""stylegan_anime.benchmarks.ops (tools/bench_ops.py): recorded op signatures, the op timing runner, compiled reference,
training-step timing, CLI."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch

from stylegan_anime.cuda_ops import bias_act as BA
from stylegan_anime.cuda_ops import get_default_impl
from stylegan_anime.cuda_ops import upfirdn2d as UD

REPO = Path(__file__).resolve().parents[1]
TINY = dict(channel_base=256, channel_max=32, z_dim=32, w_dim=32)  # 64 px: 32, 32, 16, 8, 4 channels
N = 2

# torch.compile's inductor uses torch.jit.script_method internally, which torch 2.13 deprecates: not ours.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")

needs_no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only n/a path")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def bo():
    import stylegan_anime.benchmarks.ops

    return stylegan_anime.benchmarks.ops


@pytest.fixture(scope="module")
def tiny64(bo):
    """(records, info, G, D, cfg): the signatures of a tiny 64 px StyleGAN2 and the same networks, for expectations."""
    records, info = bo.record_signatures(64, N, TINY)
    G, D, cfg = bo.build_networks(64, N, TINY)
    return records, info, G, D, cfg


def _by(records, op):
    return [r for r in records if r.sig.op == op]


# ------------------------------------------------------------------------------------------------ signatures
def test_recorded_bias_act_calls_match_the_network(tiny64):
    records, info, G, D, cfg = tiny64
    from stylegan_anime.stylegan2.layers import Conv2dLayer, FullyConnectedLayer
    from stylegan_anime.stylegan2.generator import SynthesisLayer, ToRGBLayer

    # Every layer with a fused bias + activation runs once per G forward + D forward.
    layer_types = (FullyConnectedLayer, Conv2dLayer, SynthesisLayer, ToRGBLayer)
    n_layers = sum(isinstance(m, layer_types) for net in (G, D) for m in net.modules())
    assert sum(r.count for r in _by(records, "bias_act")) == n_layers

    # The 4-D calls: what each conv layer outputs, derived from the modules and their block resolutions.
    expected = Counter()
    for res in G.synthesis.block_resolutions:
        blk = getattr(G.synthesis, f"b{res}")
        for name in ("conv0", "conv1"):
            if hasattr(blk, name):
                expected["lrelu", (N, getattr(blk, name).out_channels, res, res)] += 1
        expected["linear", (N, G.img_channels, res, res)] += 1  # torgb
    for res in D.block_resolutions:
        blk = getattr(D, f"b{res}")
        if hasattr(blk, "fromrgb"):
            expected["lrelu", (N, blk.fromrgb.out_channels, res, res)] += 1
        expected["lrelu", (N, blk.conv0.out_channels, res, res)] += 1
        expected["lrelu", (N, blk.conv1.out_channels, res // 2, res // 2)] += 1
        expected["linear", (N, blk.skip.out_channels, res // 2, res // 2)] += 1
    expected["lrelu", (N, D.b4.conv.out_channels, 4, 4)] += 1
    got = Counter()
    for r in _by(records, "bias_act"):
        if len(r.sig.shape) == 4:
            got[r.sig.act, r.sig.shape] += r.count
    assert got == expected

    # G's conv layers: lrelu with its default gain and the recipe's conv clamp, a bias, float32 on the CPU.
    b8 = G.synthesis.b8
    (sig,) = [r.sig for r in records if r.sig.op == "bias_act" and r.sig.shape == (N, b8.conv1.out_channels, 8, 8)
              and r.sig.act == "lrelu" and "G.SynthesisLayer" in r.where]
    assert sig.gain == pytest.approx(BA.ACTIVATIONS["lrelu"].def_gain)
    assert sig.clamp == cfg.conv_clamp and sig.has_bias and sig.dtype == "float32" and sig.dim == 1
    # The mapping network's lrelu FC layers: [N, w_dim].
    fc = [r for r in records
          if r.sig.shape == (N, cfg.w_dim) and r.sig.act == "lrelu" and "G.FullyConnectedLayer" in r.where]
    assert fc and fc[0].count >= cfg.map_layers
    assert info["batch"] == N and info["mode"] == "fake tensors"


def test_recorded_upfirdn2d_up_and_down_calls(tiny64):
    records, _, G, D, _ = tiny64
    ups = {r.sig.shape: r for r in _by(records, "upfirdn2d") if r.sig.up == (2, 2)}
    downs = {r.sig.shape: r for r in _by(records, "upfirdn2d") if r.sig.down == (2, 2)}

    # G ('skip'): every block above 4x4 upsamples the image by 2 (upsample2d with its 4x4 filter).
    for res in G.synthesis.block_resolutions[1:]:
        blk = getattr(G.synthesis, f"b{res}")
        f = blk.resample_filter
        fw = f.shape[-1]
        r = ups[(N, G.img_channels, res // 2, res // 2)]
        assert r.count == 1 and r.where == {"G.SynthesisBlock"}
        assert r.sig.padding == ((fw + 1) // 2, (fw - 2) // 2, (fw + 1) // 2, (fw - 2) // 2)
        assert r.sig.f_shape == tuple(f.shape)
        assert torch.equal(torch.tensor(r.sig.f_taps), f)
    assert len(ups) == len(G.synthesis.block_resolutions) - 1

    # D ('resnet'): each block's 1x1 skip conv filters and decimates by 2 in one upfirdn2d call.
    for res in D.block_resolutions:
        skip = getattr(D, f"b{res}").skip
        fw = skip.resample_filter.shape[-1]
        r = downs[(N, skip.in_channels, res, res)]
        assert r.count == 1 and r.where == {"D.Conv2dLayer"}
        assert r.sig.padding == ((fw - 1) // 2, (fw - 2) // 2, (fw - 1) // 2, (fw - 2) // 2)
    assert len(downs) == len(D.block_resolutions)

    # Every up/downsampling conv layer makes one upfirdn2d call (3x3: the filter pass after the transposed conv or
    # before the strided one; D's 1x1 skip: the down2 call above); G also upsamples its image.
    n_resampling_convs = sum(1 for net in (G, D) for m in net.modules()
                             if getattr(m, "up", 1) != 1 or getattr(m, "down", 1) != 1)
    assert sum(r.count for r in _by(records, "upfirdn2d")) == len(ups) + n_resampling_convs


def test_fake_and_real_forward_record_the_same_signatures(bo, tiny64):
    records, *_ = tiny64
    real, info = bo.record_signatures(64, N, TINY, fake=False)
    assert info["mode"] == "real forward"
    assert {r.sig: (r.count, r.where) for r in real} == {r.sig: (r.count, r.where) for r in records}
    assert BA.bias_act.__module__ == BA.__name__ and UD.upfirdn2d.__module__ == UD.__name__  # wrappers removed


def test_dtype_and_layout_overrides(bo, tiny64):
    records, *_ = tiny64
    sig = _by(records, "upfirdn2d")[0].sig
    assert sig.with_layout(torch.bfloat16, True).dtype == "bfloat16"
    assert sig.with_layout(None, True).channels_last
    x = bo.make_inputs(sig.with_layout(torch.bfloat16, True), torch.device("cpu"))["x"]
    assert x.dtype == torch.bfloat16 and x.is_contiguous(memory_format=torch.channels_last) and x.requires_grad
    fc = [r.sig for r in records if len(r.sig.shape) == 2][0]
    assert not fc.with_layout(None, True).channels_last  # only 4-D tensors get channels_last
    # --dtype float32 is the network without reduced-precision layers
    assert bo.stylegan2_config(64, N, TINY, "float32").num_fp16_res == 0
    assert bo.stylegan2_config(64, N, TINY, "bfloat16").fp16_dtype == "bfloat16"


# ------------------------------------------------------------------------------------------------ op timing
def _counting(fn, calls):
    def wrapper(*args, **kwargs):
        calls.append(fn)
        return fn(*args, **kwargs)
    return wrapper


def test_time_op_runs_the_reference_it_names(bo, tiny64, monkeypatch):
    records, *_ = tiny64
    ba_sig = [r.sig for r in _by(records, "bias_act") if r.sig.act == "lrelu" and len(r.sig.shape) == 4][-1]
    ud_sig = [r.sig for r in _by(records, "upfirdn2d") if r.sig.up == (2, 2)][-1]
    ba_calls, ud_calls = [], []
    monkeypatch.setattr(BA, "_bias_act_ref", _counting(BA._bias_act_ref, ba_calls))
    monkeypatch.setattr(UD, "_upfirdn2d_ref", _counting(UD._upfirdn2d_ref, ud_calls))
    cpu = torch.device("cpu")
    t = bo.time_op(ba_sig, ["ref"], cpu, warmup=2, repeats=3, min_time=0)
    assert t.ms["ref"] > 0 and not t.reasons
    assert len(ba_calls) >= 2 + 3 and not ud_calls  # warm-up + every timed repeat went through _bias_act_ref
    t = bo.time_op(ud_sig, ["ref"], cpu, warmup=1, repeats=2, min_time=0)
    assert t.ms["ref"] > 0 and len(ud_calls) >= 1 + 2


def test_time_op_compiled_runs_torch_compile_of_the_reference(bo, tiny64, monkeypatch):
    records, *_ = tiny64
    sig = [r.sig for r in _by(records, "bias_act") if r.sig.act == "lrelu" and r.sig.clamp >= 0][-1]
    orig_ba, orig_ud = BA._bias_act_ref, UD._upfirdn2d_ref
    compiled_what, compiled_calls, eager_calls = [], [], []

    def fake_compile(fn, **kwargs):
        compiled_what.append((fn, kwargs))
        return _counting(fn, compiled_calls)

    monkeypatch.setattr(bo.timing, "compile_fn", fake_compile)
    monkeypatch.setattr(BA, "_bias_act_ref", _counting(orig_ba, eager_calls))
    patched_ba = BA._bias_act_ref
    t = bo.time_op(sig, ["compiled"], torch.device("cpu"), warmup=1, repeats=2, min_time=0)
    assert t.ms["compiled"] > 0
    assert [fn for fn, _ in compiled_what] == [patched_ba, orig_ud]  # the reference functions, nothing else
    assert all(kw["fullgraph"] and kw["dynamic"] is False for _, kw in compiled_what)
    assert len(compiled_calls) >= 1 + 2 and all(fn is patched_ba for fn in compiled_calls)
    assert BA._bias_act_ref is patched_ba and UD._upfirdn2d_ref is orig_ud  # restored after timing


def test_time_op_reports_na_instead_of_raising(bo, tiny64, monkeypatch):
    records, *_ = tiny64
    sig = _by(records, "bias_act")[0].sig

    def broken(fn, **kwargs):
        def run(*a):
            raise RuntimeError("backend exploded\nsecond line")
        return run

    monkeypatch.setattr(bo.timing, "compile_fn", broken)
    t = bo.time_op(sig, ["ref", "compiled"], torch.device("cpu"), warmup=0, repeats=1, min_time=0)
    assert t.ms["ref"] > 0
    assert t.ms["compiled"] is None and t.reasons["compiled"] == "backend exploded"


@needs_no_cuda
def test_cuda_column_is_na_with_a_reason_without_cuda(bo, tiny64):
    records, *_ = tiny64
    reason = bo.cuda_unavailable_reason(torch.device("cpu"))
    assert reason and "CUDA" in reason
    t = bo.time_op(records[0].sig, ["cuda"], torch.device("cpu"), warmup=0, repeats=1)
    assert t.ms == {"cuda": None} and t.reasons["cuda"] == reason


@needs_cuda
def test_cuda_op_timing_on_gpu(bo):
    records, _ = bo.record_signatures(64, N, TINY, device="cuda")
    sig = [r.sig for r in records if r.sig.op == "upfirdn2d" and r.sig.up == (2, 2)][0]
    t = bo.time_op(sig, ["cuda", "ref"], torch.device("cuda"), warmup=1, repeats=2, min_time=0)
    assert t.ms["cuda"] is not None, t.reasons
    assert t.ms["ref"] is not None


def _outputs_and_grads(bo, sig, impl_ctx):
    inputs = bo.make_inputs(sig, torch.device("cpu"))
    with impl_ctx:
        fn = bo.op_callable(sig, "ref")
        y = fn(*inputs.values())
        wrt = [t for k, t in inputs.items() if k in ("x", "b") and t is not None]
        grads = torch.autograd.grad(y, wrt, torch.ones_like(y) * 0.5 + y.detach() * 0.1)
    return y.detach(), grads


@pytest.mark.parametrize("op", ["bias_act", "upfirdn2d"])
def test_compiled_reference_matches_eager(bo, tiny64, op):
    """The real torch.compile (inductor) of a recorded signature gives the reference's output and gradients."""
    records, *_ = tiny64
    if op == "bias_act":
        sig = [r.sig for r in _by(records, op)
               if r.sig.act == "lrelu" and r.sig.clamp >= 0 and len(r.sig.shape) == 4][-1]
    else:
        sig = [r.sig for r in _by(records, op) if r.sig.up == (2, 2)][-1]
    import contextlib

    y_ref, g_ref = _outputs_and_grads(bo, sig, contextlib.nullcontext())
    torch._dynamo.reset()
    try:
        y_c, g_c = _outputs_and_grads(bo, sig, bo.compiled_reference("inductor", dynamic=False))
    finally:
        torch._dynamo.reset()
    torch.testing.assert_close(y_c, y_ref, rtol=1e-5, atol=1e-5)
    for a, b in zip(g_c, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    assert BA._bias_act_ref.__name__ == "_bias_act_ref" and UD._upfirdn2d_ref.__name__ == "_upfirdn2d_ref"


def test_compiled_reference_cannot_double_backward(bo):
    """What R1 / path length need: documents torch's limitation (if a torch lifts it, the step table changes)."""
    reason = bo.probe_compile_double_backward("aot_eager")
    assert reason is not None and "double backward" in reason


# ------------------------------------------------------------------------------------------------ steps
def test_phase_schedule_weights_lazy_regularisation(bo):
    from types import SimpleNamespace as P

    phases = [P(name="G", interval=1), P(name="Greg", interval=4), P(name="D", interval=1), P(name="Dreg", interval=16)]
    cycle, groups = bo.phase_schedule(phases)
    assert cycle == 16
    assert {due: n for due, _, n in groups} == {("G", "Greg", "D", "Dreg"): 1, ("G", "Greg", "D"): 3, ("G", "D"): 12}
    for due, first, _ in groups:  # the representative iteration really has exactly those phases due
        assert tuple(p.name for p in phases if first % p.interval == 0) == due


def test_training_step_ref_is_the_weighted_cycle(bo):
    (ref,) = bo.time_training_step(16, "ref", torch.device("cpu"), batch=N, overrides=TINY, warmup=1, repeats=1)
    assert ref.impl == "ref" and ref.ms and ref.ms > 0 and not ref.reason
    assert set(ref.per_due) == {"G+D", "G+Greg+D", "G+Greg+D+Dreg"}
    # 12 of 16 iterations run G+D, 3 add Greg, 1 runs all four phases
    expected = (12 * ref.per_due["G+D"] + 3 * ref.per_due["G+Greg+D"] + ref.per_due["G+Greg+D+Dreg"]) / 16
    assert ref.ms == pytest.approx(expected)


def test_training_step_compiled_falls_back_where_double_backward_is_needed(bo):
    """The real Trainer step with torch.compile'd reference ops: Greg and Dreg (path length, R1) need double
    backward, which fails compiled; the all-compiled row says n/a with that reason and a second row times the
    step compiled in G and D only. aot_eager traces like inductor (dynamo + aot_autograd) without code generation.
    16 px keeps the number of compiled graphs small."""
    before = (BA._bias_act_ref, UD._upfirdn2d_ref, get_default_impl())
    full, partial = bo.time_training_step(16, "compiled", torch.device("cpu"), batch=N, overrides=TINY, warmup=1,
                                          repeats=1, backend="aot_eager")
    assert full.impl == "compiled" and full.ms is None and "double backward" in full.reason
    assert "phases Greg, Dreg" in full.reason
    assert partial.impl == "compiled-partial" and partial.ms and partial.ms > 0
    assert "compiled in G, D" in partial.note and "eager ref in Greg, Dreg" in partial.note
    assert (BA._bias_act_ref, UD._upfirdn2d_ref, get_default_impl()) == before  # everything restored


@needs_no_cuda
def test_training_step_cuda_is_na_without_cuda(bo):
    (row,) = bo.time_training_step(64, "cuda", torch.device("cpu"), batch=N, overrides=TINY)
    assert row.ms is None and "CUDA" in row.reason


def test_target_summary_checks_issue_4_targets(bo):
    ops = [dict(size=64, op="bias_act", shape="32x512x8x8 f16", params="lrelu", count=3,
                ms={"cuda": 0.01, "ref": 0.035, "compiled": 0.02}, reasons={}),
           dict(size=64, op="upfirdn2d", shape="32x3x32x32 f32", params="up2", count=1,
                ms={"cuda": 0.02, "ref": 0.04, "compiled": 0.03}, reasons={}),
           dict(size=128, op="bias_act", shape="32x3x4x4 f32", params="linear", count=1,
                ms={"cuda": None, "ref": 0.04}, reasons={"cuda": "no CUDA"})]
    steps = [dict(size=64, impl="cuda", ms=100.0), dict(size=64, impl="compiled", ms=None),
             dict(size=64, impl="compiled-partial", ms=150.0), dict(size=128, impl="ref", ms=300.0)]
    lines = bo.target_summary(ops, steps)
    assert lines[0].startswith("64 px ops: 1/2 signatures have cuda >= 3x ref; slowest 2.00x (upfirdn2d")
    assert lines[0].endswith(f"weighted total {(3 * 0.035 + 0.04) / (3 * 0.01 + 0.02):.2f}x")
    assert lines[1] == "128 px ops: not checked (cuda n/a: no CUDA)"
    assert lines[2] == ("64 px step: cuda 100.0 ms vs compiled-partial (the all-compiled step is n/a) 150.0 ms: "
                        "faster (1.50x)")
    assert lines[3] == "128 px step: not checked (cuda not timed, compiled not timed)"


# ------------------------------------------------------------------------------------------------ CLI
def test_cli_quick_prints_tables_and_writes_json(bo, tmp_path, capsys):
    out = tmp_path / "rows.json"
    code = bo.main(["--quick", "--sizes", "64", "--impls", "cuda,ref", "--json", str(out)])
    stdout, stderr = capsys.readouterr()
    assert code == 0, stderr
    lines = stdout.splitlines()
    op_head = next(ln for ln in lines if ln.startswith("op "))
    for col in ("shape", "params", "n", "where", "cuda ms", "ref ms", "compiled ms", "cuda/ref", "cuda/compiled"):
        assert col in op_head
    assert any(ln.startswith("bias_act ") and "lrelu" in ln for ln in lines)
    assert any(ln.startswith("upfirdn2d ") and "up2" in ln for ln in lines)
    assert any(ln.startswith("upfirdn2d ") and "down2" in ln for ln in lines)
    assert any(ln.startswith("weighted total") for ln in lines)
    step_head = next(ln for ln in lines if ln.startswith("size "))
    for col in ("batch", "ops", "ms/iter", "s/kimg", "img/s", "vs ref"):
        assert col in step_head
    step_rows = [ln.split() for ln in lines[lines.index(step_head) + 2:] if ln.startswith("64 ")]
    assert [r[2] for r in step_rows] == ["cuda", "ref"]
    data = json.loads(out.read_text())
    assert data["environment"]["command"].endswith("--quick --sizes 64 --impls cuda,ref --json " + str(out))
    ops = data["ops"]
    assert ops and all(r["size"] == 64 and "compiled" not in r["ms"] for r in ops)
    total = data["op_totals"][0]["ms"]["ref"]
    assert total == pytest.approx(sum(r["ms"]["ref"] * r["count"] for r in ops))
    (ref_step,) = [r for r in data["steps"] if r["impl"] == "ref"]
    assert ref_step["ms"] > 0 and ref_step["batch"] == bo.QUICK_BATCH
    if not torch.cuda.is_available():
        (cuda_step,) = [r for r in data["steps"] if r["impl"] == "cuda"]
        assert cuda_step["ms"] is None and "CUDA" in cuda_step["reason"]
        assert "n/a[1]" in stdout and "[1] no CUDA" in stdout


@pytest.mark.parametrize("argv, message", [
    (["--sizes", "96"], "--sizes: unknown size 96"),
    (["--sizes", "64,abc"], "not a number"),
    (["--dtype", "float8"], "--dtype: unknown dtype 'float8'"),
    (["--impls", "cuda,triton"], "--impls: unknown triton"),
    (["--batch", "0"], "--batch must be positive"),
    (["--no-ops", "--no-step"], "nothing to do"),
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["--step-mode", "sometimes"], "invalid choice"),
])
def test_cli_bad_arguments_are_one_line_errors(bo, capsys, argv, message):
    assert bo.main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert "Traceback" not in err


def test_cli_help_has_examples(bo, capsys):
    assert bo.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "python tools/bench_ops.py --quick" in out and "--json PATH" in out


def test_script_is_a_thin_entry_to_the_package():
    """`python tools/bench_ops.py` (from the repository root) runs stylegan_anime.benchmarks.ops's main."""
    script = REPO / "tools" / "bench_ops.py"
    assert len(script.read_text().splitlines()) < 60
    ok = subprocess.run([sys.executable, "tools/bench_ops.py", "--help"], cwd=REPO, capture_output=True, text=True,
                        timeout=120)
    assert ok.returncode == 0 and "usage: tools/bench_ops.py" in ok.stdout and "examples:" in ok.stdout, ok.stderr
    bad = subprocess.run([sys.executable, "tools/bench_ops.py", "--sizes", "96"], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith("error: --sizes") and bad.stderr.count("\n") == 1


def test_sizes_take_every_power_of_two_from_32_to_1024(bo):
    """Issue #20: --sizes is no longer limited to 64 and 128 (the old list refused 32, 256 and 1024)."""
    assert bo.parse_options([]).sizes == [64, 128]  # the default is unchanged
    assert bo.parse_options(["--sizes", "32,1024,256,32"]).sizes == [32, 1024, 256]
    for bad in ("16", "2048", "96"):
        with pytest.raises(bo.UsageError, match=f"unknown size {bad}; choose from 32, 64, 128, 256, 512, 1024"):
            bo.parse_options(["--sizes", bad])


def test_the_cli_entry_runs_the_op_benchmark(capsys):
    """`stylegan-anime bench-ops ARGS` is tools/bench_ops.py: the same flags, the same one-line errors."""
    from conftest import run_cli

    code, out, err = run_cli(["bench-ops", "--sizes", "48"], capsys)
    assert code == 2 and err.strip() == "error: --sizes: unknown size 48; choose from 32, 64, 128, 256, 512, 1024"
    code, out, _ = run_cli(["bench-ops", "--help"], capsys)
    assert code == 0 and "--sizes" in out and "--impls" in out
