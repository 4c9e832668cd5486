#!/usr/bin/env bash
# The GPU checks and measurements that docs/benchmarks.md records, one step per call so that each fits a
# 10-minute slot on a lent machine. Everything a step prints also goes to OUT/<step>.log.
#
#   tools/gpu_checks.sh OUT ops        # doctor --build, then the CUDA op tests (CUDA vs reference, poisoned outputs)
#   tools/gpu_checks.sh OUT tests      # the whole test suite on the GPU machine
#   tools/gpu_checks.sh OUT bench-ops  # tools/bench_ops.py: per-op and whole-step times, CUDA / eager / compiled
#   tools/gpu_checks.sh OUT bench      # stylegan-anime bench: s/kimg, img/s, peak memory (fp32 and bf16)
#   tools/gpu_checks.sh OUT profile    # torch.profiler tables + traces of StyleGAN2 at 64 and 128 px
#   tools/gpu_checks.sh OUT reference CHECKOUT   # the same batch and resolution with stylegan2-ada-pytorch
#   tools/gpu_checks.sh OUT demo DATA  # a 10-minute StyleGAN2 run at 64 px (auto preset), grid and metrics
#   tools/gpu_checks.sh OUT all [CHECKOUT] [DATA]   # everything a lent machine should do first, in one call of
#                                      # about 5 minutes (each part under its own time limit, a failed or
#                                      # timed-out part is logged and the next one runs): clean op build and
#                                      # CUDA tests, the GPU tests of the tools, bench fp32 + bf16 (with the
#                                      # reference checkout beside ours if given), a 128 px profile, a 60 s
#                                      # demo run at 128 px on DATA. Carry the checkout as an ignored path,
#                                      # e.g. .reference/stylegan2-ada-pytorch (never commit it).
#   On a lent machine (device tool), one call of about 6 minutes with room for a rerun:
#     run: bash tools/gpu_checks.sh $OUT all .reference/stylegan2-ada-pytorch DATA   carry: [".reference"]
#   where .reference/stylegan2-ada-pytorch is a checkout without its .git (1.6 MB); DATA: the 10k faces zip if
#   the machine has it (look first: ls shared ../shared), else leave it out. Dry run on a CPU: the same command
#   takes about 3 minutes and shows every part's command and exit (the CUDA parts skip or fail fast).
set -euo pipefail
out=${1:?usage: tools/gpu_checks.sh OUT STEP [ARG]}
step=${2:?usage: tools/gpu_checks.sh OUT STEP [ARG]}
mkdir -p "$out"
log="$out/$step.log"
run() { echo "+ $*" | tee -a "$log"; "$@" 2>&1 | tee -a "$log"; }

{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || echo "no nvidia-smi: no GPU here"; } | tee -a "$log"
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$log"
case "$step" in
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
    run stylegan-anime bench --models stylegan2 --sizes 64,128 --profile "$out/profile" ;;
  reference)
    run stylegan-anime bench --models stylegan2 --sizes 64,128 --kimg 4 --reference "${3:?reference needs a checkout}" ;;
  demo)
    run timeout 600 stylegan-anime train --data "${3:?demo needs --data}" --size 64 --kimg 1000 --outdir "$out/runs" \
        --no-progress --metrics swd --metrics-kimg 100 || true ;;
  all)
    ref=${3:-}; data=${4:-}
    part() { local limit=$1; shift; echo "+ [limit ${limit}s] $*" | tee -a "$log"
             timeout --signal=INT --kill-after=15 "$limit" "$@" 2>&1 | tee -a "$log" \
               || echo "! exit ${PIPESTATUS[0]}: $*" | tee -a "$log"; }
    command -v stylegan-anime >/dev/null || part 120 pip install -q --no-deps --no-build-isolation -e .
    part 20 python -c "import importlib.util as u; m = [p for p in ('click', 'tqdm', 'numpy', 'PIL', 'einops', 'ninja', \
'imageio_ffmpeg', 'tensorboard', 'scipy', 'matplotlib', 'pytest') if u.find_spec(p) is None]; print('missing:', m or 'none')"
    rm -rf "${STYLEGAN_ANIME_OPS_CACHE:-$HOME/.cache/stylegan-anime/ops}"  # a clean JIT build
    part 120 stylegan-anime doctor --build
    part 90 python -m pytest -q -rs -x tests/test_ops_cuda.py tests/test_ops_build.py
    part 60 python -m pytest -q -rs tests/test_explore.py tests/test_projector.py -k cuda
    part 75 stylegan-anime bench --models stylegan2 --sizes 64,128 --kimg 1 ${ref:+--reference "$ref"}
    part 60 stylegan-anime bench --models stylegan2 --sizes 64,128 --kimg 1 --amp bf16 ${ref:+--reference "$ref"}
    part 45 stylegan-anime bench --models stylegan2 --sizes 128 --profile "$out/profile"
    if [ -n "$data" ]; then
      part 100 stylegan-anime train --data "$data" --size 128 --minutes 1 --outdir "$out/runs" --no-progress \
          --metrics none --grid 20
    fi
    echo "all: done in ${SECONDS}s" | tee -a "$log" ;;
  *)
    echo "unknown step $step" >&2; exit 2 ;;
esac
