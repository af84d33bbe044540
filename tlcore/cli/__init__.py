"""The `python -m tlcore` command line.

Each command group lives in its own module with a `register(subparsers)`
function that adds its parsers and sets `func` on them. `main` turns any
`TLCoreError` into one line on stderr and exit status 2; anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Container
from typing import Any

from tlcore.errors import TLCoreError

# Command-group modules, in help order. Modules import TensorFlow lazily, inside
# the commands that need it, so `python -m tlcore datasets list` stays fast.
COMMAND_MODULES = (
    "tlcore.cli.datasets",
    "tlcore.cli.runs",
    "tlcore.cli.sweeps",
    "tlcore.cli.study",
    "tlcore.cli.cache",
    "tlcore.cli.evaluate",
    "tlcore.cli.adapt",
    "tlcore.cli.studio",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tlcore",
        description="Transfer-learning studio: import datasets, train VGG16 + dense head, "
                    "compare runs. The workspace is $TLCORE_HOME (default ./workspace).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def print_json(data: Any) -> None:
    """Print `data` as indented JSON (the `--json` output of every command)."""
    print(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def format_table(header: list[str], rows: list[list[str]],
                 right: Container[int] = frozenset()) -> str:
    """A plain-text table; columns in `right` are right-aligned (numbers)."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def fmt(row: list[str]) -> str:
        cells = [str(c).rjust(w) if i in right else str(c).ljust(w)
                 for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        return "  ".join(cells).rstrip()

    return "\n".join(fmt(r) for r in [header, *rows])


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except TLCoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
