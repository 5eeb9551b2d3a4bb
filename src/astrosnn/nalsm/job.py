"""The `astrosnn nalsm train` job as a library function: data splits, phase 1, phase-2 features (checkpointed,
resumable), readout, branching factor, optional kernel quality, model files, plots and metrics.json.

    from astrosnn.nalsm.job import RunConfig, run
    from astrosnn.nalsm.config import NALSMConfig
    metrics = run(RunConfig(NALSMConfig.from_preset("nalsm-digits")), "runs/demo")

The command line (`astrosnn.commands.nalsm`) only parses options into a `RunConfig`, calls `run` and prints
`summary_line(metrics, out_dir)`.
"""

from __future__ import annotations

import os
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from astrosnn.data.encoders import CHANNELS
from astrosnn.data.images import load_images
from astrosnn.data.nmnist import load_nmnist
from astrosnn.errors import AstrosnnError
from astrosnn.nalsm.backends import AUTO
from astrosnn.nalsm.checkpoint import RunCheckpoint, checkpointed_features
from astrosnn.nalsm.config import NALSMConfig
from astrosnn.nalsm.kernel_quality import kernel_quality, rate_summary
from astrosnn.nalsm.model import NALSM, PHASE2_SALTS, TRACE_MODES
from astrosnn.nalsm.readout_adadelta import DEFAULT_ADADELTA_ENGINE
from astrosnn.nalsm.shard import Shard, from_env
from astrosnn.nalsm.topology import describe
from astrosnn.rundir import lock_run_dir
from astrosnn.runinfo import atomic_write_json, save_tensors, seed_everything, versions
from astrosnn.viz.nalsm import (  # imports matplotlib lazily
    plot_branching,
    plot_learning_curves,
    plot_raster,
)

DATASETS = ("digits", "mnist", "fashion-mnist", "nmnist")
DIGITS_PRESET = "nalsm-digits"  # the no-option run (embedded 8x8 digits): about 30 s on an idle 2-core machine
DEFAULT_PRESET = "nalsm1000"  # the paper's NALSM1000, for every other dataset
PAPER_BRANCHING = {"paper NALSM1000 MNIST": 1.246}  # reference line of the nalsm branching plot
PLOTS = ("raster.png", "branching.png", "learning_curves.png")


def default_preset(dataset: str) -> str:
    return DIGITS_PRESET if dataset == "digits" else DEFAULT_PRESET


class RunInterrupted(KeyboardInterrupt):
    """Interrupted while its checkpoint was being written: `run(..., resume=True)` with the same settings
    continues it."""

    def __init__(self, out_dir: Path):
        super().__init__(str(out_dir))
        self.out_dir = out_dir


@dataclass(frozen=True)
class RunConfig:
    """One training run: the model config plus what data to use and what to write."""

    config: NALSMConfig = field(default_factory=lambda: NALSMConfig.from_preset(DIGITS_PRESET))
    dataset: str = "digits"
    data_dir: str | None = None  # default $ASTROSNN_DATA or the user cache
    download: bool = True
    limit: int | None = None  # first samples of every split
    val_limit: int | None = None  # default: limit
    test_limit: int | None = None  # default: limit
    kernel_quality: int = 0  # test images per class for separation/generalisation ranks (0: skip)
    backend: str = AUTO
    threads: int | None = None  # torch threads (default: torch's)
    save_features: bool = False  # also write features.safetensors
    plots: bool = True
    progress: bool = True
    resume: bool = False  # continue the interrupted run in out_dir from its checkpoint
    checkpoint_every: int = 20  # phase-2 batches per checkpoint chunk (per process when sharded)
    phase1_checkpoint_every: int = 5000  # phase-1 samples between checkpoints of the weights and traces
    phase2_traces: str = "reset"  # "reset": every phase-2 batch from zero STDP traces; "carry": the authors'
    command: str | None = None  # recorded in metrics.json

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise AstrosnnError(f"unknown dataset {self.dataset!r}; choose from {', '.join(DATASETS)}")
        if self.kernel_quality and self.dataset == "nmnist":
            raise AstrosnnError("kernel_quality supports the image datasets only")
        if self.phase2_traces not in TRACE_MODES:
            raise AstrosnnError(f"phase2_traces must be one of {', '.join(TRACE_MODES)}, got {self.phase2_traces!r}")
        for name in ("checkpoint_every", "phase1_checkpoint_every"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise AstrosnnError(f"{name} must be a positive integer, got {v!r}")

    @property
    def limits(self) -> dict[str, int | None]:
        return {"train": self.limit, "validation": self.limit if self.val_limit is None else self.val_limit,
                "test": self.limit if self.test_limit is None else self.test_limit}


def load_splits(rc: RunConfig) -> dict[str, Any]:
    """{"splits": {split: (X, y)} for train / validation / test, "source": ..., "note": ...}."""
    out, source, note = {}, "", ""
    for split, limit in rc.limits.items():
        if rc.dataset == "nmnist":
            es = load_nmnist(split, rc.data_dir, limit=limit, download=rc.download)
            out[split], source, note = (es.events, es.labels), es.source, es.note or note
        else:
            im = load_images(rc.dataset, split, rc.data_dir, limit=limit, download=rc.download)
            out[split], source = (im.images, im.labels), im.source
        if len(out[split][1]) == 0 and split != "validation":
            raise AstrosnnError(f"{rc.dataset}: the {split} split is empty (check the limits / the data folder)")
    return {"splits": out, "source": source, "note": note}


def check_writable(out: Path) -> None:
    """Refuse an output folder that cannot be written before any work (not after phase 1). Creates nothing:
    a run that fails early leaves no folder behind."""
    if out.exists() and not out.is_dir():
        raise AstrosnnError(f"output folder {out} exists and is not a folder")
    probe_in = out
    for parent in out.absolute().parents:
        if probe_in.exists():
            break
        probe_in = parent
        if parent.exists() and not parent.is_dir():
            raise AstrosnnError(f"output folder {out}: {parent} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(dir=probe_in, prefix=".astrosnn-write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise AstrosnnError(f"output folder {out} is not writable ({e.strerror or e})") from None


def estimated_bytes(cfg: NALSMConfig, n_inputs: int) -> int:
    """Rough peak memory of phase 2 before anything is built: per sample of a batch, a copy of the weights
    (S float32) plus the engine's working copies; S from the expected synapse count of the grid."""
    lc = cfg.liquid
    n = lc.n_neurons
    lam = lc.lam
    per_neuron = min(n, (np.sqrt(np.pi) * lam) ** 3) * max(lc.c_ee, lc.c_ei, lc.c_ie, lc.c_ii)
    synapses = n * per_neuron + lc.input_density * n * n_inputs
    batch = cfg.protocol.batch_size
    return int(batch * synapses * 4 * 3 + batch * (n + n_inputs) * 4 * 4)


def check_memory(cfg: NALSMConfig, n_inputs: int) -> None:
    """Refuse a run whose phase-2 batches would not fit in this machine's memory, before allocating."""
    need = estimated_bytes(cfg, n_inputs)
    try:
        have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return
    if need > have:
        raise AstrosnnError(f"phase 2 needs about {need / 2**30:.1f} GiB ({cfg.liquid.n_neurons} neurons, batch "
                            f"{cfg.protocol.batch_size}) but this machine has {have / 2**30:.1f} GiB: use a "
                            "smaller --batch-size or liquid")


def run(rc: RunConfig, out_dir: str | Path, *, shard: Shard | None = None) -> dict[str, Any] | None:
    """Train and evaluate; writes the model, plots and metrics.json into `out_dir` and returns the metrics.

    Under torchrun (or with `shard`), phase 2 is split over the processes (`astrosnn.nalsm.shard`); only
    rank 0 writes and returns the metrics, the other ranks return None."""
    own_shard = shard is None
    shard = from_env() if shard is None else shard
    try:
        with ExitStack() as held:
            return _run(rc, Path(out_dir), shard, held)
    finally:
        if own_shard:
            shard.close()


def _run(rc: RunConfig, out: Path, shard: Shard, held: ExitStack) -> dict[str, Any] | None:
    cfg = rc.config
    t_start = time.perf_counter()
    if rc.phase2_traces == "carry" and shard.size > 1:
        raise AstrosnnError("carried phase-2 traces chain the batches in order: they cannot be split over "
                            f"{shard.size} processes (use --phase2-traces reset or one process)")
    if rc.threads:
        torch.set_num_threads(rc.threads)
    seed_everything(cfg.seed)
    if shard.main:
        check_writable(out)
    t0 = time.perf_counter()
    data = load_splits(rc)
    load_s = time.perf_counter() - t0
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = (data["splits"][s] for s in ("train", "validation", "test"))
    has_val = len(y_va) > 0
    check_memory(cfg, CHANNELS if rc.dataset == "nmnist" else int(np.prod(np.shape(x_tr)[1:])))
    model = NALSM(cfg, backend=rc.backend, progress=rc.progress and shard.main)
    fingerprint = {"config": cfg.to_dict(), "dataset": rc.dataset,
                   "sizes": {"train": len(y_tr), "validation": len(y_va), "test": len(y_te)}}
    if rc.phase2_traces != "reset":
        fingerprint["phase2_traces"] = rc.phase2_traces
    ckpt = None
    if shard.main:
        # The folder is created (and locked against a second run) only once the inputs have passed their checks.
        out.mkdir(parents=True, exist_ok=True)
        held.enter_context(lock_run_dir(out))
        ckpt = (RunCheckpoint.resume if rc.resume else RunCheckpoint.fresh)(out / "checkpoint", fingerprint)
    previous_s = ckpt.state.get("elapsed_s", 0.0) if ckpt is not None else 0.0
    try:
        if shard.main:
            if ckpt.phase1_done:
                ckpt.load_liquid(model)
            else:
                model.build_for(x_tr)
                model.initialize(x_tr, every=rc.phase1_checkpoint_every, start=ckpt.phase1_progress(model),
                                 on_chunk=ckpt.save_phase1_progress)
                ckpt.save_liquid(model)
            shard.broadcast(model.weights)
        else:
            model.initialize(x_tr, phase1=False)
            model.weights = shard.broadcast(None)
        every, traces = rc.checkpoint_every, rc.phase2_traces
        salt = PHASE2_SALTS
        f_tr = checkpointed_features(model, x_tr, salt["train"], ckpt, every, traces=traces, shard=shard)
        f_va = (checkpointed_features(model, x_va, salt["validation"], ckpt, every, traces=traces, shard=shard)
                if has_val else None)
        f_te = checkpointed_features(model, x_te, salt["test"], ckpt, every, traces=traces, shard=shard)
    except KeyboardInterrupt:
        raise RunInterrupted(out) from None
    if not shard.main:
        return None
    model.fit_readout(f_tr, y_tr, f_va, y_va if has_val else None, f_te, y_te)
    hist = model.readout.history
    best = hist.best_epoch
    t0 = time.perf_counter()
    recorded = model.record(x_te)
    bf, bf_per = model.branching_factor_of(recorded)
    bf_s = time.perf_counter() - t0
    kq = None
    if rc.kernel_quality:
        t0 = time.perf_counter()
        kq = kernel_quality(lambda imgs: model.transform(imgs, salt="kq"), x_te, y_te,
                            per_class=rc.kernel_quality, seed=cfg.seed).to_dict()
        kq["wall_s"] = time.perf_counter() - t0
    model.save(out)
    if rc.save_features:
        feats = {"train": (f_tr, y_tr), "validation": (f_va, y_va), "test": (f_te, y_te)}
        save_tensors(out / "features.safetensors", {
            f"{k}.{part}": torch.as_tensor(np.asarray(v[i]))
            for k, v in feats.items() if v[0] is not None for i, part in enumerate(("counts", "labels"))})
    t0 = time.perf_counter()
    plots = _plot(model, recorded, bf_per, rc.dataset, out) if rc.plots else []
    plot_s = time.perf_counter() - t0
    tm = model.timings
    p2_s = sum(tm.get(f"phase2_{s}_s", 0.0) for s in PHASE2_SALTS.values())
    p2_n = len(f_tr) + (len(f_va) if f_va is not None else 0) + len(f_te)
    n1 = model.counts.get("phase1_samples", 0)

    def at_best(values: list[float]) -> float | None:
        return float(values[best]) if values else None

    metrics = {
        "dataset": rc.dataset, "variant": cfg.variant, "seed": cfg.seed,
        "test_accuracy": at_best(hist.test_accuracy), "validation_accuracy": at_best(hist.val_accuracy),
        "train_accuracy": at_best(hist.train_accuracy), "best_epoch": best, "epochs_run": len(hist.train_accuracy),
        "readout": cfg.readout.method,
        "readout_engine": DEFAULT_ADADELTA_ENGINE if cfg.readout.method == "adadelta" else None,
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
                        "branching": bf_s, "plots": plot_s, "total": 0.0},
        "samples_per_s": {"phase1": n1 / tm["phase1_s"] if n1 and tm.get("phase1_s") else None,
                          "phase2": p2_n / p2_s if p2_s > 0 else None},
        "network": describe(model.network), "backend": model.backend, "torch_threads": torch.get_num_threads(),
        "data_source": data["source"], "data_note": data["note"], "plots": plots,
        "command": rc.command, "config": cfg.to_dict(), "versions": versions(),
    }
    metrics["phase2_traces"] = rc.phase2_traces
    metrics["processes"] = shard.size
    # earlier processes of a resumed run count too, so the total is never below one of its parts
    metrics["wall_time_s"]["total"] = previous_s + time.perf_counter() - t_start
    metrics["resumed"] = rc.resume
    atomic_write_json(out / "metrics.json", metrics)
    ckpt.remove()  # everything it held is in the outputs now
    return metrics


def _plot(model: NALSM, recorded, bf_per: np.ndarray, dataset: str, out: Path) -> list[str]:
    cfg, net = model.config, model.network
    raster, branching, curves = (out / name for name in PLOTS)
    plot_raster(recorded.spikes[0], recorded.astro[0], raster, n_exc=net.n_exc, n_liquid=net.n_liquid,
                title=f"{cfg.variant} on {dataset}: test sample 0")
    plot_branching(bf_per, branching, references=PAPER_BRANCHING if cfg.variant == "nalsm" else {},
                   title=f"{cfg.variant} branching factor per test sample")
    plot_learning_curves(model.readout.history.to_dict(), curves,
                         title=f"{cfg.variant} readout ({cfg.readout.method})")
    return list(PLOTS)


def summary_line(metrics: dict[str, Any], out_dir: str | Path) -> str:
    """The one-line result the command prints."""
    val = metrics["validation_accuracy"]
    val_txt = f"validation {val:.4f}, " if val is not None else ""
    return (f"{metrics['variant']} on {metrics['dataset']} ({metrics['network']['n_liquid']} neurons, "
            f"seed {metrics['seed']}): test accuracy {metrics['test_accuracy']:.4f} ({val_txt}readout epoch "
            f"{metrics['best_epoch']}); branching factor {metrics['branching_factor']:.3f}; mean rate "
            f"{metrics['mean_firing_rate_hz']:.1f} Hz; {metrics['wall_time_s']['total']:.1f} s -> {out_dir}")
