"""The fused CPU kernels (`impl='cpu'`, `--ops cpu`): cuda_ops/upfirdn2d_cpu.cpp and bias_act_cpu.cpp.

Built once per test session through the same build / cache / lock / self-test machinery as the CUDA plugins
(into the session's private ops cache, see conftest.py); skipped with the reason when this machine has no C++
compiler or no ninja. Each kernel is compared with the pure-PyTorch reference (forward, backward and double
backward, float64 / float32 / bfloat16 / float16, contiguous and channels_last, outputs NaN-poisoned before each
call so an unwritten element shows), then gradcheck and gradgradcheck in float64.
"""
from __future__ import annotations

import json

import pytest
import torch

from stylegan_anime.cuda_ops import backend, bias_act, build, upfirdn2d

PROBLEM = build.cpu_toolchain_problem()
pytestmark = pytest.mark.skipif(PROBLEM is not None, reason=f"the CPU plugins cannot be built here: {PROBLEM}")

# Normalised max error |ours - ref| / max(1, |ref|max) allowed per dtype (kernels compute in float32, float64
# for float64; the reference runs in float64 on the same rounded inputs).
TOL = {torch.float64: 1e-12, torch.float32: 2e-6, torch.bfloat16: 1.6e-2, torch.float16: 2e-3}


@pytest.fixture(scope="module", autouse=True)
def plugins():
    backend.reset_state()
    try:
        mods = {op: build.get_plugin(op) for op in build.CPU_OPS}
    except build.PluginUnavailable as e:
        pytest.fail(f"the CPU plugins do not build on this machine (it has a compiler and ninja): {e}")
    backend.set_poison_outputs(True)
    yield mods
    backend.set_poison_outputs(False)


def _err(ours, ref) -> float:
    if ours is None or ref is None:
        return 0.0 if ours is None and ref is None else float("inf")
    ours, ref = ours.detach().double(), ref.detach().double()
    assert ours.shape == ref.shape
    if not torch.isfinite(ours).all() and torch.isfinite(ref).all():
        return float("inf")
    return float((ours - ref).abs().max() / max(1.0, float(ref.abs().max())))


def _grads(fn, x, b, dy, v):
    """[y, dx, db, d<dx, v>/d(dy), d<dx, v>/dx]: forward, backward, and the double backward R1 takes."""
    inputs = [x] + ([b] if b is not None else [])
    y = fn(x, b)
    g = torch.autograd.grad(y, inputs, dy, create_graph=True)
    second = torch.autograd.grad((g[0] * v).sum(), [dy, x], allow_unused=True)
    return [y, g[0], g[1] if b is not None else None, *second]


def _compare(fn_impl, shape, nbias, dtype, channels_last, seed=0, second_order=True):
    gen = torch.Generator().manual_seed(seed)
    x64 = torch.randn(shape, generator=gen, dtype=torch.float64) * 2
    b64 = torch.randn([nbias], generator=gen, dtype=torch.float64) if nbias else None
    out_shape = fn_impl(x64, b64, "ref").shape
    dy64 = torch.randn(out_shape, generator=gen, dtype=torch.float64)
    v64 = torch.randn(shape, generator=gen, dtype=torch.float64)

    def prep(t, dt, cl):
        if t is None:
            return None
        t = t.to(dtype).to(dt)
        if cl and t.ndim == 4:
            t = t.contiguous(memory_format=torch.channels_last)
        return t.requires_grad_(True)

    ours_in = [prep(t, dtype, channels_last) for t in (x64, b64, dy64, v64)]
    ref_in = [prep(t, torch.float64, False) for t in (x64, b64, dy64, v64)]
    if second_order:
        ours = _grads(lambda x, b: fn_impl(x, b, "cpu"), *ours_in)
        ref = _grads(lambda x, b: fn_impl(x, b, "ref"), *ref_in)
    else:
        ours = [fn_impl(ours_in[0], ours_in[1], "cpu")]
        ref = [fn_impl(ref_in[0], ref_in[1], "ref")]
    assert ours[0].dtype == dtype
    if channels_last and len(shape) == 4:
        assert ours[0].is_contiguous(memory_format=torch.channels_last)
    names = ["forward", "grad x", "grad b", "double backward (dy)", "double backward (x)"]
    for name, a, r in zip(names, ours, ref):
        if a is None and r is not None and not r.any():
            continue  # a gradient one side leaves undefined is zero on the other
        err = _err(a, r)
        assert err <= TOL[dtype], f"{name}: max error {err:.3g} > {TOL[dtype]:g} ({dtype}, channels_last={channels_last})"


# --------------------------------------------------------------------------------------------------------
# upfirdn2d

F4 = upfirdn2d.setup_filter([1, 3, 3, 1], separable=False)
F_ASYM = upfirdn2d.setup_filter(torch.arange(1.0, 13.0).reshape(3, 4))  # asymmetric, non-square: catches flips
F_SEP = upfirdn2d.setup_filter([1, 3, 3, 1])
F_ASYM4 = upfirdn2d.setup_filter(torch.arange(1.0, 17.0).reshape(4, 4))  # the one-pass 4x4 path, asymmetric

UPFIRDN_CASES = {  # name: (x shape, fn(x, impl))
    "upsample2d 4x4": ([2, 3, 5, 6], lambda x, impl: upfirdn2d.upsample2d(x, F4, impl=impl)),
    "downsample2d 4x4": ([2, 3, 8, 7], lambda x, impl: upfirdn2d.downsample2d(x, F4, impl=impl)),
    "filter2d 4x4 gain 4": ([2, 3, 7, 9], lambda x, impl: upfirdn2d.filter2d(x, F4, gain=4, impl=impl)),
    "asymmetric 4x4, filter2d": ([2, 3, 6, 7], lambda x, impl: upfirdn2d.filter2d(x, F_ASYM4, gain=2, impl=impl)),
    "asymmetric 4x4, down 2, flip": ([2, 3, 9, 8], lambda x, impl: upfirdn2d.downsample2d(x, F_ASYM4, flip_filter=True,
                                                                                         impl=impl)),
    "asymmetric 4x4, up 2": ([2, 3, 4, 5], lambda x, impl: upfirdn2d.upsample2d(x, F_ASYM4, impl=impl)),
    "asymmetric filter, flip": ([2, 2, 6, 5],
                                lambda x, impl: upfirdn2d.upfirdn2d(x, F_ASYM, padding=(2, 1, 1, 2), flip_filter=True,
                                                                    impl=impl)),
    "asymmetric, up 2 down 1": ([1, 2, 5, 4], lambda x, impl: upfirdn2d.upfirdn2d(x, F_ASYM, up=2, padding=(2, 1, 1, 3),
                                                                                  impl=impl)),
    "up 3 down 2, cropping": ([1, 2, 6, 5], lambda x, impl: upfirdn2d.upfirdn2d(x, F_ASYM, up=3, down=2,
                                                                                padding=(1, 2, -1, 3), impl=impl)),
    "up (1, 2) down (3, 1), gain": ([2, 2, 5, 9], lambda x, impl: upfirdn2d.upfirdn2d(
        x, F_ASYM, up=(1, 2), down=(3, 1), padding=(2, -1, 0, 1), gain=1.5, impl=impl)),
    "down 2, negative padding": ([1, 3, 9, 8], lambda x, impl: upfirdn2d.upfirdn2d(x, F_ASYM, down=2,
                                                                                   padding=(-1, 2, 1, -2), impl=impl)),
    "separable, up 2": ([2, 3, 4, 5], lambda x, impl: upfirdn2d.upsample2d(x, F_SEP, impl=impl)),
    "separable, down 2": ([2, 3, 6, 8], lambda x, impl: upfirdn2d.downsample2d(x, F_SEP, impl=impl)),
    "no filter, pad and crop": ([2, 3, 4, 5], lambda x, impl: upfirdn2d.upfirdn2d(x, None, padding=(1, 0, 2, -1),
                                                                                  impl=impl)),
    "up 4, 1-wide rows": ([1, 2, 3, 1], lambda x, impl: upfirdn2d.upfirdn2d(x, F_ASYM, up=4, padding=3, impl=impl)),
}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16, torch.float16],
                         ids=lambda d: str(d).replace("torch.", ""))
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
@pytest.mark.parametrize("case", list(UPFIRDN_CASES))
def test_upfirdn2d_matches_reference(case, channels_last, dtype):
    shape, fn = UPFIRDN_CASES[case]
    _compare(lambda x, b, impl: fn(x, impl), shape, 0, dtype, channels_last)


@pytest.mark.parametrize("case", ["upsample2d 4x4", "downsample2d 4x4", "asymmetric 4x4, down 2, flip",
                                  "asymmetric 4x4, up 2", "asymmetric filter, flip",
                                  "up 3 down 2, cropping", "up (1, 2) down (3, 1), gain"])
def test_upfirdn2d_gradcheck_and_gradgradcheck(case):
    shape, fn = UPFIRDN_CASES[case]
    x = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1), requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: fn(x, "cpu"), (x,))
    assert torch.autograd.gradgradcheck(lambda x: fn(x, "cpu"), (x,))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16, torch.float16],
                         ids=lambda d: str(d).replace("torch.", ""))
@pytest.mark.parametrize("case", list(UPFIRDN_CASES))
def test_upfirdn2d_nhwc_rows_match_reference(case, dtype):
    """channels_last with 8 or more channels takes the NHWC row loops (vectorised along the channels): every
    case again with 9 channels (an odd count: a vector tail), forward / backward / double backward."""
    shape, fn = UPFIRDN_CASES[case]
    _compare(lambda x, b, impl: fn(x, impl), [shape[0], 9, *shape[2:]], 0, dtype, True)


@pytest.mark.parametrize("case", ["upsample2d 4x4", "downsample2d 4x4", "asymmetric 4x4, up 2",
                                  "up 3 down 2, cropping", "up (1, 2) down (3, 1), gain"])
def test_upfirdn2d_nhwc_gradcheck_and_gradgradcheck(case):
    shape, fn = UPFIRDN_CASES[case]
    x = torch.randn([shape[0], 8, *shape[2:]], dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    x = x.contiguous(memory_format=torch.channels_last).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: fn(x, "cpu"), (x,))
    assert torch.autograd.gradgradcheck(lambda x: fn(x, "cpu"), (x,))


def test_upfirdn2d_preset_shapes_and_threads():
    """The shapes training uses (batch 16, 32 px) give the reference's result at 1 and 2 threads, bit for bit
    alike between thread counts (each plane, or NHWC row, is computed by one thread)."""
    for layout in (torch.contiguous_format, torch.channels_last):  # the plane loops and the NHWC row loops
        x = torch.randn(16, 16, 32, 32, generator=torch.Generator().manual_seed(3)).contiguous(memory_format=layout)
        ref = upfirdn2d.downsample2d(x.double(), F4, impl="ref")
        saved = torch.get_num_threads()
        outs = []
        try:
            for threads in (1, 2):
                torch.set_num_threads(threads)
                outs.append(upfirdn2d.downsample2d(x, F4, impl="cpu"))
        finally:
            torch.set_num_threads(saved)
        assert torch.equal(outs[0], outs[1])
        assert outs[0].is_contiguous(memory_format=layout)
        assert _err(outs[0], ref) < TOL[torch.float32]


# --------------------------------------------------------------------------------------------------------
# bias_act

LAYOUTS = {  # name: (shape, dim); channels_last and the permuted view make the bias index run with the element
    "nchw": ([2, 5, 3, 4], 1),
    "channels_last": ([2, 5, 3, 4], 1),
    "nlc (permuted view)": ([2, 12, 5], 1),  # [N, C, L] with C of stride 1 (an [N, L, C] tensor permuted)
    "nc": ([10, 7], 1),
    "bias on dim 0": ([4, 3, 5], 0),
}
ACT_CASES = {  # name: (act, kwargs)
    "lrelu clamp": ("lrelu", dict(clamp=0.6)),
    "lrelu gain": ("lrelu", dict(gain=0.8)),
    "lrelu negative alpha": ("lrelu", dict(alpha=-0.3, clamp=1.5)),
    "linear gain clamp": ("linear", dict(gain=0.5, clamp=0.7)),
    "linear": ("linear", {}),
    "relu": ("relu", {}),
    "tanh": ("tanh", dict(clamp=0.5)),
    "sigmoid": ("sigmoid", {}),
    "elu": ("elu", {}),
    "selu": ("selu", {}),
    "softplus": ("softplus", {}),
    "swish gain": ("swish", dict(gain=0.7)),
}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16, torch.float16],
                         ids=lambda d: str(d).replace("torch.", ""))
@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("act_case", list(ACT_CASES))
def test_bias_act_matches_reference(act_case, layout, dtype):
    act, kw = ACT_CASES[act_case]
    shape, dim = LAYOUTS[layout]
    channels_last = layout == "channels_last"

    def fn(x, b, impl):
        x2 = x.permute(0, 2, 1).contiguous().permute(0, 2, 1) if layout == "nlc (permuted view)" else x
        return bias_act.bias_act(x2, b, dim=dim, act=act, impl=impl, **kw)

    _compare(fn, shape, shape[dim], dtype, channels_last)


@pytest.mark.parametrize("act_case", ["lrelu clamp", "linear", "swish gain", "tanh"])
def test_bias_act_without_bias(act_case):
    act, kw = ACT_CASES[act_case]
    _compare(lambda x, b, impl: bias_act.bias_act(x, None, act=act, impl=impl, **kw), [3, 4, 5], 0, torch.float32,
             False)


@pytest.mark.parametrize("act_case", ["lrelu clamp", "lrelu negative alpha", "linear gain clamp", "swish gain",
                                      "elu", "softplus"])
def test_bias_act_gradcheck_and_gradgradcheck(act_case):
    act, kw = ACT_CASES[act_case]
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(2, 4, 3, 3, dtype=torch.float64, generator=gen).requires_grad_(True)
    b = torch.randn(4, dtype=torch.float64, generator=gen).requires_grad_(True)
    # Keep |y| away from the clamp and z away from 0, where the function has kinks gradcheck cannot see through.
    with torch.no_grad():
        x += torch.where(x + b[:, None, None] >= 0, 0.05, -0.05)
    fn = lambda x, b: bias_act.bias_act(x, b, act=act, impl="cpu", **kw)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, b))
    assert torch.autograd.gradgradcheck(fn, (x, b))


def test_bias_act_large_tensor_splits_across_threads():
    """More elements than one parallel chunk, channels_last and channel-major, 1 and 2 threads alike."""
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(16, 32, 32, 32, generator=gen)
    b = torch.randn(32, generator=gen)
    saved = torch.get_num_threads()
    try:
        for layout in (torch.contiguous_format, torch.channels_last):
            xl = x.contiguous(memory_format=layout)
            ref = bias_act.bias_act(xl.double(), b.double(), act="lrelu", clamp=1.0, impl="ref")
            outs = []
            for threads in (1, 2):
                torch.set_num_threads(threads)
                outs.append(bias_act.bias_act(xl, b, act="lrelu", clamp=1.0, impl="cpu"))
            assert torch.equal(outs[0], outs[1])
            assert _err(outs[0], ref) < TOL[torch.float32]
    finally:
        torch.set_num_threads(saved)


# --------------------------------------------------------------------------------------------------------
# The switch, the machinery, the doctor.


def test_cpu_impl_is_only_taken_when_asked():
    x = torch.zeros(2, 3)
    assert backend.resolve_impl("auto", x, op="bias_act") == "ref"
    assert backend.resolve_impl(None, x, op="bias_act") == backend.resolve_impl(backend.get_default_impl(), x,
                                                                                  op="bias_act")
    assert backend.get_default_impl() != "cpu"
    assert backend.resolve_impl("cpu", x, op="bias_act") == "cpu"
    assert backend.resolve_impl("cpu", x) == "cpu"  # every op


def test_cpu_impl_refuses_other_devices_and_unsupported_calls():
    with pytest.raises(RuntimeError, match="CPU tensors only"):
        backend.resolve_impl("cpu", torch.zeros(2, 3, device="meta"), op="bias_act")
    with pytest.raises(RuntimeError, match="cannot run this call"):
        backend.resolve_impl("cpu", torch.zeros(2), op="bias_act", unsupported="a reason")
    f = F4.clone().requires_grad_(True)
    with pytest.raises(RuntimeError, match="filter"):
        upfirdn2d.upsample2d(torch.zeros(1, 1, 4, 4), f, impl="cpu")


def test_plugins_went_through_the_build_machinery(plugins):
    for op in build.CPU_OPS:
        status = json.loads((build.build_dir(op) / build.STATUS_FILE).read_text())
        assert status["state"] == "built"
        assert status["selftest"]["state"] == "passed", status  # checked against the reference at first load
        assert build.plugin_status(op)[0] == "loaded"
        assert plugins[op].isa() in ("avx512", "baseline")
    rows = dict(backend.doctor_report())
    for op in build.CPU_OPS:
        assert rows[f"op {op}"].startswith("loaded")


_BASELINE_SCRIPT = r"""
import torch
from stylegan_anime.cuda_ops import build, bias_act, upfirdn2d
assert all(build.get_plugin(op).isa() == "baseline" for op in build.CPU_OPS)
f = upfirdn2d.setup_filter([1, 3, 3, 1], separable=False)
g = torch.Generator().manual_seed(11)
worst = 0.0
for dtype in (torch.float32, torch.bfloat16):
    x = torch.randn(2, 3, 9, 8, generator=g).to(dtype)
    b = torch.randn(3, generator=g).to(dtype)
    for fn in (lambda x, i: upfirdn2d.upsample2d(x, f, impl=i), lambda x, i: upfirdn2d.downsample2d(x, f, impl=i),
               lambda x, i: upfirdn2d.filter2d(x, f, impl=i),
               lambda x, i: bias_act.bias_act(x, b, act="lrelu", clamp=0.8, impl=i)):
        xs = x.clone().requires_grad_(True)
        xr = x.double().requires_grad_(True)
        ours, ref = fn(xs, "cpu"), fn(xr, "ref")
        dy = torch.randn(ref.shape, generator=g, dtype=torch.float64)
        (gx,) = torch.autograd.grad(ours, xs, dy.to(dtype))
        (gr,) = torch.autograd.grad(ref, xr, dy.to(dtype).double())
        for a, r in ((ours, ref), (gx, gr)):
            worst = max(worst, float((a.double() - r).abs().max() / max(1.0, float(r.abs().max()))))
print("WORST", worst)
"""


def test_baseline_build_without_avx512(plugins, tmp_path):
    """The portable (non-AVX-512) loops, forced by $STYLEGAN_ANIME_OPS_CPU_ISA=baseline in a fresh process that
    loads the same cached build: float32 and bfloat16 forward and backward match the reference."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, STYLEGAN_ANIME_OPS_CPU_ISA="baseline", OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", _BASELINE_SCRIPT], capture_output=True, text=True, env=env,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    worst = float(out.stdout.split("WORST")[1])
    assert worst < TOL[torch.bfloat16], worst
