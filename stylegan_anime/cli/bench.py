"""`stylegan-anime bench` (training speed per model, a profile, the reference on the same GPU), `bench-ops` (the
op benchmark) and `doctor` (torch, CUDA and the custom ops' build tools). The code is in stylegan_anime.benchmarks.
"""
from __future__ import annotations

import sys

import click

from ..models import model_names
from ..training.config import ConfigError
from .common import cli


@cli.command(epilog="""
\b
Examples:
  stylegan-anime bench                                   # every model; StyleGAN2 auto at 64/128 px on CUDA,
                                                         # its cpu preset at 64 px on a CPU
  stylegan-anime bench --models stylegan2 --preset cpu --channel-base 2048 --channel-max 128
  stylegan-anime bench --models stylegan2 --sizes 128 --kimg 4 --amp bf16
  stylegan-anime bench --models stylegan2 --sizes 128 --reference ~/src/stylegan2-ada-pytorch
  stylegan-anime bench --models stylegan2 --sizes 64,128 --reference ~/src/stylegan2-ada-pytorch --reference-only
  stylegan-anime bench --models stylegan2 --sizes 64 --profile prof/   # op table + Chrome trace per case
""")
@click.option("--models", default="stylegan2,dcgan,dcgan-tutorial,wgan,wgan-gp", show_default=True)
@click.option("--sizes", default=None,
              help="comma-separated powers of two, 32 to 1024 [default: 64,128 on CUDA, 64 on a CPU]")
@click.option("--preset", type=click.Choice(["auto", "paper", "cpu"]), default=None,
              help="StyleGAN2 preset [default: auto on CUDA, cpu on a CPU]")
@click.option("--channel-base", type=int, default=None, help="StyleGAN2 channel base [default: the preset's]")
@click.option("--channel-max", type=int, default=None, help="StyleGAN2 channel maximum [default: the preset's]")
@click.option("--kimg", type=float, default=1.0, show_default=True, help="timed kimg per case (after warm-up)")
@click.option("--warmup", type=int, default=3, show_default=True, help="untimed iterations first")
@click.option("--batch-gpu", type=int, default=None, help="images per forward pass [default: the whole batch]")
@click.option("--amp", type=click.Choice(["off", "bf16", "fp16"]), default="off", show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--ops", type=click.Choice(["auto", "cuda", "ref", "cpu"]), default="auto", show_default=True)
@click.option("--reference", type=click.Path(file_okay=False), default=None,
              help="a stylegan2-ada-pytorch checkout to time on the same GPU (StyleGAN2 sizes only)")
@click.option("--reference-only", is_flag=True,
              help="time only the reference, with the batch ours would use (ours timed in another call)")
@click.option("--reference-log", type=click.Path(dir_okay=False), default=None,
              help="append the reference's whole output (its build messages included) to this file")
@click.option("--profile", "profile_dir", type=click.Path(file_okay=False), default=None,
              help="instead of timing, profile each case with torch.profiler: op table (printed and written) and a "
                   "Chrome trace in this folder")
@click.option("--profile-iterations", type=int, default=16, show_default=True,
              help="iterations profiled (16 covers StyleGAN2's lazy regularisation)")
def bench(models, sizes, preset, channel_base, channel_max, kimg, warmup, batch_gpu, amp, device, ops, reference,
          reference_only, reference_log, profile_dir, profile_iterations):
    """Time training per model: s/kimg, img/s and peak memory after warm-up, printed row by row as measured.

    cuDNN autotuning is on and TF32 off, for ours and for --reference alike (stylegan2-ada-pytorch's defaults)."""
    from ..benchmarks.training import bench_data, bench_model, bench_plan, bench_reference
    from ..cuda_ops import set_default_impl
    from ..training.trainer import resolve_device

    set_default_impl(ops)
    names = [m.strip() for m in models.split(",") if m.strip()]
    unknown = [m for m in names if m not in model_names()]
    if unknown:
        raise ConfigError(f"--models: unknown {', '.join(unknown)}; choose from {', '.join(model_names())}")
    try:
        res, sg2 = bench_plan(resolve_device(device).type == "cuda", sizes, preset, channel_base, channel_max)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if kimg <= 0 or warmup < 0:
        raise ConfigError("--kimg must be positive, --warmup >= 0")
    over = lambda name: sg2 if name == "stylegan2" else None  # noqa: E731  (the StyleGAN2 flags)
    sg2_note = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in sg2.items())
    if reference_only and not reference:
        raise ConfigError("--reference-only needs --reference PATH")
    if reference:
        from ..benchmarks.training import check_reference
        try:
            check_reference(reference)
        except ValueError as e:
            raise ConfigError(str(e)) from None
    if profile_dir:
        from ..benchmarks.training import profile_model
        if profile_iterations < 1:
            raise ConfigError("--profile-iterations must be at least 1")
        for size in res:
            for name in names:
                click.echo(f"profiling {name} at {size} px ...", err=True)
                table, trace = profile_model(name, size, profile_dir, iterations=profile_iterations, warmup=warmup,
                                             device=device, batch_gpu=batch_gpu, amp=amp, overrides=over(name))
                click.echo(table)
                click.echo(f"trace: {trace}", err=True)
        return
    import tempfile

    import torch

    from ..benchmarks.training import backend_flags, bench_batch, format_head, format_row, reference_flags_text
    flags = backend_flags()  # cuDNN autotuning on, TF32 off: as stylegan2-ada-pytorch trains
    click.echo(f"# {torch_device_name(device)}, torch {torch.__version__}")
    if not reference_only:
        click.echo(f"# ours:      {flags}")
    if reference:
        click.echo(f"# reference: {reference_flags_text()} (train.py --nobench=False --allow-tf32=False; plugins "
                   "built in a fresh TORCH_EXTENSIONS_DIR)")
    click.echo(format_head())
    with tempfile.TemporaryDirectory(prefix="sga-ref-ext-") as ext_dir:
        for size in res:
            ours = None
            if not reference_only:
                click.echo(f"data delivery at {size} px: {bench_data(size, device=device):,.0f} img/s", err=True)
                for name in names:
                    click.echo(f"timing {name} at {size} px ...", err=True)
                    row = bench_model(name, size, kimg=kimg, warmup=warmup, device=device, batch_gpu=batch_gpu,
                                      amp=amp, overrides=over(name))
                    if name == "stylegan2":
                        row.note, ours = sg2_note, row
                    click.echo(format_row(row))  # at once: a later case that runs out of time loses only itself
            if reference and "stylegan2" in names:
                batch = ours.batch if ours is not None else bench_batch("stylegan2", size, sg2)
                click.echo(f"timing stylegan2-ada-pytorch at {size} px (batch {batch}) ...", err=True)
                try:
                    ref = bench_reference(reference, size, batch=batch, kimg=max(kimg, 4), extensions_dir=ext_dir,
                                          log_path=reference_log)
                except ValueError as e:
                    raise ConfigError(str(e)) from None
                if ref.problems:
                    click.echo(f"warning: the reference's log shows {'; '.join(ref.problems)}: its time is not "
                               "comparable and no speed-up is claimed from it", err=True)
                elif ours is not None:
                    ref.note = f"reference; ours is {ref.sec_per_kimg / ours.sec_per_kimg:.2f}x faster"
                click.echo(format_row(ref))


def torch_device_name(device: str) -> str:
    import torch
    if device != "cpu" and torch.cuda.is_available():
        return torch.cuda.get_device_name()
    import platform
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


# ---------------------------------------------------------------------------------------------------
@cli.command(epilog="""
\b
Examples:
  stylegan-anime doctor            # report only
  stylegan-anime doctor --build    # also compile the CUDA ops now (on a GPU machine)
""")
@click.option("--build", "try_build", is_flag=True, help="compile the CUDA ops now if a GPU is present (else only report)")
def doctor(try_build):
    """Check torch, CUDA, nvcc, ninja and the compiler; say whether training uses the fused CUDA ops or the reference."""
    from ..cuda_ops import doctor_report

    rows = doctor_report(try_build=try_build)
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        click.echo(f"{key:<{width}}  {value}")


@cli.command("bench-ops", context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                                             "help_option_names": []},
             epilog="Every flag is the op benchmark's: stylegan-anime bench-ops --help lists them.")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def bench_ops(args):
    """The op benchmark (same as python tools/bench_ops.py): each upfirdn2d / bias_act call of StyleGAN2 timed
    per implementation, then whole training steps with each."""
    from ..benchmarks.ops import main

    sys.exit(main(list(args)))
