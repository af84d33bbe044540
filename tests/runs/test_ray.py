"""The Ray executor on a real local Ray head (2 CPUs, 2 fake GPUs): `pytest -m ray`."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support.runs import wait_for
from tlcore.config import RunConfig
from tlcore.errors import ClusterError, ConfigError
from tlcore.runs import launch, liveness, logs, queue
from tlcore.runs.executors import ray as rayjobs
from tlcore.runs.executors import ray_cluster
from tlcore.store import CANCELLED, FAILED, LOST, QUEUED, RUNNING, RunStore

# One Ray head for the module: its tests stay on one test process.
pytestmark = [pytest.mark.ray, pytest.mark.xdist_group("ray")]

RAY_CLI = Path(sys.executable).parent / "ray"
HAS_RAY = importlib.util.find_spec("ray") is not None and RAY_CLI.exists()
needs_ray = pytest.mark.skipif(not HAS_RAY, reason="ray[default] is not installed")
# Every port the head opens, so that it never collides with another cluster here.
PORT_OPTIONS = ("--port", "--dashboard-port", "--ray-client-server-port",
                "--dashboard-agent-listen-port", "--dashboard-agent-grpc-port",
                "--runtime-env-agent-port", "--metrics-export-port", "--node-manager-port",
                "--object-manager-port")
WORKER_PORTS = 40  # one per Ray worker process (job supervisors, idle workers)
DEADLINE_S = 120
# A sweep's two workers import TensorFlow at once, next to the other test process.
SWEEP_DEADLINE_S = 300
START_DEADLINE_S = 120
# Ray's own waits at startup, lengthened: on 2 busy cores its processes start slowly
# (the GCS client's connect and request deadlines, a worker's registration, the dashboard).
RAY_SLOW_START = {
    "RAY_gcs_rpc_server_connect_timeout_s": "60",
    "RAY_gcs_server_request_timeout_seconds": "120",
    "RAY_raylet_start_wait_time_s": "120",
    "RAY_worker_register_timeout_seconds": "120",
    "RAY_DASHBOARD_STARTUP_TIMEOUT_S": "180",
}


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _process_tree(pgid: int) -> set[int]:
    """The live processes of process group `pgid` and all their descendants (from /proc)."""
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            if fields[0] != "Z":  # a zombie is gone already, only not yet reaped
                table[int(entry)] = (int(fields[1]), int(fields[2]))  # ppid, pgrp
    found = {pid for pid, (_, group) in table.items() if group == pgid}
    while True:
        children = {pid for pid, (ppid, _) in table.items() if ppid in found} - found
        if not children:
            return found
        found |= children


def _stop_head(pgid: int) -> None:
    """Stop this head only (`ray stop` would stop every Ray process on the machine).

    Repeated until none is left: a head still starting may spawn a process meanwhile.
    """
    deadline = time.monotonic() + 10
    while (alive := _process_tree(pgid)) and time.monotonic() < deadline:
        for pid in alive:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)


def _start_head() -> tuple[int, str, str]:
    """`ray start --head` on free ports; its process group, temp dir and Jobs API address.

    Raises:
        RuntimeError: if the head did not start, or its Jobs API did not answer, in time;
            what it had started is stopped.
    """
    ports = _free_ports(len(PORT_OPTIONS) + WORKER_PORTS)
    temp = tempfile.mkdtemp(prefix="rt-", dir="/tmp")  # Ray's socket paths must stay short
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TLCORE_", "RAY_", "KERAS_BACKEND"))}
    env.update(RAY_SLOW_START)
    args = [str(RAY_CLI), "start", "--head", "--num-cpus", "2", "--num-gpus", "2",
            "--node-ip-address", "127.0.0.1", "--dashboard-host", "127.0.0.1",
            "--include-dashboard", "true", "--disable-usage-stats", "--temp-dir", temp,
            "--object-store-memory", str(80 * 2**20),
            "--worker-port-list", ",".join(map(str, ports[len(PORT_OPTIONS):]))]
    for option, port in zip(PORT_OPTIONS, ports, strict=False):
        args += [option, str(port)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)
    address = f"http://127.0.0.1:{ports[1]}"

    def jobs_api_ready() -> bool:
        try:
            with urllib.request.urlopen(f"{address}/api/jobs/", timeout=2) as answer:
                return answer.status == 200
        except OSError:
            return False

    try:
        try:
            output = proc.communicate(timeout=START_DEADLINE_S)[0].decode(errors="replace")
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"ray start did not return in {START_DEADLINE_S} s") from None
        if proc.returncode != 0:
            raise RuntimeError(f"ray start failed:\n{output[-2000:]}")
        wait_for(jobs_api_ready, "the Ray Jobs API", timeout=START_DEADLINE_S, interval=0.2)
    except (RuntimeError, AssertionError):
        _stop_head(proc.pid)
        proc.wait()
        shutil.rmtree(temp, ignore_errors=True)
        raise
    return proc.pid, temp, address


@pytest.fixture(scope="module")
def ray_head():
    """A local Ray head with 2 CPUs and 2 GPUs (fake: TensorFlow finds none and uses the CPU).

    Started once for the module, and once more when the first start fails: on a loaded
    machine the raylet may miss `ray start`'s fixed 30 s registration wait.
    """
    if not HAS_RAY:
        pytest.skip("ray[default] is not installed")
    started = time.monotonic()
    try:
        pgid, temp, address = _start_head()
    except (RuntimeError, AssertionError) as first:
        print(f"\nRay head did not start ({first}); starting it again")
        try:
            pgid, temp, address = _start_head()
        except (RuntimeError, AssertionError) as second:
            pytest.fail(f"The Ray head did not start twice:\n{first}\n{second}")
    print(f"\nRay head started in {time.monotonic() - started:.1f} s")
    try:
        yield address
    finally:
        stopping = time.monotonic()
        _stop_head(pgid)
        shutil.rmtree(temp, ignore_errors=True)
        print(f"\nRay head stopped in {time.monotonic() - stopping:.1f} s")


@pytest.fixture
def on_ray(ray_head, monkeypatch):
    """The Ray executor on the head; the jobs a test leaves active are stopped after it.

    A test that fails half-way leaves its jobs holding the head's GPUs; the next test's
    jobs would wait behind them.
    """
    monkeypatch.setenv("TLCORE_EXECUTOR", "ray")
    monkeypatch.setenv("TLCORE_RAY_ADDRESS", ray_head)
    monkeypatch.delenv("TLCORE_RAY_GPUS_PER_RUN", raising=False)
    monkeypatch.delenv("TLCORE_RAY_CPUS_PER_RUN", raising=False)
    yield ray_head
    active = [job.submission_id for job in rayjobs.client(ray_head).list_jobs()
              if job.status.value in rayjobs.ACTIVE_STATES]
    for job in active:
        rayjobs.stop_job(job)
    for job in active:
        assert rayjobs.wait_ended(job, DEADLINE_S), f"Ray job {job} did not stop"


def config_for(dataset: str, epochs: int) -> RunConfig:
    return RunConfig.from_dict({
        "dataset": dataset, "image_size": 32, "base": {"weights": "none"},
        "head": {"dense": [8], "dropout": 0.0},
        "train": {"epochs": epochs, "batch_size": 8, "early_stopping_patience": 0}})


def _job_over(job: str) -> bool:
    info = rayjobs.job_info(job)
    return info is None or info.status.value not in rayjobs.ACTIVE_STATES


# ---- without a cluster -----------------------------------------------------------------
def test_settings_are_checked(monkeypatch):
    monkeypatch.setenv("TLCORE_EXECUTOR", "slurm")
    with pytest.raises(ConfigError, match=r"TLCORE_EXECUTOR must be one of local, ray\. "
                                          r"Received: TLCORE_EXECUTOR='slurm'"):
        rayjobs.enabled()
    monkeypatch.setenv("TLCORE_EXECUTOR", "ray")
    assert rayjobs.enabled() and rayjobs.address() == ray_cluster.DEFAULT_ADDRESS
    assert rayjobs.gpus_per_run() == 1 and rayjobs.cpus_per_run() == 1
    monkeypatch.setenv("TLCORE_RAY_GPUS_PER_RUN", "0")
    assert rayjobs.gpus_per_run() == 0
    for name, value, words in (("TLCORE_RAY_ADDRESS", "127.0.0.1:8265", "http"),
                               ("TLCORE_RAY_GPUS_PER_RUN", "-1", "at least 0"),
                               ("TLCORE_RAY_CPUS_PER_RUN", "0", "positive")):
        monkeypatch.setenv(name, value)
        with pytest.raises(ConfigError, match=words):
            rayjobs.check_settings()
        monkeypatch.delenv(name)


def test_the_worker_refuses_a_node_without_the_workspace(tmp_path):
    home = tmp_path / "elsewhere"
    home.mkdir()
    env = {**os.environ, "TLCORE_HOME": str(home), "TLCORE_EXECUTOR": "ray",
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    env.pop("TLCORE_DB_URL", None)
    proc = subprocess.run([sys.executable, "-m", "tlcore.workers.run", "0123456789ab"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert lines == [f"This node ({socket.gethostname()}) cannot see the workspace at {home}: "
                     "mount the shared workspace at the same path on every Ray node (see "
                     "docs/scaling.md)."]
    assert list(home.iterdir()) == []


@needs_ray
def test_launch_refuses_an_unreachable_cluster_and_leaves_nothing(ws, dataset, monkeypatch):
    (port,) = _free_ports(1)
    monkeypatch.setenv("TLCORE_EXECUTOR", "ray")
    monkeypatch.setenv("TLCORE_RAY_ADDRESS", f"http://127.0.0.1:{port}")
    with pytest.raises(ClusterError, match=rf"^Cannot reach the Ray cluster at "
                                           rf"http://127\.0\.0\.1:{port}: .*Start it with "
                                           r"`ray start --head` or set TLCORE_RAY_ADDRESS\.$"):
        launch.launch(config_for(dataset, 1), ws=ws)
    assert RunStore(ws).list_runs() == [] and list(ws.runs_dir.iterdir()) == []
    assert "error" in rayjobs.cluster_summary()
    assert liveness.refresh(ws) == []  # nothing to ask the cluster about



def test_credentials_in_the_ray_address_are_never_shown():
    assert ray_cluster.shown("https://alice:s3cret@head:8265/ray?token=t0k&x=1") == (
        "https://alice:***@head:8265/ray?token=***&x=***")
    assert ray_cluster.shown("https://t0k@head:8265") == "https://***@head:8265"
    assert ray_cluster.shown("http://head:8265") == "http://head:8265"


@needs_ray
def test_an_unreachable_cluster_with_credentials_hides_them_and_leaves_no_sweep(
        ws, dataset, monkeypatch):
    from tlcore.runs import sweeps

    (port,) = _free_ports(1)
    monkeypatch.setenv("TLCORE_EXECUTOR", "ray")
    monkeypatch.setenv("TLCORE_RAY_ADDRESS", f"http://studio:s3cret@127.0.0.1:{port}?token=t0k")
    shown = f"http://studio:***@127.0.0.1:{port}?token=***"
    with pytest.raises(ClusterError) as caught:
        launch.launch(config_for(dataset, 1), ws=ws)
    assert str(caught.value).startswith(f"Cannot reach the Ray cluster at {shown}: ")
    summary = ray_cluster.cluster_summary()
    assert summary["address"] == shown and "s3cret" not in summary["error"]
    monkeypatch.setenv("TLCORE_RAY_ADDRESS", f"127.0.0.1:{port}?token=t0k")  # no scheme
    with pytest.raises(ConfigError) as caught:
        rayjobs.check_settings()
    assert "t0k" not in str(caught.value)
    # A sweep whose workers cannot start is not left "running" with nothing to run it.
    monkeypatch.setenv("TLCORE_RAY_ADDRESS", f"http://studio:s3cret@127.0.0.1:{port}")
    with pytest.raises(ClusterError) as caught:
        sweeps.start(ws, config_for(dataset, 1), {"head.dropout": {"low": 0.0, "high": 0.5}}, 2)
    assert "s3cret" not in str(caught.value)
    assert sweeps.list_sweeps(ws) == []

# ---- on a real head --------------------------------------------------------------------
def test_a_queued_run_whose_worker_cannot_see_the_workspace_fails(ws, dataset, on_ray):
    store = RunStore(ws)
    run_id = store.create_run(config_for(dataset, 1))  # no config.json: as seen from another node
    assert queue.start_queued(ws) == [run_id]
    run = store.get_run(run_id)
    job = run["extra"]["ray_job"]
    assert run["status"] == QUEUED and run["extra"]["executor"] == "ray"
    assert job == f"tlcore-run-{run_id}-{run['seq']}-0"
    assert queue.start_queued(ws) == []  # submitted once, whoever asks again
    wait_for(lambda: liveness.refresh(ws) or store.get_run(run_id)["status"] != QUEUED,
             "the job to end", timeout=DEADLINE_S, interval=0.3)
    run = store.get_run(run_id)
    assert run["status"] == FAILED
    assert run["error"].startswith(f"The Ray job {job} ended before its worker started: "
                                   "This node (")
    assert "cannot see the workspace" in logs.log_tail(run_id, ws=ws)  # from Ray's log


def test_runs_as_ray_jobs_gpus_queue_cancel_kill_and_logs(ws, dataset, on_ray):
    store = RunStore(ws)
    runs = [launch.launch(config_for(dataset, 5000), name=f"ray-{i}", ws=ws) for i in range(3)]
    assert all(store.get_run(r)["extra"]["ray_job"].startswith("tlcore-run-") for r in runs)

    def running() -> list[str]:
        """The runs a worker has taken and said where it runs: it marks a run running,
        then records its GPUs (`claim_extra`) in a second write."""
        liveness.refresh(ws)
        return [r for r in runs if (run := store.get_run(r))["status"] == RUNNING
                and "cuda_visible_devices" in (run["extra"] or {})]

    # Two GPUs: two runs train at once, each on its own; the third waits in Ray's queue.
    first_two = wait_for(lambda: len(running()) == 2 and running(), "two running runs",
                         interval=0.3)
    (third,) = set(runs) - set(first_two)
    gpus = {store.get_run(r)["extra"]["cuda_visible_devices"] for r in first_two}
    assert gpus == {"0", "1"}
    assert store.get_run(third)["status"] == QUEUED
    # Ray's load report lags the jobs' start: wait until it shows both GPUs taken.
    summary = wait_for(lambda: (s := rayjobs.cluster_summary()).get("gpus_available") == 0 and s,
                       "Ray to report both GPUs in use", interval=0.3)
    assert summary["gpus_total"] == 2 and summary["gpus_available"] == 0
    assert summary["cpus_total"] == 2
    assert summary["jobs_running"] >= 2 and summary["jobs_pending"] + summary["jobs_running"] == 3
    wait_for(lambda: all(store.progress(r) for r in first_two), "both to train", interval=0.3)
    assert store.get_run(third)["status"] == QUEUED

    # Cancel: the run stops by itself and its job ends; its GPU goes to the third run.
    cancelled, other = first_two
    freed = store.get_run(cancelled)["extra"]["cuda_visible_devices"]
    assert launch.cancel(cancelled, ws, wait=liveness.CANCEL_GRACE_S) == CANCELLED
    wait_for(lambda: _job_over(store.get_run(cancelled)["extra"]["ray_job"]),
             "the cancelled run's job to end", interval=0.3)
    wait_for(lambda: third in running(), "the third run to start", interval=0.3)
    assert store.get_run(third)["extra"]["cuda_visible_devices"] == freed
    assert store.get_run(other)["status"] == RUNNING

    # A worker killed from outside: its job fails, and the next refresh marks the run lost.
    os.kill(store.get_run(other)["pid"], signal.SIGKILL)
    wait_for(lambda: other in liveness.refresh(ws) or store.get_run(other)["status"] != RUNNING,
             "the killed run to be lost", interval=0.3)
    lost = store.get_run(other)
    assert lost["status"] == LOST
    assert f"its Ray job {lost['extra']['ray_job']} is FAILED" in lost["error"]

    # Logs: the worker's own log in the workspace; Ray's copy when that is missing.
    wait_for(lambda: store.progress(third), "the third run to train", interval=0.3)
    assert f"run {third}" in logs.log_tail(third, ws=ws)
    ws.run(other).log.unlink()
    assert f"Running entrypoint for job {lost['extra']['ray_job']}" in logs.log_tail(
        other, ws=ws)

    # Delete stops the job at once.
    job = store.get_run(third)["extra"]["ray_job"]
    assert launch.delete(third, ws)
    assert _job_over(job)


def test_sweep_workers_run_as_ray_jobs(ws, dataset, on_ray):
    from tlcore.runs import sweeps

    base = config_for(dataset, 1)
    sweep_id = sweeps.create(ws, base, {"head.pooling": {"choices": ["flatten", "avg"]}}, 2,
                             workers=2)
    submitted = sweeps.start_workers(ws, sweep_id, 2)
    assert all(job.startswith(f"tlcore-sweep-{sweep_id}-") for job in submitted)
    assert sweeps.attributes(ws, sweep_id)["ray_jobs"] == submitted
    # Ray placed both workers: neither waits for a TLCORE_MAX_WORKERS slot (1 here).
    wait_for(lambda: all(_job_over(job) for job in submitted), "the sweep's jobs to end",
             timeout=SWEEP_DEADLINE_S, interval=0.2)
    info = sweeps.summary(ws, sweep_id)
    assert info["status"] == "done" and info["workers"] == []
    runs = [RunStore(ws).get_run(t["run_id"]) for t in info["trials"]]
    assert {r["extra"]["ray_job"] for r in runs} <= set(submitted)
    assert {r["extra"]["executor"] for r in runs} == {"ray"}
    assert all(r["status"] == "completed" for r in runs)
