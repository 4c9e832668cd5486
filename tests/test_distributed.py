"""torch.distributed on the CPU (gloo, 2 processes): equivalence with one process, resume across world sizes,
and a dying rank ending the run with a message instead of a hang."""
from __future__ import annotations

import dataclasses
import multiprocessing as mp
import os
import socket
import sys
from pathlib import Path

import pytest
import torch

from stylegan_anime.training.checkpoint import load_checkpoint
from stylegan_anime.training.config import TrainConfig
from stylegan_anime.training.trainer import Trainer

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed unavailable")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _toy_cfg(out, kimg, batch_gpu):
    from conftest import ToyGAN
    mc = dataclasses.asdict(ToyGAN.make_config(batch=8))
    return TrainConfig(data="unused", size=64, model="toy", kimg=kimg, outdir=str(out), progress=False, snap_kimg=1000,
                       grid_kimg=1000, log_kimg=0.016, grid_size=2, device="cpu", metrics="", batch_gpu=batch_gpu,
                       model_cfg=mc)


def _env(rank, world, port):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), OMP_NUM_THREADS="1")
    torch.set_num_threads(1)


def _toy_worker(rank, world, port, run_dir, kimg, batch_gpu):
    _env(rank, world, port)
    sys.stderr = open(Path(run_dir).parent / f"{Path(run_dir).name}.rank{rank}.err", "a", buffering=1)
    from conftest import ListDataset, ToyGAN, random_dataset

    from stylegan_anime.models import register_model
    from stylegan_anime.training.distributed import init_from_env, shutdown
    register_model("toy", ToyGAN)
    d = init_from_env("cpu")
    data = random_dataset()
    Trainer(_toy_cfg(Path(run_dir).parent, kimg, batch_gpu), run_dir,
            dataset=ListDataset(images=data.images, labels=None, label_names=None), dist=d).train()
    shutdown()


def _launch(target, world, *args, logs: Path | None = None):
    """Run target(rank, world, port, *args) in `world` processes; exit codes. Retried on a fresh port only
    when the rendezvous port was taken in between (the workers' stderr files in `logs` say so)."""
    ctx = mp.get_context("spawn")
    for attempt in range(3):
        port = _free_port()
        procs = [ctx.Process(target=target, args=(rank, world, port, *args)) for rank in range(world)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=240)
        codes = [p.exitcode for p in procs]
        for p in procs:
            if p.is_alive():
                p.kill()
        text = "".join(f.read_text() for f in logs.glob("*.err")) if logs else ""
        if "ddress already in use" not in text or attempt == 2:
            return codes
        for f in logs.glob("*.err"):
            f.unlink()
    return codes


def _errors(folder: Path) -> str:
    return "\n".join(f"--- {f.name}\n{f.read_text()[-3000:]}" for f in sorted(folder.glob("*.err")))


def _nets(state):
    return {k: v for net in ("G", "D", "G_ema") for k, v in ((f"{net}.{n}", t) for n, t in state["nets"][net].items())}


def test_two_processes_equal_one_with_the_same_global_batch(toy_model, tiny_data, tmp_path):
    assert _launch(_toy_worker, 2, str(tmp_path / "two"), 0.048, 2, logs=tmp_path) == [0, 0], _errors(tmp_path)
    two = load_checkpoint(tmp_path / "two")
    Trainer(_toy_cfg(tmp_path, 0.048, 8), tmp_path / "one", dataset=tiny_data).train()
    one = load_checkpoint(tmp_path / "one")
    assert two["progress"]["nimg"] == one["progress"]["nimg"] == 48
    a, b = _nets(one), _nets(two)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)

    # resume the 2-process run in 1 process: it continues to the same place as an uninterrupted 1-process run
    resumed = Trainer(_toy_cfg(tmp_path, 0.096, 8), tmp_path / "two", dataset=tiny_data, resume=two)
    resumed.train()
    Trainer(_toy_cfg(tmp_path, 0.096, 8), tmp_path / "one_long", dataset=tiny_data).train()
    a, b = _nets(load_checkpoint(tmp_path / "one_long")), _nets(load_checkpoint(tmp_path / "two"))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)


def _dying_worker(rank, world, port, outdir, log_dir):
    _env(rank, world, port)
    sys.stderr = open(Path(log_dir) / f"rank{rank}.err", "w", buffering=1)
    os.environ["STYLEGAN_ANIME_CACHE"] = str(Path(log_dir) / "cache")
    if rank == 1:
        original = Trainer.step

        def step_then_die(self):
            if self.iteration == 2:
                os._exit(3)
            original(self)
        Trainer.step = step_then_die
    from stylegan_anime.cli import main
    main(["train", "--data", "demo:16", "--model", "dcgan", "--dim", "4", "--batch", "8", "--kimg", "1",
          "--no-progress", "--device", "cpu", "--metrics", "none", "--outdir", str(outdir)])


def test_a_dying_rank_stops_the_others_with_a_message(tmp_path):
    codes = _launch(_dying_worker, 2, str(tmp_path / "runs"), str(tmp_path), logs=tmp_path)
    assert codes[1] == 3
    assert codes[0] == 1, (tmp_path / "rank0.err").read_text()
    err = (tmp_path / "rank0.err").read_text().strip().splitlines()
    assert err[-1].startswith("error: rank 0: another process of the run stopped"), err
    assert not any("Traceback" in line for line in err)
