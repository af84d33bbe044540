"""RunStore: rows, metrics, progress, compare-and-set, and readers in other processes.

Every test that takes `store` runs on both backends: the workspace's SQLite file and
a PostgreSQL database (marked `postgres`).
"""

import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.support.pg import PASSWORD
from tlcore import store as store_module
from tlcore.config import RunConfig
from tlcore.errors import ConfigError, NotFoundError, StoreError, TLCoreError
from tlcore.store import COMPLETED, QUEUED, RUNNING, RunStore


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request, ws):
    if request.param == "postgres":
        request.getfixturevalue("pg_url")
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


def test_errors_inside_a_transaction_become_store_errors(ws):
    store = RunStore(ws)
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
    with sa.create_engine(store.url).begin() as con:
        con.execute(sa.text("UPDATE runs SET config = :config WHERE id = :id"),
                    {"config": json.dumps(old), "id": run_id})
    assert store.get_run(run_id)["config"]["base"]["trainable"] is False


# ---- GPU slots and races --------------------------------------------------------
def test_gpu_slots_are_taken_first_free_and_held_while_running(store):
    cfg = RunConfig(dataset="d")
    first = store.create_running(cfg, 3, slots=("0", "1"), pid=1)
    second = store.create_running(cfg, 3, slots=("0", "1"))
    assert [store.get_run(r)["gpu"] for r in (first, second)] == ["0", "1"]
    assert store.create_running(cfg, 3, slots=("0", "1")) is None  # every slot held
    queued = store.create_run(cfg)
    assert store.claim_next(3, slots=("0", "1")) is None
    assert store.get_run(queued)["gpu"] is None
    assert store.transition(first, (RUNNING,), status=COMPLETED)
    assert store.claim_next(3, slots=("0", "1"), pid=7) == queued
    assert (store.get_run(queued)["gpu"], store.get_run(queued)["pid"]) == ("0", 7)
    assert store.create_running(cfg, 2, slots=("0", "1", "2")) is None  # the limit holds
    third = store.create_running(cfg, 3)
    assert store.get_run(third)["gpu"] is None  # without slots, none is taken
    store.update_run(third, gpu="2")
    assert store.get_run(third)["gpu"] == "2"
    with pytest.raises(ConfigError, match="slots or gpu, not both"):
        store.claim_next(5, slots=("0",), gpu="1")


def _overlaps(intervals):
    return [(a, b) for i, a in enumerate(intervals) for b in intervals[i + 1:]
            if a["start"] < b["end"] and b["start"] < a["end"]]


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres",
                                                            marks=pytest.mark.postgres)])
def test_processes_racing_for_runs_claim_each_once_within_limit_and_slots(
        backend, ws, tmp_path, request):
    if backend == "postgres":
        request.getfixturevalue("pg_url")
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    start_at = time.time() + 2.0  # after every process has imported the store
    outs = [tmp_path / f"claims-{i}.json" for i in range(5)]
    # From another directory, on a database no process has opened: they also race to
    # create the schema, and the migrations are found wherever tlcore is imported from.
    procs = [subprocess.Popen([sys.executable, str(root / "tests" / "support" / "claimworker.py"),
                               str(start_at), str(out)], cwd=tmp_path, env=env)
             for out in outs]
    assert [p.wait(timeout=60) for p in procs] == [0] * 5
    claims = [c for out in outs for c in json.loads(out.read_text())]
    runs = RunStore(ws).list_runs()
    assert len(runs) == 10 and {r["status"] for r in runs} == {COMPLETED}
    assert sorted(c["id"] for c in claims) == sorted(r["id"] for r in runs)
    events = sorted([(c["start"], 1) for c in claims] + [(c["end"], -1) for c in claims])
    running = [sum(step for _, step in events[:i + 1]) for i in range(len(events))]
    assert max(running) <= 2
    assert {c["gpu"] for c in claims} <= {"0", "1"}
    assert all(a["gpu"] != b["gpu"] for a, b in _overlaps(claims))



def test_a_new_database_locked_by_another_process_is_waited_for(tmp_path):
    """Switching to WAL while another process writes is refused at once by SQLite."""
    from tlcore.store.connection import engine

    path = tmp_path / "new.db"
    sqlite3.connect(path).execute("CREATE TABLE t (x)")  # a rollback-journal database
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sqlite3, sys, time\n"
        "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "c.execute('BEGIN IMMEDIATE'); c.execute('INSERT INTO t VALUES (1)')\n"
        "print('held', flush=True); time.sleep(1.0); c.execute('COMMIT')\n"), str(path)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        start = time.monotonic()
        with engine(f"sqlite:///{path}").connect() as con:
            mode = con.exec_driver_sql("PRAGMA journal_mode").scalar()
        assert mode == "wal" and time.monotonic() - start >= 0.3  # it waited for the writer
    finally:
        holder.wait(timeout=30)
    assert holder.returncode == 0

# ---- schema versions --------------------------------------------------------------
# The schema as the store created it before it was versioned (revision 0001 adopts it).
_UNVERSIONED_SCHEMA = """
CREATE TABLE IF NOT EXISTS datasets (
    name TEXT PRIMARY KEY, created REAL NOT NULL, n_images INTEGER NOT NULL,
    classes TEXT NOT NULL, summary TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, seq INTEGER NOT NULL, name TEXT NOT NULL, dataset TEXT NOT NULL,
    config TEXT NOT NULL, status TEXT NOT NULL, created REAL NOT NULL, started REAL,
    ended REAL, device TEXT, error TEXT, pid INTEGER, heartbeat REAL,
    cancel_requested INTEGER NOT NULL DEFAULT 0, best_val_accuracy REAL,
    best_val_loss REAL, best_epoch INTEGER, test_metrics TEXT, extra TEXT
);
CREATE INDEX IF NOT EXISTS runs_status ON runs(status, seq);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL, epoch INTEGER NOT NULL, phase INTEGER NOT NULL,
    loss REAL, accuracy REAL, val_loss REAL, val_accuracy REAL,
    learning_rate REAL, epoch_time REAL, PRIMARY KEY (run_id, epoch)
);
CREATE TABLE IF NOT EXISTS progress (
    run_id TEXT PRIMARY KEY, phase INTEGER, epoch INTEGER, epochs INTEGER,
    batch INTEGER, batches INTEGER, eta_s REAL, updated REAL,
    stage TEXT NOT NULL DEFAULT 'train'
);
"""


def test_a_store_written_before_schema_versions_is_adopted_and_upgraded(ws):
    config = RunConfig(dataset="d").to_json(None)
    with sqlite3.connect(ws.db_path) as con:
        con.executescript(_UNVERSIONED_SCHEMA)
        con.execute("INSERT INTO runs (id, seq, name, dataset, config, status, created) "
                    "VALUES ('abcdef123456', 1, 'old', 'd', ?, 'completed', 1.0)", (config,))
        con.execute("INSERT INTO metrics (run_id, epoch, phase, loss) "
                    "VALUES ('abcdef123456', 1, 1, 0.5)")
    store = RunStore(ws)
    run = store.get_run("abcdef123456")
    assert (run["name"], run["status"], run["gpu"]) == ("old", COMPLETED, None)
    assert store.metrics("abcdef123456")[0]["loss"] == 0.5
    with sqlite3.connect(ws.db_path) as con:
        assert con.execute("SELECT version_num FROM tlcore_schema_version").fetchall() == [
            (store_module.SCHEMA_REVISION,)]
    store.update_run("abcdef123456", gpu="1")
    assert store.get_run("abcdef123456")["gpu"] == "1"
    assert store.create_run(RunConfig(dataset="d")) != "abcdef123456"
    assert store.list_runs()[-1]["seq"] == 2


def test_the_schema_revision_is_the_newest_migration():
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(store_module.MIGRATIONS_DIR))
    assert ScriptDirectory.from_config(config).get_current_head() == (
        store_module.SCHEMA_REVISION)


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres",
                                                            marks=pytest.mark.postgres)])
def test_a_store_newer_than_this_code_is_refused(backend, ws, request):
    url = request.getfixturevalue("pg_url") if backend == "postgres" else (
        f"sqlite:///{ws.db_path}")
    with sa.create_engine(url).begin() as con:
        con.execute(sa.text("CREATE TABLE tlcore_schema_version "
                            "(version_num VARCHAR(32) PRIMARY KEY)"))
        con.execute(sa.text("INSERT INTO tlcore_schema_version VALUES ('9999')"))
    with pytest.raises(StoreError) as info:
        RunStore(ws)
    where = ws.db_path if backend == "sqlite" else sa.make_url(url).render_as_string()
    assert str(info.value) == (
        f"The run store at {where} has schema version 9999, newer than this tlcore "
        f"({store_module.SCHEMA_REVISION}): upgrade tlcore, or point TLCORE_DB_URL at "
        "another database.")


# ---- the database URL -----------------------------------------------------------------
def test_the_database_url_is_the_workspace_file_unless_tlcore_db_url_names_one(
        ws, monkeypatch):
    assert store_module.database_url(ws) == f"sqlite:///{ws.db_path}"
    monkeypatch.setenv("TLCORE_DB_URL", "postgresql://u:p@db.example:5432/runs")
    assert store_module.database_url(ws) == "postgresql+psycopg://u:p@db.example:5432/runs"
    for bad in ("mysql://u:secret@h/db", "sqlite://", "not a url",
                "postgresql+psycopg://u:secret@h:port/db"):  # a port that is no number
        monkeypatch.setenv("TLCORE_DB_URL", bad)
        with pytest.raises(ConfigError, match="^TLCORE_DB_URL must be sqlite:") as info:
            store_module.database_url(ws)
        assert "secret" not in str(info.value)


@pytest.mark.postgres
def test_an_unreachable_postgres_database_names_the_url_without_its_password(
        ws, pg_cluster, monkeypatch):
    monkeypatch.setenv("TLCORE_DB_URL", pg_cluster.url("no_such_database"))
    with pytest.raises(StoreError) as info:
        RunStore(ws)
    message = str(info.value)
    assert message.startswith(
        f"The run store at postgresql+psycopg://postgres:***@127.0.0.1:{pg_cluster.port}/"
        "no_such_database cannot be read or written: ")
    assert "no_such_database\" does not exist" in message
    assert PASSWORD not in message and "\n" not in message


# ---- owners, tags and notes ---------------------------------------------------------------
def test_a_per_owner_limit_holds_for_launches_at_once(store):
    config = RunConfig(dataset="d")
    store.create_run(config, owner="bob@example.com")
    created: list[str | None] = []
    threads = [threading.Thread(target=lambda: created.append(
        store.create_run(config, owner="alice@example.com", max_active=3))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len([c for c in created if c]) == 3 and created.count(None) == 5
    assert store.count_active("alice@example.com") == 3
    assert store.create_run(config, owner="bob@example.com", max_active=3)  # others unaffected


def test_runs_created_together_are_all_or_none_against_the_limit(store):
    config, alice = RunConfig(dataset="d"), "alice@example.com"
    store.create_run(config, owner=alice)
    assert store.create_runs([(config, "a"), (config, "b"), (config, "c")], owner=alice,
                             max_active=3) is None
    assert store.count_active(alice) == 1
    created: list[list[str] | None] = []
    threads = [threading.Thread(target=lambda: created.append(store.create_runs(
        [(config, "x"), (config, None)], owner=alice, max_active=3))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    (ids,) = [c for c in created if c]  # one pair fits beside the first run, not two
    assert created.count(None) == 3 and store.count_active(alice) == 3
    first, second = (store.get_run(run_id) for run_id in ids)
    assert first["name"] == "x" and second["name"].startswith("run-")
    assert first["created"] <= second["created"] and first["owner"] == alice


def test_owners_are_recorded_and_filter_runs(store):
    config = RunConfig(dataset="d")
    mine = store.create_run(config, owner="alice@example.com")
    theirs = store.create_run(config, owner="bob@example.com")
    local = store.create_run(config)
    running = store.create_running(config, 2, owner="alice@example.com", pid=1)
    assert [store.get_run(r)["owner"] for r in (mine, theirs, local, running)] == [
        "alice@example.com", "bob@example.com", None, "alice@example.com"]
    assert [r["id"] for r in store.list_runs(owner="alice@example.com")] == [mine, running]
    assert len(store.list_runs()) == 4
    assert store.count_active("alice@example.com") == 2
    assert store.count_active(None) == 1
    store.update_run(mine, status=COMPLETED)
    assert store.count_active("alice@example.com") == 1
    assert store.count_active("carol@example.com") == 0
    store.add_dataset("flowers", 10, ["a", "b"], {}, owner="bob@example.com")
    store.add_dataset("local", 10, ["a", "b"], {})
    assert {d["name"]: d["owner"] for d in store.list_datasets()} == {
        "flowers": "bob@example.com", "local": None}
    assert store.dataset_owner("flowers") == "bob@example.com"
    with pytest.raises(NotFoundError, match="No dataset named 'nope'"):
        store.dataset_owner("nope")


def test_tags_and_notes_round_trip_normalized(store):
    run_id = store.create_run(RunConfig(dataset="d"))
    assert (store.get_run(run_id)["tags"], store.get_run(run_id)["note"]) == ([], None)
    assert store.set_tags(run_id, [" Baseline ", "lr:1e-3", "baseline", "v1.2_b-x"]) == [
        "baseline", "lr:1e-3", "v1.2_b-x"]
    assert store.set_note(run_id, "Pretrained start.\nSecond line.") == (
        "Pretrained start.\nSecond line.")
    run = store.get_run(run_id)
    assert run["tags"] == ["baseline", "lr:1e-3", "v1.2_b-x"]
    assert run["note"] == "Pretrained start.\nSecond line."
    assert store.list_runs()[0]["tags"] == run["tags"]
    assert store.set_tags(run_id, []) == [] and store.get_run(run_id)["tags"] == []
    assert store.set_note(run_id, "   ") is None and store.get_run(run_id)["note"] is None
    with pytest.raises(NotFoundError, match="No run with id 'abcdef123456'"):
        store.set_tags("abcdef123456", ["x"])


@pytest.mark.parametrize("tags, fragment", [
    (["two words"], "Received: 'two words'"),
    ([""], "Received: ''"),
    (["x" * 33], "1-32 letters"),
    (["ünï"], "Received: 'ünï'"),
    ([7], "Received: 7"),
    ("solo", "tags must be a list of strings"),
    ([f"t{i}" for i in range(21)], "at most 20 tags. Received: 21"),
])
def test_bad_tags_are_refused_in_one_line(store, tags, fragment):
    run_id = store.create_run(RunConfig(dataset="d"), owner="alice@example.com")
    store.set_tags(run_id, ["kept"])
    with pytest.raises(ConfigError, match=re.escape(fragment)) as info:
        store.set_tags(run_id, tags)
    assert "\n" not in str(info.value)
    assert store.get_run(run_id)["tags"] == ["kept"]


def test_a_note_over_the_limit_is_refused(store):
    run_id = store.create_run(RunConfig(dataset="d"))
    assert store.set_note(run_id, "x" * 2000) == "x" * 2000
    with pytest.raises(ConfigError, match="at most 2000 characters. Received: 2001"):
        store.set_note(run_id, "x" * 2001)
    with pytest.raises(ConfigError, match="A note must be text. Received: int"):
        store.set_note(run_id, 5)
    assert store.get_run(run_id)["note"] == "x" * 2000


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres",
                                                            marks=pytest.mark.postgres)])
def test_upgrading_from_0002_keeps_rows_and_adds_owners_tags_and_notes(backend, ws, request):
    from alembic import command
    from alembic.config import Config

    url = request.getfixturevalue("pg_url") if backend == "postgres" else (
        f"sqlite:///{ws.db_path}")
    config = Config()
    config.set_main_option("script_location", str(store_module.MIGRATIONS_DIR))
    with sa.create_engine(url).begin() as con:
        config.attributes["connection"] = con
        command.upgrade(config, "0002")
        con.execute(sa.text(
            "INSERT INTO runs (id, seq, name, dataset, config, status, created, gpu) "
            "VALUES ('abcdef123456', 1, 'old', 'd', :config, 'completed', 1.0, '0')"),
            {"config": RunConfig(dataset="d").to_json(None)})
        con.execute(sa.text("INSERT INTO datasets (name, created, n_images, classes, summary) "
                            "VALUES ('d', 1.0, 4, '[\"a\", \"b\"]', '{}')"))
    store = RunStore(ws)
    run = store.get_run("abcdef123456")
    assert (run["name"], run["gpu"], run["owner"], run["tags"], run["note"]) == (
        "old", "0", None, [], None)
    assert store.list_datasets()[0]["owner"] is None
    store.set_tags("abcdef123456", ["kept"])
    assert store.get_run("abcdef123456")["tags"] == ["kept"]
    with sa.create_engine(url).connect() as con:
        assert con.execute(sa.text("SELECT version_num FROM tlcore_schema_version")
                           ).scalar_one() == store_module.SCHEMA_REVISION == "0004"


def test_runs_page_filters_searches_and_pages_in_sql(store):
    from tlcore.store import RunFilter

    ids = store.create_runs([(RunConfig(dataset="a" if i % 2 else "b"), f"run_{i}")
                             for i in range(7)], owner="ann@x")
    store.update_run(ids[0], status=COMPLETED, extra={"sweep": "s1"})
    store.update_run(ids[1], extra={"sweep": "s1"})
    store.set_tags(ids[2], ["Keep"])
    store.set_note(ids[3], "100% Better")
    other = store.create_run(RunConfig(dataset="a"), name="RUN_X")
    rows, total = store.runs_page(limit=3)
    assert total == 8 and [r["id"] for r in rows] == [other, ids[6], ids[5]]  # newest first
    assert isinstance(rows[0]["config"], str) and "pid" not in rows[0]
    rows, total = store.runs_page(limit=3, offset=6)
    assert total == 8 and [r["id"] for r in rows] == [ids[1], ids[0]]
    assert store.runs_page(RunFilter(statuses=[COMPLETED]))[1] == 1
    assert store.runs_page(RunFilter(datasets=["b"]))[1] == 4
    assert store.runs_page(RunFilter(owner="ann@x"))[1] == 7
    assert [r["id"] for r in store.runs_page(RunFilter(sweeps=["s1"]))[0]] == [ids[1], ids[0]]
    assert store.runs_page(RunFilter(sweeps=[""]))[1] == 6
    # Search: name, tags or note, in any case; LIKE's wildcards are plain characters.
    assert [r["id"] for r in store.runs_page(RunFilter(search=" run_x "))[0]] == [other]
    assert [r["id"] for r in store.runs_page(RunFilter(search="KEEP"))[0]] == [ids[2]]
    assert [r["id"] for r in store.runs_page(RunFilter(search="0% b"))[0]] == [ids[3]]
    assert store.runs_page(RunFilter(search="%"))[1] == 1
    assert store.runs_page(RunFilter(search="n_"))[1] == 8
    assert store.runs_page(RunFilter(search="nx"))[1] == 0
    assert store.runs_page(RunFilter(datasets=["a"], search="run_", owner="ann@x"),
                           limit=1)[1] == 3


def test_run_facets_and_get_runs(store):
    assert store.run_facets().datasets == [] and store.get_runs([]) == []
    a, b, c = store.create_runs([(RunConfig(dataset="z"), "same"), (RunConfig(dataset="y"),
                                                                     "same-1"),
                                 (RunConfig(dataset="z"), "same")])
    store.update_run(a, extra={"sweep": "old"})
    store.update_run(b, extra={"sweep": "new", "other": 1})
    store.set_tags(a, ["t2", "t1"])
    store.set_tags(c, ["t1"])
    facets = store.run_facets()
    assert facets.datasets == ["y", "z"] and facets.tags == ["t1", "t2"]
    assert facets.sweeps == [("new", "same-1"), ("old", "same")]
    assert facets.repeated_names == {"same"} and not facets.any_owner
    store.create_run(RunConfig(dataset="z"), owner="bo@x")
    assert store.run_facets().any_owner
    runs = store.get_runs([c, "nosuchrun12", a])
    assert [r["id"] for r in runs] == [a, c]  # oldest first, missing ones left out
    assert runs[0]["config"]["dataset"] == "z" and runs[0]["tags"] == ["t1", "t2"]


def test_runs_page_indexes_exist(store):
    engine = sa.create_engine(store.url)
    names = {i["name"] for i in sa.inspect(engine).get_indexes("runs")}
    engine.dispose()
    assert {"runs_status", "runs_seq", "runs_owner", "runs_dataset"} <= names
