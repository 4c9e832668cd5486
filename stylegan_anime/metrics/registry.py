"""One entry point for every metric: generate once, feed every metric that still needs images.

``evaluate(["fid10k", "swd"], gen, dataset)`` calls ``gen(n)`` repeatedly; each call must return the
*next* ``n`` generated images as a uint8 numpy array ``[n,H,W,3]``.  The images stream through the
Inception network (FID/KID), the SWD descriptor sampler, the face detector (AFD) and the C2ST image
store in one pass, up to the largest count any requested metric needs.  Real-image statistics (and the
SWD real-vs-real floor) come from the stats cache.

A metric whose requirement is missing (no Inception weights file, ``animeface`` absent or failing
its self-check) is skipped with one warning line that says why and how to fix it; the others run.
"""
from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Protocol

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from . import afd as afd_mod
from .c2st import C2STConfig, C2STImages, c2st
from .fid import fid_from_stats, kid_from_features
from .inception import MetricUnavailable, inception_features, load_inception
from .stats import FeatureMoments, feature_stats, load_or_compute, real_batches, real_subset
from .swd import SWDAccumulator, disjoint_halves, floor_values, swd_from_accumulators

__all__ = ["METRICS", "Group", "MetricSpec", "evaluate", "evaluate_folder", "list_metrics"]

Warn = Callable[[str], None]
GenerateFn = Callable[[int], np.ndarray]


@dataclass(frozen=True)
class MetricSpec:
    """A named metric: its kind, how many generated images it scores, and what it needs."""

    name: str
    kind: str          # "fid" | "kid" | "swd" | "afd" | "c2st"
    num_gen: int       # generated images (reals: min(dataset size, num_gen) for fid/kid/swd)
    requires: str      # "inception" | "animeface" | ""
    description: str


METRICS: dict[str, MetricSpec] = {
    s.name: s
    for s in (
        MetricSpec("fid5k", "fid", 5_000, "inception", "FID, 5k generated vs up to 5k reals"),
        MetricSpec("fid10k", "fid", 10_000, "inception", "FID, 10k generated vs up to 10k reals"),
        MetricSpec("fid50k", "fid", 50_000, "inception", "FID, 50k generated vs up to 50k reals"),
        MetricSpec("kid", "kid", 10_000, "inception",
                   "KID (unbiased MMD^2, cubic kernel, 100 subsets of 1000), 10k generated vs up to 10k reals"),
        MetricSpec("swd", "swd", 4_096, "",
                   "Sliced Wasserstein distance x1e3 on a Laplacian pyramid (per level and mean), 4096 images "
                   "at the dataset's resolution"),
        MetricSpec("afd", "afd", 1_000, "animeface", "anime-face detection rate (animeface), 1k generated images"),
        MetricSpec("c2st", "c2st", 2_000, "",
                   "classifier two-sample test: held-out accuracy (c2st, 0.5 = indistinguishable) and BCE "
                   "(c2st_loss) of a small CNN trained on 2k generated vs 2k reals at <= 64 px"),
    )
}

INCEPTION_SETTINGS = {"features": "pool3-2048", "resize": "bilinear-299", "range": "[-1,1]", "subset_seed": 0}


def list_metrics() -> list[str]:
    return list(METRICS)


def _counts(names: list[str], num_gen) -> dict[str, int]:
    out = {}
    for name in names:
        n = METRICS[name].num_gen
        if isinstance(num_gen, Mapping):
            n = int(num_gen.get(name, n))
        elif num_gen is not None:
            n = int(num_gen)
        if n < 1:
            raise ValueError(f"{name}: number of generated images must be positive, got {n}")
        out[name] = n
    return out


def _check_batch(batch, n: int, resolution: int, state: dict, warn: Warn) -> np.ndarray:
    arr = np.asarray(batch)
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"generate_fn({n}) must return uint8 [n,H,W,3], got {arr.dtype} {list(arr.shape)}")
    if len(arr) > n:
        arr = arr[:n]
    if arr.shape[1] != resolution or arr.shape[2] != resolution:
        if not state.get("warned_resize"):
            warn(f"generated images are {arr.shape[1]}x{arr.shape[2]} but the dataset is {resolution}x{resolution}: "
                 "resizing them (Lanczos) for evaluation")
            state["warned_resize"] = True
        arr = np.stack([np.asarray(Image.fromarray(im).resize((resolution, resolution), Image.Resampling.LANCZOS))
                        for im in arr])
    return arr


class Group(Protocol):
    """The processes that evaluate together (e.g. the ranks of a torchrun job)."""

    rank: int
    world: int

    def gather(self, obj) -> list | None:
        """Every rank's ``obj`` on rank 0 (in rank order); None on the others."""

    def broadcast(self, obj):
        """Rank 0's ``obj`` on every rank."""


class _RankFailed:
    """Sent instead of results when rank 0 failed, so the other ranks fail too instead of waiting."""

    def __init__(self, message: str):
        self.message = message


def _quiet(_line: str) -> None:
    pass


def evaluate(metrics: Iterable[str], generate_fn: GenerateFn, dataset, *, num_gen: int | Mapping[str, int] | None = None,
             device="cpu", inception_path=None, progress: bool = True, cache_dir=None, warn: Warn = print,
             batch_size: int = 64, seed: int = 0, group: Group | None = None,
             desc: str = "generating images") -> dict[str, float]:
    """Score generated images against ``dataset`` (a PackedDataset: ``.images`` uint8 [N,H,W,3], ``.meta``).

    ``generate_fn(n)`` returns the next ``n`` generated images, uint8 numpy ``[n,H,W,3]`` (images of
    another size than the dataset's are resized).  ``num_gen`` overrides every metric's number of
    generated images (an int, or a dict per metric name); reals are ``min(len(dataset), n)``.

    With a ``group`` of several processes, the generated images are shared out: batch k (images
    ``k*batch_size ...``) is made and scored by rank ``k % world`` with ``generate_fn(n, start=k*batch_size)``,
    which must return images ``start ... start+n-1`` of the one sequence every rank agrees on. Rank 0
    gathers the features, computes the real statistics and the scores, and every rank returns them:
    the values equal those of one process generating the same sequence.

    ``progress``: bars on stderr, labelled ``desc`` for the generated images (``evaluate_folder``: "reading
    FOLDER") and "reading reals" for the real images.

    Returns ``{name: value}`` in request order: ``fid*`` and ``kid`` (raw MMD^2), ``afd`` in [0,1],
    for ``swd`` the per-level ``swd/<level size>``, their mean ``swd`` and the disjoint real-vs-real
    floor ``swd_floor/<level size>``, ``swd_floor`` (all x1e3), and for ``c2st`` ``c2st`` (held-out
    accuracy, 0.5 = indistinguishable) and ``c2st_loss`` (held-out BCE, nats).  Unavailable metrics are
    left out after one ``warn`` line each.
    """
    rank, world = (group.rank, group.world) if group is not None else (0, 1)
    warn = warn if rank == 0 else _quiet
    names = list(dict.fromkeys(metrics))
    unknown = [m for m in names if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(METRICS)}")
    counts = _counts(names, num_gen)
    images = dataset.images
    num_real_total, resolution = int(images.shape[0]), int(images.shape[1])

    # ---- requirements: skip what cannot run, with one line each
    inception = detector = None
    needs_inception = [m for m in names if METRICS[m].requires == "inception"]
    if needs_inception:
        try:
            inception = load_inception(inception_path, device, warn=warn)
        except MetricUnavailable as e:
            warn(f"skipping {', '.join(needs_inception)}: {e}")
            names = [m for m in names if m not in needs_inception]
    if "afd" in names:
        try:
            detector = afd_mod.get_detector()
        except MetricUnavailable as e:
            warn(f"skipping afd: {e}")
            names.remove("afd")
    if world > 1:  # run only what every rank can run
        everywhere = group.gather(names)
        agreed = [m for m in names if all(m in ns for ns in everywhere)] if rank == 0 else None
        for m in names:
            if rank == 0 and m not in agreed:
                warn(f"skipping {m}: not available on every rank")
        names = group.broadcast(agreed)
    if not names:
        return {}

    # ---- one pass over generated images (this rank's batches)
    need_feat = max([counts[m] for m in names if METRICS[m].kind in ("fid", "kid")], default=0)
    need_swd = counts["swd"] if "swd" in names else 0
    need_afd = counts["afd"] if "afd" in names else 0
    need_c2st = counts["c2st"] if "c2st" in names else 0
    total = max(need_feat, need_swd, need_afd, need_c2st)
    c2st_fake = C2STImages(C2STConfig().size) if need_c2st else None
    feat_parts: list[tuple[int, np.ndarray]] = []
    swd_fake = SWDAccumulator(resolution, seed=seed, device=device) if need_swd else None
    afd_found = 0
    state: dict = {}
    start = rank * batch_size
    mine = sum(min(batch_size, total - s) for s in range(start, total, batch_size * world))
    with tqdm(total=mine, desc=desc, unit="img", disable=not progress or rank != 0, leave=False,
              file=sys.stderr) as bar:
        while start < total:
            n = min(batch_size, total - start)
            batch = _check_batch(generate_fn(n) if world == 1 else generate_fn(n, start=start), n, resolution,
                                 state, warn)
            if len(batch) == 0 or (world > 1 and len(batch) != n):
                raise ValueError(f"generate_fn returned {len(batch)} images for {n} at image {start} of {total}")
            if start < need_feat:
                feat_parts.append((start, inception_features(inception, batch[: need_feat - start], batch_size)))
            if start < need_swd:
                swd_fake.add(batch[: need_swd - start], start=start)
            if start < need_afd:
                afd_found += detector.count_detected(batch[: need_afd - start])
            if start < need_c2st:
                c2st_fake.add(batch[: need_c2st - start], start=start)
            start += len(batch) if world == 1 else batch_size * world
            bar.update(len(batch))

    if world > 1:
        parts = group.gather({"feat": feat_parts, "swd": swd_fake.batches() if swd_fake else [], "afd": afd_found,
                              "c2st": c2st_fake.batches() if c2st_fake else []})
        if rank != 0:
            results = group.broadcast(None)
            if isinstance(results, _RankFailed):
                raise RuntimeError(f"evaluation failed on rank 0: {results.message}")
            return results
        feat_parts = [fp for p in parts for fp in p["feat"]]
        if swd_fake is not None:
            for p in parts[1:]:
                swd_fake.extend(p["swd"])
        afd_found = sum(p["afd"] for p in parts)
        if c2st_fake is not None:
            for p in parts[1:]:
                c2st_fake.extend(p["c2st"])
    try:
        feat_parts.sort(key=lambda sp: sp[0])
        feats = np.concatenate([f for _, f in feat_parts], 0) if feat_parts else None
        results = _scores(names, counts, feats, swd_fake, afd_found, dataset, inception, cache_dir, batch_size,
                          progress, seed, device, c2st_fake=c2st_fake)
    except Exception as e:
        if world > 1:
            group.broadcast(_RankFailed(f"{type(e).__name__}: {e}"))
        raise
    return group.broadcast(results) if world > 1 else results


def _scores(names, counts, feats, swd_fake, afd_found, dataset, inception, cache_dir, batch_size, progress, seed,
            device, c2st_fake=None) -> dict[str, float]:
    """The metrics from the generated images' features / descriptors / detections and the reals."""
    num_real_total, resolution = int(dataset.images.shape[0]), int(dataset.images.shape[1])
    real = _real_inception(names, counts, dataset, inception, num_real_total, cache_dir, batch_size, progress) \
        if feats is not None else {}
    results: dict[str, float] = {}
    for m in names:
        spec, n = METRICS[m], counts[m]
        if spec.kind == "fid":
            acc = FeatureMoments()
            acc.add(feats[:n])
            g = acc.result()
            r = real[("fid", min(n, num_real_total))]
            results[m] = fid_from_stats(g["mu"], g["sigma"], r["mu"], r["sigma"])
        elif spec.kind == "kid":
            r = real[("kid", min(n, num_real_total))]
            results[m] = kid_from_features(feats[:n], r["features"], seed=seed)
        elif spec.kind == "swd":
            swd_real = SWDAccumulator(resolution, seed=seed, device=device)
            idx = real_subset(num_real_total, n)
            with tqdm(total=len(idx), desc="reading reals", unit="img", disable=not progress, leave=False,
                      file=sys.stderr) as bar:
                for b in real_batches(dataset, idx, batch_size):
                    swd_real.add(b)
                    bar.update(len(b))
            results.update(swd_from_accumulators(swd_real, swd_fake, seed=seed, device=device))
            results.update(_swd_floor(dataset, len(idx), idx, swd_real, cache_dir, batch_size, progress, seed,
                                      device))
        elif spec.kind == "afd":
            results[m] = afd_found / n
        elif spec.kind == "c2st":
            results.update(_c2st_score(dataset, c2st_fake.array()[:n], batch_size, progress, seed, device))
    return results


def _read_reals(dataset, idx, batch_size, progress, desc, add) -> None:
    """Feed ``dataset.images[idx]`` to ``add`` in uint8 [b,H,W,3] batches, with a progress bar."""
    with tqdm(total=len(idx), desc=desc, unit="img", disable=not progress, leave=False, file=sys.stderr) as bar:
        for b in real_batches(dataset, idx, batch_size):
            add(b)
            bar.update(len(b))


def _swd_floor(dataset, num, real_idx, swd_real, cache_dir, batch_size, progress, seed, device) -> dict[str, float]:
    """The real-vs-real SWD floor at ``num`` images per side (fewer when the dataset has under 2 x ``num``):
    ``swd_floor/<size>`` and ``swd_floor``, between two disjoint halves of a fixed permutation of the reals
    (see :func:`.swd.disjoint_halves`). Cached per dataset like the Inception statistics; the first half is
    the metric's own real subset when it is one, so only the second half is read then."""
    num_total = int(dataset.images.shape[0])
    first, second = disjoint_halves(num_total, num)
    if len(first) < 1:
        return {}
    sizes = swd_real.sizes
    settings = {"patches_per_image": swd_real.patches_per_image, "dir_repeats": 4, "dirs_per_repeat": 128,
                "seed": seed, "levels": sizes, "halves": "permutation(seed 0)[:m] vs [m:2m]"}

    def compute():
        accs = []
        for half in (first, second):
            if len(half) == len(real_idx) and np.array_equal(half, real_idx):
                accs.append(swd_real)
                continue
            acc = SWDAccumulator(swd_real.resolution, swd_real.patches_per_image, seed=seed, device=device)
            _read_reals(dataset, half, batch_size, progress, "reading reals (SWD floor)", acc.add)
            accs.append(acc)
        values = swd_from_accumulators(accs[0], accs[1], seed=seed, device=device)
        return {"levels": np.array([values[f"swd/{s}"] for s in sizes], np.float64)}

    stored = load_or_compute(dataset, "swd-floor", settings, len(first), compute, cache_dir)
    return floor_values(sizes, stored["levels"])


def _c2st_score(dataset, fake: np.ndarray, batch_size, progress, seed, device) -> dict[str, float]:
    """c2st (accuracy) / c2st_loss of ``fake`` (already at the test's resolution) against as many reals (the first
    entries of the fixed real permutation, as SWD's)."""
    cfg = C2STConfig(seed=seed)
    real = C2STImages(cfg.size)
    idx = real_subset(int(dataset.images.shape[0]), len(fake))
    _read_reals(dataset, idx, batch_size, progress, "reading reals (c2st)", real.add)
    return c2st(real.array(), fake, cfg, device=device)


def _real_inception(names, counts, dataset, inception, num_real_total, cache_dir, batch_size, progress) -> dict:
    """Real statistics per (kind, count): cached; all misses share one pass over the largest subset."""
    settings = dict(INCEPTION_SETTINGS, weights=inception.weights_id)
    wanted = {}
    for m in names:
        kind = METRICS[m].kind
        if kind in ("fid", "kid"):
            wanted[(kind, min(counts[m], num_real_total))] = None
    pool: dict = {}

    def all_features(n: int) -> np.ndarray:
        if pool.get("n", 0) < n:
            idx = real_subset(num_real_total, max(n for _, n in wanted))
            st = feature_stats(real_batches(dataset, idx, batch_size), inception, batch_size=batch_size,
                               keep_features=len(idx), progress=progress, total=len(idx),
                               desc="reading reals (Inception features)")
            pool.update(n=len(idx), features=st["features"])
        return pool["features"][:n]

    out = {}
    for kind, n in wanted:
        def compute(kind=kind, n=n):
            f = all_features(n)
            acc = FeatureMoments(keep=n if kind == "kid" else 0)
            acc.add(f)
            r = acc.result()
            return {k: v for k, v in r.items() if kind == "kid" or k != "features"}

        metric_name = "inception-stats" if kind == "fid" else "inception-features"
        out[(kind, n)] = load_or_compute(dataset, metric_name, settings, n, compute, cache_dir)
    return out


_IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def _folder_files(folder) -> list[str]:
    """The image files of a folder by name, in HW6 order (1.jpg ... N.jpg numerically, then the rest by name);
    ValueError when the folder is missing or has none."""
    if not os.path.isdir(folder):
        raise ValueError(f"image folder not found: {folder}")
    names = [f for f in os.listdir(folder) if f.lower().endswith(_IMAGE_EXTS)]
    if not names:
        raise ValueError(f"no images ({', '.join(_IMAGE_EXTS)}) in {folder}")

    def key(name):  # HW6 layout 1.jpg ... N.jpg: numeric order, then the rest by name
        stem = os.path.splitext(name)[0]
        return (0, int(stem), name) if re.fullmatch(r"\d+", stem) else (1, 0, name)

    return [os.path.join(folder, f) for f in sorted(names, key=key)]


def readable_images(folder, warn: Warn | None = None) -> list[tuple[str, tuple[int, int]]]:
    """[(path, (width, height))] of the folder's images whose header opens and that are within the input limits
    (data/limits.py: a PNG declaring a billion pixels is refused before a pixel is decoded). The others are
    skipped: one `warn` line counts them and names the first. ValueError when none is left."""
    from ..data.limits import InputLimits  # noqa: PLC0415

    limits = InputLimits.from_env()
    files = _folder_files(str(folder))
    good, skipped = [], []
    for path in files:
        try:
            good.append((path, _image_header(path, limits)))
        except ValueError as e:
            skipped.append(f"{os.path.basename(path)}: {e}")
    if skipped and warn is not None and good:
        warn(f"{folder}: skipping {len(skipped)} of {len(files)} files that are not readable images or too large "
             f"({skipped[0]}{'; ...' if len(skipped) > 1 else ''})")
    if not good:
        raise ValueError(f"no readable images in {folder}: all {len(files)} files skipped ({skipped[0]})")
    return good


def _image_header(path: str, limits) -> tuple[int, int]:
    """(width, height) from an image file's header (nothing decoded), else ValueError saying why."""
    import warnings  # noqa: PLC0415

    from ..data.limits import InputTooLarge  # noqa: PLC0415

    try:
        limits.check_bytes(os.path.getsize(path))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the limit below decides
            with Image.open(path) as im:
                width, height = im.size
        limits.check_pixels(width, height)
    except Image.DecompressionBombError:
        raise ValueError("too large (over Pillow's decompression-bomb limit)") from None
    except InputTooLarge as e:
        raise ValueError(f"too large ({e})") from None
    except Exception as e:  # noqa: BLE001 - whatever Pillow raises for a file that is not an image
        raise ValueError(f"not a readable image ({type(e).__name__})") from None
    if width < 1 or height < 1:
        raise ValueError("not a readable image (empty)")
    return width, height


def evaluate_folder(metrics: Iterable[str], folder, dataset, *, num_gen: int | Mapping[str, int] | None = None,
                    warn: Warn = print, **kwargs) -> dict[str, float]:
    """Score a folder of generated images (e.g. HW6's ``1.jpg ... N.jpg``) against ``dataset``.

    Each metric uses min(its count, number of files) images unless ``num_gen`` says otherwise (one
    warning per metric that gets fewer than its nominal count).  Images are read in numeric order,
    converted to RGB and resized to the dataset's resolution when needed.  Files that are not images, too
    large (`readable_images`) or fail to decode are skipped and counted in one warning each; too few left is
    a ValueError.  Other keyword arguments go to :func:`evaluate`.
    """
    names = list(dict.fromkeys(metrics))
    unknown = [m for m in names if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(METRICS)}")
    counts = _counts(names, num_gen)
    files = [path for path, _ in readable_images(folder, warn)]
    for m in names:
        if counts[m] > len(files):
            if num_gen is None:
                warn(f"{m}: {folder} has {len(files)} images, fewer than the nominal {counts[m]}; "
                     f"scoring {len(files)} (not comparable with the full {m})")
            counts[m] = len(files)
    resolution = int(dataset.images.shape[1])
    pos = 0
    warned = []
    undecodable: list[str] = []

    def read(n: int) -> np.ndarray:
        nonlocal pos
        out = []
        while len(out) < n and pos < len(files):
            path = files[pos]
            pos += 1
            try:
                out.append(_decode(path, resolution, folder, warn, warned))
            except Exception:  # noqa: BLE001 - a truncated or corrupt file: skipped, counted in one warning at the end
                undecodable.append(os.path.basename(path))
        if len(out) < n:
            raise ValueError(f"too few readable images in {folder}: {len(undecodable)} of {len(files)} could not be "
                             f"decoded; give fewer with --num, or fix or remove them")
        return np.stack(out)

    kwargs.setdefault("desc", f"reading {folder}")
    values = evaluate(names, read, dataset, num_gen=counts, warn=warn, **kwargs)
    if undecodable:
        warn(f"{folder}: skipped {len(undecodable)} files that could not be decoded ({', '.join(undecodable[:3])}"
             f"{', ...' if len(undecodable) > 3 else ''})")
    return values


def _decode(path: str, resolution: int, folder, warn: Warn, warned: list) -> np.ndarray:
    """One generated image file -> uint8 [resolution, resolution, 3] (resized with Lanczos, said once)."""
    with Image.open(path) as im:
        im = im.convert("RGB")
        if im.size != (resolution, resolution):
            if not warned:
                warn(f"images in {folder} are {im.size[0]}x{im.size[1]}, the dataset is "
                     f"{resolution}x{resolution}: resizing (Lanczos)")
                warned.append(True)
            im = im.resize((resolution, resolution), Image.Resampling.LANCZOS)
        return np.asarray(im)
