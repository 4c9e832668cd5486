"""`stylegan-anime project`, `directions`, `edit`: work in a StyleGAN2 checkpoint's W space.

    project     an image -> its latent (.npz), the found image, target | found side by side, the optimisation (mp4)
    directions  closed-form (SeFa) directions of the style layers -> .npz, one figure (+ mp4) per direction,
                and for labelled data which directions move the predicted hair / eye colour
    edit        seeds or a projected latent moved along a direction: a figure, an image + latent, or an mp4

The work is in stylegan_anime.tools.projector / .directions / .latents; bad input is one line, exit 2.
"""
from __future__ import annotations

from pathlib import Path

import click

from ..training.checkpoint import writing
from .common import cli, user_errors

checkpoint_option = click.option("--checkpoint", required=True,
                                 help="a StyleGAN2 checkpoint file, or a run folder (its newest checkpoint)")
device_option = click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda | cuda:N")


def _sampler(checkpoint: str, device: str):
    from ..generate import Sampler
    from ..tools import require_w_space

    sampler = Sampler(checkpoint, device=device)
    require_w_space(sampler, "this command")
    return sampler


def _out_dir(path: str) -> Path:
    out = Path(path)
    with writing(out):
        out.mkdir(parents=True, exist_ok=True)
    return out


# ------------------------------------------------------------------------------------------ project
@cli.command(epilog="""
\b
Examples:
  stylegan-anime project --checkpoint runs/00000-stylegan2-faces-64 --target me.png --outdir proj
  stylegan-anime project --checkpoint RUN --target me.png --mode w+ --steps 1000      # closer, less editable
  stylegan-anime project --checkpoint RUN --target me.png --vgg ~/vgg16.pt            # LPIPS distance
  stylegan-anime project --checkpoint RUN --target me.png --noise --distance pixels  # NVlabs-style noise maps, MSE
  stylegan-anime edit --checkpoint RUN --directions dirs.npz --latent proj/me.npz --direction 0 --output e.png
""")
@checkpoint_option
@click.option("--target", required=True, help="the image to project (centre-cropped and resized to the model's size)")
@click.option("--outdir", default="projected", show_default=True, type=click.Path(file_okay=False),
              help="writes NAME.npz (latent), NAME.png, NAME-compare.png, NAME.mp4 (NAME = the target's file name)")
@click.option("--mode", type=click.Choice(["w", "w+"]), default="w", show_default=True,
              help="w: one latent for every layer (editable); w+: one per layer (closer fit)")
@click.option("--steps", type=int, default=500, show_default=True, help="optimisation steps (NVlabs: 1000)")
@click.option("--distance", type=click.Choice(["d", "lpips", "pixels"]), default=None,
              help="d: the checkpoint's discriminator features + pixels; lpips: VGG16 LPIPS + pixels (needs "
                   "--vgg); pixels: MSE only [default: lpips with --vgg, else d]")
@click.option("--vgg", type=click.Path(dir_okay=False), default=None,
              help="stylegan2-ada-pytorch's VGG16 LPIPS file (vgg16.pt), never downloaded")
@click.option("--pixel-weight", type=float, default=1.0, show_default=True, help="weight of the pixel MSE term")
@click.option("--noise/--keep-noise", "optimize_noise", default=False,
              help="also optimise the noise maps (NVlabs' default), or keep the model's constant ones, which "
                   "edit and explore render with [default: keep-noise; docs/editing.md]")
@click.option("--lr", type=float, default=0.1, show_default=True, help="peak learning rate")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--video/--no-video", default=True, show_default=True, help="write the optimisation as an mp4")
@click.option("--progress/--no-progress", default=True, show_default=True)
@device_option
def project(checkpoint, target, outdir, mode, steps, distance, vgg, pixel_weight, optimize_noise, lr, seed, video,
            progress, device):
    """Find the latent of a target image in a StyleGAN2 checkpoint (stylegan2-ada-pytorch's projector)."""
    import numpy as np

    from ..imageio_utils import save_image
    from ..tools.latents import save_latent
    from ..tools.projector import (DiscriminatorFeatures, LPIPSFeatures, ProjectSettings, load_discriminator,
                                   load_target, project as run_projection, psnr)

    with user_errors():
        distance = distance or ("lpips" if vgg else "d")
        if distance == "lpips" and not vgg:
            raise ValueError("--distance lpips needs --vgg PATH (stylegan2-ada-pytorch's vgg16.pt)")
        if vgg and distance != "lpips":
            raise ValueError(f"--vgg is for --distance lpips, not {distance}")
        settings = ProjectSettings(steps=steps, mode=mode, lr=lr, optimize_noise=optimize_noise,
                                   pixel_weight=pixel_weight, seed=seed, frame_every=1 if video else 0).check()
        if not Path(target).is_file():
            raise ValueError(f"target image does not exist: {target}")
        sampler = _sampler(checkpoint, device)
        target_u8, target_t = load_target(target, sampler.G.img_resolution)
        dist = (LPIPSFeatures(vgg, sampler.device) if distance == "lpips"
                else DiscriminatorFeatures(load_discriminator(sampler, checkpoint)) if distance == "d" else None)
        out = _out_dir(outdir)
        result = run_projection(sampler, target_t, settings, dist, progress=progress)
        stem = Path(target).stem
        quality = psnr(result.image, target_u8)
        noise = {f"noise/{k}": v.numpy() for k, v in result.noise.items()}
        with writing(out / f"{stem}.npz", remove_partial=True):
            save_latent(out / f"{stem}.npz", result.ws, mode=mode, target=str(target), steps=steps,
                        distance=distance, psnr=quality, loss=result.losses[-1], **noise)
        with writing(out / f"{stem}.png", remove_partial=True):
            save_image(result.image, out / f"{stem}.png")
        with writing(out / f"{stem}-compare.png", remove_partial=True):
            save_image(np.concatenate([target_u8, result.image], axis=1), out / f"{stem}-compare.png")
        written = [f"{stem}.npz", f"{stem}.png", f"{stem}-compare.png"]
        if video:
            from ..tools.video import _write_mp4
            frames = (np.concatenate([target_u8, f], axis=1) for f in result.frames)
            with writing(out / f"{stem}.mp4", remove_partial=True):
                _write_mp4(frames, out / f"{stem}.mp4", fps=30)
            written.append(f"{stem}.mp4")
    click.echo(f"projected {target} ({mode}, {steps} steps, {distance}): PSNR {quality:.2f} dB; wrote "
               f"{', '.join(written)} in {out}", err=True)


# ------------------------------------------------------------------------------------------ directions
@cli.command(epilog="""
\b
Examples:
  stylegan-anime directions --checkpoint runs/00000-stylegan2-faces-64 --out dirs.npz --figures dirs
  stylegan-anime directions --checkpoint RUN --layers coarse --num 5 --out pose.npz --figures pose --video
  stylegan-anime directions --checkpoint runs/00001-stylegan2-demo-64 --out d.npz --tags-data demo
  stylegan-anime edit --checkpoint RUN --directions dirs.npz --direction 0 --seeds 0-3 --output d0.png
""")
@checkpoint_option
@click.option("--out", default="directions.npz", show_default=True, type=click.Path(dir_okay=False),
              help="the directions file (edit and explore read it)")
@click.option("--num", type=int, default=10, show_default=True, help="how many directions (strongest first)")
@click.option("--layers", default="all", show_default=True,
              help="style layers to factorise and edit: all, coarse (4-8 px), middle (16-32), fine (64+), "
                   "coarse+middle, or indices like 0-3")
@click.option("--figures", type=click.Path(file_okay=False), default=None,
              help="write direction-K.png here: rows = --seeds, columns = --steps")
@click.option("--seeds", default="0-4", show_default=True, help="rows of the figures")
@click.option("--steps", "steps_text", default="-3:3:7", show_default=True,
              help="columns of the figures, in standard deviations of w along the direction: start:stop:count or a list")
@click.option("--psi", type=float, default=0.7, show_default=True, help="truncation of the figures' seeds")
@click.option("--video/--no-video", default=False, show_default=True, help="with --figures: also direction-K.mp4")
@click.option("--tags-data", default=None,
              help="a labelled dataset (hair/eye tags; e.g. demo): report which directions move the predicted colours")
@device_option
def directions(checkpoint, out, num, layers, figures, seeds, steps_text, psi, video, tags_data, device):
    """Closed-form factorization (SeFa) of the style layers: the latent directions that change the image most."""
    from ..generate import parse_seeds
    from ..tools.directions import direction_figure, direction_video, find_directions, parse_steps

    with user_errors():
        steps = parse_steps(steps_text)
        seed_list = parse_seeds(seeds)
        if video and not figures:
            raise ValueError("--video writes beside the figures: give --figures DIR")
        sampler = _sampler(checkpoint, device)
        tags_ds = _tags_dataset(sampler, tags_data) if tags_data else None  # its mistakes before any work
        dirs = find_directions(sampler.G, layers, k=num)
        with writing(out, remove_partial=True):
            dirs.save(out, checkpoint=str(checkpoint), layer_spec=layers)
        click.echo(f"wrote {len(dirs)} directions of layers {layers} ({dirs.layers[0]}-{dirs.layers[-1]}) to {out}",
                   err=True)
        click.echo("direction  eigenvalue  sigma")
        for k in range(len(dirs)):
            click.echo(f"{k:9d}  {float(dirs.eigenvalues[k]):10.3f}  {float(dirs.sigma[k]):5.3f}")
        if figures:
            folder = _out_dir(figures)
            for k in range(len(dirs)):
                with writing(folder / f"direction-{k}.png", remove_partial=True):
                    direction_figure(sampler, dirs, k, folder / f"direction-{k}.png", seed_list, steps, psi)
                if video:
                    direction_video(sampler, dirs, k, folder / f"direction-{k}.mp4", seed_list,
                                    amount=max(abs(a) for a in steps), psi=psi)
            click.echo(f"wrote {len(dirs)} figures{' and videos' if video else ''} to {folder}", err=True)
        if tags_ds is not None:
            _tags_report(sampler, dirs, tags_ds)


def _tags_dataset(sampler, data: str):
    from ..data import open_dataset

    ds = open_dataset(data, sampler.G.img_resolution)
    if ds.labels is None or not ds.label_names:
        raise ValueError(f"--tags-data {data} has no hair/eye labels (prepare-data --labels makes a labelled pack)")
    return ds


def _tags_report(sampler, dirs, ds) -> None:
    from ..metrics.tagacc import train_classifier
    from ..tools.directions import tag_report

    classifier, holdout = train_classifier(ds, sampler.device, progress=True)
    rows = tag_report(sampler, dirs, classifier, ds.label_names)
    click.echo(f"tag classifier: held-out accuracy on reals {holdout:.3f}; predicted colours at -3 / +3 sigma "
               "(shift: total-variation distance of the mean prediction, 0-1; changed: share of images whose class flips)")
    groups = list(ds.label_names)
    click.echo("direction  " + "  ".join(f"{g:>28s}" for g in groups))
    for row in rows:
        cells = [f"{row[g]['minus']}->{row[g]['plus']} {row[g]['shift']:.2f}/{row[g]['changed']:.2f}" for g in groups]
        click.echo(f"{row['direction']:9d}  " + "  ".join(f"{c:>28s}" for c in cells))


# ------------------------------------------------------------------------------------------ edit
@cli.command(epilog="""
\b
Examples:
  stylegan-anime edit --checkpoint RUN --directions dirs.npz --direction 2 --seeds 0-3 --output d2.png
  stylegan-anime edit --checkpoint RUN --directions dirs.npz --direction 0 --latent proj/me.npz \\
      --amount 2 --output me-edited.png          # also writes me-edited.npz, the edited latent
  stylegan-anime edit --checkpoint RUN --directions dirs.npz --direction 1 --seeds 5 --video d1.mp4
""")
@checkpoint_option
@click.option("--directions", "directions_file", required=True, type=click.Path(dir_okay=False),
              help="a file written by `stylegan-anime directions`")
@click.option("--direction", type=int, required=True, help="which direction (0 = strongest)")
@click.option("--seeds", default=None, help="start from these seeds (e.g. 0-3)")
@click.option("--latent", type=click.Path(dir_okay=False), default=None,
              help="start from a projected latent (.npz from `project`, or stylegan2-ada-pytorch's projected_w.npz)")
@click.option("--amount", type=float, default=None,
              help="one edit, in standard deviations of w along the direction: writes the image(s) and latent(s)")
@click.option("--steps", "steps_text", default="-3:3:7", show_default=True,
              help="without --amount: columns of a figure (start:stop:count or a list)")
@click.option("--output", type=click.Path(dir_okay=False), default=None, help="PNG to write")
@click.option("--video", type=click.Path(dir_okay=False), default=None, help="mp4 sweeping -max..+max of --steps")
@click.option("--psi", type=float, default=1.0, show_default=True, help="truncation for --seeds")
@click.option("--noise", type=click.Choice(["const", "random", "none"]), default="const", show_default=True)
@device_option
def edit(checkpoint, directions_file, direction, seeds, latent, amount, steps_text, output, video, psi, noise, device):
    """Move seeds or a projected latent along a saved direction."""
    import numpy as np

    from ..generate import parse_seeds
    from ..imageio_utils import save_image
    from ..tools.directions import direction_figure, direction_video, edit_ws, load_directions, parse_steps
    from ..tools.latents import load_latent, render, save_latent, seed_ws

    with user_errors():
        if (seeds is None) == (latent is None):
            raise ValueError("give either --seeds or --latent")
        if output is None and video is None:
            raise ValueError("give --output PNG and/or --video MP4")
        if video is not None and amount == 0:
            raise ValueError("--video sweeps -amount..+amount: give a non-zero --amount (or none: the largest --steps)")
        steps = parse_steps(steps_text)
        sampler = _sampler(checkpoint, device)
        dirs = load_directions(directions_file, sampler.G)
        dirs.check_index(direction)
        seed_list = parse_seeds(seeds) if seeds is not None else []
        base = load_latent(latent, sampler.G) if latent is not None else seed_ws(sampler, seed_list, psi)
        if output is not None and amount is not None:
            edited = edit_ws(base.to(sampler.device), dirs, direction, amount)
            images = render(sampler, edited, noise)
            with writing(output, remove_partial=True):
                save_image(np.concatenate(list(images), axis=1), output)
            npz = Path(output).with_suffix(".npz")
            if len(images) == 1:
                with writing(npz, remove_partial=True):
                    save_latent(npz, edited[0], direction=direction, amount=amount, source=str(latent or seeds))
            click.echo(f"wrote {output}" + (f" and {npz}" if len(images) == 1 else ""), err=True)
        elif output is not None:
            with writing(output, remove_partial=True):
                direction_figure(sampler, dirs, direction, output, seed_list, steps, psi, noise, base_ws=base)
            click.echo(f"wrote {output}: rows = {'the latent' if latent else 'seeds ' + seeds}, columns = {steps_text}",
                       err=True)
        if video is not None:
            with writing(video, remove_partial=True):
                direction_video(sampler, dirs, direction, video, seed_list,
                                amount=abs(amount) if amount is not None else max(abs(a) for a in steps),
                                psi=psi, noise=noise, base_ws=base)
            click.echo(f"wrote {video}", err=True)
