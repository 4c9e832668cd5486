"""torch.distributed on the CPU (gloo, 2 processes): equivalence with one process, resume across world sizes,
and a dying rank ending the run with a message instead of a hang."""
from __future__ import annotations

import dataclasses
import json
import multiprocessing as mp
import os
import socket
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from stylegan_anime.training.checkpoint import checkpoint_dir, load_checkpoint
from stylegan_anime.training.config import TrainConfig
from stylegan_anime.training.trainer import Trainer

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed unavailable")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _toy_cfg(out, kimg, batch_gpu, metrics=""):
    from conftest import ToyGAN
    mc = dataclasses.asdict(ToyGAN.make_config(batch=8))
    return TrainConfig(data="unused", size=64, model="toy", kimg=kimg, outdir=str(out), progress=False, snap_kimg=1000,
                       grid_kimg=1000, log_kimg=0.016, grid_size=2, device="cpu", metrics=metrics, metrics_num=80,
                       batch_gpu=batch_gpu, model_cfg=mc)


def _env(rank, world, port):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), OMP_NUM_THREADS="1")
    torch.set_num_threads(1)


def _toy_worker(rank, world, port, run_dir, kimg, batch_gpu, metrics=""):
    _env(rank, world, port)
    sys.stderr = open(Path(run_dir).parent / f"{Path(run_dir).name}.rank{rank}.err", "a", buffering=1)
    from conftest import ListDataset, ToyGAN, random_dataset

    from stylegan_anime.models import register_model
    from stylegan_anime.training.distributed import init_from_env, shutdown
    register_model("toy", ToyGAN)
    d = init_from_env("cpu")
    data = random_dataset()
    os.environ["STYLEGAN_ANIME_CACHE"] = str(Path(run_dir).parent / "cache")
    Trainer(_toy_cfg(Path(run_dir).parent, kimg, batch_gpu, metrics), run_dir,
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


def test_two_processes_equal_one_with_the_same_global_batch(toy_model, tiny_data, tmp_path, monkeypatch):
    codes = _launch(_toy_worker, 2, str(tmp_path / "two"), 0.048, 2, "swd", logs=tmp_path)
    assert codes == [0, 0], _errors(tmp_path)
    two = load_checkpoint(tmp_path / "two")
    monkeypatch.setenv("STYLEGAN_ANIME_CACHE", str(tmp_path / "cache"))
    Trainer(_toy_cfg(tmp_path, 0.048, 8, "swd"), tmp_path / "one", dataset=tiny_data).train()
    one = load_checkpoint(tmp_path / "one")
    assert two["progress"]["nimg"] == one["progress"]["nimg"] == 48
    a, b = _nets(one), _nets(two)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)

    # the final evaluation was shared out between the ranks; rank 0 alone wrote it, with one process's values
    lines_two = (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()
    lines_one = (tmp_path / "one" / "metrics.jsonl").read_text().splitlines()
    assert len(lines_two) == len(lines_one) == 1
    m_two, m_one = json.loads(lines_two[0]), json.loads(lines_one[0])
    assert set(m_two) == set(m_one) and "swd" in m_one
    for k in m_one:
        if k.startswith("swd"):
            assert m_two[k] == pytest.approx(m_one[k], rel=2e-3), k

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


# ------------------------------------------------------------------ metrics shared out between ranks
def _eval_images(start: int, n: int, size: int = 32) -> np.ndarray:
    """Generated image i is a function of i only: what every rank agrees on."""
    from stylegan_anime.data.demo import render_face
    return np.stack([render_face(7, i, size)[0][:, ::-1] for i in range(start, start + n)])


def _eval_worker(rank, world, port, out_dir, fail_on_rank0=False):
    _env(rank, world, port)
    sys.stderr = open(Path(out_dir) / f"eval{rank}.err", "a", buffering=1)
    from test_metrics import TinyFeatures, faces, make_dataset

    from stylegan_anime.metrics import registry
    from stylegan_anime.training.distributed import barrier, init_from_env, object_group, shutdown
    registry.load_inception = lambda *a, **k: TinyFeatures()
    if fail_on_rank0 and rank == 0:
        def broken(*a, **k):
            raise OSError("disk full")
        registry._scores = broken
    d = init_from_env("cpu")
    calls = []

    def generate(n, start):
        calls.append((start, n))
        return _eval_images(start, n)

    try:
        res = registry.evaluate(["fid10k", "kid", "swd"], generate, make_dataset(faces(40, 32)), num_gen=44,
                                batch_size=8, progress=False, cache_dir=Path(out_dir) / f"cache{rank}",
                                group=object_group(d))
        out = {"res": res, "calls": calls}
    except (RuntimeError, OSError) as e:
        out = {"error": f"{type(e).__name__}: {e}"}
    (Path(out_dir) / f"eval{rank}.json").write_text(json.dumps(out))
    barrier(d)  # leave the group together
    shutdown()


def test_metrics_shared_out_between_ranks_equal_one_process(tmp_path):
    from test_metrics import TinyFeatures, faces, make_dataset

    from stylegan_anime.metrics import registry
    assert _launch(_eval_worker, 2, str(tmp_path), logs=tmp_path) == [0, 0], _errors(tmp_path)
    r0, r1 = (json.loads((tmp_path / f"eval{r}.json").read_text()) for r in (0, 1))
    # batches of 8 dealt out in turn: rank 0 makes images 0-7, 16-23, 32-39; rank 1 8-15, 24-31, 40-43
    assert r0["calls"] == [[0, 8], [16, 8], [32, 8]] and r1["calls"] == [[8, 8], [24, 8], [40, 4]]
    assert r0["res"] == r1["res"]

    pos = [0]

    def sequential(n):
        pos[0] += n
        return _eval_images(pos[0] - n, n)

    orig = registry.load_inception
    registry.load_inception = lambda *a, **k: TinyFeatures()
    try:
        one = registry.evaluate(["fid10k", "kid", "swd"], sequential, make_dataset(faces(40, 32)), num_gen=44,
                                batch_size=8, progress=False, cache_dir=tmp_path / "cache-one")
    finally:
        registry.load_inception = orig
    assert set(one) == set(r0["res"]) and one["fid10k"] > 1e-3
    for k, v in one.items():
        assert r0["res"][k] == pytest.approx(v, rel=1e-6, abs=1e-9), k


def test_a_failed_evaluation_on_rank0_fails_every_rank(tmp_path):
    assert _launch(_eval_worker, 2, str(tmp_path), True, logs=tmp_path) == [0, 0], _errors(tmp_path)
    r0, r1 = (json.loads((tmp_path / f"eval{r}.json").read_text()) for r in (0, 1))
    assert r0 == {"error": "OSError: disk full"}
    assert r1 == {"error": "RuntimeError: evaluation failed on rank 0: OSError: disk full"}


def _stopping_worker(rank, world, port, out_dir):
    _env(rank, world, port)
    sys.stderr = open(Path(out_dir) / f"stop{rank}.err", "a", buffering=1)
    from conftest import ListDataset, ToyGAN, random_dataset, stop_after

    from stylegan_anime.models import register_model
    from stylegan_anime.training.distributed import init_from_env, shutdown
    from stylegan_anime.training.trainer import Interrupted, STOP_CHECK_EVERY
    register_model("toy", ToyGAN)
    d = init_from_env("cpu")
    data = random_dataset()
    t = Trainer(_toy_cfg(Path(out_dir), 10.0, 4), Path(out_dir) / "run", dataset=ListDataset(
        images=data.images, labels=None, label_names=None), dist=d)
    if rank == 1:  # Ctrl-C on rank 1 only, after iteration 2
        stop_after(t, 2)
    try:
        t.train()
        result = "finished"
    except Interrupted as e:
        result = f"interrupted at {t.iteration} {e.checkpoint.name}"
    (Path(out_dir) / f"stop{rank}.txt").write_text(f"{result} every {STOP_CHECK_EVERY}")
    shutdown()


def test_ctrl_c_on_one_rank_stops_every_rank_at_the_same_iteration(tmp_path):
    assert _launch(_stopping_worker, 2, str(tmp_path), logs=tmp_path) == [0, 0], _errors(tmp_path)
    r0, r1 = ((tmp_path / f"stop{r}.txt").read_text() for r in (0, 1))
    every = int(r0.split()[-1])
    it = -(-2 // every) * every  # the first agreement at or after iteration 2
    assert r0 == r1 == f"interrupted at {it} ckpt-{it * 8:09d}.pt every {every}"
    assert (checkpoint_dir(tmp_path / "run") / f"ckpt-{it * 8:09d}.pt").is_file()  # written by rank 0


# ------------------------------------------------------------------ leaving the process group cleanly
def _gloo_threads() -> list[str]:
    """gloo's native threads still alive in this process (Linux: /proc/self/task/*/comm)."""
    names = []
    for task in Path("/proc/self/task").iterdir():
        try:
            names.append((task / "comm").read_text().strip())
        except OSError:  # the thread ended meanwhile
            pass
    return sorted(n for n in names if "gloo" in n)


def _cli_worker(rank, world, port, outdir, log_dir, interrupt):
    import signal
    _env(rank, world, port)
    sys.stderr = open(Path(log_dir) / f"cli{rank}.err", "w", buffering=1)
    os.environ["STYLEGAN_ANIME_CACHE"] = str(Path(log_dir) / "cache")
    if interrupt and rank == 1:  # Ctrl-C on rank 1 alone, after its second iteration
        original = Trainer.step

        def step_then_ctrl_c(self):
            original(self)
            if self.iteration == 2:
                os.kill(os.getpid(), signal.SIGINT)
        Trainer.step = step_then_ctrl_c
    from stylegan_anime.cli import main
    try:
        main(["train", "--data", "demo:16", "--model", "dcgan", "--dim", "4", "--batch", "8", "--kimg", "0.064",
              "--no-progress", "--device", "cpu", "--metrics", "none", "--outdir", str(outdir)])
        code = 0
    except SystemExit as e:
        code = e.code
    # the group was destroyed in the command's finally: no gloo thread may live on into interpreter teardown,
    # where tearing it down can abort the process (`terminate called without an active exception`)
    (Path(log_dir) / f"cli{rank}.json").write_text(json.dumps({"code": code, "gloo_threads": _gloo_threads()}))
    sys.exit(code)


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc to list threads")
@pytest.mark.parametrize("interrupt", [False, True], ids=["clean", "ctrl-c-on-rank-1"])
def test_every_rank_leaves_the_group_cleanly_with_the_runs_exit_code(tmp_path, interrupt):
    codes = _launch(_cli_worker, 2, str(tmp_path / "runs"), str(tmp_path), interrupt, logs=tmp_path)
    expected = 130 if interrupt else 0  # Ctrl-C on one rank: every rank stops, rank 0 saves, all exit 130
    assert codes == [expected, expected], _errors(tmp_path)
    for rank in (0, 1):
        out = json.loads((tmp_path / f"cli{rank}.json").read_text())
        assert out == {"code": expected, "gloo_threads": []}, (rank, out)
    err0 = (tmp_path / "cli0.err").read_text()
    from stylegan_anime.training.trainer import STOP_CHECK_EVERY
    stopped = -(-2 // STOP_CHECK_EVERY) * STOP_CHECK_EVERY * 8 / 1000  # the first agreement at or after iteration 2
    assert (f"interrupted at kimg {stopped:.2f}; checkpoint saved" if interrupt else "done: 0.064 kimg") in err0, err0
    assert "Traceback" not in err0 + (tmp_path / "cli1.err").read_text()


def test_the_launcher_exits_with_the_code_of_the_first_failed_process():
    """torchrun exits 1 for any failure; `python -m stylegan_anime.launch` passes the run's own code through."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure

    from stylegan_anime.launch import exit_code

    def failed(*codes):
        failures = {}
        for rank, code in enumerate(codes):
            f = ProcessFailure(local_rank=rank, pid=1000 + rank, exitcode=code, error_file="<N/A>")
            f.timestamp = 100 + rank  # rank 0 failed first
            failures[rank] = f
        return ChildFailedError("stylegan_anime.cli", failures)

    assert exit_code(failed(130, -15)) == 130  # interrupted; torchrun then stopped the slower rank with SIGTERM
    assert exit_code(failed(3, 3)) == 3        # diverged
    assert exit_code(failed(-9, 1)) == 137     # killed by SIGKILL
