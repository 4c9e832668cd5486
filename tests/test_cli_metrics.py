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
