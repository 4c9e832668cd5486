"""Evaluation metrics: FID/KID maths, SWD, the FID Inception loader, the stats cache, AFD and evaluate()."""
from __future__ import annotations

import os
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.linalg as scipy_linalg  # FID needs scipy (sqrtm)
import torch
from PIL import Image
from torch import nn

from stylegan_anime.data.demo import render_face
from stylegan_anime.metrics import (METRICS, MetricUnavailable, evaluate, evaluate_folder, fid_from_features,
                                    fid_from_stats, kid_from_features, load_inception)
from stylegan_anime.metrics import registry as evaluate_mod
from stylegan_anime.metrics import inception as inc
from stylegan_anime.metrics import stats as stats_mod
from stylegan_anime.metrics.fid import mmd2_unbiased, polynomial_kernel
from stylegan_anime.metrics.swd import (SWDAccumulator, _up, disjoint_halves, floor_values, laplacian_pyramid,
                                        patch_positions, pyramid_sizes, swd, swd_from_accumulators)



def faces(n: int, size: int, seed: int = 0) -> np.ndarray:
    return np.stack([render_face(seed, i, size)[0] for i in range(n)])


def make_dataset(images: np.ndarray, fingerprint: str | None = "test-set"):
    return SimpleNamespace(images=images, meta={"fingerprint": fingerprint} if fingerprint else {})


def gen_from(images: np.ndarray):
    """A generate_fn that returns the next n rows of ``images`` on each call."""
    pos = [0]

    def gen(n):
        out = images[pos[0]:pos[0] + n]
        pos[0] += len(out)
        return out

    return gen


# ----------------------------------------------------------------------------- FID


def reference_fid(f1, f2):
    """Independent formula: Tr sqrt(S1 S2) from the symmetric matrix sqrt(S1) S2 sqrt(S1)."""
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    w, v = np.linalg.eigh(s1)
    r1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    ev = np.linalg.eigvalsh(r1 @ s2 @ r1)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(np.clip(ev, 0, None)).sum())


def test_fid_matches_independent_formula_and_is_zero_on_itself():
    rng = np.random.default_rng(0)
    f1 = rng.normal(size=(300, 12))
    f2 = rng.normal(size=(250, 12)) @ rng.normal(size=(12, 12)) * 0.5 + 0.3
    assert fid_from_features(f1, f1) == pytest.approx(0.0, abs=1e-8)
    assert fid_from_features(f1, f2) == pytest.approx(reference_fid(f1, f2), rel=1e-6)
    assert fid_from_features(f1, f2) == pytest.approx(fid_from_features(f2, f1), rel=1e-6)
    # scipy's sqrtm written out here too
    mu1, mu2, s1, s2 = f1.mean(0), f2.mean(0), np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    direct = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * scipy_linalg.sqrtm(s1 @ s2).real)
    assert fid_from_features(f1, f2) == pytest.approx(direct, rel=1e-6)


def test_fid_with_fewer_samples_than_dimensions_matches_scipy_sqrtm():
    # N < D: both covariances are singular; the eigenvalue route must still agree with sqrtm's trace
    rng = np.random.default_rng(5)
    f1 = np.abs(rng.normal(size=(40, 64)) @ rng.normal(size=(64, 64)))
    f2 = np.abs(rng.normal(size=(30, 64)) @ rng.normal(size=(64, 64)) + 0.5)
    mu1, mu2, s1, s2 = f1.mean(0), f2.mean(0), np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    direct = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * scipy_linalg.sqrtm(s1 @ s2).real)
    assert fid_from_features(f1, f2) == pytest.approx(direct, rel=1e-7)
    assert fid_from_features(f1, f1) == pytest.approx(0.0, abs=1e-6 * np.trace(s1))


def test_fid_closed_forms():
    # equal covariances: FID = |dmu|^2
    rng = np.random.default_rng(1)
    a = rng.normal(size=(4, 4))
    cov = a @ a.T + np.eye(4)
    mu1, mu2 = np.array([0.0, 1.0, 2.0, 3.0]), np.array([1.0, -1.0, 2.0, 0.5])
    assert fid_from_stats(mu1, cov, mu2, cov) == pytest.approx(((mu1 - mu2) ** 2).sum(), rel=1e-7)
    # diagonal covariances: FID = |dmu|^2 + sum (sqrt(a) - sqrt(b))^2
    da, db = np.array([1.0, 4.0, 9.0]), np.array([4.0, 4.0, 1.0])
    want = 1.0 + (1 - 2) ** 2 + 0 + (3 - 1) ** 2
    assert fid_from_stats([0, 0, 0], np.diag(da), [1, 0, 0], np.diag(db)) == pytest.approx(want, rel=1e-7)
    # sampled Gaussians with equal covariance: FID ~ |dmu|^2
    x = rng.normal(size=(20000, 3))
    y = rng.normal(size=(20000, 3)) + np.array([1.0, 0.0, -1.0])
    assert fid_from_features(x, y) == pytest.approx(2.0, abs=0.05)


def test_fid_translation_invariance_and_errors():
    rng = np.random.default_rng(2)
    f1, f2 = rng.normal(size=(100, 6)), rng.normal(size=(120, 6)) * 1.5
    shift = rng.normal(size=6) * 10
    assert fid_from_features(f1 + shift, f2 + shift) == pytest.approx(fid_from_features(f1, f2), rel=1e-6)
    with pytest.raises(ValueError, match="at least 2"):
        fid_from_features(f1[:1], f2)
    with pytest.raises(ValueError, match="feature sizes differ"):
        fid_from_features(f1, f2[:, :5])


# ----------------------------------------------------------------------------- KID


def test_kernel_and_mmd_on_hand_computed_examples():
    # d = 2: k(x, y) = (x.y / 2 + 1)^3
    assert polynomial_kernel([[1.0, 0.0]], [[1.0, 1.0]])[0, 0] == pytest.approx(1.5 ** 3)
    assert polynomial_kernel([[2.0, 0.0]], [[1.0, 1.0]])[0, 0] == pytest.approx(8.0)
    # x = {(1,1), (2,0)}, y = {(0,0), (0,2)}:
    #   k(x1,x2) = (2/2+1)^3 = 8; k(y1,y2) = 1; k(x_i,y_j) = 1, 8, 1, 1 -> mean 2.75
    #   unbiased MMD^2 = 8 + 1 - 2 * 2.75 = 3.5 (diagonal terms k(x,x) excluded)
    x, y = np.array([[1.0, 1.0], [2.0, 0.0]]), np.array([[0.0, 0.0], [0.0, 2.0]])
    assert mmd2_unbiased(x, y) == pytest.approx(3.5)


def test_kid_is_unbiased_and_grows_with_a_shift():
    rng = np.random.default_rng(3)
    values = []
    for s in range(40):
        f1, f2 = rng.normal(size=(60, 8)), rng.normal(size=(60, 8))
        values.append(kid_from_features(f1, f2, num_subsets=5, max_subset_size=30, seed=s))
    values = np.array(values)
    se = values.std() / np.sqrt(len(values))
    assert abs(values.mean()) < 3 * se + 1e-3
    assert (values < 0).any()                      # an unbiased estimate of 0 goes below 0
    # the biased (V-statistic) estimate would sit clearly above 0 here
    f1, f2 = rng.normal(size=(30, 8)), rng.normal(size=(30, 8))
    biased = polynomial_kernel(f1, f1).mean() + polynomial_kernel(f2, f2).mean() - 2 * polynomial_kernel(f1, f2).mean()
    assert biased > 10 * max(se, 1e-3)
    base = rng.normal(size=(200, 8))
    k = [kid_from_features(base, rng.normal(size=(200, 8)) + d, num_subsets=10, max_subset_size=100)
         for d in (0.0, 0.5, 1.0)]
    assert k[0] < k[1] < k[2] and k[1] > 0.05
    assert kid_from_features(base, base + 1, seed=7) == kid_from_features(base, base + 1, seed=7)


# ----------------------------------------------------------------------------- SWD


def test_laplacian_pyramid_levels_and_reconstruction():
    assert pyramid_sizes(64) == [64, 32, 16]
    assert pyramid_sizes(96) == [96, 48, 24]
    assert pyramid_sizes(256) == [256, 128, 64, 32, 16]
    x = torch.rand(2, 3, 32, 32) * 255
    levels = laplacian_pyramid(x, 2)
    assert [t.shape[-1] for t in levels] == [32, 16]
    rec = levels[1]
    for band in levels[-2::-1]:
        rec = band + _up(rec, band.shape[-2:])
    assert torch.allclose(rec, x, atol=1e-3)
    # the coarse level is a low-pass: a constant image has zero band-pass energy
    flat = laplacian_pyramid(torch.full((1, 3, 32, 32), 7.0), 2)
    assert flat[0].abs().max() < 1e-4 and torch.allclose(flat[1], torch.full_like(flat[1], 7.0))


def test_swd_zero_on_identical_sets_monotone_in_noise_and_deterministic():
    ims = faces(24, 32)
    same = swd(ims, ims.copy(), patches_per_image=32, dirs_per_repeat=32)
    assert set(same) == {"swd", "swd/32", "swd/16"}
    assert same["swd"] == pytest.approx(0.0, abs=1e-6)
    rng = np.random.default_rng(0)
    scores = []
    for sigma in (4, 16, 48):
        noisy = np.clip(ims + rng.normal(0, sigma, ims.shape), 0, 255).astype(np.uint8)
        scores.append(swd(ims, noisy, patches_per_image=32, dirs_per_repeat=32)["swd"])
    assert 0 < scores[0] < scores[1] < scores[2]
    other = faces(24, 32, seed=1)
    a = swd(ims, other, patches_per_image=32, dirs_per_repeat=32, seed=5)
    assert a == swd(ims, other, patches_per_image=32, dirs_per_repeat=32, seed=5)
    assert a != swd(ims, other, patches_per_image=32, dirs_per_repeat=32, seed=6)


def test_evaluate_reports_the_disjoint_real_vs_real_swd_floor_per_level_cached(tmp_path, monkeypatch):
    reals = faces(40, 32)
    noise = np.random.default_rng(0).normal(0, 32, (16, 32, 32, 3))
    gen = np.clip(faces(16, 32, seed=4) + noise, 0, 255).astype(np.uint8)    # noisy faces
    kw = dict(num_gen=16, progress=False, cache_dir=tmp_path, batch_size=8)
    res = evaluate(["swd"], gen_from(gen), make_dataset(reals), **kw)
    # the swd value itself is unchanged: generated vs the first 16 reals of the fixed permutation
    perm = np.random.default_rng(0).permutation(40)
    assert res["swd"] == pytest.approx(swd(reals[perm[:16]], gen)["swd"], rel=1e-6)
    # the floor: the same SWD between those reals and the next 16, disjoint from them, per level and mean
    floor = swd(reals[perm[:16]], reals[perm[16:32]])
    for size in (32, 16):
        assert res[f"swd_floor/{size}"] == pytest.approx(floor[f"swd/{size}"], rel=1e-6)
    assert res["swd_floor"] == pytest.approx(floor["swd"], rel=1e-6) and res["swd_floor"] > 0
    assert res["swd_floor"] < res["swd"]             # noisy faces are further from the reals than reals are
    assert any(f.startswith("swd-floor-16-") for f in os.listdir(tmp_path / "metrics"))
    computed = []
    monkeypatch.setattr(evaluate_mod, "swd_from_accumulators",
                        lambda *a, **k: computed.append(1) or swd_from_accumulators(*a, **k))
    again = evaluate(["swd"], gen_from(gen), make_dataset(reals), **kw)
    assert again == res and len(computed) == 1       # only generated vs real: the floor came from the cache
    # a dataset with fewer than 2 x num_gen reals: two halves of 20
    small = evaluate(["swd"], gen_from(faces(30, 32, seed=4)), make_dataset(reals), **dict(kw, num_gen=30))
    half = swd(reals[perm[:20]], reals[perm[20:]])
    assert small["swd_floor"] == pytest.approx(half["swd"], rel=1e-6)


def test_disjoint_halves_and_floor_values():
    a, b = disjoint_halves(11, 8)
    assert len(a) == len(b) == 5 and not set(a) & set(b)
    a2, _ = disjoint_halves(11, 3)
    assert np.array_equal(a2, np.random.default_rng(0).permutation(11)[:3])  # the metric's own real subset
    assert floor_values([64, 32], [3.0, 5.0]) == {"swd_floor/64": 3.0, "swd_floor/32": 5.0, "swd_floor": 4.0}
    with pytest.raises(ValueError, match="2 levels"):
        floor_values([64, 32], [1.0])


# ----------------------------------------------------------------------------- Inception


def test_inception_parameter_names_and_shapes():
    sd = inc.FIDInceptionV3().state_dict()
    expected = {
        "Conv2d_1a_3x3.conv.weight": [32, 3, 3, 3],
        "Conv2d_1a_3x3.bn.weight": [32],
        "Conv2d_1a_3x3.bn.bias": [32],
        "Conv2d_1a_3x3.bn.running_mean": [32],
        "Conv2d_1a_3x3.bn.running_var": [32],
        "Conv2d_4a_3x3.conv.weight": [192, 80, 3, 3],
        "Mixed_5b.branch1x1.conv.weight": [64, 192, 1, 1],
        "Mixed_5b.branch5x5_2.conv.weight": [64, 48, 5, 5],
        "Mixed_5b.branch_pool.conv.weight": [32, 192, 1, 1],
        "Mixed_6a.branch3x3.conv.weight": [384, 288, 3, 3],
        "Mixed_6b.branch7x7_2.conv.weight": [128, 128, 1, 7],
        "Mixed_6e.branch7x7dbl_5.conv.weight": [192, 192, 1, 7],
        "Mixed_7a.branch7x7x3_4.conv.weight": [192, 192, 3, 3],
        "Mixed_7b.branch3x3_2b.conv.weight": [384, 384, 3, 1],
        "Mixed_7c.branch3x3dbl_3a.conv.weight": [384, 384, 1, 3],
        "Mixed_7c.branch_pool.bn.running_var": [192],
        "fc.weight": [1008, 2048],
        "fc.bias": [1008],
    }
    for name, shape in expected.items():
        assert list(sd[name].shape) == shape, name
    assert not any(k.startswith("AuxLogits") for k in sd)
    assert not any(k.endswith(".bias") and ".conv." in k for k in sd)  # convolutions carry no bias
    # torchvision's inception_v3 has 27,161,264 parameters; minus AuxLogits (3,326,696) plus 8 more
    # classes (8 * 2048 + 8) gives the FID network's 23,850,960.
    params = sum(v.numel() for k, v in sd.items() if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
    assert params == 23_850_960


def _pick_channel0(block_conv: inc.BasicConv2d):
    """Make a BasicConv2d 1x1 output channel-0 of its input (BN in eval: scale 1/sqrt(1+eps))."""
    with torch.no_grad():
        block_conv.conv.weight.zero_()
        block_conv.conv.weight[:, 0] = 1.0
        block_conv.bn.reset_parameters()
        block_conv.bn.reset_running_stats()


def test_tf_pooling_quirks():
    scale = 1.0 / np.sqrt(1.001)
    a = inc.FIDInceptionA(4, pool_features=2).eval()
    _pick_channel0(a.branch_pool)
    out = a(torch.ones(1, 4, 5, 5))[:, -2:]
    # padding excluded from the average: the corner stays 1, not 4/9
    assert torch.allclose(out, torch.full_like(out, scale), atol=1e-5)
    e = inc.FIDInceptionE(4, pool="max").eval()
    _pick_channel0(e.branch_pool)
    x = torch.zeros(1, 4, 5, 5)
    x[0, 0, 2, 2] = 9.0
    pool_branch = e(x)[0, -192]
    assert pool_branch[1, 1].item() == pytest.approx(9.0 * scale, rel=1e-5)   # max-pool spreads the spike
    m = inc.FIDInceptionV3()
    assert m.Mixed_7b.pool == "avg" and m.Mixed_7c.pool == "max"


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory):
    torch.manual_seed(0)
    model = inc.FIDInceptionV3()
    path = tmp_path_factory.mktemp("inception") / "random_inception.pth"
    torch.save(model.state_dict(), path)
    return model, path


def test_load_inception_roundtrip_and_forward(random_weights):
    model, path = random_weights
    warnings = []
    loaded = load_inception(path, warn=warnings.append)
    assert len(warnings) == 1 and "not the official" in warnings[0]
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        y = loaded(x)
        assert y.shape == (2, 2048)
        assert torch.allclose(y, model(x), atol=1e-5)
    assert loaded.weights_id == inc.weights_fingerprint(model)


def test_load_inception_errors(random_weights, tmp_path, monkeypatch):
    model, path = random_weights
    missing = tmp_path / "nowhere" / "weights.pth"
    with pytest.raises(MetricUnavailable) as e:
        load_inception(missing)
    msg = str(e.value)
    assert str(missing) in msg and "\n" not in msg and inc.OFFICIAL_FILENAME in msg and "github.com" in msg
    monkeypatch.setenv(inc.ENV_VAR, str(tmp_path / "env.pth"))
    with pytest.raises(MetricUnavailable, match="env.pth"):
        load_inception()
    monkeypatch.delenv(inc.ENV_VAR)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    assert inc.default_inception_path() == str(tmp_path / "th" / "hub" / "checkpoints" / inc.OFFICIAL_FILENAME)

    wrong_keys = tmp_path / "wrong_keys.pth"
    torch.save({"foo.weight": torch.zeros(3)}, wrong_keys)
    with pytest.raises(MetricUnavailable, match="missing keys.*unexpected keys"):
        load_inception(wrong_keys)
    not_dict = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], not_dict)
    with pytest.raises(MetricUnavailable, match="does not hold a state dict"):
        load_inception(not_dict)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"this is not a checkpoint")
    with pytest.raises(MetricUnavailable, match="cannot read"):
        load_inception(garbage)
    sd = torch.load(path, weights_only=True)
    sd["fc.weight"] = torch.zeros(1000, 2048)
    bad_shape = tmp_path / "bad_shape.pth"
    torch.save(sd, bad_shape)
    with pytest.raises(MetricUnavailable, match=r"fc\.weight has shape \[1000, 2048\]"):
        load_inception(bad_shape)
    # right keys and shapes, but carrying the official name: the SHA-256 prefix must match
    fake_official = tmp_path / inc.OFFICIAL_FILENAME
    fake_official.write_bytes(path.read_bytes())
    with pytest.raises(MetricUnavailable, match="SHA-256"):
        load_inception(fake_official)


# ----------------------------------------------------------------------------- stats cache


class TinyFeatures(nn.Module):
    """A stand-in for Inception: per-channel means and stds, [N,3,H,W] -> [N,6]."""

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))
        self.weights_id = "tiny"

    def forward(self, x):
        return torch.cat([x.mean((2, 3)), x.std((2, 3))], 1) + self.dummy


def test_feature_stats_values():
    ims = faces(10, 16)
    st = stats_mod.feature_stats([ims[:4], ims[4:]], TinyFeatures(), batch_size=3, keep_features=6)
    x = torch.from_numpy(ims).permute(0, 3, 1, 2).float() / 255
    f = TinyFeatures()(x).detach().numpy().astype(np.float64)
    assert np.allclose(st["mu"], f.mean(0)) and np.allclose(st["sigma"], np.cov(f, rowvar=False), atol=1e-9)
    assert st["features"].shape == (6, 6) and np.allclose(st["features"], f[:6], atol=1e-6)


def test_stats_cache_computes_once_and_keys_on_settings(tmp_path):
    ds = make_dataset(faces(6, 16))
    calls = []

    def compute():
        calls.append(1)
        return {"mu": np.arange(3.0), "sigma": np.eye(3)}

    first = stats_mod.load_or_compute(ds, "m", {"a": 1}, 6, compute, cache_dir=tmp_path)
    second = stats_mod.load_or_compute(ds, "m", {"a": 1}, 6, compute, cache_dir=tmp_path)
    assert len(calls) == 1 and np.array_equal(first["mu"], second["mu"])
    assert os.listdir(tmp_path / "metrics")
    stats_mod.load_or_compute(ds, "m", {"a": 2}, 6, compute, cache_dir=tmp_path)      # settings
    stats_mod.load_or_compute(ds, "m", {"a": 1}, 5, compute, cache_dir=tmp_path)      # image count
    stats_mod.load_or_compute(ds, "other", {"a": 1}, 6, compute, cache_dir=tmp_path)  # metric
    other = make_dataset(ds.images, fingerprint="another-set")
    stats_mod.load_or_compute(other, "m", {"a": 1}, 6, compute, cache_dir=tmp_path)   # dataset
    assert len(calls) == 5
    k1 = stats_mod.stats_key(make_dataset(ds.images, None), "m", {}, 6)[0]
    k2 = stats_mod.stats_key(make_dataset(ds.images[::-1].copy(), None), "m", {}, 6)[0]
    assert k1 != k2  # no fingerprint and no path: keyed on content


def test_evaluate_fid_kid_swd_and_real_stats_cached(tmp_path, monkeypatch):
    tiny = TinyFeatures()
    monkeypatch.setattr(evaluate_mod, "load_inception", lambda *a, **k: tiny)
    real_calls = []
    orig = evaluate_mod.feature_stats
    monkeypatch.setattr(evaluate_mod, "feature_stats", lambda *a, **k: real_calls.append(1) or orig(*a, **k))
    ims = faces(20, 32)
    ds = make_dataset(ims)
    kw = dict(num_gen=20, cache_dir=tmp_path, progress=False, batch_size=8)
    res = evaluate(["fid10k", "kid", "swd"], gen_from(ims), ds, **kw)
    assert res["fid10k"] == pytest.approx(0.0, abs=1e-6)      # generated == reals
    assert abs(res["kid"]) < 1e-2 and res["swd"] == pytest.approx(0.0, abs=1e-6)
    assert set(res) == {"fid10k", "kid", "swd", "swd/32", "swd/16", "swd_floor", "swd_floor/32", "swd_floor/16"}
    other = faces(20, 32, seed=3)[:, :, ::-1].copy()            # mirrored faces of another seed
    res2 = evaluate(["fid10k", "kid", "swd"], gen_from(other), ds, **kw)
    assert res2["fid10k"] > 1e-4 and res2["swd"] > 1.0
    assert len(real_calls) == 1                                # real statistics came from the cache


def test_evaluate_skips_fid_without_inception_file(tmp_path):
    ims = faces(12, 32)
    lines = []
    missing = tmp_path / "no_inception.pth"
    res = evaluate(["fid10k", "swd"], gen_from(faces(12, 32, seed=1)), make_dataset(ims), num_gen=12,
                   inception_path=missing, cache_dir=tmp_path, progress=False, warn=lines.append)
    assert len(lines) == 1 and "fid10k" in lines[0] and str(missing) in lines[0]
    assert "fid10k" not in res and res["swd"] > 0
    with pytest.raises(ValueError, match="unknown metric"):
        evaluate(["fid1k"], gen_from(ims), make_dataset(ims))
    assert METRICS["fid50k"].num_gen == 50_000 and METRICS["afd"].num_gen == 1_000


def test_evaluate_folder_reads_hw6_layout(tmp_path):
    ims = faces(11, 32)
    folder = tmp_path / "submission"
    folder.mkdir()
    for i, im in enumerate(ims, start=1):
        Image.fromarray(im).resize((48, 48)).save(folder / f"{i}.png")
    files = evaluate_mod._folder_files(str(folder))
    assert [os.path.basename(f) for f in files][:3] == ["1.png", "2.png", "3.png"]
    assert os.path.basename(files[-1]) == "11.png"
    lines = []
    res = evaluate_folder(["swd"], folder, make_dataset(ims), warn=lines.append, progress=False,
                          cache_dir=tmp_path)
    assert len(lines) == 2                   # fewer files than swd's nominal count; resized 48 -> 32
    assert 0 < res["swd"] < 200


# ----------------------------------------------------------------------------- AFD


def test_afd_detects_demo_faces_not_noise():
    pytest.importorskip("animeface", reason="AFD needs the optional animeface package")
    from stylegan_anime.metrics import afd

    assert (afd._LegacyImagingMemory.xsize.offset, afd._LegacyImagingMemory.ysize.offset,
            afd._LegacyImagingMemory.image8.offset, afd._LegacyImagingMemory.image.offset) == (20, 24, 40, 56)
    det = afd.AnimeFaceDetector()                     # self-check passes
    assert afd.afd_rate(faces(8, 64), det) > 0.5      # 64 px faces, upscaled to 128 for detection
    noise = np.random.default_rng(0).integers(0, 256, size=(12, 64, 64, 3), dtype=np.uint8)
    assert afd.afd_rate(noise, det) <= 1 / 12
    mixed = np.concatenate([faces(6, 64), noise[:6]])                # 6 faces then 6 noise images
    res = evaluate(["afd"], gen_from(mixed), make_dataset(mixed), num_gen=12, progress=False)
    assert res["afd"] == pytest.approx(det.count_detected(mixed) / 12) and 0.4 <= res["afd"] <= 0.6


def test_afd_broken_detector_fails_self_check(monkeypatch, tmp_path):
    pytest.importorskip("animeface", reason="AFD needs the optional animeface package")
    from stylegan_anime.metrics import afd

    monkeypatch.setattr(afd, "_detect_raw", lambda rgb, backend: [])
    monkeypatch.setattr(afd, "_DETECTORS", {})
    with pytest.raises(MetricUnavailable, match="anime-face detector self-check failed: .*0 of 8"):
        afd.AnimeFaceDetector()
    lines = []
    ims = faces(4, 32)
    res = evaluate(["afd", "swd"], gen_from(ims), make_dataset(ims), num_gen=4, progress=False,
                   warn=lines.append, cache_dir=tmp_path)
    assert len(lines) == 1 and "afd" in lines[0] and "self-check failed" in lines[0] and "afd" not in res


def test_swd_descriptors_do_not_depend_on_batching_or_order():
    ims = faces(20, 32)
    one = SWDAccumulator(32, patches_per_image=16)
    one.add(ims)
    parts = SWDAccumulator(32, patches_per_image=16)
    parts.add(ims[12:], start=12)                 # out of order, in two accumulators merged afterwards
    other = SWDAccumulator(32, patches_per_image=16)
    other.add(ims[:5])
    other.add(ims[5:12])                          # default start: right after the previous batch
    parts.extend(other.batches())
    assert parts.count == one.count == 20
    for lvl in range(len(one.sizes)):
        assert torch.equal(one.level(lvl), parts.level(lvl))
    with pytest.raises(ValueError, match="added twice"):
        parts.add(ims[:4], start=0)
    # positions are a function of (seed, level, index): a new image keeps its own, a new seed moves them
    pos = patch_positions(range(3, 6), 32, 16, seed=0, level=1)
    assert torch.equal(pos, patch_positions([3, 4, 5], 32, 16, seed=0, level=1))
    assert not torch.equal(pos, patch_positions([3, 4, 5], 32, 16, seed=1, level=1))
    assert not torch.equal(pos[0], pos[1]) and int(pos.min()) >= 3 and int(pos.max()) <= 32 - 4
