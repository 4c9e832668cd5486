#!/usr/bin/env bash
# The GPU checks and measurements that docs/benchmarks.md records. A lent GPU comes in short slots (15 minutes
# in all, one command <= 600 s, at most 8 result files back), so the first look at a GPU is two calls of at
# most 300 s each, every part under its own time limit (cut to what is left of the call's budget); a failed or
# timed-out part is logged and the next one runs. Everything goes to OUT/<step>.log.
#
#   tools/gpu_checks.sh OUT first      # <= 300 s: environment (torch, CUDA, pybind11, Python.h, nvcc archs),
#                                      # install without network if needed, both plugins built side by side and
#                                      # self-tested, the GPU-only op tests (no -x, CUDA_LAUNCH_BLOCKING=1), a
#                                      # 10-iteration fp16 smoke run with every regulariser (first-step report),
#                                      # --ops cuda vs --ops ref loss parity over 5 iterations, then the full op
#                                      # test sweep for whatever time is left.       Files: first.log
#   tools/gpu_checks.sh OUT second [CHECKOUT]   # <= 300 s: bench ours fp32 and bf16 at 64/128/256 (each row
#                                      # printed when measured), then the reference alone (fresh
#                                      # TORCH_EXTENSIONS_DIR, its log kept).  Files: second.log, reference.log
#   On a lent machine (device tool), each call with room for a rerun:
#     run: bash tools/gpu_checks.sh $OUT first                                      timeout_s: 330
#     run: bash tools/gpu_checks.sh $OUT second .reference/stylegan2-ada-pytorch   carry: [".reference"]
#   .reference/stylegan2-ada-pytorch is a checkout without its .git (1.6 MB, git-ignored: carry it). Dry run on
#   a CPU: the same commands run every part in order; the CUDA parts skip or fail fast, the smoke run and the
#   benches use tiny networks. GPU_CHECKS_DRY=1 only prints each part (tests/test_bench.py checks the plan).
#
# Single steps (one 10-minute slot each): ops (doctor --build + the CUDA op tests), tests (the whole suite),
# bench-ops (tools/bench_ops.py), bench, profile (traces gzipped), reference CHECKOUT, demo DATA.
set -euo pipefail
out=${1:?usage: tools/gpu_checks.sh OUT STEP [ARG]}
step=${2:?usage: tools/gpu_checks.sh OUT STEP [ARG]}
mkdir -p "$out"
log="$out/$step.log"
budget=${GPU_CHECKS_BUDGET:-285}  # seconds for first/second: each part's limit is cut to what is left of it
run() { echo "+ $*" | tee -a "$log"; "$@" 2>&1 | tee -a "$log"; }
part() {  # part LIMIT CMD...: CMD under min(LIMIT, what is left) seconds; never stops the script
  local limit=$1; shift
  local left=$((budget - SECONDS))
  if [ "$left" -lt "$limit" ]; then limit=$left; fi
  if [ "$limit" -lt 5 ]; then echo "- [no time left at ${SECONDS}s] skipped: $*" | tee -a "$log"; return 0; fi
  echo "+ [limit ${limit}s, at ${SECONDS}s] $*" | tee -a "$log"
  if [ -n "${GPU_CHECKS_DRY:-}" ]; then echo "= dry: not run" | tee -a "$log"; return 0; fi
  local start=$SECONDS rc=0
  timeout --signal=INT --kill-after=10 "$limit" "$@" 2>&1 | tee -a "$log" || rc=${PIPESTATUS[0]}
  local what="$*"
  echo "= exit $rc after $((SECONDS - start))s: ${what:0:70}" | tee -a "$log"
}
gpu=0
if [ -z "${GPU_CHECKS_DRY:-}" ] && python -c "import torch, sys; sys.exit(not torch.cuda.is_available())" 2>/dev/null; then
  gpu=1
fi

{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null \
    || echo "no nvidia-smi: no GPU here${GPU_CHECKS_DRY:+ (dry: plan only)}"; } | tee -a "$log"
case "$step" in
  first)
    export CUDA_LAUNCH_BLOCKING=1  # a bad launch or illegal access fails at its own kernel, not a later one
    command -v stylegan-anime >/dev/null \
      || part 60 pip install -q --no-deps --no-build-isolation --no-index -e .
    part 30 stylegan-anime doctor                        # environment: torch, CUDA, pybind11, Python.h, archs
    rm -rf "${STYLEGAN_ANIME_OPS_CACHE:-$HOME/.cache/stylegan-anime/ops}"  # a clean JIT build
    part 150 python tools/gpu_smoke.py build             # both ops at once, then their self-tests
    part 60 python -m pytest -q -rs -p no:cacheprovider tests/test_ops_cuda.py -k gpu_only
    part 75 python tools/gpu_smoke.py smoke
    part 60 python tools/gpu_smoke.py parity
    part 120 python -m pytest -q -rs -p no:cacheprovider tests/test_ops_cuda.py -k "not gpu_only"
    echo "first: done in ${SECONDS}s" | tee -a "$log" ;;
  second)
    ref=${3:-}
    if [ "$gpu" = 1 ]; then tiny=(--kimg 0.5 --warmup 3); sizes=64,128,256
    else tiny=(--kimg 0.004 --warmup 0 --preset cpu --channel-base 128 --channel-max 8); sizes=32; fi
    part 110 stylegan-anime bench --models stylegan2 --sizes "$sizes" "${tiny[@]}"
    part 100 stylegan-anime bench --models stylegan2 --sizes "$sizes" "${tiny[@]}" --amp bf16
    if [ -n "$ref" ]; then
      part 270 stylegan-anime bench --models stylegan2 --sizes "$sizes" --kimg 4 --reference "$ref" \
          --reference-only --reference-log "$out/reference.log"
    else
      echo "- no CHECKOUT given: the reference is not timed" | tee -a "$log"
    fi
    echo "second: done in ${SECONDS}s" | tee -a "$log" ;;
  ops)
    run stylegan-anime doctor --build
    run python -m pytest -q -rs tests/test_ops_cuda.py ;;
  tests)
    run python -m pytest -q -rs ;;
  bench-ops)
    run python tools/bench_ops.py --sizes 64,128 --json "$out/bench_ops.json" ;;
  bench)
    run stylegan-anime bench --models stylegan2 --sizes 64,128 --kimg 2
    run stylegan-anime bench --models stylegan2 --sizes 64,128 --kimg 2 --amp bf16
    run stylegan-anime bench --models dcgan,dcgan-tutorial,wgan,wgan-gp,sagan --sizes 64 --kimg 2 ;;
  profile)
    run stylegan-anime bench --models stylegan2 --sizes 64,128 --profile "$out/profile"
    gzip -f "$out"/profile/*.trace.json ;;  # a trace is tens of MiB, gzipped a few
  reference)
    run stylegan-anime bench --models stylegan2 --sizes 64,128 --kimg 4 --reference "${3:?reference needs a checkout}" \
        --reference-log "$out/reference.log" ;;
  demo)
    run timeout 600 stylegan-anime train --data "${3:?demo needs --data}" --size 64 --kimg 1000 --outdir "$out/runs" \
        --no-progress --metrics swd --metrics-kimg 100 || true ;;
  *)
    echo "error: unknown step $step (first, second, ops, tests, bench-ops, bench, profile, reference, demo)" >&2
    exit 2 ;;
esac
