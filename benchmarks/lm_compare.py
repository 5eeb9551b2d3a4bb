"""The recorded LM comparison: AstroSNN, LIF-SNN, LSTM and Transformer of ~1M parameters, same budget.

Runs `astrosnn lm train` once per model and seed, one after another, with the same thread count (and
optionally pinned to one core), then samples from the AstroSNN checkpoint, plots the learning curves and
prints a markdown table. Runs whose `metrics.json` says finished are skipped, so an interrupted
comparison continues where it stopped (the model that was cut off restarts from its own checkpoint).

    python benchmarks/lm_compare.py --budget 1200 --threads 2 --out runs/lm-compare-20min \
        --data-dir ../shared/data                                           # the recorded protocol
    python benchmarks/lm_compare.py --budget 600 --threads 1 --core 1 ...   # one pinned core
    python benchmarks/lm_compare.py --summary-only --out runs/lm-compare-20min   # table of finished runs
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

MODELS = ("lstm", "transformer", "lif-snn", "astrosnn")
LAYERS = {"lstm": 2, "transformer": 4, "lif-snn": 4, "astrosnn": 4}


def run_dir(out: Path, model: str, seed: int, seeds: list[int]) -> Path:
    return out / model if len(seeds) == 1 else out / f"{model}-seed{seed}"


def train_command(model: str, seed: int, folder: Path, args: argparse.Namespace) -> list[str]:
    cmd = [
        sys.executable, "-m", "astrosnn", "lm", "train", "--corpus", args.corpus, "--model", model,
        "--params", str(args.params), "--layers", str(LAYERS[model]), "--heads", "4",
        "--seq-len", str(args.seq_len), "--batch-size", str(args.batch_size), "--lr", str(args.lr),
        "--seed", str(seed), "--time-budget", str(args.budget), "--threads", str(args.threads),
        "--eval-tokens", str(args.eval_tokens), "--out", str(folder), "--quiet",
    ]
    if args.dropout is not None:
        cmd += ["--dropout", str(args.dropout)]
    if model in ("astrosnn", "lif-snn"):
        for option in args.snn_set:
            cmd += ["--set", option]
    if (folder / "metrics.json").is_file():
        cmd.append("--resume")
    if args.data_dir:
        cmd += ["--data-dir", args.data_dir]
    if args.core is not None and shutil.which("taskset"):
        cmd = ["taskset", "-c", str(args.core), *cmd]
    return cmd


def finished(folder: Path) -> bool:
    path = folder / "metrics.json"
    return path.is_file() and bool(json.loads(path.read_text()).get("finished"))


def summary(out: Path, models, seeds: list[int]) -> str:
    rows = ["| model | seed | parameters | final validation bits/char (full split) | best (at tokens) | steps | "
            "training tokens | tokens/s | train time (s) | wall time (s) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for model in models:
        for seed in seeds:
            path = run_dir(out, model, seed, seeds) / "metrics.json"
            if not path.is_file():
                rows.append(f"| {model} | {seed} | (no run) | | | | | | | |")
                continue
            m = json.loads(path.read_text())
            final = m["final_validation"] or {}
            best = m["best_validation"] or {}
            rows.append(
                f"| {model} | {seed} | {m['parameters']:,} | {final.get('bits_per_char', float('nan')):.3f} | "
                f"{best.get('bits_per_char', float('nan')):.3f} ({best.get('tokens', 0) / 1e6:.1f}M) | "
                f"{m['steps']:,} | {m['tokens']:,} | {m['tokens_per_second']:,.0f} | {m['train_time_s']:.0f} | "
                f"{m['wall_time_s']:.0f} |"
            )
    return "\n".join(rows)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--corpus", default="tinyshakespeare")
    p.add_argument("--data-dir")
    p.add_argument("--params", type=int, default=1_000_000)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seeds", default="0", help="comma-separated seeds; each model runs once per seed")
    p.add_argument("--threads", type=int, default=2, help="torch (and scan) threads per run")
    p.add_argument("--set", dest="snn_set", action="append", default=[], metavar="KEY=VALUE",
                   help="model option for AstroSNN and LIF-SNN alike (repeatable)")
    p.add_argument("--dropout", type=float, default=None, help="dropout rate for every model (default: none)")
    p.add_argument("--budget", type=float, default=600.0, help="training seconds per model")
    p.add_argument("--eval-tokens", type=int, default=16384)
    p.add_argument("--core", type=int, default=None, help="CPU core to pin to with taskset (default: none)")
    p.add_argument("--out", default="runs/lm-compare")
    p.add_argument("--prompt", default="ROMEO:\n")
    p.add_argument("--summary-only", action="store_true")
    args = p.parse_args()
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    threads = str(args.threads)
    env = dict(os.environ, OMP_NUM_THREADS=threads, NUMBA_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
    if not args.summary_only:
        for seed in seeds:
            for model in models:
                folder = run_dir(out, model, seed, seeds)
                if finished(folder):
                    print(f"{folder}: finished earlier, skipped", flush=True)
                    continue
                cmd = train_command(model, seed, folder, args)
                print(f"[{time.strftime('%H:%M:%S', time.gmtime())} UTC] {' '.join(cmd)}", flush=True)
                with open(out / f"{folder.name}.log", "a") as log:
                    rc = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
                print(f"[{time.strftime('%H:%M:%S', time.gmtime())} UTC] {folder.name}: exit {rc}", flush=True)
    sample_dir = run_dir(out, "astrosnn", seeds[0], seeds)
    if not args.summary_only and "astrosnn" in models and (sample_dir / "model.safetensors").is_file():
        gen = [sys.executable, "-m", "astrosnn", "lm", "generate", "--checkpoint", str(sample_dir),
               "--prompt", args.prompt, "--max-new-tokens", "500", "--temperature", "0.8", "--seed", "0"]
        sample = subprocess.run(gen, capture_output=True, text=True, env=env)
        (out / "astrosnn-sample.txt").write_text(sample.stdout + sample.stderr)
        print("$ " + " ".join(gen[1:]) + "\n" + sample.stdout + sample.stderr)
    runs = [run_dir(out, m, s, seeds) for s in seeds for m in models]
    runs = [r for r in runs if (r / "metrics.json").is_file()]
    if runs:
        from astrosnn.viz.lm import plot_learning_curves

        plot_learning_curves(runs, out / "curves.png", title=f"{args.corpus}, ~{args.params / 1e6:g}M parameters")
    table = summary(out, models, seeds)
    (out / "summary.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
