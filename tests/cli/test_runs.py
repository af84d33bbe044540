"""`python -m tlcore train|runs|device` as a user runs them (subprocesses)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.evalutil import write_keras_zip
from tlcore import data
from tlcore.config import RunConfig
from tlcore.data.demo import write_class_folders
from tlcore.runs import launch
from tlcore.store import COMPLETED, LOST, QUEUED, RUNNING, RunStore

ROOT = Path(__file__).resolve().parents[2]


def tlcore(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tlcore", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=timeout)


@pytest.fixture
def config_file(ws, tmp_path) -> Path:
    folder = write_class_folders(tmp_path / "src", ("a", "b", "c"), per_class=10, size=40)
    data.import_dataset(folder, "shapes", ws=ws)
    path = tmp_path / "run.json"
    path.write_text(json.dumps({
        "dataset": "shapes", "image_size": 32, "base": {"weights": "none"},
        "head": {"dense": [8], "dropout": 0.0},
        "train": {"epochs": 2, "batch_size": 8, "early_stopping_patience": 0}}))
    return path


@pytest.mark.slow
def test_train_detached_and_foreground_then_list_and_show(ws, config_file):
    start = time.monotonic()
    detached = tlcore("train", "--config", str(config_file), "--set", "train.epochs=3",
                      "--name", "background", "--detach")
    assert detached.returncode == 0, detached.stderr
    bg_id = detached.stdout.strip()
    assert len(bg_id.splitlines()) == 1
    assert RunStore(ws).get_run(bg_id)["status"] in (QUEUED, RUNNING)  # returned at once
    assert time.monotonic() - start < 30

    fg = tlcore("train", "--config", str(config_file), "--name", "foreground")
    assert fg.returncode == 0, fg.stderr
    fg_id = fg.stdout.strip()
    assert fg_id != bg_id
    assert "epoch 1/2 phase 1" in fg.stderr and "epoch 2/2 phase 1" in fg.stderr
    assert f"run {fg_id} completed" in fg.stderr

    listed = tlcore("runs", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    runs = {r["id"]: r for r in json.loads(listed.stdout)}
    assert runs[bg_id]["status"] == runs[fg_id]["status"] == COMPLETED
    assert (runs[bg_id]["epochs_done"], runs[fg_id]["epochs_done"]) == (3, 2)
    assert (runs[bg_id]["name"], runs[fg_id]["name"]) == ("background", "foreground")

    shown = tlcore("runs", "show", bg_id, "--json")
    assert shown.returncode == 0, shown.stderr
    run = json.loads(shown.stdout)
    assert run["config"]["train"]["epochs"] == 3
    assert [m["epoch"] for m in run["metrics"]] == [1, 2, 3]
    assert run["device"] == "CPU" and run["error"] is None
    assert 0.0 <= run["best_val_accuracy"] <= 1.0
    assert set(run["test_metrics"]) == {"loss", "accuracy", "n"}

    text = tlcore("runs", "show", fg_id)
    assert "completed" in text.stdout and "best val accuracy" in text.stdout
    table = tlcore("runs", "list")
    assert table.stdout.splitlines()[0].split()[:3] == ["ID", "NAME", "STATUS"]


@pytest.mark.slow
def test_foreground_train_of_a_failing_run_exits_nonzero(ws, config_file):
    # A completed run whose model file is a well-formed zip that Keras cannot load:
    # launch accepts it (it checks the zip only), the worker fails.
    source = RunStore(ws).create_run(RunConfig(dataset="shapes", image_size=32),
                                     status=COMPLETED)
    write_keras_zip(ws.run(source).model)
    result = tlcore("train", "--config", str(config_file), "--set",
                    f"base.weights=run:{source}")
    assert result.returncode == 1
    run_id = result.stdout.strip()
    assert f"run {run_id} failed" in result.stderr
    assert "cannot be loaded as a Keras model" in result.stderr
    assert "log:" in result.stderr


@pytest.mark.slow
def test_train_warns_first_and_a_diverging_run_fails_with_the_reason(ws, config_file):
    result = tlcore("train", "--config", str(config_file), "--set", "train.learning_rate=10")
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[0].startswith("warning: train.learning_rate 10 is very high for adam")
    run_id = result.stdout.strip()
    run = RunStore(ws).get_run(run_id)
    assert run["status"] == "failed" and run["config"]["train"]["learning_rate"] == 10.0
    assert run["error"].startswith("Training diverged at epoch ")
    assert f"run {run_id} failed: Training diverged at epoch " in result.stderr
    assert "train.learning_rate is now 10.0" in result.stderr


def test_train_refuses_bad_input_with_one_line(ws, config_file, tmp_path):
    source = RunStore(ws).create_run(RunConfig(dataset="shapes", image_size=32),
                                     status=COMPLETED)
    write_keras_zip(ws.run(source).model, truncated=True)
    cases = [
        (["--config", str(config_file), "--set", "image_size=512", "--set",
          "head.dense=[8192]"], "parameters; the limit is 200,000,000"),
        (["--config", str(config_file), "--set", f"base.weights=run:{source}"],
         f"runs/{source}/model.keras is unreadable (truncated or corrupt)"),
        (["--config", str(tmp_path / "missing.json")], "Cannot read the config file"),
        (["--config", str(config_file), "--set", "train.epoch=3"], "Unknown key train.epoch"),
        (["--config", str(config_file), "--set", "base.weights=/nowhere/w.h5"],
         "does not exist"),
        (["--config", str(config_file), "--set", "dataset=other"], "No dataset named 'other'"),
    ]
    huge = "1" * 5000  # more digits than Python turns into an int
    (tmp_path / "huge.json").write_text(f'{{"dataset": "shapes", "image_size": {huge}}}')
    cases += [
        (["--config", str(tmp_path / "huge.json")], "holds a number too long to read"),
        (["--config", str(config_file), "--set", f"train.epochs={huge}"],
         "train.epochs must be an integer"),
    ]
    for bad in ("a\x1b[31mb", "two\nlines", "x" * 121):
        cases.append((["--config", str(config_file), "--name", bad],
                      "A run name must be 1-120 characters without control characters "))
    for args, message in cases:
        result = tlcore("train", *args)
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith("error: ") and message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert [r["id"] for r in json.loads(tlcore("runs", "list", "--json").stdout)] == [source]


def test_leftover_run_folders_are_removed_by_runs_delete_and_cache_clear(ws):
    store = RunStore(ws)
    kept = store.create_run(RunConfig(dataset="d", image_size=32))
    ws.run(kept).dir.mkdir(parents=True)
    # Folders whose rows are gone, as after restoring an older copy of the database.
    orphans = [store.create_run(RunConfig(dataset="d", image_size=32)) for _ in range(3)]
    long_ago = time.time() - 2 * launch.ORPHAN_GRACE_S  # older than a launch in the making
    for run_id in orphans:
        write_keras_zip(ws.run(run_id).model)
        store.delete_run(run_id)
        os.utime(ws.run(run_id).dir, (long_ago, long_ago))

    result = tlcore("runs", "delete", orphans[0])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (f"run {orphans[0]}: no such run in the database; removed "
                                     "its leftover folder")
    again = tlcore("runs", "delete", orphans[0])
    assert again.returncode == 2 and "No run with id" in again.stderr

    assert "leftover" not in tlcore("cache", "clear", "--kind", "images").stdout
    result = tlcore("cache", "clear")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].startswith("removed 2 leftover run folder(s) with no "
                                                     "run in the database")
    assert [p.name for p in ws.runs_dir.iterdir()] == [kept]


def test_runs_cancel_resume_delete(ws):
    store = RunStore(ws)
    config = RunConfig(dataset="d", image_size=32)
    busy = store.create_run(config)
    waiting = store.create_run(config)
    # A stand-in worker holds the only slot, so `waiting` stays queued.
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)",
                               "tlcore.workers.run", busy], start_new_session=True)
    try:
        store.claim_next(1, started=time.time(), heartbeat=time.time())
        store.update_run(busy, pid=holder.pid)

        result = tlcore("runs", "cancel", waiting)
        assert result.returncode == 0 and result.stdout.strip() == f"run {waiting}: cancelled"
        again = tlcore("runs", "cancel", waiting)
        assert again.returncode == 2 and "can be cancelled" in again.stderr

        result = tlcore("runs", "resume", waiting)
        assert result.returncode == 0, result.stderr
        assert store.get_run(waiting)["status"] == QUEUED

        result = tlcore("runs", "delete", waiting)
        assert result.returncode == 0 and "deleted" in result.stdout
        missing = tlcore("runs", "show", waiting)
        assert missing.returncode == 2 and "No run with id" in missing.stderr
        assert tlcore("runs", "show", "../etc").returncode == 2
    finally:
        holder.kill()
        holder.wait()
    assert [r["id"] for r in json.loads(tlcore("runs", "list", "--json").stdout)] == [busy]


@pytest.mark.slow
def test_device_command():
    result = tlcore("device")
    assert result.returncode == 0, result.stderr
    assert "device: CPU" in result.stdout
    assert "mixed precision (train.mixed_precision=auto): off" in result.stdout
    assert "backend: tensorflow (train.backend=auto; installed: tensorflow, jax" in result.stdout


def test_runs_show_settles_a_silent_worker(ws, monkeypatch):
    store = RunStore(ws)
    run_id = store.create_run(RunConfig(dataset="d", image_size=32))
    # A worker that is alive but silent (stopped, hung): its last beat is long gone.
    silent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)",
                               "tlcore.workers.run", run_id], start_new_session=True)
    try:
        long_ago = time.time() - 60
        store.claim_next(1, started=long_ago, heartbeat=long_ago)
        store.update_run(run_id, pid=silent.pid)
        monkeypatch.setenv("TLCORE_HEARTBEAT_TIMEOUT_S", "5")
        result = tlcore("runs", "show", run_id, "--json")
        assert result.returncode == 0, result.stderr
        shown = json.loads(result.stdout)
        assert shown["status"] == LOST and "no heartbeat" in shown["error"].lower()
        assert store.get_run(run_id)["status"] == LOST
    finally:
        silent.kill()
        silent.wait()
