"""Tag accuracy: does a tag-conditional generator draw the hair and eye colours it was asked for?

A small CNN with one head per label group (hair, eye) is trained on the REAL labelled images (known labels
only; 10% held out), once per dataset content and settings, and cached. Its held-out accuracy on reals is
reported as `tagacc/real` — the ceiling a generator can reach under this judge. Generated images are made
with requested labels (drawn from the data's label rows), classified, and scored per group:

    tagacc/hair, tagacc/eye   share of images whose predicted class is the requested one (unknown skipped)
    tagacc                    their mean
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

INPUT = 64  # the classifier sees every image at 64 x 64


class TagClassifier(nn.Module):
    """uint8-derived [N,3,64,64] in [-1,1] -> one logit vector per label group."""

    def __init__(self, sizes: list[int], width: int = 32):
        super().__init__()
        w = width
        layers, c_in = [], 3
        for c_out in (w, 2 * w, 4 * w, 4 * w):  # 64 -> 32 -> 16 -> 8 -> 4
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]
            c_in = c_out
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())  # [N, 4w]
        self.heads = nn.ModuleList(nn.Linear(c_in, s) for s in sizes)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = self.body(x)
        return [head(h) for head in self.heads]


def _prepare(images: np.ndarray, device) -> torch.Tensor:
    """uint8 [N,H,W,3] -> float [N,3,64,64] in [-1,1]."""
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).float() / 127.5 - 1
    if x.shape[-1] != INPUT:
        x = F.interpolate(x, size=(INPUT, INPUT), mode="area" if x.shape[-1] > INPUT else "bilinear",
                          align_corners=None if x.shape[-1] > INPUT else False)
    return x


def _cache_file(dataset, sizes, epochs, seed, cache_dir) -> Path:
    meta = getattr(dataset, "meta", {}) or {}
    ident = meta.get("fingerprint") or hashlib.sha1(np.ascontiguousarray(dataset.images[:64]).tobytes()).hexdigest()
    key = json.dumps([ident, len(dataset), list(map(int, sizes)), epochs, seed, INPUT, 1], sort_keys=True)
    root = Path(cache_dir or os.environ.get("STYLEGAN_ANIME_CACHE") or Path.home() / ".cache" / "stylegan-anime")
    return root / "metrics" / f"tagclf-{hashlib.sha1(key.encode()).hexdigest()[:16]}.pt"


def train_classifier(dataset, device="cpu", *, epochs: int = 4, batch: int = 128, seed: int = 0,
                     cache_dir=None, progress: bool = False) -> tuple[TagClassifier, float]:
    """A classifier of the dataset's labels and its held-out accuracy on reals (mean over groups); cached."""
    if getattr(dataset, "labels", None) is None or not getattr(dataset, "label_names", None):
        raise ValueError("tag accuracy needs labelled real data")
    sizes = [len(v) for v in dataset.label_names.values()]
    file = _cache_file(dataset, sizes, epochs, seed, cache_dir)
    model = TagClassifier(sizes).to(device)
    if file.is_file():
        state = torch.load(file, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        return model.eval(), float(state["holdout"])
    labels = torch.as_tensor(np.asarray(dataset.labels), dtype=torch.int64)
    known = (labels >= 0).any(1).nonzero().flatten()
    gen = torch.Generator().manual_seed(seed)
    order = known[torch.randperm(len(known), generator=gen)]
    n_val = max(len(order) // 10, 1)
    val, train = order[:n_val], order[n_val:]
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    model.train()
    with torch.enable_grad():  # callers may evaluate under no_grad (the trainer does)
        _fit(model, opt, dataset, labels, train, epochs, batch, gen, device, progress)
    model.eval()
    v = np.sort(val.numpy())
    holdout = tag_accuracy(model, np.asarray(dataset.images[v]), labels[v], list(dataset.label_names))["tagacc"]
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "holdout": holdout}, tmp)
    os.replace(tmp, file)
    return model, holdout


def _fit(model, opt, dataset, labels, train, epochs, batch, gen, device, progress) -> None:
    for _ in tqdm(range(epochs), disable=not progress, desc="tag classifier", unit="epoch"):
        for idx in train[torch.randperm(len(train), generator=gen)].split(batch):
            sel = np.sort(idx.numpy())
            x = _prepare(np.asarray(dataset.images[sel]), device)
            x = torch.where(torch.rand(len(sel), 1, 1, 1, device=device) < 0.5, x, x.flip(3))  # x-flip
            y = labels[sel].to(device)
            loss = sum(F.cross_entropy(out, y[:, g], ignore_index=-1) for g, out in enumerate(model(x)))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()


@torch.no_grad()
def tag_accuracy(model: TagClassifier, images: np.ndarray, labels: torch.Tensor, groups: list[str],
                 batch: int = 256) -> dict[str, float]:
    """Share of images classified as their requested label, per group (unknown labels skipped) and mean."""
    device = next(model.parameters()).device
    hits = torch.zeros(len(groups))
    count = torch.zeros(len(groups))
    for i in range(0, len(images), batch):
        preds = model(_prepare(images[i:i + batch], device))
        want = labels[i:i + batch].to(device)
        for g, out in enumerate(preds):
            ok = want[:, g] >= 0
            hits[g] += (out.argmax(1)[ok] == want[ok, g]).sum().cpu()
            count[g] += ok.sum().cpu()
    per = {f"tagacc/{name}": float(hits[g] / count[g]) for g, name in enumerate(groups) if count[g] > 0}
    return {"tagacc": float(np.mean(list(per.values()))) if per else float("nan"), **per}


def evaluate_tags(generate: Callable[[torch.Tensor], np.ndarray], dataset, n: int = 1000, *, device="cpu",
                  seed: int = 0, cache_dir=None, batch: int = 64) -> dict[str, float]:
    """generate(labels [b,K]) -> uint8 [b,H,W,3] images drawn with those labels; n images in all."""
    model, holdout = train_classifier(dataset, device, seed=seed, cache_dir=cache_dir)
    labels = torch.as_tensor(np.asarray(dataset.labels), dtype=torch.int64)
    gen = torch.Generator().manual_seed(seed + 17)
    want = labels[torch.randint(len(labels), (n,), generator=gen)]
    images = np.concatenate([generate(want[i:i + batch]) for i in range(0, n, batch)])
    return {**tag_accuracy(model, images, want, list(dataset.label_names)), "tagacc/real": holdout}
