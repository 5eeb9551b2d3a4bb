#!/usr/bin/env bash
# NALSM vs LSM vs LSM+STDP at the same liquid (seed 0): digits, an MNIST subset, full MNIST / Fashion-MNIST.
# Pinned to core CORE (default 0) with THREADS threads (default 1). Usage: bash benchmarks/nalsm_compare.sh [STAGE...]
# Stages: digits (seed 0), mnist (10k subset), digits-seeds (seeds 1 and 2), lsm-sweep (digits, lsm |w| sweep),
# mnist-full and fashion-mnist-full (the paper's protocol: 50k phase-1 samples, train 50k / validation 10k /
# test 10k; VARIANTS picks which, e.g. CORE=1 VARIANTS=lsm runs a second variant beside the first; SEEDS="1 2" more seeds),
# nmnist (the N-MNIST subset in DATA, all variants), mnist-full-8000 and fashion-mnist-full-8000 (the 8000-neuron liquid,
# VARIANTS default nalsm, e.g. VARIANTS=lsm for LSM8000: hours; rerunning the stage resumes an interrupted run).
# Outputs: runs/nalsm-compare/<name>/ (metrics.json, model, plots) and runs/nalsm-compare/<name>.log
set -u
cd "$(dirname "$0")/.."
THREADS=${THREADS:-1}  # e.g. CORE=0,1 THREADS=2 for one run on both cores
NPROC=${NPROC:-1}  # >1: phase 2 over NPROC torchrun processes (features identical), e.g. CORE=0,1 NPROC=2
BACKEND=${BACKEND:-}  # e.g. BACKEND=event64: the event-driven engine (3-4x faster; see BENCHMARKS.md)
ASTRO_W=${ASTRO_W:-}  # e.g. ASTRO_W=0.001: NALSM with that w_astro (full and 8000 stages); runs named *-w<W>
TRACES=${TRACES:-}  # TRACES=carry: the authors' phase-2 traces (carried across batches); runs named *-carry
export OMP_NUM_THREADS=$THREADS NUMBA_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS
OUT=runs/nalsm-compare
mkdir -p "$OUT"
CORE=${CORE:-0}
DATA=${DATA:-../shared/data}
run() {  # name, args...
  local name=$1; shift
  if [ -f "$OUT/$name/metrics.json" ]; then echo "skip $name (done)"; return; fi
  if [ -f "$OUT/$name/checkpoint/state.json" ]; then set -- "$@" --resume; fi  # an interrupted run
  echo "$(date -u +%FT%TZ) start $name: astrosnn nalsm train $*"
  local launch=(astrosnn)
  if [ "$NPROC" -gt 1 ]; then launch=(python -m torch.distributed.run --standalone --nproc-per-node "$NPROC" -m astrosnn); fi
  /usr/bin/time -v taskset -c "$CORE" "${launch[@]}" nalsm train "$@" ${BACKEND:+--backend "$BACKEND"} --threads "$THREADS" --quiet --out "$OUT/$name" \
    >> "$OUT/$name.log" 2>&1
  local rc=$?
  echo "$(date -u +%FT%TZ) end $name rc=$rc $(tail -n 30 "$OUT/$name.log" | grep 'test accuracy')"
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
      for s in ${SEEDS:-0}; do for v in ${VARIANTS:-nalsm lsm lsm-stdp}; do
        run "$stage-$v${ASTRO_W:+-w$ASTRO_W}-s$s${TRACES:+-$TRACES}" --dataset "${stage%-full}" --data-dir "$DATA" --no-download \
          --variant "$v" --seed "$s" --save-features ${TRACES:+--phase2-traces "$TRACES"} ${ASTRO_W:+--astro-weight "$ASTRO_W"}
      done; done ;;
    nmnist)  # the N-MNIST subset present (1,000 train / 100 test files: train 833, validation 167, test 100)
      for s in ${SEEDS:-0}; do for v in ${VARIANTS:-nalsm lsm lsm-stdp}; do
        run "nmnist-$v-s$s" --dataset nmnist --data-dir "$DATA" --no-download --variant "$v" --seed "$s" --save-features
      done; done ;;
    mnist-full-8000|fashion-mnist-full-8000)  # ~1-2 h each on an idle core: checkpoints every 4 batches; rerunning resumes
      for s in ${SEEDS:-0}; do for v in ${VARIANTS:-nalsm}; do
        run "${stage%-8000}-${v}8000${ASTRO_W:+-w$ASTRO_W}-s$s${TRACES:+-$TRACES}" --dataset "${stage%-full-8000}" --data-dir "$DATA" \
          --no-download --preset nalsm8000 --variant "$v" --seed "$s" --checkpoint-every 4 ${TRACES:+--phase2-traces "$TRACES"} \
          ${ASTRO_W:+--astro-weight "$ASTRO_W"}
      done; done ;;
    lsm-sweep)
      for w in 0.4 0.6 1.0 1.2 1.4; do run "digits-lsm-w$w-s0" --variant lsm --lsm-weight "$w" --seed 0; done ;;
  esac
done
echo "$(date -u +%FT%TZ) all done"
