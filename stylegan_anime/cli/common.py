"""What every `stylegan-anime` command module shares: the click group the commands register on, the user
errors `main` reports as one line (exit 2), the other exit codes, and `user_errors` for the tools' ValueErrors.
Command modules import from here (never from each other); `stylegan_anime.cli` imports them all.
"""
from __future__ import annotations

import contextlib

import click

from ..cuda_ops.backend import OpsUnavailableError
from ..data import DataError
from ..output_files import OutputExists
from ..stylegan2.official_import import ImportCheckpointError
from ..training.checkpoint import CheckpointError, WriteError
from ..training.config import ConfigError
from ..training.sanity import FirstStepError

# OpsUnavailableError: --ops cuda asked for plugins that failed to build or their self-test; FirstStepError: the
# first CUDA step gave non-finite losses or gradients (training/sanity.py). Both say what to do in one line.
USER_ERRORS = (ConfigError, DataError, CheckpointError, ImportCheckpointError, WriteError, OutputExists,
               OpsUnavailableError, FirstStepError)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="stylegan-anime")
def cli():
    """stylegan-anime: StyleGAN2-first GAN trainer for anime faces, with DCGAN/WGAN/WGAN-GP baselines.

    \b
    Examples:
      stylegan-anime train --data ~/faces --size 128 --outdir runs        # StyleGAN2, auto preset
      stylegan-anime train --data demo --size 64 --model dcgan --dim 32 --kimg 5
      stylegan-anime train --resume auto --outdir runs --kimg 200
      stylegan-anime generate --checkpoint runs/00000-stylegan2-faces-128 --seeds 0-63 --grid grid.png
      stylegan-anime prepare-data ~/faces.zip faces-64 --size 64
      stylegan-anime import-checkpoint network-snapshot-025000.pkl anime.pt
      stylegan-anime prepare-data ~/illustrations faces-64 --size 64 --crop-faces
      stylegan-anime project --checkpoint RUN --target me.png --outdir proj
      stylegan-anime directions --checkpoint RUN --out dirs.npz --figures dirs
      stylegan-anime explore --checkpoint RUN --directions dirs.npz      # http://127.0.0.1:8000
    """


class RankFailed(click.ClickException):
    """A process of a torchrun launch stopped because another one failed (exit 1, not a user error)."""
    exit_code = 1


EXIT_DIVERGED = 3  # training diverged (trainer.Diverged): nothing saved after the last good checkpoint
EXIT_INTERRUPTED = 130  # Ctrl-C / SIGTERM: stopped after saving a checkpoint (128 + SIGINT, as a shell reports)


@contextlib.contextmanager
def user_errors():
    """The tools raise ValueError for bad input: report it as a user mistake (one line, exit 2)."""
    try:
        yield
    except ValueError as e:
        raise ConfigError(str(e).splitlines()[0] if str(e) else type(e).__name__) from None
