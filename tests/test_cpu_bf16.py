"""`--amp bf16` on a CPU: autocast on the CPU device gives the fp32 numbers within bf16's precision, in every
StyleGAN2 phase (style mixing, path length, R1), and a run trains and samples."""
from __future__ import annotations

import pytest
import torch

from stylegan_anime.stylegan2.recipe import StyleGAN2, StyleGAN2Config
from stylegan_anime.training.recipe import Batch

from conftest import TINY_STYLEGAN2, train_run

# bf16 keeps 8 bits of mantissa (~0.4% per rounding); through a few layers the losses agree to a few percent and
# the gradients point the same way.
# R1's double backward at initialisation has tiny, noisy gradients (penalty ~1e-3): a looser direction bound there.
LOSS_RTOL = 0.05
GRAD_COSINE = {"G": 0.98, "Greg": 0.98, "D": 0.98, "Dreg": 0.93}


def _recipe():
    torch.manual_seed(0)
    cfg = StyleGAN2Config(preset="auto", channel_base=512, channel_max=32, z_dim=32, w_dim=32, map_layers=2,
                          num_fp16_res=0, style_mixing=0.0)
    return StyleGAN2(cfg, 32, torch.device("cpu"))


def _phase(recipe, name: str, batch: Batch, amp: bool):
    net = recipe.nets[dict(G="G", Greg="G", D="D", Dreg="D")[name]]
    net.zero_grad(set_to_none=True)
    phase = next(p for p in recipe.phases if p.name == name)
    torch.manual_seed(1)  # the same noise inputs in both runs
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
        out = phase.loss(batch)
    out["loss"].float().backward()
    grad = torch.cat([p.grad.flatten() for p in net.parameters() if p.grad is not None])
    return float(out["loss"].detach()), grad


@pytest.mark.parametrize("phase", ["G", "Greg", "D", "Dreg"])
def test_bf16_autocast_matches_fp32(phase):
    recipe = _recipe()
    state = {k: {n: t.clone() for n, t in net.state_dict().items()} for k, net in recipe.nets.items()}
    g = torch.Generator().manual_seed(2)
    batch = Batch(z=torch.randn(4, 32, generator=g), reals=torch.rand(4, 3, 32, 32, generator=g) * 2 - 1)
    ref_loss, ref_grad = _phase(recipe, phase, batch, amp=False)
    for k, net in recipe.nets.items():  # pl_mean / w_avg moved: start bf16 from the same state
        net.load_state_dict(state[k])
    recipe.pl_mean.zero_()
    loss, grad = _phase(recipe, phase, batch, amp=True)
    assert torch.isfinite(grad).all()
    assert loss == pytest.approx(ref_loss, rel=LOSS_RTOL, abs=1e-4)
    cosine = torch.nn.functional.cosine_similarity(grad, ref_grad, dim=0)
    assert cosine > GRAD_COSINE[phase], f"{phase}: gradient direction differs (cosine {cosine:.4f})"


def test_bf16_run_trains_and_keeps_fp32_state(tmp_path):
    """Weights, G_ema and Adam moments stay float32; w_avg (updated under autocast) too."""
    run = train_run(tmp_path / "runs", *TINY_STYLEGAN2, "--size", "32", "--preset", "auto", "--batch", "4",
                    "--kimg", "0.008", "--amp", "bf16", "--grid-size", "2")
    ckpt = sorted((run / "checkpoints").glob("*.pt"))[-1]
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    for net in ("G", "D", "G_ema"):
        for name, t in state["nets"][net].items():
            if t.is_floating_point():
                assert t.dtype == torch.float32, f"{net}.{name} is {t.dtype}"
                assert torch.isfinite(t).all(), f"{net}.{name}"
    moments = [v for s in state["opts"]["G"]["state"].values() for v in s.values()
               if torch.is_tensor(v) and v.dim() > 0]
    assert moments and all(m.dtype == torch.float32 for m in moments)
