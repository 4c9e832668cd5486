"""Evaluation images are drawn like NVlabs' metrics draw them: StyleGAN2 with random per-pixel noise (seeded, so
reproducible and rank-independent), not the grids' one fixed noise map, and without moving training's RNG."""
from __future__ import annotations

import dataclasses

import numpy as np
import torch
from conftest import ListDataset, random_dataset

from stylegan_anime.training.config import TrainConfig
from stylegan_anime.training.recipe import seeded_noise
from stylegan_anime.training.trainer import Trainer

TINY = dict(z_dim=16, w_dim=16, channel_base=256, channel_max=16, batch=8, num_fp16_res=0)


def _trainer(tmp_path):
    from stylegan_anime.stylegan2.recipe import StyleGAN2
    mc = StyleGAN2.make_config(**TINY)
    cfg = TrainConfig(data="unused", size=64, model="stylegan2", kimg=0.008, outdir=str(tmp_path), progress=False,
                      device="cpu", metrics="swd", grid_size=2, model_cfg=dataclasses.asdict(mc))
    d = random_dataset(16)
    t = Trainer(cfg, tmp_path / "run", dataset=ListDataset(images=d.images, labels=None, label_names=None))
    with torch.no_grad():  # noise that matters: the strengths start at 0
        for name, p in t.G_ema.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(1.0)
    return t


def _captured(trainer, monkeypatch, n=8):
    """The images trainer.evaluate() hands to the metrics (the metrics themselves are replaced)."""
    seen = []

    def fake_evaluate(names, generate_fn, dataset, **kw):
        seen.append(generate_fn(n))
        return {}

    monkeypatch.setattr("stylegan_anime.metrics.evaluate", fake_evaluate)
    trainer.evaluate()
    return seen[-1]


def test_evaluation_uses_seeded_random_noise_and_leaves_training_rng_alone(tmp_path, monkeypatch):
    t = _trainer(tmp_path)
    state = torch.get_rng_state()
    a = _captured(t, monkeypatch)
    assert torch.equal(state, torch.get_rng_state())  # training continues exactly as without evaluation
    b = _captured(t, monkeypatch)
    assert np.array_equal(a, b)  # reproducible
    z = torch.randn(8, 16, generator=torch.Generator().manual_seed(t.cfg.seed + 2))  # EvalLatents' first rows
    with torch.no_grad():
        const = t.recipe.generate(t.G_ema, z, noise_mode="const")
    from stylegan_anime.imageio_utils import to_uint8
    const = to_uint8(const).astype(int)
    assert np.abs(a.astype(int) - const).mean() > 2  # not the grids' fixed noise map
    # the noise differs from image to image: the difference to the noise-free image is not one shared pattern
    with torch.no_grad():
        clean = to_uint8(t.recipe.generate(t.G_ema, z, noise_mode="none")).astype(int)
    residual = a.astype(int) - clean
    assert np.abs(residual[0] - residual[1]).mean() > 2


def test_seeded_noise_restores_the_generator():
    torch.manual_seed(3)
    before = torch.get_rng_state()
    with seeded_noise(11, "cpu"):
        x = torch.randn(4)
    with seeded_noise(11, "cpu"):
        y = torch.randn(4)
    assert torch.equal(x, y) and torch.equal(before, torch.get_rng_state())


def test_baselines_are_evaluated_without_noise_options(toy_model, tiny_data, tmp_path, monkeypatch):
    """Only StyleGAN2 asks for evaluation options; a recipe that takes none gets none (cgan refuses unknown ones)."""
    from stylegan_anime.models import get_recipe
    assert get_recipe("cgan").eval_options is get_recipe("dcgan").eval_options
    mc = get_recipe(toy_model).make_config()
    cfg = TrainConfig(data="unused", size=64, model=toy_model, kimg=0.008, outdir=str(tmp_path), progress=False,
                      device="cpu", metrics="swd", model_cfg=dataclasses.asdict(mc))
    t = Trainer(cfg, tmp_path / "run", dataset=tiny_data)
    monkeypatch.setattr(t.recipe, "generate", lambda G, z, labels=None, **kw: (kw and 1 / 0) or G(z))
    assert _captured(t, monkeypatch).shape[0] == 8
