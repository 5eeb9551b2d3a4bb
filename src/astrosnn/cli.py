"""The `astrosnn` command: one entry point, one module per subcommand group in astrosnn.commands."""

from __future__ import annotations

import argparse
import re
import sys

from astrosnn import __version__
from astrosnn.errors import AstrosnnError


class UsageExit(SystemExit):
    """A bad command line, already reported as one line (exit status 2)."""


class OneLineParser(argparse.ArgumentParser):
    """argparse with its errors as one line, ``astrosnn: error: --option: why``, not the usage block.

    Subcommand parsers inherit the class (argparse makes them of their parent's type)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        def name(m: re.Match) -> str:
            return max(m.group(1).split("/"), key=len) + ": "

        message = re.sub(r"^argument ([^:]+): ", name, message).replace("\n", " ")
        print(f"astrosnn: error: {message}", file=sys.stderr)
        raise UsageExit(2)


def build_parser() -> argparse.ArgumentParser:
    from astrosnn.commands import data, lm, nalsm

    parser = OneLineParser(
        prog="astrosnn",
        description="Astrocyte-modulated spiking neural networks: NALSM and AstroSNN.",
    )
    parser.add_argument("--version", action="version", version=f"astrosnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    data.add_parser(sub)
    nalsm.add_parser(sub)
    lm.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageExit:
        return 2
    try:
        result = args.func(args)
    except AstrosnnError as e:
        print(f"astrosnn: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("astrosnn: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Output piped into e.g. `head`: stop quietly, as Unix tools do.
        sys.stderr.close()
        return 141
    return int(result or 0)


if __name__ == "__main__":
    raise SystemExit(main())
