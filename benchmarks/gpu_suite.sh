#!/usr/bin/env bash
# One device call: set up, then each benchmark in turn; every step's output goes to $OUT/suite.log
# and its JSON to $OUT. Usage (on the GPU machine, repo root): bash benchmarks/gpu_suite.sh STEP...
# Steps: smoke parity prior create200 oracle accel_tests bench profile multigpu_lora multigpu_create
# (GPU counts: $MULTIGPU_COUNTS, default 1,2; extra `arc2avatar bench` options: $BENCH_ARGS; profile_prior.py options: $PROFILE_ARGS)
set -u
MULTIGPU_COUNTS=${MULTIGPU_COUNTS:-1,2}
source benchmarks/device_setup.sh || exit 1
export ARC2AVATAR_CACHE=/tmp/a2a_cache PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
LOG="$OUT/suite.log"
step() {
  local name=$1; shift
  echo "=== $name: $*" | tee -a "$LOG"
  local start=$(date +%s)
  "$@" >> "$LOG" 2>&1
  echo "=== $name rc=$? in $(( $(date +%s) - start )) s" | tee -a "$LOG"
}
for s in "$@"; do
  case "$s" in
    smoke) step smoke python3 -m arc2avatar.cli.main demo -o /tmp/smoke --set device=cuda --set iterations=60 --no-progress --json ;;
    parity) step parity python3 benchmarks/render_parity.py --out "$OUT/parity.json" ;;
    prior) step prior python3 benchmarks/bench_prior.py --out "$OUT/prior.json" --device cuda --dtype fp16 --iters 10
           step prior500 python3 benchmarks/bench_prior.py --out "$OUT/prior_t500.json" --device cuda --dtype fp16 --iters 5 --fixed-t 500 ;;
    multigpu_lora) step multigpu_lora python3 benchmarks/bench_multigpu.py --out "$OUT/multigpu_lora_${MULTIGPU_COUNTS//,/-}.json" --what lora \
                     --gpus "$MULTIGPU_COUNTS" --work /tmp/multigpu ;;
    multigpu_create) step multigpu_create python3 benchmarks/bench_multigpu.py --out "$OUT/multigpu_create_${MULTIGPU_COUNTS//,/-}.json" --what create \
                       --gpus "$MULTIGPU_COUNTS" --jobs 4 --iterations 100 --work /tmp/multigpu ;;
    accel_tests) step accel_tests python3 -m pytest tests/test_accel.py -q -p no:cacheprovider -x ;;
    profile) step profile python3 benchmarks/profile_prior.py --out "$OUT/profile" ${PROFILE_ARGS:-} ;;
    bench) step bench python3 -m arc2avatar.cli.main bench --out "$OUT/bench.json" --work /tmp/bench --no-progress ${BENCH_ARGS:-} ;;
    create200) step create200 python3 benchmarks/bench_create.py --out "$OUT/create200.json" --iterations 200 --preset paper ;;
    oracle) step oracle timeout "${ORACLE_TIMEOUT:-420}" python3 -m arc2avatar.cli.main demo -o /tmp/oracle --preset paper \
              --set device=cuda --set resolution=256 --set rgb_latent_resolution=256 --set meanface.resolution=256 \
              --set densify.grad_threshold=0.2 ${ORACLE_SET:-} --no-progress --json
            for f in metrics.json views.png log.jsonl; do cp /tmp/oracle/$f "$OUT/oracle_$f" 2>/dev/null; done ;;
  esac
done
tail -c 3000 "$LOG"
