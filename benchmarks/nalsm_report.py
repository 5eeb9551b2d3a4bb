"""Markdown tables from NALSM runs' metrics.json (used for results/nalsm.md and RESULTS.md).

Usage: python benchmarks/nalsm_report.py [RUNS_DIR | METRICS_DIR ...]
A RUNS_DIR holds run folders (*/metrics.json, e.g. runs/nalsm-compare); a METRICS_DIR holds copies named
<run>.metrics.json (results/nalsm_runs). The summary groups the runs named <dataset>[-full]-<variant>-s<seed>
[-carry] by dataset, variant, liquid size and phase-2 traces."""

from __future__ import annotations

import json
import re
import statistics
import sys
from pathlib import Path


def fmt(v, spec=".4f"):
    return "–" if v is None else format(v, spec)


def label(m: dict) -> str:
    cfg = m["config"]
    text = m["variant"]
    if m["variant"] == "lsm":
        text += f" w={cfg['liquid']['lsm_weight']}"
    if m["variant"] == "nalsm":
        text += f" w_astro={m['astrocyte_weight']}"
    if cfg["protocol"]["freeze_liquid"]:
        text += " frozen"
    return text


def sd(xs: list[float]) -> float:
    return statistics.stdev(xs) if len(xs) > 1 else 0.0


def main() -> None:
    rows = []
    for root in map(Path, sys.argv[1:] or ["runs/nalsm-compare"]):
        for path in sorted(root.glob("*/metrics.json")):
            rows.append((path.parent.name, json.loads(path.read_text())))
        for path in sorted(root.glob("*.metrics.json")):
            rows.append((path.name.removesuffix(".metrics.json"), json.loads(path.read_text())))
    print("| run | dataset | variant | train/val/test | phase-1 | test acc | val acc | best epoch | BF | rate (Hz) "
          "| SP / AP | phase 1 (s) | phase 2 (s) | readout (s) | total (s) | phase-2 samples/s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, m in rows:
        w, s, kq = m["wall_time_s"], m["sizes"], m.get("kernel_quality")
        p2 = w["phase2_train"] + w["phase2_val"] + w["phase2_test"]
        variant = label(m)
        sp_ap = f"{kq['separation_rank']:.1f} / {kq['generalization_rank']:.1f}" if kq else "–"
        print(f"| {name} | {m['dataset']} | {variant} | {s['train']}/{s['validation']}/{s['test']} | {s['phase1']} "
              f"| {fmt(m['test_accuracy'])} | {fmt(m['validation_accuracy'])} | {m['best_epoch']} "
              f"| {fmt(m['branching_factor'], '.3f')} | {fmt(m['mean_firing_rate_hz'], '.1f')} | {sp_ap} "
              f"| {w['phase1']:.1f} | {p2:.1f} | {w['readout']:.1f} | {w['total']:.1f} "
              f"| {fmt(m['samples_per_s']['phase2'], '.1f')} |")
    groups: dict[tuple, list[dict]] = {}
    for name, m in rows:
        if not re.fullmatch(r"(digits|mnist|fashion-mnist|nmnist)(-full)?-(nalsm|lsm|lsm-stdp)(\d+)?(-w[\d.]+)?-s\d+(-carry)?", name):
            continue  # sweeps and ablations stay out of the per-variant summary
        w_astro = m["astrocyte_weight"] if m["variant"] == "nalsm" else 0.0  # a swept w_astro is its own row
        key = (m["dataset"], m["variant"], m["network"]["n_liquid"], w_astro, m.get("phase2_traces", "reset"))
        groups.setdefault(key, []).append(m)
    print("\n| dataset | variant | neurons | w_astro | phase-2 traces | seeds | test acc (mean ± sd) | BF (mean ± sd) |")
    print("|---|---|---|---|---|---|---|---|")
    for (ds, var, n, w_astro, traces), ms in sorted(groups.items()):
        acc = [m["test_accuracy"] for m in ms]
        bf = [m["branching_factor"] for m in ms]
        print(f"| {ds} | {var} | {n} | {w_astro or '–'} | {traces} | {','.join(str(m['seed']) for m in ms)} "
              f"| {statistics.mean(acc):.4f} ± {sd(acc):.4f} | {statistics.mean(bf):.3f} ± {sd(bf):.3f} |")


if __name__ == "__main__":
    main()
