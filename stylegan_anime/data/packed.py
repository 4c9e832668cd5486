"""Packed datasets, and the entry points that build or open them.

A *pack* is a directory holding

- ``images.npy``: uint8 ``[N,H,W,3]`` (plain ``.npy``, opened with ``np.load(mmap_mode="r")``);
- ``dataset.json``: format/version, source, count, size, skipped count, fingerprint and, for
  labelled sets, ``label_names`` (``{"hair": [...], "eye": [...]}``) and ``labels`` (``[[h, e], ...]``).

Packs are built in a hidden temp directory beside the target and moved into place with
``os.replace`` only when complete, so an interrupted build never leaves a pack that looks valid.
The builder holds an flock on ``.lock`` inside its temp directory; temp directories of killed builds
(lock free, or no lock file and untouched for ``STALE_TEMP_S``) are removed by the next build.
:func:`open_dataset` keeps one pack per (source, content, size) in a cache directory and reuses it
while the source is unchanged; :func:`prepare_dataset` builds one at an explicit location, one writer per
location (output_lock.py: a second prepare-data into it fails, naming the first one's pid).

Builds stream: worker processes decode a bounded number of images ahead (IN_FLIGHT_BYTES) and each one is
appended to ``images.npy`` with plain writes as it arrives (npy_stream.py), so the memory of a build does not
grow with the number of images, whatever the resolution (a 10k x 1024 px pack is 31 GB on disk, not in RAM).
Files over the input limits (limits.py: decoded pixels from the header, bytes of a file or inflated zip member)
are skipped before decoding and counted with the unreadable ones; sources smaller than the size are upscaled
and counted (``dataset.json["upscaled"]``). A cache or output that cannot be written is a one-line DataError.

Length (~690 lines): building, caching, locking and opening a pack share one on-disk format and its
crash-safety rules; one file defines the format once.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import importlib
import itertools
import json
import multiprocessing
import os
import re
import shutil
import sys
import tempfile
import time
import zipfile
import zlib
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
from tqdm import tqdm

from .errors import DataError
from .images import BACKGROUND, UnreadableImage, decode_image
from .limits import InputLimits, InputTooLarge
from .npy_stream import NpyAppender
from .output_lock import OutputLock
from .sources import ImageSource, scan_source

FORMAT_NAME = "stylegan-anime-pack"
FORMAT_VERSION = 1
IMAGES_FILE = "images.npy"
META_FILE = "dataset.json"

CACHE_ENV = "STYLEGAN_ANIME_CACHE"
DEFAULT_CACHE_DIR = os.path.join("~", ".cache", "stylegan-anime")
DEMO_SEED = 0
INLINE_THRESHOLD = 256  # sources smaller than this are decoded in-process, without a Pool
IN_FLIGHT_BYTES = 64 * 2**20  # decoded images queued between the worker processes and the writer, at most
UNREADABLE, TOO_LARGE = "unreadable", "too large"  # why a file was skipped
TEMP_LOCK = ".lock"  # inside a build's temp directory, flocked by the live builder
STALE_TEMP_S = 6 * 3600  # a temp directory without a lock file is stale after this long untouched
_TEMP_DIR = re.compile(r"^\.(?P<base>.+)\.(?P<kind>tmp|old)-[A-Za-z0-9_]+$")

Warn = Callable[[str], None]


@dataclass
class PackedDataset:
    """An opened pack. ``images`` is a read-only memmap: rows are read from disk on access."""

    path: str
    images: np.ndarray  # uint8 [N,H,W,3], np.memmap (mode "r")
    meta: dict
    labels: np.ndarray | None = None  # int64 [N,K], column k indexes label_names' k-th list
    label_names: dict[str, list[str]] | None = None

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def resolution(self) -> int:
        return int(self.images.shape[1])


# --------------------------------------------------------------------------- public entry points


def open_dataset(
    spec: str,
    size: int,
    *,
    labels: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    workers: int | None = None,
    progress: bool = True,
    warn: Warn | None = None,
) -> PackedDataset:
    """Open ``spec`` at ``size`` x ``size``: ``"demo"``/``"demo:N"``, a folder, a zip or a pack.

    Packs are opened directly (their size must equal ``size``); the other kinds are packed once
    into the cache (``cache_dir``, else ``$STYLEGAN_ANIME_CACHE``, else ``~/.cache/stylegan-anime``)
    and reused until the source changes. ``labels``: a tags file for a folder or zip (see
    :mod:`.labels`); its parsed hair/eye labels are stored in the pack, and its content is part of the
    cache key.
    """
    _check_size(size)
    spec = str(spec)
    if not _is_demo_spec(spec):
        pack_dir = _as_pack_dir(spec)
        if pack_dir is not None:
            if labels is not None:
                raise DataError(f"{pack_dir} is already packed; labels are attached when packing: "
                                f"prepare-data SOURCE OUT --labels {os.fspath(labels)}")
            ds = load_packed(pack_dir)
            if ds.resolution != size:
                raise DataError(
                    f"packed dataset {pack_dir} is {ds.resolution}x{ds.resolution} but size {size} "
                    f"was requested; re-run prepare-data with --size {size}"
                )
            return ds
    plan = _plan(spec, size, labels)
    root = os.path.abspath(os.path.expanduser(cache_dir or os.environ.get(CACHE_ENV) or DEFAULT_CACHE_DIR))
    remove_stale_temps(root)  # the cache is ours: leftovers of any killed build go
    target = os.path.join(root, plan.cache_name)
    if is_packed_dir(target):
        try:
            return load_packed(target)
        except DataError:  # damaged entry (e.g. edited by hand): rebuild it
            shutil.rmtree(target, ignore_errors=True)
    hint = f"set {CACHE_ENV} to a folder you can write to, or pack once with prepare-data SOURCE OUT"
    ds = _build(plan, target, workers, progress, warn, replace_existing=False, hint=hint)
    _prune_superseded(root, plan)
    return ds


def prepare_dataset(
    source: str,
    out: str | os.PathLike,
    size: int,
    *,
    labels: str | os.PathLike | None = None,
    workers: int | None = None,
    progress: bool = True,
    warn: Warn | None = None,
) -> PackedDataset:
    """Pack ``source`` (demo spec, folder or zip) into the directory ``out``; ``labels``: a tags file
    whose hair/eye labels are stored in the pack (folder or zip only: the demo has its own).

    An existing pack (or empty directory) at ``out`` is replaced; any other existing path is a
    DataError.
    """
    _check_size(size)
    out = os.path.abspath(os.path.expanduser(os.fspath(out)))
    source = str(source)
    if not _is_demo_spec(source) and _as_pack_dir(source) is not None:
        raise DataError(f"{source} is already a packed dataset; give prepare-data the original images")
    plan = _plan(source, size, labels)
    hint = "choose an output folder you can write to"
    with _writing(os.path.dirname(out), hint):
        os.makedirs(os.path.dirname(out), exist_ok=True)
    with OutputLock(out):  # one writer per output: a second prepare-data into it fails, naming the first
        if os.path.lexists(out) and not (is_packed_dir(out) or _is_empty_dir(out)):
            raise DataError(f"refusing to overwrite {out}: it exists and is not a packed dataset")
        return _build(plan, out, workers, progress, warn, replace_existing=True, hint=hint)


def is_packed_dir(path: str | os.PathLike) -> bool:
    """True for a directory containing both ``images.npy`` and ``dataset.json``."""
    return os.path.isfile(os.path.join(path, IMAGES_FILE)) and os.path.isfile(os.path.join(path, META_FILE))


def load_packed(path: str | os.PathLike) -> PackedDataset:
    """Open and validate a pack directory (images memory-mapped read-only)."""
    path = os.path.abspath(os.fspath(path))
    try:
        with open(os.path.join(path, META_FILE), encoding="utf-8") as f:
            meta = json.load(f)
        images = np.load(os.path.join(path, IMAGES_FILE), mmap_mode="r")  # [N,H,W,3]
    except (OSError, ValueError) as e:
        raise DataError(f"cannot read packed dataset {path}: {e}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise DataError(f"{path}/{META_FILE} is not a stylegan-anime packed dataset")
    if meta.get("version") != FORMAT_VERSION:
        raise DataError(
            f"packed dataset {path} has format version {meta.get('version')}, expected "
            f"{FORMAT_VERSION}; re-run prepare-data"
        )
    n = meta.get("count")
    if (not isinstance(n, int) or n < 1 or images.dtype != np.uint8 or images.ndim != 4
            or images.shape[0] != n or images.shape[1] != images.shape[2] or images.shape[3] != 3):
        raise DataError(f"packed dataset {path} is damaged (images.npy shape {images.shape}, count {n})")
    labels, names = None, meta.get("label_names")
    if names is not None:
        try:
            labels = np.asarray(meta["labels"], dtype=np.int64).reshape(n, len(names))  # [N,K]
        except (KeyError, ValueError, TypeError):
            raise DataError(f"packed dataset {path} has damaged labels in {META_FILE}") from None
        names = {k: list(v) for k, v in names.items()}
    return PackedDataset(path, images, meta, labels, names)


# --------------------------------------------------------------------------- what to build


@dataclass(frozen=True)
class _DemoJob:
    """Render the procedural demo faces (labelled)."""

    count: int
    size: int

    def decoder(self) -> "_Decoder":
        return _DemoDecoder(self.size)


@dataclass(frozen=True)
class _FileJob:
    """Decode the images of a folder or zip (unlabelled)."""

    source: ImageSource
    size: int
    limits: InputLimits = InputLimits()  # read from the environment in the parent: workers get the same

    def decoder(self) -> "_Decoder":
        return _FileDecoder(self.source, self.size, self.limits)


@dataclass(frozen=True)
class _Plan:
    kind: str  # "demo" | "folder" | "zip"
    label: str  # shown to the user: the source path, or "demo:N"
    names: tuple[str, ...] | None  # entry names (None for demo)
    fingerprint: str
    size: int
    job: _DemoJob | _FileJob
    meta_extra: dict  # label names etc. for dataset.json
    source_key: str  # hash of (kind, path, size): entries sharing it supersede each other
    cache_name: str
    labels_file: str | None = None  # tags file to label a folder/zip with (see labels.py)


def _plan(spec: str, size: int, labels: str | os.PathLike | None = None) -> _Plan:
    """Resolve a demo spec, folder or zip (and optional tags file) into a build plan (scans the source once)."""
    labels_file = labels_hash = None
    if labels is not None:
        if _is_demo_spec(spec):
            raise DataError(f"{spec} has its own hair/eye labels; --labels is for image folders and zips")
        labels_file = os.path.abspath(os.path.expanduser(os.fspath(labels)))
        try:
            with open(labels_file, "rb") as f:
                labels_hash = hashlib.sha1(f.read()).hexdigest()
        except OSError as e:
            raise DataError(f"cannot read labels file {labels_file}: {e.strerror or e}") from None
    if _is_demo_spec(spec):
        count = _parse_demo_count(spec)
        demo = importlib.import_module("stylegan_anime.data.demo")
        kind, path, names = "demo", None, None
        label, slug = f"demo:{count}", f"demo{count}"
        fingerprint = f"demo:{count}:seed{DEMO_SEED}:v{demo.DEMO_VERSION}"
        job = _DemoJob(count, size)
        extra = {
            "demo_version": demo.DEMO_VERSION,
            "label_names": {"hair": list(demo.HAIR_COLORS), "eye": list(demo.EYE_COLORS)},
        }
    else:
        src = scan_source(spec)
        kind, path, names = src.kind, src.path, src.names
        label, slug = src.path, _slug(os.path.basename(src.path.rstrip("/\\")))
        fingerprint, job, extra = src.fingerprint, _FileJob(src, size, InputLimits.from_env()), {}
        if labels_file is not None:
            from .labels import label_names  # noqa: PLC0415
            extra = {"label_names": label_names(), "labels_file": labels_file}
    source_key = _hash([kind, path, size])[:8]
    key_parts = [kind, path, fingerprint, size, FORMAT_VERSION, list(BACKGROUND), extra.get("demo_version")]
    if labels_hash is not None:  # unlabelled packs keep their old key
        key_parts.append(labels_hash)
    key = _hash(key_parts)
    name = f"{kind}-{slug}-{size}px-{source_key}-{key[:16]}"
    return _Plan(kind, label, names, fingerprint, size, job, extra, source_key, name, labels_file)


def _is_demo_spec(spec: str) -> bool:
    return spec == "demo" or spec.startswith("demo:")


def _parse_demo_count(spec: str) -> int:
    if spec == "demo":
        return importlib.import_module("stylegan_anime.data.demo").DEFAULT_COUNT
    text = spec[len("demo:"):]
    if not re.fullmatch(r"[0-9]+", text) or int(text) < 1:
        raise DataError(f"invalid dataset {spec!r}: use demo or demo:N with N a positive integer")
    return int(text)


def _as_pack_dir(spec: str) -> str | None:
    """The pack directory ``spec`` names (the dir, or its images.npy/dataset.json), else None."""
    path = os.path.abspath(os.path.expanduser(spec))
    if os.path.isfile(path) and os.path.basename(path) in (IMAGES_FILE, META_FILE):
        path = os.path.dirname(path)
    if not os.path.isdir(path):
        return None
    if is_packed_dir(path):
        return path
    # Half a pack: images.npy alone, or our own dataset.json alone (a foreign dataset.json in an
    # image folder is just an ignored file).
    if os.path.isfile(os.path.join(path, IMAGES_FILE)):
        raise DataError(f"incomplete packed dataset (missing {META_FILE}): {path}")
    if _is_our_meta(os.path.join(path, META_FILE)):
        raise DataError(f"incomplete packed dataset (missing {IMAGES_FILE}): {path}")
    return None


def _is_our_meta(meta_path: str) -> bool:
    try:
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("format") == FORMAT_NAME


# --------------------------------------------------------------------------- decoding


class _FileDecoder:
    """Per-process: entry index -> (image [S,S,3], or UNREADABLE / TOO_LARGE when skipped; None; upscaled)."""

    _READ_ERRORS = (UnreadableImage, OSError, zipfile.BadZipFile, RuntimeError, NotImplementedError,
                    EOFError, zlib.error)

    def __init__(self, source: ImageSource, size: int, limits: InputLimits = InputLimits()):
        self.reader, self.size, self.limits = source.open(), size, limits

    def __call__(self, i: int) -> tuple[np.ndarray | str, None, bool]:
        try:
            data = self.reader.read(i, self.limits.max_file_bytes)
            img, upscaled = decode_image(data, self.size, self.limits.max_pixels)
            return img, None, upscaled
        except InputTooLarge:
            return TOO_LARGE, None, False
        except self._READ_ERRORS:
            return UNREADABLE, None, False

    def close(self) -> None:
        self.reader.close()


class _DemoDecoder:
    """Per-process: demo index -> (image [S,S,3], [hair, eye])."""

    def __init__(self, size: int):
        self.demo = importlib.import_module("stylegan_anime.data.demo")
        self.size = size

    def __call__(self, i: int) -> tuple[np.ndarray, list[int], bool]:
        img, hair, eye = self.demo.render_face(DEMO_SEED, i, self.size)
        img = np.asarray(img)
        if img.shape != (self.size, self.size, 3) or img.dtype != np.uint8:
            raise TypeError(f"demo.render_face returned {img.dtype} {img.shape}, expected uint8 "
                            f"{(self.size, self.size, 3)}")
        return img, [int(hair), int(eye)], False

    def close(self) -> None:
        pass


_Decoder = _FileDecoder | _DemoDecoder
# (index, image [S,S,3] or the reason it was skipped (UNREADABLE / TOO_LARGE), labels or None, upscaled)
_Result = tuple[int, "np.ndarray | str", "list[int] | None", bool]
_worker_decoder: _Decoder | None = None  # set in each worker process by _init_worker


def _init_worker(job: _DemoJob | _FileJob) -> None:
    global _worker_decoder
    _worker_decoder = job.decoder()


def _work(indices: range) -> list[_Result]:
    return [(i, *_worker_decoder(i)) for i in indices]


def _decode_all(job, count: int, workers: int, warn: Warn) -> Iterator[_Result]:
    """Yield (index, image or skip reason, labels or None, upscaled) for every index, in order."""
    done = 0
    if workers > 1 and count >= INLINE_THRESHOLD:
        try:
            for result in _decode_pooled(job, count, workers):
                yield result
                done += 1
        except BrokenProcessPool:
            warn(f"worker processes failed (killed, or unable to start); decoding the remaining "
                 f"{count - done} images in this process")
    decoder = job.decoder()
    try:
        for i in range(done, count):
            yield (i, *decoder(i))
    finally:
        decoder.close()


def _decode_pooled(job, count: int, workers: int) -> Iterator[_Result]:
    """Decode in ``workers`` spawned processes, keeping a bounded number of chunks in flight."""
    # "spawn" everywhere: safe when the parent already runs torch/CUDA threads (fork is not).
    ctx = multiprocessing.get_context("spawn")
    chunk = _chunk_size(count, workers, job.size)
    chunks = iter(range(a, min(a + chunk, count)) for a in range(0, count, chunk))
    pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(job,))
    try:
        pending = deque(pool.submit(_work, c) for c in itertools.islice(chunks, IN_FLIGHT_TASKS * workers))
        while pending:
            results = pending.popleft().result()
            pending.extend(pool.submit(_work, c) for c in itertools.islice(chunks, 1))
            yield from results
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _chunk_size(count: int, workers: int, size: int) -> int:
    """Images per task: 4 x workers tasks are in flight, holding at most IN_FLIGHT_BYTES of decoded images
    (or one image per task where a single one is larger), whatever the number of images or the resolution."""
    per_task = IN_FLIGHT_BYTES // (IN_FLIGHT_TASKS * workers * size * size * 3)
    return max(1, min(64, count // (workers * 8), per_task))


IN_FLIGHT_TASKS = 4  # per worker, see _decode_pooled


# --------------------------------------------------------------------------- building


def _build(plan: _Plan, target: str, workers: int | None, progress: bool, warn: Warn | None,
           replace_existing: bool, hint: str = "") -> PackedDataset:
    """Decode ``plan`` into a temp dir beside ``target`` and move it into place. A failed write (read-only
    folder, disk full ...) is a one-line DataError naming the path, ending with ``hint`` (what to do)."""
    parent = os.path.dirname(target)
    count, size = plan.job.count if plan.kind == "demo" else len(plan.names), plan.size
    workers = min(8, os.cpu_count() or 1) if workers is None else int(workers)
    warn = _default_warn if warn is None else warn
    file_labels = report = None
    if plan.labels_file is not None:  # parse before decoding: a malformed file fails fast
        from .labels import load_labels  # noqa: PLC0415
        file_labels, report = load_labels(plan.labels_file, plan.names)  # [count, 2], aligned with names
    with _writing(parent, hint):
        os.makedirs(parent, exist_ok=True)
        _check_disk_space(parent, count * size * size * 3)
        remove_stale_temps(parent, os.path.basename(target))
        tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(target)}.tmp-", dir=parent)
        try:
            lock_fd = _lock_temp(tmp)  # held until the pack is in place: a live build is never taken for a stale one
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        try:
            filled = _fill(plan, os.path.join(tmp, IMAGES_FILE), count, workers, progress, warn)
            labels = filled.labels
            if file_labels is not None:  # rows of the skipped (unreadable) images go with them
                gone = set(filled.skipped)
                labels = [row for name, row in zip(plan.names, file_labels.tolist()) if name not in gone]
            meta = {
                "format": FORMAT_NAME,
                "version": FORMAT_VERSION,
                "source": plan.label,
                "source_kind": plan.kind,
                "count": filled.kept,
                "size": size,
                "skipped": len(filled.skipped),
                "skipped_examples": filled.skipped[:20],
                "skipped_too_large": len(filled.too_large),
                "upscaled": filled.upscaled,
                "fingerprint": plan.fingerprint,
                "background": list(BACKGROUND),
                **plan.meta_extra,
            }
            if labels is not None:
                meta["labels"] = labels
            if report is not None:
                meta["labels_report"] = report.to_dict()
            with open(os.path.join(tmp, META_FILE), "w", encoding="utf-8") as f:
                json.dump(meta, f, separators=(",", ":"))
                f.flush()
                os.fsync(f.fileno())
            os.unlink(os.path.join(tmp, TEMP_LOCK))  # not part of the pack (the open fd keeps the lock)
            _install(tmp, target, replace_existing)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        finally:
            os.close(lock_fd)
    if filled.skipped:
        warn(skipped_warning(plan.label, filled.skipped, len(filled.too_large), plan.job))
    for line in report.warnings() if report is not None else ():
        warn(line)
    return load_packed(target)


def skipped_warning(label: str, skipped: list[str], too_large: int, job=None) -> str:
    """'skipped N unreadable files in SRC (K too large: over 64 Mpx decoded or 256 MiB per file) (e.g. a, b, c)'."""
    limits = getattr(job, "limits", None) or InputLimits.from_env()
    why = f" ({too_large} too large: {limits.describe()})" if too_large else ""
    return f"skipped {len(skipped)} unreadable files in {label}{why} (e.g. {', '.join(skipped[:3])})"


@dataclass
class _Filled:
    kept: int                        # rows written
    skipped: list[str]               # names of the files skipped (unreadable or too large), in source order
    too_large: list[str]             # those of them over the input limits
    upscaled: int                    # kept images whose source was smaller than the pack's size
    labels: list[list[int]] | None   # demo labels, one row per kept image


def _fill(plan: _Plan, npy_path: str, count: int, workers: int, progress: bool, warn: Warn) -> _Filled:
    """Decode every entry into ``npy_path``, streaming: each image is written as soon as it is decoded, so memory
    does not grow with ``count`` (see npy_stream.py); skipped entries leave no row."""
    size = plan.size
    filled = _Filled(0, [], [], 0, [] if plan.kind == "demo" else None)
    with NpyAppender(npy_path, (size, size, 3)) as out, \
            tqdm(total=count, desc=f"packing {plan.label}", unit="img", disable=not progress) as bar:
        for i, img, lab, upscaled in _decode_all(plan.job, count, workers, warn):
            if isinstance(img, str):  # UNREADABLE or TOO_LARGE
                filled.skipped.append(plan.names[i])
                if img == TOO_LARGE:
                    filled.too_large.append(plan.names[i])
            else:
                out.append(img)  # [S,S,3]; rows stay in source order, skipped ones closed up
                if filled.labels is not None:
                    filled.labels.append(lab)
                filled.upscaled += bool(upscaled)
            bar.update(1)
        filled.kept = out.count
    if filled.kept == 0:
        raise DataError(f"none of the {count} image files in {plan.label} could be read "
                        f"(e.g. {filled.skipped[0]})")
    return filled


def _install(tmp: str, target: str, replace_existing: bool) -> None:
    """Move the finished pack ``tmp`` to ``target``."""
    if os.path.isdir(target) and _is_empty_dir(target):
        os.rmdir(target)
    if not os.path.lexists(target):
        try:
            os.replace(tmp, target)
            return
        except OSError:
            if not os.path.lexists(target):
                raise
    if not replace_existing:  # another process finished the same cache entry first: use theirs
        if is_packed_dir(target):
            shutil.rmtree(tmp, ignore_errors=True)
            return
        raise DataError(f"cannot write dataset cache entry {target}: the path is in the way")
    old = tempfile.mkdtemp(prefix=f".{os.path.basename(target)}.old-", dir=os.path.dirname(target))
    os.rmdir(old)
    os.replace(target, old)
    os.replace(tmp, target)
    shutil.rmtree(old, ignore_errors=True)


def _prune_superseded(root: str, plan: _Plan) -> None:
    """Delete cache entries for the same source and size built from older contents."""
    prefix = plan.cache_name[: -16]  # "<kind>-<slug>-<size>px-<source_key>-"
    for name in os.listdir(root):
        if name.startswith(prefix) and name != plan.cache_name:
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)


def remove_stale_temps(parent: str, base: str | None = None) -> list[str]:
    """Delete the temp directories of killed pack builds in ``parent`` (only those of target ``base`` when
    given): a ``.NAME.tmp-*`` whose ``.lock`` nobody holds (its builder died), or that has no lock file and was
    untouched for STALE_TEMP_S; and a ``.NAME.old-*`` untouched for a minute (a replaced pack whose deletion
    was cut short; a fresh one may be an empty name that ``_install`` is about to use).
    A build in progress holds its lock and is left alone. Returns the removed paths."""
    removed = []
    try:
        names = os.listdir(parent)
    except OSError:
        return removed
    for name in names:
        m = _TEMP_DIR.match(name)
        path = os.path.join(parent, name)
        if m is None or (base is not None and m.group("base") != base) or not os.path.isdir(path) \
                or os.path.islink(path):
            continue
        if not (_temp_is_stale(path) if m.group("kind") == "tmp" else _untouched_for(path) > 60):
            continue
        shutil.rmtree(path, ignore_errors=True)
        if not os.path.lexists(path):
            removed.append(path)
    return removed


def _lock_temp(tmp: str) -> int:
    """Lock a fresh build directory: the lock file gets its name only once locked, so a cleaner never finds it
    unlocked (until then the directory is protected by its age)."""
    new = os.path.join(tmp, TEMP_LOCK + ".new")
    fd = os.open(new, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, f"{os.getpid()}\n".encode())
    except OSError:  # no flock on this file system: the age rule still protects a live build
        pass
    os.replace(new, os.path.join(tmp, TEMP_LOCK))
    return fd


def _temp_is_stale(path: str) -> bool:
    lock = os.path.join(path, TEMP_LOCK)
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:  # killed before it took the lock, or a build of an older version: by age
        return _untouched_for(path) > STALE_TEMP_S
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return False  # a live builder holds it
        return _untouched_for(path) > STALE_TEMP_S  # no flock here
    finally:
        os.close(fd)
    return True


def _untouched_for(path: str) -> float:
    """Seconds since the directory or anything directly in it was last modified."""
    try:
        newest = max([os.stat(path).st_mtime] + [e.stat().st_mtime for e in os.scandir(path)])
    except OSError:
        return 0.0
    return time.time() - newest


# --------------------------------------------------------------------------- small helpers


@contextlib.contextmanager
def _writing(where: str, hint: str = ""):
    """An OSError in the block (read-only folder, permission denied, disk full ...) becomes the one-line
    ``DataError('cannot write PATH: REASON; HINT')``."""
    try:
        yield
    except OSError as e:
        path = e.filename if isinstance(e.filename, str) and e.filename else where
        reason = e.strerror or str(e) or type(e).__name__
        raise DataError(f"cannot write {path}: {reason}" + (f"; {hint}" if hint else "")) from None


def _check_size(size: int) -> None:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise DataError(f"image size must be a positive integer, got {size!r}")


def _check_disk_space(folder: str, needed: int) -> None:
    """Fail early: writing a memmap on a full disk crashes the process (SIGBUS) instead of raising."""
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise DataError(f"not enough disk space in {folder}: the pack needs {needed / 2**30:.2f} GiB, "
                        f"{free / 2**30:.2f} GiB free")


def _is_empty_dir(path: str) -> bool:
    return os.path.isdir(path) and not os.path.islink(path) and not os.listdir(path)


def _hash(obj) -> str:
    return hashlib.sha1(json.dumps(obj, separators=(",", ":")).encode("utf-8")).hexdigest()


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._")[:40] or "data"


def _default_warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)
