"""StyleGAN2 networks: shapes, parameter counts, state-dict names, modulated conv, resampling, mapping,
noise, discriminator pieces, double backprop and reduced precision. CPU, tiny channel counts.

Length: the cases of one module under test, listed in full so that each failure names its case.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from stylegan_anime.stylegan2 import (
    Discriminator,
    Generator,
    MappingNetwork,
    MinibatchStdLayer,
    conv2d_resample,
    modulated_conv2d,
)
from stylegan_anime.stylegan2.layers import make_resample_filter


@pytest.fixture(scope="module", autouse=True)
def _single_thread():
    """Tiny tensors: intra-op threads only add overhead."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# The small config of the state-dict and parameter-count tests: channels min(512 // res, 64) =
# {4: 64, 8: 64, 16: 32, 32: 16}.
SMALL = dict(img_resolution=32, img_channels=3, channel_base=512, channel_max=64)
Z_DIM, W_DIM, C_DIM = 16, 32, 3


def small_G(c_dim: int = C_DIM, **kw) -> Generator:
    return Generator(Z_DIM, c_dim, W_DIM, mapping_kwargs=dict(num_layers=2), **SMALL, **kw)


def small_D(c_dim: int = C_DIM, **kw) -> Discriminator:
    return Discriminator(c_dim, mapping_kwargs=dict(num_layers=2), **SMALL, **kw)


def tiny_G(res: int, c_dim: int = 0, **kw) -> Generator:
    return Generator(8, c_dim, 8, res, 3, mapping_kwargs=dict(num_layers=2), channel_base=256, channel_max=8, **kw)


def tiny_D(res: int, c_dim: int = 0, **kw) -> Discriminator:
    return Discriminator(c_dim, res, 3, channel_base=256, channel_max=8, mapping_kwargs=dict(num_layers=1), **kw)


def set_noise_strength(G: Generator, value: float) -> None:
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(value)


# ==========================================================================================================
# Slow references written with plain torch ops.


def depthwise_fir(x: torch.Tensor, f2d: torch.Tensor) -> torch.Tensor:
    """Valid true convolution of every channel with the 2-D filter."""
    C = x.shape[1]
    k = f2d.flip([0, 1]).to(x.dtype)
    return F.conv2d(x, k[None, None].repeat(C, 1, 1, 1), groups=C)


def slow_conv2d_resample(x, w, f2d, up=1, down=1, padding=0, groups=1, flip_weight=True):
    """Zero-insert (x up^2) -> pad -> FIR filter -> conv (no padding) -> FIR filter -> keep every down-th."""
    N, C, H, W = x.shape
    fh, fw = f2d.shape
    px0 = px1 = py0 = py1 = padding
    if up > 1:
        px0, px1 = px0 + (fw + up - 1) // 2, px1 + (fw - up) // 2
        py0, py1 = py0 + (fh + up - 1) // 2, py1 + (fh - up) // 2
    if down > 1:
        px0, px1 = px0 + (fw - down + 1) // 2, px1 + (fw - down) // 2
        py0, py1 = py0 + (fh - down + 1) // 2, py1 + (fh - down) // 2
    if up > 1:
        u = x.new_zeros([N, C, H * up, W * up])
        u[:, :, ::up, ::up] = x * up**2
    else:
        u = x
    u = F.pad(u, [px0, px1, py0, py1])
    if up > 1:
        u = depthwise_fir(u, f2d)
    y = F.conv2d(u, w if flip_weight else w.flip([2, 3]), groups=groups)
    if down > 1:
        y = depthwise_fir(y, f2d)[:, :, ::down, ::down]
    return y


def reference_modconv(x, weight, styles, up=1, down=1, padding=1, demodulate=True, flip_weight=True):
    """Per sample: an ordinary convolution with weight * styles[n] (divided by its per-output-channel norm)."""
    f2d = make_resample_filter()
    outs = []
    for n in range(x.shape[0]):
        w = weight * styles[n].reshape(1, -1, 1, 1)
        if demodulate:
            w = w / (w.square().sum(dim=[1, 2, 3], keepdim=True) + 1e-8).sqrt()
        y = slow_conv2d_resample(x[n : n + 1], w, f2d, up=up, down=down, padding=padding, flip_weight=flip_weight)
        outs.append(y)
    return torch.cat(outs)


# ==========================================================================================================
# conv2d_resample and modulated_conv2d.


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("up,down", [(1, 1), (2, 1), (1, 2), (2, 2)])
@pytest.mark.parametrize("flip_weight", [True, False])
@pytest.mark.parametrize("groups", [1, 2])
def test_conv2d_resample_matches_slow_reference(k, up, down, flip_weight, groups):
    f2d = make_resample_filter()
    x = torch.randn(2, 4, 8, 8, dtype=torch.float64)
    w = torch.randn(6, 4 // groups, k, k, dtype=torch.float64)
    got = conv2d_resample(x, w, f=f2d, up=up, down=down, padding=k // 2, groups=groups, flip_weight=flip_weight)
    want = slow_conv2d_resample(x, w, f2d, up=up, down=down, padding=k // 2, groups=groups, flip_weight=flip_weight)
    assert got.shape == (2, 6, 8 * up // down, 8 * up // down)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("up,down", [(1, 1), (2, 1), (1, 2)])
@pytest.mark.parametrize("demodulate", [True, False])
def test_modulated_conv_fused_and_unfused_match_per_sample_conv(up, down, demodulate):
    x = torch.randn(3, 5, 8, 8, dtype=torch.float64)
    weight = torch.randn(7, 5, 3, 3, dtype=torch.float64)
    styles = torch.randn(3, 5, dtype=torch.float64)
    flip = up == 1  # as SynthesisLayer does
    want = reference_modconv(x, weight, styles, up=up, down=down, demodulate=demodulate, flip_weight=flip)
    kw = dict(up=up, down=down, padding=1, resample_filter=make_resample_filter(), demodulate=demodulate,
              flip_weight=flip)
    fused = modulated_conv2d(x, weight, styles, fused_modconv=True, **kw)
    unfused = modulated_conv2d(x, weight, styles, fused_modconv=False, **kw)
    assert fused.shape == (3, 7, 8 * up // down, 8 * up // down)
    torch.testing.assert_close(fused, want, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(unfused, want, rtol=1e-9, atol=1e-9)


def test_modulated_conv_noise_added_in_both_paths():
    x, weight, styles = torch.randn(2, 4, 6, 6), torch.randn(3, 4, 3, 3), torch.randn(2, 4)
    noise = torch.randn(2, 1, 6, 6)
    base = modulated_conv2d(x, weight, styles, padding=1)
    for fused in (True, False):
        got = modulated_conv2d(x, weight, styles, noise=noise, padding=1, fused_modconv=fused)
        torch.testing.assert_close(got, base + noise, rtol=1e-5, atol=1e-5)


def test_demodulation_gives_unit_variance():
    x = torch.randn(4, 256, 24, 24)
    weight = torch.randn(64, 256, 3, 3)
    styles = torch.rand(4, 256) * 3 + 0.1  # arbitrary positive scales, very different per channel
    for fused in (True, False):
        y = modulated_conv2d(x, weight, styles, padding=0, fused_modconv=fused)  # no borders: all pixels interior
        assert abs(y.var().item() - 1) < 0.12


def test_reduced_precision_prenormalisation_keeps_result():
    """The fp16/bf16 pre-normalisation (weights and styles by their max) cancels under demodulation."""
    x = torch.randn(2, 8, 6, 6)
    weight, styles = torch.randn(4, 8, 3, 3) * 50, torch.randn(2, 8) * 40
    want = modulated_conv2d(x, weight, styles, padding=1)
    got = modulated_conv2d(x.bfloat16(), weight, styles, padding=1, fused_modconv=False)
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), want, rtol=0.05, atol=0.05)


# ==========================================================================================================
# Shapes, num_ws, parameter counts and state-dict names.


@pytest.mark.parametrize("res", [64, 128])
@pytest.mark.parametrize("arch", ["skip", "orig", "resnet"])
def test_generator_and_discriminator_shapes(res, arch):
    G = tiny_G(res, architecture=arch)
    D = tiny_D(res, architecture=arch)
    log2 = int(math.log2(res))
    # 2 convs per block, 1 at 4x4, + the last block's torgb: 2 * (log2 - 1) - 1 + 1.
    assert G.num_ws == G.synthesis.num_ws == G.mapping.num_ws == 2 * log2 - 2
    z = torch.randn(2, 8)
    ws = G.mapping(z, None)
    assert ws.shape == (2, G.num_ws, 8)
    img = G(z, None)
    assert img.shape == (2, 3, res, res) and img.dtype == torch.float32
    assert D(img, None).shape == (2, 1)


def _fc(i, o, bias=True):
    return i * o + (o if bias else 0)


def _conv(i, o, k, bias=True):
    return i * o * k * k + (o if bias else 0)


def test_generator_parameter_count():
    ch = {4: 64, 8: 64, 16: 32, 32: 16}
    w, z, c, rgb = W_DIM, Z_DIM, C_DIM, 3

    def synthesis_layer(i, o):  # affine (bias) + 3x3 weight + bias + noise_strength
        return _fc(w, i) + _conv(i, o, 3) + 1

    def torgb(i):
        return _fc(w, i) + _conv(i, rgb, 1)

    total = 64 * 4 * 4 + synthesis_layer(64, 64) + torgb(64)  # b4: const, conv1, torgb
    for res in (8, 16, 32):
        total += synthesis_layer(ch[res // 2], ch[res]) + synthesis_layer(ch[res], ch[res]) + torgb(ch[res])
    total += _fc(c, w) + _fc(z + w, w) + _fc(w, w)  # mapping: embed, fc0, fc1
    G = small_G()
    assert sum(p.numel() for p in G.parameters()) == total


def test_discriminator_parameter_count():
    ch = {4: 64, 8: 64, 16: 32, 32: 16}
    cmap = ch[4]
    total = _conv(3, ch[32], 1)  # b32.fromrgb
    for res in (32, 16, 8):  # conv0, conv1 (down), skip (down, no bias)
        tmp, out = ch[res], ch[res // 2]
        total += _conv(tmp, tmp, 3) + _conv(tmp, out, 3) + _conv(tmp, out, 1, bias=False)
    total += _fc(C_DIM, cmap) + 2 * _fc(cmap, cmap)  # mapping: embed, fc0, fc1
    total += _conv(64 + 1, 64, 3) + _fc(64 * 16, 64) + _fc(64, cmap)  # epilogue: conv (+mbstd), fc, out
    D = small_D()
    assert sum(p.numel() for p in D.parameters()) == total


# The names and shapes of NVlabs stylegan2-ada-pytorch (training/networks.py) for the small config with
# c_dim=3, derived from its module tree: every SynthesisLayer / Conv2dLayer / block registers a
# `resample_filter` buffer, which setup_filter makes 2-D ([4, 4]) for the 4-tap [1, 3, 3, 1]; noise_strength
# is a 0-d parameter; MinibatchStdLayer has no state; D's label mapping has no w_avg.
EXPECTED_G = """
synthesis.b4.const 64 4 4
synthesis.b4.resample_filter 4 4
synthesis.b4.conv1.weight 64 64 3 3
synthesis.b4.conv1.noise_strength
synthesis.b4.conv1.bias 64
synthesis.b4.conv1.resample_filter 4 4
synthesis.b4.conv1.noise_const 4 4
synthesis.b4.conv1.affine.weight 64 32
synthesis.b4.conv1.affine.bias 64
synthesis.b4.torgb.weight 3 64 1 1
synthesis.b4.torgb.bias 3
synthesis.b4.torgb.affine.weight 64 32
synthesis.b4.torgb.affine.bias 64
synthesis.b8.resample_filter 4 4
synthesis.b8.conv0.weight 64 64 3 3
synthesis.b8.conv0.noise_strength
synthesis.b8.conv0.bias 64
synthesis.b8.conv0.resample_filter 4 4
synthesis.b8.conv0.noise_const 8 8
synthesis.b8.conv0.affine.weight 64 32
synthesis.b8.conv0.affine.bias 64
synthesis.b8.conv1.weight 64 64 3 3
synthesis.b8.conv1.noise_strength
synthesis.b8.conv1.bias 64
synthesis.b8.conv1.resample_filter 4 4
synthesis.b8.conv1.noise_const 8 8
synthesis.b8.conv1.affine.weight 64 32
synthesis.b8.conv1.affine.bias 64
synthesis.b8.torgb.weight 3 64 1 1
synthesis.b8.torgb.bias 3
synthesis.b8.torgb.affine.weight 64 32
synthesis.b8.torgb.affine.bias 64
synthesis.b16.resample_filter 4 4
synthesis.b16.conv0.weight 32 64 3 3
synthesis.b16.conv0.noise_strength
synthesis.b16.conv0.bias 32
synthesis.b16.conv0.resample_filter 4 4
synthesis.b16.conv0.noise_const 16 16
synthesis.b16.conv0.affine.weight 64 32
synthesis.b16.conv0.affine.bias 64
synthesis.b16.conv1.weight 32 32 3 3
synthesis.b16.conv1.noise_strength
synthesis.b16.conv1.bias 32
synthesis.b16.conv1.resample_filter 4 4
synthesis.b16.conv1.noise_const 16 16
synthesis.b16.conv1.affine.weight 32 32
synthesis.b16.conv1.affine.bias 32
synthesis.b16.torgb.weight 3 32 1 1
synthesis.b16.torgb.bias 3
synthesis.b16.torgb.affine.weight 32 32
synthesis.b16.torgb.affine.bias 32
synthesis.b32.resample_filter 4 4
synthesis.b32.conv0.weight 16 32 3 3
synthesis.b32.conv0.noise_strength
synthesis.b32.conv0.bias 16
synthesis.b32.conv0.resample_filter 4 4
synthesis.b32.conv0.noise_const 32 32
synthesis.b32.conv0.affine.weight 32 32
synthesis.b32.conv0.affine.bias 32
synthesis.b32.conv1.weight 16 16 3 3
synthesis.b32.conv1.noise_strength
synthesis.b32.conv1.bias 16
synthesis.b32.conv1.resample_filter 4 4
synthesis.b32.conv1.noise_const 32 32
synthesis.b32.conv1.affine.weight 16 32
synthesis.b32.conv1.affine.bias 16
synthesis.b32.torgb.weight 3 16 1 1
synthesis.b32.torgb.bias 3
synthesis.b32.torgb.affine.weight 16 32
synthesis.b32.torgb.affine.bias 16
mapping.w_avg 32
mapping.embed.weight 32 3
mapping.embed.bias 32
mapping.fc0.weight 32 48
mapping.fc0.bias 32
mapping.fc1.weight 32 32
mapping.fc1.bias 32
"""

EXPECTED_D = """
b32.resample_filter 4 4
b32.fromrgb.weight 16 3 1 1
b32.fromrgb.bias 16
b32.fromrgb.resample_filter 4 4
b32.conv0.weight 16 16 3 3
b32.conv0.bias 16
b32.conv0.resample_filter 4 4
b32.conv1.weight 32 16 3 3
b32.conv1.bias 32
b32.conv1.resample_filter 4 4
b32.skip.weight 32 16 1 1
b32.skip.resample_filter 4 4
b16.resample_filter 4 4
b16.conv0.weight 32 32 3 3
b16.conv0.bias 32
b16.conv0.resample_filter 4 4
b16.conv1.weight 64 32 3 3
b16.conv1.bias 64
b16.conv1.resample_filter 4 4
b16.skip.weight 64 32 1 1
b16.skip.resample_filter 4 4
b8.resample_filter 4 4
b8.conv0.weight 64 64 3 3
b8.conv0.bias 64
b8.conv0.resample_filter 4 4
b8.conv1.weight 64 64 3 3
b8.conv1.bias 64
b8.conv1.resample_filter 4 4
b8.skip.weight 64 64 1 1
b8.skip.resample_filter 4 4
mapping.embed.weight 64 3
mapping.embed.bias 64
mapping.fc0.weight 64 64
mapping.fc0.bias 64
mapping.fc1.weight 64 64
mapping.fc1.bias 64
b4.conv.weight 64 65 3 3
b4.conv.bias 64
b4.conv.resample_filter 4 4
b4.fc.weight 64 1024
b4.fc.bias 64
b4.out.weight 64 64
b4.out.bias 64
"""


def _parse_expected(text: str) -> dict[str, tuple[int, ...]]:
    rows = [line.split() for line in text.strip().splitlines()]
    return {row[0]: tuple(int(v) for v in row[1:]) for row in rows}


@pytest.mark.parametrize("which", ["G", "D"])
def test_state_dict_names_and_shapes_match_stylegan2_ada(which):
    net = small_G() if which == "G" else small_D()
    expected = _parse_expected(EXPECTED_G if which == "G" else EXPECTED_D)
    got = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert set(got) == set(expected), f"missing {set(expected) - set(got)}, extra {set(got) - set(expected)}"
    assert got == expected


def test_resample_filter_buffer_is_normalised_outer_product():
    f = small_G().synthesis.b8.resample_filter
    one_d = torch.tensor([1.0, 3, 3, 1])
    torch.testing.assert_close(f, torch.outer(one_d, one_d) / 64)


def test_unconditional_state_dict_has_no_label_parts():
    assert not any("embed" in k for k in small_G(c_dim=0).state_dict())
    assert not any(k.startswith("mapping.") for k in small_D(c_dim=0).state_dict())


# ==========================================================================================================
# Mapping network: truncation and the w_avg EMA.


def _mapping_with_random_avg(num_ws=6):
    M = MappingNetwork(z_dim=8, c_dim=0, w_dim=5, num_ws=num_ws, num_layers=2)
    with torch.no_grad():
        M.w_avg.copy_(torch.randn(5))
    return M


def test_truncation_psi_zero_gives_w_avg():
    M = _mapping_with_random_avg()
    z = torch.randn(4, 8)
    ws = M(z, None, truncation_psi=0)
    assert ws.shape == (4, 6, 5)
    assert torch.equal(ws, M.w_avg.expand(4, 6, 5))


def test_truncation_cutoff_only_touches_the_first_layers():
    M = _mapping_with_random_avg()
    z = torch.randn(4, 8)
    full = M(z, None)
    ws = M(z, None, truncation_psi=0, truncation_cutoff=2)
    assert torch.equal(ws[:, :2], M.w_avg.expand(4, 2, 5))
    assert torch.equal(ws[:, 2:], full[:, 2:])
    half = M(z, None, truncation_psi=0.5, truncation_cutoff=2)
    torch.testing.assert_close(half[:, :2], M.w_avg + 0.5 * (full[:, :2] - M.w_avg))


def test_truncation_psi_one_is_identity_and_ws_are_broadcast():
    M = _mapping_with_random_avg()
    z = torch.randn(4, 8)
    ws = M(z, None, truncation_psi=1, truncation_cutoff=3)
    assert torch.equal(ws, M(z, None))
    assert torch.equal(ws, ws[:, :1].expand_as(ws))


def test_update_emas_moves_w_avg_towards_batch_mean():
    M = _mapping_with_random_avg()
    z = torch.randn(16, 8)
    before = M.w_avg.clone()
    w = M(z, None)[:, 0]  # no update by default
    assert torch.equal(M.w_avg, before)
    M(z, None, update_emas=True)
    beta = M.w_avg_beta
    torch.testing.assert_close(M.w_avg, before + (1 - beta) * (w.mean(0) - before))


def test_mapping_normalises_z_and_embeds_c():
    M = MappingNetwork(z_dim=8, c_dim=3, w_dim=5, num_ws=2, num_layers=1)
    z, c = torch.randn(2, 8), torch.randn(2, 3)
    torch.testing.assert_close(M(z * 7, c), M(z, c))  # z is normalised to unit second moment
    assert not torch.allclose(M(z, c), M(z, torch.randn(2, 3)))


# ==========================================================================================================
# Noise modes.


def test_noise_modes():
    G = tiny_G(16).eval()
    set_noise_strength(G, 0.5)
    ws = G.mapping(torch.randn(2, 8), None)
    const_a = G.synthesis(ws, noise_mode="const")
    const_b = G.synthesis(ws, noise_mode="const")
    rand_a = G.synthesis(ws, noise_mode="random")
    rand_b = G.synthesis(ws, noise_mode="random")
    none = G.synthesis(ws, noise_mode="none")
    assert torch.equal(const_a, const_b)
    assert not torch.allclose(rand_a, rand_b)
    assert not torch.allclose(none, const_a) and not torch.allclose(none, rand_a)
    with pytest.raises(ValueError, match="noise_mode"):
        G.synthesis(ws, noise_mode="bogus")


def test_zero_noise_strength_makes_noise_modes_agree():
    G = tiny_G(16).eval()  # noise_strength starts at 0, as in the original
    ws = G.mapping(torch.randn(2, 8), None)
    torch.testing.assert_close(G.synthesis(ws, noise_mode="random"), G.synthesis(ws, noise_mode="none"))


def test_generator_fused_and_unfused_agree():
    G = tiny_G(32).eval()
    set_noise_strength(G, 0.3)
    z = torch.randn(3, 8)
    a = G(z, None, noise_mode="const", fused_modconv=True)
    b = G(z, None, noise_mode="const", fused_modconv=False)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


# ==========================================================================================================
# Discriminator pieces.


def test_minibatch_std_group_of_four_on_batch_of_eight():
    x = torch.randn(8, 6, 4, 4)
    y = MinibatchStdLayer(group_size=4, num_channels=1)(x)
    assert y.shape == (8, 7, 4, 4)
    torch.testing.assert_close(y[:, :6], x)
    # Groups are strided: with 8 samples and groups of 4, samples {0, 2, 4, 6} and {1, 3, 5, 7}.
    for members in ([0, 2, 4, 6], [1, 3, 5, 7]):
        g = x[members]
        std = (g.var(dim=0, unbiased=False) + 1e-8).sqrt().mean()
        for n in members:
            torch.testing.assert_close(y[n, 6], std.expand(4, 4))


def test_minibatch_std_two_channels_and_whole_batch():
    x = torch.randn(4, 6, 3, 3)
    y = MinibatchStdLayer(group_size=None, num_channels=2)(x)
    assert y.shape == (4, 8, 3, 3)
    for f, chans in enumerate(([0, 1, 2], [3, 4, 5])):
        std = (x[:, chans].var(dim=0, unbiased=False) + 1e-8).sqrt().mean()
        torch.testing.assert_close(y[:, 6 + f], std.expand(4, 3, 3))


def test_discriminator_projection_conditioning():
    D = tiny_D(16, c_dim=4)
    assert D.cmap_dim == 8  # default: the 4x4 channel count
    img = torch.randn(4, 3, 16, 16)
    c1, c2 = torch.randn(4, 4), torch.randn(4, 4)
    out1, out2 = D(img, c1), D(img, c2)
    assert out1.shape == (4, 1) and not torch.allclose(out1, out2)
    D0 = tiny_D(16, c_dim=0)
    assert D0(img, None).shape == (4, 1)
    assert D0(img, torch.zeros(4, 0)).shape == (4, 1)


@pytest.mark.parametrize("arch", ["resnet", "skip", "orig"])
def test_discriminator_architectures_and_batch_of_eight(arch):
    D = tiny_D(32, architecture=arch)
    assert D(torch.randn(8, 3, 32, 32), None).shape == (8, 1)


def test_freeze_layers_turns_weights_into_buffers():
    D = tiny_D(32, block_kwargs=dict(freeze_layers=4))  # b32 has 4 layers: fromrgb, conv0, conv1, skip
    names = {n for n, _ in D.named_parameters()}
    assert not any(n.startswith("b32.") for n in names) and "b16.conv0.weight" in names
    assert "b32.conv0.weight" in D.state_dict()


# ==========================================================================================================
# Double backprop (R1 and path-length regularisation).


def _check_grads(params):
    """All gradients that exist are finite; some are non-zero. (A regulariser on d(out)/d(in) leaves e.g.
    the last bias without a gradient: an additive constant does not change the input gradient.)"""
    grads = [p.grad for p in params if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


def test_discriminator_second_order_gradients():
    D = tiny_D(16, c_dim=2)
    img = torch.randn(4, 3, 16, 16, requires_grad=True)
    logits = D(img, torch.randn(4, 2))
    (grad,) = torch.autograd.grad(logits.sum(), img, create_graph=True)
    grad.square().sum().backward()
    _check_grads(list(D.parameters()))
    assert all(p.grad.abs().sum() > 0 for n, p in D.named_parameters() if n.endswith("weight"))


@pytest.mark.parametrize("fused", [True, False])
def test_generator_path_length_second_order_gradients(fused):
    G = tiny_G(16).train()
    set_noise_strength(G, 0.1)
    ws = G.mapping(torch.randn(2, 8), None).detach().requires_grad_(True)
    img = G.synthesis(ws, fused_modconv=fused)
    (grad,) = torch.autograd.grad((img * torch.randn_like(img)).sum(), ws, create_graph=True)
    grad.square().sum(2).mean(1).sqrt().mean().backward()
    _check_grads(list(G.synthesis.parameters()))
    assert all(p.grad.abs().sum() > 0 for n, p in G.synthesis.named_parameters() if n.endswith(("weight", "const")))


# ==========================================================================================================
# Reduced precision.


def _record_dtypes(module):
    seen = {}
    for name, sub in module.named_modules():
        if name.endswith(("conv1", "conv0")):
            sub.register_forward_hook(lambda m, i, o, name=name: seen.__setitem__(name, o.dtype))
    return seen


def test_bfloat16_layers_on_cpu_run_and_stay_finite():
    G = tiny_G(32, num_fp16_res=2, fp16_dtype="bfloat16", conv_clamp=256).eval()
    D = tiny_D(32, num_fp16_res=2, conv_clamp=256, fp16_dtype="bfloat16")
    seen_g, seen_d = _record_dtypes(G.synthesis), _record_dtypes(D)
    z = torch.randn(2, 8)
    img = G(z, None, noise_mode="const")
    assert img.dtype == torch.float32 and torch.isfinite(img).all()
    assert seen_g["b32.conv1"] == seen_g["b16.conv0"] == torch.bfloat16 and seen_g["b8.conv1"] == torch.float32
    ref = G(z, None, noise_mode="const", force_fp32=True)
    assert seen_g["b32.conv1"] == torch.float32
    assert (img - ref).abs().max() < 0.1 * ref.abs().max()
    logits = D(img, None)
    assert logits.dtype == torch.float32 and torch.isfinite(logits).all()
    assert seen_d["b32.conv1"] == torch.bfloat16 and seen_d["b8.conv1"] == torch.float32
    # Training step in bf16: gradients reach the fp32 parameters and stay finite.
    G.train()
    D(G(z, None), None).sum().backward()
    _check_grads(list(G.parameters()))


def test_float16_falls_back_to_float32_on_cpu():
    G = tiny_G(16, num_fp16_res=2, conv_clamp=256)
    seen = _record_dtypes(G.synthesis)
    G(torch.randn(2, 8), None)
    assert set(seen.values()) == {torch.float32}
    with pytest.raises(ValueError, match="fp16_dtype"):
        tiny_G(16, num_fp16_res=1, fp16_dtype="int8")
