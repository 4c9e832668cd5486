"""Choose the implementation behind the custom ops: the pure-PyTorch reference or fused CUDA kernels.

Every op takes `impl=None | 'auto' | 'cuda' | 'ref'`:

- `'ref'`:  the pure-PyTorch reference (any device, any float dtype, differentiable to any order).
- `'cuda'`: the fused CUDA kernels (see `build.py`: compiled just in time on first use and cached). Raises
            a RuntimeError that says why when they cannot run (CPU tensor, no nvcc, compiler error, ...).
- `'cpu'`:  the fused CPU kernels (`upfirdn2d_cpu.cpp`, `bias_act_cpu.cpp`: vectorised loops, AVX-512 when the
            CPU has it, at::parallel_for), built and cached like the CUDA ones; CPU tensors only. Not chosen
            by an op's 'auto'; `train --ops auto` makes them the process default for a long StyleGAN2 run on a
            CPU (`prefer_cpu_kernels`; docs/benchmarks.md for what they pay).
- `'auto'`: the CUDA kernels for CUDA tensors when they build, else the reference. A failed build falls
            back with one warning per process (the reason and the build log's path).
- `None`:   the process-wide default, settable with `set_default_impl()` (the CLI's `--ops` flag).

`doctor_report()` describes the toolchain and what each op will run, without building anything on a
machine without a GPU.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import threading
import warnings

import torch

from . import build

__all__ = [
    "IMPLS",
    "OpsFallbackWarning",
    "OpsUnavailableError",
    "set_default_impl",
    "get_default_impl",
    "resolve_impl",
    "doctor_report",
    "set_poison_outputs",
    "poison_outputs",
    "record_usage",
]

IMPLS = ("auto", "cuda", "ref", "cpu")  # 'cpu': the fused CPU kernels, only when asked for (see _resolve_cpu)

_default_impl = "auto"


class OpsUnavailableError(RuntimeError):
    """impl='cuda' (--ops cuda) cannot run: no CUDA tensor, a call the kernels lack, or a plugin that did not
    build or failed its self-test (the message then has the max error). The CLI may report it in one line."""


class OpsFallbackWarning(UserWarning):
    """impl='auto' wanted the CUDA kernels for a CUDA tensor but could not build or load them."""


def _check_impl(impl: object) -> str:
    if not isinstance(impl, str) or impl not in IMPLS:
        raise ValueError(f"impl must be one of {', '.join(repr(i) for i in IMPLS)}; got {impl!r}")
    return impl


def set_default_impl(name: str) -> None:
    """Set the implementation that ops use when called with `impl=None`."""
    global _default_impl
    _default_impl = _check_impl(name)


def get_default_impl() -> str:
    """The implementation that ops use when called with `impl=None` ('auto' unless changed)."""
    return _default_impl


# --------------------------------------------------------------------------------------------------------
# Resolution.

_warn_lock = threading.Lock()
_fallback_warned = False


def _is_cuda(x: torch.Tensor) -> bool:
    return x.is_cuda


_usage: dict[tuple[str, str, str], int] | None = None  # see record_usage


def record_usage(on: bool) -> dict[tuple[str, str, str], int] | None:
    """Start (on=True) or stop counting which implementation each op call resolved to, per dtype: returns the
    counts so far {(op, 'cuda' | 'ref', dtype name): calls} and, when stopping, forgets them. Off by default
    (the first training step turns it on for itself, see training/sanity.py)."""
    global _usage
    counts = _usage
    _usage = {} if on else None
    return counts


def resolve_impl(impl: str | None, x: torch.Tensor, op: str | None = None, unsupported: str | None = None) -> str:
    """Turn a requested `impl` (or None = the default) into the one to run on `x`: 'cuda' or 'ref'.

    op:          the plugin the caller needs ('bias_act' or 'upfirdn2d'); None = all of them.
    unsupported: the caller's reason why the CUDA kernels cannot take this particular call (a dtype they
                 lack, a filter that needs a gradient), or None. 'auto' then quietly takes 'ref'.
    Building the plugin (first use only) happens here, for CUDA tensors only.
    """
    chosen = _resolve(impl, x, op, unsupported)
    usage = _usage
    if usage is not None:
        key = (op or "all", chosen, str(x.dtype).replace("torch.", ""))
        usage[key] = usage.get(key, 0) + 1
    return chosen


def _resolve(impl: str | None, x: torch.Tensor, op: str | None, unsupported: str | None) -> str:
    impl = _check_impl(_default_impl if impl is None else impl)
    if impl == "ref":
        return "ref"
    ops = build.OPS if op is None else (op,)
    if impl == "cpu":
        return _resolve_cpu(x, ops, unsupported)
    if impl == "cuda":
        if not _is_cuda(x):
            raise OpsUnavailableError(
                f"impl='cuda' (--ops cuda) runs on CUDA tensors only, but x is on {x.device}; "
                "use impl='auto' or impl='ref' (--ops ref)"
            )
        if unsupported:
            raise OpsUnavailableError(
                f"impl='cuda' (--ops cuda) cannot run this call: {unsupported}; use impl='auto' or 'ref'")
        for name in ops:
            try:
                build.get_plugin(name)
            except build.PluginUnavailable as e:
                raise OpsUnavailableError(
                    f"impl='cuda' (--ops cuda) is unavailable: {e}. Use impl='auto' or impl='ref' (--ops ref)"
                ) from e
        return "cuda"
    # 'auto'
    if not _is_cuda(x) or unsupported:
        return "ref"
    for name in ops:
        try:
            build.get_plugin(name)
        except build.PluginUnavailable as e:
            _warn_fallback(e)
            return "ref"
    return "cuda"


def _resolve_cpu(x: torch.Tensor, ops, unsupported: str | None) -> str:
    """impl='cpu' (--ops cpu): the fused CPU kernels (`<op>_cpu.cpp`, built on first use like the CUDA ones) for
    CPU tensors; a RuntimeError that says why when they cannot run. Never chosen by 'auto'."""
    if x.device.type != "cpu":
        raise RuntimeError(f"impl='cpu' (--ops cpu) runs on CPU tensors only, but x is on {x.device}; "
                           "use impl='auto' or impl='ref' (--ops ref)")
    if unsupported:
        raise RuntimeError(f"impl='cpu' (--ops cpu) cannot run this call: {unsupported}; use impl='ref'")
    for name in ops:
        try:
            build.get_plugin(f"{name}_cpu")
        except build.PluginUnavailable as e:
            raise RuntimeError(f"impl='cpu' (--ops cpu) is unavailable: {e}. Use impl='ref' (--ops ref)") from e
    return "cpu"


def prefer_cpu_kernels(say=None) -> str:
    """For a CPU training run left at `--ops auto`: make the fused CPU kernels the process's default when they
    build (once per machine and source version, about a minute; cached like the CUDA plugins) and pass their
    self-test; returns 'cpu', or 'ref' after one line saying why not (the run then takes the reference ops,
    as before). They pay 1.4x on a whole `--preset cpu` step (docs/benchmarks.md, issue #22). `say` prints a
    line (default: print)."""
    say = say or print
    ops = build.CPU_OPS
    cold = [op for op in ops if build.plugin_status(op)[0] not in ("loaded", "built")]
    if cold:
        say("building the fused CPU kernels (once: about a minute; --ops ref skips them)")
    for op in ops:
        try:
            build.get_plugin(op)
        except build.PluginUnavailable as e:
            say(f"note: the fused CPU kernels are unavailable ({e}); training with the slower reference ops "
                "(`stylegan-anime doctor` says more)")
            return "ref"
    set_default_impl("cpu")
    say("ops: the fused CPU kernels (--ops ref: the PyTorch reference)")
    return "cpu"


def _warn_fallback(e: build.PluginUnavailable) -> None:
    """One warning per process, however many ops and calls fall back."""
    global _fallback_warned
    with _warn_lock:
        if _fallback_warned:
            return
        _fallback_warned = True
    warnings.warn(
        f"stylegan_anime.cuda_ops: using the slower pure-PyTorch reference ops because {e}. "
        "Run `stylegan-anime doctor` for details; --ops ref silences this.",
        OpsFallbackWarning,
        stacklevel=5,  # the caller of the op: _warn_fallback, _resolve, resolve_impl, the op, its caller
    )


def reset_state() -> None:
    """Forget loaded/failed plugins and the fallback warning of this process (tests, retries)."""
    global _fallback_warned
    build.reset()
    with _warn_lock:
        _fallback_warned = False


# --------------------------------------------------------------------------------------------------------
# Debug: fill every kernel output with NaN before the kernel runs, so unwritten elements show up.

_poison = os.environ.get("STYLEGAN_ANIME_OPS_POISON", "") not in ("", "0")


def set_poison_outputs(flag: bool) -> None:
    """Debug switch: the CUDA kernels' outputs are NaN-filled before each launch (slower; tests)."""
    global _poison
    _poison = bool(flag)


def poison_outputs() -> bool:
    return _poison


# --------------------------------------------------------------------------------------------------------
# Doctor.


def _run_version(cmd: list[str]) -> str | None:
    """First informative line of `cmd --version`-style output, or None."""
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    text = (out.stdout or "") + (out.stderr or "")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        return None
    for ln in lines:  # nvcc: "Cuda compilation tools, release 13.0, V13.0.88"
        if "release" in ln:
            return ln
    return lines[0]


def _cxx_compiler() -> str:
    if os.name == "nt":
        return os.environ.get("CXX", "cl")
    return os.environ.get("CXX", "c++")


def _plugin_state(op: str, build_now: bool) -> tuple[str, str]:
    """(state, detail) of a plugin for doctor, building it first when asked (a failure is reported, not raised)."""
    try:
        if build_now:
            try:
                build.get_plugin(op)
            except build.PluginUnavailable:
                pass  # its status says why
        return build.plugin_status(op)
    except Exception as e:  # noqa: BLE001
        return "error", f"{type(e).__name__}: {e}"


def doctor_report(try_build: bool = False) -> list[tuple[str, str]]:
    """(item, finding) rows about the CUDA ops: toolchain, each op's build status, the path training takes.

    try_build: build the plugins now when a GPU is present (else only report what is cached). Never
    builds, and never fails, on a machine without a GPU.
    """
    rows: list[tuple[str, str]] = [("torch", torch.__version__)]
    rows.append(("torch CUDA", torch.version.cuda or "none (this torch is a CPU-only build)"))
    try:
        if torch.cuda.is_available():
            gpus = []
            for i in range(torch.cuda.device_count()):
                major, minor = torch.cuda.get_device_capability(i)
                gpus.append(f"cuda:{i} {torch.cuda.get_device_name(i)} (sm_{major}{minor})")
            rows.append(("CUDA available", "yes: " + "; ".join(gpus)))
        else:
            rows.append(("CUDA available", "no"))
    except Exception as e:  # noqa: BLE001 - a broken driver must not crash the doctor
        rows.append(("CUDA available", f"error: {e}"))

    nvcc = build.find_nvcc()
    if nvcc:
        rows.append(("nvcc", f"{nvcc} ({_run_version([nvcc, '--version']) or 'version unknown'})"))
    else:
        rows.append(("nvcc", "not found (set CUDA_HOME or put the CUDA toolkit's bin/ on PATH)"))
    ninja = shutil.which("ninja")
    rows.append(("ninja", f"{ninja} ({_run_version([ninja, '--version']) or 'version unknown'})" if ninja
                 else "not found (pip install ninja)"))
    cxx = shutil.which(_cxx_compiler())
    rows.append(("C++ compiler", f"{cxx} ({_run_version([cxx, '--version']) or 'version unknown'})" if cxx
                 else f"{_cxx_compiler()!r} not found"))
    rows += environment_rows(nvcc)
    rows.append(("ops cache", str(build.cache_root())))
    rows.append(("default impl", get_default_impl()))

    states = {}
    for op in build.OPS:
        state, detail = _plugin_state(op, try_build and torch.cuda.is_available())
        states[op] = (state, detail)
        rows.append((f"op {op}", f"{state}: {detail}" if detail else state))
    for op in build.CPU_OPS:  # the fused CPU kernels (--ops cpu); `doctor --build` builds them on any machine
        state, detail = _plugin_state(op, try_build)
        if state == "not tried":
            problem = build.cpu_toolchain_problem()
            state, detail = ("unavailable", problem[1]) if problem else (state, detail + " (with --ops cpu)")
        rows.append((f"op {op}", f"{state}: {detail}" if detail else state))
    rows.append(("training path", _training_path(states)))
    return rows


def _torch_pybind11() -> str:
    """The version of the pybind11 headers torch bundles (what the JIT build compiles the bindings against)."""
    import re
    from pathlib import Path

    header = Path(torch.__file__).parent / "include" / "pybind11" / "detail" / "common.h"
    try:
        text = header.read_text(errors="replace")
    except OSError:
        return "not found (torch ships no pybind11 headers: the JIT build cannot compile the bindings)"
    parts = [re.search(rf"#define PYBIND11_VERSION_{k}\s+(\S+)", text) for k in ("MAJOR", "MINOR", "PATCH")]
    return ".".join(m[1] for m in parts if m) or "version unknown"


def _nvcc_archs(nvcc: str | None) -> str:
    """The SM architectures nvcc can compile for, and whether each visible GPU's is one of them."""
    if not nvcc:
        return "unknown (no nvcc)"
    try:
        out = subprocess.run([nvcc, "--list-gpu-arch"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    archs = [a.strip().removeprefix("compute_") for a in out.split() if a.strip().startswith("compute_")]
    if not archs:
        return "unknown (nvcc --list-gpu-arch printed nothing)"
    text = f"sm_{archs[0]} ... sm_{archs[-1]} ({len(archs)})"
    gpus = [a.replace(".", "") for a in build.gpu_archs()]
    missing = [g for g in gpus if g not in archs]
    if gpus:
        text += "; this GPU's " + (f"sm_{', sm_'.join(missing)} is MISSING" if missing else "arch is supported")
    return text


def _cuda_home(nvcc: str | None):
    """The CUDA toolkit folder: torch's CUDA_HOME, $CUDA_HOME, $CUDA_PATH, the folder above nvcc's bin/, or
    /usr/local/cuda, the first with include/cuda_runtime.h; None without one."""
    from pathlib import Path

    try:
        from torch.utils import cpp_extension
        torch_home = cpp_extension.CUDA_HOME
    except Exception:  # noqa: BLE001
        torch_home = None
    candidates = [torch_home, os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"),
                  str(Path(nvcc).resolve().parent.parent) if nvcc else None, "/usr/local/cuda"]
    for home in filter(None, candidates):
        if (Path(home) / "include" / "cuda_runtime.h").exists():
            return Path(home)
    return None


def environment_rows(nvcc: str | None) -> list[tuple[str, str]]:
    """What the first GPU run depends on and a CPU can already tell (doctor; tools/gpu_checks.sh OUT first)."""
    import sysconfig
    from pathlib import Path

    rows = [("pybind11 (torch's)", _torch_pybind11())]
    python_h = Path(sysconfig.get_paths()["include"]) / "Python.h"
    rows.append(("Python.h", str(python_h) if python_h.exists()
                 else f"missing: {python_h} (install the Python development headers, e.g. python3-dev)"))
    rows.append(("torch built for", " ".join(torch.cuda.get_arch_list()) or "no GPU architectures (CPU-only build)"))
    rows.append(("nvcc archs", _nvcc_archs(nvcc)))
    home = _cuda_home(nvcc)
    if home is not None:
        need = ["cublas_v2.h", "cusparse.h", "cusolverDn.h"]
        missing = [h for h in need if not (home / "include" / h).exists()]
        rows.append(("cuBLAS/cuSPARSE/cuSOLVER headers",
                     "present" if not missing else f"missing {', '.join(missing)} in {home / 'include'} (the "
                     "stylegan2-ada-pytorch reference needs them to build its plugins; ours do not)"))
    selftest_on = os.environ.get(build.SELFTEST_ENV, "1").strip() != "0"
    rows.append(("ops self-test", "each new build is checked against the reference at first load (forward, "
                 "backward, double backward, 4 dtypes); the verdict is cached with the build" if selftest_on
                 else f"OFF ({build.SELFTEST_ENV}=0)"))
    sanity = os.environ.get("STYLEGAN_ANIME_SANITY", "").strip()
    rows.append(("first-step check", {"0": "off (STYLEGAN_ANIME_SANITY=0)",
                                      "1": "on, on any device (STYLEGAN_ANIME_SANITY=1)"}.get(
        sanity, "on for CUDA training: losses and gradients finite, which op implementation and block dtypes ran")))
    rows.append(("bench flags", "cudnn.benchmark True, TF32 off (matmul and cuDNN), for ours and for --reference "
                 "alike; the reference builds in a fresh TORCH_EXTENSIONS_DIR and its fallback to slow ops is "
                 "labelled"))
    return rows


def _training_path(states: dict[str, tuple[str, str]]) -> str:
    impl = get_default_impl()
    if impl == "cpu":
        return "cpu (the fused CPU kernels were chosen: --ops cpu; CPU tensors only)"
    if impl == "ref":
        return "ref (the reference ops were chosen: --ops ref)"
    problem = build._no_cuda_reason()
    if problem:
        if impl == "cuda":
            return f"error: --ops cuda needs a CUDA GPU, but {problem[1]}"
        return f"ref ({problem[1]}; training on a CPU uses the reference ops)"
    failed = [(op, d) for op, (s, d) in states.items() if s in ("failed", "error")]
    if failed:
        op, detail = failed[0]
        if impl == "cuda":
            return f"error: --ops cuda, but the {op} plugin failed: {detail}"
        return f"ref (fallback: the {op} plugin failed: {detail})"
    if all(s in ("loaded", "built") for s, _ in states.values()):
        return "cuda (the fused kernels are built)"
    tool = build.cuda_toolchain_problem()
    if tool:
        if impl == "cuda":
            return f"error: --ops cuda, but {tool[1]}"
        return f"ref (fallback: {tool[1]})"
    return "cuda if the first-use build succeeds (not built yet; it is compiled on the first training step)"
