#!/usr/bin/env python3
"""Compile-check the CUDA kernels (`cuda_ops/*.cu`) with nvcc, without a GPU.

Each .cu file is compiled on its own (`nvcc -c -std=c++17`) for sm_80 and sm_90 with torch's include
directories (for c10/util/Half.h and BFloat16.h) and cuda_ops/ on the include path, into a temporary
directory. One line per file; on failure the compiler's output follows and the exit status is 1. Without
nvcc it prints 'skipped: no nvcc' and exits 0.

    python tools/check_cuda_compile.py                 # what CI runs
    python tools/check_cuda_compile.py --jit-flags     # also the flags of the JIT build (C++20, no half ops)
    python tools/check_cuda_compile.py --cpp           # also syntax-check the host bindings (*.cpp; slow)

nvcc is looked up as --nvcc, $NVCC, $CUDA_HOME/bin/nvcc, then on PATH.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import sysconfig
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


def cpp_command(cxx: str, source: Path, include_dirs: list[str]) -> list[str]:
    """A host-compiler syntax check of a binding .cpp (as the JIT build would compile it)."""
    cmd = [cxx, "-std=c++20", "-fsyntax-only", f"-DTORCH_EXTENSION_NAME=check_{source.stem}",
           "-DTORCH_API_INCLUDE_EXTENSION_H"]
    for inc in include_dirs + [str(source.parent)]:
        cmd += ["-I", inc]
    return cmd + [str(source)]


def _run(cmd: list[str]) -> tuple[int, str, float]:
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    return proc.returncode, (proc.stdout + proc.stderr).strip(), time.monotonic() - start


def _cpp_include_dirs(nvcc: str, scratch: Path) -> list[str]:
    dirs = torch_include_dirs()
    candidates = [Path(os.path.realpath(nvcc)).parent.parent / "include", Path("/usr/local/cuda/include")]
    for env in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(env):
            candidates.insert(0, Path(os.environ[env]) / "include")
    cuda_inc = next((c for c in candidates if (c / "cuda_runtime.h").exists()), candidates[0])
    torch_inc = Path(dirs[0])
    if not (torch_inc / "c10" / "cuda" / "impl" / "cuda_cmake_macros.h").exists():
        # A CPU-only torch ships c10/cuda headers without their generated config header: stand one in.
        stub = scratch / "stub" / "c10" / "cuda" / "impl"
        stub.mkdir(parents=True, exist_ok=True)
        (stub / "cuda_cmake_macros.h").write_text("#pragma once\n#define C10_CUDA_BUILD_SHARED_LIBS\n")
        dirs = [str(scratch / "stub")] + dirs
    return dirs + [str(cuda_inc), sysconfig.get_paths()["include"]]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nvcc", help="nvcc to use")
    ap.add_argument("--arch", action="append", help="SM number(s), e.g. --arch 80 --arch 90 (default: 80 and 90)")
    ap.add_argument("--jit-flags", action="store_true", help="also compile with the JIT build's nvcc flags")
    ap.add_argument("--cpp", action="store_true", help="also syntax-check the host bindings (*.cpp, slow)")
    ap.add_argument("--jobs", type=int, default=None, help="parallel compiles (default: one per file, up to CPUs)")
    ap.add_argument("files", nargs="*", type=Path, help="the .cu files (default: cuda_ops/*.cu)")
    args = ap.parse_args(argv)

    nvcc = find_nvcc(args.nvcc)
    if nvcc is None:
        print("check_cuda_compile: skipped: no nvcc")
        return 0
    archs = tuple(args.arch) if args.arch else DEFAULT_ARCHS
    files = [f.resolve() for f in args.files] if args.files else discover_sources()
    if not files:
        print(f"check_cuda_compile: no .cu files in {OPS_DIR}")
        return 1
    includes = torch_include_dirs()
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="check_cuda_compile_") as tmp:
        tmp_dir = Path(tmp)
        jobs: list[tuple[str, Path, list[str]]] = []
        for src in files:
            jobs.append(("nvcc", src, nvcc_command(nvcc, src, tmp_dir / f"{src.stem}.o", archs, includes)))
            if args.jit_flags:
                jobs.append(("nvcc jit", src, nvcc_command(nvcc, src, tmp_dir / f"{src.stem}.jit.o", archs, includes,
                                                           jit_flags=True)))
        if args.cpp:
            cxx = os.environ.get("CXX", "c++")
            cpp_inc = _cpp_include_dirs(nvcc, tmp_dir)
            for src in discover_sources(OPS_DIR, ".cpp"):
                jobs.append(("c++", src, cpp_command(cxx, src, cpp_inc)))
        n_jobs = args.jobs or max(1, min(len(jobs), os.cpu_count() or 1))
        with ThreadPoolExecutor(n_jobs) as pool:
            results = list(pool.map(lambda job: _run(job[2]), jobs))

    failed = 0
    for (kind, src, cmd), (rc, output, seconds) in zip(jobs, results):
        rel = src.relative_to(REPO) if src.is_relative_to(REPO) else src
        target = f"sm_{', sm_'.join(archs)}" if kind.startswith("nvcc") else "syntax"
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
