"""The shared trainer: accumulation and resume equivalence, checkpoints, EMA, skipped steps, Ctrl-C."""
from __future__ import annotations

import copy

import pytest
import torch
from conftest import stop_after

from stylegan_anime.training.checkpoint import (CheckpointError, find_resume, list_checkpoints, load_checkpoint,
                                                new_run_dir)
from stylegan_anime.training.config import TrainConfig
from stylegan_anime.training.trainer import Interrupted, Trainer


def make_cfg(model, tmp_path, **kw):
    from stylegan_anime.models import get_recipe
    model_over = kw.pop("model_cfg", {})
    mc = get_recipe(model).make_config(**model_over)
    import dataclasses
    base = dict(data="unused", size=64, model=model, kimg=0.032, outdir=str(tmp_path), progress=False,
                snap_kimg=1000, grid_kimg=1000, log_kimg=0.016, grid_size=2, device="cpu", metrics="")
    base.update(kw)
    return TrainConfig(**base, model_cfg=dataclasses.asdict(mc))


def params(module):
    return [p.detach().clone() for p in module.parameters()]


def test_accumulated_step_equals_single_batch(toy_model, tiny_data, tmp_path):
    one = Trainer(make_cfg(toy_model, tmp_path, batch_gpu=8), tmp_path / "a", dataset=tiny_data)
    acc = Trainer(make_cfg(toy_model, tmp_path, batch_gpu=2), tmp_path / "b", dataset=tiny_data)
    assert acc.rounds == 4 and one.rounds == 1
    for name in ("G", "D"):
        for p, q in zip(one.recipe.nets[name].parameters(), acc.recipe.nets[name].parameters()):
            assert torch.equal(p, q)
    start = params(one.recipe.nets["D"])
    torch.manual_seed(1)  # both draw the same latents from the global generator
    one.step()
    torch.manual_seed(1)
    acc.step()
    moved = False
    for name in ("G", "D"):
        for p, q in zip(one.recipe.nets[name].parameters(), acc.recipe.nets[name].parameters()):
            torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    for p, s in zip(one.recipe.nets["D"].parameters(), start):
        moved |= not torch.allclose(p, s)
    assert moved, "the step must change D"


def test_accumulation_without_loss_scaling_would_differ(toy_model, tiny_data, tmp_path):
    """Guard for the test above: doubling the lr (= forgetting the 1/rounds) must be detectable."""
    a = Trainer(make_cfg(toy_model, tmp_path), tmp_path / "a", dataset=tiny_data)
    b = Trainer(make_cfg(toy_model, tmp_path, model_cfg={"lr_d": 0.1, "lr_g": 0.1}), tmp_path / "b", dataset=tiny_data)
    torch.manual_seed(1)
    a.step()
    torch.manual_seed(1)
    b.step()
    diff = max((p - q).abs().max().item() for p, q in zip(a.recipe.nets["D"].parameters(), b.recipe.nets["D"].parameters()))
    assert diff > 1e-4


def _train(cfg, run_dir, data, resume=None):
    t = Trainer(cfg, run_dir, dataset=data, resume=resume)
    t.train()
    return t


@pytest.mark.parametrize("model,model_cfg", [("toy", {}), ("dcgan", {"dim": 4, "batch": 8}),
                                             ("wgan-gp", {"dim": 4, "batch": 8, "n_critic": 2}),
                                             ("stylegan2", {"z_dim": 16, "w_dim": 16, "channel_base": 256,
                                                            "channel_max": 16, "batch": 8, "num_fp16_res": 0,
                                                            "pl_interval": 2, "r1_interval": 4})])
def test_resume_equals_uninterrupted(model, model_cfg, tiny_data, tmp_path, request):
    if model == "toy":
        request.getfixturevalue("toy_model")
    kimg_full, kimg_half = 0.064, 0.032
    full = _train(make_cfg(model, tmp_path, kimg=kimg_full, model_cfg=model_cfg, batch_gpu=4, log_kimg=0.008),
                  tmp_path / "full", tiny_data)
    half = _train(make_cfg(model, tmp_path, kimg=kimg_half, model_cfg=model_cfg, batch_gpu=4), tmp_path / "half",
                  tiny_data)
    assert half.nimg < full.nimg
    state = load_checkpoint(tmp_path / "half")
    cfg2 = make_cfg(model, tmp_path, kimg=kimg_full, model_cfg=model_cfg, batch_gpu=4)
    torch.manual_seed(999)  # the global RNG state before resuming must not matter
    resumed = _train(cfg2, tmp_path / "half", tiny_data, resume=state)
    assert resumed.nimg == full.nimg and resumed.iteration == full.iteration
    for a, b in ((full.recipe.nets["G"], resumed.recipe.nets["G"]), (full.recipe.nets["D"], resumed.recipe.nets["D"]),
                 (full.G_ema, resumed.G_ema)):
        for (n, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
            assert torch.equal(x, y), n
    for k in full.recipe.opts:
        sa, sb = full.recipe.opts[k].state_dict()["state"], resumed.recipe.opts[k].state_dict()["state"]
        for i in sa:
            for key in sa[i]:
                assert torch.equal(torch.as_tensor(sa[i][key]), torch.as_tensor(sb[i][key]))


def test_checkpoint_contents_and_safe_loading(toy_model, tiny_data, tmp_path):
    cfg = make_cfg(toy_model, tmp_path, kimg=0.048, snap_kimg=0.016, keep=2)
    t = _train(cfg, tmp_path / "run", tiny_data)
    files = list_checkpoints(tmp_path / "run")
    assert [f.name for f in files] == ["ckpt-000000032.pt", "ckpt-000000048.pt"]  # snaps at 16, 32 + final 48; newest 2 kept
    raw = torch.load(files[-1], weights_only=True)  # no code runs on load
    assert set(raw["nets"]) == {"G", "D", "G_ema"} and set(raw["opts"]) == {"G", "D"}
    assert raw["progress"]["nimg"] == 48 and raw["config"]["model"] == "toy"
    assert "torch" in raw["rng"] and "sampler" in raw["rng"]
    assert not any(p.name.startswith(".tmp") for p in files[0].parent.iterdir())
    assert t.nimg == 48


def test_bad_checkpoints_are_one_line_errors(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"a": 1}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a stylegan-anime checkpoint"):
        load_checkpoint(tmp_path / "other.pt")

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))
    torch.save({"format": 1, "config": {}, "x": Evil()}, tmp_path / "evil.pt", _use_new_zipfile_serialization=True)
    with pytest.raises(CheckpointError, match="cannot read"):
        load_checkpoint(tmp_path / "evil.pt")


def test_find_resume_picks_newest_run_with_a_checkpoint(tmp_path):
    assert find_resume(tmp_path / "missing") is None
    a = new_run_dir(tmp_path, "x")
    b = new_run_dir(tmp_path, "y")
    assert a.name == "00000-x" and b.name == "00001-y"
    (a / "checkpoints").mkdir()
    (a / "checkpoints" / "ckpt-000000100.pt").write_bytes(b"")
    (a / "checkpoints" / "ckpt-000000020.pt").write_bytes(b"")
    assert find_resume(tmp_path).name == "ckpt-000000100.pt"  # run b has none yet


def test_ema_halflife_and_copy(toy_model, tiny_data, tmp_path):
    t = Trainer(make_cfg(toy_model, tmp_path, model_cfg={"ema_kimg": 0.0}), tmp_path / "a", dataset=tiny_data)
    t.step()
    for p, q in zip(t.G.parameters(), t.G_ema.parameters()):
        assert torch.equal(p, q)  # ema_kimg 0: G_ema follows G
    t = Trainer(make_cfg(toy_model, tmp_path, model_cfg={"ema_kimg": 0.008}), tmp_path / "b", dataset=tiny_data)
    before = params(t.G_ema)
    t.step()  # 8 images shown, half-life 8 images: beta = 0.5
    for e0, e1, g in zip(before, t.G_ema.parameters(), t.G.parameters()):
        torch.testing.assert_close(e1, 0.5 * e0 + 0.5 * g.detach())


def test_nonfinite_gradients_never_reach_the_weights(toy_model, tiny_data, tmp_path):
    t = Trainer(make_cfg(toy_model, tmp_path), tmp_path / "a", dataset=tiny_data)
    d_loss = t.recipe.phases[0].loss
    t.recipe.phases[0].loss = lambda b: {"loss": d_loss(b)["loss"] * float("nan")}
    before = params(t.recipe.nets["D"])
    t.step()
    assert t.skipped == 1
    for p, q in zip(before, t.recipe.nets["D"].parameters()):
        assert torch.equal(p, q)


def test_request_stop_saves_and_raises(toy_model, tiny_data, tmp_path):
    t = Trainer(make_cfg(toy_model, tmp_path, kimg=10), tmp_path / "run", dataset=tiny_data)
    stop_after(t, 3)
    with pytest.raises(Interrupted) as e:
        t.train()
    assert e.value.checkpoint.exists()
    assert load_checkpoint(e.value.checkpoint)["progress"]["nimg"] == 24


def test_bf16_autocast_trains(toy_model, tiny_data, tmp_path):
    t = Trainer(make_cfg(toy_model, tmp_path, amp="bf16"), tmp_path / "a", dataset=tiny_data)
    before = params(t.recipe.nets["D"])
    t.step()
    assert t.skipped == 0
    assert any(not torch.equal(p, q) for p, q in zip(before, t.recipe.nets["D"].parameters()))


def test_outputs_written(toy_model, tiny_data, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    t = _train(make_cfg(toy_model, tmp_path, kimg=0.032, grid_kimg=0.016), tmp_path / "run", tiny_data)
    run = tmp_path / "run"
    assert (run / "config.json").exists() and (run / "reals.png").exists()
    assert (run / "fakes-G-000000000.png").exists() and not list(run.glob("fakes-ema*"))  # toy: no EMA
    ev = EventAccumulator(str(run)).Reload()
    scalars = set(ev.Tags()["scalars"])
    assert {"Loss/D", "Loss/G", "Stats/D_real", "Perf/img_per_s", "Perf/peak_mem_gb", "Progress/kimg"} <= scalars
    assert {"Samples/G", "Samples/ema", "Samples/reals"} <= set(ev.Tags()["images"])
    steps = [e.step for e in ev.Scalars("Loss/D")]
    assert steps[-1] == 32 and steps == sorted(steps)


def test_fp16_uses_a_grad_scaler_and_trains(toy_model, tiny_data, tmp_path):
    t = Trainer(make_cfg(toy_model, tmp_path, amp="fp16"), tmp_path / "a", dataset=tiny_data)
    assert all(s.is_enabled() for s in t.scalers.values())
    before = params(t.recipe.nets["G"])
    for _ in range(2):
        t.step()
    assert any(not torch.equal(p, q) for p, q in zip(before, t.recipe.nets["G"].parameters()))
    assert "scalers" in t.state_dict() and t.state_dict()["scalers"]["D"]["scale"] > 0


def test_sampler_epochs_flips_and_device_copy(tiny_data):
    import numpy as np
    from stylegan_anime.data.sampler import BatchSampler
    s = BatchSampler(tiny_data, torch.device("cpu"), seed=3)
    seen = torch.cat([s._next_indices(10) for _ in range(4)])
    assert sorted(seen.tolist()) == list(range(40))  # one epoch = a permutation, no repeats
    x, labels = s.sample(5)
    assert x.shape == (5, 3, 64, 64) and x.dtype == torch.float32 and labels is None
    assert -1 <= x.min() and x.max() <= 1
    resident = BatchSampler(tiny_data, torch.device("cpu"), seed=3, device_resident=True)
    mapped = BatchSampler(tiny_data, torch.device("cpu"), seed=3, device_resident=False)
    torch.testing.assert_close(resident.sample(7)[0], mapped.sample(7)[0])
    flip = BatchSampler(tiny_data, torch.device("cpu"), seed=3, xflip=True)
    plain = BatchSampler(tiny_data, torch.device("cpu"), seed=3)
    xf, xp = flip.sample(16)[0], plain.sample(16)[0]
    same = [torch.equal(a, b) for a, b in zip(xf, xp)]
    mirrored = [torch.equal(a, b.flip(2)) for a, b in zip(xf, xp)]
    assert all(s or m for s, m in zip(same, mirrored)) and any(mirrored) and any(same)


def test_eval_latents_any_range_equals_the_sequential_rows():
    from stylegan_anime.training.trainer import EvalLatents
    seq = EvalLatents(8, seed=3)
    rows = torch.cat([seq.take(700), seq.take(900), seq.take(600)])     # crosses chunk boundaries
    ranged = EvalLatents(8, seed=3)
    assert torch.equal(ranged.take(300, start=1500), rows[1500:1800])  # asked first, beyond the first chunk
    assert torch.equal(ranged.take(64, start=0), rows[:64])
    assert torch.equal(ranged.take(10), rows[64:74])                    # then on from where it was
    assert not torch.equal(EvalLatents(8, seed=4).take(64), rows[:64])


def _fused_adam(t: Trainer) -> None:
    """Give the toy recipe fused Adam (what recipes use on CUDA; torch also runs it on the CPU)."""
    t.recipe.opts = {k: torch.optim.Adam(net.parameters(), lr=0.01, fused=True) for k, net in t.recipe.nets.items()}


class _HostSyncs:
    """Counts Tensor.item / bool(tensor) calls: the host syncs of the hot loop."""

    def __init__(self, monkeypatch):
        self.calls = 0
        for name in ("item", "__bool__"):
            orig = getattr(torch.Tensor, name)
            monkeypatch.setattr(torch.Tensor, name, self._counting(orig))

    def _counting(self, orig):
        def wrapped(t, *a):
            self.calls += 1
            return orig(t, *a)
        return wrapped


def test_fused_optimiser_skips_nonfinite_steps_on_the_device_without_host_sync(toy_model, tiny_data, tmp_path,
                                                                                 monkeypatch):
    t = Trainer(make_cfg(toy_model, tmp_path), tmp_path / "a", dataset=tiny_data)
    _fused_adam(t)
    t.step()  # a finite step first, so Adam has moments and a step count to protect
    opt_d = t.recipe.opts["D"]
    state_before = copy.deepcopy(opt_d.state_dict())
    weights_before = params(t.recipe.nets["D"])
    d_loss = t.recipe.phases[0].loss
    t.recipe.phases[0].loss = lambda b: {"loss": d_loss(b)["loss"] * float("nan")}
    syncs = _HostSyncs(monkeypatch)
    t.step()
    assert syncs.calls == 0  # the verdict stayed on the device
    monkeypatch.undo()
    for p, q in zip(weights_before, t.recipe.nets["D"].parameters()):
        assert torch.equal(p, q)
    after = opt_d.state_dict()["state"]
    for k, st in state_before["state"].items():
        for name in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(st[name], after[k][name]), name
    assert not hasattr(opt_d, "found_inf")
    assert t.skipped == 1 and t.state_dict()["progress"]["skipped"] == 1
    t.recipe.phases[0].loss = d_loss
    t.step()
    assert t.skipped == 1 and any(not torch.equal(p, q) for p, q in zip(weights_before, t.recipe.nets["D"].parameters()))


def test_device_skip_path_trains_as_the_host_path(toy_model, tiny_data, tmp_path, monkeypatch):
    from stylegan_anime.training import trainer as trainer_mod
    runs = []
    for on_device in (True, False):
        monkeypatch.setattr(trainer_mod, "_skips_on_device", lambda *a, v=on_device: v)
        t = Trainer(make_cfg(toy_model, tmp_path), tmp_path / f"r{on_device}", dataset=tiny_data)
        _fused_adam(t)
        torch.manual_seed(3)
        for _ in range(3):
            t.step()
        runs.append(params(t.recipe.nets["G"]) + params(t.recipe.nets["D"]) + params(t.G_ema))
    for p, q in zip(*runs):
        assert torch.equal(p, q)
    # and the host path does sync once per optimiser step (what the device path saves)
    syncs = _HostSyncs(monkeypatch)
    t.step()
    assert syncs.calls == len(t.recipe.phases)
