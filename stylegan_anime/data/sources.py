"""Image sources: a folder (searched recursively) or a ``.zip`` archive.

:func:`scan_source` lists the image entries once, in a stable sorted order, together with a
content fingerprint used in cache keys. Entries are read through :class:`EntryReader`, which each
worker process creates for itself (a ``ZipFile`` handle must not be shared across processes).
"""
from __future__ import annotations

import hashlib
import json
import os
import stat
import zipfile
from dataclasses import dataclass

from .errors import DataError
from .limits import InputLimits, read_capped

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
"""Recognised image file extensions, matched case-insensitively; other files are ignored."""


def is_image_name(name: str) -> bool:
    """True for a '/'-separated path whose extension is an image one.

    macOS junk (``__MACOSX/`` folders, ``._name`` AppleDouble files) is excluded.
    """
    parts = name.split("/")
    if "__MACOSX" in parts or parts[-1].startswith("._"):
        return False
    return os.path.splitext(parts[-1])[1].lower() in IMAGE_EXTENSIONS


@dataclass(frozen=True)
class ImageSource:
    """The image entries of a folder or zip; picklable, so it can be sent to worker processes."""

    kind: str  # "folder" | "zip"
    path: str  # absolute path of the folder or the zip file
    names: tuple[str, ...]  # sorted, '/'-separated paths relative to the folder / zip member names
    fingerprint: str  # hex digest of the listing (see scan_folder / scan_zip)

    def __len__(self) -> int:
        return len(self.names)

    def open(self) -> "EntryReader":
        """A reader for this process; use as a context manager."""
        return EntryReader(self)


class EntryReader:
    """Reads the raw bytes of entry ``i``; opens the zip lazily, once per process."""

    def __init__(self, source: ImageSource):
        self.source = source
        self._zip: zipfile.ZipFile | None = None

    def read(self, i: int, max_bytes: int | None = None) -> bytes:
        """Bytes of entry ``i``; raises OSError / zipfile errors if it cannot be read, and InputTooLarge when it
        is over ``max_bytes`` (a zip member's declared size is checked first, then at most max_bytes + 1 bytes
        are inflated, so neither a big member nor a lying header costs more memory than that)."""
        name = self.source.names[i]
        if self.source.kind == "folder":
            return _read_regular_file(os.path.join(self.source.path, *name.split("/")), max_bytes)
        if self._zip is None:
            self._zip = zipfile.ZipFile(self.source.path)
        info = self._zip.getinfo(name)
        if max_bytes is not None:
            InputLimits(max_file_bytes=max_bytes).check_bytes(info.file_size, "zip member")
        with self._zip.open(info) as f:
            return read_capped(f, max_bytes, "zip member")

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
            self._zip = None

    def __enter__(self) -> "EntryReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def scan_source(path: str) -> ImageSource:
    """List the images of a folder or zip at ``path``; raises DataError for anything else."""
    path = os.path.abspath(os.path.expanduser(path))
    if not os.path.exists(path):
        raise DataError(f"data path does not exist: {path}")
    if os.path.isdir(path):
        return scan_folder(path)
    if zipfile.is_zipfile(path):
        return scan_zip(path)
    if path.lower().endswith(".zip"):
        raise DataError(f"not a valid zip file: {path}")
    raise DataError(f"not an image folder, a .zip or a packed dataset directory: {path}")


def scan_folder(path: str) -> ImageSource:
    """Recursive listing; fingerprint = hash of the sorted (relative path, size, mtime_ns) list."""
    listing = []
    for root, dirs, files in os.walk(path, onerror=_raise_walk_error):
        dirs.sort()
        for fname in files:
            full = os.path.join(root, fname)
            rel = os.path.relpath(full, path).replace(os.sep, "/")
            if not is_image_name(rel):
                continue
            try:
                st = os.stat(full)
            except OSError:  # dangling symlink or vanished meanwhile
                continue
            listing.append((rel, st.st_size, st.st_mtime_ns))
    listing.sort()
    _require_images(listing, path)
    return ImageSource("folder", path, tuple(r[0] for r in listing), _digest(listing))


def scan_zip(path: str) -> ImageSource:
    """Member listing; fingerprint = hash of (name, CRC, file_size) per image plus the zip's size."""
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError(f"cannot read zip file {path}: {e}") from None
    listing = sorted(
        (info.filename, info.CRC, info.file_size)
        for info in infos
        if not info.is_dir() and is_image_name(info.filename)
    )
    _require_images(listing, path)
    names = tuple(r[0] for r in listing)
    return ImageSource("zip", path, names, _digest([os.path.getsize(path), listing]))


def _read_regular_file(path: str, max_bytes: int | None) -> bytes:
    """A regular file's bytes. A FIFO or device named like an image (``mkfifo x.png``, a link to /dev/zero) is an
    OSError: opened non-blocking and refused, so it can neither hang nor stream forever."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(f"not a regular file: {path}")
        if max_bytes is not None:
            InputLimits(max_file_bytes=max_bytes).check_bytes(st.st_size)
        return read_capped(f, max_bytes)


def _require_images(listing: list, path: str) -> None:
    if not listing:
        exts = "/".join(e[1:] for e in IMAGE_EXTENSIONS)
        raise DataError(f"no images ({exts}) found in {path}")


def _digest(obj) -> str:
    """Stable short hash of a JSON-serialisable listing."""
    blob = json.dumps(obj, separators=(",", ":")).encode("utf-8")
    return hashlib.blake2b(blob, digest_size=16).hexdigest()


def _raise_walk_error(err: OSError) -> None:
    raise DataError(f"cannot read folder {err.filename}: {err.strerror}")
