"""User tools on top of a trained checkpoint or run folder.

    video       render_video: z-slerp / w-lerp / looping interpolation videos (.mp4 H.264 or .gif)
    figures     style_mixing_figure, truncation_figure (StyleGAN2 only)
    compare     load_run, compare_runs, format_table, plot_runs: runs side by side
    submission  write_submission: 1.jpg ... N.jpg plus an optional .tgz (the NTU HW6 layout)
    latents     W-space plumbing: seed ws, layer groups, mixing, rendering, latent files (StyleGAN2)
    directions  closed-form (SeFa) directions, edits along them, their figures, videos and tag report
    projector   project: an image -> its latent (stylegan2-ada-pytorch's method, no download needed)

Every function raises ValueError with a one-line message on bad input (so the CLI and the `tools/*.py`
scripts print `error: ...` and exit 2); heavy optional imports (TensorBoard, matplotlib, ffmpeg) happen
inside the functions that need them.
"""
from __future__ import annotations

import sys


def has_w_space(sampler) -> bool:
    """True for a StyleGAN2 generator (mapping + synthesis networks), False for the z-only baselines."""
    G = sampler.G
    return hasattr(G, "mapping") and hasattr(G, "synthesis") and hasattr(G, "num_ws")


def model_name(sampler) -> str:
    return getattr(getattr(sampler, "config", None), "model", None) or type(sampler.G).__name__


def require_w_space(sampler, what: str) -> None:
    if not has_w_space(sampler):
        raise ValueError(f"{what} needs a StyleGAN2 checkpoint (W space); this one is {model_name(sampler)}, "
                         f"which has only z")


def run_click(command, argv: list[str] | None = None, prog_name: str | None = None) -> None:
    """Run a click command the way `stylegan-anime` does: user mistakes (bad flags, ValueError from the
    tools, unreadable checkpoints) become one line `error: ...` on stderr and exit code 2, no traceback."""
    import click

    try:
        code = command.main(args=argv, prog_name=prog_name, standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        click.echo(f"error: {e.format_message()}", err=True)
        sys.exit(2)
    except (ValueError, OSError) as e:  # ConfigError, CheckpointError and WriteError are ValueErrors
        click.echo(f"error: {error_line(e)}", err=True)
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)


def error_line(e: BaseException) -> str:
    """One line for `error: ...`: the first non-blank line of the message, else the exception's type name
    (`EOFError()` has no message; a message may start with a newline)."""
    try:
        text = str(e)
    except Exception:  # noqa: BLE001 - a broken __str__ must not break the error report
        text = ""
    return next((line.strip() for line in text.splitlines() if line.strip()), type(e).__name__)


# The tools, imported on first use (PEP 562) so that `--help` of the scripts does not load torch.
_EXPORTS = {
    "MODES": "video", "latent_path": "video", "parse_grid": "video", "render_video": "video",
    "video_frames": "video",
    "parse_layers": "figures", "style_mixing_figure": "figures", "truncation_figure": "figures",
    "compare_runs": "compare", "expand_run_dirs": "compare", "format_table": "compare", "load_run": "compare",
    "plot_runs": "compare",
    "Submission": "submission", "write_submission": "submission",
}

__all__ = sorted([*_EXPORTS, "error_line", "has_w_space", "run_click"])


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
