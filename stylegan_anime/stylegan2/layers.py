"""Building blocks shared by the StyleGAN2 generator and discriminator.

Everything here follows the StyleGAN2 paper (config F) as implemented in NVlabs' stylegan2-ada-pytorch, so
that its checkpoints load by name (same state-dict keys, shapes and numerics):

- **Equalised learning rate.** Weights are stored as N(0, 1) / lr_multiplier and scaled at run time by
  lr_multiplier / sqrt(fan_in); biases are stored unscaled and multiplied by lr_multiplier. Adam then moves
  every layer at the same relative speed whatever its fan-in.
- **Resampling and bias + activation** go only through `stylegan_anime.cuda_ops` (`upfirdn2d`, `bias_act`),
  so the fused CUDA kernels drop in later without touching this file.
- **Low-pass filters** are stored as 2-D [4, 4] buffers (`resample_filter`): NVlabs' `setup_filter` turns
  short 1-D filters (< 8 taps) into their 2-D outer product, and checkpoints hold that shape.

Contents: `normalize_2nd_moment`, `conv2d_resample`, `modulated_conv2d`, `FullyConnectedLayer`,
`Conv2dLayer`, `MappingNetwork`, and the reduced-precision helpers `resolve_fp16_dtype` / `block_dtype`.

Length (~510 lines): every layer shared by G and D, each small; split further it would scatter the
equalised-learning-rate convention over several files.
"""
from __future__ import annotations

import math
import operator
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from stylegan_anime.cuda_ops import bias_act, upfirdn2d

__all__ = [
    "normalize_2nd_moment",
    "conv2d_resample",
    "modulated_conv2d",
    "FullyConnectedLayer",
    "Conv2dLayer",
    "MappingNetwork",
    "make_resample_filter",
    "resolve_fp16_dtype",
    "block_dtype",
    "memory_format_for",
]

DEFAULT_FILTER = (1, 3, 3, 1)

# ==========================================================================================================
# Small helpers.


def check_shape(t: torch.Tensor, shape: Sequence[int | None], name: str) -> None:
    """Raise a readable ValueError unless `t` has `shape` (None = any size on that axis)."""
    ok = t.ndim == len(shape) and all(want is None or got == want for got, want in zip(t.shape, shape))
    if not ok:
        want = ", ".join("*" if s is None else str(s) for s in shape)
        raise ValueError(f"{name}: expected shape [{want}], got {list(t.shape)}")


def make_resample_filter(f: Sequence[float] | torch.Tensor | None = DEFAULT_FILTER) -> torch.Tensor:
    """The [fh, fw] low-pass filter buffer, normalised to sum 1 (a 1-D list becomes its outer product)."""
    return upfirdn2d.setup_filter(list(f) if isinstance(f, tuple) else f, separable=False)


def _padding4(padding: int | Sequence[int]) -> list[int]:
    """int, (px, py) or (x0, x1, y0, y1) -> [x0, x1, y0, y1]."""
    if isinstance(padding, int):
        return [padding] * 4
    p = [operator.index(v) for v in padding]
    if len(p) == 2:
        return [p[0], p[0], p[1], p[1]]
    if len(p) != 4:
        raise ValueError(f"padding must be an int, (px, py) or (x0, x1, y0, y1); got {padding!r}")
    return p


def _filter_size(f: torch.Tensor | None) -> tuple[int, int]:
    """(fw, fh) of a filter: None -> (1, 1), [n] -> (n, n), [fh, fw] -> (fw, fh)."""
    if f is None:
        return 1, 1
    return int(f.shape[-1]), int(f.shape[0])


_REDUCED_DTYPES = {
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}


def resolve_fp16_dtype(fp16_dtype: str | torch.dtype) -> torch.dtype:
    """'float16' | 'fp16' | 'bfloat16' | 'bf16' (or the torch dtype) -> torch.float16 / torch.bfloat16."""
    if isinstance(fp16_dtype, torch.dtype) and fp16_dtype in (torch.float16, torch.bfloat16):
        return fp16_dtype
    if isinstance(fp16_dtype, str) and fp16_dtype in _REDUCED_DTYPES:
        return _REDUCED_DTYPES[fp16_dtype]
    raise ValueError(f"fp16_dtype must be 'float16' or 'bfloat16'; got {fp16_dtype!r}")


def block_dtype(use_fp16: bool, force_fp32: bool, fp16_dtype: torch.dtype, device: torch.device) -> torch.dtype:
    """The dtype a block computes in.

    float32 unless the block is a reduced-precision one (`use_fp16`) and `force_fp32` is off. float16 on the
    CPU falls back to float32 (half convolutions are slow there; stylegan2-ada-pytorch does run them in float16 on the CPU, so
    an imported fp16 model differs from its original by up to ~1e-2 on the CPU, and not at all in fp32); bfloat16
    runs on any device.
    """
    if not use_fp16 or force_fp32:
        return torch.float32
    if fp16_dtype == torch.float16 and device.type == "cpu":
        return torch.float32
    return fp16_dtype


def memory_format_for(channels_last: bool, dtype: torch.dtype) -> torch.memory_format:
    """channels_last only where asked for (fp16_channels_last) and the block really runs in reduced precision."""
    return torch.channels_last if channels_last and dtype != torch.float32 else torch.contiguous_format


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """Scale `x` so that the mean of its squares along `dim` is 1 (the pixel norm of z and label embeddings)."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


# ==========================================================================================================
# Convolution with up/downsampling.


def _conv(
    x: torch.Tensor,
    w: torch.Tensor,
    stride: int = 1,
    padding: int | tuple[int, int] = 0,
    groups: int = 1,
    flip_weight: bool = True,
    transpose: bool = False,
) -> torch.Tensor:
    """F.conv2d / F.conv_transpose2d with the weight given as [O, I/groups, kh, kw] in both cases.

    flip_weight=True means correlation (what F.conv2d computes). F.conv_transpose2d scatters every input
    pixel through the kernel, which is a true convolution of the zero-inserted input, so in that case the
    kernel is flipped to get correlation.
    """
    if transpose:
        if flip_weight:
            w = w.flip([2, 3])
        O, I_g, kh, kw = w.shape
        # conv_transpose2d wants [in_channels, out_channels / groups, kh, kw].
        w = w.reshape(groups, O // groups, I_g, kh, kw).transpose(1, 2).reshape(groups * I_g, O // groups, kh, kw)
        return F.conv_transpose2d(x, w, stride=stride, padding=padding, groups=groups)
    if not flip_weight:
        w = w.flip([2, 3])
    return F.conv2d(x, w, stride=stride, padding=padding, groups=groups)


def conv2d_resample(
    x: torch.Tensor,
    w: torch.Tensor,
    f: torch.Tensor | None = None,
    up: int = 1,
    down: int = 1,
    padding: int | Sequence[int] = 0,
    groups: int = 1,
    flip_weight: bool = True,
    flip_filter: bool = False,
) -> torch.Tensor:
    """2-D convolution with optional FIR-filtered up- or downsampling.

    x:           [N, C, H, W].
    w:           [O, C / groups, kh, kw], same dtype as x.
    f:           low-pass filter for the resampling (see `make_resample_filter`); None = identity.
    up, down:    integer factors.
    padding:     int, (px, py) or (x0, x1, y0, y1), applied once, on the upsampled image.
    flip_weight: True = correlation (like F.conv2d), False = true convolution.
    Returns [N, O, H', W']; e.g. a k x k kernel with padding k // 2 gives [N, O, H*up/down, W*up/down].

    The result is defined by the slow path:

        zero-insert by `up` (times up**2), pad, filter with f       (upfirdn2d with `up`)
        -> convolve with w, no padding
        -> filter with f and keep every `down`-th pixel             (upfirdn2d with `down`)

    and computed by faster equivalent orders: for up = 2 a stride-2 transposed convolution and then the
    filter; for down = 2 the filter and then a stride-2 convolution (filter and convolution commute, both
    being linear and shift-invariant on the same pixel grid).
    """
    if not (isinstance(up, int) and up >= 1 and isinstance(down, int) and down >= 1):
        raise ValueError(f"conv2d_resample: up and down must be ints >= 1; got up={up!r}, down={down!r}")
    if w.ndim != 4 or x.ndim != 4:
        raise ValueError(f"conv2d_resample: need x [N,C,H,W] and w [O,I,kh,kw]; got {list(x.shape)}, {list(w.shape)}")
    O, I_g, kh, kw = w.shape
    fw, fh = _filter_size(f)
    px0, px1, py0, py1 = _padding4(padding)

    # Extra padding the FIR filter needs around a resampling (as in upsample2d / downsample2d), so that
    # a k x k kernel with padding k // 2 maps H to H * up / down.
    if up > 1:
        px0, px1 = px0 + (fw + up - 1) // 2, px1 + (fw - up) // 2
        py0, py1 = py0 + (fh + up - 1) // 2, py1 + (fh - up) // 2
    if down > 1:
        px0, px1 = px0 + (fw - down + 1) // 2, px1 + (fw - down) // 2
        py0, py1 = py0 + (fh - down + 1) // 2, py1 + (fh - down) // 2
    pad = [px0, px1, py0, py1]

    # No resampling: a plain convolution (F.conv2d pads symmetrically; anything else pads first).
    if up == 1 and down == 1:
        if px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
            return _conv(x, w, padding=(py0, px0), groups=groups, flip_weight=flip_weight)
        x = upfirdn2d.upfirdn2d(x, None, padding=pad)
        return _conv(x, w, groups=groups, flip_weight=flip_weight)

    # Downsampling only: filter, then a strided convolution (a 1x1 kernel: filter + decimate, then convolve).
    if up == 1:
        if kh == 1 and kw == 1:
            x = upfirdn2d.upfirdn2d(x, f, down=down, padding=pad, flip_filter=flip_filter)
            return _conv(x, w, groups=groups, flip_weight=flip_weight)
        x = upfirdn2d.upfirdn2d(x, f, padding=pad, flip_filter=flip_filter)
        return _conv(x, w, stride=down, groups=groups, flip_weight=flip_weight)

    # Upsampling with a 1x1 kernel: convolve the small image, then upsample it (upfirdn2d applies up**2).
    if kh == 1 and kw == 1 and down == 1:
        x = _conv(x, w, groups=groups, flip_weight=flip_weight)
        return upfirdn2d.upfirdn2d(x, f, up=up, padding=pad, flip_filter=flip_filter)

    # Upsampling: a stride-`up` transposed convolution equals zero insertion, padding by (k - 1) before and
    # (k - up) after, and a valid convolution. Take that padding off what the filter step still has to add;
    # the filter step runs on the already-upsampled grid, so it carries the up**2 gain itself.
    pad = [px0 - (kw - 1), px1 - (kw - up), py0 - (kh - 1), py1 - (kh - up)]
    x = _conv(x, w, stride=up, groups=groups, flip_weight=flip_weight, transpose=True)
    x = upfirdn2d.upfirdn2d(x, f, padding=pad, gain=up**2, flip_filter=flip_filter)
    if down > 1:
        x = upfirdn2d.upfirdn2d(x, f, down=down, flip_filter=flip_filter)
    return x


# ==========================================================================================================
# Modulated convolution.

_REDUCED = (torch.float16, torch.bfloat16)


# The non-fused modulated convolution's evaluation order since issue #22: the demodulation sum regrouped
# (_demod_coefs) and x * dcoefs + noise in one pass. False: the order before it, which tools/bench_cpu.py's
# `main` variant times (the same function within float rounding: tests/test_cpu_speed.py).
MODCONV_REGROUPED = True


def _demod_coefs(weight: torch.Tensor, styles: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
    """[N, O] = 1 / sqrt(sum_{i,k} (weight[o,i,k] * styles[n,i])^2 + 1e-8).

    From the per-sample weights `w` [N, O, I, kh, kw] when they are built anyway (the fused path); otherwise the
    same sum regrouped, sum_i styles[n,i]^2 * (sum_k weight[o,i,k]^2), over N * O * I elements instead of building,
    squaring and reducing N * O * I * k^2 (and their backward), which was ~7% of a CPU training step at the `cpu`
    preset (tools/bench_cpu.py; tests/test_cpu_speed.py checks the two in float64). Element-wise and a sum, not
    a matmul, so that autocast (--amp) leaves it in float32 as before.
    """
    if w is None and not MODCONV_REGROUPED:
        w = weight.unsqueeze(0) * styles.reshape(styles.shape[0], 1, -1, 1, 1)
    if w is not None:
        return (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()
    wsq = weight.square().sum(dim=[2, 3])  # [O, I]
    return ((styles.square().unsqueeze(1) * wsq.unsqueeze(0)).sum(dim=2) + 1e-8).rsqrt()


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    noise: torch.Tensor | None = None,
    up: int = 1,
    down: int = 1,
    padding: int | Sequence[int] = 0,
    resample_filter: torch.Tensor | None = None,
    demodulate: bool = True,
    flip_weight: bool = True,
    fused_modconv: bool = True,
) -> torch.Tensor:
    """StyleGAN2's modulated (and demodulated) convolution.

    x:       [N, I, H, W] activations.
    weight:  [O, I, kh, kw] shared (already gain-scaled or not: demodulation removes the scale).
    styles:  [N, I] per-sample input-channel scales (the affine layer's output).
    noise:   None or anything broadcastable to the output, e.g. [N, 1, H', W'], added last.
    Returns [N, O, H', W'] (see `conv2d_resample` for H', W').

    Per sample n: w'[o,i] = weight[o,i] * styles[n,i]; with demodulation w'' = w' / sqrt(sum_{i,k} w'^2 + 1e-8),
    i.e. unit-variance input gives unit-variance output. Two equivalent evaluations:

    - fused:     build w'' for every sample and run one grouped convolution ([1, N*I, H, W], groups=N);
    - non-fused: scale x by styles, run the shared convolution, scale the result by the demod coefficients.
    """
    N = x.shape[0]
    O, I, kh, kw = weight.shape
    check_shape(x, [N, I, None, None], "modulated_conv2d x")
    check_shape(styles, [N, I], "modulated_conv2d styles")

    # Pre-normalise so that the per-sample weights cannot overflow in reduced precision. Both factors are
    # per output channel / per sample, so demodulation cancels them exactly.
    if x.dtype in _REDUCED and demodulate:
        weight = weight * (1 / math.sqrt(I * kh * kw) / weight.abs().amax(dim=[1, 2, 3], keepdim=True))
        styles = styles / styles.abs().amax(dim=1, keepdim=True)

    w = None  # [N, O, I, kh, kw] per-sample weights
    dcoefs = None  # [N, O] demodulation coefficients
    if fused_modconv:
        w = weight.unsqueeze(0) * styles.reshape(N, 1, I, 1, 1)
    if demodulate:
        dcoefs = _demod_coefs(weight, styles, w)

    if not fused_modconv:
        x = x * styles.to(x.dtype).reshape(N, I, 1, 1)
        x = conv2d_resample(x, weight.to(x.dtype), f=resample_filter, up=up, down=down, padding=padding,
                            flip_weight=flip_weight)
        if demodulate and noise is not None and MODCONV_REGROUPED:  # x * dcoefs + noise in one pass
            return torch.addcmul(noise.to(x.dtype), x, dcoefs.to(x.dtype).reshape(N, O, 1, 1))
        if demodulate:
            x = x * dcoefs.to(x.dtype).reshape(N, O, 1, 1)
        if noise is not None:
            x = x + noise.to(x.dtype)
        return x

    if demodulate:
        w = w * dcoefs.reshape(N, O, 1, 1, 1)
    H, W = x.shape[2], x.shape[3]
    x = x.reshape(1, N * I, H, W)  # the batch becomes the groups
    x = conv2d_resample(x, w.reshape(N * O, I, kh, kw).to(x.dtype), f=resample_filter, up=up, down=down,
                        padding=padding, groups=N, flip_weight=flip_weight)
    x = x.reshape(N, O, x.shape[2], x.shape[3])
    if noise is not None:
        x = x + noise.to(x.dtype)
    return x


# ==========================================================================================================
# Layers with equalised learning rate.


class FullyConnectedLayer(nn.Module):
    """Linear layer with equalised learning rate and a fused bias + activation: [N, in] -> [N, out].

    Parameters: `weight` [out, in] ~ N(0, 1) / lr_multiplier, used as weight * lr_multiplier / sqrt(in);
    `bias` [out] = bias_init, used as bias * lr_multiplier (so its effective learning rate scales too).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        activation: str = "linear",
        lr_multiplier: float = 1,
        bias_init: float = 0,
    ):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        self.weight = nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain  # [out, in]
        b = None
        if self.bias is not None:
            b = self.bias.to(x.dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        x = x.matmul(w.t())  # [N, out]
        return bias_act.bias_act(x, b, dim=1, act=self.activation)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, activation={self.activation}"


class Conv2dLayer(nn.Module):
    """Convolution with equalised learning rate, optional FIR up/downsampling and fused bias + activation.

    [N, in, H, W] -> [N, out, H*up/down, W*up/down] (`padding = kernel_size // 2`).
    The output is scaled by the activation's gain (sqrt(2) for lrelu) times the `gain` forward argument and
    clamped to +-conv_clamp*gain when conv_clamp is set. `trainable=False` stores weight and bias as buffers
    (Freeze-D); the state-dict names stay the same.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        bias: bool = True,
        activation: str = "linear",
        up: int = 1,
        down: int = 1,
        resample_filter: Sequence[float] = DEFAULT_FILTER,
        conv_clamp: float | None = None,
        channels_last: bool = False,
        trainable: bool = True,
    ):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.activation = activation
        self.up = up
        self.down = down
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", make_resample_filter(resample_filter))
        self.padding = kernel_size // 2
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)
        self.act_gain = bias_act.ACTIVATIONS[activation].def_gain

        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        weight = torch.randn([out_channels, in_channels, kernel_size, kernel_size]).to(memory_format=memory_format)
        bias_tensor = torch.zeros([out_channels]) if bias else None
        if trainable:
            self.weight = nn.Parameter(weight)
            self.bias = nn.Parameter(bias_tensor) if bias_tensor is not None else None
        else:
            self.register_buffer("weight", weight)
            if bias_tensor is not None:
                self.register_buffer("bias", bias_tensor)
            else:
                self.bias = None

    def forward(self, x: torch.Tensor, gain: float = 1) -> torch.Tensor:
        w = (self.weight * self.weight_gain).to(x.dtype)
        b = self.bias.to(x.dtype) if self.bias is not None else None
        flip_weight = self.up == 1  # true convolution when upsampling: the transposed conv needs no flip
        x = conv2d_resample(x, w, f=self.resample_filter, up=self.up, down=self.down, padding=self.padding,
                            flip_weight=flip_weight)
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act.bias_act(x, b, dim=1, act=self.activation, gain=self.act_gain * gain, clamp=act_clamp)

    def extra_repr(self) -> str:
        return (f"in={self.in_channels}, out={self.out_channels}, k={self.weight.shape[-1]}, act={self.activation}, "
                f"up={self.up}, down={self.down}")


# ==========================================================================================================
# Mapping network (G's z -> w, and D's label embedding).


class MappingNetwork(nn.Module):
    """z [N, z_dim] (+ label c [N, c_dim]) -> w, broadcast to ws [N, num_ws, w_dim] (or [N, w_dim] when
    num_ws is None).

    z is normalised to unit second moment; c goes through a linear embedding, is normalised the same way and
    concatenated. Then `num_layers` FC layers with lr_multiplier (0.01: the mapping learns 100x slower).
    With `w_avg_beta`, the buffer `w_avg` [w_dim] tracks the mean w (updated when `update_emas=True`) and
    is the centre of the truncation trick: w' = w_avg + psi * (w - w_avg).
    """

    def __init__(
        self,
        z_dim: int,
        c_dim: int,
        w_dim: int,
        num_ws: int | None,
        num_layers: int = 8,
        embed_features: int | None = None,
        layer_features: int | None = None,
        activation: str = "lrelu",
        lr_multiplier: float = 0.01,
        w_avg_beta: float | None = 0.995,
    ):
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.num_ws = num_ws
        self.num_layers = num_layers
        self.w_avg_beta = w_avg_beta

        if embed_features is None:
            embed_features = w_dim
        if c_dim == 0:
            embed_features = 0
        if layer_features is None:
            layer_features = w_dim
        features = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]

        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for idx in range(num_layers):
            layer = FullyConnectedLayer(features[idx], features[idx + 1], activation=activation,
                                        lr_multiplier=lr_multiplier)
            setattr(self, f"fc{idx}", layer)
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(
        self,
        z: torch.Tensor | None,
        c: torch.Tensor | None,
        truncation_psi: float = 1,
        truncation_cutoff: int | None = None,
        update_emas: bool = False,
    ) -> torch.Tensor:
        """Returns ws [N, num_ws, w_dim] (or w [N, w_dim] when num_ws is None).

        truncation_cutoff: truncate only the first `cutoff` ws (the coarse layers); None = all of them.
        update_emas:       move `w_avg` towards this batch's mean w by (1 - w_avg_beta).
        """
        # Inputs: normalised z and label embedding, side by side.  [N, z_dim + embed_features]
        parts = []
        if self.z_dim > 0:
            check_shape(z, [None, self.z_dim], "MappingNetwork z")
            parts.append(normalize_2nd_moment(z.to(torch.float32)))
        if self.c_dim > 0:
            check_shape(c, [None, self.c_dim], "MappingNetwork c")
            parts.append(normalize_2nd_moment(self.embed(c.to(torch.float32))))
        x = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]

        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)  # [N, w_dim] after the last layer

        if update_emas and self.w_avg_beta is not None:
            # float32 whatever the layers ran in (under autocast the FC layers give bf16/fp16)
            self.w_avg.copy_(x.detach().float().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))

        if self.num_ws is not None:
            x = x.unsqueeze(1).repeat([1, self.num_ws, 1])  # [N, num_ws, w_dim]

        if truncation_psi != 1:
            if self.w_avg_beta is None:
                raise ValueError("MappingNetwork: truncation needs w_avg (w_avg_beta is None)")
            truncated = self.w_avg.lerp(x.float(), truncation_psi).to(x.dtype)
            if self.num_ws is None or truncation_cutoff is None:
                x = truncated
            else:
                x = torch.cat([truncated[:, :truncation_cutoff], x[:, truncation_cutoff:]], dim=1)
        return x

    def extra_repr(self) -> str:
        return f"z_dim={self.z_dim}, c_dim={self.c_dim}, w_dim={self.w_dim}, num_ws={self.num_ws}"
