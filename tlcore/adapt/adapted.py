"""The adapted run: the chosen adaptation saved as a light run of its own.

The run's config is the source run's with a head of global average pooling and
one softmax Dense layer (`head.pooling: avg`, `head.dense: []`). That layer
holds the chosen method folded into one affine map (`methods.fold`: the
feature map of CORAL, optimal transport, subspace alignment or TCA composed
with the logistic regression's coefficients; reweighting changed only how the
coefficients were trained). Its `trained.npz` holds that layer and any base
blocks the source run fine-tuned, and `base.json` names the source run's frozen
base, so `tlcore.engine.runmodel` assembles it like any run and evaluation,
prediction, export and `run:<id>` work unchanged.

`adapt.json` beside them keeps the whole report (shift, every method's scores
and accuracies), and the store row's `extra.adapted` a summary: source run,
target dataset, method, scorer, score. No TensorFlow here.
"""

from __future__ import annotations

import json
import shutil
import time
from typing import Any

import numpy as np

from tlcore.config import RunConfig
from tlcore.engine.openrun import OpenedRun
from tlcore.errors import NotFoundError, TLCoreError
from tlcore.store import COMPLETED, RunStore, new_run_id
from tlcore.vgg16 import backbones, bases
from tlcore.workspace import Workspace, atomic_write_text

REPORT_FILE = "adapt.json"


def adapted_config(source: RunConfig) -> RunConfig:
    """The source run's config with the adapted head: average pooling, one softmax layer."""
    data = source.to_dict()
    data["head"] = {**data["head"], "pooling": "avg", "dense": [], "dropout": 0.0,
                    "batchnorm": False, "l2": 0.0}
    return RunConfig.from_dict(data)


def save_run(source: OpenedRun, kernel: np.ndarray, bias: np.ndarray,
             report: dict[str, Any], *, name: str | None = None, owner: str | None = None,
             test_metrics: dict[str, float] | None = None) -> str:
    """Write the adapted run's files, then its completed row; returns its id.

    Args:
        source: The source run.
        kernel: `(512, classes)` weights of the output layer.
        bias: `(classes,)` its bias.
        report: The adaptation report (written as `adapt.json`; `run_id` is set).
        name: The run's name; default "<source name> → <target>".
        owner: Who adapted it; None: the local operator.
        test_metrics: The adapted model's metrics on the source test split.

    Raises:
        DiskFullError, StoreError: nothing is left behind.
    """
    ws, store = source.ws, RunStore(source.ws)
    config = adapted_config(source.config)
    run_id = new_run_id()
    files = ws.run(run_id)
    report = {**report, "run_id": run_id}
    files.dir.mkdir(parents=True)
    started = time.time()
    created = False
    try:
        atomic_write_text(files.config, config.to_json())
        weights = {k: v for k, v in bases.load_layer_weights(source.files.trained).items()
                   if backbones.block_of(k) is not None}  # blocks the source fine-tuned
        weights[backbones.OUTPUT_LAYER] = [np.asarray(kernel, np.float32),
                                           np.asarray(bias, np.float32)]
        bases.save_layer_weights(files.trained, weights)
        shutil.copyfile(source.files.base_ref, files.base_ref)
        atomic_write_text(files.class_names, json.dumps(source.classes, ensure_ascii=False))
        atomic_write_text(files.dir / REPORT_FILE, json.dumps(report, ensure_ascii=False,
                                                              allow_nan=False, indent=1))
        if test_metrics is not None:
            atomic_write_text(files.test_metrics, json.dumps(test_metrics, indent=2))
        label = name or f"{source.record['name']} → {report['target']}"
        store.create_runs([(config, label[:120])], status=COMPLETED, owner=owner, ids=[run_id])
        created = True
        store.update_run(run_id, started=started, ended=time.time(), test_metrics=test_metrics,
                         device="cpu (adaptation)")
        store.merge_extra(run_id, adapted=summary(report))
    except BaseException:
        if created:
            store.delete_run(run_id)
        shutil.rmtree(files.dir, ignore_errors=True)
        raise
    return run_id


def summary(report: dict[str, Any]) -> dict[str, Any]:
    """What the store row keeps of a report (`extra.adapted`)."""
    chosen = next(m for m in report["methods"] if m["name"] == report["chosen"])
    return {"source_run": report["source_run"], "target": report["target"],
            "method": report["chosen"], "scorer": report["scorer"], "score": chosen["score"],
            "target_accuracy": chosen.get("target_accuracy"),
            "shift": report["shift"]["level"]}


def load_report(run_id: str, ws: Workspace) -> dict[str, Any]:
    """The adaptation report stored with an adapted run.

    Raises:
        NotFoundError: if the run is not an adapted run (it has no report).
        TLCoreError: if the report is unreadable.
    """
    path = ws.run(run_id).dir / REPORT_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NotFoundError(f"Run {run_id} is not an adapted run: it has no {REPORT_FILE}; "
                            f"`python -m tlcore adapt` makes one.") from None
    except (OSError, ValueError) as exc:
        raise TLCoreError(f"Cannot read {path}: {exc}") from None


def adapted_runs(ws: Workspace) -> list[dict[str, Any]]:
    """Completed adapted runs, newest first: `{"run_id", "name", **extra.adapted}`."""
    rows = RunStore(ws).list_runs(statuses=(COMPLETED,))
    return [{"run_id": r["id"], "name": r["name"], **r["extra"]["adapted"]}
            for r in reversed(rows) if isinstance((r.get("extra") or {}).get("adapted"), dict)]
