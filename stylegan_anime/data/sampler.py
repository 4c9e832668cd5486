"""Random batches of real images for the trainer, drawn where training runs.

The packed set (uint8 [N,H,W,3]) is put on the training device when it fits (on a GPU: at most half of
the free memory), so a batch is one gather on the device and the loader is never the bottleneck. Otherwise
batches are gathered from the memory map on the host and copied over.

Order: a fresh random permutation every epoch, from the sampler's own generator, so the sequence of
batches is reproducible for a seed and resumable from `state_dict()`.
"""
from __future__ import annotations

import numpy as np
import torch


class BatchSampler:
    def __init__(self, dataset, device: torch.device, seed: int = 0, xflip: bool = False,
                 device_resident: bool | None = None):
        self.device = torch.device(device)
        self.xflip = xflip
        self.count = len(dataset)
        self.gen = torch.Generator().manual_seed(int(seed) + 12345)
        self.perm = torch.randperm(self.count, generator=self.gen)
        self.pos = 0
        images = dataset.images  # [N,H,W,3] uint8, usually a read-only memory map
        if device_resident is None:
            device_resident = self._fits(images.nbytes)
        if device_resident:
            self.images = _upload(images, self.device)
        else:
            self.images = images
        self.on_device = device_resident
        labels = getattr(dataset, "labels", None)
        self.labels_cpu = None if labels is None else torch.as_tensor(np.asarray(labels), dtype=torch.int64)
        self.labels = None if labels is None else self.labels_cpu.to(self.device)

    def _fits(self, nbytes: int) -> bool:
        if self.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self.device)
            return nbytes <= free // 2
        return False  # on the host the memory map already is host memory; no copy needed

    def _next_indices(self, n: int) -> torch.Tensor:
        out = []
        while n > 0:
            if self.pos >= self.count:
                self.perm = torch.randperm(self.count, generator=self.gen)
                self.pos = 0
            take = min(n, self.count - self.pos)
            out.append(self.perm[self.pos:self.pos + take])
            self.pos += take
            n -= take
        return torch.cat(out)

    def sample(self, n: int, part: tuple[int, int] = (0, 1)) -> tuple[torch.Tensor, torch.Tensor | None]:
        """n reals as float32 [n,3,H,W] in [-1,1] on the device, and their labels [n,K] (or None).

        part=(rank, world): draw the global batch of n and return only this rank's n/world slice; every
        rank advances the shared stream identically, so the ranks together see what one process would.
        """
        idx = self._next_indices(n)
        flip = torch.rand(n, generator=self.gen) < 0.5 if self.xflip else None
        rank, world = part
        if world > 1:
            lo, hi = rank * n // world, (rank + 1) * n // world
            idx, flip = idx[lo:hi], None if flip is None else flip[lo:hi]
            n = hi - lo
        if self.on_device:
            x = self.images[idx.to(self.device)]
        else:
            order = np.argsort(idx.numpy())  # read the memory map in file order, then restore the batch order
            rows = np.asarray(self.images[idx.numpy()[order]])
            x = torch.empty((n, *rows.shape[1:]), dtype=torch.uint8)
            x[torch.from_numpy(order)] = torch.from_numpy(rows)
            x = x.to(self.device, non_blocking=True)
        x = x.permute(0, 3, 1, 2).to(torch.float32) / 127.5 - 1.0  # [n,3,H,W]
        if flip is not None:
            f = flip.to(self.device)
            x = torch.where(f[:, None, None, None], x.flip(3), x)
        labels = None if self.labels is None else self.labels[idx.to(self.device)]
        return x, labels

    def random_labels(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor | None:
        """n label rows of random real images ([n,K] int64 on the host), the data's label distribution;
        None when the data has no labels."""
        if self.labels is None:
            return None
        gen = generator if generator is not None else self.gen
        idx = torch.randint(self.count, (n,), generator=gen)
        return self.labels_cpu[idx]

    def state_dict(self) -> dict:
        return {"gen": self.gen.get_state(), "perm": self.perm.clone(), "pos": self.pos}

    def load_state_dict(self, state: dict) -> None:
        self.gen.set_state(state["gen"])
        self.perm = state["perm"].clone()
        self.pos = int(state["pos"])


def _upload(images: np.ndarray, device: torch.device, chunk: int = 4096) -> torch.Tensor:
    """Copy a (read-only, memory-mapped) uint8 [N,H,W,3] array to the device in chunks: no full host copy."""
    out = torch.empty(images.shape, dtype=torch.uint8, device=device)
    for i in range(0, len(images), chunk):
        out[i:i + chunk] = torch.from_numpy(np.array(images[i:i + chunk])).to(device, non_blocking=False)
    return out
