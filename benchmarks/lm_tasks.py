"""Memory retention: delayed-recall and MQAR accuracy of AstroSNN, LIF-SNN, LSTM at equal size and time.

Every (model, task setting) pair trains for the same wall-clock budget on fresh random batches, then
is scored on one fixed held-out batch. One thread; pin it for stable timings:

    OMP_NUM_THREADS=1 taskset -c 1 python benchmarks/lm_tasks.py --delays 16,64,256 --budget 60
"""

from __future__ import annotations

import argparse
import json
import time
from functools import partial

import torch

from astrosnn.lm import build_model, count_parameters, width_for_parameters
from astrosnn.lm.tasks import delayed_recall, masked_accuracy, masked_loss, mqar


def run(kind: str, make_batch, vocab: int, budget: float, params: int, lr: float, seed: int) -> dict:
    torch.manual_seed(seed)
    opts = {"layers": 2, "heads": 4, "seq_len": 1024}
    width = width_for_parameters(kind, vocab, params, **opts)
    model = build_model(kind, vocab, width=width, **opts)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    train_gen = torch.Generator().manual_seed(seed)
    test = make_batch(256, generator=torch.Generator().manual_seed(10_000 + seed))
    steps, t0, losses = 0, time.perf_counter(), []
    while time.perf_counter() - t0 < budget:
        batch = make_batch(32, generator=train_gen)
        logits, _ = model(batch.inputs)
        loss = masked_loss(logits, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(float(loss.detach()))
        steps += 1
    model.eval()
    with torch.no_grad():
        acc = masked_accuracy(model(test.inputs)[0], test)
    return {"model": kind, "parameters": count_parameters(model), "steps": steps, "accuracy": acc,
            "final_loss": sum(losses[-20:]) / max(len(losses[-20:]), 1), "finite": all(map(lambda x: x == x, losses))}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="astrosnn,lif-snn,lstm")
    p.add_argument("--delays", default="16,64,256")
    p.add_argument("--mqar-pairs", default="24", help="MQAR pairs (sequence length 3 x pairs); empty: skip")
    p.add_argument("--budget", type=float, default=60.0, help="training seconds per (model, setting)")
    p.add_argument("--params", type=int, default=100_000)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="also write the rows to this JSON file")
    args = p.parse_args()
    torch.set_num_threads(1)
    settings = [(f"delayed recall, delay {d} (chance 0.0625)", partial(delayed_recall, delay=int(d), length=8, symbols=16), 18)
                for d in args.delays.split(",") if d]
    settings += [(f"MQAR, {n} pairs (chance 0.031)", partial(mqar, pairs=int(n), keys=32, values=32), 64)
                 for n in args.mqar_pairs.split(",") if n]
    rows = []
    print("| task | model | parameters | steps | accuracy | final loss |\n|---|---|---:|---:|---:|---:|", flush=True)
    for name, make, vocab in settings:
        for kind in args.models.split(","):
            r = run(kind, make, vocab, args.budget, args.params, args.lr, args.seed)
            r["task"] = name
            rows.append(r)
            print(f"| {name} | {kind} | {r['parameters']:,} | {r['steps']} | {r['accuracy']:.3f} | {r['final_loss']:.3f} |",
                  flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
