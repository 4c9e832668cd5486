"""StyleGAN2 at every power of two from 32 to 1024 px: presets by NVlabs' names with their exact values and
parameter counts, training and sampling at the ends of the range, fine-tuning (a new run from a model's
weights, Freeze-D), and the one line a GPU preset gets on a CPU."""
from __future__ import annotations

import ast
import contextlib
import dataclasses
import math
import os
import sys
from pathlib import Path

import pytest
import torch

from stylegan_anime.stylegan2.discriminator import Discriminator
from stylegan_anime.stylegan2.generator import Generator
from stylegan_anime.stylegan2.recipe import PRESET_SIZES, PRESETS, StyleGAN2Config, network_kwargs, resolve
from stylegan_anime.training.config import SIZES

from conftest import TINY_STYLEGAN2, run_cli, train_run

NVLABS = Path(os.environ.get("STYLEGAN2_ADA_PYTORCH",
                             Path(__file__).resolve().parents[1] / ".reference" / "stylegan2-ada-pytorch"))
needs_nvlabs = pytest.mark.skipif(not (NVLABS / "train.py").is_file(),
                                  reason="stylegan2-ada-pytorch checkout not found (set STYLEGAN2_ADA_PYTORCH)")
NVLABS_PRESETS = ("auto", "stylegan2", "paper256", "paper512", "paper1024", "cifar")


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def our_nets(preset: str, res: int, c_dim: int = 0):
    G_kwargs, D_kwargs = network_kwargs(resolve(StyleGAN2Config(preset=preset), res), res, c_dim)
    return Generator(**G_kwargs), Discriminator(**D_kwargs)


# --- sizes --------------------------------------------------------------------------------------------------
def test_sizes_are_every_power_of_two_from_32_to_1024():
    assert SIZES == (32, 64, 128, 256, 512, 1024)


@pytest.mark.parametrize("res", SIZES)
def test_networks_at_every_size(res):
    """Tiny widths: G makes [N, 3, R, R] with log2(R) * 2 - 2 ws, D reads it; the block list ends at R."""
    cfg = resolve(StyleGAN2Config(preset="cpu", channel_base=res, channel_max=2, z_dim=4, w_dim=4,
                                  num_fp16_res=0, map_layers=1), res)
    G_kwargs, D_kwargs = network_kwargs(cfg, res)
    G, D = Generator(**G_kwargs), Discriminator(**D_kwargs)
    with torch.no_grad():
        img = G(torch.randn(2, 4), torch.zeros(2, 0), noise_mode="const")
        logits = D(img, torch.zeros(2, 0))
    assert img.shape == (2, 3, res, res)
    assert G.num_ws == 2 * int(math.log2(res)) - 2
    assert logits.shape == (2, 1) and torch.isfinite(logits).all()


# --- presets: NVlabs' values at every resolution ------------------------------------------------------------
def nvlabs_spec(preset: str, res: int, gpus: int = 1) -> dict:
    """train.py's cfg_specs row, with its 'auto' formula, read from NVlabs' own source (no code of theirs runs)."""
    tree = ast.parse((NVLABS / "train.py").read_text())
    table = next(node.value for node in ast.walk(tree)
                 if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "cfg_specs")
    specs = {ast.literal_eval(k): {kw.arg: ast.literal_eval(kw.value) for kw in v.keywords}  # name: dict(...)
             for k, v in zip(table.keys, table.values)}
    spec = dict(specs[preset])
    if preset == "auto":  # the formula as train.py writes it (lines after cfg_specs)
        spec["mb"] = max(min(gpus * min(4096 // res, 32), 64), gpus)
        spec["mbstd"] = min(spec["mb"] // gpus, 4)
        spec["fmaps"] = 1 if res >= 512 else 0.5
        spec["lrate"] = 0.002 if res >= 1024 else 0.0025
        spec["gamma"] = 0.0002 * (res ** 2) / spec["mb"]
        spec["ema"] = spec["mb"] * 10 / 32
    return spec


@needs_nvlabs
@pytest.mark.parametrize("gpus", [1, 2, 8])
@pytest.mark.parametrize("res", SIZES)
@pytest.mark.parametrize("preset", NVLABS_PRESETS)
def test_presets_carry_train_py_values(preset, res, gpus):
    spec = nvlabs_spec(preset, res, gpus)
    cfg = resolve(StyleGAN2Config(preset=preset), res, gpus)
    assert cfg.batch == spec["mb"] and cfg.mbstd_group == spec["mbstd"]
    assert cfg.channel_base == int(spec["fmaps"] * 32768) and cfg.channel_max == 512
    assert cfg.lr == pytest.approx(spec["lrate"]) and cfg.gamma == pytest.approx(spec["gamma"])
    assert cfg.ema_kimg == pytest.approx(spec["ema"]) and cfg.map_layers == spec["map"]
    assert cfg.ema_rampup == (spec["ramp"] or 0.0)
    cifar = preset == "cifar"
    assert (cfg.pl_weight, cfg.style_mixing, cfg.d_architecture) == \
        ((0.0, 0.0, "orig") if cifar else (2.0, 0.9, "resnet"))
    assert (cfg.num_fp16_res, cfg.conv_clamp, cfg.beta1, cfg.beta2) == (4, 256.0, 0.0, 0.99)


def test_auto_preset_follows_the_resolution():
    """The formula's consequences that need no NVlabs checkout: batch shrinks from 256 px, fmaps 1 from 512 px,
    lr 0.002 at 1024 px, more processes give a larger batch (as in NVlabs' train.py)."""
    rows = {res: resolve(StyleGAN2Config(), res) for res in SIZES}
    assert [rows[r].batch for r in SIZES] == [32, 32, 32, 16, 8, 4]
    assert [rows[r].channel_base for r in SIZES] == [16384] * 4 + [32768] * 2
    assert [rows[r].lr for r in SIZES] == [0.0025] * 5 + [0.002]
    assert rows[256].gamma == pytest.approx(0.0002 * 256 ** 2 / 16)
    assert resolve(StyleGAN2Config(), 256, gpus=8).batch == 64
    assert resolve(StyleGAN2Config(batch=8), 256).gamma == pytest.approx(0.0002 * 256 ** 2 / 8)  # a given batch


def test_presets_known_parameter_counts():
    """Counts stated by stylegan2-ada-pytorch's networks (config F at 1024 px, paper256)."""
    G, D = our_nets("stylegan2", 1024)
    assert (count(G), count(D)) == (30_370_060, 29_012_513)
    G, D = our_nets("paper256", 256)
    assert (count(G), count(D)) == (24_767_458, 24_001_089)


def preset_sizes():
    for preset in NVLABS_PRESETS:
        for res in ([PRESET_SIZES[preset]] if preset in PRESET_SIZES else SIZES):
            yield preset, res


@needs_nvlabs
@pytest.mark.parametrize("preset,res", list(preset_sizes()))
def test_parameter_counts_equal_nvlabs(preset, res):
    """G and D of every preset at every size it applies to have NVlabs' parameter counts (their networks built
    as train.py builds them; the cifar config is class-conditional: c_dim 10)."""
    with nvlabs_networks() as nv:
        _compare_counts(nv, preset, res)


@contextlib.contextmanager
def nvlabs_networks():
    """NVlabs' training.networks, importable only inside the block: their packages (training, torch_utils,
    dnnlib) leave no trace in sys.modules or sys.path for the tests that follow."""
    before = set(sys.modules)
    sys.path.insert(0, str(NVLABS))
    try:
        from training import networks as nv  # noqa: PLC0415
        yield nv
    finally:
        sys.path.remove(str(NVLABS))
        for name in set(sys.modules) - before:
            if name.split(".")[0] in ("training", "torch_utils", "dnnlib"):
                del sys.modules[name]


def _compare_counts(nv, preset: str, res: int) -> None:
    spec, c_dim = nvlabs_spec(preset, res), 10 if preset == "cifar" else 0
    common = dict(channel_base=int(spec["fmaps"] * 32768), channel_max=512, num_fp16_res=4, conv_clamp=256)
    theirs_G = nv.Generator(z_dim=512, c_dim=c_dim, w_dim=512, img_resolution=res, img_channels=3,
                            mapping_kwargs=dict(num_layers=spec["map"]), synthesis_kwargs=common)
    theirs_D = nv.Discriminator(c_dim=c_dim, img_resolution=res, img_channels=3,
                                architecture="orig" if preset == "cifar" else "resnet",
                                epilogue_kwargs=dict(mbstd_group_size=spec["mbstd"]), **common)
    G, D = our_nets(preset, res, c_dim)
    assert (count(G), count(D)) == (count(theirs_G), count(theirs_D))


def test_cpu_preset_keeps_16_channels_at_the_output():
    for res in SIZES:
        cfg = resolve(StyleGAN2Config(preset="cpu"), res)
        assert min(cfg.channel_base // res, cfg.channel_max) == 16
        assert cfg.batch == 16 and cfg.pl_weight == 0 and cfg.style_mixing == 0


# --- training and sampling at the ends of the range -----------------------------------------------------------
TINY = TINY_STYLEGAN2 + ("--preset", "cpu", "--batch", "4", "--kimg", "0.008", "--snap", "0.004", "--grid-size", "2")


@pytest.mark.parametrize("size,widths", [(32, ()), (256, ("--channel-base", "512", "--channel-max", "4"))])
def test_train_and_generate_at_32_and_256(size, widths, tmp_path, capsys):
    run = train_run(tmp_path / "runs", "--size", str(size), *TINY, *widths)
    ckpt = sorted((run / "checkpoints").glob("*.pt"))[-1]
    code, _, err = run_cli(["generate", "--checkpoint", str(ckpt), "--seeds", "0-3", "--grid",
                            str(tmp_path / "grid.png"), "--device", "cpu"], capsys)
    assert code == 0, err
    from PIL import Image
    assert Image.open(tmp_path / "grid.png").size == (2 * size, 2 * size)


# --- fine-tuning --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def source_run(tmp_path_factory):
    """A tiny 32 px StyleGAN2 run to fine-tune from."""
    out = tmp_path_factory.mktemp("source")
    with pytest.MonkeyPatch.context():
        run = train_run(out, "--size", "32", *TINY)
    return sorted((run / "checkpoints").glob("*.pt"))[-1]


def _state(path):
    return torch.load(path, map_location="cpu", weights_only=False)


def test_fresh_starts_a_new_run_from_the_weights(source_run, tmp_path, capsys):
    """--fresh: a new run folder, progress from 0 kimg, fresh optimisers; G_ema starts as the model's G_ema."""
    from stylegan_anime.cli.train import weights_only
    from stylegan_anime.training.config import TrainConfig
    from stylegan_anime.training.trainer import Trainer

    src = _state(source_run)
    assert src["progress"]["nimg"] > 0 and src["opts"]
    state = weights_only(src)
    cfg = TrainConfig.from_dict(src["config"])
    trainer = Trainer(cfg, tmp_path / "run", dataset=None, resume=state)
    assert trainer.nimg == 0 and trainer.iteration == 0
    assert all(not o.state for o in trainer.recipe.opts.values())  # no Adam moments carried over
    for k, v in trainer.G_ema.state_dict().items():
        assert torch.equal(v, src["nets"]["G_ema"][k]), k

    out = tmp_path / "runs"
    run = train_run(out, "--resume", str(source_run), "--fresh", "--data", "demo:16", "--kimg", "0.004")
    assert run.parent == out and run != source_run.parent.parent  # a new run, in --outdir
    new = _state(sorted((run / "checkpoints").glob("*.pt"))[-1])
    # from 0: one iteration of batch 8 reaches 0.004 kimg (the source had made 2 iterations, nimg 8)
    assert (new["progress"]["iteration"], new["progress"]["nimg"]) == (1, 8)


def test_freezed_keeps_the_first_d_layers(source_run, tmp_path):
    """--freezed 4 (NVlabs' layer count): the top block's fromrgb, conv0, conv1 and skip are unchanged after
    training steps; the next block's layers and G change."""
    src = _state(source_run)
    run = train_run(tmp_path / "runs", "--resume", str(source_run), "--fresh", "--data", "demo:16", "--kimg", "0.012",
                    "--freezed", "4")
    new = _state(sorted((run / "checkpoints").glob("*.pt"))[-1])
    assert new["progress"]["iteration"] == 2
    D0, D1 = src["nets"]["D"], new["nets"]["D"]
    frozen = [k for k in D0 if k.startswith("b32.") and "resample_filter" not in k]
    assert {k.split(".")[1] for k in frozen} == {"fromrgb", "conv0", "conv1", "skip"}
    for k in frozen:
        assert torch.equal(D0[k], D1[k]), f"{k} changed although frozen"
    moved = [k for k in D0 if k.startswith("b16.") and k.endswith("weight")]
    assert moved and all(not torch.equal(D0[k], D1[k]) for k in moved)
    assert not torch.equal(src["nets"]["G"]["synthesis.b4.conv1.weight"], new["nets"]["G"]["synthesis.b4.conv1.weight"])


@pytest.mark.parametrize("argv,needle", [
    (["--size", "64"], "the model is 32 px and fine-tuning trains at its size"),
    (["--z-dim", "8"], "--z-dim 8 differs"),
    (["--labels", "tags.csv"], "the model is unconditional and would ignore them"),
])
def test_fine_tune_mismatch_is_one_line(source_run, tmp_path, capsys, argv, needle, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tags.csv").write_text("file,tags\na.png,blonde hair\n")
    code, _, err = run_cli(["train", "--resume", str(source_run), "--fresh", "--data", "demo:16", "--device", "cpu",
                            "--outdir", str(tmp_path / "runs"), *argv], capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and needle in lines[0], err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_fresh_needs_resume(tmp_path, capsys):
    code, _, err = run_cli(["train", "--data", "demo:16", "--fresh", "--outdir", str(tmp_path)], capsys)
    assert code == 2 and err.strip().startswith("error: --fresh starts a new run")


def test_packed_data_of_another_size_is_one_line(source_run, tmp_path, capsys):
    code, _, err = run_cli(["prepare-data", "demo:8", str(tmp_path / "faces64"), "--size", "64", "--no-progress"],
                           capsys)
    assert code == 0, err
    code, _, err = run_cli(["train", "--resume", str(source_run), "--fresh", "--data", str(tmp_path / "faces64"),
                            "--device", "cpu", "--outdir", str(tmp_path / "runs")], capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "is 64x64 but size 32" in lines[0], err


# --- a GPU preset on a CPU --------------------------------------------------------------------------------------
def test_cpu_hint_for_gpu_presets(monkeypatch):
    from stylegan_anime.training import cpu_estimate
    from stylegan_anime.training.config import TrainConfig

    calls = []

    def fake_estimate(model_cfg, res):
        calls.append((model_cfg.preset, res))
        return cpu_estimate.Estimate(s_per_kimg=6447.0, measured_s=3.0)

    monkeypatch.setattr(cpu_estimate, "estimate", fake_estimate)
    auto = dataclasses.asdict(resolve(StyleGAN2Config(), 128))
    line = cpu_estimate.cpu_preset_hint(TrainConfig(data="faces", size=128, kimg=100, model_cfg=auto))
    assert "6,447 s/kimg" in line and "~7d11h for 100 kimg" in line
    assert line.endswith("stylegan-anime train --data faces --size 128 --preset cpu --minutes 60")
    cpu = dataclasses.asdict(resolve(StyleGAN2Config(preset="cpu"), 128))
    assert cpu_estimate.cpu_preset_hint(TrainConfig(data="faces", size=128, model_cfg=cpu)) is None
    assert cpu_estimate.cpu_preset_hint(TrainConfig(data="faces", size=128, model="dcgan")) is None
    assert calls == [("auto", 128)]


def test_cpu_estimate_measures_the_real_networks():
    """The estimate grows with the networks' work: auto at 64 px costs more than the cpu preset at 64 px."""
    from stylegan_anime.training.cpu_estimate import estimate
    small = estimate(resolve(StyleGAN2Config(preset="cpu"), 32), 32)
    big = estimate(resolve(StyleGAN2Config(preset="auto", channel_max=128, channel_base=4096), 32), 32)
    assert 0 < small.s_per_kimg < big.s_per_kimg


def test_presets_listed():
    assert set(NVLABS_PRESETS) <= set(PRESETS) and {"cpu", "paper"} <= set(PRESETS)
