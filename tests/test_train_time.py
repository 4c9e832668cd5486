"""Equal training time: train_s counts training iterations only (not evaluation, grids, checkpoints), it and
cpu_s survive resume, --minutes ends a run as --kimg does, --metrics-minutes evaluates at training-time
crossings (the same on every rank), and compare plots against training hours."""
from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import pytest
from conftest import stop_after
from test_trainer import make_cfg

from stylegan_anime.cli import main
from stylegan_anime.training.checkpoint import checkpoint_dir, load_checkpoint
from stylegan_anime.training.config import ConfigError, validate
from stylegan_anime.training.trainer import Interrupted, Trainer


def fake_clock(trainer: Trainer, seconds_per_step: float, cpu_per_step: float = 0.0) -> None:
    """Clocks that move only inside training steps, by exactly these amounts per step."""
    now = {"wall": 0.0, "cpu": 0.0}
    trainer._clock, trainer._cpu_clock = (lambda: now["wall"]), (lambda: now["cpu"])
    original = trainer.step

    def step():
        original()
        now["wall"] += seconds_per_step
        now["cpu"] += cpu_per_step
    trainer.step = step


@pytest.fixture
def swd_of_one(monkeypatch):
    """metrics.evaluate returns at once (swd 1.0): evaluations are cheap and their lines still written."""
    monkeypatch.setattr("stylegan_anime.metrics.evaluate", lambda names, *a, **k: {"swd": 1.0})


def _lines(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _events(run: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    return EventAccumulator(str(run)).Reload()


def test_train_seconds_exclude_evaluation_grids_and_checkpoints(toy_model, tiny_data, tmp_path):
    t = Trainer(make_cfg(toy_model, tmp_path, kimg=0.032), tmp_path / "run", dataset=tiny_data)
    slow = []

    def sleepy(method):
        def wrapped(*a, **k):
            time.sleep(0.3)
            slow.append(method.__name__)
            return method(*a, **k)
        return wrapped
    t.evaluate, t._write_grids = sleepy(t.evaluate), sleepy(t._write_grids)
    start = time.perf_counter()
    t.train()
    total = time.perf_counter() - start
    assert sorted(slow) == ["_write_grids", "_write_grids", "evaluate"]  # first grids, final grids and evaluation
    slept = 0.3 * len(slow)
    assert t.maintenance_s >= slept
    assert 0 < t.train_s < slept and t.train_s + t.maintenance_s <= total
    assert t.cpu_s > 0
    saved = load_checkpoint(tmp_path / "run")["progress"]
    assert saved["train_s"] == t.train_s and saved["cpu_s"] == t.cpu_s and saved["maintenance_s"] >= slept
    scalars = _events(tmp_path / "run").Scalars
    last = {k: scalars(f"Progress/{k}")[-1].value
            for k in ("train_seconds", "maintenance_seconds", "train_cpu_seconds")}
    assert 0 < last["train_seconds"] <= t.train_s and 0 < last["train_cpu_seconds"] <= t.cpu_s + 1e-6
    assert 0.3 <= last["maintenance_seconds"] < slept  # logged at the last step: after the first grids only


def test_train_and_cpu_seconds_survive_resume_and_old_checkpoints_load(toy_model, tiny_data, tmp_path):
    cfg = make_cfg(toy_model, tmp_path, kimg=0.048)
    t = Trainer(cfg, tmp_path / "run", dataset=tiny_data)
    fake_clock(t, 10.0, cpu_per_step=4.0)
    stop_after(t, 3)
    with pytest.raises(Interrupted) as e:
        t.train()
    first = load_checkpoint(e.value.checkpoint)["progress"]
    assert (first["train_s"], first["cpu_s"]) == (30.0, 12.0) and first["maintenance_s"] >= 0
    resumed = Trainer(cfg, tmp_path / "run", dataset=tiny_data, resume=load_checkpoint(e.value.checkpoint))
    fake_clock(resumed, 10.0, cpu_per_step=4.0)
    resumed.train()
    final = load_checkpoint(tmp_path / "run")["progress"]
    assert resumed.iteration == 6 and (final["train_s"], final["cpu_s"]) == (60.0, 24.0)

    old = load_checkpoint(e.value.checkpoint)  # a checkpoint from before train_s: wall_s only
    old["progress"] = {"nimg": 24, "iteration": 3, "skipped": 0, "wall_s": 42.0}
    t = Trainer(cfg, tmp_path / "old", dataset=tiny_data, resume=old)
    assert (t.train_s, t.maintenance_s, t.cpu_s) == (42.0, 0.0, 0.0)


def test_minutes_end_the_run_as_kimg_does(toy_model, tiny_data, tmp_path, swd_of_one):
    cfg = make_cfg(toy_model, tmp_path, kimg=10, minutes=0.45, metrics="swd")  # 27 s of training
    t = Trainer(cfg, tmp_path / "run", dataset=tiny_data)
    fake_clock(t, 10.0)
    path = t.train()  # returns: not Interrupted
    assert t.iteration == 3 and path == checkpoint_dir(tmp_path / "run") / "ckpt-000000024.pt"  # 10, 20, 30 s
    assert load_checkpoint(path)["progress"]["train_s"] == 30.0
    assert [(x["kimg"], x["train_s"]) for x in _lines(tmp_path / "run")] == [(0.024, 30.0)]  # the final evaluation
    ev = _events(tmp_path / "run")
    assert [e.step for e in ev.Images("Samples/ema")] == [0, 24]  # the final grids
    assert [(e.step, e.value) for e in ev.Scalars("Progress/train_seconds")][-1] == (24, 30.0)


def test_metrics_minutes_evaluate_at_training_time_crossings(toy_model, tiny_data, tmp_path, swd_of_one):
    cfg = make_cfg(toy_model, tmp_path, kimg=0.064, metrics="swd", metrics_kimg=None, metrics_minutes=0.5)
    validate(cfg)
    t = Trainer(cfg, tmp_path / "run", dataset=tiny_data)
    fake_clock(t, 12.0)  # 12, 24, 36 (crosses 30 s), 48, 60 (crosses 60 s), 72, 84, 96 (the end)
    t.train()
    lines = _lines(tmp_path / "run")
    assert [(x["kimg"], x["train_s"]) for x in lines] == [(0.024, 36.0), (0.04, 60.0), (0.064, 96.0)]
    assert set(lines[0]) == {"kimg", "wall_s", "train_s", "maintenance_s", "cpu_s", "swd", "num_images/swd"}
    assert {x["num_images/swd"] for x in lines} == {1024}  # --kimg below 10: SWD on 1,024 images, every time
    assert all(x["wall_s"] == x["train_s"] for x in lines)
    ev = _events(tmp_path / "run")
    assert [e.step for e in ev.Scalars("Metrics/swd")] == [24, 40, 64]
    assert [e.step for e in ev.Scalars("MetricsByTime/swd")] == [36, 60, 96]


@pytest.mark.parametrize("kimg,num,swd", [(2, None, 1024), (9.9, None, 1024), (10, None, 2048), (49, None, 2048),
                                           (50, None, 4096), (1000, None, 4096), (2, 300, 300)])
def test_short_runs_score_swd_on_fewer_images(kimg, num, swd, toy_model, tmp_path):
    """The final evaluation of a 2-kimg try must not take as long as its training: SWD's count follows --kimg."""
    from stylegan_anime.training.evaluation import images_for, scaled_because
    cfg = make_cfg(toy_model, tmp_path, kimg=kimg, metrics_num=num)
    assert images_for("swd", cfg) == swd
    assert images_for("fid10k", cfg) == (num or 10_000) and images_for("afd", cfg) == (num or 1000)  # named counts
    said = scaled_because(["swd"], cfg)  # the console says why, when the rule cut the count
    assert (f"a run under {10 if kimg < 10 else 50} kimg" in said) == (swd < 4096 and num is None), said


def test_the_evaluation_asks_the_metrics_for_the_rule_s_count(toy_model, tiny_data, tmp_path, monkeypatch):
    asked = []
    monkeypatch.setattr("stylegan_anime.metrics.evaluate",
                        lambda names, *a, num_gen=None, **k: asked.append(dict(num_gen)) or {"swd": 1.0})
    t = Trainer(make_cfg(toy_model, tmp_path, kimg=0.016, metrics="swd"), tmp_path / "run", dataset=tiny_data)
    t.train()
    assert asked == [{"swd": 1024}] and _lines(tmp_path / "run")[-1]["num_images/swd"] == 1024


@pytest.mark.parametrize("field,value", [("minutes", 0.0), ("minutes", -1.0), ("minutes", math.nan),
                                         ("minutes", math.inf), ("metrics_minutes", 0.0)])
def test_time_flags_must_be_positive_numbers(field, value, toy_model, tmp_path):
    with pytest.raises(ConfigError, match=f"--{field.replace('_', '-')} must be a positive number of minutes"):
        validate(make_cfg(toy_model, tmp_path, **{field: value}))


def test_cli_minutes_and_metrics_minutes(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("STYLEGAN_ANIME_CACHE", str(tmp_path / "cache"))

    def run(*argv):
        with pytest.raises(SystemExit) as e:
            main(list(argv))
        return e.value.code, capsys.readouterr().err

    tiny = ["--data", "demo:8", "--metrics", "none", "--model", "dcgan", "--dim", "4", "--batch", "8", "--no-progress",
            "--device", "cpu", "--outdir", str(tmp_path)]
    code, err = run("train", *tiny, "--kimg", "1000", "--minutes", "1e-9", "--metrics-minutes", "5")
    assert code == 0, err
    assert "done: 0.008 kimg" in err  # the first iteration is past the budget
    (run_dir,) = [p for p in tmp_path.iterdir() if p.name.endswith("dcgan-demo-64")]
    cfg = json.loads((run_dir / "config.json").read_text())
    assert (cfg["minutes"], cfg["metrics_minutes"], cfg["metrics_kimg"]) == (1e-9, 5.0, None)  # by time only
    code, err = run("train", "--resume", str(run_dir), "--minutes", "1e-9")
    assert code == 2 and "pass a larger --minutes" in err and err.count("\n") == 1
    code, err = run("train", *tiny, "--minutes", "0")
    assert code == 2 and "--minutes must be a positive number of minutes" in err
    assert len(list(tmp_path.glob("*-dcgan-demo-64"))) == 1  # no folder for the refused runs


def _timed_worker(rank, world, port, out_dir):
    from test_distributed import _env, _toy_cfg
    _env(rank, world, port)
    sys.stderr = open(Path(out_dir) / f"timed{rank}.err", "a", buffering=1)
    from conftest import ListDataset, ToyGAN, random_dataset

    from stylegan_anime.models import register_model
    from stylegan_anime.training.distributed import init_from_env, shutdown
    register_model("toy", ToyGAN)
    d = init_from_env("cpu")
    data = random_dataset()
    cfg = dataclasses.replace(_toy_cfg(Path(out_dir), 10.0, 4), minutes=0.75, metrics_minutes=1 / 3, metrics_kimg=None)
    t = Trainer(cfg, Path(out_dir) / "run", dataset=ListDataset(images=data.images, labels=None, label_names=None),
                dist=d)
    fake_clock(t, 5.0 * (rank + 1))  # rank 1's clock runs twice as fast; rank 0's is the run's
    evaluations = []
    evaluate = t.evaluate
    t.evaluate = lambda: evaluations.append(t.iteration) or evaluate()
    t.train()
    (Path(out_dir) / f"timed{rank}.txt").write_text(f"{t.iteration} {evaluations} {t.train_s}")
    shutdown()


def test_ranks_stop_and_evaluate_on_rank0s_training_time(tmp_path):
    from test_distributed import _errors, _launch
    assert _launch(_timed_worker, 2, str(tmp_path), logs=tmp_path) == [0, 0], _errors(tmp_path)
    # rank 0: 5 s per step, agreed every 4 steps: 20 s (evaluate), 40 s (evaluate), 60 s >= 45 s (stop, evaluate)
    assert [(tmp_path / f"timed{r}.txt").read_text() for r in (0, 1)] == ["12 [4, 8, 12] 60.0"] * 2


# ----------------------------------------------------------------------------------------------------- compare
def test_compare_plots_training_hours_and_tabulates_training_minutes(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    from stylegan_anime.reports import compare

    def make_run(name, lines=()):
        run = tmp_path / name
        run.mkdir()
        (run / "config.json").write_text(json.dumps({"model": "stylegan2", "size": 64}))
        if lines:
            (run / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
        return run

    new = make_run("00000-new", [
        {"kimg": 1.0, "wall_s": 2400.0, "train_s": 1800.0, "maintenance_s": 600.0, "cpu_s": 3000.0, "fid10k": 80.0},
        {"kimg": 2.0, "wall_s": 6300.0, "train_s": 5400.0, "maintenance_s": 900.0, "cpu_s": 9000.0, "fid10k": 60.0}])
    old = make_run("00001-old", [{"kimg": 1.0, "wall_s": 7200.0, "fid10k": 70.0}])  # before train_s: wall_s
    bare = make_run("00002-bare")  # no metrics: losses from the events, timed by Progress/train_seconds
    w = SummaryWriter(str(bare))
    for step, seconds in ((100, 360.0), (200, 720.0)):
        w.add_scalar("Loss/G", 1.0, step, walltime=time.time() + seconds * 2)
        w.add_scalar("Loss/D", 1.0, step, walltime=time.time() + seconds * 2)
        w.add_scalar("Progress/train_seconds", seconds, step, walltime=time.time() + seconds * 2)
    w.close()

    fig = compare._figure(compare._load_all([new, old, bare], progress=False))
    axes = fig.axes  # rows: fid10k, Loss/G, Loss/D; columns: kimg, training hours
    assert len(axes) == 6 and axes[0].get_title().startswith("fid10k")  # maintenance_s, cpu_s are not metrics
    assert {ax.get_xlabel() for ax in axes[1::2]} == {"training hours"}
    hours = {line.get_label(): list(line.get_xdata()) for line in axes[1].get_lines()}
    assert hours == {new.name: [0.5, 1.5], old.name: [2.0]}
    assert [list(line.get_xdata()) for line in axes[3].get_lines()] == [[0.1, 0.2]]

    rows = compare.compare_runs([new, old, bare])
    assert [r["train_minutes"] for r in rows] == [90.0, None, 12.0]
    header, _, *cells = compare.format_table(rows).splitlines()
    col = header.index("train min") + len("train min")  # right-aligned under its header
    assert [c[:col].split()[-1] for c in cells] == ["90.0", "-", "12.0"]


def _short_run(tmp_path, name="00000-stylegan2-demo-64"):
    """A short run: Loss/G, Loss/D events and its one (final) evaluation, SWD with its four levels."""
    from torch.utils.tensorboard import SummaryWriter
    run = tmp_path / name
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"model": "stylegan2", "size": 64}))
    swd = {"swd": 51.0, "swd/64": 40.0, "swd/32": 50.0, "swd/16": 55.0, "swd/8": 59.0, "num_images/swd": 1024,
           "swd_floor": 18.0}
    (run / "metrics.jsonl").write_text(json.dumps({"kimg": 4.0, "train_s": 150.0, "wall_s": 150.0, **swd}) + "\n")
    w = SummaryWriter(str(run))
    for step in (1000, 2000, 3000, 4000):
        w.add_scalar("Loss/G", 1.0, step)
        w.add_scalar("Loss/D", 1.0, step)
        w.add_scalar("Progress/train_seconds", step * 0.0375, step)
    w.close()
    return run


def test_compare_table_fits_a_terminal(tmp_path):
    from stylegan_anime.reports import compare
    runs = [_short_run(tmp_path, f"0000{i}-stylegan2-demo-64") for i in range(2)]
    rows = compare.compare_runs(runs)
    assert "num_images/swd_best" not in rows[0]  # a count, not a metric
    wide = compare.format_table(rows, width=None, levels=True)
    assert max(map(len, wide.splitlines())) > 120  # what used to be printed: every level of SWD, best and last
    for width in (80, 120):
        table = compare.format_table(rows, width=width)
        lines = table.splitlines()
        assert max(map(len, lines)) <= width, table
        blocks = table.split("\n\n")
        assert all(b.startswith("run ") and all(r.name in b for r in runs) for b in blocks), table
        assert "swd best (lower)" in table and "swd/64" not in table and "floor" not in table  # the mean alone
    assert "swd/64 best" in compare.format_table(rows, width=80, levels=True)
    assert len(compare.format_table(rows, width=None).split("\n\n")) == 1  # no limit: one block


def test_compare_plot_of_a_short_run_draws_its_losses_not_a_panel_per_level(tmp_path):
    from stylegan_anime.reports import compare
    fig = compare._figure(compare._load_all([_short_run(tmp_path)], progress=False))
    titles = [ax.get_title() for ax in fig.axes[::2]]
    assert titles == ["swd (lower is better)", "Loss/G", "Loss/D"], titles  # not swd/64, swd/32 ... one dot each
    (loss,) = fig.axes[2].get_lines()
    assert len(loss.get_xdata()) == 4 and loss.get_marker() == "o" and loss.get_linestyle() == "-"


def test_compare_script_wraps_at_width(tmp_path):
    import subprocess
    _short_run(tmp_path)
    out = subprocess.run([sys.executable, str(Path(__file__).parents[1] / "tools" / "compare_runs.py"), str(tmp_path),
                          "--width", "80", "--no-progress"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert max(map(len, out.stdout.splitlines())) <= 80 and "swd best" in out.stdout, out.stdout
