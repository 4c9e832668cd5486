"""DiffAugment with adaptive p: the transforms, gradient flow to G, the p controller, and the trainer hook."""
from __future__ import annotations

import pytest
import torch

from stylegan_anime.training.augment import DiffAugment


def img(n=4, h=16):
    torch.manual_seed(0)
    return torch.rand(n, 3, h, h) * 2 - 1


def test_p_zero_is_identity_and_p_one_changes_every_sample():
    x = img()
    assert torch.equal(DiffAugment(p=0.0)(x), x)
    y = DiffAugment("color", p=1.0)(x)
    assert y.shape == x.shape and all(not torch.equal(a, b) for a, b in zip(x, y))


def test_translation_is_a_zero_filled_shift_of_at_most_an_eighth():
    x = img(n=6, h=16) + 3  # strictly positive, so the zero fill is recognisable
    torch.manual_seed(1)
    y = DiffAugment("translation", p=1.0)(x)
    for a, b in zip(x, y):
        found = False
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                shifted = torch.zeros_like(a)
                ys, xs = slice(max(0, -dy), 16 - max(0, dy)), slice(max(0, -dx), 16 - max(0, dx))
                yd, xd = slice(max(0, dy), 16 - max(0, -dy)), slice(max(0, dx), 16 - max(0, -dx))
                shifted[:, ys, xs] = a[:, yd, xd]
                found |= torch.equal(shifted, b)
        assert found


def test_cutout_zeroes_at_most_a_quarter():
    x = torch.ones(8, 3, 16, 16)
    y = DiffAugment("cutout", p=1.0)(x)
    zeros = (y[:, 0] == 0).flatten(1).sum(1)
    assert (zeros > 0).all() and (zeros <= 8 * 8).all()
    assert torch.equal((y == 0).all(1), (y[:, :1] == 0).squeeze(1))  # the same pixels in every channel


def test_gradients_flow_to_the_generator_through_every_transform():
    G = torch.nn.Linear(4, 3 * 16 * 16)
    D = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 1))
    aug = DiffAugment(p=1.0)
    fake = G(torch.randn(5, 4)).view(5, 3, 16, 16)
    D(aug(fake)).mean().backward()
    assert G.weight.grad is not None and torch.isfinite(G.weight.grad).all() and G.weight.grad.abs().sum() > 0


def test_adaptive_p_moves_towards_the_target():
    aug = DiffAugment(p=0.0, target=0.6, speed_kimg=1.0, interval=4)
    step = 32 * 4 / 1000
    aug.accumulate(torch.tensor(1.0), 32)  # D certain on every real: overfitting -> more augmentation
    assert aug.adjust(batch=32) == 1.0 and aug.p == pytest.approx(step)
    aug.accumulate(torch.tensor(-0.5), 32)
    aug.adjust(batch=32)
    assert aug.p == pytest.approx(0.0)
    aug.accumulate(torch.tensor(-1.0), 32)
    aug.adjust(batch=32)
    assert aug.p == 0.0  # clamped
    for _ in range(20):
        aug.accumulate(torch.tensor(0.9), 32)
        aug.adjust(batch=32)
    assert aug.p == 1.0
    fixed = DiffAugment(p=1.0, target=0.0)
    fixed.accumulate(torch.tensor(1.0), 8)
    assert fixed.adjust(batch=8) is None and fixed.p == 1.0
    with pytest.raises(ValueError, match="unknown augmentation"):
        DiffAugment("color,blur")


def test_trainer_hook_adapts_p_logs_it_and_resumes_exactly(toy_model, tiny_data, tmp_path):
    from test_trainer import make_cfg

    from stylegan_anime.training.checkpoint import load_checkpoint
    from stylegan_anime.training.trainer import Trainer

    kw = dict(augment="diffaug", aug_target=0.01, aug_speed_kimg=0.1, batch_gpu=4)
    full = Trainer(make_cfg(toy_model, tmp_path, kimg=0.128, **kw), tmp_path / "full", dataset=tiny_data)
    seen = []
    full.recipe.nets["D"].register_forward_pre_hook(lambda m, a: seen.append(a[0]))
    full.train()
    assert full.augment.p != 0.0  # the controller moved
    assert seen  # D's input is what the augmentation hook returned (hooks run in order)
    half = Trainer(make_cfg(toy_model, tmp_path, kimg=0.064, **kw), tmp_path / "half", dataset=tiny_data)
    half.train()
    state = load_checkpoint(tmp_path / "half")
    assert state["augment"]["p"] == half.augment.p
    resumed = Trainer(make_cfg(toy_model, tmp_path, kimg=0.128, **kw), tmp_path / "half", dataset=tiny_data,
                      resume=state)
    resumed.train()
    assert resumed.augment.p == full.augment.p
    for a, b in zip(full.recipe.nets["D"].parameters(), resumed.recipe.nets["D"].parameters()):
        assert torch.equal(a, b)
