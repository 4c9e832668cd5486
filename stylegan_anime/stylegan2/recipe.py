"""StyleGAN2 as a recipe for the shared trainer (`--model stylegan2`).

Phases per iteration (lazy regularisation, Karras et al. 2020, appendix B):

    G     non-saturating logistic loss softplus(-D(G(z))), with style mixing
    Greg  path-length penalty every pl_interval iterations, on batch / pl_batch_shrink samples
    D     logistic loss softplus(D(G(z))) + softplus(-D(x))
    Dreg  R1 penalty gamma/2 * |grad_x D(x)|^2 every r1_interval iterations

A lazy penalty is multiplied by its interval, and each optimiser's learning rate and betas are adjusted
for the steps it shares with its regulariser: mb_ratio = interval / (interval + 1), lr * mb_ratio,
beta ** mb_ratio.

Presets (`PRESETS`; a field left at None takes the preset's value, and every value is a flag). The NVlabs
ones carry stylegan2-ada-pytorch train.py's `cfg_specs` exactly (fmaps f -> channel_base f * 32768, channel_max
512, Adam betas (0, 0.99), fp16 in the top 4 resolutions with conv clamp 256, path length 2, mixing 0.9):
- `auto`: batch max(min(gpus * min(4096 // res, 32), 64), gpus), minibatch-std group min(batch / gpus, 4), fmaps 1
  at >= 512 px else 0.5, lr 0.002 at >= 1024 px else 0.0025, gamma = 0.0002 res^2 / batch,
  ema_kimg = batch * 10 / 32 with ramp-up 0.05, mapping 2;
- `stylegan2` (config F): batch 32, mbstd 4, fmaps 1, lr 0.002, gamma 10, ema 10 kimg, mapping 8;
- `paper256` / `paper512` / `paper1024`: the paper's settings at those sizes (batch 64/64/32, mbstd 8/8/4,
  fmaps 0.5/1/1, lr 0.0025/0.0025/0.002, gamma 1/0.5/2, ema 20/20/10 kimg, mapping 8);
- `cifar`: batch 64, mbstd 32, fmaps 1, lr 0.0025, gamma 0.01, ema 500 kimg with ramp-up 0.05, mapping 2, no
  path length, no style mixing, discriminator architecture 'orig';
- `paper` (this project's older name): auto's widths with an 8-layer mapping, gamma 10 and no EMA ramp-up;
- `cpu`: chosen by a measured sweep for an hour of training on a 2-core CPU at 64 px (docs/quality.md): batch
  16, channel_max 64, channel_base 16 * res (16 channels at the output resolution at every size), no path
  length, no style mixing.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..training.config import ConfigError
from ..training import cpu_speed
from ..training.recipe import Batch, Phase, Recipe, RecipeConfig, adam
from .discriminator import Discriminator
from .generator import Generator

PRESETS = ("auto", "stylegan2", "paper256", "paper512", "paper1024", "cifar", "paper", "cpu")
D_ARCHITECTURES = ("resnet", "orig", "skip")


def _f(default, help, **meta):
    return field(default=default, metadata={"help": help, **meta})


@dataclass
class StyleGAN2Config(RecipeConfig):
    batch: int | None = _f(None, "global batch size (images per optimiser step) [preset auto/paper: 32, cpu: 16]",
                           min=1)
    ema_kimg: float | None = _f(None, "G_ema half-life in kimg [preset auto/paper: batch * 10 / 32]", min=0)
    ema_rampup: float | None = _f(None, "EMA ramp-up ratio [preset auto: 0.05, paper: off]", min=0)
    preset: str = _f("auto", "StyleGAN2 preset filling every value left unset", choices=PRESETS)
    z_dim: int = _f(512, "latent size (z ~ N(0, I))", min=1)
    w_dim: int = _f(512, "intermediate latent (W) size", min=1)
    map_layers: int | None = _f(None, "mapping network depth [preset auto: 2, paper: 8]", min=1)
    channel_base: int | None = _f(None, "channels at resolution r = min(channel_base / r, channel_max) "
                                        "[preset auto/paper: 16384]", min=1)
    channel_max: int | None = _f(None, "maximum channels per layer [preset auto/paper: 512]", min=1)
    num_fp16_res: int = _f(4, "run the top N resolutions in reduced precision (0: all fp32)", min=0)
    fp16_dtype: str | None = _f(None, "reduced-precision dtype of those layers (float16 blocks compute in float32 on "
                                      "a CPU) [preset cpu: bfloat16, others: float16]",
                                choices=("float16", "bfloat16"))
    channels_last: bool = _f(True, "on a CPU: G's and D's weights, and so their activations, in the channels_last "
                                   "(NHWC) memory layout, oneDNN's fast one; the same numbers within rounding")
    conv_clamp: float = _f(256.0, "clamp conv outputs to +-N (keeps reduced precision finite; 0: off)", min=0)
    lr: float | None = _f(None, "learning rate of G and D before lazy adjustment [0.0025]", min_exclusive=0)
    beta1: float = _f(0.0, "Adam beta1 (both networks)", min=0, max_exclusive=1)
    beta2: float = _f(0.99, "Adam beta2 (both networks)", min=0, max_exclusive=1)
    gamma: float | None = _f(None, "R1 weight [preset auto: 0.0002 * res^2 / batch, paper: 10]", min=0)
    r1_interval: int = _f(16, "lazy R1: every N iterations", min=1)
    pl_weight: float | None = _f(None, "path-length penalty weight (0: off) [preset auto/paper: 2]", min=0)
    pl_interval: int = _f(4, "lazy path-length regularisation: every N iterations", min=1)
    pl_decay: float = _f(0.01, "decay of the running path-length mean", min_exclusive=0, max=1)
    pl_batch_shrink: int = _f(2, "path-length batch = batch-gpu / N", min=1)
    style_mixing: float | None = _f(None, "probability of style mixing per batch [preset auto/paper: 0.9]",
                                     min=0, max=1)
    mbstd_group: int | None = _f(None, "minibatch-stddev group size [preset auto: min(batch / gpus, 4)]", min=1)
    d_architecture: str | None = _f(None, "discriminator architecture [preset cifar: orig, others: resnet]",
                                    choices=D_ARCHITECTURES)
    freezed: int = _f(0, "Freeze-D (NVlabs' --freezed): keep the first N discriminator layers fixed, counted from "
                         "the image (top block: fromrgb, conv0, conv1, skip; then 3 per block)", min=0)
    grid_psi: float = _f(0.7, "truncation of the extra Samples/ema_psi grid", min=0, max=1)
    cond: bool = _f(False, "condition on the data's tags (hair/eye): one-hot embedding into the mapping network "
                           "and a projection discriminator")
    num_classes: int = _f(0, "class-conditional with N classes: c = one-hot(class index), embedded by the mapping "
                             "network and projected on by D (imported CIFAR-10 models: 10; 0: off)", min=0)
    d_map_layers: int = _f(8, "layers of D's label mapping when conditional (stylegan2-ada-pytorch: 8; its "
                              "TensorFlow release: 0)", min=0)
    noise: bool = _f(True, "per-pixel noise inputs in the synthesis layers (StyleGAN3 has none; a narrow G trained "
                           "briefly can lean on them: docs/quality.md)")


# What each preset gives the fields left at None. A callable value is called as f(res, batch, gpus) (batch: the
# resolved global batch; for `batch` itself None).
def _auto_batch(res, batch, gpus):
    return max(min(gpus * min(4096 // res, 32), 64), gpus)


def _spec(batch, mbstd, fmaps, lr, gamma, ema, ramp, map_layers, **extra):
    """One row of stylegan2-ada-pytorch train.py's cfg_specs in this recipe's field names."""
    return dict(batch=batch, mbstd_group=mbstd, channel_base=fmaps if callable(fmaps) else int(fmaps * 32768),
                channel_max=512, lr=lr, gamma=gamma, ema_kimg=ema, ema_rampup=0.0 if ramp is None else ramp,
                map_layers=map_layers, pl_weight=2.0, style_mixing=0.9, d_architecture="resnet", fp16_dtype="float16",
                **extra)


_AUTO = _spec(batch=_auto_batch, mbstd=lambda res, batch, gpus: min(batch // gpus, 4),
              fmaps=lambda res, batch, gpus: 32768 if res >= 512 else 16384,
              lr=lambda res, batch, gpus: 0.002 if res >= 1024 else 0.0025,
              gamma=lambda res, batch, gpus: 0.0002 * res ** 2 / batch,
              ema=lambda res, batch, gpus: batch * 10 / 32, ramp=0.05, map_layers=2)
PRESET_VALUES = {
    "auto": _AUTO,
    "stylegan2": _spec(batch=32, mbstd=4, fmaps=1, lr=0.002, gamma=10.0, ema=10.0, ramp=None, map_layers=8),
    "paper256": _spec(batch=64, mbstd=8, fmaps=0.5, lr=0.0025, gamma=1.0, ema=20.0, ramp=None, map_layers=8),
    "paper512": _spec(batch=64, mbstd=8, fmaps=1, lr=0.0025, gamma=0.5, ema=20.0, ramp=None, map_layers=8),
    "paper1024": _spec(batch=32, mbstd=4, fmaps=1, lr=0.002, gamma=2.0, ema=10.0, ramp=None, map_layers=8),
    "cifar": {**_spec(batch=64, mbstd=32, fmaps=1, lr=0.0025, gamma=0.01, ema=500.0, ramp=0.05, map_layers=2),
              "pl_weight": 0.0, "style_mixing": 0.0, "d_architecture": "orig"},
    "paper": {**_AUTO, "batch": 32, "channel_base": 16384, "lr": 0.0025, "mbstd_group": 4, "map_layers": 8,
              "gamma": 10.0, "ema_rampup": 0.0},
    "cpu": {**_AUTO, "batch": 16, "channel_base": lambda res, batch, gpus: 16 * res, "channel_max": 64,
            "lr": 0.0025, "mbstd_group": 4, "pl_weight": 0.0, "style_mixing": 0.0,
            # bfloat16 runs on a CPU (float16 blocks fall back to float32 there) and twice as fast with AVX-512
            # BF16 / AMX; it keeps float32's range, so no loss scaling (docs/benchmarks.md, issue #22).
            "fp16_dtype": "bfloat16"},
}
# The size each NVlabs preset was made for (others: any size).
PRESET_SIZES = {"paper256": 256, "paper512": 512, "paper1024": 1024, "cifar": 32}


def resolve(cfg: StyleGAN2Config, resolution: int, gpus: int = 1) -> StyleGAN2Config:
    """Fill every None with the preset's value for this resolution and number of processes."""
    values = PRESET_VALUES[cfg.preset]
    batch = cfg.batch
    if batch is None:  # gamma, ema_kimg and mbstd_group depend on it
        batch = values["batch"](resolution, None, gpus) if callable(values["batch"]) else values["batch"]
    filled = {k: v(resolution, batch, gpus) if callable(v) else v for k, v in values.items()
              if getattr(cfg, k) is None}
    filled["batch"] = batch
    return dataclasses.replace(cfg, **filled)


def network_kwargs(cfg: StyleGAN2Config, resolution: int, c_dim: int = 0) -> tuple[dict, dict]:
    """Constructor kwargs of G and D for a resolved config (also what official pickles are checked against)."""
    common = dict(channel_base=cfg.channel_base, channel_max=cfg.channel_max, num_fp16_res=cfg.num_fp16_res,
                  fp16_dtype=cfg.fp16_dtype,  # both networks' reduced-precision blocks
                  conv_clamp=cfg.conv_clamp if cfg.conv_clamp > 0 else None)
    G = dict(z_dim=cfg.z_dim, c_dim=c_dim, w_dim=cfg.w_dim, img_resolution=resolution, img_channels=3,
             mapping_kwargs=dict(num_layers=cfg.map_layers), **common)
    if not cfg.noise:
        G["use_noise"] = False
    D = dict(c_dim=c_dim, img_resolution=resolution, img_channels=3, architecture=cfg.d_architecture,
             epilogue_kwargs=dict(mbstd_group_size=cfg.mbstd_group), **common)
    if cfg.freezed:
        D["block_kwargs"] = dict(freeze_layers=cfg.freezed)
    if c_dim and cfg.d_map_layers != 8:  # 8: the MappingNetwork default
        D["mapping_kwargs"] = dict(num_layers=cfg.d_map_layers)
    return G, D


def config_from_official(G_kwargs: dict, D_kwargs: dict) -> tuple[StyleGAN2Config, int]:
    """The config (and resolution) that rebuilds an official stylegan2-ada-pytorch G/D; ValueError naming
    every setting this recipe cannot reproduce. A conditional pair (c_dim > 0: the class-conditional CIFAR-10
    models) becomes `num_classes` = c_dim (c = one-hot class index)."""
    res = int(G_kwargs["img_resolution"])
    c_dim = int(G_kwargs.get("c_dim", 0) or 0)
    if int(D_kwargs.get("c_dim", 0) or 0) != c_dim:
        raise ValueError(f"G has c_dim={c_dim} but D has c_dim={D_kwargs.get('c_dim')}")
    cfg = StyleGAN2Config(
        z_dim=G_kwargs["z_dim"], w_dim=G_kwargs["w_dim"],
        map_layers=(G_kwargs.get("mapping_kwargs") or {}).get("num_layers", 8),
        channel_base=G_kwargs.get("channel_base", 32768), channel_max=G_kwargs.get("channel_max", 512),
        num_fp16_res=G_kwargs.get("num_fp16_res", 0), conv_clamp=float(G_kwargs.get("conv_clamp") or 0),
        mbstd_group=(D_kwargs.get("epilogue_kwargs") or {}).get("mbstd_group_size", 4),
        d_architecture=D_kwargs.get("architecture", "resnet"), num_classes=c_dim,
        d_map_layers=(D_kwargs.get("mapping_kwargs") or {}).get("num_layers", 8),
        freezed=int((D_kwargs.get("block_kwargs") or {}).get("freeze_layers", 0) or 0))
    ours_G, ours_D = network_kwargs(resolve(cfg, res), res, c_dim)
    # Left out of ours when they equal our constructors' defaults; fp16_channels_last is a memory layout only.
    tolerated = {"G": {"architecture": ("skip",), "img_channels": (3,)}, "D": {"img_channels": (3,)}}
    bad = []
    for net, theirs, ours in (("G", G_kwargs, ours_G), ("D", D_kwargs, ours_D)):
        for key, value in _flatten(theirs).items():
            mine = _flatten(ours).get(key, _MISSING)
            if mine is _MISSING:
                last = key.split(".")[-1]
                if value in (None, {}) or last == "fp16_channels_last" or value in tolerated[net].get(last, ()):
                    continue
            elif mine == value:
                continue
            bad.append(f"{net}.{key}={value!r}")
    if bad:
        raise ValueError(f"settings this StyleGAN2 cannot reproduce: {', '.join(bad)}")
    return cfg, res


_MISSING = object()


def class_names(num_classes: int) -> dict[str, list[str]]:
    """The label vocabulary of a class-conditional model: one column 'class' with the indices as names."""
    return {"class": [str(i) for i in range(num_classes)]}


def check_class_names(label_names: dict, num_classes: int) -> None:
    """A class-conditional model reads one label column of exactly `num_classes` values; ValueError otherwise."""
    columns = list(label_names)
    if len(columns) != 1 or len(label_names[columns[0]]) != num_classes:
        shape = ", ".join(f"{k} ({len(v)} values)" for k, v in label_names.items())
        raise ValueError(f"this StyleGAN2 is class-conditional ({num_classes} classes) and needs one class label "
                         f"per image; the labels have column(s) {shape}")


def class_onehot(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Class indices [n] or [n, 1] (int; -1 = no class) -> c [n, num_classes] float32 one-hot (all zeros for -1)."""
    if labels.dim() == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.dim() != 1 or labels.is_floating_point():
        raise ValueError(f"class labels must be integer indices [n] or [n, 1], got {labels.dtype} "
                         f"{list(labels.shape)}")
    if labels.numel() and (int(labels.min()) < -1 or int(labels.max()) >= num_classes):
        raise ValueError(f"class index out of range 0..{num_classes - 1}: {labels.tolist()}")
    return F.one_hot(labels.long().clamp(min=0), num_classes).float() * (labels >= 0).float()[:, None]


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


class StyleGAN2(Recipe):
    name = "stylegan2"
    Config = StyleGAN2Config
    description = "StyleGAN2 (config-f style): mapping, modulated conv, noise, mixing, lazy R1 + path length"
    # Fields that shape the weights: fixed when fine-tuning an imported network.
    arch_fields = ("z_dim", "w_dim", "map_layers", "channel_base", "channel_max", "mbstd_group", "cond", "noise",
                   "d_architecture", "num_classes", "d_map_layers")

    @classmethod
    def needs_labels(cls, cfg: StyleGAN2Config) -> bool:
        return bool(cfg.cond) or cfg.num_classes > 0

    @classmethod
    def resolve_config(cls, cfg: StyleGAN2Config, resolution: int, gpus: int = 1) -> StyleGAN2Config:
        return resolve(cfg, resolution, gpus)

    @classmethod
    def check(cls, cfg: StyleGAN2Config, resolution: int) -> None:
        """The widths give channels at every resolution 4 ... `resolution`: min(channel_base // r, channel_max)
        >= 1, naming the flag (or preset value) at fault."""
        full = resolve(cfg, resolution)
        res = 4
        while res <= resolution:
            if full.channel_base // res < 1:
                raise ConfigError(f"--channel-base {full.channel_base} gives no channels at {res} px (channels = "
                                  f"channel_base / r); it must be at least {resolution} for --size {resolution}")
            if min(full.channel_base // res, full.channel_max) < 1:
                raise ConfigError(f"--channel-max {full.channel_max} gives no channels at {res} px; it must be >= 1")
            res *= 2

    def __init__(self, cfg: StyleGAN2Config, resolution: int, device: torch.device,
                 label_names: dict | None = None):
        if resolution < 8 or resolution & (resolution - 1):  # trains at 64/128; imported models may be larger
            raise ValueError(f"resolution must be a power of two >= 8, got {resolution}")
        if cfg.preset not in PRESETS:
            raise ValueError(f"preset must be one of {', '.join(PRESETS)}, got {cfg.preset!r}")
        cfg = resolve(cfg, resolution)
        super().__init__(cfg, resolution, device)
        self.encoder = None
        if cfg.cond:  # tags -> one-hot condition c [N, 22]: mapping embeds it, D projects onto it
            from ..baselines.conditioning import LabelEncoder
            self.encoder = LabelEncoder("onehot", label_names).to(self.device)
        if cfg.num_classes and cfg.cond:
            raise ValueError("--cond (tags) and --num-classes (class indices) are two kinds of condition; pick one")
        if cfg.num_classes and label_names is not None:
            check_class_names(label_names, cfg.num_classes)
        c_dim = self.encoder.dim if self.encoder is not None else cfg.num_classes
        G_kwargs, D_kwargs = network_kwargs(cfg, resolution, c_dim)
        G, D = Generator(**G_kwargs), Discriminator(**D_kwargs)
        self.nets = {"G": G.to(self.device), "D": D.to(self.device)}
        if cfg.channels_last and self.device.type == "cpu":  # before the optimisers: Adam's moments take the layout
            for net in (G, D):
                cpu_speed.to_channels_last(net)
        self.opts = {
            "G": self._adam(G, cfg.pl_interval if cfg.pl_weight > 0 else 0),
            "D": self._adam(D, cfg.r1_interval if cfg.gamma > 0 else 0),
        }
        self.z_dim = cfg.z_dim
        self.pl_mean = torch.zeros([], device=self.device)
        self.phases = [Phase("G", "G", self.loss_G, needs_reals=False)]
        if cfg.pl_weight > 0:
            self.phases.append(Phase("Greg", "G", self.loss_Greg, interval=cfg.pl_interval, needs_reals=False))
        self.phases.append(Phase("D", "D", self.loss_D))
        if cfg.gamma > 0:
            self.phases.append(Phase("Dreg", "D", self.loss_Dreg, interval=cfg.r1_interval))

    def _adam(self, net: torch.nn.Module, interval: int) -> torch.optim.Adam:
        ratio = interval / (interval + 1) if interval > 0 else 1.0
        betas = (self.cfg.beta1 ** ratio, self.cfg.beta2 ** ratio)
        return adam(net.parameters(), self.device, lr=self.cfg.lr * ratio, betas=betas, eps=1e-8)

    # ------------------------------------------------------------------ generator with style mixing
    def _c(self, n: int, labels: torch.Tensor | None = None) -> torch.Tensor:
        """The condition [n, c_dim]: empty when unconditional, the encoded tags (-1 = unknown) with --cond, or
        one-hot class indices with num_classes (labels [n] or [n, 1]; -1 = no class, c = 0)."""
        if self.cfg.num_classes:
            if labels is None:
                raise ValueError(f"this StyleGAN2 is class-conditional ({self.cfg.num_classes} classes): give a "
                                 f"class index (e.g. generate --class 3)")
            return class_onehot(labels.to(self.device), self.cfg.num_classes)
        if self.encoder is None:
            return torch.zeros([n, 0], device=self.device)
        if labels is None:
            raise ValueError("this StyleGAN2 is conditional (--cond): give labels (e.g. generate --tags)")
        return self.encoder(labels.to(self.device))

    def mapping_with_mixing(self, z: torch.Tensor, update_emas: bool = False,
                            labels: torch.Tensor | None = None) -> torch.Tensor:
        """ws [N, num_ws, w_dim]; with probability style_mixing, layers from a random cutoff on come from
        a second latent (one cutoff for the batch, uniform in [1, num_ws))."""
        G = self.nets["G"]
        c = self._c(z.shape[0], labels)
        ws = G.mapping(z, c, update_emas=update_emas)
        if self.cfg.style_mixing > 0:
            num_ws = ws.shape[1]
            cutoff = int(torch.randint(1, num_ws, [], device="cpu"))
            if float(torch.rand([], device="cpu")) >= self.cfg.style_mixing:
                cutoff = num_ws
            if cutoff < num_ws:
                ws2 = G.mapping(torch.randn_like(z), c, update_emas=False)
                ws = torch.cat([ws[:, :cutoff], ws2[:, cutoff:]], dim=1)
        return ws

    def run_G(self, z: torch.Tensor, update_emas: bool = False,
              labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        ws = self.mapping_with_mixing(z, update_emas=update_emas, labels=labels)
        return self.nets["G"].synthesis(ws), ws

    def run_D(self, img: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.nets["D"](img, self._c(img.shape[0], labels)).float().flatten()  # [N] logits

    # ------------------------------------------------------------------ losses
    def loss_G(self, batch: Batch) -> dict[str, torch.Tensor]:
        img, _ = self.run_G(batch.z, update_emas=True, labels=batch.fake_labels)
        logits = self.run_D(img, batch.fake_labels)
        return {"loss": F.softplus(-logits).mean(), "D_fake": torch.sigmoid(logits).mean().detach()}

    def loss_Greg(self, batch: Batch) -> dict[str, torch.Tensor]:
        n = max(batch.z.shape[0] // self.cfg.pl_batch_shrink, 1)
        img, ws = self.run_G(batch.z[:n], update_emas=True,
                             labels=None if batch.fake_labels is None else batch.fake_labels[:n])
        noise = torch.randn_like(img) / math.sqrt(img.shape[2] * img.shape[3])
        (grads,) = torch.autograd.grad((img * noise).sum(), ws, create_graph=True)
        lengths = grads.float().square().sum(2).mean(1).sqrt()  # [n]
        # As stylegan2-ada-pytorch: the gradient also flows through this batch's share of the running mean
        # (weight pl_decay); only the stored mean is detached.
        pl_mean = self.pl_mean.lerp(lengths.mean(), self.cfg.pl_decay)
        self.pl_mean.copy_(pl_mean.detach())
        penalty = (lengths - pl_mean).square()
        loss = penalty.mean() * self.cfg.pl_weight * self.cfg.pl_interval
        # + 0 * img: parameters the penalty does not reach (the toRGB biases) get a zero gradient instead of
        # none, so that Adam steps them too (their moments decay), as NVlabs' loop does.
        loss = loss + img[:, 0, 0, 0].float().sum() * 0
        return {"loss": loss, "pl_penalty": penalty.mean().detach(), "pl_mean": pl_mean.detach()}

    def loss_D(self, batch: Batch) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            fake, _ = self.run_G(batch.z, update_emas=True, labels=batch.fake_labels)
        fake_logits, real_logits = self.run_D(fake, batch.fake_labels), self.run_D(batch.reals, batch.labels)
        loss = F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()
        return {"loss": loss, "D_real": torch.sigmoid(real_logits).mean().detach(),
                "real_sign": real_logits.sign().mean().detach(),
                "D_fake": torch.sigmoid(fake_logits).mean().detach(),
                "w_avg_norm": self.nets["G"].mapping.w_avg.norm().detach()}

    def loss_Dreg(self, batch: Batch) -> dict[str, torch.Tensor]:
        reals = batch.reals.detach().requires_grad_(True)
        logits = self.run_D(reals, batch.labels)
        (grads,) = torch.autograd.grad(logits.sum(), reals, create_graph=True)
        penalty = grads.float().square().sum([1, 2, 3])  # [N]
        loss = penalty.mean() * (self.cfg.gamma / 2) * self.cfg.r1_interval
        loss = loss + logits.sum() * 0  # the last bias, which R1 does not reach, gets a zero gradient (see Greg)
        return {"loss": loss, "r1_penalty": penalty.mean().detach()}

    # ------------------------------------------------------------------ sampling and state
    def generate(self, G, z, labels=None, psi: float = 1.0, noise_mode: str = "const", **kwargs) -> torch.Tensor:
        return G(z, self._c(z.shape[0], labels), truncation_psi=psi, noise_mode=noise_mode)

    def eval_options(self) -> dict:
        # Metrics score images with random noise, as NVlabs' metrics do, not the grids' one fixed noise map: with
        # 'const' every image carries the same noise pattern, which a metric can mistake for content (the anime-
        # face detector finds "faces" in a speckle pattern repeated over every sample).
        return {"noise_mode": "random"}

    def grid_variants(self) -> dict[str, dict]:
        return {f"psi{self.cfg.grid_psi:g}": {"psi": self.cfg.grid_psi}}

    def state_dict(self) -> dict:
        return {"pl_mean": self.pl_mean.detach().cpu()}

    def load_state_dict(self, state: dict) -> None:
        if "pl_mean" in state:
            self.pl_mean.copy_(state["pl_mean"])
