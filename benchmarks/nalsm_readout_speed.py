"""Seconds per readout epoch of the Adadelta engines, side by side (NALSM8000's full-MNIST readout shape).

    taskset -c 0 env OMP_NUM_THREADS=1 python benchmarks/nalsm_readout_speed.py [--json FILE]

Synthetic spike counts (Poisson, class-dependent rates averaging `--rate` spikes per neuron and sample:
NALSM8000 fires ~4.3 Hz over the 250-ms phase 2, ~1.1 spikes) with the full protocol's shapes: 50,000
training, 10,000 validation and 10,000 test samples x 8000 neurons, minibatch 50 (the paper's at 8000),
normalised as the readout does. Timed per epoch, each piece on its own: one training epoch of each engine
(interleaved, best of `--reps`), and one accuracy pass over each split. An epoch of the readout costs
engine epoch + validation and test passes, plus a training pass when the training accuracy is computed at the
end of the epoch (before this change always; now only without a validation split). Also checks that the
engines' weights agree to rounding after the timed epochs.

    taskset -c 1 env OMP_NUM_THREADS=1 python benchmarks/nalsm_readout_speed.py --features RUN [--engines fused]

A whole readout on a run's saved features (`astrosnn nalsm train --save-features`) with the run's readout
config, per engine: the chosen epoch, validation and test accuracy and wall time, beside the run's own
(metrics.json): the check that an engine reproduces a recorded result.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--train", type=int, default=50_000)
    ap.add_argument("--val", type=int, default=10_000)
    ap.add_argument("--test", type=int, default=10_000)
    ap.add_argument("--neurons", type=int, default=8000)
    ap.add_argument("--batch-size", type=int, default=50)
    ap.add_argument("--rate", type=float, default=1.1, help="mean spikes per neuron and sample")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--engines", default="autograd,fused")
    ap.add_argument("--json", default=None)
    ap.add_argument("--features", default=None, help="a run folder with features.safetensors: whole readouts")
    args = ap.parse_args()
    if args.features:
        return whole_readouts(args)

    from astrosnn.nalsm.config import ReadoutConfig
    from astrosnn.nalsm.readout import _accuracy, normalize_in_chunks, soft_targets
    from astrosnn.nalsm.readout_adadelta import check_engine, make_adadelta_engine

    torch.set_num_threads(1)  # as train_readout does
    engines = args.engines.split(",")
    for name in engines:
        check_engine(name)
    rng = np.random.default_rng(0)
    prototypes = rng.gamma(1.0, args.rate, (10, args.neurons))  # class-dependent rates: learnable
    xs, ys = {}, {}
    for split, n in (("train", args.train), ("val", args.val), ("test", args.test)):
        labels = rng.integers(0, 10, n)
        xs[split] = normalize_in_chunks(rng.poisson(prototypes[labels]).astype(np.float32), args.batch_size)
        ys[split] = torch.as_tensor(labels)
    targets = soft_targets(ys["train"], 10)
    bs = args.batch_size
    batches = [(xs["train"][i:i + bs], targets[i:i + bs], ys["train"][i:i + bs]) for i in range(0, args.train, bs)]
    cfg = ReadoutConfig(batch_size=bs)
    fits = {name: make_adadelta_engine(name, 10, args.neurons, cfg) for name in engines}
    epoch_s: dict[str, float] = {}
    for rep in range(args.reps):
        for name, fit in fits.items():
            t0 = time.perf_counter()
            fit.epoch(batches)
            took = time.perf_counter() - t0
            epoch_s[name] = min(epoch_s.get(name, float("inf")), took)
            print(f"rep {rep} {name:9s} training epoch {took:6.2f} s", flush=True)
    pass_s = {}
    w, b = fits[engines[0]].weight, fits[engines[0]].bias
    for split in xs:
        t0 = time.perf_counter()
        for _ in range(args.reps):
            _accuracy(w, b, xs[split], ys[split])
        pass_s[split] = (time.perf_counter() - t0) / args.reps
    print("accuracy passes: " + ", ".join(f"{k} {v:.2f} s" for k, v in pass_s.items()))
    base = engines[0]
    before = epoch_s[base] + sum(pass_s.values())
    print(f"readout epoch before: {base} + train/val/test passes = {before:.2f} s")
    for name in engines:
        now = epoch_s[name] + pass_s["val"] + pass_s["test"]
        gap = float((fits[name].weight - fits[base].weight).abs().max() / fits[base].weight.abs().max().clamp_min(1e-30))
        print(f"readout epoch now, {name:9s}: {now:6.2f} s  x{before / now:.2f}  (training epoch x{epoch_s[base] / epoch_s[name]:.2f}"
              f" vs {base}; weights' largest relative gap {gap:.1e})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "training_epoch_s": epoch_s, "accuracy_pass_s": pass_s,
                       "torch": torch.__version__, "machine": platform.processor() or platform.machine()}, f, indent=2)


def whole_readouts(args) -> None:
    from pathlib import Path

    from astrosnn.nalsm.config import ReadoutConfig
    from astrosnn.nalsm.readout import train_readout
    from astrosnn.runinfo import load_json, load_tensors

    run = Path(args.features)
    data = load_tensors(run / "features.safetensors")  # one clear error for a missing or damaged file
    metrics = load_json(run / "metrics.json")
    cfg = ReadoutConfig.from_dict(metrics["config"]["readout"])
    splits = [data[f"{s}.{k}"] for s in ("train", "validation", "test") for k in ("counts", "labels")]
    print(f"{run.name}, recorded: epoch {metrics['best_epoch']}, validation {metrics['validation_accuracy']:.4f}, "
          f"test {metrics['test_accuracy']:.4f} ({metrics.get('readout_engine') or 'autograd'})")
    rows = {}
    for name in args.engines.split(","):
        t0 = time.perf_counter()
        r = train_readout(*splits, config=cfg, engine=name)
        h = r.history
        rows[name] = {"best_epoch": h.best_epoch, "validation": h.val_accuracy[h.best_epoch],
                      "test": h.test_accuracy[h.best_epoch], "epochs": len(h.loss), "seconds": time.perf_counter() - t0}
        print(f"{name:9s} epoch {h.best_epoch}, validation {rows[name]['validation']:.4f}, test "
              f"{rows[name]['test']:.4f}; {len(h.loss)} epochs in {rows[name]['seconds']:.0f} s", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"run": str(run), "recorded": {k: metrics[k] for k in ("best_epoch", "validation_accuracy",
                       "test_accuracy")}, "engines": rows, "torch": torch.__version__}, f, indent=2)


if __name__ == "__main__":
    import sys

    from astrosnn.errors import AstrosnnError

    try:
        main()
    except (AstrosnnError, OSError) as err:  # unknown engine, missing or damaged run folder
        sys.exit(f"error: {err}")
    except (KeyError, TypeError) as err:  # readable files without the expected entries
        sys.exit(f"error: not a saved NALSM run folder (missing entry {err})")
