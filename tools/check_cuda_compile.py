#!/usr/bin/env python3
"""Compile-check the CUDA ops without a GPU: the kernels (`cuda_ops/*.cu`) and the host bindings (`*.cpp`), with
the flags the runtime JIT build uses.

Default (what CI runs): for each op, the command lines come from the build.ninja that
torch.utils.cpp_extension writes for the very load() arguments of `cuda_ops/build.py` (same defines, include
paths, -std, -O3, half-precision switches; nothing is guessed), for sm_80 and sm_90: the .cu is compiled by
nvcc to an object file as the runtime build does, the .cpp binding is checked by the host compiler with the
same flags (-fsyntax-only: templates, pybind11 and ATen included, no code generation; --cpp-object compiles
it fully). On a CPU-only torch, which ships c10/cuda headers without their generated config header, a stub
stands in for it. One line per file, compiler output on failure, exit 1 when anything fails; without nvcc:
'skipped: no nvcc', exit 0.

    python tools/check_cuda_compile.py                  # what CI runs (both ops, .cu and .cpp, JIT flags)
    python tools/check_cuda_compile.py FILE.cu ...      # just these kernels, plain nvcc -std=c++17
    python tools/check_cuda_compile.py --jit-flags F.cu # ... with the JIT's nvcc defines (a fixed list)

nvcc is looked up as --nvcc, $NVCC, $CUDA_HOME/bin/nvcc, then on PATH.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OPS_DIR = REPO / "cuda_ops"
DEFAULT_ARCHS = ("80", "90")
# What torch.utils.cpp_extension adds for nvcc in the JIT build (torch 2.x), besides -std=c++20.
JIT_NVCC_FLAGS = (
    "-std=c++20",
    "-D__CUDA_NO_HALF_OPERATORS__",
    "-D__CUDA_NO_HALF_CONVERSIONS__",
    "-D__CUDA_NO_BFLOAT16_CONVERSIONS__",
    "-D__CUDA_NO_HALF2_OPERATORS__",
    "--expt-relaxed-constexpr",
)


def find_nvcc(explicit: str | None = None) -> str | None:
    for candidate in (explicit, os.environ.get("NVCC")):
        if candidate:
            return shutil.which(candidate) or (candidate if Path(candidate).exists() else None)
    cuda_home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    if cuda_home and (Path(cuda_home) / "bin" / "nvcc").exists():
        return str(Path(cuda_home) / "bin" / "nvcc")
    return shutil.which("nvcc")


def discover_sources(ops_dir: Path = OPS_DIR, suffix: str = ".cu") -> list[Path]:
    """The files to check, sorted by name."""
    return sorted(p for p in Path(ops_dir).glob(f"*{suffix}") if p.is_file())


def torch_include_dirs() -> list[str]:
    """torch's header directories, found without importing torch when possible (fast)."""
    import importlib.util

    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("torch is not installed: its headers (c10/util/Half.h) are needed")
    root = Path(list(spec.submodule_search_locations)[0]) / "include"
    return [str(root), str(root / "torch" / "csrc" / "api" / "include")]


def nvcc_command(
    nvcc: str,
    source: Path,
    output: Path,
    archs: tuple[str, ...] = DEFAULT_ARCHS,
    include_dirs: list[str] | None = None,
    jit_flags: bool = False,
) -> list[str]:
    """The nvcc command line that compiles `source` alone into the object file `output`."""
    cmd = [nvcc, "-c"]
    cmd += list(JIT_NVCC_FLAGS) if jit_flags else ["-std=c++17"]
    for arch in archs:
        cmd += ["-gencode", f"arch=compute_{arch},code=sm_{arch}"]
    for inc in (include_dirs if include_dirs is not None else torch_include_dirs()) + [str(source.parent)]:
        cmd += ["-I", inc]
    cmd += [str(source), "-o", str(output)]
    return cmd


def _run(cmd: list[str]) -> tuple[int, str, float]:
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    return proc.returncode, (proc.stdout + proc.stderr).strip(), time.monotonic() - start


def cuda_home_of(nvcc: str) -> str:
    """The CUDA toolkit folder for torch's CUDA_HOME: $CUDA_HOME / $CUDA_PATH, the folder above nvcc's bin/, or
    /usr/local/cuda, the first that has include/cuda_runtime.h (an nvcc on PATH may be a wrapper elsewhere)."""
    candidates = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"),
                  str(Path(os.path.realpath(nvcc)).parent.parent), "/usr/local/cuda"]
    for home in filter(None, candidates):
        if (Path(home) / "include" / "cuda_runtime.h").exists():
            return home
    return str(Path(os.path.realpath(nvcc)).parent.parent)


def jit_jobs(nvcc: str, archs: tuple[str, ...], scratch: Path, cpp_object: bool = False,
             ops_dir: Path = OPS_DIR) -> list[tuple[str, Path, list[str]]]:
    """(kind, source, command) of every file of every op, with the JIT build's own flags (see the docstring)."""
    import shlex

    build = _load_build_module()
    dotted = tuple(f"{a[:-1]}.{a[-1]}" for a in archs)  # build.py's form: '8.0'
    stub = _cuda_config_stub(scratch)
    jobs = []
    for op in build.OPS:
        flags = build.jit_flags(op, ops_dir, scratch / op, dotted, cuda_home=cuda_home_of(nvcc))
        cu, cpp = ops_dir / f"{op}.cu", ops_dir / f"{op}.cpp"
        extra = ["-I", stub] if stub else []
        jobs.append(("nvcc jit", cu, [nvcc, *extra, *shlex.split(flags["cuda_cflags"]), "-c", str(cu), "-o",
                                      str(scratch / f"{op}.cuda.o"), *shlex.split(flags.get("cuda_post_cflags", ""))]))
        out = ["-c", "-o", str(scratch / f"{op}.o")] if cpp_object else ["-fsyntax-only"]
        cxx = os.environ.get("CXX") or flags["cxx"]
        jobs.append(("c++ jit", cpp, [cxx, *extra, *shlex.split(flags["cflags"]), *out, str(cpp),
                                      *shlex.split(flags.get("post_cflags", ""))]))
    return jobs


def _load_build_module():
    """cuda_ops/build.py of this checkout on its own (stdlib + torch only: CI runs this before installing the
    package and its dependencies)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_sga_ops_build", OPS_DIR / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cuda_config_stub(scratch: Path) -> str | None:
    """A stand-in c10/cuda/impl/cuda_cmake_macros.h when torch (CPU-only) lacks it; its folder, else None."""
    torch_inc = Path(torch_include_dirs()[0])
    if (torch_inc / "c10" / "cuda" / "impl" / "cuda_cmake_macros.h").exists():
        return None
    stub = scratch / "stub" / "c10" / "cuda" / "impl"
    stub.mkdir(parents=True, exist_ok=True)
    (stub / "cuda_cmake_macros.h").write_text("#pragma once\n#define C10_CUDA_BUILD_SHARED_LIBS\n")
    return str(scratch / "stub")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nvcc", help="nvcc to use")
    ap.add_argument("--arch", action="append", help="SM number(s), e.g. --arch 80 --arch 90 (default: 80 and 90)")
    ap.add_argument("--jit-flags", action="store_true",
                    help="with FILES: also compile them with the JIT's nvcc defines")
    ap.add_argument("--cpp-object", action="store_true", help="compile the bindings to objects (slower than the "
                                                               "default syntax check)")
    ap.add_argument("--jobs", type=int, default=None, help="parallel compiles (default: one per file, up to CPUs)")
    ap.add_argument("files", nargs="*", type=Path, help="plain nvcc checks of these .cu files instead")
    args = ap.parse_args(argv)

    nvcc = find_nvcc(args.nvcc)
    if nvcc is None:
        print("check_cuda_compile: skipped: no nvcc")
        return 0
    archs = tuple(args.arch) if args.arch else DEFAULT_ARCHS
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="check_cuda_compile_") as tmp:
        tmp_dir = Path(tmp)
        jobs: list[tuple[str, Path, list[str]]] = []
        if args.files:
            includes = torch_include_dirs()
            for src in (f.resolve() for f in args.files):
                jobs.append(("nvcc", src, nvcc_command(nvcc, src, tmp_dir / f"{src.stem}.o", archs, includes)))
                if args.jit_flags:
                    jobs.append(("nvcc jit", src, nvcc_command(nvcc, src, tmp_dir / f"{src.stem}.jit.o", archs,
                                                               includes, jit_flags=True)))
        else:
            try:
                jobs = jit_jobs(nvcc, archs, tmp_dir, cpp_object=args.cpp_object)
            except Exception as e:  # noqa: BLE001 - torch's private ninja writer changed: say so, fail
                print(f"check_cuda_compile: cannot get the JIT build's flags: {type(e).__name__}: {e}")
                return 1
        n_jobs = args.jobs or max(1, min(len(jobs), os.cpu_count() or 1))
        with ThreadPoolExecutor(n_jobs) as pool:
            results = list(pool.map(lambda job: _run(job[2]), jobs))

    failed = 0
    for (kind, src, cmd), (rc, output, seconds) in zip(jobs, results):
        rel = src.relative_to(REPO) if src.is_relative_to(REPO) else src
        target = f"sm_{', sm_'.join(archs)}" if kind.startswith("nvcc") else (
            "object" if args.cpp_object else "syntax")
        if rc == 0:
            print(f"ok    {rel}  [{kind}: {target}]  {seconds:.1f} s")
        else:
            failed += 1
            print(f"FAIL  {rel}  [{kind}: {target}]  {seconds:.1f} s\n  $ {' '.join(cmd)}\n{output}")
    total = time.monotonic() - start
    print(f"check_cuda_compile: {len(jobs) - failed}/{len(jobs)} ok in {total:.1f} s ({nvcc})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
