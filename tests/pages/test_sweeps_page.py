"""Sweeps page: the space from the config declaration, refusals, leaderboard and charts."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import optuna
import pytest

from tests.pages.conftest import add_run
from tests.support.markup import chart_strings, shown
from tlcore.config import RunConfig
from tlcore.runs import sweeps
from tlcore.store import CANCELLED, RunStore

SWEEPS = "app_pages/sweeps.py"


def finished_sweep(ws, rates=(1e-3, 3e-3, 1e-4)) -> tuple[str, list[str]]:
    """A sweep over pooling and learning rate whose three trials are finished runs."""
    base = RunConfig.from_dict({"dataset": "pets", "image_size": 32,
                                "base": {"weights": "none"}})
    space = {"head.pooling": {"choices": ["flatten", "avg"]},
             "train.learning_rate": {"low": 1e-4, "high": 1e-2, "log": True}}
    sweep_id = sweeps.create(ws, base, space, trials=3, name="heads")
    study, _ = sweeps.load(ws, sweep_id)
    dims = sweeps.parse_space(space, base)
    store = RunStore(ws)
    run_ids = []
    for number, (pooling, rate) in enumerate(zip(["flatten", "avg", "avg"], rates,
                                                 strict=True)):
        run_id = add_run(store, name=f"heads-{number}", head={"pooling": pooling},
                         train={"learning_rate": rate})
        store.merge_extra(run_id, sweep=sweep_id, trial=number)
        study.add_trial(optuna.trial.create_trial(
            params={"head.pooling": pooling, "train.learning_rate": rate},
            distributions={k: d.distribution() for k, d in dims.items()},
            value=store.get_run(run_id)["best_val_accuracy"], user_attrs={"run_id": run_id}))
        run_ids.append(run_id)
    sweeps.set_status(ws, sweep_id, sweeps.DONE)
    return sweep_id, run_ids


def test_the_form_offers_declared_keys_and_refuses_a_bad_space(app, ws, populated):
    at = app(SWEEPS)
    assert not at.exception
    keys = at.multiselect(key="sweep_keys")
    assert keys.value == ["head.pooling", "head.dense", "head.dropout", "train.learning_rate"]
    assert "dataset" not in keys.options and "train.epochs" in keys.options
    assert at.multiselect(key="sweep_head.pooling").options == ["flatten", "avg", "max"]
    at.number_input(key="sweep_head.dropout_high").set_value(2.0)
    at.button(key="sweep_start").click().run()
    errors = [shown(e.value) for e in at.error]
    assert errors == ["Space head.dropout: high 2.0 is not allowed; head.dropout takes a "
                      "number in [0.0, 1.0)."]
    assert sweeps.list_sweeps(ws) == []


def test_a_sweep_shows_its_leaderboard_charts_and_opens_the_best_in_train(app, ws, populated):
    sweep_id, run_ids = finished_sweep(ws)
    at = app(SWEEPS)
    assert not at.exception
    assert at.selectbox(key="sweep_chosen").value == sweep_id
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Trials"] == "3 / 3" and metrics["Status"] == "done"
    board = at.dataframe[0].value
    assert list(board["trial"]) == [2, 1, 0]  # best first: add_run's accuracies rise
    assert set(board["run_id"]) == set(run_ids)
    strings = chart_strings(at)
    assert {"Best val accuracy so far", "Parameter importance", "best so far"} <= set(strings)
    assert {"pooling", "learning_rate"} <= set(strings)  # importance bars and parallel axes
    keys = {c.key for c in at.get("plotly_chart")}
    assert f"sweep_parallel_{sweep_id}" in keys
    at.button(key=f"sweep_open_{sweep_id}").click().run()
    assert not at.exception  # now on the Train page, the best trial's settings loaded
    assert at.number_input(key="cfg.train.learning_rate").value == 1e-4
    assert at.selectbox(key="cfg.head.pooling").value == "avg"
    assert "Loaded the cloned run's settings. Edit and launch." in [s.value for s in at.success]


def pruned_trial(ws, sweep_id: str) -> str:
    """A fourth trial of `sweep_id` that the pruner stopped: the newest run of the workspace."""
    store = RunStore(ws)
    study, attrs = sweeps.load(ws, sweep_id)
    dims = sweeps.parse_space(attrs["space"], RunConfig.from_dict(attrs["base"]))
    run_id = add_run(store, status=CANCELLED, name="heads-3", epochs=3)
    store.update_run(run_id, error="Pruned by the sweep after epoch 3: val accuracy 0.300 is "
                                   "below the median of earlier trials.")
    store.merge_extra(run_id, sweep=sweep_id, trial=3, pruned=True)
    study.add_trial(optuna.trial.create_trial(
        params={"head.pooling": "avg", "train.learning_rate": 1e-3},
        distributions={k: d.distribution() for k, d in dims.items()},
        state=optuna.trial.TrialState.PRUNED, intermediate_values={1: 0.3},
        user_attrs={"run_id": run_id}))
    return run_id


def test_a_pruned_trial_shows_as_pruned_and_open_best_shows_the_best_trial(app, ws, populated):
    sweep_id, run_ids = finished_sweep(ws)
    pruned = pruned_trial(ws, sweep_id)
    at = app()
    at.query_params["run"] = pruned
    at.switch_page("app_pages/train.py").run()
    assert not at.exception
    markdown = [m.value for m in at.markdown]
    assert any("pruned" in m and "badge" in m for m in markdown), markdown
    assert not any("cancelled" in m and "badge" in m for m in markdown)
    assert f"train_resume_{pruned}" not in [b.key for b in at.button]
    assert any(shown(i.value).startswith("Pruned by the sweep after epoch 3") for i in at.info)
    assert not at.error
    # "Open best in Train": the best completed trial's settings, and its results below them,
    # though the pruned trial is the newest run.
    at.switch_page(SWEEPS).run()
    board = at.dataframe[0].value
    assert board.set_index("trial").loc[3, "state"] == "pruned"
    at.button(key=f"sweep_open_{sweep_id}").click().run()
    assert not at.exception
    assert at.query_params["run"] == run_ids[2]
    assert "#### heads-2" in [shown(m.value) for m in at.markdown]
    assert at.number_input(key="cfg.train.learning_rate").value == 1e-4


def test_log_sampled_keys_get_a_log_axis_and_few_trials_a_caveat(app, ws, populated):
    sweep_id, _ = finished_sweep(ws, rates=(7.39219e-4, 1.23456e-3, 2.01e-3))
    at = app(SWEEPS)
    assert not at.exception
    (parallel,) = [c for c in at.get("plotly_chart") if c.key == f"sweep_parallel_{sweep_id}"]
    dims = {d["label"]: d for d in json.loads(parallel.proto.spec)["data"][0]["dimensions"]}
    # Less than 10x apart, but sampled on a log scale: a log axis, 3 significant digits.
    assert dims["learning_rate"]["ticktext"] == ["0.000739", "0.00123", "0.00201"]
    assert dims["learning_rate"]["tickvals"][0] == pytest.approx(math.log10(7.39219e-4))
    captions = [shown(c.value) for c in at.caption]
    assert any("From 3 completed trials only: parameter importance needs about 10 or more"
               in c for c in captions), captions


def test_the_started_message_stays_while_the_sweep_runs_and_goes_after(app, ws, populated,
                                                                      monkeypatch):
    workers = []

    def start_workers(ws, sweep_id, count):
        # A process that the sweep's liveness check counts as its worker, training nothing.
        workers.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)",
                                         sweeps.SWEEP_WORKER, sweep_id]))
        return [workers[-1].pid]

    monkeypatch.setattr(sweeps, "start_workers", start_workers)
    at = app(SWEEPS)
    at.multiselect(key="sweep_keys").set_value(["head.pooling"])
    at.button(key="sweep_start").click().run()
    try:
        assert not at.exception and not at.error
        for _ in range(2):  # drawn by the sweep view on each of its runs, not once
            assert any("started with 1 worker(s)" in s.value for s in at.success)
            at.run()
    finally:
        for worker in workers:
            worker.kill()
            worker.wait()
    at.run()
    assert {m.label: m.value for m in at.metric}["Status"] == "stopped"
    assert not any("started with" in s.value for s in at.success)
    at.run()
    assert not any("started with" in s.value for s in at.success)
