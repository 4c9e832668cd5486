"""SAGAN and BigGAN recipes: shapes, spectral norm, self-attention, conditioning, losses, truncation,
hierarchical z, and one step of each through the shared trainer."""
from __future__ import annotations

import copy
import dataclasses
import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from stylegan_anime.baselines import gan_layers as L
from stylegan_anime.baselines.biggan import BigGAN
from stylegan_anime.baselines.sagan import SAGAN
from stylegan_anime.models import get_recipe
from stylegan_anime.training.config import TrainConfig
from stylegan_anime.training.recipe import Batch
from stylegan_anime.training.trainer import Trainer

from conftest import ListDataset, random_dataset

torch.set_num_threads(1)

LABEL_NAMES = {"hair": [f"h{i}" for i in range(12)], "eye": [f"e{i}" for i in range(10)]}
TINY = dict(dim=4, batch=4)


def sagan(res=64, **kw):
    return SAGAN(SAGAN.make_config(**{**TINY, **kw}), res, "cpu")


def biggan(res=64, label_names=LABEL_NAMES, **kw):
    return BigGAN(BigGAN.make_config(**{**TINY, **kw}), res, "cpu", label_names=label_names)


def labels(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randint(-1, 12, (n,), generator=g), torch.randint(-1, 10, (n,), generator=g)], 1)


# ------------------------------------------------------------------ registry, shapes, resolutions
def test_registered_and_configs():
    assert get_recipe("sagan") is SAGAN and get_recipe("biggan") is BigGAN
    assert not SAGAN.conditional and BigGAN.conditional
    s, b = SAGAN.Config(), BigGAN.Config()
    assert (s.lr_g, s.lr_d, s.beta1, s.beta2, s.n_critic, s.z_dist) == (1e-4, 4e-4, 0.0, 0.9, 1, "truncated")
    assert (b.lr_g, b.lr_d, b.beta1, b.beta2, b.n_critic, b.z_dim, b.ortho) == (5e-5, 2e-4, 0.0, 0.999, 2, 120, 1e-4)
    assert s.ema_kimg > 0 and b.ema_kimg > 0 and s.batch == b.batch == 64
    r = sagan()
    assert r.opts["D"].param_groups[0]["lr"] == 4e-4 and r.opts["G"].param_groups[0]["betas"] == (0.0, 0.9)


@pytest.mark.parametrize("res", [64, 128])
def test_shapes(res):
    torch.manual_seed(0)
    s = sagan(res)
    z = torch.randn(2, s.z_dim)
    x = s.generate(s.nets["G"], z)
    assert x.shape == (2, 3, res, res) and x.abs().max() <= 1
    assert s.nets["D"](x).shape == (2,)
    b = biggan(res)
    y = labels(2)
    x = b.generate(b.nets["G"], torch.randn(2, b.z_dim), y)
    assert x.shape == (2, 3, res, res)
    assert b.nets["D"](x, y).shape == (2,)


@pytest.mark.parametrize("cls", [SAGAN, BigGAN])
@pytest.mark.parametrize("res", [16, 512, 100])
def test_bad_resolution(cls, res):
    with pytest.raises(ValueError, match="this model trains at 32, 64, 128 or 256 px"):
        cls(cls.make_config(**TINY), res, "cpu")


def test_attn_res_flag():
    assert L.parse_attn_res("auto", 64, [32]) == [32]
    assert L.parse_attn_res("64, 32", 128, []) == [32, 64]
    assert L.parse_attn_res("none", 64, [32]) == []
    for bad in ("64", "48", "4", "x"):
        with pytest.raises(ValueError, match="attn-res"):
            L.parse_attn_res(bad, 64, [32])

    def count(net):
        return sum(isinstance(m, L.SelfAttention) for m in net.modules())
    assert sagan(64).attn == [32] and sagan(128).attn == [32, 64]
    assert biggan(64).attn == [32] and biggan(128).attn == [64]
    r = sagan(128)
    assert count(r.nets["G"]) == 2 and count(r.nets["D"]) == 2
    r = sagan(64, attn_res="16,32")
    assert count(r.nets["G"]) == 2 and count(r.nets["D"]) == 2
    assert count(sagan(64, attn_res="none").nets["G"]) == 0
    # attention sits where the feature map has that size: G's block outputs 8,16,32,64
    g = sagan(64).nets["G"]
    assert [isinstance(a, L.SelfAttention) for a in g.attn] == [False, False, True, False]


# ------------------------------------------------------------------ spectral norm
def test_spectral_norm_on_every_conv_and_linear():
    for r in (sagan(64), sagan(128), biggan(64)):
        for net in ("G", "D"):
            layers = [m for m in r.nets[net].modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
            assert len(layers) > 10
            for m in layers:
                assert L.has_spectral_norm(m), (net, m)
    # projection embeddings are normalised too; BigGAN's shared class embedding is not (as in the paper)
    b = biggan(64)
    assert all(L.has_spectral_norm(e) for e in b.nets["D"].embed)
    assert not any(L.has_spectral_norm(t) for t in b.nets["G"].shared.tables)


def test_spectral_norm_top_singular_value_is_one():
    torch.manual_seed(0)
    conv = sagan(64).nets["D"].body.blocks[2].conv1  # an SN conv of D (blocks[1] is the attention at 32)
    with torch.no_grad():
        conv.parametrizations.weight.original.mul_(7.0).add_(torch.randn_like(conv.parametrizations.weight.original))
    x = torch.randn(1, conv.in_channels, 4, 4)
    conv.train()
    for _ in range(200):  # one power iteration per training forward
        conv(x)
    sigma = torch.linalg.matrix_norm(conv.weight.detach().flatten(1), ord=2)
    assert abs(float(sigma) - 1) < 0.02
    raw = torch.linalg.matrix_norm(conv.parametrizations.weight.original.detach().flatten(1), ord=2)
    assert float(raw) > 3  # the raw weight is far from 1: normalisation did the work


# ------------------------------------------------------------------ self-attention
def test_self_attention_identity_at_init_and_global_after():
    torch.manual_seed(0)
    att = L.SelfAttention(16).eval()
    x = torch.randn(2, 16, 8, 8)
    y = att(x)
    assert y.shape == x.shape
    assert float(att.gamma.detach()) == 0 and torch.equal(y, x)
    with torch.no_grad():
        att.gamma.fill_(1.0)
    x2 = x.clone()
    x2[:, :, 0, 0] += 10.0  # perturb one corner pixel
    d = (att(x2) - att(x)).abs()
    assert d[:, :, 7, 7].max() > 1e-4  # the far corner changes ...
    assert d[:, :, 4, 1].max() > 1e-4
    with torch.no_grad():  # ... which a purely local layer (gamma 0) would not do
        att.gamma.zero_()
    assert (att(x2) - att(x))[:, :, 7, 7].abs().max() == 0


# ------------------------------------------------------------------ BigGAN conditioning
def test_conditional_bn_uses_the_class():
    torch.manual_seed(0)
    b = biggan(64)
    G = b.nets["G"].eval()
    z = torch.randn(3, b.z_dim)
    y1 = torch.tensor([[0, 0], [3, 4], [-1, -1]])
    y2 = torch.tensor([[5, 0], [3, 7], [11, -1]])  # every row differs in one group
    with torch.no_grad():
        a, a2, c = G(z, y1), G(z, y1.clone()), G(z, y2)
    assert torch.equal(a, a2)
    assert ((a - c).flatten(1).abs().amax(1) > 1e-5).all()
    # the condition reaches every block's BN as (1 + gain) and bias
    cbn = [m for m in G.modules() if isinstance(m, L.ConditionalBatchNorm2d)]
    assert len(cbn) == 2 * len(G.blocks)


def test_projection_discriminator_uses_the_class():
    torch.manual_seed(0)
    b = biggan(64)
    D = b.nets["D"].eval()
    x = torch.rand(3, 3, 64, 64) * 2 - 1
    y1 = torch.tensor([[0, 0], [3, 4], [-1, -1]])
    y2 = torch.tensor([[1, 0], [3, 5], [-1, 2]])
    with torch.no_grad():
        s1, s1b, s2 = D(x, y1), D(x, y1.clone()), D(x, y2)
    assert torch.equal(s1, s1b)
    assert ((s1 - s2).abs() > 1e-6).all()
    # and it is exactly linear(h) + sum_g <E_g(y_g), h>
    with torch.no_grad():
        h = D.body(x)
        want = D.head(h).squeeze(1) + sum((e(L_index(y1[:, g], n)) * h).sum(1)
                                          for g, (e, n) in enumerate(zip(D.embed, [12, 10])))
    torch.testing.assert_close(s1, want)


def L_index(y, n):
    return torch.where(y < 0, torch.full_like(y, n), y)


def test_unknown_label_is_its_own_learned_entry():
    b = biggan(64)
    emb = b.nets["G"].shared
    assert [t.num_embeddings for t in emb.tables] == [13, 11]
    assert sum(t.embedding_dim for t in emb.tables) == b.cfg.shared_dim
    v = emb(torch.tensor([[-1, -1], [11, 9]]))
    assert v.shape == (2, b.cfg.shared_dim)  # concatenated
    torch.testing.assert_close(v[0, :64], emb.tables[0].weight[12])
    with pytest.raises(ValueError, match="out of range"):
        b.class_labels(torch.tensor([[12, 0]]), 1)
    with pytest.raises(ValueError, match="needs labels"):
        b.class_labels(None, 1)


def test_hierarchical_z_chunks():
    torch.manual_seed(0)
    for res, n_chunks in ((64, 5), (128, 6)):
        b = biggan(res)
        G = b.nets["G"].eval()
        assert sum(G.z_chunks) == b.z_dim == 120 and len(G.z_chunks) == n_chunks == len(G.blocks) + 1
    b = biggan(64, z_dim=23)  # not divisible: still every dimension used
    G = b.nets["G"].eval()
    assert G.z_chunks == [5, 5, 5, 4, 4]
    seen = {}
    for i, blk in enumerate(G.blocks):
        blk.register_forward_pre_hook(lambda m, args, i=i: seen.__setitem__(i, args[1].detach().clone()))
    z = torch.randn(2, 23)
    y = torch.tensor([[1, 2], [-1, 3]])
    with torch.no_grad():
        G(z, y)
        shared = G.shared(y)
    starts = [0, 5, 10, 15, 19, 23]
    for i in range(4):
        chunk = z[:, starts[i + 1]:starts[i + 2]]
        assert torch.equal(seen[i][:, :chunk.shape[1]], chunk)
        assert torch.equal(seen[i][:, chunk.shape[1]:], shared)
    assert not torch.equal(seen[0][:, :4], seen[1][:, :4])
    # changing only block 2's chunk changes the image, but not what block 0 and 1 computed
    z2 = z.clone()
    z2[:, 10:15] += 1.0
    with torch.no_grad():
        a, b2 = G(z, y), G(z2, y)
    assert not torch.allclose(a, b2)
    with pytest.raises(ValueError):
        biggan(64, z_dim=3)


def test_unconditional_biggan_single_class():
    torch.manual_seed(0)
    assert BigGAN.needs_labels(BigGAN.make_config()) and not BigGAN.needs_labels(BigGAN.make_config(classes="none"))
    assert biggan(64).conditional
    for b in (biggan(64, label_names=None), biggan(64, classes="none")):
        assert b.single_class and b.groups == {"class": 1} and not b.conditional
        x = b.generate(b.nets["G"], torch.randn(2, b.z_dim))
        assert x.shape == (2, 3, 64, 64)
        batch = Batch(z=torch.randn(2, b.z_dim), reals=torch.rand(2, 3, 64, 64) * 2 - 1)  # no labels at all
        for loss in (b.loss_D(batch), b.loss_G(batch)):
            assert torch.isfinite(loss["loss"])


def test_label_dropout():
    b = biggan(64, label_dropout=0.5)
    torch.manual_seed(0)
    y = torch.zeros(4000, 2, dtype=torch.long)
    d = b.drop_labels(y)
    assert 0.45 < float((d == -1).float().mean()) < 0.55 and set(d.unique().tolist()) == {-1, 0}
    assert torch.equal(biggan(64, label_dropout=0.0).drop_labels(y), y)


def test_generate_without_labels_uses_unknown():
    torch.manual_seed(0)
    b = biggan(64)
    G = b.nets["G"].eval()
    z = torch.randn(2, b.z_dim)
    with torch.no_grad():
        torch.testing.assert_close(b.generate(G, z), G(z, torch.full((2, 2), -1)))
        torch.testing.assert_close(b.generate(G, z, torch.tensor([[3, 4]])), G(z, torch.tensor([[3, 4], [3, 4]])))


# ------------------------------------------------------------------ losses
class StubD(nn.Module):
    """Scores by identity of the input: the reals get `real`, anything else `fake`."""

    def __init__(self, reals, real, fake):
        super().__init__()
        self.reals, self.real, self.fake = reals, torch.tensor(real), torch.tensor(fake)
        self.w = nn.Parameter(torch.zeros(()))

    def forward(self, x, labels=None):
        return (self.real if x is self.reals else self.fake) + 0 * self.w


def test_hinge_loss_values():
    real, fake = [2.0, 0.5, -1.0], [-2.0, 0.0, 0.5]
    # D: mean(relu(1 - r)) = (0 + .5 + 2)/3, mean(relu(1 + f)) = (0 + 1 + 1.5)/3
    assert math.isclose(float(L.hinge_d_loss(torch.tensor(real), torch.tensor(fake))), 2.5 / 3 + 2.5 / 3, rel_tol=1e-6)
    assert math.isclose(float(L.hinge_g_loss(torch.tensor(fake))), 0.5, rel_tol=1e-6)
    for r, kw in ((sagan(), {}), (biggan(ortho=0.0, label_dropout=0.0), {})):
        reals = torch.rand(3, 3, 64, 64) * 2 - 1
        r.nets["D"] = StubD(reals, real, fake)
        batch = Batch(z=torch.randn(3, r.z_dim), reals=reals, labels=labels(3), fake_labels=labels(3, 1))
        out = r.loss_D(batch)
        assert math.isclose(float(out["loss"].detach()), 5 / 3, rel_tol=1e-6)
        assert math.isclose(float(out["D_real"]), 0.5, rel_tol=1e-6)
        assert math.isclose(float(r.loss_G(batch)["loss"].detach()), 0.5, rel_tol=1e-6)


def test_orthogonal_regularisation():
    q, _ = torch.linalg.qr(torch.randn(8, 8))
    assert float(L.orthogonal_penalty([q])) < 1e-10
    assert float(L.orthogonal_penalty([q * 3.0])) < 1e-8  # only off-diagonal terms: row norms are free
    rows = torch.linalg.qr(torch.randn(27, 4))[0].t().reshape(4, 3, 3, 3)  # orthonormal rows, conv-shaped
    assert float(L.orthogonal_penalty([rows])) < 1e-10
    w = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    # W W^T = [[1, 1], [1, 2]] -> off-diagonal squares 1 + 1
    assert math.isclose(float(L.orthogonal_penalty([w])), 2.0, rel_tol=1e-6)
    assert float(L.orthogonal_penalty([torch.randn(6, 10)])) > 0


def test_orthogonal_regularisation_in_G_loss():
    torch.manual_seed(0)
    b = biggan(64, ortho=1e-2, label_dropout=0.0)
    G = b.nets["G"]
    names = {id(p): n for n, p in G.named_parameters()}
    covered = {names[id(p)] for p in b.ortho_weights}
    assert all(n.endswith("original") for n in covered)  # the raw weights under spectral norm
    assert not any(n.startswith("shared.") for n in covered)
    assert len(covered) == sum(1 for m in G.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    reals = torch.zeros(2, 3, 64, 64)
    b.nets["D"] = StubD(reals, [0.0, 0.0], [0.0, 0.0])  # the adversarial term is 0
    out = b.loss_G(Batch(z=torch.randn(2, b.z_dim), fake_labels=labels(2)))
    pen = b.ortho_penalty()
    assert float(pen.detach()) > 0
    torch.testing.assert_close(out["loss"], 1e-2 * pen)
    out["loss"].backward()
    assert b.ortho_weights[0].grad is not None and b.ortho_weights[0].grad.abs().sum() > 0
    b0 = biggan(64, ortho=0.0)
    b0.nets["D"] = StubD(reals, [0.0, 0.0], [0.0, 0.0])
    assert float(b0.loss_G(Batch(z=torch.randn(2, b0.z_dim), fake_labels=labels(2)))["loss"].detach()) == 0


# ------------------------------------------------------------------ truncated normal
def test_truncated_normal():
    torch.manual_seed(0)
    z = torch.randn(400_000)
    x = L.truncated_normal(z, 2.0, 0.5)
    assert x.abs().max() <= 1.0 and x.dtype == z.dtype
    # std of N(0, .5^2) cut at +-2 std: 0.5 * sqrt(1 - 2*2*phi(2) / (2*Phi(2) - 1))
    phi2 = math.exp(-2) / math.sqrt(2 * math.pi)
    want = 0.5 * math.sqrt(1 - 4 * phi2 / math.erf(2 / math.sqrt(2)))
    assert abs(want - 0.4398) < 1e-3 and math.isclose(L.truncated_normal_std(2.0, 0.5), want, rel_tol=1e-12)
    assert abs(float(x.std()) - want) < 2e-3
    assert abs(float(x.mean())) < 2e-3
    # its distribution: the fraction within +-1 std (|x| < .5) is (2Phi(1) - 1) / (2Phi(2) - 1)
    frac = math.erf(1 / math.sqrt(2)) / math.erf(2 / math.sqrt(2))
    assert abs(float((x.abs() < 0.5).float().mean()) - frac) < 3e-3
    assert torch.equal(L.truncated_normal(z, 2.0, 0.5), x)  # deterministic in z
    assert torch.all(torch.diff(L.truncated_normal(torch.linspace(-6, 6, 1001), 2.0)) >= 0)  # monotone
    small = L.truncated_normal(z, 0.3)
    assert small.abs().max() <= 0.3 and float(small.std()) > 0.15  # psi truncation keeps spread inside


def test_sagan_latent_distribution():
    r = sagan()
    z = torch.randn(1000, r.z_dim)
    assert torch.equal(r.latent(z), L.truncated_normal(z, 2.0, 0.5)) and r.latent(z).abs().max() <= 1
    assert torch.equal(sagan(z_dist="normal").latent(z), z)
    with pytest.raises(ValueError, match="z-dist"):
        sagan(z_dist="uniform")


def test_biggan_truncation_trick():
    torch.manual_seed(0)
    b = biggan(64)
    G = b.nets["G"].eval()
    z = torch.randn(2, b.z_dim) * 3
    y = labels(2)
    with torch.no_grad():
        full, t = b.generate(G, z, y), b.generate(G, z, y, psi=0.5)
        torch.testing.assert_close(t, G(L.truncated_normal(z, 0.5), y))
        assert torch.equal(b.generate(G, z, y, psi=None), full) and torch.equal(b.generate(G, z, y, psi=0), full)
    assert not torch.allclose(full, t)
    assert b.grid_variants() == {"psi0.5": {"psi": 0.5}}


# ------------------------------------------------------------------ one step through the trainer
def make_cfg(model, tmp_path, label_names=None, trainer=None, **model_over):
    mc = get_recipe(model).make_config(**{**TINY, **model_over})
    return TrainConfig(data="unused", size=64, model=model, kimg=0.032, outdir=str(tmp_path), progress=False,
                       snap_kimg=1000, grid_kimg=1000, log_kimg=0.016, grid_size=2, device="cpu", metrics="",
                       batch_gpu=2, model_cfg=dataclasses.asdict(mc), label_names=label_names, **(trainer or {}))


def labelled_data():
    d = random_dataset(n=16, labels=True)
    lab = d.labels.copy()
    lab[::5, 0] = -1  # some unknown hair
    lab[::7, 1] = -1
    return ListDataset(images=d.images, labels=lab, label_names=LABEL_NAMES)


@pytest.mark.parametrize("model,over", [("sagan", {}), ("biggan", {}), ("biggan", {"classes": "none"})])
def test_one_trainer_step(model, over, tmp_path):
    torch.manual_seed(0)
    if model == "sagan" or over:  # single-class BigGAN trains on unlabelled data
        data = ListDataset(images=random_dataset(n=16).images, labels=None, label_names=None)
    else:
        data = labelled_data()
    t = Trainer(make_cfg(model, tmp_path, trainer={"augment": "diffaug"}, **over), tmp_path / "run", dataset=data)
    assert t.rounds == 2  # accumulation exercised
    if model == "biggan":
        assert t.recipe.groups == ({"class": 1} if over else {"hair": 12, "eye": 10})
    before = {k: [p.detach().clone() for p in t.recipe.nets[k].parameters()] for k in ("G", "D")}
    seen: dict[str, list[float]] = {}
    t.monitor = SimpleNamespace(add=lambda k, v: seen.setdefault(k, []).append(float(v.detach())))
    t.step()
    t.monitor = None
    assert set(seen) >= {"Loss/D", "Loss/G", "Stats/D_real", "Stats/D_fake", "Stats/real_sign"}
    assert all(math.isfinite(v) for vs in seen.values() for v in vs)
    n_critic = t.recipe.cfg.n_critic
    assert len(seen["Loss/D"]) == 2 * n_critic and len(seen["Loss/G"]) == 2
    for k in ("G", "D"):
        moved = [not torch.equal(a, b) for a, b in zip(before[k], t.recipe.nets[k].parameters())]
        assert sum(moved) > len(moved) // 2, k
    assert t.skipped == 0
    grid = t.sample_grid(t.G_ema)  # grids use fixed labels (BigGAN) and every grid variant works
    assert grid.shape == (128, 128, 3)
    for kw in t.recipe.grid_variants().values():
        assert t.sample_grid(t.G_ema, **kw).shape == (128, 128, 3)


@pytest.mark.parametrize("model", ["sagan", "biggan"])
def test_resume_equals_uninterrupted(model, tmp_path):
    """Two steps in one go == one step, state_dict, a fresh trainer resumed from it, one more step (latent
    maps are functions of batch.z; label dropout uses the saved torch RNG; SN vectors are buffers)."""
    data = labelled_data() if model == "biggan" else ListDataset(images=random_dataset(n=16).images, labels=None,
                                                                  label_names=None)
    cfg = make_cfg(model, tmp_path, n_critic=1)
    full = Trainer(cfg, tmp_path / "a", dataset=data)
    full.step()
    full.step()
    half = Trainer(cfg, tmp_path / "b", dataset=data)
    half.step()
    state = copy.deepcopy(half.state_dict())
    torch.manual_seed(123)  # the RNG state before resuming must not matter
    resumed = Trainer(cfg, tmp_path / "b", dataset=data, resume=state)
    resumed.step()
    for a, b in ((full.recipe.nets["G"], resumed.recipe.nets["G"]), (full.recipe.nets["D"], resumed.recipe.nets["D"]),
                 (full.G_ema, resumed.G_ema)):
        for (n, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
            assert torch.equal(x, y), n


def test_biggan_train_and_sample_from_checkpoint(tmp_path):
    """Full train() of BigGAN with labels; `generate` (no labels) works from the checkpoint's G_ema."""
    from stylegan_anime.generate import Sampler

    torch.manual_seed(0)
    cfg = make_cfg("biggan", tmp_path, label_names=LABEL_NAMES, n_critic=1)
    cfg.kimg = 0.016
    t = Trainer(cfg, tmp_path / "run", dataset=labelled_data())
    path = t.train()
    assert sorted(p.name for p in (tmp_path / "run").glob("fakes-ema_psi*.png"))  # the truncated grid
    s = Sampler(path, device="cpu")
    img = s.images([0, 1], batch=2)
    assert img.shape == (2, 3, 64, 64) and torch.isfinite(img).all()
    for a, b in zip(s.G.state_dict().values(), t.G_ema.state_dict().values()):
        assert torch.equal(a, b)
