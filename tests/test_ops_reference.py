"""Pure-PyTorch reference ops (upfirdn2d, bias_act) against definitions written independently here."""
from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from stylegan_anime import cuda_ops
from stylegan_anime.cuda_ops import backend, bias_act, upfirdn2d

CUDA_ON_CPU_MSG = (
    "impl='cuda' (--ops cuda) runs on CUDA tensors only, but x is on cpu; use impl='auto' or impl='ref' (--ops ref)"
)


@pytest.fixture(autouse=True)
def _restore_default_impl():
    saved = backend.get_default_impl()
    yield
    backend.set_default_impl(saved)


@pytest.fixture(autouse=True)
def _single_thread():
    """The tensors here are tiny: intra-op threads only add overhead (and stall badly on a loaded CPU)."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


# ==========================================================================================================
# upfirdn2d: the plain definition, written out step by step.


def plain_upfirdn2d(x, f, up=(1, 1), down=(1, 1), pad=(0, 0, 0, 0), flip_filter=False, gain=1.0):
    """Zero insertion into a fresh tensor, F.pad (negative = crop), depthwise conv2d with the flipped
    2-D filter (true convolution), scaled by gain*up_x*up_y, then stride slicing."""
    ux, uy = up
    dx, dy = down
    N, C, H, W = x.shape
    f2 = torch.outer(f, f) if f.ndim == 1 else f
    f2 = f2.to(x.dtype)
    u = x.new_zeros([N, C, H * uy, W * ux])
    u[:, :, ::uy, ::ux] = x
    u = F.pad(u, list(pad))
    k = f2 if flip_filter else f2.flip([0, 1])
    k = k * (gain * ux * uy)
    y = F.conv2d(u, k[None, None].expand(C, 1, *k.shape).contiguous(), groups=C)
    return y[:, :, ::dy, ::dx]


SCALINGS = [1, 2, 4, (1, 2), (2, 1), (4, 2), (1, 4)]


def _as_pair(s):
    return (s, s) if isinstance(s, int) else tuple(s)


def test_upfirdn2d_random_sweep_matches_plain_definition():
    rng = random.Random(1234)
    gen = torch.Generator().manual_seed(1234)
    checked = rejected = 0
    for _ in range(300):
        N, C = rng.randint(1, 2), rng.randint(1, 3)
        H, W = rng.randint(1, 7), rng.randint(1, 7)
        up, down = rng.choice(SCALINGS), rng.choice(SCALINGS)
        if rng.random() < 0.5:  # separable 1-D filter, odd or even length
            f = torch.rand([rng.randint(1, 6)], generator=gen, dtype=torch.float64) + 0.1
        else:  # 2-D, possibly non-square
            f = torch.rand([rng.randint(1, 5), rng.randint(1, 5)], generator=gen, dtype=torch.float64) - 0.3
        fh, fw = (f.shape[0], f.shape[0]) if f.ndim == 1 else f.shape
        pad_kind = rng.randint(0, 2)
        if pad_kind == 0:
            padding = rng.randint(-2, 4)
            pad = (padding,) * 4
        elif pad_kind == 1:
            padding = (rng.randint(-2, 4), rng.randint(-2, 4))
            pad = (padding[0], padding[0], padding[1], padding[1])
        else:
            padding = tuple(rng.randint(-3, 4) for _ in range(4))
            pad = padding
        flip = rng.random() < 0.5
        gain = rng.choice([1.0, 0.5, 3.0, -2.0])
        x = torch.randn([N, C, H, W], generator=gen, dtype=torch.float64)
        ux, uy = _as_pair(up)
        # Keep cropping within the image so F.pad in the plain definition is well defined.
        if min(pad[0], 0) + min(pad[1], 0) <= -W * ux or min(pad[2], 0) + min(pad[3], 0) <= -H * uy:
            continue
        if W * ux + pad[0] + pad[1] < fw or H * uy + pad[2] + pad[3] < fh:
            with pytest.raises(ValueError, match="empty output"):
                upfirdn2d.upfirdn2d(x, f, up=up, down=down, padding=padding, flip_filter=flip, gain=gain)
            rejected += 1
            continue
        got = upfirdn2d.upfirdn2d(x, f, up=up, down=down, padding=padding, flip_filter=flip, gain=gain)
        want = plain_upfirdn2d(x, f, _as_pair(up), _as_pair(down), pad, flip, gain)
        assert got.shape == want.shape, (up, down, padding, f.shape, x.shape)
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
        checked += 1
    assert checked > 150 and rejected > 0


def test_upfirdn2d_hand_computed_upsample_1d():
    # [1,2,3,4] upsampled by 2 with [1,3,3,1]/8 (x2 gain for the inserted zeros) = linear interpolation.
    x = torch.tensor([1.0, 2.0, 3.0, 4.0]).reshape(1, 1, 1, 4)
    f = upfirdn2d.setup_filter([[1, 3, 3, 1]])  # 2-D [1,4]: filters along x only
    y = upfirdn2d.upfirdn2d(x, f, up=(2, 1), padding=(2, 1, 0, 0))
    want = torch.tensor([0.75, 1.25, 1.75, 2.25, 2.75, 3.25, 3.75, 3.0])
    torch.testing.assert_close(y.flatten(), want)
    torch.testing.assert_close(upfirdn2d.upsample2d(x, f, up=(2, 1)).flatten(), want)


def test_upfirdn2d_convolution_vs_correlation_hand_computed():
    x = torch.tensor([1.0, 0.0, 0.0]).reshape(1, 1, 1, 3)
    f = torch.tensor([[1.0, 2.0, 3.0]])
    conv = upfirdn2d.upfirdn2d(x, f, padding=(2, 2, 0, 0))
    corr = upfirdn2d.upfirdn2d(x, f, padding=(2, 2, 0, 0), flip_filter=True)
    assert conv.flatten().tolist() == [1.0, 2.0, 3.0, 0.0, 0.0]
    assert corr.flatten().tolist() == [3.0, 2.0, 1.0, 0.0, 0.0]
    # down=2 keeps outputs 0, 2, 4; gain scales; negative padding crops the left input pixel away.
    assert upfirdn2d.upfirdn2d(x, f, down=(2, 1), padding=(2, 2, 0, 0), gain=2).flatten().tolist() == [2, 6, 0]
    assert upfirdn2d.upfirdn2d(x, f, padding=(-1, 2, 0, 0)).flatten().tolist() == [0.0, 0.0]


def test_upfirdn2d_numpy_direct_sum():
    # y[i] = sum_k f[k] * u[i*down - p0 + (fw-1) - k], u = zero-inserted x * up; an independent formula.
    rng = np.random.default_rng(0)
    for up, down, p0, p1, fw in [(2, 1, 2, 1, 4), (1, 2, 1, 1, 4), (4, 2, 3, 0, 5), (3, 2, -2, 3, 3)]:
        x = rng.standard_normal(9)
        f = rng.standard_normal(fw)
        u = np.zeros(9 * up)
        u[::up] = x * up
        n_out = (9 * up + p0 + p1 - fw) // down + 1
        want = np.zeros(n_out)
        for i in range(n_out):
            for k in range(fw):
                j = i * down - p0 + fw - 1 - k
                if 0 <= j < len(u):
                    want[i] += f[k] * u[j]
        xt = torch.from_numpy(x).reshape(1, 1, 1, 9)
        got = upfirdn2d.upfirdn2d(xt, torch.from_numpy(f)[None], up=(up, 1), down=(down, 1), padding=(p0, p1, 0, 0))
        np.testing.assert_allclose(got.flatten().numpy(), want, rtol=1e-12, atol=1e-12)


def test_separable_equals_outer_product_and_none_is_identity():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn([2, 3, 6, 5], generator=gen, dtype=torch.float64)
    f1 = upfirdn2d.setup_filter([1, 3, 3, 1]).double()
    f2 = upfirdn2d.setup_filter([1, 3, 3, 1], separable=False).double()
    for kw in [dict(up=2, padding=1), dict(down=(2, 1), padding=(1, 2)), dict(up=(2, 4), down=2, gain=3)]:
        torch.testing.assert_close(upfirdn2d.upfirdn2d(x, f1, **kw), upfirdn2d.upfirdn2d(x, f2, **kw))
    torch.testing.assert_close(upfirdn2d.upfirdn2d(x, None), x)
    torch.testing.assert_close(upfirdn2d.filter2d(x, None, gain=2), 2 * x)


def test_setup_filter():
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    assert f.dtype == torch.float32 and f.shape == (4,)
    torch.testing.assert_close(f, torch.tensor([1.0, 3, 3, 1]) / 8)
    f2 = upfirdn2d.setup_filter(np.array([1, 3, 3, 1]), separable=False)
    assert f2.shape == (4, 4)
    torch.testing.assert_close(f2.sum(), torch.tensor(1.0))
    torch.testing.assert_close(f2, torch.outer(f, f))
    flipped = upfirdn2d.setup_filter([1, 2, 3], normalize=False, flip_filter=True)
    torch.testing.assert_close(flipped, torch.tensor([3.0, 2, 1]))
    # gain**(ndim/2): 1-D taps get sqrt(gain), 2-D taps get gain.
    torch.testing.assert_close(upfirdn2d.setup_filter([1, 1], gain=4), torch.tensor([1.0, 1.0]))
    torch.testing.assert_close(upfirdn2d.setup_filter([[1, 1], [1, 1]], gain=4), torch.ones(2, 2))
    torch.testing.assert_close(upfirdn2d.setup_filter(None), torch.ones(1))
    with pytest.raises(ValueError, match="sum to 0"):
        upfirdn2d.setup_filter([1, -1])
    with pytest.raises(ValueError, match="separable"):
        upfirdn2d.setup_filter([[1, 1]], separable=True)
    assert upfirdn2d._get_filter_size(None) == (1, 1)
    assert upfirdn2d._get_filter_size(f) == (4, 4)
    assert upfirdn2d._get_filter_size(torch.ones(2, 5)) == (5, 2)


def test_upfirdn2d_argument_errors():
    x, f = torch.ones(1, 1, 4, 4), upfirdn2d.setup_filter([1, 1])
    with pytest.raises(ValueError, match="padding"):
        upfirdn2d.upfirdn2d(x, f, padding=(1, 2, 3))
    with pytest.raises(ValueError, match="up"):
        upfirdn2d.upfirdn2d(x, f, up=0)
    with pytest.raises(ValueError, match=r"\[N,C,H,W\]"):
        upfirdn2d.upfirdn2d(torch.ones(4, 4), f)
    with pytest.raises(TypeError, match="setup_filter"):
        upfirdn2d.upfirdn2d(x, [1, 1])


# ----------------------------------------------------------------------------------------------------------
# Size-preserving helpers.


@pytest.mark.parametrize("taps", [[1, 3, 3, 1], [1, 2, 1], [1, 1], [1, 3, 3, 1, 1, 3, 3, 1]])
@pytest.mark.parametrize("separable", [True, False])
def test_resample_helpers_sizes_and_brightness(taps, separable):
    f = upfirdn2d.setup_filter(taps, separable=separable)
    x = torch.full([2, 3, 12, 10], 0.7)
    fw = len(taps)
    m = fw  # margin of pixels touched by the zero border
    for up in [2, (2, 1), (1, 2)]:
        ux, uy = _as_pair(up)
        y = upfirdn2d.upsample2d(x, f, up=up)
        assert y.shape == (2, 3, 12 * uy, 10 * ux)
        torch.testing.assert_close(y[:, :, m:-m, m:-m], torch.full_like(y[:, :, m:-m, m:-m], 0.7))
    for down in [2, (2, 1), (1, 4)]:
        dx, dy = _as_pair(down)
        y = upfirdn2d.downsample2d(x, f, down=down)
        assert y.shape == (2, 3, 12 // dy, 10 // dx)
        mx, my = -(-fw // (2 * dx)), -(-fw // (2 * dy))  # output pixels whose taps reach the border
        inner = y[:, :, my : y.shape[2] - my, mx : y.shape[3] - mx]
        assert inner.numel() > 0
        torch.testing.assert_close(inner, torch.full_like(inner, 0.7))
    y = upfirdn2d.filter2d(x, f)
    assert y.shape == x.shape
    torch.testing.assert_close(y[:, :, m:-m, m:-m], torch.full_like(y[:, :, m:-m, m:-m], 0.7))
    # Extra padding adds to the output size; odd input sizes floor on downsampling.
    assert upfirdn2d.upsample2d(x, f, padding=(1, 2, 0, 3)).shape == (2, 3, 27, 23)
    assert upfirdn2d.downsample2d(torch.ones(1, 1, 9, 7), f).shape == (1, 1, 4, 3)


def test_upsample_by_4_with_box_keeps_constant_and_gain():
    f = upfirdn2d.setup_filter([1, 1, 1, 1])
    y = upfirdn2d.upsample2d(torch.ones(1, 1, 5, 5), f, up=4, gain=2)
    assert y.shape == (1, 1, 20, 20)
    torch.testing.assert_close(y[:, :, 4:-4, 4:-4], torch.full([1, 1, 12, 12], 2.0))


def test_helpers_match_upfirdn2d_with_their_padding():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn([1, 2, 7, 6], generator=gen, dtype=torch.float64)
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    torch.testing.assert_close(upfirdn2d.upsample2d(x, f), plain_upfirdn2d(x, f, (2, 2), (1, 1), (2, 1, 2, 1)))
    torch.testing.assert_close(upfirdn2d.downsample2d(x, f), plain_upfirdn2d(x, f, (1, 1), (2, 2), (1, 1, 1, 1)))
    torch.testing.assert_close(upfirdn2d.filter2d(x, f), plain_upfirdn2d(x, f, pad=(2, 1, 2, 1)))


# ==========================================================================================================
# bias_act: each activation written out by hand.

SELU_ALPHA, SELU_SCALE = 1.6732632423543772, 1.0507009873554805

PLAIN_ACTS = {  # name: (function(x, alpha), default alpha, default gain)
    "linear": (lambda x, a: x, None, 1.0),
    "relu": (lambda x, a: torch.where(x > 0, x, torch.zeros_like(x)), None, math.sqrt(2)),
    "lrelu": (lambda x, a: torch.where(x >= 0, x, a * x), 0.2, math.sqrt(2)),
    "tanh": (lambda x, a: (torch.exp(2 * x) - 1) / (torch.exp(2 * x) + 1), None, 1.0),
    "sigmoid": (lambda x, a: 1 / (1 + torch.exp(-x)), None, 1.0),
    "elu": (lambda x, a: torch.where(x > 0, x, a * (torch.exp(x) - 1)), 1.0, 1.0),
    "selu": (lambda x, a: SELU_SCALE * torch.where(x > 0, x, SELU_ALPHA * (torch.exp(x) - 1)), None, 1.0),
    "softplus": (lambda x, a: torch.log(1 + torch.exp(x)), None, 1.0),
    "swish": (lambda x, a: x / (1 + torch.exp(-x)), None, math.sqrt(2)),
}


def plain_bias_act(x, b, dim, act, alpha=None, gain=None, clamp=None):
    func, def_alpha, def_gain = PLAIN_ACTS[act]
    if b is not None:
        shape = [1] * x.ndim
        shape[dim] = -1
        x = x + b.view(shape)
    y = func(x, def_alpha if alpha is None else alpha) * (def_gain if gain is None else gain)
    if clamp is not None and clamp >= 0:
        y = torch.minimum(torch.maximum(y, torch.tensor(-clamp, dtype=y.dtype)), torch.tensor(clamp, dtype=y.dtype))
    return y


def test_activation_table_defaults():
    assert set(bias_act.ACTIVATIONS) == set(PLAIN_ACTS)
    for name, (_, def_alpha, def_gain) in PLAIN_ACTS.items():
        spec = bias_act.ACTIVATIONS[name]
        assert spec.name == name
        assert spec.def_gain == pytest.approx(def_gain)
        if def_alpha is not None:
            assert spec.def_alpha == pytest.approx(def_alpha)


@pytest.mark.parametrize("act", list(PLAIN_ACTS))
def test_bias_act_matches_plain(act):
    gen = torch.Generator().manual_seed(7)
    cases = [  # (x shape, dim)
        ([3, 5, 4, 4], 1),  # [N,C,H,W]
        ([2, 6, 5], 2),  # [N,L,C]
        ([2, 6, 5], -1),
        ([4, 7], 1),  # [N,C] (mapping network)
    ]
    for shape, dim in cases:
        x = torch.randn(shape, generator=gen, dtype=torch.float64) * 2
        b = torch.randn([shape[dim]], generator=gen, dtype=torch.float64)
        d = dim % len(shape)
        for bias in [None, b]:
            for kw in [{}, dict(gain=0.5), dict(clamp=0.8), dict(gain=3.0, clamp=2.5), dict(clamp=-1),
                       dict(clamp=0.0), dict(alpha=0.3)]:
                got = bias_act.bias_act(x, bias, dim=dim, act=act, **kw)
                want = plain_bias_act(x, bias, d, act, **kw)
                torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9, msg=f"{act} {shape} dim={dim} {kw}")
    # Clamping really happens, and the output keeps shape and dtype.
    y = bias_act.bias_act(torch.full([2, 3], 100.0), act=act, clamp=0.25)
    assert y.shape == (2, 3) and y.dtype == torch.float32
    assert (y == 0.25).all()  # every activation at 100 exceeds 0.25


def test_bias_act_argument_errors():
    x = torch.zeros(2, 3, 4)
    with pytest.raises(ValueError, match="1-D"):
        bias_act.bias_act(x, torch.zeros(3, 1))
    with pytest.raises(ValueError, match=r"x.shape\[1\] = 3"):
        bias_act.bias_act(x, torch.zeros(4))
    with pytest.raises(ValueError, match=r"x.shape\[2\] = 4"):
        bias_act.bias_act(x, torch.zeros(3), dim=2)
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        bias_act.bias_act(x, act="gelu")
    with pytest.raises(ValueError, match="dim=3"):
        bias_act.bias_act(x, dim=3)


# ==========================================================================================================
# Higher-order differentiability (R1 / path-length penalties double-backprop through both ops).


@pytest.mark.parametrize(
    "taps, kw",
    [
        ([1, 3, 3, 1], dict(up=2, padding=(2, 1))),
        ([1, 3, 3, 1], dict(down=2, padding=1)),
        ([[1, 2, 0, 1], [3, 1, 2, 2]], dict(up=2, down=2, padding=(1, 2, 0, -1), gain=1.5)),
        ([1, 2, 3], dict(up=(2, 1), down=(1, 2), padding=(-1, 2, 1, 1), flip_filter=True)),
    ],
)
def test_upfirdn2d_gradcheck(taps, kw):
    gen = torch.Generator().manual_seed(11)
    x = torch.randn([1, 2, 5, 4], generator=gen, dtype=torch.float64, requires_grad=True)
    f = upfirdn2d.setup_filter(taps).double()
    assert torch.autograd.gradcheck(lambda x: upfirdn2d.upfirdn2d(x, f, **kw), (x,))
    assert torch.autograd.gradgradcheck(lambda x: upfirdn2d.upfirdn2d(x, f, **kw), (x,))
    # Also differentiable with respect to the filter.
    fg = f.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x, f: upfirdn2d.upfirdn2d(x, f, **kw), (x, fg))


def test_upfirdn2d_double_backward_of_penalty():
    # R1-style: grad of sum(D(x)^2) wrt x, then backprop that gradient's norm into the weights.
    gen = torch.Generator().manual_seed(5)
    x = torch.randn([2, 3, 8, 8], generator=gen, dtype=torch.float64, requires_grad=True)
    w = torch.randn([3], generator=gen, dtype=torch.float64, requires_grad=True)
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    out = bias_act.bias_act(upfirdn2d.downsample2d(x * w.view(1, 3, 1, 1), f), act="softplus")
    (g,) = torch.autograd.grad(out.square().sum(), x, create_graph=True)
    g.square().sum().backward()
    assert w.grad is not None and torch.isfinite(w.grad).all() and w.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "act, kw",
    [
        ("lrelu", {}),
        ("lrelu", dict(alpha=0.1, gain=2.0, clamp=1.0)),
        ("tanh", dict(clamp=0.7)),
        ("softplus", dict(gain=1.3)),
        ("swish", dict(clamp=1.0)),
        ("elu", dict(alpha=0.7)),
        ("sigmoid", {}),
        ("selu", {}),
    ],
)
def test_bias_act_gradcheck(act, kw):
    gen = torch.Generator().manual_seed(13)
    # |x| >= 0.4 and |b| <= 0.1: x + b stays away from the kinks at 0.
    x = torch.rand([2, 3, 2, 2], generator=gen, dtype=torch.float64) + 0.4
    x = x * (torch.randint(0, 2, x.shape, generator=gen) * 2 - 1)
    b = (torch.rand([3], generator=gen, dtype=torch.float64) - 0.5) * 0.2
    if kw.get("clamp") is not None:  # keep the unclamped outputs away from the clamp edges
        y = plain_bias_act(x, b, 1, act, kw.get("alpha"), kw.get("gain"))
        assert (y.abs() - kw["clamp"]).abs().min() > 0.01
        assert (y.abs() > kw["clamp"]).any()  # some values are actually clamped
    x.requires_grad_(True)
    b.requires_grad_(True)
    fn = lambda x, b: bias_act.bias_act(x, b, dim=1, act=act, **kw)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, b))
    assert torch.autograd.gradgradcheck(fn, (x, b))


# ==========================================================================================================
# Dtypes and memory formats.


@pytest.mark.parametrize("dtype, tol", [(torch.float16, 5e-3), (torch.bfloat16, 3e-2)])
def test_low_precision_close_to_float32(dtype, tol):
    gen = torch.Generator().manual_seed(17)
    x = torch.randn([2, 4, 8, 8], generator=gen)
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    for fn in [
        lambda x: upfirdn2d.upsample2d(x, f),
        lambda x: upfirdn2d.downsample2d(x, f),
        lambda x: upfirdn2d.upfirdn2d(x, upfirdn2d.setup_filter([1, 2, 1], separable=False), up=2, down=2, padding=1),
    ]:
        y = fn(x.to(dtype))
        assert y.dtype == dtype
        torch.testing.assert_close(y.float(), fn(x), rtol=tol, atol=tol)
    b = torch.randn([4], generator=gen)
    for act in PLAIN_ACTS:
        y = bias_act.bias_act(x.to(dtype), b.to(dtype), act=act, clamp=2.0)
        assert y.dtype == dtype
        torch.testing.assert_close(y.float(), bias_act.bias_act(x, b, act=act, clamp=2.0), rtol=tol, atol=tol)
    # A float32 bias with a low-precision x: the output keeps x's dtype.
    assert bias_act.bias_act(x.to(dtype), b, act="lrelu").dtype == dtype


def test_channels_last_matches_contiguous():
    gen = torch.Generator().manual_seed(19)
    x = torch.randn([2, 5, 9, 7], generator=gen)
    xc = x.to(memory_format=torch.channels_last)
    assert not xc.is_contiguous()
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    for fn in [
        lambda x: upfirdn2d.upsample2d(x, f),
        lambda x: upfirdn2d.downsample2d(x, f, padding=(0, 1, 1, 0)),
        lambda x: upfirdn2d.upfirdn2d(x, f, up=(2, 1), down=(1, 2), padding=(-1, 2, 1, 0)),
        lambda x: bias_act.bias_act(x, torch.linspace(-1, 1, 5), act="lrelu", clamp=1.5),
    ]:
        torch.testing.assert_close(fn(xc), fn(x), rtol=1e-6, atol=1e-6)
    # Gradients flow through channels_last inputs too.
    xg = xc.clone().requires_grad_(True)
    upfirdn2d.upsample2d(xg, f).sum().backward()
    assert xg.grad is not None and xg.grad.shape == x.shape


# ==========================================================================================================
# Backend switch.


def test_backend_resolution_and_errors():
    x = torch.zeros(1, 1, 4, 4)
    assert backend.resolve_impl("ref", x) == "ref"
    assert backend.resolve_impl("auto", x) == "ref"
    assert backend.resolve_impl(None, x) == "ref"
    with pytest.raises(RuntimeError) as e:
        backend.resolve_impl("cuda", x)
    assert str(e.value) == CUDA_ON_CPU_MSG
    with pytest.raises(RuntimeError, match="CUDA tensors only"):
        upfirdn2d.upsample2d(x, upfirdn2d.setup_filter([1, 1]), impl="cuda")
    with pytest.raises(RuntimeError, match="CUDA tensors only"):
        bias_act.bias_act(x, impl="cuda")
    for bogus in ["CUDA", "triton", "", 3]:
        with pytest.raises(ValueError, match="'auto', 'cuda', 'ref'"):
            backend.resolve_impl(bogus, x)
    with pytest.raises(ValueError, match="impl must be one of"):
        upfirdn2d.upfirdn2d(x, None, impl="fast")
    with pytest.raises(ValueError, match="impl must be one of"):
        bias_act.bias_act(x, impl="fast")


def test_default_impl_switch():
    x = torch.ones(1, 2, 4, 4)
    f = upfirdn2d.setup_filter([1, 1])
    assert backend.get_default_impl() == "auto"
    backend.set_default_impl("cuda")
    assert cuda_ops.get_default_impl() == "cuda"
    with pytest.raises(RuntimeError, match="CUDA tensors only"):
        upfirdn2d.filter2d(x, f)
    with pytest.raises(RuntimeError, match="CUDA tensors only"):
        bias_act.bias_act(x)
    # An explicit impl overrides the default.
    torch.testing.assert_close(upfirdn2d.filter2d(x, f, impl="ref")[..., 1:, 1:], x[..., 1:, 1:])
    cuda_ops.set_default_impl("ref")
    assert bias_act.bias_act(x, act="relu", impl=None).sum().item() == pytest.approx(32 * math.sqrt(2))
    with pytest.raises(ValueError, match="impl must be one of"):
        backend.set_default_impl("gpu")
    assert backend.get_default_impl() == "ref"


def test_package_exports():
    import types

    assert isinstance(cuda_ops.upfirdn2d, types.ModuleType) and isinstance(cuda_ops.bias_act, types.ModuleType)
    assert cuda_ops.setup_filter is upfirdn2d.setup_filter
    assert cuda_ops.upsample2d is upfirdn2d.upsample2d
    assert cuda_ops.ACTIVATIONS is bias_act.ACTIVATIONS
