"""Real-data feature statistics, computed once and cached on disk.

A cache entry is one ``.npz`` under ``<cache>/metrics`` (``cache_dir`` argument, else
``$STYLEGAN_ANIME_CACHE/metrics``, else ``~/.cache/stylegan-anime/metrics``).  Its name is a hash of
everything the numbers depend on:

- the dataset's identity: the pack's ``meta['fingerprint']`` with its image count and size, or
  (no fingerprint) its path + count + size, or (no path, e.g. an in-memory set) a hash of a sample
  of its pixels;
- the metric's name and settings (network weights fingerprint, resize rule, subset seed ...);
- the number of images.

Real subsets are the first ``n`` entries of a fixed permutation of the dataset (seed 0), so a
smaller subset is always contained in a larger one and all metrics see the same reals.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from typing import Callable, Iterable, Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from .inception import images_to_tensor

__all__ = [
    "dataset_identity",
    "feature_stats",
    "load_or_compute",
    "metrics_cache_dir",
    "real_batches",
    "real_subset",
    "stats_key",
]

CACHE_ENV = "STYLEGAN_ANIME_CACHE"
CACHE_FORMAT = 1


def metrics_cache_dir(cache_dir=None) -> str:
    root = cache_dir or os.environ.get(CACHE_ENV) or os.path.join("~", ".cache", "stylegan-anime")
    return os.path.join(os.path.abspath(os.path.expanduser(str(root))), "metrics")


def _images(dataset) -> np.ndarray:
    return dataset.images


def dataset_identity(dataset) -> dict:
    """What identifies the dataset's content, for cache keys (see the module docstring)."""
    images = _images(dataset)
    n, h, w = (int(s) for s in images.shape[:3])
    meta = getattr(dataset, "meta", None) or {}
    if meta.get("fingerprint"):
        return {"fingerprint": str(meta["fingerprint"]), "count": n, "size": [h, w]}
    path = getattr(dataset, "path", None)
    if path:
        return {"path": os.path.abspath(str(path)), "count": n, "size": [h, w]}
    h_ = hashlib.sha256()
    for i in np.unique(np.linspace(0, n - 1, num=min(n, 32)).astype(np.int64)):
        h_.update(np.ascontiguousarray(images[i]).tobytes())
    return {"content": h_.hexdigest()[:24], "count": n, "size": [h, w]}


def stats_key(dataset, metric: str, settings: dict, num_images: int) -> tuple[str, dict]:
    """(file stem, the key's parts) for one cache entry."""
    parts = {"format": CACHE_FORMAT, "dataset": dataset_identity(dataset), "metric": metric,
             "settings": settings, "num_images": int(num_images)}
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return f"{metric}-{int(num_images)}-{hashlib.sha256(blob).hexdigest()[:20]}", parts


def load_or_compute(dataset, metric: str, settings: dict, num_images: int,
                    compute: Callable[[], dict[str, np.ndarray]], cache_dir=None) -> dict[str, np.ndarray]:
    """The cached arrays for this key, or ``compute()``'s, written to the cache first (atomically).

    An unreadable cache file is recomputed; an unwritable cache directory only costs the caching.
    """
    stem, parts = stats_key(dataset, metric, settings, num_images)
    root = metrics_cache_dir(cache_dir)
    path = os.path.join(root, stem + ".npz")
    if os.path.isfile(path):
        try:
            with np.load(path, allow_pickle=False) as z:
                stored = json.loads(str(z["_key"]))
                if stored == json.loads(json.dumps(parts, sort_keys=True, default=str)):
                    return {k: z[k] for k in z.files if k != "_key"}
        except Exception:  # noqa: BLE001 - damaged entry: recompute and overwrite
            pass
    arrays = compute()
    try:
        os.makedirs(root, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=root, prefix=".tmp-", suffix=".npz")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, _key=np.array(json.dumps(parts, sort_keys=True, default=str)), **arrays)
        os.replace(tmp, path)
    except OSError:
        pass
    return arrays


def real_subset(num_total: int, num: int, seed: int = 0) -> np.ndarray:
    """Indices of the first ``min(num, num_total)`` entries of a fixed permutation (all, in order, if num >= total)."""
    if num >= num_total:
        return np.arange(num_total)
    return np.random.default_rng(seed).permutation(num_total)[:num]


def real_batches(dataset, indices: np.ndarray, batch_size: int = 64) -> Iterator[np.ndarray]:
    """uint8 [b,H,W,3] batches of ``dataset.images[indices]`` (rows read in sorted order per batch)."""
    images = _images(dataset)
    for i in range(0, len(indices), batch_size):
        idx = indices[i:i + batch_size]
        order = np.argsort(idx)
        batch = np.asarray(images[np.sort(idx)])
        out = np.empty_like(batch)
        out[order] = batch
        yield out


class FeatureMoments:
    """Streaming mean / covariance of feature rows (float64 sums), optionally keeping the first rows."""

    def __init__(self, keep: int = 0):
        self.n = 0
        self.s1 = None
        self.s2 = None
        self.keep = int(keep)
        self.kept: list[np.ndarray] = []
        self.num_kept = 0

    def add(self, f: np.ndarray) -> None:
        f = np.asarray(f)
        f64 = f.astype(np.float64)
        if self.s1 is None:
            d = f.shape[1]
            self.s1, self.s2 = np.zeros(d), np.zeros((d, d))
        self.s1 += f64.sum(0)
        self.s2 += f64.T @ f64
        self.n += len(f)
        if self.num_kept < self.keep:
            part = f[: self.keep - self.num_kept].astype(np.float32)
            self.kept.append(part)
            self.num_kept += len(part)

    def result(self) -> dict[str, np.ndarray]:
        if self.n < 2:
            raise ValueError(f"feature statistics need at least 2 images, got {self.n}")
        mu = self.s1 / self.n
        sigma = (self.s2 - self.n * np.outer(mu, mu)) / (self.n - 1)
        out = {"mu": mu, "sigma": sigma, "count": np.array(self.n)}
        if self.keep:
            out["features"] = np.concatenate(self.kept, 0)
        return out


@torch.no_grad()
def feature_stats(images_iter: Iterable[np.ndarray], inception: torch.nn.Module, *, batch_size: int = 64,
                  device=None, keep_features: int = 0, progress: bool = False, total: int | None = None,
                  desc: str = "features") -> dict[str, np.ndarray]:
    """Mean ``mu`` [D] and covariance ``sigma`` [D,D] (float64) of the network's features.

    ``images_iter`` yields uint8 [b,H,W,3] batches; ``inception`` maps float [b,3,H,W] in [0,1] to
    [b,D].  With ``keep_features=k`` the first k feature rows are returned too (``features``, float32).
    """
    if device is None:
        device = next(inception.parameters()).device
    acc = FeatureMoments(keep_features)
    with tqdm(total=total, desc=desc, unit="img", disable=not progress, leave=False) as bar:
        for batch in images_iter:
            for i in range(0, len(batch), batch_size):
                part = batch[i:i + batch_size]
                acc.add(inception(images_to_tensor(part, device)).float().cpu().numpy())
                bar.update(len(part))
    return acc.result()
