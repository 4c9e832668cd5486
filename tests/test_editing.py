"""W-space editing end to end: SeFa directions checked against an independent numpy factorisation, sigma,
edits, the directions / latent files, the projector (schedule, noise penalty, projections of the model's own
samples, a stand-in LPIPS network), and the `project` / `directions` / `edit` commands with their one-line
errors. Uses the session's tiny StyleGAN2 and DCGAN runs from conftest (trained once, read only)."""
from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from conftest import run_cli
from stylegan_anime.generate import Sampler, seed_latents
from stylegan_anime.stylegan2.generator import Generator
from stylegan_anime.tools.directions import (Directions, edit_ws, find_directions, load_directions,
                                             parse_steps)
from stylegan_anime.tools.latents import (layer_groups, load_latent, mix_layers, parse_layer_spec, render,
                                          save_latent, seed_ws, w_avg_ws, ws_resolutions)
from stylegan_anime.tools.projector import (DiscriminatorFeatures, LPIPSFeatures, ProjectSettings, _noise_penalty,
                                            learning_rate, load_discriminator, load_target, project, psnr)


# ------------------------------------------------------------------------------------------ fixtures, helpers
@pytest.fixture(scope="module")
def runs(tiny_runs):
    return {"sg2": tiny_runs["sg2"], "dcgan": tiny_runs["dcgan"]}


@pytest.fixture(scope="module")
def sampler(runs):
    return Sampler(runs["sg2"], device="cpu")


def conv_affines(G) -> list[tuple[int, int, np.ndarray]]:
    """(ws index, block resolution, affine weight x gain [C, w_dim] in float64) of every conv layer, read from the
    state dict: convs are numbered in resolution order, conv0 before conv1 (the 4x4 block has only conv1)."""
    sd = G.synthesis.state_dict()
    out, index = [], 0
    for res in sorted({int(m.group(1)) for k in sd if (m := re.fullmatch(r"b(\d+)\.conv[01]\.affine\.weight", k))}):
        for conv in ("conv0", "conv1"):
            key = f"b{res}.{conv}.affine.weight"
            if key in sd:
                gain = getattr(getattr(G.synthesis, f"b{res}"), conv).affine.weight_gain
                out.append((index, res, sd[key].double().numpy() * gain))
                index += 1
    return out


def index_resolutions(G) -> list[int]:
    """Per ws index, the resolution it first feeds: its conv's block; the indices after the last conv feed the
    final toRGB (the image resolution)."""
    res = [r for _, r, _ in conv_affines(G)]
    return res + [G.img_resolution] * (G.num_ws - len(res))


def sefa_reference(G, layers: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(A with unit rows, eigenvalues descending, eigenvectors as rows) for the convs reading `layers`."""
    A = np.concatenate([w for i, _, w in conv_affines(G) if i in layers])
    A = A / np.linalg.norm(A, axis=1, keepdims=True)
    evals, evecs = np.linalg.eigh(A.T @ A)
    order = np.argsort(evals)[::-1]
    return A, evals[order], evecs[:, order].T


def one_line_error(excinfo) -> str:
    msg = str(excinfo.value)
    assert msg and "\n" not in msg, repr(msg)
    return msg


def assert_cli_error(code, err, match: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: ") and re.search(match, last), err


def max_diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(int) - b.astype(int)).max())


def own_sample(sampler, seed: int) -> tuple[np.ndarray, torch.Tensor]:
    """One of the model's own images (psi 1, the constant noise maps): uint8 [R, R, 3] and [1, 3, R, R] in [-1, 1]."""
    u8 = render(sampler, seed_ws(sampler, [seed]), "const")[0]
    return u8, torch.from_numpy(u8).permute(2, 0, 1)[None].float() / 127.5 - 1


# ------------------------------------------------------------------------------------------ 1. SeFa
def test_sefa_matches_numpy_eigendecomposition(sampler):
    """Wrong affines, a missing weight gain, unnormalised rows or a wrong eigen order would change these numbers."""
    G = sampler.G
    k = 6
    A, evals, evecs = sefa_reference(G, list(range(G.num_ws)))
    d = find_directions(G, k=k)
    assert len(d) == k and d.vectors.shape == (k, G.w_dim) and d.layers == list(range(G.num_ws))
    np.testing.assert_allclose(d.eigenvalues.numpy(), evals[:k], rtol=1e-4)
    v = d.vectors.double().numpy()
    cos = np.abs(np.sum(v * evecs[:k], axis=1))
    assert np.all(cos > 0.9999), cos
    np.testing.assert_allclose(v @ v.T, np.eye(k), atol=1e-5)                       # orthonormal
    np.testing.assert_allclose(np.square(A @ v.T).sum(0), d.eigenvalues.numpy(), rtol=1e-4)  # ||A v||^2
    assert np.all(np.diff(d.eigenvalues.numpy()) <= 0)                                # strongest first


def test_sefa_layer_restriction_uses_only_those_layers(sampler):
    """A layer restriction that still used every layer (or the wrong ones) gives other eigenvectors."""
    G = sampler.G
    coarse = [i for i, r in enumerate(index_resolutions(G)) if r <= 8]
    A, evals, evecs = sefa_reference(G, coarse)
    d = find_directions(G, "coarse", k=4)
    assert d.layers == layer_groups(G)["coarse"] == coarse
    np.testing.assert_allclose(d.eigenvalues.numpy(), evals[:4], rtol=1e-4)
    assert np.all(np.abs(np.sum(d.vectors.double().numpy() * evecs[:4], axis=1)) > 0.9999)
    _, all_evals, _ = sefa_reference(G, list(range(G.num_ws)))
    assert not np.allclose(evals[:4], all_evals[:4], rtol=1e-2)  # the restriction matters on this model
    # an explicit list of indices is the same as the group name
    d2 = find_directions(G, coarse, k=4)
    assert torch.equal(d2.vectors, d.vectors) and d2.layers == coarse


def test_sefa_sign_convention_and_k_range(sampler):
    """Directions files must be reproducible: the largest |component| is positive; k outside 1..w_dim refused."""
    G = sampler.G
    d = find_directions(G, k=G.w_dim)
    v = d.vectors
    pivot = v.abs().argmax(1)
    assert torch.all(v.gather(1, pivot[:, None]) > 0)
    assert torch.equal(find_directions(G, k=G.w_dim).vectors, v)  # deterministic
    for k in (0, G.w_dim + 1):
        with pytest.raises(ValueError) as e:
            find_directions(G, k=k)
        assert str(G.w_dim) in one_line_error(e)


# ------------------------------------------------------------------------------------------ 2. sigma
def test_sigma_is_std_of_mapped_w_along_each_direction(sampler):
    """sigma from other seeds, another psi, or ws of the wrong shape would not match a direct computation."""
    G = sampler.G
    d = find_directions(G, k=4)
    z = seed_latents(list(range(0, 2000)), G.z_dim)
    with torch.no_grad():
        w = G.mapping(z, torch.zeros([2000, G.c_dim]))[:, 0].double().numpy()
    proj = w @ d.vectors.double().numpy().T
    np.testing.assert_allclose(d.sigma.numpy(), proj.std(0, ddof=1), rtol=1e-4)
    other = find_directions(G, k=4, sigma_seed=5000)
    assert torch.equal(other.vectors, d.vectors) and not torch.allclose(other.sigma, d.sigma, rtol=1e-6)


# ------------------------------------------------------------------------------------------ 3. edit_ws
def test_edit_ws_is_linear_and_only_touches_the_direction_layers(sampler):
    """Edits on the wrong layers, in the wrong units or with the wrong sign would fail one of these."""
    G = sampler.G
    d = find_directions(G, "middle", k=3)
    ws = seed_ws(sampler, [0, 1, 2])
    before = ws.clone()
    others = [i for i in range(G.num_ws) if i not in d.layers]
    assert d.layers and others
    assert torch.equal(edit_ws(ws, d, 1, 0.0), ws)
    a = 1.7
    plus, minus = edit_ws(ws, d, 1, a), edit_ws(ws, d, 1, -a)
    torch.testing.assert_close(plus + minus, 2 * ws)
    assert torch.equal(plus[:, others], ws[:, others])
    step = a * d.sigma[1] * d.vectors[1]
    torch.testing.assert_close(plus[:, d.layers] - ws[:, d.layers], step.expand(3, len(d.layers), -1),
                               atol=1e-5, rtol=0)
    # one amount per row
    amounts = torch.tensor([-1.0, 0.0, 2.0])
    each = edit_ws(ws, d, 2, amounts)
    for n, am in enumerate(amounts):
        torch.testing.assert_close(each[n], edit_ws(ws[n:n + 1], d, 2, float(am))[0])
    assert torch.equal(each[1], ws[1])
    assert torch.equal(ws, before)  # the input is not modified
    for bad in (3, -1, 99):
        with pytest.raises(ValueError, match="out of range") as e:
            edit_ws(ws, d, bad, 1.0)
        one_line_error(e)


# ------------------------------------------------------------------------------------------ 4. directions file
def test_directions_file_roundtrip(sampler, tmp_path):
    """Every field must survive save/load exactly; edits from the loaded file are the same."""
    d = find_directions(sampler.G, "coarse+middle", k=5)
    path = d.save(tmp_path / "d.npz", checkpoint="x")
    assert path == tmp_path / "d.npz" and not list(tmp_path.glob(".*tmp*"))
    back = load_directions(path, sampler.G)
    assert torch.equal(back.vectors, d.vectors) and torch.equal(back.eigenvalues, d.eigenvalues)
    assert torch.equal(back.sigma, d.sigma) and back.layers == d.layers and isinstance(back.layers[0], int)
    ws = seed_ws(sampler, [4])
    assert torch.equal(edit_ws(ws, back, 4, 2.0), edit_ws(ws, d, 4, 2.0))


def test_directions_file_refusals(sampler, tmp_path):
    """Another generator's file, a latent file, garbage and a missing file: one-line ValueErrors."""
    d = find_directions(sampler.G, k=3)
    path = d.save(tmp_path / "d.npz")
    wide = Generator(z_dim=16, c_dim=0, w_dim=24, img_resolution=64, img_channels=3, channel_base=256,
                     channel_max=16, num_fp16_res=0)
    small = Generator(z_dim=16, c_dim=0, w_dim=16, img_resolution=32, img_channels=3, channel_base=256,
                      channel_max=16, num_fp16_res=0)  # same w_dim, fewer layers than the file's
    assert wide.w_dim != sampler.G.w_dim and small.num_ws < sampler.G.num_ws
    for G in (wide, small):
        with pytest.raises(ValueError, match="another generator") as e:
            load_directions(path, G)
        one_line_error(e)
    latent = save_latent(tmp_path / "latent.npz", seed_ws(sampler, [0])[0])
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(np.random.default_rng(0).bytes(300))
    npy = tmp_path / "array.npy"
    np.save(npy, np.zeros(3))
    for bad in (latent, garbage, npy):
        with pytest.raises(ValueError, match="not a directions file") as e:
            load_directions(bad, sampler.G)
        one_line_error(e)
    with pytest.raises(ValueError, match="does not exist") as e:
        load_directions(tmp_path / "missing.npz")
    one_line_error(e)


# ------------------------------------------------------------------------------------------ 5. parse_steps
def test_parse_steps():
    """start:stop:count is inclusive with `count` values; lists are read as floats; mistakes are ValueErrors."""
    steps = parse_steps("-3:3:7")
    assert len(steps) == 7 and steps[0] == -3 and steps[-1] == 3
    np.testing.assert_allclose(steps, np.arange(-3, 4))
    assert parse_steps("-2,0,2") == [-2.0, 0.0, 2.0]
    assert parse_steps(" 1.5 ") == [1.5] and parse_steps("2:4:1") == [2.0]
    for bad in ("a:b:c", "1:2", "1:2:0", "1:2:3:4", "x,1", "-3:3:-1"):
        with pytest.raises(ValueError, match="--steps") as e:
            parse_steps(bad)
        one_line_error(e)


@pytest.mark.xfail(strict=True, reason="parse_steps('') and parse_steps(',') return [] instead of raising; the "
                   "commands then fail later with 'error: torch.cat(): expected a non-empty list of Tensors' "
                   "(and `directions` has already written its .npz)")
def test_parse_steps_refuses_an_empty_list():
    for bad in ("", ",", " , "):
        with pytest.raises(ValueError, match="--steps"):
            parse_steps(bad)


# ------------------------------------------------------------------------------------------ 6. latents
def test_layer_groups_partition_the_ws_by_resolution(sampler):
    """Every ws index in exactly one group, by the block resolution it feeds (coarse <= 8, middle 16-32, fine 64+)."""
    G = sampler.G
    assert G.img_resolution == 64 and G.num_ws == 10
    res = index_resolutions(G)
    assert ws_resolutions(G) == res
    groups = layer_groups(G)
    assert sorted(i for g in groups.values() for i in g) == list(range(G.num_ws))
    assert groups["coarse"] == [i for i, r in enumerate(res) if r <= 8]
    assert groups["middle"] == [i for i, r in enumerate(res) if 16 <= r <= 32]
    assert groups["fine"] == [i for i, r in enumerate(res) if r >= 64]
    assert all(groups.values())  # a 64 px model has all three
    assert parse_layer_spec("all", G) == parse_layer_spec(None, G) == list(range(G.num_ws))
    assert parse_layer_spec("Fine+coarse", G) == sorted(groups["coarse"] + groups["fine"])
    assert parse_layer_spec("0-2,5", G) == [0, 1, 2, 5]


def test_seed_ws_truncation_and_w_avg(sampler):
    """seed_ws is the mapping of seed_latents; psi 0 collapses onto the tracked w_avg."""
    G = sampler.G
    ws = seed_ws(sampler, [3, 8])
    with torch.no_grad():
        ref = G.mapping(seed_latents([3, 8], G.z_dim), torch.zeros([2, G.c_dim]))
    assert ws.shape == (2, G.num_ws, G.w_dim) and ws.dtype == torch.float32
    torch.testing.assert_close(ws, ref)
    avg = w_avg_ws(sampler)
    assert avg.shape == (1, G.num_ws, G.w_dim)
    torch.testing.assert_close(seed_ws(sampler, [3, 8], psi=0.0), avg.expand(2, -1, -1))
    torch.testing.assert_close(seed_ws(sampler, [3], psi=0.5), (avg + 0.5 * (ws[:1] - avg)), atol=1e-6, rtol=1e-5)


def test_mix_layers_replaces_exactly_the_given_rows(sampler):
    """Rows in `layers` come from ws2 (broadcast from one row), the rest stay, the input is not modified."""
    ws, ws2 = seed_ws(sampler, [0, 1]), seed_ws(sampler, [5])
    before = ws.clone()
    layers = [1, 4, 9]
    mixed = mix_layers(ws, ws2, layers)
    rest = [i for i in range(ws.shape[1]) if i not in layers]
    assert torch.equal(mixed[:, layers], ws2[:, layers].expand(2, -1, -1))
    assert torch.equal(mixed[:, rest], ws[:, rest])
    assert torch.equal(ws, before)
    assert torch.equal(mix_layers(ws, ws2, []), ws)


def test_latent_file_roundtrip_and_stylegan2_ada_format(sampler, tmp_path):
    """Our file and NVlabs' projected_w.npz (key `w`, [1, num_ws, w_dim] or one w) load as [1, num_ws, w_dim]."""
    G = sampler.G
    ws = seed_ws(sampler, [6])
    path = save_latent(tmp_path / "a.npz", ws, mode="w", psnr=31.5)
    back = load_latent(path, G)
    assert back.shape == (1, G.num_ws, G.w_dim) and torch.equal(back, ws)
    with np.load(path) as f:
        assert f["ws"].shape == (G.num_ws, G.w_dim) and str(f["mode"]) == "w" and float(f["psnr"]) == 31.5
    assert torch.equal(load_latent(save_latent(tmp_path / "b.npz", ws[0]), G), ws)  # [num_ws, w_dim] in
    np.savez(tmp_path / "ada.npz", w=ws.numpy())                                      # [1, num_ws, w_dim]
    assert torch.equal(load_latent(tmp_path / "ada.npz", G), ws)
    one = ws[:, :1].numpy()                                                           # [1, 1, w_dim]
    np.savez(tmp_path / "ada1.npz", w=one)
    assert torch.equal(load_latent(tmp_path / "ada1.npz", G), torch.from_numpy(one).expand(1, G.num_ws, -1))

    np.savez(tmp_path / "wide.npz", w=np.zeros([1, G.num_ws, G.w_dim + 8], np.float32))
    np.savez(tmp_path / "rows.npz", ws=np.zeros([G.num_ws - 1, G.w_dim], np.float32))
    np.savez(tmp_path / "nokey.npz", x=np.zeros(3))
    (tmp_path / "junk.npz").write_bytes(b"not a zip file at all")
    for bad, match in [("wide.npz", "does not fit"), ("rows.npz", "does not fit"), ("nokey.npz", "no latent"),
                       ("junk.npz", "not a latent"), ("missing.npz", "does not exist")]:
        with pytest.raises(ValueError, match=match) as e:
            load_latent(tmp_path / bad, G)
        one_line_error(e)


def test_render_noise_modes(sampler):
    """'const' is reproducible (and independent of batching up to rounding), 'random' is not, others are refused."""
    ws = seed_ws(sampler, [0, 1, 2])
    a = render(sampler, ws, "const")
    assert a.shape == (3, 64, 64, 3) and a.dtype == np.uint8
    assert np.array_equal(a, render(sampler, ws, "const"))
    # batching changes float rounding only (grouped modulated convs): at most 1 level
    assert max_diff(a, render(sampler, ws, "const", batch=1)) <= 1
    r1, r2 = render(sampler, ws, "random"), render(sampler, ws, "random")
    assert not np.array_equal(r1, r2)
    assert np.array_equal(render(sampler, ws, "none"), render(sampler, ws, "none"))
    with pytest.raises(ValueError, match="noise must be one of") as e:
        render(sampler, ws, "fixed")
    one_line_error(e)


# ------------------------------------------------------------------------------------------ 7. projector
def test_learning_rate_schedule():
    """~0 at the start, the full lr in the middle, a cosine ramp to ~0 at the end (stylegan2-ada's schedule)."""
    s = ProjectSettings(lr=0.2, lr_rampup=0.05, lr_rampdown=0.25)

    def reference(t):  # stylegan2-ada-pytorch projector.py
        ramp = min(1.0, (1.0 - t) / s.lr_rampdown)
        ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
        return s.lr * ramp * min(1.0, t / s.lr_rampup)

    ts = np.linspace(0, 0.999, 200)
    lrs = np.array([learning_rate(s, float(t)) for t in ts])
    np.testing.assert_allclose(lrs, [reference(float(t)) for t in ts], rtol=1e-9, atol=1e-12)
    assert learning_rate(s, 0.0) < 1e-9 and learning_rate(s, 0.999) < 1e-4 * s.lr
    assert learning_rate(s, 0.5) == pytest.approx(s.lr)
    up, down = lrs[ts <= 0.05], lrs[ts >= 0.75]
    assert np.all(np.diff(up) > 0) and np.all(np.diff(down) < 0)
    assert np.allclose(lrs[(ts >= 0.05) & (ts <= 0.75)], s.lr)


def test_noise_penalty_prefers_white_noise():
    """The autocorrelation penalty must be far larger for smooth (correlated) maps than for white noise."""
    g = torch.Generator().manual_seed(1)
    white = [torch.randn(r, r, generator=g) for r in (8, 16, 32, 64)]
    smooth = [F.interpolate(torch.randn(1, 1, r // 4, r // 4, generator=g), size=(r, r), mode="bilinear",
                            align_corners=False)[0, 0] for r in (8, 16, 32, 64)]
    smooth = [(m - m.mean()) / m.std() for m in smooth]
    pw, ps = float(_noise_penalty(white)), float(_noise_penalty(smooth))
    assert ps > 50 * pw and ps > 0.5


def test_psnr_and_load_target(tmp_path):
    """psnr of known images; load_target gives the image and its [-1, 1] tensor; bad files are ValueErrors."""
    a = np.zeros([4, 4, 3], np.uint8)
    assert psnr(a, a) == float("inf")
    assert psnr(a, a + 1) == pytest.approx(10 * np.log10(255.0 ** 2))
    img = np.random.default_rng(0).integers(0, 256, [64, 64, 3], dtype=np.uint8)
    Image.fromarray(img).save(tmp_path / "t.png")
    u8, t = load_target(tmp_path / "t.png", 64)
    assert np.array_equal(u8, img) and t.shape == (1, 3, 64, 64)
    torch.testing.assert_close(t[0].permute(1, 2, 0), torch.from_numpy(img).float() / 127.5 - 1)
    (tmp_path / "bad.png").write_bytes(b"\x89PNG broken")
    for bad, match in [("bad.png", "not a readable image"), ("none.png", "does not exist")]:
        with pytest.raises(ValueError, match=match) as e:
            load_target(tmp_path / bad, 64)
        one_line_error(e)


@pytest.fixture(scope="module")
def projected(sampler, runs):
    """Seed 7's image projected (W, keep-noise, discriminator features), twice with the same settings."""
    target = own_sample(sampler, 7)
    s = ProjectSettings(steps=80, mode="w", w_avg_samples=500, frame_every=0, optimize_noise=False)
    dist = DiscriminatorFeatures(load_discriminator(sampler, runs["sg2"]))
    noise_before = {n: b.clone() for n, b in sampler.G.synthesis.named_buffers() if "noise_const" in n}
    results = [project(sampler, target[1], s, dist, progress=False) for _ in range(2)]
    return {"target": target, "settings": s, "results": results, "noise_before": noise_before}


def test_projecting_an_own_sample_gets_closer_than_the_start(sampler, projected):
    """The optimisation must move from the mean w towards the target, and report the image `edit` would render."""
    G = sampler.G
    u8 = projected["target"][0]
    r = projected["results"][0]
    s = projected["settings"]
    z = seed_latents(list(range(s.seed, s.seed + s.w_avg_samples)), G.z_dim)
    with torch.no_grad():
        w_mean = G.mapping(z, torch.zeros([len(z), G.c_dim]))[:, 0].mean(0)
    start = render(sampler, w_mean.reshape(1, 1, -1).expand(1, G.num_ws, -1), "const")[0]
    assert psnr(r.image, u8) > psnr(start, u8) + 2.0, (psnr(r.image, u8), psnr(start, u8))
    assert np.mean(r.losses[-5:]) < r.losses[0] and len(r.losses) == s.steps
    assert r.ws.shape == (1, G.num_ws, G.w_dim)
    assert max_diff(render(sampler, r.ws, "const")[0], r.image) <= 1
    # keep-noise: the projector works on a copy, the model's own noise maps are returned and left alone
    for name, buf in sampler.G.synthesis.named_buffers():
        if "noise_const" in name:
            assert torch.equal(buf, projected["noise_before"][name])
    assert r.noise and all(torch.equal(v, projected["noise_before"][f"{k}.noise_const"]) for k, v in r.noise.items())


def test_projection_is_deterministic_and_w_mode_shares_one_w(projected):
    """Same settings -> the same latent; W mode broadcasts a single w to every layer."""
    a, b = projected["results"]
    assert torch.equal(a.ws, b.ws) and a.losses == b.losses
    assert torch.equal(a.ws, a.ws[:, :1].expand_as(a.ws))


def test_w_plus_projection_has_one_w_per_layer(sampler):
    """W+ optimises every layer's w separately: after a few steps the rows differ."""
    _, target = own_sample(sampler, 9)
    s = ProjectSettings(steps=30, mode="w+", w_avg_samples=200, frame_every=5)
    r = project(sampler, target, s, None, progress=False)
    rows = r.ws[0]
    assert not torch.allclose(rows[0], rows[-1]) and len({tuple(x.tolist()) for x in rows}) == rows.shape[0]
    assert len(r.frames) == 7 and r.frames[0].shape == (64, 64, 3)  # steps 0, 5, ..., 25 and the last one


class FakeVGG(nn.Module):
    """Stands in for stylegan2-ada's TorchScript vgg16.pt: same call signature and defaults (so the projector must
    pass resize_images=False, return_lpips=True), counts its calls and records the input size."""

    def __init__(self):
        super().__init__()
        self.register_buffer("calls", torch.zeros((), dtype=torch.int64))
        self.register_buffer("last_size", torch.zeros((), dtype=torch.int64))

    def forward(self, x: torch.Tensor, resize_images: bool = True, return_lpips: bool = False) -> torch.Tensor:
        if resize_images or not return_lpips:
            raise RuntimeError("called like the metrics, not like the projector")
        self.calls.add_(1)
        self.last_size.fill_(x.shape[-1])
        return F.avg_pool2d(x / 255.0, 32).flatten(1)


def test_lpips_network_file_is_loaded_and_used(sampler, tmp_path):
    """A TorchScript file by path: images go in at 256 px in [0, 255], it is called once per step (+ the
    target); a file that is not TorchScript is a one-line ValueError."""
    path = tmp_path / "vgg16.pt"
    with warnings.catch_warnings():  # newer torch deprecates TorchScript; the published vgg16.pt is TorchScript
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(FakeVGG()).save(str(path))
    lp = LPIPSFeatures(path, "cpu")
    white = lp.features(torch.ones(1, 3, 64, 64))
    assert int(lp.net.last_size) == 256 and white.shape == (1, 3 * 8 * 8)
    torch.testing.assert_close(white, torch.ones_like(white))          # +1 -> 255 -> 1.0
    black = lp.features(-torch.ones(2, 3, 64, 64))
    torch.testing.assert_close(lp(white, black), torch.full((2,), 192.0))  # squared distance summed per image
    calls = int(lp.net.calls)
    _, target = own_sample(sampler, 2)
    r = project(sampler, target, ProjectSettings(steps=5, w_avg_samples=100, frame_every=0), lp, progress=False)
    assert int(lp.net.calls) == calls + 1 + 5 and len(r.losses) == 5
    pixels = project(sampler, target, ProjectSettings(steps=5, w_avg_samples=100, frame_every=0), None,
                     progress=False)
    assert r.losses != pixels.losses  # the network's distance is part of the loss

    junk = tmp_path / "junk.pt"
    junk.write_bytes(np.random.default_rng(0).bytes(2000))
    with pytest.raises(ValueError, match="TorchScript") as e:
        LPIPSFeatures(junk, "cpu")
    one_line_error(e)
    with pytest.raises(ValueError, match="does not exist") as e:
        LPIPSFeatures(tmp_path / "none.pt", "cpu")
    one_line_error(e)


# ------------------------------------------------------------------------------------------ 8. commands
@pytest.fixture(scope="module")
def files(sampler, tmp_path_factory):
    """A target image (an own sample), a directions file and a latent file, for the commands."""
    root = tmp_path_factory.mktemp("editing-files")
    u8, _ = own_sample(sampler, 5)
    Image.fromarray(u8).save(root / "face.png")
    find_directions(sampler.G, k=3).save(root / "dirs.npz")
    save_latent(root / "latent.npz", seed_ws(sampler, [1]))
    return {"target": root / "face.png", "target_u8": u8, "dirs": root / "dirs.npz", "latent": root / "latent.npz"}


def test_project_command_writes_latent_images_and_video(runs, sampler, files, tmp_path, capsys):
    """NAME.npz / .png / -compare.png / .mp4; the latent renders the written image; the video has every step."""
    out = tmp_path / "proj"
    code, _, err = run_cli(["project", "--checkpoint", str(runs["sg2"]), "--target", str(files["target"]),
                            "--outdir", str(out), "--steps", "20", "--video", "--no-progress", "--device", "cpu"],
                           capsys)
    assert code == 0, err
    assert "PSNR" in err
    assert sorted(p.name for p in out.iterdir()) == ["face-compare.png", "face.mp4", "face.npz", "face.png"]
    image = np.asarray(Image.open(out / "face.png").convert("RGB"))
    compare = np.asarray(Image.open(out / "face-compare.png").convert("RGB"))
    assert image.shape == (64, 64, 3) and compare.shape == (64, 128, 3)
    assert np.array_equal(compare[:, :64], files["target_u8"]) and np.array_equal(compare[:, 64:], image)
    ws = load_latent(out / "face.npz", sampler.G)
    assert torch.equal(ws, ws[:, :1].expand_as(ws))  # mode w
    assert max_diff(render(sampler, ws, "const")[0], image) <= 1
    with np.load(out / "face.npz") as f:
        assert float(f["psnr"]) == pytest.approx(psnr(image, files["target_u8"]), abs=1e-6)
        assert int(f["steps"]) == 20 and str(f["distance"]) == "d"
    data = (out / "face.mp4").read_bytes()
    assert len(data) > 100 and data[4:8] == b"ftyp"
    import imageio_ffmpeg
    frames = imageio_ffmpeg.read_frames(str(out / "face.mp4"))
    meta = next(frames)
    assert tuple(meta["size"]) == (128, 64) and sum(1 for _ in frames) == 20


def test_directions_and_edit_commands(runs, sampler, files, tmp_path, capsys):
    """directions: file + one figure per direction (rows = seeds, columns = steps) + the table; edit: a figure
    from seeds, and one edit of a latent written as image + latent, equal to edit_ws + render."""
    run = str(runs["sg2"])
    d_path, figs = tmp_path / "d.npz", tmp_path / "figs"
    code, out, err = run_cli(["directions", "--checkpoint", run, "--out", str(d_path), "--num", "3",
                              "--figures", str(figs), "--seeds", "0-1", "--steps", "-2:2:3", "--psi", "1",
                              "--device", "cpu"], capsys)
    assert code == 0, err
    d = load_directions(d_path, sampler.G)
    assert len(d) == 3 and d.layers == list(range(sampler.G.num_ws))
    assert torch.equal(d.vectors, find_directions(sampler.G, k=3).vectors)
    table = out.strip().splitlines()
    assert table[0].split() == ["direction", "eigenvalue", "sigma"] and len(table) == 4
    for k, row in enumerate(table[1:]):
        idx, ev, sg = row.split()
        assert int(idx) == k and float(ev) == pytest.approx(float(d.eigenvalues[k]), abs=1e-3)
        assert float(sg) == pytest.approx(float(d.sigma[k]), abs=1e-3)
    assert sorted(p.name for p in figs.iterdir()) == [f"direction-{k}.png" for k in range(3)]
    fig = np.asarray(Image.open(figs / "direction-1.png").convert("RGB"))
    assert fig.shape == (2 * 64, 3 * 64, 3)
    ws = seed_ws(sampler, [0, 1])
    expected = render(sampler, edit_ws(ws, d, 1, -2.0), "const")[1]    # row seed 1, column -2
    assert max_diff(fig[64:, :64], expected) <= 1                     # (a batch of 6 vs 3: rounding only)
    assert max_diff(fig[:64, 64:128], render(sampler, ws, "const")[0]) <= 1  # middle column: amount 0

    code, _, err = run_cli(["edit", "--checkpoint", run, "--directions", str(d_path), "--direction", "0",
                            "--seeds", "0-1", "--output", str(tmp_path / "e.png"), "--device", "cpu"], capsys)
    assert code == 0, err
    assert np.asarray(Image.open(tmp_path / "e.png")).shape[:2] == (2 * 64, 7 * 64)  # default steps -3:3:7

    proj = tmp_path / "proj"
    code, _, err = run_cli(["project", "--checkpoint", run, "--target", str(files["target"]), "--outdir", str(proj),
                            "--steps", "5", "--no-video", "--no-progress", "--device", "cpu"], capsys)
    assert code == 0, err
    code, _, err = run_cli(["edit", "--checkpoint", run, "--directions", str(d_path), "--direction", "2",
                            "--latent", str(proj / "face.npz"), "--amount", "2", "--output", str(tmp_path / "x.png"),
                            "--device", "cpu"], capsys)
    assert code == 0, err
    edited = edit_ws(load_latent(proj / "face.npz", sampler.G), d, 2, 2.0)
    torch.testing.assert_close(load_latent(tmp_path / "x.npz", sampler.G), edited)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "x.png").convert("RGB")),
                          render(sampler, edited, "const")[0])


@pytest.mark.parametrize("args, match", [
    (["project", "--checkpoint", "{dcgan}", "--target", "{target}", "--outdir", "{tmp}/o"], "StyleGAN2"),
    (["directions", "--checkpoint", "{dcgan}", "--out", "{tmp}/d.npz"], "StyleGAN2"),
    (["edit", "--checkpoint", "{dcgan}", "--directions", "{dirs}", "--direction", "0", "--seeds", "0",
      "--output", "{tmp}/e.png"], "StyleGAN2"),
    (["project", "--checkpoint", "{sg2}", "--target", "{target}", "--outdir", "{tmp}/o", "--distance", "lpips"],
     "--vgg"),
    (["directions", "--checkpoint", "{sg2}", "--out", "{tmp}/d.npz", "--video"], "--figures"),
    (["edit", "--checkpoint", "{sg2}", "--directions", "{dirs}", "--direction", "0", "--seeds", "0",
      "--latent", "{latent}", "--output", "{tmp}/e.png"], "either --seeds or --latent"),
    (["edit", "--checkpoint", "{sg2}", "--directions", "{dirs}", "--direction", "99", "--seeds", "0",
      "--output", "{tmp}/e.png"], "out of range"),
    (["project", "--checkpoint", "{sg2}", "--target", "{tmp}/missing.png", "--outdir", "{tmp}/o"], "does not exist"),
])
def test_command_errors_are_one_line(runs, files, tmp_path, capsys, args, match):
    """User mistakes: exit 2, one `error: ...` line, no traceback, and nothing written."""
    fill = {"dcgan": str(runs["dcgan"]), "sg2": str(runs["sg2"]), "target": str(files["target"]),
            "dirs": str(files["dirs"]), "latent": str(files["latent"]), "tmp": str(tmp_path)}
    argv = [a.format(**fill) for a in args] + ["--device", "cpu"]
    if argv[0] == "project":
        argv.append("--no-progress")
    code, _, err = run_cli(argv, capsys)
    assert_cli_error(code, err, re.escape(match))
    assert not list(tmp_path.iterdir()), list(tmp_path.iterdir())


# ------------------------------------------------------------------------------------------ 9. tag report
def test_directions_tag_report_command(runs, tmp_path, capsys, monkeypatch):
    """--tags-data trains (and caches under $STYLEGAN_ANIME_CACHE) a tag classifier and prints one row per
    direction: hair and eye colour moved from -3 to +3 sigma, with shift and flip share in [0, 1]."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("STYLEGAN_ANIME_CACHE", str(cache))
    code, out, err = run_cli(["directions", "--checkpoint", str(runs["sg2"]), "--out", str(tmp_path / "d.npz"),
                              "--num", "2", "--tags-data", "demo:64", "--device", "cpu"], capsys)
    assert code == 0, err
    assert "held-out accuracy" in out
    lines = out.splitlines()
    start = [i for i, line in enumerate(lines) if line.split()[:1] == ["direction"]][-1]
    assert lines[start].split() == ["direction", "hair", "eye"]
    rows = lines[start + 1:]
    assert len(rows) == 2
    for k, row in enumerate(rows):
        m = re.fullmatch(r"\s*(\d+)\s+(\w+)->(\w+) ([\d.]+)/([\d.]+)\s+(\w+)->(\w+) ([\d.]+)/([\d.]+)\s*", row)
        assert m, row
        assert int(m.group(1)) == k
        assert all(0 <= float(m.group(g)) <= 1 for g in (4, 5, 8, 9))
    assert cache.is_dir() and any(cache.rglob("*"))  # the dataset / classifier went to the cache we set
