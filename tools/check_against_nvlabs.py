"""One training step of our StyleGAN2 recipe against NVlabs' stylegan2-ada-pytorch, phase by phase.

Both sides get the same weights (NVlabs' freshly built G and D, loaded into ours by name), the same batch of
reals and latents, style mixing off, the same noise (each phase starts from the same torch seed; noise
strengths and biases are set non-zero so that the noise path counts), and each phase's gain (its lazy
interval). For Gmain, Greg (path length), Dmain and Dreg (R1) it prints the loss on both sides and the worst
relative gradient difference over all parameters, names any parameter that gets a gradient on one side
only, and compares the running path-length mean and w_avg afterwards.

    git clone <stylegan2-ada-pytorch> /tmp/nv        # their code is read at run time, never copied here
    python tools/check_against_nvlabs.py --nvlabs /tmp/nv

Exit status 0 when every phase agrees to --tol (relative), 1 otherwise.
"""
from __future__ import annotations

import sys

import click
import torch


def _grads(module: torch.nn.Module) -> dict:
    return {n: None if p.grad is None else p.grad.detach().clone() for n, p in module.named_parameters()}


def _compare(ours: dict, theirs: dict) -> tuple[float, str, list[str]]:
    worst, where, one_sided = 0.0, "", []
    for name, a in ours.items():
        b = theirs[name]
        if a is None or b is None:
            if (a is None) != (b is None):
                one_sided.append(f"{name} ({'theirs' if a is None else 'ours'} only)")
            continue
        rel = float((a - b).abs().max() / (b.abs().max() + 1e-12))
        if rel > worst:
            worst, where = rel, name
    return worst, where, one_sided


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--nvlabs", "nv_path", required=True, type=click.Path(exists=True, file_okay=False),
              help="a checkout of NVlabs/stylegan2-ada-pytorch")
@click.option("--resolution", default=32, show_default=True)
@click.option("--batch", default=8, show_default=True)
@click.option("--tol", default=1e-4, show_default=True, help="largest relative gradient difference accepted")
def main(nv_path: str, resolution: int, batch: int, tol: float) -> None:
    """Compare one step of every StyleGAN2 phase with NVlabs' StyleGAN2Loss."""
    sys.path.insert(0, nv_path)
    try:
        from training.loss import StyleGAN2Loss  # noqa: PLC0415 (their code, from --nvlabs)
        from training.networks import Discriminator as NVDiscriminator  # noqa: PLC0415
        from training.networks import Generator as NVGenerator  # noqa: PLC0415
    except ImportError as e:
        raise click.ClickException(f"--nvlabs {nv_path}: not a stylegan2-ada-pytorch checkout ({e})") from None
    from stylegan_anime.stylegan2.recipe import StyleGAN2, StyleGAN2Config  # noqa: PLC0415
    from stylegan_anime.training.recipe import Batch  # noqa: PLC0415

    torch.manual_seed(0)
    width = dict(channel_base=1024, channel_max=64, num_fp16_res=0, conv_clamp=None)
    z_dim = 64
    nvG = NVGenerator(z_dim=z_dim, c_dim=0, w_dim=z_dim, img_resolution=resolution, img_channels=3,
                      mapping_kwargs=dict(num_layers=2), synthesis_kwargs=width).train().requires_grad_(False)
    nvD = NVDiscriminator(c_dim=0, img_resolution=resolution, img_channels=3,
                          epilogue_kwargs=dict(mbstd_group_size=4), **width).train().requires_grad_(False)
    with torch.no_grad():  # leave the initial zeros so that every term is exercised
        for net in (nvG, nvD):
            for name, p in net.named_parameters():
                if name.endswith("noise_strength"):
                    p.fill_(0.3)
                elif name.endswith("bias"):
                    p.add_(torch.randn_like(p) * 0.1)
        nvG.mapping.w_avg.normal_()

    cfg = StyleGAN2Config(z_dim=z_dim, w_dim=z_dim, map_layers=2, channel_base=1024, channel_max=64, num_fp16_res=0,
                          conv_clamp=0, style_mixing=0.0, gamma=1.0, batch=batch)
    ours = StyleGAN2(cfg, resolution, "cpu")
    G, D = ours.nets["G"], ours.nets["D"]
    G.load_state_dict(nvG.state_dict())
    D.load_state_dict(nvD.state_dict())
    theirs = StyleGAN2Loss("cpu", nvG.mapping, nvG.synthesis, nvD, style_mixing_prob=0, r1_gamma=cfg.gamma,
                           pl_batch_shrink=cfg.pl_batch_shrink, pl_decay=cfg.pl_decay, pl_weight=cfg.pl_weight)

    z = torch.randn(batch, z_dim)
    reals = torch.rand(batch, 3, resolution, resolution) * 2 - 1
    empty_c = torch.zeros(batch, 0)
    losses = {"Gmain": ours.loss_G, "Greg": ours.loss_Greg, "Dmain": ours.loss_D, "Dreg": ours.loss_Dreg}
    gains = {"Gmain": 1, "Greg": cfg.pl_interval, "Dmain": 1, "Dreg": cfg.r1_interval}
    ok = True
    for phase, loss_fn in losses.items():
        net_nv, net = (nvG, G) if phase.startswith("G") else (nvD, D)
        for m in (nvG, nvD, G, D):
            m.requires_grad_(False)
            for p in m.parameters():
                p.grad = None
        net_nv.requires_grad_(True)
        net.requires_grad_(True)
        ours.pl_mean.copy_(theirs.pl_mean)
        torch.manual_seed(123)
        theirs.accumulate_gradients(phase, reals, empty_c, z, empty_c, sync=True, gain=gains[phase])
        torch.manual_seed(123)
        out = loss_fn(Batch(z=z, reals=reals))
        out["loss"].backward()
        worst, where, one_sided = _compare(_grads(net), _grads(net_nv))
        pl = abs(float(ours.pl_mean) - float(theirs.pl_mean))
        w_avg = float((G.mapping.w_avg - nvG.mapping.w_avg).abs().max())
        good = worst <= tol and not one_sided and pl <= 1e-6 and w_avg <= 1e-6
        ok &= good
        print(f"{phase:6s} loss {out['loss'].item():.6g}  grad rel diff {worst:.2e} {where}  "
              f"pl_mean diff {pl:.1e}  w_avg diff {w_avg:.1e}  {'ok' if good else 'DIFFERS'}"
              + (f"\n       gradient on one side only: {', '.join(one_sided)}" if one_sided else ""))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
