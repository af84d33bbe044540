"""Races of the run lifecycle: processes and threads racing on a real store (SQLite, PostgreSQL)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.support.runs import config_for, wait_for
from tlcore import data as datasets_api
from tlcore.config import RunConfig
from tlcore.data.demo import write_class_folders
from tlcore.errors import ConfigError, QuotaError, RunStateError
from tlcore.runs import children, launch, liveness, queue, sweeps, warm
from tlcore.runs.executors import local
from tlcore.store import COMPLETED, FAILED, LOST, QUEUED, RUNNING, RunStore

ALICE = "alice@example.com"
START_TIMEOUT_S = 240
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def store(request, ws) -> RunStore:
    if request.param == "postgres":
        request.getfixturevalue("pg_url")
    return RunStore(ws)


@pytest.fixture
def dataset(ws, tmp_path):
    folder = write_class_folders(tmp_path / "src", ("disc", "square"), per_class=8, size=32)
    datasets_api.import_dataset(folder, "shapes", ws=ws)
    return "shapes"


def _sweep(ws, dataset: str, trials: int, owner: str | None = None) -> str:
    base = RunConfig.from_dict({
        "dataset": dataset, "image_size": 32, "base": {"weights": "none"},
        "head": {"dense": [4], "dropout": 0.0},
        "train": {"epochs": 1, "batch_size": 8, "early_stopping_patience": 0}})
    return sweeps.create(ws, base, {"head.dropout": {"low": 0.0, "high": 0.5}}, trials,
                         owner=owner)


def _stand_in(run_id: str) -> subprocess.Popen:
    """A live process with a run worker's command line, holding `run_id`'s slot."""
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)",
                             "tlcore.workers.run", run_id], start_new_session=True)


def _hold_the_slot(store: RunStore) -> tuple[str, subprocess.Popen]:
    run_id = store.create_run(config_for("shapes"))
    proc = _stand_in(run_id)
    now = time.time()
    assert store.claim_next(1, started=now, heartbeat=now, pid=proc.pid) == run_id
    return run_id, proc


def _sweep_workers(ws, sweep_id: str, count: int) -> list[subprocess.Popen]:
    """Sweep workers started by hand (as `start_workers` does, without its limit)."""
    log = sweeps.log_file(ws, sweep_id)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        return [subprocess.Popen([sys.executable, "-m", "tlcore.workers.sweep", sweep_id],
                                 stdout=out, stderr=subprocess.STDOUT,
                                 env=children.worker_env(ws), start_new_session=True)
                for _ in range(count)]


def _loads_tensorflow(pid: int) -> bool:
    return "tensorflow" in Path(f"/proc/{pid}/maps").read_text()


def _stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


# ---- the warm hand-off ------------------------------------------------------------------
READER = """
import os, sys, time
from pathlib import Path
workers, count = Path(sys.argv[1]), int(sys.argv[2])
pid = os.getpid()
(workers / f"{pid}.idle").write_text("tensorflow")
inbox = workers / f"{pid}.run"
print(pid, flush=True)
seen = empty = 0
while seen < count:
    if inbox.exists():
        try:
            text = inbox.read_text()
        except FileNotFoundError:
            continue
        seen += 1
        empty += not text.strip()
        inbox.unlink()
print(seen, empty, flush=True)
"""


def test_a_polling_warm_worker_never_reads_its_inbox_empty(ws):
    handoffs = 400
    # The stand-in polls its inbox without pause: it sees the inbox the moment it appears.
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(ws.workers_dir),
         str(handoffs), "tlcore.workers.run", warm.WARM_FLAG],
        stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        pid = int(reader.stdout.readline())
        for i in range(handoffs):
            run_id = f"{i:012x}"
            wait_for(lambda r=run_id: warm.hand_to_warm(r, ws, "tensorflow", None) == pid,
                     "the inbox to be free", timeout=30, interval=0)
        seen, empty = map(int, reader.stdout.readline().split())
    finally:
        _stop([reader])
    assert (seen, empty) == (handoffs, 0)
    assert not list(ws.workers_dir.glob("*.tmp"))


# ---- the per-user limit --------------------------------------------------------------------
def _race(count: int, action) -> list[BaseException | object]:
    """Run `action()` in `count` threads released at once; each one's result or error."""
    barrier = threading.Barrier(count)
    results: list[BaseException | object] = [None] * count

    def one(i: int) -> None:
        barrier.wait()
        try:
            results[i] = action()
        except Exception as exc:  # collected: the test looks at every outcome
            results[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_parallel_resumes_never_pass_the_owners_limit(ws, store, monkeypatch):
    monkeypatch.setattr(queue, "start_queued", lambda ws=None: [])  # the queue is the point
    monkeypatch.setenv("TLCORE_MAX_RUNS_PER_USER", "1")
    failed = [store.create_run(config_for("d"), status=FAILED, owner=ALICE) for _ in range(3)]
    ids = iter(failed)
    lock = threading.Lock()

    def resume_one() -> str:
        with lock:
            run_id = next(ids)
        launch.resume(run_id, ws)
        return run_id

    results = _race(3, resume_one)
    accepted = [r for r in results if isinstance(r, str)]
    assert len(accepted) == 1, results
    assert all(isinstance(r, QuotaError) for r in results if not isinstance(r, str))
    assert store.count_active(ALICE) == 1
    assert [r["id"] for r in store.list_runs(statuses=(QUEUED,))] == accepted


def test_runs_created_running_count_the_owners_limit(store):
    store.create_run(config_for("d"), owner=ALICE)  # queued: one of her two places

    def create() -> str | None:
        now = time.time()
        return store.create_running(config_for("d"), 10, owner=ALICE, max_active=2, pid=1,
                                    started=now, heartbeat=now)

    made = [r for r in _race(4, create) if r is not None]
    assert len(made) == 1 and isinstance(made[0], str)
    assert store.count_active(ALICE) == 2
    assert store.create_running(config_for("d"), 10, owner="bob@example.com", max_active=2)


def test_a_requeue_counts_the_owners_limit_in_its_transaction(store):
    failed = [store.create_run(config_for("d"), status=FAILED, owner=ALICE) for _ in range(4)]
    ids = iter(failed)
    lock = threading.Lock()

    def requeue() -> bool:
        with lock:
            run_id = next(ids)
        return store.requeue(run_id, (FAILED,), max_active=2)

    assert sorted(_race(4, requeue)) == [False, False, True, True]
    assert store.count_active(ALICE) == 2


def test_a_sweep_trial_waits_for_room_under_its_owners_limit(ws, dataset, monkeypatch):
    from tlcore.workers import sweep as sweepworker

    monkeypatch.setattr(queue, "start_queued", lambda ws=None: [])  # her queued run waits
    monkeypatch.setenv("TLCORE_MAX_WORKERS", "4")
    monkeypatch.setenv("TLCORE_MAX_RUNS_PER_USER", "1")
    store = RunStore(ws)
    sweep_id = _sweep(ws, dataset, trials=1, owner=ALICE)
    queued = store.create_run(config_for(dataset), owner=ALICE)  # her only place
    study, attrs = sweeps.load(ws, sweep_id)
    trial = study.ask({"head.dropout": sweeps.parse_space(
        attrs["space"], RunConfig.from_dict(attrs["base"]))["head.dropout"].distribution()})
    started: list[str | None] = []
    worker = threading.Thread(target=lambda: started.append(sweepworker._start_run(
        ws, sweep_id, study, trial, config_for(dataset), attrs)))
    worker.start()
    time.sleep(1.5)
    assert started == [] and store.count_active(ALICE) == 1  # waiting, not over the limit
    store.transition(queued, (QUEUED,), status=COMPLETED)  # her place is free again
    worker.join(timeout=30)
    assert len(started) == 1 and started[0] is not None
    run = store.get_run(started[0])
    assert run["status"] == RUNNING and run["owner"] == ALICE and run["pid"] == os.getpid()
    trial_file = local.trial_file(ws, os.getpid())
    assert trial_file.read_text() == run["id"]  # its liveness record names it
    trial_file.unlink()


# ---- sweep workers -------------------------------------------------------------------------
def test_more_sweep_workers_than_free_slots_are_refused_in_one_line(ws, dataset):
    with pytest.raises(ConfigError) as info:
        sweeps.create(ws, RunConfig.from_dict({"dataset": dataset, "image_size": 32,
                                               "base": {"weights": "none"}}),
                      {"head.dropout": {"low": 0.0, "high": 0.5}}, 3, workers=1000)
    assert str(info.value) == ("workers must be at most 1: 1 of 1 worker slots are free "
                               "($TLCORE_MAX_WORKERS, GPUs). Received: workers=1000")
    assert sweeps.list_sweeps(ws) == []
    sweep_id = _sweep(ws, dataset, trials=3)
    with pytest.raises(ConfigError, match=r"^workers must be at most 1: .*workers=2$"):
        sweeps.start_workers(ws, sweep_id, 2)
    assert sweeps.sweep_workers(sweep_id, ws) == []


@pytest.mark.slow
def test_a_sweep_worker_waits_for_a_slot_before_importing_keras(ws, dataset, monkeypatch):
    monkeypatch.setenv(liveness.ENV_HEARTBEAT_TIMEOUT, "3600")  # the stand-in never beats
    store = RunStore(ws)
    held, stand_in = _hold_the_slot(store)
    sweep_id = _sweep(ws, dataset, trials=1)
    (worker,) = _sweep_workers(ws, sweep_id, 1)
    try:
        wait_for(lambda: "waiting for a free worker slot" in sweeps.log_file(
            ws, sweep_id).read_text(), "the worker to wait", START_TIMEOUT_S)
        time.sleep(1.0)
        assert worker.poll() is None and not _loads_tensorflow(worker.pid)
        assert len(store.list_runs()) == 1  # no trial run yet
    finally:
        sweeps.cancel(ws, sweep_id)
        _stop([worker, stand_in])
    assert store.get_run(held)["status"] == RUNNING


def _cpu_ticks(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])


def _all_waiting(procs: list[subprocess.Popen]) -> bool:
    """Whether every process is alive and nearly idle (polling, not importing) for 1 s."""
    before = [_cpu_ticks(p.pid) for p in procs]
    time.sleep(1.0)
    tick = os.sysconf("SC_CLK_TCK")
    return all(p.poll() is None for p in procs) and all(
        _cpu_ticks(p.pid) - b < 0.3 * tick for p, b in zip(procs, before, strict=True))


@pytest.mark.slow
def test_sweep_workers_racing_for_one_slot_train_every_trial(ws, dataset, monkeypatch):
    """Three workers, one slot, three trials: every trial trains; none fails for want of a slot.

    Meanwhile the dashboard's refresh runs without pause: no trial run is ever seen
    running without its liveness record (which would turn it lost).
    """
    monkeypatch.setenv(liveness.ENV_HEARTBEAT_TIMEOUT, "3600")  # the stand-in never beats
    store = RunStore(ws)
    held, stand_in = _hold_the_slot(store)
    sweep_id = _sweep(ws, dataset, trials=3)
    workers = _sweep_workers(ws, sweep_id, 3)
    lost: set[str] = set()
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            lost.update(r for r in liveness.refresh(ws)
                        if store.get_run(r)["status"] == LOST and r != held)
            time.sleep(0.01)

    try:
        wait_for(lambda: _all_waiting(workers), "every worker to wait for the slot",
                 START_TIMEOUT_S, interval=0)
        watcher = threading.Thread(target=watch)
        watcher.start()
        stand_in.kill()  # the slot is free: all three see it at once
        store.transition(held, (RUNNING,), status=COMPLETED)
        for worker in workers:
            worker.wait(timeout=START_TIMEOUT_S * 2)
    finally:
        stop.set()
        _stop([*workers, stand_in])
    watcher.join()
    shown = sweeps.summary(ws, sweep_id)
    assert not lost
    assert [t["state"] for t in shown["trials"]] == ["complete"] * 3, shown["trials"]
    assert shown["status"] == "done" and shown["finished"] == 3
    trained = [store.get_run(t["run_id"]) for t in shown["trials"]]
    assert [r["status"] for r in trained] == [COMPLETED] * 3


# ---- warm workers and their owner -------------------------------------------------------
OWNER = """
import sys
from tlcore.runs import warm
print(warm.ensure_warm(), flush=True)
sys.stdin.read()
"""


@pytest.mark.slow
def test_a_warm_worker_leaves_when_its_dashboard_is_gone(ws, monkeypatch):
    monkeypatch.setenv("TLCORE_WARM_WORKERS", "1")
    monkeypatch.setenv("TLCORE_WARM_IDLE_S", "600")
    owner = subprocess.Popen([sys.executable, "-c", OWNER], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, env=children.worker_env(ws))
    pid = int(owner.stdout.readline())
    try:
        wait_for(lambda: warm.warm_workers(ws).get(pid), "the warm worker", START_TIMEOUT_S)
        owner.stdin.close()  # the dashboard ends
        owner.wait(timeout=30)
        gone = time.monotonic()
        wait_for(lambda: not os.path.exists(f"/proc/{pid}") or not warm.is_warm_worker(pid),
                 "the warm worker to leave", 15)
        assert time.monotonic() - gone < 15  # far within its 600 s idle timeout
    finally:
        if warm.is_warm_worker(pid):
            children.kill(pid)
        _stop([owner])
    assert warm.warm_workers(ws) == {}


def test_a_launched_runs_config_exists_before_its_row(ws, dataset, monkeypatch):
    monkeypatch.setattr(queue, "start_queued", lambda ws=None: [])
    seen = []
    real = RunStore.create_runs

    def create_runs(self, runs, **kwargs):
        # The moment a row exists a worker (or a Ray node) may claim it and read its config.
        seen.append([ws.run(run_id).config.is_file() for run_id in kwargs["ids"]])
        return real(self, runs, **kwargs)

    monkeypatch.setattr(RunStore, "create_runs", create_runs)
    ids = launch.launch_many([(config_for(dataset), None), (config_for(dataset), None)], ws=ws)
    assert seen == [[True, True]]
    # A launch that loses the last places at the last moment leaves no folder behind.
    monkeypatch.setattr(RunStore, "create_runs", lambda self, runs, **kwargs: None)
    with pytest.raises(RunStateError, match="last free place in the queue was taken"):
        launch.launch(config_for(dataset), ws=ws)
    assert sorted(p.name for p in ws.runs_dir.iterdir()) == sorted(ids)
