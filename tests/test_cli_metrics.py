"""Metrics as a user meets them: the `metrics` command on a checkpoint and on a folder, and evaluation during
training (TensorBoard Metrics/*, metrics.jsonl), with FID skipped cleanly when no Inception file exists."""
from __future__ import annotations

import json

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from stylegan_anime.cli import main

TINY = ["--model", "dcgan", "--dim", "4", "--batch", "8", "--no-progress", "--device", "cpu"]


def run(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    monkeypatch.setenv("STYLEGAN_ANIME_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("STYLEGAN_ANIME_INCEPTION", str(tmp_path / "no-inception.pth"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))


def test_training_evaluates_swd_and_skips_fid_without_weights(tmp_path, capsys):
    code, _, err = run(["train", "--data", "demo:64", "--outdir", str(tmp_path / "runs"), "--kimg", "0.032",
                        "--metrics", "swd,fid10k", "--metrics-kimg", "0.016", "--metrics-num", "64"] + TINY, capsys)
    assert code == 0, err
    assert "skipping fid10k" in err and "no-inception.pth" in err
    run_dir = tmp_path / "runs" / "00000-dcgan-demo-64"
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["kimg"] for r in rows] == [0.016, 0.032] and all(r["swd"] > 0 for r in rows)
    assert all("fid10k" not in r for r in rows) and rows[1]["wall_s"] >= rows[0]["wall_s"]
    ev = EventAccumulator(str(run_dir)).Reload()
    assert [e.step for e in ev.Scalars("Metrics/swd")] == [16, 32]

    code, out, err = run(["metrics", "--checkpoint", str(run_dir), "--data", "demo:64", "--metrics", "swd",
                          "--num", "64", "--json", "--device", "cpu"], capsys)
    assert code == 0, err
    values = json.loads(out)
    assert values["swd"] > 0

    code, _, err = run(["generate", "--checkpoint", str(run_dir), "--count", "64", "--outdir", str(tmp_path / "gen"),
                        "--device", "cpu"], capsys)
    assert code == 0, err
    code, out, err = run(["metrics", "--images", str(tmp_path / "gen"), "--data", "demo:64", "--metrics", "swd"],
                         capsys)
    assert code == 0, err
    lines = dict(line.split() for line in out.strip().splitlines())
    assert float(lines["swd"]) > 0 and "swd/64" in lines


def test_metrics_command_mistakes_are_one_line(tmp_path, capsys):
    for argv, needle in ((["metrics", "--data", "demo:8", "--metrics", "bogus", "--images", str(tmp_path)], "bogus"),
                         (["metrics", "--data", "demo:8"], "exactly one of"),
                         (["metrics", "--data", "demo:8", "--images", str(tmp_path / "none")], "does not exist"),
                         (["train", "--data", "demo:8", "--metrics", "fid3k"], "unknown fid3k")):
        code, _, err = run(argv, capsys)
        assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, err


def test_download_inception_is_explicit_and_hash_checked(tmp_path, capsys, monkeypatch):
    import torch
    calls = []

    def fake_download(url, dst, hash_prefix=None, progress=True):
        calls.append((url, hash_prefix))
        open(dst, "wb").write(b"weights")
    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    code, _, err = run(["download-inception", "--dest", str(tmp_path)], capsys)
    assert code == 0, err
    assert len(calls) == 1 and calls[0][0].startswith("https://") and calls[0][1] == "6726825d"
    assert (tmp_path / "pt_inception-2015-12-05-6726825d.pth").read_bytes() == b"weights"

    def offline(*a, **k):
        raise OSError("Temporary failure in name resolution")
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    code, _, err = run(["download-inception", "--dest", str(tmp_path / "x")], capsys)
    assert code == 2 and err.strip() == "error: download failed: Temporary failure in name resolution"


# ----------------------------------------------------------------------------------------------------------
# Bad numbers and bad files: one line, never a traceback.

def _one_error(code, err) -> str:
    """The one `error:` line, last on stderr (progress bars may come before it, ended by carriage returns)."""
    import re
    assert code == 2, err
    lines = [line.strip() for line in re.split(r"[\r\n]", err) if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert errors == lines[-1:] and "Traceback" not in err and "warning" not in err, err
    return errors[0]


def _png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG file whose header declares width x height pixels (a decompression bomb's header)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


@pytest.mark.parametrize("num", ["0", "-5"])
def test_metrics_num_must_be_a_sensible_positive_count(num, tiny_runs, tmp_path, capsys):
    line = _one_error(*run(["metrics", "--checkpoint", str(tiny_runs["dcgan"]), "--data", "demo:16", "--metrics",
                            "swd", "--num", num, "--device", "cpu"], capsys)[::2])
    assert "--num" in line and num in line


def test_metrics_num_is_bounded(tmp_path, capsys):
    """A huge --num is refused up front (with --images it used to be cut to the folder's size silently)."""
    import numpy as np
    from PIL import Image
    (tmp_path / "gen").mkdir()
    for i in (1, 2):
        Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "gen" / f"{i}.png")
    line = _one_error(*run(["metrics", "--images", str(tmp_path / "gen"), "--data", "demo:16", "--metrics", "swd",
                            "--num", "1000000000"], capsys)[::2])
    assert "--num" in line and "100,000" in line


@pytest.mark.parametrize("bomb", [(30000, 30000), (10000, 10000)])  # over Pillow's own cap / over ours (64 Mpx)
def test_metrics_images_skips_bombs_and_non_images_in_one_warning(bomb, tmp_path, capsys):
    import numpy as np
    from PIL import Image
    folder = tmp_path / "gen"
    folder.mkdir()
    (folder / "1.png").write_bytes(_png_declaring(*bomb))  # first: its size would be read as the images' size
    (folder / "2.png").write_text("not an image at all")
    rng = np.random.default_rng(0)
    for i in range(4, 14):
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    good = (folder / "4.png").read_bytes()
    (folder / "3.png").write_bytes(good[: len(good) // 2])  # a valid header, truncated data: fails to decode
    code, out, err = run(["metrics", "--images", str(folder), "--data", "demo:16", "--metrics", "swd", "--num", "10",
                          "--device", "cpu"], capsys)
    assert code == 0, err
    assert "Traceback" not in err and float(dict(line.split() for line in out.strip().splitlines())["swd"]) > 0
    warnings = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 2, err  # the two files refused up front; the one that failed to decode
    assert "skipping 2 of 13 files" in warnings[0] and "1.png: too large" in warnings[0], err
    assert "skipped 1 files that could not be decoded (3.png)" in warnings[1], err


def test_metrics_images_with_no_readable_image_is_one_line(tmp_path, capsys):
    folder = tmp_path / "gen"
    folder.mkdir()
    (folder / "1.png").write_bytes(_png_declaring(30000, 30000))
    (folder / "2.jpg").write_text("text")
    line = _one_error(*run(["metrics", "--images", str(folder), "--data", "demo:16", "--metrics", "swd"], capsys)[::2])
    assert "no readable images" in line and "2 files" in line


def test_metrics_images_with_too_few_decodable_images_is_one_line(tmp_path, capsys):
    import numpy as np
    from PIL import Image
    folder = tmp_path / "gen"
    folder.mkdir()
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(folder / "1.png")
    good = (folder / "1.png").read_bytes()
    for i in (2, 3):
        (folder / f"{i}.png").write_bytes(good[:60])  # header only: every decode fails
    line = _one_error(*run(["metrics", "--images", str(folder), "--data", "demo:16", "--metrics", "swd", "--num", "3"],
                           capsys)[::2])
    assert "too few readable images" in line
