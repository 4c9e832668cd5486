"""Write a pack whose image count is known only at the end (face crops: an illustration gives 0..n faces).

    with PackWriter(out, size, meta) as w:     # a locked temp dir beside `out`
        w.add(img)                             # uint8 [S,S,3], appended to a raw file
        w.meta["crops"] = [...]
    # on success: images.npy + dataset.json moved into place at `out` (an existing pack there is replaced);
    # on any exception: the temp dir is removed and `out` is untouched.

The pack format and its crash-safety rules are those of packed.py (which builds packs of known size).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile

import numpy as np

from .errors import DataError
from .packed import (FORMAT_NAME, FORMAT_VERSION, IMAGES_FILE, META_FILE, TEMP_LOCK, _install, _is_empty_dir,
                     _lock_temp, is_packed_dir, load_packed, remove_stale_temps)

RAW_FILE = "images.raw"
COPY_ROWS = 1024


class PackWriter:
    def __init__(self, out: str | os.PathLike, size: int, meta: dict):
        out = os.path.abspath(os.path.expanduser(os.fspath(out)))
        if os.path.lexists(out) and not (is_packed_dir(out) or _is_empty_dir(out)):
            raise DataError(f"refusing to overwrite {out}: it exists and is not a packed dataset")
        self.out, self.size, self.meta, self.count = out, int(size), dict(meta), 0
        self._tmp = self._fd = self._raw = None

    def __enter__(self) -> "PackWriter":
        parent = os.path.dirname(self.out)
        os.makedirs(parent, exist_ok=True)
        remove_stale_temps(parent, os.path.basename(self.out))
        self._tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(self.out)}.tmp-", dir=parent)
        try:
            self._fd = _lock_temp(self._tmp)
            self._raw = open(os.path.join(self._tmp, RAW_FILE), "wb")
        except BaseException:
            self._cleanup()
            raise
        return self

    def add(self, img: np.ndarray) -> int:
        """Append one uint8 [S,S,3] image; returns its row index."""
        if img.shape != (self.size, self.size, 3) or img.dtype != np.uint8:
            raise ValueError(f"expected uint8 {(self.size, self.size, 3)}, got {img.dtype} {img.shape}")
        self._raw.write(np.ascontiguousarray(img).tobytes())
        self.count += 1
        return self.count - 1

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self._finish()
        finally:
            self._cleanup()

    def _finish(self) -> None:
        self._raw.close()
        if self.count == 0:
            raise DataError("nothing to pack: no image was kept")
        shape = (self.count, self.size, self.size, 3)
        raw_path = os.path.join(self._tmp, RAW_FILE)
        src = np.memmap(raw_path, dtype=np.uint8, mode="r", shape=shape)
        dst = np.lib.format.open_memmap(os.path.join(self._tmp, IMAGES_FILE), mode="w+", dtype=np.uint8, shape=shape)
        for a in range(0, self.count, COPY_ROWS):
            dst[a:a + COPY_ROWS] = src[a:a + COPY_ROWS]
        dst.flush()
        del src, dst
        os.unlink(raw_path)
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
        if self._raw is not None and not self._raw.closed:
            self._raw.close()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
