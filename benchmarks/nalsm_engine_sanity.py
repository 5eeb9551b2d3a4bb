"""Engine sanity check: branching factor and firing rate of nalsm / lsm-stdp / lsm on MNIST.

    ASTROSNN_DATA=/work/shared/data taskset -c 0 env NUMBA_NUM_THREADS=1 \
        python benchmarks/nalsm_engine_sanity.py --phase1-samples 1000 --bf-samples 20

Phase 1 on the first N training images (20 ms each), phase 2 (250 ms, x0.99 decay) on the next
`--bf-samples` images, the paper's branching-factor estimator over those. Not the recorded comparison.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--phase1-samples", type=int, default=1000)
    ap.add_argument("--bf-samples", type=int, default=20)
    ap.add_argument("--grid", default="10x10x10")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--backend", default="fast")
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args()

    from astrosnn.data.encoders import bernoulli_spikes, rate_probabilities
    from astrosnn.data.images import load_images
    from astrosnn.nalsm.branching import branching_factor_per_sample
    from astrosnn.nalsm.engine import PlasticityConfig, extract_features, run_phase1
    from astrosnn.nalsm.topology import PRE_INPUT, build_network

    n1 = args.phase1_samples
    images = load_images("mnist", "train", data_dir=args.data_dir, limit=n1 + args.bf_samples)
    probs, _ = rate_probabilities(images.images)
    gen = torch.Generator().manual_seed(args.seed)
    grid = tuple(int(g) for g in args.grid.split("x"))
    net = build_network(grid, 784, seed=args.seed)
    test = bernoulli_spikes(probs[n1:], 250, gen)
    phase1 = bernoulli_spikes(probs[:n1], 20, gen)
    recurrent = torch.from_numpy(net.pre_kind != PRE_INPUT)
    print("| variant | BF | liquid rate (spikes/neuron/ms) | mean recurrent abs(w) | wall s |\n|---|---|---|---|---|")
    for name, rule, magnitude in [("nalsm", "astro", 3.0), ("lsm-stdp", "stdp", 3.0), ("lsm w = 0.8", "none", 0.8),
                                  ("lsm w = 3", "none", 3.0)]:
        liquid = build_network(grid, 784, seed=args.seed, weight_magnitude=magnitude)
        cfg = PlasticityConfig(rule=rule, seed=args.seed)
        t0 = time.perf_counter()
        w = (run_phase1(liquid, phase1, cfg, progress=False, backend=args.backend) if rule != "none"
             else torch.from_numpy(liquid.weight))
        res = extract_features(liquid, w, test, cfg.phase2(), record=True, backend=args.backend)
        bf = float(np.nanmean(branching_factor_per_sample(res.spikes, liquid)))
        rate = res.counts.mean().item() / test.shape[1]
        print(f"| {name} | {bf:.3f} | {rate:.3f} | {w[recurrent].abs().mean():.2f} | {time.perf_counter() - t0:.1f} |",
              flush=True)


if __name__ == "__main__":
    main()
