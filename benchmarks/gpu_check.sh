#!/usr/bin/env bash
# One CUDA GPU, under 5 minutes: the CUDA equality tests, then the 125M preset's training speed and peak memory.
#
#   bash benchmarks/gpu_check.sh            # from the repository root (or anywhere: it cds there)
#
# 1. pytest on the GPU-relevant tests (the Triton LIF scan, the astrocyte's chunked kernels, CUDA training with
#    bf16 autocast): each compares the CUDA result with the CPU reference; they skip without CUDA.
# 2. astrosnn-125m (vocabulary 50,257): forward + backward + AdamW at micro-batch 8 x 1024 in bf16 autocast, with
#    and without activation checkpointing: tokens/s and torch.cuda.max_memory_allocated.
# 3. `astrosnn lm train --preset astrosnn-125m` for a few steps through torchrun (1 process, nccl): the real path.
# 4. The issue-15 speed tables (decode, training tokens/s, Linear + LIF against Norse / SpikingJelly / snnTorch).
# 5. NALSM phase 2 on CUDA (the batched reference, `--backend cuda`) against event64 on the 16 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python}

"$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else "gpu_check: no CUDA device")'
"$PY" -c 'import torch; print("device:", torch.cuda.get_device_name(0), "| torch", torch.__version__)'

echo "== 1. CUDA equality tests"
timeout 150 "$PY" -m pytest -q -x -p no:cacheprovider tests/lm -k "cuda or triton or fla or gpu" || {
    echo "gpu_check: CUDA tests failed"; exit 1; }

echo "== 2. astrosnn-125m: tokens/s and peak memory"
timeout 90 "$PY" - <<'PY'
import time, torch
from astrosnn.lm.presets import get_preset, model_options, parameters
from astrosnn.lm.registry import build_model
from astrosnn.lm.distributed import activation_checkpointing

p = get_preset("astrosnn-125m")
V, B, T, steps = 50257, 8, 1024, 6
print(f"{p.name}: {parameters(p, V):,} parameters, micro-batch {B} x {T}, bf16 autocast")
for ckpt in (False, True):
    torch.manual_seed(0)
    torch.cuda.reset_peak_memory_stats()
    model = build_model("astrosnn", V, **model_options(p)).cuda()
    if ckpt:
        activation_checkpointing(model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    ids = torch.randint(0, V, (B, T + 1), device="cuda")
    for i in range(steps):
        if i == 2:
            torch.cuda.synchronize(); t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits, _ = model(ids[:, :-1])
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V).float(), ids[:, 1:].reshape(-1))
        loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    tps = B * T * (steps - 2) / (time.perf_counter() - t0)
    print(f"  activation checkpointing {'on ' if ckpt else 'off'}: {tps:,.0f} tokens/s, peak memory "
          f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB, loss {float(loss):.3f}")
    del model, opt
PY

echo "== 3. lm train --preset astrosnn-125m through torchrun (1 process)"
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
timeout 120 "$PY" -m torch.distributed.run --standalone --nproc-per-node 1 -m astrosnn lm train --preset astrosnn-125m \
    --corpus default --seq-len 256 --batch-size 8 --steps 8 --eval-tokens 4096 --quiet --out "$OUT/run"
"$PY" -c "import json,sys; m=json.load(open(sys.argv[1])); print(f\"lm train: {m['tokens_per_second']:,.0f} tokens/s\")" "$OUT/run/metrics.json"
echo "== 4. issue 15 tables on the GPU: decode, training throughput, the LIF layer against its peers"
timeout 60 "$PY" benchmarks/lm_decode.py --device cuda --contexts 64,1024,8192 --params 1000000,10000000 --tokens 20 --rounds 2
timeout 60 "$PY" benchmarks/lm_speed.py --device cuda --models astrosnn lif-snn lstm transformer --width 512 --threads 1 --steps 3 --repeats 2 --markdown
timeout 45 "$PY" benchmarks/lif_peers.py --device cuda --rounds 3
echo "== 5. NALSM phase 2 on the GPU (issue 13 §3): the cuda backend against the CPU's event64 at 8000 neurons"
timeout 40 "$PY" -m pytest -q -x -p no:cacheprovider tests/nalsm/test_engine_backends.py -k device
timeout 90 "$PY" benchmarks/nalsm_engine_speed.py --grid 20x20x20 --backends event64,cuda --batches 256 \
    --phase1-samples 5 --threads 16 --max-seconds 20
echo "gpu_check: done"
