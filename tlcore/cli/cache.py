"""`python -m tlcore cache list|clear`: cached arrays and models, and the frozen bases.

`list` shows the cache entries and the frozen bases (`tlcore.vgg16.bases`) with the
runs that use each. `clear` also removes the bases no run uses, and staging
folders left in the workspace's tmp/ by killed imports and uploads
(`data.remove_stale_staging`).
"""

from __future__ import annotations

import argparse
import datetime as dt

from tlcore import data
from tlcore.cache import lru as cache
from tlcore.cli import print_json
from tlcore.runs import launch
from tlcore.vgg16 import bases
from tlcore.workspace import Workspace


def register(subparsers: argparse._SubParsersAction) -> None:
    group = subparsers.add_parser(
        "cache", help="list or clear cached images, features and models, and unused frozen bases",
        description=f"Cached arrays live in $TLCORE_HOME/cache, bounded by ${cache.ENV_MAX_GB} "
                    f"(default {cache.DEFAULT_MAX_GB:g} GB, least recently used first out).")
    sub = group.add_subparsers(dest="cache_command", metavar="ACTION", required=True)
    p = sub.add_parser("list", help="list cache entries and frozen bases (with the runs using "
                                    "each), most recently used first")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_list)
    p = sub.add_parser("clear", help="remove cache entries (they are rebuilt when needed), "
                                     "frozen bases no run uses, staging left by killed imports "
                                     "and run folders whose run is gone from the database")
    p.add_argument("--kind", choices=cache.KINDS,
                   help="only this kind of entry (staging and leftover run folders stay)")
    p.set_defaults(func=_cmd_clear)


def _cmd_list(args: argparse.Namespace) -> int:
    ws = Workspace.from_env()
    entries = cache.entries(ws)
    stored = bases.listing(ws)
    if args.json:
        print_json({"entries": entries, "total_bytes": sum(e["bytes"] for e in entries),
                    "max_bytes": cache.max_bytes(), "bases": stored})
        return 0
    _print_bases(stored)
    if not entries:
        print("cache is empty")
        return 0
    print(f"{'kind':<9} {'dataset':<20} {'size':>5} {'cut':<22} {'MB':>9}  last used")
    for e in entries:
        meta = e["meta"]
        used = dt.datetime.fromtimestamp(e["last_used"]).strftime("%Y-%m-%d %H:%M")
        print(f"{e['kind']:<9} {str(meta.get('dataset', '?')):<20} {meta.get('size', ''):>5} "
              f"{str(meta.get('cut', '')):<22} {e['bytes'] / 1e6:>9.1f}  {used}")
    total = sum(e["bytes"] for e in entries)
    print(f"total {total / 1e6:.1f} MB of {cache.max_bytes() / 1e6:.0f} MB")
    return 0


def _print_bases(stored: list[dict]) -> None:
    """One line per frozen base: its key, size, source and the runs that use it."""
    for b in stored:
        runs = ", ".join(b["runs"]) if b["runs"] else "no run (removed by cache clear)"
        print(f"base {b['fingerprint'][:12]}  {b['bytes'] / 1e6:>7.1f} MB  {b['source']}  "
              f"used by: {runs}")


def _cmd_clear(args: argparse.Namespace) -> int:
    ws = Workspace.from_env()
    freed = cache.clear(ws, args.kind)
    print(f"freed {freed / 1e6:.1f} MB")
    if args.kind is None:
        orphans = launch.remove_orphaned_runs(ws)
        if orphans["folders"]:
            print(f"removed {orphans['folders']} leftover run folder(s) with no run in the "
                  f"database ({orphans['bytes'] / 1e6:.1f} MB)")
    removed, staged = data.remove_stale_staging(ws)
    if removed:
        print(f"removed {removed} staging folder{'s' if removed > 1 else ''} left by killed "
              f"imports ({staged / 1e6:.1f} MB)")
    return 0
