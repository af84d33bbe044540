"""Warm workers: a process with Keras loaded, handed one run of its backend after another."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.support.runs import config_for, wait_for
from tlcore import data as datasets_api
from tlcore import processes
from tlcore.data.demo import write_class_folders
from tlcore.runs import children, launch, liveness, warm
from tlcore.runs.executors import local
from tlcore.store import COMPLETED, LOST, RUNNING, RunStore

START_TIMEOUT_S = 120


@pytest.fixture
def dataset(ws, tmp_path):
    folder = write_class_folders(tmp_path / "src", ("disc", "square"), per_class=10, size=40)
    datasets_api.import_dataset(folder, "shapes", ws=ws)
    return "shapes"


def test_a_run_is_handed_to_one_idle_warm_worker_only(ws):
    # A stand-in with a warm worker's command line: the hand-off needs no TensorFlow.
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)",
                             "tlcore.workers.run", warm.WARM_FLAG], start_new_session=True)
    try:
        warm.warm_idle_file(ws, proc.pid).write_text("tensorflow")
        assert warm.warm_workers(ws) == {proc.pid: True}
        assert warm.hand_to_warm("cccccccccccc", ws, "jax", None) is None  # another backend's run
        assert warm.hand_to_warm("aaaaaaaaaaaa", ws, "tensorflow", None) == proc.pid
        assert warm.hand_to_warm("bbbbbbbbbbbb", ws, "tensorflow", None) is None  # inbox taken
        assert warm.warm_inbox_file(ws, proc.pid).read_text() == "aaaaaaaaaaaa"
        assert local.pid_alive(proc.pid, "aaaaaaaaaaaa", ws)
        assert not local.pid_alive(proc.pid, "bbbbbbbbbbbb", ws)
    finally:
        proc.kill()
        proc.wait()
    assert warm.warm_workers(ws) == {}  # a dead worker's registration is dropped
    assert list(ws.workers_dir.iterdir()) == []


def _warm_worker(ws, monkeypatch, idle_s: str = "60") -> int:
    monkeypatch.setenv("TLCORE_WARM_WORKERS", "1")
    monkeypatch.setenv("TLCORE_WARM_IDLE_S", idle_s)
    pid = warm.ensure_warm(ws)
    assert pid and warm.ensure_warm(ws) is None  # one is starting: no second
    wait_for(lambda: warm.warm_workers(ws).get(pid), "the warm worker", START_TIMEOUT_S)
    return pid


@pytest.mark.slow
def test_a_warm_worker_trains_runs_in_turn_then_leaves_when_idle(ws, dataset, monkeypatch):
    pid = _warm_worker(ws, monkeypatch, idle_s="4")
    store = RunStore(ws)
    try:
        for _ in range(2):
            run_id = launch.launch(config_for(dataset, epochs=2), ws=ws)
            # The launch hands it over, or the worker, idle again, takes it itself a moment
            # later: either way, not a new process.
            assert wait_for(lambda r=run_id: store.get_run(r)["pid"], "the run's worker") == pid
            wait_for(lambda r=run_id: store.get_run(r)["status"] != RUNNING, "the run",
                     START_TIMEOUT_S)
            run = store.get_run(run_id)
            assert run["status"] == COMPLETED, run["error"]
            assert len(store.metrics(run_id)) == 2
            wait_for(lambda: warm.warm_workers(ws).get(pid), "the worker to be idle again")
        # No run for TLCORE_WARM_IDLE_S: the worker leaves by itself.
        wait_for(lambda: not processes.alive(pid), "the idle worker to leave", 30)
        children.reap()
        assert warm.warm_workers(ws) == {}
    finally:
        warm.stop_warm(ws)


@pytest.mark.slow
def test_killing_a_warm_worker_loses_its_run(ws, dataset, monkeypatch):
    pid = _warm_worker(ws, monkeypatch)
    store = RunStore(ws)
    try:
        run_id = launch.launch(config_for(dataset, epochs=10000), ws=ws)
        wait_for(lambda: store.metrics(run_id), "the first epoch", START_TIMEOUT_S)
        assert liveness.refresh(ws) == []  # alive and beating: left alone
        os.killpg(pid, signal.SIGKILL)
        wait_for(lambda: not processes.alive(pid) or children.reap(), "the worker to die", 10)
        time.sleep(0.2)
        assert liveness.refresh(ws) == [run_id]
        run = store.get_run(run_id)
        assert run["status"] == LOST and f"pid {pid}" in run["error"]
    finally:
        warm.stop_warm(ws)
    assert warm.warm_workers(ws) == {}
