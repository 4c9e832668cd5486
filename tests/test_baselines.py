"""The four baseline recipes: shapes, architecture, init, losses, clipping, gradient penalty, optimisers."""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import nn

from stylegan_anime.baselines.dcgan import DCGAN
from stylegan_anime.baselines.dcgan_tutorial import DCGANTutorial
from stylegan_anime.baselines.wgan import WGAN
from stylegan_anime.baselines.wgan_gp import WGANGP, gradient_penalty
from stylegan_anime.models import get_recipe
from stylegan_anime.training.config import ConfigError
from stylegan_anime.training.recipe import Batch, RecipeConfig, set_requires_grad

RECIPES = [DCGAN, DCGANTutorial, WGAN, WGANGP]
CPU = torch.device("cpu")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The nets here are tiny: a thread pool only costs time (a lot of it on a busy machine)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def make(cls, resolution=64, **overrides):
    torch.manual_seed(0)
    return cls(cls.make_config(**overrides), resolution, CPU)


def modules_of(net, *types):
    return [m for m in net.modules() if isinstance(m, types)]


class ConstG(nn.Module):
    """Ignores z; every fake is the constant image `value` of size `size` x `size`."""

    def __init__(self, value, size=8):
        super().__init__()
        self.value, self.size = value, size
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, z):
        return torch.full((z.shape[0], 3, self.size, self.size), self.value) + 0 * self.dummy


class MeanD(nn.Module):
    """D(x) = scale * mean over [C, H, W]: a known, linear score."""

    def __init__(self, scale):
        super().__init__()
        self.scale = scale

    def forward(self, x):
        return self.scale * x.mean(dim=(1, 2, 3))


class LinearCritic(nn.Module):
    """D(x) = <w, x> + b over flattened [3, 4, 4] images; its input gradient is w everywhere."""

    def __init__(self, w):
        super().__init__()
        self.fc = nn.Linear(w.numel(), 1)
        with torch.no_grad():
            self.fc.weight.copy_(w.view(1, -1))

    def forward(self, x):
        return self.fc(x.flatten(1)).view(-1)


def known_batch(n_size=8):
    """Reals whose per-sample mean is 0.25, 0.75, 1.0 (so MeanD(2) gives logits 0.5, 1.5, 2.0)."""
    reals = torch.tensor([0.25, 0.75, 1.0]).view(3, 1, 1, 1).expand(3, 3, n_size, n_size).clone()
    return Batch(z=torch.randn(3, 100), reals=reals)


# --- shapes, ranges, resolutions --------------------------------------------------------------------------
@pytest.mark.parametrize("resolution", [64, 128])
@pytest.mark.parametrize("cls", RECIPES)
def test_shapes_and_range(cls, resolution):
    r = make(cls, resolution, dim=4)
    assert r.z_dim == 100 and set(r.nets) == {"G", "D"} and set(r.opts) == {"G", "D"}
    z = torch.randn(3, r.z_dim) * 3  # large z: tanh output must still be inside [-1, 1]
    with torch.no_grad():
        img = r.generate(r.nets["G"], z)
        assert img.shape == (3, 3, resolution, resolution)
        assert img.min() >= -1 and img.max() <= 1
        score = r.nets["D"](img)
    assert score.shape == (3,)


@pytest.mark.parametrize("resolution", [16, 96, 512, 1024, 0])
@pytest.mark.parametrize("cls", RECIPES)
def test_unsupported_resolution(cls, resolution):
    """The fixed stacks stop at 256 px: one ConfigError (a one-line CLI error) naming the sizes they do."""
    with pytest.raises(ConfigError, match=r"trains at 32, 64, 128 or 256 px"):
        make(cls, resolution, dim=4)


@pytest.mark.parametrize("resolution", [32, 256])
@pytest.mark.parametrize("cls", RECIPES)
def test_extended_resolutions(cls, resolution):
    """One block fewer at 32 px, one more at 256 px: G makes [N, 3, R, R] and D reads it."""
    r = make(cls, resolution, dim=2)
    with torch.no_grad():
        img = r.generate(r.nets["G"], torch.randn(2, r.z_dim))
        assert img.shape == (2, 3, resolution, resolution)
        out = r.nets["D"](img)
    assert out.shape[0] == 2


@pytest.mark.parametrize("cls", RECIPES)
def test_registry(cls):
    assert get_recipe(cls.name) is cls


# --- architecture -------------------------------------------------------------------------------------------
def test_hw6_generator_parameter_count_and_structure():
    G = make(DCGAN).nets["G"]
    z, d = 100, 64
    expected = (
        z * (d * 8 * 4 * 4)  # Linear, no bias: 819,200
        + 2 * d * 8 * 4 * 4  # BatchNorm1d weight + bias: 16,384
        + (d * 8) * (d * 4) * 5 * 5 + 2 * d * 4  # ConvT 512->256 k5, no bias, + BN: 3,276,800 + 512
        + (d * 4) * (d * 2) * 5 * 5 + 2 * d * 2  # ConvT 256->128: 819,200 + 256
        + (d * 2) * d * 5 * 5 + 2 * d  # ConvT 128->64: 204,800 + 128
        + d * 3 * 5 * 5 + 3  # ConvT 64->3 with bias: 4,803
    )
    assert expected == 5_142_083
    assert sum(p.numel() for p in G.parameters()) == expected

    linear = modules_of(G, nn.Linear)
    assert len(linear) == 1 and linear[0].bias is None and linear[0].in_features == 100
    assert linear[0].out_features == 512 * 16
    assert len(modules_of(G, nn.BatchNorm1d)) == 1
    convs = modules_of(G, nn.ConvTranspose2d)
    assert [(c.in_channels, c.out_channels) for c in convs] == [(512, 256), (256, 128), (128, 64), (64, 3)]
    for c in convs:
        assert (c.kernel_size, c.stride, c.padding, c.output_padding) == ((5, 5), (2, 2), (2, 2), (1, 1))
    assert [c.bias is None for c in convs] == [True, True, True, False]  # only the RGB layer has a bias
    assert len(modules_of(G, nn.BatchNorm2d)) == 3 and len(modules_of(G, nn.ReLU)) == 4
    assert isinstance(list(G.modules())[-1], nn.Tanh)


def test_hw6_discriminator_structure():
    D = make(DCGAN).nets["D"]
    convs = modules_of(D, nn.Conv2d)
    assert [(c.in_channels, c.out_channels) for c in convs] == [(3, 64), (64, 128), (128, 256), (256, 512), (512, 1)]
    for c in convs[:-1]:
        assert (c.kernel_size, c.stride, c.padding) == ((5, 5), (2, 2), (2, 2)) and c.bias is not None
    assert (convs[-1].kernel_size, convs[-1].stride, convs[-1].padding) == ((4, 4), (1, 1), (0, 0))
    assert len(modules_of(D, nn.BatchNorm2d)) == 3
    lrelus = modules_of(D, nn.LeakyReLU)
    assert len(lrelus) == 4 and all(m.negative_slope == 0.2 for m in lrelus)
    assert not modules_of(D, nn.Sigmoid)  # D returns logits; the sigmoid lives in the BCE loss


def test_tutorial_structure():
    r = make(DCGANTutorial)
    G, D = r.nets["G"], r.nets["D"]
    convs = modules_of(G, nn.ConvTranspose2d)
    assert [(c.in_channels, c.out_channels) for c in convs] == [(100, 512), (512, 256), (256, 128), (128, 64),
                                                                 (64, 3)]
    assert (convs[0].kernel_size, convs[0].stride, convs[0].padding) == ((4, 4), (1, 1), (0, 0))
    for c in convs[1:]:
        assert (c.kernel_size, c.stride, c.padding, c.output_padding) == ((4, 4), (2, 2), (1, 1), (0, 0))
    assert not modules_of(G, nn.Linear)
    dconvs = modules_of(D, nn.Conv2d)
    assert [(c.in_channels, c.out_channels) for c in dconvs] == [(3, 64), (64, 128), (128, 256), (256, 512),
                                                                 (512, 1)]
    for c in dconvs[:-1]:
        assert (c.kernel_size, c.stride, c.padding) == ((4, 4), (2, 2), (1, 1))
    assert all(c.bias is None for c in convs + dconvs)
    assert len(modules_of(G, nn.BatchNorm2d)) == 4 and len(modules_of(D, nn.BatchNorm2d)) == 3


@pytest.mark.parametrize("cls", RECIPES)
def test_128px_adds_one_block(cls):
    r64, r128 = make(cls, 64, dim=4), make(cls, 128, dim=4)
    for net in ("G", "D"):
        assert len(r128.nets[net].body) == len(r64.nets[net].body) + 1 == 4
    d_convs = modules_of(r128.nets["D"], nn.Conv2d)
    assert d_convs[-1].in_channels == 4 * 16  # D goes up to dim*16
    g_convs = modules_of(r128.nets["G"], nn.ConvTranspose2d)
    assert [c.out_channels for c in g_convs][-5:] == [32, 16, 8, 4, 3]  # G starts from dim*16
    if cls is not DCGANTutorial:
        assert modules_of(r128.nets["G"], nn.Linear)[0].out_features == 4 * 16 * 4 * 4


# --- init ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [DCGAN, DCGANTutorial])
def test_init_statistics(cls):
    r = make(cls)
    for net in r.nets.values():
        for m in modules_of(net, nn.Conv2d, nn.ConvTranspose2d, nn.Linear):
            w = m.weight.detach()
            if w.numel() >= 10_000:  # enough samples for tight bounds (PyTorch's default init differs)
                assert abs(w.std().item() - 0.02) < 1e-3 and abs(w.mean().item()) < 1e-3
        bns = modules_of(net, nn.BatchNorm1d, nn.BatchNorm2d)
        weights = torch.cat([m.weight.detach() for m in bns])
        assert abs(weights.mean().item() - 1) < 3e-3 and abs(weights.std().item() - 0.02) < 4e-3
        assert all(torch.all(m.bias == 0) for m in bns)
    rgb = r.nets["G"].to_rgb.weight.detach()  # small layer: still clearly N(0, 0.02), not the default init
    assert rgb.abs().max() < 0.02 * 6


# --- losses on known inputs ---------------------------------------------------------------------------------
def softplus(v):
    return math.log1p(math.exp(v))


@pytest.mark.parametrize("cls, scale", [(DCGAN, 0.5), (DCGANTutorial, 1.0)])
def test_bce_losses(cls, scale):
    r = make(cls, dim=4)
    r.nets["G"], r.nets["D"] = ConstG(-0.25), MeanD(2.0)  # fake logits -0.5, real logits 0.5, 1.5, 2.0
    batch = known_batch()
    real_logits, fake_logit = [0.5, 1.5, 2.0], -0.5
    bce_real = sum(softplus(-v) for v in real_logits) / 3  # -log sigmoid(v)
    bce_fake = softplus(fake_logit)  # -log(1 - sigmoid(f))
    out = r.phases[0].loss(batch)
    assert out["loss"].item() == pytest.approx(scale * (bce_real + bce_fake), rel=1e-6)
    assert out["D_real"].item() == pytest.approx(sum(1 / (1 + math.exp(-v)) for v in real_logits) / 3, rel=1e-6)
    assert out["D_fake"].item() == pytest.approx(1 / (1 + math.exp(-fake_logit)), rel=1e-6)
    out = r.phases[1].loss(Batch(z=batch.z))
    assert out["loss"].item() == pytest.approx(softplus(-fake_logit), rel=1e-6)  # BCE(D(G(z)), 1)
    assert all(v.dim() == 0 and not v.requires_grad for k, v in out.items() if k != "loss")


def test_wgan_losses():
    r = make(WGAN, dim=4)
    r.nets["G"], r.nets["D"] = ConstG(-0.25), MeanD(2.0)
    out = r.phases[0].loss(known_batch())
    e_real, e_fake = (0.5 + 1.5 + 2.0) / 3, -0.5
    assert out["loss"].item() == pytest.approx(-e_real + e_fake, rel=1e-6)
    assert out["wdist"].item() == pytest.approx(e_real - e_fake, rel=1e-6)
    assert out["D_real"].item() == pytest.approx(e_real) and out["D_fake"].item() == pytest.approx(e_fake)
    assert r.phases[1].loss(Batch(z=torch.randn(3, 100)))["loss"].item() == pytest.approx(-e_fake)


def test_wgan_gp_losses():
    r = make(WGANGP, dim=4)
    r.nets["G"], r.nets["D"] = ConstG(-0.25), MeanD(2.0)  # linear critic, ||w|| = 2 / sqrt(3*8*8)
    out = r.phases[0].loss(known_batch())
    e_real, e_fake = (0.5 + 1.5 + 2.0) / 3, -0.5
    gp = (2 / math.sqrt(192) - 1) ** 2
    assert out["gp"].item() == pytest.approx(gp, rel=1e-5)
    assert out["wdist"].item() == pytest.approx(e_real - e_fake, rel=1e-6)
    assert out["loss"].item() == pytest.approx(e_fake - e_real + 10 * gp, rel=1e-5)
    assert r.phases[1].loss(Batch(z=torch.randn(3, 100)))["loss"].item() == pytest.approx(-e_fake)


# --- WGAN clipping ------------------------------------------------------------------------------------------
def test_wgan_after_step_clamps_every_critic_parameter():
    r = make(WGAN, dim=4)
    D, G = r.nets["D"], r.nets["G"]
    params = list(D.parameters())
    with torch.no_grad():
        for i, p in enumerate(params):
            p.fill_(1.0 if i % 2 else -1.0)
        params[0].view(-1)[0] = 0.003  # an in-range value stays
    g_before = [p.detach().clone() for p in G.parameters()]
    phase = r.phases[0]
    assert phase.after_step is not None
    phase.after_step()
    assert all(p.abs().max().item() <= 0.01 for p in params)
    assert params[0].view(-1)[0].item() == pytest.approx(0.003)
    assert params[1].view(-1)[0].item() == pytest.approx(0.01) and params[0].view(-1)[1].item() == pytest.approx(-0.01)
    assert all(torch.equal(a, b) for a, b in zip(g_before, G.parameters()))  # G is not clipped
    r2 = make(WGAN, dim=4, clip=0.5)
    with torch.no_grad():
        for p in r2.nets["D"].parameters():
            p.fill_(-2.0)
    r2.phases[0].after_step()
    assert all(torch.all(p == -0.5) for p in r2.nets["D"].parameters())


# --- WGAN-GP ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("norm_w", [1.0, 0.5, 3.0])
def test_gradient_penalty_linear_critic(norm_w):
    torch.manual_seed(1)
    w = torch.randn(48)
    D = LinearCritic(w / w.norm() * norm_w)
    reals, fakes = torch.rand(5, 3, 4, 4), torch.rand(5, 3, 4, 4)
    expected = (norm_w - 1) ** 2
    assert gradient_penalty(D, reals, fakes).item() == pytest.approx(expected, abs=1e-6)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the penalty runs in float32 regardless
        gp = gradient_penalty(D, reals.bfloat16(), fakes.bfloat16())
    assert gp.dtype == torch.float32 and gp.item() == pytest.approx(expected, abs=1e-6)


def test_gradient_penalty_trains_the_critic():
    """d(loss_D)/dw with gp_weight 10 minus with gp_weight 0 = 10 * 2 (||w|| - 1) w / ||w|| (create_graph)."""
    torch.manual_seed(2)
    w = torch.randn(48)
    w = w / w.norm() * 2.5
    r = make(WGANGP, dim=4)
    batch = Batch(z=torch.randn(4, 100), reals=torch.rand(4, 3, 4, 4))
    grads = {}
    for lam in (10.0, 0.0):
        r.cfg.gp_weight = lam
        r.nets["G"], r.nets["D"] = ConstG(0.3, size=4), LinearCritic(w)
        r.phases[0].loss(batch)["loss"].backward()
        grads[lam] = r.nets["D"].fc.weight.grad.view(-1).clone()
    expected = 10 * 2 * (2.5 - 1) * w / w.norm()
    assert torch.allclose(grads[10.0] - grads[0.0], expected, atol=1e-5)
    assert r.nets["G"].dummy.grad is None  # D's step does not reach G


def test_wgan_gp_critic_norms():
    layer = make(WGANGP, dim=4).nets["D"]
    assert not modules_of(layer, nn.BatchNorm2d, nn.BatchNorm1d)
    gns = modules_of(layer, nn.GroupNorm)
    assert len(gns) == 3 and all(m.num_groups == 1 for m in gns)
    x = torch.randn(4, 3, 64, 64)
    with torch.no_grad():  # per-sample: a sample's score does not depend on the rest of the batch
        assert torch.allclose(layer(x)[:1], layer(x[:1]), atol=1e-5)
    inst = make(WGANGP, dim=4, critic_norm="instance").nets["D"]
    ins = modules_of(inst, nn.InstanceNorm2d)
    assert len(ins) == 3 and all(m.affine for m in ins) and not modules_of(inst, nn.BatchNorm2d)
    none = make(WGANGP, dim=4, critic_norm="none").nets["D"]
    assert not modules_of(none, nn.BatchNorm2d, nn.GroupNorm, nn.InstanceNorm2d)
    assert len(modules_of(make(WGANGP, dim=4).nets["G"], nn.BatchNorm2d)) == 3  # G keeps BatchNorm
    with pytest.raises(ValueError, match="critic_norm"):
        make(WGANGP, dim=4, critic_norm="batch")


# --- configs, optimisers, phases ----------------------------------------------------------------------------
DEFAULTS = {
    DCGAN: dict(batch=64, z_dim=100, dim=64, lr_g=1e-4, lr_d=1e-4, beta1=0.5, beta2=0.999, n_critic=1),
    DCGANTutorial: dict(batch=128, z_dim=100, dim=64, lr_g=2e-4, lr_d=2e-4, beta1=0.5, beta2=0.999, n_critic=1),
    WGAN: dict(batch=64, z_dim=100, dim=64, lr_g=5e-5, lr_d=5e-5, n_critic=5, clip=0.01),
    WGANGP: dict(batch=64, z_dim=100, dim=64, lr_g=1e-4, lr_d=1e-4, beta1=0.0, beta2=0.9, n_critic=5,
                 gp_weight=10.0, critic_norm="layer"),
}


@pytest.mark.parametrize("cls", RECIPES)
def test_config_defaults(cls):
    cfg = cls.make_config()
    assert isinstance(cfg, RecipeConfig)
    values = dataclasses.asdict(cfg)
    assert {k: values[k] for k in DEFAULTS[cls]} == DEFAULTS[cls]
    assert set(values) == set(DEFAULTS[cls]) | {"ema_kimg", "ema_rampup"}
    for f in dataclasses.fields(cfg):
        assert f.metadata.get("help")


def test_shared_fields_agree_across_models():
    seen = {}
    for cls in RECIPES:
        for f in dataclasses.fields(cls.Config):
            key = (str(f.type), f.metadata["help"], f.metadata.get("choices"))
            assert seen.setdefault(f.name, key) == key, f.name
    assert WGANGP.Config.__dataclass_fields__["critic_norm"].metadata["choices"] == ("layer", "instance", "none")


@pytest.mark.parametrize("cls, opt_type, lr, betas", [
    (DCGAN, torch.optim.Adam, 1e-4, (0.5, 0.999)),
    (DCGANTutorial, torch.optim.Adam, 2e-4, (0.5, 0.999)),
    (WGAN, torch.optim.RMSprop, 5e-5, None),
    (WGANGP, torch.optim.Adam, 1e-4, (0.0, 0.9)),
])
def test_optimisers_and_phases(cls, opt_type, lr, betas):
    r = make(cls, dim=4)
    for net in ("G", "D"):
        opt = r.opts[net]
        assert type(opt) is opt_type
        group = opt.param_groups[0]
        assert group["lr"] == lr and (betas is None or group["betas"] == betas)
        assert [id(p) for p in group["params"]] == [id(p) for p in r.nets[net].parameters()]
    d, g = r.phases
    assert (d.name, d.net, d.repeats, d.needs_reals, d.interval) == ("D", "D", DEFAULTS[cls]["n_critic"], True, 1)
    assert (g.name, g.net, g.repeats, g.needs_reals, g.interval) == ("G", "G", 1, False, 1)
    assert (d.after_step is not None) == (cls is WGAN) and g.after_step is None
    r = make(cls, dim=4, lr_g=3e-3, lr_d=7e-3, n_critic=2)
    assert r.opts["G"].param_groups[0]["lr"] == 3e-3 and r.opts["D"].param_groups[0]["lr"] == 7e-3
    assert r.phases[0].repeats == 2


# --- one training iteration as the trainer runs it (bf16 autocast on CPU) ---------------------------------
@pytest.mark.parametrize("cls", RECIPES)
def test_training_iteration_under_autocast(cls):
    r = make(cls, dim=4)
    reals = torch.rand(4, 3, 64, 64) * 2 - 1
    for phase in r.phases:
        for net_name, net in r.nets.items():
            set_requires_grad(net, net_name == phase.net)
        net = r.nets[phase.net]
        before = [p.detach().clone() for p in net.parameters()]
        for opt in r.opts.values():
            opt.zero_grad(set_to_none=True)
        batch = Batch(z=torch.randn(4, r.z_dim), reals=reals if phase.needs_reals else None)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = phase.loss(batch)
        assert out["loss"].dim() == 0 and torch.isfinite(out["loss"])
        out["loss"].backward()
        r.opts[phase.net].step()
        if phase.after_step:
            phase.after_step()
        other = r.nets["D" if phase.net == "G" else "G"]
        assert all(p.grad is None for p in other.parameters())
        assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))
        if cls is WGAN and phase.net == "D":
            assert all(p.abs().max() <= 0.01 for p in net.parameters())
