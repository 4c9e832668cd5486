"""prepare-data --crop-faces: anime faces cut out of whole illustrations (data/faces.py).

The illustrations come from data/illustrations.py: procedural demo faces pasted at known boxes onto larger
canvases cluttered with rectangles, ellipses, lines and noise. Recall of the pasted faces and the IoU of each crop's square with
the pasted square are asserted; so are the counts of faceless, unreadable and duplicate inputs.
"""
from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
from PIL import Image

from conftest import run_cli
from stylegan_anime.data.demo import render_face
from stylegan_anime.data.errors import DataError
from stylegan_anime.data.faces import (CropSettings, Deduper, FaceReport, colour_signature, crop_faces,
                                       perceptual_hash, square_box)
from stylegan_anime.data.illustrations import clutter, illustration as make_illustration, match_boxes
from stylegan_anime.data.packed import load_packed

pytest.importorskip("animeface")


def illustration(seed: int, faces: int, width: int = 640, height: int = 480):
    """A canvas with `faces` demo faces pasted without overlap; returns (image, [pasted squares])."""
    return make_illustration(np.random.default_rng(seed), faces, lambda i, side: render_face(0, seed * 7 + i, side)[0],
                             width, height)


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def illustrations(tmp_path_factory):
    """A folder of 12 illustrations (16 pasted faces), 2 faceless canvases, 1 byte-identical copy, 1 JPEG
    re-encode of an illustration (a near duplicate), 1 broken file; and where each face was pasted."""
    root = tmp_path_factory.mktemp("illustrations")
    truth: dict[str, list] = {}
    for i in range(12):
        img, boxes = illustration(100 + i, 1 + (i % 3 == 0))
        (root / f"art{i:02d}.png").write_bytes(_png(img))
        truth[f"art{i:02d}.png"] = boxes
    for i in range(2):
        (root / f"empty{i}.png").write_bytes(_png(clutter(np.random.default_rng(900 + i), 500, 400)))
    (root / "copy_of_art01.png").write_bytes((root / "art01.png").read_bytes())
    img = Image.open(root / "art02.png")
    img.point(lambda v: min(255, v + 3)).save(root / "reencoded_art02.jpg", quality=92)
    (root / "broken.png").write_bytes(b"\x89PNG not really")
    return root, truth


@pytest.fixture(scope="module")
def cropped(illustrations, tmp_path_factory):
    root, truth = illustrations
    out = tmp_path_factory.mktemp("packs") / "faces-64"
    ds, report = crop_faces(str(root), out, CropSettings(64), workers=1, progress=False)
    return ds, report, truth


def test_recall_and_box_iou_of_pasted_faces(cropped):
    ds, report, truth = cropped
    crops = ds.meta["crops"]
    ious = np.array([iou for name, boxes in truth.items()
                     for iou in match_boxes(boxes, [c["box"] for c in crops if c["file"] == name])])
    recall = float((ious >= 0.5).mean())
    assert len(ious) == 16
    assert recall >= 0.9, f"recall {recall:.2f}, IoUs {np.round(ious, 2)}"
    assert float(np.median(ious[ious >= 0.5])) >= 0.65, np.round(ious, 2)


def test_counts_duplicates_and_faceless(cropped):
    ds, report, truth = cropped
    assert report.images == 17
    assert report.unreadable == 1 and report.unreadable_examples == ["broken.png"]
    assert report.duplicate_files == 1  # copy_of_art01.png: same bytes
    assert report.without_faces >= 2    # the two clutter canvases (a detector may also miss a face)
    # the re-encoded, brightened art02 gives the same faces again: dropped as near duplicates
    assert report.near_duplicates + report.exact_duplicates >= len(truth["art02.png"])
    assert not any(c["file"] in ("copy_of_art01.png", "reencoded_art02.jpg") for c in ds.meta["crops"])
    assert report.kept == len(ds) == len(ds.meta["crops"])
    assert ds.meta["faces_report"]["kept"] == len(ds)


def test_pack_records_source_and_box_and_crop_matches_source(cropped, illustrations):
    ds, _, _ = cropped
    root, _ = illustrations
    assert ds.images.shape[1:] == (64, 64, 3)
    c = ds.meta["crops"][0]
    x0, y0, x1, y1 = c["box"]
    assert x1 - x0 == y1 - y0 > 0
    src = Image.open(root / c["file"]).convert("RGB")
    assert 0 <= x0 and 0 <= y0 and x1 <= src.width and y1 <= src.height
    expect = np.asarray(src.resize((64, 64), Image.Resampling.LANCZOS, box=(x0, y0, x1, y1))).astype(int)
    assert np.abs(expect - ds.images[0].astype(int)).max() <= 1
    fx, fy, fw, fh = c["face"]
    assert x0 <= fx + fw / 2 <= x1 and y0 <= fy + fh / 2 <= y1  # the face is inside its crop


def test_workers_give_the_same_pack(illustrations, cropped, tmp_path):
    root, _ = illustrations
    ds1, _, _ = cropped
    ds2, _ = crop_faces(str(root), tmp_path / "p", CropSettings(64), workers=2, progress=False)
    assert ds2.meta["crops"] == ds1.meta["crops"]
    assert np.array_equal(np.asarray(ds2.images), np.asarray(ds1.images))


def test_min_face_filters_small_faces(illustrations, tmp_path):
    root, truth = illustrations
    ds, report = crop_faces(str(root), tmp_path / "p", CropSettings(64, min_face=80), workers=1, progress=False)
    assert report.too_small > 0
    assert all(max(c["face"][2:]) >= 80 for c in ds.meta["crops"])
    with pytest.raises(DataError, match="no face of at least 5000 px"):
        crop_faces(str(root), tmp_path / "q", CropSettings(64, min_face=5000), workers=1, progress=False)
    assert not (tmp_path / "q").exists()  # nothing half-written


def test_oversized_illustrations_are_skipped_and_counted(illustrations, tmp_path, monkeypatch):
    root, _ = illustrations
    src = tmp_path / "src"
    src.mkdir()
    (src / "art00.png").write_bytes((root / "art00.png").read_bytes())  # 640x480: 0.3 Mpx
    Image.new("L", (1500, 1500), 90).save(src / "poster.png")         # 2.25 Mpx of one grey: a few KB
    monkeypatch.setenv("STYLEGAN_ANIME_MAX_PIXELS", str(2**20))
    ds, report = crop_faces(str(src), tmp_path / "p", CropSettings(64), workers=1, progress=False)
    assert report.too_large == 1 and report.unreadable == 0 and report.unreadable_examples == ["poster.png"]
    assert "1 too large (over 1 Mpx decoded" in report.lines()[0]
    assert ds.meta["skipped"] == 1 and {c["file"] for c in ds.meta["crops"]} == {"art00.png"}


def test_square_box_geometry():
    assert square_box((100, 100, 50, 50), 0.5, 1000, 1000) == (75, 75, 175, 175)
    assert square_box((0, 10, 40, 20), 0.5, 1000, 1000) == (0, 0, 80, 80)       # moved inside at the corner
    assert square_box((950, 950, 40, 40), 0.5, 1000, 1000) == (920, 920, 1000, 1000)
    assert square_box((10, 10, 300, 300), 1.0, 400, 200) == (60, 0, 260, 200)   # shrunk to the short side, centred
    assert square_box((100, 100, 50, 50), 0.0, 1000, 1000) == (100, 100, 150, 150)


def test_perceptual_hash_separates_near_duplicates_from_other_images():
    a = render_face(0, 1, 96)[0]
    b = render_face(0, 2, 96)[0]
    brighter = np.clip(a.astype(int) + 6, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="JPEG", quality=80)
    jpeg = np.asarray(Image.open(buf).convert("RGB"))
    smaller = np.asarray(Image.fromarray(a).resize((64, 64), Image.Resampling.LANCZOS))
    ha = perceptual_hash(a)
    dist = lambda x: bin(ha ^ perceptual_hash(x)).count("1")  # noqa: E731
    assert dist(a) == 0
    assert max(dist(brighter), dist(jpeg), dist(smaller)) <= 4
    assert dist(b) > 8
    assert dist(np.ascontiguousarray(a[:, ::-1])) > 8  # a mirrored face is not a duplicate


def test_deduper():
    d = Deduper(3)
    assert d.check(0b1011) is None
    d.add(0b1011)
    assert d.check(0b1011) == "exact"
    assert d.check(0b0100) is None          # 4 bits away
    assert d.check(0b1000) == "near"        # 2 bits away
    for i in range(3000):                   # grows past its initial capacity
        d.add((i + 1) << 20)
    assert d.check((2999 + 1) << 20) == "exact"
    assert Deduper(-1).check(5) is None


def _recoloured(img: np.ndarray, rows: slice) -> np.ndarray:
    """img with the chroma of `rows` mirrored (pink <-> green, blue <-> orange), the grey (Y) kept."""
    ycc = np.asarray(Image.fromarray(img).convert("YCbCr")).copy()
    ycc[rows, :, 1:] = 255 - ycc[rows, :, 1:]
    return np.asarray(Image.fromarray(ycc, "YCbCr").convert("RGB"))


def test_dedup_keeps_the_same_drawing_in_other_colours_and_drops_noisy_copies():
    pink = render_face(0, 1, 96)[0]
    hair_swapped = _recoloured(pink, slice(0, 40))  # the top (hair) in other colours
    all_swapped = _recoloured(pink, slice(None))
    noise = np.random.default_rng(0).integers(-6, 7, pink.shape)
    noisy = np.clip(pink.astype(int) + noise, 0, 255).astype(np.uint8)
    dist = lambda x: bin(perceptual_hash(pink) ^ perceptual_hash(x)).count("1")  # noqa: E731
    assert max(dist(hair_swapped), dist(all_swapped), dist(noisy)) <= 4  # by grey hashes alone: all duplicates

    d = Deduper(4)
    d.add(perceptual_hash(pink), colour_signature(pink))
    for recoloured in (hair_swapped, all_swapped):
        assert d.check(perceptual_hash(recoloured), colour_signature(recoloured)) is None  # kept
    assert d.check(perceptual_hash(noisy), colour_signature(noisy)) in ("exact", "near")  # still dropped
    d.add(perceptual_hash(hair_swapped), colour_signature(hair_swapped))
    assert d.check(perceptual_hash(hair_swapped), colour_signature(hair_swapped)) == "exact"


def test_report_names_the_dedup_distance():
    lines = FaceReport(images=3, faces=5, near_duplicates=2, kept=3, dedup_distance=6, too_large=1).lines()
    assert "2 near duplicates dropped (within --dedup-distance 6 bits, same colours)" in lines[1]
    assert "1 too large (over 64 Mpx decoded or 256 MiB per file)" in lines[0]
    assert "near duplicates kept (--dedup-distance -1)" in FaceReport(dedup_distance=-1).lines()[1]


def test_cli_crop_faces_and_errors(illustrations, tmp_path, capsys):
    root, _ = illustrations
    zpath = tmp_path / "art.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        for p in sorted(root.glob("art0[0-3].png")):
            z.write(p, p.name)
    code, _, err = run_cli(["prepare-data", str(zpath), str(tmp_path / "f"), "--size", "64", "--crop-faces",
                            "--no-progress", "--workers", "1"], capsys)
    assert code == 0, err
    assert "packed" in err and "face crops" in err and "faces found" in err and "--dedup-distance 4" in err
    meta = json.loads((tmp_path / "f" / "dataset.json").read_text())
    assert meta["source_kind"] == "zip-faces" and {c["file"] for c in meta["crops"]} <= {f"art0{i}.png" for i in range(4)}
    assert load_packed(tmp_path / "f").meta["count"] == meta["count"]

    for argv, want in [
        (["prepare-data", str(zpath), str(tmp_path / "g"), "--margin", "0.7"], "--margin only applies with --crop-faces"),
        (["prepare-data", str(zpath), str(tmp_path / "g"), "--crop-faces", "--margin", "-1"], "--margin must be"),
        (["prepare-data", "demo", str(tmp_path / "g"), "--crop-faces"], "demo set is faces already"),
        (["prepare-data", str(tmp_path / "f"), str(tmp_path / "g"), "--crop-faces"], "already a packed dataset"),
        (["prepare-data", str(tmp_path / "nope"), str(tmp_path / "g"), "--crop-faces"], "nope"),
    ]:
        code, _, err = run_cli(argv, capsys)
        assert code == 2, (argv, err)
        assert err.startswith("error: ") and want in err and err.count("\n") == 1, err


def test_missing_detector_is_one_line(monkeypatch, illustrations, tmp_path, capsys):
    import stylegan_anime.metrics.afd as afd
    from stylegan_anime.metrics.inception import MetricUnavailable

    def missing():
        raise MetricUnavailable("AFD needs the optional package animeface (No module named 'animeface')")
    monkeypatch.setattr(afd, "get_detector", missing)
    root, _ = illustrations
    code, _, err = run_cli(["prepare-data", str(root), str(tmp_path / "f"), "--crop-faces"], capsys)
    assert code == 2 and "stylegan-anime[faces]" in err and err.count("\n") == 1, err
