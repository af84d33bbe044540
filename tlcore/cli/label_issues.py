"""`python -m tlcore datasets issues NAME`: images whose label is likely wrong.

    datasets issues NAME [--image-size N] [--weights imagenet|none|FILE] [--top N]
                         [--refresh] [--json]

Ranks every image of the dataset by how likely its given label is wrong
(`tlcore.results.label_review`: frozen-base features, a cross-validated logistic
regression, cleanlab), most suspicious first. Without `--top` it lists the
suspects: the images cleanlab counts as label issues (`issue`) and those the
classifier, which never saw them, puts in another class; `--top N` lists the N
most suspicious, suspects or not. The review is cached per dataset version, base and size.
Progress goes to stderr on a terminal.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tlcore.cli import print_json
from tlcore.errors import ConfigError
from tlcore.results.label_review import DEFAULT_SIZE, review_dataset
from tlcore.workspace import Workspace

JSON_KEYS = ("image_id", "file", "source", "split", "given", "suggested", "score",
             "confidence", "issue", "suspect")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `issues` to the `datasets` command group's actions."""
    p = subparsers.add_parser(
        "issues", help="rank the images whose label is likely wrong",
        description="Rank the dataset's images by how likely their given label is wrong "
                    "(frozen VGG16 features, a cross-validated logistic regression and "
                    "cleanlab), with a suggested label; also near-duplicates and outliers.")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--image-size", type=int, default=DEFAULT_SIZE,
                   help="image size of the features (default %(default)s)")
    p.add_argument("--weights", default="imagenet",
                   help="imagenet (default), none (random init) or a VGG16 notop weights file")
    p.add_argument("--top", type=int, metavar="N",
                   help="list the N most suspicious images (default: the suspects, images "
                        "counted as label issues or put in another class out of fold)")
    p.add_argument("--refresh", action="store_true", help="compute again even when cached")
    p.add_argument("--json", action="store_true",
                   help="print JSON: a list of images, most suspicious first")
    p.set_defaults(func=_cmd_issues)


class _Progress:
    """The review's progress on stderr, one redrawn line on a terminal, nothing otherwise."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()

    def __call__(self, done: int, total: int, message: str) -> None:
        if self.tty:
            count = f" {done}/{total}" if total > 1 else ""
            print(f"\r{message}{count}\033[K", end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.tty:
            print("\r\033[K", end="", file=sys.stderr, flush=True)


def check_top(top: int | None) -> None:
    """Refuse a `--top` below 1 (ConfigError)."""
    if top is not None and top < 1:
        raise ConfigError(f"--top must be a whole number of at least 1. Received: {top}")


def listed(review: dict[str, Any], top: int | None) -> list[dict[str, Any]]:
    """The rows to list: the `top` most suspicious, or the suspects."""
    check_top(top)
    rows = review["rows"]
    chosen = rows[:top] if top is not None else [r for r in rows if r["suspect"]]
    return [{key: r.get(key) for key in JSON_KEYS} for r in chosen]


def _cmd_issues(args: argparse.Namespace) -> int:
    check_top(args.top)  # before the feature pass
    progress = _Progress()
    try:
        review = review_dataset(args.name, image_size=args.image_size, weights=args.weights,
                                ws=Workspace.from_env(), progress=progress,
                                refresh=args.refresh)
    finally:
        progress.close()
    rows = listed(review, args.top)
    if args.json:
        print_json(rows)
        return 0
    what = (f"the {len(rows)} most suspicious" if args.top is not None
            else f"{len(rows)} suspect label{'s' if len(rows) != 1 else ''} "
                 f"({review['issues']} counted as issues by cleanlab)")
    print(f"dataset {review['dataset']}: {what} of {len(review['rows'])} images "
          f"({review['size']} px, weights {review['weights']})")
    for rank, row in enumerate(rows, start=1):
        print(f"  {rank:>4}  {row['image_id']}  {row['given']} -> {row['suggested']}  "
              f"score {row['score']:.3f}  {row['source'] or row['file']}")
    if review["skipped_classes"]:
        print(f"  not reviewed (fewer than 2 images): {', '.join(review['skipped_classes'])}")
    print(f"near-duplicate groups: {len(review['near_duplicates'])}; "
          f"outliers: {len(review['outliers'])}")
    return 0
