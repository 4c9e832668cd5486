"""`stylegan-anime project`, `directions`, `edit`: work in a StyleGAN2 checkpoint's W space.

    project     an image -> its latent (.npz), the found image, target | found side by side, the optimisation (mp4)
    directions  closed-form (SeFa) directions of the style layers -> .npz, one figure (+ mp4) per direction,
                and for labelled data which directions move the predicted hair / eye colour
    edit        seeds or a projected latent moved along a direction: a figure, an image + latent, or an mp4

The work is in stylegan_anime.editing.projector / .directions / .latents; bad input is one line, exit 2.
Every figure is labelled (tools.figure_labels) with faces at --face-px (default 256, or the model's size if
larger), videos too. No output is ever written over an existing file: all of a command's output paths are
claimed before any work (OutputExists, one line), and each is written through output_files.new_output.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

import click

from ..output_files import OutputExists, claim_paths, new_output
from ..training.checkpoint import writing
from .common import cli, user_errors

checkpoint_option = click.option("--checkpoint", required=True,
                                 help="a StyleGAN2 checkpoint file, or a run folder (its newest checkpoint)")
device_option = click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda | cuda:N")


def _sampler(checkpoint: str, device: str):
    from ..generate import Sampler
    from ..editing import require_w_space

    sampler = Sampler(checkpoint, device=device)
    require_w_space(sampler, "this command")
    return sampler


face_px_option = click.option("--face-px", type=int, default=None,
                              help="draw every face this many pixels wide in figures and videos "
                                   "[default: 256, or the model's size if larger]")
CLAIM_HINT = "give another name, or move that file away"


def _out_dir(path: str) -> Path:
    out = Path(path)
    with writing(out):
        out.mkdir(parents=True, exist_ok=True)
    return out


def _claim(paths) -> None:
    """Before any work: OutputExists for an output path that is taken; ValueError for one given twice."""
    paths = [Path(p) for p in paths]
    seen = set()
    for p in paths:
        key = p.resolve() if p.parent.exists() else p.absolute()
        if key in seen:
            raise ValueError(f"{p} is named for two outputs; give each its own name")
        seen.add(key)
    claim_paths(paths, CLAIM_HINT)


@contextlib.contextmanager
def _guard(path):
    """writing(path): an OSError in the block becomes a one-line WriteError, except OutputExists (itself an
    OSError), which stays itself; nothing at path is ever removed."""
    taken = []
    with writing(path):
        try:
            yield
        except OutputExists as e:
            taken.append(e)
    if taken:
        raise taken[0]


@contextlib.contextmanager
def _written(path):
    """_guard(path) around new_output(path): yields the temporary file beside path, linked into place after."""
    with _guard(path), new_output(path, CLAIM_HINT) as tmp:
        yield tmp


# ------------------------------------------------------------------------------------------ project
@cli.command(epilog="""
\b
Examples:
  stylegan-anime project --checkpoint runs/00000-stylegan2-faces-64 --target me.png --outdir proj
  stylegan-anime project --checkpoint RUN --target me.png --mode w+ --steps 1000      # closer, less editable
  stylegan-anime project --checkpoint RUN --target me.png --vgg ~/vgg16.pt            # LPIPS distance
  stylegan-anime project --checkpoint RUN --target me.png --noise --distance pixels  # NVlabs-style noise maps, MSE
  stylegan-anime edit --checkpoint RUN --directions dirs.npz --latent proj/me-projected.npz --direction 0 --output e.png
""")
@checkpoint_option
@click.option("--target", required=True, help="the image to project (centre-cropped and resized to the model's size)")
@click.option("--outdir", default="projected", show_default=True, type=click.Path(file_okay=False),
              help="writes NAME-projected.npz (latent), NAME-projected.png, NAME-compare.png (labelled, with the "
                   "PSNR), NAME-projected.mp4 (NAME = the target's file name); never over an existing file")
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
@face_px_option
@device_option
def project(checkpoint, target, outdir, mode, steps, distance, vgg, pixel_weight, optimize_noise, lr, seed, video,
            progress, face_px, device):
    """Find the latent of a target image in a StyleGAN2 checkpoint (stylegan2-ada-pytorch's projector)."""
    from ..imageio_utils import save_image
    from ..figure_labels import face_size
    from ..editing.latents import save_latent
    from ..editing.projector import (DiscriminatorFeatures, LPIPSFeatures, ProjectSettings, load_discriminator,
                                   load_target, project as run_projection, projection_compare, projection_frames,
                                   projection_names, psnr)

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
        face_size(face_px, 1)
        names = projection_names(target, outdir, video)   # never the target's own name
        _claim(names.values())                            # before the checkpoint is even read
        sampler = _sampler(checkpoint, device)
        target_u8, target_t = load_target(target, sampler.G.img_resolution)
        dist = (LPIPSFeatures(vgg, sampler.device) if distance == "lpips"
                else DiscriminatorFeatures(load_discriminator(sampler, checkpoint)) if distance == "d" else None)
        _out_dir(outdir)
        result = run_projection(sampler, target_t, settings, dist, progress=progress)
        quality = psnr(result.image, target_u8)
        noise = {f"noise/{k}": v.numpy() for k, v in result.noise.items()}
        with _written(names["latent"]) as tmp:
            save_latent(tmp, result.ws, mode=mode, target=str(target), steps=steps, distance=distance, psnr=quality,
                        loss=result.losses[-1], **noise)
        with _written(names["image"]) as tmp:
            save_image(result.image, tmp)
        caption = f"{Path(target).name}: {mode}, {steps} steps, {distance} distance"
        with _written(names["compare"]) as tmp:
            save_image(projection_compare(target_u8, result.image, quality, caption, face_px).image, tmp)
        if video:
            from ..imageio_utils import write_mp4
            with _written(names["video"]) as tmp:
                write_mp4(projection_frames(target_u8, result.frames, face_px), tmp, fps=30)
    click.echo(f"projected {target} ({mode}, {steps} steps, {distance}): PSNR {quality:.2f} dB; wrote "
               f"{', '.join(p.name for p in names.values())} in {outdir}", err=True)


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
@click.option("--psi", type=float, default=0.7, show_default=True,
              help="truncation of the figures' seeds, in [-2, 2] (1: none, 0: the average face)")
@click.option("--video/--no-video", default=False, show_default=True, help="with --figures: also direction-K.mp4")
@click.option("--tags-data", default=None,
              help="a labelled dataset (hair/eye tags; e.g. demo): report which directions move the predicted colours")
@face_px_option
@device_option
def directions(checkpoint, out, num, layers, figures, seeds, steps_text, psi, video, tags_data, face_px, device):
    """Closed-form factorization (SeFa) of the style layers: the latent directions that change the image most.

    Each figure direction-K.png is labelled: its title names the direction and its layers, a row per seed,
    a column per amount (in sigma, the standard deviation of w along the direction)."""
    from ..generate import parse_seeds
    from ..editing.directions import direction_figure, direction_video, find_directions, parse_steps
    from ..figure_labels import face_size
    from ..number_checks import check_psi

    with user_errors():
        steps = parse_steps(steps_text)
        seed_list = parse_seeds(seeds)
        psi = check_psi(psi)
        face_size(face_px, 1)
        if video and not figures:
            raise ValueError("--video writes beside the figures: give --figures DIR")
        _claim([out])
        sampler = _sampler(checkpoint, device)
        tags_ds = _tags_dataset(sampler, tags_data) if tags_data else None  # its mistakes before any work
        dirs = find_directions(sampler.G, layers, k=num)                    # checks --num against w_dim
        folder = Path(figures) if figures else None
        _claim([out] + ([folder / f"direction-{k}.{ext}" for k in range(len(dirs))
                         for ext in (("png", "mp4") if video else ("png",))] if folder else []))
        with _guard(out):
            dirs.save(out, checkpoint=str(checkpoint), layer_spec=layers)
        click.echo(f"wrote {len(dirs)} directions of layers {layers} ({dirs.layers[0]}-{dirs.layers[-1]}) to {out}",
                   err=True)
        click.echo("direction  eigenvalue  sigma")
        for k in range(len(dirs)):
            click.echo(f"{k:9d}  {float(dirs.eigenvalues[k]):10.3f}  {float(dirs.sigma[k]):5.3f}")
        if figures:
            folder = _out_dir(figures)
            for k in range(len(dirs)):
                with _guard(folder / f"direction-{k}.png"):
                    direction_figure(sampler, dirs, k, folder / f"direction-{k}.png", seed_list, steps, psi,
                                     face_px=face_px)
                if video:
                    with _guard(folder / f"direction-{k}.mp4"):
                        direction_video(sampler, dirs, k, folder / f"direction-{k}.mp4", seed_list,
                                        amount=max(abs(a) for a in steps), psi=psi, face_px=face_px)
            click.echo(f"wrote {len(dirs)} figures{' and videos' if video else ''} to {folder}: rows = seeds "
                       f"{seeds}, columns = {steps_text} sigma", err=True)
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
    from ..editing.directions import tag_report

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
  stylegan-anime edit --checkpoint RUN --directions dirs.npz --direction 0 --latent proj/me-projected.npz \\
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
              help="one edit, in standard deviations of w along the direction (|amount| <= 100): writes the "
                   "image(s) and latent(s)")
@click.option("--steps", "steps_text", default="-3:3:7", show_default=True,
              help="without --amount: columns of a figure (start:stop:count or a list)")
@click.option("--output", type=click.Path(dir_okay=False), default=None,
              help="PNG to write: with --amount the edited image(s) (+ NAME.npz for one), else a labelled figure "
                   "(rows = seeds or the latent, columns = --steps); never over an existing file")
@click.option("--video", type=click.Path(dir_okay=False), default=None, help="mp4 sweeping -max..+max of --steps")
@click.option("--psi", type=float, default=1.0, show_default=True, help="truncation for --seeds, in [-2, 2]")
@click.option("--noise", type=click.Choice(["const", "random", "none"]), default="const", show_default=True)
@face_px_option
@device_option
def edit(checkpoint, directions_file, direction, seeds, latent, amount, steps_text, output, video, psi, noise,
         face_px, device):
    """Move seeds or a projected latent along a saved direction."""
    import numpy as np

    from ..generate import parse_seeds
    from ..imageio_utils import save_image
    from ..editing.directions import direction_figure, direction_video, edit_ws, load_directions, parse_steps
    from ..figure_labels import face_size
    from ..editing.latents import load_latent, render, save_latent, seed_ws
    from ..number_checks import check_amount, check_psi

    with user_errors():
        if (seeds is None) == (latent is None):
            raise ValueError("give either --seeds or --latent")
        if output is None and video is None:
            raise ValueError("give --output PNG and/or --video MP4")
        if amount is not None:
            amount = check_amount(amount)
        if video is not None and amount == 0:
            raise ValueError("--video sweeps -amount..+amount: give a non-zero --amount (or none: the largest --steps)")
        psi = check_psi(psi)
        face_size(face_px, 1)
        steps = parse_steps(steps_text)
        seed_list = parse_seeds(seeds) if seeds is not None else []
        latent_npz = Path(output).with_suffix(".npz") if output is not None and amount is not None else None
        one_image = latent is not None or len(seed_list) == 1
        _claim([p for p in (output, latent_npz if one_image else None, video) if p is not None])
        sampler = _sampler(checkpoint, device)
        dirs = load_directions(directions_file, sampler.G)
        dirs.check_index(direction)
        base = load_latent(latent, sampler.G) if latent is not None else seed_ws(sampler, seed_list, psi)
        if output is not None and amount is not None:
            edited = edit_ws(base.to(sampler.device), dirs, direction, amount)
            images = render(sampler, edited, noise)
            with _written(output) as tmp:
                save_image(np.concatenate(list(images), axis=1), tmp)
            if len(images) == 1:
                with _written(latent_npz) as tmp:
                    save_latent(tmp, edited[0], direction=direction, amount=amount, source=str(latent or seeds))
            click.echo(f"wrote {output}" + (f" and {latent_npz}" if len(images) == 1 else ""), err=True)
        elif output is not None:
            with _guard(output):
                direction_figure(sampler, dirs, direction, output, seed_list, steps, psi, noise,
                                 base_ws=base if latent else None, face_px=face_px,
                                 row_names=[Path(latent).name] if latent else None)
            click.echo(f"wrote {output}: rows = {'the latent' if latent else 'seeds ' + seeds}, columns = {steps_text} "
                       "sigma", err=True)
        if video is not None:
            with _guard(video):
                direction_video(sampler, dirs, direction, video, seed_list,
                                amount=abs(amount) if amount is not None else max(abs(a) for a in steps),
                                psi=psi, noise=noise, base_ws=base, face_px=face_px)
            click.echo(f"wrote {video}", err=True)
