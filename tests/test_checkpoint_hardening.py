"""Checkpoints and run folders under stress (issue #13): damaged or foreign checkpoint files are one-line errors,
a resume survives a damaged newest checkpoint, leftovers of killed writers are cleaned up, one writer per run
folder, race-free run numbering, and a full or read-only disk ends the run with one line."""
from __future__ import annotations

import errno
import multiprocessing
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch

from stylegan_anime.cli import main
from stylegan_anime.one_line import error_line, run_click
from stylegan_anime.training import checkpoint as ckpt_mod
from stylegan_anime.training.checkpoint import (CheckpointError, RunLock, RunLockedError, WriteError,
                                                list_checkpoints, load_checkpoint, new_run_dir, writing)

TINY = ["--metrics", "none", "--model", "dcgan", "--dim", "4", "--batch", "8", "--no-progress", "--grid", "1",
        "--log", "0.008", "--device", "cpu"]


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("STYLEGAN_ANIME_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def run(argv, capsys):
    """Run the CLI in-process; returns (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in argv])
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


def error_of(code, err) -> str:
    """The single `error: ...` line of a failed command (exit 2, no traceback)."""
    assert code == 2, err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def final_error(code, err) -> str:
    """A run that stopped: its progress lines, then exactly one `error: ...` line, last (exit 2, no traceback)."""
    assert code == 2, err
    assert "Traceback" not in err and "Exception" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert [line for line in lines if line.startswith("error: ")] == lines[-1:], err
    return lines[-1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A dcgan run with checkpoints at 8, 16 and 24 images (trained once; tests copy it)."""
    base = tmp_path_factory.mktemp("trained")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STYLEGAN_ANIME_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        with pytest.raises(SystemExit) as e:
            main(["train", "--data", "demo:64", "--size", "64", "--outdir", str(base / "runs"), "--kimg", "0.024",
                  "--snap", "0.008", "--keep", "5"] + TINY)
    assert e.value.code == 0
    run_dir = base / "runs" / "00000-dcgan-demo-64"
    assert [p.name for p in list_checkpoints(run_dir)] == [f"ckpt-{n:09d}.pt" for n in (8, 16, 24)]
    return run_dir


@pytest.fixture
def run_dir(trained, tmp_path):
    """A private copy of the trained run: tmp_path/runs/00000-dcgan-demo-64."""
    dst = tmp_path / "runs" / trained.name
    shutil.copytree(trained, dst)
    (dst / "run.lock").unlink(missing_ok=True)
    return dst


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


# ------------------------------------------------------------------------------------------------------------
# 2. checkpoint errors: one line naming the file and what is wrong
def _nvlabs_pickle() -> bytes:
    """A network-snapshot-*.pkl look-alike: a pickle that refers to dnnlib / torch_utils.persistence."""
    return (b"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00\x8c\x0fdnnlib.util\x94\x8c\x08EasyDict\x94\x93\x94)"
            b"\x81\x94\x8c\x17torch_utils.persistence\x94b.")


def _write_zip(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("a.txt", "hi")


@pytest.mark.parametrize("make,needle", [
    (lambda p: p.write_bytes(b""), "is empty (0 bytes)"),
    (lambda p: p.write_bytes(os.urandom(4096).replace(b"PK", b"pk").replace(b"\x80", b"\x7f")),
     "is not a checkpoint"),
    (lambda p: p.write_bytes(pickle.dumps({"G": [1, 2]}, protocol=4)), "is a Python pickle from another program"),
    (lambda p: p.write_bytes(_nvlabs_pickle()), "stylegan-anime import-checkpoint"),
    (lambda p: torch.save(torch.nn.Linear(2, 2), p), "is a PyTorch file from another program"),
    (lambda p: torch.save({"w": torch.zeros(2)}, p), "not a stylegan-anime checkpoint"),
    (lambda p: _write_zip(p), "is a zip archive but not a PyTorch file"),
])
@pytest.mark.parametrize("command", ["train", "generate", "metrics"])
def test_bad_checkpoint_files_are_one_line_errors(command, make, needle, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "bad.pt"
    make(bad)
    argv = {"train": ["train", "--resume", bad, "--kimg", "1"],
            "generate": ["generate", "--checkpoint", bad, "--grid", "g.png"],
            "metrics": ["metrics", "--checkpoint", bad, "--data", "demo:64"]}[command]
    line = error_of(*run(argv, capsys)[::2])
    assert str(bad) in line and needle in line, line
    assert "weights_only" not in line and "Weights only" not in line


def test_a_truncated_checkpoint_file_says_so(run_dir, capsys):
    newest = list_checkpoints(run_dir)[-1]
    truncate(newest)
    line = error_of(*run(["generate", "--checkpoint", newest, "--grid", run_dir / "g.png"], capsys)[::2])
    assert str(newest) in line and "truncated or damaged" in line


@pytest.mark.parametrize("drop", ["config.data", "config.model", "nets.G_ema", "nets.D", "progress.nimg",
                                  "progress", "config"])
def test_a_checkpoint_missing_a_key_names_the_key(drop, run_dir, tmp_path, capsys):
    state = torch.load(list_checkpoints(run_dir)[-1], weights_only=True)
    section, _, key = drop.partition(".")
    del (state[section] if key else state)[key or section]
    path = tmp_path / "partial.pt"
    torch.save(state, path)
    for argv in (["train", "--resume", path, "--kimg", "1"], ["generate", "--checkpoint", path, "--grid", "g.png"]):
        line = error_of(*run(argv, capsys)[::2])
        assert str(path) in line and f"missing '{drop}'" in line, line
        assert "TypeError" not in line and "KeyError" not in line


def test_error_formatter_survives_empty_messages(capsys, monkeypatch):
    assert error_line(EOFError()) == "EOFError"
    assert error_line(ValueError("\n  \nsecond line\nthird")) == "second line"
    assert error_line(OSError()) == "OSError"

    def empty(*a, **k):
        raise CheckpointError("")
    monkeypatch.setattr("stylegan_anime.cli.train.load_checkpoint", empty)
    assert error_of(*run(["train", "--resume", "x.pt"], capsys)[::2]) == "error: CheckpointError"

    import click

    @click.command()
    def tool():
        raise OSError()
    with pytest.raises(SystemExit) as e:
        run_click(tool, [])
    assert e.value.code == 2 and capsys.readouterr().err.strip() == "error: OSError"


# ------------------------------------------------------------------------------------------------------------
# 3. resume survives a bad newest checkpoint; leftovers of killed writers are removed
def test_resume_falls_back_to_the_newest_readable_checkpoint(run_dir, capsys):
    ckpts = list_checkpoints(run_dir)
    truncate(ckpts[-1])           # 24: truncated
    ckpts[-2].write_bytes(b"")    # 16: empty
    code, _, err = run(["train", "--resume", run_dir, "--kimg", "0.032", "--no-progress"], capsys)
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert str(ckpts[-1]) in warnings[0] and "truncated or damaged" in warnings[0]
    assert str(ckpts[-2]) in warnings[1] and "is empty" in warnings[1]
    assert str(ckpts[0]) in warnings[2] and "kimg 0.008" in warnings[2] and "0.016 kimg of training" in warnings[2]
    assert f"resuming {run_dir} at kimg 0.01 from {ckpts[0]}" in err
    # the unreadable ones are set aside: the resumed run's own checkpoints are the newest now
    assert (ckpts[-1].parent / (ckpts[-1].name + ".bad")).exists()
    assert load_checkpoint(run_dir)["progress"]["nimg"] == 32


def test_resume_auto_falls_back_too(run_dir, capsys):
    truncate(list_checkpoints(run_dir)[-1])
    code, _, err = run(["train", "--resume", "auto", "--outdir", run_dir.parent, "--kimg", "0.032"], capsys)
    assert code == 0, err
    assert "trying an older checkpoint" in err and "resuming" in err and "at kimg 0.02 from" in err


def test_generate_from_a_run_folder_falls_back_with_a_warning(run_dir, capsys):
    truncate(list_checkpoints(run_dir)[-1])
    code, _, err = run(["generate", "--checkpoint", run_dir, "--seeds", "0-3", "--grid", run_dir / "g.png",
                        "--device", "cpu"], capsys)
    assert code == 0, err
    assert "warning: cannot read checkpoint" in err and "ckpt-000000016.pt (kimg 0.016)" in err
    assert (run_dir / "g.png").exists()
    assert (run_dir / "checkpoints" / "ckpt-000000024.pt").exists()  # generate leaves the run as it is


def test_an_explicit_bad_file_is_an_error_that_names_the_intact_older_ones(run_dir, capsys):
    newest = list_checkpoints(run_dir)[-1]
    truncate(newest)
    line = error_of(*run(["train", "--resume", newest, "--kimg", "0.032"], capsys)[::2])
    assert str(newest) in line and "truncated or damaged" in line
    assert "ckpt-000000016.pt" in line and f"pass the run folder {run_dir}" in line


def test_a_run_with_no_readable_checkpoint_is_one_line(run_dir, capsys):
    for p in list_checkpoints(run_dir):
        p.write_bytes(b"")
    line = error_of(*run(["train", "--resume", run_dir, "--kimg", "0.032"], capsys)[::2])
    assert f"no readable checkpoint in {run_dir}" in line and "ckpt-000000008.pt: it is empty" in line


def test_temp_files_of_killed_checkpoint_writes_are_removed_on_resume(run_dir, capsys):
    folder = run_dir / "checkpoints"
    stale = [folder / ".tmp-k1ll3d.pt", folder / ".tmp-abc_12.pt"]
    for p in stale:
        p.write_bytes(os.urandom(1000))
    keep = folder / "notes.txt"
    keep.write_text("mine")
    code, _, err = run(["train", "--resume", run_dir, "--kimg", "0.032"], capsys)
    assert code == 0, err
    assert not any(p.exists() for p in stale) and keep.exists()


def test_temp_folders_of_killed_pack_builds_are_removed(tmp_path):
    import fcntl

    from stylegan_anime.data import open_dataset, prepare_dataset
    from stylegan_anime.data.packed import STALE_TEMP_S, TEMP_LOCK

    root = tmp_path / "cache"

    def temp_dir(name, lock=True, age=0.0):
        d = root / name
        d.mkdir(parents=True)
        (d / "images.npy").write_bytes(b"\0" * 1000)
        if lock:
            (d / TEMP_LOCK).write_text("12345\n")
        if age:
            t = time.time() - age
            for p in [*d.iterdir(), d]:
                os.utime(p, (t, t))
        return d

    killed = temp_dir(".demo-x-64px-0123.tmp-k1ll3d00")                        # its builder died: lock free
    old = temp_dir(".demo-y-64px-0123.tmp-01d0ld00", lock=False, age=STALE_TEMP_S + 60)  # pre-lock, untouched
    replaced = temp_dir(".demo-z-64px-0123.old-r3pl4c3d", lock=False, age=120)  # a replace cut short
    live = temp_dir(".demo-w-64px-0123.tmp-l1v3l1v3")                          # a build in progress
    fd = os.open(live / TEMP_LOCK, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    fresh = temp_dir(".demo-v-64px-0123.tmp-fr35hfr3", lock=False)             # just made, lock not yet taken
    try:
        ds = open_dataset("demo:16", 64, cache_dir=root, progress=False)
    finally:
        os.close(fd)
    assert len(ds) == 16
    assert not killed.exists() and not old.exists() and not replaced.exists()
    assert live.exists() and fresh.exists()
    assert not any(".tmp-" in p.name and p not in (live, fresh) for p in root.iterdir())

    # prepare-data cleans the leftovers of its own target beside it, and nothing else there
    out = tmp_path / "packs" / "faces-64"
    mine = tmp_path / "packs" / ".faces-64.tmp-k1ll3d00"
    mine.mkdir(parents=True)
    (mine / TEMP_LOCK).write_text("1\n")
    other = tmp_path / "packs" / ".other.tmp-k1ll3d00"
    other.mkdir()
    (other / TEMP_LOCK).write_text("1\n")
    prepare_dataset("demo:16", out, 64, progress=False)
    assert not mine.exists() and other.exists()


# ------------------------------------------------------------------------------------------------------------
# 4. one writer per run folder; race-free run numbering
HOLD = ("import sys, time; from stylegan_anime.training.checkpoint import RunLock; "
        "lock = RunLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(120)")


@pytest.fixture
def holder(run_dir):
    """Another process holding the run's lock (as a training process does)."""
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir)], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "held"
        yield p
    finally:
        if p.poll() is None:
            p.kill()
        p.wait()


def test_a_second_writer_of_a_run_exits_2_naming_the_holder(run_dir, holder, capsys):
    before = {p.name: p.stat().st_mtime_ns for p in list_checkpoints(run_dir)}
    for argv in (["train", "--resume", run_dir, "--kimg", "0.032", "--augment", "diffaug"],
                 ["train", "--resume", "auto", "--outdir", run_dir.parent, "--kimg", "0.032"],
                 ["train", "--resume", list_checkpoints(run_dir)[-1], "--kimg", "0.032"]):
        line = error_of(*run(argv, capsys)[::2])
        assert f"run folder {run_dir} is in use by another training process (pid {holder.pid})" in line
    assert {p.name: p.stat().st_mtime_ns for p in list_checkpoints(run_dir)} == before  # nothing written

    holder.send_signal(signal.SIGKILL)  # kill -9: the kernel releases the lock; the stale pid file does not block
    holder.wait()
    code, _, err = run(["train", "--resume", run_dir, "--kimg", "0.032"], capsys)
    assert code == 0, err


def test_the_lock_is_held_while_training_and_released_after(tmp_path, capsys, monkeypatch):
    from stylegan_anime.training.trainer import Trainer

    original, seen = Trainer.train, []

    def spy(self):
        with pytest.raises(RunLockedError, match=f"pid {os.getpid()}"):
            RunLock(self.run_dir).acquire()
        seen.append(self.run_dir)
        return original(self)
    monkeypatch.setattr(Trainer, "train", spy)
    code, _, err = run(["train", "--data", "demo:64", "--size", "64", "--outdir", tmp_path, "--kimg", "0.008"]
                       + TINY, capsys)
    assert code == 0, err
    assert seen and (seen[0] / "run.lock").read_text().split()[0] == str(os.getpid())
    with RunLock(seen[0]) as lock:  # released at exit
        assert lock.held


def _make_run_dir(outdir, desc, barrier, queue):
    barrier.wait()
    try:
        queue.put(new_run_dir(outdir, desc).name)
    except Exception as e:  # noqa: BLE001
        queue.put(f"error {type(e).__name__}: {e}")


@pytest.mark.skipif(sys.platform != "linux", reason="fork")
def test_concurrent_new_run_dir_gives_distinct_numbers(tmp_path):
    ctx = multiprocessing.get_context("fork")
    for round_ in range(3):
        outdir = tmp_path / f"runs{round_}"
        barrier, queue = ctx.Barrier(8), ctx.Queue()
        procs = [ctx.Process(target=_make_run_dir, args=(outdir, "ab"[i % 2], barrier, queue)) for i in range(8)]
        for p in procs:
            p.start()
        names = [queue.get(timeout=60) for _ in procs]
        for p in procs:
            p.join()
        assert not [n for n in names if n.startswith("error")], names
        assert sorted(int(n[:5]) for n in names) == list(range(8)), names
        assert sorted(p.name for p in outdir.iterdir()) == sorted(names)


# ------------------------------------------------------------------------------------------------------------
# 6. disk full / read-only output: one line, previous checkpoint intact, no temp file
def _assert_previous_checkpoint_intact(run_dir):
    folder = run_dir / "checkpoints"
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".tmp-")]
    assert [p.name for p in list_checkpoints(run_dir)][-1] == "ckpt-000000024.pt"
    assert load_checkpoint(run_dir, warn=lambda m: pytest.fail(m))["progress"]["nimg"] == 24


@pytest.mark.parametrize("failure,reason", [
    (OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), "No space left on device"),
    (RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598"), ""),
    (RuntimeError("PytorchStreamWriter failed writing file data/3: file write failed"), ""),
])
def test_disk_full_during_a_checkpoint_write(failure, reason, run_dir, capsys, monkeypatch):
    def full(obj, f, *a, **k):
        f.write(b"PK\x03\x04" + b"\0" * 4096)  # part of the file made it
        raise failure
    monkeypatch.setattr(torch, "save", full)
    line = final_error(*run(["train", "--resume", run_dir, "--kimg", "0.032"], capsys)[::2])
    assert line.startswith(f"error: cannot write {run_dir / 'checkpoints' / 'ckpt-000000032.pt'}: {reason}"), line
    assert "enforce fail" not in line
    _assert_previous_checkpoint_intact(run_dir)


def test_read_only_checkpoint_folder(run_dir, capsys, monkeypatch):
    real = ckpt_mod.tempfile.mkstemp

    def read_only(*a, dir=None, **k):
        if str(dir).endswith("checkpoints"):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(dir))
        return real(*a, dir=dir, **k)
    monkeypatch.setattr(ckpt_mod.tempfile, "mkstemp", read_only)
    line = final_error(*run(["train", "--resume", run_dir, "--kimg", "0.032"], capsys)[::2])
    assert line == f"error: cannot write {run_dir / 'checkpoints'}: Read-only file system"
    _assert_previous_checkpoint_intact(run_dir)


def test_grid_write_without_permission(tmp_path, capsys, monkeypatch):
    def denied(image, path):
        Path(path).write_bytes(b"\x89PNG partial")
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
    monkeypatch.setattr("stylegan_anime.training.evaluation.save_image", denied)  # the trainer draws its grids there
    line = final_error(*run(["train", "--data", "demo:64", "--size", "64", "--outdir", tmp_path] + TINY
                         + ["--kimg", "0.008"], capsys)[::2])
    run_dir = tmp_path / "00000-dcgan-demo-64"
    assert line == f"error: cannot write {run_dir / 'reals.png'}: Permission denied"
    assert not (run_dir / "reals.png").exists()  # no half-written picture


def test_metrics_write_failure(run_dir, capsys, monkeypatch):
    monkeypatch.setattr("stylegan_anime.metrics.evaluate", lambda names, *a, **k: {n: 1.0 for n in names})
    (run_dir / "metrics.jsonl").mkdir()  # cannot be opened for appending
    line = final_error(*run(["train", "--resume", run_dir, "--kimg", "0.032", "--metrics", "swd"], capsys)[::2])
    assert line.startswith(f"error: cannot write {run_dir / 'metrics.jsonl'}: ")
    _assert_previous_checkpoint_intact(run_dir)


def test_read_only_outdir_by_chmod(tmp_path, capsys):
    outdir = tmp_path / "ro"
    outdir.mkdir()
    outdir.chmod(0o555)
    try:
        if os.access(outdir, os.W_OK):
            pytest.skip("running as root: chmod does not make a folder read-only")
        line = error_of(*run(["train", "--data", "demo:64", "--size", "64", "--outdir", outdir, "--kimg", "0.008"]
                             + TINY, capsys)[::2])
        assert line.startswith(f"error: cannot write {outdir}") and "Permission denied" in line
    finally:
        outdir.chmod(0o755)


def test_new_run_dir_and_lock_write_failures_are_write_errors(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(WriteError, match=r"cannot write .*file/runs.*: Not a directory"):
        new_run_dir(tmp_path / "file" / "runs", "x")
    with pytest.raises(WriteError, match="cannot write .*run.lock"):
        RunLock(tmp_path / "missing-run").acquire()
    with pytest.raises(WriteError, match=r"cannot write .*x\.pt: No space left on device"):
        with writing(tmp_path / "x.pt"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    with pytest.raises(RuntimeError, match="not a write"):  # other errors pass through
        with writing(tmp_path / "x.pt"):
            raise RuntimeError("not a write")


@pytest.mark.parametrize("device, words", [("cuda", "no CUDA GPU"), ("cuda:3", "no CUDA GPU"), ("gpu", "--device")])
def test_a_device_this_machine_lacks_makes_no_run_folder(device, words, tmp_path, capsys, monkeypatch):
    """The device is checked before the run folder exists: no empty 00000-* folder, no run number used up."""
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    out = tmp_path / "runs"
    out.mkdir()
    argv = ["train", "--data", "demo:16", "--outdir", out, "--kimg", "0.008", *TINY[:-2], "--device", device]
    line = error_of(*run(argv, capsys)[::2])
    assert words in line
    assert list(out.iterdir()) == []


def test_a_device_name_that_is_no_device_is_one_line_in_generate(tmp_path, capsys):
    line = error_of(*run(["generate", "--checkpoint", tmp_path / "none.pt", "--grid", tmp_path / "g.png",
                          "--device", "gpu"], capsys)[::2])
    assert "--device" in line and "'gpu'" in line


def test_generate_into_a_folder_without_permission_names_the_picture(tmp_path, tiny_runs, capsys, monkeypatch):
    """The picture's own name, not the hidden temp file new_output tried to create beside it."""
    folder = tmp_path / "locked"
    folder.mkdir()
    real_open = os.open

    def denied(path, flags, *args, **kwargs):  # as in a folder without write permission (even for root)
        if str(path).startswith(str(folder)) and flags & os.O_CREAT:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_open(path, flags, *args, **kwargs)
    monkeypatch.setattr(os, "open", denied)
    line = error_of(*run(["generate", "--checkpoint", tiny_runs["dcgan"], "--seeds", "0-1", "--grid",
                          folder / "g.png", "--device", "cpu"], capsys)[::2])
    assert line == f"error: cannot write {folder / 'g.png'}: Permission denied"
    assert list(folder.iterdir()) == []
