"""Branching factor against the astrocyte weight w_astro at full scale (issue 13 §5; the paper's Fig. 3 sweep).

For each w_astro: a fresh liquid of the preset (same seed, so the same graph and input code), phase 1 on the
preset's 50,000 samples of the full training set, then the paper's branching-factor estimator on 20 evenly
spaced test images (phase 2 with in-sample plasticity, as `astrosnn nalsm train` records it). No readout: the
sweep asks where the astrocyte places the liquid, not how well it classifies. One JSON line per point, and a
plot of BF against w_astro with the paper's critical value 1.

    python benchmarks/nalsm_bf_sweep.py --data-dir ../shared/data --weights 0.002,0.0075,0.015,0.05,0.1,0.2 \\
        --backend event64 --out results/nalsm_bf_sweep
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from astrosnn.data.images import load_images
from astrosnn.errors import AstrosnnError
from astrosnn.nalsm import NALSM
from astrosnn.runinfo import versions


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--preset", default="nalsm1000")
    p.add_argument("--weights", default="0.002,0.0075,0.015,0.05,0.1,0.2", help="comma list of w_astro")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backend", default="auto")
    p.add_argument("--out", type=Path, required=True, help="folder: points.jsonl and bf_vs_w_astro.png")
    args = p.parse_args(argv)
    log = args.out / "points.jsonl"
    try:
        weights = [float(w) for w in args.weights.split(",")]
        done = recorded_points(log)  # resumable: finished points are kept (checked before the slow data load)
        train = load_images(args.dataset, "train", args.data_dir, download=False)
        test = load_images(args.dataset, "test", args.data_dir, download=False)
    except (AstrosnnError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for w in weights:
        key = (w, args.seed, args.preset, args.dataset)
        if key in done:
            rows.append(done[key])
            continue
        t0 = time.perf_counter()
        try:
            model = NALSM.from_preset(args.preset, backend=args.backend, seed=args.seed, plasticity__astro_weight=w)
        except AstrosnnError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        model.initialize(train.images)
        bf, per = model.branching_factor(test.images)
        row = {"w_astro": w, "seed": args.seed, "preset": args.preset, "dataset": args.dataset,
               "branching_factor": float(bf), "phase1_samples": model.counts["phase1_samples"],
               "backend": args.backend, "wall_s": round(time.perf_counter() - t0, 1), "versions": versions()}
        rows.append(row)
        with log.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(f"w_astro {w:g}: BF {bf:.3f} ({row['wall_s']} s)", flush=True)
    # the plot shows every point recorded for this liquid, also those of earlier calls with other --weights
    liquid = (args.seed, args.preset, args.dataset)
    rows += [r for r in done.values() if r["w_astro"] not in weights and (r["seed"], r["preset"], r["dataset"]) == liquid]
    _plot(rows, args.out / "bf_vs_w_astro.png", f"{args.preset}, {args.dataset}, seed {args.seed}")
    return 0


def recorded_points(log: Path) -> dict[tuple, dict]:
    """The points of an earlier sweep in `log`, keyed by (w_astro, seed, preset, dataset); none if it is absent."""
    if not log.is_file():
        return {}
    done = {}
    for number, line in enumerate(log.read_text().splitlines(), start=1):
        try:
            row = json.loads(line)
            done[(float(row["w_astro"]), row["seed"], row["preset"], row["dataset"])] = row
        except (ValueError, TypeError, KeyError) as err:
            raise AstrosnnError(f"{log} line {number} is not a sweep point ({type(err).__name__}: {err}); "
                                "remove that line to resume") from None
    return done


def _plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    rows = sorted(rows, key=lambda r: r["w_astro"])
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot([r["w_astro"] for r in rows], [r["branching_factor"] for r in rows], "o-")
    ax.axhline(1.0, color="grey", ls="--", lw=1, label="critical (BF = 1)")
    ax.set_xscale("log")
    ax.set_xticks([r["w_astro"] for r in rows], [f"{r['w_astro']:g}" for r in rows], rotation=45)  # one tick per point
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xlabel("astrocyte weight w_astro")
    ax.set_ylabel("branching factor")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
