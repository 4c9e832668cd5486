"""User tools: interpolation videos, StyleGAN figures, run comparison, HW6 submission, tools/*.py scripts.

Two tiny checkpoints are trained once per session on the demo data: a DCGAN (z only) and a StyleGAN2
(W space). A one-step DCGAN's eval-mode BatchNorm statistics are still at their initial values, which makes
every output the same flat grey; the fixture recalibrates them on random latents so that different seeds
give visibly different pictures, as they do after real training.
"""
from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stylegan_anime.generate import Sampler
from stylegan_anime.imageio_utils import to_uint8
from stylegan_anime.output_files import OutputExists
from stylegan_anime.editing import has_w_space
from stylegan_anime.editing.latents import parse_layers, seed_ws
from stylegan_anime.one_line import run_click
from stylegan_anime.reports import (compare_runs, format_table, latent_path, load_run, plot_runs, render_video,
                                    style_mixing_figure, truncation_figure, video_frames, write_submission)
from stylegan_anime.reports.figures import style_mixing_image, truncation_image
from stylegan_anime.reports.video import catmull_rom_loop, gif_durations, parse_grid, slerp

from conftest import TINY_STYLEGAN2, train_run

REPO = Path(__file__).resolve().parents[1]
RES = 64


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("tool-runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STYLEGAN_ANIME_CACHE", str(root / "cache"))
        dcgan = train_run(root / "dcgan", "--model", "dcgan", "--dim", "4", "--kimg", "0.016", "--log", "0.008")
        sg2 = train_run(root / "sg2", *TINY_STYLEGAN2, "--kimg", "0.008")
    _recalibrate_batchnorm(dcgan)
    return {"dcgan": dcgan, "stylegan2": sg2}


def _recalibrate_batchnorm(run: Path) -> None:
    (ckpt,) = sorted((run / "checkpoints").glob("ckpt-*.pt"))
    state = torch.load(ckpt, weights_only=True)
    sampler = Sampler(run, device="cpu")
    G = sampler.G
    for m in G.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration batch
    G.train()
    with torch.no_grad():
        G(torch.randn(256, sampler.recipe.z_dim, generator=torch.Generator().manual_seed(123)))
    state["nets"]["G_ema"] = {k: v.clone() for k, v in G.state_dict().items()}
    torch.save(state, ckpt)


@pytest.fixture(scope="session")
def dcgan(runs):
    s = Sampler(runs["dcgan"], device="cpu")
    assert not has_w_space(s)
    return s


@pytest.fixture(scope="session")
def sg2(runs):
    s = Sampler(runs["stylegan2"], device="cpu")
    assert has_w_space(s)
    return s


def seed_image(sampler, seed: int) -> np.ndarray:
    return to_uint8(sampler.images([seed]))[0].astype(int)


def diff(a, b) -> float:
    return float(np.abs(np.asarray(a, dtype=float) - np.asarray(b, dtype=float)).mean())


def read_mp4(path: Path) -> tuple[dict, list[np.ndarray]]:
    import imageio_ffmpeg

    gen = imageio_ffmpeg.read_frames(str(path))
    meta = next(gen)
    w, h = meta["size"]
    frames = [np.frombuffer(f, np.uint8).reshape(h, w, 3) for f in gen]
    return meta, frames


# ----------------------------------------------------------------------------------------------------- maths
def test_slerp_and_loop_spline_hit_their_keys():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(5, 16, generator=g), torch.randn(5, 16, generator=g)
    assert torch.equal(slerp(a, b, torch.zeros(5)), a)
    assert torch.allclose(slerp(a, b, torch.ones(5)), b, atol=1e-5)
    mid = slerp(a, b, torch.full((5,), 0.5))
    assert torch.allclose(mid.norm(dim=1), mid.norm(dim=1))  # finite
    unit = torch.nn.functional.normalize
    # on the great circle: the midpoint of unit vectors stays unit length (a lerp would shrink it)
    assert torch.allclose(slerp(unit(a), unit(b), torch.full((5,), 0.5)).norm(dim=1), torch.ones(5), atol=1e-5)
    keys = torch.randn(4, 3, generator=g)
    assert torch.allclose(catmull_rom_loop(keys, torch.arange(4.0)), keys)
    assert torch.allclose(catmull_rom_loop(keys, torch.tensor([4.0, 5.0])), keys[:2])  # periodic
    near_end = catmull_rom_loop(keys, torch.tensor([3.999]))
    assert torch.allclose(near_end, keys[0:1], atol=1e-2)  # the end flows into the start


def test_gif_durations_keep_the_total():
    d = gif_durations(30, 90)
    assert len(d) == 90 and all(x % 10 == 0 and x >= 10 for x in d) and sum(d) == 3000
    assert parse_grid("2x3") == (2, 3) and parse_grid((1, 4)) == (1, 4)


def test_loop_path_passes_through_the_keyframes(dcgan, sg2):
    seeds = [3, 4, 5]
    from stylegan_anime.generate import seed_latents

    space, z = latent_path(dcgan, seeds, "loop", n_frames=12)
    assert space == "z" and z.shape == (12, dcgan.recipe.z_dim)
    assert torch.allclose(z[[0, 4, 8]], seed_latents(seeds, dcgan.recipe.z_dim), atol=1e-5)
    keys = seed_latents(seeds, dcgan.recipe.z_dim)
    lo, hi = keys.norm(dim=1).min(), keys.norm(dim=1).max()
    assert (z.norm(dim=1) > 0.95 * lo).all() and (z.norm(dim=1) < 1.05 * hi).all()  # stays on the z shell
    space, w = latent_path(sg2, seeds, "auto", n_frames=12, psi=0.7)
    assert space == "w" and w.shape == (12, sg2.G.num_ws, 16)
    assert torch.allclose(w[[0, 4, 8]], seed_ws(sg2, seeds, psi=0.7, zero_condition=True), atol=1e-5)


def test_z_slerp_and_w_lerp_paths(dcgan, sg2):
    from stylegan_anime.generate import seed_latents

    _, z = latent_path(dcgan, [3, 4], "z-slerp", n_frames=5)  # t = 0, 0.25, 0.5, 0.75, 1
    a, b = seed_latents([3, 4], dcgan.recipe.z_dim)
    assert torch.equal(z[0], a) and torch.allclose(z[-1], b, atol=1e-5)
    assert torch.allclose(z[2], slerp(a[None], b[None], torch.tensor([0.5]))[0], atol=1e-6)
    assert z[2].norm() > 0.95 * min(a.norm(), b.norm())  # a straight line would cut through the shell
    _, w = latent_path(sg2, [3, 4], "w-lerp", n_frames=5, psi=0.5)
    wa, wb = seed_ws(sg2, [3, 4], psi=0.5, zero_condition=True)
    assert torch.allclose(w[1], 0.75 * wa + 0.25 * wb, atol=1e-6)
    w_avg = sg2.G.mapping.w_avg
    untruncated = seed_ws(sg2, [3], psi=1.0, zero_condition=True)[0]
    assert torch.allclose(wa, w_avg + 0.5 * (untruncated - w_avg), atol=1e-5)  # psi pulls towards w_avg


# ----------------------------------------------------------------------------------------------------- videos
def test_mp4_has_requested_frames_and_size(dcgan, tmp_path):
    out = render_video(dcgan, tmp_path / "v.mp4", [0, 1, 2], mode="z-slerp", fps=10, seconds=0.7, progress=False,
                       face_px=96)
    meta, frames = read_mp4(out)
    assert meta["codec"] == "h264" and meta["pix_fmt"].startswith("yuv420p")
    assert meta["size"] == (96, 96) and meta["fps"] == 10  # each face upscaled to face_px
    assert len(frames) == 7
    assert [p.name for p in tmp_path.iterdir()] == ["v.mp4"]  # the temporary file is gone


def test_gif_grid_has_requested_frames_and_size(sg2, tmp_path):
    out = render_video(sg2, tmp_path / "v.gif", [0, 1, 2], mode="loop", fps=10, seconds=0.5, grid=(2, 3),
                       progress=False, face_px=RES)
    with Image.open(out) as im:
        assert im.size == (3 * RES, 2 * RES)  # (width, height) = cols*W x rows*H at face_px = the native size
        assert im.n_frames == 5
        assert im.info.get("loop") == 0


def test_mp4_grid_size(dcgan, tmp_path):
    out = render_video(dcgan, tmp_path / "g.mp4", [0, 1], fps=5, seconds=0.6, grid="2x3", progress=False)
    meta, frames = read_mp4(out)
    assert meta["size"] == (3 * 256, 2 * 256) and len(frames) == 3  # default: 256 px per face, not a 64 px stamp


def test_video_never_overwrites(dcgan, tmp_path):
    (tmp_path / "v.mp4").write_bytes(b"my holiday video")
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / "link.gif").symlink_to(victim)
    for name in ("v.mp4", "link.gif"):
        with pytest.raises(OutputExists, match="already exists"):
            render_video(dcgan, tmp_path / name, [0, 1], fps=5, seconds=0.4, progress=False, face_px=32)
    assert (tmp_path / "v.mp4").read_bytes() == b"my holiday video" and victim.read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.gif", "v.mp4", "victim.txt"]


@pytest.mark.parametrize("argv, match", [
    (["--fps", "inf"], "fps must be a finite number"),
    (["--fps", "1e30"], "fps must be in (0, 240]"),
    (["--seconds", "nan"], "seconds must be positive"),
    (["--psi", "nan"], "--psi must be a finite number"),
    (["--psi", "-7"], "--psi must be in [-2, 2]"),
    (["--face-px", "3"], "--face-px must be between"),
    (["--output", "TAKEN"], "already exists"),
])
def test_video_command_refuses_bad_numbers_and_taken_outputs(runs, tmp_path, capsys, argv, match):
    from conftest import run_cli

    (tmp_path / "taken.mp4").write_bytes(b"mine")
    argv = [str(tmp_path / "taken.mp4") if a == "TAKEN" else a for a in argv]
    code, _, err = run_cli(["video", "--checkpoint", str(runs["stylegan2"]), "--seeds", "0,1", "--seconds", "0.2",
                            "--output", str(tmp_path / "v.mp4"), "--device", "cpu", *argv], capsys)
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and match in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken.mp4"]
    assert (tmp_path / "taken.mp4").read_bytes() == b"mine"


def test_video_command_writes_the_requested_face_size(runs, tmp_path, capsys):
    from conftest import run_cli

    code, _, err = run_cli(["video", "--checkpoint", str(runs["stylegan2"]), "--seeds", "0,1", "--fps", "5",
                            "--seconds", "0.4", "--grid", "1x2", "--face-px", "72", "--output", str(tmp_path / "v.mp4"),
                            "--device", "cpu"], capsys)
    assert code == 0, err
    meta, frames = read_mp4(tmp_path / "v.mp4")
    assert meta["size"] == (2 * 72, 72) and len(frames) == 2


@pytest.mark.parametrize("model", ["dcgan", "stylegan2"])
def test_loop_last_frame_flows_into_first(model, dcgan, sg2):
    sampler = dcgan if model == "dcgan" else sg2
    seeds, n = [0, 1, 2], 24
    loop = list(video_frames(sampler, seeds, "loop", n))
    line = list(video_frames(sampler, seeds, "z-slerp", n))
    step = np.mean([diff(a, b) for a, b in zip(loop, loop[1:])])  # a typical frame-to-frame change
    assert diff(loop[0], loop[-1]) < 2 * step
    assert diff(loop[0], loop[-1]) < 0.25 * diff(line[0], line[-1])
    assert diff(line[-1], seed_image(sampler, 2)) <= 0.01  # the non-looping path ends at the last seed


def test_looping_mp4_last_frame_close_to_first(sg2, tmp_path):
    _, loop = read_mp4(render_video(sg2, tmp_path / "l.mp4", [5, 6, 7], mode="w-loop", fps=12, seconds=1.5,
                                    progress=False))
    _, line = read_mp4(render_video(sg2, tmp_path / "s.mp4", [5, 6, 7], mode="w-lerp", fps=12, seconds=1.5,
                                    progress=False))
    assert len(loop) == len(line) == 18
    assert diff(loop[0], loop[-1]) < 0.25 * diff(line[0], line[-1])


@pytest.mark.parametrize("model,mode", [("dcgan", "z-slerp"), ("stylegan2", "z-slerp"), ("stylegan2", "w-lerp"),
                                        ("stylegan2", "loop"), ("dcgan", "loop")])
def test_first_frame_is_the_seed_image(model, mode, dcgan, sg2):
    sampler = dcgan if model == "dcgan" else sg2
    first = next(video_frames(sampler, [7, 8], mode, 6, grid=(1, 2))).astype(int)
    left, right = first[:, :RES], first[:, RES:]
    assert np.abs(left - seed_image(sampler, 7)).max() <= 1
    assert np.abs(right - seed_image(sampler, 1007)).max() <= 1  # cell 1 uses seed + 1000
    assert diff(left, seed_image(sampler, 8)) > 1  # and the images do depend on the seed


@pytest.mark.parametrize("kwargs,match", [
    (dict(mode="w-lerp"), "StyleGAN2"),
    (dict(mode="w-loop"), "StyleGAN2"),
    (dict(psi=0.7), "StyleGAN2"),
    (dict(seeds=[0]), "at least 2 seeds"),
    (dict(fps=0), "fps"),
    (dict(seconds=-1), "seconds"),
    (dict(grid=(0, 2)), "grid"),
    (dict(grid="2by3"), "grid"),
    (dict(mode="spiral"), "mode"),
    (dict(out="v.avi"), r"\.mp4 or \.gif"),
])
def test_bad_video_input_is_a_one_line_value_error(dcgan, tmp_path, kwargs, match):
    args = dict(out="v.mp4", seeds=[0, 1], mode="auto", fps=10, seconds=0.3, grid=(1, 1), psi=1.0)
    args.update(kwargs)
    out = tmp_path / args.pop("out")
    with pytest.raises(ValueError, match=match) as e:
        render_video(dcgan, out, progress=False, **args)
    assert "\n" not in str(e.value)
    assert not out.exists()


# ----------------------------------------------------------------------------------------------------- figures
def _cell(img: np.ndarray, r: int, c: int) -> np.ndarray:
    return img[r * RES:(r + 1) * RES, c * RES:(c + 1) * RES].astype(int)


def test_style_mixing_figure(sg2, tmp_path):
    rows, cols = [1, 2], [3, 4, 5]
    path = style_mixing_figure(sg2, tmp_path / "mix.png", rows, cols, styles="0-3", face_px=80)
    fig = np.asarray(Image.open(path))
    top, left = _bands(fig, 1 + len(rows), 1 + len(cols), 80)  # labelled: title + seeds, 80 px faces
    assert top > 0 and left > 0 and (fig[:top, left + 80:] < 128).any() and (fig[top + 80:, :left] < 128).any()
    every = style_mixing_image(sg2, rows, cols, styles="all")
    none = style_mixing_image(sg2, rows, cols, styles="none")
    coarse = style_mixing_image(sg2, rows, cols, styles="0-3").astype(int)
    assert (_cell(every, 0, 0) == 255).all()  # blank corner
    for r in range(1, 1 + len(rows)):
        for c in range(1, 1 + len(cols)):
            assert np.abs(_cell(every, r, c) - _cell(every, 0, c)).max() <= 1  # all layers: the column image
            assert np.abs(_cell(none, r, c) - _cell(none, r, 0)).max() <= 1  # no layer: the row image
            assert diff(_cell(coarse, r, c), _cell(coarse, 0, c)) > 1  # a real mix is neither
            assert diff(_cell(coarse, r, c), _cell(coarse, r, 0)) > 1
    assert np.abs(_cell(every, 0, 1) - seed_image(sg2, 3)).max() <= 1  # top row = column seeds
    assert np.abs(_cell(every, 2, 0) - seed_image(sg2, 2)).max() <= 1  # left column = row seeds


def test_parse_layers():
    assert parse_layers("0-3", 10) == [0, 1, 2, 3]
    assert parse_layers("0,2,8-9", 10) == [0, 2, 8, 9]
    assert parse_layers("all", 4) == [0, 1, 2, 3] and parse_layers("", 4) == [] and parse_layers([1, 1], 4) == [1]
    with pytest.raises(ValueError, match="out of range"):
        parse_layers("0-12", 10)
    with pytest.raises(ValueError, match="cannot read"):
        parse_layers("coarse", 10)


def _bands(fig: np.ndarray, rows: int, cols: int, px: int) -> tuple[int, int]:
    """(top, left) label bands of a labelled figure of rows x cols faces at px."""
    top, left = fig.shape[0] - rows * px, fig.shape[1] - cols * px
    assert top >= 0 and left >= 0 and (fig[:top, :left] == 255).mean() > 0.5
    return top, left


def test_truncation_figure(sg2, tmp_path):
    seeds, psis = [0, 1, 2], (1.0, 0.7, 0.5, 0.0)
    path = truncation_figure(sg2, tmp_path / "trunc.png", seeds, psis)  # default: 256 px faces
    fig = np.asarray(Image.open(path))
    top, left = _bands(fig, len(seeds), len(psis), 256)
    assert top > 0 and left > 0 and (fig[:top] < 128).any() and (fig[top:, :left] < 128).any()
    img = truncation_image(sg2, seeds, psis).astype(int)
    assert img.shape == (len(seeds) * RES, len(psis) * RES, 3)
    up = np.asarray(Image.fromarray(img[:RES, :RES].astype(np.uint8)).resize((256, 256), Image.LANCZOS))
    assert np.array_equal(fig[top:top + 256, left:left + 256], up)  # seed 0 at psi 1, upscaled
    for r in range(1, len(seeds)):
        assert np.array_equal(_cell(img, r, 3), _cell(img, 0, 3))  # psi 0: w_avg in every row
        assert diff(_cell(img, r, 0), _cell(img, 0, 0)) > 1  # psi 1: different seeds differ
    for r, s in enumerate(seeds):
        assert np.abs(_cell(img, r, 0) - seed_image(sg2, s)).max() <= 1
    assert np.abs(truncation_image(sg2, [4], (0.0,)).astype(int) - _cell(img, 0, 3)).max() <= 1  # batch of 1 vs 3


def test_figures_refuse_baselines(dcgan, tmp_path):
    with pytest.raises(ValueError, match="StyleGAN2"):
        style_mixing_figure(dcgan, tmp_path / "m.png", [0], [1])
    with pytest.raises(ValueError, match="StyleGAN2"):
        truncation_figure(dcgan, tmp_path / "t.png", [0])
    assert not list(tmp_path.iterdir())


# ----------------------------------------------------------------------------------------------------- compare
@pytest.fixture
def two_runs(runs, tmp_path):
    a = shutil.copytree(runs["dcgan"], tmp_path / "runs" / "00000-dcgan-demo-64")
    b = shutil.copytree(runs["stylegan2"], tmp_path / "runs" / "00001-stylegan2-demo-64")
    evals = [{"kimg": 0.002, "wall_s": 1.0, "fid10k": 300.0, "afd": 0.10},
             {"kimg": 0.004, "wall_s": 2.0, "fid10k": 210.5, "afd": 0.30},
             {"kimg": 0.008, "wall_s": 4.0, "fid10k": 250.0, "afd": 0.20}]
    (b / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in evals) + '{"kimg": 0.01, "fid')
    return a, b


def test_compare_table(two_runs):
    a, b = two_runs
    rows = compare_runs([a, b])
    ra, rb = rows
    assert (ra["run"], ra["model"], ra["size"]) == (a.name, "dcgan", 64)
    assert (rb["run"], rb["model"]) == (b.name, "stylegan2")
    assert ra["kimg"] == pytest.approx(0.016) and rb["kimg"] == pytest.approx(0.008)
    assert ra["wall_s"] > 0 and rb["wall_s"] > 0
    assert ra["img_per_s"] > 0 and rb["img_per_s"] > 0
    assert rb["fid10k_best"] == 210.5 and rb["fid10k_best_kimg"] == 0.004 and rb["fid10k_last"] == 250.0
    assert rb["afd_best"] == 0.30 and rb["afd_last"] == 0.20  # higher is better
    assert ra["fid10k_best"] is None and ra["afd_last"] is None
    table = format_table(rows)
    lines = table.splitlines()
    assert len(lines) == 4 and a.name in lines[2] and b.name in lines[3]
    assert "fid10k best" in lines[0] and "afd best" in lines[0]
    assert "210.5 @0.004kimg" in lines[3] and "-" in lines[2].split()
    assert len({len(line) for line in lines[:2]}) == 1  # header and rule aligned
    assert compare_runs([a.parent]) == rows  # a folder of runs expands to its runs
    run = load_run(a)
    assert run.sessions == 1 and len(run.scalars["Loss/G"].step) == 2 and not run.metrics


def test_compare_plot(two_runs, tmp_path):
    a, b = two_runs
    out = plot_runs([a, b], tmp_path / "plots" / "cmp.png")
    with Image.open(out) as im:
        w, h = im.size
    assert w >= 800 and h >= 4 * 250  # rows: fid10k, afd (from metrics.jsonl), Loss/G, Loss/D (the dcgan run)
    only_losses = plot_runs([a], tmp_path / "loss.png")
    with Image.open(only_losses) as im:
        assert im.size[1] < h


def test_load_run_merges_resumed_sessions(tmp_path):
    """A resumed run has two event files: the second session's points replace the first's from its first step
    on, wall-clock adds the sessions' spans (not the pause between them), and Metrics/* stand in for a
    missing metrics.jsonl."""
    import time

    from torch.utils.tensorboard import SummaryWriter

    run = tmp_path / "00000-stylegan2-x-64"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"model": "stylegan2", "size": 64}))
    now = time.time()
    w = SummaryWriter(str(run))
    for i, step in enumerate([100, 200, 300]):
        w.add_scalar("Loss/G", float(i), step, walltime=now + 10 * (i + 1))
        w.add_scalar("Metrics/fid10k", 100.0 - i, step, walltime=now + 10 * (i + 1))
    w.close()
    time.sleep(1.1)  # a later file name (the timestamp is in seconds)
    w = SummaryWriter(str(run))
    for i, step in enumerate([250, 350]):
        w.add_scalar("Loss/G", 10.0 + i, step, walltime=time.time() + 5 * i)
        w.add_scalar("Metrics/fid10k", 90.0 - i, step, walltime=time.time() + 5 * i)
    w.close()
    r = load_run(run)
    assert r.sessions == 2
    assert list(r.scalars["Loss/G"].step) == [100, 200, 250, 350]
    assert list(r.scalars["Loss/G"].value) == [0.0, 1.0, 10.0, 11.0]
    assert 33 < r.wall_s < 38  # ~30 s + ~5 s
    assert list(r.metrics["fid10k"].value) == [100.0, 99.0, 90.0, 89.0]
    (row,) = compare_runs([run])
    assert row["fid10k_best"] == 89.0 and row["kimg"] == pytest.approx(0.35)


def test_compare_rejects_a_non_run(tmp_path):
    with pytest.raises(ValueError, match="not a run folder"):
        compare_runs([tmp_path])
    with pytest.raises(ValueError, match="not a run folder"):
        load_run(tmp_path / "missing")


# ----------------------------------------------------------------------------------------------------- submission
def test_submission_files_and_tgz(dcgan, tmp_path):
    sub = write_submission(dcgan, tmp_path / "out", count=5, seed=10, tgz=tmp_path / "submission.tgz", batch=2,
                           progress=False)
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == sorted(f"{i}.jpg" for i in range(1, 6)) and [p.name for p in sub.files][0] == "1.jpg"
    with tarfile.open(sub.tgz, "r:gz") as tar:
        members = tar.getmembers()
    assert sorted(m.name for m in members) == names and all(m.isfile() for m in members)
    with Image.open(tmp_path / "out" / "1.jpg") as im:
        first = np.asarray(im.convert("RGB")).astype(int)
    assert first.shape == (RES, RES, 3)
    assert diff(first, seed_image(dcgan, 10)) < diff(first, seed_image(dcgan, 11))  # 1.jpg is seed 10
    with pytest.raises(ValueError, match="count"):
        write_submission(dcgan, tmp_path / "x", count=0, progress=False)


# ----------------------------------------------------------------------------------------------------- scripts
def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"tools_{name}", REPO / "tools" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.main


def _run_script(name: str, argv: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as e:
        run_click(_script(name), argv, prog_name=f"tools/{name}.py")
    out, err = capsys.readouterr()
    return e.value.code, out, err


@pytest.mark.parametrize("name,argv", [("interpolate", []), ("make_figures", []),
                                       ("make_figures", ["style-mixing"]), ("make_figures", ["truncation"]),
                                       ("compare_runs", [])])
def test_script_help_and_bad_flag(name, argv, capsys):
    code, out, _ = _run_script(name, argv + ["--help"], capsys)
    assert code == 0 and "Usage:" in out and "Example" in out
    code, out, err = _run_script(name, argv + ["--bogus"], capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("error:") and "--bogus" in err


def test_scripts_report_bad_input_in_one_line(runs, tmp_path, capsys):
    cases = [
        ("interpolate", ["--checkpoint", str(runs["dcgan"]), "--seeds", "0", "--output", str(tmp_path / "a.mp4")]),
        ("interpolate", ["--checkpoint", str(runs["dcgan"]), "--seeds", "0,1", "--mode", "w-lerp",
                         "--output", str(tmp_path / "a.mp4")]),
        ("interpolate", ["--checkpoint", str(runs["dcgan"]), "--seeds", "0,1", "--grid", "2x0",
                         "--output", str(tmp_path / "a.mp4")]),
        ("interpolate", ["--checkpoint", str(tmp_path / "nope"), "--seeds", "0,1", "--output", str(tmp_path / "a.mp4")]),
        ("make_figures", ["truncation", "--checkpoint", str(runs["dcgan"]), "--seeds", "0-2", "--output",
                          str(tmp_path / "t.png")]),
        ("make_figures", ["style-mixing", "--checkpoint", str(runs["stylegan2"]), "--rows", "1", "--cols", "2",
                          "--styles", "0-99", "--output", str(tmp_path / "m.png")]),
        ("compare_runs", [str(tmp_path)]),
    ]
    for name, argv in cases:
        code, out, err = _run_script(name, argv + ["--no-progress"] if name == "interpolate" else argv, capsys)
        assert code == 2, (name, argv, err)
        assert err.count("\n") == 1 and err.startswith("error:"), err
        assert "Traceback" not in err
    assert not list(tmp_path.glob("*.mp4")) and not list(tmp_path.glob("*.png"))


def test_figures_and_compare_scripts_run(runs, tmp_path, capsys):
    code, _, err = _run_script("make_figures", ["style-mixing", "--checkpoint", str(runs["stylegan2"]),
                                                "--rows", "1,2", "--cols", "3-5", "--device", "cpu",
                                                "--output", str(tmp_path / "m.png")], capsys)
    assert code == 0 and "wrote" in err
    with Image.open(tmp_path / "m.png") as im:
        assert im.size[0] > 4 * 256 and im.size[1] > 3 * 256  # 256 px faces and the label bands
    code, out, _ = _run_script("compare_runs", [str(runs["dcgan"]), str(runs["stylegan2"]), "--no-progress"], capsys)
    assert code == 0 and runs["dcgan"].name in out and runs["stylegan2"].name in out


def test_interpolate_script_end_to_end(runs, tmp_path, capsys):
    out = tmp_path / "clip.gif"
    code, _, err = _run_script("interpolate", ["--checkpoint", str(runs["stylegan2"]), "--seeds", "0-2", "--mode",
                                               "z-slerp", "--fps", "8", "--seconds", "0.5", "--grid", "1x2",
                                               "--device", "cpu", "--output", str(out)], capsys)
    assert code == 0, err
    with Image.open(out) as im:
        assert im.size == (2 * 256, 256) and im.n_frames == 4  # default: 256 px per face
    assert "4/4" in err and "wrote" in err  # the progress bar, then the summary


def test_scripts_never_overwrite_and_take_face_px(runs, tmp_path, capsys):
    (tmp_path / "clip.mp4").write_bytes(b"mine")
    (tmp_path / "t.png").write_bytes(b"my figure")
    for name, argv in [("interpolate", ["--checkpoint", str(runs["stylegan2"]), "--seeds", "0,1", "--seconds", "0.2",
                                        "--output", str(tmp_path / "clip.mp4"), "--no-progress"]),
                       ("make_figures", ["truncation", "--checkpoint", str(runs["stylegan2"]), "--seeds", "0",
                                         "--output", str(tmp_path / "t.png")])]:
        code, _, err = _run_script(name, argv, capsys)
        assert code == 2 and "already exists" in err and err.count("\n") == 1, err
    assert (tmp_path / "clip.mp4").read_bytes() == b"mine" and (tmp_path / "t.png").read_bytes() == b"my figure"
    code, _, err = _run_script("make_figures", ["truncation", "--checkpoint", str(runs["stylegan2"]), "--seeds", "0-1",
                                                "--psis", "1,0", "--face-px", "40", "--device", "cpu",
                                                "--output", str(tmp_path / "t2.png")], capsys)
    assert code == 0, err
    fig = np.asarray(Image.open(tmp_path / "t2.png"))
    top, left = _bands(fig, 2, 2, 40)
    assert top > 0 and left > 0
    code, _, err = _run_script("interpolate", ["--checkpoint", str(runs["stylegan2"]), "--seeds", "0,1", "--fps", "5",
                                               "--seconds", "0.4", "--face-px", "48", "--device", "cpu",
                                               "--output", str(tmp_path / "c.mp4"), "--no-progress"], capsys)
    assert code == 0, err
    meta, frames = read_mp4(tmp_path / "c.mp4")
    assert meta["size"] == (48, 48) and len(frames) == 2


def test_scripts_as_programs():
    """The scripts run as plain programs (`python tools/x.py`); --help needs no torch, so it is quick."""
    for name in ("interpolate", "make_figures", "compare_runs"):
        script = str(REPO / "tools" / f"{name}.py")
        ok = subprocess.run([sys.executable, script, "--help"], capture_output=True, text=True, timeout=60)
        assert ok.returncode == 0 and "Examples:" in ok.stdout, ok.stderr
        bad = subprocess.run([sys.executable, script, "--bogus"], capture_output=True, text=True, timeout=60)
        assert bad.returncode == 2 and bad.stderr.startswith("error:") and bad.stderr.count("\n") == 1, bad.stderr
