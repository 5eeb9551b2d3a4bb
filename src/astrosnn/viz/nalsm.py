"""NALSM plots: spike raster with the astrocyte trace beneath, branching factor per sample, readout curves.

Uses matplotlib's object API with the Agg canvas (no pyplot global state, no display needed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from astrosnn.errors import AstrosnnError


def _figure(width: float, height: float, rows: int = 1, height_ratios: Sequence[float] | None = None):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), constrained_layout=True)
    FigureCanvasAgg(fig)
    if rows == 1:
        return fig, fig.add_subplot(1, 1, 1)
    axes = fig.subplots(rows, 1, sharex=True, gridspec_kw={"height_ratios": height_ratios or [1] * rows})
    return fig, axes


def _save(fig, path: str | Path) -> Path:
    import io

    from astrosnn.runinfo import atomic_write_bytes

    path = Path(path)
    buf = io.BytesIO()
    fig.savefig(buf, format=path.suffix.lstrip(".") or "png", dpi=110)
    atomic_write_bytes(path, buf.getvalue())
    return path


def _to_numpy(x) -> np.ndarray:
    return np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x)


def plot_raster(spikes, astro, path: str | Path, *, n_exc: int, n_liquid: int,
                title: str = "liquid spikes and astrocyte") -> Path:
    """Raster of one sample (T, neurons: excitatory, inhibitory, then input) with the astrocyte
    trace (depression rate per ms, length T) beneath it."""
    s = _to_numpy(spikes).astype(bool)
    a = _to_numpy(astro).astype(float).ravel()
    if s.ndim != 2:
        raise AstrosnnError(f"raster expects spikes of shape (T, neurons), got {s.shape}")
    if len(a) != s.shape[0]:
        raise AstrosnnError(f"astrocyte trace has {len(a)} steps, the raster {s.shape[0]}")
    fig, (top, bottom) = _figure(8, 5.5, rows=2, height_ratios=[3, 1])
    groups = (("excitatory", 0, n_exc, "tab:blue"), ("inhibitory", n_exc, n_liquid, "tab:red"),
              ("input", n_liquid, s.shape[1], "0.55"))
    for label, lo, hi, color in groups:
        t, n = np.nonzero(s[:, lo:hi])
        if len(t):
            top.scatter(t, n + lo, s=0.6, c=color, marker="|", linewidths=0.5, label=f"{label} ({len(t)})")
    top.set_ylabel("neuron")
    top.set_ylim(-0.5, s.shape[1] - 0.5)
    top.set_title(title)
    if top.get_legend_handles_labels()[0]:
        top.legend(loc="upper right", fontsize=7, markerscale=8)
    bottom.plot(np.arange(len(a)), a, color="tab:green", lw=1.2)
    bottom.set_ylabel("astrocyte A(t)")
    bottom.set_xlabel("time (ms)")
    bottom.set_xlim(-0.5, len(a) - 0.5)
    return _save(fig, path)


def plot_branching(per_sample: Sequence[float], path: str | Path, *,
                   references: Mapping[str, float] | None = None, title: str = "branching factor per sample") -> Path:
    """Branching factor of each recorded sample, with its mean and optional reference lines."""
    v = _to_numpy(per_sample).astype(float).ravel()
    fig, ax = _figure(6, 3.5)
    ax.bar(np.arange(len(v)), np.nan_to_num(v), color="tab:purple", alpha=0.8)
    if len(v) and np.isfinite(v).any():
        ax.axhline(float(np.nanmean(v)), color="k", lw=1.2, label=f"mean {np.nanmean(v):.3f}")
    ax.axhline(1.0, color="0.5", ls=":", lw=1, label="critical (1.0)")
    for name, value in (references or {}).items():
        ax.axhline(value, ls="--", lw=1, label=f"{name} ({value:g})")
    ax.set_xlabel("sample")
    ax.set_ylabel("branching factor")
    ax.set_title(title)
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_learning_curves(history: Mapping[str, Sequence[float]], path: str | Path, *,
                         title: str = "readout learning curves") -> Path:
    """Train / validation / test accuracy per epoch (and the training loss on a second axis),
    marking the epoch of best validation accuracy."""
    fig, ax = _figure(6, 3.5)
    for key, color in (("train_accuracy", "tab:blue"), ("val_accuracy", "tab:orange"), ("test_accuracy", "tab:green")):
        values = list(history.get(key, []))
        if values:
            label = key.replace("_", " ") + (" (running)" if key == "train_accuracy" and
                                             history.get("train_accuracy_running") else "")
            ax.plot(np.arange(len(values)), values, color=color, lw=1.2, label=label)
    best = history.get("best_epoch")
    if best is not None:
        ax.axvline(int(best), color="k", ls="--", lw=1, label=f"best epoch {int(best)}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    loss = [x for x in history.get("loss", []) if np.isfinite(x)]
    if loss:
        ax2 = ax.twinx()
        ax2.plot(np.arange(len(loss)), loss, color="0.6", lw=0.8)
        ax2.set_ylabel("training loss", color="0.4")
    ax.legend(fontsize=7, loc="lower right")
    return _save(fig, path)
