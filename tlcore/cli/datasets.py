"""`python -m tlcore datasets ...` and `python -m tlcore demo`: manage datasets.

    datasets import PATH --name NAME [--val F --test F --seed N --csv-zip ZIP]
    datasets list [--json]
    datasets show NAME [--json] [--images]
    datasets delete NAME
    demo [--name NAME]

and the edit commands of `tlcore.cli.dataset_edits` (create, add, remove,
relabel, versions, ...).

`import` and `demo` print the dataset name on stdout, so scripts can capture it;
progress goes to stderr.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, TextIO

from tlcore import data
from tlcore.cli import dataset_edits, format_table, label_issues, print_json

# Imports with at least this many files show progress even when stderr is not a terminal.
LARGE_IMPORT_FILES = 2000
_BAR_WIDTH = 30
_MAX_SKIPPED_SHOWN = 20


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `datasets` command group and the `demo` command."""
    group = subparsers.add_parser("datasets", help="import, build, edit, list and show datasets",
                                  description="Import, build, edit, version, list, show and "
                                              "delete datasets.")
    sub = group.add_subparsers(dest="datasets_command", metavar="ACTION", required=True)
    label_issues.register(sub)

    p = sub.add_parser("import", help="import a zip, folder or CSV of labelled images",
                       description="Import a zip or folder of class folders, or a CSV of "
                                   "filepath,label. Prints the dataset name.")
    p.add_argument("path", metavar="PATH", help=".zip file, folder, or .csv file")
    p.add_argument("--name", required=True, help="name of the new dataset")
    p.add_argument("--val", type=float, default=data.DEFAULT_VAL,
                   help="validation fraction per class (default %(default)s)")
    p.add_argument("--test", type=float, default=data.DEFAULT_TEST,
                   help="test fraction per class (default %(default)s)")
    p.add_argument("--seed", type=int, default=data.DEFAULT_SEED,
                   help="seed of the split (default %(default)s)")
    p.add_argument("--csv-zip", metavar="ZIP", help="zip holding the files a CSV names")
    p.add_argument("--unlabeled", action="store_true",
                   help="images without labels (any folders): a target domain for `adapt`")
    p.set_defaults(func=_cmd_import)

    p = sub.add_parser("list", help="list datasets")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("show", help="counts, split, health report and skipped files")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--images", action="store_true",
                   help="also list every image: its id, class, split and source file")
    p.set_defaults(func=_cmd_show)

    p = sub.add_parser("delete", help="delete a dataset (its folder and record)")
    p.add_argument("name", metavar="NAME")
    p.set_defaults(func=_cmd_delete)
    dataset_edits.register(sub)

    p = subparsers.add_parser("demo", help="create the offline demo dataset",
                              description="Generate a small dataset of 4 shape classes (no "
                                          "download) and import it. Prints its name.")
    p.add_argument("--name", default="demo", help="dataset name (default %(default)s)")
    p.set_defaults(func=_cmd_demo)


class ProgressPrinter:
    """Import progress on a stream: a redrawn bar on a terminal, else a line per 10%.

    Small imports that do not write to a terminal print nothing, so logs of
    scripted imports stay quiet.
    """

    def __init__(self, stream: TextIO | None = None, large: int = LARGE_IMPORT_FILES) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.large = large
        self.drawn = False
        self.next_tenth = 1

    def __call__(self, done: int, total: int, message: str) -> None:
        if total <= 0 or not (self.tty or total >= self.large):
            return
        if self.tty:
            filled = _BAR_WIDTH * done // total
            bar = "#" * filled + "." * (_BAR_WIDTH - filled)
            self.stream.write(f"\r[{bar}] {done}/{total} {message[:40]:<40}")
            self.drawn = True
            if done >= total:
                self.stream.write("\n")
                self.drawn = False
        elif done * 10 >= self.next_tenth * total:
            self.stream.write(f"imported {done}/{total} files ({100 * done // total}%)\n")
            self.next_tenth = 10 * done // total + 1
        self.stream.flush()

    def close(self) -> None:
        """End a bar left half drawn (the import failed)."""
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()
            self.drawn = False


def _cmd_import(args: argparse.Namespace) -> int:
    bar = ProgressPrinter()
    try:
        info = data.import_dataset(args.path, args.name, val=args.val, test=args.test,
                                   seed=args.seed, progress=bar, csv_zip=args.csv_zip,
                                   unlabeled=args.unlabeled)
    finally:
        bar.close()
    print(info["name"])
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    bar = ProgressPrinter()
    try:
        info = data.create_demo(args.name, progress=bar)
    finally:
        bar.close()
    print(info["name"])
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    rows = data.list_datasets()
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print("No datasets yet. Import one with `python -m tlcore datasets import PATH --name "
              "NAME`, or create the demo with `python -m tlcore demo`.")
        return 0
    table = []
    for row in rows:
        s = row["summary"]
        splits = s.get("splits", {})
        classes = ", ".join(row["classes"])
        table.append([row["name"], str(row["n_images"]),
                      f"{len(row['classes'])}: {_clip(classes, 40)}",
                      "/".join(str(splits.get(k, 0)) for k in data.SPLITS),
                      str(s.get("n_skipped", 0)), _when(row["created"])])
    print(format_table(["NAME", "IMAGES", "CLASSES", "TRAIN/VAL/TEST", "SKIPPED", "CREATED"],
                       table, right={1, 4}))
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    info = data.show_dataset(args.name)
    images = data.list_images(args.name) if args.images else None
    if args.json:
        print_json(info if images is None else {**info, "images": images})
        return 0
    print(render_show(info))
    if images is not None:
        print("\n" + (format_table(["ID", "CLASS", "SPLIT", "SOURCE"],
                                   [[im["id"], im["class"], im["split"], im["source"]]
                                    for im in images]) if images else "No images yet."))
    return 0


def _cmd_delete(args: argparse.Namespace) -> int:
    data.delete_dataset(args.name)
    print(f"deleted {args.name}")
    return 0


def render_show(info: dict[str, Any]) -> str:
    """The plain-text report of `datasets show`."""
    health = info["health"]
    splits, split = info["splits"], info["split"]
    lines = [
        f"Dataset  {info['name']}",
        f"Source   {info['source']}",
        f"Created  {_when(info['created'])}",
        f"Version  {info['fingerprint'][:12]} (`python -m tlcore datasets versions "
        f"{info['name']}` lists them)",
        f"Images   {info['n_images']} in {len(info['classes'])} classes "
        f"(train {splits['train']}, val {splits['val']}, test {splits['test']}; "
        f"split val={split['val']:g} test={split['test']:g} seed={split['seed']})",
        f"Skipped  {len(info['skipped'])} files",
        "",
        format_table(["CLASS", "TRAIN", "VAL", "TEST", "TOTAL"],
                     [[c, *(str(info["counts"][c][k]) for k in (*data.SPLITS, "total"))]
                      for c in info["classes"]], right={1, 2, 3, 4}),
        "",
        "Health",
    ]
    sizes = health["sizes"]
    w, h = sizes["width"], sizes["height"]
    ratio = health["imbalance_ratio"]
    lines += [
        f"  imbalance (largest/smallest class): {'-' if ratio is None else f'{ratio:g}'}",
        (f"  image sizes: {w['min']}x{h['min']} to {w['max']}x{h['max']} "
         f"(median {w['median']:g}x{h['median']:g}), {sizes['n_distinct']} distinct"
         if w["median"] is not None else "  image sizes: no images yet"),
        f"  identical files: {len(health['duplicates'])} groups; "
        f"across splits (leakage): {len(health['leakage'])}; "
        f"with different labels: {len(health['label_conflicts'])}",
    ]
    lines += [f"  ! {note}" for note in health["warnings"]]
    if info["skipped"]:
        lines += ["", "Skipped files"]
        shown = info["skipped"][:_MAX_SKIPPED_SHOWN]
        width = max(len(s["file"]) for s in shown)
        lines += [f"  {s['file']:<{width}}  {s['reason']}" for s in shown]
        if len(info["skipped"]) > len(shown):
            lines.append(f"  ... and {len(info['skipped']) - len(shown)} more "
                         "(--json lists all)")
    return "\n".join(lines)


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))
