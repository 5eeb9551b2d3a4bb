"""`astrosnn data info`: which datasets are where, their sizes, and whether their checksums verify."""

from __future__ import annotations

import argparse
import sys


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="datasets: where they are, sizes, checksums")
    data_sub = p.add_subparsers(dest="data_command", metavar="COMMAND")
    data_sub.required = True
    info = data_sub.add_parser(
        "info",
        help="list each dataset, where it was found, its sizes and whether its checksums verify",
        description=(
            "Report on every dataset (never downloads). The data folder is --data-dir, else "
            "$ASTROSNN_DATA, else the user cache folder. Exit status 2 when a dataset is corrupt "
            "(a checksum or structural check fails) or cannot be read; missing datasets are not an error."
        ),
    )
    info.add_argument("--data-dir", default=None, help="folder holding mnist/, fashion-mnist/, nmnist/, ptb/, tinyshakespeare/")
    info.add_argument("--json", action="store_true", help="print the report as JSON")
    info.add_argument(
        "--no-verify", action="store_true",
        help="accept files that differ from the published checksums (status 'modified' instead of 'corrupt'); "
             "the same as ASTROSNN_SKIP_CHECKSUMS=1",
    )
    info.set_defaults(func=run_info)


def run_info(args: argparse.Namespace) -> int:
    import json
    from dataclasses import asdict

    from astrosnn.data.info import BAD_STATUSES, dataset_reports
    from astrosnn.data.sources import data_dir_origin, resolve_data_dir

    root = resolve_data_dir(args.data_dir)
    reports = dataset_reports(root, verify=not args.no_verify)
    origin = data_dir_origin(args.data_dir)
    bad = [r for r in reports if r.status in BAD_STATUSES]
    if args.json:
        print(json.dumps({"data_dir": str(root), "chosen_by": origin, "datasets": [asdict(r) for r in reports]}, indent=2))
    else:
        print(f"data folder: {root} (from {origin})")
        width = max(len(r.name) for r in reports)
        for r in reports:
            print(f"{r.name:<{width}}  {r.status:<8}  {r.location}")
            pad = " " * (width + 2)
            if r.sizes:
                print(f"{pad}sizes:     {r.sizes}")
            print(f"{pad}checksums: {r.checksums}")
        n_ok = sum(r.status in ("ok", "modified") for r in reports)
        print(f"{n_ok}/{len(reports)} datasets ready")
    sys.stdout.flush()
    for r in bad:
        print(f"astrosnn: error: {r.name} {r.status}: {r.location}", file=sys.stderr)
    return 2 if bad else 0
