"""StyleGAN2 as a recipe: presets, lazy-regularisation bookkeeping, style mixing, R1 / path length, runs."""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from stylegan_anime.stylegan2.recipe import StyleGAN2, StyleGAN2Config, resolve
from stylegan_anime.training.recipe import Batch

TINY = dict(z_dim=16, w_dim=16, channel_base=256, channel_max=16, batch=8, num_fp16_res=0)


def tiny(resolution=64, **kw):
    return StyleGAN2(StyleGAN2.make_config(**{**TINY, **kw}), resolution, torch.device("cpu"))


def test_auto_and_paper_presets():
    auto64 = resolve(StyleGAN2Config(), 64)
    assert (auto64.batch, auto64.map_layers, auto64.channel_base, auto64.channel_max) == (32, 2, 16384, 512)
    assert auto64.gamma == pytest.approx(0.0002 * 64 ** 2 / 32) and auto64.lr == 0.0025
    assert auto64.ema_kimg == pytest.approx(10.0) and auto64.ema_rampup == 0.05
    assert (auto64.beta1, auto64.beta2) == (0.0, 0.99)
    assert resolve(StyleGAN2Config(), 128).gamma == pytest.approx(0.0002 * 128 ** 2 / 32)
    assert resolve(StyleGAN2Config(batch=64), 128).ema_kimg == pytest.approx(20.0)
    paper = resolve(StyleGAN2Config(preset="paper"), 64)
    assert paper.map_layers == 8 and paper.gamma == 10.0
    assert resolve(StyleGAN2Config(gamma=3.0, map_layers=4), 64).gamma == 3.0  # a flag beats the preset



def test_cpu_preset():
    """The measured CPU preset (docs/quality.md): narrow widths, no path length, no mixing; a flag still wins."""
    cpu = resolve(StyleGAN2Config(preset="cpu"), 64)
    assert (cpu.channel_base, cpu.channel_max, cpu.map_layers) == (1024, 64, 2)
    assert cpu.pl_weight == 0 and cpu.style_mixing == 0
    assert cpu.gamma == pytest.approx(0.0002 * 64 ** 2 / 16) and cpu.lr == 0.0025
    assert cpu.batch == 16 and cpu.ema_kimg == pytest.approx(16 * 10 / 32) and cpu.ema_rampup == 0.05
    assert resolve(StyleGAN2Config(preset="cpu", pl_weight=2.0, channel_max=32), 64).pl_weight == 2.0
    r = tiny(preset="cpu", channel_base=None, channel_max=None, z_dim=512, w_dim=512)
    assert [p.name for p in r.phases] == ["G", "D", "Dreg"]  # no path-length phase
    channels = {b.resolution: b.out_channels for b in r.nets["G"].synthesis.children()}
    assert channels == {4: 64, 8: 64, 16: 64, 32: 32, 64: 16}
    for preset in ("auto", "paper", "cpu"):  # every preset fills every None field
        assert None not in dataclasses.astuple(resolve(StyleGAN2Config(preset=preset), 128))
    assert StyleGAN2.resolve_config(StyleGAN2Config(preset="cpu"), 64) == cpu  # what config.json stores

def test_lazy_regularisation_adjusts_optimisers_and_phases():
    r = tiny()
    g, d = r.opts["G"].param_groups[0], r.opts["D"].param_groups[0]
    assert g["lr"] == pytest.approx(0.0025 * 4 / 5) and d["lr"] == pytest.approx(0.0025 * 16 / 17)
    assert g["betas"] == pytest.approx((0.0, 0.99 ** (4 / 5))) and d["betas"] == pytest.approx((0.0, 0.99 ** (16 / 17)))
    assert [(p.name, p.net, p.interval, p.needs_reals) for p in r.phases] == [
        ("G", "G", 1, False), ("Greg", "G", 4, False), ("D", "D", 1, True), ("Dreg", "D", 16, True)]
    off = tiny(gamma=0.0, pl_weight=0.0)
    assert [p.name for p in off.phases] == ["G", "D"]
    assert off.opts["G"].param_groups[0]["lr"] == pytest.approx(0.0025)


def test_style_mixing_switches_ws_at_the_cutoff(monkeypatch):
    r = tiny(style_mixing=1.0)
    G = r.nets["G"]
    z = torch.randn(4, 16)
    cutoff = 3
    monkeypatch.setattr(torch, "randint", lambda lo, hi, size, device=None: torch.tensor(cutoff))
    torch.manual_seed(5)
    ws = r.mapping_with_mixing(z)
    base = G.mapping(z, r._c(4))
    assert ws.shape == base.shape and ws.shape[1] == G.num_ws
    torch.testing.assert_close(ws[:, :cutoff], base[:, :cutoff])
    assert not torch.allclose(ws[:, cutoff:], base[:, cutoff:])
    assert torch.allclose(ws[:, cutoff:], ws[:, cutoff:cutoff + 1].expand_as(ws[:, cutoff:]))  # one second latent
    no_mix = tiny(style_mixing=0.0)
    no_mix.nets["G"].load_state_dict(G.state_dict())
    torch.testing.assert_close(no_mix.mapping_with_mixing(z), base)


def _grads(module):
    return [p.grad for p in module.parameters() if p.grad is not None]


def test_r1_and_path_length_penalties_are_finite_and_reach_the_weights():
    torch.manual_seed(0)
    r = tiny()
    x = torch.rand(4, 3, 64, 64) * 2 - 1
    out = r.loss_Dreg(Batch(z=torch.randn(4, 16), reals=x))
    assert torch.isfinite(out["loss"]) and out["r1_penalty"] > 0
    out["loss"].backward()
    g = _grads(r.nets["D"])
    assert g and all(torch.isfinite(t).all() for t in g) and sum(t.abs().sum() for t in g) > 0

    pl0 = r.pl_mean.clone()
    out = r.loss_Greg(Batch(z=torch.randn(4, 16)))
    assert torch.isfinite(out["loss"]) and out["pl_mean"] > pl0  # the running mean moves towards the lengths
    out["loss"].backward()
    g = _grads(r.nets["G"].synthesis)
    assert g and all(torch.isfinite(t).all() for t in g) and sum(t.abs().sum() for t in g) > 0
    assert r.nets["G"].mapping.fc0.weight.grad is not None  # through ws into the mapping network


def test_r1_penalty_matches_its_definition():
    """R1 = gamma/2 * E|grad_x D(x)|^2 times the lazy interval; checked against a finite-difference-free reference."""
    r = tiny(gamma=2.0)
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    out = r.loss_Dreg(Batch(z=torch.randn(2, 16), reals=x))
    xr = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(r.run_D(xr).sum(), xr)
    expected = g.square().sum([1, 2, 3]).mean() * (2.0 / 2) * 16
    torch.testing.assert_close(out["loss"], expected, rtol=1e-4, atol=1e-6)


def test_path_length_batch_shrink():
    r = tiny(pl_batch_shrink=2)
    seen = {}
    orig = r.run_G

    def spy(z, update_emas=False, labels=None):
        seen["n"] = z.shape[0]
        return orig(z, update_emas, labels)
    r.run_G = spy
    r.loss_Greg(Batch(z=torch.randn(8, 16)))
    assert seen["n"] == 4


def test_generate_truncation_zero_gives_the_average_image():
    r = tiny()
    G = r.nets["G"].eval()
    z = torch.randn(3, 16)
    img = r.generate(G, z, psi=0.0)
    assert img.shape == (3, 3, 64, 64)
    torch.testing.assert_close(img[0], img[1])  # every latent collapses to w_avg
    assert "psi0.7" in r.grid_variants()


def test_recipe_state_round_trip():
    r = tiny()
    r.pl_mean.fill_(1.25)
    s = tiny()
    s.load_state_dict(r.state_dict())
    assert s.pl_mean.item() == 1.25


def test_resolution_and_preset_errors():
    with pytest.raises(ValueError, match="resolution"):
        tiny(resolution=48)
    with pytest.raises(ValueError, match="preset"):
        tiny(preset="fast")


def _expected_params(res, base, cmax, map_layers, z=512, w=512):
    """G (skip) and D (resnet) parameter counts from the layer formulas, unconditional, mbstd 1 channel."""
    ch = lambda r: min(base // r, cmax)  # noqa: E731
    fc = lambda i, o: i * o + o  # noqa: E731
    conv = lambda i, o, k, bias=True: i * o * k * k + (o if bias else 0)  # noqa: E731
    layer = lambda i, o: fc(w, i) + conv(i, o, 3) + 1  # affine, weight + bias, noise strength  # noqa: E731
    torgb = lambda i: fc(w, i) + conv(i, 3, 1)  # noqa: E731
    G = fc(z, w) + (map_layers - 1) * fc(w, w)
    G += ch(4) * 16 + layer(ch(4), ch(4)) + torgb(ch(4))
    r = 8
    while r <= res:
        G += layer(ch(r // 2), ch(r)) + layer(ch(r), ch(r)) + torgb(ch(r))
        r *= 2
    D = conv(3, ch(res), 1)
    r = res
    while r >= 8:
        D += conv(ch(r), ch(r), 3) + conv(ch(r), ch(r // 2), 3) + conv(ch(r), ch(r // 2), 1, bias=False)
        r //= 2
    D += conv(ch(4) + 1, ch(4), 3) + fc(ch(4) * 16, ch(4)) + fc(ch(4), 1)
    return G, D


@pytest.mark.parametrize("preset,res", [("auto", 64), ("auto", 128), ("paper", 64)])
def test_parameter_counts_per_preset(preset, res):
    r = StyleGAN2(StyleGAN2.make_config(preset=preset), res, torch.device("cpu"))
    cfg = r.cfg
    G, D = _expected_params(res, cfg.channel_base, cfg.channel_max, cfg.map_layers)
    assert sum(p.numel() for p in r.nets["G"].parameters()) == G
    assert sum(p.numel() for p in r.nets["D"].parameters()) == D
    assert cfg.map_layers == (8 if preset == "paper" else 2)


NAMES = {"hair": [f"h{i}" for i in range(12)], "eye": [f"e{i}" for i in range(10)]}


def test_conditional_stylegan2_embeds_tags_and_projects_in_D():
    r = StyleGAN2(StyleGAN2.make_config(**TINY, cond=True), 64, torch.device("cpu"), label_names=NAMES)
    assert StyleGAN2.needs_labels(r.cfg) and not StyleGAN2.needs_labels(StyleGAN2.make_config())
    G, D = r.nets["G"].eval(), r.nets["D"]
    assert G.c_dim == 22 and "mapping.embed.weight" in G.state_dict()
    z = torch.randn(1, 16).repeat(2, 1)
    a = torch.tensor([[0, 1], [5, 1]])
    img = r.generate(G, z, a)
    assert not torch.allclose(img[0], img[1])  # same z, different hair
    torch.testing.assert_close(r.generate(G, z, a[:1].repeat(2, 1))[0], img[0])
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    assert not torch.allclose(r.run_D(x, a), r.run_D(x, a.flip(0)))
    with pytest.raises(ValueError, match="conditional"):
        r.generate(G, z)
    batch = Batch(z=torch.randn(4, 16), reals=torch.rand(4, 3, 64, 64) * 2 - 1, labels=torch.tensor([[1, 2]] * 4),
                  fake_labels=torch.tensor([[3, -1]] * 4))
    for loss in (r.loss_G, r.loss_Greg, r.loss_D, r.loss_Dreg):
        assert torch.isfinite(loss(batch)["loss"])


def test_conditional_training_needs_labelled_data(tmp_path):
    import numpy as np

    from conftest import ListDataset, random_dataset
    from stylegan_anime.training.config import ConfigError
    from stylegan_anime.training.trainer import Trainer
    from test_trainer import make_cfg

    tiny_cond = {**TINY, "cond": True}
    plain = random_dataset()
    with pytest.raises(ConfigError, match="needs labelled data"):
        Trainer(make_cfg("stylegan2", tmp_path, model_cfg=tiny_cond), tmp_path / "a",
                dataset=ListDataset(images=plain.images, labels=None, label_names=None))
    labelled = ListDataset(images=plain.images, labels=np.stack([np.arange(40) % 12, np.arange(40) % 10], 1),
                           label_names=NAMES)
    t = Trainer(make_cfg("stylegan2", tmp_path, model_cfg=tiny_cond, kimg=0.016), tmp_path / "b", dataset=labelled)
    t.train()
    assert t.fixed_labels.shape == (4, 2) and t.cfg.label_names == NAMES
    from stylegan_anime.generate import Sampler
    s = Sampler(tmp_path / "b", device="cpu")
    assert s.conditional and s.images([0, 1], labels=torch.tensor([[2, 3]])).shape == (2, 3, 64, 64)
    torch.testing.assert_close(s.images([4]), s.images([4]))  # default tags are a function of the seed


# ---------------------------------------------------------------- training math as stylegan2-ada-pytorch (issue 12, item 5)

def _path_length_reference(r, z, pl_mean0):
    """NVlabs' Gpl loss written out (training/loss.py): the running mean is NOT detached inside the loss."""
    cfg = r.cfg
    n = z.shape[0] // cfg.pl_batch_shrink
    img, ws = r.run_G(z[:n])
    noise = torch.randn_like(img) / math.sqrt(img.shape[2] * img.shape[3])
    (grads,) = torch.autograd.grad((img * noise).sum(), ws, create_graph=True)
    lengths = grads.square().sum(2).mean(1).sqrt()
    pl_mean = pl_mean0.lerp(lengths.mean(), cfg.pl_decay)
    return ((img[:, 0, 0, 0] * 0 + (lengths - pl_mean).square() * cfg.pl_weight).mean() * cfg.pl_interval)


def test_path_length_gradient_flows_through_the_running_mean():
    torch.manual_seed(0)
    r = tiny(style_mixing=0.0, pl_decay=0.5)  # a large decay makes the mean's share of the gradient visible
    G = r.nets["G"]
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.2)
    r.pl_mean.fill_(0.05)
    z = torch.randn(8, 16)
    torch.manual_seed(1)
    ref = _path_length_reference(r, z, r.pl_mean.clone())
    ref_grads = torch.autograd.grad(ref, list(G.parameters()), allow_unused=True)
    r.pl_mean.fill_(0.05)
    torch.manual_seed(1)
    out = r.loss_Greg(Batch(z=z))
    ours = torch.autograd.grad(out["loss"], list(G.parameters()), allow_unused=True)
    for (name, _), a, b in zip(G.named_parameters(), ours, ref_grads):
        assert a is not None and b is not None, name
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-7, msg=name)
    assert r.pl_mean.requires_grad is False and not r.pl_mean.grad_fn  # the stored mean stays detached


def test_lazy_phases_give_every_parameter_a_gradient():
    """Parameters a regulariser does not reach (toRGB biases in Greg, the last D bias in R1) get a zero
    gradient, so that Adam counts the step for them as for the others (NVlabs' `x * 0 + loss`)."""
    torch.manual_seed(0)
    r = tiny()
    G, D = r.nets["G"], r.nets["D"]
    r.loss_Greg(Batch(z=torch.randn(4, 16)))["loss"].backward()
    missing = [n for n, p in G.named_parameters() if p.grad is None]
    assert missing == []
    assert all(float(p.grad.abs().max()) == 0 for n, p in G.named_parameters() if n.endswith("torgb.bias"))
    r.loss_Dreg(Batch(z=torch.randn(4, 16), reals=torch.rand(4, 3, 64, 64) * 2 - 1))["loss"].backward()
    assert [n for n, p in D.named_parameters() if p.grad is None] == []


def test_w_avg_tracks_the_generator_phases_too():
    torch.manual_seed(0)
    r = tiny()
    w_avg = r.nets["G"].mapping.w_avg
    before = w_avg.clone()
    r.loss_G(Batch(z=torch.randn(4, 16)))
    after_G = w_avg.clone()
    assert not torch.equal(before, after_G)  # as NVlabs' mapping in training mode
    r.loss_Greg(Batch(z=torch.randn(4, 16)))
    assert not torch.equal(after_G, w_avg)
