"""CLI subcommand groups; each module exposes add_parser(subparsers)."""
