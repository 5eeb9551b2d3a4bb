"""Learning curves of language-model runs (validation figure against training time and tokens)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from astrosnn.errors import AstrosnnError
from astrosnn.runinfo import load_json


def _load(run: str | Path | dict[str, Any]) -> dict[str, Any]:
    if isinstance(run, dict):
        return run
    path = Path(run)
    return load_json(path / "metrics.json" if path.is_dir() else path)


def plot_learning_curves(runs, out: str | Path, title: str | None = None) -> Path:
    """Plot validation bits/char (or perplexity) vs training seconds and vs tokens; write a PNG to `out`.

    `runs`: run folders, metrics.json paths, or metrics dicts (as returned by `astrosnn.lm.train`).
    """
    import matplotlib  # lazy: slow to import, and only plotting needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    loaded = [_load(r) for r in runs]
    if not loaded:
        raise AstrosnnError("no runs to plot")
    metric = loaded[0].get("metric", "bits_per_char")
    fig, (ax_t, ax_n) = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    # one colour per model; several seeds of a model share it and differ in line style
    models = list(dict.fromkeys(m.get("model") for m in loaded))
    several_seeds = len(loaded) > len(models)
    seen: dict[Any, int] = {}
    for m in loaded:
        vals = m.get("validation") or []
        if not vals:
            raise AstrosnnError(f"run of {m.get('model')} has no validation points")
        label = f"{m.get('model')} ({m.get('parameters', 0) / 1e6:.2f}M)"
        if several_seeds:
            label += f", seed {m.get('seed')}"
        repeat = seen[m.get("model")] = seen.get(m.get("model"), -1) + 1
        style = {"color": f"C{models.index(m.get('model')) % 10}", "ls": ("-", "--", ":", "-.")[repeat % 4]}
        # periodic validations may use a prefix of the split; the final one (a star) uses all of it
        full = (m.get("final_validation") or {}).get("valid_tokens")
        part = [v for v in vals if full is None or v.get("valid_tokens") != full] or vals
        for ax, key, scale in ((ax_t, "train_time_s", 1.0), (ax_n, "tokens", 1e-6)):
            line = ax.plot([v[key] * scale for v in part], [v[metric] for v in part], marker="o", ms=3, label=label, **style)[0]
            if full is not None and part is not vals:
                final = m["final_validation"]
                ax.plot([final[key] * scale], [final[metric]], marker="*", ms=10, color=line.get_color())
    ylabel = "validation bits per character" if metric == "bits_per_char" else "validation perplexity"
    ax_t.set(xlabel="training time (s)", ylabel=ylabel)
    ax_n.set(xlabel="training tokens (millions)")
    if metric == "perplexity":
        ax_t.set_yscale("log")
    for ax in (ax_t, ax_n):
        ax.grid(alpha=0.3)
    ax_t.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def plot_task_curves(results, out: str | Path, title: str | None = None) -> Path:
    """Plot memory-task learning curves (test accuracy against training step) of task-harness results.

    `results`: result dicts of :mod:`astrosnn.lm.task_runner` (``settings`` and ``curve``) or their JSON
    paths; one colour per model, seeds differ in line style; the dotted line is the chance level.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    loaded = [_load(r) for r in results]
    if not loaded:
        raise AstrosnnError("no runs to plot")
    fig, ax = plt.subplots(figsize=(6, 4))
    models = list(dict.fromkeys(r["settings"]["model"] for r in loaded))
    seen: dict[str, int] = {}
    for r in loaded:
        s = r["settings"]
        name = s["model"]
        repeat = seen[name] = seen.get(name, -1) + 1
        curve = r.get("curve") or []
        label = f"{name} ({r.get('parameters', 0) / 1e3:.0f}k, lr {s['lr']:g})" if repeat == 0 else None
        ax.plot([c["step"] for c in curve], [c["test_accuracy"] for c in curve], marker="o", ms=3, label=label,
                color=f"C{models.index(name) % 10}", ls=("-", "--", ":", "-.")[repeat % 4])
    chance = loaded[0].get("chance")
    if chance:
        ax.axhline(chance, color="grey", ls=":", lw=1, label="chance")
    ax.set(xlabel="training step", ylabel="test accuracy (scored positions)", ylim=(0, 1.02))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
