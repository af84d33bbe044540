"""Sweeps on Optuna: the search space's checks, a sweep through the CLI, pruning, kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from tests.support.runs import wait_for
from tlcore import data as datasets_api
from tlcore.config import RunConfig
from tlcore.data.demo import write_class_folders
from tlcore.errors import ConfigError
from tlcore.runs import children, liveness, sweeps
from tlcore.runs.executors import local
from tlcore.store import CANCELLED, COMPLETED, LOST, RunStore
from tlcore.workers import sweep as sweepworker

BASE = {"dataset": "shapes", "image_size": 32, "base": {"weights": "none"},
        "head": {"dense": [8], "dropout": 0.0},
        "train": {"epochs": 3, "batch_size": 8, "early_stopping_patience": 0}}


@pytest.fixture
def dataset(ws, tmp_path):
    folder = write_class_folders(tmp_path / "src", ("disc", "square", "triangle"), per_class=10,
                                 size=40)
    datasets_api.import_dataset(folder, "shapes", ws=ws)
    return "shapes"


def _tlcore(ws, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tlcore", *args], capture_output=True,
                          text=True, env=children.worker_env(ws), timeout=300)


@pytest.mark.parametrize("space, fragments", [
    ({"head.units": {"choices": [1]}}, ["'head.units' is not a sweepable config key"]),
    ({"dataset": {"choices": ["x"]}}, ["'dataset' is not a sweepable"]),
    ({"head.dropout": {"low": 0.0, "high": 1.5}},
     ["Space head.dropout: high 1.5 is not allowed", "a number in [0.0, 1.0)"]),
    ({"head.dropout": {"low": 0.5, "high": 0.2}}, ["low must be below high"]),
    ({"head.dropout": {"low": 0.0, "high": 0.5, "log": True}}, ["log range needs low > 0"]),
    ({"train.learning_rate": {"low": 0.0, "high": 0.1}}, ["low 0.0 is not allowed", "(0.0, 10.0]"]),
    ({"train.epochs": {"low": 1.5, "high": 4}}, ["integer field needs integer bounds"]),
    ({"head.pooling": {"choices": ["flatten", "median"]}},
     ["Space head.pooling: choice 'median' is not allowed", "flatten, avg, max"]),
    ({"head.pooling": {"low": 0, "high": 1}}, ["a choice field takes choices"]),
    ({"head.dense": {"choices": [[64], [99999]]}}, ["Space head.dense: choice [99999]"]),
    ({"head.dropout": {"low": 0.1, "high": 0.5, "steps": 3}}, ["unknown entries ['steps']"]),
    ({"head.dropout": [0.1, 0.2]}, ["Space head.dropout: give"]),
    ({}, ["must be a JSON object of dotted config keys"]),
])
def test_a_bad_space_is_refused_in_one_line_naming_the_key(space, fragments):
    with pytest.raises(ConfigError) as caught:
        sweeps.parse_space(space, RunConfig.from_dict(BASE))
    message = str(caught.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message


def test_a_good_space_maps_trials_to_configs():
    base = RunConfig.from_dict(BASE)
    dims = sweeps.parse_space({
        "head.dense": {"choices": [[64], [256, 32]]},
        "train.learning_rate": {"low": 1e-4, "high": 1e-2, "log": True},
        "train.epochs": {"low": 2, "high": 6, "step": 2}}, base)
    assert dims["train.epochs"].integer and dims["train.epochs"].grid() == [2, 4, 6]
    assert dims["head.dense"].grid() == ["[64]", "[256, 32]"]  # Optuna's scalar choices
    config = sweeps.trial_config(base, dims, {"head.dense": "[256, 32]",
                                              "train.learning_rate": 3e-3, "train.epochs": 4})
    assert config.head.dense == (256, 32) and config.train.learning_rate == 3e-3
    assert config.train.epochs == 4 and config.head.pooling == base.head.pooling
    with pytest.raises(ConfigError, match="grid sweep needs choices or a step for "
                                          "train.learning_rate"):
        dims["train.learning_rate"].grid()


def test_sweep_figures_carry_the_project_template():
    from tlcore.charts import sweeps as sweepcharts
    from tlcore.charts import theme

    trials = sweepcharts.trials_frame([
        {"number": n, "state": state, "best_val_accuracy": value, "run_id": f"r{n}",
         "seconds": 1.0, "params": {"head.dense": [64], "head.dropout": 0.1 * n}}
        for n, state, value in ((0, "complete", 0.6), (1, "pruned", 0.3), (2, "complete", 0.7))])
    assert list(trials["head.dense"]) == ["[64]"] * 3  # lists shown as text
    best = sweepcharts.best_so_far(trials)
    line = next(t for t in best.data if t.name == "best so far")
    assert list(line.y) == [0.6, 0.6, 0.7]  # the pruned trial's value is not a best
    for fig in (best, sweepcharts.importance({"head.dropout": 0.8, "head.dense": 0.2})):
        assert fig.layout.template == theme.TEMPLATE and fig.layout.height


def test_a_refused_sweep_starts_nothing(ws, dataset, tmp_path):
    (tmp_path / "base.json").write_text(json.dumps(BASE))
    (tmp_path / "space.json").write_text(json.dumps({"head.dropout": {"low": 0, "high": 2}}))
    result = _tlcore(ws, "sweep", "start", "--config", str(tmp_path / "base.json"),
                     "--space", str(tmp_path / "space.json"), "--trials", "3")
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith(
        "error: Space head.dropout: high 2 is not allowed")
    assert json.loads(_tlcore(ws, "sweep", "list", "--json").stdout) == []
    assert RunStore(ws).list_runs() == []
    huge = "1" * 5000  # more digits than Python turns into an int
    (tmp_path / "space.json").write_text(f'{{"train.epochs": {{"low": 1, "high": {huge}}}}}')
    result = _tlcore(ws, "sweep", "start", "--config", str(tmp_path / "base.json"),
                     "--space", str(tmp_path / "space.json"), "--trials", "3")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "holds a number too long to read" in result.stderr



@pytest.mark.parametrize("space, trials, message", [
    # Three stepped ranges: 10^9 points, which Optuna's GridSampler would list in memory.
    ({"head.dropout": {"low": 0.0, "high": 0.999, "step": 0.001},
      "train.learning_rate": {"low": 0.001, "high": 1.0, "step": 0.001},
      "train.epochs": {"low": 1, "high": 1000, "step": 1}}, 10,
     "This grid has 1,000,000,000 points, more than the 10,000 a grid sweep may have "
     "(TLCORE_MAX_GRID_POINTS); use fewer choices or larger steps, or the tpe or random "
     "sampler."),
    ({"head.dropout": {"low": 0.0, "high": 0.5, "step": 1e-12}}, 10,
     "This grid has 500,000,000,001 points"),
    ({"head.pooling": {"choices": ["flatten", "avg"]}}, 3,
     "A grid of 2 points runs at most 2 trials; ask for at most that many. Received: trials=3"),
])
def test_a_grid_too_large_or_too_short_is_refused_before_it_is_built(ws, dataset, monkeypatch,
                                                                      space, trials, message):
    monkeypatch.setattr(sweeps.Dimension, "grid", lambda self: pytest.fail("grid listed"))
    with pytest.raises(ConfigError) as caught:
        sweeps.create(ws, RunConfig.from_dict(BASE), space, trials, sampler="grid")
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)
    assert sweeps.list_sweeps(ws) == []


def test_reading_a_grid_sweep_never_lists_its_grid_and_delete_removes_it(ws, dataset,
                                                                         monkeypatch):
    import optuna

    base = RunConfig.from_dict(BASE)
    space = {"head.pooling": {"choices": ["flatten", "avg"]},
             "head.dropout": {"low": 0.0, "high": 0.5, "step": 0.1}}
    sweep_id = sweeps.create(ws, base, space, 4, sampler="grid")
    store = RunStore(ws)
    run_id = store.create_run(base, name="trial-0")
    store.merge_extra(run_id, sweep=sweep_id, trial=0)
    dims = sweeps.parse_space(space, base)
    study, _ = sweeps.load(ws, sweep_id)
    study.add_trial(optuna.trial.create_trial(
        params={"head.pooling": "avg", "head.dropout": 0.2},
        distributions={k: d.distribution() for k, d in dims.items()}, value=0.5,
        user_attrs={"run_id": run_id}))
    # A sweep recorded before the bound (or under a larger one) is still shown...
    monkeypatch.setenv(sweeps.ENV_MAX_GRID, "5")
    monkeypatch.setattr(sweeps.Dimension, "grid", lambda self: pytest.fail("grid listed"))
    info = sweeps.summary(ws, sweep_id)
    assert info["trials"][0]["params"] == {"head.pooling": "avg", "head.dropout": 0.2}
    assert [s["id"] for s in sweeps.list_sweeps(ws)] == [sweep_id]
    # ...but no worker samples from it.
    with pytest.raises(ConfigError, match="This grid has 12 points, more than the 5"):
        sweeps.resume(ws, sweep_id)
    monkeypatch.undo()
    result = _tlcore(ws, "sweep", "delete", sweep_id)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"sweep {sweep_id}: deleted with its 1 trial run(s)"
    assert sweeps.list_sweeps(ws) == [] and store.list_runs() == []
    result = _tlcore(ws, "sweep", "delete", sweep_id)
    assert result.returncode != 0 and f"No sweep with id {sweep_id!r}" in result.stderr


@pytest.mark.postgres
def test_sweep_studies_follow_the_run_store_onto_postgres(ws, pg_url):
    import optuna
    import sqlalchemy as sa

    RunStore(ws).create_run(RunConfig(dataset="d"))
    optuna.create_study(study_name="s", storage=sweeps.storage(ws))
    with sa.create_engine(pg_url).connect() as con:
        assert con.execute(sa.text("SELECT study_name FROM studies")).scalars().all() == ["s"]
        assert con.execute(sa.text("SELECT COUNT(*) FROM runs")).scalar() == 1
        tables = sa.inspect(con).get_table_names()
    assert {"alembic_version", "tlcore_schema_version"} <= set(tables)
    assert not ws.db_path.exists()


@pytest.mark.slow
def test_a_small_sweep_end_to_end_through_the_cli(ws, dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("TLCORE_MAX_WORKERS", "2")
    (tmp_path / "base.json").write_text(json.dumps(BASE))
    (tmp_path / "space.json").write_text(json.dumps({
        "head.pooling": {"choices": ["flatten", "avg"]},
        "train.learning_rate": {"low": 1e-3, "high": 1e-2, "log": True}}))
    result = _tlcore(ws, "sweep", "start", "--config", str(tmp_path / "base.json"),
                     "--space", str(tmp_path / "space.json"), "--trials", "3", "--workers", "2",
                     "--name", "heads")
    assert result.returncode == 0, result.stderr
    sweep_id = result.stdout.split()[-1]
    assert result.stderr.count("trial ") == 3 and "(3/3)" in result.stderr

    shown = json.loads(_tlcore(ws, "sweep", "show", sweep_id, "--json").stdout)
    assert shown["status"] == "done" and shown["finished"] == 3 and shown["workers"] == []
    assert sorted(t["number"] for t in shown["trials"]) == [0, 1, 2]
    store = RunStore(ws)
    for trial in shown["trials"]:
        run = store.get_run(trial["run_id"])  # an ordinary run of the store
        assert run["extra"]["sweep"] == sweep_id and run["extra"]["trial"] == trial["number"]
        assert run["name"] == f"heads-{trial['number']}"
        assert run["config"]["head"]["pooling"] == trial["params"]["head.pooling"]
        assert run["config"]["train"]["learning_rate"] == pytest.approx(
            trial["params"]["train.learning_rate"])
        assert 1e-3 <= trial["params"]["train.learning_rate"] <= 1e-2
        if trial["state"] == "complete":
            assert run["status"] == COMPLETED
            assert trial["best_val_accuracy"] == pytest.approx(run["best_val_accuracy"])
        assert "Epoch 1/" in ws.run(run["id"]).log.read_text()  # the run's own log
    done = [t for t in shown["trials"] if t["state"] == "complete"]
    assert shown["best"]["best_val_accuracy"] == max(t["best_val_accuracy"] for t in done)
    listed = json.loads(_tlcore(ws, "sweep", "list", "--json").stdout)
    assert [(s["id"], s["name"], s["finished"]) for s in listed] == [(sweep_id, "heads", 3)]


@pytest.mark.slow
def test_pruning_stops_a_bad_trial_early(ws, dataset):
    import optuna

    base = RunConfig.from_dict({**BASE, "train": {**BASE["train"], "epochs": 8}})
    space = {"train.learning_rate": {"choices": [1e-7]}}  # learns nothing in 8 epochs
    sweep_id = sweeps.create(ws, base, space, trials=5)
    study, _ = sweeps.load_for_trials(ws, sweep_id)
    dims = sweeps.parse_space(space, base)
    for _ in range(sweeps.PRUNE_STARTUP_TRIALS):  # earlier trials that did well
        study.add_trial(optuna.trial.create_trial(
            params={"train.learning_rate": 1e-7},
            distributions={k: d.distribution() for k, d in dims.items()}, value=0.95,
            intermediate_values={epoch: 0.95 for epoch in range(1, 9)}))
    assert sweepworker.train_trial(ws, sweep_id, study)
    trial = study.get_trials()[-1]
    assert trial.state == optuna.trial.TrialState.PRUNED
    first_prunable = sweeps.PRUNE_WARMUP_EPOCHS + 1
    assert max(trial.intermediate_values) == first_prunable
    run = RunStore(ws).get_run(trial.user_attrs["run_id"])
    assert run["status"] == CANCELLED and run["extra"]["pruned"] is True
    assert run["error"].startswith(f"Pruned by the sweep after epoch {first_prunable}")
    assert len(RunStore(ws).metrics(run["id"])) == first_prunable  # of 8 planned
    assert not sweepworker.train_trial(ws, sweep_id, study)  # its 5 trials are used up


@pytest.mark.slow
def test_a_killed_sweep_worker_leaves_its_trial_failed_and_the_sweep_resumable(ws, dataset):
    base = RunConfig.from_dict({**BASE, "train": {**BASE["train"], "epochs": 150}})
    sweep_id = sweeps.create(ws, base, {"head.dropout": {"low": 0.0, "high": 0.5}}, trials=1)
    (pid,) = sweeps.start_workers(ws, sweep_id, 1)
    store = RunStore(ws)

    def training():
        runs = store.list_runs()
        return runs and store.metrics(runs[0]["id"]) and runs[0]
    run = wait_for(training, "the trial's first epoch", 120)
    assert run["pid"] == pid and local.pid_alive(pid, run["id"], ws)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: liveness.refresh(ws) or store.get_run(run["id"])["status"] == LOST,
             "the killed trial's run to be lost", 30)
    assert sweeps.summary(ws, sweep_id)["status"] == "stopped"

    sweeps.resume(ws, sweep_id)
    wait_for(lambda: not sweeps.sweep_workers(sweep_id), "the resumed sweep", 180)
    shown = sweeps.summary(ws, sweep_id)
    assert [t["state"] for t in shown["trials"]] == ["fail", "complete"]
    assert shown["status"] == "done" and shown["trials_planned"] == 2  # the failed one redone
    assert store.get_run(shown["trials"][1]["run_id"])["status"] == COMPLETED
