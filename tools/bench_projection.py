"""Measure `stylegan-anime project`: the model's own samples projected back (the true latent is known) and real
images, for each mode / distance / noise setting. Prints a markdown table: PSNR of the found image against the
target, the mean per-layer distance between the found and the true w (beside the distance from the start,
w_avg), and seconds per image (wall and CPU). Also writes target | found strips with --figures.

    python tools/bench_projection.py --checkpoint RUN --reals ~/faces.zip --steps 500
    python tools/bench_projection.py --checkpoint RUN --configs w:d:opt,w:pixels:opt --seeds 100-103
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import click
import numpy as np


def _configs(text: str) -> list[tuple[str, str, bool]]:
    out = []
    for part in text.split(","):
        mode, dist, noise = part.strip().split(":")
        if mode not in ("w", "w+") or dist not in ("d", "pixels") or noise not in ("opt", "keep"):
            raise ValueError(f"--configs: {part!r} is not MODE:DISTANCE:NOISE (w|w+ : d|pixels : opt|keep)")
        out.append((mode, dist, noise == "keep"))
    return out


@click.command()
@click.option("--checkpoint", required=True, help="a StyleGAN2 checkpoint file or run folder")
@click.option("--seeds", default="100-103", show_default=True, help="own samples to project back (psi 1)")
@click.option("--reals", default=None, help="a dataset (folder, zip, pack) whose images are projected too")
@click.option("--real-count", type=int, default=4, show_default=True)
@click.option("--real-offset", type=int, default=1000, show_default=True, help="first real image index")
@click.option("--steps", type=int, default=500, show_default=True)
@click.option("--configs", default="w:d:opt,w:d:keep,w+:d:opt,w:pixels:opt,w+:pixels:opt", show_default=True,
              help="MODE:DISTANCE:NOISE list (noise: opt = optimise the maps, keep = the model's constant ones)")
@click.option("--figures", type=click.Path(file_okay=False), default=None, help="write target | found PNGs here")
@click.option("--device", default="cpu", show_default=True)
def main(checkpoint, seeds, reals, real_count, real_offset, steps, configs, figures, device):
    import torch

    from stylegan_anime.data import open_dataset
    from stylegan_anime.generate import Sampler, parse_seeds
    from stylegan_anime.imageio_utils import save_image
    from stylegan_anime.one_line import error_line
    from stylegan_anime.editing.latents import render, seed_ws, w_avg_ws
    from stylegan_anime.editing.projector import (DiscriminatorFeatures, ProjectSettings, load_discriminator,
                                                project, psnr)

    try:
        runs = _configs(configs)
        s = Sampler(checkpoint, device=device)
        D = load_discriminator(s, checkpoint)
        R = s.G.img_resolution
        own = [(f"seed{k}", render(s, ws, "const")[0], ws.cpu()) for k in parse_seeds(seeds)
               for ws in [seed_ws(s, [k])]]
        real = []
        if reals:
            ds = open_dataset(reals, R, progress=False)
            real = [(f"real{i}", np.array(ds.images[i]), None) for i in range(real_offset, real_offset + real_count)]
    except (ValueError, OSError) as e:
        click.echo(f"error: {error_line(e)}", err=True)
        sys.exit(2)
    start = w_avg_ws(s)
    start_img = render(s, start, "const")[0]
    start_dist = np.mean([(start[0] - ws[0]).norm(dim=1).mean().item() for _, _, ws in own])
    click.echo(f"{checkpoint}: {R} px, w_dim {s.G.w_dim}, {s.G.num_ws} layers; {steps} steps; start (w_avg): PSNR "
               f"{np.mean([psnr(start_img, t) for _, t, _ in own]):.1f} dB on own samples"
               + (f", {np.mean([psnr(start_img, t) for _, t, _ in real]):.1f} dB on reals" if real else "")
               + f", w distance {start_dist:.1f}")
    click.echo("| mode | distance | noise maps | PSNR own (dB) | w distance own | PSNR reals (dB) | s / image (CPU s) |")
    click.echo("|---|---|---|---|---|---|---|")
    for mode, dist, keep in runs:
        ps_own, wd, ps_real, wall, cpu = [], [], [], [], []
        for name, u8, ws_true in own + real:
            target = torch.from_numpy(u8).permute(2, 0, 1)[None].float() / 127.5 - 1
            t, c = time.perf_counter(), time.process_time()
            p = project(s, target, ProjectSettings(steps=steps, mode=mode, optimize_noise=not keep, frame_every=0),
                        distance=DiscriminatorFeatures(D) if dist == "d" else None, progress=False)
            wall.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
            (ps_own if ws_true is not None else ps_real).append(psnr(p.image, u8))
            if ws_true is not None:
                wd.append((p.ws[0] - ws_true[0]).norm(dim=1).mean().item())
            if figures:
                Path(figures).mkdir(parents=True, exist_ok=True)
                save_image(np.concatenate([u8, p.image], 1),
                           Path(figures) / f"{mode}-{dist}-{'keep' if keep else 'opt'}-{name}.png")
        real_cell = f"{np.mean(ps_real):.1f}" if ps_real else "-"
        click.echo(f"| {mode.upper()} | {dist} | {'kept' if keep else 'optimised'} | {np.mean(ps_own):.1f} | "
                   f"{np.mean(wd):.1f} | {real_cell} | {np.mean(wall):.1f} ({np.mean(cpu):.1f}) |")


if __name__ == "__main__":
    main()
