"""DCGAN as in the PyTorch DCGAN tutorial, as a recipe (`--model dcgan-tutorial`).

Generator (64 px, dim d = 64, z = 100), all ConvT without bias:
    z [N, 100] -> [N, 100, 1, 1] -> ConvT(100 -> 8d, k4 s1 p0) + BatchNorm2d + ReLU   [N, 8d, 4, 4]
    -> 3 x [ConvT(k4 s2 p1) + BatchNorm2d + ReLU]: 8d -> 4d -> 2d -> d               [N, d, 32, 32]
    -> ConvT(d -> 3, k4 s2 p1) + Tanh                                                [N, 3, 64, 64]
Discriminator, all convs without bias:
    x [N, 3, 64, 64] -> Conv(3 -> d, k4 s2 p1) + LeakyReLU(0.2)                      [N, d, 32, 32]
    -> 3 x [Conv(k4 s2 p1) + BatchNorm2d + LeakyReLU(0.2)]: d -> 2d -> 4d -> 8d       [N, 8d, 4, 4]
    -> Conv(8d -> 1, k4 s1 p0) -> [N] logits (the tutorial's Sigmoid moves into the loss, as in `dcgan.py`)
At 128 px both get one more block (G starts from 16d at 4x4, D goes up to 16d).

Everything else is the DCGAN recipe with the tutorial's settings: the D loss is the SUM
BCE(D(x), 1) + BCE(D(G(z)), 0) (the tutorial backpropagates both terms without averaging),
Adam(lr 2e-4, betas (0.5, 0.999)), batch 128.
"""
from __future__ import annotations

from dataclasses import dataclass

from .common import Discriminator, Generator, batch_field, lr_field
from .dcgan import DCGAN, DCGANConfig


def tutorial_generator(z_dim: int, dim: int, resolution: int) -> Generator:
    return Generator(z_dim, dim, resolution, kernel=4, stem="conv", rgb_bias=False)


def tutorial_discriminator(dim: int, resolution: int) -> Discriminator:
    return Discriminator(dim, resolution, kernel=4, bias=False, norm="batch")


@dataclass
class DCGANTutorialConfig(DCGANConfig):
    """The HW6 DCGAN's hyperparameters with the tutorial's batch and learning rates."""

    batch: int = batch_field(128)
    lr_g: float = lr_field("G", 2e-4)
    lr_d: float = lr_field("D", 2e-4)


class DCGANTutorial(DCGAN):
    name = "dcgan-tutorial"
    Config = DCGANTutorialConfig
    description = "DCGAN, PyTorch tutorial (k4 convs, BCE, Adam 2e-4)"

    d_loss_scale = 1.0  # BCE_real + BCE_fake, summed

    def build_nets(self, cfg: DCGANTutorialConfig, resolution: int):
        return tutorial_generator(cfg.z_dim, cfg.dim, resolution), tutorial_discriminator(cfg.dim, resolution)
