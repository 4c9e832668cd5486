"""The StyleGAN2 generator (config F, 'skip' architecture by default).

    z [N, z_dim], c [N, c_dim]
    -> MappingNetwork                          ws [N, num_ws, w_dim]
    -> SynthesisNetwork: one SynthesisBlock per resolution 4, 8, ..., R
         b4:  learned const [C4, 4, 4] -> conv1 -> torgb
         bR:  conv0 (3x3, up 2) -> conv1 (3x3) -> torgb;   img = upsample2d(img) + torgb(x)   ('skip')
    -> img [N, img_channels, R, R]

Each conv layer is a modulated 3x3 convolution whose per-input-channel style comes from one w through an
affine layer, followed by per-pixel noise, bias and leaky ReLU. Channels per resolution:
min(channel_base // res, channel_max). Module and parameter names equal NVlabs stylegan2-ada-pytorch's.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from stylegan_anime.cuda_ops import bias_act, upfirdn2d

from .layers import (
    DEFAULT_FILTER,
    Conv2dLayer,
    FullyConnectedLayer,
    MappingNetwork,
    block_dtype,
    check_shape,
    make_resample_filter,
    memory_format_for,
    modulated_conv2d,
    resolve_fp16_dtype,
)

__all__ = ["SynthesisLayer", "ToRGBLayer", "SynthesisBlock", "SynthesisNetwork", "Generator"]

NOISE_MODES = ("random", "const", "none")


class SynthesisLayer(nn.Module):
    """Modulated conv (optionally upsampling by 2) + noise + bias + activation.

    x [N, in, res/up, res/up], w [N, w_dim] -> [N, out, res, res].
    Parameters: `affine` (w -> styles [N, in], bias initialised to 1), `weight` [out, in, k, k], `bias`
    [out], `noise_strength` [] (starts at 0); buffers `resample_filter` [4, 4], `noise_const` [res, res].
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        kernel_size: int = 3,
        up: int = 1,
        use_noise: bool = True,
        activation: str = "lrelu",
        resample_filter: Sequence[float] = DEFAULT_FILTER,
        conv_clamp: float | None = None,
        channels_last: bool = False,
    ):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.resolution = resolution
        self.up = up
        self.use_noise = use_noise
        self.activation = activation
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", make_resample_filter(resample_filter))
        self.padding = kernel_size // 2
        self.act_gain = bias_act.ACTIVATIONS[activation].def_gain

        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        weight = torch.randn([out_channels, in_channels, kernel_size, kernel_size])
        self.weight = nn.Parameter(weight.to(memory_format=memory_format))
        if use_noise:
            self.register_buffer("noise_const", torch.randn([resolution, resolution]))
            self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))

    def forward(
        self,
        x: torch.Tensor,
        w: torch.Tensor,
        noise_mode: str = "random",
        fused_modconv: bool = True,
        gain: float = 1,
    ) -> torch.Tensor:
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}; got {noise_mode!r}")
        in_res = self.resolution // self.up
        check_shape(x, [None, self.in_channels, in_res, in_res], f"SynthesisLayer({self.resolution}) x")
        styles = self.affine(w)  # [N, in]

        noise = None  # broadcasts against [N, out, res, res]
        if self.use_noise and noise_mode == "random":
            noise = torch.randn([x.shape[0], 1, self.resolution, self.resolution], device=x.device)
            noise = noise * self.noise_strength
        elif self.use_noise and noise_mode == "const":
            noise = self.noise_const * self.noise_strength

        flip_weight = self.up == 1  # true convolution when upsampling (as trained by the original)
        x = modulated_conv2d(x, self.weight, styles, noise=noise, up=self.up, padding=self.padding,
                             resample_filter=self.resample_filter, flip_weight=flip_weight,
                             fused_modconv=fused_modconv)
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act.bias_act(x, self.bias.to(x.dtype), dim=1, act=self.activation,
                                 gain=self.act_gain * gain, clamp=act_clamp)

    def extra_repr(self) -> str:
        return f"in={self.in_channels}, out={self.out_channels}, resolution={self.resolution}, up={self.up}"


class ToRGBLayer(nn.Module):
    """Modulated 1x1 conv without demodulation + bias: x [N, in, H, W], w [N, w_dim] -> [N, out, H, W]."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        kernel_size: int = 1,
        conv_clamp: float | None = None,
        channels_last: bool = False,
    ):
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        weight = torch.randn([out_channels, in_channels, kernel_size, kernel_size])
        self.weight = nn.Parameter(weight.to(memory_format=memory_format))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        # No demodulation here, so the equalised-lr gain goes onto the styles.
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused_modconv: bool = True) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain  # [N, in]
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, fused_modconv=fused_modconv)
        return bias_act.bias_act(x, self.bias.to(x.dtype), dim=1, clamp=self.conv_clamp)


class SynthesisBlock(nn.Module):
    """One resolution of the synthesis network: (x, img) at res/2 -> (x, img) at res.

    in_channels = 0 marks the first block (4x4), which starts from the learned `const` instead of x.
    Architectures: 'skip' (every block adds its ToRGB to the upsampled image), 'orig' (only the last block
    has a ToRGB), 'resnet' (residual 1x1 upsampling skip, ToRGB only at the last block).
    It consumes `num_conv + num_torgb` ws; consecutive blocks share one w (this block's torgb w is the next
    block's conv0 w), see SynthesisNetwork.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        img_channels: int,
        is_last: bool,
        architecture: str = "skip",
        resample_filter: Sequence[float] = DEFAULT_FILTER,
        conv_clamp: float | None = None,
        use_fp16: bool = False,
        fp16_channels_last: bool = False,
        fp16_dtype: str | torch.dtype = "float16",
        **layer_kwargs,
    ):
        if architecture not in ("orig", "skip", "resnet"):
            raise ValueError(f"architecture must be 'orig', 'skip' or 'resnet'; got {architecture!r}")
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.w_dim = w_dim
        self.resolution = resolution
        self.img_channels = img_channels
        self.is_last = is_last
        self.architecture = architecture
        self.use_fp16 = use_fp16
        self.fp16_dtype = resolve_fp16_dtype(fp16_dtype)
        self.channels_last = use_fp16 and fp16_channels_last
        self.register_buffer("resample_filter", make_resample_filter(resample_filter))
        self.num_conv = 0
        self.num_torgb = 0

        if in_channels == 0:
            self.const = nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim=w_dim, resolution=resolution, up=2,
                                        resample_filter=resample_filter, conv_clamp=conv_clamp,
                                        channels_last=self.channels_last, **layer_kwargs)
            self.num_conv += 1

        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim=w_dim, resolution=resolution,
                                    conv_clamp=conv_clamp, channels_last=self.channels_last, **layer_kwargs)
        self.num_conv += 1

        if is_last or architecture == "skip":
            self.torgb = ToRGBLayer(out_channels, img_channels, w_dim=w_dim, conv_clamp=conv_clamp,
                                    channels_last=self.channels_last)
            self.num_torgb += 1

        if in_channels != 0 and architecture == "resnet":
            self.skip = Conv2dLayer(in_channels, out_channels, kernel_size=1, bias=False, up=2,
                                    resample_filter=resample_filter, channels_last=self.channels_last)

    def forward(
        self,
        x: torch.Tensor | None,
        img: torch.Tensor | None,
        ws: torch.Tensor,
        force_fp32: bool = False,
        fused_modconv: bool | None = None,
        **layer_kwargs,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x [N, in, res/2, res/2] (None for the first block), img [N, img_channels, res/2, res/2] or None,
        ws [N, num_conv + num_torgb, w_dim] -> x [N, out, res, res] (block dtype), img float32 or None.

        fused_modconv: None = fused in eval mode when computing in float32 (or for a batch of 1).
        layer_kwargs:  `noise_mode` for the conv layers.
        """
        N = ws.shape[0]
        check_shape(ws, [None, self.num_conv + self.num_torgb, self.w_dim], f"SynthesisBlock({self.resolution}) ws")
        w_iter = iter(ws.unbind(dim=1))
        dtype = block_dtype(self.use_fp16, force_fp32, self.fp16_dtype, ws.device)
        memory_format = memory_format_for(self.channels_last, dtype)
        if fused_modconv is None:
            fused_modconv = (not self.training) and (dtype == torch.float32 or N == 1)

        # Input.  [N, in or out, ...]
        if self.in_channels == 0:
            x = self.const.to(dtype).unsqueeze(0).repeat([N, 1, 1, 1])  # [N, out, 4, 4]
        else:
            half = self.resolution // 2
            check_shape(x, [None, self.in_channels, half, half], f"SynthesisBlock({self.resolution}) x")
            x = x.to(dtype)
        x = x.to(memory_format=memory_format)

        # Main layers.  -> [N, out, res, res]
        if self.in_channels == 0:
            x = self.conv1(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)
        elif self.architecture == "resnet":
            y = self.skip(x, gain=math.sqrt(0.5))
            x = self.conv0(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)
            x = self.conv1(x, next(w_iter), fused_modconv=fused_modconv, gain=math.sqrt(0.5), **layer_kwargs)
            x = y + x
        else:
            x = self.conv0(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)
            x = self.conv1(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)

        # ToRGB.  img [N, img_channels, res, res], always float32.
        if img is not None:
            half = self.resolution // 2
            check_shape(img, [None, self.img_channels, half, half], f"SynthesisBlock({self.resolution}) img")
            img = upfirdn2d.upsample2d(img, self.resample_filter)
        if self.is_last or self.architecture == "skip":
            y = self.torgb(x, next(w_iter), fused_modconv=fused_modconv)
            y = y.to(dtype=torch.float32, memory_format=torch.contiguous_format)
            img = img + y if img is not None else y
        return x, img

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, architecture={self.architecture}, use_fp16={self.use_fp16}"


class SynthesisNetwork(nn.Module):
    """ws [N, num_ws, w_dim] -> img [N, img_channels, R, R] through blocks b4, b8, ..., bR.

    num_fp16_res: the top `num_fp16_res` resolutions (never 4x4) compute in reduced precision, `fp16_dtype`
                  'float16' (float32 on the CPU) or 'bfloat16'; pair it with conv_clamp (e.g. 256).
    block_kwargs: SynthesisBlock / SynthesisLayer arguments: architecture, resample_filter, conv_clamp,
                  fp16_channels_last, use_noise, activation, kernel_size.
    """

    def __init__(
        self,
        w_dim: int,
        img_resolution: int,
        img_channels: int,
        channel_base: int = 32768,
        channel_max: int = 512,
        num_fp16_res: int = 0,
        fp16_dtype: str | torch.dtype = "float16",
        **block_kwargs,
    ):
        if img_resolution < 4 or img_resolution & (img_resolution - 1):
            raise ValueError(f"img_resolution must be a power of two >= 4; got {img_resolution}")
        super().__init__()
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_resolution_log2 = int(math.log2(img_resolution))
        self.img_channels = img_channels
        self.num_fp16_res = num_fp16_res
        self.block_resolutions = [2**i for i in range(2, self.img_resolution_log2 + 1)]
        channels = {res: min(channel_base // res, channel_max) for res in self.block_resolutions}
        if min(channels.values()) < 1:
            raise ValueError(f"channel_base={channel_base} gives no channels at {img_resolution}x{img_resolution}")
        fp16_resolution = max(2 ** (self.img_resolution_log2 + 1 - num_fp16_res), 8)

        # Every block reads its conv ws plus one torgb w; the torgb w is shared with the next block's first
        # conv, so only the last block's torgb adds a w of its own.
        self.num_ws = 0
        for res in self.block_resolutions:
            is_last = res == img_resolution
            block = SynthesisBlock(channels[res // 2] if res > 4 else 0, channels[res], w_dim=w_dim,
                                   resolution=res, img_channels=img_channels, is_last=is_last,
                                   use_fp16=res >= fp16_resolution, fp16_dtype=fp16_dtype, **block_kwargs)
            self.num_ws += block.num_conv + (block.num_torgb if is_last else 0)
            setattr(self, f"b{res}", block)

    def forward(
        self,
        ws: torch.Tensor,
        noise_mode: str = "random",
        force_fp32: bool = False,
        fused_modconv: bool | None = None,
    ) -> torch.Tensor:
        check_shape(ws, [None, self.num_ws, self.w_dim], "SynthesisNetwork ws")
        ws = ws.to(torch.float32)
        block_ws = []  # [N, num_conv + num_torgb, w_dim] per block, overlapping by the torgb w
        w_idx = 0
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            block_ws.append(ws.narrow(1, w_idx, block.num_conv + block.num_torgb))
            w_idx += block.num_conv

        x = img = None
        for res, cur_ws in zip(self.block_resolutions, block_ws):
            block = getattr(self, f"b{res}")
            x, img = block(x, img, cur_ws, force_fp32=force_fp32, fused_modconv=fused_modconv, noise_mode=noise_mode)
        return img

    def extra_repr(self) -> str:
        return f"w_dim={self.w_dim}, img_resolution={self.img_resolution}, num_ws={self.num_ws}"


class Generator(nn.Module):
    """z [N, z_dim], c [N, c_dim] -> img [N, img_channels, R, R] (roughly in [-1, 1]).

    `.mapping` (MappingNetwork), `.synthesis` (SynthesisNetwork), `.num_ws`.
    synthesis_kwargs: channel_base, channel_max, num_fp16_res, fp16_dtype, architecture, conv_clamp, ...
    """

    def __init__(
        self,
        z_dim: int,
        c_dim: int,
        w_dim: int,
        img_resolution: int,
        img_channels: int,
        mapping_kwargs: dict | None = None,
        **synthesis_kwargs,
    ):
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.synthesis = SynthesisNetwork(w_dim=w_dim, img_resolution=img_resolution, img_channels=img_channels,
                                          **synthesis_kwargs)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=self.num_ws,
                                      **(mapping_kwargs or {}))

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None,
        truncation_psi: float = 1,
        truncation_cutoff: int | None = None,
        update_emas: bool = False,
        noise_mode: str = "random",
        **synthesis_kwargs,
    ) -> torch.Tensor:
        """synthesis_kwargs: force_fp32, fused_modconv (see SynthesisNetwork.forward)."""
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                          update_emas=update_emas)
        return self.synthesis(ws, noise_mode=noise_mode, **synthesis_kwargs)
