"""The FID Inception-v3 network: TensorFlow's 2015-12-05 graph, as ported to PyTorch by pytorch-fid.

This is a self-contained rewrite (no torchvision) of the network behind the reference FID numbers.
It differs from a plain ImageNet Inception-v3 in four places, all copied from the TF graph:

- every average pool inside the ``Mixed_5*`` (A), ``Mixed_6b-e`` (C) and ``Mixed_7b`` (E) blocks
  ignores the zero padding (``count_include_pad=False``);
- the pool branch of the last block, ``Mixed_7c``, is a 3x3 *max* pool instead of an average pool;
- the classifier has 1008 outputs (unused here: FID reads the 2048-d pooled features);
- inputs are bilinearly resized to 299x299 and scaled to [-1, 1] without ImageNet mean/std.

Module and parameter names follow torchvision's ``Inception3`` (``Conv2d_1a_3x3.conv.weight``,
``Mixed_5b.branch1x1.bn.running_mean``, ``fc.weight`` ...), so the state dict of pytorch-fid's
weight file ``pt_inception-2015-12-05-6726825d.pth`` loads as it is.  No auxiliary classifier.

Weights are never downloaded implicitly: :func:`load_inception` looks in an explicit path, then
``$STYLEGAN_ANIME_INCEPTION``, then the torch-hub cache, and raises :class:`MetricUnavailable`
with a one-line hint when the file is not there.  :func:`download_inception` fetches it on a
networked machine.
"""
from __future__ import annotations

import hashlib
import os
import warnings
from typing import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ENV_VAR",
    "FEATURE_DIM",
    "FIDInceptionV3",
    "MetricUnavailable",
    "OFFICIAL_FILENAME",
    "OFFICIAL_URL",
    "default_inception_path",
    "download_inception",
    "inception_features",
    "load_inception",
    "weights_fingerprint",
]

OFFICIAL_FILENAME = "pt_inception-2015-12-05-6726825d.pth"
OFFICIAL_URL = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + OFFICIAL_FILENAME
#: torch-hub naming convention: ``name-<first 8+ hex digits of the file's SHA-256>.ext``.
OFFICIAL_SHA256_PREFIX = "6726825d"
ENV_VAR = "STYLEGAN_ANIME_INCEPTION"
FEATURE_DIM = 2048
NUM_CLASSES = 1008


class MetricUnavailable(Exception):
    """A metric cannot run here (missing weights file, optional package, broken detector).

    The message is one line saying what is missing and how to provide it.
    """


# ----------------------------------------------------------------------------- building blocks


class BasicConv2d(nn.Module):
    """conv (no bias) -> batch norm (eps 1e-3) -> ReLU; names ``conv`` / ``bn`` as in torchvision."""

    def __init__(self, cin: int, cout: int, kernel_size, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg3_no_pad(x: torch.Tensor) -> torch.Tensor:
    # TF's average pool divides by the number of *valid* pixels under the window.
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class FIDInceptionA(nn.Module):
    """35x35 block (Mixed_5b/c/d): 1x1 | 1x1->5x5 | 1x1->3x3->3x3 | avgpool->1x1. Out 224+pool_features."""

    def __init__(self, cin: int, pool_features: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 64, 1)
        self.branch5x5_1 = BasicConv2d(cin, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch1x1(x)
        b = self.branch5x5_2(self.branch5x5_1(x))
        c = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        d = self.branch_pool(_avg3_no_pad(x))
        return torch.cat([a, b, c, d], 1)


class InceptionB(nn.Module):
    """Grid reduction 35->17 (Mixed_6a): 3x3/2 | 1x1->3x3->3x3/2 | maxpool/2. Out 384+96+cin."""

    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch3x3(x)
        b = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        c = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([a, b, c], 1)


class FIDInceptionC(nn.Module):
    """17x17 block (Mixed_6b..e) with factorised 7x7 convolutions. Out 4*192 = 768."""

    def __init__(self, cin: int, channels_7x7: int):
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(cin, 192, 1)
        self.branch7x7_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch1x1(x)
        b = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        c = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            c = layer(c)
        d = self.branch_pool(_avg3_no_pad(x))
        return torch.cat([a, b, c, d], 1)


class InceptionD(nn.Module):
    """Grid reduction 17->8 (Mixed_7a): 1x1->3x3/2 | 1x1->1x7->7x1->3x3/2 | maxpool/2. Out 320+192+cin."""

    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch3x3_2(self.branch3x3_1(x))
        b = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        c = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([a, b, c], 1)


class FIDInceptionE(nn.Module):
    """8x8 block (Mixed_7b/c) with split 1x3/3x1 outputs. Out 320+768+768+192 = 2048.

    ``pool="avg"`` (padding-excluded average, Mixed_7b) or ``pool="max"`` (Mixed_7c in the TF graph).
    """

    def __init__(self, cin: int, pool: str):
        super().__init__()
        if pool not in ("avg", "max"):
            raise ValueError(f"pool must be 'avg' or 'max', got {pool!r}")
        self.pool = pool
        self.branch1x1 = BasicConv2d(cin, 320, 1)
        self.branch3x3_1 = BasicConv2d(cin, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch1x1(x)
        b = self.branch3x3_1(x)
        b = torch.cat([self.branch3x3_2a(b), self.branch3x3_2b(b)], 1)
        c = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        c = torch.cat([self.branch3x3dbl_3a(c), self.branch3x3dbl_3b(c)], 1)
        if self.pool == "max":
            p = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        else:
            p = _avg3_no_pad(x)
        d = self.branch_pool(p)
        return torch.cat([a, b, c, d], 1)


# ----------------------------------------------------------------------------- the network


class FIDInceptionV3(nn.Module):
    """Inception-v3 returning the 2048-d average-pooled features used by FID and KID.

    ``forward(x)``: float ``[N,3,H,W]`` with values in [0, 1] (any H, W) -> ``[N,2048]``.
    The input is resized bilinearly (``align_corners=False``, no antialias) to 299x299 and mapped to
    [-1, 1], exactly as pytorch-fid does.  ``logits(x)`` gives the 1008-way classifier output.
    """

    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b = FIDInceptionA(192, pool_features=32)
        self.Mixed_5c = FIDInceptionA(256, pool_features=64)
        self.Mixed_5d = FIDInceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
        self.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
        self.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
        self.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = FIDInceptionE(1280, pool="avg")
        self.Mixed_7c = FIDInceptionE(2048, pool="max")
        self.fc = nn.Linear(FEATURE_DIM, NUM_CLASSES)
        self.weights_id = "unloaded"  # set by load_inception(); part of the real-statistics cache key
        self.eval()
        self.requires_grad_(False)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """[N,3,H,W] in [0,1] -> [N,2048]."""
        x = F.interpolate(x.float(), size=(299, 299), mode="bilinear", align_corners=False)
        x = 2.0 * x - 1.0                                  # N x 3 x 299 x 299 in [-1, 1]
        x = self.Conv2d_1a_3x3(x)                          # N x 32 x 149 x 149
        x = self.Conv2d_2a_3x3(x)                          # N x 32 x 147 x 147
        x = self.Conv2d_2b_3x3(x)                          # N x 64 x 147 x 147
        x = F.max_pool2d(x, kernel_size=3, stride=2)       # N x 64 x 73 x 73
        x = self.Conv2d_3b_1x1(x)                          # N x 80 x 73 x 73
        x = self.Conv2d_4a_3x3(x)                          # N x 192 x 71 x 71
        x = F.max_pool2d(x, kernel_size=3, stride=2)       # N x 192 x 35 x 35
        x = self.Mixed_5d(self.Mixed_5c(self.Mixed_5b(x)))  # N x 288 x 35 x 35
        x = self.Mixed_6a(x)                               # N x 768 x 17 x 17
        x = self.Mixed_6e(self.Mixed_6d(self.Mixed_6c(self.Mixed_6b(x))))  # N x 768 x 17 x 17
        x = self.Mixed_7a(x)                               # N x 1280 x 8 x 8
        x = self.Mixed_7c(self.Mixed_7b(x))                # N x 2048 x 8 x 8
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)  # N x 2048

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """[N,3,H,W] in [0,1] -> [N,1008] class logits (index 0 is TF's 'background')."""
        return self.fc(self.features(x))


# ----------------------------------------------------------------------------- loading


def default_inception_path() -> str:
    """The torch-hub cache file (``$TORCH_HOME/hub/checkpoints/...``, by default under ``~/.cache/torch``)."""
    return os.path.join(torch.hub.get_dir(), "checkpoints", OFFICIAL_FILENAME)


def _resolve_path(path) -> tuple[str, str]:
    if path:
        return os.path.abspath(os.path.expanduser(str(path))), "argument"
    env = os.environ.get(ENV_VAR)
    if env:
        return os.path.abspath(os.path.expanduser(env)), f"${ENV_VAR}"
    return default_inception_path(), "torch-hub cache"


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def weights_fingerprint(model: nn.Module) -> str:
    """A short hash of every parameter and buffer: identifies the network in cache keys."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _check_state_dict(state, model: nn.Module, path: str) -> dict:
    """Compare keys/shapes with ``model``; raise MetricUnavailable naming the first problems."""
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise MetricUnavailable(
            f"Inception weights file {path} does not hold a state dict (got {type(state).__name__}); "
            f"expected pytorch-fid's {OFFICIAL_FILENAME}"
        )
    expected = model.state_dict()
    optional = {k for k in expected if k.endswith("num_batches_tracked")}  # absent in old checkpoints
    missing = [k for k in expected if k not in state and k not in optional]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:3])})")
        raise MetricUnavailable(
            f"Inception weights file {path} does not match the FID Inception-v3: {'; '.join(parts)}"
        )
    for k, v in state.items():
        if not isinstance(v, torch.Tensor):
            raise MetricUnavailable(f"Inception weights file {path}: entry {k} is not a tensor")
        if tuple(v.shape) != tuple(expected[k].shape):
            raise MetricUnavailable(
                f"Inception weights file {path}: {k} has shape {list(v.shape)}, "
                f"expected {list(expected[k].shape)}"
            )
    full = dict(state)
    for k in optional:
        full.setdefault(k, expected[k])
    return full


_LOADED: dict[tuple, FIDInceptionV3] = {}


def load_inception(path=None, device="cpu", *, warn: Callable[[str], None] | None = None) -> FIDInceptionV3:
    """Load the FID Inception-v3 in eval mode on ``device``.

    The file is ``path``, else ``$STYLEGAN_ANIME_INCEPTION``, else the torch-hub cache file
    ``~/.cache/torch/hub/checkpoints/pt_inception-2015-12-05-6726825d.pth``.  A file carrying the
    official name must have the SHA-256 prefix in its name (torch-hub convention); any other file is
    accepted when its keys and shapes match, with a warning.  Never downloads.  Raises
    :class:`MetricUnavailable` (one line) when the file is missing or not the right network.
    Loaded networks are kept per (file, size, mtime, device), so repeated calls are cheap.
    """
    file, origin = _resolve_path(path)
    if not os.path.isfile(file):
        raise MetricUnavailable(
            f"FID Inception weights not found at {file} ({origin}): put {OFFICIAL_FILENAME} there, "
            f"set ${ENV_VAR} or pass the path; on a networked machine download it from {OFFICIAL_URL}"
        )
    st = os.stat(file)
    key = (file, st.st_size, st.st_mtime_ns, str(torch.device(device)))
    if key in _LOADED:
        return _LOADED[key]
    name = os.path.basename(file)
    if name == OFFICIAL_FILENAME:
        digest = _sha256(file)
        if not digest.startswith(OFFICIAL_SHA256_PREFIX):
            raise MetricUnavailable(
                f"Inception weights file {file} is corrupt or not the official one: its SHA-256 is "
                f"{digest[:16]}..., the name requires a hash starting with {OFFICIAL_SHA256_PREFIX}; "
                f"delete it and download it again from {OFFICIAL_URL}"
            )
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same user-facing problem
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise MetricUnavailable(f"cannot read Inception weights file {file}: {first}") from None
    model = FIDInceptionV3()
    state = _check_state_dict(state, model, file)
    model.load_state_dict(state)
    if name != OFFICIAL_FILENAME:
        (warn or (lambda m: warnings.warn(m, stacklevel=2)))(
            f"Inception weights {file} are not the official {OFFICIAL_FILENAME}: keys and shapes match, "
            "but FID values are only comparable with others computed from the same file"
        )
    model.weights_id = weights_fingerprint(model)
    model = model.to(device).eval()
    _LOADED.clear()  # keep one network in memory
    _LOADED[key] = model
    return model


def download_inception(dest=None, progress: bool = True) -> str:
    """Download pytorch-fid's weight file to ``dest`` (default: the torch-hub cache), hash-checked.

    Needs network access; nothing in the package calls it implicitly.  Returns the file path.
    """
    dest = os.path.abspath(os.path.expanduser(str(dest))) if dest else default_inception_path()
    if os.path.isdir(dest):
        dest = os.path.join(dest, OFFICIAL_FILENAME)
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    torch.hub.download_url_to_file(OFFICIAL_URL, dest, hash_prefix=OFFICIAL_SHA256_PREFIX, progress=progress)
    return dest


# ----------------------------------------------------------------------------- feature extraction


def images_to_tensor(images: np.ndarray, device) -> torch.Tensor:
    """uint8 [N,H,W,3] -> float [N,3,H,W] in [0,1] on ``device``."""
    arr = np.asarray(images)
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"expected uint8 images [N,H,W,3], got {arr.dtype} {list(arr.shape)}")
    x = torch.from_numpy(np.ascontiguousarray(arr)).to(device)
    return x.permute(0, 3, 1, 2).float().div_(255.0)


@torch.no_grad()
def inception_features(model: nn.Module, images: np.ndarray | Iterable[np.ndarray], batch_size: int = 64,
                       device=None) -> np.ndarray:
    """Features of uint8 [N,H,W,3] images (an array or an iterable of batches) -> float32 [N,D]."""
    if device is None:
        device = next(model.parameters()).device
    batches = [images] if isinstance(images, np.ndarray) else images
    out = []
    for batch in batches:
        for i in range(0, len(batch), batch_size):
            x = images_to_tensor(batch[i:i + batch_size], device)
            out.append(model(x).float().cpu().numpy())  # N x D
    dim = out[0].shape[1] if out else FEATURE_DIM
    return np.concatenate(out, 0) if out else np.zeros((0, dim), np.float32)
