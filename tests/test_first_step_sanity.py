"""First-step sanity (training/sanity.py, issue #24 item 2): after the first iteration the losses and gradients are
checked and the log says which implementation each custom op ran and which dtype each block used. All on the CPU:
the reference ops, bfloat16 blocks (float16 blocks compute in float32 on a CPU)."""
from __future__ import annotations

import math

import pytest
import torch

from stylegan_anime.benchmarks.training import _bench_trainer
from stylegan_anime.cuda_ops import backend
from stylegan_anime.training import sanity

TINY = dict(channel_base=256, channel_max=16, z_dim=16, w_dim=16, batch=4, num_fp16_res=2, fp16_dtype="bfloat16",
            r1_interval=1, pl_interval=1)


def _trainer(tmp_path, model="stylegan2", overrides=TINY, amp="off"):
    return _bench_trainer(model, 32, device="cpu", batch=None, batch_gpu=None, amp=amp,
                          overrides=overrides if model == "stylegan2" else None, workdir=tmp_path)


def test_first_step_report_names_ops_block_dtypes_losses_and_gradients(tmp_path):
    t = _trainer(tmp_path)
    report = sanity.run_first_step(t)
    assert t.iteration == 1 and not report.problems
    lines = report.lines()
    assert all(line.startswith("first step: ") for line in lines)
    text = "\n".join(lines)
    # Which implementation ran, per op and dtype (on a CPU: the reference), with call counts.
    assert {op for op, _, _ in report.ops} == {"bias_act", "upfirdn2d"}
    assert {impl for _, impl, _ in report.ops} == {"ref"}
    assert ("upfirdn2d", "ref", "bfloat16") in report.ops and ("bias_act", "ref", "float32") in report.ops
    assert "bias_act ref bfloat16 x" in text
    # Which dtype each block used: the top 2 resolutions of G and D in bfloat16, the rest in float32.
    assert report.blocks["G synthesis.b32"] == {"bfloat16"} and report.blocks["G synthesis.b16"] == {"bfloat16"}
    assert report.blocks["G synthesis.b8"] == {"float32"} and report.blocks["G synthesis.b4"] == {"float32"}
    # D's blocks are reported too. (Their reduced dtype is float16 whatever fp16_dtype says: the recipe passes
    # fp16_dtype to G only, and float16 blocks compute in float32 on a CPU. The log makes that visible.)
    assert {"D b32", "D b16", "D b8", "D"} <= set(report.blocks) and report.blocks["D b8"] == {"float32"}
    assert "G: synthesis.b4 float32, synthesis.b8 float32, synthesis.b16 bfloat16, synthesis.b32 bfloat16" in text
    assert "output float32" in text
    # Every phase of the first iteration (both regularisers are due), its loss and its gradients.
    assert set(report.losses) == set(report.grads) == {"G", "Greg", "D", "Dreg"}
    assert all(math.isfinite(v) for vs in report.losses.values() for v in vs)
    assert set(report.grads.values()) == {"finite"}
    # Nothing is left behind: the trainer's own methods, no hooks, no op counting.
    assert "step" not in vars(t) and "run_phase" not in vars(t) and "_record" not in vars(t)
    assert backend.record_usage(False) is None
    assert not any(m._forward_hooks for net in t.recipe.nets.values() for m in net.modules())


def test_baseline_without_blocks_reports_its_networks(tmp_path):
    report = sanity.run_first_step(_trainer(tmp_path, model="dcgan"))
    assert not report.problems and not report.ops
    assert report.lines()[0] == "first step: ops: no custom op ran"
    assert set(report.blocks) == {"G", "D"} and report.blocks["G"] == {"float32"}


def test_a_non_finite_first_step_stops_with_the_report(tmp_path, capsys):
    t = _trainer(tmp_path)
    assert sanity.watch_first_step(t, force=True)
    with torch.no_grad():
        next(t.recipe.nets["D"].parameters()).fill_(float("nan"))
    with pytest.raises(sanity.FirstStepError, match=r"not finite: G loss nan.*--ops ref"):
        t.step()
    err = capsys.readouterr().err
    assert "first step: ops: bias_act ref" in err and "first step: losses: G nan" in err
    assert "step" not in vars(t)  # armed for one step only
    t.step()  # later steps are not watched (and not stopped)


def test_armed_on_cuda_only_unless_the_environment_says(monkeypatch, tmp_path):
    monkeypatch.delenv(sanity.ENV, raising=False)
    assert sanity.enabled(torch.device("cuda")) and not sanity.enabled(torch.device("cpu"))
    monkeypatch.setenv(sanity.ENV, "1")
    assert sanity.enabled(torch.device("cpu"))
    monkeypatch.setenv(sanity.ENV, "0")
    assert not sanity.enabled(torch.device("cuda"))
    t = _trainer(tmp_path)
    assert not sanity.watch_first_step(t) and "step" not in vars(t)


def test_grad_scaler_overflow_is_noted_not_fatal(tmp_path):
    """fp16's GradScaler may overflow in its first steps (it skips them and lowers its scale)."""
    t = _trainer(tmp_path)
    report = sanity.FirstStepReport()
    phase = next(p for p in t.recipe.phases if p.net == "G")
    for p in t.recipe.nets["G"].parameters():
        p.grad = torch.full_like(p, float("inf"))
    sanity.check_phase(t, phase, report)
    assert report.problems == ["G gradients non-finite"]
    t.scalers["G"] = torch.amp.GradScaler("cpu", enabled=True)
    report = sanity.FirstStepReport()
    sanity.check_phase(t, phase, report)
    assert not report.problems and "GradScaler overflow" in report.grads["G"]


def test_training_logs_its_first_step(tmp_path, monkeypatch, capsys):
    """Trainer.train() arms the check (on CUDA; here forced with the environment variable) for its first step."""
    monkeypatch.setenv(sanity.ENV, "1")
    t = _trainer(tmp_path)
    t.cfg.kimg = 0.008  # two iterations of 4 images
    t.train()
    err = capsys.readouterr().err
    assert err.count("first step: ops: bias_act ref") == 1 and "first step: gradients: G finite" in err
    log = next(tmp_path.rglob("log.txt")).read_text()
    assert "first step: dtypes: G: synthesis.b4 float32" in log


@pytest.mark.parametrize("error", ["ops", "first_step"])
def test_the_train_command_reports_them_in_one_line(error, tmp_path, capsys, monkeypatch):
    """--ops cuda with plugins that failed their self-test, or a first CUDA step with non-finite values: one
    `error:` line and exit 2, no traceback."""
    from conftest import run_cli

    from stylegan_anime.cuda_ops.backend import OpsUnavailableError
    from stylegan_anime.training import trainer as trainer_module
    from stylegan_anime.training.sanity import FirstStepError

    exc = (OpsUnavailableError("--ops cuda: upfirdn2d failed its self-test (max error 0.25); use --ops auto or ref")
           if error == "ops" else FirstStepError("the first step gave non-finite gradients in D"))

    def boom(self):
        raise exc
    monkeypatch.setattr(trainer_module.Trainer, "train", boom)
    code, _, err = run_cli(["train", "--data", "demo:8", "--model", "dcgan", "--dim", "4", "--batch", "4",
                            "--device", "cpu", "--metrics", "none", "--no-progress", "--outdir",
                            str(tmp_path / "runs")], capsys)
    lines = [line for line in err.splitlines() if line.startswith("error:") or "Traceback" in line]
    assert code == 2 and lines == [f"error: {exc}"], err
