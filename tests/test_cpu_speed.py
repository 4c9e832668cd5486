"""CPU speed levers (training/cpu_speed.py, issue #22): each gives the numbers of the plain fp32 eager loop within a
stated tolerance; the FLOP counter and the peak are right on cases worked out by hand."""
from __future__ import annotations

import copy
import importlib
import tempfile

import pytest
import torch

from stylegan_anime.training import cpu_speed

# channels_last is a memory layout: oneDNN sums in another order, nothing else changes. fp32 rounding through a
# few layers and Adam's first step (which normalises by the gradient's magnitude) stays far below 1e-4.
CL_RTOL, CL_ATOL = 1e-4, 1e-5


def _trainer(**over):
    """A tiny `cpu`-preset trainer; float32 NCHW (the loop before issue #22's defaults) unless `over` says more."""
    from stylegan_anime.benchmarks.training import _bench_trainer
    torch.manual_seed(0)
    over = {**dict(preset="cpu", channel_base=256, channel_max=16, z_dim=16, w_dim=16, fp16_dtype="float16",
                   channels_last=False), **over}
    return _bench_trainer("stylegan2", 32, device="cpu", batch=4, batch_gpu=None, amp="off", overrides=over,
                          workdir=tempfile.mkdtemp(prefix="cpu-speed-test-"))


def _state(t):
    return {k: torch.cat([p.detach().flatten() for p in net.parameters()]) for k, net in
            [("G", t.G), ("D", t.recipe.nets["D"]), ("G_ema", t.G_ema)]}


@pytest.mark.parametrize("how", ["recipe default", "use_channels_last"])
def test_channels_last_trains_the_same_numbers(how):
    """Two trainers from the same seed, one with channels_last (the recipe's default on a CPU since issue #22, or
    the lever applied afterwards): after a full lazy-cycle-start step (G, D, Dreg) and a plain one, weights,
    G_ema and the D losses agree."""
    a = _trainer()
    if how == "recipe default":
        b = _trainer(channels_last=True)
    else:
        b = _trainer()
        cpu_speed.use_channels_last(b)
    convs = [p for p in b.recipe.nets["D"].parameters() if p.ndim == 4 and p.shape[-1] > 1]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    assert all(p.is_contiguous() for p in a.recipe.nets["D"].parameters())
    before = _state(a)
    for t in (a, b):
        torch.manual_seed(1)  # the same noise inputs (drawn from the global stream) in both
        t.step()
        t.step()
    sa, sb = _state(a), _state(b)
    for k in sa:
        assert not torch.equal(sa[k], before[k]), f"{k} did not train"
        torch.testing.assert_close(sb[k], sa[k], rtol=CL_RTOL, atol=CL_ATOL, msg=f"{k} differs with channels_last")
    # The layout survives training (Adam's moments and updates keep it).
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)


def test_flop_counter_counts_conv_forward_backward_and_double_backward():
    N, C, O, H, k = 2, 3, 5, 8, 3
    x = torch.randn(N, C, H, H, requires_grad=True)
    w = torch.randn(O, C, k, k, requires_grad=True)
    fwd = 2 * N * O * C * k * k * H * H  # 'same' padding: H x H outputs, each C*k*k multiply-adds
    with cpu_speed.FlopCounter() as fc:
        y = torch.nn.functional.conv2d(x, w, padding=1)
    assert fc.total == fwd
    with cpu_speed.FlopCounter() as fc:
        y.square().sum().backward()
    assert fc.total == 2 * fwd  # grad input + grad weight, each the size of the forward
    with cpu_speed.FlopCounter() as fc:  # R1-style: autograd.grad with create_graph, then backward through it
        y = torch.nn.functional.conv2d(x, w, padding=1)
        (g,) = torch.autograd.grad(y.sum(), x, create_graph=True)
        g.square().sum().backward()
    assert fc.total >= 4 * fwd and fc.by_op["convolution_backward"] > 0


def test_cpu_peak_from_flags():
    def info(flags, mhz=2000.0):
        return f"model name\t: Test CPU\ncpu MHz\t\t: {mhz}\nflags\t\t: {flags}\n"
    p = cpu_speed.cpu_peak(info("fpu avx2 fma avx512f avx512_bf16 amx_bf16", 2600.0))
    assert (p.fp32_gflops, p.bf16_gflops, p.amx_gflops) == pytest.approx((166.4, 332.8, 2662.4))
    p = cpu_speed.cpu_peak(info("fpu avx2 fma"))
    assert (p.fp32_gflops, p.bf16_gflops, p.amx_gflops) == pytest.approx((64.0, 64.0, 0.0))
    assert cpu_speed.cpu_peak().fp32_gflops > 0  # this machine's /proc/cpuinfo parses


@pytest.mark.parametrize("up", [1, 2])
def test_grouped_modconv_equals_scale_activations_float64(up):
    """The two formulations of the modulated convolution (per-sample weights in one grouped convolution, and
    scaling the activations around the shared weight) are one function: float64 agreement to 1e-12, values and
    gradients, plain and upsampling (what use_fused_modconv switches training to)."""
    from stylegan_anime.stylegan2.layers import make_resample_filter, modulated_conv2d
    g = torch.Generator().manual_seed(0)
    f = make_resample_filter().double()
    args = [torch.randn(3, 5, 8, 8, generator=g, dtype=torch.float64, requires_grad=True),
            torch.randn(4, 5, 3, 3, generator=g, dtype=torch.float64, requires_grad=True),
            torch.randn(3, 5, generator=g, dtype=torch.float64, requires_grad=True)]
    outs = []
    for fused in (False, True):
        y = modulated_conv2d(*args, up=up, padding=1, resample_filter=f, flip_weight=up == 1, fused_modconv=fused)
        outs.append((y,) + torch.autograd.grad(y.square().sum(), args))
    for a, b in zip(*outs):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


# G's synthesis computes in float32 whatever its weights (it casts ws), so the whole-network check is float32:
# summation order only, far below 1e-4 of the image's scale.
FUSED_RTOL, FUSED_ATOL = 1e-4, 1e-5


@pytest.mark.parametrize("min_res", [8, 32])
def test_fused_modconv_in_training_gives_the_same_images_and_gradients(min_res):
    t = _trainer()
    G = t.recipe.nets["G"].train()
    ws = torch.randn(4, G.num_ws, 16, generator=torch.Generator().manual_seed(3))

    def run():
        G.zero_grad(set_to_none=True)
        img = G.synthesis(ws, noise_mode="const")
        img.square().sum().backward()
        return img.detach(), torch.cat([p.grad.flatten() for p in G.synthesis.parameters() if p.grad is not None])

    ref_img, ref_grad = run()
    cpu_speed.use_fused_modconv(t, min_res=min_res)
    calls = []
    block = getattr(G.synthesis, f"b{min_res}")
    hook = block.conv1.register_forward_hook(lambda m, a, k, out: calls.append(k.get("fused_modconv")),
                                             with_kwargs=True)
    img, grad = run()
    hook.remove()
    assert calls == [True], "the lever did not reach the block"
    torch.testing.assert_close(img, ref_img, rtol=FUSED_RTOL, atol=FUSED_ATOL)
    torch.testing.assert_close(grad, ref_grad, rtol=FUSED_RTOL, atol=FUSED_ATOL * float(ref_grad.abs().max()))


def _compile_ab(backend):
    a, b = _trainer(), _trainer()
    cpu_speed.compile_forward(b, backend=backend)
    for t in (a, b):
        torch.manual_seed(1)
        t.step()  # iteration 0: G, D and Dreg (R1's double backward, which must run eagerly)
    sa, sb = _state(a), _state(b)
    return b, sa, sb


def test_compile_routes_double_backward_phases_eagerly():
    """compile_forward with dynamo's 'eager' backend (traced graphs, no code generation: fast): G and D phases
    call the compiled modules, Dreg the eager ones, and the weights after a G + D + R1 step equal the plain loop's
    (the same ops in the same order: 1e-6)."""
    b, sa, sb = _compile_ab("eager")
    compiled, eager = b.compiled_switch.calls
    assert compiled >= 3 and eager >= 1  # G phase: synthesis + D; D phase: synthesis + 2 D; Dreg: D
    for k in sa:
        torch.testing.assert_close(sb[k], sa[k], rtol=1e-6, atol=1e-6, msg=f"{k} differs when compiled")


@pytest.mark.skipif(not __import__("os").environ.get("SGA_COMPILE_TESTS"),
                    reason="inductor compiles C++ for minutes on a CPU: set SGA_COMPILE_TESTS=1")
def test_inductor_compile_trains_the_same_numbers():
    """Inductor (C++ on a CPU) with its random numbers drawn as eager draws them (fallback_random): weights after a
    G + D + R1 step within 1e-4 (fused element-wise work rounds differently; Adam's first step is ~lr * sign(g))."""
    import torch._inductor.config as inductor_config
    old, inductor_config.fallback_random = inductor_config.fallback_random, True
    try:
        _, sa, sb = _compile_ab("inductor")
    finally:
        inductor_config.fallback_random = old
    for k in sa:
        torch.testing.assert_close(sb[k], sa[k], rtol=1e-4, atol=1e-4, msg=f"{k} differs when compiled")


def test_apply_names_the_levers():
    t = _trainer()
    assert cpu_speed.apply(t, "fused_modconv, channels_last") == ["channels_last", "fused_modconv"]
    with pytest.raises(ValueError, match="unknown CPU lever.*bogus"):
        cpu_speed.apply(t, "bogus")


def test_demodulation_regrouped_equals_the_per_sample_sum_float64():
    """sum_i s[n,i]^2 * sum_k w[o,i,k]^2 (the regrouped sum training uses since issue #22) is the per-sample
    weights' sum of squares: values and gradients to 1e-12 in float64."""
    from stylegan_anime.stylegan2.layers import _demod_coefs
    g = torch.Generator().manual_seed(0)
    weight = torch.randn(6, 5, 3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    styles = torch.randn(4, 5, generator=g, dtype=torch.float64, requires_grad=True)
    outs = []
    for per_sample in (True, False):
        w = weight.unsqueeze(0) * styles.reshape(4, 1, 5, 1, 1) if per_sample else None
        d = _demod_coefs(weight, styles, w)
        assert d.shape == (4, 6)
        outs.append((d,) + torch.autograd.grad((d * torch.arange(24.0, dtype=d.dtype).reshape(4, 6)).sum(),
                                               [weight, styles]))
    for a, b in zip(*outs):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("up", [1, 2])
def test_modconv_evaluation_order_of_issue_22_is_the_same_function_float64(up, monkeypatch):
    """The non-fused modulated convolution with the regrouped demodulation and x * d + noise in one pass equals
    the order before (layers.MODCONV_REGROUPED = False): float64, values and gradients (noise included), 1e-12."""
    from stylegan_anime.stylegan2 import layers
    g = torch.Generator().manual_seed(1)
    f = layers.make_resample_filter().double()
    x = torch.randn(3, 5, 8, 8, generator=g, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(4, 5, 3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    styles = torch.randn(3, 5, generator=g, dtype=torch.float64, requires_grad=True)
    noise = torch.randn(3, 1, 8 * up, 8 * up, generator=g, dtype=torch.float64, requires_grad=True)
    outs = []
    for regrouped in (False, True):
        monkeypatch.setattr(layers, "MODCONV_REGROUPED", regrouped)
        y = layers.modulated_conv2d(x, weight, styles, noise=noise, up=up, padding=1, resample_filter=f,
                                    flip_weight=up == 1, fused_modconv=False)
        outs.append((y,) + torch.autograd.grad(y.square().sum(), [x, weight, styles, noise]))
    for a, b in zip(*outs):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_cpu_preset_trains_in_bfloat16_and_channels_last_on_a_cpu():
    """The `cpu` preset's defaults (issue #22): bfloat16 blocks (the top num_fp16_res resolutions; float16 would
    fall back to float32 on a CPU) and channels_last weights; other presets keep float16; both switch off."""
    from stylegan_anime.stylegan2.recipe import StyleGAN2Config, resolve
    assert resolve(StyleGAN2Config(preset="cpu"), 64).fp16_dtype == "bfloat16"
    assert resolve(StyleGAN2Config(preset="auto"), 64).fp16_dtype == "float16"
    assert resolve(StyleGAN2Config(preset="cpu", fp16_dtype="float16"), 64).fp16_dtype == "float16"
    t = _trainer(fp16_dtype=None, channels_last=True)
    G = t.recipe.nets["G"]
    assert G.synthesis.b32.fp16_dtype == torch.bfloat16 and G.synthesis.b32.use_fp16
    dtypes = []
    hook = G.synthesis.b32.conv1.register_forward_hook(lambda m, a, out: dtypes.append(out.dtype))
    G.synthesis(torch.randn(2, G.num_ws, 16))
    hook.remove()
    assert dtypes == [torch.bfloat16]
    convs = [p for net in (G, t.recipe.nets["D"], t.G_ema) for p in net.parameters() if p.ndim == 4 and p.shape[-1] > 1]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    flat = _trainer()
    assert all(p.is_contiguous() for p in flat.recipe.nets["G"].parameters())


def test_train_on_a_cpu_takes_the_fused_cpu_kernels_by_default(tmp_path, capsys, monkeypatch):
    """`train` (stylegan2, --ops auto) on a CPU runs the fused CPU kernels for a long run, says so, and leaves the
    process's op default as it was; a short run and --ops ref keep the reference."""
    from conftest import TINY_STYLEGAN2, train_run

    train_cli = importlib.import_module("stylegan_anime.cli.train")
    from stylegan_anime.cuda_ops import backend, get_default_impl

    def impls(*args):
        backend.record_usage(True)
        try:
            train_run(*args)
        finally:
            usage = backend.record_usage(False) or {}
        return {impl for (op, impl, dtype) in usage}

    before = get_default_impl()
    backend.prefer_cpu_kernels(lambda line: None)  # built and self-tested first (the self-test calls the reference)
    backend.set_default_impl(before)
    assert impls(tmp_path / "short", *TINY_STYLEGAN2, "--kimg", "0.008") == {"ref"}
    assert "a short run" in "".join(capsys.readouterr())
    monkeypatch.setattr(train_cli, "LONG_RUN_KIMG64", 0.001)  # a long run, cut to a few steps
    assert impls(tmp_path / "auto", *TINY_STYLEGAN2, "--kimg", "0.008") == {"cpu"}
    assert "ops: the fused CPU kernels" in "".join(capsys.readouterr())
    assert get_default_impl() == before
    assert impls(tmp_path / "ref", *TINY_STYLEGAN2, "--kimg", "0.008", "--ops", "ref") == {"ref"}
    assert "fused CPU kernels" not in "".join(capsys.readouterr())


def test_fused_cpu_kernels_that_cannot_build_fall_back_with_one_line(monkeypatch):
    from stylegan_anime.cuda_ops import backend, build, get_default_impl
    monkeypatch.setattr(build, "plugin_status", lambda op: ("not tried", ""))

    def fail(op):
        raise build.PluginUnavailable(op, "toolchain", "no C++ compiler (g++) on PATH")
    monkeypatch.setattr(build, "get_plugin", fail)
    said = []
    before = get_default_impl()
    assert backend.prefer_cpu_kernels(said.append) == "ref"
    assert get_default_impl() == before
    assert len(said) == 2 and said[0].startswith("building the fused CPU kernels")
    assert "unavailable" in said[1] and "no C++ compiler" in said[1] and "reference ops" in said[1]


def test_a_long_cpu_run_is_decided_from_the_command():
    from types import SimpleNamespace as NS

    from stylegan_anime.cli.train import long_cpu_run
    assert not long_cpu_run(NS(kimg=4, size=64, minutes=None))  # the README's try-it
    assert long_cpu_run(NS(kimg=1e6, size=64, minutes=60))  # the reference protocol
    assert long_cpu_run(NS(kimg=3, size=128, minutes=None))  # 12 kimg at 64 px's cost
    assert not long_cpu_run(NS(kimg=1e6, size=64, minutes=2))
