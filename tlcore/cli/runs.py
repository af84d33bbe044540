"""`python -m tlcore train|runs|device`: launch and manage training runs.

    train --config FILE.json [--set section.key=value ...] [--name NAME] [--detach]
    runs list [--json]
    runs show ID [--json]
    runs cancel ID | runs resume ID | runs delete ID
    device [--json]

`train` prints the run id on stdout. In the foreground it follows the run (a
progress bar per epoch on stderr) and exits 1 unless the run completes; with
`--detach` it returns at once and the run goes on in its worker. Reads call
`liveness.refresh()` first, so dead workers are noticed and the queue moves.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from tlcore import auth
from tlcore.cli import print_json
from tlcore.config import RunConfig, advice
from tlcore.data import load_manifest
from tlcore.entities import peak_epoch
from tlcore.errors import ConfigError, TLCoreError
from tlcore.runs import device, launch, liveness, logs
from tlcore.store import COMPLETED, FINAL_STATUSES, QUEUED, RUNNING, RunStore
from tlcore.vgg16 import backbones
from tlcore.workspace import Workspace

POLL_S = 0.2
REFRESH_S = 2.0
_BAR_WIDTH = 24


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `train`, `runs` and `device` commands."""
    p = subparsers.add_parser(
        "train", help="train a run from a JSON config",
        description="Queue a training run and follow it (progress on stderr). Prints the run "
                    "id. Exits 1 unless the run completes.")
    p.add_argument("--config", required=True, metavar="FILE.json", help="run config (JSON)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   dest="overrides", help="override a config value (repeatable), e.g. "
                                          "--set train.epochs=3 --set image_size=64")
    p.add_argument("--name", help="display name of the run")
    p.add_argument("--detach", action="store_true",
                   help="return at once; the run continues in its worker process")
    p.set_defaults(func=_cmd_train)

    group = subparsers.add_parser("runs", help="list, show, cancel, resume and delete runs",
                                  description="List, show, cancel, resume and delete runs.")
    sub = group.add_subparsers(dest="runs_command", metavar="ACTION", required=True)
    p = sub.add_parser("list", help="all runs, oldest first")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_list)
    p = sub.add_parser("show", help="status, config, per-epoch metrics, results, error")
    p.add_argument("run_id", metavar="ID")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_show)
    for action, helptext, func in (
        ("cancel", "stop a running run at its next batch, or drop a queued one", _cmd_cancel),
        ("resume", "continue a failed, cancelled or lost run from its last epoch", _cmd_resume),
        ("delete", "delete a run (stops it first) with its files, or a leftover run folder",
         _cmd_delete),
    ):
        p = sub.add_parser(action, help=helptext)
        p.add_argument("run_id", metavar="ID")
        p.set_defaults(func=func)
    p = sub.add_parser(
        "export-mlflow", help="log runs to MLflow (params, per-epoch metrics, tags, files)",
        description="Log each run to an MLflow tracking store as one MLflow run: the flat "
                    "config as parameters, per-epoch metrics, test metrics, tags, note and "
                    "its files. Exporting a run again updates its MLflow run. Needs the "
                    "mlflow extra: pip install 'tlcore[mlflow]'.")
    p.add_argument("run_ids", metavar="ID", nargs="+")
    p.add_argument("--tracking-uri", required=True, metavar="URI",
                   help="e.g. sqlite:///mlflow.db or http://mlflow-host:5000")
    p.add_argument("--experiment", default="tlcore", metavar="NAME",
                   help="experiment name, created when missing (default: tlcore)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_export_mlflow)

    p = subparsers.add_parser("device", help="what training runs on (CPU/GPU, mixed precision)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_device)


# ---- train ----------------------------------------------------------------------
def load_config(path: str, overrides: list[str]) -> RunConfig:
    """Read a JSON run config and apply `section.key=value` overrides.

    Raises:
        ConfigError: if the file is missing, unreadable or invalid.
    """
    file = Path(path).expanduser()
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"Cannot read the config file {file}: {exc.strerror or exc}. "
                          "Give the path of a JSON run config.") from None
    config = RunConfig.from_json(text)
    return config.with_overrides(overrides) if overrides else config


class EpochBar:
    """Follows a run on a stream: a redrawn batch bar on a terminal, one line per epoch."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.printed_epochs = 0
        self.drawn = False
        self.notes: set[str] = set()

    def note(self, text: str) -> None:
        """Print `text` once (e.g. a status change)."""
        if text not in self.notes:
            self.notes.add(text)
            self._line(text)

    def _line(self, text: str) -> None:
        if self.drawn:
            self.stream.write("\r\033[K")
            self.drawn = False
        self.stream.write(text + "\n")
        self.stream.flush()

    def update(self, metrics: list[dict[str, Any]], progress: dict[str, Any] | None) -> None:
        """Print finished epochs, then redraw the bar of the current one (terminals only)."""
        for row in metrics[self.printed_epochs:]:
            self._line(format_epoch(row, progress))
        self.printed_epochs = max(self.printed_epochs, len(metrics))
        if not (self.tty and progress and progress.get("batches")):
            return
        if progress["epoch"] <= self.printed_epochs:
            return  # the bar of an epoch already printed
        done = min(progress["batch"], progress["batches"])
        filled = round(_BAR_WIDTH * done / progress["batches"])
        eta = progress.get("eta_s")
        self.stream.write(
            f"\r\033[Kepoch {progress['epoch']}/{progress['epochs']} phase {progress['phase']} "
            f"[{'#' * filled}{'-' * (_BAR_WIDTH - filled)}] {done}/{progress['batches']}"
            + (f"  ETA {_duration(eta)}" if eta is not None else ""))
        self.stream.flush()
        self.drawn = True


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _num(value: Any, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_epoch(row: dict[str, Any], progress: dict[str, Any] | None = None) -> str:
    """One line for a finished epoch."""
    total = f"/{progress['epochs']}" if progress and progress.get("epochs") else ""
    return (f"epoch {row['epoch']}{total} phase {row['phase']}  loss {_num(row['loss'])}  "
            f"acc {_num(row['accuracy'])}  val_loss {_num(row['val_loss'])}  "
            f"val_acc {_num(row['val_accuracy'])}  lr {_num(row['learning_rate'], 6)}  "
            f"{_num(row['epoch_time'], 1)}s")


def follow(run_id: str, ws: Workspace, stream: TextIO | None = None) -> str:
    """Show a run's progress until it ends; return its final status."""
    store = RunStore(ws)
    bar = EpochBar(stream)
    last_refresh = 0.0
    while True:
        if time.monotonic() - last_refresh >= REFRESH_S:
            liveness.refresh(ws)
            last_refresh = time.monotonic()
        run = store.get_run(run_id)
        if run["status"] == QUEUED:
            bar.note(f"run {run_id} is queued (another run is training)")
        bar.update(store.metrics(run_id), store.progress(run_id))
        if run["status"] in FINAL_STATUSES:
            return run["status"]
        time.sleep(POLL_S)


def launch_warnings(config: RunConfig, ws: Workspace) -> list[str]:
    """`advice.launch_warnings` with the dataset's image sizes when its manifest reads."""
    try:
        sizes = load_manifest(config.dataset, ws)["health"]["sizes"]
    except (TLCoreError, OSError, ValueError, KeyError):
        sizes = None  # a missing or unreadable dataset is for `launch.launch` to refuse
    return advice.launch_warnings(config, sizes)


def _cmd_train(args: argparse.Namespace) -> int:
    config = load_config(args.config, args.overrides)
    ws = Workspace.from_env()
    warnings = launch_warnings(config, ws)
    run_id = launch.launch(config, name=args.name, ws=ws)  # a refusal is the only output
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(run_id, flush=True)
    if config.augment.enabled:
        print("note: augmentation is on, so every epoch runs the whole network; with "
              "augmentation off the frozen-base features are cached and training is much "
              "faster.", file=sys.stderr)
    if args.detach:
        return 0
    try:
        status = follow(run_id, ws)
    except KeyboardInterrupt:
        print(f"\ncancelling run {run_id} ...", file=sys.stderr)
        launch.cancel(run_id, ws, wait=liveness.CANCEL_GRACE_S + 5)
        return 130
    store = RunStore(ws)
    run = store.get_run(run_id)
    if status == COMPLETED:
        test = run["test_metrics"] or {}
        print(f"run {run_id} completed: best val accuracy {_num(run['best_val_accuracy'])} "
              f"(epoch {peak_epoch(store.metrics(run_id))}), model kept from epoch "
              f"{run['best_epoch']} (lowest val loss), test accuracy "
              f"{_num(test.get('accuracy'))}", file=sys.stderr)
        return 0
    error = (run["error"] or "").split("\n\nTraceback", 1)[0]
    print(f"run {run_id} {status}" + (f": {error}" if error else "")
          + f"\nlog: {ws.run(run_id).log}", file=sys.stderr)
    return 1


# ---- runs ---------------------------------------------------------------------------
def _cmd_list(args: argparse.Namespace) -> int:
    ws = Workspace.from_env()
    liveness.refresh(ws)
    store = RunStore(ws)
    runs = store.list_runs()
    epochs: dict[str, int] = {}
    for row in store.metrics_for([r["id"] for r in runs]):
        epochs[row["run_id"]] = max(epochs.get(row["run_id"], 0), row["epoch"])
    if args.json:
        print_json([{**r, "epochs_done": epochs.get(r["id"], 0)} for r in runs])
        return 0
    if not runs:
        print("no runs yet; start one with `python -m tlcore train --config FILE.json`")
        return 0
    header = ("ID", "NAME", "STATUS", "DATASET", "EPOCHS", "BEST VAL ACC", "TEST ACC", "CREATED")
    table = [header] + [
        (r["id"], r["name"], r["status"], r["dataset"], str(epochs.get(r["id"], 0)),
         _num(r["best_val_accuracy"]), _num((r["test_metrics"] or {}).get("accuracy")),
         time.strftime("%Y-%m-%d %H:%M", time.localtime(r["created"])))
        for r in runs
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    ws = Workspace.from_env()
    run = logs.get_run_details(args.run_id, ws)
    if args.json:
        print_json(run)
        return 0
    when = {k: time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run[k])) if run[k] else "-"
            for k in ("created", "started", "ended")}
    test = run["test_metrics"] or {}
    print(f"run {run['id']} ({run['name']}): {run['status']}")
    engine = (run["extra"] or {}).get("backend")
    print(f"dataset {run['dataset']}, device {run['device'] or '-'}"
          + (f" ({engine})" if engine else ""))
    print(f"created {when['created']}, started {when['started']}, ended {when['ended']}")
    if run["owner"] is not None or run["tags"]:
        print(f"owner {auth.owner_label(run['owner'])}, tags {', '.join(run['tags']) or '-'}")
    if run["note"]:
        print("note " + " ".join(run["note"].split()))
    print(f"best val accuracy {_num(run['best_val_accuracy'])} (epoch "
          f"{peak_epoch(run['metrics']) or '-'}), lowest val loss {_num(run['best_val_loss'])} "
          f"(epoch {run['best_epoch'] or '-'}, the model kept), "
          f"test accuracy {_num(test.get('accuracy'))}, test loss {_num(test.get('loss'))}")
    print("config " + RunConfig.from_dict(run["config"]).to_json(None))
    for row in run["metrics"]:
        print("  " + format_epoch(row))
    progress = run["progress"]
    if run["status"] == RUNNING and progress:
        print(f"now: epoch {progress['epoch']}/{progress['epochs']}, batch "
              f"{progress['batch']}/{progress['batches']}, ETA "
              f"{_duration(progress['eta_s'] or 0)}")
    if run["error"]:
        print("error: " + run["error"])
    return 0


def _cmd_cancel(args: argparse.Namespace) -> int:
    status = launch.cancel(args.run_id, wait=liveness.CANCEL_GRACE_S + 5)
    print(f"run {args.run_id}: {status}")
    return 0


def _cmd_resume(args: argparse.Namespace) -> int:
    launch.resume(args.run_id)
    print(f"run {args.run_id}: queued to resume from its last finished epoch")
    return 0


def _cmd_delete(args: argparse.Namespace) -> int:
    if launch.delete(args.run_id):
        print(f"run {args.run_id}: deleted")
    else:
        print(f"run {args.run_id}: no such run in the database; removed its leftover folder")
    return 0


def _cmd_device(args: argparse.Namespace) -> int:
    from tlcore.backend import configure_devices  # imports Keras, only for this command

    info = configure_devices()
    if info["gpus"]:
        info["gpu_free_bytes"] = device.gpu_free_bytes()
    if args.json:
        print_json(info)
        return 0
    print(f"device: {info['device']}")
    print(f"backend: {info['backend']} (train.backend=auto; installed: "
          f"{', '.join(info['backends'])}; set KERAS_BACKEND or train.backend to change)")
    print(f"mixed precision (train.mixed_precision=auto): "
          f"{'on' if info['mixed_precision'] else 'off'}")
    if info.get("gpu_free_bytes"):
        free = info["gpu_free_bytes"][0]
        hints = ", ".join(
            f"{size} px: {backbones.batch_size_hint(size, free, info['mixed_precision'])}"
            for size in (64, 150, 224))
        print(f"free GPU memory: {free / 2**30:.1f} GiB; batch size hint when training "
              f"through the base ({hints})")
    return 0


def _cmd_export_mlflow(args: argparse.Namespace) -> int:
    from tlcore.results.mlflow_export import export_runs

    done = export_runs(args.run_ids, args.tracking_uri, args.experiment, Workspace.from_env())
    if args.json:
        print_json(done)
        return 0
    for item in done:
        verb = "logged as" if item["created"] else "updated"
        print(f"run {item['run_id']}: {verb} MLflow run {item['mlflow_run_id']} "
              f"(experiment {item['experiment_id']}, {item['metrics_logged']} metric values)")
    return 0
