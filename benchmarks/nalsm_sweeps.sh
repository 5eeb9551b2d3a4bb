#!/usr/bin/env bash
# Digits sweeps at 1000 neurons, seed 0, pinned to one core: NALSM w_astro (paper: larger w_astro -> lower BF)
# and NALSM with a frozen liquid in phase 2. Usage: bash benchmarks/nalsm_sweeps.sh
set -u
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 MKL_NUM_THREADS=1
OUT=runs/nalsm-compare
mkdir -p "$OUT"
CORE=${CORE:-0}
run() {  # name, args...
  local name=$1; shift
  if [ -f "$OUT/$name/metrics.json" ]; then echo "skip $name (done)"; return; fi
  echo "$(date -u +%FT%TZ) start $name: astrosnn nalsm train $*"
  taskset -c "$CORE" astrosnn nalsm train "$@" --threads 1 --quiet --out "$OUT/$name" > "$OUT/$name.log" 2>&1
  echo "$(date -u +%FT%TZ) end $name rc=$? $(tail -n 30 "$OUT/$name.log" | grep 'test accuracy')"
}
for w in 0.002 0.0075 0.05 0.1 0.2; do run "digits-nalsm-astro$w-s0" --variant nalsm --astro-weight "$w" --seed 0; done
run "digits-nalsm-frozen-s0" --variant nalsm --freeze-liquid --seed 0
run "digits-lsm-stdp-frozen-s0" --variant lsm-stdp --freeze-liquid --seed 0
echo "$(date -u +%FT%TZ) all done"
