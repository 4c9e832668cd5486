"""W-space tools: SeFa directions against an independent numpy factorisation, edits, the latent and directions
files, and the `directions` / `edit` commands. A tiny StyleGAN2 (and a DCGAN, to be refused) trained once."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import TINY_STYLEGAN2, run_cli, train_run
from stylegan_anime.generate import Sampler, seed_latents
from stylegan_anime.output_files import OutputExists
from stylegan_anime.editing.directions import (Directions, direction_grid, direction_image, edit_ws, find_directions,
                                             load_directions, parse_steps)
from stylegan_anime.editing.latents import (layer_groups, load_latent, mix_layers, parse_layer_spec, render,
                                          save_latent, seed_ws, ws_resolutions)


@pytest.fixture(scope="module")
def runs(tiny_runs, tmp_path_factory):
    """The shared tiny runs, and one with another w_dim (24)."""
    root = tmp_path_factory.mktemp("wide-run")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STYLEGAN_ANIME_CACHE", str(root / "cache"))
        wide = train_run(root / "wide", *TINY_STYLEGAN2, "--w-dim", "24", "--kimg", "0.008")  # the last --w-dim wins
    return {"sg2": tiny_runs["sg2"], "dcgan": tiny_runs["dcgan"], "cond": tiny_runs["cond"], "wide": wide}


@pytest.fixture(scope="module")
def sampler(runs):
    return Sampler(runs["sg2"], device="cpu")


def reference_affines(G, layers: list[int]) -> np.ndarray:
    """From the state dict alone: every conv's affine weight x its gain (1/sqrt(w_dim)), for the convs that
    read a ws index in `layers` (block r's conv0 reads the index after the previous block's convs)."""
    sd = {k: v.double().numpy() for k, v in G.synthesis.state_dict().items()}
    rows, index = [], 0
    for res in G.synthesis.block_resolutions:
        for conv in ("conv0", "conv1"):
            key = f"b{res}.{conv}.affine.weight"
            if key in sd:
                if index in layers:
                    rows.append(sd[key] / np.sqrt(sd[key].shape[1]))
                index += 1
    return np.concatenate(rows)


@pytest.mark.parametrize("spec", ["all", "coarse", "fine", "1-2"])
def test_sefa_matches_a_numpy_eigendecomposition(sampler, spec):
    G = sampler.G
    layers = parse_layer_spec(spec, G)
    A = reference_affines(G, layers)
    A = A / np.linalg.norm(A, axis=1, keepdims=True)
    evals, evecs = np.linalg.eigh(A.T @ A)
    order = np.argsort(evals)[::-1][:5]
    d = find_directions(G, spec, k=5)
    assert d.layers == layers
    np.testing.assert_allclose(d.eigenvalues.numpy(), evals[order], rtol=1e-4)
    v = d.vectors.double().numpy()
    cos = np.abs(np.sum(v * evecs[:, order].T, axis=1))
    assert cos.min() > 0.9999, cos
    np.testing.assert_allclose(v @ v.T, np.eye(5), atol=1e-5)                            # orthonormal
    np.testing.assert_allclose(np.square(A @ v.T).sum(0), d.eigenvalues.numpy(), rtol=1e-4)  # = ||A v||^2
    pivot = np.abs(v).argmax(1)
    assert (v[np.arange(5), pivot] > 0).all()                                           # reproducible sign


def test_sigma_is_the_std_of_mapped_w_along_each_direction(sampler):
    G = sampler.G
    d = find_directions(G, k=3)
    z = seed_latents(list(range(2000)), G.z_dim)
    w = G.mapping(z, torch.zeros([2000, 0]))[:, 0].double()
    expected = (w @ d.vectors.double().T).std(0)
    np.testing.assert_allclose(d.sigma.numpy(), expected.numpy(), rtol=1e-4)


def test_direction_count_and_layers_are_checked(sampler):
    with pytest.raises(ValueError, match="--num must be between 1 and 16"):
        find_directions(sampler.G, k=17)
    with pytest.raises(ValueError, match="layers must be ws indices 0-9"):
        find_directions(sampler.G, [0, 99])


def test_edit_moves_only_the_direction_layers_by_amount_sigma(sampler):
    d = find_directions(sampler.G, "middle", k=3)
    ws = seed_ws(sampler, [1, 2])
    assert torch.equal(edit_ws(ws, d, 1, 0.0), ws)
    plus, minus = edit_ws(ws, d, 1, 2.5), edit_ws(ws, d, 1, -2.5)
    torch.testing.assert_close(plus + minus, 2 * ws)
    step = 2.5 * d.sigma[1] * d.vectors[1]
    for i in range(sampler.G.num_ws):
        if i in d.layers:
            torch.testing.assert_close(plus[:, i] - ws[:, i], step.expand(2, -1))
        else:
            assert torch.equal(plus[:, i], ws[:, i])
    per_row = edit_ws(ws, d, 0, torch.tensor([1.0, -1.0]))                           # one amount per row
    torch.testing.assert_close(per_row[1:], edit_ws(ws[1:], d, 0, -1.0))
    with pytest.raises(ValueError, match="direction 3 is out of range: this file has 3"):
        edit_ws(ws, d, 3, 1.0)


def test_direction_image_rows_are_seeds_columns_are_steps(sampler):
    d = find_directions(sampler.G, k=2)
    img = direction_image(sampler, d, 1, [3, 4], [-2.0, 0.0, 2.0], psi=0.7)
    R = sampler.G.img_resolution
    assert img.shape == (2 * R, 3 * R, 3)
    expected = render(sampler, edit_ws(seed_ws(sampler, [4], 0.7), d, 1, 2.0))[0]
    # one batch of 6 against a batch of 1: the convolutions may round differently by one level
    assert np.abs(img[R:, 2 * R:].astype(int) - expected).max() <= 1
    assert np.abs(img[:R, R:2 * R].astype(int) - render(sampler, seed_ws(sampler, [3], 0.7))[0]).max() <= 1


def test_directions_file_round_trip_and_refusals(sampler, runs, tmp_path):
    d = find_directions(sampler.G, "coarse", k=4)
    d.save(tmp_path / "d.npz", checkpoint="x")
    back = load_directions(tmp_path / "d.npz", sampler.G)
    for a, b in [(d.vectors, back.vectors), (d.eigenvalues, back.eigenvalues), (d.sigma, back.sigma)]:
        assert torch.equal(a, b)
    assert back.layers == d.layers and len(back) == 4
    with pytest.raises(ValueError, match="made for another generator"):
        load_directions(tmp_path / "d.npz", Sampler(runs["wide"], device="cpu").G)
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    (tmp_path / "text.npz").write_text("hello")
    for bad in ("other.npz", "text.npz"):
        with pytest.raises(ValueError, match="is not a directions file"):
            load_directions(tmp_path / bad)
    with pytest.raises(ValueError, match="does not exist"):
        load_directions(tmp_path / "missing.npz")


def test_parse_steps():
    assert parse_steps("-3:3:7") == [-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0]
    assert parse_steps("-2,0,2") == [-2.0, 0.0, 2.0]
    assert parse_steps("1:5:1") == [1.0]
    for bad in ("a:b:c", "1:2", "1:2:0", "x", "", ",", " , ", "nan", "1,inf"):
        with pytest.raises(ValueError, match="--steps: cannot read"):
            parse_steps(bad)


# ------------------------------------------------------------------------------------------ latents
def test_layer_groups_follow_block_resolutions(sampler):
    G = sampler.G
    res = ws_resolutions(G)
    assert len(res) == G.num_ws and res[0] == 4 and res[-1] == G.img_resolution
    groups = layer_groups(G)
    assert sorted(i for g in groups.values() for i in g) == list(range(G.num_ws))      # a partition
    assert all(res[i] <= 8 for i in groups["coarse"]) and all(16 <= res[i] <= 32 for i in groups["middle"])
    assert all(res[i] >= 64 for i in groups["fine"]) and groups["fine"]
    assert parse_layer_spec("coarse+fine", G) == sorted(groups["coarse"] + groups["fine"])
    assert parse_layer_spec("0-2,5", G) == [0, 1, 2, 5]


def test_seed_ws_is_the_mapping_truncated_towards_w_avg(sampler):
    G = sampler.G
    ws = seed_ws(sampler, [3, 8])
    torch.testing.assert_close(ws, G.mapping(seed_latents([3, 8], G.z_dim), torch.zeros([2, 0])))
    avg = G.mapping.w_avg.reshape(1, 1, -1).expand(2, G.num_ws, -1)
    torch.testing.assert_close(seed_ws(sampler, [3, 8], psi=0.0), avg)
    torch.testing.assert_close(seed_ws(sampler, [3, 8], psi=0.5), avg + 0.5 * (ws - avg), atol=1e-6, rtol=1e-5)


def test_mix_layers_takes_exactly_the_given_rows(sampler):
    a, b = seed_ws(sampler, [1]), seed_ws(sampler, [2])
    mixed = mix_layers(a, b, [0, 3])
    for i in range(sampler.G.num_ws):
        assert torch.equal(mixed[0, i], (b if i in (0, 3) else a)[0, i])
    assert torch.equal(mix_layers(a, b, []), a)


def test_latent_files(sampler, tmp_path):
    G = sampler.G
    ws = seed_ws(sampler, [5])
    save_latent(tmp_path / "me.npz", ws[0], psnr=30.0)
    assert torch.equal(load_latent(tmp_path / "me.npz", G), ws)
    np.savez(tmp_path / "projected_w.npz", w=ws.numpy())                  # stylegan2-ada-pytorch: [1, num_ws, w_dim]
    assert torch.equal(load_latent(tmp_path / "projected_w.npz", G), ws)
    one = ws[:, :1].numpy()                                               # a single w [1, 1, w_dim]: every layer
    np.savez(tmp_path / "one.npz", w=one)
    assert torch.equal(load_latent(tmp_path / "one.npz", G), torch.from_numpy(one).repeat(1, G.num_ws, 1))
    np.savez(tmp_path / "wide.npz", ws=np.zeros([G.num_ws, G.w_dim + 1], np.float32))
    np.save(tmp_path / "array.npy", ws.numpy())
    for name, match in [("wide.npz", "does not fit this generator"), ("array.npy", "not a latent .npz"),
                        ("nothing.npz", "does not exist")]:
        with pytest.raises(ValueError, match=match) as e:
            load_latent(tmp_path / name, G)
        assert "\n" not in str(e.value)


def test_render_noise_modes(sampler):
    ws = seed_ws(sampler, [1])
    assert np.array_equal(render(sampler, ws, "const"), render(sampler, ws, "const"))
    assert not np.array_equal(render(sampler, ws, "random"), render(sampler, ws, "random"))
    with pytest.raises(ValueError, match="noise must be one of"):
        render(sampler, ws, "loud")


# ------------------------------------------------------------------------------------------ the commands
def read_mp4(path) -> tuple[tuple[int, int], int]:
    """((width, height), number of frames) of an mp4, read back with imageio-ffmpeg."""
    import imageio_ffmpeg

    frames = imageio_ffmpeg.read_frames(str(path))
    return tuple(next(frames)["size"]), sum(1 for _ in frames)


def test_directions_command_writes_file_figures_and_videos(runs, tmp_path, capsys):
    out, figs = tmp_path / "d.npz", tmp_path / "figs"
    code, stdout, err = run_cli(["directions", "--checkpoint", str(runs["sg2"]), "--out", str(out), "--num", "3",
                                 "--figures", str(figs), "--seeds", "0-1", "--steps", "-2:2:3", "--video",
                                 "--face-px", "40", "--device", "cpu"], capsys)
    assert code == 0, err
    d = load_directions(out)
    assert len(d) == 3
    assert [line.split()[0] for line in stdout.strip().splitlines()[1:]] == ["0", "1", "2"]
    s = Sampler(runs["sg2"], device="cpu")
    for k in range(3):
        fig = np.asarray(Image.open(figs / f"direction-{k}.png"))
        grid = direction_grid(s, d, k, [0, 1], [-2.0, 0.0, 2.0], psi=0.7, face_px=40)     # labelled, 40 px faces
        assert np.array_equal(fig, grid.image)
        assert fig.shape == (grid.top + 2 * 40, grid.left + 3 * 40, 3) and grid.top > 0 and grid.left > 0
        assert read_mp4(figs / f"direction-{k}.mp4") == ((2 * 40, 40), 120)            # the seeds side by side


def test_direction_grid_labels(sampler):
    """Title band naming the direction, a label per column (sigma) and per row (seed); faces upscaled."""
    d = find_directions(sampler.G, k=2)
    R = sampler.G.img_resolution
    grid = direction_grid(sampler, d, 1, [3, 4], [-2.0, 2.0], psi=0.7, face_px=2 * R)
    img = grid.image
    assert img.shape == (grid.top + 2 * 2 * R, grid.left + 2 * 2 * R, 3)
    bare = direction_image(sampler, d, 1, [3, 4], [-2.0, 2.0], psi=0.7)
    up = np.asarray(Image.fromarray(bare[R:, :R]).resize((2 * R, 2 * R), Image.LANCZOS))
    assert np.array_equal(grid.cell(1, 0), up)                                        # row 1 = seed 4, column -2
    top, left = img[:grid.top, grid.left:], img[grid.top:, :grid.left]
    assert (top < 128).any() and (left < 128).any()                                   # words in both bands
    for r in range(2):                                                                # a label beside each row
        assert (left[r * 2 * R:(r + 1) * 2 * R] < 128).any()
    for c in range(2):                                                                # and over each column
        assert (img[grid.top - 10:grid.top, grid.left + c * 2 * R:grid.left + (c + 1) * 2 * R] < 128).any()
    named = direction_grid(sampler, d, 1, [], [0.0], base_ws=seed_ws(sampler, [3]), face_px=R,
                           row_names=["a-long-latent-name.npz"])
    assert named.left > grid.left                                                     # the band fits its label


def test_edit_command_figure_single_edit_and_latent(runs, tmp_path, capsys):
    ck = str(runs["sg2"])
    assert run_cli(["directions", "--checkpoint", ck, "--out", str(tmp_path / "d.npz"), "--num", "2"], capsys)[0] == 0
    base = ["edit", "--checkpoint", ck, "--directions", str(tmp_path / "d.npz"), "--direction", "1", "--device", "cpu"]
    code, _, err = run_cli(base + ["--seeds", "0-1", "--steps", "-1,1", "--output", str(tmp_path / "fig.png")], capsys)
    assert code == 0, err
    s = Sampler(ck, device="cpu")
    R = s.G.img_resolution
    grid = direction_grid(s, load_directions(tmp_path / "d.npz"), 1, [0, 1], [-1.0, 1.0], psi=1.0)  # default size
    assert grid.face_px == max(256, R)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "fig.png")), grid.image)
    save_latent(tmp_path / "me.npz", seed_ws(s, [9])[0])
    code, _, err = run_cli(base + ["--latent", str(tmp_path / "me.npz"), "--amount", "2",
                                   "--output", str(tmp_path / "e.png")], capsys)
    assert code == 0, err
    edited = load_latent(tmp_path / "e.npz", s.G)
    expected = edit_ws(seed_ws(s, [9]), load_directions(tmp_path / "d.npz"), 1, 2.0)
    torch.testing.assert_close(edited, expected)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "e.png")), render(s, expected)[0])


@pytest.mark.parametrize("args, match", [
    (["directions", "--checkpoint", "DCGAN"], "needs a StyleGAN2 checkpoint"),
    (["directions", "--checkpoint", "SG2", "--video"], "--video writes beside the figures"),
    (["directions", "--checkpoint", "SG2", "--num", "0"], "--num must be between"),
    (["directions", "--checkpoint", "SG2", "--steps", "1:2"], "--steps: cannot read"),
    (["edit", "--checkpoint", "SG2", "--directions", "D", "--direction", "0", "--output", "x.png"],
     "give either --seeds or --latent"),
    (["edit", "--checkpoint", "SG2", "--directions", "D", "--direction", "0", "--seeds", "1", "--latent", "x.npz",
      "--output", "x.png"], "give either --seeds or --latent"),
    (["edit", "--checkpoint", "SG2", "--directions", "D", "--direction", "9", "--seeds", "1", "--output", "x.png"],
     "direction 9 is out of range"),
    (["edit", "--checkpoint", "SG2", "--directions", "D", "--direction", "0", "--seeds", "1"], "give --output"),
    (["edit", "--checkpoint", "SG2", "--directions", "nope.npz", "--direction", "0", "--seeds", "1",
      "--output", "x.png"], "directions file does not exist"),
    (["edit", "--checkpoint", "DCGAN", "--directions", "D", "--direction", "0", "--seeds", "1", "--output", "x.png"],
     "needs a StyleGAN2 checkpoint"),
    (["edit", "--checkpoint", "SG2", "--directions", "D", "--direction", "0", "--seeds", "1", "--amount", "0",
      "--video", "x.mp4"], "give a non-zero --amount"),
    (["directions", "--checkpoint", "SG2", "--figures", "F", "--steps", ""], "--steps: cannot read"),
    (["directions", "--checkpoint", "SG2", "--psi", "nan"], "--psi must be a finite number"),
    (["directions", "--checkpoint", "SG2", "--psi", "5"], "--psi must be in [-2, 2]"),
    (["directions", "--checkpoint", "SG2", "--figures", "F", "--steps", "-1e30,0"], "keep them within +-100"),
    (["directions", "--checkpoint", "SG2", "--figures", "F", "--face-px", "100000"], "--face-px must be between"),
    (["edit", "--checkpoint", "SG2", "--directions", "D", "--direction", "0", "--seeds", "1", "--amount", "nan",
      "--output", "x.png"], "--amount (in sigma) must be a finite number"),
    (["edit", "--checkpoint", "SG2", "--directions", "D", "--direction", "0", "--seeds", "1", "--amount", "1e30",
      "--output", "x.png"], "--amount (in sigma) must be in [-100, 100]"),
    (["edit", "--checkpoint", "SG2", "--directions", "D", "--direction", "0", "--seeds", "1", "--amount", "-inf",
      "--video", "x.mp4"], "must be a finite number"),
    (["edit", "--checkpoint", "SG2", "--directions", "D", "--direction", "0", "--seeds", "1", "--psi", "nan",
      "--output", "x.png"], "--psi must be a finite number"),
    (["edit", "--checkpoint", "SG2", "--directions", "D", "--direction", "0", "--seeds", "1", "--steps", "0,500",
      "--output", "x.png"], "keep them within +-100"),
    (["edit", "--checkpoint", "SG2", "--directions", "D", "--direction", "0", "--seeds", "1", "--amount", "1",
      "--output", "x.png", "--video", "x.png"], "named for two outputs"),
])
def test_command_errors_are_one_line(runs, tmp_path, capsys, args, match):
    d = tmp_path / "d.npz"
    find_directions(Sampler(runs["sg2"], device="cpu").G, k=2).save(d)
    names = {"SG2": str(runs["sg2"]), "DCGAN": str(runs["dcgan"]), "D": str(d), "F": str(tmp_path / "figs")}
    out = tmp_path / "out"
    out.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(out)  # relative outputs (x.png, d.npz) land here: nothing may be written
        code, _, err = run_cli([names.get(a, a) for a in args], capsys)
    assert code == 2 and err.startswith("error: ") and match in err and err.count("\n") == 1, err
    assert not list(out.iterdir()) and not (tmp_path / "figs").exists()


def test_directions_and_edit_never_overwrite(runs, tmp_path, capsys):
    """Every output is claimed before any work: a taken one is one line, exit 2, and nothing else is written."""
    ck = str(runs["sg2"])
    (tmp_path / "d.npz").write_bytes(b"mine")
    code, _, err = run_cli(["directions", "--checkpoint", ck, "--out", str(tmp_path / "d.npz")], capsys)
    assert code == 2 and "d.npz already exists" in err and err.count("\n") == 1, err
    assert (tmp_path / "d.npz").read_bytes() == b"mine"
    figs = tmp_path / "figs"
    figs.mkdir()
    (figs / "direction-1.png").write_bytes(b"my picture")
    code, _, err = run_cli(["directions", "--checkpoint", ck, "--out", str(tmp_path / "new.npz"), "--num", "2",
                            "--figures", str(figs), "--face-px", "16"], capsys)
    assert code == 2 and "direction-1.png already exists" in err and err.count("\n") == 1, err
    assert not (tmp_path / "new.npz").exists() and sorted(p.name for p in figs.iterdir()) == ["direction-1.png"]
    assert (figs / "direction-1.png").read_bytes() == b"my picture"

    find_directions(Sampler(ck, device="cpu").G, k=2).save(tmp_path / "dirs.npz")
    base = ["edit", "--checkpoint", ck, "--directions", str(tmp_path / "dirs.npz"), "--direction", "0",
            "--seeds", "3", "--face-px", "16"]
    (tmp_path / "me.npz").write_bytes(b"my latent")                # --output me.png also writes me.npz
    code, _, err = run_cli(base + ["--amount", "1", "--output", str(tmp_path / "me.png")], capsys)
    assert code == 2 and "me.npz already exists" in err and err.count("\n") == 1, err
    assert (tmp_path / "me.npz").read_bytes() == b"my latent" and not (tmp_path / "me.png").exists()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / "sweep.mp4").symlink_to(victim)                   # a planted link is not followed
    code, _, err = run_cli(base + ["--video", str(tmp_path / "sweep.mp4")], capsys)
    assert code == 2 and "sweep.mp4 already exists" in err, err
    assert victim.read_text() == "precious" and (tmp_path / "sweep.mp4").is_symlink()
    with pytest.raises(OutputExists):                              # the library refuses too
        find_directions(Sampler(ck, device="cpu").G, k=1).save(tmp_path / "dirs.npz")


def test_edit_video_is_upscaled(runs, tmp_path, capsys):
    ck = str(runs["sg2"])
    find_directions(Sampler(ck, device="cpu").G, k=2).save(tmp_path / "d.npz")
    code, _, err = run_cli(["edit", "--checkpoint", ck, "--directions", str(tmp_path / "d.npz"), "--direction", "1",
                            "--seeds", "1-2", "--amount", "2", "--video", str(tmp_path / "v.mp4"), "--face-px", "48",
                            "--device", "cpu"], capsys)
    assert code == 0, err
    assert read_mp4(tmp_path / "v.mp4") == ((2 * 48, 48), 120)


class BrightnessTagger(torch.nn.Module):
    """A stand-in tag classifier: hair 'light' vs 'dark' from the mean brightness, eyes always 'blue'."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(20.0))

    def forward(self, x):
        b = x.mean([1, 2, 3])
        hair = torch.stack([self.scale * b, -self.scale * b], 1)
        eye = torch.tensor([[5.0, 0.0]]).expand(len(x), 2)
        return [hair, eye]


def test_tag_report_measures_the_classifier_shift(sampler):
    from stylegan_anime.editing.directions import tag_report

    d = find_directions(sampler.G, k=2)
    rows = tag_report(sampler, d, BrightnessTagger(), {"hair": ["light", "dark"], "eye": ["blue", "red"]}, n=8)
    assert [r["direction"] for r in rows] == [0, 1]
    ws = seed_ws(sampler, list(range(8)))
    for r in rows:
        assert r["eye"]["shift"] == 0 and r["eye"]["changed"] == 0                  # constant eyes: no effect
        bright = {a: render(sampler, edit_ws(ws, d, r["direction"], a)).astype(float).mean() for a in (-3, 3)}
        assert r["hair"]["plus"] == ("light" if bright[3] > bright[-3] else "dark")
        assert r["hair"]["minus"] != r["hair"]["plus"] and 0 < r["hair"]["shift"] <= 1


def test_directions_tag_report_command(runs, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("STYLEGAN_ANIME_CACHE", str(tmp_path / "cache"))
    cond = runs["cond"]
    code, out, err = run_cli(["directions", "--checkpoint", str(cond), "--out", str(tmp_path / "d.npz"), "--num", "2",
                              "--tags-data", "demo:64", "--device", "cpu"], capsys)
    assert code == 0, err
    table = out[out.index("direction  ", out.index("sigma") + 1):].splitlines()
    assert table[0].split() == ["direction", "hair", "eye"] and len(table) == 3
    assert all(re.fullmatch(r"\s*\d+\s+\w+->\w+ [01]\.\d\d/[01]\.\d\d\s+\w+->\w+ [01]\.\d\d/[01]\.\d\d", row)
               for row in table[1:]), table
    code, _, err = run_cli(["directions", "--checkpoint", str(cond), "--out", str(tmp_path / "e.npz"),
                            "--tags-data", str(cond)], capsys)            # a folder of images without tags
    assert code == 2 and err.splitlines()[-1].startswith("error: --tags-data") and "Traceback" not in err, err
    assert "has no hair/eye labels" in err and not (tmp_path / "e.npz").exists()       # checked before any work


def test_seed_ws_condition_choice_for_a_conditional_model(tiny_runs):
    """One seed_ws for editing and reports: by default each seed maps with its own tags (what explore / edit
    show), zero_condition maps with c = 0 (the videos' keyframes and the figures). They differ for a
    tag-conditional StyleGAN2 and agree for an unconditional one."""
    from stylegan_anime.generate import Sampler, seed_latents

    cond = Sampler(tiny_runs["cond"], device="cpu")
    own, zero = seed_ws(cond, [3, 4]), seed_ws(cond, [3, 4], zero_condition=True)
    assert not torch.allclose(own, zero)
    z = seed_latents([3, 4], cond.recipe.z_dim)
    with torch.no_grad():
        expect = cond.G.mapping(z, torch.zeros(2, cond.G.c_dim))
    assert torch.allclose(zero, expect)
    plain = Sampler(tiny_runs["sg2"], device="cpu")
    assert torch.equal(seed_ws(plain, [3, 4]), seed_ws(plain, [3, 4], zero_condition=True))
