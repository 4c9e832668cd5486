"""The command line as a user meets it: one-line errors with exit code 2, end-to-end runs, resume, generate."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_cli
import torch
from PIL import Image

from stylegan_anime.training.checkpoint import list_checkpoints, load_checkpoint

TINY = ["--metrics", "none", "--model", "dcgan", "--dim", "4", "--batch", "8", "--kimg", "0.016", "--no-progress", "--grid", "1", "--log", "0.008",
        "--device", "cpu"]


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("STYLEGAN_ANIME_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


run = run_cli


@pytest.mark.parametrize("argv,needle", [
    (["train", "--data", "demo:8", "--size", "100"], "--size must be a power of two from 32 to 1024"),
    (["train", "--data", "demo:8", "--size", "2048"], "--size must be a power of two from 32 to 1024"),
    (["train", "--data", "demo:8", "--size", "512", "--model", "dcgan"], "this model trains at 32, 64, 128 or 256"),
    (["train", "--data", "demo:8", "--batch", "64", "--batch-gpu", "10"], "not divisible by --batch-gpu 10"),
    (["train", "--data", "demo:8", "--model", "nope"], "'nope' is not one of"),
    (["train", "--data", "/no/such/folder"], "/no/such/folder"),
    (["train"], "--data is required"),
    (["train", "--data", "demo:8", "--model", "dcgan", "--clip", "0.1"], "--clip does not apply to --model dcgan"),
    (["train", "--data", "demo:8", "--size", "abc"], "'abc' is not a valid integer"),
    (["train", "--data", "demo:8", "--kimg", "-1"], "--kimg must be positive"),
    (["train", "--resume", "/no/ckpt.pt"], "checkpoint does not exist: /no/ckpt.pt"),
    (["generate", "--checkpoint", "/no/ckpt.pt", "--grid", "x.png"], "checkpoint does not exist"),
    (["generate", "--checkpoint", "/no/ckpt.pt"], "--grid FILE"),
    (["prepare-data", "/no/src", "out", "--size", "64"], "/no/src"),
    (["prepare-data", "demo:8", "out", "--size", "48"], "--size must be a power of two"),
])
def test_user_mistakes_are_one_line_exit_2(argv, needle, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(argv, capsys)
    assert code == 2
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert needle in lines[0]
    assert "Traceback" not in err


def test_console_script_error_has_no_traceback(tmp_path):
    r = subprocess.run([sys.executable, "-m", "stylegan_anime.cli", "train", "--data", "demo:8", "--size", "100"],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip() == ("error: --size must be a power of two from 32 to 1024 (32, 64, 128, 256, 512, "
                                "1024), got 100")


def test_help_has_examples(capsys):
    for argv in (["--help"], ["train", "--help"], ["generate", "--help"], ["prepare-data", "--help"],
                 ["import-checkpoint", "--help"]):
        code, out, _ = run(argv, capsys)
        assert code == 0 and "Examples:" in out
    _, out, _ = run(["train", "--help"], capsys)
    assert "--n-critic" in out and "--gp-weight" in out and "wgan 5" in out  # per-model defaults shown


@pytest.mark.parametrize("model", ["dcgan", "dcgan-tutorial", "wgan", "wgan-gp", "sagan", "biggan", "cgan", "acgan"])
def test_train_each_model_end_to_end(model, capsys, tmp_path):
    code, _, err = run(["train", "--data", "demo:64", "--size", "64", "--outdir", str(tmp_path)]
                       + TINY + ["--model", model] + (["--n-critic", "2"] if "wgan" in model else []), capsys)
    assert code == 0, err
    run_dir = next(tmp_path.iterdir())
    assert run_dir.name == f"00000-{model}-demo-64"
    assert list(run_dir.glob("events.out.tfevents.*"))
    grid = Image.open(run_dir / "fakes-G-000000000.png")
    assert grid.size == (8 * 64, 8 * 64)
    ckpt = load_checkpoint(run_dir)
    assert ckpt["config"]["model"] == model and ckpt["progress"]["nimg"] >= 16


def test_train_128_resume_and_generate(capsys, tmp_path):
    out = str(tmp_path / "runs")
    code, _, err = run(["train", "--data", "demo:32", "--size", "128", "--model", "dcgan", "--outdir", out,
                        "--batch-gpu", "4"] + TINY, capsys)
    assert code == 0, err
    run_dir = Path(out) / "00000-dcgan-demo-128"
    # a flag that would change the run is refused; --kimg may grow
    code, _, err = run(["train", "--resume", "auto", "--outdir", out, "--size", "64"], capsys)
    assert code == 2 and "differs from the resumed run" in err
    code, _, err = run(["train", "--resume", "auto", "--outdir", out, "--kimg", "0.032", "--no-progress"], capsys)
    assert code == 0, err
    assert "resuming" in err
    assert sorted(p.name for p in Path(out).iterdir()) == ["00000-dcgan-demo-128"]  # same run continued
    assert load_checkpoint(run_dir)["progress"]["nimg"] == 32
    code, _, err = run(["train", "--resume", "auto", "--outdir", out, "--kimg", "0.032"], capsys)
    assert code == 2 and "already reached" in err

    grid = tmp_path / "grid.png"
    code, _, err = run(["generate", "--checkpoint", str(run_dir), "--seeds", "0-5", "--cols", "3", "--grid", str(grid),
                        "--device", "cpu"], capsys)
    assert code == 0, err
    assert Image.open(grid).size == (3 * 128, 2 * 128)
    sub = tmp_path / "sub"
    code, _, err = run(["generate", "--checkpoint", str(list_checkpoints(run_dir)[-1]), "--count", "5", "--outdir",
                        str(sub), "--device", "cpu", "--batch", "2"], capsys)
    assert code == 0, err
    assert sorted(p.name for p in sub.iterdir()) == [f"{i}.jpg" for i in range(1, 6)]
    assert Image.open(sub / "1.jpg").size == (128, 128)


def test_generate_is_deterministic_per_seed(capsys, tmp_path):
    code, _, err = run(["train", "--data", "demo:16", "--outdir", str(tmp_path)] + TINY, capsys)
    assert code == 0, err
    from stylegan_anime.generate import Sampler
    s = Sampler(next(tmp_path.iterdir()), device="cpu")
    a = s.images([3, 7], batch=2)
    b = s.images([7], batch=1)
    torch.testing.assert_close(a[1:], b)
    assert not torch.allclose(a[0], a[1])


def test_prepare_data_then_train_on_pack(capsys, tmp_path):
    pack = tmp_path / "pack"
    code, _, err = run(["prepare-data", "demo:16", str(pack), "--size", "64"], capsys)
    assert code == 0, err
    assert (pack / "images.npy").exists() and (pack / "dataset.json").exists()
    code, _, err = run(["train", "--data", str(pack), "--outdir", str(tmp_path / "runs")] + TINY, capsys)
    assert code == 0, err
    code, _, err = run(["train", "--data", str(pack), "--size", "128", "--outdir", str(tmp_path / "runs")] + TINY, capsys)
    assert code == 2 and "prepare-data" in err


def test_show_dataset_tool(tmp_path):
    tool = Path(__file__).resolve().parents[1] / "tools" / "show_dataset.py"
    out = tmp_path / "preview.png"
    r = subprocess.run([sys.executable, str(tool), "--data", "demo:20", "--size", "64", "--count", "9", "--out", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert Image.open(out).size == (3 * 64, 3 * 64)
    r = subprocess.run([sys.executable, str(tool), "--data", str(tmp_path / "missing"), "--out", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.startswith("error: ") and "Traceback" not in r.stderr


def test_stylegan2_is_the_default_model_and_trains_end_to_end(capsys, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    tiny = ["--metrics", "none", "--channel-base", "256", "--channel-max", "16", "--z-dim", "16", "--w-dim", "16", "--num-fp16-res", "0",
            "--batch", "8", "--batch-gpu", "4", "--kimg", "0.032", "--no-progress", "--grid", "1", "--log", "0.008",
            "--device", "cpu"]
    code, _, err = run(["train", "--data", "demo:32", "--outdir", str(tmp_path)] + tiny, capsys)
    assert code == 0, err
    run_dir = tmp_path / "00000-stylegan2-demo-64"
    assert (run_dir / "fakes-ema_psi0.7-000000000.png").exists()
    ckpt = load_checkpoint(run_dir)
    assert ckpt["config"]["model_cfg"]["preset"] == "auto" and "pl_mean" in ckpt["recipe"]
    ev = EventAccumulator(str(run_dir)).Reload()
    scalars = set(ev.Tags()["scalars"])
    assert {"Loss/G", "Loss/Greg", "Loss/D", "Loss/Dreg", "Stats/r1_penalty", "Stats/pl_penalty", "Stats/pl_mean",
            "Stats/w_avg_norm", "Progress/skipped_steps"} <= scalars
    assert "Samples/ema_psi0.7" in ev.Tags()["images"]


def test_conditional_model_on_unlabelled_data_is_refused_before_any_folder(capsys, tmp_path):
    folder = tmp_path / "faces"
    folder.mkdir()
    for i in range(3):
        Image.new("RGB", (70, 70), (40 * i, 90, 200)).save(folder / f"{i}.png")
    code, _, err = run(["train", "--data", str(folder), "--model", "cgan", "--outdir", str(tmp_path / "runs")] + TINY[4:],
                       capsys)
    assert code == 2 and "needs labelled data" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()
