#!/usr/bin/env bash
# The prepared check for a lent GPU machine (torch + CUDA already installed, no registries).
# From the repo root:   OUT=/some/dir bash benchmarks/gpu_check.sh
# Builds the extension there, runs the test suite (CUDA tests included), then the GPU report
# (fused step vs torch fused SGD + OneCycleLR vs the copy floor, kernels per step, graph replay, the
# graph-captured range test), with a subset of the CUDA tests under compute-sanitizer in between.
# Logs under $OUT. Each stage has its own timeout; the whole fits in 8 minutes on an H200.
set -uo pipefail
OUT=${OUT:-/tmp/lrfused_gpu_check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
status=0

echo "== machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
$PY -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$OUT/gpu.txt"

echo "== build"
start=$(date +%s)
if ! LRFUSED_CUDA=1 MAX_JOBS=${MAX_JOBS:-16} timeout 300 $PY setup.py build_ext --inplace >"$OUT/build.log" 2>&1; then
  tail -40 "$OUT/build.log"
  echo "BUILD FAILED"
  exit 1
fi
grep "lrfused: building" "$OUT/build.log"
echo "built in $(( $(date +%s) - start ))s"

echo "== tests"
# (torch.compile and the gloo multi-process tests run on CPU only: CI covers them)
timeout 240 $PY -m pytest tests -q -x -p no:cacheprovider --ignore=tests/test_compile.py --ignore=tests/test_distributed.py 2>&1 | tee "$OUT/tests.log" | tail -15 || status=1

echo "== compute-sanitizer (memcheck, racecheck) on a subset of the CUDA tests"
if command -v compute-sanitizer >/dev/null; then
  for tool in memcheck racecheck; do
    if timeout 90 compute-sanitizer --tool "$tool" --error-exitcode 9 $PY -m pytest -q -x -p no:cacheprovider \
         tests/test_cuda.py::test_graph_replay_advances_the_schedule_like_eager_steps \
         "tests/test_cuda.py::test_an_eager_step_of_any_size_matches_torch[many_tensors]" \
         "tests/test_numerics.py::test_one_cycle_matches_torch[dampening-float32-cuda]" \
         "tests/test_numerics.py::test_one_cycle_matches_torch[nesterov_decay-bfloat16-cuda]" \
         "tests/test_amp.py::test_a_skipped_step_changes_nothing_but_the_counter[False-cuda]" \
         "tests/test_amp.py::test_master_weights_match_float32_training[bfloat16-cuda]" \
         "tests/test_fused_sgd.py::test_table_matches_lambda_lr[with_momenta-float32-cuda]" \
         > "$OUT/sanitizer_$tool.log" 2>&1; then
      echo "$tool: clean"
    else
      echo "$tool: FAILED or timed out (see sanitizer_$tool.log)"; tail -20 "$OUT/sanitizer_$tool.log"; status=1
    fi
  done
else
  echo "compute-sanitizer not found: skipped"
fi

echo "== report"
(cd benchmarks && timeout 180 $PY gpu_report.py --json "$OUT/report.json") 2>&1 | tee "$OUT/report.txt" || status=1

echo "== 1cycle vs step decay vs constant LR, a wider CNN on the GPU"
timeout 150 $PY benchmarks/experiment_one_cycle.py --device cuda --width 8 --hard --seeds 3 --epochs 6 --out "$OUT" \
  2>&1 | tail -8 || status=1
exit $status
