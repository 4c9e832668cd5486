"""One ``prepare-data`` per output: an exclusive flock on ``.NAME.lock`` beside the output folder ``NAME``.

    with OutputLock(out):      # OutputLocked('OUT is being written by another prepare-data (pid N)') if taken
        ...build, then move the pack into place...

The lock sits beside the output, not in it, because a finished pack replaces the output folder whole. The
kernel drops the lock when its holder dies (even kill -9), so a left-over file never blocks. On release the
file is removed; a process that locked a file which was removed meanwhile notices (the path no longer names the
inode it holds) and tries again, so two writers can never hold two different lock files of one output.
"""
from __future__ import annotations

import errno
import fcntl
import os

from .errors import DataError

WHO = "prepare-data"


class OutputLocked(DataError):
    """Another live process writes this output."""


def lock_path(out: str) -> str:
    """``DIR/.NAME.lock`` for output ``DIR/NAME``."""
    return os.path.join(os.path.dirname(out), f".{os.path.basename(out)}.lock")


class OutputLock:
    def __init__(self, out: str | os.PathLike):
        self.out = os.path.abspath(os.fspath(out))
        self.path = lock_path(self.out)
        self._fd: int | None = None

    def acquire(self) -> "OutputLock":
        for _ in range(100):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                holder = _read_pid(fd)
                os.close(fd)
                if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise OutputLocked(f"{self.out} is being written by another {WHO} "
                                       f"(pid {holder or 'unknown'}); wait for it to finish or stop it") from None
                return self  # no flock on this file system (ENOLCK ...): go on without a lock
            if not _same_file(fd, self.path):  # the holder removed it between our open and flock: again
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            self._fd = fd
            return self
        raise OutputLocked(f"cannot lock {self.path}: it keeps being replaced")  # pragma: no cover

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            if _same_file(fd, self.path):
                os.unlink(self.path)  # while still locked: nobody can take a lock on it any more
        except OSError:
            pass
        os.close(fd)

    def __enter__(self) -> "OutputLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _same_file(fd: int, path: str) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _read_pid(fd: int) -> str:
    try:
        text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return text if text.isdigit() else ""
