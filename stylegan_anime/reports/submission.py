"""The NTU ML HW6 submission layout: `1.jpg ... N.jpg` in one folder, optionally packed as a .tgz with the
files at the archive's top level (what `cd outdir && tar -zcf ../submission.tgz *.jpg` gives).

Image i (1-based) is seed `seed + i - 1`, the same picture `stylegan-anime generate --count N --seed S` writes.
"""
from __future__ import annotations

import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

EXTS = ("jpg", "png")


@dataclass
class Submission:
    outdir: Path
    files: list[Path]  # 1.ext ... N.ext, in order
    tgz: Path | None


def write_submission(sampler, outdir: str | os.PathLike, count: int, seed: int = 0, ext: str = "jpg",
                     tgz: str | os.PathLike | None = None, batch: int = 64, progress: bool = True) -> Submission:
    """Write count images 1.ext ... count.ext into outdir (with Sampler.save_files) and, when tgz is given, a
    gzip tar of exactly those files (other files already in outdir are left alone and not packed)."""
    ext = ext.lower().lstrip(".")
    if ext not in EXTS:
        raise ValueError(f"ext must be one of {', '.join(EXTS)}, got {ext!r}")
    if count < 1:
        raise ValueError(f"count must be positive, got {count}")
    if batch < 1:
        raise ValueError(f"batch must be positive, got {batch}")
    tgz_path = Path(tgz) if tgz is not None else None
    if tgz_path is not None and not tgz_path.name.endswith((".tgz", ".tar.gz")):
        raise ValueError(f"the archive name must end in .tgz or .tar.gz, got {tgz_path.name!r}")
    outdir = Path(outdir)
    sampler.save_files(list(range(seed, seed + count)), outdir, ext=ext, batch=batch, progress=progress)
    files = [outdir / f"{i}.{ext}" for i in range(1, count + 1)]
    if tgz_path is not None:
        pack(files, tgz_path)
    return Submission(outdir=outdir, files=files, tgz=tgz_path)


def pack(files: list[Path], tgz: Path) -> Path:
    """A .tgz of files at the archive's top level (names only, no folders), written atomically."""
    tgz.parent.mkdir(parents=True, exist_ok=True)
    tmp = tgz.with_name(f".{tgz.name}.partial")
    try:
        with tarfile.open(tmp, "w:gz") as tar:
            for f in files:
                tar.add(f, arcname=f.name, recursive=False)
        os.replace(tmp, tgz)
    finally:
        tmp.unlink(missing_ok=True)
    return tgz


__all__ = ["Submission", "pack", "write_submission"]
