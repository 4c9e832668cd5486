"""Project an image into a StyleGAN2 checkpoint's W (or W+) space: find the latent whose image looks like it.

The optimisation is stylegan2-ada-pytorch's projector (Karras et al. 2020, section "Projection"), facts
taken from its paper and defaults, code our own:

- start at the mean w of `w_avg_samples` mapped random z; W mode optimises one w [1, w_dim] broadcast to all
  layers, W+ mode one per layer [1, num_ws, w_dim];
- Adam (0.9, 0.999), learning rate `lr` ramped up over the first 5% of steps and down (cosine) over the last 25%;
- Gaussian noise of std w_std * 0.05 added to w, decaying quadratically to 0 at 75% of the steps;
- with optimize_noise, the per-layer noise maps are optimised too (random start), penalised by their
  autocorrelation at every scale (weight 1e5) and renormalised to mean 0, std 1 after every step. Off by
  default (unlike NVlabs): measured on a 64 px model it gains nothing on real images, loses 9 dB on the model's
  own samples, and a latent found with the constant maps renders the same in `edit` and `explore`.

The distance needs no download: the checkpoint's own discriminator, its block outputs (bR/2 ... b4) unit-
normalised over channels and compared per position (an LPIPS-like feature distance without learned weights),
plus `pixel_weight` x the pixel MSE. With a VGG16 LPIPS network file (stylegan2-ada-pytorch's TorchScript
`vgg16.pt`, given by path; never downloaded), that replaces the discriminator features, as in their projector.
"""
from __future__ import annotations

import copy
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..generate import seed_latents
from ..imageio_utils import to_uint8
from . import require_w_space
from .latents import condition
from ..number_checks import LR_RANGE, check_number

MODES = ("w", "w+")
DISTANCES = ("d", "lpips", "pixels")
MAX_STEPS = 100_000          # NVlabs uses 1000
MAX_PIXEL_WEIGHT = 1e6


@dataclass
class ProjectSettings:
    steps: int = 500
    mode: str = "w"                 # 'w' or 'w+'
    lr: float = 0.1
    lr_rampup: float = 0.05         # fractions of the steps
    lr_rampdown: float = 0.25
    noise_factor: float = 0.05      # w noise std at step 0, in units of w_std
    noise_ramp: float = 0.75
    noise_reg: float = 1e5
    optimize_noise: bool = False    # True: optimise the noise maps too (NVlabs); False: keep the model's constant ones
    pixel_weight: float = 1.0       # added to the feature distance ('d', 'lpips'); 'pixels' uses MSE alone
    w_avg_samples: int = 10000
    seed: int = 0
    frame_every: int = 1            # keep an image for the video every this many steps (0: none)

    def check(self) -> "ProjectSettings":
        if self.mode not in MODES:
            raise ValueError(f"--mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.steps < 1:
            raise ValueError(f"--steps must be positive, got {self.steps}")
        if self.steps > MAX_STEPS:
            raise ValueError(f"--steps must be at most {MAX_STEPS}, got {self.steps}")
        if not self.lr > 0:
            raise ValueError(f"--lr must be positive, got {self.lr}")
        check_number("--lr", self.lr, *LR_RANGE, lo_open=True)
        if self.pixel_weight < 0:
            raise ValueError(f"--pixel-weight must be >= 0, got {self.pixel_weight}")
        check_number("--pixel-weight", self.pixel_weight, 0.0, MAX_PIXEL_WEIGHT)
        if self.w_avg_samples < 2:
            raise ValueError(f"w_avg_samples must be at least 2, got {self.w_avg_samples}")
        return self


@dataclass
class Projection:
    ws: torch.Tensor                        # [1, num_ws, w_dim], CPU
    noise: dict[str, torch.Tensor]          # layer name -> [res, res] (the optimised or kept noise maps)
    image: np.ndarray                       # uint8 [H, W, 3], rendered with those noise maps
    losses: list[float] = field(default_factory=list)
    frames: list[np.ndarray] = field(default_factory=list)  # uint8 [H, W, 3] per kept step


# ------------------------------------------------------------------------------------------ distances


class DiscriminatorFeatures:
    """dist(a, b) [N]: the D blocks' outputs, unit-normalised over channels, squared difference averaged over
    positions and summed over blocks."""

    def __init__(self, D):
        self.D = D.eval().requires_grad_(False)

    def features(self, img: torch.Tensor) -> list[torch.Tensor]:
        D, x, feats = self.D, None, []
        for res in D.block_resolutions:
            x, img = getattr(D, f"b{res}")(x, img, force_fp32=True)
            feats.append(x.float())                              # [N, C, res/2, res/2]
        return [f / (f.square().sum(1, keepdim=True) + 1e-10).sqrt() for f in feats]

    def __call__(self, fa: list[torch.Tensor], fb: list[torch.Tensor]) -> torch.Tensor:
        return sum((a - b).square().sum(1).mean([1, 2]) for a, b in zip(fa, fb))


class LPIPSFeatures:
    """stylegan2-ada-pytorch's TorchScript VGG16 (vgg16.pt): f(img in [0, 255], return_lpips=True) gives
    features whose squared distance is LPIPS. Images go in at 256 x 256."""

    def __init__(self, path: str | os.PathLike, device):
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"VGG16 file does not exist: {path} (stylegan2-ada-pytorch's metrics/vgg16.pt)")
        try:
            with warnings.catch_warnings():  # torch 2.13 deprecates TorchScript; the published file is TorchScript
                warnings.simplefilter("ignore", DeprecationWarning)
                self.net = torch.jit.load(str(path), map_location=device).eval()
        except Exception as e:  # noqa: BLE001 - not a TorchScript file, or a broken one
            raise ValueError(f"cannot load {path} as a TorchScript VGG16 (vgg16.pt): {type(e).__name__}") from None

    def features(self, img: torch.Tensor) -> torch.Tensor:
        x = (img.float() + 1) * 127.5
        if x.shape[-1] != 256:
            x = F.interpolate(x, size=(256, 256), mode="area" if x.shape[-1] > 256 else "bilinear",
                              align_corners=None if x.shape[-1] > 256 else False)
        return self.net(x, resize_images=False, return_lpips=True)

    def __call__(self, fa: torch.Tensor, fb: torch.Tensor) -> torch.Tensor:
        return (fa - fb).square().sum(1)


# ------------------------------------------------------------------------------------------ the optimisation


def _noise_layers(G) -> dict[str, torch.nn.Module]:
    return {name: m for name, m in G.synthesis.named_modules() if hasattr(m, "noise_const")}


def _noise_penalty(maps: list[torch.Tensor]) -> torch.Tensor:
    """Squared autocorrelation (one pixel right, one down) of every map, at every scale down to 8 x 8."""
    reg = 0.0
    for noise in maps:
        n = noise[None, None]                                    # [1, 1, res, res]
        while True:
            reg = reg + (n * torch.roll(n, 1, dims=3)).mean() ** 2 + (n * torch.roll(n, 1, dims=2)).mean() ** 2
            if n.shape[2] <= 8:
                break
            n = F.avg_pool2d(n, 2)
    return reg


def learning_rate(settings: ProjectSettings, t: float) -> float:
    """The lr at progress t in [0, 1): cosine ramp-down over the last lr_rampdown, linear ramp-up first."""
    ramp = min(1.0, (1.0 - t) / settings.lr_rampdown) if settings.lr_rampdown > 0 else 1.0
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    ramp = ramp * (min(1.0, t / settings.lr_rampup) if settings.lr_rampup > 0 else 1.0)
    return settings.lr * ramp


def w_statistics(sampler, n: int, seed: int) -> tuple[torch.Tensor, float]:
    """(mean w [1, w_dim], w_std) of n mapped random z: std = sqrt(E ||w - mean||^2), as NVlabs' projector."""
    G = sampler.G
    z = seed_latents(list(range(seed, seed + n)), G.z_dim).to(sampler.device)
    with torch.no_grad():
        w = torch.cat([G.mapping(chunk, condition(sampler, len(chunk)))[:, 0].float() for chunk in z.split(1000)])
    mean = w.mean(0, keepdim=True)
    return mean, float((w - mean).square().sum() / n) ** 0.5


def project(sampler, target: torch.Tensor, settings: ProjectSettings | None = None, distance=None,
            progress: bool = True, callback: Callable[[int, float], None] | None = None) -> Projection:
    """target [1, 3, R, R] in [-1, 1] (R = the model's resolution) -> Projection.

    distance: a DiscriminatorFeatures or LPIPSFeatures, or None for pixels only."""
    require_w_space(sampler, "project")
    s = (settings or ProjectSettings()).check()
    G = copy.deepcopy(sampler.G).eval().requires_grad_(False).float()
    device, R = sampler.device, G.img_resolution
    if tuple(target.shape) != (1, 3, R, R):
        raise ValueError(f"target must be [1, 3, {R}, {R}], got {list(target.shape)}")
    target = target.to(device).float()
    torch.manual_seed(s.seed)
    w_mean, w_std = w_statistics(sampler, s.w_avg_samples, s.seed)
    start = w_mean[:, None, :] if s.mode == "w" else w_mean[:, None, :].repeat(1, G.num_ws, 1)
    w_opt = start.clone().requires_grad_(True)                   # [1, 1 or num_ws, w_dim]

    layers = _noise_layers(G)
    maps = []
    for m in layers.values():
        buf = m.noise_const.detach().clone()
        if s.optimize_noise:
            buf = torch.randn_like(buf).requires_grad_(True)
        m.noise_const = buf                                      # the buffer is now this tensor
        maps.append(buf)
    opt = torch.optim.Adam([w_opt] + (maps if s.optimize_noise else []), betas=(0.9, 0.999), lr=s.lr)

    with torch.no_grad():
        target_feats = distance.features(target) if distance is not None else None
    result = Projection(ws=start.cpu(), noise={}, image=None)
    for step in tqdm(range(s.steps), disable=not progress, desc="projecting", unit="step"):
        t = step / s.steps
        noise_scale = w_std * s.noise_factor * max(0.0, 1.0 - t / s.noise_ramp) ** 2 if s.noise_ramp > 0 else 0.0
        for group in opt.param_groups:
            group["lr"] = learning_rate(s, t)
        ws = (w_opt + torch.randn_like(w_opt) * noise_scale).expand(1, G.num_ws, -1)
        img = G.synthesis(ws, noise_mode="const", force_fp32=True).float()  # [1, 3, R, R]
        loss_pix = (img - target).square().mean()
        if distance is not None:
            loss = distance(distance.features(img), target_feats).sum() + s.pixel_weight * loss_pix
        else:
            loss = loss_pix
        if s.optimize_noise:
            loss = loss + s.noise_reg * _noise_penalty(maps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if s.optimize_noise:
            with torch.no_grad():
                for buf in maps:
                    buf -= buf.mean()
                    buf *= buf.square().mean().rsqrt()
        result.losses.append(float(loss.detach()))
        if s.frame_every and (step % s.frame_every == 0 or step == s.steps - 1):
            result.frames.append(to_uint8(img.detach().cpu())[0])
        if callback is not None:
            callback(step, float(loss))
    with torch.no_grad():
        final_ws = w_opt.detach().expand(1, G.num_ws, -1).clone()
        result.image = to_uint8(G.synthesis(final_ws, noise_mode="const", force_fp32=True).float().cpu())[0]
    result.ws = final_ws.cpu()
    result.noise = {name: m.noise_const.detach().cpu().clone() for name, m in layers.items()}
    return result


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 images (peak 255)."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))


def projection_names(target: str | os.PathLike, outdir: str | os.PathLike, video: bool = True) -> dict[str, Path]:
    """The files `project` writes for target NAME.EXT: {'latent': NAME-projected.npz, 'image': NAME-projected.png,
    'compare': NAME-compare.png, 'video': NAME-projected.mp4 (with video)} in outdir. None of them can be the
    target itself, even when the target lies in outdir."""
    stem, out = Path(target).stem, Path(outdir)
    names = {"latent": out / f"{stem}-projected.npz", "image": out / f"{stem}-projected.png",
             "compare": out / f"{stem}-compare.png"}
    if video:
        names["video"] = out / f"{stem}-projected.mp4"
    return names


def projection_compare(target: np.ndarray, found: np.ndarray, quality: float, caption: str = "",
                       face_px: int | None = None):
    """target | projection (uint8 [R, R, 3] each), upscaled to face_px and labelled 'target' / 'projection',
    titled with the PSNR (and caption): a figure_labels.LabelledGrid."""
    from ..figure_labels import labelled_grid

    title = f"PSNR {quality:.2f} dB" + (f" ({caption})" if caption else "")
    return labelled_grid(np.stack([target, found])[None], title=title, col_labels=["target", "projection"],
                         face_px=face_px)


def projection_frames(target: np.ndarray, frames, face_px: int | None = None):
    """The optimisation video's frames: target | step image, each face at face_px: uint8 [px, 2*px, 3] each."""
    from ..figure_labels import face_size, scale_frame

    px = face_size(face_px, target.shape[0])
    for f in frames:
        yield scale_frame(np.concatenate([target, f], axis=1), (px, 2 * px))


def load_target(path: str | os.PathLike, resolution: int) -> tuple[np.ndarray, torch.Tensor]:
    """An image file -> (uint8 [R, R, 3] centre-cropped and resized, tensor [1, 3, R, R] in [-1, 1])."""
    from ..data.images import UnreadableImage, load_image

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"target image does not exist: {path}")
    try:
        arr = load_image(str(path), resolution)
    except UnreadableImage:
        raise ValueError(f"target is not a readable image: {path}") from None
    return arr, torch.from_numpy(np.array(arr)).permute(2, 0, 1)[None].float() / 127.5 - 1


def load_discriminator(sampler, checkpoint):
    """The checkpoint's D (the trained one, not an EMA), eval mode, on the sampler's device."""
    from ..training.checkpoint import load_checkpoint

    state = load_checkpoint(checkpoint, use=("D",))  # checked: config, tensor shapes, D finite
    D = sampler.recipe.nets.get("D")
    if D is None or "D" not in state.get("nets", {}):
        raise ValueError("this checkpoint has no discriminator; use --distance pixels or --vgg")
    D.load_state_dict(state["nets"]["D"])
    return D.eval().requires_grad_(False)


__all__ = ["DISTANCES", "DiscriminatorFeatures", "LPIPSFeatures", "MODES", "ProjectSettings", "Projection",
           "learning_rate", "load_discriminator", "load_target", "project", "projection_compare", "projection_frames",
           "projection_names", "psnr", "w_statistics"]
