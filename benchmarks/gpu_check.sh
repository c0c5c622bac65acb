#!/usr/bin/env bash
# The prepared check for a lent GPU machine (torch + CUDA already installed, no registries).
# From anywhere:   OUT=/some/dir bash benchmarks/gpu_check.sh [--dry-run]
# Builds the extension in place, runs the test suite (CUDA tests included, up to 20 failures shown),
# the GPU report (fused step vs torch fused SGD / AdamW + OneCycleLR vs the copy floor, kernels per
# step, graph replay and each AdamW param's step count after it, PASS/FAIL for issue #16's AdamW
# targets, the graph-captured range test), memcheck and racecheck over a small script of every CUDA
# launch variant (SGD and AdamW), and the 1cycle experiment. Logs under $OUT, a one-line summary per
# stage at the end. Each stage has a budget and may use what earlier stages left of theirs; the
# budgets add up to 470 s, so the whole fits in 8 minutes. (With AdamW the report and the sanitizers
# took 10 + 5 + 5 s from the experiment, the last stage: a timeout there loses only the experiment.)
# --dry-run (CI, no GPU): the Python stages, invoked as below, on the CPU at toy sizes and without
# time limits; no build (the in-place build is used), no test suite, no sanitizer.
set -uo pipefail
cd "$(dirname "$0")/.."
DRY_RUN=0
if [[ "${1:-}" == "--dry-run" ]]; then DRY_RUN=1; fi
OUT=${OUT:-/tmp/lrfused_gpu_check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
deadline=$(date +%s)
summary=()
status=0

# stage NAME BUDGET_S LOG COMMAND...: runs COMMAND until this stage's deadline, output to LOG.
stage() {
  local name=$1 budget=$2 log=$3
  shift 3
  deadline=$((deadline + budget))
  local left=$((deadline - $(date +%s)))
  ((left < 5)) && left=5
  local began=$(date +%s)
  if ((DRY_RUN)); then
    left=0 # timeout 0: no limit
    echo "== $name"
  else
    echo "== $name (up to ${left}s)"
  fi
  timeout "$left" "$@" >"$log" 2>&1
  local rc=$?
  local result="ok"
  if ((rc == 124)); then
    result="TIMED OUT"
  elif ((rc != 0)); then
    result="FAILED (exit $rc)"
  fi
  ((rc != 0)) && status=1
  summary+=("$(printf '%-12s %-18s %4ss  %s' "$name" "$result" $(($(date +%s) - began)) "$log")")
  return $rc
}

print_summary() {
  echo
  echo "== summary"
  printf '%s\n' "${summary[@]}"
}

echo "== machine"
if ((DRY_RUN)); then
  echo "dry run: no GPU used" | tee "$OUT/gpu.txt"
else
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
fi
$PY -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$OUT/gpu.txt"

if ((!DRY_RUN)); then
  if ! stage build 110 "$OUT/build.log" env LRFUSED_CUDA=1 MAX_JOBS=${MAX_JOBS:-16} $PY setup.py build_ext --inplace; then
    tail -40 "$OUT/build.log"
    print_summary
    exit 1
  fi
  grep "lrfused: building" "$OUT/build.log"

  # (torch.compile on the CPU and the gloo multi-process tests: CI covers them; this file: its dry run)
  # pytest-xdist, where installed, runs four test files at a time (each worker with 4 CPU threads).
  parallel=()
  if $PY -c "import xdist" 2>/dev/null; then parallel=(-n 4 --dist loadfile); fi
  stage tests 140 "$OUT/tests.log" env OMP_NUM_THREADS=4 $PY -m pytest tests -q -p no:cacheprovider --maxfail=20 \
    "${parallel[@]}" --ignore=tests/test_compile.py --ignore=tests/test_distributed.py --ignore=tests/test_gpu_check.py
  tail -25 "$OUT/tests.log"
fi

REPORT=(benchmarks/gpu_report.py --json "$OUT/report.json")
EXPERIMENT=(benchmarks/experiment_one_cycle.py --hard --seeds 3 --epochs 6 --out "$OUT")
if ((DRY_RUN)); then
  stage report 95 "$OUT/report.txt" $PY "${REPORT[@]}" --dry-run
else
  stage report 95 "$OUT/report.txt" $PY "${REPORT[@]}"
fi
cat "$OUT/report.txt"

VARIANTS=(benchmarks/launch_variants.py)
if ((DRY_RUN)); then
  stage variants 100 "$OUT/variants.log" $PY "${VARIANTS[@]}" --device cpu
  cat "$OUT/variants.log"
elif command -v compute-sanitizer >/dev/null; then
  # PYTORCH_NO_CUDA_MEMORY_CACHING: each tensor its own allocation, so that memcheck sees a write past
  # a tensor's end (inside one of the caching allocator's blocks it would not); the variants allocate
  # nothing while a graph is captured.
  for tool in memcheck racecheck; do
    stage "$tool" 50 "$OUT/sanitizer_$tool.log" env PYTORCH_NO_CUDA_MEMORY_CACHING=1 \
      compute-sanitizer --tool "$tool" --error-exitcode 9 $PY "${VARIANTS[@]}"
    tail -12 "$OUT/sanitizer_$tool.log"
  done
else
  echo "compute-sanitizer not found: sanitizers skipped"
  summary+=("$(printf '%-12s %s' sanitizers "SKIPPED (no compute-sanitizer)")")
fi

if ((DRY_RUN)); then
  stage experiment 25 "$OUT/experiment.txt" $PY "${EXPERIMENT[@]}" --device cpu --seeds 1 --epochs 1 --sweep-steps 10
else
  stage experiment 25 "$OUT/experiment.txt" $PY "${EXPERIMENT[@]}" --device cuda --width 8
fi
tail -8 "$OUT/experiment.txt"

print_summary
exit $status
