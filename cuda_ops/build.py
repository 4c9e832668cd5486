"""Just-in-time build and on-disk cache of the CUDA plugins (`bias_act`, `upfirdn2d`).

Nothing here runs at import. The first op call that wants the CUDA path calls `get_plugin(op)`, which

1. gives up at once (without touching the disk) when torch has no CUDA or no GPU is visible;
2. computes the cache key: a hash of every `*.h`/`*.cpp`/`*.cu` next to this file, the torch version,
   `torch.version.cuda`, the compute capabilities of the visible GPUs, the Python version and the build
   flags. The build directory is `<root>/<op>-<key>`, root = `$STYLEGAN_ANIME_OPS_CACHE` or
   `~/.cache/stylegan-anime/ops`;
3. loads the cached module when `status.json` there says "built";
4. otherwise takes an exclusive `fcntl.flock` on `<dir>/build.lock` (one builder; other processes, e.g.
   DDP ranks, wait and then load its result). A flock dies with its process, so a build killed half-way
   leaves no lock behind; torch's own `lock` baton file, which a killed build *does* leave behind and which
   would make `torch.utils.cpp_extension.load` wait forever, is deleted while we hold the flock;
5. copies the sources into `<dir>/src`, builds them with `torch.utils.cpp_extension.load` (ninja) for the
   visible GPUs' architectures, with the compiler's output going to `<dir>/build.log`, and records the
   outcome in `<dir>/status.json`. A failure recorded while a process was waiting for the lock is reused
   by it (N ranks do not each retry a broken build); a later run tries again.

6. runs the **self-test** (`selftest.py`) on a plugin it has built or loaded, unless `status.json` already
   holds a verdict for this key: each op once per dtype on small fixed inputs, forward, backward and double
   backward against the float64 reference. A mismatch (or a launch error) marks the build failed in
   `status.json` (kind 'selftest', with the max error), so `--ops auto` falls back with one warning and
   `--ops cuda` stops, in this and every later process with the same key (no rebuild: the same sources
   give the same binary). `$STYLEGAN_ANIME_OPS_SELFTEST=0` skips it.

The outcome is memoized per process: `get_plugin` raises the same `PluginUnavailable` every time after a
failure. `plugin_status` reports what happened without building anything.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.machinery
import importlib.util
import json
import logging
import os
import platform
import re
import shutil
import sys
import threading
import time
import types
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import torch

__all__ = [
    "OPS",
    "PluginUnavailable",
    "cache_root",
    "source_files",
    "gpu_archs",
    "cache_key",
    "build_dir",
    "get_plugin",
    "plugin_status",
    "cuda_toolchain_problem",
    "reset",
]

log = logging.getLogger(__name__)

OPS = ("bias_act", "upfirdn2d")
# The fused CPU kernels (impl='cpu', `<op>_cpu.cpp`): the same cache, lock, status and self-test machinery,
# built with the host compiler only (no CUDA, no GPU needed); see cpu_toolchain_problem.
CPU_OPS = ("bias_act_cpu", "upfirdn2d_cpu")
SOURCE_DIR = Path(__file__).resolve().parent
SOURCE_SUFFIXES = (".h", ".cpp", ".cu")
CACHE_ENV = "STYLEGAN_ANIME_OPS_CACHE"
LOCK_TIMEOUT_ENV = "STYLEGAN_ANIME_OPS_LOCK_TIMEOUT"
SELFTEST_ENV = "STYLEGAN_ANIME_OPS_SELFTEST"  # '0' skips the self-test of a new build (not recommended)
DEFAULT_LOCK_TIMEOUT = 1200.0  # seconds; a cold build of both ops takes a minute or two
LOCK_POLL = 0.1  # seconds between attempts to take the lock
BUILD_FORMAT = 1  # bump when the build recipe below changes: it is part of the cache key
EXTRA_CFLAGS = ("-O3",)
EXTRA_CUDA_CFLAGS = ("-O3",)
CPU_EXTRA_CFLAGS = ("-O3", "-fopenmp")  # at::parallel_for is OpenMP in torch's CPU builds; AVX-512 at run time
CPU_EXTRA_LDFLAGS = ("-fopenmp",)  # resolves to the libgomp.so.1 torch has loaded already (same soname)
LIB_EXT = ".pyd" if sys.platform == "win32" else ".so"  # what torch.utils.cpp_extension produces

STATUS_FILE = "status.json"
LOCK_FILE = "build.lock"
LOG_FILE = "build.log"
TORCH_BATON = "lock"  # torch.utils.cpp_extension's FileBaton in the build directory


class PluginUnavailable(RuntimeError):
    """The CUDA plugin for `op` cannot be used; `reason` says why, `log_path` holds the build log if any.

    kind: 'no-cuda-torch' | 'no-gpu' | 'no-nvcc' | 'no-ninja' | 'compile' | 'lock-timeout' | 'selftest' | 'error'
    """

    def __init__(self, op: str, kind: str, reason: str, log_path: str | os.PathLike | None = None):
        self.op = op
        self.kind = kind
        self.reason = reason
        self.log_path = None if log_path is None else str(log_path)
        msg = f"the {op} CUDA plugin is unavailable: {reason}"
        if self.log_path:
            msg += f" (build log: {self.log_path})"
        super().__init__(msg)


# --------------------------------------------------------------------------------------------------------
# Cache key and locations.


def cache_root() -> Path:
    """`$STYLEGAN_ANIME_OPS_CACHE`, else `~/.cache/stylegan-anime/ops`."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "stylegan-anime" / "ops"


def source_files(src_dir: str | os.PathLike | None = None) -> dict[str, bytes]:
    """{file name: contents} of every .h/.cpp/.cu file in `src_dir` (default: this package), sorted by name."""
    src_dir = Path(SOURCE_DIR if src_dir is None else src_dir)
    names = sorted(p.name for p in src_dir.iterdir() if p.is_file() and p.suffix in SOURCE_SUFFIXES)
    return {name: (src_dir / name).read_bytes() for name in names}


def gpu_archs() -> tuple[str, ...]:
    """Sorted compute capabilities ('8.0', '9.0', ...) of the visible GPUs; () without CUDA."""
    if not torch.cuda.is_available():
        return ()
    caps = {torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())}
    return tuple(f"{major}.{minor}" for major, minor in sorted(caps))


def cache_key(
    sources: Mapping[str, bytes] | None = None,
    torch_version: str | None = None,
    cuda_version: str | None = None,
    archs: Sequence[str] | None = None,
    python_version: str | None = None,
) -> str:
    """Hex digest naming a build: the sources' bytes, torch / CUDA / Python versions, GPU architectures,
    platform and build flags. Arguments left as None take this process's values."""
    sources = source_files() if sources is None else sources
    meta = {
        "format": BUILD_FORMAT,
        "torch": torch.__version__ if torch_version is None else torch_version,
        "cuda": torch.version.cuda if cuda_version is None else cuda_version,
        "archs": sorted(gpu_archs() if archs is None else archs),
        "python": "%d.%d" % sys.version_info[:2] if python_version is None else python_version,
        "platform": [sys.platform, platform.machine()],
        "cflags": list(EXTRA_CFLAGS),
        "cuda_cflags": list(EXTRA_CUDA_CFLAGS),
    }
    h = hashlib.sha256(json.dumps(meta, sort_keys=True).encode())
    for name in sorted(sources):
        data = sources[name]
        h.update(f"\0{name}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()[:20]


def build_dir(op: str, key: str | None = None) -> Path:
    """`<cache root>/<op>-<key>`."""
    _check_op(op)
    return cache_root() / f"{op}-{cache_key() if key is None else key}"


def module_name(op: str, key: str) -> str:
    """The extension's Python module name (unique per key, so two builds never clash in one process)."""
    return f"stylegan_anime_{op}_{key}"


def _check_op(op: str) -> None:
    if op not in OPS + CPU_OPS:
        raise ValueError(f"unknown op {op!r}; expected one of {', '.join(OPS)}")


# --------------------------------------------------------------------------------------------------------
# Toolchain checks (cheap; no build).


def _no_cuda_reason() -> tuple[str, str] | None:
    """(kind, reason) when this process cannot run CUDA code at all, else None."""
    if torch.version.cuda is None:
        hip = getattr(torch.version, "hip", None)
        build = f"ROCm {hip}" if hip else "CPU-only"
        return "no-cuda-torch", f"this torch ({torch.__version__}) is a {build} build without CUDA support"
    if not torch.cuda.is_available():
        return "no-gpu", "no CUDA GPU is available (torch.cuda.is_available() is False)"
    return None


def find_nvcc() -> str | None:
    """The nvcc that torch's extension builder would use (CUDA_HOME/bin/nvcc), else the one on PATH."""
    cuda_home = None
    try:
        from torch.utils import cpp_extension

        cuda_home = cpp_extension.CUDA_HOME
    except Exception:  # noqa: BLE001 - a broken cpp_extension import only means "unknown"
        pass
    if cuda_home:
        exe = Path(cuda_home) / "bin" / ("nvcc.exe" if sys.platform == "win32" else "nvcc")
        if exe.exists():
            return str(exe)
    return shutil.which("nvcc")


def cpu_toolchain_problem() -> tuple[str, str] | None:
    """(kind, reason) when the CPU plugins (CPU_OPS) cannot be built here (no C++ compiler, no ninja), else None."""
    from torch.utils import cpp_extension

    cxx = os.environ.get("CXX", "cl" if sys.platform == "win32" else "c++")
    if shutil.which(cxx) is None:
        return "no-compiler", f"no C++ compiler ({cxx!r} is not on PATH; set CXX)"
    if not cpp_extension.is_ninja_available():
        return "no-ninja", "ninja not found: pip install ninja"
    return None


def cuda_toolchain_problem() -> tuple[str, str] | None:
    """(kind, reason) when the CUDA plugins cannot be *built* here (no GPU, no nvcc, no ninja), else None."""
    problem = _no_cuda_reason()
    if problem:
        return problem
    from torch.utils import cpp_extension

    if not cpp_extension.CUDA_HOME or find_nvcc() is None:
        return ("no-nvcc", "nvcc not found: install the CUDA toolkit and set CUDA_HOME (or put its bin/ on PATH)")
    if not cpp_extension.is_ninja_available():
        return "no-ninja", "ninja not found: pip install ninja"
    return None


# --------------------------------------------------------------------------------------------------------
# Status file and lock.


def _read_status(directory: Path) -> dict | None:
    try:
        return json.loads((directory / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return None


def _write_status(directory: Path, status: dict) -> None:
    tmp = directory / f".{STATUS_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(status, indent=2))
    os.replace(tmp, directory / STATUS_FILE)  # atomic: readers see the old or the new file


def _lock_timeout() -> float:
    try:
        return float(os.environ.get(LOCK_TIMEOUT_ENV, DEFAULT_LOCK_TIMEOUT))
    except ValueError:
        return DEFAULT_LOCK_TIMEOUT


@contextlib.contextmanager
def _exclusive_lock(path: Path, timeout: float) -> Iterator[None]:
    """Hold an exclusive flock on `path`, waiting at most `timeout` seconds (TimeoutError after that).

    The kernel drops a flock when its process dies, so a killed builder never blocks the next run. The
    holder writes its pid into the file, for the messages of those who wait.
    """
    try:
        import fcntl
    except ImportError:  # not POSIX: no cross-process lock (torch's own baton still serializes builds)
        yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        announced = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = _lock_holder(path)
                if time.monotonic() >= deadline:
                    raise TimeoutError(
                        f"gave up after {timeout:g} s waiting for {path} (held by pid {holder}); "
                        f"set {LOCK_TIMEOUT_ENV} to wait longer"
                    ) from None
                if not announced:
                    log.info("waiting for another process (pid %s) to finish building in %s", holder, path.parent)
                    announced = True
                time.sleep(LOCK_POLL)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _lock_holder(path: Path) -> str:
    try:
        return path.read_text().strip() or "?"
    except OSError:
        return "?"


# --------------------------------------------------------------------------------------------------------
# Building and importing (monkeypatched by the tests).


def _compile(name: str, directory: Path, sources: list[Path], archs: Sequence[str], log_path: Path) -> types.ModuleType:
    """Build `sources` into the extension module `name` in `directory` and import it.

    Runs torch.utils.cpp_extension.load (ninja) with the compiler's stdout/stderr appended to `log_path`.
    Raises on a compiler error.
    """
    from torch.utils import cpp_extension

    with open(log_path, "ab") as log_file, _redirect_fds(log_file.fileno()):
        return cpp_extension.load(
            **_load_arguments(name, directory / "src", sources, archs),
            build_directory=str(directory),
            verbose=True,  # ninja and the compilers write to fd 1, which now is the log file
        )


def _load_arguments(name: str, src_dir: Path, sources: Sequence[Path], archs: Sequence[str]) -> dict:
    """The arguments of torch.utils.cpp_extension.load for a build (shared with `jit_flags`)."""
    with_cuda = any(s.suffix == ".cu" for s in sources)
    cuda_flags = list(EXTRA_CUDA_CFLAGS)
    for arch in archs:  # explicit -gencode flags: torch then adds none of its own
        num = arch.replace(".", "")
        cuda_flags.append(f"-gencode=arch=compute_{num},code=sm_{num}")
    cpu = bool(sources) and all(Path(s).stem.endswith("_cpu") for s in sources)  # a CPU_OPS plugin
    return dict(name=name, sources=[str(s) for s in sources],
                extra_cflags=list(CPU_EXTRA_CFLAGS if cpu else EXTRA_CFLAGS),
                extra_cuda_cflags=cuda_flags if with_cuda else None, extra_include_paths=[str(src_dir)],
                with_cuda=with_cuda, **({"extra_ldflags": list(CPU_EXTRA_LDFLAGS)} if cpu else {}))


def jit_flags(op: str, src_dir: str | os.PathLike, scratch: str | os.PathLike, archs: Sequence[str],
              cuda_home: str | None = None) -> dict[str, str]:
    """The compiler command parts the JIT build of `op` uses: {'cxx', 'nvcc', 'cflags', 'post_cflags',
    'cuda_cflags', 'cuda_post_cflags'}, read from the build.ninja that torch.utils.cpp_extension writes for the
    same load() arguments as `_compile` (written into `scratch`, nothing compiled). For the CI compile check
    (tools/check_cuda_compile.py); `cuda_home` stands in for torch's CUDA_HOME on a CPU-only torch (where it
    is None). Uses a private torch function: RuntimeError when it is missing or changed."""
    _check_op(op)
    from torch.utils import cpp_extension

    src_dir, scratch = Path(src_dir), Path(scratch)
    scratch.mkdir(parents=True, exist_ok=True)
    args = _load_arguments(f"check_{op}", src_dir, [src_dir / f"{op}.cpp", src_dir / f"{op}.cu"], archs)
    writer = getattr(cpp_extension, "_write_ninja_file_to_build_library", None)
    if writer is None:
        raise RuntimeError(f"torch {torch.__version__} has no cpp_extension._write_ninja_file_to_build_library")
    saved = cpp_extension.CUDA_HOME
    if cuda_home and not saved:
        cpp_extension.CUDA_HOME = cuda_home
    try:
        writer(path=str(scratch / "build.ninja"), name=args["name"], sources=args["sources"],
               extra_cflags=args["extra_cflags"], extra_cuda_cflags=args["extra_cuda_cflags"] or [],
               extra_sycl_cflags=[], extra_ldflags=[], extra_include_paths=args["extra_include_paths"],
               with_cuda=args["with_cuda"], with_sycl=False, is_standalone=False)
    except TypeError as e:  # another torch's signature
        raise RuntimeError(f"cpp_extension._write_ninja_file_to_build_library changed in torch "
                           f"{torch.__version__}: {e}") from e
    finally:
        cpp_extension.CUDA_HOME = saved
    flags = {}
    for line in (scratch / "build.ninja").read_text().splitlines():
        key, sep, value = line.partition(" = ")
        if sep and key in ("cxx", "nvcc", "cflags", "post_cflags", "cuda_cflags", "cuda_post_cflags"):
            flags[key] = value.strip()
    missing = {"cxx", "cflags", "cuda_cflags"} - set(flags)
    if missing:
        raise RuntimeError(f"no {', '.join(sorted(missing))} in the build.ninja torch {torch.__version__} wrote")
    return flags


@contextlib.contextmanager
def _redirect_fds(target_fd: int) -> Iterator[None]:
    """Point this process's fd 1 and 2 at `target_fd` (so that subprocesses write there), then restore."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = []
    try:
        for fd in (1, 2):
            saved.append((fd, os.dup(fd)))
            os.dup2(target_fd, fd)
    except OSError:  # no usable fd 1/2 (unusual embedding): build without capturing
        for fd, copy in saved:
            os.dup2(copy, fd)
            os.close(copy)
        saved = []
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        for fd, copy in saved:
            os.dup2(copy, fd)
            os.close(copy)


def _import_built(name: str, path: Path) -> types.ModuleType:
    """Import the already-built extension module `name` from the file `path`."""
    loader = importlib.machinery.ExtensionFileLoader(name, str(path))
    spec = importlib.util.spec_from_file_location(name, str(path), loader=loader)
    if spec is None:
        raise ImportError(f"cannot import {name} from {path}")
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


# --------------------------------------------------------------------------------------------------------
# The entry points.

_memo_lock = threading.RLock()  # re-entered by the self-test, whose op calls come back to get_plugin
_plugins: dict[str, types.ModuleType] = {}
_failures: dict[str, PluginUnavailable] = {}
_under_test: dict[str, types.ModuleType] = {}  # plugins whose self-test is running (in the lock's holder)


def get_plugin(op: str) -> types.ModuleType:
    """The compiled module of `op`, building it on first use; raises PluginUnavailable (memoized)."""
    _check_op(op)
    with _memo_lock:
        if op in _plugins:
            return _plugins[op]
        if op in _under_test:
            return _under_test[op]
        if op in _failures:
            raise _failures[op]
        try:
            module = _load(op)
            _verify(op, module)
        except PluginUnavailable as e:
            _failures[op] = e
            raise
        except Exception as e:  # noqa: BLE001 - e.g. an unwritable cache directory: still "unavailable"
            _failures[op] = PluginUnavailable(op, "error", f"{type(e).__name__}: {e}")
            raise _failures[op] from e
        _plugins[op] = module
        return module


# The self-test (selftest.py) runs the ops themselves, which import this module: the package's __init__ hands it
# over here (`use_selftest`) instead of this module importing it, so that no import goes round in a circle.
_selftest = None


def use_selftest(selftest_module) -> None:
    """Register the module whose `run(op, plugin)` checks a freshly built or loaded plugin (cuda_ops/selftest.py)."""
    global _selftest
    _selftest = selftest_module


def _verify(op: str, module: types.ModuleType) -> None:
    """Run the self-test of `op`'s freshly built or loaded `module` unless this key already has a verdict;
    record the verdict in status.json; PluginUnavailable(kind 'selftest') with the max error on a mismatch."""
    if os.environ.get(SELFTEST_ENV, "1").strip() == "0":
        return
    directory = build_dir(op)
    status = _read_status(directory) or {}
    verdict = status.get("selftest") or {}
    if verdict.get("state") == "passed":
        return
    if _selftest is None:  # build.py loaded outside the package (tools/check_cuda_compile.py): nothing to run
        return
    log.info("self-testing the %s CUDA plugin against the reference", op)
    started = time.time()
    _under_test[op] = module
    try:
        worst = _selftest.run(op, module)
    except _selftest.SelfTestFailed as e:
        _write_status(directory, {**status, "state": "failed", "kind": "selftest", "reason": str(e),
                                  "max_error": e.max_error, "time": time.time(), "pid": os.getpid(),
                                  "selftest": {"state": "failed", "reason": str(e), "max_error": e.max_error}})
        raise PluginUnavailable(op, "selftest", str(e)) from e
    finally:
        del _under_test[op]
    status = _read_status(directory) or status
    if status.get("state") == "built":
        _write_status(directory, {**status, "selftest": {"state": "passed", "max_error": worst,
                                                         "seconds": round(time.time() - started, 2)}})
    log.info("the %s CUDA plugin passed its self-test (max error %.2g)", op, worst)


def reset() -> None:
    """Forget this process's loaded plugins and failures (tests; a retry after fixing the toolchain)."""
    with _memo_lock:
        _plugins.clear()
        _failures.clear()


def _load(op: str) -> types.ModuleType:
    started = time.time()  # a status written after this moment comes from a build we waited for
    problem = None if op in CPU_OPS else _no_cuda_reason()
    if problem:
        raise PluginUnavailable(op, *problem)
    key = cache_key()
    directory = build_dir(op, key)
    name = module_name(op, key)
    lib = directory / f"{name}{LIB_EXT}"
    log_path = directory / LOG_FILE

    status = _read_status(directory)
    if status and status.get("kind") == "selftest" and status.get("state") == "failed" and lib.exists():
        # Built, then failed its self-test: the same sources would give the same binary; no rebuild.
        raise PluginUnavailable(op, "selftest", status.get("reason", "self-test failed"))
    if status and status.get("state") == "built" and lib.exists():
        try:
            return _import_built(name, lib)  # the common case: built by an earlier run, no toolchain needed
        except Exception as e:  # noqa: BLE001 - a damaged cache entry: build it again below
            log.warning("the cached %s plugin %s does not load (%s); rebuilding it", op, lib, e)

    problem = cpu_toolchain_problem() if op in CPU_OPS else cuda_toolchain_problem()
    if problem:
        raise PluginUnavailable(op, *problem)

    directory.mkdir(parents=True, exist_ok=True)
    try:
        with _exclusive_lock(directory / LOCK_FILE, _lock_timeout()):
            status = _read_status(directory)
            if status and status.get("state") == "built" and lib.exists() and status.get("time", 0) >= started:
                return _import_built(name, lib)  # another process built it while we waited
            if status and status.get("state") == "failed" and status.get("time", 0) >= started:
                # ... or failed while we waited: do not repeat a broken build in every rank.
                raise PluginUnavailable(op, "compile", status.get("reason", "build failed"), log_path)
            return _build_locked(op, key, name, directory, lib, log_path)
    except TimeoutError as e:
        raise PluginUnavailable(op, "lock-timeout", str(e), log_path) from None


def _build_locked(op: str, key: str, name: str, directory: Path, lib: Path, log_path: Path) -> types.ModuleType:
    """Build `op` into `directory`; the caller holds the build lock."""
    (directory / TORCH_BATON).unlink(missing_ok=True)  # left by a killed torch build; we hold the lock
    (directory / STATUS_FILE).unlink(missing_ok=True)
    lib.unlink(missing_ok=True)  # so that ninja links it again (after a damaged cache entry)
    src = directory / "src"
    src.mkdir(exist_ok=True)
    copied = []
    for file_name, data in source_files().items():
        (src / file_name).write_bytes(data)
        if file_name in (f"{op}.cpp", f"{op}.cu"):
            copied.append(src / file_name)
    archs = () if op in CPU_OPS else gpu_archs()
    started = time.time()
    with open(log_path, "w") as f:
        f.write(
            f"# stylegan-anime: building {op} ({name}) for sm {', '.join(archs) or '?'}; pid {os.getpid()}, "
            f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n"
            f"# torch {torch.__version__}, torch CUDA {torch.version.cuda}, nvcc {find_nvcc()}\n"
        )
    log.info("building the %s CUDA plugin (first use; log: %s)", op, log_path)
    try:
        module = _compile(name, directory, sorted(copied), archs, log_path)
    except Exception as e:  # noqa: BLE001 - any failure means "use the reference"
        reason = _failure_reason(e, log_path)
        with open(log_path, "a") as f:
            f.write(f"\n# build failed: {type(e).__name__}: {e}\n")
        _write_status(directory, {"state": "failed", "reason": reason, "time": time.time(), "pid": os.getpid()})
        raise PluginUnavailable(op, "compile", reason, log_path) from e
    _write_status(
        directory,
        {"state": "built", "module": name, "library": str(lib), "seconds": round(time.time() - started, 1),
         "time": time.time(), "pid": os.getpid(), "archs": list(archs)},
    )
    log.info("built the %s CUDA plugin in %.0f s", op, time.time() - started)
    return module


_ERROR_LINE = re.compile(r"\berror\b", re.IGNORECASE)


def _failure_reason(exc: BaseException, log_path: Path) -> str:
    """A one-line reason: the first compiler error line of the log, else the exception's first line."""
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        lines = []
    for line in lines:
        text = line.strip()
        # Skip our own header ('#'), ninja's command echoes ('[1/3] ...') and its summary lines.
        if text.startswith(("#", "[", "FAILED:", "ninja: build stopped")):
            continue
        if _ERROR_LINE.search(text):
            return f"compiler error: {text[:300]}"
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return f"build error: {first[:300]}"


def plugin_status(op: str) -> tuple[str, str]:
    """(state, detail) of `op`'s plugin without building anything.

    state: 'loaded' (in this process), 'built' (cached on disk), 'failed', 'not tried', 'skipped'.
    """
    _check_op(op)
    with _memo_lock:
        if op in _plugins:
            return "loaded", getattr(_plugins[op], "__file__", "") or ""
        if op in _failures:
            e = _failures[op]
            return "failed", e.reason + (f" (log: {e.log_path})" if e.log_path else "")
    problem = None if op in CPU_OPS else _no_cuda_reason()
    if problem:
        return "skipped", problem[1]
    key = cache_key()
    directory = build_dir(op, key)
    status = _read_status(directory) or {}
    if status.get("state") == "built" and (directory / f"{module_name(op, key)}{LIB_EXT}").exists():
        verdict = status.get("selftest") or {}
        if verdict.get("state") == "passed":
            return "built", f"{directory} (self-test passed, max error {verdict.get('max_error', 0):.2g})"
        return "built", f"{directory} (self-test runs on first use)"
    if status.get("state") == "failed" and status.get("kind") == "selftest":
        return "failed", f"{status.get('reason', 'self-test failed')} (cached for this build key: {directory})"
    if status.get("state") == "failed":
        return "failed", f"{status.get('reason', 'build failed')} (log: {directory / LOG_FILE})"
    return "not tried", f"will be built on first use in {directory}"
