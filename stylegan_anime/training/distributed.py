"""Multi-GPU / multi-node training with torch.distributed, launched by torchrun.

    torchrun --nproc_per_node 4 -m stylegan_anime.cli train --data faces --size 128 ...
    torchrun --nnodes 2 --nproc_per_node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29500 -m stylegan_anime.cli train ...

torchrun sets RANK / WORLD_SIZE / LOCAL_RANK; `init_from_env` joins the process group (NCCL on GPUs, gloo on
CPUs). The trainer then:
- draws latents and the real-image indices for the GLOBAL batch from generators shared by all ranks and
  keeps its own slice, so K processes see exactly the batch one process would;
- averages gradients with one all-reduce per optimiser step, after the last accumulation round (no DDP
  wrapper, so recipes keep plain access to their networks);
- seeds recipe-internal randomness (noise inputs, style mixing, penalties) differently on every rank;
- agrees on stopping (Ctrl-C on any rank stops all at the same iteration);
- shares evaluation out: every rank generates and scores its part of the images, rank 0 gathers them,
  computes the scores and alone logs them;
- lets rank 0 alone log, write grids and save checkpoints.
A rank that dies makes the others fail their next collective within `timeout` instead of hanging; torchrun
then stops the group.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def init_from_env(device: str = "auto", timeout_min: float = 10.0) -> Dist:
    """Join the process group described by torchrun's environment; a single process without it."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device != "cpu" and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        # torch.distributed.nn's functions take `group=group.WORLD` as a default argument, evaluated on import. It
        # is imported lazily (torch.optim -> torch._dynamo) when the first optimiser is built; after this call the
        # default would hold the live group forever, destroy_process_group() could not free it, and gloo's threads
        # would run on into interpreter teardown (a rare `terminate called without an active exception` at exit).
        # Imported now, the default is None.
        import torch.distributed.nn as _  # noqa: F401  (`as`: no local name `torch` in this function)
        dist.init_process_group(backend="nccl" if use_cuda else "gloo",
                                timeout=datetime.timedelta(minutes=timeout_min))
    return Dist(rank=rank, world=world, local_rank=local_rank)


def all_reduce_mean_(tensors: list[torch.Tensor], world: int) -> None:
    """Average tensors over ranks in place, as one flat all-reduce."""
    if world <= 1 or not tensors:
        return
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for t in tensors:
        t.copy_(flat[offset:offset + t.numel()].view_as(t))
        offset += t.numel()


def any_rank(flag: bool, d: Dist, device: torch.device) -> bool:
    """True on every rank if it is True on any rank."""
    if not d.active:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def broadcast_object(obj, d: Dist):
    """Rank 0's value of a picklable object on every rank."""
    if not d.active:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


@dataclass
class ObjectGroup:
    """metrics.evaluate's Group over the process group: picklable objects gathered to / broadcast from rank 0."""

    rank: int
    world: int

    def gather(self, obj) -> list | None:
        box = [None] * self.world if self.rank == 0 else None
        dist.gather_object(obj, box, dst=0)
        return box

    def broadcast(self, obj):
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def object_group(d: Dist) -> ObjectGroup | None:
    """The group metrics are computed across; None for a single process."""
    return ObjectGroup(d.rank, d.world) if d.active else None


def barrier(d: Dist) -> None:
    if d.active:
        dist.barrier()


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
