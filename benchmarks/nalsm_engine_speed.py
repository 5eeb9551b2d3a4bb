"""Steps per second of the NALSM engine backends (1000-neuron liquid, MNIST rate-coded input).

    taskset -c 0 env OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python benchmarks/nalsm_engine_speed.py

Batch 1 is timed as phase 1 (20-ms samples, weights carried); batches > 1 as phase 2 (per-sample weights,
x0.99 decay). "sample-steps/s" = batch x steps / wall time. The first call of each backend (numba compile)
is excluded.
"""

from __future__ import annotations

import argparse
import json
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--grid", default="10x10x10")
    ap.add_argument("--batches", default="1,64,256")
    ap.add_argument("--backends", default="reference,fast")
    ap.add_argument("--steps", type=int, default=250, help="steps per phase-2 sample")
    ap.add_argument("--phase1-samples", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--max-seconds", type=float, default=40.0, help="cut a measurement's steps to about this")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    import numba

    from astrosnn.data.encoders import bernoulli_spikes, rate_probabilities
    from astrosnn.data.images import load_images
    from astrosnn.nalsm.engine import PlasticityConfig, extract_features, run_phase1
    from astrosnn.nalsm.topology import build_network
    from astrosnn.runinfo import versions

    torch.set_num_threads(args.threads)
    numba.set_num_threads(args.threads)
    grid = tuple(int(g) for g in args.grid.split("x"))
    net = build_network(grid, 784, seed=0)
    batches = [int(b) for b in args.batches.split(",")]
    images = load_images("mnist", "train", data_dir=args.data_dir, limit=max(max(batches), args.phase1_samples))
    probs, _ = rate_probabilities(images.images)
    gen = torch.Generator().manual_seed(0)
    cfg = PlasticityConfig(rule="astro")
    rows = []
    for backend in args.backends.split(","):
        # warm-up (numba compile, torch allocator)
        run_phase1(net, bernoulli_spikes(probs[:2], 20, gen), cfg, progress=False, backend=backend)
        extract_features(net, net.weight, bernoulli_spikes(probs[:2], 5, gen), cfg.phase2(), backend=backend)
        for batch in batches:
            if batch == 1:
                n = args.phase1_samples
                probe = max(2, n // 10)
                t0 = time.perf_counter()
                run_phase1(net, bernoulli_spikes(probs[:probe], 20, gen), cfg, progress=False, backend=backend)
                per = (time.perf_counter() - t0) / probe
                n = int(min(n, max(probe, args.max_seconds / per)))
                x = bernoulli_spikes(probs[:n], 20, gen)
                t0 = time.perf_counter()
                run_phase1(net, x, cfg, progress=False, backend=backend)
                wall = time.perf_counter() - t0
                steps, what = n * 20, f"phase 1: {n} samples x 20 ms"
            else:
                x = bernoulli_spikes(probs[:batch], args.steps, gen)
                t0 = time.perf_counter()
                extract_features(net, net.weight, x[:, :10], cfg.phase2(), backend=backend)
                per = (time.perf_counter() - t0) / 10
                steps = int(min(args.steps, max(10, args.max_seconds / per)))
                t0 = time.perf_counter()
                res = extract_features(net, net.weight, x[:, :steps], cfg.phase2(), backend=backend)
                wall = time.perf_counter() - t0
                what = f"phase 2: {batch} samples x {steps} ms, {res.counts.sum().item() / batch / steps:.1f} liquid spikes/ms"
            rows.append({"backend": backend, "batch": batch, "steps": steps, "wall_s": round(wall, 3),
                         "steps_per_s": round(steps / wall, 1), "sample_steps_per_s": round(batch * steps / wall, 1),
                         "what": what})
            print(json.dumps(rows[-1]), flush=True)
    info = {"grid": args.grid, "n_synapses": net.n_synapses, "threads": args.threads, "versions": versions()}
    print("\n| backend | batch | steps/s | sample-steps/s | wall s | run |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['backend']} | {r['batch']} | {r['steps_per_s']} | {r['sample_steps_per_s']} | {r['wall_s']} | {r['what']} |")
    print("\n" + json.dumps(info))
    if args.json:
        from astrosnn.runinfo import atomic_write_json

        atomic_write_json(args.json, {"rows": rows, **info})


if __name__ == "__main__":
    main()
