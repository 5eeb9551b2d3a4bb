"""`astrosnn data`: placeholder until its issue lands."""

from __future__ import annotations

import argparse

from astrosnn.errors import AstrosnnError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="(data: not yet implemented)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    raise AstrosnnError("'astrosnn data' is not implemented yet")
