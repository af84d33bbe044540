"""The Ray executor: runs and sweep workers as Ray Jobs on a cluster. No TensorFlow.

With `TLCORE_EXECUTOR=ray`, `queue.start_queued` submits each queued run to the
Ray cluster whose dashboard is at `TLCORE_RAY_ADDRESS` as a job running
`python -m tlcore.workers.run RUN_ID`, asking for `TLCORE_RAY_GPUS_PER_RUN` GPUs
(default 1; 0 on a CPU cluster) and `TLCORE_RAY_CPUS_PER_RUN` CPUs (default 1).
Ray decides where and when it starts; `TLCORE_MAX_WORKERS` does not apply. The
run stays `queued` in the store until its worker starts and claims it, so the
store shows what Ray is waiting for. Sweep workers are submitted the same way.

Every node sees the workspace at the same path (the worker checks, see
`workspace_visible`) and the same store (`TLCORE_DB_URL`).

Submission ids are deterministic, `tlcore-run-<run id>-<seq>-<n>`: `seq` changes
each time the run is queued again, `n` counts the resubmissions of jobs Ray gave
up on before they started (it fails a job still pending after
`RAY_JOB_START_TIMEOUT_SECONDS`, 15 minutes by default). Two processes
submitting a run at once thus submit one job; "already exists" counts as
submitted.

A Ray run's pid names a process on some node: liveness asks Ray for the job's
status instead (`ended`). `ray.job_submission` is imported inside functions
only, so a process pays for Ray only when this executor is configured.
"""

from __future__ import annotations

import functools
import os
import socket
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from tlcore import backend
from tlcore.errors import ClusterError, ConfigError, TLCoreError
from tlcore.runs import slots
from tlcore.runs.executors.base import ENV_EXECUTOR
from tlcore.runs.executors.base import name as executor
from tlcore.runs.executors.ray_cluster import (
    ENV_ADDRESS,
    RUN_PREFIX,
    SWEEP_PREFIX,
    address,
    cluster_summary,
    reason,
    shown,
)
from tlcore.settings import at_least_zero, env_number
from tlcore.store import FAILED, QUEUED, RunStore
from tlcore.workspace import DATASETS_DIR, DEFAULT_HOME, ENV_HOME, RUNS_DIR, Workspace

NAME = "ray"
# The sweep attribute that lists the sweep workers submitted as jobs.
SWEEP_JOBS_KEY = "ray_jobs"
ENV_GPUS = "TLCORE_RAY_GPUS_PER_RUN"
ENV_CPUS = "TLCORE_RAY_CPUS_PER_RUN"
# The submission id of the job a process runs in; Ray itself tells an entrypoint nothing.
ENV_JOB = "TLCORE_RAY_JOB"
ENV_DB_URL = "TLCORE_DB_URL"
# Ray's job clients follow this variable before any address they are given: a job's
# own processes get the dashboard's address there (Ray points RAY_ADDRESS at the GCS).
RAY_API_SERVER_ADDRESS = "RAY_API_SERVER_ADDRESS"
ACTIVE_STATES = ("PENDING", "RUNNING")
START_TIMEOUT = "JOB_SUPERVISOR_ACTOR_START_TIMEOUT"
REQUEST_TIMEOUT_S = 10.0
LOG_LINES = 12
_PROJECT_ROOT = Path(__file__).resolve().parents[3]


# ---- settings -------------------------------------------------------------------
def enabled() -> bool:
    """Whether runs go to a Ray cluster (`$TLCORE_EXECUTOR` is "ray").

    Raises:
        ConfigError: if `$TLCORE_EXECUTOR` names no executor.
    """
    return executor() == NAME


def _as_ray_shows(amount: float) -> float:
    """Whole amounts as ints (1, not 1.0), as Ray shows them."""
    return int(amount) if float(amount).is_integer() else amount


def gpus_per_run() -> float:
    """GPUs each Ray job asks for: `$TLCORE_RAY_GPUS_PER_RUN`, default 1 (0: CPU cluster).

    Raises:
        ConfigError: if it is not a number of at least 0.
    """
    return _as_ray_shows(env_number(ENV_GPUS, 1, "a number of at least 0", valid=at_least_zero))


def cpus_per_run() -> float:
    """CPUs each Ray job asks for: `$TLCORE_RAY_CPUS_PER_RUN`, default 1.

    Raises:
        ConfigError: if it is not a positive number.
    """
    return _as_ray_shows(env_number(ENV_CPUS, 1, "a positive number"))


def check_settings() -> None:
    """Read every Ray setting once, so that a bad one fails now rather than in a refresh.

    Raises:
        ConfigError: naming the bad setting.
    """
    if enabled():
        address()
        gpus_per_run()
        cpus_per_run()


def own_job() -> str | None:
    """The submission id of the Ray job this process runs in, or None outside Ray."""
    return os.environ.get(ENV_JOB) or None


def claim_extra() -> dict[str, Any]:
    """What a worker records in its run's `extra` when it takes the run: where it runs.

    `executor` ("ray" with the job's id in `ray_job`, else "local") and the GPUs it was
    given (`cuda_visible_devices`). The worker's word decides how `liveness.refresh`
    judges the run, whoever queued it.
    """
    job = own_job()
    where = {"executor": NAME, "ray_job": job} if job else {"executor": "local"}
    return {**where, "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}


def is_ray_run(run: dict[str, Any]) -> bool:
    """Whether `run` (a store row) was submitted to Ray: its `extra.executor` is "ray"."""
    return (run.get("extra") or {}).get("executor") == NAME


# ---- the cluster ------------------------------------------------------------------
@functools.lru_cache(maxsize=4)
def _client(url: str) -> Any:
    """A job client for the dashboard at `url` whose every request has a timeout."""
    from ray.job_submission import JobSubmissionClient

    class _Client(JobSubmissionClient):
        # Ray's client waits forever for an answer; a head that stopped answering must
        # not freeze the dashboard.
        def _do_request(self, method: str, endpoint: str, **kwargs: Any) -> Any:
            kwargs.setdefault("timeout", REQUEST_TIMEOUT_S)
            return super()._do_request(method, endpoint, **kwargs)

    return _Client(url)


def client(url: str | None = None) -> Any:
    """The `JobSubmissionClient` of the cluster at `url` (default `address()`), kept per address.

    Raises:
        ClusterError: if the dashboard cannot be reached.
        ConfigError: if `$TLCORE_RAY_ADDRESS` is not an http(s) URL.
    """
    url = url or address()
    try:
        return _client(url)
    except (OSError, RuntimeError, ValueError) as exc:
        raise ClusterError(
            f"Cannot reach the Ray cluster at {shown(url)}: {reason(exc)}. Start it with "
            f"`ray start --head` or set {ENV_ADDRESS}.") from None


def check_cluster(url: str | None = None) -> None:
    """Check that the cluster at `url` (default `address()`) answers.

    Raises:
        ClusterError: if it does not.
    """
    url = url or address()
    try:
        client(url).get_version()
    except ClusterError:
        raise
    except (OSError, RuntimeError, ValueError) as exc:
        _client.cache_clear()
        raise ClusterError(
            f"Cannot reach the Ray cluster at {shown(url)}: {reason(exc)}. Start it with "
            f"`ray start --head` or set {ENV_ADDRESS}.") from None


def job_env(ws: Workspace, backend_name: str | None, submission_id: str) -> dict[str, str]:
    """The environment variables of a Ray job's process (Ray's `runtime_env.env_vars`).

    Only what a worker needs travels, not the caller's whole environment: every
    `TLCORE_*` setting (the workspace, `TLCORE_DB_URL`, limits), the project on
    `PYTHONPATH`, quiet TensorFlow logs, the backend's variables
    (`backend.environment`), the job's own id and the dashboard's address.
    """
    env = {k: v for k, v in os.environ.items() if k.startswith("TLCORE_")}
    env.pop("TLCORE_CLAIMED_RUN", None)
    env.update({
        ENV_HOME: str(ws.root),
        ENV_EXECUTOR: "ray",
        ENV_ADDRESS: address(),
        ENV_JOB: submission_id,
        RAY_API_SERVER_ADDRESS: address(),
        "PYTHONPATH": str(_PROJECT_ROOT),
        "PYTHONUNBUFFERED": "1",
        "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
    })
    if backend_name is not None:
        env.update(backend.environment(backend_name))
    return env


def submit_job(module: str, argument: str, submission_id: str, env: dict[str, str]) -> None:
    """Submit `python -m <module> <argument>` as job `submission_id`; an existing one counts.

    Raises:
        ClusterError: if the cluster cannot be reached or refuses the job.
    """
    try:
        client().submit_job(
            entrypoint=f"{sys.executable} -m {module} {argument}",
            submission_id=submission_id, runtime_env={"env_vars": env},
            entrypoint_num_gpus=gpus_per_run(), entrypoint_num_cpus=cpus_per_run(),
            metadata={"tlcore": module})
    except (OSError, RuntimeError, ValueError) as exc:
        if "already exists" in str(exc):
            return  # another process submitted the same run a moment ago
        raise ClusterError(f"The Ray cluster at {shown(address())} did not take job "
                           f"{submission_id}: {reason(exc)}") from None


def job_info(submission_id: str) -> Any:
    """Ray's `JobDetails` of a job; None when the cluster does not know it.

    Raises:
        ClusterError: if the cluster cannot be reached.
    """
    try:
        return client().get_job_info(submission_id)
    except (OSError, RuntimeError, ValueError) as exc:
        if "404" in str(exc) or "does not exist" in str(exc):
            return None
        raise ClusterError(f"Cannot reach the Ray cluster at {shown(address())}: "
                           f"{reason(exc)}") from None


def stop_job(submission_id: str | None) -> None:
    """Stop a job if it still runs (SIGTERM, then SIGKILL after Ray's grace); never raises."""
    if not submission_id:
        return
    try:
        client().stop_job(submission_id)
    except (ClusterError, ConfigError, OSError, RuntimeError, ValueError):
        pass  # gone already, or the cluster is down: nothing left to stop


def wait_ended(submission_id: str | None, timeout: float) -> bool:
    """Wait up to `timeout` seconds for a job to end; True when it did (or is unknown)."""
    deadline = time.monotonic() + timeout
    while submission_id:
        try:
            info = job_info(submission_id)
        except ClusterError:
            return False
        if info is None or info.status not in ACTIVE_STATES:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def job_logs(submission_id: str, lines: int = LOG_LINES) -> str:
    """The last `lines` lines of a job's output as Ray kept it ("" when there is none)."""
    try:
        text = client().get_job_logs(submission_id)
    except (ClusterError, ConfigError, OSError, RuntimeError, ValueError):
        return ""
    return "\n".join(text.splitlines()[-lines:]) if lines > 0 else ""


# ---- runs -------------------------------------------------------------------------
def run_job_prefix(run: dict[str, Any]) -> str:
    """The submission ids of `run`'s current time in the queue start with this."""
    return f"{RUN_PREFIX}{run['id']}-{run['seq']}-"


def current_job(run: dict[str, Any]) -> str | None:
    """The job submitted for `run` since it was last queued, or None."""
    job = (run.get("extra") or {}).get("ray_job")
    return job if is_ray_run(run) and job and job.startswith(run_job_prefix(run)) else None


def _next_job(run: dict[str, Any]) -> str:
    job = current_job(run)
    count = int(job.rsplit("-", 1)[1]) + 1 if job else 0
    return f"{run_job_prefix(run)}{count}"


def submit_run(run: dict[str, Any], ws: Workspace, store: RunStore, job: str) -> None:
    """Submit `run`'s worker as job `job` and record it in the run's `extra`.

    A run cancelled or deleted meanwhile has its job stopped again: whichever of
    the two processes writes last sees the other's write.

    Raises:
        ClusterError: if the cluster cannot be reached or refuses the job.
    """
    name = backend.resolve(((run["config"] or {}).get("train") or {}).get("backend"))
    submit_job("tlcore.workers.run", run["id"], job, job_env(ws, name, job))
    try:
        store.merge_extra(run["id"], executor=NAME, ray_job=job)
        still_queued = store.get_run(run["id"])["status"] == QUEUED
    except KeyError:  # NotFoundError: deleted meanwhile
        still_queued = False
    if not still_queued:
        stop_job(job)


def submit(ws: Workspace, store: RunStore) -> list[str]:
    """Submit every queued run that has no job since it was last queued; their ids.

    Ray places them (no worker limit here); runs stay queued when the cluster cannot
    be reached: the next call submits them.
    """
    submitted = []
    for run in store.list_runs(statuses=(QUEUED,)):
        if current_job(run) is not None:
            continue
        try:
            submit_run(run, ws, store, _next_job(run))
        except ClusterError:
            break
        submitted.append(run["id"])
    return submitted


def _jobreason(info: Any, job: str) -> str:
    if info is None:
        return f"the Ray cluster no longer knows its job {job} (was the head restarted?)"
    message = (info.message or "").strip().splitlines()
    return f"its Ray job {job} is {info.status.value}" + (f": {message[0]}" if message else "")


def ended(run: dict[str, Any], ws: Workspace) -> str | None:
    """Why a running Ray run's job is over (its reason and last log lines), else None.

    Its pid names a process on some node: the job's status tells instead. None too
    when the cluster cannot be asked: the heartbeat timeout still judges the worker.
    """
    job = (run.get("extra") or {}).get("ray_job")
    if not job:
        return None
    try:
        info = job_info(job)
    except ClusterError:
        return None
    if info is not None and info.status.value in ACTIVE_STATES:
        return None
    tail = job_logs(job) if info is not None else ""
    return (f"The worker ended without reporting a result: {_jobreason(info, job)}. Resume "
            "the run to continue from the last finished epoch."
            + (f"\n\nLast lines of the job's log:\n{tail}" if tail else ""))


def _unplaceable() -> str | None:
    """Why no node of the cluster can ever take a job of this size, or None."""
    summary = cluster_summary()
    if "error" in summary:
        return None
    for need, have, setting in ((gpus_per_run(), summary["gpus_total"], ENV_GPUS),
                                (cpus_per_run(), summary["cpus_total"], ENV_CPUS)):
        if need > have:
            return (f"Each run asks the Ray cluster for {need} (${setting}), but it has {have} "
                    f"in all. Set {setting} to at most {have}, or add nodes, and resume the run.")
    return None


def settle(ws: Workspace, store: RunStore) -> list[str]:
    """Settle queued Ray runs whose job ended before its worker claimed the run.

    A job Ray gave up on while it waited for resources is submitted again (the run
    keeps its place), unless no node could ever take it; any other end fails the
    run with the last line of the job's log (e.g. a node that cannot see the
    workspace). Only Ray runs are looked at.

    Returns:
        The ids of the runs that failed.
    """
    failed = []
    for run in store.list_runs(statuses=(QUEUED,)):
        job = current_job(run)
        if job is None:
            continue
        try:
            info = job_info(job)
        except ClusterError:
            return failed
        if info is not None and info.status.value in ACTIVE_STATES:
            continue
        if info is None or (info.error_type or "") == START_TIMEOUT:
            reason = _unplaceable() if info is not None else None
            if reason is None:
                try:
                    submit_run(run, ws, store, _next_job(run))
                except ClusterError:
                    return failed
                continue
        else:
            tail = job_logs(job, lines=1) or _jobreason(info, job)
            reason = f"The Ray job {job} ended before its worker started: {tail}"
        if store.transition(run["id"], (QUEUED,), status=FAILED, ended=time.time(),
                            error=reason):
            failed.append(run["id"])
    return failed


# ---- the worker's side --------------------------------------------------------------
def home() -> Path:
    """The folder `$TLCORE_HOME` names, not created (unlike `Workspace.from_env`)."""
    return Path(os.environ.get(ENV_HOME) or DEFAULT_HOME).expanduser().absolute()


def workspace_visible(path: Path) -> str | None:
    """The line a worker prints when `path` (in the workspace) is missing on this node, or None.

    Checked before anything writes into the workspace, so that a node without the
    shared workspace creates no stray folder where it should be.
    """
    if path.exists():
        return None
    return (f"This node ({socket.gethostname()}) cannot see the workspace at {home()}: mount "
            "the shared workspace at the same path on every Ray node (see docs/scaling.md).")


def run_config_path(run_id: str) -> Path:
    """`$TLCORE_HOME/runs/<id>/config.json`, which launch writes before submitting the run."""
    return home() / RUNS_DIR / run_id / "config.json"


def check_node(run_id: str | None) -> int | None:
    """Refuse a node without the shared workspace: 3 (after saying so on stderr), else None.

    A run's worker looks for its `config.json`, a sweep worker (`run_id` None) for the
    datasets folder. With the store elsewhere (`TLCORE_DB_URL`) the run fails here,
    else `liveness.refresh` fails it from the job's log, this line.
    """
    unseen = workspace_visible(home() / DATASETS_DIR if run_id is None
                               else run_config_path(run_id))
    if unseen is None:
        return None
    print(unseen, file=sys.stderr)
    if run_id is not None and os.environ.get(ENV_DB_URL):
        try:
            RunStore(Workspace(home())).transition(run_id, (QUEUED,), status=FAILED,
                                                   ended=time.time(), error=unseen)
        except TLCoreError:
            pass  # the line above is in the job's log, which refresh reads
    return 3


# ---- the executor interface -----------------------------------------------------------
def check() -> None:
    """Read every Ray setting and check that the cluster answers, before a launch.

    Raises:
        ConfigError: naming a bad setting.
        ClusterError: if the cluster does not answer.
    """
    check_settings()
    check_cluster()


def stop(run: dict[str, Any], ws: Workspace, wait: float = 0.0) -> None:
    """Stop the run's job; wait up to `wait` seconds for it to end."""
    job = (run.get("extra") or {}).get("ray_job")
    stop_job(job)
    if wait:
        wait_ended(job, timeout=wait)


def worker_name(run: dict[str, Any]) -> str:
    """`Ray job <submission id>`."""
    return f"Ray job {(run.get('extra') or {}).get('ray_job')}"


def logs(run: dict[str, Any], lines: int) -> str:
    """The tail of the run's job output as Ray kept it ("" without a job)."""
    job = (run.get("extra") or {}).get("ray_job")
    return job_logs(job, lines) if is_ray_run(run) and job else ""


def start_sweep_workers(ws: Workspace, sweep_id: str, count: int, backend_name: str,
                        log: Path) -> list[str]:
    """Submit `count` sweep workers as jobs (the resources of one run each); their ids.

    Raises:
        ClusterError: if the cluster cannot be reached or refuses a job.
    """
    check_cluster()
    submitted = []
    for _ in range(count):
        job = f"{SWEEP_PREFIX}{sweep_id}-{uuid.uuid4().hex[:8]}"
        submit_job("tlcore.workers.sweep", sweep_id, job, job_env(ws, backend_name, job))
        submitted.append(job)
    return submitted


def check_sweep_workers(count: int, store: RunStore) -> None:
    """Nothing: Ray places as many sweep workers as it has resources for."""

def sweep_workers(sweep_id: str, attrs: dict[str, Any]) -> list[str]:
    """The sweep's jobs (its `SWEEP_JOBS_KEY`) that are still pending or running."""
    found = []
    for job in attrs.get(SWEEP_JOBS_KEY, []):
        try:
            info = job_info(job)
        except ClusterError:
            break
        if info is not None and info.status.value in ACTIVE_STATES:
            found.append(job)
    return found


def sweep_slots() -> int:
    """Unbounded in a Ray job (Ray already placed it), else `slots.worker_limit()`."""
    return sys.maxsize if own_job() else slots.worker_limit()


def warm_up(ws: Workspace) -> int | None:
    """None: Ray's jobs start their own workers."""
    return None
