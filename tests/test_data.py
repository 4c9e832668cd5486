"""Data pipeline: image decoding, sources, packing, caching. CPU only, tiny files in tmp_path.

Length: the cases of one module under test, listed in full so that each failure names its case.
"""
from __future__ import annotations

import io
import os
import re
import sys
import types
import zipfile

import numpy as np
import pytest
from PIL import Image

import stylegan_anime.data as data_pkg
from stylegan_anime.data import DataError, PackedDataset, open_dataset, prepare_dataset
from stylegan_anime.data import images, packed, sources
from stylegan_anime.data.images import BACKGROUND, UnreadableImage, center_crop_resize, load_image, to_rgb

S = 8  # output size used throughout

# --------------------------------------------------------------------------- helpers


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def solid(rgb, w=6, h=6) -> Image.Image:
    return Image.new("RGB", (w, h), tuple(rgb))


def write_png(path, rgb, w=6, h=6):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    solid(rgb, w, h).save(path, "PNG")


def make_folder(root, n=4) -> list[tuple[int, int, int]]:
    """n solid-colour PNGs in root (two of them nested); returns their colours in sorted-name order."""
    colours = [(10 * i, 255 - 10 * i, 3 * i) for i in range(n)]
    for i, c in enumerate(colours):
        sub = "" if i % 2 == 0 else "nested/deeper"
        write_png(os.path.join(root, sub, f"img{i:02d}.png"), c)
    return colours


def assert_solid(arr, rgb, tol=0):
    assert arr.shape == (S, S, 3) and arr.dtype == np.uint8
    diff = np.abs(arr.astype(int) - np.array(rgb)[None, None])
    assert diff.max() <= tol, (arr[0, 0], rgb)


class Warnings(list):
    def __call__(self, msg):
        self.append(msg)


def open_quiet(spec, size=S, **kw):
    kw.setdefault("progress", False)
    kw.setdefault("warn", Warnings())
    return open_dataset(str(spec), size, **kw)


# --------------------------------------------------------------------------- images.py: modes


def _p_image(transparent: bool) -> Image.Image:
    p = Image.new("P", (6, 6), 1)
    p.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    if transparent:
        p.info["transparency"] = 1
    return p


MODE_CASES = {
    # name: (encoded bytes, expected colour, tolerance)
    "1-white": (lambda: encode(Image.new("1", (6, 6), 1), "PNG"), (255, 255, 255), 0),
    "1-black": (lambda: encode(Image.new("1", (6, 6), 0), "PNG"), (0, 0, 0), 0),
    "L": (lambda: encode(Image.new("L", (6, 6), 100), "PNG"), (100, 100, 100), 0),
    "LA-transparent": (lambda: encode(Image.new("LA", (6, 6), (0, 0)), "PNG"), BACKGROUND, 0),
    "LA-opaque": (lambda: encode(Image.new("LA", (6, 6), (40, 255)), "PNG"), (40, 40, 40), 0),
    "P": (lambda: encode(_p_image(False), "PNG"), (0, 0, 255), 0),
    "P-transparency": (lambda: encode(_p_image(True), "PNG"), BACKGROUND, 0),
    "RGB": (lambda: encode(solid((1, 2, 3)), "PNG"), (1, 2, 3), 0),
    "RGBA-transparent": (lambda: encode(Image.new("RGBA", (6, 6), (0, 0, 0, 0)), "PNG"), BACKGROUND, 0),
    "RGBA-opaque": (lambda: encode(Image.new("RGBA", (6, 6), (9, 8, 7, 255)), "PNG"), (9, 8, 7), 0),
    "RGBA-half": (lambda: encode(Image.new("RGBA", (6, 6), (0, 0, 0, 128)), "PNG"), (127, 127, 127), 1),
    "CMYK-cyan-tiff": (lambda: encode(Image.new("CMYK", (6, 6), (255, 0, 0, 0)), "TIFF"), (0, 255, 255), 0),
    "CMYK-cyan-jpeg": (lambda: encode(Image.new("CMYK", (16, 16), (255, 0, 0, 0)), "JPEG", quality=95),
                       (0, 255, 255), 6),
    "YCbCr-tiff": (lambda: encode(Image.new("YCbCr", (6, 6), (128, 128, 128)), "TIFF"), (128, 128, 128), 1),
    "I;16-max": (lambda: encode(Image.fromarray(np.full((6, 6), 65535, np.uint16)), "PNG"), (255,) * 3, 0),
    "I;16-mid": (lambda: encode(Image.fromarray(np.full((6, 6), 257 * 100, np.uint16)), "PNG"), (100,) * 3, 0),
    "I;16B-tiff": (lambda: encode(Image.new("I;16B", (6, 6), 65535), "TIFF"), (255,) * 3, 0),
    "I-tiff": (lambda: encode(Image.new("I", (6, 6), 257 * 200), "TIFF"), (200,) * 3, 0),
    "F-unit": (lambda: encode(Image.new("F", (6, 6), 0.5), "TIFF"), (128,) * 3, 0),
    "F-255": (lambda: encode(Image.new("F", (6, 6), 200.0), "TIFF"), (200,) * 3, 0),
}


@pytest.mark.parametrize("case", sorted(MODE_CASES))
def test_every_mode_becomes_rgb(case):
    make, rgb, tol = MODE_CASES[case]
    assert_solid(load_image(make(), S), rgb, tol)


def test_sixteen_bit_is_scaled_not_clipped():
    # A gradient 0..65535: clipping (Pillow's plain convert) would turn almost all of it white.
    ramp = np.linspace(0, 65535, 36).astype(np.uint16).reshape(6, 6)
    out = load_image(encode(Image.fromarray(ramp), "PNG"), 6)
    assert out.shape == (6, 6, 3)
    np.testing.assert_allclose(out[..., 0].astype(float), ramp / 257.0, atol=1)


def test_pa_mode_composites_alpha():
    pa = _p_image(False).convert("PA")
    pa.putalpha(0)
    assert pa.mode == "PA"
    assert np.all(np.asarray(to_rgb(pa)) == BACKGROUND)
    pa.putalpha(255)
    assert np.all(np.asarray(to_rgb(pa)) == (0, 0, 255))


def test_background_is_the_module_constant(monkeypatch):
    monkeypatch.setattr(images, "BACKGROUND", (0, 255, 0))
    assert_solid(load_image(encode(Image.new("RGBA", (6, 6), (0, 0, 0, 0)), "PNG"), S), (0, 255, 0))


def test_exif_orientation_is_applied():
    arr = np.zeros((4, 4, 3), np.uint8)
    arr[:2] = (255, 0, 0)  # top half red
    arr[2:] = (0, 0, 255)  # bottom half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": top edge goes to the right
    out = load_image(encode(Image.fromarray(arr), "PNG", exif=exif), 4)
    assert np.all(out[:, :2] == (0, 0, 255)) and np.all(out[:, 2:] == (255, 0, 0))


@pytest.mark.parametrize("w,h", [(9, 3), (30, 10), (3, 9), (10, 30)])
def test_center_crop_keeps_the_middle(w, h):
    arr = np.zeros((h, w, 3), np.uint8)
    arr[...] = (255, 0, 0)  # red bands at both ends of the long side
    if w > h:
        arr[:, w // 3: 2 * w // 3] = (0, 0, 255)
    else:
        arr[h // 3: 2 * h // 3] = (0, 0, 255)
    out = load_image(encode(Image.fromarray(arr), "PNG"), min(w, h) // 2 or 1)
    assert np.all(out == (0, 0, 255))


def test_big_downscale_and_upscale_give_requested_size():
    big = Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 400, 3), np.uint8))
    for fmt in ("PNG", "JPEG"):
        assert load_image(encode(big, fmt), 16).shape == (16, 16, 3)
    assert load_image(encode(solid((5, 6, 7), 3, 3), "PNG"), 20).shape == (20, 20, 3)
    assert center_crop_resize(solid((1, 1, 1), 50, 20), 7).size == (7, 7)


@pytest.mark.parametrize("fmt,kw", [("WEBP", {"lossless": True}), ("BMP", {})])
def test_webp_and_bmp(fmt, kw):
    assert_solid(load_image(encode(solid((30, 60, 90)), fmt, **kw), S), (30, 60, 90))


def test_load_from_path(tmp_path):
    p = tmp_path / "x.png"
    write_png(str(p), (7, 7, 7))
    assert_solid(load_image(str(p), S), (7, 7, 7))
    assert_solid(load_image(p, S), (7, 7, 7))


def test_corrupt_inputs_raise_unreadable():
    jpeg = encode(Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), np.uint8)), "JPEG")
    png = encode(solid((1, 2, 3), 64, 64), "PNG")
    for bad in (jpeg[: len(jpeg) // 2], png[: len(png) // 2], b"", b"not an image at all", b"\x89PNG\r\n\x1a\n"):
        with pytest.raises(UnreadableImage):
            load_image(bad, S)


# --------------------------------------------------------------------------- sources.py


def test_folder_listing_is_recursive_sorted_and_case_insensitive(tmp_path):
    for rel in ("b/z.JPG", "a.PnG", "c/d/e.jpeg", "f.webp", "g.BMP", "notes.txt", "h.gif", "x.png.txt", "._i.jpg"):
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    src = sources.scan_source(str(tmp_path))
    assert src.kind == "folder" and src.path == str(tmp_path)
    assert src.names == ("a.PnG", "b/z.JPG", "c/d/e.jpeg", "f.webp", "g.BMP")
    with src.open() as reader:
        assert reader.read(1) == b"x"


def test_zip_listing_skips_dirs_and_macosx(tmp_path):
    zpath = tmp_path / "set.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("faces/", b"")
        zf.writestr("faces/b.PNG", b"b")
        zf.writestr("faces/a.jpg", b"a")
        zf.writestr("__MACOSX/faces/._a.jpg", b"junk")
        zf.writestr("__MACOSX/faces/c.jpg", b"junk")
        zf.writestr("readme.txt", b"hi")
    src = sources.scan_source(str(zpath))
    assert src.kind == "zip" and src.names == ("faces/a.jpg", "faces/b.PNG")
    with src.open() as reader:
        assert reader.read(1) == b"b"


def test_fingerprints_follow_content(tmp_path):
    write_png(str(tmp_path / "d" / "a.png"), (1, 2, 3))
    fp1 = sources.scan_source(str(tmp_path / "d")).fingerprint
    assert sources.scan_source(str(tmp_path / "d")).fingerprint == fp1
    write_png(str(tmp_path / "d" / "a.png"), (1, 2, 3), w=7)  # modified
    assert sources.scan_source(str(tmp_path / "d")).fingerprint != fp1

    zpath = tmp_path / "z.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("a.png", b"one")
    fz1 = sources.scan_source(str(zpath)).fingerprint
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("a.png", b"two")
    assert sources.scan_source(str(zpath)).fingerprint != fz1


def test_source_errors_name_the_path(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(DataError, match="does not exist: " + re.escape(str(missing))):
        open_quiet(missing, cache_dir=tmp_path / "cache")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no images here")
    with pytest.raises(DataError, match=r"no images \(jpg/jpeg/png/webp/bmp\) found in " + re.escape(str(empty))):
        open_quiet(empty, cache_dir=tmp_path / "cache")
    ezip = tmp_path / "empty.zip"
    with zipfile.ZipFile(ezip, "w") as zf:
        zf.writestr("a.txt", b"x")
    with pytest.raises(DataError, match="no images .* found in " + re.escape(str(ezip))):
        open_quiet(ezip, cache_dir=tmp_path / "cache")
    other = tmp_path / "file.csv"
    other.write_text("a,b")
    with pytest.raises(DataError, match=re.escape(str(other))):
        open_quiet(other, cache_dir=tmp_path / "cache")
    fakezip = tmp_path / "fake.zip"
    fakezip.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a valid zip file: " + re.escape(str(fakezip))):
        open_quiet(fakezip, cache_dir=tmp_path / "cache")


# --------------------------------------------------------------------------- packing a folder / zip


def test_folder_pack_skips_unreadable_with_one_warning(tmp_path):
    src = tmp_path / "src"
    colours = make_folder(src, 3)
    good_jpeg = encode(Image.fromarray(np.random.default_rng(2).integers(0, 255, (32, 32, 3), np.uint8)), "JPEG")
    (src / "nested" / "broken.jpg").write_bytes(good_jpeg[: len(good_jpeg) // 2])
    (src / "fake.png").write_text("this is text with a png name")
    (src / "notes.txt").write_text("ignored")
    (src / "UPPER.JPG").write_bytes(encode(solid((200, 100, 50), 16, 16), "JPEG", quality=95))
    warns = Warnings()
    ds = open_quiet(src, cache_dir=tmp_path / "cache", warn=warns)
    assert isinstance(ds, PackedDataset)
    assert len(ds) == 4 and ds.resolution == S
    assert ds.images.shape == (4, S, S, 3) and ds.images.dtype == np.uint8
    assert ds.meta["skipped"] == 2 and ds.labels is None and ds.label_names is None
    assert len(warns) == 1
    assert warns[0].startswith(f"skipped 2 unreadable files in {src} (e.g. ")
    assert "fake.png" in warns[0] and "nested/broken.jpg" in warns[0]
    # Sorted order: UPPER.JPG, img00, img02, nested/deeper/img01 (skipped rows closed up).
    assert_solid(ds.images[0], (200, 100, 50), tol=8)
    assert_solid(ds.images[1], colours[0])
    assert_solid(ds.images[2], colours[2])
    assert_solid(ds.images[3], colours[1])


def test_default_warning_goes_to_stderr(tmp_path, capsys):
    src = tmp_path / "src"
    make_folder(src, 1)
    (src / "bad.png").write_bytes(b"junk")
    open_dataset(str(src), S, cache_dir=tmp_path / "cache", progress=False)
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"warning: skipped 1 unreadable files in {src} (e.g. bad.png)"]


def test_all_unreadable_is_an_error(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.jpg").write_bytes(b"junk")
    (src / "b.png").write_bytes(b"junk")
    with pytest.raises(DataError, match=re.escape(str(src))):
        open_quiet(src, cache_dir=tmp_path / "cache")
    assert not [n for n in os.listdir(tmp_path / "cache")]  # no entry, no temp leftovers


def test_zip_equals_folder(tmp_path):
    src = tmp_path / "src"
    make_folder(src, 4)
    zpath = tmp_path / "src.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for root, _, files in os.walk(src):
            for f in files:
                full = os.path.join(root, f)
                zf.write(full, os.path.relpath(full, src))
        zf.writestr("__MACOSX/._img00.png", b"junk")
    a = open_quiet(src, cache_dir=tmp_path / "cache")
    b = open_quiet(zpath, cache_dir=tmp_path / "cache")
    assert b.meta["source_kind"] == "zip" and b.meta["skipped"] == 0
    np.testing.assert_array_equal(np.asarray(a.images), np.asarray(b.images))


def test_cached_pack_is_reused_and_rebuilt_on_change(tmp_path, monkeypatch):
    src, cache = tmp_path / "src", tmp_path / "cache"
    make_folder(src, 3)
    builds = []
    real_fill = packed._fill
    monkeypatch.setattr(packed, "_fill", lambda *a, **k: builds.append(1) or real_fill(*a, **k))

    first = open_quiet(src, cache_dir=cache)
    npy = os.path.join(first.path, "images.npy")
    mtime = os.stat(npy).st_mtime_ns
    again = open_quiet(src, cache_dir=cache)
    assert len(builds) == 1 and again.path == first.path and os.stat(npy).st_mtime_ns == mtime
    assert os.listdir(cache) == [os.path.basename(first.path)]

    write_png(str(src / "new.png"), (1, 1, 1))  # add a file
    grown = open_quiet(src, cache_dir=cache)
    assert len(builds) == 2 and len(grown) == 4 and grown.path != first.path
    assert os.listdir(cache) == [os.path.basename(grown.path)]  # superseded entry pruned

    write_png(str(src / "new.png"), (9, 9, 9), w=9)  # modify a file
    changed = open_quiet(src, cache_dir=cache)
    assert len(builds) == 3 and len(changed) == 4
    assert_solid(changed.images[list(changed.images[:, 0, 0, 0]).index(9)], (9, 9, 9))

    os.remove(src / "new.png")  # remove a file
    assert len(open_quiet(src, cache_dir=cache)) == 3 and len(builds) == 4

    open_quiet(src, 4, cache_dir=cache)  # another size is another entry
    assert len(builds) == 5 and len(os.listdir(cache)) == 2


def test_cache_dir_from_environment(tmp_path, monkeypatch):
    src = tmp_path / "src"
    make_folder(src, 1)
    monkeypatch.setenv("STYLEGAN_ANIME_CACHE", str(tmp_path / "envcache"))
    ds = open_quiet(src)
    assert os.path.dirname(ds.path) == str(tmp_path / "envcache")


def test_interrupted_build_leaves_nothing_that_looks_valid(tmp_path, monkeypatch):
    src, cache = tmp_path / "src", tmp_path / "cache"
    make_folder(src, 3)
    calls = []

    def flaky(fp, size, max_pixels=None):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return images.decode_image(fp, size, max_pixels)

    monkeypatch.setattr(packed, "decode_image", flaky)
    with pytest.raises(KeyboardInterrupt):
        open_quiet(src, cache_dir=cache)
    assert os.listdir(cache) == []
    monkeypatch.undo()
    assert len(open_quiet(src, cache_dir=cache)) == 3


def test_multiprocess_path_equals_inline(tmp_path, monkeypatch):
    src = tmp_path / "src"
    make_folder(src, 10)
    (src / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    inline_warns, pool_warns = Warnings(), Warnings()
    inline = open_quiet(src, cache_dir=tmp_path / "c1", workers=1, warn=inline_warns)
    monkeypatch.setattr(packed, "INLINE_THRESHOLD", 0)
    spawned = []
    real = packed._decode_pooled
    monkeypatch.setattr(packed, "_decode_pooled", lambda *a: spawned.append(1) or real(*a))
    pooled = open_quiet(src, cache_dir=tmp_path / "c2", workers=2, warn=pool_warns)
    assert spawned == [1]
    assert len(pooled) == len(inline) == 10
    np.testing.assert_array_equal(np.asarray(pooled.images), np.asarray(inline.images))
    assert pool_warns == inline_warns and len(pool_warns) == 1


def test_broken_pool_falls_back_to_inline(tmp_path, monkeypatch):
    from concurrent.futures.process import BrokenProcessPool

    src = tmp_path / "src"
    colours = make_folder(src, 6)
    monkeypatch.setattr(packed, "INLINE_THRESHOLD", 0)

    def dies_after_two(job, count, workers):
        decoder = job.decoder()
        yield (0, *decoder(0))
        yield (1, *decoder(1))
        raise BrokenProcessPool("worker killed")

    monkeypatch.setattr(packed, "_decode_pooled", dies_after_two)
    warns = Warnings()
    ds = open_quiet(src, cache_dir=tmp_path / "cache", workers=2, warn=warns)
    assert len(ds) == 6 and len(warns) == 1 and "remaining 4 images" in warns[0]
    assert_solid(ds.images[0], colours[0])
    assert_solid(ds.images[5], colours[5])


# --------------------------------------------------------------------------- prepare_dataset / packed dirs


def test_prepared_pack_opens_directly(tmp_path):
    src, out = tmp_path / "src", tmp_path / "packs" / "mine"
    make_folder(src, 3)
    made = prepare_dataset(str(src), str(out), S, progress=False, warn=Warnings())
    assert made.path == str(out) and sorted(os.listdir(out)) == ["dataset.json", "images.npy"]
    assert np.load(out / "images.npy", mmap_mode="r").shape == (3, S, S, 3)
    meta = made.meta
    assert (meta["count"], meta["size"], meta["skipped"], meta["source"]) == (3, S, 0, str(src))
    assert meta["fingerprint"] == sources.scan_source(str(src)).fingerprint

    cache = tmp_path / "cache"
    opened = open_quiet(out, cache_dir=cache)
    assert opened.path == str(out) and not cache.exists()  # no copy into the cache
    np.testing.assert_array_equal(np.asarray(opened.images), np.asarray(made.images))
    assert open_quiet(out / "images.npy", cache_dir=cache).path == str(out)

    with pytest.raises(DataError, match=re.escape(str(out)) + ".*--size 16"):
        open_quiet(out, 16, cache_dir=cache)

    write_png(str(src / "more.png"), (5, 5, 5))  # re-preparing over an existing pack replaces it
    assert len(prepare_dataset(str(src), str(out), S, progress=False)) == 4
    assert not [n for n in os.listdir(out.parent) if n != "mine"]


def test_prepare_refuses_to_overwrite_other_things(tmp_path):
    src = tmp_path / "src"
    make_folder(src, 1)
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x.txt").write_text("keep me")
    for target in (afile, busy):
        with pytest.raises(DataError, match=re.escape(str(target))):
            prepare_dataset(str(src), str(target), S, progress=False)
    assert afile.read_text() == "keep me" and (busy / "x.txt").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert len(prepare_dataset(str(src), str(empty), S, progress=False)) == 1


def test_half_pack_is_reported(tmp_path):
    half = tmp_path / "half"
    half.mkdir()
    np.save(half / "images.npy", np.zeros((1, S, S, 3), np.uint8))
    with pytest.raises(DataError, match="dataset.json.*" + re.escape(str(half))):
        open_quiet(half, cache_dir=tmp_path / "cache")


# --------------------------------------------------------------------------- demo


@pytest.fixture
def fake_demo(monkeypatch):
    """A stand-in for stylegan_anime.data.demo: colour encodes (index, hair, eye)."""
    mod = types.ModuleType("stylegan_anime.data.demo")
    mod.HAIR_COLORS = tuple(f"hair{i}" for i in range(12))
    mod.EYE_COLORS = tuple(f"eye{i}" for i in range(10))
    mod.DEMO_VERSION = 1
    mod.DEFAULT_COUNT = 7
    mod.calls = []

    def render_face(seed, index, size):
        mod.calls.append((seed, index, size))
        img = np.zeros((size, size, 3), np.uint8)
        img[..., 0] = index
        return img, index % 12, index % 10

    mod.render_face = render_face
    monkeypatch.setitem(sys.modules, "stylegan_anime.data.demo", mod)
    monkeypatch.setattr(data_pkg, "demo", mod, raising=False)
    return mod


def test_demo_pack_has_labels(tmp_path, fake_demo):
    ds = open_quiet("demo:13", cache_dir=tmp_path)
    assert len(ds) == 13 and ds.images.shape == (13, S, S, 3)
    assert {seed for seed, _, _ in fake_demo.calls} == {0}
    assert ds.label_names == {"hair": list(fake_demo.HAIR_COLORS), "eye": list(fake_demo.EYE_COLORS)}
    assert ds.labels.dtype == np.int64 and ds.labels.shape == (13, 2)
    np.testing.assert_array_equal(ds.labels[:, 0], np.arange(13) % 12)
    np.testing.assert_array_equal(ds.labels[:, 1], np.arange(13) % 10)
    np.testing.assert_array_equal(ds.images[:, 0, 0, 0], np.arange(13))
    assert len(open_quiet("demo", cache_dir=tmp_path)) == fake_demo.DEFAULT_COUNT

    n_calls = len(fake_demo.calls)
    open_quiet("demo:13", cache_dir=tmp_path)
    assert len(fake_demo.calls) == n_calls  # reused
    fake_demo.DEMO_VERSION = 2
    open_quiet("demo:13", cache_dir=tmp_path)
    assert len(fake_demo.calls) == n_calls + 13  # new drawing version -> rebuilt


def test_demo_labels_survive_prepare(tmp_path, fake_demo):
    out = tmp_path / "demo_pack"
    prepare_dataset("demo:5", str(out), S, progress=False)
    ds = open_quiet(out, cache_dir=tmp_path / "cache")
    assert ds.labels.tolist() == [[i % 12, i % 10] for i in range(5)]
    assert ds.label_names["hair"][0] == "hair0"


@pytest.mark.parametrize("spec", ["demo:0", "demo:-3", "demo:abc", "demo:", "demo:1.5"])
def test_bad_demo_spec(tmp_path, fake_demo, spec):
    with pytest.raises(DataError, match=re.escape(spec)):
        open_quiet(spec, cache_dir=tmp_path)


def test_real_demo_module_if_present(tmp_path):
    demo = pytest.importorskip("stylegan_anime.data.demo")
    ds = open_quiet("demo:3", 16, cache_dir=tmp_path)
    assert ds.images.shape == (3, 16, 16, 3) and ds.labels.shape == (3, 2)
    assert ds.label_names == {"hair": list(demo.HAIR_COLORS), "eye": list(demo.EYE_COLORS)}
    first, hair, eye = demo.render_face(0, 0, 16)
    np.testing.assert_array_equal(ds.images[0], first)
    assert ds.labels[0].tolist() == [hair, eye]


def test_bad_size_is_a_data_error(tmp_path):
    with pytest.raises(DataError):
        open_quiet("demo:1", 0, cache_dir=tmp_path)
