"""Checkpoints: atomic writes, newest-K retention, safe loading, and finding what to resume.

A checkpoint is a plain dict of tensors and plain values, so `torch.load(path, weights_only=True)` reads it
and no code runs on load:

    {'format': 1, 'config': {...TrainConfig...}, 'nets': {'G': sd, 'D': sd, 'G_ema': sd},
     'opts': {'G': sd, 'D': sd}, 'scaler': sd | None, 'recipe': {...}, 'progress': {'nimg', 'iteration', ...},
     'rng': {'torch': ByteTensor, 'cuda': [ByteTensor], 'sampler': {...}}, 'fixed': {'z': Tensor, ...}}

Files are `RUN/checkpoints/ckpt-NNNNNNNNN.pt` where N is the number of real images shown (zero padded, so
names sort by progress).

Robustness:
- a file that cannot be used is a one-line `CheckpointError` naming the file and what is wrong with it (empty,
  truncated or damaged, a pickle or zip of another program, a missing key); torch's own message is never shown;
- loading a run folder takes its newest *readable* checkpoint, warning about the unreadable newer ones;
- one training process per run folder: `RunLock` (an flock on RUN/run.lock, released by the kernel when the
  process dies); `new_run_dir` is safe against concurrent callers;
- a failed write (disk full, read-only, no permission) is a one-line `WriteError`: `cannot write PATH: REASON`,
  with the previous checkpoint intact and no temp file left; temp files of killed writers are removed by
  `remove_stale_temps` once the run lock is held.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import shutil
import socket
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Callable

import torch

from ..output_files import OutputExists
from ..one_line import error_line as error_text  # first non-blank line of a message, else the type name
from .checkpoint_errors import CheckpointError  # noqa: F401 (re-exported: the CLI and tools import it here)

FORMAT = 1
_NAME = re.compile(r"^ckpt-(\d+)\.pt$")
_TEMP = re.compile(r"^\.tmp-.*\.pt$")  # atomic_torch_save's temp files
LOCK_NAME = "run.lock"
BAD_SUFFIX = ".bad"  # an unreadable checkpoint set aside by a resume that fell back to an older one
# What the trainer and the sampler read from a checkpoint: checked before use, so a foreign or damaged dict is
# a CheckpointError naming the key, not a TypeError / KeyError deep inside.
REQUIRED_KEYS = {"config": ("data", "model", "size", "model_cfg"), "nets": ("G", "D", "G_ema"),
                 "progress": ("nimg", "iteration", "skipped")}


class RunLockedError(CheckpointError):
    """Another live process trains in this run folder."""


class WriteError(ValueError):
    """Output could not be written (disk full, read-only, no permission): `cannot write PATH: REASON`."""


def checkpoint_dir(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / "checkpoints"


def atomic_torch_save(obj, path: str | os.PathLike) -> Path:
    """torch.save to a temp file in the same folder, fsync, rename: a crash never leaves a half-written file.
    A failed write (disk full, read-only ...) removes the temp file and raises WriteError; `path` is untouched."""
    path = Path(path)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".pt", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(obj, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    _fsync_dir(path.parent)
    return path


@contextlib.contextmanager
def writing(path: str | os.PathLike, remove_partial: bool = False):
    """Turn a failed write inside the block into `WriteError('cannot write PATH: REASON')`: any OSError (disk
    full, read-only file system, permission denied ...) and torch's serializer failures (`enforce fail`,
    `PytorchStreamWriter failed`, `file write failed`), which carry no errno. `remove_partial`: the block writes
    `path` whole (a picture): a failed write deletes what it left there."""
    try:
        yield
    except (WriteError, OutputExists):  # OutputExists is an OSError too: it stays the user error it is
        raise
    except OSError as e:
        _remove(path, remove_partial)
        where = e.filename if isinstance(e.filename, str) and e.filename else path
        if Path(where).name.startswith(f".{Path(path).name}."):  # new_output's temp file: name the destination
            where = path
        raise WriteError(f"cannot write {where}: {os_reason(e)}") from None
    except RuntimeError as e:
        if not _is_torch_write_failure(e):
            raise
        _remove(path, remove_partial)
        raise WriteError(f"cannot write {path}: {_torch_write_reason(Path(path))}") from None


def _remove(path: str | os.PathLike, really: bool) -> None:
    if really:
        with contextlib.suppress(OSError):
            Path(path).unlink(missing_ok=True)


def os_reason(e: OSError) -> str:
    """'No space left on device', 'Read-only file system', 'Permission denied' ... (never empty)."""
    if e.strerror:
        return e.strerror
    if e.errno:
        return os.strerror(e.errno)
    return error_text(e)


def _is_torch_write_failure(e: RuntimeError) -> bool:
    text = str(e)
    return any(s in text for s in ("enforce fail", "PytorchStreamWriter", "file write failed", "unexpected pos"))


def _torch_write_reason(path: Path) -> str:
    """torch's writer reports no errno: name the likely cause from the free space left."""
    try:
        free = shutil.disk_usage(path.parent if path.parent.exists() else ".").free
    except OSError:
        free = None
    if free is None:
        return "the write failed (disk full or a storage error?)"
    if free < 64 * 2**20:
        return f"{os.strerror(errno.ENOSPC)} ({free / 2**20:.1f} MiB free)"
    return f"the write failed ({free / 2**30:.1f} GiB free there: a storage error, or the disk was full)"


def save_checkpoint(state: dict, run_dir: str | os.PathLike, nimg: int, keep: int) -> Path:
    """Write atomically, then delete all but the newest `keep`."""
    path = atomic_torch_save({"format": FORMAT, **state}, checkpoint_dir(run_dir) / f"ckpt-{nimg:09d}.pt")
    for old in list_checkpoints(run_dir)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def list_checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """Checkpoints of a run, oldest first."""
    folder = checkpoint_dir(run_dir)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


Warn = Callable[[str], None]


def load_checkpoint(path: str | os.PathLike, map_location="cpu", warn: Warn | None = None,
                    set_aside: bool = False, use: tuple[str, ...] = ("G", "D", "G_ema")) -> dict:
    """Read a checkpoint file, or a run folder's newest readable checkpoint.

    Its content is checked as well (`checkpoint_check.check_checkpoint`): the stored config in the command
    line's ranges, every network tensor's name and shape against the networks that config builds, and the
    networks the caller will `use` ('G', 'D', 'G_ema') finite. A file failing that is unusable like a damaged one.

    A run folder whose newest checkpoints are unreadable falls back to the newest readable one: each bad file
    is one `warn` line (file and why), then one line says which checkpoint is used and how many kimg are lost.
    With `set_aside` (a resume holding the run lock) the unreadable newer files are renamed to NAME.pt.bad, so
    that the resumed run's retention and the next resume do not trip over them. A bad checkpoint FILE is a
    CheckpointError (naming other checkpoints of its run that look intact). `warn` defaults to stderr."""
    warn = _stderr_warn if warn is None else warn
    path = Path(path)
    if path.is_dir():  # a run folder: its newest readable checkpoint
        return _load_newest(path, map_location, warn, set_aside, use)
    if not path.is_file():
        raise CheckpointError(f"checkpoint does not exist: {path}")
    try:
        return _load_file(path, map_location, use)
    except CheckpointError as e:
        raise CheckpointError(f"{e}{_intact_hint(path)}", e.reason) from None


def _load_newest(run: Path, map_location, warn: Warn, set_aside: bool, use: tuple[str, ...]) -> dict:
    found = list_checkpoints(run)
    if not found:
        raise CheckpointError(f"no checkpoint found in {run}")
    bad: list[tuple[Path, CheckpointError]] = []
    for ckpt in reversed(found):
        try:
            state = _load_file(ckpt, map_location, use)
        except CheckpointError as e:
            bad.append((ckpt, e))
            continue
        for _, e in bad:  # said once a readable one is found (else the error below says it all)
            warn(f"{e}; trying an older checkpoint")
        if bad:
            lost = (max(_nimg_of(b) for b, _ in bad) - int(state["progress"]["nimg"])) / 1000
            moved = _set_aside([b for b, _ in bad]) if set_aside else []
            note = f"; set aside as {', '.join(m.name for m in moved)}" if moved else ""
            warn(f"using {ckpt} (kimg {int(state['progress']['nimg']) / 1000:g}), the newest readable checkpoint "
                 f"of {run}: {lost:g} kimg of training after it are lost{note}")
        return state
    reasons = "; ".join(f"{b.name}: {e.reason}" for b, e in bad)
    raise CheckpointError(f"no readable checkpoint in {run}: {reasons}")


def _set_aside(paths: list[Path]) -> list[Path]:
    moved = []
    for p in paths:
        target = p.with_name(p.name + BAD_SUFFIX)
        try:
            p.replace(target)
        except OSError:  # read-only or already gone (another rank): leave it
            continue
        moved.append(target)
    return moved


def _load_file(path: Path, map_location="cpu", use: tuple[str, ...] = ("G", "D", "G_ema")) -> dict:
    """One checkpoint file, checked: CheckpointError("cannot read checkpoint PATH: <what is wrong>") otherwise,
    or "PATH: <key>: <what is wrong>" for content that does not fit its own config (checkpoint_check)."""
    def bad(reason: str) -> CheckpointError:
        return CheckpointError(f"cannot read checkpoint {path}: {reason}", reason)

    try:
        kind = _sniff(path)
    except OSError as e:
        raise bad(os_reason(e)) from None
    if kind == "empty":
        raise bad("it is empty (0 bytes): its write was interrupted")
    if kind == "truncated":
        raise bad("it is truncated or damaged (an incomplete zip archive)")
    if kind == "zip":
        raise bad("it is a zip archive but not a PyTorch file (not a stylegan-anime checkpoint)")
    if kind == "nvlabs":
        raise bad("it is a stylegan2-ada-pytorch network pickle, not a stylegan-anime checkpoint; convert it with: "
                  f"stylegan-anime import-checkpoint {path} OUT.pt")
    if kind == "pickle":
        raise bad("it is a Python pickle from another program, not a stylegan-anime checkpoint (an official StyleGAN2 "
                  f"network-snapshot .pkl is converted with: stylegan-anime import-checkpoint {path} OUT.pt)")
    if kind == "unknown":
        raise bad("it is not a checkpoint (neither a PyTorch file nor a pickle: damaged, or another kind of file)")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except OSError as e:
        raise bad(os_reason(e)) from None
    except Exception as e:  # noqa: BLE001 - torch's own words are not shown (they advise disabling weights_only)
        if type(e).__name__ == "UnpicklingError":
            raise bad("it is a PyTorch file from another program: it holds Python objects, not only tensors "
                      "(not a stylegan-anime checkpoint)") from None
        raise bad("it is truncated or damaged (its contents cannot be read)") from None
    if not isinstance(state, dict) or "format" not in state:
        what = type(state).__name__ if not isinstance(state, dict) else "a dict without 'format'"
        raise bad(f"it is a PyTorch file from another program ({what}), not a stylegan-anime checkpoint")
    if state["format"] != FORMAT:
        raise bad(f"it has checkpoint format {state['format']!r}; this stylegan-anime reads format {FORMAT}")
    _check_keys(state, bad)
    from .checkpoint_check import check_checkpoint  # noqa: PLC0415 (builds networks: only when a file is read)
    check_checkpoint(state, path, use)
    state["path"] = str(path)
    return state


def _check_keys(state: dict, bad) -> None:
    for section, keys in REQUIRED_KEYS.items():
        if section not in state:
            raise bad(f"it is missing '{section}' (incomplete, or written by another program)")
        if not isinstance(state[section], dict):
            raise bad(f"it has a '{section}' that is a {type(state[section]).__name__}, not a dict")
        for key in keys:
            if key not in state[section]:
                raise bad(f"it is missing '{section}.{key}' (incomplete, or written by another program)")
    if not isinstance(state["config"]["model_cfg"], dict):
        raise bad("it has a 'config.model_cfg' that is not a dict")
    try:
        int(state["progress"]["nimg"])
    except (TypeError, ValueError):
        raise bad("it has a 'progress.nimg' that is not a number") from None


def _sniff(path: Path) -> str:
    """What a file looks like before torch reads it: empty | truncated | zip | torch | nvlabs | pickle | unknown."""
    with open(path, "rb") as f:
        head = f.read(4)
        if not head:
            return "empty"
        if head.startswith(b"PK"):
            try:
                with zipfile.ZipFile(path) as z:
                    names = z.namelist()
            except (zipfile.BadZipFile, EOFError, ValueError):
                return "truncated"
            return "torch" if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names) else "zip"
        f.seek(0)
        blob = f.read(1 << 20)
    if b"torch_utils" in blob and b"persistence" in blob or b"dnnlib" in blob:  # NVlabs network-snapshot-*.pkl
        return "nvlabs"
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:  # pickle protocol 2+ (legacy torch.save ...)
        return "pickle"
    return "unknown"


def _looks_intact(path: Path) -> bool:
    """Cheap: a complete PyTorch zip (its central directory is at the end, so truncation shows)."""
    try:
        return _sniff(path) == "torch"
    except OSError:
        return False


def _intact_hint(path: Path) -> str:
    """For a bad checkpoint file of a run: name the newest other checkpoint of that run that looks intact."""
    if path.parent.name != "checkpoints":
        return ""
    run = path.parent.parent
    others = [p for p in reversed(list_checkpoints(run)) if p.name != path.name]
    good = next((p for p in others if _looks_intact(p)), None)
    if good is None:
        return ""
    older = "older " if _nimg_of(good) < _nimg_of(path) else ""
    return (f"; the run has {older}checkpoints that look intact (newest: {good.name}, kimg {_nimg_of(good) / 1000:g}): "
            f"pass the run folder {run} to use the newest readable one")


def _nimg_of(path: Path) -> int:
    m = _NAME.match(path.name)
    return int(m.group(1)) if m else 0


def _stderr_warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def find_resume(outdir: str | os.PathLike) -> Path | None:
    """`--resume auto`: the newest checkpoint of the newest run in outdir that has one, else None."""
    outdir = Path(outdir)
    if not outdir.is_dir():
        return None
    runs = sorted((p for p in outdir.iterdir() if p.is_dir() and _run_index(p.name) is not None),
                  key=lambda p: _run_index(p.name))
    for run in reversed(runs):
        found = list_checkpoints(run)
        if found:
            return found[-1]
    return None


def new_run_dir(outdir: str | os.PathLike, desc: str) -> Path:
    """outdir/NNNNN-desc with the next free number (StyleGAN's run-folder convention). Safe against concurrent
    callers: the number is picked under an flock on outdir itself, and a name taken meanwhile (a file system
    without flock) moves on to the next number. A read-only or full outdir is a WriteError."""
    outdir = Path(outdir)
    with writing(outdir):
        outdir.mkdir(parents=True, exist_ok=True)
        with _flocked_dir(outdir):
            used = [i for p in outdir.iterdir() if (i := _run_index(p.name)) is not None]
            index = max(used, default=-1) + 1
            while True:
                run = outdir / f"{index:05d}-{desc}"
                try:
                    run.mkdir()
                    return run
                except FileExistsError:
                    index += 1


@contextlib.contextmanager
def _flocked_dir(folder: Path):
    """Hold an exclusive flock on a directory (best effort: none where the file system has no flock)."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:
            pass
        yield
    finally:
        os.close(fd)  # releases the lock


class RunLock:
    """One training process per run folder: an exclusive flock on RUN/run.lock, which holds the pid (and host)
    of the holder. The kernel releases it when the process dies (even kill -9), so a stale lock file never
    blocks; the file itself is left in place (deleting it would let two processes lock different files).

        lock = RunLock(run_dir).acquire()   # RunLockedError naming the holder's pid if another process has it
        ...
        lock.release()                      # or `with RunLock(run_dir):`
    """

    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> "RunLock":
        if self._fd is not None:
            return self
        with writing(self.path):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):  # no flock here (ENOLCK ...):
                self._fd = fd                                                   # go on without the lock
                return self
            holder = _read_holder(fd)
            os.close(fd)
            raise RunLockedError(f"run folder {self.run_dir} is in use by another training process ({holder}); "
                                 f"wait for it to finish or stop it, or start a new run") from None
        try:
            with writing(self.path):
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        except OSError:
            pass
        os.close(fd)

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    def __del__(self):
        try:
            self.release()
        except Exception:  # noqa: BLE001 - interpreter shutdown; the kernel releases the lock anyway
            pass


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode("utf-8", "replace").split()
    except OSError:
        text = []
    if not text or not text[0].isdigit():
        return "pid unknown"
    if len(text) > 1 and text[1] != socket.gethostname():
        return f"pid {text[0]} on {text[1]}"
    return f"pid {text[0]}"


def remove_stale_temps(run_dir: str | os.PathLike) -> list[Path]:
    """Delete `.tmp-*.pt` files that killed checkpoint writes left in RUN/checkpoints. Call it only while holding
    the run's RunLock: then no live process is writing there. Returns what was removed."""
    folder = checkpoint_dir(run_dir)
    removed = []
    if not folder.is_dir():
        return removed
    for p in folder.iterdir():
        if _TEMP.match(p.name) and p.is_file():
            try:
                p.unlink()
            except OSError:
                continue
            removed.append(p)
    return removed


def _run_index(name: str) -> int | None:
    m = re.match(r"^(\d{5,})-", name)
    return int(m.group(1)) if m else None


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
