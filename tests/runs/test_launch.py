"""Workers, queue, cancel, liveness, resume and delete; real worker processes where it matters."""

from __future__ import annotations

import errno
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from tests.support.evalutil import write_keras_zip
from tests.support.runs import RUN_TIMEOUT_S, config_for, wait_for
from tlcore import backend
from tlcore.errors import (
    ConfigError,
    DiskFullError,
    NotFoundError,
    RunStateError,
    StoreError,
    WeightsError,
)
from tlcore.runs import children, device, launch, liveness, logs, queue, slots
from tlcore.runs.executors import local
from tlcore.store import (
    CANCELLED,
    COMPLETED,
    FAILED,
    LOST,
    QUEUED,
    RUNNING,
    STAGE_FEATURES,
    RunStore,
)
from tlcore.vgg16 import backbones
from tlcore.workers import run as worker


def _status(store: RunStore, run_id: str) -> str:
    return store.get_run(run_id)["status"]


def _fake_worker(run_id: str) -> subprocess.Popen:
    """A process that looks like run_id's worker (same command-line words) but never trains."""
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)",
                             "tlcore.workers.run", run_id], start_new_session=True)


def _claim_for(store: RunStore, proc: subprocess.Popen | None, heartbeat: float) -> None:
    run_id = store.claim_next(1, started=heartbeat, heartbeat=heartbeat, pid=None)
    assert run_id is not None
    if proc is not None:
        store.update_run(run_id, pid=proc.pid)



# ---- real workers -----------------------------------------------------------------------
@pytest.mark.slow
def test_queue_order_live_metrics_and_cancel_of_a_queued_run(ws, dataset):
    store = RunStore(ws)
    first = launch.launch(config_for(dataset, epochs=5), name="first", ws=ws)
    second = launch.launch(config_for(dataset, epochs=1), name="second", ws=ws)
    third = launch.launch(config_for(dataset, epochs=1), name="third", ws=ws)
    assert [_status(store, r) for r in (first, second, third)] == [RUNNING, QUEUED, QUEUED]
    assert json.loads((ws.run(first).config).read_text())["train"]["epochs"] == 5

    assert launch.cancel(third, ws) == CANCELLED

    # Metrics are readable here, in another process, while the worker is still training.
    wait_for(lambda: store.metrics(first) and _status(store, first) == RUNNING,
             "an epoch row of the running run")
    progress = store.progress(first)
    assert progress["batches"] == 3 and progress["epochs"] == 5
    assert _status(store, second) == QUEUED

    # Nobody calls refresh: the first worker starts the second when it ends.
    wait_for(lambda: _status(store, second) in (COMPLETED, FAILED), "the queued run to finish")
    runs = {r: store.get_run(r) for r in (first, second, third)}
    assert runs[first]["status"] == runs[second]["status"] == COMPLETED
    assert runs[first]["ended"] <= runs[second]["started"]
    assert [m["epoch"] for m in store.metrics(first)] == [1, 2, 3, 4, 5]
    assert runs[third]["status"] == CANCELLED and runs[third]["started"] is None
    assert not ws.run(third).log.exists()
    assert "completed" in logs.log_tail(first, ws=ws)


@pytest.mark.slow
def test_cancel_of_a_running_run_stops_it_promptly(ws, dataset):
    store = RunStore(ws)
    run_id = launch.launch(config_for(dataset, epochs=200), ws=ws)
    wait_for(lambda: store.progress(run_id), "the first batch")
    pid = store.get_run(run_id)["pid"]
    start = time.monotonic()
    assert launch.cancel(run_id, ws, wait=liveness.CANCEL_GRACE_S) == CANCELLED
    assert time.monotonic() - start < 10
    run = store.get_run(run_id)
    assert run["error"] is None  # it stopped by itself, no kill needed
    wait_for(lambda: not local.pid_alive(pid, run_id), "the worker to exit", timeout=10)
    assert len(store.metrics(run_id)) < 200
    assert f"Run {run_id} was cancelled" in logs.log_tail(run_id, ws=ws)


@pytest.mark.slow
def test_kill_9_is_detected_and_resume_continues_from_the_checkpoint(ws, dataset,
                                                                     monkeypatch):
    monkeypatch.setenv("TLCORE_CHECKPOINT_INTERVAL_S", "0")  # a checkpoint after every epoch
    store = RunStore(ws)
    run_id = launch.launch(config_for(dataset, epochs=8), ws=ws)
    checkpoint = ws.run(run_id).dir / "checkpoint" / "state.json"
    wait_for(checkpoint.exists, "the first epoch checkpoint")
    pid = store.get_run(run_id)["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not local.pid_alive(pid, run_id), "the worker to die", timeout=10)

    assert liveness.refresh(ws) == [run_id]
    run = store.get_run(run_id)
    assert run["status"] == LOST
    assert f"pid {pid}" in run["error"] and "resume" in run["error"]
    done = json.loads(checkpoint.read_text())["epoch"]
    assert 1 <= done < 8
    kept = store.metrics(run_id)[:done]

    launch.resume(run_id, ws)
    assert store.get_run(run_id)["extra"]["resume"] is True
    wait_for(lambda: _status(store, run_id) in (COMPLETED, FAILED), "the resumed run")
    run = store.get_run(run_id)
    assert run["status"] == COMPLETED, run["error"]
    assert [m["epoch"] for m in store.metrics(run_id)] == list(range(1, 9))
    assert store.metrics(run_id)[:done] == kept
    assert (f"resuming after epoch {done} (phase 1), optimizer state restored"
            in logs.log_tail(run_id, lines=200, ws=ws))


@pytest.mark.slow
def test_a_failing_worker_stores_its_error(ws):
    store = RunStore(ws)
    run_id = store.create_run(config_for("vanished"))  # as if deleted after launch
    assert queue.start_queued(ws) == [run_id]
    wait_for(lambda: _status(store, run_id) == FAILED, "the run to fail", timeout=120)
    run = store.get_run(run_id)
    assert run["error"].startswith("No dataset named 'vanished'")
    assert "Traceback (last lines):" in run["error"] and run["ended"] is not None
    assert "NotFoundError" in logs.log_tail(run_id, ws=ws)


@pytest.mark.slow
def test_a_worker_on_a_full_disk_records_why_it_failed(ws, dataset):
    store = RunStore(ws)
    run_id = store.create_run(config_for(dataset))
    # Started by hand with a reserve no disk has: every large write is refused.
    env = {**children.worker_env(ws), "TLCORE_MIN_FREE_MB": "1e12"}
    proc = subprocess.run([sys.executable, "-m", "tlcore.workers.run", run_id], env=env,
                          timeout=RUN_TIMEOUT_S)
    assert proc.returncode == 1
    run = store.get_run(run_id)
    assert run["status"] == FAILED
    assert run["error"].startswith("disk full: ") and " MB free in " in run["error"]
    assert [p.name for p in ws.run(run_id).dir.iterdir()] == ["log.txt"]
    assert liveness.refresh(ws) == [] and store.get_run(run_id)["status"] == FAILED


@pytest.mark.slow
def test_device_info_runs_in_a_subprocess_and_is_cached(ws):
    cached = ws.cache_dir / device.DEVICE_CACHE_FILE
    cached.write_text(json.dumps({"device": "from cache", "gpus": [], "mixed_precision": False}))
    assert device.device_info(ws)["device"] == "from cache"
    info = device.device_info(ws, refresh=True)
    assert info == {"device": "CPU", "gpus": [], "mixed_precision": False,
                    "backend": "tensorflow", "backends": backend.available()}
    assert json.loads(cached.read_text()) == info


# ---- no TensorFlow: store-level and fake workers --------------------------------------------
def test_launch_refuses_what_cannot_run(ws, dataset, tmp_path, monkeypatch):
    store = RunStore(ws)
    with pytest.raises(NotFoundError, match="No dataset named 'nope'"):
        launch.launch(config_for("nope"), ws=ws)
    with pytest.raises(WeightsError, match="does not exist"):
        launch.launch(config_for(dataset, base={"weights": str(tmp_path / "missing.h5")}), ws=ws)
    queued = store.create_run(config_for(dataset))
    with pytest.raises(RunStateError, match=f"run:{queued}.*queued"):
        launch.launch(config_for(dataset, base={"weights": f"run:{queued}"}), ws=ws)
    monkeypatch.setenv(slots.ENV_MAX_WORKERS, "zero")
    with pytest.raises(ConfigError, match="TLCORE_MAX_WORKERS"):
        launch.launch(config_for(dataset), ws=ws)
    assert [r["id"] for r in store.list_runs()] == [queued]


def test_launch_refuses_a_model_over_the_parameter_limit(ws, dataset, monkeypatch):
    huge = config_for(dataset, image_size=512, head={"pooling": "flatten", "dense": [8192]})
    with pytest.raises(ConfigError, match=r"would have 1,088,\d{3},\d{3} parameters; the limit "
                                          r"is 200,000,000 \(\$TLCORE_MAX_PARAMS\)"):
        launch.launch(huge, ws=ws)
    monkeypatch.setenv(backbones.ENV_MAX_PARAMS, "1e6")
    with pytest.raises(ConfigError, match="the limit is 1,000,000"):
        launch.launch(config_for(dataset), ws=ws)
    assert RunStore(ws).list_runs() == []


def test_launch_refuses_a_base_run_whose_model_is_missing_or_truncated(ws, dataset):
    store = RunStore(ws)
    source = store.create_run(config_for(dataset), status=COMPLETED)
    config = config_for(dataset, base={"weights": f"run:{source}"})
    with pytest.raises(WeightsError, match=f"run:{source}' cannot be used: runs/{source}/"
                                           "model.keras does not exist"):
        launch.launch(config, ws=ws)
    write_keras_zip(ws.run(source).model, truncated=True)
    with pytest.raises(WeightsError) as info:
        launch.launch(config, ws=ws)
    assert (f"runs/{source}/model.keras is unreadable (truncated or corrupt): "
            in str(info.value)) and str(info.value).endswith("train the run again.")
    write_keras_zip(ws.run(source).model)
    assert ws.run(source).check_model() == ws.run(source).model
    assert [r["id"] for r in store.list_runs()] == [source]


def test_launch_refuses_and_the_queue_waits_while_the_disk_is_full(ws, dataset, full_disk):
    with pytest.raises(DiskFullError, match=r"^disk full: 5 MB free in .*TLCORE_MIN_FREE_MB"):
        launch.launch(config_for(dataset), ws=ws)
    store = RunStore(ws)
    queued = store.create_run(config_for(dataset))
    assert queue.start_queued(ws) == [] and store.get_run(queued)["status"] == QUEUED


def test_reads_work_when_the_disk_is_too_full_for_sqlite(ws, monkeypatch):
    store = RunStore(ws)
    running = store.create_run(config_for("d"))
    queued = store.create_run(config_for("d"))
    proc = _fake_worker(running)
    try:
        _claim_for(store, proc, heartbeat=time.time())
        real_connect = sqlite3.connect

        class NoRoomForWal(sqlite3.Connection):
            """What a full disk does to a normal connection: no room for its -shm file."""

            def execute(self, *args, **kwargs):
                exc = sqlite3.OperationalError("disk I/O error")
                exc.sqlite_errorname = "SQLITE_IOERR_SHMSIZE"
                raise exc

        def connect(database, *args, uri=False, **kwargs):
            if uri:  # the read-only fallback reads the database file alone
                return real_connect(database, *args, uri=uri, **kwargs)
            return real_connect(database, *args, factory=NoRoomForWal, **kwargs)

        monkeypatch.setattr(sqlite3, "connect", connect)
        assert [r["id"] for r in RunStore(ws).list_runs()] == [running, queued]
        assert liveness.refresh(ws) == []  # nothing to change, so nothing is written
        details = logs.get_run_details(running, ws)
        assert details["status"] == RUNNING and details["heartbeat_age_s"] < 60
        with pytest.raises(StoreError, match="cannot be read or written: disk I/O error"):
            store.update_run(running, name="renamed")
    finally:
        proc.kill()
        proc.wait()


def test_a_stopped_worker_is_killed_marked_lost_and_frees_its_slot(ws, monkeypatch):
    store = RunStore(ws)
    hung = store.create_run(config_for("d"))
    waiting = store.create_run(config_for("d"))
    proc = _fake_worker(hung)
    spawned = []

    def spawn(run_id, ws, backend_name, gpu):
        spawned.append(_fake_worker(run_id))
        return spawned[-1].pid

    monkeypatch.setattr(local, "_spawn", spawn)
    monkeypatch.setenv(liveness.ENV_HEARTBEAT_TIMEOUT, "2")
    try:
        _claim_for(store, proc, heartbeat=time.time() - 3)
        os.kill(proc.pid, signal.SIGSTOP)
        # The frozen-feature stage is allowed twice as long between beats.
        store.set_progress(hung, phase=1, epoch=1, epochs=1, batch=0, batches=9, eta_s=None,
                           stage=STAGE_FEATURES)
        store.update_run(hung, heartbeat=time.time() - 3)
        assert liveness.refresh(ws) == [] and store.get_run(hung)["status"] == RUNNING
        store.update_run(hung, heartbeat=time.time() - 5)

        assert liveness.refresh(ws) == [hung]
        run = store.get_run(hung)
        assert run["status"] == LOST and run["ended"] is not None
        assert run["error"].startswith(f"No heartbeat for 5 s from the worker (pid {proc.pid}; "
                                       "limit 4 s, $TLCORE_HEARTBEAT_TIMEOUT_S)")
        assert proc.wait(timeout=10) == -signal.SIGKILL
        assert store.get_run(waiting)["status"] == RUNNING
        assert store.get_run(waiting)["pid"] == spawned[0].pid
    finally:
        for p in (proc, *spawned):
            p.kill()
            p.wait()


def test_heartbeat_age_timeout_setting_and_warning(ws, monkeypatch):
    store = RunStore(ws)
    run_id = store.create_run(config_for("d"))
    assert liveness.heartbeat_age(store.get_run(run_id)) is None  # queued: nothing to watch
    assert liveness.heartbeat_timeout() == 120 and liveness.heartbeat_timeout(STAGE_FEATURES) == 240
    store.update_run(run_id, status=RUNNING, heartbeat=time.time() - 2)
    run = store.get_run(run_id)
    assert 2 <= liveness.heartbeat_age(run) < 10 and liveness.silence_warning(run) is None
    # A warning comes once the worker has been silent for half its stage's limit.
    store.update_run(run_id, heartbeat=time.time() - 40)
    assert liveness.silence_warning(store.get_run(run_id)) is None
    store.update_run(run_id, heartbeat=time.time() - 70)
    assert liveness.silence_warning(store.get_run(run_id)) == (
        "No sign of life from the worker for 70 s; it is marked lost after 120 s.")
    assert liveness.silence_warning(store.get_run(run_id), STAGE_FEATURES) is None
    store.update_run(run_id, heartbeat=time.time() - 130)
    assert liveness.silence_warning(store.get_run(run_id), STAGE_FEATURES).endswith("after 240 s.")
    for bad in ("0", "-5", "soon", "inf"):
        monkeypatch.setenv(liveness.ENV_HEARTBEAT_TIMEOUT, bad)
        with pytest.raises(ConfigError, match="TLCORE_HEARTBEAT_TIMEOUT_S must be a positive"):
            liveness.heartbeat_timeout()


def test_delete_and_cache_clear_remove_orphaned_run_folders(ws):
    store = RunStore(ws)
    kept = store.create_run(config_for("d"))
    ws.run(kept).dir.mkdir(parents=True)
    # Rows gone, folders left: as after restoring an older copy of the database.
    orphans = [store.create_run(config_for("d")) for _ in range(2)]
    for run_id in orphans:
        write_keras_zip(ws.run(run_id).model)
        store.delete_run(run_id)
    (ws.runs_dir / "Not-A-Run").mkdir()
    # A folder written this moment is a launch whose row is on its way, not a leftover.
    assert launch.orphaned_runs(ws) == []
    long_ago = time.time() - 2 * launch.ORPHAN_GRACE_S
    for run_id in orphans:
        os.utime(ws.run(run_id).dir, (long_ago, long_ago))
    assert launch.orphaned_runs(ws) == sorted(orphans)

    assert launch.delete(orphans[0], ws) is False
    assert not ws.run(orphans[0]).dir.exists()
    with pytest.raises(NotFoundError, match="No run with id"):
        launch.delete(orphans[0], ws)
    removed = launch.remove_orphaned_runs(ws)
    assert removed["folders"] == 1 and removed["bytes"] > 4096
    assert sorted(p.name for p in ws.runs_dir.iterdir()) == sorted([kept, "Not-A-Run"])
    assert launch.delete(kept, ws) is True and not ws.run(kept).dir.exists()


def test_claims_never_exceed_the_limit(ws):
    store = RunStore(ws)
    for _ in range(4):
        store.create_run(config_for("d"))
    claimed: list[str | None] = []
    threads = [threading.Thread(target=lambda: claimed.append(store.claim_next(2)))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = [c for c in claimed if c]
    assert len(got) == 2 and len(set(got)) == 2
    first_two = [r["id"] for r in store.list_runs()][:2]
    assert sorted(got) == sorted(first_two)  # oldest first


def test_refresh_marks_dead_and_recycled_workers_lost(ws):
    store = RunStore(ws)
    never = store.create_run(config_for("d"))
    recycled = store.create_run(config_for("d"))
    _claim_for(store, None, heartbeat=time.time() - 60)  # launcher died before spawning
    store.update_run(recycled, status=RUNNING, pid=os.getpid(), heartbeat=time.time())
    assert sorted(liveness.refresh(ws)) == sorted([never, recycled])
    assert "did not start" in store.get_run(never)["error"]
    assert store.get_run(recycled)["status"] == LOST  # this pid is alive but is no worker


def test_a_worker_that_ignores_cancel_is_killed_after_the_grace_period(ws, monkeypatch):
    store = RunStore(ws)
    run_id = store.create_run(config_for("d"))
    proc = _fake_worker(run_id)
    try:
        _claim_for(store, proc, heartbeat=time.time())
        assert local.pid_alive(proc.pid, run_id)
        monkeypatch.setattr(liveness, "CANCEL_GRACE_S", 0.5)
        assert launch.cancel(run_id, ws, wait=10) == CANCELLED
        assert proc.wait(timeout=10) == -signal.SIGKILL
        assert "killed" in store.get_run(run_id)["error"]
    finally:
        proc.kill()
        proc.wait()


def test_delete_stops_and_removes_runs(ws):
    store = RunStore(ws)
    running = store.create_run(config_for("d"))
    queued = store.create_run(config_for("d"))
    for run_id in (running, queued):
        ws.run(run_id).dir.mkdir(parents=True)
        ws.run(run_id).log.write_text("x\n")
    proc = _fake_worker(running)
    try:
        _claim_for(store, proc, heartbeat=time.time())
        launch.delete(running, ws)
        assert proc.wait(timeout=10) == -signal.SIGKILL
        launch.delete(queued, ws)
    finally:
        proc.kill()
        proc.wait()
    assert store.list_runs() == []
    assert not ws.run(running).dir.exists() and not ws.run(queued).dir.exists()
    with pytest.raises(NotFoundError):
        launch.delete(running, ws)


def test_resume_and_cancel_check_the_status(ws):
    store = RunStore(ws)
    done = store.create_run(config_for("d"), status=COMPLETED)
    with pytest.raises(RunStateError, match="can be resumed. Received: .* completed"):
        launch.resume(done, ws)
    with pytest.raises(RunStateError, match="can be cancelled. Received: .* completed"):
        launch.cancel(done, ws)
    older = store.create_run(config_for("d"))
    failed = store.create_run(config_for("d"), status=FAILED)
    store.update_run(failed, error="boom", cancel_requested=1)
    proc = _fake_worker(older)  # keeps the only slot busy so both stay queued
    try:
        _claim_for(store, proc, heartbeat=time.time())
        newer = store.create_run(config_for("d"))
        launch.resume(failed, ws)
        queue = [r["id"] for r in store.list_runs(statuses=(QUEUED,))]
        assert queue == [newer, failed]  # a resumed run goes to the back of the queue
        run = store.get_run(failed)
        assert run["error"] is None and run["cancel_requested"] is False
    finally:
        proc.kill()
        proc.wait()


def test_log_tail(ws):
    store = RunStore(ws)
    run_id = store.create_run(config_for("d"))
    assert logs.log_tail(run_id, ws=ws) == ""
    ws.run(run_id).dir.mkdir(parents=True)
    ws.run(run_id).log.write_text("".join(f"line {i}\n" for i in range(100)))
    assert logs.log_tail(run_id, lines=3, ws=ws) == "line 97\nline 98\nline 99"


def test_failure_message_hints_at_out_of_memory():
    try:
        raise RuntimeError("OOM when allocating tensor with shape[64,512,28,28]")
    except RuntimeError as exc:
        message = worker.failure_message(exc, {"train": {"batch_size": 64}, "image_size": 224})
    assert message.startswith("Out of memory. Use a smaller train.batch_size (now 64) or a "
                              "smaller image_size (now 224)")
    assert "Traceback (last lines):" in message and "test_launch.py" in message
    plain = worker.failure_message(ValueError("bad value"))
    assert plain.startswith("ValueError: bad value") and "Out of memory" not in plain


def test_failure_message_of_a_full_disk(ws, full_disk):
    try:
        raise OSError(errno.ENOSPC, "No space left on device", "history.csv.tmp1")
    except OSError as exc:
        message = worker.failure_message(exc, {}, ws)
    assert message.startswith(f"disk full: 5 MB free in {ws.root} (writes keep 200 MB free")
    assert "Traceback (last lines):" in message
