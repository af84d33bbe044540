"""Sweeps: Optuna studies over run-config keys, each trial an ordinary run.

A sweep is an Optuna study kept in the run store's database (the workspace's
SQLite file, or the one TLCORE_DB_URL names): its search space, base config,
budget and state are the study's user attributes, its trials are Optuna's. Each
trial trains as a run in the store, tagged `extra.sweep` and `extra.trial`, so
Runs & compare, Evaluate and export work on it unchanged.

Sweep workers (`python -m tlcore.workers.sweep SWEEP_ID`, detached like run
workers) loop: wait for a free worker slot, ask Optuna for a trial, train it
in their own process (one Keras import and one load of the cached features per
worker), report each epoch's val accuracy to the median pruner, tell the
result. A killed worker's trial is failed when the sweep resumes.

The space is a JSON object keyed by dotted config keys (`parse_space`):
`{"head.pooling": {"choices": ["flatten", "avg"]}, "train.learning_rate":
{"low": 1e-4, "high": 1e-2, "log": true}}`; `choices`, or `low`/`high` with
optional `log` or `step`. It is checked against the config declaration before
anything starts. This module imports no TensorFlow.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import socket
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Any

from tlcore import auth, backend
from tlcore import config as config_module
from tlcore.config import RunConfig
from tlcore.errors import ConfigError, NotFoundError
from tlcore.runs import executors, launch, liveness, slots
from tlcore.settings import env_number
from tlcore.store import ACTIVE_STATUSES, RunStore, database_url, new_run_id
from tlcore.workspace import Workspace

SAMPLERS = ("tpe", "random", "grid")
RANGE_KEYS = {"low", "high", "log", "step"}
# Sweep states kept in the study (`status`); "running" while trials remain.
RUNNING, CANCELLED, DONE = "running", "cancelled", "done"
# The median pruner: no pruning before this many finished trials, nor in the first epochs.
PRUNE_STARTUP_TRIALS = 4
PRUNE_WARMUP_EPOCHS = 2
SWEEP_WORKER = executors.local.SWEEP_WORKER
# A trial's user attribute: `worker_tag()` of the sweep worker that asked it.
WORKER_ATTR = "worker"
OBJECTIVE = "best val accuracy"
# Optuna's GridSampler holds every point of the grid in memory, in every process that
# samples from it: a grid is bounded before it is ever built.
ENV_MAX_GRID = "TLCORE_MAX_GRID_POINTS"
DEFAULT_MAX_GRID = 10_000


# ---- the search space -------------------------------------------------------
@dataclass(frozen=True)
class Dimension:
    """One swept config key: a list of choices, or a numeric range."""

    key: str
    choices: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    integer: bool = False

    def distribution(self) -> Any:
        """Its Optuna distribution (choices that are lists travel as JSON text)."""
        from optuna import distributions

        if self.choices is not None:
            return distributions.CategoricalDistribution([_encode(c) for c in self.choices])
        if self.integer:
            return distributions.IntDistribution(int(self.low), int(self.high), log=self.log,
                                                 step=int(self.step or 1))
        return distributions.FloatDistribution(self.low, self.high, log=self.log,
                                               step=self.step)

    def grid_size(self) -> int:
        """How many values a grid search takes here, counted without listing them."""
        if self.choices is not None:
            return len(self.choices)
        if self.step is None:
            raise ConfigError(f"A grid sweep needs choices or a step for {self.key}; "
                              f"add \"step\" to its range or list its choices.")
        return int(math.floor((self.high - self.low) / self.step + 1e-9)) + 1

    def grid(self) -> list[Any]:
        """Every value of a grid search (choices, or a range with a step)."""
        count = self.grid_size()
        if self.choices is not None:
            return [_encode(c) for c in self.choices]
        values = [self.low + i * self.step for i in range(count)]
        return [int(v) for v in values] if self.integer else [round(v, 12) for v in values]

    def value(self, raw: Any) -> Any:
        """The config value of an Optuna parameter value."""
        if self.choices is None:
            return raw
        return next((c for c in self.choices if _encode(c) == raw), raw)


def _encode(choice: Any) -> Any:
    """Optuna's categorical values must be scalars: lists go as their JSON text."""
    return json.dumps(choice) if isinstance(choice, (list, tuple, dict)) else choice


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def parse_space(raw: Any, base: RunConfig) -> dict[str, Dimension]:
    """Check a search space against the config declaration and `base`.

    Raises:
        ConfigError: one line naming the key and what is allowed, for an unknown
            key, a malformed entry, a choice or bound the config refuses, an empty
            or reversed range.
    """
    if not isinstance(raw, dict) or not raw:
        raise ConfigError("The search space must be a JSON object of dotted config keys, e.g. "
                          '{"train.learning_rate": {"low": 1e-4, "high": 1e-2, "log": true}}.')
    specs = config_module.field_specs()
    out = {}
    for key, entry in raw.items():
        spec = specs.get(key)
        if spec is None or key == "dataset":
            raise ConfigError(f"Space key {key!r} is not a sweepable config key; use dotted keys "
                              f"such as head.dropout or train.learning_rate (the README lists "
                              f"them).")
        if not isinstance(entry, dict):
            raise ConfigError(f"Space {key}: give {{\"choices\": [...]}} or {{\"low\": L, "
                              f"\"high\": H}}. Received: {entry!r}")
        out[key] = (_choices(key, entry, spec, base) if "choices" in entry
                    else _range(key, entry, spec, base))
    return out


def _check_value(key: str, value: Any, spec: Any, base: RunConfig, what: str) -> None:
    try:
        base.with_overrides({key: value})
    except ConfigError:
        raise ConfigError(f"Space {key}: {what} {value!r} is not allowed; {key} takes "
                          f"{spec.allowed}.") from None


def _choices(key: str, entry: dict[str, Any], spec: Any, base: RunConfig) -> Dimension:
    extra = set(entry) - {"choices"}
    choices = entry["choices"]
    if extra:
        raise ConfigError(f"Space {key}: choices cannot be combined with {sorted(extra)}.")
    if not isinstance(choices, list) or not choices:
        raise ConfigError(f"Space {key}: choices must be a non-empty list. Received: "
                          f"{choices!r}")
    for choice in choices:
        _check_value(key, choice, spec, base, "choice")
    if len({json.dumps(c) for c in choices}) != len(choices):
        raise ConfigError(f"Space {key}: choices must differ. Received: {choices!r}")
    return Dimension(key, choices=tuple(choices))


def _range(key: str, entry: dict[str, Any], spec: Any, base: RunConfig) -> Dimension:
    unknown = set(entry) - RANGE_KEYS
    if unknown:
        raise ConfigError(f"Space {key}: unknown entries {sorted(unknown)}; a range has low, "
                          f"high and optionally log or step (or give choices).")
    if spec.type not in ("int", "float"):
        raise ConfigError(f"Space {key}: a {spec.type} field takes choices, not a range.")
    low, high = entry.get("low"), entry.get("high")
    if not (_number(low) and _number(high)):
        raise ConfigError(f"Space {key}: low and high must both be numbers. Received: "
                          f"low={low!r}, high={high!r}")
    integer = spec.type == "int"
    if integer and not (isinstance(low, int) and isinstance(high, int)):
        raise ConfigError(f"Space {key}: an integer field needs integer bounds. Received: "
                          f"low={low!r}, high={high!r}")
    if low >= high:
        raise ConfigError(f"Space {key}: low must be below high. Received: low={low!r}, "
                          f"high={high!r}")
    _check_value(key, low, spec, base, "low")
    _check_value(key, high, spec, base, "high")
    log, step = entry.get("log", False), entry.get("step")
    if not isinstance(log, bool):
        raise ConfigError(f"Space {key}: log must be true or false. Received: {log!r}")
    if log and low <= 0:
        raise ConfigError(f"Space {key}: a log range needs low > 0. Received: low={low!r}")
    if step is not None:
        if log:
            raise ConfigError(f"Space {key}: use log or step, not both.")
        if not _number(step) or step <= 0 or (integer and not isinstance(step, int)):
            raise ConfigError(f"Space {key}: step must be a positive "
                              f"{'integer' if integer else 'number'}. Received: {step!r}")
    return Dimension(key, low=low, high=high, log=log, step=step, integer=integer)


def max_grid_points() -> int:
    """The most points a grid sweep may have (`TLCORE_MAX_GRID_POINTS`, default 10,000)."""
    return env_number(ENV_MAX_GRID, DEFAULT_MAX_GRID, "a positive integer", parse=int)


def check_grid(dims: dict[str, Dimension], trials: int | None = None) -> int:
    """The number of points of the grid over `dims`, refused when too large.

    Args:
        dims: The parsed space.
        trials: The budget asked for; more trials than points is refused too.

    Raises:
        ConfigError: a dimension without choices or step, a grid above
            `max_grid_points()`, or more trials than points.
    """
    size = math.prod(d.grid_size() for d in dims.values())
    limit = max_grid_points()
    if size > limit:
        raise ConfigError(
            f"This grid has {size:,} points, more than the {limit:,} a grid sweep may have "
            f"({ENV_MAX_GRID}); use fewer choices or larger steps, or the tpe or random sampler.")
    if trials is not None and trials > size:
        raise ConfigError(f"A grid of {size:,} points runs at most {size:,} trials; ask for at "
                          f"most that many. Received: trials={trials}")
    return size


def trial_config(base: RunConfig, dims: dict[str, Dimension], params: dict[str, Any]
                 ) -> RunConfig:
    """`base` with a trial's parameters set."""
    return base.with_overrides({key: dims[key].value(params[key]) for key in dims})


# ---- the study ----------------------------------------------------------------
def storage(ws: Workspace) -> Any:
    """Optuna's storage in the run store's database (`store.database_url`)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    RunStore(ws)  # an unreachable database: one StoreError line, not Optuna's traceback
    url = database_url(ws)
    engine_kwargs = ({"connect_args": {"timeout": 60}} if url.startswith("sqlite")
                     else {"pool_pre_ping": True})
    return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)


def _sampler(name: str, dims: dict[str, Dimension], seed: int) -> Any:
    import optuna

    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=5, multivariate=True)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    check_grid(dims)
    return optuna.samplers.GridSampler({k: d.grid() for k, d in dims.items()}, seed=seed)


def attributes(ws: Workspace, sweep_id: str) -> dict[str, Any]:
    """The sweep's recorded settings and state (the study's user attributes), read fresh.

    Raises:
        NotFoundError: if there is no such sweep.
    """
    store = storage(ws)
    try:
        return store.get_study_user_attrs(store.get_study_id_from_name(sweep_id))
    except KeyError:
        raise NotFoundError(f"No sweep with id {sweep_id!r}; `python -m tlcore sweep list` "
                            f"shows existing sweeps.") from None


def load(ws: Workspace, sweep_id: str) -> tuple[Any, dict[str, Any]]:
    """The sweep's Optuna study, to read its trials, and its attributes.

    The study has Optuna's default sampler, which builds nothing up front: reading
    a sweep never lists its grid.

    Raises:
        NotFoundError: if there is no such sweep.
    """
    import optuna

    attrs = attributes(ws, sweep_id)
    return optuna.load_study(study_name=sweep_id, storage=storage(ws)), attrs


def load_for_trials(ws: Workspace, sweep_id: str, seed: int | None = None
                    ) -> tuple[Any, dict[str, Any]]:
    """The sweep's Optuna study with its sampler and pruner, to run trials, and its attributes.

    Args:
        seed: Seeds the sampler; default the base config's seed. Each sweep worker
            keeps one study, so its sampler's random state runs on across trials.

    Raises:
        NotFoundError: if there is no such sweep.
        ConfigError: a grid larger than `max_grid_points()`.
    """
    import optuna

    attrs = attributes(ws, sweep_id)
    base = RunConfig.from_dict(attrs["base"])
    dims = parse_space(attrs["space"], base)
    study = optuna.load_study(
        study_name=sweep_id, storage=storage(ws),
        sampler=_sampler(attrs["sampler"], dims, base.train.seed if seed is None else seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=PRUNE_STARTUP_TRIALS,
                                           # steps are 1-based epochs; the pruner
                                           # judges from step n_warmup_steps on
                                           n_warmup_steps=PRUNE_WARMUP_EPOCHS + 1))
    return study, attrs


def create(ws: Workspace, base: RunConfig, space: Any, trials: int, *, sampler: str = "tpe",
           workers: int = 1, timeout: float | None = None, name: str | None = None,
           owner: str | None = None) -> str:
    """Check everything, then record a new sweep; returns its id (no worker starts).

    Args:
        owner: The signed-in user who starts it, and owner of its trial runs; None:
            the local operator.

    Raises:
        ConfigError: for a bad space, sampler, budget or worker count.
        NotFoundError: if the base config's dataset does not exist.
        QuotaError: if `owner` has `TLCORE_MAX_RUNS_PER_USER` runs queued or running.
    """
    import optuna

    from tlcore.data import check_trainable, load_manifest

    if sampler not in SAMPLERS:
        raise ConfigError(f"sampler must be one of {', '.join(SAMPLERS)}. Received: {sampler!r}")
    if not isinstance(trials, int) or trials < 1:
        raise ConfigError(f"trials must be a positive integer. Received: {trials!r}")
    if not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers must be a positive integer. Received: {workers!r}")
    if timeout is not None and not timeout > 0:
        raise ConfigError(f"timeout must be a positive number of seconds. Received: {timeout!r}")
    dims = parse_space(space, base)
    if sampler == "grid":
        check_grid(dims, trials)
    check_trainable(load_manifest(base.dataset, ws))
    slots.worker_limit()
    executors.current().check_sweep_workers(workers, RunStore(ws))
    auth.check_run_quota(RunStore(ws), owner)
    sweep_id = new_run_id()
    now = time.time()
    study = optuna.create_study(study_name=sweep_id, storage=storage(ws), direction="maximize")
    attrs = {"kind": "sweep", "name": name or f"sweep-{sweep_id[:6]}", "base": base.to_dict(),
             "space": space, "trials": trials, "sampler": sampler, "workers": workers,
             "timeout": timeout, "created": now,
             "deadline": now + timeout if timeout else None, "status": RUNNING,
             "owner": owner}
    for key, value in attrs.items():
        study.set_user_attr(key, value)
    return sweep_id


def set_status(ws: Workspace, sweep_id: str, status: str) -> None:
    """Record the sweep's state (`running`, `cancelled` or `done`)."""
    store = storage(ws)
    store.set_study_user_attr(store.get_study_id_from_name(sweep_id), "status", status)


def log_file(ws: Workspace, sweep_id: str) -> Any:
    """`sweeps/<id>.log`: the sweep workers' own lines (each trial logs to its run)."""
    return ws.root / "sweeps" / f"{sweep_id}.log"


@contextlib.contextmanager
def budget_lock(ws: Workspace, sweep_id: str) -> Iterator[None]:
    """Hold the sweep's lock file, so that only one worker at a time asks for a trial.

    Otherwise two workers could both see a trial left and both ask for it.
    """
    path = ws.root / "sweeps" / f"{sweep_id}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def start(ws: Workspace, base: RunConfig, space: Any, trials: int, *, sampler: str = "tpe",
          workers: int = 1, timeout: float | None = None, name: str | None = None,
          owner: str | None = None) -> str:
    """Record a new sweep (`create`) and start its workers; returns its id.

    A sweep whose workers cannot start (the Ray cluster unreachable, no free slot)
    is removed again, so no sweep stays "running" without anything to run it.

    Raises:
        ConfigError, NotFoundError, QuotaError: as `create`.
        ClusterError: if the Ray cluster cannot be reached.
    """
    import optuna

    sweep_id = create(ws, base, space, trials, sampler=sampler, workers=workers,
                      timeout=timeout, name=name, owner=owner)
    try:
        start_workers(ws, sweep_id, workers)
    except Exception:
        optuna.delete_study(study_name=sweep_id, storage=storage(ws))
        raise
    return sweep_id


def start_workers(ws: Workspace, sweep_id: str, count: int) -> list[int] | list[str]:
    """Start `count` sweep workers; their pids (or, on Ray, job ids). Output goes to `log_file`.

    Locally, worker i is pinned to GPU slot i (round robin) for its whole life, and
    no more workers start than worker slots are free (one may always wait for a
    slot). Under the Ray executor they are Ray jobs (the resources of one run each,
    placed by Ray), recorded in the sweep's attributes.

    Raises:
        ConfigError: if `count` is over the free worker slots.
        ClusterError: if the Ray cluster cannot be reached.
    """
    attrs = attributes(ws, sweep_id)
    executor = executors.current()
    log_path = log_file(ws, sweep_id)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    name = backend.resolve(attrs["base"].get("train", {}).get("backend"))
    started = executor.start_sweep_workers(ws, sweep_id, count, name, log_path)
    if executor.SWEEP_JOBS_KEY:
        store = storage(ws)
        store.set_study_user_attr(store.get_study_id_from_name(sweep_id),
                                  executor.SWEEP_JOBS_KEY,
                                  attrs.get(executor.SWEEP_JOBS_KEY, []) + started)
    return started


def sweep_workers(sweep_id: str, ws: Workspace | None = None) -> list[int | str]:
    """Live sweep workers of `sweep_id`: pids (from /proc), and its active Ray jobs.

    Args:
        sweep_id: The sweep.
        ws: Its workspace; needed to look up the jobs an executor recorded in the sweep.
    """
    attrs = attributes(ws, sweep_id) if ws is not None else {}
    return [worker for executor in executors.EXECUTORS.values()
            for worker in executor.sweep_workers(sweep_id, attrs)]


def idle_workers(ws: Workspace, training: Collection[int | None]) -> int:
    """This workspace's local sweep workers training no run: starting up, or between trials.

    Every sweep started here has a log (`log_file`), which names the sweeps whose
    workers to look for. Zero under Ray, whose jobs the cluster's own figures count.

    Args:
        ws: The workspace.
        training: The pids of the running runs (a trial runs in its worker's process).
    """
    if executors.name() != "local":
        return 0
    ids = [path.stem for path in log_file(ws, "*").parent.glob("*.log")]
    return sum(pid not in training for pid in executors.EXECUTORS["local"].sweep_workers(ids, {}))


def worker_tag(pid: int | None = None) -> str:
    """`<host>:<pid>` of a sweep worker on this host (default: this process)."""
    return f"{socket.gethostname()}:{os.getpid() if pid is None else pid}"


def fail_stale_trials(ws: Workspace, study: Any) -> int:
    """Fail the study's running trials whose run is no longer training (a killed worker).

    A trial without a run yet is left alone while the sweep worker that asked it
    (its `worker` attribute, `<host>:<pid>`) still runs here: it waits for a slot.
    """
    from optuna.trial import TrialState

    liveness.refresh(ws)
    store = RunStore(ws)
    waiting = {worker_tag(pid) for pid in executors.local.sweep_workers(study.study_name, {})}
    failed = 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        run_id = trial.user_attrs.get("run_id")
        try:
            active = (store.get_run(run_id)["status"] in ACTIVE_STATUSES if run_id
                      else trial.user_attrs.get(WORKER_ATTR) in waiting)
        except NotFoundError:
            active = False
        if not active:
            study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
            failed += 1
    return failed


def summary(ws: Workspace, sweep_id: str) -> dict[str, Any]:
    """The sweep with every trial: run id, parameters, state, best val accuracy; and the best.

    Raises:
        NotFoundError: if there is no such sweep.
    """
    from optuna.trial import TrialState

    study, attrs = load(ws, sweep_id)
    dims = parse_space(attrs["space"], RunConfig.from_dict(attrs["base"]))
    trials = []
    for t in study.get_trials(deepcopy=False):
        trials.append({
            "number": t.number, "run_id": t.user_attrs.get("run_id"),
            "params": {k: dims[k].value(v) for k, v in t.params.items() if k in dims},
            "state": t.state.name.lower(), "best_val_accuracy": t.value,
            "epochs": len(t.intermediate_values),
            "seconds": (t.datetime_complete - t.datetime_start).total_seconds()
            if t.datetime_complete and t.datetime_start else None})
    done = [t for t in trials if t["state"] == TrialState.COMPLETE.name.lower()]
    best = max(done, key=lambda t: t["best_val_accuracy"], default=None)
    workers = sweep_workers(sweep_id, ws)
    status = attrs["status"]
    if status == RUNNING and not workers:
        status = "stopped" if len(_finished(trials)) < attrs["trials"] else DONE
    return {"id": sweep_id, "name": attrs["name"], "owner": attrs.get("owner"),
            "status": status, "sampler": attrs["sampler"],
            "trials_planned": attrs["trials"], "created": attrs["created"],
            "objective": OBJECTIVE, "space": attrs["space"], "base": attrs["base"],
            "workers": workers, "trials": trials, "best": best,
            "finished": len(_finished(trials))}


def _finished(trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [t for t in trials if t["state"] in ("complete", "pruned", "fail")]


def list_sweeps(ws: Workspace) -> list[dict[str, Any]]:
    """Every sweep of the workspace, oldest first (as `summary`, without the trials)."""
    import optuna

    names = optuna.get_all_study_names(storage(ws))
    out = [summary(ws, name) for name in names]
    for item in out:
        item.pop("trials")
    return sorted(out, key=lambda s: s["created"])


def cancel(ws: Workspace, sweep_id: str) -> int:
    """Stop a sweep: no new trials, and its running trials cancelled. Returns how many."""
    attributes(ws, sweep_id)  # NotFoundError first
    set_status(ws, sweep_id, CANCELLED)
    store = RunStore(ws)
    stopped = 0
    for run in store.list_runs(statuses=ACTIVE_STATUSES):
        if (run["extra"] or {}).get("sweep") == sweep_id:
            launch.cancel(run["id"], ws)
            stopped += 1
    return stopped


def resume(ws: Workspace, sweep_id: str, workers: int | None = None) -> list[int]:
    """Fail the trials of killed workers, add as many to the budget, start workers; pids."""
    study, attrs = load(ws, sweep_id)
    if attrs["sampler"] == "grid":  # a sweep recorded before grids were bounded
        check_grid(parse_space(attrs["space"], RunConfig.from_dict(attrs["base"])))
    failed = fail_stale_trials(ws, study)
    if failed:
        store = storage(ws)
        store.set_study_user_attr(store.get_study_id_from_name(sweep_id), "trials",
                                  attrs["trials"] + failed)
    set_status(ws, sweep_id, RUNNING)
    return start_workers(ws, sweep_id, workers or attrs["workers"])


def delete(ws: Workspace, sweep_id: str) -> int:
    """Delete a sweep: cancel it, then delete its trial runs and its study.

    Returns:
        How many trial runs were deleted.

    Raises:
        NotFoundError: if there is no such sweep.
    """
    import optuna

    cancel(ws, sweep_id)
    store = RunStore(ws)
    trial_runs = [run["id"] for run in store.list_runs()
                  if (run["extra"] or {}).get("sweep") == sweep_id]
    for run_id in trial_runs:
        launch.delete(run_id, ws)
    optuna.delete_study(study_name=sweep_id, storage=storage(ws))
    return len(trial_runs)
