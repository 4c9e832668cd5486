"""The error of a checkpoint that cannot be used: its own small module, so that the loader (checkpoint.py) and
the content check (checkpoint_check.py) both raise it without importing each other."""
from __future__ import annotations


class CheckpointError(ValueError):
    """A checkpoint that cannot be used (missing, unreadable, not ours): one-line message."""

    def __init__(self, message: str, reason: str | None = None):
        super().__init__(message)
        self.reason = reason or message  # what is wrong, without the file name
