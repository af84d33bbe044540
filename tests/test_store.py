"""RunStore: rows, metrics, progress, compare-and-set, and readers in other processes."""

import json
import sqlite3
import subprocess
import sys

import pytest

from tlcore.config import RunConfig
from tlcore.errors import ConfigError, NotFoundError, StoreError, TLCoreError
from tlcore.store import COMPLETED, QUEUED, RUNNING, RunStore


@pytest.fixture
def store(ws):
    return RunStore(ws)


def test_create_and_read_run(store):
    cfg = RunConfig(dataset="d", image_size=32)
    run_id = store.create_run(cfg, name="first")
    run = store.get_run(run_id)
    assert run["status"] == QUEUED and run["name"] == "first" and run["dataset"] == "d"
    assert RunConfig.from_dict(run["config"]) == cfg
    assert store.get_config(run_id) == cfg
    second = store.create_run(cfg)
    assert [r["id"] for r in store.list_runs()] == [run_id, second]
    assert store.get_run(second)["name"] == "run-2"


def test_unknown_run_and_bad_id(store):
    with pytest.raises(NotFoundError, match="runs list"):
        store.get_run("abcdef123456")
    with pytest.raises(ConfigError, match="run id"):
        store.get_run("../../etc")


def test_transition_is_compare_and_set(store):
    run_id = store.create_run(RunConfig(dataset="d"))
    assert store.transition(run_id, (QUEUED,), status=RUNNING, pid=123)
    assert not store.transition(run_id, (QUEUED,), status=RUNNING, pid=456)
    assert store.get_run(run_id)["pid"] == 123


def test_update_rejects_unknown_fields_and_statuses(store):
    run_id = store.create_run(RunConfig(dataset="d"))
    with pytest.raises(ConfigError, match="Unknown run field"):
        store.update_run(run_id, colour="red")
    with pytest.raises(ConfigError, match="status must be one of"):
        store.update_run(run_id, status="paused")
    store.update_run(run_id, status=COMPLETED, test_metrics={"accuracy": 0.5})
    assert store.get_run(run_id)["test_metrics"] == {"accuracy": 0.5}


def test_metrics_progress_filters_and_delete(store):
    a = store.create_run(RunConfig(dataset="a"))
    b = store.create_run(RunConfig(dataset="b"))
    store.add_epoch(a, 1, 1, {"loss": 1.0, "val_accuracy": 0.4})
    store.add_epoch(a, 2, 2, {"loss": 0.5, "val_accuracy": 0.6})
    store.add_epoch(a, 2, 2, {"loss": 0.4, "val_accuracy": 0.7})  # resume replaces
    rows = store.metrics(a)
    assert [(r["epoch"], r["phase"], r["loss"]) for r in rows] == [(1, 1, 1.0), (2, 2, 0.4)]
    store.truncate_metrics(a, 1)
    assert len(store.metrics(a)) == 1
    store.set_progress(a, phase=1, epoch=1, epochs=3, batch=4, batches=10, eta_s=12.5)
    assert store.progress(a)["batch"] == 4 and store.get_run(a)["heartbeat"] is not None
    assert [r["id"] for r in store.list_runs(dataset="b")] == [b]
    assert [r["id"] for r in store.list_runs(statuses=[QUEUED])] == [a, b]
    store.delete_run(a)
    assert store.metrics(a) == [] and store.progress(a) is None
    with pytest.raises(NotFoundError):
        store.get_run(a)


def test_rename_validates(store):
    run_id = store.create_run(RunConfig(dataset="d"))
    store.rename_run(run_id, "  baseline  ")
    assert store.get_run(run_id)["name"] == "baseline"
    with pytest.raises(ConfigError):
        store.rename_run(run_id, "   ")
    with pytest.raises(ConfigError, match="control characters"):
        store.rename_run(run_id, "a\x1b[2Jb")
    assert store.get_run(run_id)["name"] == "baseline"


def test_another_process_sees_writes_while_a_writer_holds_the_store(store, ws):
    run_id = store.create_run(RunConfig(dataset="d"))
    store.add_epoch(run_id, 1, 1, {"loss": 0.9})
    code = (
        "import json, sys; from tlcore.store import RunStore; "
        "from tlcore.workspace import Workspace;"
        f"s = RunStore(Workspace.from_env({str(ws.root)!r}));"
        f"print(json.dumps([r['loss'] for r in s.metrics({run_id!r})]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == [0.9]


def test_dataset_rows(store):
    store.add_dataset("d", 10, ["a", "b"], {"splits": {"train": 7}})
    assert store.has_dataset("d")
    assert [(d["name"], d["classes"]) for d in store.list_datasets()] == [("d", ["a", "b"])]
    store.delete_dataset("d")
    assert not store.has_dataset("d") and store.list_datasets() == []


def test_an_unreadable_database_raises_one_line_store_error(ws):
    ws.db_path.write_bytes(b"garbage, not SQLite " * 256)
    with pytest.raises(StoreError) as info:
        RunStore(ws)
    message = str(info.value)
    assert isinstance(info.value, TLCoreError) and isinstance(info.value, RuntimeError)
    assert message.startswith(f"The run store at {ws.db_path} cannot be read")
    assert "file is not a database" in message and "\n" not in message


def test_errors_inside_a_transaction_become_store_errors(store, ws):
    store.create_run(RunConfig(dataset="d"))
    ws.db_path.write_bytes(b"\0" * 4096)  # damaged under a store already open
    with pytest.raises(StoreError):
        store.list_runs()
    with pytest.raises(StoreError):
        store.create_run(RunConfig(dataset="d"))


def test_configs_stored_before_a_new_key_read_with_its_default(store, ws):
    run_id = store.create_run(RunConfig(dataset="d"))
    old = RunConfig(dataset="d").to_dict()
    del old["base"]["trainable"]  # as stored before the key existed
    with sqlite3.connect(ws.db_path) as con:
        con.execute("UPDATE runs SET config = ? WHERE id = ?", (json.dumps(old), run_id))
    assert store.get_run(run_id)["config"]["base"]["trainable"] is False
