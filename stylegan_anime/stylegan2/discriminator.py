"""The StyleGAN2 discriminator (config F, 'resnet' architecture by default).

    img [N, img_channels, R, R]
    -> bR:  fromrgb (1x1) -> conv0 (3x3) -> conv1 (3x3, down 2)  + skip (1x1, down 2, no bias), x sqrt(0.5)
    -> ... one DiscriminatorBlock per resolution R, R/2, ..., 8   -> [N, C4, 4, 4]
    -> b4 (DiscriminatorEpilogue): minibatch stddev -> conv 3x3 -> fc -> out    -> [N, 1] logits

With labels (c_dim > 0), `out` has cmap_dim outputs and the result is their projection onto the label's
embedding cmap = mapping(c): (out * cmap).sum(1) / sqrt(cmap_dim). Channels per resolution:
min(channel_base // res, channel_max). Module and parameter names equal NVlabs stylegan2-ada-pytorch's.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from stylegan_anime.cuda_ops import upfirdn2d

from .layers import (
    DEFAULT_FILTER,
    Conv2dLayer,
    FullyConnectedLayer,
    MappingNetwork,
    block_dtype,
    check_shape,
    make_resample_filter,
    memory_format_for,
    resolve_fp16_dtype,
)

__all__ = ["DiscriminatorBlock", "MinibatchStdLayer", "DiscriminatorEpilogue", "Discriminator"]


class DiscriminatorBlock(nn.Module):
    """One resolution of the discriminator: x [N, tmp, res, res] (and/or img) -> x [N, out, res/2, res/2].

    in_channels = 0 marks the first block, which reads the image through `fromrgb`. Architectures:
    'resnet' (residual 1x1 downsampling skip, both branches scaled by sqrt(0.5)), 'skip' (every block
    also reads the downsampled image), 'orig' (plain). `freeze_layers`: layers with a global index below
    it store their weights as buffers (Freeze-D); `num_layers` counts this block's layers.
    """

    def __init__(
        self,
        in_channels: int,
        tmp_channels: int,
        out_channels: int,
        resolution: int,
        img_channels: int,
        first_layer_idx: int,
        architecture: str = "resnet",
        activation: str = "lrelu",
        resample_filter: Sequence[float] = DEFAULT_FILTER,
        conv_clamp: float | None = None,
        use_fp16: bool = False,
        fp16_channels_last: bool = False,
        fp16_dtype: str | torch.dtype = "float16",
        freeze_layers: int = 0,
    ):
        if in_channels not in (0, tmp_channels):
            raise ValueError(f"in_channels must be 0 (first block) or tmp_channels={tmp_channels}; got {in_channels}")
        if architecture not in ("orig", "skip", "resnet"):
            raise ValueError(f"architecture must be 'orig', 'skip' or 'resnet'; got {architecture!r}")
        super().__init__()
        self.in_channels = in_channels
        self.resolution = resolution
        self.img_channels = img_channels
        self.first_layer_idx = first_layer_idx
        self.architecture = architecture
        self.use_fp16 = use_fp16
        self.fp16_dtype = resolve_fp16_dtype(fp16_dtype)
        self.channels_last = use_fp16 and fp16_channels_last
        self.register_buffer("resample_filter", make_resample_filter(resample_filter))

        self.num_layers = 0

        def next_trainable() -> bool:
            """Whether the next layer created trains (its global index is past `freeze_layers`)."""
            trainable = first_layer_idx + self.num_layers >= freeze_layers
            self.num_layers += 1
            return trainable

        common = dict(conv_clamp=conv_clamp, channels_last=self.channels_last)
        if in_channels == 0 or architecture == "skip":
            self.fromrgb = Conv2dLayer(img_channels, tmp_channels, kernel_size=1, activation=activation,
                                       trainable=next_trainable(), **common)
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, kernel_size=3, activation=activation,
                                 trainable=next_trainable(), **common)
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, kernel_size=3, activation=activation, down=2,
                                 resample_filter=resample_filter, trainable=next_trainable(), **common)
        if architecture == "resnet":
            self.skip = Conv2dLayer(tmp_channels, out_channels, kernel_size=1, bias=False, down=2,
                                    resample_filter=resample_filter, trainable=next_trainable(),
                                    channels_last=self.channels_last)

    def forward(
        self, x: torch.Tensor | None, img: torch.Tensor | None, force_fp32: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x [N, in, res, res] or None, img [N, img_channels, res, res] or None
        -> x [N, out, res/2, res/2] in the block's dtype, img (downsampled for 'skip', else None)."""
        device = (x if x is not None else img).device
        dtype = block_dtype(self.use_fp16, force_fp32, self.fp16_dtype, device)
        memory_format = memory_format_for(self.channels_last, dtype)
        res = self.resolution

        if x is not None:
            check_shape(x, [None, self.in_channels, res, res], f"DiscriminatorBlock({res}) x")
            x = x.to(dtype=dtype, memory_format=memory_format)

        # FromRGB.  [N, tmp, res, res]
        if self.in_channels == 0 or self.architecture == "skip":
            check_shape(img, [None, self.img_channels, res, res], f"DiscriminatorBlock({res}) img")
            img = img.to(dtype=dtype, memory_format=memory_format)
            y = self.fromrgb(img)
            x = x + y if x is not None else y
            img = upfirdn2d.downsample2d(img, self.resample_filter) if self.architecture == "skip" else None

        # Main layers.  -> [N, out, res/2, res/2]
        if self.architecture == "resnet":
            y = self.skip(x, gain=math.sqrt(0.5))
            x = self.conv0(x)
            x = self.conv1(x, gain=math.sqrt(0.5))
            x = y + x
        else:
            x = self.conv0(x)
            x = self.conv1(x)
        return x, img

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, architecture={self.architecture}, use_fp16={self.use_fp16}"


class MinibatchStdLayer(nn.Module):
    """Append the average standard deviation across a group of samples as extra feature maps.

    x [N, C, H, W] -> [N, C + num_channels, H, W]. The batch is split into groups of `group_size`
    (None = the whole batch; capped at N; N must be a multiple) where sample n belongs to group
    n mod (N / G). The C channels are split into `num_channels` sets; for each group and set, the stddev of
    every feature over the group's samples is averaged over the set's channels and pixels and broadcast back
    as one constant map to every member of the group. Lets D see the variety of a batch. No parameters.
    """

    def __init__(self, group_size: int | None = 4, num_channels: int = 1):
        super().__init__()
        self.group_size = group_size
        self.num_channels = num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        N, C, H, W = x.shape
        G = N if self.group_size is None else min(self.group_size, N)
        nf = self.num_channels
        if N % G or C % nf:
            raise ValueError(f"MinibatchStdLayer: batch {N} must be a multiple of the group size {G} and "
                             f"channels {C} of num_channels {nf}")
        groups = N // G
        y = x.reshape(G, groups, nf, C // nf, H, W)  # [G, groups, nf, c, H, W]: member index first
        y = y - y.mean(dim=0)  # deviations from each group's mean
        y = (y.square().mean(dim=0) + 1e-8).sqrt()  # [groups, nf, c, H, W] stddev over the group
        y = y.mean(dim=[2, 3, 4])  # [groups, nf]
        y = y.reshape(groups, nf, 1, 1).repeat(G, 1, H, W)  # [N, nf, H, W]; sample n gets group n mod groups
        return torch.cat([x, y.to(x.dtype)], dim=1)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, num_channels={self.num_channels}"


class DiscriminatorEpilogue(nn.Module):
    """The 4x4 head: x [N, in, 4, 4] (+ cmap [N, cmap_dim]) -> logits [N, 1], always in float32."""

    def __init__(
        self,
        in_channels: int,
        cmap_dim: int,
        resolution: int,
        img_channels: int,
        architecture: str = "resnet",
        mbstd_group_size: int | None = 4,
        mbstd_num_channels: int = 1,
        activation: str = "lrelu",
        conv_clamp: float | None = None,
    ):
        if architecture not in ("orig", "skip", "resnet"):
            raise ValueError(f"architecture must be 'orig', 'skip' or 'resnet'; got {architecture!r}")
        super().__init__()
        self.in_channels = in_channels
        self.cmap_dim = cmap_dim
        self.resolution = resolution
        self.img_channels = img_channels
        self.architecture = architecture

        if architecture == "skip":
            self.fromrgb = Conv2dLayer(img_channels, in_channels, kernel_size=1, activation=activation)
        self.mbstd = MinibatchStdLayer(mbstd_group_size, mbstd_num_channels) if mbstd_num_channels > 0 else None
        self.conv = Conv2dLayer(in_channels + mbstd_num_channels, in_channels, kernel_size=3,
                                activation=activation, conv_clamp=conv_clamp)
        self.fc = FullyConnectedLayer(in_channels * resolution**2, in_channels, activation=activation)
        self.out = FullyConnectedLayer(in_channels, 1 if cmap_dim == 0 else cmap_dim)

    def forward(self, x: torch.Tensor, img: torch.Tensor | None, cmap: torch.Tensor | None) -> torch.Tensor:
        check_shape(x, [None, self.in_channels, self.resolution, self.resolution], "DiscriminatorEpilogue x")
        x = x.to(dtype=torch.float32, memory_format=torch.contiguous_format)
        if self.architecture == "skip":
            check_shape(img, [None, self.img_channels, self.resolution, self.resolution], "DiscriminatorEpilogue img")
            x = x + self.fromrgb(img.to(dtype=torch.float32, memory_format=torch.contiguous_format))

        if self.mbstd is not None:
            x = self.mbstd(x)  # [N, in + mbstd_num_channels, 4, 4]
        x = self.conv(x)  # [N, in, 4, 4]
        x = self.fc(x.flatten(1))  # [N, in]
        x = self.out(x)  # [N, 1] or [N, cmap_dim]

        if self.cmap_dim > 0:  # projection discriminator
            check_shape(cmap, [x.shape[0], self.cmap_dim], "DiscriminatorEpilogue cmap")
            x = (x * cmap).sum(dim=1, keepdim=True) * (1 / math.sqrt(self.cmap_dim))  # [N, 1]
        return x


class Discriminator(nn.Module):
    """img [N, img_channels, R, R], c [N, c_dim] -> logits [N, 1] (float32).

    Blocks bR, ..., b8, then the epilogue `b4`; with c_dim > 0 a MappingNetwork embeds c into cmap
    (cmap_dim None = the 4x4 channel count). num_fp16_res / fp16_dtype as in the generator.
    block_kwargs: DiscriminatorBlock arguments (activation, resample_filter, freeze_layers, ...);
    mapping_kwargs: MappingNetwork arguments (num_layers defaults to 8 there);
    epilogue_kwargs: mbstd_group_size, mbstd_num_channels, activation.
    """

    def __init__(
        self,
        c_dim: int,
        img_resolution: int,
        img_channels: int,
        architecture: str = "resnet",
        channel_base: int = 32768,
        channel_max: int = 512,
        num_fp16_res: int = 0,
        conv_clamp: float | None = None,
        cmap_dim: int | None = None,
        block_kwargs: dict | None = None,
        mapping_kwargs: dict | None = None,
        epilogue_kwargs: dict | None = None,
        fp16_dtype: str | torch.dtype = "float16",
    ):
        if img_resolution < 8 or img_resolution & (img_resolution - 1):
            raise ValueError(f"img_resolution must be a power of two >= 8; got {img_resolution}")
        super().__init__()
        self.c_dim = c_dim
        self.img_resolution = img_resolution
        self.img_resolution_log2 = int(math.log2(img_resolution))
        self.img_channels = img_channels
        self.block_resolutions = [2**i for i in range(self.img_resolution_log2, 2, -1)]  # R, R/2, ..., 8
        channels = {res: min(channel_base // res, channel_max) for res in self.block_resolutions + [4]}
        if min(channels.values()) < 1:
            raise ValueError(f"channel_base={channel_base} gives no channels at {img_resolution}x{img_resolution}")
        fp16_resolution = max(2 ** (self.img_resolution_log2 + 1 - num_fp16_res), 8)

        if cmap_dim is None:
            cmap_dim = channels[4]
        if c_dim == 0:
            cmap_dim = 0
        self.cmap_dim = cmap_dim

        common = dict(img_channels=img_channels, architecture=architecture, conv_clamp=conv_clamp)
        layer_idx = 0
        for res in self.block_resolutions:
            block = DiscriminatorBlock(channels[res] if res < img_resolution else 0, channels[res], channels[res // 2],
                                       resolution=res, first_layer_idx=layer_idx, use_fp16=res >= fp16_resolution,
                                       fp16_dtype=fp16_dtype, **(block_kwargs or {}), **common)
            setattr(self, f"b{res}", block)
            layer_idx += block.num_layers
        if c_dim > 0:
            self.mapping = MappingNetwork(z_dim=0, c_dim=c_dim, w_dim=cmap_dim, num_ws=None, w_avg_beta=None,
                                          **(mapping_kwargs or {}))
        self.b4 = DiscriminatorEpilogue(channels[4], cmap_dim=cmap_dim, resolution=4, **(epilogue_kwargs or {}),
                                        **common)

    def forward(
        self, img: torch.Tensor, c: torch.Tensor | None = None, force_fp32: bool = False, update_emas: bool = False
    ) -> torch.Tensor:
        """update_emas is accepted for call compatibility with G and ignored (D tracks no averages)."""
        del update_emas
        check_shape(img, [None, self.img_channels, self.img_resolution, self.img_resolution], "Discriminator img")
        x = None
        for res in self.block_resolutions:
            x, img = getattr(self, f"b{res}")(x, img, force_fp32=force_fp32)

        cmap = None
        if self.c_dim > 0:
            if c is None:
                raise ValueError(f"Discriminator: c_dim={self.c_dim} needs labels c [N, {self.c_dim}]")
            cmap = self.mapping(None, c)  # [N, cmap_dim]
        return self.b4(x, img, cmap)

    def extra_repr(self) -> str:
        return f"c_dim={self.c_dim}, img_resolution={self.img_resolution}, cmap_dim={self.cmap_dim}"
