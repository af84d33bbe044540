"""`python -m tlcore adapt RUN_ID TARGET_DATASET`: adapt a completed run to a target domain.

    adapt RUN_ID TARGET_DATASET [--methods coral ot ...] [--scorer mano] [--seed 0]
          [--name NAME] [--json]

The lab itself (`tlcore.adapt.lab`) is imported inside the command: it loads
scikit-learn, skada and, for features, TensorFlow.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tlcore.adapt.methods import DEFAULT_SCORER, METHODS, SCORERS
from tlcore.cli import print_json
from tlcore.workspace import Workspace


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `adapt` command."""
    p = subparsers.add_parser(
        "adapt", help="adapt a completed run to a target dataset whose labels are unknown",
        description="Measure the shift between the run's dataset and TARGET_DATASET on the "
                    "run's base features, fit each adaptation method with the target's labels "
                    "hidden, choose one with an unsupervised scorer, and save it as a run of "
                    "its own. A labeled target's labels only score the result.")
    p.add_argument("run", metavar="RUN_ID", help="a completed run (the source model)")
    p.add_argument("target", metavar="TARGET_DATASET",
                   help="an imported dataset of the target domain, labeled or not")
    p.add_argument("--methods", nargs="+", metavar="METHOD",
                   help=f"methods to compare, from {', '.join(METHODS)} (commas or spaces; "
                        "none is always added; default all)")
    p.add_argument("--scorer", default=DEFAULT_SCORER, choices=list(SCORERS),
                   help="unsupervised score that chooses (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed (default %(default)s)")
    p.add_argument("--name", help="name of the adapted run")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_cmd_adapt)


def _cmd_adapt(args: argparse.Namespace) -> int:
    from tlcore.adapt.lab import adapt_run

    names = [n for item in args.methods or [] for n in item.split(",") if n] or None
    shown: list[str] = []

    def progress(step: str, done: int, total: int) -> None:
        if step not in shown:  # one line per step
            shown.append(step)
            print(f"adapt: {step}", file=sys.stderr, flush=True)

    report = adapt_run(args.run, args.target, method_names=names, scorer=args.scorer,
                       seed=args.seed, name=args.name, ws=Workspace.from_env(),
                       progress=progress)
    if args.json:
        print_json(report)
        return 0
    print(report["shift"]["reading"])
    overall = report["shift"]["overall"]
    print(f"proxy A-distance {overall['proxy_a_distance']:.2f}, MMD² {overall['mmd2']:.4f} "
          f"(p = {overall['mmd_p_value']:.3f}); {report['n_source']} source and "
          f"{report['n_target']} target images")
    print(f"{'METHOD':<20} {report['scorer'].upper():>8} {'TARGET ACC':>10} {'GAIN':>7}")
    for m in report["methods"]:
        mark = "  <- chosen" if m["name"] == report["chosen"] else ""
        print(f"{m['label']:<20} {_num(m['score']):>8} {_pct(m['target_accuracy']):>10} "
              f"{_signed(m['gain']):>7}{mark}")
    source = report["source_model"]["target_accuracy"]
    if source is not None:
        print(f"source model on the target: {_pct(source)}")
    print(f"adapted run: {report['run_id']}")
    return 0


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _signed(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:+.1f}"
