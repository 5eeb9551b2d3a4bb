"""Readouts beyond the paper's on saved NALSM features (issue 13 §6), beside the paper's own readout.

Reads RUN/features.safetensors (from `astrosnn nalsm train --save-features`) and RUN/metrics.json of each run,
fits every transform x fit of `astrosnn.nalsm.readout_variants` on the training split, and prints one markdown
table (the paper's readout first). `--json FILE` also writes the rows with versions.

    python benchmarks/nalsm_readouts.py runs/nalsm-compare/mnist-full-nalsm-s0 --json results/nalsm_readouts.json
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from safetensors.numpy import load_file

from astrosnn.errors import AstrosnnError
from astrosnn.nalsm.readout_variants import FITS, TRANSFORMS, evaluate_readouts
from astrosnn.runinfo import versions


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path, help="run folders with features.safetensors")
    p.add_argument("--transforms", default=",".join(TRANSFORMS))
    p.add_argument("--fits", default=",".join(FITS))
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    rows = []
    print("| run | readout | chosen | validation | test | fit s |\n|---|---|---|---:|---:|---:|")
    try:
        for run in args.runs:
            path = run / "features.safetensors"
            if not path.is_file():
                raise AstrosnnError(f"{path} not found (train with --save-features)")
            metrics = json.loads((run / "metrics.json").read_text())
            print(f"| {run.name} | paper (softmax, L1, Adadelta) | epoch {metrics['best_epoch']} | "
                  f"{metrics['validation_accuracy']:.4f} | {metrics['test_accuracy']:.4f} | |")
            scores = evaluate_readouts(load_file(str(path)), tuple(args.transforms.split(",")),
                                       tuple(args.fits.split(",")))  # fmt: skip
            for s in scores:
                print(f"| {run.name} | {s.fit} on {s.transform} | {s.chosen} | {s.validation_accuracy:.4f} | "
                      f"{s.test_accuracy:.4f} | {s.fit_seconds:.0f} |", flush=True)
                rows.append({"run": str(run), "paper_test_accuracy": metrics["test_accuracy"], **asdict(s)})
    except (AstrosnnError, OSError, ValueError, KeyError) as err:  # missing / corrupt metrics.json too
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "versions": versions()}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
