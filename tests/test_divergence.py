"""A diverging run is loud: skipped optimiser steps are reported on the console (at once, then at most once a
minute), large but finite losses / weights are warned about, and both --max-skipped iterations in a row with
NaN/inf gradients and exploded networks (divergence.py's rule) stop the run with exit code 3, without saving
over the last good checkpoint."""
from __future__ import annotations

import dataclasses
import math

import pytest
from conftest import run_cli
import torch

from stylegan_anime.training import trainer as trainer_mod
from stylegan_anime.training.checkpoint import list_checkpoints, load_checkpoint
from stylegan_anime.training.trainer import Trainer

DCGAN = ["--model", "dcgan", "--dim", "4", "--batch", "8", "--metrics", "none", "--no-progress", "--device", "cpu",
         "--grid", "1000", "--data", "demo:16"]
STYLEGAN2 = ["--channel-base", "256", "--channel-max", "16", "--z-dim", "16", "--w-dim", "16", "--batch", "8",
             "--metrics", "none", "--no-progress", "--device", "cpu", "--grid", "1000", "--data", "demo:16"]
SKIPPED = "skipped for non-finite"
EXPLODING = "training is exploding"
EXPLODED = "the networks exploded"


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("STYLEGAN_ANIME_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def run(argv, capsys):
    code, _, err = run_cli(argv, capsys)
    return code, err


def _nan_from(monkeypatch, iteration: int) -> None:
    """From this iteration on, every phase's loss is NaN (gradients too): what a blow-up looks like."""
    orig = Trainer.run_phase

    def run_phase(self, phase, reals, labels):
        if self.iteration >= iteration:
            loss = phase.loss
            phase = dataclasses.replace(phase, loss=lambda b: {"loss": loss(b)["loss"] * float("nan")})
        orig(self, phase, reals, labels)
    monkeypatch.setattr(Trainer, "run_phase", run_phase)


def test_a_diverged_run_stops_with_exit_3_and_keeps_the_last_good_checkpoint(tmp_path, capsys, monkeypatch):
    _nan_from(monkeypatch, 6)  # healthy for 6 iterations of 8 images, then NaN
    code, err = run(["train", *DCGAN, "--kimg", "1", "--snap", "0.032", "--log", "0.008", "--max-skipped", "3",
                     "--outdir", str(tmp_path)], capsys)
    assert code == 3, err
    run_dir = next(tmp_path.glob("00000-*"))
    kept = list_checkpoints(run_dir)
    # the snapshot at 32 images was good; the one due at 64 fell in the streak and was not written; none at the end
    assert [p.name for p in kept] == ["ckpt-000000032.pt"], err
    state = load_checkpoint(kept[-1])
    assert all(torch.isfinite(t).all() for sd in state["nets"].values() for t in sd.values() if t.is_floating_point())
    assert sum(line.startswith("warning:") and SKIPPED in line for line in err.splitlines()) == 1, err
    assert "no checkpoint now" in err
    lines = err.strip().splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("error: training diverged"))
    message = "\n".join(lines[first:])
    for needle in ("3 iterations in a row", "--lr", "--gamma", "--amp bf16", f"last good checkpoint: {kept[-1]}"):
        assert needle in message, message
    assert "Traceback" not in err and "done:" not in err


def test_stylegan2_with_an_absurd_lr_reports_skipped_steps_and_stops(tmp_path, capsys):
    code, err = run(["train", *STYLEGAN2, "--lr", "1e6", "--kimg", "1", "--log", "0.008", "--outdir", str(tmp_path)],
                    capsys)
    assert code == 3, err
    assert SKIPPED in err.split("error:")[0]  # reported on the console before the end
    error = err[err.index("error: training diverged"):]
    assert EXPLODED in error and "--lr 1e+06 lowered" in error, err  # StyleGAN2's one learning-rate flag
    assert "last good checkpoint: none" in error, err
    assert list_checkpoints(next(tmp_path.glob("00000-*"))) == []  # nothing was saved from the diverged weights


@pytest.mark.parametrize("model", ["dcgan", "wgan"])
def test_an_absurd_lr_that_explodes_with_finite_gradients_stops_with_exit_3(model, tmp_path, capsys):
    """The skip counter sees nothing here (gradients stay finite: weights 1e6 and more, losses 1e14): the explosion
    rule stops the run, and the line names the model's own learning-rate flags."""
    args = [a if a != "dcgan" else model for a in DCGAN]
    code, err = run(["train", *args, "--lr-g", "1e6", "--lr-d", "1e6", "--kimg", "0.064", "--log", "0.016",
                     "--outdir", str(tmp_path)], capsys)
    assert code == 3, err
    assert SKIPPED not in err, err
    error = err[err.index("error: training diverged"):]
    assert EXPLODED in error and "max |weight|" in error, error
    assert "--lr-g 1e+06 and --lr-d 1e+06 lowered" in error, error
    assert "last good checkpoint: none" in error and "done:" not in err, err
    assert list_checkpoints(next(tmp_path.glob("00000-*"))) == []


def _explode_from(monkeypatch, iteration: int) -> None:
    """From this iteration on, every optimiser takes lr 1e6: finite gradients, exploding weights."""
    orig = Trainer.run_phase

    def run_phase(self, phase, reals, labels):
        if self.iteration >= iteration:
            for group in self.recipe.opts[phase.net].param_groups:
                group["lr"] = 1e6
        orig(self, phase, reals, labels)
    monkeypatch.setattr(Trainer, "run_phase", run_phase)


def test_an_exploded_run_keeps_the_last_good_checkpoint(tmp_path, capsys, monkeypatch):
    _explode_from(monkeypatch, 6)  # healthy for 6 iterations of 8 images
    code, err = run(["train", *DCGAN, "--kimg", "1", "--snap", "0.032", "--log", "0.008", "--keep", "1",
                     "--outdir", str(tmp_path)], capsys)
    assert code == 3, err
    kept = list_checkpoints(next(tmp_path.glob("00000-*")))
    assert [p.name for p in kept] == ["ckpt-000000032.pt"], err  # --keep 1: a newer one would have pushed it out
    state = load_checkpoint(kept[-1])
    assert max(float(t.abs().max()) for sd in state["nets"].values() for t in sd.values() if t.is_floating_point()) < 100
    error = err[err.index("error: training diverged"):]
    assert "at kimg 0.06" in error and EXPLODED in error and "--lr-g" in error and "--lr-d" in error, error
    assert f"last good checkpoint: {kept[-1]}" in error, error


def test_no_checkpoint_is_written_from_exploded_networks_between_flushes(tmp_path, capsys):
    """--log beyond the run: no flush sees the explosion before the periodic snapshot; the snapshot itself refuses."""
    code, err = run(["train", *DCGAN, "--lr-g", "1e6", "--lr-d", "1e6", "--kimg", "0.064", "--log", "1",
                     "--snap", "0.016", "--outdir", str(tmp_path)], capsys)
    assert code == 3, err
    assert "at kimg 0.02" in err and EXPLODED in err, err
    assert list_checkpoints(next(tmp_path.glob("00000-*"))) == []


def test_large_but_healthy_weights_warn_once_and_train_on(toy_model, tiny_data, tmp_path, capsys):
    from stylegan_anime.training import divergence
    t = _toy(toy_model, tmp_path, tiny_data)
    with torch.no_grad():  # above the warning, below the stop rule
        t.recipe.nets["D"][2].weight[0, 0] = 5 * divergence.WARN
    for opt in t.recipe.opts.values():  # and kept there (SGD steps would scale with the weight)
        opt.param_groups[0]["lr"] = 0.0
    t._warn_clock = lambda: 0.0
    t.train()
    err = capsys.readouterr().err
    assert err.count(EXPLODING) == 1, err  # once, then at most once a minute
    assert "too high (--lr-g 0.05 and --lr-d 0.05)" in err, err  # the model's own flags, with their values
    assert t.nimg == 80 and list_checkpoints(tmp_path / "run")


def test_the_explosion_rule():
    from stylegan_anime.training.divergence import STOP_LOSS, STOP_WEIGHT, Health, measure
    assert Health(STOP_WEIGHT / 2, {"D": STOP_LOSS / 2}).exploded is None
    assert "max |weight|" in Health(STOP_WEIGHT * 2).exploded
    assert "loss D" in Health(1.0, {"D": -STOP_LOSS * 2, "G": 0.5}).exploded
    assert Health(1.0, {"D": math.nan}).exploded is None  # NaN losses: skipped steps, the skip counter's business
    net = torch.nn.BatchNorm1d(3)
    assert measure([net]).exploded is None
    net.running_var[1] = math.inf  # a buffer too
    assert "NaN/inf" in measure([net]).exploded


def test_a_healthy_run_prints_neither(tmp_path, capsys):
    code, err = run(["train", *DCGAN, "--kimg", "0.064", "--log", "0.016", "--max-skipped", "3",
                     "--outdir", str(tmp_path)], capsys)
    assert code == 0, err
    assert SKIPPED not in err and EXPLODING not in err and "diverged" not in err, err
    assert "done:" in err


def _toy(toy_model, tmp_path, tiny_data, **kw):
    from test_trainer import make_cfg
    return Trainer(make_cfg(toy_model, tmp_path, kimg=0.08, log_kimg=0.008, **kw), tmp_path / "run", dataset=tiny_data)


def _nan_d(t: Trainer) -> None:
    d_loss = t.recipe.phases[0].loss
    t.recipe.phases[0].loss = lambda b: {"loss": d_loss(b)["loss"] * float("nan")}


def test_skip_reports_come_at_once_then_at_most_once_a_minute(toy_model, tiny_data, tmp_path, capsys):
    t = _toy(toy_model, tmp_path, tiny_data)
    _nan_d(t)  # D's step skipped every iteration, G's not: half of the steps
    t._warn_clock = lambda: 0.0  # the clock stands still: one report only
    t.train()
    err = capsys.readouterr().err
    assert err.count(SKIPPED) == 1 and "1 optimiser step skipped" in err, err
    assert t.skipped == 10

    clock = iter(range(0, 10_000, 61))  # a minute passes between flushes: every flush reports its new skips
    t = Trainer(t.cfg, tmp_path / "run2", dataset=tiny_data)
    _nan_d(t)
    t._warn_clock = lambda: float(next(clock))
    t.train()
    lines = [line for line in capsys.readouterr().err.splitlines() if SKIPPED in line]
    assert len(lines) == 10, lines
    assert "1 optimiser step skipped" in lines[-1] and "10 in all" in lines[-1]
    assert "10 iterations in a row" in lines[-1]


def test_the_fused_device_path_counts_the_streak_without_a_host_sync(toy_model, tiny_data, tmp_path, monkeypatch):
    from test_trainer import _HostSyncs, _fused_adam
    t = _toy(toy_model, tmp_path, tiny_data, max_skipped=4, snap_kimg=0.016)
    _fused_adam(t)
    assert trainer_mod._skips_on_device(t.recipe.opts["D"], t.scalers["D"], t.recipe.phases[0])
    _nan_d(t)
    syncs = _HostSyncs(monkeypatch)
    t.step()
    t.step()
    assert syncs.calls == 0  # the streak stayed on the device
    monkeypatch.undo()
    assert t._streak_now() == 2
    t = _toy(toy_model, tmp_path, tiny_data, max_skipped=4, snap_kimg=0.016)
    _fused_adam(t)
    _nan_d(t)
    with pytest.raises(trainer_mod.Diverged) as e:
        t.train()
    assert e.value.streak == 4 and e.value.last_good is None and math.isclose(e.value.kimg, 0.032)
    assert list_checkpoints(tmp_path / "run") == []  # the snapshots due at 16 and 32 images were not written

    t = _toy(toy_model, tmp_path, tiny_data, max_skipped=0)  # 0: never stops
    _fused_adam(t)
    _nan_d(t)
    t.train()
    assert t._streak_now() == 10 and t.nimg == 80
