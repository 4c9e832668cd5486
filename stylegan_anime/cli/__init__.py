"""The `stylegan-anime` command: one module per command group, all registered on the click group `cli`.

  common.py   the group, user errors and exit codes, shared helpers
  train.py    train (its per-model flags come from the recipes' Config dataclasses)
  sample.py   generate, video, style-mixing, truncation, tags-grid
  data.py     prepare-data, import-checkpoint
  metrics.py  metrics, compare, download-inception
  bench.py    bench, bench-ops, doctor
  editing.py  project, directions, edit (StyleGAN2 W space)
  explore.py  explore (a local web page to browse a model)

User mistakes (bad flags, missing data, unreadable checkpoints) are one line on stderr, `error: ...`,
exit code 2, never a traceback. Ctrl-C during training saves a checkpoint and exits with 130.
A run that diverges (NaN/inf gradients for --max-skipped iterations in a row) exits with 3.
"""
from __future__ import annotations

import sys

import click

from ..training import console
from ..training.checkpoint import error_text
from . import bench, data, editing, explore, metrics, sample, train  # noqa: F401  (each registers its commands on `cli`)
from .common import USER_ERRORS, RankFailed, cli

__all__ = ["cli", "main"]


def main(argv: list[str] | None = None) -> None:
    """Console entry point: runs the click group, turning user mistakes into one-line errors (exit 2)."""
    # console.say: the line also goes to RUN/log.txt while a training run's log is open (closed at the end)
    try:
        code = cli.main(args=argv, prog_name="stylegan-anime", standalone_mode=False)
    except click.exceptions.Abort:
        console.say("aborted")
        sys.exit(130)
    except click.ClickException as e:  # bad flags, missing arguments, wrong types (exit 2); a failed rank (1)
        console.say(f"error: {e.format_message()}")
        sys.exit(e.exit_code if isinstance(e, RankFailed) else 2)
    except USER_ERRORS as e:
        console.say(f"error: {error_text(e)}")
        sys.exit(2)
    except BaseException as e:  # a bug, or Ctrl-C twice: the traceback as usual, and in RUN/log.txt
        if not isinstance(e, SystemExit):
            import traceback
            console.log(traceback.format_exc().rstrip())
        raise
    finally:
        console.end_command()
    sys.exit(code if isinstance(code, int) else 0)
