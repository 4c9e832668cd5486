"""Write a uint8 ``.npy`` file one row at a time, with a number of rows known only at the end.

    with NpyAppender(path, (S, S, 3)) as out:   # a fixed-size header with a placeholder row count
        out.append(img)                         # uint8 [S,S,3], written with plain file writes
    # on leaving the block: the header is rewritten with the real count, the file fsync'ed

Plain ``write`` calls instead of a memory map: pages written through a mapping are counted in the writer's
resident memory until it is unmapped (a 10k x 512 px pack would need its whole 7.9 GB "in RAM"), pages written
with ``write`` only sit in the kernel's page cache, which the kernel writes back and frees as it needs to. So the
memory of a pack build does not grow with the number of images, and no copy at the end is needed either: rows
that are never appended (skipped files) simply do not exist. The file is an ordinary ``.npy``
(``np.load(path, mmap_mode="r")`` reads it).
"""
from __future__ import annotations

import os

import numpy as np

HEADER_BYTES = 128  # magic + version + length + dict, padded: room for any row count, a multiple of 64


def npy_header(shape: tuple[int, ...]) -> bytes:
    """A version 1.0 ``.npy`` header for a C-order uint8 array of ``shape``, exactly HEADER_BYTES long."""
    text = repr({"descr": "|u1", "fortran_order": False, "shape": tuple(int(v) for v in shape)})
    room = HEADER_BYTES - 10  # 6 magic + 2 version + 2 length bytes
    if len(text) + 1 > room:  # pragma: no cover - 4-d shapes need about 70 bytes
        raise ValueError(f"shape {shape} does not fit an npy header of {HEADER_BYTES} bytes")
    text = text.ljust(room - 1) + "\n"
    return b"\x93NUMPY\x01\x00" + room.to_bytes(2, "little") + text.encode("latin1")


class NpyAppender:
    """Append uint8 rows of ``row_shape`` to a new ``.npy`` file at ``path``; ``count`` rows so far."""

    def __init__(self, path: str | os.PathLike, row_shape: tuple[int, ...]):
        self.path, self.row_shape, self.count = os.fspath(path), tuple(int(v) for v in row_shape), 0
        self._f = open(self.path, "wb")
        self._f.write(npy_header((0, *self.row_shape)))

    def append(self, row: np.ndarray) -> int:
        """Write one row (uint8 ``row_shape``); returns its index."""
        if row.shape != self.row_shape or row.dtype != np.uint8:
            raise ValueError(f"expected uint8 {self.row_shape}, got {row.dtype} {row.shape}")
        self._f.write(np.ascontiguousarray(row).data)
        self.count += 1
        return self.count - 1

    def close(self) -> int:
        """Write the header with the final count, flush and fsync; returns the count."""
        if not self._f.closed:
            try:
                self._f.seek(0)
                self._f.write(npy_header((self.count, *self.row_shape)))
                self._f.flush()
                os.fsync(self._f.fileno())
            finally:
                self._f.close()
        return self.count

    def abort(self) -> None:
        """Close without finishing (the caller removes the file)."""
        if not self._f.closed:
            self._f.close()

    def __enter__(self) -> "NpyAppender":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
