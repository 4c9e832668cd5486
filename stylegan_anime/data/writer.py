"""Write a pack whose image count is known only at the end (face crops: an illustration gives 0..n faces).

    with PackWriter(out, size, meta) as w:     # `out` locked (one writer), a locked temp dir beside it
        w.add(img)                             # uint8 [S,S,3], appended to images.npy at once (npy_stream.py)
        w.meta["crops"] = [...]
    # on success: images.npy + dataset.json moved into place at `out` (an existing pack there is replaced);
    # on any exception: the temp dir is removed and `out` is untouched.
    # a second writer of `out` meanwhile: OutputLocked ('OUT is being written by another prepare-data (pid N)').

The pack format and its crash-safety rules are those of packed.py (which builds packs of known size).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile

import numpy as np

from .errors import DataError
from .npy_stream import NpyAppender
from .output_lock import OutputLock
from .packed import (FORMAT_NAME, FORMAT_VERSION, IMAGES_FILE, META_FILE, TEMP_LOCK, _install, _is_empty_dir,
                     _lock_temp, _writing, is_packed_dir, load_packed, remove_stale_temps)

WRITE_HINT = "choose an output folder you can write to"


class PackWriter:
    def __init__(self, out: str | os.PathLike, size: int, meta: dict):
        out = os.path.abspath(os.path.expanduser(os.fspath(out)))
        self.out, self.size, self.meta, self.count = out, int(size), dict(meta), 0
        self._tmp = self._fd = self._npy = self._lock = None

    def __enter__(self) -> "PackWriter":
        parent = os.path.dirname(self.out)
        try:
            with _writing(parent, WRITE_HINT):
                os.makedirs(parent, exist_ok=True)
                self._lock = OutputLock(self.out).acquire()  # one writer per output
                if os.path.lexists(self.out) and not (is_packed_dir(self.out) or _is_empty_dir(self.out)):
                    raise DataError(f"refusing to overwrite {self.out}: it exists and is not a packed dataset")
                remove_stale_temps(parent, os.path.basename(self.out))
                self._tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(self.out)}.tmp-", dir=parent)
                self._fd = _lock_temp(self._tmp)
                self._npy = NpyAppender(os.path.join(self._tmp, IMAGES_FILE), (self.size, self.size, 3))
        except BaseException:
            self._cleanup()
            raise
        return self

    def add(self, img: np.ndarray) -> int:
        """Append one uint8 [S,S,3] image (written at once: memory does not grow with the count); its row index."""
        if img.shape != (self.size, self.size, 3) or img.dtype != np.uint8:
            raise ValueError(f"expected uint8 {(self.size, self.size, 3)}, got {img.dtype} {img.shape}")
        with _writing(self._tmp, WRITE_HINT):
            self._npy.append(img)
        self.count += 1
        return self.count - 1

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                with _writing(self._tmp, WRITE_HINT):
                    self._finish()
        finally:
            self._cleanup()

    def _finish(self) -> None:
        self._npy.close()  # the header gets the final count
        if self.count == 0:
            raise DataError("nothing to pack: no image was kept")
        meta = {"format": FORMAT_NAME, "version": FORMAT_VERSION, **self.meta, "count": self.count,
                "size": self.size}
        with open(os.path.join(self._tmp, META_FILE), "w", encoding="utf-8") as f:
            json.dump(meta, f, separators=(",", ":"))
            f.flush()
            os.fsync(f.fileno())
        os.unlink(os.path.join(self._tmp, TEMP_LOCK))  # not part of the pack (the open fd keeps the lock)
        _install(self._tmp, self.out, replace_existing=True)
        self._tmp = None
        load_packed(self.out)  # validate what we wrote

    def _cleanup(self) -> None:
        if self._npy is not None:
            self._npy.abort()
            self._npy = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None
