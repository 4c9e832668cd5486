"""StyleGAN2 networks (config F), with the module and state-dict names of NVlabs stylegan2-ada-pytorch.

    G = Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=64, img_channels=3,
                  mapping_kwargs=dict(num_layers=2), channel_base=16384, channel_max=512)
    img = G(z, c)                                   # [N, 3, 64, 64]
    D = Discriminator(c_dim=0, img_resolution=64, img_channels=3, channel_base=16384, channel_max=512)
    logits = D(img, c)                              # [N, 1]

`layers` holds the shared pieces (equalised-lr layers, `conv2d_resample`, `modulated_conv2d`,
`MappingNetwork`); `generator` and `discriminator` the two networks. Training losses live elsewhere.
"""
from .discriminator import Discriminator, DiscriminatorBlock, DiscriminatorEpilogue, MinibatchStdLayer
from .generator import Generator, SynthesisBlock, SynthesisLayer, SynthesisNetwork, ToRGBLayer
from .layers import (
    Conv2dLayer,
    FullyConnectedLayer,
    MappingNetwork,
    conv2d_resample,
    modulated_conv2d,
    normalize_2nd_moment,
)

__all__ = [
    "Generator",
    "Discriminator",
    "MappingNetwork",
    "SynthesisNetwork",
    "SynthesisBlock",
    "SynthesisLayer",
    "ToRGBLayer",
    "DiscriminatorBlock",
    "DiscriminatorEpilogue",
    "MinibatchStdLayer",
    "FullyConnectedLayer",
    "Conv2dLayer",
    "conv2d_resample",
    "modulated_conv2d",
    "normalize_2nd_moment",
]
