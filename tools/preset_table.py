"""The StyleGAN2 presets at every size they apply to: resolved values and G/D parameter counts (markdown).

    python tools/preset_table.py > table.md

The counts are those of this project's networks; tests/test_high_res.py checks them against stylegan2-ada-pytorch's
own networks (when its checkout is present) and the two counts NVlabs states (config F at 1024 px, paper256).
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    import torch

    from stylegan_anime.stylegan2.discriminator import Discriminator
    from stylegan_anime.stylegan2.generator import Generator
    from stylegan_anime.stylegan2.recipe import PRESET_SIZES, StyleGAN2Config, network_kwargs, resolve
    from stylegan_anime.training.config import SIZES

    torch.set_grad_enabled(False)
    print("| preset | size | batch | mbstd | channel_base | lr | gamma | EMA kimg | mapping | D arch | G params | "
          "D params |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for preset in ("auto", "stylegan2", "paper256", "paper512", "paper1024", "cifar", "cpu"):
        for res in ([PRESET_SIZES[preset]] if preset in PRESET_SIZES else SIZES):
            cfg = resolve(StyleGAN2Config(preset=preset, num_classes=10 if preset == "cifar" else 0), res)
            G_kwargs, D_kwargs = network_kwargs(cfg, res, cfg.num_classes)
            G, D = Generator(**G_kwargs), Discriminator(**D_kwargs)
            count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
            print(f"| {preset} | {res} | {cfg.batch} | {cfg.mbstd_group} | {cfg.channel_base} | {cfg.lr:g} | "
                  f"{cfg.gamma:.4g} | {cfg.ema_kimg:g} | {cfg.map_layers} | {cfg.d_architecture} | "
                  f"{count(G):,} | {count(D):,} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
