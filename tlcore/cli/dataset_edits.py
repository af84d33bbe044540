"""`python -m tlcore datasets ...`: build, grow and version a dataset.

    datasets create NAME --classes a,b [--val F --test F]
    datasets add NAME --class C FILE...
    datasets remove NAME IMAGE_ID...
    datasets relabel NAME IMAGE_ID --to C
    datasets add-class NAME CLASS
    datasets rename-class NAME OLD NEW
    datasets remove-class NAME CLASS
    datasets versions NAME [--json]

Each edit prints the new version's id on stdout (`add` also the added images'
ids, one per line after it) and what it skipped on stderr.
"""

from __future__ import annotations

import argparse
import sys
import time

from tlcore import data
from tlcore.cli import format_table, print_json


def register(sub: argparse._SubParsersAction) -> None:
    """Add the edit commands to the `datasets` group's subparsers."""
    p = sub.add_parser("create", help="create an empty dataset with these classes",
                       description="Create an empty dataset; add images with `datasets add`.")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--classes", required=True, metavar="A,B,...",
                   help="comma-separated class names")
    p.add_argument("--val", type=float, default=data.DEFAULT_VAL,
                   help="validation fraction of added images (default %(default)s)")
    p.add_argument("--test", type=float, default=data.DEFAULT_TEST,
                   help="test fraction of added images (default %(default)s)")
    p.set_defaults(func=_cmd_create)

    p = sub.add_parser("add", help="add image files to a class (a new version)",
                       description="Add images to a class, checked and stored as an import "
                                   "stores them. Prints the new version, then the ids added.")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--class", dest="class_name", required=True, metavar="C")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(func=_cmd_add)

    p = sub.add_parser("remove", help="remove images by id (a new version)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("ids", nargs="+", metavar="IMAGE_ID")
    p.set_defaults(func=_cmd_remove)

    p = sub.add_parser("relabel", help="move an image to another class (a new version)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("image", metavar="IMAGE_ID")
    p.add_argument("--to", required=True, metavar="C", help="the class it moves to")
    p.set_defaults(func=_cmd_relabel)

    p = sub.add_parser("add-class", help="add an empty class (a new version)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("class_name", metavar="CLASS")
    p.set_defaults(func=lambda a: _print_version(data.add_class(a.name, a.class_name)))

    p = sub.add_parser("rename-class", help="rename a class (a new version)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("old", metavar="OLD")
    p.add_argument("new", metavar="NEW")
    p.set_defaults(func=lambda a: _print_version(data.rename_class(a.name, a.old, a.new)))

    p = sub.add_parser("remove-class", help="remove a class and its images (a new version)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("class_name", metavar="CLASS")
    p.set_defaults(func=lambda a: _print_version(data.remove_class(a.name, a.class_name)))

    p = sub.add_parser("versions", help="a dataset's versions, oldest first, and what changed")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_versions)


def _print_version(version: str) -> int:
    print(version)
    return 0


def _cmd_create(args: argparse.Namespace) -> int:
    classes = [c.strip() for c in args.classes.split(",") if c.strip()]
    info = data.create_dataset(args.name, classes, val=args.val, test=args.test)
    print(info["name"])
    return 0


def _cmd_add(args: argparse.Namespace) -> int:
    added = data.add_images(args.name, args.class_name, args.files)
    print(added.version)
    for image in added.ids:
        print(image)
    if added.skipped:
        print(data.describe_skipped(added.skipped), file=sys.stderr)
    return 0


def _cmd_remove(args: argparse.Namespace) -> int:
    return _print_version(data.remove_images(args.name, args.ids))


def _cmd_relabel(args: argparse.Namespace) -> int:
    return _print_version(data.relabel_image(args.name, args.image, args.to))


def _cmd_versions(args: argparse.Namespace) -> int:
    rows = data.list_versions(args.name)
    if args.json:
        print_json(rows)
        return 0
    table = [[row["id"][:12] + (" *" if row["head"] else ""), (row["parent"] or "-")[:12],
              time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row["created"])),
              str(row["n_images"]), row["summary"]] for row in rows]
    print(format_table(["VERSION", "PARENT", "CREATED", "IMAGES", "CHANGES"], table,
                       right={3}))
    print("* the head: the dataset as it is now")
    return 0
