"""The recorded LM comparison: AstroSNN, LIF-SNN, LSTM and Transformer of ~1M parameters, same budget.

Runs `astrosnn lm train` once per model, one after another, each pinned to one core with one thread,
then samples from the AstroSNN checkpoint, plots the learning curves and prints a markdown table.

    python benchmarks/lm_compare.py --budget 600 --core 1 --out runs/lm-compare --data-dir ../shared/data
    python benchmarks/lm_compare.py --summary-only --out runs/lm-compare   # table of finished runs
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


def train_command(model: str, args: argparse.Namespace) -> list[str]:
    cmd = [
        sys.executable, "-m", "astrosnn", "lm", "train", "--corpus", args.corpus, "--model", model,
        "--params", str(args.params), "--layers", str(LAYERS[model]), "--heads", "4",
        "--seq-len", str(args.seq_len), "--batch-size", str(args.batch_size), "--lr", str(args.lr),
        "--seed", str(args.seed), "--time-budget", str(args.budget), "--threads", "1",
        "--eval-tokens", str(args.eval_tokens), "--out", str(Path(args.out) / model), "--quiet",
    ]
    if args.data_dir:
        cmd += ["--data-dir", args.data_dir]
    if args.core is not None and shutil.which("taskset"):
        cmd = ["taskset", "-c", str(args.core), *cmd]
    return cmd


def summary(out: Path, models) -> str:
    rows = ["| model | parameters | validation bits/char (full split) | steps | training tokens | tokens/s | train time (s) | wall time (s) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for model in models:
        path = out / model / "metrics.json"
        if not path.is_file():
            rows.append(f"| {model} | (no run) | | | | | | |")
            continue
        m = json.loads(path.read_text())
        final = m["final_validation"] or {}
        rows.append(
            f"| {model} | {m['parameters']:,} | {final.get('bits_per_char', float('nan')):.3f} | "
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
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--budget", type=float, default=600.0, help="training seconds per model")
    p.add_argument("--eval-tokens", type=int, default=16384)
    p.add_argument("--core", type=int, default=1, help="CPU core to pin to (taskset)")
    p.add_argument("--out", default="runs/lm-compare")
    p.add_argument("--prompt", default="ROMEO:\n")
    p.add_argument("--summary-only", action="store_true")
    args = p.parse_args()
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1", MKL_NUM_THREADS="1")
    if not args.summary_only:
        for model in models:
            cmd = train_command(model, args)
            print(f"[{time.strftime('%H:%M:%S', time.gmtime())} UTC] {' '.join(cmd)}", flush=True)
            with open(out / f"{model}.log", "w") as log:
                rc = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
            print(f"[{time.strftime('%H:%M:%S', time.gmtime())} UTC] {model}: exit {rc}", flush=True)
    if not args.summary_only and "astrosnn" in models and (out / "astrosnn" / "model.safetensors").is_file():
        gen = [sys.executable, "-m", "astrosnn", "lm", "generate", "--checkpoint", str(out / "astrosnn"),
               "--prompt", args.prompt, "--max-new-tokens", "500", "--temperature", "0.8", "--seed", "0"]
        sample = subprocess.run(gen, capture_output=True, text=True, env=env)
        (out / "astrosnn-sample.txt").write_text(sample.stdout + sample.stderr)
        print("$ " + " ".join(gen[1:]) + "\n" + sample.stdout + sample.stderr)
    runs = [out / m for m in models if (out / m / "metrics.json").is_file()]
    if runs:
        from astrosnn.viz.lm import plot_learning_curves

        plot_learning_curves(runs, out / "curves.png", title=f"{args.corpus}, ~{args.params / 1e6:g}M parameters")
    table = summary(out, models)
    (out / "summary.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
