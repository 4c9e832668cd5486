"""How long a StyleGAN2 preset would take on this CPU, measured in seconds, before a run starts.

The full presets (auto, stylegan2, paper*) are GPU configurations: on a 2-core CPU `--preset auto` at 128 px
runs at thousands of seconds per kimg (days for 100 kimg) and, without this, the user sees nothing for
minutes. `estimate(cfg)` builds the run's G and D, times one forward pass of each on one image (no
gradients), and scales it to a training image:

    per image ~ G_FORWARDS * t_G + D_FORWARDS * t_D

The weights count the forward-equivalent work of StyleGAN2's phases per real image: G phase (G and D forward
and backward, a backward ~ 2 forwards: 3 G + 3 D), D phase (G forward without gradients, D forward and backward
on fakes and on reals: 1 G + 6 D), lazy path length (every 4 iterations on half the batch, a double backward
~ 8 G: +1 G) and lazy R1 (every 16 iterations, a double backward through D ~ 9 D: +0.6 D). They were checked
against measured training speed (`stylegan-anime bench`, docs/benchmarks.md): the estimate is a guide to the
order of magnitude, printed as "about".
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch

G_FORWARDS = 5.0
D_FORWARDS = 9.6


@dataclass
class Estimate:
    s_per_kimg: float  # estimated training seconds per 1000 real images
    measured_s: float  # wall seconds the measurement itself took

    def eta_s(self, kimg: float) -> float:
        return self.s_per_kimg * kimg


def _time_forward(fn, repeats: int = 2, clock=time.perf_counter) -> float:
    fn()  # warm-up (allocations, oneDNN primitive creation)
    best = float("inf")
    for _ in range(repeats):
        t0 = clock()
        fn()
        best = min(best, clock() - t0)
    return best


@torch.no_grad()
def estimate(model_cfg, resolution: int, clock=time.perf_counter) -> Estimate:
    """Estimated s/kimg of a StyleGAN2 config (a resolved StyleGAN2Config) at `resolution` on this CPU.
    clock: wall time by default; time.process_time to compare with measured CPU time on a busy machine."""
    from ..stylegan2.discriminator import Discriminator  # noqa: PLC0415
    from ..stylegan2.generator import Generator
    from ..stylegan2.recipe import network_kwargs

    t_start = time.perf_counter()
    c_dim = 22 if model_cfg.cond else getattr(model_cfg, "num_classes", 0)
    G_kwargs, D_kwargs = network_kwargs(model_cfg, resolution, c_dim)
    G, D = Generator(**G_kwargs).eval(), Discriminator(**D_kwargs).eval()
    z, c = torch.randn([1, model_cfg.z_dim]), torch.zeros([1, c_dim])
    img = torch.zeros([1, 3, resolution, resolution])
    t_G = _time_forward(lambda: G(z, c, noise_mode="random"), clock=clock)
    t_D = _time_forward(lambda: D(img, c), clock=clock)
    per_image = G_FORWARDS * t_G + D_FORWARDS * t_D
    return Estimate(s_per_kimg=1000 * per_image, measured_s=time.perf_counter() - t_start)


def format_duration(seconds: float) -> str:
    """12s, 5m, 3h20m, 7d11h."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600}h"


def cpu_preset_hint(cfg) -> str | None:
    """The one line a full StyleGAN2 preset on a CPU gets before training starts (None: nothing to say).

    cfg: the run's TrainConfig (model_cfg resolved). Quiet for other models, `--preset cpu` and small widths
    (a user who chose --channel-base/--channel-max themselves)."""
    if cfg.model != "stylegan2":
        return None
    from ..stylegan2.recipe import StyleGAN2Config, resolve  # noqa: PLC0415

    mc = resolve(StyleGAN2Config(**{k: v for k, v in cfg.model_cfg.items()
                                    if k in StyleGAN2Config.__dataclass_fields__}), cfg.size)
    if mc.preset == "cpu" or mc.channel_max <= 128:
        return None
    est = estimate(mc, cfg.size)
    kimg = cfg.kimg
    data = cfg.data if " " not in cfg.data else f"'{cfg.data}'"
    return (f"note: on this CPU --preset {mc.preset} at {cfg.size} px takes about {est.s_per_kimg:,.0f} s/kimg "
            f"(~{format_duration(est.eta_s(kimg))} for {kimg:g} kimg; measured in {est.measured_s:.0f} s); it is "
            f"a GPU configuration. Sized for a CPU: stylegan-anime train --data {data} --size {cfg.size} "
            f"--preset cpu --minutes 60")
