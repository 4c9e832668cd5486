"""Reports made from a trained checkpoint or run folders: what a user looks at or hands in.

    video       render_video: z-slerp / w-lerp / looping interpolation videos (.mp4 H.264 or .gif)
    figures     style_mixing_figure, truncation_figure (StyleGAN2 only)
    tags        tag conditions for sampling and the hair x eye grid of tag-conditional models
    compare     load_run, compare_runs, format_table, plot_runs: runs side by side
    reference   the reference protocol of docs/quality.md (several models, one budget)
    submission  write_submission: 1.jpg ... N.jpg plus an optional .tgz (the NTU HW6 layout)

W-space editing (latents, projection, directions) is its own package, stylegan_anime.editing.

Every function raises ValueError with a one-line message on bad input (so the CLI and the `tools/*.py`
scripts print `error: ...` and exit 2); heavy optional imports (TensorBoard, matplotlib, ffmpeg) happen
inside the functions that need them.
"""
from __future__ import annotations

# The reports, imported on first use (PEP 562) so that `--help` of the scripts does not load torch.
_EXPORTS = {
    "MODES": "video", "latent_path": "video", "parse_grid": "video", "render_video": "video",
    "video_frames": "video",
    "style_mixing_figure": "figures", "truncation_figure": "figures",
    "compare_runs": "compare", "expand_run_dirs": "compare", "format_table": "compare", "load_run": "compare",
    "plot_runs": "compare",
    "Submission": "submission", "write_submission": "submission",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
