"""Importing conditional stylegan2-ada-pytorch pickles (the `cifar` config: c_dim 10, D architecture 'orig',
mapping 2, minibatch-stddev group 32) and using them as class-conditional models.

Two kinds of pickle:
- always: hand-made state dicts in the layout stylegan2-ada-pytorch's training/networks.py documents (names and
  shapes written out below from its rules, not taken from our networks), pickled the way its persistence does
  (the imitation of test_official_import);
- where NVlabs' code is available (STYLEGAN2_ADA_PYTORCH or .reference/stylegan2-ada-pytorch, absent in CI): a
  pickle written by their own modules in a subprocess, whose G_ema/D outputs on one-hot labels ours must equal
  (and the same for an unconditional 'resnet' pickle).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from stylegan_anime.stylegan2 import official_import as oi
from stylegan_anime.stylegan2.import_pickle import import_pickle
from stylegan_anime.stylegan2.official_import import ImportCheckpointError
from stylegan_anime.stylegan2.recipe import class_onehot
from test_official_import import FakeNVlabs, official_data

REFERENCE = Path(os.environ.get("STYLEGAN2_ADA_PYTORCH") or Path(__file__).resolve().parents[1] /
                 ".reference" / "stylegan2-ada-pytorch")
needs_reference = pytest.mark.skipif(not (REFERENCE / "training" / "networks.py").is_file(),
                                     reason="stylegan2-ada-pytorch checkout not available")

# The tiny cifar-config networks of these tests: 32 px, channels min(256 / r, 16), z = w = 16, 10 classes.
RES, Z, C, BASE, CMAX, MAP, MBSTD = 32, 16, 10, 256, 16, 2, 32


def _ch(r: int) -> int:
    return min(BASE // r, CMAX)


def documented_generator_layout() -> dict[str, list[int]]:
    """Tensor names and shapes of stylegan2-ada-pytorch's Generator (architecture 'skip') with c_dim > 0."""
    sd = {"mapping.embed.weight": [Z, C], "mapping.embed.bias": [Z]}
    for i in range(MAP):
        sd[f"mapping.fc{i}.weight"] = [Z, 2 * Z if i == 0 else Z]  # input: [z, embed(c)]
        sd[f"mapping.fc{i}.bias"] = [Z]
    sd["mapping.w_avg"] = [Z]

    def synthesis_layer(prefix, cin, cout, r):
        sd.update({f"{prefix}.weight": [cout, cin, 3, 3], f"{prefix}.noise_strength": [], f"{prefix}.bias": [cout],
                   f"{prefix}.resample_filter": [4, 4], f"{prefix}.noise_const": [r, r],
                   f"{prefix}.affine.weight": [cin, Z], f"{prefix}.affine.bias": [cin]})

    def torgb(prefix, cin):
        sd.update({f"{prefix}.weight": [3, cin, 1, 1], f"{prefix}.bias": [3], f"{prefix}.affine.weight": [cin, Z],
                   f"{prefix}.affine.bias": [cin]})

    r = 4
    while r <= RES:
        b = f"synthesis.b{r}"
        if r == 4:
            sd[f"{b}.const"] = [_ch(4), 4, 4]
        sd[f"{b}.resample_filter"] = [4, 4]
        if r > 4:
            synthesis_layer(f"{b}.conv0", _ch(r // 2), _ch(r), r)
        synthesis_layer(f"{b}.conv1", _ch(r), _ch(r), r)
        torgb(f"{b}.torgb", _ch(r))
        r *= 2
    return sd


def documented_discriminator_layout() -> dict[str, list[int]]:
    """Tensor names and shapes of stylegan2-ada-pytorch's Discriminator, architecture 'orig', c_dim > 0."""
    sd = {}
    r = RES
    while r > 4:
        b = f"b{r}"
        sd[f"{b}.resample_filter"] = [4, 4]
        if r == RES:
            sd.update({f"{b}.fromrgb.weight": [_ch(r), 3, 1, 1], f"{b}.fromrgb.bias": [_ch(r)],
                       f"{b}.fromrgb.resample_filter": [4, 4]})
        sd.update({f"{b}.conv0.weight": [_ch(r), _ch(r), 3, 3], f"{b}.conv0.bias": [_ch(r)],
                   f"{b}.conv0.resample_filter": [4, 4],
                   f"{b}.conv1.weight": [_ch(r // 2), _ch(r), 3, 3], f"{b}.conv1.bias": [_ch(r // 2)],
                   f"{b}.conv1.resample_filter": [4, 4]})  # no skip: 'orig'
        r //= 2
    cmap = _ch(4)
    sd.update({"mapping.embed.weight": [cmap, C], "mapping.embed.bias": [cmap]})
    for i in range(8):  # D's label mapping: the MappingNetwork default of 8 layers (train.py sets none)
        sd.update({f"mapping.fc{i}.weight": [cmap, cmap], f"mapping.fc{i}.bias": [cmap]})
    sd.update({"b4.conv.weight": [_ch(4), _ch(4) + 1, 3, 3], "b4.conv.bias": [_ch(4)],
               "b4.conv.resample_filter": [4, 4],
               "b4.fc.weight": [_ch(4), _ch(4) * 16], "b4.fc.bias": [_ch(4)],
               "b4.out.weight": [cmap, _ch(4)], "b4.out.bias": [cmap]})
    return sd


def module_tree(tensors: dict[str, torch.Tensor]) -> nn.Module:
    """A module hierarchy holding `tensors` at their dotted names (parameters; *filter / w_avg / noise_const as
    buffers, as in NVlabs' modules)."""
    root = nn.Module()
    for name, t in tensors.items():
        *path, leaf = name.split(".")
        m = root
        for part in path:
            if not hasattr(m, part):
                m.add_module(part, nn.Module())
            m = getattr(m, part)
        if leaf in ("resample_filter", "w_avg", "noise_const"):
            m.register_buffer(leaf, t)
        else:
            m.register_parameter(leaf, nn.Parameter(t))
    return root


G_KWARGS = dict(z_dim=Z, c_dim=C, w_dim=Z, img_resolution=RES, img_channels=3, mapping_kwargs={"num_layers": MAP},
                synthesis_kwargs={"channel_base": BASE, "channel_max": CMAX, "num_fp16_res": 0, "conv_clamp": None})
D_KWARGS = dict(c_dim=C, img_resolution=RES, img_channels=3, architecture="orig", channel_base=BASE, channel_max=CMAX,
                num_fp16_res=0, conv_clamp=None, block_kwargs={}, mapping_kwargs={},
                epilogue_kwargs={"mbstd_group_size": MBSTD})


def _random(layout: dict, seed: int) -> dict[str, torch.Tensor]:
    """Values like a trained network's: unit-variance weights (mapping: / 0.01), small biases and noise strengths,
    styles near 1, the [1, 3, 3, 1] filter (NVlabs' default, normalised)."""
    g = torch.Generator().manual_seed(seed)
    f = torch.tensor([1.0, 3, 3, 1])
    out = {}
    for k, shape in layout.items():
        t = torch.randn(shape, generator=g)
        if k.endswith("resample_filter"):
            t = f[:, None] * f[None, :] / f.sum() ** 2
        elif k.startswith("mapping.fc") and k.endswith("weight"):
            t = t / 0.01  # as NVlabs initialises them: randn / lr_multiplier (the mapping's is 0.01)
        elif k.endswith("affine.bias"):
            t = 1 + 0.1 * t
        elif k.endswith(("bias", "noise_strength")):
            t = 0.1 * t
        out[k] = t
    return out


def handmade_pickle(tmp_path, fake, drop: str | None = None, name="network-snapshot-000200.pkl"):
    G_sd, D_sd = _random(documented_generator_layout(), 1), _random(documented_discriminator_layout(), 2)
    if drop:
        D_sd.pop(drop)
    E = fake.EasyDict
    G_kwargs = E({**G_KWARGS, "mapping_kwargs": E(G_KWARGS["mapping_kwargs"]),
                  "synthesis_kwargs": E(G_KWARGS["synthesis_kwargs"])})
    path = tmp_path / name
    fake.dump(path, official_data(fake, module_tree(G_sd), module_tree(D_sd), module_tree(G_sd), G_kwargs,
                                  E(D_KWARGS)))
    return path, G_sd, D_sd


@pytest.fixture
def fake(tmp_path):
    f = FakeNVlabs(tmp_path / "SENTINEL-executed")
    yield f
    assert f.calls == [] and not (tmp_path / "SENTINEL-executed").exists()


# ----------------------------------------------------------------------------------------------------------
# Hand-made pickles of the documented layout (always run).


def test_documented_conditional_layout_imports_tensor_for_tensor(tmp_path, fake):
    from stylegan_anime.training.checkpoint import load_checkpoint

    pkl, G_sd, D_sd = handmade_pickle(tmp_path, fake)
    summary = import_pickle(pkl, tmp_path / "cifar.pt")
    assert (summary.format, summary.resolution, summary.num_classes, summary.kimg) == ("pytorch", 32, 10, 200)
    assert "32 px, class-conditional, 10 classes" in summary.line(str(pkl))
    state = load_checkpoint(tmp_path / "cifar.pt")
    cfg = state["config"]["model_cfg"]
    assert (cfg["num_classes"], cfg["cond"], cfg["d_architecture"], cfg["mbstd_group"], cfg["map_layers"]) == \
        (10, False, "orig", 32, 2)
    assert state["config"]["label_names"] == {"class": [str(i) for i in range(10)]}
    for key, sd in (("G", G_sd), ("G_ema", G_sd), ("D", D_sd)):
        assert set(state["nets"][key]) == set(sd), key
        for name, t in sd.items():
            assert torch.equal(state["nets"][key][name], t), (key, name)


def test_documented_layout_with_a_missing_projection_tensor_is_named(tmp_path, fake):
    pkl, _, _ = handmade_pickle(tmp_path, fake, drop="mapping.embed.bias")
    with pytest.raises(ImportCheckpointError,
                       match=r"^D does not match our Discriminator: missing mapping\.embed\.bias$"):
        import_pickle(pkl, tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()


def test_class_onehot():
    c = class_onehot(torch.tensor([[2], [0], [-1]]), 4)
    assert torch.equal(c, torch.tensor([[0, 0, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]], dtype=torch.float32))
    assert torch.equal(class_onehot(torch.tensor([3]), 4), torch.tensor([[0, 0, 0, 1.0]]))
    for bad in (torch.tensor([4]), torch.tensor([-2]), torch.tensor([[0.5]])):
        with pytest.raises(ValueError):
            class_onehot(bad, 4)


def _cli(argv, capsys):
    from stylegan_anime.cli import main
    with pytest.raises(SystemExit) as e:
        main(argv)
    return e.value.code, capsys.readouterr().err


def test_generate_class_uses_that_class_and_fine_tuning_without_classes_is_one_line(tmp_path, fake, capsys,
                                                                                      monkeypatch):
    from PIL import Image

    from stylegan_anime.generate import Sampler, seed_latents
    from stylegan_anime.imageio_utils import to_uint8
    from stylegan_anime.stylegan2.generator import Generator

    monkeypatch.setenv("STYLEGAN_ANIME_CACHE", str(tmp_path / "cache"))
    pkl, G_sd, _ = handmade_pickle(tmp_path, fake)
    out = tmp_path / "cifar.pt"
    code, err = _cli(["import-checkpoint", str(pkl), str(out)], capsys)
    assert code == 0 and "stylegan2-ada-pytorch pickle, 32 px, class-conditional, 10 classes" in err, err

    G = Generator(**{k: v for k, v in G_KWARGS.items() if k != "synthesis_kwargs"}, **G_KWARGS["synthesis_kwargs"])
    G.load_state_dict(G_sd)
    z = seed_latents([0, 1], Z)
    grids = {}
    for k in (3, 7):
        grid = tmp_path / f"class{k}.png"
        code, err = _cli(["generate", "--checkpoint", str(out), "--seeds", "0-1", "--cols", "2", "--grid", str(grid),
                          "--class", str(k), "--device", "cpu"], capsys)
        assert code == 0, err
        grids[k] = np.asarray(Image.open(grid)).astype(int)
        with torch.no_grad():  # what NVlabs' G computes for the one-hot label of class k
            ref = to_uint8(G(z, torch.eye(C)[[k, k]], noise_mode="const"))
        assert np.abs(grids[k][:, :RES] - ref[0]).max() <= 1 and np.abs(grids[k][:, RES:] - ref[1]).max() <= 1
    assert np.abs(grids[3] - grids[7]).max() > 10  # the class changes the picture

    sampler = Sampler(out, device="cpu")
    drawn = sampler.seed_labels(list(range(40)))  # without --class: a random class per seed, deterministic
    assert drawn.shape == (40, 1) and len(set(drawn[:, 0].tolist())) > 3 and int(drawn.max()) < C
    assert torch.equal(drawn, sampler.seed_labels(list(range(40))))

    for argv, message in (
            (["--class", "10"], "--class must be from 0 to 9"),
            (["--class", "1", "--tags", "blonde hair"], "need a tag-conditional model")):
        code, err = _cli(["generate", "--checkpoint", str(out), "--seeds", "0", "--grid", str(tmp_path / "n.png"),
                          "--device", "cpu", *argv], capsys)
        assert code == 2 and message in err and err.strip().count("\n") == 0, err

    code, err = _cli(["train", "--resume", str(out), "--outdir", str(tmp_path / "runs"), "--data", "demo:16",
                      "--kimg", "0.008", "--no-progress", "--device", "cpu", "--metrics", "none"], capsys)
    assert code == 2 and err.strip().count("\n") == 0, err
    assert "class-conditional (10 classes) and needs one class label per image" in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_explore_view_takes_a_class():
    from stylegan_anime.explore.view import View, ViewError

    v = View.from_query({"class": ["4"], "seed": "2"})
    assert v.class_index == 4 and View.from_query(dict(p.split("=") for p in v.to_query().split("&"))) == v
    assert View.from_query({"seed": "2"}).class_index == -1
    with pytest.raises(ViewError, match="class must be a whole number"):
        View.from_query({"class": "cat"})


# ----------------------------------------------------------------------------------------------------------
# Against stylegan2-ada-pytorch's own modules (only where that checkout is available).

_REFERENCE_SCRIPT = r"""
import pickle, sys, torch
sys.path.insert(0, sys.argv[1])
import dnnlib
from training.networks import Generator, Discriminator
E = dnnlib.EasyDict
c_dim, arch, mbstd = int(sys.argv[4]), sys.argv[5], int(sys.argv[6])
torch.manual_seed(0)
G = Generator(z_dim=%(Z)d, c_dim=c_dim, w_dim=%(Z)d, img_resolution=%(RES)d, img_channels=3,
              mapping_kwargs=E(num_layers=%(MAP)d),
              synthesis_kwargs=E(channel_base=%(BASE)d, channel_max=%(CMAX)d, num_fp16_res=0, conv_clamp=None)).eval()
D = Discriminator(c_dim=c_dim, img_resolution=%(RES)d, img_channels=3, architecture=arch, channel_base=%(BASE)d,
                  channel_max=%(CMAX)d, block_kwargs=E(), mapping_kwargs=E(),
                  epilogue_kwargs=E(mbstd_group_size=mbstd)).eval()
with torch.no_grad():  # distinctive values everywhere (noise strengths and biases start at 0)
    for t in list(G.parameters()) + list(D.parameters()) + [G.mapping.w_avg]:
        t.add_(torch.randn_like(t) * 0.2)
z = torch.randn([8, %(Z)d])
c = torch.eye(c_dim)[[0, 3, 5, 9, 1, 1, 2, 7]] if c_dim else torch.zeros([8, 0])
with torch.no_grad():
    img = G(z, c, truncation_psi=0.7, noise_mode='const')
    logits = D(img, c)
with open(sys.argv[2], 'wb') as f:
    pickle.dump(dict(G=G, D=D, G_ema=G, training_set_kwargs=E(resolution=%(RES)d, use_labels=c_dim > 0),
                     augment_pipe=None), f)
torch.save(dict(z=z, c=c, img=img, logits=logits), sys.argv[3])
""" % dict(Z=Z, RES=RES, MAP=MAP, BASE=BASE, CMAX=CMAX)


@needs_reference
@pytest.mark.parametrize("c_dim,arch,mbstd", [(C, "orig", MBSTD), (0, "resnet", 4)])  # cifar; unconditional
def test_pickle_written_by_nvlabs_code_gives_their_outputs(tmp_path, c_dim, arch, mbstd):
    from stylegan_anime.stylegan2.discriminator import Discriminator
    from stylegan_anime.stylegan2.generator import Generator
    from stylegan_anime.training.checkpoint import load_checkpoint

    pkl, ref = tmp_path / "cifar-tiny.pkl", tmp_path / "ref.pt"
    script = tmp_path / "make.py"
    script.write_text(_REFERENCE_SCRIPT)
    subprocess.run([sys.executable, str(script), str(REFERENCE), str(pkl), str(ref), str(c_dim), arch, str(mbstd)],
                   check=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    summary = import_pickle(pkl, tmp_path / "cifar.pt")
    assert (summary.format, summary.num_classes) == ("pytorch", c_dim)
    assert "torch_utils" not in sys.modules and "dnnlib" not in sys.modules  # their code never ran here
    expected = torch.load(ref)
    state = load_checkpoint(tmp_path / "cifar.pt")
    conv = oi.convert(oi.read_official_pickle(pkl))
    G, D = Generator(**conv["G_kwargs"]).eval(), Discriminator(**conv["D_kwargs"]).eval()
    G.load_state_dict(state["nets"]["G_ema"])
    D.load_state_dict(state["nets"]["D"])
    c = expected["c"]
    if c_dim:  # our class-conditional path: class indices -> one-hot
        labels = c.argmax(1)
        c = class_onehot(labels, C)
    with torch.no_grad():
        img = G(expected["z"], c, truncation_psi=0.7, noise_mode="const")
        logits = D(expected["img"], c)
    assert (img - expected["img"]).abs().max() < 1e-3
    assert (logits - expected["logits"]).abs().max() < 1e-3
    if c_dim:  # the projection head really uses the label: another class, another score
        with torch.no_grad():
            other = D(expected["img"], class_onehot((labels + 1) % C, C))
        assert (other - expected["logits"]).abs().max() > 1e-3


def test_explorer_offers_a_class_box_for_class_conditional_models(tmp_path, fake, capsys, monkeypatch):
    """/api/info says how many classes there are (the page shows a class box instead of tags), and the class
    chosen in the view changes the image."""
    from stylegan_anime.explore.explorer import Explorer
    from stylegan_anime.explore.view import View
    from stylegan_anime.generate import Sampler

    monkeypatch.setenv("STYLEGAN_ANIME_CACHE", str(tmp_path / "cache"))
    pkl, _, _ = handmade_pickle(tmp_path, fake)
    out = tmp_path / "cifar.pt"
    assert _cli(["import-checkpoint", str(pkl), str(out)], capsys)[0] == 0
    ex = Explorer(Sampler(out, device="cpu"), checkpoint=str(out))
    assert ex.info()["classes"] == C
    a = ex.image(View.from_query({"seed": "1", "class": "3"}))
    b = ex.image(View.from_query({"seed": "1", "class": "7"}))
    assert np.abs(a.astype(int) - b.astype(int)).max() > 10
    page = (Path(__file__).resolve().parents[1] / "stylegan_anime/explore/static/index.html").read_text()
    assert 'id="class_row"' in page and "info.classes" in page
