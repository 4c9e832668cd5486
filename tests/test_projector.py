"""`project`: the projector's schedule and noise penalty, projections of the model's own samples (W and W+,
discriminator / pixel / stand-in LPIPS distances), and the command's files and one-line errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from conftest import run_cli
from stylegan_anime.generate import Sampler
from stylegan_anime.editing.latents import load_latent, render, seed_ws, w_avg_ws
from stylegan_anime.editing.projector import (DiscriminatorFeatures, LPIPSFeatures, ProjectSettings, _noise_penalty,
                                            learning_rate, load_discriminator, load_target, project,
                                            projection_compare, psnr)

STEPS = 40


@pytest.fixture(scope="module")
def sampler(tiny_runs):
    return Sampler(tiny_runs["sg2"], device="cpu")


@pytest.fixture(scope="module")
def target(sampler):
    """An own sample (seed 11, psi 1, constant noise): uint8 [R, R, 3] and [1, 3, R, R] in [-1, 1]."""
    u8 = render(sampler, seed_ws(sampler, [11]), "const")[0]
    return u8, torch.from_numpy(u8).permute(2, 0, 1)[None].float() / 127.5 - 1


def settings(**kw) -> ProjectSettings:
    return ProjectSettings(**{"steps": STEPS, "w_avg_samples": 500, "frame_every": 0, **kw})


def test_learning_rate_ramps_up_then_down():
    s = ProjectSettings(lr=0.1)
    assert learning_rate(s, 0.0) == 0.0
    assert learning_rate(s, 0.025) == pytest.approx(0.05)           # halfway up the 5% ramp
    assert learning_rate(s, 0.05) == pytest.approx(0.1) == learning_rate(s, 0.5) == learning_rate(s, 0.75)
    assert learning_rate(s, 0.875) == pytest.approx(0.05)           # cosine: halfway down the last 25%
    assert learning_rate(s, 0.999) < 1e-4
    down = [learning_rate(s, t) for t in np.linspace(0.75, 0.999, 20)]
    assert all(a >= b for a, b in zip(down, down[1:]))


def test_noise_penalty_punishes_correlated_noise():
    g = torch.Generator().manual_seed(0)
    white = [torch.randn(32, 32, generator=g), torch.randn(16, 16, generator=g)]
    smooth = [F.interpolate(torch.randn(1, 1, r // 4, r // 4, generator=g), size=(r, r), mode="bilinear")[0, 0]
              for r in (32, 16)]
    smooth = [m / m.std() for m in smooth]
    assert _noise_penalty(smooth) > 100 * _noise_penalty(white)


def test_discriminator_features(sampler, tiny_runs, target):
    feats = DiscriminatorFeatures(load_discriminator(sampler, tiny_runs["sg2"]))
    fa = feats.features(target[1])
    for f in fa:
        torch.testing.assert_close(f.square().sum(1), torch.ones_like(f[:, 0]))    # unit norm per position
    assert feats(fa, fa).item() == 0
    other = render(sampler, seed_ws(sampler, [12]), "const")[0]
    fb = feats.features(torch.from_numpy(other).permute(2, 0, 1)[None].float() / 127.5 - 1)
    assert feats(fa, fb).item() > 0


@pytest.mark.parametrize("distance", ["d", "pixels"])
def test_own_sample_projects_back_closer_than_the_start(sampler, tiny_runs, target, distance):
    u8, t = target
    dist = DiscriminatorFeatures(load_discriminator(sampler, tiny_runs["sg2"])) if distance == "d" else None
    p = project(sampler, t, settings(optimize_noise=False), dist, progress=False)
    start = render(sampler, w_avg_ws(sampler), "const")[0]
    assert psnr(p.image, u8) > psnr(start, u8) + 3, (psnr(p.image, u8), psnr(start, u8))
    assert p.losses[-1] < p.losses[0]
    assert np.array_equal(p.image, render(sampler, p.ws, "const")[0])    # the image is what the latent renders
    assert torch.equal(p.ws[0, 0].expand_as(p.ws[0]), p.ws[0])          # W mode: one w for every layer
    again = project(sampler, t, settings(optimize_noise=False), dist, progress=False)
    assert torch.equal(again.ws, p.ws)                                   # deterministic


def test_w_plus_and_noise_optimisation(sampler, target):
    u8, t = target
    p = project(sampler, t, settings(mode="w+", frame_every=10, optimize_noise=True), progress=False)
    assert not torch.equal(p.ws[0, 0], p.ws[0, -1])                      # one w per layer
    assert len(p.frames) == STEPS // 10 + 1 and p.frames[0].shape == u8.shape
    for name, m in p.noise.items():                                      # renormalised after every step
        assert abs(float(m.mean())) < 1e-4 and float(m.std(unbiased=False)) == pytest.approx(1, abs=1e-3), name
    own = {n: b for n, b in sampler.G.synthesis.named_buffers() if n.endswith("noise_const")}
    assert any(not torch.equal(b, p.noise[n.rsplit(".", 1)[0]]) for n, b in own.items())  # maps were optimised
    assert psnr(p.image, u8) > psnr(render(sampler, w_avg_ws(sampler), "const")[0], u8)


class FakeVGG(torch.nn.Module):
    """The call of stylegan2-ada-pytorch's vgg16.pt: f(x in [0, 255] at 256 px, resize_images, return_lpips)."""

    def forward(self, x: torch.Tensor, resize_images: bool = True, return_lpips: bool = False) -> torch.Tensor:
        assert x.shape[2] == 256 and x.shape[3] == 256 and not resize_images and return_lpips
        f = F.avg_pool2d(x / 255.0, 16).flatten(1)
        return f / f.square().sum(1, keepdim=True).sqrt()


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")
def test_lpips_file_by_path(sampler, target, tmp_path):
    path = tmp_path / "vgg16.pt"
    torch.jit.script(FakeVGG()).save(str(path))
    lp = LPIPSFeatures(path, "cpu")
    u8, t = target
    fa = lp.features(t)
    assert fa.shape == (1, 3 * 16 * 16) and lp(fa, fa).item() == 0
    p = project(sampler, t, settings(optimize_noise=False), lp, progress=False)
    assert psnr(p.image, u8) > psnr(render(sampler, w_avg_ws(sampler), "const")[0], u8)
    (tmp_path / "junk.pt").write_bytes(b"\x00not torchscript")
    with pytest.raises(ValueError, match="cannot load .* as a TorchScript VGG16"):
        LPIPSFeatures(tmp_path / "junk.pt", "cpu")
    with pytest.raises(ValueError, match="VGG16 file does not exist"):
        LPIPSFeatures(tmp_path / "none.pt", "cpu")


def test_load_target(tmp_path):
    Image.new("RGB", (120, 80), (255, 0, 0)).save(tmp_path / "red.png")
    u8, t = load_target(tmp_path / "red.png", 32)
    assert u8.shape == (32, 32, 3) and (u8 == [255, 0, 0]).all()
    assert t.shape == (1, 3, 32, 32) and t[0, 0].min() == 1 and t[0, 1].max() == -1
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(ValueError, match="not a readable image"):
        load_target(tmp_path / "notes.png", 32)


def test_noise_optimisation_works_on_a_copy(sampler, target):
    """--noise changes the projection's maps, never the sampler's own constant ones."""
    before = {n: b.clone() for n, b in sampler.G.synthesis.named_buffers() if n.endswith("noise_const")}
    p = project(sampler, target[1], settings(steps=4, optimize_noise=True), progress=False)
    after = dict(sampler.G.synthesis.named_buffers())
    assert before and all(torch.equal(after[n], b) for n, b in before.items())
    assert sorted(f"{k}.noise_const" for k in p.noise) == sorted(before)
    assert all(not torch.equal(m, before[f"{k}.noise_const"]) for k, m in p.noise.items())


def test_noise_maps_are_kept_by_default(sampler, target):
    """Default: the model's constant maps stay (the latent alone reproduces the image in edit / explore)."""
    assert not ProjectSettings().optimize_noise
    p = project(sampler, target[1], settings(steps=3), progress=False)
    own = dict(sampler.G.synthesis.named_buffers())
    assert all(torch.equal(m, own[f"{name}.noise_const"]) for name, m in p.noise.items()) and p.noise


def test_settings_are_checked():
    for kw, match in [({"mode": "z"}, "--mode"), ({"steps": 0}, "--steps"), ({"lr": 0}, "--lr"),
                      ({"pixel_weight": -1}, "--pixel-weight")]:
        with pytest.raises(ValueError, match=match):
            ProjectSettings(**kw).check()


# ------------------------------------------------------------------------------------------ the command
def md5(path) -> str:
    import hashlib

    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def test_project_command_writes_latent_images_and_video(tiny_runs, target, tmp_path, capsys):
    s = Sampler(tiny_runs["sg2"], device="cpu")
    R = s.G.img_resolution
    Image.fromarray(target[0]).save(tmp_path / "me.png")
    code, _, err = run_cli(["project", "--checkpoint", str(tiny_runs["sg2"]), "--target", str(tmp_path / "me.png"),
                            "--outdir", str(tmp_path / "proj"), "--steps", "10", "--no-progress", "--face-px", "96",
                            "--device", "cpu"], capsys)
    assert code == 0, err
    assert "PSNR" in err
    out = tmp_path / "proj"
    assert sorted(p.name for p in out.iterdir()) == ["me-compare.png", "me-projected.mp4", "me-projected.npz",
                                                      "me-projected.png"]
    ws = load_latent(out / "me-projected.npz", s.G)
    found = np.asarray(Image.open(out / "me-projected.png"))
    assert np.array_equal(found, render(s, ws, "const")[0])                             # native size, exact
    with np.load(out / "me-projected.npz") as f:
        quality = float(f["psnr"])
        assert quality == pytest.approx(psnr(found, target[0]), abs=1e-6)
        assert any(k.startswith("noise/") for k in f.files)
    compare = np.asarray(Image.open(out / "me-compare.png"))                            # labelled, 96 px faces
    expected = projection_compare(target[0], found, quality, f"me.png: w, 10 steps, d distance", face_px=96)
    assert np.array_equal(compare, expected.image)
    assert compare.shape[0] > 96 and compare.shape[1] == 2 * 96 and expected.top > 0
    import imageio_ffmpeg

    assert (out / "me-projected.mp4").read_bytes()[4:8] == b"ftyp"
    frames = imageio_ffmpeg.read_frames(str(out / "me-projected.mp4"))
    assert tuple(next(frames)["size"]) == (2 * 96, 96) and sum(1 for _ in frames) == 10   # target | step, upscaled


def test_projection_compare_is_labelled(target):
    """target | projection at face_px with 'target' / 'projection' over the columns and the PSNR in the title."""
    u8 = target[0]
    grid = projection_compare(u8, u8[::-1].copy(), 12.5, "caption", face_px=80)
    img = grid.image
    assert img.shape == (grid.top + 80, 2 * 80, 3) and grid.left == 0 and grid.top >= 20
    band = img[:grid.top]
    assert (band < 128).any() and (band == 255).mean() > 0.5                            # dark text on white
    for c, text in enumerate(["target", "projection"]):                                 # each column has its word
        assert (img[grid.top - 12:grid.top, c * 80:(c + 1) * 80] < 128).any(), text
    bare = projection_compare(u8, u8, 12.5, face_px=80)
    assert np.array_equal(bare.cell(0, 0), np.asarray(Image.fromarray(u8).resize((80, 80), Image.LANCZOS)))


def _project_argv(tiny_runs, target_path, outdir, *extra):
    return ["project", "--checkpoint", str(tiny_runs["sg2"]), "--target", str(target_path), "--outdir", str(outdir),
            "--steps", "2", "--no-progress", "--no-video", "--face-px", "32", "--device", "cpu", *extra]


def test_project_into_the_targets_folder_keeps_the_target(tiny_runs, target, tmp_path, capsys):
    """The data-loss bug: `project --target me.png --outdir .` wrote the projection as me.png."""
    Image.fromarray(target[0]).save(tmp_path / "me.png")
    before = md5(tmp_path / "me.png")
    code, _, err = run_cli(_project_argv(tiny_runs, tmp_path / "me.png", tmp_path), capsys)
    assert code == 0, err
    assert md5(tmp_path / "me.png") == before
    assert {"me-projected.png", "me-projected.npz", "me-compare.png"} <= {p.name for p in tmp_path.iterdir()}


def test_project_refuses_to_overwrite_an_output(tiny_runs, target, tmp_path, capsys):
    Image.fromarray(target[0]).save(tmp_path / "me.png")
    out = tmp_path / "proj"
    out.mkdir()
    (out / "me-compare.png").write_bytes(b"my own compare")
    code, _, err = run_cli(_project_argv(tiny_runs, tmp_path / "me.png", out), capsys)
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert "me-compare.png already exists" in err
    assert (out / "me-compare.png").read_bytes() == b"my own compare"
    assert sorted(p.name for p in out.iterdir()) == ["me-compare.png"]                  # refused before any work


def test_project_does_not_follow_a_planted_symlink(tiny_runs, target, tmp_path, capsys):
    Image.fromarray(target[0]).save(tmp_path / "me.png")
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "proj"
    out.mkdir()
    (out / "me-projected.png").symlink_to(victim)
    code, _, err = run_cli(_project_argv(tiny_runs, tmp_path / "me.png", out), capsys)
    assert code == 2 and "me-projected.png already exists" in err and err.count("\n") == 1, err
    assert victim.read_text() == "precious" and (out / "me-projected.png").is_symlink()


@pytest.mark.parametrize("args, match", [
    (["--checkpoint", "DCGAN"], "needs a StyleGAN2 checkpoint"),
    (["--distance", "lpips"], "--distance lpips needs --vgg"),
    (["--vgg", "v.pt", "--distance", "d"], "--vgg is for --distance lpips"),
    (["--target", "missing.png"], "target image does not exist"),
    (["--target", "NOTES"], "not a readable image"),
    (["--steps", "0"], "--steps must be positive"),
    (["--steps", "1000000000"], "--steps must be at most"),
    (["--lr", "nan"], "--lr must be positive"),
    (["--lr", "inf"], "--lr must be a finite number"),
    (["--lr", "1e30"], "--lr must be in (0, 10]"),
    (["--pixel-weight", "nan"], "--pixel-weight must be a finite number"),
    (["--face-px", "0"], "--face-px must be between"),
    (["--checkpoint", "nothing-here.pt"], "checkpoint does not exist"),
])
def test_project_errors_are_one_line(tiny_runs, tmp_path, capsys, args, match):
    (tmp_path / "notes.png").write_text("not an image")
    Image.new("RGB", (8, 8)).save(tmp_path / "t.png")
    names = {"DCGAN": str(tiny_runs["dcgan"]), "NOTES": str(tmp_path / "notes.png")}
    argv = ["project", "--checkpoint", str(tiny_runs["sg2"]), "--target", str(tmp_path / "t.png"),
            "--outdir", str(tmp_path / "o"), "--steps", "2", "--no-video", "--no-progress"]
    argv += [names.get(a, a) for a in args]
    code, _, err = run_cli(argv, capsys)
    assert code == 2 and err.startswith("error: ") and match in err and err.count("\n") == 1, err
    assert not (tmp_path / "o").exists()                                                     # nothing written


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_projection_on_cuda(tiny_runs, target):
    """The projector on the GPU (D distance, W+, noise optimised) gets closer than its start, like on the CPU."""
    s = Sampler(tiny_runs["sg2"], device="cuda")
    u8, t = target
    p = project(s, t, settings(mode="w+", optimize_noise=True), DiscriminatorFeatures(load_discriminator(s, tiny_runs["sg2"])),
                progress=False)
    assert p.ws.device.type == "cpu" and psnr(p.image, u8) > psnr(render(s, w_avg_ws(s), "const")[0], u8)
