"""`astrosnn nalsm train`: NALSM / LSM / LSM+STDP on digits, MNIST, Fashion-MNIST or N-MNIST.

Writes DIR/metrics.json, DIR/config.json, the trained liquid (liquid.safetensors + liquid.json) and readout
(readout.safetensors), DIR/model.json and the plots; prints test accuracy and branching factor."""

from __future__ import annotations

import argparse
import sys

from astrosnn.errors import AstrosnnError

DATASETS = ("digits", "mnist", "fashion-mnist", "nmnist")
VARIANTS = ("nalsm", "lsm", "lsm-stdp")
READOUTS = ("adadelta", "ridge", "logistic")
# The no-option run (embedded digits, 64 inputs) must finish in about 2 minutes on 2 cores.
DIGITS_PRESET = "nalsm-digits"
DEFAULT_PRESET = "nalsm1000"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("nalsm", help="neuron-astrocyte liquid state machine (NALSM, LSM, LSM+STDP)",
                       description="Neuron-astrocyte liquid state machine (Ivanov & Michmizos, NeurIPS 2021).")
    group = p.add_subparsers(dest="nalsm_command", metavar="ACTION")
    group.required = True
    t = group.add_parser(
        "train", help="phase 1 + phase-2 features + readout; writes metrics, model and plots",
        description="Train a liquid and its readout. With no options: NALSM on the embedded 8x8 digits "
                    f"(preset {DIGITS_PRESET}), about 1-2 minutes on 2 cores.")
    t.add_argument("--dataset", default="digits", metavar="NAME", help=f"one of {', '.join(DATASETS)} (default digits)")
    size = t.add_mutually_exclusive_group()
    size.add_argument("--grid", metavar="AxBxC", help="liquid grid AxBxC, e.g. 10x10x10 (default: the preset's)")
    size.add_argument("--neurons", type=int, metavar="N", help="liquid size; the most cube-like grid (1000 -> 10x10x10)")
    t.add_argument("--variant", metavar="NAME",
                   help=f"one of {', '.join(VARIANTS)} (default: the preset's, nalsm for the default presets)")
    t.add_argument("--preset", metavar="NAME", help=f"base configuration (default {DIGITS_PRESET} for digits, "
                                    f"{DEFAULT_PRESET} otherwise)")
    t.add_argument("--config", metavar="FILE", help="a JSON config file (NALSMConfig keys) instead of a preset")
    t.add_argument("--phase1-samples", type=int, metavar="N", help="phase-1 (unsupervised) samples of 20 ms")
    t.add_argument("--phase2-ms", type=int, metavar="MS", help="presentation time per sample in phase 2 (paper 250)")
    t.add_argument("--limit", type=int, metavar="N", help="use the first N samples of every split")
    t.add_argument("--val-limit", type=int, metavar="N", help="validation samples (default: --limit)")
    t.add_argument("--test-limit", type=int, metavar="N", help="test samples (default: --limit)")
    t.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the graph, encodings and phase-1 order")
    t.add_argument("--out", metavar="DIR", help="output folder (default runs/nalsm/<dataset>-<variant>-seed<S>)")
    t.add_argument("--data-dir", metavar="DIR", help="data folder (default $ASTROSNN_DATA or the user cache)")
    t.add_argument("--no-download", action="store_true", help="never download missing data files")
    t.add_argument("--readout", metavar="NAME", help=f"one of {', '.join(READOUTS)} (default adadelta, the paper's)")
    t.add_argument("--epochs", type=int, metavar="N", help="maximum readout epochs (Adadelta)")
    t.add_argument("--patience", type=int, metavar="N", help="stop after this many epochs without a better validation accuracy")
    t.add_argument("--lsm-weight", type=float, metavar="W", help="|w| of every synapse of the fixed-weight lsm (default 0.8)")
    t.add_argument("--astro-weight", type=float, metavar="W", help="w_astro (default 0.015*(1000/N)^(1/3))")
    t.add_argument("--freeze-liquid", action="store_true", help="no plasticity in phase 2")
    t.add_argument("--batch-size", type=int, metavar="N", help="phase-2 and readout minibatch size")
    t.add_argument("--bf-samples", type=int, metavar="N", help="test samples recorded for the branching factor (paper 20)")
    t.add_argument("--kernel-quality", type=int, default=0, metavar="PER_CLASS",
                   help="also measure separation/generalisation ranks on PER_CLASS test images per class")
    t.add_argument("--backend", default="auto", metavar="NAME", help="engine backend: auto, reference or fast")
    t.add_argument("--threads", type=int, metavar="N", help="torch threads (default: torch's)")
    t.add_argument("--save-features", action="store_true",
                   help="also write features.safetensors (phase-2 spike counts and labels of every split)")
    t.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    t.add_argument("--quiet", action="store_true", help="no progress bars")
    t.add_argument("--resume", action="store_true",
                   help="continue the interrupted run in --out (same options) from its checkpoint")
    t.add_argument("--checkpoint-every", type=int, default=20, metavar="BATCHES",
                   help="save phase-2 features to DIR/checkpoint every this many batches (default 20)")
    t.set_defaults(func=run_train)


def _nonneg(name: str, value: int | None, *, positive: bool = False) -> None:
    if value is not None and (value < 1 if positive else value < 0):
        raise AstrosnnError(f"{name} must be {'>= 1' if positive else '>= 0'}, got {value}")


def build_config(args: argparse.Namespace):
    """The run's NALSMConfig from --config/--preset and the option overrides (validated)."""
    from astrosnn.nalsm.config import NALSMConfig, grid_for_neurons, parse_grid

    if args.dataset not in DATASETS:
        raise AstrosnnError(f"unknown dataset {args.dataset!r}; choose from {', '.join(DATASETS)}")
    if args.variant is not None and args.variant not in VARIANTS:
        raise AstrosnnError(f"unknown variant {args.variant!r}; choose from {', '.join(VARIANTS)}")
    if args.readout is not None and args.readout not in READOUTS:
        raise AstrosnnError(f"unknown readout {args.readout!r}; choose from {', '.join(READOUTS)}")
    for name in ("phase1_samples", "limit", "val_limit", "test_limit", "bf_samples", "kernel_quality"):
        _nonneg("--" + name.replace("_", "-"), getattr(args, name))
    for name in ("phase2_ms", "epochs", "patience", "batch_size", "threads", "neurons", "checkpoint_every"):
        _nonneg("--" + name.replace("_", "-"), getattr(args, name), positive=True)
    if args.seed < 0:
        raise AstrosnnError(f"--seed must be >= 0, got {args.seed}")
    for name in ("lsm_weight", "astro_weight"):
        v = getattr(args, name)
        if v is not None and not v > 0:
            raise AstrosnnError(f"--{name.replace('_', '-')} must be > 0, got {v}")
    if args.config:
        cfg = NALSMConfig.from_json(args.config)
    else:
        cfg = NALSMConfig.from_preset(args.preset or (DIGITS_PRESET if args.dataset == "digits" else DEFAULT_PRESET))
    changes: dict = {"seed": args.seed}
    if args.variant is not None:
        changes["variant"] = args.variant
    if args.grid is not None:
        changes["liquid.grid"] = parse_grid(args.grid, key="--grid")
    elif args.neurons is not None:
        changes["liquid.grid"] = grid_for_neurons(args.neurons)
    option_keys = {
        "phase1_samples": "protocol.phase1_samples", "phase2_ms": "protocol.phase2_ms",
        "readout": "readout.method", "epochs": "readout.max_epochs", "patience": "readout.patience",
        "lsm_weight": "liquid.lsm_weight", "astro_weight": "plasticity.astro_weight",
        "bf_samples": "protocol.bf_samples",
    }
    for opt, key in option_keys.items():
        if getattr(args, opt) is not None:
            changes[key] = getattr(args, opt)
    if args.batch_size is not None:
        changes["protocol.batch_size"] = changes["readout.batch_size"] = args.batch_size
    if args.freeze_liquid:
        changes["protocol.freeze_liquid"] = True
    return cfg.override(changes)


def load_splits(args: argparse.Namespace) -> dict:
    """{split: (X, y)} for train / validation / test, honouring the limits."""
    limits = {"train": args.limit, "validation": args.val_limit if args.val_limit is not None else args.limit,
              "test": args.test_limit if args.test_limit is not None else args.limit}
    out, source, note = {}, "", ""
    for split, limit in limits.items():
        if args.dataset == "nmnist":
            from astrosnn.data.nmnist import load_nmnist

            es = load_nmnist(split, args.data_dir, limit=limit, download=not args.no_download)
            out[split], source, note = (es.events, es.labels), es.source, es.note or note
        else:
            from astrosnn.data.images import load_images

            im = load_images(args.dataset, split, args.data_dir, limit=limit, download=not args.no_download)
            out[split], source = (im.images, im.labels), im.source
        if len(out[split][1]) == 0 and split != "validation":
            raise AstrosnnError(f"{args.dataset}: the {split} split is empty (check --limit / the data folder)")
    return {"splits": out, "source": source, "note": note}


def run_train(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    cfg = build_config(args)  # validate options before any heavy work
    t_start = time.perf_counter()
    import numpy as np
    import torch

    from astrosnn.nalsm.checkpoint import RunCheckpoint, checkpointed_features
    from astrosnn.nalsm.kernel_quality import kernel_quality, rate_summary
    from astrosnn.nalsm.model import NALSM
    from astrosnn.nalsm.topology import describe
    from astrosnn.runinfo import atomic_write_json, seed_everything, versions

    if args.threads:
        torch.set_num_threads(args.threads)
    seed_everything(cfg.seed)
    out = Path(args.out or f"runs/nalsm/{args.dataset}-{cfg.variant}-seed{cfg.seed}")
    if out.exists() and not out.is_dir():
        raise AstrosnnError(f"--out {out} exists and is not a folder")
    t0 = time.perf_counter()
    data = load_splits(args)
    load_s = time.perf_counter() - t0
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = (data["splits"][s] for s in ("train", "validation", "test"))
    has_val = len(y_va) > 0
    model = NALSM(cfg, backend=args.backend, progress=not args.quiet)
    fingerprint = {"config": cfg.to_dict(), "dataset": args.dataset,
                   "sizes": {"train": len(y_tr), "validation": len(y_va), "test": len(y_te)}}
    open_checkpoint = RunCheckpoint.resume if args.resume else RunCheckpoint.fresh
    ckpt = open_checkpoint(out / "checkpoint", fingerprint)
    try:
        if ckpt.phase1_done:
            ckpt.load_liquid(model)
        else:
            model.initialize(x_tr)
            ckpt.save_liquid(model)
        every = args.checkpoint_every
        f_tr = checkpointed_features(model, x_tr, "train", ckpt, every)
        f_va = checkpointed_features(model, x_va, "val", ckpt, every) if has_val else None
        f_te = checkpointed_features(model, x_te, "test", ckpt, every)
    except KeyboardInterrupt:
        print(f"interrupted; continue with the same options plus --resume --out {out}", file=sys.stderr)
        raise
    model.fit_readout(f_tr, y_tr, f_va, y_va if has_val else None, f_te, y_te)
    hist = model.readout.history
    best = hist.best_epoch
    t0 = time.perf_counter()
    recorded = model.record(x_te)
    from astrosnn.nalsm.branching import branching_factor_per_sample

    bf_per = branching_factor_per_sample(recorded.spikes, model.network, window=model.bf_window)
    bf = float(np.nanmean(bf_per)) if np.isfinite(bf_per).any() else float("nan")
    bf_s = time.perf_counter() - t0
    kq = None
    if args.kernel_quality:
        if args.dataset == "nmnist":
            raise AstrosnnError("--kernel-quality supports the image datasets only")
        t0 = time.perf_counter()
        kq = kernel_quality(lambda imgs: model.transform(imgs, salt="kq"), x_te, y_te,
                            per_class=args.kernel_quality, seed=cfg.seed).to_dict()
        kq["wall_s"] = time.perf_counter() - t0
    model.save(out)
    if args.save_features:
        from astrosnn.runinfo import save_tensors

        feats = {"train": (f_tr, y_tr), "validation": (f_va, y_va), "test": (f_te, y_te)}
        save_tensors(out / "features.safetensors", {
            f"{k}.{part}": torch.as_tensor(np.asarray(v[i]))
            for k, v in feats.items() if v[0] is not None for i, part in enumerate(("counts", "labels"))})
    plots: list[str] = []
    t0 = time.perf_counter()
    if not args.no_plots:
        from astrosnn.viz.nalsm import plot_branching, plot_learning_curves, plot_raster

        net = model.network
        plot_raster(recorded.spikes[0], recorded.astro[0], out / "raster.png", n_exc=net.n_exc, n_liquid=net.n_liquid,
                    title=f"{cfg.variant} on {args.dataset}: test sample 0")
        refs = {"paper NALSM1000 MNIST": 1.246} if cfg.variant == "nalsm" else {}
        plot_branching(bf_per, out / "branching.png", references=refs,
                       title=f"{cfg.variant} branching factor per test sample")
        plot_learning_curves(hist.to_dict(), out / "learning_curves.png",
                             title=f"{cfg.variant} readout ({cfg.readout.method})")
        plots = ["raster.png", "branching.png", "learning_curves.png"]
    plot_s = time.perf_counter() - t0
    tm = model.timings
    p2_s = sum(tm.get(f"phase2_{s}_s", 0.0) for s in ("train", "val", "test"))
    p2_n = len(f_tr) + (len(f_va) if f_va is not None else 0) + len(f_te)
    n1 = model.counts.get("phase1_samples", 0)

    def at_best(values: list[float]) -> float | None:
        return float(values[best]) if values else None

    metrics = {
        "dataset": args.dataset, "variant": cfg.variant, "seed": cfg.seed,
        "test_accuracy": at_best(hist.test_accuracy), "validation_accuracy": at_best(hist.val_accuracy),
        "train_accuracy": at_best(hist.train_accuracy), "best_epoch": best, "epochs_run": len(hist.train_accuracy),
        "readout": cfg.readout.method,
        "branching_factor": bf, "branching_factor_per_sample": [None if np.isnan(v) else float(v) for v in bf_per],
        "mean_firing_rate_hz": rate_summary(f_tr, cfg.protocol.phase2_ms)["mean_hz"],
        "firing_rates": {"train": rate_summary(f_tr, cfg.protocol.phase2_ms),
                         "test": rate_summary(f_te, cfg.protocol.phase2_ms)},
        "astrocyte_weight": cfg.astro_weight,
        "kernel_quality": kq,
        "sizes": {"train": len(y_tr), "validation": len(y_va), "test": len(y_te), "phase1": n1},
        "wall_time_s": {"load_data": load_s, "build": tm.get("build_s", 0.0), "phase1": tm.get("phase1_s", 0.0),
                        "phase2_train": tm.get("phase2_train_s", 0.0), "phase2_val": tm.get("phase2_val_s", 0.0),
                        "phase2_test": tm.get("phase2_test_s", 0.0), "readout": tm.get("readout_s", 0.0),
                        "branching": bf_s, "plots": plot_s, "total": time.perf_counter() - t_start},
        "samples_per_s": {"phase1": n1 / tm["phase1_s"] if n1 and tm.get("phase1_s") else None,
                          "phase2": p2_n / p2_s if p2_s > 0 else None},
        "network": describe(model.network), "backend": model.backend, "torch_threads": torch.get_num_threads(),
        "data_source": data["source"], "data_note": data["note"], "plots": plots,
        "command": "astrosnn " + " ".join(sys.argv[1:]) if sys.argv and "astrosnn" in sys.argv[0] else None,
        "config": cfg.to_dict(), "versions": versions(),
    }
    metrics["wall_time_s"]["total"] = time.perf_counter() - t_start
    metrics["resumed"] = bool(args.resume)
    atomic_write_json(out / "metrics.json", metrics)
    ckpt.remove()  # everything it held is in the outputs now
    val = metrics["validation_accuracy"]
    val_txt = f"validation {val:.4f}, " if val is not None else ""
    print(f"{cfg.variant} on {args.dataset} ({model.network.n_liquid} neurons, seed {cfg.seed}): "
          f"test accuracy {metrics['test_accuracy']:.4f} ({val_txt}readout epoch {best}); "
          f"branching factor {bf:.3f}; mean rate {metrics['mean_firing_rate_hz']:.1f} Hz; "
          f"{metrics['wall_time_s']['total']:.1f} s -> {out}")
    return 0
