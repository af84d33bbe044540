"""Launch, cancel, resume and delete runs; leftover run folders. No TensorFlow.

Launching checks everything a run needs (dataset, backend, model size, weights,
settings, disk space, the owner's limit) before anything is written, queues the
runs in one transaction and writes each `config.json` once; the configured
executor then starts them (`queue.start_queued`). Every run that becomes active
counts against its owner's `TLCORE_MAX_RUNS_PER_USER` in the transaction that
makes it active.
"""

from __future__ import annotations

import shutil
import time

from tlcore import auth, backend
from tlcore.cache import lru as cache
from tlcore.config import RunConfig
from tlcore.errors import ConfigError, DatasetError, NotFoundError, RunStateError
from tlcore.runs import executors, liveness, queue, slots
from tlcore.store import CANCELLED, FAILED, LOST, QUEUED, RUNNING, RunStore, new_run_id
from tlcore.vgg16 import backbones, sources
from tlcore.workspace import (
    RUN_ID_RE,
    Workspace,
    atomic_write_text,
    check_free_space,
    check_run_name,
)

RESUMABLE = (FAILED, CANCELLED, LOST)

# A run's folder younger than this is a launch in the making, never a leftover.
ORPHAN_GRACE_S = 60.0


def _check_base_weights(config: RunConfig, store: RunStore, ws: Workspace) -> None:
    """Refuse unusable weights at launch; the worker checks again before training."""
    sources.check_source(config, ws, store)


def launch(config: RunConfig, name: str | None = None, ws: Workspace | None = None,
           owner: str | None = None) -> str:
    """Queue a run and start workers for free slots.

    Args:
        config: The run config (written once to `runs/<id>/config.json`).
        name: A display name; default `run-<n>`.
        ws: The workspace.
        owner: The signed-in user who launches it; None: the local operator.

    Returns:
        The new run's id.

    Raises:
        NotFoundError: if the dataset does not exist.
        ConfigError: if the model would exceed `backbones.max_params()`.
        WeightsError, RunStateError: if `base.weights` names an unusable file or run.
        ConfigError: if `name` is not a valid run name (`workspace.check_run_name`), or
            `train.backend` names a framework that is not installed, or resolves to
            one that `train.distribute` cannot use.
        DiskFullError: if the workspace's disk has less than `min_free_bytes()` free.
        QuotaError: if `owner` has `TLCORE_MAX_RUNS_PER_USER` runs queued or running.
    """
    return launch_many([(config, name)], ws=ws, owner=owner)[0]


def launch_many(runs: list[tuple[RunConfig, str | None]], ws: Workspace | None = None,
                owner: str | None = None) -> list[str]:
    """Queue several runs at once, all or none, and start workers for free slots.

    Every run is checked as `launch` checks one before any is queued, and the
    owner's limit is counted for all of them in the transaction that inserts them.

    Args:
        runs: `(config, name)` pairs, queued in this order; a None name is `run-<n>`.
        ws: The workspace.
        owner: The signed-in user who launches them; None: the local operator.

    Returns:
        The new runs' ids, in the order given.

    Raises:
        As `launch`; nothing is queued when any run is refused.
    """
    from tlcore.data import load_manifest

    ws = ws or Workspace.from_env()
    store = RunStore(ws)
    checked = []
    for config, name in runs:
        if not isinstance(config, RunConfig):
            raise ConfigError(f"launch needs a RunConfig. Received: {type(config).__name__}")
        manifest = load_manifest(config.dataset, ws)
        if manifest.get("labeled") is False:
            raise DatasetError(
                f"Dataset {config.dataset!r} has no labels (imported as unlabeled images), so no "
                f"run can train on it; train on a labeled dataset, then adapt that run to it: "
                f"python -m tlcore adapt RUN_ID {config.dataset}")
        backend.require(backend.resolve(config.train.backend))
        backend.check_distribute(config.train.distribute, config.train.backend)
        backbones.check_model_size(config, max(2, len(manifest["classes"])))
        _check_base_weights(config, store, ws)
        checked.append((config, None if name is None else check_run_name(name)))
    slots.worker_limit()  # a bad setting fails here, not in a background start later
    liveness.heartbeat_timeout()
    executors.current().check()  # Ray: before the run exists, so nothing is left half-made
    check_free_space(ws.root)  # queued runs would wait for space; say so now
    auth.check_run_quota(store, owner, adding=len(checked))
    limit = auth.max_runs_per_user() if owner is not None else None
    # Each run's config.json exists before its row: a worker (or a Ray node checking
    # that it sees the workspace) may claim a run the moment it is queued.
    ids = [new_run_id() for _ in checked]
    for run_id, (config, _) in zip(ids, checked, strict=True):
        files = ws.run(run_id)
        files.dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(files.config, config.to_json())
    created = None
    try:
        created = store.create_runs(checked, owner=owner, max_active=limit, ids=ids)
    finally:
        if created is None:  # nothing was queued: no folder stays without its run
            for run_id in ids:
                shutil.rmtree(ws.run(run_id).dir, ignore_errors=True)
    if created is None:  # another launch of the same person took the last places just now
        auth.check_run_quota(store, owner, adding=len(checked))
        raise RunStateError("Your last free place in the queue was taken by another launch a "
                            "moment ago; wait for a run to finish or cancel one.")
    queue.start_queued(ws)
    return ids


def cancel(run_id: str, ws: Workspace | None = None, wait: float = 0.0) -> str:
    """Cancel a run: a queued one never starts; a running one stops at its next batch.

    A running worker that ignores the request is killed by `refresh` after
    `CANCEL_GRACE_S`. A queued Ray run's job is stopped, so that it never starts.

    Args:
        run_id: The run.
        ws: The workspace.
        wait: Seconds to wait (refreshing) for a running run to end.

    Returns:
        The run's status afterwards.

    Raises:
        NotFoundError: if the run does not exist.
        RunStateError: if the run already ended.
    """
    ws = ws or Workspace.from_env()
    store = RunStore(ws)
    if store.transition(run_id, (QUEUED,), status=CANCELLED, ended=time.time()):
        run = store.get_run(run_id)
        executors.of_run(run).stop(run, ws)  # Ray: its job, so that it never starts
        return CANCELLED
    run = store.get_run(run_id)
    if run["status"] != RUNNING:
        raise RunStateError(
            f"Only queued or running runs can be cancelled. Received: run {run_id} is "
            f"{run['status']}.")
    if not run["cancel_requested"]:  # asking again must not postpone the hard kill
        store.merge_extra(run_id, cancel_requested_at=time.time())
        store.request_cancel(run_id)
    deadline = time.monotonic() + wait
    while True:
        liveness.refresh(ws)
        status = store.get_run(run_id)["status"]
        if status != RUNNING or time.monotonic() >= deadline:
            return status
        time.sleep(0.25)


def resume(run_id: str, ws: Workspace | None = None) -> None:
    """Queue a failed, cancelled or lost run again; it continues from its last epoch checkpoint.

    The run keeps its owner, and counts again towards the owner's
    `TLCORE_MAX_RUNS_PER_USER`.

    Raises:
        NotFoundError: if the run does not exist.
        RunStateError: if the run is queued, running or completed.
        QuotaError: if its owner has the most runs queued or running already.
    """
    ws = ws or Workspace.from_env()
    store = RunStore(ws)
    run = store.get_run(run_id)
    status = run["status"]
    if status not in RESUMABLE:
        raise RunStateError(
            f"Only {', '.join(RESUMABLE)} runs can be resumed. Received: run {run_id} is "
            f"{status}.")
    auth.check_run_quota(store, run["owner"])
    limit = auth.max_runs_per_user() if run["owner"] is not None else None
    store.merge_extra(run_id, resume=True, cancel_requested_at=None)
    # The limit is counted again in the transaction that queues the run, so that
    # resumes and launches at once never take the owner past it.
    if not store.requeue(run_id, RESUMABLE, max_active=limit, cancel_requested=0, error=None,
                         ended=None, pid=None):
        auth.check_run_quota(store, run["owner"])
        raise RunStateError(f"Run {run_id} changed status while resuming; try again.")
    queue.start_queued(ws)


def delete(run_id: str, ws: Workspace | None = None) -> bool:
    """Delete a run: stop it if active (at once: its results are not wanted), drop rows and folder.

    A folder under `runs/` whose row is gone (a database restored from an older
    copy) is removed too.

    Returns:
        True when the run had a row; False when only its orphaned folder was removed.

    Raises:
        NotFoundError: if there is neither a run nor a folder with that id.
    """
    ws = ws or Workspace.from_env()
    store = RunStore(ws)
    try:
        run = store.get_run(run_id)
    except NotFoundError:
        folder = ws.run(run_id).dir
        if not folder.is_dir() or folder.is_symlink():
            raise
        shutil.rmtree(folder)
        return False
    if store.transition(run_id, (QUEUED,), status=CANCELLED, ended=time.time()):
        run = store.get_run(run_id)
        executors.of_run(run).stop(run, ws)
    if run["status"] == RUNNING:
        store.request_cancel(run_id)
        executors.of_run(run).stop(run, ws, wait=10)
        store.transition(run_id, (RUNNING,), status=CANCELLED, ended=time.time())
    store.delete_run(run_id)
    shutil.rmtree(ws.run(run_id).dir, ignore_errors=True)
    cache.forget_run(ws, run_id)
    queue.start_queued(ws)
    return True


def orphaned_runs(ws: Workspace | None = None) -> list[str]:
    """Ids of folders under `runs/` that no run row names (sorted).

    Only folders named like a run id count; anything else there is left alone.
    A launch writes a run's folder (its `config.json`) a moment before its row, so
    a folder changed in the last `ORPHAN_GRACE_S` seconds is left alone too; a
    delete removes the row first.
    """
    ws = ws or Workspace.from_env()
    settled = time.time() - ORPHAN_GRACE_S
    folders = {p.name for p in ws.runs_dir.iterdir()
               if p.is_dir() and not p.is_symlink() and RUN_ID_RE.fullmatch(p.name)
               and p.stat().st_mtime < settled}
    if not folders:
        return []
    known = {r["id"] for r in RunStore(ws).list_runs()}
    return sorted(folders - known)


def remove_orphaned_runs(ws: Workspace | None = None) -> dict[str, int]:
    """Remove the folders `orphaned_runs` finds.

    Returns:
        `{"folders": how many were removed, "bytes": their size}`.
    """
    ws = ws or Workspace.from_env()
    removed = {"folders": 0, "bytes": 0}
    for run_id in orphaned_runs(ws):
        folder = ws.run(run_id).dir
        size = sum(p.stat().st_size for p in folder.rglob("*")
                   if p.is_file() and not p.is_symlink())
        shutil.rmtree(folder)
        removed["folders"] += 1
        removed["bytes"] += size
    return removed
