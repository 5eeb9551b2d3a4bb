"""`astrosnn nalsm train`: NALSM / LSM / LSM+STDP on digits, MNIST, Fashion-MNIST or N-MNIST.

Writes DIR/metrics.json, DIR/config.json, the trained liquid (liquid.safetensors + liquid.json) and readout
(readout.safetensors), DIR/model.json and the plots; prints test accuracy and branching factor."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from astrosnn.core.astrocyte import DEFAULT_ASTROCYTE
from astrosnn.errors import AstrosnnError
from astrosnn.nalsm.backends import AUTO, backend_names
from astrosnn.nalsm.checkpoint import CheckpointExists
from astrosnn.nalsm.config import (
    MAX_SEED,
    READOUT_METHODS,
    VARIANTS,
    NALSMConfig,
    ProtocolConfig,
    ReadoutConfig,
    check_float32_positive,
)
from astrosnn.nalsm.job import (
    DATASETS,
    DEFAULT_PRESET,
    DIGITS_PRESET,
    RunConfig,
    RunInterrupted,
    default_preset,
    run,
    summary_line,
)
from astrosnn.nalsm.model import TRACE_MODES
from astrosnn.nalsm.params import (
    ASTRO_REFERENCE_NEURONS,
    LiquidConfig,
    grid_for_neurons,
    parse_grid,
)

# the library's defaults, quoted in the help texts
_JOB, _LIQUID, _PROTOCOL, _READOUT = RunConfig(), LiquidConfig(), ProtocolConfig(), ReadoutConfig()


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("nalsm", help="neuron-astrocyte liquid state machine (NALSM, LSM, LSM+STDP)",
                       description="Neuron-astrocyte liquid state machine (Ivanov & Michmizos, NeurIPS 2021).")
    group = p.add_subparsers(dest="nalsm_command", metavar="ACTION")
    group.required = True
    t = group.add_parser(
        "train", help="phase 1 + phase-2 features + readout; writes metrics, model and plots",
        description="Train a liquid and its readout. With no options: NALSM on the embedded 8x8 digits "
                    f"(preset {DIGITS_PRESET}), about 30 s on an idle 2-core machine.")
    t.add_argument("--dataset", default=_JOB.dataset, metavar="NAME",
                   help=f"one of {', '.join(DATASETS)} (default {_JOB.dataset})")
    size = t.add_mutually_exclusive_group()
    size.add_argument("--grid", metavar="AxBxC", help="liquid grid AxBxC, e.g. 10x10x10 (default: the preset's)")
    size.add_argument("--neurons", type=int, metavar="N", help="liquid size; the most cube-like grid (1000 -> 10x10x10)")
    t.add_argument("--variant", metavar="NAME",
                   help=f"one of {', '.join(VARIANTS)} (default: the preset's, nalsm for the default presets)")
    t.add_argument("--preset", metavar="NAME", help=f"base configuration (default {DIGITS_PRESET} for digits, "
                                    f"{DEFAULT_PRESET} otherwise)")
    t.add_argument("--config", metavar="FILE", help="a JSON config file (NALSMConfig keys) instead of a preset")
    t.add_argument("--phase1-samples", type=int, metavar="N",
                   help=f"phase-1 (unsupervised) samples of {_PROTOCOL.phase1_ms} ms")
    t.add_argument("--phase2-ms", type=int, metavar="MS",
                   help=f"presentation time per sample in phase 2 (paper {_PROTOCOL.phase2_ms})")
    t.add_argument("--limit", type=int, metavar="N", help="use the first N samples of every split")
    t.add_argument("--val-limit", type=int, metavar="N", help="validation samples (default: --limit)")
    t.add_argument("--test-limit", type=int, metavar="N", help="test samples (default: --limit)")
    t.add_argument("--seed", type=int, default=_JOB.config.seed, metavar="S", help="seed of the graph, encodings and phase-1 order")
    t.add_argument("--out", metavar="DIR", help="output folder (default runs/nalsm/<dataset>-<variant>-seed<S>)")
    t.add_argument("--data-dir", metavar="DIR", help="data folder (default $ASTROSNN_DATA or the user cache)")
    t.add_argument("--no-download", action="store_true", help="never download missing data files")
    t.add_argument("--readout", metavar="NAME", help=f"one of {', '.join(READOUT_METHODS)} (default {_READOUT.method}, the paper's)")
    t.add_argument("--epochs", type=int, metavar="N", help="maximum readout epochs (Adadelta)")
    t.add_argument("--patience", type=int, metavar="N", help="stop after this many epochs without a better validation accuracy")
    t.add_argument("--lsm-weight", type=float, metavar="W", help=f"|w| of every synapse of the fixed-weight lsm (default {_LIQUID.lsm_weight})")
    t.add_argument("--astro-weight", type=float, metavar="W", help=f"w_astro (default {DEFAULT_ASTROCYTE.weight}*({ASTRO_REFERENCE_NEURONS}/N)^(1/3))")
    t.add_argument("--freeze-liquid", action="store_true", help="no plasticity in phase 2")
    t.add_argument("--batch-size", type=int, metavar="N", help="phase-2 and readout minibatch size")
    t.add_argument("--bf-samples", type=int, metavar="N", help=f"test samples recorded for the branching factor (paper {_PROTOCOL.bf_samples})")
    t.add_argument("--kernel-quality", type=int, default=_JOB.kernel_quality, metavar="PER_CLASS",
                   help="also measure separation/generalisation ranks on PER_CLASS test images per class")
    t.add_argument("--backend", default=AUTO, metavar="NAME",
                   help=f"engine backend: {', '.join([AUTO, *backend_names()])} (default {AUTO})")
    t.add_argument("--threads", type=int, metavar="N", help="torch threads (default: torch's)")
    t.add_argument("--save-features", action="store_true",
                   help="also write features.safetensors (phase-2 spike counts and labels of every split)")
    t.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    t.add_argument("--quiet", action="store_true", help="no progress bars")
    t.add_argument("--resume", action="store_true",
                   help="continue the interrupted run in --out (same options) from its checkpoint")
    every = _JOB.checkpoint_every
    t.add_argument("--checkpoint-every", type=int, default=every, metavar="BATCHES",
                   help=f"save phase-2 features to DIR/checkpoint every this many batches (per process when "
                        f"sharded with torchrun; default {every})")
    every1 = _JOB.phase1_checkpoint_every
    t.add_argument("--phase1-checkpoint-every", type=int, default=every1, metavar="SAMPLES",
                   help=f"save the phase-1 weights and STDP traces every this many samples (default {every1})")
    t.add_argument("--phase2-traces", default=_JOB.phase2_traces, metavar="MODE",
                   help="STDP traces at the start of each phase-2 batch: reset (default: zeros, batches "
                        "independent) or carry (the authors' loop: from the previous batch, order-dependent; "
                        "no sharding)")
    t.set_defaults(func=run_train)


def _nonneg(name: str, value: int | None, *, positive: bool = False) -> None:
    if value is not None and (value < 1 if positive else value < 0):
        raise AstrosnnError(f"{name} must be {'>= 1' if positive else '>= 0'}, got {value}")


def build_config(args: argparse.Namespace):
    """The run's NALSMConfig from --config/--preset and the option overrides (validated)."""
    if args.dataset not in DATASETS:
        raise AstrosnnError(f"unknown dataset {args.dataset!r}; choose from {', '.join(DATASETS)}")
    if args.variant is not None and args.variant not in VARIANTS:
        raise AstrosnnError(f"unknown variant {args.variant!r}; choose from {', '.join(VARIANTS)}")
    if args.readout is not None and args.readout not in READOUT_METHODS:
        raise AstrosnnError(f"unknown readout {args.readout!r}; choose from {', '.join(READOUT_METHODS)}")
    for name in ("phase1_samples", "limit", "val_limit", "test_limit", "bf_samples", "kernel_quality"):
        _nonneg("--" + name.replace("_", "-"), getattr(args, name))
    for name in ("phase2_ms", "epochs", "patience", "batch_size", "threads", "neurons", "checkpoint_every",
                 "phase1_checkpoint_every", "bf_samples"):
        _nonneg("--" + name.replace("_", "-"), getattr(args, name), positive=True)
    if args.phase2_traces not in TRACE_MODES:
        raise AstrosnnError(f"--phase2-traces must be one of {', '.join(TRACE_MODES)}, got {args.phase2_traces!r}")
    if not 0 <= args.seed <= MAX_SEED:
        raise AstrosnnError(f"--seed must be in [0, {MAX_SEED}], got {args.seed}")
    if args.kernel_quality and args.dataset == "nmnist":
        raise AstrosnnError("--kernel-quality supports the image datasets only, not nmnist")
    for name in ("lsm_weight", "astro_weight"):
        v = getattr(args, name)
        if v is not None:
            check_float32_positive(f"--{name.replace('_', '-')}", v)
    if args.config:
        cfg = NALSMConfig.from_json(args.config)
    else:
        cfg = NALSMConfig.from_preset(args.preset or default_preset(args.dataset))
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


def run_config(args: argparse.Namespace) -> RunConfig:
    """The job's RunConfig from the parsed options (validated)."""
    return RunConfig(
        config=build_config(args), dataset=args.dataset, data_dir=args.data_dir, download=not args.no_download,
        limit=args.limit, val_limit=args.val_limit, test_limit=args.test_limit, kernel_quality=args.kernel_quality,
        backend=args.backend, threads=args.threads, save_features=args.save_features, plots=not args.no_plots,
        progress=not args.quiet, resume=args.resume, checkpoint_every=args.checkpoint_every,
        phase1_checkpoint_every=args.phase1_checkpoint_every, phase2_traces=args.phase2_traces,
        command="astrosnn " + " ".join(sys.argv[1:]) if sys.argv and "astrosnn" in sys.argv[0] else None)


def run_train(args: argparse.Namespace) -> int:
    rc = run_config(args)  # validate options before any heavy work
    cfg = rc.config
    out = Path(args.out or f"runs/nalsm/{args.dataset}-{cfg.variant}-seed{cfg.seed}")
    try:
        metrics = run(rc, out)
    except CheckpointExists as e:
        raise CheckpointExists(e.folder, how="add --resume to continue it") from None
    except RunInterrupted:
        print(f"interrupted; continue with the same options plus --resume --out {out}", file=sys.stderr)
        raise
    if metrics is not None:  # rank 0 of a torchrun job, or the only process
        print(summary_line(metrics, out))
    return 0
