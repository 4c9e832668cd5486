"""A checkpoint whose content does not fit its own config is one `error:` line naming the key (exit 2) in every
command that loads one, never a traceback or a blank picture (training/checkpoint_check.py)."""
from __future__ import annotations

import math

import pytest
import torch
from PIL import Image

from conftest import run_cli
from stylegan_anime.training.checkpoint import CheckpointError, list_checkpoints, load_checkpoint


def one_error(code, err) -> str:
    assert code == 2, err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def _tiny_state(tiny_runs) -> dict:
    return torch.load(list_checkpoints(tiny_runs["sg2"])[-1], weights_only=True)


def _damage(state: dict, how: str) -> None:
    """Change a tiny StyleGAN2 checkpoint (64 px, channel_max 16, z_dim 16) in one way."""
    config, g_ema = state["config"], state["nets"]["G_ema"]
    if how == "size":
        config["size"] = 128  # 64 px weights
    elif how == "channel_max":
        config["model_cfg"]["channel_max"] = 32  # weights for 16
    elif how == "shape":
        name = next(n for n, t in g_ema.items() if t.dim() == 4)
        g_ema[name] = torch.zeros(*g_ema[name].shape[:-1], g_ema[name].shape[-1] + 2)
    elif how == "model":
        config["model"] = "no-such-model"
    elif how == "z_dim":
        config["model_cfg"]["z_dim"] = -5
    elif how == "bad_size":
        config["size"] = 100
    elif how == "opt_moment":  # an Adam moment that is not its parameter's shape
        entry = next(e for e in state["opts"]["G"]["state"].values() if "exp_avg" in e)
        entry["exp_avg"] = torch.zeros(3, 5, 7)
    elif how == "fixed_z":
        state["fixed"]["z"] = torch.zeros(4, 3)
    elif how == "rng":
        state["rng"]["torch"] = torch.zeros(10, dtype=torch.uint8)
    elif how in ("nan", "nan_d"):
        for t in (g_ema if how == "nan" else state["nets"]["D"]).values():
            if t.is_floating_point():
                t.fill_(math.nan)
    else:
        raise AssertionError(how)


# what the one error line must name for each damage
NAMED = {"size": ("nets.G", "128"), "channel_max": ("nets.G", "shape"), "shape": ("nets.G", "shape"),
         "model": ("config.model", "no-such-model"), "z_dim": ("config.model_cfg.z_dim", "-5"),
         "bad_size": ("config.size", "100"), "nan": ("nets.G_ema.", "non-finite")}


@pytest.fixture
def bad_checkpoint(tiny_runs, tmp_path):
    def make(how: str):
        state = _tiny_state(tiny_runs)
        _damage(state, how)
        path = tmp_path / f"bad-{how}.pt"
        torch.save(state, path)
        return path
    return make


@pytest.mark.parametrize("how", list(NAMED))
def test_generate_rejects_a_checkpoint_that_does_not_fit_its_config(how, bad_checkpoint, tmp_path, capsys):
    path = bad_checkpoint(how)
    grid = tmp_path / "grid.png"
    line = one_error(*run_cli(["generate", "--checkpoint", str(path), "--seeds", "0-3", "--grid", str(grid),
                               "--device", "cpu"], capsys)[::2])
    assert str(path) in line
    for word in NAMED[how]:
        assert word in line, line
    assert not grid.exists()


@pytest.mark.parametrize("how", ["size", "model", "z_dim", "shape"])
def test_train_resume_rejects_it_too(how, bad_checkpoint, tmp_path, capsys):
    path = bad_checkpoint(how)
    line = one_error(*run_cli(["train", "--resume", str(path), "--data", "demo:16", "--outdir", str(tmp_path / "out"),
                               "--kimg", "1", "--device", "cpu", "--no-progress", "--metrics", "none"], capsys)[::2])
    assert NAMED[how][0] in line
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize("how, key", [("opt_moment", "opts.G.state["), ("fixed_z", "fixed.z"), ("rng", "rng.torch")])
def test_train_resume_checks_the_training_state_it_restores(how, key, bad_checkpoint, tmp_path, capsys):
    """Optimiser moments, grid latents and RNG states of the wrong shape: one line before training, while
    `generate` (which uses none of them) still works."""
    path = bad_checkpoint(how)
    line = one_error(*run_cli(["train", "--resume", str(path), "--outdir", str(tmp_path / "out"), "--kimg", "0.016",
                               "--device", "cpu", "--no-progress"], capsys)[::2])
    assert key in line and str(path) in line
    code, _, err = run_cli(["generate", "--checkpoint", str(path), "--seeds", "0", "--grid", str(tmp_path / "g.png"),
                            "--device", "cpu"], capsys)
    assert code == 0, err


@pytest.mark.parametrize("command", [
    ["video", "--seeds", "0,1", "--output", "{tmp}/v.gif"],
    ["style-mixing", "--rows", "1", "--cols", "2", "--output", "{tmp}/m.png"],
    ["directions", "--out", "{tmp}/d.npz"],
    ["project", "--target", "{tmp}/t.png", "--outdir", "{tmp}/proj", "--steps", "1"],
])
def test_other_sampling_commands_reject_it(command, bad_checkpoint, tmp_path, capsys):
    path = bad_checkpoint("channel_max")
    Image.new("RGB", (64, 64)).save(tmp_path / "t.png")
    argv = [a.format(tmp=tmp_path) for a in command] + ["--checkpoint", str(path), "--device", "cpu"]
    line = one_error(*run_cli(argv, capsys)[::2])
    assert "nets.G" in line and str(path) in line


def test_metrics_rejects_it(bad_checkpoint, capsys):
    path = bad_checkpoint("nan")
    line = one_error(*run_cli(["metrics", "--checkpoint", str(path), "--data", "demo:16", "--metrics", "swd",
                               "--num", "8", "--device", "cpu"], capsys)[::2])
    assert "nets.G_ema." in line and "non-finite" in line


def test_project_checks_the_discriminator_it_uses(bad_checkpoint, tmp_path, capsys):
    path = bad_checkpoint("nan_d")
    Image.new("RGB", (64, 64)).save(tmp_path / "t.png")
    line = one_error(*run_cli(["project", "--checkpoint", str(path), "--target", str(tmp_path / "t.png"),
                               "--outdir", str(tmp_path / "p"), "--steps", "1", "--distance", "d", "--no-video",
                               "--no-progress", "--device", "cpu"], capsys)[::2])
    assert "nets.D." in line and "non-finite" in line


def test_only_the_networks_a_command_uses_must_be_finite(bad_checkpoint, tmp_path, capsys):
    """NaN G_ema: --no-ema (the raw G) still works; a resume (which loads every network) does not."""
    path = bad_checkpoint("nan")
    code, _, err = run_cli(["generate", "--checkpoint", str(path), "--no-ema", "--seeds", "0-1", "--grid",
                            str(tmp_path / "g.png"), "--device", "cpu"], capsys)
    assert code == 0, err
    assert load_checkpoint(path, use=("G", "D"))["config"]["size"] == 64
    with pytest.raises(CheckpointError, match=r"nets\.G_ema\..* non-finite"):
        load_checkpoint(path)


def test_a_run_folder_falls_back_past_a_checkpoint_that_does_not_fit(tiny_runs, tmp_path, capsys):
    """The newest checkpoint of a run with mismatched weights is skipped with a warning, like a damaged one."""
    import shutil
    run = tmp_path / "run"
    shutil.copytree(tiny_runs["sg2"], run)
    newest = list_checkpoints(run)[-1]
    state = torch.load(newest, weights_only=True)
    good_nimg = state["progress"]["nimg"]
    _damage(state, "shape")
    state["progress"]["nimg"] = good_nimg + 8
    torch.save(state, newest.with_name(f"ckpt-{good_nimg + 8:09d}.pt"))
    warnings = []
    assert load_checkpoint(run, warn=warnings.append)["progress"]["nimg"] == good_nimg
    assert any("shape" in w for w in warnings), warnings


def test_import_checkpoint_refuses_what_no_loader_would_read(tmp_path, capsys, monkeypatch):
    """import-checkpoint runs the same check on what it is about to write: NaN weights are refused, nothing written."""
    from test_official_import import FakeNVlabs, _our_official_pickle

    from stylegan_anime.stylegan2 import import_pickle, official_import

    pkl, _ = _our_official_pickle(tmp_path, FakeNVlabs(tmp_path / "SENTINEL"))
    real = official_import.convert

    def nan_convert(official):
        conv = real(official)
        next(t for t in conv["nets"]["G_ema"].values() if t.is_floating_point()).fill_(math.nan)
        return conv

    monkeypatch.setattr(import_pickle, "convert", nan_convert)
    out = tmp_path / "imported.pt"
    line = one_error(*run_cli(["import-checkpoint", str(pkl), str(out)], capsys)[::2])
    assert "nets.G_ema." in line and "non-finite" in line and pkl.name in line
    assert not out.exists()
