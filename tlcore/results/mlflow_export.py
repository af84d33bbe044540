"""Runs into MLflow: parameters, per-epoch metrics, test metrics, tags, note and files.

`export_runs(run_ids, tracking_uri)` logs each run as one MLflow run of an
experiment (default "tlcore"): the flat config as parameters, every epoch's
metrics at its epoch as the step, the test metrics, tags (`tlcore.run_id`, the
dataset, status, owner, the run's tags) and its note as the MLflow description,
and its files (config, history, test metrics, evaluations and Grad-CAM images)
as artifacts. The MLflow run is found again by its `tlcore.run_id` tag, so
exporting a run again updates it: parameters never change, only epochs not yet
logged are added, tags and files are written again. MLflow is an optional extra
(`pip install 'tlcore[mlflow]'`); nothing else imports it. No TensorFlow.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tlcore.config import flatten
from tlcore.errors import ConfigError, TLCoreError
from tlcore.store import CANCELLED, COMPLETED, FAILED, LOST, RunStore
from tlcore.workspace import Workspace

DEFAULT_EXPERIMENT = "tlcore"
RUN_TAG = "tlcore.run_id"
NOTE_TAG = "mlflow.note.content"  # what MLflow's UI shows as the run's description
METRIC_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "epoch_time")
# MLflow refuses longer parameter values; a config value this long is cut with a mark.
MAX_PARAM_CHARS = 6000
STATUSES = {COMPLETED: "FINISHED", FAILED: "FAILED", LOST: "FAILED", CANCELLED: "KILLED"}


def _client(tracking_uri: str) -> Any:
    try:
        from mlflow import MlflowClient
    except ImportError:
        raise ConfigError("MLflow is not installed: pip install 'tlcore[mlflow]' (or "
                          "mlflow-skinny) to export runs to MLflow.") from None
    return MlflowClient(tracking_uri=tracking_uri)


def _experiment_id(client: Any, name: str) -> str:
    experiment = client.get_experiment_by_name(name)
    return experiment.experiment_id if experiment else client.create_experiment(name)


def _param_value(value: Any) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= MAX_PARAM_CHARS else text[:MAX_PARAM_CHARS - 3] + "..."


def _tags(run: dict[str, Any]) -> dict[str, str]:
    tags = {RUN_TAG: run["id"], "tlcore.dataset": run["dataset"], "tlcore.status": run["status"],
            "tlcore.owner": run["owner"] or "operator", "tlcore.tags": ", ".join(run["tags"])}
    if run["device"]:
        tags["tlcore.device"] = run["device"]
    if run["note"]:
        tags[NOTE_TAG] = run["note"]
    return tags


def _artifacts(ws: Workspace, run_id: str) -> list[tuple[Path, str | None]]:
    """The run's files worth keeping beside its metrics: `(path, folder in MLflow)`."""
    files = ws.run(run_id)
    out: list[tuple[Path, str | None]] = [
        (path, None) for path in (files.config, files.history, files.test_metrics,
                                  files.class_names) if path.is_file()]
    if files.eval_dir.is_dir():
        out.append((files.eval_dir, "eval"))
    return out


def export_run(client: Any, experiment_id: str, run_id: str, ws: Workspace,
               store: RunStore) -> dict[str, Any]:
    """Log one run (see the module docstring); returns what was done.

    Raises:
        NotFoundError: if the run does not exist.
    """
    from mlflow.entities import Metric, Param, RunTag

    run = store.get_run(run_id)
    found = client.search_runs([experiment_id], filter_string=f"tags.`{RUN_TAG}` = '{run_id}'",
                               max_results=1)
    if found:
        mlflow_id, created = found[0].info.run_id, False
    else:
        started = int((run["started"] or run["created"]) * 1000)
        mlflow_id = client.create_run(experiment_id, start_time=started, run_name=run["name"],
                                      tags={RUN_TAG: run_id}).info.run_id
        created = True
    logged: dict[str, set[int]] = {
        key: {m.step for m in client.get_metric_history(mlflow_id, key)} for key in METRIC_KEYS}
    now = int(time.time() * 1000)
    metrics = [Metric(key, float(row[key]), now, row["epoch"])
               for row in store.metrics(run_id) for key in METRIC_KEYS
               if row.get(key) is not None and row["epoch"] not in logged[key]]
    metrics += [Metric(f"test_{key}", float(value), now, 0)
                for key, value in (run["test_metrics"] or {}).items()
                if isinstance(value, (int, float))]
    # Parameters are written once: MLflow refuses a parameter logged again with another value,
    # and a run's config never changes.
    params = ([Param(key, _param_value(value))
               for key, value in sorted(flatten(run["config"]).items())] if created else [])
    tags = [RunTag(key, value) for key, value in _tags(run).items()]
    # MLflow takes at most 1000 metrics, 100 parameters and 100 tags per call.
    for start in range(0, len(metrics), 1000):
        client.log_batch(mlflow_id, metrics=metrics[start:start + 1000])
    for start in range(0, len(params), 100):
        client.log_batch(mlflow_id, params=params[start:start + 100])
    client.log_batch(mlflow_id, tags=tags)
    for path, folder in _artifacts(ws, run_id):
        if path.is_dir():
            client.log_artifacts(mlflow_id, str(path), folder)
        else:
            client.log_artifact(mlflow_id, str(path), folder)
    status = STATUSES.get(run["status"])
    if status:
        client.set_terminated(mlflow_id, status,
                              end_time=int((run["ended"] or time.time()) * 1000))
    return {"run_id": run_id, "mlflow_run_id": mlflow_id, "experiment_id": experiment_id,
            "created": created, "metrics_logged": len(metrics)}


def export_runs(run_ids: list[str], tracking_uri: str, experiment: str = DEFAULT_EXPERIMENT,
                ws: Workspace | None = None) -> list[dict[str, Any]]:
    """Log runs to the MLflow tracking store at `tracking_uri`, creating or updating each.

    Args:
        run_ids: The runs, in order.
        tracking_uri: An MLflow tracking URI: `sqlite:///mlflow.db`, `http://host:5000`, ...
        experiment: The experiment's name; created when missing.
        ws: The workspace; default `Workspace.from_env()`.

    Returns:
        One `{"run_id", "mlflow_run_id", "experiment_id", "created", "metrics_logged"}` per run.

    Raises:
        ConfigError: if MLflow is not installed, or the tracking store refuses the export.
        NotFoundError: if a run does not exist (checked before anything is logged).
    """
    ws = ws or Workspace.from_env()
    store = RunStore(ws)
    for run_id in run_ids:
        store.get_run(run_id)
    client = _client(tracking_uri)
    from mlflow.exceptions import MlflowException

    try:
        experiment_id = _experiment_id(client, experiment)
        return [export_run(client, experiment_id, run_id, ws, store) for run_id in run_ids]
    except MlflowException as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise TLCoreError(f"MLflow at {tracking_uri} refused the export: {first}") from None
