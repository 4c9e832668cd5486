"""tools/reference_run.py: entries, the one train command per model, resuming an interrupted protocol, summary."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from stylegan_anime.reports.reference import DONE, Entry, parse_entry, run_protocol, summarize, train_command

ROOT = Path(__file__).resolve().parents[1]


def test_parse_entry_plain_and_named():
    assert parse_entry("dcgan") == Entry("dcgan", "dcgan", [])
    e = parse_entry("sg2-cpu=stylegan2 --preset cpu --gamma 0.5")
    assert (e.name, e.model, e.flags) == ("sg2-cpu", "stylegan2", ["--preset", "cpu", "--gamma", "0.5"])
    for bad in ("../x=dcgan", "a=", "=dcgan", "x=dcgan --flag 'unclosed"):
        with pytest.raises(ValueError, match="model entry"):
            parse_entry(bad)


def test_train_command_resumes_its_own_folder_and_budgets_time(tmp_path):
    cmd = train_command(parse_entry("a=stylegan2 --preset cpu"), "faces.zip", 64, 60, 10, tmp_path, seed=3)
    i = cmd.index("train")
    args = cmd[i + 1:]
    pairs = {args[k]: args[k + 1] for k in range(len(args) - 1) if args[k].startswith("--")}
    assert pairs["--resume"] == "auto" and pairs["--outdir"] == str(tmp_path / "a")
    assert pairs["--minutes"] == "60" and pairs["--metrics-minutes"] == "10" and pairs["--model"] == "stylegan2"
    assert pairs["--seed"] == "3" and pairs["--preset"] == "cpu" and pairs["--metrics"] == "swd,afd"
    assert "--inception" not in cmd
    assert "--inception" in train_command(parse_entry("dcgan"), "d", 64, 1, 1, tmp_path, inception="inc.pth")


def test_duplicate_names_are_refused(tmp_path):
    with pytest.raises(ValueError, match="distinct names"):
        run_protocol([parse_entry("dcgan"), parse_entry("dcgan --dim 8")], "demo", 64, 1, 1, tmp_path)


def _script(*args, timeout=300):
    return subprocess.run([sys.executable, str(ROOT / "tools" / "reference_run.py"), *args], capture_output=True,
                          text=True, timeout=timeout, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})


def test_script_errors_are_one_line(tmp_path):
    r = _script("--model", "dcgan", "--logdir", str(tmp_path))
    assert r.returncode == 2 and "--data is required" in r.stderr and "Traceback" not in r.stderr
    r = _script("--model", "dcgan", "--data", "demo", "--minutes", "nan", "--logdir", str(tmp_path))
    assert r.returncode == 2 and "--minutes must be a positive number" in r.stderr


def test_protocol_end_to_end_then_resume_skips_finished(tmp_path):
    """Two tiny models, a few training seconds each, evaluated by training time; a second call trains nothing."""
    log = tmp_path / "ref"
    models = ["--model", "a=dcgan --dim 8 --batch 8 --metrics-num 64",
              "--model", "b=wgan-gp --dim 8 --batch 8 --n-critic 1 --metrics-num 64"]
    args = ["--data", "demo:64", "--minutes", "0.05", "--eval-minutes", "0.025", "--metrics", "swd",
            "--logdir", str(log), "--parallel", "2", *models]
    r = _script(*args)
    assert r.returncode == 0, r.stderr[-2000:]
    for name in ("a", "b"):
        assert (log / name / DONE).exists()
        run = next(p for p in (log / name).iterdir() if p.is_dir())
        lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        assert lines and lines[-1]["train_s"] >= 3.0  # stopped by the training-time budget
        assert (log / "grids" / f"{name}.png").stat().st_size > 0
    assert (log / "compare.png").exists() and "a" in (log / "summary.txt").read_text()
    points = (log / "points.md").read_text().splitlines()
    assert points[0].startswith("| model | training min | kimg") and sum(p.startswith("| a |") for p in points) >= 2
    assert (log / "commands.txt").read_text().count("--minutes 0.05") == 2
    again = _script(*args)
    assert again.returncode == 0 and again.stderr.count("finished earlier") == 2
    assert (log / "commands.txt").read_text().count("--minutes 0.05") == 2  # nothing was started again


def test_summarize_without_runs(tmp_path):
    said = []
    assert summarize([parse_entry("dcgan")], tmp_path, say=said.append) is None and "no runs" in said[0]
