"""Writing a command's outputs without ever overwriting what the user owns.

Every file a command produces (images, latents, videos, figures, explore saves) is written to a temporary
file in the same folder and then moved into place with a *no-clobber* link: if anything already exists at
the destination — the user's own picture, a file planted there, a symlink pointing elsewhere — the move
fails instead of replacing it, and nothing outside the destination is ever touched (a symlink at the
destination is not followed: the temp file is created with O_EXCL and linked, not opened through it).

    with new_output(path) as tmp:      # tmp: a fresh file name beside path
        image.save(tmp, format="PNG")  # write it whole
    # -> path now holds the bytes; OutputExists if path existed (tmp removed)

    free_name(path)                    # path, or path with -1, -2 ... before the suffix when taken

`OutputExists` is a user-facing error (one line, exit 2 at the CLI).
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["OutputExists", "new_output", "free_name", "claim_paths"]


class OutputExists(FileExistsError):
    """The destination exists: this command will not overwrite a file it did not create."""

    def __init__(self, path: str | os.PathLike, hint: str = ""):
        msg = f"{path} already exists; not overwriting it" + (f" ({hint})" if hint else "")
        super().__init__(msg)
        self.path = Path(path)

    def __str__(self) -> str:
        return self.args[0]


def _exists(path: Path) -> bool:
    return os.path.lexists(path)  # a dangling symlink counts as taken


def free_name(path: str | os.PathLike, taken: set | None = None) -> Path:
    """`path` if nothing is there, else the first free NAME-1.EXT, NAME-2.EXT ... (also avoiding `taken`)."""
    path = Path(path)
    taken = taken or set()
    if not _exists(path) and path not in taken:
        return path
    for i in range(1, 1_000_000):
        cand = path.with_name(f"{path.stem}-{i}{path.suffix}")
        if not _exists(cand) and cand not in taken:
            return cand
    raise OutputExists(path, "no free numbered name")


def claim_paths(paths, hint: str = "") -> None:
    """OutputExists for the first of `paths` that already exists: check every output before any work."""
    for p in paths:
        if _exists(Path(p)):
            raise OutputExists(p, hint)


@contextlib.contextmanager
def new_output(path: str | os.PathLike, hint: str = ""):
    """Yield a temporary path beside `path`; after the block, move it to `path` unless `path` exists
    (OutputExists, the temp file removed). An error inside the block removes the temp file."""
    path = Path(path)
    if _exists(path):
        raise OutputExists(path, hint)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = None
    for i in range(1000):
        cand = path.with_name(f".{path.name}.{os.getpid()}.{i}.tmp{path.suffix}")
        try:
            fd = os.open(cand, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            continue
        os.close(fd)
        tmp = cand
        break
    if tmp is None:
        raise OutputExists(path, "no free temporary name")
    try:
        yield tmp
        try:
            os.link(tmp, path)  # fails with EEXIST if anything (even a symlink) is at path: never clobbers
        except FileExistsError:
            raise OutputExists(path, hint) from None
        except OSError:  # a file system without hard links (some FUSE / SMB mounts): check, then rename
            if _exists(path):
                raise OutputExists(path, hint) from None
            os.rename(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
