"""Differentiable augmentation of everything D sees, with an adaptive probability, for every model.

DiffAugment (Zhao et al. 2020): colour (brightness, saturation, contrast), translation (up to 1/8 of the
image, zero fill) and cutout (a square of half the image size set to 0), applied to real AND generated images
before D, in every phase (so G is trained through the augmentation, and R1 differentiates through it back
to the un-augmented reals). Each transform is applied to each sample with probability p.

Adaptive p (Karras et al. 2020, ADA): every `interval` iterations, r_t = E[sign(D(real))] over the reals seen
since the last adjustment; p moves up by batch*interval / (speed_kimg*1000) when r_t > target (D is
over-confident on reals, i.e. overfitting) and down otherwise, clamped to [0, 1]. With target 0, p stays at
its initial value (plain DiffAugment with p = 1 by default then).

The trainer installs it as a forward pre-hook on D, so recipes need no change beyond reporting the mean
sign of D on reals as the statistic `real_sign` in their D loss.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

POLICIES = ("color", "translation", "cutout")


class DiffAugment:
    def __init__(self, policy: str = "color,translation,cutout", p: float = 0.0, target: float = 0.6,
                 speed_kimg: float = 100.0, interval: int = 4):
        self.policy = [t.strip() for t in policy.split(",") if t.strip()]
        unknown = [t for t in self.policy if t not in POLICIES]
        if unknown:
            raise ValueError(f"unknown augmentation {', '.join(unknown)}; choose from {', '.join(POLICIES)}")
        self.p = float(p)
        self.target = float(target)
        self.speed_kimg = float(speed_kimg)
        self.interval = int(interval)
        self._sign_sum: torch.Tensor | None = None
        self._sign_count = 0

    # ------------------------------------------------------------------ the augmentation
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x [N,C,H,W] in about [-1, 1] -> augmented, differentiable w.r.t. x."""
        if self.p <= 0 or not self.policy:
            return x
        for name in self.policy:
            x = getattr(self, f"_{name}")(x)
        return x

    def _gate(self, x: torch.Tensor) -> torch.Tensor:
        """[N,1,1,1] bool: which samples get this transform."""
        return (torch.rand(x.shape[0], 1, 1, 1, device=x.device) < self.p)

    def _color(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        r = lambda: torch.rand(n, 1, 1, 1, device=x.device, dtype=x.dtype)  # noqa: E731
        y = x + (r() - 0.5)  # brightness
        mean_c = y.mean(dim=1, keepdim=True)
        y = (y - mean_c) * (r() * 2) + mean_c  # saturation
        mean = y.mean(dim=[1, 2, 3], keepdim=True)
        y = (y - mean) * (r() + 0.5) + mean  # contrast
        return torch.where(self._gate(x), y, x)

    def _translation(self, x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
        n, _, h, w = x.shape
        sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
        dy = torch.randint(-sh, sh + 1, (n, 1, 1), device=x.device)
        dx = torch.randint(-sw, sw + 1, (n, 1, 1), device=x.device)
        iy = torch.arange(h, device=x.device).view(1, h, 1) + dy + 1  # +1: index into the zero-padded image
        ix = torch.arange(w, device=x.device).view(1, 1, w) + dx + 1
        iy, ix = iy.clamp(0, h + 1).expand(n, h, w), ix.clamp(0, w + 1).expand(n, h, w)
        padded = F.pad(x, [1, 1, 1, 1])  # [N,C,H+2,W+2], zeros around
        b = torch.arange(n, device=x.device).view(n, 1, 1).expand(n, h, w)
        y = padded.permute(0, 2, 3, 1)[b, iy, ix].permute(0, 3, 1, 2)  # [N,C,H,W]
        return torch.where(self._gate(x), y, x)

    def _cutout(self, x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
        """Zero a (ratio*H) x (ratio*W) square at a random centre (clipped at the borders)."""
        n, _, h, w = x.shape
        ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
        top = torch.randint(0, h, (n, 1, 1), device=x.device) - ch // 2
        left = torch.randint(0, w, (n, 1, 1), device=x.device) - cw // 2
        ys = torch.arange(h, device=x.device).view(1, h, 1)
        xs = torch.arange(w, device=x.device).view(1, 1, w)
        inside = (ys >= top) & (ys < top + ch) & (xs >= left) & (xs < left + cw)  # [N,H,W]
        mask = (~inside).unsqueeze(1).to(x.dtype)  # [N,1,H,W]
        return torch.where(self._gate(x), x * mask, x)

    # ------------------------------------------------------------------ adaptive p
    def accumulate(self, real_sign_mean: torch.Tensor, count: int) -> None:
        """Add a batch's mean sign of D(real) (a device scalar; no host sync here)."""
        v = real_sign_mean.detach().float() * count
        self._sign_sum = v if self._sign_sum is None else self._sign_sum + v
        self._sign_count += count

    def adjust(self, batch: int) -> float | None:
        """Move p towards the target (called every `interval` iterations); returns r_t or None."""
        if self.target <= 0 or self._sign_sum is None or self._sign_count == 0:
            return None
        rt = float(self._sign_sum) / self._sign_count
        step = batch * self.interval / (self.speed_kimg * 1000)
        self.p = min(max(self.p + (step if rt > self.target else -step), 0.0), 1.0)
        self._sign_sum, self._sign_count = None, 0
        return rt

    def hook(self, module, args):
        """forward pre-hook for D: augment its first input."""
        return (self(args[0]), *args[1:])

    def state_dict(self) -> dict:
        return {"p": self.p}

    def load_state_dict(self, state: dict) -> None:
        self.p = float(state["p"])
