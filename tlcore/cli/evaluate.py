"""`evaluate`, `predict`, `export` and `transfer-report` commands.

TensorFlow is imported inside the commands that run a model, so building the
parser (and `transfer-report`) stays fast.
"""

from __future__ import annotations

import argparse
import base64
import sys
from typing import Any

from tlcore.cli import print_json
from tlcore.results.export import FORMATS, QUANTIZED
from tlcore.workspace import Workspace


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from tlcore.results.evaluate import evaluate_run, summary

    evaluation = evaluate_run(args.run, ws=Workspace.from_env(), dataset=args.dataset,
                              k=args.top_k)
    if args.json:
        print_json(evaluation)
        return 0
    shift = " (domain shift)" if evaluation["domain_shift"] else ""
    print(f"run {args.run} on dataset {evaluation['dataset']}{shift}")
    for row in summary(evaluation):
        print(f"  {row['split']:<5} n={row['n']:<5} accuracy {_pct(row['accuracy'])}  "
              f"top-{row['top_k']} {_pct(row['top_k_accuracy'])}  "
              f"macro F1 {_pct(row['macro_f1'])}  macro AUC {_pct(row['macro_auc'])}")
    for split, metrics in evaluation["splits"].items():
        for note in metrics["notes"]:
            print(f"  note ({split}): {note}")
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from tlcore.results.predict import predict_images

    results = predict_images(args.run, args.images, ws=Workspace.from_env(), k=args.top_k,
                             with_gradcam=args.gradcam)
    if args.json:
        out: list[dict[str, Any]] = []
        for item in results:
            item = dict(item)
            if "overlay_png" in item:
                item["overlay_png_base64"] = base64.b64encode(item.pop("overlay_png")).decode()
            out.append(item)
        print_json(out)
        return 0
    for item in results:
        best = ", ".join(f"{t['class']} {_pct(t['probability'])}" for t in item["top"])
        print(f"{item['source']}: {best}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from tlcore.results.export import export_run, read_report, report_summary

    path = export_run(args.run, args.format, args.out, ws=Workspace.from_env())
    print(path)
    report = read_report(path)
    if report is not None:  # quantised: size and accuracy against the float32 models
        print(f"{args.format}: {report_summary(report)}", file=sys.stderr)
    return 0


def _cmd_transfer_report(args: argparse.Namespace) -> int:
    from tlcore.results.transfer import BUDGET, transfer_report, value_text

    report = transfer_report(args.run, args.baseline, ws=Workspace.from_env())
    if args.json:
        print_json(report)
        return 0
    print(f"{report['verdict'].upper()}: {report['summary']}")
    print(f"  compared: {report['compared']}")
    budget = report["budget"]
    print(f"  budget: pretrained {budget['pretrained']}, baseline {budget['baseline']}"
          + ("" if budget["equal"] else " (unequal)"))
    for d in report["differences"]:
        if d["setting"] != BUDGET:
            print(f"  differs: {d['setting']}: pretrained {value_text(d['pretrained'])}, "
                  f"baseline {value_text(d['baseline'])}")
    for m in report["metrics"]:
        delta = "-" if m["delta"] is None else f"{m['delta'] * 100:+.1f} pts"
        print(f"  {m['metric']:<18} pretrained {_pct(m['pretrained']):>6}  "
              f"baseline {_pct(m['baseline']):>6}  delta {delta}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the evaluation commands to the `python -m tlcore` parser."""
    p = subparsers.add_parser(
        "evaluate", help="evaluate a finished run on its test/val splits (or another dataset)",
        description="Metrics, confusion matrix and mistakes of a completed run, stored in "
                    "runs/<id>/eval/<dataset>.json.")
    p.add_argument("run", metavar="RUN", help="run id")
    p.add_argument("--dataset", metavar="NAME",
                   help="another dataset with the same class names (domain-shift check)")
    p.add_argument("--top-k", type=int, default=3, metavar="K", help="k of top-k accuracy")
    p.add_argument("--json", action="store_true", help="print the full evaluation as JSON")
    p.set_defaults(func=_cmd_evaluate)

    p = subparsers.add_parser("predict", help="classify image files with a finished run")
    p.add_argument("run", metavar="RUN", help="run id")
    p.add_argument("images", metavar="IMAGE", nargs="+", help="image files")
    p.add_argument("--top-k", type=int, default=3, metavar="K", help="classes per image")
    p.add_argument("--gradcam", action="store_true",
                   help="add a Grad-CAM overlay (base64 PNG in --json output)")
    p.add_argument("--json", action="store_true", help="print the predictions as JSON")
    p.set_defaults(func=_cmd_predict)

    p = subparsers.add_parser(
        "export", help="export a finished run's model as a zip",
        description="Write the model, class names, config and a README as one zip. The "
                    "quantised TensorFlow Lite formats (" + ", ".join(QUANTIZED) + ") add "
                    "report.json and print their size and test accuracy (TFLite interpreter, "
                    "against the Keras model) on stderr.")
    p.add_argument("run", metavar="RUN", help="run id")
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument("--out", required=True, metavar="PATH", help="zip file (or folder) to write")
    p.set_defaults(func=_cmd_export)

    p = subparsers.add_parser(
        "transfer-report", help="compare a pretrained run with its from-scratch baseline")
    p.add_argument("run", metavar="RUN", help="the run with pretrained weights")
    p.add_argument("baseline", metavar="BASELINE_RUN",
                   help="a from-scratch run (weights none, base.trainable true) on the same "
                        "dataset; the report names every setting in which the two differ, "
                        "the training budget first")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_cmd_transfer_report)
