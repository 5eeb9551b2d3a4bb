"""Readouts on time-binned liquid features (issue 13 §6): the run's own liquid, counts per time window.

Loads a finished `astrosnn nalsm train` run (its phase-1 weights), re-runs phase 2 on the run's splits with the
same seeds (`NALSM.transform_binned` with the job's per-split salts, so 1 window reproduces the run's counts), and fits the
paper's readout (softmax, L1, Adadelta, early-stopped on validation) and the --fits on the --transforms of
`astrosnn.nalsm.readout_variants` (default: ridge with leave-one-out alpha on L1 counts) on the window-major
features (samples, windows x neurons), beside the run's own test accuracy.

    python benchmarks/nalsm_binned_readout.py runs/nalsm-compare/digits-nalsm-s0 --bins 1,5,10
    python benchmarks/nalsm_binned_readout.py RUN --data-dir ../shared/data --bins 1,5 --paper-windows 1 \
        --fits ridge-cv,logistic   # full MNIST: one phase 2 for all window counts
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from astrosnn.errors import AstrosnnError
from astrosnn.nalsm import NALSM
from astrosnn.nalsm.job import RunConfig, load_splits
from astrosnn.nalsm.model import PHASE2_SALTS
from astrosnn.nalsm.readout import train_readout
from astrosnn.nalsm.readout_variants import FITS, TRANSFORMS, evaluate_readouts
from astrosnn.runinfo import versions

SPLITS = tuple(PHASE2_SALTS)


def _window_counts(text: str, option: str, empty: bool = False) -> list[int]:
    """A comma list of window counts; one error line naming the option otherwise."""
    parts = [t.strip() for t in text.split(",") if t.strip()]
    if (not parts and not empty) or not all(t.isdigit() for t in parts):
        raise AstrosnnError(f"{option}: give a comma list of window counts, e.g. 1,5,10; got {text!r}")
    return [int(t) for t in parts]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path)
    p.add_argument("--bins", default="1,5,10", help="comma list of window counts")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--backend", default="auto")
    p.add_argument("--fits", default="ridge-cv", help=f"comma list of {', '.join(FITS)} (beside the paper's)")
    p.add_argument("--transforms", default="l1", help=f"comma list of {', '.join(TRANSFORMS)}")
    p.add_argument("--paper-windows", default=None,
                   help="window counts that also get the paper's softmax (default: all; it is the slow fit at full "
                   "scale, ~7 min per 1,000 features on a core)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    try:  # options first: a typo is one line before minutes of loading
        bins = _window_counts(args.bins, "--bins")
        paper = set(bins) if args.paper_windows is None else set(_window_counts(args.paper_windows, "--paper-windows", empty=True))
        if not paper <= set(bins):
            raise AstrosnnError(f"--paper-windows {args.paper_windows!r}: each must be one of --bins {args.bins!r}")
        metrics = json.loads((args.run / "metrics.json").read_text())
        sizes = metrics["sizes"]
        images = metrics["dataset"] != "nmnist"  # N-MNIST's validation comes from the train files: no limits
        rc = RunConfig(dataset=metrics["dataset"], data_dir=args.data_dir, download=False,
                       limit=sizes["train"] if images else None,
                       val_limit=sizes["validation"] if images else None,
                       test_limit=sizes["test"] if images else None)  # fmt: skip
        data = load_splits(rc)["splits"]
        model = NALSM.load(args.run, backend=args.backend)
        steps = model.config.protocol.phase2_ms
        if not all(1 <= b <= steps for b in bins):
            raise AstrosnnError(f"--bins: each window count must be in [1, {steps}] (phase2_ms), got {args.bins!r}")
        fits, transforms = tuple(args.fits.split(",")), tuple(args.transforms.split(","))
        for name, known in [*((f, FITS) for f in fits), *((t, TRANSFORMS) for t in transforms)]:
            if name not in known:  # before the long phase 2, not after
                raise AstrosnnError(f"unknown readout option {name!r}; choose from {', '.join(known)}")
    except (AstrosnnError, OSError, KeyError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    rows = []
    print(f"{args.run.name}: the run's own test accuracy {metrics['test_accuracy']:.4f}")
    print("| windows | features | readout | validation | test | seconds |\n|---:|---:|---|---:|---:|---:|")
    t0 = time.perf_counter()
    by_split = {s: model.transform_windows(data[s][0], bins, salt=PHASE2_SALTS[s]) for s in SPLITS}  # one phase 2
    sim_s = time.perf_counter() - t0
    print(f"phase 2 (all window counts at once): {sim_s:.0f} s", flush=True)
    labels = {s: data[s][1] for s in SPLITS}
    for b in bins:
        t0 = time.perf_counter()
        feats = {s: by_split[s][b] for s in SPLITS}
        scores = []
        if b in paper:
            h = train_readout(feats["train"], labels["train"], feats["validation"], labels["validation"],
                              feats["test"], labels["test"], config=model.config.readout).history  # fmt: skip
            scores.append(("paper softmax", h.val_accuracy[h.best_epoch], h.test_accuracy[h.best_epoch]))
        flat = {f"{s}.{k}": v for s in SPLITS for k, v in (("counts", feats[s]), ("labels", labels[s]))}
        for sc in evaluate_readouts(flat, transforms=transforms, fits=fits):
            scores.append((f"{sc.fit} on {sc.transform} ({sc.chosen})", sc.validation_accuracy, sc.test_accuracy))
        for name, val, test in scores:
            print(f"| {b} | {feats['train'].shape[1]} | {name} | {val:.4f} | {test:.4f} | "
                  f"{time.perf_counter() - t0:.0f} |", flush=True)  # readout seconds
            rows.append({"windows": b, "readout": name, "validation_accuracy": val, "test_accuracy": test,
                         "phase2_s": round(sim_s, 1)})
    if args.json:
        args.json.write_text(json.dumps({"run": str(args.run), "rows": rows, "torch_threads": torch.get_num_threads(),
                                         "versions": versions()}, indent=1) + "\n")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
