"""One table and one set of curves from memory-task runs spread over several output folders (issue 14).

    python benchmarks/lm_tasks_report.py results/lm_tasks --out results/lm_tasks_report

Reads every finished run JSON (``benchmarks/lm_tasks.py``'s OUT/runs/*.json, or copies of them) under the
given folders, and writes OUT/table.md (accuracy per task, cell, model, width and step budget, mean ± std over
seeds) and OUT/curves/*.png (test accuracy against step, per task, cell and width).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from astrosnn.lm.task_runner import write_curves, write_table

_NEEDED = ("task", "cell", "model", "width", "steps", "lr", "batch_size", "seed")


def collect(folders: list[str]) -> list[dict]:
    results, seen = [], set()
    for folder in folders:
        root = Path(folder)
        if not root.is_dir():
            raise SystemExit(f"error: {folder} is not a folder")
        for path in sorted(root.rglob("*.json")):
            try:
                r = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError) as e:
                raise SystemExit(f"error: {path} is not readable JSON ({e})") from None
            if not isinstance(r, dict) or r.get("status") != "done" or "settings" not in r:
                continue  # grid.json, metrics of other jobs, unfinished runs
            settings = r["settings"]
            missing = [k for k in _NEEDED if k not in (settings if isinstance(settings, dict) else {})]
            missing += [k for k in ("accuracy", "chance", "parameters", "wall_time_s") if k not in r]
            if missing:
                raise SystemExit(f"error: {path} is a finished run without {', '.join(missing)}")
            key = json.dumps(r["settings"], sort_keys=True)
            if key not in seen:  # the same run copied into two folders counts once
                seen.add(key)
                results.append({**r, "sweep": False})
    return results


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folders", nargs="+")
    p.add_argument("--out", required=True)
    p.add_argument("--no-plots", action="store_true")
    a = p.parse_args(argv)
    results = collect(a.folders)
    if not results:
        raise SystemExit(f"error: no finished memory-task runs under {', '.join(a.folders)}")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    sys.stdout.write(write_table(results, out / "table.md"))
    if not a.no_plots:
        for path in write_curves(results, out / "curves"):
            print(path)


if __name__ == "__main__":
    main()
