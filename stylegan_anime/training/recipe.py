"""A model is a *recipe* plugged into the one trainer.

A recipe owns its networks (`G`, `D`), their optimisers and a list of phases. The trainer owns everything
else: data, latents, gradient accumulation, mixed precision, EMA of G, logging and checkpoints. One training
*iteration* runs every phase whose `interval` divides the iteration index, each `repeats` times in order:

    DCGAN:      [D, G]
    WGAN:       [D x5 (+ weight clipping after each step), G]
    StyleGAN2:  [Gmain, Greg every 4, Dmain, Dreg every 16]

Real images: repeat k of every phase that `needs_reals` sees the same real batch within an iteration (so a
lazy regulariser uses the batch of its main phase); kimg counts the real images drawn, i.e. images shown to D.

A phase's loss receives a `Batch` holding ONE accumulation round (batch_gpu samples) and returns a dict of
scalar tensors: `loss` (the mean over that round; the trainer scales by rounds so the accumulated gradient
equals the one-big-batch gradient) plus any statistics to log (also means over the round).
"""
from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass, field
from typing import Callable, ClassVar

import torch
from torch import nn


@dataclass
class RecipeConfig:
    """Hyperparameters every recipe has. Subclass per model; each field becomes a CLI flag (`--lr-d`).

    Field metadata: `help` (str, shown in --help), optional `choices` (tuple of str), and for every numeric
    field its range (`min`, `min_exclusive`, `max`, `max_exclusive`; see training/config.py RANGE_KEYS),
    checked by `validate_fields` before anything is written.
    """

    batch: int = field(default=64, metadata={"help": "global batch size (images per optimiser step)", "min": 1})
    ema_kimg: float = field(default=0.0, metadata={"help": "half-life of the G EMA in kimg (0: G_ema = G)", "min": 0})
    ema_rampup: float = field(
        default=0.0, metadata={"help": "EMA ramp-up: half-life at most rampup x kimg seen so far (0: off)", "min": 0}
    )


@dataclass
class Batch:
    """One accumulation round of inputs for a phase."""

    z: torch.Tensor  # [n, z_dim] latents drawn by the trainer from N(0, I)
    reals: torch.Tensor | None = None  # [n, 3, H, W] float in [-1, 1], None if the phase needs no reals
    labels: torch.Tensor | None = None  # [n, K] int64 labels of the reals (hair, eye ...) when the data has them
    fake_labels: torch.Tensor | None = None  # [n, K] int64 labels to generate with (drawn from the data's labels)


LossFn = Callable[[Batch], "dict[str, torch.Tensor]"]


@dataclass
class Phase:
    """One optimiser step of one network, as a loss over a batch."""

    name: str  # TensorBoard prefix: Loss/<name>, e.g. 'D', 'G', 'Dreg'
    net: str  # key of the network whose parameters this phase trains ('G' or 'D')
    loss: LossFn
    repeats: int = 1  # steps per iteration (n_critic for a WGAN critic)
    interval: int = 1  # run on iterations where iteration % interval == 0 (lazy regularisation)
    needs_reals: bool = True
    after_step: Callable[[], None] | None = None  # hook after each optimiser step (e.g. weight clipping)


class Recipe:
    """Base class. Subclasses set `name`, `Config`, and in `__init__` fill nets, opts, phases and z_dim."""

    name: ClassVar[str] = ""
    Config: ClassVar[type[RecipeConfig]] = RecipeConfig
    description: ClassVar[str] = ""
    # A conditional recipe needs labelled data and gets `label_names` ({'hair': [...], 'eye': [...]}, one
    # entry per column of the labels, -1 meaning unknown) as a keyword argument of its constructor.
    conditional: ClassVar[bool] = False

    @classmethod
    def needs_labels(cls, cfg: RecipeConfig) -> bool:
        """Whether this configuration is conditional (a recipe may be conditional only by a flag)."""
        return cls.conditional

    @classmethod
    def check(cls, cfg: RecipeConfig, resolution: int) -> None:
        """Cross-field checks of a configuration whose fields are each within their declared ranges (e.g.
        StyleGAN2: the widths give channels at every resolution): ConfigError naming the flag to change.
        Called by training.config.validate before anything is written; the default checks nothing."""

    def __init__(self, cfg: RecipeConfig, resolution: int, device: torch.device):
        self.cfg = cfg
        self.resolution = resolution
        self.device = torch.device(device)
        self.nets: dict[str, nn.Module] = {}
        self.opts: dict[str, torch.optim.Optimizer] = {}
        self.phases: list[Phase] = []
        self.z_dim: int = 0

    @classmethod
    def resolve_config(cls, cfg: RecipeConfig, resolution: int, gpus: int = 1) -> RecipeConfig:
        """The config with every value a preset decides filled in (for this resolution and number of
        processes): what config.json and checkpoints store."""
        return cfg

    # --- sampling (used by the trainer's grids, `generate` and the tools) ---------------------------
    def generate(self, G: nn.Module, z: torch.Tensor, labels: torch.Tensor | None = None, **kwargs) -> torch.Tensor:
        """Images [N, 3, H, W] in about [-1, 1] from latents z [N, z_dim] with generator G (G or G_ema).

        kwargs are sampling options a model understands (e.g. StyleGAN2's truncation `psi`).
        """
        return G(z)

    def eval_options(self) -> dict:
        """generate() options of the images metrics score (StyleGAN2: random noise, see its recipe)."""
        return {}

    def grid_variants(self) -> dict[str, dict]:
        """Extra sample grids of G_ema logged besides Samples/G and Samples/ema: tag suffix -> generate kwargs."""
        return {}

    # --- state the recipe owns beyond networks and optimisers (e.g. StyleGAN2's pl_mean) ------------
    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    # --- helpers -------------------------------------------------------------------------------------
    @classmethod
    def make_config(cls, **overrides) -> RecipeConfig:
        """Config with the model's defaults, overridden by the given (non-None) values."""
        names = {f.name for f in dataclasses.fields(cls.Config)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ValueError(f"model {cls.name!r} has no hyperparameter(s) {', '.join(unknown)}")
        return cls.Config(**{k: v for k, v in overrides.items() if v is not None})


def adam(params, device: torch.device | str, **kwargs) -> torch.optim.Adam:
    """torch.optim.Adam, fused on CUDA: one kernel per step for all parameters, and the trainer can skip a
    step with non-finite gradients on the device, without waiting for the GPU (see Trainer.run_phase)."""
    return torch.optim.Adam(params, fused=torch.device(device).type == "cuda", **kwargs)


def set_requires_grad(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)



@contextlib.contextmanager
def seeded_noise(seed: int, device: torch.device | str):
    """Inside: torch's random streams start from `seed`, and afterwards they are back where they were. Makes
    randomly drawn noise reproducible (seed it with the index of the first image) without moving the training
    run's random state, so evaluating does not change what training does next."""
    device = torch.device(device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else [], device_type=device.type):
        torch.manual_seed(seed)
        yield
