"""The data pipeline against hostile inputs and at high resolution: decompression bombs (pixels, zip members),
an unwritable cache, two prepare-data runs into one output, upscale counts, and memory that does not grow with
the number of images. CPU only, small files in tmp_path (the caps are lowered through the environment, so the
"bombs" stay a few MB).
"""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
import tracemalloc
import zipfile

import numpy as np
import pytest
from PIL import Image

from conftest import run_cli
from stylegan_anime.data import DataError, open_dataset, packed, prepare_dataset
from stylegan_anime.data.images import load_image
from stylegan_anime.data.limits import FILE_BYTES_ENV, PIXELS_ENV, InputLimits, InputTooLarge
from stylegan_anime.data.output_lock import OutputLock, OutputLocked, lock_path
from stylegan_anime.data.sources import scan_source
from stylegan_anime.data.writer import PackWriter

S = 8


class Warnings(list):
    def __call__(self, msg):
        self.append(msg)


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def small_folder(root, n=2):
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("RGB", (6, 6), (40 * i, 90, 200)).save(root / f"ok{i}.png")
    return root


BOMB_SIDE = 2000  # 4 Mpx of one grey: ~4 KB as a PNG, 4 MB decoded ("L"); the cap below is 1 Mpx


def png_bomb() -> bytes:
    return png_bytes(Image.new("L", (BOMB_SIDE, BOMB_SIDE), 128))


# --------------------------------------------------------------------------- 1. decompression bombs


def test_pixel_bomb_is_refused_before_decoding(monkeypatch):
    monkeypatch.setenv(PIXELS_ENV, str(2**20))
    data = png_bomb()
    assert len(data) < 50_000
    tracemalloc.start()
    try:
        with pytest.raises(InputTooLarge, match=f"{BOMB_SIDE}x{BOMB_SIDE} pixels"):
            load_image(data, S)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < BOMB_SIDE * BOMB_SIDE // 4  # decoding it would allocate 4 MB: only the header was read
    assert load_image(data, S, max_pixels=BOMB_SIDE * BOMB_SIDE).shape == (S, S, 3)  # at the cap: fine


def test_pack_skips_and_counts_too_large_files(tmp_path, monkeypatch):
    monkeypatch.setenv(PIXELS_ENV, str(2**20))
    monkeypatch.setenv(FILE_BYTES_ENV, str(2**20))
    src = small_folder(tmp_path / "src")
    (src / "bomb.png").write_bytes(png_bomb())
    (src / "huge.png").write_bytes(png_bytes(Image.new("RGB", (6, 6))) + b"\0" * (2**20 + 10))  # 1 MB + a bit
    (src / "junk.png").write_bytes(b"junk")
    warns = Warnings()
    ds = open_dataset(str(src), S, cache_dir=tmp_path / "cache", progress=False, warn=warns)
    assert len(ds) == 2 and ds.meta["skipped"] == 3 and ds.meta["skipped_too_large"] == 2
    assert len(warns) == 1, warns
    assert warns[0].startswith(f"skipped 3 unreadable files in {src} (2 too large: over 1 Mpx decoded or 1 MiB "
                               "per file)"), warns


def _zip_with_big_member(path, member_bytes: int):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.png", png_bytes(Image.new("RGB", (6, 6), (1, 2, 3))))
        zf.writestr("big.png", b"\0" * member_bytes)  # inflates to member_bytes from a few KB


def test_zip_member_bomb_is_not_inflated(tmp_path, monkeypatch):
    monkeypatch.setenv(FILE_BYTES_ENV, str(2**20))
    zpath = tmp_path / "bomb.zip"
    _zip_with_big_member(zpath, 8 * 2**20)
    assert os.path.getsize(zpath) < 100_000
    src = scan_source(str(zpath))
    tracemalloc.start()
    try:
        with src.open() as reader, pytest.raises(InputTooLarge, match="zip member of 8388608 bytes"):
            reader.read(src.names.index("big.png"), 2**20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2**20  # the declared size refused it: nothing was inflated
    warns = Warnings()
    ds = open_dataset(str(zpath), S, cache_dir=tmp_path / "cache", progress=False, warn=warns)
    assert len(ds) == 1 and ds.meta["skipped_too_large"] == 1 and "1 too large" in warns[0]


def test_zip_member_with_a_lying_header_is_read_only_up_to_the_cap(tmp_path):
    """The headers say 100 bytes, the data inflates to 16 MB: it is refused after reading about the cap (1 MB)."""
    zpath = tmp_path / "liar.zip"
    _zip_with_big_member(zpath, 16 * 2**20)
    blob = bytearray(zpath.read_bytes())
    real = (16 * 2**20).to_bytes(4, "little")
    assert blob.count(real) == 2  # local header + central directory entry of big.png
    zpath.write_bytes(bytes(blob).replace(real, (100).to_bytes(4, "little")))
    src = scan_source(str(zpath))
    tracemalloc.start()
    try:
        with src.open() as reader, pytest.raises((InputTooLarge, zipfile.BadZipFile)):
            reader.read(src.names.index("big.png"), 2**20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20  # the read buffers of a capped read, not the 16 MB


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifo_named_like_an_image_is_skipped_not_waited_on(tmp_path):
    src = small_folder(tmp_path / "src")
    os.mkfifo(src / "pipe.png")  # opening it for reading would block forever
    warns = Warnings()
    ds = open_dataset(str(src), S, cache_dir=tmp_path / "cache", progress=False, warn=warns, workers=1)
    assert len(ds) == 2 and "pipe.png" in warns[0]


def test_worker_processes_apply_the_same_limits(tmp_path, monkeypatch):
    monkeypatch.setenv(PIXELS_ENV, str(2**20))
    src = small_folder(tmp_path / "src", 3)
    (src / "bomb.png").write_bytes(png_bomb())
    monkeypatch.setattr(packed, "INLINE_THRESHOLD", 0)
    warns = Warnings()
    ds = open_dataset(str(src), S, cache_dir=tmp_path / "cache", progress=False, warn=warns, workers=2)
    assert len(ds) == 3 and ds.meta["skipped_too_large"] == 1 and "1 too large" in warns[0]


def test_bad_limit_in_the_environment_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(PIXELS_ENV, "lots")
    src = small_folder(tmp_path / "src")
    code, _, err = run_cli(["prepare-data", str(src), str(tmp_path / "out"), "--size", "32", "--no-progress"], capsys)
    assert code == 2 and err == f"error: ${PIXELS_ENV} must be a positive integer, got 'lots'\n"


def test_default_limits_fit_real_high_resolution_art():
    limits = InputLimits()
    limits.check_pixels(8192, 8192)  # a 8k x 8k illustration is fine
    with pytest.raises(InputTooLarge):
        limits.check_pixels(13_000, 13_000)  # the 169 Mpx PNG of the report
    assert limits.max_file_bytes >= 256 * 2**20
    assert limits.describe() == "over 64 Mpx decoded or 256 MiB per file"


# --------------------------------------------------------------------------- 2. an unwritable cache / output


def test_unwritable_cache_is_one_line_naming_the_variable(tmp_path, monkeypatch):
    src = small_folder(tmp_path / "src")
    (tmp_path / "afile").write_text("not a folder")
    monkeypatch.setenv("STYLEGAN_ANIME_CACHE", str(tmp_path / "afile" / "cache"))
    with pytest.raises(DataError) as e:
        open_dataset(str(src), S, progress=False, warn=Warnings())
    msg = str(e.value)
    assert msg.startswith(f"cannot write {tmp_path / 'afile' / 'cache'}") and "STYLEGAN_ANIME_CACHE" in msg
    assert "\n" not in msg


def test_read_only_cache_folder_is_one_line(tmp_path, monkeypatch):
    """A folder we may not write to (tests run as root here, so chmod would not stop us: the refusal is faked)."""
    src, cache = small_folder(tmp_path / "src"), tmp_path / "cache"
    cache.mkdir()

    def denied(*a, dir=None, **k):
        raise PermissionError(13, "Permission denied", str(dir))

    monkeypatch.setattr(packed.tempfile, "mkdtemp", denied)
    with pytest.raises(DataError, match=f"^cannot write {cache}: Permission denied; set STYLEGAN_ANIME_CACHE "):
        open_dataset(str(src), S, cache_dir=cache, progress=False, warn=Warnings())


def test_prepare_data_into_an_unwritable_place_is_one_line(tmp_path, capsys):
    src = small_folder(tmp_path / "src")
    (tmp_path / "afile").write_text("x")
    code, _, err = run_cli(["prepare-data", str(src), str(tmp_path / "afile" / "out"), "--size", "32",
                            "--no-progress"], capsys)
    assert code == 2 and err.startswith(f"error: cannot write {tmp_path / 'afile'}") and err.count("\n") == 1, err


# --------------------------------------------------------------------------- 3. one writer per output


def test_second_prepare_data_into_the_same_output_fails_naming_the_first(tmp_path, capsys):
    src, out = small_folder(tmp_path / "src"), tmp_path / "packs" / "faces"
    out.parent.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from stylegan_anime.data.output_lock import OutputLock; "
         f"OutputLock({str(out)!r}).acquire(); print('locked', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        code, _, err = run_cli(["prepare-data", str(src), str(out), "--size", "32", "--no-progress"], capsys)
        assert code == 2, err
        assert err == f"error: {out} is being written by another prepare-data (pid {holder.pid}); " \
                      "wait for it to finish or stop it\n"
        assert not out.exists()
    finally:
        holder.stdin.close()
        holder.wait(10)
    code, _, err = run_cli(["prepare-data", str(src), str(out), "--size", "32", "--no-progress"], capsys)
    assert code == 0 and "packed 2 images" in err, err
    assert sorted(os.listdir(out.parent)) == ["faces"]  # no lock file left behind


def test_face_crop_writer_takes_the_same_lock(tmp_path):
    out = tmp_path / "crops"
    with OutputLock(out):
        with pytest.raises(OutputLocked, match="is being written by another prepare-data"):
            with PackWriter(out, S, {}):
                pass
    with PackWriter(out, S, {"source": "x"}) as w:
        assert os.path.exists(lock_path(str(out)))
        w.add(np.zeros((S, S, 3), np.uint8))
    assert not os.path.exists(lock_path(str(out))) and np.load(out / "images.npy").shape == (1, S, S, 3)


def test_lock_survives_a_released_holder_race(tmp_path):
    """A lock file removed by its releasing holder is not a lock: the next writer locks a fresh one."""
    out = str(tmp_path / "o")
    first = OutputLock(out).acquire()
    first.release()
    second = OutputLock(out).acquire()
    with pytest.raises(OutputLocked):
        OutputLock(out).acquire()
    second.release()


# --------------------------------------------------------------------------- 5. high resolution: upscales, memory


def test_upscaled_sources_are_counted_in_the_summary(tmp_path, capsys):
    src = small_folder(tmp_path / "src", 2)  # 6x6: smaller than 32
    Image.new("RGB", (40, 48), (9, 9, 9)).save(src / "big.png")  # short side 40 >= 32: downscaled
    code, _, err = run_cli(["prepare-data", str(src), str(tmp_path / "out"), "--size", "32", "--no-progress"], capsys)
    assert code == 0, err
    assert err.strip().splitlines()[-1] == f"packed 3 images of 32x32 into {tmp_path / 'out'} " \
                                           "(2 upscaled from smaller sources)"
    assert json.loads((tmp_path / "out" / "dataset.json").read_text())["upscaled"] == 2


def test_cache_key_includes_the_size(tmp_path):
    src = small_folder(tmp_path / "src")
    a, b = packed._plan(str(src), 32), packed._plan(str(src), 64)
    assert a.cache_name != b.cache_name and "-32px-" in a.cache_name and "-64px-" in b.cache_name


@pytest.mark.parametrize("size,workers", [(512, 2), (1024, 8), (64, 1)])
def test_images_in_flight_between_workers_and_writer_are_bounded(size, workers):
    chunk = packed._chunk_size(10_000, workers, size)
    in_flight = packed.IN_FLIGHT_TASKS * workers * chunk * size * size * 3
    assert chunk == 1 or in_flight <= packed.IN_FLIGHT_BYTES


_RSS_SCRIPT = textwrap.dedent("""
    import resource, sys, zipfile
    import numpy as np
    from stylegan_anime.data import prepare_dataset
    from stylegan_anime.data.writer import PackWriter

    def peak_mb():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux

    tmp, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    png = open(f"{tmp}/tiny.png", "rb").read()
    for name, count in (("few", 5), ("many", n)):  # copies of one tiny PNG, upscaled to size
        with zipfile.ZipFile(f"{tmp}/{name}.zip", "w") as zf:
            for i in range(count):
                zf.writestr(f"{i:05d}.png", png)
    prepare_dataset(f"{tmp}/few.zip", f"{tmp}/warm", size, workers=1, progress=False)  # imports, first buffers
    base = peak_mb()
    prepare_dataset(f"{tmp}/many.zip", f"{tmp}/pack", size, workers=1, progress=False)
    packed = peak_mb()
    with PackWriter(f"{tmp}/crops", size, {}) as w:
        img = np.full((size, size, 3), 7, np.uint8)
        for _ in range(n):
            w.add(img)
    print(base, packed, peak_mb())
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ru_maxrss in KB: Linux")
def test_packing_memory_does_not_grow_with_the_number_of_images(tmp_path):
    """200 images of 256 px are a 39 MB pack: written through a memory map (as before) it all became resident
    memory of the packer; streamed with plain writes, the peak stays where packing 5 of them put it."""
    Image.new("RGB", (4, 4), (200, 30, 90)).save(tmp_path / "tiny.png")
    n, size = 200, 256
    pack_mb = n * size * size * 3 / 2**20
    out = subprocess.run([sys.executable, "-c", _RSS_SCRIPT, str(tmp_path), str(n), str(size)],
                         capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr
    base, after_pack, after_writer = map(float, out.stdout.split())
    assert np.load(tmp_path / "pack" / "images.npy", mmap_mode="r").shape == (n, size, size, 3)
    assert after_pack - base < pack_mb / 3, (base, after_pack, pack_mb)
    assert after_writer - base < pack_mb / 3, (base, after_writer, pack_mb)
