"""Classifier two-sample test (C2ST): how well a small CNN tells generated images from real ones.

After Lopez-Paz & Oquab, "Revisiting Classifier Two-Sample Tests" (ICLR 2017): train a classifier to
separate two samples; its accuracy on held-out images estimates how distinguishable the two
distributions are. 0.5 means the classifier cannot tell them apart; 1.0 means every held-out image
is told correctly. No pretrained network, no download: the classifier is trained from scratch,
deterministically (fixed seed, epochs, batch order), each time the metric runs.

Recipe (:class:`C2STConfig` holds every number):

1. Both sets are truncated to the same count ``n``; images larger than ``size`` (64 px) are
   downscaled to it (antialiased bilinear), then mapped to [-1, 1].
2. A fixed ``holdout`` fraction (25%) of each set is held out; the rest trains :class:`C2STNet`
   for ``epochs`` epochs of Adam, minibatches in a seeded order, each image mirrored with
   probability 1/2 (mirroring is not evidence: training data are often mirrored).
3. Reported on the held-out images: ``c2st`` (fraction classified correctly, logit > 0 means
   "generated") and ``c2st_loss`` (mean binary cross-entropy in nats; chance is ln 2 = 0.693,
   lower means more separable; overfitting on indistinguishable sets puts it a little above ln 2).

The network sees the image beside its Laplacian high-pass band (a fixed 3x3 filter, x4): fine-scale
statistics (noise, blur, speckles) are then as easy to pick up as colour and shape. Without it,
additive noise of std 0.02 was invisible to the same network after six epochs (1,000 real faces per
side, 64 px: accuracy 0.49-0.52); with it, that noise is told apart perfectly (docs/quality.md).

With the standard error of an accuracy on ``m`` held-out images, sqrt(p(1-p)/m), the default
(2,000 images per set, 1,000 held out) resolves about +-0.016 at chance. Results are exactly
repeatable for the same inputs, seed, device and thread count.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["C2STConfig", "C2STImages", "C2STNet", "c2st", "to_c2st_input"]


@dataclass(frozen=True)
class C2STConfig:
    """Every setting of the test; the defaults are the registered ``c2st`` metric's."""

    size: int = 64            # images above this resolution are downscaled to size x size
    width: int = 16           # channels of the first conv; doubled at each of the 4 stride-2 convs
    epochs: int = 6
    batch: int = 32
    lr: float = 2e-3
    holdout: float = 0.25     # fraction of each set held out for scoring
    flip: bool = True         # mirror training images at random
    seed: int = 0


class HighPass(nn.Module):
    """x [N,3,H,W] -> [N,6,H,W]: the image and 4x its Laplacian (0,-1,0 / -1,4,-1 / 0,-1,0; replicated borders)."""

    def __init__(self):
        super().__init__()
        k = torch.tensor([[0.0, -1.0, 0.0], [-1.0, 4.0, -1.0], [0.0, -1.0, 0.0]])
        self.register_buffer("kernel", k.view(1, 1, 3, 3).repeat(3, 1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        band = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), self.kernel, groups=3)
        return torch.cat([x, 4.0 * band], 1)


class C2STNet(nn.Module):
    """[N,3,S,S] in [-1,1] -> logits [N] ("generated" > 0).

    High-pass stem, four (conv 3x3 stride 2, BatchNorm, LeakyReLU 0.2) blocks of width w, 2w, 4w, 8w
    (64 px -> 4 px), then the mean and the maximum over positions of each channel, and a linear layer.
    The maximum lets a local artefact anywhere in the image count.
    """

    def __init__(self, width: int = 16):
        super().__init__()
        layers: list[nn.Module] = [HighPass()]
        c = 6
        for i in range(4):
            out = width * 2 ** i
            layers += [nn.Conv2d(c, out, 3, stride=2, padding=1), nn.BatchNorm2d(out), nn.LeakyReLU(0.2)]
            c = out
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(2 * c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x)                                  # [N,8w,S/16,S/16]
        return self.head(torch.cat([f.mean((2, 3)), f.amax((2, 3))], 1)).squeeze(1)


def _check(images, what: str) -> np.ndarray:
    arr = np.asarray(images)
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"C2ST expects uint8 images [N,H,W,3] ({what}), got {arr.dtype} {list(arr.shape)}")
    if arr.shape[1] != arr.shape[2]:
        raise ValueError(f"C2ST expects square images ({what}), got {arr.shape[1]}x{arr.shape[2]}")
    return arr


def to_c2st_input(images: np.ndarray, size: int = 64) -> np.ndarray:
    """uint8 [N,H,W,3] -> uint8 [N,s,s,3] with s = min(H, size) (antialiased bilinear when downscaling)."""
    arr = _check(images, "input")
    if arr.shape[1] <= size:
        return arr
    x = torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


class C2STImages:
    """Collects one set's images batch by batch, already at the test's resolution.

    ``add(images, start)``: uint8 [n,H,W,3] whose first image has index ``start`` in the set (default:
    the next); ``array()`` is uint8 [count,s,s,3] in index order. ``batches()`` / ``extend()`` merge
    the batches of several processes, as :class:`~.swd.SWDAccumulator` does.
    """

    def __init__(self, size: int = 64):
        self.size = int(size)
        self._batches: dict[int, np.ndarray] = {}

    @property
    def count(self) -> int:
        return sum(len(b) for b in self._batches.values())

    def add(self, images: np.ndarray, start: int | None = None) -> None:
        start = max((s + len(b) for s, b in self._batches.items()), default=0) if start is None else int(start)
        if start in self._batches:
            raise ValueError(f"C2ST: images from index {start} were added twice")
        self._batches[start] = to_c2st_input(images, self.size)

    def batches(self) -> list[tuple[int, np.ndarray]]:
        return sorted(self._batches.items(), key=lambda kv: kv[0])

    def extend(self, batches) -> None:
        for start, arr in batches:
            self.add(arr, start)

    def array(self) -> np.ndarray:
        parts = [b for _, b in self.batches()]
        if not parts:
            raise ValueError("C2ST: no images were added")
        return np.concatenate(parts, 0)


def _to_tensor(arr: np.ndarray, device) -> torch.Tensor:
    """uint8 [N,H,W,3] -> float [N,3,H,W] in [-1,1]."""
    return torch.from_numpy(np.ascontiguousarray(arr)).to(device).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def _split(n: int, holdout: float, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, held-out) indices of one set of n images: a seeded permutation, the first n_test held out."""
    n_test = min(max(1, int(round(n * holdout))), n - 1)
    order = torch.randperm(n, generator=gen)
    return order[n_test:], order[:n_test]


def c2st(real: np.ndarray, fake: np.ndarray, cfg: C2STConfig = C2STConfig(), device="cpu") -> dict[str, float]:
    """Held-out accuracy and loss of a classifier trained to tell ``fake`` from ``real``.

    ``real``, ``fake``: uint8 [N,H,W,3] of the same size (any counts: the larger set is truncated).
    Returns ``{"c2st": in [0,1], "c2st_loss": nats}``; see the module docstring.
    Deterministic for the same inputs and ``cfg.seed``; the global torch RNG is left untouched. Trains with
    gradients on even when called under ``torch.no_grad()`` / ``inference_mode()`` (as evaluations are).
    """
    with torch.inference_mode(False), torch.enable_grad():
        return _c2st(real, fake, cfg, device)


def _c2st(real: np.ndarray, fake: np.ndarray, cfg: C2STConfig, device) -> dict[str, float]:
    real, fake = to_c2st_input(real, cfg.size), to_c2st_input(fake, cfg.size)
    if real.shape[1:] != fake.shape[1:]:
        raise ValueError(f"C2ST: real images are {real.shape[1]} px, generated {fake.shape[1]} px")
    if real.shape[1] < 16:
        raise ValueError(f"C2ST needs images of at least 16 px, got {real.shape[1]}")
    n = min(len(real), len(fake))
    if n < 2:
        raise ValueError(f"C2ST needs at least 2 images per set, got {n}")
    x = torch.cat([_to_tensor(real[:n], device), _to_tensor(fake[:n], device)])   # [2n,3,S,S]
    y = torch.cat([torch.zeros(n), torch.ones(n)]).to(device)
    gen = torch.Generator().manual_seed(int(cfg.seed))
    train_r, test_r = _split(n, cfg.holdout, gen)
    train_f, test_f = _split(n, cfg.holdout, gen)
    train = torch.cat([train_r, train_f + n])
    test = torch.cat([test_r, test_f + n])

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(cfg.seed))
        net = C2STNet(cfg.width).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, betas=(0.5, 0.99))
    net.train()
    for _ in range(cfg.epochs):
        order = train[torch.randperm(len(train), generator=gen)]
        flips = torch.rand(len(order), generator=gen) < 0.5
        for i in range(0, len(order), cfg.batch):
            idx = order[i:i + cfg.batch]
            if len(idx) < 2:   # BatchNorm needs two images
                continue
            xb = x[idx]
            if cfg.flip:
                xb = torch.where(flips[i:i + cfg.batch].to(device)[:, None, None, None], xb.flip(3), xb)
            loss = F.binary_cross_entropy_with_logits(net(xb), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        logits = torch.cat([net(x[test[i:i + 256]]) for i in range(0, len(test), 256)])
    correct = ((logits > 0).float() == y[test]).float().mean()
    loss = F.binary_cross_entropy_with_logits(logits, y[test])
    return {"c2st": float(correct), "c2st_loss": float(loss)}
