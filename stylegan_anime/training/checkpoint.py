"""Checkpoints: atomic writes, newest-K retention, safe loading, and finding what to resume.

A checkpoint is a plain dict of tensors and plain values, so `torch.load(path, weights_only=True)` reads it
and no code runs on load:

    {'format': 1, 'config': {...TrainConfig...}, 'nets': {'G': sd, 'D': sd, 'G_ema': sd},
     'opts': {'G': sd, 'D': sd}, 'scaler': sd | None, 'recipe': {...}, 'progress': {'nimg', 'iteration', ...},
     'rng': {'torch': ByteTensor, 'cuda': [ByteTensor], 'sampler': {...}}, 'fixed': {'z': Tensor, ...}}

Files are `RUN/checkpoints/ckpt-NNNNNNNNN.pt` where N is the number of real images shown (zero padded, so
names sort by progress).
"""
from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import torch

FORMAT = 1
_NAME = re.compile(r"^ckpt-(\d+)\.pt$")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used (missing, unreadable, not ours): one-line message."""


def checkpoint_dir(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / "checkpoints"


def atomic_torch_save(obj, path: str | os.PathLike) -> Path:
    """torch.save to a temp file in the same folder, fsync, rename: a crash never leaves a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".pt", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def save_checkpoint(state: dict, run_dir: str | os.PathLike, nimg: int, keep: int) -> Path:
    """Write atomically, then delete all but the newest `keep`."""
    path = atomic_torch_save({"format": FORMAT, **state}, checkpoint_dir(run_dir) / f"ckpt-{nimg:09d}.pt")
    for old in list_checkpoints(run_dir)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def list_checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """Checkpoints of a run, oldest first."""
    folder = checkpoint_dir(run_dir)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    path = Path(path)
    if path.is_dir():  # a run folder: its newest checkpoint
        found = list_checkpoints(path)
        if not found:
            raise CheckpointError(f"no checkpoint found in {path}")
        path = found[-1]
    if not path.is_file():
        raise CheckpointError(f"checkpoint does not exist: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # pickle errors, truncated files, foreign pickles refused by weights_only
        raise CheckpointError(f"cannot read checkpoint {path}: {str(e).splitlines()[0]}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT or "config" not in state:
        raise CheckpointError(f"{path} is not a stylegan-anime checkpoint")
    state["path"] = str(path)
    return state


def find_resume(outdir: str | os.PathLike) -> Path | None:
    """`--resume auto`: the newest checkpoint of the newest run in outdir that has one, else None."""
    outdir = Path(outdir)
    if not outdir.is_dir():
        return None
    runs = sorted((p for p in outdir.iterdir() if p.is_dir() and _run_index(p.name) is not None),
                  key=lambda p: _run_index(p.name))
    for run in reversed(runs):
        found = list_checkpoints(run)
        if found:
            return found[-1]
    return None


def new_run_dir(outdir: str | os.PathLike, desc: str) -> Path:
    """outdir/NNNNN-desc with the next free number (StyleGAN's run-folder convention)."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    used = [i for p in outdir.iterdir() if (i := _run_index(p.name)) is not None]
    run = outdir / f"{max(used, default=-1) + 1:05d}-{desc}"
    run.mkdir()
    return run


def _run_index(name: str) -> int | None:
    m = re.match(r"^(\d{5,})-", name)
    return int(m.group(1)) if m else None


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
