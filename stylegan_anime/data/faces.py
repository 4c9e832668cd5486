"""`prepare-data SRC OUT --crop-faces`: anime faces cut out of whole illustrations, deduplicated, packed.

Per source image (in worker processes): decode at full resolution, detect faces with the `animeface`
cascade (the detector of the AFD metric, optional extra `stylegan-anime[faces]`) on a copy whose long
side is at most `max_side`, and for every face of at least `min_face` px cut a square around it:

    side   = (1 + 2 * margin) * max(face w, face h)      margin 0.5: the face box is half the crop
    centre = the face box's centre, the square then moved inside the image (or shrunk to fit it)

and resize it to `size` (Lanczos). Then, in source order, drop duplicates: source files with identical
bytes, and crops whose 64-bit perceptual hash (DCT of a 32x32 grey image, the 8x8 lowest frequencies
against their median) is within `dedup_distance` bits of a crop already kept (0 = identical pictures only)
AND whose colours match it: the grey hash is blind to hue (a green-haired face and the same drawing with pink
hair hash alike), so each crop also has a colour signature (mean chroma Cb, Cr of an 8x8 grid) and a near
duplicate must be within COLOUR_TOLERANCE of the kept crop's in every cell. Files over the input limits
(limits.py: pixels from the header, bytes of a file or zip member) are skipped before decoding, and counted.
The pack records per crop its source file, the square (x0, y0, x1, y1) and the face box (x, y, w, h) in
source pixels, and the detector's score; `dataset.json["faces_report"]` has the counts printed at the end.
"""
from __future__ import annotations

import hashlib
import io
import itertools
import multiprocessing
import os
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field

import numpy as np
from PIL import Image
from tqdm import tqdm

from .errors import DataError
from .images import BACKGROUND, UnreadableImage, _apply_orientation, to_rgb
from .limits import InputLimits, InputTooLarge
from .sources import ImageSource, scan_source
from .writer import PackWriter

HASH_SIDE = 32   # the grey image the hash's DCT is taken of
HASH_FREQ = 8    # 8x8 low frequencies -> 64 bits
COLOUR_GRID = 8  # the colour signature: mean Cb, Cr of an 8x8 grid of cells
COLOUR_TOLERANCE = 12  # a near duplicate's cells differ by at most this (of 255) in Cb and Cr
# Measured on demo faces: JPEG q80 / +6 brightness / 96->64 px resize / +-8 noise move a cell by <= 3,
# another face by >= 42 somewhere.
IN_FLIGHT_TASKS = 4  # per worker: source images submitted ahead of the writer


@dataclass(frozen=True)
class CropSettings:
    size: int                     # output resolution
    margin: float = 0.5           # crop side = (1 + 2 margin) x face side
    min_face: int | None = None   # smallest face side kept, source px; None: size / (1 + 2 margin) (no upscaling)
    max_side: int = 1600          # detection runs on a copy at most this large
    dedup_distance: int = 4       # perceptual-hash bits; -1: keep near duplicates

    def __post_init__(self):
        if not 0 <= self.margin <= 3:
            raise DataError(f"--margin must be between 0 and 3, got {self.margin}")
        if self.min_face is not None and self.min_face < 1:
            raise DataError(f"--min-face must be positive, got {self.min_face}")
        if not -1 <= self.dedup_distance <= 32:
            raise DataError(f"--dedup-distance must be between -1 (off) and 32 bits, got {self.dedup_distance}")
        if self.max_side < 64:
            raise DataError(f"max_side must be at least 64, got {self.max_side}")

    @property
    def smallest_face(self) -> int:
        return self.min_face if self.min_face is not None else max(1, round(self.size / (1 + 2 * self.margin)))


@dataclass
class FaceReport:
    images: int = 0            # source image files
    unreadable: int = 0
    too_large: int = 0         # skipped before decoding: over the pixel / byte limits (limits.py)
    duplicate_files: int = 0   # same bytes as an earlier file
    without_faces: int = 0     # readable, no face kept (none found, or all too small)
    faces: int = 0             # faces found by the detector
    too_small: int = 0
    exact_duplicates: int = 0  # crops with a hash identical to a kept crop
    near_duplicates: int = 0   # crops within dedup_distance bits (> 0) of a kept crop
    kept: int = 0
    dedup_distance: int = 4    # the --dedup-distance these counts were made with
    unreadable_examples: list = field(default_factory=list)

    def lines(self, limits: InputLimits | None = None) -> list[str]:
        too_large = (f", {self.too_large} too large ({(limits or InputLimits.from_env()).describe()})"
                     if self.too_large else "")
        dedup = ("near duplicates kept (--dedup-distance -1)" if self.dedup_distance < 0 else
                 f"near duplicates dropped (within --dedup-distance {self.dedup_distance} bits, same colours)")
        return [f"{self.images} images: {self.unreadable} unreadable{too_large}, {self.duplicate_files} duplicate "
                f"files, {self.without_faces} without a usable face",
                f"{self.faces} faces found: {self.too_small} too small, {self.exact_duplicates} exact duplicates "
                f"dropped, {self.near_duplicates} {dedup}, {self.kept} kept"]


# ------------------------------------------------------------------------------------------ geometry


def square_box(face: tuple[float, float, float, float], margin: float, width: int, height: int
               ) -> tuple[int, int, int, int]:
    """The crop (x0, y0, x1, y1) around face (x, y, w, h): a square of side (1 + 2 margin) max(w, h) centred on
    the face, moved inside the image; shrunk to the image's short side if larger."""
    x, y, w, h = face
    side = min(round((1 + 2 * margin) * max(w, h)), width, height)
    cx, cy = x + w / 2, y + h / 2
    x0 = int(round(min(max(cx - side / 2, 0), width - side)))
    y0 = int(round(min(max(cy - side / 2, 0), height - side)))
    return x0, y0, x0 + side, y0 + side


def box_iou(a, b) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


# ------------------------------------------------------------------------------------------ hashing


def _dct_matrix(n: int) -> np.ndarray:
    """Orthonormal DCT-II matrix [n, n]: row k = frequency k."""
    k, i = np.arange(n)[:, None], np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2 / n)
    m[0] /= np.sqrt(2)
    return m


_DCT = _dct_matrix(HASH_SIDE)[:HASH_FREQ]  # [8, 32]


def perceptual_hash(img: np.ndarray) -> int:
    """64-bit pHash of uint8 [H,W,3]: bit k is set where the k-th of the 8x8 lowest DCT frequencies of the
    32x32 grey image exceeds their median (the constant term left out of the median)."""
    grey = np.asarray(Image.fromarray(img).convert("L").resize((HASH_SIDE, HASH_SIDE), Image.Resampling.BOX),
                      dtype=np.float64)
    freq = (_DCT @ grey @ _DCT.T).ravel()          # [64]
    bits = freq > np.median(freq[1:])
    return int(np.packbits(bits.astype(np.uint8)).view(">u8")[0])


def colour_signature(img: np.ndarray) -> np.ndarray:
    """uint8 [COLOUR_GRID * COLOUR_GRID * 2]: the mean chroma (Cb, Cr) of each cell of uint8 [H,W,3]. Blind to
    brightness and fine detail (the grey hash sees those), it tells a green-haired face from a pink-haired one."""
    ycc = Image.fromarray(img).convert("YCbCr").resize((COLOUR_GRID, COLOUR_GRID), Image.Resampling.BOX)
    return np.ascontiguousarray(np.asarray(ycc, dtype=np.uint8)[:, :, 1:]).ravel()  # [G*G*2]


class Deduper:
    """Keeps the hashes (and colour signatures) of kept crops; `check(h, colour)` says 'exact', 'near' or None
    (new) against all of them. A kept crop counts only where its colours also match (every cell of the colour
    signatures within `colour_tolerance`); with `colour` None only the hashes are compared."""

    def __init__(self, distance: int, colour_tolerance: int = COLOUR_TOLERANCE):
        self.distance, self.colour_tolerance = distance, colour_tolerance
        self._hashes = np.zeros(1024, np.uint64)
        self._colours = np.zeros((1024, COLOUR_GRID * COLOUR_GRID * 2), np.uint8)
        self._has_colour = np.zeros(1024, bool)
        self._n = 0

    def check(self, h: int, colour: np.ndarray | None = None) -> str | None:
        if self.distance < 0 or self._n == 0:
            return None
        d = np.bitwise_count(self._hashes[:self._n] ^ np.uint64(h))  # [n]
        close = d <= self.distance
        if colour is not None and close.any():
            idx = np.flatnonzero(close & self._has_colour[:self._n])
            diff = np.abs(self._colours[idx].astype(np.int16) - colour.astype(np.int16)).max(axis=1)
            close[idx[diff > self.colour_tolerance]] = False
        if not close.any():
            return None
        return "exact" if d[close].min() == 0 else "near"

    def add(self, h: int, colour: np.ndarray | None = None) -> None:
        if self._n == len(self._hashes):
            grow = len(self._hashes)
            self._hashes = np.concatenate([self._hashes, np.zeros_like(self._hashes)])
            self._colours = np.concatenate([self._colours, np.zeros((grow, self._colours.shape[1]), np.uint8)])
            self._has_colour = np.concatenate([self._has_colour, np.zeros(grow, bool)])
        self._hashes[self._n] = np.uint64(h)
        if colour is not None:
            self._colours[self._n] = colour
            self._has_colour[self._n] = True
        self._n += 1


# ------------------------------------------------------------------------------------------ per image


@dataclass
class _Face:
    crop: np.ndarray          # uint8 [S,S,3]
    box: tuple                # crop square (x0, y0, x1, y1), source px
    face: tuple               # detected face (x, y, w, h), source px
    score: float
    hash: int
    colour: np.ndarray        # colour_signature(crop)


@dataclass
class _ImageResult:
    index: int
    digest: str | None        # sha1 of the file's bytes; None: unreadable
    faces: list[_Face]
    found: int                # faces detected (before the size filter)
    too_large: bool = False   # skipped: over the input limits (digest None too)


def decode_full(data: bytes, max_pixels: int | None = None) -> np.ndarray:
    """RGB uint8 [H,W,3] at full resolution (EXIF orientation applied, alpha on BACKGROUND). InputTooLarge,
    before decoding, when the header's width x height is over ``max_pixels`` (default: limits.py)."""
    limits = InputLimits.from_env() if max_pixels is None else InputLimits(max_pixels=max_pixels)
    try:
        with Image.open(io.BytesIO(data)) as img:
            limits.check_pixels(*img.size)
            img = to_rgb(_apply_orientation(img))
            img.load()
            return np.asarray(img)
    except (InputTooLarge, Image.DecompressionBombError) as e:
        raise InputTooLarge(str(e)) from None
    except Exception as e:  # noqa: BLE001 - any decoder failure is an unreadable file
        raise UnreadableImage(str(e)) from None


class _Cropper:
    """Per process: source entry index -> _ImageResult."""

    def __init__(self, source: ImageSource, settings: CropSettings, limits: InputLimits = InputLimits()):
        from ..metrics.afd import _detect_raw, get_detector

        self.reader, self.settings, self.limits = source.open(), settings, limits
        detector = get_detector()  # self-checks the detector once per process
        self.detect = lambda rgb: _detect_raw(rgb, detector.backend)

    def __call__(self, i: int) -> _ImageResult:
        s = self.settings
        try:
            data = self.reader.read(i, self.limits.max_file_bytes)
            rgb = decode_full(data, self.limits.max_pixels)
        except InputTooLarge:
            return _ImageResult(i, None, [], 0, too_large=True)
        except (UnreadableImage, OSError, RuntimeError, EOFError):
            return _ImageResult(i, None, [], 0)
        h, w = rgb.shape[:2]
        scale = min(1.0, s.max_side / max(h, w))
        small = rgb if scale == 1 else np.asarray(Image.fromarray(rgb).resize(
            (max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BOX))
        found = self.detect(small)
        pil, faces = Image.fromarray(rgb), []
        for f in found:
            fx, fy, fw, fh = (v / scale for v in f["face_box"])
            if max(fw, fh) < s.smallest_face:
                continue
            box = square_box((fx, fy, fw, fh), s.margin, w, h)
            crop = np.asarray(pil.resize((s.size, s.size), Image.Resampling.LANCZOS, box=box))
            faces.append(_Face(crop, box, tuple(round(v, 1) for v in (fx, fy, fw, fh)),
                               float(f.get("likelihood", 1.0)), perceptual_hash(crop), colour_signature(crop)))
        return _ImageResult(i, hashlib.sha1(data).hexdigest(), faces, len(found))

    def close(self) -> None:
        self.reader.close()


_worker: _Cropper | None = None


def _init_worker(source: ImageSource, settings: CropSettings, limits: InputLimits) -> None:
    global _worker
    _worker = _Cropper(source, settings, limits)


def _work(i: int) -> _ImageResult:
    return _worker(i)


def _results(source: ImageSource, settings: CropSettings, workers: int, limits: InputLimits):
    """_ImageResult for every entry, in source order; with workers, IN_FLIGHT_TASKS images per worker are
    submitted ahead (not all of them: the results of a slow writer must not pile up in memory)."""
    n = len(source.names)
    if workers > 1 and n >= 2 * workers:
        ctx = multiprocessing.get_context("spawn")  # safe with torch threads in the parent
        indices = iter(range(n))
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                 initargs=(source, settings, limits)) as pool:
            pending = deque(pool.submit(_work, i) for i in itertools.islice(indices, IN_FLIGHT_TASKS * workers))
            try:
                while pending:
                    result = pending.popleft().result()
                    pending.extend(pool.submit(_work, i) for i in itertools.islice(indices, 1))
                    yield result
            finally:
                for f in pending:
                    f.cancel()
        return
    cropper = _Cropper(source, settings, limits)
    try:
        for i in range(n):
            yield cropper(i)
    finally:
        cropper.close()


# ------------------------------------------------------------------------------------------ the command


def require_detector() -> None:
    """A one-line DataError when animeface is missing or does not work here."""
    from ..metrics.afd import get_detector
    from ..metrics.inception import MetricUnavailable

    try:
        get_detector()
    except MetricUnavailable as e:
        raise DataError(f"--crop-faces needs a working anime-face detector: {e}; "
                        "install it with pip install 'stylegan-anime[faces]'") from None


def crop_faces(source: str, out: str | os.PathLike, settings: CropSettings, *, labels: str | None = None,
               workers: int | None = None, progress: bool = True):
    """Detect, crop, deduplicate and pack; returns (PackedDataset, FaceReport)."""
    from .packed import _as_pack_dir, _is_demo_spec, load_packed

    source = str(source)
    if _is_demo_spec(source):
        raise DataError("--crop-faces works on folders and zips of illustrations; the demo set is faces already")
    if _as_pack_dir(source) is not None:
        raise DataError(f"{source} is already a packed dataset; give --crop-faces the original illustrations")
    require_detector()
    src = scan_source(source)
    file_labels = names_meta = None
    if labels is not None:
        from .labels import label_names, load_labels
        file_labels, _ = load_labels(labels, src.names)  # [files, 2]: every crop inherits its file's row
        names_meta = label_names()
    workers = min(8, os.cpu_count() or 1) if workers is None else max(1, int(workers))
    limits = InputLimits.from_env()
    report = FaceReport(images=len(src.names), dedup_distance=settings.dedup_distance)
    dedup = Deduper(settings.dedup_distance)
    seen_files: set[str] = set()
    crops, crop_labels = [], []
    meta = {"source": src.path, "source_kind": f"{src.kind}-faces", "fingerprint": src.fingerprint,
            "background": list(BACKGROUND), "crop_settings": asdict(settings)}
    with PackWriter(out, settings.size, meta) as writer, \
            tqdm(total=len(src.names), desc=f"cropping faces in {src.path}", unit="img", disable=not progress) as bar:
        for r in _results(src, settings, workers, limits):
            bar.update(1)
            name = src.names[r.index]
            if r.too_large:
                report.too_large += 1
                report.unreadable_examples = (report.unreadable_examples + [name])[:20]
                continue
            if r.digest is None:
                report.unreadable += 1
                report.unreadable_examples = (report.unreadable_examples + [name])[:20]
                continue
            if r.digest in seen_files:
                report.duplicate_files += 1
                continue
            seen_files.add(r.digest)
            report.faces += r.found
            report.too_small += r.found - len(r.faces)
            kept_here = 0
            for f in r.faces:
                verdict = dedup.check(f.hash, f.colour)
                if verdict is not None:
                    setattr(report, f"{verdict}_duplicates", getattr(report, f"{verdict}_duplicates") + 1)
                    continue
                dedup.add(f.hash, f.colour)
                writer.add(f.crop)
                crops.append({"file": name, "box": list(f.box), "face": list(f.face), "score": round(f.score, 4)})
                if file_labels is not None:
                    crop_labels.append([int(v) for v in file_labels[r.index]])
                kept_here += 1
            report.without_faces += not r.faces
            report.kept += kept_here
            bar.set_postfix(crops=report.kept, refresh=False)
        if report.kept == 0:
            raise DataError(f"no face of at least {settings.smallest_face} px found in the {report.images} images "
                            f"of {src.path} ({report.faces} smaller ones); try a lower --min-face")
        writer.meta.update({"crops": crops, "faces_report": asdict(report),
                            "skipped": report.unreadable + report.too_large})
        if names_meta is not None:
            writer.meta.update({"label_names": names_meta, "labels": crop_labels})
    return load_packed(writer.out), report


__all__ = ["CropSettings", "Deduper", "FaceReport", "box_iou", "colour_signature", "crop_faces", "decode_full",
           "perceptual_hash", "require_detector", "square_box"]
