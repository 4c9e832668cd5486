"""Shared test helpers: a tiny batch-independent GAN recipe and small in-memory datasets."""
from __future__ import annotations

import contextlib
import io
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # subprocesses too: tiny test tensors, no thread-pool contention

from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from stylegan_anime.models import _REGISTRY, register_model
from stylegan_anime.training.recipe import Phase, Recipe, RecipeConfig


@dataclass
class ToyConfig(RecipeConfig):
    batch: int = field(default=8, metadata={"help": "global batch"})
    z_dim: int = field(default=4, metadata={"help": "latent size"})
    lr_g: float = field(default=0.05, metadata={"help": "SGD lr of G"})
    lr_d: float = field(default=0.05, metadata={"help": "SGD lr of D"})


class ToyGAN(Recipe):
    """No batch-coupled layers and plain SGD: accumulated and single-batch steps must agree exactly."""

    name = "toy"
    Config = ToyConfig

    def __init__(self, cfg, resolution, device):
        super().__init__(cfg, resolution, device)
        r = resolution
        self.z_dim = cfg.z_dim
        G = nn.Sequential(nn.Linear(cfg.z_dim, 3 * 8 * 8), nn.Tanh(), nn.Unflatten(1, (3, 8, 8)),
                          nn.Upsample(size=(r, r)))
        D = nn.Sequential(nn.AvgPool2d(r // 8), nn.Flatten(), nn.Linear(3 * 64, 16), nn.LeakyReLU(0.2),
                          nn.Linear(16, 1), nn.Flatten(0))
        self.nets = {"G": G.to(self.device), "D": D.to(self.device)}
        self.opts = {"G": torch.optim.SGD(G.parameters(), lr=cfg.lr_g),
                     "D": torch.optim.SGD(D.parameters(), lr=cfg.lr_d)}
        self.phases = [Phase("D", "D", self.loss_d), Phase("G", "G", self.loss_g, needs_reals=False)]

    def loss_d(self, batch):
        G, D = self.nets["G"], self.nets["D"]
        with torch.no_grad():
            fake = G(batch.z)
        real_logit, fake_logit = D(batch.reals), D(fake)
        loss = F.softplus(-real_logit).mean() + F.softplus(fake_logit).mean()
        return {"loss": loss, "D_real": real_logit.detach().mean(), "real_sign": real_logit.detach().sign().mean()}

    def loss_g(self, batch):
        return {"loss": F.softplus(-self.nets["D"](self.nets["G"](batch.z))).mean()}


torch.set_num_threads(1)

# Every cache a test run could fill in the user's home, and the variable that moves it (see _private_caches).
HOME_CACHES = {
    "STYLEGAN_ANIME_CACHE": "stylegan-anime",  # packed datasets, metric statistics, tagacc classifiers
    "TORCH_HOME": "torch",  # torch-hub downloads (the Inception file)
    "MPLCONFIGDIR": "matplotlib",  # matplotlib's font cache
    "XDG_CACHE_HOME": "xdg",  # anything else that follows the XDG convention (~/.cache)
}


@pytest.fixture(scope="session", autouse=True)
def _private_caches(tmp_path_factory):
    """The whole session writes its caches under one temporary folder, never into ~/.cache: the variables of
    HOME_CACHES point there (subprocesses inherit them). The CUDA-op build cache too, unless the user chose its
    place with $STYLEGAN_ANIME_OPS_CACHE (a GPU machine may keep its built plugins between sessions)."""
    root = tmp_path_factory.mktemp("caches")
    with pytest.MonkeyPatch.context() as mp:
        for var, name in HOME_CACHES.items():
            mp.setenv(var, str(root / name))
        if not os.environ.get("STYLEGAN_ANIME_OPS_CACHE"):
            mp.setenv("STYLEGAN_ANIME_OPS_CACHE", str(root / "ops"))
        yield root


@pytest.fixture
def toy_model():
    register_model("toy", ToyGAN)
    yield "toy"
    _REGISTRY.pop("toy", None)


def random_dataset(n: int = 40, size: int = 64, seed: int = 0, labels: bool = False):
    """An in-memory stand-in for a PackedDataset: uint8 [n,size,size,3] noise with smooth structure."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(n, 8, 8, 3), dtype=np.uint8)
    images = np.repeat(np.repeat(base, size // 8, axis=1), size // 8, axis=2)
    lab = rng.integers(0, 10, size=(n, 2)) if labels else None
    return SimpleNamespace(images=images, labels=lab, label_names=None, __len__=lambda: n)


def stop_after(trainer, iteration: int) -> None:
    """Make the trainer request a stop, as Ctrl-C does, right after the given iteration."""
    original = trainer.step

    def step():
        original()
        if trainer.iteration == iteration:
            trainer.request_stop()
    trainer.step = step


class ListDataset(SimpleNamespace):
    def __len__(self):
        return len(self.images)


@pytest.fixture
def tiny_data():
    d = random_dataset()
    return ListDataset(images=d.images, labels=None, label_names=None)


def run_cli(argv, capsys):
    """Run `stylegan-anime ARGV` in-process; returns (exit code, stdout, stderr)."""
    from stylegan_anime.cli import main
    with pytest.raises(SystemExit) as e:
        main(argv)
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


def train_run(outdir, *args: str):
    """Train a tiny run on 16 demo faces in-process (`train ARGS` on top of small defaults); its run folder."""
    from stylegan_anime.cli import main
    with pytest.raises(SystemExit) as e:
        main(["train", "--data", "demo:16", "--batch", "8", "--no-progress", "--device", "cpu", "--metrics", "none",
              "--outdir", str(outdir), *args])
    assert e.value.code == 0
    (run,) = [p for p in outdir.iterdir() if p.is_dir()]
    return run


TINY_STYLEGAN2 = ("--model", "stylegan2", "--channel-base", "256", "--channel-max", "16", "--z-dim", "16",
                  "--w-dim", "16", "--num-fp16-res", "0")


class TinyRuns:
    """Tiny runs trained on first use and shared by the whole session: 'sg2' (TINY_STYLEGAN2), 'cond' (the same,
    tag-conditional), 'dcgan'. Only read them: tests that change a checkpoint train their own."""

    ARGS = {"sg2": (*TINY_STYLEGAN2, "--kimg", "0.008"), "cond": (*TINY_STYLEGAN2, "--cond", "--kimg", "0.008"),
            "dcgan": ("--model", "dcgan", "--dim", "4", "--kimg", "0.008")}

    def __init__(self, root):
        self.root, self.runs = root, {}

    def __getitem__(self, name: str):
        if name not in self.runs:  # quietly: the first use may be inside a test that reads its own output
            with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(io.StringIO()), \
                    contextlib.redirect_stderr(io.StringIO()):
                mp.setenv("STYLEGAN_ANIME_CACHE", str(self.root / "cache"))
                self.runs[name] = train_run(self.root / name, *self.ARGS[name])
        return self.runs[name]


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory):
    return TinyRuns(tmp_path_factory.mktemp("tiny-runs"))
