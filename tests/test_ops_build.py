"""CPU tests of the CUDA ops' machinery: cache key, build lock, fallback, doctor, the nvcc compile check,
and the kernels' arithmetic run on the CPU through a host emulation of the CUDA sources.

Nothing here needs a GPU. The real GPU tests are in test_ops_cuda.py.

Length: the cases of one module under test, listed in full so that each failure names its case.
"""
from __future__ import annotations

import ctypes
import importlib.util
import json
import multiprocessing
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
import types
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from stylegan_anime import cuda_ops
from stylegan_anime.cuda_ops import backend, bias_act, build, upfirdn2d

REPO = Path(__file__).resolve().parents[1]
OPS_DIR = REPO / "cuda_ops"
TOOL = REPO / "tools" / "check_cuda_compile.py"


@pytest.fixture(autouse=True)
def _clean_state(monkeypatch, tmp_path):
    """Every test: a private ops cache, no memoized plugins or warnings, the default impl restored."""
    monkeypatch.setenv(build.CACHE_ENV, str(tmp_path / "ops-cache"))
    monkeypatch.setenv(build.SELFTEST_ENV, "0")  # the fake plugins below are not real ops; the self-test tests
    saved = backend.get_default_impl()          # at the end turn it on
    backend.reset_state()
    yield
    backend.reset_state()
    backend.set_default_impl(saved)
    backend.set_poison_outputs(False)


# ==========================================================================================================
# Cache key.

SRC = {"a.cu": b"__global__ void k() {}\n", "a.h": b"#pragma once\n", "a.cpp": b"// binding\n"}
BASE = dict(torch_version="2.13.0", cuda_version="12.4", archs=("9.0",), python_version="3.11")


def test_cache_key_is_stable():
    k = build.cache_key(SRC, **BASE)
    assert re.fullmatch(r"[0-9a-f]{20}", k)
    assert build.cache_key(dict(reversed(list(SRC.items()))), **BASE) == k  # order of files is irrelevant
    assert build.cache_key(dict(SRC), **{**BASE, "archs": ["9.0"]}) == k
    assert build.cache_key(SRC, **{**BASE, "archs": ("9.0", "8.0")}) == build.cache_key(
        SRC, **{**BASE, "archs": ("8.0", "9.0")}
    )
    # This process's values: stable across calls, and equal to passing them explicitly.
    assert build.cache_key() == build.cache_key()
    assert build.cache_key() == build.cache_key(
        build.source_files(), torch.__version__, torch.version.cuda, build.gpu_archs(), "%d.%d" % sys.version_info[:2]
    )


@pytest.mark.parametrize(
    "change",
    [
        lambda s, m: ({**s, "a.cu": s["a.cu"][:-2] + b"}\t"}, m),  # one source byte
        lambda s, m: ({**s, "a.h": s["a.h"] + b" "}, m),  # a header byte
        lambda s, m: ({"b.cu" if k == "a.cu" else k: v for k, v in s.items()}, m),  # a renamed file
        lambda s, m: ({**s, "new.cu": b""}, m),  # an added file
        lambda s, m: (s, {**m, "torch_version": "2.13.1"}),
        lambda s, m: (s, {**m, "cuda_version": "12.8"}),
        lambda s, m: (s, {**m, "archs": ("8.0",)}),
        lambda s, m: (s, {**m, "archs": ("8.0", "9.0")}),
        lambda s, m: (s, {**m, "python_version": "3.12"}),
    ],
)
def test_cache_key_changes(change):
    src, meta = change(dict(SRC), dict(BASE))
    assert build.cache_key(src, **meta) != build.cache_key(SRC, **BASE)


def test_cache_key_follows_the_real_sources(tmp_path):
    copy = tmp_path / "ops"
    shutil.copytree(OPS_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    files = build.source_files(copy)
    assert {"bias_act.h", "bias_act.cpp", "bias_act.cu", "upfirdn2d.h", "upfirdn2d.cpp", "upfirdn2d.cu"} <= set(files)
    assert not any(name.endswith(".py") for name in files)
    key = build.cache_key(files, **BASE)
    (copy / "build.py").write_text("# python files are not part of the key\n")
    assert build.cache_key(build.source_files(copy), **BASE) == key
    cu = copy / "upfirdn2d.cu"
    cu.write_bytes(cu.read_bytes().replace(b"kBlock = 256", b"kBlock = 128"))
    assert build.cache_key(build.source_files(copy), **BASE) != key


def test_cache_location(monkeypatch, tmp_path):
    monkeypatch.setenv(build.CACHE_ENV, str(tmp_path / "c"))
    assert build.cache_root() == tmp_path / "c"
    assert build.build_dir("upfirdn2d", "abc") == tmp_path / "c" / "upfirdn2d-abc"
    monkeypatch.delenv(build.CACHE_ENV)
    assert build.cache_root() == Path.home() / ".cache" / "stylegan-anime" / "ops"
    with pytest.raises(ValueError, match="unknown op"):
        build.build_dir("conv2d", "abc")


# ==========================================================================================================
# Build, lock and fallback with a fake toolchain. The compiler is replaced, the rest is the real code.


def _pretend_toolchain(mp) -> None:
    """Make this CPU process look like one with a GPU and a CUDA toolchain (sm_80)."""
    mp.setattr(build, "_no_cuda_reason", lambda: None)
    mp.setattr(build, "cuda_toolchain_problem", lambda: None)
    mp.setattr(build, "gpu_archs", lambda: ("8.0",))


def _fake_compile_ok(record: Path | None = None, sleep: float = 0.0):
    def compile_(name, directory, sources, archs, log_path):
        assert not (directory / build.TORCH_BATON).exists(), "a stale torch baton must be gone before building"
        op = directory.name.split("-")[0]
        assert [s.name for s in sources] == [f"{op}.cpp", f"{op}.cu"] and all(s.parent.name == "src" for s in sources)
        time.sleep(sleep)
        with open(log_path, "a") as f:
            f.write("[1/3] nvcc ... fake\n")
        (directory / f"{name}{build.LIB_EXT}").write_bytes(b"fake library")
        if record is not None:
            with open(record, "a") as f:
                f.write(f"{os.getpid()} {time.time()}\n")
        return types.SimpleNamespace(how="built", name=name)

    return compile_


def _fake_import(name, path):
    return types.SimpleNamespace(how="loaded", name=name, path=str(path))


def _fake_compile_error(name, directory, sources, archs, log_path):
    with open(log_path, "a") as f:
        f.write(f"[1/3] nvcc -c {sources[-1]}\n{sources[-1]}(3): error: identifier \"boom\" is undefined\n")
        f.write("ninja: build stopped: subcommand failed.\n")
    raise RuntimeError(f"Error building extension '{name}'")


def test_build_once_then_load_from_cache(monkeypatch):
    _pretend_toolchain(monkeypatch)
    monkeypatch.setattr(build, "_compile", _fake_compile_ok())
    monkeypatch.setattr(build, "_import_built", _fake_import)
    assert build.plugin_status("bias_act")[0] == "not tried"
    first = build.get_plugin("bias_act")
    assert first.how == "built"
    assert build.get_plugin("bias_act") is first  # memoized in the process
    assert build.plugin_status("bias_act")[0] == "loaded"
    directory = build.build_dir("bias_act")
    status = json.loads((directory / build.STATUS_FILE).read_text())
    assert status["state"] == "built" and status["archs"] == ["8.0"]
    assert sorted(p.name for p in (directory / "src").iterdir()) == sorted(build.source_files())
    assert (directory / build.LOG_FILE).read_text().startswith("# stylegan-anime: building bias_act")
    build.reset()  # a new process: the cache is used, nothing is compiled
    monkeypatch.setattr(build, "_compile", lambda *a: pytest.fail("rebuilt a cached plugin"))
    assert build.plugin_status("bias_act")[0] == "built"
    assert build.get_plugin("bias_act").how == "loaded"


def _race_child(cache: str, record: str, result: str, barrier) -> None:
    """One 'rank': pretend to have a GPU, build (slowly) or load the bias_act plugin."""
    os.environ[build.CACHE_ENV] = cache
    build._no_cuda_reason = lambda: None
    build.cuda_toolchain_problem = lambda: None
    build.gpu_archs = lambda: ("8.0",)
    build._compile = _fake_compile_ok(Path(record), sleep=1.5)
    build._import_built = _fake_import
    barrier.wait()
    module = build.get_plugin("bias_act")
    Path(result).write_text(json.dumps({"how": module.how, "done": time.time()}))


def test_two_processes_race_one_builds_the_other_waits_and_loads(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    cache, record = tmp_path / "shared-cache", tmp_path / "compiles.txt"
    procs = [
        ctx.Process(target=_race_child, args=(str(cache), str(record), str(tmp_path / f"r{i}.json"), barrier))
        for i in range(2)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    results = sorted((json.loads((tmp_path / f"r{i}.json").read_text()) for i in range(2)), key=lambda r: r["how"])
    assert [r["how"] for r in results] == ["built", "loaded"]
    compiles = record.read_text().splitlines()
    assert len(compiles) == 1  # exactly one compile ...
    assert results[1]["done"] >= float(compiles[0].split()[1])  # ... and the other loaded only after it


_HOLD_LOCK = (
    "import fcntl, os, sys, time\n"
    "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
    "fcntl.flock(fd, fcntl.LOCK_EX)\n"
    "os.pwrite(fd, str(os.getpid()).encode(), 0)\n"
    "print('locked', flush=True)\n"
    "time.sleep(600)\n"
)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX only")
def test_stale_lock_of_a_killed_build_does_not_hang(monkeypatch):
    _pretend_toolchain(monkeypatch)
    directory = build.build_dir("upfirdn2d")
    directory.mkdir(parents=True)
    # A builder takes the lock and is killed mid-build; it also leaves torch's own baton file behind.
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(directory / build.LOCK_FILE)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        (directory / build.TORCH_BATON).write_text("")
        holder.send_signal(signal.SIGKILL)
        holder.wait(30)
    finally:
        holder.kill()
    assert (directory / build.LOCK_FILE).read_text() == str(holder.pid)  # the file stays, its lock does not
    monkeypatch.setenv(build.LOCK_TIMEOUT_ENV, "60")
    monkeypatch.setattr(build, "_compile", _fake_compile_ok())  # asserts the baton is gone
    start = time.monotonic()
    assert build.get_plugin("upfirdn2d").how == "built"
    assert time.monotonic() - start < 10


def test_lock_held_by_a_live_process_times_out_with_a_reason(monkeypatch):
    _pretend_toolchain(monkeypatch)
    monkeypatch.setenv(build.LOCK_TIMEOUT_ENV, "0.5")
    monkeypatch.setattr(build, "_compile", lambda *a: pytest.fail("built without the lock"))
    directory = build.build_dir("bias_act")
    directory.mkdir(parents=True)
    start = time.monotonic()
    with build._exclusive_lock(directory / build.LOCK_FILE, 1.0):  # another open file: conflicts like a process
        with pytest.raises(build.PluginUnavailable) as e:
            build.get_plugin("bias_act")
    assert time.monotonic() - start < 5
    assert e.value.kind == "lock-timeout"
    assert f"held by pid {os.getpid()}" in str(e.value) and build.LOCK_TIMEOUT_ENV in str(e.value)


def test_failure_seen_while_waiting_is_reused_but_a_later_run_retries(monkeypatch):
    _pretend_toolchain(monkeypatch)
    directory = build.build_dir("bias_act")
    directory.mkdir(parents=True)
    calls = []
    monkeypatch.setattr(build, "_compile", lambda *a: calls.append(1) or _fake_compile_ok()(*a))
    # A failure recorded after this process started waiting (here: in the future) is taken as is.
    build._write_status(directory, {"state": "failed", "reason": "compiler error: x", "time": time.time() + 5})
    with pytest.raises(build.PluginUnavailable, match="compiler error: x"):
        build.get_plugin("bias_act")
    assert not calls
    # An old failure is retried by a new run.
    build.reset()
    build._write_status(directory, {"state": "failed", "reason": "compiler error: x", "time": time.time() - 5})
    assert build.get_plugin("bias_act").how == "built"
    assert calls == [1]


def test_damaged_cache_entry_is_rebuilt(monkeypatch):
    _pretend_toolchain(monkeypatch)
    calls = []
    monkeypatch.setattr(build, "_compile", lambda *a: calls.append(1) or _fake_compile_ok()(*a))
    monkeypatch.setattr(build, "_import_built", _fake_import)
    build.get_plugin("bias_act")
    build.reset()

    def broken(name, path):
        raise ImportError(f"{path}: undefined symbol: _ZN3c104cuda")

    monkeypatch.setattr(build, "_import_built", broken)
    assert build.get_plugin("bias_act").how == "built"
    assert calls == [1, 1]


def test_unusable_cache_directory_falls_back(monkeypatch, tmp_path):
    _pretend_toolchain(monkeypatch)
    _pretend_cuda_tensors(monkeypatch)
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv(build.CACHE_ENV, str(tmp_path / "a-file" / "ops"))  # cannot be created
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert backend.resolve_impl("auto", torch.zeros(2), op="bias_act") == "ref"
    assert len(caught) == 1 and "NotADirectoryError" in str(caught[0].message)
    with pytest.raises(RuntimeError, match="NotADirectoryError"):
        backend.resolve_impl("cuda", torch.zeros(2), op="bias_act")


def _pretend_cuda_tensors(mp) -> None:
    mp.setattr(backend, "_is_cuda", lambda x: True)


def test_auto_on_cpu_tensors_is_ref_without_trying_or_warning(monkeypatch):
    monkeypatch.setattr(build, "get_plugin", lambda op: pytest.fail("tried to build for a CPU tensor"))
    x = torch.randn(2, 3, 4, 4)
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert backend.resolve_impl("auto", x) == "ref"
        assert backend.resolve_impl(None, x, op="bias_act") == "ref"
        bias_act.bias_act(x, torch.zeros(3), act="lrelu", impl="auto")
        upfirdn2d.upsample2d(x, f, impl="auto")
        upfirdn2d.downsample2d(x, f)  # impl=None: the default, 'auto'


def test_auto_with_a_failing_build_falls_back_with_one_warning(monkeypatch):
    _pretend_toolchain(monkeypatch)
    _pretend_cuda_tensors(monkeypatch)
    monkeypatch.setattr(build, "_compile", _fake_compile_error)
    x = torch.randn(2, 3, 4, 4)
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert backend.resolve_impl("auto", x, op="bias_act") == "ref"
        y = bias_act.bias_act(x, torch.zeros(3), act="lrelu")
        upfirdn2d.upsample2d(x, f)  # the other plugin fails too: still no second warning
        assert backend.resolve_impl("auto", x) == "ref"
    torch.testing.assert_close(y, bias_act.bias_act(x, torch.zeros(3), act="lrelu", impl="ref"))
    ours = [w for w in caught if issubclass(w.category, backend.OpsFallbackWarning)]
    assert len(ours) == 1, [str(w.message) for w in caught]
    msg = str(ours[0].message)
    log_path = build.build_dir("bias_act") / build.LOG_FILE
    assert 'compiler error: ' in msg and 'identifier "boom" is undefined' in msg
    assert str(log_path) in msg and log_path.exists()
    assert build.plugin_status("bias_act")[0] == "failed"
    assert build.plugin_status("upfirdn2d")[0] == "failed"


def test_cuda_with_a_failing_build_raises_the_reason(monkeypatch):
    _pretend_toolchain(monkeypatch)
    _pretend_cuda_tensors(monkeypatch)
    monkeypatch.setattr(build, "_compile", _fake_compile_error)
    x = torch.randn(2, 3, 4, 4)
    log_path = str(build.build_dir("bias_act") / build.LOG_FILE)
    for call in [lambda: backend.resolve_impl("cuda", x, op="bias_act"),
                 lambda: bias_act.bias_act(x, impl="cuda")]:
        with pytest.raises(RuntimeError) as e:
            call()
        assert 'identifier "boom" is undefined' in str(e.value) and log_path in str(e.value)
        assert "impl='ref'" in str(e.value)
    # The failure is remembered: no second build in this process.
    monkeypatch.setattr(build, "_compile", lambda *a: pytest.fail("retried in the same process"))
    with pytest.raises(RuntimeError, match="boom"):
        backend.resolve_impl("cuda", x, op="bias_act")


def test_cuda_on_this_machine_says_why(monkeypatch):
    x = torch.zeros(1, 1, 4, 4)
    with pytest.raises(RuntimeError, match="CUDA tensors only, but x is on cpu"):
        backend.resolve_impl("cuda", x)
    with pytest.raises(RuntimeError, match="CUDA tensors only"):
        upfirdn2d.upfirdn2d(x, None, impl="cuda")
    # A (pretend) CUDA tensor on a machine whose torch cannot build: the toolchain reason.
    _pretend_cuda_tensors(monkeypatch)
    monkeypatch.setattr(build, "_no_cuda_reason", lambda: ("no-nvcc", "nvcc not found: install the CUDA toolkit"))
    with pytest.raises(RuntimeError, match="nvcc not found"):
        bias_act.bias_act(x, impl="cuda")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert backend.resolve_impl("auto", x) == "ref"
    assert len(caught) == 1 and "nvcc not found" in str(caught[0].message)


def test_unsupported_calls_take_ref_under_auto(monkeypatch):
    _pretend_cuda_tensors(monkeypatch)
    monkeypatch.setattr(build, "get_plugin", lambda op: types.SimpleNamespace())
    x = torch.zeros(1, 2, 4, 4)
    assert backend.resolve_impl("auto", x, op="upfirdn2d") == "cuda"
    assert backend.resolve_impl("auto", x, op="upfirdn2d", unsupported="no") == "ref"
    with pytest.raises(RuntimeError, match="cannot run this call: no"):
        backend.resolve_impl("cuda", x, op="upfirdn2d", unsupported="no")
    assert "filter" in upfirdn2d._cuda_unsupported(x, torch.ones(2, requires_grad=True))
    assert upfirdn2d._cuda_unsupported(x, torch.ones(2)) is None
    assert "float8" in bias_act._cuda_unsupported(torch.zeros(2, dtype=torch.float8_e4m3fn))
    assert "no activation 'gelu'" in bias_act._cuda_unsupported(x, "gelu")
    # Every activation of the table has a kernel, with the kernel's id (BiasActKind in bias_act.h).
    assert set(bias_act._CUDA_ACTS) == set(bias_act.ACTIVATIONS)
    header = (OPS_DIR / "bias_act.h").read_text()
    for name, (act_id, _, _) in bias_act._CUDA_ACTS.items():
        kind = "kAct" + {"lrelu": "Lrelu", "selu": "Selu"}.get(name, name.capitalize())
        assert re.search(rf"\b{kind} = {act_id},", header), name


def test_doctor_report_on_cpu(monkeypatch):
    def compile_(name, *a):  # `doctor --build` builds the CPU plugins (--ops cpu) on any machine, never the CUDA ones
        if not any(f"_{op}_" in name for op in build.CPU_OPS):
            pytest.fail(f"the doctor built {name} without a GPU")
        return types.SimpleNamespace()

    monkeypatch.setattr(build, "_compile", compile_)
    for try_build in (False, True) if not torch.cuda.is_available() else (False,):
        rows = cuda_ops.doctor_report(try_build=try_build)
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in rows)
        report = dict(rows)
        for item in ["torch", "torch CUDA", "CUDA available", "nvcc", "ninja", "C++ compiler", "op bias_act",
                     "op upfirdn2d", "training path"]:
            assert item in report
        if not torch.cuda.is_available():
            assert report["CUDA available"] == "no"
            assert report["op bias_act"].startswith("skipped")
            assert report["training path"].startswith("ref")
        assert report["nvcc"] == "not found (set CUDA_HOME or put the CUDA toolkit's bin/ on PATH)" or (
            "nvcc" in report["nvcc"]
        )
    backend.set_default_impl("ref")
    assert dict(cuda_ops.doctor_report())["training path"].startswith("ref (the reference ops were chosen")


# ==========================================================================================================
# The nvcc compile check (tools/check_cuda_compile.py).


def _load_tool():
    spec = importlib.util.spec_from_file_location("check_cuda_compile", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_compile_check_discovery_and_command():
    tool = _load_tool()
    assert [p.name for p in tool.discover_sources()] == ["bias_act.cu", "upfirdn2d.cu"]
    src = OPS_DIR / "bias_act.cu"
    cmd = tool.nvcc_command("/opt/nvcc", src, Path("/tmp/out/bias_act.o"), include_dirs=["/torch/include"])
    assert cmd[:3] == ["/opt/nvcc", "-c", "-std=c++17"]
    joined = " ".join(cmd)
    assert "-gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90" in joined
    assert f"-I /torch/include -I {OPS_DIR}" in joined
    assert cmd[-3:] == [str(src), "-o", "/tmp/out/bias_act.o"]
    jit = tool.nvcc_command("nvcc", src, Path("o"), archs=("75",), include_dirs=[], jit_flags=True)
    assert "-std=c++20" in jit and "-D__CUDA_NO_HALF_OPERATORS__" in jit and "arch=compute_75,code=sm_75" in jit
    inc = tool.torch_include_dirs()
    assert (Path(inc[0]) / "c10" / "util" / "Half.h").exists()


def test_compile_check_without_nvcc(monkeypatch, capsys):
    tool = _load_tool()
    monkeypatch.setattr(tool, "find_nvcc", lambda explicit=None: None)
    assert tool.main([]) == 0
    assert capsys.readouterr().out.strip() == "check_cuda_compile: skipped: no nvcc"


NVCC = _load_tool().find_nvcc()
needs_nvcc = pytest.mark.skipif(NVCC is None, reason="nvcc not found")


@needs_nvcc
def test_compile_check_compiles_a_kernel(capsys):
    """One real file here (about 8 s); CI's `python tools/check_cuda_compile.py` compiles all of them."""
    tool = _load_tool()
    assert tool.main([str(OPS_DIR / "upfirdn2d.cu")]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^ok +cuda_ops/upfirdn2d\.cu +\[nvcc: sm_80, sm_90\]", out, re.M), out


@needs_nvcc
def test_compile_check_reports_a_compiler_error(tmp_path, capsys):
    tool = _load_tool()
    bad = tmp_path / "broken.cu"
    bad.write_text('#include <c10/util/Half.h>\n__global__ void k(c10::Half* p) { p[0] = undefined_name; }\n')
    assert tool.main(["--arch", "80", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "undefined_name" in out and "0/1 ok" in out


# ==========================================================================================================
# The kernels' arithmetic on the CPU: the .cu files compiled as plain C++ (CUDA keywords stubbed, each
# launch run as a loop over blocks and threads with a grid of at most 3 blocks, so the grid-stride loops
# run too), behind a Python stand-in for the host bindings (*.cpp) that allocates, NaN-poisons and checks
# layouts the same way. The autograd Functions in bias_act.py / upfirdn2d.py run unchanged on top.

_EMU_PRELUDE = r"""
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
typedef int cudaError_t;
typedef void* cudaStream_t;
static const cudaError_t cudaSuccess = 0;
struct SgaEmuDim3 { unsigned int x = 1, y = 1, z = 1; };
inline SgaEmuDim3 blockIdx, threadIdx, blockDim, gridDim;
inline cudaError_t cudaGetLastError() { return cudaSuccess; }
using std::max;
using std::min;
namespace sga_emu {
template <class Body>
void launch(long long blocks, int threads, Body&& body) {
    if (blocks > 3) blocks = 3;
    gridDim.x = static_cast<unsigned int>(blocks);
    blockDim.x = static_cast<unsigned int>(threads);
    for (long long b = 0; b < blocks; ++b)
        for (int t = 0; t < threads; ++t) {
            blockIdx.x = static_cast<unsigned int>(b);
            threadIdx.x = static_cast<unsigned int>(t);
            body();
        }
}
}  // namespace sga_emu
"""

_EMU_ENTRY = r"""
#include "bias_act.h"
#include "upfirdn2d.h"
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#define SGA_DISPATCH(fn, P)                                                            \
    extern "C" int sga_emu_##fn(int dtype, const sga::P* p) {                           \
        switch (dtype) {                                                               \
            case 0: return sga::launch_##fn<float>(*p, nullptr);                       \
            case 1: return sga::launch_##fn<double>(*p, nullptr);                      \
            case 2: return sga::launch_##fn<c10::Half>(*p, nullptr);                   \
            case 3: return sga::launch_##fn<c10::BFloat16>(*p, nullptr);               \
        }                                                                              \
        return -1;                                                                     \
    }
SGA_DISPATCH(bias_act, BiasActParams)
SGA_DISPATCH(upfirdn2d, Upfirdn2dParams)
extern "C" int sga_emu_sizeof(int which) {
    return which == 0 ? (int)sizeof(sga::BiasActParams) : (int)sizeof(sga::Upfirdn2dParams);
}
"""

_LAUNCH = re.compile(r"([\w:]+<[\w:]+>)<<<(.*?)>>>\((.*?)\);")

_c64, _cint, _cdbl, _cptr = ctypes.c_int64, ctypes.c_int, ctypes.c_double, ctypes.c_void_p


class _BiasActParams(ctypes.Structure):  # mirrors sga::BiasActParams
    _fields_ = [(n, _cptr) for n in ("x", "b", "xref", "yref", "dy", "y")] + [
        ("mode", _cint), ("act", _cint), ("alpha", _cdbl), ("gain", _cdbl), ("clamp", _cdbl),
        ("size_x", _c64), ("size_b", _c64), ("step_b", _c64)]


class _Upfirdn2dParams(ctypes.Structure):  # mirrors sga::Upfirdn2dParams
    _fields_ = [(n, _cptr) for n in ("x", "f", "y")] + [
        (n, _c64) for n in ("x_stride_n", "x_stride_c", "x_stride_h", "x_stride_w",
                            "y_stride_n", "y_stride_c", "y_stride_h", "y_stride_w")] + [
        (n, _cint) for n in ("n", "c", "in_h", "in_w", "out_h", "out_w", "up_x", "up_y", "down_x", "down_y",
                             "pad_x0", "pad_y0", "filter_h", "filter_w", "flip", "channels_inner")] + [
        ("scale", _cdbl), ("size_y", _c64)]


_DTYPE_IDS = {torch.float32: 0, torch.float64: 1, torch.float16: 2, torch.bfloat16: 3}


def _ptr(t):
    return None if t is None else t.data_ptr()


class _EmulatedPlugins:
    """Stand-ins for the compiled modules: same functions and arguments as bias_act.cpp / upfirdn2d.cpp."""

    def __init__(self, lib):
        self.lib = lib
        self.bias_act_module = types.SimpleNamespace(bias_act=self.bias_act)
        self.upfirdn2d_module = types.SimpleNamespace(upfirdn2d=self.upfirdn2d)

    def bias_act(self, x, b, xref, yref, dy, mode, dim, act, alpha, gain, clamp, poison=False):
        assert x.dtype in _DTYPE_IDS and bias_act._is_dense(x) and 0 <= dim < x.ndim
        for t in (xref, yref, dy):  # the binding rejects any other layout
            assert t is None or (t.shape == x.shape and t.stride() == x.stride() and t.dtype == x.dtype)
        assert b is None or (b.ndim == 1 and b.shape[0] == x.shape[dim] and b.is_contiguous() and b.dtype == x.dtype)
        if mode > 0:
            needs_x = act in (5, 6, 7, 8) or (act == 2 and alpha < 0)
            assert (not needs_x or xref is not None) and (act == 0 or xref is not None or yref is not None)
            assert clamp < 0 or xref is not None or yref is not None
            assert mode != 2 or dy is not None
        y = torch.empty_like(x)
        if poison:
            y.fill_(float("nan"))
        p = _BiasActParams(_ptr(x), _ptr(b), _ptr(xref), _ptr(yref), _ptr(dy), _ptr(y), mode, act, alpha, gain,
                           clamp, x.numel(), x.shape[dim] if b is not None else 1,
                           x.stride(dim) if b is not None and x.shape[dim] > 1 else 1)
        assert self.lib.sga_emu_bias_act(_DTYPE_IDS[x.dtype], ctypes.byref(p)) == 0
        return y

    def upfirdn2d(self, x, f, upx, upy, downx, downy, px0, px1, py0, py1, flip, scale, poison=False):
        assert x.dtype in _DTYPE_IDS and x.ndim == 4
        assert f.ndim == 2 and f.is_contiguous() and f.dtype == (torch.float64 if x.dtype == torch.float64
                                                                 else torch.float32)
        N, C, H, W = x.shape
        fh, fw = f.shape
        assert W * upx + px0 + px1 >= fw and H * upy + py0 + py1 >= fh
        out_w, out_h = (W * upx + px0 + px1 - fw) // downx + 1, (H * upy + py0 + py1 - fh) // downy + 1
        cl = not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
        y = torch.empty([N, C, out_h, out_w], dtype=x.dtype,
                        memory_format=torch.channels_last if cl else torch.contiguous_format)
        if poison:
            y.fill_(float("nan"))
        p = _Upfirdn2dParams(_ptr(x), _ptr(f), _ptr(y), *x.stride(), *y.stride(), N, C, H, W, out_h, out_w,
                             upx, upy, downx, downy, px0, py0, fh, fw, int(flip), int(cl), scale, y.numel())
        assert self.lib.sga_emu_upfirdn2d(_DTYPE_IDS[x.dtype], ctypes.byref(p)) == 0
        return y


def build_emulation(out: Path) -> _EmulatedPlugins:
    """Compile the .cu files for the CPU emulation into `out` (skips the calling test without a compiler).

    Also used by test_ops_cuda.py under STYLEGAN_ANIME_OPS_TEST_EMULATE=1.
    """
    cxx = shutil.which(os.environ.get("CXX", "c++")) or shutil.which("g++") or shutil.which("clang++")
    if cxx is None:
        pytest.skip("no C++ compiler for the kernel emulation")
    (out / "stub").mkdir()
    (out / "stub" / "cuda_runtime.h").write_text(_EMU_PRELUDE)
    (out / "stub" / "cuda_runtime_api.h").write_text('#pragma once\n#include "cuda_runtime.h"\n')
    sources = []
    for cu in sorted(OPS_DIR.glob("*.cu")):
        text, n = _LAUNCH.subn(
            lambda m: "::sga_emu::launch({0}, {1}, [&] {{ {2}({3}); }});".format(
                *[a.strip() for a in m.group(2).split(",")[:2]], m.group(1), m.group(3)),
            cu.read_text())
        assert n == 1, f"expected one kernel launch in {cu.name}"
        (out / f"{cu.stem}_emu.cpp").write_text(text)
        sources.append(str(out / f"{cu.stem}_emu.cpp"))
    (out / "entry.cpp").write_text(_EMU_ENTRY)
    lib_path = out / "kernels_emu.so"
    torch_inc = Path(torch.__file__).parent / "include"
    cmd = [cxx, "-std=c++17", "-O1", "-shared", "-fPIC", "-I", str(out / "stub"), "-I", str(OPS_DIR),
           "-I", str(torch_inc), *sources, str(out / "entry.cpp"), "-o", str(lib_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lib = ctypes.CDLL(str(lib_path))
    assert lib.sga_emu_sizeof(0) == ctypes.sizeof(_BiasActParams)
    assert lib.sga_emu_sizeof(1) == ctypes.sizeof(_Upfirdn2dParams)
    return _EmulatedPlugins(lib)


@pytest.fixture(scope="module")
def emulated(tmp_path_factory):
    return build_emulation(tmp_path_factory.mktemp("kernel-emulation"))


@pytest.fixture
def emu(emulated, monkeypatch):
    """impl='cuda' on CPU tensors runs the emulated kernels, with NaN-poisoned outputs."""
    monkeypatch.setattr(backend, "_is_cuda", lambda x: True)
    plugins = {"bias_act": emulated.bias_act_module, "upfirdn2d": emulated.upfirdn2d_module}
    monkeypatch.setattr(build, "get_plugin", lambda op: plugins[op])
    backend.set_poison_outputs(True)
    return emulated


# Tolerances of a kernel result in `dtype` against the float32/float64 reference on the same inputs.
TOL = {torch.float64: (1e-10, 1e-10), torch.float32: (2e-5, 2e-5), torch.float16: (2e-3, 2e-3),
       torch.bfloat16: (1.6e-2, 1.6e-2)}
ACTS = list(bias_act.ACTIVATIONS)
LAYOUTS = {  # name: (make x from a contiguous float64 tensor of shape [2, 5, 3, 4], dim)
    "nchw": (lambda t: t, 1),
    "channels_last": (lambda t: t.to(memory_format=torch.channels_last), 1),
    "nlc": (lambda t: t.reshape(2, 5, 12).permute(0, 2, 1), 2),  # a permuted (dense, non-contiguous) view
    "sliced": (lambda t: t[:, :, :, :3], 1),  # not dense: made contiguous first
    "nc": (lambda t: t.reshape(10, 12), 1),
}


def _ref_bias_act(x, b, dim, act, kw):
    return bias_act.bias_act(x, b, dim=dim, act=act, impl="ref", **kw)


@pytest.mark.parametrize("act", ACTS)
def test_emulated_bias_act_forward_backward(emu, act):
    gen = torch.Generator().manual_seed(ACTS.index(act))
    for dtype in [torch.float64, torch.float32, torch.float16, torch.bfloat16]:
        rtol, atol = TOL[dtype]
        wide = torch.float64 if dtype == torch.float64 else torch.float32
        for layout, (make, dim) in LAYOUTS.items():
            base = torch.randn([2, 5, 3, 4], generator=gen, dtype=torch.float64) * 2
            x = make(base.to(dtype))
            b = torch.randn([x.shape[dim]], generator=gen, dtype=torch.float64).to(dtype)
            dy = torch.randn(x.shape, generator=gen, dtype=torch.float64).to(dtype)
            for bias, kw in [(b, {}), (None, dict(gain=0.7)), (b, dict(clamp=1.1)), (b, dict(alpha=0.3, gain=2.0))]:
                xg = x.detach().clone().requires_grad_(True)
                bg = None if bias is None else bias.detach().clone().requires_grad_(True)
                y = bias_act.bias_act(xg, bg, dim=dim, act=act, impl="cuda", **kw)
                assert y.dtype == dtype and y.shape == x.shape
                assert not torch.isnan(y).any(), (act, dtype, layout, kw)
                grads = torch.autograd.grad(y, [xg] + ([bg] if bg is not None else []), dy)
                # The reference, in the wide dtype on the same (rounded) inputs.
                xr = x.detach().to(wide).requires_grad_(True)
                br = None if bias is None else bias.detach().to(wide).requires_grad_(True)
                yr = _ref_bias_act(xr, br, dim, act, kw)
                ref_grads = torch.autograd.grad(yr, [xr] + ([br] if br is not None else []), dy.to(wide))
                msg = f"{act} {dtype} {layout} {kw}"
                torch.testing.assert_close(y.to(wide), yr, rtol=rtol, atol=atol, msg=msg)
                if kw.get("clamp") is not None and dtype in (torch.float16, torch.bfloat16):
                    continue  # the rounded y may land on the clamp edge: masks can differ there
                scale = 1 + float(dy.abs().max())
                for g, r in zip(grads, ref_grads):
                    n = r.numel() // g.shape[0] if g.ndim == 1 else 1  # db sums n terms
                    torch.testing.assert_close(g.to(wide), r, rtol=rtol * 4, atol=atol * 4 * scale * n, msg=msg)


@pytest.mark.parametrize(
    "act, kw",
    [("linear", {}), ("relu", dict(clamp=1.0)), ("lrelu", {}), ("lrelu", dict(alpha=-0.3)),
     ("lrelu", dict(alpha=0.1, gain=2.0, clamp=1.0)), ("tanh", dict(clamp=0.7)), ("sigmoid", {}), ("elu", dict(alpha=0.7)),
     ("selu", {}), ("softplus", dict(gain=1.3)), ("swish", dict(clamp=1.0))],
)
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_emulated_bias_act_gradcheck(emu, act, kw, layout):
    gen = torch.Generator().manual_seed(13)
    # |x| >= 0.4 and |b| <= 0.1: away from the kinks at 0 (and from the clamp edges, checked below).
    x = torch.rand([2, 3, 2, 2], generator=gen, dtype=torch.float64) + 0.4
    x = x * (torch.randint(0, 2, x.shape, generator=gen) * 2 - 1)
    x = LAYOUTS[layout][0](x)
    b = (torch.rand([3], generator=gen, dtype=torch.float64) - 0.5) * 0.2
    if kw.get("clamp") is not None:
        y = _ref_bias_act(x, b, 1, act, {k: v for k, v in kw.items() if k != "clamp"})
        assert (y.abs() - kw["clamp"]).abs().min() > 0.01
    x.requires_grad_(True)
    b.requires_grad_(True)
    fn = lambda x, b: bias_act.bias_act(x, b, dim=1, act=act, impl="cuda", **kw)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, b))
    assert torch.autograd.gradgradcheck(fn, (x, b))


def test_emulated_bias_act_third_order_is_refused(emu):
    x = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    y = bias_act.bias_act(x, act="softplus", impl="cuda")
    (g,) = torch.autograd.grad(y.sum(), x, create_graph=True)
    (gg,) = torch.autograd.grad(g.sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="up to second order"):
        torch.autograd.grad(gg.sum(), x)


def _plain_upfirdn2d(x, f, up, down, pad, flip, gain):
    """Independent of both implementations: zero insertion, F.pad, a dense conv2d, stride slicing."""
    (ux, uy), (dx, dy) = up, down
    N, C, H, W = x.shape
    f2 = (torch.outer(f, f) if f.ndim == 1 else f).to(x.dtype)
    u = x.new_zeros([N, C, H * uy, W * ux])
    u[:, :, ::uy, ::ux] = x
    u = F.pad(u, list(pad))
    k = (f2 if flip else f2.flip([0, 1])) * (gain * ux * uy)
    return F.conv2d(u, k[None, None].expand(C, 1, *k.shape).contiguous(), groups=C)[:, :, ::dy, ::dx]


def test_emulated_upfirdn2d_random_sweep(emu):
    rng = random.Random(4321)
    gen = torch.Generator().manual_seed(4321)
    checked = 0
    scalings = [1, 2, 4, (1, 2), (2, 1), (4, 2), (3, 1)]
    while checked < 150:
        up, down = rng.choice(scalings), rng.choice(scalings)
        ux, uy = (up, up) if isinstance(up, int) else up
        N, C, H, W = rng.randint(1, 2), rng.randint(1, 3), rng.randint(1, 7), rng.randint(1, 7)
        if rng.random() < 0.5:
            f = torch.rand([rng.randint(1, 6)], generator=gen, dtype=torch.float64) + 0.1
        else:
            f = torch.rand([rng.randint(1, 5), rng.randint(1, 5)], generator=gen, dtype=torch.float64) - 0.3
        fh, fw = (f.shape[0], f.shape[0]) if f.ndim == 1 else f.shape
        pad = tuple(rng.randint(-3, 4) for _ in range(4))
        if min(pad[0], 0) + min(pad[1], 0) <= -W * ux or min(pad[2], 0) + min(pad[3], 0) <= -H * uy:
            continue
        if W * ux + pad[0] + pad[1] < fw or H * uy + pad[2] + pad[3] < fh:
            continue
        flip, gain = rng.random() < 0.5, rng.choice([1.0, 0.5, -2.0])
        x = torch.randn([N, C, H, W], generator=gen, dtype=torch.float64)
        if rng.random() < 0.3:
            x = x.to(memory_format=torch.channels_last)
        kw = dict(up=up, down=down, padding=pad, flip_filter=flip, gain=gain)
        got = upfirdn2d.upfirdn2d(x, f, impl="cuda", **kw)
        want = _plain_upfirdn2d(x, f, (ux, uy), (down, down) if isinstance(down, int) else down, pad, flip, gain)
        assert got.shape == want.shape, kw
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10, msg=str(kw))
        checked += 1


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("layout", ["nchw", "channels_last", "strided"])
def test_emulated_upfirdn2d_dtypes_layouts_helpers(emu, dtype, layout):
    gen = torch.Generator().manual_seed(7)
    x = torch.randn([2, 3, 9, 8], generator=gen)
    x = {"nchw": x, "channels_last": x.to(memory_format=torch.channels_last), "strided": x[:, :, ::2, 1:]}[layout]
    rtol, atol = TOL[dtype]
    f1 = upfirdn2d.setup_filter([1, 3, 3, 1])
    f2 = upfirdn2d.setup_filter([1, 3, 3, 1], separable=False)
    calls = [
        lambda x, f, i: upfirdn2d.upsample2d(x, f, impl=i),
        lambda x, f, i: upfirdn2d.downsample2d(x, f, impl=i),
        lambda x, f, i: upfirdn2d.filter2d(x, f, gain=2.0, impl=i),
        lambda x, f, i: upfirdn2d.upfirdn2d(x, f, up=(2, 1), down=(1, 2), padding=(-1, 2, 1, 0), impl=i),
        lambda x, f, i: upfirdn2d.upfirdn2d(x, f, up=4, down=2, padding=3, flip_filter=True, impl=i),
    ]
    for call in calls:
        for f in (f1, f2, None):
            got = call(x.to(dtype), f, "cuda")
            want = call(x.to(dtype).float(), f, "ref")
            assert got.dtype == dtype and not torch.isnan(got).any()
            if layout == "channels_last":
                assert got.is_contiguous(memory_format=torch.channels_last)
            torch.testing.assert_close(got.float(), want, rtol=rtol * 2, atol=atol * 2)
            # The gradient (an upfirdn2d pass itself) too.
            xg = x.to(dtype).requires_grad_(True)
            dy = torch.randn(got.shape, generator=gen).to(dtype)
            (g,) = torch.autograd.grad(call(xg, f, "cuda"), xg, dy)
            xr = x.to(dtype).float().requires_grad_(True)
            (r,) = torch.autograd.grad(call(xr, f, "ref"), xr, dy.float())
            assert g.shape == x.shape and not torch.isnan(g).any()
            torch.testing.assert_close(g.float(), r, rtol=rtol * 4, atol=atol * 8)


@pytest.mark.parametrize(
    "taps, kw",
    [
        ([1, 3, 3, 1], dict(up=2, padding=(2, 1))),
        ([1, 3, 3, 1], dict(down=2, padding=1)),
        ([[1, 2, 0, 1], [3, 1, 2, 2]], dict(up=2, down=2, padding=(1, 2, 0, -1), gain=1.5)),
        ([1, 2, 3], dict(up=(2, 1), down=(1, 2), padding=(-1, 2, 1, 1), flip_filter=True)),
        ([[1, 2], [3, 4], [5, 6]], dict(up=(1, 3), down=(2, 1), padding=(0, 1, 2, 0))),
    ],
)
def test_emulated_upfirdn2d_gradcheck(emu, taps, kw):
    gen = torch.Generator().manual_seed(11)
    x = torch.randn([1, 2, 5, 4], generator=gen, dtype=torch.float64, requires_grad=True)
    f = upfirdn2d.setup_filter(taps).double()
    fn = lambda x: upfirdn2d.upfirdn2d(x, f, impl="cuda", **kw)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))
    # Third order: the gradient Function is upfirdn2d again, so it keeps going.
    (g,) = torch.autograd.grad(fn(x).square().sum(), x, create_graph=True)
    (gg,) = torch.autograd.grad(g.square().sum(), x, create_graph=True)
    (ggg,) = torch.autograd.grad(gg.sum(), x)
    xr = x.detach().requires_grad_(True)
    fr = lambda x: upfirdn2d.upfirdn2d(x, f, impl="ref", **kw)  # noqa: E731
    (g_r,) = torch.autograd.grad(fr(xr).square().sum(), xr, create_graph=True)
    (gg_r,) = torch.autograd.grad(g_r.square().sum(), xr, create_graph=True)
    (ggg_r,) = torch.autograd.grad(gg_r.sum(), xr)
    torch.testing.assert_close(ggg, ggg_r)


def test_emulated_r1_style_double_backward_through_both_ops(emu):
    gen = torch.Generator().manual_seed(5)
    x = torch.randn([2, 3, 8, 8], generator=gen, dtype=torch.float64)
    w = torch.randn([3], generator=gen, dtype=torch.float64)
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    results = {}
    for impl in ["cuda", "ref"]:
        xi, wi = x.clone().requires_grad_(True), w.clone().requires_grad_(True)
        out = bias_act.bias_act(upfirdn2d.downsample2d(xi * wi.view(1, 3, 1, 1), f, impl=impl), wi, act="softplus",
                                impl=impl)
        (g,) = torch.autograd.grad(out.square().sum(), xi, create_graph=True)
        g.square().sum().backward()
        results[impl] = wi.grad
    torch.testing.assert_close(results["cuda"], results["ref"])


def test_emulated_filter_with_grad_goes_to_ref_under_auto(emu):
    x = torch.randn(1, 1, 4, 4, dtype=torch.float64)
    f = torch.ones(2, dtype=torch.float64, requires_grad=True)
    with pytest.raises(RuntimeError, match="filter"):
        upfirdn2d.upfirdn2d(x, f, impl="cuda")
    upfirdn2d.upfirdn2d(x, f, impl="auto").sum().backward()  # the reference differentiates f
    assert f.grad is not None
    with torch.no_grad():  # no gradient wanted: the kernel may run
        upfirdn2d.upfirdn2d(x, f, impl="cuda")


# ==========================================================================================================
# The self-test at first load (selftest.py): the emulated kernels pass it, a deliberately wrong op fails it.


class _WrongOps:
    """The emulated plugins with one deliberate bug: bias_act's forward 2 % too large, or upfirdn2d's
    filter never flipped (only an asymmetric filter shows that)."""

    def __init__(self, emulated, bug: str):
        self.emulated, self.bug = emulated, bug
        self.bias_act_module = types.SimpleNamespace(bias_act=self.bias_act)
        self.upfirdn2d_module = types.SimpleNamespace(upfirdn2d=self.upfirdn2d)

    def bias_act(self, x, b, xref, yref, dy, mode, *args):
        y = self.emulated.bias_act(x, b, xref, yref, dy, mode, *args)
        return y * 1.02 if self.bug == "bias_act" and mode == 0 else y

    def upfirdn2d(self, x, f, upx, upy, downx, downy, px0, px1, py0, py1, flip, *args):
        if self.bug == "upfirdn2d":
            flip = False
        return self.emulated.upfirdn2d(x, f, upx, upy, downx, downy, px0, px1, py0, py1, flip, *args)


def _selftest_toolchain(mp, plugins, compiles: list) -> None:
    """A pretend GPU machine whose 'compiler' yields `plugins` (the emulated kernels), self-test on."""
    _pretend_toolchain(mp)
    _pretend_cuda_tensors(mp)
    mp.setenv(build.SELFTEST_ENV, "1")

    def compile_(name, directory, sources, archs, log_path):
        compiles.append(name)
        (directory / f"{name}{build.LIB_EXT}").write_bytes(b"fake library")
        return getattr(plugins, f"{directory.name.split('-')[0]}_module")

    mp.setattr(build, "_compile", compile_)
    mp.setattr(build, "_import_built", lambda name, path: getattr(plugins, f"{'_'.join(name.split('_')[2:-1])}_module"))


def test_selftest_passes_on_the_kernels_and_is_cached_with_the_build_key(emulated, monkeypatch):
    from stylegan_anime.cuda_ops import selftest

    compiles: list = []
    _selftest_toolchain(monkeypatch, emulated, compiles)
    calls = []
    real_run = selftest.run
    monkeypatch.setattr(selftest, "run", lambda op, module: calls.append(op) or real_run(op, module))
    for op in build.OPS:
        assert build.get_plugin(op) is getattr(emulated, f"{op}_module")
        status = json.loads((build.build_dir(op) / build.STATUS_FILE).read_text())
        assert status["state"] == "built" and status["selftest"]["state"] == "passed"
        assert 0 < status["selftest"]["max_error"] < selftest.TOLERANCE[torch.bfloat16]
    assert calls == list(build.OPS) and len(compiles) == 2
    # A new process: the verdict is in the cache, so neither a build nor a self-test runs again.
    backend.reset_state()
    x = torch.randn(2, 3, 4, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bias_act.bias_act(x, torch.zeros(3), act="lrelu", impl="cuda")
    assert calls == list(build.OPS) and len(compiles) == 2
    assert "self-test passed" in build.plugin_status("upfirdn2d")[1]
    # ... but a new build key (changed sources) is tested again.
    backend.reset_state()
    monkeypatch.setattr(build, "cache_key", lambda *a, **k: "another-key")
    build.get_plugin("bias_act")
    assert calls == [*build.OPS, "bias_act"]


@pytest.mark.parametrize("bug", ["bias_act", "upfirdn2d"])
def test_a_wrong_op_fails_its_selftest_auto_falls_back_with_one_warning(emulated, monkeypatch, bug):
    compiles: list = []
    _selftest_toolchain(monkeypatch, _WrongOps(emulated, bug), compiles)
    x = torch.randn(2, 3, 8, 8)
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        y = bias_act.bias_act(x, torch.ones(3), act="lrelu")  # impl=None: 'auto'
        z = upfirdn2d.downsample2d(x, f)
        upfirdn2d.upsample2d(x, f)
    ours = [str(w.message) for w in caught if issubclass(w.category, backend.OpsFallbackWarning)]
    assert len(ours) == 1, ours
    assert f"self-test failed: {bug}" in ours[0] and "max error" in ours[0]
    # Whatever fell back computes what the reference does.
    torch.testing.assert_close(y if bug == "bias_act" else z,
                               bias_act.bias_act(x, torch.ones(3), act="lrelu", impl="ref") if bug == "bias_act"
                               else upfirdn2d.downsample2d(x, f, impl="ref"))
    status = json.loads((build.build_dir(bug) / build.STATUS_FILE).read_text())
    assert status["state"] == "failed" and status["kind"] == "selftest" and status["max_error"] > 1e-3
    state, detail = build.plugin_status(bug)
    assert state == "failed" and "self-test failed" in detail
    # A later process with the same key: the cached verdict, without building or testing again.
    backend.reset_state()
    n = len(compiles)
    from stylegan_anime.cuda_ops import selftest
    monkeypatch.setattr(selftest, "run", lambda *a: pytest.fail("self-tested a plugin with a cached verdict"))
    state, detail = build.plugin_status(bug)
    assert state == "failed" and "cached for this build key" in detail
    with pytest.raises(build.PluginUnavailable, match="self-test failed"):
        build.get_plugin(bug)
    assert len(compiles) == n


def test_a_wrong_op_under_ops_cuda_stops_with_the_max_error(emulated, monkeypatch):
    _selftest_toolchain(monkeypatch, _WrongOps(emulated, "bias_act"), [])
    x = torch.randn(2, 3, 4, 4)
    with pytest.raises(backend.OpsUnavailableError) as e:  # a RuntimeError the CLI can tell apart
        bias_act.bias_act(x, torch.ones(3), act="lrelu", impl="cuda")
    msg = str(e.value)
    assert "impl='cuda' (--ops cuda) is unavailable" in msg
    m = re.search(r"self-test failed: bias_act .*forward: max error ([0-9.e+-]+) \(tolerance", msg)
    assert m and float(m[1]) > 1e-3, msg


# ==========================================================================================================
# What the doctor can tell without a GPU, and the CI compile check with the JIT build's own flags.


def test_doctor_reports_the_first_gpu_run_prerequisites(monkeypatch):
    report = dict(cuda_ops.doctor_report())
    assert re.fullmatch(r"\d+\.\d+\.\S+", report["pybind11 (torch's)"]), report["pybind11 (torch's)"]
    assert report["Python.h"].endswith("Python.h")
    assert "torch built for" in report and "nvcc archs" in report
    if build.find_nvcc():
        assert re.match(r"sm_\d+ \.\.\. sm_\d+ \(\d+\)", report["nvcc archs"]), report["nvcc archs"]
    monkeypatch.delenv(build.SELFTEST_ENV)  # the autouse fixture turned it off
    report = dict(cuda_ops.doctor_report())
    assert report["ops self-test"].startswith("each new build is checked")
    assert "cudnn.benchmark True, TF32 off" in report["bench flags"]
    assert report["first-step check"].startswith("on for CUDA training")
    monkeypatch.setenv("STYLEGAN_ANIME_SANITY", "0")
    monkeypatch.setenv(build.SELFTEST_ENV, "0")
    report = dict(cuda_ops.doctor_report())
    assert report["ops self-test"].startswith("OFF") and report["first-step check"].startswith("off")


def test_jit_flags_are_the_runtime_builds_own(monkeypatch, tmp_path):
    """check_cuda_compile takes its flags from the build.ninja torch writes for _compile's very arguments."""
    from torch.utils import cpp_extension

    seen = {}
    monkeypatch.setattr(cpp_extension, "load", lambda **kw: seen.update(kw) or types.SimpleNamespace())
    src = tmp_path / "b" / "src"
    build._compile("m", tmp_path / "b", [src / "bias_act.cpp", src / "bias_act.cu"], ("8.0", "9.0"),
                   tmp_path / "log")
    assert seen["extra_cuda_cflags"] == ["-O3", "-gencode=arch=compute_80,code=sm_80",
                                         "-gencode=arch=compute_90,code=sm_90"]
    assert seen["extra_cflags"] == ["-O3"] and seen["extra_include_paths"] == [str(src)]
    flags = build.jit_flags("bias_act", OPS_DIR, tmp_path / "ninja", ("8.0", "9.0"), cuda_home="/opt/cuda")
    for want in ["-O3", "-gencode=arch=compute_80,code=sm_80", "-gencode=arch=compute_90,code=sm_90",
                 "-D__CUDA_NO_HALF_OPERATORS__", "-DTORCH_EXTENSION_NAME=check_bias_act", f"-I{OPS_DIR}"]:
        assert want in flags["cuda_cflags"], want
    assert "-O3" in flags["cflags"] and "-DTORCH_API_INCLUDE_EXTENSION_H" in flags["cflags"]
    assert re.search(r"-std=c\+\+\d\d", flags["cflags"])
    assert cpp_extension.CUDA_HOME is None or torch.version.cuda  # restored after standing in


def test_compile_check_runs_the_bindings_with_the_jit_flags(tmp_path):
    """The default check (CI) has a nvcc job and a host-compiler job per op, all with the JIT flags; a broken
    binding fails it (stopped at its first error, which sits before the includes: a second, not the ~20 s of a
    full syntax check)."""
    tool = _load_tool()
    ops = tmp_path / "ops"
    shutil.copytree(OPS_DIR, ops, ignore=shutil.ignore_patterns("__pycache__"))
    jobs = tool.jit_jobs(tool.find_nvcc() or "/usr/local/cuda/bin/nvcc", ("80",), tmp_path / "scratch",
                         ops_dir=ops)
    assert [(kind, src.name) for kind, src, _ in jobs] == [
        ("nvcc jit", "bias_act.cu"), ("c++ jit", "bias_act.cpp"), ("nvcc jit", "upfirdn2d.cu"),
        ("c++ jit", "upfirdn2d.cpp")]
    cpp_cmd = jobs[1][2]
    assert "-fsyntax-only" in cpp_cmd and "-O3" in cpp_cmd and "-DTORCH_EXTENSION_NAME=check_bias_act" in cpp_cmd
    assert "-D__CUDA_NO_HALF_OPERATORS__" in jobs[0][2] and "-gencode=arch=compute_80,code=sm_80" in jobs[0][2]
    if shutil.which(cpp_cmd[0]) is None:
        pytest.skip("no C++ compiler")
    (ops / "bias_act.cpp").write_text("not_a_type broken_binding;\n" + (ops / "bias_act.cpp").read_text())
    rc, output, _ = tool._run([*cpp_cmd, "-Wfatal-errors"])  # stop at the first error: about a second
    assert rc != 0 and "not_a_type" in output
