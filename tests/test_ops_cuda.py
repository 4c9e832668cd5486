"""The fused CUDA kernels against the pure-PyTorch reference: forward, backward and double backward, every
activation, float32/float16/bfloat16/float64, contiguous/channels_last/strided layouts, a sweep of shapes,
up/down factors, paddings and filters. Kernel outputs are NaN-poisoned before every launch (a debug hook
in the bindings), so an element the kernel forgets to write shows up as NaN.

Needs a CUDA GPU (skipped otherwise); the first run builds the plugins (a minute or two, cached after).

Dev aid: STYLEGAN_ANIME_OPS_TEST_EMULATE=1 runs this file on a machine without a GPU, on the CPU host
emulation of the kernels from test_ops_build.py (small sizes only; GPU-only checks skip).

Length: the cases of one module under test, listed in full so that each failure names its case.
"""
from __future__ import annotations

import importlib.util
import math
import os
import random
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from stylegan_anime import cuda_ops
from stylegan_anime.cuda_ops import backend, bias_act, build, upfirdn2d

EMULATE = not torch.cuda.is_available() and os.environ.get("STYLEGAN_ANIME_OPS_TEST_EMULATE") == "1"
pytestmark = pytest.mark.skipif(not torch.cuda.is_available() and not EMULATE, reason="needs a CUDA GPU")
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
# GPU-only checks are named test_gpu_only_*: tools/gpu_checks.sh runs them first (-k gpu_only), the sweep after.
gpu_only = pytest.mark.skipif(EMULATE, reason="a GPU-only check (not in the CPU emulation)")

DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64]
# Tolerance of a kernel result in `dtype`, relative to the float64 reference on the same (rounded) inputs
# and scaled by the size of the values.
TOL = {torch.float64: 1e-10, torch.float32: 2e-5, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}
ACTS = list(bias_act.ACTIVATIONS)


@pytest.fixture(scope="module")
def plugins(tmp_path_factory):
    """Build (or load) both plugins once; with EMULATE, wire in the CPU emulation instead."""
    if EMULATE:
        spec = importlib.util.spec_from_file_location("_ops_emulation", Path(__file__).with_name("test_ops_build.py"))
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        emu = mod.build_emulation(tmp_path_factory.mktemp("kernel-emulation"))
        return {"bias_act": emu.bias_act_module, "upfirdn2d": emu.upfirdn2d_module}
    backend.reset_state()
    try:
        return {op: build.get_plugin(op) for op in build.OPS}
    except build.PluginUnavailable as e:
        pytest.fail(f"the CUDA plugins do not build on this GPU machine: {e}")


@pytest.fixture(autouse=True)
def _poisoned(plugins, monkeypatch):
    if EMULATE:
        monkeypatch.setattr(backend, "_is_cuda", lambda x: True)
        monkeypatch.setattr(build, "get_plugin", lambda op: plugins[op])
    backend.set_poison_outputs(True)
    yield
    backend.set_poison_outputs(False)


def _gen(seed):
    return torch.Generator(device=DEVICE).manual_seed(seed)


def _randn(shape, gen, dtype=torch.float64, scale=1.0):
    return (torch.randn(shape, generator=gen, device=DEVICE, dtype=torch.float64) * scale).to(dtype)


def _close(got, want, tol, msg=""):
    """got (any dtype) against a float64 reference, with an absolute tolerance scaled by the values."""
    got, want = got.detach(), want.detach()
    assert got.shape == want.shape, (got.shape, want.shape, msg)
    assert not torch.isnan(got).any(), f"NaN in the kernel output (unwritten elements?) {msg}"
    torch.testing.assert_close(got.double(), want.double(), rtol=tol, atol=tol * (1 + float(want.abs().max())),
                               msg=lambda m: f"{msg}\n{m}")


# ==========================================================================================================
# bias_act.

# name: (shape, dim, make the layout from a contiguous tensor)
BA_LAYOUTS = {
    "nchw": ([3, 8, 5, 6], 1, lambda t: t),
    "channels_last": ([3, 8, 5, 6], 1, lambda t: t.to(memory_format=torch.channels_last)),
    "nlc_dim2": ([4, 7, 6], 2, lambda t: t),
    "nlc_permuted": ([4, 6, 7], 2, lambda t: t.permute(0, 2, 1).contiguous().permute(0, 2, 1)),
    "nc": ([9, 33], 1, lambda t: t),
    "dim0": ([5, 4, 3], 0, lambda t: t),
    "1d": ([13], 0, lambda t: t),
    "strided": ([3, 8, 5, 12], 1, lambda t: t[..., ::2]),  # not memory-dense: made contiguous first
}
BA_KWARGS = [
    dict(),
    dict(gain=0.7),
    dict(clamp=1.1),
    dict(alpha=0.3, gain=2.0),
    dict(clamp=0.0),
    dict(gain=-1.5, clamp=2.0),
]


def _bias_act_pair(x, b, dim, act, kw, dy):
    """(kernel y, kernel grads), (float64 reference y, reference grads) for the same inputs."""
    xg = x.detach().clone().requires_grad_(True)
    bg = None if b is None else b.detach().clone().requires_grad_(True)
    y = bias_act.bias_act(xg, bg, dim=dim, act=act, impl="cuda", **kw)
    inputs = [xg] + ([bg] if bg is not None else [])
    grads = torch.autograd.grad(y, inputs, dy)
    xr = x.detach().double().requires_grad_(True)
    br = None if b is None else b.detach().double().requires_grad_(True)
    yr = bias_act.bias_act(xr, br, dim=dim, act=act, impl="ref", **kw)
    ref_grads = torch.autograd.grad(yr, [xr] + ([br] if br is not None else []), dy.double())
    return (y, grads), (yr, ref_grads)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("act", ACTS)
def test_bias_act_matches_reference(act, dtype):
    gen = _gen(ACTS.index(act) * 10 + DTYPES.index(dtype))
    tol = TOL[dtype]
    for layout, (shape, dim, make) in BA_LAYOUTS.items():
        x = make(_randn(shape, gen, dtype, scale=2.0))
        b = _randn([x.shape[dim]], gen, dtype)
        dy = _randn(x.shape, gen, dtype)
        for bias in (b, None):
            for kw in BA_KWARGS:
                msg = f"{act} {dtype} {layout} bias={bias is not None} {kw}"
                (y, grads), (yr, ref_grads) = _bias_act_pair(x, bias, dim, act, kw, dy)
                assert y.dtype == dtype and y.shape == x.shape
                if layout == "channels_last":
                    assert y.is_contiguous(memory_format=torch.channels_last)
                _close(y, yr, tol, msg)
                if kw.get("clamp") is not None and dtype in (torch.float16, torch.bfloat16):
                    continue  # a rounded y can land on the clamp edge, where the masks may differ
                for g, r in zip(grads, ref_grads):
                    terms = x.numel() // x.shape[dim] if g.ndim == 1 and x.ndim > 1 else 1  # db sums them
                    _close(g, r, tol * 4 * math.sqrt(terms), msg + " (grad)")


@pytest.mark.parametrize("shape, dim", [([1], 0), ([2, 1, 1, 1], 1), ([1, 513], 1), ([4, 512, 8, 8], 1),
                                        ([2, 16, 33, 17], 1), ([2, 17, 3], 2), ([64, 512], 1)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
def test_bias_act_shape_sweep(shape, dim, dtype):
    if EMULATE and math.prod(shape) > 20000:
        pytest.skip("too large for the emulation")
    gen = _gen(sum(shape))
    for act, kw in [("lrelu", dict(clamp=256.0)), ("linear", {}), ("swish", dict(gain=1.2)), ("tanh", {})]:
        x = _randn(shape, gen, dtype, scale=3.0)
        b = _randn([shape[dim]], gen, dtype)
        dy = _randn(shape, gen, dtype)
        (y, grads), (yr, ref_grads) = _bias_act_pair(x, b, dim, act, kw, dy)
        _close(y, yr, TOL[dtype], f"{act} {shape}")
        _close(grads[0], ref_grads[0], TOL[dtype] * 4, f"{act} {shape} dx")
        _close(grads[1], ref_grads[1], TOL[dtype] * 4 * math.sqrt(x.numel()), f"{act} {shape} db")


@pytest.mark.parametrize(
    "act, kw",
    [("linear", {}), ("linear", dict(clamp=1.0)), ("relu", {}), ("relu", dict(clamp=1.0)), ("lrelu", {}),
     ("lrelu", dict(alpha=-0.3)), ("lrelu", dict(alpha=0.1, gain=2.0, clamp=1.0)), ("tanh", dict(clamp=0.7)),
     ("sigmoid", {}), ("sigmoid", dict(gain=3.0, clamp=1.5)), ("elu", dict(alpha=0.7)), ("elu", {}), ("selu", {}),
     ("selu", dict(clamp=1.0)), ("softplus", dict(gain=1.3)), ("swish", dict(clamp=1.0)), ("swish", {})],
)
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_bias_act_gradcheck_float64(act, kw, layout):
    gen = _gen(13)
    # |x| >= 0.4 and |b| <= 0.1: away from the kinks at 0; the clamp edges are checked below.
    x = torch.rand([2, 3, 3, 2], generator=gen, device=DEVICE, dtype=torch.float64) + 0.4
    x = x * (torch.randint(0, 2, x.shape, generator=gen, device=DEVICE) * 2 - 1)
    if layout == "channels_last":
        x = x.to(memory_format=torch.channels_last)
    b = (torch.rand([3], generator=gen, device=DEVICE, dtype=torch.float64) - 0.5) * 0.2
    if kw.get("clamp") is not None:  # move the clamp edge away from every output (finite differences)
        unclamped = bias_act.bias_act(x, b, act=act, impl="ref", **{k: v for k, v in kw.items() if k != "clamp"})
        edges = [kw["clamp"] * (1 + s * 0.02 * i) for i in range(20) for s in (1, -1)]
        ok = [c for c in edges if (unclamped.abs() - c).abs().min() > 0.01 and (unclamped.abs() > c).any()]
        if not ok:
            pytest.skip("no clamp edge away from all outputs")
        kw = {**kw, "clamp": ok[0]}
    x.requires_grad_(True)
    b.requires_grad_(True)
    fn = lambda x, b: bias_act.bias_act(x, b, dim=1, act=act, impl="cuda", **kw)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, b))
    assert torch.autograd.gradgradcheck(fn, (x, b))


@pytest.mark.parametrize("act", ACTS)
def test_bias_act_double_backward_matches_reference(act):
    """R1 / path-length style: d/dw of |d out / d x|^2, in float32."""
    gen = _gen(3)
    x = _randn([4, 6, 5, 5], gen, torch.float32)
    w = _randn([6], gen, torch.float32)
    b = _randn([6], gen, torch.float32, scale=0.5)
    results = {}
    for impl in ["cuda", "ref"]:
        xi, wi, bi = (t.clone().requires_grad_(True) for t in (x, w, b))
        out = bias_act.bias_act(xi * wi.view(1, -1, 1, 1), bi, act=act, clamp=2.5, impl=impl)
        (g,) = torch.autograd.grad((out * out.detach().sin()).sum(), xi, create_graph=True)
        g.square().sum().backward()
        results[impl] = [torch.zeros_like(t) if t.grad is None else t.grad for t in (wi, bi)]  # None: no path
    for got, want in zip(results["cuda"], results["ref"]):
        _close(got, want, 1e-4, act)


def test_bias_act_third_order_is_refused():
    x = torch.randn(3, 4, device=DEVICE, dtype=torch.float64, requires_grad=True)
    y = bias_act.bias_act(x, act="tanh", impl="cuda")
    (g,) = torch.autograd.grad(y.sum(), x, create_graph=True)
    (gg,) = torch.autograd.grad(g.sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="up to second order"):
        torch.autograd.grad(gg.sum(), x)


def test_bias_act_float32_bias_with_half_x():
    x = torch.randn(2, 4, 3, 3, device=DEVICE).half()
    b = torch.randn(4, device=DEVICE, requires_grad=True)
    y = bias_act.bias_act(x, b, act="lrelu", impl="cuda")
    assert y.dtype == torch.float16
    y.float().sum().backward()
    assert b.grad.dtype == torch.float32


# ==========================================================================================================
# upfirdn2d.


def _plain_upfirdn2d(x, f, up, down, pad, flip, gain):
    """Independent of both implementations: zero insertion, F.pad, a dense conv2d, stride slicing."""
    (ux, uy), (dx, dy) = up, down
    N, C, H, W = x.shape
    f2 = (torch.outer(f, f) if f.ndim == 1 else f).to(x.dtype)
    u = x.new_zeros([N, C, H * uy, W * ux])
    u[:, :, ::uy, ::ux] = x
    u = F.pad(u, list(pad))
    k = (f2 if flip else f2.flip([0, 1])) * (gain * ux * uy)
    return F.conv2d(u, k[None, None].expand(C, 1, *k.shape).contiguous(), groups=C)[:, :, ::dy, ::dx]


def _pair(s):
    return (s, s) if isinstance(s, int) else tuple(s)


def test_upfirdn2d_random_sweep_float64():
    rng = random.Random(2024)
    gen = _gen(2024)
    scalings = [1, 2, 4, (1, 2), (2, 1), (4, 2), (3, 1), (1, 3)]
    checked = 0
    while checked < (150 if EMULATE else 400):
        up, down = rng.choice(scalings), rng.choice(scalings)
        (ux, uy), (dx, dy) = _pair(up), _pair(down)
        N, C, H, W = rng.randint(1, 2), rng.randint(1, 4), rng.randint(1, 9), rng.randint(1, 9)
        if rng.random() < 0.5:
            f = torch.rand([rng.randint(1, 7)], generator=gen, device=DEVICE, dtype=torch.float64) + 0.1
        else:
            f = torch.rand([rng.randint(1, 6), rng.randint(1, 6)], generator=gen, device=DEVICE,
                           dtype=torch.float64) - 0.3
        fh, fw = (f.shape[0], f.shape[0]) if f.ndim == 1 else f.shape
        pad = tuple(rng.randint(-3, 5) for _ in range(4))
        if min(pad[0], 0) + min(pad[1], 0) <= -W * ux or min(pad[2], 0) + min(pad[3], 0) <= -H * uy:
            continue
        if W * ux + pad[0] + pad[1] < fw or H * uy + pad[2] + pad[3] < fh:
            continue
        flip, gain = rng.random() < 0.5, rng.choice([1.0, 0.5, 3.0, -2.0])
        x = _randn([N, C, H, W], gen)
        layout = rng.choice(["nchw", "channels_last", "strided"])
        if layout == "channels_last":
            x = x.to(memory_format=torch.channels_last)
        elif layout == "strided":
            x = _randn([N, C, H, 2 * W + 1], gen)[..., 1::2]
        kw = dict(up=up, down=down, padding=pad, flip_filter=flip, gain=gain)
        got = upfirdn2d.upfirdn2d(x, f, impl="cuda", **kw)
        want = _plain_upfirdn2d(x, f, (ux, uy), (dx, dy), pad, flip, gain)
        _close(got, want, TOL[torch.float64], f"{kw} x={list(x.shape)} {layout} f={list(f.shape)}")
        checked += 1


SHAPES = [[1, 1, 1, 1], [1, 3, 4, 4], [2, 5, 9, 7], [3, 16, 17, 31], [4, 64, 32, 32], [1, 512, 8, 8],
          [2, 3, 128, 128]]
FILTERS = {
    "none": None,
    "box2": [1, 1],
    "binomial4": [1, 3, 3, 1],
    "binomial4_2d": ("2d", [1, 3, 3, 1]),
    "lanczos_like8": [-1, -3, 9, 27, 27, 9, -3, -1],  # a 1-D filter with negative taps, not normalizable to 1
    "random_3x5": "random",
}


def _make_filter(spec, gen):
    if spec is None:
        return None
    if spec == "random":
        return torch.rand([3, 5], generator=gen, device=DEVICE, dtype=torch.float64).float() - 0.2
    if isinstance(spec, tuple):
        return upfirdn2d.setup_filter(spec[1], device=DEVICE, separable=False)
    return upfirdn2d.setup_filter(spec, device=DEVICE)


OPS = {  # name: f(x, f, impl)
    "upsample2d": lambda x, f, i: upfirdn2d.upsample2d(x, f, impl=i),
    "downsample2d": lambda x, f, i: upfirdn2d.downsample2d(x, f, impl=i),
    "filter2d": lambda x, f, i: upfirdn2d.filter2d(x, f, gain=2.0, impl=i),
    "up4_down2": lambda x, f, i: upfirdn2d.upfirdn2d(x, f, up=4, down=2, padding=3, flip_filter=True, impl=i),
    "anisotropic": lambda x, f, i: upfirdn2d.upfirdn2d(x, f, up=(2, 1), down=(1, 2), padding=(-1, 2, 1, 0), impl=i),
    "down4_crop": lambda x, f, i: upfirdn2d.upfirdn2d(x, f, down=4, padding=(2, 1, -1, 3), gain=0.5, impl=i),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("layout", ["nchw", "channels_last", "strided"])
@pytest.mark.parametrize("filt", list(FILTERS))
def test_upfirdn2d_matches_reference(filt, layout, dtype):
    gen = _gen(list(FILTERS).index(filt))
    f = _make_filter(FILTERS[filt], gen)
    tol = TOL[dtype]
    for shape in SHAPES:
        if EMULATE and math.prod(shape) > 5000:
            continue
        x = _randn(shape if layout != "strided" else shape[:3] + [2 * shape[3]], gen, dtype)
        x = {"nchw": x, "channels_last": x.to(memory_format=torch.channels_last), "strided": x[..., ::2]}[layout]
        for name, op in OPS.items():
            msg = f"{name} {filt} {layout} {dtype} x={shape}"
            try:
                want = op(x.double(), None if f is None else f.double(), "ref")
            except ValueError:  # an empty output (a tiny image with a big filter): both must refuse
                with pytest.raises(ValueError, match="empty output"):
                    op(x, f, "cuda")
                continue
            got = op(x, f, "cuda")
            assert got.dtype == dtype
            if layout == "channels_last" and shape[1] > 1 and got.shape[2] * got.shape[3] > 1:
                assert got.is_contiguous(memory_format=torch.channels_last), msg
            _close(got, want, tol * 2, msg)
            # Backward: an upfirdn2d pass with the flipped filter and swapped factors.
            xg = x.detach().clone().requires_grad_(True)
            dy = _randn(got.shape, gen, dtype)
            (g,) = torch.autograd.grad(op(xg, f, "cuda"), xg, dy)
            xr = x.detach().double().requires_grad_(True)
            (r,) = torch.autograd.grad(op(xr, None if f is None else f.double(), "ref"), xr, dy.double())
            _close(g, r, tol * 4, msg + " (grad)")


@pytest.mark.parametrize(
    "taps, kw",
    [
        ([1, 3, 3, 1], dict(up=2, padding=(2, 1))),
        ([1, 3, 3, 1], dict(down=2, padding=1)),
        ([[1, 2, 0, 1], [3, 1, 2, 2]], dict(up=2, down=2, padding=(1, 2, 0, -1), gain=1.5)),
        ([1, 2, 3], dict(up=(2, 1), down=(1, 2), padding=(-1, 2, 1, 1), flip_filter=True)),
        ([[1, 2], [3, 4], [5, 6]], dict(up=(1, 3), down=(2, 1), padding=(0, 1, 2, 0))),
        ([1, 3, 3, 1], dict(up=4, down=4, padding=(3, 3, 2, 4))),
        (None, dict(padding=(1, -1, 0, 2), gain=2.0)),
    ],
)
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_upfirdn2d_gradcheck_float64(taps, kw, layout):
    gen = _gen(11)
    x = _randn([2, 3, 5, 4], gen)
    if layout == "channels_last":
        x = x.to(memory_format=torch.channels_last)
    x.requires_grad_(True)
    f = None if taps is None else upfirdn2d.setup_filter(taps, device=DEVICE).double()
    fn = lambda x: upfirdn2d.upfirdn2d(x, f, impl="cuda", **kw)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))
    # Third order too (the gradient is upfirdn2d again), against the reference.
    outs = {}
    for impl in ["cuda", "ref"]:
        xi = x.detach().clone().requires_grad_(True)
        y = upfirdn2d.upfirdn2d(xi, f, impl=impl, **kw)
        (g,) = torch.autograd.grad((y * y.detach().cos()).square().sum(), xi, create_graph=True)
        (gg,) = torch.autograd.grad(g.square().sum(), xi, create_graph=True)
        (ggg,) = torch.autograd.grad(gg.sum(), xi)
        outs[impl] = ggg
    _close(outs["cuda"], outs["ref"], 1e-9)


def test_r1_style_penalty_through_both_ops_float32():
    gen = _gen(5)
    x = _randn([4, 8, 16, 16], gen, torch.float32)
    w = _randn([8], gen, torch.float32)
    f = upfirdn2d.setup_filter([1, 3, 3, 1], device=DEVICE, separable=False)
    results = {}
    for impl in ["cuda", "ref"]:
        xi, wi = x.clone().requires_grad_(True), w.clone().requires_grad_(True)
        h = upfirdn2d.downsample2d(xi * wi.view(1, -1, 1, 1), f, impl=impl)
        out = bias_act.bias_act(h, wi, act="lrelu", clamp=256, impl=impl)
        out = upfirdn2d.upsample2d(out, f, impl=impl)
        (g,) = torch.autograd.grad(out.square().sum(), xi, create_graph=True)
        g.square().sum().backward()
        results[impl] = wi.grad
    _close(results["cuda"], results["ref"], 1e-4)


# ==========================================================================================================
# GPU-only: the real bindings' checks, streams, devices, unpoisoned outputs, big launches, 'auto'.


@gpu_only
def test_gpu_only_auto_takes_cuda_on_gpu_and_doctor_says_so():
    x = torch.randn(2, 3, 8, 8, device=DEVICE)
    assert backend.resolve_impl("auto", x) == "cuda"
    report = dict(cuda_ops.doctor_report())
    assert report["op bias_act"].startswith("loaded") and report["op upfirdn2d"].startswith("loaded")
    assert report["training path"].startswith("cuda")


@gpu_only
def test_gpu_only_plugins_passed_their_selftest_at_first_load(plugins):
    """build.get_plugin self-tests a new build against the reference and keeps the verdict with the build key."""
    import json

    for op in build.OPS:
        status = json.loads((build.build_dir(op) / build.STATUS_FILE).read_text())
        assert status["state"] == "built" and status["selftest"]["state"] == "passed", status
        assert "self-test passed" in build.plugin_status(op)[1] or build.plugin_status(op)[0] == "loaded"


@gpu_only
def test_gpu_only_binding_argument_checks(plugins):
    ba, up = plugins["bias_act"].bias_act, plugins["upfirdn2d"].upfirdn2d
    x = torch.randn(2, 3, 4, 4, device=DEVICE)
    with pytest.raises(RuntimeError, match="x must be a CUDA tensor"):
        ba(x.cpu(), None, None, None, None, 0, 1, 0, 0.0, 1.0, -1.0)
    with pytest.raises(RuntimeError, match="memory-dense"):
        ba(x[..., ::2], None, None, None, None, 0, 1, 0, 0.0, 1.0, -1.0)
    with pytest.raises(RuntimeError, match=r"b has 4 elements but x.shape\[1\] = 3"):
        ba(x, torch.zeros(4, device=DEVICE), None, None, None, 0, 1, 0, 0.0, 1.0, -1.0)
    with pytest.raises(RuntimeError, match="b has dtype"):
        ba(x, torch.zeros(3, device=DEVICE, dtype=torch.float64), None, None, None, 0, 1, 0, 0.0, 1.0, -1.0)
    with pytest.raises(RuntimeError, match="float32, float64, float16 or bfloat16"):
        ba(x.to(torch.int32), None, None, None, None, 0, 1, 0, 0.0, 1.0, -1.0)
    with pytest.raises(RuntimeError, match="yref has strides"):
        ba(x, None, None, x.to(memory_format=torch.channels_last), None, 1, 1, 1, 0.0, 1.0, -1.0)
    with pytest.raises(RuntimeError, match="need xref"):
        ba(x, None, None, x, None, 1, 1, 8, 0.0, 1.0, -1.0)  # swish from y alone
    f = torch.ones(2, 2, device=DEVICE)
    with pytest.raises(RuntimeError, match=r"\[N, C, H, W\]"):
        up(x[0], f, 1, 1, 1, 1, 0, 0, 0, 0, False, 1.0)
    with pytest.raises(RuntimeError, match="f must be Float for x of dtype Float"):
        up(x, f.double(), 1, 1, 1, 1, 0, 0, 0, 0, False, 1.0)
    with pytest.raises(RuntimeError, match="empty output"):
        up(x, torch.ones(9, 9, device=DEVICE), 1, 1, 1, 1, 0, 0, 0, 0, False, 1.0)
    with pytest.raises(RuntimeError, match="up and down factors"):
        up(x, f, 0, 1, 1, 1, 0, 0, 0, 0, False, 1.0)


def _nan_fill_allocator(*shapes, dtype):
    """Allocate and free NaN-filled blocks of these shapes, so the caching allocator hands them out next."""
    junk = [torch.full(shape, float("nan"), device=DEVICE, dtype=dtype) for shape in shapes for _ in range(4)]
    del junk


@gpu_only
@pytest.mark.parametrize("shape", [[4, 32, 16, 16], [4, 32, 128, 128]])  # small / large allocator pools
def test_gpu_only_unpoisoned_outputs_over_a_nan_filled_allocator(shape):
    """Without the debug fill: the outputs get memory that was just filled with NaN."""
    backend.set_poison_outputs(False)
    gen = _gen(9)
    N, C, H, W = shape
    x = _randn(shape, gen, torch.float16)
    b = _randn([C], gen, torch.float16)
    f1 = upfirdn2d.setup_filter([1, 3, 3, 1], device=DEVICE)
    f2 = upfirdn2d.setup_filter([1, 3, 3, 1], device=DEVICE, separable=False)
    up_shapes = [[N, C, H, 2 * W], [N, C, 2 * H, W], [N, C, 2 * H, 2 * W]]  # row/column passes, output
    for _ in range(3):
        _nan_fill_allocator(shape, dtype=torch.float16)
        y = bias_act.bias_act(x, b, act="lrelu", impl="cuda")
        assert not torch.isnan(y).any()
        for f in (f1, f2):
            _nan_fill_allocator(*up_shapes, dtype=torch.float16)
            z = upfirdn2d.upsample2d(y, f, impl="cuda")
            assert not torch.isnan(z).any()
            _close(z, upfirdn2d.upsample2d(y.double(), f.double(), impl="ref"), 4e-3)


@gpu_only
def test_gpu_only_side_stream_and_second_device():
    gen = _gen(1)
    x = _randn([8, 64, 32, 32], gen, torch.float32)
    b = _randn([64], gen, torch.float32)
    f = upfirdn2d.setup_filter([1, 3, 3, 1], device=DEVICE)
    want_y = bias_act.bias_act(x, b, act="lrelu", impl="ref")
    want_z = upfirdn2d.downsample2d(x, f, impl="ref")
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        y = bias_act.bias_act(x, b, act="lrelu", impl="cuda")
        z = upfirdn2d.downsample2d(x, f, impl="cuda")
    torch.cuda.current_stream().wait_stream(stream)
    _close(y, want_y, 1e-5)
    _close(z, want_z, 1e-5)
    if torch.cuda.device_count() > 1:
        d1 = torch.device("cuda", 1)
        _close(bias_act.bias_act(x.to(d1), b.to(d1), act="lrelu", impl="cuda").cpu(), want_y.cpu(), 1e-5)
        _close(upfirdn2d.downsample2d(x.to(d1), f.to(d1), impl="cuda").cpu(), want_z.cpu(), 1e-5)


@gpu_only
def test_gpu_only_big_launches_use_the_grid_stride_loops():
    """More elements than 2^20 blocks of 256 threads cover in one sweep (268,435,456)."""
    n = (1 << 28) + 12345
    x = torch.linspace(-4, 4, n, device=DEVICE, dtype=torch.float16)
    y = bias_act.bias_act(x, act="lrelu", impl="cuda", dim=0)
    assert not torch.isnan(y).any()
    idx = torch.tensor([0, 1, n // 2, (1 << 28) - 1, 1 << 28, n - 1], device=DEVICE)
    _close(y[idx], bias_act.bias_act(x[idx].double(), act="lrelu", impl="ref", dim=0), 2e-3)
    del x, y
    img = torch.randn([1, 5, 8192, 8192], device=DEVICE, dtype=torch.float16)  # 335M outputs after ...
    f = upfirdn2d.setup_filter([1, 1], device=DEVICE)
    out = upfirdn2d.upfirdn2d(img, f, padding=(0, 1, 0, 1), impl="cuda")  # ... a same-size pass: > one sweep
    assert out.shape == img.shape and not torch.isnan(out).any()
    corner = upfirdn2d.upfirdn2d(img[:, 3:, -2:, -3:].double(), f.double(), padding=(0, 1, 0, 1), impl="ref")
    _close(out[:, 3:, -2:, -3:], corner, 2e-3)
