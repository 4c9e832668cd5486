"""Soak test of multi-process training: N short torchrun runs back to back on the CPU (gloo), each checked for
a clean exit (every rank exit 0, torchrun exit 0) and for a crash at teardown ('terminate called ...', SIGABRT,
'Fatal Python error'), then a table.

    python tools/torchrun_soak.py                 # 30 clean 2-rank runs (a few minutes each on a busy laptop CPU)
    python tools/torchrun_soak.py --runs 3 --nproc 2
    python tools/torchrun_soak.py --interrupt 1 --launcher stylegan   # SIGINT to rank 1: a checkpoint, exit 130
"""
from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TINY = ["--data", "demo:200", "--model", "dcgan", "--dim", "4", "--batch", "8", "--kimg", "0.2", "--metrics", "swd",
        "--metrics-num", "64", "--metrics-kimg", "1000", "--snap", "1000", "--grid", "1000",
        "--no-progress", "--device", "cpu"]
CRASH = re.compile(r"terminate called|SIGABRT|Signal 6\b|exitcode\s*:\s*-6|Fatal Python error|core dumped|Segmentation")

EPILOG = """\
examples:
  python tools/torchrun_soak.py --runs 30                  # the soak: exits 1 if any run fails
  python tools/torchrun_soak.py --runs 3 --keep-logs soak  # each run's console in soak/run-NN.log
  python tools/torchrun_soak.py --runs 5 --interrupt 1 --launcher stylegan   # Ctrl-C on rank 1: exit 130
  python tools/torchrun_soak.py --runs 3 -- --model stylegan2 --channel-base 256 --channel-max 16

Each run: torchrun --standalone --nproc_per_node NPROC -m stylegan_anime.cli train --outdir TMP/run-NN """ + \
    " ".join(TINY) + """ [EXTRA]
(EXTRA after `--` is appended; later flags win; torchrun itself rejects `--log`, an ambiguous abbreviation of
its own options). --launcher stylegan runs `python -m stylegan_anime.launch` instead of torchrun: the same
arguments, but the run's exit code comes through (torchrun exits 1 for any failed process). OMP_NUM_THREADS
defaults to 1 and PYTHONFAULTHANDLER is set, so a crashing rank prints its Python stacks. A run fails on an
unexpected exit code (0; with --interrupt 130, or torchrun's 1 with the ranks at 130 or SIGTERM), on a crash line in
its output, on a missing final line ('done:' / 'interrupted at'), or when it takes longer than --timeout."""


LAUNCHERS = {"torchrun": "torch.distributed.run", "stylegan": "stylegan_anime.launch"}


def launch(run_dir: Path, nproc: int, extra: list[str], timeout: float, interrupt: int | None,
           interrupt_after: float, launcher: str = "torchrun") -> tuple[int | None, str, float]:
    """One torchrun run; (torchrun's exit code or None on timeout, its output, seconds)."""
    cmd = [sys.executable, "-m", LAUNCHERS[launcher], "--standalone", "--nproc_per_node", str(nproc),
           "-m", "stylegan_anime.cli", "train", "--outdir", str(run_dir), *TINY, *extra]
    if interrupt is not None:
        cmd += ["--kimg", "1000"]  # runs until interrupted
    env = {**os.environ, "PYTHONFAULTHANDLER": "1", "PYTHONUNBUFFERED": "1"}
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("STYLEGAN_ANIME_CACHE", str(run_dir.parent / "cache"))
    log = run_dir.parent / f"{run_dir.name}.out"
    start = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            if interrupt is not None:
                _interrupt_rank(proc, log, interrupt, interrupt_after, timeout)
            code = proc.wait(timeout=max(1.0, timeout - (time.monotonic() - start)))
        except subprocess.TimeoutExpired:  # hung: the ranks (torchrun starts each in its own session), then torchrun
            for pid in _children(proc.pid):
                _kill(pid, signal.SIGKILL)
            _kill(proc.pid, signal.SIGKILL)
            proc.wait()
            code = None
    return code, log.read_text(errors="replace"), time.monotonic() - start


def _interrupt_rank(proc: subprocess.Popen, log: Path, rank: int, after: float, timeout: float) -> None:
    """Wait until training has begun (rank 0's TensorBoard file is in the run folder: every rank is past its setup,
    where a Ctrl-C just aborts) plus `after` seconds; then SIGINT that rank."""
    deadline = time.monotonic() + timeout
    while True:
        found = re.search(r"run folder: (\S+)", log.read_text(errors="replace"))
        if found and any(Path(found.group(1)).glob("events.out.tfevents.*")):
            break
        if proc.poll() is not None or time.monotonic() > deadline:
            return
        time.sleep(0.2)
    time.sleep(after)
    pid = _rank_pid(proc.pid, rank)
    if pid is not None:
        _kill(pid, signal.SIGINT)


def _children(root: int) -> list[int]:
    """The processes whose parent is `root` (Linux /proc): torchrun's ranks."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == root:
                found.append(int(entry.name))
    return found


def _rank_pid(root: int, rank: int) -> int | None:
    """torchrun's child process of this rank (RANK=rank in its environment)."""
    for pid in _children(root):
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in env:
            return pid
    return None


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def check(code: int | None, text: str, interrupt: int | None, launcher: str = "torchrun") -> list[str]:
    """What went wrong in one run ([] = clean)."""
    problems = []
    expected = 0 if interrupt is None else 130 if launcher == "stylegan" else 1
    if code is None:
        problems.append("timeout")
    elif code != expected:
        problems.append(f"exit {code} (expected {expected})")
    ranks = [int(c) for c in re.findall(r"exitcode\s*:\s*(-?\d+)", text)]  # torchrun's table of failed ranks
    # the first rank to exit 130 makes torchrun stop the others with SIGTERM (-15), when they are still exiting
    if interrupt is not None and launcher == "torchrun" and (130 not in ranks or not set(ranks) <= {130, -15}):
        problems.append(f"ranks exited {sorted(set(ranks))} (expected 130)")
    crash = sorted({m.group(0) for m in CRASH.finditer(text)})
    if crash:
        problems.append("crash: " + ", ".join(crash))
    final = "done:" if interrupt is None else "interrupted at"
    if final not in text:
        problems.append(f"no '{final}' line")
    # a rank's traceback always fails; torchrun's own (ChildFailedError) is expected when it reports a failed rank
    if re.search(r"^\[rank\d+\]:\s*Traceback", text, re.M) or ("Traceback" in text and expected == 0):
        problems.append("traceback")
    return problems


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tools/torchrun_soak.py", description=__doc__.split("\n\n")[0],
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=30, help="runs back to back (default: 30)")
    p.add_argument("--nproc", type=int, default=2, help="processes per run (default: 2)")
    p.add_argument("--timeout", type=float, default=600, help="seconds per run before it counts as hung (default: 600)")
    p.add_argument("--interrupt", type=int, default=None, metavar="RANK",
                   help="send SIGINT to this rank once training runs; the run must save and exit 130")
    p.add_argument("--interrupt-after", type=float, default=3.0, metavar="S",
                   help="seconds after training began before the SIGINT (default: 3)")
    p.add_argument("--launcher", choices=sorted(LAUNCHERS), default="torchrun",
                   help="torchrun (default) or stylegan (python -m stylegan_anime.launch: exit codes passed through)")
    p.add_argument("--keep-logs", default=None, metavar="DIR", help="keep every run's output as DIR/run-NN.log")
    p.add_argument("extra", nargs="*", help="more `stylegan-anime train` flags, after --")
    args = p.parse_args(argv)
    if args.runs < 1 or args.nproc < 1:
        p.error("--runs and --nproc must be at least 1")

    tmp = Path(tempfile.mkdtemp(prefix="torchrun-soak-"))
    keep = Path(args.keep_logs) if args.keep_logs else None
    if keep:
        keep.mkdir(parents=True, exist_ok=True)
    rows, codes = [], collections.Counter()
    try:
        for i in range(args.runs):
            run_dir = tmp / f"run-{i:02d}"
            code, text, secs = launch(run_dir, args.nproc, args.extra, args.timeout, args.interrupt,
                                      args.interrupt_after, args.launcher)
            problems = check(code, text, args.interrupt, args.launcher)
            codes["timeout" if code is None else code] += 1
            rows.append((i, code, secs, problems))
            print(f"run {i:3d}  exit {'-' if code is None else code:>4}  {secs:6.1f} s  "
                  f"{'ok' if not problems else 'FAIL: ' + '; '.join(problems)}", flush=True)
            if keep:
                (keep / f"run-{i:02d}.log").write_text(text)
            elif problems:  # the evidence of a failure is kept even without --keep-logs
                dest = Path(tempfile.gettempdir()) / f"torchrun-soak-fail-{os.getpid()}-{i:02d}.log"
                dest.write_text(text)
                print(f"          output: {dest}", flush=True)
            shutil.rmtree(run_dir, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    failed = [r for r in rows if r[3]]
    print()
    print(f"{'exit code':>10}  {'runs':>5}")
    for code, n in sorted(codes.items(), key=lambda kv: str(kv[0])):
        print(f"{code!s:>10}  {n:>5}")
    crashes = sum(any(x.startswith("crash") for x in r[3]) for r in rows)
    print(f"{len(rows)} runs, {len(rows) - len(failed)} clean, {len(failed)} failed ({crashes} with a crash line); "
          f"median {sorted(r[2] for r in rows)[len(rows) // 2]:.1f} s per run")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
