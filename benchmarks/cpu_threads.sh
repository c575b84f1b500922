#!/bin/bash
# s/it of a short cpu-smoke demo under one competing busy loop, with PyTorch's old default
# (one thread per core) and with the CLI's thread policy (docs/benchmarks.md, "CPU threads under load").
# usage: bash benchmarks/cpu_threads.sh [ITERATIONS]   (from the repo root; writes under /tmp)
set -euo pipefail
iterations=${1:-12}
export ARC2AVATAR_CACHE=${ARC2AVATAR_CACHE:-/tmp/arc2avatar-threads-cache}
unset OMP_NUM_THREADS ARC2AVATAR_THREADS
cores=$(python -c "import os; print(len(os.sched_getaffinity(0)))")
run() {  # LABEL [--threads N]
  local label=$1; shift
  local out=/tmp/arc2avatar-threads-$label
  rm -rf "$out"
  arc2avatar "$@" demo -o "$out" --no-progress --set iterations="$iterations" --set log_every=4 \
    --set meanface.iterations=4 --set meanface.head_iterations=4 --set outputs.size=64 \
    --set view_rings.turntable_frames=2 >/dev/null 2>"$out.err"
  python -c "import json; print('$label', json.load(open('$out/metrics.json'))['seconds_per_iteration'], 's/it')"
}
python -c 'while 1: pass' &
busy=$!
trap 'kill $busy' EXIT
run "one-thread-per-core" --threads "$cores"
run "cli-default"
