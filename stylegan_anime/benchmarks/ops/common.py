"""What every part of the op benchmark shares: the sizes, impls and dtypes it knows, the op modules it patches,
one-line errors, the device, and patch-for-a-block helpers."""
from __future__ import annotations

import contextlib
import importlib
from typing import Any, Iterator

import torch

BA = importlib.import_module("stylegan_anime.cuda_ops.bias_act")  # the modules the layers look the ops up in
UD = importlib.import_module("stylegan_anime.cuda_ops.upfirdn2d")
from stylegan_anime.cuda_ops import backend as ops_backend  # noqa: E402

from stylegan_anime.training.config import SIZES  # noqa: E402  (every power of two, 32 ... 1024)

DEFAULT_SIZES = (64, 128)  # what --sizes defaults to
IMPLS = ("cuda", "ref", "compiled")
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
DTYPE_SHORT = {torch.float32: "f32", torch.float16: "f16", torch.bfloat16: "bf16", torch.float64: "f64"}
QUICK_OVERRIDES = dict(channel_base=256, channel_max=32, z_dim=32, w_dim=32)
QUICK_BATCH = 2


class UsageError(ValueError):
    """A bad command-line value: one line `error: ...`, exit code 2."""


def one_line(e: BaseException | str, limit: int = 160) -> str:
    """The first non-empty line of an exception's message (or its type name), shortened to `limit`."""
    text = e if isinstance(e, str) else str(e)
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    first = lines[0] if lines else (type(e).__name__ if isinstance(e, BaseException) else "")
    return first if len(first) <= limit else first[: limit - 3] + "..."


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {name}: CUDA is not available "
                         f"({'this torch is a CPU-only build' if torch.version.cuda is None else 'no GPU visible'})")
    try:
        return torch.device(name)
    except RuntimeError:
        raise UsageError(f"--device: unknown device {name!r} (auto, cpu, cuda or cuda:N)") from None


@contextlib.contextmanager
def patched(obj: Any, name: str, value: Any) -> Iterator[None]:
    """setattr for the duration of the block, restored even on error."""
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)


@contextlib.contextmanager
def default_impl(name: str) -> Iterator[None]:
    old = ops_backend.get_default_impl()
    ops_backend.set_default_impl(name)
    try:
        yield
    finally:
        ops_backend.set_default_impl(old)
