#!/usr/bin/env bash
# The GPU subset of the benchmarks, as one prepared command (issue 5): first the CUDA tests (tests/test_cuda.py),
# then the core's speed at the original MLP width
# (scripts/bench_dgp.py, batched vs per-patch loop, torch.compile and bfloat16 variants), a 100k-point
# reconstruction and DIP on a 512² image (scripts/bench_gpu.py). About 5 minutes on one H100-class GPU; each
# step has its own time limit (under 10 minutes in all). Writes OUT/bench_gpu.{json,md,log}.
#   bash scripts/bench_gpu.sh [OUT]        (default OUT: benchmarks/gpu)
# Needs torch with CUDA, numpy, scipy, scikit-image, geomloss; open3d and ../shared are NOT needed (the scans are
# analytic; without open3d the Poisson step is skipped and reported as such).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-benchmarks/gpu}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
{
    date -u
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || echo "nvidia-smi: not available"
    python -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
    timeout 120 python -m pytest -q -p no:cacheprovider tests/test_cuda.py || echo "CUDA tests: failed or timed out (exit $?)"
    timeout 200 python scripts/bench_dgp.py --device cuda --scan torus --steps 20 --original-patches 100000 \
        --variants --out "$out" || echo "bench_dgp: failed or timed out (exit $?)"
    timeout 330 python scripts/bench_gpu.py --device cuda --out "$out" || echo "bench_gpu: failed or timed out (exit $?)"
} 2>&1 | tee "$out/bench_gpu.log"
test -s "$out/bench_gpu.json"
