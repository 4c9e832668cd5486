"""What a run shows and keeps when nobody watches a terminal (issue #14): status lines without a TTY, RUN/log.txt,
a closed pipe or terminal, an honest progress bar, grid and run-folder names, `bench` and `metrics` flags."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest
from conftest import run_cli
from PIL import Image

from stylegan_anime.training.checkpoint import list_checkpoints, load_checkpoint

TINY = ["--model", "dcgan", "--dim", "4", "--batch", "8", "--device", "cpu", "--metrics", "none"]
STATUS = re.compile(r"^kimg \d+\.\d{3}/[\d.]+  time \S+  s/kimg \S+  img/s \S+  eta \S+( \(--minutes\))?  "
                    r"loss D \S+ G \S+  mem \d+\.\d\d GB$", re.M)


@pytest.fixture(autouse=True)
def _env(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("STYLEGAN_ANIME_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.setenv("STYLEGAN_ANIME_INCEPTION", str(tmp_path_factory.getbasetemp() / "no-inception.pth"))


run = run_cli


def test_status_lines_and_evaluation_without_a_tty_and_log_txt(tmp_path, capsys):
    from stylegan_anime.training.monitor import status_every_s
    assert status_every_s(None, bar_shown=False) == 60 and status_every_s(None, bar_shown=True) == 0
    assert status_every_s(0, bar_shown=False) == 0 and status_every_s(5, bar_shown=True) == 5

    # stderr is no terminal here: no bar, status lines (default 60 s, and one at the end)
    out = tmp_path / "runs"
    code, _, err = run(["train", "--data", "demo:64", "--outdir", str(out), "--kimg", "0.016", "--snap", "0.008",
                        "--log", "0.008", *TINY, "--metrics", "swd,fid10k", "--metrics-num", "64",
                        "--metrics-kimg", "1000"], capsys)
    assert code == 0, err
    assert STATUS.search(err), err
    # the final evaluation: announced with how to skip it, its progress as lines (no bar), values with a hint
    assert re.search(r"final evaluation swd, fid10k on 64 images \.\.\. \(skip it with --metrics none\)\n", err), err
    assert re.search(r": evaluating: 64 images generated in \d+s; scoring them against the reals \.\.\.\n", err), err
    assert re.search(r": swd \S+ \(lower is better(; real vs real \S+)?\); evaluated in \d+s\n", err), err
    run_dir = out / "00000-dcgan-demo-64"
    log = (run_dir / "log.txt").read_text()
    assert log.startswith(f"run folder: {run_dir}\n")
    assert "skipping fid10k" in log and "evaluation swd, fid10k" in log and "checkpoint" in log
    assert len(STATUS.findall(log)) >= 2  # one at every --log flush, whatever the console shows
    assert "done: 0.016 kimg" in log
    assert re.search(r"done: 0\.016 kimg in \d+\.\d minutes of training, \d+\.\d minutes wall ", err), err

    # resume with the newest checkpoint truncated: the CLI's warning (said before the run folder is known) and
    # the lines of the continued run are appended; --status-every 0: no status line on the console
    newest = list_checkpoints(run_dir)[-1]
    newest.write_bytes(newest.read_bytes()[:100])
    code, _, err = run(["train", "--resume", str(run_dir), "--kimg", "0.032", "--status-every", "0", "--no-progress"],
                       capsys)
    assert code == 0, err
    assert "warning:" in err and not STATUS.search(err)
    log2 = (run_dir / "log.txt").read_text()
    assert log2.startswith(log)
    added = log2[len(log):]
    assert re.search(r"^warning: .*ckpt-000000016", added, re.M), added
    assert STATUS.search(added) and "done: 0.032 kimg" in added


def test_dcgan_writes_no_ema_grids(tmp_path, capsys):
    code, _, err = run(["train", "--data", "demo:16", "--outdir", str(tmp_path), "--kimg", "0.008", "--no-progress",
                        *TINY], capsys)
    assert code == 0, err
    run_dir = tmp_path / "00000-dcgan-demo-64"
    assert sorted(p.name for p in run_dir.glob("fakes-*.png")) == ["fakes-G-000000000.png", "fakes-G-000000008.png"]


def test_grid_names_by_nimg_never_overwrite(toy_model, tiny_data, tmp_path):
    from test_trainer import make_cfg

    from stylegan_anime.training.trainer import Trainer
    cfg = make_cfg(toy_model, tmp_path, kimg=0.024, grid_kimg=0.008, model_cfg={"ema_kimg": 1.0})  # "--grid 0.5"
    Trainer(cfg, tmp_path / "run", dataset=tiny_data).train()
    names = sorted(p.name for p in (tmp_path / "run").glob("fakes-*.png"))
    assert names == [f"fakes-{tag}-{n:09d}.png" for tag in ("G", "ema") for n in (0, 8, 16, 24)]

    # the reference protocol's summary picks the newest grid, older runs' names (kimg) included
    from stylegan_anime.reports.reference import _grid_nimg
    mixed = ["fakes-ema-000020kimg.png", "fakes-ema-000000512.png", "fakes-ema-000030000.png", "fakes-ema-000001kimg.png"]
    from pathlib import Path
    assert [p.name for p in sorted(map(Path, mixed), key=_grid_nimg)] == [
        "fakes-ema-000000512.png", "fakes-ema-000001kimg.png", "fakes-ema-000020kimg.png", "fakes-ema-000030000.png"]


@pytest.mark.filterwarnings("error::tqdm.TqdmWarning")
def test_bar_total_is_the_kimg_reached(toy_model, tiny_data, tmp_path, monkeypatch):
    from test_trainer import make_cfg

    from stylegan_anime.training import console
    from stylegan_anime.training.monitor import Monitor
    from stylegan_anime.training.trainer import Trainer
    monkeypatch.setattr(console, "isatty", lambda stream=None: True)  # as on a terminal: the bar is shown
    seen = []
    close = Monitor.close

    def record(self):
        seen.append((self.bar_shown, self.bar.n, self.bar.total, self.bar.format_dict))
        close(self)
    monkeypatch.setattr(Monitor, "close", record)
    # batch 8: the last step ends at 0.032 kimg, past --kimg 0.030
    Trainer(make_cfg(toy_model, tmp_path, kimg=0.030, progress=True), tmp_path / "run", dataset=tiny_data).train()
    (shown, n, total, fmt), = seen
    assert shown and n == pytest.approx(0.032) and total == n
    from tqdm import tqdm
    assert "-" not in tqdm.format_meter(**{**fmt, "bar_format": "{remaining}"})  # no negative time left


def test_closed_pipe_and_hangup_never_cost_the_run(tmp_path):
    """`stylegan-anime train ... | head -1`, then the terminal closes: the run goes on to its final checkpoint."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "stylegan_anime.cli", "train", "--data", "demo:64", "--outdir", str(tmp_path / "runs"),
           "--kimg", "0.4", "--status-every", "0.001", "--snap", "1000", "--grid", "1000", *TINY]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                         start_new_session=True)
    try:
        first = b""
        for line in p.stdout:  # up to the first status line: training is under way
            if line.startswith(b"kimg "):
                first = line
                break
        p.send_signal(signal.SIGHUP)  # the terminal hangs up ...
        p.stdout.close()  # ... and the reader is gone: every later write meets EPIPE
        rc = p.wait(timeout=600)
    finally:
        if p.poll() is None:
            p.kill()
    assert first and rc == 0, rc
    run_dir = tmp_path / "runs" / "00000-dcgan-demo-64"
    assert load_checkpoint(run_dir)["progress"]["nimg"] == 400  # the final checkpoint
    log = (run_dir / "log.txt").read_text()
    assert "SIGHUP" in log and "console (stderr) gone" in log and "done: 0.4 kimg" in log


def test_run_folder_name_does_not_repeat_the_size():
    from stylegan_anime.cli.train import _run_name
    from stylegan_anime.training.config import TrainConfig
    name = lambda data, size=64: _run_name(TrainConfig(data=data, size=size))  # noqa: E731
    assert name("/data/mlds-64") == "stylegan2-mlds-64"
    assert name("faces_128/", 128) == "stylegan2-faces_128" and name("anime64") == "stylegan2-anime64"
    assert name("mlds-64", 128) == "stylegan2-mlds-64-128" and name("x164") == "stylegan2-x164-64"
    assert name("faces.zip") == "stylegan2-faces-64" and name("demo:100") == "stylegan2-demo-64"


def test_bench_defaults_and_flags(capsys):
    from stylegan_anime.benchmarks.training import bench_plan
    assert bench_plan(cuda=False) == ([64], {"preset": "cpu"})
    assert bench_plan(cuda=True) == ([64, 128], {"preset": "auto"})
    assert bench_plan(False, "64,128", "paper", 4096, 256) == (
        [64, 128], {"preset": "paper", "channel_base": 4096, "channel_max": 256})
    for args, needle in (((False, "96"), "--sizes"), ((False, "64", None, 32, None), "--channel-base"),
                         ((False, None, None, None, 0), "--channel-max")):
        with pytest.raises(ValueError, match=needle):
            bench_plan(*args)
    code, out, err = run(["bench", "--help"], capsys)
    assert code == 0 and "--preset" in out and "--channel-base" in out and "--channel-max" in out
    code, out, err = run(["bench", "--models", "stylegan2", "--device", "cpu", "--kimg", "0.016", "--warmup", "0",
                          "--channel-base", "256", "--channel-max", "16"], capsys)
    assert code == 0, err
    row = next(line for line in out.splitlines() if line.startswith("stylegan2"))
    assert re.match(r"stylegan2\s+64\s+16\s", row) and "preset cpu" in row and "channel base 256" in row, out
    assert "at 128 px" not in err
    code, _, err = run(["bench", "--models", "stylegan2", "--device", "cpu", "--channel-max", "0"], capsys)
    assert code == 2 and "--channel-max" in err


def test_metrics_size_and_labels(tmp_path, capsys):
    from stylegan_anime.data import prepare_dataset
    prepare_dataset("demo:32", tmp_path / "pack", 64, progress=False)
    folder = tmp_path / "gen96"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(32):
        Image.fromarray(rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)).save(folder / f"{i + 1}.png")
    argv = ["metrics", "--images", str(folder), "--data", str(tmp_path / "pack"), "--metrics", "swd", "--num", "32",
            "--device", "cpu"]
    code, _, err = run(argv, capsys)  # compared at the first image's size, 96: the 64 px pack does not fit
    assert code == 2 and "--size" in err and len(err.strip().splitlines()) == 1, err
    code, out, err = run(argv + ["--size", "64", "--json"], capsys)
    assert code == 0, err
    assert "reading " + str(folder) in err and "reading reals" in err and "generating" not in err
    import json
    assert json.loads(out)["swd"] > 0 and "swd/64" in json.loads(out)


def test_a_long_evaluation_reports_progress_lines():
    from stylegan_anime.training.evaluation import ProgressLines
    lines, now = [], [0.0]
    p = ProgressLines(lines.append, "kimg 4.00: evaluating", 256, every=30.0, clock=lambda: now[0])
    for _ in range(4):  # 64 images every 20 s: a line once 30 s have passed since the last one, and at the end
        now[0] += 20.0
        p.count(64)
    assert lines == ["kimg 4.00: evaluating: 128/256 images generated (40s)",
                     "kimg 4.00: evaluating: 256 images generated in 1m20s; scoring them against the reals ..."]
    now[0] += 60.0
    p.count(64)  # past the total (tagacc's images after the metrics'): no more lines
    assert len(lines) == 2
    quiet = ProgressLines(None, "x", 64, every=30.0)  # a progress bar is shown instead
    quiet.count(64)


def test_metric_lines_say_which_way_is_better():
    from stylegan_anime.training.evaluation import hint, metrics_line
    assert hint("swd", 1024, 64) == " (lower is better)"
    assert hint("swd", 4096, 64) == " (lower is better; real vs real 18.3 on 64 px anime faces)"
    assert hint("swd", 4096, 128) == " (lower is better)"  # measured at 64 px only
    assert hint("afd", 1000, 64) == " (higher is better; real faces 0.881)"
    assert hint("fid10k", 10000, 64) == " (lower is better)"
    assert hint("swd", 4096, 64, floor=17.04) == " (lower is better; real vs real 17.04)"  # measured beats known
    values = {"swd/64": 40.0, "swd": 51.0, "swd_floor/64": 9.0, "swd_floor": 18.0, "afd": 0.5}
    assert metrics_line(values, {"swd": 4096, "afd": 1000}, 128) == (
        "swd 51 (lower is better; real vs real 18), afd 0.5 (higher is better; real faces 0.881)")


def test_progress_lines_count_only_the_metrics_that_run(toy_model, tiny_data, tmp_path, monkeypatch, capsys):
    """fid10k (10,000 images) cannot run without its Inception file: the lines count SWD's 1,024 images."""
    from test_trainer import make_cfg
    from stylegan_anime.training import evaluation
    from stylegan_anime.training.trainer import Trainer

    def fake_evaluate(names, generate, dataset, warn, num_gen, **kw):
        warn("skipping fid10k: no Inception file")
        for _ in range(num_gen["swd"] // 256):
            generate(256)
        return {"swd": 1.0}
    monkeypatch.setattr("stylegan_anime.metrics.evaluate", fake_evaluate)
    monkeypatch.setattr(evaluation, "PROGRESS_EVERY_S", 1e9)
    t = Trainer(make_cfg(toy_model, tmp_path, kimg=0.008, metrics="swd,fid10k"), tmp_path / "run", dataset=tiny_data)
    t.train()
    err = capsys.readouterr().err
    assert ("final evaluation swd, fid10k on 10000 images (swd on fewer images: a run under 10 kimg; --metrics-num "
            "sets the count) ... (skip it with --metrics none)") in err, err
    assert re.search(r": evaluating: 1024 images generated in \d+s; scoring them", err), err
