"""`python -m tlcore study transfer DATASET`: pretrained against scratch by training-set size.

    study transfer DATASET [--sizes 5,10,25,50,100] [--set KEY=VALUE ...] [--json] [--detach]
"""

from __future__ import annotations

import argparse
import sys
import time

from tlcore.cli import print_json
from tlcore.results import transfer_study as transferstudy
from tlcore.runs import liveness
from tlcore.store import ACTIVE_STATUSES
from tlcore.workspace import Workspace

POLL_S = 1.0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `study` command group."""
    group = subparsers.add_parser("study", help="studies over many runs: transfer")
    sub = group.add_subparsers(dest="study_command", required=True, metavar="COMMAND")
    p = sub.add_parser(
        "transfer", help="when does pretraining help? pretrained vs from scratch by "
                         "training images per class",
        description="For each size, one run with the pretrained base (the default config, "
                    "or --set overrides) on that many training images per class, and its "
                    "from-scratch baseline; the pretrained runs are queued first. Validation "
                    "and test splits stay whole. The reading counts a gap as clear only when "
                    "its 95%% interval excludes 0.")
    p.add_argument("dataset", metavar="DATASET")
    p.add_argument("--sizes", default=",".join(map(str, transferstudy.DEFAULT_SIZES)),
                   help="training images per class, comma-separated, at most "
                        f"{transferstudy.MAX_SIZES} (default %(default)s)")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="SECTION.KEY=VALUE", help="override a key of the config")
    p.add_argument("--json", action="store_true",
                   help="print one row per setting and size as JSON")
    p.add_argument("--detach", action="store_true", help="queue the runs and return")
    p.set_defaults(func=_cmd_transfer)


def _cmd_transfer(args: argparse.Namespace) -> int:
    ws = Workspace.from_env()
    sizes = transferstudy.parse_sizes(args.sizes)
    study_id = transferstudy.launch(ws, args.dataset, sizes, args.overrides)
    print(f"study {study_id}: {2 * len(sizes)} runs queued, the pretrained ones first",
          file=sys.stderr, flush=True)
    if args.detach:
        print(study_id)
        return 0
    shown = None
    while True:
        liveness.refresh(ws)
        rows = transferstudy.rows(ws, study_id)
        state = transferstudy.progress_text(rows)
        if state != shown:  # one line per change, not per poll
            print(f"study {study_id}: {state}", file=sys.stderr, flush=True)
            shown = state
        if not any(r["status"] in ACTIVE_STATUSES for r in rows):
            break
        time.sleep(POLL_S)
    if args.json:
        print_json(rows)
        return 0
    print(f"{'SETTING':<11} {'PER CLASS':>9} {'TRAIN':>6} {'VAL ACC':>8} {'TEST ACC':>8}  RUN")
    for r in rows:
        print(f"{r['setting']:<11} {r['images_per_class']:>9} {r['train_images'] or '-':>6} "
              f"{_num(r['val_accuracy']):>8} {_num(r['test_accuracy']):>8}  {r['run_id']} "
              f"({r['status']})")
    print(transferstudy.reading(rows))
    return 0


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
