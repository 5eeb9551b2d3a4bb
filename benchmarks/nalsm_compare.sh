#!/usr/bin/env bash
# NALSM vs LSM vs LSM+STDP at the same liquid (1000 neurons, seed 0), on digits and an MNIST subset.
# Pinned to one core, one thread. Usage: bash benchmarks/nalsm_compare.sh [STAGE...]
# Stages: digits (seed 0), mnist, digits-seeds (seeds 1 and 2), lsm-sweep (digits, lsm |w| sweep),
# mnist-full and fashion-mnist-full (the paper's protocol: 50k phase-1 samples, train 50k / validation 10k / test 10k; VARIANTS picks
# which, e.g. CORE=1 VARIANTS=lsm to run a second variant beside the first on the other core).
# Outputs: runs/nalsm-compare/<name>/ (metrics.json, model, plots) and runs/nalsm-compare/<name>.log
set -u
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 MKL_NUM_THREADS=1
OUT=runs/nalsm-compare
mkdir -p "$OUT"
CORE=${CORE:-0}
DATA=${DATA:-../shared/data}
run() {  # name, args...
  local name=$1; shift
  if [ -f "$OUT/$name/metrics.json" ]; then echo "skip $name (done)"; return; fi
  if [ -f "$OUT/$name/checkpoint/state.json" ]; then set -- "$@" --resume; fi  # an interrupted run
  echo "$(date -u +%FT%TZ) start $name: astrosnn nalsm train $*"
  /usr/bin/time -v taskset -c "$CORE" astrosnn nalsm train "$@" --threads 1 --quiet --out "$OUT/$name" \
    > "$OUT/$name.log" 2>&1
  echo "$(date -u +%FT%TZ) end $name rc=$? $(tail -n 30 "$OUT/$name.log" | grep 'test accuracy')"
}
STAGES=${*:-digits mnist digits-seeds lsm-sweep}
for stage in $STAGES; do
  case $stage in
    digits)
      for v in nalsm lsm lsm-stdp; do run "digits-$v-s0" --variant "$v" --seed 0 --kernel-quality 40 --save-features; done ;;
    mnist)
      for v in nalsm lsm lsm-stdp; do
        run "mnist-$v-s0" --dataset mnist --data-dir "$DATA" --no-download --variant "$v" --seed 0 \
          --phase1-samples 10000 --limit 10000 --val-limit 2000 --test-limit 2000 \
          --epochs 3000 --patience 300 --kernel-quality 50 --save-features
      done ;;
    digits-seeds)
      for s in 1 2; do for v in nalsm lsm lsm-stdp; do run "digits-$v-s$s" --variant "$v" --seed "$s"; done; done ;;
    mnist-full|fashion-mnist-full)
      for v in ${VARIANTS:-nalsm lsm lsm-stdp}; do
        run "$stage-$v-s0" --dataset "${stage%-full}" --data-dir "$DATA" --no-download --variant "$v" --seed 0 \
          --save-features
      done ;;
    lsm-sweep)
      for w in 0.4 0.6 1.0 1.2 1.4; do run "digits-lsm-w$w-s0" --variant lsm --lsm-weight "$w" --seed 0; done ;;
  esac
done
echo "$(date -u +%FT%TZ) all done"
